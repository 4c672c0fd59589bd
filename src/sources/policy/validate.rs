//! Semantic checks over a loaded repository: names, references, ARNs, IAM naming rules,
//! policy documents and the AWS limits that would make an apply fail half-way.

mod access;
mod function;
mod names;
mod role;

use std::collections::HashMap;

use super::{Diagnostic, Named, PolicySet, Unreadable};
use crate::config::Limits;
use access::check_permission_set;
use function::{check_function, check_function_place, same_function_place};
pub use names::function_name;
use names::is_account;
use names::is_guid;
#[cfg(test)]
use names::{is_function_ref, is_managed_policy_arn, is_role_arn};
use role::{check_group, check_role_mapping};

/// Every problem in the set, in file order.
#[cfg(test)]
pub fn validate(set: &PolicySet, limits: &Limits) -> Vec<Diagnostic> {
    validate_with(set, limits, &Unreadable::new())
}

/// The documents the checks look up by name: the set's, and those that are there but
/// could not be read (their own problems are reported; a reference to one is not
/// reported again as a missing document).
struct Known<'a> {
    set: &'a PolicySet,
    unreadable: &'a Unreadable,
}

impl Known<'_> {
    fn is_unreadable(&self, kind: &str, name: &str) -> bool {
        self.unreadable
            .contains(&(kind.to_string(), name.to_string()))
    }

    /// No role mapping of this name, readable or not.
    fn lacks_role_mapping(&self, name: &str) -> bool {
        self.set.role_mapping(name).is_none() && !self.is_unreadable("RoleMapping", name)
    }

    /// No identity provider of this name, readable or not.
    fn lacks_provider(&self, name: &str) -> bool {
        self.set.provider(name).is_none() && !self.is_unreadable("IdentityProvider", name)
    }
}

/// Every problem in the set, in file order; references to `unreadable` documents are not
/// reported as missing.
pub fn validate_with(set: &PolicySet, limits: &Limits, unreadable: &Unreadable) -> Vec<Diagnostic> {
    let known = Known { set, unreadable };
    let mut d = Vec::new();
    check_names(&set.providers, &mut d);
    check_names(&set.role_mappings, &mut d);
    check_names(&set.functions, &mut d);
    check_providers(set, &mut d);
    check_role_mappings(&known, limits, &mut d);
    check_functions(&known, limits, &mut d);
    check_names(&set.access_assignments, &mut d);
    check_access_assignments(set, &mut d);
    d.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
    d
}

/// Each provider, and no two declaring one issuer in the same accounts.
fn check_providers(set: &PolicySet, d: &mut Vec<Diagnostic>) {
    let mut issuers: HashMap<String, Vec<&Named<super::IdentityProviderSpec>>> = HashMap::new();
    for p in &set.providers {
        check_provider(p, d);
        check_accounts(p.spec.accounts.as_ref(), &p.origin, d);
        let same = issuers.entry(p.spec.issuer_url()).or_default();
        if let Some(other) = same
            .iter()
            .find(|o| may_overlap(o.spec.accounts.as_ref(), p.spec.accounts.as_ref()))
        {
            d.push(p.origin.diagnostic(
                "spec.tenantId",
                format!(
                    "IdentityProvider `{}` already declares issuer {} in the same accounts",
                    super::short(&other.name),
                    p.spec.issuer_url()
                ),
            ));
        }
        same.push(p);
    }
}

/// Each role mapping, and no two claiming one role in the same accounts.
fn check_role_mappings(known: &Known<'_>, limits: &Limits, d: &mut Vec<Diagnostic>) {
    let mut role_owner: HashMap<String, Vec<&Named<super::RoleMappingSpec>>> = HashMap::new();
    for m in &known.set.role_mappings {
        check_role_mapping(known, m, limits, d);
        check_accounts(m.spec.accounts.as_ref(), &m.origin, d);
        // IAM role names are unique per account, case-insensitively.
        let same = role_owner
            .entry(m.spec.role.name.to_ascii_lowercase())
            .or_default();
        if let Some(other) = same
            .iter()
            .find(|o| may_overlap(o.spec.accounts.as_ref(), m.spec.accounts.as_ref()))
        {
            d.push(m.origin.diagnostic(
                "spec.role.name",
                format!(
                    "role `{}` is already claimed by RoleMapping `{}` in the same accounts",
                    m.spec.role.name,
                    super::short(&other.name)
                ),
            ));
        }
        same.push(m);
    }
}

/// Each function access, and no two managing one function.
fn check_functions(known: &Known<'_>, limits: &Limits, d: &mut Vec<Diagnostic>) {
    let mut functions: HashMap<(String, Option<String>), Vec<&Named<super::FunctionAccessSpec>>> =
        HashMap::new();
    for f in &known.set.functions {
        check_function(known, f, limits, d);
        check_accounts(f.spec.accounts.as_ref(), &f.origin, d);
        check_function_place(f, d);
        let key = (
            function_name(&f.spec.function).to_string(),
            f.spec.qualifier.clone(),
        );
        let same = functions.entry(key).or_default();
        if let Some(other) = same.iter().find(|o| same_function_place(&o.spec, &f.spec)) {
            d.push(f.origin.diagnostic(
                "spec.function",
                format!(
                    "function `{}` is already managed by FunctionAccess `{}`",
                    f.spec.function,
                    super::short(&other.name)
                ),
            ));
        }
        same.push(f);
    }
}

/// Each access assignment: a name of its own, its group, accounts and permission set, and
/// no two writing one permission set.
fn check_access_assignments(set: &PolicySet, d: &mut Vec<Diagnostic>) {
    let mut permission_sets: HashMap<String, &Named<super::AccessAssignmentSpec>> = HashMap::new();
    for a in &set.access_assignments {
        if set.role_mappings.iter().any(|m| m.name == a.name)
            || set.functions.iter().any(|f| f.name == a.name)
        {
            d.push(a.origin.diagnostic(
                "metadata.name",
                format!("`{}` is already the name of a RoleMapping or FunctionAccess: the audit log and `--release` name documents by name", a.name),
            ));
        }
        check_group(&a.spec.group, &a.origin, d);
        check_accounts(a.spec.accounts.as_ref(), &a.origin, d);
        check_permission_set(&a.spec.permission_set, &a.origin, d);
        // Permission set names are unique in the instance, case-insensitively; two
        // documents writing one set would undo each other every pass.
        let key = a.spec.permission_set.name.to_ascii_lowercase();
        if let Some(other) = permission_sets.get(&key) {
            d.push(a.origin.diagnostic(
                "spec.permissionSet.name",
                format!(
                    "permission set `{}` is already written by AccessAssignment `{}`",
                    a.spec.permission_set.name,
                    super::short(&other.name)
                ),
            ));
        } else {
            permission_sets.insert(key, a);
        }
    }
}

/// An account selector's ids are account ids, and it selects something.
fn check_accounts(
    selector: Option<&super::AccountSelector>,
    o: &super::Origin,
    d: &mut Vec<Diagnostic>,
) {
    let Some(sel) = selector else {
        return;
    };
    if sel.ids.is_empty() && sel.labels.is_empty() {
        d.push(o.diagnostic(
            "spec.accounts",
            "an empty selector: name account `ids` or `labels`, or remove it to mean every account",
        ));
    }
    for (i, id) in sel.ids.iter().enumerate() {
        if !is_account(id) {
            d.push(o.diagnostic(
                format!("spec.accounts.ids[{i}]"),
                format!("`{id}` is not a 12-digit account id"),
            ));
        }
    }
}

/// False only when two selectors provably pick different accounts (both list ids, and
/// none in common); labels cannot be compared without the accounts.
pub(super) fn may_overlap(
    a: Option<&super::AccountSelector>,
    b: Option<&super::AccountSelector>,
) -> bool {
    match (a, b) {
        (Some(a), Some(b)) if !a.ids.is_empty() && !b.ids.is_empty() => {
            a.ids.iter().any(|i| b.ids.contains(i))
        }
        _ => true,
    }
}

/// A provider's tenant id, audiences, audience condition key and thumbprints.
fn check_provider(p: &Named<super::IdentityProviderSpec>, d: &mut Vec<Diagnostic>) {
    let o = &p.origin;
    if !is_guid(&p.spec.tenant_id) {
        d.push(o.diagnostic(
            "spec.tenantId",
            format!("`{}` is not a GUID", p.spec.tenant_id),
        ));
    }
    if p.spec.audiences.is_empty() {
        d.push(o.diagnostic("spec.audiences", "at least one audience is needed"));
    }
    for (i, a) in p.spec.audiences.iter().enumerate() {
        if a.is_empty() || a.len() > 255 {
            d.push(o.diagnostic(
                format!("spec.audiences[{i}]"),
                "must be 1 to 255 characters",
            ));
        }
    }
    if !matches!(
        p.spec.audience_condition_key.as_str(),
        "aud" | "oaud" | "azp"
    ) {
        d.push(o.diagnostic(
            "spec.audienceConditionKey",
            format!(
                "`{}` is not a condition key IAM supports for OIDC; use aud, oaud or azp",
                p.spec.audience_condition_key
            ),
        ));
    }
    check_token_form(p, d);
    for (i, t) in p.spec.allow_applications_owned_by.iter().enumerate() {
        if !is_guid(t) {
            d.push(o.diagnostic(
                format!("spec.allowApplicationsOwnedBy[{i}]"),
                format!("`{t}` is not a tenant id (GUID)"),
            ));
        }
    }
    for (i, t) in p.spec.thumbprints.iter().enumerate() {
        if t.len() != 40 || !t.chars().all(|c| c.is_ascii_hexdigit()) {
            d.push(o.diagnostic(
                format!("spec.thumbprints[{i}]"),
                "must be 40 hex digits (SHA-1)",
            ));
        }
    }
}

/// Refuses a provider no real Entra app-only token can satisfy (docs/entra-setup.md, "Why
/// v1 tokens"):
///
/// - v2: the token's `aud` is always the resource application's client id and its `azp` the
///   caller's. AWS documents that for a token carrying `azp` the `<issuer>:aud` key is
///   matched against `azp` (and `:oaud` against `aud`), and field reports for Entra v2 show
///   the provider's client-id check using `azp` too (aws/aws-sdk-net 3071, 3100): the
///   resource's id in the list never matches a group member's token.
/// - v1 carries no `azp`, so `oaud` and `azp` have nothing to match: only `aud` can.
fn check_token_form(p: &Named<super::IdentityProviderSpec>, d: &mut Vec<Diagnostic>) {
    let o = &p.origin;
    match p.spec.token_version {
        super::TokenVersion::V2 => {
            d.push(o.diagnostic(
                "spec.tokenVersion",
                "v2 cannot accept a workload's token: an Entra v2 access token carries azp (the calling workload's client id) besides aud (the resource's client id), and STS matches the provider's client ids and <issuer>:aud against azp for such tokens, so no group member's token is accepted. Use `tokenVersion: v1` and leave the resource application's accessTokenAcceptedVersion (requestedAccessTokenVersion) null or 1 (docs/entra-setup.md, \"Why v1 tokens\")",
            ));
            for (i, a) in p.spec.audiences.iter().enumerate() {
                if !is_guid(a) {
                    d.push(o.diagnostic(
                        format!("spec.audiences[{i}]"),
                        format!("`{a}`: the aud of a v2 access token is always the resource application's client id (a GUID), never an Application ID URI"),
                    ));
                }
            }
        }
        super::TokenVersion::V1 if p.spec.audience_condition_key != "aud" => {
            d.push(o.diagnostic(
                "spec.audienceConditionKey",
                format!(
                    "`{}` cannot match a v1 token: v1 access tokens carry no azp, so IAM has only aud to compare; use aud",
                    p.spec.audience_condition_key
                ),
            ));
        }
        super::TokenVersion::V1 => {}
    }
}

fn check_names<S>(docs: &[Named<S>], d: &mut Vec<Diagnostic>) {
    let mut seen: HashMap<&str, &Named<S>> = HashMap::new();
    for doc in docs {
        let n = &doc.name;
        let ok = !n.is_empty()
            && n.len() <= 63
            && n.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !n.starts_with('-')
            && !n.ends_with('-');
        if !ok {
            d.push(doc.origin.diagnostic(
                "metadata.name",
                format!("`{n}` must be 1 to 63 lower-case letters, digits or `-`, not starting or ending with `-`"),
            ));
        }
        if let Some(first) = seen.insert(n, doc) {
            let (line, _) = first.origin.locate("metadata.name");
            d.push(doc.origin.diagnostic(
                "metadata.name",
                format!(
                    "duplicate name `{n}`; first defined at {}:{line}",
                    first.origin.file.display()
                ),
            ));
        }
    }
}

#[cfg(test)]
mod tests;
