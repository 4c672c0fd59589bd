//! Applying a plan: each change in order, each one recorded in the audit log.
//!
//! Apply sees only the [`Plan`] and applies its changes; what the checks held is not in
//! them (the pass record lists it). A change that fails leaves the resource it concerns
//! alone for the rest of the pass (later changes to it usually depend on it), except for a
//! revocation, which is always tried; other resources go on: one bad mapping does not stop
//! the others. Retries live in [`crate::runtime::retry`], not here.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use futures::stream::{self, StreamExt, TryStreamExt};

use serde::Serialize;
use serde_json::json;

use crate::adapters::aws::{AwsClients, Failure, Written};
use crate::audit::AuditLog;
use crate::plan::{Action, Change, Plan};

/// Why a plan was not applied at all.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The audit log could not be written, so no change may be made.
    #[error(transparent)]
    Audit(#[from] crate::audit::Error),
}

/// Who is applying, for the audit log.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Actor {
    /// This controller instance (`host/pid`).
    pub instance: String,
    /// The AWS caller ARN.
    pub aws_caller: String,
}

impl Actor {
    /// The actor for this process and AWS identity.
    pub fn new(aws_caller: &str) -> Actor {
        let host = std::env::var("HOSTNAME")
            .ok()
            .or_else(|| {
                std::fs::read_to_string("/etc/hostname")
                    .ok()
                    .map(|s| s.trim().to_string())
            })
            .unwrap_or_else(|| "unknown-host".into());
        Actor {
            instance: format!("{host}/{}", std::process::id()),
            aws_caller: aws_caller.into(),
        }
    }
}

/// What happened to one change.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase", tag = "outcome")]
pub enum Outcome {
    /// Done.
    Ok(Written),
    /// AWS refused.
    Failed(Failure),
    /// Not tried, because an earlier change to the same resource failed.
    Skipped {
        /// Why.
        reason: String,
    },
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
    /// Per change, in plan order: action name, resource, outcome.
    pub outcomes: Vec<(String, String, Outcome)>,
    /// True when a stop request ended the pass before every change was tried.
    pub interrupted: bool,
}

impl Report {
    /// True when every change was applied.
    pub fn success(&self) -> bool {
        self.failed == 0 && self.skipped == 0 && !self.interrupted
    }
}

/// A revocation is tried whatever failed before it on the same resource (a tag write,
/// say): nothing may hold a removal back.
fn is_revocation(action: &Action) -> bool {
    matches!(action, Action::RevokeTrust { .. })
}

/// Applies a plan, writing one audit line per change and one for the pass.
///
/// Phases run one after the other; within a phase, independent resources are written in
/// parallel (bounded per service by `aws.writeConcurrency`), each resource's changes in
/// order, and one Lambda function's writes one after another. `stop` is asked before each
/// change; once it says yes, the changes under way finish and the rest are recorded as
/// skipped, so nothing is half-applied untracked. Outcomes are reported in plan order.
pub async fn apply(
    plan: &Plan,
    aws: &AwsClients,
    audit: &mut AuditLog,
    actor: &Actor,
    policy_revision: Option<&str>,
    stop: &dyn Fn() -> bool,
) -> Result<Report, Error> {
    let run = Run {
        aws,
        audit: tokio::sync::Mutex::new(audit),
        actor,
        policy_revision,
        stop,
        interrupted: AtomicBool::new(false),
        failed_resources: Mutex::new(BTreeSet::new()),
        revision_used: Mutex::new(BTreeSet::new()),
    };
    let mut outcomes: Vec<(usize, String, String, Outcome)> = Vec::new();
    // Phases one after the other (the plan is sorted by phase); within a phase, lanes in
    // parallel: one lane per resource, one per Lambda function (its RevisionId chain).
    let indexed: Vec<(usize, &Change)> = plan.changes.iter().enumerate().collect();
    for phase in indexed.chunk_by(|a, b| a.1.action.phase() == b.1.action.phase()) {
        let mut lanes: BTreeMap<String, Vec<(usize, &Change)>> = BTreeMap::new();
        for (i, c) in phase {
            let lane = c
                .action
                .lambda_function()
                .map_or_else(|| c.resource.clone(), |f| format!("lambda:{f}"));
            lanes.entry(lane).or_default().push((*i, *c));
        }
        let done: Vec<Vec<(usize, String, String, Outcome)>> = stream::iter(lanes.into_values())
            .map(|lane| run.lane(lane))
            .buffer_unordered(aws.write_slots())
            .try_collect()
            .await?;
        outcomes.extend(done.into_iter().flatten());
    }
    outcomes.sort_by_key(|(i, ..)| *i);
    let mut report = Report {
        interrupted: run.interrupted.load(Ordering::SeqCst),
        ..Report::default()
    };
    for (_, name, resource, outcome) in outcomes {
        match &outcome {
            Outcome::Ok(_) => report.applied += 1,
            Outcome::Failed(_) => report.failed += 1,
            Outcome::Skipped { .. } => report.skipped += 1,
        }
        report.outcomes.push((name, resource, outcome));
    }
    run.audit.into_inner().append(json!({
        "type": "pass",
        "actor": actor,
        "policyRevision": policy_revision,
        "outcome": if report.interrupted { "interrupted" } else if report.success() { "applied" } else { "partial" },
        "applied": report.applied,
        "failed": report.failed,
        "skipped": report.skipped,
        "held": plan.held.iter().map(|h| json!({"action": h.change.action.name(), "target": h.change.resource, "mapping": h.change.mapping, "membersRemoved": h.change.members_removed, "hold": h.held})).collect::<Vec<_>>(),
        "problems": plan.problems.len(),
    }))?;
    Ok(report)
}

/// One apply, shared by its lanes.
struct Run<'a> {
    aws: &'a AwsClients,
    /// Appends are one at a time, so the hash chain stays whole.
    audit: tokio::sync::Mutex<&'a mut AuditLog>,
    actor: &'a Actor,
    policy_revision: Option<&'a str>,
    stop: &'a dyn Fn() -> bool,
    interrupted: AtomicBool,
    /// Resources a change failed on: their later changes are skipped.
    failed_resources: Mutex<BTreeSet<String>>,
    /// Lambda's RevisionId guards the first write to each function against changes made
    /// since the plan was read; later writes are ours and would carry a stale id.
    revision_used: Mutex<BTreeSet<String>>,
}

impl Run<'_> {
    /// One lane's changes, in order, each recorded once done.
    async fn lane(
        &self,
        lane: Vec<(usize, &Change)>,
    ) -> Result<Vec<(usize, String, String, Outcome)>, Error> {
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
            let outcome = if self.interrupted.load(Ordering::SeqCst) {
                Outcome::Skipped {
                    reason: "shutting down; left for the next pass".into(),
                }
            } else if failed_before && !is_revocation(&change.action) {
                Outcome::Skipped {
                    reason: "an earlier change to this resource failed".into(),
                }
            } else {
                match self
                    .aws
                    .execute(&change.action, self.use_revision(&change.action))
                    .await
                {
                    Ok(w) => Outcome::Ok(w),
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
            self.audit.lock().await.append(json!({
                "type": "change",
                "actor": self.actor,
                "action": name,
                "target": change.resource,
                "mapping": change.mapping,
                "reason": change.reason,
                "membersAdded": change.members_added,
                "membersRemoved": change.members_removed,
                "before": change.before,
                "after": change.after,
                "policyRevision": self.policy_revision,
                "result": outcome,
            }))?;
            out.push((i, name, change.resource.clone(), outcome));
        }
        Ok(out)
    }

    fn use_revision(&self, action: &Action) -> bool {
        let mut used = self.revision_used.lock().expect("revisions");
        match action {
            Action::AddLambdaPermission { function_name, .. }
            | Action::SetExecutionRole { function_name, .. } => used.insert(function_name.clone()),
            // A removal carries no RevisionId: it touches only its own statement, and an
            // unrelated change to the policy must not fail a revocation. It does change the
            // revision, so later writes to the function go without one.
            Action::RemoveLambdaPermission { function_name, .. } => {
                used.insert(function_name.clone());
                false
            }
            _ => false,
        }
    }
}
