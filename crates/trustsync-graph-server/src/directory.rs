//! The directory as Graph serves it: objects, groups and their members, paging over
//! snapshots, the delta feed, and the directory audit log.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::{
    carried, graph_error, not_found, now_rfc3339, parse_display_name_filter, request_id, AuditTest,
    DeltaItem, Kind, Pager, Server,
};

/// A user's properties as Graph's user resource names them (v1.0 returns a default set
/// of these without `$select`): `accountEnabled` true and `userType` `Member` unless the
/// tenant file says otherwise.
pub(crate) fn user_json(o: &trustsync_tenant::TenantObject) -> Value {
    json!({
        "id": o.id, "displayName": o.display_name,
        "userPrincipalName": o.user_principal_name, "mail": o.mail,
        "givenName": o.given_name, "surname": o.surname,
        "accountEnabled": o.account_enabled.unwrap_or(true),
        "userType": o.user_type.as_deref().unwrap_or("Member"),
    })
}

/// Where a delta round starts.
pub(crate) enum DeltaStart {
    /// No token: every object.
    First,
    /// `$deltatoken=latest`: nothing, and a link for what changes from now.
    Latest,
    /// The changes after this sequence number.
    Since(u64),
}

impl Server {
    /// The `@odata.type` and properties of a directory object, found through the index.
    pub(crate) fn odata_type(&self, id: &str) -> Option<(&'static str, Value)> {
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
                           "appOwnerOrganizationId": owner, "servicePrincipalType": kind,
                           "accountEnabled": o.account_enabled.unwrap_or(true)}),
                )
            }
            (Kind::User, i) => ("#microsoft.graph.user", user_json(&t.users[i])),
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
    pub(crate) fn directory_object(&self, id: &str, select: &Option<BTreeSet<String>>) -> Value {
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
    pub(crate) fn service_principal(
        &self,
        id: &str,
        select: &Option<BTreeSet<String>>,
    ) -> Response {
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
    pub(crate) fn group_at(&self, id: &str) -> Option<usize> {
        match self.index.get(id) {
            Some((Kind::Group, i)) => Some(*i),
            _ => None,
        }
    }

    /// Records a membership change as Entra's audit log does: activity, time, who, and the
    /// member and group as target resources.
    pub(crate) fn record_membership_audit(
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
            "activityDateTime": now_rfc3339(),
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
    pub(crate) fn directory_audits(
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
        self.paged(items, top, q, base, "/auditLogs/directoryAudits", None)
    }

    /// `GET /groups`, all or `$filter=displayName eq '...'` (case-insensitive, as in Entra).
    pub(crate) fn list_groups(
        &mut self,
        q: &HashMap<String, String>,
        base: &str,
        select: &Option<BTreeSet<String>>,
        top: usize,
    ) -> Response {
        let groups: Vec<&trustsync_tenant::TenantGroup> = match q.get("$filter") {
            None => self.tenant.groups.iter().collect(),
            Some(f) => match parse_display_name_filter(f) {
                Some(name) => self
                    .tenant
                    .groups
                    .iter()
                    // Graph's `eq` on displayName is case-insensitive.
                    .filter(|g| trustsync_tenant::same_name(&g.display_name, &name))
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
        self.paged(items, top, q, base, "/groups", None)
    }

    /// `GET /groups/delta`: a first round, a round since a token, or `latest`.
    pub(crate) fn delta(
        &mut self,
        q: &HashMap<String, String>,
        base: &str,
        top: usize,
    ) -> Response {
        let since = match self.delta_start(q) {
            Err(gone) => return gone,
            Ok(DeltaStart::Latest) => {
                let upto = self.seq;
                return Json(
                    json!({"@odata.context": format!("{base}/$metadata#groups"), "value": [],
                    "@odata.deltaLink": format!("{base}/groups/delta?$deltatoken=d{upto}")}),
                )
                .into_response();
            }
            Ok(DeltaStart::First) => None,
            Ok(DeltaStart::Since(n)) => Some(n),
        };
        self.start_delta(base, since, top)
    }

    /// Where a delta round (groups' or users') starts, from its `$deltatoken`: an expired
    /// or unknown token is Graph's `410 syncStateNotFound`.
    pub(crate) fn delta_start(&self, q: &HashMap<String, String>) -> Result<DeltaStart, Response> {
        match q.get("$deltatoken").map(String::as_str) {
            None => Ok(DeltaStart::First),
            Some("latest") => Ok(DeltaStart::Latest),
            Some(t) => match t.strip_prefix('d').and_then(|n| n.parse::<u64>().ok()) {
                Some(n) if n >= self.expired_below && n <= self.seq => Ok(DeltaStart::Since(n)),
                _ => Err(graph_error(
                    StatusCode::GONE,
                    "syncStateNotFound",
                    "The sync state generation is not found. Please resync.",
                )),
            },
        }
    }

    /// `GET /groups/{id}`.
    pub(crate) fn group(
        &mut self,
        id: &str,
        base: &str,
        select: &Option<BTreeSet<String>>,
    ) -> Response {
        if self.group_at(id).is_none() {
            return not_found(id);
        }
        let mut obj = self.directory_object(id, select);
        obj["@odata.context"] = json!(format!("{base}/$metadata#groups/$entity"));
        Json(obj).into_response()
    }

    /// `GET /groups/{id}/members` or `/transitiveMembers`, paged.
    pub(crate) fn members(
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
        self.paged(items, top, q, base, &format!("/groups/{id}/{kind}"), None)
    }

    pub(crate) fn top(&self, q: &HashMap<String, String>) -> Result<usize, Response> {
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

    pub(crate) fn pager_id(&mut self) -> String {
        self.next_pager += 1;
        format!("p{}", self.next_pager)
    }

    pub(crate) fn direct_members(&self, group: &str) -> Vec<String> {
        self.group_at(group)
            .map(|i| self.tenant.groups[i].members.clone())
            .unwrap_or_default()
    }

    pub(crate) fn transitive_members(&self, group: &str) -> Vec<String> {
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
    pub(crate) fn paged(
        &mut self,
        items: Vec<Value>,
        top: usize,
        q: &HashMap<String, String>,
        base: &str,
        path: &str,
        delta_link: Option<String>,
    ) -> Response {
        let id = self.pager_id();
        let query = carried(q);
        self.pagers.insert(
            id.clone(),
            Pager::Objects {
                items,
                top,
                query,
                delta_link,
            },
        );
        self.page_objects(base, path, id, 0)
    }

    /// One page of a snapshot list, with a nextLink when more follow.
    pub(crate) fn page_objects(
        &mut self,
        base: &str,
        path: &str,
        pager: String,
        offset: usize,
    ) -> Response {
        let Some(Pager::Objects {
            items,
            top,
            query,
            delta_link,
        }) = self.pagers.get(&pager)
        else {
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
            if let Some(link) = delta_link {
                body["@odata.deltaLink"] = json!(link);
            }
            self.pagers.remove(&pager);
        }
        Json(body).into_response()
    }

    pub(crate) fn delta_page(&mut self, base: &str, pager: String, offset: usize) -> Response {
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

    pub(crate) fn start_delta(&mut self, base: &str, since: Option<u64>, top: usize) -> Response {
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
