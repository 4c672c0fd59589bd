//! What one AWS call came to, as the core sees it: a [`Failure`] (classified once, by the
//! adapter that made the call), a [`Written`] confirmation, and [`CallStats`]; and what a
//! whole pass came to ([`PassOutcome`]). No SDK type.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What kind of failure an error is, for the one error policy ([`crate::ports::retry`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Class {
    /// Worth trying again, after the server's `Retry-After` when it gave one.
    Transient {
        /// The delay the server asked for.
        retry_after: Option<Duration>,
    },
    /// Trying again would fail the same way.
    Permanent,
}

/// A request that failed for good (permanent, or transient past the retry budget).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "camelCase")]
#[error("{operation} failed{}: {message}", code.as_ref().map(|c| format!(" ({c})")).unwrap_or_default())]
pub struct Failure {
    /// The AWS operation.
    pub operation: String,
    /// The AWS error code.
    pub code: Option<String>,
    pub message: String,
    /// HTTP status, when a response came back.
    pub status: Option<u16>,
    /// AWS request id.
    pub request_id: Option<String>,
    /// Whether it was transient (and retried until the budget ran out).
    pub transient: bool,
}

impl Failure {
    /// An `AccessDenied` answer (403), as the fakes of the unit tests give.
    #[cfg(test)]
    pub(crate) fn access_denied(operation: &str) -> Failure {
        Failure {
            operation: operation.into(),
            code: Some("AccessDenied".into()),
            message: "denied".into(),
            status: Some(403),
            request_id: None,
            transient: false,
        }
    }

    /// A permanent failure found on our side (an answer that cannot be used, a setting
    /// missing), with no AWS error code.
    pub fn permanent(operation: &str, message: impl Into<String>) -> Failure {
        Failure {
            operation: operation.into(),
            code: None,
            message: message.into(),
            status: None,
            request_id: None,
            transient: false,
        }
    }

    /// The error policy's class: AWS gives no retry-after, so back-off decides the delay.
    pub fn class(&self) -> Class {
        if self.transient {
            Class::Transient { retry_after: None }
        } else {
            Class::Permanent
        }
    }

    /// True when the error code is one of `codes`.
    pub fn is(&self, codes: &[&str]) -> bool {
        self.code.as_deref().is_some_and(|c| codes.contains(&c))
    }

    /// Not sent: another writer changed the resource after this pass read it, so the
    /// pass's view of it is out of date (the membership fast path wrote the role while the
    /// full pass was under way). Apply records it as skipped, not failed; the next pass
    /// reads the resource again.
    pub fn superseded(operation: &str, message: impl Into<String>) -> Failure {
        Failure {
            code: Some(SUPERSEDED.into()),
            ..Failure::permanent(operation, message)
        }
    }

    /// Whether this is [`Failure::superseded`].
    pub fn is_superseded(&self) -> bool {
        self.is(&[SUPERSEDED])
    }
}

/// The code of [`Failure::superseded`] (no AWS error code has a `trustsync.` prefix).
const SUPERSEDED: &str = "trustsync.Superseded";

/// Who is applying, for the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Actor {
    /// This controller instance (`host/pid`).
    pub instance: String,
    /// The AWS caller ARN.
    pub aws_caller: String,
    /// The Entra application (client) id trustsync reads the directory as, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entra_app_id: Option<String>,
}

impl Actor {
    /// The actor for this process and AWS identity.
    pub fn new(aws_caller: &str) -> Actor {
        let host = std::env::var("HOSTNAME")
            .ok()
            .or_else(|| {
                std::fs::read_to_string("/etc/hostname")
                    .ok()
                    .map(|s| s.trim().to_string())
            })
            .unwrap_or_else(|| "unknown-host".into());
        Actor {
            instance: format!("{host}/{}", std::process::id()),
            aws_caller: aws_caller.into(),
            entra_app_id: std::env::var("AZURE_CLIENT_ID")
                .ok()
                .filter(|v| !v.is_empty()),
        }
    }
}

/// What happened to one change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "outcome")]
pub enum Outcome {
    Ok(Written),
    /// AWS refused.
    Failed(Failure),
    /// Not tried: an earlier change to the same resource failed, the controller is
    /// stopping, or another writer changed the resource after the pass read it.
    Skipped {
        reason: String,
    },
}

/// Counters of requests made, by operation.
#[derive(Debug, Default, Clone, Serialize)]
pub struct CallStats {
    /// Requests sent, retries included, by (service, operation).
    pub requests: BTreeMap<(&'static str, &'static str), u64>,
    /// Retries after a transient error.
    pub retries: u64,
    /// Throttling answers among those.
    pub throttled: u64,
}

impl CallStats {
    /// Total requests sent.
    pub fn total(&self) -> u64 {
        self.requests.values().sum()
    }

    /// Adds another's counts to these.
    pub fn add(&mut self, other: &CallStats) {
        for (k, n) in &other.requests {
            *self.requests.entry(*k).or_default() += n;
        }
        self.retries += other.retries;
        self.throttled += other.throttled;
    }
}

/// The result of a successful write.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Written {
    /// AWS request id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Set when the write found the target already in the wanted state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Written {
    /// One write of several requests: the last request id, every note.
    pub fn and(self, next: Written) -> Written {
        let note = match (self.note, next.note) {
            (Some(a), Some(b)) if a != b => Some(format!("{a}; {b}")),
            (a, b) => a.or(b),
        };
        Written {
            request_id: next.request_id.or(self.request_id),
            note,
        }
    }
}

/// Requests under way, shared by every client of one controller (AWS accounts and Graph),
/// so that `/readyz` and `/status` can say what the controller is waiting for when an
/// endpoint accepts a connection and never answers.
#[derive(Debug, Clone, Default)]
pub struct Pending(std::sync::Arc<std::sync::Mutex<PendingInner>>);

#[derive(Debug, Default)]
pub struct PendingInner {
    next: u64,
    under_way: BTreeMap<u64, (String, std::time::Instant)>,
}

/// One request under way; it leaves the set when dropped (answered, failed or abandoned).
#[derive(Debug)]
pub struct PendingGuard {
    set: Pending,
    id: u64,
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        if let Ok(mut inner) = self.set.0.lock() {
            inner.under_way.remove(&self.id);
        }
    }
}

/// A request that has been waiting for an answer, as `/status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Waiting {
    /// Whom it was sent to and what it asks, e.g. `AWS 111111111111 us-east-1 iam GetRole`.
    pub request: String,
    /// Seconds without an answer.
    pub seconds: u64,
}

impl Pending {
    /// Records `what` as under way until the guard is dropped.
    pub fn enter(&self, what: impl Into<String>) -> PendingGuard {
        let mut inner = self.0.lock().expect("pending lock");
        inner.next += 1;
        let id = inner.next;
        inner
            .under_way
            .insert(id, (what.into(), std::time::Instant::now()));
        PendingGuard {
            set: self.clone(),
            id,
        }
    }

    /// The requests waiting at least `min`, the longest first (the same request twice, as
    /// parallel reads of one account, is listed once, with its longest wait).
    pub fn waiting(&self, min: std::time::Duration) -> Vec<Waiting> {
        let inner = self.0.lock().expect("pending lock");
        let mut longest: BTreeMap<&str, std::time::Duration> = BTreeMap::new();
        for (what, since) in inner.under_way.values() {
            let age = since.elapsed();
            if age >= min {
                let e = longest.entry(what.as_str()).or_default();
                *e = (*e).max(age);
            }
        }
        let mut out: Vec<Waiting> = longest
            .into_iter()
            .map(|(request, age)| Waiting {
                request: request.to_string(),
                seconds: age.as_secs(),
            })
            .collect();
        out.sort_by(|a, b| b.seconds.cmp(&a.seconds).then(a.request.cmp(&b.request)));
        out
    }
}

#[cfg(test)]
mod pending_tests {
    use super::*;

    #[test]
    fn a_request_is_waiting_until_its_guard_is_dropped() {
        let p = Pending::default();
        let a = p.enter("AWS 1 iam GetRole");
        let _b = p.enter("Graph GET /groups");
        assert_eq!(p.waiting(std::time::Duration::ZERO).len(), 2);
        assert!(p.waiting(std::time::Duration::from_secs(3600)).is_empty());
        drop(a);
        let w = p.waiting(std::time::Duration::ZERO);
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].request, "Graph GET /groups");
    }
}

/// How a pass ended: one vocabulary for the audit log, `/status` and the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PassOutcome {
    /// Everything planned was applied (or nothing was planned). Older audit logs say
    /// `applied`.
    #[serde(alias = "applied")]
    Success,
    /// The rest was done; some changes wait for a person (a safety limit or a problem).
    Held,
    /// A read or a change failed. Older audit logs say `partial` for a pass in which
    /// some change failed or was not tried.
    #[serde(alias = "partial")]
    Failed,
    /// A stop request ended it before every change was tried.
    Interrupted,
}

impl PassOutcome {
    /// The outcome of a pass that ran its changes: interrupted, else failed when a change
    /// failed, else held when something waits for a person, else success.
    pub fn of(interrupted: bool, failed: usize, needs_attention: bool) -> PassOutcome {
        if interrupted {
            PassOutcome::Interrupted
        } else if failed > 0 {
            PassOutcome::Failed
        } else if needs_attention {
            PassOutcome::Held
        } else {
            PassOutcome::Success
        }
    }

    /// Whether the pass read the world and did what it could: held changes wait for a
    /// person, but the pass itself succeeded.
    pub fn succeeded(self) -> bool {
        matches!(self, PassOutcome::Success | PassOutcome::Held)
    }

    /// The lower-case name, as in the audit log, `/status` and the metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            PassOutcome::Success => "success",
            PassOutcome::Held => "held",
            PassOutcome::Failed => "failed",
            PassOutcome::Interrupted => "interrupted",
        }
    }
}

impl std::fmt::Display for PassOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::PassOutcome;

    #[test]
    fn pass_outcomes_read_the_words_older_logs_wrote() {
        let read = |w: &str| serde_json::from_value::<PassOutcome>(w.into()).unwrap();
        assert_eq!(read("applied"), PassOutcome::Success);
        assert_eq!(read("partial"), PassOutcome::Failed);
        for o in [
            PassOutcome::Success,
            PassOutcome::Held,
            PassOutcome::Failed,
            PassOutcome::Interrupted,
        ] {
            assert_eq!(serde_json::to_value(o).unwrap(), o.as_str());
            assert_eq!(read(o.as_str()), o);
        }
        assert_eq!(PassOutcome::of(false, 0, true), PassOutcome::Held);
        assert_eq!(PassOutcome::of(false, 1, true), PassOutcome::Failed);
        assert_eq!(PassOutcome::of(true, 1, true), PassOutcome::Interrupted);
    }
}
