//! `cargo bench --bench scale --features loopback-graph -- failover [N ...] [kills=K]`: the
//! audit log in S3 (`audit.s3`) with two `run` replicas, at the lease's defaults (10 s,
//! renewed every 2 s), over N mappings (default 100 and 1000; 10 kills each) converged by
//! an `apply` through the same bucket.
//!
//! Takeover: the leader is SIGKILLed, then a service principal leaves a mapped group (the
//! local Graph server's admin API); the time runs from the SIGKILL to the trust policy
//! without the departed sub as moto returns it (polled every 10 ms), and to the standby's
//! `/status` saying it leads. The killed replica is started again as the standby; the kill
//! comes at a different moment of the renewal cycle each time.
//!
//! Cost: the controller's fast-path revocations with the S3 store (its S3 requests counted
//! at a proxy, by operation; the bucket's positions counted before and after) and with the
//! file store, on the same fleet: the wall time of each revocation's pass (from
//! `trustsync_pass_duration_seconds`, sum and count read before and after) and the time
//! from the Graph change to the trust policy.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::daemon::Daemon;
use crate::support::s3::{Bucket, S3Proxy};
use crate::support::*;
use crate::{generate, trusted_now, Scenario};

const RUN: &str = "run: {intervalSeconds: 3600, directoryPollSeconds: 1, policyPollSeconds: 60}\n";

fn role_of(d: &Daemon) -> String {
    d.status()["leadership"]["role"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// A replica of `trustsync run` (release) in `ws`, named `host`, its S3 requests through
/// `s3` when given.
fn replica(
    ws: &Workspace,
    graph: &GraphServer,
    moto: &Moto,
    host: &str,
    s3: Option<&S3Proxy>,
) -> Daemon {
    let mut env = graph.env(CLIENT_SECRET);
    env.push(("HOSTNAME".into(), host.into()));
    env.extend(s3.map(S3Proxy::env));
    Daemon::spawn(&moto.endpoint, env, ws)
}

/// `trustsync_pass_duration_seconds` (sum, count) of a controller now.
fn pass_seconds(d: &Daemon) -> (f64, f64) {
    let text = d.get("/metrics").1;
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (
        value("trustsync_pass_duration_seconds_sum "),
        value("trustsync_pass_duration_seconds_count "),
    )
}

/// The `k`th departure: the group and a service principal directly in it.
pub(crate) fn departure(sc: &Scenario, k: usize) -> (usize, String) {
    let n = sc.groups.len();
    let i = (k * 37 + 3) % n;
    let leaver = sc.members[i]
        .iter()
        .find(|m| m.starts_with("5e1f0a2b"))
        .unwrap()
        .clone();
    (i, leaver)
}

fn percentile(samples: &[f64], p: f64) -> f64 {
    let mut v = samples.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let i = ((p / 100.0) * (v.len() as f64 - 1.0)).round() as usize;
    v[i.min(v.len() - 1)]
}

/// What one store's revocations cost.
#[derive(Default)]
struct Cost {
    pass_ms: Vec<f64>,
    revoke_ms: Vec<f64>,
    positions: usize,
    /// S3 requests by operation, the standing ones left out.
    requests: BTreeMap<String, u64>,
    /// The requests the leader sends whatever the passes do (the lease's renewals, the
    /// listing of requests left for it), by operation, over the measured time.
    standing: BTreeMap<String, u64>,
    /// A standby's requests over the same time, by operation.
    standby: BTreeMap<String, u64>,
    /// Versions under the prefix at the end (what each of its pulls lists).
    log_versions: usize,
    seconds: f64,
}

/// `count` fast-path revocations (departures `from..from + count`) through `leader`.
fn revocations(
    leader: &Daemon,
    (moto, graph, sc): (&Moto, &GraphServer, &Scenario),
    (from, count): (usize, usize),
    store: Option<(&S3Proxy, &Bucket)>,
) -> Cost {
    let iam = moto.iam();
    let mut cost = Cost::default();
    let started = Instant::now();
    if let Some((proxy, _)) = store {
        proxy.reset();
    }
    for k in from..from + count {
        let (i, leaver) = departure(sc, k);
        let role = format!("bench-{i}");
        assert!(trusted_now(&iam, moto, &role).contains(&leaver));
        let positions = store.map_or(0, |(_, b)| b.positions().len());
        let (sum, passes) = pass_seconds(leader);
        let t = Instant::now();
        graph.remove_member(&sc.groups[i], &leaver);
        while trusted_now(&iam, moto, &role).contains(&leaver) {
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "{role} still trusts {leaver}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        cost.revoke_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        // The pass ends after the session denial and its record.
        let ended = Instant::now();
        let (sum2, passes2) = loop {
            let now = pass_seconds(leader);
            if now.1 > passes {
                break now;
            }
            assert!(
                ended.elapsed() < Duration::from_secs(30),
                "the pass did not end"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        cost.pass_ms
            .push((sum2 - sum) / (passes2 - passes) * 1000.0);
        if let Some((_, bucket)) = store {
            cost.positions += bucket.positions().len() - positions;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    cost.seconds = started.elapsed().as_secs_f64();
    if let Some((proxy, _)) = store {
        for (op, n) in proxy.counts() {
            if op.ends_with(" lease") || op.ends_with(" requests") {
                cost.standing.insert(op, n);
            } else {
                cost.requests.insert(op, n);
            }
        }
    }
    cost
}

/// One run of the scenario at N mappings.
pub struct Failover {
    n: usize,
    /// ms from each SIGKILL to the revocation, and to the standby leading.
    takeover: Vec<f64>,
    led: Vec<f64>,
    s3: Cost,
    file: Cost,
}

/// Runs the scenario at N mappings with `kills` kills.
pub fn failover(n: usize, kills: usize) -> Failover {
    eprintln!("== failover, N = {n}, {kills} kills");
    let moto = Moto::start();
    let bucket = Bucket::locked(&moto, "audit-bench", "trustsync/");
    let config = format!("{}{RUN}", bucket.audit_config());
    let (ws_a, ws_b) = (Workspace::new(), Workspace::new());
    let sc = generate(&ws_a, n);
    generate(&ws_b, n);
    ws_a.write("trustsync.yaml", &config);
    ws_b.write("trustsync.yaml", &config);
    moto.create_functions(&sc.functions.iter().map(String::as_str).collect::<Vec<_>>());
    let graph = GraphServer::start(&ws_a.path().join("examples/tenant.json"), 999);
    let converged = command(ws_a.path(), &moto.endpoint)
        .args(["--config", "trustsync.yaml", "apply", "--auto-approve"])
        .envs(graph.env(CLIENT_SECRET))
        .env("HOSTNAME", "bench-apply")
        .output()
        .unwrap();
    assert!(converged.status.success(), "{}", show(&converged));

    // Takeover after a SIGKILL.
    let spaces = [&ws_a, &ws_b];
    let hosts = ["bench-a", "bench-b"];
    let mut replicas = vec![
        replica(&ws_a, &graph, &moto, hosts[0], None),
        replica(&ws_b, &graph, &moto, hosts[1], None),
    ];
    let iam = moto.iam();
    let (mut takeover, mut led) = (Vec::new(), Vec::new());
    for k in 0..kills {
        let start = Instant::now();
        let leader = loop {
            let roles = [role_of(&replicas[0]), role_of(&replicas[1])];
            let standby_ready = |s: usize| {
                roles[s] == "standby"
                    && replicas[s].get("/readyz").0 == 200
                    && replicas[s].status()["leadership"]["leader"]
                        == replicas[1 - s].status()["leadership"]["this"]
            };
            // The leader has ended its first pass (ready), the standby has read the log.
            let leading = |l: usize| roles[l] == "leader" && replicas[l].get("/readyz").0 == 200;
            if leading(0) && standby_ready(1) {
                break 0;
            }
            if leading(1) && standby_ready(0) {
                break 1;
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "no leader and standby: {roles:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        let standby = 1 - leader;
        let (i, leaver) = departure(&sc, k);
        let role = format!("bench-{i}");
        assert!(trusted_now(&iam, &moto, &role).contains(&leaver));
        // A different moment of the leader's 2 s renewal cycle each time.
        std::thread::sleep(Duration::from_millis((k as u64 * 733) % 2000));
        let t0 = Instant::now();
        replicas[leader].child.kill().unwrap();
        replicas[leader].child.wait().unwrap();
        graph.remove_member(&sc.groups[i], &leaver);
        let mut leading = None;
        while trusted_now(&iam, &moto, &role).contains(&leaver) {
            if leading.is_none() && role_of(&replicas[standby]) == "leader" {
                leading = Some(t0.elapsed());
            }
            assert!(
                t0.elapsed() < Duration::from_secs(120),
                "{role} still trusts {leaver}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let took = t0.elapsed();
        let leading = leading.unwrap_or(took);
        eprintln!(
            "kill {}: {} took over, leading after {} ms, revoked after {} ms",
            k + 1,
            hosts[standby],
            leading.as_millis(),
            took.as_millis()
        );
        takeover.push(took.as_secs_f64() * 1000.0);
        led.push(leading.as_secs_f64() * 1000.0);
        replicas[leader] = replica(spaces[leader], &graph, &moto, hosts[leader], None);
    }
    for r in replicas.iter_mut() {
        let _ = r.child.kill();
        let _ = r.child.wait();
    }
    drop(replicas);

    // The cost of a revocation: the S3 store (its requests through a proxy), then the
    // file store, on the same fleet.
    let proxy = S3Proxy::start(&moto.endpoint);
    let leader = replica(&ws_a, &graph, &moto, "bench-cost", Some(&proxy));
    let start = Instant::now();
    while role_of(&leader) != "leader" || leader.get("/readyz").0 != 200 {
        assert!(start.elapsed() < Duration::from_secs(120), "the S3 leader");
        std::thread::sleep(Duration::from_millis(100));
    }
    // A standby beside it, its S3 requests through a proxy of its own.
    let standby_proxy = S3Proxy::start(&moto.endpoint);
    let standby = replica(&ws_b, &graph, &moto, "bench-standby", Some(&standby_proxy));
    // Counted once it has read the log ahead once (its first read takes every record; the
    // next ones only what is new): a listing after its first GetObjects.
    let read_ahead = || {
        let seen = standby_proxy.seen();
        let first_get = seen.iter().position(|s| s.op == "GetObject record");
        first_get.is_some_and(|i| {
            seen[i..]
                .iter()
                .any(|s| s.op == "ListObjectVersions record")
        })
    };
    while role_of(&standby) != "standby" || !read_ahead() {
        assert!(start.elapsed() < Duration::from_secs(300), "the standby");
        std::thread::sleep(Duration::from_millis(100));
    }
    standby_proxy.reset();
    let rounds = 10;
    let mut s3 = revocations(
        &leader,
        (&moto, &graph, &sc),
        (kills, rounds),
        Some((&proxy, &bucket)),
    );
    s3.standby = standby_proxy.counts();
    let log = format!("{}log/", bucket.prefix);
    s3.log_versions = bucket
        .versions()
        .iter()
        .filter(|(key, _, _)| key.starts_with(&log))
        .count();
    drop(standby);
    drop(leader);
    let ws_f = Workspace::new();
    generate(&ws_f, n);
    ws_f.write(
        "trustsync.yaml",
        &format!("audit: {{path: audit.jsonl}}\n{RUN}"),
    );
    let file_leader = replica(&ws_f, &graph, &moto, "bench-file", None);
    file_leader.wait_ready();
    let file = revocations(
        &file_leader,
        (&moto, &graph, &sc),
        (kills + rounds, rounds),
        None,
    );
    drop(file_leader);

    Failover {
        n,
        takeover,
        led,
        s3,
        file,
    }
}

fn round(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

impl Failover {
    /// ms from the standby leading to the revocation, each kill.
    fn after_leading(&self) -> Vec<f64> {
        self.takeover
            .iter()
            .zip(&self.led)
            .map(|(t, l)| t - l)
            .collect()
    }

    fn takeover_row(&self) -> Value {
        let (t, led) = (&self.takeover, &self.led);
        json!({
            "n": self.n,
            "step": "failover: leader SIGKILLed, standby revokes a departure made after the kill",
            "kills": t.len(),
            "lease_duration_s": 10,
            "lease_renew_s": 2,
            "takeover_p50_ms": percentile(t, 50.0).round(),
            "takeover_max_ms": percentile(t, 100.0).round(),
            "takeover_min_ms": percentile(t, 0.0).round(),
            "leading_p50_ms": percentile(led, 50.0).round(),
            "leading_max_ms": percentile(led, 100.0).round(),
            "target_ms": 20000,
            "leading_to_revocation_p50_ms": percentile(&self.after_leading(), 50.0).round(),
            "takeover_ms": t.iter().map(|x| x.round()).collect::<Vec<f64>>(),
        })
    }

    fn cost_row(&self) -> Value {
        let (s3, file) = (&self.s3, &self.file);
        let rounds = s3.pass_ms.len() as f64;
        let total: u64 = s3.requests.values().sum();
        let puts: u64 = s3
            .requests
            .iter()
            .filter(|(op, _)| op.starts_with("PutObject"))
            .map(|(_, n)| n)
            .sum();
        let (s3_pass, file_pass) = (
            percentile(&s3.pass_ms, 50.0),
            percentile(&file.pass_ms, 50.0),
        );
        json!({
            "n": self.n,
            "step": "failover: a revocation's fast pass, S3 store vs file store",
            "revocations": s3.pass_ms.len(),
            "s3_requests_per_revocation": round(total as f64 / rounds),
            "s3_puts_per_revocation": round(puts as f64 / rounds),
            "s3_reads_per_revocation": round((total - puts) as f64 / rounds),
            "s3_by_operation": s3.requests,
            "positions_per_revocation": round(s3.positions as f64 / rounds),
            "file_store_requests_per_revocation": 0,
            "standing_s3_requests_per_minute": s3
                .standing
                .iter()
                .map(|(op, n)| (op.clone(), round(*n as f64 * 60.0 / s3.seconds)))
                .collect::<BTreeMap<String, f64>>(),
            "standby_s3_requests_per_minute": s3
                .standby
                .iter()
                .map(|(op, n)| (op.clone(), round(*n as f64 * 60.0 / s3.seconds)))
                .collect::<BTreeMap<String, f64>>(),
            "log_versions": s3.log_versions,
            "pass_p50_ms_s3": round(s3_pass),
            "pass_p50_ms_file": round(file_pass),
            "pass_wall_ratio_s3_to_file": (s3_pass / file_pass * 100.0).round() / 100.0,
            "revoke_p50_ms_s3": percentile(&s3.revoke_ms, 50.0).round(),
            "revoke_p50_ms_file": percentile(&file.revoke_ms, 50.0).round(),
        })
    }
}

/// The rows for docs/benchmarks.json and the section of docs/benchmarks.md.
pub fn section(results: &[Failover]) -> (Vec<Value>, String) {
    let ms = |v: &Value| v.as_f64().map_or(String::from("?"), |x| format!("{x:.0}"));
    let mut rows = Vec::new();
    let mut md = String::from("## Failover\n\n`cargo build --release -p trustsync-graph-server && cargo bench --bench scale --features loopback-graph -- failover [N ...] [kills=K]` (N = 100 and 1000, 10 kills each, by default; about 25 minutes once built): the audit log in S3 (moto's, the bucket with Object Lock) and two `run` replicas at the lease's defaults (10 s, renewed every 2 s; 1 s directory polls, full pass hourly) over N mappings, converged first by an `apply` through the same bucket. The leader is SIGKILLed, then a service principal leaves a mapped group (the local Graph server's admin API); takeover runs from the SIGKILL to the trust policy without the departed sub as moto returns it (polled every 10 ms), and leading to the standby's `/status` saying it leads. The killed replica is started again as the standby, and the next kill comes at another moment of the 2 s renewal cycle. A standby takes the lease once it has seen it unrenewed for 10 s by its own clock, so takeover is about the lease's duration less the time since the dead leader's last renewal (0 to 2 s) plus the standby's look every 2 s (0 to 2 s), then the new leader's pass.\n\n| N | step | kills | takeover p50 ms | takeover max ms | min ms | leading p50 ms | leading max ms | target ms |\n|---:|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in results {
        let row = r.takeover_row();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | 20000 |",
            r.n,
            row["step"].as_str().unwrap(),
            r.takeover.len(),
            ms(&row["takeover_p50_ms"]),
            ms(&row["takeover_max_ms"]),
            ms(&row["takeover_min_ms"]),
            ms(&row["leading_p50_ms"]),
            ms(&row["leading_max_ms"]),
        );
        rows.push(row);
    }
    md.push('\n');
    for r in results {
        let each: Vec<String> = r.takeover.iter().map(|t| format!("{t:.0}")).collect();
        let _ = writeln!(
            md,
            "- N = {}: each kill, ms from the SIGKILL to the revocation: {}; from leading to the revocation, p50 {:.0} ms",
            r.n,
            each.join(", "),
            percentile(&r.after_leading(), 50.0)
        );
    }
    let _ = writeln!(md, "\nFrom leading to the revocation is one focused pass, the new leader's first act, run beside its first full pass: while standing by, a replica follows the directory's delta feed and works out which groups the mappings use from the policies and the pins the log records (src/runtime/controller/leadership.rs), so the departure it saw before leading is already placed for the fast path and does not wait for a full read of the fleet, whose time grows with N (about 13.5 s at N = 1000 before this, when the takeover p50 was 25.6 s). At N = 1000, leading comes 2 to 7 s after the lease falls free (10 to 12 s after the kill): the standby first ends its round of reading the log under way (a listing of every version of the log, about 5,000 objects here) and the new leader lists and verifies the log again as it opens it; both grow with the log.");
    let _ = writeln!(md, "\nWhat the S3 store costs a revocation: fast-path revocations with the S3 store (one replica, its S3 requests counted at a proxy in front of moto's S3, the bucket's positions counted before and after) and with the file store, on the same fleet; each pass's wall time from `trustsync_pass_duration_seconds`. The file store sends no request: a record is a line appended to the file and synced. A revocation's pass appends its records in three PutObjects (the trust's intent; the session denial's intent with the trust's outcome; the denial's outcome with the pass's record).\n\n| N | step | revocations | S3 requests per revocation | PutObject | reads | new positions per revocation | pass p50 ms, S3 | pass p50 ms, file | ratio | Graph change to trust p50 ms, S3 | file |\n|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in results {
        let row = r.cost_row();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.2} | {} | {} |",
            r.n,
            row["step"].as_str().unwrap(),
            r.s3.pass_ms.len(),
            row["s3_requests_per_revocation"],
            row["s3_puts_per_revocation"],
            row["s3_reads_per_revocation"],
            row["positions_per_revocation"],
            row["pass_p50_ms_s3"],
            row["pass_p50_ms_file"],
            row["pass_wall_ratio_s3_to_file"].as_f64().unwrap_or(0.0),
            ms(&row["revoke_p50_ms_s3"]),
            ms(&row["revoke_p50_ms_file"]),
        );
        rows.push(row);
    }
    md.push('\n');
    for r in results {
        let ops: Vec<String> =
            r.s3.requests
                .iter()
                .map(|(o, c)| format!("{o} {c}"))
                .collect();
        let standing: Vec<String> =
            r.s3.standing
                .iter()
                .map(|(op, n)| format!("{op} {:.1}", *n as f64 * 60.0 / r.s3.seconds))
                .collect();
        let standby: Vec<String> =
            r.s3.standby
                .iter()
                .map(|(op, n)| format!("{op} {:.1}", *n as f64 * 60.0 / r.s3.seconds))
                .collect();
        let _ = writeln!(
            md,
            "- N = {}: S3 requests over the {} revocations, by operation: {}; and a minute, whatever the passes do, from the leader (the lease's renewals; the listing of requests `release` and `audit acknowledge` leave for it): {}; from a standby (the lease read every 2 s; the log read ahead every 5 s, listing every version under the prefix, {} now): {}",
            r.n,
            r.s3.pass_ms.len(),
            ops.join(", "),
            standing.join(", "),
            r.s3.log_versions,
            standby.join(", ")
        );
    }
    (rows, md)
}
