//! Graph's answers and URLs: how a page, a member, an error, a `Retry-After` or an audit
//! event (`DirectoryAudit`) is read, and how request URLs are spelled.
//!
//! Pages and members are read into types with the fields Microsoft Graph documents as always
//! present (`value` on a collection page, `id` on a directory object): an answer without
//! one is an error that names the field, never an empty page or a dropped member, since
//! "no members" is read as "revoke everyone".

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::model::call::Failure;
use crate::sources::directory::{Member, MemberKind, MembershipChange};

use super::Error;

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

/// A `directoryAudit` ("directoryAudit resource type", Microsoft Graph v1.0): when, what,
/// by whom, with what result, to which objects. Microsoft documents every property as
/// nullable apart from the activity's time and name.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DirectoryAudit {
    activity_date_time: String,
    activity_display_name: String,
    #[serde(default)]
    initiated_by: Option<Initiator>,
    /// `success`, `failure`, `timeout`, `unknownFutureValue`.
    #[serde(default)]
    result: Option<String>,
    #[serde(default)]
    target_resources: Option<Vec<TargetResource>>,
}

/// `auditActivityInitiator`: a user or an app.
#[derive(Debug, Deserialize)]
struct Initiator {
    #[serde(default)]
    user: Option<UserIdentity>,
    #[serde(default)]
    app: Option<AppIdentity>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserIdentity {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    user_principal_name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AppIdentity {
    #[serde(default)]
    app_id: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
}

/// `targetResource`: the group and the member an activity touched.
#[derive(Debug, Deserialize)]
struct TargetResource {
    #[serde(default)]
    id: Option<String>,
    #[serde(rename = "type", default)]
    kind: Option<String>,
}

/// A directoryAudit of a member added to or removed from `group`, as a membership change;
/// `None` for other activities and failed ones. An event without the documented shape is
/// left out with a warning: who changed a group is courtesy data, never an input to a
/// revocation.
pub(in crate::adapters::entra) fn membership_change(
    audit: &Value,
    group: &str,
) -> Option<MembershipChange> {
    let audit: DirectoryAudit = match parse("GET directoryAudits", audit) {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(error = %e, "a directory audit event was left out");
            return None;
        }
    };
    let added = match audit.activity_display_name.as_str() {
        "Add member to group" => true,
        "Remove member from group" => false,
        _ => return None,
    };
    if audit.result.as_deref().is_some_and(|r| r != "success") {
        return None;
    }
    let member = audit
        .target_resources
        .unwrap_or_default()
        .into_iter()
        .find(|t| t.kind.as_deref() != Some("Group") && t.id.as_deref() != Some(group))?
        .id?;
    let by = match audit.initiated_by {
        Some(Initiator { user: Some(u), .. }) => u
            .user_principal_name
            .or(u.display_name)
            .or(u.id)
            .unwrap_or_else(|| "a user".into()),
        Some(Initiator { app: Some(a), .. }) => {
            let name = a.display_name.unwrap_or_else(|| "an app".into());
            match a.app_id {
                Some(id) => format!("{name} (app {id})"),
                None => name,
            }
        }
        _ => "unknown".to_string(),
    };
    Some(MembershipChange {
        member,
        added,
        by,
        at: audit.activity_date_time,
    })
}

/// The groups of a display name (Graph's `$filter` on `displayName` is case-insensitive).
pub(in crate::adapters::entra) fn name_filter_url(name: &str) -> String {
    format!(
        "/groups?$filter={}&$select=id,displayName",
        encode(&format!("displayName eq '{}'", name.replace('\'', "''")))
    )
}

/// One page of a Graph collection ("Paging Microsoft Graph data in your app"; for delta,
/// "Use delta query to track changes in Microsoft Graph data"): the items in `value`, the
/// next page in `@odata.nextLink`, and on a delta round's last page `@odata.deltaLink`.
#[derive(Debug, Deserialize)]
pub(in crate::adapters::entra) struct Page {
    pub value: Vec<Value>,
    #[serde(rename = "@odata.nextLink", default)]
    pub next_link: Option<String>,
    #[serde(rename = "@odata.deltaLink", default)]
    pub delta_link: Option<String>,
}

impl Page {
    /// The page `operation` answered; an error naming what is missing when it is not one.
    pub(in crate::adapters::entra) fn read(operation: &str, page: Value) -> Result<Page, Error> {
        parse(operation, page)
    }
}

/// A directory object as a members list gives it (`$select=id,displayName,appId,
/// appOwnerOrganizationId,servicePrincipalType`); `@odata.type` says which kind.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireMember {
    id: String,
    #[serde(rename = "@odata.type", default)]
    odata_type: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
}

/// A user as `/users?$select=id,userPrincipalName,displayName,accountEnabled,userType,mail`
/// gives it ("user resource type"): a user always has a `userPrincipalName`, and
/// `accountEnabled` is returned when selected, so either missing is a malformed answer;
/// `userType` may be null (older accounts), read as `Member` (inferred, not documented).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(in crate::adapters::entra) struct WireUser {
    id: String,
    user_principal_name: String,
    #[serde(default)]
    display_name: Option<String>,
    account_enabled: bool,
    #[serde(default)]
    user_type: Option<String>,
    #[serde(default)]
    mail: Option<String>,
    #[serde(default)]
    given_name: Option<String>,
    #[serde(default)]
    surname: Option<String>,
}

/// The users `GET /users` asks for.
pub(in crate::adapters::entra) const USERS_URL: &str =
    "/users?$select=id,userPrincipalName,displayName,accountEnabled,userType,mail,givenName,surname&$top=999";

impl WireUser {
    /// A user of a `/users` page.
    pub(in crate::adapters::entra) fn read(
        operation: &str,
        v: Value,
    ) -> Result<crate::sources::directory::DirectoryUser, Error> {
        let u: WireUser = parse(operation, v)?;
        Ok(crate::sources::directory::DirectoryUser {
            id: u.id.into(),
            user_principal_name: u.user_principal_name,
            display_name: u.display_name,
            account_enabled: u.account_enabled,
            user_type: u.user_type.unwrap_or_else(|| "Member".into()),
            mail: u.mail,
            given_name: u.given_name,
            surname: u.surname,
        })
    }
}

/// A group as `/groups?$filter=...&$select=id,displayName` gives it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(in crate::adapters::entra) struct WireGroup {
    pub id: String,
    #[serde(default)]
    pub display_name: Option<String>,
}

impl WireGroup {
    /// The groups of one page.
    pub(in crate::adapters::entra) fn all(
        operation: &str,
        page: Page,
    ) -> Result<Vec<WireGroup>, Error> {
        page.value
            .into_iter()
            .map(|g| parse(operation, g))
            .collect()
    }
}

/// An application as `$select=id,appId,displayName` gives it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(in crate::adapters::entra) struct WireApplication {
    id: String,
    app_id: String,
    #[serde(default)]
    display_name: Option<String>,
}

impl WireApplication {
    /// The application, its credentials not read yet; an error naming a missing field.
    pub(in crate::adapters::entra) fn read(
        operation: &str,
        v: Value,
    ) -> Result<crate::observed::ObservedApplication, Error> {
        let a: WireApplication = parse(operation, v)?;
        Ok(crate::observed::ObservedApplication {
            id: a.id,
            app_id: a.app_id,
            display_name: a.display_name.unwrap_or_default(),
            credentials: Vec::new(),
        })
    }
}

/// A federated identity credential ("federatedIdentityCredential resource type": `name`,
/// `issuer`, `subject` and `audiences` are required).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(in crate::adapters::entra) struct WireCredential {
    id: String,
    name: String,
    issuer: String,
    subject: String,
    audiences: Vec<String>,
    #[serde(default)]
    description: Option<String>,
}

impl WireCredential {
    /// The credential; an error naming a missing field (read as empty, a subject or an
    /// issuer would be planned over).
    pub(in crate::adapters::entra) fn read(
        operation: &str,
        v: Value,
    ) -> Result<crate::observed::ObservedCredential, Error> {
        let c: WireCredential = parse(operation, v)?;
        Ok(crate::observed::ObservedCredential {
            id: c.id,
            name: c.name,
            issuer: c.issuer,
            subject: c.subject,
            audiences: c.audiences,
            description: c.description,
        })
    }
}

/// A Graph answer, or a part of one, read into its wire type: an answer without a field
/// Microsoft Graph documents as always present is an error naming it.
pub(in crate::adapters::entra) fn parse<'de, T: Deserialize<'de>>(
    operation: &str,
    v: impl serde::Deserializer<'de, Error = serde_json::Error>,
) -> Result<T, Error> {
    T::deserialize(v).map_err(|e| malformed(operation, &e))
}

/// An answer without the shape Microsoft Graph documents for it: a failed read.
pub(in crate::adapters::entra) fn malformed(operation: &str, e: &serde_json::Error) -> Error {
    Error::Graph {
        operation: operation.into(),
        status: 200,
        code: "malformedAnswer".into(),
        message: format!("the answer does not have the shape Microsoft Graph documents: {e}"),
    }
}

/// A member of a members page; an error when it has no `id`.
pub(in crate::adapters::entra) fn member_of(operation: &str, v: &Value) -> Result<Member, Error> {
    let m: WireMember = parse(operation, v)?;
    Ok(Member {
        id: m.id.into(),
        kind: kind_of(m.odata_type.as_deref()),
        display_name: m.display_name,
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn directory_audits_read_as_membership_changes() {
        let group = "00000000-0000-0000-0000-0000000000aa";
        let event = |activity: &str, initiated_by: Value, result: Value| {
            json!({
                "id": "Directory_1", "category": "GroupManagement",
                "activityDateTime": "2026-12-04T10:00:00Z",
                "activityDisplayName": activity,
                "initiatedBy": initiated_by, "result": result,
                "targetResources": [
                    {"id": "00000000-0000-0000-0000-0000000000bb", "type": "ServicePrincipal"},
                    {"id": group, "type": "Group"},
                ],
            })
        };
        let by_user =
            json!({"user": {"id": "u", "userPrincipalName": "ana@contoso.com"}, "app": null});
        let c = membership_change(
            &event("Remove member from group", by_user, json!("success")),
            group,
        )
        .unwrap();
        assert!(!c.added);
        assert_eq!(
            (c.member.as_str(), c.by.as_str()),
            ("00000000-0000-0000-0000-0000000000bb", "ana@contoso.com")
        );
        let by_app = json!({"user": null, "app": {"appId": "a1", "displayName": "hr-sync"}});
        let c = membership_change(
            &event("Add member to group", by_app.clone(), Value::Null),
            group,
        )
        .unwrap();
        assert_eq!(c.by, "hr-sync (app a1)");
        assert!(membership_change(
            &event("Add member to group", by_app.clone(), json!("failure")),
            group
        )
        .is_none());
        assert!(
            membership_change(&event("Update group", by_app, json!("success")), group).is_none()
        );
        // Not the documented shape: left out, never a made-up change.
        assert!(membership_change(
            &json!({"activityDisplayName": "Add member to group"}),
            group
        )
        .is_none());
    }

    #[test]
    fn a_page_without_value_is_an_error_that_names_it_never_an_empty_page() {
        let e = Page::read("GET members", json!({"@odata.nextLink": "x"})).unwrap_err();
        assert!(e.to_string().contains("missing field `value`"), "{e}");
        assert!(e.to_string().contains("GET members"), "{e}");
        let p = Page::read("GET members", json!({"value": []})).unwrap();
        assert!(p.value.is_empty() && p.next_link.is_none());
    }

    #[test]
    fn a_credential_without_a_subject_is_an_error_not_an_empty_subject() {
        let c = json!({"id": "1", "name": "n", "issuer": "https://i", "audiences": ["api://AzureADTokenExchange"]});
        let e = WireCredential::read("GET federatedIdentityCredentials", c).unwrap_err();
        assert!(e.to_string().contains("missing field `subject`"), "{e}");
        let a = WireApplication::read(
            "GET applications",
            json!({"id": "o", "appId": "a", "displayName": null}),
        )
        .unwrap();
        assert_eq!(
            (a.id.as_str(), a.app_id.as_str(), a.display_name.as_str()),
            ("o", "a", "")
        );
    }

    #[test]
    fn a_member_without_an_id_is_an_error_not_a_dropped_member() {
        let e = member_of("GET members", &json!({"displayName": "x"})).unwrap_err();
        assert!(e.to_string().contains("missing field `id`"), "{e}");
        let m = member_of(
            "GET members",
            &json!({"id": "a", "@odata.type": "#microsoft.graph.servicePrincipal",
                    "servicePrincipalType": "ManagedIdentity", "appOwnerOrganizationId": "t"}),
        )
        .unwrap();
        assert_eq!(m.kind, MemberKind::ServicePrincipal);
        assert_eq!(m.owner_tenant, None, "a managed identity is this tenant's");
    }
}
