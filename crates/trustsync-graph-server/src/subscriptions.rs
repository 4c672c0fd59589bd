//! Change notifications (webhooks), as Microsoft Graph documents them for groups
//! ("Set up notifications for changes in resource data", "subscription resource type",
//! "Reduce missing subscriptions and change notifications"):
//!
//! - `POST /subscriptions` validates each endpoint first: a POST to it with a
//!   `validationToken` query parameter, answered within 10 s with 200, `text/plain` and the
//!   token itself; then 201 with the subscription. Groups allow an expiration up to 41,760
//!   minutes ahead. `PATCH /subscriptions/{id}` renews, `DELETE` removes,
//!   `POST /subscriptions/{id}/reauthorize` reauthorizes, `GET /subscriptions` lists the
//!   caller's own.
//! - A membership change (made through the admin API) posts a `changeNotificationCollection`
//!   to every live subscription on `groups` whose `changeType` has `updated`: the group as
//!   `resource` (`Groups/{id}`) and `resourceData`, with the subscription's `clientState`.
//! - `POST /admin/subscriptions/{id}/lifecycle` sends a lifecycle notification
//!   (`reauthorizationRequired`, `subscriptionRemoved`, `missed`) to the lifecycle URL; a
//!   removed subscription is gone.
//!
//! Graph requires `https` notification URLs; this server also takes `http` on a loopback
//! host, for the tests and the demo.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The longest a subscription to groups may live, in minutes.
pub const MAX_MINUTES: i64 = 41_760;

/// One subscription.
#[derive(Debug, Clone)]
pub struct Subscription {
    pub id: String,
    pub client: String,
    pub resource: String,
    pub change_type: String,
    pub notification_url: String,
    pub lifecycle_url: Option<String>,
    pub client_state: Option<String>,
    pub expiration: OffsetDateTime,
}

impl Subscription {
    fn json(&self) -> Value {
        json!({
            "id": self.id,
            "resource": self.resource,
            "applicationId": self.client,
            "changeType": self.change_type,
            "clientState": self.client_state,
            "notificationUrl": self.notification_url,
            "lifecycleNotificationUrl": self.lifecycle_url,
            "expirationDateTime": self.expiration.format(&Rfc3339).unwrap_or_default(),
            "creatorId": self.client,
            "latestSupportedTlsVersion": "v1_2",
        })
    }

    /// Whether a change to a group is for this subscription.
    fn wants_group_updates(&self) -> bool {
        self.resource
            .trim_start_matches('/')
            .eq_ignore_ascii_case("groups")
            && self.change_type.split(',').any(|c| c.trim() == "updated")
            && self.expiration > OffsetDateTime::now_utc()
    }
}

/// Every subscription, by id.
#[derive(Debug, Default)]
pub struct Subscriptions {
    subs: BTreeMap<String, Subscription>,
    next: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Create {
    change_type: String,
    notification_url: String,
    resource: String,
    expiration_date_time: String,
    #[serde(default)]
    client_state: Option<String>,
    #[serde(default)]
    lifecycle_notification_url: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Update {
    #[serde(default)]
    expiration_date_time: Option<String>,
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({"error": {"code": code, "message": message}});
    (status, Json(body)).into_response()
}

/// An expiration the service takes: RFC 3339, in the future, within [`MAX_MINUTES`].
fn expiration(value: &str) -> Result<OffsetDateTime, Response> {
    let at = OffsetDateTime::parse(value, &Rfc3339).map_err(|_| {
        error(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "expirationDateTime is not a valid DateTimeOffset",
        )
    })?;
    let now = OffsetDateTime::now_utc();
    if at <= now {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "Subscription expiration can only be in the future.",
        ));
    }
    if at > now + time::Duration::minutes(MAX_MINUTES) {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            &format!("Subscription expiration can only be {MAX_MINUTES} minutes in the future."),
        ));
    }
    Ok(at)
}

/// `https`, or `http` on a loopback host (this server only).
fn acceptable_url(url: &str) -> bool {
    let Ok(u) = url::Url::parse(url) else {
        return false;
    };
    match u.scheme() {
        "https" => true,
        "http" => matches!(u.host_str(), Some("127.0.0.1" | "localhost" | "[::1]")),
        _ => false,
    }
}

/// The endpoint validation: POST `url?validationToken=...`, the token echoed within 10 s.
async fn validate(url: &str) -> Result<(), String> {
    let token = format!(
        "Validation: Testing client application reachability for subscription Request-Id: {}",
        uuid_like()
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let resp = client
        .post(url)
        .query(&[("validationToken", token.as_str())])
        .header("content-type", "text/plain; charset=utf-8")
        .send()
        .await
        .map_err(|e| format!("{url} could not be reached: {e}"))?;
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    if status == reqwest::StatusCode::OK && body == token {
        Ok(())
    } else {
        Err(format!(
            "Subscription validation request failed. Response must exactly match validationToken query parameter. ({url} answered {status})"
        ))
    }
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("5b1c0000-0000-4000-8000-{n:012x}")
}

/// The part of a `/v1.0/{rest}` path this module serves.
pub fn is_route(rest: &str) -> bool {
    rest == "subscriptions" || rest.starts_with("subscriptions/")
}

/// What a request to a subscriptions route needs from the server.
pub struct Request<'a> {
    pub client: &'a str,
    pub method: &'a Method,
    pub rest: &'a str,
    pub body: &'a [u8],
}

/// What to do once the state's lock is released: validate endpoints before a create.
pub enum Pending {
    Done(Response),
    Create(Subscription),
}

impl Subscriptions {
    /// Serves a request under the lock; a create comes back to be validated without it.
    pub fn serve(&mut self, r: &Request) -> Pending {
        let id = r.rest.strip_prefix("subscriptions/");
        let (id, action) = match id {
            Some(rest) => match rest.split_once('/') {
                Some((id, action)) => (Some(id), Some(action)),
                None => (Some(rest), None),
            },
            None => (None, None),
        };
        let own = |s: &&Subscription| s.client == r.client;
        Pending::Done(match (r.method.as_str(), id, action) {
            ("GET", None, None) => {
                let value: Vec<Value> = self
                    .subs
                    .values()
                    .filter(own)
                    .map(Subscription::json)
                    .collect();
                Json(json!({"value": value})).into_response()
            }
            ("POST", None, None) => return self.create_request(r),
            (method, Some(id), action) => self.serve_one(r, method, id, action),
            _ => error(
                StatusCode::METHOD_NOT_ALLOWED,
                "Request_BadRequest",
                "not supported",
            ),
        })
    }

    /// `POST /subscriptions`: the new subscription, checked, comes back to be validated
    /// without the lock; or why not.
    fn create_request(&mut self, r: &Request) -> Pending {
        let c: Create = match serde_json::from_slice(r.body) {
            Ok(c) => c,
            Err(e) => {
                return Pending::Done(error(
                    StatusCode::BAD_REQUEST,
                    "InvalidRequest",
                    &e.to_string(),
                ))
            }
        };
        if !c
            .resource
            .trim_start_matches('/')
            .eq_ignore_ascii_case("groups")
        {
            return Pending::Done(error(
                StatusCode::BAD_REQUEST,
                "InvalidRequest",
                &format!(
                    "resource '{}' is not supported by this server (groups only)",
                    c.resource
                ),
            ));
        }
        for url in std::iter::once(&c.notification_url).chain(c.lifecycle_notification_url.iter()) {
            if !acceptable_url(url) {
                return Pending::Done(error(
                    StatusCode::BAD_REQUEST,
                    "InvalidRequest",
                    &format!("notification URL '{url}' must be https"),
                ));
            }
        }
        if c.client_state.as_ref().is_some_and(|s| s.len() > 128) {
            return Pending::Done(error(
                StatusCode::BAD_REQUEST,
                "InvalidRequest",
                "clientState is longer than 128 characters",
            ));
        }
        let expiration = match expiration(&c.expiration_date_time) {
            Ok(at) => at,
            Err(resp) => return Pending::Done(resp),
        };
        self.next += 1;
        Pending::Create(Subscription {
            id: format!("7f105c7d-2dc5-4530-97cd-{:012x}", self.next),
            client: r.client.to_string(),
            resource: c.resource,
            change_type: c.change_type,
            notification_url: c.notification_url,
            lifecycle_url: c.lifecycle_notification_url,
            client_state: c.client_state,
            expiration,
        })
    }

    /// A request to one of the caller's subscriptions: `subscriptions/{id}[/{action}]`.
    fn serve_one(&mut self, r: &Request, method: &str, id: &str, action: Option<&str>) -> Response {
        let Some(sub) = self.subs.get_mut(id).filter(|s| s.client == r.client) else {
            return error(
                StatusCode::NOT_FOUND,
                "ResourceNotFound",
                &format!("The object was not found: subscription {id}"),
            );
        };
        match (method, action) {
            ("GET", None) => Json(sub.json()).into_response(),
            ("PATCH", None) => {
                let u: Update = match serde_json::from_slice(r.body) {
                    Ok(u) => u,
                    Err(e) => {
                        return error(StatusCode::BAD_REQUEST, "InvalidRequest", &e.to_string())
                    }
                };
                if let Some(e) = &u.expiration_date_time {
                    match expiration(e) {
                        Ok(at) => sub.expiration = at,
                        Err(resp) => return resp,
                    }
                }
                Json(sub.json()).into_response()
            }
            ("DELETE", None) => {
                self.subs.remove(id);
                StatusCode::NO_CONTENT.into_response()
            }
            ("POST", Some("reauthorize")) => StatusCode::NO_CONTENT.into_response(),
            _ => error(
                StatusCode::METHOD_NOT_ALLOWED,
                "Request_BadRequest",
                "not supported",
            ),
        }
    }

    /// Validates a new subscription's endpoints (without the lock) and keeps it.
    pub async fn create(state: &std::sync::Mutex<Self>, sub: Subscription) -> Response {
        for url in std::iter::once(&sub.notification_url).chain(sub.lifecycle_url.iter()) {
            if let Err(e) = validate(url).await {
                return error(StatusCode::BAD_REQUEST, "ValidationError", &e);
            }
        }
        let body = sub.json();
        state
            .lock()
            .expect("subscriptions")
            .subs
            .insert(sub.id.clone(), sub);
        (StatusCode::CREATED, Json(body)).into_response()
    }

    /// The notifications a change to `group` sends, to be posted without the lock.
    pub fn group_changed(&self, group: &str, tenant: &str) -> Vec<(String, Value)> {
        self.subs
            .values()
            .filter(|s| s.wants_group_updates())
            .map(|s| {
                let item = json!({
                    "subscriptionId": s.id,
                    "subscriptionExpirationDateTime": s.expiration.format(&Rfc3339).unwrap_or_default(),
                    "changeType": "updated",
                    "resource": format!("Groups/{group}"),
                    "resourceData": {
                        "@odata.type": "#Microsoft.Graph.Group",
                        "@odata.id": format!("Groups/{group}"),
                        "id": group,
                        "organizationId": tenant,
                    },
                    "clientState": s.client_state,
                    "tenantId": tenant,
                });
                (s.notification_url.clone(), json!({"value": [item]}))
            })
            .collect()
    }

    /// A lifecycle notification for subscription `id` (removed, for `subscriptionRemoved`).
    pub fn lifecycle(&mut self, id: &str, event: &str, tenant: &str) -> Option<(String, Value)> {
        let s = self.subs.get(id)?;
        let url = s.lifecycle_url.clone()?;
        let item = json!({
            "subscriptionId": s.id,
            "subscriptionExpirationDateTime": s.expiration.format(&Rfc3339).unwrap_or_default(),
            "tenantId": tenant,
            "clientState": s.client_state,
            "lifecycleEvent": event,
        });
        if event == "subscriptionRemoved" {
            self.subs.remove(id);
        }
        Some((url, json!({"value": [item]})))
    }

    /// Every subscription, for the admin API.
    pub fn all(&self) -> Value {
        Value::Array(self.subs.values().map(Subscription::json).collect())
    }
}

/// Posts notifications, each on its own (Graph does not wait for one endpoint on
/// another's); an endpoint that does not answer 2xx is logged.
pub fn post_all(notifications: Vec<(String, Value)>) {
    for (url, body) in notifications {
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            match client
                .post(&url)
                .json(&body)
                .timeout(Duration::from_secs(10))
                .send()
                .await
            {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => eprintln!("notification to {url}: HTTP {}", r.status()),
                Err(e) => eprintln!("notification to {url}: {e}"),
            }
        });
    }
}
