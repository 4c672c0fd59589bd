//! Where the permission set is assigned: to the group in each selected account, and
//! nowhere else; trustsync's sets and groups no document wants.

use std::collections::BTreeSet;

use super::{group_resource, marked, People, Wanted};
use crate::observed::{
    AssignedTo, IdentityCenterAssignment, IdentityCenterGroup, IdentityCenterPermissionSet,
};
use crate::plan::{Action, Change, Notice, NoticeKind, PeopleAction};

impl People<'_> {
    /// The set assigned to the group in each selected account; anything else of the set
    /// taken away.
    pub(super) fn assignments(
        &mut self,
        w: &Wanted,
        set: Option<&IdentityCenterPermissionSet>,
        group: Option<&IdentityCenterGroup>,
    ) {
        let instance_arn = self.i.observed.instance_arn.clone();
        let name = w.mapping.as_str().to_string();
        let spec = &w.spec.permission_set;
        for account in &w.accounts {
            let have = match (set, group) {
                (Some(s), Some(g)) => self.i.observed.assignments.iter().any(|a| {
                    &a.account == account
                        && a.permission_set_arn == s.arn
                        && a.principal_type == AssignedTo::Group
                        && a.principal_id == g.id
                }),
                _ => false,
            };
            if have {
                continue;
            }
            let resource = format!(
                "{}@{account}",
                set.map_or_else(
                    || format!("{instance_arn}/permissionSet/{}", spec.name),
                    |s| s.arn.clone()
                )
            );
            self.push(
                PeopleAction::CreateAccountAssignment {
                    instance_arn: instance_arn.clone(),
                    identity_store_id: self.i.observed.identity_store_id.clone(),
                    account_id: account.clone(),
                    permission_set_name: spec.name.clone(),
                    permission_set_arn: set.map(|s| s.arn.clone()),
                    group_name: name.clone(),
                    group_id: group.map(|g| g.id.clone()),
                },
                resource,
                w,
                format!(
                    "assign permission set {} to group {name} in {account}",
                    spec.name
                ),
            );
        }
        self.unwanted_assignments(w, set, group);
    }

    /// trustsync's set assigned where the document does not say: to anyone but its group,
    /// or in an account it does not select.
    pub(super) fn unwanted_assignments(
        &mut self,
        w: &Wanted,
        set: Option<&IdentityCenterPermissionSet>,
        group: Option<&IdentityCenterGroup>,
    ) {
        let Some(set) = set else {
            return;
        };
        let accounts: BTreeSet<&String> = if w.blocked {
            BTreeSet::new()
        } else {
            w.accounts.iter().collect()
        };
        for a in self
            .i
            .observed
            .assignments
            .iter()
            .filter(|a| a.permission_set_arn == set.arn)
        {
            let ours = a.principal_type == AssignedTo::Group
                && group.is_some_and(|g| g.id == a.principal_id);
            if ours && (accounts.contains(&a.account) || w.blocked) {
                continue;
            }
            let why = if ours {
                format!("the document no longer selects account {}", a.account)
            } else {
                format!("assigned to a {} the document does not name; trustsync's permission set is granted through its group only", kind_of(a.principal_type))
            };
            self.push_delete(a, set, Some(w), why);
        }
    }

    pub(super) fn push_delete(
        &mut self,
        a: &IdentityCenterAssignment,
        set: &IdentityCenterPermissionSet,
        w: Option<&Wanted>,
        why: String,
    ) {
        let action = PeopleAction::DeleteAccountAssignment {
            instance_arn: self.i.observed.instance_arn.clone(),
            account_id: a.account.clone(),
            permission_set_arn: set.arn.clone(),
            principal_type: match a.principal_type {
                AssignedTo::User => "USER".into(),
                AssignedTo::Group => "GROUP".into(),
            },
            principal_id: a.principal_id.clone(),
        };
        self.plan.changes.push(Change::new(
            Action::People(action),
            format!("{}@{}", set.arn, a.account),
            w.map(|w| w.mapping.as_str()),
            why,
        ));
    }

    /// trustsync's permission sets and groups no document wants: reported, and with prune
    /// the sets are taken away from every account.
    pub(super) fn orphans(&mut self) {
        let wanted_sets: BTreeSet<String> = self
            .i
            .wanted
            .iter()
            .map(|w| w.spec.permission_set.name.to_lowercase())
            .collect();
        let wanted_groups: BTreeSet<String> = self
            .i
            .wanted
            .iter()
            .map(|w| w.mapping.as_str().to_lowercase())
            .collect();
        let obs = self.i.observed;
        for s in obs
            .permission_sets
            .iter()
            .filter(|s| marked(s.description.as_deref(), self.i.mark))
        {
            if wanted_sets.contains(&s.name.to_lowercase()) {
                continue;
            }
            let assigned: Vec<_> = obs
                .assignments
                .iter()
                .filter(|a| a.permission_set_arn == s.arn)
                .collect();
            if self.i.prune {
                if !assigned.is_empty() {
                    self.tag_set(s, None);
                }
                for a in assigned {
                    self.push_delete(
                        a,
                        s,
                        None,
                        format!(
                            "permission set {} is in no AccessAssignment any more (prune)",
                            s.name
                        ),
                    );
                }
            } else {
                self.plan.notices.push(Notice {
                    kind: NoticeKind::Orphan,
                    account: None,
                    resource: s.arn.clone(),
                    message: format!("trustsync's permission set {} is in no AccessAssignment any more ({} assignment(s) left); enable prune to take it away", s.name, assigned.len()),
                });
            }
        }
        for g in obs
            .groups
            .iter()
            .filter(|g| marked(g.description.as_deref(), self.i.mark))
        {
            if !wanted_groups.contains(&g.display_name.to_lowercase()) {
                self.plan.notices.push(Notice {
                    kind: NoticeKind::Orphan,
                    account: None,
                    resource: group_resource(&obs.identity_store_id, Some(&g.id), &g.display_name),
                    message: format!("trustsync's group {} is in no AccessAssignment any more ({} member(s)); its permission set's assignments go with prune", g.display_name, g.members.len()),
                });
            }
        }
    }
}

fn kind_of(t: AssignedTo) -> &'static str {
    match t {
        AssignedTo::User => "user",
        AssignedTo::Group => "group",
    }
}
