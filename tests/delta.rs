//! Graph delta against the local Graph server: requests counted at the server.

mod support;

use std::time::Duration;

use support::*;
use trustsync::adapters::entra::{token, DeltaCache, GraphReader, ReaderSettings, TokenSource};
use trustsync::sources::directory::GroupRequest;
use trustsync::sources::policy::GroupSelector;

const SP2: &str = "5e1f0a2b-1111-4111-8111-000000000002";
const SP3: &str = "5e1f0a2b-1111-4111-8111-000000000003";
const PAYMENTS: &str = "a1b2c3d4-0001-4000-8000-000000000001";
const CI_RUNNERS: &str = "a1b2c3d4-0001-4000-8000-000000000003";

fn reader(graph: &GraphServer) -> (GraphReader, TokenSource) {
    let tokens = TokenSource::new(token::Settings {
        tenant_id: TENANT_ID.into(),
        client_id: CLIENT_ID.into(),
        credential: token::Credential::Secret(CLIENT_SECRET.into()),
        authority: graph.base.clone(),
        scope: "https://graph.microsoft.com/.default".into(),
    });
    let settings = ReaderSettings {
        endpoint: url::Url::parse(&format!("{}/v1.0", graph.base)).unwrap(),
        max_retry: Duration::from_secs(2),
        max_retry_after: Duration::from_secs(5),
        request_timeout: Duration::from_secs(20),
    };
    (GraphReader::new(tokens.clone(), settings).unwrap(), tokens)
}

fn by_name(name: &str, transitive: bool) -> GroupRequest {
    GroupRequest {
        selector: GroupSelector {
            id: None,
            display_name: Some(name.into()),
        },
        transitive,
        pin: None,
    }
}

fn requests() -> Vec<GroupRequest> {
    vec![
        by_name("sg-aws-payments-deployers", true),
        by_name("sg-aws-reporting-readers", false),
    ]
}

fn ids(snap: &trustsync::sources::directory::DirectorySnapshot, req: &GroupRequest) -> Vec<String> {
    snap.groups[req]
        .as_ref()
        .unwrap()
        .members
        .iter()
        .map(|m| m.id.to_string())
        .collect()
}

fn requests_served(graph: &GraphServer) -> u64 {
    graph.stats()["graphRequests"].as_u64().unwrap()
}

#[tokio::test]
async fn delta_tracks_changes_with_one_request_per_quiet_sync() {
    let ws = Workspace::new();
    let graph = GraphServer::start(&ws.path().join("examples/tenant.json"), 2);
    let (reader, tokens) = reader(&graph);
    let reqs = requests();

    // The full read the one-shot commands do, for comparison.
    graph.reset_stats();
    let full = reader.snapshot(&reqs).await.unwrap();
    let full_cost = requests_served(&graph);

    let mut cache = DeltaCache::new(reader.clone());
    graph.reset_stats();
    let first = cache.sync().await.unwrap();
    assert!(first.full);
    let initial_cost = requests_served(&graph);
    // Pages of 2 items: the 4-member payments group is split across pages.
    assert!(initial_cost >= 3, "{initial_cost}");
    let snap = cache.snapshot(&reqs);
    for r in &reqs {
        assert_eq!(
            ids(&snap, r),
            ids(&full, r),
            "delta and full reads agree for {r:?}"
        );
    }

    graph.reset_stats();
    let quiet = cache.sync().await.unwrap();
    assert!(!quiet.full && quiet.changed_groups.is_empty());
    assert_eq!(
        requests_served(&graph),
        1,
        "a no-change sync costs one request"
    );
    println!("graph requests on the example tenant (page size 2): full read {full_cost}, initial delta sync {initial_cost}, quiet delta sync 1");

    // A change inside a nested group shows up in the parent's transitive membership.
    graph.add_member(CI_RUNNERS, SP3);
    graph.remove_member(PAYMENTS, SP2);
    let changed = cache.sync().await.unwrap();
    assert_eq!(
        changed.changed_groups.into_iter().collect::<Vec<_>>(),
        [PAYMENTS, CI_RUNNERS]
    );
    let payments = ids(&cache.snapshot(&reqs), &reqs[0]);
    assert!(
        payments.contains(&SP3.to_string()) && !payments.contains(&SP2.to_string()),
        "{payments:?}"
    );
    assert_eq!(
        payments,
        ids(&reader.snapshot(&reqs).await.unwrap(), &reqs[0])
    );

    // A failed sync keeps the last complete state.
    graph.faults(serde_json::json!({"fail": 1000, "failStatus": 500}));
    assert!(cache.sync().await.is_err());
    assert_eq!(ids(&cache.snapshot(&reqs), &reqs[0]), payments);
    graph.faults(serde_json::json!({}));

    // An expired delta token starts over with a full sync.
    graph.admin("POST", "/admin/expire-delta-tokens", None);
    let resync = cache.sync().await.unwrap();
    assert!(resync.full);
    assert_eq!(ids(&cache.snapshot(&reqs), &reqs[0]), payments);

    // One token served every request.
    assert_eq!(tokens.fetches(), 1);
}

#[tokio::test]
async fn delta_rides_out_throttling() {
    let ws = Workspace::new();
    let graph = GraphServer::start(&ws.path().join("examples/tenant.json"), 999);
    let (reader, _) = reader(&graph);
    let mut cache = DeltaCache::new(reader.clone());
    cache.sync().await.unwrap();
    graph.faults(serde_json::json!({"throttle": 2, "retryAfter": 0.2}));
    graph.add_member(PAYMENTS, SP3);
    let r = cache.sync().await.unwrap();
    assert!(r.changed_groups.contains(PAYMENTS));
    assert_eq!(
        reader
            .stats
            .throttled
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
}

/// The groups a round changed wait in the cache until taken, whoever's round it was: a
/// full pass's sync takes in a departure the controller's watcher then reads from here and
/// sends down the fast path (before, the watcher's next round found nothing new, and the
/// revocation waited for the full pass's writes). A full round clears them.
#[tokio::test]
async fn a_change_a_pass_synced_is_still_handed_to_the_watcher() {
    let ws = Workspace::new();
    let graph = GraphServer::start(&ws.path().join("examples/tenant.json"), 999);
    let (reader, _) = reader(&graph);
    let mut cache = DeltaCache::new(reader.clone());
    assert!(cache.sync().await.unwrap().full);
    assert!(
        cache.take_changed().is_empty(),
        "a full round is read whole"
    );
    graph.remove_member(PAYMENTS, SP2);
    // A full pass's sync takes the change in...
    let pass = cache.sync().await.unwrap();
    assert!(pass.changed_groups.contains(PAYMENTS));
    // ...and the watcher's round after it finds nothing new, but the change is waiting.
    let watcher = cache.sync().await.unwrap();
    assert!(watcher.changed_groups.is_empty());
    assert_eq!(
        cache.take_changed().into_iter().collect::<Vec<_>>(),
        [PAYMENTS]
    );
    assert!(cache.take_changed().is_empty(), "taken once");
    graph.add_member(PAYMENTS, SP2);
    cache.sync().await.unwrap();
    graph.admin("POST", "/admin/expire-delta-tokens", None);
    assert!(cache.sync().await.unwrap().full);
    assert!(cache.take_changed().is_empty(), "a full round clears them");
}

/// `plan` and `apply` read through `$filter` (case-insensitive at Graph), `run` through the
/// delta cache: both resolve a name, in any letter case, and a name shared by two groups,
/// the same way, so CI and the controller agree.
#[tokio::test]
async fn full_reads_and_the_delta_cache_resolve_names_alike() {
    let ws = Workspace::new();
    ws.edit_tenant(|t| {
        t["groups"].as_array_mut().unwrap().push(serde_json::json!({
            "id": "dddddddd-0000-4000-8000-000000000001",
            "displayName": "SG-AWS-REPORTING-READERS",
            "members": [SP2]
        }));
    });
    let graph = GraphServer::start(&ws.path().join("examples/tenant.json"), 2);
    let (reader, _) = reader(&graph);
    let unique = by_name("Sg-Aws-Payments-Deployers", true);
    let shared = by_name("sg-aws-reporting-readers", false);
    let mut pinned = by_name("sg-aws-reporting-readers", false);
    pinned.pin = Some("a1b2c3d4-0001-4000-8000-000000000002".into());
    let reqs = [unique.clone(), shared.clone(), pinned.clone()];

    let full = reader.snapshot(&reqs).await.unwrap();
    let mut cache = DeltaCache::new(reader.clone());
    cache.sync().await.unwrap();
    let cached = cache.snapshot(&reqs);

    assert_eq!(ids(&full, &unique), ids(&cached, &unique));
    assert_eq!(full.groups[&unique].as_ref().unwrap().id, PAYMENTS);
    assert_eq!(full.groups[&shared], cached.groups[&shared]);
    let Err(err) = &full.groups[&shared] else {
        panic!("two groups share the name: {:?}", full.groups[&shared]);
    };
    assert_eq!(
        err.may_keep(),
        [SP2, SP3].iter().map(|s| s.to_string()).collect(),
        "whoever is in either group may stay; nobody else"
    );
    assert_eq!(ids(&full, &pinned), [SP3]);
    assert_eq!(ids(&cached, &pinned), [SP3]);
}
