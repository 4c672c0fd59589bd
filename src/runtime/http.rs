//! The controller's HTTP endpoints: `/healthz`, `/readyz` (ready while the last
//! successful pass is recent), `/metrics` (OpenMetrics text), `/status` (JSON), and
//! `/graph/notifications` for Microsoft Graph's change notifications when configured.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::runtime::status::Shared;

/// The routes, over the shared status.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/status", get(status))
        .route(
            crate::config::NOTIFICATIONS_PATH,
            post(crate::runtime::notify::answer).layer(axum::extract::DefaultBodyLimit::max(
                crate::runtime::notify::MAX_BODY_BYTES,
            )),
        )
        .with_state(shared)
}

/// Ready while the last successful pass is recent and no directory feed has failed for
/// as long. Either way, the body names each failing feed and every request to AWS or
/// Graph that has gone unanswered for a while: what the controller is waiting for when an
/// endpoint accepts connections and never answers.
async fn readyz(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let waiting = shared.pending.waiting(crate::runtime::status::STALLED);
    let (feeds, feed_down) = shared.failing_feeds(shared.ready_max_age);
    let st = shared.status.lock().expect("status");
    let standby = st
        .leadership
        .as_ref()
        .filter(|l| l.role == "standby")
        .map(|l| {
            let holder = l.leader.as_deref().unwrap_or("nobody yet");
            match l.warming {
                None => (
                    StatusCode::OK,
                    format!(
                        "standby: ready to take over (the writers' lease is held by {holder})\n"
                    ),
                ),
                Some(what) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "standby: still reading {what} (the writers' lease is held by {holder})\n"
                    ),
                ),
            }
        });
    let (code, mut body) = match st.last_success {
        // A standby has no pass of its own: it is ready once it has read what taking over
        // needs, and while its feeds are.
        _ if standby.is_some() => standby.unwrap_or((StatusCode::OK, String::new())),
        Some(t) if t.elapsed() <= shared.ready_max_age => (StatusCode::OK, "ready\n".to_string()),
        Some(t) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("last successful pass {}s ago\n", t.elapsed().as_secs()),
        ),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            match &st.waiting_for {
                Some(what) => format!("no successful pass yet: waiting for {what}\n"),
                None => "no successful pass yet\n".to_string(),
            },
        ),
    };
    let code = if feed_down {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        code
    };
    for f in feeds {
        body.push_str(&f);
        body.push('\n');
    }
    for w in waiting {
        body.push_str(&format!(
            "waiting {}s for an answer: {}\n",
            w.seconds, w.request
        ));
    }
    (code, body)
}

async fn metrics_text(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let since = shared
        .status
        .lock()
        .expect("status")
        .last_success
        .map(|t| t.elapsed().as_secs_f64());
    shared
        .metrics
        .since_success
        .set(since.unwrap_or(f64::INFINITY));
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &shared.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                "content-type",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        ),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [("content-type", "text/plain")],
            "cannot encode metrics\n".into(),
        ),
    }
}

async fn status(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let mut doc = shared.status.lock().expect("status").clone();
    doc.waiting_on = shared.pending.waiting(crate::runtime::status::STALLED);
    Json(doc)
}
