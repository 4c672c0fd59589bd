//! People: AccessAssignments planned against IAM Identity Center. Pure, like the rest of
//! the planner.
//!
//! For each AccessAssignment trustsync keeps, in the instance's identity store, a group
//! named after the document whose description carries trustsync's mark ([`Inputs::mark`]:
//! identity-store groups have no tags). Its members are the Entra group's people (nested
//! groups flattened when `members.transitive`): users whose account is enabled, guests only
//! when the document includes them. Each member has an identity-store user whose
//! `userName` is their user principal name (matched case-insensitively); one that lacks it
//! is created, with a display name and a given and family name (Identity Center requires
//! them) and never a password: they sign in through Entra. Users are never changed or
//! deleted, and groups without the mark are never touched.
//!
//! The document's permission set (its description carries the mark too) is written as the
//! document says and assigned to the group in each selected account; trustsync's set
//! assigned to anyone else, or in an account no longer selected, is taken away.
//!
//! Revocation: a member who leaves the Entra group, or whose account is disabled, is taken
//! out of the group ([`PeopleAction::RemoveGroupMembers`], carrying the [`Removal`]
//! numbers the safety limits weigh) and the sessions the permission set already issued
//! them are denied ([`PeopleAction::DenyPermissionSetSessions`]). What AWS documents (IAM
//! Identity Center User Guide, "Revoke active IAM role sessions created by permission
//! sets"): a Deny in the permission set's inline policy on `identitystore:userId`, "the
//! globally unique value" for a person (a user name may change). trustsync adds an
//! `aws:TokenIssueTime` cut-off so that a person who comes back gets working sessions at
//! once, and drops an entry once the permission set's session duration has passed since
//! its cut-off. A group that cannot be resolved still has its members removed but for
//! those the directory says may keep their access, as for roles.

use std::collections::{BTreeMap, BTreeSet};

use super::{Action, Change, PeopleAction, Plan, Problem, ProblemKind};
use crate::model::names::MappingName;
use crate::observed::{IdentityCenterGroup, ObservedIdentityCenter};
use crate::sources::policy::AccessAssignmentSpec;

mod adopt;
mod assignments;
mod binding;
mod denials;
mod membership;
mod permission_set;
#[cfg(test)]
mod tests;

pub use crate::sources::policy::{DENIAL_RESERVE, MARK_BUDGET};
pub use denials::{read_denials, read_lasting, DENY_SID_PREFIX};

/// An Entra user as the people planner needs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// The Entra object id: who the person is (a user principal name can be given to
    /// someone else once its holder leaves).
    pub id: String,
    /// The user principal name: the identity-store `userName`.
    pub user_name: String,
    pub display_name: Option<String>,
    pub given_name: Option<String>,
    pub surname: Option<String>,
    pub mail: Option<String>,
    /// `accountEnabled`.
    pub enabled: bool,
    /// `userType: Guest`.
    pub guest: bool,
}

/// Who the Entra group says are its people, or why it could not say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Members {
    /// The group's user members (transitive when asked), with their attributes.
    Read(Vec<Person>),
    /// The group could not be resolved: why, and the user names that may keep their
    /// membership all the same (see [`crate::sources::directory::GroupError::may_keep`]).
    Unresolved {
        why: String,
        may_keep: BTreeSet<String>,
    },
}

/// One AccessAssignment, made concrete for this pass.
#[derive(Debug, Clone)]
pub struct Wanted<'a> {
    pub mapping: MappingName,
    pub spec: &'a AccessAssignmentSpec,
    pub members: Members,
    /// The accounts in scope it selects.
    pub accounts: Vec<String>,
    /// Breaks a guardrail: revocations only.
    pub blocked: bool,
}

/// What the people planner is given.
pub struct Inputs<'a> {
    pub wanted: &'a [Wanted<'a>],
    pub observed: &'a ObservedIdentityCenter,
    /// What marks trustsync's groups and permission sets (in their description).
    pub mark: &'a str,
    /// The owner tag trustsync's permission sets carry (`ownerTag`).
    pub owner_tag: &'a crate::config::OwnerTag,
    /// Now, Unix seconds.
    pub now: u64,
    /// The removal baselines the audit log recorded (`count@unix-time`), by group
    /// resource, and how long one counts (`safety.removalWindowSeconds`): a group's
    /// removals are measured against the most people it held within the window, as a
    /// role's are.
    pub recorded_baselines: &'a BTreeMap<String, String>,
    pub window_seconds: u64,
    /// `safety.propagationSeconds`: a departure's cut-off is the denial's write plus this.
    pub propagation_seconds: u64,
    /// Whom trustsync made or took over each identity-store user name for (lower-cased
    /// user name -> Entra object id), as the audit log records it.
    pub recorded_people: &'a BTreeMap<String, String>,
    /// Take trustsync's permission sets that no document wants away from every account.
    pub prune: bool,
    /// Whether this pass read what deciding an adoption needs (a full pass does: what an
    /// unmarked group holds, where an unmarked set is provisioned). A focused pass adopts
    /// nothing: a document whose group or set is not trustsync's yet is planned as without
    /// `adopt` until a full pass takes them over.
    pub adopting: bool,
}

/// The plan for people.
pub fn plan(i: &Inputs) -> Plan {
    let mut p = People {
        i,
        plan: Plan::default(),
        users: i
            .observed
            .users
            .iter()
            .map(|u| (u.user_name.to_lowercase(), u))
            .collect(),
        creating: BTreeSet::new(),
        adopted_groups: BTreeSet::new(),
    };
    for w in i.wanted {
        p.assignment(w);
    }
    p.orphans();
    // The removal limit across the pass counts the people of trustsync's groups, each
    // group at the most it held within the window (as roles count their principals): a
    // share of a group that is shrinking is measured against what it held, not what is
    // left of it.
    let store = i.observed.identity_store_id.as_str();
    let trusted_baseline = i
        .observed
        .groups
        .iter()
        .filter(|g| marked(g.description.as_deref(), i.mark) || p.adopted_groups.contains(&g.id))
        .map(|g| {
            let resource = group_resource(store, Some(&g.id), &g.display_name);
            p.removal_baseline(&resource, g.members.len()).0
        })
        .sum();
    let mut plan = p.plan;
    plan.trusted_baseline = trusted_baseline;
    plan.cutoff = Some(super::Cutoff {
        proposed: i.now + i.propagation_seconds,
        margin: i.propagation_seconds,
    });
    plan.summarize();
    plan
}

/// The owner tag a mark stands for: the mark is `[trustsync <key>=<value>]`, made from the
/// configured owner tag (`runtime::people::mark`). A key holding `=` reads short.
pub fn owner_tag(mark: &str) -> Option<(&str, &str)> {
    mark.strip_prefix("[trustsync ")?
        .strip_suffix(']')?
        .split_once('=')
}

fn marked(description: Option<&str>, mark: &str) -> bool {
    description.is_some_and(|d| d.contains(mark))
}

/// The description trustsync writes on its permission set.
pub fn set_description(spec: Option<&str>, mark: &str) -> String {
    match spec {
        Some(d) if !d.trim().is_empty() => format!("{} {mark}", d.trim()),
        _ => mark.to_string(),
    }
}

struct People<'a> {
    i: &'a Inputs<'a>,
    plan: Plan,
    /// Identity-store users by lower-cased user name.
    users: BTreeMap<String, &'a crate::observed::IdentityCenterUser>,
    /// Users this plan creates (lower-cased), so two documents create one.
    creating: BTreeSet<String>,
    /// Groups this plan adopts (ids): trustsync's from now on, counted as its own.
    adopted_groups: BTreeSet<String>,
}

impl<'a> People<'a> {
    fn store(&self) -> &str {
        &self.i.observed.identity_store_id
    }

    fn push(
        &mut self,
        action: PeopleAction,
        resource: String,
        w: &Wanted,
        reason: String,
    ) -> &mut Change {
        self.plan.changes.push(Change::new(
            Action::People(action),
            resource,
            Some(w.mapping.as_str()),
            reason,
        ));
        self.plan.changes.last_mut().expect("just pushed")
    }

    fn problem(&mut self, kind: ProblemKind, w: &Wanted, resource: String, message: String) {
        self.plan.problems.push(Problem {
            kind,
            account: None,
            mapping: Some(w.mapping.clone()),
            resource,
            message,
        });
    }

    fn assignment(&mut self, w: &Wanted<'a>) {
        let obs = self.i.observed;
        let name = w.mapping.as_str();
        let named: Vec<&'a IdentityCenterGroup> = obs
            .groups
            .iter()
            .filter(|g| g.display_name.eq_ignore_ascii_case(name))
            .collect();
        // trustsync's own group when one of the names is (a same-named group someone
        // made beside it holds nothing back), else the one of the name.
        let group = named
            .iter()
            .find(|g| marked(g.description.as_deref(), self.i.mark))
            .or(named.first())
            .copied();
        let set_name = &w.spec.permission_set.name;
        let set = obs
            .permission_sets
            .iter()
            .find(|s| s.name.eq_ignore_ascii_case(set_name));
        let unowned_group = group.is_some_and(|g| !marked(g.description.as_deref(), self.i.mark));
        let unowned_set = set.is_some_and(|s| !marked(s.description.as_deref(), self.i.mark));
        // `adopt: true` takes over what lacks the mark, or says why not (a conflict, and
        // then as without it). A blocked document only revokes: it adopts nothing; nor
        // does a focused pass.
        let adopting =
            self.i.adopting && w.spec.adopt && !w.blocked && (unowned_group || unowned_set);
        let (adopted, refused) = match adopting {
            true => match self.adopt(w, &named, (group, set), (unowned_group, unowned_set)) {
                Ok(adopted) => (adopted, false),
                Err(()) => (None, true),
            },
            false => (None, false),
        };
        let taken_over = adopting && !refused;
        if let Some(g) = group.filter(|_| unowned_group && !taken_over) {
            if !refused {
                self.problem(
                    ProblemKind::Conflict,
                    w,
                    group_resource(self.store(), Some(&g.id), name),
                    format!("the identity store has a group `{}` trustsync does not own (its description lacks `{}`): rename one of them, or set `adopt: true` to take it over; nothing is planned for this document", g.display_name, self.i.mark),
                );
            }
            return;
        }
        // Who should be in the group, by lower-cased user name: each bound to the
        // identity-store user of that name, or a conflict.
        let (wanted, may_keep) = self.wanted_people(w);
        let wanted = self.bound(w, group, wanted);
        if let Some(s) = set.filter(|_| unowned_set && !taken_over) {
            if !refused {
                self.problem(
                    ProblemKind::Conflict,
                    w,
                    s.arn.clone(),
                    format!("permission set `{}` exists and trustsync does not own it (its description lacks `{}`): choose another name, or set `adopt: true` to take it over; only departures are taken out of the group for this document", s.name, self.i.mark),
                );
            }
            // trustsync's group is still its own: its departures go (a revocation never
            // waits on a conflict); the set is not trustsync's to write to.
            let revoke_only = Wanted {
                blocked: true,
                ..w.clone()
            };
            self.members(&revoke_only, group, &wanted, &may_keep);
            return;
        }
        // The set as it stands once adopted, else as read.
        let set = adopted.as_ref().or(set);
        if let Some(s) = set.filter(|_| adopted.is_none()) {
            self.tag_set(s, Some(w));
        }
        let removed = self.members(w, group, &wanted, &may_keep);
        // The identity-store users of the people bound to them and wanted in the group: a
        // returning one's cut-off comes back to now (below).
        let back: BTreeSet<String> = if w.blocked {
            BTreeSet::new()
        } else {
            wanted
                .keys()
                .filter_map(|k| Some(self.users.get(k)?.id.clone()))
                .collect()
        };
        if w.blocked {
            self.deny_sessions(w, set, &removed, &back);
            self.unwanted_assignments(w, set, group);
            return;
        }
        let denials = self.deny_sessions(w, set, &removed, &back);
        self.permission_set(w, set, denials);
        self.assignments(w, set, group);
    }
}

/// A group's resource name: its ARN when it exists, else the store and its name.
fn group_resource(store: &str, id: Option<&str>, name: &str) -> String {
    match id {
        Some(id) => format!("arn:aws:identitystore:::group/{id}"),
        None => format!("identitystore/{store}/group/{name}"),
    }
}
