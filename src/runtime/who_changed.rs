//! Who changed the groups: each change that grants or revokes group members is given who
//! changed the group in Entra and when, from the directory's audit log. It is evidence for
//! the record, looked up after the plan is decided and bounded in time: it never holds a
//! revocation back, and a directory that cannot say is a notice, never a failure.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::adapters::entra;
use crate::plan::{Change, Notice, NoticeKind, Plan};
use crate::sources::directory::MembershipChange;

/// Gives the plan's changes who changed their groups (`groups`: each mapping's group;
/// `people`: Entra object ids by lower-cased user name), waiting at most
/// [`MEMBERSHIP_AUDIT_BUDGET`]: the directory's audit log is a courtesy to the reader of
/// the record, and a slow or throttled one must not hold a revocation back.
pub async fn record(
    plan: &mut Plan,
    (groups, people): (&BTreeMap<String, String>, &BTreeMap<String, String>),
    directory: Option<&entra::GraphReader>,
) {
    let lookup = who_changed_the_groups(plan, (groups, people), directory);
    if tokio::time::timeout(MEMBERSHIP_AUDIT_BUDGET, lookup)
        .await
        .is_err()
    {
        tracing::warn!("the directory audit log did not answer in time; recording changes without who made them");
        plan.notices.push(Notice {
            kind: NoticeKind::DirectoryAuditUnavailable,
            account: None,
            resource: "auditLogs/directoryAudits".into(),
            message: format!(
                "who changed the groups is not recorded: the directory audit log did not answer within {}s",
                MEMBERSHIP_AUDIT_BUDGET.as_secs()
            ),
        });
    }
}

/// How far back the directory's audit log is searched for who changed a group: Entra keeps
/// it 7 days on the free tier (30 with P1/P2).
const MEMBERSHIP_AUDIT_DAYS: i64 = 7;

/// How long a pass waits for the directory's audit log, all groups together: a revocation
/// waits at most this long for the record of who asked for it.
const MEMBERSHIP_AUDIT_BUDGET: Duration = Duration::from_secs(3);

/// Gives each change that grants or revokes group members who changed the group in Entra
/// and when. A directory that cannot say (no AuditLog.Read.All, say) is a notice, never a
/// failure: nothing may hold a revocation back.
async fn who_changed_the_groups(
    plan: &mut Plan,
    (groups, people): (&BTreeMap<String, String>, &BTreeMap<String, String>),
    directory: Option<&entra::GraphReader>,
) {
    let since = (time::OffsetDateTime::now_utc() - time::Duration::days(MEMBERSHIP_AUDIT_DAYS))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    // A new role's members are granted by the policy change that created the mapping
    // (its commit and author are recorded); who once added them to the group is not
    // asked, which keeps a first plan of N mappings at N/10 Graph requests.
    let group_of = |c: &Change| -> Option<&str> {
        // And a new group of people, as a new role.
        let new_role = matches!(
            c.action,
            crate::plan::Action::Iam(crate::plan::IamAction::CreateRole { .. })
                | crate::plan::Action::People(crate::plan::PeopleAction::AddGroupMembers {
                    group_id: None,
                    ..
                })
        );
        if new_role || (c.members_added.is_empty() && c.members_removed.is_empty()) {
            return None;
        }
        c.mapping
            .as_deref()
            .and_then(|m| groups.get(m))
            .map(String::as_str)
    };
    let wanted: BTreeSet<&str> = plan
        .changes
        .iter()
        .chain(plan.held.iter().map(|h| &h.change))
        .filter_map(group_of)
        .collect();
    if wanted.is_empty() {
        return;
    }
    let Some(reader) = directory else {
        return;
    };
    let wanted: Vec<&str> = wanted.into_iter().collect();
    let (read, unavailable) = read_changes(reader, &wanted, &since).await;
    let held = plan.held.iter_mut().map(|h| &mut h.change);
    for c in plan.changes.iter_mut().chain(held) {
        let Some(changes) = group_of(c).and_then(|g| read.get(g)) else {
            continue;
        };
        let latest = |member: &String, added: bool| {
            // People's changes name users by user name; the log, by object id.
            let id = people.get(&member.to_lowercase()).unwrap_or(member);
            changes
                .iter()
                .rev()
                .find(|m| &m.member == id && m.added == added)
                .cloned()
        };
        c.membership = c
            .members_added
            .iter()
            .filter_map(|m| latest(m, true))
            .chain(c.members_removed.iter().filter_map(|m| latest(m, false)))
            .collect();
    }
    for (group, error) in unavailable {
        tracing::warn!(group = %group, error = %error, "cannot read who changed the group from the directory audit log");
        plan.notices.push(Notice {
            kind: NoticeKind::DirectoryAuditUnavailable,
            account: None,
            resource: group,
            message: format!("who changed this group is not recorded: the directory audit log could not be read ({error}); grant the app AuditLog.Read.All"),
        });
    }
}

/// What the directory's audit log says of each group since `since`, and the groups it
/// could not say anything of, with why.
async fn read_changes(
    reader: &entra::GraphReader,
    wanted: &[&str],
    since: &str,
) -> (
    BTreeMap<String, Vec<MembershipChange>>,
    BTreeMap<String, String>,
) {
    let mut read: BTreeMap<String, Vec<MembershipChange>> = BTreeMap::new();
    let mut unavailable: BTreeMap<String, String> = BTreeMap::new();
    match reader.membership_changes(wanted, since).await {
        Ok(answers) => {
            for (group, answer) in wanted.iter().zip(answers) {
                match answer {
                    Ok(changes) => {
                        read.insert(group.to_string(), changes);
                    }
                    Err(e) => {
                        unavailable.insert(group.to_string(), e.to_string());
                    }
                }
            }
        }
        Err(e) => {
            for group in wanted {
                unavailable.insert(group.to_string(), e.to_string());
            }
        }
    }
    (read, unavailable)
}
