//! The receiving end of Microsoft Graph's change notifications, shared by the endpoint,
//! the directory watcher and the subscription keeper ([`crate::runtime::notify`]): the
//! instance's `clientState` secret, the endpoint's rate, and the lifecycle events.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::Notify;

/// Requests answered at once before the rate applies.
pub const RATE_BURST: f64 = 20.0;

/// Requests answered per second, sustained. A notification only starts a poll, and one
/// permit of the poll covers a burst, so more is never needed.
pub const RATE_PER_SECOND: f64 = 10.0;

/// Why the controller cannot serve Graph's notifications.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the operating system's random source for the Graph subscription's clientState: {0}")]
pub struct RandomUnavailable(pub(crate) String);

/// A token bucket: `RATE_BURST` requests at once, `RATE_PER_SECOND` after.
pub(crate) struct Bucket {
    pub(crate) tokens: f64,
    pub(crate) at: Instant,
}

impl Bucket {
    pub(crate) fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * RATE_PER_SECOND).min(RATE_BURST);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// What the notification endpoint shares with the watcher and the subscription keeper.
pub struct Inbox {
    /// Notifications are served only when configured.
    pub(crate) enabled: bool,
    /// The secret this instance's subscription carries (from the OS random source at each
    /// start; empty, and never matched, when notifications are off).
    pub(crate) client_state: String,
    /// This controller's subscription requests in flight: validation is answered only then.
    pub(crate) pending: AtomicUsize,
    /// The endpoint's rate.
    pub(crate) bucket: Mutex<Bucket>,
    /// Wakes the directory watcher for a poll now (one permit: a burst is one poll).
    pub(crate) poll_now: Arc<Notify>,
    /// Lifecycle events for the subscription keeper, oldest first.
    pub(crate) lifecycle: Mutex<Vec<String>>,
    pub(crate) lifecycle_arrived: Notify,
}

impl Inbox {
    /// An inbox; `enabled` when Graph change notifications are configured, and then with a
    /// clientState from the OS random source, or an error: never a guessable one.
    pub fn try_new(enabled: bool) -> Result<Inbox, RandomUnavailable> {
        Self::with_random(enabled, |b| {
            getrandom::getrandom(b).map_err(|e| RandomUnavailable(e.to_string()))
        })
    }

    /// [`Inbox::try_new`]. Without the OS random source the controller must not start:
    /// this stops it (prefer `try_new` and its error).
    pub fn new(enabled: bool) -> Inbox {
        Self::try_new(enabled).unwrap_or_else(|e| panic!("{e}"))
    }

    pub(crate) fn with_random(
        enabled: bool,
        fill: impl FnOnce(&mut [u8]) -> Result<(), RandomUnavailable>,
    ) -> Result<Inbox, RandomUnavailable> {
        let client_state = if enabled {
            secret(fill)?
        } else {
            String::new()
        };
        Ok(Inbox {
            enabled,
            client_state,
            pending: AtomicUsize::new(0),
            bucket: Mutex::new(Bucket {
                tokens: RATE_BURST,
                at: Instant::now(),
            }),
            poll_now: Arc::new(Notify::new()),
            lifecycle: Mutex::new(Vec::new()),
            lifecycle_arrived: Notify::new(),
        })
    }

    /// Marks one of this controller's subscription requests in flight until the guard
    /// drops: Graph's validation request for it is answered meanwhile.
    pub(crate) fn expecting_validation(&self) -> Pending<'_> {
        self.pending.fetch_add(1, Ordering::SeqCst);
        Pending(&self.pending)
    }
}

/// One subscription request in flight; dropped when it is answered (or fails).
pub(crate) struct Pending<'a>(&'a AtomicUsize);

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// 32 bytes from `fill` (the OS random source), hex: the `clientState` (at most 128
/// characters).
pub(crate) fn secret(
    fill: impl FnOnce(&mut [u8]) -> Result<(), RandomUnavailable>,
) -> Result<String, RandomUnavailable> {
    let mut bytes = [0u8; 32];
    fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
