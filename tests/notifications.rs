//! Microsoft Graph change notifications, end to end through the binary against the local
//! Graph server's subscriptions (which validate the endpoint and post notifications as
//! Microsoft documents): the controller subscribes, a membership change is revoked long
//! before the next poll, a notification without the subscription's clientState starts
//! nothing, a removed subscription is made again, and SIGTERM deletes it.

mod support;

use std::time::Duration;

use support::daemon::Daemon;
use support::*;

const SP2: &str = "5e1f0a2b-1111-4111-8111-000000000002";
const PAYMENTS: &str = "a1b2c3d4-0001-4000-8000-000000000001";

#[test]
fn a_change_notification_starts_a_poll_at_once_and_only_for_this_instances_secret() {
    let moto = Moto::start();
    moto.create_functions(&["payments-api"]);
    let ws = Workspace::new();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/graph/notifications");
    // Polls two minutes apart: only a notification can make a revocation quick.
    ws.write(
        "trustsync.yaml",
        &format!("audit: {{path: audit.jsonl}}\nrun: {{intervalSeconds: 3600, directoryPollSeconds: 120}}\ndirectory:\n  graph:\n    notifications: {{url: \"{url}\"}}\n"),
    );
    let graph = GraphServer::start(&ws.path().join("examples/tenant.json"), 999);
    let daemon = Daemon::spawn_at(
        &moto.endpoint,
        graph.env(CLIENT_SECRET),
        &ws,
        &format!("127.0.0.1:{port}"),
    );
    daemon.wait_ready();
    wait_for(Duration::from_secs(15), "the subscription", || {
        graph.subscriptions().len() == 1
    });
    let sub = graph.subscriptions().remove(0);
    assert_eq!(sub["notificationUrl"], url.as_str());
    assert_eq!(sub["lifecycleNotificationUrl"], url.as_str());
    assert_eq!(sub["resource"], "groups");
    assert!(sub["changeType"].as_str().unwrap().contains("updated"));

    let took = moto.revoke_through_graph(&graph, (PAYMENTS, SP2), "payments-deployer");
    println!(
        "revoked {} ms after the Graph change, with polls 120 s apart",
        took.as_millis()
    );
    assert!(took < Duration::from_secs(10), "{took:?}");

    // Graph's validation handshake, as Graph sends it.
    let (status, body) = http("POST", &format!("{url}?validationToken=abc%20def"), None);
    assert_eq!((status, body.as_str()), (200, "abc def"));
    // A notification without this instance's clientState starts no poll.
    let delta = || graph.stats()["requests"]["delta"].as_u64().unwrap_or(0);
    let before = delta();
    let forged = serde_json::json!({"value": [{
        "subscriptionId": sub["id"], "clientState": "guessed", "changeType": "updated",
        "resource": format!("Groups/{PAYMENTS}"),
    }]});
    assert_eq!(http("POST", &url, Some(forged)).0, 202);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(delta(), before, "no poll for a forged notification");
    let metrics = daemon.get("/metrics").1;
    assert!(
        metrics.contains("trustsync_graph_notifications_total{outcome=\"ignored\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("trustsync_graph_subscription_active 1"),
        "{metrics}"
    );

    // A removed subscription is made again.
    let old = sub["id"].as_str().unwrap().to_string();
    graph.lifecycle(&old, "subscriptionRemoved");
    wait_for(Duration::from_secs(15), "a new subscription", || {
        let subs = graph.subscriptions();
        subs.len() == 1 && subs[0]["id"] != old.as_str()
    });

    // A reauthorization keeps it.
    let new = graph.subscriptions().remove(0)["id"].clone();
    graph.lifecycle(new.as_str().unwrap(), "reauthorizationRequired");
    std::thread::sleep(Duration::from_secs(2));
    let subs = graph.subscriptions();
    assert!(subs.len() == 1 && subs[0]["id"] == new, "{subs:?}");

    // SIGTERM deletes it.
    assert!(daemon.terminate().success());
    assert!(graph.subscriptions().is_empty());
}
