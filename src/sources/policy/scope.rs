//! Which documents apply where: a document's `spec.accounts` selector (every account when
//! absent), a FunctionAccess's `regions` (the account's home region when absent), and a
//! function ARN's own account and region.

use std::collections::BTreeSet;

use super::{
    AccessAssignmentSpec, AccountSelector, Diagnostic, FunctionAccessSpec, Named, PolicySet,
};
use crate::model::account::Account;
use crate::model::arn::{account_of, region_of};

fn selects(selector: Option<&AccountSelector>, account: &Account) -> bool {
    selector.is_none_or(|s| s.matches(&account.id, &account.labels))
}

/// The regions of `account` a FunctionAccess manages its function in (none: not here).
pub fn function_regions(f: &FunctionAccessSpec, account: &Account) -> Vec<String> {
    if f.function.starts_with("arn:") {
        return match (account_of(&f.function), region_of(&f.function)) {
            (Some(a), Some(r)) if a == account.id => vec![r.to_string()],
            _ => Vec::new(),
        };
    }
    if !selects(f.accounts.as_ref(), account) {
        return Vec::new();
    }
    if f.regions.is_empty() {
        vec![account.home().to_string()]
    } else {
        f.regions.clone()
    }
}

/// The documents that apply in `account` and `region`: the providers and role mappings that
/// select the account, and the functions managed in that region of it.
pub fn policies_at(set: &PolicySet, account: &Account, region: &str) -> PolicySet {
    PolicySet {
        providers: set
            .providers
            .iter()
            .filter(|p| selects(p.spec.accounts.as_ref(), account))
            .cloned()
            .collect(),
        role_mappings: set
            .role_mappings
            .iter()
            .filter(|m| selects(m.spec.accounts.as_ref(), account))
            .cloned()
            .collect(),
        functions: set
            .functions
            .iter()
            .filter(|f| {
                function_regions(&f.spec, account)
                    .iter()
                    .any(|r| r == region)
            })
            .cloned()
            .collect(),
        // People are planned once for the instance, not account by account.
        access_assignments: Vec::new(),
        revision: set.revision.clone(),
    }
}

/// The accounts of `accounts` an AccessAssignment assigns its permission set in.
pub fn assignment_accounts<'a>(
    a: &AccessAssignmentSpec,
    accounts: impl IntoIterator<Item = &'a Account>,
) -> Vec<String> {
    accounts
        .into_iter()
        .filter(|acc| selects(a.accounts.as_ref(), acc))
        .map(|acc| acc.id.clone())
        .collect()
}

/// The regions a pass visits in `account`: its own (home first), then any its functions
/// name.
pub fn regions_of(set: &PolicySet, account: &Account) -> Vec<String> {
    let mut out = account.regions.clone();
    for f in &set.functions {
        for r in function_regions(&f.spec, account) {
            if !out.contains(&r) {
                out.push(r);
            }
        }
    }
    out
}

/// What the accounts in scope cannot satisfy, per document name: a selector that matches
/// no account, a function ARN in an account out of scope, and a function whose role
/// mapping (execution role or invoker) is not managed in the function's account.
pub fn scope_problems(set: &PolicySet, accounts: &[Account]) -> Vec<(String, Diagnostic)> {
    let mut out = Vec::new();
    let mut unmatched = |name: &str, origin: &super::Origin, sel: Option<&AccountSelector>| {
        if let Some(sel) = sel {
            if !accounts.iter().any(|a| sel.matches(&a.id, &a.labels)) {
                out.push((
                    name.to_string(),
                    origin.diagnostic(
                        "spec.accounts",
                        format!("selects no account in scope ({sel})"),
                    ),
                ));
            }
        }
    };
    for p in &set.providers {
        unmatched(&p.name, &p.origin, p.spec.accounts.as_ref());
    }
    for m in &set.role_mappings {
        unmatched(&m.name, &m.origin, m.spec.accounts.as_ref());
    }
    for f in &set.functions {
        unmatched(&f.name, &f.origin, f.spec.accounts.as_ref());
    }
    for f in &set.functions {
        function_scope(set, f, accounts, &mut out);
    }
    out
}

fn function_scope(
    set: &PolicySet,
    f: &Named<FunctionAccessSpec>,
    accounts: &[Account],
    out: &mut Vec<(String, Diagnostic)>,
) {
    let problem =
        |field: &str, message: String| (f.name.clone(), f.origin.diagnostic(field, message));
    if f.spec.function.starts_with("arn:") {
        if let Some(acct) = account_of(&f.spec.function) {
            if !accounts.iter().any(|a| a.id == acct) {
                let ids: BTreeSet<&str> = accounts.iter().map(|a| a.id.as_str()).collect();
                out.push(problem(
                    "spec.function",
                    format!(
                        "account {acct} is not in scope (accounts managed: {}); nothing is changed for this function",
                        ids.into_iter().collect::<Vec<_>>().join(", ")
                    ),
                ));
                return;
            }
        }
    }
    let execution = f
        .spec
        .execution_role
        .as_ref()
        .and_then(|r| r.role_mapping.as_deref())
        .map(|m| ("spec.executionRole.roleMapping".to_string(), m));
    let invokers = f.spec.invokers.iter().enumerate().filter_map(|(i, inv)| {
        inv.role_mapping
            .as_deref()
            .map(|m| (format!("spec.invokers[{i}].roleMapping"), m))
    });
    for (field, mapping) in execution.into_iter().chain(invokers) {
        let Some(m) = set.role_mapping(mapping) else {
            continue;
        };
        let missing: Vec<&str> = accounts
            .iter()
            .filter(|a| !function_regions(&f.spec, a).is_empty())
            .filter(|a| !selects(m.spec.accounts.as_ref(), a))
            .map(|a| a.id.as_str())
            .collect();
        if !missing.is_empty() {
            out.push(problem(
                &field,
                format!(
                    "RoleMapping `{mapping}` is not managed in account(s) {} where this function is",
                    missing.join(", ")
                ),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn account(id: &str, env: &str) -> Account {
        Account {
            id: id.into(),
            labels: BTreeMap::from([("env".to_string(), env.to_string())]),
            regions: vec!["eu-west-1".into(), "us-east-1".into()],
            role_arn: None,
            external_id: None,
        }
    }

    fn spec(
        function: &str,
        accounts: Option<AccountSelector>,
        regions: &[&str],
    ) -> FunctionAccessSpec {
        FunctionAccessSpec {
            function: function.into(),
            qualifier: None,
            execution_role: None,
            invokers: Vec::new(),
            accounts,
            entra_application: None,
            regions: regions.iter().map(|r| r.to_string()).collect(),
        }
    }

    #[test]
    fn a_function_lives_where_its_arn_or_selector_says() {
        let prod = account("111111111111", "prod");
        let dev = account("222222222222", "dev");
        let by_arn = spec(
            "arn:aws:lambda:ap-south-1:111111111111:function:api",
            None,
            &[],
        );
        assert_eq!(function_regions(&by_arn, &prod), ["ap-south-1"]);
        assert!(function_regions(&by_arn, &dev).is_empty());
        let by_name = spec("api", None, &[]);
        assert_eq!(function_regions(&by_name, &dev), ["eu-west-1"]);
        let labelled = spec(
            "api",
            Some(AccountSelector {
                ids: vec![],
                labels: BTreeMap::from([("env".to_string(), "prod".to_string())]),
            }),
            &["us-east-1"],
        );
        assert_eq!(function_regions(&labelled, &prod), ["us-east-1"]);
        assert!(function_regions(&labelled, &dev).is_empty());
    }
}
