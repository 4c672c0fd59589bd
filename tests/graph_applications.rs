//! The local Graph server's `/applications/.../federatedIdentityCredentials`, as
//! Microsoft's reference describes them: the groundwork for trustsync's first writes to
//! Graph (outbound federation, issue 15).

mod support;

use serde_json::{json, Value};
use support::entra::{exchange, GraphClient, Issuer, EXCHANGE};
use support::*;

const OWNED: &str = "0a1b2c3d-0000-4000-8000-00000000a001";
const OWNED_APP_ID: &str = "9e8d7c6b-0000-4000-8000-00000000a001";
const NOT_OWNED: &str = "0a1b2c3d-0000-4000-8000-00000000a002";
const CONTROLLER_SP: &str = "5e1f0a2b-9999-4999-8999-000000000001";
const ISSUER: &str = "https://a1b2c3d4.tokens.sts.global.api.aws";

fn tenant(ws: &Workspace) -> std::path::PathBuf {
    let t = json!({
        "tenantId": TENANT_ID,
        "servicePrincipals": [{"id": CONTROLLER_SP, "displayName": "trustsync", "appId": CLIENT_ID}],
        "clients": [{"clientId": CLIENT_ID, "secret": CLIENT_SECRET}],
        "applications": [
            {"id": OWNED, "appId": OWNED_APP_ID, "displayName": "payments-api", "owners": [CONTROLLER_SP],
             "federatedIdentityCredentials": [{"name": "github-deploy", "issuer": "https://token.actions.githubusercontent.com",
                                                "subject": "repo:acme/payments:ref:refs/heads/main", "audiences": [EXCHANGE]}]},
            {"id": NOT_OWNED, "appId": "9e8d7c6b-0000-4000-8000-00000000a002", "displayName": "hr", "owners": []}
        ]
    });
    let path = ws.path().join("apps-tenant.json");
    std::fs::write(&path, t.to_string()).unwrap();
    path
}

fn credential(name: &str, subject: &str) -> Value {
    json!({"name": name, "issuer": ISSUER, "subject": subject, "audiences": [EXCHANGE],
           "description": "managed by trustsync"})
}

#[tokio::test]
async fn federated_identity_credentials_follow_the_reference() {
    use reqwest::Method;
    let ws = Workspace::new();
    let graph = GraphServer::start(&tenant(&ws), 999);
    let c = GraphClient::new(&graph).await;
    let fics = format!("applications/{OWNED}/federatedIdentityCredentials");
    let by_app_id = format!("applications(appId='{OWNED_APP_ID}')/federatedIdentityCredentials");

    // The list shows the credential the file seeded, by object id and by appId.
    let (status, list) = c.call(Method::GET, &fics, None).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["value"][0]["name"], "github-deploy");
    let (_, same) = c.call(Method::GET, &by_app_id, None).await;
    assert_eq!(same["value"], list["value"]);

    // Create: 201 with the object; then get by id and by name.
    let role = "arn:aws:iam::123456789012:role/payments-runtime";
    let (status, made) = c
        .call(
            Method::POST,
            &fics,
            Some(credential("trustsync-payments", role)),
        )
        .await;
    assert_eq!(status, 201, "{made}");
    let id = made["id"].as_str().unwrap().to_string();
    assert_eq!(made["subject"], role);
    for key in [id.as_str(), "trustsync-payments"] {
        let (status, got) = c.call(Method::GET, &format!("{fics}/{key}"), None).await;
        assert_eq!(
            (status, got["id"].as_str()),
            (200, Some(id.as_str())),
            "{got}"
        );
    }
    let (_, filtered) = c
        .call(
            Method::GET,
            &format!("{fics}?$filter=subject eq '{role}'"),
            None,
        )
        .await;
    assert_eq!(filtered["value"].as_array().unwrap().len(), 1, "{filtered}");

    // Duplicates: the name (409), the issuer and subject together (400).
    let (status, err) = c
        .call(
            Method::POST,
            &fics,
            Some(credential("trustsync-payments", "other")),
        )
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (409, Some("Request_MultipleObjectsWithSameKeyValue"))
    );
    let (status, err) = c
        .call(Method::POST, &fics, Some(credential("another-name", role)))
        .await;
    assert_eq!(status, 400, "{err}");
    assert!(err["error"]["message"]
        .as_str()
        .unwrap()
        .contains("issuer and subject"));
    // Bad fields: two audiences, a name that is not URL friendly, an unknown property.
    let mut two = credential("two-audiences", "x");
    two["audiences"] = json!([EXCHANGE, "api://other"]);
    for bad in [
        two,
        credential("not url friendly", "y"),
        json!({"name": "n", "issuer": ISSUER, "subject": "z", "audiences": [EXCHANGE], "colour": "red"}),
    ] {
        let (status, err) = c.call(Method::POST, &fics, Some(bad)).await;
        assert_eq!(status, 400, "{err}");
    }

    // Update: 204; the name is immutable.
    let moved = "arn:aws:iam::123456789012:role/payments-runtime-v2";
    let (status, _) = c
        .call(
            Method::PATCH,
            &format!("{fics}/{id}"),
            Some(json!({"subject": moved})),
        )
        .await;
    assert_eq!(status, 204);
    let (_, got) = c.call(Method::GET, &format!("{fics}/{id}"), None).await;
    assert_eq!(got["subject"], moved);
    assert_eq!(got["name"], "trustsync-payments");
    let (status, _) = c
        .call(
            Method::PATCH,
            &format!("{fics}/{id}"),
            Some(json!({"name": "renamed"})),
        )
        .await;
    assert_eq!(status, 400);

    // Upsert by name: 201 when new, 204 when it exists.
    let upsert =
        format!("applications/{OWNED}/federatedIdentityCredentials(name='trustsync-reports')");
    let body = json!({"issuer": ISSUER, "subject": "arn:aws:iam::123456789012:role/reports", "audiences": [EXCHANGE]});
    assert_eq!(
        c.call(Method::PATCH, &upsert, Some(body.clone())).await.0,
        201
    );
    assert_eq!(c.call(Method::PATCH, &upsert, Some(body)).await.0, 204);

    // Delete: 204, then 404.
    assert_eq!(
        c.call(Method::DELETE, &format!("{fics}/{id}"), None)
            .await
            .0,
        204
    );
    let (status, err) = c.call(Method::DELETE, &format!("{fics}/{id}"), None).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (404, Some("Request_ResourceNotFound"))
    );

    // At most 20 per application: 2 exist, 18 more fit, the 21st is refused.
    for n in 0..18 {
        let (status, err) = c
            .call(
                Method::POST,
                &fics,
                Some(credential(&format!("fill-{n}"), &format!("s{n}"))),
            )
            .await;
        assert_eq!(status, 201, "{n}: {err}");
    }
    let (status, err) = c
        .call(
            Method::POST,
            &fics,
            Some(credential("one-too-many", "s-last")),
        )
        .await;
    assert_eq!(status, 400, "{err}");
    assert!(err["error"]["message"]
        .as_str()
        .unwrap()
        .contains("maximum of 20"));

    // Application.ReadWrite.OwnedBy: another application is out of reach; an unknown one
    // is not found.
    let (status, err) = c
        .call(
            Method::GET,
            &format!("applications/{NOT_OWNED}/federatedIdentityCredentials"),
            None,
        )
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (403, Some("Authorization_RequestDenied"))
    );
    let (status, _) = c
        .call(
            Method::GET,
            "applications/00000000-0000-4000-8000-000000000000/federatedIdentityCredentials",
            None,
        )
        .await;
    assert_eq!(status, 404);
    // Writes elsewhere are not served.
    assert_eq!(c.call(Method::POST, "groups", Some(json!({}))).await.0, 405);
}

#[tokio::test]
async fn a_service_principal_lists_the_applications_it_owns() {
    use reqwest::Method;
    let ws = Workspace::new();
    let graph = GraphServer::start(&tenant(&ws), 999);
    let c = GraphClient::new(&graph).await;
    // By the controller's own client id, cast to applications: the owned one only.
    let path = format!(
        "servicePrincipals(appId='{CLIENT_ID}')/ownedObjects/microsoft.graph.application?$select=id,appId"
    );
    let (status, list) = c.call(Method::GET, &path, None).await;
    assert_eq!(status, 200, "{list}");
    let value = list["value"].as_array().unwrap();
    assert_eq!(value.len(), 1, "{list}");
    assert_eq!(value[0]["id"], OWNED);
    assert_eq!(value[0]["appId"], OWNED_APP_ID);
    assert_eq!(value[0]["@odata.type"], "#microsoft.graph.application");
    assert!(value[0].get("displayName").is_none(), "$select applies");
    // By object id, uncast: the same object, with every property.
    let (status, list) = c
        .call(
            Method::GET,
            &format!("servicePrincipals/{CONTROLLER_SP}/ownedObjects"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["value"][0]["displayName"], "payments-api");
    // An unknown service principal is 404, an unknown cast 400.
    let (status, err) = c
        .call(
            Method::GET,
            "servicePrincipals(appId='00000000-0000-4000-8000-000000000000')/ownedObjects",
            None,
        )
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (404, Some("Request_ResourceNotFound"))
    );
    let (status, _) = c
        .call(
            Method::GET,
            &format!("servicePrincipals/{CONTROLLER_SP}/ownedObjects/microsoft.graph.user2"),
            None,
        )
        .await;
    assert_eq!(status, 400);
    // The application list shows every application; one by id (or appId) only if owned.
    let (status, list) = c
        .call(Method::GET, "applications?$select=id,appId", None)
        .await;
    assert_eq!(
        (status, list["value"].as_array().map(Vec::len)),
        (200, Some(2)),
        "{list}"
    );
    let (status, app) = c
        .call(
            Method::GET,
            &format!("applications(appId='{OWNED_APP_ID}')"),
            None,
        )
        .await;
    assert_eq!((status, app["id"].as_str()), (200, Some(OWNED)), "{app}");
    let (status, _) = c
        .call(Method::GET, &format!("applications/{NOT_OWNED}"), None)
        .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn a_token_signed_by_the_issuer_is_exchanged_through_a_federated_credential() {
    use reqwest::Method;
    let issuer = Issuer::start();
    let ws = Workspace::new();
    let graph = GraphServer::start(&tenant(&ws), 999);
    let c = GraphClient::new(&graph).await;
    let role = "arn:aws:iam::123456789012:role/payments-runtime";
    let fics = format!("applications/{OWNED}/federatedIdentityCredentials");
    let mut body = credential("trustsync-payments", role);
    body["issuer"] = json!(issuer.url);
    assert_eq!(c.call(Method::POST, &fics, Some(body)).await.0, 201);

    // The role's token, for the exchange audience: an Entra token for the application.
    let (status, answer) = exchange(&graph, OWNED_APP_ID, &issuer.token(role, EXCHANGE, 300)).await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer["access_token"].is_string());

    // Each refusal with the identity platform's code.
    let code = |v: &Value| v["error_codes"][0].as_u64();
    let (status, answer) = exchange(
        &graph,
        OWNED_APP_ID,
        &issuer.token("arn:aws:iam::123456789012:role/other", EXCHANGE, 300),
    )
    .await;
    assert_eq!((status, code(&answer)), (401, Some(700213)), "{answer}");
    let (status, answer) = exchange(
        &graph,
        OWNED_APP_ID,
        &issuer.token(role, "api://wrong", 300),
    )
    .await;
    assert_eq!((status, code(&answer)), (401, Some(700212)), "{answer}");
    let (status, answer) =
        exchange(&graph, OWNED_APP_ID, &issuer.token(role, EXCHANGE, -600)).await;
    assert_eq!((status, code(&answer)), (401, Some(700024)), "{answer}");
    // Signed by someone else: the issuer's keys do not verify it.
    let forged = {
        let mut parts: Vec<String> = issuer
            .token(role, EXCHANGE, 300)
            .split('.')
            .map(String::from)
            .collect();
        let other = issuer.token("x", EXCHANGE, 300);
        parts[2] = other.split('.').nth(2).unwrap().to_string();
        parts.join(".")
    };
    let (status, answer) = exchange(&graph, OWNED_APP_ID, &forged).await;
    assert_eq!((status, code(&answer)), (401, Some(700027)), "{answer}");

    // The credential removed, the same token is refused.
    assert_eq!(
        c.call(Method::DELETE, &format!("{fics}/trustsync-payments"), None)
            .await
            .0,
        204
    );
    let (status, answer) = exchange(&graph, OWNED_APP_ID, &issuer.token(role, EXCHANGE, 300)).await;
    assert_eq!((status, code(&answer)), (401, Some(700211)), "{answer}");
}
