//! The AWS edge: the only module that holds SDK types.
//!
//! Reads turn IAM and Lambda answers into [`crate::observed`] types; writes perform one
//! IAM, Lambda or IAM Identity Center action each, through the [`crate::ports::Write`]
//! seam (the pass's router, `runtime::writers`, sends each back-end only its own). Every request goes through [`AwsClients::call`], the one place where
//! errors are classified (transient: throttling, 5xx, timeouts, conflicts; permanent:
//! everything else) and transient ones retried with exponential back-off and jitter
//! (`backoff`). The SDK's own retries are off so that this is the only retry layer.
//! "Already exists" on create and "not found" on delete count as success, so every write
//! is idempotent and a crash mid-apply is repaired by the next pass.

pub mod audit_store_policy;
pub mod connect;
pub mod operation;
pub mod permissions;
pub mod spoke;

pub use operation::{Operation, RateClass, Service};

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use serde::Serialize;

use crate::model::call::{CallStats, Failure};
use crate::observed::{FunctionKey, Observed};

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

    async fn observe_roles(
        &self,
        _role_path: &str,
        names: &[String],
        sessions_known: &std::collections::BTreeSet<String>,
    ) -> Result<Observed, Failure> {
        AwsClients::observe_roles(self, names, sessions_known).await
    }

    async fn outbound_issuer(&self) -> Result<Option<String>, Failure> {
        AwsClients::outbound_issuer(self).await
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
            Some(out) => $crate::model::call::Written {
                request_id: out.request_id().map(String::from),
                note: None,
            },
            None => $crate::model::call::Written {
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

tokio::task_local! {
    /// Set while a future runs [`urgent`].
    static URGENT: ();
}

/// Runs `f` with its AWS requests ahead of every other waiting in the same rate limit:
/// the membership fast path's, so that a revocation or a joiner never queues behind a
/// full pass's reads (which, paced at Identity Center's quotas, keep a limit busy for
/// minutes). The limit itself holds: urgent or not, requests are spaced as configured.
pub async fn urgent<F: std::future::Future>(f: F) -> F::Output {
    URGENT.scope((), f).await
}

fn is_urgent() -> bool {
    URGENT.try_with(|_| ()).is_ok()
}

/// Spaces requests to at most `rate` per second (no limit at 0). A request takes the
/// next free slot when it comes due; while an [`urgent`] one waits, the others let it go
/// first.
#[derive(Debug)]
pub struct RateLimiter {
    interval: Option<Duration>,
    slots: std::sync::Mutex<Slots>,
}

#[derive(Debug)]
struct Slots {
    /// When the next request may go.
    next: tokio::time::Instant,
    /// Urgent requests waiting.
    urgent: usize,
}

/// Counts an urgent request as waiting until it has its slot (or is dropped).
struct Waiting<'a>(&'a std::sync::Mutex<Slots>);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.lock().expect("rate limiter").urgent -= 1;
    }
}

impl RateLimiter {
    /// A limiter for `rate` requests per second.
    pub fn new(rate: f64) -> RateLimiter {
        RateLimiter {
            interval: (rate > 0.0).then(|| Duration::from_secs_f64(1.0 / rate)),
            slots: std::sync::Mutex::new(Slots {
                next: tokio::time::Instant::now(),
                urgent: 0,
            }),
        }
    }

    /// Waits for a slot: the next free one, urgent requests first.
    pub async fn acquire(&self) {
        let Some(interval) = self.interval else {
            return;
        };
        let urgent = is_urgent();
        let _waiting = urgent.then(|| {
            self.slots.lock().expect("rate limiter").urgent += 1;
            Waiting(&self.slots)
        });
        loop {
            let wake = {
                let mut s = self.slots.lock().expect("rate limiter");
                let now = tokio::time::Instant::now();
                let others_first = !urgent && s.urgent > 0;
                if s.next <= now && !others_first {
                    // Slots keep their cadence through a burst (a wake-up a little late
                    // does not slow the rate); after a pause they start from now.
                    let base = match now - s.next < interval {
                        true => s.next,
                        false => now,
                    };
                    s.next = base + interval;
                    return;
                }
                match others_first {
                    // Past the slot an urgent request is taking.
                    true => s.next.max(now) + interval,
                    false => s.next,
                }
            };
            tokio::time::sleep_until(wake).await;
        }
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
    identitystore: aws_sdk_identitystore::Client,
    ssoadmin: aws_sdk_ssoadmin::Client,
    retry: crate::ports::retry::Policy,
    pub(crate) stop: crate::ports::retry::Stop,
    /// Requests under way (for `/readyz`), each named after `label`.
    pending: crate::model::call::Pending,
    label: String,
    stats: Mutex<CallStats>,
    limits: Limiters,
    writes: WriteSlots,
    write_slots: usize,
    /// The region in use.
    pub region: String,
    /// IAM Identity Center ids looked up or made by name in this pass (users, groups,
    /// permission sets), so that a pass of many writes asks once per name; forgotten at
    /// the start of each pass ([`AwsClients::forget_people_ids`]).
    people_ids: Mutex<std::collections::BTreeMap<String, String>>,
}

/// One rate limiter per [`RateClass`] that has one.
struct Limiters {
    iam: RateLimiter,
    sts: RateLimiter,
    tagging: RateLimiter,
    organizations: RateLimiter,
    lambda_get_function: RateLimiter,
    lambda_get_policy: RateLimiter,
    lambda_control_plane: RateLimiter,
    identity_center: RateLimiter,
    /// The identity store's budget is per API: one limiter per operation.
    identity_store: std::collections::BTreeMap<Operation, RateLimiter>,
}

impl Limiters {
    fn new(r: &crate::config::RequestRates) -> Self {
        Limiters {
            iam: RateLimiter::new(r.iam),
            sts: RateLimiter::new(r.sts),
            tagging: RateLimiter::new(r.tagging),
            organizations: RateLimiter::new(r.organizations),
            lambda_get_function: RateLimiter::new(r.lambda_get_function),
            lambda_get_policy: RateLimiter::new(r.lambda_get_policy),
            lambda_control_plane: RateLimiter::new(r.lambda_control_plane),
            identity_center: RateLimiter::new(r.identity_center),
            identity_store: Operation::ALL
                .iter()
                .filter(|o| o.rate_class() == RateClass::IdentityStore)
                .map(|o| (*o, RateLimiter::new(r.identity_store_per_api)))
                .collect(),
        }
    }

    /// The limiter that spaces `op`.
    fn for_op(&self, op: Operation) -> Option<&RateLimiter> {
        match op.rate_class() {
            RateClass::IdentityStore => self.identity_store.get(&op),
            class => self.of(class),
        }
    }

    fn of(&self, class: RateClass) -> Option<&RateLimiter> {
        Some(match class {
            RateClass::Iam => &self.iam,
            RateClass::Sts => &self.sts,
            RateClass::Tagging => &self.tagging,
            RateClass::Organizations => &self.organizations,
            RateClass::Logs => return None,
            RateClass::LambdaGetFunction => &self.lambda_get_function,
            RateClass::LambdaGetPolicy => &self.lambda_get_policy,
            RateClass::LambdaControlPlane => &self.lambda_control_plane,
            RateClass::IdentityCenter => &self.identity_center,
            RateClass::IdentityStore => self.identity_store.values().next()?,
        })
    }
}

/// Writes under way at once, per writing service (`aws.writeConcurrency`).
struct WriteSlots {
    iam: tokio::sync::Semaphore,
    lambda: tokio::sync::Semaphore,
    /// Account assignments being created, until done.
    assignments: tokio::sync::Semaphore,
    /// Permission sets being provisioned, until done.
    provisions: tokio::sync::Semaphore,
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
            identitystore: aws_sdk_identitystore::Client::new(shared),
            ssoadmin: aws_sdk_ssoadmin::Client::new(shared),
            retry: crate::ports::retry::Policy {
                initial: Duration::from_millis(200),
                max_interval: Duration::from_secs(10),
                max_elapsed: Some(Duration::from_secs(config.max_retry_seconds)),
            },
            stop: None,
            pending: Default::default(),
            label: "AWS".into(),
            stats: Mutex::new(CallStats::default()),
            limits: Limiters::new(&config.max_requests_per_second),
            writes: WriteSlots {
                iam: tokio::sync::Semaphore::new(config.write_concurrency.iam.max(1)),
                lambda: tokio::sync::Semaphore::new(config.write_concurrency.lambda.max(1)),
                assignments: tokio::sync::Semaphore::new(
                    config.write_concurrency.identity_center_assignments.max(1),
                ),
                provisions: tokio::sync::Semaphore::new(
                    config.write_concurrency.identity_center_provisions.max(1),
                ),
            },
            write_slots: config.write_concurrency.iam.max(1)
                + config.write_concurrency.lambda.max(1),
            region: shared.region().map(|r| r.to_string()).unwrap_or_default(),
            people_ids: Mutex::new(std::collections::BTreeMap::new()),
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
        let limiter = self.limits.for_op(op);
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
                    let asked = std::time::Instant::now();
                    if let Some(l) = limiter {
                        l.acquire().await;
                    }
                    let _under_way = self.pending.enter(format!(
                        "{} {} {}",
                        self.label,
                        op.service().as_str(),
                        op.name()
                    ));
                    let sent = std::time::Instant::now();
                    let answer = fut.await;
                    // Where a request's time went: its wait for a slot of its rate limit,
                    // then the answer (`TRUSTSYNC_LOG=trustsync::adapters::aws=trace`).
                    tracing::trace!(
                        operation = op.name(),
                        urgent = is_urgent(),
                        waited_ms = (sent - asked).as_millis() as u64,
                        took_ms = sent.elapsed().as_millis() as u64,
                        ok = answer.is_ok(),
                        "AWS request"
                    );
                    match answer {
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

    /// Every page of a paginated read, in order, through [`Self::read`]: `send(token)` asks
    /// for the page after `token` (`None`: the first), `next` gives the token of the page
    /// after it, `each` takes the page. It ends when there is no next token, or when the
    /// token stops moving (CloudWatch Logs' forward token at the end of a stream).
    async fn paginate<T, E, S, Fut>(
        &self,
        op: Operation,
        send: S,
        next: impl Fn(&T) -> Option<String>,
        mut each: impl FnMut(T) -> Result<(), Failure>,
    ) -> Result<(), Failure>
    where
        S: Fn(Option<String>) -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let mut token: Option<String> = None;
        loop {
            let page = self.read(op, || send(token.clone())).await?;
            let after = next(&page).filter(|t| !t.is_empty());
            each(page)?;
            match after {
                Some(t) if Some(&t) != token.as_ref() => token = Some(t),
                _ => return Ok(()),
            }
        }
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
        let now_ms = crate::model::clock::since_epoch().as_millis() as i64;
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
        let mut out: Vec<crate::audit::Checkpoint> = Vec::new();
        self.paginate(
            Operation::GetLogEvents,
            |token| {
                self.logs
                    .get_log_events()
                    .log_group_name(&anchor.log_group)
                    .log_stream_name(&anchor.log_stream)
                    .start_from_head(true)
                    .set_next_token(token)
                    .send()
            },
            |page| {
                (!page.events().is_empty())
                    .then(|| page.next_forward_token().map(String::from))
                    .flatten()
            },
            |page| {
                for event in page.events() {
                    let cp =
                        serde_json::from_str(event.message().unwrap_or_default()).map_err(|e| {
                            Failure::permanent(
                                Operation::GetLogEvents.name(),
                                format!(
                                    "event {} of {}/{} is not a checkpoint: {e}",
                                    out.len() + 1,
                                    anchor.log_group,
                                    anchor.log_stream
                                ),
                            )
                        })?;
                    out.push(cp);
                }
                Ok(())
            },
        )
        .await?;
        Ok(out)
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
            self.paginate(
                Operation::ListChildren,
                |token| {
                    self.organizations
                        .list_children()
                        .parent_id(&parent)
                        .child_type(ChildType::OrganizationalUnit)
                        .set_next_token(token)
                        .send()
                },
                |page| page.next_token().map(String::from),
                |page| {
                    queue.extend(
                        page.children()
                            .iter()
                            .filter_map(|c| c.id().map(String::from)),
                    );
                    Ok(())
                },
            )
            .await?;
            self.paginate(
                Operation::ListAccountsForParent,
                |token| {
                    self.organizations
                        .list_accounts_for_parent()
                        .parent_id(&parent)
                        .set_next_token(token)
                        .send()
                },
                |page| page.next_token().map(String::from),
                |page| {
                    #[allow(deprecated)]
                    accounts.extend(
                        page.accounts()
                            .iter()
                            .filter(|a| a.status().is_none_or(|s| *s == AccountStatus::Active))
                            .filter_map(|a| a.id().map(String::from)),
                    );
                    Ok(())
                },
            )
            .await?;
        }
        let mut out = Vec::new();
        for id in accounts {
            let mut tags = BTreeMap::new();
            self.paginate(
                Operation::ListTagsForResource,
                |token| {
                    self.organizations
                        .list_tags_for_resource()
                        .resource_id(&id)
                        .set_next_token(token)
                        .send()
                },
                |page| page.next_token().map(String::from),
                |page| {
                    for t in page.tags() {
                        tags.insert(t.key().to_string(), t.value().to_string());
                    }
                    Ok(())
                },
            )
            .await?;
            out.push((id, tags));
        }
        Ok(out)
    }
}

// After the `write!` macro, which they use.
mod identity_center;
pub use identity_center::{Adoptable, KnownSets};
mod read;
mod write;

#[cfg(test)]
mod tests;
