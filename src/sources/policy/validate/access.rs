//! An AccessAssignment's permission set, against IAM Identity Center's rules and quotas.

use super::names::{iam_arn_parts, is_iam_name_char, valid_path};
use crate::model::iam_policy;
use crate::sources::policy::{self, Diagnostic};

/// IAM Identity Center's rules for a permission set (API reference, `CreatePermissionSet`,
/// `AttachManagedPolicyToPermissionSet`, `PutInlinePolicyToPermissionSet`; quotas from the
/// user guide's "IAM Identity Center quotas").
pub(super) fn check_permission_set(
    p: &policy::PermissionSetSpec,
    o: &policy::Origin,
    d: &mut Vec<Diagnostic>,
) {
    if p.name.is_empty() || p.name.len() > 32 || !p.name.chars().all(is_iam_name_char) {
        d.push(o.diagnostic(
            "spec.permissionSet.name",
            format!(
                "`{}` must be 1 to 32 letters, digits or +=,.@_- (permission set name rules)",
                p.name
            ),
        ));
    }
    if let Some(desc) = &p.description {
        let budget = PERMISSION_SET_DESCRIPTION - policy::MARK_BUDGET;
        if desc.chars().count() > budget {
            d.push(o.diagnostic(
                "spec.permissionSet.description",
                format!("at most {budget} characters (700, less trustsync's mark)"),
            ));
        }
    }
    match p.session_seconds() {
        Some(s) if (3600..=43200).contains(&s) => {}
        _ => d.push(o.diagnostic(
            "spec.permissionSet.sessionDuration",
            format!(
                "`{}` must be an ISO 8601 duration from PT1H to PT12H (e.g. PT8H)",
                p.session_duration
            ),
        )),
    }
    check_attached_policies(p, o, d);
    check_boundary(p, o, d);
    check_inline_policy(p, o, d);
}

/// The AWS managed and customer-managed policies attached: how many, ARNs and names, no
/// repeats.
fn check_attached_policies(
    p: &policy::PermissionSetSpec,
    o: &policy::Origin,
    d: &mut Vec<Diagnostic>,
) {
    let attached = p.managed_policies.len() + p.customer_managed_policies.len();
    if attached > PERMISSION_SET_POLICIES {
        d.push(o.diagnostic(
            "spec.permissionSet.managedPolicies",
            format!("{attached} managed and customer-managed policies exceed the limit of {PERMISSION_SET_POLICIES} per permission set"),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, arn) in p.managed_policies.iter().enumerate() {
        let field = format!("spec.permissionSet.managedPolicies[{i}]");
        if !matches!(iam_arn_parts(arn), Some(("aws", res)) if res.starts_with("policy/") && res.len() > 7)
        {
            d.push(o.diagnostic(
                field,
                format!("`{arn}` is not an AWS managed policy ARN (arn:aws:iam::aws:policy/...); name a policy of your own under `customerManagedPolicies`"),
            ));
        } else if !seen.insert(arn) {
            d.push(o.diagnostic(field, format!("`{arn}` is listed twice")));
        }
    }
    let mut seen = std::collections::HashSet::new();
    for (i, c) in p.customer_managed_policies.iter().enumerate() {
        let field = format!("spec.permissionSet.customerManagedPolicies[{i}]");
        if c.name.is_empty() || c.name.len() > 128 || !c.name.chars().all(is_iam_name_char) {
            d.push(o.diagnostic(
                format!("{field}.name"),
                format!("`{}` must be 1 to 128 letters, digits or +=,.@_-", c.name),
            ));
        }
        if !valid_path(&c.path) {
            d.push(o.diagnostic(
                format!("{field}.path"),
                format!("`{}` must start and end with `/`", c.path),
            ));
        }
        if !seen.insert((&c.name, &c.path)) {
            d.push(o.diagnostic(field, format!("`{}{}` is listed twice", c.path, c.name)));
        }
    }
}

/// A permissions boundary: exactly one of a managed policy ARN and a customer-managed
/// policy.
fn check_boundary(p: &policy::PermissionSetSpec, o: &policy::Origin, d: &mut Vec<Diagnostic>) {
    if let Some(b) = &p.permissions_boundary {
        let field = "spec.permissionSet.permissionsBoundary";
        match (&b.managed_policy_arn, &b.customer_managed_policy) {
            (Some(arn), None) => {
                if !matches!(iam_arn_parts(arn), Some(("aws", res)) if res.starts_with("policy/") && res.len() > 7)
                {
                    d.push(o.diagnostic(
                        format!("{field}.managedPolicyArn"),
                        format!("`{arn}` is not an AWS managed policy ARN (arn:aws:iam::aws:policy/...); name a policy of your own as `customerManagedPolicy`"),
                    ));
                }
            }
            (None, Some(c)) => {
                if c.name.is_empty() || c.name.len() > 128 || !c.name.chars().all(is_iam_name_char)
                {
                    d.push(o.diagnostic(
                        format!("{field}.customerManagedPolicy.name"),
                        format!("`{}` must be 1 to 128 letters, digits or +=,.@_-", c.name),
                    ));
                }
                if !valid_path(&c.path) {
                    d.push(o.diagnostic(
                        format!("{field}.customerManagedPolicy.path"),
                        format!("`{}` must start and end with `/`", c.path),
                    ));
                }
            }
            _ => d.push(o.diagnostic(
                field,
                "set exactly one of `managedPolicyArn` and `customerManagedPolicy`",
            )),
        }
    }
}

/// The inline policy: a valid document, within what trustsync leaves of the size.
fn check_inline_policy(p: &policy::PermissionSetSpec, o: &policy::Origin, d: &mut Vec<Diagnostic>) {
    if let Some(doc) = &p.inline_policy {
        let field = "spec.permissionSet.inlinePolicy";
        for (path, msg) in iam_policy::check_document(doc) {
            let f = if path.is_empty() {
                field.to_string()
            } else {
                format!("{field}.{path}")
            };
            d.push(o.diagnostic(f, msg));
        }
        let budget = PERMISSION_SET_INLINE - policy::DENIAL_RESERVE;
        let len = iam_policy::iam_length(doc);
        if len > budget {
            d.push(o.diagnostic(
                field,
                format!("{len} characters; a permission set's inline policy may have {PERMISSION_SET_INLINE}, of which trustsync keeps {} for the denials of departed people's sessions", policy::DENIAL_RESERVE),
            ));
        }
    }
}

/// A permission set's description, at most (`CreatePermissionSet`).
const PERMISSION_SET_DESCRIPTION: usize = 700;

/// A permission set's inline policy, at most (`PutInlinePolicyToPermissionSet`: 32,768).
const PERMISSION_SET_INLINE: usize = 32_768;

/// AWS managed and customer-managed policies per permission set (the quotas page: 20,
/// counted together here, which is the stricter reading).
const PERMISSION_SET_POLICIES: usize = 20;
