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
    run_ok(&moto, &ws, &["apply", "--auto-approve"], 0);
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
    // The outside account is known to be outside only with the managed accounts: listed in
    // the config (accounts.targets or guardrails.invokerAccounts), or read by a plan.
    assert!(text.contains("6 guardrail violation(s)"), "{text}");

    // The controller enforces them even when CI did not run.
    let out = run_ok(&moto, &ws, &["apply", "--auto-approve"], 1);
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
    assert!(text.contains("5 guardrail violation(s)"), "{text}");
}
