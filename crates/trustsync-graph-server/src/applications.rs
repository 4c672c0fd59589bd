//! `/v1.0/applications/.../federatedIdentityCredentials`, from Microsoft's reference for
//! the federatedIdentityCredential resource:
//!
//! - The application by object id (`applications/{id}`) or by its alternate key
//!   (`applications(appId='{appId}')`); a credential by id or name
//!   (`federatedIdentityCredentials/{id-or-name}`), or by `(name='{name}')`.
//! - List (`$filter` with `eq` on name, issuer or subject), create (201 with the object),
//!   get, update (204; `name` is immutable), upsert (PATCH by name: 201 when created, 204
//!   when updated), delete (204).
//! - `name` 1 to 120 URL-friendly characters, unique in the application; `issuer` and
//!   `subject` required, at most 600 characters each, their combination unique in the
//!   application; `audiences` exactly one value of at most 600 characters; `description`
//!   at most 600. At most 20 credentials per application.
//! - The caller holds `Application.ReadWrite.OwnedBy`: it may read and change only the
//!   applications whose owners include its service principal (403
//!   `Authorization_RequestDenied` otherwise).

use std::collections::HashMap;

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};
use trustsync_tenant::TenantFile;

use crate::graph_error;

/// Microsoft's limit of federated identity credentials per application.
pub const MAX_CREDENTIALS: usize = 20;
const MAX_FIELD: usize = 600;
const MAX_NAME: usize = 120;

/// One federated identity credential.
#[derive(Debug, Clone)]
pub struct Credential {
    pub id: String,
    pub name: String,
    pub issuer: String,
    pub subject: String,
    pub audiences: Vec<String>,
    pub description: Option<String>,
}

impl Credential {
    fn json(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "issuer": self.issuer,
            "subject": self.subject,
            "audiences": self.audiences,
            "description": self.description,
        })
    }
}

/// An application object.
#[derive(Debug, Clone)]
pub struct App {
    pub id: String,
    pub app_id: String,
    pub display_name: String,
    /// Object ids of its owners.
    pub owners: Vec<String>,
    pub credentials: Vec<Credential>,
}

/// The applications of the tenant, with their credentials as they change.
#[derive(Debug, Default)]
pub struct Apps {
    pub apps: Vec<App>,
    next: u64,
}

impl Apps {
    pub fn from_tenant(t: &TenantFile) -> Apps {
        let mut apps = Apps::default();
        for a in &t.applications {
            let credentials = a
                .federated_identity_credentials
                .iter()
                .map(|c| Credential {
                    id: apps.new_id(),
                    name: c.name.clone(),
                    issuer: c.issuer.clone(),
                    subject: c.subject.clone(),
                    audiences: c.audiences.clone(),
                    description: c.description.clone(),
                })
                .collect();
            apps.apps.push(App {
                id: a.id.clone(),
                app_id: a.app_id.clone(),
                display_name: a.display_name.clone(),
                owners: a.owners.clone(),
                credentials,
            });
        }
        apps
    }

    /// The federated identity credentials of the application with this client id.
    pub fn credentials_of(&self, app_id: &str) -> Option<&[Credential]> {
        self.apps
            .iter()
            .find(|a| a.app_id.eq_ignore_ascii_case(app_id))
            .map(|a| a.credentials.as_slice())
    }

    fn new_id(&mut self) -> String {
        self.next += 1;
        format!(
            "f1c0{:04x}-0000-4000-8000-{:012x}",
            self.next >> 48,
            self.next
        )
    }
}

/// `(key='value')` → value.
fn alternate_key<'a>(segment: &'a str, prefix: &str, key: &str) -> Option<&'a str> {
    segment
        .strip_prefix(prefix)?
        .strip_prefix(&format!("({key}='"))?
        .strip_suffix("')")
}

/// Which credential a path names (or the application itself).
enum Target<'a> {
    Application,
    Collection,
    ByIdOrName(&'a str),
    ByName(&'a str),
}

fn not_found(what: &str) -> Response {
    graph_error(
        StatusCode::NOT_FOUND,
        "Request_ResourceNotFound",
        &format!("Resource '{what}' does not exist or one of its queried reference-property objects are not present."),
    )
}

fn bad_request(message: &str) -> Response {
    graph_error(StatusCode::BAD_REQUEST, "Request_BadRequest", message)
}

/// True when `rest` (the path after `/v1.0/`) is an applications route.
pub fn is_route(rest: &str) -> bool {
    let first = rest.trim_matches('/').split('/').next().unwrap_or_default();
    first == "applications" || first.starts_with("applications(")
}

/// True when `rest` lists a service principal's owned objects:
/// `servicePrincipals/{id}/ownedObjects` or `servicePrincipals(appId='...')/ownedObjects`,
/// optionally cast to applications (`/microsoft.graph.application`).
pub fn is_owned_objects_route(rest: &str) -> bool {
    let segments: Vec<&str> = rest.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["servicePrincipals", _, "ownedObjects"] | ["servicePrincipals", _, "ownedObjects", _] => {
            true
        }
        [first, "ownedObjects"] | [first, "ownedObjects", _] => {
            first.starts_with("servicePrincipals(")
        }
        _ => false,
    }
}

/// `GET /servicePrincipals/{id}/ownedObjects[/microsoft.graph.application]`: the
/// applications whose owners include the service principal (the only objects the tenant
/// file lets a service principal own). `Application.ReadWrite.OwnedBy` may list them.
/// The service principal by object id or by `(appId='...')`; 404 when there is none.
pub fn owned_objects(
    apps: &Apps,
    tenant: &TenantFile,
    rest: &str,
    query: &HashMap<String, String>,
    base: &str,
) -> Response {
    let segments: Vec<&str> = rest.trim_matches('/').split('/').collect();
    let (sp, cast) = match segments.as_slice() {
        ["servicePrincipals", id, "ownedObjects", cast @ ..] => (
            tenant
                .service_principals
                .iter()
                .find(|sp| sp.id.eq_ignore_ascii_case(id)),
            cast,
        ),
        [first, "ownedObjects", cast @ ..] => {
            match alternate_key(first, "servicePrincipals", "appId") {
                Some(app_id) => (
                    tenant.service_principals.iter().find(|sp| {
                        sp.app_id
                            .as_deref()
                            .is_some_and(|a| a.eq_ignore_ascii_case(app_id))
                    }),
                    cast,
                ),
                None => return bad_request(&format!("Invalid object identifier '{first}'.")),
            }
        }
        _ => return bad_request(&format!("Resource not found for the segment '{rest}'.")),
    };
    if let [other] = cast {
        if !matches!(*other, "microsoft.graph.application" | "graph.application") {
            return graph_error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!("Resource not found for the segment '{other}'."),
            );
        }
    }
    let Some(sp) = sp else {
        return not_found(segments[0]);
    };
    let value: Vec<Value> = apps
        .apps
        .iter()
        .filter(|a| a.owners.iter().any(|o| o == &sp.id))
        .map(|a| {
            let mut v = application_json(a, query);
            v["@odata.type"] = json!("#microsoft.graph.application");
            v
        })
        .collect();
    let context = if cast.is_empty() {
        format!("{base}/$metadata#directoryObjects")
    } else {
        format!("{base}/$metadata#applications")
    };
    Json(json!({"@odata.context": context, "value": value})).into_response()
}

/// An application as Graph shows it, with `$select` applied (`id` always).
fn application_json(a: &App, query: &HashMap<String, String>) -> Value {
    let select = crate::select_of(query);
    let all = json!({"id": a.id, "appId": a.app_id, "displayName": a.display_name});
    let mut out = Map::new();
    for (k, v) in all.as_object().expect("object") {
        if k == "id" || select.as_ref().is_none_or(|s| s.contains(k)) {
            out.insert(k.clone(), v.clone());
        }
    }
    Value::Object(out)
}

/// `GET /applications`: every application of the tenant (reading is not limited to owned
/// ones; changing them is). One page.
fn list_applications(apps: &Apps, query: &HashMap<String, String>, base: &str) -> Response {
    let value: Vec<Value> = apps
        .apps
        .iter()
        .map(|a| application_json(a, query))
        .collect();
    Json(json!({"@odata.context": format!("{base}/$metadata#applications"), "value": value}))
        .into_response()
}

/// One request to an applications route.
pub struct Request<'a> {
    /// The caller's client id (from its token).
    pub client: &'a str,
    pub method: &'a Method,
    /// The path after `/v1.0/`.
    pub rest: &'a str,
    pub query: &'a HashMap<String, String>,
    pub body: &'a [u8],
    /// `http://host/v1.0`, for `@odata.context`.
    pub base: &'a str,
}

/// Serves one request to an applications route.
pub fn serve(apps: &mut Apps, tenant: &TenantFile, req: &Request<'_>) -> Response {
    let Request {
        client,
        method,
        rest,
        query,
        body,
        base,
    } = *req;
    let segments: Vec<&str> = rest.trim_matches('/').split('/').collect();
    if segments == ["applications"] {
        return if *method == Method::GET {
            list_applications(apps, query, base)
        } else {
            graph_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "Request_BadRequest",
                "This server does not create applications.",
            )
        };
    }
    let (app_key, target) = match route(&segments, rest) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let index = match owned_app(apps, tenant, client, app_key) {
        Ok(i) => i,
        Err(resp) => return resp,
    };
    let body = match json_body(body) {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let context = format!(
        "{base}/$metadata#applications('{}')/federatedIdentityCredentials",
        apps.apps[index].id
    );
    match ((*method).clone(), target) {
        (Method::GET, Target::Application) => {
            let a = &apps.apps[index];
            let mut v = application_json(a, query);
            v["@odata.context"] = json!(format!("{base}/$metadata#applications/$entity"));
            Json(v).into_response()
        }
        (Method::GET, Target::Collection) => list_credentials(&apps.apps[index], query, &context),
        (Method::POST, Target::Collection) => {
            let Some(body) = body else {
                return bad_request("The request body is empty.");
            };
            create(apps, index, &body, &context)
        }
        (Method::GET, Target::ByIdOrName(key) | Target::ByName(key)) => {
            match find(&apps.apps[index], key) {
                Some(i) => {
                    let mut v = apps.apps[index].credentials[i].json();
                    v["@odata.context"] = json!(format!("{context}/$entity"));
                    Json(v).into_response()
                }
                None => not_found(key),
            }
        }
        (Method::PATCH, target @ (Target::ByIdOrName(_) | Target::ByName(_))) => {
            patch(apps, index, target, body, &context)
        }
        (Method::DELETE, Target::ByIdOrName(key) | Target::ByName(key)) => {
            match find(&apps.apps[index], key) {
                Some(i) => {
                    apps.apps[index].credentials.remove(i);
                    StatusCode::NO_CONTENT.into_response()
                }
                None => not_found(key),
            }
        }
        _ => graph_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "Request_BadRequest",
            "The HTTP method is not supported for this resource.",
        ),
    }
}

/// The application a path names (`Ok`: by object id, `Err`: by `appId`) and what under
/// it, from the path's segments (`rest` split); a path this resource does not have is a
/// 400.
fn route<'a>(
    segments: &[&'a str],
    rest: &str,
) -> Result<(Result<&'a str, &'a str>, Target<'a>), Response> {
    let (app_key, tail): (Result<&str, &str>, &[&str]) = match segments {
        ["applications", id, tail @ ..] => (Ok(*id), tail),
        [first, tail @ ..] => match alternate_key(first, "applications", "appId") {
            Some(app_id) => (Err(app_id), tail),
            None => {
                return Err(bad_request(&format!(
                    "Invalid object identifier '{first}'."
                )))
            }
        },
        [] => return Err(bad_request("Empty path.")),
    };
    let target = match tail {
        [] => Target::Application,
        ["federatedIdentityCredentials"] => Target::Collection,
        ["federatedIdentityCredentials", key] => Target::ByIdOrName(key),
        [seg] => match alternate_key(seg, "federatedIdentityCredentials", "name") {
            Some(name) => Target::ByName(name),
            None => {
                return Err(graph_error(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    &format!("Resource not found for the segment '{seg}'."),
                ))
            }
        },
        _ => {
            return Err(graph_error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!("Resource not found for the segment '{rest}'."),
            ))
        }
    };
    Ok((app_key, target))
}

/// The index of the application `app_key` names, if it exists (404) and the caller owns
/// it (403).
fn owned_app(
    apps: &Apps,
    tenant: &TenantFile,
    client: &str,
    app_key: Result<&str, &str>,
) -> Result<usize, Response> {
    let Some(index) = apps.apps.iter().position(|a| match app_key {
        Ok(id) => a.id.eq_ignore_ascii_case(id),
        Err(app_id) => a.app_id.eq_ignore_ascii_case(app_id),
    }) else {
        return Err(not_found(match app_key {
            Ok(id) | Err(id) => id,
        }));
    };
    // Application.ReadWrite.OwnedBy: only the applications the caller owns.
    let caller_sp = tenant
        .service_principals
        .iter()
        .find(|sp| sp.app_id.as_deref() == Some(client))
        .map(|sp| sp.id.as_str());
    if !caller_sp.is_some_and(|sp| apps.apps[index].owners.iter().any(|o| o == sp)) {
        return Err(graph_error(
            StatusCode::FORBIDDEN,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        ));
    }
    Ok(index)
}

/// The request's JSON object (`None`: no body); anything else is a 400.
fn json_body(body: &[u8]) -> Result<Option<Map<String, Value>>, Response> {
    if body.is_empty() {
        return Ok(None);
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(Some(m)),
        _ => Err(bad_request("Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.")),
    }
}

/// `GET .../federatedIdentityCredentials`, with its `$filter` if any.
fn list_credentials(app: &App, query: &HashMap<String, String>, context: &str) -> Response {
    let filter = match query.get("$filter").map(|f| parse_eq_filter(f)) {
        None => None,
        Some(Some(f)) => Some(f),
        Some(None) => return bad_request("Unsupported or invalid query filter clause specified."),
    };
    let value: Vec<Value> = app
        .credentials
        .iter()
        .filter(|c| {
            filter.as_ref().is_none_or(|(field, want)| {
                let have = match field.as_str() {
                    "name" => &c.name,
                    "issuer" => &c.issuer,
                    _ => &c.subject,
                };
                have == want
            })
        })
        .map(Credential::json)
        .collect();
    Json(json!({"@odata.context": context, "value": value})).into_response()
}

/// `PATCH` of a credential: an update by id or name, or an upsert by `(name='...')`.
fn patch(
    apps: &mut Apps,
    index: usize,
    target: Target<'_>,
    body: Option<Map<String, Value>>,
    context: &str,
) -> Response {
    let Some(mut body) = body else {
        return bad_request("The request body is empty.");
    };
    let (key, upsert) = match target {
        Target::ByName(name) => (name, true),
        Target::ByIdOrName(key) => (key, false),
        Target::Collection | Target::Application => unreachable!("matched above"),
    };
    match find(&apps.apps[index], key) {
        Some(i) => update(apps, index, i, &body),
        None if upsert => {
            body.insert("name".into(), json!(key));
            create(apps, index, &body, context)
        }
        None => not_found(key),
    }
}

fn find(app: &App, key: &str) -> Option<usize> {
    app.credentials
        .iter()
        .position(|c| c.id.eq_ignore_ascii_case(key))
        .or_else(|| app.credentials.iter().position(|c| c.name == key))
}

/// `name eq 'x'`, `issuer eq 'x'` or `subject eq 'x'`.
fn parse_eq_filter(f: &str) -> Option<(String, String)> {
    let (field, value) = f.split_once(" eq ")?;
    let field = field.trim();
    if !matches!(field, "name" | "issuer" | "subject") {
        return None;
    }
    let value = value.trim().strip_prefix('\'')?.strip_suffix('\'')?;
    Some((field.to_string(), value.replace("''", "'")))
}

fn string_field(body: &Map<String, Value>, field: &str) -> Result<Option<String>, Response> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(bad_request(&format!(
            "Invalid value specified for property '{field}' of resource 'FederatedIdentityCredential'."
        ))),
    }
}

/// The checked fields of a credential, from a create body or an update over `old`.
fn checked(body: &Map<String, Value>, old: Option<&Credential>) -> Result<Credential, Response> {
    declared_only(body)?;
    let name = string_field(body, "name")?;
    if let (Some(old), Some(name)) = (old, &name) {
        if name != &old.name {
            return Err(bad_request("Property 'name' is read-only and cannot be changed once the credential is created."));
        }
    }
    let name = name.or_else(|| old.map(|o| o.name.clone()));
    let issuer = string_field(body, "issuer")?.or_else(|| old.map(|o| o.issuer.clone()));
    let subject = string_field(body, "subject")?.or_else(|| old.map(|o| o.subject.clone()));
    let description =
        string_field(body, "description")?.or_else(|| old.and_then(|o| o.description.clone()));
    let audiences = audiences_field(body, old)?;
    let Some(name) = name.filter(|n| !n.is_empty()) else {
        return Err(bad_request("Property 'name' is required."));
    };
    if name.len() > MAX_NAME
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~'))
    {
        return Err(bad_request(&format!(
            "Invalid value specified for property 'name': at most {MAX_NAME} URL-friendly characters."
        )));
    }
    let Some(issuer) = issuer.filter(|v| !v.is_empty()) else {
        return Err(bad_request("Property 'issuer' is required."));
    };
    let Some(subject) = subject.filter(|v| !v.is_empty()) else {
        return Err(bad_request("Property 'subject' is required."));
    };
    let Some(audiences) = audiences else {
        return Err(bad_request("Property 'audiences' is required."));
    };
    if audiences.len() != 1 || audiences[0].is_empty() || audiences[0].len() > MAX_FIELD {
        return Err(bad_request(
            "Invalid value specified for property 'audiences': exactly one value of at most 600 characters.",
        ));
    }
    for (field, v) in [("issuer", &issuer), ("subject", &subject)] {
        if v.len() > MAX_FIELD {
            return Err(bad_request(&format!(
                "Invalid value specified for property '{field}': at most {MAX_FIELD} characters."
            )));
        }
    }
    if description.as_ref().is_some_and(|d| d.len() > MAX_FIELD) {
        return Err(bad_request(
            "Invalid value specified for property 'description': at most 600 characters.",
        ));
    }
    Ok(Credential {
        id: old.map(|o| o.id.clone()).unwrap_or_default(),
        name,
        issuer,
        subject,
        audiences,
        description,
    })
}

/// A 400 for the first property of `body` a federated identity credential does not have.
fn declared_only(body: &Map<String, Value>) -> Result<(), Response> {
    if let Some(k) = body.keys().find(|k| {
        !matches!(
            k.as_str(),
            "name" | "issuer" | "subject" | "audiences" | "description" | "id" | "@odata.type"
        )
    }) {
        return Err(bad_request(&format!(
            "Property '{k}' does not exist as a declared property or extension property."
        )));
    }
    Ok(())
}

/// `audiences` of `body` (strings only), or `old`'s when the body has none.
fn audiences_field(
    body: &Map<String, Value>,
    old: Option<&Credential>,
) -> Result<Option<Vec<String>>, Response> {
    match body.get("audiences") {
        None => Ok(old.map(|o| o.audiences.clone())),
        Some(Value::Array(a)) => Ok(Some(
            a.iter()
                .map(|v| v.as_str().map(String::from))
                .collect::<Option<Vec<String>>>()
                .ok_or_else(|| bad_request("Invalid value specified for property 'audiences'."))?,
        )),
        Some(_) => Err(bad_request(
            "Invalid value specified for property 'audiences'.",
        )),
    }
}

/// Another credential of the app (not `except`) with this issuer and subject.
fn issuer_subject_taken(app: &App, c: &Credential, except: Option<usize>) -> bool {
    app.credentials
        .iter()
        .enumerate()
        .any(|(i, o)| Some(i) != except && o.issuer == c.issuer && o.subject == c.subject)
}

fn create(apps: &mut Apps, index: usize, body: &Map<String, Value>, context: &str) -> Response {
    let mut c = match checked(body, None) {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let app = &apps.apps[index];
    if app.credentials.iter().any(|o| o.name == c.name) {
        return graph_error(
            StatusCode::CONFLICT,
            "Request_MultipleObjectsWithSameKeyValue",
            &format!(
                "Another object with the same value for property name already exists: '{}'.",
                c.name
            ),
        );
    }
    if issuer_subject_taken(app, &c, None) {
        return bad_request("A federated identity credential with this combination of issuer and subject already exists on the application.");
    }
    if app.credentials.len() >= MAX_CREDENTIALS {
        return bad_request(&format!(
            "The application already has the maximum of {MAX_CREDENTIALS} federated identity credentials."
        ));
    }
    c.id = apps.new_id();
    let mut v = c.json();
    v["@odata.context"] = json!(format!("{context}/$entity"));
    apps.apps[index].credentials.push(c);
    (StatusCode::CREATED, Json(v)).into_response()
}

fn update(apps: &mut Apps, index: usize, i: usize, body: &Map<String, Value>) -> Response {
    let app = &apps.apps[index];
    let c = match checked(body, Some(&app.credentials[i])) {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    if issuer_subject_taken(app, &c, Some(i)) {
        return bad_request("A federated identity credential with this combination of issuer and subject already exists on the application.");
    }
    apps.apps[index].credentials[i] = c;
    StatusCode::NO_CONTENT.into_response()
}

/// Why the token endpoint refuses an assertion: status, error, AADSTS code, description.
pub type Refusal = (StatusCode, &'static str, u32, String);

/// Checks an external token presented as a client assertion for an application (workload
/// identity federation): one of its credentials must name the token's issuer, subject
/// and audience, and the token's signature must verify against a key the issuer
/// publishes (`{iss}/.well-known/openid-configuration` -> `jwks_uri`), within its
/// lifetime.
pub async fn check_federated(credentials: &[Credential], assertion: &str) -> Result<(), Refusal> {
    let Ok(header) = jsonwebtoken::decode_header(assertion) else {
        return refuse(50027, "JWT token is invalid or malformed.".into());
    };
    let claims = peek_claims(assertion, header.alg)?;
    let iss = claims["iss"].as_str().unwrap_or_default().to_string();
    federated_match(credentials, &claims, &iss)?;
    let jwks = issuer_keys(&iss).await?;
    let key = match &header.kid {
        Some(kid) => jwks.find(kid),
        None => jwks.keys.first(),
    };
    let Some(key) = key.and_then(|k| jsonwebtoken::DecodingKey::from_jwk(k).ok()) else {
        return refuse(
            700027,
            "Client assertion failed signature validation: no key of the issuer matches its kid."
                .into(),
        );
    };
    match jsonwebtoken::decode::<Value>(assertion, &key, &crate::assertion_validation(header.alg)) {
        Ok(_) => Ok(()),
        Err(e)
            if matches!(
                e.kind(),
                jsonwebtoken::errors::ErrorKind::ExpiredSignature
                    | jsonwebtoken::errors::ErrorKind::ImmatureSignature
            ) =>
        {
            refuse(
                700024,
                "Client assertion is not within its valid time range.".into(),
            )
        }
        Err(_) => refuse(
            700027,
            "Client assertion failed signature validation.".into(),
        ),
    }
}

/// The token endpoint's refusal of an assertion: 401 `invalid_client`.
fn refuse<T>(code: u32, msg: String) -> Result<T, Refusal> {
    Err((StatusCode::UNAUTHORIZED, "invalid_client", code, msg))
}

/// The claims of an assertion, read without checking its signature.
fn peek_claims(assertion: &str, alg: jsonwebtoken::Algorithm) -> Result<Value, Refusal> {
    // The claims first, unverified, to find the credential and the issuer's keys.
    let mut peek = jsonwebtoken::Validation::new(alg);
    peek.insecure_disable_signature_validation();
    peek.validate_aud = false;
    peek.validate_exp = false;
    peek.required_spec_claims.clear();
    let Ok(data) = jsonwebtoken::decode::<Value>(
        assertion,
        &jsonwebtoken::DecodingKey::from_secret(&[]),
        &peek,
    ) else {
        return refuse(50027, "JWT token is invalid or malformed.".into());
    };
    Ok(data.claims)
}

/// A credential naming the assertion's issuer `iss`, subject and one of its audiences;
/// the refusal says which of the three no credential matched first.
fn federated_match(credentials: &[Credential], claims: &Value, iss: &str) -> Result<(), Refusal> {
    let sub = claims["sub"].as_str().unwrap_or_default();
    let auds: Vec<&str> = match &claims["aud"] {
        Value::String(a) => vec![a.as_str()],
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let by_issuer: Vec<&Credential> = credentials.iter().filter(|c| c.issuer == iss).collect();
    if by_issuer.is_empty() {
        return refuse(700211, format!("No matching federated identity record found for presented assertion issuer '{iss}'."));
    }
    let by_subject: Vec<&&Credential> = by_issuer.iter().filter(|c| c.subject == sub).collect();
    if by_subject.is_empty() {
        return refuse(700213, format!("No matching federated identity record found for presented assertion subject '{sub}'."));
    }
    if !by_subject
        .iter()
        .any(|c| c.audiences.iter().any(|a| auds.contains(&a.as_str())))
    {
        return refuse(
            700212,
            "No matching federated identity record found for presented assertion audience.".into(),
        );
    }
    Ok(())
}

/// The issuer's keys: its discovery document (`{iss}/.well-known/openid-configuration`),
/// then the `jwks_uri` it names.
async fn issuer_keys(iss: &str) -> Result<jsonwebtoken::jwk::JwkSet, Refusal> {
    let http = reqwest::Client::new();
    let discovery = format!(
        "{}/.well-known/openid-configuration",
        iss.trim_end_matches('/')
    );
    let jwks_uri = match http.get(&discovery).send().await {
        Ok(r) if r.status().is_success() => match r.json::<Value>().await {
            Ok(v) => v["jwks_uri"].as_str().map(String::from),
            Err(_) => None,
        },
        _ => None,
    };
    let Some(jwks_uri) = jwks_uri else {
        return refuse(
            50166,
            format!("Request to External OIDC endpoint failed: {discovery}."),
        );
    };
    match http.get(&jwks_uri).send().await {
        Ok(r) if r.status().is_success() => match r.json().await {
            Ok(k) => Ok(k),
            Err(_) => refuse(
                50166,
                format!("Request to External OIDC endpoint failed: {jwks_uri}."),
            ),
        },
        _ => refuse(
            50166,
            format!("Request to External OIDC endpoint failed: {jwks_uri}."),
        ),
    }
}
