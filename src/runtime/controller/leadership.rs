//! Leadership with the S3 store (`audit.s3`): replicas contend for the writers' lease
//! ([`crate::audit::lease`]); the one holding it opens the log and runs passes, the others
//! stand by with their directory caches warm (the watchers run from the start) and take
//! over when the lease is not renewed for its duration. A leader that loses the lease has
//! stopped writing by then (the fence), stops, and exits non-zero so that it comes back as
//! a standby.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{oneshot, watch};

use crate::audit::lease::Lease;
use crate::audit::s3::S3Log;
use crate::audit::AuditLog;
use crate::config::Config;
use crate::runtime::status::{Leadership, Shared};

/// The lease this replica holds while it leads.
pub(super) struct Leading {
    finish: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
    lost: Arc<Mutex<Option<String>>>,
}

impl Leading {
    /// Gives the lease up once the passes have ended; why it was lost, if it was.
    pub(super) async fn end(self) -> Option<String> {
        let _ = self.finish.send(());
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
        self.lost.lock().expect("lost").clone()
    }
}

fn show(shared: &Shared, role: &'static str, this: &str, leader: Option<String>) {
    shared.metrics.leader.set(i64::from(role == "leader"));
    shared.status.lock().expect("status").leadership = Some(Leadership {
        role,
        this: this.to_string(),
        leader,
    });
}

/// The log read while standing by, every [`WARM_EVERY`], so that taking over reads only
/// what the leader appended since.
struct Warm {
    store: Arc<tokio::sync::Mutex<Option<S3Log>>>,
    done: watch::Sender<bool>,
}

const WARM_EVERY: Duration = Duration::from_secs(5);

impl Warm {
    /// Stops the reading and hands the store over.
    async fn take(self) -> Option<S3Log> {
        let _ = self.done.send(true);
        self.store.lock().await.take()
    }
}

fn keep_warm(config: &Config, stop: watch::Receiver<bool>) -> anyhow::Result<Warm> {
    let s3 = config.audit.s3.clone().expect("the S3 store");
    let aws = config.aws.clone();
    // A bucket whose records can be deleted is refused before the lease is written there.
    let store = tokio::task::block_in_place(|| {
        let store = S3Log::connect(&s3, &aws)?;
        store.check_object_lock()?;
        Ok::<_, String>(store)
    })
    .map_err(|e| anyhow::anyhow!(e))?;
    let store = Arc::new(tokio::sync::Mutex::new(Some(store)));
    let (done, mut done_rx) = watch::channel(false);
    let path = config.audit.path.clone();
    let held = store.clone();
    let mut stop = stop;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = done_rx.wait_for(|d| *d) => return,
                _ = stop.wait_for(|s| *s) => return,
                _ = tokio::time::sleep(WARM_EVERY) => {}
            }
            let mut guard = held.lock().await;
            let Some(store) = guard.as_mut() else { return };
            // The working copy is this replica's own until it leads.
            if let Err(e) = tokio::task::block_in_place(|| store.pull(&path)) {
                tracing::warn!(error = %e, "a standby could not read the audit log ahead");
            }
        }
    });
    Ok(Warm { store, done })
}

/// Stands by until the writers' lease is this replica's, then opens the log (fenced by
/// the lease) for writing. `None` when `stop` came first. When the lease is lost later,
/// `stop_tx` stops the controller.
pub(super) async fn lead(
    config: &Config,
    shared: &Arc<Shared>,
    stop: watch::Receiver<bool>,
    stop_tx: Arc<watch::Sender<bool>>,
) -> anyhow::Result<Option<(AuditLog, Leading)>> {
    let s3 = config
        .audit
        .s3
        .as_ref()
        .expect("leadership only with the S3 store");
    let client = crate::audit::s3::client(s3, &config.aws).await;
    let mut lease = Lease::new(client, s3, "run");
    let warm = keep_warm(config, stop.clone())?;
    let me = lease.holder().to_string();
    show(shared, "standby", &me, None);
    tracing::info!(holder = %me, lease = %lease.location(), "standing by for the writers' lease");
    let mut last: Option<String> = None;
    let taken = lease
        .acquire(None, stop.clone(), |held| {
            if last.as_deref() != Some(held.holder.as_str()) {
                tracing::info!(leader = %held.holder, what = %held.what, "the writers' lease is held: standing by");
                last = Some(held.holder.clone());
            }
            show(shared, "standby", &me, Some(held.holder.clone()));
        })
        .await;
    if let Err(e) = taken {
        if *stop.borrow() {
            return Ok(None);
        }
        return Err(anyhow::anyhow!(e));
    }
    tracing::info!(holder = %me, "took the writers' lease: leading");
    let fence = lease.fence();
    let (finish, finished) = oneshot::channel();
    let (task, mut lost_rx) = lease.keep(finished);
    let store = warm.take().await;
    let opened = tokio::task::block_in_place(|| {
        crate::audit::open_configured_store(&config.audit, &config.aws, Some(fence), store)
    });
    let mut audit = match opened {
        Ok(audit) => audit,
        Err(e) => {
            let _ = finish.send(());
            let _ = task.await;
            return Err(e);
        }
    };
    audit.mirror_to_stdout();
    show(shared, "leader", &me, Some(me.clone()));
    let lost = Arc::new(Mutex::new(None));
    tokio::spawn({
        let (lost, shared, me) = (lost.clone(), shared.clone(), me.clone());
        async move {
            while lost_rx.changed().await.is_ok() {
                let why = lost_rx.borrow().clone();
                if let Some(why) = why {
                    show(&shared, "stepping-down", &me, None);
                    *lost.lock().expect("lost") = Some(why);
                    let _ = stop_tx.send(true);
                    return;
                }
            }
        }
    });
    Ok(Some((audit, Leading { finish, task, lost })))
}
