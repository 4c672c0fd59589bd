//! What one merged change may grant (issue 23): each guardrail of the config refuses its
//! violation in `validate` (file, line, field, rule), and `apply` changes nothing for the
//! violating documents but their revocations while the rest of the repository applies.

mod support;

use support::*;

const SP2: &str = "5e1f0a2b-1111-4111-8111-000000000002";
const PAYMENTS: &str = "a1b2c3d4-0001-4000-8000-000000000001";

const BAD: &str = "\
apiVersion: trustsync.dev/v1alpha1
kind: RoleMapping
metadata: {name: admin-grab}
spec:
  trustedServices: [lambda.amazonaws.com]
  role:
    name: admin-grab
    managedPolicies: [arn:aws:iam::aws:policy/AdministratorAccess]
---
apiVersion: trustsync.dev/v1alpha1
kind: RoleMapping
metadata: {name: star}
spec:
  trustedServices: [lambda.amazonaws.com]
  role:
    name: star
    inlinePolicies:
      all:
        Version: '2012-10-17'
        Statement:
          - {Effect: Allow, Action: s3:GetObject, Resource: '*'}
          - {Effect: Allow, Action: '*', Resource: '*'}
---
apiVersion: trustsync.dev/v1alpha1
kind: RoleMapping
metadata: {name: ec2-trust}
spec:
  trustedServices: [ec2.amazonaws.com]
  role: {name: ec2-trust}
---
apiVersion: trustsync.dev/v1alpha1
kind: IdentityProvider
metadata: {name: stranger}
spec:
  tenantId: 00000000-0000-4000-8000-0000000000ff
  audiences: [api://aws-federation]
";

#[test]
fn a_merged_change_past_the_guardrails_is_refused_and_only_its_revocations_apply() {
    let moto = Moto::start();
    moto.create_functions(&["payments-api"]);
    let ws = Workspace::new();
    apply(Via::moto(&moto), &ws, &[]);
    let sids_before = moto.lambda_sids("payments-api");

    // One merged pull request: new documents past the rules, the existing deployers'
    // mapping given AdministratorAccess, the API opened to an outside account and to S3
    // with no source; meanwhile a member leaves the deployers' group.
    ws.write("policies/bad.yaml", BAD);
    let payments = ws.read("policies/payments.yaml");
    let payments = payments
        .replacen(
            "managedPolicies: [arn:aws:iam::aws:policy/AWSLambda_ReadOnlyAccess]",
            "managedPolicies: [arn:aws:iam::aws:policy/AWSLambda_ReadOnlyAccess, arn:aws:iam::aws:policy/AdministratorAccess]",
            1,
        )
        .replacen(
            "    - roleMapping: payments-deployers\n",
            "    - roleMapping: payments-deployers\n    - principal: \"999999999999\"\n    - service: s3.amazonaws.com\n",
            1,
        );
    ws.write("policies/payments.yaml", &payments);
    ws.remove_tenant_member(PAYMENTS, SP2);

    let out = run_ok(&moto, &ws, &["validate"], 1);
    let text = show(&out);
    for (file_line, rule) in [
        ("policies/bad.yaml:8:", "guardrails.deniedManagedPolicies"),
        ("policies/bad.yaml:22:", "guardrails.noAdminStatements"),
        ("policies/bad.yaml:28:", "guardrails.trustedServices"),
        ("policies/bad.yaml:35:", "guardrails.allowedTenants"),
        (
            "policies/payments.yaml:16:",
            "guardrails.deniedManagedPolicies",
        ),
        (
            "policies/payments.yaml:",
            "guardrails.serviceInvokersNeedSource",
        ),
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with(file_line) && l.contains(rule)),
            "{file_line} {rule}\n{text}"
        );
    }
    // The outside account: validate does not know the managed accounts here (none listed
    // in accounts.targets or guardrails.invokerAccounts), so it fails closed.
    assert!(
        text.lines()
            .any(|l| l.starts_with("policies/payments.yaml:")
                && l.contains("guardrails.invokerAccounts")
                && l.contains("cannot be judged")),
        "{text}"
    );
    assert!(text.contains("7 guardrail violation(s)"), "{text}");

    // The controller enforces them even when CI did not run.
    let out = apply_unsettled(
        Via::moto(&moto),
        &ws,
        &[],
        1,
        Unsettled::Refused("the documents past the guardrails are refused every pass"),
    );
    let text = show(&out);
    assert!(text.contains("guardrail"), "{text}");
    assert!(
        text.contains("guardrails.invokerAccounts") && text.contains("999999999999"),
        "{text}"
    );
    assert_eq!(
        moto.trusted_subs("payments-deployer"),
        [
            "5e1f0a2b-1111-4111-8111-000000000001",
            "5e1f0a2b-1111-4111-8111-000000000004"
        ],
        "the blocked mapping's revocation still applies"
    );
    assert!(
        !moto
            .attached_policies("payments-deployer")
            .iter()
            .any(|p| p == "AdministratorAccess"),
        "nothing else changes for it"
    );
    for role in ["admin-grab", "star", "ec2-trust"] {
        assert!(!moto.role_exists(role), "{role} must not be created");
    }
    assert_eq!(
        moto.lambda_sids("payments-api"),
        sids_before,
        "no statement for the outside account or for S3 without a source"
    );
    let providers = moto
        .block_on(moto.iam().list_open_id_connect_providers().send())
        .unwrap();
    assert_eq!(
        providers.open_id_connect_provider_list().len(),
        1,
        "no provider for a stranger's tenant"
    );

    // A rule set to allow it lets it through: overridable one by one.
    ws.write(
        "trustsync.yaml",
        "audit:\n  path: audit.jsonl\ndirectory:\n  tenantFile: examples/tenant.json\nguardrails:\n  trustedServices: [lambda.amazonaws.com, ec2.amazonaws.com]\n",
    );
    let out = run_ok(&moto, &ws, &["validate"], 1);
    let text = show(&out);
    assert!(!text.contains("guardrails.trustedServices"), "{text}");
    assert!(text.contains("6 guardrail violation(s)"), "{text}");
}

/// Every escalation of issue 36, one document each, with its variants through wildcards,
/// case and `NotAction`; and the invokers that open a function to another account or to
/// more than invoking. (line marker, rule): the marker is a unique text on the line the
/// diagnostic must name.
const ESCALATIONS: &[(&str, &str, &str)] = &[
    ("put-role-policy", "{Effect: Allow, Action: iam:PutRolePolicy, Resource: '*'}", "noEscalationActions"),
    ("update-trust", "{Effect: Allow, Action: iam:UpdateAssumeRolePolicy, Resource: 'arn:aws:iam::*:role/*'}", "noEscalationActions"),
    ("assume-any", "{Effect: Allow, Action: sts:AssumeRole, Resource: '*'}", "noEscalationActions"),
    ("pass-and-create", "{Effect: Allow, Action: [iam:PassRole, lambda:CreateFunction], Resource: '*'}", "noEscalationActions"),
    ("put-wildcard", "{Effect: Allow, Action: 'iam:Put*', Resource: 'arn:aws:iam::123456789012:role/*'}", "noEscalationActions"),
    ("question-mark", "{Effect: Allow, Action: 'iam:?ut*', Resource: 'arn:aws:iam::123456789012:user/*'}", "noEscalationActions"),
    ("upper-case", "{Effect: Allow, Action: IAM:ATTACHROLEPOLICY, Resource: 'arn:aws:iam::123456789012:role/other'}", "noEscalationActions"),
    ("not-action", "{Effect: Allow, NotAction: ['s3:*', 'ec2:*'], Resource: 'arn:aws:iam::123456789012:role/*'}", "noEscalationActions"),
    ("everything", "{Effect: Allow, Action: '*', Resource: '*'}", "noAdminStatements"),
    ("access-key", "{Effect: Allow, Action: iam:CreateAccessKey, Resource: 'arn:aws:iam::123456789012:user/*'}", "noEscalationActions"),
    ("org-writes", "{Effect: Allow, Action: 'organizations:Attach*', Resource: 'arn:aws:organizations::*:policy/*'}", "noEscalationActions"),
    ("sso-writes", "{Effect: Allow, Action: sso:CreateAccountAssignment, Resource: '*'}", "noEscalationActions"),
];

fn escalation_documents() -> String {
    let mut text = String::new();
    for (name, statement, _) in ESCALATIONS {
        text.push_str(&format!(
            "---\napiVersion: trustsync.dev/v1alpha1\nkind: RoleMapping\nmetadata: {{name: {name}}}\nspec:\n  trustedServices: [lambda.amazonaws.com]\n  role:\n    name: {name}\n    inlinePolicies:\n      p:\n        Version: '2012-10-17'\n        Statement:\n          - {statement}\n"
        ));
    }
    text
}

const INVOKERS: &str = "\
apiVersion: trustsync.dev/v1alpha1
kind: FunctionAccess
metadata: {name: reports-api}
spec:
  function: reports-api
  invokers:
    - roleMapping: payments-deployers
    - {service: s3.amazonaws.com, sourceArn: 'arn:aws:s3:::reports-upload', sourceAccount: '999999999999'}
    - {roleMapping: payments-deployers, action: 'lambda:*'}
    - {principal: '210987654321'}
    - {service: sns.amazonaws.com, sourceArn: 'arn:aws:sns:us-east-1:888888888888:reports'}
";

/// What `validate` says of each: file, line and rule; the invoker accounts refused even
/// when `validate` cannot know the managed accounts (it fails closed), and judged against
/// them when it can.
#[test]
fn escalations_and_foreign_invokers_are_refused_with_file_line_and_rule() {
    let ws = Workspace::new();
    let escalations = escalation_documents();
    ws.write("policies/escalations.yaml", &escalations);
    ws.write("policies/invokers.yaml", INVOKERS);
    let out = run_at("http://127.0.0.1:9", &ws, &["validate"], 1);
    let text = show(&out);
    let line_of = |text: &str, marker: &str| {
        text.lines()
            .position(|l| l.contains(marker))
            .unwrap_or_else(|| panic!("{marker}"))
            + 1
    };
    let mut refused = 0;
    for (_, statement, rule) in ESCALATIONS {
        let at = format!(
            "policies/escalations.yaml:{}:",
            line_of(&escalations, statement)
        );
        if text
            .lines()
            .any(|l| l.starts_with(&at) && l.contains(&format!("(guardrails.{rule})")))
        {
            refused += 1;
        } else {
            println!("not refused: {statement}");
        }
    }
    let invokers = [
        (
            "sourceAccount: '999999999999'",
            "invokerAccounts",
            "sourceAccount",
        ),
        (
            "action: 'lambda:*'",
            "invokerActions",
            "spec.invokers[2].action",
        ),
        (
            "principal: '210987654321'",
            "invokerAccounts",
            "cannot be judged",
        ),
    ];
    for (marker, rule, what) in invokers {
        let at = format!("policies/invokers.yaml:{}:", line_of(INVOKERS, marker));
        if text.lines().any(|l| {
            l.starts_with(&at) && l.contains(&format!("(guardrails.{rule})")) && l.contains(what)
        }) {
            refused += 1;
        } else {
            println!("not refused: {marker}");
        }
    }
    let cases = ESCALATIONS.len() + invokers.len();
    println!(
        "independent checks: {refused} of {cases} escalation and invoker cases refused by validate"
    );
    assert_eq!(refused, cases, "{text}");
    assert!(
        text.contains(&format!("{cases} guardrail violation(s)")),
        "one violation each, all in one run: {text}"
    );
    // The same-account principal and source pass once the accounts are known.
    ws.write(
        "trustsync.yaml",
        "audit:\n  path: audit.jsonl\ndirectory:\n  tenantFile: examples/tenant.json\nguardrails:\n  invokerAccounts: ['123456789012', '210987654321', '999999999999']\n",
    );
    let out = run_at("http://127.0.0.1:9", &ws, &["validate"], 1);
    let text = show(&out);
    // Known accounts: the SNS topic of an account outside them is refused now (a source ARN
    // is judged once the accounts are known), the rest of the invokers pass.
    assert!(
        text.lines()
            .filter(|l| l.contains("guardrails.invokerAccounts"))
            .all(|l| l.contains("sourceArn `arn:aws:sns:us-east-1:88")),
        "{text}"
    );
    assert!(
        text.contains(&format!("{} guardrail violation(s)", ESCALATIONS.len() + 2)),
        "{text}"
    );
}

/// A merged link to a secret outside the repository (issue 36): `validate` refuses it by
/// name and never quotes it, and the controller, which takes the new files in while it
/// runs, keeps its last good policies and shows no part of the secret in `/status`, its
/// logs or its stdout.
#[test]
fn a_linked_secret_never_reaches_any_output() {
    const SECRET: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIOnly4TheController0Knows\n-----END PRIVATE KEY-----\n";
    let moto = Moto::start();
    moto.create_functions(&["payments-api"]);
    let ws = Workspace::new();
    ws.write(
        "trustsync.yaml",
        "audit: {path: audit.jsonl}\ndirectory: {tenantFile: examples/tenant.json}\nrun: {intervalSeconds: 3600, directoryPollSeconds: 1, policyPollSeconds: 1}\n",
    );
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("token"), SECRET).unwrap();
    let leaked = |text: &str| text.contains("PRIVATE KEY") || text.contains("Only4TheController");

    let daemon = support::daemon::Daemon::spawn(&moto.endpoint, Vec::new(), &ws);
    daemon.wait_ready();
    std::os::unix::fs::symlink(
        outside.path().join("token"),
        ws.path().join("policies/zz.yaml"),
    )
    .unwrap();
    let out = run_ok(&moto, &ws, &["validate"], 1);
    let text = show(&out);
    assert!(
        text.contains("zz.yaml") && text.contains("refused"),
        "{text}"
    );
    assert!(!leaked(&text), "{text}");

    wait_for(
        std::time::Duration::from_secs(20),
        "the controller to refuse the new files",
        || daemon.status()["policy"]["error"].is_string(),
    );
    let status = daemon.get("/status").1;
    assert!(status.contains("zz.yaml"), "{status}");
    assert!(!leaked(&status), "{status}");
    assert!(!leaked(&daemon.get("/readyz").1));
    assert!(!leaked(&daemon.get("/metrics").1));
    drop(daemon);
    for file in ["run.log", "run.out", "audit.jsonl"] {
        let text = std::fs::read_to_string(ws.path().join(file)).unwrap_or_default();
        assert!(!leaked(&text), "{file}: {text}");
    }
}
