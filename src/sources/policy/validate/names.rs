//! The shapes of names and ARNs the documents use.

use crate::model::arn::ArnParts;

/// `8-4-4-4-12` hex digits.
pub fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit()))
}

pub(super) fn is_iam_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "+=,.@_-".contains(c)
}

pub(super) fn valid_path(p: &str) -> bool {
    p.starts_with('/')
        && p.ends_with('/')
        && p.len() <= 512
        && p.chars().all(|c| ('!'..='~').contains(&c))
}

pub(super) fn is_service_principal(s: &str) -> bool {
    s.ends_with(".amazonaws.com")
        && s.len() > ".amazonaws.com".len()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
}

/// `arn:partition:service:region:account:resource` with a known partition.
pub fn is_arn(s: &str) -> bool {
    ArnParts::parse_known(s).is_some()
}

pub(super) fn iam_arn_parts(s: &str) -> Option<(&str, &str)> {
    let a = ArnParts::parse_known(s)?;
    Some((a.account, a.iam_resource()?))
}

pub(super) fn is_account(s: &str) -> bool {
    crate::model::account::is_account_id(s)
}

pub(super) fn is_managed_policy_arn(s: &str) -> bool {
    matches!(iam_arn_parts(s), Some((acct, res)) if (acct == "aws" || is_account(acct)) && res.starts_with("policy/") && res.len() > 7)
}

pub(super) fn is_role_arn(s: &str) -> bool {
    matches!(iam_arn_parts(s), Some((acct, res)) if is_account(acct) && res.starts_with("role/") && res.len() > 5)
}

pub(super) fn is_iam_principal_arn(s: &str) -> bool {
    matches!(iam_arn_parts(s), Some((acct, res)) if is_account(acct)
        && (res == "root" || (res.starts_with("role/") && res.len() > 5) || (res.starts_with("user/") && res.len() > 5)))
}

pub(super) fn is_function_ref(s: &str) -> bool {
    if s.starts_with("arn:") {
        return ArnParts::parse_known(s)
            .and_then(|a| a.function_name())
            .is_some_and(is_function_name);
    }
    is_function_name(s)
}

pub(super) fn is_function_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The function name of a name-or-ARN reference.
pub fn function_name(s: &str) -> &str {
    ArnParts::parse(s)
        .and_then(|a| a.function_name())
        .unwrap_or(s)
}
