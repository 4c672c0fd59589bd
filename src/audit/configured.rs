//! The log a configuration names, opened for writing (with its signer and, for the S3
//! store, the bucket) or pulled for reading.

use std::path::{Path, PathBuf};

use super::{lease, s3, AuditLog, CheckpointSigner, KmsSigner, Trust};

/// Opens the log of this configuration, with its signer (a key file, or a KMS key) and
/// the keys that vouch for what it says; a key that cannot be used is an error, before the
/// log is touched. With `audit.s3`, the log is the bucket's (Object Lock required) and
/// nothing reaches it unless `fence` says this writer holds the writers' lease.
pub fn open_configured(
    config: &crate::config::AuditConfig,
    aws: &crate::config::AwsConfig,
    fence: Option<lease::Fence>,
) -> anyhow::Result<AuditLog> {
    open_configured_store(config, aws, fence, None)
}

/// [`open_configured`], with the S3 store connected already (a standby's, which has read
/// the log while it waited: only what is new is read now).
pub fn open_configured_store(
    config: &crate::config::AuditConfig,
    aws: &crate::config::AwsConfig,
    fence: Option<lease::Fence>,
    store: Option<s3::S3Log>,
) -> anyhow::Result<AuditLog> {
    let (trust, signing) = Trust::of_config_keys(config).map_err(|e| anyhow::anyhow!(e))?;
    let signer = match (signing, &config.kms_key_id) {
        (Some(signing), _) => Some(CheckpointSigner::Local(signing)),
        (None, Some(arn)) => {
            let public = trust.checkpoints.clone().ok_or_else(|| {
                anyhow::anyhow!("audit.kmsKeyId: set audit.publicKeyFile to the key's public half")
            })?;
            Some(CheckpointSigner::Kms(
                KmsSigner::connect(arn, public).map_err(|e| anyhow::anyhow!(e))?,
            ))
        }
        (None, None) => None,
    };
    let remote = match &config.s3 {
        Some(s3) => {
            let mut store = match store {
                Some(store) => store,
                None => s3::S3Log::connect(s3, aws).map_err(|e| anyhow::anyhow!(e))?,
            };
            store.check_object_lock().map_err(|e| anyhow::anyhow!(e))?;
            if let Some(fence) = fence {
                store.fence_with(fence);
            }
            Some(store)
        }
        None => None,
    };
    Ok(AuditLog::open_store(
        &config.path,
        trust,
        signer.map(|s| (s, config.checkpoint_lines)),
        remote,
    )?)
}

/// A file holding the configured log to read: the file itself, or, with `audit.s3`, a
/// copy of the bucket's segments pulled into a folder of this process's own (the
/// previous segments beside it, where the rotations name them).
pub fn readable_copy(
    config: &crate::config::AuditConfig,
    aws: &crate::config::AwsConfig,
) -> Result<Readable, String> {
    let Some(s3) = &config.s3 else {
        return Ok(Readable {
            path: config.path.clone(),
            tampering: Vec::new(),
            pulled: None,
        });
    };
    pull_copy(s3, aws, &config.path)
}

/// `s3://bucket/prefix/` (a log in S3) pulled into a folder of this process's own, or the
/// file `given` as it is.
pub fn readable_location(given: &Path, aws: &crate::config::AwsConfig) -> Result<Readable, String> {
    let text = given.to_string_lossy();
    let Some(rest) = text.strip_prefix("s3://") else {
        return Ok(Readable {
            path: given.to_path_buf(),
            tampering: Vec::new(),
            pulled: None,
        });
    };
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let s3 = crate::config::S3AuditConfig {
        bucket: bucket.to_string(),
        prefix: prefix.to_string(),
        region: None,
        object_lock: None,
        lease: Default::default(),
    };
    crate::config::check::check_s3_audit(&s3)
        .map_err(|(field, e)| format!("{text}: {field}: {e}"))?;
    pull_copy(&s3, aws, Path::new("audit.jsonl"))
}

/// A log to read: its file (a copy of the bucket's, for the S3 store), and what the bucket
/// holds besides the records (attempts to rewrite or delete them).
/// A copy pulled from the bucket is removed when this is dropped.
#[derive(Debug)]
pub struct Readable {
    pub path: PathBuf,
    pub tampering: Vec<String>,
    /// The folder of a pulled copy, this process's own.
    pulled: Option<PathBuf>,
}

impl Drop for Readable {
    fn drop(&mut self) {
        if let Some(dir) = &self.pulled {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn pull_copy(
    s3: &crate::config::S3AuditConfig,
    aws: &crate::config::AwsConfig,
    path: &Path,
) -> Result<Readable, String> {
    let name = path
        .file_name()
        .unwrap_or(std::ffi::OsStr::new("audit.jsonl"));
    let dir = std::env::temp_dir().join(format!(
        "trustsync-audit-{}-{}",
        std::process::id(),
        crate::model::clock::since_epoch().as_nanos()
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let copy = dir.join(name);
    let readable = |tampering| Readable {
        path: copy.clone(),
        tampering,
        pulled: Some(dir.clone()),
    };
    // Removed again on an error too.
    let mut empty = readable(Vec::new());
    let mut store = s3::S3Log::connect(s3, aws)?;
    empty.tampering = store.pull(&copy).map_err(|e| e.to_string())?.tampering;
    Ok(empty)
}
