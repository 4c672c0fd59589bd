//! JSON batches (`POST /$batch`): many GETs in one round trip, every page of a collection
//! followed, and the requests Graph throttles inside a batch sent again through the one
//! error policy ([`crate::ports::retry`]).

use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::Duration;

use backoff::backoff::Backoff;
use serde_json::Value;

use super::wire::{error_of, header, retry_after, Page, BATCH_SIZE};
use super::{Error, GraphReader};
use crate::ports::retry::Class;

/// How one round of batches ended, when it did not answer every request.
enum Round {
    /// Some requests were throttled or failed with a 5xx: send them again after `wait`.
    Again {
        /// How many requests.
        requests: usize,
        /// The longest `Retry-After` among them, or the back-off for those without.
        wait: Duration,
    },
    /// A batch itself failed: the whole read fails.
    Failed(Error),
}

impl GraphReader {
    /// Every item of one collection (path relative to the endpoint), all pages.
    pub(in crate::adapters::entra) async fn collection(
        &self,
        operation: &str,
        url: String,
    ) -> Result<Vec<Value>, Error> {
        let first = self.batch_get(operation, &[url]).await?;
        self.rest_of_pages(operation, first)
            .await?
            .pop()
            .expect("one collection asked, one answered")
    }

    /// Every item of each collection, given its first page (or that page's error): later
    /// pages follow `@odata.nextLink`, every collection's next page in the same batches,
    /// until none is left. A page that fails fails its collection only.
    pub(in crate::adapters::entra) async fn rest_of_pages(
        &self,
        operation: &str,
        first: Vec<Result<Value, Error>>,
    ) -> Result<Vec<Result<Vec<Value>, Error>>, Error> {
        let mut items: Vec<Result<Vec<Value>, Error>> = Vec::new();
        let mut next: Vec<(usize, String)> = Vec::new();
        let take = |i: usize, page: Value, next: &mut Vec<(usize, String)>| {
            let page = Page::read(operation, page)?;
            if let Some(link) = &page.next_link {
                next.push((i, self.relative(link)?));
            }
            Ok::<_, Error>(page.value)
        };
        for (i, page) in first.into_iter().enumerate() {
            items.push(page.and_then(|p| take(i, p, &mut next)));
        }
        while !next.is_empty() {
            let urls: Vec<String> = next.iter().map(|(_, u)| u.clone()).collect();
            let pages = self.batch_get(operation, &urls).await?;
            let mut more = Vec::new();
            for ((i, _), page) in next.into_iter().zip(pages) {
                match page.and_then(|p| take(i, p, &mut more)) {
                    Ok(values) => {
                        if let Ok(collected) = &mut items[i] {
                            collected.extend(values);
                        }
                    }
                    Err(e) => items[i] = Err(e),
                }
            }
            next = more;
        }
        Ok(items)
    }

    /// A `@odata.nextLink` as a path relative to the endpoint, for a batch.
    fn relative(&self, link: &str) -> Result<String, Error> {
        let base = self.settings.endpoint.as_str().trim_end_matches('/');
        link.strip_prefix(base)
            .map(String::from)
            .ok_or_else(|| Error::Transport {
                operation: "POST /$batch".into(),
                message: format!("next link {link} is not under {base}"),
            })
    }

    /// GETs (paths relative to the endpoint) in JSON batches of [`BATCH_SIZE`]; each
    /// answer's body or error, in the order given. A request Graph throttles or fails with
    /// a 5xx inside a batch is sent again in a later batch once its `Retry-After` (or a
    /// back-off) has passed, for at most `maxRetrySeconds`; a `Retry-After` longer than
    /// `maxRetryAfterSeconds` fails it. A 404 is that request's answer, not a failure of
    /// the batch.
    ///
    /// The rounds are retried by [`crate::ports::retry::retry`], under the same policy as
    /// single requests (its budget, its stop signal). A round that mixes requests with and
    /// without a `Retry-After` waits for the longer of the two, so the back-off for the
    /// ones without is drawn here, from the same policy, once a round.
    pub(in crate::adapters::entra) async fn batch_get(
        &self,
        operation: &str,
        urls: &[String],
    ) -> Result<Vec<Result<Value, Error>>, Error> {
        // Shared by the rounds (each a fresh attempt of the retry), never across a wait.
        let answers: Mutex<Vec<Option<Result<Value, Error>>>> =
            Mutex::new(urls.iter().map(|_| None).collect());
        let pending: Mutex<Vec<usize>> = Mutex::new((0..urls.len()).collect());
        let policy = Self::retry_policy(&self.settings);
        // The one error policy's back-off (exponential, jittered), as for single requests.
        let delays = Mutex::new(policy.backoff());
        let rounds = crate::ports::retry::retry(
            &policy,
            &self.stop,
            |round: &Round| match round {
                Round::Again { wait, .. } => Class::Transient {
                    retry_after: Some(*wait),
                },
                Round::Failed(_) => Class::Permanent,
            },
            |round, wait| {
                let Round::Again { requests, .. } = round else {
                    return;
                };
                self.stats
                    .retries
                    .fetch_add(*requests as u64, Ordering::Relaxed);
                tracing::debug!(
                    operation,
                    requests,
                    wait_ms = wait.as_millis() as u64,
                    "Graph throttled requests inside a batch; sending them again"
                );
            },
            || self.batch_round(operation, urls, &answers, &pending, &delays),
        )
        .await;
        if let Err(Round::Failed(e)) = rounds {
            return Err(e);
        }
        Ok(answers
            .into_inner()
            .unwrap_or_else(|e| e.into_inner())
            .into_iter()
            .enumerate()
            .map(|(i, a)| {
                a.unwrap_or_else(|| {
                    Err(Error::Transport {
                        operation: operation.to_string(),
                        message: format!("no answer for {} in the batch", urls[i]),
                    })
                })
            })
            .collect())
    }

    /// One round of [`Self::batch_get`]: every pending request, in batches; the answers
    /// recorded, and the requests to send again left pending.
    async fn batch_round(
        &self,
        operation: &str,
        urls: &[String],
        answers: &Mutex<Vec<Option<Result<Value, Error>>>>,
        pending: &Mutex<Vec<usize>>,
        delays: &Mutex<backoff::ExponentialBackoff>,
    ) -> Result<(), Round> {
        let backoff = lock(delays)
            .next_backoff()
            .unwrap_or(Duration::from_secs(10));
        let round = lock(pending).clone();
        let mut again = Vec::new();
        let mut wait = Duration::ZERO;
        for chunk in round.chunks(BATCH_SIZE) {
            let reply = self
                .batch_once(operation, urls, chunk)
                .await
                .map_err(Round::Failed)?;
            let mut answers = lock(answers);
            for (i, answer) in self.batch_answers(urls, chunk, &reply) {
                if let Some(after) = answer.retry {
                    wait = wait.max(after.unwrap_or(backoff));
                    again.push(i);
                }
                answers[i] = Some(answer.result);
            }
        }
        if again.is_empty() {
            return Ok(());
        }
        let requests = again.len();
        *lock(pending) = again;
        Err(Round::Again { requests, wait })
    }

    /// Sends one batch of the requests `chunk` (indexes into `urls`), with the retry
    /// policy of single requests. Returns Graph's reply.
    async fn batch_once(
        &self,
        operation: &str,
        urls: &[String],
        chunk: &[usize],
    ) -> Result<Value, Error> {
        let body = serde_json::json!({
            "requests": chunk.iter().map(|i| serde_json::json!({
                "id": i.to_string(), "method": "GET", "url": urls[*i],
            })).collect::<Vec<_>>()
        });
        self.get(operation, |c| c.batch(&body), None).await
    }

    /// Each answer of a batch reply to one of `chunk`'s requests, with whether to send it
    /// again (and its `Retry-After`, if any): a 429 or 5xx is, unless its `Retry-After`
    /// is longer than `maxRetryAfterSeconds`. Answers to requests not asked are ignored.
    fn batch_answers(
        &self,
        urls: &[String],
        chunk: &[usize],
        reply: &Value,
    ) -> Vec<(usize, Answer)> {
        let mut out = Vec::new();
        for r in reply["responses"].as_array().into_iter().flatten() {
            let Some(i) = r["id"].as_str().and_then(|id| id.parse::<usize>().ok()) else {
                continue;
            };
            if !chunk.contains(&i) {
                continue;
            }
            let status = r["status"].as_u64().unwrap_or(0) as u16;
            if (200..300).contains(&status) {
                out.push((i, Answer::of(Ok(r["body"].clone()))));
                continue;
            }
            let (code, message) = error_of(&r["body"]);
            let err = Error::Graph {
                operation: format!("GET {}", urls[i].split('?').next().unwrap_or_default()),
                status,
                code,
                message,
            };
            if status == 429 || status >= 500 {
                if status == 429 {
                    self.stats.throttled.fetch_add(1, Ordering::Relaxed);
                }
                let after = header(&r["headers"], "retry-after").and_then(retry_after);
                match after {
                    Some(d) if d > self.settings.max_retry_after => {
                        out.push((i, Answer::of(Err(err))));
                    }
                    _ => out.push((
                        i,
                        Answer {
                            result: Err(err),
                            retry: Some(after),
                        },
                    )),
                }
            } else {
                out.push((i, Answer::of(Err(err))));
            }
        }
        out
    }
}

/// One request's answer inside a batch.
struct Answer {
    /// Its body or error.
    result: Result<Value, Error>,
    /// `Some` when it is to be sent again: with its `Retry-After`, if it gave one.
    retry: Option<Option<Duration>>,
}

impl Answer {
    /// An answer that is final.
    fn of(result: Result<Value, Error>) -> Answer {
        Answer {
            result,
            retry: None,
        }
    }
}

/// The value behind `m` (one task uses it, so it is never poisoned but by a panic of its own).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
