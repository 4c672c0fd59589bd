//! The least-privilege IAM policy trustsync itself needs (`trustsync iam-policy`).
//!
//! Every AWS operation [`crate::adapters::aws`] calls is an [`Operation`], which names the
//! IAM actions it needs and their [`Scope`]; the policy is built from that list, so it
//! cannot fall behind the code. Writes to existing roles are allowed only on roles
//! under the managed path that carry the owner tag (`aws:ResourceTag`); creating a role is
//! allowed only with the owner tag in the request (`aws:RequestTag`); the owner tag itself
//! can never be removed; `iam:PassRole` only towards Lambda. Adopting an existing unowned
//! role therefore needs a one-time broader grant: by design, trustsync cannot take over a
//! role nobody handed it.

use serde_json::{json, Value};

use super::Operation;
use crate::config::Config;
use crate::sources::policy::PolicySet;

/// What an operation is allowed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Account-wide reads that IAM cannot scope.
    AccountRead,
    /// Creating an owned role (owner tag in the request).
    NewRole,
    /// Changing a role that carries the owner tag.
    OwnedRole,
    /// Setting the permissions boundary of an owned role (to a configured one only, when
    /// `permissionsBoundaries` is set).
    Boundary,
    /// Passing a managed role to Lambda.
    PassRole,
    /// Creating the provider (owner tag in the request).
    NewProvider,
    /// Reading an Entra OIDC provider (any: a provider of the tenant may be shared).
    ProviderRead,
    /// Changing an Entra OIDC provider that carries the owner tag.
    Provider,
    /// Reading or changing a managed function.
    Function,
    /// Setting a managed function's execution role (`UpdateFunctionConfiguration`, on the
    /// unqualified function only: a configuration belongs to `$LATEST`).
    FunctionConfiguration,
    /// Reading and cleaning up a function carrying trustsync's function tag, wherever it
    /// is named (its FunctionAccess may be gone).
    MarkedFunction,
    /// Turning on outbound identity federation in an account (only when the config lets
    /// trustsync do it: `outboundFederation.enable`).
    OutboundEnable,
    /// Publishing audit checkpoints to the configured CloudWatch Logs group.
    AuditAnchor,
    /// Needed by whoever verifies the log (`audit verify --anchor-*`), never by the
    /// controller.
    Verifier,
    /// Reading people's access in IAM Identity Center: `access --people`, and the
    /// controller when the repository has AccessAssignments.
    PeopleRead,
    /// Writing the identity store (creating users and groups, adding and removing group
    /// members): the controller, only when the repository has AccessAssignments.
    PeopleWrite,
    /// Creating a permission set (owner tag in the request).
    PeopleNewSet,
    /// Changing, provisioning or assigning a permission set that carries the owner tag.
    PeopleOwnedSet,
    /// Taking over an existing group and permission set no trustsync instance marks:
    /// printed only while an AccessAssignment says `adopt: true`.
    PeopleAdopt,
    /// Needs no permission (`sts:GetCallerIdentity`).
    Free,
    /// The hub assuming the spoke role in each managed account.
    SpokeRole,
    /// The hub listing the organization's accounts and their tags.
    Discovery,
}

fn actions(scope: Scope) -> Vec<&'static str> {
    let mut a: Vec<&str> = Operation::ALL
        .iter()
        .flat_map(|op| op.grants())
        .filter(|(_, s)| *s == scope)
        .map(|(a, _)| *a)
        .collect();
    a.sort();
    a.dedup();
    a
}

/// The policy for this config; with a policy set, Lambda access is scoped to its functions.
/// One policy document, statement by statement, as it will read in IAM: the fixed
/// statements, then those that depend on the config and the policies.
pub fn controller_policy(config: &Config, policies: Option<&PolicySet>) -> Value {
    let (key, value) = (&config.owner_tag.key, &config.owner_tag.value);
    let roles = format!("arn:aws:iam::*:role{}*", config.role_path);
    let providers = json!([
        "arn:aws:iam::*:oidc-provider/login.microsoftonline.com/*",
        "arn:aws:iam::*:oidc-provider/sts.windows.net/*"
    ]);
    let new_providers = new_providers(policies, &providers);
    let (region, functions) = function_arns(config, policies);
    // With boundaries: a role is created, and a boundary set, only with one of them
    // (AWS's delegation pattern). The owner tag goes on at creation only: `iam:TagRole`
    // here is the implicit check of CreateRole's own tags, which is made in the CreateRole
    // request and so carries its `iam:PermissionsBoundary`; a TagRole request of its own
    // does not, and is allowed only on roles already owned (ManageOwnedRoles).
    let boundary_arns: Vec<String> = config
        .permissions_boundaries
        .iter()
        .map(|name| crate::config::boundary_arn(config.partition(), "*", name))
        .collect();
    let mut create_condition = json!({"StringEquals": {format!("aws:RequestTag/{key}"): value}});
    let mut boundary_condition = json!({"StringEquals": {format!("aws:ResourceTag/{key}"): value}});
    if !boundary_arns.is_empty() {
        create_condition["ArnLike"] = json!({"iam:PermissionsBoundary": boundary_arns});
        boundary_condition["ArnLike"] = json!({"iam:PermissionsBoundary": boundary_arns});
    }
    // Secure by default: with no boundary configured, and no explicit
    // `allowUnboundedRoles`, trustsync creates and adopts no role, and its policy lets it
    // create none (a role it could create with no boundary could be given anything).
    let may_create_roles = !boundary_arns.is_empty() || config.allow_unbounded_roles;
    let owned_role_actions: Vec<&str> = actions(Scope::OwnedRole)
        .into_iter()
        .filter(|a| boundary_arns.is_empty() || *a != "iam:DeleteRolePermissionsBoundary")
        .chain(["iam:TagRole"])
        .collect();
    let mut statements = role_statements(
        config,
        &roles,
        (create_condition, boundary_condition),
        owned_role_actions,
    );
    statements.extend(provider_and_function_statements(
        config,
        region,
        providers,
        new_providers,
    ));
    let mut policy = json!({
        "Version": "2012-10-17",
        "Statement": statements
    });
    // The statements that depend on the config and the policies, in this order.
    let mut more: Vec<Value> = adoption_statements(config, policies, may_create_roles);
    if !functions.is_empty() {
        more.extend(function_statements(&functions));
    }
    if !boundary_arns.is_empty() {
        more.extend(boundary_statements(&boundary_arns));
    }
    if config.outbound_federation.enable {
        more.push(json!({
            "Sid": "EnableOutboundFederation",
            "Effect": "Allow",
            "Action": actions(Scope::OutboundEnable),
            "Resource": "*"
        }));
    }
    // With many accounts the anchor and Identity Center are the hub's, not each spoke's.
    if !config.accounts.is_hub() {
        more.extend(anchor_statement(config));
        more.extend(audit_signing_statement(config));
        more.extend(super::audit_store_policy::statements(config));
        more.extend(people_statements(config, policies));
    }
    if let Some(list) = policy["Statement"].as_array_mut() {
        if !may_create_roles {
            list.retain(|st| st["Sid"] != "CreateOwnedRoles");
        }
        list.extend(more);
    }
    policy
}

/// The providers trustsync may create.
fn new_providers(policies: Option<&PolicySet>, providers: &Value) -> Value {
    // A provider is created only for the issuers of the policies' tenants (any Entra
    // tenant when no policy set is given).
    match policies {
        Some(set) if !set.providers.is_empty() => {
            let mut arns: Vec<String> = set
                .providers
                .iter()
                .map(|p| format!("arn:aws:iam::*:oidc-provider/{}", p.spec.issuer_host_path()))
                .collect();
            arns.sort();
            arns.dedup();
            json!(arns)
        }
        _ => providers.clone(),
    }
}

/// The region the function ARNs name, and the functions the policies name.
fn function_arns<'c>(config: &'c Config, policies: Option<&PolicySet>) -> (&'c str, Vec<String>) {
    // Many accounts may mean many regions: the spoke policy names functions in any.
    let region = match config.aws.region.as_deref() {
        Some(r) if !config.accounts.is_hub() => r,
        _ => "*",
    };
    // Only the functions the policies name; none without a policy set (never `function:*`).
    let functions: Vec<String> = policies
        .into_iter()
        .flat_map(|set| &set.functions)
        .flat_map(|f| {
            let name = crate::sources::policy::function_name_of(&f.spec.function);
            [
                format!("arn:aws:lambda:{region}:*:function:{name}"),
                format!("arn:aws:lambda:{region}:*:function:{name}:*"),
            ]
        })
        .collect();
    (region, functions)
}

/// The statements on roles: reading the account, creating, bounding, managing and passing
/// the roles trustsync owns.
fn role_statements(
    config: &Config,
    roles: &str,
    (create_condition, boundary_condition): (Value, Value),
    owned_role_actions: Vec<&str>,
) -> Vec<Value> {
    let (key, value) = (&config.owner_tag.key, &config.owner_tag.value);
    vec![
        json!({
            "Sid": "ReadAccountState",
            "Effect": "Allow",
            "Action": actions(Scope::AccountRead),
            "Resource": "*"
        }),
        json!({
            "Sid": "CreateOwnedRoles",
            "Effect": "Allow",
            "Action": actions(Scope::NewRole),
            "Resource": roles,
            "Condition": create_condition.clone()
        }),
        json!({
            "Sid": "SetBoundaryOfOwnedRoles",
            "Effect": "Allow",
            "Action": actions(Scope::Boundary),
            "Resource": roles,
            "Condition": boundary_condition
        }),
        json!({
            "Sid": "ManageOwnedRoles",
            "Effect": "Allow",
            "Action": owned_role_actions,
            "Resource": roles,
            "Condition": {"StringEquals": {format!("aws:ResourceTag/{key}"): value}}
        }),
        json!({
            "Sid": "KeepTheOwnerTag",
            "Effect": "Deny",
            "Action": "iam:UntagRole",
            "Resource": "*",
            "Condition": {"ForAnyValue:StringEquals": {"aws:TagKeys": key}}
        }),
        json!({
            "Sid": "PassOwnedRolesToLambda",
            "Effect": "Allow",
            "Action": actions(Scope::PassRole),
            "Resource": roles,
            "Condition": {"StringEquals": {
                "iam:PassedToService": "lambda.amazonaws.com",
                format!("aws:ResourceTag/{key}"): value
            }}
        }),
    ]
}

/// The statements on Entra's OIDC providers and on functions.
fn provider_and_function_statements(
    config: &Config,
    region: &str,
    providers: Value,
    new_providers: Value,
) -> Vec<Value> {
    let (key, value) = (&config.owner_tag.key, &config.owner_tag.value);
    vec![
        json!({
            "Sid": "CreateEntraProvider",
            "Effect": "Allow",
            "Action": actions(Scope::NewProvider),
            "Resource": new_providers,
            "Condition": {"StringEquals": {format!("aws:RequestTag/{key}"): value}}
        }),
        json!({
            "Sid": "ReadEntraProviders",
            "Effect": "Allow",
            "Action": actions(Scope::ProviderRead),
            "Resource": providers
        }),
        json!({
            "Sid": "ManageOwnedEntraProvider",
            "Effect": "Allow",
            "Action": actions(Scope::Provider),
            "Resource": providers,
            "Condition": {"StringEquals": {format!("aws:ResourceTag/{key}"): value}}
        }),
        json!({
            "Sid": "NoCodeThroughConfiguration",
            "Effect": "Deny",
            "Action": ["lambda:UpdateFunctionConfiguration", "lambda:UpdateFunctionCode", "lambda:CreateFunction"],
            "Resource": "*",
            "Condition": {"ForAnyValue:StringLike": {"lambda:Layer": "*"}}
        }),
        json!({
            "Sid": "CleanUpMarkedFunctions",
            "Effect": "Allow",
            "Action": actions(Scope::MarkedFunction)
                .into_iter()
                .chain(["lambda:GetFunctionConfiguration", "lambda:GetAlias", "lambda:GetPolicy", "lambda:RemovePermission"])
                .collect::<Vec<_>>(),
            "Resource": [
                format!("arn:aws:lambda:{region}:*:function:*"),
                format!("arn:aws:lambda:{region}:*:function:*:*")
            ],
            "Condition": {"Null": {format!("aws:ResourceTag/{}", config.function_tag_key()): "false"}}
        }),
    ]
}

/// The adoption grants: the listed roles and providers only.
fn adoption_statements(
    config: &Config,
    policies: Option<&PolicySet>,
    may_create_roles: bool,
) -> Vec<Value> {
    let (key, value) = (&config.owner_tag.key, &config.owner_tag.value);
    let mut more: Vec<Value> = Vec::new();
    // Adoption is an explicit grant for the roles listed, never a general one: the roles of
    // mappings that say `adopt: true` may be tagged as owned (once owned, the rest of the
    // policy applies; print the policy again without `adopt` once adopted).
    let adopted: Vec<String> = policies
        .into_iter()
        .flat_map(|set| &set.role_mappings)
        .filter(|m| m.spec.adopt)
        .map(|m| {
            let path = m.spec.role.path.as_deref().unwrap_or(&config.role_path);
            format!("arn:aws:iam::*:role{path}{}", m.spec.role.name)
        })
        .collect();
    if !adopted.is_empty() && may_create_roles {
        more.push(json!({
            "Sid": "AdoptListedRoles",
            "Effect": "Allow",
            "Action": "iam:TagRole",
            "Resource": adopted,
            "Condition": {"StringEquals": {format!("aws:RequestTag/{key}"): value}}
        }));
    }
    // Likewise a provider no document adopts can never be tagged into ownership: only the
    // providers of documents that say `adopt: true` (print the policy again once adopted).
    let adopted_providers: Vec<String> = policies
        .into_iter()
        .flat_map(|set| &set.providers)
        .filter(|p| p.spec.adopt)
        .map(|p| format!("arn:aws:iam::*:oidc-provider/{}", p.spec.issuer_host_path()))
        .collect();
    if !adopted_providers.is_empty() {
        more.push(json!({
            "Sid": "AdoptListedEntraProviders",
            "Effect": "Allow",
            "Action": "iam:TagOpenIDConnectProvider",
            "Resource": adopted_providers,
            "Condition": {"StringEquals": {format!("aws:RequestTag/{key}"): value}}
        }));
    }
    more
}

/// Access to the functions the policies name, and their execution roles.
fn function_statements(functions: &[String]) -> Vec<Value> {
    // The execution role is set with UpdateFunctionConfiguration, which the Lambda
    // authorization reference lets no condition key narrow to the role alone (its keys
    // are lambda:Layer, lambda:VpcIds, lambda:SubnetIds, lambda:SecurityGroupIds and
    // aws:ResourceTag): the unqualified functions named, layers denied above, the role
    // only one trustsync owns passed to Lambda (PassOwnedRolesToLambda).
    let unqualified: Vec<&String> = functions.iter().filter(|f| !f.ends_with(":*")).collect();
    vec![
        json!({
            "Sid": "ManageFunctionAccess",
            "Effect": "Allow",
            "Action": actions(Scope::Function),
            "Resource": functions
        }),
        json!({
            "Sid": "SetExecutionRoles",
            "Effect": "Allow",
            "Action": actions(Scope::FunctionConfiguration),
            "Resource": unqualified
        }),
    ]
}

/// The denials that keep the configured boundaries on every role and unchanged.
fn boundary_statements(boundary_arns: &[String]) -> Vec<Value> {
    vec![
        json!({
            "Sid": "NoRoleWithoutABoundary",
            "Effect": "Deny",
            "Action": ["iam:CreateRole", "iam:PutRolePermissionsBoundary"],
            "Resource": "*",
            "Condition": {"ArnNotLike": {"iam:PermissionsBoundary": boundary_arns}}
        }),
        json!({
            "Sid": "KeepBoundaries",
            "Effect": "Deny",
            "Action": "iam:DeleteRolePermissionsBoundary",
            "Resource": "*"
        }),
        json!({
            "Sid": "KeepBoundaryPolicies",
            "Effect": "Deny",
            "Action": [
                "iam:CreatePolicyVersion",
                "iam:DeletePolicy",
                "iam:DeletePolicyVersion",
                "iam:SetDefaultPolicyVersion",
                "iam:TagPolicy",
                "iam:UntagPolicy"
            ],
            "Resource": boundary_arns
        }),
    ]
}

fn anchor_statement(config: &Config) -> Option<Value> {
    let region = config.aws.region.as_deref().unwrap_or("*");
    config.audit.anchor.as_ref().map(|anchor| {
        json!({
            "Sid": "PublishAuditCheckpoints",
            "Effect": "Allow",
            "Action": actions(Scope::AuditAnchor),
            "Resource": format!("arn:aws:logs:{region}:*:log-group:{}:*", anchor.log_group)
        })
    })
}

/// Audit checkpoints signed by a KMS key (`audit.kmsKeyId`): `kms:Sign` on that one key.
fn audit_signing_statement(config: &Config) -> Option<Value> {
    config.audit.kms_key_id.as_ref().map(|key_arn| {
        json!({
            "Sid": "SignAuditCheckpoints",
            "Effect": "Allow",
            "Action": "kms:Sign",
            "Resource": key_arn
        })
    })
}

/// The hub's policy (many accounts): assume the spoke role in each account, list the
/// organization's accounts when they are discovered, publish audit checkpoints.
pub fn hub_policy(config: &Config, policies: Option<&PolicySet>) -> Value {
    let a = &config.accounts;
    let mut roles: Vec<String> = a
        .targets
        .iter()
        .map(|t| {
            t.role_arn
                .clone()
                .unwrap_or_else(|| a.spoke_role_arn(config.partition(), &t.id))
        })
        .collect();
    if a.organization.is_some() || roles.is_empty() {
        roles.push(a.spoke_role_arn(config.partition(), "*"));
    }
    roles.sort();
    roles.dedup();
    let mut statements = vec![json!({
        "Sid": "AssumeSpokeRoles",
        "Effect": "Allow",
        "Action": actions(Scope::SpokeRole),
        "Resource": roles
    })];
    if a.organization.is_some() {
        statements.push(json!({
            "Sid": "DiscoverAccounts",
            "Effect": "Allow",
            "Action": actions(Scope::Discovery),
            "Resource": "*"
        }));
    }
    statements.extend(anchor_statement(config));
    statements.extend(audit_signing_statement(config));
    statements.extend(super::audit_store_policy::statements(config));
    statements.extend(people_statements(config, policies));
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// IAM Identity Center for people (AccessAssignments), in the account that holds the
/// instance: the controller's own (one account) or the hub's. Only with AccessAssignments
/// (never without a policy set: people's access is not a default). What the Service
/// Authorization Reference allows (docs/operations.md, "The controller's own IAM policy",
/// says which page says what):
/// - permission sets: created only with the owner tag in the request (`aws:RequestTag`,
///   `aws:TagKeys`); every write to a set, its provisioning and its assignments only when
///   it carries the owner tag (`aws:ResourceTag`), so never another team's set, and never
///   a set tagged into ownership (TagResource is itself conditioned on the tag);
/// - assignments: created only in the managed accounts (the `Account` resource); removed
///   and provisioned in any, for trustsync's own sets only (that takes access away or
///   rewrites what the set already grants, never more);
/// - the identity store: creating users and groups and adding or removing members only
///   (never updating or deleting a user or a group). Its groups take no tags, no condition
///   key reads a group's description (trustsync's mark), and a group's ARN carries an id
///   made at creation: IAM cannot tell trustsync's group from another, the planner does;
/// - adoption, only while an AccessAssignment says `adopt: true` (print the policy again
///   once adopted): the owner tag put on a set that carries no owner tag at all (so never
///   one tagged for another owner), and `UpdateGroup` (the mark in a group's description),
///   which, as above, IAM cannot narrow to one group.
fn people_statements(config: &Config, policies: Option<&PolicySet>) -> Vec<Value> {
    let Some(set) = policies.filter(|p| !p.access_assignments.is_empty()) else {
        return Vec::new();
    };
    let (key, value) = (&config.owner_tag.key, &config.owner_tag.value);
    let partition = config.partition();
    // The configured instance, else any (an organization has one).
    let instance_id = config
        .identity_center
        .instance_arn
        .as_deref()
        .and_then(|arn| arn.rsplit('/').next())
        .unwrap_or("*");
    let instances = format!("arn:{partition}:sso:::instance/{instance_id}");
    let sets = format!("arn:{partition}:sso:::permissionSet/{instance_id}/*");
    let mut accounts: Vec<String> = managed_accounts(config, set)
        .into_iter()
        .map(|id| format!("arn:{partition}:sso:::account/{id}"))
        .collect();
    accounts.sort();
    accounts.dedup();
    let owned = json!({"StringEquals": {format!("aws:ResourceTag/{key}"): value}});
    let adopting = set.access_assignments.iter().any(|a| a.spec.adopt);
    let adopt = adopting.then(|| {
        [
            // The owner tag on a set that carries no owner tag (of any value): a set
            // another controller tagged with the key stays out of reach. The instance is
            // in `WriteInTheInstance`.
            json!({
                "Sid": "AdoptUnownedPermissionSets",
                "Effect": "Allow",
                "Action": "sso:TagResource",
                "Resource": sets.clone(),
                "Condition": {
                    "StringEquals": {format!("aws:RequestTag/{key}"): value},
                    "ForAllValues:StringEquals": {"aws:TagKeys": [key]},
                    "Null": {format!("aws:ResourceTag/{key}"): "true"}
                }
            }),
            json!({
                "Sid": "AdoptGroups",
                "Effect": "Allow",
                "Action": "identitystore:UpdateGroup",
                "Resource": [
                    format!("arn:{partition}:identitystore::*:identitystore/*"),
                    format!("arn:{partition}:identitystore:::group/*")
                ]
            }),
        ]
    });
    let mut out = vec![
        json!({
            "Sid": "ReadPeople",
            "Effect": "Allow",
            "Action": actions(Scope::PeopleRead),
            "Resource": "*"
        }),
        json!({
            "Sid": "CreateOwnedPermissionSets",
            "Effect": "Allow",
            "Action": actions(Scope::PeopleNewSet),
            "Resource": [instances, sets],
            "Condition": {
                "StringEquals": {format!("aws:RequestTag/{key}"): value},
                "ForAllValues:StringEquals": {"aws:TagKeys": [key]}
            }
        }),
        json!({
            "Sid": "WriteOwnedPermissionSets",
            "Effect": "Allow",
            "Action": actions(Scope::PeopleOwnedSet),
            "Resource": sets,
            "Condition": owned
        }),
        // Each write to a set names the instance too (a resource of its own that the
        // reference lists as required); the set's statement is what conditions it.
        json!({
            "Sid": "WriteInTheInstance",
            "Effect": "Allow",
            "Action": actions(Scope::PeopleOwnedSet),
            "Resource": instances
        }),
        json!({
            "Sid": "AssignInManagedAccounts",
            "Effect": "Allow",
            "Action": "sso:CreateAccountAssignment",
            "Resource": accounts
        }),
        json!({
            "Sid": "UnassignAndProvisionOwnedSets",
            "Effect": "Allow",
            "Action": ["sso:DeleteAccountAssignment", "sso:ProvisionPermissionSet"],
            "Resource": format!("arn:{partition}:sso:::account/*")
        }),
        json!({
            "Sid": "CreateUsersAndGroupMembers",
            "Effect": "Allow",
            "Action": actions(Scope::PeopleWrite),
            "Resource": [
                format!("arn:{partition}:identitystore::*:identitystore/*"),
                format!("arn:{partition}:identitystore:::group/*"),
                format!("arn:{partition}:identitystore:::user/*"),
                format!("arn:{partition}:identitystore:::membership/*")
            ]
        }),
    ];
    out.extend(adopt.into_iter().flatten());
    out
}

/// The accounts an AccessAssignment may assign in, as `Account` resource ids: the ids the
/// documents select (among the listed targets, with many accounts), the listed targets
/// for a document that selects none by id, the controller's own account
/// (`${aws:PrincipalAccount}`) with one account; any (`*`) only when accounts are
/// discovered and a document selects by label alone.
fn managed_accounts(config: &Config, set: &PolicySet) -> Vec<String> {
    let a = &config.accounts;
    let targets: Vec<String> = a.targets.iter().map(|t| t.id.clone()).collect();
    let mut out = Vec::new();
    for doc in &set.access_assignments {
        let ids = doc
            .spec
            .accounts
            .as_ref()
            .map(|s| s.ids.clone())
            .unwrap_or_default();
        match (ids.is_empty(), a.is_hub(), a.organization.is_some()) {
            (false, false, _) | (false, true, true) => out.extend(ids),
            (false, true, false) => out.extend(ids.into_iter().filter(|i| targets.contains(i))),
            (true, false, _) => out.push("${aws:PrincipalAccount}".to_string()),
            (true, true, false) => out.extend(targets.iter().cloned()),
            (true, true, true) => out.push("*".to_string()),
        }
    }
    out
}

/// The spoke role's trust policy: only the hub role may assume it (and with the external id,
/// when one is configured).
pub fn spoke_trust_policy(config: &Config, hub_role_arn: &str) -> Value {
    let mut statement = json!({
        "Sid": "TrustsyncHub",
        "Effect": "Allow",
        "Principal": {"AWS": hub_role_arn},
        "Action": "sts:AssumeRole"
    });
    if let Some(id) = &config.accounts.external_id {
        statement["Condition"] = json!({"StringEquals": {"sts:ExternalId": id}});
    }
    json!({"Version": "2012-10-17", "Statement": [statement]})
}

/// What `trustsync iam-policy` prints: for one account, its policy; for many, the hub's
/// policy and the spoke role's (name, policy, trust policy naming `hub_role_arn`).
pub fn iam_policies(config: &Config, policies: Option<&PolicySet>, hub_role_arn: &str) -> Value {
    if !config.accounts.is_hub() {
        return controller_policy(config, policies);
    }
    json!({
        "hub": {"policy": hub_policy(config, policies)},
        "spoke": {
            "roleName": config.accounts.role_name,
            "rolePath": config.accounts.role_path,
            "policy": controller_policy(config, policies),
            "trustPolicy": spoke_trust_policy(config, hub_role_arn)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::iam_policy::check_document;

    #[test]
    fn identity_center_is_granted_only_with_access_assignments() {
        let dir = tempfile::tempdir().unwrap();
        let none = PolicySet::default();
        let off = controller_policy(&Config::default(), Some(&none)).to_string();
        assert!(!off.contains("sso:"), "{off}");
        assert!(!controller_policy(&Config::default(), None)
            .to_string()
            .contains("sso:"));
        std::fs::write(
            dir.path().join("p.yaml"),
            "apiVersion: trustsync.dev/v1alpha1\nkind: AccessAssignment\nmetadata: {name: ops}\nspec:\n  group: {displayName: g}\n  permissionSet: {name: Ops}\n",
        )
        .unwrap();
        let set = crate::sources::policy::load_dir(dir.path(), &Default::default()).unwrap();
        let on = controller_policy(&Config::default(), Some(&set)).to_string();
        for action in [
            "sso:CreateAccountAssignment",
            "sso:DeleteAccountAssignment",
            "identitystore:DeleteGroupMembership",
            "identitystore:CreateUser",
        ] {
            assert!(on.contains(action), "{action}: {on}");
        }
    }

    #[test]
    fn every_operation_is_granted_and_nothing_else() {
        // Every operation, role creation included (the opt-out: with a boundary configured,
        // taking one off is never granted).
        let mut config = Config {
            allow_unbounded_roles: true,
            ..Config::default()
        };
        config.audit.anchor = Some(crate::config::AnchorConfig {
            log_group: "trustsync-audit".into(),
            log_stream: "prod".into(),
        });
        config.accounts.organization = Some(crate::config::OrganizationDiscovery {
            parents: vec!["r-abcd".into()],
            tags: Default::default(),
            regions: Vec::new(),
            exclude: Vec::new(),
            refresh_seconds: 3600,
        });
        config.outbound_federation.enable = true;
        let samples = crate::sources::policy::load_dir(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("policies")
                .as_path(),
            &config.limits,
        )
        .unwrap();
        let both = iam_policies(
            &config,
            Some(&samples),
            "arn:aws:iam::111111111111:role/hub",
        );
        let mut granted: Vec<String> = Vec::new();
        let statements = both["hub"]["policy"]["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .chain(both["spoke"]["policy"]["Statement"].as_array().unwrap());
        for st in statements {
            if st["Effect"] != "Allow" {
                continue;
            }
            match &st["Action"] {
                Value::String(a) => granted.push(a.clone()),
                Value::Array(list) => {
                    granted.extend(list.iter().map(|a| a.as_str().unwrap().to_string()))
                }
                other => panic!("Action {other}"),
            }
        }
        for op in Operation::ALL {
            for (action, scope) in op.grants() {
                assert!(
                    matches!(
                        scope,
                        Scope::Free
                            | Scope::Verifier
                            | Scope::PeopleRead
                            | Scope::PeopleWrite
                            | Scope::PeopleNewSet
                            | Scope::PeopleOwnedSet
                            | Scope::PeopleAdopt
                    ) || granted.iter().any(|g| g == action),
                    "{action} ({op:?}) is not in the policy"
                );
            }
        }
        let needed: Vec<&str> = Operation::ALL
            .iter()
            .flat_map(|op| op.grants())
            .map(|(a, _)| *a)
            .collect();
        for action in &granted {
            assert!(
                needed.contains(&action.as_str()),
                "{action} is granted but no operation needs it"
            );
        }
        let hub = both["hub"]["policy"].to_string();
        assert!(
            !hub.contains("iam:CreateRole"),
            "the hub changes nothing itself"
        );
        assert!(check_document(&both["hub"]["policy"]).is_empty());
        assert_eq!(
            both["spoke"]["trustPolicy"]["Statement"][0]["Principal"]["AWS"],
            "arn:aws:iam::111111111111:role/hub"
        );
    }

    #[test]
    fn enabling_outbound_federation_is_granted_only_when_the_config_allows_it() {
        let mut config = Config::default();
        let off = controller_policy(&config, None).to_string();
        assert!(off.contains("iam:GetOutboundWebIdentityFederationInfo"));
        assert!(!off.contains("iam:EnableOutboundWebIdentityFederation"));
        config.outbound_federation.enable = true;
        let on = controller_policy(&config, None);
        assert!(on
            .to_string()
            .contains("iam:EnableOutboundWebIdentityFederation"));
        assert!(check_document(&on).is_empty());
    }

    #[test]
    fn without_policies_no_function_is_reachable() {
        let text = controller_policy(&Config::default(), None).to_string();
        assert!(!text.contains("ManageFunctionAccess"), "{text}");
        assert!(!text.contains("lambda:AddPermission"), "{text}");
    }

    #[test]
    fn the_policy_is_a_valid_identity_policy_scoped_by_path_and_tag() {
        let config = Config {
            role_path: "/platform/trustsync/".into(),
            owner_tag: crate::config::OwnerTag {
                value: "prod".into(),
                ..Default::default()
            },
            ..Config::default()
        };
        let doc = controller_policy(&config, None);
        assert!(
            check_document(&doc).is_empty(),
            "{:?}",
            check_document(&doc)
        );
        let text = doc.to_string();
        assert!(text.contains("arn:aws:iam::*:role/platform/trustsync/*"));
        assert!(text.contains("\"aws:ResourceTag/trustsync.dev/owner\":\"prod\""));
        assert!(text.contains("\"aws:RequestTag/trustsync.dev/owner\":\"prod\""));
        assert!(
            crate::model::iam_policy::iam_length(&doc) <= 6144,
            "managed policy size limit"
        );
    }
}
