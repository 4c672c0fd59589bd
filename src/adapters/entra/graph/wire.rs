//! Graph's answers and URLs: how a member, an error, a `Retry-After` or an audit event is
//! read, and how request URLs are spelled.

use std::time::Duration;

use serde_json::Value;

use crate::model::call::Failure;
use crate::sources::directory::{Member, MemberKind, MembershipChange};

use super::*;

/// Requests in one JSON batch: Graph's limit.
pub(in crate::adapters::entra) const BATCH_SIZE: usize = 20;

/// The first page of a group's members, as trustsync reads them.
pub(in crate::adapters::entra) fn members_url(id: &str, transitive: bool) -> String {
    let kind = if transitive {
        "transitiveMembers"
    } else {
        "members"
    };
    format!("/groups/{id}/{kind}?$select=id,displayName,appId,appOwnerOrganizationId,servicePrincipalType&$top=999")
}

/// Percent-encodes a query value (spaces as `%20`).
pub(in crate::adapters::entra) fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// A header of a batch answer, whatever its case.
pub(in crate::adapters::entra) fn header<'a>(headers: &'a Value, name: &str) -> Option<&'a str> {
    headers
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.as_str())
}

/// A Graph error as apply records it: throttling and 5xx were retried already, so what
/// is left is final; `transient` says whether the next pass may fare better.
pub(in crate::adapters::entra) fn failure(operation: &str, e: Error) -> Failure {
    match e {
        Error::Graph {
            status,
            code,
            message,
            ..
        } => Failure {
            operation: operation.into(),
            code: Some(code),
            message,
            status: Some(status),
            request_id: None,
            transient: status == 429 || status >= 500,
        },
        Error::Transport { message, .. } => Failure {
            transient: true,
            ..Failure::permanent(operation, message)
        },
        other => Failure::permanent(operation, other.to_string()),
    }
}

pub(in crate::adapters::entra) fn error_body(body: &[u8]) -> (String, String) {
    error_of(&serde_json::from_slice(body).unwrap_or(Value::Null))
}

/// The code and message of Graph's error body.
pub(in crate::adapters::entra) fn error_of(v: &Value) -> (String, String) {
    (
        v["error"]["code"].as_str().unwrap_or("unknown").to_string(),
        v["error"]["message"].as_str().unwrap_or("").to_string(),
    )
}

/// A `Retry-After` value in seconds (Graph may send fractions).
pub(in crate::adapters::entra) fn retry_after(value: &str) -> Option<Duration> {
    value
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

pub(in crate::adapters::entra) fn kind_of(odata_type: Option<&str>) -> MemberKind {
    match odata_type {
        Some("#microsoft.graph.servicePrincipal") => MemberKind::ServicePrincipal,
        Some("#microsoft.graph.user") => MemberKind::User,
        Some("#microsoft.graph.group") => MemberKind::Group,
        Some("#microsoft.graph.device") => MemberKind::Device,
        Some(other) => MemberKind::Other(other.to_string()),
        None => MemberKind::Other("unknown".into()),
    }
}

/// A directoryAudit of a member added to or removed from `group`, as a membership change.
pub(in crate::adapters::entra) fn membership_change(
    audit: &Value,
    group: &str,
) -> Option<MembershipChange> {
    let added = match audit["activityDisplayName"].as_str()? {
        "Add member to group" => true,
        "Remove member from group" => false,
        _ => return None,
    };
    if audit["result"].as_str().is_some_and(|r| r != "success") {
        return None;
    }
    let targets = audit["targetResources"].as_array()?;
    let member = targets
        .iter()
        .find(|t| t["type"] != "Group" && t["id"].as_str() != Some(group))?;
    let initiator = &audit["initiatedBy"];
    let by = if let Some(user) = initiator.get("user").filter(|u| !u.is_null()) {
        user["userPrincipalName"]
            .as_str()
            .or(user["displayName"].as_str())
            .or(user["id"].as_str())
            .unwrap_or("a user")
            .to_string()
    } else if let Some(app) = initiator.get("app").filter(|a| !a.is_null()) {
        let name = app["displayName"].as_str().unwrap_or("an app");
        match app["appId"].as_str() {
            Some(id) => format!("{name} (app {id})"),
            None => name.to_string(),
        }
    } else {
        "unknown".to_string()
    };
    Some(MembershipChange {
        member: member["id"].as_str()?.to_string(),
        added,
        by,
        at: audit["activityDateTime"].as_str()?.to_string(),
    })
}

/// The groups of a display name (Graph's `$filter` on `displayName` is case-insensitive).
pub(in crate::adapters::entra) fn name_filter_url(name: &str) -> String {
    format!(
        "/groups?$filter={}&$select=id,displayName",
        encode(&format!("displayName eq '{}'", name.replace('\'', "''")))
    )
}

pub(in crate::adapters::entra) fn member_of(v: &Value) -> Option<Member> {
    Some(Member {
        id: v["id"].as_str()?.into(),
        kind: kind_of(v["@odata.type"].as_str()),
        display_name: v["displayName"].as_str().map(String::from),
        owner_tenant: owner_tenant(v),
    })
}

/// A service principal's application owner tenant; none for a managed identity, which
/// belongs to this tenant's subscriptions whatever tenant Microsoft registers it under.
pub(in crate::adapters::entra) fn owner_tenant(v: &Value) -> Option<String> {
    if v["servicePrincipalType"] == "ManagedIdentity" {
        return None;
    }
    v["appOwnerOrganizationId"].as_str().map(String::from)
}
