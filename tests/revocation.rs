//! Revocation first (issue 9): each way a removal used to be frozen, through the binary
//! against moto, with AWS state read back through the AWS SDK.

mod support;

use serde_json::json;
use support::*;

const SP1: &str = "5e1f0a2b-1111-4111-8111-000000000001";
const SP2: &str = "5e1f0a2b-1111-4111-8111-000000000002";
const SP3: &str = "5e1f0a2b-1111-4111-8111-000000000003";
const SP4: &str = "5e1f0a2b-1111-4111-8111-000000000004";
const PAYMENTS: &str = "a1b2c3d4-0001-4000-8000-000000000001";
const REPORTING: &str = "a1b2c3d4-0001-4000-8000-000000000002";
const PIN_TAG: &str = "trustsync.dev/group";

fn converged() -> (Moto, Workspace) {
    let moto = Moto::start();
    moto.create_functions(&["payments-api"]);
    let ws = Workspace::new();
    apply(Via::moto(&moto), &ws, &[]);
    assert_eq!(moto.trusted_subs("payments-deployer"), [SP1, SP2, SP4]);
    (moto, ws)
}

fn role_tags(moto: &Moto, role: &str) -> std::collections::BTreeMap<String, String> {
    moto.block_on(moto.iam().list_role_tags().role_name(role).send())
        .unwrap()
        .tags()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect()
}

fn remove_member(ws: &Workspace, group: &str, member: &str) {
    ws.remove_tenant_member(group, member);
}

fn add_group(ws: &Workspace, id: &str, name: &str, members: &[&str]) {
    ws.edit_tenant(|t| {
        t["groups"]
            .as_array_mut()
            .unwrap()
            .push(json!({"id": id, "displayName": name, "members": members}));
    });
}

fn problems(plan: &serde_json::Value) -> Vec<String> {
    plan["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["message"].as_str().unwrap().to_string())
        .collect()
}

/// Case 1: a second group takes the name while a member leaves the first. The mapping is
/// pinned to the group it resolved to, so the newcomer can neither freeze nor hijack it.
#[test]
fn a_name_taken_by_a_second_group_neither_freezes_nor_hijacks_the_mapping() {
    let (moto, ws) = converged();
    let pin = role_tags(&moto, "payments-deployer")[PIN_TAG].clone();
    assert!(pin.starts_with(&format!("{PAYMENTS}/")), "{pin}");

    // Someone creates a group of the same name (in other letter case) holding the member
    // who is leaving the real one.
    add_group(
        &ws,
        "dddddddd-0000-4000-8000-000000000001",
        "SG-AWS-Payments-Deployers",
        &[SP2],
    );
    remove_member(&ws, PAYMENTS, SP2);
    let plan = plan_json(&moto, &ws, 2);
    assert_eq!(
        actions(&plan),
        ["revoke-trust", "revoke-sessions"],
        "{plan:#}"
    );
    assert_eq!(plan["changes"][0]["membersRemoved"], json!([SP2]));
    assert!(problems(&plan).is_empty(), "{plan:#}");
    // ...and it is reported, naming both groups.
    let taken: Vec<&serde_json::Value> = plan["notices"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["kind"] == "group-name-taken")
        .collect();
    assert_eq!(taken.len(), 1, "{plan:#}");
    let message = taken[0]["message"].as_str().unwrap();
    assert!(
        message.contains("dddddddd-0000-4000-8000-000000000001") && message.contains(PAYMENTS),
        "{message}"
    );
    apply(Via::moto(&moto), &ws, &[]);
    assert_eq!(moto.trusted_subs("payments-deployer"), [SP1, SP4]);

    // A rename of the pinned group is reported; the mapping keeps following it.
    ws.edit_tenant(|t| t["groups"][0]["displayName"] = json!("sg-payments-deploy"));
    let plan = plan_json(&moto, &ws, 0);
    assert!(actions(&plan).is_empty(), "{plan:#}");
    let notices = plan["notices"].to_string();
    assert!(
        notices.contains("group-renamed") && notices.contains("sg-payments-deploy"),
        "{notices}"
    );
}

/// Case 1, a role never pinned (as written by an older trustsync): the name is ambiguous,
/// so the mapping is blocked, yet whoever is a member of neither group still goes.
#[test]
fn an_ambiguous_unpinned_name_blocks_additions_but_not_the_revocation() {
    let (moto, ws) = converged();
    moto.block_on(
        moto.iam()
            .untag_role()
            .role_name("payments-deployer")
            .tag_keys(PIN_TAG)
            .send(),
    )
    .unwrap();
    // An older trustsync's log recorded no pin either.
    ws.remove("audit.jsonl");
    add_group(
        &ws,
        "dddddddd-0000-4000-8000-000000000002",
        "sg-aws-payments-deployers",
        &[SP3],
    );
    remove_member(&ws, PAYMENTS, SP2);
    let plan = plan_json(&moto, &ws, 1);
    assert!(
        problems(&plan)
            .iter()
            .any(|p| p.contains("2 groups are named")
                && p.contains("members who left the group still lose access")),
        "{plan:#}"
    );
    assert_eq!(
        actions(&plan),
        ["revoke-trust", "revoke-sessions"],
        "{plan:#}"
    );
    apply_unsettled(
        Via::moto(&moto),
        &ws,
        &[],
        1,
        Unsettled::Refused("two groups share the pinned name: only the removals are planned"),
    );
    assert_eq!(
        moto.trusted_subs("payments-deployer"),
        [SP1, SP4],
        "SP2 is in neither group and goes; SP3 is not added"
    );
}

/// Case 2: a group grows past what one trust policy holds while a member leaves.
#[test]
fn an_oversize_group_adds_no_one_but_still_drops_the_departed() {
    let (moto, ws) = converged();
    let length = trustsync::model::iam_policy::iam_length(&moto.trust_policy("payments-deployer"));
    // Room for the three members now, not for six more.
    ws.write(
        "trustsync.yaml",
        &format!(
            "audit:\n  path: audit.jsonl\ndirectory:\n  tenantFile: examples/tenant.json\nlimits:\n  trustPolicyChars: {}\n",
            length + 60
        ),
    );
    let newcomers: Vec<String> = (0..6)
        .map(|i| format!("5e1f0a2b-2222-4222-8222-00000000000{i}"))
        .collect();
    ws.edit_tenant(|t| {
        for n in &newcomers {
            t["servicePrincipals"]
                .as_array_mut()
                .unwrap()
                .push(json!({"id": n, "displayName": "newcomer"}));
        }
        let members = t["groups"][0]["members"].as_array_mut().unwrap();
        members.retain(|m| m != SP2);
        members.extend(newcomers.iter().map(|n| json!(n)));
    });
    let plan = plan_json(&moto, &ws, 1);
    let msg = problems(&plan).join("\n");
    assert!(
        msg.contains("for 8 service principals would be") && msg.contains("over the limit"),
        "{msg}"
    );
    assert_eq!(
        actions(&plan),
        ["revoke-trust", "revoke-sessions"],
        "{plan:#}"
    );
    assert_eq!(plan["changes"][0]["membersRemoved"], json!([SP2]));
    apply_unsettled(
        Via::moto(&moto),
        &ws,
        &[],
        1,
        Unsettled::Refused("the group outgrew one trust policy: only the removals are planned"),
    );
    assert_eq!(moto.trusted_subs("payments-deployer"), [SP1, SP4]);
}

/// Case 3: a FunctionAccess document is deleted; its statements are found through the
/// function's tag, reported as orphans, and removed with prune.
#[test]
fn statements_of_a_deleted_function_access_are_found_and_pruned() {
    let (moto, ws) = converged();
    assert_eq!(moto.lambda_sids("payments-api").len(), 2);
    let payments = ws.read("policies/payments.yaml");
    let kept: Vec<&str> = payments
        .split("\n---\n")
        .filter(|d| !d.contains("kind: FunctionAccess"))
        .collect();
    ws.write("policies/payments.yaml", &kept.join("\n---\n"));

    let plan = plan_json(&moto, &ws, 0);
    assert!(actions(&plan).is_empty(), "{plan:#}");
    let notices = plan["notices"].to_string();
    assert!(
        notices.contains("2 trustsync statement(s) on a function no FunctionAccess names")
            && notices.contains("function:payments-api"),
        "{notices}"
    );

    let plan = plan_json_with(&moto, &ws, &["--prune", "true"], 2);
    assert_eq!(
        actions(&plan),
        [
            "remove-lambda-permission",
            "remove-lambda-permission",
            "untag-function"
        ],
        "{plan:#}"
    );
    apply(Via::moto(&moto), &ws, &["--prune", "true"]);
    assert!(moto.lambda_sids("payments-api").is_empty());
    let plan = plan_json_with(&moto, &ws, &["--prune", "true"], 0);
    assert!(actions(&plan).is_empty(), "{plan:#}");
}

/// Case 4: removals are measured against the role's recorded baseline, so two passes
/// cannot together take away what one may not.
#[test]
fn quick_successive_removals_are_measured_against_the_baseline() {
    let (moto, ws) = converged();
    remove_member(&ws, PAYMENTS, SP2);
    apply(Via::moto(&moto), &ws, &[]);
    assert_eq!(moto.trusted_subs("payments-deployer"), [SP1, SP4]);
    let baseline = role_tags(&moto, "payments-deployer")["trustsync.dev/removal-baseline"].clone();
    assert!(baseline.starts_with("3@"), "{baseline}");

    // One more would leave 1 of the 3 the role trusted an instant ago: 67%, held. Measured
    // from the 2 left now it would have been 50%, and let through.
    remove_member(&ws, PAYMENTS, SP1);
    let out = apply_unsettled(
        Via::moto(&moto),
        &ws,
        &[],
        1,
        Unsettled::Held("the second removal passes the baseline's limit"),
    );
    assert!(
        stdout(&out).contains("would leave 1 of the 3 principals"),
        "{}",
        show(&out)
    );
    assert_eq!(moto.trusted_subs("payments-deployer"), [SP1, SP4]);
}

/// Case 6: a group chosen by id is deleted in Entra: Graph answers 404 on an otherwise
/// successful read, and its members lose access (one principal: within the floor).
#[test]
fn a_deleted_group_takes_its_members_access_away() {
    let (moto, ws) = converged();
    assert_eq!(moto.trusted_subs("reporting-reader"), [SP3]);
    ws.edit_tenant(|t| {
        t["groups"]
            .as_array_mut()
            .unwrap()
            .retain(|g| g["id"] != REPORTING)
    });
    // Read through the local Graph server (a 404 for the group), not the tenant file.
    let graph = GraphServer::start(&ws.path().join("examples/tenant.json"), 999);
    ws.write("trustsync.yaml", "audit:\n  path: audit.jsonl\n");
    let env = graph.env(CLIENT_SECRET);
    let out = run_env(
        &moto,
        &ws,
        &env,
        &["plan", "--output", "json", "--detailed-exitcode"],
        1,
    );
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        problems(&plan)
            .iter()
            .any(|p| p.contains(&format!("no group matches {REPORTING}"))),
        "{plan:#}"
    );
    assert_eq!(
        actions(&plan),
        ["revoke-trust", "revoke-sessions"],
        "{plan:#}"
    );
    apply_unsettled(
        Via::moto(&moto).env(&env),
        &ws,
        &[],
        1,
        Unsettled::Refused(
            "the deleted group is a problem every pass: only the removals are planned",
        ),
    );
    assert!(moto.trusted_subs("reporting-reader").is_empty());
    let trust = moto.trust_policy("reporting-reader");
    assert_eq!(trust["Statement"][0]["Effect"], "Deny", "{trust}");
}

/// Case 6, by name: the group a name was pinned to is deleted. Its three members would
/// all go, which the per-mapping limit holds for a person to confirm.
#[test]
fn a_deleted_pinned_group_is_revoked_within_the_safety_limits() {
    let (moto, ws) = converged();
    ws.edit_tenant(|t| {
        t["groups"]
            .as_array_mut()
            .unwrap()
            .retain(|g| g["id"] != PAYMENTS)
    });
    let plan = plan_json(&moto, &ws, 1);
    assert!(
        problems(&plan)
            .iter()
            .any(|p| p.contains(&format!("the group {PAYMENTS}")) && p.contains("no longer exists")),
        "{plan:#}"
    );
    assert_eq!(plan["held"][0]["action"], "revoke-trust", "{plan:#}");
    assert_eq!(plan["held"][0]["held"]["kind"], "mapping-removal-limit");
    apply_unsettled(
        Via::moto(&moto),
        &ws,
        &["--release", "payments-deployers"],
        1,
        Unsettled::Refused("the pinned group no longer exists: a problem after the release too"),
    );
    assert!(moto.trusted_subs("payments-deployer").is_empty());
}

const ISSUER: &str = "https://sts.windows.net/7f3c2a10-4b5e-4c1d-9a8e-2d6f0b1c3e45/";

fn provider_client_ids(moto: &Moto) -> Vec<String> {
    let iam = moto.iam();
    let list = moto
        .block_on(iam.list_open_id_connect_providers().send())
        .unwrap();
    let arn = list.open_id_connect_provider_list()[0].arn().unwrap();
    let mut ids = moto
        .block_on(
            iam.get_open_id_connect_provider()
                .open_id_connect_provider_arn(arn)
                .send(),
        )
        .unwrap()
        .client_id_list()
        .to_vec();
    ids.sort();
    ids
}

/// Case 7: adopting the tenant's provider, which other teams' audiences share, removes
/// none of theirs, with or without prune.
#[test]
fn adopting_a_shared_provider_never_removes_a_foreign_audience() {
    let moto = Moto::start();
    moto.create_functions(&["payments-api"]);
    moto.block_on(
        moto.iam()
            .create_open_id_connect_provider()
            .url(ISSUER)
            .client_id_list("api://aws-federation")
            .client_id_list("api://other-team")
            .send(),
    )
    .unwrap();
    let ws = Workspace::new();
    let providers = ws.read("policies/providers.yaml");
    ws.write(
        "policies/providers.yaml",
        &format!("{providers}  adopt: true\n"),
    );
    for prune in ["false", "true"] {
        let plan = plan_json_with(&moto, &ws, &["--prune", prune], 2);
        let got = actions(&plan);
        assert!(got.contains(&"tag-oidc-provider".to_string()), "{got:?}");
        assert!(
            !got.contains(&"remove-provider-audience".to_string()),
            "prune={prune}: {plan:#}"
        );
    }
    apply(Via::moto(&moto), &ws, &["--prune", "true"]);
    assert_eq!(
        provider_client_ids(&moto),
        ["api://aws-federation", "api://other-team"]
    );
}

/// Case 7: an audience trustsync itself added and no policy wants any more is an orphan,
/// removed only with prune.
#[test]
fn only_audiences_trustsync_added_are_removed_and_only_with_prune() {
    let moto = Moto::start();
    moto.create_functions(&["payments-api"]);
    let ws = Workspace::new();
    let providers = ws.read("policies/providers.yaml");
    ws.write(
        "policies/providers.yaml",
        &providers.replace(
            "audiences: [api://aws-federation]",
            "audiences: [api://aws-federation, api://retired]",
        ),
    );
    apply(Via::moto(&moto), &ws, &[]);
    assert_eq!(
        provider_client_ids(&moto),
        ["api://aws-federation", "api://retired"]
    );
    ws.write("policies/providers.yaml", &providers);
    let plan = plan_json(&moto, &ws, 2);
    assert!(
        !actions(&plan).contains(&"remove-provider-audience".to_string()),
        "{plan:#}"
    );
    assert!(
        plan["notices"]
            .to_string()
            .contains("audience `api://retired` was added by trustsync"),
        "{plan:#}"
    );
    let out = run_ok(
        &moto,
        &ws,
        &["plan", "--output", "json", "--prune", "true"],
        0,
    );
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let provider_actions: Vec<String> = actions(&plan)
        .into_iter()
        .filter(|a| a.contains("provider"))
        .collect();
    assert_eq!(
        provider_actions,
        ["remove-provider-audience", "untag-oidc-provider"],
        "{plan:#}"
    );
    // (moto 5.2.5 does not implement RemoveClientIDFromOpenIDConnectProvider, so the
    // removal itself is not applied here.)
}

/// A change that fails before a revocation on the same role (here a tag write AWS
/// refuses) does not hold the revocation back.
#[test]
fn a_failing_write_to_the_role_does_not_hold_its_revocation() {
    let (moto, ws) = converged();
    ws.write(
        "trustsync.yaml",
        "audit:\n  path: audit.jsonl\ndirectory:\n  tenantFile: examples/tenant.json\nlimits:\n  tagsPerRole: 60\n",
    );
    // 51 new tags in one TagRole request: more than IAM takes at once.
    let tags: Vec<String> = (0..51).map(|i| format!("t{i}: v")).collect();
    let payments = ws.read("policies/payments.yaml");
    ws.write(
        "policies/payments.yaml",
        &payments.replacen(
            "tags: {team: payments}",
            &format!("tags: {{team: payments, {}}}", tags.join(", ")),
            1,
        ),
    );
    remove_member(&ws, PAYMENTS, SP2);
    let plan = plan_json(&moto, &ws, 2);
    assert_eq!(
        actions(&plan),
        ["tag-role", "revoke-trust", "revoke-sessions"],
        "{plan:#}"
    );
    let out = apply_unsettled(
        Via::moto(&moto),
        &ws,
        &[],
        1,
        Unsettled::Fails("the role's tags are full: one write fails"),
    );
    assert!(
        stdout(&out).contains("Apply: 2 applied, 1 failed, 0 skipped"),
        "{}",
        show(&out)
    );
    assert_eq!(moto.trusted_subs("payments-deployer"), [SP1, SP4]);
}

/// A power cut leaves half a line at the end of the audit log: the next apply moves it
/// aside (kept next to the log), records that it did, and revokes; the log verifies.
#[test]
fn a_torn_audit_line_is_moved_aside_and_the_revocation_goes_on() {
    let (moto, ws) = converged();
    let log = ws.read("audit.jsonl");
    ws.write(
        "audit.jsonl",
        &format!("{log}{{\"time\":\"2026-12-04T03:00:00Z\",\"type\":\"intent\",\"actor\":{{\"inst"),
    );
    remove_member(&ws, PAYMENTS, SP2);
    let out = apply(Via::moto(&moto), &ws, &[]);
    assert!(stdout(&out).contains("revoke-trust"), "{}", show(&out));
    assert_eq!(moto.trusted_subs("payments-deployer"), [SP1, SP4]);
    run_ok(&moto, &ws, &["audit", "verify", "audit.jsonl"], 0);
    let repaired: Vec<serde_json::Value> = ws
        .read("audit.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| v["type"] == "repaired")
        .collect();
    assert_eq!(repaired.len(), 1);
    let side = repaired[0]["sideFile"].as_str().unwrap();
    assert!(
        std::fs::read_to_string(ws.path().join(side).as_path())
            .or_else(|_| std::fs::read_to_string(side))
            .unwrap()
            .ends_with("\"inst"),
        "the torn bytes are kept"
    );
}

/// A line in the middle of the log is edited (a broken chain, not a torn tail): the log is
/// kept as the previous segment, a new one begins, the revocation goes on, and the rotation
/// is reported (every plan, `audit verify`) until a person acknowledges it.
#[test]
fn a_broken_audit_chain_rotates_to_a_new_segment_and_the_revocation_goes_on() {
    let (moto, ws) = converged();
    let log = ws.read("audit.jsonl");
    let lines: Vec<&str> = log.lines().collect();
    assert!(lines.len() > 4);
    let edited = lines[2].replacen("\"time\":\"", "\"time\":\"1", 1);
    assert_ne!(edited, lines[2]);
    let mut tampered: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    tampered[2] = edited;
    ws.write("audit.jsonl", &(tampered.join("\n") + "\n"));

    // Before the next write, every plan says what the next writer will do.
    let plan = plan_json(&moto, &ws, 0);
    assert!(
        plan["notices"]
            .to_string()
            .contains("audit-segment-rotated"),
        "{plan:#}"
    );

    remove_member(&ws, PAYMENTS, SP2);
    let out = apply(Via::moto(&moto), &ws, &[]);
    assert!(stdout(&out).contains("revoke-trust"), "{}", show(&out));
    assert_eq!(moto.trusted_subs("payments-deployer"), [SP1, SP4]);

    // The new segment names the old one and its last good line; the old file is kept whole.
    let first: serde_json::Value =
        serde_json::from_str(ws.read("audit.jsonl").lines().next().unwrap()).unwrap();
    assert_eq!(first["type"], "rotated", "{first}");
    assert_eq!(first["previousGoodLines"], 2, "{first}");
    let previous = first["previousSegment"].as_str().unwrap().to_string();
    let previous_path = ws.path().join(&previous);
    assert_eq!(
        std::fs::read_to_string(&previous_path).unwrap(),
        tampered.join("\n") + "\n",
        "the previous segment is kept as it was"
    );

    // Reported until acknowledged: every plan, and `audit verify` exits 1 naming it.
    let plan = plan_json(&moto, &ws, 0);
    assert!(plan["notices"].to_string().contains(&previous), "{plan:#}");
    let out = run_ok(&moto, &ws, &["audit", "verify", "audit.jsonl"], 1);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("audit acknowledge"),
        "{}",
        show(&out)
    );

    // Only an auditor's signed acknowledgement clears it (issue 36; tests/audit.rs has the
    // refusals): the auditor's public key in the config, the private key with them.
    {
        use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
        let auditor = ed25519_dalek::SigningKey::from_bytes(&[77; 32]);
        ws.write(
            "auditor-key.pem",
            &auditor.to_pkcs8_pem(Default::default()).unwrap(),
        );
        let public = auditor
            .verifying_key()
            .to_public_key_pem(Default::default());
        ws.write("auditor.pub", &public.unwrap());
        ws.write(
            "trustsync.yaml",
            "audit: {path: audit.jsonl, auditorPublicKeyFiles: [auditor.pub]}
directory: {tenantFile: examples/tenant.json}
",
        );
    }
    acknowledge(
        &moto,
        &ws,
        (
            "alice@example.com",
            "auditor-key.pem",
            Some("line 3 edited by hand"),
        ),
        0,
    );
    let out = run_ok(&moto, &ws, &["audit", "verify", "audit.jsonl"], 0);
    assert!(stdout(&out).contains(&previous), "{}", show(&out));
    let plan = plan_json(&moto, &ws, 0);
    assert!(
        !plan["notices"]
            .to_string()
            .contains("audit-segment-rotated"),
        "{plan:#}"
    );

    // The previous segment is part of what verify vouches for: changing it is found.
    std::fs::write(&previous_path, "{}\n").unwrap();
    let out = run_ok(&moto, &ws, &["audit", "verify", "audit.jsonl"], 1);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("changed since"),
        "{}",
        show(&out)
    );
}

/// Someone repoints the role's group pin at a group of their own (with a well-formed tag
/// value): the audit log says which pin trustsync wrote, so the change is reported, not
/// followed, and the tag is put back.
#[test]
fn a_pin_changed_outside_trustsync_is_reported_and_not_followed() {
    let (moto, ws) = converged();
    let theirs = "dddddddd-0000-4000-8000-000000000002";
    add_group(&ws, theirs, "some-other-group", &[SP3]);
    let forged = trustsync::sources::directory::pin_value(theirs, "sg-aws-payments-deployers");
    moto.block_on(
        moto.iam()
            .tag_role()
            .role_name("payments-deployer")
            .tags(
                aws_sdk_iam::types::Tag::builder()
                    .key(PIN_TAG)
                    .value(&forged)
                    .build()
                    .unwrap(),
            )
            .send(),
    )
    .unwrap();
    let plan = plan_json(&moto, &ws, 1);
    let problems = plan["problems"].to_string();
    assert!(
        problems.contains("pin-changed") && problems.contains(&forged),
        "{plan:#}"
    );
    assert_eq!(
        actions(&plan),
        ["tag-role"],
        "only the pin goes back: {plan:#}"
    );
    // The problem is this pass's; the re-plan below finds the pin back and nothing to do.
    apply_unsettled(
        Via::moto(&moto),
        &ws,
        &[],
        1,
        Unsettled::Refused("a forged pin is reported as a problem in the pass that puts it back"),
    );
    assert_eq!(moto.trusted_subs("payments-deployer"), [SP1, SP2, SP4]);
    assert!(role_tags(&moto, "payments-deployer")[PIN_TAG].starts_with(&format!("{PAYMENTS}/")));
    plan_json(&moto, &ws, 0);
}
