//! Behaviour under AWS throttling and faults: the same policies applied once directly
//! against moto and once through a proxy that throttles 20% of requests, fails 5% with 500
//! and loses 5% of responses after moto acted. Both must end in the same AWS state, with
//! the same changes in the audit log: none lost, none doubled.

mod support;

use serde_json::Value;
use support::proxy::{Faults, Proxy};
use support::*;

/// (action, target) of every change line, with its outcome, sorted.
fn audited_changes(ws: &Workspace) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = ws
        .read("audit.jsonl")
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["type"] == "change")
        .map(|v| {
            (
                v["action"].as_str().unwrap().to_string(),
                v["target"].as_str().unwrap().to_string(),
                v["result"]["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

fn bulk(ws: &Workspace, n: usize) {
    let mut docs = String::new();
    for i in 0..n {
        docs.push_str(&format!(
            "---\napiVersion: trustsync.dev/v1alpha1\nkind: RoleMapping\nmetadata: {{name: bulk-{i}}}\nspec:\n  trustedServices: [lambda.amazonaws.com]\n  role:\n    name: bulk-{i}\n    managedPolicies: [arn:aws:iam::aws:policy/ReadOnlyAccess]\n    inlinePolicies: {{p: {{Version: '2012-10-17', Statement: [{{Effect: Allow, Action: 's3:GetObject', Resource: '*'}}]}}}}\n    tags: {{n: '{i}'}}\n"
        ));
    }
    ws.write("policies/bulk.yaml", &docs);
}

#[test]
fn throttled_and_faulty_aws_converges_to_the_clean_state() {
    // The clean run.
    let clean = Moto::start();
    clean.create_functions(&["payments-api"]);
    let ws_clean = Workspace::new();
    bulk(&ws_clean, 20);
    apply(Via::moto(&clean), &ws_clean, &[]);

    // The faulty run, through the proxy.
    let faulty = Moto::start();
    faulty.create_functions(&["payments-api"]);
    let proxy = Proxy::start(
        &faulty.endpoint,
        Faults {
            throttle: 0.20,
            server_error: 0.05,
            lost_response: 0.05,
            delay_ms: 0,
        },
        7,
    );
    let ws = Workspace::new();
    bulk(&ws, 20);
    let config = |extra: &str| {
        format!("audit: {{path: audit.jsonl}}\ndirectory: {{tenantFile: examples/tenant.json}}\n{extra}")
    };
    ws.write("trustsync.yaml", &config("aws: {maxRetrySeconds: 60}\n"));
    // The apply, and a re-plan through the faulty proxy that finds nothing left to do.
    let out = apply(Via::at(&proxy.endpoint), &ws, &[]);
    let counts = proxy.counts();
    assert!(
        counts.throttled >= 10 && counts.lost_responses >= 1,
        "too few faults to mean anything: {counts:?}"
    );
    let log = String::from_utf8_lossy(&out.stderr);
    let retries = log
        .split("retries=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or("?");
    println!(
        "faulty apply and re-plan: {} requests at the proxy, {} throttled, {} 500s, {} lost responses; trustsync counted {retries} retries",
        counts.total(),
        counts.throttled,
        counts.server_errors,
        counts.lost_responses
    );

    assert_eq!(
        managed_state(&faulty),
        managed_state(&clean),
        "the throttled run must end in the clean run's state"
    );
    let (changes_faulty, changes_clean) = (audited_changes(&ws), audited_changes(&ws_clean));
    assert!(changes_faulty.len() >= 71, "{}", changes_faulty.len());
    assert_eq!(changes_faulty, changes_clean, "no change lost or doubled");
    assert!(changes_faulty.iter().all(|(_, _, o)| o == "ok"));
}

/// Independent resources are written in parallel, within `aws.writeConcurrency`: every
/// request is held 100 ms at the proxy, so overlapping writes show as requests in flight.
#[test]
fn writes_to_independent_roles_overlap_within_the_bound() {
    let mut seen = Vec::new();
    for iam in [1, 8] {
        let moto = Moto::start();
        moto.create_functions(&["payments-api"]);
        let proxy = Proxy::start(
            &moto.endpoint,
            Faults {
                delay_ms: 100,
                ..Faults::default()
            },
            1,
        );
        let ws = Workspace::new();
        bulk(&ws, 6);
        ws.write(
            "trustsync.yaml",
            &format!("audit: {{path: audit.jsonl}}\ndirectory: {{tenantFile: examples/tenant.json}}\naws: {{writeConcurrency: {{iam: {iam}, lambda: 1}}}}\n"),
        );
        let started = std::time::Instant::now();
        apply(Via::at(&proxy.endpoint), &ws, &[]);
        let counts = proxy.counts();
        println!(
            "writeConcurrency.iam = {iam}: {} requests, at most {} in flight, {} ms",
            counts.total(),
            counts.max_in_flight,
            started.elapsed().as_millis()
        );
        // The audit chain stays whole however the writes interleave.
        let verify = moto.trustsync(ws.path(), &["audit", "verify", "audit.jsonl"]);
        assert_eq!(verify.status.code(), Some(0), "{}", show(&verify));
        seen.push(counts.max_in_flight);
    }
    assert_eq!(
        seen[0], 1,
        "one IAM write and one Lambda write never overlap here"
    );
    assert!(
        seen[1] >= 4,
        "independent roles are written in parallel: {seen:?}"
    );
}
