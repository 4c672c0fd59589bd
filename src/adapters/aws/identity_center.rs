//! Reading IAM Identity Center (people): the instance, its identity store's users, groups
//! and memberships, its permission sets, and the account assignments in the accounts in
//! scope. Every request goes through [`AwsClients::paginate`], so through the one error
//! policy; a failed read fails the whole read, never a shorter list. Per-group,
//! per-permission-set and per-account reads go eight at a time, in order.

use aws_sdk_iam::operation::RequestId;
use aws_sdk_ssoadmin::types::PrincipalType;
use futures::stream::{self, StreamExt, TryStreamExt};

use crate::model::call::{Failure, Written};
use crate::observed::{
    AssignedTo, GroupMembership, IdentityCenterAssignment, IdentityCenterGroup,
    IdentityCenterPermissionSet, IdentityCenterUser, ObservedIdentityCenter, PermissionSetPolicies,
    SetBoundary,
};
use crate::plan::PeopleAction;

use super::*;

/// Per-group, per-set and per-account reads under way at once, in order (a report's
/// order stays the same).
const AT_ONCE: usize = 8;

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

    /// The instance as a pass or a report needs it, with the account assignments of
    /// `accounts`. `marked`: trustsync's mark, for a pass: members, policies and
    /// assignments are then read for the groups and permission sets whose description
    /// carries it, and for no other (a report, `None`, reads them all, without policies).
    pub async fn read_identity_center(
        &self,
        want: Option<&str>,
        accounts: &[String],
        marked: Option<&str>,
    ) -> Result<ObservedIdentityCenter, Failure> {
        let wanted = |description: Option<&String>| match marked {
            None => true,
            Some(mark) => description.is_some_and(|d| d.contains(mark)),
        };
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
                users.extend(page.users().iter().map(|u| {
                    IdentityCenterUser {
                        id: u.user_id().to_string(),
                        user_name: u.user_name().unwrap_or_default().to_string(),
                        display_name: u.display_name().map(String::from),
                        external_ids: u
                            .external_ids()
                            .iter()
                            .map(|e| e.id().to_string())
                            .collect(),
                    }
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
                    description: g.description().map(String::from),
                    members: Vec::new(),
                }));
                Ok(())
            },
        )
        .await?;
        let read: Vec<usize> = (0..groups.len())
            .filter(|i| wanted(groups[*i].description.as_ref()))
            .collect();
        let members: Vec<Vec<GroupMembership>> = stream::iter(&read)
            .map(|i| self.group_members(store, &groups[*i].id))
            .buffered(AT_ONCE)
            .try_collect()
            .await?;
        for (i, m) in read.into_iter().zip(members) {
            groups[i].members = m;
        }
        let mut permission_sets = self.permission_sets(&instance_arn).await?;
        let arns: Vec<String> = permission_sets
            .iter()
            .filter(|p| wanted(p.description.as_ref()))
            .map(|p| p.arn.clone())
            .collect();
        if marked.is_some() {
            // With their tags: a set trustsync made before sets were tagged at creation
            // lacks the owner tag, which every write to it needs.
            let policies: Vec<PermissionSetPolicies> = stream::iter(&arns)
                .map(|arn| async {
                    let mut p = self.permission_set_policies(&instance_arn, arn).await?;
                    p.tags = Some(self.permission_set_tags(&instance_arn, arn).await?);
                    Ok::<_, Failure>(p)
                })
                .buffered(AT_ONCE)
                .try_collect()
                .await?;
            for (arn, p) in arns.iter().zip(policies) {
                if let Some(set) = permission_sets.iter_mut().find(|s| &s.arn == arn) {
                    set.policies = Some(p);
                }
            }
        }
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

    /// One group's user members, with their membership ids.
    pub async fn group_members(
        &self,
        store: &str,
        group_id: &str,
    ) -> Result<Vec<GroupMembership>, Failure> {
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
                members.extend(page.group_memberships().iter().filter_map(|m| {
                    Some(GroupMembership {
                        user_id: m.member_id()?.as_user_id().ok()?.clone(),
                        membership_id: m.membership_id().to_string(),
                    })
                }));
                Ok(())
            },
        )
        .await?;
        Ok(members)
    }

    /// Every permission set of the instance, described (name, session length,
    /// description), eight at a time, in order.
    async fn permission_sets(
        &self,
        instance_arn: &str,
    ) -> Result<Vec<IdentityCenterPermissionSet>, Failure> {
        let mut arns = Vec::new();
        self.paginate(
            Operation::ListPermissionSets,
            |token| {
                self.ssoadmin
                    .list_permission_sets()
                    .instance_arn(instance_arn)
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
        stream::iter(arns)
            .map(|arn| async move { self.permission_set(instance_arn, &arn).await })
            .buffered(AT_ONCE)
            .try_collect()
            .await
    }

    /// One permission set's name and session length.
    pub async fn permission_set(
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
            description: set.and_then(|s| s.description()).map(String::from),
            policies: None,
        })
    }

    /// One permission set's inline policy alone (the fast path: its session denials).
    pub async fn permission_set_inline(
        &self,
        instance_arn: &str,
        arn: &str,
    ) -> Result<Option<serde_json::Value>, Failure> {
        let inline = self
            .read(Operation::GetInlinePolicyForPermissionSet, || {
                self.ssoadmin
                    .get_inline_policy_for_permission_set()
                    .instance_arn(instance_arn)
                    .permission_set_arn(arn)
                    .send()
            })
            .await?;
        match inline.inline_policy() {
            None | Some("") => Ok(None),
            Some(text) => Ok(Some(serde_json::from_str(text).map_err(|e| {
                Failure::permanent(
                    "GetInlinePolicyForPermissionSet",
                    format!("the inline policy of {arn} is not JSON: {e}"),
                )
            })?)),
        }
    }

    /// One permission set's tags (`ListTagsForResource`, every page).
    pub async fn permission_set_tags(
        &self,
        instance_arn: &str,
        arn: &str,
    ) -> Result<std::collections::BTreeMap<String, String>, Failure> {
        let mut tags = std::collections::BTreeMap::new();
        self.paginate(
            Operation::SsoListTagsForResource,
            |token| {
                self.ssoadmin
                    .list_tags_for_resource()
                    .instance_arn(instance_arn)
                    .resource_arn(arn)
                    .set_next_token(token)
                    .send()
            },
            |page| page.next_token().map(String::from),
            |page| {
                tags.extend(
                    page.tags()
                        .iter()
                        .map(|t| (t.key().to_string(), t.value().to_string())),
                );
                Ok(())
            },
        )
        .await?;
        Ok(tags)
    }

    /// One permission set's inline policy, AWS managed policies, customer-managed policy
    /// references and permissions boundary.
    pub async fn permission_set_policies(
        &self,
        instance_arn: &str,
        arn: &str,
    ) -> Result<PermissionSetPolicies, Failure> {
        let inline_policy = self.permission_set_inline(instance_arn, arn).await?;
        let mut out = PermissionSetPolicies {
            inline_policy,
            ..PermissionSetPolicies::default()
        };
        self.paginate(
            Operation::ListManagedPoliciesInPermissionSet,
            |token| {
                self.ssoadmin
                    .list_managed_policies_in_permission_set()
                    .instance_arn(instance_arn)
                    .permission_set_arn(arn)
                    .set_next_token(token)
                    .send()
            },
            |page| page.next_token().map(String::from),
            |page| {
                out.managed_policies.extend(
                    page.attached_managed_policies()
                        .iter()
                        .filter_map(|p| p.arn().map(String::from)),
                );
                Ok(())
            },
        )
        .await?;
        self.paginate(
            Operation::ListCustomerManagedPolicyReferencesInPermissionSet,
            |token| {
                self.ssoadmin
                    .list_customer_managed_policy_references_in_permission_set()
                    .instance_arn(instance_arn)
                    .permission_set_arn(arn)
                    .set_next_token(token)
                    .send()
            },
            |page| page.next_token().map(String::from),
            |page| {
                out.customer_managed_policies.extend(
                    page.customer_managed_policy_references()
                        .iter()
                        .map(|r| (r.name().to_string(), r.path().unwrap_or("/").to_string())),
                );
                Ok(())
            },
        )
        .await?;
        // None attached is ResourceNotFoundException.
        let boundary = self
            .call(
                Operation::GetPermissionsBoundaryForPermissionSet,
                |f: &Failure| f.is(&["ResourceNotFoundException"]),
                || {
                    self.ssoadmin
                        .get_permissions_boundary_for_permission_set()
                        .instance_arn(instance_arn)
                        .permission_set_arn(arn)
                        .send()
                },
            )
            .await?;
        out.boundary = boundary
            .as_ref()
            .and_then(|b| b.permissions_boundary())
            .map(|b| SetBoundary {
                managed_policy_arn: b.managed_policy_arn().map(String::from),
                customer_managed_policy: b
                    .customer_managed_policy_reference()
                    .map(|r| (r.name().to_string(), r.path().unwrap_or("/").to_string())),
            });
        Ok(out)
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

/// How long a write waits for Identity Center's asynchronous provisioning (account
/// assignments, permission sets) before it counts as failed: it is retried next pass.
const PROVISIONING_POLLS: u32 = 60;

/// How an asynchronous Identity Center request ended, as its status says.
enum Provisioning {
    /// Done (or the answer carried no status: nothing to wait for).
    Done,
    /// Under way: ask again with this request id.
    Pending(String),
}

fn provisioning(
    op: &str,
    status: Option<&aws_sdk_ssoadmin::types::StatusValues>,
    request_id: Option<&str>,
    failure: Option<&str>,
) -> Result<Provisioning, Failure> {
    use aws_sdk_ssoadmin::types::StatusValues;
    match (status, request_id) {
        (Some(StatusValues::Failed), _) => Err(Failure::permanent(
            op,
            format!(
                "IAM Identity Center reports FAILED: {}",
                failure.unwrap_or("no reason given")
            ),
        )),
        (Some(StatusValues::InProgress), Some(id)) => Ok(Provisioning::Pending(id.to_string())),
        _ => Ok(Provisioning::Done),
    }
}

impl AwsClients {
    /// One IAM Identity Center write. Ids the plan could not know (made in the same pass)
    /// are looked up by name; "already exists" on create and "not found" on delete are
    /// success, so a retried pass repeats nothing; asynchronous requests are waited for.
    pub(super) async fn write_people(&self, action: &PeopleAction) -> Result<Written, Failure> {
        use aws_sdk_identitystore::types::{Email, Name};
        use PeopleAction::*;
        let conflict = |f: &Failure| f.is(&["ConflictException"]);
        let not_found = |f: &Failure| f.is(&["ResourceNotFoundException"]);
        Ok(match action {
            CreateIdentityStoreUser {
                identity_store_id,
                user_name,
                display_name,
                given_name,
                family_name,
                email,
                ..
            } => {
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
                self.created(
                    ("user", identity_store_id),
                    user_name,
                    Some((o.user_id(), o.request_id())),
                    "user",
                )
            }
            CreateIdentityStoreGroup {
                identity_store_id,
                display_name,
                description,
            } => {
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
                self.created(
                    ("group", identity_store_id),
                    display_name,
                    Some((o.group_id(), o.request_id())),
                    "group",
                )
            }
            AddGroupMembers {
                identity_store_id,
                group_name,
                group_id,
                user_names,
                user_ids,
                ..
            } => {
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
                    let who: Vec<String> =
                        failed.iter().map(|(u, f)| format!("{u} ({f})")).collect();
                    let mut f = first.clone();
                    f.message = format!(
                        "{} of {} not added: {}; the others were",
                        failed.len(),
                        user_names.len(),
                        who.join("; ")
                    );
                    return Err(f);
                }
                done
            }
            RemoveGroupMembers {
                identity_store_id,
                memberships,
                ..
            } => {
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
                done
            }
            PutPermissionSet {
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
            } => {
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
                        self.create_permission_set(
                            instance_arn,
                            name,
                            description,
                            session_duration,
                        )
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
                for policy in attach_managed_policies {
                    done = done.and(write!(
                        self,
                        AttachManagedPolicyToPermissionSet,
                        conflict,
                        "already attached",
                        self.ssoadmin
                            .attach_managed_policy_to_permission_set()
                            .instance_arn(instance_arn)
                            .permission_set_arn(&arn)
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
                            .permission_set_arn(&arn)
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
                            .permission_set_arn(&arn)
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
                            .permission_set_arn(&arn)
                            .customer_managed_policy_reference(r.clone())
                    ));
                }
                if let Some(b) = put_boundary {
                    let mut boundary = aws_sdk_ssoadmin::types::PermissionsBoundary::builder()
                        .set_managed_policy_arn(b.managed_policy_arn.clone());
                    if let Some((name, path)) = &b.customer_managed_policy {
                        boundary = boundary
                            .customer_managed_policy_reference(customer_policy(name, path)?);
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
                            .permission_set_arn(&arn)
                            .permissions_boundary(boundary.clone())
                    ));
                }
                if *delete_boundary {
                    done = done.and(write!(
                        self,
                        DeletePermissionsBoundaryFromPermissionSet,
                        not_found,
                        "there was no boundary",
                        self.ssoadmin
                            .delete_permissions_boundary_from_permission_set()
                            .instance_arn(instance_arn)
                            .permission_set_arn(&arn)
                    ));
                }
                if permission_set_arn.is_some() {
                    done = done.and(self.provision(ps).await?);
                }
                done
            }
            TagPermissionSet {
                instance_arn,
                permission_set_arn,
                tags,
                ..
            } => {
                let tags = set_tags(tags)?;
                write!(
                    self,
                    SsoTagResource,
                    |_: &Failure| false,
                    "",
                    self.ssoadmin
                        .tag_resource()
                        .instance_arn(instance_arn)
                        .resource_arn(permission_set_arn)
                        .set_tags(Some(tags.clone()))
                )
            }
            DenyPermissionSetSessions {
                instance_arn,
                permission_set_arn,
                document,
            } => {
                let ps = (instance_arn.as_str(), permission_set_arn.as_str());
                self.put_set_inline(ps, document)
                    .await?
                    .and(self.provision(ps).await?)
            }
            CreateAccountAssignment {
                instance_arn,
                identity_store_id,
                account_id,
                permission_set_name,
                permission_set_arn,
                group_name,
                group_id,
            } => {
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
                let _slot =
                    self.writes.assignments.acquire().await.map_err(|e| {
                        Failure::permanent("CreateAccountAssignment", e.to_string())
                    })?;
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
                Written {
                    request_id: out.request_id().map(String::from),
                    note: None,
                }
            }
            DeleteAccountAssignment {
                instance_arn,
                account_id,
                permission_set_arn,
                principal_type,
                principal_id,
            } => {
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
                Written {
                    request_id: out.request_id().map(String::from),
                    note: None,
                }
            }
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
                let sets = self.permission_sets(instance_arn).await?;
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

    /// Provisions a permission set to every account it is provisioned in, and waits: a
    /// change to a set reaches no account's role before this.
    async fn provision(&self, (instance_arn, arn): (&str, &str)) -> Result<Written, Failure> {
        // At most `writeConcurrency.identityCenterProvisions` (3, AWS's quota) at once.
        let _slot = self
            .writes
            .provisions
            .acquire()
            .await
            .map_err(|e| Failure::permanent("ProvisionPermissionSet", e.to_string()))?;
        let out = self
            .call(
                Operation::ProvisionPermissionSet,
                |_| false,
                || {
                    self.ssoadmin
                        .provision_permission_set()
                        .instance_arn(instance_arn)
                        .permission_set_arn(arn)
                        .target_type(
                            aws_sdk_ssoadmin::types::ProvisionTargetType::AllProvisionedAccounts,
                        )
                        .send()
                },
            )
            .await?
            .expect("no failure is benign");
        let status = out.permission_set_provisioning_status();
        let mut state = provisioning(
            "ProvisionPermissionSet",
            status.and_then(|s| s.status()),
            status.and_then(|s| s.request_id()),
            status.and_then(|s| s.failure_reason()),
        )?;
        for _ in 0..PROVISIONING_POLLS {
            let Provisioning::Pending(id) = &state else {
                return Ok(Written {
                    request_id: out.request_id().map(String::from),
                    note: None,
                });
            };
            tokio::time::sleep(Duration::from_secs(1)).await;
            let d = self
                .read(Operation::DescribePermissionSetProvisioningStatus, || {
                    self.ssoadmin
                        .describe_permission_set_provisioning_status()
                        .instance_arn(instance_arn)
                        .provision_permission_set_request_id(id)
                        .send()
                })
                .await?;
            let s = d.permission_set_provisioning_status();
            state = provisioning(
                "ProvisionPermissionSet",
                s.and_then(|s| s.status()),
                s.and_then(|s| s.request_id()).or(Some(id)),
                s.and_then(|s| s.failure_reason()),
            )?;
        }
        Err(Failure::permanent(
            "ProvisionPermissionSet",
            format!("still in progress after {PROVISIONING_POLLS}s; the next pass looks again"),
        ))
    }

    /// Waits for an account assignment's creation or deletion to finish.
    /// `first`: the status the request answered with.
    async fn wait_assignment(
        &self,
        instance_arn: &str,
        first: Option<&aws_sdk_ssoadmin::types::AccountAssignmentOperationStatus>,
        creation: bool,
    ) -> Result<(), Failure> {
        let op = if creation {
            "CreateAccountAssignment"
        } else {
            "DeleteAccountAssignment"
        };
        let mut state = provisioning(
            op,
            first.and_then(|s| s.status()),
            first.and_then(|s| s.request_id()),
            first.and_then(|s| s.failure_reason()),
        )?;
        for _ in 0..PROVISIONING_POLLS {
            let Provisioning::Pending(id) = &state else {
                return Ok(());
            };
            tokio::time::sleep(Duration::from_secs(1)).await;
            let status = if creation {
                self.read(Operation::DescribeAccountAssignmentCreationStatus, || {
                    self.ssoadmin
                        .describe_account_assignment_creation_status()
                        .instance_arn(instance_arn)
                        .account_assignment_creation_request_id(id)
                        .send()
                })
                .await?
                .account_assignment_creation_status()
                .cloned()
            } else {
                self.read(Operation::DescribeAccountAssignmentDeletionStatus, || {
                    self.ssoadmin
                        .describe_account_assignment_deletion_status()
                        .instance_arn(instance_arn)
                        .account_assignment_deletion_request_id(id)
                        .send()
                })
                .await?
                .account_assignment_deletion_status()
                .cloned()
            };
            state = provisioning(
                op,
                status.as_ref().and_then(|s| s.status()),
                status.as_ref().and_then(|s| s.request_id()).or(Some(id)),
                status.as_ref().and_then(|s| s.failure_reason()),
            )?;
        }
        Err(Failure::permanent(
            op,
            format!("still in progress after {PROVISIONING_POLLS}s; the next pass looks again"),
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

    /// Forgets the ids of the last pass: a pass looks every name up afresh at most once.
    pub fn forget_people_ids(&self) {
        self.people_ids.lock().expect("people ids").clear();
    }

    fn remember(&self, (kind, scope): (&str, &str), name: &str, id: &str) {
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

    async fn unique_id(
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
        let sets = self.permission_sets(instance_arn).await?;
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

/// trustsync's mark (`[trustsync key=value]`) as a description it writes carries it.
fn mark_in(ours: &str) -> Option<&str> {
    let start = ours.find("[trustsync ")?;
    let end = start + ours[start..].find(']')?;
    Some(&ours[start..=end])
}

/// Whether an object found under a name trustsync was creating is its own: its
/// description carries the mark trustsync's own description does.
fn carries_mark(found: Option<&str>, ours: &str) -> bool {
    match (found, mark_in(ours)) {
        (Some(found), Some(mark)) => found.contains(mark),
        _ => false,
    }
}

/// A create that found the name taken by an object that is not trustsync's.
fn not_adopted(operation: Operation, message: String) -> Failure {
    let mut f = Failure::permanent(operation.name(), format!("conflict: {message}"));
    f.code = Some("ConflictException".into());
    f
}

/// Tags as IAM Identity Center takes them.
fn set_tags(
    tags: &std::collections::BTreeMap<String, String>,
) -> Result<Vec<aws_sdk_ssoadmin::types::Tag>, Failure> {
    tags.iter()
        .map(|(k, v)| {
            aws_sdk_ssoadmin::types::Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(|e| Failure::permanent("Tag", e.to_string()))
        })
        .collect()
}

fn customer_policy(
    name: &str,
    path: &str,
) -> Result<aws_sdk_ssoadmin::types::CustomerManagedPolicyReference, Failure> {
    aws_sdk_ssoadmin::types::CustomerManagedPolicyReference::builder()
        .name(name)
        .path(path)
        .build()
        .map_err(|e| Failure::permanent("CustomerManagedPolicyReference", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::{carries_mark, mark_in};

    #[test]
    fn only_an_object_carrying_trustsyncs_own_mark_is_taken_over() {
        let set = "Payments engineers [trustsync trustsync.dev/owner=prod]";
        let group = "[trustsync trustsync.dev/owner=prod]: AccessAssignment payments";
        assert_eq!(mark_in(set), Some("[trustsync trustsync.dev/owner=prod]"));
        assert!(
            carries_mark(Some(set), group),
            "a retry after a lost answer"
        );
        assert!(carries_mark(Some(group), set));
        assert!(
            !carries_mark(Some("Payments engineers"), set),
            "made by someone else"
        );
        assert!(!carries_mark(None, set), "no description");
        assert!(
            !carries_mark(Some("x [trustsync trustsync.dev/owner=staging]"), set),
            "another instance's"
        );
        assert!(
            !carries_mark(Some(set), "no mark in ours"),
            "nothing to compare"
        );
    }
}
