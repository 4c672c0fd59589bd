//! The admin API: membership changes (recorded in the directory audit log, notified to
//! subscriptions, fed to the delta feed), faults, delta-token expiry, statistics,
//! subscriptions and their lifecycle notifications.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::throttle::Faults;
use crate::{graph_error, not_found, notify_group_changed, subscriptions, Event, Server, Shared};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MemberRef {
    id: String,
    /// Who made the change, as a directoryAudit's `initiatedBy` (`{"user": {...}}` or
    /// `{"app": {...}}`); the admin API itself when absent.
    #[serde(default)]
    initiated_by: Option<Value>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RemoveBody {
    #[serde(default)]
    initiated_by: Option<Value>,
}

/// Every subscription, whoever made it.
pub(crate) async fn admin_subscriptions(State(state): State<Shared>) -> Response {
    let subs = state.lock().expect("state").subscriptions.clone();
    let all = subs.lock().expect("subscriptions").all();
    Json(all).into_response()
}

#[derive(Deserialize)]
pub(crate) struct LifecycleBody {
    event: String,
}

/// Sends a lifecycle notification (`reauthorizationRequired`, `subscriptionRemoved`,
/// `missed`) for a subscription to its lifecycle URL.
pub(crate) async fn admin_lifecycle(
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

impl Server {
    /// Takes `member` out of `group`, as Entra does and records it (audit log, delta,
    /// subscriptions); false when it was no member.
    pub(crate) fn remove_member_now(
        &mut self,
        group: &str,
        member: &str,
        initiated_by: Option<Value>,
    ) -> bool {
        let Some(at) = self.group_at(group) else {
            return false;
        };
        let members = &mut self.tenant.groups[at].members;
        let before = members.len();
        members.retain(|m| m != member);
        if members.len() == before {
            return false;
        }
        self.record_membership_audit("Remove member from group", group, member, initiated_by);
        self.membership_changed(group.to_string(), member.to_string(), true);
        true
    }

    /// A membership change made: notified to the subscriptions, and fed to the delta feed
    /// (unless the `loseDeltaEvents` fault drops it).
    fn membership_changed(&mut self, group: String, member: String, removed: bool) {
        self.seq += 1;
        notify_group_changed(self, &group);
        if !self.faults.lose_delta_events {
            self.events.push(Event {
                seq: self.seq,
                group,
                member,
                removed,
            });
        }
    }
}

pub(crate) async fn admin_add_member(
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
    s.membership_changed(group, m.id, false);
    StatusCode::NO_CONTENT.into_response()
}

pub(crate) async fn admin_remove_member(
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
    if s.group_at(&group).is_none() {
        return not_found(&group);
    }
    if !s.remove_member_now(&group, &member, body.initiated_by) {
        return not_found(&member);
    }
    StatusCode::NO_CONTENT.into_response()
}

pub(crate) async fn admin_faults(State(state): State<Shared>, Json(f): Json<Faults>) -> Response {
    state.lock().expect("state").faults = f;
    StatusCode::NO_CONTENT.into_response()
}

pub(crate) async fn admin_expire(State(state): State<Shared>) -> Response {
    let mut s = state.lock().expect("state");
    s.expired_below = s.seq + 1;
    s.pagers.clear();
    StatusCode::NO_CONTENT.into_response()
}

pub(crate) async fn admin_stats(State(state): State<Shared>) -> Response {
    let s = state.lock().expect("state");
    Json(json!({"requests": s.stats, "graphRequests": s.requests, "resourceUnits": s.units}))
        .into_response()
}

pub(crate) async fn admin_stats_reset(State(state): State<Shared>) -> Response {
    let mut s = state.lock().expect("state");
    s.stats.clear();
    s.requests = 0;
    s.units = 0;
    StatusCode::NO_CONTENT.into_response()
}
