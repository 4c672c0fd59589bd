//! People in a pass: what the AccessAssignments need read (IAM Identity Center, the
//! directory's users, their groups' members), made concrete for [`crate::plan::people`],
//! planned and merged into the pass's plan. The writes go to the Identity Center client
//! this returns.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::adapters::aws::AwsClients;
use crate::config::Config;
use crate::plan::people::{self, Members, Person, Wanted};
use crate::plan::{Plan, Problem, ProblemKind, Settings};
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

/// Plans people and merges them into `plan`; returns the client their writes go to. A
/// failed read of Identity Center or of the directory's users is a problem of the pass
/// (nothing is planned for people), never "nobody".
pub async fn plan_people(
    plan: &mut Plan,
    (policies, config, settings): (&PolicySet, &Config, &Settings),
    fleet: &Fleet,
    reachable: &BTreeSet<String>,
    (enforced, snapshot): (&Enforced, &DirectorySnapshot),
    directory: &tokio::sync::Mutex<DirectorySource>,
) -> Option<Arc<AwsClients>> {
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
    let accounts: Vec<String> = reachable.iter().cloned().collect();
    let observed = match clients
        .read_identity_center(
            config.identity_center.instance_arn.as_deref(),
            &accounts,
            Some(&mark),
        )
        .await
    {
        Ok(o) => o,
        Err(e) => {
            plan.problems
                .push(unreadable("IAM Identity Center", e.to_string()));
            return None;
        }
    };
    // From now on the controller's watcher follows users' changes too.
    directory.lock().await.track_users();
    let users = match DirectorySource::users(directory).await {
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
    let accounts: BTreeSet<String> = reachable.clone();
    let p = people::plan(&people::Inputs {
        wanted: &wanted,
        observed: &observed,
        mark: &mark,
        accounts: &accounts,
        now: settings.now,
        prune: settings.prune,
    });
    *plan = Plan::merge(vec![std::mem::take(plan), p]);
    Some(clients)
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
