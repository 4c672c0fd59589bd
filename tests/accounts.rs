//! Many accounts from one controller, end to end through the binary: moto keeps state per
//! account, and requests signed with credentials from AssumeRole into an account's role act
//! in that account. A proxy in front of moto counts requests and refuses AssumeRole into
//! one account's spoke role, as STS does when that role is missing.

mod support;

use support::proxy::{Faults, Proxy};
use support::*;

const PROD: &str = "111111111111";
const DEV: &str = "222222222222";
const BROKEN: &str = "333333333333";

fn config(extra: &str) -> String {
    format!(
        "audit:\n  path: audit.jsonl\ndirectory:\n  tenantFile: examples/tenant.json\naccounts:\n  targets:\n    - {{id: \"{PROD}\", labels: {{env: prod}}}}\n    - {{id: \"{DEV}\", labels: {{env: dev}}}}\n{extra}"
    )
}

/// Payments lives in prod only; reporting and the provider in every account.
fn scope_payments(ws: &Workspace) {
    // Its documents in the prod accounts, the EventBridge rule that invokes the function
    // too (a source in another account is refused: guardrails.invokerAccounts).
    let text = ws
        .read("policies/payments.yaml")
        .replace("spec:\n", "spec:\n  accounts: {labels: {env: prod}}\n")
        .replace(
            "arn:aws:events:us-east-1:123456789012:",
            &format!("arn:aws:events:us-east-1:{PROD}:"),
        );
    ws.write("policies/payments.yaml", &text);
}

#[test]
fn one_controller_reconciles_each_account_and_reports_the_one_it_cannot_reach() {
    let moto = Moto::start();
    moto.create_functions_in(Some(PROD), &["payments-api"]);
    moto.create_functions_in(Some(DEV), &["payments-api"]);
    let proxy = Proxy::start(&moto.endpoint, Faults::default(), 1);
    proxy.deny_assume_role(&format!("arn:aws:iam::{BROKEN}:role/trustsync-spoke"));
    let ws = Workspace::new();
    scope_payments(&ws);
    ws.write(
        "trustsync.yaml",
        &config(&format!(
            "    - {{id: \"{BROKEN}\", labels: {{env: dev}}}}\n"
        )),
    );
    run_at(&proxy.endpoint, &ws, &["validate"], 0);

    // The plan, grouped by account; the unreachable account is a problem, not "empty".
    let out = run_at(&proxy.endpoint, &ws, &["plan", "--output", "json"], 1);
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let accounts: Vec<(&str, bool)> = plan["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["id"].as_str().unwrap(), a.get("unreachable").is_some()))
        .collect();
    assert_eq!(accounts, [(PROD, false), (DEV, false), (BROKEN, true)]);
    let problems = plan["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0]["kind"], "account-unreachable");
    assert_eq!(problems[0]["account"], BROKEN);
    assert!(
        problems[0]["message"]
            .as_str()
            .unwrap()
            .contains("AccessDenied"),
        "{problems:?}"
    );
    let changes = plan["changes"].as_array().unwrap();
    let in_account = |id: &str| -> Vec<String> {
        changes
            .iter()
            .filter(|c| c["account"] == id)
            .map(|c| {
                format!(
                    "{} {}",
                    c["action"].as_str().unwrap(),
                    c["resource"].as_str().unwrap()
                )
            })
            .collect()
    };
    let prod = in_account(PROD);
    let dev = in_account(DEV);
    assert_eq!(
        prod.len() + dev.len(),
        changes.len(),
        "every change names its account"
    );
    assert!(
        prod.iter()
            .any(|c| c
                == &format!("create-role arn:aws:iam::{PROD}:role/trustsync/payments-deployer")),
        "{prod:?}"
    );
    assert!(
        prod.iter().any(|c| c.starts_with(
            "add-lambda-permission arn:aws:lambda:us-east-1:111111111111:function:payments-api"
        )),
        "{prod:?}"
    );
    assert!(
        dev.iter().any(
            |c| c == &format!("create-role arn:aws:iam::{DEV}:role/trustsync/reporting-reader")
        ),
        "{dev:?}"
    );
    assert!(
        !dev.iter().any(|c| c.contains("payments")),
        "payments is prod only: {dev:?}"
    );
    for c in changes {
        let lambda = c["resource"].as_str().unwrap().contains(":lambda:");
        assert_eq!(
            c["region"].is_string(),
            lambda,
            "a region for Lambda only: {c}"
        );
    }
    // Grouped in text and Markdown too.
    let text = stdout(&run_at(&proxy.endpoint, &ws, &["plan"], 1));
    let at = |s: &str| {
        text.find(s)
            .unwrap_or_else(|| panic!("no `{s}` in\n{text}"))
    };
    assert!(
        at(&format!(
            "Account {PROD} (us-east-1): {} change(s)",
            prod.len()
        )) < at(&format!("Account {DEV}"))
    );
    assert!(
        text.contains(&format!("Account {BROKEN} (us-east-1): UNREACHABLE")),
        "{text}"
    );
    let md = stdout(&run_at(
        &proxy.endpoint,
        &ws,
        &["plan", "--output", "markdown"],
        1,
    ));
    assert!(
        md.contains(&format!(
            "| `{DEV}` | us-east-1 | {} | 0 | 0 | ok |",
            dev.len()
        )),
        "{md}"
    );
    assert!(md.contains(&format!("### Account `{PROD}`")), "{md}");

    // --account plans a subset, and names what is in scope when it is not.
    let out = run_at(
        &proxy.endpoint,
        &ws,
        &[
            "plan",
            "--output",
            "json",
            "--account",
            DEV,
            "--detailed-exitcode",
        ],
        2,
    );
    let only: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(only["changes"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["account"] == DEV));
    assert_eq!(only["changes"].as_array().unwrap().len(), dev.len());
    let out = run_at(
        &proxy.endpoint,
        &ws,
        &["plan", "--account", "444444444444"],
        1,
    );
    assert!(
        show(&out).contains("not an account in scope"),
        "{}",
        show(&out)
    );

    // Apply reconciles both reachable accounts, reports the third, and exits 1 for it.
    proxy.reset();
    let out = apply_unsettled(
        Via::at(&proxy.endpoint),
        &ws,
        &[],
        1,
        Unsettled::Fails("an account in scope cannot be reached: its changes wait"),
    );
    assert!(
        stdout(&out).contains(&format!("Apply: {} applied, 0 failed", changes.len())),
        "{}",
        show(&out)
    );
    let counts = proxy.counts();
    assert_eq!(
        counts.requests.get("AssumeRole"),
        Some(&3),
        "one AssumeRole per account: {:?}",
        counts.requests
    );
    assert_eq!(
        moto.roles_in(PROD).keys().collect::<Vec<_>>(),
        ["payments-deployer", "payments-runtime", "reporting-reader"]
    );
    assert_eq!(
        moto.roles_in(DEV).keys().collect::<Vec<_>>(),
        ["reporting-reader"]
    );
    assert!(moto.roles_in(BROKEN).is_empty());
    assert!(
        !moto.role_exists("reporting-reader"),
        "nothing in the hub's own account"
    );
    let prod_lambda = aws_sdk_lambda::Client::new(&moto.in_account(PROD));
    let policy = moto
        .block_on(
            prod_lambda
                .get_policy()
                .function_name("payments-api")
                .send(),
        )
        .unwrap();
    assert!(policy
        .policy()
        .unwrap()
        .contains("arn:aws:iam::111111111111:role/trustsync/payments-deployer"));
    // The audit log says where each change was made.
    let audit = ws.read("audit.jsonl");
    let records: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|r: &serde_json::Value| r["type"] == "change")
        .collect();
    assert_eq!(records.len(), changes.len());
    assert!(
        records
            .iter()
            .all(|r| r["account"] == PROD || r["account"] == DEV),
        "{records:?}"
    );

    // Converged where it could be; the unreachable account is still reported.
    let again: serde_json::Value = serde_json::from_slice(
        &run_at(&proxy.endpoint, &ws, &["plan", "--output", "json"], 1).stdout,
    )
    .unwrap();
    assert!(again["changes"].as_array().unwrap().is_empty(), "{again}");
    assert_eq!(again["problems"][0]["kind"], "account-unreachable");
}

#[test]
fn selectors_and_function_arns_are_checked_against_the_accounts_in_scope() {
    let moto = Moto::start();
    let ws = Workspace::new();
    ws.write("trustsync.yaml", &config(""));
    ws.write(
        "policies/scoped.yaml",
        "apiVersion: trustsync.dev/v1alpha1\nkind: RoleMapping\nmetadata: {name: staging-ci}\nspec:\n  accounts: {labels: {env: staging}}\n  trustedServices: [codebuild.amazonaws.com]\n  role: {name: staging-ci}\n---\napiVersion: trustsync.dev/v1alpha1\nkind: FunctionAccess\nmetadata: {name: elsewhere}\nspec:\n  function: arn:aws:lambda:eu-west-1:444444444444:function:api\n  invokers:\n    - {service: events.amazonaws.com}\n",
    );
    let out = run_at(&moto.endpoint, &ws, &["validate"], 1);
    let err = show(&out);
    assert!(
        err.contains("scoped.yaml:5:")
            && err.contains("spec.accounts")
            && err.contains("selects no account in scope (labels env=staging)"),
        "{err}"
    );
    assert!(
        err.contains("account 444444444444 is not in scope"),
        "{err}"
    );
    // Plan says the same (as problems), and changes nothing for them.
    let plan = plan_json_with(&moto, &ws, &[], 1);
    let scope: Vec<&str> = plan["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["kind"] == "out-of-scope")
        .map(|p| p["mapping"].as_str().unwrap())
        .collect();
    assert_eq!(scope, ["staging-ci", "elsewhere"], "{plan}");
    assert!(!plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["resource"].as_str().unwrap().contains("444444444444")
            || c["resource"].as_str().unwrap().contains("staging-ci")));
    // A document by ARN may not also select accounts.
    ws.write(
        "policies/scoped.yaml",
        "apiVersion: trustsync.dev/v1alpha1\nkind: FunctionAccess\nmetadata: {name: elsewhere}\nspec:\n  function: arn:aws:lambda:eu-west-1:111111111111:function:api\n  accounts: {ids: [\"111111111111\"]}\n  regions: [eu-west-1]\n",
    );
    let err = show(&run_at(&moto.endpoint, &ws, &["validate"], 1));
    assert!(
        err.contains("the function ARN already names its account"),
        "{err}"
    );
    assert!(
        err.contains("the function ARN already names its region"),
        "{err}"
    );
}

#[test]
fn iam_policy_prints_the_hub_policy_and_the_spoke_role() {
    let moto = Moto::start();
    let ws = Workspace::new();
    ws.write("trustsync.yaml", &config("  externalId: trustsync-prod\n"));
    let out = run_at(
        &moto.endpoint,
        &ws,
        &[
            "iam-policy",
            "--hub-role-arn",
            "arn:aws:iam::123456789012:role/platform/trustsync-hub",
        ],
        0,
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let hub = &doc["hub"]["policy"]["Statement"][0];
    assert_eq!(hub["Action"], serde_json::json!(["sts:AssumeRole"]));
    assert_eq!(
        hub["Resource"],
        serde_json::json!([
            "arn:aws:iam::111111111111:role/trustsync-spoke",
            "arn:aws:iam::222222222222:role/trustsync-spoke"
        ])
    );
    let trust = &doc["spoke"]["trustPolicy"]["Statement"][0];
    assert_eq!(
        trust["Principal"]["AWS"],
        "arn:aws:iam::123456789012:role/platform/trustsync-hub"
    );
    assert_eq!(
        trust["Condition"]["StringEquals"]["sts:ExternalId"],
        "trustsync-prod"
    );
    assert!(doc["spoke"]["policy"]
        .to_string()
        .contains("iam:CreateRole"));
    // The spoke role can be created with what was printed (moto checks the documents).
    let iam = aws_sdk_iam::Client::new(&moto.in_account(PROD));
    moto.block_on(
        iam.create_role()
            .role_name("trustsync-spoke")
            .assume_role_policy_document(doc["spoke"]["trustPolicy"].to_string())
            .send(),
    )
    .expect("create the spoke role");
    moto.block_on(
        iam.put_role_policy()
            .role_name("trustsync-spoke")
            .policy_name("trustsync")
            .policy_document(doc["spoke"]["policy"].to_string())
            .send(),
    )
    .expect("attach its policy");
}

/// AWS Organizations finds the accounts: those under the OU (and the OUs below it) that
/// carry the tag, with their tags as labels that policies select by.
#[test]
fn accounts_are_discovered_in_the_organization_by_ou_and_tag() {
    use aws_sdk_organizations::types::Tag;
    let moto = Moto::start();
    let org = aws_sdk_organizations::Client::new(moto.sdk());
    moto.block_on(
        org.create_organization()
            .feature_set(aws_sdk_organizations::types::OrganizationFeatureSet::All)
            .send(),
    )
    .unwrap();
    let root = moto.block_on(org.list_roots().send()).unwrap().roots()[0]
        .id()
        .unwrap()
        .to_string();
    let ou = |parent: &str, name: &str| {
        moto.block_on(
            org.create_organizational_unit()
                .parent_id(parent)
                .name(name)
                .send(),
        )
        .unwrap()
        .organizational_unit()
        .unwrap()
        .id()
        .unwrap()
        .to_string()
    };
    let workloads = ou(&root, "workloads");
    let nested = ou(&workloads, "payments");
    let account = |name: &str, parent: &str, tags: &[(&str, &str)]| {
        let created = moto
            .block_on(
                org.create_account()
                    .account_name(name)
                    .email(format!("{name}@example.com"))
                    .set_tags(Some(
                        tags.iter()
                            .map(|(k, v)| Tag::builder().key(*k).value(*v).build().unwrap())
                            .collect(),
                    ))
                    .send(),
            )
            .unwrap();
        let id = created
            .create_account_status()
            .unwrap()
            .account_id()
            .unwrap()
            .to_string();
        moto.block_on(
            org.move_account()
                .account_id(&id)
                .source_parent_id(&root)
                .destination_parent_id(parent)
                .send(),
        )
        .unwrap();
        id
    };
    let prod = account(
        "prod",
        &nested,
        &[("trustsync", "managed"), ("env", "prod")],
    );
    let dev = account(
        "dev",
        &workloads,
        &[("trustsync", "managed"), ("env", "dev")],
    );
    let _untagged = account("sandbox", &workloads, &[("env", "dev")]);
    let _elsewhere = account("elsewhere", &root, &[("trustsync", "managed")]);

    let ws = Workspace::new();
    scope_payments(&ws);
    ws.write(
        "trustsync.yaml",
        &format!("audit:\n  path: audit.jsonl\ndirectory:\n  tenantFile: examples/tenant.json\naccounts:\n  organization:\n    parents: [{workloads}]\n    tags: {{trustsync: managed}}\n"),
    );
    let plan = plan_json_with(&moto, &ws, &[], 1);
    let mut want = vec![prod.clone(), dev.clone()];
    want.sort();
    let found: Vec<&str> = plan["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(found, want, "{plan}");
    // Tags are labels: payments (env=prod) is planned in prod only.
    let payments_in: std::collections::BTreeSet<&str> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| {
            c["mapping"]
                .as_str()
                .is_some_and(|m| m.starts_with("payments"))
        })
        .map(|c| c["account"].as_str().unwrap())
        .collect();
    assert_eq!(payments_in, [prod.as_str()].into());
}

/// An invoker in another managed account is within the guardrails, also when `--account`
/// narrows the pass to one account; one outside every managed account is not (validate
/// knows the accounts listed in the config).
#[test]
fn invoker_accounts_are_the_managed_ones_whatever_the_pass_narrows_to() {
    let moto = Moto::start();
    moto.create_functions_in(Some(PROD), &["payments-api"]);
    moto.create_functions_in(Some(DEV), &["payments-api"]);
    let ws = Workspace::new();
    scope_payments(&ws);
    ws.write("trustsync.yaml", &config(""));
    let payments = ws.read("policies/payments.yaml").replacen(
        "    - roleMapping: payments-deployers\n",
        &format!("    - roleMapping: payments-deployers\n    - principal: \"{DEV}\"\n"),
        1,
    );
    ws.write("policies/payments.yaml", &payments);
    run_ok(&moto, &ws, &["validate"], 0);
    let out = run_ok(
        &moto,
        &ws,
        &["plan", "--output", "json", "--account", PROD],
        0,
    );
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(plan["problems"].as_array().unwrap().is_empty(), "{plan:#}");
    assert!(
        plan["changes"]
            .to_string()
            .contains(&format!("arn:aws:iam::{DEV}:root")),
        "the DEV invoker is planned in PROD: {plan:#}"
    );

    ws.write(
        "policies/payments.yaml",
        &payments.replace(
            &format!("principal: \"{DEV}\""),
            "principal: \"999999999999\"",
        ),
    );
    let out = run_ok(&moto, &ws, &["validate"], 1);
    assert!(
        show(&out).contains("guardrails.invokerAccounts"),
        "{}",
        show(&out)
    );
}
