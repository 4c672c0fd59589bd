//! Endpoints that accept connections and never answer, end to end through the binary: a
//! proxy in front of moto (or of the local Graph server) holds requests for ever, as a load
//! balancer with nothing behind it does. The controller stays alive (`/healthz`), says what
//! it waits for (`/readyz`, `/status`), leaves on SIGTERM within the chart's grace period,
//! and a hung account holds no other account's revocation back.

mod support;

use std::time::{Duration, Instant};

use support::daemon::Daemon;
use support::proxy::{Faults, Proxy};
use support::*;

const SP2: &str = "5e1f0a2b-1111-4111-8111-000000000002";
const PAYMENTS: &str = "a1b2c3d4-0001-4000-8000-000000000001";
const PROD: &str = "111111111111";
const DEV: &str = "222222222222";

/// The chart's `terminationGracePeriodSeconds`.
const CHART_GRACE: Duration = Duration::from_secs(60);

/// Waits until `/readyz` names a request to `what` that has gone unanswered, and checks
/// that `/healthz` and `/status` say so too.
fn readyz_names(daemon: &Daemon, what: &str) -> String {
    let mut body = String::new();
    wait_for(
        Duration::from_secs(30),
        "/readyz to name the hung request",
        || {
            body = daemon.get("/readyz").1;
            body.contains("waiting") && body.contains(what)
        },
    );
    assert_eq!(daemon.get("/healthz").0, 200, "the process is alive");
    let status = daemon.status();
    let waiting = status["waitingOn"].as_array().cloned().unwrap_or_default();
    assert!(
        waiting
            .iter()
            .any(|w| w["request"].as_str().unwrap().contains(what)
                && w["seconds"].as_u64().unwrap() >= 3),
        "{status}"
    );
    body
}

/// SIGTERM; returns how long the process took to leave.
fn terminate(daemon: Daemon) -> Duration {
    let t = Instant::now();
    let status = daemon.terminate();
    let took = t.elapsed();
    assert!(status.success(), "{status:?}");
    took
}

#[test]
fn a_hung_aws_endpoint_is_named_on_readyz_and_sigterm_ends_the_controller_in_time() {
    let moto = Moto::start();
    moto.create_functions(&["payments-api"]);
    let proxy = Proxy::start(&moto.endpoint, Faults::default(), 1);
    let ws = Workspace::new();
    // A request may go unanswered for two minutes, longer than the pod's grace period: the
    // shutdown bound, not the request timeout, decides when the controller leaves.
    ws.write(
        "trustsync.yaml",
        "audit: {path: audit.jsonl}\ndirectory: {tenantFile: examples/tenant.json}\nrun: {intervalSeconds: 3600, directoryPollSeconds: 1, shutdownSeconds: 5}\naws: {requestTimeoutSeconds: 120, maxRetrySeconds: 300}\n",
    );
    let daemon = Daemon::spawn(&proxy.endpoint, Vec::new(), &ws);
    daemon.wait_ready();

    proxy.hang(true);
    ws.remove_tenant_member(PAYMENTS, SP2);
    let body = readyz_names(&daemon, "iam");
    println!("/readyz while AWS hangs:\n{body}");

    let took = terminate(daemon);
    println!(
        "SIGTERM with AWS hung: the controller left after {} ms (shutdownSeconds 5, request timeout 120 s, grace {} s)",
        took.as_millis(),
        CHART_GRACE.as_secs()
    );
    assert!(took < Duration::from_secs(15), "{took:?}");

    // Back on its feet: the revocation the hang held up lands, and the log verifies.
    proxy.hang(false);
    let daemon = Daemon::spawn(&proxy.endpoint, Vec::new(), &ws);
    daemon.wait_ready();
    assert!(!moto
        .trusted_subs("payments-deployer")
        .contains(&SP2.to_string()));
    drop(daemon);
    run_at(&proxy.endpoint, &ws, &["audit", "verify", "audit.jsonl"], 0);
}

#[test]
fn a_hung_graph_endpoint_is_named_on_readyz_and_sigterm_ends_the_controller_in_time() {
    let moto = Moto::start();
    moto.create_functions(&["payments-api"]);
    let ws = Workspace::new();
    ws.write(
        "trustsync.yaml",
        "audit: {path: audit.jsonl}\nrun: {intervalSeconds: 3600, directoryPollSeconds: 1}\n",
    );
    let graph = GraphServer::start(&ws.path().join("examples/tenant.json"), 999);
    let proxy = Proxy::start(&graph.base, Faults::default(), 1);
    proxy.keep_host();
    let mut env = graph.env(CLIENT_SECRET);
    for (k, v) in env.iter_mut() {
        if k == "TRUSTSYNC_GRAPH_ENDPOINT" {
            *v = format!("{}/v1.0", proxy.endpoint);
        }
    }
    let daemon = Daemon::spawn(&moto.endpoint, env, &ws);
    daemon.wait_ready();

    proxy.hang(true);
    let body = readyz_names(&daemon, "Microsoft Graph");
    println!("/readyz while Graph hangs:\n{body}");

    let took = terminate(daemon);
    println!(
        "SIGTERM with Graph hung: the controller left after {} ms (default shutdownSeconds 30, Graph request timeout 20 s, grace {} s)",
        took.as_millis(),
        CHART_GRACE.as_secs()
    );
    assert!(took < CHART_GRACE, "{took:?}");
}

/// moto with the payments function in both accounts, the proxy in front, a workspace.
fn two_accounts() -> (Moto, Proxy, Workspace) {
    let moto = Moto::start();
    moto.create_functions_in(Some(PROD), &["payments-api"]);
    moto.create_functions_in(Some(DEV), &["payments-api"]);
    let proxy = Proxy::start(&moto.endpoint, Faults::default(), 1);
    let ws = Workspace::new();
    // The EventBridge rule that invokes the function lives in a managed account (a source
    // in any other is refused: guardrails.invokerAccounts).
    let payments = ws.read("policies/payments.yaml").replace(
        "arn:aws:events:us-east-1:123456789012:",
        &format!("arn:aws:events:us-east-1:{PROD}:"),
    );
    ws.write("policies/payments.yaml", &payments);
    (moto, proxy, ws)
}

#[test]
fn a_hung_account_holds_no_other_accounts_revocation_back() {
    let (moto, proxy, ws) = two_accounts();
    // Each request may be retried for two minutes: without the straggler rule the pass
    // would wait that long for the hung account before planning the others.
    ws.write(
        "trustsync.yaml",
        &format!(
            "audit: {{path: audit.jsonl}}\ndirectory: {{tenantFile: examples/tenant.json}}\nrun: {{intervalSeconds: 3600, directoryPollSeconds: 1, shutdownSeconds: 5}}\naws: {{maxRetrySeconds: 120}}\naccounts:\n  targets:\n    - {{id: \"{PROD}\"}}\n    - {{id: \"{DEV}\"}}\n"
        ),
    );
    let daemon = Daemon::spawn(&proxy.endpoint, Vec::new(), &ws);
    daemon.wait_ready();
    for account in [PROD, DEV] {
        assert!(moto.roles_in(account)["payments-deployer"].contains(&SP2.to_string()));
    }

    proxy.hang_account(DEV);
    let t = Instant::now();
    ws.remove_tenant_member(PAYMENTS, SP2);
    let took = wait_for(
        Duration::from_secs(60),
        "the revocation in the account that answers",
        || !moto.roles_in(PROD)["payments-deployer"].contains(&SP2.to_string()),
    );
    println!(
        "revocation in {PROD} landed {} ms after the directory change while {DEV} hung (straggler floor {} s)",
        t.elapsed().as_millis(),
        5
    );
    assert!(took < Duration::from_secs(30), "{took:?}");

    // The hung account is reported, not taken as empty (once the pass has ended), and is
    // revoked once it answers.
    let mut dev = serde_json::Value::Null;
    wait_for(
        Duration::from_secs(30),
        "the hung account on /status",
        || {
            dev = daemon.status()["accounts"]
                .as_array()
                .and_then(|a| a.iter().find(|a| a["id"] == DEV).cloned())
                .unwrap_or_default();
            dev["unreachable"].is_string()
        },
    );
    assert!(
        dev["unreachable"]
            .as_str()
            .unwrap()
            .contains("left for the next pass"),
        "{dev}"
    );
    proxy.hang(false);
    drop(daemon);
    apply(Via::at(&proxy.endpoint), &ws, &[]);
    assert!(!moto.roles_in(DEV)["payments-deployer"].contains(&SP2.to_string()));
}

/// The membership fast path runs beside the full pass: while a full pass waits on a write
/// that an unrelated account never answers, a departure from a group mapped only in
/// another account is revoked there within seconds.
#[test]
fn a_revocation_lands_while_a_full_pass_waits_on_an_unrelated_account() {
    let (moto, proxy, ws) = two_accounts();
    // The deployers (and the function they may call) are in production only; the reporting
    // role is in both accounts.
    let only_prod = format!("spec:\n  accounts: {{ids: [\"{PROD}\"]}}\n");
    let payments = ws
        .read("policies/payments.yaml")
        .replacen(
            "spec:\n  provider: entra-prod",
            &format!("{only_prod}  provider: entra-prod"),
            1,
        )
        .replacen(
            "spec:\n  function: payments-api",
            &format!("{only_prod}  function: payments-api"),
            1,
        );
    assert_eq!(
        payments.matches(only_prod.as_str()).count(),
        2,
        "the selectors went in"
    );
    ws.write("policies/payments.yaml", &payments);
    ws.write(
        "trustsync.yaml",
        &format!(
            "audit: {{path: audit.jsonl}}\nrun: {{intervalSeconds: 3600, directoryPollSeconds: 1, policyPollSeconds: 1, shutdownSeconds: 5}}\naws: {{requestTimeoutSeconds: 120, maxRetrySeconds: 120}}\naccounts:\n  targets:\n    - {{id: \"{PROD}\"}}\n    - {{id: \"{DEV}\"}}\n"
        ),
    );
    let graph = GraphServer::start(&ws.path().join("examples/tenant.json"), 999);
    let daemon = Daemon::spawn(&proxy.endpoint, graph.env(CLIENT_SECRET), &ws);
    daemon.wait_ready();
    assert!(moto.roles_in(PROD)["payments-deployer"].contains(&SP2.to_string()));
    assert!(!moto.roles_in(DEV).contains_key("payments-deployer"));

    // A policy change starts a full pass; it reads both accounts and then waits, for as
    // long as the request timeout, on its write in the development account.
    proxy.hang_writes(DEV);
    let reporting = ws.read("policies/reporting.yaml");
    ws.write(
        "policies/reporting.yaml",
        &reporting.replace("tags: {team: reporting}", "tags: {team: reports}"),
    );
    readyz_names(&daemon, &format!("{DEV} us-east-1 iam TagRole"));

    let t = Instant::now();
    graph.remove_member(PAYMENTS, SP2);
    let took = wait_for(
        Duration::from_secs(30),
        "the revocation in production",
        || !moto.roles_in(PROD)["payments-deployer"].contains(&SP2.to_string()),
    );
    let waiting = daemon.status()["waitingOn"].clone();
    println!(
        "revoked in {PROD} {} ms after the Graph change while the full pass waited on {DEV}: {waiting}",
        t.elapsed().as_millis()
    );
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert!(
        waiting
            .as_array()
            .is_some_and(|w| w.iter().any(|r| r["request"]
                .as_str()
                .is_some_and(|r| r.contains(DEV) && r.contains("TagRole")))),
        "the full pass is still waiting on the development account: {waiting}"
    );
    // The session deny went in beside the trust.
    let prod = aws_sdk_iam::Client::new(&moto.in_account(PROD));
    assert!(moto
        .block_on(
            prod.get_role_policy()
                .role_name("payments-deployer")
                .policy_name("trustsync-revoked-sessions")
                .send()
        )
        .is_ok());

    let took = terminate(daemon);
    assert!(took < CHART_GRACE, "{took:?}");
    proxy.hang(false);
    apply(
        Via::at(&proxy.endpoint).env(&graph.env(CLIENT_SECRET)),
        &ws,
        &[],
    );
    let dev = aws_sdk_iam::Client::new(&moto.in_account(DEV));
    let role = moto
        .block_on(dev.get_role().role_name("reporting-reader").send())
        .unwrap();
    assert!(
        role.role()
            .unwrap()
            .tags()
            .iter()
            .any(|t| t.key() == "team" && t.value() == "reports"),
        "the write the full pass waited on is made once the account answers"
    );
    run_at(&proxy.endpoint, &ws, &["audit", "verify", "audit.jsonl"], 0);
}

/// The delta cache's periodic full read of the mapped groups holds no revocation back: a
/// full pass's full read waits on Graph's member pages (held 15 s each) while a departure
/// is read from the delta feed and revoked by the fast path.
#[test]
fn a_revocation_lands_while_a_full_directory_read_waits_on_graph() {
    let moto = Moto::start();
    moto.create_functions(&["payments-api"]);
    let ws = Workspace::new();
    ws.write(
        "trustsync.yaml",
        "audit: {path: audit.jsonl}\nrun: {intervalSeconds: 3600, directoryPollSeconds: 1, policyPollSeconds: 1}\ndirectory: {fullReadSeconds: 1}\n",
    );
    let graph = GraphServer::start(&ws.path().join("examples/tenant.json"), 999);
    let daemon = Daemon::start(&moto, &graph, &ws);
    daemon.wait_ready();
    assert!(moto
        .trusted_subs("payments-deployer")
        .contains(&SP2.to_string()));

    // A policy change starts a full pass (more than fullReadSeconds after the first one);
    // its full read of the groups waits on Graph.
    std::thread::sleep(Duration::from_millis(1500));
    graph.faults(serde_json::json!({"membersDelayMs": 15000}));
    let reporting = ws.read("policies/reporting.yaml");
    ws.write(
        "policies/reporting.yaml",
        &reporting.replace("tags: {team: reporting}", "tags: {team: reports}"),
    );
    readyz_names(&daemon, "$batch");

    let t = Instant::now();
    graph.remove_member(PAYMENTS, SP2);
    let took = wait_for(Duration::from_secs(60), "the revocation", || {
        !moto
            .trusted_subs("payments-deployer")
            .contains(&SP2.to_string())
    });
    let waiting = daemon.status()["waitingOn"].clone();
    println!(
        "revoked {} ms after the Graph change while the full read waited on Graph: {waiting}",
        t.elapsed().as_millis()
    );
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert!(
        waiting.to_string().contains("$batch"),
        "the full read is still waiting: {waiting}"
    );
    graph.faults(serde_json::json!({}));
    assert!(terminate(daemon) < CHART_GRACE);
}
