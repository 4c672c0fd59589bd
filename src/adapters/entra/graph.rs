//! Reading group memberships from Microsoft Graph.
//!
//! Requests are built with `graph-rs-sdk` (which puts our token on them) and sent by its
//! HTTP client. Paging follows `@odata.nextLink` to the end; `$select` keeps payloads
//! small and `$top=999` pages large. One helper sends every request: 429 and 503 wait for
//! `Retry-After`, other 5xx and transport failures back off exponentially with jitter,
//! a 401 refreshes the token once; anything else is an error for the whole read. A
//! failed or partial read is an error, never an empty group.
//!
//! Two ways to read:
//! - [`GraphReader::snapshot`]: a full read of exactly the groups the policies use
//!   (resolve each group, then its `members` or `transitiveMembers`). Used by `plan` and
//!   `apply`.
//! - [`DeltaCache`](super::delta::DeltaCache): `GET /groups/delta` selecting `members`, kept up to date with the
//!   delta link. It tracks the direct members of every group, so transitive membership is
//!   computed locally and a change inside a nested group is seen even though Graph does not
//!   report it on the parent. A steady-state sync costs one request.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use graph_rs_sdk::GraphClient;
use serde_json::Value;

use super::token::{GraphAuth, TokenSource};
use crate::model::call::{Failure, Written};
use crate::observed::ObservedApplication;
use crate::plan::EntraAction;
use crate::ports::retry::Class;
use crate::sources::directory::MembershipChange;

/// Why a directory read failed. The whole pass stops; nothing is taken as empty.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// No token.
    #[error(transparent)]
    Auth(#[from] super::token::Error),
    /// Graph answered with an error that is not worth retrying, or kept failing.
    #[error("Microsoft Graph {operation}: HTTP {status} {code}: {message}")]
    Graph {
        /// What was being read.
        operation: String,
        /// HTTP status.
        status: u16,
        /// Graph error code.
        code: String,
        /// Graph error message.
        message: String,
    },
    /// The endpoint could not be reached.
    #[error("Microsoft Graph {operation}: {message}")]
    Transport {
        /// What was being read.
        operation: String,
        /// What happened.
        message: String,
    },
    /// The configuration is unusable.
    #[error("Microsoft Graph: {0}")]
    Config(String),
}

impl Error {
    /// A delta page with neither `@odata.nextLink` nor `@odata.deltaLink`.
    pub(super) fn no_delta_link(operation: &str) -> Error {
        Error::Graph {
            operation: operation.into(),
            status: 200,
            code: "noDeltaLink".into(),
            message: "a delta page had neither @odata.nextLink nor @odata.deltaLink".into(),
        }
    }

    pub(super) fn is_expired_delta(&self) -> bool {
        matches!(self, Error::Graph { status, code, .. }
            if *status == 410 || code == "syncStateNotFound" || code == "resyncRequired" || code == "syncStateInvalid")
    }
}

/// What a request sent with [`GraphReader::send`] came to: the JSON body (null for none)
/// and Graph's `request-id`, or why not.
type Sent = Result<(Value, Option<String>), Error>;

/// A failure worth another attempt (after `retry_after`, or the policy's back-off).
fn transient(e: Error, retry_after: Option<Duration>) -> (Error, Class) {
    (e, Class::Transient { retry_after })
}

/// A failure that ends the request.
fn permanent(e: Error) -> (Error, Class) {
    (e, Class::Permanent)
}

/// Counters of Graph requests sent, retries included.
#[derive(Debug, Default)]
pub struct GraphStats {
    /// Requests sent.
    pub requests: AtomicU64,
    /// Retries after 429/5xx.
    pub retries: AtomicU64,
    /// 429 answers.
    pub throttled: AtomicU64,
}

/// Graph reader settings.
#[derive(Debug, Clone)]
pub struct ReaderSettings {
    /// Base URL, e.g. `https://graph.microsoft.com/v1.0`.
    pub endpoint: url::Url,
    /// Give up retrying one request after this long.
    pub max_retry: Duration,
    /// Longest `Retry-After` honoured; longer ones fail the read.
    pub max_retry_after: Duration,
    /// Longest wait for one answer.
    pub request_timeout: Duration,
}

/// A Microsoft Graph reader.
#[derive(Clone)]
pub struct GraphReader {
    client: Arc<GraphClient>,
    tokens: TokenSource,
    settings: ReaderSettings,
    /// Request counters.
    pub stats: Arc<GraphStats>,
    /// Ends retry waits once raised (shutdown): single and batched requests alike.
    stop: crate::ports::retry::Stop,
    /// Requests under way.
    pending: crate::model::call::Pending,
}

impl GraphReader {
    /// The retry policy of every Graph request, single or batched.
    fn retry_policy(settings: &ReaderSettings) -> crate::ports::retry::Policy {
        crate::ports::retry::Policy {
            initial: Duration::from_millis(200),
            max_interval: Duration::from_secs(10),
            max_elapsed: Some(settings.max_retry),
        }
    }

    /// Ends retry waits once `stop` turns true: a request under way finishes, no other
    /// starts after a wait.
    /// Each request under way is recorded in `pending` (for `/readyz`).
    pub fn set_stop(
        &mut self,
        stop: tokio::sync::watch::Receiver<bool>,
        pending: crate::model::call::Pending,
    ) {
        self.stop = Some(stop);
        self.pending = pending;
    }

    /// A reader for this endpoint: a Microsoft Graph host over `https`, or, in a build with
    /// the `loopback-graph` feature, a loopback host (the local Graph server) over `http`.
    pub fn new(tokens: TokenSource, settings: ReaderSettings) -> Result<GraphReader, Error> {
        let url = &settings.endpoint;
        let loopback = crate::config::is_loopback(url);
        let config = graph_rs_sdk::GraphClientConfiguration::new()
            .client_application(GraphAuth(tokens.clone()))
            .timeout(settings.request_timeout);
        #[cfg(feature = "loopback-graph")]
        let config = config.https_only(!loopback);
        let mut client = GraphClient::from(config);
        match url.scheme() {
            "https" if !loopback => {
                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    client.use_endpoint(url)
                }))
                .is_err()
                {
                    return Err(Error::Config(format!(
                        "{url} is not a Microsoft Graph endpoint"
                    )));
                }
            }
            #[cfg(feature = "loopback-graph")]
            "http" | "https" if loopback => client.use_test_endpoint(url),
            #[cfg(not(feature = "loopback-graph"))]
            "http" | "https" if loopback => {
                return Err(Error::Config(format!(
                    "{url}: a loopback Graph endpoint (the local Graph server) needs a build with the `loopback-graph` feature; this build reaches Microsoft Graph over https only"
                )))
            }
            _ => {
                return Err(Error::Config(format!(
                    "{url}: only https is allowed for a non-loopback endpoint"
                )))
            }
        }
        Ok(GraphReader {
            client: Arc::new(client),
            tokens,
            settings,
            stats: Default::default(),
            stop: None,
            pending: Default::default(),
        })
    }

    /// Sends one GET, following `url` when given instead of the built request's URL, with
    /// the retry policy. Returns the JSON body.
    pub(super) async fn get(
        &self,
        operation: &str,
        handler: impl Fn(&GraphClient) -> graph_http::api_impl::RequestHandler,
        url: Option<&str>,
    ) -> Result<Value, Error> {
        self.send(operation, handler, url)
            .await
            .map(|(body, _)| body)
    }

    /// Sends one request (the handler's, at `url` when given), with the retry policy.
    /// Returns the JSON body (null for none) and Graph's `request-id`.
    pub(super) async fn send(
        &self,
        operation: &str,
        handler: impl Fn(&GraphClient) -> graph_http::api_impl::RequestHandler,
        url: Option<&str>,
    ) -> Result<(Value, Option<String>), Error> {
        let policy = Self::retry_policy(&self.settings);
        let refreshed = AtomicBool::new(false);
        crate::ports::retry::retry(
            &policy,
            &self.stop,
            |(_, class): &(Error, Class)| *class,
            |_, _| {
                self.stats.retries.fetch_add(1, Ordering::Relaxed);
            },
            || self.send_once(operation, &handler, url, &refreshed),
        )
        .await
        .map_err(|(e, _)| e)
    }

    /// One attempt of [`Self::send`]: build, send, read; a failure comes with its class
    /// (retry or not, after how long).
    async fn send_once(
        &self,
        op: &str,
        handler: &impl Fn(&GraphClient) -> graph_http::api_impl::RequestHandler,
        url: Option<&str>,
        refreshed: &AtomicBool,
    ) -> Result<(Value, Option<String>), (Error, Class)> {
        let transport = |message: String| Error::Transport {
            operation: op.to_string(),
            message,
        };
        self.tokens
            .token()
            .await
            .map_err(|e| permanent(Error::Auth(e)))?;
        let builder = handler(&self.client)
            .build()
            .await
            .map_err(|e| permanent(transport(format!("cannot build request: {e}"))))?;
        let (http, request) = builder.build_split();
        let mut request =
            request.map_err(|e| permanent(transport(format!("cannot build request: {e}"))))?;
        if let Some(u) = url {
            *request.url_mut() = url::Url::parse(u)
                .map_err(|_| permanent(transport(format!("bad next link {u}"))))?;
        }
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let _under_way = self.pending.enter(format!("Microsoft Graph {op}"));
        let resp = match http.execute(request).await {
            Ok(r) => r,
            Err(e) => {
                let what = if e.is_timeout() {
                    "timed out"
                } else if e.is_connect() {
                    "cannot connect"
                } else {
                    "request failed"
                };
                return Err(transient(transport(what.into()), None));
            }
        };
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|h| h.to_str().ok())
            .and_then(retry_after);
        let request_id = resp
            .headers()
            .get("request-id")
            .and_then(|h| h.to_str().ok())
            .map(String::from);
        let body = resp
            .bytes()
            .await
            .map_err(|_| transient(transport("response cut short".into()), None))?;
        if (200..300).contains(&status) {
            // 204 No Content (an update or a delete) has no body.
            if body.iter().all(u8::is_ascii_whitespace) {
                return Ok((Value::Null, request_id));
            }
            return serde_json::from_slice(&body)
                .map(|v| (v, request_id))
                .map_err(|_| permanent(transport(format!("HTTP {status}: body is not JSON"))));
        }
        let (code, message) = error_body(&body);
        let err = Error::Graph {
            operation: op.to_string(),
            status,
            code,
            message,
        };
        Err(self.classify(op, err, status, retry_after, refreshed).await)
    }

    /// Whether an error answer is worth another attempt, and when: a first 401 after a
    /// token refresh, at once; 429 and 503 after their `Retry-After` (one longer than
    /// `maxRetryAfterSeconds` fails), or a back-off; other 5xx after a back-off.
    async fn classify(
        &self,
        op: &str,
        err: Error,
        status: u16,
        retry_after: Option<Duration>,
        refreshed: &AtomicBool,
    ) -> (Error, Class) {
        match status {
            401 if !refreshed.swap(true, Ordering::Relaxed) => {
                self.tokens.invalidate().await;
                transient(err, Some(Duration::ZERO))
            }
            429 | 503 => {
                if status == 429 {
                    self.stats.throttled.fetch_add(1, Ordering::Relaxed);
                }
                match retry_after {
                    Some(d) if d > self.settings.max_retry_after => permanent(err),
                    Some(d) => {
                        tracing::debug!(operation = %op, status, wait_ms = d.as_millis() as u64, "Graph asked to retry later");
                        transient(err, Some(d))
                    }
                    None => transient(err, None),
                }
            }
            500..=599 => transient(err, None),
            _ => permanent(err),
        }
    }

    /// Who added members to each of `groups` or removed them since `since` (RFC 3339),
    /// from the directory audit log (`GET /auditLogs/directoryAudits`, which needs
    /// AuditLog.Read.All), in JSON batches; oldest first, one answer per group.
    pub async fn membership_changes(
        &self,
        groups: &[&str],
        since: &str,
    ) -> Result<Vec<Result<Vec<MembershipChange>, Error>>, Error> {
        let urls: Vec<String> = groups
            .iter()
            .map(|g| {
                let filter = format!(
                    "activityDateTime ge {since} and targetResources/any(t:t/id eq '{}')",
                    g.replace('\'', "''")
                );
                format!("/auditLogs/directoryAudits?$filter={}", encode(&filter))
            })
            .collect();
        let first = self
            .batch_get("POST /$batch (directoryAudits)", &urls)
            .await?;
        let audits = self
            .rest_of_pages("POST /$batch (directoryAudits)", first)
            .await?;
        Ok(groups
            .iter()
            .zip(audits)
            .map(|(group, items)| {
                let mut out: Vec<MembershipChange> = items?
                    .iter()
                    .filter_map(|a| membership_change(a, group))
                    .collect();
                out.sort_by(|a, b| a.at.cmp(&b.at));
                Ok(out)
            })
            .collect())
    }

    /// The applications this client's service principal owns, each with its federated
    /// identity credentials: `GET /servicePrincipals(appId='{client id}')/ownedObjects/
    /// microsoft.graph.application`, then each application's
    /// `federatedIdentityCredentials`, in JSON batches, every page followed. What
    /// `Application.ReadWrite.OwnedBy` may read. An endpoint that does not serve
    /// `ownedObjects` (400, 404, 405, 501) is asked for `GET /applications` instead, and
    /// the applications whose credentials it refuses to show (403, 404) are left out as
    /// not owned. Any other failed read fails it all.
    pub async fn owned_applications(&self) -> Result<Vec<ObservedApplication>, Error> {
        let owned = format!(
            "/servicePrincipals(appId='{}')/ownedObjects/microsoft.graph.application?$select=id,appId,displayName",
            self.tokens.client_id().replace('\'', "''")
        );
        let op_apps = "GET ownedObjects (applications)";
        let (apps, listed_all) = match self.collection(op_apps, owned).await {
            Ok(apps) => (apps, false),
            Err(Error::Graph {
                status: 400 | 404 | 405 | 501,
                ..
            }) => {
                tracing::warn!("the Graph endpoint does not list a service principal's owned objects; reading /applications and keeping those whose credentials it shows");
                let all = "/applications?$select=id,appId,displayName".to_string();
                (self.collection("GET applications", all).await?, true)
            }
            Err(e) => return Err(e),
        };
        let mut out: Vec<ObservedApplication> = apps
            .into_iter()
            .map(|a| WireApplication::read(op_apps, a))
            .collect::<Result<_, _>>()?;
        if out.is_empty() {
            return Ok(out);
        }
        let op = "GET federatedIdentityCredentials";
        let urls: Vec<String> = out
            .iter()
            .map(|a| format!("/applications/{}/federatedIdentityCredentials", a.id))
            .collect();
        let first = self.batch_get(op, &urls).await?;
        let mut not_owned = BTreeSet::new();
        for (app, creds) in out.iter_mut().zip(self.rest_of_pages(op, first).await?) {
            let creds = match creds {
                Ok(c) => c,
                Err(Error::Graph {
                    status: 403 | 404, ..
                }) if listed_all => {
                    not_owned.insert(app.id.clone());
                    continue;
                }
                Err(e) => return Err(e),
            };
            app.credentials = creds
                .into_iter()
                .map(|c| WireCredential::read(op, c))
                .collect::<Result<_, _>>()?;
        }
        out.retain(|a| !not_owned.contains(&a.id));
        Ok(out)
    }

    /// Every user of the directory, with what decides a person's access: sign-in name,
    /// enabled or not, member or guest (`GET /users`, every page; needs User.Read.All).
    pub async fn users(&self) -> Result<Vec<crate::sources::directory::DirectoryUser>, Error> {
        let op = "GET users";
        self.collection(op, USERS_URL.to_string())
            .await?
            .into_iter()
            .map(|u| WireUser::read(op, u))
            .collect()
    }

    /// These users, as [`Self::users`] reads them, in JSON batches (`GET /users/{id}`): for
    /// the fast path, which reads the people of the groups a change touched and no one
    /// else. A user that no longer exists (404) is left out.
    pub async fn users_by_id(
        &self,
        ids: &[String],
    ) -> Result<Vec<crate::sources::directory::DirectoryUser>, Error> {
        const OP: &str = "POST /$batch (users)";
        let select = USERS_URL
            .split_once("$select=")
            .and_then(|(_, rest)| rest.split('&').next())
            .unwrap_or("id,userPrincipalName,accountEnabled");
        let urls: Vec<String> = ids
            .iter()
            .map(|id| format!("/users/{id}?$select={select}"))
            .collect();
        let mut out = Vec::new();
        for answer in self.batch_get(OP, &urls).await? {
            match answer {
                Ok(v) => out.push(WireUser::read(OP, v)?),
                Err(Error::Graph { status: 404, .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// The ids of the users whose sign-in name, enabled state or type changed since
    /// `link` (`GET /users/delta`, `$select` of those three: Graph then reports changes to
    /// them only, "Use delta query"), deleted ones included, and the link for next time.
    /// Without a link: none, and a link from now on (`$deltatoken=latest`).
    pub async fn users_delta(
        &self,
        link: Option<&str>,
    ) -> Result<(std::collections::BTreeSet<String>, String), Error> {
        const OP: &str = "GET /users/delta";
        let start = format!(
            "{}/users/delta?$select=id,userPrincipalName,accountEnabled,userType&$deltatoken=latest",
            self.settings.endpoint.as_str().trim_end_matches('/')
        );
        let mut next = link.map(String::from).unwrap_or(start);
        let mut changed = std::collections::BTreeSet::new();
        loop {
            let page = self.get(OP, |c| c.users().delta(), Some(&next)).await?;
            let page = Page::read(OP, page)?;
            for u in &page.value {
                if let Some(id) = u["id"].as_str() {
                    changed.insert(id.to_string());
                }
            }
            match (page.next_link, page.delta_link) {
                (Some(n), _) => next = n,
                (None, Some(d)) => return Ok((changed, d)),
                (None, None) => return Err(Error::no_delta_link(OP)),
            }
        }
    }

    /// Creates, updates or deletes a federated identity credential. A create that finds
    /// the name taken (a retry after a lost answer) and a delete that finds it gone are
    /// success, with a note; anything else Graph refuses is a [`Failure`].
    pub async fn write_credential(&self, action: &EntraAction) -> Result<Written, Failure> {
        let (op, result, benign, note) = self.credential_request(action).await;
        match result {
            Ok((_, request_id)) => Ok(Written {
                request_id,
                note: None,
            }),
            Err(Error::Graph { status, .. }) if status == benign => Ok(Written {
                request_id: None,
                note: Some(note.into()),
            }),
            Err(e) => Err(failure(op, e)),
        }
    }

    /// Sends the request of a credential write: what it is, Graph's answer, the status
    /// that means it was already done (0: none), and the note for that case.
    async fn credential_request(
        &self,
        action: &EntraAction,
    ) -> (&'static str, Sent, u16, &'static str) {
        use crate::plan::EntraAction::*;
        match action {
            CreateFederatedCredential {
                application_id,
                name,
                issuer,
                subject,
                audiences,
                description,
                ..
            } => {
                let op = "POST federatedIdentityCredentials";
                let b = serde_json::json!({
                    "name": name, "issuer": issuer, "subject": subject,
                    "audiences": audiences, "description": description,
                });
                let r = self
                    .send(
                        op,
                        |c| {
                            c.application(application_id)
                                .create_federated_identity_credentials(&b)
                        },
                        None,
                    )
                    .await;
                (op, r, 409, "a credential of that name already existed")
            }
            UpdateFederatedCredential {
                application_id,
                credential_id,
                issuer,
                subject,
                audiences,
                description,
                ..
            } => {
                let op = "PATCH federatedIdentityCredentials";
                // `name` is immutable: an update sends the rest.
                let b = serde_json::json!({
                    "issuer": issuer, "subject": subject,
                    "audiences": audiences, "description": description,
                });
                let r = self
                    .send(
                        op,
                        |c| {
                            c.application(application_id)
                                .update_federated_identity_credentials(credential_id, &b)
                        },
                        None,
                    )
                    .await;
                (op, r, 0, "")
            }
            DeleteFederatedCredential {
                application_id,
                credential_id,
                ..
            } => {
                let op = "DELETE federatedIdentityCredentials";
                let r = self
                    .send(
                        op,
                        |c| {
                            c.application(application_id)
                                .delete_federated_identity_credentials(credential_id)
                        },
                        None,
                    )
                    .await;
                (op, r, 404, "the credential was already gone")
            }
        }
    }
}

mod batch;
mod wire;
pub(super) use wire::*;
