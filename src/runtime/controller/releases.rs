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
        let mut requests = Requests::default();
        loop {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                _ = tokio::time::sleep(period) => {}
            }
            let taken = match self.config.audit.s3 {
                Some(_) => requests.releases(&self.config, &audit).await,
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

/// With the S3 store: the requests people leave in the bucket (`release`, `audit
/// acknowledge`), listed by a connection of their own and never under the log's lock, so
/// that a slow or unreachable bucket never keeps a pass from the log.
#[derive(Default)]
struct Requests {
    reader: Option<crate::audit::s3::S3Log>,
    /// Requests that are not one, skipped once.
    skipped: BTreeSet<String>,
}

impl Requests {
    fn reader(&mut self, config: &crate::config::Config) -> Option<&crate::audit::s3::S3Log> {
        if self.reader.is_none() {
            let s3 = config.audit.s3.as_ref()?;
            match tokio::task::block_in_place(|| crate::audit::s3::S3Log::connect(s3, &config.aws))
            {
                Ok(r) => self.reader = Some(r),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the requests in the audit bucket yet")
                }
            }
        }
        self.reader.as_ref()
    }

    /// New release requests; acknowledgements found are recorded on the way.
    async fn releases(
        &mut self,
        config: &crate::config::Config,
        audit: &tokio::sync::Mutex<AuditLog>,
    ) -> Vec<crate::audit::Released> {
        let mut taken = audit.lock().await.taken_requests().clone();
        taken.extend(self.skipped.iter().cloned());
        let Some(reader) = self.reader(config) else {
            return Vec::new();
        };
        let read = tokio::task::block_in_place(|| {
            let acks = reader.new_requests("acknowledge", &taken)?;
            let releases = reader.new_requests("release", &taken)?;
            Ok::<_, String>((acks, releases))
        });
        let (acks, releases) = match read {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the requests in the audit bucket; tried again at the next poll");
                return Vec::new();
            }
        };
        if !acks.is_empty() {
            let mut log = audit.lock().await;
            for (key, body) in &acks {
                if let Some(by) = log.acknowledge_request(key, body) {
                    tracing::info!(by = %by, "audit log rotation acknowledged");
                }
            }
        }
        crate::audit::releases_of(releases, &mut self.skipped)
    }
}
