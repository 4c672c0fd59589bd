//! The audit log as evidence against its own volume (issue 36, point 3) and a signing key
//! that never enters the pod (issue 35, point 5), through the binary against moto.
//!
//! The attacker here can write the audit volume (they can append correctly chained lines,
//! edit lines, leave files next to the log), not read the controller's signing key nor the
//! auditor's private key.

mod support;

use support::*;

const SP2: &str = "5e1f0a2b-1111-4111-8111-000000000002";
const PAYMENTS: &str = "a1b2c3d4-0001-4000-8000-000000000001";

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

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// A signed log, one apply, then a line in the middle edited: the next apply rotates.
fn rotated(config_extra: &str) -> (Moto, Workspace) {
    let moto = Moto::start();
    moto.create_functions(&["payments-api"]);
    let ws = Workspace::new();
    write_keys(&ws, 42, "signing-key.pem", "audit.pub");
    write_keys(&ws, 77, "auditor-key.pem", "auditor.pub");
    write_keys(&ws, 78, "mallory-key.pem", "mallory.pub");
    ws.write(
        "trustsync.yaml",
        &format!("audit: {{path: audit.jsonl, signingKeyFile: signing-key.pem{config_extra}}}\ndirectory: {{tenantFile: examples/tenant.json}}\n"),
    );
    apply(Via::moto(&moto), &ws, &[]);
    let text = ws.read("audit.jsonl");
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    lines[2] = lines[2].replacen("\"time\":\"", "\"time\":\"1", 1);
    ws.write("audit.jsonl", &(lines.join("\n") + "\n"));
    ws.remove_tenant_member(PAYMENTS, SP2);
    apply(Via::moto(&moto), &ws, &[]);
    (moto, ws)
}

/// The hash of a line as the log chains it.
fn hash(line: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(line.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Appends `record` to the log with a correct `prevHash`, as whoever can write the volume.
fn append_chained(ws: &Workspace, mut record: serde_json::Value) {
    let text = ws.read("audit.jsonl");
    let last = text.lines().last().unwrap();
    record["prevHash"] = serde_json::json!(hash(last));
    ws.write(
        "audit.jsonl",
        &format!("{text}{}\n", serde_json::to_string(&record).unwrap()),
    );
}

const VERIFY: [&str; 5] = [
    "audit",
    "verify",
    "audit.jsonl",
    "--public-key",
    "audit.pub",
];

#[test]
fn a_hand_written_acknowledgement_leaves_verify_failing_and_only_an_auditors_key_clears_it() {
    let (moto, ws) = rotated(", auditorPublicKeyFiles: [auditor.pub]");
    let out = run_ok(&moto, &ws, &VERIFY, 1);
    assert!(stderr(&out).contains("audit acknowledge"), "{}", show(&out));

    // An acknowledgement written by hand, correctly chained, naming the right rotation.
    let first: serde_json::Value =
        serde_json::from_str(ws.read("audit.jsonl").lines().next().unwrap()).unwrap();
    assert_eq!(first["type"], "rotated");
    append_chained(
        &ws,
        serde_json::json!({
            "time": "2026-12-04T03:00:00Z",
            "type": "acknowledged",
            "by": "mallory",
            "previousSegment": first["previousSegment"],
            "previousLastHash": first["previousLastHash"],
        }),
    );
    let out = run_ok(&moto, &ws, &VERIFY, 1);
    let err = stderr(&out);
    assert!(err.contains("the acknowledgement by mallory"), "{err}");
    assert!(err.contains("not signed"), "{err}");
    let plan = plan_json(&moto, &ws, 0);
    assert!(
        plan["notices"]
            .to_string()
            .contains("audit-segment-rotated"),
        "{plan:#}"
    );

    // Signed with a key of the attacker's own: refused, and nothing is written.
    let before = ws.read("audit.jsonl");
    let out = acknowledge(&moto, &ws, ("mallory", "mallory-key.pem", None), 1);
    assert!(
        stderr(&out).contains("not among the auditor keys"),
        "{}",
        show(&out)
    );
    // Nor the controller's own key (it is not an auditor's).
    acknowledge(&moto, &ws, ("ctl", "signing-key.pem", None), 1);
    assert_eq!(ws.read("audit.jsonl"), before);

    // The auditor's key: acknowledged, verify passes, the plan's notice is gone.
    let out = acknowledge(
        &moto,
        &ws,
        (
            "alice@example.com",
            "auditor-key.pem",
            Some("line 3 edited by hand"),
        ),
        0,
    );
    assert!(
        stdout(&out).contains("acknowledged by alice@example.com"),
        "{}",
        show(&out)
    );
    let out = run_ok(&moto, &ws, &VERIFY, 0);
    assert!(stdout(&out).contains("previous segment"), "{}", show(&out));
    let plan = plan_json(&moto, &ws, 0);
    assert!(
        !plan["notices"]
            .to_string()
            .contains("audit-segment-rotated"),
        "{plan:#}"
    );
    // Judged without the auditor's key, the same file is still not acknowledged.
    let out = run_ok(
        &moto,
        &ws,
        &[
            "audit",
            "verify",
            "audit.jsonl",
            "--public-key",
            "audit.pub",
            "--auditor-key",
            "mallory.pub",
        ],
        1,
    );
    assert!(stderr(&out).contains("does not count"), "{}", show(&out));
}

#[test]
fn with_no_auditor_key_configured_no_acknowledgement_clears_the_alarm() {
    let (moto, ws) = rotated("");
    let out = acknowledge(&moto, &ws, ("alice", "auditor-key.pem", None), 1);
    assert!(
        stderr(&out).contains("no auditor key (audit.auditorPublicKeyFiles)"),
        "{}",
        show(&out)
    );
    let out = run_ok(&moto, &ws, &VERIFY, 1);
    assert!(
        stderr(&out).contains("no acknowledgement can clear this"),
        "{}",
        show(&out)
    );
}

/// Checkpoints published to the anchor after the break vouched for lines that changed:
/// `verify --anchor` fails, and an auditor's acknowledgement of the rotation does not make
/// it pass.
#[test]
fn checkpoints_published_after_a_break_fail_verify_anchor_whatever_is_acknowledged() {
    let moto = Moto::start();
    moto.create_functions(&["payments-api"]);
    moto.create_log_group("trustsync-audit");
    let ws = Workspace::new();
    write_keys(&ws, 42, "signing-key.pem", "audit.pub");
    write_keys(&ws, 77, "auditor-key.pem", "auditor.pub");
    ws.write(
        "trustsync.yaml",
        "audit: {path: audit.jsonl, signingKeyFile: signing-key.pem, checkpointLines: 5, auditorPublicKeyFiles: [auditor.pub], anchor: {logGroup: trustsync-audit, logStream: prod}}\ndirectory: {tenantFile: examples/tenant.json}\n",
    );
    apply(Via::moto(&moto), &ws, &[]);
    let anchored = [
        "audit",
        "verify",
        "audit.jsonl",
        "--public-key",
        "audit.pub",
        "--anchor",
    ];
    run_ok(&moto, &ws, &anchored, 0);
    // Line 4 edited: the checkpoints published for lines after it no longer match.
    let text = ws.read("audit.jsonl");
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    lines[3] = lines[3].replacen("\"time\":\"", "\"time\":\"1", 1);
    ws.write("audit.jsonl", &(lines.join("\n") + "\n"));
    ws.remove_tenant_member(PAYMENTS, SP2);
    apply(Via::moto(&moto), &ws, &[]);
    acknowledge(&moto, &ws, ("alice", "auditor-key.pem", None), 0);
    run_ok(&moto, &ws, &VERIFY, 0);
    let out = run_ok(&moto, &ws, &anchored, 1);
    let err = stderr(&out);
    assert!(
        err.contains("lines it vouched for were changed after it was published"),
        "{err}"
    );
    assert!(err.contains("no acknowledgement clears this"), "{err}");
}

/// An asymmetric KMS key (ECC_NIST_P256) in moto, its public half as PEM in the workspace.
fn kms_key(moto: &Moto, ws: &Workspace, pub_file: &str) -> String {
    let kms = aws_sdk_kms::Client::new(moto.sdk());
    let key = moto
        .block_on(
            kms.create_key()
                .key_spec(aws_sdk_kms::types::KeySpec::EccNistP256)
                .key_usage(aws_sdk_kms::types::KeyUsageType::SignVerify)
                .send(),
        )
        .unwrap();
    let arn = key.key_metadata().unwrap().arn().unwrap().to_string();
    let public = moto
        .block_on(kms.get_public_key().key_id(&arn).send())
        .unwrap();
    // What `aws kms get-public-key --output text --query PublicKey | base64 -d` gives:
    // DER SubjectPublicKeyInfo; as PEM, base64 between the armour lines.
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(public.public_key().unwrap());
    let body: Vec<String> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect();
    ws.write(
        pub_file,
        &format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            body.join("\n")
        ),
    );
    arn
}

#[test]
fn checkpoints_signed_by_kms_verify_with_its_public_key_and_find_a_tampered_line() {
    let moto = Moto::start();
    moto.create_functions(&["payments-api"]);
    moto.create_log_group("trustsync-audit");
    let ws = Workspace::new();
    let arn = kms_key(&moto, &ws, "kms.pub");
    ws.write(
        "trustsync.yaml",
        &format!("audit: {{path: audit.jsonl, kmsKeyId: \"{arn}\", publicKeyFile: kms.pub, anchor: {{logGroup: trustsync-audit, logStream: prod}}}}\ndirectory: {{tenantFile: examples/tenant.json}}\n"),
    );
    apply(Via::moto(&moto), &ws, &[]);
    let text = ws.read("audit.jsonl");
    let checkpoints: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["type"] == "checkpoint")
        .collect();
    assert!(!checkpoints.is_empty(), "{text}");
    assert!(checkpoints
        .iter()
        .all(|c| c["algorithm"] == "ECDSA_SHA_256"));
    assert!(!text.contains("BEGIN"), "no key material in the log");

    let verify = ["audit", "verify", "audit.jsonl", "--public-key", "kms.pub"];
    let out = run_ok(&moto, &ws, &verify, 0);
    assert!(
        stdout(&out).contains("signed checkpoint(s) verify"),
        "{}",
        show(&out)
    );
    let mut anchored = verify.to_vec();
    anchored.push("--anchor");
    run_ok(&moto, &ws, &anchored, 0);

    // A second pass reopens the log and verifies the KMS signatures first.
    ws.remove_tenant_member(PAYMENTS, SP2);
    apply(Via::moto(&moto), &ws, &[]);
    assert!(!ws.read("audit.jsonl").contains("\"type\":\"rotated\""));
    assert!(!ws.read("audit.jsonl").contains("\"type\":\"unvouched\""));
    run_ok(&moto, &ws, &verify, 0);

    // Any other key fails, and a line rewritten with every hash recomputed fails.
    write_keys(&ws, 42, "other.pem", "other.pub");
    let out = run_ok(
        &moto,
        &ws,
        &[
            "audit",
            "verify",
            "audit.jsonl",
            "--public-key",
            "other.pub",
        ],
        1,
    );
    assert!(stderr(&out).contains("does not verify"), "{}", show(&out));
    let text = ws.read("audit.jsonl");
    let mut prev = "0".repeat(64);
    let mut out_lines = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
        if i == 0 {
            v["time"] = serde_json::json!("2026-01-01T00:00:00Z");
        }
        v["prevHash"] = serde_json::json!(prev);
        let raw = serde_json::to_string(&v).unwrap();
        prev = hash(&raw);
        out_lines.push(raw);
    }
    ws.write("audit.jsonl", &(out_lines.join("\n") + "\n"));
    let out = run_ok(&moto, &ws, &verify, 1);
    assert!(stderr(&out).contains("rewritten"), "{}", show(&out));
}

#[test]
fn a_kms_key_that_is_not_the_configured_public_keys_is_refused_before_anything_is_written() {
    let moto = Moto::start();
    moto.create_functions(&["payments-api"]);
    let ws = Workspace::new();
    let arn = kms_key(&moto, &ws, "kms.pub");
    kms_key(&moto, &ws, "other-kms.pub");
    ws.write(
        "trustsync.yaml",
        &format!("audit: {{path: audit.jsonl, kmsKeyId: \"{arn}\", publicKeyFile: other-kms.pub}}\ndirectory: {{tenantFile: examples/tenant.json}}\n"),
    );
    let out = apply_unsettled(
        Via::moto(&moto),
        &ws,
        &[],
        1,
        Unsettled::Refused("the KMS key is not the configured public key: nothing is written"),
    );
    assert!(
        stderr(&out).contains("is not the public key of audit.kmsKeyId"),
        "{}",
        show(&out)
    );
    assert!(!moto.role_exists("payments-deployer"), "nothing applied");
    // A bare key id is not a key ARN: the config says so.
    ws.write(
        "trustsync.yaml",
        "audit: {path: audit.jsonl, kmsKeyId: 1234abcd-12ab-34cd-56ef-1234567890ab, publicKeyFile: kms.pub}\ndirectory: {tenantFile: examples/tenant.json}\n",
    );
    let out = run_ok(&moto, &ws, &["plan"], 1);
    assert!(
        stderr(&out).contains("audit.kmsKeyId") && stderr(&out).contains("not a KMS key ARN"),
        "{}",
        show(&out)
    );
}

/// The printed controller policy lets it sign with the configured KMS key and nothing
/// else in KMS.
#[test]
fn the_printed_policy_allows_kms_sign_on_the_configured_key_only() {
    let moto = Moto::start();
    let ws = Workspace::new();
    let arn = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    write_keys(&ws, 42, "unused.pem", "kms.pub");
    ws.write(
        "trustsync.yaml",
        &format!("audit: {{path: audit.jsonl, kmsKeyId: \"{arn}\", publicKeyFile: kms.pub}}\naws: {{region: us-east-1}}\npermissionsBoundaries: [trustsync-workload-boundary]\n"),
    );
    let out = run_ok(&moto, &ws, &["iam-policy"], 0);
    let policy: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let kms: Vec<&serde_json::Value> = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s.to_string().contains("kms:"))
        .collect();
    assert_eq!(kms.len(), 1, "{policy:#}");
    assert_eq!(kms[0]["Action"], "kms:Sign");
    assert_eq!(kms[0]["Resource"], arn);
    assert_eq!(kms[0]["Effect"], "Allow");
    // Without kmsKeyId: no KMS statement.
    ws.write(
        "trustsync.yaml",
        "audit: {path: audit.jsonl}\naws: {region: us-east-1}\npermissionsBoundaries: [trustsync-workload-boundary]\n",
    );
    let out = run_ok(&moto, &ws, &["iam-policy"], 0);
    assert!(!stdout(&out).contains("kms:Sign"), "{}", show(&out));
}
