//! Plan renderings: text for people at a terminal, JSON for machines, Markdown for a pull
//! request comment. Pure functions from a [`Plan`] to a string.

use std::fmt::Write;

use serde_json::Value;

use crate::model::iam_policy;
use crate::plan::{Change, Effect, Plan};

/// Output format of `plan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Human-readable text.
    Text,
    /// One JSON object: `summary`, `changes`, `held`, `problems`, `notices`.
    Json,
    /// Markdown for a pull request comment.
    Markdown,
}

/// Renders a plan. `color` adds ANSI colours to text output.
pub fn render(plan: &Plan, format: Format, color: bool) -> String {
    match format {
        Format::Text => text(plan, color),
        Format::Json => serde_json::to_string_pretty(plan).expect("plans serialize") + "\n",
        Format::Markdown => markdown(plan),
    }
}

fn sign(e: Effect) -> char {
    match e {
        Effect::Add => '+',
        Effect::Change => '~',
        Effect::Remove => '-',
    }
}

fn headline(plan: &Plan) -> String {
    let s = &plan.summary;
    format!(
        "{} to add, {} to change, {} to remove, {} held; {} problem(s), {} notice(s)",
        s.add, s.change, s.remove, s.held, s.problems, s.notices
    )
}

/// One document, top to bottom, in the order a person reads it: the changes (account by
/// account over many), what is held, problems, live sessions denied, notices.
fn text(plan: &Plan, color: bool) -> String {
    let paint = Paint(color);
    let mut out = String::new();
    if plan.changes.is_empty() {
        let _ = writeln!(
            out,
            "{}",
            if plan.held.is_empty() {
                "No changes. AWS matches the policies."
            } else {
                "No changes to apply."
            }
        );
    }
    text_changes(&mut out, plan, paint);
    if !plan.held.is_empty() {
        let _ = writeln!(
            out,
            "\n{}",
            paint.on("1;31", "Held (not applied this pass):")
        );
        for h in &plan.held {
            text_change(&mut out, &h.change, paint);
            let _ = writeln!(out, "    held:    {}: {}", h.held.kind, h.held.reason);
            let _ = writeln!(out, "    release: {}", h.held.release);
        }
    }
    text_problems(&mut out, plan, paint);
    text_denials_and_notices(&mut out, plan);
    let _ = writeln!(out, "\nPlan: {}.", headline(plan));
    out
}

/// Terminal colours, or none.
#[derive(Clone, Copy)]
struct Paint(bool);

impl Paint {
    fn on(self, code: &str, s: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
}

fn text_change(out: &mut String, c: &Change, paint: Paint) {
    let code = match c.effect {
        Effect::Add => "32",
        Effect::Change => "33",
        Effect::Remove => "31",
    };
    let _ = writeln!(
        out,
        "{} {}",
        paint.on(code, &format!("{} {}", sign(c.effect), c.action.name())),
        c.resource
    );
    if let Some(m) = &c.mapping {
        let _ = writeln!(out, "    mapping: {m}");
    }
    let _ = writeln!(out, "    reason:  {}", c.reason);
    if !c.members_added.is_empty() {
        let _ = writeln!(out, "    members added:   {}", c.members_added.join(", "));
    }
    if !c.members_removed.is_empty() {
        let _ = writeln!(out, "    members removed: {}", c.members_removed.join(", "));
    }
    for line in detail_lines(c) {
        let _ = writeln!(out, "    {line}");
    }
}

/// The changes: account by account when the plan covers many.
fn text_changes(out: &mut String, plan: &Plan, paint: Paint) {
    if !many_accounts(plan) {
        for c in &plan.changes {
            text_change(out, c, paint);
        }
        return;
    }
    for a in &plan.accounts {
        let changes: Vec<&Change> = plan
            .changes
            .iter()
            .filter(|c| c.in_account(&a.id))
            .collect();
        let status = match &a.unreachable {
            Some(e) => paint.on("1;31", &format!("UNREACHABLE, nothing planned: {e}")),
            None if changes.is_empty() => "no changes".into(),
            None => format!("{} change(s)", changes.len()),
        };
        let _ = writeln!(
            out,
            "\n{} ({}): {status}",
            paint.on("1", &format!("Account {}", a.id)),
            a.regions.join(", ")
        );
        for c in changes {
            text_change(out, c, paint);
        }
    }
}

fn text_problems(out: &mut String, plan: &Plan, paint: Paint) {
    if plan.problems.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\n{}",
        paint.on(
            "1;31",
            "Problems (these mappings were left alone but for revocations):"
        )
    );
    for p in &plan.problems {
        let _ = writeln!(
            out,
            "  ! {}{} {}{}: {}",
            in_account(plan, p.account.as_deref()),
            p.kind,
            p.resource,
            p.mapping
                .as_ref()
                .map(|m| format!(" (mapping {m})"))
                .unwrap_or_default(),
            p.message
        );
    }
}

fn text_denials_and_notices(out: &mut String, plan: &Plan) {
    if !plan.session_denials.is_empty() {
        let _ = writeln!(out, "\nLive sessions denied (principals that left a role):");
        for d in &plan.session_denials {
            let _ = writeln!(out, "  * {}", denial(plan, d, ""));
        }
    }
    if !plan.notices.is_empty() {
        let _ = writeln!(out, "\nNotices:");
        for n in &plan.notices {
            let _ = writeln!(
                out,
                "  * {}{} {}: {}",
                in_account(plan, n.account.as_deref()),
                n.kind,
                n.resource,
                n.message
            );
        }
    }
}

/// True when the plan covers more than one account: then it is shown account by account.
fn many_accounts(plan: &Plan) -> bool {
    plan.accounts.len() > 1
}

/// `[account] ` before a problem or notice of a plan over many accounts.
fn in_account(plan: &Plan, account: Option<&str>) -> String {
    match account {
        Some(a) if many_accounts(plan) => format!("[{a}] "),
        _ => String::new(),
    }
}

/// Short per-action details for text output (the parameters that are not the resource).
fn detail_lines(c: &Change) -> Vec<String> {
    let Ok(Value::Object(map)) = serde_json::to_value(&c.action) else {
        return Vec::new();
    };
    map.iter()
        .filter(|(k, v)| {
            !matches!(
                k.as_str(),
                "action"
                    | "trustPolicy"
                    | "document"
                    | "revisionId"
                    | "roleName"
                    | "functionName"
                    | "baseline"
            ) && !v.is_null()
                && v.as_array().is_none_or(|a| !a.is_empty())
        })
        .map(|(k, v)| {
            format!(
                "{k}: {}",
                v.as_str()
                    .map(String::from)
                    .unwrap_or_else(|| v.to_string())
            )
        })
        .collect()
}

/// One document, top to bottom, in the order a reviewer reads it: what is held, the
/// summary (and the accounts), each change, problems, live sessions denied, notices.
fn markdown(plan: &Plan) -> String {
    let mut out = String::from("### trustsync plan\n\n");
    md_held(&mut out, plan);
    md_summary(&mut out, plan);
    let mut account = None;
    for c in &plan.changes {
        if many_accounts(plan) && account != c.account.as_deref() {
            account = c.account.as_deref();
            let _ = writeln!(out, "### Account `{}`\n", account.unwrap_or("(none)"));
        }
        md_change(&mut out, c);
    }
    md_problems(&mut out, plan);
    if !plan.session_denials.is_empty() {
        out.push_str("#### Live sessions denied\n\n");
        for d in &plan.session_denials {
            let _ = writeln!(out, "- {}", denial(plan, d, "`"));
        }
        out.push('\n');
    }
    if !plan.notices.is_empty() {
        out.push_str("#### Notices\n\n");
        for n in &plan.notices {
            let _ = writeln!(
                out,
                "- {}{} `{}`: {}",
                in_account(plan, n.account.as_deref()),
                n.kind,
                n.resource,
                n.message
            );
        }
        out.push('\n');
    }
    let _ = writeln!(out, "_{}_", headline(plan));
    out
}

fn md_held(out: &mut String, plan: &Plan) {
    if plan.held.is_empty() {
        return;
    }
    out.push_str("> [!CAUTION]\n> **Held**: these changes are not applied this pass.\n");
    for h in &plan.held {
        let _ = writeln!(
            out,
            "> - `{}` `{}`{}: {}. {}",
            h.change.action.name(),
            h.change.resource,
            h.change
                .mapping
                .as_ref()
                .map(|m| format!(" (mapping `{m}`)"))
                .unwrap_or_default(),
            h.held.reason,
            h.held.release
        );
    }
    out.push('\n');
}

/// The counts, and over many accounts a row per account.
fn md_summary(out: &mut String, plan: &Plan) {
    let s = &plan.summary;
    let _ = writeln!(
        out,
        "| add | change | remove | held | problems | principals granted | principals revoked |"
    );
    let _ = writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|");
    let _ = writeln!(
        out,
        "| {} | {} | {} | {} | {} | {} | {} |\n",
        s.add, s.change, s.remove, s.held, s.problems, s.principals_added, s.principals_removed
    );
    if plan.changes.is_empty() {
        out.push_str("No changes: AWS matches the policies.\n");
    }
    if !many_accounts(plan) {
        return;
    }
    out.push_str(
        "| account | regions | add | change | remove | status |\n|---|---|---:|---:|---:|---|\n",
    );
    for a in &plan.accounts {
        let count = |e: Effect| {
            plan.changes
                .iter()
                .filter(|c| c.in_account(&a.id) && c.effect == e)
                .count()
        };
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} | {} |",
            a.id,
            a.regions.join(", "),
            count(Effect::Add),
            count(Effect::Change),
            count(Effect::Remove),
            a.unreachable
                .as_ref()
                .map_or("ok".to_string(), |e| format!("**unreachable**: {e}"))
        );
    }
    out.push('\n');
}

fn md_change(out: &mut String, c: &Change) {
    let _ = writeln!(
        out,
        "#### `{}` {} `{}`\n",
        sign(c.effect),
        c.action.name(),
        c.resource
    );
    if let Some(m) = &c.mapping {
        let _ = writeln!(out, "- mapping: `{m}`");
    }
    let _ = writeln!(out, "- reason: {}", c.reason);
    if !c.members_added.is_empty() {
        let _ = writeln!(out, "- members added: {}", code_list(&c.members_added));
    }
    if !c.members_removed.is_empty() {
        let _ = writeln!(out, "- members removed: {}", code_list(&c.members_removed));
    }
    for line in detail_lines(c) {
        let _ = writeln!(out, "- {line}");
    }
    if c.before.is_some() || c.after.is_some() {
        let _ = writeln!(
            out,
            "\n```diff\n{}```",
            diff(c.before.as_ref(), c.after.as_ref())
        );
    }
    out.push('\n');
}

fn md_problems(out: &mut String, plan: &Plan) {
    if plan.problems.is_empty() {
        return;
    }
    out.push_str("#### Problems\n\nThese mappings were left alone but for revocations:\n\n");
    for p in &plan.problems {
        let _ = writeln!(
            out,
            "- {}**{}** `{}`{}: {}",
            in_account(plan, p.account.as_deref()),
            p.kind,
            p.resource,
            p.mapping
                .as_ref()
                .map(|m| format!(" (mapping `{m}`)"))
                .unwrap_or_default(),
            p.message
        );
    }
    out.push('\n');
}

fn code_list(items: &[String]) -> String {
    items
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A line diff of two documents, each shown in canonical form so that only real
/// differences appear.
fn diff(before: Option<&Value>, after: Option<&Value>) -> String {
    let lines = |v: Option<&Value>| -> Vec<String> {
        v.map(|v| {
            let canon = if v.get("Statement").is_some() {
                iam_policy::canonical(v)
            } else {
                v.clone()
            };
            serde_json::to_string_pretty(&canon)
                .unwrap_or_default()
                .lines()
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
    };
    let (a, b) = (lines(before), lines(after));
    // Longest common subsequence, then walk it.
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            let _ = writeln!(out, "  {}", a[i]);
            i += 1;
            j += 1;
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] > lcs[i + 1][j]) {
            let _ = writeln!(out, "+ {}", b[j]);
            j += 1;
        } else {
            let _ = writeln!(out, "- {}", a[i]);
            i += 1;
        }
    }
    out
}

/// One session denial in words; `code` quotes the role and principal (Markdown).
fn denial(plan: &Plan, d: &crate::plan::SessionDenial, code: &str) -> String {
    let who = crate::plan::sessions::whom(d.principal.as_deref(), code);
    format!(
        "{}{code}{}{code}: {who} issued before {}, until {}",
        in_account(plan, d.account.as_deref()),
        d.role,
        d.issued_before,
        d.until
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn diff_shows_only_changed_lines() {
        let a = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]});
        let b = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:PutObject", "Resource": "*"}]});
        let d = diff(Some(&a), Some(&b));
        let changed: Vec<String> = d
            .lines()
            .filter(|l| !l.starts_with("  "))
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        assert_eq!(changed, ["- \"s3:getobject\"", "+ \"s3:putobject\""], "{d}");
    }
}
