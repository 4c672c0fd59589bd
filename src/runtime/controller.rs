//! `trustsync run`: the long-running, level-triggered controller.
//!
//! Every full pass re-reads the policies, the directory and AWS and recomputes the plan;
//! events only say *when* to run one: a timer (`run.intervalSeconds`), a change of the
//! policy files, a directory change the fast path cannot place. Triggers go through a
//! bounded channel and are drained before each pass, so bursts coalesce and full passes
//! never overlap.
//!
//! Beside them runs the membership fast path: a Graph delta poll that sees a change to a
//! group a mapping uses (directly or through a nested group) starts a pass over just those
//! mappings' roles, their trust and session denials, at once, whether or not a full pass
//! is under way. The two never write the same role at once ([`RoleWrites`]).
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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use backoff::backoff::Backoff;
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

use crate::adapters::aws::CallerIdentity;
use crate::apply::{self, Actor};
use crate::audit::{now_rfc3339, AuditLog, PassRecord, Record};
use crate::config::Config;
use crate::model::call::CallStats;
use crate::ports::retry::ChangeBackoff;
use crate::runtime::fleet::{self, Fleet};
use crate::runtime::http;
use crate::runtime::metrics::OutcomeLabel;
use crate::runtime::pass::{self, DirectorySource};
use crate::runtime::scope::Scope;
use crate::runtime::status::{PassOutcome, PassStatus, Shared, Trigger};
use crate::runtime::watch::{signals, watch_directory, watch_policies, Changed, DirectoryWatch};
use crate::runtime::writes::{Guarded, RoleWrites};
use crate::sources::directory::GroupRequest;
use crate::sources::policy::{self, PolicySet};

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
    /// After SIGTERM, the longest wait for the pass under way.
    pub shutdown: Duration,
}

/// Runs the controller until SIGTERM or SIGINT. Returns the exit code.
pub async fn run(
    config: Config,
    policy_dir: PathBuf,
    directory: DirectorySource,
    settings: RunSettings,
) -> anyhow::Result<u8> {
    // Local checks first: invalid policies or an unusable audit log are errors at once.
    let (policies, audit, shared) = open_local(&config, &policy_dir, &settings)?;

    // Then the listener and the signal handlers, before anything that needs the network:
    // /healthz answers and SIGTERM is honoured while AWS or Graph cannot be reached.
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    let server = serve_http(settings.listen, shared.clone(), stop_rx.clone()).await?;
    tokio::spawn({
        let stop_tx = stop_tx.clone();
        async move { signals(&stop_tx).await }
    });

    let Some((fleet, caller)) = connect_aws(&config, &shared, stop_rx.clone()).await else {
        tracing::info!("shutting down before the first pass");
        let _ = server.await;
        return Ok(0);
    };

    let w = start_watchers(
        &config,
        (policy_dir, policies, directory),
        &settings,
        &shared,
        &stop_rx,
    );
    let Some((audit, leading)) = writer(&config, &shared, &w, audit, (&stop_rx, &stop_tx)).await?
    else {
        tracing::info!("shutting down before taking the lead");
        let _ = server.await;
        return Ok(0);
    };
    let ctl = Arc::new(Controller::new(
        config,
        fleet,
        caller,
        shared.clone(),
        w.requests.clone(),
        w.changed.clone(),
    ));
    let mut stopped = stop_rx.clone();
    let fast = FastPath {
        wake: w.wake,
        full: w.triggers.clone(),
        stop: stop_rx.clone(),
    };
    let triggers = Triggers {
        rx: w.trigger_rx,
        interval: settings.interval,
        stop: stop_rx.clone(),
    };
    // After SIGTERM the pass under way gets `shutdown` to end (retry waits end at once;
    // a request already sent may still take its timeout); then the process leaves it.
    // A write it left without an answer has its intent in the audit log, and the next
    // start finds out what AWS shows, as after a crash.
    let deadline = async {
        let _ = stopped.wait_for(|s| *s).await;
        tokio::time::sleep(settings.shutdown).await;
    };
    let audit = Arc::new(tokio::sync::Mutex::new(audit));
    let (policies, directory) = (w.policies, w.directory);
    let mut fast = FastTask::spawn(
        &ctl,
        fast,
        policies.clone(),
        directory.clone(),
        audit.clone(),
    );
    let passes = async {
        tokio::join!(
            ctl.run_passes(triggers, policies.clone(), directory, audit.clone()),
            fast.joined(),
            ctl.run_releases(
                settings.directory_poll,
                policies,
                audit,
                w.release_wake,
                stop_rx,
            ),
        )
    };
    tokio::select! {
        _ = passes => {}
        _ = deadline => {
            tracing::warn!(
                shutdown_seconds = settings.shutdown.as_secs(),
                waiting_on = ?shared.pending.waiting(Duration::ZERO),
                "the pass under way did not end in time after SIGTERM; leaving it (the audit log's intents are checked at the next start)"
            );
        }
    }
    fast.end().await;
    tracing::info!("shutting down");
    let lost = match leading {
        Some(leading) => leading.end().await,
        None => None,
    };
    if let Some(keeper) = w.keeper {
        // It deletes the subscription (bounded: the subscription expires on its own).
        let _ = tokio::time::timeout(Duration::from_secs(5), keeper).await;
    }
    let _ = server.await;
    match lost {
        Some(why) => Err(anyhow::anyhow!(
            "stepped down: {why}; start again to stand by"
        )),
        None => Ok(0),
    }
}

/// The audit log to write, and the lease held while leading. With the S3 store this
/// replica stands by (the directory cache kept warm by the watchers) until the writers'
/// lease is its own; only then is the log opened for writing. `None`: stopped first.
async fn writer(
    config: &Config,
    shared: &Arc<Shared>,
    w: &Watchers,
    audit: Option<AuditLog>,
    (stop_rx, stop_tx): (&watch::Receiver<bool>, &Arc<watch::Sender<bool>>),
) -> anyhow::Result<Option<(AuditLog, Option<leadership::Leading>)>> {
    if let Some(audit) = audit {
        return Ok(Some((audit, None)));
    }
    let standby = leadership::Standby {
        policies: w.policies.clone(),
        directory: w.directory.clone(),
        requests: w.requests.clone(),
        standing_by: w.standing_by.clone(),
    };
    let led = leadership::lead(config, shared, standby, stop_rx.clone(), stop_tx.clone()).await?;
    Ok(led.map(|(audit, leading)| (audit, Some(leading))))
}

/// The policies, the audit log (mirrored to stdout, for the cluster's log pipeline) and
/// the state the HTTP endpoints show: what `run` checks before it touches the network.
/// With the S3 store the log is opened only once this replica leads: `None` then.
fn open_local(
    config: &Config,
    policy_dir: &std::path::Path,
    settings: &RunSettings,
) -> anyhow::Result<(PolicySet, Option<AuditLog>, Arc<Shared>)> {
    let policies =
        policy::load_dir(policy_dir, &config.limits).map_err(|e| anyhow::anyhow!("{e}"))?;
    let audit = match config.audit.s3 {
        Some(_) => None,
        None => {
            let mut audit = crate::audit::open_configured(&config.audit, &config.aws, None)?;
            // A copy of every record on stdout, for the cluster's log pipeline.
            audit.mirror_to_stdout();
            Some(audit)
        }
    };
    let mut shared = Shared::new(
        policy_dir.to_path_buf(),
        &policies,
        settings.interval * 2 + Duration::from_secs(60),
    );
    // The file store's writer holds its lock from here on.
    shared.metrics.leader.set(i64::from(audit.is_some()));
    shared.inbox =
        crate::runtime::inbox::Inbox::try_new(config.directory.graph.notifications.is_some())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok((policies, audit, Arc::new(shared)))
}

/// What the watchers share with the passes.
struct Watchers {
    directory: Arc<tokio::sync::Mutex<DirectorySource>>,
    policies: Arc<Mutex<Arc<PolicySet>>>,
    requests: Arc<Mutex<Vec<GroupRequest>>>,
    changed: Changed,
    /// Where the watchers ask for a full pass.
    triggers: mpsc::Sender<Trigger>,
    trigger_rx: mpsc::Receiver<Trigger>,
    /// The directory watcher's wake-up of the fast path.
    wake: mpsc::Receiver<()>,
    /// The releases' wake-up of the fast path.
    release_wake: mpsc::Sender<()>,
    /// The change notifications' subscription keeper, when notifications are configured.
    keeper: Option<tokio::task::JoinHandle<()>>,
    /// Whether this replica stands by (the S3 store, until it leads).
    standing_by: Arc<AtomicBool>,
}

/// Starts the directory watcher, the change notifications' keeper (when configured) and
/// the policy watcher.
fn start_watchers(
    config: &Config,
    (policy_dir, policies, directory): (PathBuf, PolicySet, DirectorySource),
    settings: &RunSettings,
    shared: &Arc<Shared>,
    stop_rx: &watch::Receiver<bool>,
) -> Watchers {
    let (trigger_tx, trigger_rx) = mpsc::channel::<Trigger>(16);
    let (wake_tx, wake_rx) = mpsc::channel::<()>(1);
    let release_wake = wake_tx.clone();
    let mut directory = directory;
    directory.set_stop(stop_rx.clone(), shared.pending.clone());
    let directory = Arc::new(tokio::sync::Mutex::new(directory));
    let policies = Arc::new(Mutex::new(Arc::new(policies)));
    let requests: Arc<Mutex<Vec<GroupRequest>>> = Arc::new(Mutex::new(Vec::new()));
    let changed: Changed = Arc::new(Mutex::new(Some(BTreeSet::new())));
    let standing_by = Arc::new(AtomicBool::new(config.audit.s3.is_some()));
    tokio::spawn(watch_directory(
        DirectoryWatch {
            directory: directory.clone(),
            requests: requests.clone(),
            changed: changed.clone(),
            period: settings.directory_poll,
            wake: wake_tx,
            shared: shared.clone(),
            standing_by: standing_by.clone(),
        },
        shared.inbox.poll_now.clone(),
        stop_rx.clone(),
    ));
    let keeper = config.directory.graph.notifications.clone().map(|config| {
        tokio::spawn(crate::runtime::notify::keep_subscription(
            crate::runtime::notify::Keeper {
                config,
                directory: directory.clone(),
                shared: shared.clone(),
                stop: stop_rx.clone(),
            },
        ))
    });
    tokio::spawn(watch_policies(
        policy_dir,
        config.limits.clone(),
        policies.clone(),
        shared.clone(),
        settings.policy_poll,
        trigger_tx.clone(),
        stop_rx.clone(),
    ));
    Watchers {
        directory,
        policies,
        requests,
        changed,
        triggers: trigger_tx,
        trigger_rx,
        wake: wake_rx,
        release_wake,
        keeper,
        standing_by,
    }
}

/// The HTTP endpoints on `listen`, until `stop`.
async fn serve_http(
    listen: SocketAddr,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    // A closed stdout (a pipe whose reader went away) is no reason to stop: the line is
    // for whoever reads it.
    {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stdout(),
            "trustsync run: serving /healthz /readyz /metrics /status on http://{}",
            listener.local_addr()?
        );
    }
    let app = http::router(shared);
    Ok(tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await;
    }))
}

/// What starts the next pass: the timer, the watchers' channel, a retry after a failed
/// pass; and the stop signal that ends the loop.
struct Triggers {
    rx: mpsc::Receiver<Trigger>,
    interval: Duration,
    stop: watch::Receiver<bool>,
}

/// What starts a fast pass (the directory watcher's wake-up), where it asks for a full
/// pass instead, and the stop signal.
struct FastPath {
    wake: mpsc::Receiver<()>,
    full: mpsc::Sender<Trigger>,
    stop: watch::Receiver<bool>,
}

/// The membership fast path as a task of its own, on the runtime's workers: what a full
/// pass works out between its requests (its planning, its answers' parsing: CPU time that
/// grows with the fleet and the people) never holds a departure or a joiner back, as it
/// did when both were futures of one task.
struct FastTask(tokio::task::JoinHandle<()>);

impl FastTask {
    fn spawn(
        ctl: &Arc<Controller>,
        fast: FastPath,
        policies: Arc<Mutex<Arc<PolicySet>>>,
        directory: Arc<tokio::sync::Mutex<DirectorySource>>,
        audit: Arc<tokio::sync::Mutex<AuditLog>>,
    ) -> FastTask {
        let ctl = ctl.clone();
        FastTask(tokio::spawn(async move {
            ctl.run_fast(fast, policies, directory, audit).await
        }))
    }

    /// Until the fast path ends (at the stop signal); its panic is the caller's.
    async fn joined(&mut self) {
        if let Err(e) = (&mut self.0).await {
            if e.is_panic() {
                std::panic::resume_unwind(e.into_panic());
            }
        }
    }

    /// No fast pass outlives the lease: one under way ends (at its next wait) before the
    /// lease is given up.
    async fn end(self) {
        if !self.0.is_finished() {
            self.0.abort();
            let _ = self.0.await;
        }
    }
}

/// The accounts and the caller identity, retried with back-off until AWS answers; `None`
/// when shutdown is requested first. `/readyz` and `/status` say what it is waiting for.
async fn connect_aws(
    config: &Config,
    shared: &Shared,
    mut stop: watch::Receiver<bool>,
) -> Option<(Fleet, CallerIdentity)> {
    let mut delays = pass_backoff();
    let mut last_error: Option<String> = None;
    loop {
        shared.status.lock().expect("status").waiting_for = Some(match &last_error {
            Some(e) => format!("reading the AWS caller identity (last attempt: {e})"),
            None => "reading the AWS caller identity".into(),
        });
        let attempt = fleet::connect(config, Some(stop.clone()), shared.pending.clone());
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

/// The controller between passes: what it knows, and the back-off of failing changes.
/// The full passes and the fast path share it.
struct Controller {
    config: Config,
    /// Written only to take in the organization's new accounts (a full pass).
    fleet: tokio::sync::RwLock<Fleet>,
    caller: CallerIdentity,
    shared: Arc<Shared>,
    /// Per planned change (by [`crate::plan::Change::key`]) that keeps failing.
    backoffs: Mutex<HashMap<String, ChangeBackoff>>,
    /// The directory requests of the last pass, for the delta watcher.
    requests: Arc<Mutex<Vec<GroupRequest>>>,
    /// The groups the delta watcher saw change since the last fast pass (`None`: it could
    /// not place the change, a full pass is wanted).
    changed: Changed,
    /// Which pass may write which role now, and the session denials known.
    writes: RoleWrites,
    /// A full pass left a change to a role the fast path wrote meanwhile: another full
    /// pass at once.
    again: AtomicBool,
    /// The request counters as the metrics last took them.
    seen: Mutex<Seen>,
    /// Releases of held removals a person asked for (`trustsync release`), recorded in
    /// the audit log, by document: let through by the next pass over that document.
    releases: Mutex<BTreeMap<String, crate::audit::Released>>,
}

/// What the audit log records that a pass reads.
struct Recorded {
    attention: Option<String>,
    pins: BTreeMap<String, String>,
    baselines: BTreeMap<String, String>,
    people: BTreeMap<String, String>,
}

/// Request counters as last added to the metrics (the metrics take the difference).
#[derive(Default)]
struct Seen {
    aws: CallStats,
    graph: (u64, u64, u64),
    differences: u64,
}

impl Controller {
    fn new(
        config: Config,
        fleet: Fleet,
        caller: CallerIdentity,
        shared: Arc<Shared>,
        requests: Arc<Mutex<Vec<GroupRequest>>>,
        changed: Changed,
    ) -> Controller {
        Controller {
            config,
            fleet: tokio::sync::RwLock::new(fleet),
            caller,
            shared,
            backoffs: Mutex::new(HashMap::new()),
            requests,
            changed,
            writes: RoleWrites::default(),
            again: AtomicBool::new(false),
            seen: Mutex::new(Seen::default()),
            releases: Mutex::new(BTreeMap::new()),
        }
    }

    /// Passes until the stop signal: one at start, then one per trigger (bursts coalesce),
    /// a failed pass retried after an exponential back-off reset by the next success.
    async fn run_passes(
        &self,
        mut t: Triggers,
        policies: Arc<Mutex<Arc<PolicySet>>>,
        directory: Arc<tokio::sync::Mutex<DirectorySource>>,
        audit: Arc<tokio::sync::Mutex<AuditLog>>,
    ) {
        let mut ticker =
            tokio::time::interval_at(tokio::time::Instant::now() + t.interval, t.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut pass_backoff = pass_backoff();
        let mut trigger = Trigger::Startup;
        let mut stop = t.stop.clone();
        // Whether this pass is the one re-read after a pass the fast path overtook.
        let mut reread = false;
        loop {
            let set = policies.lock().expect("policies").clone();
            let ok = self
                .pass(trigger, &set, &directory, &audit, &t.stop, Scope::Fleet)
                .await;
            if *t.stop.borrow() {
                break;
            }
            let superseded = self.again.swap(false, Ordering::SeqCst);
            let retry_at = if superseded && !reread {
                // The fast path wrote a role this pass had read: read it again now, once (a
                // role the fast path keeps writing waits for the timer, not a loop of
                // full passes).
                reread = true;
                Some(tokio::time::Instant::now())
            } else if ok {
                reread = false;
                pass_backoff.reset();
                None
            } else {
                let delay = pass_backoff.next_backoff().unwrap_or(t.interval);
                tracing::warn!(
                    retry_in_ms = delay.as_millis() as u64,
                    "pass failed; retrying after back-off"
                );
                Some(tokio::time::Instant::now() + delay)
            };
            trigger = tokio::select! {
                _ = stop.wait_for(|s| *s) => break,
                _ = ticker.tick() => Trigger::Timer,
                Some(next) = t.rx.recv() => next,
                _ = tokio::time::sleep_until(retry_at.unwrap_or_else(tokio::time::Instant::now)), if retry_at.is_some() => Trigger::Retry,
            };
            // Coalesce: whatever else arrived meanwhile is served by this one pass.
            while t.rx.try_recv().is_ok() {}
        }
    }

    /// The membership fast path, beside the full passes: at each wake-up of the directory
    /// watcher, a pass over the mappings of the groups it saw change. A change it could
    /// not place, or a fast pass that fails, asks for a full pass.
    async fn run_fast(
        &self,
        mut f: FastPath,
        policies: Arc<Mutex<Arc<PolicySet>>>,
        directory: Arc<tokio::sync::Mutex<DirectorySource>>,
        audit: Arc<tokio::sync::Mutex<AuditLog>>,
    ) {
        let mut stop = f.stop.clone();
        loop {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                Some(()) = f.wake.recv() => {}
            }
            let set = policies.lock().expect("policies").clone();
            let done = match self.focus_of(&set) {
                Some(focus) => {
                    let pass_scope = Scope::of(Some(&focus), Some(&self.writes));
                    // Boxed as `Send` here, where its borrows have one lifetime: the task
                    // that runs the fast path must be `Send` (rust-lang/rust#110338).
                    let pass: std::pin::Pin<
                        Box<dyn std::future::Future<Output = bool> + Send + '_>,
                    > = Box::pin(self.pass(
                        Trigger::Directory,
                        &set,
                        &directory,
                        &audit,
                        &f.stop,
                        pass_scope,
                    ));
                    pass.await
                }
                None => false,
            };
            if !done && !*f.stop.borrow() {
                // A full channel means a full pass is pending anyway.
                let _ = f.full.try_send(Trigger::Directory);
            }
        }
    }

    /// One pass over `pass_scope` (the whole fleet, or the mappings of a directory change).
    /// Returns whether it succeeded (a failed read or change is a failure).
    async fn pass(
        &self,
        trigger: Trigger,
        policies: &PolicySet,
        directory: &tokio::sync::Mutex<DirectorySource>,
        audit: &tokio::sync::Mutex<AuditLog>,
        stop: &watch::Receiver<bool>,
        pass_scope: Scope<'_>,
    ) -> bool {
        let started = Instant::now();
        let span = tracing::info_span!("pass", pass.trigger = ?trigger, pass.fast = !pass_scope.is_fleet());
        let result = self
            .pass_inner(trigger, policies, directory, audit, stop, pass_scope)
            .instrument(span.clone())
            .await;
        let shared = self.shared.clone();
        let m = &shared.metrics;
        m.pass_duration.observe(started.elapsed().as_secs_f64());
        self.record_api_stats(directory).await;
        let (outcome, applied, failed, error) = match &result {
            Ok((outcome, report)) => (*outcome, report.applied, report.failed, None),
            Err(e) => (PassOutcome::Failed, 0, 0, Some(format!("{e:#}"))),
        };
        m.passes
            .get_or_create(&OutcomeLabel {
                outcome: outcome.to_string(),
            })
            .inc();
        if let Some(e) = &error {
            tracing::error!(error = %e, "pass failed");
            let _ = audit.lock().await.append(&Record::Pass(PassRecord {
                actor: Actor::new(&self.caller.arn),
                trigger: Some(trigger.audit_name(!pass_scope.is_fleet()).to_string()),
                policy_revision: policies.revision.as_ref().map(|r| r.commit.clone()),
                policy_author: policies.revision.as_ref().and_then(|r| r.author.clone()),
                outcome: PassOutcome::Failed,
                applied: 0,
                failed: 0,
                skipped: 0,
                held: Vec::new(),
                problems: 0,
                error: Some(e.clone()),
            }));
        }
        pass::anchor(
            &mut *audit.lock().await,
            self.config.audit.anchor.as_ref(),
            self.fleet.read().await.hub(),
        )
        .await;
        let mut st = self.shared.status.lock().expect("status");
        let success = outcome.succeeded();
        // Readiness says the whole world was reconciled lately: a fast pass saw only the
        // roles of a membership change.
        if success && pass_scope.is_fleet() {
            st.last_success = Some(Instant::now());
            st.last_success_at = Some(now_rfc3339());
        }
        st.last_pass = Some(PassStatus {
            time: now_rfc3339(),
            trigger,
            outcome,
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

    /// The mappings a directory change touches, when the watcher could say: the
    /// RoleMappings and AccessAssignments whose group selector is one of the groups it saw
    /// change (nested groups counted; for people, a member disabled or renamed too).
    /// `None` (a full pass) when it could not.
    fn focus_of(&self, policies: &PolicySet) -> Option<BTreeSet<String>> {
        let selectors = self
            .changed
            .lock()
            .expect("changed")
            .replace(BTreeSet::new())?;
        let released: Vec<String> = self
            .releases
            .lock()
            .expect("releases")
            .keys()
            .cloned()
            .collect();
        let names: BTreeSet<String> = policies
            .role_mappings
            .iter()
            .filter(|m| m.spec.group.as_ref().is_some_and(|g| selectors.contains(g)))
            .map(|m| m.name.to_string())
            .chain(
                policies
                    .access_assignments
                    .iter()
                    .filter(|a| selectors.contains(&a.spec.group))
                    .map(|a| a.name.to_string()),
            )
            .chain(released)
            .collect();
        (!names.is_empty()).then_some(names)
    }

    /// A pass: the audit log's records read, the pass planned ([`pass::plan`]), its changes
    /// written through the guard of the roles it may write, and the books kept.
    async fn pass_inner(
        &self,
        trigger: Trigger,
        policies: &PolicySet,
        directory: &tokio::sync::Mutex<DirectorySource>,
        audit: &tokio::sync::Mutex<AuditLog>,
        stop: &watch::Receiver<bool>,
        pass_scope: Scope<'_>,
    ) -> anyhow::Result<(PassOutcome, apply::Report)> {
        let deferred = |c: &crate::plan::Change| self.deferred(c);
        let released = self.released_in(pass_scope);
        let recorded = self.recorded(audit).await;
        if pass_scope.is_fleet() && self.fleet.read().await.rediscovery_due() {
            self.fleet.write().await.rediscover(&self.caller).await;
        }
        let fleet = self.fleet.read().await;
        // A focused pass holds its roles from before it reads them until its last write.
        let _held = match pass_scope.documents() {
            Some(documents) => Some(self.writes.hold(&roles_of(policies, documents)).await),
            None => None,
        };
        let read_at = Instant::now();
        let planned = pass::plan(
            &pass::Inputs {
                config: &self.config,
                policies,
                fleet: &fleet,
                deferred: &deferred,
                released: &released,
                recorded_pins: &recorded.pins,
                recorded_baselines: &recorded.baselines,
                recorded_people: &recorded.people,
                audit_attention: recorded.attention,
                scope: pass_scope,
            },
            directory,
        )
        .await?;
        self.count_drift(&planned.plan);
        let actor = Actor::new(&self.caller.arn);
        if pass_scope.is_fleet() {
            // The groups the watcher follows: every mapping's, as the full pass found them.
            *self.requests.lock().expect("requests") = planned.requests.clone();
            self.writes
                .learn(&planned.observed, &planned.settings, read_at);
            // Writes a crash left without an outcome: what AWS shows now, before anything
            // new (the full pass: a focused one sees too little of AWS to tell).
            audit.lock().await.recover(&planned.observed, &actor)?;
        }
        let stop_now = || *stop.borrow();
        // Every write, people's included, takes the lock of what it writes (a role, or a
        // document's people): the guard wraps the one writer the pass routes through.
        let writers = planned.writers(&*fleet);
        let writer = Guarded::new(
            &writers,
            &self.writes,
            pass_scope.is_fleet().then_some(read_at),
        );
        let report = apply::apply(
            &planned.plan,
            &writer,
            audit,
            &actor,
            policies.revision.as_ref(),
            crate::apply::Control {
                trigger: Some(trigger.audit_name(!pass_scope.is_fleet())),
                ..crate::apply::Control::stop_only(&stop_now)
            },
        )
        .await?;
        let plan = &planned.plan;
        let outcome = report.outcome(plan);
        self.settle_releases(&released, &report);
        if writer.superseded() > 0 {
            self.again.store(true, Ordering::SeqCst);
        }
        // The back-offs, the mappings' states and the gauges describe the whole fleet:
        // the full pass keeps them; a focused pass saw only its mappings' roles.
        if pass_scope.is_fleet() {
            self.update_backoffs(plan, &report);
            self.update_status(policies, plan, &report);
            self.record_outcomes(&planned, &report);
        } else {
            self.count_changes(&report);
        }
        Ok((outcome, report))
    }

    /// Why a change is waiting out its back-off, if it is.
    fn deferred(&self, c: &crate::plan::Change) -> Option<String> {
        let backoffs = self.backoffs.lock().expect("backoffs");
        backoffs.get(&c.key()).filter(|b| b.waiting()).map(|b| {
            format!(
                "retrying in {}s after: {}",
                (b.next - tokio::time::Instant::now()).as_secs(),
                b.reason
            )
        })
    }

    /// What the audit log records for the pass (pins, baselines, people) and whether it
    /// needs a person's attention (shown in `/status` and the metrics too).
    async fn recorded(&self, audit: &tokio::sync::Mutex<AuditLog>) -> Recorded {
        let recorded = {
            let mut log = audit.lock().await;
            if let Some(by) = log.take_acknowledgement() {
                tracing::info!(by = %by, "audit log rotation acknowledged");
            }
            Recorded {
                attention: log.attention(),
                pins: log.pins().clone(),
                baselines: log.baselines().clone(),
                people: log.people().clone(),
            }
        };
        self.shared
            .metrics
            .audit_rotation_unacknowledged
            .set(i64::from(recorded.attention.is_some()));
        self.shared.status.lock().expect("status").audit_attention = recorded.attention.clone();
        recorded
    }
}

/// The roles (by name) of the RoleMappings in `focus`.
fn roles_of(policies: &PolicySet, focus: &BTreeSet<String>) -> BTreeSet<String> {
    policies
        .role_mappings
        .iter()
        .filter(|m| focus.contains(m.name.as_str()))
        .map(|m| m.spec.role.name.clone())
        .chain(
            policies
                .access_assignments
                .iter()
                .filter(|a| focus.contains(a.name.as_str()))
                .map(|a| crate::runtime::writes::people_key(a.name.as_str())),
        )
        .collect()
}

mod books;
mod leadership;
mod releases;

#[cfg(test)]
mod tests;
