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
//! Signed: with a signing key (`audit.signingKeyFile`, or an AWS KMS key,
//! `audit.kmsKeyId`), a [`Checkpoint`] follows every pass record, every record a person
//! caused (acknowledged, released) and every `audit.checkpointLines` lines; [`verify_with`]
//! checks them against the public key, so a chain rewritten with recomputed hashes is
//! found too.
//!
//! Evidence against its own volume: whoever can write the file can append lines that
//! chain correctly (every hash is public), so the log believes only what a signature
//! vouches for ([`Trust`]). On opening, the writer checks the checkpoints' signatures and
//! the recorded hashes of the previous segments, not only the chain; a bad signature
//! breaks the log like a bad hash (a new segment begins). Lines after the last signed
//! checkpoint were not vouched for: the writer records that they are not ([`Unvouched`])
//! and takes no group pin, removal baseline or person's binding from them, nor from the
//! tail of a previous segment after its last checkpoint (the role's own tags are followed
//! instead, as before trustsync recorded pins). An acknowledgement of a rotation counts
//! only when signed by a configured auditor key ([`ack`]). Without a signing key nothing
//! can be told apart, and the log is believed as far as its chain.

mod ack;
mod checkpoint;
mod configured;
mod fence;
mod keys;
mod kms;
pub mod lease;
mod record;
mod recover;
mod release;
mod repair;
pub mod s3;
mod show;
mod trust;
mod verify;

pub use checkpoint::{key_id, Checkpoint, CheckpointSigner, Signer};
pub use configured::{
    open_configured, open_configured_store, readable_copy, readable_location, Readable,
};
pub use keys::PublicKey;
pub use kms::KmsSigner;
pub use record::{
    Acknowledged, ChangeRecord, HeldRecord, Intent, PassRecord, Record, Recovered, Released,
    Repaired, Rotated, Unvouched,
};
pub use recover::landed;
pub use release::{releases_of, request_release, request_release_in, take_releases};
pub use repair::{
    checkpoints_out_of_order, needs_attention, published_no_longer_matching,
    request_acknowledgement, rotation_notice, segments_holding, unacknowledged,
};
use repair::{first_rotation, good_lines, rotate, set_torn_tail_aside};
pub use show::{render_text, show, Entry, Query};
pub use trust::Trust;
pub use verify::{verify, verify_with, PreviousSegment, Verified};
use verify::{verify_bytes, verify_checkpoints};

use std::io::Write;
use std::path::{Path, PathBuf};

use std::collections::{BTreeMap, BTreeSet};

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
    /// This writer may append no more: its lease ended, or another writer appended where
    /// it meant to (the S3 store). It must step down.
    #[error("audit log {path}: {reason}")]
    Superseded { path: PathBuf, reason: String },
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

/// The first 12 characters of a hash, for a message.
fn short(h: &str) -> &str {
    h.get(..12).unwrap_or(h)
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
    signer: Option<CheckpointSigner>,
    /// The keys that vouch for what the log says.
    trust: Trust,
    /// A checkpoint after this many lines without one.
    checkpoint_every: usize,
    /// Lines since the last checkpoint.
    unsigned: usize,
    /// Checkpoints written but not yet published to the anchor.
    unpublished: Vec<Checkpoint>,
    /// Also print every line to stdout (the controller: the cluster's log pipeline keeps
    /// a copy, chain and all).
    mirror: bool,
    /// The bucket the log is kept in (`audit.s3`); the file is then its working copy.
    remote: Option<s3::S3Log>,
    /// The request objects already taken (the S3 store), as this segment records them.
    taken: BTreeSet<String>,
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
        AuditLog::open_with(path, Trust::default(), None)
    }

    /// [`AuditLog::open`], believing only what `trust`'s keys vouch for: with a checkpoint
    /// key, a checkpoint whose signature does not verify breaks the log like a bad hash,
    /// and lines after the last signed checkpoint are recorded as [`Unvouched`] and give
    /// no pin, baseline or binding. Checkpoints are then signed with `signer` (every
    /// `every` lines, and after every pass).
    pub fn open_with(
        path: &Path,
        trust: Trust,
        signer: Option<(CheckpointSigner, usize)>,
    ) -> Result<AuditLog, Error> {
        AuditLog::open_store(path, trust, signer, None)
    }

    /// [`AuditLog::open_with`], kept in `remote` (the S3 store) when given: the file at
    /// `path` is rebuilt from the bucket first and is its working copy from then on; every
    /// append goes to the bucket before it counts.
    pub fn open_store(
        path: &Path,
        trust: Trust,
        signer: Option<(CheckpointSigner, usize)>,
        mut remote: Option<s3::S3Log>,
    ) -> Result<AuditLog, Error> {
        let lock = lock_log(path)?;
        let tampering = match remote.as_mut() {
            Some(r) => r.pull(path)?.tampering,
            None => Vec::new(),
        };
        let (bytes, torn, verified) = read_verified(path, &lock, &trust)?;
        let taken = taken_requests(&bytes);
        let (lines, prev, ledger, lock, rotated, unvouched) = match verified {
            Ok((lines, prev, vouched)) => {
                // The checkpoints all verified: the last one is where the signatures end.
                let unvouched = vouched
                    .filter(|through| *through < lines)
                    .map(|through| (through + 1, lines));
                let ledger = Ledger::of_log_vouched(path, &bytes, vouched, &trust);
                (lines, prev, ledger, lock, None, unvouched)
            }
            Err(e) => {
                let (lock, rotated, ledger) = rotate(path, &bytes, &e, lock, &trust)?;
                if let Some(r) = remote.as_mut() {
                    r.begin_segment();
                }
                (0, GENESIS.to_string(), ledger, lock, Some(rotated), None)
            }
        };
        let mut ledger = ledger;
        for t in tampering {
            tracing::error!(problem = %t, "the audit log's bucket holds an attempt to rewrite it");
            ledger.problems.push(t);
        }
        for problem in &ledger.problems {
            tracing::error!(problem = %problem, "the audit log's previous segments do not hold what their rotation recorded; nothing is taken from them");
        }
        let (signer, checkpoint_every) = match signer {
            Some((s, every)) => (Some(s), every.max(1)),
            None => (None, 100),
        };
        let mut log = AuditLog {
            path: path.into(),
            prev,
            lines,
            ledger,
            signer,
            trust,
            checkpoint_every,
            unsigned: 0,
            unpublished: Vec::new(),
            mirror: false,
            remote,
            taken,
            _lock: lock,
        };
        log.record_opening(rotated, torn, unvouched)?;
        Ok(log)
    }

    /// Records what opening found: a rotation, a torn line set aside, lines no signed
    /// checkpoint covers (`from_line`, `to_line`).
    fn record_opening(
        &mut self,
        rotated: Option<Rotated>,
        torn: Option<Repaired>,
        unvouched: Option<(usize, usize)>,
    ) -> Result<(), Error> {
        if let Some(rotated) = rotated {
            tracing::error!(
                previous_segment = %rotated.previous_segment,
                good_lines = rotated.previous_good_lines,
                reason = %rotated.reason,
                "the audit log could not be extended: kept it as the previous segment and began a new one; a person must look at it (trustsync audit acknowledge)"
            );
            self.append(&Record::Rotated(rotated))?;
        }
        if let Some(repaired) = torn {
            tracing::warn!(
                side_file = %repaired.side_file,
                bytes = repaired.removed_bytes,
                "the audit log's last line was torn (cut mid-write); moved it aside and went on"
            );
            self.append(&Record::Repaired(repaired))?;
        }
        if let Some((from_line, to_line)) = unvouched {
            let not_taken = std::mem::take(&mut self.ledger.not_taken);
            let reason = format!(
                "no signed checkpoint covers these lines: a crash before the next checkpoint, or lines written by someone else; {}",
                if not_taken.is_empty() {
                    "they record no pin, removal baseline or binding".to_string()
                } else {
                    format!("not taken from them: {}", not_taken.join(", "))
                }
            );
            tracing::warn!(from_line, to_line, %reason, "audit log lines after the last signed checkpoint are not vouched for");
            self.append(&Record::Unvouched(Unvouched {
                from_line,
                to_line,
                reason,
            }))?;
        }
        Ok(())
    }

    /// From now on, a signed checkpoint follows every pass record and every `every` lines.
    pub fn sign_with(&mut self, signer: Signer, every: usize) {
        self.signer = Some(CheckpointSigner::Local(signer));
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

    /// The removal baseline (`count@unix-time`) this log last recorded for each role (ARN).
    pub fn baselines(&self) -> &BTreeMap<String, String> {
        &self.ledger.baselines
    }

    /// Whom each identity-store user name was made or taken over for, as recorded.
    pub fn people(&self) -> &BTreeMap<String, String> {
        &self.ledger.people
    }

    /// The rotation this segment began with, while no auditor has acknowledged it.
    pub fn unacknowledged_rotation(&self) -> Option<&Rotated> {
        self.ledger.unacknowledged.as_ref()
    }

    /// What in this log needs a person, in one text: the rotation no auditor has
    /// acknowledged yet (and the acknowledgements ignored meanwhile), previous segments
    /// that no longer hold what their rotation recorded. `None` when nothing does.
    pub fn attention(&self) -> Option<String> {
        self.ledger.attention(&self.path)
    }

    /// Records an auditor's acknowledgement of the rotation this segment began with; an
    /// error when there is none to acknowledge, or when `ack` is not signed by a
    /// configured auditor key for that rotation (nothing is written then).
    pub fn acknowledge(&mut self, ack: Acknowledged) -> Result<Rotated, Error> {
        let broken = |reason: String| Error::Broken {
            path: self.path.clone(),
            line: self.lines,
            reason,
        };
        let Some(rotated) = self.ledger.unacknowledged.clone() else {
            return Err(broken("no rotation to acknowledge: this segment did not begin with one, or it was acknowledged already".into()));
        };
        ack.check(&rotated, &self.trust.auditors)
            .map_err(|why| broken(format!("acknowledgement by {} not recorded: {why}", ack.by)))?;
        self.append(&Record::Acknowledged(ack))?;
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

    /// From now on, nothing reaches the store unless `fence` says this writer holds the
    /// writers' lease (the S3 store; the file has its lock instead).
    pub fn fence_with(&mut self, fence: lease::Fence) {
        if let Some(r) = self.remote.as_mut() {
            r.fence_with(fence);
        }
    }

    /// Where the log is kept: the bucket, or the file.
    pub fn location(&self) -> String {
        match &self.remote {
            Some(r) => r.location(),
            None => self.path.display().to_string(),
        }
    }

    /// The S3 store's requests so far; none for the file.
    pub fn store_requests(&self) -> Option<std::sync::Arc<s3::StoreRequests>> {
        self.remote.as_ref().map(|r| r.requests())
    }

    /// Sends what is written but not yet in the store (a write's outcome waits for the
    /// next record that must be there); nothing for the file, where every line is synced.
    pub fn flush(&mut self) -> Result<(), Error> {
        match self.remote.as_mut() {
            Some(r) => r.flush(&self.path),
            None => Ok(()),
        }
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
        // Every record but a write's own (intent, outcome, recovery) is rare and ends
        // something: a pass, or what a person did.
        let ends = !matches!(
            record,
            Record::Intent(_) | Record::Change(_) | Record::Recovered(_)
        );
        let due = ends || self.unsigned >= self.checkpoint_every;
        if let Some(signer) = self.signer.as_ref().filter(|_| due) {
            match signer.sign(self.lines, &self.prev) {
                Ok(checkpoint) => {
                    self.write_line(&Record::Checkpoint(checkpoint.clone()))?;
                    self.unpublished.push(checkpoint);
                    self.unsigned = 0;
                }
                // The lines stay unsigned until the next checkpoint: tried again with the
                // next line. After a restart they are not vouched for.
                Err(e) => {
                    tracing::error!(error = %e, unsigned_lines = self.unsigned, "an audit checkpoint could not be signed")
                }
            }
        }
        if s3::must_flush(record) {
            self.flush()?;
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
        if let Some(r) = self.remote.as_mut() {
            r.stage(&bytes);
        }
        if self.mirror {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(&bytes).and_then(|()| out.flush());
        }
        self.prev = hash(text.as_bytes());
        self.lines += 1;
        // What this writer writes itself it vouches for.
        self.ledger
            .note(self.lines, record, true, &self.trust.auditors);
        Ok(self.lines)
    }
}

/// Creates the log's folder and file if need be and takes the writer's lock on it.
fn lock_log(path: &Path) -> Result<std::fs::File, Error> {
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
        Err(std::fs::TryLockError::WouldBlock) => return Err(Error::Locked { path: path.into() }),
        Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
    }
    Ok(lock)
}

/// What a log holds, verified once: its bytes (a torn last line set aside first), and its
/// lines, last hash and, with a checkpoint key, the line of the last signed checkpoint; or
/// why it cannot be extended (a file that cannot be read among them).
#[allow(clippy::type_complexity)]
fn read_verified(
    path: &Path,
    lock: &std::fs::File,
    trust: &Trust,
) -> Result<
    (
        Vec<u8>,
        Option<Repaired>,
        Result<(usize, String, Option<usize>), Error>,
    ),
    Error,
> {
    match std::fs::read(path) {
        Ok(mut bytes) => {
            let torn = set_torn_tail_aside(path, &mut bytes, lock)?;
            let verified = verify_bytes(path, &bytes).and_then(|(n, prev)| {
                let vouched = match &trust.checkpoints {
                    Some(key) => Some(verify_checkpoints(path, &bytes, n, Some(key))?.1),
                    None => None,
                };
                Ok((n, prev, vouched))
            });
            Ok((bytes, torn, verified))
        }
        Err(e) => Ok((
            Vec::new(),
            None,
            Err(Error::Io {
                path: path.into(),
                source: e,
            }),
        )),
    }
}

/// What a log's records leave open or settled: the intents no outcome answers yet (by
/// line), and the group pin and the removal baseline last written with success to each role
/// (ARN). Fed each record as the log is read back on opening and as it is appended, so all
/// come from one pass over the file; only records a signature vouches for (or this writer
/// wrote) give pins, baselines and bindings.
#[derive(Debug, Default)]
struct Ledger {
    pending: BTreeMap<usize, Intent>,
    /// Pending intents on lines nothing vouches for.
    unvouched_intents: BTreeSet<usize>,
    pins: BTreeMap<String, String>,
    /// The removal baseline (`count@unix-time`) each role's last recorded removal took.
    baselines: BTreeMap<String, String>,
    /// Whom trustsync made or took over each identity-store user name for (lower-cased
    /// user name -> Entra object id): a name reused in Entra is never handed over.
    people: BTreeMap<String, String>,
    /// The rotation this segment began with, until an auditor acknowledges it.
    unacknowledged: Option<Rotated>,
    /// Acknowledgements that did not count, and why.
    ignored_acks: Vec<String>,
    /// Previous segments that do not hold what their rotation recorded.
    problems: Vec<String>,
    /// What unvouched lines would have given (pins, baselines, bindings), for the report.
    not_taken: Vec<String>,
}

impl Ledger {
    /// A segment's ledger, with the pins of the segments before it (a segment that begins
    /// with a rotation carries on from its previous segment's good lines, once they are
    /// found to be what the rotation recorded).
    fn of_log(path: &Path, bytes: &[u8], lines: usize, trust: &Trust) -> Ledger {
        let vouched = vouched_through(bytes, lines, trust.checkpoints.as_ref());
        Ledger::of_log_vouched(path, bytes, vouched, trust)
    }

    /// [`Ledger::of_log`], where the segment's lines are vouched for through `vouched`
    /// (as [`vouched_through`] finds it; known already when the log was just verified).
    fn of_log_vouched(path: &Path, bytes: &[u8], vouched: Option<usize>, trust: &Trust) -> Ledger {
        let (mut pins, mut baselines, mut people) =
            (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
        let mut problems = Vec::new();
        let mut next = first_rotation(bytes).map(|r| (path.to_path_buf(), r));
        for _ in 0..16 {
            let Some((from, r)) = next.take() else { break };
            let (prev_path, good, n) = match previous_segment(&from, &r) {
                Ok(found) => found,
                Err(e) => {
                    problems.push(e.to_string());
                    break;
                }
            };
            let key = trust.checkpoints.as_ref();
            let mut older = Ledger::of(good.as_slice(), vouched_through(&good, n, key), trust);
            older.pins.append(&mut pins);
            older.baselines.append(&mut baselines);
            older.people.append(&mut people);
            (pins, baselines, people) = (older.pins, older.baselines, older.people);
            next = first_rotation(&good).map(|r| (prev_path, r));
        }
        let mut ledger = Ledger::of(bytes, vouched, trust);
        pins.append(&mut ledger.pins);
        baselines.append(&mut ledger.baselines);
        people.append(&mut ledger.people);
        (ledger.pins, ledger.baselines, ledger.people) = (pins, baselines, people);
        ledger.problems = problems;
        ledger
    }

    /// One segment's records; with `vouched_through`, only lines up to it (and outside
    /// the ranges an [`Unvouched`] record up to it names) are vouched for.
    fn of(bytes: &[u8], vouched_through: Option<usize>, trust: &Trust) -> Ledger {
        let records: Vec<(usize, Record)> = bytes
            .split(|b| *b == b'\n')
            .enumerate()
            .filter_map(|(i, raw)| Some((i + 1, serde_json::from_slice::<Record>(raw).ok()?)))
            .collect();
        let within = |line: usize| vouched_through.is_none_or(|v| line <= v);
        let ranges: Vec<(usize, usize)> = records
            .iter()
            .filter_map(|(line, r)| match r {
                Record::Unvouched(u) if within(*line) => Some((u.from_line, u.to_line)),
                _ => None,
            })
            .collect();
        let mut ledger = Ledger::default();
        for (line, record) in &records {
            let vouched = within(*line) && !ranges.iter().any(|(a, b)| (*a..=*b).contains(line));
            ledger.note(*line, record, vouched, &trust.auditors);
        }
        ledger
    }

    /// Takes one record, at `line`, into account; `vouched`: a signature (or this writer)
    /// vouches for it.
    fn note(&mut self, line: usize, record: &Record, vouched: bool, auditors: &[PublicKey]) {
        let (intent_line, landed) = match record {
            Record::Intent(intent) => {
                self.pending.insert(line, intent.clone());
                if !vouched {
                    self.unvouched_intents.insert(line);
                }
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
                self.ignored_acks.clear();
                return;
            }
            Record::Acknowledged(ack) => {
                if let Some(rotated) = &self.unacknowledged {
                    match ack.check(rotated, auditors) {
                        Ok(()) => {
                            self.unacknowledged = None;
                            self.ignored_acks.clear();
                        }
                        Err(why) => self.ignored_acks.push(format!(
                            "the acknowledgement by {} on line {line} does not count: {why}",
                            ack.by
                        )),
                    }
                }
                return;
            }
            _ => return,
        };
        let intent_vouched = !self.unvouched_intents.remove(&intent_line);
        if let Some(intent) = self.pending.remove(&intent_line).filter(|_| landed) {
            let mut given = Vec::new();
            if let Some((role, pin)) = pin_of(&intent) {
                given.push(format!("the group pin {pin} of {role}"));
                if vouched && intent_vouched {
                    self.pins.insert(role, pin);
                }
            }
            if let Some(baseline) = baseline_of(&intent) {
                given.push(format!("the removal baseline of {}", intent.target));
                if vouched && intent_vouched {
                    self.baselines.insert(intent.target.to_string(), baseline);
                }
            }
            let people = people_of(&intent);
            if !people.is_empty() {
                given.push(format!("{} person binding(s)", people.len()));
            }
            if vouched && intent_vouched {
                self.people.extend(people);
            } else {
                self.not_taken.extend(given);
            }
        }
    }

    /// What needs a person, in one text; see [`AuditLog::attention`].
    fn attention(&self, path: &Path) -> Option<String> {
        let mut parts: Vec<String> = self.problems.clone();
        if let Some(r) = &self.unacknowledged {
            parts.push(rotation_notice(path, r));
            parts.extend(self.ignored_acks.iter().cloned());
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

/// The line of the last checkpoint that verifies with `key` among the first `lines` lines
/// (0 for none), stopping at the first that does not; `None` without a key (then every
/// line is believed).
fn vouched_through(bytes: &[u8], lines: usize, key: Option<&PublicKey>) -> Option<usize> {
    let key = key?;
    let mut prev = GENESIS.to_string();
    let mut through = 0;
    for (i, raw) in bytes.split(|b| *b == b'\n').take(lines).enumerate() {
        let n = i + 1;
        if let Ok(Record::Checkpoint(cp)) = serde_json::from_slice::<Record>(raw) {
            if cp.lines != n - 1 || cp.head != prev || !cp.verifies(key) {
                break;
            }
            through = n;
        }
        prev = hash(raw);
    }
    Some(through)
}

/// The previous segment a rotation (found in `from`) names, checked against what the
/// rotation recorded: the same file (size and SHA-256), its good lines chaining to the
/// hash the rotation carried on from. Returns its path, its good lines and how many.
fn previous_segment(from: &Path, r: &Rotated) -> Result<(PathBuf, Vec<u8>, usize), Error> {
    let prev_path = PathBuf::from(&r.previous_segment);
    let broken = |reason: String| Error::Broken {
        path: from.to_path_buf(),
        line: 1,
        reason,
    };
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
    let good = good_lines(&prev, r.previous_good_lines).to_vec();
    let (n, last) = verify_bytes(&prev_path, &good)?;
    if n != r.previous_good_lines || last != r.previous_last_hash {
        return Err(broken(format!(
            "the previous segment {} has {n} good lines ending in {}, but the rotation carried on from {} lines ending in {}",
            prev_path.display(),
            short(&last),
            r.previous_good_lines,
            short(&r.previous_last_hash)
        )));
    }
    Ok((prev_path, good, n))
}

/// Whom the identity-store user names an intent makes or adds were bound to (lower-cased
/// user name -> Entra object id).
fn people_of(intent: &Intent) -> Vec<(String, String)> {
    use crate::plan::{Action, PeopleAction};
    match &intent.intent {
        Action::People(PeopleAction::CreateIdentityStoreUser {
            user_name,
            entra_object_id: Some(id),
            ..
        }) => vec![(user_name.to_lowercase(), id.clone())],
        Action::People(PeopleAction::AddGroupMembers { bindings, .. }) => bindings
            .iter()
            .map(|(u, id)| (u.to_lowercase(), id.clone()))
            .collect(),
        _ => Vec::new(),
    }
}

/// The removal baseline an intent records: a revocation's (`RevokeTrust.baseline`, or
/// people's `RemoveGroupMembers.baseline`, by the group), or the baseline tag a role is
/// created or tagged with.
fn baseline_of(intent: &Intent) -> Option<String> {
    use crate::plan::{Action, IamAction, PeopleAction, BASELINE_TAG};
    match &intent.intent {
        Action::Iam(IamAction::RevokeTrust { baseline, .. })
        | Action::People(PeopleAction::RemoveGroupMembers { baseline, .. }) => baseline.clone(),
        Action::Iam(IamAction::CreateRole { tags, .. })
        | Action::Iam(IamAction::TagRole { tags, .. }) => tags.get(BASELINE_TAG).cloned(),
        _ => None,
    }
}

/// The request objects a segment's records say were taken.
fn taken_requests(bytes: &[u8]) -> BTreeSet<String> {
    bytes
        .split(|b| *b == b'\n')
        .filter_map(|raw| match serde_json::from_slice::<Record>(raw).ok()? {
            Record::Released(r) => r.request,
            _ => None,
        })
        .collect()
}

/// The group pin an intent writes, if it writes one: the role's ARN and the tag value.
fn pin_of(intent: &Intent) -> Option<(String, String)> {
    let tags = match &intent.intent {
        crate::plan::Action::Iam(crate::plan::IamAction::CreateRole { tags, .. })
        | crate::plan::Action::Iam(crate::plan::IamAction::TagRole { tags, .. }) => tags,
        _ => return None,
    };
    let pin = tags.get(crate::sources::directory::PIN_TAG)?;
    Some((intent.target.to_string(), pin.clone()))
}

/// What the audit log records for later passes, as [`recorded`] reads it.
#[derive(Debug, Clone, Default)]
pub struct Recorded {
    /// The group pins this instance last wrote, per role ARN.
    pub pins: BTreeMap<String, String>,
    /// The removal baselines, per role ARN or identity-store group.
    pub baselines: BTreeMap<String, String>,
    /// Whom each identity-store user name was made or taken over for.
    pub people: BTreeMap<String, String>,
}

/// The group pins, the removal baselines and the people bindings this instance last
/// wrote, as the configured log records them and its signatures vouch for (read without
/// the writer's lock; none when there is no log yet, and none when the configured keys
/// cannot be read here: the roles' own tags are followed then).
pub fn recorded(config: &crate::config::AuditConfig) -> Recorded {
    let Ok(trust) = Trust::of_config(config) else {
        return Recorded::default();
    };
    std::fs::read(&config.path)
        .map(|bytes| {
            let lines = verify_bytes(&config.path, &bytes).map_or(0, |(n, _)| n);
            let l = Ledger::of_log(&config.path, &bytes, lines, &trust);
            Recorded {
                pins: l.pins,
                baselines: l.baselines,
                people: l.people,
            }
        })
        .unwrap_or_default()
}

/// The current time, RFC 3339 in UTC.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
