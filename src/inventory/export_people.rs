//! `trustsync export` for people: an AccessAssignment for each IAM Identity Center
//! permission set assigned to a group in the accounts in scope, made by SCIM or by hand,
//! as the document that would reproduce it, with `adopt: true` so that its plan takes the
//! set and group over (`plan::people`'s adoption) instead of stopping on them. What a document cannot say is written as a
//! comment in the document and reported on stderr, naming the set; a set no document can
//! reproduce is not exported, with why.

use std::collections::{BTreeMap, BTreeSet};

use super::export::{document, Export};
use super::Directory;
use crate::observed::{AssignedTo, IdentityCenterGroup, IdentityCenterPermissionSet};
use crate::observed::{ObservedIdentityCenter, PermissionSetPolicies};
use crate::sources::directory::{DirectoryUser, MemberKind};
use crate::sources::policy::short_lines;
use crate::sources::policy::{
    AccessAssignmentSpec, AccountSelector, CustomerManagedPolicy, GroupSelector, GuestRule,
    MemberSelection, PermissionSetBoundary, PermissionSetSpec, PolicySet, DENIAL_RESERVE,
    MARK_BUDGET,
};

/// The longest description a document's permission set may carry (Identity Center's 700,
/// less what trustsync's mark keeps).
const DESCRIPTION_MAX: usize = 700 - MARK_BUDGET;

/// The longest inline policy a document may carry (Identity Center's 32,768, less what the
/// session denials keep).
const INLINE_MAX: usize = 32_768 - DENIAL_RESERVE;

/// What the people export reads.
pub struct PeopleSource<'a> {
    /// The instance, its groups with their members, its sets (with their policies and
    /// tags for [`sets_to_read`]) and their assignments in the accounts in scope.
    pub ic: &'a ObservedIdentityCenter,
    /// trustsync's mark (`runtime::people::mark`).
    pub mark: &'a str,
    /// The owner tag's key, left out of the tags reported.
    pub owner_key: &'a str,
    /// The directory's groups, to name the Entra group by id.
    pub directory: &'a Directory,
    /// The directory's users: guests, and who the Entra group holds.
    pub users: &'a [DirectoryUser],
    /// Several accounts in scope: each document names its accounts.
    pub many_accounts: bool,
}

/// Any trustsync instance's mark, as `runtime::people::mark` writes it.
fn carries_any_mark(description: Option<&str>) -> bool {
    description.is_some_and(|d| d.contains("[trustsync "))
}

/// The permission sets whose policies and tags the export needs: those assigned in the
/// accounts read that no trustsync instance marks.
pub fn sets_to_read(ic: &ObservedIdentityCenter) -> Vec<String> {
    let assigned: BTreeSet<&str> = ic
        .assignments
        .iter()
        .map(|a| a.permission_set_arn.as_str())
        .collect();
    ic.permission_sets
        .iter()
        .filter(|s| assigned.contains(s.arn.as_str()))
        .filter(|s| !carries_any_mark(s.description.as_deref()))
        .map(|s| s.arn.clone())
        .collect()
}

/// Adds to `out` an AccessAssignment for each permission set of `src` that a group holds
/// and no document of `policies` names yet.
pub fn export_people(src: &PeopleSource, policies: &PolicySet, out: &mut Export) {
    let mut taken: BTreeSet<String> = policies
        .access_assignments
        .iter()
        .map(|d| d.name.clone())
        .chain(policies.role_mappings.iter().map(|d| d.name.clone()))
        .collect();
    let claimed: BTreeSet<String> = policies
        .access_assignments
        .iter()
        .map(|d| d.spec.permission_set.name.to_lowercase())
        .collect();
    for set in &src.ic.permission_sets {
        if claimed.contains(&set.name.to_lowercase()) {
            continue; // the repository's already
        }
        match exported(src, set, &mut taken) {
            Ok(None) => {}
            Ok(Some((name, comment, spec))) => {
                out.yaml
                    .push_str(&document("AccessAssignment", &name, &comment, &spec));
                out.assignments += 1;
            }
            Err(why) => out.skipped.push(format!(
                "permission set {} ({}): {}",
                set.name,
                set.arn,
                short_lines(&why)
            )),
        }
    }
}

/// Where a set is assigned in the accounts read: to each group, and to people directly.
#[derive(Default)]
struct Holders<'a> {
    groups: BTreeMap<&'a str, BTreeSet<&'a str>>,
    users: BTreeSet<(&'a str, &'a str)>,
}

fn holders<'a>(ic: &'a ObservedIdentityCenter, arn: &str) -> Holders<'a> {
    let mut h = Holders::default();
    for a in ic
        .assignments
        .iter()
        .filter(|a| a.permission_set_arn == arn)
    {
        match a.principal_type {
            AssignedTo::Group => {
                h.groups
                    .entry(a.principal_id.as_str())
                    .or_default()
                    .insert(a.account.as_str());
            }
            AssignedTo::User => {
                h.users
                    .insert((a.principal_id.as_str(), a.account.as_str()));
            }
        }
    }
    h
}

type Exported = (String, String, AccessAssignmentSpec);

/// The document for one set (its name, its comment and its spec); `None` when there is
/// nothing to export (trustsync's, or assigned to nobody here); why not, when a document
/// cannot reproduce it.
fn exported(
    src: &PeopleSource,
    set: &IdentityCenterPermissionSet,
    taken: &mut BTreeSet<String>,
) -> Result<Option<Exported>, String> {
    let h = holders(src.ic, &set.arn);
    if h.groups.is_empty() && h.users.is_empty() {
        return Ok(None);
    }
    if carries_any_mark(set.description.as_deref()) {
        if set
            .description
            .as_deref()
            .is_some_and(|d| d.contains(src.mark))
        {
            return Ok(None); // trustsync's own
        }
        return Err(
            "another trustsync instance owns it (its description carries another mark)".into(),
        );
    }
    let group = one_group(src, &h)?;
    let name = document_name(&group.display_name, taken)?;
    let Some(policies) = &set.policies else {
        return Err("its policies were not read".into());
    };
    let mut notes = Vec::new();
    let permission_set = set_spec(set, policies, src.owner_key, &mut notes)?;
    let (selector, guests) = entra_group(src, group, &mut notes);
    let accounts: Vec<String> = h.groups[group.id.as_str()]
        .iter()
        .map(|a| a.to_string())
        .collect();
    direct_users(src, &h, &mut notes);
    let spec = AccessAssignmentSpec {
        group: selector,
        members: MemberSelection { transitive: false },
        guests,
        permission_set,
        accounts: src.many_accounts.then(|| AccountSelector {
            ids: accounts.clone(),
            labels: BTreeMap::new(),
        }),
        adopt_users: Vec::new(),
        // The set and group exist: the document takes them over rather than stopping on
        // them as a conflict (the plan refuses what it cannot adopt safely, naming why).
        adopt: true,
    };
    let mut comment = format!(
        "exported from {} ({}), assigned to the identity-store group {} ({}) in {}",
        set.name,
        set.arn,
        group.display_name,
        group.id,
        accounts.join(", ")
    );
    for n in &notes {
        comment.push_str(&format!("\nleft out: {n}"));
    }
    for n in notes {
        eprintln!("warning: permission set {}: {}", set.name, short_lines(&n));
    }
    Ok(Some((name, comment, spec)))
}

/// The one identity-store group the set is assigned to, which trustsync does not own.
fn one_group<'a>(src: &'a PeopleSource, h: &Holders) -> Result<&'a IdentityCenterGroup, String> {
    let group_name = |id: &str| {
        src.ic
            .groups
            .iter()
            .find(|g| g.id == id)
            .map_or(id.to_string(), |g| g.display_name.clone())
    };
    let id = match h.groups.len() {
        0 => {
            return Err("assigned to people directly, to no group: an AccessAssignment gives a set to one group's people".into())
        }
        1 => *h.groups.keys().next().expect("one"),
        n => {
            let mut names: Vec<String> = h.groups.keys().map(|g| group_name(g)).collect();
            names.sort_by_key(|n| n.to_lowercase());
            return Err(format!(
                "assigned to {n} groups ({}): an AccessAssignment gives a set to one group, and trustsync takes its set away from any other; split it into one set per group, or write the documents by hand",
                names.join(", ")
            ));
        }
    };
    let group =
        src.ic.groups.iter().find(|g| g.id == id).ok_or_else(|| {
            format!("assigned to group {id}, which the identity store no longer has")
        })?;
    if carries_any_mark(group.description.as_deref()) {
        return Err(format!(
            "its group {} is a trustsync group (its description carries a mark): give that group's document this set instead",
            group.display_name
        ));
    }
    Ok(group)
}

/// The document's name: the group's display name, which trustsync's group is named after
/// (compared without case), so it must read as a document name.
fn document_name(group: &str, taken: &mut BTreeSet<String>) -> Result<String, String> {
    let name = group.to_ascii_lowercase();
    let valid = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if !valid {
        return Err(format!(
            "its group `{group}` is not named as a document can be (1 to 63 letters, digits or `-`): trustsync's group is named after its document, so this one could not be the document's; rename the group or write the document by hand"
        ));
    }
    if !taken.insert(name.clone()) {
        return Err(format!(
            "a document named `{name}` (its group's name) is in the repository already"
        ));
    }
    Ok(name)
}

/// The permission set as a document writes it; what the schema cannot say, in `notes`.
fn set_spec(
    set: &IdentityCenterPermissionSet,
    p: &PermissionSetPolicies,
    owner_key: &str,
    notes: &mut Vec<String>,
) -> Result<PermissionSetSpec, String> {
    let inline = p.inline_policy.as_ref().map(|v| (v, v.to_string().len()));
    if let Some((_, len)) = inline.filter(|(_, len)| *len > INLINE_MAX) {
        return Err(format!(
            "its inline policy is {len} characters; a document's holds at most {INLINE_MAX} (the rest of Identity Center's 32,768 is kept for the session denials)"
        ));
    }
    let mut description = set.description.clone().filter(|d| !d.trim().is_empty());
    if let Some(d) = description
        .as_mut()
        .filter(|d| d.chars().count() > DESCRIPTION_MAX)
    {
        *d = d.chars().take(DESCRIPTION_MAX).collect();
        notes.push(format!(
            "the description's characters past {DESCRIPTION_MAX} (the rest of Identity Center's 700 is kept for trustsync's mark)"
        ));
    }
    let tags: Vec<String> = p
        .tags
        .iter()
        .flatten()
        .filter(|(k, _)| *k != owner_key)
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if !tags.is_empty() {
        notes.push(format!(
            "its tags {} (an AccessAssignment has no tags; trustsync leaves them on the set)",
            tags.join(", ")
        ));
    }
    let session_duration = set
        .session_duration
        .clone()
        .unwrap_or_else(|| "PT1H".into());
    let boundary = p.boundary.as_ref().map(|b| PermissionSetBoundary {
        managed_policy_arn: b.managed_policy_arn.clone(),
        customer_managed_policy: b.customer_managed_policy.as_ref().map(|(name, path)| {
            CustomerManagedPolicy {
                name: name.clone(),
                path: path.clone(),
            }
        }),
    });
    Ok(PermissionSetSpec {
        name: set.name.clone(),
        description,
        session_duration,
        managed_policies: p.managed_policies.clone(),
        customer_managed_policies: p
            .customer_managed_policies
            .iter()
            .map(|(name, path)| CustomerManagedPolicy {
                name: name.clone(),
                path: path.clone(),
            })
            .collect(),
        inline_policy: inline.map(|(v, _)| v.clone()),
        permissions_boundary: boundary,
    })
}

/// The Entra group the identity-store group mirrors (the one Entra group of its display
/// name, as SCIM names it), guests included when the group holds any; what would change
/// in `notes`.
fn entra_group(
    src: &PeopleSource,
    group: &IdentityCenterGroup,
    notes: &mut Vec<String>,
) -> (GroupSelector, GuestRule) {
    let users: BTreeMap<&str, &str> = src
        .ic
        .users
        .iter()
        .map(|u| (u.id.as_str(), u.user_name.as_str()))
        .collect();
    let held: BTreeSet<String> = group
        .members
        .iter()
        .filter_map(|m| users.get(m.user_id.as_str()))
        .map(|u| u.to_lowercase())
        .collect();
    let entra: BTreeMap<String, &DirectoryUser> = src
        .users
        .iter()
        .map(|u| (u.user_principal_name.to_lowercase(), u))
        .collect();
    let guest = |name: &String| {
        entra
            .get(name)
            .map_or(name.contains("#ext#"), |u| u.is_guest())
    };
    let guests = if held.iter().any(guest) {
        GuestRule::Include
    } else {
        GuestRule::Exclude
    };
    let Some(id) = src.directory.group_id(None, Some(&group.display_name)) else {
        notes.push(format!(
            "the Entra group: none (or several) is named `{}`, so the document names it by display name; the plan cannot resolve it until exactly one is",
            group.display_name
        ));
        let selector = GroupSelector {
            id: None,
            display_name: Some(group.display_name.clone()),
        };
        return (selector, guests);
    };
    let by_id: BTreeMap<&str, &DirectoryUser> =
        src.users.iter().map(|u| (u.id.as_str(), u)).collect();
    let people: BTreeSet<String> = src.directory.groups[&id]
        .members
        .iter()
        .filter(|(_, k)| *k == MemberKind::User)
        .filter_map(|(m, _)| by_id.get(m.as_str()))
        .filter(|u| u.account_enabled)
        .map(|u| u.user_principal_name.to_lowercase())
        .collect();
    let outside: Vec<&String> = held.difference(&people).collect();
    if !outside.is_empty() && !src.users.is_empty() {
        notes.push(format!(
            "members of the identity-store group that are not enabled direct members of the Entra group ({}): trustsync's group holds the Entra group's people only",
            outside.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        ));
    }
    let selector = GroupSelector {
        id: Some(id),
        display_name: None,
    };
    (selector, guests)
}

/// The set's assignments to people directly, which no AccessAssignment holds.
fn direct_users(src: &PeopleSource, h: &Holders, notes: &mut Vec<String>) {
    if h.users.is_empty() {
        return;
    }
    let names: Vec<String> = h
        .users
        .iter()
        .map(|(u, account)| {
            let name = src
                .ic
                .users
                .iter()
                .find(|x| x.id == *u)
                .map_or(u.to_string(), |x| x.user_name.clone());
            format!("{name} in {account}")
        })
        .collect();
    notes.push(format!(
        "its assignments to people directly ({}): an AccessAssignment assigns its group only, so `adopt` refuses the set until they are assigned through the group or removed",
        names.join(", ")
    ));
}
