//! Access tokens for applications of the tenant, as Entra issues them to a workload that
//! asks, with the client-credentials grant, for a token to another application (the
//! resource) of the tenant: app-only, signed RS256, verifiable with the keys the discovery
//! documents point to.
//!
//! From Microsoft's "Access token claims reference" (learn.microsoft.com/entra/
//! identity-platform/access-token-claims-reference) and "OpenID Connect on the Microsoft
//! identity platform" (discovery documents):
//!
//! - The version is the resource application's: `api.requestedAccessTokenVersion` 2 gives
//!   v2.0 tokens, null or 1 v1.0, whichever endpoint the client used.
//! - v1.0: `iss` `https://sts.windows.net/{tid}/`, `aud` the resource as the client named it
//!   (Application ID URI or client id), `appid` and `appidacr` (1 secret, 2 certificate)
//!   for the client, `idp` the issuer, `ver` "1.0"; header `kid` and `x5t`.
//! - v2.0: `iss` `https://login.microsoftonline.com/{tid}/v2.0`, `aud` always the resource
//!   application's client id (a GUID, whatever name was asked), `azp` and `azpacr` for the
//!   client, `ver` "2.0"; header `kid`.
//! - Both: `iat`, `nbf`, `exp`, `oid` = `sub` = the client's service principal object id
//!   (app-only), `tid`, `idtyp` "app", `uti`, `rh`.
//! - Discovery: `/{tenant}/.well-known/openid-configuration` (v1 issuer, `jwks_uri`
//!   `/{tenant}/discovery/keys`) and `/{tenant}/v2.0/.well-known/openid-configuration` (v2
//!   issuer, `/{tenant}/discovery/v2.0/keys`); both key sets hold the same signing key.
//!
//! The issuer in the tokens is Microsoft's (`sts.windows.net`, `login.microsoftonline.com`),
//! as IAM's provider URL and condition keys name it; only the key documents are served
//! from here.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use trustsync_tenant::{TenantApplication, TenantFile};

use crate::aad_error;

/// The key the server signs workload tokens with (test-only; it protects nothing).
const SIGNING_KEY_PEM: &str = include_str!("../keys/token-signing-key.pem");
/// Its public half as a JWKS (kid `trustsync-local-graph-1`).
const JWKS: &str = include_str!("../keys/token-signing-jwks.json");

/// Microsoft Graph's application id, which a client may name instead of its URL.
const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";

/// How long an access token lives (Entra's default for app-only tokens is 60 to 90
/// minutes; the reference promises nothing fixed).
pub const LIFETIME_SECS: u64 = 3599;

/// The resource a client-credentials `scope` names: everything before `/.default`.
pub fn resource_of(scope: &str) -> &str {
    scope.strip_suffix("/.default").unwrap_or(scope)
}

/// Whether the resource is Microsoft Graph, whose tokens stay opaque here.
pub fn is_graph(resource: &str) -> bool {
    let r = resource.trim_end_matches('/');
    r.eq_ignore_ascii_case("https://graph.microsoft.com") || r.eq_ignore_ascii_case(GRAPH_APP_ID)
}

/// The application a client names as the resource: by client id or by one of its
/// Application ID URIs (compared as Entra does: case-insensitively, a trailing slash
/// apart).
pub fn resource_app<'a>(tenant: &'a TenantFile, resource: &str) -> Option<&'a TenantApplication> {
    let want = resource.trim_end_matches('/');
    tenant.applications.iter().find(|a| {
        a.app_id.eq_ignore_ascii_case(want)
            || a.identifier_uris
                .iter()
                .any(|u| u.trim_end_matches('/').eq_ignore_ascii_case(want))
    })
}

/// How the client proved who it is: `appidacr` / `azpacr`.
#[derive(Clone, Copy)]
pub enum ClientAuth {
    Secret,
    Certificate,
}

impl ClientAuth {
    fn acr(self) -> &'static str {
        match self {
            ClientAuth::Secret => "1",
            ClientAuth::Certificate => "2",
        }
    }
}

/// The claims of an app-only access token for `client_id` to `resource` (as asked), at
/// `now`; `Err` with Entra's answer when the resource or the client's service principal is
/// not in the tenant.
pub fn claims(
    tenant: &TenantFile,
    client_id: &str,
    resource: &str,
    auth: ClientAuth,
    now: u64,
    uti: &str,
) -> Result<Value, Response> {
    let tid = &tenant.tenant_id;
    let Some(app) = resource_app(tenant, resource) else {
        return Err(aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_resource",
            500011,
            &format!("The resource principal named {resource} was not found in the tenant named {tid}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant."),
        ));
    };
    let Some(sp) = tenant.service_principals.iter().find(|sp| {
        sp.app_id
            .as_deref()
            .is_some_and(|a| a.eq_ignore_ascii_case(client_id))
    }) else {
        return Err(aad_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized_client",
            7000229,
            &format!("The client application {client_id} is missing service principal in the tenant {tid}."),
        ));
    };
    let exp = now + LIFETIME_SECS;
    let mut c = match app.access_token_version() {
        2 => json!({
            "aud": app.app_id,
            "iss": format!("https://login.microsoftonline.com/{tid}/v2.0"),
            "iat": now, "nbf": now, "exp": exp,
            "azp": client_id,
            "azpacr": auth.acr(),
            "ver": "2.0",
        }),
        _ => json!({
            "aud": resource,
            "iss": format!("https://sts.windows.net/{tid}/"),
            "iat": now, "nbf": now, "exp": exp,
            "appid": client_id,
            "appidacr": auth.acr(),
            "idp": format!("https://sts.windows.net/{tid}/"),
            "ver": "1.0",
        }),
    };
    let m = c.as_object_mut().expect("object");
    m.insert("idtyp".into(), json!("app"));
    m.insert("oid".into(), json!(sp.id));
    m.insert("sub".into(), json!(sp.id));
    m.insert("tid".into(), json!(tid));
    m.insert("uti".into(), json!(uti));
    m.insert("rh".into(), json!("0.local."));
    Ok(c)
}

/// The token's header and signature over `claims`.
pub fn sign(claims: &Value) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.typ = Some("JWT".into());
    header.kid = Some(kid());
    if claims["ver"] == "1.0" {
        header.x5t = header.kid.clone();
    }
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(SIGNING_KEY_PEM.as_bytes())
        .expect("the bundled signing key is an RSA PEM key");
    jsonwebtoken::encode(&header, claims, &key).expect("signing with a valid key")
}

fn kid() -> String {
    let jwks: Value = serde_json::from_str(JWKS).expect("bundled JWKS");
    jwks["keys"][0]["kid"]
        .as_str()
        .expect("bundled JWKS has a kid")
        .to_string()
}

/// The token endpoint's answer for a workload token.
pub fn response(token: String) -> Response {
    Json(json!({
        "token_type": "Bearer",
        "expires_in": LIFETIME_SECS,
        "ext_expires_in": LIFETIME_SECS,
        "access_token": token,
    }))
    .into_response()
}

/// `/{tenant}[/v2.0]/.well-known/openid-configuration`, for this server's tenant only.
pub fn discovery(tenant: &TenantFile, asked: &str, v2: bool, base: &str) -> Response {
    let tid = &tenant.tenant_id;
    if asked != tid.as_str() {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_tenant",
            90002,
            &format!("Tenant '{asked}' not found."),
        );
    }
    let (issuer, jwks_uri, token_endpoint) = if v2 {
        (
            format!("https://login.microsoftonline.com/{tid}/v2.0"),
            format!("{base}/{tid}/discovery/v2.0/keys"),
            format!("{base}/{tid}/oauth2/v2.0/token"),
        )
    } else {
        (
            format!("https://sts.windows.net/{tid}/"),
            format!("{base}/{tid}/discovery/keys"),
            format!("{base}/{tid}/oauth2/token"),
        )
    };
    Json(json!({
        "issuer": issuer,
        "jwks_uri": jwks_uri,
        "token_endpoint": token_endpoint,
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "token id_token", "token"],
        "subject_types_supported": ["pairwise"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "tenant_region_scope": "EU",
    }))
    .into_response()
}

/// The signing keys (JWKS).
pub fn keys() -> Response {
    let jwks: Value = serde_json::from_str(JWKS).expect("bundled JWKS");
    Json(jwks).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use trustsync_tenant::{TenantApplicationApi, TenantObject};

    fn tenant(version: Option<u8>) -> TenantFile {
        TenantFile {
            tenant_id: "tid-1".into(),
            service_principals: vec![TenantObject {
                id: "sp-object".into(),
                app_id: Some("client-app".into()),
                ..Default::default()
            }],
            applications: vec![TenantApplication {
                id: "app-object".into(),
                app_id: "11111111-2222-4333-8444-555555555555".into(),
                identifier_uris: vec!["api://aws-federation".into()],
                api: Some(TenantApplicationApi {
                    requested_access_token_version: version,
                }),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn v1_keeps_the_resource_as_asked_and_names_the_client_in_appid() {
        let c = claims(
            &tenant(None),
            "client-app",
            "api://aws-federation",
            ClientAuth::Secret,
            100,
            "u",
        )
        .unwrap();
        assert_eq!(c["iss"], "https://sts.windows.net/tid-1/");
        assert_eq!(c["aud"], "api://aws-federation");
        assert_eq!(
            (c["appid"].as_str(), c["azp"].as_str()),
            (Some("client-app"), None)
        );
        assert_eq!(
            (c["sub"].as_str(), c["oid"].as_str()),
            (Some("sp-object"), Some("sp-object"))
        );
        assert_eq!(
            (c["ver"].as_str(), c["idtyp"].as_str()),
            (Some("1.0"), Some("app"))
        );
        assert_eq!(c["exp"], 100 + LIFETIME_SECS);
    }

    #[test]
    fn v2_audience_is_always_the_client_id_and_the_caller_is_azp() {
        let c = claims(
            &tenant(Some(2)),
            "client-app",
            "api://aws-federation/",
            ClientAuth::Certificate,
            5,
            "u",
        )
        .unwrap();
        assert_eq!(c["iss"], "https://login.microsoftonline.com/tid-1/v2.0");
        assert_eq!(c["aud"], "11111111-2222-4333-8444-555555555555");
        assert_eq!(
            (c["azp"].as_str(), c["azpacr"].as_str()),
            (Some("client-app"), Some("2"))
        );
        assert!(c.get("appid").is_none());
        assert_eq!(c["ver"], "2.0");
    }

    #[test]
    fn an_unknown_resource_or_a_client_without_service_principal_is_refused() {
        let t = tenant(None);
        assert_eq!(
            claims(&t, "client-app", "api://other", ClientAuth::Secret, 0, "u")
                .unwrap_err()
                .status(),
            400
        );
        assert_eq!(
            claims(
                &t,
                "nobody",
                "api://aws-federation",
                ClientAuth::Secret,
                0,
                "u"
            )
            .unwrap_err()
            .status(),
            401
        );
        assert_eq!(resource_of("api://x/.default"), "api://x");
        assert!(
            is_graph("https://graph.microsoft.com/")
                && is_graph(GRAPH_APP_ID)
                && !is_graph("api://x")
        );
    }

    #[test]
    fn a_signed_token_verifies_with_the_published_key() {
        let c = claims(
            &tenant(Some(2)),
            "client-app",
            "api://aws-federation",
            ClientAuth::Secret,
            0,
            "u",
        )
        .unwrap();
        let token = sign(&c);
        let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_str(JWKS).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        let jwk = jwks.find(header.kid.as_deref().unwrap()).unwrap();
        let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        v.validate_exp = false;
        v.validate_aud = false;
        let data = jsonwebtoken::decode::<Value>(&token, &key, &v).unwrap();
        assert_eq!(data.claims["sub"], "sp-object");
    }
}
