//! What the plan asks of each back-end: one [`Action`] per write, nested by the service
//! that performs it ([`IamAction`], [`LambdaAction`], [`EntraAction`], [`PeopleAction`]) so each adapter's
//! match is complete and checked by the compiler. The JSON is flat, as before: the outer
//! enum is untagged and each inner one carries the `action` tag. And what a write does
//! ([`Effect`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::names::{RoleName, StatementId};

mod tag;

/// One write, with everything needed to perform it, by the back-end that performs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Action {
    /// IAM: the OIDC provider, roles, the account's outbound federation.
    Iam(IamAction),
    /// Lambda: resource policies, execution roles, the function marker tag.
    Lambda(LambdaAction),
    /// Microsoft Graph: federated identity credentials on Entra applications.
    Entra(EntraAction),
    /// IAM Identity Center: people's users, groups, permission sets and assignments.
    People(PeopleAction),
}

/// Whether a change adds, changes or removes something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    /// Creates a resource or grants something new.
    Add,
    /// Modifies something in place.
    Change,
    /// Removes a resource or a grant.
    Remove,
}

/// One IAM write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "action",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase"
)]
#[allow(missing_docs)]
pub enum IamAction {
    CreateOidcProvider {
        url: String,
        client_ids: Vec<String>,
        thumbprints: Vec<String>,
        tags: BTreeMap<String, String>,
    },
    AddProviderAudience {
        provider_arn: String,
        audience: String,
    },
    RemoveProviderAudience {
        provider_arn: String,
        audience: String,
    },
    TagOidcProvider {
        provider_arn: String,
        tags: BTreeMap<String, String>,
    },
    UntagOidcProvider {
        provider_arn: String,
        keys: Vec<String>,
    },
    DeleteOidcProvider {
        provider_arn: String,
    },
    CreateRole {
        role_name: RoleName,
        path: String,
        trust_policy: Value,
        description: Option<String>,
        max_session_duration: i32,
        permissions_boundary: Option<String>,
        tags: BTreeMap<String, String>,
    },
    /// A trust policy update that only takes principals away; `baseline` is the removal
    /// baseline tag value to record with it.
    RevokeTrust {
        role_name: RoleName,
        trust_policy: Value,
        baseline: Option<String>,
    },
    UpdateTrustPolicy {
        role_name: RoleName,
        trust_policy: Value,
    },
    /// Writes the role's session-denial policy ([`super::sessions::SESSIONS_POLICY`]) so
    /// that principals leaving its trust lose the sessions they already hold.
    RevokeSessions {
        role_name: RoleName,
        document: Value,
    },
    UpdateRole {
        role_name: RoleName,
        description: Option<String>,
        max_session_duration: i32,
    },
    PutPermissionsBoundary {
        role_name: RoleName,
        policy_arn: String,
    },
    DeletePermissionsBoundary {
        role_name: RoleName,
    },
    PutInlinePolicy {
        role_name: RoleName,
        policy_name: String,
        document: Value,
    },
    DeleteInlinePolicy {
        role_name: RoleName,
        policy_name: String,
    },
    AttachManagedPolicy {
        role_name: RoleName,
        policy_arn: String,
    },
    DetachManagedPolicy {
        role_name: RoleName,
        policy_arn: String,
    },
    TagRole {
        role_name: RoleName,
        tags: BTreeMap<String, String>,
    },
    UntagRole {
        role_name: RoleName,
        keys: Vec<String>,
    },
    DeleteRole {
        role_name: RoleName,
    },
    /// Turns on AWS outbound identity federation for the account (account-wide: every
    /// role allowed `sts:GetWebIdentityToken` can then ask for tokens).
    EnableOutboundFederation {},
}

/// One Lambda write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "action",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase"
)]
#[allow(missing_docs)]
pub enum LambdaAction {
    AddLambdaPermission {
        function_name: String,
        qualifier: Option<String>,
        statement_id: StatementId,
        principal: String,
        lambda_action: String,
        source_arn: Option<String>,
        source_account: Option<String>,
        revision_id: Option<String>,
    },
    RemoveLambdaPermission {
        function_name: String,
        qualifier: Option<String>,
        statement_id: StatementId,
    },
    SetExecutionRole {
        function_name: String,
        role_arn: String,
        revision_id: Option<String>,
    },
    /// Marks a function whose policy trustsync writes to, listing the qualifiers.
    TagFunction {
        function_arn: String,
        key: String,
        value: String,
    },
    UntagFunction {
        function_arn: String,
        key: String,
    },
}

/// One Microsoft Graph write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "action",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase"
)]
#[allow(missing_docs)]
pub enum EntraAction {
    /// A federated identity credential on an Entra application: tokens from `issuer` for
    /// `subject` (an execution role ARN) may act as the application.
    CreateFederatedCredential {
        /// The application's object id.
        application_id: String,
        app_id: String,
        name: String,
        issuer: String,
        subject: String,
        audiences: Vec<String>,
        description: String,
    },
    UpdateFederatedCredential {
        application_id: String,
        app_id: String,
        credential_id: String,
        name: String,
        issuer: String,
        subject: String,
        audiences: Vec<String>,
        description: String,
    },
    DeleteFederatedCredential {
        application_id: String,
        app_id: String,
        credential_id: String,
        name: String,
    },
}

/// One IAM Identity Center write. Ids the plan cannot know (a user, group or permission
/// set created in the same pass) are looked up by name when the write is made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "action",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase"
)]
#[allow(missing_docs)]
pub enum PeopleAction {
    /// An identity-store user for an Entra user: no password, no invitation; they sign in
    /// through Entra.
    CreateIdentityStoreUser {
        identity_store_id: String,
        user_name: String,
        display_name: String,
        given_name: String,
        family_name: String,
        email: Option<String>,
        /// The Entra user it is made for: recorded in the audit log, which binds the
        /// identity-store user name to this person from then on.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        entra_object_id: Option<String>,
    },
    /// trustsync's group for an AccessAssignment (its description carries the mark).
    CreateIdentityStoreGroup {
        identity_store_id: String,
        display_name: String,
        description: String,
    },
    AddGroupMembers {
        identity_store_id: String,
        group_name: String,
        group_id: Option<String>,
        user_names: Vec<String>,
        /// Identity-store user ids already known (by user name as written above): the
        /// write uses them rather than looking the name up again (whose spelling may
        /// differ from the store's in case).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        user_ids: BTreeMap<String, String>,
        /// Whom each joining user name belongs to (lower-cased user name -> Entra object
        /// id): recorded in the audit log, the binding later passes hold the name to.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        bindings: BTreeMap<String, String>,
    },
    /// Takes people out of trustsync's group: a revocation. `baseline`: the removal
    /// baseline to record with it (`count@unix-time`), as a role's revocation does.
    RemoveGroupMembers {
        identity_store_id: String,
        group_name: String,
        group_id: String,
        memberships: Vec<RemovedMember>,
        baseline: Option<String>,
    },
    /// Creates or updates trustsync's permission set, then provisions it where it is
    /// provisioned (an update reaches no account before that).
    PutPermissionSet {
        instance_arn: String,
        permission_set_arn: Option<String>,
        name: String,
        description: String,
        session_duration: String,
        /// The inline policy to write, when it changes.
        inline_policy: Option<Value>,
        /// The inline policy to delete (none is wanted any more).
        delete_inline_policy: bool,
        attach_managed_policies: Vec<String>,
        detach_managed_policies: Vec<String>,
        /// (name, path)
        attach_customer_managed_policies: Vec<(String, String)>,
        detach_customer_managed_policies: Vec<(String, String)>,
        /// The boundary to put, when it changes.
        put_boundary: Option<Box<crate::observed::SetBoundary>>,
        /// The boundary to take off (the document names none any more).
        delete_boundary: bool,
    },
    /// Puts the owner tag on trustsync's permission set (its description carries the
    /// mark) that lacks it: one made before sets were tagged at creation. Every write to a
    /// set, its assignments and the revocations included, is allowed only on a set that
    /// carries the tag, so this goes first. The controller's own policy cannot tag a set
    /// that lacks the tag (docs/operations.md: a one-time grant, as for adopting a role).
    TagPermissionSet {
        instance_arn: String,
        permission_set_arn: String,
        name: String,
        tags: BTreeMap<String, String>,
    },
    /// Takes over an existing permission set no trustsync instance marks, for an
    /// AccessAssignment with `adopt: true`: the owner tag (`TagResource`, which the
    /// controller's policy allows on a set without the owner tag only while a document
    /// adopts), then trustsync's mark in its description (`UpdatePermissionSet`, with the
    /// session duration it has). Its policies and assignments stay as they are: what the
    /// document changes of them is a change of its own, once the set is trustsync's.
    AdoptPermissionSet {
        instance_arn: String,
        permission_set_arn: String,
        name: String,
        tags: BTreeMap<String, String>,
        description: String,
        session_duration: String,
    },
    /// Takes over an existing identity-store group no trustsync instance marks, named as
    /// the AccessAssignment that says `adopt: true`: trustsync's mark in its description
    /// (`UpdateGroup`). The group keeps its id, its members and its assignments.
    AdoptIdentityStoreGroup {
        identity_store_id: String,
        group_id: String,
        display_name: String,
        description: String,
    },
    /// Writes the permission set's inline policy with denials for the sessions departed
    /// people hold, and provisions it: a revocation.
    DenyPermissionSetSessions {
        instance_arn: String,
        permission_set_arn: String,
        document: Value,
    },
    CreateAccountAssignment {
        instance_arn: String,
        identity_store_id: String,
        account_id: String,
        permission_set_name: String,
        permission_set_arn: Option<String>,
        group_name: String,
        group_id: Option<String>,
    },
    /// Takes a permission set away from a user or a group in an account: a revocation.
    DeleteAccountAssignment {
        instance_arn: String,
        account_id: String,
        permission_set_arn: String,
        /// `USER` or `GROUP`.
        principal_type: String,
        principal_id: String,
    },
}

/// A member taken out of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RemovedMember {
    pub membership_id: String,
    pub user_id: String,
    pub user_name: String,
}

impl From<PeopleAction> for Action {
    fn from(a: PeopleAction) -> Self {
        Action::People(a)
    }
}

impl From<IamAction> for Action {
    fn from(a: IamAction) -> Self {
        Action::Iam(a)
    }
}

impl From<LambdaAction> for Action {
    fn from(a: LambdaAction) -> Self {
        Action::Lambda(a)
    }
}

impl From<EntraAction> for Action {
    fn from(a: EntraAction) -> Self {
        Action::Entra(a)
    }
}

impl Action {
    /// Execution order: lower first. Additions go forward, removals in reverse. One table
    /// for every back-end: the order crosses them.
    pub fn phase(&self) -> u8 {
        use EntraAction::*;
        use IamAction::*;
        use LambdaAction::*;
        match self {
            Action::Iam(a) => match a {
                // Tags first: adopting a role tags it before its trust changes (the
                // least-privilege policy allows trust updates on owner-tagged roles only).
                TagRole { .. } => 1,
                RevokeTrust { .. } => 5,
                RevokeSessions { .. } => 6,
                CreateOidcProvider { .. } => 10,
                TagOidcProvider { .. } => 11,
                AddProviderAudience { .. } => 12,
                EnableOutboundFederation { .. } => 15,
                CreateRole { .. } => 20,
                UpdateTrustPolicy { .. } | UpdateRole { .. } | PutPermissionsBoundary { .. } => 30,
                PutInlinePolicy { .. } | AttachManagedPolicy { .. } => 40,
                DetachManagedPolicy { .. } | DeleteInlinePolicy { .. } => 70,
                DeletePermissionsBoundary { .. } | UntagRole { .. } => 71,
                DeleteRole { .. } => 80,
                RemoveProviderAudience { .. } => 90,
                UntagOidcProvider { .. } => 91,
                DeleteOidcProvider { .. } => 92,
            },
            Action::Lambda(a) => match a {
                RemoveLambdaPermission { .. } => 50,
                TagFunction { .. } => 55,
                AddLambdaPermission { .. } | SetExecutionRole { .. } => 60,
                UntagFunction { .. } => 65,
            },
            // Entra's trust follows the role: granted once the role and its token policy
            // exist, taken away before anything else of the function's access.
            Action::Entra(a) => match a {
                CreateFederatedCredential { .. } | UpdateFederatedCredential { .. } => 62,
                DeleteFederatedCredential { .. } => 45,
            },
            // People's changes are applied in one sequence (they carry no account): the
            // revocations first, then what the grants depend on.
            Action::People(a) => match a {
                // An adoption marks (and tags) the group and set first: every later write
                // to the set needs its owner tag, and a pass cut short after it leaves
                // them trustsync's, so the next pass picks up where it stopped.
                PeopleAction::TagPermissionSet { .. }
                | PeopleAction::AdoptPermissionSet { .. }
                | PeopleAction::AdoptIdentityStoreGroup { .. } => 2,
                PeopleAction::DeleteAccountAssignment { .. } => 3,
                PeopleAction::RemoveGroupMembers { .. } => 4,
                PeopleAction::DenyPermissionSetSessions { .. } => 6,
                PeopleAction::CreateIdentityStoreUser { .. } => 16,
                PeopleAction::CreateIdentityStoreGroup { .. } => 17,
                PeopleAction::AddGroupMembers { .. } => 18,
                PeopleAction::PutPermissionSet { .. } => 19,
                PeopleAction::CreateAccountAssignment { .. } => 21,
            },
        }
    }

    /// The inline policy an action writes: role, policy name and document (a policy of
    /// the mapping's, or the role's session denials).
    pub fn inline_policy(&self) -> Option<(&RoleName, &str, &Value)> {
        match self {
            Action::Iam(a) => a.inline_policy(),
            _ => None,
        }
    }

    /// Whether the action writes to Lambda.
    pub fn is_lambda(&self) -> bool {
        matches!(self, Action::Lambda(_))
    }

    /// Whether the action only takes access away (a trust policy's departed members, an
    /// Entra credential no function wants): tried every pass and whatever failed before
    /// it, never waiting out a back-off.
    pub fn is_revocation(&self) -> bool {
        matches!(
            self,
            Action::Iam(IamAction::RevokeTrust { .. } | IamAction::RevokeSessions { .. })
                | Action::Entra(EntraAction::DeleteFederatedCredential { .. })
                | Action::People(
                    PeopleAction::RemoveGroupMembers { .. }
                        | PeopleAction::DenyPermissionSetSessions { .. }
                        | PeopleAction::DeleteAccountAssignment { .. }
                )
        )
    }

    /// Whether the action writes to Entra (Microsoft Graph) rather than AWS.
    pub fn is_entra(&self) -> bool {
        matches!(self, Action::Entra(_))
    }

    /// Whether the action writes to IAM Identity Center.
    pub fn is_people(&self) -> bool {
        matches!(self, Action::People(_))
    }

    /// The Lambda function an action writes to: its writes stay in order (one RevisionId
    /// chain per function).
    pub fn lambda_function(&self) -> Option<&str> {
        use LambdaAction::*;
        let Action::Lambda(a) = self else {
            return None;
        };
        match a {
            AddLambdaPermission { function_name, .. }
            | RemoveLambdaPermission { function_name, .. }
            | SetExecutionRole { function_name, .. } => Some(function_name),
            TagFunction { function_arn, .. } | UntagFunction { function_arn, .. } => {
                crate::model::arn::ArnParts::parse(function_arn)?.function_name()
            }
        }
    }

    /// Add, change or remove.
    pub fn effect(&self) -> Effect {
        use EntraAction::*;
        use IamAction::*;
        use LambdaAction::*;
        match self {
            Action::Iam(a) => match a {
                CreateOidcProvider { .. }
                | CreateRole { .. }
                | AttachManagedPolicy { .. }
                | AddProviderAudience { .. }
                | EnableOutboundFederation { .. } => Effect::Add,
                DeleteOidcProvider { .. }
                | DeleteRole { .. }
                | DetachManagedPolicy { .. }
                | DeleteInlinePolicy { .. }
                | DeletePermissionsBoundary { .. }
                | RemoveProviderAudience { .. }
                | RevokeTrust { .. }
                | RevokeSessions { .. }
                | UntagRole { .. } => Effect::Remove,
                TagOidcProvider { .. }
                | UntagOidcProvider { .. }
                | UpdateTrustPolicy { .. }
                | UpdateRole { .. }
                | PutPermissionsBoundary { .. }
                | PutInlinePolicy { .. }
                | TagRole { .. } => Effect::Change,
            },
            Action::Lambda(a) => match a {
                AddLambdaPermission { .. } => Effect::Add,
                RemoveLambdaPermission { .. } => Effect::Remove,
                SetExecutionRole { .. } | TagFunction { .. } | UntagFunction { .. } => {
                    Effect::Change
                }
            },
            Action::Entra(a) => match a {
                CreateFederatedCredential { .. } => Effect::Add,
                UpdateFederatedCredential { .. } => Effect::Change,
                DeleteFederatedCredential { .. } => Effect::Remove,
            },
            Action::People(a) => match a {
                PeopleAction::CreateIdentityStoreUser { .. }
                | PeopleAction::CreateIdentityStoreGroup { .. }
                | PeopleAction::AddGroupMembers { .. }
                | PeopleAction::CreateAccountAssignment { .. } => Effect::Add,
                PeopleAction::PutPermissionSet {
                    permission_set_arn: None,
                    ..
                } => Effect::Add,
                PeopleAction::PutPermissionSet { .. }
                | PeopleAction::TagPermissionSet { .. }
                | PeopleAction::AdoptPermissionSet { .. }
                | PeopleAction::AdoptIdentityStoreGroup { .. } => Effect::Change,
                PeopleAction::RemoveGroupMembers { .. }
                | PeopleAction::DenyPermissionSetSessions { .. }
                | PeopleAction::DeleteAccountAssignment { .. } => Effect::Remove,
            },
        }
    }

    /// The action's name, as in the JSON output (`update-trust-policy`): the `action` tag
    /// serde writes for it, read from serde itself so the two cannot drift apart.
    pub fn name(&self) -> &'static str {
        tag::of(self)
    }
}

impl IamAction {
    /// The inline policy the action writes: role, policy name and document.
    pub fn inline_policy(&self) -> Option<(&RoleName, &str, &Value)> {
        match self {
            IamAction::PutInlinePolicy {
                role_name,
                policy_name,
                document,
            } => Some((role_name, policy_name, document)),
            IamAction::RevokeSessions {
                role_name,
                document,
            } => Some((role_name, super::SESSIONS_POLICY, document)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_stays_flat_and_reads_back_into_its_back_end() {
        let a: Action = IamAction::DeleteRole {
            role_name: "deployer".into(),
        }
        .into();
        let json = serde_json::to_value(&a).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"action": "delete-role", "roleName": "deployer"})
        );
        assert_eq!(serde_json::from_value::<Action>(json).unwrap(), a);
        let l: Action = serde_json::from_value(serde_json::json!({
            "action": "untag-function",
            "functionArn": "arn:aws:lambda:eu-west-1:111122223333:function:f",
            "key": "k",
        }))
        .unwrap();
        assert!(l.is_lambda() && l.lambda_function() == Some("f"));
        assert!(serde_json::from_value::<Action>(serde_json::json!({"action": "nope"})).is_err());
    }

    /// An instance of each variant of `E`, built from serde's own list of its tags: each
    /// field missing is added holding its own name, and a name a field cannot hold is
    /// replaced by the empty value serde asks for.
    fn every_variant<E: serde::de::DeserializeOwned>() -> Vec<(String, E)> {
        let unknown = serde_json::from_value::<E>(serde_json::json!({"action": "?"}))
            .err()
            .unwrap()
            .to_string();
        let (_, listed) = unknown.split_once("expected one of").unwrap();
        let tags: Vec<&str> = listed.split('`').skip(1).step_by(2).collect();
        assert!(!tags.is_empty(), "{unknown}");
        let mut out = Vec::new();
        for tag in tags {
            let mut doc = serde_json::json!({"action": tag});
            let built = loop {
                let err = match serde_json::from_value::<E>(doc.clone()) {
                    Ok(e) => break e,
                    Err(e) => e.to_string(),
                };
                let quoted = |after: &str| {
                    let (_, rest) = err.split_once(after)?;
                    Some(rest.split(['`', '"']).next()?.to_string())
                };
                if let Some(field) = quoted("missing field `") {
                    doc[field.as_str()] = Value::String(field.clone());
                    continue;
                }
                let field = quoted("invalid type: string \"").expect(&err);
                let empty = if err.contains("sequence") || err.contains("tuple") {
                    serde_json::json!([])
                } else if err.contains("map") || err.contains("struct") {
                    serde_json::json!({})
                } else if err.contains("bool") {
                    serde_json::json!(false)
                } else if err.contains("i32") || err.contains("integer") {
                    serde_json::json!(0)
                } else {
                    panic!("{tag}: {err}")
                };
                doc[field.as_str()] = empty;
            };
            out.push((tag.to_string(), built));
        }
        out
    }

    #[test]
    fn every_actions_name_is_the_action_tag_of_its_json() {
        let mut all: Vec<(String, Action)> = Vec::new();
        all.extend(
            every_variant::<IamAction>()
                .into_iter()
                .map(|(t, a)| (t, a.into())),
        );
        all.extend(
            every_variant::<LambdaAction>()
                .into_iter()
                .map(|(t, a)| (t, Action::Lambda(a))),
        );
        all.extend(
            every_variant::<EntraAction>()
                .into_iter()
                .map(|(t, a)| (t, Action::Entra(a))),
        );
        all.extend(
            every_variant::<PeopleAction>()
                .into_iter()
                .map(|(t, a)| (t, Action::People(a))),
        );
        assert_eq!(
            all.len(),
            40,
            "{:?}",
            all.iter().map(|(t, _)| t).collect::<Vec<_>>()
        );
        for (tag, action) in &all {
            let json = serde_json::to_value(action).unwrap();
            assert_eq!(action.name(), json["action"], "{action:?}");
            assert_eq!(action.name(), tag);
            // Asked again: the same interned name.
            assert!(std::ptr::eq(action.name(), action.name()));
        }
        // Names that are in audit logs, metrics and plans stay as they were.
        let names: Vec<&str> = all.iter().map(|(_, a)| a.name()).collect();
        for known in [
            "create-oidc-provider",
            "revoke-trust",
            "revoke-sessions",
            "update-trust-policy",
            "enable-outbound-federation",
            "add-lambda-permission",
            "create-federated-credential",
            "deny-permission-set-sessions",
            "delete-account-assignment",
        ] {
            assert!(names.contains(&known), "{known}");
        }
    }
}
