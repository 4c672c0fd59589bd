//! `cargo bench --bench scale -- quotas [users groups]` (default 10,000 users in 1,000
//! groups): IAM Identity Center under its documented quotas, the controller's defaults
//! (`aws.maxRequestsPerSecond.identityCenter` 20 for the SSO admin APIs together,
//! `identityStorePerApi` 20 per identity-store API, 15 `CreateAccountAssignment` outstanding,
//! 3 `ProvisionPermissionSet` at once), one AccessAssignment per group (its own permission
//! set, assigned in one account):
//! - the apply from empty (`apply --auto-approve`) under the quotas: its wall time;
//! - the controller at its defaults (`run.intervalSeconds` 300,
//!   `identityCenter.fullReadSeconds` 3600, 1 s directory polls; `-- quotas users groups
//!   interval fullRead` sets the two): its first full pass (every
//!   permission set read in full), then full passes with nothing to change, each counted at
//!   the proxy between the ends of two passes (`trustsync_passes_total`) and timed by
//!   `trustsync_pass_duration_seconds`: AWS requests per document;
//! - onboarding under churn, the controller still running: 50 people, each new in Entra,
//!   added to a mapped group one after another while someone leaves another group each
//!   time; each timed from the group change (the local Graph server's admin API) to
//!   trustsync's identity-store group listing them as moto returns it (the group's
//!   assignment checked after).
//!
//! `-- onboarding [N]` (default 1,000 mappings): workloads, the controller over N mappings
//! (1 s polls, full pass hourly): 50 service principals added to mapped groups one after
//! another while another leaves a group each time; each timed from the Graph change to the
//! trust policy as moto returns it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::daemon::Daemon;
use crate::support::proxy::{Counts, Faults, Proxy};
use crate::support::*;
use crate::{config, guid, measure, running, trusted_now, Running};

/// The account every document assigns its set in.
const ACCOUNT: &str = "123456789012";

/// Steady full passes measured after the first.
const PASSES: usize = 3;

/// Additions timed.
const ROUNDS: usize = 50;

pub(crate) fn upn(u: usize) -> String {
    format!("user{u:05}@example.com")
}

pub(crate) fn user_id(u: usize) -> String {
    guid(0xc0ffee00, u)
}

pub(crate) fn group_id(g: usize) -> String {
    guid(0xa1b2c3d4, 0x10_0000 + g)
}

/// The identity store's groups (every page), their ids by display name.
pub(crate) fn store_groups(
    moto: &Moto,
    store: &aws_sdk_identitystore::Client,
    store_id: &str,
) -> BTreeMap<String, String> {
    let mut groups = BTreeMap::new();
    let mut token = None;
    loop {
        let page = moto
            .block_on(
                store
                    .list_groups()
                    .identity_store_id(store_id)
                    .set_next_token(token)
                    .send(),
            )
            .unwrap();
        for g in page.groups() {
            groups.insert(
                g.display_name().unwrap_or_default().to_string(),
                g.group_id().to_string(),
            );
        }
        token = page.next_token().map(String::from);
        if token.is_none() {
            return groups;
        }
    }
}

/// `users` Entra users in `groups` groups (each user in one), one AccessAssignment per
/// group.
pub(crate) fn scenario(ws: &Workspace, users: usize, groups: usize) {
    for e in std::fs::read_dir(ws.path().join("policies")).unwrap() {
        std::fs::remove_file(e.unwrap().path()).unwrap();
    }
    let per = users / groups;
    ws.edit_tenant(|t| {
        t["users"] = (0..users)
            .map(|u| json!({"id": user_id(u), "displayName": format!("User {u}"), "userPrincipalName": upn(u),
                "givenName": "User", "surname": format!("{u}"), "accountEnabled": true, "userType": "Member"}))
            .collect();
        t["groups"] = (0..groups)
            .map(|g| json!({"id": group_id(g), "displayName": format!("sg-people-{g:04}"),
                "members": (g * per..(g + 1) * per).map(user_id).collect::<Vec<_>>()}))
            .collect();
    });
    let mut docs = String::new();
    for g in 0..groups {
        let _ = write!(
            docs,
            "apiVersion: trustsync.dev/v1alpha1\nkind: AccessAssignment\nmetadata: {{name: people-{g:04}}}\nspec:\n  group: {{id: {}}}\n  permissionSet:\n    name: Set{g:04}\n    sessionDuration: PT8H\n    inlinePolicy: {{Version: \"2012-10-17\", Statement: [{{Effect: Allow, Action: \"s3:GetObject\", Resource: \"arn:aws:s3:::team-{g:04}/*\"}}]}}\n  accounts: {{ids: [\"{ACCOUNT}\"]}}\n---\n",
            group_id(g)
        );
    }
    ws.write("policies/people.yaml", &docs);
}

/// A metric of the controller now: the sum of the lines starting with `prefix`.
fn metric(d: &Daemon, prefix: &str) -> f64 {
    d.get("/metrics")
        .1
        .lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Passes ended so far, and the sum of their durations.
fn passes(d: &Daemon) -> (f64, f64) {
    (
        metric(d, "trustsync_passes_total"),
        metric(d, "trustsync_pass_duration_seconds_sum"),
    )
}

/// What one stretch between two pass ends cost, counted at the proxy.
struct Stretch {
    wall: f64,
    counts: Counts,
}

/// Waits for the next pass to end (at most `limit`); the requests since `from` and the
/// pass's duration.
fn next_pass(d: &Daemon, proxy: &Proxy, limit: Duration) -> Stretch {
    let (n0, s0) = passes(d);
    let t = Instant::now();
    loop {
        let (n, s) = passes(d);
        if n > n0 {
            let counts = proxy.counts();
            proxy.reset();
            return Stretch {
                wall: (s - s0) / (n - n0),
                counts,
            };
        }
        assert!(t.elapsed() < limit, "no pass ended within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Requests by operation, most first.
fn by_operation(c: &BTreeMap<String, u64>) -> String {
    let mut ops: Vec<(&String, &u64)> = c.iter().collect();
    ops.sort_by_key(|(o, n)| (std::cmp::Reverse(**n), (*o).clone()));
    ops.iter()
        .map(|(o, n)| format!("{o} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Identity Center's operations (the SSO admin and identity-store APIs trustsync calls).
fn identity_center(op: &str) -> bool {
    trustsync::adapters::aws::Operation::ALL.iter().any(|o| {
        o.name() == op
            && matches!(
                o.service(),
                trustsync::adapters::aws::Service::SsoAdmin
                    | trustsync::adapters::aws::Service::IdentityStore
            )
    })
}

/// Identity Center at its quotas: the apply from empty, the controller's first and steady
/// full passes, onboarding under churn. Rows and the section of docs/benchmarks.md.
pub fn at_quotas(users: usize, groups: usize, schedule: (u64, u64)) -> (Vec<Value>, String) {
    let (interval, full_read) = schedule;
    let label = format!("{users} users in {groups} groups");
    eprintln!("== Identity Center at its quotas, {label}");
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.endpoint, Faults::default(), 11);
    let ws = Workspace::new();
    scenario(&ws, users, groups);
    let graph = GraphServer::start(&ws.path().join("examples/tenant.json"), 999);
    config(&ws, "");
    let mut rows = Vec::new();
    let step = |s: &str| format!("Identity Center at the quotas: {s}");

    let apply = measure(&ws, &proxy, &graph, &["apply", "--auto-approve"]);
    eprintln!(
        "   apply from empty: {:.1} s, {} AWS requests ({}), exit {}",
        apply.wall, apply.aws, apply.aws_ops, apply.exit
    );
    assert_eq!(apply.exit, 0, "the apply converges");
    rows.push(json!({"n": users, "groups": groups, "documents": groups, "step": step("apply from empty"),
        "wall_s": apply.wall, "cpu_s": apply.cpu, "peak_mb": (apply.rss_mb * 10.0).round() / 10.0,
        "aws_requests": apply.aws, "aws_by_operation": apply.aws_ops, "graph_requests": apply.graph}));

    // The controller at its defaults, 1 s directory polls.
    config(
        &ws,
        &format!("run: {{intervalSeconds: {interval}, directoryPollSeconds: 1, policyPollSeconds: 1}}\nidentityCenter: {{fullReadSeconds: {full_read}}}\n"),
    );
    proxy.reset();
    let daemon = Daemon::spawn(&proxy.endpoint, graph.env(CLIENT_SECRET), &ws);
    let limit = Duration::from_secs(3600);
    let first = next_pass(&daemon, &proxy, limit);
    let per_doc = |c: &Counts| c.total() as f64 / groups as f64;
    let ic_per_doc = |c: &Counts| {
        c.requests
            .iter()
            .filter(|(o, _)| identity_center(o))
            .map(|(_, n)| *n)
            .sum::<u64>() as f64
            / groups as f64
    };
    eprintln!(
        "   first full pass: {:.1} s, {:.2} AWS requests per document ({})",
        first.wall,
        per_doc(&first.counts),
        by_operation(&first.counts.requests)
    );
    rows.push(json!({"n": users, "groups": groups, "documents": groups, "step": step("first full pass (controller)"),
        "wall_s": (first.wall * 100.0).round() / 100.0, "aws_requests": first.counts.total(),
        "requests_per_document": per_doc(&first.counts),
        "identity_center_requests_per_document": ic_per_doc(&first.counts),
        "aws_by_operation": by_operation(&first.counts.requests)}));

    let steady: Vec<Stretch> = (0..PASSES)
        .map(|k| {
            let s = next_pass(&daemon, &proxy, limit);
            eprintln!(
                "   no-change full pass {}: {:.1} s, {:.2} AWS requests per document ({})",
                k + 1,
                s.wall,
                per_doc(&s.counts),
                by_operation(&s.counts.requests)
            );
            s
        })
        .collect();
    let mut total = Counts::default();
    for s in &steady {
        for (o, n) in &s.counts.requests {
            *total.requests.entry(o.clone()).or_default() += n;
        }
        total.throttled += s.counts.throttled;
    }
    let mean_wall = steady.iter().map(|s| s.wall).sum::<f64>() / PASSES as f64;
    let passes_f = PASSES as f64;
    let full_reads = total
        .requests
        .get("ListManagedPoliciesInPermissionSet")
        .copied()
        .unwrap_or(0) as f64
        / passes_f;
    rows.push(json!({"n": users, "groups": groups, "documents": groups, "step": step("no-change full pass (controller)"),
        "passes": PASSES, "wall_s": (mean_wall * 100.0).round() / 100.0,
        "wall_s_each": steady.iter().map(|s| (s.wall * 100.0).round() / 100.0).collect::<Vec<_>>(),
        "aws_requests": total.total() as f64 / passes_f,
        "requests_per_document": per_doc(&total) / passes_f,
        "identity_center_requests_per_document": ic_per_doc(&total) / passes_f,
        "requests_per_document_each": steady.iter().map(|s| (per_doc(&s.counts) * 1000.0).round() / 1000.0).collect::<Vec<_>>(),
        "sets_read_in_full_per_pass": full_reads,
        "throttled": total.throttled,
        "aws_by_operation": by_operation(&total.requests)}));

    let onboard = onboarding_people(&moto, (&ws, &graph), &daemon, users, groups);
    let mut onboard_row = onboard.clone();
    onboard_row["step"] = json!("onboarding: Identity Center at the quotas");
    onboard_row["n"] = json!(users);
    onboard_row["groups"] = json!(groups);
    rows.push(onboard_row);
    let _ = daemon.terminate();

    let section = section(&label, &rows, groups, schedule);
    (rows, section)
}

/// The section of docs/benchmarks.md for [`at_quotas`].
fn section(
    label: &str,
    rows: &[Value],
    groups: usize,
    (interval, full_read): (u64, u64),
) -> String {
    let (apply, first, steady, onboard) = (&rows[0], &rows[1], &rows[2], &rows[3]);
    let f = |v: &Value| v.as_f64().unwrap_or(0.0);
    // From the controller's log, whose info lines a `TRUSTSYNC_LOG` may leave out.
    let passes = match onboard["focused_passes"].as_u64() {
        Some(n) => format!(
            "The focused passes ({n} of them, a joiner's and a leaver's) took p50 {:.0} ms, max {:.0} ms; {}.",
            f(&onboard["focused_pass_p50_ms"]),
            f(&onboard["focused_pass_max_ms"]),
            match onboard["full_pass_plan_ms_max"].as_f64() {
                Some(plan) => format!("a full pass's planning (CPU, no request) took up to {plan:.0} ms meanwhile, beside which the fast path runs in a task of its own"),
                None => "no full pass planned while the additions ran (one that does runs beside the fast path, a task of its own)".to_string(),
            }
        ),
        None => "The passes' times are not in the controller's log (its `TRUSTSYNC_LOG` left out the info lines).".to_string(),
    };
    format!(
        "## Identity Center at its quotas\n\n`cargo bench --bench scale -- quotas`: IAM Identity Center at {label} (one AccessAssignment per group, its own permission set, assigned in one account), the controller's defaults: the SSO admin APIs paced at 20 requests/s together, each identity-store API at 20/s, 15 `CreateAccountAssignment` outstanding and 3 `ProvisionPermissionSet` at once (the IAM Identity Center User Guide's quotas); `run.intervalSeconds` {interval}, `identityCenter.fullReadSeconds` {full_read}, 1 s directory polls. Requests counted at the proxy between the ends of two passes; pass times from `trustsync_pass_duration_seconds`.\n\n\
| step | wall s | AWS requests | requests per document | Identity Center requests per document |\n|---|---:|---:|---:|---:|\n\
| apply from empty | {:.1} | {} | | |\n\
| first full pass (controller: every set read in full) | {:.1} | {} | {:.2} | {:.2} |\n\
| no-change full pass (controller, mean of {PASSES}) | {:.1} | {:.0} | {:.2} | {:.2} |\n\n\
- Apply from empty, by operation: {}\n\
- First full pass, by operation: {}\n\
- No-change full passes ({PASSES}, each {}: {} requests per document), by operation over them: {}. Permission sets read in full per pass: {:.1} of {groups} (their schedule: the first pass's sets come due spread over `fullReadSeconds`, so a pass every {interval} s re-reads about {interval}/{full_read} of them); group members, users, groups and the list of sets every pass.\n\
- Onboarding under churn, the controller running: {} people new in Entra added to mapped groups one after another while someone left another group each time, each timed from the group change to trustsync's identity-store group listing them as moto returns it (the group's assignment in {ACCOUNT} checked after each): p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms. A full pass was started (a policy file changed) just before the first: {} of the additions ended while it read (p50 {:.0} ms, max {:.0} ms), the membership fast path's requests going ahead of its reads in the rate limits. {passes} Each addition, ms: {}. Polled every 20 ms, one request a poll (the group's members) until someone new is there. {:.1} AWS requests per addition over the run (the departures' and the full pass's included: {}).\n",
        f(&apply["wall_s"]), apply["aws_requests"],
        f(&first["wall_s"]), first["aws_requests"], f(&first["requests_per_document"]), f(&first["identity_center_requests_per_document"]),
        f(&steady["wall_s"]), f(&steady["aws_requests"]), f(&steady["requests_per_document"]), f(&steady["identity_center_requests_per_document"]),
        apply["aws_by_operation"].as_str().unwrap_or_default(),
        first["aws_by_operation"].as_str().unwrap_or_default(),
        steady["wall_s_each"], steady["requests_per_document_each"],
        steady["aws_by_operation"].as_str().unwrap_or_default(),
        f(&steady["sets_read_in_full_per_pass"]),
        onboard["additions"], f(&onboard["onboard_p50_ms"]), f(&onboard["onboard_p99_ms"]), f(&onboard["onboard_max_ms"]),
        onboard["during_full_pass"], f(&onboard["during_full_pass_p50_ms"]), f(&onboard["during_full_pass_max_ms"]),
        onboard["each_ms"].as_array().map(|a| a.iter().map(|v| format!("{:.0}", v.as_f64().unwrap_or(0.0))).collect::<Vec<_>>().join(", ")).unwrap_or_default(),
        f(&onboard["aws_requests_per_addition"]),
        onboard["aws_by_operation"].as_str().unwrap_or_default(),
    )
}

/// Percentile `p` (0..1) of sorted samples.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The summary of timed additions.
fn summary(mut samples: Vec<f64>) -> Value {
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    json!({"additions": samples.len(),
        "onboard_p50_ms": percentile(&samples, 0.5).round(),
        "onboard_p99_ms": percentile(&samples, 0.99).round(),
        "onboard_max_ms": samples[samples.len() - 1].round()})
}

/// People onboarded with the controller running: [`ROUNDS`] new Entra users, each added
/// to a group while a member of another leaves it.
fn onboarding_people(
    moto: &Moto,
    (ws, graph): (&Workspace, &GraphServer),
    daemon: &Daemon,
    users: usize,
    groups: usize,
) -> Value {
    let store = aws_sdk_identitystore::Client::new(moto.sdk());
    let admin = aws_sdk_ssoadmin::Client::new(moto.sdk());
    let instance = moto
        .block_on(admin.list_instances().send())
        .unwrap()
        .instances()[0]
        .clone();
    let (instance_arn, store_id) = (
        instance.instance_arn().unwrap().to_string(),
        instance.identity_store_id().unwrap().to_string(),
    );
    let ic_groups = store_groups(moto, &store, &store_id);
    let members = |g: usize| -> Vec<String> {
        let out = moto
            .block_on(
                store
                    .list_group_memberships()
                    .identity_store_id(&store_id)
                    .group_id(&ic_groups[&format!("people-{g:04}")])
                    .send(),
            )
            .unwrap();
        out.group_memberships()
            .iter()
            .filter_map(|m| m.member_id()?.as_user_id().ok().cloned())
            .collect()
    };
    // Each document's permission set, by name.
    let mut sets = BTreeMap::new();
    let mut token = None;
    loop {
        let page = moto
            .block_on(
                admin
                    .list_permission_sets()
                    .instance_arn(&instance_arn)
                    .set_next_token(token)
                    .send(),
            )
            .unwrap();
        for arn in page.permission_sets() {
            let d = moto
                .block_on(
                    admin
                        .describe_permission_set()
                        .instance_arn(&instance_arn)
                        .permission_set_arn(arn)
                        .send(),
                )
                .unwrap();
            let name = d
                .permission_set()
                .and_then(|p| p.name())
                .unwrap_or_default();
            sets.insert(name.to_string(), arn.clone());
        }
        token = page.next_token().map(String::from);
        if token.is_none() {
            break;
        }
    }
    let assigned = |g: usize| -> bool {
        let out = moto
            .block_on(
                admin
                    .list_account_assignments()
                    .instance_arn(&instance_arn)
                    .account_id(ACCOUNT)
                    .permission_set_arn(&sets[&format!("Set{g:04}")])
                    .send(),
            )
            .unwrap();
        out.account_assignments()
            .iter()
            .any(|a| a.principal_id() == Some(ic_groups[&format!("people-{g:04}")].as_str()))
    };
    // An identity-store user's id by user name, once it exists.
    let user_of = |name: &str| -> Option<String> {
        let id = aws_sdk_identitystore::types::UniqueAttribute::builder()
            .attribute_path("userName")
            .attribute_value(aws_smithy_types::Document::String(name.to_string()))
            .build()
            .unwrap();
        let out = moto.block_on(
            store
                .get_user_id()
                .identity_store_id(&store_id)
                .alternate_identifier(
                    aws_sdk_identitystore::types::AlternateIdentifier::UniqueAttribute(id),
                )
                .send(),
        );
        out.ok().map(|o| o.user_id().to_string())
    };
    let per = users / groups;
    // The next member of each group to leave it.
    let mut leaving: BTreeMap<usize, usize> = BTreeMap::new();
    let mut samples = Vec::new();
    // The additions race a full pass: the policy files change (a comment), which starts
    // one (policies checked every second); each addition that ends before it does counts
    // as made during it.
    let docs = ws.read("policies/people.yaml");
    // A full pass's end moves `lastSuccessAt` (a focused pass's does not).
    let full_ended = || daemon.status()["lastSuccessAt"].clone();
    let before_full = full_ended();
    ws.write(
        "policies/people.yaml",
        &format!("# onboarding under a full pass\n{docs}"),
    );
    std::thread::sleep(Duration::from_millis(1500));
    // The log's lines from here on (their UTC timestamps, to the second).
    let started_at = trustsync::audit::now_rfc3339()[..19].to_string();
    let mut during = Vec::new();
    let t0 = Instant::now();
    let before = aws_requests_by_op(daemon);
    for k in 0..ROUNDS {
        let g = (k * 37 + 5) % groups;
        // Churn: a member of another group leaves it (each group keeps most of its
        // members: the removal limits let one of ten go).
        let other = (g + groups / 2) % groups;
        let next = leaving.entry(other).or_default();
        if *next < per / 2 {
            graph.remove_member(&group_id(other), &user_id(other * per + *next));
            *next += 1;
        }
        let u = users + k;
        let (status, body) = graph.admin(
            "POST",
            "/admin/users",
            Some(json!({"id": user_id(u), "displayName": format!("User {u}"), "userPrincipalName": upn(u),
                "givenName": "User", "surname": format!("{u}"), "accountEnabled": true, "userType": "Member"})),
        );
        assert_eq!(status, 201, "{body}");
        let was = members(g);
        let t = Instant::now();
        graph.add_member(&group_id(g), &user_id(u));
        // In: their identity-store user (by user name) among the group's members. One
        // request a poll (the group's members) until someone new is there, so that the
        // watching loads moto (one Python process) as little as it can.
        let joined = || {
            let now = members(g);
            now.iter().any(|id| !was.contains(id))
                && user_of(&upn(u)).is_some_and(|id| now.contains(&id))
        };
        while !joined() {
            if t.elapsed() > Duration::from_secs(120) {
                let kept = std::env::temp_dir().join("trustsync-bench-run.log");
                let _ = std::fs::copy(ws.path().join("run.log"), &kept);
                let _ = std::fs::copy(
                    ws.path().join("audit.jsonl"),
                    std::env::temp_dir().join("trustsync-bench-audit.jsonl"),
                );
                panic!(
                    "addition {k} ({} to people-{g:04}) not onboarded; the controller's log: {}\nGraph server: {}\n/status: {}",
                    upn(u),
                    kept.display(),
                    graph.stats(),
                    daemon.get("/status").1,
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        assert!(assigned(g), "people-{g:04} holds Set{g:04} in {ACCOUNT}");
        let racing = full_ended() == before_full;
        eprintln!(
            "   onboarding {k}: {ms:.0} ms{}",
            if racing { " (during a full pass)" } else { "" }
        );
        samples.push(ms);
        if racing {
            during.push(ms);
        }
    }
    std::thread::sleep(Duration::from_secs(3));
    // The controller's log stays for a look at where each addition's time went.
    let kept = std::env::temp_dir().join("trustsync-bench-onboarding-run.log");
    if std::fs::copy(ws.path().join("run.log"), &kept).is_ok() {
        eprintln!("   the controller's log: {}", kept.display());
    }
    let after = aws_requests_by_op(daemon);
    let mut spent: BTreeMap<String, u64> = BTreeMap::new();
    for (op, n) in &after {
        let d = n - before.get(op).copied().unwrap_or(0);
        if d > 0 {
            spent.insert(op.clone(), d);
        }
    }
    let total: u64 = spent.values().sum();
    let each: Vec<f64> = samples.iter().map(|ms| ms.round()).collect();
    let mut v = summary(samples);
    v["each_ms"] = json!(each);
    // From the controller's log: how long each full pass planned (CPU, no request), and
    // each focused pass's time, over the run.
    let log = ws.read("run.log");
    let field = |line: &str, key: &str| -> Option<f64> {
        let rest = &line[line.find(key)? + key.len()..];
        rest.split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    let since = |line: &&str| line.get(..19).is_some_and(|t| t >= started_at.as_str());
    let mut plans: Vec<f64> = log
        .lines()
        .filter(since)
        .filter(|l| l.contains("pass.fast=false") && l.contains(" planned "))
        .filter_map(|l| field(l, "plan_us="))
        .map(|us| us / 1000.0)
        .collect();
    let mut focused: Vec<f64> = log
        .lines()
        .filter(since)
        .filter(|l| l.contains("pass.fast=true") && l.contains("pass finished"))
        .filter_map(|l| field(l, "duration_ms="))
        .collect();
    plans.sort_by(|a, b| a.partial_cmp(b).unwrap());
    focused.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if !plans.is_empty() {
        v["full_pass_plan_ms_max"] = json!(plans[plans.len() - 1].round());
    }
    if !focused.is_empty() {
        v["focused_passes"] = json!(focused.len());
        v["focused_pass_p50_ms"] = json!(percentile(&focused, 0.5).round());
        v["focused_pass_max_ms"] = json!(focused[focused.len() - 1].round());
    }
    during.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v["during_full_pass"] = json!(during.len());
    if !during.is_empty() {
        v["during_full_pass_p50_ms"] = json!(percentile(&during, 0.5).round());
        v["during_full_pass_max_ms"] = json!(during[during.len() - 1].round());
    }
    v["seconds"] = json!(t0.elapsed().as_secs_f64().round());
    v["aws_requests_per_addition"] = json!(total as f64 / ROUNDS as f64);
    v["aws_by_operation"] = json!(by_operation(&spent));
    v
}

/// The controller's AWS requests so far, by operation (`trustsync_api_requests_total`).
fn aws_requests_by_op(d: &Daemon) -> BTreeMap<String, u64> {
    d.get("/metrics")
        .1
        .lines()
        .filter(|l| {
            l.starts_with("trustsync_api_requests_total{") && !l.contains("service=\"graph\"")
        })
        .filter_map(|l| {
            let op = l
                .split("operation=\"")
                .nth(1)?
                .split('"')
                .next()?
                .to_string();
            let n = l.rsplit(' ').next()?.parse::<f64>().ok()? as u64;
            Some((op, n))
        })
        .fold(BTreeMap::new(), |mut m, (op, n)| {
            *m.entry(op).or_default() += n;
            m
        })
}

/// Workloads onboarded with the controller over `n` mappings (1 s polls, full pass hourly):
/// [`ROUNDS`] service principals added to mapped groups one after another while another
/// leaves a group each time, each timed from the Graph change to the trust policy.
pub fn onboarding_workloads(n: usize) -> (Vec<Value>, String) {
    eprintln!("== onboarding: workloads, N = {n}");
    let Running {
        moto,
        ws: _ws,
        sc,
        graph,
        proxy,
        mut child,
    } = running(n, 0, 3600);
    let iam = moto.iam();
    proxy.reset();
    let mut samples = Vec::new();
    let sp = |m: &&String| m.starts_with("5e1f0a2b");
    for k in 0..ROUNDS {
        // Churn: a direct service-principal member of another group leaves it.
        let j = (k * 61 + 7) % n;
        if let Some(leaver) = sc.members[j].iter().find(sp) {
            graph.remove_member(&sc.groups[j], leaver);
        }
        // The addition: a service principal of a neighbouring group joins group i.
        let i = (k * 37 + 3) % n;
        let role = format!("bench-{i}");
        let trusted = trusted_now(&iam, &moto, &role);
        let Some(joiner) = (1..n)
            .flat_map(|d| sc.members[(i + d) % n].iter().filter(sp))
            .find(|m| !trusted.contains(m) && !sc.members[i].contains(m))
            .cloned()
        else {
            continue;
        };
        let t = Instant::now();
        graph.add_member(&sc.groups[i], &joiner);
        while !trusted_now(&iam, &moto, &role).contains(&joiner) {
            assert!(
                t.elapsed() < Duration::from_secs(120),
                "{role} does not trust {joiner}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        samples.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    std::thread::sleep(Duration::from_secs(3));
    let _ = child.kill();
    let _ = child.wait();
    let counts = proxy.counts();
    let mut row = summary(samples);
    row["n"] = json!(n);
    row["step"] = json!("onboarding: workloads");
    row["aws_requests_per_addition"] = json!(counts.total() as f64 / ROUNDS as f64);
    row["aws_by_operation"] = json!(by_operation(&counts.requests));
    let f = |k: &str| row[k].as_f64().unwrap_or(0.0);
    let section = format!(
        "## Onboarding\n\n`cargo bench --bench scale -- onboarding`: the controller over N = {n} mappings (1 s delta polls, full pass hourly); {} service principals added to mapped groups one after another while a member of another group leaves it each time; each addition timed from the Graph change (the local Graph server's admin API) to the trust policy as moto returns it (polled every 10 ms). People's onboarding at Identity Center's quotas: [Identity Center at its quotas](#identity-center-at-its-quotas).\n\n| N | step | additions | p50 ms | p99 ms | max ms | AWS requests per addition |\n|---:|---|---:|---:|---:|---:|---:|\n| {n} | onboarding: workloads | {} | {:.0} | {:.0} | {:.0} | {:.2} |\n\n- By operation over the run (the departures' included): {}\n",
        row["additions"], row["additions"], f("onboard_p50_ms"), f("onboard_p99_ms"), f("onboard_max_ms"),
        f("aws_requests_per_addition"), row["aws_by_operation"].as_str().unwrap_or_default(),
    );
    (vec![row], section)
}
