//! `trustsync export`: policy documents that adopt what exists.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::*;
use crate::observed::{condition_values, trusted_services, Observations};
use crate::plan::Settings;
use crate::sources::policy::PolicySet;

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
        let issuer = crate::model::names::provider_issuer(provider_arn)
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
