//! The AWS edge: the only module that holds SDK types.
//!
//! Reads turn IAM and Lambda answers into [`crate::observed`] types; writes perform one
//! [`Action`] each. Every request goes through [`AwsClients::call`], the one place where
//! errors are classified (transient: throttling, 5xx, timeouts, conflicts; permanent:
//! everything else) and transient ones retried with exponential back-off and jitter
//! (`backoff`). The SDK's own retries are off so that this is the only retry layer.
//! "Already exists" on create and "not found" on delete count as success, so every write
//! is idempotent and a crash mid-apply is repaired by the next pass.

pub mod connect;
pub mod operation;
pub mod permissions;
pub mod spoke;

pub use operation::{Operation, Service};

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_iam::operation::RequestId;
use aws_sdk_iam::types::{EntityType, Tag};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use futures::stream::{self, StreamExt, TryStreamExt};
use serde::Serialize;

use crate::model::call::{CallStats, Failure, Written};
use crate::model::iam_policy::parse_document;
use crate::observed::{
    FunctionKey, MarkedFunction, Observed, ObservedFunction, ObservedProvider, ObservedRole,
};
use crate::plan::Action;

/// Error codes that mean "slow down" (`ThrottledException` is the Resource Groups
/// Tagging API's).
const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottledException",
    "ThrottlingException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
];

/// Other error codes that mean "try again later".
const TRANSIENT_CODES: &[&str] = &[
    "InternalServiceException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "ServiceFailure",
    "ServiceException",
    "InternalFailure",
    "InternalError",
    "ConcurrentModification",
    "ConcurrentModificationException",
    "EntityTemporarilyUnmodifiable",
    "ResourceConflictException",
    "RequestTimeout",
    "RequestTimeoutException",
];

impl Failure {
    fn from_sdk<E>(operation: Operation, err: &SdkError<E, HttpResponse>) -> Failure
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let code = err.code().map(String::from);
        let request_id = err
            .meta()
            .extra("aws_request_id")
            .or(err.meta().extra("request_id"))
            .map(String::from);
        let (status, transient) = match err {
            SdkError::ServiceError(se) => {
                let status = Some(se.raw().status().as_u16());
                let transient = code
                    .as_deref()
                    .is_some_and(|c| TRANSIENT_CODES.contains(&c) || THROTTLING_CODES.contains(&c))
                    || status.is_some_and(|s| s >= 500 || s == 429);
                (status, transient)
            }
            SdkError::TimeoutError(_)
            | SdkError::DispatchFailure(_)
            | SdkError::ResponseError(_) => (None, true),
            _ => (None, false),
        };
        let message = err
            .message()
            .map(String::from)
            .unwrap_or_else(|| DisplayErrorContext(err).to_string());
        Failure {
            operation: operation.name().into(),
            code,
            message,
            status,
            request_id,
            transient,
        }
    }
}

#[async_trait::async_trait]
impl crate::ports::Observe for AwsClients {
    fn region(&self) -> &str {
        &self.region
    }

    async fn observe(
        &self,
        iam: bool,
        role_path: &str,
        functions: &[FunctionKey],
        function_tag_key: &str,
    ) -> Result<Observed, Failure> {
        AwsClients::observe(self, iam, role_path, functions, function_tag_key).await
    }

    async fn outbound_issuer(&self) -> Result<Option<String>, Failure> {
        AwsClients::outbound_issuer(self).await
    }
}

#[async_trait::async_trait]
impl crate::ports::Executor for AwsClients {
    fn write_slots(&self) -> usize {
        self.write_slots
    }

    async fn execute(
        &self,
        change: &crate::plan::Change,
        use_revision: bool,
    ) -> Result<Written, Failure> {
        AwsClients::execute(self, &change.action, use_revision).await
    }
}

#[async_trait::async_trait]
impl crate::ports::AwsApi for AwsClients {
    fn stats(&self) -> CallStats {
        AwsClients::stats(self)
    }

    async fn publish_checkpoints(
        &self,
        anchor: &crate::config::AnchorConfig,
        checkpoints: &[crate::audit::Checkpoint],
    ) -> Result<(), Failure> {
        AwsClients::publish_checkpoints(self, anchor, checkpoints).await
    }
}

/// One write through [`AwsClients::call`]: the request id, or when `benign` says the
/// wanted state already held, `note` instead.
macro_rules! write {
    ($self:ident, $op:ident, $benign:expr, $note:literal, $req:expr) => {
        match $self.call(Operation::$op, $benign, || $req.send()).await? {
            Some(out) => Written {
                request_id: out.request_id().map(String::from),
                note: None,
            },
            None => Written {
                request_id: None,
                note: Some($note.to_string()),
            },
        }
    };
}

fn exists(f: &Failure) -> bool {
    f.is(&["EntityAlreadyExists"])
}

fn gone(f: &Failure) -> bool {
    f.is(&["NoSuchEntity"])
}

/// Spaces requests to at most `rate` per second (no limit at 0).
#[derive(Debug)]
pub struct RateLimiter {
    interval: Option<Duration>,
    next: tokio::sync::Mutex<tokio::time::Instant>,
}

impl RateLimiter {
    /// A limiter for `rate` requests per second.
    pub fn new(rate: f64) -> RateLimiter {
        RateLimiter {
            interval: (rate > 0.0).then(|| Duration::from_secs_f64(1.0 / rate)),
            next: tokio::sync::Mutex::new(tokio::time::Instant::now()),
        }
    }

    /// Waits for the next slot.
    pub async fn acquire(&self) {
        let Some(interval) = self.interval else {
            return;
        };
        let slot = {
            let mut next = self.next.lock().await;
            let slot = (*next).max(tokio::time::Instant::now());
            *next = slot + interval;
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

/// The standard AWS chain's SDK config, without the SDK's own retries (ours are the only
/// layer) and with the configured timeouts; `aws.region` overrides the chain's region.
pub async fn shared_config(
    config: &crate::config::AwsConfig,
) -> Result<aws_config::SdkConfig, Failure> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .operation_attempt_timeout(Duration::from_secs(config.request_timeout_seconds))
                .connect_timeout(Duration::from_secs(10))
                .build(),
        );
    if let Some(region) = &config.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    let shared = loader.load().await;
    if shared.region().is_none() {
        return Err(Failure::permanent(
            "Configuration",
            "no AWS region: set aws.region in the config or AWS_REGION",
        ));
    }
    Ok(shared)
}

/// IAM, Lambda and STS clients with one retry policy.
pub struct AwsClients {
    iam: aws_sdk_iam::Client,
    lambda: aws_sdk_lambda::Client,
    sts: aws_sdk_sts::Client,
    tagging: aws_sdk_resourcegroupstagging::Client,
    logs: aws_sdk_cloudwatchlogs::Client,
    organizations: aws_sdk_organizations::Client,
    retry: crate::ports::retry::Policy,
    pub(crate) stop: crate::ports::retry::Stop,
    /// Requests under way (for `/readyz`), each named after `label`.
    pending: crate::model::call::Pending,
    label: String,
    stats: Mutex<CallStats>,
    limits: [(&'static str, RateLimiter); 7],
    writes: [(&'static str, tokio::sync::Semaphore); 2],
    write_slots: usize,
    /// The region in use.
    pub region: String,
}

/// Who trustsync is acting as.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallerIdentity {
    /// Account id.
    pub account: String,
    /// Caller ARN.
    pub arn: String,
}

impl AwsClients {
    /// Clients from the standard AWS chain; `region` overrides the chain's region.
    pub async fn connect(config: &crate::config::AwsConfig) -> Result<AwsClients, Failure> {
        Ok(AwsClients::with(&shared_config(config).await?, config))
    }

    /// Clients over an SDK config (the chain's, or one with a spoke's credentials and
    /// region), with trustsync's retry policy, rate limits and write slots.
    pub fn with(shared: &aws_config::SdkConfig, config: &crate::config::AwsConfig) -> AwsClients {
        AwsClients {
            iam: aws_sdk_iam::Client::new(shared),
            lambda: aws_sdk_lambda::Client::new(shared),
            sts: aws_sdk_sts::Client::new(shared),
            tagging: aws_sdk_resourcegroupstagging::Client::new(shared),
            logs: aws_sdk_cloudwatchlogs::Client::new(shared),
            organizations: aws_sdk_organizations::Client::new(shared),
            retry: crate::ports::retry::Policy {
                initial: Duration::from_millis(200),
                max_interval: Duration::from_secs(10),
                max_elapsed: Some(Duration::from_secs(config.max_retry_seconds)),
            },
            stop: None,
            pending: Default::default(),
            label: "AWS".into(),
            stats: Mutex::new(CallStats::default()),
            limits: {
                let r = &config.max_requests_per_second;
                [
                    ("iam", RateLimiter::new(r.iam)),
                    ("sts", RateLimiter::new(r.sts)),
                    ("tagging", RateLimiter::new(r.tagging)),
                    ("organizations", RateLimiter::new(r.organizations)),
                    ("lambdaGetFunction", RateLimiter::new(r.lambda_get_function)),
                    ("lambdaGetPolicy", RateLimiter::new(r.lambda_get_policy)),
                    (
                        "lambdaControlPlane",
                        RateLimiter::new(r.lambda_control_plane),
                    ),
                ]
            },
            writes: [
                (
                    "iam",
                    tokio::sync::Semaphore::new(config.write_concurrency.iam.max(1)),
                ),
                (
                    "lambda",
                    tokio::sync::Semaphore::new(config.write_concurrency.lambda.max(1)),
                ),
            ],
            write_slots: config.write_concurrency.iam.max(1)
                + config.write_concurrency.lambda.max(1),
            region: shared.region().map(|r| r.to_string()).unwrap_or_default(),
        }
    }

    /// Ends retry waits once `stop` turns true (shutdown): a request under way finishes,
    /// but no failed one is tried again.
    pub fn set_stop(&mut self, stop: tokio::sync::watch::Receiver<bool>) {
        self.stop = Some(stop);
    }

    /// Records every request under way in `pending`, named `<label> <service> <operation>`.
    pub fn watch_pending(&mut self, pending: crate::model::call::Pending, label: &str) {
        self.pending = pending;
        self.label = label.to_string();
    }

    /// Writes that may be under way at once, over all services.
    pub fn write_slots(&self) -> usize {
        self.write_slots
    }

    /// Requests made so far.
    pub fn stats(&self) -> CallStats {
        self.stats.lock().expect("stats lock").clone()
    }

    fn count(&self, op: Operation) {
        *self
            .stats
            .lock()
            .expect("stats lock")
            .requests
            .entry((op.service().as_str(), op.name()))
            .or_default() += 1;
    }

    /// Sends one request under the error policy ([`crate::ports::retry`]): transient failures
    /// are retried with exponential back-off and jitter until the retry budget runs out or
    /// shutdown is requested.
    ///
    /// `benign` picks failures that mean the wanted state already holds ("already exists",
    /// "not found" on delete): they return `Ok(None)`.
    async fn call<T, E, F, Fut>(
        &self,
        op: Operation,
        benign: impl Fn(&Failure) -> bool,
        mut f: F,
    ) -> Result<Option<T>, Failure>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let limiter = self
            .limits
            .iter()
            .find(|(class, _)| *class == op.rate_class())
            .map(|(_, l)| l);
        let benign = &benign;
        crate::ports::retry::retry(
            &self.retry,
            &self.stop,
            Failure::class,
            |failure, delay| {
                let mut stats = self.stats.lock().expect("stats lock");
                stats.retries += 1;
                if failure.is(THROTTLING_CODES) {
                    stats.throttled += 1;
                }
                tracing::debug!(operation = op.name(), code = ?failure.code, delay_ms = delay.as_millis() as u64, "transient AWS error; retrying");
            },
            || {
                self.count(op);
                let fut = f();
                async move {
                    if let Some(l) = limiter {
                        l.acquire().await;
                    }
                    let _under_way = self.pending.enter(format!(
                        "{} {} {}",
                        self.label,
                        op.service().as_str(),
                        op.name()
                    ));
                    match fut.await {
                        Ok(v) => Ok(Some(v)),
                        Err(e) => {
                            let failure = Failure::from_sdk(op, &e);
                            if benign(&failure) {
                                Ok(None)
                            } else {
                                Err(failure)
                            }
                        }
                    }
                }
            },
        )
        .await
    }

    /// A read: every failure is an error (none means the wanted state already holds).
    async fn read<T, E, F, Fut>(&self, op: Operation, f: F) -> Result<T, Failure>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        Ok(self
            .call(op, |_| false, f)
            .await?
            .expect("a read has no benign failure"))
    }

    /// Publishes audit checkpoints to a CloudWatch Logs stream (created when missing; the
    /// group must exist), one event each, in order.
    pub async fn publish_checkpoints(
        &self,
        anchor: &crate::config::AnchorConfig,
        checkpoints: &[crate::audit::Checkpoint],
    ) -> Result<(), Failure> {
        if checkpoints.is_empty() {
            return Ok(());
        }
        self.call(
            Operation::CreateLogStream,
            |f| f.is(&["ResourceAlreadyExistsException"]),
            || {
                self.logs
                    .create_log_stream()
                    .log_group_name(&anchor.log_group)
                    .log_stream_name(&anchor.log_stream)
                    .send()
            },
        )
        .await?;
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let events: Vec<_> = checkpoints
            .iter()
            .map(|cp| {
                aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
                    .timestamp(now_ms)
                    .message(serde_json::to_string(cp).expect("checkpoints serialize"))
                    .build()
                    .expect("timestamp and message are set")
            })
            .collect();
        self.read(Operation::PutLogEvents, || {
            self.logs
                .put_log_events()
                .log_group_name(&anchor.log_group)
                .log_stream_name(&anchor.log_stream)
                .set_log_events(Some(events.clone()))
                .send()
        })
        .await?;
        Ok(())
    }

    /// Every checkpoint published to the anchor stream, oldest first (the stream read from
    /// its head, page by page, until the forward token stops moving).
    pub async fn published_checkpoints(
        &self,
        anchor: &crate::config::AnchorConfig,
    ) -> Result<Vec<crate::audit::Checkpoint>, Failure> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .read(Operation::GetLogEvents, || {
                    self.logs
                        .get_log_events()
                        .log_group_name(&anchor.log_group)
                        .log_stream_name(&anchor.log_stream)
                        .start_from_head(true)
                        .set_next_token(token.clone())
                        .send()
                })
                .await?;
            for (n, event) in page.events().iter().enumerate() {
                let cp =
                    serde_json::from_str(event.message().unwrap_or_default()).map_err(|e| {
                        Failure::permanent(
                            Operation::GetLogEvents.name(),
                            format!(
                                "event {} of {}/{} is not a checkpoint: {e}",
                                out.len() + n + 1,
                                anchor.log_group,
                                anchor.log_stream
                            ),
                        )
                    })?;
                out.push(cp);
            }
            let next = page.next_forward_token().map(String::from);
            if page.events().is_empty() || next.is_none() || next == token {
                return Ok(out);
            }
            token = next;
        }
    }

    /// The account and ARN the credentials belong to.
    pub async fn caller_identity(&self) -> Result<CallerIdentity, Failure> {
        let out = self
            .read(Operation::GetCallerIdentity, || {
                self.sts.get_caller_identity().send()
            })
            .await?;
        Ok(CallerIdentity {
            account: out.account().unwrap_or_default().to_string(),
            arn: out.arn().unwrap_or_default().to_string(),
        })
    }

    /// Temporary credentials for `role_arn` (STS `AssumeRole`), as this client's identity.
    pub async fn assume_role(
        &self,
        role_arn: &str,
        external_id: Option<&str>,
        session_name: &str,
        seconds: i32,
    ) -> Result<aws_credential_types::Credentials, Failure> {
        let out = self
            .read(Operation::AssumeRole, || {
                self.sts
                    .assume_role()
                    .role_arn(role_arn)
                    .role_session_name(session_name)
                    .duration_seconds(seconds)
                    .set_external_id(external_id.map(String::from))
                    .send()
            })
            .await?;
        let c = out.credentials().ok_or_else(|| {
            Failure::permanent(
                "AssumeRole",
                format!("STS returned no credentials for {role_arn}"),
            )
        })?;
        let expiry = std::time::SystemTime::try_from(*c.expiration()).ok();
        Ok(aws_credential_types::Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_string()),
            expiry,
            "trustsync-spoke",
        ))
    }

    /// The active accounts under `parents` and the organizational units below them, with
    /// their tags (AWS Organizations).
    pub async fn organization_accounts(
        &self,
        parents: &[String],
    ) -> Result<Vec<(String, BTreeMap<String, String>)>, Failure> {
        use aws_sdk_organizations::types::{AccountStatus, ChildType};
        let mut queue: Vec<String> = parents.to_vec();
        let mut seen: BTreeSet<String> = BTreeSet::new();
        let mut accounts: BTreeSet<String> = BTreeSet::new();
        while let Some(parent) = queue.pop() {
            if !seen.insert(parent.clone()) {
                continue;
            }
            let mut token: Option<String> = None;
            loop {
                let page = self
                    .read(Operation::ListChildren, || {
                        self.organizations
                            .list_children()
                            .parent_id(&parent)
                            .child_type(ChildType::OrganizationalUnit)
                            .set_next_token(token.clone())
                            .send()
                    })
                    .await?;
                queue.extend(
                    page.children()
                        .iter()
                        .filter_map(|c| c.id().map(String::from)),
                );
                match page.next_token() {
                    Some(t) if !t.is_empty() => token = Some(t.to_string()),
                    _ => break,
                }
            }
            let mut token: Option<String> = None;
            loop {
                let page = self
                    .read(Operation::ListAccountsForParent, || {
                        self.organizations
                            .list_accounts_for_parent()
                            .parent_id(&parent)
                            .set_next_token(token.clone())
                            .send()
                    })
                    .await?;
                #[allow(deprecated)]
                accounts.extend(
                    page.accounts()
                        .iter()
                        .filter(|a| a.status().is_none_or(|s| *s == AccountStatus::Active))
                        .filter_map(|a| a.id().map(String::from)),
                );
                match page.next_token() {
                    Some(t) if !t.is_empty() => token = Some(t.to_string()),
                    _ => break,
                }
            }
        }
        let mut out = Vec::new();
        for id in accounts {
            let mut tags = BTreeMap::new();
            let mut token: Option<String> = None;
            loop {
                let page = self
                    .read(Operation::ListTagsForResource, || {
                        self.organizations
                            .list_tags_for_resource()
                            .resource_id(&id)
                            .set_next_token(token.clone())
                            .send()
                    })
                    .await?;
                for t in page.tags() {
                    tags.insert(t.key().to_string(), t.value().to_string());
                }
                match page.next_token() {
                    Some(t) if !t.is_empty() => token = Some(t.to_string()),
                    _ => break,
                }
            }
            out.push((id, tags));
        }
        Ok(out)
    }

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
    async fn read_marked_functions(
        &self,
        key: &str,
    ) -> Result<BTreeMap<String, MarkedFunction>, Failure> {
        use aws_sdk_resourcegroupstagging::types::TagFilter;
        let mut out = BTreeMap::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .read(Operation::GetResources, || {
                    self.tagging
                        .get_resources()
                        .tag_filters(TagFilter::builder().key(key).build())
                        .resource_type_filters("lambda:function")
                        .set_pagination_token(token.clone())
                        .send()
                })
                .await?;
            for r in page.resource_tag_mapping_list() {
                let Some(arn) = r.resource_arn() else {
                    continue;
                };
                let Some(name) = arn.split(':').nth(6) else {
                    continue;
                };
                let value = r
                    .tags()
                    .iter()
                    .find(|t| t.key() == key)
                    .map(|t| t.value().to_string())
                    .unwrap_or_default();
                let unqualified = arn.split(':').take(7).collect::<Vec<_>>().join(":");
                out.insert(
                    name.to_string(),
                    MarkedFunction {
                        arn: unqualified,
                        tag_value: value,
                    },
                );
            }
            match page.pagination_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
        Ok(out)
    }

    // Long on purpose: two paginated reads, each decoded in place: every role in detail
    // (GetAccountAuthorizationDetails), then the description and session duration that
    // read leaves out (ListRoles, managed path only).
    async fn read_roles(&self, role_path: &str, observed: &mut Observed) -> Result<(), Failure> {
        let mut marker: Option<String> = None;
        loop {
            let page = self
                .read(Operation::GetAccountAuthorizationDetails, || {
                    self.iam
                        .get_account_authorization_details()
                        .filter(EntityType::Role)
                        .max_items(1000)
                        .set_marker(marker.clone())
                        .send()
                })
                .await?;
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
            match page.marker() {
                Some(m) if page.is_truncated() => marker = Some(m.to_string()),
                _ => break,
            }
        }
        // GetAccountAuthorizationDetails leaves out description and session duration;
        // ListRoles has them, for the managed path only.
        let mut marker: Option<String> = None;
        loop {
            let page = self
                .read(Operation::ListRoles, || {
                    self.iam
                        .list_roles()
                        .path_prefix(role_path)
                        .max_items(1000)
                        .set_marker(marker.clone())
                        .send()
                })
                .await?;
            for r in page.roles() {
                if let Some(o) = observed.roles.get_mut(&r.role_name().to_ascii_lowercase()) {
                    o.description = r.description().map(String::from);
                    o.max_session_duration = r.max_session_duration();
                }
            }
            match page.marker() {
                Some(m) if page.is_truncated() => marker = Some(m.to_string()),
                _ => break,
            }
        }
        Ok(())
    }

    async fn read_providers(&self) -> Result<Vec<ObservedProvider>, Failure> {
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
            let url = arn
                .split_once(":oidc-provider/")
                .map(|(_, u)| u.to_string())
                .unwrap_or_default();
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

    async fn read_function(
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

    /// Performs one action, within the service's write concurrency. `use_revision` passes
    /// the planned `RevisionId` to Lambda.
    pub async fn execute(&self, action: &Action, use_revision: bool) -> Result<Written, Failure> {
        let service = if action.is_lambda() { "lambda" } else { "iam" };
        let slots = &self
            .writes
            .iter()
            .find(|(s, _)| *s == service)
            .expect("a semaphore per writing service")
            .1;
        let _slot = slots
            .acquire()
            .await
            .expect("the semaphore is never closed");
        self.execute_now(action, use_revision).await
    }

    async fn execute_now(&self, action: &Action, use_revision: bool) -> Result<Written, Failure> {
        if action.is_entra() {
            return Err(Failure::permanent(
                action.name(),
                "an Entra write was routed to AWS (a bug: the pass sends these to Microsoft Graph)",
            ));
        }
        if let Action::EnableOutboundFederation {} = action {
            return Ok(write!(
                self,
                EnableOutboundWebIdentityFederation,
                |f: &Failure| f.is(&["FeatureEnabled", "FeatureEnabledException"]),
                "outbound identity federation was already enabled",
                self.iam.enable_outbound_web_identity_federation()
            ));
        }
        if action.is_lambda() {
            self.write_lambda(action, use_revision).await
        } else if action.is_provider() {
            self.write_provider(action).await
        } else {
            self.write_role(action).await
        }
    }

    /// The OIDC provider's writes.
    async fn write_provider(&self, action: &Action) -> Result<Written, Failure> {
        use Action::*;
        let iam = &self.iam;
        Ok(match action {
            CreateOidcProvider {
                url,
                client_ids,
                thumbprints,
                tags,
            } => write!(
                self,
                CreateOpenIDConnectProvider,
                exists,
                "provider already existed",
                iam.create_open_id_connect_provider()
                    .url(url)
                    .set_client_id_list(Some(client_ids.clone()))
                    .set_thumbprint_list((!thumbprints.is_empty()).then(|| thumbprints.clone()))
                    .set_tags(Some(iam_tags(tags)))
            ),
            AddProviderAudience {
                provider_arn,
                audience,
            } => write!(
                self,
                AddClientIDToOpenIDConnectProvider,
                |_| false,
                "",
                iam.add_client_id_to_open_id_connect_provider()
                    .open_id_connect_provider_arn(provider_arn)
                    .client_id(audience)
            ),
            RemoveProviderAudience {
                provider_arn,
                audience,
            } => write!(
                self,
                RemoveClientIDFromOpenIDConnectProvider,
                gone,
                "provider already gone",
                iam.remove_client_id_from_open_id_connect_provider()
                    .open_id_connect_provider_arn(provider_arn)
                    .client_id(audience)
            ),
            TagOidcProvider { provider_arn, tags } => write!(
                self,
                TagOpenIDConnectProvider,
                |_| false,
                "",
                iam.tag_open_id_connect_provider()
                    .open_id_connect_provider_arn(provider_arn)
                    .set_tags(Some(iam_tags(tags)))
            ),
            UntagOidcProvider { provider_arn, keys } => write!(
                self,
                UntagOpenIDConnectProvider,
                gone,
                "provider already gone",
                iam.untag_open_id_connect_provider()
                    .open_id_connect_provider_arn(provider_arn)
                    .set_tag_keys(Some(keys.clone()))
            ),
            DeleteOidcProvider { provider_arn } => write!(
                self,
                DeleteOpenIDConnectProvider,
                gone,
                "provider already gone",
                iam.delete_open_id_connect_provider()
                    .open_id_connect_provider_arn(provider_arn)
            ),
            other => unreachable!("not a provider action: {other:?}"),
        })
    }

    /// A role's writes. Long on purpose: one arm per role action, each a single request
    /// with its benign failure; split further, the table would only be scattered.
    async fn write_role(&self, action: &Action) -> Result<Written, Failure> {
        use Action::*;
        let iam = &self.iam;
        Ok(match action {
            CreateRole {
                role_name,
                path,
                trust_policy,
                description,
                max_session_duration,
                permissions_boundary,
                tags,
            } => write!(
                self,
                CreateRole,
                exists,
                "role already existed",
                iam.create_role()
                    .role_name(role_name)
                    .path(path)
                    .assume_role_policy_document(trust_policy.to_string())
                    .set_description(description.clone())
                    .max_session_duration(*max_session_duration)
                    .set_permissions_boundary(permissions_boundary.clone())
                    .set_tags(Some(iam_tags(tags)))
            ),
            RevokeTrust {
                role_name,
                trust_policy,
                baseline,
            } => {
                // The revocation first: a failure to record the baseline must not hold it.
                let done = write!(
                    self,
                    UpdateAssumeRolePolicy,
                    |_| false,
                    "",
                    iam.update_assume_role_policy()
                        .role_name(role_name)
                        .policy_document(trust_policy.to_string())
                );
                if let Some(value) = baseline {
                    let tags =
                        BTreeMap::from([(crate::plan::BASELINE_TAG.to_string(), value.clone())]);
                    write!(
                        self,
                        TagRole,
                        |_| false,
                        "",
                        iam.tag_role()
                            .role_name(role_name)
                            .set_tags(Some(iam_tags(&tags)))
                    );
                }
                done
            }
            UpdateTrustPolicy {
                role_name,
                trust_policy,
            } => write!(
                self,
                UpdateAssumeRolePolicy,
                |_| false,
                "",
                iam.update_assume_role_policy()
                    .role_name(role_name)
                    .policy_document(trust_policy.to_string())
            ),
            UpdateRole {
                role_name,
                description,
                max_session_duration,
            } => write!(
                self,
                UpdateRole,
                |_| false,
                "",
                iam.update_role()
                    .role_name(role_name)
                    .set_description(description.clone())
                    .max_session_duration(*max_session_duration)
            ),
            PutPermissionsBoundary {
                role_name,
                policy_arn,
            } => write!(
                self,
                PutRolePermissionsBoundary,
                |_| false,
                "",
                iam.put_role_permissions_boundary()
                    .role_name(role_name)
                    .permissions_boundary(policy_arn)
            ),
            DeletePermissionsBoundary { role_name } => write!(
                self,
                DeleteRolePermissionsBoundary,
                gone,
                "boundary already gone",
                iam.delete_role_permissions_boundary().role_name(role_name)
            ),
            PutInlinePolicy { .. } | RevokeSessions { .. } => {
                let (role_name, policy_name, document) =
                    action.inline_policy().expect("writes an inline policy");
                write!(
                    self,
                    PutRolePolicy,
                    |_| false,
                    "",
                    iam.put_role_policy()
                        .role_name(role_name)
                        .policy_name(policy_name)
                        .policy_document(document.to_string())
                )
            }
            DeleteInlinePolicy {
                role_name,
                policy_name,
            } => write!(
                self,
                DeleteRolePolicy,
                gone,
                "policy already gone",
                iam.delete_role_policy()
                    .role_name(role_name)
                    .policy_name(policy_name)
            ),
            AttachManagedPolicy {
                role_name,
                policy_arn,
            } => write!(
                self,
                AttachRolePolicy,
                |_| false,
                "",
                iam.attach_role_policy()
                    .role_name(role_name)
                    .policy_arn(policy_arn)
            ),
            DetachManagedPolicy {
                role_name,
                policy_arn,
            } => write!(
                self,
                DetachRolePolicy,
                gone,
                "policy already detached",
                iam.detach_role_policy()
                    .role_name(role_name)
                    .policy_arn(policy_arn)
            ),
            TagRole { role_name, tags } => write!(
                self,
                TagRole,
                |_| false,
                "",
                iam.tag_role()
                    .role_name(role_name)
                    .set_tags(Some(iam_tags(tags)))
            ),
            UntagRole { role_name, keys } => write!(
                self,
                UntagRole,
                gone,
                "role already gone",
                iam.untag_role()
                    .role_name(role_name)
                    .set_tag_keys(Some(keys.clone()))
            ),
            DeleteRole { role_name } => write!(
                self,
                DeleteRole,
                gone,
                "role already gone",
                iam.delete_role().role_name(role_name)
            ),
            other => unreachable!("not a role action: {other:?}"),
        })
    }

    /// A Lambda function's writes. The planned RevisionId (with `use_revision`) goes on
    /// the first attempt only: a retry may follow our own attempt that did land (its
    /// answer lost), and would then fail as stale.
    // Long on purpose: one arm per Lambda action, each a single request.
    async fn write_lambda(&self, action: &Action, use_revision: bool) -> Result<Written, Failure> {
        use Action::*;
        let lambda = &self.lambda;
        let first_attempt = std::sync::atomic::AtomicBool::new(true);
        let revision = |r: &Option<String>| {
            if use_revision && first_attempt.swap(false, std::sync::atomic::Ordering::Relaxed) {
                r.clone()
            } else {
                None
            }
        };
        Ok(match action {
            AddLambdaPermission {
                function_name,
                qualifier,
                statement_id,
                principal,
                lambda_action,
                source_arn,
                source_account,
                revision_id,
            } => write!(
                self,
                AddPermission,
                |f: &Failure| f.is(&["ResourceConflictException"])
                    && f.message.contains("already exists"),
                "statement already existed",
                lambda
                    .add_permission()
                    .function_name(function_name)
                    .set_qualifier(qualifier.clone())
                    .statement_id(statement_id)
                    .principal(principal)
                    .action(lambda_action)
                    .set_source_arn(source_arn.clone())
                    .set_source_account(source_account.clone())
                    .set_revision_id(revision(revision_id))
            ),
            RemoveLambdaPermission {
                function_name,
                qualifier,
                statement_id,
            } => write!(
                self,
                RemovePermission,
                |f: &Failure| f.is(&["ResourceNotFoundException"]),
                "statement already gone",
                lambda
                    .remove_permission()
                    .function_name(function_name)
                    .set_qualifier(qualifier.clone())
                    .statement_id(statement_id)
            ),
            SetExecutionRole {
                function_name,
                role_arn,
                revision_id,
            } => write!(
                self,
                UpdateFunctionConfiguration,
                |_| false,
                "",
                lambda
                    .update_function_configuration()
                    .function_name(function_name)
                    .role(role_arn)
                    .set_revision_id(revision(revision_id))
            ),
            TagFunction {
                function_arn,
                key,
                value,
            } => write!(
                self,
                TagResource,
                |_| false,
                "",
                lambda
                    .tag_resource()
                    .resource(function_arn)
                    .tags(key, value)
            ),
            UntagFunction { function_arn, key } => write!(
                self,
                UntagResource,
                |f: &Failure| f.is(&["ResourceNotFoundException"]),
                "function already gone",
                lambda.untag_resource().resource(function_arn).tag_keys(key)
            ),
            other => unreachable!("not a Lambda action: {other:?}"),
        })
    }
}

fn iam_tags(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| {
            Tag::builder()
                .key(k)
                .value(v)
                .build()
                .expect("key and value are set")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_rate_limiter_spaces_requests() {
        let limiter = RateLimiter::new(10.0);
        let start = tokio::time::Instant::now();
        for _ in 0..5 {
            limiter.acquire().await;
        }
        // The first goes at once, the next four 100 ms apart.
        assert_eq!(start.elapsed(), Duration::from_millis(400));
        let unlimited = RateLimiter::new(0.0);
        let start = tokio::time::Instant::now();
        for _ in 0..100 {
            unlimited.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[test]
    fn lambda_operations_fall_into_their_quota_classes() {
        use Operation::*;
        assert_eq!(GetFunctionConfiguration.rate_class(), "lambdaGetFunction");
        assert_eq!(GetPolicy.rate_class(), "lambdaGetPolicy");
        for op in [GetAlias, AddPermission, RemovePermission, TagResource] {
            assert_eq!(op.rate_class(), "lambdaControlPlane", "{op:?}");
        }
        assert_eq!(CreateRole.rate_class(), "iam");
        assert_eq!(GetResources.rate_class(), "tagging");
        assert_eq!(GetCallerIdentity.service(), Service::Sts);
        // Every class but CloudWatch Logs (one write per pass) has a limiter in the client.
        let classes: BTreeSet<&str> = Operation::ALL.iter().map(|o| o.rate_class()).collect();
        assert_eq!(classes.len(), 8, "{classes:?}");
        assert_eq!(ListAccountsForParent.rate_class(), "organizations");
        assert_eq!(PutLogEvents.rate_class(), "logs");
    }
}
