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

    // Graph's validation handshake was answered while the subscription was being made (the
    // local Graph server validates as Graph does); now that none is pending, a token sent
    // by anyone is not echoed.
    let (status, body) = http("POST", &format!("{url}?validationToken=abc%20def"), None);
    assert_eq!(status, 403, "{body}");
    assert!(!body.contains("abc def"), "{body}");
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

/// A raw POST, for the status and the headers.
fn post_raw(addr: &str, path: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    let _ = stream.read_to_string(&mut raw);
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, raw)
}

/// The notification endpoint against anyone who can reach it: a token is not echoed when
/// no subscription request of the controller is pending, a long one never; every answer is
/// text/plain with nosniff; a large body is refused; requests beyond the rate get 429.
#[test]
fn the_notification_endpoint_echoes_nothing_unasked_and_limits_what_it_reads() {
    let moto = Moto::start();
    let ws = Workspace::new();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let url = format!("http://{addr}/graph/notifications");
    ws.write(
        "trustsync.yaml",
        &format!("audit: {{path: audit.jsonl}}\nrun: {{intervalSeconds: 3600, directoryPollSeconds: 120}}\ndirectory:\n  graph:\n    notifications: {{url: \"{url}\"}}\n"),
    );
    let graph = GraphServer::start(&ws.path().join("examples/tenant.json"), 999);
    let daemon = Daemon::spawn_at(&moto.endpoint, graph.env(CLIENT_SECRET), &ws, &addr);
    daemon.wait_ready();
    // The controller's own subscription was validated (the server checks the echo).
    wait_for(Duration::from_secs(15), "the subscription", || {
        graph.subscriptions().len() == 1
    });

    let path = "/graph/notifications";
    let (status, raw) = post_raw(
        &addr,
        &format!("{path}?validationToken=%3Cscript%3Ealert(1)%3C%2Fscript%3E"),
        "",
    );
    assert_eq!(status, 403, "{raw}");
    assert!(!raw.contains("<script>"), "{raw}");
    let lower = raw.to_ascii_lowercase();
    assert!(lower.contains("x-content-type-options: nosniff"), "{raw}");
    assert!(lower.contains("content-type: text/plain"), "{raw}");

    let long = "a".repeat(1025);
    let (status, raw) = post_raw(&addr, &format!("{path}?validationToken={long}"), "");
    assert_eq!(status, 400, "{raw}");
    assert!(!raw.contains(&long), "{raw}");

    // A notification's answer carries nosniff too; a body past the limit is refused.
    let (status, raw) = post_raw(&addr, path, r#"{"value": []}"#);
    assert_eq!(status, 202, "{raw}");
    assert!(
        raw.to_ascii_lowercase()
            .contains("x-content-type-options: nosniff"),
        "{raw}"
    );
    let big = format!(r#"{{"value": [], "pad": "{}"}}"#, "x".repeat(300 * 1024));
    let (status, _) = post_raw(&addr, path, &big);
    assert_eq!(status, 413);

    // The rate: a burst of 200 gets 429s after the first few; each a refusal, not a poll.
    let mut codes = std::collections::BTreeMap::new();
    for _ in 0..200 {
        *codes
            .entry(post_raw(&addr, path, r#"{"value": []}"#).0)
            .or_insert(0) += 1;
    }
    println!("200 requests at once: {codes:?}");
    assert!(codes.get(&429).copied().unwrap_or(0) >= 100, "{codes:?}");
    assert!(codes.get(&202).copied().unwrap_or(0) >= 10, "{codes:?}");
    // The endpoint answers again after a pause.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(post_raw(&addr, path, r#"{"value": []}"#).0, 202);
    assert!(daemon.terminate().success());
}
