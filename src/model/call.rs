//! What one AWS call came to, as the core sees it: a [`Failure`] (classified once, by the
//! adapter that made the call), a [`Written`] confirmation, and [`CallStats`]. No SDK type.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

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
    pub fn class(&self) -> crate::runtime::retry::Class {
        if self.transient {
            crate::runtime::retry::Class::Transient { retry_after: None }
        } else {
            crate::runtime::retry::Class::Permanent
        }
    }

    /// True when the error code is one of `codes`.
    pub fn is(&self, codes: &[&str]) -> bool {
        self.code.as_deref().is_some_and(|c| codes.contains(&c))
    }
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
