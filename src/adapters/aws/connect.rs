//! How the controller reaches AWS: the hub (its own credentials, from the standard chain)
//! and, per account, SDK clients per region through the spoke role when one is configured.
//! The only place that builds SDK clients; the fleet ([`crate::runtime::fleet`]) sees
//! each account as a [`Connector`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::spoke::SpokeCredentials;
use super::{AwsClients, CallerIdentity};
use crate::config::Config;
use crate::model::account::Account;
use crate::model::call::{CallStats, Failure, Pending};
use crate::ports::{AwsApi, Connector};

/// Makes the connector of each account (kept by the controller to rediscover).
pub struct Spokes {
    shared: aws_config::SdkConfig,
    config: Config,
    hub: Arc<AwsClients>,
    stop: crate::ports::retry::Stop,
    pending: Pending,
}

impl Spokes {
    /// Connects the hub and reads who it is.
    pub async fn connect(
        config: &Config,
        stop: crate::ports::retry::Stop,
        pending: Pending,
    ) -> Result<(Spokes, CallerIdentity), Failure> {
        let shared = super::shared_config(&config.aws).await?;
        let mut hub = AwsClients::with(&shared, &config.aws);
        hub.stop = stop.clone();
        hub.watch_pending(pending.clone(), "AWS (the controller's own credentials)");
        let hub = Arc::new(hub);
        let caller = hub.caller_identity().await?;
        Ok((
            Spokes {
                shared,
                config: config.clone(),
                hub,
                stop,
                pending,
            },
            caller,
        ))
    }

    /// The hub's clients.
    pub fn hub(&self) -> &Arc<AwsClients> {
        &self.hub
    }

    /// The stop signal every client it makes heeds (shutdown).
    pub fn stop(&self) -> &crate::ports::retry::Stop {
        &self.stop
    }

    /// The configuration it was made with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// How to reach `account`: its spoke role when it has one, else the hub's credentials.
    pub fn connector(&self, account: &Account) -> Box<dyn Connector> {
        let spoke = account.role_arn.as_deref().map(|arn| {
            SpokeCredentials::new(
                self.hub.clone(),
                arn,
                account.external_id.as_deref(),
                &self.config.accounts.session_name,
                self.config.accounts.session_seconds,
            )
        });
        Box::new(Clients {
            shared: self.shared.clone(),
            config: self.config.aws.clone(),
            spoke,
            stop: self.stop.clone(),
            pending: self.pending.clone(),
            account: account.id.clone(),
            by_region: Mutex::new(BTreeMap::new()),
        })
    }
}

/// An account's SDK clients, per region, with its own credentials (a spoke role) or the
/// hub's.
struct Clients {
    shared: aws_config::SdkConfig,
    config: crate::config::AwsConfig,
    spoke: Option<SpokeCredentials>,
    stop: crate::ports::retry::Stop,
    /// Requests under way, for `/readyz`; its own labelled with `account`.
    pending: Pending,
    account: String,
    by_region: Mutex<BTreeMap<String, Arc<AwsClients>>>,
}

#[async_trait::async_trait]
impl Connector for Clients {
    async fn reach(&self) -> Result<(), Failure> {
        match &self.spoke {
            Some(s) => s.get().await.map(|_| ()),
            None => Ok(()),
        }
    }

    fn clients(&self, region: &str) -> Arc<dyn AwsApi> {
        let mut by_region = self.by_region.lock().expect("clients lock");
        let clients = by_region.entry(region.to_string()).or_insert_with(|| {
            let mut b = self
                .shared
                .to_builder()
                .region(aws_config::Region::new(region.to_string()));
            if let Some(spoke) = &self.spoke {
                b = b.credentials_provider(
                    aws_credential_types::provider::SharedCredentialsProvider::new(spoke.clone()),
                );
            }
            let mut c = AwsClients::with(&b.build(), &self.config);
            c.stop = self.stop.clone();
            c.watch_pending(
                self.pending.clone(),
                &format!("AWS account {} {region}", self.account),
            );
            Arc::new(c)
        });
        clients.clone()
    }

    fn stats(&self) -> CallStats {
        let mut total = CallStats::default();
        for c in self.by_region.lock().expect("clients lock").values() {
            total.add(&c.stats());
        }
        total
    }
}
