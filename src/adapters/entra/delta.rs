//! [`DeltaCache`]: `GET /groups/delta` selecting `members`, kept up to date with the delta
//! link. It tracks the direct members of every group, so transitive membership is computed
//! locally and a change inside a nested group is seen even though Graph does not report it
//! on the parent. A steady-state sync costs one request.
//!
//! The groups feed and the users feed (`GET /users/delta`) are independent, as Microsoft
//! documents them: each has its own link and its own lock, and neither is read while the
//! cache itself is borrowed, so a failing or slow groups feed never delays the users feed
//! (a disabled person's revocation), nor the other way round. A round is read from Graph
//! first ([`GroupsRound::read`], [`UsersFeed::poll`]) and applied to the cache after
//! ([`DeltaCache::apply_groups`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use graph_rs_sdk::{GraphClient, ODataQuery};
use serde::Deserialize;
use serde_json::Value;

use crate::sources::directory::{
    DirectorySnapshot, GroupMembers, GroupRequest, Member, MemberKind,
};

use super::graph::{kind_of, owner_tenant, parse, Error, GraphReader, Page};

/// A group as the cache keeps it: its name and its direct members, as interned ids.
#[derive(Debug, Clone, Default)]
struct CachedGroup {
    display_name: Box<str>,
    members: BTreeMap<u32, MemberKind>,
}

/// Object ids, each kept once: a membership costs a `u32`, not a 36-character string, so a
/// tenant of a million memberships fits in a few tens of megabytes.
#[derive(Debug, Default)]
struct Interner {
    ids: Vec<Arc<str>>,
    index: HashMap<Arc<str>, u32>,
}

impl Interner {
    fn intern(&mut self, id: &str) -> u32 {
        if let Some(n) = self.index.get(id) {
            return *n;
        }
        let n = self.ids.len() as u32;
        let id: Arc<str> = Arc::from(id);
        self.ids.push(id.clone());
        self.index.insert(id, n);
        n
    }

    fn get(&self, id: &str) -> Option<u32> {
        self.index.get(id).copied()
    }

    fn name(&self, n: u32) -> &str {
        &self.ids[n as usize]
    }
}

/// What a delta round reads.
const DELTA: &str = "GET /groups/delta";

/// A group of a delta page (`$select=displayName,members`): `@removed` when it was
/// deleted, `members@delta` with the members added and (`@removed`) removed since the last
/// round.
#[derive(Debug, Deserialize)]
struct DeltaGroup {
    id: String,
    #[serde(rename = "@removed", default)]
    removed: Option<Value>,
    #[serde(rename = "displayName", default)]
    display_name: Option<String>,
    #[serde(rename = "members@delta", default)]
    members: Option<Vec<DeltaMember>>,
}

/// A member of `members@delta`.
#[derive(Debug, Deserialize)]
struct DeltaMember {
    id: String,
    #[serde(rename = "@odata.type", default)]
    odata_type: Option<String>,
    #[serde(rename = "@removed", default)]
    removed: Option<Value>,
}

/// One group of a delta page, parsed as soon as the page arrives (the page itself is
/// dropped): applied to the cache only once the whole round has arrived.
struct StagedGroup {
    id: Box<str>,
    removed: bool,
    display_name: Option<Box<str>>,
    /// (member, kind, removed).
    members: Vec<(Box<str>, MemberKind, bool)>,
}

/// A whole groups delta round as Graph gave it, read without the cache: applied with
/// [`DeltaCache::apply_groups`].
pub struct GroupsRound {
    /// The link the round started from (`None`: a full sync).
    from: Option<String>,
    /// A full sync: the first one, or the link had expired.
    full: bool,
    groups: Vec<StagedGroup>,
    delta_link: String,
}

impl GroupsRound {
    /// Reads every page of one round from `link` (`None`: every group). An expired link
    /// starts over with a full sync.
    pub async fn read(reader: &GraphReader, link: Option<String>) -> Result<GroupsRound, Error> {
        if let Some(l) = &link {
            match Self::pages(reader, Some(l.clone())).await {
                Err(e) if e.is_expired_delta() => {
                    tracing::warn!("Graph delta token expired; starting a full sync");
                }
                other => {
                    return other.map(|(groups, delta_link)| GroupsRound {
                        from: link,
                        full: false,
                        groups,
                        delta_link,
                    })
                }
            }
        }
        let (groups, delta_link) = Self::pages(reader, None).await?;
        Ok(GroupsRound {
            from: link,
            full: true,
            groups,
            delta_link,
        })
    }

    /// All pages up to the delta link. Each page is reduced to what the planner needs
    /// (ids, names, kinds) as it arrives.
    async fn pages(
        reader: &GraphReader,
        link: Option<String>,
    ) -> Result<(Vec<StagedGroup>, String), Error> {
        let mut staged: Vec<StagedGroup> = Vec::new();
        let mut next = link;
        let first = |c: &GraphClient| {
            c.groups()
                .delta()
                .select(&["displayName", "members"])
                .top("999")
        };
        loop {
            let page = reader.get(DELTA, first, next.as_deref()).await?;
            let page = Page::read(DELTA, page)?;
            stage(&page, &mut staged)?;
            match (page.next_link, page.delta_link) {
                (Some(n), _) => next = Some(n),
                (None, Some(d)) => return Ok((staged, d)),
                (None, None) => return Err(Error::no_delta_link(DELTA)),
            }
        }
    }
}

/// The users' delta feed: its link, behind a lock of its own (not the cache's), so that
/// its polls go on while the groups feed fails or waits.
#[derive(Debug, Default)]
pub struct UsersFeed {
    link: Option<String>,
}

/// What a poll of the users feed found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsersPoll {
    /// Users whose sign-in name, enabled state or type changed.
    pub changed: BTreeSet<String>,
    /// The feed started only now (or started over): a change made before it was missed,
    /// so the next pass reads every user.
    pub started: bool,
}

impl UsersFeed {
    /// Follows the feed from its link (`$deltatoken=latest` the first time: from now).
    /// An expired link is forgotten, so the next poll starts over (and asks for a pass
    /// that reads every user); any other failure keeps the link, so nothing is missed
    /// once the feed answers again.
    pub async fn poll(&mut self, reader: &GraphReader) -> Result<UsersPoll, Error> {
        let started = self.link.is_none();
        match reader.users_delta(self.link.as_deref()).await {
            Ok((changed, link)) => {
                self.link = Some(link);
                Ok(UsersPoll { changed, started })
            }
            Err(e) => {
                if e.is_expired_delta() {
                    self.link = None;
                }
                Err(e)
            }
        }
    }

    /// Whether the feed has a link yet.
    pub fn started(&self) -> bool {
        self.link.is_some()
    }
}

/// What a delta sync changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncResult {
    /// True when this was a full sync (first one, or the delta token had expired).
    pub full: bool,
    /// Groups whose direct membership or name changed.
    pub changed_groups: BTreeSet<String>,
}

/// The tenant's group memberships, kept current with Graph delta queries.
pub struct DeltaCache {
    reader: GraphReader,
    ids: Interner,
    /// By interned group id.
    groups: HashMap<u32, CachedGroup>,
    delta_link: Option<String>,
    /// Service principals' application owner tenants (`appOwnerOrganizationId`), which
    /// never change, learnt once each: the delta feed carries member ids only.
    owners: HashMap<u32, Option<String>>,
    /// One groups round at a time: held from reading the link to applying the round.
    groups_feed: Arc<tokio::sync::Mutex<()>>,
    /// Follow `/users/delta` too (people's access depends on users' state).
    track_users: bool,
    users: Arc<tokio::sync::Mutex<UsersFeed>>,
    /// Groups that changed in the rounds applied since the controller's watcher last took
    /// them ([`Self::take_changed`]): a full pass syncs the feed before it reads, and a
    /// change it takes in must still reach the membership fast path, not wait for that
    /// pass's writes.
    unplaced: BTreeSet<String>,
}

impl DeltaCache {
    /// An empty cache; the first [`DeltaCache::sync`] does the full read.
    pub fn new(reader: GraphReader) -> DeltaCache {
        DeltaCache {
            reader,
            ids: Interner::default(),
            groups: HashMap::new(),
            delta_link: None,
            owners: HashMap::new(),
            groups_feed: Arc::default(),
            track_users: false,
            users: Arc::default(),
            unplaced: BTreeSet::new(),
        }
    }

    /// The groups that changed in the rounds applied since the last call, whoever read
    /// them (the watcher's poll or a pass's sync); a full round clears them (what it read
    /// is the pass's, or the watcher's, to handle as a whole).
    pub fn take_changed(&mut self) -> BTreeSet<String> {
        std::mem::take(&mut self.unplaced)
    }

    /// Follow the users' delta feed from now on: a user disabled or renamed is a change
    /// (people's memberships depend on it, not only on groups). Returns the feed, whose
    /// link the caller takes (one request, [`UsersFeed::poll`]) before a pass reads every
    /// user, without the cache borrowed; a feed that starts later asks for a full pass.
    pub fn track_users(&mut self) -> (GraphReader, Arc<tokio::sync::Mutex<UsersFeed>>) {
        self.track_users = true;
        self.users_feed().expect("followed from now on")
    }

    /// The users' feed, once followed ([`Self::track_users`]).
    pub fn users_feed(&self) -> Option<(GraphReader, Arc<tokio::sync::Mutex<UsersFeed>>)> {
        self.track_users
            .then(|| (self.reader.clone(), self.users.clone()))
    }

    /// The groups feed's lock, taken before [`Self::groups_link`] and held until the
    /// round read from it is applied: one groups round at a time.
    pub fn groups_feed(&self) -> Arc<tokio::sync::Mutex<()>> {
        self.groups_feed.clone()
    }

    /// Where the next groups round starts (`None`: a full sync).
    pub fn groups_link(&self) -> Option<String> {
        self.delta_link.clone()
    }

    /// Reads the application owner tenant of each service principal of `snapshot` (this
    /// cache's) not known yet (`GET /servicePrincipals/{id}?$select=appOwnerOrganizationId`,
    /// in JSON batches). `true` when it learnt any, so the snapshot is to be taken again;
    /// nothing is read for a pass whose principals are all known.
    pub async fn learn_owners(&mut self, snapshot: &DirectorySnapshot) -> Result<bool, Error> {
        let mut unknown: BTreeSet<u32> = BTreeSet::new();
        for g in snapshot.groups.values().flatten() {
            for m in g
                .members
                .iter()
                .filter(|m| m.kind == MemberKind::ServicePrincipal)
            {
                if let Some(n) = self.ids.get(m.id.as_str()) {
                    if !self.owners.contains_key(&n) {
                        unknown.insert(n);
                    }
                }
            }
        }
        if unknown.is_empty() {
            return Ok(false);
        }
        let unknown: Vec<u32> = unknown.into_iter().collect();
        let urls: Vec<String> = unknown
            .iter()
            .map(|n| {
                format!(
                    "/servicePrincipals/{}?$select=id,appOwnerOrganizationId,servicePrincipalType",
                    self.ids.name(*n)
                )
            })
            .collect();
        let answers = self
            .reader
            .batch_get("POST /$batch (service principals)", &urls)
            .await?;
        for (n, answer) in unknown.into_iter().zip(answers) {
            let owner = match answer {
                Ok(v) => owner_tenant(&v),
                Err(Error::Graph { status: 404, .. }) => None,
                Err(e) => return Err(e),
            };
            self.owners.insert(n, owner);
        }
        Ok(true)
    }

    /// Whether the owner tenant of this service principal is known (learnt, or read with
    /// no owner).
    pub fn owner_known(&self, id: &str) -> bool {
        self.ids
            .get(id)
            .is_some_and(|n| self.owners.contains_key(&n))
    }

    /// Graph retries end once `stop` is raised.
    pub fn set_stop(
        &mut self,
        stop: tokio::sync::watch::Receiver<bool>,
        pending: crate::model::call::Pending,
    ) {
        self.reader.set_stop(stop, pending);
    }

    /// The reader, for full reads beside the cache.
    pub fn reader(&self) -> &GraphReader {
        &self.reader
    }

    /// Forgets the delta link: the next sync reads every group again.
    pub fn reset(&mut self) {
        self.delta_link = None;
    }

    /// Brings the cache up to date: the first call reads every group; later calls follow
    /// the delta link (one request when nothing changed). An expired token starts over
    /// with a full sync. On error the cache keeps its last complete state and delta link.
    /// For a cache with one owner (a one-shot read): the controller reads rounds with no
    /// lock on the cache ([`GroupsRound::read`]) and polls the users feed on its own.
    pub async fn sync(&mut self) -> Result<SyncResult, Error> {
        let round = GroupsRound::read(&self.reader, self.delta_link.clone()).await?;
        Ok(self.apply_groups(round))
    }

    /// Applies a round read with [`GroupsRound::read`]; on a full sync, groups it no
    /// longer lists are gone. When the link changed since the round started (the cache
    /// was reset by a full read that disagreed), the round's groups are taken but not its
    /// link, so that the next round is a full one as the reset asked.
    pub fn apply_groups(&mut self, round: GroupsRound) -> SyncResult {
        let mut result = SyncResult {
            full: round.full,
            ..SyncResult::default()
        };
        let keep_link = round.from == self.delta_link;
        // A full round lists every group with all its members: it replaces the cache, and
        // the groups it no longer lists are gone.
        let saved = if round.full {
            std::mem::take(&mut self.groups)
        } else {
            HashMap::new()
        };
        for g in round.groups {
            let id = self.ids.intern(&g.id);
            if g.removed {
                if self.groups.remove(&id).is_some() {
                    result.changed_groups.insert(g.id.to_string());
                }
                continue;
            }
            let members: Vec<(u32, MemberKind, bool)> = g
                .members
                .iter()
                .map(|(m, kind, removed)| (self.ids.intern(m), kind.clone(), *removed))
                .collect();
            let entry = self.groups.entry(id).or_default();
            let mut changed = false;
            if let Some(n) = g.display_name {
                if entry.display_name != n {
                    entry.display_name = n;
                    changed = true;
                }
            }
            for (member, kind, removed) in members {
                // Replays are harmless: adding a present member or removing an absent one
                // changes nothing.
                changed |= if removed {
                    entry.members.remove(&member).is_some()
                } else {
                    entry.members.insert(member, kind).is_none()
                };
            }
            if changed {
                result.changed_groups.insert(g.id.to_string());
            }
        }
        result.changed_groups.extend(
            saved
                .keys()
                .filter(|k| !self.groups.contains_key(*k))
                .map(|k| self.ids.name(*k).to_string()),
        );
        if keep_link {
            self.delta_link = Some(round.delta_link);
        }
        match result.full {
            true => self.unplaced.clear(),
            false => self.unplaced.extend(result.changed_groups.iter().cloned()),
        }
        result
    }

    /// Every group of the tenant: (id, display name, direct members with their kinds).
    pub fn groups(&self) -> impl Iterator<Item = (&str, &str, Vec<(&str, MemberKind)>)> + '_ {
        self.groups.iter().map(|(id, g)| {
            let members = g
                .members
                .iter()
                .map(|(m, kind)| (self.ids.name(*m), kind.clone()))
                .collect();
            (self.ids.name(*id), &*g.display_name, members)
        })
    }

    /// The groups that `group` contains, directly or through nested groups.
    pub fn nested_groups(&self, group: &str) -> BTreeSet<String> {
        crate::sources::directory::nested_groups(group, |g| {
            self.ids
                .get(g)
                .and_then(|n| self.groups.get(&n))
                .map_or_else(Vec::new, |c| {
                    c.members
                        .iter()
                        .filter(|(_, kind)| **kind == MemberKind::Group)
                        .map(|(m, _)| self.ids.name(*m).to_string())
                        .collect()
                })
        })
    }

    /// Resolves the requests from the cache, expanding nested groups locally.
    pub fn snapshot(&self, requests: &[GroupRequest]) -> DirectorySnapshot {
        let mut out = DirectorySnapshot::default();
        for req in requests {
            let namesakes = req.namesakes(
                self.groups
                    .iter()
                    .map(|(id, g)| (self.ids.name(*id), &*g.display_name)),
            );
            if !namesakes.is_empty() {
                out.namesakes.insert(req.clone(), namesakes);
            }
            let matched = crate::sources::directory::resolve(
                req,
                self.groups
                    .iter()
                    .map(|(id, g)| (self.ids.name(*id), &*g.display_name, (*id, g))),
            );
            let result = req.finish(matched, |(id, g)| {
                let id = self.ids.name(id);
                let mut members: BTreeMap<u32, MemberKind> = g.members.clone();
                if req.transitive {
                    for nested in self.nested_groups(id) {
                        if let Some(n) = self.ids.get(&nested).and_then(|n| self.groups.get(&n)) {
                            members.extend(n.members.iter().map(|(k, v)| (*k, v.clone())));
                        }
                    }
                }
                let mut members: Vec<Member> = members
                    .into_iter()
                    .map(|(m, kind)| Member {
                        id: self.ids.name(m).into(),
                        kind,
                        display_name: None,
                        owner_tenant: self.owners.get(&m).cloned().flatten(),
                    })
                    .collect();
                // In id order, as a full read gives them.
                members.sort();
                GroupMembers {
                    id: id.into(),
                    display_name: g.display_name.to_string(),
                    members,
                }
            });
            out.groups.insert(req.clone(), result);
        }
        out
    }
}

/// The groups of one delta page. A group or member without an `id` fails the round
/// (nothing of it is applied): skipped, a departure in it would be lost until the next
/// full read.
fn stage(page: &Page, staged: &mut Vec<StagedGroup>) -> Result<(), Error> {
    for g in &page.value {
        let g: DeltaGroup = parse(DELTA, g)?;
        let members = g
            .members
            .unwrap_or_default()
            .into_iter()
            .map(|m| {
                (
                    Box::from(m.id),
                    kind_of(m.odata_type.as_deref()),
                    m.removed.is_some(),
                )
            })
            .collect();
        staged.push(StagedGroup {
            id: Box::from(g.id),
            removed: g.removed.is_some(),
            display_name: g.display_name.map(Box::from),
            members,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_delta_group_or_member_without_an_id_fails_the_round() {
        let member = json!({"@odata.type": "#microsoft.graph.servicePrincipal", "@removed": {}});
        let e = DeltaGroup::deserialize(json!({"id": "g", "members@delta": [member]})).unwrap_err();
        assert!(e.to_string().contains("missing field `id`"), "{e}");
        assert!(DeltaGroup::deserialize(json!({"displayName": "x"})).is_err());
        let g = DeltaGroup::deserialize(json!({
            "id": "g", "displayName": null, "members@delta": null, "@removed": {"reason": "changed"}
        }))
        .unwrap();
        assert!(g.removed.is_some() && g.members.is_none() && g.display_name.is_none());
    }
}
