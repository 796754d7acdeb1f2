//! Operations endpoints: liveness, readiness and Prometheus metrics.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Health {
    /// Always `ok` while the process runs.
    status: &'static str,
}

/// Liveness: 200 while the process runs.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Health)))]
pub(crate) async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Readiness: 200 when every dependency answers, 503 naming the ones that did not. Reasons are
/// logged, not published (they can name hosts).
#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, body = crate::summaries::Readiness), (status = 503, body = crate::summaries::Readiness)))]
pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    let answer = crate::summaries::check_dependencies(&state).await;
    let status =
        if answer.failed.is_empty() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(answer)).into_response()
}

/// The outbox and the event queue, read now: deliveries by channel and outcome
/// (`gatehouse_outbox_deliveries{channel,status}`: `pending`, `sending`, `delivered`, `dead`,
/// delivered ones until the sweeper removes them), the age of the oldest waiting delivery
/// (`gatehouse_outbox_oldest_pending_seconds{channel}`), and events waiting for the relay
/// (`gatehouse_event_queue_depth`, `gatehouse_event_queue_oldest_seconds`). A failed read
/// leaves the previous values (and is logged): metrics never fail a scrape.
async fn record_queues(state: &AppState) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX));
    match state.deliveries.stats().await {
        Ok(stats) => {
            let mut oldest: BTreeMap<String, i64> = BTreeMap::new();
            for stat in &stats {
                state.metrics.set_gauge(
                    "gatehouse_outbox_deliveries",
                    &[
                        ("channel", stat.channel.clone()),
                        ("status", stat.status.as_str().to_owned()),
                    ],
                    stat.count as f64,
                );
                if stat.status == gatehouse_domain::notify::OutboxStatus::Pending {
                    oldest.insert(stat.channel.clone(), (now - stat.oldest_created_at).max(0));
                }
            }
            for channel in stats.iter().map(|stat| stat.channel.clone()) {
                let age = oldest.get(&channel).copied().unwrap_or(0);
                state.metrics.set_gauge(
                    "gatehouse_outbox_oldest_pending_seconds",
                    &[("channel", channel)],
                    age as f64,
                );
            }
        }
        Err(error) => tracing::warn!(%error, "metrics: could not read the outbox"),
    }
    match state.webhooks.backlog().await {
        Ok((queued, oldest)) => {
            state.metrics.set_gauge("gatehouse_event_queue_depth", &[], queued as f64);
            state.metrics.set_gauge("gatehouse_event_queue_oldest_seconds", &[], oldest as f64);
        }
        Err(error) => tracing::warn!(%error, "metrics: could not read the event queue"),
    }
}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, content_type = "text/plain")))]
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    record_queues(&state).await;
    let mut response = state.metrics.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}
