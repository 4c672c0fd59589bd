//! Microsoft Graph change notifications: a change to a group starts a delta poll at once.
//!
//! What Microsoft documents ("Set up notifications for changes in resource data", "Receive
//! change notifications through webhooks", "Reduce missing subscriptions and change
//! notifications"), and what trustsync does with it:
//! - Creating a subscription, Graph first POSTs to the notification URL with a
//!   `validationToken` query parameter and wants it back within 10 seconds: 200,
//!   `text/plain`, the token as the body. [`answer`] does that only while one of this
//!   controller's own subscription requests (a create, renewal or reauthorization) is in
//!   flight, and only for a token of at most [`MAX_TOKEN_CHARS`] characters (Graph's are
//!   short opaque strings): otherwise the endpoint would echo whatever anyone sends, a
//!   reflection others could use. Every answer is `text/plain` with
//!   `X-Content-Type-Options: nosniff`. The lifecycle URL is the same endpoint.
//! - The endpoint is public (Graph must reach it): requests are limited to
//!   [`RATE_BURST`] at once and [`RATE_PER_SECOND`] after (a token bucket; 429 beyond,
//!   which Graph retries), and bodies to [`MAX_BODY_BYTES`] (413 beyond).
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
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::sync::watch;

use crate::config::NotificationsConfig;
use crate::runtime::metrics::OutcomeLabel;
use crate::runtime::pass::DirectorySource;
use crate::runtime::status::Shared;

pub use crate::runtime::inbox::{Inbox, RandomUnavailable, RATE_BURST, RATE_PER_SECOND};

/// The longest `validationToken` echoed. Graph's are short opaque strings; a longer one is
/// not Graph's.
pub const MAX_TOKEN_CHARS: usize = 1024;

/// The largest request body read. Notifications without resource data are a few hundred
/// bytes each; Graph batches them, well below this.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// A plain-text answer the browser may not reinterpret.
fn text(status: StatusCode, body: impl Into<String>) -> Response {
    (
        status,
        [
            ("content-type", "text/plain; charset=utf-8"),
            ("x-content-type-options", "nosniff"),
        ],
        body.into(),
    )
        .into_response()
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
        return text(
            StatusCode::NOT_FOUND,
            "Graph change notifications are not configured\n",
        );
    }
    if !inbox.bucket.lock().expect("bucket").take(Instant::now()) {
        let mut r = text(
            StatusCode::TOO_MANY_REQUESTS,
            "too many requests; try again in a second\n",
        );
        r.headers_mut()
            .insert("retry-after", axum::http::HeaderValue::from_static("1"));
        return r;
    }
    if let Some(token) = query.get("validationToken") {
        if token.chars().count() > MAX_TOKEN_CHARS {
            return text(
                StatusCode::BAD_REQUEST,
                format!("validationToken longer than {MAX_TOKEN_CHARS} characters\n"),
            );
        }
        if inbox.pending.load(Ordering::SeqCst) == 0 {
            tracing::warn!("a validationToken while no subscription request of this controller is pending; not echoed");
            return text(
                StatusCode::FORBIDDEN,
                "no subscription request of this controller is pending\n",
            );
        }
        return text(StatusCode::OK, token.clone());
    }
    let Ok(collection) = serde_json::from_slice::<Collection>(&body) else {
        return text(
            StatusCode::BAD_REQUEST,
            "not a changeNotificationCollection\n",
        );
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
    text(StatusCode::ACCEPTED, "")
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
        answer_lifecycle(&k, &reader, &mut current).await;
        let now = tokio::time::Instant::now();
        // Graph validates the endpoint while the request is in flight: answered only then.
        let pending = k.shared.inbox.expecting_validation();
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
        drop(pending);
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
        unsubscribe(&k, &id).await;
    }
    k.shared.metrics.graph_subscription_active.set(0);
}

/// Answers the lifecycle notifications that arrived: `reauthorizationRequired` by
/// reauthorizing `current` (or, failing that, dropping it for a new one),
/// `subscriptionRemoved` by dropping it.
async fn answer_lifecycle(
    k: &Keeper,
    reader: &crate::adapters::entra::GraphReader,
    current: &mut Option<String>,
) {
    let events: Vec<String> =
        std::mem::take(&mut *k.shared.inbox.lifecycle.lock().expect("lifecycle"));
    for event in &events {
        tracing::info!(event = %event, "Graph subscription lifecycle notification");
        match (event.as_str(), &*current) {
            ("reauthorizationRequired", Some(id)) => {
                let reauthorized = {
                    let _pending = k.shared.inbox.expecting_validation();
                    reader.reauthorize(id).await
                };
                if let Err(e) = reauthorized {
                    tracing::warn!(error = %e, "cannot reauthorize the Graph subscription; making a new one");
                    let _ = reader.unsubscribe(id).await;
                    *current = None;
                }
            }
            ("subscriptionRemoved", _) => *current = None,
            _ => {}
        }
    }
}

/// Deletes the subscription at shutdown (bounded: it expires on its own).
async fn unsubscribe(k: &Keeper, id: &str) {
    let reader = k.directory.lock().await.reader().cloned();
    if let Some(reader) = reader {
        match tokio::time::timeout(Duration::from_secs(3), reader.unsubscribe(id)).await {
            Ok(Ok(())) => tracing::info!(subscription = %id, "deleted the Graph subscription"),
            _ => {
                tracing::warn!(subscription = %id, "cannot delete the Graph subscription; it expires on its own")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::inbox::{secret, Bucket};

    #[test]
    fn without_the_random_source_there_is_no_inbox_never_an_all_zero_secret() {
        let failing = |_: &mut [u8]| Err(RandomUnavailable("getrandom: unavailable".into()));
        let e = Inbox::with_random(true, failing).err().expect("an error");
        assert!(e.to_string().contains("random source"), "{e}");
        // Off: no secret is needed, and none matches.
        let off = Inbox::with_random(false, failing).expect("off needs none");
        assert!(off.client_state.is_empty());
    }

    #[test]
    fn the_bucket_lets_a_burst_through_then_the_rate() {
        let start = Instant::now();
        let mut b = Bucket {
            tokens: RATE_BURST,
            at: start,
        };
        let burst = (0..100).filter(|_| b.take(start)).count();
        assert_eq!(burst, RATE_BURST as usize);
        let later = start + Duration::from_secs(1);
        let more = (0..100).filter(|_| b.take(later)).count();
        assert_eq!(more, RATE_PER_SECOND as usize);
    }

    #[test]
    fn validation_is_expected_only_while_a_request_is_in_flight() {
        let inbox = Inbox::try_new(true).unwrap();
        assert_eq!(inbox.pending.load(Ordering::SeqCst), 0);
        {
            let _a = inbox.expecting_validation();
            let _b = inbox.expecting_validation();
            assert_eq!(inbox.pending.load(Ordering::SeqCst), 2);
        }
        assert_eq!(inbox.pending.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn secrets_are_random_hex_within_graphs_limit_and_compared_whole() {
        let random =
            |b: &mut [u8]| getrandom::getrandom(b).map_err(|e| RandomUnavailable(e.to_string()));
        let (a, b) = (secret(random).unwrap(), secret(random).unwrap());
        assert_eq!(a.len(), 64);
        assert!(a.len() <= 128 && a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert!(same_secret(&a, &a.clone()));
        assert!(!same_secret(&a, &b));
        assert!(!same_secret(&a, &a[..63]));
    }
}
