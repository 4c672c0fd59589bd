//! `export` for people, through the binary against moto's IAM Identity Center and the
//! tenant file: a permission set a group holds, made as SCIM or a person would make it, is
//! written as an AccessAssignment with `adopt: true` that validates, whose plan takes the
//! set and group over (no second set or group, the existing assignment kept) and whose
//! apply settles; what a document cannot say is said, naming the set; what cannot be taken
//! over safely (a set a person holds directly, one another owner marked) is refused.

mod support;

use aws_sdk_ssoadmin::types::{PrincipalType, TargetType};
use serde_json::{json, Value};
use support::*;

const ACCOUNT: &str = "123456789012";
const DANA: &str = "c0ffee00-2222-4222-8222-000000000001";
const KIM: &str = "c0ffee00-2222-4222-8222-000000000004";
const PEOPLE: &str = "a1b2c3d4-0001-4000-8000-000000000010";

/// Identity Center in moto, written to directly (as SCIM or a person would).
struct Center<'m> {
    moto: &'m Moto,
    admin: aws_sdk_ssoadmin::Client,
    store: aws_sdk_identitystore::Client,
    instance: String,
    store_id: String,
}

impl<'m> Center<'m> {
    fn new(moto: &'m Moto) -> Center<'m> {
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
            moto,
            admin,
            store,
            instance,
            store_id,
        }
    }

    fn user(&self, name: &str, display: &str) -> String {
        let (given, family) = display.split_once(' ').unwrap();
        let names = aws_sdk_identitystore::types::Name::builder()
            .given_name(given)
            .family_name(family)
            .build();
        let create = self
            .store
            .create_user()
            .identity_store_id(&self.store_id)
            .user_name(name)
            .display_name(display)
            .name(names);
        let out = self.moto.block_on(create.send()).unwrap();
        out.user_id().to_string()
    }

    fn group(&self, name: &str, members: &[&str]) -> String {
        let create = self
            .store
            .create_group()
            .identity_store_id(&self.store_id)
            .display_name(name);
        let id = self
            .moto
            .block_on(create.send())
            .unwrap()
            .group_id()
            .to_string();
        for m in members {
            let add = self
                .store
                .create_group_membership()
                .identity_store_id(&self.store_id)
                .group_id(&id)
                .member_id(aws_sdk_identitystore::types::MemberId::UserId(
                    m.to_string(),
                ));
            self.moto.block_on(add.send()).unwrap();
        }
        id
    }

    fn set(&self, name: &str, duration: &str, description: &str) -> String {
        let create = self
            .admin
            .create_permission_set()
            .instance_arn(&self.instance)
            .name(name)
            .description(description)
            .session_duration(duration);
        let out = self.moto.block_on(create.send()).unwrap();
        let arn = out.permission_set().unwrap().permission_set_arn().unwrap();
        arn.to_string()
    }

    fn assign(&self, set: &str, to: PrincipalType, id: &str) {
        let assign = self
            .admin
            .create_account_assignment()
            .instance_arn(&self.instance)
            .target_id(ACCOUNT)
            .target_type(TargetType::AwsAccount)
            .permission_set_arn(set)
            .principal_type(to)
            .principal_id(id);
        self.moto.block_on(assign.send()).unwrap();
    }

    /// The principals the set is assigned to in the account.
    fn assigned(&self, set: &str) -> Vec<String> {
        let list = self
            .admin
            .list_account_assignments()
            .instance_arn(&self.instance)
            .account_id(ACCOUNT)
            .permission_set_arn(set);
        let out = self.moto.block_on(list.send()).unwrap();
        out.account_assignments()
            .iter()
            .map(|a| a.principal_id().unwrap().to_string())
            .collect()
    }

    fn set_names(&self) -> Vec<String> {
        let list = self
            .admin
            .list_permission_sets()
            .instance_arn(&self.instance);
        let arns = self.moto.block_on(list.send()).unwrap();
        let mut names: Vec<String> = arns
            .permission_sets()
            .iter()
            .map(|arn| {
                let d = self
                    .admin
                    .describe_permission_set()
                    .instance_arn(&self.instance)
                    .permission_set_arn(arn);
                let d = self.moto.block_on(d.send()).unwrap();
                d.permission_set().unwrap().name().unwrap().to_string()
            })
            .collect();
        names.sort();
        names
    }

    fn group_description(&self, id: &str) -> String {
        let d = self
            .store
            .describe_group()
            .identity_store_id(&self.store_id)
            .group_id(id);
        let out = self.moto.block_on(d.send()).unwrap();
        out.description().unwrap_or_default().to_string()
    }

    /// The group's members (user ids), sorted.
    fn members(&self, id: &str) -> Vec<String> {
        let list = self
            .store
            .list_group_memberships()
            .identity_store_id(&self.store_id)
            .group_id(id);
        let out = self.moto.block_on(list.send()).unwrap();
        let mut ids: Vec<String> = out
            .group_memberships()
            .iter()
            .filter_map(|m| m.member_id()?.as_user_id().ok().cloned())
            .collect();
        ids.sort();
        ids
    }

    fn set_tags(&self, set: &str) -> std::collections::BTreeMap<String, String> {
        let list = self
            .admin
            .list_tags_for_resource()
            .instance_arn(&self.instance)
            .resource_arn(set);
        let out = self.moto.block_on(list.send()).unwrap();
        out.tags()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect()
    }

    fn inline(&self, set: &str) -> String {
        let get = self
            .admin
            .get_inline_policy_for_permission_set()
            .instance_arn(&self.instance)
            .permission_set_arn(set);
        let out = self.moto.block_on(get.send()).unwrap();
        out.inline_policy().unwrap_or_default().to_string()
    }

    fn group_names(&self) -> Vec<String> {
        let list = self.store.list_groups().identity_store_id(&self.store_id);
        let out = self.moto.block_on(list.send()).unwrap();
        let mut names: Vec<String> = out
            .groups()
            .iter()
            .map(|g| g.display_name().unwrap().to_string())
            .collect();
        names.sort();
        names
    }
}

/// A workspace with no policies of its own, and the payments people group (Dana and Kim)
/// in the tenant file.
fn workspace() -> Workspace {
    let ws = Workspace::new();
    for entry in std::fs::read_dir(ws.path().join("policies")).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    ws.edit_tenant(|t| {
        t["users"]
            .as_array_mut()
            .unwrap()
            .push(json!({"id": KIM, "displayName": "Kim Lo",
            "userPrincipalName": "kim@example.com", "accountEnabled": true, "userType": "Member"}));
        t["groups"].as_array_mut().unwrap().push(
            json!({"id": PEOPLE, "displayName": "sg-aws-payments-people", "members": [DANA, KIM]}),
        );
    });
    ws
}

fn run(moto: &Moto, ws: &Workspace, args: &[&str], code: i32) -> std::process::Output {
    let out = Via::moto(moto).run(ws, args);
    assert_eq!(out.status.code(), Some(code), "{args:?}\n{}", show(&out));
    out
}

#[test]
fn an_existing_set_and_group_export_as_an_access_assignment_that_adopts_them() {
    let moto = Moto::start();
    let ws = workspace();
    let ic = Center::new(&moto);
    let dana = ic.user("dana@example.com", "Dana Ops");
    let kim = ic.user("kim@example.com", "Kim Lo");
    let group = ic.group("sg-aws-payments-people", &[&dana, &kim]);
    let set = ic.set("PaymentsOps", "PT2H", "Payments engineers in production");
    let inline = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Action": "s3:GetObject", "Resource": "arn:aws:s3:::payments-reports/*"}]});
    moto.block_on(
        ic.admin
            .put_inline_policy_to_permission_set()
            .instance_arn(&ic.instance)
            .permission_set_arn(&set)
            .inline_policy(inline.to_string())
            .send(),
    )
    .unwrap();
    moto.block_on(
        ic.admin
            .attach_managed_policy_to_permission_set()
            .instance_arn(&ic.instance)
            .permission_set_arn(&set)
            .managed_policy_arn("arn:aws:iam::aws:policy/ReadOnlyAccess")
            .send(),
    )
    .unwrap();
    ic.assign(&set, PrincipalType::Group, &group);

    let out = run(&moto, &ws, &["export"], 0);
    let yaml = stdout(&out);
    let doc: Value = serde_yaml::from_str(
        yaml.split("\n---\n")
            .find(|d| d.contains("kind: AccessAssignment"))
            .unwrap_or_else(|| panic!("no AccessAssignment:\n{}", show(&out))),
    )
    .unwrap();
    assert_eq!(doc["metadata"]["name"], "sg-aws-payments-people");
    let spec = &doc["spec"];
    assert_eq!(spec["group"], json!({"id": PEOPLE}), "{yaml}");
    assert_eq!(spec["guests"], "exclude");
    assert_eq!(
        spec["permissionSet"],
        json!({"name": "PaymentsOps", "description": "Payments engineers in production",
               "sessionDuration": "PT2H",
               "managedPolicies": ["arn:aws:iam::aws:policy/ReadOnlyAccess"],
               "inlinePolicy": inline}),
        "{yaml}"
    );
    assert!(
        !yaml.contains("left out") && !show(&out).contains("warning: permission set"),
        "everything of this set is expressed: {}",
        show(&out)
    );
    assert!(show(&out).contains("1 access assignment(s) exported"));

    ws.write("policies/exported.yaml", &yaml);
    run(&moto, &ws, &["validate"], 0);
    assert_eq!(doc["spec"]["adopt"], true, "{yaml}");
    // The plan takes the set and group over: their marks and the owner tag, nothing else
    // (no second set or group, no assignment removed or made, nobody's membership moved).
    let plan = plan_json(&moto, &ws, 2);
    assert!(plan["problems"].as_array().unwrap().is_empty(), "{plan:#}");
    assert_eq!(
        actions(&plan),
        ["adopt-identity-store-group", "adopt-permission-set"],
        "{plan:#}"
    );
    apply(Via::moto(&moto), &ws, &[]);
    assert_eq!(ic.set_names(), ["PaymentsOps"]);
    assert_eq!(ic.group_names(), ["sg-aws-payments-people"]);
    assert_eq!(
        ic.assigned(&set),
        std::slice::from_ref(&group),
        "the assignment stayed"
    );
    assert!(ic.group_description(&group).contains("[trustsync "));
    assert_eq!(
        ic.set_tags(&set)
            .get("trustsync.dev/owner")
            .map(String::as_str),
        Some("trustsync")
    );
    let mut both = vec![dana.clone(), kim.clone()];
    both.sort();
    assert_eq!(ic.members(&group), both, "nobody's membership moved");

    // From now on the document is reconciled as trustsync's own: Kim leaves the Entra
    // group, and leaves the adopted group, her sessions of the set denied.
    ws.remove_tenant_member(PEOPLE, KIM);
    let plan = plan_json(&moto, &ws, 2);
    assert_eq!(
        actions(&plan),
        ["remove-group-members", "deny-permission-set-sessions"],
        "{plan:#}"
    );
    apply(Via::moto(&moto), &ws, &[]);
    assert_eq!(ic.members(&group), [dana]);
    let denied = ic.inline(&set);
    assert!(
        denied.contains(&kim) && denied.contains("s3:GetObject"),
        "{denied}"
    );
}

/// A person holds the set directly as well as through the group: once trustsync owned the
/// set, a plan would take that assignment away (a set of trustsync's is granted through its
/// group only), and keeping it would leave access the document does not show. Adoption is
/// refused, naming them, and nothing is written.
#[test]
fn adoption_refuses_a_set_a_person_holds_directly() {
    let moto = Moto::start();
    let ws = workspace();
    let ic = Center::new(&moto);
    let dana = ic.user("dana@example.com", "Dana Ops");
    let kim = ic.user("kim@example.com", "Kim Lo");
    let ex = ic.user("ex@example.com", "Ex Employee");
    let group = ic.group("sg-aws-payments-people", &[&dana, &kim]);
    let set = ic.set("PaymentsOps", "PT1H", "ops");
    ic.assign(&set, PrincipalType::Group, &group);
    ic.assign(&set, PrincipalType::User, &ex);

    let out = run(&moto, &ws, &["export"], 0);
    ws.write("policies/exported.yaml", &stdout(&out));
    run(&moto, &ws, &["validate"], 0);
    let plan = plan_json(&moto, &ws, 1);
    assert_eq!(actions(&plan), Vec::<String>::new(), "{plan:#}");
    let problems = plan["problems"].as_array().unwrap();
    assert!(
        problems.iter().any(|p| p["kind"] == "conflict"
            && p["resource"] == set.as_str()
            && p["message"].as_str().unwrap().contains(
                "not adopted: permission set PaymentsOps is assigned to people directly (ex@example.com in 123456789012)"
            )),
        "{plan:#}"
    );
    run(&moto, &ws, &["apply", "--auto-approve"], 1);
    assert_eq!(ic.group_description(&group), "");
    assert_eq!(ic.set_tags(&set), Default::default());
    let mut holders = ic.assigned(&set);
    holders.sort();
    let mut want = vec![group, ex];
    want.sort();
    assert_eq!(holders, want, "nobody's access moved");
}

/// Who controls the input: another controller, which tagged the set with the owner key
/// under its own value (another trustsync instance sharing the key, or any tool using it),
/// or marked it in its description. An exported (or hand-written) document that says
/// `adopt: true` takes neither: a conflict naming the owner, nothing written.
#[test]
fn a_set_another_owner_marked_is_not_adopted() {
    let moto = Moto::start();
    let ws = workspace();
    let ic = Center::new(&moto);
    let dana = ic.user("dana@example.com", "Dana Ops");
    let group = ic.group("sg-aws-payments-people", &[&dana]);
    let tagged = ic.set("PaymentsOps", "PT1H", "ops");
    moto.block_on(
        ic.admin
            .tag_resource()
            .instance_arn(&ic.instance)
            .resource_arn(&tagged)
            .tags(
                aws_sdk_ssoadmin::types::Tag::builder()
                    .key("trustsync.dev/owner")
                    .value("blue")
                    .build()
                    .unwrap(),
            )
            .send(),
    )
    .unwrap();
    ic.assign(&tagged, PrincipalType::Group, &group);

    let out = run(&moto, &ws, &["export"], 0);
    ws.write("policies/exported.yaml", &stdout(&out));
    let plan = plan_json(&moto, &ws, 1);
    assert_eq!(actions(&plan), Vec::<String>::new(), "{plan:#}");
    assert!(
        plan["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["resource"] == tagged.as_str()
                && p["message"].as_str().unwrap().contains(
                    "carries the owner tag trustsync.dev/owner=blue: another controller's"
                )),
        "{plan:#}"
    );
    run(&moto, &ws, &["apply", "--auto-approve"], 1);
    assert_eq!(ic.group_description(&group), "");
    assert_eq!(
        ic.set_tags(&tagged)
            .get("trustsync.dev/owner")
            .map(String::as_str),
        Some("blue")
    );

    // Marked in its description by another instance: export leaves it out, and a document
    // written by hand to adopt it is refused as well.
    let marked = ic.set(
        "Auditor",
        "PT1H",
        "books [trustsync trustsync.dev/owner=blue]",
    );
    ws.write(
        "policies/exported.yaml",
        "apiVersion: trustsync.dev/v1alpha1\nkind: AccessAssignment\nmetadata: {name: auditors}\nspec:\n  group: {id: a1b2c3d4-0001-4000-8000-000000000010}\n  permissionSet: {name: Auditor}\n  adopt: true\n",
    );
    let plan = plan_json(&moto, &ws, 1);
    assert!(
        !actions(&plan).iter().any(|a| a.starts_with("adopt-")),
        "{plan:#}"
    );
    assert!(
        plan["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["resource"] == marked.as_str()
                && p["message"]
                    .as_str()
                    .unwrap()
                    .contains("carries another trustsync instance's mark")),
        "{plan:#}"
    );
}

#[test]
fn a_set_no_document_fully_expresses_is_exported_with_what_was_left_out_named() {
    let moto = Moto::start();
    let ws = workspace();
    let ic = Center::new(&moto);
    let dana = ic.user("dana@example.com", "Dana Ops");
    let ex = ic.user("ex@example.com", "Ex Employee");
    let group = ic.group("sg-aws-payments-people", &[&dana, &ex]);
    let other = ic.group("Payments Auditors", &[&dana]);
    // Tagged, and assigned to a person directly as well as to the group.
    let tagged = ic.set("PaymentsOps", "PT4H", "ops");
    moto.block_on(
        ic.admin
            .tag_resource()
            .instance_arn(&ic.instance)
            .resource_arn(&tagged)
            .tags(
                aws_sdk_ssoadmin::types::Tag::builder()
                    .key("cost-center")
                    .value("payments")
                    .build()
                    .unwrap(),
            )
            .send(),
    )
    .unwrap();
    ic.assign(&tagged, PrincipalType::Group, &group);
    ic.assign(&tagged, PrincipalType::User, &ex);
    // Held by two groups: no one document gives it.
    let shared = ic.set("Auditor", "PT1H", "read the books");
    ic.assign(&shared, PrincipalType::Group, &group);
    ic.assign(&shared, PrincipalType::Group, &other);

    let out = run(&moto, &ws, &["export"], 1);
    let (yaml, all) = (stdout(&out), show(&out));
    assert!(
        all.contains("not exported: permission set Auditor")
            && all.contains("assigned to 2 groups (Payments Auditors, sg-aws-payments-people)"),
        "{all}"
    );
    for said in [
        "its tags cost-center=payments",
        "its assignments to people directly (ex@example.com in 123456789012)",
        "members of the identity-store group that are not enabled direct members of the Entra group (ex@example.com)",
    ] {
        assert!(yaml.contains(&format!("# left out: {said}")), "{said}\n{yaml}");
        assert!(
            all.contains(&format!("warning: permission set PaymentsOps: {said}")),
            "{said}\n{all}"
        );
    }
    ws.write("policies/exported.yaml", &yaml);
    run(&moto, &ws, &["validate"], 0);
}

/// A name read from AWS never becomes YAML in the export: a tag value (AWS allows Unicode
/// separators in one, and YAML reads LS and PS as line breaks) written by whoever can tag
/// the set into the comment that quotes it. The export still holds one AccessAssignment
/// and nothing else, which validates.
#[test]
fn a_tag_value_written_as_yaml_stays_in_the_exported_comment() {
    let moto = Moto::start();
    let ws = workspace();
    let ic = Center::new(&moto);
    let dana = ic.user("dana@example.com", "Dana Ops");
    let kim = ic.user("kim@example.com", "Kim Lo");
    let group = ic.group("sg-aws-payments-people", &[&dana, &kim]);
    let set = ic.set("PaymentsOps", "PT1H", "ops");
    let hostile = "x\u{2028}kind: RoleMapping\u{2029}spec: {role: {name: admin}}";
    moto.block_on(
        ic.admin
            .tag_resource()
            .instance_arn(&ic.instance)
            .resource_arn(&set)
            .tags(
                aws_sdk_ssoadmin::types::Tag::builder()
                    .key("team")
                    .value(hostile)
                    .build()
                    .unwrap(),
            )
            .send(),
    )
    .unwrap();
    ic.assign(&set, PrincipalType::Group, &group);

    let out = run(&moto, &ws, &["export"], 0);
    let yaml = stdout(&out);
    let docs: Vec<Value> = serde_yaml::Deserializer::from_str(&yaml)
        .map(|d| serde::Deserialize::deserialize(d).expect("the export parses"))
        .collect();
    let kinds: Vec<&Value> = docs.iter().map(|d| &d["kind"]).collect();
    assert_eq!(kinds, [&json!("AccessAssignment")], "{yaml}");
    assert_eq!(
        docs[0].as_object().unwrap().keys().collect::<Vec<_>>(),
        ["apiVersion", "kind", "metadata", "spec"],
        "{yaml}"
    );
    assert!(
        yaml.lines()
            .filter(|l| l.contains("RoleMapping") || l.contains("admin"))
            .all(|l| l.starts_with("# ")),
        "{yaml}"
    );
    ws.write("policies/exported.yaml", &yaml);
    run(&moto, &ws, &["validate"], 0);
}
