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
//! from one that adds them ([`Action::RevokeTrust`], applied before anything else). A
//! mapping that cannot be fully planned ([`DesiredRole::blocked`]) still gets its
//! revocation (`current ∩ may_keep`) and nothing else. Each revocation carries the numbers
//! the safety checks need ([`Removal`]); the planner itself holds nothing back: that is
//! [`crate::checks`]' job.
//!
//! Changes come out in dependency order: revocations, provider, roles, policies, Lambda
//! permissions and execution roles; removals in reverse (Lambda statements, policies,
//! roles, provider).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use crate::config::{OwnerTag, Safety};
use crate::desired::{Desired, DesiredFunction, DesiredProvider, DesiredRole};
use crate::model::iam_policy;
use crate::observed::{
    trusted_services, trusted_subjects, Observed, ObservedFunction, ObservedProvider, ObservedRole,
};

/// What the planner needs from the config.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The owner tag.
    pub owner_tag: OwnerTag,
    /// Managed role path prefix.
    pub role_path: String,
    /// This instance's Lambda statement id prefix.
    pub statement_id_prefix: String,
    /// This instance's function tag key.
    pub function_tag_key: String,
    /// `statementIdPrefix` alone, as statement ids were written before they carried the
    /// instance hash (migrated on the functions this instance manages).
    pub legacy_statement_prefix: String,
    /// Delete owned resources no longer wanted.
    pub prune: bool,
    /// Removal limits (the baseline window is read here; the checks apply the rest).
    pub safety: Safety,
    /// Now, in seconds since the Unix epoch (for removal baselines).
    pub now: u64,
}

impl Settings {
    /// The planner settings of a config, at the current time.
    pub fn from_config(c: &crate::config::Config) -> Self {
        Settings {
            owner_tag: c.owner_tag.clone(),
            role_path: c.role_path.clone(),
            statement_id_prefix: c.instance_statement_prefix(),
            function_tag_key: c.function_tag_key(),
            legacy_statement_prefix: c.statement_id_prefix.clone(),
            prune: c.prune,
            safety: c.safety.clone(),
            now: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        }
    }

    /// What this instance owns.
    pub fn ownership(&self) -> Ownership<'_> {
        Ownership {
            owner_tag: &self.owner_tag,
            role_path: &self.role_path,
        }
    }
}

/// What trustsync owns: the one place this is decided (the planner and the metrics ask).
#[derive(Debug, Clone, Copy)]
pub struct Ownership<'a> {
    /// The owner tag.
    pub owner_tag: &'a OwnerTag,
    /// The managed role path prefix.
    pub role_path: &'a str,
}

impl Ownership<'_> {
    /// A role carrying the owner tag under the managed path.
    pub fn role(&self, role: &ObservedRole) -> bool {
        role.tags.get(&self.owner_tag.key) == Some(&self.owner_tag.value)
            && role.path.starts_with(self.role_path)
    }

    /// A provider carrying the owner tag.
    pub fn provider(&self, p: &ObservedProvider) -> bool {
        p.tags.get(&self.owner_tag.key) == Some(&self.owner_tag.value)
    }
}

/// The role tag recording the most principals a role trusted recently (`count@unix-time`):
/// the baseline removal shares are measured against.
pub const BASELINE_TAG: &str = "trustsync.dev/removal-baseline";

/// The provider tag prefix recording an audience trustsync added (one tag per audience,
/// keyed by a hash of it): only these are ever removed.
pub const AUDIENCE_TAG_PREFIX: &str = "trustsync.dev/audience-";

/// The tag recording that trustsync added `audience` to a provider, and its value.
pub fn audience_tag(audience: &str) -> (String, String) {
    use sha2::{Digest, Sha256};
    let hash: String = Sha256::digest(audience.as_bytes())
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect();
    // IAM tag values allow letters, digits, white space and `_.:/=+-@`; an audience with
    // other characters is recorded by its hash alone.
    let tag_safe = audience.len() <= 256
        && audience
            .chars()
            .all(|c| c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c));
    (
        format!("{AUDIENCE_TAG_PREFIX}{hash}"),
        if tag_safe {
            audience.to_string()
        } else {
            String::new()
        },
    )
}

fn parse_baseline(v: &str) -> Option<(usize, u64)> {
    let (count, at) = v.split_once('@')?;
    Some((count.parse().ok()?, at.parse().ok()?))
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
    UntagOidcProvider {
        provider_arn: String,
        keys: Vec<String>,
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
    /// A trust policy update that only takes principals away; `baseline` is the removal
    /// baseline tag value to record with it.
    RevokeTrust {
        role_name: String,
        trust_policy: Value,
        baseline: Option<String>,
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
    },
    SetExecutionRole {
        function_name: String,
        role_arn: String,
        revision_id: Option<String>,
    },
    /// Marks a function whose policy trustsync writes to, listing the qualifiers.
    TagFunction {
        function_arn: String,
        key: String,
        value: String,
    },
    UntagFunction {
        function_arn: String,
        key: String,
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
            // Tags first: adopting a role tags it before its trust changes (the
            // least-privilege policy allows trust updates on owner-tagged roles only).
            TagRole { .. } => 1,
            RevokeTrust { .. } => 5,
            CreateOidcProvider { .. } => 10,
            TagOidcProvider { .. } => 11,
            AddProviderAudience { .. } => 12,
            CreateRole { .. } => 20,
            UpdateTrustPolicy { .. } | UpdateRole { .. } | PutPermissionsBoundary { .. } => 30,
            PutInlinePolicy { .. } | AttachManagedPolicy { .. } => 40,
            RemoveLambdaPermission { .. } => 50,
            TagFunction { .. } => 55,
            AddLambdaPermission { .. } | SetExecutionRole { .. } => 60,
            UntagFunction { .. } => 65,
            DetachManagedPolicy { .. } | DeleteInlinePolicy { .. } => 70,
            DeletePermissionsBoundary { .. } | UntagRole { .. } => 71,
            DeleteRole { .. } => 80,
            RemoveProviderAudience { .. } => 90,
            UntagOidcProvider { .. } => 91,
            DeleteOidcProvider { .. } => 92,
        }
    }

    /// Whether the action writes to Lambda (else to IAM).
    pub fn is_lambda(&self) -> bool {
        self.lambda_function().is_some()
    }

    /// The Lambda function an action writes to: its writes stay in order (one RevisionId
    /// chain per function).
    pub fn lambda_function(&self) -> Option<&str> {
        use Action::*;
        match self {
            AddLambdaPermission { function_name, .. }
            | RemoveLambdaPermission { function_name, .. }
            | SetExecutionRole { function_name, .. } => Some(function_name),
            TagFunction { function_arn, .. } | UntagFunction { function_arn, .. } => {
                function_arn.split(':').nth(6)
            }
            _ => None,
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
            | RevokeTrust { .. }
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
    /// For a change that takes principals away: the numbers the safety checks weigh.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub removal: Option<Removal>,
    /// For a trust update that both adds and (through the revocation before it) removes:
    /// the trust policy that adds without removing, used when the revocation is held.
    #[serde(skip)]
    pub grant_only: Option<Value>,
}

impl Change {
    /// A stable identity for the change across passes (for its back-off): what it does,
    /// to which resource, and to which part of it.
    pub fn key(&self) -> String {
        use Action::*;
        let part = match &self.action {
            AddProviderAudience { audience, .. } | RemoveProviderAudience { audience, .. } => {
                audience.as_str()
            }
            PutInlinePolicy { policy_name, .. } | DeleteInlinePolicy { policy_name, .. } => {
                policy_name.as_str()
            }
            AttachManagedPolicy { policy_arn, .. } | DetachManagedPolicy { policy_arn, .. } => {
                policy_arn.as_str()
            }
            AddLambdaPermission { statement_id, .. }
            | RemoveLambdaPermission { statement_id, .. } => statement_id.as_str(),
            _ => "",
        };
        format!("{} {} {part}", self.action.name(), self.resource)
    }
}

/// What a change takes away, for the safety checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Removal {
    /// The principals the role trusted at its baseline: the most within the removal window
    /// (recorded on the role), or now.
    pub baseline: usize,
    /// The principals it trusts after this change.
    pub after: usize,
    /// Whether this is a role deletion (pruning) rather than a membership change.
    pub deletes_role: bool,
}

impl Removal {
    /// Principals taken away, measured from the baseline.
    pub fn removed(&self) -> usize {
        self.baseline.saturating_sub(self.after)
    }
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

/// A change the checks hold back this pass, with why and what would release it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Held {
    /// The change.
    #[serde(flatten)]
    pub change: Change,
    /// Why it is held.
    pub held: Hold,
}

/// Why a change is held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Hold {
    /// `mapping-removal-limit`, `pass-removal-limit`, `role-deletion-limit`, `backoff`,
    /// `depends-on-held`.
    pub kind: String,
    /// Why, with numbers.
    pub reason: String,
    /// What would release it.
    pub release: String,
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
    /// Changes held back by the checks.
    pub held: usize,
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
    /// Changes to apply, in execution order.
    pub changes: Vec<Change>,
    /// Changes the checks hold back, with the reason and what would release them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub held: Vec<Held>,
    /// Problems; their mappings are left alone, but for revocations.
    pub problems: Vec<Problem>,
    /// Notices.
    pub notices: Vec<Notice>,
    /// Principals the owned roles trust, each role counted at its removal baseline: what
    /// the pass-wide removal share is measured against.
    #[serde(skip)]
    pub trusted_baseline: usize,
    /// Roles trustsync owns.
    #[serde(skip)]
    pub owned_roles: usize,
}

impl Plan {
    /// True when nothing is to be applied.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// True when something needs a person: a problem, or a change held by a safety limit
    /// (a back-off clears by itself).
    pub fn needs_attention(&self) -> bool {
        !self.problems.is_empty() || self.held.iter().any(|h| h.held.kind != "backoff")
    }

    /// Recounts the summary from the changes.
    pub fn summarize(&mut self) {
        let mut summary = Summary {
            held: self.held.len(),
            problems: self.problems.len(),
            notices: self.notices.len(),
            ..Summary::default()
        };
        for c in &self.changes {
            match c.effect {
                Effect::Add => summary.add += 1,
                Effect::Change => summary.change += 1,
                Effect::Remove => summary.remove += 1,
            }
            summary.principals_added += c.members_added.len();
            summary.principals_removed += c.members_removed.len();
            *summary.by_action.entry(c.action.name()).or_default() += 1;
        }
        self.summary = summary;
    }
}

struct Planner<'a> {
    s: &'a Settings,
    observed: &'a Observed,
    changes: Vec<Change>,
    problems: Vec<Problem>,
    notices: Vec<Notice>,
}

/// Computes the plan. Pure.
pub fn plan(desired: &Desired, observed: &Observed, settings: &Settings) -> Plan {
    let mut p = Planner {
        s: settings,
        observed,
        changes: Vec::new(),
        problems: Vec::new(),
        notices: Vec::new(),
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
        if settings.ownership().provider(op) && !wanted_urls.contains(&op.url.to_ascii_lowercase())
        {
            p.unwanted_provider(op);
        }
    }

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
    p.marked_functions(desired);
    let mut plan = p.finish();
    plan.trusted_baseline = trusted_baseline;
    plan.owned_roles = owned_roles;
    plan
}

impl<'a> Planner<'a> {
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
            removal: None,
            grant_only: None,
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
        // The provider records each audience trustsync adds, so that it only ever removes
        // its own: IAM allows one provider per issuer, so others may share it.
        let mut tags = dp.tags.clone();
        tags.extend(dp.client_ids.iter().map(|aud| audience_tag(aud)));
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
                    tags,
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
        let missing: BTreeMap<String, String> = tags
            .iter()
            .filter(|(k, v)| op.tags.get(*k) != Some(v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !missing.is_empty() {
            let reason = if tag.is_none() {
                "adopting the provider (owner tag); audiences already there stay, as they may serve others"
            } else {
                "tags drifted or audiences to record"
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
        self.unrecorded_audiences(op, &dp.client_ids, m);
    }

    /// Removes (with prune) the audiences trustsync recorded as its own that no policy
    /// wants any more, and forgets records of audiences already gone. Audiences it did not
    /// add are never touched.
    fn unrecorded_audiences(
        &mut self,
        op: &ObservedProvider,
        wanted: &BTreeSet<String>,
        m: Option<&str>,
    ) {
        let mut forget = Vec::new();
        for aud in op.client_ids.difference(wanted) {
            let (key, _) = audience_tag(aud);
            if !op.tags.contains_key(&key) {
                continue;
            }
            if self.s.prune {
                self.push(
                    Action::RemoveProviderAudience {
                        provider_arn: op.arn.clone(),
                        audience: aud.clone(),
                    },
                    &op.arn,
                    m,
                    format!("audience `{aud}` was added by trustsync and is no longer in any policy (prune)"),
                );
                forget.push(key);
            } else {
                self.notice(
                    "orphan",
                    &op.arn,
                    format!("audience `{aud}` was added by trustsync and is no longer in any policy; enable prune to remove it"),
                );
            }
        }
        let present: BTreeSet<String> = op.client_ids.iter().map(|a| audience_tag(a).0).collect();
        forget.extend(
            op.tags
                .keys()
                .filter(|k| k.starts_with(AUDIENCE_TAG_PREFIX) && !present.contains(*k))
                .cloned(),
        );
        if !forget.is_empty() {
            self.push(
                Action::UntagOidcProvider {
                    provider_arn: op.arn.clone(),
                    keys: forget,
                },
                &op.arn,
                m,
                "records of audiences trustsync no longer has on the provider",
            );
        }
    }

    /// An owned provider no longer in any policy: with prune, trustsync takes away what it
    /// added, and deletes the provider only when nothing else remains on it.
    fn unwanted_provider(&mut self, op: &ObservedProvider) {
        if !self.s.prune {
            self.notice(
                "orphan",
                &op.arn,
                "owned provider no longer in any policy; enable prune to delete it",
            );
            return;
        }
        let foreign: Vec<&String> = op
            .client_ids
            .iter()
            .filter(|aud| !op.tags.contains_key(&audience_tag(aud).0))
            .collect();
        if foreign.is_empty() {
            self.push(
                Action::DeleteOidcProvider {
                    provider_arn: op.arn.clone(),
                },
                &op.arn,
                None,
                "owned provider no longer in any policy (prune)",
            );
        } else {
            self.unrecorded_audiences(op, &BTreeSet::new(), None);
            self.notice(
                "shared-provider",
                &op.arn,
                format!(
                    "owned provider no longer in any policy is kept: audiences trustsync did not add remain on it ({})",
                    foreign.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(", ")
                ),
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
        if let Some(new_name) = dr.group.as_ref().and_then(|g| g.renamed_to.as_ref()) {
            self.notice(
                "group-renamed",
                &dr.arn,
                format!(
                    "the group this mapping is pinned to ({}) is now named `{new_name}`; the mapping still follows it by id. Update the selector, or select the group by id",
                    dr.group.as_ref().map_or("", |g| g.id.as_str())
                ),
            );
        }
        let Some(or) = self.observed.roles.get(&dr.name.to_ascii_lowercase()) else {
            if dr.blocked.is_some() {
                return; // nothing to revoke on a role that does not exist
            }
            let subs: Vec<String> = dr
                .group
                .iter()
                .flat_map(|g| g.principals.iter().map(|p| p.id.clone()))
                .collect();
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
        if dr.blocked.is_some() {
            // An adoption waits for a mapping that can be fully planned.
            if owned {
                self.revoke_only(dr, or);
            }
            return;
        }
        let arn = or.arn.as_str();
        self.trust(dr, or);
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
            .filter(|k| !dr.tags.contains_key(*k) && *k != BASELINE_TAG)
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
        let removal = Removal {
            baseline: self.removal_baseline(role).0,
            after: 0,
            deletes_role: true,
        };
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
        c.removal = Some(removal);
    }

    /// The principal count removals are measured against, and the baseline tag value to
    /// record when the recorded one is missing, stale or lower than the role trusts now.
    fn removal_baseline(&self, role: &ObservedRole) -> (usize, Option<String>) {
        let current = trusted_subjects(&role.trust).len();
        let window = self.s.safety.removal_window_seconds;
        let recorded = role
            .tags
            .get(BASELINE_TAG)
            .and_then(|v| parse_baseline(v))
            .filter(|(_, at)| self.s.now.saturating_sub(*at) < window);
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
            Action::RevokeTrust {
                role_name: dr.name.clone(),
                trust_policy: doc.clone(),
                baseline: record,
            },
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
        if iam_policy::equivalent(&doc, &or.trust) {
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
        if iam_policy::equivalent(&dr.trust, &or.trust) {
            return;
        }
        let current = trusted_subjects(&or.trust);
        let want: BTreeSet<String> = dr
            .group
            .iter()
            .flat_map(|g| g.principals.iter().map(|p| p.id.clone()))
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
        let revokes = !iam_policy::equivalent(&revoke_doc, &or.trust);
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
            Action::UpdateTrustPolicy {
                role_name: dr.name.clone(),
                trust_policy: dr.trust.clone(),
            },
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
        let mut legacy: Vec<(&str, &Value)> = Vec::new();
        for st in &of.statements {
            if let Some(sid) = st.get("Sid").and_then(Value::as_str) {
                if sid.starts_with(&self.s.statement_id_prefix) {
                    have.insert(sid.to_string(), st);
                } else if self.is_legacy_statement(sid) {
                    legacy.push((sid, st));
                }
            }
        }
        let remove = |sid: &str| Action::RemoveLambdaPermission {
            function_name: df.name.clone(),
            qualifier: df.qualifier.clone(),
            statement_id: sid.to_string(),
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
        for (sid, st) in legacy {
            let c = self.push(
                remove(sid),
                resource,
                m,
                "statement written by an earlier trustsync (no instance hash in its id); the policy's invokers are written under this instance's prefix",
            );
            c.before = Some(st.clone());
        }
    }

    /// A statement id in the form trustsync wrote before statement prefixes carried the
    /// instance hash: `statementIdPrefix` then `role-`, `svc-` or `arn-`. Only looked for
    /// on the functions this instance manages.
    fn is_legacy_statement(&self, sid: &str) -> bool {
        sid.strip_prefix(&self.s.legacy_statement_prefix)
            .is_some_and(|rest| {
                ["role-", "svc-", "arn-"]
                    .iter()
                    .any(|k| rest.starts_with(k))
            })
    }

    /// Statements on functions this instance marked that no FunctionAccess wants any more
    /// (its document deleted, or its function or qualifier changed), and the marks
    /// themselves: each function whose policy trustsync writes carries its tag, listing the
    /// qualifiers, for as long as any of its statements may be there.
    fn marked_functions(&mut self, desired: &Desired) {
        let observed = self.observed;
        let wanted_keys: BTreeSet<(String, Option<String>)> = desired
            .functions
            .iter()
            .map(|f| (f.name.clone(), f.qualifier.clone()))
            .collect();
        // Function name -> (unqualified ARN, qualifiers to record).
        let mut marks: BTreeMap<String, (String, BTreeSet<String>)> = BTreeMap::new();
        for df in &desired.functions {
            if let Some(Some(of)) = observed
                .functions
                .get(&(df.name.clone(), df.qualifier.clone()))
            {
                let e = marks
                    .entry(df.name.clone())
                    .or_insert_with(|| (of.arn.clone(), BTreeSet::new()));
                e.1.extend(df.qualifier.clone());
            }
        }
        for (name, mf) in &observed.marked_functions {
            let qualifiers = std::iter::once(None).chain(mf.qualifiers().into_iter().map(Some));
            for q in qualifiers {
                let key = (name.clone(), q.clone());
                if wanted_keys.contains(&key) {
                    continue;
                }
                let Some(Some(of)) = observed.functions.get(&key) else {
                    continue;
                };
                let ours: Vec<&Value> = of
                    .statements
                    .iter()
                    .filter(|st| {
                        st.get("Sid")
                            .and_then(Value::as_str)
                            .is_some_and(|sid| sid.starts_with(&self.s.statement_id_prefix))
                    })
                    .collect();
                if ours.is_empty() {
                    continue;
                }
                let resource = match &q {
                    Some(q) => format!("{}:{q}", mf.arn),
                    None => mf.arn.clone(),
                };
                if self.s.prune {
                    for st in ours {
                        let sid = st["Sid"].as_str().unwrap_or_default().to_string();
                        let c = self.push(
                            Action::RemoveLambdaPermission {
                                function_name: name.clone(),
                                qualifier: q.clone(),
                                statement_id: sid,
                            },
                            &resource,
                            None,
                            "trustsync's statement on a function no FunctionAccess names any more (prune)",
                        );
                        c.before = Some(st.clone());
                    }
                } else {
                    self.notice(
                        "orphan",
                        &resource,
                        format!(
                            "{} trustsync statement(s) on a function no FunctionAccess names any more: {}; enable prune to remove them",
                            ours.len(),
                            ours.iter()
                                .filter_map(|st| st["Sid"].as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    );
                    let e = marks
                        .entry(name.clone())
                        .or_insert_with(|| (mf.arn.clone(), BTreeSet::new()));
                    e.1.extend(q);
                }
            }
        }
        let key = &self.s.function_tag_key;
        for (name, (arn, qualifiers)) in &marks {
            let value = qualifiers.iter().cloned().collect::<Vec<_>>().join(" ");
            if observed.marked_functions.get(name).map(|m| &m.tag_value) != Some(&value) {
                self.push(
                    Action::TagFunction {
                        function_arn: arn.clone(),
                        key: key.clone(),
                        value,
                    },
                    arn,
                    None,
                    "marks the function whose policy trustsync writes, so its statements are found later",
                );
            }
        }
        for (name, mf) in &observed.marked_functions {
            if !marks.contains_key(name) {
                self.push(
                    Action::UntagFunction {
                        function_arn: mf.arn.clone(),
                        key: key.clone(),
                    },
                    &mf.arn,
                    None,
                    "no trustsync statement remains on the function",
                );
            }
        }
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
        };
        plan.summarize();
        plan
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
    use crate::sources::directory::TenantFile;
    use crate::sources::policy::{load_text, PolicySet};
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
        let pins = desired::Pins::new();
        let snap = tenant(members).snapshot(&desired::group_requests(&set, &pins));
        let target = Target {
            account_id: "123456789012".into(),
            region: "us-east-1".into(),
        };
        desired::build(&set, &snap, &pins, &Config::default(), &target)
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
            let mut tags = p.tags.clone();
            tags.extend(p.client_ids.iter().map(|a| audience_tag(a)));
            o.providers.push(crate::observed::ObservedProvider {
                arn: p.arn.clone(),
                url: p.url.clone(),
                client_ids: p.client_ids.clone(),
                tags,
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
            o.marked_functions.insert(
                f.name.clone(),
                crate::observed::MarkedFunction {
                    arn: f.arn.clone(),
                    tag_value: f.qualifier.clone().unwrap_or_default(),
                },
            );
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
        assert!(p.problems.is_empty() && p.held.is_empty());
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
                "tag-function",
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
        assert_eq!(names(&p), ["revoke-trust", "update-trust-policy"]);
        let (revoke, grant) = (&p.changes[0], &p.changes[1]);
        assert_eq!(
            revoke.members_removed,
            ["00000000-0000-0000-0000-00000000000b"]
        );
        assert!(revoke.members_added.is_empty());
        assert_eq!(
            trusted_subjects(revoke.after.as_ref().unwrap()),
            BTreeSet::from(["00000000-0000-0000-0000-00000000000a".to_string()]),
            "the revocation adds nobody"
        );
        assert_eq!(
            grant.members_added,
            ["00000000-0000-0000-0000-00000000000c"]
        );
        assert_eq!(
            grant.reason,
            "group `g` membership changed: 1 added, 1 removed"
        );
        assert_eq!(
            trusted_subjects(grant.grant_only.as_ref().unwrap()).len(),
            3,
            "if the revocation is held, the grant adds without removing"
        );
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
        assert_eq!(p.owned_roles, 2);
    }

    #[test]
    fn removals_carry_their_baseline_and_the_checks_hold_most_but_not_one() {
        let check = |p: Plan| {
            crate::checks::check(
                p,
                &crate::checks::Context {
                    safety: &Safety::default(),
                    deferred: &|_| None,
                    released: &BTreeSet::new(),
                },
            )
        };
        let before = desired_for(&["a", "b", "c", "d"], "");
        let p = plan(
            &desired_for(&["a"], ""),
            &converged(&before),
            &settings(false),
        );
        assert_eq!(names(&p), ["revoke-trust"]);
        assert_eq!(
            p.changes[0].removal,
            Some(Removal {
                baseline: 4,
                after: 1,
                deletes_role: false
            })
        );
        let p = check(p);
        assert_eq!(p.held[0].held.kind, "mapping-removal-limit");

        let single = desired_for(&["a"], "");
        let p = check(plan(
            &desired_for(&[], ""),
            &converged(&single),
            &settings(false),
        ));
        assert!(
            p.held.is_empty(),
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
        f.statements.push(json!({"Sid": format!("{}old-1", settings(false).statement_id_prefix), "Effect": "Allow", "Principal": {"Service": "s3.amazonaws.com"}, "Action": "lambda:InvokeFunction"}));
        let p = plan(&d, &o, &settings(false));
        assert_eq!(names(&p), ["remove-lambda-permission"]);
        assert!(
            matches!(&p.changes[0].action, Action::RemoveLambdaPermission { statement_id, .. } if statement_id.ends_with("old-1"))
        );
    }

    #[test]
    fn statements_of_an_earlier_trustsync_are_migrated_on_managed_functions() {
        let d = desired_for(&["a"], "");
        let mut o = converged(&d);
        let f = o.functions.values_mut().next().unwrap().as_mut().unwrap();
        f.statements.push(json!({"Sid": "trustsync-role-deployers-0badf00d", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:role/trustsync/deployer"}, "Action": "lambda:InvokeFunction"}));
        f.statements.push(json!({"Sid": "trustsync-notes", "Effect": "Allow", "Principal": {"Service": "s3.amazonaws.com"}, "Action": "lambda:InvokeFunction"}));
        let p = plan(&d, &o, &settings(false));
        assert_eq!(names(&p), ["remove-lambda-permission"]);
        assert!(
            matches!(&p.changes[0].action, Action::RemoveLambdaPermission { statement_id, .. } if statement_id == "trustsync-role-deployers-0badf00d")
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
        let pins = desired::Pins::new();
        let snap = t.snapshot(&desired::group_requests(&set, &pins));
        let target = Target {
            account_id: "123456789012".into(),
            region: "us-east-1".into(),
        };
        let d = desired::build(&set, &snap, &pins, &Config::default(), &target);
        assert!(
            d.roles[0].blocked.is_some(),
            "blocked: adds nobody, still revokes"
        );
        let msg = &d.errors[0].message;
        assert!(
            msg.contains("for 60 service principals would be")
                && msg.contains("over the limit of 2048"),
            "{msg}"
        );
    }
}

/// Table-driven tests of trust planning on hand-built desired and observed values.
#[cfg(test)]
mod trust_tables {
    use super::*;
    use crate::config::Config;
    use crate::desired::{Federated, GroupInfo, TrustParts};
    use crate::sources::directory::{Member, MemberKind};

    const NOW: u64 = 1_800_000_000;

    fn parts() -> TrustParts {
        TrustParts {
            federated: Some(Federated {
                provider_arn:
                    "arn:aws:iam::123456789012:oidc-provider/login.microsoftonline.com/t/v2.0"
                        .into(),
                issuer: "login.microsoftonline.com/t/v2.0".into(),
                audience_key: "aud".into(),
                audiences: vec!["api://aws".into()],
            }),
            services: BTreeSet::new(),
        }
    }

    fn set(ids: &[&str]) -> BTreeSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    fn owner() -> (String, String) {
        let o = Config::default().owner_tag;
        (o.key, o.value)
    }

    fn desired(members: &[&str], blocked: Option<&str>, may_keep: Option<&[&str]>) -> DesiredRole {
        let (k, v) = owner();
        DesiredRole {
            mapping: "m".into(),
            name: "r".into(),
            path: "/trustsync/".into(),
            arn: "arn:aws:iam::123456789012:role/trustsync/r".into(),
            trust: parts().document(&set(members), &BTreeSet::new()),
            trust_parts: parts(),
            blocked: blocked.map(String::from),
            may_keep: Some(set(may_keep.unwrap_or(members))),
            description: None,
            max_session_duration: 3600,
            permissions_boundary: None,
            managed_policies: BTreeSet::new(),
            inline_policies: BTreeMap::new(),
            tags: BTreeMap::from([(k, v)]),
            adopt: true,
            group: Some(GroupInfo {
                id: "g".into(),
                display_name: "g".into(),
                principals: members
                    .iter()
                    .map(|id| Member {
                        id: id.to_string(),
                        kind: MemberKind::ServicePrincipal,
                        display_name: None,
                    })
                    .collect(),
                skipped: vec![],
                renamed_to: None,
            }),
        }
    }

    fn observed(trusted: &[&str], tags: &[(&str, &str)]) -> Observed {
        let mut o = Observed::default();
        o.roles.insert(
            "r".into(),
            ObservedRole {
                name: "r".into(),
                path: "/trustsync/".into(),
                arn: "arn:aws:iam::123456789012:role/trustsync/r".into(),
                id: "AROAEXAMPLE".into(),
                trust: parts().document(&set(trusted), &BTreeSet::new()),
                description: None,
                max_session_duration: Some(3600),
                permissions_boundary: None,
                inline_policies: BTreeMap::new(),
                managed_policies: BTreeSet::new(),
                tags: tags
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            },
        );
        o
    }

    fn settings() -> Settings {
        Settings {
            now: NOW,
            ..Settings::from_config(&Config::default())
        }
    }

    fn run(d: DesiredRole, o: &Observed) -> Plan {
        let desired = Desired {
            roles: vec![d],
            ..Desired::default()
        };
        plan(&desired, o, &settings())
    }

    #[test]
    fn trust_changes_table() {
        let (k, v) = owner();
        let owned: &[(&str, &str)] = &[(k.as_str(), v.as_str())];
        type Row<'a> = (
            &'a str,
            &'a [&'a str],            // trusted now
            DesiredRole,              // wanted
            &'a [(&'a str, &'a str)], // role tags
            &'a [&'a str],            // actions
            &'a [&'a str],            // removed
            &'a [&'a str],            // added
        );
        let rows: Vec<Row> = vec![
            (
                "a member leaves",
                &["a", "b"],
                desired(&["a"], None, None),
                owned,
                &["revoke-trust"],
                &["b"],
                &[],
            ),
            (
                "a member joins",
                &["a"],
                desired(&["a", "c"], None, None),
                owned,
                &["update-trust-policy"],
                &[],
                &["c"],
            ),
            (
                "one leaves, one joins: the revocation is its own change, first",
                &["a", "b"],
                desired(&["a", "c"], None, None),
                owned,
                &["revoke-trust", "update-trust-policy"],
                &["b"],
                &["c"],
            ),
            (
                "ambiguous name: whoever is in no candidate group goes, nobody is added",
                &["a", "b"],
                desired(&["a", "c"], Some("2 groups are named g"), Some(&["a", "c"])),
                owned,
                &["revoke-trust"],
                &["b"],
                &[],
            ),
            (
                "pinned group gone: everyone goes",
                &["a", "b"],
                desired(&[], Some("the group g no longer exists"), Some(&[])),
                owned,
                &["revoke-trust"],
                &["a", "b"],
                &[],
            ),
            (
                "blocked, but nobody left: nothing to do",
                &["a"],
                desired(&["a", "c"], Some("oversize"), Some(&["a", "c"])),
                owned,
                &[],
                &[],
                &[],
            ),
            (
                "blocked and not ours yet: an adoption waits",
                &["a", "b"],
                desired(&[], Some("oversize"), Some(&[])),
                &[],
                &[],
                &[],
                &[],
            ),
            (
                "adoption tags first and counts what the trust loses",
                &["x"],
                desired(&["a"], None, None),
                &[],
                &["tag-role", "revoke-trust", "update-trust-policy"],
                &["x"],
                &["a"],
            ),
        ];
        for (name, trusted, d, tags, want, removed, added) in rows {
            let p = run(d, &observed(trusted, tags));
            let got: Vec<String> = p.changes.iter().map(|c| c.action.name()).collect();
            assert_eq!(got, want, "{name}");
            let all_removed: Vec<String> = p
                .changes
                .iter()
                .flat_map(|c| c.members_removed.clone())
                .collect();
            let all_added: Vec<String> = p
                .changes
                .iter()
                .flat_map(|c| c.members_added.clone())
                .collect();
            assert_eq!(all_removed, removed, "{name}");
            assert_eq!(all_added, added, "{name}");
            for c in &p.changes {
                if let Action::RevokeTrust { trust_policy, .. } = &c.action {
                    let after = trusted_subjects(trust_policy);
                    assert!(
                        after.is_subset(&set(trusted)),
                        "{name}: a revocation adds nobody"
                    );
                    assert_eq!(c.removal.map(|r| r.after), Some(after.len()), "{name}");
                }
            }
        }
    }

    #[test]
    fn the_removal_baseline_is_recorded_and_does_not_ratchet() {
        let (k, v) = owner();
        let six = ["a", "b", "c", "d", "e", "f"];
        let revocation = |tags: &[(&str, &str)]| {
            let mut all = vec![(k.as_str(), v.as_str())];
            all.extend_from_slice(tags);
            let p = run(desired(&["a", "b", "c"], None, None), &observed(&six, &all));
            let c = p.changes.into_iter().next().unwrap();
            let Action::RevokeTrust { baseline, .. } = &c.action else {
                panic!("{c:?}")
            };
            (c.removal.unwrap().baseline, baseline.clone())
        };
        // No record: measured from now, and the count recorded with the revocation.
        assert_eq!(revocation(&[]), (6, Some(format!("6@{NOW}"))));
        // A fresh record of more: measured from it, not re-recorded.
        let fresh = format!("10@{}", NOW - 100);
        assert_eq!(revocation(&[(BASELINE_TAG, &fresh)]), (10, None));
        // A record older than the window: measured from now again.
        let stale = format!("10@{}", NOW - 4000);
        assert_eq!(
            revocation(&[(BASELINE_TAG, &stale)]),
            (6, Some(format!("6@{NOW}")))
        );
    }

    #[test]
    fn the_baseline_tag_is_never_untagged_as_drift() {
        let (k, v) = owner();
        let tag = format!("2@{NOW}");
        let p = run(
            desired(&["a"], None, None),
            &observed(
                &["a"],
                &[(k.as_str(), v.as_str()), (BASELINE_TAG, tag.as_str())],
            ),
        );
        assert!(p.changes.is_empty(), "{:?}", p.changes);
    }
}
