//! Outbound identity federation, the AWS side (issue 15, items 1 and 2): a FunctionAccess
//! that names the Entra application its function acts as gives the execution role a
//! statement allowing STS web identity tokens for Entra's exchange only, for a bounded
//! lifetime; through the binary, against moto.

mod support;

use serde_json::Value;
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

#[test]
fn the_execution_role_may_ask_for_entra_exchange_tokens_only() {
    let moto = Moto::start();
    moto.create_functions(&["payments-api"]);
    let ws = Workspace::new();
    run_ok(&moto, &ws, &["apply", "--auto-approve"], 0);
    assert!(role_policy(&moto, "payments-runtime", "trustsync-outbound-federation").is_none());

    with_application(
        &ws,
        &format!("  entraApplication: {{appId: {APP_ID}, maxTokenSeconds: 600}}\n"),
    );
    run_ok(&moto, &ws, &["validate"], 0);
    let outbound = |ws: &Workspace| -> Value {
        let out = run_ok(&moto, ws, &["access", "--output", "json"], 0);
        serde_json::from_str::<Value>(&stdout(&out)).unwrap()["outbound"].clone()
    };
    // access shows the direction before the role allows it, and after.
    let before = outbound(&ws);
    assert_eq!(before[0]["application"], APP_ID, "{before:#}");
    assert_eq!(before[0]["roleAllows"], false, "{before:#}");
    let plan = plan_json(&moto, &ws, 2);
    assert_eq!(actions(&plan), ["put-inline-policy"], "{plan:#}");
    run_ok(&moto, &ws, &["apply", "--auto-approve"], 0);
    let doc = role_policy(&moto, "payments-runtime", "trustsync-outbound-federation")
        .expect("the statement is on the execution role");
    let st = &doc["Statement"][0];
    assert_eq!(st["Action"], "sts:GetWebIdentityToken");
    assert_eq!(
        st["Condition"]["ForAllValues:StringEquals"]["sts:IdentityTokenAudience"],
        "api://AzureADTokenExchange"
    );
    assert_eq!(
        st["Condition"]["NumericLessThanEquals"]["sts:DurationSeconds"],
        "600"
    );
    assert_eq!(
        st["Condition"]["Null"]["sts:IdentityTokenAudience"],
        "false"
    );
    // The mapping's own inline policy is untouched; a second plan is clean.
    plan_json(&moto, &ws, 0);
    let after = outbound(&ws);
    assert_eq!(after[0]["roleAllows"], true, "{after:#}");
    assert!(after[0]["function"]
        .as_str()
        .unwrap()
        .ends_with(":function:payments-api"));
    assert!(after[0]["role"]
        .as_str()
        .unwrap()
        .ends_with("role/trustsync/payments-runtime"));

    // Dropping the application takes the statement away.
    with_application(&ws, "");
    let text = ws.read("policies/payments.yaml");
    let text = text
        .lines()
        .filter(|l| !l.contains("entraApplication"))
        .collect::<Vec<_>>()
        .join("\n");
    ws.write("policies/payments.yaml", &format!("{text}\n"));
    run_ok(&moto, &ws, &["apply", "--auto-approve"], 0);
    assert!(role_policy(&moto, "payments-runtime", "trustsync-outbound-federation").is_none());
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
