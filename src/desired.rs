//! The desired AWS state: policies plus group memberships, made concrete.
//!
//! Pure: no I/O. A mapping that cannot be fully made concrete (its group name became
//! ambiguous, its pinned group is gone, it has more members than one trust policy holds)
//! is reported as a [`MappingError`] and its role is still carried, marked
//! [`DesiredRole::blocked`], with the set of principals a successful directory read says
//! may keep access ([`DesiredRole::may_keep`]): the planner then removes everyone else
//! from the trust policy and adds nobody. Revocation never waits for the rest.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::model::iam_policy;
use crate::model::names::{MappingName, ObjectId, RoleName, StatementId};
use crate::sources::directory::{self, DirectorySnapshot, GroupRequest, Member, MemberKind};
use crate::sources::policy::{
    function_name_of, FunctionAccessSpec, IdentityProviderSpec, Invoker, Named, PolicySet,
    RoleMappingSpec,
};

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
        crate::config::partition_of(&self.region)
    }
}

/// Everything trustsync wants to exist.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Desired {
    /// OIDC providers.
    pub providers: Vec<DesiredProvider>,
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
    pub mapping: MappingName,
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
    pub mapping: MappingName,
    /// Issuer without scheme.
    pub url: String,
    /// Its ARN.
    pub arn: String,
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
    pub mapping: MappingName,
    /// Role name.
    pub name: RoleName,
    pub path: String,
    pub arn: String,
    /// Trust policy (for a blocked mapping: what it would be, never written).
    pub trust: Value,
    /// How to write the trust policy for any set of principals and services.
    pub trust_parts: TrustParts,
    /// Why the mapping cannot be fully planned this pass; only removals are made.
    pub blocked: Option<String>,
    /// The principals that may stay in the trust policy according to a successful
    /// directory read (the group's service principals, or for an unresolvable group the
    /// members it could still mean); `None` for a role without a group.
    pub may_keep: Option<BTreeSet<String>>,
    /// Description, managed only when set.
    pub description: Option<String>,
    /// Maximum session duration.
    pub max_session_duration: i32,
    pub permissions_boundary: Option<String>,
    /// Managed policy ARNs.
    pub managed_policies: BTreeSet<String>,
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
    pub id: ObjectId,
    /// Group display name.
    pub display_name: String,
    /// Service principals trusted (their object ids become `sub` values).
    pub principals: Vec<Member>,
    /// Members that cannot be bound (users, devices, nested groups when not transitive).
    pub skipped: Vec<Member>,
    /// Set when the group was found through its pin but now has another display name.
    pub renamed_to: Option<String>,
    /// Service principals of applications another tenant owns, not trusted (the
    /// provider's `allowApplicationsOwnedBy` does not name their tenant).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub foreign: Vec<Member>,
    /// Other groups that now carry the display name the mapping is pinned by.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub namesakes: Vec<String>,
}

/// What a role's trust policy is made of, so that the planner can write it for the
/// principals and services it decides on (a revocation that adds nobody, a grant that
/// removes nobody).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TrustParts {
    /// The Entra provider, for a mapping with a group.
    pub federated: Option<Federated>,
    /// AWS service principals from the policy.
    pub services: BTreeSet<String>,
}

/// The web-identity part of a trust policy.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Federated {
    /// The IAM OIDC provider's ARN.
    pub provider_arn: String,
    /// Issuer host and path (the condition key prefix).
    pub issuer: String,
    /// The audience condition key's last part (`aud`, `oaud`, `azp`).
    pub audience_key: String,
    pub audiences: Vec<String>,
}

impl TrustParts {
    /// The trust policy letting these principals (object ids) and services in. A group
    /// with no principal gets an explicit Deny rather than an empty condition.
    pub fn document(&self, subs: &BTreeSet<String>, services: &BTreeSet<String>) -> Value {
        let mut statements = Vec::new();
        if let Some(f) = &self.federated {
            if subs.is_empty() {
                statements.push(json!({
                    "Sid": NO_MEMBERS_SID,
                    "Effect": "Deny",
                    "Principal": {"Federated": f.provider_arn},
                    "Action": "sts:AssumeRoleWithWebIdentity",
                }));
            } else {
                let aud = if f.audiences.len() == 1 {
                    json!(f.audiences[0])
                } else {
                    json!(f.audiences)
                };
                statements.push(json!({
                    "Sid": MEMBERS_SID,
                    "Effect": "Allow",
                    "Principal": {"Federated": f.provider_arn},
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": {"StringEquals": {
                        format!("{}:{}", f.issuer, f.audience_key): aud,
                        format!("{}:sub", f.issuer): subs,
                    }},
                }));
            }
        }
        if !services.is_empty() {
            statements.push(json!({
                "Sid": "AwsServices",
                "Effect": "Allow",
                "Principal": {"Service": services},
                "Action": "sts:AssumeRole",
            }));
        }
        json!({"Version": "2012-10-17", "Statement": statements})
    }
}

/// A function's managed invokers and execution role.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DesiredFunction {
    /// The FunctionAccess document.
    pub mapping: MappingName,
    /// Function name.
    pub name: String,
    pub qualifier: Option<String>,
    /// Unqualified ARN.
    pub arn: String,
    /// Execution role ARN, when managed.
    pub execution_role: Option<String>,
    /// The Entra application (client id) the function acts as, through outbound
    /// identity federation.
    pub entra_application: Option<String>,
    /// Statements by id.
    pub statements: BTreeMap<StatementId, DesiredStatement>,
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
    pub sid: StatementId,
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

/// Where each role's group is pinned: role name (lower case) to the value of its
/// [`directory::PIN_TAG`], read from the roles trustsync owns.
pub type Pins = BTreeMap<String, String>;

/// The directory request of one mapping, with its pin when the role records one for the
/// same display name.
pub fn group_request(
    m: &crate::sources::policy::RoleMappingSpec,
    pins: &Pins,
) -> Option<GroupRequest> {
    let selector = m.group.as_ref()?;
    let pin = match (&selector.id, &selector.display_name) {
        (None, Some(name)) => pins
            .get(&m.role.name.to_ascii_lowercase())
            .and_then(|v| directory::pinned_id(v, name)),
        _ => None,
    };
    Some(GroupRequest {
        selector: selector.clone(),
        transitive: m.members.transitive,
        pin,
    })
}

/// The group requests a policy set needs read from the directory.
pub fn group_requests(policies: &PolicySet, pins: &Pins) -> Vec<GroupRequest> {
    let mut out: Vec<GroupRequest> = policies
        .role_mappings
        .iter()
        .filter_map(|m| group_request(&m.spec, pins))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Sid of the statement that lets the group's members in.
pub const MEMBERS_SID: &str = "EntraGroupMembers";
/// Sid of the statement that denies everyone when the group has no bindable member.
pub const NO_MEMBERS_SID: &str = "EntraGroupHasNoMembers";

/// Builds the desired state: each provider, each mapping's role (or why it cannot be
/// built), each function's statements and execution role.
pub fn build(
    policies: &PolicySet,
    directory: &DirectorySnapshot,
    pins: &Pins,
    config: &Config,
    target: &Target,
) -> Desired {
    let b = Builder {
        policies,
        directory,
        pins,
        config,
        target,
    };
    let mut out = Desired {
        providers: policies.providers.iter().map(|p| b.provider(p)).collect(),
        ..Desired::default()
    };
    for m in &policies.role_mappings {
        match b.role(m) {
            Ok((role, blocked)) => {
                out.errors.extend(blocked);
                out.roles.push(role);
            }
            Err(e) => out.errors.push(e),
        }
    }
    out.functions = policies.functions.iter().map(|f| b.function(f)).collect();
    out
}

/// The inputs of [`build`], shared by its steps.
struct Builder<'a> {
    policies: &'a PolicySet,
    directory: &'a DirectorySnapshot,
    pins: &'a Pins,
    config: &'a Config,
    target: &'a Target,
}

/// What the directory says about one mapping's group.
#[derive(Default)]
struct Membership {
    group: Option<GroupInfo>,
    may_keep: Option<BTreeSet<String>>,
    blocked: Option<String>,
}

impl Builder<'_> {
    fn role_path(&self, m: &RoleMappingSpec) -> String {
        m.role
            .path
            .clone()
            .unwrap_or_else(|| self.config.role_path.clone())
    }

    fn role_arn(&self, m: &RoleMappingSpec) -> String {
        let (part, acct) = (self.target.partition(), &self.target.account_id);
        format!(
            "arn:{part}:iam::{acct}:role{}{}",
            self.role_path(m),
            m.role.name
        )
    }

    fn provider_arn(&self, issuer_host_path: &str) -> String {
        let (part, acct) = (self.target.partition(), &self.target.account_id);
        format!("arn:{part}:iam::{acct}:oidc-provider/{issuer_host_path}")
    }

    fn provider(&self, p: &Named<IdentityProviderSpec>) -> DesiredProvider {
        let url = p.spec.issuer_host_path();
        let owner = &self.config.owner_tag;
        DesiredProvider {
            mapping: MappingName::from(&p.name),
            arn: self.provider_arn(&url),
            url,
            client_ids: p.spec.audiences.iter().cloned().collect(),
            thumbprints: p.spec.thumbprints.clone(),
            tags: BTreeMap::from([(owner.key.clone(), owner.value.clone())]),
            adopt: p.spec.adopt,
        }
    }

    /// One mapping's role, with the error that blocks it if any; `Err` when it cannot be
    /// built at all (a reserved tag, a missing provider, a group the pass did not read).
    fn role(
        &self,
        m: &Named<RoleMappingSpec>,
    ) -> Result<(DesiredRole, Option<MappingError>), MappingError> {
        let s = &m.spec;
        let error = |message: String| MappingError {
            mapping: MappingName::from(&m.name),
            resource: s.role.name.clone(),
            message,
        };
        let owner = &self.config.owner_tag;
        if s.role.tags.contains_key(&owner.key) {
            return Err(error(format!(
                "tag `{}` is reserved for trustsync's owner tag",
                owner.key
            )));
        }
        let mut tags = s.role.tags.clone();
        tags.insert(owner.key.clone(), owner.value.clone());
        let mut parts = TrustParts {
            federated: None,
            services: s.trusted_services.iter().cloned().collect(),
        };
        let mut membership = Membership::default();
        if let (Some(provider_name), Some(req)) = (&s.provider, group_request(s, self.pins)) {
            let Some(provider) = self.policies.provider(provider_name) else {
                return Err(error(format!(
                    "no IdentityProvider named `{provider_name}`"
                )));
            };
            let issuer = provider.spec.issuer_host_path();
            parts.federated = Some(Federated {
                provider_arn: self.provider_arn(&issuer),
                issuer,
                audience_key: provider.spec.audience_condition_key.clone(),
                audiences: provider.spec.audiences.clone(),
            });
            membership = self.membership(s, &req, &mut tags).map_err(error)?;
        }
        let subs: BTreeSet<String> = membership
            .group
            .iter()
            .flat_map(|g| g.principals.iter().map(|p| p.id.to_string()))
            .collect();
        let trust = parts.document(&subs, &parts.services);
        if membership.blocked.is_none() {
            membership.blocked = self.trust_too_long(subs.len(), &trust);
        }
        let blocked_error = membership.blocked.as_ref().map(|why| {
            error(format!(
                "{why}; members who left the group still lose access, nobody is added"
            ))
        });
        let role = DesiredRole {
            mapping: MappingName::from(&m.name),
            name: RoleName::from(&s.role.name),
            path: self.role_path(s),
            arn: self.role_arn(s),
            trust,
            trust_parts: parts,
            blocked: membership.blocked,
            may_keep: membership.may_keep,
            description: s.role.description.clone(),
            max_session_duration: s.role.max_session_duration,
            permissions_boundary: s.role.permissions_boundary.clone().or_else(|| {
                // The config's first boundary, in this account.
                self.config.permissions_boundaries.first().map(|name| {
                    crate::config::boundary_arn(
                        self.target.partition(),
                        &self.target.account_id,
                        name,
                    )
                })
            }),
            managed_policies: s.role.managed_policies.iter().cloned().collect(),
            inline_policies: self.inline_policies(m),
            tags,
            adopt: s.adopt,
            group: membership.group,
        };
        Ok((role, blocked_error))
    }

    /// The group's service principals (the rest reported as skipped), who may keep access,
    /// or why the mapping is blocked. A display-name selector is pinned to the group's id
    /// (a role tag); `Err` when the pass did not read the group at all.
    fn membership(
        &self,
        s: &RoleMappingSpec,
        req: &GroupRequest,
        tags: &mut BTreeMap<String, String>,
    ) -> Result<Membership, String> {
        let group = match self.directory.get(req) {
            Some(Ok(group)) => group,
            Some(Err(e)) => {
                return Ok(Membership {
                    group: None,
                    may_keep: Some(e.may_keep()),
                    blocked: Some(e.to_string()),
                })
            }
            None => {
                return Err(format!(
                    "group {} was not read from the directory",
                    req.selector
                ))
            }
        };
        let (principals, skipped): (Vec<Member>, Vec<Member>) = group
            .members
            .iter()
            .cloned()
            .partition(|mem| mem.kind == MemberKind::ServicePrincipal);
        // Applications owned by another tenant: that tenant controls their credentials.
        let provider = s
            .provider
            .as_deref()
            .and_then(|p| self.policies.provider(p));
        let (principals, foreign): (Vec<Member>, Vec<Member>) =
            principals.into_iter().partition(|mem| {
                mem.owner_tenant.as_deref().is_none_or(|t| {
                    provider.is_none_or(|p| {
                        t.eq_ignore_ascii_case(&p.spec.tenant_id)
                            || p.spec
                                .allow_applications_owned_by
                                .iter()
                                .any(|a| a.eq_ignore_ascii_case(t))
                    })
                })
            });
        // Nested groups are expanded by a transitive read; only report them when not.
        let skipped: Vec<Member> = skipped
            .into_iter()
            .filter(|mem| !(s.members.transitive && mem.kind == MemberKind::Group))
            .collect();
        let renamed_to = match &req.selector.display_name {
            Some(name) if req.selector.id.is_none() => {
                tags.insert(
                    directory::PIN_TAG.into(),
                    directory::pin_value(&group.id, name),
                );
                (!directory::same_name(name, &group.display_name))
                    .then(|| group.display_name.clone())
            }
            _ => None,
        };
        Ok(Membership {
            may_keep: Some(principals.iter().map(|p| p.id.to_string()).collect()),
            group: Some(GroupInfo {
                id: group.id.clone(),
                display_name: group.display_name.clone(),
                principals,
                skipped,
                renamed_to,
                foreign,
                namesakes: self
                    .directory
                    .namesakes
                    .get(req)
                    .cloned()
                    .unwrap_or_default(),
            }),
            blocked: None,
        })
    }

    /// Why a trust policy for `members` principals cannot be written: over
    /// `limits.trustPolicyChars`, with about how many would fit.
    fn trust_too_long(&self, members: usize, trust: &Value) -> Option<String> {
        let limit = self.config.limits.trust_policy_chars;
        let length = iam_policy::iam_length(trust);
        if length <= limit {
            return None;
        }
        let per_member = 39; // a 36-character object id, its quotes and a comma
        let fit = members.saturating_sub((length - limit).div_ceil(per_member));
        Some(format!(
            "the trust policy for {members} service principals would be {length} characters, over the limit of {limit} \
             (about {fit} members fit); split the group or raise the quota and limits.trustPolicyChars"
        ))
    }

    /// The mapping's inline policies, and, when functions running as its role act as an
    /// Entra application, the statement that lets the role ask STS for a token for Entra's
    /// exchange only, for at most the longest lifetime any of them allows.
    fn inline_policies(&self, m: &Named<RoleMappingSpec>) -> BTreeMap<String, Value> {
        let mut out = m.spec.role.inline_policies.clone();
        let longest = self
            .policies
            .functions
            .iter()
            .filter(|f| {
                f.spec
                    .execution_role
                    .as_ref()
                    .and_then(|r| r.role_mapping.as_deref())
                    == Some(m.name.as_str())
            })
            .filter_map(|f| f.spec.entra_application.as_ref())
            .map(|a| a.max_token_seconds)
            .max();
        if let Some(seconds) = longest {
            out.insert(
                crate::sources::policy::OUTBOUND_POLICY_NAME.to_string(),
                outbound_statement(seconds),
            );
        }
        out
    }

    fn function(&self, f: &Named<FunctionAccessSpec>) -> DesiredFunction {
        let (part, acct) = (self.target.partition(), &self.target.account_id);
        let s = &f.spec;
        let name = function_name_of(&s.function).to_string();
        let arn = if s.function.starts_with("arn:") {
            crate::model::arn::unqualified(&s.function).to_string()
        } else {
            format!(
                "arn:{part}:lambda:{}:{acct}:function:{name}",
                self.target.region
            )
        };
        let prefix = self.config.instance_statement_prefix();
        let statements = s
            .invokers
            .iter()
            .map(|inv| {
                let st = statement(inv, self.policies, &prefix, part, |m| self.role_arn(m));
                (st.sid.clone(), st)
            })
            .collect();
        let execution_role =
            s.execution_role
                .as_ref()
                .and_then(|r| match (&r.role_mapping, &r.arn) {
                    (Some(m), _) => self
                        .policies
                        .role_mapping(m)
                        .map(|m| self.role_arn(&m.spec)),
                    (None, arn) => arn.clone(),
                });
        DesiredFunction {
            mapping: MappingName::from(&f.name),
            name,
            qualifier: s.qualifier.clone(),
            arn,
            execution_role,
            entra_application: s.entra_application.as_ref().map(|a| a.app_id.clone()),
            statements,
        }
    }
}

/// The policy letting a role ask STS (`GetWebIdentityToken`) for a token whose audience
/// is Entra's token exchange only, valid for at most `seconds`.
pub fn outbound_statement(seconds: u32) -> Value {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "EntraTokenExchange",
            "Effect": "Allow",
            "Action": "sts:GetWebIdentityToken",
            "Resource": "*",
            "Condition": {
                "ForAllValues:StringEquals": {
                    "sts:IdentityTokenAudience": crate::sources::policy::ENTRA_TOKEN_EXCHANGE_AUDIENCE
                },
                "Null": {"sts:IdentityTokenAudience": "false"},
                "NumericLessThanEquals": {"sts:DurationSeconds": seconds.to_string()}
            }
        }]
    })
}

fn statement(
    inv: &Invoker,
    policies: &PolicySet,
    prefix: &str,
    partition: &str,
    role_arn: impl Fn(&crate::sources::policy::RoleMappingSpec) -> String,
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
        sid: format!("{prefix}{kind}-{label}-{hash}").into(),
        principal,
        action,
        source_arn: inv.source_arn.clone(),
        source_account: inv.source_account.clone(),
        invoker: label,
    }
}
