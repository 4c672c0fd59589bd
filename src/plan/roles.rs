//! Roles: create, adopt, update trust (revocations apart from grants), policies, tags,
//! delete; and the removal baseline the safety checks measure against.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::{Action, Effect, IamAction, NoticeKind, Planner, ProblemKind, Removal, Settings};
use crate::desired::DesiredRole;
use crate::model::iam_policy;
use crate::observed::{trusted_services, trusted_subjects, ObservedRole};

/// The role tag recording the most principals a role trusted recently (`count@unix-time`):
/// the baseline removal shares are measured against.
pub const BASELINE_TAG: &str = "trustsync.dev/removal-baseline";

pub(super) fn parse_baseline(v: &str) -> Option<(usize, u64)> {
    let (count, at) = v.split_once('@')?;
    Some((count.parse().ok()?, at.parse().ok()?))
}

impl Settings {
    /// A recorded baseline (`count@unix-time`) that still counts: taken within the window.
    fn live_baseline(&self, v: &str) -> Option<(usize, u64)> {
        parse_baseline(v)
            .filter(|(_, at)| self.now.saturating_sub(*at) < self.safety.removal_window_seconds)
    }

    /// `logged` (the audit log's baseline for a role) when it is live and higher than the
    /// role's `tag` (or later, at the same count): the one removals are measured against.
    pub fn higher_baseline(&self, tag: Option<&str>, logged: &str) -> Option<String> {
        let l = self.live_baseline(logged)?;
        match tag.and_then(|t| self.live_baseline(t)) {
            Some(t) if (t.0, t.1) >= (l.0, l.1) => None,
            _ => Some(logged.to_string()),
        }
    }
}

impl Planner<'_> {
    /// One mapping's role: notices about its group, then create it, or (when trustsync may
    /// change it) bring its trust, settings, policies and tags in line.
    pub(super) fn role(&mut self, dr: &DesiredRole) {
        self.group_notices(dr);
        let Some(or) = self.observed.roles.get(&dr.name.to_ascii_lowercase()) else {
            if dr.blocked.is_none() {
                self.create_role(dr);
            } // else: nothing to revoke on a role that does not exist
            return;
        };
        let Some(owned) = self.may_change(dr, or) else {
            return;
        };
        let from = self.changes.len();
        if dr.blocked.is_some() {
            // An adoption waits for a mapping that can be fully planned.
            if owned {
                self.revoke_only(dr, or);
                self.sessions(dr, or, from, None);
            }
            return;
        }
        self.trust(dr, or);
        let trusted: BTreeSet<String> = dr
            .group
            .iter()
            .flat_map(|g| g.principals.iter().map(|p| p.id.to_string()))
            .collect();
        self.sessions(dr, or, from, Some(&trusted));
        self.role_settings(dr, or);
        self.inline_policies(dr, or);
        self.managed_policies(dr, or);
        self.role_tags(dr, or, owned);
    }

    /// Members the group has that cannot be principals, and a renamed pinned group.
    fn group_notices(&mut self, dr: &DesiredRole) {
        if let Some(g) = &dr.group {
            if !g.skipped.is_empty() {
                let list: Vec<String> = g
                    .skipped
                    .iter()
                    .map(|s| {
                        format!(
                            "{} ({:?} {})",
                            s.display_name.as_deref().unwrap_or("?"),
                            s.kind,
                            s.id
                        )
                    })
                    .collect();
                self.notice(
                    NoticeKind::SkippedMembers,
                    &dr.arn,
                    format!(
                        "group `{}` has members that cannot assume a role by object id: {}",
                        g.display_name,
                        list.join(", ")
                    ),
                );
            }
        }
        if let Some(g) = dr.group.as_ref().filter(|g| !g.foreign.is_empty()) {
            let list: Vec<String> = g
                .foreign
                .iter()
                .map(|m| {
                    format!(
                        "{} ({}, application owned by tenant {})",
                        m.display_name.as_deref().unwrap_or("?"),
                        m.id,
                        m.owner_tenant.as_deref().unwrap_or("?")
                    )
                })
                .collect();
            self.notice(
                NoticeKind::ForeignApplication,
                &dr.arn,
                format!(
                    "group `{}` has service principals of applications another tenant owns, which that tenant's credentials control; not trusted: {}. Name the tenant in the provider's allowApplicationsOwnedBy to trust them",
                    g.display_name,
                    list.join(", ")
                ),
            );
        }
        if let Some(g) = dr.group.as_ref().filter(|g| !g.namesakes.is_empty()) {
            self.notice(
                NoticeKind::GroupNameTaken,
                &dr.arn,
                format!(
                    "another group now carries the display name this mapping selects: {} besides {} (the group it is pinned to). The pin still decides; if the mapping should follow another group, select it by id",
                    g.namesakes.join(", "),
                    g.id
                ),
            );
        }
        if let Some(new_name) = dr.group.as_ref().and_then(|g| g.renamed_to.as_ref()) {
            self.notice(
                NoticeKind::GroupRenamed,
                &dr.arn,
                format!(
                    "the group this mapping is pinned to ({}) is now named `{new_name}`; the mapping still follows it by id. Update the selector, or select the group by id",
                    dr.group.as_ref().map_or("", |g| g.id.as_str())
                ),
            );
        }
    }

    /// Secure by default: with no permissions boundary configured (and no explicit
    /// `allowUnboundedRoles`), no role is created or adopted. `false` with a problem.
    fn bounded_or_refused(&mut self, dr: &DesiredRole, what: &str) -> bool {
        if self.s.may_create_roles {
            return true;
        }
        self.problem(
            ProblemKind::Guardrail,
            &dr.mapping,
            &dr.arn,
            format!("trustsync does not {what} role `{}`: the config names no permissionsBoundaries, so the controller's credentials could make a role stronger than any policy here says. Create a boundary policy in each account and name it in permissionsBoundaries (docs/operations.md, \"The controller's own permissions\"), or accept unbounded roles with allowUnboundedRoles: true", dr.name),
        );
        false
    }

    /// A role that does not exist yet: created with its trust, policies and tags.
    fn create_role(&mut self, dr: &DesiredRole) {
        if !self.bounded_or_refused(dr, "create") {
            return;
        }
        let m = Some(dr.mapping.as_str());
        let subs: Vec<String> = dr
            .group
            .iter()
            .flat_map(|g| g.principals.iter().map(|p| p.id.to_string()))
            .collect();
        let c = self.push(
            Action::Iam(IamAction::CreateRole {
                role_name: dr.name.clone(),
                path: dr.path.clone(),
                trust_policy: dr.trust.clone(),
                description: dr.description.clone(),
                max_session_duration: dr.max_session_duration,
                permissions_boundary: dr.permissions_boundary.clone(),
                tags: dr.tags.clone(),
            }),
            &dr.arn,
            m,
            match &dr.group {
                Some(g) => format!(
                    "role does not exist; group `{}` has {} service principal(s)",
                    g.display_name,
                    g.principals.len()
                ),
                None => "role does not exist".to_string(),
            },
        );
        c.after = Some(dr.trust.clone());
        c.members_added = subs;
        for (name, doc) in &dr.inline_policies {
            let c = self.push(
                Action::Iam(IamAction::PutInlinePolicy {
                    role_name: dr.name.clone(),
                    policy_name: name.clone(),
                    document: doc.clone(),
                }),
                &dr.arn,
                m,
                "new role",
            );
            c.effect = Effect::Add;
            c.after = Some(doc.clone());
        }
        for arn in &dr.managed_policies {
            self.push(
                Action::Iam(IamAction::AttachManagedPolicy {
                    role_name: dr.name.clone(),
                    policy_arn: arn.clone(),
                }),
                &dr.arn,
                m,
                "new role",
            );
        }
    }

    /// Whether trustsync may change an existing role: `Some(owned)` when it owns it or the
    /// mapping adopts it, `None` (with a problem) when it belongs to someone else or lives
    /// at another path.
    fn may_change(&mut self, dr: &DesiredRole, or: &ObservedRole) -> Option<bool> {
        let owner = &self.s.owner_tag;
        let tag = or.tags.get(&owner.key);
        let owned = self.owned(or);
        if !owned {
            if let Some(other) = tag.filter(|v| *v != &owner.value) {
                self.problem(
                    ProblemKind::Conflict,
                    &dr.mapping,
                    &or.arn,
                    format!(
                        "role is owned by another trustsync instance (`{}={other}`)",
                        owner.key
                    ),
                );
                return None;
            }
            if !dr.adopt {
                self.problem(
                    ProblemKind::Conflict,
                    &dr.mapping,
                    &or.arn,
                    format!("role `{}` exists and is not owned by trustsync; set `adopt: true` on the mapping to take it over", or.name),
                );
                return None;
            }
            if !self.bounded_or_refused(dr, "adopt") {
                return None;
            }
        }
        if or.path != dr.path {
            self.problem(
                ProblemKind::CannotMoveRole,
                &dr.mapping,
                &or.arn,
                format!("role lives at path `{}`, the policy wants `{}`; IAM cannot move a role: delete it or restore the path", or.path, dr.path),
            );
            return None;
        }
        Some(owned)
    }

    /// Description, maximum session duration and permissions boundary.
    fn role_settings(&mut self, dr: &DesiredRole, or: &ObservedRole) {
        let (arn, m) = (or.arn.as_str(), Some(dr.mapping.as_str()));
        let desc_drift = dr.description.is_some() && dr.description != or.description;
        let session_drift = or
            .max_session_duration
            .is_some_and(|s| s != dr.max_session_duration);
        if desc_drift || session_drift {
            let c = self.push(
                Action::Iam(IamAction::UpdateRole {
                    role_name: dr.name.clone(),
                    description: dr.description.clone(),
                    max_session_duration: dr.max_session_duration,
                }),
                arn,
                m,
                "description or maximum session duration drifted",
            );
            c.before = Some(
                serde_json::json!({"description": or.description, "maxSessionDuration": or.max_session_duration}),
            );
            c.after = Some(
                serde_json::json!({"description": dr.description, "maxSessionDuration": dr.max_session_duration}),
            );
        }
        match (&dr.permissions_boundary, &or.permissions_boundary) {
            (Some(want), have) if Some(want) != have.as_ref() => {
                let c = self.push(
                    Action::Iam(IamAction::PutPermissionsBoundary {
                        role_name: dr.name.clone(),
                        policy_arn: want.clone(),
                    }),
                    arn,
                    m,
                    "permissions boundary differs",
                );
                c.before = have.clone().map(Value::String);
                c.after = Some(Value::String(want.clone()));
            }
            (None, Some(have)) => {
                let c = self.push(
                    Action::Iam(IamAction::DeletePermissionsBoundary {
                        role_name: dr.name.clone(),
                    }),
                    arn,
                    m,
                    "permissions boundary not in the policy",
                );
                c.before = Some(Value::String(have.clone()));
            }
            _ => {}
        }
    }

    fn inline_policies(&mut self, dr: &DesiredRole, or: &ObservedRole) {
        let (arn, m) = (or.arn.as_str(), Some(dr.mapping.as_str()));
        for (name, doc) in &dr.inline_policies {
            let have = or.inline_policies.get(name);
            if !have.is_some_and(|h| iam_policy::equivalent(doc, h)) {
                let reason = if have.is_some() {
                    "inline policy drifted"
                } else {
                    "inline policy missing"
                };
                let c = self.push(
                    Action::Iam(IamAction::PutInlinePolicy {
                        role_name: dr.name.clone(),
                        policy_name: name.clone(),
                        document: doc.clone(),
                    }),
                    arn,
                    m,
                    reason,
                );
                if have.is_none() {
                    c.effect = Effect::Add;
                }
                c.before = have.cloned();
                c.after = Some(doc.clone());
            }
        }
        for (name, doc) in &or.inline_policies {
            // The session denials are planned on their own (sessions.rs).
            if !dr.inline_policies.contains_key(name) && name != super::SESSIONS_POLICY {
                let c = self.push(
                    Action::Iam(IamAction::DeleteInlinePolicy {
                        role_name: dr.name.clone(),
                        policy_name: name.clone(),
                    }),
                    arn,
                    m,
                    "inline policy not in the policy",
                );
                c.before = Some(doc.clone());
            }
        }
    }

    fn managed_policies(&mut self, dr: &DesiredRole, or: &ObservedRole) {
        let (arn, m) = (or.arn.as_str(), Some(dr.mapping.as_str()));
        for p in dr.managed_policies.difference(&or.managed_policies) {
            self.push(
                Action::Iam(IamAction::AttachManagedPolicy {
                    role_name: dr.name.clone(),
                    policy_arn: p.clone(),
                }),
                arn,
                m,
                "managed policy not attached",
            );
        }
        for p in or.managed_policies.difference(&dr.managed_policies) {
            self.push(
                Action::Iam(IamAction::DetachManagedPolicy {
                    role_name: dr.name.clone(),
                    policy_arn: p.clone(),
                }),
                arn,
                m,
                "managed policy not in the policy",
            );
        }
    }

    /// Tags to set (the owner tag first of all on an adopted role) and tags to remove; the
    /// removal baseline is trustsync's own record, never drift.
    fn role_tags(&mut self, dr: &DesiredRole, or: &ObservedRole, owned: bool) {
        let (arn, m) = (or.arn.as_str(), Some(dr.mapping.as_str()));
        let tag_set: BTreeMap<String, String> = dr
            .tags
            .iter()
            .filter(|(k, v)| or.tags.get(*k) != Some(v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !tag_set.is_empty() {
            let reason = if owned {
                "tags drifted"
            } else {
                "adopting the role (owner tag)"
            };
            self.push(
                Action::Iam(IamAction::TagRole {
                    role_name: dr.name.clone(),
                    tags: tag_set,
                }),
                arn,
                m,
                reason,
            );
        }
        let untag: Vec<String> = or
            .tags
            .keys()
            .filter(|k| !dr.tags.contains_key(*k) && *k != BASELINE_TAG)
            .cloned()
            .collect();
        if !untag.is_empty() {
            self.push(
                Action::Iam(IamAction::UntagRole {
                    role_name: dr.name.clone(),
                    keys: untag,
                }),
                arn,
                m,
                "tags not in the policy",
            );
        }
    }

    pub(super) fn delete_role(&mut self, role: &ObservedRole) {
        let reason = "owned role no longer in any policy (prune)";
        for p in &role.managed_policies {
            self.push(
                Action::Iam(IamAction::DetachManagedPolicy {
                    role_name: role.name.clone(),
                    policy_arn: p.clone(),
                }),
                &role.arn,
                None,
                reason,
            );
        }
        for (name, doc) in &role.inline_policies {
            let c = self.push(
                Action::Iam(IamAction::DeleteInlinePolicy {
                    role_name: role.name.clone(),
                    policy_name: name.clone(),
                }),
                &role.arn,
                None,
                reason,
            );
            c.before = Some(doc.clone());
        }
        let subs: Vec<String> = trusted_subjects(&role.trust).into_iter().collect();
        let removal = Removal {
            baseline: self.removal_baseline(role).0,
            after: 0,
            deletes_role: true,
        };
        let c = self.push(
            Action::Iam(IamAction::DeleteRole {
                role_name: role.name.clone(),
            }),
            &role.arn,
            None,
            reason,
        );
        c.before = Some(role.trust.clone());
        c.members_removed = subs;
        c.removal = Some(removal);
    }

    /// The principal count removals are measured against, and the baseline tag value to
    /// record when the recorded one is missing, stale or lower than the role trusts now.
    /// The recorded one is the role's tag, or the audit log's when that is the higher live
    /// one.
    pub(super) fn removal_baseline(&self, role: &ObservedRole) -> (usize, Option<String>) {
        let current = trusted_subjects(&role.trust).len();
        let tag = role.tags.get(BASELINE_TAG).map(String::as_str);
        let logged = self
            .recorded_baselines
            .get(&role.arn)
            .and_then(|l| self.s.higher_baseline(tag, l));
        let recorded = logged
            .as_deref()
            .or(tag)
            .and_then(|v| self.s.live_baseline(v));
        match recorded {
            Some((count, _)) if count >= current => (count, None),
            _ => (current, Some(format!("{current}@{}", self.s.now))),
        }
    }

    /// A trust update that only takes principals away.
    fn revocation(
        &mut self,
        dr: &DesiredRole,
        or: &ObservedRole,
        doc: Value,
        removed: Vec<String>,
        after: usize,
        reason: String,
    ) {
        let (baseline, record) = self.removal_baseline(or);
        let c = self.push(
            Action::Iam(IamAction::RevokeTrust {
                role_name: dr.name.clone(),
                trust_policy: doc.clone(),
                baseline: record,
            }),
            &or.arn,
            Some(&dr.mapping),
            reason,
        );
        c.before = Some(or.trust.clone());
        c.after = Some(doc);
        c.members_removed = removed;
        c.removal = Some(Removal {
            baseline,
            after,
            deletes_role: false,
        });
    }

    /// A mapping that cannot be fully planned: its trust keeps only the principals a
    /// successful read says may stay, and the services the policy still names. Nothing is
    /// added and nothing else about the role changes.
    fn revoke_only(&mut self, dr: &DesiredRole, or: &ObservedRole) {
        let current = trusted_subjects(&or.trust);
        let keep: BTreeSet<String> = match &dr.may_keep {
            Some(may) => current.intersection(may).cloned().collect(),
            None => current.clone(),
        };
        let services: BTreeSet<String> = trusted_services(&or.trust)
            .intersection(&dr.trust_parts.services)
            .cloned()
            .collect();
        let doc = dr.trust_parts.document(&keep, &services);
        if iam_policy::equivalent_grants(&doc, &or.trust) {
            return;
        }
        let removed: Vec<String> = current.difference(&keep).cloned().collect();
        let why = dr
            .blocked
            .as_deref()
            .unwrap_or("mapping cannot be fully planned");
        self.revocation(
            dr,
            or,
            doc,
            removed.clone(),
            keep.len(),
            format!(
                "{why}: revoking {} principal(s) no longer in the group, adding none",
                removed.len()
            ),
        );
    }

    /// The trust policy of a fully planned mapping: a revocation first when principals
    /// leave, then the update that adds (which falls back to adding without removing when
    /// the revocation is held).
    fn trust(&mut self, dr: &DesiredRole, or: &ObservedRole) {
        if iam_policy::equivalent_grants(&dr.trust, &or.trust) {
            return;
        }
        let current = trusted_subjects(&or.trust);
        let want: BTreeSet<String> = dr
            .group
            .iter()
            .flat_map(|g| g.principals.iter().map(|p| p.id.to_string()))
            .collect();
        let current_services = trusted_services(&or.trust);
        let services = &dr.trust_parts.services;
        let added: Vec<String> = want.difference(&current).cloned().collect();
        let removed: Vec<String> = current.difference(&want).cloned().collect();
        let reason = match (&dr.group, added.is_empty() && removed.is_empty()) {
            (Some(g), false) => format!(
                "group `{}` membership changed: {} added, {} removed",
                g.display_name,
                added.len(),
                removed.len()
            ),
            _ => "trust policy drifted from the policy".to_string(),
        };
        if added.is_empty() && services.is_subset(&current_services) {
            // Takes away only: the wanted trust policy is itself the revocation.
            self.revocation(dr, or, dr.trust.clone(), removed, want.len(), reason);
            return;
        }
        let keep: BTreeSet<String> = current.intersection(&want).cloned().collect();
        let kept_services: BTreeSet<String> =
            current_services.intersection(services).cloned().collect();
        let revoke_doc = dr.trust_parts.document(&keep, &kept_services);
        let revokes = !iam_policy::equivalent_grants(&revoke_doc, &or.trust);
        if revokes {
            self.revocation(
                dr,
                or,
                revoke_doc.clone(),
                removed,
                keep.len(),
                format!("{reason}; revoking first"),
            );
        }
        let grant_only = revokes.then(|| {
            let all: BTreeSet<String> = current.union(&want).cloned().collect();
            let all_services: BTreeSet<String> =
                current_services.union(services).cloned().collect();
            dr.trust_parts.document(&all, &all_services)
        });
        let c = self.push(
            Action::Iam(IamAction::UpdateTrustPolicy {
                role_name: dr.name.clone(),
                trust_policy: dr.trust.clone(),
            }),
            &or.arn,
            Some(&dr.mapping),
            reason,
        );
        c.before = Some(if revokes {
            revoke_doc
        } else {
            or.trust.clone()
        });
        c.after = Some(dr.trust.clone());
        c.members_added = added;
        c.grant_only = grant_only;
    }
}
