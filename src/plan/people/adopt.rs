//! Adoption: an existing identity-store group and permission set, made by SCIM or by hand,
//! taken over for an AccessAssignment that says `adopt: true`, or refused with why.
//!
//! Taking over marks them as trustsync's the way it marks what it creates (the group's
//! description, the set's description and owner tag) and changes nothing else of them: the
//! group keeps its id, so its members and the set's assignment to it stay, and nobody loses
//! access to a delete-and-recreate. From then on the document is reconciled as usual.
//!
//! What is refused, because taking it over would silently keep, cut or widen someone's
//! access (each a `conflict` naming what is in the way, and nothing is adopted):
//! - a group or set another trustsync instance marks, or a set whose owner tag key holds
//!   another value (another controller's);
//! - several groups of the document's name (which one is meant is not the planner's guess);
//! - a group assigned any other permission set, in any account: the Entra group's people
//!   would get that set too (a group named to match the document, by accident or on
//!   purpose, is how a set nobody reviewed would reach them);
//! - a set assigned to another group, or to a user directly, in the accounts read: once it
//!   is trustsync's, a plan takes those assignments away (trustsync grants its set through
//!   its group only), so adopting would cut access nobody decided to cut; and to keep them
//!   would leave access the document does not show. Those are for a person to move first;
//! - a set provisioned in an account whose assignments were not read (beyond the accounts
//!   in scope): its holders there are unknown, and writing the set reaches them.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use super::{group_resource, marked, set_description, People, Wanted};
use crate::observed::{AssignedTo, GroupHolds, IdentityCenterGroup, IdentityCenterPermissionSet};
use crate::plan::{PeopleAction, ProblemKind};
use crate::sources::policy::short_lines;

/// Any trustsync instance's mark, as `runtime::people::mark` writes it.
fn carries_any_mark(description: Option<&str>) -> bool {
    description.is_some_and(|d| d.contains("[trustsync "))
}

/// Why one thing cannot be adopted: the resource and the reason.
type Refusal = (String, String);

impl<'a> People<'a> {
    /// Takes over `group` and `set` (those of them that exist and lack trustsync's mark)
    /// for `w`, or reports why not. `Ok`: the set as it stands once adopted (with the mark
    /// and the owner tag), when the set is adopted. `Err(())`: refused, reported.
    pub(super) fn adopt(
        &mut self,
        w: &Wanted,
        named: &[&'a IdentityCenterGroup],
        (group, set): (
            Option<&'a IdentityCenterGroup>,
            Option<&'a IdentityCenterPermissionSet>,
        ),
        (unowned_group, unowned_set): (bool, bool),
    ) -> Result<Option<IdentityCenterPermissionSet>, ()> {
        let mut refused = Vec::new();
        if let Some(g) = group.filter(|_| unowned_group) {
            refused.extend(self.group_refusals(w, named, g, set));
        }
        if let Some(s) = set.filter(|_| unowned_set) {
            refused.extend(self.set_refusals(w, s, group));
        }
        if !refused.is_empty() {
            for (resource, why) in refused {
                self.problem(
                    ProblemKind::Conflict,
                    w,
                    resource,
                    // Names read from AWS, shown on one line whatever they hold.
                    short_lines(&format!(
                        "not adopted: {why}; nothing is taken over for this document"
                    )),
                );
            }
            return Err(());
        }
        if let Some(g) = group.filter(|_| unowned_group) {
            self.adopt_group(w, g);
        }
        Ok(set.filter(|_| unowned_set).map(|s| self.adopt_set(w, s)))
    }

    /// Why the group cannot be taken over, if it cannot.
    fn group_refusals(
        &self,
        w: &Wanted,
        named: &[&IdentityCenterGroup],
        g: &IdentityCenterGroup,
        set: Option<&IdentityCenterPermissionSet>,
    ) -> Vec<Refusal> {
        let resource = group_resource(self.store(), Some(&g.id), &g.display_name);
        let mut out = Vec::new();
        if named.len() > 1 {
            let ids: Vec<&str> = named.iter().map(|g| g.id.as_str()).collect();
            out.push((
                resource.clone(),
                format!(
                    "{} identity-store groups are named `{}` (compared without case: {}); which one is the document's is not for trustsync to guess: rename all but one",
                    named.len(),
                    w.mapping,
                    ids.join(", ")
                ),
            ));
        }
        if carries_any_mark(g.description.as_deref()) {
            out.push((
                resource.clone(),
                format!(
                    "group `{}` carries another trustsync instance's mark in its description",
                    g.display_name
                ),
            ));
        }
        match &g.holds {
            None => out.push((
                resource,
                format!("the permission sets group `{}` holds were not read", g.display_name),
            )),
            Some(GroupHolds::Unreadable(why)) => out.push((
                resource,
                format!(
                    "the permission sets group `{}` holds could not be read ({why}); a group whose access is unknown is not taken over",
                    g.display_name
                ),
            )),
            Some(GroupHolds::Read(held)) => {
                let own = set.map(|s| s.arn.as_str());
                let mut others: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
                for a in held.iter().filter(|a| Some(a.permission_set_arn.as_str()) != own) {
                    others
                        .entry(self.set_name(&a.permission_set_arn))
                        .or_default()
                        .insert(a.account.as_str());
                }
                if !others.is_empty() {
                    let listed: Vec<String> = others
                        .iter()
                        .map(|(set, accounts)| {
                            format!(
                                "{set} in {}",
                                accounts.iter().copied().collect::<Vec<_>>().join(", ")
                            )
                        })
                        .collect();
                    out.push((
                        resource,
                        format!(
                            "group `{}` holds other permission sets ({}): the Entra group's people would get them too; give the document a group of its own, or take those assignments away first",
                            g.display_name,
                            listed.join("; ")
                        ),
                    ));
                }
            }
        }
        out
    }

    /// Why the set cannot be taken over, if it cannot. `group`: the document's group, the
    /// one holder the set may have.
    fn set_refusals(
        &self,
        w: &Wanted,
        s: &IdentityCenterPermissionSet,
        group: Option<&IdentityCenterGroup>,
    ) -> Vec<Refusal> {
        let resource = s.arn.clone();
        let mut out = Vec::new();
        if carries_any_mark(s.description.as_deref()) {
            out.push((
                resource.clone(),
                format!(
                    "permission set {} carries another trustsync instance's mark in its description",
                    s.name
                ),
            ));
        }
        let key = self.i.owner_tag.key.as_str();
        let Some(policies) = &s.policies else {
            out.push((
                resource,
                format!(
                    "the policies and tags of permission set {} were not read",
                    s.name
                ),
            ));
            return out;
        };
        match &policies.tags {
            None => out.push((
                resource.clone(),
                format!("the tags of permission set {} were not read", s.name),
            )),
            Some(tags) => {
                if let Some(other) = tags.get(key).filter(|v| **v != self.i.owner_tag.value) {
                    out.push((
                        resource.clone(),
                        format!(
                            "permission set {} carries the owner tag {key}={other}: another controller's",
                            s.name
                        ),
                    ));
                }
            }
        }
        match &policies.provisioned_elsewhere {
            None => out.push((
                resource.clone(),
                format!(
                    "the accounts permission set {} is provisioned in were not read",
                    s.name
                ),
            )),
            Some(elsewhere) if !elsewhere.is_empty() => out.push((
                resource.clone(),
                format!(
                    "permission set {} is provisioned in accounts whose assignments trustsync does not read ({}): whoever holds it there would be changed unseen",
                    s.name,
                    elsewhere.join(", ")
                ),
            )),
            Some(_) => {}
        }
        let mut users = BTreeSet::new();
        let mut groups = BTreeSet::new();
        for a in self
            .i
            .observed
            .assignments
            .iter()
            .filter(|a| a.permission_set_arn == s.arn)
        {
            match a.principal_type {
                AssignedTo::User => {
                    users.insert(format!(
                        "{} in {}",
                        self.user_name(&a.principal_id),
                        a.account
                    ));
                }
                AssignedTo::Group if group.is_some_and(|g| g.id == a.principal_id) => {}
                AssignedTo::Group => {
                    groups.insert(format!(
                        "{} in {}",
                        self.group_name(&a.principal_id),
                        a.account
                    ));
                }
            }
        }
        if !users.is_empty() {
            out.push((
                resource.clone(),
                format!(
                    "permission set {} is assigned to people directly ({}): trustsync grants its set through the document's group only, so adopting it would take their access away, or keep access the document does not show; assign them through the Entra group, or remove those assignments, first",
                    s.name,
                    users.into_iter().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        if !groups.is_empty() {
            out.push((
                resource,
                format!(
                    "permission set {} is assigned to other groups ({}): trustsync grants its set to the document's group `{}` only, so adopting it would take theirs away; split the set, or remove those assignments, first",
                    s.name,
                    groups.into_iter().collect::<Vec<_>>().join(", "),
                    w.mapping
                ),
            ));
        }
        out
    }

    /// The group's description gets trustsync's mark, as on a group it creates.
    fn adopt_group(&mut self, w: &Wanted, g: &'a IdentityCenterGroup) {
        let store = self.store().to_string();
        let name = w.mapping.as_str().to_string();
        let description = format!("{}: AccessAssignment {name}", self.i.mark);
        let c = self.push(
            PeopleAction::AdoptIdentityStoreGroup {
                identity_store_id: store.clone(),
                group_id: g.id.clone(),
                display_name: g.display_name.clone(),
                description: description.clone(),
            },
            group_resource(&store, Some(&g.id), &name),
            w,
            format!(
                "adopt: the identity-store group {} lacks trustsync's mark and the document says `adopt: true`; it keeps its id, members and assignments",
                g.display_name
            ),
        );
        c.before = Some(json!({"description": g.description}));
        c.after = Some(json!({"description": description}));
        self.adopted_groups.insert(g.id.clone());
    }

    /// The set gets the owner tag and trustsync's mark (with the document's description);
    /// returns it as it stands once they are written.
    fn adopt_set(
        &mut self,
        w: &Wanted,
        s: &IdentityCenterPermissionSet,
    ) -> IdentityCenterPermissionSet {
        let spec = &w.spec.permission_set;
        let (key, value) = (self.i.owner_tag.key.clone(), self.i.owner_tag.value.clone());
        let description = set_description(spec.description.as_deref(), self.i.mark);
        // The session length it has: a change of it is the document's update, provisioned.
        let session_duration = s
            .session_duration
            .clone()
            .unwrap_or_else(|| spec.session_duration.clone());
        let tags = BTreeMap::from([(key, value)]);
        let c = self.push(
            PeopleAction::AdoptPermissionSet {
                instance_arn: self.i.observed.instance_arn.clone(),
                permission_set_arn: s.arn.clone(),
                name: s.name.clone(),
                tags: tags.clone(),
                description: description.clone(),
                session_duration: session_duration.clone(),
            },
            s.arn.clone(),
            w,
            format!(
                "adopt: permission set {} lacks trustsync's mark and the document says `adopt: true`; its assignments stay",
                s.name
            ),
        );
        let held = s.policies.as_ref().and_then(|p| p.tags.clone());
        c.before = Some(json!({"description": s.description, "tags": held}));
        c.after = Some(json!({"description": description, "tags": tags}));
        let mut adopted = s.clone();
        adopted.description = Some(description);
        adopted.session_duration = Some(session_duration);
        if let Some(p) = adopted.policies.as_mut() {
            p.tags.get_or_insert_with(BTreeMap::new).extend(tags);
        }
        debug_assert!(marked(adopted.description.as_deref(), self.i.mark));
        adopted
    }

    fn set_name(&self, arn: &str) -> String {
        self.i
            .observed
            .permission_sets
            .iter()
            .find(|s| s.arn == arn)
            .map_or_else(|| arn.to_string(), |s| s.name.clone())
    }

    fn user_name(&self, id: &str) -> String {
        self.i
            .observed
            .users
            .iter()
            .find(|u| u.id == id)
            .map_or_else(|| id.to_string(), |u| u.user_name.clone())
    }

    fn group_name(&self, id: &str) -> String {
        self.i
            .observed
            .groups
            .iter()
            .find(|g| g.id == id)
            .map_or_else(|| id.to_string(), |g| g.display_name.clone())
    }
}
