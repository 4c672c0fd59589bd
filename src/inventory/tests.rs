use super::*;
use crate::sources::directory::{TenantGroup, TenantObject};

fn sp(id: &str) -> TenantObject {
    TenantObject {
        id: id.into(),
        display_name: format!("app-{id}"),
        ..Default::default()
    }
}

fn group(id: &str, members: &[&str]) -> TenantGroup {
    TenantGroup {
        id: id.into(),
        display_name: format!("g-{id}"),
        members: members.iter().map(|m| m.to_string()).collect(),
    }
}

fn tenant() -> Directory {
    // top > mid > leaf, and a cycle leaf > top; s1 direct in top, s2 in leaf, s3 in mid.
    Directory::from_tenant_file(&TenantFile {
        tenant_id: "t".into(),
        groups: vec![
            group("top", &["s1", "mid"]),
            group("mid", &["leaf", "s3"]),
            group("leaf", &["s2", "top"]),
            group("only-s2", &["s2"]),
        ],
        service_principals: vec![sp("s1"), sp("s2"), sp("s3")],
        ..Default::default()
    })
}

#[test]
fn paths_follow_nested_groups_shortest_first_and_survive_cycles() {
    let d = tenant();
    let direct = d.paths("top", false);
    assert_eq!(direct.keys().collect::<Vec<_>>(), ["s1"]);
    let all = d.paths("top", true);
    assert_eq!(all["s1"], ["top"]);
    assert_eq!(all["s3"], ["top", "mid"]);
    assert_eq!(all["s2"], ["top", "mid", "leaf"]);
    assert_eq!(d.label("mid"), "g-mid (mid)");
    assert_eq!(d.label("unknown"), "unknown");
}

#[test]
fn the_group_of_a_set_prefers_direct_members_then_the_smallest() {
    let d = tenant();
    let set = |ids: &[&str]| ids.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(d.group_of(&set(&["s2"])), Some(("only-s2".into(), false)));
    assert_eq!(d.group_of(&set(&["s1"])), Some(("top".into(), false)));
    assert_eq!(
        d.group_of(&set(&["s2", "s3"])),
        None,
        "mid's closure includes s1 through the cycle"
    );
    assert_eq!(
        d.group_of(&set(&["s1", "s2", "s3"])),
        Some(("leaf".into(), true))
    );
    assert_eq!(d.group_of(&set(&["nobody"])), None);
}

#[test]
fn entra_issuers_in_both_forms_and_nothing_else() {
    let arn = |i: &str| format!("arn:aws:iam::123456789012:oidc-provider/{i}");
    assert_eq!(entra_tenant(&arn("sts.windows.net/abc/")), Some("abc"));
    assert_eq!(
        entra_tenant(&arn("login.microsoftonline.com/abc/v2.0")),
        Some("abc")
    );
    assert_eq!(
        entra_tenant(&arn("token.actions.githubusercontent.com")),
        None
    );
    assert_eq!(entra_tenant("cognito-identity.amazonaws.com"), None);
}

#[test]
fn a_token_that_is_not_a_jwt_says_why_in_words() {
    let b64 =
        |s: &str| base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, s);
    let header = b64(r#"{"alg":"RS256","typ":"JWT"}"#);
    let claims = b64(r#"{"aud":["x","y"],"sub":"s","exp":5}"#);
    let err = |t: &str| decode_claims(t).unwrap_err();
    for (input, says) in [
        ("", "the input is empty"),
        ("  \n", "the input is empty"),
        ("abc", "no dots"),
        ("a.b", "2 dot-separated parts"),
        ("a.b.c.d.e", "encrypted token (JWE)"),
        (
            r#"{"access_token":"x"}"#,
            "give the value of its access_token",
        ),
        (
            "aaa.bbb.ccc",
            "the first part (the header) is not base64url: its length or last character",
        ),
        (
            &format!("{}.{claims}.c", b64("hello")),
            "the first part (the header) decodes, but not to JSON",
        ),
        (
            &format!("{header}.!!!.c"),
            "character 1 (`!`) is not a base64url character",
        ),
        (&format!("{header}.ab+c.c"), "`+`, of standard base64"),
        (&format!("{header}.a.c"), "cut short or changed when copied"),
        (
            &format!("{}.{claims}.c", b64("[1]")),
            "decodes to JSON, but not to an object",
        ),
        (
            &format!("{}.{claims}.c", b64("{}")),
            "names no signing algorithm",
        ),
        (&format!("{header}.{claims}."), "an unsigned token"),
        (
            &format!("{header}.{claims} {header}.{claims}.c"),
            "spaces or line breaks",
        ),
    ] {
        let e = err(input);
        assert!(e.contains(says), "{input:?}: {e}");
        assert!(
            !e.contains("Invalid") && !e.contains("offset"),
            "{input:?}: {e}"
        );
    }
    let c = decode_claims(&format!("{header}.{claims}.c2ln")).unwrap();
    assert_eq!(c.aud, ["x", "y"]);
    assert_eq!((c.sub.as_deref(), c.exp), (Some("s"), Some(5)));
    // Pasted from an Authorization header.
    assert!(decode_claims(&format!("Bearer {header}.{claims}.c2ln\n")).is_ok());
}

/// Text read from AWS that an exported document quotes in its comment (an identity-store
/// group's display name may hold line breaks) never becomes YAML: every line break YAML
/// knows starts another comment line, and control characters are written escaped.
#[test]
fn an_exported_comment_never_turns_quoted_names_into_yaml() {
    let hostile = "ops\nkind: RoleMapping\rspec: {role: {name: admin}}\u{85}x: 1\u{2028}y: 2\u{2029}z: 3\u{1b}[31m\u{0}";
    let spec = serde_json::json!({"group": {"id": "g-1"}});
    let text = super::export::document("AccessAssignment", "ops", hostile, &spec);
    let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).expect("the export parses"))
        .collect();
    assert_eq!(docs.len(), 1, "{text}");
    let doc = serde_json::to_value(&docs[0]).unwrap();
    assert_eq!(doc["kind"], "AccessAssignment", "{text}");
    assert_eq!(doc["spec"], spec, "{text}");
    assert_eq!(
        doc.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["apiVersion", "kind", "metadata", "spec"],
        "{text}"
    );
    let comments: Vec<&str> = text.lines().skip(1).take(6).collect();
    assert!(comments.iter().all(|l| l.starts_with("# ")), "{text}");
    assert!(text.contains(r"\u{1b}[31m\u{0}"), "{text}");
}
