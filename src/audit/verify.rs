//! Verifying a log: the chain ([`verify`]), every checkpoint's place in it and signature,
//! and the previous segments a rotation names ([`verify_with`]).

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{
    first_rotation, hash, previous_segment, short, Error, Ledger, PublicKey, Record, Rotated,
    Trust, GENESIS,
};

/// Verifies a log file's chain; returns the number of lines.
pub fn verify(path: &Path) -> Result<usize, Error> {
    verify_with(path, None, &[]).map(|v| v.lines)
}

/// What [`verify_with`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Lines in the log.
    pub lines: usize,
    /// Checkpoints whose signature verified (with a key given).
    pub checkpoints: usize,
    /// The line of the last verified checkpoint.
    pub signed_through: usize,
    /// The segments before this one, newest first, each checked up to its last good line.
    pub previous: Vec<PreviousSegment>,
    /// The rotation this segment began with, while no auditor has acknowledged it.
    pub unacknowledged: Option<Rotated>,
    /// Acknowledgements that did not count (unsigned, or not by an auditor key), and why.
    pub ignored_acknowledgements: Vec<String>,
}

/// A segment before the current one, as verification found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviousSegment {
    /// Its file.
    pub path: PathBuf,
    /// Its lines that verify, as the rotation recorded them (and found again).
    pub good_lines: usize,
    /// Why it was set aside.
    pub reason: String,
}

/// Verifies a log file: the chain, every checkpoint's place in it, and, with a public
/// key, every checkpoint's signature and that there is at least one. A segment that
/// begins with a rotation is followed back: each previous segment must still be the file
/// the rotation recorded (size and hash), its good lines must verify (signatures too) and
/// end in the hash the rotation carried on from. An acknowledgement of the rotation counts
/// only when signed by one of `auditors`.
pub fn verify_with(
    path: &Path,
    key: Option<&PublicKey>,
    auditors: &[PublicKey],
) -> Result<Verified, Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.into(),
        source,
    })?;
    let (lines, _) = verify_bytes(path, &bytes)?;
    let (checkpoints, signed_through) = verify_checkpoints(path, &bytes, lines, key)?;
    if key.is_some() && checkpoints == 0 && lines > 0 {
        return Err(Error::Broken {
            path: path.into(),
            line: lines,
            reason: "no signed checkpoint: nothing vouches for this log beyond its own chain, which anyone who can write the file can recompute".into(),
        });
    }
    let trust = Trust {
        checkpoints: key.cloned(),
        auditors: auditors.to_vec(),
    };
    let ledger = Ledger::of(&bytes, None, &trust);
    let mut found = Verified {
        lines,
        checkpoints,
        signed_through,
        previous: Vec::new(),
        unacknowledged: ledger.unacknowledged,
        ignored_acknowledgements: ledger.ignored_acks,
    };
    let mut next = first_rotation(&bytes).map(|r| (path.to_path_buf(), r));
    while let Some((from, r)) = next.take() {
        let prev_path = PathBuf::from(&r.previous_segment);
        if found.previous.iter().any(|p| p.path == prev_path) || found.previous.len() > 64 {
            return Err(Error::Broken {
                path: from.clone(),
                line: 1,
                reason: "the segments' rotations go round in a circle".into(),
            });
        }
        let (_, good, n) = previous_segment(&from, &r)?;
        let good = good.as_slice();
        let (cps, _) = verify_checkpoints(&prev_path, good, n, key)?;
        found.checkpoints += cps;
        found.previous.push(PreviousSegment {
            path: prev_path.clone(),
            good_lines: n,
            reason: r.reason.clone(),
        });
        next = first_rotation(good).map(|r| (prev_path, r));
    }
    Ok(found)
}

/// Checks every checkpoint among the first `lines` lines of `bytes`: its place in the
/// chain, and with a key its signature. Returns how many were signed and the line of the
/// last one.
pub(super) fn verify_checkpoints(
    path: &Path,
    bytes: &[u8],
    lines: usize,
    key: Option<&PublicKey>,
) -> Result<(usize, usize), Error> {
    let broken = |line: usize, reason: String| Error::Broken {
        path: path.into(),
        line,
        reason,
    };
    let (mut checkpoints, mut signed_through) = (0, 0);
    let mut prev = GENESIS.to_string();
    for (i, raw) in bytes.split(|b| *b == b'\n').take(lines).enumerate() {
        let n = i + 1;
        if let Ok(Record::Checkpoint(cp)) = serde_json::from_slice::<Record>(raw) {
            if cp.lines != n - 1 || cp.head != prev {
                return Err(broken(n, format!("checkpoint signed for {} lines ending in {}, but {} lines ending in {prev} stand before it: the lines before were rewritten", cp.lines, short(&cp.head), n - 1)));
            }
            if let Some(key) = key {
                if !cp.verifies(key) {
                    return Err(broken(n, format!("checkpoint signature does not verify with key {} ({}): the checkpoint was forged or edited, or signed with another key", key.key_id(), key.algorithm())));
                }
                checkpoints += 1;
                signed_through = n;
            }
        }
        prev = hash(raw);
    }
    Ok((checkpoints, signed_through))
}

pub(super) fn verify_bytes(path: &Path, bytes: &[u8]) -> Result<(usize, String), Error> {
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
