//! People's access as IAM Identity Center grants it (`trustsync access --people`): who has
//! which permission set in which account, directly or through which group, read from the
//! instance's live state.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::observed::{AssignedTo, ObservedIdentityCenter};
use crate::sources::directory::DirectoryUser;

/// The report.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PeopleReport {
    /// The instance read.
    pub instance_arn: String,
    /// Its identity store.
    pub identity_store_id: String,
    /// The accounts whose assignments were read.
    pub accounts: Vec<String>,
    /// Each person with access in those accounts, by user name.
    pub people: Vec<PersonAccess>,
    /// Users of the identity store with no access in those accounts.
    pub without_access: usize,
    /// People with access whose Entra account is disabled.
    pub disabled_in_entra: usize,
    /// People with access no Entra user's principal name matches.
    pub not_in_entra: usize,
}

/// One person's access.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PersonAccess {
    /// The sign-in name.
    pub user_name: String,
    /// The display name, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// The identity store's user id.
    pub user_id: String,
    /// The Entra user whose principal name is this user name (case-insensitive); `None`:
    /// none is.
    pub entra: Option<DirectoryUser>,
    /// What they may do where, sorted by account and permission set.
    pub grants: Vec<PersonGrant>,
}

/// One permission set in one account, and how the person came by it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PersonGrant {
    /// The account.
    pub account: String,
    /// The permission set's name.
    pub permission_set: String,
    /// Its ARN.
    pub permission_set_arn: String,
    /// How long its sessions last (ISO 8601), when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_duration: Option<String>,
    /// The group it is assigned to; `None`: assigned to the person directly.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub through_group: Option<String>,
}

/// Who has what, from what Identity Center shows, each person matched to the Entra user
/// of the same principal name; `person` keeps one user (by user name, case-insensitive).
pub fn people_access(
    ic: &ObservedIdentityCenter,
    accounts: &[String],
    person: Option<&str>,
    directory: &[DirectoryUser],
) -> PeopleReport {
    let by_upn: BTreeMap<String, &DirectoryUser> = directory
        .iter()
        .map(|u| (u.user_principal_name.to_lowercase(), u))
        .collect();
    let sets: BTreeMap<&str, _> = ic
        .permission_sets
        .iter()
        .map(|p| (p.arn.as_str(), p))
        .collect();
    let groups: BTreeMap<&str, _> = ic.groups.iter().map(|g| (g.id.as_str(), g)).collect();
    let mut grants: BTreeMap<&str, Vec<PersonGrant>> = BTreeMap::new();
    for a in &ic.assignments {
        let set = sets.get(a.permission_set_arn.as_str());
        let grant = |through_group: Option<String>| PersonGrant {
            account: a.account.clone(),
            permission_set: set.map_or(a.permission_set_arn.clone(), |s| s.name.clone()),
            permission_set_arn: a.permission_set_arn.clone(),
            session_duration: set.and_then(|s| s.session_duration.clone()),
            through_group,
        };
        match a.principal_type {
            AssignedTo::User => grants.entry(&a.principal_id).or_default().push(grant(None)),
            AssignedTo::Group => {
                let Some(g) = groups.get(a.principal_id.as_str()) else {
                    continue; // a group deleted since: it grants nobody
                };
                for m in g.members.iter().map(|m| &m.user_id) {
                    grants
                        .entry(m)
                        .or_default()
                        .push(grant(Some(g.display_name.clone())));
                }
            }
        }
    }
    let wanted = |name: &str| person.is_none_or(|p| p.eq_ignore_ascii_case(name));
    let mut people: Vec<PersonAccess> = ic
        .users
        .iter()
        .filter(|u| wanted(&u.user_name))
        .filter_map(|u| {
            let mut g = grants.remove(u.id.as_str())?;
            g.sort();
            g.dedup();
            Some(PersonAccess {
                user_name: u.user_name.clone(),
                display_name: u.display_name.clone(),
                user_id: u.id.clone(),
                entra: by_upn
                    .get(&u.user_name.to_lowercase())
                    .map(|d| (*d).clone()),
                grants: g,
            })
        })
        .collect();
    people.sort_by_key(|p| p.user_name.to_lowercase());
    let without_access = ic.users.iter().filter(|u| wanted(&u.user_name)).count() - people.len();
    PeopleReport {
        instance_arn: ic.instance_arn.clone(),
        identity_store_id: ic.identity_store_id.clone(),
        accounts: accounts.to_vec(),
        disabled_in_entra: people
            .iter()
            .filter(|p| p.entra.as_ref().is_some_and(|e| !e.account_enabled))
            .count(),
        not_in_entra: people.iter().filter(|p| p.entra.is_none()).count(),
        people,
        without_access,
    }
}

impl PersonGrant {
    fn how(&self) -> String {
        let duration = self
            .session_duration
            .as_deref()
            .map_or(String::new(), |d| format!(" ({d})"));
        let through = self
            .through_group
            .as_deref()
            .map_or("directly".to_string(), |g| format!("through group {g}"));
        format!("{}{duration}, {through}", self.permission_set)
    }
}

impl PersonAccess {
    fn who(&self) -> String {
        match &self.display_name {
            Some(d) => format!("{} ({d})", self.user_name),
            None => self.user_name.clone(),
        }
    }

    /// What Entra says of them, when it is worth a reviewer's attention.
    fn standing(&self) -> Option<&'static str> {
        match &self.entra {
            None => Some("no Entra user has this user name"),
            Some(e) if !e.account_enabled => {
                Some("disabled in Entra, and still has this access in AWS")
            }
            Some(e) if e.is_guest() => Some("a guest in Entra"),
            Some(_) => None,
        }
    }
}

impl PeopleReport {
    /// For a terminal.
    pub fn text(&self) -> String {
        let mut out = format!(
            "IAM Identity Center {} (identity store {}), accounts {}\n",
            self.instance_arn,
            self.identity_store_id,
            self.accounts.join(", ")
        );
        for p in &self.people {
            out.push_str(&format!("\n{}\n", p.who()));
            if let Some(s) = p.standing() {
                out.push_str(&format!("  ! {s}\n"));
            }
            for g in &p.grants {
                out.push_str(&format!("  {}  {}\n", g.account, g.how()));
            }
        }
        if self.people.is_empty() {
            out.push_str("\nNobody has access in these accounts.\n");
        }
        out.push_str(&format!(
            "\n{} user(s) of the identity store without access in these accounts; of those with access, {} disabled in Entra and {} not in Entra.\n",
            self.without_access, self.disabled_in_entra, self.not_in_entra
        ));
        out
    }

    /// For a pull request or a review document.
    pub fn markdown(&self) -> String {
        let mut out = format!(
            "### People's access (IAM Identity Center `{}`)\n\n| Person | Entra | Account | Permission set | Through |\n|---|---|---|---|---|\n",
            self.instance_arn
        );
        for p in &self.people {
            for g in &p.grants {
                out.push_str(&format!(
                    "| {} | {} | {} | {} | {} |\n",
                    p.who(),
                    p.standing().unwrap_or("ok"),
                    g.account,
                    g.permission_set,
                    g.through_group.as_deref().unwrap_or("directly")
                ));
            }
        }
        out.push_str(&format!(
            "\n{} user(s) without access in {}.\n",
            self.without_access,
            self.accounts.join(", ")
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observed::{
        IdentityCenterAssignment, IdentityCenterGroup, IdentityCenterPermissionSet,
        IdentityCenterUser,
    };

    #[test]
    fn grants_come_directly_or_through_a_group_and_a_deleted_group_grants_nobody() {
        let user = |id: &str, name: &str| IdentityCenterUser {
            external_ids: Vec::new(),
            id: id.into(),
            user_name: name.into(),
            display_name: None,
        };
        let assign = |to: AssignedTo, id: &str| IdentityCenterAssignment {
            account: "111111111111".into(),
            permission_set_arn: "ps-1".into(),
            principal_type: to,
            principal_id: id.into(),
        };
        let ic = ObservedIdentityCenter {
            instance_arn: "arn:aws:sso:::instance/ssoins-1".into(),
            identity_store_id: "d-1".into(),
            users: vec![
                user("u1", "ana@example.com"),
                user("u2", "bo@example.com"),
                user("u3", "cy@example.com"),
            ],
            groups: vec![IdentityCenterGroup {
                id: "g1".into(),
                display_name: "engineers".into(),
                description: None,
                members: ["u1", "u2"]
                    .map(|u| crate::observed::GroupMembership {
                        user_id: u.into(),
                        membership_id: format!("m-{u}"),
                    })
                    .into(),
                holds: None,
            }],
            permission_sets: vec![IdentityCenterPermissionSet {
                arn: "ps-1".into(),
                name: "Engineer".into(),
                session_duration: Some("PT4H".into()),
                description: None,
                policies: None,
            }],
            assignments: vec![
                assign(AssignedTo::Group, "g1"),
                assign(AssignedTo::User, "u1"),
                assign(AssignedTo::Group, "gone"),
            ],
        };
        let entra = [DirectoryUser {
            id: "e1".into(),
            user_principal_name: "ANA@example.com".into(),
            display_name: None,
            account_enabled: false,
            user_type: "Member".into(),
            mail: None,
            given_name: None,
            surname: None,
        }];
        let r = people_access(&ic, &["111111111111".into()], None, &entra);
        assert_eq!(
            (r.disabled_in_entra, r.not_in_entra),
            (1, 1),
            "ana disabled, bo unknown"
        );
        assert_eq!(r.people.len(), 2);
        assert_eq!(r.without_access, 1, "cy has nothing");
        let ana = &r.people[0];
        assert_eq!(ana.user_name, "ana@example.com");
        let through: Vec<Option<&str>> = ana
            .grants
            .iter()
            .map(|g| g.through_group.as_deref())
            .collect();
        assert_eq!(through, [None, Some("engineers")]);
        assert!(r
            .text()
            .contains("Engineer (PT4H), through group engineers"));
        assert!(r
            .text()
            .contains("! disabled in Entra, and still has this access in AWS"));
        let one = people_access(
            &ic,
            &["111111111111".into()],
            Some("BO@example.com"),
            &entra,
        );
        assert_eq!((one.people.len(), one.without_access), (1, 0));
    }
}
