//! Reading an account: roles, OIDC providers and functions, into [`Observed`].

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_iam::types::EntityType;
use futures::stream::{self, StreamExt, TryStreamExt};

use crate::model::arn::ArnParts;
use crate::model::call::Failure;
use crate::model::iam_policy::parse_document;
use crate::observed::{
    FunctionKey, MarkedFunction, Observed, ObservedFunction, ObservedProvider, ObservedRole,
};

use super::{AwsClients, Operation};

impl AwsClients {
    /// Reads everything the planner compares: all roles, the OIDC providers, the given
    /// functions, and every function carrying `function_tag_key` (found with one tagging
    /// query) at each qualifier the tag records. Any failed read fails the whole
    /// observation.
    pub async fn observe(
        &self,
        iam: bool,
        role_path: &str,
        functions: &[FunctionKey],
        function_tag_key: &str,
    ) -> Result<Observed, Failure> {
        let mut observed = Observed::default();
        if iam {
            self.read_roles(role_path, &mut observed).await?;
            observed.providers = self.read_providers().await?;
        }
        observed.marked_functions = self.read_marked_functions(function_tag_key).await?;
        let mut keys: BTreeSet<FunctionKey> = functions.iter().cloned().collect();
        for (name, m) in &observed.marked_functions {
            keys.insert((name.clone(), None));
            keys.extend(m.qualifiers().into_iter().map(|q| (name.clone(), Some(q))));
        }
        let results: Vec<(FunctionKey, Option<ObservedFunction>)> = stream::iter(keys)
            .map(|key| async move {
                let f = self.read_function(&key.0, key.1.as_deref()).await?;
                Ok::<_, Failure>((key, f))
            })
            .buffer_unordered(4)
            .try_collect()
            .await?;
        observed.functions = results.into_iter().collect();
        Ok(observed)
    }

    /// Just these roles, each with `GetRole` and, unless the caller knows it
    /// (`sessions_known`, by name), `GetRolePolicy` for the session-deny policy: one or two
    /// requests a role, whatever the size of the account.
    pub async fn observe_roles(
        &self,
        names: &[String],
        sessions_known: &BTreeSet<String>,
    ) -> Result<Observed, Failure> {
        let roles: Vec<Option<ObservedRole>> = stream::iter(names.to_vec())
            .map(|name| async move {
                let sessions = !sessions_known.contains(&name.to_ascii_lowercase());
                self.read_role(&name, sessions).await
            })
            .buffer_unordered(8)
            .try_collect()
            .await?;
        Ok(Observed {
            roles: roles
                .into_iter()
                .flatten()
                .map(|r| (r.name.to_string().to_ascii_lowercase(), r))
                .collect(),
            ..Observed::default()
        })
    }

    /// One role and (with `sessions`) its session-deny policy; `None` when the role does
    /// not exist.
    async fn read_role(&self, name: &str, sessions: bool) -> Result<Option<ObservedRole>, Failure> {
        let missing = |f: &Failure| f.is(&["NoSuchEntity"]);
        let Some(out) = self
            .call(Operation::GetRole, missing, || {
                self.iam.get_role().role_name(name).send()
            })
            .await?
        else {
            return Ok(None);
        };
        let Some(r) = out.role() else {
            return Ok(None);
        };
        let bad = |what: &str, e: crate::model::iam_policy::Error| {
            Failure::permanent(
                Operation::GetRole.name(),
                format!("role {name}: {what}: {e}"),
            )
        };
        // URL-encoded, as IAM's other role reads give it: parse_document decodes it.
        let trust = parse_document(r.assume_role_policy_document().unwrap_or("{}"))
            .map_err(|e| bad("trust policy", e))?;
        let policy = crate::model::names::SESSIONS_POLICY;
        let mut inline = BTreeMap::new();
        let read = match sessions {
            true => {
                self.call(Operation::GetRolePolicy, missing, || {
                    self.iam
                        .get_role_policy()
                        .role_name(name)
                        .policy_name(policy)
                        .send()
                })
                .await?
            }
            false => None,
        };
        if let Some(p) = read {
            let doc = parse_document(p.policy_document())
                .map_err(|e| bad(&format!("inline policy {policy}"), e))?;
            inline.insert(policy.to_string(), doc);
        }
        Ok(Some(ObservedRole {
            path: r.path().to_string(),
            arn: r.arn().to_string(),
            trust,
            description: r.description().map(String::from),
            max_session_duration: r.max_session_duration(),
            permissions_boundary: r
                .permissions_boundary()
                .and_then(|b| b.permissions_boundary_arn())
                .map(String::from),
            inline_policies: inline,
            managed_policies: Default::default(),
            tags: r
                .tags()
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect(),
            name: r.role_name().into(),
        }))
    }

    /// The account's outbound identity federation issuer URL; `None` when the feature is
    /// off.
    pub async fn outbound_issuer(&self) -> Result<Option<String>, Failure> {
        let out = self
            .call(
                Operation::GetOutboundWebIdentityFederationInfo,
                |f| f.is(&["FeatureDisabled", "FeatureDisabledException"]),
                || self.iam.get_outbound_web_identity_federation_info().send(),
            )
            .await?;
        Ok(out
            .filter(|o| o.jwt_vending_enabled())
            .and_then(|o| o.issuer_identifier().map(String::from)))
    }

    /// The functions of this region that carry the tag, with its value.
    pub(super) async fn read_marked_functions(
        &self,
        key: &str,
    ) -> Result<BTreeMap<String, MarkedFunction>, Failure> {
        use aws_sdk_resourcegroupstagging::types::TagFilter;
        let mut out = BTreeMap::new();
        self.paginate(
            Operation::GetResources,
            |token| {
                self.tagging
                    .get_resources()
                    .tag_filters(TagFilter::builder().key(key).build())
                    .resource_type_filters("lambda:function")
                    .set_pagination_token(token)
                    .send()
            },
            |page| page.pagination_token().map(String::from),
            |page| {
                for r in page.resource_tag_mapping_list() {
                    let Some(arn) = r.resource_arn() else {
                        continue;
                    };
                    let Some(name) = ArnParts::parse(arn).and_then(|a| a.function_name()) else {
                        continue;
                    };
                    let value = r
                        .tags()
                        .iter()
                        .find(|t| t.key() == key)
                        .map(|t| t.value().to_string())
                        .unwrap_or_default();
                    let unqualified = crate::model::arn::unqualified(arn).to_string();
                    out.insert(
                        name.to_string(),
                        MarkedFunction {
                            arn: unqualified,
                            tag_value: value,
                        },
                    );
                }
                Ok(())
            },
        )
        .await?;
        Ok(out)
    }

    /// Two paginated reads, each decoded in place: every role in detail
    /// (GetAccountAuthorizationDetails), then the description and session duration that
    /// read leaves out (ListRoles, managed path only).
    pub(super) async fn read_roles(
        &self,
        role_path: &str,
        observed: &mut Observed,
    ) -> Result<(), Failure> {
        self.paginate(
            Operation::GetAccountAuthorizationDetails,
            |marker| {
                self.iam
                    .get_account_authorization_details()
                    .filter(EntityType::Role)
                    .max_items(1000)
                    .set_marker(marker)
                    .send()
            },
            |page| {
                page.marker()
                    .filter(|_| page.is_truncated())
                    .map(String::from)
            },
            |page| {
                for r in page.role_detail_list() {
                    let name = r.role_name().unwrap_or_default().to_string();
                    let bad = |what: &str, e: crate::model::iam_policy::Error| {
                        Failure::permanent(
                            Operation::GetAccountAuthorizationDetails.name(),
                            format!("role {name}: {what}: {e}"),
                        )
                    };
                    let trust = parse_document(r.assume_role_policy_document().unwrap_or("{}"))
                        .map_err(|e| bad("trust policy", e))?;
                    let mut inline = BTreeMap::new();
                    for p in r.role_policy_list() {
                        let pname = p.policy_name().unwrap_or_default().to_string();
                        let doc = parse_document(p.policy_document().unwrap_or("{}"))
                            .map_err(|e| bad(&format!("inline policy {pname}"), e))?;
                        inline.insert(pname, doc);
                    }
                    observed.roles.insert(
                        name.to_ascii_lowercase(),
                        ObservedRole {
                            path: r.path().unwrap_or("/").to_string(),
                            arn: r.arn().unwrap_or_default().to_string(),
                            trust,
                            description: None,
                            max_session_duration: None,
                            permissions_boundary: r
                                .permissions_boundary()
                                .and_then(|b| b.permissions_boundary_arn())
                                .map(String::from),
                            inline_policies: inline,
                            managed_policies: r
                                .attached_managed_policies()
                                .iter()
                                .filter_map(|p| p.policy_arn().map(String::from))
                                .collect(),
                            tags: r
                                .tags()
                                .iter()
                                .map(|t| (t.key().to_string(), t.value().to_string()))
                                .collect(),
                            name: name.into(),
                        },
                    );
                }
                Ok(())
            },
        )
        .await?;
        // GetAccountAuthorizationDetails leaves out description and session duration;
        // ListRoles has them, for the managed path only.
        self.paginate(
            Operation::ListRoles,
            |marker| {
                self.iam
                    .list_roles()
                    .path_prefix(role_path)
                    .max_items(1000)
                    .set_marker(marker)
                    .send()
            },
            |page| {
                page.marker()
                    .filter(|_| page.is_truncated())
                    .map(String::from)
            },
            |page| {
                for r in page.roles() {
                    if let Some(o) = observed.roles.get_mut(&r.role_name().to_ascii_lowercase()) {
                        o.description = r.description().map(String::from);
                        o.max_session_duration = r.max_session_duration();
                    }
                }
                Ok(())
            },
        )
        .await?;
        Ok(())
    }

    pub(super) async fn read_providers(&self) -> Result<Vec<ObservedProvider>, Failure> {
        let list = self
            .read(Operation::ListOpenIDConnectProviders, || {
                self.iam.list_open_id_connect_providers().send()
            })
            .await?;
        let mut out = Vec::new();
        for entry in list.open_id_connect_provider_list() {
            let Some(arn) = entry.arn() else { continue };
            let Some(p) = self
                .call(
                    Operation::GetOpenIDConnectProvider,
                    |f| f.is(&["NoSuchEntity"]),
                    || {
                        self.iam
                            .get_open_id_connect_provider()
                            .open_id_connect_provider_arn(arn)
                            .send()
                    },
                )
                .await?
            else {
                continue; // deleted between list and get
            };
            let url = crate::model::names::provider_issuer(arn)
                .unwrap_or_default()
                .to_string();
            out.push(ObservedProvider {
                arn: arn.to_string(),
                url,
                client_ids: p.client_id_list().iter().cloned().collect::<BTreeSet<_>>(),
                tags: p
                    .tags()
                    .iter()
                    .map(|t| (t.key().to_string(), t.value().to_string()))
                    .collect(),
            });
        }
        Ok(out)
    }

    pub(super) async fn read_function(
        &self,
        name: &str,
        qualifier: Option<&str>,
    ) -> Result<Option<ObservedFunction>, Failure> {
        let not_found = |f: &Failure| f.is(&["ResourceNotFoundException"]);
        let Some(cfg) = self
            .call(Operation::GetFunctionConfiguration, not_found, || {
                self.lambda
                    .get_function_configuration()
                    .function_name(name)
                    .send()
            })
            .await?
        else {
            return Ok(None);
        };
        if let Some(q) = qualifier {
            let found = self
                .call(Operation::GetAlias, not_found, || {
                    self.lambda.get_alias().function_name(name).name(q).send()
                })
                .await?;
            if found.is_none() && !q.chars().all(|c| c.is_ascii_digit()) {
                return Ok(None);
            }
        }
        let policy = self
            .call(Operation::GetPolicy, not_found, || {
                self.lambda
                    .get_policy()
                    .function_name(name)
                    .set_qualifier(qualifier.map(String::from))
                    .send()
            })
            .await?;
        let (statements, policy_revision) = match policy {
            None => (Vec::new(), None),
            Some(p) => {
                let doc = parse_document(p.policy().unwrap_or("{}")).map_err(|e| {
                    Failure::permanent(Operation::GetPolicy.name(), format!("function {name}: {e}"))
                })?;
                let statements = match doc.get("Statement") {
                    Some(serde_json::Value::Array(s)) => s.clone(),
                    Some(one) => vec![one.clone()],
                    None => Vec::new(),
                };
                (statements, p.revision_id().map(String::from))
            }
        };
        Ok(Some(ObservedFunction {
            arn: cfg.function_arn().unwrap_or_default().to_string(),
            role: cfg.role().map(String::from),
            config_revision: cfg.revision_id().map(String::from),
            policy_revision,
            statements,
        }))
    }
}
