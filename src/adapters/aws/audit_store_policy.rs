//! The statements the controller's own policy needs for the S3 audit store (`audit.s3`),
//! and no more: append records only as new objects (`If-None-Match` required, through the
//! `s3:if-none-match` condition key: S3 User Guide, "Enforce conditional writes on Amazon
//! S3 buckets"), write the lease object, read the log's versions and the people's requests
//! (`release`, `audit acknowledge`: written by them, never by the controller), check
//! Object Lock; and
//! an explicit deny of everything that would delete a record, lift its retention or change
//! the bucket's rules, so that the controller cannot undo its own evidence even where some
//! other policy would let it.

use serde_json::{json, Value};

use crate::config::Config;

/// The statements for `audit.s3`, none without it.
pub fn statements(config: &Config) -> Vec<Value> {
    let Some(s3) = &config.audit.s3 else {
        return Vec::new();
    };
    let partition = config.partition();
    let bucket = format!("arn:{partition}:s3:::{}", s3.bucket);
    let prefix = &s3.prefix;
    let records = format!("{bucket}/{prefix}log/*");
    let mut append = vec!["s3:PutObject"];
    if s3.object_lock.is_some() {
        // A retention written with each record (PutObject with x-amz-object-lock-*).
        append.push("s3:PutObjectRetention");
    }
    let mut statements = vec![
        json!({
            "Sid": "AppendAuditRecords",
            "Effect": "Allow",
            "Action": append,
            "Resource": records,
            "Condition": {"Null": {"s3:if-none-match": "false"}}
        }),
        json!({
            "Sid": "HoldWritersLease",
            "Effect": "Allow",
            "Action": ["s3:PutObject", "s3:GetObject"],
            "Resource": format!("{bucket}/{prefix}lease.json")
        }),
        json!({
            "Sid": "ReadAuditRecords",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:GetObjectVersion"],
            "Resource": records
        }),
        json!({
            "Sid": "ListAuditRecords",
            "Effect": "Allow",
            "Action": "s3:ListBucketVersions",
            "Resource": bucket,
            "Condition": {"StringEquals": {"s3:prefix": format!("{prefix}log/")}}
        }),
        json!({
            "Sid": "CheckAuditObjectLock",
            "Effect": "Allow",
            "Action": "s3:GetBucketObjectLockConfiguration",
            "Resource": bucket
        }),
        json!({
            "Sid": "KeepAuditRecords",
            "Effect": "Deny",
            "Action": [
                "s3:DeleteObject",
                "s3:DeleteObjectVersion",
                "s3:BypassGovernanceRetention",
                "s3:PutObjectLegalHold",
                "s3:PutBucketObjectLockConfiguration",
                "s3:PutBucketVersioning",
                "s3:PutBucketPolicy",
                "s3:DeleteBucketPolicy",
                "s3:PutLifecycleConfiguration",
                "s3:DeleteBucket"
            ],
            "Resource": [bucket.clone(), format!("{bucket}/*")]
        }),
    ];
    statements.extend(request_statements(&bucket, prefix));
    statements
}

/// Reading the requests people leave for the leader (`release`, `audit acknowledge`).
fn request_statements(bucket: &str, prefix: &str) -> [Value; 2] {
    [
        json!({
            "Sid": "ReadAuditRequests",
            "Effect": "Allow",
            "Action": "s3:GetObject",
            "Resource": format!("{bucket}/{prefix}requests/*")
        }),
        json!({
            "Sid": "ListAuditRequests",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": bucket,
            "Condition": {"StringEquals": {"s3:prefix": [
                format!("{prefix}requests/release/"),
                format!("{prefix}requests/acknowledge/")
            ]}}
        }),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_appended_only_and_never_deleted() {
        let config = Config::parse(
            std::path::Path::new("c"),
            "audit: {s3: {bucket: audit-logs, prefix: prod/, objectLock: {mode: COMPLIANCE, retentionDays: 7}}}\n",
        )
        .unwrap();
        let s = statements(&config);
        let by_sid = |sid: &str| s.iter().find(|v| v["Sid"] == sid).unwrap().clone();
        let append = by_sid("AppendAuditRecords");
        assert_eq!(append["Resource"], "arn:aws:s3:::audit-logs/prod/log/*");
        assert_eq!(append["Condition"]["Null"]["s3:if-none-match"], "false");
        assert!(append["Action"]
            .to_string()
            .contains("s3:PutObjectRetention"));
        let deny = by_sid("KeepAuditRecords");
        assert_eq!(deny["Effect"], "Deny");
        for a in ["s3:DeleteObjectVersion", "s3:BypassGovernanceRetention"] {
            assert!(deny["Action"].to_string().contains(a), "{a}");
        }
        // Nothing allows a delete, anywhere.
        for st in s.iter().filter(|v| v["Effect"] == "Allow") {
            assert!(!st["Action"].to_string().contains("Delete"), "{st}");
        }
        assert!(statements(&Config::default()).is_empty());
    }
}
