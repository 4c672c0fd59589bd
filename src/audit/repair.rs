//! Recovery without a person: a torn last line moved aside, a log that cannot be extended
//! rotated to a new segment, the acknowledgement that ends the report of a rotation, and
//! which segment holds each checkpoint published to the anchor (and whether the lines it
//! signed still stand).

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{
    hash, short, verify_bytes, verify_checkpoints, Acknowledged, AuditLog, Checkpoint, Error,
    Ledger, Record, Repaired, Rotated, Trust, GENESIS,
};

/// The rotation a segment begins with, if it does.
pub(super) fn first_rotation(bytes: &[u8]) -> Option<Rotated> {
    let first = bytes.split(|b| *b == b'\n').next()?;
    match serde_json::from_slice::<Record>(first) {
        Ok(Record::Rotated(r)) => Some(r),
        _ => None,
    }
}

/// The first `n` lines of `bytes`, newlines included.
pub(super) fn good_lines(bytes: &[u8], n: usize) -> &[u8] {
    if n == 0 {
        return &[];
    }
    let end = bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .nth(n - 1)
        .map_or(bytes.len(), |(i, _)| i + 1);
    &bytes[..end]
}

/// A torn last line (no final newline, after a crash or a power cut mid-write) is a record
/// that was never committed: every record is synced whole before what it records happens.
/// When the lines before it verify, it is copied to a side file next to the log
/// (`<log>.torn-<unix nanos>`, synced, never deleted), cut from the log, and what was
/// removed is returned for a `repaired` record; a revocation never waits for a person to
/// mend the file. Anything else wrong is left for verification to name.
pub(super) fn set_torn_tail_aside(
    path: &Path,
    bytes: &mut Vec<u8>,
    file: &std::fs::File,
) -> Result<Option<Repaired>, Error> {
    if bytes.is_empty() || bytes.ends_with(b"\n") {
        return Ok(None);
    }
    let keep = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    if verify_bytes(path, &bytes[..keep]).is_err() {
        return Ok(None);
    }
    let io = |source| Error::Io {
        path: path.into(),
        source,
    };
    let tail = bytes[keep..].to_vec();
    let nanos = crate::model::clock::since_epoch().as_nanos();
    let mut side = path.as_os_str().to_owned();
    side.push(format!(".torn-{nanos}"));
    let side = PathBuf::from(side);
    let mut out = std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .open(&side)
        .map_err(io)?;
    out.write_all(&tail).map_err(io)?;
    out.sync_all().map_err(io)?;
    file.set_len(keep as u64).map_err(io)?;
    file.sync_all().map_err(io)?;
    bytes.truncate(keep);
    Ok(Some(Repaired {
        reason:
            "last line was torn (no final newline): a write cut mid-way, never a committed record"
                .into(),
        removed_bytes: tail.len(),
        removed_sha256: hash(&tail),
        side_file: side.display().to_string(),
    }))
}

/// Makes the file at `path`, which cannot be extended (`why`), the previous segment: it is
/// renamed `<log>.broken-<unix nanos>` (kept whole, never deleted) and a new, locked file
/// takes its place. Returns the new file's lock, the [`Rotated`] record that begins it and
/// what the old file's good lines leave open (intents without an outcome, pins written),
/// so that recovery and the pin checks go on across the rotation.
pub(super) fn rotate(
    path: &Path,
    bytes: &[u8],
    why: &Error,
    old: std::fs::File,
    trust: &Trust,
) -> Result<(std::fs::File, Rotated, Ledger), Error> {
    let io = |source| Error::Io {
        path: path.into(),
        source,
    };
    // The lines that are still vouched for: up to the first bad one; when that line is
    // whole but its prevHash disagrees, the line before it changed (or one went missing)
    // and is not vouched for either.
    // A torn tail after a break is not the first problem: the complete lines are checked.
    let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let good_lines = match verify_bytes(path, &bytes[..complete]) {
        _ if !matches!(why, Error::Broken { .. }) => 0,
        Ok((n, _)) => n,
        Err(Error::Broken { line, .. }) => {
            let bad = bytes.split(|b| *b == b'\n').nth(line.saturating_sub(1));
            let whole = bad
                .and_then(|raw| serde_json::from_slice::<Value>(raw).ok())
                .is_some_and(|v| v.get("prevHash").is_some_and(Value::is_string));
            line.saturating_sub(if whole { 2 } else { 1 })
        }
        Err(_) => 0,
    };
    let good = self::good_lines(bytes, good_lines);
    let last_hash = good
        .strip_suffix(b"\n")
        .and_then(|g| g.split(|b| *b == b'\n').next_back())
        .map_or_else(|| GENESIS.to_string(), hash);
    let nanos = crate::model::clock::since_epoch().as_nanos();
    let mut segment = path.as_os_str().to_owned();
    segment.push(format!(".broken-{nanos}"));
    let segment = PathBuf::from(segment);
    std::fs::rename(path, &segment).map_err(io)?;
    drop(old);
    let file = std::fs::OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => return Err(Error::Locked { path: path.into() }),
        Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // The rename and the new file survive a power cut.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    let rotated = Rotated {
        reason: why.to_string(),
        previous_segment: segment.display().to_string(),
        previous_good_lines: good_lines,
        previous_last_hash: last_hash,
        previous_bytes: bytes.len() as u64,
        previous_sha256: hash(bytes),
    };
    let mut ledger = Ledger::of_log(&segment, good, good_lines, trust);
    ledger.unacknowledged = None;
    ledger.ignored_acks.clear();
    Ok((file, rotated, ledger))
}

/// What the configured log says needs a person, read without the writer's lock: the
/// rotation its current segment began with while no auditor has acknowledged it, previous
/// segments that changed since, or a break (of the chain, or of a checkpoint's signature)
/// the next writer will rotate away from. `None` when the log is whole (or missing).
pub fn needs_attention(config: &crate::config::AuditConfig) -> Option<String> {
    let path = config.path.as_path();
    let trust = match Trust::of_config(config) {
        Ok(t) => t,
        Err(e) => return Some(format!("audit log {}: {e}", path.display())),
    };
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => return Some(format!("audit log {}: cannot be read ({e}); the next apply or controller start begins a new segment", path.display())),
    };
    let whole = bytes.ends_with(b"\n") || bytes.is_empty();
    let keep = if whole {
        bytes.len()
    } else {
        bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1)
    };
    let checked = verify_bytes(path, &bytes[..keep]).and_then(|(n, _)| {
        verify_checkpoints(path, &bytes[..keep], n, trust.checkpoints.as_ref())?;
        Ok(n)
    });
    let lines = match checked {
        Ok(n) => n,
        Err(e) => {
            return Some(format!(
                "{e}; the next apply or controller start keeps this file as the previous segment and begins a new one"
            ))
        }
    };
    Ledger::of_log(path, &bytes, lines, &trust).attention(path)
}

/// The rotation the log's current segment began with, while no auditor key among
/// `trust`'s has acknowledged it (read without the writer's lock).
pub fn unacknowledged(path: &Path, trust: &Trust) -> Result<Option<Rotated>, Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.into(),
        source,
    })?;
    Ok(Ledger::of(&bytes, None, trust).unacknowledged)
}

/// Where an acknowledgement waits for the writer that holds the log.
pub(super) fn acknowledgement_request_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".acknowledge");
    PathBuf::from(p)
}

/// Leaves a signed acknowledgement for the writer that holds the log (a running
/// controller), which records it only when it is signed by a configured auditor key;
/// returns the file it is in.
pub fn request_acknowledgement(path: &Path, ack: &Acknowledged) -> Result<PathBuf, Error> {
    let request = acknowledgement_request_path(path);
    let body = serde_json::to_vec(ack).expect("serializes");
    std::fs::write(&request, body).map_err(|source| Error::Io {
        path: request.clone(),
        source,
    })?;
    Ok(request)
}

impl AuditLog {
    /// Records an acknowledgement left by `trustsync audit acknowledge` while this writer
    /// held the log, and removes the request. Returns whom it was from when one was
    /// recorded. One that is not signed by a configured auditor key for the rotation this
    /// segment began with is not recorded: it is logged, and named with the rotation's
    /// report ([`AuditLog::attention`]) until an auditor acknowledges it.
    pub fn take_acknowledgement(&mut self) -> Option<String> {
        if self.remote.is_some() {
            // With the S3 store the controller's request reader lists the bucket, outside
            // the log's lock, and hands each one to `acknowledge_request`.
            return None;
        }
        let request = acknowledgement_request_path(&self.path);
        let bytes = std::fs::read(&request).ok()?;
        let _ = std::fs::remove_file(&request);
        let Ok(ack) = serde_json::from_slice::<Acknowledged>(&bytes) else {
            tracing::warn!(file = %request.display(), "an acknowledgement request that is not one; removed");
            self.ledger.ignored_acks.push(format!(
                "an acknowledgement request in {} was not one; removed",
                request.display()
            ));
            return None;
        };
        let by = ack.by.clone();
        match self.acknowledge(ack) {
            Ok(_) => Some(by),
            Err(e) => {
                tracing::error!(error = %e, by = %by, "an acknowledgement request was ignored");
                if self.ledger.unacknowledged.is_some() {
                    self.ledger.ignored_acks.push(format!(
                        "an acknowledgement left in {} was ignored: {e}",
                        request.display()
                    ));
                }
                None
            }
        }
    }
}

impl AuditLog {
    /// An acknowledgement request read from the bucket (the S3 store), taken once: whom
    /// it was from when it was recorded. An acknowledgement counts once whatever happens (a
    /// second one of the same rotation finds none to acknowledge), so nothing more than
    /// this writer's memory says which were taken.
    pub fn acknowledge_request(&mut self, key: &str, body: &[u8]) -> Option<String> {
        if !self.taken.insert(key.to_string()) {
            return None;
        }
        let Ok(ack) = serde_json::from_slice::<Acknowledged>(body) else {
            tracing::warn!(request = %key, "an acknowledgement request that is not one; skipped");
            return None;
        };
        let by = ack.by.clone();
        match self.acknowledge(ack) {
            Ok(_) => Some(by),
            Err(e) => {
                tracing::warn!(request = %key, error = %e, by = %by, "an acknowledgement request was not recorded");
                None
            }
        }
    }

    /// The request objects already taken (the S3 store).
    pub fn taken_requests(&self) -> &std::collections::BTreeSet<String> {
        &self.taken
    }
}

/// How a rotation not yet acknowledged is reported.
pub fn rotation_notice(path: &Path, r: &Rotated) -> String {
    format!(
        "audit log {} began a new segment because the previous one could not be extended ({}); the previous segment is kept as {} ({} good lines, last hash {}). An auditor looks at it, then runs `trustsync audit acknowledge --by <you> --key <auditor key>` (signed with a key in audit.auditorPublicKeyFiles; nothing else clears this)",
        path.display(),
        r.reason,
        r.previous_segment,
        r.previous_good_lines,
        short(&r.previous_last_hash)
    )
}

/// For each checkpoint, the segment that holds it: 0 for the current file, 1 for the
/// segment before it, and so on; `None` for none.
pub fn segments_holding(path: &Path, cps: &[Checkpoint]) -> Result<Vec<Option<usize>>, Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.into(),
        source,
    })?;
    let mut segments: Vec<Vec<Checkpoint>> = vec![checkpoints_in(&bytes)];
    let mut next = first_rotation(&bytes);
    while let Some(r) = next.take().filter(|_| segments.len() <= 64) {
        let Ok(prev) = std::fs::read(&r.previous_segment) else {
            break;
        };
        // The whole file: its checkpoints after the break were published from it too (the
        // rotation recorded its hash, so it is the file that was set aside).
        segments.push(checkpoints_in(&prev));
        next = first_rotation(good_lines(&prev, r.previous_good_lines));
    }
    Ok(cps
        .iter()
        .map(|cp| segments.iter().position(|held| held.contains(cp)))
        .collect())
}

pub(super) fn checkpoints_in(bytes: &[u8]) -> Vec<Checkpoint> {
    bytes
        .split(|b| *b == b'\n')
        .filter_map(|raw| match serde_json::from_slice::<Record>(raw) {
            Ok(Record::Checkpoint(cp)) => Some(cp),
            _ => None,
        })
        .collect()
}

/// The first place where published checkpoints stop moving forward: index of the later
/// one and the pair. Signing times never go back; within one segment the lines grow; a
/// checkpoint of an older segment after one of a newer is a replay (`segments` from
/// [`segments_holding`]; a new segment starts its lines again).
pub fn checkpoints_out_of_order<'a>(
    cps: &'a [Checkpoint],
    segments: &[Option<usize>],
) -> Option<(usize, (&'a Checkpoint, &'a Checkpoint))> {
    let at = |c: &Checkpoint| {
        time::OffsetDateTime::parse(&c.signed_at, &time::format_description::well_known::Rfc3339)
            .ok()
    };
    cps.windows(2).enumerate().find_map(|(i, w)| {
        let (a, b) = (&w[0], &w[1]);
        let back_in_time = matches!((at(a), at(b)), (Some(x), Some(y)) if y < x);
        let seg = |j: usize| segments.get(j).copied().flatten();
        let backwards = match (seg(i), seg(i + 1)) {
            (Some(sa), Some(sb)) if sb < sa => false,
            (Some(sa), Some(sb)) if sb > sa => true,
            _ => b.lines <= a.lines,
        };
        (backwards || back_in_time).then_some((i + 1, (a, b)))
    })
}

/// The first published checkpoint (index, and why) whose lines no longer stand as it
/// signed them: in the segment that holds it, the chain must still reach its line count
/// unbroken and end in its head. A checkpoint published from a segment after that
/// segment's break vouched for lines that were changed since: no acknowledgement makes
/// that evidence whole again. `segments` from [`segments_holding`].
pub fn published_no_longer_matching(
    path: &Path,
    cps: &[Checkpoint],
    segments: &[Option<usize>],
) -> Result<Option<(usize, String)>, Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.into(),
        source,
    })?;
    // Each segment: its file, its bytes and how many of its lines still verify.
    let current = verify_bytes(path, &bytes).map_or(0, |(n, _)| n);
    let mut held: Vec<(PathBuf, Vec<u8>, usize)> = vec![(path.to_path_buf(), bytes, current)];
    let mut next = first_rotation(&held[0].1);
    while let Some(r) = next.take().filter(|_| held.len() <= 64) {
        let Ok(prev) = std::fs::read(&r.previous_segment) else {
            break;
        };
        next = first_rotation(good_lines(&prev, r.previous_good_lines));
        held.push((
            PathBuf::from(&r.previous_segment),
            prev,
            r.previous_good_lines,
        ));
    }
    for (i, (cp, seg)) in cps.iter().zip(segments).enumerate() {
        let Some((file, bytes, good)) = seg.and_then(|s| held.get(s)) else {
            continue;
        };
        let head = match cp.lines {
            0 => Some(GENESIS.to_string()),
            n => bytes.split(|b| *b == b'\n').nth(n - 1).map(hash),
        };
        if cp.lines > *good || head.as_deref() != Some(cp.head.as_str()) {
            return Ok(Some((
                i,
                format!(
                    "checkpoint {} of {} ({} lines, signed {}) was published from {}, but only its first {good} line(s) still verify: lines it vouched for were changed after it was published. A rotation keeps the broken file, and no acknowledgement clears this: the evidence it signed is gone",
                    i + 1,
                    cps.len(),
                    cp.lines,
                    cp.signed_at,
                    file.display()
                ),
            )));
        }
    }
    Ok(None)
}
