//! What live AWS and the directory grant, whatever the policies say: the answers to a
//! security review (`trustsync access`) and the policies that would adopt what exists
//! (`trustsync export`); and people's access as IAM Identity Center grants it
//! (`trustsync access --people`).
//!
//! Both start from the same facts: every role of every account in scope whose trust lets
//! in tokens of the tenant's OIDC provider (an Entra issuer), the `sub` values it allows,
//! and the directory's groups with their direct members, so that a workload's way in can
//! be shown as the chain of nested groups it came through.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::observed::{allowed_principals, trusted_subjects, Observations, ObservedRole};
use crate::plan::Settings;
use crate::sources::directory::{MemberKind, TenantFile};
use crate::sources::policy::PolicySet;

mod access;
mod export;
mod export_people;
mod people;
mod token;
pub use access::*;
pub use export::*;
pub use export_people::*;
pub use people::*;
pub use token::*;

#[cfg(test)]
mod tests;

/// The directory's groups with their direct members, and what each object is.
#[derive(Debug, Default)]
pub struct Directory {
    groups: BTreeMap<String, Group>,
    names: BTreeMap<String, String>,
    kinds: BTreeMap<String, MemberKind>,
    /// For [`Directory::group_of`], built on first use: each group's service principals
    /// (direct, then transitive) to the group that has exactly them.
    by_principals: std::cell::OnceCell<[BTreeMap<BTreeSet<String>, String>; 2]>,
}

#[derive(Debug)]
struct Group {
    name: String,
    members: Vec<(String, MemberKind)>,
}

impl Directory {
    /// From a tenant file (`--tenant-file`).
    pub fn from_tenant_file(t: &TenantFile) -> Directory {
        let mut d = Directory::default();
        for (list, kind) in [
            (&t.service_principals, MemberKind::ServicePrincipal),
            (&t.users, MemberKind::User),
            (&t.devices, MemberKind::Device),
        ] {
            for o in list {
                d.kinds.insert(o.id.clone(), kind.clone());
                if !o.display_name.is_empty() {
                    d.names.insert(o.id.clone(), o.display_name.clone());
                }
            }
        }
        for g in &t.groups {
            d.kinds.insert(g.id.clone(), MemberKind::Group);
        }
        for g in &t.groups {
            let members = g
                .members
                .iter()
                .map(|m| {
                    (
                        m.clone(),
                        d.kinds.get(m).cloned().unwrap_or(MemberKind::User),
                    )
                })
                .collect();
            d.add_group(&g.id, &g.display_name, members);
        }
        d
    }

    /// From every group of the tenant, as a delta read returns them.
    pub fn from_groups<'a>(
        groups: impl Iterator<Item = (&'a str, &'a str, Vec<(&'a str, MemberKind)>)>,
    ) -> Directory {
        let mut d = Directory::default();
        for (id, name, members) in groups {
            let members = members
                .into_iter()
                .map(|(m, k)| (m.to_string(), k))
                .collect();
            d.add_group(id, name, members);
        }
        d
    }

    fn add_group(&mut self, id: &str, name: &str, members: Vec<(String, MemberKind)>) {
        for (m, kind) in &members {
            self.kinds.entry(m.clone()).or_insert_with(|| kind.clone());
        }
        self.kinds.insert(id.to_string(), MemberKind::Group);
        self.names.insert(id.to_string(), name.to_string());
        self.groups.insert(
            id.to_string(),
            Group {
                name: name.to_string(),
                members,
            },
        );
    }

    /// The group of this id, or the one group of this display name.
    pub fn group_id(&self, id: Option<&str>, name: Option<&str>) -> Option<String> {
        if let Some(id) = id {
            return self
                .groups
                .keys()
                .find(|g| g.eq_ignore_ascii_case(id))
                .cloned();
        }
        let name = name?;
        let mut hits = self
            .groups
            .iter()
            .filter(|(_, g)| crate::sources::directory::same_name(&g.name, name));
        match (hits.next(), hits.next()) {
            (Some((id, _)), None) => Some(id.clone()),
            _ => None,
        }
    }

    /// Each service principal in `group` (directly, or through nested groups when
    /// `transitive`) with the chain of group ids it came through, `group` first: the
    /// shortest chain, found breadth first.
    pub fn paths(&self, group: &str, transitive: bool) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut seen = BTreeSet::from([group.to_string()]);
        let mut queue = VecDeque::from([vec![group.to_string()]]);
        while let Some(chain) = queue.pop_front() {
            let Some(g) = self.groups.get(chain.last().expect("never empty")) else {
                continue;
            };
            for (m, kind) in &g.members {
                match kind {
                    MemberKind::ServicePrincipal => {
                        out.entry(m.clone()).or_insert_with(|| chain.clone());
                    }
                    MemberKind::Group if transitive && seen.insert(m.clone()) => {
                        let mut next = chain.clone();
                        next.push(m.clone());
                        queue.push_back(next);
                    }
                    _ => {}
                }
            }
        }
        out
    }

    /// The group whose service principals are exactly `subjects`: directly if any, else
    /// through nested groups. Several candidates: the one with the fewest members, then
    /// by id, so that the answer is stable.
    pub fn group_of(&self, subjects: &BTreeSet<String>) -> Option<(String, bool)> {
        let index = self.by_principals.get_or_init(|| {
            [false, true].map(|transitive| {
                let mut index: BTreeMap<BTreeSet<String>, String> = BTreeMap::new();
                for (id, g) in &self.groups {
                    let sps: BTreeSet<String> = self.paths(id, transitive).into_keys().collect();
                    if sps.is_empty() {
                        continue;
                    }
                    let better = |held: &String| {
                        (g.members.len(), id) < (self.groups[held].members.len(), held)
                    };
                    match index.get(&sps) {
                        Some(held) if !better(held) => {}
                        _ => {
                            index.insert(sps, id.clone());
                        }
                    }
                }
                index
            })
        });
        [false, true].into_iter().find_map(|transitive| {
            index[usize::from(transitive)]
                .get(subjects)
                .map(|id| (id.clone(), transitive))
        })
    }

    /// `name (id)` when the directory knows a name, else the id.
    pub fn label(&self, id: &str) -> String {
        match self.names.get(id) {
            Some(n) if !n.is_empty() => format!("{n} ({id})"),
            _ => id.to_string(),
        }
    }

    /// The display name, when known.
    pub fn name(&self, id: &str) -> Option<&str> {
        self.names.get(id).map(String::as_str)
    }
}

/// A role whose trust lets in tokens of an Entra issuer.
#[derive(Debug, Clone)]
pub struct EntraRole<'a> {
    pub account: String,
    pub role: &'a ObservedRole,
    /// The OIDC provider ARNs its trust names.
    pub providers: BTreeSet<String>,
    /// The `sub` values it allows.
    pub subjects: BTreeSet<String>,
    /// Owned by this trustsync instance (its owner tag).
    pub managed: bool,
}

/// The tenant id of an Entra issuer's OIDC provider ARN (v1 or v2 form), if it is one.
pub fn entra_tenant(provider_arn: &str) -> Option<&str> {
    let issuer = crate::model::names::provider_issuer(provider_arn)?;
    if let Some(rest) = issuer.strip_prefix("sts.windows.net/") {
        return Some(rest.trim_end_matches('/'));
    }
    issuer
        .strip_prefix("login.microsoftonline.com/")?
        .strip_suffix("/v2.0")
}

/// The tenants the policies name (their IdentityProvider documents); none named means
/// any Entra tenant.
fn tenants(policies: &PolicySet) -> BTreeSet<String> {
    policies
        .providers
        .iter()
        .map(|p| p.spec.tenant_id.to_ascii_lowercase())
        .collect()
}

/// Every role, in every account read, whose trust lets in an Entra issuer of the
/// policies' tenants ([`tenants`]).
pub fn entra_roles<'a>(
    observed: &'a Observations,
    policies: &PolicySet,
    settings: &Settings,
) -> Vec<EntraRole<'a>> {
    let tenants = tenants(policies);
    let mut out = Vec::new();
    for (account, o) in observed.iam() {
        for role in o.roles.values() {
            let providers: BTreeSet<String> = allowed_principals(&role.trust, "Federated")
                .into_iter()
                .filter(|p| {
                    entra_tenant(p).is_some_and(|t| {
                        tenants.is_empty() || tenants.contains(&t.to_ascii_lowercase())
                    })
                })
                .collect();
            if providers.is_empty() {
                continue;
            }
            out.push(EntraRole {
                account: account.to_string(),
                role,
                providers,
                subjects: trusted_subjects(&role.trust),
                managed: settings.ownership().role(role),
            });
        }
    }
    out
}
