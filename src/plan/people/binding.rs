//! Who the group should hold: the Entra group's people, and the identity-store user each
//! of them is bound to.

use std::collections::{BTreeMap, BTreeSet};

use super::{Members, People, Person, Wanted};
use crate::observed::IdentityCenterGroup;
use crate::plan::{Notice, NoticeKind, ProblemKind};
use crate::sources::policy::GuestRule;

impl People<'_> {
    /// The people the group should hold (lower-cased user name -> person), and the user
    /// names that may stay although unread. Guests left out are a notice.
    pub(super) fn wanted_people(
        &mut self,
        w: &Wanted,
    ) -> (BTreeMap<String, Person>, BTreeSet<String>) {
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
    pub(super) fn bound(
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
}
