//! Applying a plan: each change in order, each one recorded in the audit log.
//!
//! Apply sees only the [`Plan`] and applies its changes; what the checks held is not in
//! them (the pass record lists it). A change that fails leaves the resource it concerns
//! alone for the rest of the pass (later changes to it usually depend on it), except for a
//! revocation, which is always tried; other resources go on: one bad mapping does not stop
//! the others. Retries live in [`crate::retry`], not here.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::json;

use crate::audit::AuditLog;
use crate::aws::{AwsClients, Failure, Written};
use crate::plan::{Action, Plan};

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
/// `stop` is asked before each change; once it says yes, the change under way has
/// finished and the rest are recorded as skipped, so nothing is half-applied untracked.
pub async fn apply(
    plan: &Plan,
    aws: &AwsClients,
    audit: &mut AuditLog,
    actor: &Actor,
    policy_revision: Option<&str>,
    stop: &dyn Fn() -> bool,
) -> Result<Report, Error> {
    let mut report = Report::default();
    let mut failed_resources: BTreeSet<String> = BTreeSet::new();
    // Lambda's RevisionId guards the first write to each function against changes made
    // since the plan was read; later writes are ours and would carry a stale id.
    let mut revision_used: BTreeSet<String> = BTreeSet::new();
    for change in &plan.changes {
        let name = change.action.name();
        if !report.interrupted && stop() {
            report.interrupted = true;
            tracing::warn!("stop requested; the remaining changes are left for the next pass");
        }
        let outcome = if report.interrupted {
            Outcome::Skipped {
                reason: "shutting down; left for the next pass".into(),
            }
        } else if failed_resources.contains(&change.resource) && !is_revocation(&change.action) {
            Outcome::Skipped {
                reason: "an earlier change to this resource failed".into(),
            }
        } else {
            let use_revision = match &change.action {
                Action::AddLambdaPermission { function_name, .. }
                | Action::SetExecutionRole { function_name, .. } => {
                    revision_used.insert(function_name.clone())
                }
                // A removal carries no RevisionId: it touches only its own statement, and
                // an unrelated change to the policy must not fail a revocation. It does
                // change the revision, so later writes to the function go without one.
                Action::RemoveLambdaPermission { function_name, .. } => {
                    revision_used.insert(function_name.clone());
                    false
                }
                _ => false,
            };
            match aws.execute(&change.action, use_revision).await {
                Ok(w) => Outcome::Ok(w),
                Err(f) => {
                    failed_resources.insert(change.resource.clone());
                    Outcome::Failed(f)
                }
            }
        };
        match &outcome {
            Outcome::Ok(_) => report.applied += 1,
            Outcome::Failed(f) => {
                tracing::error!(action = %name, resource = %change.resource, error = %f, "change failed");
                report.failed += 1
            }
            Outcome::Skipped { .. } => report.skipped += 1,
        }
        audit.append(json!({
            "type": "change",
            "actor": actor,
            "action": name,
            "target": change.resource,
            "mapping": change.mapping,
            "reason": change.reason,
            "membersAdded": change.members_added,
            "membersRemoved": change.members_removed,
            "before": change.before,
            "after": change.after,
            "policyRevision": policy_revision,
            "result": outcome,
        }))?;
        report
            .outcomes
            .push((name, change.resource.clone(), outcome));
    }
    audit.append(json!({
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
