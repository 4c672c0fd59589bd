use super::*;
use crate::sources::policy::load_text;
use std::path::Path;

fn problems(text: &str) -> Vec<Diagnostic> {
    let mut set = PolicySet::default();
    let mut diags = Vec::new();
    load_text(Path::new("t.yaml"), text, &mut set, &mut diags);
    assert!(diags.is_empty(), "load failed: {diags:?}");
    validate(&set, &Limits::default())
}

const HEAD: &str = "apiVersion: trustsync.dev/v1alpha1\n";

fn provider(name: &str, tenant: &str) -> String {
    format!("{HEAD}kind: IdentityProvider\nmetadata: {{name: {name}}}\nspec:\n  tenantId: {tenant}\n  audiences: [api://aws]\n---\n")
}

#[test]
fn reports_every_problem_at_once_with_fields() {
    let text = format!(
        "{}{HEAD}kind: RoleMapping\nmetadata: {{name: a}}\nspec:\n  provider: missing\n  group: {{id: not-a-guid}}\n  role:\n    name: \"bad name\"\n    path: /elsewhere/\n    maxSessionDuration: 60\n    permissionsBoundary: arn:aws:s3:::bucket\n    inlinePolicies:\n      p: {{Version: \"2012-10-17\", Statement: [{{Effect: Allow, Action: x, Resource: \"*\"}}]}}\n",
        provider("entra", "00000000-0000-0000-0000-000000000001")
    );
    let d = problems(&text);
    let fields: Vec<&str> = d.iter().map(|d| d.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "spec.provider",
            "spec.group.id",
            "spec.role.name",
            "spec.role.path",
            "spec.role.maxSessionDuration",
            "spec.role.permissionsBoundary",
            "spec.role.inlinePolicies.p.Statement[0].Action",
        ],
        "{d:#?}"
    );
    assert_eq!(d[0].line, 12);
    assert_eq!(d[6].line, 20);
}

#[test]
fn duplicate_names_and_claimed_roles() {
    let rm = |name: &str, role: &str| {
        format!("{HEAD}kind: RoleMapping\nmetadata: {{name: {name}}}\nspec:\n  trustedServices: [lambda.amazonaws.com]\n  role: {{name: {role}}}\n---\n")
    };
    let d = problems(&format!(
        "{}{}{}",
        rm("a", "r1"),
        rm("a", "r2"),
        rm("b", "R1")
    ));
    let msgs: Vec<String> = d.iter().map(|d| d.message.clone()).collect();
    assert_eq!(d.len(), 2, "{msgs:?}");
    assert!(msgs[0].contains("duplicate name `a`; first defined at t.yaml:3"));
    assert!(msgs[1].contains("role `R1` is already claimed by RoleMapping `a`"));
}

#[test]
fn function_access_references_and_arns() {
    let text = format!(
        "{HEAD}kind: FunctionAccess\nmetadata: {{name: f}}\nspec:\n  function: \"not a name\"\n  executionRole: {{roleMapping: nope}}\n  invokers:\n    - {{roleMapping: ghost}}\n    - {{service: events.amazonaws.com, sourceArn: nope}}\n    - {{principal: arn:aws:iam::123:role/x}}\n    - {{service: sqs.amazonaws.com, principal: arn:aws:iam::123456789012:root}}\n"
    );
    let d = problems(&text);
    let fields: Vec<&str> = d.iter().map(|d| d.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "spec.function",
            "spec.executionRole.roleMapping",
            "spec.invokers[0].roleMapping",
            "spec.invokers[1].sourceArn",
            "spec.invokers[2].principal",
            "spec.invokers[3]",
        ],
        "{d:#?}"
    );
}

#[test]
fn oversize_inline_policies_are_reported_with_numbers() {
    let statements: Vec<String> = (0..120)
        .map(|i| format!("{{Effect: Allow, Action: \"s3:GetObject\", Resource: \"arn:aws:s3:::bucket-number-{i:04}/*\"}}"))
        .collect();
    let text = format!(
        "{HEAD}kind: RoleMapping\nmetadata: {{name: big}}\nspec:\n  trustedServices: [lambda.amazonaws.com]\n  role:\n    name: big\n    inlinePolicies:\n      p: {{Version: \"2012-10-17\", Statement: [{}]}}\n",
        statements.join(", ")
    );
    let d = problems(&text);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].field, "spec.role.inlinePolicies");
    assert!(
        d[0].message.contains("IAM allows 10240 per role"),
        "{}",
        d[0]
    );
}

#[test]
fn arn_helpers() {
    assert!(is_managed_policy_arn(
        "arn:aws:iam::aws:policy/ReadOnlyAccess"
    ));
    assert!(is_managed_policy_arn(
        "arn:aws:iam::123456789012:policy/x/y"
    ));
    assert!(!is_managed_policy_arn("arn:aws:iam::123:policy/x"));
    assert!(is_role_arn("arn:aws:iam::123456789012:role/path/name"));
    assert!(!is_role_arn("arn:aws:iam::123456789012:user/name"));
    assert!(is_function_ref(
        "arn:aws:lambda:eu-west-1:123456789012:function:f"
    ));
    assert_eq!(
        function_name("arn:aws:lambda:eu-west-1:123456789012:function:f:live"),
        "f"
    );
    assert!(is_guid("0000000a-0000-0000-0000-000000000001"));
    assert!(!is_guid("0000000a-0000-0000-0000-00000000001"));
}

#[test]
fn access_assignments_are_checked_against_identity_center_rules_with_fields() {
    let text = format!(
        "{HEAD}kind: AccessAssignment\nmetadata: {{name: people}}\nspec:\n  group: {{id: not-a-guid}}\n  permissionSet:\n    name: \"way too long a permission set name!\"\n    sessionDuration: PT13H\n    managedPolicies: [arn:aws:iam::123456789012:policy/mine]\n    customerManagedPolicies: [{{name: ok, path: nope}}]\n    inlinePolicy: {{Version: \"2012-10-17\", Statement: [{{Effect: Allow, Action: x, Resource: \"*\"}}]}}\n  accounts: {{ids: [\"12\"]}}\n---\n{HEAD}kind: AccessAssignment\nmetadata: {{name: again}}\nspec:\n  group: {{displayName: g}}\n  permissionSet: {{name: \"WAY too long a permission set name!\"}}\n"
    );
    let d = problems(&text);
    let fields: Vec<(&str, usize)> = d.iter().map(|d| (d.field.as_str(), d.line)).collect();
    assert_eq!(
        fields,
        [
            ("spec.group.id", 5),
            ("spec.permissionSet.name", 7),
            ("spec.permissionSet.sessionDuration", 8),
            ("spec.permissionSet.managedPolicies[0]", 9),
            ("spec.permissionSet.customerManagedPolicies[0].path", 10),
            ("spec.permissionSet.inlinePolicy.Statement[0].Action", 11),
            ("spec.accounts.ids[0]", 12),
            ("spec.permissionSet.name", 19),
            ("spec.permissionSet.name", 19),
        ],
        "{d:#?}"
    );
    assert!(d[7].message.contains("1 to 32"));
    assert!(d.iter().any(|d| d
        .message
        .contains("already written by AccessAssignment `people`")));
}

#[test]
fn an_access_assignment_may_not_take_a_role_mappings_name() {
    let text = format!(
        "{HEAD}kind: RoleMapping\nmetadata: {{name: ops}}\nspec:\n  trustedServices: [lambda.amazonaws.com]\n  role: {{name: r}}\n---\n{HEAD}kind: AccessAssignment\nmetadata: {{name: ops}}\nspec:\n  group: {{displayName: g}}\n  permissionSet: {{name: Ops}}\n"
    );
    let d = problems(&text);
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!((d[0].field.as_str(), d[0].line), ("metadata.name", 10));
}
