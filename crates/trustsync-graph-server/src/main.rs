#![forbid(unsafe_code)]
// Helpers return a ready error `Response` as their `Err`, the axum idiom; boxing it buys nothing.
#![allow(clippy::result_large_err)]
//! A local Microsoft Graph v1.0 server for tests and the demo.
//!
//! It speaks the documented wire format for what trustsync reads, written from Microsoft's
//! published API reference, not from what the client happens to send:
//!
//! - `POST /{tenant}/oauth2/v2.0/token`: client-credentials grant with a client secret, a
//!   certificate assertion (RS256 JWT checked against the registered public key), or a
//!   federated token (issuer and subject checked; its signature is not, since there is no
//!   issuer to fetch keys from here). Errors carry AADSTS codes like the real endpoint.
//! - The same endpoint issues app-only access tokens to the tenant's workloads for another
//!   application of the tenant (`scope=api://.../.default` or its client id): signed
//!   RS256 JWTs with the v1.0 or v2.0 claims Microsoft documents, chosen by the resource
//!   application's `api.requestedAccessTokenVersion`; the keys are published through
//!   `/{tenant}[/v2.0]/.well-known/openid-configuration` and its `jwks_uri`. See `tokens.rs`.
//! - `GET /v1.0/groups?$filter=displayName eq '...'`, `GET /v1.0/groups/{id}`,
//!   `/v1.0/groups/{id}/members`, `/transitiveMembers`: `@odata.type` on every object,
//!   `$top` (1 to 999; the server may send fewer), `@odata.nextLink` paging over a
//!   snapshot taken on the first page.
//! - `GET /v1.0/groups/$count` (text, with `ConsistencyLevel: eventual` only, as Graph
//!   requires for counting directory objects).
//! - `GET /v1.0/groups/delta` (also `delta()` and `microsoft.graph.delta`): `members@delta`
//!   with `@removed` entries, a large group split over pages, `@odata.deltaLink` with a
//!   `$deltatoken`, `$deltatoken=latest`, and `410 syncStateNotFound` for expired tokens.
//! - `GET /v1.0/users`, `/v1.0/users/{id}` (Microsoft's default set of properties unless
//!   `$select` asks for `accountEnabled`, `userType`...), `GET /v1.0/users/delta`: every
//!   user, then those changed since the token, a deleted one `@removed` (`changed`); see
//!   `users.rs`.
//! - `POST /v1.0/$batch`: JSON batching, at most 20 requests, each answered with its own
//!   `id`, `status`, `headers` and `body` (a throttled one with 429 and `Retry-After`).
//! - Resource units, as Microsoft publishes them for identity and access: each read costs
//!   its base (`groups/{id}/members` 3, `groups/{id}/transitiveMembers` 5, anything else 1),
//!   one less with `$select`, one more with `$expand`, one less with `$top` under 20, never
//!   below 1; the cost is sent back in `x-ms-resource-unit`. Each application has a bucket
//!   per 10 seconds sized by the tenant (3,500 under 50 users, 5,000 up to 500, 8,000
//!   above; `--resource-units N` sets it, 0 turns it off); an empty bucket answers 429 with
//!   `Retry-After`, `x-ms-throttle-scope` and `x-ms-throttle-information:
//!   ResourceUnitLimitExceeded`.
//! - `/v1.0/applications/{id}/federatedIdentityCredentials` (also by
//!   `applications(appId='...')`): list, create, get, update, upsert by name, delete, with
//!   Graph's limits (20 per application; name, issuer+subject unique) and
//!   `Application.ReadWrite.OwnedBy` (only applications the caller owns); and the token
//!   endpoint's exchange of an external token for such an application, its signature
//!   checked against the issuer's published keys; see `applications.rs`.
//! - `/v1.0/servicePrincipals/{id}/ownedObjects` (also by `servicePrincipals(appId='...')`,
//!   and cast with `/microsoft.graph.application`): the applications a service principal
//!   owns, which is how a controller holding `Application.ReadWrite.OwnedBy` finds them.
//! - `/v1.0/subscriptions`: change notifications on groups, each endpoint validated with
//!   Graph's `validationToken` handshake before the subscription is made; a membership
//!   change posts a `changeNotificationCollection` with the subscription's `clientState`;
//!   renew, reauthorize, delete; see `subscriptions.rs`.
//! - A `request-id` and `client-request-id` header on every answer.
//! - Errors as `{"error": {"code", "message", "innerError": {"request-id", "date"}}}`;
//!   429 with `Retry-After`.
//!
//! An admin API changes the tenant at run time and injects faults:
//! `POST /admin/groups/{id}/members {"id", "initiatedBy"?}`, `DELETE
//! /admin/groups/{id}/members/{member}` (optional body `{"initiatedBy"}`): each also
//! recorded in `GET /v1.0/auditLogs/directoryAudits` as Entra records it,
//! `POST /admin/faults {"throttle", "retryAfter", "fail", "failStatus", "failAfter", "failRoute", "delayMs",
//! "loseDeltaEvents", "denyAuditLogs", "auditDelayMs", "membersDelayMs", "noOwnedObjects"}`,
//! `POST /admin/users` (a tenant-file user), `PATCH /admin/users/{id}` (`accountEnabled`,
//! `displayName`, `userPrincipalName`, `mail`, `userType`), `DELETE /admin/users/{id}` (out
//! of every group first, as Entra does), `POST /admin/expire-delta-tokens`, `GET /admin/stats`, `POST /admin/stats/reset`,
//! `GET /admin/subscriptions`, `POST /admin/subscriptions/{id}/lifecycle {"event"}`.
//!
//! Usage: `trustsync-graph-server --tenant FILE [--listen 127.0.0.1:0] [--max-page-size N]
//! [--resource-units N]`.
//! The first line on stdout is `listening on http://ADDR`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use clap::Parser;

mod admin;
mod applications;
mod auth;
mod batch;
mod directory;
mod subscriptions;
mod throttle;
mod tokens;
mod users;

use admin::*;
use auth::*;
use batch::*;
use serde_json::{json, Value};
use throttle::*;
use trustsync_tenant::TenantFile;
use users::*;

#[derive(Parser)]
#[command(about = "Local Microsoft Graph v1.0 server for trustsync's tests and demo")]
struct Args {
    /// Tenant file (JSON) to serve.
    #[arg(long)]
    tenant: std::path::PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// Largest page the server sends, whatever `$top` asks for.
    #[arg(long, default_value_t = 999)]
    max_page_size: usize,
    /// Resource units each application may spend per 10 seconds; 0: no limit. Default:
    /// Microsoft's limit for the tenant's size.
    #[arg(long)]
    resource_units: Option<u64>,
}

struct Event {
    seq: u64,
    group: String,
    member: String,
    removed: bool,
}

/// What kind of directory object an id is.
#[derive(Clone, Copy)]
enum Kind {
    Group,
    ServicePrincipal,
    User,
    Device,
}

/// Every object id of the tenant file, with its kind and position (objects never change
/// at run time, only memberships): a lookup is a hash, not a scan, at tenant scale.
fn index(tenant: &TenantFile) -> HashMap<String, (Kind, usize)> {
    let mut index = HashMap::new();
    let lists: [(Kind, Vec<&str>); 4] = [
        (
            Kind::Device,
            tenant.devices.iter().map(|o| o.id.as_str()).collect(),
        ),
        (
            Kind::User,
            tenant.users.iter().map(|o| o.id.as_str()).collect(),
        ),
        (
            Kind::ServicePrincipal,
            tenant
                .service_principals
                .iter()
                .map(|o| o.id.as_str())
                .collect(),
        ),
        (
            Kind::Group,
            tenant.groups.iter().map(|g| g.id.as_str()).collect(),
        ),
    ];
    // Later kinds win, so a group id shadows anything else, as the lookup order had it.
    for (kind, ids) in lists {
        for (i, id) in ids.into_iter().enumerate() {
            index.insert(id.to_string(), (kind, i));
        }
    }
    index
}

struct Server {
    tenant: TenantFile,
    /// Object id -> kind and position in the tenant file.
    index: HashMap<String, (Kind, usize)>,
    max_page: usize,
    seq: u64,
    events: Vec<Event>,
    /// Changes to users, for `/users/delta`.
    user_events: Vec<UserEvent>,
    /// Users deleted through the admin API (kept in the tenant file for the index).
    deleted_users: BTreeSet<String>,
    /// Delta tokens at or below this sequence are expired.
    expired_below: u64,
    /// Snapshots behind `$skiptoken`s: id -> (items, page size, kind, upto seq).
    pagers: HashMap<String, Pager>,
    next_pager: u64,
    /// Access token -> (expiry, client id).
    tokens: HashMap<String, (u64, String)>,
    /// Resource units per application per 10 seconds (0: unlimited), and the buckets.
    unit_limit: u64,
    buckets: HashMap<String, Bucket>,
    /// Resource units charged so far.
    units: u64,
    faults: Faults,
    stats: BTreeMap<String, u64>,
    requests: u64,
    /// directoryAudit objects of the membership changes made through the admin API.
    audits: Vec<Value>,
    /// Applications and their federated identity credentials.
    apps: applications::Apps,
    /// Change-notification subscriptions (locked on their own: a create waits for the
    /// endpoint's validation without holding the server).
    subscriptions: Arc<Mutex<subscriptions::Subscriptions>>,
}

/// One `$filter` clause of a directoryAudits query, as a test on an audit object.
type AuditTest = Box<dyn Fn(&Value) -> bool>;

enum Pager {
    Objects {
        items: Vec<Value>,
        top: usize,
        /// `$select` and `$top` as asked, carried into every nextLink as Graph does.
        query: String,
        /// A delta round's `@odata.deltaLink`, sent with its last page.
        delta_link: Option<String>,
    },
    Delta {
        items: Vec<DeltaItem>,
        top: usize,
        upto: u64,
    },
}

#[derive(Clone)]
struct DeltaItem {
    group: String,
    display_name: Option<String>,
    member: Option<Value>,
}

type Shared = Arc<Mutex<Server>>;

/// Now, as Graph writes times (RFC 3339, UTC).
fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn request_id() -> String {
    let n = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{:08x}-0000-4000-8000-{:012x}",
        (n >> 32) as u32,
        n as u64 & 0xffff_ffff_ffff
    )
}

/// A Graph error response in the documented shape.
/// Graph answers every request with a `request-id` (and `client-request-id`) header: what
/// a caller records to find the request in Microsoft's logs.
async fn with_request_id(mut resp: Response) -> Response {
    let headers = resp.headers_mut();
    if !headers.contains_key("request-id") {
        let id = request_id();
        if let Ok(v) = id.parse() {
            headers.insert("request-id", v);
        }
        if let Ok(v) = id.parse() {
            headers.insert("client-request-id", v);
        }
    }
    resp
}

fn graph_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({"error": {"code": code, "message": message, "innerError": {
        "date": now_rfc3339(), "request-id": request_id(), "client-request-id": request_id()}}});
    (status, Json(body)).into_response()
}

/// A token endpoint error in the identity platform's shape.
fn aad_error(status: StatusCode, error: &str, code: u32, description: &str) -> Response {
    let body = json!({
        "error": error,
        "error_description": format!("AADSTS{code}: {description} Trace ID: {} Correlation ID: {} Timestamp: {}", request_id(), request_id(), now_rfc3339()),
        "error_codes": [code],
        "timestamp": now_rfc3339(),
        "trace_id": request_id(),
        "correlation_id": request_id(),
    });
    (status, Json(body)).into_response()
}

fn parse_query(raw: &Option<String>) -> HashMap<String, String> {
    url::form_urlencoded::parse(raw.as_deref().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

fn select_of(q: &HashMap<String, String>) -> Option<BTreeSet<String>> {
    q.get("$select")
        .map(|s| s.split(',').map(|p| p.trim().to_string()).collect())
}

fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}/v1.0")
}

/// The client id the bearer token was issued to; an admitted request is counted (what
/// `/admin/stats` reports as `graphRequests`).
fn authorized(state: &Shared, headers: &HeaderMap) -> Result<String, Response> {
    let token = headers
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim);
    let refused = |message| {
        graph_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            message,
        )
    };
    let mut s = state.lock().expect("state");
    let client = match token.map(|t| s.tokens.get(t)) {
        None => return Err(refused("Access token is empty.")),
        Some(None) => return Err(refused("IDX14100: JWT is not well formed.")),
        Some(Some((exp, _))) if *exp <= now_secs() => {
            return Err(refused("Lifetime validation failed, the token is expired."))
        }
        Some(Some((_, client))) => client.clone(),
    };
    s.requests += 1;
    Ok(client)
}

async fn graph_get(
    State(state): State<Shared>,
    Path(rest): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let client = match authorized(&state, &headers) {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let eventual = headers
        .get("consistencylevel")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("eventual"));
    if subscriptions::is_route(&rest) {
        return serve_subscriptions(&state, &client, &axum::http::Method::GET, &rest, &[]).await;
    }
    serve_get(&state, &client, &rest, &raw, &base_url(&headers), eventual).await
}

/// A subscriptions request: served under the subscriptions' lock, but a create validates
/// the endpoints with it released.
async fn serve_subscriptions(
    state: &Shared,
    client: &str,
    method: &axum::http::Method,
    rest: &str,
    body: &[u8],
) -> Response {
    let subs = state.lock().expect("state").subscriptions.clone();
    let pending = subs
        .lock()
        .expect("subscriptions")
        .serve(&subscriptions::Request {
            client,
            method,
            rest,
            body,
        });
    match pending {
        subscriptions::Pending::Done(resp) => resp,
        subscriptions::Pending::Create(sub) => {
            subscriptions::Subscriptions::create(&subs, sub).await
        }
    }
}

/// The change notifications a membership change of `group` sends.
fn notify_group_changed(s: &Server, group: &str) {
    let notes = s
        .subscriptions
        .lock()
        .expect("subscriptions")
        .group_changed(group, &s.tenant.tenant_id);
    subscriptions::post_all(notes);
}

/// A POST, PATCH or DELETE: only the applications routes write.
async fn graph_write(
    State(state): State<Shared>,
    method: axum::http::Method,
    Path(rest): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let client = match authorized(&state, &headers) {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    if subscriptions::is_route(&rest) {
        return serve_subscriptions(&state, &client, &method, &rest, &body).await;
    }
    if !applications::is_route(&rest) {
        return graph_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "Request_BadRequest",
            &format!("The HTTP method '{method}' is not supported for '{rest}'."),
        );
    }
    let q = parse_query(&raw);
    if let Err(resp) = gate(&state, "applications", &client, &q).await {
        return resp;
    }
    let mut s = state.lock().expect("state");
    let Server { apps, tenant, .. } = &mut *s;
    applications::serve(
        apps,
        tenant,
        &applications::Request {
            client: &client,
            method: &method,
            rest: &rest,
            query: &q,
            body: &body,
            base: &base_url(&headers),
        },
    )
}

/// One GET of `rest` (the path after `/v1.0/`), on its own or inside a batch; a read that
/// was charged says how much in `x-ms-resource-unit`.
async fn serve_get(
    state: &Shared,
    client: &str,
    rest: &str,
    raw: &Option<String>,
    base: &str,
    eventual: bool,
) -> Response {
    let segments: Vec<&str> = rest.trim_matches('/').split('/').collect();
    if applications::is_owned_objects_route(rest) {
        if state.lock().expect("state").faults.no_owned_objects {
            return graph_error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!("Resource not found for the segment '{rest}'."),
            );
        }
        let q = parse_query(raw);
        if let Err(resp) = gate(state, "ownedObjects", client, &q).await {
            return resp;
        }
        let s = state.lock().expect("state");
        return applications::owned_objects(&s.apps, &s.tenant, rest, &q, base);
    }
    if applications::is_route(rest) {
        let q = parse_query(raw);
        if let Err(resp) = gate(state, "applications", client, &q).await {
            return resp;
        }
        let mut s = state.lock().expect("state");
        let Server { apps, tenant, .. } = &mut *s;
        return applications::serve(
            apps,
            tenant,
            &applications::Request {
                client,
                method: &axum::http::Method::GET,
                rest,
                query: &q,
                body: &[],
                base,
            },
        );
    }
    let route = route_of(&segments);
    let q = parse_query(raw);
    let units = match gate(state, route, client, &q).await {
        Ok(units) => units,
        Err(resp) => return resp,
    };
    let mut resp = if route == "count" {
        count_groups(state, eventual)
    } else {
        read(state, rest, route, &segments, &q, base)
    };
    resp.headers_mut().insert(
        "x-ms-resource-unit",
        units.to_string().parse().expect("header"),
    );
    resp
}

/// The route of a GET's path segments, as throttling counts it.
fn route_of(segments: &[&str]) -> &'static str {
    match segments {
        ["groups"] => "groups",
        ["groups", "$count"] => "count",
        ["groups", d] if is_delta(d) => "delta",
        ["groups", _] => "group",
        ["groups", _, "members"] => "members",
        ["groups", _, "transitiveMembers"] => "transitiveMembers",
        ["auditLogs", "directoryAudits"] => "directoryAudits",
        ["servicePrincipals", _] => "servicePrincipal",
        ["users"] => "users",
        ["users", d] if is_delta(d) => "usersDelta",
        ["users", _] => "user",
        _ => "other",
    }
}

/// `GET /groups/$count`: how many groups the tenant has.
fn count_groups(state: &Shared, eventual: bool) -> Response {
    // Counting directory objects is an advanced query: it needs the header.
    if eventual {
        let n = state.lock().expect("state").tenant.groups.len();
        ([("content-type", "text/plain")], n.to_string()).into_response()
    } else {
        graph_error(
            StatusCode::BAD_REQUEST,
            "Request_BadRequest",
            "Count is not currently supported without the ConsistencyLevel header set to eventual.",
        )
    }
}

fn read(
    state: &Shared,
    rest: &str,
    route: &str,
    segments: &[&str],
    q: &HashMap<String, String>,
    base: &str,
) -> Response {
    let base = base.to_string();
    let mut s = state.lock().expect("state");
    let select = select_of(q);
    if let Some(token) = q.get("$skiptoken") {
        let Some((pager, offset)) = token.split_once('.') else {
            return graph_error(
                StatusCode::BAD_REQUEST,
                "Request_BadRequest",
                "Invalid $skiptoken.",
            );
        };
        let offset: usize = offset.parse().unwrap_or(0);
        return if route == "delta" {
            s.delta_page(&base, pager.to_string(), offset)
        } else {
            s.page_objects(
                &base,
                &format!("/{}", rest.trim_matches('/')),
                pager.to_string(),
                offset,
            )
        };
    }
    let top = match s.top(q) {
        Ok(t) => t,
        Err(resp) => return resp,
    };
    match segments {
        ["groups"] => s.list_groups(q, &base, &select, top),
        ["auditLogs", "directoryAudits"] => s.directory_audits(q, &base, top),
        ["groups", d] if is_delta(d) => s.delta(q, &base, top),
        ["groups", id] => s.group(id, &base, &select),
        ["servicePrincipals", id] => s.service_principal(id, &select),
        ["users"] => s.list_users(q, &base, &select, top),
        ["users", d] if is_delta(d) => s.users_delta(q, &base, &select, top),
        ["users", id] => s.user(id, &base, &select),
        ["groups", id, kind @ ("members" | "transitiveMembers")] => {
            s.members(id, kind, &base, &select, top, q)
        }
        _ => graph_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!("Resource not found for the segment '{rest}'."),
        ),
    }
}

/// The query options a nextLink carries, as asked: `$select` and `$top`, each followed by
/// `&` (the server may send smaller pages than `$top` asks; the link still says it).
fn carried(q: &HashMap<String, String>) -> String {
    ["$select", "$top"]
        .iter()
        .filter_map(|k| q.get(*k).map(|v| format!("{k}={}&", encode_query(v))))
        .collect()
}

/// Percent-encodes a query value (spaces as `%20`).
fn encode_query(v: &str) -> String {
    url::form_urlencoded::byte_serialize(v.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
        .replace("%2C", ",")
        .replace("%24", "$")
}

fn is_delta(segment: &str) -> bool {
    matches!(
        segment,
        "delta" | "delta()" | "microsoft.graph.delta" | "microsoft.graph.delta()"
    )
}

fn not_found(id: &str) -> Response {
    graph_error(
        StatusCode::NOT_FOUND,
        "Request_ResourceNotFound",
        &format!("Resource '{id}' does not exist or one of its queried reference-property objects are not present."),
    )
}

/// `displayName eq 'name'` with `''` as an escaped quote; nothing else is supported.
fn parse_display_name_filter(f: &str) -> Option<String> {
    let rest = f
        .trim()
        .strip_prefix("displayName")?
        .trim_start()
        .strip_prefix("eq")?
        .trim();
    let inner = rest.strip_prefix('\'')?.strip_suffix('\'')?;
    if inner.replace("''", "").contains('\'') {
        return None;
    }
    Some(inner.replace("''", "'"))
}

/// The server's state at start: the tenant file's objects, nothing asked yet.
fn server(tenant: TenantFile, args: &Args) -> Server {
    let tenant_users = tenant.users.len();
    let apps = applications::Apps::from_tenant(&tenant);
    Server {
        index: index(&tenant),
        tenant,
        max_page: args.max_page_size.clamp(1, 999),
        seq: 0,
        events: Vec::new(),
        user_events: Vec::new(),
        deleted_users: BTreeSet::new(),
        expired_below: 0,
        pagers: HashMap::new(),
        next_pager: 0,
        unit_limit: args.resource_units.unwrap_or(match tenant_users {
            0..50 => 3_500,
            50..=500 => 5_000,
            _ => 8_000,
        }),
        buckets: HashMap::new(),
        units: 0,
        tokens: HashMap::new(),
        faults: Faults::default(),
        stats: BTreeMap::new(),
        requests: 0,
        audits: Vec::new(),
        apps,
        subscriptions: Default::default(),
    }
}

/// Every route the server answers.
fn routes(state: Shared) -> Router {
    Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(token))
        .route(
            "/{tenant}/.well-known/openid-configuration",
            get(openid_configuration_v1),
        )
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            get(openid_configuration_v2),
        )
        .route("/{tenant}/discovery/keys", get(signing_keys))
        .route("/{tenant}/discovery/v2.0/keys", get(signing_keys))
        .route("/v1.0/$batch", post(graph_batch))
        .route(
            "/v1.0/{*rest}",
            get(graph_get)
                .post(graph_write)
                .patch(graph_write)
                .delete(graph_write),
        )
        .route("/admin/groups/{id}/members", post(admin_add_member))
        .route("/admin/users", post(admin_create_user))
        .route(
            "/admin/users/{id}",
            axum::routing::patch(admin_patch_user).delete(admin_delete_user),
        )
        .route(
            "/admin/groups/{id}/members/{member}",
            delete(admin_remove_member),
        )
        .route("/admin/subscriptions", get(admin_subscriptions))
        .route("/admin/subscriptions/{id}/lifecycle", post(admin_lifecycle))
        .route("/admin/faults", post(admin_faults))
        .route("/admin/expire-delta-tokens", post(admin_expire))
        .route("/admin/stats", get(admin_stats))
        .route("/admin/stats/reset", post(admin_stats_reset))
        .layer(axum::middleware::map_response(with_request_id))
        .with_state(state)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let tenant = match TenantFile::load(&args.tenant) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    let state: Shared = Arc::new(Mutex::new(server(tenant, &args)));
    let app = routes(state);
    let listener = match tokio::net::TcpListener::bind(&args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", args.listen);
            return std::process::ExitCode::from(1);
        }
    };
    let addr = listener.local_addr().expect("bound");
    println!("listening on http://{addr}");
    use std::io::Write;
    let _ = std::io::stdout().flush();
    if let Err(e) = axum::serve(listener, app).await {
        eprintln!("error: {e}");
        return std::process::ExitCode::from(1);
    }
    std::process::ExitCode::SUCCESS
}
