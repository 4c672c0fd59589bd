//! What a pass covers: the whole fleet, or the documents a directory change touches (the
//! membership fast path). The fast path is the same pass over a smaller scope: every
//! difference between the two is a method here, named for what it decides, so that the
//! pass and the controller read the same whichever scope they run.

use std::collections::BTreeSet;

use crate::plan::{self, NoticeKind, Plan};
use crate::runtime::fleet::Member;
use crate::runtime::writes::RoleWrites;
use crate::sources::policy::{scope as placement, PolicySet};

/// What a pass covers.
#[derive(Clone, Copy)]
pub enum Scope<'a> {
    /// Every document in every account in scope: the full pass.
    Fleet,
    /// The membership fast path: only these RoleMapping and AccessAssignment documents
    /// (by name), their roles read one by one, and only their trust, session denials and
    /// people's group memberships changed.
    Focus {
        /// The documents, by name.
        documents: &'a BTreeSet<String>,
        /// The session-deny policies the controller knows its roles carry: not read again.
        known: Option<&'a RoleWrites>,
    },
}

impl<'a> Scope<'a> {
    /// The scope of a pass given its focus (`None`: the whole fleet).
    pub fn of(focus: Option<&'a BTreeSet<String>>, known: Option<&'a RoleWrites>) -> Self {
        match focus {
            Some(documents) => Scope::Focus { documents, known },
            None => Scope::Fleet,
        }
    }

    /// Whether the pass sees the whole fleet: what describes the fleet as a whole (back-offs,
    /// gauges, readiness, the watcher's groups, orphans and crash recovery) is its to say.
    pub fn is_fleet(&self) -> bool {
        matches!(self, Scope::Fleet)
    }

    /// The documents of a focused pass; `None` for the whole fleet.
    pub fn documents(&self) -> Option<&'a BTreeSet<String>> {
        match self {
            Scope::Fleet => None,
            Scope::Focus { documents, .. } => Some(documents),
        }
    }

    /// Whether the document named `name` is in scope.
    pub fn covers(&self, name: &str) -> bool {
        self.documents().is_none_or(|d| d.contains(name))
    }

    /// Narrows a policy set to the scope: a focused pass keeps its RoleMappings and
    /// AccessAssignments, and no function (their permissions wait for the full pass).
    pub fn narrow(&self, policies: &mut PolicySet) {
        let Some(documents) = self.documents() else {
            return;
        };
        policies
            .role_mappings
            .retain(|m| documents.contains(m.name.as_str()));
        policies
            .access_assignments
            .retain(|a| documents.contains(a.name.as_str()));
        policies.functions.clear();
    }

    /// Whether the pass reads the account of `member`: a focused pass reaches only the
    /// accounts its (narrowed) mappings are in.
    pub fn reaches(&self, policies: &PolicySet, member: &Member) -> bool {
        self.is_fleet()
            || !placement::policies_at(policies, &member.account, member.account.home())
                .role_mappings
                .is_empty()
    }

    /// The session-deny policies known without reading them (focused passes only).
    pub fn known(&self) -> Option<&'a RoleWrites> {
        match self {
            Scope::Fleet => None,
            Scope::Focus { known, .. } => *known,
        }
    }

    /// Whether the pass plans people: a focused pass when it has AccessAssignments; the
    /// full pass also when an instance is configured (so that trustsync's permission sets
    /// left by removed documents are seen, and pruned).
    pub fn plans_people(&self, policies: &PolicySet, config: &crate::config::Config) -> bool {
        match self {
            Scope::Fleet => {
                !policies.access_assignments.is_empty()
                    || config.identity_center.instance_arn.is_some()
            }
            Scope::Focus { .. } => !policies.access_assignments.is_empty(),
        }
    }

    /// Whether what the pass cannot see may be removed (the policy's `prune`): only the
    /// full pass sees everything trustsync owns.
    pub fn prunes(&self, prune: bool) -> bool {
        prune && self.is_fleet()
    }

    /// Keeps what the scope may change. A focused pass keeps a role's trust and the session
    /// denials that go with it (a returning member's denial dropped included: its next
    /// session works at once), people's revocations and their onboarding into trustsync's
    /// groups; everything else waits for the full pass. Of the notices it keeps that
    /// sessions were cut role-wide: what the full pass owns (orphans, names, providers) is
    /// not a focused pass's to say.
    pub fn trim(&self, plan: &mut Plan) {
        if self.is_fleet() {
            return;
        }
        plan.changes.retain(|c| fast_path_action(&c.action));
        plan.held.retain(|h| fast_path_action(&h.change.action));
        plan.notices
            .retain(|n| n.kind == NoticeKind::SessionsCutRoleWide);
    }
}

/// What the fast path may change (see [`Scope::trim`]).
fn fast_path_action(action: &plan::Action) -> bool {
    use plan::IamAction::*;
    match action {
        // People's fast path: revocations, and onboarding into trustsync's groups (users
        // made, members added); permission sets and assignments wait for the full pass.
        plan::Action::People(
            plan::PeopleAction::CreateIdentityStoreUser { .. }
            | plan::PeopleAction::AddGroupMembers { .. },
        ) => true,
        plan::Action::People(_) => action.is_revocation(),
        plan::Action::Iam(
            RevokeTrust { .. } | RevokeSessions { .. } | UpdateTrustPolicy { .. },
        ) => true,
        plan::Action::Iam(
            PutInlinePolicy { policy_name, .. } | DeleteInlinePolicy { policy_name, .. },
        ) => policy_name == crate::model::names::SESSIONS_POLICY,
        _ => false,
    }
}
