//! Table-driven tests of trust planning on hand-built desired and observed values.

use super::*;
use crate::config::Config;
use crate::desired::{DesiredRole, Federated, GroupInfo, TrustParts};
use crate::observed::trusted_subjects;
use crate::sources::directory::{Member, MemberKind};

const NOW: u64 = 1_800_000_000;

fn parts() -> TrustParts {
    TrustParts {
        federated: Some(Federated {
            provider_arn:
                "arn:aws:iam::123456789012:oidc-provider/login.microsoftonline.com/t/v2.0".into(),
            issuer: "login.microsoftonline.com/t/v2.0".into(),
            audience_key: "aud".into(),
            audiences: vec!["api://aws".into()],
        }),
        services: BTreeSet::new(),
    }
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

fn owner() -> (String, String) {
    let o = Config::default().owner_tag;
    (o.key, o.value)
}

fn desired(members: &[&str], blocked: Option<&str>, may_keep: Option<&[&str]>) -> DesiredRole {
    let (k, v) = owner();
    DesiredRole {
        mapping: "m".into(),
        name: "r".into(),
        path: "/trustsync/".into(),
        arn: "arn:aws:iam::123456789012:role/trustsync/r".into(),
        trust: parts().document(&set(members), &BTreeSet::new()),
        trust_parts: parts(),
        blocked: blocked.map(String::from),
        may_keep: Some(set(may_keep.unwrap_or(members))),
        description: None,
        max_session_duration: 3600,
        permissions_boundary: None,
        managed_policies: BTreeSet::new(),
        inline_policies: BTreeMap::new(),
        tags: BTreeMap::from([(k, v)]),
        adopt: true,
        group: Some(GroupInfo {
            id: "g".into(),
            display_name: "g".into(),
            principals: members
                .iter()
                .map(|id| Member {
                    id: (*id).into(),
                    kind: MemberKind::ServicePrincipal,
                    display_name: None,
                    owner_tenant: None,
                })
                .collect(),
            skipped: vec![],
            renamed_to: None,
            foreign: vec![],
            namesakes: vec![],
        }),
    }
}

fn observed(trusted: &[&str], tags: &[(&str, &str)]) -> Observed {
    let mut o = Observed::default();
    o.roles.insert(
        "r".into(),
        ObservedRole {
            name: "r".into(),
            path: "/trustsync/".into(),
            arn: "arn:aws:iam::123456789012:role/trustsync/r".into(),
            trust: parts().document(&set(trusted), &BTreeSet::new()),
            description: None,
            max_session_duration: Some(3600),
            permissions_boundary: None,
            inline_policies: BTreeMap::new(),
            managed_policies: BTreeSet::new(),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        },
    );
    o
}

fn settings() -> Settings {
    Settings::new(
        &Config {
            allow_unbounded_roles: true,
            ..Config::default()
        },
        NOW,
    )
}

fn run(d: DesiredRole, o: &Observed) -> Plan {
    let desired = Desired {
        roles: vec![d],
        ..Desired::default()
    };
    plan(&desired, o, &settings(), &BTreeMap::new())
}

// Long on purpose: a table of cases, one row each.
#[test]
fn trust_changes_table() {
    let (k, v) = owner();
    let owned: &[(&str, &str)] = &[(k.as_str(), v.as_str())];
    type Row<'a> = (
        &'a str,
        &'a [&'a str],            // trusted now
        DesiredRole,              // wanted
        &'a [(&'a str, &'a str)], // role tags
        &'a [&'a str],            // actions
        &'a [&'a str],            // removed
        &'a [&'a str],            // added
    );
    let rows: Vec<Row> = vec![
        (
            "a member leaves",
            &["a", "b"],
            desired(&["a"], None, None),
            owned,
            &["revoke-trust", "revoke-sessions"],
            &["b"],
            &[],
        ),
        (
            "a member joins",
            &["a"],
            desired(&["a", "c"], None, None),
            owned,
            &["update-trust-policy"],
            &[],
            &["c"],
        ),
        (
            "one leaves, one joins: the revocation is its own change, first",
            &["a", "b"],
            desired(&["a", "c"], None, None),
            owned,
            &["revoke-trust", "revoke-sessions", "update-trust-policy"],
            &["b"],
            &["c"],
        ),
        (
            "ambiguous name: whoever is in no candidate group goes, nobody is added",
            &["a", "b"],
            desired(&["a", "c"], Some("2 groups are named g"), Some(&["a", "c"])),
            owned,
            &["revoke-trust", "revoke-sessions"],
            &["b"],
            &[],
        ),
        (
            "pinned group gone: everyone goes",
            &["a", "b"],
            desired(&[], Some("the group g no longer exists"), Some(&[])),
            owned,
            &["revoke-trust", "revoke-sessions"],
            &["a", "b"],
            &[],
        ),
        (
            "blocked, but nobody left: nothing to do",
            &["a"],
            desired(&["a", "c"], Some("oversize"), Some(&["a", "c"])),
            owned,
            &[],
            &[],
            &[],
        ),
        (
            "blocked and not ours yet: an adoption waits",
            &["a", "b"],
            desired(&[], Some("oversize"), Some(&[])),
            &[],
            &[],
            &[],
            &[],
        ),
        (
            "adoption tags first and counts what the trust loses",
            &["x"],
            desired(&["a"], None, None),
            &[],
            &[
                "tag-role",
                "revoke-trust",
                "revoke-sessions",
                "update-trust-policy",
            ],
            &["x"],
            &["a"],
        ),
    ];
    for (name, trusted, d, tags, want, removed, added) in rows {
        let p = run(d, &observed(trusted, tags));
        let got: Vec<String> = p
            .changes
            .iter()
            .map(|c| c.action.name().to_string())
            .collect();
        assert_eq!(got, want, "{name}");
        let all_removed: Vec<String> = p
            .changes
            .iter()
            .flat_map(|c| c.members_removed.clone())
            .collect();
        let all_added: Vec<String> = p
            .changes
            .iter()
            .flat_map(|c| c.members_added.clone())
            .collect();
        assert_eq!(all_removed, removed, "{name}");
        assert_eq!(all_added, added, "{name}");
        for c in &p.changes {
            if let Action::Iam(IamAction::RevokeTrust { trust_policy, .. }) = &c.action {
                let after = trusted_subjects(trust_policy);
                assert!(
                    after.is_subset(&set(trusted)),
                    "{name}: a revocation adds nobody"
                );
                assert_eq!(c.removal.map(|r| r.after), Some(after.len()), "{name}");
            }
        }
    }
}

#[test]
fn the_removal_baseline_is_recorded_and_does_not_ratchet() {
    let (k, v) = owner();
    let six = ["a", "b", "c", "d", "e", "f"];
    let revocation = |tags: &[(&str, &str)]| {
        let mut all = vec![(k.as_str(), v.as_str())];
        all.extend_from_slice(tags);
        let p = run(desired(&["a", "b", "c"], None, None), &observed(&six, &all));
        let c = p.changes.into_iter().next().unwrap();
        let Action::Iam(IamAction::RevokeTrust { baseline, .. }) = &c.action else {
            panic!("{c:?}")
        };
        (c.removal.unwrap().baseline, baseline.clone())
    };
    // No record: measured from now, and the count recorded with the revocation.
    assert_eq!(revocation(&[]), (6, Some(format!("6@{NOW}"))));
    // A fresh record of more: measured from it, not re-recorded.
    let fresh = format!("10@{}", NOW - 100);
    assert_eq!(revocation(&[(BASELINE_TAG, &fresh)]), (10, None));
    // A record older than the window: measured from now again.
    let stale = format!("10@{}", NOW - 4000);
    assert_eq!(
        revocation(&[(BASELINE_TAG, &stale)]),
        (6, Some(format!("6@{NOW}")))
    );
}

#[test]
fn the_baseline_tag_is_never_untagged_as_drift() {
    let (k, v) = owner();
    let tag = format!("2@{NOW}");
    let p = run(
        desired(&["a"], None, None),
        &observed(
            &["a"],
            &[(k.as_str(), v.as_str()), (BASELINE_TAG, tag.as_str())],
        ),
    );
    assert!(p.changes.is_empty(), "{:?}", p.changes);
}

#[test]
fn the_audit_logs_baseline_counts_when_it_is_live_and_higher_than_the_tag() {
    let s = settings();
    let at = |count: usize, ago: u64| format!("{count}@{}", NOW - ago);
    // No tag: the logged one, while it is within the window.
    assert_eq!(s.higher_baseline(None, &at(3, 10)), Some(at(3, 10)));
    assert_eq!(s.higher_baseline(None, &at(3, 4000)), None, "stale");
    // A tag of more, or as many and later, wins; a stale tag loses to a live log.
    assert_eq!(s.higher_baseline(Some(&at(5, 10)), &at(3, 10)), None);
    assert_eq!(s.higher_baseline(Some(&at(3, 5)), &at(3, 10)), None);
    assert_eq!(
        s.higher_baseline(Some(&at(9, 4000)), &at(3, 10)),
        Some(at(3, 10))
    );
    assert_eq!(
        s.higher_baseline(Some("garbled"), &at(3, 10)),
        Some(at(3, 10))
    );
}
