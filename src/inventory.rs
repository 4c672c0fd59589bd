//! What live AWS and the directory grant, whatever the policies say: the answers to a
//! security review (`trustsync access`) and the policies that would adopt what exists
//! (`trustsync export`).
//!
//! Both start from the same facts: every role of every account in scope whose trust lets
//! in tokens of the tenant's OIDC provider (an Entra issuer), the `sub` values it allows,
//! and the directory's groups with their direct members, so that a workload's way in can
//! be shown as the chain of nested groups it came through.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::Serialize;
use serde_json::Value;

use crate::audit;
use crate::observed::{
    allowed_principals, condition_values, trusted_services, trusted_subjects, Observations,
    ObservedRole,
};
use crate::plan::Settings;
use crate::sources::directory::{MemberKind, TenantFile};
use crate::sources::policy::PolicySet;

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
    let issuer = provider_arn.split_once(":oidc-provider/")?.1;
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

/// One workload's way into a role.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Way {
    /// The service principal's object id.
    pub principal: String,
    /// Its display name, when the directory knows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The groups it came through, the mapped group first (names where known); empty when
    /// no mapping's group explains it (trusted by id alone).
    pub via: Vec<String>,
    /// When the audit log recorded the grant that is still in force.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
}

/// A role and who can assume it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleAccess {
    pub account: String,
    pub role: String,
    pub arn: String,
    /// Managed by trustsync (its owner tag).
    pub managed: bool,
    /// The mapping that manages it, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mapping: Option<String>,
    pub workloads: Vec<Way>,
    /// AWS services the trust lets in too.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<String>,
    /// Functions whose resource policy lets this role invoke them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub functions: Vec<String>,
    /// Live sessions the role denies (`trustsync-revoked-sessions`): principals that left
    /// it, or every web-identity session issued before a time.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub denied_sessions: Vec<DeniedSessions>,
}

/// Sessions a role denies, as its `trustsync-revoked-sessions` policy says.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeniedSessions {
    /// The principal (`sub`); none: every web-identity session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// Sessions issued before this time are denied.
    pub issued_before: String,
}

fn denied_sessions(role: &ObservedRole, principal: Option<&str>) -> Vec<DeniedSessions> {
    use crate::plan::sessions::{rfc3339, SessionDenials};
    let Some(doc) = role.inline_policies.get(crate::plan::SESSIONS_POLICY) else {
        return Vec::new();
    };
    let d = SessionDenials::parse(doc);
    let role_wide = d.role_wide.values().map(|t| DeniedSessions {
        principal: None,
        issued_before: rfc3339(*t),
    });
    let subjects = d
        .subjects
        .iter()
        .filter(|((_, sub), _)| principal.is_none_or(|p| sub.eq_ignore_ascii_case(p)))
        .map(|((_, sub), t)| DeniedSessions {
            principal: Some(sub.clone()),
            issued_before: rfc3339(*t),
        });
    role_wide.chain(subjects).collect()
}

/// The other direction: a function that acts as an Entra application through AWS
/// outbound identity federation.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outbound {
    /// The function's ARN.
    pub function: String,
    /// The Entra application (client) id its FunctionAccess names.
    pub application: String,
    /// The role it runs as (from AWS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Whether that role's inline policies (as AWS shows them) let it ask STS for a token
    /// for Entra's exchange.
    pub role_allows: bool,
    /// Whether a federated credential of the application trusts the role's tokens for
    /// Entra's exchange; `None` when Entra could not be read (see `entraNote`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entra_trusts: Option<bool>,
    /// The credential that does, by name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
    /// Why Entra's side is not known, or what is wrong with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entra_note: Option<String>,
}

/// Fills in Entra's half of each outbound row from the applications read (or why they
/// could not be).
pub fn entra_trust(
    rows: &mut [Outbound],
    apps: &Result<Vec<crate::observed::ObservedApplication>, String>,
) {
    use crate::sources::policy::ENTRA_TOKEN_EXCHANGE_AUDIENCE;
    for o in rows {
        let apps = match apps {
            Ok(apps) => apps,
            Err(e) => {
                o.entra_note = Some(format!("the applications could not be read: {e}"));
                continue;
            }
        };
        let Some(app) = apps
            .iter()
            .find(|a| a.app_id.eq_ignore_ascii_case(&o.application))
        else {
            o.entra_trusts = Some(false);
            o.entra_note = Some("not among the applications trustsync owns".into());
            continue;
        };
        let found = app.credentials.iter().find(|c| {
            o.role.as_deref() == Some(c.subject.as_str())
                && c.audiences
                    .iter()
                    .any(|a| a == ENTRA_TOKEN_EXCHANGE_AUDIENCE)
        });
        o.entra_trusts = Some(found.is_some());
        o.credential = found.map(|c| c.name.clone());
    }
}

impl Outbound {
    /// Entra's half, in words.
    fn entra_text(&self) -> String {
        match (self.entra_trusts, &self.credential, &self.entra_note) {
            (Some(true), Some(name), _) => format!("credential `{name}` trusts it"),
            (Some(false), _, Some(note)) => format!("no credential trusts it ({note})"),
            (Some(false), _, None) => "no credential trusts it".into(),
            (_, _, Some(note)) => format!("unknown, {note}"),
            _ => "not read".into(),
        }
    }
}

/// `trustsync access`: every Entra-trusting role, and who can assume it through what.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessReport {
    pub roles: Vec<RoleAccess>,
    /// Functions acting as Entra applications (outbound identity federation).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub outbound: Vec<Outbound>,
    /// Roles trusting the tenant's provider that trustsync does not manage: access granted
    /// around the policy repository.
    pub outside: Vec<String>,
    /// With `--principal`: the principal asked about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
}

/// When each (role ARN or name, principal) was last granted and not revoked since,
/// from the audit log's change records.
pub fn grants_since(entries: &[audit::Entry]) -> BTreeMap<(String, String), String> {
    let mut out = BTreeMap::new();
    for e in entries {
        let role = e.change.target.as_str().to_string();
        for m in &e.change.members_removed {
            out.remove(&(role.clone(), m.to_ascii_lowercase()));
        }
        for m in &e.change.members_added {
            out.entry((role.clone(), m.to_ascii_lowercase()))
                .or_insert_with(|| e.time.clone());
        }
    }
    out
}

/// Functions whose observed resource policies let `role_arn` invoke them.
fn functions_for(observed: &Observations, role_arn: &str) -> Vec<String> {
    let mut out = BTreeSet::new();
    for o in observed.by_place.values() {
        for f in o.functions.values().flatten() {
            // Canonical form reads a bare principal string (what moto returns) as the
            // `{"AWS": [arn]}` AWS writes.
            let names_role =
                allowed_principals(&serde_json::json!({"Statement": f.statements}), "AWS")
                    .contains(role_arn);
            if names_role {
                out.insert(f.arn.clone());
            }
        }
    }
    out.into_iter().collect()
}

/// Builds the access report from live state.
pub fn access(
    roles: &[EntraRole<'_>],
    policies: &PolicySet,
    directory: &Directory,
    observed: &Observations,
    since: &BTreeMap<(String, String), String>,
    principal: Option<&str>,
) -> AccessReport {
    let mut out = Vec::new();
    for r in roles {
        let mapping = policies
            .role_mappings
            .iter()
            .find(|m| r.managed && m.spec.role.name.eq_ignore_ascii_case(r.role.name.as_str()));
        let paths = mapping
            .and_then(|m| {
                let g = m.spec.group.as_ref()?;
                let id = directory.group_id(g.id.as_deref(), g.display_name.as_deref())?;
                Some(directory.paths(&id, m.spec.members.transitive))
            })
            .unwrap_or_default();
        let workloads: Vec<Way> = r
            .subjects
            .iter()
            .filter(|s| principal.is_none_or(|p| s.eq_ignore_ascii_case(p)))
            .map(|s| Way {
                principal: s.clone(),
                name: directory.name(s).map(String::from),
                via: paths
                    .get(s)
                    .map(|chain| chain.iter().map(|g| directory.label(g)).collect())
                    .unwrap_or_default(),
                since: since
                    .get(&(r.role.arn.clone(), s.to_ascii_lowercase()))
                    .cloned(),
            })
            .collect();
        let denied = denied_sessions(r.role, principal);
        if principal.is_some()
            && workloads.is_empty()
            && denied.iter().all(|d| d.principal.is_none())
        {
            continue;
        }
        out.push(RoleAccess {
            account: r.account.clone(),
            role: r.role.name.to_string(),
            arn: r.role.arn.clone(),
            managed: r.managed,
            mapping: mapping.map(|m| m.name.clone()),
            workloads,
            services: trusted_services(&r.role.trust).into_iter().collect(),
            functions: functions_for(observed, &r.role.arn),
            denied_sessions: denied,
        });
    }
    let outside = roles
        .iter()
        .filter(|r| !r.managed)
        .map(|r| r.role.arn.clone())
        .collect();
    AccessReport {
        roles: out,
        outbound: if principal.is_some() {
            Vec::new()
        } else {
            outbound(policies, observed)
        },
        outside,
        principal: principal.map(String::from),
    }
}

/// True when a role's inline policy allows `sts:GetWebIdentityToken` for Entra's exchange
/// audience.
fn allows_exchange_tokens(role: &ObservedRole) -> bool {
    role.inline_policies.values().any(|doc| {
        let canon = crate::model::iam_policy::canonical(doc);
        canon["Statement"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|st| {
                st["Effect"] == "Allow"
                    && st["Action"]
                        .as_array()
                        .is_some_and(|a| a.iter().any(|x| x == "sts:getwebidentitytoken"))
                    && st["Condition"]
                        .to_string()
                        .contains(crate::sources::policy::ENTRA_TOKEN_EXCHANGE_AUDIENCE)
            })
    })
}

/// Each observed function whose FunctionAccess names an Entra application.
fn outbound(policies: &PolicySet, observed: &Observations) -> Vec<Outbound> {
    let mut out = Vec::new();
    for f in &policies.functions {
        let Some(app) = &f.spec.entra_application else {
            continue;
        };
        let name = crate::sources::policy::function_name_of(&f.spec.function);
        for o in observed.by_place.values() {
            for ((fname, _), seen) in &o.functions {
                let Some(seen) = seen.as_ref().filter(|_| fname == name) else {
                    continue;
                };
                let role = seen.role.clone();
                let role_allows = role
                    .as_deref()
                    .and_then(|arn| observed.for_arn(arn))
                    .and_then(|iam| {
                        iam.roles
                            .values()
                            .find(|r| Some(&r.arn) == seen.role.as_ref())
                    })
                    .is_some_and(allows_exchange_tokens);
                out.push(Outbound {
                    function: seen.arn.clone(),
                    application: app.app_id.clone(),
                    role,
                    role_allows,
                    entra_trusts: None,
                    credential: None,
                    entra_note: None,
                });
            }
        }
    }
    out.sort_by(|a, b| a.function.cmp(&b.function));
    out.dedup_by(|a, b| a.function == b.function && a.application == b.application);
    out
}

impl AccessReport {
    /// As text: one block per role.
    pub fn text(&self) -> String {
        let mut s = String::new();
        if let Some(p) = &self.principal {
            s.push_str(&format!("Access of {p}:\n"));
        }
        for r in &self.roles {
            let who = match (&r.mapping, r.managed) {
                (Some(m), _) => format!("managed by mapping {m}"),
                (None, true) => "managed by trustsync, no mapping in these policies".into(),
                (None, false) => "NOT managed by trustsync".into(),
            };
            s.push_str(&format!("{} (account {}, {who})\n", r.arn, r.account));
            if r.workloads.is_empty() {
                s.push_str("  no workload\n");
            }
            for w in &r.workloads {
                let name = w
                    .name
                    .as_deref()
                    .map(|n| format!(" {n}"))
                    .unwrap_or_default();
                let via = if w.via.is_empty() {
                    "trusted by id, through no mapped group".to_string()
                } else {
                    format!("via {}", w.via.join(" > "))
                };
                let since = w
                    .since
                    .as_deref()
                    .map(|t| format!(", since {t}"))
                    .unwrap_or_default();
                s.push_str(&format!("  {}{name}: {via}{since}\n", w.principal));
            }
            if !r.services.is_empty() {
                s.push_str(&format!("  services: {}\n", r.services.join(", ")));
            }
            for f in &r.functions {
                s.push_str(&format!("  may invoke {f}\n"));
            }
            for d in &r.denied_sessions {
                let who = crate::plan::sessions::whom(d.principal.as_deref(), "");
                s.push_str(&format!(
                    "  denied: {who} issued before {} (left the role)\n",
                    d.issued_before
                ));
            }
        }
        if self.roles.is_empty() {
            s.push_str("No role trusting the tenant's provider lets this in.\n");
        }
        if !self.outbound.is_empty() {
            s.push_str(
                "\nFunctions acting as Entra applications (outbound identity federation):\n",
            );
            for o in &self.outbound {
                s.push_str(&format!(
                    "  {} as application {} (role {}: {}; Entra: {})\n",
                    o.function,
                    o.application,
                    o.role.as_deref().unwrap_or("none"),
                    if o.role_allows {
                        "may request exchange tokens"
                    } else {
                        "may NOT request exchange tokens yet"
                    },
                    o.entra_text()
                ));
            }
        }
        if !self.outside.is_empty() {
            s.push_str("\nAccess outside the policy repository (roles trusting the tenant's provider that trustsync does not manage):\n");
            for arn in &self.outside {
                s.push_str(&format!("  {arn}\n"));
            }
        }
        s
    }

    /// As Markdown: a table of role, workload, path and since.
    pub fn markdown(&self) -> String {
        let mut s =
            String::from("| role | managed | workload | via | since |\n|---|---|---|---|---|\n");
        for r in &self.roles {
            let managed = r
                .mapping
                .clone()
                .unwrap_or_else(|| if r.managed { "yes" } else { "**no**" }.to_string());
            if r.workloads.is_empty() {
                s.push_str(&format!("| `{}` | {managed} | none | | |\n", r.arn));
            }
            for w in &r.workloads {
                let who = match &w.name {
                    Some(n) => format!("{n} (`{}`)", w.principal),
                    None => format!("`{}`", w.principal),
                };
                s.push_str(&format!(
                    "| `{}` | {managed} | {who} | {} | {} |\n",
                    r.arn,
                    if w.via.is_empty() {
                        "by id".into()
                    } else {
                        w.via.join(" › ")
                    },
                    w.since.as_deref().unwrap_or("")
                ));
            }
        }
        if !self.outbound.is_empty() {
            s.push_str("\n| function | acts as Entra application | role | role may request exchange tokens | Entra trusts the role |\n|---|---|---|---|---|\n");
            for o in &self.outbound {
                s.push_str(&format!(
                    "| `{}` | `{}` | `{}` | {} | {} |\n",
                    o.function,
                    o.application,
                    o.role.as_deref().unwrap_or("none"),
                    if o.role_allows { "yes" } else { "**no**" },
                    o.entra_text()
                ));
            }
        }
        if !self.outside.is_empty() {
            s.push_str("\n**Access outside the policy repository:**\n\n");
            for arn in &self.outside {
                s.push_str(&format!("- `{arn}`\n"));
            }
        }
        s
    }
}

/// `trustsync export`: policy documents that adopt what exists.
#[derive(Debug, Default)]
pub struct Export {
    /// The documents, as one multi-document YAML stream.
    pub yaml: String,
    /// How many RoleMapping documents were written.
    pub mappings: usize,
    /// Roles not exported, each with why.
    pub skipped: Vec<String>,
}

fn document(kind: &str, name: &str, comment: &str, spec: Value) -> String {
    let doc = serde_json::json!({
        "apiVersion": crate::sources::policy::API_VERSION,
        "kind": kind,
        "metadata": {"name": name},
        "spec": spec,
    });
    let yaml = serde_yaml::to_string(&doc).expect("JSON values serialise as YAML");
    format!("---\n# {comment}\n{yaml}")
}

/// A document name from a role name: lower case, `-` for anything else, at most 63.
fn document_name(prefix: &str, raw: &str, taken: &mut BTreeSet<String>) -> String {
    let mut base: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect::<String>()
        .split('-')
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    if base.is_empty() {
        base = prefix.to_string();
    }
    base.truncate(56);
    let mut name = base.clone();
    let mut n = 2;
    while !taken.insert(name.clone()) {
        name = format!("{base}-{n}");
        n += 1;
    }
    name
}

/// The documents that adopt every role of `roles` trustsync does not manage yet.
pub fn export(
    roles: &[EntraRole<'_>],
    policies: &PolicySet,
    directory: &Directory,
    observed: &Observations,
    settings: &Settings,
    many_accounts: bool,
) -> Export {
    let mut out = Export::default();
    let mut taken: BTreeSet<String> = policies
        .role_mappings
        .iter()
        .map(|m| m.name.clone())
        .collect();
    let mut provider_taken: BTreeSet<String> =
        policies.providers.iter().map(|p| p.name.clone()).collect();
    // Provider documents by issuer (host/path): the repository's, then those exported.
    let mut providers: BTreeMap<String, String> = policies
        .providers
        .iter()
        .map(|p| (p.spec.issuer_host_path(), p.name.clone()))
        .collect();
    for r in roles.iter().filter(|r| !r.managed) {
        let arn = &r.role.arn;
        if r.providers.len() != 1 {
            out.skipped.push(format!(
                "{arn}: trusts {} Entra providers; a mapping has one",
                r.providers.len()
            ));
            continue;
        }
        let provider_arn = r.providers.first().expect("one");
        let issuer = provider_arn
            .split_once(":oidc-provider/")
            .map(|x| x.1)
            .unwrap_or_default()
            .to_string();
        if !r.role.path.starts_with(&settings.role_path) {
            out.skipped.push(format!(
                "{arn}: lives at path `{}`, outside the controller's rolePath `{}` (IAM cannot move a role)",
                r.role.path, settings.role_path
            ));
            continue;
        }
        let Some((group, transitive)) = directory.group_of(&r.subjects) else {
            out.skipped.push(format!(
                "{arn}: no group has exactly its {} trusted service principal(s) ({}); make one, or write the mapping by hand",
                r.subjects.len(),
                r.subjects.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
            continue;
        };
        // Exported as v1 (below): a v2 role joins the repository's v1 provider of its tenant.
        let v1_issuer = entra_tenant(provider_arn).map(|t| format!("sts.windows.net/{t}/"));
        let known = providers
            .get(&issuer)
            .or_else(|| v1_issuer.as_ref().and_then(|i| providers.get(i)));
        let provider = match known {
            Some(name) => name.clone(),
            None => {
                let tenant = entra_tenant(provider_arn).unwrap_or_default().to_string();
                let v1 = issuer.starts_with("sts.windows.net/");
                let observed_provider = observed
                    .iam()
                    .filter(|(a, _)| *a == r.account)
                    .flat_map(|(_, o)| &o.providers)
                    .find(|p| &p.arn == provider_arn);
                let mut audiences: BTreeSet<String> = observed_provider
                    .map(|p| p.client_ids.clone())
                    .unwrap_or_default();
                if audiences.is_empty() {
                    let issuer = issuer.to_ascii_lowercase();
                    audiences = condition_values(&r.role.trust, |k| {
                        k.starts_with(&issuer) && !k.ends_with(":sub")
                    })
                    .unwrap_or_default();
                }
                let name = document_name(
                    "entra",
                    &format!("entra-{}", &tenant[..tenant.len().min(8)]),
                    &mut provider_taken,
                );
                // Always v1, the form STS accepts: a v2 provider is exported as v1, and
                // apply moves its roles' trust to the v1 issuer.
                let mut spec = serde_json::json!({
                    "tenantId": tenant,
                    "tokenVersion": "v1",
                    "audiences": audiences,
                    "adopt": true,
                });
                if many_accounts {
                    spec["accounts"] = serde_json::json!({"ids": [r.account]});
                }
                out.yaml.push_str(&document(
                    "IdentityProvider",
                    &name,
                    &if v1 {
                        format!("exported from {provider_arn}")
                    } else {
                        format!("exported from {provider_arn} as v1: STS accepts no Entra v2 app-only token (docs/entra-setup.md, \"Why v1 tokens\"); apply moves the roles' trust to https://sts.windows.net/{tenant}/")
                    },
                    spec,
                ));
                providers.insert(issuer.clone(), name.clone());
                if let Some(v1) = v1_issuer {
                    providers.insert(v1, name.clone());
                }
                name
            }
        };
        let role = r.role;
        let mut role_spec = serde_json::json!({"name": role.name.as_str()});
        if role.path != settings.role_path {
            role_spec["path"] = Value::from(role.path.clone());
        }
        if let Some(d) = &role.description {
            role_spec["description"] = Value::from(d.clone());
        }
        role_spec["maxSessionDuration"] = Value::from(role.max_session_duration.unwrap_or(3600));
        if let Some(b) = &role.permissions_boundary {
            role_spec["permissionsBoundary"] = Value::from(b.clone());
        }
        if !role.managed_policies.is_empty() {
            role_spec["managedPolicies"] = serde_json::json!(role.managed_policies);
        }
        if !role.inline_policies.is_empty() {
            role_spec["inlinePolicies"] = serde_json::json!(role.inline_policies);
        }
        let tags: BTreeMap<&String, &String> = role
            .tags
            .iter()
            .filter(|(k, _)| **k != settings.owner_tag.key && !k.starts_with("trustsync.dev/"))
            .collect();
        if !tags.is_empty() {
            role_spec["tags"] = serde_json::json!(tags);
        }
        let mut spec = serde_json::json!({
            "provider": provider,
            "group": {"id": group},
            "role": role_spec,
            "adopt": true,
        });
        if transitive {
            spec["members"] = serde_json::json!({"transitive": true});
        }
        let services = trusted_services(&role.trust);
        if !services.is_empty() {
            spec["trustedServices"] = serde_json::json!(services);
        }
        if many_accounts {
            spec["accounts"] = serde_json::json!({"ids": [r.account]});
        }
        let name = document_name("role", role.name.as_str(), &mut taken);
        out.yaml.push_str(&document(
            "RoleMapping",
            &name,
            &format!(
                "exported from {arn}: its {} trusted service principal(s) are the {}members of {}",
                r.subjects.len(),
                if transitive { "transitive " } else { "" },
                directory.label(&group)
            ),
            spec,
        ));
        out.mappings += 1;
    }
    out
}

/// What `trustsync check-token` read of a token: its claims, never the token itself.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Claims {
    pub iss: Option<String>,
    pub aud: Vec<String>,
    pub azp: Option<String>,
    pub appid: Option<String>,
    pub sub: Option<String>,
    pub oid: Option<String>,
    pub ver: Option<String>,
    pub exp: Option<i64>,
    pub nbf: Option<i64>,
}

/// Decodes the claims of a JWT (header.payload.signature, base64url). The signature is
/// not checked: STS does that against the issuer's keys.
pub fn decode_claims(token: &str) -> Result<Claims, String> {
    use base64::Engine;
    let token = token.trim();
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return Err(format!(
            "not a JWT: {} dot-separated part(s), a JWT has 3 (header.payload.signature)",
            parts.len()
        ));
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(parts[1].trim_end_matches('='))
        .map_err(|e| format!("the payload is not base64url: {e}"))?;
    let v: Value =
        serde_json::from_slice(&bytes).map_err(|e| format!("the payload is not JSON: {e}"))?;
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(String::from);
    let n = |k: &str| v.get(k).and_then(Value::as_i64);
    Ok(Claims {
        iss: s("iss"),
        aud: match v.get("aud") {
            Some(Value::String(a)) => vec![a.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect(),
            _ => Vec::new(),
        },
        azp: s("azp"),
        appid: s("appid"),
        sub: s("sub"),
        oid: s("oid"),
        ver: s("ver"),
        exp: n("exp"),
        nbf: n("nbf"),
    })
}

/// Whether one role would accept the token, and every reason it would not.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verdict {
    pub role: String,
    pub managed: bool,
    pub accepts: bool,
    pub reasons: Vec<String>,
}

/// Checks the token's claims against each role's trust as STS would (issuer, audience,
/// subject, lifetime), at `now` (seconds since the epoch).
pub fn check_token(
    claims: &Claims,
    roles: &[EntraRole<'_>],
    observed: &Observations,
    now: i64,
) -> Vec<Verdict> {
    let mut out = Vec::new();
    let iss = claims.iss.clone().unwrap_or_default();
    let token_form = if iss.starts_with("https://sts.windows.net/") {
        "v1 (https://sts.windows.net/<tenant>/)"
    } else if iss.starts_with("https://login.microsoftonline.com/") {
        "v2 (https://login.microsoftonline.com/<tenant>/v2.0)"
    } else {
        "not an Entra issuer"
    };
    for r in roles {
        let mut reasons = Vec::new();
        let issuer = r
            .providers
            .iter()
            .map(|p| {
                p.split_once(":oidc-provider/")
                    .map(|x| x.1)
                    .unwrap_or_default()
                    .to_string()
            })
            .find(|i| iss == format!("https://{i}"));
        match &issuer {
            None => reasons.push(format!(
                "issuer: the token's iss `{iss}` is the {token_form} form; the role trusts {}",
                r.providers
                    .iter()
                    .map(|p| format!(
                        "https://{}",
                        p.split_once(":oidc-provider/")
                            .map(|x| x.1)
                            .unwrap_or_default()
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Some(issuer) => {
                // STS's audience rule (docs/entra-setup.md, "Why v1 tokens"): a token that
                // carries azp (every v2 token) is matched by azp, the caller's client id,
                // against the provider's client ids and `<issuer>:aud`, and by aud against
                // `<issuer>:oaud`; a token without azp (v1) by aud against both, and has no
                // oaud. `<issuer>:azp` is no key IAM fills for a generic OIDC issuer.
                let (by, matched): (&str, Vec<String>) = match &claims.azp {
                    Some(azp) => ("azp", vec![azp.clone()]),
                    None => ("aud", claims.aud.clone()),
                };
                let oaud: Vec<String> = if claims.azp.is_some() {
                    claims.aud.clone()
                } else {
                    Vec::new()
                };
                for (key, values, claim) in [
                    ("aud", &matched, by),
                    ("oaud", &oaud, "aud"),
                    ("azp", &Vec::new(), "azp"),
                ] {
                    let wanted = format!("{issuer}:{key}").to_ascii_lowercase();
                    let Some(allowed) = condition_values(&r.role.trust, |k| k == wanted) else {
                        continue;
                    };
                    if !values.iter().any(|v| allowed.contains(v)) {
                        let have = match (key, values.is_empty()) {
                            ("azp", _) => {
                                "cannot match it: IAM fills no azp key for an OIDC issuer"
                                    .to_string()
                            }
                            ("oaud", true) => {
                                "has no azp, so IAM sets no oaud for it (a v1 token)".to_string()
                            }
                            (_, true) => format!("has no {claim}"),
                            _ => format!("is matched by its {claim} {}", values.join(", ")),
                        };
                        reasons.push(format!(
                            "audience: the trust's {issuer}:{key} allows {}; the token {have}",
                            allowed.iter().cloned().collect::<Vec<_>>().join(", ")
                        ));
                    }
                }
                let client_ids = observed
                    .iam()
                    .filter(|(a, _)| *a == r.account)
                    .flat_map(|(_, o)| &o.providers)
                    .find(|p| r.providers.contains(&p.arn))
                    .map(|p| p.client_ids.clone());
                if let Some(ids) = client_ids {
                    if !matched.iter().any(|a| ids.contains(a)) {
                        let note = if by == "azp" {
                            " (STS compares a token's azp, the calling application, when it has one: a v2 token is refused unless its caller's client id is listed)"
                        } else {
                            ""
                        };
                        reasons.push(format!(
                            "audience: the provider's client ids are {} and the token's {by} is {}{note}",
                            ids.iter().cloned().collect::<Vec<_>>().join(", "),
                            matched.join(", ")
                        ));
                    }
                }
            }
        }
        match &claims.sub {
            None => reasons.push("subject: the token has no sub".into()),
            Some(sub) if !r.subjects.iter().any(|s| s.eq_ignore_ascii_case(sub)) => {
                let hint = match &claims.oid {
                    Some(oid) if oid != sub => " (its sub differs from its oid: a user's pairwise sub, which no trust policy can name)",
                    _ => "",
                };
                reasons.push(format!(
                    "subject: sub {sub} is not among the {} principal(s) the role trusts{hint}",
                    r.subjects.len()
                ));
            }
            Some(_) => {}
        }
        match claims.exp {
            None => reasons.push("lifetime: the token has no exp".into()),
            Some(exp) if exp <= now => {
                reasons.push(format!("lifetime: expired {} s ago", now - exp))
            }
            Some(_) => {}
        }
        if let Some(nbf) = claims.nbf.filter(|nbf| *nbf > now) {
            reasons.push(format!(
                "lifetime: not valid for another {} s (nbf)",
                nbf - now
            ));
        }
        out.push(Verdict {
            role: r.role.arn.clone(),
            managed: r.managed,
            accepts: reasons.is_empty(),
            reasons,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::directory::{TenantGroup, TenantObject};

    fn sp(id: &str) -> TenantObject {
        TenantObject {
            id: id.into(),
            display_name: format!("app-{id}"),
            ..Default::default()
        }
    }

    fn group(id: &str, members: &[&str]) -> TenantGroup {
        TenantGroup {
            id: id.into(),
            display_name: format!("g-{id}"),
            members: members.iter().map(|m| m.to_string()).collect(),
        }
    }

    fn tenant() -> Directory {
        // top > mid > leaf, and a cycle leaf > top; s1 direct in top, s2 in leaf, s3 in mid.
        Directory::from_tenant_file(&TenantFile {
            tenant_id: "t".into(),
            groups: vec![
                group("top", &["s1", "mid"]),
                group("mid", &["leaf", "s3"]),
                group("leaf", &["s2", "top"]),
                group("only-s2", &["s2"]),
            ],
            service_principals: vec![sp("s1"), sp("s2"), sp("s3")],
            ..Default::default()
        })
    }

    #[test]
    fn paths_follow_nested_groups_shortest_first_and_survive_cycles() {
        let d = tenant();
        let direct = d.paths("top", false);
        assert_eq!(direct.keys().collect::<Vec<_>>(), ["s1"]);
        let all = d.paths("top", true);
        assert_eq!(all["s1"], ["top"]);
        assert_eq!(all["s3"], ["top", "mid"]);
        assert_eq!(all["s2"], ["top", "mid", "leaf"]);
        assert_eq!(d.label("mid"), "g-mid (mid)");
        assert_eq!(d.label("unknown"), "unknown");
    }

    #[test]
    fn the_group_of_a_set_prefers_direct_members_then_the_smallest() {
        let d = tenant();
        let set = |ids: &[&str]| ids.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        assert_eq!(d.group_of(&set(&["s2"])), Some(("only-s2".into(), false)));
        assert_eq!(d.group_of(&set(&["s1"])), Some(("top".into(), false)));
        assert_eq!(
            d.group_of(&set(&["s2", "s3"])),
            None,
            "mid's closure includes s1 through the cycle"
        );
        assert_eq!(
            d.group_of(&set(&["s1", "s2", "s3"])),
            Some(("leaf".into(), true))
        );
        assert_eq!(d.group_of(&set(&["nobody"])), None);
    }

    #[test]
    fn entra_issuers_in_both_forms_and_nothing_else() {
        let arn = |i: &str| format!("arn:aws:iam::123456789012:oidc-provider/{i}");
        assert_eq!(entra_tenant(&arn("sts.windows.net/abc/")), Some("abc"));
        assert_eq!(
            entra_tenant(&arn("login.microsoftonline.com/abc/v2.0")),
            Some("abc")
        );
        assert_eq!(
            entra_tenant(&arn("token.actions.githubusercontent.com")),
            None
        );
        assert_eq!(entra_tenant("cognito-identity.amazonaws.com"), None);
    }

    #[test]
    fn a_token_that_is_not_a_jwt_says_why() {
        assert!(decode_claims("abc")
            .unwrap_err()
            .contains("1 dot-separated part"));
        assert!(decode_claims("a.!!!.c").unwrap_err().contains("base64url"));
        let payload = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            br#"{"aud":["x","y"],"sub":"s","exp":5}"#,
        );
        let c = decode_claims(&format!("h.{payload}.s")).unwrap();
        assert_eq!(c.aud, ["x", "y"]);
        assert_eq!((c.sub.as_deref(), c.exp), (Some("s"), Some(5)));
    }
}
