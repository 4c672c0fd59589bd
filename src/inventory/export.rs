//! `trustsync export`: policy documents that adopt what exists.

use std::collections::{BTreeMap, BTreeSet};

use super::{entra_tenant, Directory, EntraRole};
use crate::observed::{condition_values, trusted_services, Observations};
use crate::plan::Settings;
use crate::sources::policy::{
    AccountSelector, GroupSelector, IdentityProviderSpec, MemberSelection, PolicySet,
    RoleMappingSpec, RoleSpec, TokenVersion,
};

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

/// One document of `kind` with this spec, serialised from the policy model's own types
/// (what is written is what the schema and the loader read).
fn document(kind: &str, name: &str, comment: &str, spec: &impl serde::Serialize) -> String {
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
    // With several accounts, each document names the one its role was found in.
    let only = |account: &str| {
        many_accounts.then(|| AccountSelector {
            ids: vec![account.to_string()],
            labels: BTreeMap::new(),
        })
    };
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
                let spec = IdentityProviderSpec {
                    tenant_id: tenant.clone(),
                    token_version: TokenVersion::V1,
                    audiences: audiences.into_iter().collect(),
                    audience_condition_key: "aud".into(),
                    thumbprints: Vec::new(),
                    adopt: true,
                    allow_applications_owned_by: Vec::new(),
                    accounts: only(&r.account),
                };
                out.yaml.push_str(&document(
                    "IdentityProvider",
                    &name,
                    &if v1 {
                        format!("exported from {provider_arn}")
                    } else {
                        format!("exported from {provider_arn} as v1: STS accepts no Entra v2 app-only token (docs/entra-setup.md, \"Why v1 tokens\"); apply moves the roles' trust to https://sts.windows.net/{tenant}/")
                    },
                    &spec,
                ));
                providers.insert(issuer.clone(), name.clone());
                if let Some(v1) = v1_issuer {
                    providers.insert(v1, name.clone());
                }
                name
            }
        };
        let role = r.role;
        let spec = RoleMappingSpec {
            provider: Some(provider),
            group: Some(GroupSelector {
                id: Some(group.clone()),
                display_name: None,
            }),
            members: MemberSelection { transitive },
            trusted_services: trusted_services(&role.trust).into_iter().collect(),
            role: RoleSpec {
                name: role.name.to_string(),
                path: (role.path != settings.role_path).then(|| role.path.clone()),
                description: role.description.clone(),
                max_session_duration: role.max_session_duration.unwrap_or(3600),
                permissions_boundary: role.permissions_boundary.clone(),
                managed_policies: role.managed_policies.iter().cloned().collect(),
                inline_policies: role.inline_policies.clone(),
                tags: role
                    .tags
                    .iter()
                    .filter(|(k, _)| {
                        **k != settings.owner_tag.key && !k.starts_with("trustsync.dev/")
                    })
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            },
            adopt: true,
            accounts: only(&r.account),
        };
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
            &spec,
        ));
        out.mappings += 1;
    }
    out
}
