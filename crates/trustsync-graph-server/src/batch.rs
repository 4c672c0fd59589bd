//! `POST /v1.0/$batch`: JSON batching, at most 20 requests, each answered on its own.

use std::collections::{BTreeSet, HashMap};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{authorized, base_url, graph_error, serve_get, Shared};

/// Most requests one JSON batch may hold.
pub(crate) const BATCH_LIMIT: usize = 20;

#[derive(Deserialize)]
pub(crate) struct BatchBody {
    requests: Vec<BatchRequest>,
}

#[derive(Deserialize)]
pub(crate) struct BatchRequest {
    id: String,
    method: String,
    url: String,
    #[serde(default)]
    headers: HashMap<String, String>,
    #[serde(default, rename = "dependsOn")]
    depends_on: Vec<String>,
}

/// `POST /v1.0/$batch`: each request answered on its own (status, headers, body), in the
/// order given; each is charged and may be throttled like a request of its own. The batch
/// is one HTTP request. Only GET is served inside (the server is read-only for Graph), and
/// `dependsOn` must name an earlier request (they run in order anyway).
pub(crate) async fn graph_batch(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let client = match authorized(&state, &headers) {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    *state
        .lock()
        .expect("state")
        .stats
        .entry("batch".into())
        .or_default() += 1;
    let Ok(batch) = serde_json::from_slice::<BatchBody>(&body) else {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Invalid batch payload format.",
        );
    };
    if batch.requests.is_empty() || batch.requests.len() > BATCH_LIMIT {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!(
                "A batch holds 1 to {BATCH_LIMIT} requests; this one has {}.",
                batch.requests.len()
            ),
        );
    }
    let mut seen = BTreeSet::new();
    for r in &batch.requests {
        if r.depends_on.iter().any(|d| !seen.contains(d)) || !seen.insert(r.id.clone()) {
            return graph_error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!("Request '{}': its id is not unique, or it depends on a request that is not before it.", r.id),
            );
        }
    }
    let base = base_url(&headers);
    let mut responses = Vec::new();
    for r in batch.requests {
        let resp = if r.method.eq_ignore_ascii_case("GET") {
            let url = r.url.trim_start_matches('/');
            let url = url.strip_prefix("v1.0/").unwrap_or(url);
            let (path, query) = match url.split_once('?') {
                Some((p, q)) => (p.to_string(), Some(q.to_string())),
                None => (url.to_string(), None),
            };
            let eventual = r.headers.iter().any(|(k, v)| {
                k.eq_ignore_ascii_case("consistencylevel") && v.eq_ignore_ascii_case("eventual")
            });
            serve_get(&state, &client, &path, &query, &base, eventual).await
        } else {
            graph_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "Request_BadRequest",
                &format!("{} is not served by this server.", r.method),
            )
        };
        responses.push(answer(&r.id, resp).await);
    }
    Json(json!({"responses": responses})).into_response()
}

/// One request's answer as a batch reply carries it: id, status, headers, JSON body.
async fn answer(id: &str, resp: Response) -> Value {
    let status = resp.status().as_u16();
    let mut head = serde_json::Map::new();
    for (k, v) in resp.headers() {
        // Spelled as Graph's batch answers spell them.
        let name = match k.as_str() {
            "retry-after" => "Retry-After",
            "content-type" => "Content-Type",
            other => other,
        };
        if let Ok(v) = v.to_str() {
            head.insert(name.to_string(), json!(v));
        }
    }
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    json!({"id": id, "status": status, "headers": head, "body": body})
}
