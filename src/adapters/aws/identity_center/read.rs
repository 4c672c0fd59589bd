//! Reading IAM Identity Center (people): the instance, its identity store's users, groups
//! and memberships, its permission sets, and the account assignments in the accounts in
//! scope. Every request goes through [`AwsClients::paginate`], so through the one error
//! policy; a failed read fails the whole read, never a shorter list. Per-group,
//! per-permission-set and per-account reads go eight at a time, in order.

use std::collections::{BTreeMap, BTreeSet};

use crate::ports::try_at_once;
use aws_sdk_ssoadmin::types::PrincipalType;

use super::super::{AwsClients, Operation};
use crate::model::call::Failure;
use crate::observed::{
    AssignedTo, GroupHolds, GroupMembership, IdentityCenterAssignment, IdentityCenterGroup,
    IdentityCenterPermissionSet, IdentityCenterUser, ObservedIdentityCenter, PermissionSetPolicies,
    SetBoundary,
};

/// What a pass reads besides trustsync's own groups and permission sets: those an
/// AccessAssignment with `adopt: true` may take over, by ASCII-lower-cased name (a group
/// named as the document, the document's set), as the planner compares them.
#[derive(Debug, Clone, Default)]
pub struct Adoptable {
    pub groups: BTreeSet<String>,
    pub sets: BTreeSet<String>,
}

/// What a pass may take as read of permission sets instead of asking again, by ARN: what
/// the controller's last full read of each showed (`runtime::set_cache`). `sets`: as
/// described (name, description, session duration), an owned one with its policies and
/// tags; `assignments`: an owned set's assignments in the pass's accounts.
#[derive(Debug, Clone, Default)]
pub struct KnownSets {
    pub sets: BTreeMap<String, IdentityCenterPermissionSet>,
    pub assignments: BTreeMap<String, Vec<IdentityCenterAssignment>>,
}

/// Per-group, per-set and per-account reads under way at once, in order (a report's
/// order stays the same).
const AT_ONCE: usize = 8;

/// What a read takes in: in a pass, what carries trustsync's mark (`marked`) and the
/// unmarked groups and sets an adopting document names; in a report (`None`), everything.
struct Reading<'a> {
    marked: Option<&'a str>,
    adoptable: &'a Adoptable,
}

impl Reading<'_> {
    fn carries(&self, description: Option<&String>) -> bool {
        match self.marked {
            None => true,
            Some(mark) => description.is_some_and(|d| d.contains(mark)),
        }
    }

    /// Unmarked, named by an adopting document, in a pass.
    fn to_adopt(&self, names: &BTreeSet<String>, name: &str, description: Option<&String>) -> bool {
        self.marked.is_some()
            && !self.carries(description)
            && names.contains(&name.to_ascii_lowercase())
    }

    fn adopts_group(&self, g: &IdentityCenterGroup) -> bool {
        self.to_adopt(
            &self.adoptable.groups,
            &g.display_name,
            g.description.as_ref(),
        )
    }

    fn adopts_set(&self, s: &IdentityCenterPermissionSet) -> bool {
        self.to_adopt(&self.adoptable.sets, &s.name, s.description.as_ref())
    }
}

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
        self.read_identity_center_adopting(
            want,
            accounts,
            marked,
            (&Adoptable::default(), &KnownSets::default()),
        )
        .await
    }

    /// As [`Self::read_identity_center`], and in a pass (`marked`) the unmarked groups and
    /// sets `adoptable` names as well, with what deciding their adoption needs: a group's
    /// members and every permission set assigned to it (in any account), a set's policies,
    /// tags, assignments and the accounts it is provisioned in beyond `accounts`. What
    /// `known` holds of a set is taken as read (the caller leaves out what may not be).
    ///
    /// The identity store and the permission sets are read side by side: AWS budgets them
    /// apart (each identity-store API on its own, the SSO admin APIs together).
    pub async fn read_identity_center_adopting(
        &self,
        want: Option<&str>,
        accounts: &[String],
        marked: Option<&str>,
        (adoptable, known): (&Adoptable, &KnownSets),
    ) -> Result<ObservedIdentityCenter, Failure> {
        let reading = Reading { marked, adoptable };
        let (instance_arn, identity_store_id) = self.identity_center_instance(want).await?;
        let store = identity_store_id.as_str();
        let wanted = |g: &IdentityCenterGroup| {
            reading.carries(g.description.as_ref()) || reading.adopts_group(g)
        };
        let (users, mut groups, (permission_sets, assignments)) = futures::try_join!(
            self.users(store),
            self.groups(store, &wanted),
            self.sets_of_pass(&instance_arn, accounts, &reading, known),
        )?;
        for g in groups.iter_mut().filter(|g| reading.adopts_group(g)) {
            g.holds = Some(self.group_holds(&instance_arn, &g.id).await);
        }
        Ok(ObservedIdentityCenter {
            instance_arn,
            identity_store_id,
            users,
            groups,
            permission_sets,
            assignments,
        })
    }

    /// Every permission set of the instance, described; the policies and tags of those the
    /// pass reads (`reading`) and the accounts an adoptable one is provisioned in; their
    /// assignments in `accounts`. What `known` holds is taken as read.
    async fn sets_of_pass(
        &self,
        instance_arn: &str,
        accounts: &[String],
        reading: &Reading<'_>,
        known: &KnownSets,
    ) -> Result<
        (
            Vec<IdentityCenterPermissionSet>,
            Vec<IdentityCenterAssignment>,
        ),
        Failure,
    > {
        let mut permission_sets = self.permission_sets(instance_arn, known).await?;
        let adopting: Vec<String> = permission_sets
            .iter()
            .filter(|p| reading.adopts_set(p))
            .map(|p| p.arn.clone())
            .collect();
        let arns: Vec<String> = permission_sets
            .iter()
            .filter(|p| reading.carries(p.description.as_ref()) || adopting.contains(&p.arn))
            .map(|p| p.arn.clone())
            .collect();
        if reading.marked.is_some() {
            let unknown: Vec<String> = arns
                .iter()
                .filter(|a| known.sets.get(*a).is_none_or(|s| s.policies.is_none()))
                .cloned()
                .collect();
            self.add_policies(instance_arn, &mut permission_sets, &unknown)
                .await?;
        }
        for set in permission_sets
            .iter_mut()
            .filter(|p| adopting.contains(&p.arn))
        {
            let reach = self.provisioned_in(instance_arn, &set.arn).await?;
            if let Some(p) = set.policies.as_mut() {
                p.provisioned_elsewhere = Some(
                    reach
                        .into_iter()
                        .filter(|a| !accounts.contains(a))
                        .collect(),
                );
            }
        }
        let (taken, unknown): (Vec<String>, Vec<String>) = arns
            .into_iter()
            .partition(|a| known.assignments.contains_key(a));
        let mut assignments = self
            .assignments_of(instance_arn, accounts, &unknown)
            .await?;
        assignments.extend(taken.iter().flat_map(|a| known.assignments[a].clone()));
        Ok((permission_sets, assignments))
    }

    /// Every permission set assigned to a group, in every account
    /// (`ListAccountAssignmentsForPrincipal`). AWS answers it from the management account
    /// only (its API reference): a failure is kept as why the group's holdings are unknown,
    /// which refuses its adoption and holds nothing else back.
    async fn group_holds(&self, instance_arn: &str, group_id: &str) -> GroupHolds {
        let mut held = Vec::new();
        let read = self
            .paginate(
                Operation::ListAccountAssignmentsForPrincipal,
                |token| {
                    self.ssoadmin
                        .list_account_assignments_for_principal()
                        .instance_arn(instance_arn)
                        .principal_id(group_id)
                        .principal_type(PrincipalType::Group)
                        .set_next_token(token)
                        .send()
                },
                |page| page.next_token().map(String::from),
                |page| {
                    held.extend(page.account_assignments().iter().map(|a| {
                        IdentityCenterAssignment {
                            account: a.account_id().unwrap_or_default().to_string(),
                            permission_set_arn: a
                                .permission_set_arn()
                                .unwrap_or_default()
                                .to_string(),
                            principal_type: AssignedTo::Group,
                            principal_id: group_id.to_string(),
                        }
                    }));
                    Ok(())
                },
            )
            .await;
        match read {
            Ok(()) => GroupHolds::Read(held),
            Err(f) => GroupHolds::Unreadable(f.to_string()),
        }
    }

    /// The accounts a permission set is provisioned in
    /// (`ListAccountsForProvisionedPermissionSet`, every page).
    async fn provisioned_in(&self, instance_arn: &str, arn: &str) -> Result<Vec<String>, Failure> {
        let mut accounts = Vec::new();
        self.paginate(
            Operation::ListAccountsForProvisionedPermissionSet,
            |token| {
                self.ssoadmin
                    .list_accounts_for_provisioned_permission_set()
                    .instance_arn(instance_arn)
                    .permission_set_arn(arn)
                    .set_next_token(token)
                    .send()
            },
            |page| page.next_token().map(String::from),
            |page| {
                accounts.extend(page.account_ids().iter().cloned());
                Ok(())
            },
        )
        .await?;
        Ok(accounts)
    }

    /// Every user of the identity store.
    async fn users(&self, store: &str) -> Result<Vec<IdentityCenterUser>, Failure> {
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
        Ok(users)
    }

    /// Every group of the identity store; with its members when `wanted` says so.
    async fn groups(
        &self,
        store: &str,
        wanted: &impl Fn(&IdentityCenterGroup) -> bool,
    ) -> Result<Vec<IdentityCenterGroup>, Failure> {
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
                    holds: None,
                }));
                Ok(())
            },
        )
        .await?;
        let read: Vec<usize> = (0..groups.len()).filter(|i| wanted(&groups[*i])).collect();
        let members: Vec<Vec<GroupMembership>> = try_at_once(
            read.iter()
                .map(|i| self.group_members(store, &groups[*i].id)),
            AT_ONCE,
        )
        .await?;
        for (i, m) in read.into_iter().zip(members) {
            groups[i].members = m;
        }
        Ok(groups)
    }

    /// The policies of the permission sets `arns`, onto their sets.
    async fn add_policies(
        &self,
        instance_arn: &str,
        permission_sets: &mut [IdentityCenterPermissionSet],
        arns: &[String],
    ) -> Result<(), Failure> {
        // With their tags: a set trustsync made before sets were tagged at creation
        // lacks the owner tag, which every write to it needs.
        let policies: Vec<PermissionSetPolicies> = try_at_once(
            arns.iter().map(|arn| async move {
                let mut p = self.permission_set_policies(instance_arn, arn).await?;
                p.tags = Some(self.permission_set_tags(instance_arn, arn).await?);
                Ok::<_, Failure>(p)
            }),
            AT_ONCE,
        )
        .await?;
        for (arn, p) in arns.iter().zip(policies) {
            if let Some(set) = permission_sets.iter_mut().find(|s| &s.arn == arn) {
                set.policies = Some(p);
            }
        }
        Ok(())
    }

    /// The assignments of the permission sets `arns` in `accounts`, account by account.
    async fn assignments_of(
        &self,
        instance_arn: &str,
        accounts: &[String],
        arns: &[String],
    ) -> Result<Vec<IdentityCenterAssignment>, Failure> {
        let pairs: Vec<(&String, &String)> = accounts
            .iter()
            .flat_map(|a| arns.iter().map(move |p| (a, p)))
            .collect();
        let assignments: Vec<Vec<IdentityCenterAssignment>> = try_at_once(
            pairs
                .into_iter()
                .map(|(account, arn)| self.assignments(instance_arn, account, arn)),
            AT_ONCE,
        )
        .await?;
        Ok(assignments.into_iter().flatten().collect())
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
    /// description), eight at a time, in order; what `known` holds as it holds it.
    pub(super) async fn permission_sets(
        &self,
        instance_arn: &str,
        known: &KnownSets,
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
        try_at_once(
            arns.into_iter().map(|arn| async move {
                match known.sets.get(&arn) {
                    Some(set) => Ok(set.clone()),
                    None => self.permission_set(instance_arn, &arn).await,
                }
            }),
            AT_ONCE,
        )
        .await
    }

    /// The permission sets `arns` read in full, as a pass reads trustsync's own: described,
    /// with their policies and tags, and their assignments in `accounts`. A set deleted
    /// meanwhile is left out.
    pub async fn read_sets_in_full(
        &self,
        instance_arn: &str,
        arns: &[String],
        accounts: &[String],
    ) -> Result<
        (
            Vec<IdentityCenterPermissionSet>,
            Vec<IdentityCenterAssignment>,
        ),
        Failure,
    > {
        let described: Vec<Option<IdentityCenterPermissionSet>> = try_at_once(
            arns.iter().map(|arn| async move {
                match self.permission_set(instance_arn, arn).await {
                    Ok(set) => Ok(Some(set)),
                    Err(f) if f.is(&["ResourceNotFoundException"]) => Ok(None),
                    Err(f) => Err(f),
                }
            }),
            AT_ONCE,
        )
        .await?;
        let mut sets: Vec<IdentityCenterPermissionSet> = described.into_iter().flatten().collect();
        let found: Vec<String> = sets.iter().map(|s| s.arn.clone()).collect();
        self.add_policies(instance_arn, &mut sets, &found).await?;
        let assignments = self.assignments_of(instance_arn, accounts, &found).await?;
        Ok((sets, assignments))
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
