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
//! moment the revocation is written plus `safety.propagationSeconds` (IAM's propagation of
//! the trust change, "a few minutes" by AWS's documentation): the plan proposes the pass's
//! time plus the margin, and the apply moves it to the write's own time plus the margin
//! ([`restamp`]), so a session minted while a long pass was still reading, or before the
//! trust change reached every endpoint, is denied. Nobody else's session is touched.
//!
//! A denial outlives re-admission: a principal who comes back into the group keeps its
//! entry, so its sessions issued before it (a stolen one among them) never work again; a
//! cut-off still ahead comes back to the moment it is let in again (it was out until
//! then), so those it gets from then on work at once. An entry goes away once every session
//! it covers has expired: each cut-off records in its statement id how long a session
//! issued before it may live (`...For<seconds>`: the longest maximum session duration the
//! role has had since the entry was made, raised when the role's grows), 12 hours when no
//! record says (IAM's largest `MaxSessionDuration`).
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

use super::{Action, IamAction, NoticeKind, Planner, SessionDenial};
use crate::desired::DesiredRole;
use crate::model::iam_policy::{self, strings};
use crate::observed::ObservedRole;

pub use crate::model::names::SESSIONS_POLICY;

/// How long a session issued before a cut-off may live when no record says: 12 hours,
/// the largest `MaxSessionDuration` IAM allows (and Identity Center's longest session).
pub const UNKNOWN_SESSION_SECS: u64 = 43_200;

/// The denials a role carries: per `(issuer, sub)` the cut-off (Unix seconds), per
/// issuer a role-wide cut-off for every web-identity session of that issuer, and per
/// cut-off how long a session issued before it may live, where recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionDenials {
    pub subjects: BTreeMap<(String, String), u64>,
    pub role_wide: BTreeMap<String, u64>,
    pub lasting: BTreeMap<u64, u64>,
}

/// How long a session issued before cut-off `t` may live, as `lasting` records it (the
/// roles' and the permission sets' denials alike); 12 hours where no record says.
pub(crate) fn lasting_at(lasting: &BTreeMap<u64, u64>, t: u64) -> u64 {
    lasting.get(&t).copied().unwrap_or(UNKNOWN_SESSION_SECS)
}

/// Whether a cut-off at `t` may still cover a live session at `now`.
pub(crate) fn covers_live(lasting: &BTreeMap<u64, u64>, t: u64, now: u64) -> bool {
    t.saturating_add(lasting_at(lasting, t)) > now
}

/// Records that sessions issued before cut-off `t` may live `n` seconds: the longest
/// record of a cut-off wins.
pub(crate) fn record_lasting(lasting: &mut BTreeMap<u64, u64>, t: u64, n: u64) {
    let e = lasting.entry(t).or_insert(n);
    *e = (*e).max(n);
}

/// Sessions may now live `n` seconds: every recorded lifetime is raised to it, never
/// lowered (a session issued before a cut-off under a longer maximum still lives).
pub(crate) fn raise_lasting(lasting: &mut BTreeMap<u64, u64>, n: u64) {
    for l in lasting.values_mut() {
        *l = (*l).max(n);
    }
}

/// A cut-off brought back from `from` to `to` (a principal let in again): the cut-off at
/// `to` keeps the record of the one it replaces.
pub(crate) fn carry_lasting(lasting: &mut BTreeMap<u64, u64>, from: u64, to: u64) {
    if let Some(n) = lasting.get(&from).copied() {
        record_lasting(lasting, to, n);
    }
}

/// The session lifetime a denial statement id records (`...For<seconds>`).
pub(crate) fn sid_lasting(sid: &str) -> Option<u64> {
    let (_, n) = sid.rsplit_once("For")?;
    n.parse().ok()
}

/// A cut-off proposed by the plan, moved to `fresh` where the apply writes it: in every
/// `aws:TokenIssueTime` value equal to the proposed one, and in the statement ids that
/// name it. Nothing else of the document changes. Returns whether anything moved.
pub fn restamp(doc: &mut Value, proposed: u64, fresh: u64) -> bool {
    if fresh <= proposed {
        return false;
    }
    let (old, new) = (rfc3339(proposed), rfc3339(fresh));
    let sids = [
        (compact(proposed), compact(fresh)),
        (proposed.to_string(), fresh.to_string()),
    ];
    let mut moved = false;
    walk(doc, &mut |key, v| {
        if key.eq_ignore_ascii_case("aws:TokenIssueTime") && v.as_str() == Some(old.as_str()) {
            *v = Value::String(new.clone());
            moved = true;
        } else if key == "Sid" {
            if let Some(sid) = v.as_str() {
                for (from, to) in &sids {
                    if sid.contains(from.as_str()) {
                        *v = Value::String(sid.replacen(from.as_str(), to, 1));
                        break;
                    }
                }
            }
        }
    });
    moved
}

/// Every (key, value) of every object in `v`, depth first.
fn walk(v: &mut Value, f: &mut dyn FnMut(&str, &mut Value)) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                f(k, x);
                walk(x, f);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| walk(x, f)),
        _ => {}
    }
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

fn compact(t: u64) -> String {
    rfc3339(t)
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect()
}

fn compact_sid(prefix: &str, t: u64, lasting: Option<u64>) -> String {
    match lasting {
        Some(n) => format!("{prefix}{}For{n}", compact(t)),
        None => format!("{prefix}{}", compact(t)),
    }
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
            if let Some(n) = st["Sid"].as_str().and_then(sid_lasting) {
                record_lasting(&mut out.lasting, cutoff, n);
            }
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
                "Sid": compact_sid("AllWebIdentitySessionsBefore", *t, self.lasting.get(t).copied()),
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
                "Sid": compact_sid("DepartedSessionsBefore", t, self.lasting.get(&t).copied()),
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

    /// How long a session issued before cut-off `t` may live: as recorded, else 12 hours.
    pub fn lasting_of(&self, t: u64) -> u64 {
        lasting_at(&self.lasting, t)
    }

    /// Drops what can no longer match a live session: cut-offs whose sessions have all
    /// expired (as long as each cut-off's record says, 12 hours where none does).
    fn expire(&mut self, now: u64) {
        let lasting = self.lasting.clone();
        let alive = |t: &u64| covers_live(&lasting, *t, now);
        self.subjects.retain(|_, t| alive(t));
        self.role_wide.retain(|_, t| alive(t));
        let used: BTreeSet<u64> = self
            .subjects
            .values()
            .chain(self.role_wide.values())
            .copied()
            .collect();
        self.lasting.retain(|t, _| used.contains(t));
    }

    /// Records that sessions of the role may now live `max_session` seconds: each
    /// recorded cut-off's lifetime is raised to it (never lowered: a session issued
    /// before the cut-off under a longer maximum still lives), and a new cut-off without
    /// a record gets it.
    fn raise(&mut self, max_session: u64, new: &BTreeSet<u64>) {
        raise_lasting(&mut self.lasting, max_session);
        for t in new {
            self.lasting.entry(*t).or_insert(max_session);
        }
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
    fn record_denials(&mut self, dr: &DesiredRole, or: &ObservedRole, want: &SessionDenials) {
        let margin = self.s.safety.propagation_seconds;
        let entry = |principal: Option<&String>, t: u64| SessionDenial {
            account: None,
            mapping: dr.mapping.clone(),
            role: or.arn.clone().into(),
            principal: principal.cloned(),
            issued_before: rfc3339(t),
            written_at: rfc3339(t.saturating_sub(margin)),
            until: rfc3339(t + want.lasting_of(t)),
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
    /// principals revoked by the changes pushed since `from` get a cut-off, and entries
    /// whose sessions have all expired go. A principal the role trusts again (`trusted`,
    /// for a fully planned mapping) keeps its entry: its sessions from before it stay
    /// denied; a cut-off still ahead comes back to now, the moment it is let in again (it
    /// could mint no session in between), so the sessions it gets from now on work.
    pub(super) fn sessions(
        &mut self,
        dr: &DesiredRole,
        or: &ObservedRole,
        from: usize,
        trusted: Option<&BTreeSet<String>>,
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
        want.expire(now);
        let issuer = dr.trust_parts.federated.as_ref().map(|f| f.issuer.clone());
        if let (Some(issuer), Some(back)) = (&issuer, trusted) {
            bring_back(&mut want, issuer, back, now);
        }
        let fell_back = match &issuer {
            Some(issuer) => self.deny_revoked(dr, &mut want, issuer, &revoked, max_session),
            None => {
                want.raise(max_session, &BTreeSet::new());
                false
            }
        };
        want.expire(now);
        self.record_denials(dr, or, &want);
        if want == have {
            return;
        }
        self.write_sessions(dr, or, &want, &revoked, fell_back, max_session);
    }

    /// The revoked principals' cut-offs, and the fall-back to the role-wide cut-off when
    /// their entries do not fit the role's inline policy budget. Returns whether it fell
    /// back.
    fn deny_revoked(
        &mut self,
        dr: &DesiredRole,
        want: &mut SessionDenials,
        issuer: &String,
        revoked: &BTreeSet<String>,
        max_session: u64,
    ) -> bool {
        let now = self.s.now;
        let margin = self.s.safety.propagation_seconds;
        let mut new_cutoffs = BTreeSet::new();
        for sub in revoked {
            // A cut-off still ahead already covers a trust write that keeps failing;
            // it moves on only once it has passed.
            let t = want
                .subjects
                .entry((issuer.clone(), sub.clone()))
                .or_insert(0);
            if *t < now {
                *t = now + margin;
                new_cutoffs.insert(*t);
            }
        }
        want.raise(max_session, &new_cutoffs);
        let others: usize = dr
            .inline_policies
            .iter()
            .filter(|(name, _)| name.as_str() != SESSIONS_POLICY)
            .map(|(_, d)| iam_policy::iam_length(d))
            .sum();
        let budget = self.s.inline_policy_chars.saturating_sub(others);
        if revoked.is_empty() || iam_policy::iam_length(&want.document()) <= budget {
            return false;
        }
        // Every session of the issuer issued before now goes; per-principal
        // entries up to now are covered by it.
        let e = want.role_wide.entry(issuer.clone()).or_insert(now);
        *e = (*e).max(now);
        want.subjects
            .retain(|(i, _), t| !(i == issuer && *t <= now + margin));
        want.raise(max_session, &BTreeSet::from([now]));
        true
    }

    /// The role's sessions policy as `want` says: the revocation (and its notice when it
    /// fell back to the role-wide cut-off), the policy deleted once nothing is left to
    /// deny, or rewritten.
    fn write_sessions(
        &mut self,
        dr: &DesiredRole,
        or: &ObservedRole,
        want: &SessionDenials,
        revoked: &BTreeSet<String>,
        fell_back: bool,
        max_session: u64,
    ) {
        let have_doc = or.inline_policies.get(SESSIONS_POLICY);
        let doc = want.document();
        let m = Some(dr.mapping.as_str());
        if !revoked.is_empty() {
            let reason = self.revocation_reason(revoked, fell_back, max_session);
            if fell_back {
                let now = self.s.now;
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
                "no session denial is needed any more: every session it covered has expired",
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
                "session denials whose sessions have all expired dropped, their lifetimes raised to the role's longer maximum session, or the cut-off of a principal trusted again brought back to now",
            );
            c.before = have_doc.cloned();
            c.after = Some(doc);
        }
    }

    /// Why the revoked principals' sessions are denied, and until when.
    fn revocation_reason(
        &self,
        revoked: &BTreeSet<String>,
        fell_back: bool,
        max_session: u64,
    ) -> String {
        let now = self.s.now;
        let margin = self.s.safety.propagation_seconds;
        let ids: Vec<&str> = revoked.iter().map(String::as_str).take(10).collect();
        let who = if revoked.len() > ids.len() {
            format!("{} and {} more", ids.join(", "), revoked.len() - ids.len())
        } else {
            ids.join(", ")
        };
        let until = rfc3339(now + margin + max_session);
        if fell_back {
            format!(
                "deny the live sessions of the {} principal(s) leaving the trust ({who}): their entries do not fit the role's inline policy budget ({} characters), so every web-identity session issued before {} is denied (the members who stay assume the role again); until {until}",
                revoked.len(),
                self.s.inline_policy_chars,
                rfc3339(now)
            )
        } else {
            format!(
                "deny the live sessions of the {} principal(s) leaving the trust ({who}) issued before {} (when the revocation is written, plus {margin}s for IAM to propagate it), until {until}",
                revoked.len(),
                rfc3339(now + margin)
            )
        }
    }
}

/// A principal of `issuer` the role trusts again (`back`) keeps its entry; a cut-off still
/// ahead comes back to `now`, the moment it is let in again, with its lifetime record.
fn bring_back(want: &mut SessionDenials, issuer: &str, back: &BTreeSet<String>, now: u64) {
    let mut moved = Vec::new();
    for ((i, sub), t) in want.subjects.iter_mut() {
        if i == issuer && back.contains(sub) && *t > now {
            moved.push(*t);
            *t = now;
        }
    }
    for old in moved {
        carry_lasting(&mut want.lasting, old, now);
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
        d.lasting.insert(100, 3600);
        d.lasting.insert(5000, 3600);
        d.expire(3700);
        assert_eq!(d.subjects.len(), 1);
        assert!(d.subjects.contains_key(&("i".into(), "new".into())));
    }
}
