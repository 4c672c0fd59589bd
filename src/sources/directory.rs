//! What the directory says: group memberships, as the planner consumes them.
//!
//! The [`DirectorySnapshot`] is the only directory type the rest of trustsync sees. This
//! module also reads a tenant file (the JSON format of `examples/tenant.json`, the same
//! file the local Graph server is seeded from) so that the pipeline runs without a live
//! tenant. A group that cannot be resolved is an error for the mappings that use it; a
//! directory that cannot be read is an error for the whole pass, never "no members".

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use crate::model::names::ObjectId;
use serde::{Deserialize, Serialize};

use crate::sources::policy::GroupSelector;

pub use trustsync_tenant::{
    same_name, Error, FederatedCredential, TenantApplication, TenantApplicationApi, TenantClient,
    TenantFederatedIdentityCredential, TenantFile, TenantGroup, TenantObject,
};

/// The kind of a directory object, from its `@odata.type`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MemberKind {
    /// `#microsoft.graph.servicePrincipal`: can be bound by object id.
    ServicePrincipal,
    /// `#microsoft.graph.user`: its `sub` is pairwise, so it cannot be bound.
    User,
    /// `#microsoft.graph.group`: a nested group.
    Group,
    /// `#microsoft.graph.device`.
    Device,
    /// Anything else, by its `@odata.type`.
    Other(String),
}

/// One member of a group.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub id: ObjectId,
    /// What it is.
    pub kind: MemberKind,
    /// Display name, for reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// For a service principal: the tenant that owns its application
    /// (`appOwnerOrganizationId`), when the directory said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_tenant: Option<String>,
}

/// A group and the members a mapping asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupMembers {
    /// The group's object id.
    pub id: ObjectId,
    /// The group's display name.
    pub display_name: String,
    /// Direct members, or transitive ones when asked; sorted by id.
    pub members: Vec<Member>,
}

/// Why one group could not be resolved. Affects only the mappings that use it, and never
/// protects a departed member: each variant says who may still keep access.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(rename_all = "camelCase", tag = "reason")]
pub enum GroupError {
    /// No group matches: nobody is a member of it.
    #[error("no group matches {selector}")]
    NotFound {
        /// The selector, rendered.
        selector: String,
    },
    /// The group a display name was pinned to no longer exists: nobody is a member of it.
    #[error("the group {id} that displayName={name:?} was pinned to no longer exists")]
    PinnedGone {
        /// The selector's display name.
        name: String,
        /// The pinned object id.
        id: String,
    },
    /// More than one group has this display name and the mapping was never pinned to one.
    #[error("{count} groups are named {name:?}; refer to the group by id")]
    Ambiguous {
        /// The display name.
        name: String,
        /// How many matched.
        count: usize,
        /// Every member of any of them: no one outside this set can be a member of the
        /// group the mapping meant.
        #[serde(skip)]
        members: BTreeSet<String>,
    },
    /// The owner tenant of some of the group's service principals could not be read (a
    /// Graph failure): whether they may be trusted is unknown, so nobody is added until it
    /// can be read; whoever left the group still loses access.
    #[error("the owner tenant of {count} service principal(s) of group {id} could not be read ({why}); nobody is added until it can be")]
    OwnersUnread {
        /// The group's object id.
        id: String,
        /// How many of its service principals.
        count: usize,
        /// Why the read failed.
        why: String,
        /// Every member the read shows.
        #[serde(skip)]
        members: BTreeSet<String>,
    },
}

impl GroupError {
    /// The principals that may keep access while the group cannot be resolved: whoever a
    /// successful read shows could still be a member. Everybody else loses access.
    pub fn may_keep(&self) -> BTreeSet<String> {
        match self {
            GroupError::Ambiguous { members, .. } | GroupError::OwnersUnread { members, .. } => {
                members.clone()
            }
            GroupError::NotFound { .. } | GroupError::PinnedGone { .. } => BTreeSet::new(),
        }
    }
}

/// How a selector matched the groups a source holds.
pub enum Matched<T> {
    /// Exactly one group.
    One(T),
    /// Several groups share the display name (and no pin decides).
    Many(Vec<T>),
    /// No group.
    None,
}

impl<T> Matched<T> {
    /// The groups a selector matched, classified.
    pub fn of(mut hits: Vec<T>) -> Matched<T> {
        match hits.len() {
            0 => Matched::None,
            1 => Matched::One(hits.pop().expect("one hit")),
            _ => Matched::Many(hits),
        }
    }
}

/// The groups nested in `group`, directly or through other nested groups (a cycle ends
/// where it closes); `member_groups` lists the groups that are direct members of one.
/// Every directory source expands `transitive` requests with it.
pub fn nested_groups(group: &str, member_groups: impl Fn(&str) -> Vec<String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut queue = vec![group.to_string()];
    while let Some(g) = queue.pop() {
        for m in member_groups(&g) {
            if m != group && out.insert(m.clone()) {
                queue.push(m);
            }
        }
    }
    out
}

/// Resolves a request against groups given as (object id, display name, item): by id; by
/// the pinned object id when the mapping has one; else by a display name compared
/// case-insensitively. Every directory source uses it, so they agree on what "missing",
/// "gone" and "ambiguous" mean.
pub fn resolve<'a, T>(
    req: &GroupRequest,
    groups: impl IntoIterator<Item = (&'a str, &'a str, T)>,
) -> Matched<T> {
    let mut groups = groups.into_iter();
    match (&req.selector.id, &req.pin, &req.selector.display_name) {
        (Some(id), _, _) | (None, Some(id), _) => groups
            .find(|(gid, _, _)| gid == id)
            .map_or(Matched::None, |(_, _, g)| Matched::One(g)),
        (None, None, Some(name)) => Matched::of(
            groups
                .filter(|(_, n, _)| same_name(n, name))
                .map(|(_, _, g)| g)
                .collect(),
        ),
        (None, None, None) => Matched::None,
    }
}

/// A request for one group's members.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct GroupRequest {
    /// Which group.
    pub selector: GroupSelector,
    /// Nested groups expanded.
    pub transitive: bool,
    /// For a display-name selector: the object id the name resolved to when the mapping
    /// was first planned (recorded on the role), which wins over the name from then on.
    pub pin: Option<String>,
}

impl GroupRequest {
    /// The result of a resolution, given each candidate's members.
    pub fn finish<T>(
        &self,
        matched: Matched<T>,
        mut members: impl FnMut(T) -> GroupMembers,
    ) -> Result<GroupMembers, GroupError> {
        match matched {
            Matched::One(g) => Ok(members(g)),
            Matched::Many(gs) => Err(GroupError::Ambiguous {
                name: self.selector.display_name.clone().unwrap_or_default(),
                count: gs.len(),
                members: gs
                    .into_iter()
                    .flat_map(|g| members(g).members.into_iter().map(|m| String::from(m.id)))
                    .collect(),
            }),
            Matched::None => Err(self.not_found()),
        }
    }

    /// The error for a group that does not exist.
    pub fn not_found(&self) -> GroupError {
        match (&self.pin, &self.selector.id, &self.selector.display_name) {
            (Some(id), None, Some(name)) => GroupError::PinnedGone {
                name: name.clone(),
                id: id.clone(),
            },
            _ => GroupError::NotFound {
                selector: self.selector.to_string(),
            },
        }
    }
}

/// The role tag that records which group a display-name selector is pinned to.
pub const PIN_TAG: &str = "trustsync.dev/group";

/// The pin tag's value: the group's object id and a short hash of the display name it was
/// resolved from, so that a changed selector in the policy is not held to the old group.
pub fn pin_value(group_id: &str, display_name: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(display_name.to_lowercase().as_bytes());
    let hash: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    format!("{group_id}/{hash}")
}

/// The pinned object id in a pin tag's value, when it was made for this display name.
pub fn pinned_id(tag_value: &str, display_name: &str) -> Option<String> {
    let (id, _) = tag_value.split_once('/')?;
    (pin_value(id, display_name) == tag_value).then(|| id.to_string())
}

/// Who added a member to a group or removed one, and when, as the directory's own audit
/// log says (Microsoft Graph `directoryAudits`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MembershipChange {
    /// The member's object id.
    pub member: String,
    /// Added (`true`) or removed.
    pub added: bool,
    /// Who: a user's principal name, or an app's name and id.
    pub by: String,
    /// When (RFC 3339).
    pub at: String,
}

/// Group memberships for every group the policies use, read in one pass.
#[derive(Debug, Clone, Default)]
pub struct DirectorySnapshot {
    /// Each requested group, resolved or not.
    pub groups: BTreeMap<GroupRequest, Result<GroupMembers, GroupError>>,
    /// For a request pinned by display name: the other groups that now carry that name
    /// (anyone may create a group of any name). The pin still decides; they are reported.
    pub namesakes: BTreeMap<GroupRequest, Vec<String>>,
}

impl DirectorySnapshot {
    /// Each resolved group with a service principal whose owner tenant is `unknown` becomes
    /// [`GroupError::OwnersUnread`]: its members may keep their access, nobody is added. A
    /// failed read of owner tenants then holds back only the additions it concerns, never a
    /// revocation (of these groups or any other).
    pub fn hold_unknown_owners(&mut self, unknown: impl Fn(&str) -> bool, why: &str) {
        for result in self.groups.values_mut() {
            let Ok(g) = result else { continue };
            let count = g
                .members
                .iter()
                .filter(|m| m.kind == MemberKind::ServicePrincipal && unknown(m.id.as_str()))
                .count();
            if count > 0 {
                *result = Err(GroupError::OwnersUnread {
                    id: g.id.to_string(),
                    count,
                    why: why.to_string(),
                    members: g.members.iter().map(|m| m.id.to_string()).collect(),
                });
            }
        }
    }
}

impl GroupRequest {
    /// The display name of a request that follows a pin (selector by name, pinned).
    pub fn pinned_name(&self) -> Option<(&str, &str)> {
        match (&self.selector.id, &self.pin, &self.selector.display_name) {
            (None, Some(pin), Some(name)) => Some((pin, name)),
            _ => None,
        }
    }

    /// The groups other than the pinned one that carry its display name.
    pub fn namesakes<'a>(
        &self,
        groups: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Vec<String> {
        let Some((pin, name)) = self.pinned_name() else {
            return Vec::new();
        };
        let mut ids: Vec<String> = groups
            .into_iter()
            .filter(|(id, n)| !id.eq_ignore_ascii_case(pin) && same_name(n, name))
            .map(|(id, _)| id.to_string())
            .collect();
        ids.sort();
        ids
    }
}

impl DirectorySnapshot {
    /// The result for a request; `None` when it was not part of the snapshot.
    pub fn get(&self, req: &GroupRequest) -> Option<&Result<GroupMembers, GroupError>> {
        self.groups.get(req)
    }
}

/// A user of the directory, as Microsoft Graph's user resource describes one: the sign-in
/// name people are matched by elsewhere (IAM Identity Center's user name), whether the
/// account may sign in, and whether it is a member of the organization or a guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryUser {
    /// Object id.
    pub id: ObjectId,
    /// The user principal name (guests: `name_domain#EXT#@tenant...`).
    pub user_principal_name: String,
    /// Display name, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Whether the account may sign in.
    pub account_enabled: bool,
    /// `Member`, `Guest`, or another value Graph may add.
    pub user_type: String,
    /// SMTP address, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mail: Option<String>,
    /// First name, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    /// Last name, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub surname: Option<String>,
}

impl DirectoryUser {
    /// A guest (`userType` `Guest`): a person of another organization.
    pub fn is_guest(&self) -> bool {
        self.user_type.eq_ignore_ascii_case("Guest")
    }
}

/// What trustsync reads from a tenant file, as it reads Microsoft Graph.
pub trait TenantDirectory {
    /// The file's applications with their federated credentials, as Graph would show the
    /// ones a controller owns (the file has no caller, so: all of them).
    fn observed_applications(&self) -> Vec<crate::observed::ObservedApplication>;

    /// Resolves every request against the file, as the Graph reader does against Graph.
    fn snapshot(&self, requests: &[GroupRequest]) -> DirectorySnapshot;

    /// The file's users, as Graph lists them (`accountEnabled` true and `userType`
    /// `Member` unless the file says otherwise).
    fn directory_users(&self) -> Vec<DirectoryUser>;
}

impl TenantDirectory for TenantFile {
    fn directory_users(&self) -> Vec<DirectoryUser> {
        self.users
            .iter()
            .map(|u| DirectoryUser {
                id: u.id.as_str().into(),
                user_principal_name: u.user_principal_name.clone().unwrap_or_default(),
                display_name: Some(u.display_name.clone()).filter(|n| !n.is_empty()),
                account_enabled: u.account_enabled.unwrap_or(true),
                user_type: u.user_type.clone().unwrap_or_else(|| "Member".into()),
                mail: u.mail.clone(),
                given_name: u.given_name.clone(),
                surname: u.surname.clone(),
            })
            .collect()
    }

    fn observed_applications(&self) -> Vec<crate::observed::ObservedApplication> {
        self.applications
            .iter()
            .map(|a| crate::observed::ObservedApplication {
                id: a.id.clone(),
                app_id: a.app_id.clone(),
                display_name: a.display_name.clone(),
                credentials: a
                    .federated_identity_credentials
                    .iter()
                    .map(|c| crate::observed::ObservedCredential {
                        id: c.name.clone(),
                        name: c.name.clone(),
                        issuer: c.issuer.clone(),
                        subject: c.subject.clone(),
                        audiences: c.audiences.clone(),
                        description: c.description.clone(),
                    })
                    .collect(),
            })
            .collect()
    }

    fn snapshot(&self, requests: &[GroupRequest]) -> DirectorySnapshot {
        let kinds = kinds_of(self);
        let owners: HashMap<&str, String> = self
            .service_principals
            .iter()
            .filter(|o| o.service_principal_type.as_deref() != Some("ManagedIdentity"))
            .filter_map(|o| Some((o.id.as_str(), o.app_owner_organization_id.clone()?)))
            .collect();
        let by_id: HashMap<&str, &TenantGroup> =
            self.groups.iter().map(|g| (g.id.as_str(), g)).collect();
        let mut out = DirectorySnapshot::default();
        for req in requests {
            let matched = resolve(
                req,
                self.groups
                    .iter()
                    .map(|g| (g.id.as_str(), g.display_name.as_str(), g)),
            );
            let namesakes = req.namesakes(
                self.groups
                    .iter()
                    .map(|g| (g.id.as_str(), g.display_name.as_str())),
            );
            if !namesakes.is_empty() {
                out.namesakes.insert(req.clone(), namesakes);
            }
            let member_groups = |id: &str| -> Vec<String> {
                by_id.get(id).map_or_else(Vec::new, |g| {
                    g.members
                        .iter()
                        .filter(|m| by_id.contains_key(m.as_str()))
                        .cloned()
                        .collect()
                })
            };
            let result = req.finish(matched, |g| {
                let mut ids: BTreeSet<&str> = g.members.iter().map(String::as_str).collect();
                if req.transitive {
                    for nested in nested_groups(&g.id, member_groups) {
                        ids.extend(by_id[nested.as_str()].members.iter().map(String::as_str));
                    }
                }
                let members = ids
                    .into_iter()
                    .map(|id| {
                        let (kind, name) = kinds
                            .get(id)
                            .cloned()
                            .unwrap_or((MemberKind::Other("unknown".into()), ""));
                        let owner_tenant = (kind == MemberKind::ServicePrincipal)
                            .then(|| owners.get(id).cloned())
                            .flatten();
                        Member {
                            id: id.into(),
                            kind,
                            display_name: (!name.is_empty()).then(|| name.to_string()),
                            owner_tenant,
                        }
                    })
                    .collect();
                GroupMembers {
                    id: g.id.as_str().into(),
                    display_name: g.display_name.clone(),
                    members,
                }
            });
            out.groups.insert(req.clone(), result);
        }
        out
    }
}

/// The tenant the directory is read from: the tenant file's when there is one, else
/// `AZURE_TENANT_ID` (Microsoft Graph); `None` when neither tells.
pub fn tenant_of(tenant_file: Option<&Path>) -> Option<String> {
    match tenant_file {
        Some(path) => TenantFile::load(path).ok().map(|t| t.tenant_id),
        None => std::env::var("AZURE_TENANT_ID")
            .ok()
            .filter(|t| !t.is_empty()),
    }
}

/// Every object of the file by id: its kind and display name.
fn kinds_of(t: &TenantFile) -> HashMap<&str, (MemberKind, &str)> {
    let mut kinds = HashMap::new();
    for g in &t.groups {
        kinds.insert(g.id.as_str(), (MemberKind::Group, g.display_name.as_str()));
    }
    for (list, kind) in [
        (&t.service_principals, MemberKind::ServicePrincipal),
        (&t.users, MemberKind::User),
        (&t.devices, MemberKind::Device),
    ] {
        for o in list {
            kinds.insert(o.id.as_str(), (kind.clone(), o.display_name.as_str()));
        }
    }
    kinds
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant() -> TenantFile {
        serde_json::from_value(serde_json::json!({
            "tenantId": "t",
            "groups": [
                {"id": "g1", "displayName": "outer", "members": ["sp1", "u1", "g2"]},
                {"id": "g2", "displayName": "inner", "members": ["sp2", "g1"]},
                {"id": "g3", "displayName": "dup", "members": []},
                {"id": "g4", "displayName": "dup", "members": []}
            ],
            "servicePrincipals": [{"id": "sp1", "displayName": "app one", "appId": "a1"}, {"id": "sp2"}],
            "users": [{"id": "u1", "displayName": "Ann"}]
        }))
        .unwrap()
    }

    fn req(id: Option<&str>, name: Option<&str>, transitive: bool) -> GroupRequest {
        GroupRequest {
            selector: GroupSelector {
                id: id.map(Into::into),
                display_name: name.map(Into::into),
            },
            transitive,
            pin: None,
        }
    }

    /// A failed read of owner tenants holds back the additions of the groups it concerns
    /// and nothing else: their members may keep access, other groups stay resolved.
    #[test]
    fn unknown_owners_hold_back_only_their_groups_additions() {
        let t = tenant();
        let reqs = [req(Some("g1"), None, false), req(Some("g2"), None, false)];
        let mut snap = t.snapshot(&reqs);
        snap.hold_unknown_owners(|id| id == "sp2", "HTTP 503");
        assert!(snap.groups[&reqs[0]].is_ok(), "g1's principal is known");
        let e = snap.groups[&reqs[1]].as_ref().unwrap_err();
        assert!(
            matches!(e, GroupError::OwnersUnread { count: 1, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("HTTP 503") && e.to_string().contains("nobody is added"));
        assert_eq!(
            e.may_keep(),
            BTreeSet::from(["g1".to_string(), "sp2".to_string()])
        );
    }

    #[test]
    fn direct_and_transitive_members_with_cycles() {
        let t = tenant();
        assert!(t.check().is_ok());
        let reqs = [req(Some("g1"), None, false), req(Some("g1"), None, true)];
        let snap = t.snapshot(&reqs);
        let ids = |r: &GroupRequest| -> Vec<String> {
            snap.groups[r]
                .as_ref()
                .unwrap()
                .members
                .iter()
                .map(|m| m.id.to_string())
                .collect()
        };
        assert_eq!(ids(&reqs[0]), ["g2", "sp1", "u1"]);
        assert_eq!(ids(&reqs[1]), ["g1", "g2", "sp1", "sp2", "u1"]);
        let direct = snap.groups[&reqs[0]].as_ref().unwrap();
        assert_eq!(direct.members[1].kind, MemberKind::ServicePrincipal);
        assert_eq!(direct.members[2].kind, MemberKind::User);
    }

    #[test]
    fn names_resolve_once_or_fail_per_group() {
        let t = tenant();
        let mut pinned = req(None, Some("DUP"), false);
        pinned.pin = Some("g4".into());
        let mut gone = req(None, Some("dup"), false);
        gone.pin = Some("g9".into());
        let reqs = [
            req(None, Some("INNER"), false),
            req(None, Some("dup"), false),
            req(None, Some("nope"), false),
            pinned,
            gone,
        ];
        let snap = t.snapshot(&reqs);
        assert_eq!(
            snap.groups[&reqs[0]].as_ref().unwrap().id,
            "g2",
            "names compare case-insensitively, as Graph's $filter does"
        );
        let Err(err @ GroupError::Ambiguous { count: 2, .. }) = &snap.groups[&reqs[1]] else {
            panic!("{:?}", snap.groups[&reqs[1]]);
        };
        assert!(err.may_keep().is_empty(), "both groups named dup are empty");
        assert!(matches!(
            snap.groups[&reqs[2]],
            Err(GroupError::NotFound { .. })
        ));
        assert_eq!(
            snap.groups[&reqs[3]].as_ref().unwrap().id,
            "g4",
            "the pin decides"
        );
        assert_eq!(
            snap.groups[&reqs[4]],
            Err(GroupError::PinnedGone {
                name: "dup".into(),
                id: "g9".into()
            })
        );
    }

    #[test]
    fn a_pin_holds_only_for_the_name_it_was_made_for() {
        let v = pin_value("g1", "Deployers");
        assert_eq!(pinned_id(&v, "deployers").as_deref(), Some("g1"));
        assert_eq!(pinned_id(&v, "admins"), None);
        assert_eq!(pinned_id("g1", "deployers"), None);
    }

    #[test]
    fn a_dangling_member_is_an_invalid_file() {
        let mut t = tenant();
        t.groups[0].members.push("ghost".into());
        assert_eq!(
            t.check().unwrap_err(),
            "group outer lists unknown member ghost"
        );
    }
}
