//! The committed JSON Schema must match the types it is generated from.

#[test]
fn committed_schema_matches_the_types() {
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/policies/schema.json"))
            .unwrap();
    let fresh = trustsync::cli::schema_json();
    assert_eq!(
        committed.trim(),
        fresh.trim(),
        "policies/schema.json is stale: run `cargo run -- schema > policies/schema.json`"
    );
}

#[test]
fn schema_describes_every_kind() {
    let schema: serde_json::Value = serde_json::from_str(&trustsync::cli::schema_json()).unwrap();
    let text = schema.to_string();
    for kind in [
        "IdentityProvider",
        "RoleMapping",
        "FunctionAccess",
        "AccessAssignment",
    ] {
        assert!(
            text.contains(&format!("\"const\":\"{kind}\"")),
            "schema lacks kind {kind}"
        );
    }
    for field in [
        "maxSessionDuration",
        "trustedServices",
        "audienceConditionKey",
        "sourceArn",
        "permissionSet",
        "customerManagedPolicies",
    ] {
        assert!(text.contains(field), "schema lacks {field}");
    }
}
