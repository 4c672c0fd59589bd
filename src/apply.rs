//! Applying a plan: each change in order, each one recorded in the audit log.
//!
//! Apply sees only the [`Plan`] and applies its changes; what the checks held is not in
//! them (the pass record lists it). A change that fails leaves the resource it concerns
//! alone for the rest of the pass (later changes to it usually depend on it), except for a
//! revocation, which is always tried; other resources go on: one bad mapping does not stop
//! the others. Retries live in [`crate::ports::retry`], not here.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use futures::stream::{self, StreamExt, TryStreamExt};

use serde::Serialize;

use crate::audit::{AuditLog, ChangeRecord, HeldRecord, Intent, PassRecord, Record};
pub use crate::model::call::{Actor, Outcome, PassOutcome};
use crate::model::names::{Arn, MappingName};
use crate::plan::{Action, Change, LambdaAction, Plan};
use crate::ports::Executor;
use crate::sources::policy::Revision;

/// Why a plan was not applied at all.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The audit log could not be written, so no change may be made.
    #[error(transparent)]
    Audit(#[from] crate::audit::Error),
}

/// What happened to one planned change, with what identifies it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeOutcome {
    /// The change's identity across passes ([`Change::key`]), for its back-off.
    pub key: String,
    /// The action's name.
    pub action: String,
    pub resource: Arn,
    /// The AWS account it was made in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// The mapping it serves, if any.
    pub mapping: Option<MappingName>,
    /// Principals the change grants.
    pub members_added: usize,
    /// Principals the change takes away.
    pub members_removed: usize,
    /// What happened.
    #[serde(flatten)]
    pub outcome: Outcome,
}

impl ChangeOutcome {
    fn of(change: &Change, outcome: Outcome) -> ChangeOutcome {
        ChangeOutcome {
            key: change.key(),
            action: change.action.name().to_string(),
            resource: change.resource.clone(),
            account: change.account.clone(),
            mapping: change.mapping.clone(),
            members_added: change.members_added.len(),
            members_removed: change.members_removed.len(),
            outcome,
        }
    }
}

/// The result of applying a plan.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Changes done.
    pub applied: usize,
    /// Changes refused by AWS.
    pub failed: usize,
    /// Changes not tried.
    pub skipped: usize,
    /// Per change, in plan order.
    pub outcomes: Vec<ChangeOutcome>,
    /// True when a stop request ended the pass before every change was tried.
    pub interrupted: bool,
}

impl Report {
    /// True when every change was applied.
    pub fn success(&self) -> bool {
        self.failed == 0 && self.skipped == 0 && !self.interrupted
    }

    /// How the pass that applied `plan` ended.
    pub fn outcome(&self, plan: &Plan) -> PassOutcome {
        PassOutcome::of(self.interrupted, self.failed, plan.needs_attention())
    }
}

/// What the caller of [`apply`] steers and hears: `stop` is asked before each change;
/// `progress` is told (done, total) after each one (the CLI's progress line); `trigger`
/// (the controller's passes: `timer`, `directory`, `fast-path`...) goes into the pass's
/// audit line.
#[derive(Clone, Copy)]
pub struct Control<'a> {
    pub stop: &'a (dyn Fn() -> bool + Sync),
    pub progress: &'a (dyn Fn(usize, usize) + Sync),
    pub trigger: Option<&'a str>,
}

impl<'a> Control<'a> {
    /// A stop check and no progress report.
    pub fn stop_only(stop: &'a (dyn Fn() -> bool + Sync)) -> Control<'a> {
        Control {
            stop,
            progress: &|_, _| {},
            trigger: None,
        }
    }
}

/// Applies a plan, writing one audit line per change and one for the pass.
///
/// Accounts are applied in parallel (up to `accounts.concurrency`), each on its own, so a
/// slow or failing account holds no other back. In each account, phases run one after the
/// other; within a phase, independent resources are written in parallel (bounded per
/// service by `aws.writeConcurrency`), each resource's changes in order, and one Lambda
/// function's writes one after another. `stop` is asked before each
/// change; once it says yes, the changes under way finish and the rest are recorded as
/// skipped, so nothing is half-applied untracked. Outcomes are reported in plan order.
pub async fn apply<E: Executor + ?Sized>(
    plan: &Plan,
    aws: &E,
    audit: &tokio::sync::Mutex<AuditLog>,
    actor: &Actor,
    policy_revision: Option<&Revision>,
    control: Control<'_>,
) -> Result<Report, Error> {
    let run = Run {
        aws,
        audit,
        actor,
        policy_revision,
        stop: control.stop,
        progress: control.progress,
        done: std::sync::atomic::AtomicUsize::new(0),
        total: plan.changes.len(),
        interrupted: AtomicBool::new(false),
        failed_resources: Mutex::new(BTreeSet::new()),
        revision_used: Mutex::new(BTreeSet::new()),
        cutoff: plan.cutoff,
    };
    let mut accounts: BTreeMap<&str, Vec<(usize, &Change)>> = BTreeMap::new();
    for (i, c) in plan.changes.iter().enumerate() {
        accounts
            .entry(c.account.as_deref().unwrap_or_default())
            .or_default()
            .push((i, c));
    }
    // Made first, then run: the pass's future stays `Send` ([`crate::ports::try_at_once`]).
    let accounts: Vec<_> = accounts.into_values().map(|c| run.account(c)).collect();
    let done: Vec<Vec<(usize, ChangeOutcome)>> = stream::iter(accounts)
        .buffer_unordered(aws.parallel_accounts().max(1))
        .try_collect()
        .await?;
    let mut outcomes: Vec<(usize, ChangeOutcome)> = done.into_iter().flatten().collect();
    outcomes.sort_by_key(|(i, ..)| *i);
    let mut report = Report {
        interrupted: run.interrupted.load(Ordering::SeqCst),
        ..Report::default()
    };
    for (_, done) in outcomes {
        match &done.outcome {
            Outcome::Ok(_) => report.applied += 1,
            Outcome::Failed(_) => report.failed += 1,
            Outcome::Skipped { .. } => report.skipped += 1,
        }
        report.outcomes.push(done);
    }
    let outcome = report.outcome(plan);
    let held = plan
        .held
        .iter()
        .map(|h| HeldRecord {
            action: h.change.action.name().to_string(),
            target: h.change.resource.clone(),
            mapping: h.change.mapping.clone(),
            members_removed: h.change.members_removed.clone(),
            hold: h.held.clone(),
        })
        .collect();
    run.audit.lock().await.append(&Record::Pass(PassRecord {
        actor: actor.clone(),
        trigger: control.trigger.map(str::to_string),
        policy_revision: policy_revision.map(|r| r.commit.clone()),
        policy_author: policy_revision.and_then(|r| r.author.clone()),
        outcome,
        applied: report.applied,
        failed: report.failed,
        skipped: report.skipped,
        held,
        problems: plan.problems.len(),
        error: None,
    }))?;
    Ok(report)
}

/// One apply, shared by its lanes.
struct Run<'a, E: ?Sized> {
    aws: &'a E,
    /// Appends are one at a time, so the hash chain stays whole; the log may be shared
    /// with another writer of this process (the controller's fast path), each record
    /// locked on its own.
    audit: &'a tokio::sync::Mutex<AuditLog>,
    actor: &'a Actor,
    policy_revision: Option<&'a Revision>,
    stop: &'a (dyn Fn() -> bool + Sync),
    progress: &'a (dyn Fn(usize, usize) + Sync),
    /// Changes done so far, of `total`.
    done: std::sync::atomic::AtomicUsize,
    total: usize,
    interrupted: AtomicBool,
    /// Resources a change failed on: their later changes are skipped.
    failed_resources: Mutex<BTreeSet<Arn>>,
    /// Lambda's RevisionId guards the first write to each function against changes made
    /// since the plan was read; later writes are ours and would carry a stale id.
    revision_used: Mutex<BTreeSet<String>>,
    /// The session cut-off the plan proposed, moved to each denial's write.
    cutoff: Option<crate::plan::Cutoff>,
}

impl<E: Executor + ?Sized> Run<'_, E> {
    /// One account's changes: phases one after the other (the plan is sorted by phase);
    /// within a phase, lanes in parallel: one lane per resource, one per Lambda function
    /// (its RevisionId chain).
    async fn account(
        &self,
        changes: Vec<(usize, &Change)>,
    ) -> Result<Vec<(usize, ChangeOutcome)>, Error> {
        let mut outcomes = Vec::new();
        for phase in changes.chunk_by(|a, b| a.1.action.phase() == b.1.action.phase()) {
            let mut lanes: BTreeMap<String, Vec<(usize, &Change)>> = BTreeMap::new();
            for (i, c) in phase {
                let lane = c.action.lambda_function().map_or_else(
                    || c.resource.to_string(),
                    |f| format!("lambda:{}:{f}", c.region.as_deref().unwrap_or_default()),
                );
                lanes.entry(lane).or_default().push((*i, *c));
            }
            let lanes: Vec<_> = lanes.into_values().map(|lane| self.lane(lane)).collect();
            let done: Vec<Vec<(usize, ChangeOutcome)>> = stream::iter(lanes)
                .buffer_unordered(self.aws.write_slots())
                .try_collect()
                .await?;
            outcomes.extend(done.into_iter().flatten());
        }
        Ok(outcomes)
    }

    /// One lane's changes, in order, each recorded once done.
    async fn lane(
        &self,
        lane: Vec<(usize, &Change)>,
    ) -> Result<Vec<(usize, ChangeOutcome)>, Error> {
        let mut out = Vec::new();
        for (i, change) in lane {
            let name = change.action.name();
            if !self.interrupted.load(Ordering::SeqCst) && (self.stop)() {
                self.interrupted.store(true, Ordering::SeqCst);
                tracing::warn!("stop requested; the remaining changes are left for the next pass");
            }
            let failed_before = self
                .failed_resources
                .lock()
                .expect("failed resources")
                .contains(&change.resource);
            let mut intent_line = None;
            let restamped = self.at_the_write(change);
            let change = restamped.as_ref().unwrap_or(change);
            let outcome = if self.interrupted.load(Ordering::SeqCst) {
                Outcome::Skipped {
                    reason: "shutting down; left for the next pass".into(),
                }
            } else if failed_before && !change.action.is_revocation() {
                Outcome::Skipped {
                    reason: "an earlier change to this resource failed".into(),
                }
            } else {
                // Write-ahead: the intent is on disk before AWS is asked.
                intent_line = Some(self.audit.lock().await.append(&Record::Intent(Intent {
                    actor: self.actor.clone(),
                    intent: change.action.clone(),
                    target: change.resource.clone(),
                    mapping: change.mapping.clone(),
                }))?);
                match self.aws.execute(change, self.use_revision(change)).await {
                    Ok(w) => Outcome::Ok(w),
                    Err(f) if f.is_superseded() => Outcome::Skipped { reason: f.message },
                    Err(f) => {
                        tracing::error!(action = %name, resource = %change.resource, error = %f, "change failed");
                        self.failed_resources
                            .lock()
                            .expect("failed resources")
                            .insert(change.resource.clone());
                        Outcome::Failed(f)
                    }
                }
            };
            let record = ChangeRecord::of(
                change,
                self.actor,
                self.policy_revision,
                intent_line,
                outcome.clone(),
            );
            self.audit
                .lock()
                .await
                .append(&Record::Change(Box::new(record)))?;
            out.push((i, ChangeOutcome::of(change, outcome)));
            let done = self.done.fetch_add(1, Ordering::SeqCst) + 1;
            (self.progress)(done, self.total);
        }
        Ok(out)
    }

    /// The change as written now: a session denial the plan proposed with its cut-off
    /// at the plan's time plus the margin carries instead the time of this write plus the
    /// margin (never earlier than proposed), so that reads, queues and retries between
    /// planning and writing never open a window in which a departed principal can mint a
    /// session nothing denies. `None`: nothing to move.
    fn at_the_write(&self, change: &Change) -> Option<Change> {
        let cutoff = self.cutoff?;
        let fresh = crate::model::clock::unix_seconds() + cutoff.margin;
        if fresh <= cutoff.proposed {
            return None;
        }
        let mut action = serde_json::to_value(&change.action).ok()?;
        if !crate::plan::sessions::restamp(&mut action, cutoff.proposed, fresh) {
            return None;
        }
        let mut c = change.clone();
        c.action = serde_json::from_value(action).ok()?;
        if let Some(after) = c.after.as_mut() {
            crate::plan::sessions::restamp(after, cutoff.proposed, fresh);
        }
        c.reason = c.reason.replace(
            &crate::plan::sessions::rfc3339(cutoff.proposed),
            &crate::plan::sessions::rfc3339(fresh),
        );
        Some(c)
    }

    fn use_revision(&self, change: &Change) -> bool {
        let mut used = self.revision_used.lock().expect("revisions");
        let function = |name: &str| {
            format!(
                "{}:{}:{name}",
                change.account.as_deref().unwrap_or_default(),
                change.region.as_deref().unwrap_or_default()
            )
        };
        match &change.action {
            Action::Lambda(LambdaAction::AddLambdaPermission { function_name, .. })
            | Action::Lambda(LambdaAction::SetExecutionRole { function_name, .. }) => {
                used.insert(function(function_name))
            }
            // A removal carries no RevisionId: it touches only its own statement, and an
            // unrelated change to the policy must not fail a revocation. It does change the
            // revision, so later writes to the function go without one.
            Action::Lambda(LambdaAction::RemoveLambdaPermission { function_name, .. }) => {
                used.insert(function(function_name));
                false
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::call::{Failure, Written};
    use crate::plan::IamAction;
    use serde_json::json;
    use std::collections::BTreeMap;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    /// Records what it was asked to do; fails the actions whose target it was told to;
    /// takes 10 ms (paused time) per write so that concurrency shows.
    struct FakeAws {
        slots: usize,
        /// Accounts written at once.
        accounts: usize,
        /// An account whose every write takes a second.
        slow: Option<String>,
        fail_on: BTreeSet<String>,
        done: Mutex<Vec<String>>,
        in_flight: AtomicUsize,
        most_in_flight: AtomicUsize,
    }

    impl FakeAws {
        fn new(slots: usize, fail_on: &[&str]) -> FakeAws {
            FakeAws {
                slots,
                accounts: 1,
                slow: None,
                fail_on: fail_on.iter().map(|s| s.to_string()).collect(),
                done: Mutex::new(Vec::new()),
                in_flight: AtomicUsize::new(0),
                most_in_flight: AtomicUsize::new(0),
            }
        }

        fn done(&self) -> Vec<String> {
            self.done.lock().unwrap().clone()
        }
    }

    fn target(action: &Action) -> String {
        match action {
            Action::Iam(IamAction::RevokeTrust { role_name, .. })
            | Action::Iam(IamAction::UpdateTrustPolicy { role_name, .. })
            | Action::Iam(IamAction::TagRole { role_name, .. })
            | Action::Iam(IamAction::AttachManagedPolicy { role_name, .. }) => {
                role_name.to_string()
            }
            Action::Lambda(LambdaAction::AddLambdaPermission { function_name, .. })
            | Action::Lambda(LambdaAction::RemoveLambdaPermission { function_name, .. }) => {
                function_name.clone()
            }
            other => panic!("the fake does not do {other:?}"),
        }
    }

    #[async_trait::async_trait]
    impl Executor for FakeAws {
        fn write_slots(&self) -> usize {
            self.slots
        }

        fn parallel_accounts(&self) -> usize {
            self.accounts
        }

        async fn execute(&self, change: &Change, use_revision: bool) -> Result<Written, Failure> {
            let action = &change.action;
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_in_flight.fetch_max(now, Ordering::SeqCst);
            let ms = if self.slow.is_some() && self.slow == change.account {
                1000
            } else {
                10
            };
            tokio::time::sleep(Duration::from_millis(ms)).await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            let what = format!(
                "{} {}{}",
                action.name(),
                target(action),
                if use_revision { " (revision)" } else { "" }
            );
            self.done.lock().unwrap().push(what);
            if self
                .fail_on
                .contains(&format!("{} {}", action.name(), target(action)))
            {
                return Err(Failure::access_denied("UpdateAssumeRolePolicy"));
            }
            Ok(Written::default())
        }
    }

    fn trust(role: &str) -> Change {
        let a = Action::Iam(IamAction::UpdateTrustPolicy {
            role_name: role.into(),
            trust_policy: json!({}),
        });
        Change::new(a, format!("arn:aws:iam::1:role/{role}"), Some(role), "t")
    }

    fn revoke(role: &str) -> Change {
        let a = Action::Iam(IamAction::RevokeTrust {
            role_name: role.into(),
            trust_policy: json!({}),
            baseline: None,
        });
        Change::new(a, format!("arn:aws:iam::1:role/{role}"), Some(role), "r")
    }

    fn tag(role: &str) -> Change {
        let a = Action::Iam(IamAction::TagRole {
            role_name: role.into(),
            tags: BTreeMap::new(),
        });
        Change::new(a, format!("arn:aws:iam::1:role/{role}"), Some(role), "t")
    }

    fn attach(role: &str) -> Change {
        let a = Action::Iam(IamAction::AttachManagedPolicy {
            role_name: role.into(),
            policy_arn: "arn:aws:iam::aws:policy/ReadOnlyAccess".into(),
        });
        Change::new(a, format!("arn:aws:iam::1:role/{role}"), Some(role), "a")
    }

    fn add_permission(function: &str, sid: &str) -> Change {
        let a = Action::Lambda(LambdaAction::AddLambdaPermission {
            function_name: function.into(),
            qualifier: None,
            statement_id: sid.into(),
            principal: "arn:aws:iam::1:role/r".into(),
            lambda_action: "lambda:InvokeFunction".into(),
            source_arn: None,
            source_account: None,
            revision_id: Some("rev-1".into()),
        });
        Change::new(
            a,
            format!("arn:aws:lambda:eu-west-1:1:function:{function}"),
            None,
            "p",
        )
    }

    fn remove_permission(function: &str, sid: &str) -> Change {
        let a = Action::Lambda(LambdaAction::RemoveLambdaPermission {
            function_name: function.into(),
            qualifier: None,
            statement_id: sid.into(),
        });
        Change::new(
            a,
            format!("arn:aws:lambda:eu-west-1:1:function:{function}"),
            None,
            "p",
        )
    }

    fn plan_of(mut changes: Vec<Change>) -> Plan {
        changes.sort_by_key(|c| c.action.phase());
        Plan {
            changes,
            ..Plan::default()
        }
    }

    struct Applied {
        report: Report,
        audit: Vec<serde_json::Value>,
        _dir: tempfile::TempDir,
    }

    async fn run(plan: &Plan, aws: &FakeAws, stop: &(dyn Fn() -> bool + Sync)) -> Applied {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let audit = tokio::sync::Mutex::new(AuditLog::open(&path).unwrap());
        let actor = Actor {
            instance: "test/1".into(),
            aws_caller: "arn:aws:iam::1:user/t".into(),
            entra_app_id: None,
        };
        let revision = Revision {
            commit: "abc123".into(),
            author: Some("Dana Ops <dana@example.com>".into()),
        };
        let report = apply(
            plan,
            aws,
            &audit,
            &actor,
            Some(&revision),
            Control::stop_only(stop),
        )
        .await
        .unwrap();
        crate::audit::verify(&path).expect("the chain stays whole under parallel appends");
        let audit = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        Applied {
            report,
            audit,
            _dir: dir,
        }
    }

    fn outcome_names(r: &Report) -> Vec<String> {
        r.outcomes
            .iter()
            .map(|d| {
                let (name, resource) = (&d.action, &d.resource);
                let o = match d.outcome {
                    Outcome::Ok(_) => "ok",
                    Outcome::Failed(_) => "failed",
                    Outcome::Skipped { .. } => "skipped",
                };
                format!("{name} {} {o}", resource.rsplit('/').next().unwrap())
            })
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn revocations_go_first_and_outcomes_come_in_plan_order() {
        let aws = FakeAws::new(4, &[]);
        let plan = plan_of(vec![trust("a"), attach("a"), revoke("b"), tag("b")]);
        let a = run(&plan, &aws, &|| false).await;
        // Tags first (an adopted role is marked as trustsync's before anything else), then
        // the revocation, before any grant.
        assert_eq!(aws.done()[..2], ["tag-role b", "revoke-trust b"]);
        assert_eq!(
            outcome_names(&a.report),
            plan.changes
                .iter()
                .map(|c| format!(
                    "{} {} ok",
                    c.action.name(),
                    c.resource.rsplit('/').next().unwrap()
                ))
                .collect::<Vec<_>>()
        );
        assert!(a.report.success());
        assert_eq!(
            (a.report.applied, a.report.failed, a.report.skipped),
            (4, 0, 0)
        );
        // Write-ahead: each change's intent is on disk before it, its outcome after; then
        // the pass. Every outcome names its intent, actor and policy revision.
        assert_eq!(a.audit.len(), 9);
        let changes: Vec<&serde_json::Value> =
            a.audit.iter().filter(|l| l["type"] == "change").collect();
        assert_eq!(changes.len(), 4);
        for (n, line) in a.audit.iter().enumerate() {
            if line["type"] != "change" {
                continue;
            }
            let intent = line["intentLine"].as_u64().unwrap() as usize;
            assert!(intent < n + 1, "the intent comes first");
            assert_eq!(a.audit[intent - 1]["type"], "intent");
            assert_eq!(a.audit[intent - 1]["target"], line["target"]);
            assert_eq!(a.audit[intent - 1]["intent"]["action"], line["action"]);
            assert_eq!(line["actor"]["instance"], "test/1");
            assert_eq!(line["policyRevision"], "abc123");
            assert_eq!(line["policyAuthor"], "Dana Ops <dana@example.com>");
        }
        assert_eq!(a.audit[8]["type"], "pass");
        assert_eq!(a.audit[8]["outcome"], "success");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_skips_the_rest_of_its_resource_but_never_a_revocation() {
        // The tag write on `a` fails first (phase 1); its later changes are skipped except
        // the revocation, and role `b` goes on.
        let aws = FakeAws::new(4, &["tag-role a"]);
        let plan = plan_of(vec![
            tag("a"),
            revoke("a"),
            attach("a"),
            trust("b"),
            tag("b"),
        ]);
        let a = run(&plan, &aws, &|| false).await;
        let got = outcome_names(&a.report);
        assert!(got.contains(&"tag-role a failed".to_string()), "{got:?}");
        assert!(got.contains(&"revoke-trust a ok".to_string()), "{got:?}");
        assert!(
            got.contains(&"attach-managed-policy a skipped".to_string()),
            "{got:?}"
        );
        assert!(
            got.contains(&"update-trust-policy b ok".to_string()),
            "{got:?}"
        );
        assert!(got.contains(&"tag-role b ok".to_string()), "{got:?}");
        assert_eq!(
            (a.report.applied, a.report.failed, a.report.skipped),
            (3, 1, 1)
        );
        assert!(!a.report.success());
        assert_eq!(a.audit.last().unwrap()["outcome"], "failed");
        let failed = a
            .audit
            .iter()
            .find(|l| l["action"] == "tag-role" && l["target"].as_str().unwrap().ends_with("/a"))
            .unwrap();
        assert_eq!(failed["result"]["outcome"], "failed");
        assert_eq!(failed["result"]["code"], "AccessDenied");
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_account_holds_no_other_back() {
        let mut aws = FakeAws::new(1, &[]);
        aws.accounts = 2;
        aws.slow = Some("111111111111".into());
        let at = |mut c: Change, account: &str| {
            c.account = Some(account.into());
            c
        };
        let slow = "111111111111";
        let fast = "222222222222";
        let plan = plan_of(vec![
            at(revoke("s"), slow),
            at(tag("s"), slow),
            at(revoke("f"), fast),
            at(trust("f"), fast),
            at(tag("f"), fast),
        ]);
        let started = tokio::time::Instant::now();
        let a = run(&plan, &aws, &|| false).await;
        assert_eq!(a.report.applied, 5);
        let done = aws.done();
        let first_slow = done.iter().position(|d| d.ends_with(" s")).unwrap();
        assert_eq!(
            first_slow, 3,
            "the fast account goes through all its phases while the slow one's first write is under way: {done:?}"
        );
        assert_eq!(
            started.elapsed(),
            Duration::from_secs(2),
            "the slow account's two writes"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn resources_are_written_in_parallel_up_to_the_write_slots() {
        let roles: Vec<String> = (0..12).map(|i| format!("r{i}")).collect();
        for slots in [1, 3, 8] {
            let aws = FakeAws::new(slots, &[]);
            let plan = plan_of(roles.iter().map(|r| trust(r)).collect());
            let a = run(&plan, &aws, &|| false).await;
            assert_eq!(a.report.applied, 12);
            assert_eq!(
                aws.most_in_flight.load(Ordering::SeqCst),
                slots,
                "slots {slots}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn one_functions_writes_go_one_after_another_and_only_the_first_carries_the_revision() {
        let aws = FakeAws::new(8, &[]);
        let plan = plan_of(vec![
            add_permission("api", "s1"),
            add_permission("api", "s2"),
            remove_permission("api", "s0"),
            add_permission("other", "s1"),
        ]);
        let a = run(&plan, &aws, &|| false).await;
        assert_eq!(a.report.applied, 4);
        let api: Vec<String> = aws
            .done()
            .into_iter()
            .filter(|d| d.contains(" api"))
            .collect();
        // The removal goes first and carries no revision (an unrelated policy change must
        // not fail it); it changes the revision, so the additions after it go without.
        assert_eq!(
            api,
            [
                "remove-lambda-permission api",
                "add-lambda-permission api",
                "add-lambda-permission api",
            ]
        );
        assert!(aws
            .done()
            .contains(&"add-lambda-permission other (revision)".to_string()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_request_leaves_the_rest_recorded_as_skipped() {
        let aws = FakeAws::new(1, &[]);
        let plan = plan_of((0..5).map(|i| trust(&format!("r{i}"))).collect());
        let asked = AtomicUsize::new(0);
        let stop = || asked.fetch_add(1, Ordering::SeqCst) >= 2;
        let a = run(&plan, &aws, &stop).await;
        assert!(a.report.interrupted);
        assert_eq!((a.report.applied, a.report.skipped), (2, 3));
        assert_eq!(aws.done().len(), 2, "nothing is written after the stop");
        // Two intents, five outcomes (the untried ones with no intent), the pass.
        assert_eq!(a.audit.len(), 8, "every change is recorded, tried or not");
        let untried = a
            .audit
            .iter()
            .filter(|l| l["type"] == "change" && l.get("intentLine").is_none())
            .count();
        assert_eq!(untried, 3);
        assert_eq!(a.audit[7]["outcome"], "interrupted");
    }
}
