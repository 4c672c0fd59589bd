//! What the controller shows of itself: `/status` (the last pass, the policy set, each
//! mapping's state and why), `/readyz` and the metrics, all kept in [`Shared`].
//!
//! [`mapping_statuses`] is pure: a plan and the outcomes of applying it in, each mapping's
//! state out.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::apply::{self, Outcome};
use crate::audit::now_rfc3339;
pub use crate::model::call::PassOutcome;
use crate::plan::{AccountPlan, HoldKind, Plan};
use crate::runtime::metrics::Metrics;
use crate::sources::policy::PolicySet;

/// Why a pass was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Trigger {
    /// The first pass after start.
    Startup,
    Timer,
    /// A directory change to a group a mapping uses.
    Directory,
    /// The policy files changed.
    Policy,
    /// A retry after a failed pass.
    Retry,
}

impl Trigger {
    /// The name in a pass's audit line: `startup`, `timer`, `directory`, `policy`, `retry`,
    /// or `fast-path` for the membership fast path (which a directory change starts).
    pub fn audit_name(self, fast: bool) -> &'static str {
        match (fast, self) {
            (true, _) => "fast-path",
            (false, Trigger::Startup) => "startup",
            (false, Trigger::Timer) => "timer",
            (false, Trigger::Directory) => "directory",
            (false, Trigger::Policy) => "policy",
            (false, Trigger::Retry) => "retry",
        }
    }
}

/// A mapping's state in `/status`, from best to worst (a worse state wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
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

impl MappingState {
    /// Every state, best first.
    pub const ALL: [MappingState; 4] = [
        MappingState::Ready,
        MappingState::Drifted,
        MappingState::Error,
        MappingState::Blocked,
    ];

    /// Its name, as `/status` and the metric label spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            MappingState::Ready => "Ready",
            MappingState::Drifted => "Drifted",
            MappingState::Error => "Error",
            MappingState::Blocked => "Blocked",
        }
    }
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
    /// Live sessions its role denies: principals that left, until their sessions expire.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub session_denials: Vec<crate::plan::SessionDenial>,
}

/// The last pass in `/status`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PassStatus {
    /// When it ended.
    pub time: String,
    /// What started it.
    pub trigger: Trigger,
    /// How it ended.
    pub outcome: PassOutcome,
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
    pub last_pass: Option<PassStatus>,
    /// When the last successful pass ended.
    pub last_success_at: Option<String>,
    /// The running policy set.
    pub policy: PolicyStatus,
    /// Each mapping.
    pub mappings: BTreeMap<String, MappingStatus>,
    /// Each AWS account, as the last pass found it.
    pub accounts: Vec<AccountStatus>,
    /// What start-up is still waiting for (AWS unreachable), before the first pass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting_for: Option<String>,
    /// Requests to AWS or Graph without an answer for [`STALLED`] or longer, the longest
    /// first: an endpoint that accepts connections and never answers shows here.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub waiting_on: Vec<crate::model::call::Waiting>,
    /// What the audit log needs from a person: the rotation its segment began with, until
    /// acknowledged (`trustsync audit acknowledge`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit_attention: Option<String>,
    /// The directory's delta feeds (`groups`, and `users` once people are mapped), each
    /// on its own: one failing never stops the other.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub directory_feeds: BTreeMap<&'static str, FeedStatus>,
    /// With the S3 store: whether this replica leads or stands by, and who leads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leadership: Option<Leadership>,
    #[serde(skip)]
    pub(crate) last_success: Option<Instant>,
}

/// This replica's part in the writers' lease (`/status`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Leadership {
    /// `leader`, `standby` or `stepping-down`.
    pub role: &'static str,
    /// This replica's name in the lease.
    pub this: String,
    /// Who holds the lease, as last seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    /// A standby still reading what taking over needs (the audit log, the directory):
    /// not ready until it has (`/readyz` 503), though it takes the lease if it falls free.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warming: Option<&'static str>,
}

/// One directory delta feed in `/status`.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FeedStatus {
    /// When a poll last answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_success_at: Option<String>,
    /// Since when its polls have failed (absent while they answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<String>,
    /// Polls failed in a row.
    pub consecutive_failures: u64,
    /// The last poll's error, while failing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip)]
    pub(crate) failing_for: Option<Instant>,
}

impl Shared {
    /// Records how a poll of a directory feed (`groups`, `users`) went, in `/status` and
    /// the metrics; returns true for the first failure of a run of them.
    pub(crate) fn feed_polled(&self, feed: &'static str, error: Option<String>) -> bool {
        let label = crate::runtime::metrics::FeedLabel { feed: feed.into() };
        let mut st = self.status.lock().expect("status");
        let f = st.directory_feeds.entry(feed).or_default();
        match error {
            None => {
                self.metrics.directory_feed_up.get_or_create(&label).set(1);
                f.last_success_at = Some(now_rfc3339());
                f.failing_since = None;
                f.failing_for = None;
                f.consecutive_failures = 0;
                f.error = None;
                false
            }
            Some(e) => {
                self.metrics.directory_feed_up.get_or_create(&label).set(0);
                self.metrics
                    .directory_feed_failures
                    .get_or_create(&label)
                    .inc();
                let first = f.failing_for.is_none();
                if first {
                    f.failing_since = Some(now_rfc3339());
                    f.failing_for = Some(Instant::now());
                }
                f.consecutive_failures += 1;
                f.error = Some(e);
                first
            }
        }
    }

    /// The feeds failing now, in words, for `/readyz`; and whether one has failed for
    /// longer than `age` (then the controller is not ready: a departure it only hears of
    /// through that feed waits for the next full pass).
    pub(crate) fn failing_feeds(&self, age: Duration) -> (Vec<String>, bool) {
        let st = self.status.lock().expect("status");
        let mut too_long = false;
        let lines = st
            .directory_feeds
            .iter()
            .filter_map(|(name, f)| {
                let t = f.failing_for?;
                too_long |= t.elapsed() > age;
                Some(format!(
                    "Graph {name} delta feed failing for {}s ({} polls): {}",
                    t.elapsed().as_secs(),
                    f.consecutive_failures,
                    f.error.as_deref().unwrap_or("")
                ))
            })
            .collect();
        (lines, too_long)
    }
}

/// One AWS account as the last pass found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountStatus {
    /// The account, its regions, and why it could not be read, as the plan said.
    #[serde(flatten)]
    pub account: AccountPlan,
    /// Changes applied in it.
    pub applied: usize,
    /// Changes that failed in it.
    pub failed: usize,
    /// Changes held in it.
    pub held: usize,
}

/// Each account of the pass: reachable or why not, and what was done in it.
pub fn account_statuses(plan: &Plan, report: &apply::Report) -> Vec<AccountStatus> {
    plan.accounts
        .iter()
        .map(|a| {
            let outcomes = report
                .outcomes
                .iter()
                .filter(|o| o.account.as_deref() == Some(a.id.as_str()));
            let (mut applied, mut failed) = (0, 0);
            for o in outcomes {
                match o.outcome {
                    apply::Outcome::Ok(_) => applied += 1,
                    apply::Outcome::Failed(_) => failed += 1,
                    apply::Outcome::Skipped { .. } => {}
                }
            }
            AccountStatus {
                account: a.clone(),
                applied,
                failed,
                held: plan
                    .held
                    .iter()
                    .filter(|h| h.change.in_account(&a.id))
                    .count(),
            }
        })
        .collect()
}

/// How long a request goes unanswered before `/readyz` and `/status` name it.
pub const STALLED: Duration = Duration::from_secs(3);

/// What the controller loop, the watchers and the HTTP handlers share.
pub struct Shared {
    pub(crate) status: Mutex<StatusDoc>,
    pub(crate) metrics: Metrics,
    pub(crate) registry: prometheus_client::registry::Registry,
    /// `/readyz` fails once the last successful pass is older than this.
    pub(crate) ready_max_age: Duration,
    /// Requests to AWS and Graph under way, for `/readyz` and `/status`.
    pub(crate) pending: crate::model::call::Pending,
    /// Graph change notifications (off unless configured).
    pub(crate) inbox: crate::runtime::inbox::Inbox,
}

impl Shared {
    /// Status and metrics for a controller running `policies` from `policy_dir`.
    pub fn new(policy_dir: PathBuf, policies: &PolicySet, ready_max_age: Duration) -> Shared {
        let mut registry = prometheus_client::registry::Registry::default();
        let metrics = Metrics::register(&mut registry);
        Shared {
            status: Mutex::new(StatusDoc {
                started_at: now_rfc3339(),
                policy: PolicyStatus {
                    directory: policy_dir,
                    revision: policies.revision.as_ref().map(|r| r.commit.clone()),
                    documents: policies.len(),
                    error: None,
                },
                ..StatusDoc::default()
            }),
            metrics,
            registry,
            ready_max_age,
            pending: Default::default(),
            inbox: crate::runtime::inbox::Inbox::new(false),
        }
    }
}

/// Each document's state after a pass: ready unless a problem, a held change or a failed
/// (or, when interrupted, an untried) change says otherwise; the worst state wins. Changes
/// that serve no mapping (orphans) belong to none.
pub fn mapping_statuses(
    policies: &PolicySet,
    plan: &Plan,
    report: &apply::Report,
) -> BTreeMap<String, MappingStatus> {
    let mut mappings = all_ready(policies);
    for d in &plan.session_denials {
        if let Some(s) = mappings.get_mut(d.mapping.as_str()) {
            s.session_denials.push(d.clone());
        }
    }
    let mut set = |name: &str, state: MappingState, reason: String| {
        if let Some(s) = mappings.get_mut(name) {
            if state >= s.state {
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
    // A change held only because another is says nothing new: the primary hold speaks.
    let held = plan
        .held
        .iter()
        .filter(|h| h.held.kind != HoldKind::DependsOnHeld);
    let dependents = plan
        .held
        .iter()
        .filter(|h| h.held.kind == HoldKind::DependsOnHeld);
    for h in dependents.chain(held) {
        let Some(key) = &h.change.mapping else {
            continue;
        };
        let state = if h.held.kind == HoldKind::Backoff {
            MappingState::Drifted
        } else {
            MappingState::Blocked
        };
        set(
            key,
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
    for done in &report.outcomes {
        let Some(key) = &done.mapping else {
            continue;
        };
        match &done.outcome {
            Outcome::Failed(f) => set(
                key,
                MappingState::Error,
                format!("{} failed: {f}", done.action),
            ),
            Outcome::Skipped { reason } if report.interrupted => {
                set(key, MappingState::Drifted, reason.clone());
            }
            _ => {}
        }
    }
    mappings
}

/// Every document of the policy set, ready and in sync.
fn all_ready(policies: &PolicySet) -> BTreeMap<String, MappingStatus> {
    let time = now_rfc3339();
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
        )
        .chain(
            policies
                .access_assignments
                .iter()
                .map(|a| (&a.name, "AccessAssignment")),
        );
    kinds
        .map(|(name, kind)| {
            let status = MappingStatus {
                kind: kind.into(),
                state: MappingState::Ready,
                reason: "in sync".into(),
                last_pass: time.clone(),
                session_denials: Vec::new(),
            };
            (name.clone(), status)
        })
        .collect()
}
