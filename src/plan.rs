//! The planner: a pure diff of desired against observed state.
//!
//! `plan(desired, observed, settings) -> Plan` does no I/O. It compares policy documents
//! semantically ([`crate::iam_policy`]), so representation differences are never drift. It
//! changes only what trustsync owns: roles carrying the owner tag under the managed path,
//! providers carrying the owner tag, Lambda statements whose id has the prefix. An unowned
//! role of a wanted name is a conflict unless its mapping says `adopt`. Owned roles no
//! longer wanted are deleted only with prune; otherwise they are reported as orphans.
//! Before returning, the safety limits are checked: a plan that would remove too large a
//! share of principals or roles carries a [`SafetyStop`] and must not be applied.
//!
//! Changes come out in dependency order: provider, roles, policies, Lambda permissions and
//! execution roles; removals in reverse (Lambda statements, policies, roles, provider).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use crate::config::{OwnerTag, Safety};
use crate::desired::{Desired, DesiredFunction, DesiredProvider, DesiredRole};
use crate::iam_policy;
use crate::observed::{trusted_subjects, Observed, ObservedFunction, ObservedRole};

/// What the planner needs from the config.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The owner tag.
    pub owner_tag: OwnerTag,
    /// Managed role path prefix.
    pub role_path: String,
    /// Lambda statement id prefix.
    pub statement_id_prefix: String,
    /// Delete owned resources no longer wanted.
    pub prune: bool,
    /// Removal limits.
    pub safety: Safety,
}

impl Settings {
    /// The planner settings of a config.
    pub fn from_config(c: &crate::config::Config) -> Self {
        Settings {
            owner_tag: c.owner_tag.clone(),
            role_path: c.role_path.clone(),
            statement_id_prefix: c.statement_id_prefix.clone(),
            prune: c.prune,
            safety: c.safety.clone(),
        }
    }
}

/// One AWS write, with everything needed to perform it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(
    tag = "action",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase"
)]
#[allow(missing_docs)]
pub enum Action {
    CreateOidcProvider {
        url: String,
        client_ids: Vec<String>,
        thumbprints: Vec<String>,
        tags: BTreeMap<String, String>,
    },
    AddProviderAudience {
        provider_arn: String,
        audience: String,
    },
    RemoveProviderAudience {
        provider_arn: String,
        audience: String,
    },
    TagOidcProvider {
        provider_arn: String,
        tags: BTreeMap<String, String>,
    },
    DeleteOidcProvider {
        provider_arn: String,
    },
    CreateRole {
        role_name: String,
        path: String,
        trust_policy: Value,
        description: Option<String>,
        max_session_duration: i32,
        permissions_boundary: Option<String>,
        tags: BTreeMap<String, String>,
    },
    UpdateTrustPolicy {
        role_name: String,
        trust_policy: Value,
    },
    UpdateRole {
        role_name: String,
        description: Option<String>,
        max_session_duration: i32,
    },
    PutPermissionsBoundary {
        role_name: String,
        policy_arn: String,
    },
    DeletePermissionsBoundary {
        role_name: String,
    },
    PutInlinePolicy {
        role_name: String,
        policy_name: String,
        document: Value,
    },
    DeleteInlinePolicy {
        role_name: String,
        policy_name: String,
    },
    AttachManagedPolicy {
        role_name: String,
        policy_arn: String,
    },
    DetachManagedPolicy {
        role_name: String,
        policy_arn: String,
    },
    TagRole {
        role_name: String,
        tags: BTreeMap<String, String>,
    },
    UntagRole {
        role_name: String,
        keys: Vec<String>,
    },
    DeleteRole {
        role_name: String,
    },
    AddLambdaPermission {
        function_name: String,
        qualifier: Option<String>,
        statement_id: String,
        principal: String,
        lambda_action: String,
        source_arn: Option<String>,
        source_account: Option<String>,
        revision_id: Option<String>,
    },
    RemoveLambdaPermission {
        function_name: String,
        qualifier: Option<String>,
        statement_id: String,
        revision_id: Option<String>,
    },
    SetExecutionRole {
        function_name: String,
        role_arn: String,
        revision_id: Option<String>,
    },
}

/// Whether a change adds, changes or removes something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    /// Creates a resource or grants something new.
    Add,
    /// Modifies something in place.
    Change,
    /// Removes a resource or a grant.
    Remove,
}

impl Action {
    /// Execution order: lower first. Additions go forward, removals in reverse.
    pub fn phase(&self) -> u8 {
        use Action::*;
        match self {
            CreateOidcProvider { .. } => 10,
            AddProviderAudience { .. } | TagOidcProvider { .. } => 11,
            CreateRole { .. } => 20,
            UpdateTrustPolicy { .. }
            | UpdateRole { .. }
            | PutPermissionsBoundary { .. }
            | TagRole { .. } => 30,
            PutInlinePolicy { .. } | AttachManagedPolicy { .. } => 40,
            RemoveLambdaPermission { .. } => 50,
            AddLambdaPermission { .. } | SetExecutionRole { .. } => 60,
            DetachManagedPolicy { .. } | DeleteInlinePolicy { .. } => 70,
            DeletePermissionsBoundary { .. } | UntagRole { .. } => 71,
            DeleteRole { .. } => 80,
            RemoveProviderAudience { .. } => 90,
            DeleteOidcProvider { .. } => 91,
        }
    }

    /// Add, change or remove.
    pub fn effect(&self) -> Effect {
        use Action::*;
        match self {
            CreateOidcProvider { .. }
            | CreateRole { .. }
            | AddLambdaPermission { .. }
            | AttachManagedPolicy { .. }
            | AddProviderAudience { .. } => Effect::Add,
            DeleteOidcProvider { .. }
            | DeleteRole { .. }
            | RemoveLambdaPermission { .. }
            | DetachManagedPolicy { .. }
            | DeleteInlinePolicy { .. }
            | DeletePermissionsBoundary { .. }
            | RemoveProviderAudience { .. }
            | UntagRole { .. } => Effect::Remove,
            _ => Effect::Change,
        }
    }

    /// The action's name, as in the JSON output (`update-trust-policy`).
    pub fn name(&self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.get("action").and_then(Value::as_str).map(String::from))
            .unwrap_or_default()
    }
}

/// One planned change.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    /// What to do.
    #[serde(flatten)]
    pub action: Action,
    /// Add, change or remove.
    pub effect: Effect,
    /// The ARN of the resource changed.
    pub resource: String,
    /// The policy document behind it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mapping: Option<String>,
    /// Why, in words: drift found, members added or removed, policy changed.
    pub reason: String,
    /// The value before, when the change replaces one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    /// The value after.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<Value>,
    /// Members granted by this change (trust policy changes).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub members_added: Vec<String>,
    /// Members whose access this change takes away.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub members_removed: Vec<String>,
}

/// Something that keeps a mapping from being planned, or needs a person's attention.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// `conflict`, `mapping-error`, `function-not-found`, `cannot-move-role`.
    pub kind: String,
    /// The mapping.
    pub mapping: Option<String>,
    /// The resource concerned.
    pub resource: String,
    /// What is wrong and what to do.
    pub message: String,
}

/// Something worth knowing that needs no change.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Notice {
    /// `orphan`, `skipped-members`.
    pub kind: String,
    /// The resource concerned.
    pub resource: String,
    /// The message.
    pub message: String,
}

/// Why a plan must not be applied.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SafetyStop {
    /// Each limit exceeded, in words with numbers.
    pub reasons: Vec<String>,
}

/// Counts of a plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Changes that add.
    pub add: usize,
    /// Changes that modify.
    pub change: usize,
    /// Changes that remove.
    pub remove: usize,
    /// Problems.
    pub problems: usize,
    /// Notices.
    pub notices: usize,
    /// Principals (service principals' object ids) granted.
    pub principals_added: usize,
    /// Principals whose access is taken away.
    pub principals_removed: usize,
    /// Changes per action name.
    pub by_action: BTreeMap<String, usize>,
}

/// The result of planning: a value that can be rendered, checked and applied.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// Counts.
    pub summary: Summary,
    /// Changes in execution order.
    pub changes: Vec<Change>,
    /// Problems; their mappings are left alone.
    pub problems: Vec<Problem>,
    /// Notices.
    pub notices: Vec<Notice>,
    /// Set when a safety limit stops the plan.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub safety: Option<SafetyStop>,
}

impl Plan {
    /// True when nothing needs changing.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

struct Planner<'a> {
    s: &'a Settings,
    observed: &'a Observed,
    changes: Vec<Change>,
    problems: Vec<Problem>,
    notices: Vec<Notice>,
    principals_before: usize,
    principals_removed: usize,
    principals_added: usize,
    roles_deleted: usize,
    roles_owned: usize,
}

/// Computes the plan. Pure.
pub fn plan(desired: &Desired, observed: &Observed, settings: &Settings) -> Plan {
    let mut p = Planner {
        s: settings,
        observed,
        changes: Vec::new(),
        problems: Vec::new(),
        notices: Vec::new(),
        principals_before: 0,
        principals_removed: 0,
        principals_added: 0,
        roles_deleted: 0,
        roles_owned: 0,
    };
    for e in &desired.errors {
        p.problems.push(Problem {
            kind: "mapping-error".into(),
            mapping: Some(e.mapping.clone()),
            resource: e.resource.clone(),
            message: e.message.clone(),
        });
    }
    for dp in &desired.providers {
        p.provider(dp);
    }
    let wanted_urls: BTreeSet<String> = desired
        .providers
        .iter()
        .map(|d| d.url.to_ascii_lowercase())
        .collect();
    for op in &observed.providers {
        if op.tags.get(&settings.owner_tag.key) == Some(&settings.owner_tag.value)
            && !wanted_urls.contains(&op.url.to_ascii_lowercase())
        {
            if settings.prune {
                p.push(
                    Action::DeleteOidcProvider {
                        provider_arn: op.arn.clone(),
                    },
                    &op.arn,
                    None,
                    "owned provider no longer in any policy (prune)",
                );
            } else {
                p.notice(
                    "orphan",
                    &op.arn,
                    "owned provider no longer in any policy; enable prune to delete it",
                );
            }
        }
    }

    // Every owned role's current principals count towards the safety share.
    for role in observed.roles.values() {
        if p.owned(role) {
            p.roles_owned += 1;
            p.principals_before += trusted_subjects(&role.trust).len();
        }
    }
    let mut wanted: BTreeSet<String> = desired
        .roles
        .iter()
        .map(|r| r.name.to_ascii_lowercase())
        .collect();
    // Roles of mappings that could not be planned are left alone, never pruned.
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
                    "orphan",
                    &role.arn,
                    "owned role no longer in any policy; enable prune to delete it",
                );
            }
        }
    }
    for df in &desired.functions {
        p.function(df);
    }
    p.finish()
}

impl<'a> Planner<'a> {
    fn owned(&self, role: &ObservedRole) -> bool {
        role.tags.get(&self.s.owner_tag.key) == Some(&self.s.owner_tag.value)
            && role.path.starts_with(&self.s.role_path)
    }

    fn push(
        &mut self,
        action: Action,
        resource: &str,
        mapping: Option<&str>,
        reason: impl Into<String>,
    ) -> &mut Change {
        let effect = action.effect();
        self.changes.push(Change {
            action,
            effect,
            resource: resource.to_string(),
            mapping: mapping.map(String::from),
            reason: reason.into(),
            before: None,
            after: None,
            members_added: Vec::new(),
            members_removed: Vec::new(),
        });
        self.changes.last_mut().expect("just pushed")
    }

    fn problem(&mut self, kind: &str, mapping: &str, resource: &str, message: String) {
        self.problems.push(Problem {
            kind: kind.into(),
            mapping: Some(mapping.into()),
            resource: resource.into(),
            message,
        });
    }

    fn notice(&mut self, kind: &str, resource: &str, message: impl Into<String>) {
        self.notices.push(Notice {
            kind: kind.into(),
            resource: resource.into(),
            message: message.into(),
        });
    }

    fn provider(&mut self, dp: &DesiredProvider) {
        let owner = &self.s.owner_tag;
        let m = Some(dp.mapping.as_str());
        let Some(op) = self
            .observed
            .providers
            .iter()
            .find(|o| o.url.eq_ignore_ascii_case(&dp.url))
        else {
            self.push(
                Action::CreateOidcProvider {
                    url: format!("https://{}", dp.url),
                    client_ids: dp.client_ids.iter().cloned().collect(),
                    thumbprints: dp.thumbprints.clone(),
                    tags: dp.tags.clone(),
                },
                &dp.arn,
                m,
                "provider for the tenant's issuer does not exist",
            );
            return;
        };
        let tag = op.tags.get(&owner.key);
        if tag != Some(&owner.value) {
            if let Some(other) = tag {
                self.problem(
                    "conflict",
                    &dp.mapping,
                    &op.arn,
                    format!(
                        "provider is owned by another trustsync instance (`{}={other}`)",
                        owner.key
                    ),
                );
                return;
            }
            if !dp.adopt {
                self.problem(
                    "conflict",
                    &dp.mapping,
                    &op.arn,
                    "a provider for this issuer exists and is not owned by trustsync; set `adopt: true` on the IdentityProvider to take it over (roles still refer to it)".into(),
                );
                return;
            }
        }
        for aud in dp.client_ids.difference(&op.client_ids) {
            self.push(
                Action::AddProviderAudience {
                    provider_arn: op.arn.clone(),
                    audience: aud.clone(),
                },
                &op.arn,
                m,
                format!("audience `{aud}` missing"),
            );
        }
        let missing: BTreeMap<String, String> = dp
            .tags
            .iter()
            .filter(|(k, v)| op.tags.get(*k) != Some(v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !missing.is_empty() {
            let reason = if tag.is_none() {
                "adopting the provider (owner tag)"
            } else {
                "tags drifted"
            };
            self.push(
                Action::TagOidcProvider {
                    provider_arn: op.arn.clone(),
                    tags: missing,
                },
                &op.arn,
                m,
                reason,
            );
        }
        for aud in op.client_ids.difference(&dp.client_ids) {
            self.push(
                Action::RemoveProviderAudience {
                    provider_arn: op.arn.clone(),
                    audience: aud.clone(),
                },
                &op.arn,
                m,
                format!("audience `{aud}` no longer in the policy"),
            );
        }
    }

    fn role(&mut self, dr: &DesiredRole) {
        let m = Some(dr.mapping.as_str());
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
                    "skipped-members",
                    &dr.arn,
                    format!(
                        "group `{}` has members that cannot assume a role by object id: {}",
                        g.display_name,
                        list.join(", ")
                    ),
                );
            }
        }
        let Some(or) = self.observed.roles.get(&dr.name.to_ascii_lowercase()) else {
            let subs: Vec<String> = dr
                .group
                .iter()
                .flat_map(|g| g.principals.iter().map(|p| p.id.clone()))
                .collect();
            self.principals_added += subs.len();
            let c = self.push(
                Action::CreateRole {
                    role_name: dr.name.clone(),
                    path: dr.path.clone(),
                    trust_policy: dr.trust.clone(),
                    description: dr.description.clone(),
                    max_session_duration: dr.max_session_duration,
                    permissions_boundary: dr.permissions_boundary.clone(),
                    tags: dr.tags.clone(),
                },
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
                    Action::PutInlinePolicy {
                        role_name: dr.name.clone(),
                        policy_name: name.clone(),
                        document: doc.clone(),
                    },
                    &dr.arn,
                    m,
                    "new role",
                );
                c.effect = Effect::Add;
                c.after = Some(doc.clone());
            }
            for arn in &dr.managed_policies {
                self.push(
                    Action::AttachManagedPolicy {
                        role_name: dr.name.clone(),
                        policy_arn: arn.clone(),
                    },
                    &dr.arn,
                    m,
                    "new role",
                );
            }
            return;
        };
        let owner = &self.s.owner_tag;
        let tag = or.tags.get(&owner.key);
        let owned = self.owned(or);
        if !owned {
            if let Some(other) = tag.filter(|v| *v != &owner.value) {
                self.problem(
                    "conflict",
                    &dr.mapping,
                    &or.arn,
                    format!(
                        "role is owned by another trustsync instance (`{}={other}`)",
                        owner.key
                    ),
                );
                return;
            }
            if !dr.adopt {
                self.problem(
                    "conflict",
                    &dr.mapping,
                    &or.arn,
                    format!("role `{}` exists and is not owned by trustsync; set `adopt: true` on the mapping to take it over", or.name),
                );
                return;
            }
        }
        if or.path != dr.path {
            self.problem(
                "cannot-move-role",
                &dr.mapping,
                &or.arn,
                format!("role lives at path `{}`, the policy wants `{}`; IAM cannot move a role: delete it or restore the path", or.path, dr.path),
            );
            return;
        }
        let arn = or.arn.as_str();
        if !iam_policy::equivalent(&dr.trust, &or.trust) {
            let before = trusted_subjects(&or.trust);
            let after = trusted_subjects(&dr.trust);
            let added: Vec<String> = after.difference(&before).cloned().collect();
            let removed: Vec<String> = before.difference(&after).cloned().collect();
            if owned {
                self.principals_removed += removed.len();
            }
            self.principals_added += added.len();
            let reason = match (&dr.group, added.is_empty() && removed.is_empty()) {
                (Some(g), false) => format!(
                    "group `{}` membership changed: {} added, {} removed",
                    g.display_name,
                    added.len(),
                    removed.len()
                ),
                _ => "trust policy drifted from the policy".to_string(),
            };
            let c = self.push(
                Action::UpdateTrustPolicy {
                    role_name: dr.name.clone(),
                    trust_policy: dr.trust.clone(),
                },
                arn,
                m,
                reason,
            );
            c.before = Some(or.trust.clone());
            c.after = Some(dr.trust.clone());
            c.members_added = added;
            c.members_removed = removed;
        }
        let desc_drift = dr.description.is_some() && dr.description != or.description;
        let session_drift = or
            .max_session_duration
            .is_some_and(|s| s != dr.max_session_duration);
        if desc_drift || session_drift {
            let c = self.push(
                Action::UpdateRole {
                    role_name: dr.name.clone(),
                    description: dr.description.clone(),
                    max_session_duration: dr.max_session_duration,
                },
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
                    Action::PutPermissionsBoundary {
                        role_name: dr.name.clone(),
                        policy_arn: want.clone(),
                    },
                    arn,
                    m,
                    "permissions boundary differs",
                );
                c.before = have.clone().map(Value::String);
                c.after = Some(Value::String(want.clone()));
            }
            (None, Some(have)) => {
                let c = self.push(
                    Action::DeletePermissionsBoundary {
                        role_name: dr.name.clone(),
                    },
                    arn,
                    m,
                    "permissions boundary not in the policy",
                );
                c.before = Some(Value::String(have.clone()));
            }
            _ => {}
        }
        for (name, doc) in &dr.inline_policies {
            let have = or.inline_policies.get(name);
            if !have.is_some_and(|h| iam_policy::equivalent(doc, h)) {
                let reason = if have.is_some() {
                    "inline policy drifted"
                } else {
                    "inline policy missing"
                };
                let c = self.push(
                    Action::PutInlinePolicy {
                        role_name: dr.name.clone(),
                        policy_name: name.clone(),
                        document: doc.clone(),
                    },
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
            if !dr.inline_policies.contains_key(name) {
                let c = self.push(
                    Action::DeleteInlinePolicy {
                        role_name: dr.name.clone(),
                        policy_name: name.clone(),
                    },
                    arn,
                    m,
                    "inline policy not in the policy",
                );
                c.before = Some(doc.clone());
            }
        }
        for p in dr.managed_policies.difference(&or.managed_policies) {
            self.push(
                Action::AttachManagedPolicy {
                    role_name: dr.name.clone(),
                    policy_arn: p.clone(),
                },
                arn,
                m,
                "managed policy not attached",
            );
        }
        for p in or.managed_policies.difference(&dr.managed_policies) {
            self.push(
                Action::DetachManagedPolicy {
                    role_name: dr.name.clone(),
                    policy_arn: p.clone(),
                },
                arn,
                m,
                "managed policy not in the policy",
            );
        }
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
                Action::TagRole {
                    role_name: dr.name.clone(),
                    tags: tag_set,
                },
                arn,
                m,
                reason,
            );
        }
        let untag: Vec<String> = or
            .tags
            .keys()
            .filter(|k| !dr.tags.contains_key(*k))
            .cloned()
            .collect();
        if !untag.is_empty() {
            self.push(
                Action::UntagRole {
                    role_name: dr.name.clone(),
                    keys: untag,
                },
                arn,
                m,
                "tags not in the policy",
            );
        }
    }

    fn delete_role(&mut self, role: &ObservedRole) {
        let reason = "owned role no longer in any policy (prune)";
        for p in &role.managed_policies {
            self.push(
                Action::DetachManagedPolicy {
                    role_name: role.name.clone(),
                    policy_arn: p.clone(),
                },
                &role.arn,
                None,
                reason,
            );
        }
        for (name, doc) in &role.inline_policies {
            let c = self.push(
                Action::DeleteInlinePolicy {
                    role_name: role.name.clone(),
                    policy_name: name.clone(),
                },
                &role.arn,
                None,
                reason,
            );
            c.before = Some(doc.clone());
        }
        let subs: Vec<String> = trusted_subjects(&role.trust).into_iter().collect();
        self.principals_removed += subs.len();
        self.roles_deleted += 1;
        let c = self.push(
            Action::DeleteRole {
                role_name: role.name.clone(),
            },
            &role.arn,
            None,
            reason,
        );
        c.before = Some(role.trust.clone());
        c.members_removed = subs;
    }

    fn function(&mut self, df: &DesiredFunction) {
        let key = (df.name.clone(), df.qualifier.clone());
        let resource = df.qualified_arn();
        let Some(Some(of)) = self.observed.functions.get(&key) else {
            self.problem(
                "function-not-found",
                &df.mapping,
                &resource,
                format!("function `{}`{} does not exist; trustsync manages its permissions, not the function", df.name, df.qualifier.as_ref().map(|q| format!(" (qualifier `{q}`)")).unwrap_or_default()),
            );
            return;
        };
        let m = Some(df.mapping.as_str());
        self.lambda_statements(df, of, &resource, m);
        if let Some(role) = &df.execution_role {
            if of.role.as_ref() != Some(role) {
                let c = self.push(
                    Action::SetExecutionRole {
                        function_name: df.name.clone(),
                        role_arn: role.clone(),
                        revision_id: of.config_revision.clone(),
                    },
                    &of.arn,
                    m,
                    "execution role differs",
                );
                c.before = of.role.clone().map(Value::String);
                c.after = Some(Value::String(role.clone()));
            }
        }
    }

    fn lambda_statements(
        &mut self,
        df: &DesiredFunction,
        of: &ObservedFunction,
        resource: &str,
        m: Option<&str>,
    ) {
        let mut have: BTreeMap<String, &Value> = BTreeMap::new();
        for st in &of.statements {
            if let Some(sid) = st.get("Sid").and_then(Value::as_str) {
                if sid.starts_with(&self.s.statement_id_prefix) {
                    have.insert(sid.to_string(), st);
                }
            }
        }
        let remove = |sid: &str| Action::RemoveLambdaPermission {
            function_name: df.name.clone(),
            qualifier: df.qualifier.clone(),
            statement_id: sid.to_string(),
            revision_id: of.policy_revision.clone(),
        };
        for (sid, want) in &df.statements {
            let add = Action::AddLambdaPermission {
                function_name: df.name.clone(),
                qualifier: df.qualifier.clone(),
                statement_id: sid.clone(),
                principal: want.principal.clone(),
                lambda_action: want.action.clone(),
                source_arn: want.source_arn.clone(),
                source_account: want.source_account.clone(),
                revision_id: of.policy_revision.clone(),
            };
            match have.get(sid) {
                None => {
                    let c = self.push(
                        add,
                        resource,
                        m,
                        format!("invoker `{}` not allowed yet", want.invoker),
                    );
                    c.after = Some(want.document());
                }
                Some(st) => {
                    let mut st = (*st).clone();
                    if let Value::Object(map) = &mut st {
                        map.remove("Resource");
                    }
                    if !iam_policy::statements_equivalent(&want.document(), &st) {
                        let reason = if principal_is_unique_id(&st) {
                            "statement names a deleted principal (unique id); re-adding it"
                                .to_string()
                        } else {
                            "statement drifted from the policy".to_string()
                        };
                        let c = self.push(remove(sid), resource, m, reason.clone());
                        c.before = Some(st.clone());
                        let c = self.push(add, resource, m, reason);
                        c.after = Some(want.document());
                    }
                }
            }
        }
        for (sid, st) in have {
            if !df.statements.contains_key(&sid) {
                let c = self.push(remove(&sid), resource, m, "invoker no longer in the policy");
                c.before = Some(st.clone());
            }
        }
    }

    fn finish(mut self) -> Plan {
        let safety = &self.s.safety;
        let mut reasons = Vec::new();
        if self.principals_before > 0 && self.principals_removed > safety.principal_removal_floor {
            let share = self.principals_removed as f64 / self.principals_before as f64;
            if share > safety.max_principal_removal_share {
                reasons.push(format!(
                    "the plan removes {} of {} trusted principals ({:.0}%), over safety.maxPrincipalRemovalShare = {:.0}%",
                    self.principals_removed,
                    self.principals_before,
                    share * 100.0,
                    safety.max_principal_removal_share * 100.0
                ));
            }
        }
        if self.roles_owned > 0 && self.roles_deleted > 0 {
            let share = self.roles_deleted as f64 / self.roles_owned as f64;
            if share > safety.max_role_deletion_share {
                reasons.push(format!(
                    "the plan deletes {} of {} owned roles ({:.0}%), over safety.maxRoleDeletionShare = {:.0}%",
                    self.roles_deleted,
                    self.roles_owned,
                    share * 100.0,
                    safety.max_role_deletion_share * 100.0
                ));
            }
        }
        self.changes.sort_by_key(|c| c.action.phase());
        let mut summary = Summary {
            problems: self.problems.len(),
            notices: self.notices.len(),
            principals_added: self.principals_added,
            principals_removed: self.principals_removed,
            ..Summary::default()
        };
        for c in &self.changes {
            match c.effect {
                Effect::Add => summary.add += 1,
                Effect::Change => summary.change += 1,
                Effect::Remove => summary.remove += 1,
            }
            *summary.by_action.entry(c.action.name()).or_default() += 1;
        }
        Plan {
            summary,
            changes: self.changes,
            problems: self.problems,
            notices: self.notices,
            safety: (!reasons.is_empty()).then_some(SafetyStop { reasons }),
        }
    }
}

fn principal_is_unique_id(st: &Value) -> bool {
    let canon = iam_policy::canonical_statement(st);
    canon
        .get("Principal")
        .and_then(|p| p.get("AWS"))
        .and_then(Value::as_array)
        .is_some_and(|ids| {
            ids.iter()
                .filter_map(Value::as_str)
                .any(|s| s.starts_with("AROA") || s.starts_with("AIDA"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::desired::{self, Target};
    use crate::directory::TenantFile;
    use crate::policy::{load_text, PolicySet};
    use serde_json::json;
    use std::path::Path;

    const POLICIES: &str = "\
apiVersion: trustsync.dev/v1alpha1
kind: IdentityProvider
metadata: {name: entra}
spec: {tenantId: 00000000-0000-0000-0000-0000000000aa, audiences: [api://aws]}
---
apiVersion: trustsync.dev/v1alpha1
kind: RoleMapping
metadata: {name: deployers}
spec:
  provider: entra
  group: {id: 00000000-0000-0000-0000-000000000001}
  role:
    name: deployer
    managedPolicies: [arn:aws:iam::aws:policy/ReadOnlyAccess]
    inlinePolicies:
      p: {Version: '2012-10-17', Statement: [{Effect: Allow, Action: [s3:GetObject, s3:ListBucket], Resource: '*'}]}
---
apiVersion: trustsync.dev/v1alpha1
kind: FunctionAccess
metadata: {name: api}
spec:
  function: api
  invokers: [{roleMapping: deployers}]
";

    fn tenant(members: &[&str]) -> TenantFile {
        let sps: Vec<_> = ["a", "b", "c", "d"]
            .iter()
            .map(|s| json!({"id": format!("00000000-0000-0000-0000-00000000000{s}")}))
            .collect();
        serde_json::from_value(json!({
            "tenantId": "t",
            "groups": [{"id": "00000000-0000-0000-0000-000000000001", "displayName": "g",
                        "members": members.iter().map(|m| format!("00000000-0000-0000-0000-00000000000{m}")).collect::<Vec<_>>()}],
            "servicePrincipals": sps,
        }))
        .unwrap()
    }

    fn desired_for(members: &[&str], extra: &str) -> Desired {
        let mut set = PolicySet::default();
        let mut diags = Vec::new();
        load_text(
            Path::new("p.yaml"),
            &format!("{POLICIES}{extra}"),
            &mut set,
            &mut diags,
        );
        assert!(diags.is_empty(), "{diags:?}");
        let snap = tenant(members).snapshot(&desired::group_requests(&set));
        let target = Target {
            account_id: "123456789012".into(),
            region: "us-east-1".into(),
        };
        desired::build(&set, &snap, &Config::default(), &target)
    }

    fn settings(prune: bool) -> Settings {
        Settings::from_config(&Config {
            prune,
            ..Config::default()
        })
    }

    /// What AWS would hold after applying `d`, written the way AWS writes it back:
    /// scalars for one-element lists, a principal ARN as a bare string, other orders.
    fn converged(d: &Desired) -> Observed {
        let mut o = Observed {
            account_id: "123456789012".into(),
            ..Observed::default()
        };
        for p in &d.providers {
            o.providers.push(crate::observed::ObservedProvider {
                arn: p.arn.clone(),
                url: p.url.clone(),
                client_ids: p.client_ids.clone(),
                tags: p.tags.clone(),
            });
        }
        for r in &d.roles {
            let mut trust = r.trust.clone();
            if let Some(cond) = trust["Statement"][0].get_mut("Condition") {
                for (_, v) in cond["StringEquals"].as_object_mut().unwrap() {
                    if let Some(list) = v.as_array_mut() {
                        list.reverse();
                        if list.len() == 1 {
                            *v = list[0].clone();
                        }
                    }
                }
            }
            let inline = r
                .inline_policies
                .iter()
                .map(|(k, v)| {
                    let mut v = v.clone();
                    let st = v["Statement"][0].clone();
                    v["Statement"] = st; // a lone statement as an object
                    (k.clone(), v)
                })
                .collect();
            o.roles.insert(
                r.name.to_ascii_lowercase(),
                ObservedRole {
                    name: r.name.clone(),
                    path: r.path.clone(),
                    arn: r.arn.clone(),
                    id: "AROAEXAMPLE".into(),
                    trust,
                    description: r.description.clone(),
                    max_session_duration: Some(r.max_session_duration),
                    permissions_boundary: r.permissions_boundary.clone(),
                    inline_policies: inline,
                    managed_policies: r.managed_policies.clone(),
                    tags: r.tags.clone(),
                },
            );
        }
        for f in &d.functions {
            let statements = f
                .statements
                .values()
                .map(|s| {
                    let mut doc = s.document();
                    doc["Principal"] = json!(s.principal); // moto's bare-string form
                    doc["Resource"] = json!(f.arn);
                    doc
                })
                .collect();
            o.functions.insert(
                (f.name.clone(), f.qualifier.clone()),
                Some(ObservedFunction {
                    arn: f.arn.clone(),
                    role: f.execution_role.clone(),
                    config_revision: Some("r1".into()),
                    policy_revision: Some("p1".into()),
                    statements,
                }),
            );
        }
        o
    }

    fn names(p: &Plan) -> Vec<String> {
        p.changes.iter().map(|c| c.action.name()).collect()
    }

    #[test]
    fn converged_state_in_aws_representation_plans_nothing() {
        let d = desired_for(&["a", "b", "c"], "");
        let p = plan(&d, &converged(&d), &settings(false));
        assert!(p.is_empty(), "{:#?}", p.changes);
        assert!(p.problems.is_empty() && p.safety.is_none());
    }

    #[test]
    fn from_empty_account_creates_in_dependency_order() {
        let d = desired_for(&["a"], "");
        let o = Observed {
            functions: converged(&d).functions,
            ..Observed::default()
        };
        let mut o = o;
        for f in o.functions.values_mut().flatten() {
            f.statements.clear();
        }
        let p = plan(&d, &o, &settings(false));
        assert_eq!(
            names(&p),
            [
                "create-oidc-provider",
                "create-role",
                "put-inline-policy",
                "attach-managed-policy",
                "add-lambda-permission"
            ]
        );
        assert_eq!(p.summary.add, 5);
        assert_eq!(p.summary.principals_added, 1);
    }

    #[test]
    fn membership_change_updates_trust_with_members_named() {
        let before = desired_for(&["a", "b"], "");
        let after = desired_for(&["a", "c"], "");
        let p = plan(&after, &converged(&before), &settings(false));
        assert_eq!(names(&p), ["update-trust-policy"]);
        let c = &p.changes[0];
        assert_eq!(c.members_added, ["00000000-0000-0000-0000-00000000000c"]);
        assert_eq!(c.members_removed, ["00000000-0000-0000-0000-00000000000b"]);
        assert_eq!(c.reason, "group `g` membership changed: 1 added, 1 removed");
    }

    #[test]
    fn unowned_and_foreign_owned_roles_are_conflicts() {
        let d = desired_for(&["a"], "");
        let mut o = converged(&d);
        o.roles.get_mut("deployer").unwrap().tags.clear();
        let p = plan(&d, &o, &settings(false));
        assert_eq!(p.problems[0].kind, "conflict");
        assert!(names(&p).is_empty(), "{:?}", names(&p));

        o.roles
            .get_mut("deployer")
            .unwrap()
            .tags
            .insert("trustsync.dev/owner".into(), "other".into());
        let p = plan(&d, &o, &settings(false));
        assert!(p.problems[0]
            .message
            .contains("another trustsync instance (`trustsync.dev/owner=other`)"));
    }

    #[test]
    fn a_role_at_another_path_cannot_be_moved() {
        let d = desired_for(&["a"], "");
        let mut o = converged(&d);
        o.roles.get_mut("deployer").unwrap().path = "/trustsync/old/".into();
        let p = plan(&d, &o, &settings(false));
        assert_eq!(p.problems[0].kind, "cannot-move-role");
        assert!(p.is_empty());
    }

    #[test]
    fn orphans_need_prune_and_are_removed_in_reverse_order() {
        let extra = "---\napiVersion: trustsync.dev/v1alpha1\nkind: RoleMapping\nmetadata: {name: extra}\nspec:\n  trustedServices: [lambda.amazonaws.com]\n  role: {name: extra, managedPolicies: [arn:aws:iam::aws:policy/ReadOnlyAccess], inlinePolicies: {x: {Version: '2012-10-17', Statement: [{Effect: Allow, Action: 's3:*', Resource: '*'}]}}}\n";
        let with_extra = desired_for(&["a"], extra);
        let without = desired_for(&["a"], "");
        let o = converged(&with_extra);
        let p = plan(&without, &o, &settings(false));
        assert!(p.is_empty());
        assert_eq!(p.notices.iter().filter(|n| n.kind == "orphan").count(), 1);

        let p = plan(&without, &o, &settings(true));
        assert_eq!(
            names(&p),
            [
                "detach-managed-policy",
                "delete-inline-policy",
                "delete-role"
            ]
        );
        // 1 of 2 owned roles is 50%, over the default 25%.
        assert!(p.safety.as_ref().unwrap().reasons[0].contains("deletes 1 of 2 owned roles (50%)"));
    }

    #[test]
    fn removing_most_principals_trips_the_safety_limit_but_the_floor_allows_one() {
        let before = desired_for(&["a", "b", "c", "d"], "");
        let p = plan(
            &desired_for(&["a"], ""),
            &converged(&before),
            &settings(false),
        );
        let stop = p.safety.expect("3 of 4 removed");
        assert!(
            stop.reasons[0].contains("removes 3 of 4 trusted principals (75%)"),
            "{stop:?}"
        );

        let p = plan(
            &desired_for(&["a", "b", "c"], ""),
            &converged(&before),
            &settings(false),
        );
        assert!(p.safety.is_none());
        let single = desired_for(&["a"], "");
        let p = plan(&desired_for(&[], ""), &converged(&single), &settings(false));
        assert!(
            p.safety.is_none(),
            "the floor lets a one-member group lose its member"
        );
        assert_eq!(p.changes[0].members_removed.len(), 1);
    }

    #[test]
    fn an_empty_group_denies_instead_of_writing_an_empty_condition() {
        let d = desired_for(&[], "");
        let st = &d.roles[0].trust["Statement"][0];
        assert_eq!(st["Effect"], "Deny");
        assert_eq!(st["Sid"], crate::desired::NO_MEMBERS_SID);
    }

    #[test]
    fn a_statement_naming_a_deleted_role_is_re_added() {
        let d = desired_for(&["a"], "");
        let mut o = converged(&d);
        let f = o.functions.values_mut().next().unwrap().as_mut().unwrap();
        f.statements[0]["Principal"] = json!({"AWS": "AROAXXXXXXXXXXXXXXXXX"});
        let p = plan(&d, &o, &settings(false));
        assert_eq!(
            names(&p),
            ["remove-lambda-permission", "add-lambda-permission"]
        );
        assert!(p.changes[0].reason.contains("deleted principal"));
    }

    #[test]
    fn unprefixed_statements_are_not_trustsyncs() {
        let d = desired_for(&["a"], "");
        let mut o = converged(&d);
        let f = o.functions.values_mut().next().unwrap().as_mut().unwrap();
        f.statements.push(json!({"Sid": "someone-else", "Effect": "Allow", "Principal": {"Service": "s3.amazonaws.com"}, "Action": "lambda:InvokeFunction"}));
        f.statements.push(json!({"Sid": "trustsync-old-1", "Effect": "Allow", "Principal": {"Service": "s3.amazonaws.com"}, "Action": "lambda:InvokeFunction"}));
        let p = plan(&d, &o, &settings(false));
        assert_eq!(names(&p), ["remove-lambda-permission"]);
        assert!(
            matches!(&p.changes[0].action, Action::RemoveLambdaPermission { statement_id, .. } if statement_id == "trustsync-old-1")
        );
    }

    #[test]
    fn a_mapping_that_cannot_be_built_leaves_its_role_alone_even_with_prune() {
        let d = desired_for(&["a"], "");
        let o = converged(&d);
        let mut broken = d.clone();
        broken.roles.clear();
        broken.errors.push(crate::desired::MappingError {
            mapping: "deployers".into(),
            resource: "deployer".into(),
            message: "no group matches".into(),
        });
        let p = plan(&broken, &o, &settings(true));
        assert!(p.is_empty(), "{:?}", names(&p));
        assert_eq!(p.problems[0].kind, "mapping-error");
    }

    #[test]
    fn too_many_members_for_one_trust_policy_is_an_error_with_numbers() {
        let mut set = PolicySet::default();
        let mut diags = Vec::new();
        load_text(Path::new("p.yaml"), POLICIES, &mut set, &mut diags);
        let ids: Vec<String> = (0..60)
            .map(|i| format!("00000000-0000-0000-0000-{i:012}"))
            .collect();
        let t: TenantFile = serde_json::from_value(json!({
            "tenantId": "t",
            "groups": [{"id": "00000000-0000-0000-0000-000000000001", "displayName": "g", "members": ids}],
            "servicePrincipals": ids.iter().map(|i| json!({"id": i})).collect::<Vec<_>>(),
        }))
        .unwrap();
        let snap = t.snapshot(&desired::group_requests(&set));
        let target = Target {
            account_id: "123456789012".into(),
            region: "us-east-1".into(),
        };
        let d = desired::build(&set, &snap, &Config::default(), &target);
        assert!(d.roles.is_empty());
        let msg = &d.errors[0].message;
        assert!(
            msg.contains("for 60 service principals would be")
                && msg.contains("over the limit of 2048"),
            "{msg}"
        );
    }
}
