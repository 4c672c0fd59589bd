use super::*;
use crate::config::Config;
use crate::config::Safety;
use crate::desired::{self, Target};
use crate::observed::{trusted_subjects, ObservedFunction};
use crate::sources::directory::{TenantDirectory, TenantFile};
use crate::sources::policy::{load_text, PolicySet};
use serde_json::json;
use std::path::Path;

const POLICIES: &str = "\
apiVersion: trustsync.dev/v1alpha1
kind: IdentityProvider
metadata: {name: entra}
spec: {tenantId: 00000000-0000-0000-0000-0000000000aa, audiences: [api://aws]}
---
apiVersion: trustsync.dev/v1alpha1
kind: RoleMapping
metadata: {name: deployers}
spec:
  provider: entra
  group: {id: 00000000-0000-0000-0000-000000000001}
  role:
    name: deployer
    managedPolicies: [arn:aws:iam::aws:policy/ReadOnlyAccess]
    inlinePolicies:
      p: {Version: '2012-10-17', Statement: [{Effect: Allow, Action: [s3:GetObject, s3:ListBucket], Resource: '*'}]}
---
apiVersion: trustsync.dev/v1alpha1
kind: FunctionAccess
metadata: {name: api}
spec:
  function: api
  invokers: [{roleMapping: deployers}]
";

fn tenant(members: &[&str]) -> TenantFile {
    let sps: Vec<_> = ["a", "b", "c", "d"]
        .iter()
        .map(|s| json!({"id": format!("00000000-0000-0000-0000-00000000000{s}")}))
        .collect();
    serde_json::from_value(json!({
            "tenantId": "t",
            "groups": [{"id": "00000000-0000-0000-0000-000000000001", "displayName": "g",
                        "members": members.iter().map(|m| format!("00000000-0000-0000-0000-00000000000{m}")).collect::<Vec<_>>()}],
            "servicePrincipals": sps,
        }))
        .unwrap()
}

fn desired_for(members: &[&str], extra: &str) -> Desired {
    let mut set = PolicySet::default();
    let mut diags = Vec::new();
    load_text(
        Path::new("p.yaml"),
        &format!("{POLICIES}{extra}"),
        &mut set,
        &mut diags,
    );
    assert!(diags.is_empty(), "{diags:?}");
    let pins = desired::Pins::new();
    let snap = tenant(members).snapshot(&desired::group_requests(&set, &pins));
    let target = Target {
        account_id: "123456789012".into(),
        region: "us-east-1".into(),
    };
    desired::build(&set, &snap, &pins, &Config::default(), &target)
}

fn settings(prune: bool) -> Settings {
    Settings::new(
        &Config {
            prune,
            // The planner's own tests; the default's refusal has a test of its own.
            allow_unbounded_roles: true,
            ..Config::default()
        },
        crate::model::clock::unix_seconds(),
    )
}

#[test]
fn with_no_boundary_configured_no_role_is_created_or_adopted_but_owned_ones_still_revoke() {
    let bare = Settings::new(&Config::default(), crate::model::clock::unix_seconds());
    assert!(!bare.may_create_roles);
    let p = plan(&desired_for(&["a"], ""), &Observed::default(), &bare);
    assert!(
        !names(&p).iter().any(|n| n == "create-role"),
        "{:?}",
        names(&p)
    );
    let refused: Vec<&Problem> = p
        .problems
        .iter()
        .filter(|x| x.kind == ProblemKind::Guardrail)
        .collect();
    assert_eq!(refused.len(), 1, "{:?}", p.problems);
    assert!(refused[0].message.contains("permissionsBoundaries"));
    assert!(refused[0].message.contains("allowUnboundedRoles"));
    // A role it owns already: its departures still go.
    let p = plan(
        &desired_for(&["a"], ""),
        &converged(&desired_for(&["a", "b"], "")),
        &bare,
    );
    assert_eq!(names(&p), ["revoke-trust", "revoke-sessions"]);
    // With a boundary configured, created.
    let bounded = Settings::new(
        &Config {
            permissions_boundaries: vec!["workload-boundary".into()],
            ..Config::default()
        },
        crate::model::clock::unix_seconds(),
    );
    let p = plan(&desired_for(&["a"], ""), &Observed::default(), &bounded);
    assert!(
        names(&p).iter().any(|n| n == "create-role"),
        "{:?}",
        names(&p)
    );
}

/// What AWS would hold after applying `d`, written the way AWS writes it back:
/// scalars for one-element lists, a principal ARN as a bare string, other orders.
fn converged(d: &Desired) -> Observed {
    let mut o = Observed::default();
    for p in &d.providers {
        let mut tags = p.tags.clone();
        tags.extend(p.client_ids.iter().map(|a| audience_tag(a)));
        o.providers.push(crate::observed::ObservedProvider {
            arn: p.arn.clone(),
            url: p.url.clone(),
            client_ids: p.client_ids.clone(),
            tags,
        });
    }
    for r in &d.roles {
        let mut trust = r.trust.clone();
        if let Some(cond) = trust["Statement"][0].get_mut("Condition") {
            for (_, v) in cond["StringEquals"].as_object_mut().unwrap() {
                if let Some(list) = v.as_array_mut() {
                    list.reverse();
                    if list.len() == 1 {
                        *v = list[0].clone();
                    }
                }
            }
        }
        let inline = r
            .inline_policies
            .iter()
            .map(|(k, v)| {
                let mut v = v.clone();
                let st = v["Statement"][0].clone();
                v["Statement"] = st; // a lone statement as an object
                (k.clone(), v)
            })
            .collect();
        o.roles.insert(
            r.name.to_ascii_lowercase(),
            ObservedRole {
                name: r.name.clone(),
                path: r.path.clone(),
                arn: r.arn.clone(),
                trust,
                description: r.description.clone(),
                max_session_duration: Some(r.max_session_duration),
                permissions_boundary: r.permissions_boundary.clone(),
                inline_policies: inline,
                managed_policies: r.managed_policies.clone(),
                tags: r.tags.clone(),
            },
        );
    }
    for f in &d.functions {
        o.marked_functions.insert(
            f.name.clone(),
            crate::observed::MarkedFunction {
                arn: f.arn.clone(),
                tag_value: f.qualifier.clone().unwrap_or_default(),
            },
        );
        let statements = f
            .statements
            .values()
            .map(|s| {
                let mut doc = s.document();
                doc["Principal"] = json!(s.principal); // moto's bare-string form
                doc["Resource"] = json!(f.arn);
                doc
            })
            .collect();
        o.functions.insert(
            (f.name.clone(), f.qualifier.clone()),
            Some(ObservedFunction {
                arn: f.arn.clone(),
                role: f.execution_role.clone(),
                config_revision: Some("r1".into()),
                policy_revision: Some("p1".into()),
                statements,
            }),
        );
    }
    o
}

/// The plan with no removal baselines in the audit log.
fn plan(desired: &Desired, observed: &Observed, settings: &Settings) -> Plan {
    super::plan(desired, observed, settings, &BTreeMap::new())
}

/// The action names of a plan, each checked against the tag its JSON carries.
fn names(p: &Plan) -> Vec<String> {
    p.changes
        .iter()
        .map(|c| {
            let json = serde_json::to_value(&c.action).unwrap();
            assert_eq!(json["action"], c.action.name(), "{json}");
            c.action.name().to_string()
        })
        .collect()
}

#[test]
fn converged_state_in_aws_representation_plans_nothing() {
    let d = desired_for(&["a", "b", "c"], "");
    let p = plan(&d, &converged(&d), &settings(false));
    assert!(p.is_empty(), "{:#?}", p.changes);
    assert!(p.problems.is_empty() && p.held.is_empty());
}

#[test]
fn from_empty_account_creates_in_dependency_order() {
    let d = desired_for(&["a"], "");
    let o = Observed {
        functions: converged(&d).functions,
        ..Observed::default()
    };
    let mut o = o;
    for f in o.functions.values_mut().flatten() {
        f.statements.clear();
    }
    let p = plan(&d, &o, &settings(false));
    assert_eq!(
        names(&p),
        [
            "create-oidc-provider",
            "create-role",
            "put-inline-policy",
            "attach-managed-policy",
            "tag-function",
            "add-lambda-permission"
        ]
    );
    assert_eq!(p.summary.add, 5);
    assert_eq!(p.summary.principals_added, 1);
}

#[test]
fn membership_change_updates_trust_with_members_named() {
    let before = desired_for(&["a", "b"], "");
    let after = desired_for(&["a", "c"], "");
    let p = plan(&after, &converged(&before), &settings(false));
    assert_eq!(
        names(&p),
        ["revoke-trust", "revoke-sessions", "update-trust-policy"]
    );
    let (revoke, grant) = (&p.changes[0], &p.changes[2]);
    let sessions = &p.changes[1];
    assert!(
        sessions.members_removed.is_empty(),
        "counted once, on the trust"
    );
    assert!(sessions
        .reason
        .contains("00000000-0000-0000-0000-00000000000b"));
    assert_eq!(
        revoke.members_removed,
        ["00000000-0000-0000-0000-00000000000b"]
    );
    assert!(revoke.members_added.is_empty());
    assert_eq!(
        trusted_subjects(revoke.after.as_ref().unwrap()),
        BTreeSet::from(["00000000-0000-0000-0000-00000000000a".to_string()]),
        "the revocation adds nobody"
    );
    assert_eq!(
        grant.members_added,
        ["00000000-0000-0000-0000-00000000000c"]
    );
    assert_eq!(
        grant.reason,
        "group `g` membership changed: 1 added, 1 removed"
    );
    assert_eq!(
        trusted_subjects(grant.grant_only.as_ref().unwrap()).len(),
        3,
        "if the revocation is held, the grant adds without removing"
    );
}

#[test]
fn unowned_and_foreign_owned_roles_are_conflicts() {
    let d = desired_for(&["a"], "");
    let mut o = converged(&d);
    o.roles.get_mut("deployer").unwrap().tags.clear();
    let p = plan(&d, &o, &settings(false));
    assert_eq!(p.problems[0].kind, ProblemKind::Conflict);
    assert!(names(&p).is_empty(), "{:?}", names(&p));

    o.roles
        .get_mut("deployer")
        .unwrap()
        .tags
        .insert("trustsync.dev/owner".into(), "other".into());
    let p = plan(&d, &o, &settings(false));
    assert!(p.problems[0]
        .message
        .contains("another trustsync instance (`trustsync.dev/owner=other`)"));
}

#[test]
fn a_role_at_another_path_cannot_be_moved() {
    let d = desired_for(&["a"], "");
    let mut o = converged(&d);
    o.roles.get_mut("deployer").unwrap().path = "/trustsync/old/".into();
    let p = plan(&d, &o, &settings(false));
    assert_eq!(p.problems[0].kind, ProblemKind::CannotMoveRole);
    assert!(p.is_empty());
}

#[test]
fn orphans_need_prune_and_are_removed_in_reverse_order() {
    let extra = "---\napiVersion: trustsync.dev/v1alpha1\nkind: RoleMapping\nmetadata: {name: extra}\nspec:\n  trustedServices: [lambda.amazonaws.com]\n  role: {name: extra, managedPolicies: [arn:aws:iam::aws:policy/ReadOnlyAccess], inlinePolicies: {x: {Version: '2012-10-17', Statement: [{Effect: Allow, Action: 's3:*', Resource: '*'}]}}}\n";
    let with_extra = desired_for(&["a"], extra);
    let without = desired_for(&["a"], "");
    let o = converged(&with_extra);
    let p = plan(&without, &o, &settings(false));
    assert!(p.is_empty());
    assert_eq!(
        p.notices
            .iter()
            .filter(|n| n.kind == NoticeKind::Orphan)
            .count(),
        1
    );

    let p = plan(&without, &o, &settings(true));
    assert_eq!(
        names(&p),
        [
            "detach-managed-policy",
            "delete-inline-policy",
            "delete-role"
        ]
    );
    assert_eq!(p.owned_roles, 2);
}

#[test]
fn removals_carry_their_baseline_and_the_checks_hold_most_but_not_one() {
    let check = |p: Plan| {
        crate::checks::check(
            p,
            &crate::checks::Context {
                safety: &Safety::default(),
                deferred: &|_| None,
                released: &BTreeSet::new(),
            },
        )
    };
    let before = desired_for(&["a", "b", "c", "d"], "");
    let p = plan(
        &desired_for(&["a"], ""),
        &converged(&before),
        &settings(false),
    );
    assert_eq!(names(&p), ["revoke-trust", "revoke-sessions"]);
    assert_eq!(
        p.changes[0].removal,
        Some(Removal {
            baseline: 4,
            after: 1,
            deletes_role: false
        })
    );
    let p = check(p);
    assert_eq!(p.held[0].held.kind, HoldKind::MappingRemovalLimit);

    let single = desired_for(&["a"], "");
    let p = check(plan(
        &desired_for(&[], ""),
        &converged(&single),
        &settings(false),
    ));
    assert!(
        p.held.is_empty(),
        "the floor lets a one-member group lose its member"
    );
    assert_eq!(p.changes[0].members_removed.len(), 1);
}

#[test]
fn a_baseline_the_audit_log_recorded_counts_when_it_is_the_higher_live_one() {
    let s = settings(false);
    // The role trusts two now; a fast-path revocation logged that it trusted four.
    let observed = converged(&desired_for(&["a", "b"], ""));
    let arn = observed.roles["deployer"].arn.clone();
    let removal = |recorded: &BTreeMap<String, String>| {
        super::plan(&desired_for(&["a"], ""), &observed, &s, recorded).changes[0]
            .removal
            .unwrap()
    };
    assert_eq!(removal(&BTreeMap::new()).baseline, 2);
    let logged = BTreeMap::from([(arn.clone(), format!("4@{}", s.now - 10))]);
    assert_eq!(removal(&logged).baseline, 4);
    // Older than the window: the tag (here: what the role trusts) again.
    let stale = BTreeMap::from([(
        arn,
        format!("4@{}", s.now - s.safety.removal_window_seconds - 1),
    )]);
    assert_eq!(removal(&stale).baseline, 2);
    // The observation keeps saying only what AWS said.
    assert!(!observed.roles["deployer"].tags.contains_key(BASELINE_TAG));
}

#[test]
fn an_empty_group_denies_instead_of_writing_an_empty_condition() {
    let d = desired_for(&[], "");
    let st = &d.roles[0].trust["Statement"][0];
    assert_eq!(st["Effect"], "Deny");
    assert_eq!(st["Sid"], crate::desired::NO_MEMBERS_SID);
}

#[test]
fn a_statement_naming_a_deleted_role_is_re_added() {
    let d = desired_for(&["a"], "");
    let mut o = converged(&d);
    let f = o.functions.values_mut().next().unwrap().as_mut().unwrap();
    f.statements[0]["Principal"] = json!({"AWS": "AROAXXXXXXXXXXXXXXXXX"});
    let p = plan(&d, &o, &settings(false));
    assert_eq!(
        names(&p),
        ["remove-lambda-permission", "add-lambda-permission"]
    );
    assert!(p.changes[0].reason.contains("deleted principal"));
}

#[test]
fn unprefixed_statements_are_not_trustsyncs() {
    let d = desired_for(&["a"], "");
    let mut o = converged(&d);
    let f = o.functions.values_mut().next().unwrap().as_mut().unwrap();
    f.statements.push(json!({"Sid": "someone-else", "Effect": "Allow", "Principal": {"Service": "s3.amazonaws.com"}, "Action": "lambda:InvokeFunction"}));
    f.statements.push(json!({"Sid": format!("{}old-1", settings(false).statement_id_prefix), "Effect": "Allow", "Principal": {"Service": "s3.amazonaws.com"}, "Action": "lambda:InvokeFunction"}));
    let p = plan(&d, &o, &settings(false));
    assert_eq!(names(&p), ["remove-lambda-permission"]);
    assert!(
        matches!(&p.changes[0].action, Action::Lambda(LambdaAction::RemoveLambdaPermission { statement_id, .. }) if statement_id.ends_with("old-1"))
    );
}

#[test]
fn statements_of_an_earlier_trustsync_are_migrated_on_managed_functions() {
    let d = desired_for(&["a"], "");
    let mut o = converged(&d);
    let f = o.functions.values_mut().next().unwrap().as_mut().unwrap();
    f.statements.push(json!({"Sid": "trustsync-role-deployers-0badf00d", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:role/trustsync/deployer"}, "Action": "lambda:InvokeFunction"}));
    f.statements.push(json!({"Sid": "trustsync-notes", "Effect": "Allow", "Principal": {"Service": "s3.amazonaws.com"}, "Action": "lambda:InvokeFunction"}));
    let p = plan(&d, &o, &settings(false));
    assert_eq!(names(&p), ["remove-lambda-permission"]);
    assert!(
        matches!(&p.changes[0].action, Action::Lambda(LambdaAction::RemoveLambdaPermission { statement_id, .. }) if statement_id == "trustsync-role-deployers-0badf00d")
    );
}

#[test]
fn a_mapping_that_cannot_be_built_leaves_its_role_alone_even_with_prune() {
    let d = desired_for(&["a"], "");
    let o = converged(&d);
    let mut broken = d.clone();
    broken.roles.clear();
    broken.errors.push(crate::desired::MappingError {
        mapping: "deployers".into(),
        resource: "deployer".into(),
        message: "no group matches".into(),
    });
    let p = plan(&broken, &o, &settings(true));
    assert!(p.is_empty(), "{:?}", names(&p));
    assert_eq!(p.problems[0].kind, ProblemKind::MappingError);
}

#[test]
fn too_many_members_for_one_trust_policy_is_an_error_with_numbers() {
    let mut set = PolicySet::default();
    let mut diags = Vec::new();
    load_text(Path::new("p.yaml"), POLICIES, &mut set, &mut diags);
    let ids: Vec<String> = (0..60)
        .map(|i| format!("00000000-0000-0000-0000-{i:012}"))
        .collect();
    let t: TenantFile = serde_json::from_value(json!({
            "tenantId": "t",
            "groups": [{"id": "00000000-0000-0000-0000-000000000001", "displayName": "g", "members": ids}],
            "servicePrincipals": ids.iter().map(|i| json!({"id": i})).collect::<Vec<_>>(),
        }))
        .unwrap();
    let pins = desired::Pins::new();
    let snap = t.snapshot(&desired::group_requests(&set, &pins));
    let target = Target {
        account_id: "123456789012".into(),
        region: "us-east-1".into(),
    };
    let d = desired::build(&set, &snap, &pins, &Config::default(), &target);
    assert!(
        d.roles[0].blocked.is_some(),
        "blocked: adds nobody, still revokes"
    );
    let msg = &d.errors[0].message;
    assert!(
        msg.contains("for 60 service principals would be")
            && msg.contains("over the limit of 2048"),
        "{msg}"
    );
}

#[test]
fn functions_acting_as_entra_applications_share_one_statement_with_the_longest_lifetime() {
    let runtime = "---
apiVersion: trustsync.dev/v1alpha1
kind: RoleMapping
metadata: {name: runtime}
spec: {trustedServices: [lambda.amazonaws.com], role: {name: runtime}}
";
    let function = |name: &str, seconds: Option<u32>| {
        let app = seconds.map_or(String::new(), |s| {
            format!("  entraApplication: {{appId: 00000000-0000-0000-0000-0000000000ee, maxTokenSeconds: {s}}}\n")
        });
        format!("---\napiVersion: trustsync.dev/v1alpha1\nkind: FunctionAccess\nmetadata: {{name: {name}}}\nspec:\n  function: {name}\n  executionRole: {{roleMapping: runtime}}\n{app}")
    };
    let policy_of = |extra: &str| {
        let d = desired_for(&["a"], extra);
        let role = d
            .roles
            .iter()
            .find(|r| r.name.as_str() == "runtime")
            .unwrap();
        role.inline_policies
            .get(crate::sources::policy::OUTBOUND_POLICY_NAME)
            .cloned()
    };
    let both = policy_of(&format!(
        "{runtime}{}{}",
        function("a", Some(120)),
        function("b", Some(900))
    ));
    let doc = both.expect("the role gets the statement");
    assert_eq!(
        doc["Statement"][0]["Condition"]["NumericLessThanEquals"]["sts:DurationSeconds"],
        "900"
    );
    let none = policy_of(&format!("{runtime}{}", function("a", None)));
    assert!(none.is_none(), "no application, no statement");
    // The deployers role, which no such function runs as, is untouched.
    let d = desired_for(&["a"], &format!("{runtime}{}", function("a", Some(300))));
    let deployer = d
        .roles
        .iter()
        .find(|r| r.name.as_str() == "deployer")
        .unwrap();
    assert_eq!(deployer.inline_policies.keys().collect::<Vec<_>>(), ["p"]);
}

/// The observed state after `p`'s session denials landed on `o`.
fn with_denials(mut o: Observed, p: &Plan) -> Observed {
    for c in &p.changes {
        if let Action::Iam(IamAction::RevokeSessions {
            role_name,
            document,
        }) = &c.action
        {
            o.roles
                .get_mut(&role_name.to_ascii_lowercase())
                .unwrap()
                .inline_policies
                .insert(SESSIONS_POLICY.into(), document.clone());
        }
    }
    o
}

#[test]
fn session_denials_follow_departures_returns_and_the_session_length() {
    let s = settings(false);
    let b = "00000000-0000-0000-0000-00000000000b";
    let p = plan(
        &desired_for(&["a"], ""),
        &converged(&desired_for(&["a", "b"], "")),
        &s,
    );
    assert_eq!(names(&p), ["revoke-trust", "revoke-sessions"]);
    let denial = &p.session_denials;
    assert_eq!(denial.len(), 1);
    assert_eq!(denial[0].principal.as_deref(), Some(b));
    let observed = with_denials(converged(&desired_for(&["a"], "")), &p);

    // Converged: the denial stays, nothing to do; a later pass keeps the same cut-off.
    let later = Settings {
        now: s.now + 600,
        ..s.clone()
    };
    let again = plan(&desired_for(&["a"], ""), &observed, &later);
    assert!(again.changes.is_empty(), "{:?}", names(&again));
    assert_eq!(again.session_denials, p.session_denials);

    // Back in the group: trusted again, and the denial stays (its sessions from before
    // the cut-off never work again; new ones, issued after it, do).
    let back = plan(&desired_for(&["a", "b"], ""), &observed, &later);
    assert_eq!(names(&back), ["update-trust-policy"]);
    assert_eq!(back.session_denials, p.session_denials);

    // Gone for longer than the role's maximum session as recorded with the cut-off:
    // nothing can be alive to deny.
    let expired = Settings {
        now: s.now + 3600 + s.safety.propagation_seconds + 1,
        ..s.clone()
    };
    let p = plan(&desired_for(&["a"], ""), &observed, &expired);
    assert_eq!(names(&p), ["delete-inline-policy"]);

    // A mapping may not name the policy, and the planner never deletes it as drift.
    let mut own = observed.clone();
    own.roles
        .get_mut("deployer")
        .unwrap()
        .inline_policies
        .insert("stray".into(), json!({}));
    let p = plan(&desired_for(&["a"], ""), &own, &later);
    assert_eq!(names(&p), ["delete-inline-policy"]);
    assert!(
        matches!(&p.changes[0].action, Action::Iam(IamAction::DeleteInlinePolicy { policy_name, .. }) if policy_name == "stray")
    );
}

#[test]
fn denials_that_do_not_fit_become_the_role_wide_cut_off_with_a_notice() {
    let s = Settings {
        inline_policy_chars: 200,
        ..settings(false)
    };
    let p = plan(
        &desired_for(&["a"], ""),
        &converged(&desired_for(&["a", "b", "c"], "")),
        &s,
    );
    assert_eq!(names(&p), ["revoke-trust", "revoke-sessions"]);
    assert_eq!(p.session_denials.len(), 1);
    assert_eq!(
        p.session_denials[0].principal, None,
        "every web-identity session"
    );
    assert!(p
        .notices
        .iter()
        .any(|n| n.kind == NoticeKind::SessionsCutRoleWide));
    let doc = p.changes[1].after.as_ref().unwrap().to_string();
    assert!(
        doc.contains("\"Null\"") && !doc.contains("00000000000b"),
        "{doc}"
    );
}
