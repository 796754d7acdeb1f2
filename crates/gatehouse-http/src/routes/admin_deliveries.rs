//! `/v1/admin/deliveries`: the outbox as admins see it — kind, status, attempts and the last
//! error, never the payload — and a retry.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use gatehouse_domain::notify::{OutboxAttempt, OutboxQuery, OutboxRecord, OutboxStatus};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::dto::{Page, PageQuery};
use crate::auth::Admin;
use crate::client::Client;
use crate::error::{ApiError, FieldError};
use crate::extract::ApiQuery;
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/deliveries", get(list_deliveries))
        .route("/v1/admin/deliveries/{id}/attempts", get(delivery_attempts))
        .route("/v1/admin/deliveries/{id}/retry", post(retry_delivery))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListDeliveriesQuery {
    limit: Option<u32>,
    cursor: Option<String>,
    /// `pending`, `sending`, `delivered` or `dead`.
    status: Option<String>,
}

/// One outbox row. The payload (which holds links with one-time tokens) is never shown.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DeliveryResponse {
    id: String,
    channel: String,
    kind: String,
    status: String,
    attempts: i64,
    next_attempt_at: i64,
    created_at: i64,
    delivered_at: Option<i64>,
    last_error: Option<String>,
}

impl From<OutboxRecord> for DeliveryResponse {
    fn from(row: OutboxRecord) -> Self {
        Self {
            id: row.id,
            channel: row.channel,
            kind: row.kind,
            status: row.status.as_str().to_owned(),
            attempts: row.attempts,
            next_attempt_at: row.next_attempt_at,
            created_at: row.created_at,
            delivered_at: row.delivered_at,
            last_error: row.last_error,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AttemptResponse {
    id: String,
    worker: String,
    status: String,
    error: Option<String>,
    started_at: i64,
    duration_ms: i64,
    /// What an HTTP receiver answered (webhooks): its status and the start of its body.
    status_code: Option<i64>,
    response_body: Option<String>,
}

impl From<OutboxAttempt> for AttemptResponse {
    fn from(attempt: OutboxAttempt) -> Self {
        Self {
            id: attempt.id,
            worker: attempt.worker,
            status: attempt.status.as_str().to_owned(),
            error: attempt.error,
            started_at: attempt.started_at,
            duration_ms: attempt.duration_ms,
            status_code: attempt.report.as_ref().and_then(|report| report.status_code),
            response_body: attempt.report.and_then(|report| report.body),
        }
    }
}

/// Deliveries, newest first.
#[utoipa::path(get, path = "/v1/admin/deliveries", tag = "admin", security(("bearer" = [])), params(ListDeliveriesQuery),
    responses((status = 200, body = Page<DeliveryResponse>), (status = 401, body = crate::error::Problem), (status = 403, body = crate::error::Problem),
        (status = 422, description = "validation_failed (status)", body = crate::error::Problem)))]
pub(crate) async fn list_deliveries(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ApiQuery(query): ApiQuery<ListDeliveriesQuery>,
) -> Result<Json<Page<DeliveryResponse>>, ApiError> {
    let status = match query.status.as_deref() {
        Some(text) => Some(OutboxStatus::parse(text).ok_or_else(|| {
            ApiError::validation(vec![FieldError {
                field: "status".into(),
                code: "invalid_status".into(),
                message: "One of pending, sending, delivered, dead.".into(),
            }])
        })?),
        None => None,
    };
    let page = state
        .deliveries
        .list(
            &admin,
            OutboxQuery { status, before: query.cursor, limit: query.limit.unwrap_or(50) },
        )
        .await?;
    Ok(Json(Page {
        data: page.items.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// The attempts of one delivery, newest first, a page at a time.
#[utoipa::path(get, path = "/v1/admin/deliveries/{id}/attempts", tag = "admin", security(("bearer" = [])), params(("id" = String, Path), PageQuery),
    responses((status = 200, body = Page<AttemptResponse>), (status = 401, body = crate::error::Problem),
    (status = 422, description = "validation_failed (cursor)", body = crate::error::Problem)))]
pub(crate) async fn delivery_attempts(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<Page<AttemptResponse>>, ApiError> {
    // A delivery has a handful of attempts (bounded by `outbox.max_attempts` and retries):
    // read whole, oldest first, and paged newest first like every list.
    let mut attempts = state.deliveries.attempts(&admin, &id).await?;
    attempts.reverse();
    Ok(Json(Page::of_newest_first(
        attempts,
        &query,
        |attempt| (attempt.started_at, attempt.id.as_str()),
        AttemptResponse::from,
    )?))
}

/// Puts a delivery back in the queue, due now, with a fresh attempt budget.
#[utoipa::path(post, path = "/v1/admin/deliveries/{id}/retry", tag = "admin", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 202), (status = 404, body = crate::error::Problem), (status = 409, description = "conflict: being sent", body = crate::error::Problem)))]
pub(crate) async fn retry_delivery(
    State(state): State<AppState>,
    Client(context): Client,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.deliveries.retry(&admin, &id, &context).await?;
    Ok(StatusCode::ACCEPTED)
}
