//! The writers' lease for `apply` with the S3 audit store: taken (or waited for, or
//! refused with who holds it), renewed while the apply writes, given up after.

use std::time::Duration;

use tokio::sync::{oneshot, watch};

use crate::audit::lease::{Fence, Lease};
use crate::config::{AwsConfig, S3AuditConfig};

/// The lease an `apply` holds.
pub(super) struct Leased {
    fence: Fence,
    finish: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
    _stop: watch::Sender<bool>,
}

impl Leased {
    /// Says while the lease is this apply's.
    pub(super) fn fence(&self) -> Fence {
        self.fence.clone()
    }

    /// Gives the lease up (the controller standing by takes it at once).
    pub(super) async fn end(self) {
        let _ = self.finish.send(());
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }
}

/// Takes the writers' lease, waiting up to `wait_seconds` (saying so on stderr, once per
/// holder) while another writer holds it; an error naming the holder after that.
pub(super) async fn take(
    s3: &S3AuditConfig,
    aws: &AwsConfig,
    wait_seconds: u64,
) -> anyhow::Result<Leased> {
    // A bucket whose records can be deleted is refused before the lease is written there.
    tokio::task::block_in_place(|| crate::audit::s3::S3Log::connect(s3, aws)?.check_object_lock())
        .map_err(|e| anyhow::anyhow!("{e}; nothing was changed"))?;
    let client = crate::audit::s3::client(s3, aws).await;
    let mut lease = Lease::new(client, s3, "apply");
    let (stop_tx, stop) = watch::channel(false);
    let mut told: Option<String> = None;
    lease
        .acquire(Some(Duration::from_secs(wait_seconds)), stop, |held| {
            if wait_seconds > 0 && told.as_deref() != Some(held.holder.as_str()) {
                eprintln!(
                    "waiting up to {wait_seconds}s for the writers' lease, held by {} ({}, renewed {})",
                    held.holder, held.what, held.renewed_at
                );
                told = Some(held.holder.clone());
            }
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}; nothing was changed (--wait-for-lease SECONDS waits for it)"))?;
    let fence = lease.fence();
    let (finish, finished) = oneshot::channel();
    let (task, _lost) = lease.keep(finished);
    Ok(Leased {
        fence,
        finish,
        task,
        _stop: stop_tx,
    })
}
