//! Guardrails: what one merged change to the policy repository may grant.
//!
//! Valid documents can still ask for too much: AdministratorAccess, `Action: "*"` on
//! `"*"`, an external account invoking a function, a service invoking one on anyone's
//! behalf (the confused deputy), a role trusting EC2, a provider for a stranger's tenant.
//! Each rule here is on by default, documented with its reason (docs/policy-reference.md,
//! "Guardrails"), and set or turned off one by one in the config's `guardrails`.
//!
//! `trustsync validate` refuses a violation (file, line, field, rule); `plan`, `apply` and
//! `run` report it as a problem of that document and change nothing for it but its
//! revocations, while the rest of the repository applies: the controller enforces the
//! rules even when CI did not run.

use std::collections::BTreeSet;

use serde_json::Value;

use super::{Diagnostic, PolicySet};
use crate::model::iam_policy::{statements, strings};

pub use crate::config::Guardrails;

/// What the rules are checked against besides the documents.
#[derive(Debug, Clone, Default)]
pub struct Known {
    /// The managed accounts, when known (`invokerAccounts` unset).
    pub accounts: Option<BTreeSet<String>>,
    /// The controller's own tenant, when known (`allowedTenants` unset).
    pub tenant: Option<String>,
}

/// One document breaking one rule.
#[derive(Debug, Clone)]
pub struct Violation {
    /// The document's kind.
    pub kind: &'static str,
    /// The document's name.
    pub name: String,
    /// The rule, as its config key.
    pub rule: &'static str,
    /// For a FunctionAccess: the index of the invoker that breaks it.
    pub invoker: Option<usize>,
    /// Where and what, with the rule named in the message.
    pub diagnostic: Diagnostic,
}

/// The account of an invoker principal: an account id, or the account field of an ARN.
fn account_of(principal: &str) -> Option<&str> {
    if principal.len() == 12 && principal.bytes().all(|b| b.is_ascii_digit()) {
        return Some(principal);
    }
    crate::model::arn::account_of(principal)
}

/// Whether an action pattern reaches administration: everything, or any wildcard over
/// IAM, STS or Organizations.
fn is_admin_action(action: &str) -> bool {
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

/// What the violations mean for a pass: mappings that may only revoke, providers that
/// are not registered, and the set without the invokers that break a rule.
#[derive(Debug, Clone, Default)]
pub struct Enforced {
    /// RoleMappings that break a rule, or use a provider that does: revocations only.
    pub blocked_mappings: BTreeSet<String>,
    /// IdentityProviders that break a rule: never created or changed.
    pub blocked_providers: BTreeSet<String>,
    /// AccessAssignments that break a rule: revocations only.
    pub blocked_assignments: BTreeSet<String>,
}

/// Applies the violations to a set: the invokers that break a rule are left out (their
/// statements are then removed like any trustsync no longer wants), and what else is
/// blocked is returned.
pub fn enforce(set: &mut PolicySet, violations: &[Violation]) -> Enforced {
    let mut e = Enforced::default();
    let mut invokers: BTreeSet<(String, usize)> = BTreeSet::new();
    for v in violations {
        match v.kind {
            "IdentityProvider" => {
                e.blocked_providers.insert(v.name.clone());
            }
            "RoleMapping" => {
                e.blocked_mappings.insert(v.name.clone());
            }
            "AccessAssignment" => {
                e.blocked_assignments.insert(v.name.clone());
            }
            _ => {
                if let Some(i) = v.invoker {
                    invokers.insert((v.name.clone(), i));
                }
            }
        }
    }
    for m in &set.role_mappings {
        if m.spec
            .provider
            .as_ref()
            .is_some_and(|p| e.blocked_providers.contains(p))
        {
            e.blocked_mappings.insert(m.name.clone());
        }
    }
    for f in &mut set.functions {
        let name = f.name.clone();
        let mut i = 0;
        f.spec.invokers.retain(|_| {
            let keep = !invokers.contains(&(name.clone(), i));
            i += 1;
            keep
        });
    }
    e
}

/// What a role or a permission set grants, against the rules on grants: managed policies
/// (`deniedManagedPolicies`, `allowedManagedPolicies`) and inline statements
/// (`noAdminStatements`). Each violation as (rule, field, message).
fn grant_violations(
    g: &Guardrails,
    (field, arns): (&str, &[String]),
    inline: &[(String, &Value)],
) -> Vec<(&'static str, String, String)> {
    let mut out = Vec::new();
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
    if g.no_admin_statements {
        for (field, doc) in inline {
            for (i, st) in statements(doc).iter().enumerate() {
                if let Some(why) = admin_statement(st) {
                    out.push((
                        "noAdminStatements",
                        format!("{field}.Statement[{i}]"),
                        format!("{why}: that is administration, not what a mapping grants"),
                    ));
                }
            }
        }
    }
    out
}

/// Every violation in the set.
pub fn check(set: &PolicySet, g: &Guardrails, known: &Known) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut push = |kind: &'static str,
                    name: &str,
                    origin: &super::Origin,
                    rule: &'static str,
                    field: String,
                    message: String| {
        let invoker = field
            .strip_prefix("spec.invokers[")
            .and_then(|r| r.split(']').next())
            .and_then(|i| i.parse().ok());
        out.push(Violation {
            kind,
            name: name.to_string(),
            rule,
            invoker,
            diagnostic: origin.diagnostic(field, format!("{message} (guardrails.{rule})")),
        });
    };
    let tenants: Option<BTreeSet<String>> = match (&g.allowed_tenants, &known.tenant) {
        (Some(list), _) => Some(list.iter().map(|t| t.to_ascii_lowercase()).collect()),
        (None, Some(t)) => Some(BTreeSet::from([t.to_ascii_lowercase()])),
        (None, None) => None,
    };
    for p in &set.providers {
        if let Some(allowed) = &tenants {
            if !allowed.contains(&p.spec.tenant_id.to_ascii_lowercase()) {
                push("IdentityProvider", &p.name, &p.origin, "allowedTenants", "spec.tenantId".into(), format!(
                    "tenant `{}` is not one this controller may trust ({}): a provider for another tenant would let its applications in",
                    p.spec.tenant_id,
                    allowed.iter().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
        }
    }
    for a in &set.access_assignments {
        let p = &a.spec.permission_set;
        let inline: Vec<(String, &Value)> = p
            .inline_policy
            .iter()
            .map(|d| ("spec.permissionSet.inlinePolicy".to_string(), d))
            .collect();
        let managed = (
            "spec.permissionSet.managedPolicies",
            &p.managed_policies[..],
        );
        for (rule, field, message) in grant_violations(g, managed, &inline) {
            push("AccessAssignment", &a.name, &a.origin, rule, field, message);
        }
    }
    for m in &set.role_mappings {
        let r = &m.spec.role;
        let inline: Vec<(String, &Value)> = r
            .inline_policies
            .iter()
            .map(|(name, d)| (format!("spec.role.inlinePolicies.{name}"), d))
            .collect();
        let managed = ("spec.role.managedPolicies", &r.managed_policies[..]);
        for (rule, field, message) in grant_violations(g, managed, &inline) {
            push("RoleMapping", &m.name, &m.origin, rule, field, message);
        }
        for (i, s) in m.spec.trusted_services.iter().enumerate() {
            if !g.trusted_services.iter().any(|t| t.eq_ignore_ascii_case(s)) {
                push(
                    "RoleMapping",
                    &m.name,
                    &m.origin,
                    "trustedServices",
                    format!("spec.trustedServices[{i}]"),
                    format!(
                        "`{s}` may not assume roles trustsync manages (allowed: {})",
                        g.trusted_services.join(", ")
                    ),
                );
            }
        }
    }
    let accounts: Option<BTreeSet<String>> = match (&g.invoker_accounts, &known.accounts) {
        (Some(list), _) => Some(list.iter().cloned().collect()),
        (None, Some(a)) => Some(a.clone()),
        (None, None) => None,
    };
    for f in &set.functions {
        for (i, inv) in f.spec.invokers.iter().enumerate() {
            let field = |part: &str| format!("spec.invokers[{i}]{part}");
            if let Some(s) = &inv.service {
                if !g.invoker_services.iter().any(|t| t.eq_ignore_ascii_case(s)) {
                    push(
                        "FunctionAccess",
                        &f.name,
                        &f.origin,
                        "invokerServices",
                        field(".service"),
                        format!(
                            "`{s}` may not invoke functions trustsync manages (allowed: {})",
                            g.invoker_services.join(", ")
                        ),
                    );
                }
                if g.service_invokers_need_source
                    && inv.source_arn.is_none()
                    && inv.source_account.is_none()
                {
                    push("FunctionAccess", &f.name, &f.origin, "serviceInvokersNeedSource", field(".service"), format!(
                        "`{s}` with neither sourceArn nor sourceAccount lets any resource of that service, in any account, invoke the function (a confused deputy)"
                    ));
                }
            }
            if let (Some(p), Some(allowed)) = (&inv.principal, &accounts) {
                match account_of(p) {
                    Some(a) if allowed.contains(a) => {}
                    other => push(
                        "FunctionAccess",
                        &f.name,
                        &f.origin,
                        "invokerAccounts",
                        field(".principal"),
                        format!(
                            "`{p}` is {} outside the accounts that may invoke ({})",
                            other.map_or("a principal".to_string(), |a| format!("in account {a},")),
                            allowed.iter().cloned().collect::<Vec<_>>().join(", ")
                        ),
                    ),
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_actions_are_wildcards_over_everything_or_iam_sts_organizations() {
        for a in [
            "*",
            "*:*",
            "iam:*",
            "IAM:Put*",
            "sts:Assume*",
            "organizations:*",
            "*:Get*",
        ] {
            assert!(is_admin_action(a), "{a}");
        }
        for a in ["s3:GetObject", "s3:*", "iam:PassRole", "lambda:Invoke*"] {
            assert!(!is_admin_action(a), "{a}");
        }
        assert_eq!(
            account_of("arn:aws:iam::111122223333:role/x"),
            Some("111122223333")
        );
        assert_eq!(account_of("111122223333"), Some("111122223333"));
        assert_eq!(account_of("*"), None);
    }
}
