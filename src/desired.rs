//! The desired AWS state: policies plus group memberships, made concrete.
//!
//! Pure: no I/O. A mapping that cannot be made concrete (its group is missing or
//! ambiguous, it has more members than one trust policy holds) becomes a
//! [`MappingError`]; its role is then left exactly as it is, never treated as unwanted.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::directory::{DirectorySnapshot, GroupRequest, Member, MemberKind};
use crate::iam_policy;
use crate::policy::{function_name_of, Invoker, PolicySet};

/// Where the desired state is made: the account and region AWS is in.
#[derive(Debug, Clone)]
pub struct Target {
    /// 12-digit account id.
    pub account_id: String,
    /// Region of the Lambda functions.
    pub region: String,
}

impl Target {
    /// `aws`, `aws-cn` or `aws-us-gov`, from the region.
    pub fn partition(&self) -> &'static str {
        if self.region.starts_with("cn-") {
            "aws-cn"
        } else if self.region.starts_with("us-gov-") {
            "aws-us-gov"
        } else {
            "aws"
        }
    }
}

/// Everything trustsync wants to exist.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Desired {
    /// OIDC providers.
    pub providers: Vec<DesiredProvider>,
    /// Roles.
    pub roles: Vec<DesiredRole>,
    /// Lambda functions' invokers and execution roles.
    pub functions: Vec<DesiredFunction>,
    /// Mappings that could not be made concrete; their roles and functions are left alone.
    pub errors: Vec<MappingError>,
}

/// A mapping that cannot be planned this pass.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MappingError {
    /// The mapping (`metadata.name`).
    pub mapping: String,
    /// The resource it would manage (role name or function).
    pub resource: String,
    /// What is wrong.
    pub message: String,
}

/// An OIDC provider trustsync manages.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DesiredProvider {
    /// The IdentityProvider document.
    pub mapping: String,
    /// Issuer without scheme.
    pub url: String,
    /// Its ARN.
    pub arn: String,
    /// Client ids.
    pub client_ids: BTreeSet<String>,
    /// Thumbprints for create.
    pub thumbprints: Vec<String>,
    /// Tags (the owner tag).
    pub tags: BTreeMap<String, String>,
    /// Take over an unowned provider.
    pub adopt: bool,
}

/// A role trustsync manages.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DesiredRole {
    /// The RoleMapping document.
    pub mapping: String,
    /// Role name.
    pub name: String,
    /// Path.
    pub path: String,
    /// ARN.
    pub arn: String,
    /// Trust policy.
    pub trust: Value,
    /// Description, managed only when set.
    pub description: Option<String>,
    /// Maximum session duration.
    pub max_session_duration: i32,
    /// Permissions boundary.
    pub permissions_boundary: Option<String>,
    /// Managed policy ARNs.
    pub managed_policies: BTreeSet<String>,
    /// Inline policies.
    pub inline_policies: BTreeMap<String, Value>,
    /// Tags, owner tag included.
    pub tags: BTreeMap<String, String>,
    /// Take over an unowned role of the same name.
    pub adopt: bool,
    /// The group behind the trust, when there is one.
    pub group: Option<GroupInfo>,
}

/// The group a role's trust comes from.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupInfo {
    /// Group object id.
    pub id: String,
    /// Group display name.
    pub display_name: String,
    /// Service principals trusted (their object ids become `sub` values).
    pub principals: Vec<Member>,
    /// Members that cannot be bound (users, devices, nested groups when not transitive).
    pub skipped: Vec<Member>,
}

/// A function's managed invokers and execution role.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DesiredFunction {
    /// The FunctionAccess document.
    pub mapping: String,
    /// Function name.
    pub name: String,
    /// Qualifier.
    pub qualifier: Option<String>,
    /// Unqualified ARN.
    pub arn: String,
    /// Execution role ARN, when managed.
    pub execution_role: Option<String>,
    /// Statements by id.
    pub statements: BTreeMap<String, DesiredStatement>,
}

impl DesiredFunction {
    /// The ARN with the qualifier, as Lambda names the policy's resource.
    pub fn qualified_arn(&self) -> String {
        match &self.qualifier {
            Some(q) => format!("{}:{q}", self.arn),
            None => self.arn.clone(),
        }
    }
}

/// One invoke permission.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DesiredStatement {
    /// Statement id, with the trustsync prefix.
    pub sid: String,
    /// Principal as sent to AddPermission.
    pub principal: String,
    /// Lambda action.
    pub action: String,
    /// Source ARN condition.
    pub source_arn: Option<String>,
    /// Source account condition.
    pub source_account: Option<String>,
    /// Who asked for it (RoleMapping name, principal or service).
    pub invoker: String,
}

impl DesiredStatement {
    /// The statement as Lambda's GetPolicy shows it, without `Resource`.
    pub fn document(&self) -> Value {
        let principal = if self.principal.ends_with(".amazonaws.com") {
            json!({"Service": self.principal})
        } else {
            json!({"AWS": self.principal})
        };
        let mut st = json!({"Sid": self.sid, "Effect": "Allow", "Principal": principal, "Action": self.action});
        let mut cond = serde_json::Map::new();
        if let Some(arn) = &self.source_arn {
            cond.insert("ArnLike".into(), json!({"AWS:SourceArn": arn}));
        }
        if let Some(acct) = &self.source_account {
            cond.insert("StringEquals".into(), json!({"AWS:SourceAccount": acct}));
        }
        if !cond.is_empty() {
            st["Condition"] = Value::Object(cond);
        }
        st
    }
}

/// The group requests a policy set needs read from the directory.
pub fn group_requests(policies: &PolicySet) -> Vec<GroupRequest> {
    let mut out: Vec<GroupRequest> = policies
        .role_mappings
        .iter()
        .filter_map(|m| {
            m.spec.group.as_ref().map(|g| GroupRequest {
                selector: g.clone(),
                transitive: m.spec.members.transitive,
            })
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Sid of the statement that lets the group's members in.
pub const MEMBERS_SID: &str = "EntraGroupMembers";
/// Sid of the statement that denies everyone when the group has no bindable member.
pub const NO_MEMBERS_SID: &str = "EntraGroupHasNoMembers";

/// Builds the desired state.
pub fn build(
    policies: &PolicySet,
    directory: &DirectorySnapshot,
    config: &Config,
    target: &Target,
) -> Desired {
    let part = target.partition();
    let acct = &target.account_id;
    let owner = &config.owner_tag;
    let mut out = Desired::default();

    for p in &policies.providers {
        let url = p.spec.issuer_host_path();
        out.providers.push(DesiredProvider {
            mapping: p.name.clone(),
            arn: format!("arn:{part}:iam::{acct}:oidc-provider/{url}"),
            url,
            client_ids: p.spec.audiences.iter().cloned().collect(),
            thumbprints: p.spec.thumbprints.clone(),
            tags: BTreeMap::from([(owner.key.clone(), owner.value.clone())]),
            adopt: p.spec.adopt,
        });
    }

    let role_arn = |m: &crate::policy::RoleMappingSpec| {
        let path = m
            .role
            .path
            .clone()
            .unwrap_or_else(|| config.role_path.clone());
        format!("arn:{part}:iam::{acct}:role{path}{}", m.role.name)
    };

    for m in &policies.role_mappings {
        let s = &m.spec;
        let error = |message: String| MappingError {
            mapping: m.name.clone(),
            resource: s.role.name.clone(),
            message,
        };
        if s.role.tags.contains_key(&owner.key) {
            out.errors.push(error(format!(
                "tag `{}` is reserved for trustsync's owner tag",
                owner.key
            )));
            continue;
        }
        let mut statements = Vec::new();
        let mut group_info = None;
        if let (Some(provider_name), Some(selector)) = (&s.provider, &s.group) {
            let Some(provider) = policies.provider(provider_name) else {
                out.errors.push(error(format!(
                    "no IdentityProvider named `{provider_name}`"
                )));
                continue;
            };
            let group = match directory.get(selector, s.members.transitive) {
                Some(Ok(g)) => g,
                Some(Err(e)) => {
                    out.errors.push(error(e.to_string()));
                    continue;
                }
                None => {
                    out.errors.push(error(format!(
                        "group {selector} was not read from the directory"
                    )));
                    continue;
                }
            };
            let (principals, skipped): (Vec<Member>, Vec<Member>) = group
                .members
                .iter()
                .cloned()
                .partition(|mem| mem.kind == MemberKind::ServicePrincipal);
            // Nested groups are expanded by a transitive read; only report them when not.
            let skipped: Vec<Member> = skipped
                .into_iter()
                .filter(|mem| !(s.members.transitive && mem.kind == MemberKind::Group))
                .collect();
            let issuer = provider.spec.issuer_host_path();
            let provider_arn = format!("arn:{part}:iam::{acct}:oidc-provider/{issuer}");
            let audiences: Vec<&String> = provider.spec.audiences.iter().collect();
            let aud = if audiences.len() == 1 {
                json!(audiences[0])
            } else {
                json!(audiences)
            };
            if principals.is_empty() {
                statements.push(json!({
                    "Sid": NO_MEMBERS_SID,
                    "Effect": "Deny",
                    "Principal": {"Federated": provider_arn},
                    "Action": "sts:AssumeRoleWithWebIdentity",
                }));
            } else {
                let subs: Vec<&str> = principals.iter().map(|p| p.id.as_str()).collect();
                statements.push(json!({
                    "Sid": MEMBERS_SID,
                    "Effect": "Allow",
                    "Principal": {"Federated": provider_arn},
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": {"StringEquals": {
                        format!("{issuer}:{}", provider.spec.audience_condition_key): aud,
                        format!("{issuer}:sub"): subs,
                    }},
                }));
            }
            group_info = Some(GroupInfo {
                id: group.id.clone(),
                display_name: group.display_name.clone(),
                principals,
                skipped,
            });
        }
        if !s.trusted_services.is_empty() {
            let mut services = s.trusted_services.clone();
            services.sort();
            services.dedup();
            statements.push(json!({
                "Sid": "AwsServices",
                "Effect": "Allow",
                "Principal": {"Service": services},
                "Action": "sts:AssumeRole",
            }));
        }
        let trust = json!({"Version": "2012-10-17", "Statement": statements});
        let length = iam_policy::iam_length(&trust);
        if length > config.limits.trust_policy_chars {
            let members = group_info.as_ref().map_or(0, |g| g.principals.len());
            let per_member = 39; // a 36-character object id, its quotes and a comma
            let fit = members
                .saturating_sub((length - config.limits.trust_policy_chars).div_ceil(per_member));
            out.errors.push(error(format!(
                "the trust policy for {members} service principals would be {length} characters, over the limit of {} \
                 (about {fit} members fit); split the group or raise the quota and limits.trustPolicyChars",
                config.limits.trust_policy_chars
            )));
            continue;
        }
        let mut tags = s.role.tags.clone();
        tags.insert(owner.key.clone(), owner.value.clone());
        out.roles.push(DesiredRole {
            mapping: m.name.clone(),
            name: s.role.name.clone(),
            path: s
                .role
                .path
                .clone()
                .unwrap_or_else(|| config.role_path.clone()),
            arn: role_arn(s),
            trust,
            description: s.role.description.clone(),
            max_session_duration: s.role.max_session_duration,
            permissions_boundary: s.role.permissions_boundary.clone(),
            managed_policies: s.role.managed_policies.iter().cloned().collect(),
            inline_policies: s.role.inline_policies.clone(),
            tags,
            adopt: s.adopt,
            group: group_info,
        });
    }

    for f in &policies.functions {
        let s = &f.spec;
        let name = function_name_of(&s.function).to_string();
        let arn = if s.function.starts_with("arn:") {
            s.function.split(':').take(7).collect::<Vec<_>>().join(":")
        } else {
            format!("arn:{part}:lambda:{}:{acct}:function:{name}", target.region)
        };
        let mut statements = BTreeMap::new();
        for inv in &s.invokers {
            let st = statement(inv, policies, &config.statement_id_prefix, part, |m| {
                role_arn(m)
            });
            statements.insert(st.sid.clone(), st);
        }
        let execution_role =
            s.execution_role
                .as_ref()
                .and_then(|r| match (&r.role_mapping, &r.arn) {
                    (Some(m), _) => policies.role_mapping(m).map(|m| role_arn(&m.spec)),
                    (None, arn) => arn.clone(),
                });
        out.functions.push(DesiredFunction {
            mapping: f.name.clone(),
            name,
            qualifier: s.qualifier.clone(),
            arn,
            execution_role,
            statements,
        });
    }
    out
}

fn statement(
    inv: &Invoker,
    policies: &PolicySet,
    prefix: &str,
    partition: &str,
    role_arn: impl Fn(&crate::policy::RoleMappingSpec) -> String,
) -> DesiredStatement {
    let (kind, label, principal) = if let Some(m) = &inv.role_mapping {
        let arn = policies
            .role_mapping(m)
            .map(|m| role_arn(&m.spec))
            .unwrap_or_default();
        ("role", m.clone(), arn)
    } else if let Some(svc) = &inv.service {
        (
            "svc",
            svc.trim_end_matches(".amazonaws.com").to_string(),
            svc.clone(),
        )
    } else {
        let p = inv.principal.clone().unwrap_or_default();
        let arn = if p.len() == 12 && p.chars().all(|c| c.is_ascii_digit()) {
            format!("arn:{partition}:iam::{p}:root")
        } else {
            p
        };
        let label = arn
            .rsplit(['/', ':'])
            .next()
            .unwrap_or("principal")
            .to_string();
        ("arn", label, arn)
    };
    let action = inv
        .action
        .clone()
        .unwrap_or_else(|| "lambda:InvokeFunction".into());
    let mut hasher = Sha256::new();
    for part in [
        Some(&principal),
        Some(&action),
        inv.source_arn.as_ref(),
        inv.source_account.as_ref(),
    ] {
        hasher.update(part.map_or("", |s| s.as_str()).as_bytes());
        hasher.update([0]);
    }
    let digest = hasher.finalize();
    let hash: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    let label: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(100 - prefix.len() - kind.len() - 10)
        .collect();
    DesiredStatement {
        sid: format!("{prefix}{kind}-{label}-{hash}"),
        principal,
        action,
        source_arn: inv.source_arn.clone(),
        source_account: inv.source_account.clone(),
        invoker: label,
    }
}
