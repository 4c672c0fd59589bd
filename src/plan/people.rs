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

use serde_json::{json, Value};

use super::sessions::{parse_rfc3339, rfc3339, sid_lasting, UNKNOWN_SESSION_SECS};
use super::{
    Action, Change, Notice, NoticeKind, PeopleAction, Plan, Problem, ProblemKind, Removal,
    RemovedMember, SessionDenial,
};
use crate::model::iam_policy;
use crate::model::names::MappingName;
use crate::observed::ObservedIdentityCenter;
use crate::observed::{AssignedTo, IdentityCenterGroup, IdentityCenterPermissionSet, SetBoundary};
use crate::sources::policy::{AccessAssignmentSpec, GuestRule};

pub use crate::sources::policy::{DENIAL_RESERVE, MARK_BUDGET};

/// A permission set's inline policy, at most (`PutInlinePolicyToPermissionSet`).
const INLINE_LIMIT: usize = 32_768;

/// A permission set's session denials: all that stay or are added this pass, and those
/// that stay (without this pass's).
#[derive(Debug, Default)]
struct Denials {
    all: Vec<Value>,
    kept: Vec<Value>,
    /// The inline policy the denial writes this pass, if it writes one.
    written: Option<Value>,
}

/// The statement id prefix of trustsync's session denials in a permission set's inline
/// policy (one statement per cut-off).
pub const DENY_SID_PREFIX: &str = "TrustsyncDeparted";

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
        .filter(|g| marked(g.description.as_deref(), i.mark))
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
        let group = obs
            .groups
            .iter()
            .find(|g| g.display_name.eq_ignore_ascii_case(name));
        if let Some(g) = group.filter(|g| !marked(g.description.as_deref(), self.i.mark)) {
            self.problem(
                ProblemKind::Conflict,
                w,
                group_resource(self.store(), Some(&g.id), name),
                format!("the identity store has a group `{}` trustsync does not own (its description lacks `{}`): rename one of them; nothing is planned for this document", g.display_name, self.i.mark),
            );
            return;
        }
        let set_name = &w.spec.permission_set.name;
        let set = obs
            .permission_sets
            .iter()
            .find(|s| s.name.eq_ignore_ascii_case(set_name));
        // Who should be in the group, by lower-cased user name: each bound to the
        // identity-store user of that name, or a conflict.
        let (wanted, may_keep) = self.wanted_people(w);
        let wanted = self.bound(w, group, wanted);
        if let Some(s) = set.filter(|s| !marked(s.description.as_deref(), self.i.mark)) {
            self.problem(
                ProblemKind::Conflict,
                w,
                s.arn.clone(),
                format!("permission set `{}` exists and trustsync does not own it (its description lacks `{}`): choose another name; only departures are taken out of the group for this document", s.name, self.i.mark),
            );
            // trustsync's group is still its own: its departures go (a revocation never
            // waits on a conflict); the set is not trustsync's to write to.
            let revoke_only = Wanted {
                blocked: true,
                ..w.clone()
            };
            self.members(&revoke_only, group, &wanted, &may_keep);
            return;
        }
        if let Some(s) = set {
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

    /// The people the group should hold (lower-cased user name -> person), and the user
    /// names that may stay although unread. Guests left out are a notice.
    fn wanted_people(&mut self, w: &Wanted) -> (BTreeMap<String, Person>, BTreeSet<String>) {
        let people = match &w.members {
            Members::Read(people) => people,
            Members::Unresolved { why, may_keep } => {
                self.problem(
                    ProblemKind::MappingError,
                    w,
                    format!("{}", w.spec.group),
                    format!("{why}: nobody is added; members are removed but for those the directory says may keep their access"),
                );
                return (
                    BTreeMap::new(),
                    may_keep.iter().map(|u| u.to_lowercase()).collect(),
                );
            }
        };
        let mut guests = Vec::new();
        let mut out = BTreeMap::new();
        for person in people {
            if person.guest && w.spec.guests == GuestRule::Exclude {
                guests.push(person.user_name.clone());
                continue;
            }
            if person.enabled {
                out.insert(person.user_name.to_lowercase(), person.clone());
            }
        }
        if !guests.is_empty() {
            self.plan.notices.push(Notice {
                kind: NoticeKind::GuestsLeftOut,
                account: None,
                resource: format!("{}", w.spec.group),
                message: format!(
                    "AccessAssignment {}: {} guest(s) of the group get no AWS access ({}); set `guests: include` to give it",
                    w.mapping,
                    guests.len(),
                    guests.join(", ")
                ),
            });
        }
        (out, BTreeSet::new())
    }

    /// The people whose identity-store user (the one of their user name) is theirs: made
    /// for none yet (trustsync creates it), or bound to them by its SCIM external id, by
    /// trustsync's record of whom it made or took it over for, by membership of this
    /// document's group already (a user trustsync added before it kept records), or by
    /// the document's `adoptUsers`. Anyone else's same-named user is a `conflict` and is
    /// never handed over: a reused user principal name inherits nothing.
    fn bound(
        &mut self,
        w: &Wanted,
        group: Option<&IdentityCenterGroup>,
        wanted: BTreeMap<String, Person>,
    ) -> BTreeMap<String, Person> {
        let mut out = BTreeMap::new();
        for (key, person) in wanted {
            let Some(user) = self.users.get(&key).copied() else {
                out.insert(key, person);
                continue;
            };
            let is = |id: &str| id.eq_ignore_ascii_case(&person.id);
            let adopted = w
                .spec
                .adopt_users
                .iter()
                .any(|a| a.eq_ignore_ascii_case(&person.user_name));
            let member = group.is_some_and(|g| g.members.iter().any(|m| m.user_id == user.id));
            let why_not = if adopted {
                None
            } else if !user.external_ids.is_empty() {
                (!user.external_ids.iter().any(|e| is(e))).then(|| {
                    format!(
                        "its external id ({}) is not Entra user {}'s",
                        user.external_ids.join(", "),
                        person.id
                    )
                })
            } else {
                match self.i.recorded_people.get(&key) {
                    Some(o) => (!is(o)).then(|| {
                        format!("trustsync made or took it over for another Entra user ({o}), who held this name before")
                    }),
                    None => (!member).then(|| {
                        "nothing binds it to this Entra user: it was made by hand or by another tool".to_string()
                    }),
                }
            };
            match why_not {
                None => {
                    out.insert(key, person);
                }
                Some(why) => self.problem(
                    ProblemKind::Conflict,
                    w,
                    format!("identitystore/{}/user/{}", self.store(), user.id),
                    format!(
                        "Entra user {} ({}) is not given the identity-store user `{}`: {why}; list it in `adoptUsers` to hand it over (the sessions it held before stay denied)",
                        person.user_name, person.id, user.user_name
                    ),
                ),
            }
        }
        out
    }

    /// Users to create, the group, members to add and remove. Returns the members removed.
    fn members(
        &mut self,
        w: &Wanted,
        group: Option<&'a IdentityCenterGroup>,
        wanted: &BTreeMap<String, Person>,
        may_keep: &BTreeSet<String>,
    ) -> Vec<RemovedMember> {
        let store = self.store().to_string();
        let name = w.mapping.as_str().to_string();
        let by_id: BTreeMap<&str, &str> = self
            .i
            .observed
            .users
            .iter()
            .map(|u| (u.id.as_str(), u.user_name.as_str()))
            .collect();
        let current: BTreeMap<String, (&str, &str)> = group
            .map(|g| {
                g.members
                    .iter()
                    .filter_map(|m| {
                        let user = by_id.get(m.user_id.as_str())?;
                        Some((
                            user.to_lowercase(),
                            (m.user_id.as_str(), m.membership_id.as_str()),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let removed: Vec<RemovedMember> = current
            .iter()
            .filter(|(u, _)| !wanted.contains_key(*u) && !may_keep.contains(*u))
            .map(|(_, (user_id, membership_id))| RemovedMember {
                membership_id: membership_id.to_string(),
                user_id: user_id.to_string(),
                user_name: by_id[user_id].to_string(),
            })
            .collect();
        if let (Some(g), false) = (group, removed.is_empty()) {
            let departed: Vec<String> = removed.iter().map(|r| r.user_name.clone()).collect();
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
            let reason = why.join("; ");
            let resource = group_resource(&store, Some(&g.id), &name);
            let (baseline, record) = self.removal_baseline(&resource, current.len());
            let after = current.len() - removed.len();
            let c = self.push(
                PeopleAction::RemoveGroupMembers {
                    identity_store_id: store.clone(),
                    group_name: name.clone(),
                    group_id: g.id.clone(),
                    memberships: removed.clone(),
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
        if w.blocked {
            return removed;
        }
        // New users, then the group, then who joins it.
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
        if group.is_none() {
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
        let joining: Vec<String> = wanted
            .iter()
            .filter(|(u, _)| !current.contains_key(*u))
            .map(|(_, p)| p.user_name.clone())
            .collect();
        if !joining.is_empty() {
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
        removed
    }

    /// What a group's removals are measured against: the most people it held within the
    /// window as the audit log recorded it, or now (then recorded with the removal).
    fn removal_baseline(&self, resource: &str, current: usize) -> (usize, Option<String>) {
        let live = self
            .i
            .recorded_baselines
            .get(resource)
            .and_then(|v| super::roles::parse_baseline(v))
            .filter(|(_, at)| self.i.now.saturating_sub(*at) < self.i.window_seconds);
        match live {
            Some((count, _)) if count >= current => (count, None),
            _ => (current, Some(format!("{current}@{}", self.i.now))),
        }
    }

    /// The session denials of the permission set: those still alive, and the departed
    /// members' new ones, written at once when there are new ones (a revocation). Returns
    /// the denial statements the set's inline policy carries from now on, and those it
    /// carries if the new ones are held.
    fn deny_sessions(
        &mut self,
        w: &Wanted,
        set: Option<&IdentityCenterPermissionSet>,
        removed: &[RemovedMember],
        back: &BTreeSet<String>,
    ) -> Denials {
        let Some(set) = set else {
            return Denials::default(); // no set yet: no session of it to deny
        };
        let now = self.i.now;
        let observed_inline = set.policies.as_ref().and_then(|p| p.inline_policy.clone());
        // Sessions issued before a cut-off live at most the longer of the set's durations.
        let seconds = w
            .spec
            .permission_set
            .session_seconds()
            .unwrap_or(UNKNOWN_SESSION_SECS)
            .max(
                set.session_duration
                    .as_deref()
                    .and_then(crate::sources::policy::iso_duration_seconds)
                    .unwrap_or(UNKNOWN_SESSION_SECS),
            );
        // Each cut-off lives as long as its record says (raised to the set's duration now,
        // never lowered: a session issued before it under a longer one still lives), 12
        // hours where no record says.
        let mut lasting = read_lasting(observed_inline.as_ref());
        for n in lasting.values_mut() {
            *n = (*n).max(seconds);
        }
        let lasting_of =
            |l: &BTreeMap<u64, u64>, t: u64| l.get(&t).copied().unwrap_or(UNKNOWN_SESSION_SECS);
        let (mut live, mut wide) = read_denials(observed_inline.as_ref());
        live.retain(|_, cutoff| cutoff.saturating_add(lasting_of(&lasting, *cutoff)) > now);
        wide.retain(|cutoff| cutoff.saturating_add(lasting_of(&lasting, *cutoff)) > now);
        // A denial outlives re-admission: whoever is back in the group keeps their entry,
        // so their sessions from before it never work again. Its cut-off comes back to now,
        // the moment they are let in again, if it lay ahead: they could mint no session in
        // between (they were out), and the ones they get from now on work at once.
        for (id, t) in live.iter_mut() {
            if back.contains(id) && *t > now {
                if let Some(n) = lasting.get(t).copied() {
                    let e = lasting.entry(now).or_insert(n);
                    *e = (*e).max(n);
                }
                *t = now;
            }
        }
        let mut denied = live.clone();
        let kept = denial_statements(&live, &wide, &lasting);
        let cutoff = now + self.i.propagation_seconds;
        if !removed.is_empty() {
            lasting.entry(cutoff).or_insert(seconds);
        }
        for r in removed {
            live.insert(r.user_id.clone(), cutoff);
            denied.insert(r.user_id.clone(), cutoff);
        }
        for (id, at) in &live {
            let name = self
                .i
                .observed
                .users
                .iter()
                .find(|u| &u.id == id)
                .map_or(id.clone(), |u| u.user_name.clone());
            self.plan.session_denials.push(SessionDenial {
                account: None,
                mapping: w.mapping.clone(),
                role: set.arn.clone().into(),
                principal: Some(name),
                issued_before: rfc3339(*at),
                written_at: rfc3339(at.saturating_sub(self.i.propagation_seconds)),
                until: rfc3339(at + lasting_of(&lasting, *at)),
            });
        }
        let all = denial_statements(&live, &wide, &lasting);
        if !removed.is_empty() {
            // The set's own part stays as it is now: a revocation grants nothing.
            let own: Vec<Value> = observed_inline
                .as_ref()
                .map(iam_policy::statements)
                .unwrap_or_default()
                .into_iter()
                .filter(|s| !is_denial(s))
                .collect();
            let (document, role_wide) =
                fit(own, denial_statements(&denied, &wide, &lasting), cutoff);
            if role_wide {
                self.plan.notices.push(Notice {
                    kind: NoticeKind::SessionsCutRoleWide,
                    account: None,
                    resource: set.arn.clone(),
                    message: format!("the departed people's denials do not fit permission set {}'s inline policy: every session of it issued before {} is denied; those who stay sign in again", set.name, rfc3339(cutoff)),
                });
            }
            let users: Vec<String> = removed.iter().map(|r| r.user_name.clone()).collect();
            let c = self.push(
                PeopleAction::DenyPermissionSetSessions {
                    instance_arn: self.i.observed.instance_arn.clone(),
                    permission_set_arn: set.arn.clone(),
                    document: document.clone(),
                },
                set.arn.clone(),
                w,
                format!("deny the sessions {} already hold", users.join(", ")),
            );
            c.members_removed = users;
            c.before = observed_inline;
            c.after = Some(document.clone());
            return Denials {
                all,
                kept,
                written: Some(document),
            };
        }
        Denials {
            all,
            kept,
            written: None,
        }
    }

    /// trustsync's set whose tags were read and lack the owner tag (made before sets were
    /// tagged at creation) gets it, before anything else is written to it.
    fn tag_set(&mut self, set: &IdentityCenterPermissionSet, w: Option<&Wanted>) {
        // The configured tag itself: a key may hold `=`, which the mark cannot tell apart.
        let (key, value) = (
            self.i.owner_tag.key.as_str(),
            self.i.owner_tag.value.as_str(),
        );
        let Some(tags) = set.policies.as_ref().and_then(|p| p.tags.as_ref()) else {
            return;
        };
        if tags.get(key).map(String::as_str) == Some(value) {
            return;
        }
        let action = PeopleAction::TagPermissionSet {
            instance_arn: self.i.observed.instance_arn.clone(),
            permission_set_arn: set.arn.clone(),
            name: set.name.clone(),
            tags: BTreeMap::from([(key.to_string(), value.to_string())]),
        };
        let mut change = Change::new(
            Action::People(action),
            set.arn.clone(),
            w.map(|w| w.mapping.as_str()),
            format!("trustsync's permission set {} lacks the owner tag {key}={value} (made before sets were tagged at creation)", set.name),
        );
        change.before = Some(json!({"tags": tags}));
        change.after = Some(json!({"tags": {key: value}}));
        self.plan.changes.push(change);
    }

    /// Creates the permission set, or updates what differs from the document.
    fn permission_set(
        &mut self,
        w: &Wanted,
        set: Option<&IdentityCenterPermissionSet>,
        denials: Denials,
    ) {
        let spec = &w.spec.permission_set;
        let instance_arn = self.i.observed.instance_arn.clone();
        let description = set_description(spec.description.as_deref(), self.i.mark);
        let own: Vec<Value> = spec
            .inline_policy
            .as_ref()
            .map(iam_policy::statements)
            .unwrap_or_default();
        let cutoff = self.i.now + self.i.propagation_seconds;
        let inline = |denials: Vec<Value>| {
            (!own.is_empty() || !denials.is_empty()).then(|| fit(own.clone(), denials, cutoff).0)
        };
        let denials_written = denials.written;
        let wanted_inline = inline(denials.all);
        // Written instead when the new denials are held (the checks swap it in).
        let without_new = inline(denials.kept);
        let wanted_boundary = spec.permissions_boundary.as_ref().map(|b| SetBoundary {
            managed_policy_arn: b.managed_policy_arn.clone(),
            customer_managed_policy: b
                .customer_managed_policy
                .as_ref()
                .map(|c| (c.name.clone(), c.path.clone())),
        });
        let Some(set) = set else {
            self.push(
                PeopleAction::PutPermissionSet {
                    instance_arn,
                    permission_set_arn: None,
                    name: spec.name.clone(),
                    description,
                    session_duration: spec.session_duration.clone(),
                    inline_policy: wanted_inline,
                    delete_inline_policy: false,
                    attach_managed_policies: spec.managed_policies.clone(),
                    detach_managed_policies: Vec::new(),
                    attach_customer_managed_policies: spec
                        .customer_managed_policies
                        .iter()
                        .map(|c| (c.name.clone(), c.path.clone()))
                        .collect(),
                    detach_customer_managed_policies: Vec::new(),
                    put_boundary: wanted_boundary.map(Box::new),
                    delete_boundary: false,
                },
                format!(
                    "{}/permissionSet/{}",
                    self.i.observed.instance_arn, spec.name
                ),
                w,
                "AccessAssignment is new".into(),
            );
            return;
        };
        let policies = set.policies.clone().unwrap_or_default();
        let mut reasons = Vec::new();
        let session_changed = set
            .session_duration
            .as_deref()
            .and_then(crate::sources::policy::iso_duration_seconds)
            != spec.session_seconds();
        if set.description.as_deref() != Some(description.as_str()) || session_changed {
            reasons.push("description or session duration");
        }
        // After this pass's denial, the set holds what the denial wrote.
        let current_inline = denials_written.or(policies.inline_policy.clone());
        let inline_changed = match (&wanted_inline, &current_inline) {
            (None, None) => false,
            (Some(a), Some(b)) => !iam_policy::equivalent(a, b),
            _ => true,
        };
        if inline_changed {
            reasons.push("inline policy");
        }
        let have: BTreeSet<&str> = policies
            .managed_policies
            .iter()
            .map(String::as_str)
            .collect();
        let want: BTreeSet<&str> = spec.managed_policies.iter().map(String::as_str).collect();
        let attach: Vec<String> = want.difference(&have).map(|s| s.to_string()).collect();
        let detach: Vec<String> = have.difference(&want).map(|s| s.to_string()).collect();
        let have_c: BTreeSet<(String, String)> =
            policies.customer_managed_policies.iter().cloned().collect();
        let want_c: BTreeSet<(String, String)> = spec
            .customer_managed_policies
            .iter()
            .map(|c| (c.name.clone(), c.path.clone()))
            .collect();
        let attach_c: Vec<(String, String)> = want_c.difference(&have_c).cloned().collect();
        let detach_c: Vec<(String, String)> = have_c.difference(&want_c).cloned().collect();
        if !(attach.is_empty() && detach.is_empty() && attach_c.is_empty() && detach_c.is_empty()) {
            reasons.push("policies attached");
        }
        let boundary_changed = policies.boundary != wanted_boundary;
        if boundary_changed {
            reasons.push("permissions boundary");
        }
        if reasons.is_empty() {
            return;
        }
        let before = json!({
            "description": set.description,
            "sessionDuration": set.session_duration,
            "inlinePolicy": policies.inline_policy,
            "managedPolicies": policies.managed_policies,
            "customerManagedPolicies": policies.customer_managed_policies,
            "permissionsBoundary": policies.boundary,
        });
        let after = json!({
            "description": description,
            "sessionDuration": spec.session_duration,
            "inlinePolicy": wanted_inline,
            "managedPolicies": spec.managed_policies,
            "customerManagedPolicies": want_c,
            "permissionsBoundary": wanted_boundary,
        });
        let delete_inline = inline_changed && wanted_inline.is_none();
        let c = self.push(
            PeopleAction::PutPermissionSet {
                instance_arn,
                permission_set_arn: Some(set.arn.clone()),
                name: spec.name.clone(),
                description,
                session_duration: spec.session_duration.clone(),
                inline_policy: if inline_changed { wanted_inline } else { None },
                delete_inline_policy: delete_inline,
                attach_managed_policies: attach,
                detach_managed_policies: detach,
                attach_customer_managed_policies: attach_c,
                detach_customer_managed_policies: detach_c,
                put_boundary: wanted_boundary
                    .clone()
                    .filter(|_| boundary_changed)
                    .map(Box::new),
                delete_boundary: boundary_changed && wanted_boundary.is_none(),
            },
            set.arn.clone(),
            w,
            format!("drift: {}", reasons.join(", ")),
        );
        c.before = Some(before);
        c.after = Some(after);
        if inline_changed {
            c.grant_only = Some(without_new.unwrap_or(Value::Null));
        }
    }

    /// The set assigned to the group in each selected account; anything else of the set
    /// taken away.
    fn assignments(
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
    fn unwanted_assignments(
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

    fn push_delete(
        &mut self,
        a: &crate::observed::IdentityCenterAssignment,
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
    fn orphans(&mut self) {
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

/// A group's resource name: its ARN when it exists, else the store and its name.
fn group_resource(store: &str, id: Option<&str>, name: &str) -> String {
    match id {
        Some(id) => format!("arn:aws:identitystore:::group/{id}"),
        None => format!("identitystore/{store}/group/{name}"),
    }
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

fn is_denial(statement: &Value) -> bool {
    statement["Sid"]
        .as_str()
        .is_some_and(|s| s.starts_with(DENY_SID_PREFIX))
}

/// The denials an inline policy carries: identity-store user id -> cut-off, and the
/// cut-offs of set-wide denials (every session issued before them).
pub fn read_denials(inline: Option<&Value>) -> (BTreeMap<String, u64>, Vec<u64>) {
    let (mut users, mut wide) = (BTreeMap::new(), Vec::new());
    let Some(doc) = inline else {
        return (users, wide);
    };
    for st in iam_policy::statements(doc).iter().filter(|s| is_denial(s)) {
        let Some(cutoff) = st["Condition"]["DateLessThan"]["aws:TokenIssueTime"]
            .as_str()
            .and_then(parse_rfc3339)
        else {
            continue;
        };
        let ids = iam_policy::strings(&st["Condition"]["StringEquals"]["identitystore:userId"]);
        if ids.is_empty() {
            wide.push(cutoff);
        }
        for id in ids {
            users.insert(id, cutoff);
        }
    }
    (users, wide)
}

/// How long a session issued before each cut-off may live, as the denials' statement
/// ids record it (`...For<seconds>`).
pub fn read_lasting(inline: Option<&Value>) -> BTreeMap<u64, u64> {
    let mut out = BTreeMap::new();
    let Some(doc) = inline else {
        return out;
    };
    for st in iam_policy::statements(doc).iter().filter(|s| is_denial(s)) {
        let cutoff = st["Condition"]["DateLessThan"]["aws:TokenIssueTime"]
            .as_str()
            .and_then(parse_rfc3339);
        if let (Some(t), Some(n)) = (cutoff, st["Sid"].as_str().and_then(sid_lasting)) {
            let e = out.entry(t).or_insert(n);
            *e = (*e).max(n);
        }
    }
    out
}

/// The statement id of a denial at `at`, with how long its sessions may live if known.
fn denial_sid(part: &str, at: u64, lasting: &BTreeMap<u64, u64>) -> String {
    match lasting.get(&at) {
        Some(n) => format!("{DENY_SID_PREFIX}{part}{at}For{n}"),
        None => format!("{DENY_SID_PREFIX}{part}{at}"),
    }
}

/// One Deny statement per cut-off naming the users it denies, and one per set-wide
/// cut-off.
fn denial_statements(
    live: &BTreeMap<String, u64>,
    wide: &[u64],
    lasting: &BTreeMap<u64, u64>,
) -> Vec<Value> {
    let mut by_cutoff: BTreeMap<u64, Vec<&String>> = BTreeMap::new();
    for (id, at) in live {
        by_cutoff.entry(*at).or_default().push(id);
    }
    let users = by_cutoff.into_iter().map(|(at, ids)| {
        json!({
            "Sid": denial_sid("", at, lasting),
            "Effect": "Deny",
            "Action": "*",
            "Resource": "*",
            "Condition": {
                "StringEquals": {"identitystore:userId": ids},
                "DateLessThan": {"aws:TokenIssueTime": rfc3339(at)}
            }
        })
    });
    users
        .chain(wide.iter().map(|at| {
            let mut d = wide_denial(*at);
            d["Sid"] = Value::String(denial_sid("All", *at, lasting));
            d
        }))
        .collect()
}

/// Every session of the set issued before `cutoff` denied.
fn wide_denial(cutoff: u64) -> Value {
    json!({
        "Sid": format!("{DENY_SID_PREFIX}All{cutoff}"),
        "Effect": "Deny",
        "Action": "*",
        "Resource": "*",
        "Condition": {"DateLessThan": {"aws:TokenIssueTime": rfc3339(cutoff)}}
    })
}

/// The inline policy of `own` statements and `denials`; when it would pass the limit, one
/// denial of every session of the set issued before `cutoff` instead (and `true`).
fn fit(own: Vec<Value>, denials: Vec<Value>, cutoff: u64) -> (Value, bool) {
    let document =
        |statements: Vec<Value>| json!({"Version": "2012-10-17", "Statement": statements});
    let full = document(own.iter().cloned().chain(denials).collect());
    if iam_policy::iam_length(&full) <= INLINE_LIMIT {
        return (full, false);
    }
    (
        document(own.into_iter().chain([wide_denial(cutoff)]).collect()),
        true,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observed::{
        GroupMembership, IdentityCenterAssignment, IdentityCenterUser, PermissionSetPolicies,
    };

    const MARK: &str = "[trustsync managed-by=trustsync]";
    const NOW: u64 = 1_800_000_000;

    fn spec() -> AccessAssignmentSpec {
        serde_yaml::from_str(
            r#"
group: {displayName: people}
permissionSet:
  name: Ops
  sessionDuration: PT2H
  inlinePolicy: {Version: "2012-10-17", Statement: [{Effect: Allow, Action: "s3:GetObject", Resource: "*"}]}
accounts: {ids: ["111111111111"]}
"#,
        )
        .unwrap()
    }

    fn person(name: &str) -> Person {
        Person {
            id: format!("entra-{name}"),
            user_name: name.into(),
            display_name: Some(format!("{name} Display")),
            given_name: None,
            surname: None,
            mail: None,
            enabled: true,
            guest: false,
        }
    }

    fn wanted(spec: &AccessAssignmentSpec, members: Members) -> Wanted<'_> {
        Wanted {
            mapping: "ops".into(),
            spec,
            members,
            accounts: vec!["111111111111".into()],
            blocked: false,
        }
    }

    fn user(id: &str) -> IdentityCenterUser {
        IdentityCenterUser {
            id: format!("id-{id}"),
            user_name: id.into(),
            display_name: None,
            external_ids: Vec::new(),
        }
    }

    /// The instance as trustsync left it with `members` in its group and the set
    /// assigned, the set's inline policy being the document's and `denials`.
    fn provisioned(members: &[&str], denials: Vec<Value>) -> ObservedIdentityCenter {
        let own = iam_policy::statements(spec().permission_set.inline_policy.as_ref().unwrap());
        ObservedIdentityCenter {
            instance_arn: "arn:aws:sso:::instance/ssoins-1".into(),
            identity_store_id: "d-1".into(),
            users: ["ana", "bo", "cy", "di"].map(user).into(),
            groups: vec![IdentityCenterGroup {
                id: "g1".into(),
                display_name: "ops".into(),
                description: Some(format!("{MARK}: AccessAssignment ops")),
                members: members
                    .iter()
                    .map(|m| GroupMembership {
                        user_id: format!("id-{m}"),
                        membership_id: format!("m-{m}"),
                    })
                    .collect(),
            }],
            permission_sets: vec![IdentityCenterPermissionSet {
                arn: "ps-1".into(),
                name: "Ops".into(),
                session_duration: Some("PT2H".into()),
                description: Some(MARK.into()),
                policies: Some(PermissionSetPolicies {
                    inline_policy: Some(
                        json!({"Version": "2012-10-17", "Statement": own.into_iter().chain(denials).collect::<Vec<_>>()}),
                    ),
                    ..PermissionSetPolicies::default()
                }),
            }],
            assignments: vec![IdentityCenterAssignment {
                account: "111111111111".into(),
                permission_set_arn: "ps-1".into(),
                principal_type: AssignedTo::Group,
                principal_id: "g1".into(),
            }],
        }
    }

    fn run(wanted: &[Wanted], observed: &ObservedIdentityCenter) -> Plan {
        run_with(wanted, observed, &BTreeMap::new())
    }

    fn run_with(
        wanted: &[Wanted],
        observed: &ObservedIdentityCenter,
        recorded_baselines: &BTreeMap<String, String>,
    ) -> Plan {
        // Every user of the store made by trustsync for the Entra user of its name.
        let people: BTreeMap<String, String> = observed
            .users
            .iter()
            .map(|u| (u.user_name.to_lowercase(), format!("entra-{}", u.user_name)))
            .collect();
        run_bound(wanted, observed, recorded_baselines, &people)
    }

    fn run_bound(
        wanted: &[Wanted],
        observed: &ObservedIdentityCenter,
        recorded_baselines: &BTreeMap<String, String>,
        recorded_people: &BTreeMap<String, String>,
    ) -> Plan {
        plan(&Inputs {
            wanted,
            observed,
            mark: MARK,
            owner_tag: &crate::config::OwnerTag {
                key: "managed-by".into(),
                value: "trustsync".into(),
            },
            now: NOW,
            prune: false,
            recorded_baselines,
            window_seconds: 3600,
            propagation_seconds: 300,
            recorded_people,
        })
    }

    fn names(p: &Plan) -> Vec<&str> {
        p.changes.iter().map(|c| c.action.name()).collect()
    }

    #[test]
    fn a_new_document_creates_users_group_set_and_assignment_and_leaves_guests_and_disabled_out() {
        let spec = spec();
        let mut guest = person("sam#EXT#@t");
        guest.guest = true;
        let mut off = person("off");
        off.enabled = false;
        let mut solo = person("kim");
        solo.display_name = Some("Kim".into());
        let w = [wanted(
            &spec,
            Members::Read(vec![person("ana"), solo, guest, off]),
        )];
        let empty = ObservedIdentityCenter {
            instance_arn: "arn:aws:sso:::instance/ssoins-1".into(),
            identity_store_id: "d-1".into(),
            users: vec![user("ana")],
            ..ObservedIdentityCenter::default()
        };
        let p = run(&w, &empty);
        assert_eq!(
            names(&p),
            [
                "create-identity-store-user",
                "create-identity-store-group",
                "add-group-members",
                "put-permission-set",
                "create-account-assignment"
            ]
        );
        let Action::People(PeopleAction::CreateIdentityStoreUser {
            user_name,
            given_name,
            family_name,
            ..
        }) = &p.changes[0].action
        else {
            panic!()
        };
        assert_eq!(
            (
                user_name.as_str(),
                given_name.as_str(),
                family_name.as_str()
            ),
            ("kim", "Kim", "Kim"),
            "a one-word display name serves as both names"
        );
        assert_eq!(p.changes[2].members_added, ["ana", "kim"]);
        assert_eq!(p.notices[0].kind, NoticeKind::GuestsLeftOut);
    }

    #[test]
    fn a_departure_is_removed_and_its_sessions_denied_from_a_cutoff_and_nothing_else_moves() {
        let spec = spec();
        let w = [wanted(
            &spec,
            Members::Read(vec![person("ana"), person("bo")]),
        )];
        let p = run(&w, &provisioned(&["ana", "bo", "cy"], Vec::new()));
        assert_eq!(
            names(&p),
            ["remove-group-members", "deny-permission-set-sessions"],
            "the set is not written twice: {:#?}",
            p.changes
        );
        let removal = &p.changes[0];
        assert!(removal.action.is_revocation());
        assert_eq!(removal.members_removed, ["cy"]);
        assert_eq!(removal.removal.map(|r| (r.baseline, r.after)), Some((3, 2)));
        let doc = p.changes[1].after.clone().unwrap();
        let (denied, wide) = read_denials(Some(&doc));
        assert_eq!(denied, BTreeMap::from([("id-cy".to_string(), NOW + 300)]));
        assert!(wide.is_empty());
        assert!(
            iam_policy::statements(&doc)
                .iter()
                .any(|s| s["Action"] == "s3:GetObject"),
            "the set's own grant stays: {doc:#}"
        );
        assert_eq!(p.session_denials.len(), 1);
    }

    #[test]
    fn removals_are_measured_against_the_most_the_group_held_within_the_window() {
        let spec = spec();
        let w = [wanted(&spec, Members::Read(vec![person("ana")]))];
        let o = provisioned(&["ana", "bo"], Vec::new());
        let resource = "arn:aws:identitystore:::group/g1";
        let at = |ago: u64| BTreeMap::from([(resource.to_string(), format!("4@{}", NOW - ago))]);
        // Four people ten minutes ago (another pass took two): bo is the third of four.
        let p = run_with(&w, &o, &at(600));
        let r = p.changes[0].removal.unwrap();
        assert_eq!((r.baseline, r.after, r.removed()), (4, 1, 3));
        let Action::People(PeopleAction::RemoveGroupMembers { baseline, .. }) =
            &p.changes[0].action
        else {
            panic!()
        };
        assert_eq!(*baseline, None, "the recorded baseline still counts");
        // Outside the window: measured from now, and recorded.
        let p = run_with(&w, &o, &at(7200));
        let r = p.changes[0].removal.unwrap();
        assert_eq!((r.baseline, r.after), (2, 1));
        let Action::People(PeopleAction::RemoveGroupMembers { baseline, .. }) =
            &p.changes[0].action
        else {
            panic!()
        };
        assert_eq!(baseline.as_deref(), Some(format!("2@{NOW}").as_str()));
    }

    #[test]
    fn denials_expire_as_recorded_and_a_returning_person_keeps_theirs() {
        let spec = spec();
        // cy's and ed's cut-offs are 7201 s old: cy's recorded a 2-hour session (gone),
        // ed's recorded none (12 hours: kept). bo is back in the group: kept.
        let (cy, di) = (NOW - 7201, NOW - 60);
        let old = denial_statements(
            &BTreeMap::from([
                ("id-cy".to_string(), cy),
                ("id-di".to_string(), di),
                ("id-bo".to_string(), di),
            ]),
            &[],
            &BTreeMap::from([(cy, 7200), (di, 7200)]),
        );
        let mut old = old;
        old.extend(denial_statements(
            &BTreeMap::from([("id-ed".to_string(), cy - 1)]),
            &[],
            &BTreeMap::new(),
        ));
        let w = [wanted(
            &spec,
            Members::Read(vec![person("ana"), person("bo")]),
        )];
        let p = run(&w, &provisioned(&["ana"], old));
        let put = p
            .changes
            .iter()
            .find(|c| c.action.name() == "put-permission-set")
            .expect("the inline policy is rewritten");
        let Action::People(PeopleAction::PutPermissionSet {
            inline_policy: Some(doc),
            ..
        }) = &put.action
        else {
            panic!("{put:#?}")
        };
        assert_eq!(
            read_denials(Some(doc)).0.into_keys().collect::<Vec<_>>(),
            ["id-bo", "id-di", "id-ed"],
            "cy's expired (recorded PT2H); bo is back but keeps the entry; ed's has no record (12 h)"
        );
        assert_eq!(read_lasting(Some(doc)).get(&di), Some(&7200));
    }

    /// What the plan adds to trustsync's group, and the conflicts it reports.
    fn joins(p: &Plan) -> (Vec<String>, BTreeMap<String, String>, Vec<String>) {
        let add = p.changes.iter().find_map(|c| match &c.action {
            Action::People(PeopleAction::AddGroupMembers {
                user_names,
                user_ids,
                ..
            }) => Some((user_names.clone(), user_ids.clone())),
            _ => None,
        });
        let (names, ids) = add.unwrap_or_default();
        let conflicts = p
            .problems
            .iter()
            .filter(|x| x.kind == ProblemKind::Conflict)
            .map(|x| x.message.clone())
            .collect();
        (names, ids, conflicts)
    }

    #[test]
    fn a_reused_user_name_inherits_nothing_and_adoption_hands_it_over() {
        let spec = spec();
        // cy's identity-store user was made for someone who held the name before.
        let mut cy = person("cy");
        cy.id = "entra-new-cy".into();
        let w = [wanted(
            &spec,
            Members::Read(vec![person("ana"), cy.clone()]),
        )];
        let o = provisioned(&["ana"], Vec::new());
        let recorded = BTreeMap::from([
            ("ana".to_string(), "entra-ana".to_string()),
            ("cy".to_string(), "entra-old-cy".to_string()),
        ]);
        let p = run_bound(&w, &o, &BTreeMap::new(), &recorded);
        let (added, _, conflicts) = joins(&p);
        assert!(added.is_empty(), "{added:?}");
        assert_eq!(conflicts.len(), 1, "{conflicts:?}");
        assert!(conflicts[0].contains("entra-old-cy"), "{}", conflicts[0]);
        // Nothing else is held back: the set and the assignment stand as they are.
        assert!(
            p.changes
                .iter()
                .all(|c| c.action.name() != "create-identity-store-user"),
            "the user exists; it is not made again"
        );

        // Was a member already (the old holder's)? Taken out, a revocation.
        let o = provisioned(&["ana", "cy"], Vec::new());
        let p = run_bound(&w, &o, &BTreeMap::new(), &recorded);
        assert!(
            names(&p).contains(&"remove-group-members"),
            "{:?}",
            names(&p)
        );

        // A user made by hand with no record, not a member: a conflict too.
        let p = run_bound(
            &w,
            &provisioned(&["ana"], Vec::new()),
            &BTreeMap::new(),
            &BTreeMap::new(),
        );
        let (added, _, conflicts) = joins(&p);
        assert!(
            added.is_empty() && conflicts.len() == 1,
            "{added:?} {conflicts:?}"
        );
        assert!(conflicts[0].contains("made by hand"), "{}", conflicts[0]);

        // Adopted by name: handed over, and the binding recorded with the add.
        let mut adopting = spec.clone();
        adopting.adopt_users = vec!["CY".into()];
        let w = [wanted(&adopting, Members::Read(vec![person("ana"), cy]))];
        let p = run_bound(&w, &o_with(&["ana"]), &BTreeMap::new(), &recorded);
        let (added, ids, conflicts) = joins(&p);
        assert_eq!(added, ["cy"]);
        assert_eq!(ids.get("cy").map(String::as_str), Some("id-cy"));
        assert!(conflicts.is_empty(), "{conflicts:?}");
        let bindings = p.changes.iter().find_map(|c| match &c.action {
            Action::People(PeopleAction::AddGroupMembers { bindings, .. }) => {
                Some(bindings.clone())
            }
            _ => None,
        });
        assert_eq!(
            bindings.unwrap().get("cy").map(String::as_str),
            Some("entra-new-cy")
        );
    }

    fn o_with(members: &[&str]) -> ObservedIdentityCenter {
        provisioned(members, Vec::new())
    }

    #[test]
    fn an_external_id_binds_a_user_and_a_case_only_difference_uses_the_listed_id() {
        let spec = spec();
        let mut o = provisioned(&["ana"], Vec::new());
        // SCIM made Bo's user (its external id is Bo's object id), and Di's for someone
        // else; "Cy" differs from the UPN only in case.
        o.users[1].external_ids = vec!["ENTRA-BO".into()];
        o.users[3].external_ids = vec!["entra-someone-else".into()];
        o.users[2].user_name = "Cy".into();
        let w = [wanted(
            &spec,
            Members::Read(vec![
                person("ana"),
                person("bo"),
                person("cy"),
                person("di"),
            ]),
        )];
        let recorded = BTreeMap::from([
            ("cy".to_string(), "entra-cy".to_string()),
            ("di".to_string(), "entra-di".to_string()),
        ]);
        let p = run_bound(&w, &o, &BTreeMap::new(), &recorded);
        let (added, ids, conflicts) = joins(&p);
        assert_eq!(added, ["bo", "cy"], "{conflicts:?}");
        assert_eq!(
            ids.get("cy").map(String::as_str),
            Some("id-cy"),
            "the listed id, not a look-up by the UPN's spelling"
        );
        assert_eq!(conflicts.len(), 1, "{conflicts:?}");
        assert!(conflicts[0].contains("external id"), "{}", conflicts[0]);
    }

    #[test]
    fn a_group_of_that_name_trustsync_does_not_own_is_a_conflict_and_nothing_is_planned() {
        let spec = spec();
        let w = [wanted(&spec, Members::Read(vec![person("ana")]))];
        let mut o = provisioned(&["ana"], Vec::new());
        o.groups[0].description = Some("made by hand".into());
        let p = run(&w, &o);
        assert!(p.changes.is_empty(), "{:#?}", p.changes);
        assert_eq!(p.problems[0].kind, ProblemKind::Conflict);
    }

    #[test]
    fn a_permission_set_name_taken_by_someone_else_still_lets_departures_go() {
        let spec = spec();
        let w = [wanted(
            &spec,
            Members::Read(vec![person("ana"), person("di")]),
        )];
        let mut o = provisioned(&["ana", "bo"], Vec::new());
        o.permission_sets[0].description = Some("made by hand".into());
        let p = run(&w, &o);
        assert_eq!(
            names(&p),
            ["remove-group-members"],
            "bo goes, di is not added"
        );
        assert_eq!(p.problems[0].kind, ProblemKind::Conflict);
    }

    #[test]
    fn an_unresolved_group_removes_all_but_those_who_may_keep_and_adds_nobody() {
        let spec = spec();
        let w = [wanted(
            &spec,
            Members::Unresolved {
                why: "ambiguous".into(),
                may_keep: BTreeSet::from(["ANA".to_string()]),
            },
        )];
        let p = run(&w, &provisioned(&["ana", "bo"], Vec::new()));
        assert_eq!(p.changes[0].members_removed, ["bo"]);
        assert!(!names(&p).contains(&"add-group-members"));
        assert_eq!(p.problems[0].kind, ProblemKind::MappingError);
    }

    #[test]
    fn a_blocked_document_only_revokes() {
        let spec = spec();
        let mut w = wanted(&spec, Members::Read(vec![person("ana"), person("di")]));
        w.blocked = true;
        let p = run(&[w], &provisioned(&["ana", "bo"], Vec::new()));
        assert_eq!(
            names(&p),
            ["remove-group-members", "deny-permission-set-sessions"],
            "di is not added, bo is removed"
        );
    }

    #[test]
    fn a_set_of_trustsyncs_without_the_owner_tag_is_tagged_before_anything_else() {
        assert_eq!(owner_tag(MARK), Some(("managed-by", "trustsync")));
        assert_eq!(
            owner_tag("[trustsync trustsync.dev/owner=prod]"),
            Some(("trustsync.dev/owner", "prod"))
        );
        assert_eq!(owner_tag("no mark"), None);
        let spec = spec();
        let tags_of = |tags: Option<&[(&str, &str)]>| {
            let mut o = provisioned(&["ana", "bo"], Vec::new());
            o.permission_sets[0].policies.as_mut().unwrap().tags = tags.map(|t| {
                t.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            });
            o
        };
        // Made before sets were tagged: tagged, and a departure still goes in the same
        // pass, after the tag (the revocations are allowed on tagged sets only).
        let w = [wanted(&spec, Members::Read(vec![person("ana")]))];
        let mut p = run(&w, &tags_of(Some(&[("team", "ops")])));
        p.changes.sort_by_key(|c| c.action.phase());
        assert_eq!(
            names(&p),
            [
                "tag-permission-set",
                "remove-group-members",
                "deny-permission-set-sessions"
            ]
        );
        let Action::People(PeopleAction::TagPermissionSet {
            permission_set_arn,
            tags,
            ..
        }) = &p.changes[0].action
        else {
            panic!("{:?}", p.changes[0].action)
        };
        assert_eq!(permission_set_arn, "ps-1");
        assert_eq!(
            tags,
            &BTreeMap::from([("managed-by".to_string(), "trustsync".to_string())])
        );
        // Another instance's value is not ours either.
        let p = run(&w, &tags_of(Some(&[("managed-by", "staging")])));
        assert!(names(&p).contains(&"tag-permission-set"), "{:?}", names(&p));
        // Tagged already, or tags not read (the fast path): nothing to tag.
        for o in [tags_of(Some(&[("managed-by", "trustsync")])), tags_of(None)] {
            let p = run(&w, &o);
            assert!(
                !names(&p).contains(&"tag-permission-set"),
                "{:?}",
                names(&p)
            );
        }
    }

    #[test]
    fn the_set_assigned_elsewhere_is_taken_away() {
        let spec = spec();
        let w = [wanted(&spec, Members::Read(vec![person("ana")]))];
        let mut o = provisioned(&["ana"], Vec::new());
        o.assignments.push(IdentityCenterAssignment {
            account: "111111111111".into(),
            permission_set_arn: "ps-1".into(),
            principal_type: AssignedTo::User,
            principal_id: "id-bo".into(),
        });
        let p = run(&w, &o);
        assert_eq!(names(&p), ["delete-account-assignment"]);
        assert!(p.changes[0].action.is_revocation());
    }

    #[test]
    fn iso_durations_read_as_identity_center_writes_them() {
        use crate::sources::policy::iso_duration_seconds as secs;
        assert_eq!(secs("PT1H"), Some(3600));
        assert_eq!(secs("PT1H30M"), Some(5400));
        assert_eq!(secs("PT90M"), Some(5400));
        assert_eq!(secs("PT"), None);
        assert_eq!(secs("P1D"), None);
        assert_eq!(secs("PTH"), None);
        assert_eq!(secs("PT1"), None);
    }
}
