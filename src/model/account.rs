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

/// The account of an ARN (`arn:partition:service:region:account:resource`), if it names one.
pub fn account_of_arn(arn: &str) -> Option<&str> {
    arn.split(':').nth(4).filter(|a| !a.is_empty())
}

/// The region of an ARN, if it names one (IAM ARNs do not: IAM is global).
pub fn region_of_arn(arn: &str) -> Option<&str> {
    arn.split(':').nth(3).filter(|r| !r.is_empty())
}
