//! The people planner's unit tests.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::denials::denial_statements;
use super::*;
use crate::model::iam_policy;
use crate::observed::{AssignedTo, IdentityCenterGroup, IdentityCenterPermissionSet};
use crate::observed::{
    GroupHolds, GroupMembership, IdentityCenterAssignment, IdentityCenterUser,
    PermissionSetPolicies,
};
use crate::plan::{Action, NoticeKind, PeopleAction, ProblemKind};

const MARK: &str = "[trustsync managed-by=trustsync]";
const NOW: u64 = 1_800_000_000;

fn spec() -> AccessAssignmentSpec {
    serde_yaml::from_str(
        r#"
group: {displayName: people}
permissionSet:
  name: Ops
  sessionDuration: PT2H
  inlinePolicy: {Version: "2012-10-17", Statement: [{Effect: Allow, Action: "s3:GetObject", Resource: "*"}]}
accounts: {ids: ["111111111111"]}
"#,
    )
    .unwrap()
}

fn person(name: &str) -> Person {
    Person {
        id: format!("entra-{name}"),
        user_name: name.into(),
        display_name: Some(format!("{name} Display")),
        given_name: None,
        surname: None,
        mail: None,
        enabled: true,
        guest: false,
    }
}

fn wanted(spec: &AccessAssignmentSpec, members: Members) -> Wanted<'_> {
    Wanted {
        mapping: "ops".into(),
        spec,
        members,
        accounts: vec!["111111111111".into()],
        blocked: false,
    }
}

fn user(id: &str) -> IdentityCenterUser {
    IdentityCenterUser {
        id: format!("id-{id}"),
        user_name: id.into(),
        display_name: None,
        external_ids: Vec::new(),
    }
}

/// The instance as trustsync left it with `members` in its group and the set
/// assigned, the set's inline policy being the document's and `denials`.
fn provisioned(members: &[&str], denials: Vec<Value>) -> ObservedIdentityCenter {
    let own = iam_policy::statements(spec().permission_set.inline_policy.as_ref().unwrap());
    ObservedIdentityCenter {
        instance_arn: "arn:aws:sso:::instance/ssoins-1".into(),
        identity_store_id: "d-1".into(),
        users: ["ana", "bo", "cy", "di"].map(user).into(),
        groups: vec![IdentityCenterGroup {
            id: "g1".into(),
            display_name: "ops".into(),
            description: Some(format!("{MARK}: AccessAssignment ops")),
            members: members
                .iter()
                .map(|m| GroupMembership {
                    user_id: format!("id-{m}"),
                    membership_id: format!("m-{m}"),
                })
                .collect(),
            holds: None,
        }],
        permission_sets: vec![IdentityCenterPermissionSet {
            arn: "ps-1".into(),
            name: "Ops".into(),
            session_duration: Some("PT2H".into()),
            description: Some(MARK.into()),
            policies: Some(PermissionSetPolicies {
                inline_policy: Some(
                    json!({"Version": "2012-10-17", "Statement": own.into_iter().chain(denials).collect::<Vec<_>>()}),
                ),
                ..PermissionSetPolicies::default()
            }),
        }],
        assignments: vec![IdentityCenterAssignment {
            account: "111111111111".into(),
            permission_set_arn: "ps-1".into(),
            principal_type: AssignedTo::Group,
            principal_id: "g1".into(),
        }],
    }
}

fn run(wanted: &[Wanted], observed: &ObservedIdentityCenter) -> Plan {
    run_with(wanted, observed, &BTreeMap::new())
}

fn run_with(
    wanted: &[Wanted],
    observed: &ObservedIdentityCenter,
    recorded_baselines: &BTreeMap<String, String>,
) -> Plan {
    // Every user of the store made by trustsync for the Entra user of its name.
    let people: BTreeMap<String, String> = observed
        .users
        .iter()
        .map(|u| (u.user_name.to_lowercase(), format!("entra-{}", u.user_name)))
        .collect();
    run_bound(wanted, observed, recorded_baselines, &people)
}

fn run_bound(
    wanted: &[Wanted],
    observed: &ObservedIdentityCenter,
    recorded_baselines: &BTreeMap<String, String>,
    recorded_people: &BTreeMap<String, String>,
) -> Plan {
    plan(&Inputs {
        wanted,
        observed,
        mark: MARK,
        owner_tag: &crate::config::OwnerTag {
            key: "managed-by".into(),
            value: "trustsync".into(),
        },
        now: NOW,
        prune: false,
        adopting: true,
        recorded_baselines,
        window_seconds: 3600,
        propagation_seconds: 300,
        recorded_people,
    })
}

fn names(p: &Plan) -> Vec<&str> {
    p.changes.iter().map(|c| c.action.name()).collect()
}

#[test]
fn a_new_document_creates_users_group_set_and_assignment_and_leaves_guests_and_disabled_out() {
    let spec = spec();
    let mut guest = person("sam#EXT#@t");
    guest.guest = true;
    let mut off = person("off");
    off.enabled = false;
    let mut solo = person("kim");
    solo.display_name = Some("Kim".into());
    let w = [wanted(
        &spec,
        Members::Read(vec![person("ana"), solo, guest, off]),
    )];
    let empty = ObservedIdentityCenter {
        instance_arn: "arn:aws:sso:::instance/ssoins-1".into(),
        identity_store_id: "d-1".into(),
        users: vec![user("ana")],
        ..ObservedIdentityCenter::default()
    };
    let p = run(&w, &empty);
    assert_eq!(
        names(&p),
        [
            "create-identity-store-user",
            "create-identity-store-group",
            "add-group-members",
            "put-permission-set",
            "create-account-assignment"
        ]
    );
    let Action::People(PeopleAction::CreateIdentityStoreUser {
        user_name,
        given_name,
        family_name,
        ..
    }) = &p.changes[0].action
    else {
        panic!()
    };
    assert_eq!(
        (
            user_name.as_str(),
            given_name.as_str(),
            family_name.as_str()
        ),
        ("kim", "Kim", "Kim"),
        "a one-word display name serves as both names"
    );
    assert_eq!(p.changes[2].members_added, ["ana", "kim"]);
    assert_eq!(p.notices[0].kind, NoticeKind::GuestsLeftOut);
}

#[test]
fn a_departure_is_removed_and_its_sessions_denied_from_a_cutoff_and_nothing_else_moves() {
    let spec = spec();
    let w = [wanted(
        &spec,
        Members::Read(vec![person("ana"), person("bo")]),
    )];
    let p = run(&w, &provisioned(&["ana", "bo", "cy"], Vec::new()));
    assert_eq!(
        names(&p),
        ["remove-group-members", "deny-permission-set-sessions"],
        "the set is not written twice: {:#?}",
        p.changes
    );
    let removal = &p.changes[0];
    assert!(removal.action.is_revocation());
    assert_eq!(removal.members_removed, ["cy"]);
    assert_eq!(removal.removal.map(|r| (r.baseline, r.after)), Some((3, 2)));
    let doc = p.changes[1].after.clone().unwrap();
    let (denied, wide) = read_denials(Some(&doc));
    assert_eq!(denied, BTreeMap::from([("id-cy".to_string(), NOW + 300)]));
    assert!(wide.is_empty());
    assert!(
        iam_policy::statements(&doc)
            .iter()
            .any(|s| s["Action"] == "s3:GetObject"),
        "the set's own grant stays: {doc:#}"
    );
    assert_eq!(p.session_denials.len(), 1);
}

#[test]
fn removals_are_measured_against_the_most_the_group_held_within_the_window() {
    let spec = spec();
    let w = [wanted(&spec, Members::Read(vec![person("ana")]))];
    let o = provisioned(&["ana", "bo"], Vec::new());
    let resource = "arn:aws:identitystore:::group/g1";
    let at = |ago: u64| BTreeMap::from([(resource.to_string(), format!("4@{}", NOW - ago))]);
    // Four people ten minutes ago (another pass took two): bo is the third of four.
    let p = run_with(&w, &o, &at(600));
    let r = p.changes[0].removal.unwrap();
    assert_eq!((r.baseline, r.after, r.removed()), (4, 1, 3));
    let Action::People(PeopleAction::RemoveGroupMembers { baseline, .. }) = &p.changes[0].action
    else {
        panic!()
    };
    assert_eq!(*baseline, None, "the recorded baseline still counts");
    // Outside the window: measured from now, and recorded.
    let p = run_with(&w, &o, &at(7200));
    let r = p.changes[0].removal.unwrap();
    assert_eq!((r.baseline, r.after), (2, 1));
    let Action::People(PeopleAction::RemoveGroupMembers { baseline, .. }) = &p.changes[0].action
    else {
        panic!()
    };
    assert_eq!(baseline.as_deref(), Some(format!("2@{NOW}").as_str()));
}

#[test]
fn denials_expire_as_recorded_and_a_returning_person_keeps_theirs() {
    let spec = spec();
    // cy's and ed's cut-offs are 7201 s old: cy's recorded a 2-hour session (gone),
    // ed's recorded none (12 hours: kept). bo is back in the group: kept.
    let (cy, di) = (NOW - 7201, NOW - 60);
    let old = denial_statements(
        &BTreeMap::from([
            ("id-cy".to_string(), cy),
            ("id-di".to_string(), di),
            ("id-bo".to_string(), di),
        ]),
        &[],
        &BTreeMap::from([(cy, 7200), (di, 7200)]),
    );
    let mut old = old;
    old.extend(denial_statements(
        &BTreeMap::from([("id-ed".to_string(), cy - 1)]),
        &[],
        &BTreeMap::new(),
    ));
    let w = [wanted(
        &spec,
        Members::Read(vec![person("ana"), person("bo")]),
    )];
    let p = run(&w, &provisioned(&["ana"], old));
    let put = p
        .changes
        .iter()
        .find(|c| c.action.name() == "put-permission-set")
        .expect("the inline policy is rewritten");
    let Action::People(PeopleAction::PutPermissionSet {
        inline_policy: Some(doc),
        ..
    }) = &put.action
    else {
        panic!("{put:#?}")
    };
    assert_eq!(
        read_denials(Some(doc)).0.into_keys().collect::<Vec<_>>(),
        ["id-bo", "id-di", "id-ed"],
        "cy's expired (recorded PT2H); bo is back but keeps the entry; ed's has no record (12 h)"
    );
    assert_eq!(read_lasting(Some(doc)).get(&di), Some(&7200));
}

/// What the plan adds to trustsync's group, and the conflicts it reports.
fn joins(p: &Plan) -> (Vec<String>, BTreeMap<String, String>, Vec<String>) {
    let add = p.changes.iter().find_map(|c| match &c.action {
        Action::People(PeopleAction::AddGroupMembers {
            user_names,
            user_ids,
            ..
        }) => Some((user_names.clone(), user_ids.clone())),
        _ => None,
    });
    let (names, ids) = add.unwrap_or_default();
    let conflicts = p
        .problems
        .iter()
        .filter(|x| x.kind == ProblemKind::Conflict)
        .map(|x| x.message.clone())
        .collect();
    (names, ids, conflicts)
}

#[test]
fn a_reused_user_name_inherits_nothing_and_adoption_hands_it_over() {
    let spec = spec();
    // cy's identity-store user was made for someone who held the name before.
    let mut cy = person("cy");
    cy.id = "entra-new-cy".into();
    let w = [wanted(
        &spec,
        Members::Read(vec![person("ana"), cy.clone()]),
    )];
    let o = provisioned(&["ana"], Vec::new());
    let recorded = BTreeMap::from([
        ("ana".to_string(), "entra-ana".to_string()),
        ("cy".to_string(), "entra-old-cy".to_string()),
    ]);
    let p = run_bound(&w, &o, &BTreeMap::new(), &recorded);
    let (added, _, conflicts) = joins(&p);
    assert!(added.is_empty(), "{added:?}");
    assert_eq!(conflicts.len(), 1, "{conflicts:?}");
    assert!(conflicts[0].contains("entra-old-cy"), "{}", conflicts[0]);
    // Nothing else is held back: the set and the assignment stand as they are.
    assert!(
        p.changes
            .iter()
            .all(|c| c.action.name() != "create-identity-store-user"),
        "the user exists; it is not made again"
    );

    // Was a member already (the old holder's)? Taken out, a revocation.
    let o = provisioned(&["ana", "cy"], Vec::new());
    let p = run_bound(&w, &o, &BTreeMap::new(), &recorded);
    assert!(
        names(&p).contains(&"remove-group-members"),
        "{:?}",
        names(&p)
    );

    // A user made by hand with no record, not a member: a conflict too.
    let p = run_bound(
        &w,
        &provisioned(&["ana"], Vec::new()),
        &BTreeMap::new(),
        &BTreeMap::new(),
    );
    let (added, _, conflicts) = joins(&p);
    assert!(
        added.is_empty() && conflicts.len() == 1,
        "{added:?} {conflicts:?}"
    );
    assert!(conflicts[0].contains("made by hand"), "{}", conflicts[0]);

    // Adopted by name: handed over, and the binding recorded with the add.
    let mut adopting = spec.clone();
    adopting.adopt_users = vec!["CY".into()];
    let w = [wanted(&adopting, Members::Read(vec![person("ana"), cy]))];
    let p = run_bound(&w, &o_with(&["ana"]), &BTreeMap::new(), &recorded);
    let (added, ids, conflicts) = joins(&p);
    assert_eq!(added, ["cy"]);
    assert_eq!(ids.get("cy").map(String::as_str), Some("id-cy"));
    assert!(conflicts.is_empty(), "{conflicts:?}");
    let bindings = p.changes.iter().find_map(|c| match &c.action {
        Action::People(PeopleAction::AddGroupMembers { bindings, .. }) => Some(bindings.clone()),
        _ => None,
    });
    assert_eq!(
        bindings.unwrap().get("cy").map(String::as_str),
        Some("entra-new-cy")
    );
}

fn o_with(members: &[&str]) -> ObservedIdentityCenter {
    provisioned(members, Vec::new())
}

#[test]
fn an_external_id_binds_a_user_and_a_case_only_difference_uses_the_listed_id() {
    let spec = spec();
    let mut o = provisioned(&["ana"], Vec::new());
    // SCIM made Bo's user (its external id is Bo's object id), and Di's for someone
    // else; "Cy" differs from the UPN only in case.
    o.users[1].external_ids = vec!["ENTRA-BO".into()];
    o.users[3].external_ids = vec!["entra-someone-else".into()];
    o.users[2].user_name = "Cy".into();
    let w = [wanted(
        &spec,
        Members::Read(vec![
            person("ana"),
            person("bo"),
            person("cy"),
            person("di"),
        ]),
    )];
    let recorded = BTreeMap::from([
        ("cy".to_string(), "entra-cy".to_string()),
        ("di".to_string(), "entra-di".to_string()),
    ]);
    let p = run_bound(&w, &o, &BTreeMap::new(), &recorded);
    let (added, ids, conflicts) = joins(&p);
    assert_eq!(added, ["bo", "cy"], "{conflicts:?}");
    assert_eq!(
        ids.get("cy").map(String::as_str),
        Some("id-cy"),
        "the listed id, not a look-up by the UPN's spelling"
    );
    assert_eq!(conflicts.len(), 1, "{conflicts:?}");
    assert!(conflicts[0].contains("external id"), "{}", conflicts[0]);
}

#[test]
fn a_group_of_that_name_trustsync_does_not_own_is_a_conflict_and_nothing_is_planned() {
    let spec = spec();
    let w = [wanted(&spec, Members::Read(vec![person("ana")]))];
    let mut o = provisioned(&["ana"], Vec::new());
    o.groups[0].description = Some("made by hand".into());
    let p = run(&w, &o);
    assert!(p.changes.is_empty(), "{:#?}", p.changes);
    assert_eq!(p.problems[0].kind, ProblemKind::Conflict);
}

#[test]
fn a_permission_set_name_taken_by_someone_else_still_lets_departures_go() {
    let spec = spec();
    let w = [wanted(
        &spec,
        Members::Read(vec![person("ana"), person("di")]),
    )];
    let mut o = provisioned(&["ana", "bo"], Vec::new());
    o.permission_sets[0].description = Some("made by hand".into());
    let p = run(&w, &o);
    assert_eq!(
        names(&p),
        ["remove-group-members"],
        "bo goes, di is not added"
    );
    assert_eq!(p.problems[0].kind, ProblemKind::Conflict);
}

#[test]
fn an_unresolved_group_removes_all_but_those_who_may_keep_and_adds_nobody() {
    let spec = spec();
    let w = [wanted(
        &spec,
        Members::Unresolved {
            why: "ambiguous".into(),
            may_keep: BTreeSet::from(["ANA".to_string()]),
        },
    )];
    let p = run(&w, &provisioned(&["ana", "bo"], Vec::new()));
    assert_eq!(p.changes[0].members_removed, ["bo"]);
    assert!(!names(&p).contains(&"add-group-members"));
    assert_eq!(p.problems[0].kind, ProblemKind::MappingError);
}

#[test]
fn a_blocked_document_only_revokes() {
    let spec = spec();
    let mut w = wanted(&spec, Members::Read(vec![person("ana"), person("di")]));
    w.blocked = true;
    let p = run(&[w], &provisioned(&["ana", "bo"], Vec::new()));
    assert_eq!(
        names(&p),
        ["remove-group-members", "deny-permission-set-sessions"],
        "di is not added, bo is removed"
    );
}

#[test]
fn a_set_of_trustsyncs_without_the_owner_tag_is_tagged_before_anything_else() {
    assert_eq!(owner_tag(MARK), Some(("managed-by", "trustsync")));
    assert_eq!(
        owner_tag("[trustsync trustsync.dev/owner=prod]"),
        Some(("trustsync.dev/owner", "prod"))
    );
    assert_eq!(owner_tag("no mark"), None);
    let spec = spec();
    let tags_of = |tags: Option<&[(&str, &str)]>| {
        let mut o = provisioned(&["ana", "bo"], Vec::new());
        o.permission_sets[0].policies.as_mut().unwrap().tags = tags.map(|t| {
            t.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        });
        o
    };
    // Made before sets were tagged: tagged, and a departure still goes in the same
    // pass, after the tag (the revocations are allowed on tagged sets only).
    let w = [wanted(&spec, Members::Read(vec![person("ana")]))];
    let mut p = run(&w, &tags_of(Some(&[("team", "ops")])));
    p.changes.sort_by_key(|c| c.action.phase());
    assert_eq!(
        names(&p),
        [
            "tag-permission-set",
            "remove-group-members",
            "deny-permission-set-sessions"
        ]
    );
    let Action::People(PeopleAction::TagPermissionSet {
        permission_set_arn,
        tags,
        ..
    }) = &p.changes[0].action
    else {
        panic!("{:?}", p.changes[0].action)
    };
    assert_eq!(permission_set_arn, "ps-1");
    assert_eq!(
        tags,
        &BTreeMap::from([("managed-by".to_string(), "trustsync".to_string())])
    );
    // Another instance's value is not ours either.
    let p = run(&w, &tags_of(Some(&[("managed-by", "staging")])));
    assert!(names(&p).contains(&"tag-permission-set"), "{:?}", names(&p));
    // Tagged already, or tags not read (the fast path): nothing to tag.
    for o in [tags_of(Some(&[("managed-by", "trustsync")])), tags_of(None)] {
        let p = run(&w, &o);
        assert!(
            !names(&p).contains(&"tag-permission-set"),
            "{:?}",
            names(&p)
        );
    }
}

#[test]
fn the_set_assigned_elsewhere_is_taken_away() {
    let spec = spec();
    let w = [wanted(&spec, Members::Read(vec![person("ana")]))];
    let mut o = provisioned(&["ana"], Vec::new());
    o.assignments.push(IdentityCenterAssignment {
        account: "111111111111".into(),
        permission_set_arn: "ps-1".into(),
        principal_type: AssignedTo::User,
        principal_id: "id-bo".into(),
    });
    let p = run(&w, &o);
    assert_eq!(names(&p), ["delete-account-assignment"]);
    assert!(p.changes[0].action.is_revocation());
}

#[test]
fn iso_durations_read_as_identity_center_writes_them() {
    use crate::sources::policy::iso_duration_seconds as secs;
    assert_eq!(secs("PT1H"), Some(3600));
    assert_eq!(secs("PT1H30M"), Some(5400));
    assert_eq!(secs("PT90M"), Some(5400));
    assert_eq!(secs("PT"), None);
    assert_eq!(secs("P1D"), None);
    assert_eq!(secs("PTH"), None);
    assert_eq!(secs("PT1"), None);
}

/// The instance as SCIM or a person left it: the group `ops` (no mark) holding `members`
/// and assigned the set `Ops` (no mark, the document's policies, no tags), nothing
/// provisioned beyond the accounts read.
fn made_by_hand(members: &[&str]) -> ObservedIdentityCenter {
    let mut o = provisioned(members, Vec::new());
    o.groups[0].description = Some("payments engineers (SCIM)".into());
    o.groups[0].holds = Some(GroupHolds::Read(o.assignments.clone()));
    let set = &mut o.permission_sets[0];
    set.description = Some("Payments engineers in production".into());
    let p = set.policies.as_mut().unwrap();
    p.tags = Some(BTreeMap::new());
    p.provisioned_elsewhere = Some(Vec::new());
    o
}

fn adopting() -> AccessAssignmentSpec {
    let mut s = spec();
    s.adopt = true;
    s
}

/// No record binds the store's users: only the group's membership does (as for a group
/// SCIM or a person made).
fn run_unrecorded(wanted: &[Wanted], observed: &ObservedIdentityCenter) -> Plan {
    run_bound(wanted, observed, &BTreeMap::new(), &BTreeMap::new())
}

#[test]
fn adopt_marks_the_group_and_set_keeps_the_assignment_and_reconciles_members() {
    let spec = adopting();
    let w = [wanted(
        &spec,
        Members::Read(vec![person("ana"), person("eve")]),
    )];
    let o = made_by_hand(&["ana", "bo"]);
    let mut p = run_unrecorded(&w, &o);
    p.changes.sort_by_key(|c| c.action.phase());
    assert!(p.problems.is_empty(), "{:#?}", p.problems);
    assert_eq!(
        names(&p),
        [
            "adopt-identity-store-group",
            "adopt-permission-set",
            "remove-group-members",
            "deny-permission-set-sessions",
            "create-identity-store-user",
            "add-group-members"
        ],
        "the group keeps its id, so the assignment stays: no group, set or assignment made or deleted"
    );
    let Action::People(PeopleAction::AdoptIdentityStoreGroup {
        group_id,
        description,
        ..
    }) = &p.changes[0].action
    else {
        panic!()
    };
    assert_eq!(group_id, "g1");
    assert!(description.contains(MARK), "{description}");
    let Action::People(PeopleAction::AdoptPermissionSet {
        tags,
        description,
        session_duration,
        ..
    }) = &p.changes[1].action
    else {
        panic!()
    };
    assert_eq!(
        tags,
        &BTreeMap::from([("managed-by".to_string(), "trustsync".to_string())])
    );
    assert_eq!(description, MARK, "the document gives no description");
    assert_eq!(session_duration, "PT2H", "the session length it has");
    assert_eq!(
        p.changes[2].members_removed,
        ["bo"],
        "not in the Entra group"
    );
    assert_eq!(p.changes[5].members_added, ["eve"]);
    // The adopted group counts among trustsync's people for the pass-wide limit.
    assert_eq!(p.trusted_baseline, 2);

    // Once adopted (marked, tagged, members reconciled), nothing is left to do.
    let mut after = provisioned(&["ana", "eve"], Vec::new());
    after.users.push(user("eve"));
    after.permission_sets[0].policies.as_mut().unwrap().tags =
        Some(BTreeMap::from([("managed-by".into(), "trustsync".into())]));
    let people: BTreeMap<String, String> = [("ana", "entra-ana"), ("eve", "entra-eve")]
        .map(|(u, e)| (u.to_string(), e.to_string()))
        .into();
    let again = run_bound(&w, &after, &BTreeMap::new(), &people);
    assert!(again.changes.is_empty(), "{:?}", names(&again));
}

#[test]
fn without_adopt_or_when_blocked_an_unmarked_group_stays_a_conflict() {
    let plain = spec();
    let w = [wanted(&plain, Members::Read(vec![person("ana")]))];
    let p = run_unrecorded(&w, &made_by_hand(&["ana"]));
    assert!(p.changes.is_empty(), "{:?}", names(&p));
    assert!(
        p.problems[0].message.contains("adopt: true"),
        "{:?}",
        p.problems
    );
    let spec = adopting();
    let mut blocked = wanted(&spec, Members::Read(vec![person("ana")]));
    blocked.blocked = true;
    let p = run_unrecorded(&[blocked], &made_by_hand(&["ana"]));
    assert!(
        p.changes.is_empty(),
        "a blocked document adopts nothing: {:?}",
        names(&p)
    );
    assert_eq!(p.problems[0].kind, ProblemKind::Conflict);
    // A focused pass did not read what deciding needs: it plans as without `adopt`.
    let w = [wanted(&spec, Members::Read(vec![person("ana")]))];
    let o = made_by_hand(&["ana"]);
    let p = plan(&Inputs {
        wanted: &w,
        observed: &o,
        mark: MARK,
        owner_tag: &crate::config::OwnerTag {
            key: "managed-by".into(),
            value: "trustsync".into(),
        },
        now: NOW,
        prune: false,
        adopting: false,
        recorded_baselines: &BTreeMap::new(),
        window_seconds: 3600,
        propagation_seconds: 300,
        recorded_people: &BTreeMap::new(),
    });
    assert!(p.changes.is_empty(), "{:?}", names(&p));
    assert!(
        p.problems[0].message.contains("does not own"),
        "{:?}",
        p.problems
    );
}

/// The hostile author of the input: each thing in the way of a safe take-over refuses the
/// whole adoption (a conflict naming it), and nothing at all is written.
#[test]
fn adoption_is_refused_when_it_would_keep_cut_or_widen_access() {
    type Edit = fn(&mut ObservedIdentityCenter);
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "a person holds the set directly",
            |o| {
                o.assignments.push(IdentityCenterAssignment {
                    account: "111111111111".into(),
                    permission_set_arn: "ps-1".into(),
                    principal_type: AssignedTo::User,
                    principal_id: "id-cy".into(),
                })
            },
            "assigned to people directly (cy in 111111111111)",
        ),
        (
            "another group holds the set",
            |o| {
                o.groups.push(IdentityCenterGroup {
                    id: "g2".into(),
                    display_name: "auditors".into(),
                    description: None,
                    members: Vec::new(),
                    holds: None,
                });
                o.assignments.push(IdentityCenterAssignment {
                    account: "111111111111".into(),
                    permission_set_arn: "ps-1".into(),
                    principal_type: AssignedTo::Group,
                    principal_id: "g2".into(),
                });
            },
            "assigned to other groups (auditors in 111111111111)",
        ),
        (
            "the group holds another set (a name crafted to match the document)",
            |o| {
                o.permission_sets.push(IdentityCenterPermissionSet {
                    arn: "ps-admin".into(),
                    name: "Admin".into(),
                    session_duration: None,
                    description: None,
                    policies: None,
                });
                let Some(GroupHolds::Read(held)) = o.groups[0].holds.as_mut() else {
                    panic!()
                };
                held.push(IdentityCenterAssignment {
                    account: "222222222222".into(),
                    permission_set_arn: "ps-admin".into(),
                    principal_type: AssignedTo::Group,
                    principal_id: "g1".into(),
                });
            },
            "holds other permission sets (Admin in 222222222222)",
        ),
        (
            "what the group holds could not be read",
            |o| o.groups[0].holds = Some(GroupHolds::Unreadable("AccessDenied".into())),
            "could not be read (AccessDenied)",
        ),
        (
            "another trustsync instance marks the set",
            |o| o.permission_sets[0].description = Some("[trustsync managed-by=blue]".into()),
            "another trustsync instance's mark",
        ),
        (
            "another trustsync instance marks the group",
            |o| o.groups[0].description = Some("[trustsync managed-by=blue]: x".into()),
            "another trustsync instance's mark",
        ),
        (
            "another controller's owner tag on the set",
            |o| {
                o.permission_sets[0].policies.as_mut().unwrap().tags =
                    Some(BTreeMap::from([("managed-by".into(), "terraform".into())]))
            },
            "owner tag managed-by=terraform",
        ),
        (
            "the set is provisioned where nobody looked",
            |o| {
                o.permission_sets[0]
                    .policies
                    .as_mut()
                    .unwrap()
                    .provisioned_elsewhere = Some(vec!["333333333333".into()])
            },
            "provisioned in accounts whose assignments trustsync does not read (333333333333)",
        ),
        (
            "two groups of the document's name",
            |o| {
                let mut twin = o.groups[0].clone();
                twin.id = "g9".into();
                twin.display_name = "OPS".into();
                o.groups.push(twin);
            },
            "2 identity-store groups are named `ops`",
        ),
    ];
    let spec = adopting();
    for (what, edit, said) in cases {
        let w = [wanted(&spec, Members::Read(vec![person("ana")]))];
        let mut o = made_by_hand(&["ana"]);
        edit(&mut o);
        let p = run_unrecorded(&w, &o);
        assert!(p.changes.is_empty(), "{what}: {:?}", names(&p));
        assert!(
            p.problems.iter().any(|x| x.kind == ProblemKind::Conflict
                && x.message.contains(said)
                && x.message.starts_with("not adopted")),
            "{what}: {:#?}",
            p.problems
        );
    }
}

#[test]
fn adopting_only_the_set_beside_trustsyncs_group_takes_no_access_away() {
    // trustsync's group exists; the set of the document's name was made by hand and is
    // assigned to nobody yet: it is adopted and then assigned to the group.
    let spec = adopting();
    let w = [wanted(&spec, Members::Read(vec![person("ana")]))];
    let mut o = provisioned(&["ana"], Vec::new());
    o.assignments.clear();
    let p0 = o.permission_sets[0].policies.as_mut().unwrap();
    p0.tags = Some(BTreeMap::new());
    p0.provisioned_elsewhere = Some(Vec::new());
    o.permission_sets[0].description = Some("by hand".into());
    let mut p = run(&w, &o);
    p.changes.sort_by_key(|c| c.action.phase());
    assert_eq!(
        names(&p),
        ["adopt-permission-set", "create-account-assignment"],
        "{:#?}",
        p.problems
    );
}
