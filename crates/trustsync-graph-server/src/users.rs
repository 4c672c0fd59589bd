//! Users, from Microsoft's v1.0 reference ("user resource type", "List users", "Get user",
//! "user: delta"): `GET /users` and `/users/{id}` (a default set of properties unless
//! `$select` asks for others, such as `accountEnabled` and `userType`), and `GET
//! /users/delta`: a first round of every user, then per round each user changed since
//! the token, once, in its current state (`$select` as the first request asked, carried in
//! the links), or `{"id", "@removed": {"reason": "changed"}}` for a deleted one (Entra
//! keeps deleted users restorable for 30 days, which it reports as `changed`).
//!
//! The admin API changes users at run time: `POST /admin/users` (a tenant-file object),
//! `PATCH /admin/users/{id}` (`accountEnabled`, `displayName`, `userPrincipalName`,
//! `mail`, `userType`), `DELETE /admin/users/{id}` (removed from every group, as Entra
//! does, each removal recorded as any other).

use std::collections::{BTreeSet, HashMap};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::directory::DeltaStart;
use crate::{carried, graph_error, not_found, Kind, Server, Shared};

/// The properties `GET /users` returns without `$select` (Microsoft's default set, of
/// those the tenant file keeps): `accountEnabled` and `userType` must be asked for.
const DEFAULT_USER_PROPERTIES: [&str; 6] = [
    "id",
    "displayName",
    "userPrincipalName",
    "mail",
    "givenName",
    "surname",
];

/// A change to a user, for `/users/delta`.
pub(crate) struct UserEvent {
    pub seq: u64,
    pub id: String,
}

impl Server {
    /// Whether `id` is a user that is not deleted.
    fn live_user(&self, id: &str) -> bool {
        matches!(self.index.get(id), Some((Kind::User, _))) && !self.deleted_users.contains(id)
    }

    /// A user as Graph lists it: `$select`, or the default set.
    fn user_object(&self, id: &str, select: &Option<BTreeSet<String>>) -> Value {
        let default = || {
            DEFAULT_USER_PROPERTIES
                .iter()
                .map(|p| p.to_string())
                .collect()
        };
        let select = Some(select.clone().unwrap_or_else(default));
        self.directory_object(id, &select)
    }

    /// Every user not deleted, as Graph lists them.
    fn live_users(&self, select: &Option<BTreeSet<String>>) -> Vec<Value> {
        self.tenant
            .users
            .iter()
            .filter(|u| !self.deleted_users.contains(&u.id))
            .map(|u| self.user_object(&u.id, select))
            .collect()
    }

    /// `GET /users`.
    pub(crate) fn list_users(
        &mut self,
        q: &HashMap<String, String>,
        base: &str,
        select: &Option<BTreeSet<String>>,
        top: usize,
    ) -> Response {
        let items = self.live_users(select);
        self.paged(items, top, q, base, "/users", None)
    }

    /// `GET /users/{id}`.
    pub(crate) fn user(&self, id: &str, base: &str, select: &Option<BTreeSet<String>>) -> Response {
        if !self.live_user(id) {
            return not_found(id);
        }
        let mut obj = self.user_object(id, select);
        obj["@odata.context"] = json!(format!("{base}/$metadata#users/$entity"));
        Json(obj).into_response()
    }

    /// `GET /users/delta`: the first round, a round since a token, or `latest`.
    pub(crate) fn users_delta(
        &mut self,
        q: &HashMap<String, String>,
        base: &str,
        select: &Option<BTreeSet<String>>,
        top: usize,
    ) -> Response {
        let upto = self.seq;
        let link = format!("{base}/users/delta?{}$deltatoken=d{upto}", carried(q));
        let items: Vec<Value> = match self.delta_start(q) {
            Err(gone) => return gone,
            Ok(DeltaStart::Latest) => {
                return Json(json!({"@odata.context": format!("{base}/$metadata#users"),
                    "value": [], "@odata.deltaLink": link}))
                .into_response()
            }
            Ok(DeltaStart::First) => self.live_users(select),
            Ok(DeltaStart::Since(from)) => {
                let changed: BTreeSet<&str> = self
                    .user_events
                    .iter()
                    .filter(|e| e.seq > from)
                    .map(|e| e.id.as_str())
                    .collect();
                changed
                    .into_iter()
                    .map(|id| {
                        if self.live_user(id) {
                            self.user_object(id, select)
                        } else {
                            json!({"id": id, "@removed": {"reason": "changed"}})
                        }
                    })
                    .collect()
            }
        };
        self.paged(items, top, q, base, "/users/delta", Some(link))
    }

    /// A user changed: fed to `/users/delta`.
    fn user_changed(&mut self, id: &str) {
        self.seq += 1;
        let seq = self.seq;
        self.user_events.push(UserEvent {
            seq,
            id: id.to_string(),
        });
    }
}

/// What `PATCH /admin/users/{id}` may change.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct UserPatch {
    #[serde(default)]
    account_enabled: Option<bool>,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    user_principal_name: Option<String>,
    #[serde(default)]
    mail: Option<String>,
    #[serde(default)]
    user_type: Option<String>,
}

pub(crate) async fn admin_create_user(
    State(state): State<Shared>,
    Json(u): Json<trustsync_tenant::TenantObject>,
) -> Response {
    let mut s = state.lock().expect("state");
    if s.index.contains_key(&u.id) {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "Request_BadRequest",
            &format!("An object with id {} already exists.", u.id),
        );
    }
    let id = u.id.clone();
    s.tenant.users.push(u);
    let at = s.tenant.users.len() - 1;
    s.index.insert(id.clone(), (Kind::User, at));
    s.user_changed(&id);
    StatusCode::CREATED.into_response()
}

pub(crate) async fn admin_patch_user(
    State(state): State<Shared>,
    Path(id): Path<String>,
    Json(p): Json<UserPatch>,
) -> Response {
    let mut s = state.lock().expect("state");
    if !s.live_user(&id) {
        return not_found(&id);
    }
    let Some((Kind::User, at)) = s.index.get(&id).copied() else {
        return not_found(&id);
    };
    let u = &mut s.tenant.users[at];
    if let Some(v) = p.account_enabled {
        u.account_enabled = Some(v);
    }
    if let Some(v) = p.display_name {
        u.display_name = v;
    }
    if let Some(v) = p.user_principal_name {
        u.user_principal_name = Some(v);
    }
    if let Some(v) = p.mail {
        u.mail = Some(v);
    }
    if let Some(v) = p.user_type {
        u.user_type = Some(v);
    }
    s.user_changed(&id);
    StatusCode::NO_CONTENT.into_response()
}

/// Deletes a user: out of every group first (each removal audited and fed to the groups'
/// delta and subscriptions), then gone from `/users` and `@removed` in `/users/delta`.
pub(crate) async fn admin_delete_user(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Response {
    let mut s = state.lock().expect("state");
    if !s.live_user(&id) {
        return not_found(&id);
    }
    let groups: Vec<String> = s
        .tenant
        .groups
        .iter()
        .filter(|g| g.members.contains(&id))
        .map(|g| g.id.clone())
        .collect();
    for g in groups {
        s.remove_member_now(&g, &id, None);
    }
    s.deleted_users.insert(id.clone());
    s.user_changed(&id);
    StatusCode::NO_CONTENT.into_response()
}
