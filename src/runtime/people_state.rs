//! What the controller remembers of people between passes: where the last full pass
//! found each document's group and permission set in Identity Center (the fast path
//! reads through it), the fast path's recent removals (a full pass whose read began
//! before one does not undo it), the Entra object ids of the people last read, and each
//! permission set as last read in full ([`SetCache`]).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::observed::{IdentityCenterGroup, IdentityCenterUser, ObservedIdentityCenter};
use crate::plan::people::Wanted;
use crate::runtime::set_cache::SetCache;

/// What the last full pass learnt of Identity Center, for the fast path, and the fast
/// path's recent removals.
#[derive(Debug, Default)]
pub struct PeopleState {
    pub(crate) index: Option<PeopleIndex>,
    /// The removals the fast path planned.
    pub(crate) revoked: Revocations,
    /// Entra object ids by lower-cased user principal name, as last read (a departed
    /// member is no longer in what the fast path reads, but the record names them).
    pub(crate) ids: BTreeMap<String, String>,
    /// Each permission set as the last full read of it showed it: what a full pass takes
    /// as read until its schedule or a write says otherwise.
    pub(crate) sets: SetCache,
    /// Lower-cased names of the people the fast path added to a group since the last full
    /// pass. Its next pass of that group finds them among the members, so they are not
    /// looked up early again ([`crate::runtime::people`]'s likely joiners); cleared by
    /// each full pass, whose index names them.
    pub(crate) added: BTreeSet<String>,
}

/// Where each document's group and permission set are, and the users' names.
#[derive(Debug, Clone)]
pub(crate) struct PeopleIndex {
    pub(crate) instance_arn: String,
    pub(crate) identity_store_id: String,
    /// By document name: trustsync's group.
    pub(crate) groups: BTreeMap<String, IdentityCenterGroup>,
    /// By document name: its permission set's ARN.
    pub(crate) sets: BTreeMap<String, String>,
    /// By user id.
    pub(crate) users: BTreeMap<String, IdentityCenterUser>,
}

/// (document, lower-cased user name, when) of each removal the fast path planned.
#[derive(Debug, Default, Clone)]
pub(crate) struct Revocations(pub(crate) Vec<(String, String, Instant)>);

/// How long the fast path's removals are remembered: longer than any full pass takes.
const REVOKED_MEMORY: Duration = Duration::from_secs(3600);

impl Revocations {
    /// The users the fast path took out of `mapping`'s group after `since`.
    pub(crate) fn since(&self, mapping: &str, since: Instant) -> BTreeSet<String> {
        self.0
            .iter()
            .filter(|(m, _, at)| m == mapping && *at >= since)
            .map(|(_, u, _)| u.clone())
            .collect()
    }

    /// Records removals made `now`, forgetting those older than any full pass.
    pub(crate) fn record(
        &mut self,
        removed: impl IntoIterator<Item = (String, String)>,
        now: Instant,
    ) {
        self.0
            .retain(|(_, _, at)| now.duration_since(*at) < REVOKED_MEMORY);
        self.0.extend(removed.into_iter().map(|(m, u)| (m, u, now)));
    }
}

/// What the fast path needs of the index, from a full pass's read.
pub(crate) fn index_of(observed: &ObservedIdentityCenter, wanted: &[Wanted]) -> PeopleIndex {
    let mut groups = BTreeMap::new();
    let mut sets = BTreeMap::new();
    for w in wanted {
        let name = w.mapping.as_str();
        if let Some(g) = observed
            .groups
            .iter()
            .find(|g| g.display_name.eq_ignore_ascii_case(name))
        {
            groups.insert(name.to_string(), g.clone());
        }
        if let Some(s) = observed
            .permission_sets
            .iter()
            .find(|s| s.name.eq_ignore_ascii_case(&w.spec.permission_set.name))
        {
            sets.insert(name.to_string(), s.arn.clone());
        }
    }
    PeopleIndex {
        instance_arn: observed.instance_arn.clone(),
        identity_store_id: observed.identity_store_id.clone(),
        groups,
        sets,
        users: observed
            .users
            .iter()
            .map(|u| (u.id.clone(), u.clone()))
            .collect(),
    }
}
