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

/// A fingerprint of every policy file's name and content (a directory that cannot be
/// listed has a fingerprint of its own, so that it recovering is a change too).
fn policy_fingerprint(dir: &std::path::Path) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    match policy::yaml_files(dir) {
        Ok(files) => {
            for f in files {
                h.update(f.to_string_lossy().as_bytes());
                h.update(std::fs::read(&f).unwrap_or_default());
            }
        }
        Err(e) => h.update(e.to_string().as_bytes()),
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) async fn signals(stop: watch::Sender<bool>) {
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

pub(crate) fn watch_directory(
    directory: Arc<tokio::sync::Mutex<DirectorySource>>,
    requests: Arc<Mutex<Vec<GroupRequest>>>,
    changed_groups: Changed,
    period: Duration,
    poll_now: Arc<tokio::sync::Notify>,
    wake: mpsc::Sender<()>,
    mut stop: watch::Receiver<bool>,
) -> impl std::future::Future<Output = ()> {
    // The tenant file as it is now, before the first pass reads it: a change made at any
    // time after that starts a pass (taken at the first poll instead, a change made between
    // the first pass and that poll went unseen).
    let mut last_file: Option<Vec<u8>> = match directory.try_lock().as_deref() {
        Ok(DirectorySource::File(path)) => std::fs::read(path).ok(),
        _ => None,
    };
    async move {
        loop {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                _ = tokio::time::sleep(period) => {}
                // A Graph change notification: poll now (what changed is read, not told).
                _ = poll_now.notified() => {}
            }
            // The requests of the last pass, pins included: a group is watched by the id its
            // mapping is pinned to, not by a name anyone can give another group.
            let requests = requests.lock().expect("requests").clone();
            let mut dir = directory.lock().await;
            // Which mappings' groups changed, when that can be said: the fast path then
            // touches only their roles; otherwise the pass is a full one.
            let place = |touched: Option<BTreeSet<crate::sources::policy::GroupSelector>>| {
                let mut c = changed_groups.lock().expect("changed");
                match (c.as_mut(), touched) {
                    (Some(set), Some(t)) => set.extend(t),
                    _ => *c = None,
                }
            };
            let changed = match &mut *dir {
                DirectorySource::Delta { cache, .. } => {
                    let before = relevant_groups(cache, &requests);
                    match cache.sync().await {
                        Ok(r) => {
                            let after = relevant_groups(cache, &requests);
                            let ids: BTreeSet<String> = r.changed_groups.iter().cloned().collect();
                            // Before the first pass has said which groups matter, any
                            // change might (a full pass); nothing changed is nothing to do.
                            // A user's change (disabled, renamed) touches the groups
                            // it is a member of, as the cache holds them.
                            let by_users = members_touched(cache, &requests, &r.changed_users);
                            let hit = r.full
                                || !by_users.is_empty()
                                || (!ids.is_empty()
                                    && (requests.is_empty()
                                        || ids
                                            .iter()
                                            .any(|g| before.contains(g) || after.contains(g))));
                            if hit {
                                if requests.is_empty() || r.full {
                                    place(None);
                                } else {
                                    let mut t = touched(cache, &requests, &ids);
                                    t.extend(by_users);
                                    place(Some(t));
                                }
                            }
                            hit
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "Graph delta poll failed; the next pass reads again");
                            false
                        }
                    }
                }
                DirectorySource::File(path) => {
                    let now = std::fs::read(path).ok();
                    let changed = now != last_file;
                    last_file = now;
                    if changed {
                        place(None);
                    }
                    changed
                }
                DirectorySource::Graph(_) | DirectorySource::GraphLater { .. } => false,
            };
            drop(dir);
            if changed {
                tracing::info!("directory change to a mapped group; starting a pass");
                // A full channel means a fast pass is already pending: this change rides
                // along (it takes every change placed so far).
                let _ = wake.try_send(());
            }
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
    let mut last = policy_fingerprint(&dir);
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = tokio::time::sleep(period) => {}
        }
        let now = policy_fingerprint(&dir);
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
