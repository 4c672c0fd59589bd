//! The accounts one controller manages: listed, or found through AWS Organizations.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::model::account::{is_account_id, is_region};
use crate::model::arn::ArnParts;

/// The AWS accounts one controller manages. The controller's own credentials (the hub)
/// assume a role in each account (the spoke) with STS `AssumeRole`; the credentials are
/// cached and renewed before they expire. With no `targets` and no `organization`,
/// trustsync manages the account of its own credentials, in `aws.region`, as one account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct AccountsConfig {
    /// The spoke role's name in every account whose target does not give `roleArn`.
    pub role_name: String,
    /// Its path.
    pub role_path: String,
    /// The external id the spoke role's trust policy requires, if any (a target's own wins).
    pub external_id: Option<String>,
    /// The STS session name: CloudTrail in each account shows it as the caller.
    pub session_name: String,
    /// How long assumed credentials last (900 to 43,200; the spoke role's maximum session
    /// duration must allow it). They are renewed five minutes before they expire.
    pub session_seconds: i32,
    /// Accounts read and written at once.
    pub concurrency: usize,
    /// Accounts listed by id.
    pub targets: Vec<AccountTarget>,
    /// Accounts found through AWS Organizations (the hub must be allowed to list them).
    pub organization: Option<OrganizationDiscovery>,
}

impl Default for AccountsConfig {
    fn default() -> Self {
        AccountsConfig {
            role_name: "trustsync-spoke".into(),
            role_path: "/".into(),
            external_id: None,
            session_name: "trustsync".into(),
            session_seconds: 3600,
            concurrency: 8,
            targets: Vec::new(),
            organization: None,
        }
    }
}

impl AccountsConfig {
    /// True when accounts are named or discovered (hub and spoke); false: the credentials'
    /// own account only.
    pub fn is_hub(&self) -> bool {
        !self.targets.is_empty() || self.organization.is_some()
    }

    /// The account a listed target means: its regions (or `default_regions`), the role to
    /// assume there (its own, or the spoke role) and the external id (its own, or the
    /// default).
    pub fn target_account(
        &self,
        t: &AccountTarget,
        default_regions: &[String],
        partition: &str,
    ) -> crate::model::account::Account {
        crate::model::account::Account {
            id: t.id.clone(),
            labels: t.labels.clone(),
            regions: if t.regions.is_empty() {
                default_regions.to_vec()
            } else {
                t.regions.clone()
            },
            role_arn: Some(
                t.role_arn
                    .clone()
                    .unwrap_or_else(|| self.spoke_role_arn(partition, &t.id)),
            ),
            external_id: t.external_id.clone().or_else(|| self.external_id.clone()),
        }
    }

    /// The role assumed in `account` unless its target names one.
    pub fn spoke_role_arn(&self, partition: &str, account: &str) -> String {
        format!(
            "arn:{partition}:iam::{account}:role{}{}",
            self.role_path, self.role_name
        )
    }
}

/// One account to manage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccountTarget {
    /// The 12-digit account id.
    pub id: String,
    /// The role to assume there; default `arn:aws:iam::<id>:role<rolePath><roleName>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// The external id its trust policy requires (overrides `accounts.externalId`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// Lambda regions; the first also carries IAM. Default: `aws.region`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<String>,
    /// Labels policies select accounts by (`spec.accounts.labels`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
}

/// Accounts found through AWS Organizations: the active accounts under the given roots or
/// organizational units (and the units below them) whose tags match; their tags become
/// their labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrganizationDiscovery {
    /// Root (`r-...`) or organizational unit (`ou-...`) ids.
    pub parents: Vec<String>,
    /// Tags an account must carry, all of them, to be managed.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub tags: std::collections::BTreeMap<String, String>,
    /// Lambda regions of every discovered account; default `aws.region`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<String>,
    /// Accounts never managed, even when found.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// How often the organization is read again.
    #[serde(default = "default_discovery_seconds")]
    pub refresh_seconds: u64,
}

fn default_discovery_seconds() -> u64 {
    3600
}

impl AccountsConfig {
    /// The rules serde cannot express, in the order they are reported: the reader role and
    /// its sessions, then each target, then the organization.
    pub(super) fn check(&self) -> Result<(), (&'static str, String)> {
        self.check_reader()?;
        let mut seen = std::collections::BTreeSet::new();
        for t in &self.targets {
            t.check(&mut seen)?;
        }
        if let Some(org) = &self.organization {
            org.check()?;
        }
        Ok(())
    }

    /// `concurrency`, `sessionSeconds`, `roleName`, `rolePath` and `sessionName`.
    fn check_reader(&self) -> Result<(), (&'static str, String)> {
        if self.concurrency == 0 {
            return Err(("accounts.concurrency", "must be at least 1".into()));
        }
        if !(900..=43_200).contains(&self.session_seconds) {
            return Err((
                "accounts.sessionSeconds",
                format!("{} must be between 900 and 43200", self.session_seconds),
            ));
        }
        let name_ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 64
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c))
        };
        if !name_ok(&self.role_name) {
            return Err((
                "accounts.roleName",
                format!("`{}` is not an IAM role name", self.role_name),
            ));
        }
        if !self.role_path.starts_with('/') || !self.role_path.ends_with('/') {
            return Err((
                "accounts.rolePath",
                format!("`{}` must start and end with `/`", self.role_path),
            ));
        }
        if !(2..=64).contains(&self.session_name.len())
            || !self
                .session_name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "=,.@_-".contains(c))
        {
            return Err((
                "accounts.sessionName",
                format!(
                    "`{}` must be 2 to 64 of letters, digits and =,.@_-",
                    self.session_name
                ),
            ));
        }
        Ok(())
    }
}

impl AccountTarget {
    /// Its id (not one in `seen`, where it is added), role ARN and regions.
    fn check<'a>(
        &'a self,
        seen: &mut std::collections::BTreeSet<&'a str>,
    ) -> Result<(), (&'static str, String)> {
        if !is_account_id(&self.id) {
            return Err((
                "accounts.targets.id",
                format!("`{}` is not a 12-digit account id", self.id),
            ));
        }
        if !seen.insert(self.id.as_str()) {
            return Err((
                "accounts.targets.id",
                format!("account {} is listed twice", self.id),
            ));
        }
        if let Some(arn) = &self.role_arn {
            let role = ArnParts::parse(arn)
                .filter(|a| a.account == self.id)
                .and_then(|a| a.role_name());
            if role.is_none() {
                return Err((
                    "accounts.targets.roleArn",
                    format!(
                        "`{arn}` is not the ARN of a role in account {} (arn:aws:iam::{}:role/NAME)",
                        self.id, self.id
                    ),
                ));
            }
        }
        if let Some(r) = self.regions.iter().find(|r| !is_region(r)) {
            return Err((
                "accounts.targets.regions",
                format!("`{r}` (account {}) is not an AWS region name", self.id),
            ));
        }
        Ok(())
    }
}

impl OrganizationDiscovery {
    /// Its parents, regions and excluded accounts.
    fn check(&self) -> Result<(), (&'static str, String)> {
        if self.parents.is_empty() {
            return Err((
                "accounts.organization.parents",
                "name at least one root (r-...) or organizational unit (ou-...)".into(),
            ));
        }
        if let Some(p) = self
            .parents
            .iter()
            .find(|p| !(p.starts_with("r-") || p.starts_with("ou-")))
        {
            return Err((
                "accounts.organization.parents",
                format!(
                    "`{p}` is neither a root id (r-...) nor an organizational unit id (ou-...)"
                ),
            ));
        }
        if let Some(r) = self.regions.iter().find(|r| !is_region(r)) {
            return Err((
                "accounts.organization.regions",
                format!("`{r}` is not an AWS region name"),
            ));
        }
        if let Some(a) = self.exclude.iter().find(|a| !is_account_id(a)) {
            return Err((
                "accounts.organization.exclude",
                format!("`{a}` is not a 12-digit account id"),
            ));
        }
        Ok(())
    }
}
