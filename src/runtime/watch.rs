//! What starts a pass besides the timer: a Graph delta poll (or a changed tenant file)
//! that touches a group a mapping uses (it wakes the membership fast path, which asks for
//! a full pass when the change cannot be placed), a change of the policy files, and the
//! signals that stop the controller. Each watcher re-reads and compares; none acts on what
//! an event says changed. Wake-ups and triggers go through bounded channels: a full one
//! means a pass is pending.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::adapters::entra::DeltaCache;
use crate::runtime::pass::DirectorySource;
use crate::runtime::status::{PolicyStatus, Shared, Trigger};
use crate::sources::directory::GroupRequest;
use crate::sources::policy::{self, PolicySet};

pub(crate) async fn signals(stop: &watch::Sender<bool>) {
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

/// The groups (by the selector their mappings name) a directory change touched since the
/// last pass, for the membership fast path; `None` when the watcher could not place the
/// change (a full resync, a changed tenant file): the next pass is a full one.
pub type Changed = Arc<Mutex<Option<BTreeSet<crate::sources::policy::GroupSelector>>>>;

/// The selectors of the requests whose group, or a group nested in it, is among `changed`.
fn touched(
    cache: &DeltaCache,
    requests: &[GroupRequest],
    changed: &BTreeSet<String>,
) -> BTreeSet<crate::sources::policy::GroupSelector> {
    let snap = cache.snapshot(requests);
    let mut out = BTreeSet::new();
    for (req, result) in &snap.groups {
        if let Ok(g) = result {
            let mut ids = BTreeSet::from([g.id.to_string()]);
            if req.transitive {
                ids.extend(cache.nested_groups(&g.id));
            }
            if !ids.is_disjoint(changed) {
                out.insert(req.selector.clone());
            }
        }
    }
    out
}

/// The selectors of the requests whose members (transitive ones for a transitive
/// request) include one of `users`: a user disabled or renamed changes no group, but the
/// people of these.
fn members_touched(
    cache: &DeltaCache,
    requests: &[GroupRequest],
    users: &BTreeSet<String>,
) -> BTreeSet<crate::sources::policy::GroupSelector> {
    if users.is_empty() {
        return BTreeSet::new();
    }
    cache
        .snapshot(requests)
        .groups
        .iter()
        .filter(|(_, result)| {
            result
                .as_ref()
                .is_ok_and(|g| g.members.iter().any(|m| users.contains(m.id.as_str())))
        })
        .map(|(req, _)| req.selector.clone())
        .collect()
}

/// The group ids that the policies' group requests depend on, nested groups included.
fn relevant_groups(cache: &DeltaCache, requests: &[GroupRequest]) -> BTreeSet<String> {
    let snap = cache.snapshot(requests);
    let mut out = BTreeSet::new();
    for (req, result) in &snap.groups {
        if let Ok(g) = result {
            out.insert(g.id.to_string());
            if req.transitive {
                out.extend(cache.nested_groups(&g.id));
            }
        }
    }
    out
}

/// What the directory watchers share: where memberships come from, the requests of the
/// last pass, where a change is placed for the fast path, and the wake-up.
#[derive(Clone)]
pub(crate) struct DirectoryWatch {
    pub directory: Arc<tokio::sync::Mutex<DirectorySource>>,
    pub requests: Arc<Mutex<Vec<GroupRequest>>>,
    pub changed: Changed,
    pub period: Duration,
    pub wake: mpsc::Sender<()>,
    pub shared: Arc<crate::runtime::status::Shared>,
    /// A standby of the S3 store's leadership: a change the watcher cannot place is
    /// dropped, not placed as a full pass, since the first pass of a new leader is a
    /// full one that reads it; so what it can place still goes down the fast path then.
    pub standing_by: Arc<std::sync::atomic::AtomicBool>,
}

impl DirectoryWatch {
    /// Places a change for the next pass: the selectors it touched (the fast path), or
    /// `None` when it cannot be placed (a full pass); then wakes the controller.
    fn place(&self, touched: Option<BTreeSet<crate::sources::policy::GroupSelector>>) {
        if touched.is_none() && self.standing_by.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        {
            let mut c = self.changed.lock().expect("changed");
            match (c.as_mut(), touched) {
                (Some(set), Some(t)) => set.extend(t),
                _ => *c = None,
            }
        }
        tracing::info!("directory change to a mapped group; starting a pass");
        // A full channel means a fast pass is already pending: this change rides along (it
        // takes every change placed so far).
        let _ = self.wake.try_send(());
    }

    /// The requests of the last pass, pins included: a group is watched by the id its
    /// mapping is pinned to, not by a name anyone can give another group.
    fn requests(&self) -> Vec<GroupRequest> {
        self.requests.lock().expect("requests").clone()
    }
}

/// The directory watchers: the groups feed (or the tenant file) and the users feed, each
/// polling on its own so that one failing or waiting never delays the other. Ends when
/// `stop` is raised.
pub(crate) async fn watch_directory(
    watch: DirectoryWatch,
    poll_now: Arc<tokio::sync::Notify>,
    stop: watch::Receiver<bool>,
) {
    tokio::join!(
        watch_groups(watch.clone(), poll_now, stop.clone()),
        watch_users(watch, stop),
    );
}

/// Sleeps for `period` or until a poll is asked for now; false once `stop` is raised.
async fn next_poll(
    period: Duration,
    poll_now: Option<&tokio::sync::Notify>,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    let now = async {
        match poll_now {
            Some(n) => n.notified().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = stop.wait_for(|s| *s) => false,
        _ = tokio::time::sleep(period) => true,
        // A Graph change notification: poll now (what changed is read, not told).
        _ = now => true,
    }
}

/// The groups delta feed, or the tenant file: which mappings' groups changed, when that
/// can be said (the fast path then touches only their roles and people); otherwise the
/// next pass is a full one.
async fn watch_groups(
    w: DirectoryWatch,
    poll_now: Arc<tokio::sync::Notify>,
    mut stop: watch::Receiver<bool>,
) {
    // The tenant file as it is now, before the first pass reads it: a change made at any
    // time after that starts a pass (taken at the first poll instead, a change made between
    // the first pass and that poll went unseen).
    let mut last_file: Option<Vec<u8>> = match w.directory.try_lock().as_deref() {
        Ok(DirectorySource::File(path)) => std::fs::read(path).ok(),
        _ => None,
    };
    while next_poll(w.period, Some(&poll_now), &mut stop).await {
        let file = match &*w.directory.lock().await {
            DirectorySource::File(path) => Some(std::fs::read(path).ok()),
            DirectorySource::Delta { .. } => None,
            DirectorySource::Graph(_) | DirectorySource::GraphLater { .. } => continue,
        };
        if let Some(now) = file {
            if now != last_file {
                last_file = now;
                w.place(None);
            }
            continue;
        }
        let requests = w.requests();
        let before = match &*w.directory.lock().await {
            DirectorySource::Delta { cache, .. } => relevant_groups(cache, &requests),
            _ => continue,
        };
        // Read with no lock on the directory: the users feed and the fast path go on.
        let r = match DirectorySource::sync_groups(&w.directory).await {
            Ok(Some(r)) => {
                w.shared.feed_polled("groups", None);
                r
            }
            Ok(None) => continue,
            Err(e) => {
                if w.shared.feed_polled("groups", Some(e.to_string())) {
                    tracing::warn!(error = %e, "Graph groups delta poll failed; the users feed and the fast path go on, and the next poll reads again");
                }
                continue;
            }
        };
        let mut dir = w.directory.lock().await;
        let DirectorySource::Delta { cache, .. } = &mut *dir else {
            continue;
        };
        let after = relevant_groups(cache, &requests);
        // This round's changes, and those a full pass's own sync took in since the last
        // poll: a departure that lands as a full pass starts goes down the fast path too,
        // not only with that pass's writes (up to a minute later at Identity Center's
        // quotas).
        let mut ids: BTreeSet<String> = cache.take_changed();
        ids.extend(r.changed_groups.iter().cloned());
        // Before the first pass has said which groups matter, any change might (a full
        // pass); nothing changed is nothing to do.
        let hit = r.full
            || (!ids.is_empty()
                && (requests.is_empty()
                    || ids.iter().any(|g| before.contains(g) || after.contains(g))));
        if !hit {
            continue;
        }
        let touched = (!requests.is_empty() && !r.full).then(|| touched(cache, &requests, &ids));
        drop(dir);
        w.place(touched);
    }
}

/// The users delta feed, once a pass with people has asked for it: a user disabled,
/// renamed or made a guest changes no group, but the people of the groups the cache says
/// they are in. Polled beside the groups feed, never behind it.
async fn watch_users(w: DirectoryWatch, mut stop: watch::Receiver<bool>) {
    while next_poll(w.period, None, &mut stop).await {
        let Some((reader, feed)) = DirectorySource::users_feed(&w.directory).await else {
            continue;
        };
        let poll = feed.lock().await.poll(&reader).await;
        let poll = match poll {
            Ok(p) => {
                w.shared.feed_polled("users", None);
                p
            }
            Err(e) => {
                // A failed poll keeps the feed's link, so nothing is missed once it answers
                // again; the first failure of a run asks for a full pass, which reads every
                // user (through `/users`, which may well answer).
                if w.shared.feed_polled("users", Some(e.to_string())) {
                    tracing::warn!(error = %e, "Graph users delta poll failed; a full pass reads every user, and the next poll reads again");
                    w.place(None);
                }
                continue;
            }
        };
        // A feed that starts only now may have missed a change since the last pass read
        // every user: a full pass reads them again.
        if poll.started {
            w.place(None);
            continue;
        }
        if poll.changed.is_empty() {
            continue;
        }
        let requests = w.requests();
        let by_users = match &*w.directory.lock().await {
            DirectorySource::Delta { cache, .. } => {
                members_touched(cache, &requests, &poll.changed)
            }
            _ => continue,
        };
        if !by_users.is_empty() {
            w.place(Some(by_users));
        }
    }
}

pub(crate) async fn watch_policies(
    dir: PathBuf,
    limits: policy::Limits,
    policies: Arc<Mutex<Arc<PolicySet>>>,
    shared: Arc<Shared>,
    period: Duration,
    triggers: mpsc::Sender<Trigger>,
    mut stop: watch::Receiver<bool>,
) {
    // What is read, and what is refused (a link leaving the directory): either changing
    // starts a reload.
    let mut last = policy::fingerprint(&dir);
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = tokio::time::sleep(period) => {}
        }
        let now = policy::fingerprint(&dir);
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
                        revision: set.revision.as_ref().map(|r| r.commit.clone()),
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
