//! What AWS says, in trustsync's own types. Filled by [`crate::adapters::aws`]; read by the planner.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use crate::model::names::RoleName;

/// What AWS showed in each account and region of a pass.
#[derive(Debug, Clone, Default)]
pub struct Observations {
    /// By (account, region); the account's home region holds its IAM state too.
    pub by_place: BTreeMap<(String, String), Observed>,
    /// Each account's home region.
    pub homes: BTreeMap<String, String>,
}

impl Observations {
    /// One account and region.
    pub fn single(account: &str, region: &str, observed: Observed) -> Observations {
        Observations {
            by_place: BTreeMap::from([((account.to_string(), region.to_string()), observed)]),
            homes: BTreeMap::from([(account.to_string(), region.to_string())]),
        }
    }

    /// The observation that shows the resource of this ARN: its account's home region for
    /// IAM (global), its own region for Lambda. `None` for an account not read.
    pub fn for_arn(&self, arn: &str) -> Option<&Observed> {
        use crate::model::arn::{account_of, region_of};
        let account = account_of(arn)?;
        let region = region_of(arn).or_else(|| self.homes.get(account).map(String::as_str))?;
        self.by_place
            .get(&(account.to_string(), region.to_string()))
    }

    /// Each account's IAM state (its home region's observation).
    pub fn iam(&self) -> impl Iterator<Item = (&str, &Observed)> {
        self.homes.iter().filter_map(|(account, region)| {
            self.by_place
                .get(&(account.clone(), region.clone()))
                .map(|o| (account.as_str(), o))
        })
    }
}

/// Live AWS state relevant to one pass.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Observed {
    /// IAM OIDC identity providers.
    pub providers: Vec<ObservedProvider>,
    /// Every IAM role, keyed by lower-case name (IAM names are case-insensitive).
    pub roles: BTreeMap<String, ObservedRole>,
    /// Each function the policies refer to, and each (function, qualifier) trustsync's
    /// function tag records, keyed by (name, qualifier); `None` when it does not exist.
    pub functions: BTreeMap<FunctionKey, Option<ObservedFunction>>,
    /// Functions carrying this instance's function tag, by name: the qualifiers recorded.
    pub marked_functions: BTreeMap<String, MarkedFunction>,
}

/// A function trustsync's tag marks as one whose policy it wrote to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MarkedFunction {
    /// Unqualified function ARN.
    pub arn: String,
    /// The tag's value as read.
    pub tag_value: String,
}

impl MarkedFunction {
    /// The qualifiers the tag records (the unqualified policy is always read).
    pub fn qualifiers(&self) -> BTreeSet<String> {
        self.tag_value
            .split_whitespace()
            .map(String::from)
            .collect()
    }
}

/// A function and the qualifier whose policy is managed.
pub type FunctionKey = (String, Option<String>);

/// An IAM OIDC provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObservedProvider {
    /// Its ARN.
    pub arn: String,
    /// Issuer without the scheme, as in the ARN.
    pub url: String,
    /// Client ids (audiences).
    pub client_ids: BTreeSet<String>,
    pub tags: BTreeMap<String, String>,
}

/// An IAM role as read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObservedRole {
    /// Role name as AWS spells it.
    pub name: RoleName,
    pub path: String,
    pub arn: String,
    /// Trust policy, decoded.
    pub trust: Value,
    /// Description, when the bulk read returns it.
    pub description: Option<String>,
    /// Maximum session duration, when the bulk read returns it.
    pub max_session_duration: Option<i32>,
    /// Permissions boundary ARN.
    pub permissions_boundary: Option<String>,
    /// Inline policies, decoded.
    pub inline_policies: BTreeMap<String, Value>,
    /// Attached managed policy ARNs.
    pub managed_policies: BTreeSet<String>,
    pub tags: BTreeMap<String, String>,
}

/// A Lambda function's execution role and resource policy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObservedFunction {
    /// Function ARN (unqualified).
    pub arn: String,
    /// Execution role ARN.
    pub role: Option<String>,
    /// Revision of the function configuration.
    pub config_revision: Option<String>,
    /// Revision of the resource policy (absent when there is no policy).
    pub policy_revision: Option<String>,
    /// Statements of the resource policy.
    pub statements: Vec<Value>,
}

/// The `Allow` statements of a policy, in canonical form (see
/// [`crate::model::iam_policy::canonical`]: principals and condition values are lists,
/// condition keys lower case).
fn allow_statements(policy: &Value) -> Vec<Value> {
    match crate::model::iam_policy::canonical(policy).get_mut("Statement") {
        Some(Value::Array(statements)) => std::mem::take(statements)
            .into_iter()
            .filter(|st| st.get("Effect").and_then(Value::as_str) == Some("Allow"))
            .collect(),
        _ => Vec::new(),
    }
}

fn strings(values: &Value) -> impl Iterator<Item = String> + '_ {
    values
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(String::from)
}

/// The values of the condition keys `key` accepts (given lower case, as canonical form
/// writes keys) in a policy's `Allow` statements, under any operator; `None` when no
/// such key appears at all.
pub fn condition_values(policy: &Value, key: impl Fn(&str) -> bool) -> Option<BTreeSet<String>> {
    let mut found: Option<BTreeSet<String>> = None;
    for st in allow_statements(policy) {
        let Some(Value::Object(ops)) = st.get("Condition") else {
            continue;
        };
        for entries in ops.values().filter_map(Value::as_object) {
            for (_, values) in entries.iter().filter(|(k, _)| key(k)) {
                found
                    .get_or_insert_with(BTreeSet::new)
                    .extend(strings(values));
            }
        }
    }
    found
}

/// The principals of one type (`Service`, `Federated`, `AWS`) a policy's `Allow`
/// statements name.
pub fn allowed_principals(policy: &Value, kind: &str) -> BTreeSet<String> {
    allow_statements(policy)
        .iter()
        .filter_map(|st| st.get("Principal")?.get(kind))
        .flat_map(strings)
        .collect()
}

/// The `sub` values a trust policy allows through any federated principal.
pub fn trusted_subjects(trust: &Value) -> BTreeSet<String> {
    condition_values(trust, |k| k.ends_with(":sub")).unwrap_or_default()
}

/// The AWS service principals a trust policy lets in (`Allow` statements only).
pub fn trusted_services(trust: &Value) -> BTreeSet<String> {
    allowed_principals(trust, "Service")
}

/// An Entra application trustsync's service principal owns, with its federated identity
/// credentials, as Microsoft Graph showed them.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservedApplication {
    /// Object id.
    pub id: String,
    /// Application (client) id.
    pub app_id: String,
    pub display_name: String,
    pub credentials: Vec<ObservedCredential>,
}

/// One federated identity credential of an application.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservedCredential {
    /// Object id.
    pub id: String,
    pub name: String,
    pub issuer: String,
    pub subject: String,
    pub audiences: Vec<String>,
    pub description: Option<String>,
}

/// IAM Identity Center as it stands: its people, their groups, the permission sets, and
/// who is assigned which in which account.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservedIdentityCenter {
    /// The instance (`arn:aws:sso:::instance/ssoins-...`).
    pub instance_arn: String,
    /// Its identity store (`d-...`).
    pub identity_store_id: String,
    /// The identity store's users.
    pub users: Vec<IdentityCenterUser>,
    /// The identity store's groups, with their members' user ids.
    pub groups: Vec<IdentityCenterGroup>,
    /// The instance's permission sets.
    pub permission_sets: Vec<IdentityCenterPermissionSet>,
    /// The account assignments in the accounts read.
    pub assignments: Vec<IdentityCenterAssignment>,
}

/// A user of the identity store.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentityCenterUser {
    /// The identity store's user id.
    pub id: String,
    /// The sign-in name (for users from Entra, the user principal name).
    pub user_name: String,
    /// The display name, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// The identifiers an external identity provider issued it (`ExternalIds[].Id`, set
    /// by SCIM provisioning; the identity store API lets nobody else write them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub external_ids: Vec<String>,
}

/// A group of the identity store.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentityCenterGroup {
    /// The identity store's group id.
    pub id: String,
    /// Its display name.
    pub display_name: String,
    /// Its description, when set (trustsync's groups carry its mark there: identity-store
    /// groups have no tags).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Its members (read for every group for a report; for trustsync's own groups only in
    /// a pass, and for a group a document adopts).
    pub members: Vec<GroupMembership>,
    /// The permission sets assigned to it, in every account: read only for a group an
    /// AccessAssignment with `adopt: true` may take over (`None` otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holds: Option<GroupHolds>,
}

/// What an identity-store group is assigned, in every account of the instance.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum GroupHolds {
    /// Its assignments (`ListAccountAssignmentsForPrincipal`).
    Read(Vec<IdentityCenterAssignment>),
    /// Why they could not be read (AWS answers that request from the management account
    /// only): a group whose holdings are unknown is never adopted.
    Unreadable(String),
}

/// One user's membership of an identity-store group.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupMembership {
    /// The member's user id.
    pub user_id: String,
    /// The membership's id (what `DeleteGroupMembership` takes).
    pub membership_id: String,
}

/// A permission set of the instance.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentityCenterPermissionSet {
    /// Its ARN.
    pub arn: String,
    /// Its name.
    pub name: String,
    /// How long its sessions last (ISO 8601, `PT1H`), when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_duration: Option<String>,
    /// Its description, when set (trustsync's mark is there).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Its policies: read for trustsync's own permission sets, and one a document adopts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policies: Option<PermissionSetPolicies>,
}

/// What a permission set grants.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PermissionSetPolicies {
    /// The inline policy, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inline_policy: Option<Value>,
    /// AWS managed policy ARNs attached.
    pub managed_policies: Vec<String>,
    /// Customer-managed policy references attached, as (name, path).
    pub customer_managed_policies: Vec<(String, String)>,
    /// The permissions boundary, when one is attached; read only for the sets whose
    /// document names one (a boundary only ever narrows what a set grants).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub boundary: Option<SetBoundary>,
    /// Its tags, when read (a full pass reads them for trustsync's own sets, which carry
    /// the owner tag from creation; one made before that lacks it and is tagged).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    /// The accounts it is provisioned in (`ListAccountsForProvisionedPermissionSet`) beyond
    /// those whose assignments were read: read only for a set an AccessAssignment with
    /// `adopt: true` may take over, which is refused when there are any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provisioned_elsewhere: Option<Vec<String>>,
}

/// A permission set's permissions boundary: an AWS managed policy, or a customer-managed
/// policy by (name, path).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetBoundary {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_policy_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_managed_policy: Option<(String, String)>,
}

/// Who an account assignment is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum AssignedTo {
    /// A user of the identity store.
    User,
    /// A group of the identity store: each of its members.
    Group,
}

/// A permission set assigned to a user or a group in an account.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentityCenterAssignment {
    /// The account.
    pub account: String,
    /// The permission set's ARN.
    pub permission_set_arn: String,
    /// A user or a group.
    pub principal_type: AssignedTo,
    /// The user's or the group's id.
    pub principal_id: String,
}
