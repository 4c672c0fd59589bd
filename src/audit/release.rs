//! Releases of held removals asked for while a controller holds the log.
//!
//! A removal larger than the safety limits allow is held until a person lets it through.
//! `trustsync apply --release NAME` does so for one pass it runs itself, but it needs the
//! audit log, which a running controller holds. So `trustsync release NAME` leaves a
//! request next to the log (`<log>.release.<document>`); the controller takes it at its
//! next poll, records who released what and why (a `released` line), and starts a pass over
//! that document at once, which lets its held removals through, once.
//!
//! A release only lets a removal go (additions are never held), so whoever can write the
//! log's volume can at most hasten a revocation the directory already asks for; the
//! `released` line says who asked, and when.

use std::path::{Path, PathBuf};

use super::{AuditLog, Error, Record, Released};

/// The request file of one document's release.
fn request_path(log: &Path, mapping: &str) -> PathBuf {
    let safe: String = mapping
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut p = log.as_os_str().to_owned();
    p.push(format!(".release.{safe}"));
    PathBuf::from(p)
}

/// Leaves a release of `mapping` for the controller that holds `log`.
pub fn request_release(
    log: &Path,
    mapping: &str,
    by: &str,
    note: Option<String>,
) -> Result<PathBuf, Error> {
    let request = request_path(log, mapping);
    let body = serde_json::to_vec(&Released {
        mapping: mapping.to_string(),
        by: by.to_string(),
        note,
        requested_at: super::now_rfc3339(),
        request: None,
    })
    .expect("serializes");
    std::fs::write(&request, body).map_err(|source| Error::Io {
        path: request.clone(),
        source,
    })?;
    Ok(request)
}

/// Takes every release request left next to `log` (removing each file): the readable
/// ones, oldest first. One that is not a release is removed with a warning.
pub fn take_releases(log: &Path) -> Vec<Released> {
    let Some(name) = log.file_name().map(|n| n.to_string_lossy().to_string()) else {
        return Vec::new();
    };
    let dir = match log.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let prefix = format!("{name}.release.");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(&prefix) {
            continue;
        }
        let path = entry.path();
        let bytes = std::fs::read(&path);
        let _ = std::fs::remove_file(&path);
        match bytes
            .ok()
            .and_then(|b| serde_json::from_slice::<Released>(&b).ok())
        {
            Some(r) => out.push(r),
            None => {
                tracing::warn!(file = %path.display(), "a release request that is not one; removed")
            }
        }
    }
    out.sort_by(|a, b| a.requested_at.cmp(&b.requested_at));
    out
}

impl AuditLog {
    /// Records a release the controller took.
    pub fn record_release(&mut self, r: &Released) -> Result<usize, Error> {
        let line = self.append(&Record::Released(r.clone()))?;
        if let Some(key) = &r.request {
            self.taken.insert(key.clone());
        }
        Ok(line)
    }
}

/// The release requests read from the bucket (the S3 store), each naming its request
/// object; one that is not a release is skipped with a warning and added to `skipped`.
pub fn releases_of(
    found: Vec<(String, Vec<u8>)>,
    skipped: &mut std::collections::BTreeSet<String>,
) -> Vec<Released> {
    let mut out = Vec::new();
    for (key, body) in found {
        match serde_json::from_slice::<Released>(&body) {
            Ok(mut r) => {
                r.request = Some(key);
                out.push(r);
            }
            Err(e) => {
                tracing::warn!(request = %key, error = %e, "a release request that is not one; skipped");
                skipped.insert(key);
            }
        }
    }
    out
}

/// Leaves a release of `mapping` in the S3 store for the controller that leads; the
/// request object's name.
pub fn request_release_in(
    store: &super::s3::S3Log,
    mapping: &str,
    by: &str,
    note: Option<String>,
) -> Result<String, String> {
    let body = serde_json::to_vec(&Released {
        mapping: mapping.to_string(),
        by: by.to_string(),
        note,
        requested_at: super::now_rfc3339(),
        request: None,
    })
    .expect("serializes");
    store.put_request("release", body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_taken_once_and_its_file_name_never_leaves_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit.jsonl");
        request_release(
            &log,
            "payments-people",
            "oncall@example.com",
            Some("INC-1".into()),
        )
        .unwrap();
        let odd = request_release(&log, "../../etc/x", "me", None).unwrap();
        assert_eq!(odd.parent(), Some(dir.path()), "{}", odd.display());
        std::fs::write(dir.path().join("audit.jsonl.release.junk"), b"not json").unwrap();
        let taken = take_releases(&log);
        let names: Vec<&str> = taken.iter().map(|r| r.mapping.as_str()).collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(names.contains(&"payments-people") && names.contains(&"../../etc/x"));
        assert!(take_releases(&log).is_empty(), "taken once");
    }
}
