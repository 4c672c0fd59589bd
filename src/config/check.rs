//! The rules on a configuration that serde cannot express, checked once it is read.

use super::{Config, MAX_STATEMENT_ID_PREFIX, NOTIFICATIONS_PATH};

/// The field and what is wrong.
pub(crate) type Checked = Result<(), (&'static str, String)>;

impl Config {
    /// The rules serde cannot express: shares in 0..=1, a dedicated role path, a statement
    /// prefix that fits Lambda's ids, sane retry and write limits, an owner tag. The field
    /// and what is wrong.
    pub(super) fn check(&self) -> Checked {
        self.accounts.check()?;
        self.outbound_federation.check()?;
        self.check_identity_center()?;
        self.check_audit()?;
        self.check_safety_and_role_path()?;
        self.check_waits()?;
        self.check_notifications()?;
        self.check_aws()?;
        self.check_owned_names()
    }

    /// `identityCenter`: an instance ARN and a region name.
    fn check_identity_center(&self) -> Checked {
        let ic = &self.identity_center;
        if let Some(arn) = &ic.instance_arn {
            let instance = crate::model::arn::ArnParts::parse(arn)
                .filter(|a| a.service == "sso" && a.resource.starts_with("instance/ssoins-"));
            if instance.is_none() {
                return Err((
                    "identityCenter.instanceArn",
                    format!("`{arn}` is not an Identity Center instance ARN (arn:aws:sso:::instance/ssoins-...)"),
                ));
            }
        }
        if let Some(r) = ic
            .region
            .as_deref()
            .filter(|r| !crate::model::account::is_region(r))
        {
            return Err((
                "identityCenter.region",
                format!("`{r}` is not an AWS region name"),
            ));
        }
        Ok(())
    }

    /// `audit`: one checkpoint key, a KMS key with its public half, an anchor only with a
    /// key to sign what it publishes.
    fn check_audit(&self) -> Checked {
        let audit = &self.audit;
        if audit.signing_key_file.is_some() && audit.kms_key_id.is_some() {
            return Err((
                "audit.kmsKeyId",
                "checkpoints are signed by one key: set audit.signingKeyFile or audit.kmsKeyId, not both".into(),
            ));
        }
        if let Some(arn) = &audit.kms_key_id {
            crate::model::arn::kms_key_region(arn).map_err(|e| ("audit.kmsKeyId", e))?;
            if audit.public_key_file.is_none() {
                return Err((
                    "audit.kmsKeyId",
                    "set audit.publicKeyFile to the key's public half (aws kms get-public-key, as PEM): the controller may only sign with the key, and verifies what it reads with the public half".into(),
                ));
            }
        }
        if audit.anchor.is_some() && audit.signing_key_file.is_none() && audit.kms_key_id.is_none()
        {
            return Err((
                "audit.anchor",
                "anchoring publishes signed checkpoints: set audit.signingKeyFile or audit.kmsKeyId too".into(),
            ));
        }
        if let Some(s3) = &audit.s3 {
            check_s3_audit(s3)?;
        }
        Ok(())
    }

    /// `safety`'s shares, a dedicated `rolePath`, and a `statementIdPrefix` that leaves
    /// room in Lambda's statement ids.
    fn check_safety_and_role_path(&self) -> Checked {
        let s = &self.safety;
        for (field, v) in [
            (
                "safety.maxPrincipalRemovalShare",
                s.max_principal_removal_share,
            ),
            ("safety.maxRoleDeletionShare", s.max_role_deletion_share),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err((field, format!("{v} is not a share between 0 and 1")));
            }
        }
        let p = &self.role_path;
        if !p.starts_with('/') || !p.ends_with('/') {
            return Err(("rolePath", format!("`{p}` must start and end with `/`")));
        }
        if p == "/" {
            return Err(("rolePath", "`/` would make every role in the account a candidate; use a dedicated path such as /trustsync/".into()));
        }
        let prefix = &self.statement_id_prefix;
        if prefix.chars().count() > MAX_STATEMENT_ID_PREFIX {
            return Err(("statementIdPrefix", format!(
                    "`{prefix}` is {} characters; at most {MAX_STATEMENT_ID_PREFIX} leave room in Lambda's 100-character statement ids",
                    prefix.chars().count()
                ),
            ));
        }
        Ok(())
    }

    /// `run.shutdownSeconds` and `graph.requestTimeoutSeconds` in their ranges.
    fn check_waits(&self) -> Checked {
        if self.run.shutdown_seconds == 0 || self.run.shutdown_seconds > 600 {
            return Err((
                "run.shutdownSeconds",
                format!("{} must be between 1 and 600", self.run.shutdown_seconds),
            ));
        }
        if self.directory.graph.request_timeout_seconds == 0
            || self.directory.graph.request_timeout_seconds > 300
        {
            return Err((
                "graph.requestTimeoutSeconds",
                format!(
                    "{} must be between 1 and 300",
                    self.directory.graph.request_timeout_seconds
                ),
            ));
        }
        Ok(())
    }

    /// `directory.graph.notifications`: an https URL (http on a loopback host) on the
    /// path the controller serves, and an expiration Graph accepts.
    fn check_notifications(&self) -> Checked {
        let Some(n) = &self.directory.graph.notifications else {
            return Ok(());
        };
        let url = url::Url::parse(&n.url).ok();
        let loopback = url.as_ref().is_some_and(|u| {
            u.scheme() == "http"
                && matches!(u.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"))
        });
        if !(url.as_ref().is_some_and(|u| u.scheme() == "https") || loopback)
            || !n.url.ends_with(NOTIFICATIONS_PATH)
        {
            return Err((
                "directory.graph.notifications.url",
                format!(
                    "`{}` must be an https URL (http only on a loopback host) ending in {NOTIFICATIONS_PATH}, the path the controller serves them on",
                    n.url
                ),
            ));
        }
        if !(45..=41_760).contains(&n.expiration_minutes) {
            return Err((
                "directory.graph.notifications.expirationMinutes",
                format!(
                    "{} must be between 45 and 41760 (Graph's limit for groups)",
                    n.expiration_minutes
                ),
            ));
        }
        Ok(())
    }

    /// `aws`: a retry time in range, at least one write at a time.
    fn check_aws(&self) -> Checked {
        if self.aws.max_retry_seconds == 0 || self.aws.max_retry_seconds > 300 {
            return Err((
                "aws.maxRetrySeconds",
                format!("{} must be between 1 and 300", self.aws.max_retry_seconds),
            ));
        }
        let w = &self.aws.write_concurrency;
        if w.iam == 0 || w.lambda == 0 {
            return Err((
                "aws.writeConcurrency",
                "iam and lambda must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// The names trustsync writes with: `statementIdPrefix`'s characters, `ownerTag`, and
    /// `permissionsBoundaries`' policy names.
    fn check_owned_names(&self) -> Checked {
        let prefix = &self.statement_id_prefix;
        if prefix.is_empty()
            || !prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err((
                "statementIdPrefix",
                format!("`{prefix}` must be letters, digits, - or _"),
            ));
        }
        if self.owner_tag.key.is_empty() || self.owner_tag.value.is_empty() {
            return Err(("ownerTag", "key and value must not be empty".into()));
        }
        for b in &self.permissions_boundaries {
            let ok = !b.is_empty()
                && !b.starts_with('/')
                && !b.contains(':')
                && b.split('/').all(|part| {
                    !part.is_empty()
                        && part
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c))
                });
            if !ok {
                return Err(("permissionsBoundaries", format!(
                    "`{b}` is not a managed policy name (with its path, as `boundaries/workload`); the account is each managed account's"
                )));
            }
        }
        Ok(())
    }
}

/// `audit.s3`: a bucket name S3 accepts, a prefix that stays a folder of its own, a lease
/// the leader can renew several times before a standby may take it.
pub(crate) fn check_s3_audit(s3: &crate::config::S3AuditConfig) -> Checked {
    let b = &s3.bucket;
    let bucket_ok = (3..=63).contains(&b.len())
        && b.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-')
        && b.starts_with(|c: char| c.is_ascii_alphanumeric())
        && b.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !bucket_ok {
        return Err((
            "audit.s3.bucket",
            format!("`{b}` is not an S3 bucket name (3 to 63 lowercase letters, digits, dots and hyphens, beginning and ending with a letter or digit)"),
        ));
    }
    let p = &s3.prefix;
    if p.starts_with('/')
        || (!p.is_empty() && !p.ends_with('/'))
        || p.split('/').any(|part| part == "." || part == "..")
        || p.chars().any(|c| c.is_control())
        || p.len() > 512
    {
        return Err((
            "audit.s3.prefix",
            format!("`{p}` must be empty or a folder ending in `/`, with no leading `/`, no `.` or `..` part and no control character"),
        ));
    }
    if let Some(r) = s3
        .region
        .as_deref()
        .filter(|r| !crate::model::account::is_region(r))
    {
        return Err((
            "audit.s3.region",
            format!("`{r}` is not an AWS region name"),
        ));
    }
    if let Some(lock) = &s3.object_lock {
        if lock.retention_days == 0 {
            return Err((
                "audit.s3.objectLock.retentionDays",
                "a record must be retained at least one day".into(),
            ));
        }
    }
    let l = &s3.lease;
    if l.renew_seconds == 0 || l.duration_seconds < 3 * l.renew_seconds {
        return Err((
            "audit.s3.lease",
            format!(
                "renewSeconds {} must be at least 1 and durationSeconds {} at least three times it: the leader stops writing renewSeconds before its lease could be taken, and must have renewed more than once by then",
                l.renew_seconds, l.duration_seconds
            ),
        ));
    }
    Ok(())
}
