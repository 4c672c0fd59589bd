//! A RoleMapping: who may assume the role, and the role's IAM settings, policies and tags.

use std::collections::BTreeMap;

use super::names::{
    is_guid, is_iam_name_char, is_managed_policy_arn, is_service_principal, valid_path,
};
use super::Known;
use crate::config::Limits;
use crate::model::iam_policy;
use crate::sources::policy::{self, Diagnostic, Named};

pub(super) fn check_role_mapping(
    set: &Known<'_>,
    m: &Named<policy::RoleMappingSpec>,
    limits: &Limits,
    d: &mut Vec<Diagnostic>,
) {
    let o = &m.origin;
    check_trust_source(set, &m.spec, o, d);
    check_role(&m.spec.role, limits, o, d);
    check_role_policies(&m.spec.role, limits, o, d);
    check_tags(&m.spec.role.tags, limits, o, d);
}

/// Who may assume the role: a provider with a group (one selector), or AWS services.
fn check_trust_source(
    set: &Known<'_>,
    s: &policy::RoleMappingSpec,
    o: &policy::Origin,
    d: &mut Vec<Diagnostic>,
) {
    match (&s.provider, &s.group) {
        (None, None) if s.trusted_services.is_empty() => d.push(o.diagnostic(
            "spec",
            "nothing may assume this role: set `provider` and `group`, or `trustedServices`",
        )),
        (Some(_), None) => {
            d.push(o.diagnostic("spec.group", "`provider` is set but `group` is missing"))
        }
        (None, Some(_)) => {
            d.push(o.diagnostic("spec.provider", "`group` is set but `provider` is missing"))
        }
        _ => {}
    }
    if let Some(p) = &s.provider {
        if set.lacks_provider(p) {
            d.push(o.diagnostic("spec.provider", format!("no IdentityProvider named `{p}`")));
        }
    }
    if let Some(g) = &s.group {
        check_group(g, o, d);
    }
    for (i, svc) in s.trusted_services.iter().enumerate() {
        if !is_service_principal(svc) {
            d.push(o.diagnostic(
                format!("spec.trustedServices[{i}]"),
                format!("`{svc}` is not an AWS service principal (like lambda.amazonaws.com)"),
            ));
        }
    }
}

/// A group selector names exactly one group: a GUID, or a display name.
pub(super) fn check_group(g: &policy::GroupSelector, o: &policy::Origin, d: &mut Vec<Diagnostic>) {
    match (&g.id, &g.display_name) {
        (Some(id), None) if !is_guid(id) => d.push(o.diagnostic(
            "spec.group.id",
            format!("`{id}` is not a GUID (an Entra object id)"),
        )),
        (Some(_), None) => {}
        (None, Some(name)) if name.trim().is_empty() => {
            d.push(o.diagnostic("spec.group.displayName", "must not be empty"))
        }
        (None, Some(_)) => {}
        _ => d.push(o.diagnostic("spec.group", "set exactly one of `id` and `displayName`")),
    }
}

/// The role's IAM settings: name, path (under the controller's), description, session
/// duration, permissions boundary.
fn check_role(r: &policy::RoleSpec, limits: &Limits, o: &policy::Origin, d: &mut Vec<Diagnostic>) {
    if r.name.is_empty() || r.name.len() > 64 || !r.name.chars().all(is_iam_name_char) {
        d.push(o.diagnostic(
            "spec.role.name",
            format!(
                "`{}` must be 1 to 64 letters, digits or +=,.@_- (IAM role name rules)",
                r.name
            ),
        ));
    }
    let path = r.path.as_deref().unwrap_or(&limits.role_path);
    if !valid_path(path) {
        d.push(o.diagnostic(
            "spec.role.path",
            format!("`{path}` must start and end with `/`, be at most 512 characters of printable ASCII"),
        ));
    } else if !path.starts_with(&limits.role_path) {
        d.push(o.diagnostic(
            "spec.role.path",
            format!(
                "`{path}` is outside the controller's role path `{}`",
                limits.role_path
            ),
        ));
    }
    if let Some(desc) = &r.description {
        if desc.chars().count() > 1000 {
            d.push(o.diagnostic("spec.role.description", "at most 1,000 characters"));
        }
    }
    if !(3600..=43200).contains(&r.max_session_duration) {
        d.push(o.diagnostic(
            "spec.role.maxSessionDuration",
            format!(
                "{} is outside 3600 to 43200 seconds",
                r.max_session_duration
            ),
        ));
    }
    if let Some(b) = &r.permissions_boundary {
        if !is_managed_policy_arn(b) {
            d.push(o.diagnostic(
                "spec.role.permissionsBoundary",
                format!("`{b}` is not an IAM managed policy ARN"),
            ));
        } else if !limits.permissions_boundaries.is_empty()
            && !limits
                .permissions_boundaries
                .iter()
                .any(|name| b.ends_with(&format!(":policy/{name}")))
        {
            d.push(o.diagnostic(
                "spec.role.permissionsBoundary",
                format!(
                    "`{b}` is not one of the boundaries the config allows (permissionsBoundaries: {}); the controller may set no other",
                    limits.permissions_boundaries.join(", ")
                ),
            ));
        }
    }
}

/// Managed policies (ARNs, no repeats, the per-role limit) and inline policies (names,
/// valid documents, the per-role size).
fn check_role_policies(
    r: &policy::RoleSpec,
    limits: &Limits,
    o: &policy::Origin,
    d: &mut Vec<Diagnostic>,
) {
    if r.managed_policies.len() > limits.managed_policies_per_role {
        d.push(o.diagnostic(
            "spec.role.managedPolicies",
            format!(
                "{} managed policies exceed the limit of {} per role",
                r.managed_policies.len(),
                limits.managed_policies_per_role
            ),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, arn) in r.managed_policies.iter().enumerate() {
        if !is_managed_policy_arn(arn) {
            d.push(o.diagnostic(
                format!("spec.role.managedPolicies[{i}]"),
                format!("`{arn}` is not an IAM managed policy ARN"),
            ));
        } else if !seen.insert(arn) {
            d.push(o.diagnostic(
                format!("spec.role.managedPolicies[{i}]"),
                format!("`{arn}` is listed twice"),
            ));
        }
    }
    let mut total = 0;
    for (name, doc) in &r.inline_policies {
        let field = format!("spec.role.inlinePolicies.{name}");
        if name == policy::OUTBOUND_POLICY_NAME {
            d.push(o.diagnostic(
                &field,
                format!("`{name}` is reserved for the statement trustsync writes for a function's `entraApplication`"),
            ));
        }
        if name == crate::model::names::SESSIONS_POLICY {
            d.push(o.diagnostic(
                &field,
                format!("`{name}` is reserved for the denials trustsync writes for the live sessions of principals that leave the role"),
            ));
        }
        if name.is_empty() || name.len() > 128 || !name.chars().all(is_iam_name_char) {
            d.push(o.diagnostic(
                &field,
                format!("policy name `{name}` must be 1 to 128 letters, digits or +=,.@_-"),
            ));
        }
        for (path, msg) in iam_policy::check_document(doc) {
            let f = if path.is_empty() {
                field.clone()
            } else {
                format!("{field}.{path}")
            };
            d.push(o.diagnostic(f, msg));
        }
        total += iam_policy::iam_length(doc);
    }
    if total > limits.inline_policy_chars {
        d.push(o.diagnostic(
            "spec.role.inlinePolicies",
            format!(
                "inline policies total {total} characters; IAM allows {} per role",
                limits.inline_policy_chars
            ),
        ));
    }
}

fn check_tags(
    tags: &BTreeMap<String, String>,
    limits: &Limits,
    o: &policy::Origin,
    d: &mut Vec<Diagnostic>,
) {
    // trustsync's own tags: the owner tag, the group pin and the removal baseline.
    if tags.len() + 3 > limits.tags_per_role {
        d.push(o.diagnostic(
            "spec.role.tags",
            format!(
                "{} tags plus trustsync's three (owner, group pin, removal baseline) exceed {} per role",
                tags.len(),
                limits.tags_per_role
            ),
        ));
    }
    for (k, v) in tags {
        let field = format!("spec.role.tags.{k}");
        if k.is_empty() || k.chars().count() > 128 {
            d.push(o.diagnostic(&field, "tag keys are 1 to 128 characters"));
        }
        if k.to_ascii_lowercase().starts_with("aws:") {
            d.push(o.diagnostic(&field, "tag keys starting with `aws:` are reserved"));
        }
        if k.to_ascii_lowercase().starts_with("trustsync.dev/") {
            d.push(o.diagnostic(
                &field,
                "tag keys starting with `trustsync.dev/` are reserved for trustsync's own records",
            ));
        }
        if v.chars().count() > 256 {
            d.push(o.diagnostic(&field, "tag values are at most 256 characters"));
        }
    }
}
