//! Outbound identity federation (AWS → Entra), end to end through the binary against moto
//! and the local Graph server: a FunctionAccess that names the Entra application its
//! function acts as gives the execution role a statement allowing STS web identity tokens
//! for Entra's exchange only, for a bounded lifetime, and the application a federated
//! identity credential trusting that role's tokens from the account's issuer (a stand-in
//! on loopback, as moto has no outbound federation). A token signed for the role is then
//! exchanged for an Entra token, with no secret.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::entra::{exchange, GraphClient, Issuer, EXCHANGE};
use support::proxy::{Faults, Proxy};
use support::*;

const APP_ID: &str = "9e8d7c6b-0000-4000-8000-00000000a001";

fn role_policy(moto: &Moto, role: &str, name: &str) -> Option<Value> {
    let iam = moto.iam();
    let out = moto
        .block_on(
            iam.get_role_policy()
                .role_name(role)
                .policy_name(name)
                .send(),
        )
        .ok()?;
    let doc = out.policy_document();
    Some(trustsync::model::iam_policy::parse_document(doc).unwrap())
}

fn with_application(ws: &Workspace, application: &str) {
    let text = ws.read("policies/payments.yaml").replace(
        "  executionRole: {roleMapping: payments-runtime}\n",
        &format!("  executionRole: {{roleMapping: payments-runtime}}\n{application}"),
    );
    ws.write("policies/payments.yaml", &text);
}

const ACCOUNT: &str = "123456789012";
/// The application's object id in examples/tenant.json (owned by the controller).
const APP_OBJECT: &str = "0a1b2c3d-0000-4000-8000-00000000a001";
const RUNTIME: &str = "arn:aws:iam::123456789012:role/trustsync/payments-runtime";
const RUNTIME_V2: &str = "arn:aws:iam::123456789012:role/trustsync/payments-runtime-v2";

/// The application's federated credentials, as the local Graph server holds them.
fn credentials(moto: &Moto, graph: &GraphServer) -> Vec<Value> {
    moto.block_on(async {
        let c = GraphClient::new(graph).await;
        let path = format!("applications/{APP_OBJECT}/federatedIdentityCredentials");
        let (status, list) = c.call(reqwest::Method::GET, &path, None).await;
        assert_eq!(status, 200, "{list}");
        list["value"].as_array().unwrap().clone()
    })
}

fn names(creds: &[Value]) -> Vec<&str> {
    creds.iter().map(|c| c["name"].as_str().unwrap()).collect()
}

/// Exchanges a token AWS would give `role` for an Entra token of the application: the
/// status and the identity platform's first error code.
fn exchange_as(
    moto: &Moto,
    graph: &GraphServer,
    issuer: &Issuer,
    role: &str,
) -> (u16, Option<u64>) {
    let (status, answer) =
        moto.block_on(exchange(graph, APP_ID, &issuer.token(role, EXCHANGE, 300)));
    if status == 200 {
        assert!(answer["access_token"].is_string(), "{answer}");
    }
    (status, answer["error_codes"][0].as_u64())
}

fn plan_with(
    moto: &Moto,
    ws: &Workspace,
    env: &[(String, String)],
    extra: &[&str],
    code: i32,
) -> Value {
    let mut args = vec!["plan", "--output", "json", "--detailed-exitcode"];
    args.extend(extra);
    let out = run_env(moto, ws, env, &args, code);
    serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("{e}: {}", show(&out)))
}

/// What an outbound test runs against: moto with the `payments-api` function, a
/// workspace, a stand-in account issuer, and the local Graph server on the workspace's
/// tenant file (after `tenant` edits it).
struct World {
    moto: Moto,
    ws: Workspace,
    issuer: Issuer,
    graph: GraphServer,
    /// The environment that reaches the Graph server as the controller.
    env: Vec<(String, String)>,
}

impl World {
    /// Starts it all; `config` is the controller config, with `{issuer}` standing for the
    /// stand-in issuer's URL.
    fn start(tenant: impl FnOnce(&mut Value), config: &str) -> World {
        let moto = Moto::start();
        moto.create_functions(&["payments-api"]);
        let ws = Workspace::new();
        ws.edit_tenant(tenant);
        let issuer = Issuer::start();
        let graph = GraphServer::start(&ws.path().join("examples/tenant.json"), 999);
        let env = graph.env(CLIENT_SECRET);
        ws.write("trustsync.yaml", &config.replace("{issuer}", &issuer.url));
        World {
            moto,
            ws,
            issuer,
            graph,
            env,
        }
    }
}

#[test]
fn a_function_gets_entra_tokens_for_its_application_with_no_secret() {
    // Memberships and applications from the local Graph server; the account's issuer is
    // the stand-in (moto has no outbound federation): the documented test override.
    let World {
        moto,
        ws,
        issuer,
        graph,
        env,
    } = World::start(
        |_| {},
        "audit:\n  path: audit.jsonl\noutboundFederation:\n  issuerUrls:\n    \"123456789012\": {issuer}\n",
    );
    let v2 = "---\napiVersion: trustsync.dev/v1alpha1\nkind: RoleMapping\nmetadata:\n  name: payments-runtime-v2\nspec:\n  trustedServices: [lambda.amazonaws.com]\n  role:\n    name: payments-runtime-v2\n";
    ws.write(
        "policies/payments.yaml",
        &format!("{}{v2}", ws.read("policies/payments.yaml")),
    );
    apply(Via::moto(&moto).env(&env), &ws, &[]);
    let seeded = credentials(&moto, &graph);
    assert_eq!(names(&seeded), ["github-deploy"]);

    // The function acts as the application: the role's token policy in AWS and the
    // credential in Entra, planned, applied and audited together.
    with_application(
        &ws,
        &format!("  entraApplication: {{appId: {APP_ID}, maxTokenSeconds: 600}}\n"),
    );
    run_env(&moto, &ws, &env, &["validate"], 0);
    let plan = plan_with(&moto, &ws, &env, &[], 2);
    assert_eq!(
        actions(&plan),
        ["put-inline-policy", "create-federated-credential"],
        "{plan:#}"
    );
    apply(Via::moto(&moto).env(&env), &ws, &[]);
    let doc = role_policy(&moto, "payments-runtime", "trustsync-outbound-federation")
        .expect("the statement is on the execution role");
    let st = &doc["Statement"][0];
    assert_eq!(st["Action"], "sts:GetWebIdentityToken");
    assert_eq!(
        st["Condition"]["ForAllValues:StringEquals"]["sts:IdentityTokenAudience"],
        EXCHANGE
    );
    assert_eq!(
        st["Condition"]["NumericLessThanEquals"]["sts:DurationSeconds"],
        "600"
    );
    assert_eq!(
        st["Condition"]["Null"]["sts:IdentityTokenAudience"],
        "false"
    );
    let creds = credentials(&moto, &graph);
    let mine: Vec<&Value> = creds
        .iter()
        .filter(|c| c["name"] != "github-deploy")
        .collect();
    assert_eq!(mine.len(), 1, "{creds:#?}");
    assert!(
        mine[0]["name"].as_str().unwrap().starts_with("trustsync-"),
        "{creds:#?}"
    );
    assert!(mine[0]["name"]
        .as_str()
        .unwrap()
        .ends_with(&format!("{ACCOUNT}-payments-api")));
    assert_eq!(mine[0]["issuer"], issuer.url.as_str());
    assert_eq!(mine[0]["subject"], RUNTIME);
    assert_eq!(mine[0]["audiences"], serde_json::json!([EXCHANGE]));
    // The foreign credential is as it was.
    assert!(creds.contains(&seeded[0]), "{creds:#?}");

    // The role's AWS-signed token is exchanged for an Entra token: no secret anywhere.
    assert_eq!(exchange_as(&moto, &graph, &issuer, RUNTIME), (200, None));
    // Another role's token is refused (no credential names it).
    assert_eq!(
        exchange_as(&moto, &graph, &issuer, RUNTIME_V2),
        (401, Some(700213))
    );
    // Nothing left to do; access shows the direction and that the role allows it.
    plan_with(&moto, &ws, &env, &[], 0);
    let out = run_env(&moto, &ws, &env, &["access", "--output", "json"], 0);
    let access: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(access["outbound"][0]["application"], APP_ID, "{access:#}");
    assert_eq!(access["outbound"][0]["roleAllows"], true, "{access:#}");
    assert_eq!(access["outbound"][0]["entraTrusts"], true, "{access:#}");
    assert_eq!(
        access["outbound"][0]["credential"], mine[0]["name"],
        "{access:#}"
    );

    // Edited by hand in Entra: the next pass puts it back.
    moto.block_on(async {
        let c = GraphClient::new(&graph).await;
        let path = format!(
            "applications/{APP_OBJECT}/federatedIdentityCredentials/{}",
            mine[0]["id"].as_str().unwrap()
        );
        let body = serde_json::json!({"subject": "arn:aws:iam::123456789012:role/intruder"});
        assert_eq!(
            c.call(reqwest::Method::PATCH, &path, Some(body)).await.0,
            204
        );
    });
    let out = run_env(&moto, &ws, &env, &["access"], 0);
    assert!(
        stdout(&out).contains("Entra: no credential trusts it"),
        "{}",
        show(&out)
    );
    let plan = plan_with(&moto, &ws, &env, &[], 2);
    assert_eq!(actions(&plan), ["update-federated-credential"], "{plan:#}");
    apply(Via::moto(&moto).env(&env), &ws, &[]);
    assert_eq!(exchange_as(&moto, &graph, &issuer, RUNTIME), (200, None));

    // The function moves to another execution role: the credential moves with it, in
    // place and without prune, so the old role loses the application in the same write.
    ws.write(
        "policies/payments.yaml",
        &ws.read("policies/payments.yaml").replace(
            "executionRole: {roleMapping: payments-runtime}",
            "executionRole: {roleMapping: payments-runtime-v2}",
        ),
    );
    let plan = plan_with(&moto, &ws, &env, &[], 2);
    assert!(
        actions(&plan).contains(&"update-federated-credential".to_string()),
        "{plan:#}"
    );
    apply(Via::moto(&moto).env(&env), &ws, &[]);
    let creds = credentials(&moto, &graph);
    assert_eq!(creds.len(), 2, "{creds:#?}");
    let moved = creds.iter().find(|c| c["subject"] == RUNTIME_V2);
    assert_eq!(
        moved.map(|c| &c["name"]),
        Some(&mine[0]["name"]),
        "{creds:#?}"
    );
    assert_eq!(exchange_as(&moto, &graph, &issuer, RUNTIME_V2), (200, None));
    assert_eq!(
        exchange_as(&moto, &graph, &issuer, RUNTIME),
        (401, Some(700213))
    );

    // The application leaves the policy: without prune the credential is an orphan,
    // reported; with prune it goes, and the exchange fails.
    let text = ws.read("policies/payments.yaml");
    let text: Vec<&str> = text
        .lines()
        .filter(|l| !l.contains("entraApplication"))
        .collect();
    ws.write("policies/payments.yaml", &format!("{}\n", text.join("\n")));
    let plan = plan_with(&moto, &ws, &env, &[], 2);
    assert_eq!(actions(&plan), ["delete-inline-policy"], "{plan:#}");
    let orphans: Vec<&Value> = plan["notices"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["kind"] == "orphan")
        .collect();
    assert_eq!(orphans.len(), 1, "{plan:#}");
    assert!(
        orphans[0]["resource"].as_str().unwrap().contains(APP_ID),
        "{plan:#}"
    );
    apply(Via::moto(&moto).env(&env), &ws, &["--prune", "true"]);
    assert_eq!(
        credentials(&moto, &graph),
        seeded,
        "only the foreign credential is left"
    );
    assert_eq!(
        exchange_as(&moto, &graph, &issuer, RUNTIME_V2),
        (401, Some(700211))
    );
    assert!(role_policy(
        &moto,
        "payments-runtime-v2",
        "trustsync-outbound-federation"
    )
    .is_none());

    // The audit log has every Entra write, with its intent and outcome.
    let audit = ws.read("audit.jsonl");
    for action in [
        "create-federated-credential",
        "update-federated-credential",
        "delete-federated-credential",
    ] {
        assert!(
            audit.contains(&format!("\"{action}\"")),
            "{action} not audited"
        );
        // The outcome carries Graph's request-id, to find the write in Entra's logs.
        assert!(
            audit
                .lines()
                .any(|l| l.contains(&format!("\"{action}\"")) && l.contains("\"requestId\"")),
            "{action}: no request id in {audit}"
        );
    }
    run_env(&moto, &ws, &env, &["audit", "verify", "audit.jsonl"], 0);
}

#[test]
fn an_unowned_application_or_a_disabled_account_is_a_problem_and_changes_nothing_in_entra() {
    // moto cannot say what the account's issuer is (it answers 500, retried as AWS's
    // would be, here for a second only): that account's credentials are a problem, the
    // rest of the pass (the role's token policy) goes on.
    let World {
        moto,
        ws,
        graph,
        env,
        issuer,
    } = World::start(
        |_| {},
        "audit:\n  path: audit.jsonl\naws:\n  maxRetrySeconds: 1\n",
    );
    with_application(&ws, &format!("  entraApplication: {{appId: {APP_ID}}}\n"));
    let plan = plan_with(&moto, &ws, &env, &[], 1);
    let kinds: Vec<&str> = plan["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["outbound-federation-off"], "{plan:#}");
    assert!(
        actions(&plan).contains(&"put-inline-policy".to_string()),
        "{plan:#}"
    );
    assert!(
        !actions(&plan).iter().any(|a| a.contains("federated")),
        "{plan:#}"
    );

    // An application the controller does not own: named as such, nothing written.
    let stranger = "11111111-2222-4333-8444-555555555555";
    ws.write(
        "trustsync.yaml",
        &format!("audit:\n  path: audit.jsonl\noutboundFederation:\n  issuerUrls:\n    \"123456789012\": {}\n", issuer.url),
    );
    ws.write(
        "policies/payments.yaml",
        &ws.read("policies/payments.yaml").replace(APP_ID, stranger),
    );
    let plan = plan_with(&moto, &ws, &env, &[], 1);
    assert_eq!(
        plan["problems"][0]["kind"], "application-not-owned",
        "{plan:#}"
    );
    assert!(plan["problems"][0]["message"]
        .as_str()
        .unwrap()
        .contains(stranger));
    let out = apply_unsettled(
        Via::moto(&moto).env(&env),
        &ws,
        &[],
        1,
        Unsettled::Refused("an application trustsync's principal does not own is a problem"),
    );
    assert_eq!(credentials(&moto, &graph).len(), 1, "{}", show(&out));
}

#[test]
fn bad_application_settings_are_refused_with_file_line_and_field() {
    let moto = Moto::start();
    let ws = Workspace::new();
    let text = ws.read("policies/payments.yaml").replace(
        "  executionRole: {roleMapping: payments-runtime}\n",
        "  executionRole: {arn: arn:aws:iam::123456789012:role/elsewhere}\n  entraApplication: {appId: not-a-guid, maxTokenSeconds: 30}\n",
    );
    ws.write("policies/payments.yaml", &text);
    let out = run_ok(&moto, &ws, &["validate"], 1);
    let all = format!("{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
    for field in [
        "spec.entraApplication.appId",
        "spec.entraApplication.maxTokenSeconds",
        "spec.executionRole",
    ] {
        assert!(all.contains(field), "{field}: {all}");
    }
    assert!(all.contains("payments.yaml:"), "{all}");
    // Nothing was read from or changed in AWS.
    let plan = run_ok(&moto, &ws, &["plan"], 1);
    assert!(!moto.role_exists("payments-runtime"), "{}", show(&plan));
}

#[test]
fn an_endpoint_without_owned_objects_is_read_through_the_application_list() {
    // Another application in the tenant, not the controller's: listed, never touched.
    let World {
        moto, ws, graph, env, ..
    } = World::start(
        |t| {
            t["applications"]
                .as_array_mut()
                .unwrap()
                .push(serde_json::json!({
                    "id": "0a1b2c3d-0000-4000-8000-00000000a002",
                    "appId": "9e8d7c6b-0000-4000-8000-00000000a002",
                    "displayName": "hr", "owners": []
                }))
        },
        "audit:\n  path: audit.jsonl\noutboundFederation:\n  issuerUrls:\n    \"123456789012\": {issuer}\n",
    );
    graph.faults(serde_json::json!({"noOwnedObjects": true}));
    with_application(&ws, &format!("  entraApplication: {{appId: {APP_ID}}}\n"));
    apply(Via::moto(&moto).env(&env), &ws, &[]);
    let creds = credentials(&moto, &graph);
    assert!(creds.iter().any(|c| c["subject"] == RUNTIME), "{creds:#?}");
    plan_with(&moto, &ws, &env, &[], 0);
}

#[test]
fn the_controller_grants_and_revokes_the_application_as_the_policy_changes() {
    let World {
        moto,
        ws,
        issuer,
        graph,
        ..
    } = World::start(
        |_| {},
        "audit:\n  path: audit.jsonl\nprune: true\nrun: {intervalSeconds: 60, directoryPollSeconds: 1, policyPollSeconds: 1}\noutboundFederation:\n  issuerUrls:\n    \"123456789012\": {issuer}\n",
    );
    with_application(&ws, &format!("  entraApplication: {{appId: {APP_ID}}}\n"));
    let daemon = support::daemon::Daemon::start(&moto, &graph, &ws);
    daemon.wait_ready();
    wait_for(Duration::from_secs(30), "the credential", || {
        credentials(&moto, &graph)
            .iter()
            .any(|c| c["subject"] == RUNTIME)
    });
    assert_eq!(exchange_as(&moto, &graph, &issuer, RUNTIME), (200, None));

    // The policy drops the application: the next pass (a policy change triggers one)
    // takes the role's token permission and the credential away.
    let text = ws.read("policies/payments.yaml");
    let text: Vec<&str> = text
        .lines()
        .filter(|l| !l.contains("entraApplication"))
        .collect();
    ws.write("policies/payments.yaml", &format!("{}\n", text.join("\n")));
    let took = wait_for(Duration::from_secs(30), "the credential removed", || {
        credentials(&moto, &graph).len() == 1
    });
    eprintln!(
        "credential removed {} ms after the policy change",
        took.as_millis()
    );
    assert_eq!(
        exchange_as(&moto, &graph, &issuer, RUNTIME),
        (401, Some(700211))
    );
    assert!(role_policy(&moto, "payments-runtime", "trustsync-outbound-federation").is_none());
    assert!(daemon.terminate().success());
}

#[test]
fn the_issuer_comes_from_aws_and_the_feature_is_turned_on_only_when_the_config_allows() {
    // No issuerUrls: the account's issuer is asked of AWS. moto lacks the feature, so the
    // proxy in front of it answers those two IAM calls as IAM documents them.
    let World {
        moto,
        ws,
        issuer,
        graph,
        env,
    } = World::start(|_| {}, "audit:\n  path: audit.jsonl\n");
    let proxy = Proxy::start(&moto.endpoint, Faults::default(), 1);
    proxy.serve_outbound_federation(&issuer.url, false);
    with_application(&ws, &format!("  entraApplication: {{appId: {APP_ID}}}\n"));
    let plan_at = |code: i32| -> Value {
        let args = ["plan", "--output", "json", "--detailed-exitcode"];
        let out = run_env_at(&proxy.endpoint, &ws, &env, &args, code);
        serde_json::from_str(&stdout(&out)).unwrap()
    };

    // Off, and the config does not let trustsync turn it on: a problem that says how.
    let plan = plan_at(1);
    assert_eq!(
        plan["problems"][0]["kind"], "outbound-federation-off",
        "{plan:#}"
    );
    let message = plan["problems"][0]["message"].as_str().unwrap();
    assert!(message.contains("outboundFederation.enable"), "{message}");
    assert!(
        !actions(&plan).iter().any(|a| a.contains("outbound")),
        "{plan:#}"
    );

    // Allowed: the pass turns it on (planned, applied, audited), the next one reads the
    // issuer from AWS and writes the credential.
    ws.write(
        "trustsync.yaml",
        "audit:\n  path: audit.jsonl\noutboundFederation: {enable: true}\n",
    );
    let plan = plan_at(2);
    assert!(
        actions(&plan).contains(&"enable-outbound-federation".to_string()),
        "{plan:#}"
    );
    assert!(
        !actions(&plan).iter().any(|a| a.contains("federated")),
        "{plan:#}"
    );
    apply_unsettled(
        Via::at(&proxy.endpoint).env(&env),
        &ws,
        &[],
        0,
        Unsettled::Staged(
            "AWS names the issuer only once the feature is on: the credential is the next pass's",
        ),
    );
    assert!(proxy.outbound_federation_enabled());
    let plan = plan_at(2);
    assert_eq!(actions(&plan), ["create-federated-credential"], "{plan:#}");
    assert_eq!(
        plan["changes"][0]["issuer"],
        issuer.url.as_str(),
        "{plan:#}"
    );
    apply(Via::at(&proxy.endpoint).env(&env), &ws, &[]);
    assert_eq!(exchange_as(&moto, &graph, &issuer, RUNTIME), (200, None));
    plan_at(0);
    let audit = ws.read("audit.jsonl");
    assert!(audit.contains("\"enable-outbound-federation\""));
    // The controller's own policy may turn it on only because the config says so.
    let out = run_env_at(&proxy.endpoint, &ws, &env, &["iam-policy"], 0);
    assert!(stdout(&out).contains("iam:EnableOutboundWebIdentityFederation"));

    // A config edit that names another issuer for the account (issue 35): AWS reports a
    // different one, so it is refused and nothing that trusts it is written.
    ws.write(
        "trustsync.yaml",
        "audit:\n  path: audit.jsonl\noutboundFederation:\n  enable: true\n  issuerUrls: {\"123456789012\": \"https://issuer.attacker.example\"}\n",
    );
    let plan = plan_at(1);
    let text = plan["problems"].to_string();
    assert!(
        text.contains("https://issuer.attacker.example") && text.contains("AWS reports"),
        "{plan:#}"
    );
    assert!(
        !plan
            .to_string()
            .contains("\"issuer\":\"https://issuer.attacker.example"),
        "no credential trusts it: {plan:#}"
    );
    // Pinned to what AWS reports: as before, nothing to do.
    ws.write(
        "trustsync.yaml",
        &format!(
            "audit:\n  path: audit.jsonl\noutboundFederation:\n  enable: true\n  issuerUrls: {{\"123456789012\": \"{}\"}}\n",
            issuer.url
        ),
    );
    plan_at(0);
}
