//! Snapshots of the rendered plans (`tests/output/`): a plan with a revocation, a grant, a
//! held revocation, a problem and a notice, in text and in Markdown. Set
//! `UPDATE_SNAPSHOTS=1` to rewrite them after an intended change, and review the diff.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::json;
use trustsync::checks::{self, Context};
use trustsync::config::Safety;
use trustsync::plan::{
    Action, Change, Effect, IamAction, Notice, NoticeKind, Plan, Problem, ProblemKind, Removal,
};
use trustsync::render::{render, Format};

fn trust(subs: &[&str]) -> serde_json::Value {
    json!({"Version": "2012-10-17", "Statement": [{"Sid": "EntraGroupMembers", "Effect": "Allow",
        "Principal": {"Federated": "arn:aws:iam::123456789012:oidc-provider/login.microsoftonline.com/t/v2.0"},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {"login.microsoftonline.com/t/v2.0:sub": subs}}}]})
}

fn change(action: Action, mapping: &str, reason: &str) -> Change {
    let resource = format!("arn:aws:iam::123456789012:role/trustsync/{mapping}");
    Change::new(action, resource, Some(mapping), reason)
}

fn sample() -> Plan {
    let mut revoke = change(
        Action::Iam(IamAction::RevokeTrust {
            role_name: "deployer".into(),
            trust_policy: trust(&["sp-a"]),
            baseline: Some("2@1800000000".into()),
        }),
        "deployer",
        "group `sg-deployers` membership changed: 1 added, 1 removed; revoking first",
    );
    revoke.before = Some(trust(&["sp-a", "sp-b"]));
    revoke.after = Some(trust(&["sp-a"]));
    revoke.members_removed = vec!["sp-b".into()];
    revoke.removal = Some(Removal {
        baseline: 2,
        after: 1,
        deletes_role: false,
    });
    let mut grant = change(
        Action::Iam(IamAction::UpdateTrustPolicy {
            role_name: "deployer".into(),
            trust_policy: trust(&["sp-a", "sp-c"]),
        }),
        "deployer",
        "group `sg-deployers` membership changed: 1 added, 1 removed",
    );
    grant.before = Some(trust(&["sp-a"]));
    grant.after = Some(trust(&["sp-a", "sp-c"]));
    grant.members_added = vec!["sp-c".into()];
    let mut emptied = change(
        Action::Iam(IamAction::RevokeTrust {
            role_name: "reader".into(),
            trust_policy: trust(&[]),
            baseline: None,
        }),
        "reader",
        "the group that displayName=\"sg-readers\" was pinned to no longer exists: revoking 4 principal(s) no longer in the group, adding none",
    );
    emptied.members_removed = vec!["sp-1".into(), "sp-2".into(), "sp-3".into(), "sp-4".into()];
    emptied.removal = Some(Removal {
        baseline: 4,
        after: 0,
        deletes_role: false,
    });
    let mut plan = Plan {
        changes: vec![revoke, emptied, grant],
        problems: vec![Problem {
            kind: ProblemKind::MappingError,
            account: None,
            mapping: Some("reader".into()),
            resource: "reader".into(),
            message: "the group a1 that displayName=\"sg-readers\" was pinned to no longer exists; members who left the group still lose access, nobody is added".into(),
        }],
        notices: vec![Notice {
            kind: NoticeKind::GroupRenamed,
            account: None,
            resource: "arn:aws:iam::123456789012:role/trustsync/deployer".into(),
            message: "the group this mapping is pinned to (g1) is now named `sg-deploy`; the mapping still follows it by id. Update the selector, or select the group by id".into(),
        }],
        trusted_baseline: 6,
        owned_roles: 2,
        ..Plan::default()
    };
    plan.summarize();
    checks::check(
        plan,
        &Context {
            safety: &Safety::default(),
            deferred: &|_| None,
            released: &BTreeSet::new(),
        },
    )
}

fn snapshot(name: &str, got: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/output")
        .join(name);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_SNAPSHOTS=1)", path.display()));
    assert!(
        want == got,
        "{} differs from the rendering (UPDATE_SNAPSHOTS=1 rewrites it):\n--- want\n{want}\n--- got\n{got}",
        path.display()
    );
}

#[test]
fn the_text_plan_reads_as_it_always_did() {
    snapshot("plan.txt", &render(&sample(), Format::Text, false));
}

#[test]
fn the_markdown_plan_reads_as_it_always_did() {
    snapshot("plan.md", &render(&sample(), Format::Markdown, false));
}

#[test]
fn the_sample_holds_one_revocation_and_lets_the_rest_through() {
    let p = sample();
    assert_eq!(p.held.len(), 1);
    assert_eq!(p.held[0].change.mapping.as_deref(), Some("reader"));
    assert!(p.changes.iter().any(|c| c.effect == Effect::Remove));
}
