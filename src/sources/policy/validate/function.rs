//! A FunctionAccess: its function, execution role, Entra application and invokers.

use super::names::{
    is_account, is_arn, is_function_ref, is_guid, is_iam_principal_arn, is_role_arn,
    is_service_principal,
};
use super::{may_overlap, Known};
use crate::config::Limits;
use crate::model::arn::ArnParts;
use crate::sources::policy::{self, Diagnostic, Named};

/// A function by ARN names its account and region; by name, `regions` are region names.
pub(super) fn check_function_place(f: &Named<policy::FunctionAccessSpec>, d: &mut Vec<Diagnostic>) {
    let (o, s) = (&f.origin, &f.spec);
    if s.function.starts_with("arn:") {
        if s.accounts.is_some() {
            d.push(o.diagnostic(
                "spec.accounts",
                "the function ARN already names its account; remove `accounts` or name the function",
            ));
        }
        if !s.regions.is_empty() {
            d.push(o.diagnostic(
                "spec.regions",
                "the function ARN already names its region; remove `regions` or name the function",
            ));
        }
        let named = ArnParts::parse(&s.function).filter(|a| a.function_name().is_some());
        if named
            .is_some_and(|a| !crate::model::account::is_region(a.region) || !is_account(a.account))
        {
            d.push(o.diagnostic(
                "spec.function",
                format!(
                    "`{}` must name a region and a 12-digit account (arn:aws:lambda:REGION:ACCOUNT:function:NAME)",
                    s.function
                ),
            ));
        }
    }
    for (i, r) in s.regions.iter().enumerate() {
        if !crate::model::account::is_region(r) {
            d.push(o.diagnostic(
                format!("spec.regions[{i}]"),
                format!("`{r}` is not an AWS region name"),
            ));
        }
    }
}

/// True when two documents could manage the same function: the same ARN, or names whose
/// accounts and regions may meet.
pub(super) fn same_function_place(
    a: &policy::FunctionAccessSpec,
    b: &policy::FunctionAccessSpec,
) -> bool {
    let arn = |s: &policy::FunctionAccessSpec| {
        s.function
            .starts_with("arn:")
            .then(|| crate::model::arn::unqualified(&s.function).to_string())
    };
    match (arn(a), arn(b)) {
        (Some(x), Some(y)) => x == y,
        (Some(_), None) | (None, Some(_)) => true,
        (None, None) => {
            may_overlap(a.accounts.as_ref(), b.accounts.as_ref())
                && (a.regions.is_empty()
                    || b.regions.is_empty()
                    || a.regions.iter().any(|r| b.regions.contains(r)))
        }
    }
}

pub(super) fn check_function(
    set: &Known<'_>,
    f: &Named<policy::FunctionAccessSpec>,
    limits: &Limits,
    d: &mut Vec<Diagnostic>,
) {
    let o = &f.origin;
    let s = &f.spec;
    if !is_function_ref(&s.function) {
        d.push(o.diagnostic(
            "spec.function",
            format!("`{}` is neither a function name (1 to 64 of letters, digits, - and _) nor a Lambda function ARN", s.function),
        ));
    }
    if let Some(q) = &s.qualifier {
        if q.is_empty()
            || q.len() > 128
            || !q
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '$')
        {
            d.push(o.diagnostic(
                "spec.qualifier",
                format!("`{q}` is not an alias or version"),
            ));
        }
    }
    if let Some(er) = &s.execution_role {
        check_role_reference(
            set,
            er.role_mapping.as_deref(),
            er.arn.as_deref(),
            "spec.executionRole",
            o,
            d,
        );
    }
    if let Some(app) = &s.entra_application {
        check_entra_application(app, s, o, d);
    }
    check_invokers(set, s, limits, o, d);
}

/// A function's `entraApplication`: its client id, a token lifetime STS issues, and a
/// role trustsync manages to grant the token request on.
fn check_entra_application(
    app: &policy::EntraApplication,
    s: &policy::FunctionAccessSpec,
    o: &policy::Origin,
    d: &mut Vec<Diagnostic>,
) {
    if !is_guid(&app.app_id) {
        d.push(o.diagnostic(
            "spec.entraApplication.appId",
            format!("`{}` is not an application (client) id: a GUID", app.app_id),
        ));
    }
    if !(60..=3600).contains(&app.max_token_seconds) {
        d.push(o.diagnostic(
            "spec.entraApplication.maxTokenSeconds",
            format!(
                "{} seconds: STS issues web identity tokens for 60 to 3600 seconds",
                app.max_token_seconds
            ),
        ));
    }
    if s.execution_role
        .as_ref()
        .and_then(|r| r.role_mapping.as_ref())
        .is_none()
    {
        d.push(o.diagnostic(
            "spec.executionRole",
            "a function with `entraApplication` needs `executionRole.roleMapping`: trustsync grants the token request on the role it manages",
        ));
    }
}

/// The invokers: each set exactly one way and listed once, and the resource policy they
/// make within Lambda's size.
fn check_invokers(
    set: &Known<'_>,
    s: &policy::FunctionAccessSpec,
    limits: &Limits,
    o: &policy::Origin,
    d: &mut Vec<Diagnostic>,
) {
    let mut size = 120; // the policy envelope
    let mut seen = std::collections::HashSet::new();
    for (i, inv) in s.invokers.iter().enumerate() {
        let at = format!("spec.invokers[{i}]");
        let set_count = [
            inv.role_mapping.is_some(),
            inv.principal.is_some(),
            inv.service.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if set_count != 1 {
            d.push(o.diagnostic(
                &at,
                "set exactly one of `roleMapping`, `principal` and `service`",
            ));
            continue;
        }
        check_invoker(set, inv, &at, o, d);
        let key = (
            &inv.role_mapping,
            &inv.principal,
            &inv.service,
            &inv.source_arn,
            &inv.source_account,
            &inv.action,
        );
        if !seen.insert(key) {
            d.push(o.diagnostic(&at, "the same invoker is listed twice"));
        }
        size += 300 + inv.source_arn.as_deref().map_or(0, str::len);
    }
    if size > limits.lambda_policy_bytes {
        d.push(o.diagnostic(
            "spec.invokers",
            format!(
                "about {size} bytes of resource policy; Lambda allows {}",
                limits.lambda_policy_bytes
            ),
        ));
    }
}

/// One invoker's fields: a role mapping that exists, a principal that is an account or an
/// IAM ARN, a service principal (with its optional source), a Lambda action.
fn check_invoker(
    set: &Known<'_>,
    inv: &policy::Invoker,
    at: &str,
    o: &policy::Origin,
    d: &mut Vec<Diagnostic>,
) {
    if let Some(rm) = &inv.role_mapping {
        if set.lacks_role_mapping(rm) {
            d.push(o.diagnostic(
                format!("{at}.roleMapping"),
                format!("no RoleMapping named `{rm}`"),
            ));
        }
    }
    if let Some(p) = &inv.principal {
        let account = p.len() == 12 && p.chars().all(|c| c.is_ascii_digit());
        if !account && !is_iam_principal_arn(p) {
            d.push(o.diagnostic(
                format!("{at}.principal"),
                format!("`{p}` is neither an account id nor an IAM role, user or root ARN"),
            ));
        }
    }
    if let Some(svc) = &inv.service {
        if !is_service_principal(svc) {
            d.push(o.diagnostic(
                format!("{at}.service"),
                format!("`{svc}` is not an AWS service principal"),
            ));
        }
    } else if inv.source_arn.is_some() || inv.source_account.is_some() {
        d.push(o.diagnostic(at, "`sourceArn` and `sourceAccount` go with `service`"));
    }
    if let Some(arn) = &inv.source_arn {
        if !is_arn(arn) {
            d.push(o.diagnostic(format!("{at}.sourceArn"), format!("`{arn}` is not an ARN")));
        }
    }
    if let Some(acct) = &inv.source_account {
        if acct.len() != 12 || !acct.chars().all(|c| c.is_ascii_digit()) {
            d.push(o.diagnostic(
                format!("{at}.sourceAccount"),
                format!("`{acct}` is not a 12-digit account id"),
            ));
        }
    }
    if let Some(action) = &inv.action {
        if !action.to_ascii_lowercase().starts_with("lambda:") {
            d.push(o.diagnostic(
                format!("{at}.action"),
                format!("`{action}` is not a Lambda action"),
            ));
        }
    }
}

fn check_role_reference(
    set: &Known<'_>,
    mapping: Option<&str>,
    arn: Option<&str>,
    at: &str,
    o: &policy::Origin,
    d: &mut Vec<Diagnostic>,
) {
    match (mapping, arn) {
        (Some(m), None) => {
            if set.lacks_role_mapping(m) {
                d.push(o.diagnostic(
                    format!("{at}.roleMapping"),
                    format!("no RoleMapping named `{m}`"),
                ));
            }
        }
        (None, Some(a)) => {
            if !is_role_arn(a) {
                d.push(o.diagnostic(format!("{at}.arn"), format!("`{a}` is not an IAM role ARN")));
            }
        }
        _ => d.push(o.diagnostic(at, "set exactly one of `roleMapping` and `arn`")),
    }
}
