//! Live sessions: a removal from a role's trust stops new sessions only, so the same pass
//! also denies the sessions the departed principals already hold.
//!
//! What IAM documents (IAM User Guide, "Available keys for OIDC federation" and "Revoking
//! IAM role temporary security credentials"; DESIGN.md 2a):
//! - every request made with web-identity credentials carries the token's `<issuer>:sub`
//!   (and `:aud`, `:amr`, `:id`) in its request context, so a role's own policy can name
//!   the subject it applies to;
//! - `aws:TokenIssueTime` is in the context of every request made with temporary
//!   credentials; the console's "Revoke active sessions" denies everything before a moment.
//!
//! So the role gets an inline policy of its own, [`SESSIONS_POLICY`]: Deny `*` for the
//! departed `sub` values when `aws:TokenIssueTime` is before a cut-off. The cut-off is the
//! pass's time plus [`CUTOFF_MARGIN_SECS`], which covers the seconds between planning and
//! the trust write and IAM's propagation of it (a session obtained through the old trust in
//! that window is still denied). Nobody else's session is touched. A principal who comes
//! back into the group loses its entry in the pass that trusts it again, so its next
//! session works at once. An entry goes away once the role's maximum session duration has
//! passed since its cut-off: no session issued before it can still be alive.
//!
//! The policy document is the whole state (level-based): each pass reads it back, drops
//! what expired and adds what the pass revokes. When the entries do not fit the role's
//! inline policy budget, the pass falls back to the role-wide cut-off (every web-identity
//! session of the issuer issued before now, as "Revoke active sessions" does for everyone)
//! and says so in a notice: the members who stay simply assume the role again.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::*;
use crate::model::iam_policy::strings;

pub use crate::model::names::SESSIONS_POLICY;

/// Seconds added to the pass's time for a principal's cut-off (planning to write, and
/// IAM's propagation of the trust change).
pub const CUTOFF_MARGIN_SECS: u64 = 60;

/// The denials a role carries: per `(issuer, sub)` the cut-off (Unix seconds), and per
/// issuer a role-wide cut-off for every web-identity session of that issuer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionDenials {
    pub subjects: BTreeMap<(String, String), u64>,
    pub role_wide: BTreeMap<String, u64>,
}

/// The RFC 3339 form of a Unix time, as the denials write it.
pub fn rfc3339(t: u64) -> String {
    OffsetDateTime::from_unix_timestamp(t as i64)
        .ok()
        .and_then(|d| d.format(&Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}

pub(crate) fn parse_rfc3339(s: &str) -> Option<u64> {
    OffsetDateTime::parse(s, &Rfc3339)
        .ok()
        .and_then(|d| u64::try_from(d.unix_timestamp()).ok())
}

fn compact_sid(prefix: &str, t: u64) -> String {
    let s: String = rfc3339(t)
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    format!("{prefix}{s}")
}

/// A condition block's value under `key`, matched case-insensitively as IAM does.
fn block<'a>(cond: &'a Value, op: &str) -> Option<&'a serde_json::Map<String, Value>> {
    cond.as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(op))
        .and_then(|(_, v)| v.as_object())
}

impl SessionDenials {
    /// Reads the denials back from the policy document trustsync wrote (statements it
    /// does not recognise are ignored, and dropped when it rewrites the policy).
    pub fn parse(doc: &Value) -> SessionDenials {
        let mut out = SessionDenials::default();
        for st in iam_policy::statements(doc) {
            let cond = &st["Condition"];
            let Some(cutoff) = block(cond, "DateLessThan")
                .and_then(|b| {
                    b.iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case("aws:TokenIssueTime"))
                })
                .and_then(|(_, v)| strings(v).first().and_then(|s| parse_rfc3339(s)))
            else {
                continue;
            };
            let sub_key = |b: &serde_json::Map<String, Value>| {
                b.iter()
                    .find(|(k, _)| k.to_ascii_lowercase().ends_with(":sub"))
                    .map(|(k, v)| (k[..k.len() - 4].to_string(), v.clone()))
            };
            if let Some((issuer, subs)) = block(cond, "StringEquals").and_then(sub_key) {
                for sub in strings(&subs) {
                    let e = out.subjects.entry((issuer.clone(), sub)).or_insert(cutoff);
                    *e = (*e).max(cutoff);
                }
            } else if let Some((issuer, _)) = block(cond, "Null").and_then(sub_key) {
                let e = out.role_wide.entry(issuer).or_insert(cutoff);
                *e = (*e).max(cutoff);
            }
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.subjects.is_empty() && self.role_wide.is_empty()
    }

    /// The policy document: one statement per issuer and cut-off.
    pub fn document(&self) -> Value {
        let mut grouped: BTreeMap<(u64, &str), Vec<&str>> = BTreeMap::new();
        for ((issuer, sub), t) in &self.subjects {
            grouped.entry((*t, issuer)).or_default().push(sub);
        }
        let mut statements = Vec::new();
        for (issuer, t) in &self.role_wide {
            statements.push(json!({
                "Sid": compact_sid("AllWebIdentitySessionsBefore", *t),
                "Effect": "Deny",
                "Action": "*",
                "Resource": "*",
                "Condition": {
                    "Null": {format!("{issuer}:sub"): "false"},
                    "DateLessThan": {"aws:TokenIssueTime": rfc3339(*t)},
                },
            }));
        }
        for ((t, issuer), subs) in grouped {
            statements.push(json!({
                "Sid": compact_sid("DepartedSessionsBefore", t),
                "Effect": "Deny",
                "Action": "*",
                "Resource": "*",
                "Condition": {
                    "StringEquals": {format!("{issuer}:sub"): subs},
                    "DateLessThan": {"aws:TokenIssueTime": rfc3339(t)},
                },
            }));
        }
        json!({"Version": "2012-10-17", "Statement": statements})
    }

    /// Drops what can no longer match a live session: cut-offs more than `max_session`
    /// seconds before `now`.
    fn expire(&mut self, now: u64, max_session: u64) {
        self.subjects
            .retain(|_, t| t.saturating_add(max_session) > now);
        self.role_wide
            .retain(|_, t| t.saturating_add(max_session) > now);
    }
}

/// Whose sessions a denial covers, in words; `quote` marks the principal (Markdown).
pub fn whom(principal: Option<&str>, quote: &str) -> String {
    principal.map_or_else(
        || "every web-identity session".to_string(),
        |p| format!("sessions of {quote}{p}{quote}"),
    )
}

impl Planner<'_> {
    fn record_denials(
        &mut self,
        dr: &DesiredRole,
        or: &ObservedRole,
        want: &SessionDenials,
        max_session: u64,
    ) {
        let entry = |principal: Option<&String>, t: u64| SessionDenial {
            account: None,
            mapping: dr.mapping.clone(),
            role: or.arn.clone().into(),
            principal: principal.cloned(),
            issued_before: rfc3339(t),
            until: rfc3339(t + max_session),
        };
        let role_wide = want.role_wide.values().map(|t| entry(None, *t));
        let subjects = want
            .subjects
            .iter()
            .map(|((_, sub), t)| entry(Some(sub), *t));
        let all: Vec<SessionDenial> = role_wide.chain(subjects).collect();
        self.session_denials.extend(all);
    }

    /// Brings the role's session denials in line after its trust was planned: the
    /// principals revoked by the changes pushed since `from` get a cut-off, entries past the
    /// maximum session duration go, and (for a fully planned mapping) principals the role
    /// trusts again lose theirs.
    pub(super) fn sessions(
        &mut self,
        dr: &DesiredRole,
        or: &ObservedRole,
        from: usize,
        trusted_again: Option<&BTreeSet<String>>,
    ) {
        let revoked: BTreeSet<String> = self.changes[from..]
            .iter()
            .filter(|c| matches!(c.action, Action::Iam(IamAction::RevokeTrust { .. })))
            .flat_map(|c| c.members_removed.iter().cloned())
            .collect();
        let have_doc = or.inline_policies.get(SESSIONS_POLICY);
        if revoked.is_empty() && have_doc.is_none() {
            return;
        }
        let have = have_doc.map(SessionDenials::parse).unwrap_or_default();
        let mut want = have.clone();
        let max_session = dr
            .max_session_duration
            .max(or.max_session_duration.unwrap_or(0))
            .max(3600) as u64;
        let now = self.s.now;
        want.expire(now, max_session);
        let issuer = dr.trust_parts.federated.as_ref().map(|f| f.issuer.clone());
        if let (Some(issuer), Some(back)) = (&issuer, trusted_again) {
            want.subjects
                .retain(|(i, sub), _| !(i == issuer && back.contains(sub)));
        }
        let mut fell_back = false;
        if let Some(issuer) = &issuer {
            for sub in &revoked {
                // A cut-off still ahead already covers a trust write that keeps failing;
                // it moves on only once it has passed.
                let t = want
                    .subjects
                    .entry((issuer.clone(), sub.clone()))
                    .or_insert(0);
                if *t < now {
                    *t = now + CUTOFF_MARGIN_SECS;
                }
            }
            let others: usize = dr
                .inline_policies
                .iter()
                .filter(|(name, _)| name.as_str() != SESSIONS_POLICY)
                .map(|(_, d)| iam_policy::iam_length(d))
                .sum();
            let budget = self.s.inline_policy_chars.saturating_sub(others);
            if !revoked.is_empty() && iam_policy::iam_length(&want.document()) > budget {
                // Every session of the issuer issued before now goes; per-principal
                // entries up to now are covered by it.
                let e = want.role_wide.entry(issuer.clone()).or_insert(now);
                *e = (*e).max(now);
                want.subjects
                    .retain(|(i, _), t| !(i == issuer && *t <= now + CUTOFF_MARGIN_SECS));
                fell_back = true;
            }
        }
        self.record_denials(dr, or, &want, max_session);
        if want == have {
            return;
        }
        let doc = want.document();
        let m = Some(dr.mapping.as_str());
        if !revoked.is_empty() {
            let ids: Vec<&str> = revoked.iter().map(String::as_str).take(10).collect();
            let who = if revoked.len() > ids.len() {
                format!("{} and {} more", ids.join(", "), revoked.len() - ids.len())
            } else {
                ids.join(", ")
            };
            let until = rfc3339(now + CUTOFF_MARGIN_SECS + max_session);
            let reason = if fell_back {
                format!(
                    "deny the live sessions of the {} principal(s) leaving the trust ({who}): their entries do not fit the role's inline policy budget ({} characters), so every web-identity session issued before {} is denied (the members who stay assume the role again); until {until}",
                    revoked.len(),
                    self.s.inline_policy_chars,
                    rfc3339(now)
                )
            } else {
                format!(
                    "deny the live sessions of the {} principal(s) leaving the trust ({who}) issued before {}, until {until}",
                    revoked.len(),
                    rfc3339(now + CUTOFF_MARGIN_SECS)
                )
            };
            if fell_back {
                self.notice(
                    NoticeKind::SessionsCutRoleWide,
                    &or.arn,
                    format!("{} principals left at once and their session denials do not fit in the role's inline policies: every web-identity session of the role issued before {} is denied; members who stay must assume the role again", revoked.len(), rfc3339(now)),
                );
            }
            let c = self.push(
                Action::Iam(IamAction::RevokeSessions {
                    role_name: dr.name.clone(),
                    document: doc.clone(),
                }),
                &or.arn,
                m,
                reason,
            );
            c.before = have_doc.cloned();
            c.after = Some(doc);
        } else if want.is_empty() {
            let c = self.push(
                Action::Iam(IamAction::DeleteInlinePolicy {
                    role_name: dr.name.clone(),
                    policy_name: SESSIONS_POLICY.into(),
                }),
                &or.arn,
                m,
                "no session denial is needed any more (older than the maximum session duration, or the principals are trusted again)",
            );
            c.before = have_doc.cloned();
        } else {
            let c = self.push(
                Action::Iam(IamAction::PutInlinePolicy {
                    role_name: dr.name.clone(),
                    policy_name: SESSIONS_POLICY.into(),
                    document: doc.clone(),
                }),
                &or.arn,
                m,
                "session denials past the maximum session duration, or of principals trusted again, dropped",
            );
            c.before = have_doc.cloned();
            c.after = Some(doc);
        }
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn the_document_round_trips_and_groups_by_cutoff() {
        let mut d = SessionDenials::default();
        d.subjects
            .insert(("iss/".into(), "a".into()), 1_800_000_000);
        d.subjects
            .insert(("iss/".into(), "b".into()), 1_800_000_000);
        d.subjects
            .insert(("iss/".into(), "c".into()), 1_800_000_100);
        d.role_wide.insert("iss/".into(), 1_700_000_000);
        let doc = d.document();
        assert_eq!(doc["Statement"].as_array().unwrap().len(), 3);
        assert_eq!(
            doc["Statement"][1]["Condition"]["DateLessThan"]["aws:TokenIssueTime"],
            "2027-01-15T08:00:00Z"
        );
        assert_eq!(SessionDenials::parse(&doc), d);
    }

    #[test]
    fn entries_expire_after_the_maximum_session() {
        let mut d = SessionDenials::default();
        d.subjects.insert(("i".into(), "old".into()), 100);
        d.subjects.insert(("i".into(), "new".into()), 5000);
        d.expire(3700, 3600);
        assert_eq!(d.subjects.len(), 1);
        assert!(d.subjects.contains_key(&("i".into(), "new".into())));
    }
}
