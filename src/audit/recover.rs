//! Whether an AWS write shows in what AWS returns now: how an intent left without an
//! outcome by a crash is resolved. Pure.

use crate::model::iam_policy;
use crate::observed::Observed;
use crate::plan::{Action, IamAction, LambdaAction};

// Long on purpose: one arm per action, each a look at the part of AWS it writes.
/// `Some(true)` when `observed` shows the write as made, `Some(false)` when it shows it
/// not made, `None` when the observation does not cover it (a function no policy names).
pub fn landed(action: &Action, observed: &Observed) -> Option<bool> {
    match action {
        Action::Iam(a) => iam_landed(a, observed),
        Action::Lambda(a) => lambda_landed(a, observed),
        // Entra's credentials are not part of what AWS is read for; the next pass plans
        // whatever is still missing.
        Action::Entra(_) => None,
        // Identity Center is read apart from the accounts; the next pass plans whatever
        // is still missing, and its writes are idempotent.
        Action::People(_) => None,
    }
}

fn iam_landed(action: &IamAction, observed: &Observed) -> Option<bool> {
    use IamAction::*;
    let role = |name: &str| observed.roles.get(&name.to_ascii_lowercase());
    let provider = |arn: &str| observed.providers.iter().find(|p| p.arn == arn);
    Some(match action {
        CreateOidcProvider { url, .. } => observed.providers.iter().any(|p| {
            p.url
                .eq_ignore_ascii_case(url.trim_start_matches("https://"))
        }),
        AddProviderAudience {
            provider_arn,
            audience,
        } => provider(provider_arn).is_some_and(|p| p.client_ids.contains(audience)),
        RemoveProviderAudience {
            provider_arn,
            audience,
        } => provider(provider_arn).is_none_or(|p| !p.client_ids.contains(audience)),
        TagOidcProvider { provider_arn, tags } => provider(provider_arn)
            .is_some_and(|p| tags.iter().all(|(k, v)| p.tags.get(k) == Some(v))),
        UntagOidcProvider { provider_arn, keys } => {
            provider(provider_arn).is_none_or(|p| keys.iter().all(|k| !p.tags.contains_key(k)))
        }
        DeleteOidcProvider { provider_arn } => provider(provider_arn).is_none(),
        CreateRole { role_name, .. } => role(role_name).is_some(),
        RevokeTrust {
            role_name,
            trust_policy,
            ..
        }
        | UpdateTrustPolicy {
            role_name,
            trust_policy,
        } => role(role_name).is_some_and(|r| iam_policy::equivalent(trust_policy, &r.trust)),
        UpdateRole {
            role_name,
            description,
            max_session_duration,
        } => role(role_name).is_some_and(|r| {
            (description.is_none() || &r.description == description)
                && r.max_session_duration
                    .is_none_or(|d| d == *max_session_duration)
        }),
        PutPermissionsBoundary {
            role_name,
            policy_arn,
        } => role(role_name)
            .is_some_and(|r| r.permissions_boundary.as_deref() == Some(policy_arn.as_str())),
        DeletePermissionsBoundary { role_name } => {
            role(role_name).is_none_or(|r| r.permissions_boundary.is_none())
        }
        PutInlinePolicy { .. } | RevokeSessions { .. } => inline_policy_landed(action, observed),
        DeleteInlinePolicy {
            role_name,
            policy_name,
        } => role(role_name).is_none_or(|r| !r.inline_policies.contains_key(policy_name)),
        AttachManagedPolicy {
            role_name,
            policy_arn,
        } => role(role_name).is_some_and(|r| r.managed_policies.contains(policy_arn)),
        DetachManagedPolicy {
            role_name,
            policy_arn,
        } => role(role_name).is_none_or(|r| !r.managed_policies.contains(policy_arn)),
        TagRole { role_name, tags } => {
            role(role_name).is_some_and(|r| tags.iter().all(|(k, v)| r.tags.get(k) == Some(v)))
        }
        UntagRole { role_name, keys } => {
            role(role_name).is_none_or(|r| keys.iter().all(|k| !r.tags.contains_key(k)))
        }
        DeleteRole { role_name } => role(role_name).is_none(),
        // The account setting is not part of what AWS is read for; the next pass
        // plans it again when it is still missing.
        EnableOutboundFederation {} => return None,
    })
}

/// Whether the inline policy an action writes stands on its role, as written.
fn inline_policy_landed(action: &IamAction, observed: &Observed) -> bool {
    let (role_name, policy_name, document) =
        action.inline_policy().expect("writes an inline policy");
    let role = observed.roles.get(&role_name.to_ascii_lowercase());
    role.is_some_and(|r| {
        r.inline_policies
            .get(policy_name)
            .is_some_and(|d| iam_policy::equivalent(document, d))
    })
}

fn lambda_landed(action: &LambdaAction, observed: &Observed) -> Option<bool> {
    use LambdaAction::*;
    let function = |name: &str, qualifier: &Option<String>| {
        observed
            .functions
            .get(&(name.to_string(), qualifier.clone()))
            .cloned()
    };
    let has_statement = |name: &str, qualifier: &Option<String>, sid: &str| {
        function(name, qualifier).map(|f| {
            f.is_some_and(|f| {
                f.statements
                    .iter()
                    .any(|s| s.get("Sid").and_then(|v| v.as_str()) == Some(sid))
            })
        })
    };
    Some(match action {
        AddLambdaPermission {
            function_name,
            qualifier,
            statement_id,
            ..
        } => has_statement(function_name, qualifier, statement_id)?,
        RemoveLambdaPermission {
            function_name,
            qualifier,
            statement_id,
        } => !has_statement(function_name, qualifier, statement_id)?,
        SetExecutionRole {
            function_name,
            role_arn,
            ..
        } => function(function_name, &None)?
            .is_some_and(|f| f.role.as_deref() == Some(role_arn.as_str())),
        TagFunction {
            function_arn,
            key,
            value,
        } => {
            let name = crate::model::arn::ArnParts::parse(function_arn)?.function_name()?;
            // The tagging query returns only this instance's key.
            key.is_empty()
                || observed
                    .marked_functions
                    .get(name)
                    .is_some_and(|m| &m.tag_value == value)
        }
        UntagFunction { function_arn, .. } => {
            let name = crate::model::arn::ArnParts::parse(function_arn)?.function_name()?;
            !observed.marked_functions.contains_key(name)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observed::{ObservedFunction, ObservedRole};
    use serde_json::json;
    use std::collections::{BTreeMap, BTreeSet};

    fn trust(subs: &[&str]) -> serde_json::Value {
        json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Principal": {"Federated": "arn:aws:iam::1:oidc-provider/x"},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {"x:sub": subs}}}]})
    }

    fn observed(subs: &[&str]) -> Observed {
        let mut o = Observed::default();
        o.roles.insert(
            "deployer".into(),
            ObservedRole {
                name: "Deployer".into(),
                path: "/trustsync/".into(),
                arn: "arn:aws:iam::1:role/trustsync/Deployer".into(),
                trust: trust(subs),
                description: None,
                max_session_duration: Some(3600),
                permissions_boundary: None,
                inline_policies: BTreeMap::new(),
                managed_policies: BTreeSet::from(["arn:aws:iam::aws:policy/ReadOnlyAccess".into()]),
                tags: BTreeMap::from([("team".into(), "a".into())]),
            },
        );
        o.functions.insert(
            ("api".into(), None),
            Some(ObservedFunction {
                arn: "arn:aws:lambda:eu-west-1:1:function:api".into(),
                role: None,
                config_revision: None,
                policy_revision: None,
                statements: vec![json!({"Sid": "ts-1"})],
            }),
        );
        o
    }

    #[test]
    fn a_write_is_found_made_or_not_made_in_what_aws_returns() {
        let o = observed(&["a"]);
        let revoke = |subs: &[&str]| {
            Action::Iam(IamAction::RevokeTrust {
                role_name: "deployer".into(),
                trust_policy: trust(subs),
                baseline: None,
            })
        };
        // The role name compares as IAM does, the document semantically.
        assert_eq!(landed(&revoke(&["a"]), &o), Some(true));
        assert_eq!(landed(&revoke(&["a", "b"]), &o), Some(false));
        let attach = |arn: &str| {
            Action::Iam(IamAction::AttachManagedPolicy {
                role_name: "DEPLOYER".into(),
                policy_arn: arn.into(),
            })
        };
        assert_eq!(
            landed(&attach("arn:aws:iam::aws:policy/ReadOnlyAccess"), &o),
            Some(true)
        );
        assert_eq!(
            landed(&attach("arn:aws:iam::aws:policy/Other"), &o),
            Some(false)
        );
        let delete = Action::Iam(IamAction::DeleteRole {
            role_name: "gone".into(),
        });
        assert_eq!(landed(&delete, &o), Some(true));
        let add = |f: &str, sid: &str| {
            Action::Lambda(LambdaAction::AddLambdaPermission {
                function_name: f.into(),
                qualifier: None,
                statement_id: sid.into(),
                principal: "p".into(),
                lambda_action: "lambda:InvokeFunction".into(),
                source_arn: None,
                source_account: None,
                revision_id: None,
            })
        };
        assert_eq!(landed(&add("api", "ts-1"), &o), Some(true));
        assert_eq!(landed(&add("api", "ts-2"), &o), Some(false));
        assert_eq!(
            landed(&add("unread", "ts-1"), &o),
            None,
            "a function the pass did not read cannot tell"
        );
    }
}
