//! The token endpoint (client secret, certificate assertion, federated token; tokens for
//! the tenant's own applications) and the OpenID discovery documents and keys.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use trustsync_tenant::TenantClient;

use crate::{aad_error, applications, base_url, now_secs, request_id, tokens, Server, Shared};

pub(crate) async fn token(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    body: Bytes,
) -> Response {
    {
        let mut s = state.lock().expect("state");
        *s.stats.entry("token".into()).or_default() += 1;
    }
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let client_id = form.get("client_id").cloned().unwrap_or_default();
    let checked = check_request(&state.lock().expect("state"), &tenant, &form, &client_id);
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

/// How a client authenticated, and the federated identity credentials its assertion is
/// still to be checked against (`None`: checked already).
type Checked = (tokens::ClientAuth, Option<Vec<applications::Credential>>);

/// The request's own checks, then the client: a registered client (secret,
/// certificate, or its one federated token), or an application with federated
/// identity credentials, whose assertion is checked against its issuer's keys.
fn check_request(
    s: &Server,
    tenant: &str,
    form: &HashMap<String, String>,
    client_id: &str,
) -> Result<Checked, Response> {
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
        check_client(client, form, tenant)
    } else if let Some(credentials) = s.apps.credentials_of(client_id) {
        Ok((tokens::ClientAuth::Certificate, Some(credentials.to_vec())))
    } else {
        Err(aad_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            &format!("Application with identifier '{client_id}' was not found in the directory."),
        ))
    }
}

/// A registered client's secret or assertion.
fn check_client(
    client: &TenantClient,
    form: &HashMap<String, String>,
    tenant: &str,
) -> Result<Checked, Response> {
    let endpoint_aud = form.get("_aud").cloned();
    let verdict = match (form.get("client_secret"), form.get("client_assertion"), form.get("client_assertion_type")) {
        (Some(secret), None, _) => match &client.secret {
            Some(want) if want == secret => Ok(()),
            _ => Err((StatusCode::UNAUTHORIZED, "invalid_client", 7000215, "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.")),
        },
        (None, Some(assertion), Some(t)) if t == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" => {
            check_assertion(client, assertion, tenant, endpoint_aud)
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
}

/// An access token for `client_id` to `resource`: for Microsoft Graph an opaque one that
/// this server remembers, for an application of the tenant a signed JWT as Entra issues it
/// (see `tokens.rs`).
pub(crate) fn issue_token(
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

pub(crate) type Verdict = Result<(), (StatusCode, &'static str, u32, &'static str)>;

/// How a client assertion is checked: signed with `alg`, within its lifetime, with `exp`,
/// `iss` and `sub`; the audience is the caller's to check.
pub(crate) fn assertion_validation(alg: jsonwebtoken::Algorithm) -> jsonwebtoken::Validation {
    let mut validation = jsonwebtoken::Validation::new(alg);
    validation.validate_aud = false;
    validation.required_spec_claims = ["exp", "iss", "sub"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    validation
}

pub(crate) fn check_assertion(
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

pub(crate) async fn openid_configuration_v1(
    state: State<Shared>,
    tenant: Path<String>,
    headers: HeaderMap,
) -> Response {
    openid_configuration(state, tenant, headers, false)
}

pub(crate) async fn openid_configuration_v2(
    state: State<Shared>,
    tenant: Path<String>,
    headers: HeaderMap,
) -> Response {
    openid_configuration(state, tenant, headers, true)
}

/// The discovery document of the v1 or v2 issuer.
pub(crate) fn openid_configuration(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    v2: bool,
) -> Response {
    let s = state.lock().expect("state");
    let base = base_url(&headers);
    tokens::discovery(&s.tenant, &tenant, v2, base.trim_end_matches("/v1.0"))
}

pub(crate) async fn signing_keys() -> Response {
    tokens::keys()
}
