//! Hub and spoke: the controller's own credentials (the hub) assume a role in each managed
//! account (the spoke). [`SpokeCredentials`] asks STS once, keeps the credentials, and asks
//! again five minutes before they expire; the SDK clients of that account draw on it.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{self, error::CredentialsError, ProvideCredentials};
use aws_credential_types::Credentials;

use super::AwsClients;
use crate::model::call::Failure;

/// Credentials are renewed this long before they expire.
const RENEW_BEFORE: Duration = Duration::from_secs(300);

/// Credentials for one spoke role, assumed by the hub and cached.
#[derive(Clone)]
pub struct SpokeCredentials(Arc<Inner>);

struct Inner {
    hub: Arc<AwsClients>,
    role_arn: String,
    external_id: Option<String>,
    session_name: String,
    seconds: i32,
    cached: tokio::sync::Mutex<Option<Credentials>>,
}

impl std::fmt::Debug for SpokeCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpokeCredentials")
            .field("role_arn", &self.0.role_arn)
            .finish_non_exhaustive()
    }
}

impl SpokeCredentials {
    /// Credentials for `role_arn`, assumed through `hub` when first needed.
    pub fn new(
        hub: Arc<AwsClients>,
        role_arn: &str,
        external_id: Option<&str>,
        session_name: &str,
        seconds: i32,
    ) -> SpokeCredentials {
        SpokeCredentials(Arc::new(Inner {
            hub,
            role_arn: role_arn.into(),
            external_id: external_id.map(String::from),
            session_name: session_name.into(),
            seconds,
            cached: tokio::sync::Mutex::new(None),
        }))
    }

    /// The role assumed.
    pub fn role_arn(&self) -> &str {
        &self.0.role_arn
    }

    /// Valid credentials: the cached ones, or new ones from STS when they expire within
    /// five minutes. A refusal (no such role, a trust policy that does not name the hub, a
    /// wrong external id) is a permanent failure.
    pub async fn get(&self) -> Result<Credentials, Failure> {
        let mut cached = self.0.cached.lock().await;
        let fresh = |c: &&Credentials| {
            c.expiry()
                .is_none_or(|e| e > SystemTime::now() + RENEW_BEFORE)
        };
        if let Some(c) = cached.as_ref().filter(fresh) {
            return Ok(c.clone());
        }
        let c = self
            .0
            .hub
            .assume_role(
                &self.0.role_arn,
                self.0.external_id.as_deref(),
                &self.0.session_name,
                self.0.seconds,
            )
            .await?;
        tracing::debug!(role = %self.0.role_arn, "assumed the spoke role");
        *cached = Some(c.clone());
        Ok(c)
    }
}

impl ProvideCredentials for SpokeCredentials {
    fn provide_credentials<'a>(&'a self) -> provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        provider::future::ProvideCredentials::new(async move {
            self.get().await.map_err(CredentialsError::provider_error)
        })
    }
}
