//! A counting, fault-injecting HTTP proxy in front of moto.
//!
//! Counts every request by AWS operation (IAM/STS `Action=` of the query protocol, Lambda's
//! REST paths) and answers a configurable share with the errors real AWS sends when it
//! throttles: `Throttling` in IAM's XML error body (HTTP 400), `TooManyRequestsException`
//! with `x-amzn-ErrorType` for Lambda (HTTP 429), and 500s (`ServiceFailure` /
//! `ServiceException`). Faults are drawn from a seeded generator, so a run is repeatable.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// Fault shares, each 0.0 to 1.0.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// Share of requests answered with a throttling error.
    pub throttle: f64,
    /// Share answered with a 500 before reaching moto.
    pub server_error: f64,
    /// Share of IAM requests forwarded to moto (so the change happens) and then answered
    /// with a 500, as when a response is lost: the retry must treat "already done" as
    /// success. Not applied to Lambda: moto accepts a second AddPermission with the same
    /// statement id, where AWS answers ResourceConflictException, so a lost Lambda answer
    /// would test moto, not trustsync.
    pub lost_response: f64,
    /// Milliseconds every request is held before it is forwarded (to make overlapping
    /// requests observable).
    pub delay_ms: u64,
}

/// What the proxy saw.
#[derive(Debug, Clone, Default)]
pub struct Counts {
    /// Requests per operation (faulted ones included).
    pub requests: BTreeMap<String, u64>,
    /// Throttling answers sent.
    pub throttled: u64,
    /// 500s sent.
    pub server_errors: u64,
    /// Responses replaced by a 500 after moto acted.
    pub lost_responses: u64,
    /// The most requests under way at once.
    pub max_in_flight: u64,
}

impl Counts {
    /// All requests.
    pub fn total(&self) -> u64 {
        self.requests.values().sum()
    }
}

/// AWS outbound identity federation as the proxy plays it for moto, which lacks it.
#[derive(Debug, Clone)]
struct Outbound {
    enabled: bool,
    issuer: String,
}

struct Inner {
    /// When set, the proxy answers GetOutboundWebIdentityFederationInfo and
    /// EnableOutboundWebIdentityFederation itself.
    outbound: Mutex<Option<Outbound>>,
    /// Role ARNs whose AssumeRole is refused as STS refuses a role that does not exist
    /// or does not trust the caller.
    denied_roles: Mutex<Vec<String>>,
    upstream: String,
    client: reqwest::Client,
    faults: Mutex<Faults>,
    counts: Mutex<Counts>,
    rng: Mutex<u64>,
    in_flight: std::sync::atomic::AtomicU64,
    /// Accept every request and never answer.
    hang_all: std::sync::atomic::AtomicBool,
    /// Pass the client's `Host` on (a server that builds links from it, as the local Graph
    /// server builds `@odata.nextLink`, then keeps the client coming through the proxy).
    keep_host: std::sync::atomic::AtomicBool,
    /// Accounts whose requests are accepted and never answered.
    hung_accounts: Mutex<Vec<String>>,
    /// Accounts whose writes (every operation but `Get*`, `List*`) are accepted and never
    /// answered; their reads are.
    hung_writes: Mutex<Vec<String>>,
    /// The account of each access key AssumeRole handed out (moto acts in the role's
    /// account for requests signed with it).
    key_accounts: Mutex<BTreeMap<String, String>>,
}

/// Counts a request as under way until dropped.
struct InFlight<'a>(&'a Inner);

impl<'a> InFlight<'a> {
    fn enter(inner: &'a Inner) -> InFlight<'a> {
        use std::sync::atomic::Ordering::SeqCst;
        let now = inner.in_flight.fetch_add(1, SeqCst) + 1;
        let mut counts = inner.counts.lock().unwrap();
        counts.max_in_flight = counts.max_in_flight.max(now);
        InFlight(inner)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0
            .in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A running proxy; stops with the test process.
pub struct Proxy {
    pub endpoint: String,
    inner: Arc<Inner>,
    _runtime: std::thread::JoinHandle<()>,
}

impl Proxy {
    /// Starts a proxy on a free loopback port forwarding to `upstream`.
    pub fn start(upstream: &str, faults: Faults, seed: u64) -> Proxy {
        let inner = Arc::new(Inner {
            outbound: Mutex::new(None),
            denied_roles: Mutex::new(Vec::new()),
            upstream: upstream.trim_end_matches('/').to_string(),
            client: reqwest::Client::new(),
            faults: Mutex::new(faults),
            counts: Mutex::new(Counts::default()),
            rng: Mutex::new(seed.max(1)),
            in_flight: Default::default(),
            hang_all: Default::default(),
            keep_host: Default::default(),
            hung_accounts: Default::default(),
            hung_writes: Default::default(),
            key_accounts: Default::default(),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let state = inner.clone();
        let handle = std::thread::spawn(move || {
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
        Proxy {
            endpoint,
            inner,
            _runtime: handle,
        }
    }

    pub fn counts(&self) -> Counts {
        self.inner.counts.lock().unwrap().clone()
    }

    pub fn reset(&self) {
        *self.inner.counts.lock().unwrap() = Counts::default();
    }

    /// Refuses AssumeRole into `role_arn` with STS's `AccessDenied`, as for a spoke role
    /// that is missing (moto lets any role be assumed, existing or not).
    pub fn deny_assume_role(&self, role_arn: &str) {
        self.inner
            .denied_roles
            .lock()
            .unwrap()
            .push(role_arn.into());
    }

    /// Answers the account's outbound identity federation calls as IAM documents them:
    /// `GetOutboundWebIdentityFederationInfo` gives `issuer` once enabled (404
    /// `FeatureDisabled` before), `EnableOutboundWebIdentityFederation` turns it on (409
    /// `FeatureEnabled` when it is).
    pub fn serve_outbound_federation(&self, issuer: &str, enabled: bool) {
        *self.inner.outbound.lock().unwrap() = Some(Outbound {
            enabled,
            issuer: issuer.into(),
        });
    }

    /// Whether outbound identity federation is on (as the proxy plays it).
    pub fn outbound_federation_enabled(&self) -> bool {
        self.inner
            .outbound
            .lock()
            .unwrap()
            .as_ref()
            .is_some_and(|o| o.enabled)
    }

    /// From now on accepts every request and never answers (`false`: answers again), as an
    /// endpoint whose connections are accepted by a load balancer that nothing serves.
    pub fn hang(&self, on: bool) {
        self.inner
            .hang_all
            .store(on, std::sync::atomic::Ordering::SeqCst);
        if !on {
            self.inner.hung_accounts.lock().unwrap().clear();
            self.inner.hung_writes.lock().unwrap().clear();
        }
    }

    /// Passes the client's `Host` header on to the upstream.
    pub fn keep_host(&self) {
        self.inner
            .keep_host
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Accepts and never answers the writes (not the reads) signed with credentials
    /// AssumeRole gave for a role in `account`: a pass that has read the account waits on
    /// its write there.
    pub fn hang_writes(&self, account: &str) {
        self.inner
            .hung_writes
            .lock()
            .unwrap()
            .push(account.to_string());
    }

    /// Accepts and never answers the requests signed with credentials AssumeRole gave for a
    /// role in `account`, as when that account's endpoints stop answering.
    pub fn hang_account(&self, account: &str) {
        self.inner
            .hung_accounts
            .lock()
            .unwrap()
            .push(account.to_string());
    }

    pub fn set_faults(&self, faults: Faults) {
        *self.inner.faults.lock().unwrap() = faults;
    }
}

/// Whether the request is signed with a key of a hung account (SigV4:
/// `Authorization: AWS4-HMAC-SHA256 Credential=<key>/<date>/...`), or is a write signed
/// with a key of an account whose writes hang.
fn is_hung(inner: &Inner, headers: &HeaderMap, op: &str) -> bool {
    let mut hung = inner.hung_accounts.lock().unwrap().clone();
    if !op.starts_with("Get") && !op.starts_with("List") {
        hung.extend(inner.hung_writes.lock().unwrap().iter().cloned());
    }
    if hung.is_empty() {
        return false;
    }
    let key = headers
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|a| a.split_once("Credential="))
        .and_then(|(_, rest)| rest.split_once('/'))
        .map(|(key, _)| key.to_string());
    key.and_then(|k| inner.key_accounts.lock().unwrap().get(&k).cloned())
        .is_some_and(|account| hung.contains(&account))
}

fn next_unit(state: &Mutex<u64>) -> f64 {
    let mut s = state.lock().unwrap();
    // xorshift64*
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    let v = s.wrapping_mul(0x2545_F491_4F6C_DD1D);
    (v >> 11) as f64 / (1u64 << 53) as f64
}

/// The AWS operation a request is for.
/// How the service behind a request speaks, which decides the shape of an error answer.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Protocol {
    /// Lambda: REST with JSON errors named in `x-amzn-ErrorType`.
    Lambda,
    /// The Resource Groups Tagging API: awsJson 1.1 (`X-Amz-Target`).
    Tagging,
    /// IAM and STS: the query protocol with XML errors.
    Query,
}

fn operation(method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> (Protocol, String) {
    let path = uri.path();
    if let Some(rest) = path.strip_prefix("/2015-03-31/functions") {
        let parts: Vec<&str> = rest.trim_matches('/').split('/').collect();
        let op = match (method.as_str(), parts.as_slice()) {
            ("GET", [""]) => "ListFunctions",
            ("GET", [_, "configuration"]) => "GetFunctionConfiguration",
            ("PUT", [_, "configuration"]) => "UpdateFunctionConfiguration",
            ("GET", [_, "policy"]) => "GetPolicy",
            ("POST", [_, "policy"]) => "AddPermission",
            ("DELETE", [_, "policy", _]) => "RemovePermission",
            ("GET", [_, "aliases", _]) => "GetAlias",
            _ => "LambdaOther",
        };
        return (Protocol::Lambda, op.to_string());
    }
    if path.starts_with("/2017-03-31/tags/") {
        let op = match method.as_str() {
            "POST" => "TagResource",
            "DELETE" => "UntagResource",
            _ => "ListTags",
        };
        return (Protocol::Lambda, op.to_string());
    }
    if let Some(target) = headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
        let op = target.rsplit('.').next().unwrap_or(target);
        return (Protocol::Tagging, op.to_string());
    }
    let form = String::from_utf8_lossy(body);
    let action = url::form_urlencoded::parse(form.as_bytes())
        .find(|(k, _)| k == "Action")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| "Unknown".into());
    (Protocol::Query, action)
}

/// The proxy's own answer to an outbound federation call, when it plays the feature.
fn outbound_federation(inner: &Inner, op: &str) -> Option<Response> {
    let mut state = inner.outbound.lock().unwrap();
    let o = state.as_mut()?;
    let xml = |status: StatusCode, body: String| {
        Some((status, [("content-type", "text/xml")], body).into_response())
    };
    let error = |status: StatusCode, code: &str, message: &str| {
        xml(
            status,
            format!("<ErrorResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>proxy-outbound</RequestId></ErrorResponse>"),
        )
    };
    let result = |op: &str, issuer: &str, extra: &str| {
        xml(
            StatusCode::OK,
            format!("<{op}Response xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><{op}Result><IssuerIdentifier>{issuer}</IssuerIdentifier>{extra}</{op}Result><ResponseMetadata><RequestId>proxy-outbound</RequestId></ResponseMetadata></{op}Response>"),
        )
    };
    match (op, o.enabled) {
        ("GetOutboundWebIdentityFederationInfo", true) => {
            result(op, &o.issuer, "<JwtVendingEnabled>true</JwtVendingEnabled>")
        }
        ("GetOutboundWebIdentityFederationInfo", false) => error(
            StatusCode::NOT_FOUND,
            "FeatureDisabled",
            "Outbound identity federation is disabled for this account.",
        ),
        ("EnableOutboundWebIdentityFederation", true) => error(
            StatusCode::CONFLICT,
            "FeatureEnabled",
            "Outbound identity federation is already enabled for this account.",
        ),
        ("EnableOutboundWebIdentityFederation", false) => {
            o.enabled = true;
            result(op, &o.issuer, "")
        }
        _ => None,
    }
}

/// A JSON-protocol error as Lambda and the tagging API send it.
fn json_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        [
            ("x-amzn-ErrorType", code),
            ("content-type", "application/x-amz-json-1.1"),
        ],
        format!(r#"{{"__type":"{code}","message":"{message}"}}"#),
    )
        .into_response()
}

async fn forward(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let _in_flight = InFlight::enter(&inner);
    let (protocol, op) = operation(&method, &uri, &headers, &body);
    *inner
        .counts
        .lock()
        .unwrap()
        .requests
        .entry(op.clone())
        .or_default() += 1;
    if let Some(resp) = outbound_federation(&inner, &op) {
        return resp;
    }
    if inner.hang_all.load(std::sync::atomic::Ordering::SeqCst) || is_hung(&inner, &headers, &op) {
        std::future::pending::<()>().await;
    }
    let mut assumed_account = None;
    if op == "AssumeRole" {
        let form = String::from_utf8_lossy(&body).into_owned();
        let role = url::form_urlencoded::parse(form.as_bytes())
            .find(|(k, _)| k == "RoleArn")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        assumed_account = role.split(':').nth(4).map(String::from);
        if inner.denied_roles.lock().unwrap().contains(&role) {
            let body = format!(
                "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User: arn:aws:iam::123456789012:user/test is not authorized to perform: sts:AssumeRole on resource: {role}</Message></Error><RequestId>proxy-denied</RequestId></ErrorResponse>"
            );
            return (StatusCode::FORBIDDEN, [("content-type", "text/xml")], body).into_response();
        }
    }
    let faults = *inner.faults.lock().unwrap();
    if faults.delay_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(faults.delay_ms)).await;
    }
    let roll = next_unit(&inner.rng);
    let request_id = format!("proxy-{}", (roll * 1e12) as u64);
    if roll < faults.throttle {
        inner.counts.lock().unwrap().throttled += 1;
        return if protocol == Protocol::Lambda {
            json_error(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequestsException",
                "Rate exceeded",
            )
        } else if protocol == Protocol::Tagging {
            json_error(
                StatusCode::BAD_REQUEST,
                "ThrottledException",
                "Rate exceeded",
            )
        } else {
            let body = format!(
                "<ErrorResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
            );
            (
                StatusCode::BAD_REQUEST,
                [("content-type", "text/xml")],
                body,
            )
                .into_response()
        };
    }
    if roll < faults.throttle + faults.server_error {
        inner.counts.lock().unwrap().server_errors += 1;
        return if protocol == Protocol::Lambda {
            json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "ServiceException",
                "Internal failure",
            )
        } else if protocol == Protocol::Tagging {
            json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServiceException",
                "Internal failure",
            )
        } else {
            let body = format!(
                "<ErrorResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><Error><Type>Receiver</Type><Code>ServiceFailure</Code><Message>Internal failure</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
            );
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                [("content-type", "text/xml")],
                body,
            )
                .into_response()
        };
    }
    let lose = protocol == Protocol::Query
        && roll < faults.throttle + faults.server_error + faults.lost_response;
    let url = format!(
        "{}{}",
        inner.upstream,
        uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
    );
    let mut req = inner.client.request(method, url).body(body);
    let keep_host = inner.keep_host.load(std::sync::atomic::Ordering::SeqCst);
    for (k, v) in headers.iter() {
        if (k != "host" || keep_host) && k != "content-length" {
            req = req.header(k, v);
        }
    }
    match req.send().await {
        Ok(_) if lose => {
            inner.counts.lock().unwrap().lost_responses += 1;
            let code = "ServiceFailure";
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                [("x-amzn-ErrorType", code)],
                "lost",
            )
                .into_response()
        }
        Ok(resp) => {
            let status = resp.status();
            let mut out = Response::builder().status(status);
            for (k, v) in resp.headers() {
                if k != "transfer-encoding" && k != "content-length" {
                    out = out.header(k, v);
                }
            }
            let bytes = resp.bytes().await.unwrap_or_default();
            if let Some(account) = assumed_account {
                let text = String::from_utf8_lossy(&bytes);
                if let Some(key) = text
                    .split_once("<AccessKeyId>")
                    .and_then(|(_, rest)| rest.split_once("</AccessKeyId>"))
                    .map(|(key, _)| key.to_string())
                {
                    inner.key_accounts.lock().unwrap().insert(key, account);
                }
            }
            out.body(Body::from(bytes)).unwrap()
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}
