//! The planner: a pure diff of desired against observed state.
//!
//! `plan(desired, observed, settings) -> Plan` does no I/O. It compares policy documents
//! semantically ([`crate::model::iam_policy`]), so representation differences are never drift. It
//! changes only what trustsync owns: roles carrying the owner tag under the managed path,
//! providers carrying the owner tag, Lambda statements whose id has the prefix. An unowned
//! role of a wanted name is a conflict unless its mapping says `adopt`. Owned roles no
//! longer wanted are deleted only with prune; otherwise they are reported as orphans.
//!
//! Revocation first: a trust policy change that takes principals away is planned apart
//! from one that adds them ([`Action::Iam(IamAction::RevokeTrust)`], applied before anything else). A
//! mapping that cannot be fully planned ([`DesiredRole::blocked`]) still gets its
//! revocation (`current ∩ may_keep`) and nothing else. Each revocation carries the numbers
//! the safety checks need ([`Removal`]); the planner itself holds nothing back: that is
//! [`crate::checks`]' job.
//!
//! Changes come out in dependency order: revocations, provider, roles, policies, Lambda
//! permissions and execution roles; removals in reverse (Lambda statements, policies,
//! roles, provider).

use std::collections::{BTreeMap, BTreeSet};

use crate::desired::Desired;
use crate::observed::{Observed, ObservedRole};

mod action;
mod lambda;
mod model;
pub mod outbound;
pub mod people;
mod providers;
mod roles;
pub mod sessions;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod trust_tables;

pub use action::{
    Action, Effect, EntraAction, IamAction, LambdaAction, PeopleAction, RemovedMember,
};
pub use model::*;
pub use providers::{audience_tag, AUDIENCE_TAG_PREFIX};
pub use roles::BASELINE_TAG;
pub use sessions::SESSIONS_POLICY;

struct Planner<'a> {
    s: &'a Settings,
    observed: &'a Observed,
    /// Removal baselines the audit log recorded, by role ARN.
    recorded_baselines: &'a BTreeMap<String, String>,
    changes: Vec<Change>,
    problems: Vec<Problem>,
    notices: Vec<Notice>,
    session_denials: Vec<SessionDenial>,
}

/// Computes the plan. Pure. `recorded_baselines` are the removal baselines the audit log
/// holds, by role ARN (a fast-path revocation records its baseline there only): a role's
/// removals are measured against the higher live one of them and its tag.
pub fn plan(
    desired: &Desired,
    observed: &Observed,
    settings: &Settings,
    recorded_baselines: &BTreeMap<String, String>,
) -> Plan {
    let mut p = Planner {
        s: settings,
        observed,
        recorded_baselines,
        changes: Vec::new(),
        problems: Vec::new(),
        notices: Vec::new(),
        session_denials: Vec::new(),
    };
    p.mapping_errors(desired);
    p.providers(desired);
    let (mut trusted_baseline, mut owned_roles) = (0, 0);
    for role in observed.roles.values().filter(|r| p.owned(r)) {
        owned_roles += 1;
        trusted_baseline += p.removal_baseline(role).0;
    }
    let mut wanted: BTreeSet<String> = desired
        .roles
        .iter()
        .map(|r| r.name.to_ascii_lowercase())
        .collect();
    // Roles of mappings that could not be built at all are left alone, never pruned.
    wanted.extend(
        desired
            .errors
            .iter()
            .map(|e| e.resource.to_ascii_lowercase()),
    );
    for dr in &desired.roles {
        p.role(dr);
    }
    for (key, role) in &observed.roles {
        if p.owned(role) && !wanted.contains(key) {
            if settings.prune {
                p.delete_role(role);
            } else {
                p.notice(
                    NoticeKind::Orphan,
                    &role.arn,
                    "owned role no longer in any policy; enable prune to delete it",
                );
            }
        }
    }
    for df in &desired.functions {
        p.function(df);
    }
    p.marked_functions(desired);
    let mut plan = p.finish();
    plan.trusted_baseline = trusted_baseline;
    plan.owned_roles = owned_roles;
    plan.cutoff = Some(Cutoff {
        proposed: settings.now + settings.safety.propagation_seconds,
        margin: settings.safety.propagation_seconds,
    });
    plan
}

impl<'a> Planner<'a> {
    /// The mappings that could not be built: a problem each.
    fn mapping_errors(&mut self, desired: &Desired) {
        for e in &desired.errors {
            self.problems.push(Problem {
                kind: ProblemKind::MappingError,
                account: None,
                mapping: Some(e.mapping.clone()),
                resource: e.resource.clone(),
                message: e.message.clone(),
            });
        }
    }

    /// The wanted providers, and trustsync's providers no policy wants any more.
    fn providers(&mut self, desired: &Desired) {
        for dp in &desired.providers {
            self.provider(dp);
        }
        let wanted_urls: BTreeSet<String> = desired
            .providers
            .iter()
            .map(|d| d.url.to_ascii_lowercase())
            .collect();
        for op in &self.observed.providers {
            if self.s.ownership().provider(op)
                && !wanted_urls.contains(&op.url.to_ascii_lowercase())
            {
                self.unwanted_provider(op);
            }
        }
    }

    fn owned(&self, role: &ObservedRole) -> bool {
        self.s.ownership().role(role)
    }

    fn push(
        &mut self,
        action: Action,
        resource: &str,
        mapping: Option<&str>,
        reason: impl Into<String>,
    ) -> &mut Change {
        self.changes
            .push(Change::new(action, resource, mapping, reason));
        self.changes.last_mut().expect("just pushed")
    }

    fn problem(&mut self, kind: ProblemKind, mapping: &str, resource: &str, message: String) {
        self.problems.push(Problem {
            kind,
            account: None,
            mapping: Some(mapping.into()),
            resource: resource.into(),
            message,
        });
    }

    fn notice(&mut self, kind: NoticeKind, resource: &str, message: impl Into<String>) {
        self.notices.push(Notice {
            kind,
            account: None,
            resource: resource.into(),
            message: message.into(),
        });
    }

    fn finish(mut self) -> Plan {
        // A stable sort: within a phase, the order the planner chose stands.
        self.changes.sort_by_key(|c| c.action.phase());
        let mut plan = Plan {
            summary: Summary::default(),
            changes: self.changes,
            held: Vec::new(),
            problems: self.problems,
            notices: self.notices,
            trusted_baseline: 0,
            owned_roles: 0,
            cutoff: None,
            accounts: Vec::new(),
            session_denials: self.session_denials,
        };
        plan.summarize();
        plan
    }
}
