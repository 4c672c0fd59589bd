//! `trustsync access`: who can reach which role and function, through which groups, and
//! since when; its renderings.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::{Directory, EntraRole};
use crate::audit;
use crate::observed::{allowed_principals, trusted_services, Observations, ObservedRole};
use crate::sources::policy::PolicySet;

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
    /// Sessions issued before this time are denied: the moment the revocation was
    /// written plus `safety.propagationSeconds`, from when it is in effect everywhere.
    pub issued_before: String,
    /// The denial stays until then, when every session it covers has expired (whatever
    /// happens to membership meanwhile).
    pub until: String,
}

impl DeniedSessions {
    /// In words: whose sessions, the cut-off, and what the cut-off is.
    pub fn describe(&self) -> String {
        match &self.principal {
            Some(p) => format!(
                "sessions of {p} issued before {} are denied (it left the role) until {}: the cut-off is when its removal was written plus `safety.propagationSeconds` for IAM to apply the trust change everywhere, so it may lie a few minutes ahead; a session issued after it needs a trust policy that names {p} again, and one issued before it never works again, even if {p} comes back",
                self.issued_before, self.until
            ),
            None => format!(
                "every web-identity session issued before {} is denied until {}: the time of the pass whose departed workloads' denials did not fit the role's inline policy, so it cut off everyone's sessions at once; those still trusted assume the role again",
                self.issued_before, self.until
            ),
        }
    }
}

fn denied_sessions(role: &ObservedRole, principal: Option<&str>) -> Vec<DeniedSessions> {
    use crate::plan::sessions::{rfc3339, SessionDenials};
    let Some(doc) = role.inline_policies.get(crate::plan::SESSIONS_POLICY) else {
        return Vec::new();
    };
    let d = SessionDenials::parse(doc);
    let until = |t: u64| rfc3339(t + d.lasting_of(t));
    let role_wide = d.role_wide.values().map(|t| DeniedSessions {
        principal: None,
        issued_before: rfc3339(*t),
        until: until(*t),
    });
    let subjects = d
        .subjects
        .iter()
        .filter(|((_, sub), _)| principal.is_none_or(|p| sub.eq_ignore_ascii_case(p)))
        .map(|((_, sub), t)| DeniedSessions {
            principal: Some(sub.clone()),
            issued_before: rfc3339(*t),
            until: until(*t),
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
            self.role_text(r, &mut s);
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

    /// One role of [`Self::text`]: who manages it, who may assume it (or that the
    /// principal no longer may), what it reaches, the sessions denied.
    fn role_text(&self, r: &RoleAccess, s: &mut String) {
        let who = match (&r.mapping, r.managed) {
            (Some(m), _) => format!("managed by mapping {m}"),
            (None, true) => "managed by trustsync, no mapping in these policies".into(),
            (None, false) => "NOT managed by trustsync".into(),
        };
        s.push_str(&format!("{} (account {}, {who})\n", r.arn, r.account));
        // With --principal, a role listed without it among its workloads is one it
        // left: its sessions are denied, and nothing the role reaches is its any more.
        let left = self.principal.is_some() && r.workloads.is_empty();
        if left {
            let p = self.principal.as_deref().unwrap_or_default();
            s.push_str(&format!(
                "  no longer trusts {p}: its trust policy does not name it, so it cannot get a new session\n"
            ));
        } else if r.workloads.is_empty() {
            s.push_str("  no workload can assume it\n");
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
        if left {
            if !r.functions.is_empty() {
                s.push_str(&format!(
                    "  the role may still invoke {}, but not for {}\n",
                    r.functions.join(", "),
                    self.principal.as_deref().unwrap_or_default()
                ));
            }
        } else {
            for f in &r.functions {
                s.push_str(&format!("  may invoke {f}\n"));
            }
        }
        for d in &r.denied_sessions {
            s.push_str(&format!("  {}\n", d.describe()));
        }
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
            match (&self.principal, r.workloads.is_empty()) {
                (Some(p), true) => s.push_str(&format!(
                    "| `{}` | {managed} | `{p}`: **no longer trusted**{} | | |\n",
                    r.arn,
                    r.denied_sessions
                        .iter()
                        .map(|d| format!("; sessions issued before {} denied", d.issued_before))
                        .collect::<String>()
                )),
                (None, true) => s.push_str(&format!("| `{}` | {managed} | none | | |\n", r.arn)),
                _ => {}
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
