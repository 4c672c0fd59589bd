//! The audit log in S3 (`audit.s3`): the record of who had access when survives the pod,
//! its volume and its node, and every writer appends to one chain.
//!
//! Layout, under the configured prefix: `log/<segment>/<position>.jsonl`, one object per
//! append (one or more whole lines), positions 1, 2, 3… in each segment; `lease.json`, the
//! writers' lease ([`super::lease`]).
//!
//! What AWS documents and this relies on (Amazon S3 User Guide, "Add preconditions to S3
//! operations with conditional requests"; S3 API reference, `PutObject`): a `PutObject` with
//! `If-None-Match: *` succeeds only when no object has the key, and answers
//! `412 Precondition Failed` otherwise, so two writers can never both append the same
//! position and the chain can never fork; a concurrent conditional write may answer
//! `409 ConditionalRequestConflict`, to be retried. With S3 Object Lock (User Guide,
//! "Locking objects with Object Lock"), a version under retention cannot be deleted or
//! overwritten: in `COMPLIANCE` mode by nobody, the root user included; a delete without a
//! version id only adds a delete marker, and a put to the same key only adds a version.
//! A put with retention needs a `Content-MD5` or `x-amz-checksum-*` header (PutObject,
//! "Object Lock"): every append carries a CRC32 checksum. Object Lock works on versioned
//! buckets only, and can be turned on for a bucket, never off.
//!
//! So the log is read from versions, never from the latest object of a key: a position
//! is what was *first* written there (the oldest version of its key). A later version or
//! a delete marker at a position is an attempt to rewrite the record: it is named (the
//! log's attention, `/status`, the alarm), and the record stays what it was. A position
//! missing in the middle (a version removed by someone who could bypass governance
//! retention) breaks the chain where it was, and the log begins a new segment, as the
//! file does.
//!
//! The pod keeps a working copy (`audit.path`), rebuilt from the bucket at every opening:
//! the bucket is the log, the copy is what the verification, the ledger and the readers
//! work on. Appends go to the bucket, then to the copy.
//!
//! Batching: an intent is in the bucket before its AWS write; a write's outcome is sent
//! with the next intent (or the pass's record), one request instead of two. An outcome
//! lost in a crash is recovered by reading AWS at the next opening, as for any intent
//! without one.
//!
//! The SDK calls run on a thread of their own with their own runtime, so that the log,
//! which appends synchronously, can write from any thread (as the KMS signer does).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use futures::future::BoxFuture;

use super::fence::Fence;
use super::{Error, Record};
use crate::config::{ObjectLockMode, S3AuditConfig};

/// The S3 client of the log and the lease: the standard AWS chain (credentials, and
/// `AWS_ENDPOINT_URL` or `AWS_ENDPOINT_URL_S3` for an S3-compatible server, addressed by
/// path then), in
/// `audit.s3.region` or `aws.region`, the SDK's own retries for transient errors.
pub async fn client(s3: &S3AuditConfig, aws: &crate::config::AwsConfig) -> aws_sdk_s3::Client {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest()).timeout_config(
        aws_config::timeout::TimeoutConfig::builder()
            .operation_attempt_timeout(Duration::from_secs(5))
            .operation_timeout(Duration::from_secs(15))
            .connect_timeout(Duration::from_secs(3))
            .build(),
    );
    if let Some(region) = s3.region.as_ref().or(aws.region.as_ref()) {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    let shared = loader.load().await;
    let mut builder = aws_sdk_s3::config::Builder::from(&shared);
    // An S3-compatible server on a host name of its own (moto, a proxy) has no bucket
    // subdomains: address buckets by path there.
    if shared.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some() {
        builder = builder.force_path_style(true);
    }
    aws_sdk_s3::Client::from_conf(builder.build())
}

/// An SDK error in one line, with the service's code and message when it answered.
pub(super) fn describe<E: std::error::Error + 'static>(
    e: &aws_sdk_s3::error::SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> String {
    aws_sdk_s3::error::DisplayErrorContext(e).to_string()
}

/// The HTTP status an SDK error answered with, if it got that far.
pub(super) fn status_of<E>(
    e: &aws_sdk_s3::error::SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> Option<u16> {
    e.raw_response().map(|r| r.status().as_u16())
}

type Job = Box<dyn FnOnce(&tokio::runtime::Runtime, &aws_sdk_s3::Client) + Send>;

/// The S3 thread: its own runtime and client, one job at a time.
struct Bridge {
    jobs: mpsc::Sender<Job>,
}

impl Bridge {
    fn start(s3: &S3AuditConfig, aws: &crate::config::AwsConfig) -> Result<Bridge, String> {
        let (jobs, inbox) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        let (s3, aws) = (s3.clone(), aws.clone());
        std::thread::Builder::new()
            .name("trustsync-audit-s3".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("a runtime for S3: {e}")));
                        return;
                    }
                };
                let client = runtime.block_on(client(&s3, &aws));
                let _ = ready_tx.send(Ok(()));
                while let Ok(job) = inbox.recv() {
                    job(&runtime, &client);
                }
            })
            .map_err(|e| format!("a thread for S3: {e}"))?;
        ready_rx
            .recv()
            .map_err(|_| "the S3 thread ended".to_string())??;
        Ok(Bridge { jobs })
    }

    /// Runs `f` on the S3 thread and waits for its answer.
    fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(aws_sdk_s3::Client) -> BoxFuture<'static, T> + Send + 'static,
    ) -> Result<T, String> {
        let (reply, answer) = mpsc::channel();
        self.jobs
            .send(Box::new(move |runtime, client| {
                let _ = reply.send(runtime.block_on(f(client.clone())));
            }))
            .map_err(|_| "the S3 thread ended".to_string())?;
        let wait = || answer.recv().map_err(|_| "the S3 thread ended".to_string());
        // Inside the multi-threaded runtime, tell it this worker waits.
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(wait)
            }
            _ => wait(),
        }
    }
}

/// Requests the store made, for the metrics and the benchmark.
#[derive(Debug, Default)]
pub struct StoreRequests {
    /// Appends (`PutObject`), refused ones included.
    pub puts: AtomicU64,
    /// Reads (`GetObject`, `ListObjectVersions`, `GetObjectLockConfiguration`).
    pub reads: AtomicU64,
}

/// Each segment's positions, by number.
type Segments = BTreeMap<u32, BTreeMap<u64, Position>>;

/// One position's first version, as listed.
#[derive(Debug, Clone)]
struct Position {
    key: String,
    version: Option<String>,
    /// Versions and delete markers at this key after the first.
    later: usize,
}

/// The log's objects in the bucket, read at one opening.
#[derive(Debug, Default)]
pub struct Pulled {
    /// The segment appends go to, and its next position.
    pub segment: u32,
    pub next: u64,
    /// Positions someone tried to rewrite or delete, and keys that are not positions.
    pub tampering: Vec<String>,
}

/// The log in S3; see the module documentation.
pub struct S3Log {
    bridge: Bridge,
    bucket: String,
    prefix: String,
    retention: Option<(ObjectLockMode, u32)>,
    segment: u32,
    next: u64,
    /// Lines written to the working copy and not yet to the bucket.
    staged: Vec<u8>,
    /// While this writer may write (the lease), when it takes part in one.
    fence: Option<Fence>,
    /// Why this writer may write no more (another appended where it meant to).
    superseded: Option<String>,
    requests: Arc<StoreRequests>,
    /// Objects already read, by key and version: a version never changes, so a standby
    /// that pulls while it waits reads only what is new when it takes over.
    read: BTreeMap<(String, Option<String>), Vec<u8>>,
}

impl std::fmt::Debug for S3Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "S3Log({}, segment {}, next {})",
            self.location(),
            self.segment,
            self.next
        )
    }
}

impl S3Log {
    /// Connects (the writer then checks Object Lock, [`S3Log::check_object_lock`]).
    pub fn connect(s3: &S3AuditConfig, aws: &crate::config::AwsConfig) -> Result<S3Log, String> {
        let bridge = Bridge::start(s3, aws)?;
        let log = S3Log {
            bridge,
            bucket: s3.bucket.clone(),
            prefix: s3.prefix.clone(),
            retention: s3.object_lock.as_ref().map(|l| (l.mode, l.retention_days)),
            segment: 1,
            next: 1,
            staged: Vec::new(),
            fence: None,
            superseded: None,
            requests: Arc::default(),
            read: BTreeMap::new(),
        };
        Ok(log)
    }

    /// `s3://bucket/prefix`, for messages and records.
    pub fn location(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }

    /// The requests made so far.
    pub fn requests(&self) -> Arc<StoreRequests> {
        self.requests.clone()
    }

    /// From now on, nothing is appended unless `fence` says this writer still holds the
    /// lease.
    pub fn fence_with(&mut self, fence: Fence) {
        self.fence = Some(fence);
    }

    /// Refuses a bucket without Object Lock: a log whose records can be deleted is no
    /// evidence, so trustsync writes none there.
    pub fn check_object_lock(&self) -> Result<(), String> {
        let bucket = self.bucket.clone();
        self.requests.reads.fetch_add(1, Ordering::Relaxed);
        let answer = self.bridge.call(move |c| {
            Box::pin(async move {
                c.get_object_lock_configuration()
                    .bucket(bucket)
                    .send()
                    .await
                    .map_err(|e| (status_of(&e), describe(&e)))
            })
        })?;
        let enabled = match answer {
            Ok(out) => out
                .object_lock_configuration()
                .and_then(|c| c.object_lock_enabled())
                .is_some_and(|e| e.as_str() == "Enabled"),
            Err((Some(404), _)) => false,
            Err((_, e)) => return Err(format!("audit.s3.bucket {}: {e}", self.bucket)),
        };
        if !enabled {
            return Err(format!(
                "audit.s3.bucket {}: S3 Object Lock is not enabled on it, so its records could be deleted; create the bucket with Object Lock (aws s3api create-bucket --object-lock-enabled-for-bucket) and give it a default retention, or set audit.s3.objectLock",
                self.bucket
            ));
        }
        Ok(())
    }

    fn log_prefix(&self) -> String {
        format!("{}log/", self.prefix)
    }

    fn key(&self, segment: u32, position: u64) -> String {
        format!("{}{segment:06}/{position:012}.jsonl", self.log_prefix())
    }

    /// Every segment's positions (their first versions), and what is not a first version.
    fn list(&self) -> Result<(Segments, Vec<String>), String> {
        self.list_under(&self.log_prefix())
    }

    /// [`S3Log::list`] of the keys under `under` (a key of the log, or the log's folder).
    fn list_under(&self, under: &str) -> Result<(Segments, Vec<String>), String> {
        let (bucket, prefix) = (self.bucket.clone(), under.to_string());
        let requests = self.requests.clone();
        let listed = self
            .bridge
            .call(move |c| Box::pin(list_versions(c, bucket, prefix, requests)))??;
        let mut segments: Segments = BTreeMap::new();
        let mut tampering = Vec::new();
        let mut by_key: BTreeMap<String, Vec<(Option<String>, bool)>> = BTreeMap::new();
        for (key, version, marker) in listed {
            by_key.entry(key).or_default().push((version, marker));
        }
        let root = self.log_prefix();
        for (key, versions) in by_key {
            let Some((segment, position)) = parse_key(key.strip_prefix(&root).unwrap_or(&key))
            else {
                tampering.push(format!(
                    "s3://{}/{key} is not a position of the log",
                    self.bucket
                ));
                continue;
            };
            // The oldest version that is an object: what was first written there.
            let first = versions.iter().rev().find(|(_, marker)| !marker);
            let Some((version, _)) = first else {
                tampering.push(format!(
                    "s3://{}/{key} holds only a delete marker: its record is gone",
                    self.bucket
                ));
                continue;
            };
            let later = versions.len() - 1;
            segments.entry(segment).or_default().insert(
                position,
                Position {
                    key: key.clone(),
                    version: version.clone(),
                    later,
                },
            );
        }
        for positions in segments.values() {
            for p in positions.values().filter(|p| p.later > 0) {
                tampering.push(format!(
                    "s3://{}/{} was written again or deleted {} time(s) after its record: the first version is the record, the rest is someone trying to rewrite it",
                    self.bucket, p.key, p.later
                ));
            }
        }
        Ok((segments, tampering))
    }

    /// A segment's bytes: its positions' first versions, in order, each ending in a
    /// newline (an object that does not, was not written by trustsync, and breaks the
    /// chain where it is). A position missing in the middle leaves its lines out, and the
    /// chain breaks there.
    fn read_segment(&mut self, positions: &BTreeMap<u64, Position>) -> Result<Vec<u8>, String> {
        let bucket = self.bucket.clone();
        let id = |p: &Position| (p.key.clone(), p.version.clone());
        let wanted: Vec<Position> = positions
            .values()
            .filter(|p| !self.read.contains_key(&id(p)))
            .cloned()
            .collect();
        let fetched = wanted.clone();
        let requests = self.requests.clone();
        let bodies = self.bridge.call(move |c| {
            Box::pin(async move {
                use futures::StreamExt;
                let gets = wanted.into_iter().map(|p| {
                    let (c, bucket, requests) = (c.clone(), bucket.clone(), requests.clone());
                    async move {
                        requests.reads.fetch_add(1, Ordering::Relaxed);
                        let out = c
                            .get_object()
                            .bucket(&bucket)
                            .key(&p.key)
                            .set_version_id(p.version.clone())
                            .send()
                            .await
                            .map_err(|e| format!("s3://{bucket}/{}: {}", p.key, describe(&e)))?;
                        let body = out
                            .body
                            .collect()
                            .await
                            .map_err(|e| format!("s3://{bucket}/{}: {e}", p.key))?;
                        Ok::<_, String>(body.into_bytes().to_vec())
                    }
                });
                futures::stream::iter(gets)
                    .buffered(16)
                    .collect::<Vec<_>>()
                    .await
            })
        })?;
        for (p, body) in fetched.iter().zip(bodies) {
            let mut body = body?;
            if !body.ends_with(b"\n") {
                body.push(b'\n');
            }
            self.read.insert(id(p), body);
        }
        let mut bytes = Vec::new();
        for p in positions.values() {
            bytes.extend_from_slice(&self.read[&id(p)]);
        }
        Ok(bytes)
    }

    /// Rebuilds the working copy at `path` from the bucket: the current segment's lines,
    /// and each earlier segment at the side file the next one's rotation names (when that
    /// is a `<log>.broken-…` file beside it: a record never chooses where a file is
    /// written). Appends then go to the current segment's next position.
    pub fn pull(&mut self, path: &Path) -> Result<Pulled, Error> {
        let location = self.location();
        let io = |e: String| Error::Io {
            path: path.into(),
            source: std::io::Error::other(format!("{location}: {e}")),
        };
        let (segments, tampering) = self.list().map_err(io)?;
        let mut bytes_of: BTreeMap<u32, Vec<u8>> = BTreeMap::new();
        for (segment, positions) in &segments {
            bytes_of.insert(*segment, self.read_segment(positions).map_err(io)?);
        }
        let current = segments.keys().next_back().copied().unwrap_or(1);
        let next = segments
            .get(&current)
            .and_then(|p| p.keys().next_back())
            .map_or(1, |last| last + 1);
        let write = |to: &Path, bytes: &[u8]| -> Result<(), Error> {
            std::fs::write(to, bytes).map_err(|source| Error::Io {
                path: to.into(),
                source,
            })
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| Error::Io {
                path: dir.into(),
                source,
            })?;
        }
        for (segment, bytes) in &bytes_of {
            if *segment == current {
                continue;
            }
            let named = bytes_of
                .get(&(segment + 1))
                .and_then(|after| super::repair::first_rotation(after))
                .map(|r| PathBuf::from(r.previous_segment));
            if let Some(side) = named.filter(|p| is_side_file_of(path, p)) {
                write(&side, bytes)?;
            }
        }
        write(path, bytes_of.get(&current).map_or(&[][..], Vec::as_slice))?;
        self.segment = current;
        self.next = next;
        self.staged.clear();
        Ok(Pulled {
            segment: current,
            next,
            tampering,
        })
    }

    /// The working copy was broken and set aside: appends begin the next segment.
    pub fn begin_segment(&mut self) {
        self.segment += 1;
        self.next = 1;
        self.staged.clear();
    }

    /// Lines written to the working copy, to go to the bucket with the next flush.
    pub fn stage(&mut self, line: &[u8]) {
        self.staged.extend_from_slice(line);
    }

    /// Appends what is staged at the next position (`If-None-Match: *`). Refused when the
    /// lease is no longer this writer's, or another writer appended that position: then
    /// this writer is superseded and appends nothing more.
    pub fn flush(&mut self, path: &Path) -> Result<(), Error> {
        if self.staged.is_empty() {
            return Ok(());
        }
        let refused = |reason: String| Error::Superseded {
            path: path.into(),
            reason,
        };
        if let Some(why) = &self.superseded {
            return Err(refused(why.clone()));
        }
        if let Some(fence) = self.fence.as_ref().filter(|f| !f.may_write()) {
            return Err(refused(format!(
                "this writer's lease on {} ended ({}): another may hold it now; nothing more is written",
                self.location(),
                fence.describe()
            )));
        }
        let key = self.key(self.segment, self.next);
        let body = self.staged.clone();
        let (bucket, retention) = (self.bucket.clone(), self.retention);
        let mut conflicts = 0;
        loop {
            self.requests.puts.fetch_add(1, Ordering::Relaxed);
            let (bucket, object, sending) = (bucket.clone(), key.clone(), body.clone());
            let sent = self
                .bridge
                .call(move |c| Box::pin(put_new(c, bucket, object, sending, retention)))
                .map_err(|e| Error::Io {
                    path: path.into(),
                    source: std::io::Error::other(e),
                })?;
            match sent {
                Ok(()) => break,
                // The SDK retries a request whose answer was lost: the first attempt may have
                // landed, and the retry finds the position taken by this very append.
                Err((Some(412), _)) if self.holds(&key, &body)? => break,
                Err((Some(412), _)) => {
                    let why = format!(
                        "another writer appended position {} of segment {} in {} first: this writer no longer holds the log's end, and steps down",
                        self.next,
                        self.segment,
                        self.location()
                    );
                    self.superseded = Some(why.clone());
                    // The lease keeper sees the closed fence and the writer steps down.
                    if let Some(fence) = &self.fence {
                        fence.end(why.clone());
                    }
                    return Err(refused(why));
                }
                // A conditional write racing another on the same key: S3 asks for a retry.
                Err((Some(409), _)) if conflicts < 3 => conflicts += 1,
                Err((_, e)) => {
                    return Err(Error::Io {
                        path: path.into(),
                        source: std::io::Error::other(format!("{key}: {e}")),
                    })
                }
            }
        }
        self.next += 1;
        self.staged.clear();
        // A PUT that took long may have outlived the lease: what it recorded stands (an
        // intent without an outcome, which the next writer settles by reading AWS), but
        // nothing may be written after it.
        if let Some(fence) = self.fence.as_ref().filter(|f| !f.may_write()) {
            return Err(refused(format!(
                "this writer's lease on {} ended while it appended ({}): nothing more is written",
                self.location(),
                fence.describe()
            )));
        }
        Ok(())
    }
}

impl S3Log {
    /// Whether the first version at `key` is `body`: an append that landed although its
    /// answer was lost (every append is unique: it carries its time and the previous
    /// line's hash).
    fn holds(&self, key: &str, body: &[u8]) -> Result<bool, Error> {
        let (segments, _) = self.list_under(key).map_err(|e| Error::Io {
            path: PathBuf::from(key),
            source: std::io::Error::other(e),
        })?;
        let Some(first) = segments
            .into_values()
            .flat_map(|s| s.into_values())
            .find(|p| p.key == key)
        else {
            return Ok(false);
        };
        let (bucket, object, version) = (self.bucket.clone(), first.key, first.version);
        self.requests.reads.fetch_add(1, Ordering::Relaxed);
        let found = self
            .bridge
            .call(move |c| {
                Box::pin(async move {
                    let got = c
                        .get_object()
                        .bucket(bucket)
                        .key(object)
                        .set_version_id(version)
                        .send()
                        .await
                        .map_err(|e| describe(&e))?;
                    got.body
                        .collect()
                        .await
                        .map(|b| b.into_bytes().to_vec())
                        .map_err(|e| e.to_string())
                })
            })
            .and_then(|r| r)
            .map_err(|e| Error::Io {
                path: PathBuf::from(key),
                source: std::io::Error::other(e),
            })?;
        Ok(found == body)
    }
}

/// The longest request object read: a release or an acknowledgement is a few hundred bytes.
const MAX_REQUEST_BYTES: i64 = 64 * 1024;

impl S3Log {
    /// Leaves a request of `kind` (`release`, `acknowledge`) for the writer that holds the
    /// lease: a new object under `<prefix>requests/<kind>/`, never one that exists. Its
    /// `s3://` name.
    pub fn put_request(&self, kind: &str, body: Vec<u8>) -> Result<String, String> {
        let nanos = crate::model::clock::since_epoch().as_nanos();
        let mut random = [0u8; 4];
        let _ = getrandom::getrandom(&mut random);
        let random: String = random.iter().map(|b| format!("{b:02x}")).collect();
        let key = format!("{}requests/{kind}/{nanos:020}-{random}.json", self.prefix);
        let (bucket, object) = (self.bucket.clone(), key.clone());
        let retention = self.retention;
        self.requests.puts.fetch_add(1, Ordering::Relaxed);
        self.bridge.call(move |c| {
            Box::pin(async move {
                let mut put = c
                    .put_object()
                    .bucket(bucket)
                    .key(object)
                    .if_none_match("*")
                    .content_type("application/json")
                    .checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Crc32)
                    .body(aws_sdk_s3::primitives::ByteStream::from(body));
                if let Some((mode, days)) = retention {
                    put = put
                        .object_lock_mode(lock_mode(mode))
                        .object_lock_retain_until_date(retain_until(days));
                }
                put.send().await.map(|_| ()).map_err(|e| describe(&e))
            })
        })??;
        Ok(format!("s3://{}/{key}", self.bucket))
    }

    /// The requests of `kind` whose keys are not in `taken`, oldest first (their keys sort
    /// by time), each with its body; one too large to be a request is skipped with a
    /// warning.
    pub fn new_requests(
        &self,
        kind: &str,
        taken: &std::collections::BTreeSet<String>,
    ) -> Result<Vec<(String, Vec<u8>)>, String> {
        let bucket = self.bucket.clone();
        let prefix = format!("{}requests/{kind}/", self.prefix);
        let requests = self.requests.clone();
        let listed = self.bridge.call(move |c| {
            Box::pin(async move {
                let mut keys = Vec::new();
                let mut token = None::<String>;
                loop {
                    requests.reads.fetch_add(1, Ordering::Relaxed);
                    let out = c
                        .list_objects_v2()
                        .bucket(&bucket)
                        .prefix(&prefix)
                        .set_continuation_token(token.clone())
                        .send()
                        .await
                        .map_err(|e| describe(&e))?;
                    for o in out.contents() {
                        keys.push((
                            o.key().unwrap_or_default().to_string(),
                            o.size().unwrap_or_default(),
                        ));
                    }
                    token = out.next_continuation_token().map(str::to_string);
                    if token.is_none() {
                        break;
                    }
                }
                Ok::<_, String>(keys)
            })
        })??;
        let mut out = Vec::new();
        for (key, size) in listed.into_iter().filter(|(k, _)| !taken.contains(k)) {
            if size > MAX_REQUEST_BYTES {
                tracing::warn!(key = %key, size, "a request object too large to be one; skipped");
                continue;
            }
            let (bucket, object) = (self.bucket.clone(), key.clone());
            self.requests.reads.fetch_add(1, Ordering::Relaxed);
            let body = self.bridge.call(move |c| {
                Box::pin(async move {
                    let got = c
                        .get_object()
                        .bucket(bucket)
                        .key(object)
                        .send()
                        .await
                        .map_err(|e| describe(&e))?;
                    got.body
                        .collect()
                        .await
                        .map(|b| b.into_bytes().to_vec())
                        .map_err(|e| e.to_string())
                })
            })??;
            out.push((key, body));
        }
        Ok(out)
    }
}

fn lock_mode(mode: ObjectLockMode) -> aws_sdk_s3::types::ObjectLockMode {
    match mode {
        ObjectLockMode::Compliance => aws_sdk_s3::types::ObjectLockMode::Compliance,
        ObjectLockMode::Governance => aws_sdk_s3::types::ObjectLockMode::Governance,
    }
}

fn retain_until(days: u32) -> aws_smithy_types::DateTime {
    aws_smithy_types::DateTime::from(
        std::time::SystemTime::now() + Duration::from_secs(u64::from(days) * 86_400),
    )
}

/// Every version and delete marker under `prefix`: (key, version, delete marker), by key,
/// the latest first, as S3 lists them.
async fn list_versions(
    c: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
    requests: Arc<StoreRequests>,
) -> Result<Vec<(String, Option<String>, bool)>, String> {
    let mut all: Vec<(String, Option<String>, bool)> = Vec::new();
    let (mut key_marker, mut version_marker) = (None::<String>, None::<String>);
    loop {
        requests.reads.fetch_add(1, Ordering::Relaxed);
        let out = c
            .list_object_versions()
            .bucket(&bucket)
            .prefix(&prefix)
            .set_key_marker(key_marker.clone())
            .set_version_id_marker(version_marker.clone())
            .send()
            .await
            .map_err(|e| describe(&e))?;
        let versions = out.versions().iter().map(|v| {
            let key = v.key().unwrap_or_default().to_string();
            let latest = v.is_latest().unwrap_or(false);
            (key, v.version_id().map(str::to_string), false, latest)
        });
        let markers = out.delete_markers().iter().map(|m| {
            let key = m.key().unwrap_or_default().to_string();
            let latest = m.is_latest().unwrap_or(false);
            (key, m.version_id().map(str::to_string), true, latest)
        });
        let mut page: Vec<(String, Option<String>, bool, bool)> = versions.chain(markers).collect();
        // Markers and versions come in separate lists: order by key, the latest first,
        // keeping S3's order among the rest.
        page.sort_by(|a, b| a.0.cmp(&b.0).then(b.3.cmp(&a.3)));
        all.extend(page.into_iter().map(|(k, v, m, _)| (k, v, m)));
        if out.is_truncated() != Some(true) {
            break;
        }
        key_marker = out.next_key_marker().map(str::to_string);
        version_marker = out.next_version_id_marker().map(str::to_string);
        if key_marker.is_none() {
            break;
        }
    }
    Ok(all)
}

/// A `PutObject` of a key that must not exist (`If-None-Match: *`), with a CRC32 checksum
/// and the retention, if one is configured; the status and the error when it fails.
async fn put_new(
    c: aws_sdk_s3::Client,
    bucket: String,
    key: String,
    body: Vec<u8>,
    retention: Option<(ObjectLockMode, u32)>,
) -> Result<(), (Option<u16>, String)> {
    let mut put = c
        .put_object()
        .bucket(bucket)
        .key(key)
        .if_none_match("*")
        .content_type("application/x-ndjson")
        .checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Crc32)
        .body(aws_sdk_s3::primitives::ByteStream::from(body));
    if let Some((mode, days)) = retention {
        put = put
            .object_lock_mode(lock_mode(mode))
            .object_lock_retain_until_date(retain_until(days));
    }
    put.send()
        .await
        .map(|_| ())
        .map_err(|e| (status_of(&e), describe(&e)))
}

/// `segment/position.jsonl` as numbers.
fn parse_key(rest: &str) -> Option<(u32, u64)> {
    let (segment, file) = rest.split_once('/')?;
    let position = file.strip_suffix(".jsonl")?;
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(segment, 6) || !digits(position, 12) {
        return None;
    }
    Some((segment.parse().ok()?, position.parse().ok()?))
}

/// Whether `side` is a previous segment's file beside the working copy `path`
/// (`<log>.broken-<digits>`): where a pulled segment may be written.
fn is_side_file_of(path: &Path, side: &Path) -> bool {
    let (Some(name), Some(side_name)) = (path.file_name(), side.file_name()) else {
        return false;
    };
    let (name, side_name) = (name.to_string_lossy(), side_name.to_string_lossy());
    let same_dir = side.parent() == path.parent();
    let suffix = side_name
        .strip_prefix(name.as_ref())
        .and_then(|s| s.strip_prefix(".broken-"));
    same_dir && suffix.is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
}

/// Whether a record, once staged, must reach the bucket before `append` returns: all but a
/// write's outcome (sent with the next intent or the pass's record).
pub(super) fn must_flush(record: &Record) -> bool {
    !matches!(record, Record::Change(_) | Record::Recovered(_))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_only_what_the_log_writes() {
        assert_eq!(parse_key("000001/000000000042.jsonl"), Some((1, 42)));
        for odd in [
            "1/000000000042.jsonl",
            "000001/42.jsonl",
            "000001/000000000042",
            "000001/00000000004x.jsonl",
            "000001/x/000000000042.jsonl",
            "",
        ] {
            assert_eq!(parse_key(odd), None, "{odd}");
        }
    }

    #[test]
    fn a_pulled_segment_is_written_only_beside_the_working_copy() {
        let log = Path::new("/var/lib/trustsync/audit.jsonl");
        assert!(is_side_file_of(
            log,
            Path::new("/var/lib/trustsync/audit.jsonl.broken-17")
        ));
        for odd in [
            "/etc/passwd",
            "/var/lib/trustsync/audit.jsonl",
            "/var/lib/trustsync/audit.jsonl.broken-",
            "/var/lib/trustsync/audit.jsonl.broken-1/../../x",
            "/var/lib/trustsync/../audit.jsonl.broken-1",
            "/tmp/audit.jsonl.broken-1",
            "/var/lib/trustsync/other.broken-1",
        ] {
            assert!(!is_side_file_of(log, Path::new(odd)), "{odd}");
        }
    }
}
