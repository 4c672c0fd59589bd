//! Resource units and throttling as Microsoft publishes them for identity and access,
//! and the faults the admin API injects: what every Graph request passes through first.

use std::collections::HashMap;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use crate::{graph_error, Server, Shared};

/// The resource units Microsoft charges for a Graph read of this route and query.
pub(crate) fn resource_units(route: &str, q: &HashMap<String, String>) -> u64 {
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
pub(crate) struct Bucket {
    per_10s: f64,
    pub(crate) available: f64,
    pub(crate) at: std::time::Instant,
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
pub(crate) struct Faults {
    /// Answer the next N Graph requests with 429.
    pub(crate) throttle: u32,
    /// Retry-After seconds sent with 429 (may be fractional).
    pub(crate) retry_after: f64,
    /// Answer N Graph requests with `failStatus` ...
    pub(crate) fail: u32,
    /// ... after letting this many through first.
    pub(crate) fail_after: u32,
    /// Status for injected failures (default 503).
    pub(crate) fail_status: u16,
    /// Only requests of this route fail (`delta` for `/groups/delta`, `usersDelta` for
    /// `/users/delta`, `members`, `users`...); empty: every request.
    pub(crate) fail_route: String,
    /// Delay every Graph request by this long.
    pub(crate) delay_ms: u64,
    /// Membership changes made through the admin API while set are not reported by
    /// delta queries: a missed delta, for testing that the controller's periodic full
    /// read corrects its cache. Full reads still see them.
    pub(crate) lose_delta_events: bool,
    /// Answer `/auditLogs/directoryAudits` with 403, as for an app without
    /// AuditLog.Read.All.
    pub(crate) deny_audit_logs: bool,
    /// Hold `/auditLogs/directoryAudits` requests this long (a slow audit log).
    pub(crate) audit_delay_ms: u64,
    /// Hold `/groups/{id}/members` and `/transitiveMembers` requests this long (a slow
    /// full read of a large tenant; delta queries are not held).
    pub(crate) members_delay_ms: u64,
    /// Answer `servicePrincipals/.../ownedObjects` with 400 "Resource not found for the
    /// segment", as an endpoint that does not serve it would.
    pub(crate) no_owned_objects: bool,
}

/// Applies injected faults and the resource-unit bucket, and counts the request. `Some` is
/// the response to send instead; `None` carries on, the units charged.
pub(crate) async fn gate(
    state: &Shared,
    route: &str,
    client: &str,
    q: &HashMap<String, String>,
) -> Result<u64, Response> {
    let delay = {
        let mut s = state.lock().expect("state");
        *s.stats.entry(route.to_string()).or_default() += 1;
        match route {
            "directoryAudits" => s.faults.delay_ms + s.faults.audit_delay_ms,
            "members" | "transitiveMembers" => s.faults.delay_ms + s.faults.members_delay_ms,
            _ => s.faults.delay_ms,
        }
    };
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let mut s = state.lock().expect("state");
    injected_fault(&mut s, route)?;
    let cost = resource_units(route, q);
    take_units(&mut s, client, cost)?;
    s.units += cost;
    Ok(cost)
}

/// The faults the tests set (`/admin/faults`): a 429 for the next `throttle` requests, a
/// 5xx for the next `fail` requests of the route (after `fail_after` that pass).
fn injected_fault(s: &mut Server, route: &str) -> Result<(), Response> {
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
    let targeted = s.faults.fail_route.is_empty() || s.faults.fail_route == route;
    if !targeted {
        // Another route's failures: this request passes.
    } else if s.faults.fail > 0 && s.faults.fail_after > 0 {
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
    Ok(())
}

/// Takes `cost` resource units from the client's bucket: a 429 with Graph's throttling
/// headers when it is short of them.
fn take_units(s: &mut Server, client: &str, cost: u64) -> Result<(), Response> {
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
    Ok(())
}
