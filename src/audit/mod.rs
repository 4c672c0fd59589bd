//! The audit log: one JSON line per record ([`Record`]), hash-chained, written ahead.
//!
//! Every line carries `prevHash`, the SHA-256 (hex) of the previous line's bytes; the
//! first line's is 64 zeros. [`verify`] recomputes the chain, so an edited, deleted,
//! reordered or truncated line is found and named. Appends write one whole line and sync
//! it to disk before the change counts as recorded; a log whose last line is torn (no
//! final newline, as after a crash mid-write) has that line moved to a side file and a
//! [`Repaired`] record written when it is next opened (it was never a committed record);
//! any other break in the chain makes the file the previous segment, kept whole, and a new
//! segment begins with a [`Rotated`] record that names it and its last good hash: never
//! silently extended, never in the way of a revocation.
//!
//! Write-ahead: an [`Intent`] is synced before each AWS write and a [`ChangeRecord`]
//! naming its line after it. An intent found without an outcome when the log is next
//! opened (the process died in between) is resolved by reading AWS ([`landed`]) and
//! recorded as [`Recovered`]. One writer at a time: the log is locked while open, so a
//! second `apply` or controller on the same file is refused instead of interleaving.
//!
//! Signed: with a signing key (`audit.signingKeyFile`), a [`Checkpoint`] follows every
//! pass record and every `audit.checkpointLines` lines; [`verify_with`] checks them
//! against the public key, so a chain rewritten with recomputed hashes is found too.

mod checkpoint;
mod record;
mod recover;
mod show;

pub use checkpoint::{key_id, public_key_from_pem_file, Checkpoint, Signer};
pub use record::{
    Acknowledged, ChangeRecord, HeldRecord, Intent, PassRecord, Record, Recovered, Repaired,
    Rotated,
};
pub use recover::landed;
pub use show::{render_text, show, Entry, Query};

use std::io::Write;
use std::path::{Path, PathBuf};

use std::collections::BTreeMap;

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
    /// Another process has the log open for writing.
    #[error("audit log {path} is in use by another trustsync writer (a controller or an apply); one writer at a time keeps one chain: stop it, or give this one its own audit.path")]
    Locked { path: PathBuf },
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

/// An open, append-only audit log, locked for this writer.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    prev: String,
    lines: usize,
    /// Intents without an outcome yet, and the pins written, as the records say.
    ledger: Ledger,
    /// Signs checkpoints, when configured.
    signer: Option<Signer>,
    /// A checkpoint after this many lines without one.
    checkpoint_every: usize,
    /// Lines since the last checkpoint.
    unsigned: usize,
    /// Checkpoints written but not yet published to the anchor.
    unpublished: Vec<Checkpoint>,
    /// Also print every line to stdout (the controller: the cluster's log pipeline keeps
    /// a copy, chain and all).
    mirror: bool,
    /// Held open for the exclusive lock.
    _lock: std::fs::File,
}

impl AuditLog {
    /// Opens (or creates) the log, checking the whole chain first: a torn last line is
    /// moved aside and recorded; any other break (or a file that cannot be read) makes the
    /// file the previous segment, kept under another name, and a new segment begins with a
    /// [`Rotated`] record, so that new lines never hide an earlier problem and a revocation
    /// never waits for a person to mend the file.
    pub fn open(path: &Path) -> Result<AuditLog, Error> {
        let io = |source| Error::Io {
            path: path.into(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::Locked { path: path.into() })
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        let read = std::fs::read(path);
        let (bytes, torn, verified) = match read {
            Ok(mut bytes) => {
                let torn = set_torn_tail_aside(path, &mut bytes, &lock)?;
                let verified = verify_bytes(path, &bytes);
                (bytes, torn, verified)
            }
            Err(e) => (Vec::new(), None, Err(io(e))),
        };
        let (lines, prev, ledger, lock, rotated) = match verified {
            Ok((lines, prev)) => (lines, prev, Ledger::of_log(&bytes), lock, None),
            Err(e) => {
                let (lock, rotated, ledger) = rotate(path, &bytes, &e, lock)?;
                (0, GENESIS.to_string(), ledger, lock, Some(rotated))
            }
        };
        let mut log = AuditLog {
            path: path.into(),
            prev,
            lines,
            ledger,
            signer: None,
            checkpoint_every: 100,
            unsigned: 0,
            unpublished: Vec::new(),
            mirror: false,
            _lock: lock,
        };
        if let Some(rotated) = rotated {
            tracing::error!(
                previous_segment = %rotated.previous_segment,
                good_lines = rotated.previous_good_lines,
                reason = %rotated.reason,
                "the audit log could not be extended: kept it as the previous segment and began a new one; a person must look at it (trustsync audit acknowledge)"
            );
            log.append(&Record::Rotated(rotated))?;
        }
        if let Some(repaired) = torn {
            tracing::warn!(
                side_file = %repaired.side_file,
                bytes = repaired.removed_bytes,
                "the audit log's last line was torn (cut mid-write); moved it aside and went on"
            );
            log.append(&Record::Repaired(repaired))?;
        }
        Ok(log)
    }

    /// From now on, a signed checkpoint follows every pass record and every `every` lines.
    pub fn sign_with(&mut self, signer: Signer, every: usize) {
        self.signer = Some(signer);
        self.checkpoint_every = every.max(1);
    }

    /// The checkpoints written since the last call, for the anchor.
    pub fn take_unpublished(&mut self) -> Vec<Checkpoint> {
        std::mem::take(&mut self.unpublished)
    }

    /// Checkpoints the anchor did not take, to be tried again with the next ones.
    pub fn requeue(&mut self, mut checkpoints: Vec<Checkpoint>) {
        checkpoints.append(&mut self.unpublished);
        self.unpublished = checkpoints;
    }

    /// From now on, every line is also printed to stdout as written.
    pub fn mirror_to_stdout(&mut self) {
        self.mirror = true;
    }

    /// The group pin this log last recorded writing to each role (ARN).
    pub fn pins(&self) -> &BTreeMap<String, String> {
        &self.ledger.pins
    }

    /// The rotation this segment began with, while no person has acknowledged it.
    pub fn unacknowledged_rotation(&self) -> Option<&Rotated> {
        self.ledger.unacknowledged.as_ref()
    }

    /// Records that `by` has looked at the rotation this segment began with; an error when
    /// there is none to acknowledge.
    pub fn acknowledge(&mut self, by: &str, note: Option<String>) -> Result<Rotated, Error> {
        let Some(rotated) = self.ledger.unacknowledged.clone() else {
            return Err(Error::Broken {
                path: self.path.clone(),
                line: self.lines,
                reason: "no rotation to acknowledge: this segment did not begin with one, or it was acknowledged already".into(),
            });
        };
        self.append(&Record::Acknowledged(Acknowledged {
            by: by.to_string(),
            previous_segment: rotated.previous_segment.clone(),
            note,
        }))?;
        Ok(rotated)
    }

    /// Intents written before a crash that have no outcome, by line.
    pub fn pending(&self) -> &BTreeMap<usize, Intent> {
        &self.ledger.pending
    }

    /// Resolves every pending intent against what AWS shows now, one [`Recovered`] record
    /// each; an intent in an account this pass could not read stays pending. An Entra
    /// write (a federated credential) is resolved as not known (`landed: null`): the pass
    /// reads Entra afterwards and plans whatever is still missing. Returns how many were
    /// resolved.
    pub fn recover(
        &mut self,
        observed: &crate::observed::Observations,
        actor: &crate::model::call::Actor,
    ) -> Result<usize, Error> {
        // Each Recovered record settles its intent in the ledger as it is appended.
        let pending: Vec<(usize, Intent)> = self
            .ledger
            .pending
            .iter()
            .filter(|(_, i)| i.intent.is_entra() || observed.for_arn(&i.target).is_some())
            .map(|(line, i)| (*line, i.clone()))
            .collect();
        for (line, intent) in &pending {
            let landed = match observed.for_arn(&intent.target) {
                Some(seen) => landed(&intent.intent, seen),
                None => None,
            };
            tracing::warn!(line, action = intent.intent.name(), target = %intent.target, ?landed, "a write was under way when trustsync stopped; recorded what AWS shows now (not known for Entra)");
            self.append(&Record::Recovered(Recovered {
                actor: actor.clone(),
                intent_line: *line,
                action: intent.intent.name().to_string(),
                target: intent.target.clone(),
                landed,
            }))?;
        }
        Ok(pending.len())
    }

    /// Lines in the log.
    pub fn len(&self) -> usize {
        self.lines
    }

    /// True when the log has no line yet.
    pub fn is_empty(&self) -> bool {
        self.lines == 0
    }

    /// Appends one record; `time` and `prevHash` are added. The line is synced to disk
    /// before this returns its (1-based) line number. A signed checkpoint follows when one
    /// is due.
    pub fn append(&mut self, record: &Record) -> Result<usize, Error> {
        let line = self.write_line(record)?;
        self.unsigned += 1;
        let due = matches!(record, Record::Pass(_)) || self.unsigned >= self.checkpoint_every;
        if let Some(signer) = self.signer.as_ref().filter(|_| due) {
            let checkpoint = signer.sign(self.lines, &self.prev);
            self.write_line(&Record::Checkpoint(checkpoint.clone()))?;
            self.unpublished.push(checkpoint);
            self.unsigned = 0;
        }
        Ok(line)
    }

    fn write_line(&mut self, record: &Record) -> Result<usize, Error> {
        let Value::Object(mut obj) = serde_json::to_value(record).expect("records serialize")
        else {
            unreachable!("a record is an object");
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
        if self.mirror {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(&bytes).and_then(|()| out.flush());
        }
        self.prev = hash(text.as_bytes());
        self.lines += 1;
        self.ledger.note(self.lines, record);
        Ok(self.lines)
    }
}

/// What a log's records leave open or settled: the intents no outcome answers yet (by
/// line), and the group pin last written with success to each role (ARN). Fed each record
/// as the log is read back on opening and as it is appended, so both come from one pass
/// over the file.
#[derive(Debug, Default)]
struct Ledger {
    pending: BTreeMap<usize, Intent>,
    pins: BTreeMap<String, String>,
    /// The rotation this segment began with, until a person acknowledges it.
    unacknowledged: Option<Rotated>,
}

impl Ledger {
    /// A segment's ledger, with the pins of the segments before it (a segment that begins
    /// with a rotation carries on from its previous segment's good lines).
    fn of_log(bytes: &[u8]) -> Ledger {
        let mut pins = BTreeMap::new();
        let mut next = first_rotation(bytes);
        for _ in 0..16 {
            let Some(r) = next.take() else { break };
            let Ok(prev) = std::fs::read(&r.previous_segment) else {
                break;
            };
            let good = good_lines(&prev, r.previous_good_lines);
            let mut older = Ledger::of(good).pins;
            older.append(&mut pins);
            pins = older;
            next = first_rotation(good);
        }
        let mut ledger = Ledger::of(bytes);
        pins.append(&mut ledger.pins);
        ledger.pins = pins;
        ledger
    }

    fn of(bytes: &[u8]) -> Ledger {
        let mut ledger = Ledger::default();
        for (i, raw) in bytes.split(|b| *b == b'\n').enumerate() {
            if let Ok(record) = serde_json::from_slice::<Record>(raw) {
                ledger.note(i + 1, &record);
            }
        }
        ledger
    }

    /// Takes one record, at `line`, into account.
    fn note(&mut self, line: usize, record: &Record) {
        let (intent_line, landed) = match record {
            Record::Intent(intent) => {
                self.pending.insert(line, intent.clone());
                return;
            }
            Record::Change(change) => match change.intent_line {
                Some(l) => (
                    l,
                    matches!(change.result, crate::model::call::Outcome::Ok(_)),
                ),
                None => return,
            },
            Record::Recovered(r) => (r.intent_line, r.landed == Some(true)),
            Record::Rotated(r) => {
                self.unacknowledged = Some(r.clone());
                return;
            }
            Record::Acknowledged(_) => {
                self.unacknowledged = None;
                return;
            }
            _ => return,
        };
        if let Some(intent) = self.pending.remove(&intent_line).filter(|_| landed) {
            if let Some((role, pin)) = pin_of(&intent) {
                self.pins.insert(role, pin);
            }
        }
    }
}

/// The group pin an intent writes, if it writes one: the role's ARN and the tag value.
fn pin_of(intent: &Intent) -> Option<(String, String)> {
    let tags = match &intent.intent {
        crate::plan::Action::CreateRole { tags, .. }
        | crate::plan::Action::TagRole { tags, .. } => tags,
        _ => return None,
    };
    let pin = tags.get(crate::sources::directory::PIN_TAG)?;
    Some((intent.target.to_string(), pin.clone()))
}

/// The group pins this instance last wrote, per role ARN, as a log file records them
/// (read without taking the writer's lock; none when there is no log yet).
pub fn recorded_pins(path: &Path) -> BTreeMap<String, String> {
    std::fs::read(path)
        .map(|bytes| Ledger::of_log(&bytes).pins)
        .unwrap_or_default()
}

/// The rotation a segment begins with, if it does.
fn first_rotation(bytes: &[u8]) -> Option<Rotated> {
    let first = bytes.split(|b| *b == b'\n').next()?;
    match serde_json::from_slice::<Record>(first) {
        Ok(Record::Rotated(r)) => Some(r),
        _ => None,
    }
}

/// The first `n` lines of `bytes`, newlines included.
fn good_lines(bytes: &[u8], n: usize) -> &[u8] {
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
fn set_torn_tail_aside(
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
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
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
fn rotate(
    path: &Path,
    bytes: &[u8],
    why: &Error,
    old: std::fs::File,
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
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
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
    let mut ledger = Ledger::of_log(good);
    ledger.unacknowledged = None;
    Ok((file, rotated, ledger))
}

/// What a log says needs a person, read without the writer's lock: the rotation its
/// current segment began with while unacknowledged, or a break the next writer will
/// rotate away from. `None` when the log is whole (or missing).
pub fn needs_attention(path: &Path) -> Option<String> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => return Some(format!("audit log {}: cannot be read ({e}); the next apply or controller start begins a new segment", path.display())),
    };
    let whole = bytes.ends_with(b"\n") || bytes.is_empty();
    let checked = if whole {
        verify_bytes(path, &bytes)
    } else {
        let keep = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        verify_bytes(path, &bytes[..keep])
    };
    if let Err(e) = checked {
        return Some(format!(
            "{e}; the next apply or controller start keeps this file as the previous segment and begins a new one"
        ));
    }
    Ledger::of(&bytes)
        .unacknowledged
        .map(|r| rotation_notice(path, &r))
}

/// Where an acknowledgement waits for the writer that holds the log.
fn acknowledgement_request_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".acknowledge");
    PathBuf::from(p)
}

/// Leaves an acknowledgement for the writer that holds the log (a running controller);
/// returns the file it is in.
pub fn request_acknowledgement(
    path: &Path,
    by: &str,
    note: Option<String>,
) -> Result<PathBuf, Error> {
    let request = acknowledgement_request_path(path);
    let body = serde_json::to_vec(&Acknowledged {
        by: by.to_string(),
        previous_segment: String::new(),
        note,
    })
    .expect("serializes");
    std::fs::write(&request, body).map_err(|source| Error::Io {
        path: request.clone(),
        source,
    })?;
    Ok(request)
}

impl AuditLog {
    /// Records an acknowledgement left by `trustsync audit acknowledge` while this writer
    /// held the log, and removes the request. Returns whom it was from when one was
    /// recorded; a request with no rotation to acknowledge is dropped with a warning.
    pub fn take_acknowledgement(&mut self) -> Option<String> {
        let request = acknowledgement_request_path(&self.path);
        let bytes = std::fs::read(&request).ok()?;
        let _ = std::fs::remove_file(&request);
        let Ok(ack) = serde_json::from_slice::<Acknowledged>(&bytes) else {
            tracing::warn!(file = %request.display(), "an acknowledgement request that is not one; removed");
            return None;
        };
        match self.acknowledge(&ack.by, ack.note) {
            Ok(_) => Some(ack.by),
            Err(e) => {
                tracing::warn!(error = %e, "acknowledgement request not recorded");
                None
            }
        }
    }
}

/// How a rotation not yet acknowledged is reported.
pub fn rotation_notice(path: &Path, r: &Rotated) -> String {
    format!(
        "audit log {} began a new segment because the previous one could not be extended ({}); the previous segment is kept as {} ({} good lines, last hash {}). Look at it, then run `trustsync audit acknowledge --by <you>`",
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

fn checkpoints_in(bytes: &[u8]) -> Vec<Checkpoint> {
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

/// Opens the log of this configuration, with its signing key when one is configured.
pub fn open_configured(config: &crate::config::AuditConfig) -> anyhow::Result<AuditLog> {
    let mut log = AuditLog::open(&config.path)?;
    if let Some(path) = &config.signing_key_file {
        let signer = Signer::from_pem_file(path).map_err(|e| anyhow::anyhow!(e))?;
        log.sign_with(signer, config.checkpoint_lines);
    }
    Ok(log)
}

/// The current time, RFC 3339 in UTC.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Verifies a log file's chain; returns the number of lines.
pub fn verify(path: &Path) -> Result<usize, Error> {
    verify_with(path, None).map(|v| v.lines)
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
    /// The rotation this segment began with, while no person has acknowledged it.
    pub unacknowledged: Option<Rotated>,
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
/// end in the hash the rotation carried on from.
pub fn verify_with(
    path: &Path,
    key: Option<&ed25519_dalek::VerifyingKey>,
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
    let mut found = Verified {
        lines,
        checkpoints,
        signed_through,
        previous: Vec::new(),
        unacknowledged: Ledger::of(&bytes).unacknowledged,
    };
    let mut next = first_rotation(&bytes).map(|r| (path.to_path_buf(), r));
    while let Some((from, r)) = next.take() {
        let prev_path = PathBuf::from(&r.previous_segment);
        let broken = |reason: String| Error::Broken {
            path: from.clone(),
            line: 1,
            reason,
        };
        if found.previous.iter().any(|p| p.path == prev_path) || found.previous.len() > 64 {
            return Err(broken(
                "the segments' rotations go round in a circle".into(),
            ));
        }
        let prev = std::fs::read(&prev_path).map_err(|e| {
            broken(format!(
                "the previous segment {} cannot be read ({e}): the segments before this one are not accounted for",
                prev_path.display()
            ))
        })?;
        if prev.len() as u64 != r.previous_bytes || hash(&prev) != r.previous_sha256 {
            return Err(broken(format!(
                "the previous segment {} is not the file that was set aside ({} bytes, SHA-256 {}): it changed since",
                prev_path.display(),
                r.previous_bytes,
                short(&r.previous_sha256)
            )));
        }
        let good = good_lines(&prev, r.previous_good_lines);
        let (n, last) = verify_bytes(&prev_path, good)?;
        if n != r.previous_good_lines || last != r.previous_last_hash {
            return Err(broken(format!(
                "the previous segment {} has {n} good lines ending in {}, but the rotation carried on from {} lines ending in {}",
                prev_path.display(),
                short(&last),
                r.previous_good_lines,
                short(&r.previous_last_hash)
            )));
        }
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
fn verify_checkpoints(
    path: &Path,
    bytes: &[u8],
    lines: usize,
    key: Option<&ed25519_dalek::VerifyingKey>,
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
                    return Err(broken(n, format!("checkpoint signature does not verify with key {}: the checkpoint was forged or edited", key_id(key))));
                }
                checkpoints += 1;
                signed_through = n;
            }
        }
        prev = hash(raw);
    }
    Ok((checkpoints, signed_through))
}

fn short(h: &str) -> &str {
    h.get(..12).unwrap_or(h)
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
    use crate::model::call::Written;
    use crate::model::call::{Actor, Outcome};
    use crate::plan::{Action, Change};

    fn actor() -> Actor {
        Actor {
            instance: "test/1".into(),
            aws_caller: "arn:aws:iam::1:user/t".into(),
            entra_app_id: None,
        }
    }

    fn pass(applied: usize) -> Record {
        Record::Pass(PassRecord {
            actor: actor(),
            trigger: None,
            policy_revision: None,
            policy_author: None,
            outcome: "applied".into(),
            applied,
            failed: 0,
            skipped: 0,
            held: Vec::new(),
            problems: 0,
            error: None,
        })
    }

    fn log_with(n: usize) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let mut log = AuditLog::open(&path).unwrap();
        for i in 0..n {
            log.append(&pass(i)).unwrap();
        }
        (dir, path)
    }

    #[test]
    fn chain_verifies_and_reopens() {
        let (_d, path) = log_with(3);
        assert_eq!(verify(&path).unwrap(), 3);
        let mut log = AuditLog::open(&path).unwrap();
        assert_eq!(log.len(), 3);
        assert_eq!(log.append(&pass(9)).unwrap(), 4);
        assert_eq!(verify(&path).unwrap(), 4);
        // Every line reads back as a record.
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            serde_json::from_str::<Record>(line).unwrap();
        }
    }

    #[test]
    fn edited_deleted_and_torn_lines_are_named() {
        let (_d, path) = log_with(4);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();

        let edited = text.replacen("\"applied\":1", "\"applied\":7", 1);
        std::fs::write(&path, &edited).unwrap();
        let err = verify(&path).unwrap_err().to_string();
        assert!(err.contains("line 3:"), "{err}");

        let deleted = format!("{}\n{}\n{}\n", lines[0], lines[2], lines[3]);
        std::fs::write(&path, deleted).unwrap();
        assert!(verify(&path).unwrap_err().to_string().contains("line 2:"));

        std::fs::write(&path, &text[..text.len() - 5]).unwrap();
        let err = verify(&path).unwrap_err().to_string();
        assert!(err.contains("line 4: last line is torn"), "{err}");

        // A torn line in the middle's company (a broken chain before it) is not repaired in
        // place: verification names the break, and opening keeps the file whole as the
        // previous segment and begins a new one after its last good line.
        let broken_then_torn = format!("{}\n{}\n{}", lines[0], lines[2], &lines[3][..10]);
        std::fs::write(&path, &broken_then_torn).unwrap();
        assert!(verify(&path).is_err());
        let log = AuditLog::open(&path).unwrap();
        let r = log.unacknowledged_rotation().unwrap();
        assert_eq!(r.previous_good_lines, 0, "line 2 says line 1 changed");
        assert_eq!(
            std::fs::read_to_string(&r.previous_segment).unwrap(),
            broken_then_torn
        );
    }

    #[test]
    fn a_torn_last_line_is_moved_aside_and_recorded_and_the_log_goes_on() {
        let (dir, path) = log_with(3);
        let text = std::fs::read_to_string(&path).unwrap();
        let torn = "{\"time\":\"2026-12-04T03:00:00Z\",\"type\":\"intent\",\"act";
        std::fs::write(&path, format!("{text}{torn}")).unwrap();
        let mut log = AuditLog::open(&path).expect("a torn tail never blocks the log");
        assert_eq!(log.len(), 4, "three lines and the repaired record");
        log.append(&pass(9)).unwrap();
        drop(log);
        assert_eq!(verify(&path).unwrap(), 5);
        let last_but_one = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .nth(3)
            .unwrap()
            .to_string();
        let Record::Repaired(r) = serde_json::from_str::<Record>(&last_but_one).unwrap() else {
            panic!("{last_but_one}");
        };
        assert_eq!(r.removed_bytes, torn.len());
        assert_eq!(r.removed_sha256, hash(torn.as_bytes()));
        let side: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("audit.jsonl.torn-")
            })
            .collect();
        assert_eq!(side.len(), 1);
        assert_eq!(
            std::fs::read_to_string(side[0].path()).unwrap(),
            torn,
            "kept, never deleted"
        );
        assert_eq!(side[0].path().display().to_string(), r.side_file);
    }

    #[test]
    fn a_garbled_line_rotates_and_the_controller_records_an_acknowledgement_left_for_it() {
        let (_dir, path) = log_with(4);
        let text = std::fs::read_to_string(&path).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        lines[2] = "not json";
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        assert!(needs_attention(&path).unwrap().contains("line 3"));
        let mut log = AuditLog::open(&path).expect("a broken chain never blocks the log");
        let r = log.unacknowledged_rotation().cloned().unwrap();
        assert_eq!(
            r.previous_good_lines, 2,
            "the garbled line itself is the first bad one"
        );
        log.append(&pass(9)).unwrap();
        let v = verify_with(&path, None).unwrap();
        assert_eq!(v.previous.len(), 1);
        assert_eq!(v.unacknowledged.as_ref(), Some(&r));
        assert!(needs_attention(&path)
            .unwrap()
            .contains(&r.previous_segment));
        // Left next to the log while this writer holds it, recorded at its next pass.
        assert!(matches!(AuditLog::open(&path), Err(Error::Locked { .. })));
        request_acknowledgement(&path, "alice", None).unwrap();
        assert_eq!(log.take_acknowledgement().as_deref(), Some("alice"));
        assert!(log.unacknowledged_rotation().is_none());
        assert_eq!(log.take_acknowledgement(), None, "the request is used once");
        drop(log);
        assert_eq!(needs_attention(&path), None);
        assert_eq!(verify_with(&path, None).unwrap().unacknowledged, None);
        // A second break rotates again: verify follows both segments back.
        let mut log = AuditLog::open(&path).unwrap();
        log.append(&pass(10)).unwrap();
        drop(log);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replacen("alice", "mallory", 1)).unwrap();
        AuditLog::open(&path).unwrap();
        assert_eq!(verify_with(&path, None).unwrap().previous.len(), 2);
    }

    #[test]
    fn one_writer_at_a_time() {
        let (_d, path) = log_with(1);
        let first = AuditLog::open(&path).unwrap();
        let err = AuditLog::open(&path).unwrap_err().to_string();
        assert!(err.contains("in use by another trustsync writer"), "{err}");
        drop(first);
        AuditLog::open(&path).expect("free again once the first writer is gone");
    }

    #[test]
    fn an_entra_write_left_open_is_recovered_as_not_known() {
        let (_d, path) = log_with(0);
        let action = Action::DeleteFederatedCredential {
            application_id: "obj".into(),
            app_id: "app".into(),
            credential_id: "c".into(),
            name: "trustsync-x-123456789012-r".into(),
        };
        {
            let mut log = AuditLog::open(&path).unwrap();
            log.append(&Record::Intent(Intent {
                actor: actor(),
                intent: action,
                target: "entra:application/app/federatedIdentityCredentials/n".into(),
                mapping: None,
            }))
            .unwrap();
        }
        let mut log = AuditLog::open(&path).unwrap();
        let observed = crate::observed::Observations::single(
            "1",
            "eu-west-1",
            crate::observed::Observed::default(),
        );
        assert_eq!(log.recover(&observed, &actor()).unwrap(), 1);
        assert!(log.pending().is_empty());
        drop(log);
        let text = std::fs::read_to_string(&path).unwrap();
        match serde_json::from_str(text.lines().last().unwrap()).unwrap() {
            Record::Recovered(r) => assert_eq!(r.landed, None),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_intent_without_an_outcome_is_recovered_once_from_what_aws_shows() {
        let (_d, path) = log_with(0);
        let action = Action::DeleteRole {
            role_name: "gone".into(),
        };
        let change = Change::new(action.clone(), "arn:aws:iam::1:role/gone", None, "prune");
        let intent = |log: &mut AuditLog| {
            log.append(&Record::Intent(Intent {
                actor: actor(),
                intent: action.clone(),
                target: change.resource.clone(),
                mapping: None,
            }))
            .unwrap()
        };
        {
            let mut log = AuditLog::open(&path).unwrap();
            // One write answered, one left open (the process "dies" here).
            let line = intent(&mut log);
            let done = ChangeRecord::of(
                &change,
                &actor(),
                None,
                Some(line),
                Outcome::Ok(Written::default()),
            );
            log.append(&Record::Change(Box::new(done))).unwrap();
            intent(&mut log);
            assert_eq!(log.pending().keys().collect::<Vec<_>>(), [&3]);
        }
        let mut log = AuditLog::open(&path).unwrap();
        assert_eq!(log.pending().keys().collect::<Vec<_>>(), [&3]);
        // An account this pass could not read says nothing: the intent stays pending.
        let elsewhere = crate::observed::Observations::single(
            "2",
            "eu-west-1",
            crate::observed::Observed::default(),
        );
        assert_eq!(log.recover(&elsewhere, &actor()).unwrap(), 0);
        assert_eq!(log.pending().keys().collect::<Vec<_>>(), [&3]);
        let observed = crate::observed::Observations::single(
            "1",
            "eu-west-1",
            crate::observed::Observed::default(),
        );
        assert_eq!(log.recover(&observed, &actor()).unwrap(), 1);
        drop(log);
        let text = std::fs::read_to_string(&path).unwrap();
        let last: Record = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        match last {
            Record::Recovered(r) => {
                assert_eq!(
                    (r.intent_line, r.landed),
                    (3, Some(true)),
                    "the role is gone"
                );
            }
            other => panic!("{other:?}"),
        }
        let mut log = AuditLog::open(&path).unwrap();
        assert!(log.pending().is_empty(), "recovered once");
        assert_eq!(log.recover(&observed, &actor()).unwrap(), 0);
        assert_eq!(verify(&path).unwrap(), 4);
    }

    fn key(seed: u8) -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::from_bytes(&[seed; 32])
    }

    /// A log of `passes` signed passes (each record followed by its checkpoint).
    fn signed_log(passes: usize) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let mut log = AuditLog::open(&path).unwrap();
        log.sign_with(Signer::new(key(7)), 100);
        for i in 0..passes {
            log.append(&pass(i)).unwrap();
        }
        (dir, path)
    }

    /// The lines with every prevHash recomputed, as someone who can write the file can.
    fn rechain(lines: &[String]) -> String {
        let mut prev = GENESIS.to_string();
        let mut out = String::new();
        for l in lines {
            let mut v: Value = serde_json::from_str(l).unwrap();
            v["prevHash"] = Value::String(prev.clone());
            let text = serde_json::to_string(&v).unwrap();
            prev = hash(text.as_bytes());
            out.push_str(&text);
            out.push('\n');
        }
        out
    }

    #[test]
    fn signed_checkpoints_find_a_rewritten_rerooted_or_reordered_log() {
        let (_d, path) = signed_log(4);
        let public = key(7).verifying_key();
        let ok = verify_with(&path, Some(&public)).unwrap();
        assert_eq!((ok.lines, ok.checkpoints, ok.signed_through), (8, 4, 8));
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<String> = text.lines().map(String::from).collect();
        let fails = |tampered: &str, line: usize, why: &str| {
            std::fs::write(&path, tampered).unwrap();
            let err = verify_with(&path, Some(&public)).unwrap_err().to_string();
            assert!(err.contains(&format!("line {line}:")), "{err}");
            assert!(err.contains(why), "{err}");
        };
        let joined = |ls: &[String]| ls.iter().map(|l| format!("{l}\n")).collect::<String>();

        // Without recomputing the chain: the chain itself names the line.
        fails(
            &text.replacen("\"applied\":1", "\"applied\":9", 1),
            4,
            "prevHash",
        );
        let mut swapped = lines.clone();
        swapped.swap(2, 4);
        fails(&joined(&swapped), 3, "prevHash");
        let mut middle = lines.clone();
        middle.remove(3);
        fails(&joined(&middle), 4, "prevHash");

        // With every prevHash recomputed: the signed checkpoints do not follow.
        let mut edited = lines.clone();
        edited[2] = edited[2].replacen("\"applied\":1", "\"applied\":9", 1);
        fails(&rechain(&edited), 4, "rewritten");
        fails(&rechain(&lines[2..]), 2, "rewritten");
        let mut reordered = lines.clone();
        reordered.swap(0, 2);
        fails(&rechain(&reordered), 2, "rewritten");
        let unsigned: Vec<String> = lines
            .iter()
            .filter(|l| !l.contains("\"checkpoint\""))
            .cloned()
            .collect();
        fails(&rechain(&unsigned), 4, "no signed checkpoint");
        // A checkpoint made with another key does not verify.
        let forged = {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("f.jsonl");
            let mut log = AuditLog::open(&p).unwrap();
            log.sign_with(Signer::new(key(9)), 100);
            log.append(&pass(0)).unwrap();
            std::fs::read_to_string(&p).unwrap()
        };
        fails(&forged, 2, "does not verify");
        // Without the key, only the chain is checked.
        std::fs::write(&path, rechain(&unsigned)).unwrap();
        assert_eq!(verify(&path).unwrap(), 4);
    }
}
