//! The audit log in S3 (`audit.s3`) in tests: buckets in moto (with and without S3 Object
//! Lock), what a bucket holds (positions, their versions, the writers' lease, the records),
//! and [`S3Proxy`], a proxy for moto's S3 alone (trustsync reaches it through
//! `AWS_ENDPOINT_URL_S3`) that counts the store's requests by what they touch and can stop
//! answering, answer late, or lose an answer.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_s3::types::{
    DefaultRetention, ObjectLockConfiguration, ObjectLockEnabled, ObjectLockRetentionMode,
    ObjectLockRule,
};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::Moto;

/// An S3 client of moto's default account, addressing buckets by path (as trustsync does
/// against an S3-compatible endpoint).
pub fn client(moto: &Moto) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(moto.sdk())
            .force_path_style(true)
            .build(),
    )
}

/// The `audit:` block of a config keeping the log in `bucket` under `prefix` (default
/// lease: 10 s, renewed every 2 s), its working copy at `audit.jsonl`.
pub fn audit_config(bucket: &str, prefix: &str) -> String {
    format!("audit:\n  path: audit.jsonl\n  s3: {{bucket: {bucket}, prefix: {prefix}}}\n")
}

/// A bucket in moto, and the log's prefix in it.
pub struct Bucket<'a> {
    moto: &'a Moto,
    s3: aws_sdk_s3::Client,
    pub name: String,
    pub prefix: String,
}

impl<'a> Bucket<'a> {
    /// Creates a bucket with S3 Object Lock on and a default retention of one day in
    /// COMPLIANCE mode, as docs/operations.md asks for the audit log.
    pub fn locked(moto: &'a Moto, name: &str, prefix: &str) -> Bucket<'a> {
        let b = Bucket::create(moto, name, prefix, true);
        let rule = ObjectLockRule::builder()
            .default_retention(
                DefaultRetention::builder()
                    .mode(ObjectLockRetentionMode::Compliance)
                    .days(1)
                    .build(),
            )
            .build();
        moto.block_on(
            b.s3.put_object_lock_configuration()
                .bucket(name)
                .object_lock_configuration(
                    ObjectLockConfiguration::builder()
                        .object_lock_enabled(ObjectLockEnabled::Enabled)
                        .rule(rule)
                        .build(),
                )
                .send(),
        )
        .expect("put the bucket's default retention");
        b
    }

    /// Creates a bucket without Object Lock (versioning off, as S3 creates one).
    pub fn unlocked(moto: &'a Moto, name: &str, prefix: &str) -> Bucket<'a> {
        Bucket::create(moto, name, prefix, false)
    }

    fn create(moto: &'a Moto, name: &str, prefix: &str, lock: bool) -> Bucket<'a> {
        let s3 = client(moto);
        moto.block_on(
            s3.create_bucket()
                .bucket(name)
                .object_lock_enabled_for_bucket(lock)
                .send(),
        )
        .expect("create the bucket");
        Bucket {
            moto,
            s3,
            name: name.into(),
            prefix: prefix.into(),
        }
    }

    pub fn client(&self) -> &aws_sdk_s3::Client {
        &self.s3
    }

    /// `s3://bucket/prefix`, as `trustsync audit verify` takes it.
    pub fn url(&self) -> String {
        format!("s3://{}/{}", self.name, self.prefix)
    }

    /// The audit config for this bucket and prefix.
    pub fn audit_config(&self) -> String {
        audit_config(&self.name, &self.prefix)
    }

    /// Every key under the prefix (one `ListObjectsV2` listing: latest versions only).
    pub fn keys(&self) -> Vec<String> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .moto
                .block_on(
                    self.s3
                        .list_objects_v2()
                        .bucket(&self.name)
                        .prefix(&self.prefix)
                        .set_continuation_token(token.clone())
                        .send(),
                )
                .expect("list the bucket");
            keys.extend(
                out.contents()
                    .iter()
                    .filter_map(|o| o.key().map(String::from)),
            );
            match out.next_continuation_token() {
                Some(t) if out.is_truncated() == Some(true) => token = Some(t.to_string()),
                _ => break,
            }
        }
        keys.sort();
        keys
    }

    /// The log's positions (`<prefix>log/<segment>/<position>.jsonl`), in order.
    pub fn positions(&self) -> Vec<String> {
        let log = format!("{}log/", self.prefix);
        self.keys()
            .into_iter()
            .filter(|k| k.starts_with(&log))
            .collect()
    }

    /// Every version and delete marker under the prefix: (key, version id, is a delete
    /// marker), oldest first within a key.
    pub fn versions(&self) -> Vec<(String, String, bool)> {
        let mut all = Vec::new();
        let (mut key_marker, mut version_marker) = (None::<String>, None::<String>);
        loop {
            let out = self
                .moto
                .block_on(
                    self.s3
                        .list_object_versions()
                        .bucket(&self.name)
                        .prefix(&self.prefix)
                        .set_key_marker(key_marker.clone())
                        .set_version_id_marker(version_marker.clone())
                        .send(),
                )
                .expect("list the versions");
            for v in out.versions() {
                let when = v.last_modified().map(|t| t.as_nanos()).unwrap_or(0);
                all.push((
                    v.key().unwrap_or_default().to_string(),
                    v.version_id().unwrap_or_default().to_string(),
                    false,
                    when,
                ));
            }
            for m in out.delete_markers() {
                let when = m.last_modified().map(|t| t.as_nanos()).unwrap_or(0);
                all.push((
                    m.key().unwrap_or_default().to_string(),
                    m.version_id().unwrap_or_default().to_string(),
                    true,
                    when,
                ));
            }
            if out.is_truncated() != Some(true) || out.next_key_marker().is_none() {
                break;
            }
            key_marker = out.next_key_marker().map(String::from);
            version_marker = out.next_version_id_marker().map(String::from);
        }
        all.sort_by(|a, b| a.0.cmp(&b.0).then(a.3.cmp(&b.3)));
        all.into_iter().map(|(k, v, m, _)| (k, v, m)).collect()
    }

    /// The bytes of one version of a key.
    pub fn read(&self, key: &str, version: Option<&str>) -> Vec<u8> {
        let out = self
            .moto
            .block_on(
                self.s3
                    .get_object()
                    .bucket(&self.name)
                    .key(key)
                    .set_version_id(version.map(String::from))
                    .send(),
            )
            .unwrap_or_else(|e| panic!("get {key}: {}", aws_sdk_s3::error::DisplayErrorContext(e)));
        self.moto
            .block_on(out.body.collect())
            .unwrap()
            .into_bytes()
            .to_vec()
    }

    /// The log's records, read from each position's first version (what was written
    /// there first), in order: (position key, record).
    pub fn records(&self) -> Vec<(String, Value)> {
        let log = format!("{}log/", self.prefix);
        let mut first: BTreeMap<String, String> = BTreeMap::new();
        for (key, version, marker) in self.versions() {
            if key.starts_with(&log) && !marker {
                first.entry(key).or_insert(version);
            }
        }
        let mut records = Vec::new();
        for (key, version) in first {
            let bytes = self.read(&key, Some(&version));
            for line in String::from_utf8_lossy(&bytes).lines() {
                let record: Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("{key}: not a record ({e}): {line}"));
                records.push((key.clone(), record));
            }
        }
        records
    }

    /// The writers' lease as the bucket holds it now, if any.
    pub fn lease(&self) -> Option<Value> {
        let key = format!("{}lease.json", self.prefix);
        let got = self
            .moto
            .block_on(self.s3.get_object().bucket(&self.name).key(&key).send());
        let out = got.ok()?;
        let bytes = self.moto.block_on(out.body.collect()).ok()?.into_bytes();
        serde_json::from_slice(&bytes).ok()
    }
}

/// The host part of a record's writer (`actor.instance` is `host/pid`).
pub fn writer_host(record: &Value) -> Option<String> {
    record["actor"]["instance"]
        .as_str()
        .and_then(|i| i.split('/').next())
        .map(String::from)
}

/// What one request to the proxy was.
#[derive(Debug, Clone)]
pub struct Seen {
    id: u64,
    /// `PutObject record`, `PutObject lease`, `GetObject lease`, `ListObjectVersions`…
    pub op: String,
    /// When the proxy received it.
    pub at: Instant,
    /// The status it answered with (none: not answered).
    pub status: Option<u16>,
}

#[derive(Default)]
struct S3Inner {
    upstream: String,
    client: reqwest::Client,
    seen: Mutex<Vec<Seen>>,
    next_id: AtomicU64,
    /// Accept every request and never answer.
    hang: AtomicBool,
    /// Accept the lease's writes and never answer them (the records' are answered).
    hang_lease_writes: AtomicBool,
    /// Hold each record's PutObject this long before it is forwarded.
    delay_record_ms: AtomicU64,
    /// Forward this many of the next records' PutObjects, then answer each with a 500 as
    /// if the answer were lost on the way back.
    lose_record_answers: AtomicU64,
}

/// A proxy in front of moto's S3 (see the module documentation); stops with the test
/// process.
pub struct S3Proxy {
    pub endpoint: String,
    inner: Arc<S3Inner>,
}

impl S3Proxy {
    pub fn start(upstream: &str) -> S3Proxy {
        let inner = Arc::new(S3Inner {
            upstream: upstream.trim_end_matches('/').to_string(),
            ..S3Inner::default()
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let state = inner.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let app = axum::Router::new().fallback(forward).with_state(state);
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app).await.unwrap();
            });
        });
        S3Proxy { endpoint, inner }
    }

    /// The environment that sends a trustsync process's S3 requests (only those) here.
    pub fn env(&self) -> (String, String) {
        ("AWS_ENDPOINT_URL_S3".into(), self.endpoint.clone())
    }

    /// From now on accept every request and never answer (`false`: answer again), as a
    /// network path that holds connections open and delivers nothing.
    pub fn hang(&self, on: bool) {
        self.inner.hang.store(on, SeqCst);
    }

    /// From now on accept the lease's writes and never answer them.
    pub fn hang_lease_writes(&self, on: bool) {
        self.inner.hang_lease_writes.store(on, SeqCst);
    }

    /// Hold each record's write this long before forwarding it (0: not at all).
    pub fn delay_records(&self, delay: Duration) {
        self.inner
            .delay_record_ms
            .store(delay.as_millis() as u64, SeqCst);
    }

    /// The next `n` records' writes reach moto, and their answers are lost (a 500).
    pub fn lose_record_answers(&self, n: u64) {
        self.inner.lose_record_answers.store(n, SeqCst);
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.inner.seen.lock().unwrap().clone()
    }

    /// Requests so far by operation.
    pub fn counts(&self) -> BTreeMap<String, u64> {
        let mut counts = BTreeMap::new();
        for s in self.seen() {
            *counts.entry(s.op).or_default() += 1;
        }
        counts
    }

    /// When the last write of the lease that moto accepted (200) was received.
    pub fn last_lease_renewal(&self) -> Option<Instant> {
        self.seen()
            .into_iter()
            .filter(|s| s.op == "PutObject lease" && s.status == Some(200))
            .map(|s| s.at)
            .max()
    }

    pub fn reset(&self) {
        self.inner.seen.lock().unwrap().clear();
    }
}

/// `PutObject record`, `GetObject lease`, `ListObjectVersions record`, `ListObjectsV2
/// requests`…: the S3 operation and what it touches (the log's records, the lease, the
/// requests left for the leader), by key or by a listing's prefix.
fn operation(method: &Method, uri: &Uri) -> String {
    let query = uri.query().unwrap_or_default();
    let has = |name: &str| {
        query
            .split('&')
            .any(|p| p == name || p.starts_with(&format!("{name}=")))
    };
    let path = uri.path().trim_start_matches('/');
    let key = path.split_once('/').map(|(_, k)| k).unwrap_or_default();
    // A listing: what its prefix names.
    let prefix = url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "prefix")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let named = if key.is_empty() { prefix.as_str() } else { key };
    let what = if named.ends_with("lease.json") {
        " lease"
    } else if named.contains("requests/") {
        // `trustsync release` and `audit acknowledge` leave requests for the leader there.
        " requests"
    } else if named.contains("log/") {
        " record"
    } else {
        ""
    };
    let op = match (method.as_str(), key.is_empty()) {
        ("GET", true) if has("versions") => "ListObjectVersions",
        ("GET", true) if has("object-lock") => "GetObjectLockConfiguration",
        ("GET", true) if has("list-type") => "ListObjectsV2",
        ("GET", true) => "ListObjects",
        ("PUT", true) => "PutBucket",
        ("GET", false) => "GetObject",
        ("HEAD", false) => "HeadObject",
        ("PUT", false) => "PutObject",
        ("DELETE", false) => "DeleteObject",
        (m, _) => return format!("{m} {path}"),
    };
    format!("{op}{what}")
}

async fn forward(
    State(inner): State<Arc<S3Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let op = operation(&method, &uri);
    let id = inner.next_id.fetch_add(1, SeqCst);
    inner.seen.lock().unwrap().push(Seen {
        id,
        op: op.clone(),
        at: Instant::now(),
        status: None,
    });
    if inner.hang.load(SeqCst) || (op == "PutObject lease" && inner.hang_lease_writes.load(SeqCst))
    {
        std::future::pending::<()>().await;
    }
    let record_put = op == "PutObject record";
    let delay = inner.delay_record_ms.load(SeqCst);
    if record_put && delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let lose = record_put
        && inner
            .lose_record_answers
            .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
            .is_ok();
    let url = format!(
        "{}{}",
        inner.upstream,
        uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
    );
    let mut req = inner.client.request(method, url).body(body);
    for (k, v) in headers.iter() {
        if k != "host" && k != "content-length" {
            req = req.header(k, v);
        }
    }
    let response = match req.send().await {
        Ok(_) if lose => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [("content-type", "application/xml")],
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>InternalError</Code><Message>We encountered an internal error. Please try again.</Message><RequestId>s3-proxy-lost</RequestId></Error>",
        )
            .into_response(),
        Ok(resp) => {
            let mut out = Response::builder().status(resp.status());
            for (k, v) in resp.headers() {
                if k != "transfer-encoding" && k != "content-length" {
                    out = out.header(k, v);
                }
            }
            let bytes = resp.bytes().await.unwrap_or_default();
            out.body(Body::from(bytes)).unwrap()
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    // (Gone when the counts were reset meanwhile.)
    if let Some(s) = inner
        .seen
        .lock()
        .unwrap()
        .iter_mut()
        .rev()
        .find(|s| s.id == id)
    {
        s.status = Some(response.status().as_u16());
    }
    response
}
