//! `trustsync export`: policy documents that adopt what exists.

use std::collections::{BTreeMap, BTreeSet};

use super::{entra_tenant, Directory, EntraRole};
use crate::observed::{condition_values, trusted_services, Observations};
use crate::plan::Settings;
use crate::sources::policy::{
    short_lines, AccountSelector, GroupSelector, IdentityProviderSpec, MemberSelection, PolicySet,
    RoleMappingSpec, RoleSpec, TokenVersion,
};

/// `trustsync export`: policy documents that adopt what exists.
#[derive(Debug, Default)]
pub struct Export {
    /// The documents, as one multi-document YAML stream.
    pub yaml: String,
    /// How many RoleMapping documents were written.
    pub mappings: usize,
    /// How many AccessAssignment documents were written (`export_people`).
    pub assignments: usize,
    /// Roles not exported, each with why.
    pub skipped: Vec<String>,
}

/// One document of `kind` with this spec, serialised from the policy model's own types
/// (what is written is what the schema and the loader read).
pub(super) fn document(
    kind: &str,
    name: &str,
    comment: &str,
    spec: &impl serde::Serialize,
) -> String {
    let doc = serde_json::json!({
        "apiVersion": crate::sources::policy::API_VERSION,
        "kind": kind,
        "metadata": {"name": name},
        "spec": spec,
    });
    let yaml = serde_yaml::to_string(&doc).expect("JSON values serialise as YAML");
    format!("---\n{}{yaml}", comment_lines(comment))
}

/// `comment` as YAML comment lines: each of its lines starts with `# `, whatever it holds.
/// It quotes names read from AWS (an identity-store group's display name may carry a line
/// break, which YAML would otherwise read as the end of the comment and the rest as the
/// document), so every line break YAML knows (`\n`, `\r`, NEL, LS, PS) starts a new comment
/// line, and control characters, which a YAML stream may not hold, are written escaped.
fn comment_lines(comment: &str) -> String {
    comment
        .split(['\n', '\r', '\u{85}', '\u{2028}', '\u{2029}'])
        .map(|line| format!("# {}\n", short_lines(line)))
        .collect()
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
    let mut x = Exporter {
        out: Export::default(),
        provider_taken: policies.providers.iter().map(|p| p.name.clone()).collect(),
        // Provider documents by issuer (host/path): the repository's, then those exported.
        providers: policies
            .providers
            .iter()
            .map(|p| (p.spec.issuer_host_path(), p.name.clone()))
            .collect(),
        many_accounts,
    };
    let mut taken: BTreeSet<String> = policies
        .role_mappings
        .iter()
        .map(|m| m.name.clone())
        .collect();
    for r in roles.iter().filter(|r| !r.managed) {
        let Exportable {
            provider_arn,
            issuer,
            group,
            transitive,
        } = match exportable(r, directory, settings) {
            Ok(e) => e,
            Err(why) => {
                x.out.skipped.push(why);
                continue;
            }
        };
        let provider = x.provider(r, provider_arn, &issuer, observed);
        let spec = mapping_spec(
            r,
            provider,
            &group,
            transitive,
            settings,
            x.only(&r.account),
        );
        let name = document_name("role", r.role.name.as_str(), &mut taken);
        x.out.yaml.push_str(&document(
            "RoleMapping",
            &name,
            &format!(
                "exported from {}: its {} trusted service principal(s) are the {}members of {}",
                r.role.arn,
                r.subjects.len(),
                if transitive { "transitive " } else { "" },
                directory.label(&group)
            ),
            &spec,
        ));
        x.out.mappings += 1;
    }
    x.out
}

/// What a role needs to be exported: its one Entra provider (and that provider's issuer)
/// and the group whose members are exactly its subjects.
struct Exportable<'a> {
    provider_arn: &'a String,
    issuer: String,
    group: String,
    transitive: bool,
}

/// Whether a role can be exported, or why not: one provider, a path under the
/// controller's, a group of exactly its trusted subjects.
fn exportable<'a>(
    r: &'a EntraRole<'_>,
    directory: &Directory,
    settings: &Settings,
) -> Result<Exportable<'a>, String> {
    let arn = &r.role.arn;
    if r.providers.len() != 1 {
        return Err(format!(
            "{arn}: trusts {} Entra providers; a mapping has one",
            r.providers.len()
        ));
    }
    let provider_arn = r.providers.first().expect("one");
    let issuer = crate::model::names::provider_issuer(provider_arn)
        .unwrap_or_default()
        .to_string();
    if !r.role.path.starts_with(&settings.role_path) {
        return Err(format!(
            "{arn}: lives at path `{}`, outside the controller's rolePath `{}` (IAM cannot move a role)",
            r.role.path, settings.role_path
        ));
    }
    let Some((group, transitive)) = directory.group_of(&r.subjects) else {
        return Err(format!(
            "{arn}: no group has exactly its {} trusted service principal(s) ({}); make one, or write the mapping by hand",
            r.subjects.len(),
            r.subjects.iter().cloned().collect::<Vec<_>>().join(", ")
        ));
    };
    Ok(Exportable {
        provider_arn,
        issuer,
        group,
        transitive,
    })
}

/// The export under way: the documents so far, and the provider names taken.
struct Exporter {
    out: Export,
    provider_taken: BTreeSet<String>,
    providers: BTreeMap<String, String>,
    many_accounts: bool,
}

impl Exporter {
    /// With several accounts, each document names the one its role was found in.
    fn only(&self, account: &str) -> Option<AccountSelector> {
        self.many_accounts.then(|| AccountSelector {
            ids: vec![account.to_string()],
            labels: BTreeMap::new(),
        })
    }

    /// The name of the provider document a role's mapping names: the repository's or one
    /// exported before for its issuer, else a new one, exported now.
    fn provider(
        &mut self,
        r: &EntraRole<'_>,
        provider_arn: &str,
        issuer: &str,
        observed: &Observations,
    ) -> String {
        // Exported as v1 (below): a v2 role joins the repository's v1 provider of its tenant.
        let v1_issuer = entra_tenant(provider_arn).map(|t| format!("sts.windows.net/{t}/"));
        let known = self
            .providers
            .get(issuer)
            .or_else(|| v1_issuer.as_ref().and_then(|i| self.providers.get(i)));
        if let Some(name) = known {
            return name.clone();
        }
        let tenant = entra_tenant(provider_arn).unwrap_or_default().to_string();
        let v1 = issuer.starts_with("sts.windows.net/");
        let observed_provider = observed
            .iam()
            .filter(|(a, _)| *a == r.account)
            .flat_map(|(_, o)| &o.providers)
            .find(|p| p.arn == provider_arn);
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
            &mut self.provider_taken,
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
            accounts: self.only(&r.account),
        };
        self.out.yaml.push_str(&document(
            "IdentityProvider",
            &name,
            &if v1 {
                format!("exported from {provider_arn}")
            } else {
                format!("exported from {provider_arn} as v1: STS accepts no Entra v2 app-only token (docs/entra-setup.md, \"Why v1 tokens\"); apply moves the roles' trust to https://sts.windows.net/{tenant}/")
            },
            &spec,
        ));
        self.providers.insert(issuer.to_string(), name.clone());
        if let Some(v1) = v1_issuer {
            self.providers.insert(v1, name.clone());
        }
        name
    }
}

/// The RoleMapping that adopts a role as it is: its trust's provider and group, its
/// settings, policies and tags (trustsync's own tags left out).
fn mapping_spec(
    r: &EntraRole<'_>,
    provider: String,
    group: &str,
    transitive: bool,
    settings: &Settings,
    accounts: Option<AccountSelector>,
) -> RoleMappingSpec {
    let role = r.role;
    RoleMappingSpec {
        provider: Some(provider),
        group: Some(GroupSelector {
            id: Some(group.to_string()),
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
                .filter(|(k, _)| **k != settings.owner_tag.key && !k.starts_with("trustsync.dev/"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        },
        adopt: true,
        accounts,
    }
}
