//! End-to-end: the trustsync binary against a real moto server, with AWS state checked
//! through the AWS SDK, not through trustsync's own reader.

mod support;

use support::*;

const SP1: &str = "5e1f0a2b-1111-4111-8111-000000000001";
const SP2: &str = "5e1f0a2b-1111-4111-8111-000000000002";
const SP3: &str = "5e1f0a2b-1111-4111-8111-000000000003";
const SP4: &str = "5e1f0a2b-1111-4111-8111-000000000004";
const OWNER: (&str, &str) = ("trustsync.dev/owner", "trustsync");

fn converged() -> (Moto, Workspace) {
    let moto = Moto::start();
    moto.create_functions(&["payments-api"]);
    let ws = Workspace::new();
    apply(Via::moto(&moto), &ws, &[]);
    (moto, ws)
}

#[test]
fn validate_plan_apply_replan_through_the_binary() {
    let moto = Moto::start();
    moto.create_functions(&["payments-api"]);
    let ws = Workspace::new();

    let out = run_ok(&moto, &ws, &["validate"], 0);
    assert!(
        stdout(&out).contains("5 document(s) valid"),
        "{}",
        show(&out)
    );

    // Text, JSON and Markdown plans of the same changes.
    let text = stdout(&run_ok(&moto, &ws, &["plan"], 0));
    assert!(
        text.contains("+ create-role arn:aws:iam::123456789012:role/trustsync/payments-deployer"),
        "{text}"
    );
    assert!(
        text.contains("Plan: 10 to add, 2 to change, 0 to remove, 0 held"),
        "{text}"
    );
    assert!(
        text.contains("Dana Ops (User"),
        "user members are reported, not used: {text}"
    );

    let plan = plan_json(&moto, &ws, 2);
    assert_eq!(plan["summary"]["add"], 10);
    assert_eq!(plan["summary"]["change"], 2);
    for c in plan["changes"].as_array().unwrap() {
        for key in ["action", "resource", "reason"] {
            assert!(c[key].is_string(), "change without {key}: {c}");
        }
    }
    assert_eq!(
        actions(&plan),
        [
            "create-oidc-provider",
            "create-role",
            "create-role",
            "create-role",
            "put-inline-policy",
            "attach-managed-policy",
            "attach-managed-policy",
            "put-inline-policy",
            "tag-function",
            "add-lambda-permission",
            "add-lambda-permission",
            "set-execution-role",
        ]
    );

    // metadata.labels ride along with every change of their mapping.
    for c in plan["changes"].as_array().unwrap() {
        if c["mapping"] == "payments-deployers" {
            assert_eq!(c["labels"]["ticket"], "SEC-1042", "{c}");
        } else {
            assert!(c.get("labels").is_none(), "{c}");
        }
    }

    let md = stdout(&run_ok(&moto, &ws, &["plan", "--output", "markdown"], 0));
    assert!(md.starts_with("### trustsync plan"), "{md}");
    assert!(md.contains("| 10 | 2 | 0 | 0 | 0 | 4 | 0 |"), "{md}");
    assert!(md.contains("```diff"), "{md}");

    // Nothing was written by planning.
    assert!(!moto.role_exists("payments-deployer"));

    let out = apply(Via::moto(&moto), &ws, &[]);
    assert!(
        stdout(&out).contains("Apply: 12 applied, 0 failed, 0 skipped, 0 held"),
        "{}",
        show(&out)
    );

    // AWS state, read back through the SDK.
    assert_eq!(
        moto.trusted_subs("payments-deployer"),
        [SP1, SP2, SP4],
        "nested group expanded, user skipped"
    );
    assert_eq!(moto.trusted_subs("reporting-reader"), [SP3]);
    let trust = moto.trust_policy("payments-deployer");
    let st = &trust["Statement"][0];
    assert_eq!(
        st["Principal"]["Federated"],
        "arn:aws:iam::123456789012:oidc-provider/sts.windows.net/7f3c2a10-4b5e-4c1d-9a8e-2d6f0b1c3e45/"
    );
    assert_eq!(st["Action"], "sts:AssumeRoleWithWebIdentity");
    assert_eq!(
        st["Condition"]["StringEquals"]
            ["sts.windows.net/7f3c2a10-4b5e-4c1d-9a8e-2d6f0b1c3e45/:aud"],
        "api://aws-federation"
    );
    let iam = moto.iam();
    let role = moto
        .block_on(iam.get_role().role_name("reporting-reader").send())
        .unwrap();
    let role = role.role().unwrap();
    assert_eq!(role.path(), "/trustsync/");
    assert_eq!(role.max_session_duration(), Some(7200));
    let tags = moto
        .block_on(iam.list_role_tags().role_name("payments-deployer").send())
        .unwrap();
    let tags: Vec<(String, String)> = tags
        .tags()
        .iter()
        .map(|t| (t.key().into(), t.value().into()))
        .collect();
    assert!(tags.contains(&(OWNER.0.into(), OWNER.1.into())), "{tags:?}");
    assert!(
        tags.contains(&("team".into(), "payments".into())),
        "{tags:?}"
    );
    let attached = moto
        .block_on(
            iam.list_attached_role_policies()
                .role_name("payments-deployer")
                .send(),
        )
        .unwrap();
    assert_eq!(
        attached.attached_policies()[0].policy_arn(),
        Some("arn:aws:iam::aws:policy/AWSLambda_ReadOnlyAccess")
    );
    let inline = moto
        .block_on(
            iam.get_role_policy()
                .role_name("payments-deployer")
                .policy_name("deploy")
                .send(),
        )
        .unwrap();
    assert!(
        inline.policy_document().contains("UpdatePaymentsCode")
            || inline
                .policy_document()
                .contains("UpdatePaymentsCode".replace(' ', "%20").as_str())
    );
    let providers = moto
        .block_on(iam.list_open_id_connect_providers().send())
        .unwrap();
    assert_eq!(providers.open_id_connect_provider_list().len(), 1);
    let sids = moto.lambda_sids("payments-api");
    assert_eq!(sids.len(), 2, "{sids:?}");
    assert!(sids.iter().all(|s| s.starts_with("trustsync-")), "{sids:?}");
    let cfg = moto
        .block_on(
            moto.lambda()
                .get_function_configuration()
                .function_name("payments-api")
                .send(),
        )
        .unwrap();
    assert_eq!(
        cfg.role(),
        Some("arn:aws:iam::123456789012:role/trustsync/payments-runtime")
    );

    // A second pass right after the first plans nothing.
    let again = plan_json(&moto, &ws, 0);
    assert!(actions(&again).is_empty(), "{again}");
    let out = apply(Via::moto(&moto), &ws, &[]);
    assert!(stdout(&out).contains("No changes"), "{}", show(&out));

    // Every change is in the audit log (12 intents, 12 outcomes, the pass), whose chain
    // verifies, with its mapping's labels.
    let log = ws.read("audit.jsonl");
    let labelled = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["type"] == "change" && r["mapping"] == "payments-deployers")
        .inspect(|r| assert_eq!(r["labels"]["team"], "payments", "{r}"))
        .count();
    assert_eq!(labelled, 3, "{log}");
    let out = run_ok(&moto, &ws, &["audit", "verify", "audit.jsonl"], 0);
    assert!(
        stdout(&out).contains("25 line(s), hash chain intact"),
        "{}",
        show(&out)
    );
}

#[test]
fn drift_made_behind_its_back_is_repaired_and_foreign_statements_kept() {
    let (moto, ws) = converged();
    let iam = moto.iam();
    let lambda = moto.lambda();
    // Drift: a trust policy with one member removed, an extra inline policy, a detached
    // managed policy, a changed session duration, a removed invoke permission, a foreign tag.
    let mut trust = moto.trust_policy("payments-deployer");
    let key = "sts.windows.net/7f3c2a10-4b5e-4c1d-9a8e-2d6f0b1c3e45/:sub";
    trust["Statement"][0]["Condition"]["StringEquals"][key] =
        serde_json::json!([SP1, "ffffffff-0000-0000-0000-000000000000"]);
    moto.block_on(
        iam.update_assume_role_policy()
            .role_name("payments-deployer")
            .policy_document(trust.to_string())
            .send(),
    )
    .unwrap();
    moto.block_on(
        iam.put_role_policy()
            .role_name("payments-deployer")
            .policy_name("backdoor")
            .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#)
            .send(),
    )
    .unwrap();
    moto.block_on(
        iam.detach_role_policy()
            .role_name("payments-deployer")
            .policy_arn("arn:aws:iam::aws:policy/AWSLambda_ReadOnlyAccess")
            .send(),
    )
    .unwrap();
    moto.block_on(
        iam.update_role()
            .role_name("reporting-reader")
            .max_session_duration(43200)
            .send(),
    )
    .unwrap();
    moto.block_on(
        iam.tag_role()
            .role_name("reporting-reader")
            .tags(
                aws_sdk_iam::types::Tag::builder()
                    .key("added-by")
                    .value("hand")
                    .build()
                    .unwrap(),
            )
            .send(),
    )
    .unwrap();
    let sid = moto
        .lambda_sids("payments-api")
        .into_iter()
        .find(|s| s.contains("svc-events"))
        .unwrap();
    moto.block_on(
        lambda
            .remove_permission()
            .function_name("payments-api")
            .statement_id(&sid)
            .send(),
    )
    .unwrap();
    // A statement trustsync does not own (no prefix) must survive.
    moto.block_on(
        lambda
            .add_permission()
            .function_name("payments-api")
            .statement_id("hand-made")
            .principal("s3.amazonaws.com")
            .action("lambda:InvokeFunction")
            .send(),
    )
    .unwrap();

    let plan = plan_json(&moto, &ws, 2);
    let mut got = actions(&plan);
    got.sort();
    assert_eq!(
        got,
        [
            "add-lambda-permission",
            "attach-managed-policy",
            "delete-inline-policy",
            "revoke-sessions",
            "revoke-trust",
            "untag-role",
            "update-role",
            "update-trust-policy",
        ],
        "{plan:#}"
    );
    let change = |action: &str| {
        plan["changes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["action"] == action)
            .unwrap()
            .clone()
    };
    // The stranger leaves first, in a change of its own; the members come back after.
    assert_eq!(
        change("revoke-trust")["membersRemoved"],
        serde_json::json!(["ffffffff-0000-0000-0000-000000000000"])
    );
    assert_eq!(
        change("update-trust-policy")["membersAdded"],
        serde_json::json!([SP2, SP4])
    );
    assert_eq!(
        plan["changes"][0]["action"], "revoke-trust",
        "revocations go first"
    );

    apply(Via::moto(&moto), &ws, &[]);
    assert!(actions(&plan_json(&moto, &ws, 0)).is_empty());
    assert_eq!(moto.trusted_subs("payments-deployer"), [SP1, SP2, SP4]);
    assert!(moto
        .lambda_sids("payments-api")
        .contains(&"hand-made".to_string()));
    assert!(moto
        .block_on(
            iam.get_role_policy()
                .role_name("payments-deployer")
                .policy_name("backdoor")
                .send()
        )
        .is_err());
}

#[test]
fn membership_changes_rewrite_the_trust_policy() {
    let (moto, ws) = converged();
    // SP2 leaves the payments group; SP3 joins it.
    ws.edit_tenant(|t| {
        let members = t["groups"][0]["members"].as_array_mut().unwrap();
        members.retain(|m| m != SP2);
        members.push(SP3.into());
    });
    let plan = plan_json(&moto, &ws, 2);
    assert_eq!(
        actions(&plan),
        ["revoke-trust", "revoke-sessions", "update-trust-policy"]
    );
    let (revoke, grant) = (&plan["changes"][0], &plan["changes"][2]);
    assert_eq!(revoke["membersRemoved"], serde_json::json!([SP2]));
    assert!(revoke.get("membersAdded").is_none(), "{revoke}");
    assert_eq!(grant["membersAdded"], serde_json::json!([SP3]));
    assert!(grant.get("membersRemoved").is_none(), "{grant}");
    assert!(
        grant["reason"]
            .as_str()
            .unwrap()
            .contains("1 added, 1 removed"),
        "{grant}"
    );
    apply(Via::moto(&moto), &ws, &[]);
    assert_eq!(moto.trusted_subs("payments-deployer"), [SP1, SP3, SP4]);
    let log = ws.read("audit.jsonl");
    let last_change = log
        .lines()
        .rfind(|l| l.contains("\"action\":\"revoke-trust\""))
        .unwrap();
    assert!(
        last_change.contains(SP2) && last_change.contains("membersRemoved"),
        "{last_change}"
    );
}

#[test]
fn an_unowned_role_is_a_conflict_until_adopted() {
    let moto = Moto::start();
    moto.create_functions(&["payments-api"]);
    let ws = Workspace::new();
    let iam = moto.iam();
    let foreign = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    moto.block_on(
        iam.create_role()
            .role_name("reporting-reader")
            .path("/trustsync/")
            .assume_role_policy_document(foreign)
            .send(),
    )
    .unwrap();

    let plan = plan_json(&moto, &ws, 1);
    let problem = &plan["problems"][0];
    assert_eq!(problem["kind"], "conflict");
    assert!(
        problem["message"]
            .as_str()
            .unwrap()
            .contains("not owned by trustsync"),
        "{problem}"
    );
    assert!(!plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["resource"]
            .as_str()
            .unwrap()
            .ends_with("reporting-reader")));

    // Apply changes everything else, leaves the conflicting role alone, and exits 1.
    apply_unsettled(
        Via::moto(&moto),
        &ws,
        &[],
        1,
        Unsettled::Refused("a role trustsync does not own is a conflict until adopted"),
    );
    assert!(moto.role_exists("payments-deployer"));
    assert!(moto.trusted_subs("reporting-reader").is_empty());
    assert_eq!(
        moto.trust_policy("reporting-reader")["Statement"][0]["Principal"]["Service"],
        "ec2.amazonaws.com"
    );

    // With adopt it is taken over: tagged, and its trust replaced.
    let text = ws
        .read("policies/reporting.yaml")
        .replace("  role:\n", "  adopt: true\n  role:\n");
    ws.write("policies/reporting.yaml", &text);
    let plan = plan_json(&moto, &ws, 2);
    let reasons: Vec<&str> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["reason"].as_str().unwrap())
        .collect();
    assert!(
        reasons.contains(&"adopting the role (owner tag)"),
        "{reasons:?}"
    );
    apply(Via::moto(&moto), &ws, &[]);
    assert_eq!(moto.trusted_subs("reporting-reader"), [SP3]);
    assert!(actions(&plan_json(&moto, &ws, 0)).is_empty());
}

#[test]
fn orphans_are_reported_without_prune_and_deleted_with_it() {
    let (moto, ws) = converged();
    ws.write(
        "trustsync.yaml",
        "audit: {path: audit.jsonl}\ndirectory: {tenantFile: examples/tenant.json}\nsafety: {maxRoleDeletionShare: 0.5}\n",
    );
    ws.remove("policies/reporting.yaml");

    let plan = plan_json(&moto, &ws, 0);
    assert!(actions(&plan).is_empty(), "{plan:#}");
    let notice = &plan["notices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["kind"] == "orphan")
        .unwrap()
        .clone();
    assert!(notice["resource"]
        .as_str()
        .unwrap()
        .ends_with("role/trustsync/reporting-reader"));
    apply(Via::moto(&moto), &ws, &[]);
    assert!(
        moto.role_exists("reporting-reader"),
        "without prune an orphan stays"
    );

    let plan = plan_json_with(&moto, &ws, &["--prune", "true"], 2);
    assert_eq!(actions(&plan), ["delete-inline-policy", "delete-role"]);
    apply(Via::moto(&moto), &ws, &["--prune", "true"]);
    assert!(!moto.role_exists("reporting-reader"));
    assert!(
        moto.role_exists("payments-deployer"),
        "wanted roles are never pruned"
    );
}

#[test]
fn a_group_that_reads_as_empty_is_held_alone_until_released() {
    let (moto, ws) = converged();
    // The payments group suddenly reads as empty: all 3 of its principals would go. The
    // other mapping (reporting, 1 principal) is untouched and must not be held with it.
    ws.edit_tenant(|t| t["groups"][0]["members"] = serde_json::json!([]));
    let out = run_ok(&moto, &ws, &["plan"], 1);
    let text = stdout(&out);
    assert!(text.contains("Held (not applied this pass):"), "{text}");
    assert!(
        text.contains("mapping-removal-limit: would leave 0 of the 3 principals"),
        "{text}"
    );
    assert!(
        text.contains("trustsync apply --release payments-deployers"),
        "the hold says what releases it: {text}"
    );

    let out = apply_unsettled(
        Via::moto(&moto),
        &ws,
        &[],
        1,
        Unsettled::Held("the emptied group's revocation waits for a release"),
    );
    assert_eq!(
        moto.trusted_subs("payments-deployer"),
        [SP1, SP2, SP4],
        "a held revocation is not applied: {}",
        show(&out)
    );
    let log = ws.read("audit.jsonl");
    let last = log.lines().last().unwrap();
    assert!(
        last.contains("\"type\":\"pass\"") && last.contains("mapping-removal-limit"),
        "the pass record lists what was held: {last}"
    );

    // A person who knows the group really was emptied releases the hold once.
    apply(Via::moto(&moto), &ws, &["--release", "payments-deployers"]);
    assert!(moto.trusted_subs("payments-deployer").is_empty());
    assert_eq!(moto.trusted_subs("reporting-reader"), [SP3]);

    // Prune too: deleting 2 of 3 owned roles trips the role share.
    ws.edit_tenant(|t| t["groups"][0]["members"] = serde_json::json!([SP1, SP2]));
    ws.remove("policies/reporting.yaml");
    ws.remove("policies/payments.yaml");
    ws.write(
        "policies/payments.yaml",
        std::fs::read_to_string(repo().join("policies/payments.yaml"))
            .unwrap()
            .split("\n---\n")
            .next()
            .unwrap(),
    );
    let out = run_ok(&moto, &ws, &["plan", "--prune", "true"], 1);
    assert!(
        stdout(&out).contains("the pass would delete 2 of 3 owned roles"),
        "{}",
        show(&out)
    );
}

#[test]
fn a_missing_function_is_a_problem_for_its_mapping_only() {
    let moto = Moto::start();
    let ws = Workspace::new();
    let plan = plan_json(&moto, &ws, 1);
    let problems = plan["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{plan:#}");
    assert_eq!(problems[0]["kind"], "function-not-found");
    apply_unsettled(
        Via::moto(&moto),
        &ws,
        &[],
        1,
        Unsettled::Refused("the function does not exist: its mapping is a problem every pass"),
    );
    assert!(
        moto.role_exists("payments-runtime"),
        "other mappings still apply"
    );
}

#[test]
fn bad_input_is_reported_with_location_and_no_aws_call_is_made() {
    let ws = Workspace::new();
    let broken = ws
        .read("policies/payments.yaml")
        .replace("maxSessionDuration: 3600", "maxSessionDuration: 90000")
        .replace(
            "- roleMapping: payments-deployers",
            "- roleMapping: payments-deployerz",
        );
    ws.write("policies/payments.yaml", &broken);
    ws.write("policies/typo.yaml", "apiVersion: trustsync.dev/v1alpha1\nkind: RoleMapping\nmetadata: {name: typo}\nspec:\n  trustedServices: [lambda.amazonaws.com]\n  role: {name: x, tagz: {}}\n");
    // A closed port: any AWS call would fail with a connection error.
    let closed = "http://127.0.0.1:9";
    let run = |cmd: &[&str]| Via::at(closed).run(&ws, cmd);
    let refused =
        Unsettled::Refused("invalid policies stop everything before the first AWS request");
    for out in [
        run(&["validate"]),
        run(&["plan"]),
        apply_unsettled(Via::at(closed), &ws, &[], 1, refused),
    ] {
        assert_eq!(out.status.code(), Some(1), "{}", show(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("3 problem(s)"), "{err}");
        assert!(
            err.contains("payments.yaml:15:5: document 1 (RoleMapping payments-deployers): spec.role.maxSessionDuration: 90000 is outside 3600 to 43200 seconds"),
            "{err}"
        );
        assert!(err.contains("payments.yaml:46:7: document 3 (FunctionAccess payments-api): spec.invokers[0].roleMapping: no RoleMapping named `payments-deployerz`"), "{err}");
        assert!(err.contains("typo.yaml:6:19: document 1 (RoleMapping typo): spec.role.tagz: unknown field `tagz`"), "{err}");
        assert!(
            !err.contains("dispatch") && !err.contains("connect"),
            "no AWS call may be made: {err}"
        );
    }
    assert!(!ws.path().join("audit.jsonl").exists());
}

/// Writes an Ed25519 key pair made from `seed`: the private key (PKCS#8 PEM) to
/// `key_file`, the public key to `pub_file`.
fn write_keys(ws: &Workspace, seed: u8, key_file: &str, pub_file: &str) {
    use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
    let key = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
    ws.write(key_file, &key.to_pkcs8_pem(Default::default()).unwrap());
    let public = key
        .verifying_key()
        .to_public_key_pem(Default::default())
        .unwrap();
    ws.write(pub_file, &public);
}

#[test]
fn a_signed_audit_log_verifies_with_its_public_key_and_only_with_it() {
    let moto = Moto::start();
    moto.create_functions(&["payments-api"]);
    let ws = Workspace::new();
    write_keys(&ws, 42, "signing-key.pem", "audit.pub");
    write_keys(&ws, 43, "other-key.pem", "other.pub");
    ws.write(
        "trustsync.yaml",
        "audit: {path: audit.jsonl, signingKeyFile: signing-key.pem}\ndirectory: {tenantFile: examples/tenant.json}\n",
    );
    apply(Via::moto(&moto), &ws, &[]);

    let verify = |key: &str, code: i32| {
        let args = ["audit", "verify", "audit.jsonl", "--public-key", key];
        run_ok(&moto, &ws, &args, code)
    };
    let out = verify("audit.pub", 0);
    assert!(
        stdout(&out).contains("signed checkpoint(s) verify, the last on line 26"),
        "{}",
        show(&out)
    );
    let out = verify("other.pub", 1);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not verify"),
        "{}",
        show(&out)
    );
}

/// `audit verify` of the anchored log, signatures and anchor included.
/// `audit verify` of the signed log, without the anchor.
const VERIFY_SIGNED: [&str; 5] = [
    "audit",
    "verify",
    "audit.jsonl",
    "--public-key",
    "audit.pub",
];

const VERIFY_ANCHORED: [&str; 6] = [
    "audit",
    "verify",
    "audit.jsonl",
    "--public-key",
    "audit.pub",
    "--anchor",
];

/// moto with the function and the anchor's log group, a signed and anchored log, one apply.
fn anchored_and_applied() -> (Moto, Workspace) {
    let moto = Moto::start();
    moto.create_functions(&["payments-api"]);
    moto.create_log_group("trustsync-audit");
    let ws = Workspace::new();
    write_keys(&ws, 42, "signing-key.pem", "audit.pub");
    ws.write(
        "trustsync.yaml",
        "audit: {path: audit.jsonl, signingKeyFile: signing-key.pem, checkpointLines: 5, anchor: {logGroup: trustsync-audit, logStream: prod}}\ndirectory: {tenantFile: examples/tenant.json}\n",
    );
    apply(Via::moto(&moto), &ws, &[]);
    (moto, ws)
}

#[test]
fn a_cut_tail_is_found_against_the_checkpoint_published_to_cloudwatch_logs() {
    let (moto, ws) = anchored_and_applied();
    let args = VERIFY_ANCHORED;
    let out = run_ok(&moto, &ws, &args, 0);
    assert!(
        stdout(&out).contains("checkpoint(s) published to trustsync-audit/prod"),
        "{}",
        show(&out)
    );

    // Cut the tail back to an earlier checkpoint: chain and signatures still hold, the
    // anchor does not.
    let text = ws.read("audit.jsonl");
    let lines: Vec<&str> = text.lines().collect();
    let earlier = lines[..lines.len() - 1]
        .iter()
        .rposition(|l| l.contains("\"type\":\"checkpoint\""))
        .unwrap();
    let cut: String = lines[..=earlier].iter().map(|l| format!("{l}\n")).collect();
    ws.write("audit.jsonl", &cut);
    run_ok(&moto, &ws, &VERIFY_SIGNED, 0);
    let out = run_ok(&moto, &ws, &args, 1);
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("lines were cut from its end, or it was rewritten"),
        "{}",
        show(&out)
    );
}

#[test]
fn audit_show_lists_each_grant_and_revocation_of_a_principal() {
    let moto = Moto::start();
    moto.create_functions(&["payments-api"]);
    let ws = Workspace::new();
    ws.write(
        "trustsync.yaml",
        "audit: {path: audit.jsonl}\ndirectory: {tenantFile: examples/tenant.json}\n",
    );
    // The policies are a git checkout: records name the commit and its author.
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .current_dir(ws.path())
            .args([
                "-c",
                "user.name=Policy Author",
                "-c",
                "user.email=pa@example.com",
            ])
            .args(["-c", "commit.gpgsign=false"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", show(&out));
    };
    git(&["init", "-q"]);
    git(&["add", "policies"]);
    git(&["commit", "-qm", "policies"]);
    apply(Via::moto(&moto), &ws, &[]);
    // SP2 leaves the deployers group.
    let mut tenant: serde_json::Value =
        serde_json::from_str(&ws.read("examples/tenant.json")).unwrap();
    tenant["groups"][0]["members"]
        .as_array_mut()
        .unwrap()
        .retain(|m| m != SP2);
    ws.write("examples/tenant.json", &tenant.to_string());
    apply(Via::moto(&moto), &ws, &[]);

    let out = run_ok(&moto, &ws, &["audit", "show", "--principal", SP2], 0);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with(' ')).collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].contains("granted arn:aws:iam::123456789012:role/trustsync/payments-deployer"),
        "{text}"
    );
    assert!(
        lines[1].contains("revoked arn:aws:iam::123456789012:role/trustsync/payments-deployer"),
        "{text}"
    );
    assert!(
        text.contains("by arn:aws:sts::123456789012:user/moto"),
        "{text}"
    );

    let out = run_ok(
        &moto,
        &ws,
        &[
            "audit",
            "show",
            "audit.jsonl",
            "--role",
            "PAYMENTS-DEPLOYER",
            "--output",
            "json",
        ],
        0,
    );
    let entries: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let actions: Vec<&str> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "create-role",
            "put-inline-policy",
            "attach-managed-policy",
            "revoke-trust",
            "revoke-sessions"
        ],
        "{entries}"
    );
    assert_eq!(entries[3]["membersRemoved"], serde_json::json!([SP2]));
    assert_eq!(entries[3]["policyAuthor"], "Policy Author <pa@example.com>");
    assert_eq!(entries[3]["policyRevision"].as_str().unwrap().len(), 40);
    assert!(entries[3]["time"].is_string() && entries[3]["line"].is_u64());

    let out = run_ok(&moto, &ws, &["audit", "show", "--since", "2999-01-01"], 0);
    assert!(stdout(&out).contains("No matching changes."));
    let out = run_ok(&moto, &ws, &["audit", "show", "--since", "1h"], 0);
    assert!(!stdout(&out).contains("No matching changes."));
    run_ok(&moto, &ws, &["audit", "show", "--since", "yesterday"], 1);
}

#[test]
fn a_policy_set_without_groups_needs_no_entra_credential() {
    let moto = Moto::start();
    let ws = Workspace::new();
    // No tenant file and no AZURE_* variables: Graph is not configured at all.
    ws.write("trustsync.yaml", "audit: {path: audit.jsonl}\n");
    for f in ["providers.yaml", "reporting.yaml", "payments.yaml"] {
        ws.remove(&format!("policies/{f}"));
    }
    ws.write(
        "policies/runtime.yaml",
        "apiVersion: trustsync.dev/v1alpha1\nkind: RoleMapping\nmetadata: {name: runtime}\nspec:\n  trustedServices: [lambda.amazonaws.com]\n  role: {name: runtime}\n",
    );
    let plan = plan_json(&moto, &ws, 2);
    assert_eq!(actions(&plan), ["create-role"], "{plan:#}");
    apply(Via::moto(&moto), &ws, &[]);
    assert!(moto.role_exists("runtime"));
    // No role trusts the tenant: the reports need no Entra credential either.
    let access = run_ok(&moto, &ws, &["access"], 0);
    assert!(stdout(&access).contains("No role trusting the tenant's provider"));
    let export = run_ok(&moto, &ws, &["export"], 0);
    assert!(String::from_utf8_lossy(&export.stderr)
        .contains("0 mapping(s) and 0 access assignment(s) exported"));

    // A group mapping does need Graph, and says so.
    ws.write(
        "policies/groups.yaml",
        &std::fs::read_to_string(repo().join("policies/providers.yaml")).unwrap(),
    );
    ws.write(
        "policies/reporting.yaml",
        &std::fs::read_to_string(repo().join("policies/reporting.yaml")).unwrap(),
    );
    let out = run_ok(&moto, &ws, &["plan"], 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the policies map Entra groups") && err.contains("AZURE_TENANT_ID"),
        "{err}"
    );
}

/// On a terminal (a pseudo-terminal from util-linux `script`), a progress line while
/// reading and applying; in a pipe or with JSON output, none.
#[test]
fn a_progress_line_on_a_terminal_and_never_in_a_pipe_or_json() {
    let moto = Moto::start();
    moto.create_functions(&["payments-api"]);
    let ws = Workspace::new();
    let on_terminal = |args: &str| {
        let out = isolated("script", ws.path(), &moto.endpoint)
            .env("TERM", "xterm")
            .args([
                "-qec",
                &format!(
                    "{} --config trustsync.yaml {args}",
                    env!("CARGO_BIN_EXE_trustsync")
                ),
                "/dev/null",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let text = on_terminal("apply --auto-approve");
    assert!(
        text.contains("\r\x1b[2Kreading AWS and the directory"),
        "{text:?}"
    );
    assert!(text.contains("\r\x1b[2Kapplying 1 of "), "{text:?}");
    assert!(text.contains("Apply: "), "{text:?}");
    let json = on_terminal("plan --output json");
    assert!(!json.contains("\x1b[2K"), "{json:?}");
    let piped = run_ok(&moto, &ws, &["plan"], 0);
    assert!(!String::from_utf8_lossy(&piped.stderr).contains("\x1b[2K"));
    assert!(!stdout(&piped).contains("\x1b[2K"));
}

/// Whoever holds the controller's credentials may write to the anchor stream: publishing an
/// old checkpoint again and cutting the file back to it made both checks pass. The
/// published checkpoints must only move forward, so the replay is found.
#[test]
fn a_replayed_checkpoint_is_found() {
    let (moto, ws) = anchored_and_applied();
    let args = VERIFY_ANCHORED;
    run_ok(&moto, &ws, &args, 0);

    let published = published_to_anchor(&moto);
    let first = published[0].clone();
    assert!(published.len() >= 2, "several checkpoints published");
    let replayed: serde_json::Value = serde_json::from_str(&first).unwrap();
    publish_to_anchor(&moto, &first);
    // The file cut back to that checkpoint: its chain and signatures still hold.
    let text = ws.read("audit.jsonl");
    let keep = replayed["lines"].as_u64().unwrap() as usize + 1;
    let cut: String = text.lines().take(keep).map(|l| format!("{l}\n")).collect();
    ws.write("audit.jsonl", &cut);
    run_ok(&moto, &ws, &VERIFY_SIGNED, 0);
    let out = run_ok(&moto, &ws, &args, 1);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("an old checkpoint was published again"),
        "{}",
        show(&out)
    );
}

/// A broken chain begins a new segment; the anchor then holds checkpoints of both. Verify
/// follows the segments back, takes the new segment's lines starting again as a rotation,
/// not a replay, and still finds an old segment's checkpoint published after the new ones.
#[test]
fn the_anchor_is_verified_across_a_rotation_and_a_replay_from_the_old_segment_is_found() {
    let (moto, ws) = anchored_and_applied();
    // An auditor's key: only an acknowledgement signed with it clears the rotation.
    write_keys(&ws, 77, "auditor-key.pem", "auditor.pub");
    ws.write(
        "trustsync.yaml",
        &ws.read("trustsync.yaml").replace(
            "checkpointLines: 5,",
            "checkpointLines: 5, auditorPublicKeyFiles: [auditor.pub],",
        ),
    );
    // A line broken after the last published checkpoint: every checkpoint published so far
    // still matches the lines it covers (one published after a break never would).
    let text = ws.read("audit.jsonl");
    let lines: Vec<&str> = text.lines().collect();
    let last_checkpoint = lines
        .iter()
        .rposition(|l| l.contains("\"type\":\"checkpoint\""))
        .unwrap();
    let mut broken: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    let at = if last_checkpoint + 1 < broken.len() {
        last_checkpoint + 1
    } else {
        // The file ends with a checkpoint: append a line to break after it.
        broken.push(broken[last_checkpoint - 1].clone());
        broken.len() - 1
    };
    broken[at] = broken[at].replacen("\"time\":\"", "\"time\":\"1", 1);
    ws.write("audit.jsonl", &(broken.join("\n") + "\n"));
    ws.remove_tenant_member(
        "a1b2c3d4-0001-4000-8000-000000000001",
        "5e1f0a2b-1111-4111-8111-000000000002",
    );
    apply(Via::moto(&moto), &ws, &[]);
    acknowledge(
        &moto,
        &ws,
        ("alice@example.com", "auditor-key.pem", None),
        0,
    );
    let out = run_ok(&moto, &ws, &VERIFY_ANCHORED, 0);
    assert!(stdout(&out).contains("previous segment"), "{}", show(&out));

    // An old segment's first checkpoint published again after the new segment's.
    let published = published_to_anchor(&moto);
    let first = published[0].clone();
    publish_to_anchor(&moto, &first);
    let out = run_ok(&moto, &ws, &VERIFY_ANCHORED, 1);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("an old checkpoint was published again"),
        "{}",
        show(&out)
    );
}

/// Whoever holds the controller's credentials *and* its signing key rewrites an early line,
/// recomputes every hash, signs every checkpoint again, and publishes a checkpoint for the
/// rewritten log that moves forward: chain, signatures and order all hold, and the latest
/// published checkpoint is in the file. The earlier published checkpoints are not, and the
/// controller cannot erase them from the stream (`the_controller_may_publish_checkpoints_and_never_erase_them`).
#[test]
fn a_rewrite_with_the_signing_key_is_found_by_the_checkpoints_published_before_it() {
    use sha2::Digest;
    let (moto, ws) = anchored_and_applied();
    run_ok(&moto, &ws, &VERIFY_ANCHORED, 0);
    let signer =
        trustsync::audit::Signer::from_pem_file(&ws.path().join("signing-key.pem")).unwrap();
    let hex = |b: &[u8]| -> String {
        sha2::Sha256::digest(b)
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect()
    };
    let text = ws.read("audit.jsonl");
    let mut prev = "0".repeat(64);
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
        if i == 1 {
            v["time"] = serde_json::json!("2026-01-01T00:00:00Z");
        }
        if v["type"] == "checkpoint" {
            let cp = serde_json::to_value(signer.sign(i, &prev)).unwrap();
            for (k, val) in cp.as_object().unwrap() {
                v[k] = val.clone();
            }
        }
        v["prevHash"] = serde_json::json!(prev);
        let raw = serde_json::to_string(&v).unwrap();
        prev = hex(raw.as_bytes());
        out.push(raw);
    }
    // One more checkpoint, for the rewritten log, published: it moves forward.
    let cp = signer.sign(out.len(), &prev);
    let mut line = serde_json::to_value(&cp).unwrap();
    line["type"] = serde_json::json!("checkpoint");
    line["time"] = serde_json::json!(cp.signed_at.clone());
    line["prevHash"] = serde_json::json!(prev);
    out.push(serde_json::to_string(&line).unwrap());
    ws.write("audit.jsonl", &(out.join("\n") + "\n"));
    publish_to_anchor(&moto, &serde_json::to_string(&cp).unwrap());
    run_ok(&moto, &ws, &VERIFY_SIGNED, 0);
    let out = run_ok(&moto, &ws, &VERIFY_ANCHORED, 1);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the lines before it were rewritten"),
        "{}",
        show(&out)
    );
}

/// Publishes `message` to the anchor stream now, as whoever holds the controller's
/// credentials may.
fn publish_to_anchor(moto: &Moto, message: &str) {
    let logs = aws_sdk_cloudwatchlogs::Client::new(moto.sdk());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    moto.block_on(
        logs.put_log_events()
            .log_group_name("trustsync-audit")
            .log_stream_name("prod")
            .log_events(
                aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
                    .timestamp(now)
                    .message(message)
                    .build()
                    .unwrap(),
            )
            .send(),
    )
    .unwrap();
}

/// The messages published to the anchor stream, oldest first.
fn published_to_anchor(moto: &Moto) -> Vec<String> {
    let logs = aws_sdk_cloudwatchlogs::Client::new(moto.sdk());
    let events = moto
        .block_on(
            logs.get_log_events()
                .log_group_name("trustsync-audit")
                .log_stream_name("prod")
                .start_from_head(true)
                .send(),
        )
        .unwrap();
    events
        .events()
        .iter()
        .map(|e| e.message().unwrap().to_string())
        .collect()
}

/// Secure by default (issue 35): a bare config (no `permissionsBoundaries`) creates no
/// role, and says which setting to set; with a boundary configured every role is created
/// inside it; `allowUnboundedRoles: true` is the explicit opt-out.
#[test]
fn a_bare_config_creates_no_role_and_names_the_setting() {
    let moto = Moto::start();
    moto.create_functions(&["payments-api"]);
    let ws = Workspace::new();
    ws.write(
        "trustsync.yaml",
        "audit: {path: audit.jsonl}\ndirectory: {tenantFile: examples/tenant.json}\n",
    );
    let roles = || {
        moto.block_on(moto.iam().list_roles().path_prefix("/trustsync/").send())
            .unwrap()
            .roles()
            .iter()
            .map(|r| {
                // ListRoles leaves the boundary out; GetRole has it.
                let role = moto
                    .block_on(moto.iam().get_role().role_name(r.role_name()).send())
                    .unwrap();
                (
                    r.role_name().to_string(),
                    role.role()
                        .and_then(|r| r.permissions_boundary())
                        .and_then(|b| b.permissions_boundary_arn())
                        .map(String::from),
                )
            })
            .collect::<Vec<_>>()
    };
    // The secure default: without the test harness's opt-out.
    let secure = Via::moto(&moto).unset(&["TRUSTSYNC_ALLOW_UNBOUNDED_ROLES"]);
    let out = apply_unsettled(
        secure,
        &ws,
        &[],
        1,
        Unsettled::Refused("no boundary is configured: no role may be created"),
    );
    let text = show(&out);
    assert!(
        text.contains("permissionsBoundaries") && text.contains("allowUnboundedRoles"),
        "{text}"
    );
    assert!(roles().is_empty(), "no role was created: {:?}", roles());

    ws.write(
        "trustsync.yaml",
        "audit: {path: audit.jsonl}\ndirectory: {tenantFile: examples/tenant.json}\npermissionsBoundaries: [trustsync-workload-boundary]\n",
    );
    apply(secure, &ws, &[]);
    let made = roles();
    assert!(!made.is_empty());
    for (name, boundary) in &made {
        assert_eq!(
            boundary.as_deref(),
            Some("arn:aws:iam::123456789012:policy/trustsync-workload-boundary"),
            "{name}"
        );
    }
}
