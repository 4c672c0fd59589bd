use super::*;

#[test]
fn empty_file_is_all_defaults() {
    assert_eq!(
        Config::parse(Path::new("c.yaml"), "").unwrap(),
        Config::default().finish()
    );
}

#[test]
fn unknown_key_is_located() {
    let err = Config::parse(
        Path::new("c.yaml"),
        "prune: true\nsafety:\n  maxRoleDeletion: 0.5\n",
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("c.yaml:3:"), "{text}");
    assert!(text.contains("unknown field `maxRoleDeletion`"), "{text}");
}

#[test]
fn shares_and_paths_are_checked() {
    assert!(Config::parse(Path::new("c"), "safety: {maxPrincipalRemovalShare: 2}").is_err());
    assert!(Config::parse(Path::new("c"), "rolePath: /").is_err());
    let c = Config::parse(Path::new("c"), "rolePath: /x/\n").unwrap();
    assert_eq!(c.limits.role_path, "/x/");
    let long = format!("statementIdPrefix: {}\n", "p".repeat(88));
    let err = Config::parse(Path::new("c"), &long)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("statementIdPrefix") && err.contains("88 characters"),
        "{err}"
    );
}

#[test]
fn outbound_issuer_urls_are_checked() {
    let parse = |text: &str| Config::parse(Path::new("c.yaml"), text);
    let ok = parse("outboundFederation:\n  issuerUrls: {\"123456789012\": \"https://a.tokens.sts.global.api.aws\"}\n");
    assert!(ok.is_ok(), "{ok:?}");
    // A loopback stand-in issuer: only builds for the local test servers take one.
    let stand_in =
        parse("outboundFederation: {issuerUrls: {\"123456789012\": \"http://127.0.0.1:9\"}}");
    if cfg!(feature = "loopback-graph") {
        assert!(stand_in.is_ok(), "{stand_in:?}");
    } else {
        let err = stand_in.unwrap_err().to_string();
        assert!(err.contains("local stand-in issuer"), "{err}");
    }
    for (bad, says) in [
        ("{\"12345\": \"https://a\"}", "12-digit"),
        ("{\"123456789012\": \"http://issuer.example\"}", "loopback"),
        ("{\"123456789012\": \"not a url\"}", "not a URL"),
    ] {
        let err = parse(&format!("outboundFederation: {{issuerUrls: {bad}}}"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("outboundFederation.issuerUrls") && err.contains(says),
            "{err}"
        );
    }
    let err = parse("outboundFederation: {enabled: true}")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("outboundFederation") && err.contains("enabled"),
        "{err}"
    );
}

#[test]
fn instances_get_distinct_statement_prefixes_and_function_tags() {
    let a = Config::default();
    let mut b = Config::default();
    b.owner_tag.value = "trustsync-b".into();
    let (pa, pb) = (a.instance_statement_prefix(), b.instance_statement_prefix());
    assert!(pa.starts_with("trustsync-") && pa.len() == "trustsync-".len() + 7);
    assert!(!pa.starts_with(&pb) && !pb.starts_with(&pa));
    assert_ne!(a.function_tag_key(), b.function_tag_key());
}

#[test]
fn graph_notification_urls_and_lifetimes_are_checked() {
    let parse = |n: &str| {
        Config::parse(
            Path::new("c.yaml"),
            &format!("directory:\n  graph:\n    notifications: {n}\n"),
        )
    };
    let ok = parse("{url: \"https://ts.example.com/graph/notifications\"}").unwrap();
    let n = ok.directory.graph.notifications.unwrap();
    assert_eq!(n.expiration_minutes, 4320);
    assert!(parse("{url: \"http://127.0.0.1:8080/graph/notifications\"}").is_ok());
    for bad in [
        "{url: \"http://ts.example.com/graph/notifications\"}",
        "{url: \"https://ts.example.com/hooks\"}",
        "{url: \"https://ts.example.com/graph/notifications\", expirationMinutes: 50000}",
        "{url: \"https://ts.example.com/graph/notifications\", expirationMinutes: 10}",
    ] {
        let err = parse(bad).unwrap_err().to_string();
        assert!(
            err.contains("directory.graph.notifications"),
            "{bad}: {err}"
        );
    }
}

/// The config refuses a KMS checkpoint key without its public half when it is read (the
/// audit log's own check of the same never sees such a config from a file).
#[test]
fn a_kms_key_needs_its_public_half() {
    let err = Config::parse(
        Path::new("c"),
        "audit: {kmsKeyId: 'arn:aws:kms:eu-west-1:111122223333:key/k'}\n",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("audit.kmsKeyId"), "{err}");
    assert!(err.contains("set audit.publicKeyFile"), "{err}");
}

/// `audit.s3`: defaults, and what a hostile or careless config cannot set: a bucket name S3
/// would refuse, a prefix that climbs out of its folder or reaches the bucket's root by a
/// leading `/`, a lease a standby could take before the leader has renewed it twice.
#[test]
fn the_s3_audit_store_is_checked() {
    let ok = Config::parse(Path::new("c"), "audit: {s3: {bucket: audit-logs}}\n").unwrap();
    let s3 = ok.audit.s3.unwrap();
    assert_eq!(s3.prefix, "trustsync/");
    assert_eq!((s3.lease.duration_seconds, s3.lease.renew_seconds), (10, 2));
    for (yaml, field) in [
        ("{bucket: Audit_Logs}", "audit.s3.bucket"),
        ("{bucket: ab}", "audit.s3.bucket"),
        ("{bucket: -logs}", "audit.s3.bucket"),
        ("{bucket: logs, prefix: /abs/}", "audit.s3.prefix"),
        ("{bucket: logs, prefix: a/../b/}", "audit.s3.prefix"),
        ("{bucket: logs, prefix: no-slash}", "audit.s3.prefix"),
        ("{bucket: logs, prefix: \"a\\n/\"}", "audit.s3.prefix"),
        ("{bucket: logs, region: mars-1}", "audit.s3.region"),
        (
            "{bucket: logs, objectLock: {mode: COMPLIANCE, retentionDays: 0}}",
            "audit.s3.objectLock.retentionDays",
        ),
        (
            "{bucket: logs, lease: {durationSeconds: 5, renewSeconds: 2}}",
            "audit.s3.lease",
        ),
        (
            "{bucket: logs, lease: {durationSeconds: 10, renewSeconds: 0}}",
            "audit.s3.lease",
        ),
    ] {
        let err = Config::parse(Path::new("c"), &format!("audit: {{s3: {yaml}}}\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains(field), "{yaml}: {err}");
    }
    let err = Config::parse(
        Path::new("c"),
        "audit: {s3: {bucket: logs, objectLock: {mode: FOREVER, retentionDays: 1}}}\n",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("FOREVER") || err.contains("mode"), "{err}");
}
