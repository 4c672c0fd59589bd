//! People in a pass, in three steps: [`read`] what the AccessAssignments need (IAM
//! Identity Center, the directory's users, their groups' members) and make each
//! document's people concrete for [`crate::plan::people`]; [`decide`] their changes, with
//! no I/O; [`remember`] what the passes after it need. The writes go to the Identity
//! Center client the read returns.
//!
//! A focused pass (a departure the watcher placed: a group change, or a user disabled or
//! renamed in one of the groups) reads only what the touched documents need: their
//! groups' members from the delta cache, those members from Graph, trustsync's group and
//! permission set of each, found through what the last full pass learnt
//! ([`PeopleState`](crate::runtime::people_state::PeopleState)), and plans their
//! revocations and onboarding only. A full pass whose directory read began before such a
//! removal does not add the person back ([`Revocations::since`]).
//!
//! A full pass in the controller takes trustsync's permission sets as their last full read
//! showed them ([`crate::runtime::set_cache`]) until each one's schedule
//! (`identityCenter.fullReadSeconds`) or a write says otherwise; its groups' members are
//! read every pass. Whatever its plan would change of a document, [`refresh`] reads that
//! document's set again first, and the pass plans from that read.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::adapters::aws::{Adoptable, AwsClients};
use crate::config::Config;
use crate::model::call::Failure;
use crate::observed::{IdentityCenterPermissionSet, ObservedIdentityCenter};
use crate::plan::people::{self, Members, Person, Wanted};
use crate::plan::{Action, PeopleAction, Plan, Problem, ProblemKind, Settings};
use crate::runtime::directory::DirectorySource;
use crate::runtime::fleet::Fleet;
use crate::runtime::people_fast::{fast_read, joining_users, look_up_unseen};
use crate::runtime::people_state::{index_of, Revocations};
use crate::runtime::scope::Scope;
use crate::runtime::set_cache::touched_sets;
use crate::sources::directory::{DirectorySnapshot, DirectoryUser, GroupRequest, MemberKind};
use crate::sources::policy::guardrails::Enforced;
use crate::sources::policy::{scope, AccessAssignmentSpec, PolicySet};

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

/// What a pass read for people: the Identity Center client, what it showed, the
/// directory's users, each document's people made concrete, and what the fast path
/// revoked lately.
pub struct PeopleRead<'p> {
    /// Where people's writes go.
    pub clients: Arc<AwsClients>,
    observed: ObservedIdentityCenter,
    users: Vec<DirectoryUser>,
    wanted: Vec<Wanted<'p>>,
    /// The joining people whose identity-store user could not be looked up (lower-cased
    /// names): their grants wait for the full pass.
    unread: BTreeSet<String>,
    /// The fast path's removals, as remembered when the read began.
    revoked: Revocations,
    /// The accounts a full pass read assignments in.
    accounts: Vec<String>,
    /// The permission sets a full pass took from the set cache, not read this pass (ARNs).
    from_cache: BTreeSet<String>,
}

/// Reads what planning people needs, for the documents of `policies` (narrowed to the
/// pass's scope). `None`: nothing to plan (a focused pass before any full pass has read
/// Identity Center). A failed read of Identity Center or of the directory's users is a
/// problem of the pass (nothing is planned for people), never "nobody".
pub async fn read<'p>(
    pass_scope: Scope<'_>,
    (policies, config): (&'p PolicySet, &Config),
    fleet: &Fleet,
    reachable: &BTreeSet<String>,
    (enforced, snapshot): (&Enforced, &DirectorySnapshot),
    directory: &tokio::sync::Mutex<DirectorySource>,
) -> Option<Result<PeopleRead<'p>, Problem>> {
    let unreadable = |what: &str, e: String| Problem {
        kind: ProblemKind::PeopleUnreadable,
        account: None,
        mapping: None,
        resource: what.to_string(),
        message: format!(
            "{what} could not be read, so nothing was planned for people this pass: {e}"
        ),
    };
    let clients = match fleet.identity_center(config).await {
        Ok(c) => c,
        Err(e) => return Some(Err(unreadable("IAM Identity Center", e.to_string()))),
    };
    clients.forget_people_ids();
    let accounts: Vec<String> = reachable.iter().cloned().collect();
    // Identity Center and the directory's users at once: neither needs the other.
    let (identity_center, (users, unseen)) = tokio::join!(
        read_identity_center(pass_scope, &clients, policies, config, fleet, &accounts),
        async {
            // From now on the controller's watcher follows users' changes too.
            DirectorySource::track_users(directory).await;
            let users = read_users(pass_scope, policies, snapshot, directory).await;
            let unseen = match (&users, pass_scope.is_fleet()) {
                (Ok(read), false) => {
                    let wanted = wanted(policies, fleet, reachable, (enforced, snapshot), read);
                    look_up_unseen(&clients, fleet, &wanted).await
                }
                _ => BTreeMap::new(),
            };
            (users, unseen)
        }
    );
    let (observed, from_cache) = match identity_center? {
        Ok(o) => o,
        Err(e) => return Some(Err(unreadable("IAM Identity Center", e.to_string()))),
    };
    let users = match users {
        Ok(u) => u,
        Err(e) => return Some(Err(unreadable("the directory's users", format!("{e:#}")))),
    };
    let wanted = wanted(policies, fleet, reachable, (enforced, snapshot), &users);
    // A focused pass read the groups' members only: the identity-store users of the people
    // joining a group are looked up by name, so that they are added (and bound) as a full
    // pass would; one that cannot be read waits for the full pass, holding nothing else.
    let mut observed = observed;
    let unread = match pass_scope.is_fleet() {
        true => BTreeSet::new(),
        false => joining_users(&clients, &mut observed, &wanted, unseen).await,
    };
    let revoked = fleet.people().revoked.clone();
    Some(Ok(PeopleRead {
        clients,
        observed,
        users,
        wanted,
        unread,
        revoked,
        accounts,
        from_cache,
    }))
}

/// Identity Center as the scope needs it: the whole instance (the full pass), or the
/// documents' groups and sets through what the last full pass learnt (`None` when none
/// has yet); with the permission sets taken from the set cache (ARNs).
async fn read_identity_center(
    pass_scope: Scope<'_>,
    clients: &AwsClients,
    policies: &PolicySet,
    config: &Config,
    fleet: &Fleet,
    accounts: &[String],
) -> Option<Result<(ObservedIdentityCenter, BTreeSet<String>), Failure>> {
    if pass_scope.is_fleet() {
        return Some(full_read(clients, policies, config, fleet, accounts).await);
    }
    // No full pass has read Identity Center yet: it will.
    let mut index = fleet.people().index.clone()?;
    let read = fast_read(clients, &mut index, policies).await;
    fleet.people().index = Some(index);
    Some(read.map(|o| (o, BTreeSet::new())))
}

/// The schedule of a permission set's full read (`identityCenter.fullReadSeconds`).
fn schedule(config: &Config) -> Duration {
    Duration::from_secs(config.identity_center.full_read_seconds)
}

/// The full pass's read of the instance: every user, group and group's members, and the
/// list of permission sets; each set as the set cache holds it while it is fresh (never a
/// set an adopting document may take over), else read in full and recorded there. Returns
/// the ARNs taken from the cache.
async fn full_read(
    clients: &AwsClients,
    policies: &PolicySet,
    config: &Config,
    fleet: &Fleet,
    accounts: &[String],
) -> Result<(ObservedIdentityCenter, BTreeSet<String>), Failure> {
    let adoptable = adoptable(policies);
    let began = Instant::now();
    let known = fleet
        .people()
        .sets
        .known(began, schedule(config), accounts, |s| {
            adoptable.sets.contains(&s.name.to_ascii_lowercase())
        });
    let observed = clients
        .read_identity_center_adopting(
            config.identity_center.instance_arn.as_deref(),
            accounts,
            Some(&mark(config)),
            (&adoptable, &known),
        )
        .await?;
    let listed: BTreeSet<&str> = observed
        .permission_sets
        .iter()
        .map(|s| s.arn.as_str())
        .collect();
    let from_cache: BTreeSet<String> = known
        .sets
        .into_keys()
        .filter(|a| listed.contains(a.as_str()))
        .collect();
    let read: Vec<&IdentityCenterPermissionSet> = observed
        .permission_sets
        .iter()
        .filter(|s| !from_cache.contains(&s.arn))
        .collect();
    let mut state = fleet.people();
    state.sets.keep_only(&listed);
    state.sets.record(
        &read,
        &observed.assignments,
        accounts,
        began,
        schedule(config),
    );
    tracing::info!(
        permission_sets = listed.len(),
        read_in_full = read.len(),
        from_cache = from_cache.len(),
        "read IAM Identity Center"
    );
    Ok((observed, from_cache))
}

/// Before a full pass plans people from what the set cache held: the sets its plan would
/// change anything of (through any change of their document, or of the set itself) are
/// read again in full, recorded in the cache, and put in place of what it held, until the
/// plan touches no set that came from the cache. So no write, a revocation's denial
/// included, is decided from a cached state: what the plan then makes is what a pass
/// reading everything would make for those documents. A failed read is the pass's
/// problem, as a failed read of Identity Center is.
pub async fn refresh(
    read: &mut PeopleRead<'_>,
    (config, settings): (&Config, &Settings),
    began: Instant,
    recorded: (&BTreeMap<String, String>, &BTreeMap<String, String>),
    fleet: &Fleet,
) -> Result<(), Problem> {
    while !read.from_cache.is_empty() {
        let probe = decide(read, Scope::Fleet, (config, settings), began, recorded);
        let stale: Vec<String> = touched_sets(&probe, &read.observed, &read.wanted)
            .into_iter()
            .filter(|arn| read.from_cache.contains(arn))
            .collect();
        if stale.is_empty() {
            return Ok(());
        }
        let at = Instant::now();
        let (sets, assignments) = read
            .clients
            .read_sets_in_full(&read.observed.instance_arn, &stale, &read.accounts)
            .await
            .map_err(|e| Problem {
                kind: ProblemKind::PeopleUnreadable,
                account: None,
                mapping: None,
                resource: "IAM Identity Center".into(),
                message: format!("the permission sets a change touches could not be read again, so nothing was planned for people this pass: {e}"),
            })?;
        tracing::info!(
            sets = stale.len(),
            "permission sets read again before planning a change"
        );
        let o = &mut read.observed;
        o.permission_sets.retain(|s| !stale.contains(&s.arn));
        o.permission_sets.extend(sets.iter().cloned());
        o.assignments
            .retain(|a| !stale.contains(&a.permission_set_arn));
        o.assignments.extend(assignments.iter().cloned());
        let refs: Vec<&IdentityCenterPermissionSet> = sets.iter().collect();
        fleet
            .people()
            .sets
            .record(&refs, &assignments, &read.accounts, at, schedule(config));
        read.from_cache.retain(|a| !stale.contains(a));
    }
    Ok(())
}

/// The groups and sets the documents with `adopt: true` may take over, by ASCII-lower-cased
/// name (as the planner compares them): the group named as the document, the document's set.
fn adoptable(policies: &PolicySet) -> Adoptable {
    let adopting = || policies.access_assignments.iter().filter(|a| a.spec.adopt);
    Adoptable {
        groups: adopting().map(|a| a.name.to_ascii_lowercase()).collect(),
        sets: adopting()
            .map(|a| a.spec.permission_set.name.to_ascii_lowercase())
            .collect(),
    }
}

/// The directory's users: all of them (the full pass), or the members of the documents'
/// groups, by id.
async fn read_users(
    pass_scope: Scope<'_>,
    policies: &PolicySet,
    snapshot: &DirectorySnapshot,
    directory: &tokio::sync::Mutex<DirectorySource>,
) -> anyhow::Result<Vec<DirectoryUser>> {
    if pass_scope.is_fleet() {
        return DirectorySource::users(directory).await;
    }
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

/// Each AccessAssignment's people and accounts, made concrete.
fn wanted<'p>(
    policies: &'p PolicySet,
    fleet: &Fleet,
    reachable: &BTreeSet<String>,
    (enforced, snapshot): (&Enforced, &DirectorySnapshot),
    users: &[DirectoryUser],
) -> Vec<Wanted<'p>> {
    let by_id: BTreeMap<&str, &DirectoryUser> = users.iter().map(|u| (u.id.as_str(), u)).collect();
    let members_of = fleet.members();
    policies
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
        .collect()
}

/// Plans people from what was read: pure. A focused pass prunes nothing; a full pass
/// whose directory read began at `began` does not undo what the fast path revoked since
/// ([`drop_regrants`]). `recorded_baselines` and `recorded_people`: the removal baselines
/// and the people the audit log holds.
pub fn decide(
    read: &PeopleRead<'_>,
    pass_scope: Scope<'_>,
    (config, settings): (&Config, &Settings),
    began: Instant,
    (recorded_baselines, recorded_people): (&BTreeMap<String, String>, &BTreeMap<String, String>),
) -> Plan {
    let mark = mark(config);
    let mut p = people::plan(&people::Inputs {
        wanted: &read.wanted,
        observed: &read.observed,
        mark: &mark,
        owner_tag: &config.owner_tag,
        now: settings.now,
        prune: pass_scope.prunes(settings.prune),
        adopting: pass_scope.is_fleet(),
        recorded_baselines,
        window_seconds: settings.safety.removal_window_seconds,
        propagation_seconds: settings.safety.propagation_seconds,
        recorded_people,
    });
    if !read.unread.is_empty() {
        drop_grants_to(&mut p, &read.unread);
    }
    if pass_scope.is_fleet() {
        drop_regrants(&mut p, &read.revoked, began);
    }
    p
}

/// What people's part of a pass leaves for the record: each document's Entra group
/// (object id), and the Entra object ids of the people `plan` names (people's changes name
/// users by user name, the directory's audit log by object id).
pub struct PeopleNames {
    /// Each document's Entra group (object id), for who changed it.
    pub groups: BTreeMap<String, String>,
    /// Entra object ids by lower-cased user principal name.
    pub ids: BTreeMap<String, String>,
}

/// The removals `plan` makes of people, held ones included, (document, lower-cased user
/// name): what a focused pass remembers. The checks only move changes between made and
/// held, so these are the removals people's plan made.
fn removals(plan: &Plan) -> Vec<(String, String)> {
    plan.changes
        .iter()
        .chain(plan.held.iter().map(|h| &h.change))
        .filter_map(|c| match (&c.action, &c.mapping) {
            (Action::People(PeopleAction::RemoveGroupMembers { .. }), Some(m)) => Some(
                c.members_removed
                    .iter()
                    .map(move |u| (m.to_string(), u.to_lowercase())),
            ),
            _ => None,
        })
        .flatten()
        .collect()
}

/// Remembers what the pass learnt for the passes after it: a full pass, where each
/// document's group and set are (the fast path's index) and every person's object id; a
/// focused pass, the removals `plan` (the pass's) makes. Returns the names `plan` needs.
pub fn remember(
    read: &PeopleRead<'_>,
    pass_scope: Scope<'_>,
    fleet: &Fleet,
    (snapshot, policies): (&DirectorySnapshot, &PolicySet),
    plan: &Plan,
) -> PeopleNames {
    let mut state = fleet.people();
    if pass_scope.is_fleet() {
        state.index = Some(index_of(&read.observed, &read.wanted));
        state.ids.clear();
        state.added.clear();
    } else {
        state.revoked.record(removals(plan), Instant::now());
        let added = plan
            .changes
            .iter()
            .filter(|c| c.action.is_people())
            .flat_map(|c| &c.members_added)
            .map(|u| u.to_lowercase());
        state.added.extend(added);
    }
    // Whatever the plan writes, or would (held), is read in full by the next full pass.
    state
        .sets
        .written(&touched_sets(plan, &read.observed, &read.wanted));
    state.ids.extend(
        read.users
            .iter()
            .map(|u| (u.user_principal_name.to_lowercase(), u.id.to_string())),
    );
    // Only the names this plan's people changes carry.
    let named: BTreeSet<String> = plan
        .changes
        .iter()
        .chain(plan.held.iter().map(|h| &h.change))
        .filter(|c| c.action.is_people())
        .flat_map(|c| c.members_added.iter().chain(&c.members_removed))
        .map(|u| u.to_lowercase())
        .collect();
    let ids = named
        .into_iter()
        .filter_map(|u| state.ids.get(&u).map(|id| (u, id.clone())))
        .collect();
    let groups = policies
        .access_assignments
        .iter()
        .filter_map(|a| {
            let g = snapshot.get(&group_request(&a.spec))?.as_ref().ok()?;
            Some((a.name.to_string(), g.id.to_string()))
        })
        .collect();
    PeopleNames { groups, ids }
}

/// A person the fast path took out after a full pass's directory read `began` is not
/// added back from that older read, and the permission set of a document the fast path
/// revoked in since is not rewritten from the full pass's older read of it (which lacks
/// the fast path's new denial: writing it would bring the departed person's sessions
/// back). The next pass decides again, from a read made after the revocation.
fn drop_regrants(p: &mut Plan, revoked: &Revocations, began: Instant) {
    p.changes.retain_mut(|c| {
        let Some(m) = &c.mapping else {
            return true;
        };
        match &mut c.action {
            Action::People(PeopleAction::AddGroupMembers { user_names, .. }) => {
                let gone = revoked.since(m.as_str(), began);
                keep_joiners(user_names, &mut c.members_added, &gone)
            }
            Action::People(PeopleAction::PutPermissionSet {
                permission_set_arn: Some(_),
                ..
            })
            | Action::People(PeopleAction::DenyPermissionSetSessions { .. }) => {
                revoked.since(m.as_str(), began).is_empty()
            }
            _ => true,
        }
    });
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
    use std::time::Duration;

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
        let state = Revocations(vec![(
            "ops".into(),
            "ana@x".into(),
            began + Duration::from_millis(5),
        )]);
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
        let state = Revocations(vec![
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
        ]);
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
