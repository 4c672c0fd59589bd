//! Where a pass's memberships come from: a tenant file, Microsoft Graph read in full (the
//! one-shot commands), or Graph followed through its delta feed (the controller), with
//! the periodic full read that corrects the cache.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::adapters::entra::{self, DeltaCache};
use crate::sources::directory::{DirectorySnapshot, GroupRequest, TenantDirectory, TenantFile};

/// The context of a failed directory read.
const READING: &str = "reading group memberships from Microsoft Graph (nothing was changed)";

/// What a read under the directory's lock came to: the memberships, or a full read of
/// the mapped groups due, made by the caller with this reader once the lock is released.
enum Read {
    Ready(DirectorySnapshot),
    FullReadDue(entra::GraphReader),
}

/// Where a read of users comes from.
enum UsersFrom {
    /// The tenant file's users, read.
    File(Vec<crate::sources::directory::DirectoryUser>),
    /// Microsoft Graph, to be read without the directory's lock.
    Graph(entra::GraphReader),
}

/// Where memberships come from in a pass.
pub enum DirectorySource {
    /// Microsoft Graph, not connected yet: the reader (and so the Entra credential) is
    /// made by the first pass that reads a group. A policy set with no group mapping
    /// never asks for one.
    GraphLater {
        /// The Graph settings.
        config: crate::config::GraphConfig,
        /// Follow the delta feed (the controller) instead of full reads.
        delta: Option<Duration>,
        /// The stop signal the reader's retries end on, and where its requests under way
        /// are recorded.
        stop: Option<(
            tokio::sync::watch::Receiver<bool>,
            crate::model::call::Pending,
        )>,
    },
    /// A tenant file, re-read every pass.
    File(PathBuf),
    /// Microsoft Graph, full reads (one-shot commands).
    Graph(entra::GraphReader),
    /// Microsoft Graph through the delta cache (the controller), checked against a full
    /// read of the mapped groups every `full_every`.
    Delta {
        cache: Box<DeltaCache>,
        /// How often the cache is compared with a full read.
        full_every: Duration,
        /// When it last was.
        last_full: Option<Instant>,
        /// Groups whose cached membership differed from a full read, so far.
        differences: u64,
    },
}

impl DirectorySource {
    /// The tenant the directory is read from: the tenant file's, or `AZURE_TENANT_ID` for
    /// Microsoft Graph. `None` when it cannot be told.
    pub fn tenant(&self) -> Option<String> {
        match self {
            DirectorySource::File(path) => crate::sources::directory::tenant_of(Some(path)),
            _ => crate::sources::directory::tenant_of(None),
        }
    }

    /// The controller's source: the delta cache over this reader.
    pub fn delta(reader: entra::GraphReader, full_every: Duration) -> DirectorySource {
        DirectorySource::Delta {
            cache: Box::new(DeltaCache::new(reader)),
            full_every,
            last_full: None,
            differences: 0,
        }
    }

    /// Microsoft Graph, connected by the first pass that reads a group; `delta` is the
    /// full-read period of the controller's delta cache (`None`: full reads only).
    pub fn graph(config: crate::config::GraphConfig, delta: Option<Duration>) -> DirectorySource {
        DirectorySource::GraphLater {
            config,
            delta,
            stop: None,
        }
    }

    /// Graph retries (single and batched) end once `stop` is raised: shutdown never waits
    /// out a Graph back-off.
    /// Its requests under way are recorded in `pending` (for `/readyz`).
    pub fn set_stop(
        &mut self,
        stop: tokio::sync::watch::Receiver<bool>,
        pending: crate::model::call::Pending,
    ) {
        match self {
            DirectorySource::GraphLater { stop: s, .. } => *s = Some((stop, pending)),
            DirectorySource::Graph(reader) => reader.set_stop(stop, pending),
            DirectorySource::Delta { cache, .. } => cache.set_stop(stop, pending),
            DirectorySource::File(_) => {}
        }
    }

    /// Connects to Microsoft Graph if it is not yet (the first pass that needs it).
    fn connect(&mut self) -> Result<(), entra::graph::Error> {
        if let DirectorySource::GraphLater {
            config,
            delta,
            stop,
        } = self
        {
            let mut reader = entra::reader_from_env(config)?;
            if let Some((stop, pending)) = stop.clone() {
                reader.set_stop(stop, pending);
            }
            *self = match delta {
                Some(full_every) => DirectorySource::delta(reader, *full_every),
                None => DirectorySource::Graph(reader),
            };
        }
        Ok(())
    }

    /// The Graph reader, once connected; `None` for a tenant file (which has no audit log
    /// of who changed a group).
    pub fn reader(&self) -> Option<&entra::GraphReader> {
        match self {
            DirectorySource::Graph(reader) => Some(reader),
            DirectorySource::Delta { cache, .. } => Some(cache.reader()),
            DirectorySource::File(_) | DirectorySource::GraphLater { .. } => None,
        }
    }

    /// These users only (by object id), as [`Self::users`] reads them: the fast path's
    /// read of the people of the groups a change touched.
    pub async fn users_by_id(
        source: &tokio::sync::Mutex<DirectorySource>,
        ids: &[String],
    ) -> anyhow::Result<Vec<crate::sources::directory::DirectoryUser>> {
        match Self::users_from(source).await? {
            UsersFrom::File(mut file) => {
                file.retain(|u| ids.iter().any(|id| id == u.id.as_str()));
                Ok(file)
            }
            UsersFrom::Graph(reader) => reader
                .users_by_id(ids)
                .await
                .context("reading users from Microsoft Graph (User.Read.All)"),
        }
    }

    /// Where users come from: the tenant file's, read now, or the Graph reader, cloned so
    /// that the read holds no lock.
    async fn users_from(source: &tokio::sync::Mutex<DirectorySource>) -> anyhow::Result<UsersFrom> {
        let mut s = source.lock().await;
        if let DirectorySource::File(path) = &*s {
            return Ok(UsersFrom::File(TenantFile::load(path)?.directory_users()));
        }
        s.connect()
            .context("AccessAssignments map Entra users, so Microsoft Graph must be reached")?;
        Ok(UsersFrom::Graph(
            s.reader().expect("connected above").clone(),
        ))
    }

    /// Follow users' changes as well as groups' (the controller's delta cache): people's
    /// access depends on them. Takes the users feed's link now (one request, with no lock
    /// on the directory held), so that a pass that then reads every user misses no change
    /// made after its read; if that fails, or the watcher is polling the feed this very
    /// moment, the watcher's poll takes it (and asks for a full pass when it had none).
    pub async fn track_users(source: &tokio::sync::Mutex<DirectorySource>) {
        let feed = match &mut *source.lock().await {
            DirectorySource::Delta { cache, .. } => cache.track_users(),
            _ => return,
        };
        let (reader, feed) = feed;
        let Ok(mut feed) = feed.try_lock() else {
            return;
        };
        if feed.started() {
            return;
        }
        if let Err(e) = feed.poll(&reader).await {
            tracing::warn!(error = %e, "cannot start the Graph users delta feed; the next poll tries again");
        }
    }

    /// The users feed, once a pass with people has asked for it ([`Self::track_users`]).
    pub async fn users_feed(
        source: &tokio::sync::Mutex<DirectorySource>,
    ) -> Option<(
        entra::GraphReader,
        std::sync::Arc<tokio::sync::Mutex<entra::UsersFeed>>,
    )> {
        match &*source.lock().await {
            DirectorySource::Delta { cache, .. } => cache.users_feed(),
            _ => None,
        }
    }

    /// One round of the groups delta feed (`None`: the source has no feed), read from
    /// Graph with no lock on the directory held: a groups feed that fails or waits out a
    /// back-off holds neither the users feed nor the membership fast path, which read the
    /// cache as it is. One round at a time (the feed's own lock).
    pub async fn sync_groups(
        source: &tokio::sync::Mutex<DirectorySource>,
    ) -> Result<Option<entra::SyncResult>, entra::graph::Error> {
        let feed = match &*source.lock().await {
            DirectorySource::Delta { cache, .. } => cache.groups_feed(),
            _ => return Ok(None),
        };
        let _round = feed.lock().await;
        let (reader, link) = match &*source.lock().await {
            DirectorySource::Delta { cache, .. } => (cache.reader().clone(), cache.groups_link()),
            _ => return Ok(None),
        };
        let round = entra::GroupsRound::read(&reader, link).await?;
        match &mut *source.lock().await {
            DirectorySource::Delta { cache, .. } => Ok(Some(cache.apply_groups(round))),
            _ => Ok(None),
        }
    }

    /// Every user of the directory with what decides a person's access (`GET /users`, or
    /// the tenant file's), read without holding `source`: a read of every user takes
    /// Graph a while at tenant scale, and the watcher and the fast path must not wait.
    pub async fn users(
        source: &tokio::sync::Mutex<DirectorySource>,
    ) -> anyhow::Result<Vec<crate::sources::directory::DirectoryUser>> {
        match Self::users_from(source).await? {
            UsersFrom::File(file) => Ok(file),
            UsersFrom::Graph(reader) => reader
                .users()
                .await
                .context("reading the directory's users from Microsoft Graph (User.Read.All)"),
        }
    }

    /// The Entra applications trustsync's service principal owns, with their federated
    /// credentials, and the writer that changes those; or why they cannot be read.
    pub async fn applications(
        &mut self,
    ) -> Result<
        (
            Vec<crate::observed::ObservedApplication>,
            entra::GraphReader,
        ),
        String,
    > {
        if let DirectorySource::File(path) = self {
            return Err(format!(
                "memberships come from the tenant file {}; federated credentials are read and written through Microsoft Graph only",
                path.display()
            ));
        }
        self.connect().map_err(|e| e.to_string())?;
        let reader = self.reader().expect("connected above").clone();
        let apps = reader
            .owned_applications()
            .await
            .map_err(|e| e.to_string())?;
        Ok((apps, reader))
    }

    /// The memberships for these requests, read now. A failed read is an error.
    ///
    /// The delta cache's periodic full read of the mapped groups (`fullReadSeconds`) runs
    /// without holding `source`: at tenant scale it takes Graph a while to answer, and the
    /// watcher's polls and the membership fast path (a revocation) must not wait for it.
    pub async fn snapshot(
        source: &tokio::sync::Mutex<DirectorySource>,
        requests: &[GroupRequest],
    ) -> anyhow::Result<DirectorySnapshot> {
        if source.lock().await.needs_graph(requests) {
            source
                .lock()
                .await
                .connect()
                .context("the policies map Entra groups, so Microsoft Graph must be reached")?;
        }
        Self::sync_groups(source).await.context(READING)?;
        let reader = match source.lock().await.read(requests, true).await? {
            Read::Ready(snapshot) => return Ok(snapshot),
            Read::FullReadDue(reader) => reader,
        };
        let full = reader.snapshot(requests).await.context(READING)?;
        source.lock().await.took_full_read(requests, &full);
        Ok(full)
    }

    /// Connects to Microsoft Graph when these requests need it and it is not connected
    /// yet (a standby, so that the watcher follows the delta feed before it leads).
    pub async fn connect_for(
        source: &tokio::sync::Mutex<DirectorySource>,
        requests: &[GroupRequest],
    ) -> anyhow::Result<()> {
        let mut source = source.lock().await;
        if source.needs_graph(requests) {
            source
                .connect()
                .context("the policies map Entra groups, so Microsoft Graph must be reached")?;
        }
        Ok(())
    }

    /// A source not connected yet that these requests need Graph for.
    fn needs_graph(&self, requests: &[GroupRequest]) -> bool {
        matches!(self, DirectorySource::GraphLater { .. }) && !requests.is_empty()
    }

    /// The memberships for these requests as the delta cache holds them, without a sync:
    /// for the membership fast path, which the watcher starts right after its own sync. A
    /// sync here would take in changes to other groups that the watcher then never sees,
    /// and so never sends down the fast path. Other sources read as [`Self::snapshot`].
    pub async fn cached_snapshot(
        &mut self,
        requests: &[GroupRequest],
    ) -> anyhow::Result<DirectorySnapshot> {
        match self.read(requests, false).await? {
            Read::Ready(snapshot) => Ok(snapshot),
            Read::FullReadDue(_) => {
                unreachable!("a read without a sync never asks for a full read")
            }
        }
    }

    /// The memberships as the source holds them: for the delta cache, as its feed last
    /// brought it up to date ([`Self::sync_groups`]), or a full read of the mapped groups
    /// due when `pass` and `fullReadSeconds` have passed since the last.
    async fn read(&mut self, requests: &[GroupRequest], pass: bool) -> anyhow::Result<Read> {
        if let DirectorySource::GraphLater { .. } = self {
            if requests.is_empty() {
                return Ok(Read::Ready(DirectorySnapshot::default()));
            }
            self.connect()
                .context("the policies map Entra groups, so Microsoft Graph must be reached")?;
        }
        Ok(Read::Ready(match self {
            DirectorySource::GraphLater { .. } => unreachable!("connected above"),
            DirectorySource::File(path) => TenantFile::load(path)?.snapshot(requests),
            DirectorySource::Graph(reader) => reader.full_read(requests).await.context(READING)?,
            DirectorySource::Delta {
                cache,
                full_every,
                last_full,
                ..
            } => {
                let mut cached = cache.snapshot(requests);
                match cache.learn_owners(&cached).await {
                    Ok(true) => cached = cache.snapshot(requests),
                    Ok(false) => {}
                    // Only the groups of the principals it could not place wait, and only
                    // for additions: a revocation elsewhere never does.
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the owner tenant of new service principals; their groups add nobody this pass");
                        cached = cache.snapshot(requests);
                        cached.hold_unknown_owners(|id| !cache.owner_known(id), &e.to_string());
                    }
                }
                if !pass || last_full.is_some_and(|t| t.elapsed() < *full_every) {
                    return Ok(Read::Ready(cached));
                }
                return Ok(Read::FullReadDue(cache.reader().clone()));
            }
        }))
    }

    /// Level-triggered on the directory side too: a full read of the mapped groups
    /// corrects a missed or mis-applied delta. Compared with the cache as it is once the
    /// read is in (the watcher may have synced meanwhile); where they differ, the full
    /// read wins and the cache resynchronises.
    fn took_full_read(&mut self, requests: &[GroupRequest], full: &DirectorySnapshot) {
        let DirectorySource::Delta {
            cache,
            last_full,
            differences,
            ..
        } = self
        else {
            return;
        };
        *last_full = Some(Instant::now());
        let cached = cache.snapshot(requests);
        let differ = full
            .groups
            .iter()
            .filter(|(req, result)| {
                cached
                    .groups
                    .get(*req)
                    .is_none_or(|c| !same_members(result, c))
            })
            .count() as u64;
        if differ > 0 {
            tracing::warn!(
                groups = differ,
                "the delta cache differed from a full read of the mapped groups; using the full read and resynchronising"
            );
            *differences += differ;
            cache.reset();
        }
    }

    /// Graph requests, retries and throttles so far.
    pub fn graph_stats(&self) -> (u64, u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        let Some(s) = self.reader().map(|r| &r.stats) else {
            return (0, 0, 0);
        };
        (
            s.requests.load(Relaxed),
            s.retries.load(Relaxed),
            s.throttled.load(Relaxed),
        )
    }

    /// Groups whose delta-cached membership differed from a full read, so far.
    pub fn full_read_differences(&self) -> u64 {
        match self {
            DirectorySource::Delta { differences, .. } => *differences,
            _ => 0,
        }
    }
}

fn same_members(
    a: &Result<crate::sources::directory::GroupMembers, crate::sources::directory::GroupError>,
    b: &Result<crate::sources::directory::GroupMembers, crate::sources::directory::GroupError>,
) -> bool {
    let ids = |r: &Result<crate::sources::directory::GroupMembers, _>| {
        r.as_ref()
            .map(|g| {
                (
                    g.id.clone(),
                    g.members
                        .iter()
                        .map(|m| m.id.clone())
                        .collect::<BTreeSet<_>>(),
                )
            })
            .ok()
    };
    ids(a) == ids(b) && a.is_ok() == b.is_ok()
}
