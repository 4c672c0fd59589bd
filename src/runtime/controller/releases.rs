//! Releases of held removals a person asked for (`trustsync release`): taken from next to
//! the audit log, recorded in it, and let through once by the next pass over the
//! document.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::apply::{self, Outcome};
use crate::audit::AuditLog;
use crate::runtime::scope::Scope;
use crate::sources::policy::PolicySet;

use super::Controller;

impl Controller {
    /// Takes the releases `trustsync release` leaves next to the audit log, every
    /// `period`: each is recorded in the audit log (who, what, why, when asked) and starts
    /// a fast pass over its document, which lets its held removals through once. A
    /// release of a document the policies do not have is recorded and dropped.
    pub(super) async fn run_releases(
        &self,
        period: Duration,
        policies: Arc<Mutex<Arc<PolicySet>>>,
        audit: Arc<tokio::sync::Mutex<AuditLog>>,
        wake: mpsc::Sender<()>,
        mut stop: watch::Receiver<bool>,
    ) {
        loop {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                _ = tokio::time::sleep(period) => {}
            }
            let taken = match self.config.audit.s3 {
                Some(_) => audit.lock().await.take_release_requests(),
                None => crate::audit::take_releases(&self.config.audit.path),
            };
            if taken.is_empty() {
                continue;
            }
            let set = policies.lock().expect("policies").clone();
            for r in taken {
                if let Err(e) = audit.lock().await.record_release(&r) {
                    tracing::error!(error = %e, mapping = %r.mapping, "a release could not be recorded in the audit log; not taken");
                    continue;
                }
                let known = set.holds_members(&r.mapping);
                if !known {
                    tracing::warn!(mapping = %r.mapping, by = %r.by, "release of a document the policies do not have; dropped");
                    continue;
                }
                tracing::info!(mapping = %r.mapping, by = %r.by, "held removals released; starting a pass over the document");
                self.releases
                    .lock()
                    .expect("releases")
                    .insert(r.mapping.clone(), r);
            }
            // A full channel means a fast pass is pending: it takes the releases too.
            let _ = wake.try_send(());
        }
    }

    /// The releases a person asked for, of the documents `pass_scope` covers.
    pub(super) fn released_in(&self, pass_scope: Scope<'_>) -> BTreeSet<String> {
        self.releases
            .lock()
            .expect("releases")
            .keys()
            .filter(|m| pass_scope.covers(m))
            .cloned()
            .collect()
    }

    /// A release holds for one pass that applied the document's changes: one whose held
    /// removals failed, or were skipped (shutting down, an earlier change to the resource
    /// failed, or the fast path wrote the resource after this pass read it), keeps it for
    /// the next.
    pub(super) fn settle_releases(&self, released: &BTreeSet<String>, report: &apply::Report) {
        let failed: BTreeSet<&str> = report
            .outcomes
            .iter()
            .filter(|o| matches!(o.outcome, Outcome::Failed(_) | Outcome::Skipped { .. }))
            .filter_map(|o| o.mapping.as_deref())
            .collect();
        let mut releases = self.releases.lock().expect("releases");
        for m in released {
            if !failed.contains(m.as_str()) {
                releases.remove(m);
            }
        }
    }
}
