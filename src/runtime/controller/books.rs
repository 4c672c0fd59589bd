//! The controller's books after a pass: the request counters, the changes applied and
//! failed, the managed roles and principals, the per-change back-offs, and each
//! mapping's and account's state in `/status`.

use std::collections::BTreeSet;

use crate::apply::{self, Outcome};
use crate::observed::trusted_subjects;
use crate::plan::Plan;
use crate::ports::retry::ChangeBackoff;
use crate::runtime::metrics::{AccountLabel, ActionLabel, ApiLabel, ServiceLabel, StateLabel};
use crate::runtime::pass::{self, DirectorySource};
use crate::runtime::status;
use crate::sources::policy::PolicySet;

use super::Controller;

impl Controller {
    /// The request counters the metrics take (as the difference since the last pass).
    pub(super) async fn record_api_stats(&self, directory: &tokio::sync::Mutex<DirectorySource>) {
        let m = &self.shared.metrics;
        let now = self.fleet.read().await.stats();
        let (g, d) = {
            let dir = directory.lock().await;
            (dir.graph_stats(), dir.full_read_differences())
        };
        let mut seen = self.seen.lock().expect("seen");
        for (key @ (service, op), n) in &now.requests {
            let before = seen.aws.requests.get(key).copied().unwrap_or(0);
            m.api_requests
                .get_or_create(&ApiLabel {
                    service: service.to_string(),
                    operation: op.to_string(),
                })
                .inc_by(n.saturating_sub(before));
        }
        let aws = ServiceLabel {
            service: "aws".into(),
        };
        m.api_retries
            .get_or_create(&aws)
            .inc_by(now.retries.saturating_sub(seen.aws.retries));
        m.throttled
            .get_or_create(&aws)
            .inc_by(now.throttled.saturating_sub(seen.aws.throttled));
        seen.aws = now;
        let graph = ServiceLabel {
            service: "graph".into(),
        };
        m.api_requests
            .get_or_create(&ApiLabel {
                service: "graph".into(),
                operation: "GET".into(),
            })
            .inc_by(g.0.saturating_sub(seen.graph.0));
        m.api_retries
            .get_or_create(&graph)
            .inc_by(g.1.saturating_sub(seen.graph.1));
        m.throttled
            .get_or_create(&graph)
            .inc_by(g.2.saturating_sub(seen.graph.2));
        seen.graph = g;
        m.directory_differences
            .inc_by(d.saturating_sub(seen.differences));
        seen.differences = d;
    }

    /// Drift found, by action: every change planned, applied or held.
    pub(super) fn count_drift(&self, plan: &Plan) {
        let m = &self.shared.metrics;
        for c in plan
            .changes
            .iter()
            .chain(plan.held.iter().map(|h| &h.change))
        {
            m.drift_detected
                .get_or_create(&ActionLabel {
                    action: c.action.name().to_string(),
                })
                .inc();
        }
    }

    /// Changes applied and failed, by action (every pass, fast or full).
    pub(super) fn count_changes(&self, report: &apply::Report) {
        let m = &self.shared.metrics;
        for done in &report.outcomes {
            let action = ActionLabel {
                action: done.action.clone(),
            };
            match done.outcome {
                Outcome::Ok(_) => m.changes_applied.get_or_create(&action).inc(),
                Outcome::Failed(_) => m.changes_failed.get_or_create(&action).inc(),
                Outcome::Skipped { .. } => 0,
            };
        }
    }

    /// The metrics of what a pass did: changes applied and failed by action, the managed
    /// roles, and the principals they trust once the applied changes are counted.
    pub(super) fn record_outcomes(&self, planned: &pass::Planned, report: &apply::Report) {
        let m = &self.shared.metrics;
        self.count_changes(report);
        let owned: Vec<_> = planned
            .observed
            .iam()
            .flat_map(|(_, o)| o.roles.values())
            .filter(|r| planned.settings.ownership().role(r))
            .collect();
        m.managed_roles.set(owned.len() as i64);
        let principals = owned
            .iter()
            .map(|r| trusted_subjects(&r.trust).len())
            .sum::<usize>() as i64;
        let (added, removed) = report
            .outcomes
            .iter()
            .filter(|d| matches!(d.outcome, Outcome::Ok(_)))
            .fold((0, 0), |(a, r), d| {
                (a + d.members_added, r + d.members_removed)
            });
        m.trusted_principals
            .set(principals + added as i64 - removed as i64);
    }

    /// Back-off per change: grows with each failure, forgotten on success or when the
    /// change is no longer planned.
    pub(super) fn update_backoffs(&self, plan: &Plan, report: &apply::Report) {
        let mut backoffs = self.backoffs.lock().expect("backoffs");
        for done in &report.outcomes {
            match &done.outcome {
                Outcome::Failed(f) => match backoffs.get_mut(&done.key) {
                    Some(b) => b.failed(f.to_string()),
                    None => {
                        backoffs.insert(done.key.clone(), ChangeBackoff::new(f.to_string()));
                    }
                },
                Outcome::Ok(_) => {
                    backoffs.remove(&done.key);
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
        backoffs.retain(|k, _| planned.contains(k));
    }

    /// Each mapping's state in `/status`, and the count per state in the metrics.
    pub(super) fn update_status(&self, policies: &PolicySet, plan: &Plan, report: &apply::Report) {
        let mappings = status::mapping_statuses(policies, plan, report);
        let m = &self.shared.metrics;
        for state in status::MappingState::ALL {
            let n = mappings.values().filter(|s| s.state == state).count();
            m.mappings
                .get_or_create(&StateLabel {
                    state: state.as_str().into(),
                })
                .set(n as i64);
        }
        let accounts = status::account_statuses(plan, report);
        let gone: Vec<String> = self
            .shared
            .status
            .lock()
            .expect("status")
            .accounts
            .iter()
            .filter(|old| !accounts.iter().any(|a| a.account.id == old.account.id))
            .map(|old| old.account.id.clone())
            .collect();
        for id in gone {
            m.account_reachable.remove(&AccountLabel { account: id });
        }
        for a in &accounts {
            let label = AccountLabel {
                account: a.account.id.clone(),
            };
            m.account_reachable
                .get_or_create(&label)
                .set(i64::from(a.account.unreachable.is_none()));
            m.account_changes_failed
                .get_or_create(&label)
                .inc_by(a.failed as u64);
        }
        let mut st = self.shared.status.lock().expect("status");
        st.mappings = mappings;
        st.accounts = accounts;
    }
}
