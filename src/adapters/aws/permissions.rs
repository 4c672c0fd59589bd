//! The least-privilege IAM policy trustsync itself needs (`trustsync iam-policy`).
//!
//! Every AWS operation [`crate::adapters::aws`] calls has an entry in [`OPERATIONS`]; a test reads
//! the operation names out of `src/adapters/aws/mod.rs` and fails when one is missing here, so the
//! policy cannot fall behind the code. Writes to existing roles are allowed only on roles
//! under the managed path that carry the owner tag (`aws:ResourceTag`); creating a role is
//! allowed only with the owner tag in the request (`aws:RequestTag`); the owner tag itself
//! can never be removed; `iam:PassRole` only towards Lambda. Adopting an existing unowned
//! role therefore needs a one-time broader grant: by design, trustsync cannot take over a
//! role nobody handed it.

use serde_json::{json, Value};

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
    /// Passing a managed role to Lambda.
    PassRole,
    /// Creating the provider (owner tag in the request).
    NewProvider,
    /// Reading or changing the Entra OIDC provider.
    Provider,
    /// Reading or changing a managed function.
    Function,
    /// Reading and cleaning up a function carrying trustsync's function tag, wherever it
    /// is named (its FunctionAccess may be gone).
    MarkedFunction,
    /// Needs no permission (`sts:GetCallerIdentity`).
    Free,
}

/// Every AWS operation trustsync calls: (operation as named in the code, IAM action, scope).
pub const OPERATIONS: &[(&str, &str, Scope)] = &[
    ("GetCallerIdentity", "sts:GetCallerIdentity", Scope::Free),
    ("GetResources", "tag:GetResources", Scope::AccountRead),
    ("TagResource", "lambda:TagResource", Scope::Function),
    (
        "UntagResource",
        "lambda:UntagResource",
        Scope::MarkedFunction,
    ),
    (
        "UntagOpenIDConnectProvider",
        "iam:UntagOpenIDConnectProvider",
        Scope::Provider,
    ),
    (
        "GetAccountAuthorizationDetails",
        "iam:GetAccountAuthorizationDetails",
        Scope::AccountRead,
    ),
    ("ListRoles", "iam:ListRoles", Scope::AccountRead),
    (
        "ListOpenIDConnectProviders",
        "iam:ListOpenIDConnectProviders",
        Scope::AccountRead,
    ),
    (
        "GetOpenIDConnectProvider",
        "iam:GetOpenIDConnectProvider",
        Scope::Provider,
    ),
    (
        "CreateOpenIDConnectProvider",
        "iam:CreateOpenIDConnectProvider",
        Scope::NewProvider,
    ),
    (
        "TagOpenIDConnectProvider",
        "iam:TagOpenIDConnectProvider",
        Scope::NewProvider,
    ),
    (
        "AddClientIDToOpenIDConnectProvider",
        "iam:AddClientIDToOpenIDConnectProvider",
        Scope::Provider,
    ),
    (
        "RemoveClientIDFromOpenIDConnectProvider",
        "iam:RemoveClientIDFromOpenIDConnectProvider",
        Scope::Provider,
    ),
    (
        "DeleteOpenIDConnectProvider",
        "iam:DeleteOpenIDConnectProvider",
        Scope::Provider,
    ),
    ("CreateRole", "iam:CreateRole", Scope::NewRole),
    ("TagRole", "iam:TagRole", Scope::NewRole),
    (
        "UpdateAssumeRolePolicy",
        "iam:UpdateAssumeRolePolicy",
        Scope::OwnedRole,
    ),
    ("UpdateRole", "iam:UpdateRole", Scope::OwnedRole),
    (
        "PutRolePermissionsBoundary",
        "iam:PutRolePermissionsBoundary",
        Scope::OwnedRole,
    ),
    (
        "DeleteRolePermissionsBoundary",
        "iam:DeleteRolePermissionsBoundary",
        Scope::OwnedRole,
    ),
    ("PutRolePolicy", "iam:PutRolePolicy", Scope::OwnedRole),
    ("DeleteRolePolicy", "iam:DeleteRolePolicy", Scope::OwnedRole),
    ("AttachRolePolicy", "iam:AttachRolePolicy", Scope::OwnedRole),
    ("DetachRolePolicy", "iam:DetachRolePolicy", Scope::OwnedRole),
    ("UntagRole", "iam:UntagRole", Scope::OwnedRole),
    ("DeleteRole", "iam:DeleteRole", Scope::OwnedRole),
    (
        "UpdateFunctionConfiguration",
        "iam:PassRole",
        Scope::PassRole,
    ),
    (
        "GetFunctionConfiguration",
        "lambda:GetFunctionConfiguration",
        Scope::Function,
    ),
    ("GetAlias", "lambda:GetAlias", Scope::Function),
    ("GetPolicy", "lambda:GetPolicy", Scope::Function),
    ("AddPermission", "lambda:AddPermission", Scope::Function),
    (
        "RemovePermission",
        "lambda:RemovePermission",
        Scope::Function,
    ),
    (
        "UpdateFunctionConfiguration",
        "lambda:UpdateFunctionConfiguration",
        Scope::Function,
    ),
];

fn actions(scope: Scope) -> Vec<&'static str> {
    let mut a: Vec<&str> = OPERATIONS
        .iter()
        .filter(|(_, _, s)| *s == scope)
        .map(|(_, a, _)| *a)
        .collect();
    a.sort();
    a.dedup();
    a
}

/// The policy for this config; with a policy set, Lambda access is scoped to its functions.
pub fn controller_policy(config: &Config, policies: Option<&PolicySet>) -> Value {
    let (key, value) = (&config.owner_tag.key, &config.owner_tag.value);
    let roles = format!("arn:aws:iam::*:role{}*", config.role_path);
    let providers = json!([
        "arn:aws:iam::*:oidc-provider/login.microsoftonline.com/*",
        "arn:aws:iam::*:oidc-provider/sts.windows.net/*"
    ]);
    let region = config.aws.region.as_deref().unwrap_or("*");
    let functions: Vec<String> = match policies {
        Some(set) if !set.functions.is_empty() => set
            .functions
            .iter()
            .flat_map(|f| {
                let name = crate::sources::policy::function_name_of(&f.spec.function);
                [
                    format!("arn:aws:lambda:{region}:*:function:{name}"),
                    format!("arn:aws:lambda:{region}:*:function:{name}:*"),
                ]
            })
            .collect(),
        _ => vec![format!("arn:aws:lambda:{region}:*:function:*")],
    };
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadAccountState",
                "Effect": "Allow",
                "Action": actions(Scope::AccountRead),
                "Resource": "*"
            },
            {
                "Sid": "CreateOwnedRoles",
                "Effect": "Allow",
                "Action": actions(Scope::NewRole),
                "Resource": roles,
                "Condition": {"StringEquals": {format!("aws:RequestTag/{key}"): value}}
            },
            {
                "Sid": "ManageOwnedRoles",
                "Effect": "Allow",
                "Action": actions(Scope::OwnedRole).into_iter().chain(["iam:TagRole"]).collect::<Vec<_>>(),
                "Resource": roles,
                "Condition": {"StringEquals": {format!("aws:ResourceTag/{key}"): value}}
            },
            {
                "Sid": "KeepTheOwnerTag",
                "Effect": "Deny",
                "Action": "iam:UntagRole",
                "Resource": "*",
                "Condition": {"ForAnyValue:StringEquals": {"aws:TagKeys": key}}
            },
            {
                "Sid": "PassOwnedRolesToLambda",
                "Effect": "Allow",
                "Action": actions(Scope::PassRole),
                "Resource": roles,
                "Condition": {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}}
            },
            {
                "Sid": "CreateEntraProvider",
                "Effect": "Allow",
                "Action": actions(Scope::NewProvider),
                "Resource": providers,
                "Condition": {"StringEquals": {format!("aws:RequestTag/{key}"): value}}
            },
            {
                "Sid": "ManageEntraProvider",
                "Effect": "Allow",
                "Action": actions(Scope::Provider).into_iter().chain(["iam:TagOpenIDConnectProvider"]).collect::<Vec<_>>(),
                "Resource": providers
            },
            {
                "Sid": "ManageFunctionAccess",
                "Effect": "Allow",
                "Action": actions(Scope::Function),
                "Resource": functions
            },
            {
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
            }
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::iam_policy::{check_document, PolicyKind};

    /// Operation names the AWS edge passes to its request helper, read from the source.
    fn operations_in_code() -> Vec<String> {
        let src = include_str!("mod.rs");
        let mut ops = Vec::new();
        for marker in [".call(", ".read(", "run!("] {
            for piece in src.split(marker).skip(1) {
                let Some(rest) = piece.trim_start().strip_prefix('"') else {
                    continue;
                };
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric())
                    .collect();
                if !name.is_empty() {
                    ops.push(name);
                }
            }
        }
        ops.sort();
        ops.dedup();
        ops
    }

    #[test]
    fn every_operation_in_the_code_is_granted() {
        let ops = operations_in_code();
        assert!(
            ops.len() >= 25,
            "the source scan found too few operations: {ops:?}"
        );
        let policy = controller_policy(&Config::default(), None).to_string();
        for op in &ops {
            let granted: Vec<&str> = OPERATIONS
                .iter()
                .filter(|(o, _, _)| o == op)
                .map(|(_, a, _)| *a)
                .collect();
            assert!(
                !granted.is_empty(),
                "operation {op} is called in src/adapters/aws/mod.rs but has no entry in OPERATIONS"
            );
            for action in granted {
                let free = action == "sts:GetCallerIdentity";
                assert!(
                    free || policy.contains(&format!("\"{action}\"")),
                    "{action} ({op}) is not in the policy"
                );
            }
        }
        // And nothing is granted that the code does not call.
        for (op, action, _) in OPERATIONS {
            assert!(
                ops.contains(&op.to_string()),
                "{action} is granted but {op} is never called"
            );
        }
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
            check_document(&doc, PolicyKind::Identity).is_empty(),
            "{:?}",
            check_document(&doc, PolicyKind::Identity)
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
