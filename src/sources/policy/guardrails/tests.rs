use super::grants::{grant_violations, is_admin_action};
use super::*;

#[test]
fn admin_actions_are_wildcards_over_everything_or_iam_sts_organizations() {
    for a in [
        "*",
        "*:*",
        "iam:*",
        "IAM:Put*",
        "sts:Assume*",
        "organizations:*",
        "*:Get*",
    ] {
        assert!(is_admin_action(a), "{a}");
    }
    for a in ["s3:GetObject", "s3:*", "iam:PassRole", "lambda:Invoke*"] {
        assert!(!is_admin_action(a), "{a}");
    }
    assert_eq!(
        account_of("arn:aws:iam::111122223333:role/x"),
        Some("111122223333")
    );
    assert_eq!(account_of("111122223333"), Some("111122223333"));
    assert_eq!(account_of("*"), None);
}

/// The role's inline statements, as YAML (flow style), judged as `deployer`'s.
fn refused(statements: &[&str], g: &Guardrails) -> Vec<(&'static str, String, String)> {
    let docs: Vec<Value> = statements
        .iter()
        .map(|st| {
            let st: Value = serde_yaml::from_str(st).unwrap();
            serde_json::json!({"Version": "2012-10-17", "Statement": [st]})
        })
        .collect();
    let inline: Vec<(String, &Value)> = docs
        .iter()
        .enumerate()
        .map(|(i, d)| (format!("p{i}"), d))
        .collect();
    grant_violations(g, ("m", &[]), &inline, Some("deployer"))
}

/// Every escalation the issue lists, and its variants through wildcards, case and
/// `NotAction`: each refused by the escalation rule alone (the admin rule off), and
/// what stays within the role, or grants no escalation, passes.
#[test]
fn escalation_actions_are_refused_by_meaning_not_spelling() {
    let g = Guardrails {
        no_admin_statements: false,
        ..Guardrails::default()
    };
    let escalations: &[&[&str]] = &[
        &["{Effect: Allow, Action: iam:PutRolePolicy, Resource: '*'}"],
        &["{Effect: Allow, Action: iam:UpdateAssumeRolePolicy, Resource: 'arn:aws:iam::*:role/*'}"],
        &["{Effect: Allow, Action: sts:AssumeRole, Resource: '*'}"],
        &["{Effect: Allow, Action: [iam:PassRole, lambda:CreateFunction], Resource: '*'}"],
        // The pair across two policies of the role.
        &[
            "{Effect: Allow, Action: iam:PassRole, Resource: 'arn:aws:iam::111122223333:role/*'}",
            "{Effect: Allow, Action: lambda:Create*, Resource: '*'}",
        ],
        &["{Effect: Allow, Action: 'iam:*', Resource: '*'}"],
        &["{Effect: Allow, Action: 'iam:Put*', Resource: 'arn:aws:iam::111122223333:role/*'}"],
        &["{Effect: Allow, Action: 'iam:?ut*', Resource: 'arn:aws:iam::111122223333:role/*'}"],
        &["{Effect: Allow, Action: '*', Resource: 'arn:aws:iam::111122223333:user/*'}"],
        &["{Effect: Allow, Action: IAM:PUTROLEPOLICY, Resource: 'arn:aws:iam::111122223333:role/other'}"],
        &["{Effect: Allow, Action: iam:attachrolepolicy, Resource: '*'}"],
        &["{Effect: Allow, Action: iam:CreatePolicyVersion, Resource: '*'}"],
        &["{Effect: Allow, Action: iam:SetDefaultPolicyVersion, Resource: '*'}"],
        &["{Effect: Allow, Action: iam:CreateAccessKey, Resource: '*'}"],
        &["{Effect: Allow, Action: iam:CreateLoginProfile, Resource: '*'}"],
        &["{Effect: Allow, Action: iam:AddUserToGroup, Resource: '*'}"],
        &["{Effect: Allow, Action: iam:DeleteRolePermissionsBoundary, Resource: '*'}"],
        &["{Effect: Allow, Action: 'organizations:*', Resource: '*'}"],
        &["{Effect: Allow, Action: 'sso:*', Resource: '*'}"],
        &["{Effect: Allow, Action: identitystore:CreateGroupMembership, Resource: '*'}"],
        // NotAction: everything but S3, on IAM roles.
        &["{Effect: Allow, NotAction: 's3:*', Resource: 'arn:aws:iam::111122223333:role/*'}"],
        // NotAction that leaves one escalation out of its list.
        &["{Effect: Allow, NotAction: ['iam:Put*', 'iam:Attach*', 'iam:Create*', 'iam:Delete*', 'iam:Update*', 'iam:Set*', 'iam:Add*', 'iam:PassRole', 'sts:*', 'organizations:*', 'sso:*', 'identitystore:*'], Resource: '*'}"],
        &["{Effect: Allow, Action: iam:PutRolePolicy, NotResource: 'arn:aws:iam::111122223333:role/trustsync/deployer'}"],
        // The role's own ARN, and another beside it.
        &["{Effect: Allow, Action: iam:PutRolePolicy, Resource: ['arn:aws:iam::111122223333:role/trustsync/deployer', 'arn:aws:iam::111122223333:role/trustsync/admin']}"],
        &["{Effect: Allow, Action: iam:PutRolePolicy, Resource: 'arn:aws:iam::111122223333:role/trustsync/deployer*'}"],
    ];
    let mut caught = 0;
    for (n, case) in escalations.iter().enumerate() {
        let v = refused(case, &g);
        if v.iter().any(|(rule, _, _)| *rule == "noEscalationActions") {
            caught += 1;
        } else {
            println!("not refused: case {n}: {case:?}");
        }
    }
    println!(
        "independent checks: {caught} of {} escalation cases refused",
        escalations.len()
    );
    assert_eq!(caught, escalations.len());

    let fine: &[&[&str]] = &[
        &["{Effect: Allow, Action: [s3:GetObject, 's3:List*'], Resource: '*'}"],
        // Its own ARN, in any account.
        &["{Effect: Allow, Action: [iam:PutRolePolicy, iam:UpdateAssumeRolePolicy], Resource: 'arn:aws:iam::*:role/trustsync/deployer'}"],
        // One named role to assume or pass (a reviewed decision).
        &["{Effect: Allow, Action: sts:AssumeRole, Resource: 'arn:aws:iam::111122223333:role/reporting-reader'}"],
        &["{Effect: Allow, Action: [iam:PassRole, lambda:CreateFunction, lambda:UpdateFunctionConfiguration], Resource: ['arn:aws:iam::111122223333:role/payments-runtime', 'arn:aws:lambda:*:111122223333:function:payments-*']}"],
        // PassRole on any role, but no service to pass it to.
        &["{Effect: Allow, Action: iam:PassRole, Resource: '*'}"],
        // Everything, but only on a bucket: no IAM write reaches it.
        &["{Effect: Allow, Action: '*', Resource: 'arn:aws:s3:::payments-data/*'}"],
        // Read-only IAM.
        &["{Effect: Allow, Action: ['iam:Get*', 'iam:List*'], Resource: '*'}"],
        // An escalation taken away by an unconditional Deny.
        &[
            "{Effect: Allow, Action: 'iam:Put*', Resource: 'arn:aws:iam::111122223333:role/*'}",
            "{Effect: Deny, Action: 'iam:*', Resource: '*'}",
        ],
        &["{Effect: Deny, Action: '*', Resource: '*'}"],
    ];
    for case in fine {
        let v = refused(case, &g);
        assert!(v.is_empty(), "{case:?}: {v:?}");
    }
    // One escalation allowed by the config.
    let allowing = Guardrails {
        allowed_escalation_actions: vec!["iam:CreateAccessKey".into()],
        ..g.clone()
    };
    assert!(refused(
        &["{Effect: Allow, Action: iam:CreateAccessKey, Resource: '*'}"],
        &allowing
    )
    .is_empty());
    // The rule off.
    let off = Guardrails {
        no_escalation_actions: false,
        ..g.clone()
    };
    assert!(refused(
        &["{Effect: Allow, Action: iam:PutRolePolicy, Resource: '*'}"],
        &off
    )
    .is_empty());
}

#[test]
fn action_patterns_match_as_iam_does() {
    assert!(action_matches("iam:*", "iam:PutRolePolicy"));
    assert!(action_matches("IAM:put*POLICY", "iam:PutRolePolicy"));
    assert!(action_matches("iam:?ut*", "iam:PutUserPolicy"));
    assert!(action_matches("*", "sts:AssumeRole"));
    assert!(action_matches("*:*Role", "sts:AssumeRole"));
    assert!(!action_matches("iam:Put", "iam:PutRolePolicy"));
    assert!(!action_matches("iam:?ut", "iam:PutRolePolicy"));
    assert!(!action_matches("s3:*", "iam:PutRolePolicy"));
}
