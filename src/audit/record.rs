//! The records of the audit log, as one type: what is about to be written to AWS
//! ([`Record::Intent`]), what came of it ([`Record::Change`]), and each pass
//! ([`Record::Pass`]). The log adds `time` and `prevHash` to each line.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::call::{Actor, Outcome, PassOutcome};
use crate::model::names::{Arn, MappingName};
use crate::plan::{Action, Change, Hold};

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Record {
    /// Written (and synced) before an AWS write: the write, whole, so that a crash before
    /// its outcome can be resolved by reading AWS.
    Intent(Intent),
    /// What came of a change: its outcome, or for one not tried, why.
    Change(Box<ChangeRecord>),
    /// An intent found without an outcome after a crash, resolved by reading AWS.
    Recovered(Recovered),
    /// One pass of `apply` or the controller.
    Pass(PassRecord),
    /// A signed statement of the lines before it.
    Checkpoint(super::Checkpoint),
    /// The log was repaired on opening: what was moved aside, and where it is kept.
    Repaired(Repaired),
    /// The first line of a new segment: the previous file could not be extended (a break
    /// in its chain other than a torn last line, or it could not be read), so it was kept
    /// under another name and this segment begins after its last good line.
    Rotated(Rotated),
    /// A person has looked at the rotation this segment begins with (counted only when
    /// signed by a configured auditor key).
    Acknowledged(Acknowledged),
    /// Lines found after the last signed checkpoint when the log was opened: nothing
    /// vouches that this writer wrote them, so no pin, removal baseline or person's binding
    /// is taken from them.
    Unvouched(Unvouched),
    /// A person let a held removal of one document through, once, while the controller
    /// ran (`trustsync release`): the next pass over the document applies it.
    Released(Released),
}

/// A release of a held removal, as `trustsync release` asked for it and the controller
/// took it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Released {
    /// The document (RoleMapping or AccessAssignment) whose held removals go through.
    pub mapping: String,
    /// Who released it (as given to `--by`).
    pub by: String,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// When it was asked for (RFC 3339).
    pub requested_at: String,
    /// With the S3 store: the request object it was taken from, so that it is taken once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
}

/// Why and from where a new segment began.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rotated {
    /// What kept the previous file from being extended (the first bad line and why).
    pub reason: String,
    /// The previous segment, kept as it was (renamed, never deleted by trustsync).
    pub previous_segment: String,
    /// Its lines, from the first, that still verify.
    pub previous_good_lines: usize,
    /// The hash of the last of those (64 zeros for none): where this segment carries on.
    pub previous_last_hash: String,
    /// The previous file's size and SHA-256 (hex) when it was set aside, so that a later
    /// change to it is found too.
    pub previous_bytes: u64,
    pub previous_sha256: String,
}

/// A person's acknowledgement of the rotation that began the segment, signed with an
/// auditor's Ed25519 key (`audit.auditorPublicKeyFiles` holds the public halves): the
/// signature covers the rotation (previous segment, its last good hash), who, the note and
/// when ([`Acknowledged::message`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Acknowledged {
    /// Who (as given to `trustsync audit acknowledge --by`).
    pub by: String,
    /// The segment whose break was looked at.
    pub previous_segment: String,
    /// What they found or did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The hash of the previous segment's last good line, as the rotation carried on from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_last_hash: Option<String>,
    /// When it was signed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_at: Option<String>,
    /// The auditor key's id (the first 16 hex digits of the SHA-256 of the raw key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// Ed25519 signature (hex) of [`Acknowledged::message`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// Lines of this segment that no signed checkpoint covered when the log was opened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Unvouched {
    /// The first such line.
    pub from_line: usize,
    /// The last.
    pub to_line: usize,
    /// Why they are not vouched for, and what was not taken from them.
    pub reason: String,
}

/// A torn last line (a write cut by a crash or a power loss: never a committed record, as
/// every record is synced whole before what it records happens) moved aside on opening.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Repaired {
    /// What was wrong.
    pub reason: String,
    /// How many bytes were moved aside.
    pub removed_bytes: usize,
    /// Their SHA-256 (hex).
    pub removed_sha256: String,
    /// The side file that keeps them (never deleted by trustsync).
    pub side_file: String,
}

/// An AWS write about to be made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Intent {
    /// Who writes.
    pub actor: Actor,
    /// The write, as planned.
    pub intent: Action,
    /// The resource.
    pub target: Arn,
    /// The mapping it serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mapping: Option<MappingName>,
}

/// What came of one planned change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeRecord {
    /// Who applied it.
    pub actor: Actor,
    /// The action's name.
    pub action: String,
    /// The resource.
    pub target: Arn,
    /// The AWS account it was made in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// The region, for Lambda.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The mapping it serves.
    #[serde(default)]
    pub mapping: Option<MappingName>,
    /// Why it was planned.
    pub reason: String,
    /// Principals it grants.
    #[serde(default)]
    pub members_added: Vec<String>,
    /// Principals it takes away.
    #[serde(default)]
    pub members_removed: Vec<String>,
    /// The document before.
    #[serde(default)]
    pub before: Option<Value>,
    /// The document after.
    #[serde(default)]
    pub after: Option<Value>,
    /// The git commit of the policies.
    #[serde(default)]
    pub policy_revision: Option<String>,
    /// Who made that commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_author: Option<String>,
    /// The mapping's `metadata.labels`.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Who changed the group in the directory for the members it grants or revokes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub membership: Vec<crate::sources::directory::MembershipChange>,
    /// The line of its intent record, when it was tried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent_line: Option<usize>,
    /// What happened.
    pub result: Outcome,
}

impl ChangeRecord {
    /// The record of `change`, applied by `actor` with `result`.
    pub fn of(
        change: &Change,
        actor: &Actor,
        policy_revision: Option<&crate::sources::policy::Revision>,
        intent_line: Option<usize>,
        result: Outcome,
    ) -> ChangeRecord {
        ChangeRecord {
            actor: actor.clone(),
            action: change.action.name().to_string(),
            target: change.resource.clone(),
            account: change.account.clone(),
            region: change.region.clone(),
            mapping: change.mapping.clone(),
            reason: change.reason.clone(),
            members_added: change.members_added.clone(),
            members_removed: change.members_removed.clone(),
            before: change.before.clone(),
            after: change.after.clone(),
            policy_revision: policy_revision.map(|r| r.commit.clone()),
            policy_author: policy_revision.and_then(|r| r.author.clone()),
            labels: change.labels.clone(),
            membership: change.membership.clone(),
            intent_line,
            result,
        }
    }
}

/// An intent that had no outcome when the log was next opened, and what AWS says now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recovered {
    /// Who recovered it.
    pub actor: Actor,
    /// The line of the intent.
    pub intent_line: usize,
    /// The action's name.
    pub action: String,
    /// The resource.
    pub target: Arn,
    /// Whether AWS shows the write as made: `None` when what AWS returns cannot tell.
    pub landed: Option<bool>,
}

/// One pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PassRecord {
    /// Who ran it.
    pub actor: Actor,
    /// What started it (the controller's passes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<String>,
    /// The git commit of the policies.
    #[serde(default)]
    pub policy_revision: Option<String>,
    /// Who made that commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_author: Option<String>,
    /// How it ended.
    pub outcome: PassOutcome,
    /// Changes applied.
    #[serde(default)]
    pub applied: usize,
    /// Changes AWS refused.
    #[serde(default)]
    pub failed: usize,
    /// Changes not tried.
    #[serde(default)]
    pub skipped: usize,
    /// Changes the checks held, with why.
    #[serde(default)]
    pub held: Vec<HeldRecord>,
    /// Mappings that could not be planned.
    #[serde(default)]
    pub problems: usize,
    /// Why the pass failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A held change in a pass record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeldRecord {
    /// The action's name.
    pub action: String,
    /// The resource.
    pub target: Arn,
    /// The mapping it serves.
    #[serde(default)]
    pub mapping: Option<MappingName>,
    /// Principals it would take away.
    #[serde(default)]
    pub members_removed: Vec<String>,
    /// Why it is held and what releases it.
    pub hold: Hold,
}
