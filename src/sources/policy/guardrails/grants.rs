//! The rules on what a role or a permission set grants: managed policies, and inline
//! statements that reach administration or privilege escalation.

use std::collections::BTreeSet;

use serde_json::Value;

use super::{Guardrails, ESCALATION_ACTIONS, PASS_ROLE_SERVICES};
use crate::model::arn::ArnParts;
use crate::model::iam_policy::{statements, strings};

/// Whether an action pattern reaches administration: everything, or any wildcard over
/// IAM, STS or Organizations.
pub(super) fn is_admin_action(action: &str) -> bool {
    let a = action.to_ascii_lowercase();
    if a == "*" || a == "*:*" {
        return true;
    }
    match a.split_once(':') {
        Some((service, name)) => {
            (service.contains('*') || matches!(service, "iam" | "sts" | "organizations"))
                && (name.contains('*') || name.contains('?'))
        }
        None => false,
    }
}

/// Why an inline policy's statement grants administration, if it does.
fn admin_statement(st: &Value) -> Option<String> {
    if st["Effect"] != "Allow" {
        return None;
    }
    let everywhere =
        st.get("NotResource").is_some() || strings(&st["Resource"]).iter().any(|r| r == "*");
    if !everywhere {
        return None;
    }
    if st.get("NotAction").is_some() {
        return Some("Allow with NotAction on every resource".into());
    }
    strings(&st["Action"])
        .into_iter()
        .find(|a| is_admin_action(a))
        .map(|a| format!("Allow `{a}` on every resource"))
}
/// Whether an IAM action pattern (`*` any run, `?` one character) matches an action,
/// case-insensitively, as IAM matches `Action` and `NotAction`.
pub fn action_matches(pattern: &str, action: &str) -> bool {
    fn glob(p: &[u8], a: &[u8]) -> bool {
        let (mut pi, mut ai, mut star, mut mark) = (0, 0, None, 0);
        while ai < a.len() {
            if pi < p.len() && (p[pi] == b'?' || p[pi] == a[ai]) {
                pi += 1;
                ai += 1;
            } else if pi < p.len() && p[pi] == b'*' {
                star = Some(pi);
                mark = ai;
                pi += 1;
            } else if let Some(s) = star {
                pi = s + 1;
                mark += 1;
                ai = mark;
            } else {
                return false;
            }
        }
        p[pi..].iter().all(|c| *c == b'*')
    }
    glob(
        pattern.to_ascii_lowercase().as_bytes(),
        action.to_ascii_lowercase().as_bytes(),
    )
}

/// Whether a statement's actions reach `action`: one of its `Action` patterns matches, or,
/// with `NotAction`, none of those do (an Allow with `NotAction` grants every action it
/// does not name).
fn statement_reaches(st: &Value, action: &str) -> bool {
    if let Some(not) = st.get("NotAction") {
        !strings(not).iter().any(|p| action_matches(p, action))
    } else {
        strings(&st["Action"])
            .iter()
            .any(|p| action_matches(p, action))
    }
}

/// The service whose ARNs an action's resources are (`sts:AssumeRole` acts on IAM roles).
fn resource_service(action: &str) -> &str {
    match action.split_once(':') {
        Some(("sts", _)) => "iam",
        Some((service, _)) => service,
        None => action,
    }
}

/// Whether a `Resource` entry may name a resource of `action`: `*`, or an ARN whose
/// service part matches the action's (`Action: "*"` on an S3 bucket grants no IAM write).
/// Anything not shaped as an ARN is taken to match.
fn resource_reaches(resource: &str, action: &str) -> bool {
    let parts: Vec<&str> = resource.splitn(4, ':').collect();
    match parts[..] {
        [arn, _, service, _] if action_matches(arn, "arn") => {
            action_matches(service, resource_service(action))
        }
        _ => true,
    }
}

/// How far a statement's resources reach for `action`: `None` when none of them can name a
/// resource of it; else whether they reach beyond the role itself (`NotResource`, no
/// `Resource`, or any but the role's own ARN: any account, any path, no wildcard, as role
/// names are unique in an account and IAM writes reach only the caller's own account),
/// and whether they reach any resource (a wildcard).
fn reach(st: &Value, action: &str, own_role: Option<&str>) -> Option<(bool, bool)> {
    if st.get("NotResource").is_some() {
        return Some((true, true));
    }
    let resources: Vec<String> = strings(&st["Resource"])
        .into_iter()
        .filter(|r| resource_reaches(r, action))
        .collect();
    if st.get("Resource").is_none() {
        return Some((true, true));
    }
    if resources.is_empty() {
        return None;
    }
    let beyond = resources.iter().any(|r| !is_own_role_arn(r, own_role));
    let any = resources.iter().any(|r| r.contains(['*', '?']));
    Some((beyond, any))
}

/// Whether a resource is the role's own ARN: an IAM role ARN ending in its name, with no
/// wildcard or policy variable.
fn is_own_role_arn(resource: &str, own_role: Option<&str>) -> bool {
    let Some(name) = own_role else {
        return false;
    };
    ArnParts::parse(resource)
        .and_then(|a| a.iam_resource())
        .is_some_and(|rest| {
            !rest.contains(['*', '?', '$'])
                && rest.starts_with("role/")
                && rest.rsplit('/').next() == Some(name)
        })
}

/// Unconditional denials on every resource, which take an action away whatever allows it.
fn denied_everywhere(statements: &[&Value], action: &str) -> bool {
    statements.iter().any(|st| {
        st["Effect"] == "Deny"
            && st.get("Condition").is_none()
            && st.get("NotResource").is_none()
            && strings(&st["Resource"]).iter().any(|r| r == "*")
            && statement_reaches(st, action)
    })
}

/// The escalations a set of statements grants beyond the role itself, per statement (its
/// index among `statements`): the actions, and why they escalate. `iam:PassRole` counts
/// only with one of [`PASS_ROLE_SERVICES`] somewhere in the same statements.
fn escalations(
    statements: &[&Value],
    own_role: Option<&str>,
    allowed: &[String],
) -> Vec<(usize, Vec<&'static str>, &'static str)> {
    let is_allowed = |a: &str| allowed.iter().any(|x| x.eq_ignore_ascii_case(a));
    let allows = |st: &Value| st["Effect"] == "Allow";
    let runs_code = PASS_ROLE_SERVICES.iter().find(|svc| {
        statements
            .iter()
            .any(|st| allows(st) && statement_reaches(st, svc) && reach(st, svc, None).is_some())
            && !denied_everywhere(statements, svc)
    });
    let mut out = Vec::new();
    for (i, st) in statements.iter().enumerate() {
        if !allows(st) {
            continue;
        }
        let mut found: Vec<&'static str> = Vec::new();
        let mut why = "";
        for (action, what) in ESCALATION_ACTIONS {
            let Some((beyond, any)) = reach(st, action, own_role) else {
                continue;
            };
            if !beyond
                || (WILDCARD_ONLY.contains(action) && !any)
                || is_allowed(action)
                || !statement_reaches(st, action)
                || denied_everywhere(statements, action)
            {
                continue;
            }
            if *action == "iam:PassRole" && runs_code.is_none() {
                continue;
            }
            if found.is_empty() {
                why = what;
            }
            found.push(action);
        }
        if !found.is_empty() {
            out.push((i, found, why));
        }
    }
    out
}

/// Actions escalating only on a wildcard resource (or `NotResource`): passing or assuming
/// one named role is a reviewed decision; passing or assuming any role is not.
const WILDCARD_ONLY: &[&str] = &["sts:AssumeRole", "iam:PassRole"];

/// What a role or a permission set grants, against the rules on grants: managed policies
/// (`deniedManagedPolicies`, `allowedManagedPolicies`) and inline statements
/// (`noAdminStatements`, `noEscalationActions`; `own_role` is the role's name, whose own
/// ARN an escalation action may name). Each violation as (rule, field, message).
pub(super) fn grant_violations(
    g: &Guardrails,
    (field, arns): (&str, &[String]),
    inline: &[(String, &Value)],
    own_role: Option<&str>,
) -> Vec<(&'static str, String, String)> {
    let mut out = Vec::new();
    managed_policy_violations(g, field, arns, &mut out);
    // Every inline statement of the role, with its field: `iam:PassRole` in one policy
    // and `lambda:CreateFunction` in another are one grant.
    let mut located: Vec<(String, Value)> = Vec::new();
    for (field, doc) in inline {
        for (i, st) in statements(doc).into_iter().enumerate() {
            located.push((format!("{field}.Statement[{i}]"), st));
        }
    }
    let mut admin = BTreeSet::new();
    if g.no_admin_statements {
        for (i, (field, st)) in located.iter().enumerate() {
            if let Some(why) = admin_statement(st) {
                admin.insert(i);
                out.push((
                    "noAdminStatements",
                    field.clone(),
                    format!("{why}: that is administration, not what a mapping grants"),
                ));
            }
        }
    }
    if g.no_escalation_actions {
        escalation_violations(g, &located, &admin, own_role, &mut out);
    }
    out
}

/// `deniedManagedPolicies` and `allowedManagedPolicies`, for the managed policies at
/// `field`.
fn managed_policy_violations(
    g: &Guardrails,
    field: &str,
    arns: &[String],
    out: &mut Vec<(&'static str, String, String)>,
) {
    for (i, arn) in arns.iter().enumerate() {
        let field = format!("{field}[{i}]");
        if g.denied_managed_policies
            .iter()
            .any(|d| d.eq_ignore_ascii_case(arn))
        {
            out.push((
                "deniedManagedPolicies",
                field,
                format!("`{arn}` grants administration; no mapping may attach it"),
            ));
        } else if let Some(allowed) = &g.allowed_managed_policies {
            if !allowed.iter().any(|a| a.eq_ignore_ascii_case(arn)) {
                out.push((
                    "allowedManagedPolicies",
                    field,
                    format!("`{arn}` is not among the managed policies a mapping may attach"),
                ));
            }
        }
    }
}

/// `noEscalationActions`, over the located inline statements; those in `admin` are
/// already refused as administration.
fn escalation_violations(
    g: &Guardrails,
    located: &[(String, Value)],
    admin: &BTreeSet<usize>,
    own_role: Option<&str>,
    out: &mut Vec<(&'static str, String, String)>,
) {
    let all: Vec<&Value> = located.iter().map(|(_, st)| st).collect();
    for (i, actions, why) in escalations(&all, own_role, &g.allowed_escalation_actions) {
        if admin.contains(&i) {
            continue; // already refused as administration
        }
        let (field, st) = &located[i];
        let at = if st.get("NotAction").is_some() {
            "NotAction"
        } else {
            "Action"
        };
        let more = match actions.len() {
            1 => String::new(),
            n => format!(" and {} more escalation action(s)", n - 1),
        };
        let pass = if actions[0] == "iam:PassRole" {
            " to a service these statements let it run code in"
        } else {
            ""
        };
        out.push((
            "noEscalationActions",
            format!("{field}.{at}"),
            format!(
                "grants `{}`{pass}{more} on {}: it {why}, so the role could widen its own access or another's (privilege escalation)",
                actions[0],
                if own_role.is_some() { "more than the role itself" } else { "other principals" },
            ),
        ));
    }
}
