//! The audit log in S3 with one writer at a time (issue 39), through the binary against
//! moto's S3 and the local Graph server: `run` replicas contending for the writers' lease,
//! a leader killed mid-pass, `apply` beside a running leader, a leader cut off from S3,
//! Object Lock against deletes, and a bucket without it.
//!
//! Each replica has its own workspace (its own `audit.path` working copy, run.log and
//! listen port) over the same bucket and prefix, and its own `HOSTNAME`, so that the
//! records (`actor.instance` is `host/pid`) and the lease (`holder` is `host/pid/random`)
//! say which replica wrote them. Revocations are read back from moto through the SDK, and
//! a session's denial is judged by tests/judge (moto stores IAM documents, it does not
//! enforce them).

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::daemon::Daemon;
use support::judge::{workload_token, Judge};
use support::proxy::{Faults, Proxy};
use support::s3::{writer_host, Bucket, S3Proxy};
use support::*;

const SP1: &str = "5e1f0a2b-1111-4111-8111-000000000001";
const SP2: &str = "5e1f0a2b-1111-4111-8111-000000000002";
const SP4: &str = "5e1f0a2b-1111-4111-8111-000000000004";
const PAYMENTS: &str = "a1b2c3d4-0001-4000-8000-000000000001";
const AUDIENCE: &str = "api://aws-federation";
const DEPLOY: &str = "lambda:UpdateFunctionCode";
const FUNCTION: &str = "arn:aws:lambda:us-east-1:123456789012:function:payments-api";
const ROLE: &str = "payments-deployer";
const DENIAL: &str = "trustsync-revoked-sessions";

/// A full pass hourly (every pass after the first is a membership's fast path), the
/// directory polled every second; the lease at its defaults (10 s, renewed every 2 s).
const RUN: &str = "run: {intervalSeconds: 3600, directoryPollSeconds: 1, policyPollSeconds: 1}\n";

/// A replica's workspace: the example policies, and the log in `bucket`.
fn replica_workspace(bucket: &Bucket) -> Workspace {
    let ws = Workspace::new();
    ws.write("trustsync.yaml", &format!("{}{RUN}", bucket.audit_config()));
    ws
}

/// The Graph server's environment, this process's host name, and its S3 path when it is
/// not moto's own endpoint.
fn env(graph: &GraphServer, host: &str, s3: Option<&S3Proxy>) -> Vec<(String, String)> {
    let mut env = graph.env(CLIENT_SECRET);
    env.push(("HOSTNAME".into(), host.into()));
    env.extend(s3.map(S3Proxy::env));
    env
}

fn leadership(d: &Daemon) -> Value {
    d.status()["leadership"].clone()
}

fn role_of(d: &Daemon) -> String {
    leadership(d)["role"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Waits until `leader` leads and `standby` stands by naming it; the leader's lease name.
fn wait_leader_and_standby(leader: &Daemon, standby: &Daemon) -> String {
    wait_for(Duration::from_secs(60), "a leader and a standby", || {
        role_of(leader) == "leader"
            && role_of(standby) == "standby"
            && leadership(standby)["leader"] == leadership(leader)["this"]
    });
    leadership(leader)["this"].as_str().unwrap().to_string()
}

/// The names of the roles in moto's default account.
fn role_names(moto: &Moto) -> Vec<String> {
    let mut names = Vec::new();
    let mut marker = None;
    loop {
        let out = moto
            .block_on(moto.iam().list_roles().set_marker(marker).send())
            .unwrap();
        names.extend(out.roles().iter().map(|r| r.role_name().to_string()));
        match out.marker() {
            Some(m) if out.is_truncated() => marker = Some(m.to_string()),
            _ => break,
        }
    }
    names
}

/// The role's session-denial policy, as text, when it has one.
fn session_denial(moto: &Moto, role: &str) -> Option<String> {
    let out = moto
        .block_on(
            moto.iam()
                .get_role_policy()
                .role_name(role)
                .policy_name(DENIAL)
                .send(),
        )
        .ok()?;
    let doc = trustsync::model::iam_policy::parse_document(out.policy_document()).unwrap();
    Some(doc.to_string())
}

/// Polls `f` (every 10 ms) for up to `limit`: how long it took to hold, if it did.
fn within(limit: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

/// Lines (1-based) of the intents no outcome or recovery answers.
fn unanswered(records: &[Value]) -> Vec<u64> {
    let answered: std::collections::BTreeSet<u64> = records
        .iter()
        .filter_map(|r| r["intentLine"].as_u64())
        .collect();
    (1..=records.len() as u64)
        .filter(|n| records[*n as usize - 1]["type"] == "intent" && !answered.contains(n))
        .collect()
}

/// The hosts that wrote the records, in the order they first appear.
fn writers(records: &[(String, Value)]) -> Vec<String> {
    let mut hosts: Vec<String> = Vec::new();
    for (_, r) in records {
        if let Some(h) = writer_host(r) {
            if !hosts.contains(&h) {
                hosts.push(h);
            }
        }
    }
    hosts
}

/// `trustsync audit verify s3://bucket/prefix/`, expecting `code`.
fn verify(moto: &Moto, bucket: &Bucket, code: i32) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let out = moto.trustsync(dir.path(), &["audit", "verify", &bucket.url()]);
    assert_eq!(out.status.code(), Some(code), "{}", show(&out));
    out
}

/// A workload's session on a role, as STS would issue it from its Entra token (judged).
fn session(judge: &Judge, graph: &GraphServer, n: u8, role: &str) -> Value {
    let token = workload_token(
        graph,
        TENANT_ID,
        &format!("9d0e1f2a-aaaa-4aaa-8aaa-00000000000{n}"),
        &format!("local-workload-secret-{n}"),
        AUDIENCE,
    );
    let v = judge.assume(role, &token);
    assert_eq!(v["allowed"], true, "{v:#}");
    v["session"].clone()
}

/// Issue 39 (1): Two replicas: exactly one leads, the other is ready once it has read the
/// log and the directory. The leader is SIGKILLed in the middle of a pass (80 roles the
/// policies just gained, each change an intent in the bucket before its IAM write); a
/// workload leaves a mapped group after the kill; the standby takes the lease once it has
/// gone unrenewed for its duration and revokes at once (a focused pass, its first), answers
/// the dead leader's open intents from what AWS shows: the sub leaves the trust policy and
/// the session the workload held is denied. The chain in the bucket verifies, with records
/// of both replicas.
#[test]
fn a_standby_takes_over_from_a_leader_killed_mid_pass_and_revokes_a_later_departure() {
    let moto = Moto::start();
    moto.create_functions(&["payments-api"]);
    let bucket = Bucket::locked(&moto, "audit-failover", "prod/");

    // The chain begins with an apply (the example roles, SP2 trusted).
    let seed = Workspace::new();
    seed.write(
        "trustsync.yaml",
        &format!(
            "{}directory: {{tenantFile: examples/tenant.json}}\n",
            bucket.audit_config()
        ),
    );
    let seed_env = [("HOSTNAME".to_string(), "seed".to_string())];
    apply(Via::moto(&moto).env(&seed_env), &seed, &[]);
    assert_eq!(moto.trusted_subs(ROLE), [SP1, SP2, SP4]);
    let graph = GraphServer::start(&seed.path().join("examples/tenant.json"), 999);
    let judge = Judge::new(&moto, &graph);
    let held = session(&judge, &graph, 2, ROLE);

    // Two replicas, one leading, the other warm.
    let (ws_a, ws_b) = (replica_workspace(&bucket), replica_workspace(&bucket));
    let a = Daemon::spawn(&moto.endpoint, env(&graph, "replica-a", None), &ws_a);
    let b = Daemon::spawn(&moto.endpoint, env(&graph, "replica-b", None), &ws_b);
    wait_for(Duration::from_secs(60), "one replica to lead", || {
        let roles = [role_of(&a), role_of(&b)];
        roles.contains(&"leader".to_string()) && roles.contains(&"standby".to_string())
    });
    let (mut leader, standby, leader_ws, standby_host) = if role_of(&a) == "leader" {
        (a, b, &ws_a, "replica-b")
    } else {
        (b, a, &ws_b, "replica-a")
    };
    let leader_name = wait_leader_and_standby(&leader, &standby);
    // Ready once it has read the log and the directory (503 "still reading" before).
    wait_for(Duration::from_secs(60), "the standby warm", || {
        standby.get("/readyz").0 == 200
    });
    let (code, body) = standby.get("/readyz");
    assert!(
        code == 200 && body.contains("standby: ready to take over") && body.contains(&leader_name),
        "{code} {body}"
    );
    assert!(leadership(&standby).get("warming").is_none());

    // Then 80 more roles: the leader's next pass has a lot to write.
    let seeded = bucket.positions().len();
    ws_a.many_roles(80);
    ws_b.many_roles(80);

    // Mid-pass: the leader has appended some of its intents, and not made every role.
    wait_for(
        Duration::from_secs(60),
        "the leader's pass under way",
        || bucket.positions().len() >= seeded + 12,
    );
    leader.child.kill().unwrap(); // SIGKILL: no lease given up, no outcome written
    leader.child.wait().unwrap();
    let killed = Instant::now();
    let made = role_names(&moto)
        .iter()
        .filter(|r| r.starts_with("bulk-"))
        .count();
    assert!(
        made < 80,
        "the kill came after the pass ({made} of 80 roles)"
    );
    println!(
        "killed the leader ({leader_name}) mid-pass: {made} of 80 roles made, {} positions in the bucket",
        bucket.positions().len()
    );
    let dead = leader_ws.read("run.log");
    drop(leader);

    // The departure, after the kill.
    graph.remove_member(PAYMENTS, SP2);
    let took = wait_for(Duration::from_secs(90), "the standby's revocation", || {
        !moto.trusted_subs(ROLE).contains(&SP2.to_string())
    });
    println!(
        "revoked {} ms after the SIGKILL (lease 10 s, renewed every 2 s)",
        killed.elapsed().as_millis()
    );
    assert!(took < Duration::from_secs(60), "{took:?}");
    assert_eq!(moto.trusted_subs(ROLE), [SP1, SP4]);
    assert_eq!(role_of(&standby), "leader");
    wait_for(Duration::from_secs(10), "the session denial", || {
        session_denial(&moto, ROLE).is_some_and(|d| d.contains(SP2))
    });
    let judged = judge.request(&held, DEPLOY, FUNCTION);
    assert_eq!(
        judged["allowed"], false,
        "the held session is denied: {judged:#}"
    );
    assert!(judged["reasons"].to_string().contains(DENIAL), "{judged:#}");
    // The new leader finishes what the dead one left.
    wait_for(Duration::from_secs(90), "every role made", || {
        role_names(&moto)
            .iter()
            .filter(|r| r.starts_with("bulk-"))
            .count()
            == 80
    });
    wait_for(Duration::from_secs(30), "the new leader ready", || {
        standby.get("/readyz") == (200, "ready\n".to_string())
    });

    // One chain, both writers: the dead leader's open intents answered by the new one.
    verify(&moto, &bucket, 0);
    let records = bucket.records();
    let hosts = writers(&records);
    let old_host = if standby_host == "replica-a" {
        "replica-b"
    } else {
        "replica-a"
    };
    assert_eq!(hosts, ["seed", old_host, standby_host], "{hosts:?}");
    let lines: Vec<Value> = records.iter().map(|(_, r)| r.clone()).collect();
    assert!(unanswered(&lines).is_empty(), "every intent is answered");
    assert!(
        lines
            .iter()
            .any(|r| r["type"] == "recovered" && writer_host(r).as_deref() == Some(standby_host)),
        "the new leader recovered the dead one's open intent(s)"
    );
    let revocation = lines
        .iter()
        .find(|r| {
            r["type"] == "change"
                && r["action"] == "revoke-trust"
                && r["target"].as_str().unwrap_or_default().contains(ROLE)
        })
        .unwrap_or_else(|| panic!("no revoke-trust record: {lines:#?}"));
    assert_eq!(writer_host(revocation).as_deref(), Some(standby_host));
    // The standby followed the directory and knew which groups the mappings use: the
    // departure it saw before leading was revoked by a focused pass, the new leader's
    // first pass to end, not by its full pass over the 80 roles.
    let first_pass = lines
        .iter()
        .find(|r| r["type"] == "pass" && writer_host(r).as_deref() == Some(standby_host))
        .expect("the new leader's passes");
    assert_eq!(first_pass["trigger"], "fast-path", "{first_pass:#}");
    let lease = bucket.lease().unwrap();
    assert!(
        lease["holder"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{standby_host}/")),
        "{lease}"
    );
    assert!(!dead.contains("panicked"), "{dead}");
}

/// Issue 39 (2): `apply` beside a leading `run`: refused at once, naming the holder, with
/// nothing written (no position of its own, the chain unforked). With `--wait-for-lease 30`
/// it waits, takes the lease the moment the leader gives it up on SIGTERM, and appends to
/// the same chain.
#[test]
fn apply_beside_a_leading_run_is_refused_at_once_or_waits_for_the_lease() {
    let moto = Moto::start();
    moto.create_functions(&["payments-api"]);
    let bucket = Bucket::locked(&moto, "audit-apply", "trustsync/");
    let ws_run = replica_workspace(&bucket);
    let graph = GraphServer::start(&ws_run.path().join("examples/tenant.json"), 999);
    let leader = Daemon::spawn(&moto.endpoint, env(&graph, "leader-host", None), &ws_run);
    wait_for(Duration::from_secs(60), "the leader", || {
        role_of(&leader) == "leader"
    });
    leader.wait_ready();
    assert_eq!(moto.trusted_subs(ROLE), [SP1, SP2, SP4]);
    let holder = leadership(&leader)["this"].as_str().unwrap().to_string();
    let before = bucket.positions();

    // The apply's own workspace: its own working copy, and a change to make.
    let ws_apply = Workspace::new();
    ws_apply.write(
        "trustsync.yaml",
        &format!(
            "{}directory: {{tenantFile: examples/tenant.json}}\n",
            bucket.audit_config()
        ),
    );
    let reporting = ws_apply.read("policies/reporting.yaml");
    ws_apply.write(
        "policies/reporting.yaml",
        &reporting.replace("maxSessionDuration: 7200", "maxSessionDuration: 3600"),
    );
    let apply_env = [("HOSTNAME".to_string(), "apply-host".to_string())];
    let t = Instant::now();
    let out = apply_unsettled(
        Via::moto(&moto).env(&apply_env),
        &ws_apply,
        &[],
        1,
        Unsettled::Interrupted("the controller holds the writers' lease: refused"),
    );
    let refused_in = t.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("is held by {holder} (run")) && err.contains("nothing was changed"),
        "{}",
        show(&out)
    );
    assert!(refused_in < Duration::from_secs(15), "{refused_in:?}");
    println!(
        "apply refused in {} ms: {}",
        refused_in.as_millis(),
        err.trim()
    );
    let role = |name: &str| {
        moto.block_on(moto.iam().get_role().role_name(name).send())
            .unwrap()
            .role()
            .unwrap()
            .max_session_duration()
    };
    assert_eq!(
        role("reporting-reader"),
        Some(7200),
        "nothing changed in IAM"
    );
    assert_eq!(bucket.positions(), before, "no position of the apply's");
    verify(&moto, &bucket, 0);
    assert!(!writers(&bucket.records()).contains(&"apply-host".to_string()));

    // Waiting: the leader is stopped (SIGTERM gives the lease up) while the apply waits.
    let mut waiting = support::command(ws_apply.path(), &moto.endpoint)
        .args(["--config", "trustsync.yaml", "apply", "--auto-approve"])
        .args(["--wait-for-lease", "30"])
        .envs(apply_env.iter().cloned())
        .stdout(std::fs::File::create(ws_apply.path().join("apply.out")).unwrap())
        .stderr(std::fs::File::create(ws_apply.path().join("apply.err")).unwrap())
        .spawn()
        .unwrap();
    wait_for(Duration::from_secs(20), "the apply waiting", || {
        ws_apply.read("apply.err").contains(&format!(
            "waiting up to 30s for the writers' lease, held by {holder}"
        ))
    });
    std::thread::sleep(Duration::from_secs(2));
    assert!(waiting.try_wait().unwrap().is_none(), "still waiting");
    let stopped = Instant::now();
    assert_eq!(
        leader.terminate().code(),
        Some(0),
        "{}",
        ws_run.read("run.log")
    );
    // Given up: either still the leader's, marked released, or already the waiting
    // apply's (it polls, and may take it before this read). Never the leader's unreleased.
    let lease = bucket.lease().unwrap();
    let held_by = lease["holder"].as_str().unwrap_or_default();
    assert!(
        (held_by == holder && lease["released"] == true) || held_by.starts_with("apply-host/"),
        "{lease}"
    );
    let status = waiting.wait().unwrap();
    println!(
        "the waiting apply ended {} ms after the leader's SIGTERM",
        stopped.elapsed().as_millis()
    );
    assert_eq!(
        status.code(),
        Some(0),
        "{}\n{}",
        ws_apply.read("apply.out"),
        ws_apply.read("apply.err")
    );
    assert_eq!(role("reporting-reader"), Some(3600));

    // The same chain: one segment, positions 1..N without a gap, the apply's after the
    // leader's, and the whole verifies.
    let after = bucket.positions();
    assert!(after.len() > before.len());
    assert_eq!(&after[..before.len()], &before[..]);
    let expected: Vec<String> = (1..=after.len())
        .map(|i| format!("trustsync/log/000001/{i:012}.jsonl"))
        .collect();
    assert_eq!(after, expected);
    let records = bucket.records();
    assert_eq!(writers(&records), ["leader-host", "apply-host"]);
    let first_of_apply = records
        .iter()
        .position(|(_, r)| writer_host(r).as_deref() == Some("apply-host"))
        .unwrap();
    assert!(
        records[first_of_apply..]
            .iter()
            .all(|(_, r)| writer_host(r).as_deref() != Some("leader-host")),
        "the apply appended after the leader's last record"
    );
    assert!(!before.contains(&records[first_of_apply].0));
    verify(&moto, &bucket, 0);
    let lease = bucket.lease().unwrap();
    assert!(
        lease["holder"].as_str().unwrap().starts_with("apply-host/")
            && lease["what"] == "apply"
            && lease["released"] == true,
        "{lease}"
    );
}

/// Issue 39 (3): A leader whose S3 path stops answering (a proxy that holds every
/// connection open and never replies) writes nothing more to IAM: a workload leaves its
/// group after the cut, the cut-off leader reads the role and writes no trust, no session
/// denial, nothing (its IAM requests, counted at a proxy of its own, are reads only); it
/// says it lost the lease and exits non-zero. The standby, whose S3 path works, takes the
/// lease and revokes.
#[test]
fn a_leader_cut_off_from_s3_stops_writing_and_the_standby_revokes() {
    let moto = Moto::start();
    moto.create_functions(&["payments-api"]);
    let bucket = Bucket::locked(&moto, "audit-cut", "prod/");
    let (ws_a, ws_b) = (replica_workspace(&bucket), replica_workspace(&bucket));
    let graph = GraphServer::start(&ws_a.path().join("examples/tenant.json"), 999);
    // The leader's AWS requests (IAM, STS, Lambda) through a counting proxy; its S3
    // requests through another that can cut it off.
    let aws_a = Proxy::start(&moto.endpoint, Faults::default(), 3);
    let s3_a = S3Proxy::start(&moto.endpoint);
    let mut a = Daemon::spawn(
        &aws_a.endpoint,
        env(&graph, "replica-a", Some(&s3_a)),
        &ws_a,
    );
    wait_for(Duration::from_secs(60), "the first leader", || {
        role_of(&a) == "leader"
    });
    a.wait_ready();
    let b = Daemon::spawn(&moto.endpoint, env(&graph, "replica-b", None), &ws_b);
    let old = wait_leader_and_standby(&a, &b);
    assert_eq!(moto.trusted_subs(ROLE), [SP1, SP2, SP4]);

    // The cut, right after a renewal; then the departure.
    let renewed = s3_a.last_lease_renewal();
    wait_for(Duration::from_secs(10), "a fresh renewal", || {
        s3_a.last_lease_renewal() != renewed
    });
    s3_a.hang(true);
    let cut = Instant::now();
    aws_a.reset();
    graph.remove_member(PAYMENTS, SP2);

    let took = wait_for(Duration::from_secs(60), "the standby's revocation", || {
        !moto.trusted_subs(ROLE).contains(&SP2.to_string())
    });
    println!(
        "revoked by the standby {} ms after the cut",
        cut.elapsed().as_millis()
    );
    assert!(took < Duration::from_secs(45), "{took:?}");
    assert_eq!(role_of(&b), "leader");
    wait_for(Duration::from_secs(10), "the session denial", || {
        session_denial(&moto, ROLE).is_some_and(|d| d.contains(SP2))
    });

    // The cut-off leader: stepped down, non-zero, and no IAM write since the cut.
    wait_for(
        Duration::from_secs(90),
        "the cut-off leader to exit",
        || a.child.try_wait().unwrap().is_some(),
    );
    let code = a.child.wait().unwrap().code();
    let exited = cut.elapsed();
    let log = ws_a.read("run.log");
    assert_ne!(code, Some(0), "{log}");
    assert!(
        log.contains("lost the writers' lease") && log.contains("stepped down"),
        "{log}"
    );
    let counts = aws_a.counts();
    let writes: Vec<(&String, &u64)> = counts
        .requests
        .iter()
        .filter(|(op, _)| !op.starts_with("Get") && !op.starts_with("List"))
        .collect();
    println!(
        "the cut-off leader exited {} ms after the cut ({code:?}); its AWS requests since: {:?}",
        exited.as_millis(),
        counts.requests
    );
    assert!(writes.is_empty(), "IAM writes after the cut: {writes:?}");
    assert!(
        counts.requests.get("GetRole").is_some_and(|n| *n >= 1),
        "the cut-off leader saw the departure and read the role: {:?}",
        counts.requests
    );
    drop(a);

    // The bucket: the revocation is the standby's; the old leader wrote nothing after
    // the cut (its last record is before the new leader's first).
    let records = bucket.records();
    let revocation = records
        .iter()
        .find(|(_, r)| r["type"] == "change" && r["action"] == "revoke-trust")
        .expect("the revocation's record");
    assert_eq!(writer_host(&revocation.1).as_deref(), Some("replica-b"));
    let first_b = records
        .iter()
        .position(|(_, r)| writer_host(r).as_deref() == Some("replica-b"))
        .unwrap();
    assert!(records[first_b..]
        .iter()
        .all(|(_, r)| writer_host(r).as_deref() != Some("replica-a")));
    verify(&moto, &bucket, 0);
    let lease = bucket.lease().unwrap();
    assert_ne!(lease["holder"], old.as_str());
    assert!(lease["holder"].as_str().unwrap().starts_with("replica-b/"));
}

/// Issue 39 (4): Object Lock: a record's version cannot be deleted (AccessDenied), and a
/// delete without a version id only adds a delete marker, which `audit verify` names
/// (exiting 1) while the chain still verifies from the positions' first versions. An
/// overwrite is named the same way.
#[test]
fn a_locked_record_cannot_be_deleted_and_a_delete_marker_is_named() {
    use aws_sdk_s3::error::ProvideErrorMetadata;
    let moto = Moto::start();
    moto.create_functions(&["payments-api"]);
    let bucket = Bucket::locked(&moto, "audit-locked", "prod/");
    let ws = Workspace::new();
    ws.write(
        "trustsync.yaml",
        &format!(
            "{}directory: {{tenantFile: examples/tenant.json}}\n",
            bucket.audit_config()
        ),
    );
    apply(Via::moto(&moto), &ws, &[]);
    let positions = bucket.positions();
    assert!(positions.len() >= 3, "{positions:?}");
    let key = positions[1].clone();
    let versions: Vec<(String, String, bool)> = bucket
        .versions()
        .into_iter()
        .filter(|(k, _, _)| *k == key)
        .collect();
    assert_eq!(versions.len(), 1, "{versions:?}");
    let version = versions[0].1.clone();
    let s3 = bucket.client();

    // The version itself: refused.
    let refused = moto
        .block_on(
            s3.delete_object()
                .bucket(&bucket.name)
                .key(&key)
                .version_id(&version)
                .send(),
        )
        .expect_err("a locked version cannot be deleted");
    assert_eq!(refused.code(), Some("AccessDenied"), "{refused:?}");
    // Without a version id: a delete marker, the version kept.
    let marker = moto
        .block_on(s3.delete_object().bucket(&bucket.name).key(&key).send())
        .unwrap();
    assert_eq!(marker.delete_marker(), Some(true));
    assert!(
        !bucket.positions().contains(&key),
        "the key reads as deleted"
    );
    assert!(
        !bucket.read(&key, Some(&version)).is_empty(),
        "the version is kept"
    );
    // And an overwrite of another position: a second version.
    let other = positions[2].clone();
    moto.block_on(
        s3.put_object()
            .bucket(&bucket.name)
            .key(&other)
            .body(aws_sdk_s3::primitives::ByteStream::from_static(b"{}\n"))
            .send(),
    )
    .unwrap();

    let out = verify(&moto, &bucket, 1);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(stdout.contains("hash chain intact"), "{}", show(&out));
    assert!(
        stderr.contains(&format!("s3://{}/{key}", bucket.name))
            && stderr.contains(&format!("s3://{}/{other}", bucket.name))
            && stderr.contains("deleted"),
        "{}",
        show(&out)
    );
    // The records are still the first versions, the whole chain.
    let lines = bucket.records().len();
    assert!(
        stdout.contains(&format!("{lines} line(s)")),
        "{lines}: {}",
        show(&out)
    );
}

/// Issue 39 (5): A bucket without Object Lock: `apply` and `run` refuse to start, naming
/// the bucket, and nothing changes in IAM; no record is written to it.
#[test]
fn a_bucket_without_object_lock_is_refused_and_nothing_changes() {
    let moto = Moto::start();
    moto.create_functions(&["payments-api"]);
    let bucket = Bucket::unlocked(&moto, "audit-unlocked", "prod/");
    let ws = replica_workspace(&bucket);
    let graph = GraphServer::start(&ws.path().join("examples/tenant.json"), 999);
    let before = managed_state(&moto);
    let genv = graph.env(CLIENT_SECRET);

    let out = apply_unsettled(
        Via::moto(&moto).env(&genv),
        &ws,
        &[],
        1,
        Unsettled::Refused("the audit bucket has no Object Lock"),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("audit.s3.bucket audit-unlocked")
            && err.contains("Object Lock is not enabled"),
        "{}",
        show(&out)
    );
    assert_eq!(managed_state(&moto), before, "apply changed nothing");

    let mut run = Daemon::spawn(&moto.endpoint, env(&graph, "replica-a", None), &ws);
    wait_for(Duration::from_secs(60), "run to exit", || {
        run.child.try_wait().unwrap().is_some()
    });
    let code = run.child.wait().unwrap().code();
    let log = ws.read("run.log");
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains("audit.s3.bucket audit-unlocked")
            && log.contains("Object Lock is not enabled"),
        "{log}"
    );
    drop(run);
    assert_eq!(managed_state(&moto), before, "run changed nothing");
    assert!(!role_names(&moto).contains(&ROLE.to_string()));
    assert!(bucket.positions().is_empty(), "{:?}", bucket.keys());
    println!("the unlocked bucket holds: {:?}", bucket.keys());
}

/// Issue 39 (3), on a path that loses an answer: the leader's append reaches the bucket,
/// its answer does not (a 500 after S3 wrote the object), and the SDK's retry of the same
/// `If-None-Match: *` PutObject is answered 412. That is the leader's own record, not
/// another writer's: it keeps leading and revokes, and the chain holds the record once.
/// (Before c8b6ca5 the 412 read as another writer's append: the leader refused every later
/// append while it kept renewing the lease, so no replica revoked anything.)
#[test]
fn a_lost_answer_to_an_append_does_not_stop_revocation() {
    let moto = Moto::start();
    moto.create_functions(&["payments-api"]);
    let bucket = Bucket::locked(&moto, "audit-lost", "prod/");
    let (ws_a, ws_b) = (replica_workspace(&bucket), replica_workspace(&bucket));
    let graph = GraphServer::start(&ws_a.path().join("examples/tenant.json"), 999);
    let s3_a = S3Proxy::start(&moto.endpoint);
    let a = Daemon::spawn(&moto.endpoint, env(&graph, "replica-a", Some(&s3_a)), &ws_a);
    wait_for(Duration::from_secs(60), "the first leader", || {
        role_of(&a) == "leader"
    });
    a.wait_ready();
    let b = Daemon::spawn(&moto.endpoint, env(&graph, "replica-b", None), &ws_b);
    wait_leader_and_standby(&a, &b);

    // The next record (the revocation's intent) reaches the bucket; its answer is lost.
    s3_a.lose_record_answers(1);
    graph.remove_member(PAYMENTS, SP2);
    let revoked = within(Duration::from_secs(45), || {
        !moto.trusted_subs(ROLE).contains(&SP2.to_string())
    });
    let log = ws_a.read("run.log");
    assert!(
        revoked.is_some(),
        "the departure was never revoked; leader: {}, standby: {}; the leader's S3 requests: {:?}\n{log}",
        role_of(&a),
        role_of(&b),
        s3_a.counts()
    );
    assert!(
        s3_a.seen()
            .iter()
            .any(|s| s.op == "PutObject record" && s.status == Some(500)),
        "an answer was lost: {:?}",
        s3_a.seen()
    );
    wait_for(Duration::from_secs(10), "the session denial", || {
        session_denial(&moto, ROLE).is_some_and(|d| d.contains(SP2))
    });
    assert_eq!(role_of(&a), "leader", "{log}");
    assert_eq!(role_of(&b), "standby");
    let records = bucket.records();
    // Each of the revocation's records once: the retried append was not appended again.
    let intents: Vec<String> = records
        .iter()
        .filter(|(_, r)| r["type"] == "intent" && r["intent"].to_string().contains(SP2))
        .map(|(_, r)| r.to_string())
        .collect();
    assert!(!intents.is_empty(), "the revocation's intents");
    let distinct: std::collections::BTreeSet<&String> = intents.iter().collect();
    assert_eq!(distinct.len(), intents.len(), "{intents:#?}");
    assert!(records
        .iter()
        .filter(|(_, r)| r["type"] == "change" && r["action"] == "revoke-trust")
        .all(|(_, r)| writer_host(r).as_deref() == Some("replica-a")));
    verify(&moto, &bucket, 0);
}

/// Issue 39 (3), on a slow path rather than a dead one: a leader whose renewals no longer
/// get through and whose records' PutObjects are answered 4.5 s late (within the SDK's 5 s
/// attempt timeout) makes no IAM write once a standby may hold the lease
/// (`durationSeconds`, 10 s, after its last renewal). The departure is timed so that its
/// intent is sent while the fence is still open (about 6-7 s after the renewal, the fence
/// closing at 8 s) and lands after it closed: the write must not follow (d4f8b37 checks the
/// fence again once the append returns; this test keeps it so).
#[test]
fn a_slow_append_does_not_let_an_iam_write_outlive_the_lease() {
    let moto = Moto::start();
    moto.create_functions(&["payments-api"]);
    let bucket = Bucket::locked(&moto, "audit-slow", "prod/");
    let ws = replica_workspace(&bucket);
    let graph = GraphServer::start(&ws.path().join("examples/tenant.json"), 999);
    let s3 = S3Proxy::start(&moto.endpoint);
    let leader = Daemon::spawn(&moto.endpoint, env(&graph, "replica-a", Some(&s3)), &ws);
    wait_for(Duration::from_secs(60), "the leader", || {
        role_of(&leader) == "leader"
    });
    leader.wait_ready();

    // Right after a renewal: the renewals stop getting through, the records turn slow.
    let before = s3.last_lease_renewal();
    wait_for(Duration::from_secs(10), "a fresh renewal", || {
        s3.last_lease_renewal() != before
    });
    let renewed = s3.last_lease_renewal().unwrap();
    s3.hang_lease_writes(true);
    s3.delay_records(Duration::from_millis(4500));
    // The departure lands so that the fast pass appends its intent about 6-7 s after the
    // renewal, before the fence closes (8 s).
    std::thread::sleep(Duration::from_millis(5800).saturating_sub(renewed.elapsed()));
    graph.remove_member(PAYMENTS, SP2);
    let landed = within(Duration::from_secs(20), || {
        !moto.trusted_subs(ROLE).contains(&SP2.to_string())
    });
    let at = renewed.elapsed();
    println!(
        "revocation by the slow leader: {} ({} ms after its last renewal)\n{}",
        if landed.is_some() { "written" } else { "none" },
        at.as_millis(),
        ws.read("run.log")
            .lines()
            .filter(|l| l.contains("lease") || l.contains("pass"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        landed.is_none() || at < Duration::from_secs(10),
        "an IAM write {} ms after the last renewal (lease 10 s)",
        at.as_millis()
    );
}
