//! `trustsync run`: the long-running, level-triggered controller.
//!
//! Every pass re-reads the policies, the directory and AWS and recomputes the plan; events
//! only say *when* to run one: a timer (`run.intervalSeconds`), a Graph delta poll that
//! sees a change to a group a mapping uses (directly or through a nested group), and a
//! change of the policy files. Triggers go through a bounded channel and are drained
//! before each pass, so bursts coalesce and passes never overlap.
//!
//! Failures turn into delays in one place: a pass that cannot read the world is retried
//! after an exponential back-off with jitter (reset by the next success); a mapping whose
//! change failed is retried on its own back-off while the other mappings go on. A policy
//! set that fails validation is reported in `/status` and the last good one keeps running.
//! SIGTERM or SIGINT stops before the next change, records the pass as interrupted,
//! and exits 0; a crash mid-pass is repaired by the next pass, since every write is
//! idempotent and every pass re-reads the world.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use backoff::backoff::Backoff;
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

use crate::adapters::aws::AwsClients;
use crate::adapters::entra::DeltaCache;
use crate::apply::{self, Actor, Outcome};
use crate::audit::{now_rfc3339, AuditLog};
use crate::config::Config;
use crate::model::call::{CallStats, Failure};
use crate::observed::trusted_subjects;
use crate::plan::{HoldKind, Plan, Settings};
use crate::runtime::metrics::{
    ActionLabel, ApiLabel, Metrics, OutcomeLabel, ServiceLabel, StateLabel,
};
use crate::runtime::pass::{self, DirectorySource};
use crate::runtime::retry::ChangeBackoff;
use crate::sources::directory::GroupRequest;
use crate::sources::policy::{self, PolicySet};

/// Why a pass was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Trigger {
    /// The first pass after start.
    Startup,
    /// The timer.
    Timer,
    /// A directory change to a group a mapping uses.
    Directory,
    /// The policy files changed.
    Policy,
    /// A retry after a failed pass.
    Retry,
}

/// A mapping's state in `/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum MappingState {
    /// AWS matches the mapping.
    Ready,
    /// Changes are pending (e.g. waiting for a retry).
    Drifted,
    /// The last change for it failed.
    Error,
    /// Needs a person: a conflict, a held change, an unresolvable group.
    Blocked,
}

/// One mapping in `/status`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MappingStatus {
    /// Document kind.
    pub kind: String,
    /// State after the last pass.
    pub state: MappingState,
    /// Why, in words.
    pub reason: String,
    /// When the last pass that looked at it ended.
    pub last_pass: String,
}

/// The last pass in `/status`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PassStatus {
    /// When it ended.
    pub time: String,
    /// What started it.
    pub trigger: Trigger,
    /// `success`, `held` (changes wait for a person), `failed`, `interrupted`.
    pub outcome: String,
    /// How long it took.
    pub duration_ms: u64,
    /// Changes applied.
    pub applied: usize,
    /// Changes that failed.
    pub failed: usize,
    /// The error, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The policy set in `/status`.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyStatus {
    /// The directory.
    pub directory: PathBuf,
    /// Git commit of the running set.
    pub revision: Option<String>,
    /// Documents in the running set.
    pub documents: usize,
    /// Why the newest files were refused (the last good set keeps running).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What `/status` shows.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusDoc {
    /// When the controller started.
    pub started_at: String,
    /// The last pass.
    pub last_pass: Option<PassStatus>,
    /// When the last successful pass ended.
    pub last_success_at: Option<String>,
    /// The running policy set.
    pub policy: PolicyStatus,
    /// Each mapping.
    pub mappings: BTreeMap<String, MappingStatus>,
    /// What start-up is still waiting for (AWS unreachable), before the first pass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting_for: Option<String>,
    #[serde(skip)]
    last_success: Option<Instant>,
}

/// `run` settings.
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// Full pass every this long.
    pub interval: Duration,
    /// Graph delta (or tenant file) poll period.
    pub directory_poll: Duration,
    /// Policy directory poll period.
    pub policy_poll: Duration,
    /// HTTP listen address.
    pub listen: SocketAddr,
}

/// A fingerprint of every policy file's name and content.
fn policy_fingerprint(dir: &std::path::Path) -> String {
    use sha2::{Digest, Sha256};
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = entry.path();
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else if matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut h = Sha256::new();
    for f in files {
        h.update(f.to_string_lossy().as_bytes());
        h.update(std::fs::read(&f).unwrap_or_default());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

struct Shared {
    status: Mutex<StatusDoc>,
    metrics: Metrics,
    registry: prometheus_client::registry::Registry,
    ready_max_age: Duration,
}

/// Runs the controller until SIGTERM or SIGINT. Returns the exit code.
pub async fn run(
    config: Config,
    policy_dir: PathBuf,
    directory: DirectorySource,
    settings: RunSettings,
) -> anyhow::Result<u8> {
    // Local checks first: invalid policies or an unusable audit log are errors at once.
    let policies =
        policy::load_dir(&policy_dir, &config.limits).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut audit = AuditLog::open(&config.audit.path)?;

    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = Metrics::register(&mut registry);
    let shared = Arc::new(Shared {
        status: Mutex::new(StatusDoc {
            started_at: now_rfc3339(),
            policy: PolicyStatus {
                directory: policy_dir.clone(),
                revision: policies.revision.clone(),
                documents: policies.len(),
                error: None,
            },
            ..StatusDoc::default()
        }),
        metrics: metrics.clone(),
        registry,
        ready_max_age: settings.interval * 2 + Duration::from_secs(60),
    });

    // Then the listener and the signal handlers, before anything that needs the network:
    // /healthz answers and SIGTERM is honoured while AWS or Graph cannot be reached.
    let (stop_tx, stop_rx) = watch::channel(false);
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    println!(
        "trustsync run: serving /healthz /readyz /metrics /status on http://{}",
        listener.local_addr()?
    );
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/status", get(status))
        .with_state(shared.clone());
    let mut http_stop = stop_rx.clone();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = http_stop.wait_for(|s| *s).await;
            })
            .await;
    });
    tokio::spawn(signals(stop_tx));

    let Some((aws, caller)) = connect_aws(&config, &shared, stop_rx.clone()).await else {
        tracing::info!("shutting down before the first pass");
        let _ = server.await;
        return Ok(0);
    };

    let (trigger_tx, mut trigger_rx) = mpsc::channel::<Trigger>(16);
    let directory = Arc::new(tokio::sync::Mutex::new(directory));
    let policies = Arc::new(Mutex::new(Arc::new(policies)));
    let requests: Arc<Mutex<Vec<GroupRequest>>> = Arc::new(Mutex::new(Vec::new()));
    tokio::spawn(watch_directory(
        directory.clone(),
        requests.clone(),
        settings.directory_poll,
        trigger_tx.clone(),
        stop_rx.clone(),
    ));
    tokio::spawn(watch_policies(
        policy_dir.clone(),
        config.limits.clone(),
        policies.clone(),
        shared.clone(),
        settings.policy_poll,
        trigger_tx.clone(),
        stop_rx.clone(),
    ));

    let mut ctl = Controller {
        config,
        aws,
        caller,
        shared: shared.clone(),
        backoffs: HashMap::new(),
        requests,
        last_aws: CallStats::default(),
        last_graph: (0, 0, 0),
        last_differences: 0,
    };
    let mut ticker = tokio::time::interval_at(
        tokio::time::Instant::now() + settings.interval,
        settings.interval,
    );
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pass_backoff = pass_backoff();
    let mut trigger = Trigger::Startup;
    let mut stop = stop_rx.clone();
    loop {
        let set = policies.lock().expect("policies").clone();
        let ok = ctl
            .pass(trigger, &set, &directory, &mut audit, &stop_rx)
            .await;
        if *stop_rx.borrow() {
            break;
        }
        let retry_at = if ok {
            pass_backoff.reset();
            None
        } else {
            let delay = pass_backoff.next_backoff().unwrap_or(settings.interval);
            tracing::warn!(
                retry_in_ms = delay.as_millis() as u64,
                "pass failed; retrying after back-off"
            );
            Some(tokio::time::Instant::now() + delay)
        };
        trigger = tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            _ = ticker.tick() => Trigger::Timer,
            Some(t) = trigger_rx.recv() => t,
            _ = tokio::time::sleep_until(retry_at.unwrap_or_else(tokio::time::Instant::now)), if retry_at.is_some() => Trigger::Retry,
        };
        // Coalesce: whatever else arrived meanwhile is served by this one pass.
        while trigger_rx.try_recv().is_ok() {}
    }
    tracing::info!("shutting down");
    let _ = server.await;
    Ok(0)
}

/// AWS clients and the caller identity, retried with back-off until AWS answers; `None`
/// when shutdown is requested first. `/readyz` and `/status` say what it is waiting for.
async fn connect_aws(
    config: &Config,
    shared: &Shared,
    mut stop: watch::Receiver<bool>,
) -> Option<(AwsClients, crate::adapters::aws::CallerIdentity)> {
    let mut delays = pass_backoff();
    let mut last_error: Option<String> = None;
    loop {
        shared.status.lock().expect("status").waiting_for = Some(match &last_error {
            Some(e) => format!("reading the AWS caller identity (last attempt: {e})"),
            None => "reading the AWS caller identity".into(),
        });
        let for_clients = stop.clone();
        let attempt = async move {
            let mut aws = AwsClients::connect(&config.aws).await?;
            aws.set_stop(for_clients);
            let caller = aws.caller_identity().await?;
            Ok::<_, Failure>((aws, caller))
        };
        let error = tokio::select! {
            _ = stop.wait_for(|s| *s) => return None,
            r = attempt => match r {
                Ok(found) => {
                    shared.status.lock().expect("status").waiting_for = None;
                    return Some(found);
                }
                Err(e) => e,
            },
        };
        let delay = delays.next_backoff().unwrap_or(Duration::from_secs(300));
        tracing::warn!(error = %error, retry_in_ms = delay.as_millis() as u64, "cannot reach AWS yet");
        last_error = Some(error.to_string());
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return None,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

fn pass_backoff() -> backoff::ExponentialBackoff {
    ChangeBackoff::POLICY.backoff()
}

async fn signals(stop: watch::Sender<bool>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
    let _ = stop.send(true);
}

/// The group ids that the policies' group requests depend on, nested groups included.
fn relevant_groups(cache: &DeltaCache, requests: &[GroupRequest]) -> BTreeSet<String> {
    let snap = cache.snapshot(requests);
    let mut out = BTreeSet::new();
    for (req, result) in &snap.groups {
        if let Ok(g) = result {
            out.insert(g.id.clone());
            if req.transitive {
                out.extend(cache.nested_groups(&g.id));
            }
        }
    }
    out
}

async fn watch_directory(
    directory: Arc<tokio::sync::Mutex<DirectorySource>>,
    requests: Arc<Mutex<Vec<GroupRequest>>>,
    period: Duration,
    triggers: mpsc::Sender<Trigger>,
    mut stop: watch::Receiver<bool>,
) {
    let mut last_file: Option<Vec<u8>> = None;
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = tokio::time::sleep(period) => {}
        }
        // The requests of the last pass, pins included: a group is watched by the id its
        // mapping is pinned to, not by a name anyone can give another group.
        let requests = requests.lock().expect("requests").clone();
        let mut dir = directory.lock().await;
        let changed = match &mut *dir {
            DirectorySource::Delta { cache, .. } => {
                let before = relevant_groups(cache, &requests);
                match cache.sync().await {
                    Ok(r) => {
                        let after = relevant_groups(cache, &requests);
                        requests.is_empty()
                            || r.full
                            || r.changed_groups
                                .iter()
                                .any(|g| before.contains(g) || after.contains(g))
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "Graph delta poll failed; the next pass reads again");
                        false
                    }
                }
            }
            DirectorySource::File(path) => {
                let now = std::fs::read(path).ok();
                let changed = last_file.is_some() && now != last_file;
                last_file = now;
                changed
            }
            DirectorySource::Graph(_) | DirectorySource::GraphLater { .. } => false,
        };
        drop(dir);
        if changed {
            tracing::info!("directory change to a mapped group; starting a pass");
            // A full channel means a pass is already pending: this change rides along.
            let _ = triggers.try_send(Trigger::Directory);
        }
    }
}

async fn watch_policies(
    dir: PathBuf,
    limits: policy::Limits,
    policies: Arc<Mutex<Arc<PolicySet>>>,
    shared: Arc<Shared>,
    period: Duration,
    triggers: mpsc::Sender<Trigger>,
    mut stop: watch::Receiver<bool>,
) {
    let mut last = policy_fingerprint(&dir);
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = tokio::time::sleep(period) => {}
        }
        let now = policy_fingerprint(&dir);
        if now == last {
            continue;
        }
        last = now;
        match policy::load_dir(&dir, &limits) {
            Ok(set) => {
                tracing::info!(documents = set.len(), "policy files changed; reloaded");
                {
                    let mut st = shared.status.lock().expect("status");
                    st.policy = PolicyStatus {
                        directory: dir.clone(),
                        revision: set.revision.clone(),
                        documents: set.len(),
                        error: None,
                    };
                }
                *policies.lock().expect("policies") = Arc::new(set);
                let _ = triggers.try_send(Trigger::Policy);
            }
            Err(e) => {
                tracing::error!(error = %e, "policy files are invalid; keeping the last good set");
                shared.metrics.policy_errors.inc();
                shared.status.lock().expect("status").policy.error =
                    Some(format!("{e} (the last good policy set keeps running)"));
            }
        }
    }
}

struct Controller {
    config: Config,
    aws: AwsClients,
    caller: crate::adapters::aws::CallerIdentity,
    shared: Arc<Shared>,
    /// Per planned change (by [`crate::plan::Change::key`]) that keeps failing.
    backoffs: HashMap<String, ChangeBackoff>,
    /// The directory requests of the last pass, for the delta watcher.
    requests: Arc<Mutex<Vec<GroupRequest>>>,
    last_aws: CallStats,
    last_graph: (u64, u64, u64),
    last_differences: u64,
}

const ORPHANS: &str = "(orphans)";

impl Controller {
    /// One pass. Returns whether it succeeded (a failed read or change is a failure).
    async fn pass(
        &mut self,
        trigger: Trigger,
        policies: &PolicySet,
        directory: &tokio::sync::Mutex<DirectorySource>,
        audit: &mut AuditLog,
        stop: &watch::Receiver<bool>,
    ) -> bool {
        let started = Instant::now();
        let span = tracing::info_span!("pass", pass.trigger = ?trigger);
        let result = self
            .pass_inner(policies, directory, audit, stop)
            .instrument(span.clone())
            .await;
        let shared = self.shared.clone();
        let m = &shared.metrics;
        m.pass_duration.observe(started.elapsed().as_secs_f64());
        self.record_api_stats(directory).await;
        let (outcome, applied, failed, error) = match &result {
            Ok((outcome, report)) => (outcome.to_string(), report.applied, report.failed, None),
            Err(e) => ("failed".to_string(), 0, 0, Some(format!("{e:#}"))),
        };
        m.passes
            .get_or_create(&OutcomeLabel {
                outcome: outcome.clone(),
            })
            .inc();
        if let Some(e) = &error {
            tracing::error!(error = %e, "pass failed");
            let _ = audit.append(serde_json::json!({"type": "pass", "actor": Actor::new(&self.caller.arn), "trigger": trigger, "outcome": "failed", "error": e}));
        }
        let mut st = self.shared.status.lock().expect("status");
        // Held changes wait for a person, but the pass read the world and did the rest.
        let success = outcome == "success" || outcome == "held";
        if success {
            st.last_success = Some(Instant::now());
            st.last_success_at = Some(now_rfc3339());
        }
        st.last_pass = Some(PassStatus {
            time: now_rfc3339(),
            trigger,
            outcome: outcome.clone(),
            duration_ms: started.elapsed().as_millis() as u64,
            applied,
            failed,
            error,
        });
        span.in_scope(|| {
        tracing::info!(outcome = %outcome, applied, failed, duration_ms = started.elapsed().as_millis() as u64, "pass finished");
});
        success
    }

    async fn record_api_stats(&mut self, directory: &tokio::sync::Mutex<DirectorySource>) {
        let m = &self.shared.metrics;
        let now = self.aws.stats();
        for (op, n) in &now.requests {
            let before = self.last_aws.requests.get(op).copied().unwrap_or(0);
            let service = crate::adapters::aws::service_of(op);
            m.api_requests
                .get_or_create(&ApiLabel {
                    service: service.into(),
                    operation: op.to_string(),
                })
                .inc_by(n - before);
        }
        let aws = ServiceLabel {
            service: "aws".into(),
        };
        m.api_retries
            .get_or_create(&aws)
            .inc_by(now.retries - self.last_aws.retries);
        m.throttled
            .get_or_create(&aws)
            .inc_by(now.throttled - self.last_aws.throttled);
        self.last_aws = now;
        let g = directory.lock().await.graph_stats();
        let graph = ServiceLabel {
            service: "graph".into(),
        };
        m.api_requests
            .get_or_create(&ApiLabel {
                service: "graph".into(),
                operation: "GET".into(),
            })
            .inc_by(g.0 - self.last_graph.0);
        m.api_retries
            .get_or_create(&graph)
            .inc_by(g.1 - self.last_graph.1);
        m.throttled
            .get_or_create(&graph)
            .inc_by(g.2 - self.last_graph.2);
        self.last_graph = g;
        let d = directory.lock().await.full_read_differences();
        m.directory_differences.inc_by(d - self.last_differences);
        self.last_differences = d;
    }

    async fn pass_inner(
        &mut self,
        policies: &PolicySet,
        directory: &tokio::sync::Mutex<DirectorySource>,
        audit: &mut AuditLog,
        stop: &watch::Receiver<bool>,
    ) -> anyhow::Result<(&'static str, apply::Report)> {
        let backoffs = &self.backoffs;
        let deferred = |c: &crate::plan::Change| {
            backoffs.get(&c.key()).filter(|b| b.waiting()).map(|b| {
                format!(
                    "retrying in {}s after: {}",
                    (b.next - tokio::time::Instant::now()).as_secs(),
                    b.reason
                )
            })
        };
        let released = BTreeSet::new();
        let planned = {
            let mut dir = directory.lock().await;
            pass::plan(
                &pass::Inputs {
                    config: &self.config,
                    policies,
                    aws: &self.aws,
                    account: &self.caller.account,
                    deferred: &deferred,
                    released: &released,
                },
                &mut dir,
            )
            .await?
        };
        *self.requests.lock().expect("requests") = planned.requests.clone();
        let shared = self.shared.clone();
        let m = &shared.metrics;
        let plan = &planned.plan;
        for c in plan
            .changes
            .iter()
            .chain(plan.held.iter().map(|h| &h.change))
        {
            m.drift_detected
                .get_or_create(&ActionLabel {
                    action: c.action.name(),
                })
                .inc();
        }
        let actor = Actor::new(&self.caller.arn);
        let stop_now = || *stop.borrow();
        let report = planned
            .apply(
                &self.aws,
                audit,
                &actor,
                policies.revision.as_deref(),
                &stop_now,
            )
            .await?;
        let outcome = if report.interrupted {
            "interrupted"
        } else if report.failed > 0 {
            "failed"
        } else if plan.needs_attention() {
            "held"
        } else {
            "success"
        };
        for (name, _, outcome) in &report.outcomes {
            match outcome {
                Outcome::Ok(_) => m
                    .changes_applied
                    .get_or_create(&ActionLabel {
                        action: name.clone(),
                    })
                    .inc(),
                Outcome::Failed(_) => m
                    .changes_failed
                    .get_or_create(&ActionLabel {
                        action: name.clone(),
                    })
                    .inc(),
                Outcome::Skipped { .. } => 0,
            };
        }
        self.update_backoffs(plan, &report);
        self.update_status(policies, plan, &report, outcome);
        let settings = Settings::from_config(&self.config);
        let owned: Vec<_> = planned
            .observed
            .roles
            .values()
            .filter(|r| settings.ownership().role(r))
            .collect();
        m.managed_roles.set(owned.len() as i64);
        let principals = owned
            .iter()
            .map(|r| trusted_subjects(&r.trust).len())
            .sum::<usize>() as i64;
        let (added, removed) = report.outcomes.iter().zip(&plan.changes).fold(
            (0, 0),
            |(a, r), ((_, _, o), c)| match o {
                Outcome::Ok(_) => (a + c.members_added.len(), r + c.members_removed.len()),
                _ => (a, r),
            },
        );
        m.trusted_principals
            .set(principals + added as i64 - removed as i64);
        Ok((outcome, report))
    }

    /// Back-off per change: grows with each failure, forgotten on success or when the
    /// change is no longer planned.
    fn update_backoffs(&mut self, plan: &Plan, report: &apply::Report) {
        for (change, (_, _, result)) in plan.changes.iter().zip(&report.outcomes) {
            let key = change.key();
            match result {
                Outcome::Failed(f) => match self.backoffs.get_mut(&key) {
                    Some(b) => b.failed(f.to_string()),
                    None => {
                        self.backoffs.insert(key, ChangeBackoff::new(f.to_string()));
                    }
                },
                Outcome::Ok(_) => {
                    self.backoffs.remove(&key);
                }
                Outcome::Skipped { .. } => {}
            }
        }
        let planned: BTreeSet<String> = plan
            .changes
            .iter()
            .chain(plan.held.iter().map(|h| &h.change))
            .map(|c| c.key())
            .collect();
        self.backoffs.retain(|k, _| planned.contains(k));
    }

    fn update_status(
        &mut self,
        policies: &PolicySet,
        plan: &Plan,
        report: &apply::Report,
        outcome: &str,
    ) {
        let time = now_rfc3339();
        let mut mappings: BTreeMap<String, MappingStatus> = BTreeMap::new();
        let kinds = policies
            .providers
            .iter()
            .map(|p| (&p.name, "IdentityProvider"))
            .chain(
                policies
                    .role_mappings
                    .iter()
                    .map(|m| (&m.name, "RoleMapping")),
            )
            .chain(
                policies
                    .functions
                    .iter()
                    .map(|f| (&f.name, "FunctionAccess")),
            );
        for (name, kind) in kinds {
            mappings.insert(
                name.clone(),
                MappingStatus {
                    kind: kind.into(),
                    state: MappingState::Ready,
                    reason: "in sync".into(),
                    last_pass: time.clone(),
                },
            );
        }
        let mut set = |name: &str, state: MappingState, reason: String| {
            if let Some(s) = mappings.get_mut(name) {
                // A worse state wins.
                let rank = |s: MappingState| match s {
                    MappingState::Ready => 0,
                    MappingState::Drifted => 1,
                    MappingState::Error => 2,
                    MappingState::Blocked => 3,
                };
                if rank(state) >= rank(s.state) {
                    s.state = state;
                    s.reason = reason;
                }
            }
        };
        for p in &plan.problems {
            if let Some(m) = &p.mapping {
                let state = if p.kind.blocks() {
                    MappingState::Blocked
                } else {
                    MappingState::Error
                };
                set(m, state, format!("{}: {}", p.kind, p.message));
            }
        }
        for h in &plan.held {
            let key = h.change.mapping.clone().unwrap_or_else(|| ORPHANS.into());
            let state = if h.held.kind == HoldKind::Backoff {
                MappingState::Drifted
            } else {
                MappingState::Blocked
            };
            set(
                &key,
                state,
                format!(
                    "{} held ({}): {}; {}",
                    h.change.action.name(),
                    h.held.kind,
                    h.held.reason,
                    h.held.release
                ),
            );
        }
        for (change, (_, _, result)) in plan.changes.iter().zip(&report.outcomes) {
            let key = change.mapping.clone().unwrap_or_else(|| ORPHANS.into());
            match result {
                Outcome::Failed(f) => set(
                    &key,
                    MappingState::Error,
                    format!("{} failed: {f}", change.action.name()),
                ),
                Outcome::Skipped { reason } if outcome == "interrupted" => {
                    set(&key, MappingState::Drifted, reason.clone());
                }
                _ => {}
            }
        }
        let m = &self.shared.metrics;
        for state in ["Ready", "Drifted", "Error", "Blocked"] {
            let n = mappings
                .values()
                .filter(|s| format!("{:?}", s.state) == state)
                .count();
            m.mappings
                .get_or_create(&StateLabel {
                    state: state.into(),
                })
                .set(n as i64);
        }
        self.shared.status.lock().expect("status").mappings = mappings;
    }
}

async fn readyz(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let st = shared.status.lock().expect("status");
    match st.last_success {
        Some(t) if t.elapsed() <= shared.ready_max_age => (StatusCode::OK, "ready\n".to_string()),
        Some(t) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("last successful pass {}s ago\n", t.elapsed().as_secs()),
        ),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            match &st.waiting_for {
                Some(what) => format!("no successful pass yet: waiting for {what}\n"),
                None => "no successful pass yet\n".to_string(),
            },
        ),
    }
}

async fn metrics_text(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let since = shared
        .status
        .lock()
        .expect("status")
        .last_success
        .map(|t| t.elapsed().as_secs_f64());
    shared
        .metrics
        .since_success
        .set(since.unwrap_or(f64::INFINITY));
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &shared.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                "content-type",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        ),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [("content-type", "text/plain")],
            "cannot encode metrics\n".into(),
        ),
    }
}

async fn status(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    Json(shared.status.lock().expect("status").clone())
}
