//! An AWS account in scope: where a pass reads and writes.

use std::collections::BTreeMap;

use serde::Serialize;

/// One AWS account a pass manages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    /// The 12-digit account id.
    pub id: String,
    /// What policies select it by (`spec.accounts.labels`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Lambda regions; the first (its home) also carries IAM, which is global.
    pub regions: Vec<String>,
    /// The role assumed to reach it; `None`: the controller's own credentials.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// The external id that role's trust policy asks for.
    #[serde(skip)]
    pub external_id: Option<String>,
}

impl Account {
    /// The region IAM is read and written through, and functions named without `regions`
    /// live in.
    pub fn home(&self) -> &str {
        self.regions.first().map_or("", String::as_str)
    }
}

/// True for a 12-digit AWS account id.
pub fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// True for something shaped like an AWS region name (`eu-west-1`, `us-gov-west-1`).
pub fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
        && parts
            .last()
            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
}
