//! The group's membership: users to create, the group itself, who joins and who leaves.

use std::collections::{BTreeMap, BTreeSet};

use super::{group_resource, Members, People, Person, Wanted};
use crate::observed::IdentityCenterGroup;
use crate::plan::{PeopleAction, Removal, RemovedMember};

impl<'a> People<'a> {
    /// Users to create, the group, members to add and remove. Returns the members removed.
    pub(super) fn members(
        &mut self,
        w: &Wanted,
        group: Option<&'a IdentityCenterGroup>,
        wanted: &BTreeMap<String, Person>,
        may_keep: &BTreeSet<String>,
    ) -> Vec<RemovedMember> {
        let current = self.current_members(group);
        let removed: Vec<RemovedMember> = current
            .iter()
            .filter(|(u, _)| !wanted.contains_key(*u) && !may_keep.contains(*u))
            .map(|(_, m)| m.clone())
            .collect();
        if let (Some(g), false) = (group, removed.is_empty()) {
            self.remove_members(w, g, current.len(), &removed);
        }
        if w.blocked {
            return removed;
        }
        // New users, then the group, then who joins it.
        self.create_users(w, wanted);
        if group.is_none() {
            let store = self.store().to_string();
            let name = w.mapping.as_str().to_string();
            self.push(
                PeopleAction::CreateIdentityStoreGroup {
                    identity_store_id: store.clone(),
                    display_name: name.clone(),
                    description: format!("{}: AccessAssignment {name}", self.i.mark),
                },
                group_resource(&store, None, &name),
                w,
                "AccessAssignment is new".into(),
            );
        }
        self.add_members(w, group, wanted, &current);
        removed
    }

    /// The group's members now, by lower-cased user name (those whose user is listed).
    fn current_members(
        &self,
        group: Option<&IdentityCenterGroup>,
    ) -> BTreeMap<String, RemovedMember> {
        let by_id: BTreeMap<&str, &str> = self
            .i
            .observed
            .users
            .iter()
            .map(|u| (u.id.as_str(), u.user_name.as_str()))
            .collect();
        group
            .map(|g| {
                g.members
                    .iter()
                    .filter_map(|m| {
                        let user = by_id.get(m.user_id.as_str())?;
                        Some((
                            user.to_lowercase(),
                            RemovedMember {
                                membership_id: m.membership_id.clone(),
                                user_id: m.user_id.clone(),
                                user_name: user.to_string(),
                            },
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The departed members taken out of the group: a revocation, weighed against the
    /// group's baseline.
    fn remove_members(
        &mut self,
        w: &Wanted,
        g: &IdentityCenterGroup,
        current: usize,
        removed: &[RemovedMember],
    ) {
        let store = self.store().to_string();
        let name = w.mapping.as_str().to_string();
        let departed: Vec<String> = removed.iter().map(|r| r.user_name.clone()).collect();
        let reason = departure_reason(w, &departed);
        let resource = group_resource(&store, Some(&g.id), &name);
        let (baseline, record) = self.removal_baseline(&resource, current);
        let after = current - removed.len();
        let c = self.push(
            PeopleAction::RemoveGroupMembers {
                identity_store_id: store.clone(),
                group_name: name.clone(),
                group_id: g.id.clone(),
                memberships: removed.to_vec(),
                baseline: record,
            },
            resource,
            w,
            reason,
        );
        c.members_removed = departed;
        c.removal = Some(Removal {
            baseline,
            after,
            deletes_role: false,
        });
    }

    /// An identity-store user for each wanted person who has none (once per plan).
    fn create_users(&mut self, w: &Wanted, wanted: &BTreeMap<String, Person>) {
        let store = self.store().to_string();
        for (key, person) in wanted {
            if self.users.contains_key(key) || !self.creating.insert(key.clone()) {
                continue;
            }
            let display = person
                .display_name
                .clone()
                .filter(|d| !d.trim().is_empty())
                .unwrap_or_else(|| person.user_name.clone());
            let (given, family) = names_of(person, &display);
            self.push(
                PeopleAction::CreateIdentityStoreUser {
                    identity_store_id: store.clone(),
                    user_name: person.user_name.clone(),
                    display_name: display,
                    given_name: given,
                    family_name: family,
                    email: person.mail.clone(),
                    entra_object_id: Some(person.id.clone()),
                },
                format!("identitystore/{store}/user/{}", person.user_name),
                w,
                format!(
                    "member of the Entra group {} with no Identity Center user",
                    w.spec.group
                ),
            );
        }
    }

    /// Who joins the group: the wanted people not in it yet.
    fn add_members(
        &mut self,
        w: &Wanted,
        group: Option<&IdentityCenterGroup>,
        wanted: &BTreeMap<String, Person>,
        current: &BTreeMap<String, RemovedMember>,
    ) {
        let store = self.store().to_string();
        let name = w.mapping.as_str().to_string();
        let joining: Vec<String> = wanted
            .iter()
            .filter(|(u, _)| !current.contains_key(*u))
            .map(|(_, p)| p.user_name.clone())
            .collect();
        if joining.is_empty() {
            return;
        }
        // The ids of the users that exist (listed as the store spells their names,
        // which may differ in case from the UPN), and whom each name is bound to.
        let user_ids: BTreeMap<String, String> = joining
            .iter()
            .filter_map(|u| Some((u.clone(), self.users.get(&u.to_lowercase())?.id.clone())))
            .collect();
        let bindings: BTreeMap<String, String> = wanted
            .iter()
            .filter(|(u, _)| !current.contains_key(*u))
            .map(|(u, p)| (u.clone(), p.id.clone()))
            .collect();
        let c = self.push(
            PeopleAction::AddGroupMembers {
                identity_store_id: store.clone(),
                group_name: name.clone(),
                group_id: group.map(|g| g.id.clone()),
                user_names: joining.clone(),
                user_ids,
                bindings,
            },
            group_resource(&store, group.map(|g| g.id.as_str()), &name),
            w,
            format!("{} joined the Entra group {}", joining.len(), w.spec.group),
        );
        c.members_added = joining;
    }

    /// What a group's removals are measured against: the most people it held within the
    /// window as the audit log recorded it, or now (then recorded with the removal).
    pub(super) fn removal_baseline(
        &self,
        resource: &str,
        current: usize,
    ) -> (usize, Option<String>) {
        let live = self
            .i
            .recorded_baselines
            .get(resource)
            .and_then(|v| crate::plan::roles::parse_baseline(v))
            .filter(|(_, at)| self.i.now.saturating_sub(*at) < self.i.window_seconds);
        match live {
            Some((count, _)) if count >= current => (count, None),
            _ => (current, Some(format!("{current}@{}", self.i.now))),
        }
    }
}

/// Why the departed members go: those no longer in the Entra group, and those disabled
/// in Entra.
fn departure_reason(w: &Wanted, departed: &[String]) -> String {
    let disabled: Vec<&str> = match &w.members {
        Members::Read(people) => people
            .iter()
            .filter(|p| {
                !p.enabled
                    && departed
                        .iter()
                        .any(|d| d.eq_ignore_ascii_case(&p.user_name))
            })
            .map(|p| p.user_name.as_str())
            .collect(),
        Members::Unresolved { .. } => Vec::new(),
    };
    let left: Vec<&str> = departed
        .iter()
        .map(String::as_str)
        .filter(|d| !disabled.iter().any(|x| x.eq_ignore_ascii_case(d)))
        .collect();
    let mut why = Vec::new();
    if !left.is_empty() {
        why.push(format!(
            "no longer in the Entra group {}: {}",
            w.spec.group,
            left.join(", ")
        ));
    }
    if !disabled.is_empty() {
        why.push(format!("disabled in Entra: {}", disabled.join(", ")));
    }
    why.join("; ")
}

/// Given and family name for Identity Center, which requires both: Entra's, else the
/// display name split at its last space, else the display name twice.
fn names_of(p: &Person, display: &str) -> (String, String) {
    let given = p.given_name.clone().filter(|g| !g.trim().is_empty());
    let family = p.surname.clone().filter(|s| !s.trim().is_empty());
    match (given, family) {
        (Some(g), Some(f)) => (g, f),
        (g, f) => {
            let (first, last) = display
                .trim()
                .rsplit_once(' ')
                .map_or((display, display), |(a, b)| (a, b));
            (
                g.unwrap_or_else(|| first.to_string()),
                f.unwrap_or_else(|| last.to_string()),
            )
        }
    }
}
