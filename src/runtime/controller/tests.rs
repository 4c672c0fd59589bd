//! The controller's logic against an in-memory AWS: passes, per-change back-off,
//! revocations that are never deferred, `/status` states and the metrics.

use super::*;
use crate::apply::Outcome;
use crate::model::call::{Failure, Written};
use crate::observed::trusted_subjects;
use crate::observed::{FunctionKey, Observed, ObservedProvider, ObservedRole};
use crate::plan::{Action, Change, IamAction};
use crate::ports::AwsApi;
use crate::ports::Executor;
use crate::ports::Observe;
use crate::runtime::status::{self, MappingState};
use std::collections::BTreeMap;

const ACCOUNT: &str = "123456789012";

/// A small AWS: applies the actions these tests plan to its state, and fails the
/// actions it is told to (by action name and role).
#[derive(Default)]
struct FakeAws {
    state: Mutex<Observed>,
    fail: Mutex<BTreeSet<String>>,
    done: Mutex<Vec<String>>,
}

impl FakeAws {
    fn fail(&self, what: &str) {
        self.fail.lock().unwrap().insert(what.into());
    }

    fn heal(&self) {
        self.fail.lock().unwrap().clear();
    }

    fn take_done(&self) -> Vec<String> {
        std::mem::take(&mut *self.done.lock().unwrap())
    }

    fn trusted(&self, role: &str) -> BTreeSet<String> {
        trusted_subjects(&self.state.lock().unwrap().roles[role].trust)
    }
}

#[async_trait::async_trait]
impl Observe for FakeAws {
    fn region(&self) -> &str {
        "eu-west-1"
    }

    async fn observe(
        &self,
        _iam: bool,
        _role_path: &str,
        _functions: &[FunctionKey],
        _function_tag_key: &str,
    ) -> Result<Observed, Failure> {
        Ok(self.state.lock().unwrap().clone())
    }
}

#[async_trait::async_trait]
impl Executor for FakeAws {
    fn write_slots(&self) -> usize {
        4
    }

    // Long on purpose: one arm per action the fake models.
    async fn execute(&self, change: &Change, _: bool) -> Result<Written, Failure> {
        let action = &change.action;
        let mut st = self.state.lock().unwrap();
        let role = |st: &mut Observed, name: &str| {
            st.roles
                .get_mut(&name.to_ascii_lowercase())
                .expect("role exists")
                .clone()
        };
        let target = match action {
            Action::Iam(IamAction::CreateOidcProvider {
                url,
                client_ids,
                tags,
                ..
            }) => {
                let url = url.trim_start_matches("https://").to_string();
                st.providers.push(ObservedProvider {
                    arn: format!("arn:aws:iam::{ACCOUNT}:oidc-provider/{url}"),
                    url: url.clone(),
                    client_ids: client_ids.iter().cloned().collect(),
                    tags: tags.clone(),
                });
                url
            }
            Action::Iam(IamAction::CreateRole {
                role_name,
                path,
                trust_policy,
                description,
                max_session_duration,
                tags,
                ..
            }) => {
                st.roles.insert(
                    role_name.to_ascii_lowercase(),
                    ObservedRole {
                        name: role_name.clone(),
                        path: path.clone(),
                        arn: format!("arn:aws:iam::{ACCOUNT}:role{path}{role_name}"),
                        trust: trust_policy.clone(),
                        description: description.clone(),
                        max_session_duration: Some(*max_session_duration),
                        permissions_boundary: None,
                        inline_policies: BTreeMap::new(),
                        managed_policies: BTreeSet::new(),
                        tags: tags.clone(),
                    },
                );
                role_name.to_string()
            }
            Action::Iam(IamAction::RevokeTrust {
                role_name,
                trust_policy,
                ..
            })
            | Action::Iam(IamAction::UpdateTrustPolicy {
                role_name,
                trust_policy,
            }) => {
                if !self
                    .fail
                    .lock()
                    .unwrap()
                    .contains(&format!("{} {role_name}", action.name()))
                {
                    let mut r = role(&mut st, role_name);
                    r.trust = trust_policy.clone();
                    st.roles.insert(role_name.to_ascii_lowercase(), r);
                }
                role_name.to_string()
            }
            Action::Iam(IamAction::RevokeSessions {
                role_name,
                document,
            }) => {
                let mut r = role(&mut st, role_name);
                r.inline_policies
                    .insert(crate::plan::SESSIONS_POLICY.into(), document.clone());
                st.roles.insert(role_name.to_ascii_lowercase(), r);
                role_name.to_string()
            }
            Action::Iam(IamAction::PutInlinePolicy {
                role_name,
                policy_name,
                document,
            }) => {
                let mut r = role(&mut st, role_name);
                r.inline_policies
                    .insert(policy_name.clone(), document.clone());
                st.roles.insert(role_name.to_ascii_lowercase(), r);
                role_name.to_string()
            }
            Action::Iam(IamAction::DeleteInlinePolicy {
                role_name,
                policy_name,
            }) => {
                let mut r = role(&mut st, role_name);
                r.inline_policies.remove(policy_name);
                st.roles.insert(role_name.to_ascii_lowercase(), r);
                role_name.to_string()
            }
            Action::Iam(IamAction::TagRole { role_name, tags }) => {
                let mut r = role(&mut st, role_name);
                r.tags.extend(tags.clone());
                st.roles.insert(role_name.to_ascii_lowercase(), r);
                role_name.to_string()
            }
            other => panic!("the fake does not do {other:?}"),
        };
        let what = format!("{} {target}", action.name());
        self.done.lock().unwrap().push(what.clone());
        if self.fail.lock().unwrap().contains(&what) {
            return Err(Failure::access_denied("UpdateAssumeRolePolicy"));
        }
        Ok(Written::default())
    }
}

impl AwsApi for FakeAws {
    fn stats(&self) -> CallStats {
        CallStats::default()
    }
}

const POLICIES: &str = "\
apiVersion: trustsync.dev/v1alpha1
kind: IdentityProvider
metadata: {name: entra}
spec: {tenantId: 00000000-0000-0000-0000-0000000000aa, audiences: [api://aws]}
---
apiVersion: trustsync.dev/v1alpha1
kind: RoleMapping
metadata: {name: deployers}
spec: {provider: entra, group: {id: 00000000-0000-0000-0000-000000000001}, role: {name: deployer}}
---
apiVersion: trustsync.dev/v1alpha1
kind: RoleMapping
metadata: {name: readers}
spec: {provider: entra, group: {id: 00000000-0000-0000-0000-000000000002}, role: {name: reader}}
";

fn sp(n: u8) -> String {
    format!("00000000-0000-0000-0000-0000000001{n:02}")
}

/// Group 1 (deployers) and group 2 (readers) with these service principals.
fn write_tenant(path: &std::path::Path, deployers: &[u8], readers: &[u8]) {
    let sps: Vec<_> = (1..=6).map(|n| serde_json::json!({"id": sp(n)})).collect();
    let group = |id: u8, members: &[u8]| {
        serde_json::json!({
            "id": format!("00000000-0000-0000-0000-00000000000{id}"),
            "displayName": format!("g{id}"),
            "members": members.iter().map(|n| sp(*n)).collect::<Vec<_>>(),
        })
    };
    let tenant = serde_json::json!({
        "tenantId": "00000000-0000-0000-0000-0000000000aa",
        "groups": [group(1, deployers), group(2, readers)],
        "servicePrincipals": sps,
    });
    std::fs::write(path, tenant.to_string()).unwrap();
}

struct Bench {
    ctl: Controller,
    aws: Arc<FakeAws>,
    policies: PolicySet,
    directory: tokio::sync::Mutex<DirectorySource>,
    audit: Arc<tokio::sync::Mutex<AuditLog>>,
    tenant: PathBuf,
    stop: (watch::Sender<bool>, watch::Receiver<bool>),
    _dir: tempfile::TempDir,
}

fn bench() -> Bench {
    let dir = tempfile::tempdir().unwrap();
    let policy_dir = dir.path().join("policies");
    std::fs::create_dir(&policy_dir).unwrap();
    std::fs::write(policy_dir.join("p.yaml"), POLICIES).unwrap();
    let tenant = dir.path().join("tenant.json");
    write_tenant(&tenant, &[1, 2], &[3]);
    let config = Config {
        allow_unbounded_roles: true,
        ..Config::default()
    };
    let policies = policy::load_dir(&policy_dir, &config.limits).unwrap();
    let shared = Arc::new(Shared::new(policy_dir, &policies, Duration::from_secs(60)));
    let aws = Arc::new(FakeAws::default());
    let caller = CallerIdentity {
        account: ACCOUNT.into(),
        arn: format!("arn:aws:iam::{ACCOUNT}:role/trustsync"),
    };
    let account = crate::model::account::Account {
        id: ACCOUNT.into(),
        labels: Default::default(),
        regions: vec!["eu-west-1".into()],
        role_arn: None,
        external_id: None,
    };
    let ctl = Controller::new(
        config,
        Fleet::single(account, aws.clone()),
        caller,
        shared,
        Arc::new(Mutex::new(Vec::new())),
        Arc::new(Mutex::new(Some(Default::default()))),
    );
    Bench {
        ctl,
        aws,
        policies,
        directory: tokio::sync::Mutex::new(DirectorySource::File(tenant.clone())),
        audit: Arc::new(tokio::sync::Mutex::new(
            AuditLog::open(&dir.path().join("audit.jsonl")).unwrap(),
        )),
        tenant,
        stop: watch::channel(false),
        _dir: dir,
    }
}

impl Bench {
    async fn pass(&mut self) -> bool {
        self.ctl
            .pass(
                Trigger::Timer,
                &self.policies,
                &self.directory,
                &self.audit,
                &self.stop.1,
                Scope::Fleet,
            )
            .await
    }

    /// A membership fast pass over these mappings.
    async fn fast_pass(&mut self, focus: &[&str]) -> bool {
        let focus: BTreeSet<String> = focus.iter().map(|s| s.to_string()).collect();
        self.ctl
            .pass(
                Trigger::Directory,
                &self.policies,
                &self.directory,
                &self.audit,
                &self.stop.1,
                Scope::of(Some(&focus), Some(&self.ctl.writes)),
            )
            .await
    }

    fn status(&self) -> status::StatusDoc {
        self.ctl.shared.status.lock().unwrap().clone()
    }

    fn state_of(&self, mapping: &str) -> (MappingState, String) {
        let st = self.status();
        let m = &st.mappings[mapping];
        (m.state, m.reason.clone())
    }
}

#[tokio::test(start_paused = true)]
async fn a_converged_pass_succeeds_and_writes_nothing() {
    let mut b = bench();
    assert!(b.pass().await);
    assert_eq!(b.aws.trusted("deployer"), [sp(1), sp(2)].into());
    b.aws.take_done();
    assert!(b.pass().await);
    assert!(b.aws.take_done().is_empty());
    let st = b.status();
    assert_eq!(st.last_pass.unwrap().outcome, PassOutcome::Success);
    assert_eq!(b.state_of("deployers").0, MappingState::Ready);
    assert_eq!(st.mappings["entra"].kind, "IdentityProvider");
}

#[tokio::test]
async fn a_fast_pass_changes_only_the_trust_and_sessions_of_the_mappings_in_focus() {
    let mut b = bench();
    assert!(b.pass().await);
    // deployers loses sp 2, readers gains sp 4: only deployers is in focus.
    write_tenant(&b.tenant, &[1], &[3, 4]);
    b.aws.take_done();
    assert!(b.fast_pass(&["deployers"]).await);
    let mut done = b.aws.take_done();
    done.sort();
    assert_eq!(done, ["revoke-sessions deployer", "revoke-trust deployer"]);
    assert_eq!(b.aws.trusted("deployer"), [sp(1)].into());
    assert_eq!(
        b.aws.trusted("reader"),
        [sp(3)].into(),
        "not in focus: left to the full pass"
    );
    // The full pass then does the rest, and nothing twice.
    assert!(b.pass().await);
    assert_eq!(b.aws.take_done(), ["update-trust-policy reader"]);
}

#[tokio::test]
async fn a_member_who_returns_is_trusted_again_and_keeps_its_session_denial() {
    let mut b = bench();
    assert!(b.pass().await);
    write_tenant(&b.tenant, &[1], &[3]);
    assert!(b.fast_pass(&["deployers"]).await);
    b.aws.take_done();
    write_tenant(&b.tenant, &[1, 2], &[3]);
    assert!(b.fast_pass(&["deployers"]).await);
    let mut done = b.aws.take_done();
    done.sort();
    assert_eq!(
        done,
        ["put-inline-policy deployer", "update-trust-policy deployer"],
        "trusted again at once; its denial stays (sessions from before it never act again), its cut-off brought back to now"
    );
    assert!(b.pass().await);
    assert!(
        b.aws.take_done().is_empty(),
        "nothing left for the full pass"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failing_grant_waits_its_back_off_while_a_failing_revocation_is_tried_every_pass() {
    let mut b = bench();
    assert!(b.pass().await);
    // deployers loses sp 2 (a revocation), readers gains sp 4 (a grant); both fail.
    write_tenant(&b.tenant, &[1], &[3, 4]);
    b.aws.fail("revoke-trust deployer");
    b.aws.fail("update-trust-policy reader");
    b.aws.take_done();
    assert!(!b.pass().await);
    let mut tried = b.aws.take_done();
    tried.sort();
    assert_eq!(
        tried,
        [
            "revoke-sessions deployer",
            "revoke-trust deployer",
            "update-trust-policy reader"
        ],
        "the live sessions are denied even while the trust write fails"
    );
    assert_eq!(b.state_of("deployers").0, MappingState::Error);
    assert_eq!(b.state_of("readers").0, MappingState::Error);
    assert_eq!(b.status().last_pass.unwrap().outcome, PassOutcome::Failed);
    let account = &b.status().accounts[0];
    assert_eq!((account.account.id.as_str(), account.failed), (ACCOUNT, 2));
    assert!(account.account.unreachable.is_none());

    // At once again: the grant waits out its back-off, the revocation does not wait.
    assert!(!b.pass().await);
    assert_eq!(b.aws.take_done(), ["revoke-trust deployer"]);
    let (state, reason) = b.state_of("readers");
    assert_eq!(state, MappingState::Drifted, "{reason}");
    assert!(
        reason.contains("held (backoff)") && reason.contains("denied"),
        "{reason}"
    );

    // AWS recovers: the revocation lands at once; the grant after its delay.
    b.aws.heal();
    assert!(b.pass().await, "a pass with only back-off holds succeeds");
    assert_eq!(b.aws.take_done(), ["revoke-trust deployer"]);
    assert_eq!(b.aws.trusted("deployer"), [sp(1)].into());
    assert_eq!(b.aws.trusted("reader"), [sp(3)].into());
    let denials = &b.status().mappings["deployers"].session_denials;
    assert_eq!(
        denials
            .iter()
            .map(|d| d.principal.clone())
            .collect::<Vec<_>>(),
        [Some(sp(2).to_string())],
        "/status shows whose live sessions the role denies"
    );
    tokio::time::advance(Duration::from_secs(10)).await;
    assert!(b.pass().await);
    assert_eq!(b.aws.take_done(), ["update-trust-policy reader"]);
    assert_eq!(b.aws.trusted("reader"), [sp(3), sp(4)].into());
    assert!(
        b.ctl.backoffs.lock().unwrap().is_empty(),
        "a success forgets the back-off"
    );
    assert_eq!(b.state_of("readers").0, MappingState::Ready);
}

#[tokio::test(start_paused = true)]
async fn a_revocation_over_the_limit_is_held_and_the_mapping_is_blocked() {
    let mut b = bench();
    write_tenant(&b.tenant, &[1, 2, 5, 6], &[3]);
    assert!(b.pass().await);
    write_tenant(&b.tenant, &[1], &[3]);
    b.aws.take_done();
    assert!(
        b.pass().await,
        "held changes wait for a person; the pass did the rest"
    );
    assert!(b.aws.take_done().is_empty());
    assert_eq!(b.status().last_pass.unwrap().outcome, PassOutcome::Held);
    let (state, reason) = b.state_of("deployers");
    assert_eq!(state, MappingState::Blocked);
    assert!(reason.contains("mapping-removal-limit"), "{reason}");
    assert_eq!(b.state_of("readers").0, MappingState::Ready);
    assert_eq!(b.aws.trusted("deployer").len(), 4);
}

#[tokio::test(start_paused = true)]
async fn a_stop_request_interrupts_the_pass_and_marks_untried_mappings_drifted() {
    let mut b = bench();
    b.stop.0.send(true).unwrap();
    assert!(!b.pass().await);
    assert!(
        b.aws.take_done().is_empty(),
        "nothing is written once stopping"
    );
    assert_eq!(
        b.status().last_pass.unwrap().outcome,
        PassOutcome::Interrupted
    );
    let (state, reason) = b.state_of("deployers");
    assert_eq!(state, MappingState::Drifted);
    assert!(reason.contains("shutting down"), "{reason}");
}

#[tokio::test(start_paused = true)]
async fn a_failed_pass_is_retried_after_its_back_off_and_triggers_coalesce() {
    let b = bench();
    std::fs::write(&b.tenant, "{ not json").unwrap();
    let shared = b.ctl.shared.clone();
    let (tx, rx) = mpsc::channel(16);
    let (stop_tx, stop_rx) = watch::channel(false);
    let looping = b.ctl.run_passes(
        Triggers {
            rx,
            interval: Duration::from_secs(3600),
            stop: stop_rx,
        },
        Arc::new(Mutex::new(Arc::new(b.policies))),
        Arc::new(b.directory),
        b.audit,
    );
    let (tenant, aws) = (b.tenant.clone(), b.aws.clone());
    let script = async move {
        let last = || shared.status.lock().unwrap().last_pass.clone().unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(last().trigger, Trigger::Startup);
        assert_eq!(last().outcome, PassOutcome::Failed);

        // Repaired: the retry comes after the back-off (2 s, jittered), not the
        // hour-long timer.
        write_tenant(&tenant, &[1, 2], &[3]);
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert_eq!(last().trigger, Trigger::Retry);
        assert_eq!(last().outcome, PassOutcome::Success);
        assert_eq!(aws.trusted("deployer"), [sp(1), sp(2)].into());

        // A burst of triggers is served by one pass (the rest are drained).
        write_tenant(&tenant, &[1], &[3]);
        for _ in 0..5 {
            tx.send(Trigger::Directory).await.unwrap();
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(last().trigger, Trigger::Directory);
        assert_eq!(aws.trusted("deployer"), [sp(1)].into());
        let passes = |outcome: &str| {
            shared
                .metrics
                .passes
                .get_or_create(&OutcomeLabel {
                    outcome: outcome.into(),
                })
                .get()
        };
        // Startup (failed), the retry, one pass for the five triggers.
        assert_eq!((passes("failed"), passes("success")), (1, 2));
        stop_tx.send(true).unwrap();
    };
    tokio::time::timeout(Duration::from_secs(60), async {
        tokio::join!(looping, script);
    })
    .await
    .expect("the loop ends on stop");
}

#[tokio::test(start_paused = true)]
async fn a_failed_read_fails_the_pass_and_changes_nothing() {
    let mut b = bench();
    std::fs::write(&b.tenant, "{ not json").unwrap();
    assert!(!b.pass().await);
    assert!(b.aws.take_done().is_empty());
    let last = b.status().last_pass.unwrap();
    assert_eq!(last.outcome, PassOutcome::Failed);
    assert!(
        last.error.unwrap().contains("tenant"),
        "the error names its source"
    );
    assert!(b.status().last_success_at.is_none());
}

/// A release is used up only by a pass that applied the document's changes: one whose
/// held removal failed or was skipped (superseded by the fast path, shutting down, an
/// earlier failure) keeps it for the next pass.
#[tokio::test]
async fn a_release_outlives_a_pass_that_skipped_or_failed_its_removal() {
    let b = bench();
    let done = |mapping: &str, outcome: Outcome| crate::apply::ChangeOutcome {
        key: format!("k-{mapping}"),
        action: "revoke-trust".into(),
        resource: format!("arn:aws:iam::111111111111:role/{mapping}").into(),
        account: None,
        mapping: Some(mapping.into()),
        members_added: 0,
        members_removed: 1,
        outcome,
    };
    let names = ["applied", "failed", "skipped"];
    for m in names {
        b.ctl.releases.lock().unwrap().insert(
            m.to_string(),
            crate::audit::Released {
                request: None,
                mapping: m.into(),
                by: "ana".into(),
                note: None,
                requested_at: "2026-12-07T00:00:00Z".into(),
            },
        );
    }
    let report = apply::Report {
        applied: 1,
        failed: 1,
        skipped: 1,
        outcomes: vec![
            done("applied", Outcome::Ok(Default::default())),
            done(
                "failed",
                Outcome::Failed(Failure::permanent("UpdateAssumeRolePolicy", "denied")),
            ),
            done(
                "skipped",
                Outcome::Skipped {
                    reason: "the membership fast path wrote this role after this pass read it"
                        .into(),
                },
            ),
        ],
        interrupted: false,
    };
    let released: BTreeSet<String> = names.iter().map(|s| s.to_string()).collect();
    b.ctl.settle_releases(&released, &report);
    let kept: Vec<String> = b.ctl.releases.lock().unwrap().keys().cloned().collect();
    assert_eq!(kept, ["failed", "skipped"]);
}

#[tokio::test(start_paused = true)]
async fn a_standby_works_out_the_groups_a_full_pass_asks_for() {
    let mut b = bench();
    assert!(b.pass().await);
    let full: BTreeSet<GroupRequest> = b.ctl.requests.lock().unwrap().iter().cloned().collect();
    assert!(!full.is_empty());
    let pins = b.audit.lock().await.pins().clone();
    let standby: BTreeSet<GroupRequest> = leadership::standby_requests(&b.policies, &pins)
        .into_iter()
        .collect();
    assert!(full.is_subset(&standby), "{full:?} within {standby:?}");
}

#[test]
fn a_standby_follows_the_group_a_role_is_pinned_to_by_the_log() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("p.yaml"),
        "\
apiVersion: trustsync.dev/v1alpha1
kind: IdentityProvider
metadata: {name: entra}
spec: {tenantId: 00000000-0000-0000-0000-0000000000aa, audiences: [api://aws]}
---
apiVersion: trustsync.dev/v1alpha1
kind: RoleMapping
metadata: {name: deployers}
spec: {provider: entra, group: {displayName: sg-deployers}, role: {name: Deployer}}
",
    )
    .unwrap();
    let policies = policy::load_dir(dir.path(), &Default::default()).unwrap();
    let pinned = "00000000-0000-0000-0000-000000000009";
    let pins = BTreeMap::from([(
        format!("arn:aws:iam::{ACCOUNT}:role/Deployer"),
        crate::sources::directory::pin_value(pinned, "sg-deployers"),
    )]);
    let pins_of = |requests: Vec<GroupRequest>| -> Vec<Option<String>> {
        requests.into_iter().map(|r| r.pin).collect()
    };
    // The pinned group is watched, and the name too (a role in an account the log has
    // no pin for follows the name).
    assert_eq!(
        pins_of(leadership::standby_requests(&policies, &pins)),
        [None, Some(pinned.to_string())]
    );
    assert_eq!(
        pins_of(leadership::standby_requests(&policies, &BTreeMap::new())),
        [None]
    );
}
