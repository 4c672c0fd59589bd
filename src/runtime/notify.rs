//! Microsoft Graph change notifications: a change to a group starts a delta poll at once.
//!
//! What Microsoft documents ("Set up notifications for changes in resource data", "Receive
//! change notifications through webhooks", "Reduce missing subscriptions and change
//! notifications"), and what trustsync does with it:
//! - Creating a subscription, Graph first POSTs to the notification URL with a
//!   `validationToken` query parameter and wants it back within 10 seconds: 200,
//!   `text/plain`, the token as the body. [`answer`] does that for any request carrying
//!   one (the lifecycle URL is the same endpoint).
//! - A notification is a `changeNotificationCollection` (`value`: notifications with the
//!   subscription's `clientState`), to be answered with 202 within 3 seconds. A
//!   notification whose `clientState` is not this instance's secret is ignored (counted);
//!   one that is wakes the directory watcher. Nothing in it is believed: the poll reads
//!   what changed from Graph, and polling on `run.directoryPollSeconds` goes on, so a lost,
//!   late or forged notification changes nothing but when the next poll comes.
//! - Lifecycle notifications (`lifecycleEvent`): `reauthorizationRequired` is answered by
//!   reauthorizing (or, failing that, a new subscription), `subscriptionRemoved` by a new
//!   subscription, `missed` by a poll; each also starts a poll.
//! - The subscription ([`keep_subscription`]) lives `expirationMinutes` (Graph allows up to
//!   41,760 for groups) and is renewed at half; a failure to subscribe or renew is logged
//!   and tried again a minute later (polling carries on meanwhile); SIGTERM deletes it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::sync::{watch, Notify};

use crate::config::NotificationsConfig;
use crate::runtime::metrics::OutcomeLabel;
use crate::runtime::pass::DirectorySource;
use crate::runtime::status::Shared;

/// What the notification endpoint shares with the watcher and the subscription keeper.
pub struct Inbox {
    /// Notifications are served only when configured.
    enabled: bool,
    /// The secret this instance's subscription carries (random at each start).
    client_state: String,
    /// Wakes the directory watcher for a poll now (one permit: a burst is one poll).
    pub(crate) poll_now: Arc<Notify>,
    /// Lifecycle events for the subscription keeper, oldest first.
    lifecycle: Mutex<Vec<String>>,
    lifecycle_arrived: Notify,
}

impl Inbox {
    /// An inbox; `enabled` when Graph change notifications are configured.
    pub fn new(enabled: bool) -> Inbox {
        Inbox {
            enabled,
            client_state: secret(),
            poll_now: Arc::new(Notify::new()),
            lifecycle: Mutex::new(Vec::new()),
            lifecycle_arrived: Notify::new(),
        }
    }
}

/// 32 random bytes, hex: the `clientState` (at most 128 characters).
fn secret() -> String {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut bytes);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Equal, in time that does not depend on where they differ.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// One item of a `changeNotificationCollection`, as far as trustsync reads it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Item {
    #[serde(default)]
    client_state: Option<String>,
    #[serde(default)]
    lifecycle_event: Option<String>,
}

#[derive(Deserialize)]
struct Collection {
    value: Vec<Item>,
}

/// `POST /graph/notifications`: the validation handshake, change notifications and
/// lifecycle notifications.
pub async fn answer(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let inbox = &shared.inbox;
    if !inbox.enabled {
        return (
            StatusCode::NOT_FOUND,
            "Graph change notifications are not configured\n",
        )
            .into_response();
    }
    if let Some(token) = query.get("validationToken") {
        return (
            StatusCode::OK,
            [("content-type", "text/plain; charset=utf-8")],
            token.clone(),
        )
            .into_response();
    }
    let Ok(collection) = serde_json::from_slice::<Collection>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            "not a changeNotificationCollection\n",
        )
            .into_response();
    };
    let count = |outcome: &str, n: usize| {
        shared
            .metrics
            .graph_notifications
            .get_or_create(&OutcomeLabel {
                outcome: outcome.into(),
            })
            .inc_by(n as u64);
    };
    let (ours, theirs): (Vec<Item>, Vec<Item>) = collection.value.into_iter().partition(|i| {
        i.client_state
            .as_deref()
            .is_some_and(|s| same_secret(s, &inbox.client_state))
    });
    if !theirs.is_empty() {
        tracing::warn!(
            notifications = theirs.len(),
            "Graph notifications without this instance's clientState; ignored"
        );
        count("ignored", theirs.len());
    }
    if !ours.is_empty() {
        count("poll", ours.len());
        let events: Vec<String> = ours.into_iter().filter_map(|i| i.lifecycle_event).collect();
        if !events.is_empty() {
            inbox.lifecycle.lock().expect("lifecycle").extend(events);
            inbox.lifecycle_arrived.notify_one();
        }
        inbox.poll_now.notify_one();
    }
    StatusCode::ACCEPTED.into_response()
}

/// How the keeper reaches Graph, and when it stops.
pub struct Keeper {
    pub config: NotificationsConfig,
    pub directory: Arc<tokio::sync::Mutex<DirectorySource>>,
    pub shared: Arc<Shared>,
    pub stop: watch::Receiver<bool>,
}

/// Holds one subscription on groups until the stop signal, then deletes it.
pub async fn keep_subscription(mut k: Keeper) {
    let retry = Duration::from_secs(60);
    let minutes = k.config.expiration_minutes;
    let renew_every = Duration::from_secs(minutes * 60 / 2);
    let mut current: Option<String> = None;
    let mut next = tokio::time::Instant::now();
    let mut renew_at = next;
    loop {
        let wait = async {
            tokio::select! {
                _ = tokio::time::sleep_until(next) => {}
                _ = k.shared.inbox.lifecycle_arrived.notified() => {}
            }
        };
        tokio::select! {
            _ = k.stop.wait_for(|s| *s) => break,
            _ = wait => {}
        }
        // Microsoft Graph is connected by the first pass that reads a group.
        let reader = {
            let dir = k.directory.lock().await;
            if let DirectorySource::File(_) = &*dir {
                tracing::warn!("Graph change notifications are configured, but memberships come from a tenant file: not subscribing");
                return;
            }
            dir.reader().cloned()
        };
        let Some(reader) = reader else {
            next = tokio::time::Instant::now() + Duration::from_secs(2);
            continue;
        };
        let events: Vec<String> =
            std::mem::take(&mut *k.shared.inbox.lifecycle.lock().expect("lifecycle"));
        for event in &events {
            tracing::info!(event = %event, "Graph subscription lifecycle notification");
            match (event.as_str(), &current) {
                ("reauthorizationRequired", Some(id)) => {
                    if let Err(e) = reader.reauthorize(id).await {
                        tracing::warn!(error = %e, "cannot reauthorize the Graph subscription; making a new one");
                        let _ = reader.unsubscribe(id).await;
                        current = None;
                    }
                }
                ("subscriptionRemoved", _) => current = None,
                _ => {}
            }
        }
        let now = tokio::time::Instant::now();
        let outcome = match &current {
            None => reader
                .subscribe(&k.config.url, &k.shared.inbox.client_state, minutes)
                .await
                .map(|s| {
                    tracing::info!(subscription = %s.id, expires = %s.expires, "subscribed to Graph change notifications on groups");
                    current = Some(s.id);
                    renew_at = now + renew_every;
                }),
            Some(id) if now >= renew_at => reader.renew(id, minutes).await.map(|expires| {
                tracing::info!(subscription = %id, expires = %expires, "renewed the Graph subscription");
                renew_at = now + renew_every;
            }),
            Some(_) => Ok(()),
        };
        next = match outcome {
            Ok(()) => renew_at,
            Err(e) => {
                tracing::warn!(error = %e, retry_in_s = retry.as_secs(), "Graph change notifications unavailable; polling goes on");
                if matches!(
                    &e,
                    crate::adapters::entra::graph::Error::Graph { status: 404, .. }
                ) {
                    current = None;
                }
                now + retry
            }
        };
        k.shared
            .metrics
            .graph_subscription_active
            .set(i64::from(current.is_some()));
    }
    if let Some(id) = current {
        let reader = k.directory.lock().await.reader().cloned();
        if let Some(reader) = reader {
            match tokio::time::timeout(Duration::from_secs(3), reader.unsubscribe(&id)).await {
                Ok(Ok(())) => tracing::info!(subscription = %id, "deleted the Graph subscription"),
                _ => {
                    tracing::warn!(subscription = %id, "cannot delete the Graph subscription; it expires on its own")
                }
            }
        }
    }
    k.shared.metrics.graph_subscription_active.set(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_hex_within_graphs_limit_and_compared_whole() {
        let (a, b) = (secret(), secret());
        assert_eq!(a.len(), 64);
        assert!(a.len() <= 128 && a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert!(same_secret(&a, &a.clone()));
        assert!(!same_secret(&a, &b));
        assert!(!same_secret(&a, &a[..63]));
    }
}
