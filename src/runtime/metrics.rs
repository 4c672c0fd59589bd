//! Prometheus metrics of the controller, served at `/metrics` in the text format.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// `outcome` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// `success`, `held`, `failed`, `interrupted`.
    pub outcome: String,
}

/// `action` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabel {
    /// The change's action name.
    pub action: String,
}

/// `service` and `operation` labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiLabel {
    /// `iam`, `lambda`, `sts`, `graph`.
    pub service: String,
    /// The API operation.
    pub operation: String,
}

/// `service` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServiceLabel {
    /// `aws` or `graph`.
    pub service: String,
}

/// `state` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    /// Mapping state.
    pub state: String,
}

/// `account` label: one value per account in scope, so as many as the config's targets
/// or the organization's selected accounts (never crossed with operations or actions).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AccountLabel {
    /// The 12-digit account id.
    pub account: String,
}

/// `feed` label: `groups` or `users`, the directory's two delta feeds.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FeedLabel {
    /// `groups` or `users`.
    pub feed: String,
}

/// Every metric the controller exports.
#[derive(Clone)]
pub struct Metrics {
    /// Passes by outcome.
    pub passes: Family<OutcomeLabel, Counter>,
    pub pass_duration: Histogram,
    /// Changes applied by action.
    pub changes_applied: Family<ActionLabel, Counter>,
    /// Changes that failed, by action.
    pub changes_failed: Family<ActionLabel, Counter>,
    /// Changes planned (drift found), by action.
    pub drift_detected: Family<ActionLabel, Counter>,
    /// API requests by service and operation.
    pub api_requests: Family<ApiLabel, Counter>,
    /// Retries after transient errors, by service.
    pub api_retries: Family<ServiceLabel, Counter>,
    /// Throttling answers, by service.
    pub throttled: Family<ServiceLabel, Counter>,
    /// Seconds since the last successful pass (set at scrape time).
    pub since_success: Gauge<f64, AtomicU64>,
    /// Owned roles observed in the last pass.
    pub managed_roles: Gauge,
    /// Principals trusted by owned roles after the last pass.
    pub trusted_principals: Gauge,
    /// Mappings per state.
    pub mappings: Family<StateLabel, Gauge>,
    /// Policy reloads that failed validation.
    pub policy_errors: Counter,
    /// Mapped groups whose delta-cached membership differed from a full read.
    pub directory_differences: Counter,
    /// 1 when the last pass could read the account, else 0.
    pub account_reachable: Family<AccountLabel, Gauge>,
    /// Changes that failed, by account.
    pub account_changes_failed: Family<AccountLabel, Counter>,
    /// 1 while the audit log's current segment began with a rotation no person has
    /// acknowledged.
    pub audit_rotation_unacknowledged: Gauge,
    /// Graph change notifications received, by result (`poll`: a poll started, `ignored`:
    /// not our subscription's `clientState`).
    pub graph_notifications: Family<OutcomeLabel, Counter>,
    /// 1 while the controller holds a live Graph change-notification subscription.
    pub graph_subscription_active: Gauge,
    /// 1 while a directory delta feed answers, 0 while its polls fail, by feed.
    pub directory_feed_up: Family<FeedLabel, Gauge>,
    /// Failed polls of a directory delta feed, by feed.
    pub directory_feed_failures: Family<FeedLabel, Counter>,
    /// 1 while this replica may write (it holds the writers' lease of the S3 audit store,
    /// or the file store's lock), 0 while it stands by.
    pub leader: Gauge,
}

impl Metrics {
    /// Creates the metrics and registers them.
    pub fn register(registry: &mut Registry) -> Metrics {
        let m = Metrics {
            passes: Default::default(),
            pass_duration: Histogram::new(exponential_buckets(0.05, 2.0, 12)),
            changes_applied: Default::default(),
            changes_failed: Default::default(),
            drift_detected: Default::default(),
            api_requests: Default::default(),
            api_retries: Default::default(),
            throttled: Default::default(),
            since_success: Default::default(),
            audit_rotation_unacknowledged: Default::default(),
            managed_roles: Default::default(),
            trusted_principals: Default::default(),
            mappings: Default::default(),
            policy_errors: Default::default(),
            directory_differences: Default::default(),
            account_reachable: Default::default(),
            account_changes_failed: Default::default(),
            graph_notifications: Default::default(),
            graph_subscription_active: Default::default(),
            directory_feed_up: Default::default(),
            directory_feed_failures: Default::default(),
            leader: Default::default(),
        };
        let r = registry.sub_registry_with_prefix("trustsync");
        m.register_passes(r);
        m.register_requests(r);
        m.register_state(r);
        m.register_edges(r);
        m
    }

    /// Registers: Passes and the changes they made.
    fn register_passes(&self, r: &mut Registry) {
        r.register("passes", "Reconcile passes by outcome", self.passes.clone());
        r.register(
            "pass_duration_seconds",
            "Duration of reconcile passes",
            self.pass_duration.clone(),
        );
        r.register(
            "changes_applied",
            "AWS changes applied, by action",
            self.changes_applied.clone(),
        );
        r.register(
            "changes_failed",
            "AWS changes that failed, by action",
            self.changes_failed.clone(),
        );
        r.register(
            "drift_detected",
            "Changes planned because AWS differed from the policies, by action",
            self.drift_detected.clone(),
        );
    }

    /// Registers: Requests to AWS and Graph, and how long since a pass succeeded.
    fn register_requests(&self, r: &mut Registry) {
        r.register(
            "api_requests",
            "Requests sent to AWS and Microsoft Graph, retries included",
            self.api_requests.clone(),
        );
        r.register(
            "api_retries",
            "Retries after throttling, 5xx or timeouts",
            self.api_retries.clone(),
        );
        r.register(
            "api_throttled",
            "Throttling answers received",
            self.throttled.clone(),
        );
        r.register(
            "seconds_since_last_success",
            "Seconds since the last successful pass",
            self.since_success.clone(),
        );
        r.register(
            "leader",
            "1 while this replica writes (holds the S3 audit store's writers' lease, or the audit file), 0 while it stands by",
            self.leader.clone(),
        );
        r.register(
        "audit_rotation_unacknowledged",
        "1 while the audit log began a new segment (the previous could not be extended) and no person has acknowledged it",
        self.audit_rotation_unacknowledged.clone(),
    );
    }

    /// Registers: What the controller manages, and the policies' and directory's health.
    fn register_state(&self, r: &mut Registry) {
        r.register(
            "managed_roles",
            "Roles owned by this controller",
            self.managed_roles.clone(),
        );
        r.register(
            "trusted_principals",
            "Principals trusted by owned roles",
            self.trusted_principals.clone(),
        );
        r.register("mappings", "Mappings by state", self.mappings.clone());
        r.register(
            "policy_reload_errors",
            "Policy reloads that failed validation",
            self.policy_errors.clone(),
        );
        r.register(
        "directory_full_read_differences",
        "Mapped groups whose delta-cached membership differed from a periodic full read (corrected)",
        self.directory_differences.clone(),
    );
    }

    /// Registers: Accounts, Graph notifications and the directory feeds.
    fn register_edges(&self, r: &mut Registry) {
        r.register(
            "account_reachable",
            "1 when the last pass could reach and read the AWS account",
            self.account_reachable.clone(),
        );
        r.register(
            "account_changes_failed",
            "AWS changes that failed, by account",
            self.account_changes_failed.clone(),
        );
        r.register(
            "graph_notifications",
            "Microsoft Graph change notifications received, by outcome (poll, ignored)",
            self.graph_notifications.clone(),
        );
        r.register(
            "graph_subscription_active",
            "1 while the controller holds a live Microsoft Graph change-notification subscription",
            self.graph_subscription_active.clone(),
        );
        r.register(
        "directory_feed_up",
        "1 while a Microsoft Graph delta feed (groups, users) answers its polls, 0 while they fail",
        self.directory_feed_up.clone(),
    );
        r.register(
            "directory_feed_failures",
            "Failed polls of a Microsoft Graph delta feed (groups, users)",
            self.directory_feed_failures.clone(),
        );
    }
}
