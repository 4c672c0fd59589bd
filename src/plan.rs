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
#[serde(tag = "action", rename_all = "kebab-case", rename_all_fields = "camelCase")]
#[allow(missing_docs)]
pub enum Action {
    CreateOidcProvider { url: String, client_ids: Vec<String>, thumbprints: Vec<String>, tags: BTreeMap<String, String> },
    AddProviderAudience { provider_arn: String, audience: String },
    RemoveProviderAudience { provider_arn: String, audience: String },
    TagOidcProvider { provider_arn: String, tags: BTreeMap<String, String> },
    DeleteOidcProvider { provider_arn: String },
    CreateRole {
        role_name: String,
        path: String,
        trust_policy: Value,
        description: Option<String>,
        max_session_duration: i32,
        permissions_boundary: Option<String>,
        tags: BTreeMap<String, String>,
    },
    UpdateTrustPolicy { role_name: String, trust_policy: Value },
    UpdateRole { role_name: String, description: Option<String>, max_session_duration: i32 },
    PutPermissionsBoundary { role_name: String, policy_arn: String },
    DeletePermissionsBoundary { role_name: String },
    PutInlinePolicy { role_name: String, policy_name: String, document: Value },
    DeleteInlinePolicy { role_name: String, policy_name: String },
    AttachManagedPolicy { role_name: String, policy_arn: String },
    DetachManagedPolicy { role_name: String, policy_arn: String },
    TagRole { role_name: String, tags: BTreeMap<String, String> },
    UntagRole { role_name: String, keys: Vec<String> },
    DeleteRole { role_name: String },
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
    RemoveLambdaPermission { function_name: String, qualifier: Option<String>, statement_id: String, revision_id: Option<String> },
    SetExecutionRole { function_name: String, role_arn: String, revision_id: Option<String> },
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
            UpdateTrustPolicy { .. } | UpdateRole { .. } | PutPermissionsBoundary { .. } | TagRole { .. } => 30,
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
            CreateOidcProvider { .. } | CreateRole { .. } | AddLambdaPermission { .. } | AttachManagedPolicy { .. }
            | AddProviderAudience { .. } => Effect::Add,
            DeleteOidcProvider { .. } | DeleteRole { .. } | RemoveLambdaPermission { .. } | DetachManagedPolicy { .. }
            | DeleteInlinePolicy { .. } | DeletePermissionsBoundary { .. } | RemoveProviderAudience { .. }
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
    let wanted_urls: BTreeSet<String> = desired.providers.iter().map(|d| d.url.to_ascii_lowercase()).collect();
    for op in &observed.providers {
        if op.tags.get(&settings.owner_tag.key) == Some(&settings.owner_tag.value)
            && !wanted_urls.contains(&op.url.to_ascii_lowercase())
        {
            if settings.prune {
                p.push(Action::DeleteOidcProvider { provider_arn: op.arn.clone() }, &op.arn, None, "owned provider no longer in any policy (prune)");
            } else {
                p.notice("orphan", &op.arn, "owned provider no longer in any policy; enable prune to delete it");
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
    let mut wanted: BTreeSet<String> = desired.roles.iter().map(|r| r.name.to_ascii_lowercase()).collect();
    // Roles of mappings that could not be planned are left alone, never pruned.
    wanted.extend(desired.errors.iter().map(|e| e.resource.to_ascii_lowercase()));
    for dr in &desired.roles {
        p.role(dr);
    }
    for (key, role) in &observed.roles {
        if p.owned(role) && !wanted.contains(key) {
            if settings.prune {
                p.delete_role(role);
            } else {
                p.notice("orphan", &role.arn, "owned role no longer in any policy; enable prune to delete it");
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
        role.tags.get(&self.s.owner_tag.key) == Some(&self.s.owner_tag.value) && role.path.starts_with(&self.s.role_path)
    }

    fn push(&mut self, action: Action, resource: &str, mapping: Option<&str>, reason: impl Into<String>) -> &mut Change {
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
        self.notices.push(Notice { kind: kind.into(), resource: resource.into(), message: message.into() });
    }

    fn provider(&mut self, dp: &DesiredProvider) {
        let owner = &self.s.owner_tag;
        let m = Some(dp.mapping.as_str());
        let Some(op) = self.observed.providers.iter().find(|o| o.url.eq_ignore_ascii_case(&dp.url)) else {
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
                self.problem("conflict", &dp.mapping, &op.arn, format!("provider is owned by another trustsync instance (`{}={other}`)", owner.key));
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
            self.push(Action::AddProviderAudience { provider_arn: op.arn.clone(), audience: aud.clone() }, &op.arn, m, format!("audience `{aud}` missing"));
        }
        let missing: BTreeMap<String, String> =
            dp.tags.iter().filter(|(k, v)| op.tags.get(*k) != Some(v)).map(|(k, v)| (k.clone(), v.clone())).collect();
        if !missing.is_empty() {
            let reason = if tag.is_none() { "adopting the provider (owner tag)" } else { "tags drifted" };
            self.push(Action::TagOidcProvider { provider_arn: op.arn.clone(), tags: missing }, &op.arn, m, reason);
        }
        for aud in op.client_ids.difference(&dp.client_ids) {
            self.push(Action::RemoveProviderAudience { provider_arn: op.arn.clone(), audience: aud.clone() }, &op.arn, m, format!("audience `{aud}` no longer in the policy"));
        }
    }

    fn role(&mut self, dr: &DesiredRole) {
        let m = Some(dr.mapping.as_str());
        if let Some(g) = &dr.group {
            if !g.skipped.is_empty() {
                let list: Vec<String> = g
                    .skipped
                    .iter()
                    .map(|s| format!("{} ({:?} {})", s.display_name.as_deref().unwrap_or("?"), s.kind, s.id))
                    .collect();
                self.notice(
                    "skipped-members",
                    &dr.arn,
                    format!("group `{}` has members that cannot assume a role by object id: {}", g.display_name, list.join(", ")),
                );
            }
        }
        let Some(or) = self.observed.roles.get(&dr.name.to_ascii_lowercase()) else {
            let subs: Vec<String> = dr.group.iter().flat_map(|g| g.principals.iter().map(|p| p.id.clone())).collect();
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
                    Some(g) => format!("role does not exist; group `{}` has {} service principal(s)", g.display_name, g.principals.len()),
                    None => "role does not exist".to_string(),
                },
            );
            c.after = Some(dr.trust.clone());
            c.members_added = subs;
            for (name, doc) in &dr.inline_policies {
                let c = self.push(
                    Action::PutInlinePolicy { role_name: dr.name.clone(), policy_name: name.clone(), document: doc.clone() },
                    &dr.arn,
                    m,
                    "new role",
                );
                c.effect = Effect::Add;
                c.after = Some(doc.clone());
            }
            for arn in &dr.managed_policies {
                self.push(Action::AttachManagedPolicy { role_name: dr.name.clone(), policy_arn: arn.clone() }, &dr.arn, m, "new role");
            }
            return;
        };
        let owner = &self.s.owner_tag;
        let tag = or.tags.get(&owner.key);
        let owned = self.owned(or);
        if !owned {
            if let Some(other) = tag.filter(|v| *v != &owner.value) {
                self.problem("conflict", &dr.mapping, &or.arn, format!("role is owned by another trustsync instance (`{}={other}`)", owner.key));
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
            let c = self.push(Action::UpdateTrustPolicy { role_name: dr.name.clone(), trust_policy: dr.trust.clone() }, arn, m, reason);
            c.before = Some(or.trust.clone());
            c.after = Some(dr.trust.clone());
            c.members_added = added;
            c.members_removed = removed;
        }
        let desc_drift = dr.description.is_some() && dr.description != or.description;
        let session_drift = or.max_session_duration.is_some_and(|s| s != dr.max_session_duration);
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
            c.before = Some(serde_json::json!({"description": or.description, "maxSessionDuration": or.max_session_duration}));
            c.after = Some(serde_json::json!({"description": dr.description, "maxSessionDuration": dr.max_session_duration}));
        }
        match (&dr.permissions_boundary, &or.permissions_boundary) {
            (Some(want), have) if Some(want) != have.as_ref() => {
                let c = self.push(Action::PutPermissionsBoundary { role_name: dr.name.clone(), policy_arn: want.clone() }, arn, m, "permissions boundary differs");
                c.before = have.clone().map(Value::String);
                c.after = Some(Value::String(want.clone()));
            }
            (None, Some(have)) => {
                let c = self.push(Action::DeletePermissionsBoundary { role_name: dr.name.clone() }, arn, m, "permissions boundary not in the policy");
                c.before = Some(Value::String(have.clone()));
            }
            _ => {}
        }
        for (name, doc) in &dr.inline_policies {
            let have = or.inline_policies.get(name);
            if !have.is_some_and(|h| iam_policy::equivalent(doc, h)) {
                let reason = if have.is_some() { "inline policy drifted" } else { "inline policy missing" };
                let c = self.push(
                    Action::PutInlinePolicy { role_name: dr.name.clone(), policy_name: name.clone(), document: doc.clone() },
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
                let c = self.push(Action::DeleteInlinePolicy { role_name: dr.name.clone(), policy_name: name.clone() }, arn, m, "inline policy not in the policy");
                c.before = Some(doc.clone());
            }
        }
        for p in dr.managed_policies.difference(&or.managed_policies) {
            self.push(Action::AttachManagedPolicy { role_name: dr.name.clone(), policy_arn: p.clone() }, arn, m, "managed policy not attached");
        }
        for p in or.managed_policies.difference(&dr.managed_policies) {
            self.push(Action::DetachManagedPolicy { role_name: dr.name.clone(), policy_arn: p.clone() }, arn, m, "managed policy not in the policy");
        }
        let tag_set: BTreeMap<String, String> =
            dr.tags.iter().filter(|(k, v)| or.tags.get(*k) != Some(v)).map(|(k, v)| (k.clone(), v.clone())).collect();
        if !tag_set.is_empty() {
            let reason = if owned { "tags drifted" } else { "adopting the role (owner tag)" };
            self.push(Action::TagRole { role_name: dr.name.clone(), tags: tag_set }, arn, m, reason);
        }
        let untag: Vec<String> = or.tags.keys().filter(|k| !dr.tags.contains_key(*k)).cloned().collect();
        if !untag.is_empty() {
            self.push(Action::UntagRole { role_name: dr.name.clone(), keys: untag }, arn, m, "tags not in the policy");
        }
    }

    fn delete_role(&mut self, role: &ObservedRole) {
        let reason = "owned role no longer in any policy (prune)";
        for p in &role.managed_policies {
            self.push(Action::DetachManagedPolicy { role_name: role.name.clone(), policy_arn: p.clone() }, &role.arn, None, reason);
        }
        for (name, doc) in &role.inline_policies {
            let c = self.push(Action::DeleteInlinePolicy { role_name: role.name.clone(), policy_name: name.clone() }, &role.arn, None, reason);
            c.before = Some(doc.clone());
        }
        let subs: Vec<String> = trusted_subjects(&role.trust).into_iter().collect();
        self.principals_removed += subs.len();
        self.roles_deleted += 1;
        let c = self.push(Action::DeleteRole { role_name: role.name.clone() }, &role.arn, None, reason);
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
                    Action::SetExecutionRole { function_name: df.name.clone(), role_arn: role.clone(), revision_id: of.config_revision.clone() },
                    &of.arn,
                    m,
                    "execution role differs",
                );
                c.before = of.role.clone().map(Value::String);
                c.after = Some(Value::String(role.clone()));
            }
        }
    }

    fn lambda_statements(&mut self, df: &DesiredFunction, of: &ObservedFunction, resource: &str, m: Option<&str>) {
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
                    let c = self.push(add, resource, m, format!("invoker `{}` not allowed yet", want.invoker));
                    c.after = Some(want.document());
                }
                Some(st) => {
                    let mut st = (*st).clone();
                    if let Value::Object(map) = &mut st {
                        map.remove("Resource");
                    }
                    if !iam_policy::statements_equivalent(&want.document(), &st) {
                        let reason = if principal_is_unique_id(&st) {
                            "statement names a deleted principal (unique id); re-adding it".to_string()
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
        .is_some_and(|ids| ids.iter().filter_map(Value::as_str).any(|s| s.starts_with("AROA") || s.starts_with("AIDA")))
}
