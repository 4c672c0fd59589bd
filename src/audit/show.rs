//! `trustsync audit show`: the grants and revocations of a log, filtered by principal,
//! role and time, with who made them and why.

use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use super::{ChangeRecord, Error, Record};
use crate::model::call::Outcome;

/// What to show.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Only changes that granted or revoked this Entra object id.
    pub principal: Option<String>,
    /// Only changes to this role (its name, case-insensitively, or its ARN).
    pub role: Option<String>,
    /// Only records at or after this RFC 3339 time.
    pub since: Option<String>,
}

/// One change, with when it was recorded.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// When the change was recorded.
    pub time: String,
    /// The line it is on.
    pub line: usize,
    /// The record.
    #[serde(flatten)]
    pub change: ChangeRecord,
}

/// The change records of the log at `path` that match `query`, oldest first.
pub fn show(path: &Path, query: &Query) -> Result<Vec<Entry>, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.into(),
        source,
    })?;
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let broken = |reason: String| Error::Broken {
            path: path.into(),
            line: i + 1,
            reason,
        };
        let value: Value =
            serde_json::from_str(raw).map_err(|e| broken(format!("not JSON: {e}")))?;
        let time = value["time"].as_str().unwrap_or_default().to_string();
        let record: Record =
            serde_json::from_value(value).map_err(|e| broken(format!("not a record: {e}")))?;
        let Record::Change(change) = record else {
            continue;
        };
        if query.matches(&time, &change) {
            out.push(Entry {
                time,
                line: i + 1,
                change: *change,
            });
        }
    }
    Ok(out)
}

impl Query {
    fn matches(&self, time: &str, c: &ChangeRecord) -> bool {
        let principal = self.principal.as_ref().is_none_or(|p| {
            c.members_added
                .iter()
                .chain(&c.members_removed)
                .any(|m| m.eq_ignore_ascii_case(p))
        });
        let role = self.role.as_ref().is_none_or(|r| {
            let target = c.target.as_str();
            target == r
                || (target.contains(":role/")
                    && target
                        .rsplit('/')
                        .next()
                        .is_some_and(|name| name.eq_ignore_ascii_case(r)))
        });
        // RFC 3339 in UTC compares as text; a date alone is its midnight.
        let since = self.since.as_ref().is_none_or(|s| time >= s.as_str());
        principal && role && since
    }
}

/// The entries as text: one line each, newest last.
pub fn render_text(entries: &[Entry], principal: Option<&str>) -> String {
    let mut out = String::new();
    for e in entries {
        let c = &e.change;
        let what = match principal {
            Some(p) if c.members_added.iter().any(|m| m.eq_ignore_ascii_case(p)) => "granted",
            Some(p) if c.members_removed.iter().any(|m| m.eq_ignore_ascii_case(p)) => "revoked",
            _ => c.action.as_str(),
        };
        let outcome = match &c.result {
            Outcome::Ok(_) => "ok".to_string(),
            Outcome::Failed(f) => format!("FAILED: {f}"),
            Outcome::Skipped { reason } => format!("not tried: {reason}"),
        };
        let members = [("+", &c.members_added), ("-", &c.members_removed)]
            .iter()
            .filter(|(_, m)| !m.is_empty())
            .map(|(sign, m)| format!("{sign}{}", m.join(&format!(" {sign}"))))
            .collect::<Vec<_>>()
            .join(" ");
        out.push_str(&format!(
            "{}  {what} {} ({}){}\n    mapping {} by {} ({}), policy {}: {}; {outcome}\n",
            e.time,
            c.target,
            c.action,
            if members.is_empty() {
                String::new()
            } else {
                format!(" {members}")
            },
            c.mapping.as_deref().unwrap_or("-"),
            c.actor.aws_caller,
            c.actor.instance,
            c.policy_revision.as_deref().unwrap_or("-"),
            c.reason,
        ));
        for m in &c.membership {
            let what = if m.added { "added to" } else { "removed from" };
            out.push_str(&format!(
                "    {} was {what} the group by {} at {}\n",
                m.member, m.by, m.at
            ));
        }
    }
    if entries.is_empty() {
        out.push_str("No matching changes.\n");
    }
    out
}
