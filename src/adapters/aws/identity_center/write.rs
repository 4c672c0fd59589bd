//! Writing IAM Identity Center: each [`PeopleAction`] as its identity-store and SSO admin
//! requests ([`Write`]: the router in `runtime::writers` sends this client only people's
//! actions).

use aws_sdk_iam::operation::RequestId;
use aws_sdk_ssoadmin::types::PrincipalType;

use super::super::{AwsClients, Operation};
use super::{carries_mark, customer_policy, mark_in, not_adopted, set_tags};
use crate::model::call::{Failure, Written};
use crate::plan::PeopleAction;
use crate::ports::Write;

/// What to attach to a permission set, and what to detach from it.
type AttachDetach<'a, T> = (&'a [T], &'a [T]);

/// "Already exists" on a create.
fn conflict(f: &Failure) -> bool {
    f.is(&["ConflictException"])
}

/// "Not found" on a delete.
fn not_found(f: &Failure) -> bool {
    f.is(&["ResourceNotFoundException"])
}

#[async_trait::async_trait]
impl Write<PeopleAction> for AwsClients {
    /// One people's write, within the client's IAM write concurrency (as every write of
    /// this client's).
    async fn write(&self, action: &PeopleAction, _use_revision: bool) -> Result<Written, Failure> {
        let _slot = self
            .writes
            .iam
            .acquire()
            .await
            .expect("the semaphore is never closed");
        self.write_people(action).await
    }
}

impl AwsClients {
    /// One IAM Identity Center write. Ids the plan could not know (made in the same pass)
    /// are looked up by name; "already exists" on create and "not found" on delete are
    /// success, so a retried pass repeats nothing; asynchronous requests are waited for.
    async fn write_people(&self, action: &PeopleAction) -> Result<Written, Failure> {
        use PeopleAction::*;
        match action {
            CreateIdentityStoreUser { .. } => self.create_user(action).await,
            CreateIdentityStoreGroup { .. } => self.create_group(action).await,
            AddGroupMembers { .. } => self.add_members(action).await,
            RemoveGroupMembers { .. } => self.remove_members(action).await,
            PutPermissionSet { .. } => self.put_permission_set(action).await,
            TagPermissionSet { .. } => self.tag_permission_set(action).await,
            AdoptPermissionSet { .. } => self.adopt_permission_set(action).await,
            AdoptIdentityStoreGroup { .. } => self.adopt_group(action).await,
            DenyPermissionSetSessions { .. } => self.deny_set_sessions(action).await,
            CreateAccountAssignment { .. } => self.create_assignment(action).await,
            DeleteAccountAssignment { .. } => self.delete_assignment(action).await,
        }
    }

    /// A user made in the identity store (one that appeared since the plan read the store is not taken over).
    async fn create_user(&self, action: &PeopleAction) -> Result<Written, Failure> {
        use aws_sdk_identitystore::types::{Email, Name};
        use PeopleAction::*;
        let CreateIdentityStoreUser {
            identity_store_id,
            user_name,
            display_name,
            given_name,
            family_name,
            email,
            ..
        } = action
        else {
            unreachable!("write_people sends only CreateIdentityStoreUser here");
        };
        let name = Name::builder()
            .given_name(given_name)
            .family_name(family_name)
            .build();
        let emails = email.as_ref().map(|e| {
            vec![Email::builder()
                .value(e)
                .r#type("work")
                .primary(true)
                .build()]
        });
        let out = self
            .call(Operation::CreateUser, conflict, || {
                self.identitystore
                    .create_user()
                    .identity_store_id(identity_store_id)
                    .user_name(user_name)
                    .display_name(display_name)
                    .name(name.clone())
                    .set_emails(emails.clone())
                    .send()
            })
            .await?;
        // A user has no mark to tell trustsync's from anyone's: one of that name
        // that appeared since the plan read the store is not taken over.
        let Some(o) = out else {
            return Err(not_adopted(
                Operation::CreateUser,
                format!("an identity-store user named {user_name} appeared after this pass read the store; it is not taken over: the next pass decides whose it is (a conflict unless it is bound to the Entra user, or listed in adoptUsers)"),
            ));
        };
        Ok(self.created(
            ("user", identity_store_id),
            user_name,
            Some((o.user_id(), o.request_id())),
            "user",
        ))
    }

    /// trustsync's group made in the identity store (one found under its name is its own only when it carries the mark).
    async fn create_group(&self, action: &PeopleAction) -> Result<Written, Failure> {
        use PeopleAction::*;
        let CreateIdentityStoreGroup {
            identity_store_id,
            display_name,
            description,
        } = action
        else {
            unreachable!("write_people sends only CreateIdentityStoreGroup here");
        };
        let out = self
            .call(Operation::CreateGroup, conflict, || {
                self.identitystore
                    .create_group()
                    .identity_store_id(identity_store_id)
                    .display_name(display_name)
                    .description(description)
                    .send()
            })
            .await?;
        let Some(o) = out else {
            // Taken: trustsync's own only when it carries the mark (a retry after
            // a lost answer); anyone else's is never written to.
            let id = self
                .unique_id(
                    Operation::GetGroupId,
                    identity_store_id,
                    "displayName",
                    display_name,
                )
                .await?;
            let found = self.describe_group(identity_store_id, &id).await?;
            if !carries_mark(found.description.as_deref(), description) {
                return Err(not_adopted(
                    Operation::CreateGroup,
                    format!("an identity-store group named {display_name} appeared after this pass read the store and lacks trustsync's mark; it is not taken over (nothing is added to it)"),
                ));
            }
            self.remember(("group", identity_store_id), display_name, &id);
            return Ok(Written {
                request_id: None,
                note: Some("the group already existed, with trustsync's mark".into()),
            });
        };
        Ok(self.created(
            ("group", identity_store_id),
            display_name,
            Some((o.group_id(), o.request_id())),
            "group",
        ))
    }

    /// People added to a group, each on their own.
    async fn add_members(&self, action: &PeopleAction) -> Result<Written, Failure> {
        use PeopleAction::*;
        let AddGroupMembers {
            identity_store_id,
            group_name,
            group_id,
            user_names,
            user_ids,
            ..
        } = action
        else {
            unreachable!("write_people sends only AddGroupMembers here");
        };
        let group = match group_id {
            Some(id) => id.clone(),
            None => self.group_id(identity_store_id, group_name).await?,
        };
        // Each person on their own: one whose id cannot be found or whose
        // membership is refused holds nobody else back.
        let mut done = Written::default();
        let mut failed: Vec<(String, Failure)> = Vec::new();
        for user in user_names {
            let user_id = match user_ids.get(user) {
                Some(id) => id.clone(),
                None => match self.user_id(identity_store_id, user).await {
                    Ok(id) => id,
                    Err(f) => {
                        failed.push((user.clone(), f));
                        continue;
                    }
                },
            };
            let w = async {
                Ok::<_, Failure>(write!(
                    self,
                    CreateGroupMembership,
                    conflict,
                    "already a member",
                    self.identitystore
                        .create_group_membership()
                        .identity_store_id(identity_store_id)
                        .group_id(&group)
                        .member_id(aws_sdk_identitystore::types::MemberId::UserId(
                            user_id.clone()
                        ))
                ))
            }
            .await;
            match w {
                Ok(w) => done = done.and(w),
                Err(f) => failed.push((user.clone(), f)),
            }
        }
        if let Some((_, first)) = failed.first() {
            let who: Vec<String> = failed.iter().map(|(u, f)| format!("{u} ({f})")).collect();
            let mut f = first.clone();
            f.message = format!(
                "{} of {} not added: {}; the others were",
                failed.len(),
                user_names.len(),
                who.join("; ")
            );
            return Err(f);
        }
        Ok(done)
    }

    /// Memberships taken out of a group.
    async fn remove_members(&self, action: &PeopleAction) -> Result<Written, Failure> {
        use PeopleAction::*;
        let RemoveGroupMembers {
            identity_store_id,
            memberships,
            ..
        } = action
        else {
            unreachable!("write_people sends only RemoveGroupMembers here");
        };
        let mut done = Written::default();
        for m in memberships {
            let w = write!(
                self,
                DeleteGroupMembership,
                not_found,
                "the membership was already gone",
                self.identitystore
                    .delete_group_membership()
                    .identity_store_id(identity_store_id)
                    .membership_id(&m.membership_id)
            );
            done = done.and(w);
        }
        Ok(done)
    }

    /// A permission set made or updated, its policies and boundary written, and provisioned when it was there before.
    async fn put_permission_set(&self, action: &PeopleAction) -> Result<Written, Failure> {
        use PeopleAction::*;
        let PutPermissionSet {
            instance_arn,
            permission_set_arn,
            name,
            description,
            session_duration,
            inline_policy,
            delete_inline_policy,
            attach_managed_policies,
            detach_managed_policies,
            attach_customer_managed_policies,
            detach_customer_managed_policies,
            put_boundary,
            delete_boundary,
        } = action
        else {
            unreachable!("write_people sends only PutPermissionSet here");
        };
        let (arn, mut done) = match permission_set_arn {
            Some(arn) => {
                let w = write!(
                    self,
                    UpdatePermissionSet,
                    |_: &Failure| false,
                    "",
                    self.ssoadmin
                        .update_permission_set()
                        .instance_arn(instance_arn)
                        .permission_set_arn(arn)
                        .description(description)
                        .session_duration(session_duration)
                );
                (arn.clone(), w)
            }
            None => {
                self.create_permission_set(instance_arn, name, description, session_duration)
                    .await?
            }
        };
        let ps = (instance_arn.as_str(), arn.as_str());
        if let Some(doc) = inline_policy {
            done = done.and(self.put_set_inline(ps, doc).await?);
        }
        if *delete_inline_policy {
            done = done.and(write!(
                self,
                DeleteInlinePolicyFromPermissionSet,
                not_found,
                "there was no inline policy",
                self.ssoadmin
                    .delete_inline_policy_from_permission_set()
                    .instance_arn(instance_arn)
                    .permission_set_arn(&arn)
            ));
        }
        done = self
            .set_set_policies(
                ps,
                done,
                (attach_managed_policies, detach_managed_policies),
                (
                    attach_customer_managed_policies,
                    detach_customer_managed_policies,
                ),
            )
            .await?;
        done = self
            .set_set_boundary(ps, done, put_boundary.as_deref(), *delete_boundary)
            .await?;
        if permission_set_arn.is_some() {
            done = done.and(self.provision(ps).await?);
        }
        Ok(done)
    }

    /// A permission set's managed policies attached and detached, AWS's (by ARN) and then
    /// the customer's (by name and path): each request's outcome added to `done`.
    async fn set_set_policies(
        &self,
        (instance_arn, arn): (&str, &str),
        mut done: Written,
        (attach_managed_policies, detach_managed_policies): AttachDetach<'_, String>,
        (attach_customer_managed_policies, detach_customer_managed_policies): AttachDetach<
            '_,
            (String, String),
        >,
    ) -> Result<Written, Failure> {
        for policy in attach_managed_policies {
            done = done.and(write!(
                self,
                AttachManagedPolicyToPermissionSet,
                conflict,
                "already attached",
                self.ssoadmin
                    .attach_managed_policy_to_permission_set()
                    .instance_arn(instance_arn)
                    .permission_set_arn(arn)
                    .managed_policy_arn(policy)
            ));
        }
        for policy in detach_managed_policies {
            done = done.and(write!(
                self,
                DetachManagedPolicyFromPermissionSet,
                not_found,
                "already detached",
                self.ssoadmin
                    .detach_managed_policy_from_permission_set()
                    .instance_arn(instance_arn)
                    .permission_set_arn(arn)
                    .managed_policy_arn(policy)
            ));
        }
        for (name, path) in attach_customer_managed_policies {
            let r = customer_policy(name, path)?;
            done = done.and(write!(
                self,
                AttachCustomerManagedPolicyReferenceToPermissionSet,
                conflict,
                "already attached",
                self.ssoadmin
                    .attach_customer_managed_policy_reference_to_permission_set()
                    .instance_arn(instance_arn)
                    .permission_set_arn(arn)
                    .customer_managed_policy_reference(r.clone())
            ));
        }
        for (name, path) in detach_customer_managed_policies {
            let r = customer_policy(name, path)?;
            done = done.and(write!(
                self,
                DetachCustomerManagedPolicyReferenceFromPermissionSet,
                not_found,
                "already detached",
                self.ssoadmin
                    .detach_customer_managed_policy_reference_from_permission_set()
                    .instance_arn(instance_arn)
                    .permission_set_arn(arn)
                    .customer_managed_policy_reference(r.clone())
            ));
        }
        Ok(done)
    }

    /// A permission set's boundary put or taken off: the outcome added to `done`.
    async fn set_set_boundary(
        &self,
        (instance_arn, arn): (&str, &str),
        mut done: Written,
        put_boundary: Option<&crate::observed::SetBoundary>,
        delete_boundary: bool,
    ) -> Result<Written, Failure> {
        if let Some(b) = put_boundary {
            let mut boundary = aws_sdk_ssoadmin::types::PermissionsBoundary::builder()
                .set_managed_policy_arn(b.managed_policy_arn.clone());
            if let Some((name, path)) = &b.customer_managed_policy {
                boundary = boundary.customer_managed_policy_reference(customer_policy(name, path)?);
            }
            let boundary = boundary.build();
            done = done.and(write!(
                self,
                PutPermissionsBoundaryToPermissionSet,
                |_: &Failure| false,
                "",
                self.ssoadmin
                    .put_permissions_boundary_to_permission_set()
                    .instance_arn(instance_arn)
                    .permission_set_arn(arn)
                    .permissions_boundary(boundary.clone())
            ));
        }
        if delete_boundary {
            done = done.and(write!(
                self,
                DeletePermissionsBoundaryFromPermissionSet,
                not_found,
                "there was no boundary",
                self.ssoadmin
                    .delete_permissions_boundary_from_permission_set()
                    .instance_arn(instance_arn)
                    .permission_set_arn(arn)
            ));
        }
        Ok(done)
    }

    /// The owner tag put on trustsync's permission set that lacks it.
    async fn tag_permission_set(&self, action: &PeopleAction) -> Result<Written, Failure> {
        use PeopleAction::*;
        let TagPermissionSet {
            instance_arn,
            permission_set_arn,
            tags,
            ..
        } = action
        else {
            unreachable!("write_people sends only TagPermissionSet here");
        };
        let tags = set_tags(tags)?;
        Ok(write!(
            self,
            SsoTagResource,
            |_: &Failure| false,
            "",
            self.ssoadmin
                .tag_resource()
                .instance_arn(instance_arn)
                .resource_arn(permission_set_arn)
                .set_tags(Some(tags.clone()))
        ))
    }

    /// An existing permission set taken over: the owner tag first (every later write to
    /// the set needs it), then trustsync's mark in its description. Its session duration
    /// is sent as it was read: `UpdatePermissionSet` takes both, and the set's role in each
    /// account does not change, so nothing is provisioned.
    async fn adopt_permission_set(&self, action: &PeopleAction) -> Result<Written, Failure> {
        use PeopleAction::*;
        let AdoptPermissionSet {
            instance_arn,
            permission_set_arn,
            tags,
            description,
            session_duration,
            ..
        } = action
        else {
            unreachable!("write_people sends only AdoptPermissionSet here");
        };
        let tags = set_tags(tags)?;
        let tagged = write!(
            self,
            SsoTagResource,
            |_: &Failure| false,
            "",
            self.ssoadmin
                .tag_resource()
                .instance_arn(instance_arn)
                .resource_arn(permission_set_arn)
                .set_tags(Some(tags.clone()))
        );
        Ok(tagged.and(write!(
            self,
            UpdatePermissionSet,
            |_: &Failure| false,
            "",
            self.ssoadmin
                .update_permission_set()
                .instance_arn(instance_arn)
                .permission_set_arn(permission_set_arn)
                .description(description)
                .session_duration(session_duration)
        )))
    }

    /// An existing identity-store group taken over: trustsync's mark in its description
    /// (`UpdateGroup`, attribute path `description` as the Identity Store API reference's
    /// `Group` data type names the attribute).
    async fn adopt_group(&self, action: &PeopleAction) -> Result<Written, Failure> {
        use aws_sdk_identitystore::types::AttributeOperation;
        use aws_smithy_types::Document;
        use PeopleAction::*;
        let AdoptIdentityStoreGroup {
            identity_store_id,
            group_id,
            description,
            ..
        } = action
        else {
            unreachable!("write_people sends only AdoptIdentityStoreGroup here");
        };
        let operation = AttributeOperation::builder()
            .attribute_path("description")
            .attribute_value(Document::String(description.clone()))
            .build()
            .map_err(|e| Failure::permanent(Operation::UpdateGroup.name(), e.to_string()))?;
        Ok(write!(
            self,
            UpdateGroup,
            |_: &Failure| false,
            "",
            self.identitystore
                .update_group()
                .identity_store_id(identity_store_id)
                .group_id(group_id)
                .operations(operation.clone())
        ))
    }

    /// The session denials written into a permission set, and provisioned.
    async fn deny_set_sessions(&self, action: &PeopleAction) -> Result<Written, Failure> {
        use PeopleAction::*;
        let DenyPermissionSetSessions {
            instance_arn,
            permission_set_arn,
            document,
        } = action
        else {
            unreachable!("write_people sends only DenyPermissionSetSessions here");
        };
        let ps = (instance_arn.as_str(), permission_set_arn.as_str());
        Ok(self
            .put_set_inline(ps, document)
            .await?
            .and(self.provision(ps).await?))
    }

    /// A permission set assigned to a group in an account, waited for.
    async fn create_assignment(&self, action: &PeopleAction) -> Result<Written, Failure> {
        use PeopleAction::*;
        let CreateAccountAssignment {
            instance_arn,
            identity_store_id,
            account_id,
            permission_set_name,
            permission_set_arn,
            group_name,
            group_id,
        } = action
        else {
            unreachable!("write_people sends only CreateAccountAssignment here");
        };
        let set = match permission_set_arn {
            Some(arn) => arn.clone(),
            None => {
                self.permission_set_arn(instance_arn, permission_set_name)
                    .await?
            }
        };
        let group = match group_id {
            Some(id) => id.clone(),
            None => self.group_id(identity_store_id, group_name).await?,
        };
        // At most `writeConcurrency.identityCenterAssignments` (15, AWS's quota of
        // outstanding requests) under way, each until its status says done.
        let _slot = self
            .writes
            .assignments
            .acquire()
            .await
            .map_err(|e| Failure::permanent("CreateAccountAssignment", e.to_string()))?;
        let out = self
            .call(
                Operation::CreateAccountAssignment,
                |_| false,
                || {
                    self.ssoadmin
                        .create_account_assignment()
                        .instance_arn(instance_arn)
                        .target_id(account_id)
                        .target_type(aws_sdk_ssoadmin::types::TargetType::AwsAccount)
                        .permission_set_arn(&set)
                        .principal_type(PrincipalType::Group)
                        .principal_id(&group)
                        .send()
                },
            )
            .await?
            .expect("no failure is benign");
        self.wait_assignment(instance_arn, out.account_assignment_creation_status(), true)
            .await?;
        Ok(Written {
            request_id: out.request_id().map(String::from),
            note: None,
        })
    }

    /// A permission set taken away from a user or a group in an account, waited for.
    async fn delete_assignment(&self, action: &PeopleAction) -> Result<Written, Failure> {
        use PeopleAction::*;
        let DeleteAccountAssignment {
            instance_arn,
            account_id,
            permission_set_arn,
            principal_type,
            principal_id,
        } = action
        else {
            unreachable!("write_people sends only DeleteAccountAssignment here");
        };
        let Some(out) = self
            .call(Operation::DeleteAccountAssignment, not_found, || {
                self.ssoadmin
                    .delete_account_assignment()
                    .instance_arn(instance_arn)
                    .target_id(account_id)
                    .target_type(aws_sdk_ssoadmin::types::TargetType::AwsAccount)
                    .permission_set_arn(permission_set_arn)
                    .principal_type(PrincipalType::from(principal_type.as_str()))
                    .principal_id(principal_id)
                    .send()
            })
            .await?
        else {
            return Ok(Written {
                request_id: None,
                note: Some("the assignment was already gone".into()),
            });
        };
        self.wait_assignment(
            instance_arn,
            out.account_assignment_deletion_status(),
            false,
        )
        .await?;
        Ok(Written {
            request_id: out.request_id().map(String::from),
            note: None,
        })
    }
    /// Creates a permission set; one of that name already there (a retried pass) is
    /// looked up instead.
    async fn create_permission_set(
        &self,
        instance_arn: &str,
        name: &str,
        description: &str,
        session_duration: &str,
    ) -> Result<(String, Written), Failure> {
        // The owner tag goes on at creation (the controller's policy allows
        // CreatePermissionSet only with it in the request, and every later write only on
        // a set that carries it): the tag the description's mark stands for.
        let owner = mark_in(description)
            .and_then(crate::plan::people::owner_tag)
            .map(|(k, v)| std::collections::BTreeMap::from([(k.to_string(), v.to_string())]))
            .ok_or_else(|| {
                Failure::permanent(
                    Operation::CreatePermissionSet.name(),
                    format!("the description of permission set {name} carries no trustsync mark to take the owner tag from"),
                )
            })?;
        let tags = set_tags(&owner)?;
        let out = self
            .call(
                Operation::CreatePermissionSet,
                |f: &Failure| f.is(&["ConflictException"]),
                || {
                    self.ssoadmin
                        .create_permission_set()
                        .instance_arn(instance_arn)
                        .name(name)
                        .description(description)
                        .session_duration(session_duration)
                        .set_tags(Some(tags.clone()))
                        .send()
                },
            )
            .await?;
        match out
            .as_ref()
            .and_then(|o| o.permission_set()?.permission_set_arn())
        {
            Some(arn) => {
                self.remember(("set", instance_arn), name, arn);
                Ok((
                    arn.to_string(),
                    Written {
                        request_id: out.as_ref().and_then(|o| o.request_id()).map(String::from),
                        note: None,
                    },
                ))
            }
            None => {
                // Taken: trustsync's own only when it carries the mark (a retry after a lost
                // answer); a set someone else made meanwhile is never written or assigned.
                let sets = self
                    .permission_sets(instance_arn, &super::KnownSets::default())
                    .await?;
                let found = sets.iter().find(|s| s.name.eq_ignore_ascii_case(name));
                match found {
                    Some(set) if carries_mark(set.description.as_deref(), description) => {
                        self.remember(("set", instance_arn), name, &set.arn);
                        Ok((
                            set.arn.clone(),
                            Written {
                                request_id: None,
                                note: Some(
                                    "the permission set already existed, with trustsync's mark"
                                        .into(),
                                ),
                            },
                        ))
                    }
                    _ => Err(not_adopted(
                        Operation::CreatePermissionSet,
                        format!("a permission set named {name} appeared after this pass read the instance and lacks trustsync's mark; it is not taken over (nothing is written to it or assigned)"),
                    )),
                }
            }
        }
    }

    async fn put_set_inline(
        &self,
        (instance_arn, arn): (&str, &str),
        document: &serde_json::Value,
    ) -> Result<Written, Failure> {
        let text = document.to_string();
        Ok(write!(
            self,
            PutInlinePolicyToPermissionSet,
            |_: &Failure| false,
            "",
            self.ssoadmin
                .put_inline_policy_to_permission_set()
                .instance_arn(instance_arn)
                .permission_set_arn(arn)
                .inline_policy(&text)
        ))
    }

    /// What a create wrote: the id it made (remembered by name for the pass) and its
    /// request id; or, when the name was taken (a retry after a lost answer), a note.
    fn created(
        &self,
        key: (&str, &str),
        name: &str,
        made: Option<(&str, Option<&str>)>,
        what: &str,
    ) -> Written {
        match made {
            Some((id, request_id)) => {
                self.remember(key, name, id);
                Written {
                    request_id: request_id.map(String::from),
                    note: None,
                }
            }
            None => Written {
                request_id: None,
                note: Some(format!("the {what} already existed")),
            },
        }
    }
}
