//! Leadership with the S3 store (`audit.s3`): replicas contend for the writers' lease
//! ([`crate::audit::lease`]); the one holding it opens the log and runs passes, the others
//! stand by with their directory caches warm (the watchers run from the start) and take
//! over when the lease is not renewed for its duration. A leader that loses the lease has
//! stopped writing by then (the fence), stops, and exits non-zero so that it comes back as
//! a standby.
//!
//! A standby keeps what the membership fast path needs warm, so that a departure seen
//! while standing by is revoked by the new leader's first act, a focused pass, rather
//! than by its first full pass (whose reads of the fleet grow with it): the directory is
//! connected and its delta feed followed, and the groups the mappings use (what a full
//! pass tells the watcher) are worked out from the policies and the pins the log records.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{oneshot, watch};

use crate::audit::lease::Lease;
use crate::audit::s3::S3Log;
use crate::audit::AuditLog;
use crate::config::Config;
use crate::runtime::pass::DirectorySource;
use crate::runtime::status::{Leadership, Shared};
use crate::sources::directory::GroupRequest;
use crate::sources::policy::PolicySet;

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
    let mut st = shared.status.lock().expect("status");
    // A standby is warming until its warm loop says otherwise; a leader has read it all.
    let warming = match (role, &st.leadership) {
        ("standby", Some(l)) => l.warming,
        ("standby", None) => Some(LOG),
        _ => None,
    };
    st.leadership = Some(Leadership {
        role,
        this: this.to_string(),
        leader,
        warming,
    });
}

/// What a standby reads before it is ready to take over.
const LOG: &str = "the audit log";
const DIRECTORY: &str = "the directory";

/// Says what a standby still reads (`None`: it is warm).
fn warming(shared: &Shared, what: Option<&'static str>) {
    if let Some(l) = shared.status.lock().expect("status").leadership.as_mut() {
        if l.role == "standby" {
            l.warming = what;
        }
    }
}

/// What the controller's watchers share with a standby: the policies as loaded, and
/// where the directory watcher finds the groups that matter and places what changed.
#[derive(Clone)]
pub(super) struct Standby {
    pub policies: Arc<Mutex<Arc<PolicySet>>>,
    pub directory: Arc<tokio::sync::Mutex<DirectorySource>>,
    pub requests: Arc<Mutex<Vec<GroupRequest>>>,
    /// Raised while standing by (see [`crate::runtime::watch::DirectoryWatch`]); lowered
    /// once the lease is this replica's.
    pub standing_by: Arc<AtomicBool>,
}

/// The group requests a full pass would make, as far as a standby can tell without
/// reading AWS: every mapping's, with the pins the log records (by account, as a full
/// pass pins each account's roles), and unpinned; people's groups. A request too many
/// only wakes a focused pass that reads and finds nothing to do; what the watcher cannot
/// place waits for the new leader's first full pass, which reads everything.
pub(super) fn standby_requests(
    policies: &PolicySet,
    recorded_pins: &BTreeMap<String, String>,
) -> Vec<GroupRequest> {
    let mut by_account: BTreeMap<&str, crate::desired::Pins> = BTreeMap::new();
    for (arn, pin) in recorded_pins {
        let Some(parts) = crate::model::arn::ArnParts::parse(arn) else {
            continue;
        };
        if let Some(role) = parts.role_name() {
            by_account
                .entry(parts.account)
                .or_default()
                .insert(role.to_ascii_lowercase(), pin.clone());
        }
    }
    let mut out: BTreeSet<GroupRequest> =
        crate::desired::group_requests(policies, &Default::default())
            .into_iter()
            .collect();
    for pins in by_account.values() {
        out.extend(crate::desired::group_requests(policies, pins));
    }
    out.extend(
        policies
            .access_assignments
            .iter()
            .map(|a| crate::runtime::people::group_request(&a.spec)),
    );
    out.into_iter().collect()
}

impl Standby {
    /// Brings what the fast path needs up to date: the requests (of the policies as now
    /// loaded, with the log's pins), the directory connected and followed once a group is
    /// mapped.
    async fn refresh(&self, config: &Config, pins: &BTreeMap<String, String>) {
        let policies = self.policies.lock().expect("policies").clone();
        let requests = standby_requests(&policies, pins);
        *self.requests.lock().expect("requests") = requests.clone();
        if let Err(e) = DirectorySource::connect_for(&self.directory, &requests).await {
            tracing::warn!(error = %e, "a standby cannot reach the directory yet; tried again");
            return;
        }
        if crate::runtime::scope::Scope::Fleet.plans_people(&policies, config) {
            DirectorySource::track_users(&self.directory).await;
        }
    }

    /// Whether the directory is as the fast path needs it: nothing mapped, a tenant
    /// file, or the groups feed read once.
    fn directory_read(&self, shared: &Shared) -> bool {
        let requests_empty = self.requests.lock().expect("requests").is_empty();
        let delta = matches!(
            self.directory.try_lock().as_deref(),
            Ok(DirectorySource::Delta { .. }) | Err(_)
        );
        requests_empty
            || !delta
            || shared
                .status
                .lock()
                .expect("status")
                .directory_feeds
                .get("groups")
                .is_some_and(|f| f.last_success_at.is_some())
    }
}

/// The log read while standing by, every [`WARM_EVERY`], so that taking over reads only
/// what the leader appended since.
struct Warm {
    store: Arc<tokio::sync::Mutex<Option<S3Log>>>,
    done: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

const WARM_EVERY: Duration = Duration::from_secs(5);

/// How often a standby reads the pins again from a log that moved.
const PINS_EVERY: Duration = Duration::from_secs(30);

impl Warm {
    /// Stops the reading (waiting for a round under way, so that nothing it does lands
    /// after this replica leads) and hands the store over.
    async fn take(self) -> Option<S3Log> {
        let _ = self.done.send(true);
        let _ = self.task.await;
        self.store.lock().await.take()
    }
}

fn keep_warm(
    config: &Config,
    (standby, shared): (Standby, Arc<Shared>),
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Warm> {
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
    let config = config.clone();
    let held = store.clone();
    let mut stop = stop;
    let task = tokio::spawn(async move {
        // Where the log ended when its pins were last read: they are read again when it
        // moved, at most every PINS_EVERY (the whole working copy is verified for them;
        // until a pin written meanwhile is read, its group is followed by name).
        let mut last: Option<((u32, u64), std::time::Instant)> = None;
        let mut pins = BTreeMap::new();
        // The directory first: its feed is read beside the log from the first round on.
        standby.refresh(&config, &pins).await;
        loop {
            let pulled = {
                let mut guard = held.lock().await;
                let Some(store) = guard.as_mut() else { return };
                // The working copy is this replica's own until it leads.
                tokio::task::block_in_place(|| store.pull(&config.audit.path))
            };
            match pulled {
                Ok(p)
                    if last.is_none_or(|(at, when)| {
                        at != (p.segment, p.next) && when.elapsed() >= PINS_EVERY
                    }) =>
                {
                    last = Some(((p.segment, p.next), std::time::Instant::now()));
                    pins =
                        tokio::task::block_in_place(|| crate::audit::recorded(&config.audit).pins);
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "a standby could not read the audit log ahead");
                }
            }
            let read = last.is_some();
            // The policies as now loaded, with the pins just read.
            standby.refresh(&config, &pins).await;
            let now = match (read, standby.directory_read(&shared)) {
                (false, _) => Some(LOG),
                (true, false) => Some(DIRECTORY),
                (true, true) => None,
            };
            warming(&shared, now);
            tokio::select! {
                _ = done_rx.wait_for(|d| *d) => return,
                _ = stop.wait_for(|s| *s) => return,
                _ = tokio::time::sleep(WARM_EVERY) => {}
            }
        }
    });
    Ok(Warm { store, done, task })
}

/// Stands by until the writers' lease is this replica's, then opens the log (fenced by
/// the lease) for writing. `None` when `stop` came first. When the lease is lost later,
/// `stop_tx` stops the controller.
pub(super) async fn lead(
    config: &Config,
    shared: &Arc<Shared>,
    standby: Standby,
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
    let warm = keep_warm(config, (standby.clone(), shared.clone()), stop.clone())?;
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
    // From here a change the watcher cannot place asks for a full pass again (the first
    // pass, a full one, reads the directory after this).
    standby.standing_by.store(false, Ordering::SeqCst);
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
