//! HTTP on one address: `/healthz`, `/readyz`, `/metrics`, `/api/state`,
//! `/api/explain` (why each LED has its colour), `/events` (server-sent events) and
//! `/`, a live page of the LEDs and pods.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use futures::Stream;
use serde_json::json;
use tokio::sync::watch;

use crate::agent::AgentStatus;

const PAGE: &str = include_str!("page.html");

/// The page's JSON: the frame (as `#rrggbb`), the node, the pods and the policy.
pub(crate) fn state_json(status: &AgentStatus) -> serde_json::Value {
    let frame = status.frame();
    let snapshot = status.snapshot.borrow().clone();
    let (ready, reason) = status.ready();
    json!({
        "leds": status.shown_leds().iter().map(ToString::to_string).collect::<Vec<_>>(),
        "policyLeds": frame.leds.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "againAfterMs": frame.again_after_ms,
        "node": snapshot.node,
        "counts": snapshot.counts,
        "pods": snapshot.pods.iter().map(|p| json!({
            "namespace": p.namespace, "name": p.name, "state": p.state, "reason": p.reason,
            "restarts": p.restarts(), "ready": p.ready,
        })).collect::<Vec<_>>(),
        "policy": status.policy(),
        // A candidate evaluated beside it (`--shadow-policy`), never shown.
        "shadow": status.shadow(),
        // Alertmanager: how reading it goes (none when no alerts are read).
        "alerts": status.alerts.as_ref().map(|a| a.report()),
        "alertList": snapshot.alerts,
        // What `podlight status` shows of this node, and where it is published.
        "report": status.report(None),
        "publishing": status.publishing(),
        // Which build answers: a mixed cluster runs one image name on several
        // architectures (Rust's names: x86_64, aarch64, arm).
        "agent": {"version": env!("CARGO_PKG_VERSION"), "arch": std::env::consts::ARCH},
        "nowMs": crate::state::wall_clock_ms(),
        "ready": ready,
        "readyReason": reason,
    })
}

pub(crate) fn router(status: Arc<AgentStatus>) -> Router {
    Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route(
            "/api/state",
            get(|State(s): State<Arc<AgentStatus>>| async move { axum::Json(state_json(&s)) }),
        )
        .route(
            "/api/explain",
            get(|State(s): State<Arc<AgentStatus>>| async move { axum::Json(s.explanation()) }),
        )
        .route("/events", get(events))
        .with_state(status)
}

async fn readyz(State(status): State<Arc<AgentStatus>>) -> Response {
    match status.ready() {
        (true, _) => (StatusCode::OK, "ok\n").into_response(),
        (false, reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        )
            .into_response(),
    }
}

async fn metrics(State(status): State<Arc<AgentStatus>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        status.metrics.render(&status),
    )
        .into_response()
}

/// The state now, then again on every change, at most ten times a second.
async fn events(
    State(status): State<Arc<AgentStatus>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let changes = status.changes.subscribe();
    let stream = futures::stream::unfold(
        (status, changes, true),
        |(status, mut changes, first)| async move {
            if !first {
                changes.changed().await.ok()?;
                tokio::time::sleep(Duration::from_millis(100)).await;
                changes.borrow_and_update();
            }
            let event = Event::default().data(state_json(&status).to_string());
            Some((Ok(event), (status, changes, false)))
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// Serves until `shutdown` turns true. Returns the bound address (port 0 picks one).
pub async fn serve(
    listen: SocketAddr,
    status: Arc<AgentStatus>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let bound = listener.local_addr()?;
    let app = router(status);
    let task = tokio::spawn(async move {
        let stop = async move {
            while !*shutdown.borrow_and_update() {
                if shutdown.changed().await.is_err() {
                    break;
                }
            }
        };
        if let Err(error) = axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::error!(%error, "the HTTP server stopped");
        }
    });
    Ok((bound, task))
}
