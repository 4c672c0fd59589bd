//! [`DeltaCache`]: `GET /groups/delta` selecting `members`, kept up to date with the delta
//! link. It tracks the direct members of every group, so transitive membership is computed
//! locally and a change inside a nested group is seen even though Graph does not report it
//! on the parent. A steady-state sync costs one request.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use graph_rs_sdk::{GraphClient, ODataQuery};
use serde::Deserialize;
use serde_json::Value;

use crate::sources::directory::{
    DirectorySnapshot, GroupMembers, GroupRequest, Member, MemberKind,
};

use super::graph::*;

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
    id: u32,
    removed: bool,
    display_name: Option<Box<str>>,
    /// (member, kind, removed).
    members: Vec<(u32, MemberKind, bool)>,
}

/// What a delta sync changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncResult {
    /// True when this was a full sync (first one, or the delta token had expired).
    pub full: bool,
    /// Groups whose direct membership or name changed.
    pub changed_groups: BTreeSet<String>,
    /// Users whose sign-in name, enabled state or type changed (followed once
    /// [`DeltaCache::track_users`] is on: people's access depends on them).
    pub changed_users: BTreeSet<String>,
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
    /// Follow `/users/delta` too (people's access depends on users' state).
    track_users: bool,
    users_link: Option<String>,
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
            track_users: false,
            users_link: None,
        }
    }

    /// Follow the users' delta feed from now on: a user disabled or renamed is a change
    /// (people's memberships depend on it, not only on groups). Takes the feed's link
    /// first (one request), so that a pass that then reads every user misses no change
    /// made after its read; if that fails, the next sync starts the feed and asks for a
    /// full pass.
    pub async fn track_users(&mut self) {
        self.track_users = true;
        if self.users_link.is_some() {
            return;
        }
        match self.reader.users_delta(None).await {
            Ok((_, link)) => self.users_link = Some(link),
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the Graph users delta feed; the next poll tries again")
            }
        }
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
    pub async fn sync(&mut self) -> Result<SyncResult, Error> {
        let mut result = match self.delta_link.clone() {
            Some(link) => match self.round(Some(link)).await {
                Err(e) if e.is_expired_delta() => {
                    tracing::warn!("Graph delta token expired; starting a full sync");
                    self.full().await
                }
                other => other,
            },
            None => self.full().await,
        }?;
        if self.track_users {
            self.sync_users(&mut result).await;
        }
        Ok(result)
    }

    /// Follows the users' delta feed. What cannot be followed (a failed read, an expired
    /// token) is a full sync's worth of change: the next pass reads every user, so a
    /// disabled account is never missed.
    async fn sync_users(&mut self, result: &mut SyncResult) {
        let first = self.users_link.is_none();
        match self.reader.users_delta(self.users_link.as_deref()).await {
            Ok((changed, link)) => {
                self.users_link = Some(link);
                // A feed that starts only now may have missed a change since the pass read
                // every user: a full pass reads them again.
                if first {
                    result.full = true;
                }
                result.changed_users = changed;
            }
            Err(e) => {
                tracing::warn!(error = %e, "Graph users delta poll failed; the next pass reads every user");
                if e.is_expired_delta() {
                    self.users_link = None;
                }
                result.full = true;
            }
        }
    }

    async fn full(&mut self) -> Result<SyncResult, Error> {
        let saved = std::mem::take(&mut self.groups);
        match self.round(None).await {
            Ok(mut r) => {
                r.full = true;
                r.changed_groups.extend(
                    saved
                        .keys()
                        .filter(|k| !self.groups.contains_key(*k))
                        .map(|k| self.ids.name(*k).to_string()),
                );
                Ok(r)
            }
            Err(e) => {
                self.groups = saved;
                Err(e)
            }
        }
    }

    /// One delta round: all pages up to the delta link, applied only when complete. Each
    /// page is reduced to what the planner needs (ids, names, kinds) as it arrives.
    async fn round(&mut self, link: Option<String>) -> Result<SyncResult, Error> {
        let mut staged: Vec<StagedGroup> = Vec::new();
        let mut next = link;
        let first = |c: &GraphClient| {
            c.groups()
                .delta()
                .select(&["displayName", "members"])
                .top("999")
        };
        let delta_link = loop {
            let page = self.reader.get(DELTA, first, next.as_deref()).await?;
            let page = Page::read(DELTA, page)?;
            self.stage(&page, &mut staged)?;
            match (page.next_link, page.delta_link) {
                (Some(n), _) => next = Some(n),
                (None, Some(d)) => break d,
                (None, None) => return Err(Error::no_delta_link(DELTA)),
            }
        };
        let mut result = SyncResult::default();
        for g in staged {
            let name = || self.ids.name(g.id).to_string();
            if g.removed {
                if self.groups.remove(&g.id).is_some() {
                    result.changed_groups.insert(name());
                }
                continue;
            }
            let entry = self.groups.entry(g.id).or_default();
            let mut changed = false;
            if let Some(n) = g.display_name {
                if entry.display_name != n {
                    entry.display_name = n;
                    changed = true;
                }
            }
            for (member, kind, removed) in g.members {
                // Replays are harmless: adding a present member or removing an absent one
                // changes nothing.
                changed |= if removed {
                    entry.members.remove(&member).is_some()
                } else {
                    entry.members.insert(member, kind).is_none()
                };
            }
            if changed {
                result.changed_groups.insert(name());
            }
        }
        self.delta_link = Some(delta_link);
        Ok(result)
    }

    /// The groups of one delta page, with their ids interned. A group or member without
    /// an `id` fails the round (nothing of it is applied): skipped, a departure in it
    /// would be lost until the next full read.
    fn stage(&mut self, page: &Page, staged: &mut Vec<StagedGroup>) -> Result<(), Error> {
        for g in &page.value {
            let g: DeltaGroup = parse(DELTA, g)?;
            let members = g
                .members
                .unwrap_or_default()
                .into_iter()
                .map(|m| {
                    (
                        self.ids.intern(&m.id),
                        kind_of(m.odata_type.as_deref()),
                        m.removed.is_some(),
                    )
                })
                .collect();
            staged.push(StagedGroup {
                id: self.ids.intern(&g.id),
                removed: g.removed.is_some(),
                display_name: g.display_name.map(Box::from),
                members,
            });
        }
        Ok(())
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
