//! Full reads of the groups the policies map: [`GraphReader::snapshot`] reads them in JSON
//! batches; [`GraphReader::full_read`] picks that or a read of every group through delta
//! ([`DeltaCache`]), whichever costs fewer requests.
//!
//! Here rather than in `graph.rs` so that the low-level reader (`graph`) names neither
//! full-read strategy: `delta` and this file build on `graph`, never the other way round.

use std::collections::BTreeMap;

use serde_json::Value;

use super::delta::DeltaCache;
use super::graph::{
    member_of, members_url, name_filter_url, parse, Error, GraphReader, Page, WireGroup, BATCH_SIZE,
};
use crate::sources::directory::{DirectorySnapshot, GroupMembers, GroupRequest, Matched, Member};

/// What the first batches read.
const GROUPS: &str = "POST /$batch (groups)";
/// What the members batches read.
const MEMBERS: &str = "POST /$batch (members)";

/// A group found for a request: its id, its display name, and the first page of its
/// members where it was read (taken once the later pages are followed).
type Candidate = (String, String, Option<Value>);

/// What round one found.
struct RoundOne {
    /// Each request's candidates, with the first members page where it was read.
    candidates: Vec<Vec<Candidate>>,
    /// The groups found by name (request index, id, name), whose members are still unread.
    by_name: Vec<(usize, String, String)>,
    /// For each pinned request: the other groups carrying its name.
    namesakes: BTreeMap<GroupRequest, Vec<String>>,
}

impl GraphReader {
    /// A full read of the requested groups, in JSON batches of 20 (`POST /$batch`): a
    /// group chosen by id (or pinned) is read together with the first page of its
    /// `members` or `transitiveMembers`; a display name is resolved first, and when it
    /// matches several groups, each one's members are read, so that the mapping can still
    /// drop whoever is a member of none of them. Later pages follow in later batches. Each
    /// request inside a batch is charged as Graph charges it on its own; batching saves
    /// HTTP round trips (2 requests per group, 20 to a batch: N groups in N/10), not
    /// resource units.
    pub async fn snapshot(&self, requests: &[GroupRequest]) -> Result<DirectorySnapshot, Error> {
        // Round one: each group by id and its first members page; each name's groups.
        let first = self.batch_get(GROUPS, &first_round_urls(requests)).await?;
        let RoundOne {
            mut candidates,
            by_name,
            namesakes,
        } = read_first_round(requests, first)?;
        // Round two: the members of the groups found by name.
        self.members_by_name(requests, by_name, &mut candidates)
            .await?;
        let items = self.every_member(&mut candidates).await?;
        let mut out = DirectorySnapshot {
            namesakes,
            ..DirectorySnapshot::default()
        };
        for ((req, found), pages) in requests.iter().zip(candidates).zip(items) {
            let read: Vec<GroupMembers> = found
                .into_iter()
                .zip(pages)
                .map(|((id, display_name, _), members)| GroupMembers {
                    id: id.into(),
                    display_name,
                    members,
                })
                .collect();
            out.groups
                .insert(req.clone(), req.finish(Matched::of(read), |g| g));
        }
        Ok(out)
    }

    /// Round two of [`Self::snapshot`]: the first members page of each group found by name,
    /// added to its request's candidates.
    async fn members_by_name(
        &self,
        requests: &[GroupRequest],
        by_name: Vec<(usize, String, String)>,
        candidates: &mut [Vec<Candidate>],
    ) -> Result<(), Error> {
        let urls: Vec<String> = by_name
            .iter()
            .map(|(i, id, _)| members_url(id, requests[*i].transitive))
            .collect();
        let pages = self.batch_get(MEMBERS, &urls).await?;
        for ((i, id, name), page) in by_name.into_iter().zip(pages) {
            candidates[i].push((id, name, Some(page?)));
        }
        Ok(())
    }

    /// Every member of every candidate, sorted and without repeats: later pages follow,
    /// every group's next page in the same batches, until none is left.
    async fn every_member(
        &self,
        candidates: &mut [Vec<Candidate>],
    ) -> Result<Vec<Vec<Vec<Member>>>, Error> {
        let first: Vec<Result<Value, Error>> = candidates
            .iter_mut()
            .flatten()
            .map(|(_, _, page)| Ok(page.take().unwrap_or_default()))
            .collect();
        let mut pages = self
            .rest_of_pages("POST /$batch (next pages)", first)
            .await?
            .into_iter();
        let mut items: Vec<Vec<Vec<Member>>> = Vec::new();
        for found in candidates.iter() {
            let mut members = Vec::new();
            for _ in found {
                let values = pages.next().expect("one per candidate")?;
                let mut read = values
                    .iter()
                    .map(|v| member_of(MEMBERS, v))
                    .collect::<Result<Vec<_>, _>>()?;
                read.sort();
                read.dedup();
                members.push(read);
            }
            items.push(members);
        }
        Ok(items)
    }

    /// How many groups the tenant has (`GET /groups/$count`, an advanced query that needs
    /// `ConsistencyLevel: eventual`).
    pub async fn group_count(&self) -> Result<u64, Error> {
        let n = self
            .get(
                "GET /groups/$count",
                |c| {
                    c.groups().get_groups_count().header(
                        reqwest::header::HeaderName::from_static("consistencylevel"),
                        reqwest::header::HeaderValue::from_static("eventual"),
                    )
                },
                None,
            )
            .await?;
        n.as_u64().ok_or_else(|| Error::Graph {
            operation: "GET /groups/$count".into(),
            status: 200,
            code: "notACount".into(),
            message: format!("expected a number, got {n}"),
        })
    }

    /// The cheaper full read of these groups. Per-group reads in JSON batches cost about
    /// one request per 10 groups and 3 to 5 resource units per group; a delta-based read
    /// of every group in the tenant (`/groups/delta`, 999 groups a page with their direct
    /// members, nested groups expanded locally, as the controller does) costs about one
    /// request and one unit per 999 groups. When the policies map enough groups for the
    /// batches to take more than two requests, the tenant's group count decides.
    pub async fn full_read(&self, requests: &[GroupRequest]) -> Result<DirectorySnapshot, Error> {
        let batches = (2 * requests.len()).div_ceil(BATCH_SIZE) as u64;
        if batches <= 2 {
            return self.snapshot(requests).await;
        }
        let groups = self.group_count().await?;
        let pages = groups.div_ceil(999).max(1);
        if pages >= batches {
            tracing::debug!(
                groups,
                batches,
                pages,
                "reading the mapped groups in batches"
            );
            return self.snapshot(requests).await;
        }
        tracing::info!(
            mapped = requests.len(),
            tenant_groups = groups,
            pages,
            batches,
            "reading every group through delta: fewer requests than reading the mapped groups"
        );
        let mut cache = DeltaCache::new(self.clone());
        cache.sync().await?;
        Ok(cache.snapshot(requests))
    }
}

/// Round one's requests: each group by id (or pin) and its first members page, with the
/// groups carrying a pinned name; each display name's groups.
fn first_round_urls(requests: &[GroupRequest]) -> Vec<String> {
    let mut urls = Vec::new();
    for req in requests {
        match (&req.selector.id, &req.pin, &req.selector.display_name) {
            (Some(id), _, _) | (None, Some(id), _) => {
                urls.push(format!("/groups/{id}?$select=id,displayName"));
                urls.push(members_url(id, req.transitive));
                if let Some((_, name)) = req.pinned_name() {
                    // Who else carries the pinned name (reported, never followed).
                    urls.push(name_filter_url(name));
                }
            }
            (None, None, Some(name)) => urls.push(name_filter_url(name)),
            (None, None, None) => {}
        }
    }
    urls
}

/// Reads round one's answers (in the order [`first_round_urls`] asked) into each request's
/// candidates.
fn read_first_round(
    requests: &[GroupRequest],
    first: Vec<Result<Value, Error>>,
) -> Result<RoundOne, Error> {
    let mut first = first.into_iter();
    let mut round = RoundOne {
        candidates: Vec::new(),
        by_name: Vec::new(),
        namesakes: BTreeMap::new(),
    };
    for (i, req) in requests.iter().enumerate() {
        let mut found = Vec::new();
        match (&req.selector.id, &req.pin, &req.selector.display_name) {
            (Some(id), _, _) | (None, Some(id), _) => {
                let group = first.next().expect("one answer per request");
                let members = first.next().expect("one answer per request");
                if req.pinned_name().is_some() {
                    let same = first.next().expect("one answer per request")?;
                    let same = WireGroup::all(GROUPS, Page::read(GROUPS, same)?)?;
                    let others = req.namesakes(
                        same.iter()
                            .filter_map(|g| Some((g.id.as_str(), g.display_name.as_deref()?))),
                    );
                    if !others.is_empty() {
                        round.namesakes.insert(req.clone(), others);
                    }
                }
                match group {
                    Ok(g) => found.push((
                        id.clone(),
                        parse::<WireGroup>(GROUPS, g)?
                            .display_name
                            .unwrap_or_default(),
                        Some(members?),
                    )),
                    Err(Error::Graph { status: 404, .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            (None, None, Some(name)) => {
                let groups = first.next().expect("one answer per request")?;
                for g in WireGroup::all(GROUPS, Page::read(GROUPS, groups)?)? {
                    let n = g.display_name.unwrap_or_else(|| name.clone());
                    round.by_name.push((i, g.id, n));
                }
            }
            (None, None, None) => {}
        }
        round.candidates.push(found);
    }
    Ok(round)
}
