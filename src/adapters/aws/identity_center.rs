//! Reading IAM Identity Center (people): the instance, its identity store's users, groups
//! and memberships, its permission sets, and the account assignments in the accounts in
//! scope. Every request goes through [`AwsClients::paginate`], so through the one error
//! policy; a failed read fails the whole read, never a shorter list. Per-group,
//! per-permission-set and per-account reads go eight at a time, in order.

use aws_sdk_ssoadmin::types::PrincipalType;
use futures::stream::{self, StreamExt, TryStreamExt};

use crate::model::call::Failure;
use crate::observed::{
    AssignedTo, IdentityCenterAssignment, IdentityCenterGroup, IdentityCenterPermissionSet,
    IdentityCenterUser, ObservedIdentityCenter,
};

use super::*;

impl AwsClients {
    /// The instance and its identity store: `want` (an instance ARN) when given, else the
    /// one instance `ListInstances` shows (an organization has at most one organization
    /// instance; an account instance may stand beside it, so two is an error that asks
    /// for `identityCenter.instanceArn`).
    pub async fn identity_center_instance(
        &self,
        want: Option<&str>,
    ) -> Result<(String, String), Failure> {
        let mut found: Vec<(String, String)> = Vec::new();
        self.paginate(
            Operation::ListInstances,
            |token| self.ssoadmin.list_instances().set_next_token(token).send(),
            |page| page.next_token().map(String::from),
            |page| {
                for i in page.instances() {
                    if let (Some(arn), Some(store)) = (i.instance_arn(), i.identity_store_id()) {
                        found.push((arn.to_string(), store.to_string()));
                    }
                }
                Ok(())
            },
        )
        .await?;
        let names = || {
            found
                .iter()
                .map(|(arn, _)| arn.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match want {
            Some(arn) => found.iter().find(|(a, _)| a == arn).cloned().ok_or_else(|| {
                Failure::permanent(
                    "ListInstances",
                    format!(
                        "identityCenter.instanceArn {arn} is not an instance of this account and region (found: {})",
                        names()
                    ),
                )
            }),
            None if found.len() == 1 => Ok(found.remove(0)),
            None if found.is_empty() => Err(Failure::permanent(
                "ListInstances",
                format!(
                    "no IAM Identity Center instance in {}: enable it, or set identityCenter.region",
                    self.region
                ),
            )),
            None => Err(Failure::permanent(
                "ListInstances",
                format!(
                    "{} IAM Identity Center instances ({}): set identityCenter.instanceArn",
                    found.len(),
                    names()
                ),
            )),
        }
    }

    /// Everything of the instance a report of people's access needs, with the account
    /// assignments of `accounts`.
    pub async fn read_identity_center(
        &self,
        want: Option<&str>,
        accounts: &[String],
    ) -> Result<ObservedIdentityCenter, Failure> {
        let (instance_arn, identity_store_id) = self.identity_center_instance(want).await?;
        let store = identity_store_id.as_str();
        let mut users = Vec::new();
        self.paginate(
            Operation::ListUsers,
            |token| {
                self.identitystore
                    .list_users()
                    .identity_store_id(store)
                    .set_next_token(token)
                    .send()
            },
            |page| page.next_token().map(String::from),
            |page| {
                users.extend(page.users().iter().map(|u| IdentityCenterUser {
                    id: u.user_id().to_string(),
                    user_name: u.user_name().unwrap_or_default().to_string(),
                    display_name: u.display_name().map(String::from),
                }));
                Ok(())
            },
        )
        .await?;
        let mut groups = Vec::new();
        self.paginate(
            Operation::ListGroups,
            |token| {
                self.identitystore
                    .list_groups()
                    .identity_store_id(store)
                    .set_next_token(token)
                    .send()
            },
            |page| page.next_token().map(String::from),
            |page| {
                groups.extend(page.groups().iter().map(|g| IdentityCenterGroup {
                    id: g.group_id().to_string(),
                    display_name: g.display_name().unwrap_or_default().to_string(),
                    members: Vec::new(),
                }));
                Ok(())
            },
        )
        .await?;
        // Requests under way at once, in order (the report's order stays the same).
        const AT_ONCE: usize = 8;
        let members: Vec<Vec<String>> = stream::iter(&groups)
            .map(|g| self.group_members(store, &g.id))
            .buffered(AT_ONCE)
            .try_collect()
            .await?;
        for (g, m) in groups.iter_mut().zip(members) {
            g.members = m;
        }
        let mut arns = Vec::new();
        self.paginate(
            Operation::ListPermissionSets,
            |token| {
                self.ssoadmin
                    .list_permission_sets()
                    .instance_arn(&instance_arn)
                    .set_next_token(token)
                    .send()
            },
            |page| page.next_token().map(String::from),
            |page| {
                arns.extend(page.permission_sets().iter().cloned());
                Ok(())
            },
        )
        .await?;
        let permission_sets: Vec<IdentityCenterPermissionSet> = stream::iter(&arns)
            .map(|arn| self.permission_set(&instance_arn, arn))
            .buffered(AT_ONCE)
            .try_collect()
            .await?;
        let pairs: Vec<(&String, &String)> = accounts
            .iter()
            .flat_map(|a| arns.iter().map(move |p| (a, p)))
            .collect();
        let assignments: Vec<Vec<IdentityCenterAssignment>> = stream::iter(pairs)
            .map(|(account, arn)| self.assignments(&instance_arn, account, arn))
            .buffered(AT_ONCE)
            .try_collect()
            .await?;
        let assignments = assignments.into_iter().flatten().collect();
        Ok(ObservedIdentityCenter {
            instance_arn,
            identity_store_id,
            users,
            groups,
            permission_sets,
            assignments,
        })
    }

    /// The user ids of one group's members.
    async fn group_members(&self, store: &str, group_id: &str) -> Result<Vec<String>, Failure> {
        let mut members = Vec::new();
        self.paginate(
            Operation::ListGroupMemberships,
            |token| {
                self.identitystore
                    .list_group_memberships()
                    .identity_store_id(store)
                    .group_id(group_id)
                    .set_next_token(token)
                    .send()
            },
            |page| page.next_token().map(String::from),
            |page| {
                members.extend(
                    page.group_memberships()
                        .iter()
                        .filter_map(|m| m.member_id()?.as_user_id().ok().cloned()),
                );
                Ok(())
            },
        )
        .await?;
        Ok(members)
    }

    /// One permission set's name and session length.
    async fn permission_set(
        &self,
        instance_arn: &str,
        arn: &str,
    ) -> Result<IdentityCenterPermissionSet, Failure> {
        let described = self
            .read(Operation::DescribePermissionSet, || {
                self.ssoadmin
                    .describe_permission_set()
                    .instance_arn(instance_arn)
                    .permission_set_arn(arn)
                    .send()
            })
            .await?;
        let set = described.permission_set();
        Ok(IdentityCenterPermissionSet {
            arn: arn.to_string(),
            name: set.and_then(|s| s.name()).unwrap_or(arn).to_string(),
            session_duration: set.and_then(|s| s.session_duration()).map(String::from),
        })
    }

    /// The assignments of one permission set in one account.
    async fn assignments(
        &self,
        instance_arn: &str,
        account: &str,
        arn: &str,
    ) -> Result<Vec<IdentityCenterAssignment>, Failure> {
        let mut out = Vec::new();
        self.paginate(
            Operation::ListAccountAssignments,
            |token| {
                self.ssoadmin
                    .list_account_assignments()
                    .instance_arn(instance_arn)
                    .account_id(account)
                    .permission_set_arn(arn)
                    .set_next_token(token)
                    .send()
            },
            |page| page.next_token().map(String::from),
            |page| {
                for a in page.account_assignments() {
                    let principal_type = match a.principal_type() {
                        Some(PrincipalType::User) => AssignedTo::User,
                        Some(PrincipalType::Group) => AssignedTo::Group,
                        other => {
                            return Err(Failure::permanent(
                                "ListAccountAssignments",
                                format!("an assignment in {account} names principal type {other:?}, which this release does not know"),
                            ))
                        }
                    };
                    out.push(IdentityCenterAssignment {
                        account: account.to_string(),
                        permission_set_arn: arn.to_string(),
                        principal_type,
                        principal_id: a.principal_id().unwrap_or_default().to_string(),
                    });
                }
                Ok(())
            },
        )
        .await?;
        Ok(out)
    }
}
