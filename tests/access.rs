//! `access`, `export` and `check-token` through the binary, against moto and the local
//! Graph server: a role created outside trustsync that trusts the tenant's provider is
//! found, exported, adopted with no change to its access, and a token is explained.

mod support;

use base64::Engine;
use serde_json::{json, Value};
use support::*;

const TENANT: &str = "7f3c2a10-4b5e-4c1d-9a8e-2d6f0b1c3e45";
const SP1: &str = "5e1f0a2b-1111-4111-8111-000000000001";
const SP3: &str = "5e1f0a2b-1111-4111-8111-000000000003";
const SP4: &str = "5e1f0a2b-1111-4111-8111-000000000004";
const CI_RUNNERS: &str = "a1b2c3d4-0001-4000-8000-000000000003";

fn run_graph(
    moto: &Moto,
    ws: &Workspace,
    graph: &GraphServer,
    args: &[&str],
) -> std::process::Output {
    command(ws.path(), &moto.endpoint)
        .envs(graph.env(CLIENT_SECRET))
        .args(args)
        .output()
        .unwrap()
}

/// [`run_graph`] with the workspace's `trustsync.yaml`, the config [`apply`] runs with.
fn run_configured(
    moto: &Moto,
    ws: &Workspace,
    graph: &GraphServer,
    args: &[&str],
) -> std::process::Output {
    let env = graph.env(CLIENT_SECRET);
    Via::moto(moto).env(&env).run(ws, args)
}

fn ok(out: &std::process::Output, code: i32) -> String {
    assert_eq!(out.status.code(), Some(code), "{}", show(out));
    stdout(out)
}

/// A role made by hand (not by trustsync) under the managed path, trusting the tenant's
/// provider for one service principal.
fn create_outside_role(moto: &Moto) {
    let issuer = format!("sts.windows.net/{TENANT}/");
    let trust = json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Federated": format!("arn:aws:iam::123456789012:oidc-provider/{issuer}")},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {
                format!("{issuer}:aud"): "api://aws-federation",
                format!("{issuer}:sub"): [SP4],
            }},
        }],
    });
    let iam = moto.iam();
    moto.block_on(async {
        iam.create_role()
            .role_name("legacy-ci")
            .path("/trustsync/")
            .description("Made by hand before trustsync")
            .assume_role_policy_document(trust.to_string())
            .tags(
                aws_sdk_iam::types::Tag::builder()
                    .key("team")
                    .value("ci")
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        iam.put_role_policy()
            .role_name("legacy-ci")
            .policy_name("read-logs")
            .policy_document(
                json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "logs:GetLogEvents", "Resource": "*"}]})
                    .to_string(),
            )
            .send()
            .await
            .unwrap();
    });
}

fn jwt(claims: Value) -> String {
    let b64 = |v: &Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    };
    format!(
        "{}.{}.c2lnbmF0dXJlLW5vdC1jaGVja2Vk",
        b64(&json!({"alg": "RS256", "typ": "JWT"})),
        b64(&claims)
    )
}

#[test]
fn a_role_made_outside_trustsync_is_found_exported_and_adopted_without_a_change() {
    let moto = Moto::start();
    moto.create_functions(&["payments-api"]);
    let ws = Workspace::new();
    ws.write("trustsync.yaml", "audit: {path: audit.jsonl}\n");
    let graph = GraphServer::start(&ws.path().join("examples/tenant.json"), 999);
    apply(Via::moto(&moto).env(&graph.env(CLIENT_SECRET)), &ws, &[]);
    create_outside_role(&moto);

    // access: the nested path, since when, and the role outside the repository.
    let text = ok(&run_configured(&moto, &ws, &graph, &["access"]), 0);
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with(SP4) && l.contains(" > "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.contains("sg-aws-payments-deployers") && line.contains("sg-payments-ci-runners"),
        "{line}"
    );
    assert!(line.contains("since 20"), "{line}");
    let outside = text
        .split("Access outside the policy repository")
        .nth(1)
        .unwrap_or_else(|| panic!("{text}"));
    assert!(outside.contains("role/trustsync/legacy-ci"), "{text}");
    assert!(!outside.contains("payments-deployer"), "{text}");

    let report: Value = serde_json::from_str(&ok(
        &run_configured(
            &moto,
            &ws,
            &graph,
            &["access", "--principal", SP4, "--output", "json"],
        ),
        0,
    ))
    .unwrap();
    let roles: Vec<&str> = report["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["legacy-ci", "payments-deployer"], "{report:#}");
    let deployer = &report["roles"][1];
    assert_eq!(deployer["mapping"], "payments-deployers");
    assert!(
        deployer["functions"][0]
            .as_str()
            .is_some_and(|f| f.ends_with(":function:payments-api")),
        "{report:#}"
    );
    assert_eq!(report["roles"][0]["managed"], false);
    let md = ok(
        &run_configured(&moto, &ws, &graph, &["access", "--output", "markdown"]),
        0,
    );
    assert!(
        md.starts_with("| role |") && md.contains("**Access outside"),
        "{md}"
    );

    // export: the outside role as a mapping to its group, adopted; validate accepts it.
    let yaml = ok(&run_configured(&moto, &ws, &graph, &["export"]), 0);
    assert!(
        yaml.contains("kind: RoleMapping") && yaml.contains("adopt: true"),
        "{yaml}"
    );
    assert!(yaml.contains(CI_RUNNERS), "{yaml}");
    assert!(
        !yaml.contains("payments-deployer"),
        "only roles not managed: {yaml}"
    );
    ws.write("policies/exported.yaml", &yaml);
    ok(&run_configured(&moto, &ws, &graph, &["validate"]), 0);

    // The plan adopts it (the owner tag) and changes nothing of its access or policies.
    let plan: Value = serde_json::from_str(&ok(
        &run_configured(&moto, &ws, &graph, &["plan", "--output", "json"]),
        0,
    ))
    .unwrap();
    let changes: Vec<(String, String)> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["action"].as_str().unwrap_or_default().to_string(),
                c["resource"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(changes.len(), 1, "{plan:#}");
    assert_eq!(changes[0].0, "tag-role", "{plan:#}");
    assert!(
        changes[0].1.ends_with("role/trustsync/legacy-ci"),
        "{plan:#}"
    );
    apply(Via::moto(&moto).env(&graph.env(CLIENT_SECRET)), &ws, &[]);
    assert_eq!(moto.trusted_subs("legacy-ci"), [SP4]);
    // Adopted: no longer outside the repository.
    let text = ok(&run_configured(&moto, &ws, &graph, &["access"]), 0);
    assert!(!text.contains("Access outside"), "{text}");

    // check-token: a good token for SP4, and one refused for every reason at once.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let good = jwt(json!({
        "iss": format!("https://sts.windows.net/{TENANT}/"),
        "aud": "api://aws-federation", "sub": SP4, "oid": SP4, "exp": now + 600, "ver": "2.0",
    }));
    ws.write("good.jwt", &good);
    let out = ok(
        &run_configured(
            &moto,
            &ws,
            &graph,
            &["check-token", "good.jwt", "--role", "legacy-ci"],
        ),
        0,
    );
    assert!(
        out.contains("ACCEPTS") && out.contains("legacy-ci"),
        "{out}"
    );
    assert!(out.contains("signature is not checked"), "{out}");
    assert!(!out.contains(&good), "the token is never printed");

    let wrong_audience = jwt(json!({
        "iss": format!("https://sts.windows.net/{TENANT}/"),
        "aud": "api://some-other-app", "sub": SP4, "exp": now + 600,
    }));
    ws.write("aud.jwt", &wrong_audience);
    let out = ok(
        &run_configured(
            &moto,
            &ws,
            &graph,
            &["check-token", "aud.jwt", "--role", "legacy-ci"],
        ),
        1,
    );
    assert!(out.contains("REFUSES"), "{out}");
    assert!(
        out.contains(":aud allows api://aws-federation; the token is matched by its aud api://some-other-app"),
        "{out}"
    );
    assert!(out.contains("provider's client ids"), "{out}");

    let bad = jwt(json!({
        "iss": format!("https://login.microsoftonline.com/{TENANT}/v2.0"),
        "aud": "api://aws-federation", "azp": "11111111-2222-3333-4444-555555555555",
        "sub": "pairwise-user-sub", "oid": SP3, "exp": now - 60,
    }));
    let mut child = command(ws.path(), &moto.endpoint)
        .envs(graph.env(CLIENT_SECRET))
        .args(["check-token", "--output", "json"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(bad.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let verdicts: Value = serde_json::from_str(&ok(&out, 1)).unwrap();
    assert!(!stdout(&out).contains(&bad));
    for v in verdicts["roles"].as_array().unwrap() {
        assert_eq!(v["accepts"], false, "{v:#}");
        let reasons = v["reasons"].to_string();
        for why in ["issuer", "v2", "subject", "pairwise", "expired"] {
            assert!(reasons.contains(why), "{why}: {reasons}");
        }
    }
    // A token that is not a JWT is a clear error.
    ws.write("junk.jwt", "not-a-token");
    let out = run_configured(&moto, &ws, &graph, &["check-token", "junk.jwt"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a JWT"));
    let _ = SP1;
}

/// `access --people` through the binary against moto's IAM Identity Center and the local
/// Graph server: a permission set assigned to a group reaches its members, one assigned
/// to a person reaches them directly, a user with neither is counted, not listed; each
/// person is matched to the Entra user of the same principal name, and one disabled in
/// Entra, a guest, or one Entra does not know is called out.
#[test]
fn people_access_reads_identity_center_assignments_through_groups_and_directly() {
    use aws_sdk_ssoadmin::types::{PrincipalType, TargetType};
    let moto = Moto::start();
    let ws = Workspace::new();
    let admin = aws_sdk_ssoadmin::Client::new(moto.sdk());
    let store = aws_sdk_identitystore::Client::new(moto.sdk());
    let account = "123456789012";
    let (instance, store_id) = moto.block_on(async {
        let i = admin.list_instances().send().await.unwrap();
        let i = &i.instances()[0];
        (
            i.instance_arn().unwrap().to_string(),
            i.identity_store_id().unwrap().to_string(),
        )
    });
    let user = |name: &str, display: &str| {
        moto.block_on(
            store
                .create_user()
                .identity_store_id(&store_id)
                .user_name(name)
                .display_name(display)
                .name(
                    aws_sdk_identitystore::types::Name::builder()
                        .given_name(display.split(' ').next().unwrap())
                        .family_name(display.split(' ').nth(1).unwrap())
                        .build(),
                )
                .send(),
        )
        .unwrap()
        .user_id()
        .to_string()
    };
    let dana = user("dana@example.com", "Dana Ops");
    let sam = user(
        "sam_vendor.example#EXT#@example.onmicrosoft.com",
        "Sam Vendor",
    );
    let ex = user("ex@example.com", "Ex Employee");
    user("dee@example.com", "Dee Nothing");
    let group = moto
        .block_on(
            store
                .create_group()
                .identity_store_id(&store_id)
                .display_name("payments-engineers")
                .send(),
        )
        .unwrap()
        .group_id()
        .to_string();
    for member in [&dana, &sam] {
        moto.block_on(
            store
                .create_group_membership()
                .identity_store_id(&store_id)
                .group_id(&group)
                .member_id(aws_sdk_identitystore::types::MemberId::UserId(
                    member.clone(),
                ))
                .send(),
        )
        .unwrap();
    }
    let set = |name: &str, duration: &str| {
        moto.block_on(
            admin
                .create_permission_set()
                .instance_arn(&instance)
                .name(name)
                .session_duration(duration)
                .send(),
        )
        .unwrap()
        .permission_set()
        .unwrap()
        .permission_set_arn()
        .unwrap()
        .to_string()
    };
    let engineer = set("PaymentsEngineer", "PT4H");
    let reader = set("ReadOnly", "PT1H");
    let assign = |set: &str, to: PrincipalType, id: &str| {
        moto.block_on(
            admin
                .create_account_assignment()
                .instance_arn(&instance)
                .target_id(account)
                .target_type(TargetType::AwsAccount)
                .permission_set_arn(set)
                .principal_type(to)
                .principal_id(id)
                .send(),
        )
        .unwrap();
    };
    assign(&engineer, PrincipalType::Group, &group);
    assign(&reader, PrincipalType::User, &ex);

    // Dana's account is disabled in Entra.
    let graph = GraphServer::start(&ws.path().join("examples/tenant.json"), 999);
    let (status, body) = graph.admin(
        "PATCH",
        "/admin/users/c0ffee00-2222-4222-8222-000000000001",
        Some(json!({"accountEnabled": false})),
    );
    assert_eq!(status, 204, "{body}");
    let out = run_graph(
        &moto,
        &ws,
        &graph,
        &["access", "--people", "--output", "json"],
    );
    let report: Value = serde_json::from_str(&ok(&out, 0)).unwrap();
    assert_eq!(report["instanceArn"], instance.as_str());
    let people = report["people"].as_array().unwrap();
    let names: Vec<&str> = people
        .iter()
        .map(|p| p["userName"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "dana@example.com",
            "ex@example.com",
            "sam_vendor.example#EXT#@example.onmicrosoft.com"
        ]
    );
    assert_eq!(people[0]["entra"]["accountEnabled"], false, "{report:#}");
    assert!(people[1]["entra"].is_null(), "ex left Entra: {report:#}");
    assert_eq!(people[2]["entra"]["userType"], "Guest");
    assert_eq!(
        (
            report["disabledInEntra"].as_u64(),
            report["notInEntra"].as_u64()
        ),
        (Some(1), Some(1))
    );
    assert_eq!(
        people[0]["grants"],
        json!([{"account": account, "permissionSet": "PaymentsEngineer",
                "permissionSetArn": engineer, "sessionDuration": "PT4H",
                "throughGroup": "payments-engineers"}])
    );
    assert!(
        people[1]["grants"][0].get("throughGroup").is_none(),
        "{report:#}"
    );
    assert_eq!(report["withoutAccess"], 1, "dee");

    let out = run_graph(
        &moto,
        &ws,
        &graph,
        &["access", "--person", "DANA@example.com"],
    );
    let text = ok(&out, 0);
    assert!(
        text.contains("dana@example.com (Dana Ops)")
            && text.contains("! disabled in Entra, and still has this access in AWS")
            && text.contains(&format!(
                "{account}  PaymentsEngineer (PT4H), through group payments-engineers"
            )),
        "{text}"
    );
    assert!(!text.contains("ex@example.com"), "{text}");
    let out = run_graph(
        &moto,
        &ws,
        &graph,
        &["access", "--person", "ex@example.com"],
    );
    let text = ok(&out, 0);
    assert!(
        text.contains("! no Entra user has this user name")
            && text.contains(&format!("{account}  ReadOnly (PT1H), directly")),
        "{text}"
    );

    // A user name the identity store does not have: an error, not an empty report.
    let out = run_graph(
        &moto,
        &ws,
        &graph,
        &["access", "--person", "nobody@example.com"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(show(&out).contains("no user of the identity store has this user name"));

    // An instance that is not there: a clear error, nothing read as "nobody".
    ws.write(
        "trustsync.yaml",
        "identityCenter: {instanceArn: \"arn:aws:sso:::instance/ssoins-0000000000000000\"}\n",
    );
    let out = run_graph(
        &moto,
        &ws,
        &graph,
        &["--config", "trustsync.yaml", "access", "--people"],
    );
    assert_ne!(out.status.code(), Some(0));
    assert!(
        show(&out).contains("is not an instance of this account and region"),
        "{}",
        show(&out)
    );
}
