//! `trustsync run` end to end: the daemon against moto and the local Graph server.

mod support;

use std::time::{Duration, Instant};

use support::daemon::Daemon;
use support::proxy::{Faults, Proxy};
use support::*;

const SP1: &str = "5e1f0a2b-1111-4111-8111-000000000001";
const SP2: &str = "5e1f0a2b-1111-4111-8111-000000000002";
const SP4: &str = "5e1f0a2b-1111-4111-8111-000000000004";
const PAYMENTS: &str = "a1b2c3d4-0001-4000-8000-000000000001";

/// Checks the Prometheus text exposition format line by line; returns sample values.
fn parse_metrics(text: &str) -> std::collections::BTreeMap<String, f64> {
    let mut samples = std::collections::BTreeMap::new();
    for line in text.lines() {
        if line.is_empty() || line == "# EOF" {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let kind = rest.split_whitespace().next().unwrap();
            assert!(
                matches!(kind, "HELP" | "TYPE" | "UNIT"),
                "bad comment line: {line}"
            );
            continue;
        }
        let (name, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line}"));
        let metric = name.split('{').next().unwrap();
        assert!(
            metric
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name: {line}"
        );
        if name.contains('{') {
            assert!(name.ends_with('}'), "bad labels: {line}");
        }
        let v: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value: {line}"));
        samples.insert(name.to_string(), v);
    }
    samples
}

/// moto with the sample function, a workspace with this config, the local Graph server,
/// and a controller that is ready and has converged.
fn converged_controller(config: &str) -> (Moto, Workspace, GraphServer, Daemon) {
    let moto = Moto::start();
    moto.create_functions(&["payments-api"]);
    let ws = Workspace::new();
    ws.write("trustsync.yaml", config);
    let graph = GraphServer::start(&ws.path().join("examples/tenant.json"), 999);
    let daemon = Daemon::start(&moto, &graph, &ws);
    assert_eq!(daemon.get("/healthz").0, 200);
    daemon.wait_ready();
    assert_eq!(moto.trusted_subs("payments-deployer"), [SP1, SP2, SP4]);
    (moto, ws, graph, daemon)
}

#[test]
fn run_follows_directory_changes_repairs_drift_keeps_good_policies_and_serves_status() {
    let (moto, ws, graph, daemon) = converged_controller(
        "audit: {path: audit.jsonl}\nrun: {intervalSeconds: 4, directoryPollSeconds: 1, policyPollSeconds: 1}\n",
    );
    let first = parse_metrics(&daemon.get("/metrics").1);
    assert_eq!(first["trustsync_passes_total{outcome=\"success\"}"], 1.0);
    assert_eq!(
        first["trustsync_changes_applied_total{action=\"create-role\"}"],
        3.0
    );

    // A service principal leaves the group in Entra: access is gone within seconds.
    graph.remove_member(PAYMENTS, SP2);
    let latency = wait_for(Duration::from_secs(30), "trust policy update", || {
        moto.trusted_subs("payments-deployer") == [SP1, SP4]
    });
    println!(
        "membership removal reached the trust policy in {} ms",
        latency.as_millis()
    );

    // Drift made behind its back is repaired by the next timer pass.
    moto.block_on(
        moto.iam()
            .update_role()
            .role_name("reporting-reader")
            .max_session_duration(43200)
            .send(),
    )
    .unwrap();
    wait_for(Duration::from_secs(20), "drift repair", || {
        let r = moto
            .block_on(moto.iam().get_role().role_name("reporting-reader").send())
            .unwrap();
        r.role().unwrap().max_session_duration() == Some(7200)
    });

    // A broken policy file: the last good set keeps running, /status says why.
    let good = ws.read("policies/reporting.yaml");
    ws.write(
        "policies/reporting.yaml",
        &good.replace("maxSessionDuration: 7200", "maxSessionDuration: 7"),
    );
    wait_for(Duration::from_secs(20), "policy error in /status", || {
        daemon.status()["policy"]["error"].is_string()
    });
    let status = daemon.status();
    let error = status["policy"]["error"].as_str().unwrap();
    assert!(
        error.contains("reporting.yaml:11:5")
            && error.contains("the last good policy set keeps running"),
        "{error}"
    );
    moto.block_on(
        moto.iam()
            .update_role()
            .role_name("reporting-reader")
            .max_session_duration(3600)
            .send(),
    )
    .unwrap();
    wait_for(
        Duration::from_secs(20),
        "repair under the last good set",
        || {
            let r = moto
                .block_on(moto.iam().get_role().role_name("reporting-reader").send())
                .unwrap();
            r.role().unwrap().max_session_duration() == Some(7200)
        },
    );
    assert_eq!(
        daemon.status()["mappings"]["reporting-readers"]["state"],
        "Ready"
    );
    ws.write("policies/reporting.yaml", &good);
    wait_for(Duration::from_secs(20), "policy error cleared", || {
        daemon.status()["policy"]["error"].is_null()
    });

    // The counters moved.
    let later = parse_metrics(&daemon.get("/metrics").1);
    assert!(
        later["trustsync_passes_total{outcome=\"success\"}"]
            > first["trustsync_passes_total{outcome=\"success\"}"]
    );
    assert!(later["trustsync_changes_applied_total{action=\"revoke-trust\"}"] >= 1.0);
    assert!(later
        .keys()
        .any(|k| k.starts_with("trustsync_api_requests_total{service=\"graph\"")));
    assert_eq!(later["trustsync_managed_roles"], 3.0);
    assert!(later["trustsync_seconds_since_last_success"] < 30.0);

    let code = daemon.terminate();
    assert_eq!(code.code(), Some(0), "{}", ws.read("run.log"));

    // The audit log of all that verifies, and tampering is found and named.
    let out = moto.trustsync(ws.path(), &["audit", "verify", "audit.jsonl"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let log = ws.read("audit.jsonl");
    let lines: Vec<&str> = log.lines().collect();
    assert!(lines.len() > 5);
    // stdout carries the same lines, chain and all, for the cluster's log pipeline.
    let mirrored = ws.read("run.out");
    assert_eq!(mirrored.lines().collect::<Vec<_>>(), lines);
    let verify_fails_at = |text: &str, line: usize| {
        ws.write("tampered.jsonl", text);
        let out = moto.trustsync(ws.path(), &["audit", "verify", "tampered.jsonl"]);
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("line {line}:")),
            "expected line {line}: {err}"
        );
    };
    verify_fails_at(
        &log.replacen("revoke-trust", "revoke-trus1", 1),
        lines
            .iter()
            .position(|l| l.contains("revoke-trust"))
            .unwrap()
            + 2,
    );
    let mut deleted = lines.clone();
    deleted.remove(3);
    verify_fails_at(&(deleted.join("\n") + "\n"), 4);
    verify_fails_at(&log[..log.len() - 10], lines.len());
}

/// A moto account with the example function, and a workspace with this config.
fn account_and_workspace(config: &str) -> (Moto, Workspace) {
    let moto = Moto::start();
    moto.create_functions(&["payments-api"]);
    let ws = Workspace::new();
    ws.write("trustsync.yaml", config);
    (moto, ws)
}

fn change_lines(ws: &Workspace) -> usize {
    std::fs::read_to_string(ws.path().join("audit.jsonl"))
        .map(|t| t.matches("\"type\":\"change\"").count())
        .unwrap_or(0)
}

#[test]
fn sigterm_mid_apply_exits_zero_with_the_audit_log_intact() {
    let (moto, ws) =
        account_and_workspace("audit: {path: audit.jsonl}\nrun: {intervalSeconds: 300}\n");
    ws.many_roles(150);
    let graph = GraphServer::start(&ws.path().join("examples/tenant.json"), 999);
    let daemon = Daemon::start(&moto, &graph, &ws);
    wait_for(Duration::from_secs(60), "apply under way", || {
        change_lines(&ws) >= 5
    });
    let code = daemon.terminate();
    assert_eq!(code.code(), Some(0), "{}", ws.read("run.log"));
    let out = moto.trustsync(ws.path(), &["audit", "verify", "audit.jsonl"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let log = ws.read("audit.jsonl");
    let last = log.lines().last().unwrap();
    assert!(
        last.contains("\"type\":\"pass\"") && last.contains("\"outcome\":\"interrupted\""),
        "{last}"
    );
    assert!(log.contains("shutting down; left for the next pass"));
}

#[test]
fn a_crash_mid_apply_is_repaired_by_the_next_pass() {
    let (moto, ws) =
        account_and_workspace("audit: {path: audit.jsonl}\nrun: {intervalSeconds: 300}\n");
    ws.many_roles(150);
    let graph = GraphServer::start(&ws.path().join("examples/tenant.json"), 999);
    let mut daemon = Daemon::start(&moto, &graph, &ws);
    wait_for(Duration::from_secs(60), "apply under way", || {
        change_lines(&ws) >= 5
    });
    daemon.child.kill().unwrap(); // SIGKILL: no chance to clean up
    daemon.child.wait().unwrap();
    drop(daemon);
    let partial = change_lines(&ws);
    assert!(
        partial < 450,
        "the kill came too late to test anything ({partial} changes)"
    );

    let env = graph.env(CLIENT_SECRET);
    apply(Via::moto(&moto).env(&env), &ws, &[]);
    let out = run_env(&moto, &ws, &env, &["plan", "--detailed-exitcode"], 0);
    assert!(stdout(&out).contains("No changes"), "{}", show(&out));
    assert!(moto.role_exists("bulk-149"));
    run_env(&moto, &ws, &env, &["audit", "verify", "audit.jsonl"], 0);
}

/// The audit records of a log, parsed.
fn records(ws: &Workspace) -> Vec<serde_json::Value> {
    ws.read("audit.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Lines (1-based) of the intents no outcome or recovery answers.
fn unanswered(records: &[serde_json::Value]) -> Vec<u64> {
    let answered: std::collections::BTreeSet<u64> = records
        .iter()
        .filter_map(|r| r["intentLine"].as_u64())
        .collect();
    (1..=records.len() as u64)
        .filter(|n| records[*n as usize - 1]["type"] == "intent" && !answered.contains(n))
        .collect()
}

#[test]
fn a_kill_between_a_write_and_its_outcome_is_recovered_from_aws() {
    let moto = Moto::start();
    moto.create_functions(&["payments-api"]);
    // Every AWS request is held 400 ms: a kill right after an intent reaches the log lands
    // between that write and its outcome.
    let proxy = Proxy::start(
        &moto.endpoint,
        Faults {
            delay_ms: 400,
            ..Faults::default()
        },
        7,
    );
    let ws = Workspace::new();
    ws.write(
        "trustsync.yaml",
        "audit: {path: audit.jsonl}\nrun: {intervalSeconds: 300}\n",
    );
    ws.many_roles(20);
    let graph = GraphServer::start(&ws.path().join("examples/tenant.json"), 999);
    let mut daemon = Daemon::spawn(&proxy.endpoint, graph.env(CLIENT_SECRET), &ws);
    wait_for(Duration::from_secs(60), "writes under way", || {
        std::fs::read_to_string(ws.path().join("audit.jsonl"))
            .is_ok_and(|t| t.matches("\"type\":\"intent\"").count() >= 3)
    });
    daemon.child.kill().unwrap(); // SIGKILL: no outcome gets written
    daemon.child.wait().unwrap();
    drop(daemon);
    let open = unanswered(&records(&ws));
    assert!(!open.is_empty(), "the kill found no write under way");

    // The next writer resolves each one from what AWS shows, then carries on.
    let env = graph.env(CLIENT_SECRET);
    apply(Via::moto(&moto).env(&env), &ws, &[]);
    let after = records(&ws);
    assert!(unanswered(&after).is_empty(), "every intent is answered");
    for line in &open {
        let recovered: Vec<&serde_json::Value> = after
            .iter()
            .filter(|r| r["type"] == "recovered" && r["intentLine"] == *line)
            .collect();
        assert_eq!(recovered.len(), 1, "intent on line {line}");
        let intent = &after[*line as usize - 1];
        assert_eq!(recovered[0]["target"], intent["target"]);
        assert!(recovered[0]["landed"].is_boolean(), "{}", recovered[0]);
    }
    let out = run_env(&moto, &ws, &env, &["plan", "--detailed-exitcode"], 0);
    assert!(stdout(&out).contains("No changes"), "{}", show(&out));
    run_env(&moto, &ws, &env, &["audit", "verify", "audit.jsonl"], 0);
}

#[test]
fn a_second_writer_on_the_same_log_is_refused() {
    let (moto, ws) =
        account_and_workspace("audit: {path: audit.jsonl}\nrun: {intervalSeconds: 300}\n");
    let graph = GraphServer::start(&ws.path().join("examples/tenant.json"), 999);
    let daemon = Daemon::start(&moto, &graph, &ws);
    daemon.wait_ready();
    let lines = ws.read("audit.jsonl").lines().count();
    let out = apply_unsettled(
        Via::moto(&moto).env(&graph.env(CLIENT_SECRET)),
        &ws,
        &[],
        1,
        Unsettled::Interrupted("the controller holds the audit log: a second writer is refused"),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use by another trustsync writer"), "{err}");
    assert_eq!(
        ws.read("audit.jsonl").lines().count(),
        lines,
        "nothing interleaves"
    );
    assert_eq!(daemon.terminate().code(), Some(0));
}

#[test]
fn one_failing_mapping_does_not_stop_the_others() {
    let moto = Moto::start();
    moto.create_functions(&["payments-api"]);
    let ws = Workspace::new();
    ws.write(
        "trustsync.yaml",
        "audit: {path: audit.jsonl}\nrun: {intervalSeconds: 2, directoryPollSeconds: 1}\n",
    );
    // AWS refuses to attach a managed policy that does not exist.
    let text = ws.read("policies/reporting.yaml").replace(
        "    maxSessionDuration: 7200\n",
        "    maxSessionDuration: 7200\n    managedPolicies: [arn:aws:iam::aws:policy/ThisPolicyDoesNotExist]\n",
    );
    ws.write("policies/reporting.yaml", &text);
    let graph = GraphServer::start(&ws.path().join("examples/tenant.json"), 999);
    let daemon = Daemon::start(&moto, &graph, &ws);
    wait_for(Duration::from_secs(30), "first pass", || {
        daemon.status()["lastPass"].is_object()
    });
    let status = daemon.status();
    let failing = &status["mappings"]["reporting-readers"];
    assert_eq!(failing["state"], "Error", "{status:#}");
    assert!(
        failing["reason"]
            .as_str()
            .unwrap()
            .contains("attach-managed-policy failed"),
        "{failing}"
    );
    for ok in [
        "payments-deployers",
        "payments-runtime",
        "payments-api",
        "entra-prod",
    ] {
        assert_eq!(status["mappings"][ok]["state"], "Ready", "{ok}: {status:#}");
    }
    assert_eq!(moto.trusted_subs("payments-deployer"), [SP1, SP2, SP4]);
    // Its other changes went through; the failing one is retried on a back-off.
    assert_eq!(
        moto.trusted_subs("reporting-reader"),
        ["5e1f0a2b-1111-4111-8111-000000000003"]
    );
    let metrics = parse_metrics(&daemon.get("/metrics").1);
    assert!(metrics["trustsync_changes_failed_total{action=\"attach-managed-policy\"}"] >= 1.0);
    assert_eq!(metrics["trustsync_mappings{state=\"Error\"}"], 1.0);
    assert_eq!(daemon.terminate().code(), Some(0));
}

/// A delta the controller never sees (lost on the Graph side) is corrected by the
/// periodic full read of the mapped groups, and counted.
#[test]
fn a_missed_delta_is_corrected_by_the_periodic_full_read() {
    let (moto, ws, graph, daemon) = converged_controller(
        "audit: {path: audit.jsonl}\nrun: {intervalSeconds: 1, directoryPollSeconds: 1, policyPollSeconds: 1}\ndirectory: {fullReadSeconds: 4}\n",
    );

    graph.faults(serde_json::json!({"loseDeltaEvents": true}));
    graph.remove_member(PAYMENTS, SP2);
    let latency = wait_for(Duration::from_secs(30), "correction by full read", || {
        moto.trusted_subs("payments-deployer") == [SP1, SP4]
    });
    println!("a lost delta was corrected in {} ms", latency.as_millis());
    // Metrics are recorded when the pass ends; the revocation lands before that.
    wait_for(Duration::from_secs(10), "the difference counted", || {
        parse_metrics(&daemon.get("/metrics").1)["trustsync_directory_full_read_differences_total"]
            >= 1.0
    });
    assert!(
        ws.read("run.log").contains("differed from a full read"),
        "{}",
        ws.read("run.log")
    );
    assert_eq!(daemon.terminate().code(), Some(0));
}

/// Start-up fits Kubernetes: with AWS unreachable the listener is already up, `/healthz`
/// answers, `/readyz` says what it waits for, and SIGTERM ends the process at once.
#[test]
fn with_aws_unreachable_the_probes_answer_and_sigterm_is_honoured() {
    let ws = Workspace::new();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let started = Instant::now();
    let daemon = Daemon::spawn(&endpoint, Vec::new(), &ws);
    assert_eq!(daemon.get("/healthz").0, 200);
    println!(
        "/healthz answered {} ms after start",
        started.elapsed().as_millis()
    );
    wait_for(Duration::from_secs(20), "readyz to say why", || {
        let (code, body) = daemon.get("/readyz");
        code == 503 && body.contains("waiting for reading the AWS caller identity")
    });
    assert!(daemon.status()["waitingFor"].is_string());
    let asked = Instant::now();
    let code = daemon.terminate();
    assert_eq!(code.code(), Some(0), "{}", ws.read("run.log"));
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "SIGTERM took {:?}",
        asked.elapsed()
    );
}

/// Case 5 of the revocation issue: `apply` (full reads, Graph's case-insensitive
/// `$filter`) and `run` (the delta cache) resolve a display name written in other letter
/// case to the same group, and the controller revokes through it.
#[test]
fn one_shot_commands_and_the_controller_resolve_names_alike() {
    let upper = |ws: &Workspace| {
        let p = ws.read("policies/payments.yaml");
        ws.write(
            "policies/payments.yaml",
            &p.replace(
                "{displayName: sg-aws-payments-deployers}",
                "{displayName: SG-AWS-Payments-Deployers}",
            ),
        );
    };
    // The one-shot path, through Graph's $filter.
    let moto = Moto::start();
    moto.create_functions(&["payments-api"]);
    let ws = Workspace::new();
    upper(&ws);
    assert!(ws
        .read("policies/payments.yaml")
        .contains("SG-AWS-Payments-Deployers"));
    ws.write("trustsync.yaml", "audit: {path: audit.jsonl}\n");
    let graph = GraphServer::start(&ws.path().join("examples/tenant.json"), 999);
    apply(Via::moto(&moto).env(&graph.env(CLIENT_SECRET)), &ws, &[]);
    assert_eq!(moto.trusted_subs("payments-deployer"), [SP1, SP2, SP4]);

    // The controller, on a fresh account (nothing pinned yet), through the delta cache.
    let moto = Moto::start();
    moto.create_functions(&["payments-api"]);
    let ws = Workspace::new();
    upper(&ws);
    ws.write(
        "trustsync.yaml",
        "audit: {path: audit.jsonl}\nrun: {intervalSeconds: 60, directoryPollSeconds: 1, policyPollSeconds: 1}\n",
    );
    let graph = GraphServer::start(&ws.path().join("examples/tenant.json"), 999);
    let daemon = Daemon::start(&moto, &graph, &ws);
    daemon.wait_ready();
    assert_eq!(moto.trusted_subs("payments-deployer"), [SP1, SP2, SP4]);
    graph.remove_member(PAYMENTS, SP2);
    wait_for(
        Duration::from_secs(30),
        "revocation through the delta",
        || moto.trusted_subs("payments-deployer") == [SP1, SP4],
    );
    assert_eq!(daemon.terminate().code(), Some(0));
}

/// Many accounts: `/status` and `/metrics` show each; the one whose spoke role STS refuses
/// is reported while the other is reconciled.
#[test]
fn the_controller_shows_each_account_and_reconciles_the_reachable_one() {
    let moto = Moto::start();
    moto.create_functions_in(Some("111111111111"), &["payments-api"]);
    let proxy = Proxy::start(&moto.endpoint, Faults::default(), 7);
    proxy.deny_assume_role("arn:aws:iam::333333333333:role/trustsync-spoke");
    let ws = Workspace::new();
    ws.write(
        "trustsync.yaml",
        "audit:\n  path: audit.jsonl\ndirectory:\n  tenantFile: examples/tenant.json\naccounts:\n  targets:\n    - {id: \"111111111111\"}\n    - {id: \"333333333333\"}\n",
    );
    let daemon = Daemon::spawn(&proxy.endpoint, Vec::new(), &ws);
    wait_for(Duration::from_secs(60), "the first pass", || {
        daemon.status()["lastPass"].is_object()
    });
    let status = daemon.status();
    let accounts = status["accounts"].as_array().unwrap();
    assert_eq!(accounts.len(), 2, "{status}");
    assert_eq!(accounts[0]["id"], "111111111111");
    assert!(accounts[0]["applied"].as_u64().unwrap() > 0, "{status}");
    assert!(accounts[0].get("unreachable").is_none(), "{status}");
    assert_eq!(accounts[1]["id"], "333333333333");
    assert!(
        accounts[1]["unreachable"]
            .as_str()
            .unwrap()
            .contains("AccessDenied"),
        "{status}"
    );
    assert_eq!(
        status["lastPass"]["outcome"], "held",
        "the pass did what it could"
    );
    let metrics = parse_metrics(&daemon.get("/metrics").1);
    assert_eq!(
        metrics[r#"trustsync_account_reachable{account="111111111111"}"#],
        1.0
    );
    assert_eq!(
        metrics[r#"trustsync_account_reachable{account="333333333333"}"#],
        0.0
    );
    assert!(moto
        .roles_in("111111111111")
        .contains_key("payments-deployer"));
    assert!(daemon.terminate().success());
}

/// A merged change past a guardrail that CI never checked: the controller reports it in
/// /status, changes nothing for that mapping but its revocation, and the rest stays ready.
#[test]
fn the_controller_enforces_the_guardrails_and_still_revokes() {
    let (moto, ws, graph, daemon) = converged_controller(
        "audit: {path: audit.jsonl}\nrun: {intervalSeconds: 60, directoryPollSeconds: 1, policyPollSeconds: 1}\n",
    );
    let text = ws.read("policies/payments.yaml").replacen(
        "managedPolicies: [arn:aws:iam::aws:policy/AWSLambda_ReadOnlyAccess]",
        "managedPolicies: [arn:aws:iam::aws:policy/AWSLambda_ReadOnlyAccess, arn:aws:iam::aws:policy/AdministratorAccess]",
        1,
    );
    ws.write("policies/payments.yaml", &text);
    graph.remove_member(PAYMENTS, SP2);
    wait_for(Duration::from_secs(30), "the revocation", || {
        moto.trusted_subs("payments-deployer") == [SP1, SP4]
    });
    wait_for(Duration::from_secs(30), "the guardrail in /status", || {
        let m = &daemon.status()["mappings"]["payments-deployers"];
        m["state"] == "Blocked" && m["reason"].as_str().unwrap_or("").contains("guardrail")
    });
    assert!(!moto
        .attached_policies("payments-deployer")
        .iter()
        .any(|p| p == "AdministratorAccess"));
    let status = daemon.status();
    for ok in ["payments-runtime", "payments-api", "reporting-readers"] {
        assert_eq!(status["mappings"][ok]["state"], "Ready", "{ok}: {status:#}");
    }
    assert_eq!(daemon.terminate().code(), Some(0));
}

/// The controller's delta cache learns a new member's application owner from Graph
/// (`/servicePrincipals/{id}`, once): a service principal another tenant controls joining a
/// mapped group is not trusted, and a notice names it.
#[test]
fn the_controller_does_not_trust_an_application_another_tenant_owns() {
    let (moto, ws) = account_and_workspace(
        "audit: {path: audit.jsonl}\nrun: {intervalSeconds: 60, directoryPollSeconds: 1}\n",
    );
    let foreign = "5e1f0a2b-7777-4777-8777-000000000001";
    ws.edit_tenant(|t| {
        t["servicePrincipals"].as_array_mut().unwrap().push(serde_json::json!({
            "id": foreign, "appId": "0e0e0e0e-0000-4000-8000-000000000001",
            "displayName": "vendor-sync", "appOwnerOrganizationId": "9f9f9f9f-0000-4000-8000-000000000001"}));
    });
    let graph = GraphServer::start(&ws.path().join("examples/tenant.json"), 999);
    let daemon = Daemon::start(&moto, &graph, &ws);
    daemon.wait_ready();
    graph.add_member(PAYMENTS, foreign);
    graph.remove_member(PAYMENTS, SP2);
    wait_for(Duration::from_secs(30), "the revocation", || {
        moto.trusted_subs("payments-deployer") == [SP1, SP4]
    });
    assert!(
        !moto
            .trusted_subs("payments-deployer")
            .iter()
            .any(|s| s == foreign),
        "never trusted"
    );
    let stats = graph.stats();
    assert!(
        stats["requests"]["servicePrincipal"].as_u64().unwrap_or(0) >= 1,
        "learnt from Graph: {stats}"
    );
    assert_eq!(daemon.terminate().code(), Some(0));
}

/// SIGTERM while Graph throttles with a long Retry-After: the controller's Graph retries
/// end on the stop signal instead of waiting the delay out.
#[test]
fn sigterm_does_not_wait_out_a_graph_back_off() {
    let (moto, ws) = account_and_workspace(
        "audit: {path: audit.jsonl}\nrun: {intervalSeconds: 60, directoryPollSeconds: 1}\n",
    );
    let graph = GraphServer::start(&ws.path().join("examples/tenant.json"), 999);
    graph.faults(serde_json::json!({"throttle": 1000, "retryAfter": 30}));
    let daemon = Daemon::start(&moto, &graph, &ws);
    wait_for(Duration::from_secs(30), "a throttled Graph request", || {
        graph.stats()["requests"].to_string().contains("delta")
    });
    std::thread::sleep(Duration::from_millis(500));
    let asked = Instant::now();
    let status = daemon.terminate();
    let took = asked.elapsed();
    assert_eq!(status.code(), Some(0));
    assert!(
        took < Duration::from_secs(10),
        "exited {took:?} after SIGTERM, inside a 30 s Retry-After"
    );
}

/// A controller started on an audit log whose chain is broken in the middle begins a new
/// segment and goes on; the rotation shows on /status and in a metric until a person
/// acknowledges it, which, while the controller holds the log, it records at its next pass.
#[test]
fn a_rotated_audit_log_is_reported_until_acknowledged_through_the_running_controller() {
    let moto = Moto::start();
    moto.create_functions(&["payments-api"]);
    let ws = Workspace::new();
    // Only an auditor's signed acknowledgement counts (issue 36): its public half is
    // configured, its private half is the auditor's.
    {
        use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
        let auditor = ed25519_dalek::SigningKey::from_bytes(&[77; 32]);
        ws.write(
            "auditor-key.pem",
            &auditor.to_pkcs8_pem(Default::default()).unwrap(),
        );
        let public = auditor
            .verifying_key()
            .to_public_key_pem(Default::default());
        ws.write("auditor.pub", &public.unwrap());
    }
    ws.write(
        "trustsync.yaml",
        "audit: {path: audit.jsonl, auditorPublicKeyFiles: [auditor.pub]}\ndirectory: {tenantFile: examples/tenant.json}\nrun: {intervalSeconds: 3600, directoryPollSeconds: 1}\n",
    );
    apply(Via::moto(&moto), &ws, &[]);
    let text = ws.read("audit.jsonl");
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    lines[3] = lines[3].replacen("\"time\":\"", "\"time\":\"1", 1);
    ws.write("audit.jsonl", &(lines.join("\n") + "\n"));

    let daemon = Daemon::spawn(&moto.endpoint, Vec::new(), &ws);
    daemon.wait_ready();
    let status = daemon.status();
    let attention = status["auditAttention"].as_str().unwrap_or_default();
    assert!(attention.contains("audit acknowledge"), "{status:#}");
    let metric =
        |d: &Daemon| parse_metrics(&d.get("/metrics").1)["trustsync_audit_rotation_unacknowledged"];
    assert_eq!(metric(&daemon), 1.0);

    // A request left by hand (unsigned) is ignored and named on /status.
    ws.write(
        "audit.jsonl.acknowledge",
        &serde_json::json!({"by": "mallory", "previousSegment": ""}).to_string(),
    );
    ws.remove_tenant_member(PAYMENTS, SP4);
    wait_for(
        Duration::from_secs(30),
        "the hand-written acknowledgement reported",
        || {
            daemon.status()["auditAttention"]
                .as_str()
                .is_some_and(|a| a.contains("mallory"))
        },
    );
    assert_eq!(metric(&daemon), 1.0);
    let out = acknowledge(
        &moto,
        &ws,
        ("alice@example.com", "auditor-key.pem", None),
        0,
    );
    assert!(
        stdout(&out).contains("left the signed acknowledgement"),
        "{}",
        show(&out)
    );
    // The next pass (a directory change starts one) records it.
    ws.remove_tenant_member(PAYMENTS, SP2);
    wait_for(
        Duration::from_secs(30),
        "the acknowledgement recorded",
        || daemon.status().get("auditAttention").is_none(),
    );
    assert_eq!(metric(&daemon), 0.0);
    drop(daemon);
    let out = run_ok(&moto, &ws, &["audit", "verify", "audit.jsonl"], 0);
    assert!(stdout(&out).contains("previous segment"), "{}", show(&out));
    assert!(ws
        .read("audit.jsonl")
        .contains("\"by\":\"alice@example.com\""));
}

/// Kills, then a power cut's torn line, then a member leaves: the next `apply` moves the
/// torn line aside, resolves every write the kills left open from what AWS shows, and
/// revokes; the log verifies and records the repair.
#[test]
fn kills_then_a_torn_line_then_a_departure_the_member_still_loses_the_role() {
    let moto = Moto::start();
    moto.create_functions(&["payments-api"]);
    let proxy = Proxy::start(
        &moto.endpoint,
        Faults {
            delay_ms: 300,
            ..Faults::default()
        },
        11,
    );
    let ws = Workspace::new();
    ws.write(
        "trustsync.yaml",
        "audit: {path: audit.jsonl}\ndirectory: {tenantFile: examples/tenant.json}\n",
    );
    ws.many_roles(12);
    let mut killed = 0;
    for round in 0..3 {
        let before = std::fs::read_to_string(ws.path().join("audit.jsonl"))
            .map(|t| t.matches("\"type\":\"intent\"").count())
            .unwrap_or(0);
        let mut child = spawn_apply(
            Via::at(&proxy.endpoint),
            &ws,
            &[],
            Unsettled::Interrupted("killed once a write is under way"),
        );
        let landed = std::panic::catch_unwind(|| {
            wait_for(Duration::from_secs(60), "a write under way", || {
                std::fs::read_to_string(ws.path().join("audit.jsonl"))
                    .is_ok_and(|t| t.matches("\"type\":\"intent\"").count() > before)
            })
        });
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        assert!(landed.is_ok(), "round {round}: no write started");
        killed += 1;
    }
    let open = unanswered(&records(&ws));
    assert!(!open.is_empty(), "the kills left no write open");

    // The power cut: half a line at the end.
    let log = ws.read("audit.jsonl");
    ws.write(
        "audit.jsonl",
        &format!("{log}{{\"time\":\"2026-12-04T03:00:00Z\",\"type\":\"intent\",\"act"),
    );
    ws.remove_tenant_member(PAYMENTS, SP2);
    let t = Instant::now();
    apply(Via::at(&proxy.endpoint), &ws, &[]);
    println!(
        "after {killed} kills and a torn line, the revocation landed in {} ms (every request held 300 ms)",
        t.elapsed().as_millis()
    );
    assert_eq!(moto.trusted_subs("payments-deployer"), [SP1, SP4]);
    let after = records(&ws);
    assert!(unanswered(&after).is_empty(), "every intent is answered");
    assert_eq!(after.iter().filter(|r| r["type"] == "repaired").count(), 1);
    for line in &open {
        assert!(
            after
                .iter()
                .any(|r| r["type"] == "recovered" && r["intentLine"] == *line),
            "intent on line {line} is recovered"
        );
    }
    run_at(&proxy.endpoint, &ws, &["audit", "verify", "audit.jsonl"], 0);
}

/// A membership change takes the fast path: the controller reads the affected role, writes
/// its trust and the session deny, and nothing else of the account; the full pass stays on
/// its timer.
#[test]
fn a_departure_takes_the_fast_path_reading_only_the_affected_role() {
    let moto = Moto::start();
    moto.create_functions(&["payments-api"]);
    let proxy = Proxy::start(&moto.endpoint, Faults::default(), 5);
    let ws = Workspace::new();
    ws.write(
        "trustsync.yaml",
        "audit: {path: audit.jsonl}\nrun: {intervalSeconds: 3600, directoryPollSeconds: 1}\n",
    );
    let graph = GraphServer::start(&ws.path().join("examples/tenant.json"), 999);
    let daemon = Daemon::spawn(&proxy.endpoint, graph.env(CLIENT_SECRET), &ws);
    daemon.wait_ready();
    assert_eq!(moto.trusted_subs("payments-deployer"), [SP1, SP2, SP4]);
    let passes = || {
        daemon.status()["lastPass"]["time"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let first = passes();
    proxy.reset();

    let landed = moto.revoke_through_graph(&graph, (PAYMENTS, SP2), "payments-deployer");
    wait_for(Duration::from_secs(30), "the pass to end", || {
        passes() != first
    });
    let counts = proxy.counts();
    println!(
        "fast path: revoked {} ms after the Graph change (poll 1 s), {} AWS requests: {:?}",
        landed.as_millis(),
        counts.total(),
        counts.requests
    );
    // Read the role (its session-deny policy is known from the controller's own passes);
    // write the trust and the session deny. The removal baseline goes into the audit log
    // with the change, not into a tag. Nothing account-wide (GetAccountAuthorizationDetails,
    // ListRoles, the tagging API, Lambda), whatever the size of the account.
    let ops: Vec<&str> = counts.requests.keys().map(String::as_str).collect();
    assert_eq!(
        ops,
        ["GetRole", "PutRolePolicy", "UpdateAssumeRolePolicy"],
        "only the affected role is read and written: {counts:?}"
    );
    assert_eq!(counts.total(), 3, "{counts:?}");
    // The session deny is in place, and the other mappings' roles were not read.
    assert!(moto
        .block_on(
            moto.iam()
                .get_role_policy()
                .role_name("payments-deployer")
                .policy_name("trustsync-revoked-sessions")
                .send()
        )
        .is_ok());
    // A full plan afterwards finds nothing the fast path left half done.
    let out = run_env_at(
        &proxy.endpoint,
        &ws,
        &graph.env(CLIENT_SECRET),
        &["plan", "--detailed-exitcode"],
        0,
    );
    assert!(stdout(&out).contains("No changes"), "{}", show(&out));

    // A second departure within the safety window is measured against the baseline the
    // first one recorded in the audit log (3 principals): two of three gone is over the
    // limit, so it is held, where the role's own count (2, one leaving) would let it pass.
    graph.remove_member(PAYMENTS, SP1);
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        moto.trusted_subs("payments-deployer")
            .contains(&SP1.to_string()),
        "held by the removal limit"
    );
    drop(daemon);
    let out = run_env_at(
        &proxy.endpoint,
        &ws,
        &graph.env(CLIENT_SECRET),
        &["plan"],
        1,
    );
    let text = stdout(&out);
    assert!(
        text.contains("mapping-removal-limit") && text.contains("2 removed") && text.contains(SP1),
        "{}",
        show(&out)
    );
}

/// A held mass removal released while `run` runs (issue 34): `trustsync release` leaves the
/// release for the controller, which records who released it and why in the audit log and
/// lets the held removals through in the fast pass it starts at once.
#[test]
fn a_held_removal_released_while_run_runs_takes_effect_within_one_fast_pass() {
    let (moto, ws, graph, _daemon) = converged_controller(
        "audit: {path: audit.jsonl}\nrun: {intervalSeconds: 3600, directoryPollSeconds: 1}\n",
    );
    // Two of three leave at once: over the 50% limit, held.
    graph.remove_member(PAYMENTS, SP1);
    graph.remove_member(PAYMENTS, SP2);
    wait_for(Duration::from_secs(30), "the removal to be held", || {
        ws.read("audit.jsonl").contains("mapping-removal-limit")
    });
    assert_eq!(moto.trusted_subs("payments-deployer"), [SP1, SP2, SP4]);

    // An unknown document is refused by name; the real one is left for the controller.
    let out = run_env_at(
        &moto.endpoint,
        &ws,
        &graph.env(CLIENT_SECRET),
        &[
            "release",
            "payments-deployerz",
            "--by",
            "oncall@example.com",
        ],
        1,
    );
    assert!(
        show(&out).contains("no RoleMapping or AccessAssignment named `payments-deployerz`"),
        "{}",
        show(&out)
    );
    let asked = std::time::Instant::now();
    let out = run_env_at(
        &moto.endpoint,
        &ws,
        &graph.env(CLIENT_SECRET),
        &[
            "release",
            "payments-deployers",
            "--by",
            "oncall@example.com",
            "--note",
            "INC-42: the team moved",
        ],
        0,
    );
    assert!(
        stdout(&out).contains("running controller"),
        "{}",
        show(&out)
    );
    wait_for(Duration::from_secs(15), "the released removal", || {
        moto.trusted_subs("payments-deployer") == [SP4]
    });
    println!(
        "release: held removal applied {} ms after `trustsync release`",
        asked.elapsed().as_millis()
    );
    // The pass line after the release is written once the pass's writes are done.
    let after = |audit: &str| -> String {
        audit
            .find("\"type\":\"released\"")
            .map(|i| audit[i..].to_string())
            .unwrap_or_default()
    };
    wait_for(
        Duration::from_secs(10),
        "the pass line after the release",
        || after(&ws.read("audit.jsonl")).contains("\"trigger\":\"fast-path\""),
    );
    let audit = ws.read("audit.jsonl");
    let released = audit
        .lines()
        .find(|l| l.contains("\"type\":\"released\""))
        .expect("the release is in the audit log");
    assert!(
        released.contains("oncall@example.com") && released.contains("INC-42"),
        "{released}"
    );
    let after_release = after(&audit);
    assert!(
        after_release.contains("\"revoke-trust\"")
            && after_release.contains("\"trigger\":\"fast-path\""),
        "revoked by the fast pass the release started"
    );
    // The request was taken (once): nothing is left next to the log.
    assert!(ws.path().read_dir().unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .contains(".release.")));
}

/// Whoever can write the audit volume appends, while the controller is stopped, a correctly
/// chained (but unsigned) intent and outcome that pin the role's mapping to a group of
/// their own (the pin's value is public: the group's id and a hash of the display name).
/// After a restart the controller takes no pin from lines after the last signed checkpoint:
/// it keeps following the group it pinned, records the lines as unvouched, and the
/// attacker's member never enters the trust policy.
#[test]
fn a_forged_unsigned_pin_appended_while_stopped_is_not_followed_after_a_restart() {
    use ed25519_dalek::pkcs8::EncodePrivateKey;
    const PIN_TAG: &str = "trustsync.dev/group";
    const SP3: &str = "5e1f0a2b-1111-4111-8111-000000000003";
    let moto = Moto::start();
    moto.create_functions(&["payments-api"]);
    let ws = Workspace::new();
    let key = ed25519_dalek::SigningKey::from_bytes(&[42; 32]);
    ws.write(
        "signing-key.pem",
        &key.to_pkcs8_pem(Default::default()).unwrap(),
    );
    ws.write(
        "trustsync.yaml",
        "audit: {path: audit.jsonl, signingKeyFile: signing-key.pem}\ndirectory: {tenantFile: examples/tenant.json}\nrun: {intervalSeconds: 3600, directoryPollSeconds: 1}\n",
    );
    apply(Via::moto(&moto), &ws, &[]);
    assert_eq!(moto.trusted_subs("payments-deployer"), [SP1, SP2, SP4]);
    let tags = |moto: &Moto| -> std::collections::BTreeMap<String, String> {
        moto.block_on(
            moto.iam()
                .list_role_tags()
                .role_name("payments-deployer")
                .send(),
        )
        .unwrap()
        .tags()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect()
    };
    let pin = tags(&moto)[PIN_TAG].clone();
    assert!(pin.starts_with(PAYMENTS), "{pin}");

    // The attacker's group, and lines that say trustsync pinned the mapping to it.
    let theirs = "dddddddd-0000-4000-8000-000000000002";
    ws.edit_tenant(|t| {
        t["groups"].as_array_mut().unwrap().push(serde_json::json!({
            "id": theirs, "displayName": "some-other-group", "members": [SP3]
        }));
    });
    let forged = trustsync::sources::directory::pin_value(theirs, "sg-aws-payments-deployers");
    let text = ws.read("audit.jsonl");
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let (intent_at, intent) = lines
        .iter()
        .enumerate()
        .find(|(_, l)| {
            l.contains("\"type\":\"intent\"") && l.contains(&pin) && l.contains("payments-deployer")
        })
        .map(|(i, l)| (i + 1, l.clone()))
        .expect("the intent that wrote the pin");
    let outcome = lines
        .iter()
        .find(|l| {
            l.contains("\"type\":\"change\"") && l.contains(&format!("\"intentLine\":{intent_at},"))
        })
        .or_else(|| {
            lines.iter().find(|l| {
                l.contains("\"type\":\"change\"")
                    && l.contains(&format!("\"intentLine\":{intent_at}}}"))
            })
        })
        .expect("its outcome")
        .clone();
    let hash = |s: &str| -> String {
        use sha2::Digest;
        sha2::Sha256::digest(s.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let new_intent_at = lines.len() + 1;
    let mut chain = |raw: String| {
        let mut v: serde_json::Value = serde_json::from_str(&raw.replace(&pin, &forged)).unwrap();
        v["prevHash"] = serde_json::json!(hash(lines.last().unwrap()));
        if v["type"] == "change" {
            v["intentLine"] = serde_json::json!(new_intent_at);
        }
        lines.push(serde_json::to_string(&v).unwrap());
    };
    chain(intent);
    chain(outcome);
    ws.write("audit.jsonl", &(lines.join("\n") + "\n"));
    // The chain holds: without signatures nothing tells these lines apart.
    run_ok(&moto, &ws, &["audit", "verify", "audit.jsonl"], 0);

    let daemon = Daemon::spawn(&moto.endpoint, Vec::new(), &ws);
    daemon.wait_ready();
    wait_for(Duration::from_secs(30), "a pass", || {
        parse_metrics(&daemon.get("/metrics").1)
            .iter()
            .any(|(k, v)| k.starts_with("trustsync_passes_total") && *v >= 1.0)
    });
    // A member leaves the pinned group: the pass that follows still reads that group.
    ws.remove_tenant_member(PAYMENTS, SP2);
    wait_for(Duration::from_secs(30), "the revocation", || {
        moto.trusted_subs("payments-deployer") == [SP1, SP4]
    });
    drop(daemon);
    assert_eq!(tags(&moto)[PIN_TAG], pin, "the pin tag is trustsync's own");
    assert!(!moto
        .trusted_subs("payments-deployer")
        .contains(&SP3.to_string()));
    let log = ws.read("audit.jsonl");
    let unvouched: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["type"] == "unvouched")
        .collect();
    assert_eq!(unvouched.len(), 1, "{log}");
    assert!(
        unvouched[0]["reason"].as_str().unwrap().contains(&forged),
        "{unvouched:?}"
    );
    assert!(!log.contains("\"type\":\"rotated\""), "the chain was whole");
}
