//! The audit log: one JSON line per change and per pass, hash-chained.
//!
//! Every line carries `prevHash`, the SHA-256 (hex) of the previous line's bytes; the
//! first line's is 64 zeros. [`verify`] recomputes the chain, so an edited, deleted,
//! reordered or truncated line is found and named. Appends write one whole line and sync
//! it to disk before the change counts as recorded; a log whose last line is torn (no
//! final newline, as after a crash mid-write) is refused for appending until repaired,
//! never silently extended.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Why the audit log could not be written or verified.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// I/O on the log failed.
    #[error("audit log {path}: {source}")]
    Io {
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The log fails verification.
    #[error("audit log {path}, line {line}: {reason}")]
    Broken {
        path: PathBuf,
        /// 1-based line number of the first bad line.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
}

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn hash(line: &[u8]) -> String {
    Sha256::digest(line)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An open, append-only audit log.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    prev: String,
    lines: usize,
}

impl AuditLog {
    /// Opens (or creates) the log, checking the whole chain first: a broken or torn log
    /// is an error, so that new lines never hide an earlier problem.
    pub fn open(path: &Path) -> Result<AuditLog, Error> {
        let io = |source| Error::Io {
            path: path.into(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let (lines, prev) = match std::fs::read(path) {
            Ok(bytes) => verify_bytes(path, &bytes)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (0, GENESIS.to_string()),
            Err(e) => return Err(io(e)),
        };
        Ok(AuditLog {
            path: path.into(),
            prev,
            lines,
        })
    }

    /// Lines in the log.
    pub fn len(&self) -> usize {
        self.lines
    }

    /// True when the log has no line yet.
    pub fn is_empty(&self) -> bool {
        self.lines == 0
    }

    /// Appends one record (a JSON object); `time` and `prevHash` are added. The line is
    /// synced to disk before this returns.
    pub fn append(&mut self, record: Value) -> Result<(), Error> {
        let mut obj = match record {
            Value::Object(m) => m,
            other => {
                let mut m = Map::new();
                m.insert("record".into(), other);
                m
            }
        };
        let mut line = Map::new();
        line.insert("time".into(), Value::String(now_rfc3339()));
        line.append(&mut obj);
        line.insert("prevHash".into(), Value::String(self.prev.clone()));
        let text = serde_json::to_string(&Value::Object(line)).expect("JSON values serialize");
        let io = |source| Error::Io {
            path: self.path.clone(),
            source,
        };
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(io)?;
        let mut bytes = text.clone().into_bytes();
        bytes.push(b'\n');
        file.write_all(&bytes).map_err(io)?;
        file.sync_data().map_err(io)?;
        self.prev = hash(text.as_bytes());
        self.lines += 1;
        Ok(())
    }
}

/// The current time, RFC 3339 in UTC.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Verifies a log file; returns the number of lines.
pub fn verify(path: &Path) -> Result<usize, Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.into(),
        source,
    })?;
    verify_bytes(path, &bytes).map(|(n, _)| n)
}

fn verify_bytes(path: &Path, bytes: &[u8]) -> Result<(usize, String), Error> {
    let broken = |line: usize, reason: String| Error::Broken {
        path: path.into(),
        line,
        reason,
    };
    let mut prev = GENESIS.to_string();
    if bytes.is_empty() {
        return Ok((0, prev));
    }
    let body = match bytes.strip_suffix(b"\n") {
        Some(b) => b,
        None => {
            let n = bytes.split(|b| *b == b'\n').count();
            return Err(broken(
                n,
                "last line is torn (no final newline): the log was cut mid-write".into(),
            ));
        }
    };
    let mut count = 0;
    for (i, raw) in body.split(|b| *b == b'\n').enumerate() {
        let n = i + 1;
        let value: Value =
            serde_json::from_slice(raw).map_err(|e| broken(n, format!("not a JSON line: {e}")))?;
        let got = value
            .get("prevHash")
            .and_then(Value::as_str)
            .ok_or_else(|| broken(n, "no prevHash".into()))?;
        if got != prev {
            return Err(broken(
                n,
                "prevHash does not match the line before: a line was edited, removed or inserted before this one".into(),
            ));
        }
        prev = hash(raw);
        count = n;
    }
    Ok((count, prev))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn log_with(n: usize) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let mut log = AuditLog::open(&path).unwrap();
        for i in 0..n {
            log.append(json!({"type": "change", "i": i})).unwrap();
        }
        (dir, path)
    }

    #[test]
    fn chain_verifies_and_reopens() {
        let (_d, path) = log_with(3);
        assert_eq!(verify(&path).unwrap(), 3);
        let mut log = AuditLog::open(&path).unwrap();
        assert_eq!(log.len(), 3);
        log.append(json!({"type": "pass"})).unwrap();
        assert_eq!(verify(&path).unwrap(), 4);
    }

    #[test]
    fn edited_deleted_and_torn_lines_are_named() {
        let (_d, path) = log_with(4);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();

        let edited = text.replacen("\"i\":1", "\"i\":7", 1);
        std::fs::write(&path, &edited).unwrap();
        let err = verify(&path).unwrap_err().to_string();
        assert!(err.contains("line 3:"), "{err}");

        let deleted = format!("{}\n{}\n{}\n", lines[0], lines[2], lines[3]);
        std::fs::write(&path, deleted).unwrap();
        assert!(verify(&path).unwrap_err().to_string().contains("line 2:"));

        std::fs::write(&path, &text[..text.len() - 5]).unwrap();
        let err = verify(&path).unwrap_err().to_string();
        assert!(err.contains("line 4: last line is torn"), "{err}");
        assert!(
            AuditLog::open(&path).is_err(),
            "a torn log must not be appended to"
        );
    }
}
