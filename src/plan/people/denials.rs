//! Session denials in a permission set's inline policy: the departed members' sessions,
//! from a cut-off, for as long as a session issued before it may live.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::{People, Wanted};
use crate::model::iam_policy;
use crate::observed::IdentityCenterPermissionSet;
use crate::plan::sessions::{
    carry_lasting, covers_live, lasting_at, parse_rfc3339, raise_lasting, record_lasting, rfc3339,
    sid_lasting, UNKNOWN_SESSION_SECS,
};
use crate::plan::{Notice, NoticeKind, PeopleAction, RemovedMember, SessionDenial};

/// A permission set's inline policy, at most (`PutInlinePolicyToPermissionSet`).
const INLINE_LIMIT: usize = 32_768;

/// A permission set's session denials: all that stay or are added this pass, and those
/// that stay (without this pass's).
#[derive(Debug, Default)]
pub(super) struct Denials {
    pub(super) all: Vec<Value>,
    pub(super) kept: Vec<Value>,
    /// The inline policy the denial writes this pass, if it writes one.
    pub(super) written: Option<Value>,
}

/// The statement id prefix of trustsync's session denials in a permission set's inline
/// policy (one statement per cut-off).
pub const DENY_SID_PREFIX: &str = "TrustsyncDeparted";

impl People<'_> {
    /// The session denials of the permission set: those still alive, and the departed
    /// members' new ones, written at once when there are new ones (a revocation). Returns
    /// the denial statements the set's inline policy carries from now on, and those it
    /// carries if the new ones are held.
    pub(super) fn deny_sessions(
        &mut self,
        w: &Wanted,
        set: Option<&IdentityCenterPermissionSet>,
        removed: &[RemovedMember],
        back: &BTreeSet<String>,
    ) -> Denials {
        let Some(set) = set else {
            return Denials::default(); // no set yet: no session of it to deny
        };
        let now = self.i.now;
        let observed_inline = set.policies.as_ref().and_then(|p| p.inline_policy.clone());
        let seconds = session_seconds(w, set);
        let (mut live, wide, mut lasting) =
            live_denials(observed_inline.as_ref(), seconds, back, now);
        let kept = denial_statements(&live, &wide, &lasting);
        let cutoff = now + self.i.propagation_seconds;
        if !removed.is_empty() {
            lasting.entry(cutoff).or_insert(seconds);
        }
        for r in removed {
            live.insert(r.user_id.clone(), cutoff);
        }
        self.record_set_denials(w, set, &live, &lasting);
        let all = denial_statements(&live, &wide, &lasting);
        if removed.is_empty() {
            return Denials {
                all,
                kept,
                written: None,
            };
        }
        let document = self.write_denials(w, set, removed, observed_inline, all.clone(), cutoff);
        Denials {
            all,
            kept,
            written: Some(document),
        }
    }

    /// The set's denials as the plan reports them, one per person.
    fn record_set_denials(
        &mut self,
        w: &Wanted,
        set: &IdentityCenterPermissionSet,
        live: &BTreeMap<String, u64>,
        lasting: &BTreeMap<u64, u64>,
    ) {
        for (id, at) in live {
            let name = self
                .i
                .observed
                .users
                .iter()
                .find(|u| &u.id == id)
                .map_or(id.clone(), |u| u.user_name.clone());
            self.plan.session_denials.push(SessionDenial {
                account: None,
                mapping: w.mapping.clone(),
                role: set.arn.clone().into(),
                principal: Some(name),
                issued_before: rfc3339(*at),
                written_at: rfc3339(at.saturating_sub(self.i.propagation_seconds)),
                until: rfc3339(at + lasting_at(lasting, *at)),
            });
        }
    }

    /// The revocation: the set's inline policy with the departed members' denials (the
    /// set's own part as it is now), or one set-wide denial when they do not fit. Returns
    /// the document written.
    fn write_denials(
        &mut self,
        w: &Wanted,
        set: &IdentityCenterPermissionSet,
        removed: &[RemovedMember],
        observed_inline: Option<Value>,
        denials: Vec<Value>,
        cutoff: u64,
    ) -> Value {
        // The set's own part stays as it is now: a revocation grants nothing.
        let own: Vec<Value> = observed_inline
            .as_ref()
            .map(iam_policy::statements)
            .unwrap_or_default()
            .into_iter()
            .filter(|s| !is_denial(s))
            .collect();
        let (document, role_wide) = fit(own, denials, cutoff);
        if role_wide {
            self.plan.notices.push(Notice {
                kind: NoticeKind::SessionsCutRoleWide,
                account: None,
                resource: set.arn.clone(),
                message: format!("the departed people's denials do not fit permission set {}'s inline policy: every session of it issued before {} is denied; those who stay sign in again", set.name, rfc3339(cutoff)),
            });
        }
        let users: Vec<String> = removed.iter().map(|r| r.user_name.clone()).collect();
        let c = self.push(
            PeopleAction::DenyPermissionSetSessions {
                instance_arn: self.i.observed.instance_arn.clone(),
                permission_set_arn: set.arn.clone(),
                document: document.clone(),
            },
            set.arn.clone(),
            w,
            format!("deny the sessions {} already hold", users.join(", ")),
        );
        c.members_removed = users;
        c.before = observed_inline;
        c.after = Some(document.clone());
        document
    }
}

/// Sessions issued before a cut-off live at most the longer of the set's durations (the
/// document's and the set's own, 12 hours where one is unknown).
fn session_seconds(w: &Wanted, set: &IdentityCenterPermissionSet) -> u64 {
    w.spec
        .permission_set
        .session_seconds()
        .unwrap_or(UNKNOWN_SESSION_SECS)
        .max(
            set.session_duration
                .as_deref()
                .and_then(crate::sources::policy::iso_duration_seconds)
                .unwrap_or(UNKNOWN_SESSION_SECS),
        )
}

/// The denials of the set's inline policy that still cover a live session: per person the
/// cut-off, the set-wide cut-offs, and how long a session issued before each may live.
/// Those `back` in the group keep theirs, brought back to `now`.
fn live_denials(
    inline: Option<&Value>,
    seconds: u64,
    back: &BTreeSet<String>,
    now: u64,
) -> (BTreeMap<String, u64>, Vec<u64>, BTreeMap<u64, u64>) {
    // Each cut-off lives as long as its record says (raised to the set's duration now,
    // never lowered: a session issued before it under a longer one still lives), 12
    // hours where no record says.
    let mut lasting = read_lasting(inline);
    raise_lasting(&mut lasting, seconds);
    let (mut live, mut wide) = read_denials(inline);
    live.retain(|_, cutoff| covers_live(&lasting, *cutoff, now));
    wide.retain(|cutoff| covers_live(&lasting, *cutoff, now));
    // A denial outlives re-admission: whoever is back in the group keeps their entry,
    // so their sessions from before it never work again. Its cut-off comes back to now,
    // the moment they are let in again, if it lay ahead: they could mint no session in
    // between (they were out), and the ones they get from now on work at once.
    for (id, t) in live.iter_mut() {
        if back.contains(id) && *t > now {
            carry_lasting(&mut lasting, *t, now);
            *t = now;
        }
    }
    (live, wide, lasting)
}

fn is_denial(statement: &Value) -> bool {
    statement["Sid"]
        .as_str()
        .is_some_and(|s| s.starts_with(DENY_SID_PREFIX))
}

/// The denials an inline policy carries: identity-store user id -> cut-off, and the
/// cut-offs of set-wide denials (every session issued before them).
pub fn read_denials(inline: Option<&Value>) -> (BTreeMap<String, u64>, Vec<u64>) {
    let (mut users, mut wide) = (BTreeMap::new(), Vec::new());
    let Some(doc) = inline else {
        return (users, wide);
    };
    for st in iam_policy::statements(doc).iter().filter(|s| is_denial(s)) {
        let Some(cutoff) = st["Condition"]["DateLessThan"]["aws:TokenIssueTime"]
            .as_str()
            .and_then(parse_rfc3339)
        else {
            continue;
        };
        let ids = iam_policy::strings(&st["Condition"]["StringEquals"]["identitystore:userId"]);
        if ids.is_empty() {
            wide.push(cutoff);
        }
        for id in ids {
            users.insert(id, cutoff);
        }
    }
    (users, wide)
}

/// How long a session issued before each cut-off may live, as the denials' statement
/// ids record it (`...For<seconds>`).
pub fn read_lasting(inline: Option<&Value>) -> BTreeMap<u64, u64> {
    let mut out = BTreeMap::new();
    let Some(doc) = inline else {
        return out;
    };
    for st in iam_policy::statements(doc).iter().filter(|s| is_denial(s)) {
        let cutoff = st["Condition"]["DateLessThan"]["aws:TokenIssueTime"]
            .as_str()
            .and_then(parse_rfc3339);
        if let (Some(t), Some(n)) = (cutoff, st["Sid"].as_str().and_then(sid_lasting)) {
            record_lasting(&mut out, t, n);
        }
    }
    out
}

/// The statement id of a denial at `at`, with how long its sessions may live if known.
fn denial_sid(part: &str, at: u64, lasting: &BTreeMap<u64, u64>) -> String {
    match lasting.get(&at) {
        Some(n) => format!("{DENY_SID_PREFIX}{part}{at}For{n}"),
        None => format!("{DENY_SID_PREFIX}{part}{at}"),
    }
}

/// One Deny statement per cut-off naming the users it denies, and one per set-wide
/// cut-off.
pub(super) fn denial_statements(
    live: &BTreeMap<String, u64>,
    wide: &[u64],
    lasting: &BTreeMap<u64, u64>,
) -> Vec<Value> {
    let mut by_cutoff: BTreeMap<u64, Vec<&String>> = BTreeMap::new();
    for (id, at) in live {
        by_cutoff.entry(*at).or_default().push(id);
    }
    let users = by_cutoff.into_iter().map(|(at, ids)| {
        json!({
            "Sid": denial_sid("", at, lasting),
            "Effect": "Deny",
            "Action": "*",
            "Resource": "*",
            "Condition": {
                "StringEquals": {"identitystore:userId": ids},
                "DateLessThan": {"aws:TokenIssueTime": rfc3339(at)}
            }
        })
    });
    users
        .chain(wide.iter().map(|at| {
            let mut d = wide_denial(*at);
            d["Sid"] = Value::String(denial_sid("All", *at, lasting));
            d
        }))
        .collect()
}

/// Every session of the set issued before `cutoff` denied.
fn wide_denial(cutoff: u64) -> Value {
    json!({
        "Sid": format!("{DENY_SID_PREFIX}All{cutoff}"),
        "Effect": "Deny",
        "Action": "*",
        "Resource": "*",
        "Condition": {"DateLessThan": {"aws:TokenIssueTime": rfc3339(cutoff)}}
    })
}

/// The inline policy of `own` statements and `denials`; when it would pass the limit, one
/// denial of every session of the set issued before `cutoff` instead (and `true`).
pub(super) fn fit(own: Vec<Value>, denials: Vec<Value>, cutoff: u64) -> (Value, bool) {
    let document =
        |statements: Vec<Value>| json!({"Version": "2012-10-17", "Statement": statements});
    let full = document(own.iter().cloned().chain(denials).collect());
    if iam_policy::iam_length(&full) <= INLINE_LIMIT {
        return (full, false);
    }
    (
        document(own.into_iter().chain([wide_denial(cutoff)]).collect()),
        true,
    )
}
