//! The server binary answers as Microsoft Graph documents it: a client-credentials token,
//! a case-insensitive `$filter` on `displayName`, paged members with `@odata.type`, and the
//! documented error shape for a group that does not exist.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

const TENANT: &str = "7f3c2a10-4b5e-4c1d-9a8e-2d6f0b1c3e45";

struct Server(Child, String);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start() -> Server {
    start_with(&[])
}

fn start_with(extra: &[&str]) -> Server {
    let tenant = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/tenant.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_trustsync-graph-server"))
        .args(["--tenant", tenant, "--max-page-size", "2"])
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the server");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap()
        .to_string();
    Server(child, base)
}

/// One HTTP/1.1 request; the status and the body (de-chunked).
fn request(host: &str, head: &str, body: &str) -> (u16, serde_json::Value) {
    let (status, _, body) = request_with_headers(host, head, body);
    (status, body)
}

/// One HTTP/1.1 request; the status, the headers (lower-cased) and the body.
fn request_with_headers(host: &str, head: &str, body: &str) -> (u16, String, serde_json::Value) {
    let mut s = TcpStream::connect(host).unwrap();
    write!(
        s,
        "{head}\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let status = raw.split_whitespace().nth(1).unwrap().parse().unwrap();
    let (headers, mut rest) = raw.split_once("\r\n\r\n").unwrap();
    let mut body = String::new();
    if headers
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        while let Some((size, tail)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap();
            if n == 0 {
                break;
            }
            body.push_str(&tail[..n]);
            rest = &tail[n + 2..];
        }
    } else {
        body = rest.to_string();
    }
    (
        status,
        headers.to_ascii_lowercase(),
        serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
    )
}

fn token(host: &str) -> String {
    let form = "grant_type=client_credentials&client_id=3f0e8a52-7c1d-4b8e-9f6a-1c2d3e4f5a6b\
        &client_secret=local-demo-secret-for-the-graph-server-only\
        &scope=https%3A%2F%2Fgraph.microsoft.com%2F.default";
    let (status, body) = request(
        host,
        &format!("POST /{TENANT}/oauth2/v2.0/token HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded"),
        form,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    body["access_token"].as_str().unwrap().to_string()
}

fn get(host: &str, token: &str, path: &str) -> (u16, serde_json::Value) {
    request(
        host,
        &format!("GET {path} HTTP/1.1\r\nAuthorization: Bearer {token}"),
        "",
    )
}

#[test]
fn groups_members_and_errors_read_as_graph_documents_them() {
    let server = start();
    let host = &server.1;
    let token = token(host);

    // displayName eq is case-insensitive, as in Entra.
    let (status, body) = get(
        host,
        &token,
        "/v1.0/groups?$filter=displayName%20eq%20'SG-AWS-Payments-Deployers'&$select=id,displayName",
    );
    assert_eq!(status, 200, "{body}");
    let groups = body["value"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{body}");
    let id = groups[0]["id"].as_str().unwrap().to_string();
    assert_eq!(groups[0]["displayName"], "sg-aws-payments-deployers");

    // Members come in pages of at most $top (the server's own cap here is 2), each with
    // its @odata.type, linked by @odata.nextLink.
    let mut path = format!("/v1.0/groups/{id}/members?$top=999");
    let mut kinds = Vec::new();
    loop {
        let (status, page) = get(host, &token, &path);
        assert_eq!(status, 200, "{page}");
        let values = page["value"].as_array().unwrap();
        assert!(values.len() <= 2, "{page}");
        kinds.extend(
            values
                .iter()
                .map(|m| m["@odata.type"].as_str().unwrap().to_string()),
        );
        match page["@odata.nextLink"].as_str() {
            Some(next) => path = next.split_once(host.as_str()).unwrap().1.to_string(),
            None => break,
        }
    }
    assert_eq!(kinds.len(), 4, "{kinds:?}");
    assert!(kinds.contains(&"#microsoft.graph.servicePrincipal".to_string()));
    assert!(kinds.contains(&"#microsoft.graph.group".to_string()));

    // A group that does not exist: 404 with the documented error body.
    let (status, body) = get(
        host,
        &token,
        "/v1.0/groups/00000000-0000-0000-0000-000000000000",
    );
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "Request_ResourceNotFound", "{body}");
    assert!(
        body["error"]["innerError"]["request-id"].is_string(),
        "{body}"
    );

    // No token, no data.
    let (status, body) = get(host, "", &format!("/v1.0/groups/{id}"));
    assert_eq!(status, 401, "{body}");
}

#[test]
fn membership_changes_are_in_the_directory_audit_log_with_their_initiator() {
    let server = start();
    let host = &server.1;
    let token = token(host);
    let group = "a1b2c3d4-0001-4000-8000-000000000002";
    let sp = "5e1f0a2b-1111-4111-8111-000000000004";
    let body = format!(
        r#"{{"id": "{sp}", "initiatedBy": {{"user": {{"id": "c0ffee00-2222-4222-8222-000000000001", "displayName": "Dana Ops", "userPrincipalName": "dana@example.com"}}}}}}"#
    );
    let (status, _) = request(
        host,
        &format!("POST /admin/groups/{group}/members HTTP/1.1\r\nContent-Type: application/json"),
        &body,
    );
    assert_eq!(status, 204);
    let (status, _) = request(
        host,
        &format!("DELETE /admin/groups/{group}/members/{sp} HTTP/1.1"),
        "",
    );
    assert_eq!(status, 204);

    let filter = format!(
        "activityDateTime%20ge%202000-01-01T00:00:00Z%20and%20targetResources/any(t:t/id%20eq%20'{group}')"
    );
    let (status, body) = get(
        host,
        &token,
        &format!("/v1.0/auditLogs/directoryAudits?$filter={filter}"),
    );
    assert_eq!(status, 200, "{body}");
    let audits = body["value"].as_array().unwrap();
    assert_eq!(audits.len(), 2, "{body}");
    assert_eq!(audits[0]["activityDisplayName"], "Add member to group");
    assert_eq!(audits[0]["category"], "GroupManagement");
    assert_eq!(
        audits[0]["initiatedBy"]["user"]["userPrincipalName"],
        "dana@example.com"
    );
    assert_eq!(audits[0]["targetResources"][0]["id"], sp);
    assert_eq!(audits[0]["targetResources"][0]["type"], "ServicePrincipal");
    assert_eq!(audits[0]["targetResources"][1]["id"], group);
    assert_eq!(audits[1]["activityDisplayName"], "Remove member from group");
    assert!(audits[1]["initiatedBy"]["app"]["displayName"].is_string());

    // Another group's changes are not listed; an unsupported clause is a 400.
    let (_, body) = get(
        host,
        &token,
        "/v1.0/auditLogs/directoryAudits?$filter=targetResources/any(t:t/id%20eq%20'nope')",
    );
    assert_eq!(body["value"].as_array().unwrap().len(), 0);
    let (status, body) = get(
        host,
        &token,
        "/v1.0/auditLogs/directoryAudits?$filter=result%20eq%20'x'",
    );
    assert_eq!(status, 400, "{body}");
}

fn batch(host: &str, token: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
    let body = body.to_string();
    request(
        host,
        &format!("POST /v1.0/$batch HTTP/1.1\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json"),
        &body,
    )
}

#[test]
fn a_json_batch_answers_each_request_on_its_own() {
    let server = start();
    let host = &server.1;
    let t = token(host);
    let (status, body) = batch(
        host,
        &t,
        &serde_json::json!({"requests": [
            {"id": "1", "method": "GET", "url": "/groups/a1b2c3d4-0001-4000-8000-000000000002?$select=id,displayName"},
            {"id": "2", "method": "GET", "url": "/groups/a1b2c3d4-0001-4000-8000-000000000002/members?$select=id&$top=999"},
            {"id": "3", "method": "GET", "url": "/groups/00000000-0000-4000-8000-00000000dead"},
        ]}),
    );
    assert_eq!(status, 200, "{body}");
    let r = body["responses"].as_array().unwrap();
    let by_id = |id: &str| r.iter().find(|x| x["id"] == id).unwrap().clone();
    assert_eq!(by_id("1")["status"], 200);
    assert_eq!(
        by_id("1")["body"]["displayName"],
        "sg-aws-reporting-readers"
    );
    assert_eq!(by_id("2")["status"], 200);
    assert!(by_id("2")["body"]["value"].is_array());
    assert_eq!(
        by_id("2")["headers"]["x-ms-resource-unit"],
        "2",
        "members 3, -1 for $select"
    );
    assert_eq!(by_id("3")["status"], 404);
    assert_eq!(
        by_id("3")["body"]["error"]["code"],
        "Request_ResourceNotFound"
    );
    // At most 20 requests, unique ids.
    let many: Vec<_> = (0..21)
        .map(|i| serde_json::json!({"id": i.to_string(), "method": "GET", "url": "/groups"}))
        .collect();
    let (status, body) = batch(host, &t, &serde_json::json!({"requests": many}));
    assert_eq!(status, 400, "{body}");
    let (status, _) = batch(
        host,
        &t,
        &serde_json::json!({"requests": [
            {"id": "1", "method": "GET", "url": "/groups"},
            {"id": "1", "method": "GET", "url": "/groups"},
        ]}),
    );
    assert_eq!(status, 400);
}

#[test]
fn resource_units_are_charged_and_an_empty_bucket_answers_429() {
    let server = start_with(&["--resource-units", "5"]);
    let host = &server.1;
    let t = token(host);
    let members = "/v1.0/groups/a1b2c3d4-0001-4000-8000-000000000002/transitiveMembers";
    // transitiveMembers costs 5: the whole bucket.
    let (status, headers, _) = request_with_headers(
        host,
        &format!("GET {members} HTTP/1.1\r\nAuthorization: Bearer {t}"),
        "",
    );
    assert_eq!(status, 200);
    assert!(headers.contains("x-ms-resource-unit: 5"), "{headers}");
    let (status, headers, body) = request_with_headers(
        host,
        &format!("GET {members} HTTP/1.1\r\nAuthorization: Bearer {t}"),
        "",
    );
    assert_eq!(status, 429, "{body}");
    assert!(headers.contains("retry-after: "), "{headers}");
    assert!(
        headers.contains("x-ms-throttle-information: resourceunitlimitexceeded"),
        "{headers}"
    );
    // Inside a batch, the throttled request says so on its own.
    let (status, body) = batch(
        host,
        &t,
        &serde_json::json!({"requests": [{"id": "a", "method": "GET", "url": "/groups/a1b2c3d4-0001-4000-8000-000000000002"}]}),
    );
    assert_eq!(status, 200);
    assert_eq!(body["responses"][0]["status"], 429, "{body}");
    assert!(
        body["responses"][0]["headers"]["Retry-After"].is_string(),
        "{body}"
    );
    let (_, stats) = get(host, &t, "/admin/stats");
    assert_eq!(stats["resourceUnits"], 5, "{stats}");
}

#[test]
fn counting_groups_needs_eventual_consistency() {
    let server = start();
    let host = &server.1;
    let t = token(host);
    let (status, body) = get(host, &t, "/v1.0/groups/$count");
    assert_eq!(status, 400, "{body}");
    let (status, headers, body) = request_with_headers(
        host,
        &format!("GET /v1.0/groups/$count HTTP/1.1\r\nAuthorization: Bearer {t}\r\nConsistencyLevel: eventual"),
        "",
    );
    assert_eq!(status, 200);
    assert!(headers.contains("content-type: text/plain"), "{headers}");
    assert_eq!(body, serde_json::json!(3), "the example tenant's groups");
}

fn admin(host: &str, method: &str, path: &str, body: &str) -> u16 {
    request(
        host,
        &format!("{method} {path} HTTP/1.1\r\nContent-Type: application/json"),
        body,
    )
    .0
}

/// Follows a delta round's nextLinks; the users and the round's deltaLink.
fn users_round(host: &str, token: &str, url: &str) -> (Vec<serde_json::Value>, String) {
    let mut users = Vec::new();
    let mut next = url.to_string();
    loop {
        let path = next
            .split_once("/v1.0")
            .map_or(next.clone(), |(_, p)| format!("/v1.0{p}"));
        let (status, body) = get(host, token, &path);
        assert_eq!(status, 200, "{body}");
        users.extend(body["value"].as_array().unwrap().iter().cloned());
        if let Some(n) = body["@odata.nextLink"].as_str() {
            assert!(
                n.contains("$select=id,userPrincipalName,accountEnabled,userType"),
                "{n}"
            );
            next = n.to_string();
            continue;
        }
        return (
            users,
            body["@odata.deltaLink"].as_str().unwrap().to_string(),
        );
    }
}

/// Users as Microsoft's reference has them: a default set of properties unless `$select`
/// asks for `accountEnabled` and `userType`; `/users/delta` a first round of every user,
/// then the users changed since (disabled: `accountEnabled: false`; deleted: `@removed`
/// with reason `changed`, and out of its groups).
#[test]
fn users_and_their_delta_read_as_graph_documents_them() {
    let server = start();
    let host = &server.1;
    let token = token(host);
    let dana = "c0ffee00-2222-4222-8222-000000000001";
    let sam = "c0ffee00-2222-4222-8222-000000000002";

    let (status, body) = get(host, &token, &format!("/v1.0/users/{dana}"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["userPrincipalName"], "dana@example.com");
    assert!(
        body.get("accountEnabled").is_none(),
        "not in the default set: {body}"
    );
    let (_, body) = get(
        host,
        &token,
        &format!("/v1.0/users/{sam}?$select=id,userType,accountEnabled,mail"),
    );
    assert_eq!(
        (
            body["userType"].as_str(),
            body["accountEnabled"].as_bool(),
            body["mail"].as_str()
        ),
        (Some("Guest"), Some(true), Some("sam@vendor.example"))
    );
    assert!(body.get("displayName").is_none(), "{body}");

    let select = "$select=id,userPrincipalName,accountEnabled,userType";
    let (first, link) = users_round(host, &token, &format!("/v1.0/users/delta?{select}&$top=1"));
    assert_eq!(first.len(), 2, "{first:?}");
    assert!(
        link.contains("$deltatoken=") && link.contains(select),
        "{link}"
    );

    // Nothing changed: an empty round.
    let (same, link) = users_round(host, &token, &link);
    assert!(same.is_empty(), "{same:?}");

    // Disabled, then deleted: one entry each round, in its current state.
    assert_eq!(
        admin(
            host,
            "PATCH",
            &format!("/admin/users/{sam}"),
            r#"{"accountEnabled": false}"#
        ),
        204
    );
    let (changed, link) = users_round(host, &token, &link);
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert_eq!(
        (
            changed[0]["id"].as_str(),
            changed[0]["accountEnabled"].as_bool()
        ),
        (Some(sam), Some(false))
    );

    let group = "a1b2c3d4-0001-4000-8000-000000000001";
    assert_eq!(
        admin(host, "DELETE", &format!("/admin/users/{dana}"), ""),
        204
    );
    let (changed, _) = users_round(host, &token, &link);
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert_eq!(changed[0]["id"], dana);
    assert_eq!(changed[0]["@removed"]["reason"], "changed");
    let (status, _) = get(host, &token, &format!("/v1.0/users/{dana}"));
    assert_eq!(status, 404);
    let (_, members) = get(
        host,
        &token,
        &format!("/v1.0/groups/{group}/members?$top=999"),
    );
    assert!(
        !members.to_string().contains(dana),
        "out of its groups: {members}"
    );

    // A new person; `latest` starts from now; an expired token is a 410.
    let (_, latest) = get(host, &token, "/v1.0/users/delta?$deltatoken=latest");
    let latest = latest["@odata.deltaLink"].as_str().unwrap().to_string();
    let ana = r#"{"id": "c0ffee00-2222-4222-8222-000000000003", "displayName": "Ana New", "userPrincipalName": "ana@example.com"}"#;
    assert_eq!(admin(host, "POST", "/admin/users", ana), 201);
    let (new, _) = users_round(host, &token, &latest);
    assert_eq!(new.len(), 1);
    assert_eq!(new[0]["userPrincipalName"], "ana@example.com");
    assert_eq!(admin(host, "POST", "/admin/expire-delta-tokens", ""), 204);
    let path = latest.split_once("/v1.0").unwrap().1;
    let (status, body) = get(host, &token, &format!("/v1.0{path}"));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (410, Some("syncStateNotFound"))
    );
}
