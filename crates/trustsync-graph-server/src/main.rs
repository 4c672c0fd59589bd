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
//! `POST /admin/faults {"throttle", "retryAfter", "fail", "failStatus", "failAfter", "delayMs",
//! "loseDeltaEvents", "denyAuditLogs", "auditDelayMs", "noOwnedObjects"}`,
//! `POST /admin/expire-delta-tokens`, `GET /admin/stats`, `POST /admin/stats/reset`,
//! `GET /admin/subscriptions`, `POST /admin/subscriptions/{id}/lifecycle {"event"}`.
//!
//! Usage: `trustsync-graph-server --tenant FILE [--listen 127.0.0.1:0] [--max-page-size N]
//! [--resource-units N]`.
//! The first line on stdout is `listening on http://ADDR`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use clap::Parser;

mod applications;
mod subscriptions;
mod tokens;
use serde::Deserialize;
use serde_json::{json, Value};
use trustsync::sources::directory::{TenantClient, TenantFile};

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

/// The resource units Microsoft charges for a Graph read of this route and query.
fn resource_units(route: &str, q: &HashMap<String, String>) -> u64 {
    let mut cost: i64 = match route {
        "members" => 3,
        "transitiveMembers" => 5,
        _ => 1,
    };
    if q.contains_key("$select") {
        cost -= 1;
    }
    if q.contains_key("$expand") {
        cost += 1;
    }
    if q.get("$top")
        .and_then(|t| t.parse::<u64>().ok())
        .is_some_and(|t| t < 20)
    {
        cost -= 1;
    }
    cost.max(1) as u64
}

/// One application's resource units: refilled evenly, `per_10s` every 10 seconds.
struct Bucket {
    per_10s: f64,
    available: f64,
    at: std::time::Instant,
}

impl Bucket {
    fn new(per_10s: u64) -> Bucket {
        Bucket {
            per_10s: per_10s as f64,
            available: per_10s as f64,
            at: std::time::Instant::now(),
        }
    }

    /// Takes `cost` units, or says how many seconds until they are there.
    fn take(&mut self, cost: u64) -> Result<(), u64> {
        let now = std::time::Instant::now();
        let rate = self.per_10s / 10.0;
        self.available =
            (self.available + now.duration_since(self.at).as_secs_f64() * rate).min(self.per_10s);
        self.at = now;
        if self.available >= cost as f64 {
            self.available -= cost as f64;
            Ok(())
        } else {
            Err(((cost as f64 - self.available) / rate).ceil().max(1.0) as u64)
        }
    }
}

#[derive(Default, Deserialize, Clone)]
#[serde(rename_all = "camelCase", default)]
struct Faults {
    /// Answer the next N Graph requests with 429.
    throttle: u32,
    /// Retry-After seconds sent with 429 (may be fractional).
    retry_after: f64,
    /// Answer N Graph requests with `failStatus` ...
    fail: u32,
    /// ... after letting this many through first.
    fail_after: u32,
    /// Status for injected failures (default 503).
    fail_status: u16,
    /// Delay every Graph request by this long.
    delay_ms: u64,
    /// Membership changes made through the admin API while set are not reported by
    /// delta queries: a missed delta, for testing that the controller's periodic full
    /// read corrects its cache. Full reads still see them.
    lose_delta_events: bool,
    /// Answer `/auditLogs/directoryAudits` with 403, as for an app without
    /// AuditLog.Read.All.
    deny_audit_logs: bool,
    /// Hold `/auditLogs/directoryAudits` requests this long (a slow audit log).
    audit_delay_ms: u64,
    /// Answer `servicePrincipals/.../ownedObjects` with 400 "Resource not found for the
    /// segment", as an endpoint that does not serve it would.
    no_owned_objects: bool,
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
        "date": trustsync::audit::now_rfc3339(), "request-id": request_id(), "client-request-id": request_id()}}});
    (status, Json(body)).into_response()
}

/// A token endpoint error in the identity platform's shape.
fn aad_error(status: StatusCode, error: &str, code: u32, description: &str) -> Response {
    let body = json!({
        "error": error,
        "error_description": format!("AADSTS{code}: {description} Trace ID: {} Correlation ID: {} Timestamp: {}", request_id(), request_id(), trustsync::audit::now_rfc3339()),
        "error_codes": [code],
        "timestamp": trustsync::audit::now_rfc3339(),
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

impl Server {
    /// The `@odata.type` and properties of a directory object, found through the index.
    fn odata_type(&self, id: &str) -> Option<(&'static str, Value)> {
        let t = &self.tenant;
        Some(match *self.index.get(id)? {
            (Kind::Group, i) => {
                let g = &t.groups[i];
                (
                    "#microsoft.graph.group",
                    json!({"id": g.id, "displayName": g.display_name}),
                )
            }
            (Kind::ServicePrincipal, i) => {
                let o = &t.service_principals[i];
                let owner = o.app_owner_organization_id.as_ref().unwrap_or(&t.tenant_id);
                let kind = o.service_principal_type.as_deref().unwrap_or("Application");
                (
                    "#microsoft.graph.servicePrincipal",
                    json!({"id": o.id, "displayName": o.display_name, "appId": o.app_id,
                           "appOwnerOrganizationId": owner, "servicePrincipalType": kind}),
                )
            }
            (Kind::User, i) => {
                let o = &t.users[i];
                (
                    "#microsoft.graph.user",
                    json!({"id": o.id, "displayName": o.display_name, "userPrincipalName": o.user_principal_name}),
                )
            }
            (Kind::Device, i) => {
                let o = &t.devices[i];
                (
                    "#microsoft.graph.device",
                    json!({"id": o.id, "displayName": o.display_name}),
                )
            }
        })
    }

    /// A directory object as Graph lists it, with `$select` applied.
    fn directory_object(&self, id: &str, select: &Option<BTreeSet<String>>) -> Value {
        let (kind, props) = self
            .odata_type(id)
            .unwrap_or(("#microsoft.graph.directoryObject", json!({"id": id})));
        let mut out = serde_json::Map::new();
        out.insert("@odata.type".into(), json!(kind));
        for (k, v) in props.as_object().into_iter().flatten() {
            let wanted = k == "id" || select.as_ref().is_none_or(|s| s.contains(k));
            if wanted && !v.is_null() {
                out.insert(k.clone(), v.clone());
            }
        }
        Value::Object(out)
    }

    /// `GET /servicePrincipals/{id}`: the object with `$select` applied, or 404.
    fn service_principal(&self, id: &str, select: &Option<BTreeSet<String>>) -> Response {
        match self.index.get(id) {
            Some((Kind::ServicePrincipal, _)) => {
                let mut v = self.directory_object(id, select);
                if let Some(o) = v.as_object_mut() {
                    o.remove("@odata.type");
                }
                Json(v).into_response()
            }
            _ => not_found(id),
        }
    }

    /// The position of a group in the tenant.
    fn group_at(&self, id: &str) -> Option<usize> {
        match self.index.get(id) {
            Some((Kind::Group, i)) => Some(*i),
            _ => None,
        }
    }

    /// Records a membership change as Entra's audit log does: activity, time, who, and the
    /// member and group as target resources.
    fn record_membership_audit(
        &mut self,
        activity: &str,
        group: &str,
        member: &str,
        initiated_by: Option<Value>,
    ) {
        let group_name = self
            .tenant
            .groups
            .iter()
            .find(|g| g.id == group)
            .map(|g| g.display_name.clone())
            .unwrap_or_default();
        let (member_type, member_name) = match self.odata_type(member) {
            Some((kind, props)) => (
                match kind {
                    "#microsoft.graph.servicePrincipal" => "ServicePrincipal",
                    "#microsoft.graph.user" => "User",
                    "#microsoft.graph.group" => "Group",
                    _ => "Device",
                },
                props["displayName"].clone(),
            ),
            None => ("Other", Value::Null),
        };
        let initiated_by = initiated_by.unwrap_or_else(|| {
            json!({"app": {"appId": null, "displayName": "trustsync-graph-server admin API", "servicePrincipalId": null, "servicePrincipalName": null}, "user": null})
        });
        self.audits.push(json!({
            "id": request_id(),
            "category": "GroupManagement",
            "correlationId": request_id(),
            "result": "success",
            "resultReason": "",
            "activityDisplayName": activity,
            "activityDateTime": trustsync::audit::now_rfc3339(),
            "loggedByService": "Core Directory",
            "operationType": if activity.starts_with("Add") { "Assign" } else { "Unassign" },
            "initiatedBy": initiated_by,
            "targetResources": [
                {"id": member, "displayName": member_name, "type": member_type, "userPrincipalName": null,
                 "modifiedProperties": [
                     {"displayName": "Group.ObjectID", "oldValue": null, "newValue": format!("\"{group}\"")},
                     {"displayName": "Group.DisplayName", "oldValue": null, "newValue": format!("\"{group_name}\"")}
                 ]},
                {"id": group, "displayName": group_name, "type": "Group", "userPrincipalName": null, "modifiedProperties": []}
            ],
            "additionalDetails": []
        }));
    }

    /// `GET /auditLogs/directoryAudits` with the `$filter` clauses Graph documents for it
    /// that trustsync uses, joined by `and`: `activityDateTime ge|le T`,
    /// `activityDisplayName eq '...'`, `targetResources/any(t:t/id eq '...')`.
    fn directory_audits(
        &mut self,
        q: &HashMap<String, String>,
        base: &str,
        top: usize,
    ) -> Response {
        if self.faults.deny_audit_logs {
            return graph_error(
                StatusCode::FORBIDDEN,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation.",
            );
        }
        let clauses: Vec<String> = match q.get("$filter") {
            None => Vec::new(),
            Some(f) => f.split(" and ").map(|c| c.trim().to_string()).collect(),
        };
        let mut tests: Vec<AuditTest> = Vec::new();
        for c in &clauses {
            let quoted = |rest: &str| {
                rest.trim()
                    .strip_prefix('\'')
                    .and_then(|r| r.strip_suffix('\''))
                    .map(|v| v.replace("''", "'"))
            };
            if let Some(t) = c.strip_prefix("activityDateTime ge ") {
                let t = t.trim().to_string();
                tests.push(Box::new(move |a| {
                    a["activityDateTime"]
                        .as_str()
                        .is_some_and(|x| x >= t.as_str())
                }));
            } else if let Some(t) = c.strip_prefix("activityDateTime le ") {
                let t = t.trim().to_string();
                tests.push(Box::new(move |a| {
                    a["activityDateTime"]
                        .as_str()
                        .is_some_and(|x| x <= t.as_str())
                }));
            } else if let Some(v) = c.strip_prefix("activityDisplayName eq ").and_then(quoted) {
                tests.push(Box::new(move |a| a["activityDisplayName"] == json!(v)));
            } else if let Some(v) = c
                .strip_prefix("targetResources/any(")
                .and_then(|r| r.strip_suffix(')'))
                .and_then(|r| r.split_once(':'))
                .and_then(|(var, body)| body.trim().strip_prefix(&format!("{}/id eq ", var.trim())))
                .and_then(quoted)
            {
                tests.push(Box::new(move |a| {
                    a["targetResources"]
                        .as_array()
                        .is_some_and(|ts| ts.iter().any(|t| t["id"] == json!(v)))
                }));
            } else {
                return graph_error(
                    StatusCode::BAD_REQUEST,
                    "Request_UnsupportedQuery",
                    &format!("Unsupported Query: {c}"),
                );
            }
        }
        let items: Vec<Value> = self
            .audits
            .iter()
            .filter(|a| tests.iter().all(|t| t(a)))
            .cloned()
            .collect();
        self.paged(items, top, q, base, "/auditLogs/directoryAudits")
    }

    /// `GET /groups`, all or `$filter=displayName eq '...'` (case-insensitive, as in Entra).
    fn list_groups(
        &mut self,
        q: &HashMap<String, String>,
        base: &str,
        select: &Option<BTreeSet<String>>,
        top: usize,
    ) -> Response {
        let groups: Vec<&trustsync::sources::directory::TenantGroup> = match q.get("$filter") {
            None => self.tenant.groups.iter().collect(),
            Some(f) => match parse_display_name_filter(f) {
                Some(name) => self
                    .tenant
                    .groups
                    .iter()
                    // Graph's `eq` on displayName is case-insensitive.
                    .filter(|g| trustsync::sources::directory::same_name(&g.display_name, &name))
                    .collect(),
                None => {
                    return graph_error(
                        StatusCode::BAD_REQUEST,
                        "Request_UnsupportedQuery",
                        &format!("Unsupported Query: {f}"),
                    )
                }
            },
        };
        let items: Vec<Value> = groups
            .iter()
            .map(|g| self.directory_object(&g.id, select))
            .collect();
        self.paged(items, top, q, base, "/groups")
    }

    /// `GET /groups/delta`: a first round, a round since a token, or `latest`.
    fn delta(&mut self, q: &HashMap<String, String>, base: &str, top: usize) -> Response {
        let since = match q.get("$deltatoken").map(String::as_str) {
            None => None,
            Some("latest") => {
                let upto = self.seq;
                return Json(
                    json!({"@odata.context": format!("{base}/$metadata#groups"), "value": [],
                    "@odata.deltaLink": format!("{base}/groups/delta?$deltatoken=d{upto}")}),
                )
                .into_response();
            }
            Some(t) => match t.strip_prefix('d').and_then(|n| n.parse::<u64>().ok()) {
                Some(n) if n >= self.expired_below && n <= self.seq => Some(n),
                _ => {
                    return graph_error(
                        StatusCode::GONE,
                        "syncStateNotFound",
                        "The sync state generation is not found. Please resync.",
                    )
                }
            },
        };
        self.start_delta(base, since, top)
    }

    /// `GET /groups/{id}`.
    fn group(&mut self, id: &str, base: &str, select: &Option<BTreeSet<String>>) -> Response {
        if self.group_at(id).is_none() {
            return not_found(id);
        }
        let mut obj = self.directory_object(id, select);
        obj["@odata.context"] = json!(format!("{base}/$metadata#groups/$entity"));
        Json(obj).into_response()
    }

    /// `GET /groups/{id}/members` or `/transitiveMembers`, paged.
    fn members(
        &mut self,
        id: &str,
        kind: &str,
        base: &str,
        select: &Option<BTreeSet<String>>,
        top: usize,
        q: &HashMap<String, String>,
    ) -> Response {
        if self.group_at(id).is_none() {
            return not_found(id);
        }
        let ids = if kind == "members" {
            self.direct_members(id)
        } else {
            self.transitive_members(id)
        };
        let items: Vec<Value> = ids
            .iter()
            .map(|m| self.directory_object(m, select))
            .collect();
        self.paged(items, top, q, base, &format!("/groups/{id}/{kind}"))
    }

    fn top(&self, q: &HashMap<String, String>) -> Result<usize, Response> {
        match q.get("$top") {
            None => Ok(100.min(self.max_page)),
            Some(t) => match t.parse::<usize>() {
                Ok(n) if (1..=999).contains(&n) => Ok(n.min(self.max_page)),
                _ => Err(graph_error(
                    StatusCode::BAD_REQUEST,
                    "Request_BadRequest",
                    &format!(
                        "Invalid page size specified: '{t}'. Must be between 1 and 999 inclusive."
                    ),
                )),
            },
        }
    }

    fn pager_id(&mut self) -> String {
        self.next_pager += 1;
        format!("p{}", self.next_pager)
    }

    fn direct_members(&self, group: &str) -> Vec<String> {
        self.group_at(group)
            .map(|i| self.tenant.groups[i].members.clone())
            .unwrap_or_default()
    }

    fn transitive_members(&self, group: &str) -> Vec<String> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        let mut queue = vec![group.to_string()];
        let mut visited = BTreeSet::from([group.to_string()]);
        while let Some(g) = queue.pop() {
            for m in self.direct_members(&g) {
                if seen.insert(m.clone()) {
                    out.push(m.clone());
                }
                if self.group_at(&m).is_some() && visited.insert(m.clone()) {
                    queue.push(m);
                }
            }
        }
        out
    }

    /// The first page of a list, kept as a snapshot that its nextLinks page through.
    fn paged(
        &mut self,
        items: Vec<Value>,
        top: usize,
        q: &HashMap<String, String>,
        base: &str,
        path: &str,
    ) -> Response {
        let id = self.pager_id();
        let query = carried(q);
        self.pagers
            .insert(id.clone(), Pager::Objects { items, top, query });
        self.page_objects(base, path, id, 0)
    }

    /// One page of a snapshot list, with a nextLink when more follow.
    fn page_objects(&mut self, base: &str, path: &str, pager: String, offset: usize) -> Response {
        let Some(Pager::Objects { items, top, query }) = self.pagers.get(&pager) else {
            return graph_error(StatusCode::BAD_REQUEST, "Request_BadRequest", "The specified page token value has expired and can no longer be included in your request.");
        };
        let end = (offset + top).min(items.len());
        let page: Vec<Value> = items[offset..end].to_vec();
        let mut body =
            json!({"@odata.context": format!("{base}/$metadata#directoryObjects"), "value": page});
        if end < items.len() {
            body["@odata.nextLink"] =
                json!(format!("{base}{path}?{query}$skiptoken={pager}.{end}"));
        } else {
            self.pagers.remove(&pager);
        }
        Json(body).into_response()
    }

    fn delta_page(&mut self, base: &str, pager: String, offset: usize) -> Response {
        let Some(Pager::Delta { items, top, upto }) = self.pagers.get(&pager) else {
            return graph_error(
                StatusCode::GONE,
                "syncStateNotFound",
                "The sync state generation is not found. Please resync.",
            );
        };
        let (top, upto) = (*top, *upto);
        let end = (offset + top).min(items.len());
        // Consecutive items of one group become one group object with a partial members@delta.
        let mut value: Vec<Value> = Vec::new();
        for item in &items[offset..end] {
            let same = value.last().is_some_and(|v| v["id"] == json!(item.group));
            if !same {
                let mut g = json!({"id": item.group, "members@delta": []});
                if let Some(name) = &item.display_name {
                    g["displayName"] = json!(name);
                }
                value.push(g);
            }
            if let Some(m) = &item.member {
                value.last_mut().expect("pushed")["members@delta"]
                    .as_array_mut()
                    .expect("array")
                    .push(m.clone());
            }
        }
        let mut body = json!({"@odata.context": format!("{base}/$metadata#groups(displayName,members)"), "value": value});
        if end < items.len() {
            body["@odata.nextLink"] =
                json!(format!("{base}/groups/delta?$skiptoken={pager}.{end}"));
        } else {
            self.pagers.remove(&pager);
            body["@odata.deltaLink"] = json!(format!("{base}/groups/delta?$deltatoken=d{upto}"));
        }
        Json(body).into_response()
    }

    fn start_delta(&mut self, base: &str, since: Option<u64>, top: usize) -> Response {
        let upto = self.seq;
        let mut items = Vec::new();
        match since {
            None => {
                for g in &self.tenant.groups {
                    // A group without members still appears, once, with its name.
                    if g.members.is_empty() {
                        items.push(DeltaItem {
                            group: g.id.clone(),
                            display_name: Some(g.display_name.clone()),
                            member: None,
                        });
                    }
                    for m in &g.members {
                        let kind = self
                            .odata_type(m)
                            .map_or("#microsoft.graph.directoryObject", |k| k.0);
                        items.push(DeltaItem {
                            group: g.id.clone(),
                            display_name: Some(g.display_name.clone()),
                            member: Some(json!({"@odata.type": kind, "id": m})),
                        });
                    }
                }
                items.sort_by(|a, b| a.group.cmp(&b.group));
            }
            Some(from) => {
                // The net change per (group, member) since the token.
                let mut last: BTreeMap<(String, String), bool> = BTreeMap::new();
                for e in self.events.iter().filter(|e| e.seq > from) {
                    last.insert((e.group.clone(), e.member.clone()), e.removed);
                }
                for ((group, member), removed) in last {
                    let kind = self
                        .odata_type(&member)
                        .map_or("#microsoft.graph.directoryObject", |k| k.0);
                    let mut m = json!({"@odata.type": kind, "id": member});
                    if removed {
                        m["@removed"] = json!({"reason": "deleted"});
                    }
                    items.push(DeltaItem {
                        group,
                        display_name: None,
                        member: Some(m),
                    });
                }
            }
        }
        let id = self.pager_id();
        self.pagers
            .insert(id.clone(), Pager::Delta { items, top, upto });
        self.delta_page(base, id, 0)
    }
}

/// Applies injected faults and the resource-unit bucket, and counts the request. `Some` is
/// the response to send instead; `None` carries on, the units charged.
async fn gate(
    state: &Shared,
    route: &str,
    client: &str,
    q: &HashMap<String, String>,
) -> Result<u64, Response> {
    let delay = {
        let mut s = state.lock().expect("state");
        *s.stats.entry(route.to_string()).or_default() += 1;
        if route == "directoryAudits" {
            s.faults.delay_ms + s.faults.audit_delay_ms
        } else {
            s.faults.delay_ms
        }
    };
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let mut s = state.lock().expect("state");
    if s.faults.throttle > 0 {
        s.faults.throttle -= 1;
        let retry = if s.faults.retry_after > 0.0 {
            s.faults.retry_after
        } else {
            1.0
        };
        let mut resp = graph_error(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            "Too many requests, please try again later.",
        );
        resp.headers_mut()
            .insert("Retry-After", retry.to_string().parse().expect("header"));
        return Err(resp);
    }
    if s.faults.fail > 0 && s.faults.fail_after > 0 {
        s.faults.fail_after -= 1;
    } else if s.faults.fail > 0 {
        s.faults.fail -= 1;
        let status = StatusCode::from_u16(if s.faults.fail_status == 0 {
            503
        } else {
            s.faults.fail_status
        })
        .unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        return Err(graph_error(
            status,
            "serviceNotAvailable",
            "The service is temporarily unavailable.",
        ));
    }
    let cost = resource_units(route, q);
    let limit = s.unit_limit;
    if limit > 0 {
        let tenant = s.tenant.tenant_id.clone();
        let bucket = s
            .buckets
            .entry(client.to_string())
            .or_insert_with(|| Bucket::new(limit));
        if let Err(wait) = bucket.take(cost) {
            let mut resp = graph_error(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                "Too many requests, please try again later.",
            );
            let h = resp.headers_mut();
            h.insert("Retry-After", wait.to_string().parse().expect("header"));
            h.insert(
                "x-ms-throttle-scope",
                format!("Tenant_Application/ReadWrite/{client}/{tenant}")
                    .parse()
                    .expect("header"),
            );
            h.insert(
                "x-ms-throttle-information",
                "ResourceUnitLimitExceeded".parse().expect("header"),
            );
            *s.stats.entry("throttled".into()).or_default() += 1;
            return Err(resp);
        }
    }
    s.units += cost;
    Ok(cost)
}

/// The client id the bearer token was issued to.
fn authorized(state: &Shared, headers: &HeaderMap) -> Result<String, Response> {
    let token = headers
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim);
    let s = state.lock().expect("state");
    match token {
        None => Err(graph_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "Access token is empty.",
        )),
        Some(t) => match s.tokens.get(t) {
            Some((exp, client)) if *exp > now_secs() => Ok(client.clone()),
            Some(_) => Err(graph_error(
                StatusCode::UNAUTHORIZED,
                "InvalidAuthenticationToken",
                "Lifetime validation failed, the token is expired.",
            )),
            None => Err(graph_error(
                StatusCode::UNAUTHORIZED,
                "InvalidAuthenticationToken",
                "IDX14100: JWT is not well formed.",
            )),
        },
    }
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
    state.lock().expect("state").requests += 1;
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
    state.lock().expect("state").requests += 1;
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
    let route = match segments.as_slice() {
        ["groups"] => "groups",
        ["groups", "$count"] => "count",
        ["groups", d] if is_delta(d) => "delta",
        ["groups", _] => "group",
        ["groups", _, "members"] => "members",
        ["groups", _, "transitiveMembers"] => "transitiveMembers",
        ["auditLogs", "directoryAudits"] => "directoryAudits",
        ["servicePrincipals", _] => "servicePrincipal",
        _ => "other",
    };
    let q = parse_query(raw);
    let units = match gate(state, route, client, &q).await {
        Ok(units) => units,
        Err(resp) => return resp,
    };
    let mut resp = if route == "count" {
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
    } else {
        read(state, rest, route, &segments, &q, base)
    };
    resp.headers_mut().insert(
        "x-ms-resource-unit",
        units.to_string().parse().expect("header"),
    );
    resp
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

/// Most requests one JSON batch may hold.
const BATCH_LIMIT: usize = 20;

#[derive(Deserialize)]
struct BatchBody {
    requests: Vec<BatchRequest>,
}

#[derive(Deserialize)]
struct BatchRequest {
    id: String,
    method: String,
    url: String,
    #[serde(default)]
    headers: HashMap<String, String>,
    #[serde(default, rename = "dependsOn")]
    depends_on: Vec<String>,
}

/// `POST /v1.0/$batch`: each request answered on its own (status, headers, body), in the
/// order given; each is charged and may be throttled like a request of its own. The batch
/// is one HTTP request. Only GET is served inside (the server is read-only for Graph), and
/// `dependsOn` must name an earlier request (they run in order anyway).
async fn graph_batch(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let client = match authorized(&state, &headers) {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    {
        let mut s = state.lock().expect("state");
        s.requests += 1;
        *s.stats.entry("batch".into()).or_default() += 1;
    }
    let Ok(batch) = serde_json::from_slice::<BatchBody>(&body) else {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Invalid batch payload format.",
        );
    };
    if batch.requests.is_empty() || batch.requests.len() > BATCH_LIMIT {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!(
                "A batch holds 1 to {BATCH_LIMIT} requests; this one has {}.",
                batch.requests.len()
            ),
        );
    }
    let mut seen = BTreeSet::new();
    for r in &batch.requests {
        if r.depends_on.iter().any(|d| !seen.contains(d)) || !seen.insert(r.id.clone()) {
            return graph_error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!("Request '{}': its id is not unique, or it depends on a request that is not before it.", r.id),
            );
        }
    }
    let base = base_url(&headers);
    let mut responses = Vec::new();
    for r in batch.requests {
        let resp = if r.method.eq_ignore_ascii_case("GET") {
            let url = r.url.trim_start_matches('/');
            let url = url.strip_prefix("v1.0/").unwrap_or(url);
            let (path, query) = match url.split_once('?') {
                Some((p, q)) => (p.to_string(), Some(q.to_string())),
                None => (url.to_string(), None),
            };
            let eventual = r.headers.iter().any(|(k, v)| {
                k.eq_ignore_ascii_case("consistencylevel") && v.eq_ignore_ascii_case("eventual")
            });
            serve_get(&state, &client, &path, &query, &base, eventual).await
        } else {
            graph_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "Request_BadRequest",
                &format!("{} is not served by this server.", r.method),
            )
        };
        let status = resp.status().as_u16();
        let mut head = serde_json::Map::new();
        for (k, v) in resp.headers() {
            // Spelled as Graph's batch answers spell them.
            let name = match k.as_str() {
                "retry-after" => "Retry-After",
                "content-type" => "Content-Type",
                other => other,
            };
            if let Ok(v) = v.to_str() {
                head.insert(name.to_string(), json!(v));
            }
        }
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap_or_default();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        responses.push(json!({"id": r.id, "status": status, "headers": head, "body": body}));
    }
    Json(json!({"responses": responses})).into_response()
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

async fn token(State(state): State<Shared>, Path(tenant): Path<String>, body: Bytes) -> Response {
    {
        let mut s = state.lock().expect("state");
        *s.stats.entry("token".into()).or_default() += 1;
    }
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let client_id = form.get("client_id").cloned().unwrap_or_default();
    // The request's own checks, then the client: a registered client (secret,
    // certificate, or its one federated token), or an application with federated
    // identity credentials, whose assertion is checked against its issuer's keys.
    type Checked = (tokens::ClientAuth, Option<Vec<applications::Credential>>);
    let checked: Result<Checked, Response> = {
        let s = state.lock().expect("state");
        if tenant != s.tenant.tenant_id {
            Err(aad_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                90002,
                &format!("Tenant '{tenant}' not found."),
            ))
        } else if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
            Err(aad_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                70003,
                "The app requested an unsupported grant type.",
            ))
        } else if !form
            .get("scope")
            .is_some_and(|sc| sc.ends_with("/.default"))
        {
            Err(aad_error(StatusCode::BAD_REQUEST, "invalid_scope", 1002012, "The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier."))
        } else if let Some(client) = s.tenant.clients.iter().find(|c| c.client_id == client_id) {
            let endpoint_aud = form.get("_aud").cloned();
            let verdict = match (form.get("client_secret"), form.get("client_assertion"), form.get("client_assertion_type")) {
                (Some(secret), None, _) => match &client.secret {
                    Some(want) if want == secret => Ok(()),
                    _ => Err((StatusCode::UNAUTHORIZED, "invalid_client", 7000215, "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.")),
                },
                (None, Some(assertion), Some(t)) if t == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" => {
                    check_assertion(client, assertion, &tenant, endpoint_aud)
                }
                _ => Err((StatusCode::UNAUTHORIZED, "invalid_client", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")),
            };
            let auth = if form.contains_key("client_secret") {
                tokens::ClientAuth::Secret
            } else {
                tokens::ClientAuth::Certificate
            };
            verdict
                .map(|()| (auth, None))
                .map_err(|(status, error, code, msg)| aad_error(status, error, code, msg))
        } else if let Some(credentials) = s.apps.credentials_of(&client_id) {
            Ok((tokens::ClientAuth::Certificate, Some(credentials.to_vec())))
        } else {
            Err(aad_error(
                StatusCode::BAD_REQUEST,
                "unauthorized_client",
                700016,
                &format!(
                    "Application with identifier '{client_id}' was not found in the directory."
                ),
            ))
        }
    };
    let resource = tokens::resource_of(form.get("scope").map_or("", String::as_str)).to_string();
    match checked {
        Err(resp) => resp,
        Ok((auth, None)) => issue_token(&state, client_id, &resource, auth),
        Ok((auth, Some(credentials))) => {
            let assertion = match (form.get("client_assertion"), form.get("client_assertion_type")) {
                (Some(a), Some(t)) if t == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" => a.clone(),
                _ => return aad_error(StatusCode::UNAUTHORIZED, "invalid_client", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'."),
            };
            match applications::check_federated(&credentials, &assertion).await {
                Ok(()) => issue_token(&state, client_id, &resource, auth),
                Err((status, error, code, msg)) => aad_error(status, error, code, &msg),
            }
        }
    }
}

/// An access token for `client_id` to `resource`: for Microsoft Graph an opaque one that
/// this server remembers, for an application of the tenant a signed JWT as Entra issues it
/// (see `tokens.rs`).
fn issue_token(
    state: &Shared,
    client_id: String,
    resource: &str,
    auth: tokens::ClientAuth,
) -> Response {
    if !tokens::is_graph(resource) {
        let s = state.lock().expect("state");
        let uti = request_id().replace('-', "");
        return match tokens::claims(&s.tenant, &client_id, resource, auth, now_secs(), &uti) {
            Ok(claims) => tokens::response(tokens::sign(&claims)),
            Err(resp) => resp,
        };
    }
    let token = format!(
        "eyJ0eXAiOiJKV1QiLCJsb2NhbCI6dHJ1ZX0.{}.{}",
        request_id().replace('-', ""),
        request_id().replace('-', "")
    );
    state
        .lock()
        .expect("state")
        .tokens
        .insert(token.clone(), (now_secs() + 3599, client_id));
    Json(json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token})).into_response()
}

type Verdict = Result<(), (StatusCode, &'static str, u32, &'static str)>;

/// How a client assertion is checked: signed with `alg`, within its lifetime, with `exp`,
/// `iss` and `sub`; the audience is the caller's to check.
fn assertion_validation(alg: jsonwebtoken::Algorithm) -> jsonwebtoken::Validation {
    let mut validation = jsonwebtoken::Validation::new(alg);
    validation.validate_aud = false;
    validation.required_spec_claims = ["exp", "iss", "sub"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    validation
}

fn check_assertion(
    client: &TenantClient,
    assertion: &str,
    _tenant: &str,
    _aud: Option<String>,
) -> Verdict {
    let bad = |code, msg| Err((StatusCode::UNAUTHORIZED, "invalid_client", code, msg));
    let header = match jsonwebtoken::decode_header(assertion) {
        Ok(h) => h,
        Err(_) => return bad(50027, "JWT token is invalid or malformed."),
    };
    let mut validation = assertion_validation(header.alg);
    if let Some(pem) = &client.public_key_pem {
        if header.alg != jsonwebtoken::Algorithm::RS256
            && header.alg != jsonwebtoken::Algorithm::PS256
        {
            return bad(
                5002738,
                "The client assertion must be signed with RS256 or PS256.",
            );
        }
        let Ok(key) = jsonwebtoken::DecodingKey::from_rsa_pem(pem.as_bytes()) else {
            return bad(700027, "Client assertion failed signature validation.");
        };
        match jsonwebtoken::decode::<Value>(assertion, &key, &validation) {
            Ok(data)
                if data.claims["iss"] == json!(client.client_id)
                    && data.claims["sub"] == json!(client.client_id) =>
            {
                Ok(())
            }
            Ok(_) => bad(
                700023,
                "Client assertion audience or issuer claim does not match the client.",
            ),
            Err(_) => bad(700027, "Client assertion failed signature validation."),
        }
    } else if let Some(fed) = &client.federated {
        validation.insecure_disable_signature_validation();
        let key = jsonwebtoken::DecodingKey::from_secret(&[]);
        match jsonwebtoken::decode::<Value>(assertion, &key, &validation) {
            Ok(data)
                if data.claims["iss"] == json!(fed.issuer)
                    && data.claims["sub"] == json!(fed.subject) =>
            {
                Ok(())
            }
            Ok(_) => bad(
                700213,
                "No matching federated identity record found for presented assertion subject.",
            ),
            Err(_) => bad(
                700024,
                "Client assertion is not within its valid time range.",
            ),
        }
    } else {
        bad(700027, "Client assertion contains an invalid signature.")
    }
}

async fn openid_configuration_v1(
    state: State<Shared>,
    tenant: Path<String>,
    headers: HeaderMap,
) -> Response {
    openid_configuration(state, tenant, headers, false)
}

async fn openid_configuration_v2(
    state: State<Shared>,
    tenant: Path<String>,
    headers: HeaderMap,
) -> Response {
    openid_configuration(state, tenant, headers, true)
}

/// The discovery document of the v1 or v2 issuer.
fn openid_configuration(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    v2: bool,
) -> Response {
    let s = state.lock().expect("state");
    let base = base_url(&headers);
    tokens::discovery(&s.tenant, &tenant, v2, base.trim_end_matches("/v1.0"))
}

async fn signing_keys() -> Response {
    tokens::keys()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MemberRef {
    id: String,
    /// Who made the change, as a directoryAudit's `initiatedBy` (`{"user": {...}}` or
    /// `{"app": {...}}`); the admin API itself when absent.
    #[serde(default)]
    initiated_by: Option<Value>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RemoveBody {
    #[serde(default)]
    initiated_by: Option<Value>,
}

/// Every subscription, whoever made it.
async fn admin_subscriptions(State(state): State<Shared>) -> Response {
    let subs = state.lock().expect("state").subscriptions.clone();
    let all = subs.lock().expect("subscriptions").all();
    Json(all).into_response()
}

#[derive(Deserialize)]
struct LifecycleBody {
    event: String,
}

/// Sends a lifecycle notification (`reauthorizationRequired`, `subscriptionRemoved`,
/// `missed`) for a subscription to its lifecycle URL.
async fn admin_lifecycle(
    State(state): State<Shared>,
    Path(id): Path<String>,
    Json(b): Json<LifecycleBody>,
) -> Response {
    let (subs, tenant) = {
        let s = state.lock().expect("state");
        (s.subscriptions.clone(), s.tenant.tenant_id.clone())
    };
    let note = subs
        .lock()
        .expect("subscriptions")
        .lifecycle(&id, &b.event, &tenant);
    match note {
        Some(n) => {
            subscriptions::post_all(vec![n]);
            StatusCode::ACCEPTED.into_response()
        }
        None => not_found(&id),
    }
}

async fn admin_add_member(
    State(state): State<Shared>,
    Path(group): Path<String>,
    Json(m): Json<MemberRef>,
) -> Response {
    let mut s = state.lock().expect("state");
    if s.odata_type(&m.id).is_none() {
        return not_found(&m.id);
    }
    let Some(g) = s.tenant.groups.iter_mut().find(|g| g.id == group) else {
        return not_found(&group);
    };
    if g.members.contains(&m.id) {
        return graph_error(StatusCode::BAD_REQUEST, "Request_BadRequest", "One or more added object references already exist for the following modified properties: 'members'.");
    }
    g.members.push(m.id.clone());
    s.record_membership_audit("Add member to group", &group, &m.id, m.initiated_by);
    s.seq += 1;
    let seq = s.seq;
    notify_group_changed(&s, &group);
    if !s.faults.lose_delta_events {
        s.events.push(Event {
            seq,
            group,
            member: m.id,
            removed: false,
        });
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn admin_remove_member(
    State(state): State<Shared>,
    Path((group, member)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let body: RemoveBody = if body.is_empty() {
        RemoveBody::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(b) => b,
            Err(e) => return graph_error(StatusCode::BAD_REQUEST, "BadRequest", &e.to_string()),
        }
    };
    let mut s = state.lock().expect("state");
    let Some(g) = s.tenant.groups.iter_mut().find(|g| g.id == group) else {
        return not_found(&group);
    };
    let before = g.members.len();
    g.members.retain(|m| *m != member);
    if g.members.len() == before {
        return not_found(&member);
    }
    s.record_membership_audit(
        "Remove member from group",
        &group,
        &member,
        body.initiated_by,
    );
    s.seq += 1;
    let seq = s.seq;
    notify_group_changed(&s, &group);
    if !s.faults.lose_delta_events {
        s.events.push(Event {
            seq,
            group,
            member,
            removed: true,
        });
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn admin_faults(State(state): State<Shared>, Json(f): Json<Faults>) -> Response {
    state.lock().expect("state").faults = f;
    StatusCode::NO_CONTENT.into_response()
}

async fn admin_expire(State(state): State<Shared>) -> Response {
    let mut s = state.lock().expect("state");
    s.expired_below = s.seq + 1;
    s.pagers.clear();
    StatusCode::NO_CONTENT.into_response()
}

async fn admin_stats(State(state): State<Shared>) -> Response {
    let s = state.lock().expect("state");
    Json(json!({"requests": s.stats, "graphRequests": s.requests, "resourceUnits": s.units}))
        .into_response()
}

async fn admin_stats_reset(State(state): State<Shared>) -> Response {
    let mut s = state.lock().expect("state");
    s.stats.clear();
    s.requests = 0;
    s.units = 0;
    StatusCode::NO_CONTENT.into_response()
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
    let tenant_users = tenant.users.len();
    let apps = applications::Apps::from_tenant(&tenant);
    let state: Shared = Arc::new(Mutex::new(Server {
        index: index(&tenant),
        tenant,
        max_page: args.max_page_size.clamp(1, 999),
        seq: 0,
        events: Vec::new(),
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
    }));
    let app = Router::new()
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
        .with_state(state);
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
