//! The plan's vocabulary: what the planner is told ([`Settings`], [`Ownership`]) and what it
//! produces ([`Plan`], [`Change`], [`Action`], [`Problem`], [`Notice`], [`Held`]).

use std::collections::BTreeMap;

use serde_json::Value;

use super::{Action, Effect};
use super::{IamAction, LambdaAction};
use crate::config::{OwnerTag, Safety};
use crate::model::names::{Arn, MappingName};
use crate::observed::{ObservedProvider, ObservedRole};
use serde::{Deserialize, Serialize};

/// What the planner needs from the config.
#[derive(Debug, Clone)]
pub struct Settings {
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
    /// Now, in seconds since the Unix epoch (for removal baselines and session cut-offs).
    pub now: u64,
    /// Aggregate inline policy length per role IAM allows (`limits.inlinePolicyChars`),
    /// the budget of a role's session denials.
    pub inline_policy_chars: usize,
    /// Roles may be created or adopted: the config names permissions boundaries, or says
    /// `allowUnboundedRoles: true`.
    pub may_create_roles: bool,
}

impl Settings {
    /// The planner settings of a config, at `now` (seconds since the Unix epoch): a pass
    /// reads the clock once ([`crate::model::clock::unix_seconds`]) and plans at that time.
    pub fn new(c: &crate::config::Config, now: u64) -> Self {
        Settings {
            owner_tag: c.owner_tag.clone(),
            role_path: c.role_path.clone(),
            statement_id_prefix: c.instance_statement_prefix(),
            function_tag_key: c.function_tag_key(),
            legacy_statement_prefix: c.statement_id_prefix.clone(),
            prune: c.prune,
            safety: c.safety.clone(),
            inline_policy_chars: c.limits.inline_policy_chars,
            may_create_roles: !c.permissions_boundaries.is_empty() || c.allow_unbounded_roles,
            now,
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
    pub resource: Arn,
    /// The AWS account it is made in (set when the plan is placed; `None` before).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// The region, for Lambda (IAM is global).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The policy document behind it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mapping: Option<MappingName>,
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
    /// The `metadata.labels` of the mapping it serves (team, ticket, cost centre...),
    /// carried into the JSON plan and the audit record.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// For the members it grants or revokes: who changed the group in the directory, and
    /// when (from the directory's audit log, when it can be read).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub membership: Vec<crate::sources::directory::MembershipChange>,
}

impl Change {
    /// Whether the change is made in account `id`.
    pub fn in_account(&self, id: &str) -> bool {
        self.account.as_deref() == Some(id)
    }

    /// A change of `resource` by `action`, for `reason`; before and after, members and
    /// removal numbers are filled in by whoever plans it.
    pub fn new(
        action: Action,
        resource: impl Into<Arn>,
        mapping: Option<&str>,
        reason: impl Into<String>,
    ) -> Change {
        Change {
            effect: action.effect(),
            action,
            resource: resource.into(),
            account: None,
            region: None,
            mapping: mapping.map(MappingName::from),
            reason: reason.into(),
            before: None,
            after: None,
            members_added: Vec::new(),
            members_removed: Vec::new(),
            removal: None,
            grant_only: None,
            labels: BTreeMap::new(),
            membership: Vec::new(),
        }
    }

    /// A stable identity for the change across passes (for its back-off): what it does,
    /// to which resource, and to which part of it.
    pub fn key(&self) -> String {
        use IamAction::*;
        use LambdaAction::*;
        let part = match &self.action {
            Action::Iam(
                AddProviderAudience { audience, .. } | RemoveProviderAudience { audience, .. },
            ) => audience.as_str(),
            Action::Iam(
                PutInlinePolicy { policy_name, .. } | DeleteInlinePolicy { policy_name, .. },
            ) => policy_name.as_str(),
            Action::Iam(
                AttachManagedPolicy { policy_arn, .. } | DetachManagedPolicy { policy_arn, .. },
            ) => policy_arn.as_str(),
            Action::Lambda(
                AddLambdaPermission { statement_id, .. }
                | RemoveLambdaPermission { statement_id, .. },
            ) => statement_id.as_str(),
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

/// Declares a kind enum whose wire and display form is its kebab-case name.
macro_rules! kinds {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $text:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            /// The kebab-case name, as in the plan's JSON.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

kinds! {
    /// What keeps a mapping from being planned.
    ProblemKind {
        /// The role (or provider) belongs to someone else, or to another instance.
        Conflict => "conflict",
        /// The mapping could not be made concrete (group not found, ambiguous, too large).
        MappingError => "mapping-error",
        /// The function a FunctionAccess names does not exist.
        FunctionNotFound => "function-not-found",
        /// The role lives at another path, which IAM cannot change.
        CannotMoveRole => "cannot-move-role",
        /// An account could not be reached or read; nothing was planned for it.
        AccountUnreachable => "account-unreachable",
        /// A document's accounts are not all in scope (a selector that matches nothing, a
        /// function ARN in an unmanaged account, a role mapping missing where it is used).
        OutOfScope => "out-of-scope",
        /// Functions act as Entra applications but the account's outbound identity
        /// federation is off, or its issuer could not be read.
        OutboundFederationOff => "outbound-federation-off",
        /// A FunctionAccess names an Entra application trustsync's service principal does
        /// not own (`Application.ReadWrite.OwnedBy` reaches only owned ones).
        ApplicationNotOwned => "application-not-owned",
        /// An application would pass Entra's limit of federated identity credentials.
        CredentialLimit => "credential-limit",
        /// The owned applications and their credentials could not be read from Microsoft
        /// Graph; no credential was planned.
        ApplicationsUnreadable => "applications-unreadable",
        /// A role's group pin tag is not the one trustsync last wrote (its audit log): the
        /// recorded pin is followed and the tag put back.
        PinChanged => "pin-changed",
        /// A document breaks a guardrail of the config: nothing is changed for it but its
        /// revocations (docs/policy-reference.md, "Guardrails").
        Guardrail => "guardrail",
        /// IAM Identity Center or the directory's users could not be read: nothing was
        /// planned for people this pass.
        PeopleUnreadable => "people-unreadable",
    }
}

impl ProblemKind {
    /// Whether only a person can clear it (as opposed to a failure the next pass may not
    /// meet again).
    pub fn blocks(self) -> bool {
        matches!(
            self,
            ProblemKind::Conflict
                | ProblemKind::CannotMoveRole
                | ProblemKind::MappingError
                | ProblemKind::OutOfScope
                | ProblemKind::OutboundFederationOff
                | ProblemKind::ApplicationNotOwned
                | ProblemKind::CredentialLimit
                | ProblemKind::Guardrail
        )
    }
}

kinds! {
    /// Something worth knowing that needs no change.
    NoticeKind {
        /// Owned by trustsync, in no policy any more; prune removes it.
        Orphan => "orphan",
        /// Group members that cannot be principals (users, devices).
        SkippedMembers => "skipped-members",
        /// The group a mapping is pinned to has a new name.
        GroupRenamed => "group-renamed",
        /// Service principals of applications another tenant owns, left out of a trust.
        ForeignApplication => "foreign-application",
        /// Another group now carries the display name a pinned mapping selects.
        GroupNameTaken => "group-name-taken",
        /// An owned provider kept because others' audiences remain on it.
        SharedProvider => "shared-provider",
        /// The directory's audit log could not say who changed a group.
        DirectoryAuditUnavailable => "directory-audit-unavailable",
        /// Too many principals left a role at once for per-principal session denials:
        /// every web-identity session issued before the pass is denied.
        SessionsCutRoleWide => "sessions-cut-role-wide",
        /// The audit log began a new segment (the previous could not be extended), or will
        /// at the next write, and no person has acknowledged it.
        AuditSegmentRotated => "audit-segment-rotated",
        /// Guests of a group mapped to people's access, left out (`guests: exclude`).
        GuestsLeftOut => "guests-left-out",
    }
}

kinds! {
    /// Why the checks hold a change.
    HoldKind {
        /// The revocation takes more of a role's principals than the mapping limit allows.
        MappingRemovalLimit => "mapping-removal-limit",
        /// The pass's revocations together exceed the pass limit.
        PassRemovalLimit => "pass-removal-limit",
        /// Too many owned roles would be deleted.
        RoleDeletionLimit => "role-deletion-limit",
        /// The change keeps failing and waits out its back-off.
        Backoff => "backoff",
        /// It belongs to a teardown that is itself held.
        DependsOnHeld => "depends-on-held",
    }
}

/// Something that keeps a mapping from being planned, or needs a person's attention.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// What kind of problem.
    pub kind: ProblemKind,
    /// The AWS account it concerns.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    pub mapping: Option<MappingName>,
    /// The resource concerned.
    pub resource: String,
    /// What is wrong and what to do.
    pub message: String,
}

/// Something worth knowing that needs no change.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Notice {
    /// What kind of notice.
    pub kind: NoticeKind,
    /// The AWS account it concerns.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// The resource concerned.
    pub resource: String,
    pub message: String,
}

/// A change the checks hold back this pass, with why and what would release it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Held {
    #[serde(flatten)]
    pub change: Change,
    /// Why it is held.
    pub held: Hold,
}

/// Why a change is held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hold {
    /// Which check holds it.
    pub kind: HoldKind,
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
    pub problems: usize,
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
    pub summary: Summary,
    /// Changes to apply, in execution order.
    pub changes: Vec<Change>,
    /// Changes the checks hold back, with the reason and what would release them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub held: Vec<Held>,
    /// Problems; their mappings are left alone, but for revocations.
    pub problems: Vec<Problem>,
    pub notices: Vec<Notice>,
    /// Principals the owned roles trust, each role counted at its removal baseline: what
    /// the pass-wide removal share is measured against.
    #[serde(skip)]
    pub trusted_baseline: usize,
    /// Roles trustsync owns.
    #[serde(skip)]
    pub owned_roles: usize,
    /// The accounts the pass covered, and whether each could be read.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub accounts: Vec<AccountPlan>,
    /// The live sessions each owned role denies once this plan is applied: principals
    /// that left its trust, or every web-identity session (the role-wide cut-off).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub session_denials: Vec<SessionDenial>,
    /// The session cut-off this plan proposes for its revocations: the apply moves it to
    /// the moment each denial is written, plus the propagation margin.
    #[serde(skip)]
    pub cutoff: Option<Cutoff>,
}

/// A plan's proposed session cut-off (Unix seconds) and the margin it was made with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cutoff {
    /// The plan's time plus `margin`.
    pub proposed: u64,
    /// `safety.propagationSeconds`.
    pub margin: u64,
}

/// Sessions a role denies ([`super::sessions`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionDenial {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    pub mapping: MappingName,
    /// The role's ARN.
    pub role: Arn,
    /// The principal (`sub`) whose sessions are denied; none: every web-identity session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// Sessions issued before this time are denied (RFC 3339): when the revocation was
    /// written plus `safety.propagationSeconds`, from when it is in effect everywhere.
    pub issued_before: String,
    /// When the revocation was written (the plan's time, until it is applied).
    pub written_at: String,
    /// The denial is dropped after this time, when no such session can still be alive.
    pub until: String,
}

/// One account of a plan: where it was read, and if it could not be, why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountPlan {
    /// The 12-digit account id.
    pub id: String,
    /// The regions read (the first also for IAM).
    pub regions: Vec<String>,
    /// Why it could not be read; nothing is planned for it then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreachable: Option<String>,
}

impl Plan {
    /// Says where this plan's changes, problems and notices are: the account, and for
    /// Lambda the region (IAM is global).
    pub fn place(&mut self, account: &str, region: &str) {
        let held = self.held.iter_mut().map(|h| &mut h.change);
        for c in self.changes.iter_mut().chain(held) {
            c.account = Some(account.to_string());
            c.region = c.action.is_lambda().then(|| region.to_string());
        }
        for p in &mut self.problems {
            p.account = Some(account.to_string());
        }
        for n in &mut self.notices {
            n.account = Some(account.to_string());
        }
        for d in &mut self.session_denials {
            d.account = Some(account.to_string());
        }
    }

    /// One plan of many (one per account and region): changes grouped by account, each
    /// account's in dependency order; problems, notices and the removal baselines summed.
    pub fn merge(plans: Vec<Plan>) -> Plan {
        let mut out = Plan::default();
        for p in plans {
            out.changes.extend(p.changes);
            out.held.extend(p.held);
            out.problems.extend(p.problems);
            out.notices.extend(p.notices);
            out.session_denials.extend(p.session_denials);
            out.trusted_baseline += p.trusted_baseline;
            out.owned_roles += p.owned_roles;
            out.cutoff = out.cutoff.or(p.cutoff);
        }
        // Stable: within an account and phase, the planner's order stands.
        out.changes
            .sort_by(|a, b| (&a.account, a.action.phase()).cmp(&(&b.account, b.action.phase())));
        out.summarize();
        out
    }

    /// Gives every change, held ones too, the labels of the mapping it serves.
    pub fn label(&mut self, labels_of: impl Fn(&str) -> Option<BTreeMap<String, String>>) {
        let held = self.held.iter_mut().map(|h| &mut h.change);
        for c in self.changes.iter_mut().chain(held) {
            if let Some(labels) = c.mapping.as_deref().and_then(&labels_of) {
                c.labels = labels;
            }
        }
    }

    /// True when nothing is to be applied.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// True when something needs a person: a problem, or a change held by a safety limit
    /// (a back-off clears by itself).
    pub fn needs_attention(&self) -> bool {
        !self.problems.is_empty() || self.held.iter().any(|h| h.held.kind != HoldKind::Backoff)
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
            *summary
                .by_action
                .entry(c.action.name().to_string())
                .or_default() += 1;
        }
        self.summary = summary;
    }
}
