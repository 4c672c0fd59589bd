//! Access tokens for Microsoft Graph, following the Azure SDKs' environment variables.
//!
//! `AZURE_TENANT_ID` and `AZURE_CLIENT_ID`, plus one credential, tried in the Azure SDKs'
//! order: `AZURE_CLIENT_SECRET`, `AZURE_CLIENT_CERTIFICATE_PATH` (a PEM file with the
//! certificate and its RSA private key; the client assertion is an RS256 JWT with the
//! certificate's `x5t`), or `AZURE_FEDERATED_TOKEN_FILE` (Kubernetes workload identity;
//! the file is re-read on every refresh because the kubelet rotates it). The authority is
//! `AZURE_AUTHORITY_HOST` (default `https://login.microsoftonline.com`).
//!
//! Tokens are cached and refreshed five minutes before they expire. Secrets, assertions
//! and tokens never reach an error message or a log line: errors carry the identity
//! platform's error code and description only.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use serde::Deserialize;
use sha1::Digest;

/// Why a token could not be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// Required environment is missing.
    #[error("Entra credentials: {0}")]
    Config(String),
    /// A credential file could not be read or used.
    #[error("Entra credentials: {path}: {message}")]
    CredentialFile {
        path: PathBuf,
        /// What is wrong (never the file's content).
        message: String,
    },
    /// The token endpoint refused.
    #[error("Entra authentication failed for client {client_id} in tenant {tenant_id}: {error}: {description}")]
    Refused {
        /// Tenant.
        tenant_id: String,
        /// Client.
        client_id: String,
        /// OAuth error (`invalid_client`, ...).
        error: String,
        /// The identity platform's description (`AADSTS7000215: ...`).
        description: String,
    },
    /// The token endpoint could not be reached or answered nonsense.
    #[error("Entra token endpoint {url}: {message}")]
    Transport {
        /// The endpoint.
        url: String,
        /// What happened.
        message: String,
    },
}

/// Which credential proves the app's identity. Debug output never shows secrets.
#[derive(Clone)]
pub enum Credential {
    /// A client secret.
    Secret(String),
    /// A PEM file with certificate and private key.
    Certificate(PathBuf),
    /// A file holding a federated (e.g. Kubernetes service account) token.
    FederatedTokenFile(PathBuf),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Secret(_) => write!(f, "Secret(<redacted>)"),
            Credential::Certificate(p) => write!(f, "Certificate({})", p.display()),
            Credential::FederatedTokenFile(p) => write!(f, "FederatedTokenFile({})", p.display()),
        }
    }
}

/// Who to get tokens as, and from where.
#[derive(Debug, Clone)]
pub struct Settings {
    pub tenant_id: String,
    /// Application (client) id.
    pub client_id: String,
    pub credential: Credential,
    /// Authority host, without a trailing slash.
    pub authority: String,
    /// Scope requested (`https://graph.microsoft.com/.default`).
    pub scope: String,
}

impl Settings {
    /// Reads the Azure SDK environment variables.
    pub fn from_env(scope: &str) -> Result<Settings, Error> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let tenant_id = var("AZURE_TENANT_ID")
            .ok_or_else(|| Error::Config("AZURE_TENANT_ID is not set".into()))?;
        let client_id = var("AZURE_CLIENT_ID")
            .ok_or_else(|| Error::Config("AZURE_CLIENT_ID is not set".into()))?;
        let credential = if let Some(s) = var("AZURE_CLIENT_SECRET") {
            Credential::Secret(s)
        } else if let Some(p) = var("AZURE_CLIENT_CERTIFICATE_PATH") {
            Credential::Certificate(p.into())
        } else if let Some(p) = var("AZURE_FEDERATED_TOKEN_FILE") {
            Credential::FederatedTokenFile(p.into())
        } else {
            return Err(Error::Config(
                "no credential: set AZURE_CLIENT_SECRET, AZURE_CLIENT_CERTIFICATE_PATH or AZURE_FEDERATED_TOKEN_FILE".into(),
            ));
        };
        let authority = var("AZURE_AUTHORITY_HOST")
            .unwrap_or_else(|| "https://login.microsoftonline.com".into());
        check_authority(&authority)?;
        Ok(Settings {
            tenant_id,
            client_id,
            credential,
            authority: authority.trim_end_matches('/').into(),
            scope: scope.into(),
        })
    }

    fn token_url(&self) -> String {
        format!("{}/{}/oauth2/v2.0/token", self.authority, self.tenant_id)
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: u64,
}

#[derive(Deserialize, Default)]
struct ErrorResponse {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

/// A cached, self-refreshing token source. Cheap to clone; clones share the cache.
#[derive(Clone)]
pub struct TokenSource {
    settings: Arc<Settings>,
    http: reqwest::Client,
    cache: Arc<tokio::sync::Mutex<Option<(String, Instant)>>>,
    fetches: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Refresh at most this long before expiry.
const MARGIN: Duration = Duration::from_secs(300);

/// When to refresh a token that lives `lifetime`: five minutes before it expires, or half
/// way through a shorter life, so that a short-lived token is still used.
fn refresh_after(lifetime: Duration) -> Duration {
    lifetime - MARGIN.min(lifetime / 2)
}

/// The authority host receives the client secret or assertion: plain HTTP only for the
/// loopback (a local test server), as for the Graph endpoint.
fn check_authority(authority: &str) -> Result<(), Error> {
    let url = url::Url::parse(authority)
        .map_err(|e| Error::Config(format!("AZURE_AUTHORITY_HOST `{authority}`: {e}")))?;
    let loopback = crate::config::is_loopback(&url);
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(Error::Config(format!(
            "AZURE_AUTHORITY_HOST `{authority}`: only https is allowed for a non-loopback host (the credential would travel in clear text)"
        ))),
    }
}

impl TokenSource {
    /// A token source for these settings.
    pub fn new(settings: Settings) -> TokenSource {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("a TLS-capable HTTP client builds");
        TokenSource {
            settings: Arc::new(settings),
            http,
            cache: Default::default(),
            fetches: Default::default(),
        }
    }

    /// The application (client) id tokens are requested as.
    pub fn client_id(&self) -> &str {
        &self.settings.client_id
    }

    /// How many times a token was fetched from the endpoint.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The cached token, if it is still fresh.
    pub fn cached(&self) -> Option<String> {
        let guard = self.cache.try_lock().ok()?;
        guard
            .as_ref()
            .filter(|(_, refresh)| Instant::now() < *refresh)
            .map(|(t, _)| t.clone())
    }

    /// A fresh token, fetched when the cached one is missing or about to expire.
    pub async fn token(&self) -> Result<String, Error> {
        let mut guard = self.cache.lock().await;
        if let Some((t, refresh)) = guard.as_ref() {
            if Instant::now() < *refresh {
                return Ok(t.clone());
            }
        }
        let (token, lifetime) = self.fetch().await?;
        *guard = Some((token.clone(), Instant::now() + refresh_after(lifetime)));
        Ok(token)
    }

    /// Drops the cached token (after a 401).
    pub async fn invalidate(&self) {
        *self.cache.lock().await = None;
    }

    async fn fetch(&self) -> Result<(String, Duration), Error> {
        let s = &self.settings;
        let url = s.token_url();
        let mut form: Vec<(&str, String)> = vec![
            ("grant_type", "client_credentials".into()),
            ("client_id", s.client_id.clone()),
            ("scope", s.scope.clone()),
        ];
        match &s.credential {
            Credential::Secret(secret) => form.push(("client_secret", secret.clone())),
            Credential::Certificate(path) => {
                form.push((
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
                ));
                form.push((
                    "client_assertion",
                    certificate_assertion(path, &s.client_id, &url)?,
                ));
            }
            Credential::FederatedTokenFile(path) => {
                let token = std::fs::read_to_string(path).map_err(|e| Error::CredentialFile {
                    path: path.clone(),
                    message: format!("cannot read the federated token: {}", e.kind()),
                })?;
                form.push((
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
                ));
                form.push(("client_assertion", token.trim().to_string()));
            }
        }
        self.fetches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let transport = |message: String| Error::Transport {
            url: url.clone(),
            message,
        };
        let resp = self
            .http
            .post(&url)
            .form(&form)
            .send()
            .await
            .map_err(|e| transport(transport_message(&e)))?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| transport(transport_message(&e)))?;
        if status.is_success() {
            let t: TokenResponse = serde_json::from_slice(&body)
                .map_err(|_| transport(format!("HTTP {status}: not a token response")))?;
            return Ok((t.access_token, Duration::from_secs(t.expires_in)));
        }
        let err: ErrorResponse = serde_json::from_slice(&body).unwrap_or_default();
        if err.error.is_empty() {
            return Err(transport(format!("HTTP {status}")));
        }
        // The description's first sentence holds the AADSTS code and what is wrong; the
        // rest is trace ids.
        let description = err
            .error_description
            .split(" Trace ID:")
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        Err(Error::Refused {
            tenant_id: s.tenant_id.clone(),
            client_id: s.client_id.clone(),
            error: err.error,
            description,
        })
    }
}

/// What went wrong with a request, without its URL or body.
fn transport_message(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "cannot connect".into()
    } else {
        "request failed".into()
    }
}

/// An RS256 client assertion signed with the certificate's private key.
fn certificate_assertion(
    path: &std::path::Path,
    client_id: &str,
    audience: &str,
) -> Result<String, Error> {
    let bad = |message: &str| Error::CredentialFile {
        path: path.to_path_buf(),
        message: message.into(),
    };
    let pem =
        std::fs::read_to_string(path).map_err(|e| bad(&format!("cannot read: {}", e.kind())))?;
    let cert = pem_block(&pem, "CERTIFICATE").ok_or_else(|| bad("no CERTIFICATE block"))?;
    let der = base64::engine::general_purpose::STANDARD
        .decode(
            cert.lines()
                .filter(|l| !l.starts_with("-----"))
                .collect::<String>(),
        )
        .map_err(|_| bad("the CERTIFICATE block is not base64"))?;
    let key_pem = pem_block(&pem, "PRIVATE KEY")
        .or_else(|| pem_block(&pem, "RSA PRIVATE KEY"))
        .ok_or_else(|| bad("no PRIVATE KEY block"))?;
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(key_pem.as_bytes())
        .map_err(|_| bad("the private key is not an RSA key"))?;
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.x5t =
        Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha1::Sha1::digest(&der)));
    let now = crate::model::clock::unix_seconds();
    let claims = serde_json::json!({
        "aud": audience, "iss": client_id, "sub": client_id,
        "jti": format!("{:x}-{}", now, std::process::id()),
        "nbf": now, "iat": now, "exp": now + 600,
    });
    jsonwebtoken::encode(&header, &claims, &key)
        .map_err(|_| bad("cannot sign the client assertion"))
}

fn pem_block(pem: &str, label: &str) -> Option<String> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin)?;
    let stop = pem[start..].find(&end)? + start + end.len();
    Some(pem[start..stop].to_string())
}

/// Lets graph-rs-sdk put our cached token on its requests. The reader refreshes the token
/// through [`TokenSource::token`] before building each request, so this only hands it over.
#[derive(Clone)]
pub struct GraphAuth(pub TokenSource);

#[async_trait::async_trait]
impl graph_rs_sdk::identity::ClientApplication for GraphAuth {
    fn get_token_silent(&mut self) -> graph_rs_sdk::error::AuthExecutionResult<String> {
        Ok(self.0.cached().unwrap_or_default())
    }

    async fn get_token_silent_async(&mut self) -> graph_rs_sdk::error::AuthExecutionResult<String> {
        Ok(self.0.cached().unwrap_or_default())
    }

    fn with_force_token_refresh(&mut self, _: graph_core::identity::ForceTokenRefresh) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_lived_tokens_are_used_and_refreshed_half_way() {
        assert_eq!(
            refresh_after(Duration::from_secs(3600)),
            Duration::from_secs(3300)
        );
        assert_eq!(
            refresh_after(Duration::from_secs(300)),
            Duration::from_secs(150)
        );
        assert_eq!(
            refresh_after(Duration::from_secs(60)),
            Duration::from_secs(30)
        );
    }

    #[test]
    fn plain_http_authority_only_on_loopback() {
        assert!(check_authority("https://login.microsoftonline.com").is_ok());
        assert!(check_authority("http://127.0.0.1:8080").is_ok());
        assert!(check_authority("http://localhost:1").is_ok());
        let err = check_authority("http://login.example.com")
            .unwrap_err()
            .to_string();
        assert!(err.contains("only https"), "{err}");
    }
}
