//! IAM Identity Center ids by name: users, groups and permission sets looked up (or made)
//! once per pass and remembered for the rest of it, and the single objects described.

use super::super::{AwsClients, Operation};
use crate::model::call::Failure;
use crate::observed::{IdentityCenterGroup, IdentityCenterUser};

impl AwsClients {
    /// Forgets the ids of the last pass: a pass looks every name up afresh at most once.
    pub fn forget_people_ids(&self) {
        self.people_ids.lock().expect("people ids").clear();
    }

    pub(super) fn remember(&self, (kind, scope): (&str, &str), name: &str, id: &str) {
        self.people_ids.lock().expect("people ids").insert(
            format!("{kind}/{scope}/{}", name.to_lowercase()),
            id.to_string(),
        );
    }

    fn recall(&self, (kind, scope): (&str, &str), name: &str) -> Option<String> {
        self.people_ids
            .lock()
            .expect("people ids")
            .get(&format!("{kind}/{scope}/{}", name.to_lowercase()))
            .cloned()
    }

    /// A group's id by its display name (`GetGroupId`, once per pass).
    pub async fn group_id(&self, store: &str, display_name: &str) -> Result<String, Failure> {
        if let Some(id) = self.recall(("group", store), display_name) {
            return Ok(id);
        }
        let id = self
            .unique_id(Operation::GetGroupId, store, "displayName", display_name)
            .await?;
        self.remember(("group", store), display_name, &id);
        Ok(id)
    }

    /// One group, with its description (trustsync's mark) and without its members.
    pub async fn describe_group(
        &self,
        store: &str,
        id: &str,
    ) -> Result<IdentityCenterGroup, Failure> {
        let g = self
            .read(Operation::DescribeGroup, || {
                self.identitystore
                    .describe_group()
                    .identity_store_id(store)
                    .group_id(id)
                    .send()
            })
            .await?;
        Ok(IdentityCenterGroup {
            id: g.group_id().to_string(),
            display_name: g.display_name().unwrap_or_default().to_string(),
            description: g.description().map(String::from),
            members: Vec::new(),
            holds: None,
        })
    }

    /// One user by id.
    pub async fn describe_user(
        &self,
        store: &str,
        id: &str,
    ) -> Result<IdentityCenterUser, Failure> {
        let u = self
            .read(Operation::DescribeUser, || {
                self.identitystore
                    .describe_user()
                    .identity_store_id(store)
                    .user_id(id)
                    .send()
            })
            .await?;
        Ok(IdentityCenterUser {
            id: u.user_id().to_string(),
            user_name: u.user_name().unwrap_or_default().to_string(),
            display_name: u.display_name().map(String::from),
            external_ids: u
                .external_ids()
                .iter()
                .map(|e| e.id().to_string())
                .collect(),
        })
    }

    /// A user's id by user name (`GetUserId`, once per pass).
    pub async fn user_id(&self, store: &str, user_name: &str) -> Result<String, Failure> {
        if let Some(id) = self.recall(("user", store), user_name) {
            return Ok(id);
        }
        let id = self
            .unique_id(Operation::GetUserId, store, "userName", user_name)
            .await?;
        self.remember(("user", store), user_name, &id);
        Ok(id)
    }

    pub(super) async fn unique_id(
        &self,
        op: Operation,
        store: &str,
        path: &str,
        value: &str,
    ) -> Result<String, Failure> {
        use aws_sdk_identitystore::types::{AlternateIdentifier, UniqueAttribute};
        let attribute = UniqueAttribute::builder()
            .attribute_path(path)
            .attribute_value(aws_smithy_types::Document::String(value.to_string()))
            .build()
            .map_err(|e| Failure::permanent(op.name(), e.to_string()))?;
        let id = AlternateIdentifier::UniqueAttribute(attribute);
        match op {
            Operation::GetGroupId => Ok(self
                .read(op, || {
                    self.identitystore
                        .get_group_id()
                        .identity_store_id(store)
                        .alternate_identifier(id.clone())
                        .send()
                })
                .await?
                .group_id()
                .to_string()),
            _ => Ok(self
                .read(op, || {
                    self.identitystore
                        .get_user_id()
                        .identity_store_id(store)
                        .alternate_identifier(id.clone())
                        .send()
                })
                .await?
                .user_id()
                .to_string()),
        }
    }

    /// A permission set's ARN by name (one made in this pass, or by a lost answer): on a
    /// miss every set is described once and remembered, so a pass of many assignments
    /// lists the instance at most once.
    pub async fn permission_set_arn(
        &self,
        instance_arn: &str,
        name: &str,
    ) -> Result<String, Failure> {
        if let Some(arn) = self.recall(("set", instance_arn), name) {
            return Ok(arn);
        }
        let sets = self
            .permission_sets(instance_arn, &super::KnownSets::default())
            .await?;
        for set in &sets {
            self.remember(("set", instance_arn), &set.name, &set.arn);
        }
        self.recall(("set", instance_arn), name).ok_or_else(|| {
            Failure::permanent(
                "ListPermissionSets",
                format!("no permission set named {name} in {instance_arn}"),
            )
        })
    }
}
