//! The Entra ID side: tokens ([`token`]) and group memberships read from Microsoft Graph
//! ([`graph`]). Produces the [`crate::sources::directory::DirectorySnapshot`] the planner consumes;
//! no Graph type leaves this module.

pub mod delta;
pub mod graph;
pub mod permissions;
mod snapshot;
pub mod subscription;
pub mod token;
mod write;

pub use delta::{DeltaCache, GroupsRound, SyncResult, UsersFeed, UsersPoll};
pub use graph::{GraphReader, ReaderSettings};
pub use token::TokenSource;

use std::time::Duration;

use crate::config::GraphConfig;

/// A Graph reader for the config, with credentials from the Azure SDK environment variables.
pub fn reader_from_env(config: &GraphConfig) -> Result<GraphReader, graph::Error> {
    let endpoint = url::Url::parse(&config.endpoint)
        .map_err(|e| graph::Error::Config(format!("graph.endpoint `{}`: {e}", config.endpoint)))?;
    let settings = token::Settings::from_env(&config.scope)?;
    GraphReader::new(
        TokenSource::new(settings),
        ReaderSettings {
            endpoint,
            max_retry: Duration::from_secs(config.max_retry_seconds),
            max_retry_after: Duration::from_secs(config.max_retry_after_seconds),
            request_timeout: Duration::from_secs(config.request_timeout_seconds),
        },
    )
}
