//! The Entra side of outbound federation in tests: a stand-in for an AWS account's
//! outbound federation issuer (its discovery document and JWKS on loopback, role tokens
//! signed with the fixture key, as AWS signs them), the token exchange a function makes,
//! and a Graph client that reads and writes as the controller does.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

use serde_json::{json, Value};

use super::{repo, GraphServer, CLIENT_ID, CLIENT_SECRET, TENANT_ID};

/// Entra's token exchange audience.
pub const EXCHANGE: &str = "api://AzureADTokenExchange";

/// A stand-in issuer: serves `/.well-known/openid-configuration` and
/// `/.well-known/jwks.json` on a loopback port from a thread of its own, for as long as the
/// test runs, and signs tokens.
pub struct Issuer {
    pub url: String,
    key: jsonwebtoken::EncodingKey,
}

impl Issuer {
    pub fn start() -> Issuer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let jwks = std::fs::read_to_string(repo().join("tests/fixtures/outbound-issuer-jwks.json"))
            .unwrap();
        let discovery = json!({"issuer": url, "jwks_uri": format!("{url}/.well-known/jwks.json"),
                               "id_token_signing_alg_values_supported": ["RS256"]})
        .to_string();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut line = String::new();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                // The rest of the head, up to the blank line.
                let mut header = String::new();
                while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
                    header.clear();
                }
                let path = line.split_whitespace().nth(1).unwrap_or_default();
                let (status, body) = match path {
                    "/.well-known/openid-configuration" => ("200 OK", discovery.as_str()),
                    "/.well-known/jwks.json" => ("200 OK", jwks.as_str()),
                    _ => ("404 Not Found", "{}"),
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        let pem = std::fs::read(repo().join("tests/fixtures/outbound-issuer-key.pem")).unwrap();
        Issuer {
            url,
            key: jsonwebtoken::EncodingKey::from_rsa_pem(&pem).unwrap(),
        }
    }

    /// A token as `GetWebIdentityToken` gives the role `subject`, for `audience`, living
    /// `lifetime` seconds (negative: already expired).
    pub fn token(&self, subject: &str, audience: &str, lifetime: i64) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some("outbound-test-1".into());
        let claims = json!({"iss": self.url, "sub": subject, "aud": audience,
                            "iat": now, "nbf": now - 5, "exp": now + lifetime});
        jsonwebtoken::encode(&header, &claims, &self.key).unwrap()
    }
}

/// What a function does with its AWS-signed token: the client-credentials grant for
/// `app_id` with the token as client assertion. Status and body.
pub async fn exchange(graph: &GraphServer, app_id: &str, assertion: &str) -> (u16, Value) {
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", app_id),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
        ("client_assertion", assertion),
        ("scope", "https://graph.microsoft.com/.default"),
    ];
    let resp = reqwest::Client::new()
        .post(format!("{}/{TENANT_ID}/oauth2/v2.0/token", graph.base))
        .form(&form)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// A Graph client holding the controller's token (client id and secret of the tenant
/// files).
pub struct GraphClient {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl GraphClient {
    pub async fn new(graph: &GraphServer) -> GraphClient {
        let http = reqwest::Client::new();
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("scope", "https://graph.microsoft.com/.default"),
        ];
        let v: Value = http
            .post(format!("{}/{TENANT_ID}/oauth2/v2.0/token", graph.base))
            .form(&form)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        GraphClient {
            http,
            base: format!("{}/v1.0", graph.base),
            token: v["access_token"].as_str().unwrap().to_string(),
        }
    }

    /// One request to `path` (after `/v1.0/`): status and JSON body (null when none).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}/{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}
