//! The daemon's HTTP server: `/healthz` (the process is alive, and what is degraded), `/readyz`
//! (broker connected and store answering) and `/metrics` (Prometheus), which
//! can instead be served on its own address (`http.metrics_listen`).

use crate::metrics::Metrics;
use crate::store::Store;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use std::sync::Arc;
use std::time::Duration;

/// What the handlers need.
#[derive(Clone)]
pub struct HttpState<S> {
    pub store: S,
    pub metrics: Arc<Metrics>,
}

/// Routes of the main listener; `/metrics` is included when `with_metrics`.
pub fn router<S: Store>(state: HttpState<S>, with_metrics: bool) -> Router {
    let mut r = Router::new()
        .route("/healthz", get(healthz::<S>))
        .route("/readyz", get(readyz::<S>));
    if with_metrics {
        r = r.route("/metrics", get(metrics::<S>));
    }
    r.with_state(state)
}

/// Routes of a separate metrics listener.
pub fn metrics_router<S: Store>(state: HttpState<S>) -> Router {
    Router::new()
        .route("/metrics", get(metrics::<S>))
        .with_state(state)
}

/// Liveness: always 200 while the process runs; the body says what is degraded
/// (from the metrics, without touching the database).
async fn healthz<S: Store>(State(s): State<HttpState<S>>) -> impl IntoResponse {
    let body = serde_json::json!({
        "status": "alive",
        "broker_connected": s.metrics.broker_connected.get() == 1,
        "store_up": s.metrics.store_up.get() == 1,
    })
    .to_string();
    ([(header::CONTENT_TYPE, "application/json")], body)
}

async fn readyz<S: Store>(State(s): State<HttpState<S>>) -> impl IntoResponse {
    let broker = s.metrics.broker_connected.get() == 1 && s.metrics.subscribed.get() == 1;
    let store = matches!(
        tokio::time::timeout(Duration::from_secs(2), s.store.ping()).await,
        Ok(Ok(()))
    );
    let body = serde_json::json!({ "broker": broker, "store": store }).to_string();
    let status = if broker && store {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, [(header::CONTENT_TYPE, "application/json")], body)
}

async fn metrics<S: Store>(State(s): State<HttpState<S>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
}
