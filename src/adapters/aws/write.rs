//! Writing an account: each planned action as its IAM or Lambda requests.

use std::collections::BTreeMap;

use aws_sdk_iam::operation::RequestId;
use aws_sdk_iam::types::Tag;

use crate::model::call::{Failure, Written};
use crate::plan::{Action, IamAction, LambdaAction};

use super::*;

impl AwsClients {
    /// Performs one action, within the service's write concurrency. `use_revision` passes
    /// the planned `RevisionId` to Lambda.
    pub async fn execute(&self, action: &Action, use_revision: bool) -> Result<Written, Failure> {
        let slots = match action {
            Action::Lambda(_) => &self.writes.lambda,
            Action::Iam(_) | Action::Entra(_) | Action::People(_) => &self.writes.iam,
        };
        let _slot = slots
            .acquire()
            .await
            .expect("the semaphore is never closed");
        self.execute_now(action, use_revision).await
    }

    pub(super) async fn execute_now(
        &self,
        action: &Action,
        use_revision: bool,
    ) -> Result<Written, Failure> {
        match action {
            Action::Iam(a) => self.write_iam(a).await,
            Action::Lambda(a) => self.write_lambda(a, use_revision).await,
            Action::Entra(_) => Err(Failure::permanent(
                action.name(),
                "an Entra write was routed to AWS (a bug: the pass sends these to Microsoft Graph)",
            )),
            Action::People(a) => self.write_people(a).await,
        }
    }

    /// The IAM writes: the account setting, the OIDC provider, roles. Long on purpose:
    /// one arm per IAM action, each a single request with its benign failure; split
    /// further, the table would only be scattered.
    pub(super) async fn write_iam(&self, action: &IamAction) -> Result<Written, Failure> {
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
            DeleteRole { role_name } => write!(
                self,
                DeleteRole,
                gone,
                "role already gone",
                iam.delete_role().role_name(role_name)
            ),
        })
    }

    /// A Lambda function's writes. The planned RevisionId (with `use_revision`) goes on
    /// the first attempt only: a retry may follow our own attempt that did land (its
    /// answer lost), and would then fail as stale.
    // Long on purpose: one arm per Lambda action, each a single request.
    pub(super) async fn write_lambda(
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
        })
    }
}

pub(super) fn iam_tags(tags: &BTreeMap<String, String>) -> Vec<Tag> {
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
