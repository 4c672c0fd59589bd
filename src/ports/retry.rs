//! The one error policy: how an error becomes the next delay.
//!
//! Both adapters classify each failure once, as [`Class::Transient`] (throttling, 5xx,
//! timeouts, conflicts; possibly with the server's own `Retry-After`) or
//! [`Class::Permanent`] (validation, access denied, limits). [`retry`] is the only loop
//! that retries a request; the controller's per-change back-off ([`ChangeBackoff`]) uses
//! the same [`Policy`] to space passes over a change that keeps failing.
//!
//! A retry loop never outlives a shutdown: when the stop signal is raised it returns the
//! last error instead of sleeping again, so SIGTERM ends a pass within one request.

use std::future::Future;
use std::time::Duration;

use backoff::backoff::Backoff;
use tokio::sync::watch;

pub use crate::model::call::Class;

/// Exponential back-off with jitter, bounded in total time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// First delay.
    pub initial: Duration,
    /// Largest delay.
    pub max_interval: Duration,
    /// Give up once this much time has passed since the first attempt (`None`: never).
    pub max_elapsed: Option<Duration>,
}

impl Policy {
    /// A fresh back-off sequence for this policy (jitter ±50%). The total budget is kept
    /// by [`retry`] on tokio's clock, not by the sequence.
    pub fn backoff(&self) -> backoff::ExponentialBackoff {
        backoff::ExponentialBackoffBuilder::new()
            .with_initial_interval(self.initial)
            .with_max_interval(self.max_interval)
            .with_randomization_factor(0.5)
            .with_multiplier(2.0)
            .with_max_elapsed_time(None)
            .build()
    }
}

/// A stop signal: `true` once shutdown was requested. `None` never stops.
pub type Stop = Option<watch::Receiver<bool>>;

fn stopped(stop: &Stop) -> bool {
    stop.as_ref().is_some_and(|s| *s.borrow())
}

/// Runs `attempt` until it succeeds, fails permanently, the policy's time runs out, or
/// `stop` is raised. `classify` is asked once per failure; `on_retry` is told of each
/// retry (for counters and logs).
pub async fn retry<T, E, F, Fut>(
    policy: &Policy,
    stop: &Stop,
    classify: impl Fn(&E) -> Class,
    mut on_retry: impl FnMut(&E, Duration),
    mut attempt: F,
) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut delays = policy.backoff();
    let started = tokio::time::Instant::now();
    loop {
        let err = match attempt().await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        let delay = match classify(&err) {
            Class::Permanent => return Err(err),
            Class::Transient { retry_after } => {
                let Some(next) = delays.next_backoff() else {
                    return Err(err);
                };
                retry_after.unwrap_or(next)
            }
        };
        // Never wait past the budget: the whole retry ends within it.
        if policy
            .max_elapsed
            .is_some_and(|budget| started.elapsed() + delay > budget)
        {
            return Err(err);
        }
        if stopped(stop) {
            return Err(err);
        }
        on_retry(&err, delay);
        if !sleep_unless_stopped(delay, stop).await {
            return Err(err);
        }
    }
}

/// Sleeps `delay` unless `stop` is raised first; `false` when it was (or already is).
pub async fn sleep_unless_stopped(delay: Duration, stop: &Stop) -> bool {
    if stopped(stop) {
        return false;
    }
    match stop.clone() {
        Some(mut s) => {
            tokio::select! {
                _ = tokio::time::sleep(delay) => true,
                _ = s.wait_for(|v| *v) => false,
            }
        }
        None => {
            tokio::time::sleep(delay).await;
            true
        }
    }
}

/// Back-off for one planned change that keeps failing, across passes: each failure pushes
/// the next attempt further out; a success (or the change disappearing from the plan)
/// forgets it.
#[derive(Debug)]
pub struct ChangeBackoff {
    delays: backoff::ExponentialBackoff,
    /// When the change may be tried again.
    pub next: tokio::time::Instant,
    /// The last failure, in words.
    pub reason: String,
}

impl ChangeBackoff {
    /// The policy used between passes: 2 s doubling to 5 minutes, for ever.
    pub const POLICY: Policy = Policy {
        initial: Duration::from_secs(2),
        max_interval: Duration::from_secs(300),
        max_elapsed: None,
    };

    /// A back-off after a first failure.
    pub fn new(reason: String) -> ChangeBackoff {
        let mut b = ChangeBackoff {
            delays: Self::POLICY.backoff(),
            next: tokio::time::Instant::now(),
            reason: String::new(),
        };
        b.failed(reason);
        b
    }

    /// Records another failure.
    pub fn failed(&mut self, reason: String) {
        let delay = self
            .delays
            .next_backoff()
            .unwrap_or(Self::POLICY.max_interval);
        self.next = tokio::time::Instant::now() + delay;
        self.reason = reason;
    }

    /// Whether the change is still waiting.
    pub fn waiting(&self) -> bool {
        self.next > tokio::time::Instant::now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[derive(Debug, PartialEq)]
    enum E {
        Busy(Option<u64>),
        Denied,
    }

    fn classify(e: &E) -> Class {
        match e {
            E::Busy(s) => Class::Transient {
                retry_after: s.map(Duration::from_secs),
            },
            E::Denied => Class::Permanent,
        }
    }

    const P: Policy = Policy {
        initial: Duration::from_millis(100),
        max_interval: Duration::from_secs(2),
        max_elapsed: Some(Duration::from_secs(10)),
    };

    #[tokio::test(start_paused = true)]
    async fn transient_errors_are_retried_until_success_and_retry_after_wins() {
        let calls = AtomicU32::new(0);
        let start = tokio::time::Instant::now();
        let r: Result<u32, E> = retry(
            &P,
            &None,
            classify,
            |_, _| {},
            || async {
                match calls.fetch_add(1, Ordering::SeqCst) {
                    0 => Err(E::Busy(Some(7))),
                    1 => Err(E::Busy(None)),
                    n => Ok(n),
                }
            },
        )
        .await;
        assert_eq!(r, Ok(2));
        // 7 s from Retry-After, then the second jittered back-off step (100 to 300 ms).
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(7100) && waited <= Duration::from_millis(7300),
            "{waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_errors_are_not_retried() {
        let calls = AtomicU32::new(0);
        let r: Result<(), E> = retry(
            &P,
            &None,
            classify,
            |_, _| {},
            || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(E::Denied)
            },
        )
        .await;
        assert_eq!(r, Err(E::Denied));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_budget_bounds_the_whole_retry() {
        let start = tokio::time::Instant::now();
        let r: Result<(), E> = retry(
            &P,
            &None,
            classify,
            |_, _| {},
            || async { Err(E::Busy(None)) },
        )
        .await;
        assert_eq!(r, Err(E::Busy(None)));
        // Gives up before the next wait would pass 10 s.
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_secs(7) && waited <= Duration::from_secs(10),
            "{waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_request_ends_the_wait_at_once() {
        let (tx, rx) = watch::channel(false);
        let start = tokio::time::Instant::now();
        let stopper = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            tx.send(true).unwrap();
        });
        let r: Result<(), E> = retry(
            &P,
            &Some(rx),
            classify,
            |_, _| {},
            || async { Err(E::Busy(Some(5))) },
        )
        .await;
        stopper.await.unwrap();
        assert_eq!(r, Err(E::Busy(Some(5))));
        assert_eq!(start.elapsed(), Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn change_backoff_grows_and_expires() {
        let mut b = ChangeBackoff::new("throttled".into());
        assert!(b.waiting());
        let first = b.next - tokio::time::Instant::now();
        assert!(first >= Duration::from_secs(1) && first <= Duration::from_secs(3));
        tokio::time::advance(first).await;
        assert!(!b.waiting());
        b.failed("again".into());
        let second = b.next - tokio::time::Instant::now();
        assert!(
            second >= Duration::from_secs(2) && second <= Duration::from_secs(6),
            "{second:?}"
        );
        assert_eq!(b.reason, "again");
    }
}
