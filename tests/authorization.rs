//! Access that holds in real AWS (issue 22): decisions, not documents. Through the binary
//! against moto and the local Graph server, with tokens from its token endpoint, and every
//! "may this token assume this role" and "may this session make this request" answered by
//! the judge (tests/judge: principalmapper's policy evaluation and the STS rules with their
//! documentation), because moto stores IAM documents and never enforces them.

mod support;

use serde_json::{json, Value};
use support::judge::{now, signed_token, workload_token, Judge};
use support::*;

const SP1: &str = "5e1f0a2b-1111-4111-8111-000000000001";
const SP2: &str = "5e1f0a2b-1111-4111-8111-000000000002";
const SP3: &str = "5e1f0a2b-1111-4111-8111-000000000003";
const PAYMENTS: &str = "a1b2c3d4-0001-4000-8000-000000000001";
const AUDIENCE: &str = "api://aws-federation";
const DEPLOY: &str = "lambda:UpdateFunctionCode";
const FUNCTION: &str = "arn:aws:lambda:us-east-1:123456789012:function:payments-api";

/// A workload of examples/tenant.json: its client id and secret.
fn client(n: u8) -> (String, String) {
    (
        format!("9d0e1f2a-aaaa-4aaa-8aaa-00000000000{n}"),
        format!("local-workload-secret-{n}"),
    )
}

fn token(graph: &GraphServer, n: u8, resource: &str) -> String {
    let (id, secret) = client(n);
    workload_token(graph, TENANT_ID, &id, &secret, resource)
}

fn apply(moto: &Moto, ws: &Workspace, graph: &GraphServer) -> String {
    let env = graph.env(CLIENT_SECRET);
    stdout(&support::apply(Via::moto(moto).env(&env), ws, &[]))
}

fn allowed(v: &Value) -> bool {
    v["allowed"].as_bool().unwrap()
}

/// The judge refused the request, for the session denial trustsync wrote.
fn assert_denied_by_trustsync(v: &Value) {
    assert!(!allowed(v), "the live session is denied: {v:#}");
    assert!(
        v["reasons"]
            .to_string()
            .contains("trustsync-revoked-sessions"),
        "{v:#}"
    );
}

fn started() -> (Moto, Workspace, GraphServer, Judge) {
    let moto = Moto::start();
    moto.create_functions(&["payments-api"]);
    let ws = Workspace::new();
    ws.write("trustsync.yaml", "audit: {path: audit.jsonl}\n");
    let graph = GraphServer::start(&ws.path().join("examples/tenant.json"), 999);
    let judge = Judge::new(&moto, &graph);
    (moto, ws, graph, judge)
}

/// The shipped samples, unchanged: a member's token is accepted, a non-member's refused;
/// after the member leaves and one pass runs, its new token is refused and the session it
/// already held is denied on its next request, while another member's session keeps
/// working; back in the group, a fresh session works.
#[test]
fn a_departed_workload_loses_new_and_live_sessions_and_a_returning_one_gets_them_back() {
    let (moto, ws, graph, judge) = started();
    apply(&moto, &ws, &graph);

    let t1 = token(&graph, 1, AUDIENCE);
    let t2 = token(&graph, 2, AUDIENCE);
    let t3 = token(&graph, 3, AUDIENCE);
    let claims: Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            t2.split('.').nth(1).unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        claims["iss"],
        format!("https://sts.windows.net/{TENANT_ID}/")
    );
    assert_eq!(
        (claims["aud"].as_str(), claims["sub"].as_str()),
        (Some(AUDIENCE), Some(SP2))
    );

    let s1 = judge.assume("payments-deployer", &t1);
    let s2 = judge.assume("payments-deployer", &t2);
    assert!(allowed(&s1) && allowed(&s2), "{s1:#}\n{s2:#}");
    let refused = judge.assume("payments-deployer", &t3);
    assert!(
        !allowed(&refused),
        "reporting-etl is no member: {refused:#}"
    );
    assert!(allowed(&judge.assume("reporting-reader", &t3)));
    let (s1, s2) = (s1["session"].clone(), s2["session"].clone());
    assert!(allowed(&judge.request(&s2, DEPLOY, FUNCTION)));

    // SP2 leaves; one pass.
    graph.remove_member(PAYMENTS, SP2);
    let out = apply(&moto, &ws, &graph);
    assert!(out.contains("revoke-sessions"), "{out}");
    let new_token = token(&graph, 2, AUDIENCE);
    let v = judge.assume("payments-deployer", &new_token);
    assert!(!allowed(&v), "a new session is refused: {v:#}");
    assert_denied_by_trustsync(&judge.request(&s2, DEPLOY, FUNCTION));
    assert!(
        allowed(&judge.request(&s1, DEPLOY, FUNCTION)),
        "another member's session keeps working"
    );
    assert!(allowed(&judge.request(&s1, "lambda:GetFunction", FUNCTION)));

    // Converged: nothing more to do; plan and access show whose sessions are denied.
    let out = command(ws.path(), &moto.endpoint)
        .envs(graph.env(CLIENT_SECRET))
        .args([
            "--config",
            "trustsync.yaml",
            "plan",
            "--detailed-exitcode",
            "--output",
            "json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let plan: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let denials = plan["sessionDenials"].as_array().unwrap();
    assert_eq!(denials.len(), 1, "{plan:#}");
    assert_eq!(
        (
            denials[0]["principal"].as_str(),
            denials[0]["mapping"].as_str()
        ),
        (Some(SP2), Some("payments-deployers"))
    );
    let out = command(ws.path(), &moto.endpoint)
        .envs(graph.env(CLIENT_SECRET))
        .args(["--config", "trustsync.yaml", "access", "--principal", SP2])
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(
        text.contains(&format!("sessions of {SP2} issued before")),
        "{}",
        show(&out)
    );

    // Back in the group: trusted again at once, and the denial stays. The session it held
    // before (a stolen copy, say) never works again, however it came back; its cut-off
    // (the removal's write plus 300 s) came back to when it was let in, so a session it
    // gets now works at once.
    graph.add_member(PAYMENTS, SP2);
    apply(&moto, &ws, &graph);
    assert_denied_by_trustsync(&judge.request(&s2, DEPLOY, FUNCTION));
    let back = judge.assume("payments-deployer", &token(&graph, 2, AUDIENCE));
    assert!(allowed(&back), "{back:#}");
    assert!(allowed(&judge.request(&back["session"], DEPLOY, FUNCTION)));
    assert_denied_by_trustsync(&judge.request(&s2, DEPLOY, FUNCTION));
    let policies = moto
        .block_on(
            moto.iam()
                .list_role_policies()
                .role_name("payments-deployer")
                .send(),
        )
        .unwrap();
    assert!(
        policies
            .policy_names()
            .iter()
            .any(|p| p == "trustsync-revoked-sessions"),
        "the denial outlives re-admission: {:?}",
        policies.policy_names()
    );
    let audit = ws.read("audit.jsonl");
    assert!(
        audit.contains("\"revoke-sessions\""),
        "audited as a revocation"
    );
}

/// The cut-off is taken at the write, not when the pass began (issue 34): with AWS behind
/// a proxy that makes the pass read for longer than the propagation margin, a departed
/// workload that mints a session while the pass is still reading (its trust still names
/// it) holds a session that is denied once the pass has written.
#[test]
fn a_session_minted_during_a_long_pass_is_denied() {
    let (moto, ws, graph, judge) = started();
    ws.write(
        "trustsync.yaml",
        "audit: {path: audit.jsonl}\nsafety: {propagationSeconds: 1}\n",
    );
    apply(&moto, &ws, &graph);
    graph.remove_member(PAYMENTS, SP2);
    // Every AWS request held 700 ms: the pass reads for several seconds before it writes.
    let proxy = support::proxy::Proxy::start(
        &moto.endpoint,
        support::proxy::Faults {
            delay_ms: 700,
            ..Default::default()
        },
        1,
    );
    let began = now();
    let env = graph.env(CLIENT_SECRET);
    let minted = std::thread::scope(|s| {
        let pass = s.spawn(|| support::apply(Via::at(&proxy.endpoint).env(&env), &ws, &[]));
        // Mid-pass, past the margin: the trust policy still names SP2, so it gets a session.
        std::thread::sleep(std::time::Duration::from_millis(2500));
        let minted = judge.assume("payments-deployer", &token(&graph, 2, AUDIENCE));
        assert!(
            allowed(&minted),
            "the pass has not written yet: the trust still names SP2 {minted:#}"
        );
        pass.join().unwrap();
        minted
    });
    let took = now() - began;
    assert!(
        took >= 4,
        "the pass read for longer than the margin ({took} s)"
    );
    assert_denied_by_trustsync(&judge.request(&minted["session"], DEPLOY, FUNCTION));
}

/// `check-token` and the judge agree, token by token and role by role: v1 tokens of
/// members and non-members, v2 tokens (refused: STS matches azp), a wrong audience, a
/// foreign tenant, an expired token and a user token.
#[test]
fn check_token_and_the_judge_agree_on_every_token_and_role() {
    let (moto, ws, graph, _) = started();
    // A v2 resource application and an unrelated one, as a tenant would have them.
    ws.edit_tenant(|t| {
        let apps = t["applications"].as_array_mut().unwrap();
        apps.push(json!({"id": "0a1b2c3d-0000-4000-8000-00000000f002", "appId": "6c7d8e9f-0000-4000-8000-00000000f002",
            "displayName": "aws-federation-v2", "identifierUris": ["api://aws-federation-v2"],
            "api": {"requestedAccessTokenVersion": 2}}));
        apps.push(json!({"id": "0a1b2c3d-0000-4000-8000-00000000f003", "appId": "6c7d8e9f-0000-4000-8000-00000000f003",
            "displayName": "some-api", "identifierUris": ["api://some-api"]}));
    });
    drop(graph);
    let graph = GraphServer::start(&ws.path().join("examples/tenant.json"), 999);
    let judge = Judge::new(&moto, &graph);
    apply(&moto, &ws, &graph);

    let t = now();
    let v1_iss = format!("https://sts.windows.net/{TENANT_ID}/");
    let v2_token = token(&graph, 1, "api://aws-federation-v2");
    let v2_claims = v2_token.split('.').nth(1).unwrap().to_string();
    let tokens: Vec<(&str, String)> = vec![
        ("v1 member SP1", token(&graph, 1, AUDIENCE)),
        ("v1 member SP2", token(&graph, 2, AUDIENCE)),
        ("v1 reporting SP3", token(&graph, 3, AUDIENCE)),
        ("v2 (azp is the caller)", v2_token),
        ("wrong audience", token(&graph, 1, "api://some-api")),
        (
            "foreign tenant",
            signed_token(
                &json!({"iss": "https://sts.windows.net/00000000-0000-4000-8000-0000000000ff/", "aud": AUDIENCE, "sub": SP1, "oid": SP1, "iat": t, "nbf": t, "exp": t + 600, "ver": "1.0"}),
            ),
        ),
        (
            "expired",
            signed_token(
                &json!({"iss": v1_iss, "aud": AUDIENCE, "sub": SP1, "oid": SP1, "iat": t - 7200, "nbf": t - 7200, "exp": t - 3600, "ver": "1.0"}),
            ),
        ),
        (
            "user token",
            signed_token(
                &json!({"iss": v1_iss, "aud": AUDIENCE, "sub": "pairwise-Xq2fmJ0aT1", "oid": "c0ffee00-2222-4222-8222-000000000001", "idtyp": "user", "iat": t, "nbf": t, "exp": t + 600, "ver": "1.0"}),
            ),
        ),
    ];
    assert!(v2_claims.len() > 10);
    let roles = ["payments-deployer", "reporting-reader", "payments-runtime"];
    let mut checks = Vec::new();
    for (_, tok) in &tokens {
        for role in roles {
            checks.push(json!({"op": "assume", "role": role, "token": tok}));
        }
    }
    let verdicts = judge.check(checks);
    let mut pairs = 0;
    let mut accepted = 0;
    for (i, (what, tok)) in tokens.iter().enumerate() {
        ws.write("token.jwt", tok);
        let out = command(ws.path(), &moto.endpoint)
            .envs(graph.env(CLIENT_SECRET))
            .args([
                "--config",
                "trustsync.yaml",
                "check-token",
                "token.jwt",
                "--output",
                "json",
            ])
            .output()
            .unwrap();
        let report: Value =
            serde_json::from_str(&stdout(&out)).unwrap_or_else(|_| panic!("{}", show(&out)));
        for (j, role) in roles.iter().enumerate() {
            let judged = allowed(&verdicts[i * roles.len() + j]);
            let checked = report["roles"]
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["role"].as_str().unwrap().ends_with(&format!("/{role}")))
                .map(|v| v["accepts"].as_bool().unwrap())
                .unwrap_or(false);
            assert_eq!(
                checked,
                judged,
                "{what} -> {role}: check-token {report:#}\njudge {:#}",
                verdicts[i * roles.len() + j]
            );
            pairs += 1;
            accepted += judged as usize;
        }
    }
    assert!(pairs >= 20, "{pairs}");
    // SP1 and SP2 to the deployer, SP3 to the reader: nothing else.
    assert_eq!(accepted, 3, "{verdicts:#?}");
    let _ = SP3;
}

/// A mass removal whose denials cannot fit the role's inline policies falls back to the
/// role-wide cut-off: every live session of the issuer is denied, and the members who stay
/// assume the role again.
#[test]
fn denials_that_do_not_fit_fall_back_to_the_role_wide_cut_off() {
    let (moto, ws, graph, judge) = started();
    ws.write(
        "trustsync.yaml",
        "audit: {path: audit.jsonl}\nlimits: {inlinePolicyChars: 350}\nsafety: {maxPrincipalRemovalShare: 1.0}\n",
    );
    apply(&moto, &ws, &graph);
    let s1 = judge.assume("payments-deployer", &token(&graph, 1, AUDIENCE))["session"].clone();
    // The cut-off is whole seconds: the session must be older than the pass.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    graph.remove_member(PAYMENTS, SP2);
    let out = apply(&moto, &ws, &graph);
    assert!(
        out.contains("sessions-cut-role-wide") || out.contains("every web-identity session"),
        "{out}"
    );
    assert!(
        !allowed(&judge.request(&s1, DEPLOY, FUNCTION)),
        "the role-wide cut-off denies a member's older session too"
    );
    // A member who stays gets a fresh session that works (its issue time is after the cut-off).
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let fresh = judge.assume("payments-deployer", &token(&graph, 1, AUDIENCE));
    assert!(
        allowed(&judge.request(&fresh["session"], DEPLOY, FUNCTION)),
        "{fresh:#}"
    );
}

/// The controller's fast path, judged: a departure is revoked by the membership fast path
/// (the full pass waits an hour), and the session the workload obtained before it is
/// refused on its next request; a new token is refused; another member keeps working.
/// Back in the group, the fast path takes the denial away and a fresh session works.
#[test]
fn the_fast_path_denies_a_session_issued_before_the_departure() {
    let (moto, ws, graph, judge) = started();
    ws.write(
        "trustsync.yaml",
        "audit: {path: audit.jsonl}\nrun: {intervalSeconds: 3600, directoryPollSeconds: 1}\n",
    );
    let daemon = support::daemon::Daemon::start(&moto, &graph, &ws);
    daemon.wait_ready();
    let first_pass = daemon.status()["lastPass"]["time"].clone();
    let s1 = judge.assume("payments-deployer", &token(&graph, 1, AUDIENCE));
    let s2 = judge.assume("payments-deployer", &token(&graph, 2, AUDIENCE));
    assert!(allowed(&s1) && allowed(&s2), "{s1:#}\n{s2:#}");
    let (s1, s2) = (s1["session"].clone(), s2["session"].clone());
    assert!(allowed(&judge.request(&s2, DEPLOY, FUNCTION)));

    let denial = || {
        moto.block_on(
            moto.iam()
                .get_role_policy()
                .role_name("payments-deployer")
                .policy_name("trustsync-revoked-sessions")
                .send(),
        )
        .is_ok()
    };
    graph.remove_member(PAYMENTS, SP2);
    let took = wait_for(
        std::time::Duration::from_secs(30),
        "the fast path's denial",
        denial,
    );
    println!(
        "fast path: session denial written {} ms after the Graph change",
        took.as_millis()
    );
    assert!(!moto
        .trusted_subs("payments-deployer")
        .contains(&SP2.to_string()));
    assert_denied_by_trustsync(&judge.request(&s2, DEPLOY, FUNCTION));
    let v = judge.assume("payments-deployer", &token(&graph, 2, AUDIENCE));
    assert!(!allowed(&v), "a new session is refused: {v:#}");
    assert!(
        allowed(&judge.request(&s1, DEPLOY, FUNCTION)),
        "another member's session keeps working"
    );
    let audit = ws.read("audit.jsonl");
    assert!(
        audit.contains("\"trigger\":\"fast-path\""),
        "written by the fast path, not a full pass: {audit}"
    );
    assert_ne!(daemon.status()["lastPass"]["time"], first_pass);

    // Back in the group: the fast path trusts it again and keeps the denial. Its old
    // session never works again; a fresh one, issued after the cut-off, does.
    graph.add_member(PAYMENTS, SP2);
    wait_for(
        std::time::Duration::from_secs(30),
        "the fast path to trust it again",
        || {
            moto.trusted_subs("payments-deployer")
                .contains(&SP2.to_string())
        },
    );
    assert!(denial(), "the denial outlives re-admission");
    assert_denied_by_trustsync(&judge.request(&s2, DEPLOY, FUNCTION));
    let back = judge.assume("payments-deployer", &token(&graph, 2, AUDIENCE));
    assert!(allowed(&back), "{back:#}");
    assert!(allowed(&judge.request(&back["session"], DEPLOY, FUNCTION)));
    assert_denied_by_trustsync(&judge.request(&s2, DEPLOY, FUNCTION));
}
