//! People in a pass: what the AccessAssignments need read (IAM Identity Center, the
//! directory's users, their groups' members), made concrete for [`crate::plan::people`],
//! planned and merged into the pass's plan. The writes go to the Identity Center client
//! this returns.
//!
//! The fast path (a departure the watcher placed: a group change, or a user disabled or
//! renamed in one of the groups) reads only what the touched documents need: their
//! groups' members from the delta cache, those members from Graph, trustsync's group and
//! permission set of each, found through what the last full pass learnt
//! ([`PeopleState`]), and plans their revocations only. A full pass whose directory read
//! began before such a removal does not add the person back
//! ([`PeopleState::revoked_since`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::adapters::aws::AwsClients;
use crate::config::Config;
use crate::observed::{IdentityCenterGroup, IdentityCenterUser, ObservedIdentityCenter};
use crate::plan::people::{self, Members, Person, Wanted};
use crate::plan::{Action, PeopleAction, Plan, Problem, ProblemKind, Settings};
use crate::runtime::directory::DirectorySource;
use crate::runtime::fleet::Fleet;
use crate::sources::directory::{DirectorySnapshot, DirectoryUser, GroupRequest, MemberKind};
use crate::sources::policy::guardrails::Enforced;
use crate::sources::policy::{scope, AccessAssignmentSpec, PolicySet};

/// Whether a pass plans people: AccessAssignments exist, or an instance is configured
/// (so that trustsync's permission sets left by removed documents are seen, and pruned).
pub fn in_use(policies: &PolicySet, config: &Config) -> bool {
    !policies.access_assignments.is_empty() || config.identity_center.instance_arn.is_some()
}

/// The group request of an AccessAssignment.
pub fn group_request(spec: &AccessAssignmentSpec) -> GroupRequest {
    GroupRequest {
        selector: spec.group.clone(),
        transitive: spec.members.transitive,
        pin: None,
    }
}

/// What marks trustsync's groups and permission sets in Identity Center (their
/// description): the owner tag, as on roles, so two instances keep apart.
pub fn mark(config: &Config) -> String {
    format!(
        "[trustsync {}={}]",
        config.owner_tag.key, config.owner_tag.value
    )
}

/// What the last full pass learnt of Identity Center, for the fast path, and the fast
/// path's recent removals.
#[derive(Debug, Default)]
pub struct PeopleState {
    index: Option<PeopleIndex>,
    /// (document, lower-cased user name, when) of each removal the fast path planned.
    revoked: Vec<(String, String, Instant)>,
    /// Entra object ids by lower-cased user principal name, as last read (a departed
    /// member is no longer in what the fast path reads, but the record names them).
    ids: BTreeMap<String, String>,
}

/// Where each document's group and permission set are, and the users' names.
#[derive(Debug, Clone)]
struct PeopleIndex {
    instance_arn: String,
    identity_store_id: String,
    /// By document name: trustsync's group.
    groups: BTreeMap<String, IdentityCenterGroup>,
    /// By document name: its permission set's ARN.
    sets: BTreeMap<String, String>,
    /// By user id.
    users: BTreeMap<String, IdentityCenterUser>,
}

/// How long the fast path's removals are remembered: longer than any full pass takes.
const REVOKED_MEMORY: Duration = Duration::from_secs(3600);

impl PeopleState {
    /// The users the fast path took out of `mapping`'s group after `since`.
    fn revoked_since(&self, mapping: &str, since: Instant) -> BTreeSet<String> {
        self.revoked
            .iter()
            .filter(|(m, _, at)| m == mapping && *at >= since)
            .map(|(_, u, _)| u.clone())
            .collect()
    }
}

/// What planning people gives the pass besides the plan.
pub struct PeoplePlanned {
    /// Where people's writes go.
    pub clients: Arc<AwsClients>,
    /// Each document's Entra group (object id), for who changed it.
    pub groups: BTreeMap<String, String>,
    /// Entra object ids by lower-cased user principal name: people's changes name users
    /// by user name, the directory's audit log by object id.
    pub ids: BTreeMap<String, String>,
}

/// Plans people and merges them into `plan`; returns the client their writes go to. A
/// failed read of Identity Center or of the directory's users is a problem of the pass
/// (nothing is planned for people), never "nobody".
///
/// `fast`: the fast path, for the documents of `policies` (revocations only, from what the
/// last full pass learnt); else a full pass whose directory read began at `began`.
/// `recorded_baselines`: the removal baselines the audit log holds.
pub async fn plan_people(
    plan: &mut Plan,
    (policies, config, settings): (&PolicySet, &Config, &Settings),
    fleet: &Fleet,
    reachable: &BTreeSet<String>,
    (enforced, snapshot): (&Enforced, &DirectorySnapshot),
    directory: &tokio::sync::Mutex<DirectorySource>,
    (fast, began, recorded_baselines, recorded_people): (
        bool,
        Instant,
        &BTreeMap<String, String>,
        &BTreeMap<String, String>,
    ),
) -> Option<PeoplePlanned> {
    let unreadable = |what: &str, e: String| Problem {
        kind: ProblemKind::PeopleUnreadable,
        account: None,
        mapping: None,
        resource: what.to_string(),
        message: format!(
            "{what} could not be read, so nothing was planned for people this pass: {e}"
        ),
    };
    let mark = mark(config);
    let clients = match fleet.identity_center(config).await {
        Ok(c) => c,
        Err(e) => {
            plan.problems
                .push(unreadable("IAM Identity Center", e.to_string()));
            return None;
        }
    };
    clients.forget_people_ids();
    let observed = match fast {
        true => {
            let Some(mut index) = fleet.people().index.clone() else {
                return None; // no full pass has read Identity Center yet: it will
            };
            let read = fast_read(&clients, &mut index, policies).await;
            fleet.people().index = Some(index);
            read
        }
        false => {
            let accounts: Vec<String> = reachable.iter().cloned().collect();
            clients
                .read_identity_center(
                    config.identity_center.instance_arn.as_deref(),
                    &accounts,
                    Some(&mark),
                )
                .await
        }
    };
    let observed = match observed {
        Ok(o) => o,
        Err(e) => {
            plan.problems
                .push(unreadable("IAM Identity Center", e.to_string()));
            return None;
        }
    };
    // From now on the controller's watcher follows users' changes too.
    DirectorySource::track_users(directory).await;
    let users = match fast {
        true => {
            let ids: BTreeSet<String> = policies
                .access_assignments
                .iter()
                .filter_map(|a| snapshot.get(&group_request(&a.spec))?.as_ref().ok())
                .flat_map(|g| &g.members)
                .filter(|m| m.kind == MemberKind::User)
                .map(|m| m.id.to_string())
                .collect();
            let ids: Vec<String> = ids.into_iter().collect();
            DirectorySource::users_by_id(directory, &ids).await
        }
        false => DirectorySource::users(directory).await,
    };
    let users = match users {
        Ok(u) => u,
        Err(e) => {
            plan.problems
                .push(unreadable("the directory's users", format!("{e:#}")));
            return None;
        }
    };
    let by_id: BTreeMap<&str, &DirectoryUser> = users.iter().map(|u| (u.id.as_str(), u)).collect();
    let members_of = fleet.members();
    let wanted: Vec<Wanted> = policies
        .access_assignments
        .iter()
        .map(|a| Wanted {
            mapping: a.name.as_str().into(),
            spec: &a.spec,
            members: members(snapshot.get(&group_request(&a.spec)), &by_id),
            accounts: scope::assignment_accounts(&a.spec, members_of.iter().map(|m| &m.account))
                .into_iter()
                .filter(|id| reachable.contains(id))
                .collect(),
            blocked: enforced.blocked_assignments.contains(&a.name),
        })
        .collect();
    // The fast path read the groups' members only: the identity-store users of the people
    // joining a group are looked up by name, so that they are added (and bound) as a full
    // pass would; one that cannot be read waits for the full pass, holding nothing else.
    let mut observed = observed;
    let unread = match fast {
        true => joining_users(&clients, &mut observed, &wanted).await,
        false => BTreeSet::new(),
    };
    let mut p = people::plan(&people::Inputs {
        wanted: &wanted,
        observed: &observed,
        mark: &mark,
        owner_tag: &config.owner_tag,
        now: settings.now,
        prune: settings.prune && !fast,
        recorded_baselines,
        window_seconds: settings.safety.removal_window_seconds,
        propagation_seconds: settings.safety.propagation_seconds,
        recorded_people,
    });
    if !unread.is_empty() {
        drop_grants_to(&mut p, &unread);
    }
    let mut state = fleet.people();
    if fast {
        // The pass keeps revocations and the additions to trustsync's groups
        // (`fast_path_action`): the rest of the grants and repairs wait for the full pass.
        let now = Instant::now();
        state
            .revoked
            .retain(|(_, _, at)| now.duration_since(*at) < REVOKED_MEMORY);
        for c in &p.changes {
            if let (Action::People(PeopleAction::RemoveGroupMembers { .. }), Some(m)) =
                (&c.action, &c.mapping)
            {
                for u in &c.members_removed {
                    state.revoked.push((m.to_string(), u.to_lowercase(), now));
                }
            }
        }
    } else {
        state.index = Some(index_of(&observed, &wanted));
        drop_regrants(&mut p, &state, began);
    }
    drop(state);
    *plan = Plan::merge(vec![std::mem::take(plan), p]);
    let groups = policies
        .access_assignments
        .iter()
        .filter_map(|a| {
            let g = snapshot.get(&group_request(&a.spec))?.as_ref().ok()?;
            Some((a.name.to_string(), g.id.to_string()))
        })
        .collect();
    let read = users
        .iter()
        .map(|u| (u.user_principal_name.to_lowercase(), u.id.to_string()));
    let ids = {
        let mut state = fleet.people();
        if !fast {
            state.ids.clear();
        }
        state.ids.extend(read);
        // Only the names this plan's people changes carry.
        let named: BTreeSet<String> = plan
            .changes
            .iter()
            .chain(plan.held.iter().map(|h| &h.change))
            .filter(|c| c.action.is_people())
            .flat_map(|c| c.members_added.iter().chain(&c.members_removed))
            .map(|u| u.to_lowercase())
            .collect();
        named
            .into_iter()
            .filter_map(|u| state.ids.get(&u).map(|id| (u, id.clone())))
            .collect()
    };
    Some(PeoplePlanned {
        clients,
        groups,
        ids,
    })
}

/// A person the fast path took out after a full pass's directory read `began` is not
/// added back from that older read, and the permission set of a document the fast path
/// revoked in since is not rewritten from the full pass's older read of it (which lacks
/// the fast path's new denial: writing it would bring the departed person's sessions
/// back). The next pass decides again, from a read made after the revocation.
fn drop_regrants(p: &mut Plan, state: &PeopleState, began: Instant) {
    p.changes.retain_mut(|c| {
        let Some(m) = &c.mapping else {
            return true;
        };
        match &mut c.action {
            Action::People(PeopleAction::AddGroupMembers { user_names, .. }) => {
                let gone = state.revoked_since(m.as_str(), began);
                keep_joiners(user_names, &mut c.members_added, &gone)
            }
            Action::People(PeopleAction::PutPermissionSet {
                permission_set_arn: Some(_),
                ..
            })
            | Action::People(PeopleAction::DenyPermissionSetSessions { .. }) => {
                state.revoked_since(m.as_str(), began).is_empty()
            }
            _ => true,
        }
    });
}

/// The identity-store users of the enabled people of `wanted` that `observed` does not
/// list (the fast path reads the groups' members only), looked up by user name and added
/// to it; a name the store does not have is left to be created. Returns the lower-cased
/// names whose look-up failed.
async fn joining_users(
    clients: &AwsClients,
    observed: &mut ObservedIdentityCenter,
    wanted: &[Wanted<'_>],
) -> BTreeSet<String> {
    let known: BTreeSet<String> = observed
        .users
        .iter()
        .map(|u| u.user_name.to_lowercase())
        .collect();
    let names: BTreeSet<String> = wanted
        .iter()
        .filter(|w| !w.blocked)
        .filter_map(|w| match &w.members {
            Members::Read(people) => Some(people),
            Members::Unresolved { .. } => None,
        })
        .flatten()
        .filter(|p| p.enabled && !known.contains(&p.user_name.to_lowercase()))
        .map(|p| p.user_name.clone())
        .collect();
    let store = observed.identity_store_id.clone();
    let mut unread = BTreeSet::new();
    for name in names {
        let found = match clients.user_id(&store, &name).await {
            Ok(id) => clients.describe_user(&store, &id).await.map(Some),
            Err(f) if f.is(&["ResourceNotFoundException"]) => Ok(None),
            Err(f) => Err(f),
        };
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

/// Takes `names` (lower-cased) out of the plan's user creations and group additions.
fn drop_grants_to(p: &mut Plan, names: &BTreeSet<String>) {
    p.changes.retain_mut(|c| match &mut c.action {
        Action::People(PeopleAction::CreateIdentityStoreUser { user_name, .. }) => {
            !names.contains(&user_name.to_lowercase())
        }
        Action::People(PeopleAction::AddGroupMembers { user_names, .. }) => {
            keep_joiners(user_names, &mut c.members_added, names)
        }
        _ => true,
    });
}

/// Takes the people of `drop` (lower-cased names) out of a group addition's user names and
/// its record of members added; whether anyone is left to add.
fn keep_joiners(
    user_names: &mut Vec<String>,
    members_added: &mut Vec<String>,
    drop: &BTreeSet<String>,
) -> bool {
    user_names.retain(|u| !drop.contains(&u.to_lowercase()));
    members_added.retain(|u| !drop.contains(&u.to_lowercase()));
    !user_names.is_empty()
}

/// What the fast path needs of the index, from a full pass's read.
fn index_of(observed: &ObservedIdentityCenter, wanted: &[Wanted]) -> PeopleIndex {
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

/// Identity Center as the fast path reads it: for each document, its group's members now
/// and its permission set now, found through the index, or looked up by name when the
/// index lacks them (made after the full pass that built it), and the users by the
/// index's names or looked up. What was looked up goes into `index`. No assignment is
/// read: the fast path only takes people out.
async fn fast_read(
    clients: &AwsClients,
    index: &mut PeopleIndex,
    policies: &PolicySet,
) -> Result<ObservedIdentityCenter, crate::model::call::Failure> {
    let (instance, store) = (index.instance_arn.clone(), index.identity_store_id.clone());
    let mut observed = ObservedIdentityCenter {
        instance_arn: instance.clone(),
        identity_store_id: store.clone(),
        ..ObservedIdentityCenter::default()
    };
    let absent = |f: &crate::model::call::Failure| {
        f.is(&["ResourceNotFoundException"]) || f.message.starts_with("no permission set named")
    };
    for a in &policies.access_assignments {
        let name = a.name.to_string();
        if !index.groups.contains_key(&name) {
            match clients.group_id(&store, &name).await {
                Ok(id) => {
                    let g = clients.describe_group(&store, &id).await?;
                    index.groups.insert(name.clone(), g);
                }
                Err(f) if absent(&f) => continue, // no group yet: nobody to take out
                Err(f) => return Err(f),
            }
        }
        if !index.sets.contains_key(&name) {
            match clients
                .permission_set_arn(&instance, &a.spec.permission_set.name)
                .await
            {
                Ok(arn) => {
                    index.sets.insert(name.clone(), arn);
                }
                Err(f) if absent(&f) => continue,
                Err(f) => return Err(f),
            }
        }
        let (group, arn) = (&index.groups[&name], index.sets[&name].clone());
        let members = clients.group_members(&store, &group.id).await?;
        for m in &members {
            if !index.users.contains_key(&m.user_id) {
                let u = clients.describe_user(&store, &m.user_id).await?;
                index.users.insert(u.id.clone(), u);
            }
        }
        observed.groups.push(IdentityCenterGroup {
            members,
            ..group.clone()
        });
        let mut set = clients.permission_set(&instance, &arn).await?;
        // The inline policy alone: it holds the session denials; what else the set
        // grants is the full pass's to compare.
        set.policies = Some(crate::observed::PermissionSetPolicies {
            inline_policy: clients.permission_set_inline(&instance, &arn).await?,
            ..Default::default()
        });
        observed.permission_sets.push(set);
    }
    let ids: BTreeSet<&String> = observed
        .groups
        .iter()
        .flat_map(|g| g.members.iter().map(|m| &m.user_id))
        .collect();
    observed.users = ids
        .into_iter()
        .filter_map(|id| index.users.get(id).cloned())
        .collect();
    Ok(observed)
}

/// An AccessAssignment's people, from its group's members joined with the directory's
/// users by object id; or why the group could not be read, with the user names that may
/// keep their access.
fn members(
    read: Option<
        &Result<crate::sources::directory::GroupMembers, crate::sources::directory::GroupError>,
    >,
    users: &BTreeMap<&str, &DirectoryUser>,
) -> Members {
    let person = |u: &DirectoryUser| Person {
        id: u.id.to_string(),
        user_name: u.user_principal_name.clone(),
        display_name: u.display_name.clone(),
        given_name: u.given_name.clone(),
        surname: u.surname.clone(),
        mail: u.mail.clone(),
        enabled: u.account_enabled,
        guest: u.is_guest() || u.user_principal_name.contains("#EXT#"),
    };
    match read {
        Some(Ok(g)) => Members::Read(
            g.members
                .iter()
                .filter(|m| m.kind == MemberKind::User)
                .filter_map(|m| users.get(m.id.as_str()).map(|u| person(u)))
                .collect(),
        ),
        Some(Err(e)) => Members::Unresolved {
            why: e.to_string(),
            may_keep: e
                .may_keep()
                .iter()
                .filter_map(|id| users.get(id.as_str()))
                .map(|u| u.user_principal_name.clone())
                .collect(),
        },
        // Not asked of the directory (a bug): nobody is added, nobody removed.
        None => Members::Unresolved {
            why: "the group was not read".into(),
            may_keep: users
                .values()
                .map(|u| u.user_principal_name.clone())
                .collect(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Change;

    fn add(mapping: &str, users: &[&str]) -> Change {
        let mut c = Change::new(
            Action::People(PeopleAction::AddGroupMembers {
                identity_store_id: "d-1".into(),
                group_name: mapping.into(),
                group_id: None,
                user_names: users.iter().map(|u| u.to_string()).collect(),
                user_ids: BTreeMap::new(),
                bindings: BTreeMap::new(),
            }),
            "g",
            Some(mapping),
            "joined",
        );
        c.members_added = users.iter().map(|u| u.to_string()).collect();
        c
    }

    /// A permission set update planned from a read older than a fast-path revocation of
    /// its document would write the revocation's denial away: it waits for the next pass.
    #[test]
    fn a_full_pass_does_not_rewrite_a_set_the_fast_path_revoked_in_after_its_read_began() {
        let began = Instant::now();
        let state = PeopleState {
            ids: BTreeMap::new(),
            index: None,
            revoked: vec![(
                "ops".into(),
                "ana@x".into(),
                began + Duration::from_millis(5),
            )],
        };
        let put = |mapping: &str, arn: Option<&str>| {
            Change::new(
                Action::People(PeopleAction::PutPermissionSet {
                    instance_arn: "i".into(),
                    permission_set_arn: arn.map(String::from),
                    name: mapping.into(),
                    description: "d".into(),
                    session_duration: "PT1H".into(),
                    inline_policy: None,
                    delete_inline_policy: false,
                    attach_managed_policies: Vec::new(),
                    detach_managed_policies: Vec::new(),
                    attach_customer_managed_policies: Vec::new(),
                    detach_customer_managed_policies: Vec::new(),
                    put_boundary: None,
                    delete_boundary: false,
                }),
                "ps",
                Some(mapping),
                "drift",
            )
        };
        let mut p = Plan {
            changes: vec![
                put("ops", Some("ps-1")),
                put("dev", Some("ps-2")),
                put("ops", None),
            ],
            ..Plan::default()
        };
        drop_regrants(&mut p, &state, began);
        let kept: Vec<(Option<&str>, bool)> = p
            .changes
            .iter()
            .map(|c| {
                let Action::People(PeopleAction::PutPermissionSet {
                    permission_set_arn, ..
                }) = &c.action
                else {
                    panic!()
                };
                (c.mapping.as_deref(), permission_set_arn.is_some())
            })
            .collect();
        assert_eq!(
            kept,
            [(Some("dev"), true), (Some("ops"), false)],
            "ops's update of its existing set waits; another document's, and a create, go"
        );
    }

    #[test]
    fn a_full_pass_does_not_add_back_whom_the_fast_path_took_out_after_its_read_began() {
        let began = Instant::now();
        let state = PeopleState {
            ids: BTreeMap::new(),
            index: None,
            revoked: vec![
                (
                    "ops".into(),
                    "ana@x".into(),
                    began + Duration::from_millis(5),
                ),
                ("ops".into(), "bo@x".into(), began - Duration::from_secs(1)),
                (
                    "dev".into(),
                    "cy@x".into(),
                    began + Duration::from_millis(5),
                ),
            ],
        };
        let mut p = Plan {
            changes: vec![add("ops", &["Ana@x", "bo@x"]), add("dev", &["cy@x"])],
            ..Plan::default()
        };
        drop_regrants(&mut p, &state, began);
        assert_eq!(
            p.changes.len(),
            1,
            "dev's only grant is dropped: {:#?}",
            p.changes
        );
        assert_eq!(
            p.changes[0].members_added,
            ["bo@x"],
            "ana was taken out after the read began; bo before it, so the read saw it"
        );
    }
}
