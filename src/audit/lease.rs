//! The writers' lease (`audit.s3.lease`): one object, `lease.json`, beside the log in the
//! same bucket, so that it fences every writer (the controller's replicas, and an `apply`
//! from CI or a laptop), not only the pods of one Deployment.
//!
//! What AWS documents and this relies on (Amazon S3 User Guide, "Add preconditions to S3
//! operations with conditional requests"): `PutObject` with `If-None-Match: *` creates the
//! lease only when there is none; with `If-Match: <ETag>` it replaces the lease only when it
//! is still the version the writer read, and answers `412 Precondition Failed` otherwise.
//!
//! No clocks are compared: a standby takes a lease only after it has seen the same ETag for
//! the lease's whole duration by its own monotonic clock (as Kubernetes' leader election
//! does with a Lease's resourceVersion). The leader, in turn, writes only until
//! `duration - renew` after it *sent* its last successful renewal, so it has stopped writing
//! `renew` seconds before any standby may take the lease, whatever the network delayed.
//! A stale leader that still tries is stopped by the log itself: the new leader appends
//! first, and the stale one's next append is refused (`If-None-Match`).

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

pub use super::fence::Fence;
use super::s3::{describe, status_of};
use crate::config::S3AuditConfig;

/// A lease is never believed to last longer than this, whatever its object claims: a
/// lease written with a duration of a year cannot keep the standbys out for a year.
const LONGEST_DURATION: Duration = Duration::from_secs(300);

/// The lease object.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Body {
    /// Who holds it: host, process, a random part.
    pub holder: String,
    /// What holds it: `run` or `apply`.
    pub what: String,
    /// When it was last renewed, by the holder's clock (for people; never compared).
    pub renewed_at: String,
    /// How long the holder believes it holds it after a renewal.
    pub duration_seconds: u64,
    /// Given up: any writer may take it at once.
    #[serde(default)]
    pub released: bool,
}

/// What a standby saw of the lease: the ETag, and since when by its own clock.
#[derive(Debug, Default)]
pub struct Seen {
    etag: Option<String>,
    since: Option<Instant>,
}

/// One writer's lease; see the module documentation.
pub struct Lease {
    client: aws_sdk_s3::Client,
    bucket: String,
    key: String,
    holder: String,
    what: String,
    duration: Duration,
    renew: Duration,
    etag: Option<String>,
    fence: Fence,
}

/// Why a renewal did not renew.
#[derive(Debug)]
pub enum Renewal {
    /// Someone else holds the lease now.
    Lost(String),
    /// S3 did not answer as it should; the lease may still be this writer's.
    Failed(String),
}

impl Lease {
    /// A writer of kind `what` (`run`, `apply`), not holding the lease yet.
    pub fn new(client: aws_sdk_s3::Client, s3: &S3AuditConfig, what: &str) -> Lease {
        Lease {
            client,
            bucket: s3.bucket.clone(),
            key: format!("{}lease.json", s3.prefix),
            holder: holder_id(),
            what: what.to_string(),
            duration: Duration::from_secs(s3.lease.duration_seconds),
            renew: Duration::from_secs(s3.lease.renew_seconds),
            etag: None,
            fence: Fence::default(),
        }
    }

    /// This writer's name in the lease.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Says while this writer may write.
    pub fn fence(&self) -> Fence {
        self.fence.clone()
    }

    /// `s3://bucket/key`.
    pub fn location(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }

    fn body(&self, released: bool) -> Vec<u8> {
        serde_json::to_vec(&Body {
            holder: self.holder.clone(),
            what: self.what.clone(),
            renewed_at: super::now_rfc3339(),
            duration_seconds: self.duration.as_secs(),
            released,
        })
        .expect("the lease serializes")
    }

    /// Writes the lease on condition (`If-None-Match: *` with no ETag, else `If-Match`);
    /// `Ok(Some(etag))` when written, `Ok(None)` when the condition failed.
    async fn put(&self, expect: Option<&str>, released: bool) -> Result<Option<String>, String> {
        let put = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .content_type("application/json")
            .body(aws_sdk_s3::primitives::ByteStream::from(
                self.body(released),
            ));
        let put = match expect {
            Some(etag) => put.if_match(etag),
            None => put.if_none_match("*"),
        };
        match put.send().await {
            Ok(out) => Ok(Some(out.e_tag().unwrap_or_default().to_string())),
            // 412: the condition failed; 404: If-Match on a lease that is gone; 409: a
            // concurrent conditional write won.
            Err(e) if matches!(status_of(&e), Some(412 | 404 | 409)) => Ok(None),
            Err(e) => Err(format!("{}: {}", self.location(), describe(&e))),
        }
    }

    /// One look at the lease: takes it when there is none, it was released, or it has not
    /// changed for its whole duration as `seen` observed it. `Ok(None)`: taken (the fence
    /// now says until when); `Ok(Some(body))`: someone else holds it.
    pub async fn try_take(&mut self, seen: &mut Seen) -> Result<Option<Body>, String> {
        let got = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .send()
            .await;
        let (etag, body) = match got {
            Ok(out) => {
                let etag = out.e_tag().unwrap_or_default().to_string();
                let bytes = out
                    .body
                    .collect()
                    .await
                    .map_err(|e| format!("{}: {e}", self.location()))?
                    .into_bytes();
                (Some(etag), serde_json::from_slice::<Body>(&bytes).ok())
            }
            Err(e) if status_of(&e) == Some(404) => (None, None),
            Err(e) => return Err(format!("{}: {}", self.location(), describe(&e))),
        };
        let duration_seconds = self.duration.as_secs();
        let unknown = move || Body {
            holder: "(a lease object trustsync cannot read)".into(),
            what: "?".into(),
            renewed_at: "?".into(),
            duration_seconds,
            released: false,
        };
        let Some(etag) = etag else {
            return self.take(None).await.map(|taken| (!taken).then(unknown));
        };
        if seen.etag.as_deref() != Some(etag.as_str()) {
            seen.etag = Some(etag.clone());
            seen.since = Some(Instant::now());
        }
        let held = body.clone().unwrap_or_else(unknown);
        let claimed = Duration::from_secs(held.duration_seconds).min(LONGEST_DURATION);
        let unchanged_for = seen.since.map_or(Duration::ZERO, |s| s.elapsed());
        let free = held.released || unchanged_for >= self.duration.max(claimed);
        if !free {
            return Ok(Some(held));
        }
        let taken = self.take(Some(&etag)).await?;
        Ok((!taken).then_some(held))
    }

    async fn take(&mut self, expect: Option<&str>) -> Result<bool, String> {
        let sent = Instant::now();
        match self.put(expect, false).await? {
            Some(etag) => {
                self.etag = Some(etag);
                self.fence.extend(sent + self.duration - self.renew);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Takes the lease, looking every `renewSeconds`; gives up after `wait` (`None`: never)
    /// or when `stop` is set, with who holds it. `waiting` is told each holder seen.
    pub async fn acquire(
        &mut self,
        wait: Option<Duration>,
        mut stop: watch::Receiver<bool>,
        mut waiting: impl FnMut(&Body),
    ) -> Result<(), String> {
        let started = Instant::now();
        let mut seen = Seen::default();
        loop {
            let held = match self.try_take(&mut seen).await {
                Ok(None) => return Ok(()),
                Ok(Some(held)) => Some(held),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the writers' lease");
                    None
                }
            };
            if let Some(held) = &held {
                waiting(held);
            }
            if wait.is_some_and(|w| started.elapsed() >= w) {
                return Err(match held {
                    Some(h) => format!(
                        "the writers' lease {} is held by {} ({}, renewed {}); one writer at a time keeps one chain: wait for it, or stop it",
                        self.location(),
                        h.holder,
                        h.what,
                        h.renewed_at
                    ),
                    None => format!("the writers' lease {} cannot be read", self.location()),
                });
            }
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return Err("stopped while waiting for the writers' lease".into()),
                _ = tokio::time::sleep(self.renew) => {}
            }
        }
    }

    /// Renews the lease (`If-Match` on the ETag this writer last wrote).
    pub async fn renew(&mut self) -> Result<(), Renewal> {
        let Some(etag) = self.etag.clone() else {
            return Err(Renewal::Lost("never taken".into()));
        };
        let sent = Instant::now();
        match self.put(Some(&etag), false).await {
            Ok(Some(next)) => {
                self.etag = Some(next);
                self.fence.extend(sent + self.duration - self.renew);
                Ok(())
            }
            Ok(None) => {
                let why = format!(
                    "the writers' lease {} was taken by another writer",
                    self.location()
                );
                self.fence.end(why.clone());
                self.etag = None;
                Err(Renewal::Lost(why))
            }
            Err(e) => Err(Renewal::Failed(e)),
        }
    }

    /// Gives the lease up, so that a standby (or the controller after an `apply`) takes it
    /// at once; writes nothing more.
    pub async fn release(&mut self) {
        self.fence.end("the lease was given up".into());
        if let Some(etag) = self.etag.take() {
            if let Err(e) = self.put(Some(&etag), true).await {
                tracing::warn!(error = %e, "could not give the writers' lease up; it expires on its own");
            }
        }
    }

    /// Renews every `renewSeconds` until `finish` (sent, or dropped), then gives the lease
    /// up: only after the writer has stopped writing, so that no successor writes beside
    /// it. The returned receiver turns to `Some(reason)` when the lease is lost (taken by
    /// another, or not renewed in time): the fence has closed by then.
    pub fn keep(
        mut self,
        mut finish: tokio::sync::oneshot::Receiver<()>,
    ) -> (tokio::task::JoinHandle<()>, watch::Receiver<Option<String>>) {
        let (lost_tx, lost_rx) = watch::channel(None::<String>);
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = &mut finish => {
                        self.release().await;
                        return;
                    }
                    _ = tokio::time::sleep(self.renew) => {}
                }
                // The log closed the fence (another writer appended where this one meant
                // to): step down, whatever the lease says.
                let ended = self.fence.ended();
                let failed = match ended {
                    Some(why) => Some(why),
                    None => self.renew_or_lose().await,
                };
                if let Some(why) = failed {
                    self.fence.end(why.clone());
                    tracing::error!(reason = %why, "lost the writers' lease: writing nothing more");
                    let _ = lost_tx.send(Some(why));
                    return;
                }
            }
        });
        (task, lost_rx)
    }

    /// One renewal; why the lease is lost, if it is.
    async fn renew_or_lose(&mut self) -> Option<String> {
        {
            match self.renew().await {
                Ok(()) => None,
                Err(Renewal::Lost(why)) => Some(why),
                Err(Renewal::Failed(e)) => {
                    tracing::warn!(error = %e, fence = %self.fence.describe(), "could not renew the writers' lease");
                    (!self.fence.may_write())
                        .then(|| format!("the writers' lease could not be renewed in time ({e})"))
                }
            }
        }
    }
}

/// `host/pid/random`: unique per process, and tells a person which pod or laptop it is.
fn holder_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .unwrap_or_else(|| "unknown-host".into());
    let mut random = [0u8; 4];
    let _ = getrandom::getrandom(&mut random);
    let random: String = random.iter().map(|b| format!("{b:02x}")).collect();
    format!("{host}/{}/{random}", std::process::id())
}
