//! People through IAM Identity Center, through the binary against moto's identitystore
//! and ssoadmin and the local Graph server: an AccessAssignment onboards the people of an
//! Entra group (directly and through a nested group), a disabled account loses its
//! membership and the sessions it holds are denied (judged by principalmapper), an
//! unmanaged group and user are left alone, and an emptied group is held by the safety
//! limits.

mod support;

use serde_json::{json, Value};
use support::judge::{now, Judge};
use support::*;

const ACCOUNT: &str = "123456789012";
const DANA: &str = "c0ffee00-2222-4222-8222-000000000001";
const SAM: &str = "c0ffee00-2222-4222-8222-000000000002";
const LEE: &str = "c0ffee00-2222-4222-8222-000000000003";
const KIM: &str = "c0ffee00-2222-4222-8222-000000000004";
const PEOPLE: &str = "a1b2c3d4-0001-4000-8000-000000000010";
const ONCALL: &str = "a1b2c3d4-0001-4000-8000-000000000011";

const POLICY: &str = r#"apiVersion: trustsync.dev/v1alpha1
kind: AccessAssignment
metadata:
  name: payments-people
  labels: {team: payments}
spec:
  group: {displayName: sg-aws-payments-people}
  members: {transitive: true}
  permissionSet:
    name: PaymentsOps
    description: Payments engineers in production
    sessionDuration: PT2H
    managedPolicies: [arn:aws:iam::aws:policy/ReadOnlyAccess]
    customerManagedPolicies: [{name: payments-boundary-reader}]
    inlinePolicy:
      Version: "2012-10-17"
      Statement:
        - {Effect: Allow, Action: "s3:GetObject", Resource: "arn:aws:s3:::payments-reports/*"}
  accounts: {ids: ["123456789012"]}
"#;

/// The tenant: the payments people group holds Dana and Kim directly, Sam (a guest) and
/// the on-call group, which holds Lee.
fn tenant(ws: &Workspace) {
    ws.edit_tenant(|t| {
        let users = t["users"].as_array_mut().unwrap();
        users.push(json!({"id": LEE, "displayName": "Lee Park", "userPrincipalName": "lee@example.com",
            "givenName": "Lee", "surname": "Park", "mail": "lee@example.com", "accountEnabled": true, "userType": "Member"}));
        users.push(json!({"id": KIM, "displayName": "Kim", "userPrincipalName": "kim@example.com",
            "accountEnabled": true, "userType": "Member"}));
        let groups = t["groups"].as_array_mut().unwrap();
        groups.push(json!({"id": PEOPLE, "displayName": "sg-aws-payments-people", "members": [DANA, KIM, SAM, ONCALL]}));
        groups.push(json!({"id": ONCALL, "displayName": "sg-payments-oncall", "members": [LEE]}));
    });
}

struct Center {
    admin: aws_sdk_ssoadmin::Client,
    store: aws_sdk_identitystore::Client,
    instance: String,
    store_id: String,
}

impl Center {
    fn new(moto: &Moto) -> Center {
        let admin = aws_sdk_ssoadmin::Client::new(moto.sdk());
        let store = aws_sdk_identitystore::Client::new(moto.sdk());
        let (instance, store_id) = moto.block_on(async {
            let i = admin.list_instances().send().await.unwrap();
            let i = &i.instances()[0];
            (
                i.instance_arn().unwrap().to_string(),
                i.identity_store_id().unwrap().to_string(),
            )
        });
        Center {
            admin,
            store,
            instance,
            store_id,
        }
    }

    /// Users by user name -> id.
    fn users(&self, moto: &Moto) -> std::collections::BTreeMap<String, String> {
        let out = moto
            .block_on(
                self.store
                    .list_users()
                    .identity_store_id(&self.store_id)
                    .send(),
            )
            .unwrap();
        out.users()
            .iter()
            .map(|u| (u.user_name().unwrap().to_string(), u.user_id().to_string()))
            .collect()
    }

    fn group_id(&self, moto: &Moto, name: &str) -> Option<String> {
        let out = moto
            .block_on(
                self.store
                    .list_groups()
                    .identity_store_id(&self.store_id)
                    .send(),
            )
            .unwrap();
        out.groups()
            .iter()
            .find(|g| g.display_name() == Some(name))
            .map(|g| g.group_id().to_string())
    }

    /// The user names of a group's members, sorted.
    fn members(&self, moto: &Moto, group: &str) -> Vec<String> {
        let id = self.group_id(moto, group).expect("the group exists");
        let names: std::collections::BTreeMap<String, String> = self
            .users(moto)
            .into_iter()
            .map(|(name, id)| (id, name))
            .collect();
        let out = moto
            .block_on(
                self.store
                    .list_group_memberships()
                    .identity_store_id(&self.store_id)
                    .group_id(&id)
                    .send(),
            )
            .unwrap();
        let mut m: Vec<String> = out
            .group_memberships()
            .iter()
            .filter_map(|m| m.member_id()?.as_user_id().ok())
            .map(|id| names[id].clone())
            .collect();
        m.sort();
        m
    }

    fn permission_set(&self, moto: &Moto, name: &str) -> Option<String> {
        moto.block_on(async {
            let sets = self
                .admin
                .list_permission_sets()
                .instance_arn(&self.instance)
                .send()
                .await
                .unwrap();
            for arn in sets.permission_sets() {
                let d = self
                    .admin
                    .describe_permission_set()
                    .instance_arn(&self.instance)
                    .permission_set_arn(arn)
                    .send()
                    .await
                    .unwrap();
                if d.permission_set().and_then(|p| p.name()) == Some(name) {
                    return Some(arn.clone());
                }
            }
            None
        })
    }

    fn inline_policy(&self, moto: &Moto, set: &str) -> Value {
        let out = moto
            .block_on(
                self.admin
                    .get_inline_policy_for_permission_set()
                    .instance_arn(&self.instance)
                    .permission_set_arn(set)
                    .send(),
            )
            .unwrap();
        serde_json::from_str(out.inline_policy().unwrap()).unwrap()
    }

    /// (principal type, principal id) assigned `set` in the account.
    fn assignments(&self, moto: &Moto, set: &str) -> Vec<(String, String)> {
        let out = moto
            .block_on(
                self.admin
                    .list_account_assignments()
                    .instance_arn(&self.instance)
                    .account_id(ACCOUNT)
                    .permission_set_arn(set)
                    .send(),
            )
            .unwrap();
        out.account_assignments()
            .iter()
            .map(|a| {
                (
                    a.principal_type().unwrap().as_str().to_string(),
                    a.principal_id().unwrap().to_string(),
                )
            })
            .collect()
    }
}

fn run(moto: &Moto, ws: &Workspace, graph: &GraphServer, args: &[&str], code: i32) -> String {
    let out = command(ws.path(), &moto.endpoint)
        .envs(graph.env(CLIENT_SECRET))
        .args(["--config", "trustsync.yaml"])
        .args(args)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(code), "{}", show(&out));
    show(&out)
}

fn apply(moto: &Moto, ws: &Workspace, graph: &GraphServer, code: i32) -> String {
    run(moto, ws, graph, &["apply", "--auto-approve"], code)
}

/// `audit show --principal`: what the workspace's audit log says of one person.
fn audit_show(moto: &Moto, ws: &Workspace, graph: &GraphServer, principal: &str) -> String {
    let log = ws.path().join("audit.jsonl");
    let args = [
        "audit",
        "show",
        log.to_str().unwrap(),
        "--principal",
        principal,
    ];
    run(moto, ws, graph, &args, 0)
}

fn plan(moto: &Moto, ws: &Workspace, graph: &GraphServer, code: i32) -> Value {
    let out = run(moto, ws, graph, &["plan", "--output", "json"], code);
    let json = &out[out.find('{').unwrap()..out.rfind('}').unwrap() + 1];
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// May a session of the permission set's role, issued to `user_id` at `issued`, read the
/// payments reports? The provisioned role carries the permission set's inline policy
/// (Identity Center writes it there on provisioning; moto does not model the role).
fn may_read(judge: &Judge, inline: &Value, user_id: &str, user_name: &str, issued: u64) -> bool {
    let iso = |t: u64| {
        time::OffsetDateTime::from_unix_timestamp(t as i64)
            .unwrap()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let answer = judge
        .check(vec![json!({
            "op": "identity",
            // The role Identity Center provisions, at its documented path.
            "principal": format!("arn:aws:iam::{ACCOUNT}:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_PaymentsOps_0123456789abcdef"),
            "policies": [inline],
            "action": "s3:GetObject",
            "resource": "arn:aws:s3:::payments-reports/2026/q4.csv",
            "context": {
                "identitystore:userId": user_id,
                "aws:userid": format!("AROAEXAMPLESSOROLE:{user_name}"),
                "aws:TokenIssueTime": iso(issued),
                "aws:CurrentTime": iso(now()),
            },
        })])
        .remove(0);
    answer["allowed"].as_bool().unwrap()
}

#[test]
fn people_are_onboarded_deprovisioned_with_their_sessions_and_an_emptied_group_is_held() {
    let moto = Moto::start();
    let ws = Workspace::new();
    ws.write("trustsync.yaml", "audit: {path: audit.jsonl}\n");
    ws.write("policies/people.yaml", POLICY);
    tenant(&ws);
    moto.create_functions(&["payments-api"]);
    let ic = Center::new(&moto);
    // What trustsync must leave alone: a group and a user someone else made.
    let outsider = moto
        .block_on(
            ic.store
                .create_user()
                .identity_store_id(&ic.store_id)
                .user_name("outsider@example.com")
                .display_name("Out Sider")
                .name(
                    aws_sdk_identitystore::types::Name::builder()
                        .given_name("Out")
                        .family_name("Sider")
                        .build(),
                )
                .send(),
        )
        .unwrap()
        .user_id()
        .to_string();
    let contractors = moto
        .block_on(
            ic.store
                .create_group()
                .identity_store_id(&ic.store_id)
                .display_name("contractors")
                .send(),
        )
        .unwrap()
        .group_id()
        .to_string();
    moto.block_on(
        ic.store
            .create_group_membership()
            .identity_store_id(&ic.store_id)
            .group_id(&contractors)
            .member_id(aws_sdk_identitystore::types::MemberId::UserId(
                outsider.clone(),
            ))
            .send(),
    )
    .unwrap();
    let graph = GraphServer::start(&ws.path().join("examples/tenant.json"), 999);

    // Onboarding: Dana and Kim directly, Lee through the nested group; Sam is a guest.
    let planned = plan(&moto, &ws, &graph, 0);
    assert!(
        planned["notices"].to_string().contains("guests-left-out"),
        "{planned:#}"
    );
    apply(&moto, &ws, &graph, 0);
    let users = ic.users(&moto);
    assert!(
        users.contains_key("dana@example.com")
            && users.contains_key("kim@example.com")
            && users.contains_key("lee@example.com"),
        "{users:?}"
    );
    assert!(
        !users.keys().any(|u| u.contains("#EXT#")),
        "a guest is left out by default: {users:?}"
    );
    assert_eq!(
        ic.members(&moto, "payments-people"),
        ["dana@example.com", "kim@example.com", "lee@example.com"]
    );
    let set = ic
        .permission_set(&moto, "PaymentsOps")
        .expect("the permission set");
    let group = ic.group_id(&moto, "payments-people").unwrap();
    assert_eq!(
        ic.assignments(&moto, &set),
        [("GROUP".to_string(), group.clone())]
    );
    // Nothing to do the second time.
    let again = plan(&moto, &ws, &graph, 0);
    let people_changes: Vec<&Value> = again["changes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["mapping"] == "payments-people")
        .collect();
    assert!(people_changes.is_empty(), "{again:#}");

    // Sessions issued an hour ago: Dana's and Lee's work.
    let judge = Judge::policies_only();
    let before = now() - 3600;
    let inline = ic.inline_policy(&moto, &set);
    let dana = users["dana@example.com"].clone();
    let lee = users["lee@example.com"].clone();
    assert!(may_read(&judge, &inline, &dana, "dana@example.com", before));
    assert!(may_read(&judge, &inline, &lee, "lee@example.com", before));

    // Dana's account is disabled: she leaves the group, and the session she holds is
    // denied; Lee's still works.
    let (status, body) = graph.admin(
        "PATCH",
        &format!("/admin/users/{DANA}"),
        Some(json!({"accountEnabled": false})),
    );
    assert_eq!(status, 204, "{body}");
    apply(&moto, &ws, &graph, 0);
    assert_eq!(
        ic.members(&moto, "payments-people"),
        ["kim@example.com", "lee@example.com"]
    );
    let inline = ic.inline_policy(&moto, &set);
    assert!(
        !may_read(&judge, &inline, &dana, "dana@example.com", before),
        "Dana's session is denied: {inline:#}"
    );
    assert!(may_read(&judge, &inline, &lee, "lee@example.com", before));
    assert!(
        users.contains_key("dana@example.com"),
        "users are never deleted"
    );
    // The audit log answers for people as for workloads: granted, then revoked.
    let shown = audit_show(&moto, &ws, &graph, "dana@example.com");
    assert!(
        shown.contains("granted")
            && shown.contains("revoked")
            && shown.contains("disabled in Entra"),
        "{shown}"
    );

    // Left alone: the unmanaged group, its member, the user.
    assert_eq!(ic.members(&moto, "contractors"), ["outsider@example.com"]);

    // An emptied group (Kim and Lee gone at once, 2 of 2) is held by the safety limits.
    graph.remove_member(PEOPLE, KIM);
    graph.remove_member(ONCALL, LEE);
    let held = apply(&moto, &ws, &graph, 1);
    assert!(held.contains("mapping-removal-limit"), "{held}");
    assert_eq!(
        ic.members(&moto, "payments-people"),
        ["kim@example.com", "lee@example.com"],
        "held: nobody removed"
    );
    let inline = ic.inline_policy(&moto, &set);
    assert!(
        may_read(&judge, &inline, &lee, "lee@example.com", before),
        "held: their sessions are not denied either"
    );

    // Dana is back: she rejoins, and a session issued now works.
    let (status, body) = graph.admin(
        "PATCH",
        &format!("/admin/users/{DANA}"),
        Some(json!({"accountEnabled": true})),
    );
    assert_eq!(status, 204, "{body}");
    let _ = apply(&moto, &ws, &graph, 1);
    assert!(ic
        .members(&moto, "payments-people")
        .contains(&"dana@example.com".to_string()));
    let inline = ic.inline_policy(&moto, &set);
    assert!(may_read(&judge, &inline, &dana, "dana@example.com", now()));

    // A person releases the held removal: Kim and Lee go, their sessions are denied.
    run(
        &moto,
        &ws,
        &graph,
        &["apply", "--auto-approve", "--release", "payments-people"],
        0,
    );
    assert_eq!(ic.members(&moto, "payments-people"), ["dana@example.com"]);
    let inline = ic.inline_policy(&moto, &set);
    assert!(!may_read(&judge, &inline, &lee, "lee@example.com", before));
    assert!(may_read(&judge, &inline, &dana, "dana@example.com", now()));
}

/// The controller: with full passes an hour apart, a disabled account (a change only the
/// users' delta feed shows) and a removal from the group each take the person out through
/// the fast path, within a directory poll and a second.
#[test]
fn the_controller_deprovisions_a_disabled_or_departed_person_within_a_poll() {
    let moto = Moto::start();
    let ws = Workspace::new();
    // Two of the group's three people leave within the removal window: over the default
    // share (50%) but not over a floor of two, so both go.
    ws.write(
        "trustsync.yaml",
        "audit: {path: audit.jsonl}\nrun: {intervalSeconds: 3600, directoryPollSeconds: 1}\nsafety: {principalRemovalFloor: 2}\n",
    );
    ws.write("policies/people.yaml", POLICY);
    tenant(&ws);
    moto.create_functions(&["payments-api"]);
    let ic = Center::new(&moto);
    let graph = GraphServer::start(&ws.path().join("examples/tenant.json"), 999);
    let daemon = support::daemon::Daemon::start(&moto, &graph, &ws);
    daemon.wait_ready();
    let members = || {
        ic.group_id(&moto, "payments-people")
            .map(|_| ic.members(&moto, "payments-people"))
            .unwrap_or_default()
    };
    wait_for(
        std::time::Duration::from_secs(30),
        "the first pass to onboard",
        || members().len() == 3,
    );

    // Disabled: no group changes, only the user.
    let (status, body) = graph.admin(
        "PATCH",
        &format!("/admin/users/{LEE}"),
        Some(json!({"accountEnabled": false})),
    );
    assert_eq!(status, 204, "{body}");
    let took = wait_for(
        std::time::Duration::from_secs(30),
        "the disabled account's removal",
        || !members().contains(&"lee@example.com".to_string()),
    );
    println!(
        "people: disabled account out of the group {} ms after the Graph change",
        took.as_millis()
    );

    // Departed: Dana takes Kim out of the Entra group.
    let (status, body) = http(
        "DELETE",
        &format!("{}/admin/groups/{PEOPLE}/members/{KIM}", graph.base),
        Some(json!({"initiatedBy": {"user": {
            "id": DANA, "displayName": "Dana Ops", "userPrincipalName": "dana@example.com"}}})),
    );
    assert_eq!(status, 204, "{body}");
    let took = wait_for(
        std::time::Duration::from_secs(30),
        "the departure's removal",
        || members() == ["dana@example.com"],
    );
    println!(
        "people: departure out of the group {} ms after the Graph change",
        took.as_millis()
    );
    // The pass line is written once the pass's writes are done.
    wait_for(
        std::time::Duration::from_secs(10),
        "the fast path's pass in the audit log",
        || {
            let audit = ws.read("audit.jsonl");
            audit.contains("remove-group-members") && audit.contains("\"trigger\":\"fast-path\"")
        },
    );
    // Who took Kim out in Entra is in the record, as for workloads.
    let shown = audit_show(&moto, &ws, &graph, "kim@example.com");
    assert!(
        shown.contains("revoked")
            && shown.contains(&format!(
                "{KIM} was removed from the group by dana@example.com"
            )),
        "{shown}"
    );
}

/// A permission set's permissions boundary is written, changed and taken off as the
/// document says (moto lacks the calls: tests/moto_server.py answers them as AWS
/// documents them).
#[test]
fn a_permission_sets_boundary_follows_the_document() {
    let moto = Moto::start();
    let ws = Workspace::new();
    ws.write("trustsync.yaml", "audit: {path: audit.jsonl}\n");
    tenant(&ws);
    moto.create_functions(&["payments-api"]);
    let ic = Center::new(&moto);
    let graph = GraphServer::start(&ws.path().join("examples/tenant.json"), 999);
    let with = |boundary: &str| {
        ws.write(
            "policies/people.yaml",
            &POLICY.replace(
                "    managedPolicies:",
                &format!("{boundary}    managedPolicies:"),
            ),
        )
    };
    let boundary = || {
        let set = ic.permission_set(&moto, "PaymentsOps").unwrap();
        moto.block_on(
            ic.admin
                .get_permissions_boundary_for_permission_set()
                .instance_arn(&ic.instance)
                .permission_set_arn(set)
                .send(),
        )
        .ok()
        .and_then(|o| o.permissions_boundary().cloned())
    };
    with("    permissionsBoundary: {managedPolicyArn: arn:aws:iam::aws:policy/PowerUserAccess}\n");
    apply(&moto, &ws, &graph, 0);
    assert_eq!(
        boundary().and_then(|b| b.managed_policy_arn().map(String::from)),
        Some("arn:aws:iam::aws:policy/PowerUserAccess".to_string())
    );
    with("    permissionsBoundary: {customerManagedPolicy: {name: payments-boundary, path: /people/}}\n");
    apply(&moto, &ws, &graph, 0);
    let b = boundary().expect("a boundary");
    let r = b.customer_managed_policy_reference().expect("a reference");
    assert_eq!(
        (r.name(), r.path()),
        ("payments-boundary", Some("/people/"))
    );
    let planned = plan(&moto, &ws, &graph, 0);
    assert!(
        !planned["changes"]
            .to_string()
            .contains("put-permission-set"),
        "no drift once written: {planned:#}"
    );
    with("");
    apply(&moto, &ws, &graph, 0);
    assert!(boundary().is_none(), "taken off with the document's");
}
