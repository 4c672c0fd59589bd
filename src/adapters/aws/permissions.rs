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
    /// Publishing audit checkpoints to the configured CloudWatch Logs group.
    AuditAnchor,
    /// Needed by whoever verifies the log (`audit verify --anchor-*`), never by the
    /// controller.
    Verifier,
    /// Needs no permission (`sts:GetCallerIdentity`).
    Free,
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
// Long on purpose: one policy document, statement by statement, as it will read in IAM.
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
    let mut policy = json!({
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
    });
    if let Some(anchor) = &config.audit.anchor {
        let statement = json!({
            "Sid": "PublishAuditCheckpoints",
            "Effect": "Allow",
            "Action": actions(Scope::AuditAnchor),
            "Resource": format!("arn:aws:logs:{region}:*:log-group:{}:*", anchor.log_group)
        });
        if let Some(list) = policy["Statement"].as_array_mut() {
            list.push(statement);
        }
    }
    policy
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::iam_policy::check_document;

    #[test]
    fn every_operation_is_granted_and_nothing_else() {
        let mut config = Config::default();
        config.audit.anchor = Some(crate::config::AnchorConfig {
            log_group: "trustsync-audit".into(),
            log_stream: "prod".into(),
        });
        let policy = controller_policy(&config, None);
        let mut granted: Vec<String> = Vec::new();
        for st in policy["Statement"].as_array().unwrap() {
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
                    matches!(scope, Scope::Free | Scope::Verifier)
                        || granted.iter().any(|g| g == action),
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
