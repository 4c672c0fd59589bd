//! Writing an account: each IAM or Lambda action as its requests ([`Write`], one action
//! type each: the router in `runtime::writers` sends each back-end only its own).

use std::collections::BTreeMap;

use aws_sdk_iam::operation::RequestId;
use aws_sdk_iam::types::Tag;

use super::{exists, gone, AwsClients, Operation};
use crate::model::call::{Failure, Written};
use crate::plan::{IamAction, LambdaAction};
use crate::ports::Write;

#[async_trait::async_trait]
impl Write<IamAction> for AwsClients {
    /// One IAM write, within IAM's write concurrency.
    async fn write(&self, action: &IamAction, _use_revision: bool) -> Result<Written, Failure> {
        let _slot = self
            .writes
            .iam
            .acquire()
            .await
            .expect("the semaphore is never closed");
        self.write_iam(action).await
    }
}

#[async_trait::async_trait]
impl Write<LambdaAction> for AwsClients {
    /// One Lambda write, within Lambda's write concurrency. `use_revision` passes the
    /// planned `RevisionId` to Lambda.
    async fn write(&self, action: &LambdaAction, use_revision: bool) -> Result<Written, Failure> {
        let _slot = self
            .writes
            .lambda
            .acquire()
            .await
            .expect("the semaphore is never closed");
        self.write_lambda(action, use_revision).await
    }
}

impl AwsClients {
    /// The IAM writes, by family: the account setting and the OIDC provider, roles, their
    /// settings, and the policies on them. Each arm of the families is a single request with its benign
    /// failure.
    async fn write_iam(&self, action: &IamAction) -> Result<Written, Failure> {
        use IamAction::*;
        match action {
            EnableOutboundFederation {}
            | CreateOidcProvider { .. }
            | AddProviderAudience { .. }
            | RemoveProviderAudience { .. }
            | TagOidcProvider { .. }
            | UntagOidcProvider { .. }
            | DeleteOidcProvider { .. } => self.write_provider(action).await,
            CreateRole { .. }
            | RevokeTrust { .. }
            | UpdateTrustPolicy { .. }
            | DeleteRole { .. } => self.write_role(action).await,
            UpdateRole { .. }
            | PutPermissionsBoundary { .. }
            | DeletePermissionsBoundary { .. }
            | TagRole { .. }
            | UntagRole { .. } => self.write_role_settings(action).await,
            PutInlinePolicy { .. }
            | RevokeSessions { .. }
            | DeleteInlinePolicy { .. }
            | AttachManagedPolicy { .. }
            | DetachManagedPolicy { .. } => self.write_role_policy(action).await,
        }
    }

    /// The account's outbound federation and the OIDC provider.
    async fn write_provider(&self, action: &IamAction) -> Result<Written, Failure> {
        use IamAction::*;
        let iam = &self.iam;
        Ok(match action {
            EnableOutboundFederation {} => write!(
                self,
                EnableOutboundWebIdentityFederation,
                |f: &Failure| f.is(&["FeatureEnabled", "FeatureEnabledException"]),
                "outbound identity federation was already enabled",
                iam.enable_outbound_web_identity_federation()
            ),
            CreateOidcProvider {
                url,
                client_ids,
                thumbprints,
                tags,
            } => write!(
                self,
                CreateOpenIDConnectProvider,
                exists,
                "provider already existed",
                iam.create_open_id_connect_provider()
                    .url(url)
                    .set_client_id_list(Some(client_ids.clone()))
                    .set_thumbprint_list((!thumbprints.is_empty()).then(|| thumbprints.clone()))
                    .set_tags(Some(iam_tags(tags)))
            ),
            AddProviderAudience {
                provider_arn,
                audience,
            } => write!(
                self,
                AddClientIDToOpenIDConnectProvider,
                |_| false,
                "",
                iam.add_client_id_to_open_id_connect_provider()
                    .open_id_connect_provider_arn(provider_arn)
                    .client_id(audience)
            ),
            RemoveProviderAudience {
                provider_arn,
                audience,
            } => write!(
                self,
                RemoveClientIDFromOpenIDConnectProvider,
                gone,
                "provider already gone",
                iam.remove_client_id_from_open_id_connect_provider()
                    .open_id_connect_provider_arn(provider_arn)
                    .client_id(audience)
            ),
            TagOidcProvider { provider_arn, tags } => write!(
                self,
                TagOpenIDConnectProvider,
                |_| false,
                "",
                iam.tag_open_id_connect_provider()
                    .open_id_connect_provider_arn(provider_arn)
                    .set_tags(Some(iam_tags(tags)))
            ),
            UntagOidcProvider { provider_arn, keys } => write!(
                self,
                UntagOpenIDConnectProvider,
                gone,
                "provider already gone",
                iam.untag_open_id_connect_provider()
                    .open_id_connect_provider_arn(provider_arn)
                    .set_tag_keys(Some(keys.clone()))
            ),
            DeleteOidcProvider { provider_arn } => write!(
                self,
                DeleteOpenIDConnectProvider,
                gone,
                "provider already gone",
                iam.delete_open_id_connect_provider()
                    .open_id_connect_provider_arn(provider_arn)
            ),
            _ => unreachable!("write_iam sends only the provider's writes here"),
        })
    }

    /// A role itself: made, its trust, deleted.
    async fn write_role(&self, action: &IamAction) -> Result<Written, Failure> {
        use IamAction::*;
        let iam = &self.iam;
        Ok(match action {
            CreateRole {
                role_name,
                path,
                trust_policy,
                description,
                max_session_duration,
                permissions_boundary,
                tags,
            } => write!(
                self,
                CreateRole,
                exists,
                "role already existed",
                iam.create_role()
                    .role_name(role_name)
                    .path(path)
                    .assume_role_policy_document(trust_policy.to_string())
                    .set_description(description.clone())
                    .max_session_duration(*max_session_duration)
                    .set_permissions_boundary(permissions_boundary.clone())
                    .set_tags(Some(iam_tags(tags)))
            ),
            RevokeTrust {
                role_name,
                trust_policy,
                baseline,
            } => {
                // The revocation first: a failure to record the baseline must not hold it.
                let done = write!(
                    self,
                    UpdateAssumeRolePolicy,
                    |_| false,
                    "",
                    iam.update_assume_role_policy()
                        .role_name(role_name)
                        .policy_document(trust_policy.to_string())
                );
                if let Some(value) = baseline {
                    let tags =
                        BTreeMap::from([(crate::plan::BASELINE_TAG.to_string(), value.clone())]);
                    write!(
                        self,
                        TagRole,
                        |_| false,
                        "",
                        iam.tag_role()
                            .role_name(role_name)
                            .set_tags(Some(iam_tags(&tags)))
                    );
                }
                done
            }
            UpdateTrustPolicy {
                role_name,
                trust_policy,
            } => write!(
                self,
                UpdateAssumeRolePolicy,
                |_| false,
                "",
                iam.update_assume_role_policy()
                    .role_name(role_name)
                    .policy_document(trust_policy.to_string())
            ),
            DeleteRole { role_name } => write!(
                self,
                DeleteRole,
                gone,
                "role already gone",
                iam.delete_role().role_name(role_name)
            ),
            _ => unreachable!("write_iam sends only a role's making, trust and deletion here"),
        })
    }

    /// A role's settings: description and session length, boundary, tags.
    async fn write_role_settings(&self, action: &IamAction) -> Result<Written, Failure> {
        use IamAction::*;
        let iam = &self.iam;
        Ok(match action {
            UpdateRole {
                role_name,
                description,
                max_session_duration,
            } => write!(
                self,
                UpdateRole,
                |_| false,
                "",
                iam.update_role()
                    .role_name(role_name)
                    .set_description(description.clone())
                    .max_session_duration(*max_session_duration)
            ),
            PutPermissionsBoundary {
                role_name,
                policy_arn,
            } => write!(
                self,
                PutRolePermissionsBoundary,
                |_| false,
                "",
                iam.put_role_permissions_boundary()
                    .role_name(role_name)
                    .permissions_boundary(policy_arn)
            ),
            DeletePermissionsBoundary { role_name } => write!(
                self,
                DeleteRolePermissionsBoundary,
                gone,
                "boundary already gone",
                iam.delete_role_permissions_boundary().role_name(role_name)
            ),
            TagRole { role_name, tags } => write!(
                self,
                TagRole,
                |_| false,
                "",
                iam.tag_role()
                    .role_name(role_name)
                    .set_tags(Some(iam_tags(tags)))
            ),
            UntagRole { role_name, keys } => write!(
                self,
                UntagRole,
                gone,
                "role already gone",
                iam.untag_role()
                    .role_name(role_name)
                    .set_tag_keys(Some(keys.clone()))
            ),
            _ => unreachable!("write_iam sends only a role's settings here"),
        })
    }

    /// The policies on a role: inline (the session denials among them) and managed.
    async fn write_role_policy(&self, action: &IamAction) -> Result<Written, Failure> {
        use IamAction::*;
        let iam = &self.iam;
        Ok(match action {
            PutInlinePolicy { .. } | RevokeSessions { .. } => {
                let (role_name, policy_name, document) =
                    action.inline_policy().expect("writes an inline policy");
                write!(
                    self,
                    PutRolePolicy,
                    |_| false,
                    "",
                    iam.put_role_policy()
                        .role_name(role_name)
                        .policy_name(policy_name)
                        .policy_document(document.to_string())
                )
            }
            DeleteInlinePolicy {
                role_name,
                policy_name,
            } => write!(
                self,
                DeleteRolePolicy,
                gone,
                "policy already gone",
                iam.delete_role_policy()
                    .role_name(role_name)
                    .policy_name(policy_name)
            ),
            AttachManagedPolicy {
                role_name,
                policy_arn,
            } => write!(
                self,
                AttachRolePolicy,
                |_| false,
                "",
                iam.attach_role_policy()
                    .role_name(role_name)
                    .policy_arn(policy_arn)
            ),
            DetachManagedPolicy {
                role_name,
                policy_arn,
            } => write!(
                self,
                DetachRolePolicy,
                gone,
                "policy already detached",
                iam.detach_role_policy()
                    .role_name(role_name)
                    .policy_arn(policy_arn)
            ),
            _ => unreachable!("write_iam sends only the policies on a role here"),
        })
    }

    /// A Lambda function's writes. The planned RevisionId (with `use_revision`) goes on
    /// the first attempt only: a retry may follow our own attempt that did land (its
    /// answer lost), and would then fail as stale.
    async fn write_lambda(
        &self,
        action: &LambdaAction,
        use_revision: bool,
    ) -> Result<Written, Failure> {
        use LambdaAction::*;
        let lambda = &self.lambda;
        let first_attempt = std::sync::atomic::AtomicBool::new(true);
        let revision = |r: &Option<String>| {
            if use_revision && first_attempt.swap(false, std::sync::atomic::Ordering::Relaxed) {
                r.clone()
            } else {
                None
            }
        };
        Ok(match action {
            AddLambdaPermission {
                function_name,
                qualifier,
                statement_id,
                principal,
                lambda_action,
                source_arn,
                source_account,
                revision_id,
            } => write!(
                self,
                AddPermission,
                |f: &Failure| f.is(&["ResourceConflictException"])
                    && f.message.contains("already exists"),
                "statement already existed",
                lambda
                    .add_permission()
                    .function_name(function_name)
                    .set_qualifier(qualifier.clone())
                    .statement_id(statement_id)
                    .principal(principal)
                    .action(lambda_action)
                    .set_source_arn(source_arn.clone())
                    .set_source_account(source_account.clone())
                    .set_revision_id(revision(revision_id))
            ),
            RemoveLambdaPermission {
                function_name,
                qualifier,
                statement_id,
            } => write!(
                self,
                RemovePermission,
                |f: &Failure| f.is(&["ResourceNotFoundException"]),
                "statement already gone",
                lambda
                    .remove_permission()
                    .function_name(function_name)
                    .set_qualifier(qualifier.clone())
                    .statement_id(statement_id)
            ),
            SetExecutionRole {
                function_name,
                role_arn,
                revision_id,
            } => write!(
                self,
                UpdateFunctionConfiguration,
                |_| false,
                "",
                lambda
                    .update_function_configuration()
                    .function_name(function_name)
                    .role(role_arn)
                    .set_revision_id(revision(revision_id))
            ),
            TagFunction { .. } | UntagFunction { .. } => {
                return self.write_function_tag(action).await
            }
        })
    }

    /// The marker tag on a function whose policy trustsync writes to.
    async fn write_function_tag(&self, action: &LambdaAction) -> Result<Written, Failure> {
        use LambdaAction::*;
        let lambda = &self.lambda;
        Ok(match action {
            TagFunction {
                function_arn,
                key,
                value,
            } => write!(
                self,
                TagResource,
                |_| false,
                "",
                lambda
                    .tag_resource()
                    .resource(function_arn)
                    .tags(key, value)
            ),
            UntagFunction { function_arn, key } => write!(
                self,
                UntagResource,
                |f: &Failure| f.is(&["ResourceNotFoundException"]),
                "function already gone",
                lambda.untag_resource().resource(function_arn).tag_keys(key)
            ),
            _ => unreachable!("write_lambda sends only the marker tag's writes here"),
        })
    }
}

fn iam_tags(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| {
            Tag::builder()
                .key(k)
                .value(v)
                .build()
                .expect("key and value are set")
        })
        .collect()
}
