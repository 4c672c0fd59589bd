//! What a focused pass (the membership fast path) reads of Identity Center: each of its
//! documents' group members, permission set and inline policy, through the index the last
//! full pass built, and the identity-store users of the people joining a group, the likely
//! joiners among them looked up beside those reads.

use std::collections::{BTreeMap, BTreeSet};

use crate::adapters::aws::AwsClients;
use crate::model::call::Failure;
use crate::observed::{
    IdentityCenterGroup, IdentityCenterPermissionSet, IdentityCenterUser, ObservedIdentityCenter,
};
use crate::plan::people::{Members, Wanted};
use crate::ports::{at_once, try_at_once};
use crate::runtime::fleet::Fleet;
use crate::runtime::people_state::PeopleIndex;
use crate::sources::policy::PolicySet;

/// The user names of the enabled people `wanted` grants (not blocked, their group read).
fn granted_people<'w>(wanted: &'w [Wanted<'_>]) -> impl Iterator<Item = &'w str> {
    wanted
        .iter()
        .filter(|w| !w.blocked)
        .filter_map(|w| match &w.members {
            Members::Read(people) => Some(people),
            Members::Unresolved { .. } => None,
        })
        .flatten()
        .filter(|p| p.enabled)
        .map(|p| p.user_name.as_str())
}

/// A person's identity-store user, by user name, read now (`None`: the store has none).
type LookedUp = Result<Option<IdentityCenterUser>, Failure>;

async fn look_up_user(clients: &AwsClients, store: &str, name: &str) -> LookedUp {
    match clients.user_id(store, name).await {
        Ok(id) => clients.describe_user(store, &id).await.map(Some),
        Err(f) if f.is(&["ResourceNotFoundException"]) => Ok(None),
        Err(f) => Err(f),
    }
}

/// A focused pass's likely joiners, looked up beside Identity Center's reads rather than
/// after them: the people `wanted` grants whom the index (the last full pass's users and
/// those described since) does not name, nor the fast path added since, so most likely
/// not in the store yet. A joiner's grant then waits for one answer fewer. By lower-cased
/// user name; [`joining_users`] uses what it needs and looks up the rest. Read in this
/// pass, as its own look-ups are: nothing here outlives the pass.
pub(crate) async fn look_up_unseen(
    clients: &AwsClients,
    fleet: &Fleet,
    wanted: &[Wanted<'_>],
) -> BTreeMap<String, LookedUp> {
    let mut names: BTreeMap<String, String> = granted_people(wanted)
        .map(|n| (n.to_lowercase(), n.to_string()))
        .collect();
    let store = {
        let people = fleet.people();
        let Some(index) = people.index.as_ref() else {
            return BTreeMap::new();
        };
        names.retain(|key, _| !people.added.contains(key));
        for u in index.users.values() {
            if names.is_empty() {
                break;
            }
            names.remove(&u.user_name.to_lowercase());
        }
        index.identity_store_id.clone()
    };
    let store = store.as_str();
    at_once(
        names
            .into_iter()
            .map(|(key, name)| async move { (key, look_up_user(clients, store, &name).await) }),
        FAST_READS,
    )
    .await
    .into_iter()
    .collect()
}

/// The identity-store users of the enabled people of `wanted` that `observed` does not
/// list (the fast path reads the groups' members only), looked up by user name (or taken
/// from `unseen`, looked up in this pass already) and added to it; a name the store does
/// not have is left to be created. Returns the lower-cased names whose look-up failed.
pub(crate) async fn joining_users(
    clients: &AwsClients,
    observed: &mut ObservedIdentityCenter,
    wanted: &[Wanted<'_>],
    mut unseen: BTreeMap<String, LookedUp>,
) -> BTreeSet<String> {
    let known: BTreeSet<String> = observed
        .users
        .iter()
        .map(|u| u.user_name.to_lowercase())
        .collect();
    let names: BTreeSet<&str> = granted_people(wanted)
        .filter(|n| !known.contains(&n.to_lowercase()))
        .collect();
    let store = observed.identity_store_id.clone();
    let store = store.as_str();
    // Looked up at once (up to [`FAST_READS`]): several joiners wait for the slowest.
    let found = at_once(
        names.into_iter().map(|name| {
            let early = unseen.remove(&name.to_lowercase());
            async move {
                let found = match early {
                    Some(found) => found,
                    None => look_up_user(clients, store, name).await,
                };
                (name, found)
            }
        }),
        FAST_READS,
    )
    .await;
    let mut unread = BTreeSet::new();
    for (name, found) in found {
        match found {
            Ok(Some(user)) => observed.users.push(user),
            Ok(None) => {}
            Err(f) => {
                tracing::warn!(user = %name, error = %f, "cannot look up a joining person's identity-store user; the full pass adds them");
                unread.insert(name.to_lowercase());
            }
        }
    }
    unread
}

/// Identity Center as the fast path reads it: for each document, its group's members now
/// and its permission set now, found through the index, or looked up by name when the
/// index lacks them (made after the full pass that built it), and the users by the
/// index's names or looked up. What was looked up goes into `index`. No assignment is
/// read: the fast path only takes people out.
///
/// The documents are read at once (up to [`FAST_READS`]), and each document's members,
/// set and inline policy at once: a joiner's or a leaver's pass waits for the slowest of
/// them, not for their sum (the rate limits still space them).
pub(crate) async fn fast_read(
    clients: &AwsClients,
    index: &mut PeopleIndex,
    policies: &PolicySet,
) -> Result<ObservedIdentityCenter, Failure> {
    look_up_lacking(clients, index, policies).await?;
    let (instance, store) = (index.instance_arn.clone(), index.identity_store_id.clone());
    let (instance, store) = (instance.as_str(), store.as_str());
    let documents: Vec<(IdentityCenterGroup, String)> = policies
        .access_assignments
        .iter()
        .filter_map(|a| {
            let name = a.name.as_str();
            Some((
                index.groups.get(name)?.clone(),
                index.sets.get(name)?.clone(),
            ))
        })
        .collect();
    let read: Vec<(IdentityCenterGroup, IdentityCenterPermissionSet)> = try_at_once(
        documents.into_iter().map(|(group, arn)| async move {
            let (members, mut set, inline_policy) = tokio::try_join!(
                clients.group_members(store, &group.id),
                clients.permission_set(instance, &arn),
                clients.permission_set_inline(instance, &arn),
            )?;
            // The inline policy alone: it holds the session denials; what else the set
            // grants is the full pass's to compare.
            set.policies = Some(crate::observed::PermissionSetPolicies {
                inline_policy,
                ..Default::default()
            });
            let group = IdentityCenterGroup { members, ..group };
            Ok::<_, Failure>((group, set))
        }),
        FAST_READS,
    )
    .await?;
    let ids: BTreeSet<String> = read
        .iter()
        .flat_map(|(g, _)| g.members.iter().map(|m| m.user_id.clone()))
        .collect();
    let unknown = ids
        .iter()
        .filter(|id| !index.users.contains_key(id.as_str()));
    let described = try_at_once(
        unknown.map(|id| clients.describe_user(store, id)),
        FAST_READS,
    )
    .await?;
    for u in described {
        index.users.insert(u.id.clone(), u);
    }
    let (groups, permission_sets) = read.into_iter().unzip();
    Ok(ObservedIdentityCenter {
        instance_arn: instance.to_string(),
        identity_store_id: store.to_string(),
        groups,
        permission_sets,
        users: ids
            .iter()
            .filter_map(|id| index.users.get(id).cloned())
            .collect(),
        ..ObservedIdentityCenter::default()
    })
}

/// Looks up, by name, each document's group and permission set that the index lacks
/// (made after the full pass that built it), all at once, into `index`. One that does not
/// exist yet is left out: nobody to take out of it.
async fn look_up_lacking(
    clients: &AwsClients,
    index: &mut PeopleIndex,
    policies: &PolicySet,
) -> Result<(), Failure> {
    let (instance, store) = (
        index.instance_arn.as_str(),
        index.identity_store_id.as_str(),
    );
    let absent = |f: &Failure| {
        f.is(&["ResourceNotFoundException"]) || f.message.starts_with("no permission set named")
    };
    let lacking = policies.access_assignments.iter().filter_map(|a| {
        let name = a.name.as_str();
        let (group, set) = (index.groups.get(name), index.sets.get(name));
        (group.is_none() || set.is_none()).then(|| (a, group.cloned(), set.cloned()))
    });
    let looked_up: Vec<_> = try_at_once(
        lacking.map(|(a, group, set)| async move {
            let group = match group {
                Some(g) => g,
                None => match clients.group_id(store, a.name.as_str()).await {
                    Ok(id) => clients.describe_group(store, &id).await?,
                    Err(f) if absent(&f) => return Ok(None),
                    Err(f) => return Err(f),
                },
            };
            let set = match set {
                Some(arn) => Some(arn),
                None => match clients
                    .permission_set_arn(instance, &a.spec.permission_set.name)
                    .await
                {
                    Ok(arn) => Some(arn),
                    Err(f) if absent(&f) => None,
                    Err(f) => return Err(f),
                },
            };
            Ok(Some((a.name.to_string(), group, set)))
        }),
        FAST_READS,
    )
    .await?;
    for (name, group, set) in looked_up.into_iter().flatten() {
        index.groups.insert(name.clone(), group);
        if let Some(arn) = set {
            index.sets.insert(name, arn);
        }
    }
    Ok(())
}

/// Documents (and users) a focused pass reads at once.
const FAST_READS: usize = 8;
