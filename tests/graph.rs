//! End-to-end with Entra: the trustsync binary reading the local Graph server (through the
//! token endpoint and Graph's wire format) and writing to moto.

mod support;

use serde_json::json;
use support::*;

const SP1: &str = "5e1f0a2b-1111-4111-8111-000000000001";
const SP2: &str = "5e1f0a2b-1111-4111-8111-000000000002";
const SP3: &str = "5e1f0a2b-1111-4111-8111-000000000003";
const SP4: &str = "5e1f0a2b-1111-4111-8111-000000000004";
const PAYMENTS: &str = "a1b2c3d4-0001-4000-8000-000000000001";
const CI_RUNNERS: &str = "a1b2c3d4-0001-4000-8000-000000000003";

/// moto with the function, a Graph server paging 2 objects at a time, and a workspace
/// whose config reads Graph (no tenant file).
fn setup(config: &str) -> (Moto, GraphServer, Workspace) {
    let moto = Moto::start();
    moto.create_functions(&["payments-api"]);
    let ws = Workspace::new();
    ws.write(
        "trustsync.yaml",
        &format!("audit: {{path: audit.jsonl}}\n{config}"),
    );
    let graph = GraphServer::start(&ws.path().join("examples/tenant.json"), 2);
    (moto, graph, ws)
}

fn plan(moto: &Moto, ws: &Workspace, env: &[(String, String)], code: i32) -> serde_json::Value {
    let out = run_env(
        moto,
        ws,
        env,
        &["plan", "--output", "json", "--detailed-exitcode"],
        code,
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}\n{}", show(&out)))
}

#[test]
fn nested_and_paged_membership_becomes_trust_and_follows_changes() {
    let (moto, graph, ws) = setup("");
    let env = graph.env(CLIENT_SECRET);
    apply(Via::moto(&moto).env(&env), &ws, &[]);
    // Direct members plus the nested group's service principal, over several pages of 2.
    assert_eq!(moto.trusted_subs("payments-deployer"), [SP1, SP2, SP4]);
    assert_eq!(moto.trusted_subs("reporting-reader"), [SP3]);
    let stats = graph.stats();
    assert!(
        stats["requests"]["transitiveMembers"].as_u64().unwrap() >= 3,
        "paged: {stats}"
    );

    // A service principal removed in Entra loses the role; one added gains it.
    graph.remove_member(PAYMENTS, SP2);
    graph.add_member(CI_RUNNERS, SP3); // nested: reaches payments-deployer transitively
    let p = plan(&moto, &ws, &env, 2);
    let (revoke, grant) = (&p["changes"][0], &p["changes"][2]);
    assert_eq!(p["changes"][1]["action"], "revoke-sessions");
    assert_eq!(revoke["action"], "revoke-trust");
    assert_eq!(revoke["membersRemoved"], json!([SP2]));
    assert_eq!(grant["action"], "update-trust-policy");
    assert_eq!(grant["membersAdded"], json!([SP3]));
    apply(Via::moto(&moto).env(&env), &ws, &[]);
    assert_eq!(moto.trusted_subs("payments-deployer"), [SP1, SP3, SP4]);
    assert!(plan(&moto, &ws, &env, 0)["changes"]
        .as_array()
        .unwrap()
        .is_empty());
}

#[test]
fn display_name_errors_block_only_their_mapping() {
    let moto = Moto::start();
    moto.create_functions(&["payments-api"]);
    let ws = Workspace::new();
    ws.write("trustsync.yaml", "audit: {path: audit.jsonl}\n");
    ws.edit_tenant(|t| {
        t["groups"].as_array_mut().unwrap().push(json!({"id": "a1b2c3d4-0001-4000-8000-0000000000ff", "displayName": "sg-aws-payments-deployers", "members": []}));
    });
    let text = ws.read("policies/reporting.yaml").replace(
        "group: {id: a1b2c3d4-0001-4000-8000-000000000002}",
        "group: {displayName: sg-nobody-has-this-name}",
    );
    ws.write("policies/reporting.yaml", &text);
    let graph = GraphServer::start(&ws.path().join("examples/tenant.json"), 999);
    let p = plan(&moto, &ws, &graph.env(CLIENT_SECRET), 1);
    let problems: Vec<String> = p["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            format!(
                "{}: {}",
                x["mapping"].as_str().unwrap(),
                x["message"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(
        problems.iter().any(|m| m.contains("payments-deployers")
            && m.contains("2 groups are named \"sg-aws-payments-deployers\"")),
        "{problems:#?}"
    );
    assert!(
        problems.iter().any(|m| m.contains("reporting-readers")
            && m.contains("no group matches displayName=\"sg-nobody-has-this-name\"")),
        "{problems:#?}"
    );
    // The other mappings are still planned.
    let resources: Vec<&str> = p["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["resource"].as_str().unwrap())
        .collect();
    assert!(
        resources
            .iter()
            .any(|r| r.ends_with("role/trustsync/payments-runtime")),
        "{resources:?}"
    );
    assert!(
        !resources
            .iter()
            .any(|r| r.ends_with("payments-deployer") || r.ends_with("reporting-reader")),
        "{resources:?}"
    );
}

#[test]
fn throttling_with_retry_after_is_survived() {
    let (moto, graph, ws) = setup("");
    graph.faults(json!({"throttle": 3, "retryAfter": 0.3}));
    let started = std::time::Instant::now();
    apply(Via::moto(&moto).env(&graph.env(CLIENT_SECRET)), &ws, &[]);
    // The three throttled requests came back inside one batch; they are sent again
    // together once their Retry-After has passed.
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(300),
        "Retry-After must be honoured"
    );
    assert_eq!(moto.trusted_subs("payments-deployer"), [SP1, SP2, SP4]);
}

#[test]
fn a_5xx_mid_pagination_aborts_the_pass_without_changing_aws() {
    let (moto, graph, ws) = setup("directory: {graph: {maxRetrySeconds: 2}}\n");
    let env = graph.env(CLIENT_SECRET);
    apply(Via::moto(&moto).env(&env), &ws, &[]);
    let before = moto.trust_policy("payments-deployer");
    graph.remove_member(PAYMENTS, SP1);
    // Let the group lookup and the first page through, then fail every request.
    graph.faults(json!({"fail": 1000, "failAfter": 2, "failStatus": 503}));
    let out = apply_unsettled(
        Via::moto(&moto).env(&env),
        &ws,
        &[],
        1,
        Unsettled::Fails("Graph answers 503 mid-pagination: the pass changes nothing"),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("nothing was changed") && err.contains("HTTP 503"),
        "{err}"
    );
    assert_eq!(
        moto.trust_policy("payments-deployer"),
        before,
        "a partial read must not change AWS"
    );
    assert!(!ws
        .read("audit.jsonl")
        .contains(&format!("\"membersRemoved\":[\"{SP1}\"]")));
}

#[test]
fn an_emptied_group_trips_the_safety_limit() {
    let (moto, graph, ws) = setup("");
    let env = graph.env(CLIENT_SECRET);
    apply(Via::moto(&moto).env(&env), &ws, &[]);
    for m in [SP1, SP2, "c0ffee00-2222-4222-8222-000000000001", CI_RUNNERS] {
        graph.remove_member(PAYMENTS, m);
    }
    let out = apply_unsettled(
        Via::moto(&moto).env(&env),
        &ws,
        &[],
        1,
        Unsettled::Held("the emptied group's revocation waits for a release"),
    );
    assert!(
        stdout(&out).contains("would leave 0 of the 3 principals"),
        "{}",
        show(&out)
    );
    assert_eq!(moto.trusted_subs("payments-deployer"), [SP1, SP2, SP4]);
}

#[test]
fn a_wrong_secret_is_a_clear_error_and_no_secret_or_token_is_ever_printed() {
    let (moto, graph, ws) = setup("");
    let wrong = "wrong-secret-value-4711";
    let mut env = graph.env(wrong);
    env.push(("TRUSTSYNC_LOG".into(), "debug".into()));
    let out = run_env(&moto, &ws, &env, &["plan"], 1);
    let all = format!("{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
    assert!(
        all.contains("Entra authentication failed for client 3f0e8a52-7c1d-4b8e-9f6a-1c2d3e4f5a6b"),
        "{all}"
    );
    assert!(
        all.contains("invalid_client: AADSTS7000215: Invalid client secret provided"),
        "{all}"
    );
    assert!(!all.contains(wrong), "the secret leaked: {all}");

    // A successful run at debug level prints neither the secret nor the access token.
    let mut env = graph.env(CLIENT_SECRET);
    env.push(("TRUSTSYNC_LOG".into(), "debug".into()));
    let out = apply(Via::moto(&moto).env(&env), &ws, &[]);
    let all = format!(
        "{}{}{}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr),
        ws.read("audit.jsonl")
    );
    assert!(!all.contains(CLIENT_SECRET), "the secret leaked");
    assert!(
        !all.contains("eyJ0eXAiOiJKV1QiLCJsb2NhbCI6dHJ1ZX0"),
        "an access token leaked"
    );
}

#[test]
fn certificate_and_federated_credentials_get_tokens() {
    let moto = Moto::start();
    moto.create_functions(&["payments-api"]);
    let ws = Workspace::new();
    ws.write("trustsync.yaml", "audit: {path: audit.jsonl}\n");
    let public_key = std::fs::read_to_string(repo().join("tests/fixtures/public-key.pem")).unwrap();
    ws.edit_tenant(|t| {
        t["clients"].as_array_mut().unwrap().extend([
            json!({"clientId": "c3c3c3c3-0000-4000-8000-000000000001", "publicKeyPem": public_key}),
            json!({"clientId": "f3f3f3f3-0000-4000-8000-000000000001",
                   "federated": {"issuer": "https://oidc.example.test/cluster", "subject": "system:serviceaccount:trustsync:trustsync"}}),
        ]);
    });
    let graph = GraphServer::start(&ws.path().join("examples/tenant.json"), 999);
    let base = |client: &str| -> Vec<(String, String)> {
        vec![
            ("AZURE_TENANT_ID".into(), TENANT_ID.into()),
            ("AZURE_CLIENT_ID".into(), client.into()),
            ("AZURE_AUTHORITY_HOST".into(), graph.base.clone()),
            (
                "TRUSTSYNC_GRAPH_ENDPOINT".into(),
                format!("{}/v1.0", graph.base),
            ),
        ]
    };
    let mut cert = base("c3c3c3c3-0000-4000-8000-000000000001");
    cert.push((
        "AZURE_CLIENT_CERTIFICATE_PATH".into(),
        repo()
            .join("tests/fixtures/client-cert.pem")
            .display()
            .to_string(),
    ));
    run_env(&moto, &ws, &cert, &["plan", "--detailed-exitcode"], 2);

    // A Kubernetes-style projected token: unsigned here, checked for issuer and subject.
    let jwt = |sub: &str| {
        use base64::Engine;
        let enc = |v: serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let exp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 3600;
        format!(
            "{}.{}.c2ln",
            enc(json!({"alg": "RS256", "typ": "JWT"})),
            enc(
                json!({"iss": "https://oidc.example.test/cluster", "sub": sub, "aud": "api://AzureADTokenExchange", "exp": exp})
            )
        )
    };
    ws.write(
        "sa-token",
        &jwt("system:serviceaccount:trustsync:trustsync"),
    );
    let mut fed = base("f3f3f3f3-0000-4000-8000-000000000001");
    fed.push((
        "AZURE_FEDERATED_TOKEN_FILE".into(),
        ws.path().join("sa-token").display().to_string(),
    ));
    run_env(&moto, &ws, &fed, &["plan", "--detailed-exitcode"], 2);
    ws.write("sa-token", &jwt("system:serviceaccount:other:intruder"));
    let out = run_env(&moto, &ws, &fed, &["plan"], 1);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("AADSTS700213"),
        "{}",
        show(&out)
    );
}

#[test]
fn who_changed_the_group_in_entra_is_in_the_audit_record() {
    let (moto, graph, ws) = setup("");
    let env = graph.env(CLIENT_SECRET);
    apply(Via::moto(&moto).env(&env), &ws, &[]);

    // Dana takes SP2 out of the deployers group; the next apply revokes it, and says who.
    let (sp2, group) = (SP2, PAYMENTS);
    let (status, body) = http(
        "DELETE",
        &format!("{}/admin/groups/{group}/members/{sp2}", graph.base),
        Some(serde_json::json!({"initiatedBy": {"user": {
            "id": "c0ffee00-2222-4222-8222-000000000001",
            "displayName": "Dana Ops",
            "userPrincipalName": "dana@example.com"}}})),
    );
    assert_eq!(status, 204, "{body}");
    let planned = plan(&moto, &ws, &env, 2);
    let revoke = planned["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["action"] == "revoke-trust")
        .unwrap_or_else(|| panic!("{planned}"));
    assert_eq!(revoke["membership"][0]["member"], sp2, "{revoke}");
    assert_eq!(revoke["membership"][0]["by"], "dana@example.com");
    assert_eq!(revoke["membership"][0]["added"], false);
    apply(Via::moto(&moto).env(&env), &ws, &[]);
    let out = run_env(&moto, &ws, &env, &["audit", "show", "--principal", sp2], 0);
    let text = stdout(&out);
    assert!(text.contains("revoked"), "{text}");
    assert!(
        text.contains(&format!(
            "{sp2} was removed from the group by dana@example.com at"
        )),
        "{text}"
    );

    // Without AuditLog.Read.All the change still goes ahead, with a notice.
    graph.faults(serde_json::json!({"denyAuditLogs": true}));
    graph.add_member(group, SP3);
    let planned = plan(&moto, &ws, &env, 2);
    let notices: Vec<&str> = planned["notices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["kind"].as_str().unwrap())
        .collect();
    assert!(
        notices.contains(&"directory-audit-unavailable"),
        "{planned}"
    );
    apply(Via::moto(&moto).env(&env), &ws, &[]);
    assert_eq!(moto.trusted_subs("payments-deployer"), [SP1, SP3, SP4]);

    // A slow audit log holds nothing back: the lookup gives up after 3 s.
    graph.faults(serde_json::json!({"auditDelayMs": 30000}));
    graph.remove_member(group, SP3);
    let started = std::time::Instant::now();
    let planned = plan(&moto, &ws, &env, 2);
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    let notice = planned["notices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["kind"] == "directory-audit-unavailable")
        .unwrap_or_else(|| panic!("{planned}"));
    assert!(notice["message"]
        .as_str()
        .unwrap()
        .contains("did not answer within 3s"));
}

/// A one-shot plan reads the directory in JSON batches: fewer HTTP requests than reads,
/// and each read charged the resource units Microsoft publishes for it on its own.
#[test]
fn a_one_shot_plan_reads_in_batches_and_is_charged_per_read() {
    let (moto, graph, ws) = setup("");
    graph.reset_stats();
    plan(&moto, &ws, &graph.env(CLIENT_SECRET), 2);
    let stats = graph.stats();
    let count = |route: &str| stats["requests"][route].as_u64().unwrap_or(0);
    let reads = count("group")
        + count("groups")
        + count("members")
        + count("transitiveMembers")
        + count("directoryAudits");
    assert_eq!(
        stats["graphRequests"].as_u64().unwrap(),
        count("batch"),
        "every Graph request of the read was a batch: {stats}"
    );
    assert!(count("batch") < reads, "{stats}");
    assert_eq!(
        stats["resourceUnits"].as_u64().unwrap(),
        count("group")
            + count("groups")
            + 2 * count("members")
            + 4 * count("transitiveMembers")
            + count("directoryAudits"),
        "group 1, groups by name 1, members 3 and transitiveMembers 5 (each 1 less with $select), directoryAudits 1: {stats}"
    );
}

/// When the policies map most of a small tenant's groups, one delta read of every group
/// costs fewer requests than reading the mapped ones; the tenant's group count decides,
/// and the plan is the same either way.
#[test]
fn many_mapped_groups_in_a_small_tenant_are_read_through_delta() {
    let moto = Moto::start();
    moto.create_functions(&["payments-api"]);
    let ws = Workspace::new();
    ws.write("trustsync.yaml", "audit: {path: audit.jsonl}\n");
    let extra = 30;
    ws.edit_tenant(|t| {
        for i in 0..extra {
            let sp = format!("5e1f0a2b-2222-4222-8222-{i:012}");
            t["servicePrincipals"]
                .as_array_mut()
                .unwrap()
                .push(json!({"id": sp, "appId": format!("9d0e1f2a-bbbb-4bbb-8bbb-{i:012}"), "displayName": format!("w{i}")}));
            t["groups"].as_array_mut().unwrap().push(json!({
                "id": format!("a1b2c3d4-0002-4000-8000-{i:012}"),
                "displayName": format!("sg-many-{i}"),
                "members": [sp],
            }));
        }
    });
    let mut docs = String::new();
    for i in 0..extra {
        docs.push_str(&format!(
            "---\napiVersion: trustsync.dev/v1alpha1\nkind: RoleMapping\nmetadata: {{name: many-{i}}}\nspec:\n  provider: entra-prod\n  group: {{id: a1b2c3d4-0002-4000-8000-{i:012}}}\n  role: {{name: many-{i}}}\n"
        ));
    }
    ws.write("policies/many.yaml", &docs);
    let graph = GraphServer::start(&ws.path().join("examples/tenant.json"), 999);
    graph.reset_stats();
    let plan = plan(&moto, &ws, &graph.env(CLIENT_SECRET), 2);
    let stats = graph.stats();
    assert_eq!(stats["requests"]["count"], 1, "{stats}");
    assert!(stats["requests"]["delta"].as_u64().unwrap() >= 1, "{stats}");
    assert!(
        stats["requests"].get("members").is_none(),
        "no per-group read: {stats}"
    );
    let created = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["action"] == "create-role" && c["roleName"] == "many-7")
        .unwrap_or_else(|| panic!("{plan}"));
    assert_eq!(
        created["membersAdded"],
        json!(["5e1f0a2b-2222-4222-8222-000000000007"])
    );
    let payments = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["action"] == "create-role" && c["roleName"] == "payments-deployer")
        .unwrap();
    assert_eq!(
        payments["membersAdded"],
        json!([SP1, SP2, SP4]),
        "nested groups expanded from the delta read as from the batches"
    );
}

/// Through Graph: a second group taking the display name a mapping is pinned by is
/// reported with both ids, and followed by neither the trust nor the plan.
#[test]
fn a_second_group_with_the_pinned_name_is_reported_through_graph() {
    let (moto, graph, ws) = setup("");
    let env = graph.env(CLIENT_SECRET);
    apply(Via::moto(&moto).env(&env), &ws, &[]);
    drop(graph);
    // Someone makes a group of the same name, holding a stranger.
    ws.edit_tenant(|t| {
        t["groups"].as_array_mut().unwrap().push(json!({
            "id": "dddddddd-0000-4000-8000-000000000001",
            "displayName": "SG-AWS-PAYMENTS-DEPLOYERS",
            "members": [SP3],
        }));
    });
    let graph = GraphServer::start(&ws.path().join("examples/tenant.json"), 2);
    let env = graph.env(CLIENT_SECRET);
    let p = plan(&moto, &ws, &env, 0);
    let notices = p["notices"].to_string();
    assert!(
        notices.contains("group-name-taken")
            && notices.contains("dddddddd-0000-4000-8000-000000000001")
            && notices.contains(PAYMENTS),
        "{p:#}"
    );
    assert_eq!(moto.trusted_subs("payments-deployer"), [SP1, SP2, SP4]);
}

/// A service principal of an application another tenant owns is left out of the trust,
/// with a notice naming it, until the provider names that tenant; a managed identity is
/// this tenant's whatever Microsoft registers it under.
#[test]
fn a_service_principal_another_tenant_controls_is_not_trusted_unless_allowed() {
    let moto = Moto::start();
    moto.create_functions(&["payments-api"]);
    let ws = Workspace::new();
    ws.write("trustsync.yaml", "audit: {path: audit.jsonl}\n");
    let foreign = "5e1f0a2b-7777-4777-8777-000000000001";
    let identity = "5e1f0a2b-7777-4777-8777-000000000002";
    ws.edit_tenant(|t| {
        let sps = t["servicePrincipals"].as_array_mut().unwrap();
        sps.push(json!({"id": foreign, "appId": "0e0e0e0e-0000-4000-8000-000000000001",
            "displayName": "vendor-sync", "appOwnerOrganizationId": "9f9f9f9f-0000-4000-8000-000000000001"}));
        sps.push(json!({"id": identity, "appId": "0e0e0e0e-0000-4000-8000-000000000002",
            "displayName": "aks-workload", "servicePrincipalType": "ManagedIdentity",
            "appOwnerOrganizationId": "f8cdef31-a31e-4b4a-93e4-5f571e91255a"}));
        let g = t["groups"].as_array_mut().unwrap().iter_mut().find(|g| g["id"] == PAYMENTS).unwrap();
        g["members"].as_array_mut().unwrap().extend([json!(foreign), json!(identity)]);
    });
    let graph = GraphServer::start(&ws.path().join("examples/tenant.json"), 999);
    let env = graph.env(CLIENT_SECRET);
    let out = apply(Via::moto(&moto).env(&env), &ws, &[]);
    let text = show(&out);
    assert!(
        text.contains("foreign-application")
            && text.contains(foreign)
            && text.contains("9f9f9f9f-0000-4000-8000-000000000001"),
        "{text}"
    );
    let trusted = moto.trusted_subs("payments-deployer");
    assert!(!trusted.iter().any(|s| s == foreign), "{trusted:?}");
    assert!(trusted.iter().any(|s| s == identity), "{trusted:?}");

    // The provider names the vendor's tenant: trusted.
    let providers = ws.read("policies/providers.yaml");
    ws.write(
        "policies/providers.yaml",
        &format!("{providers}  allowApplicationsOwnedBy: [9f9f9f9f-0000-4000-8000-000000000001]\n"),
    );
    apply(Via::moto(&moto).env(&env), &ws, &[]);
    assert!(moto
        .trusted_subs("payments-deployer")
        .iter()
        .any(|s| s == foreign));
}
