//! The policy repository's document types: what a YAML file may say.
//!
//! Every type here denies unknown fields, so a typo is an error with a location rather than
//! a silently ignored setting. The JSON Schema printed by `trustsync schema` is generated
//! from these types.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The only `apiVersion` this release reads.
pub const API_VERSION: &str = "trustsync.dev/v1alpha1";

/// One YAML document of the policy repository.
///
/// Used for the JSON Schema; loading reads the envelope first and the `spec` by kind, so
/// that errors carry the right field path.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind")]
pub enum PolicyDocument {
    /// The Entra tenant as an IAM OIDC identity provider.
    IdentityProvider(Resource<IdentityProviderSpec>),
    /// An Entra group (or AWS services) mapped to an IAM role.
    RoleMapping(Resource<RoleMappingSpec>),
    /// Who may invoke a Lambda function, and which role it runs as.
    FunctionAccess(Resource<FunctionAccessSpec>),
    /// An Entra group's people given an IAM Identity Center permission set in accounts.
    AccessAssignment(Resource<AccessAssignmentSpec>),
}

/// The Kubernetes-shaped envelope shared by every kind.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Resource<S> {
    /// Always `trustsync.dev/v1alpha1`.
    pub api_version: String,
    /// Name and labels.
    pub metadata: Metadata,
    /// What this document asks for.
    pub spec: S,
}

/// Names a document; the name is how other documents refer to it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    /// Unique within its kind: lower-case letters, digits and `-`, at most 63 characters.
    pub name: String,
    /// Free-form labels, carried into the plan and the audit log.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// Which issuer form Entra puts in the tokens the workloads present.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum TokenVersion {
    /// `https://sts.windows.net/{tenant}/`: the resource application's
    /// `requestedAccessTokenVersion` is null or 1. The form STS accepts.
    #[default]
    V1,
    /// `https://login.microsoftonline.com/{tenant}/v2.0`. Refused by validation: STS
    /// matches a v2 token's `azp` (the caller), not its `aud`, against the provider.
    V2,
}

/// The Entra tenant, registered in IAM as an OpenID Connect provider.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IdentityProviderSpec {
    /// The Entra tenant (directory) id, a GUID.
    pub tenant_id: String,
    /// Issuer form of the tokens; decides the provider URL and the condition keys.
    #[serde(default)]
    pub token_version: TokenVersion,
    /// Audiences accepted: the provider's client id list, and the values pinned in every
    /// trust policy: the resource exactly as the workloads name it when they ask for a
    /// token (a v1 token's `aud`), usually the Application ID URI, e.g.
    /// `api://aws-federation`.
    pub audiences: Vec<String>,
    /// Which token claim IAM matches the audiences against, as the suffix of the condition
    /// key `<issuer>:<key>`. AWS documents `aud`; `oaud` exists for some issuers.
    #[serde(default = "default_audience_key")]
    pub audience_condition_key: String,
    /// Server certificate thumbprints (SHA-1 hex). AWS no longer needs them for Entra; they
    /// are sent on create when given and never compared.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thumbprints: Vec<String>,
    /// Take over a provider for this issuer that trustsync did not create.
    #[serde(default)]
    pub adopt: bool,
    /// Tenants (GUIDs) whose multi-tenant applications' service principals may be trusted
    /// too. A service principal of an application another tenant owns
    /// (`appOwnerOrganizationId`) can get this tenant's tokens with credentials that
    /// tenant controls, so by default it is skipped, with a notice, even in a mapped group.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_applications_owned_by: Vec<String>,
    /// The accounts this document applies to; every account in scope when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accounts: Option<AccountSelector>,
}

fn default_audience_key() -> String {
    "aud".to_string()
}

impl IdentityProviderSpec {
    /// The issuer URL of the tokens.
    pub fn issuer_url(&self) -> String {
        match self.token_version {
            TokenVersion::V1 => format!("https://sts.windows.net/{}/", self.tenant_id),
            TokenVersion::V2 => {
                format!("https://login.microsoftonline.com/{}/v2.0", self.tenant_id)
            }
        }
    }

    /// The issuer as IAM writes it in provider ARNs and condition keys (no scheme).
    pub fn issuer_host_path(&self) -> String {
        self.issuer_url().trim_start_matches("https://").to_string()
    }
}

/// An Entra group, by object id or by display name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GroupSelector {
    /// The group's object id (GUID). Preferred: display names can change and collide.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The group's display name; must match exactly one group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

impl std::fmt::Display for GroupSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.id, &self.display_name) {
            (Some(id), _) => write!(f, "{id}"),
            (None, Some(name)) => write!(f, "displayName={name:?}"),
            (None, None) => write!(f, "(no group)"),
        }
    }
}

/// Which members of the group are trusted.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MemberSelection {
    /// Expand nested groups (`transitiveMembers`) instead of direct members only.
    #[serde(default)]
    pub transitive: bool,
}

/// An Entra group mapped to one IAM role.
///
/// The role trusts the group's service-principal members through the provider (their
/// object ids become the `sub` values of the trust policy), AWS services listed in
/// `trustedServices`, or both. User members cannot be bound this way (their `sub` is
/// pairwise) and are reported, not used.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleMappingSpec {
    /// The IdentityProvider document whose tokens the members present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// The Entra group whose members may assume the role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<GroupSelector>,
    /// Which members count.
    #[serde(default)]
    pub members: MemberSelection,
    /// AWS service principals that may assume the role (e.g. `lambda.amazonaws.com` for an
    /// execution role).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_services: Vec<String>,
    /// The IAM role.
    pub role: RoleSpec,
    /// Take over an existing role of this name that trustsync does not own.
    #[serde(default)]
    pub adopt: bool,
    /// The accounts this document applies to; every account in scope when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accounts: Option<AccountSelector>,
}

/// The IAM role a mapping manages.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleSpec {
    /// Role name: 1 to 64 of letters, digits and `+=,.@_-`.
    pub name: String,
    /// Role path; defaults to the controller's `rolePath` and must lie under it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Role description (at most 1,000 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Maximum session duration in seconds, 3,600 to 43,200.
    #[serde(default = "default_session")]
    pub max_session_duration: i32,
    /// ARN of a managed policy used as permissions boundary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions_boundary: Option<String>,
    /// ARNs of managed policies to attach.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub managed_policies: Vec<String>,
    /// Inline policies by name; each value is an IAM policy document.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(with = "BTreeMap<String, serde_json::Map<String, serde_json::Value>>")]
    pub inline_policies: BTreeMap<String, serde_json::Value>,
    /// Role tags (the owner tag is added by trustsync).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

fn default_session() -> i32 {
    3600
}

/// Which role a function runs as.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleReference {
    /// A RoleMapping document of this repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_mapping: Option<String>,
    /// Any IAM role ARN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
}

/// One principal allowed to invoke the function. Exactly one of `roleMapping`, `principal`
/// and `service` is set.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Invoker {
    /// The role of a RoleMapping document of this repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_mapping: Option<String>,
    /// An IAM principal ARN (role, user or account root) or a 12-digit account id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// An AWS service principal, e.g. `events.amazonaws.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// For a service: the ARN of the resource allowed to invoke (strongly advised).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_arn: Option<String>,
    /// For a service: the account that owns the source resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_account: Option<String>,
    /// The action granted; `lambda:InvokeFunction` unless set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
}

/// A Lambda function's invokers (resource-based policy) and execution role.
///
/// trustsync never creates or deletes the function: it manages only the policy statements
/// whose id carries its prefix, and the function's role when `executionRole` is set.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FunctionAccessSpec {
    /// Function name or ARN.
    pub function: String,
    /// Alias or version whose policy is managed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qualifier: Option<String>,
    /// The role the function runs as; left alone when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_role: Option<RoleReference>,
    /// Who may invoke the function.
    #[serde(default)]
    pub invokers: Vec<Invoker>,
    /// The accounts the function is managed in, by name (not with an ARN, which names its
    /// account). Every account in scope when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accounts: Option<AccountSelector>,
    /// The regions the function is managed in, by name (not with an ARN, which names its
    /// region). Default: each account's first region.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<String>,
    /// The Entra application the function acts as, with no secret: its execution role
    /// (which must be a RoleMapping of this repository) may ask STS for a web identity
    /// token for Entra's token exchange (AWS outbound identity federation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entra_application: Option<EntraApplication>,
}

/// An Entra application a function acts as through AWS outbound identity federation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EntraApplication {
    /// The application (client) id, a GUID.
    pub app_id: String,
    /// The longest lifetime, in seconds, of the AWS-signed token the execution role may
    /// request (`sts:DurationSeconds`): 60 to 3600, 300 unless set.
    #[serde(default = "default_token_seconds")]
    pub max_token_seconds: u32,
}

fn default_token_seconds() -> u32 {
    300
}

/// The audience Entra expects in a token exchanged through a federated identity
/// credential.
pub const ENTRA_TOKEN_EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";

/// The inline policy trustsync writes on an execution role whose function acts as an Entra
/// application (reserved: a mapping may not use the name).
pub const OUTBOUND_POLICY_NAME: &str = "trustsync-outbound-federation";

/// Which AWS accounts a document applies to: those listed by id, or those whose labels
/// (`accounts.targets[].labels` of the controller config, or their tags in AWS
/// Organizations) include every label given. With both, an account must satisfy both.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccountSelector {
    /// 12-digit account ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ids: Vec<String>,
    /// Labels every selected account carries.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl AccountSelector {
    /// True when the account of this id and labels is selected.
    pub fn matches(&self, id: &str, labels: &BTreeMap<String, String>) -> bool {
        (self.ids.is_empty() || self.ids.iter().any(|i| i == id))
            && self.labels.iter().all(|(k, v)| labels.get(k) == Some(v))
    }
}

impl std::fmt::Display for AccountSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if !self.ids.is_empty() {
            parts.push(format!("ids {}", self.ids.join(", ")));
        }
        if !self.labels.is_empty() {
            let labels: Vec<String> = self
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            parts.push(format!("labels {}", labels.join(", ")));
        }
        if parts.is_empty() {
            write!(f, "every account")
        } else {
            write!(f, "{}", parts.join(" and "))
        }
    }
}

/// People: an Entra group's members given an IAM Identity Center permission set in
/// accounts.
///
/// trustsync keeps an identity-store group of the same members (nested Entra groups
/// flattened when `members.transitive`), creates the identity-store users it lacks
/// (`userName` = the user principal name, never a password), writes the permission set and
/// assigns it to the group in each selected account. A member who leaves the Entra group,
/// or whose account is disabled, is taken out of the group and the sessions the permission
/// set already issued them are denied.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccessAssignmentSpec {
    /// The Entra group whose people get the permission set.
    pub group: GroupSelector,
    /// Which members count: direct ones, or every member of nested groups too.
    #[serde(default)]
    pub members: MemberSelection,
    /// Guests (`userType: Guest`) of the group: `exclude` (the default: reported, never
    /// provisioned) or `include`.
    #[serde(default)]
    pub guests: GuestRule,
    /// The permission set trustsync writes and assigns.
    pub permission_set: PermissionSetSpec,
    /// The accounts the permission set is assigned in; every account in scope when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accounts: Option<AccountSelector>,
    /// Identity-store users (by user name) that trustsync may take over for the Entra
    /// user of that name although nothing binds them to that person: a user made by hand
    /// or by another tool, or one trustsync made for someone who held the name before.
    /// Without this a same-named user that is not bound to the Entra user (by its SCIM
    /// external id, or trustsync's record of whom it made it for) is a `conflict`, never
    /// handed over.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adopt_users: Vec<String>,
    /// Take over an existing identity-store group named as the document (`metadata.name`,
    /// compared without case) and an existing permission set of `permissionSet.name` that
    /// no trustsync instance marks (made by SCIM or by hand): each gets trustsync's mark
    /// (and the set its owner tag), and the group keeps its id, so its assignments stay
    /// and nobody's access is cut to re-create it. Then the document is reconciled as
    /// usual (people not in the Entra group are removed, under the safety limits, and
    /// their sessions denied). Refused, as a `conflict` naming what is in the way, when the
    /// group or set carries another owner's mark or owner tag, when the set is assigned to
    /// a user directly or to another group, or is provisioned in an account trustsync does
    /// not read, and when the group holds another permission set: taking over any of those
    /// would silently keep, cut or widen someone's access. Without it (the default) an
    /// existing group or set of those names is a `conflict`, never written to.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub adopt: bool,
}

/// What happens to guests of a group mapped to people's access.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum GuestRule {
    /// Guests are left out and reported: a person of another organization gets no AWS
    /// access through a group unless the document says so.
    #[default]
    Exclude,
    /// Guests are provisioned like members.
    Include,
}

/// An IAM Identity Center permission set, owned by trustsync (its description carries
/// trustsync's mark).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PermissionSetSpec {
    /// 1 to 32 letters, digits and `+=,.@_-`; unique in the instance.
    pub name: String,
    /// What it is for (trustsync adds its mark).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// How long a session lasts, ISO 8601: `PT1H` to `PT12H`.
    #[serde(default = "default_people_session")]
    pub session_duration: String,
    /// AWS managed policy ARNs to attach.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub managed_policies: Vec<String>,
    /// Customer-managed policies, by name and path, that must exist in each account.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub customer_managed_policies: Vec<CustomerManagedPolicy>,
    /// The permission set's inline policy, an IAM policy document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    pub inline_policy: Option<serde_json::Value>,
    /// The most the set's role may do in each account, whatever its policies say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions_boundary: Option<PermissionSetBoundary>,
}

/// A permission set's permissions boundary: exactly one of the two.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PermissionSetBoundary {
    /// An AWS managed policy (`arn:aws:iam::aws:policy/...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_policy_arn: Option<String>,
    /// A customer-managed policy, by name and path, that must exist in each account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_managed_policy: Option<CustomerManagedPolicy>,
}

/// Characters of a permission set's description kept for trustsync's mark.
pub const MARK_BUDGET: usize = 100;

/// Characters of a permission set's inline policy kept for the denials of departed
/// people's sessions (the rest, of 32,768, is the document's).
pub const DENIAL_RESERVE: usize = 8_192;

fn default_people_session() -> String {
    "PT1H".to_string()
}

/// A customer-managed policy a permission set names: in each account it is assigned in,
/// the policy of this name and path is attached to the role Identity Center provisions.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CustomerManagedPolicy {
    /// The policy name.
    pub name: String,
    /// The policy path; `/` unless set.
    #[serde(default = "default_policy_path")]
    pub path: String,
}

fn default_policy_path() -> String {
    "/".to_string()
}

impl PermissionSetSpec {
    /// The session duration in seconds (`PT1H`, `PT90M`, `PT1H30M`), when it reads.
    pub fn session_seconds(&self) -> Option<u64> {
        iso_duration_seconds(&self.session_duration)
    }
}

/// Seconds of an ISO 8601 duration of hours, minutes and seconds (`PT8H`, `PT1H30M`).
pub fn iso_duration_seconds(s: &str) -> Option<u64> {
    let rest = s.strip_prefix("PT")?;
    if rest.is_empty() {
        return None;
    }
    let (mut total, mut digits) = (0u64, String::new());
    for c in rest.chars() {
        match c {
            '0'..='9' => digits.push(c),
            'H' | 'M' | 'S' if !digits.is_empty() => {
                let n: u64 = digits.parse().ok()?;
                total += n * match c {
                    'H' => 3600,
                    'M' => 60,
                    _ => 1,
                };
                digits.clear();
            }
            _ => return None,
        }
    }
    digits.is_empty().then_some(total)
}
