//! `/v1/admin/webhooks`: webhook endpoints (register, list, read, change, delete, rotate the
//! signing secret, send a test message) and each endpoint's delivery log. A webhook delivery is
//! an outbox delivery: `POST /v1/admin/deliveries/{id}/retry` redelivers it.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use gatehouse_domain::webhooks::{
    DeliveryAttemptView, NewWebhook, WebhookChange, WebhookDelivery, WebhookRecord,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::dto::{Page, PageQuery};
use super::me::present;
use crate::auth::Admin;
use crate::client::Client;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/webhooks", get(list_webhooks).post(create_webhook))
        .route(
            "/v1/admin/webhooks/{id}",
            get(get_webhook).patch(update_webhook).delete(delete_webhook),
        )
        .route("/v1/admin/webhooks/{id}/rotate-secret", post(rotate_secret))
        .route("/v1/admin/webhooks/{id}/test", post(test_webhook))
        .route("/v1/admin/webhooks/{id}/deliveries", get(list_webhook_deliveries))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateWebhookRequest {
    /// `https` (plain `http` outside production); private, loopback, link-local and metadata
    /// addresses are refused unless `GATEHOUSE_OUTBOUND_ALLOW_PRIVATE_TARGETS` is set.
    url: String,
    /// 1 to 50 subscriptions: event types (`user.created`), a family (`organization.*`), or `*`.
    events: Vec<String>,
    description: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateWebhookRequest {
    url: Option<String>,
    events: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    description: Option<Option<String>>,
    /// `false` pauses deliveries (they wait and are retried on the schedule).
    active: Option<bool>,
}

/// An endpoint as admins see it: never its secret.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WebhookResponse {
    id: String,
    url: String,
    description: Option<String>,
    events: Vec<String>,
    active: bool,
    created_at: i64,
    updated_at: i64,
    /// Until when the secret before the last rotation also signs.
    previous_secret_expires_at: Option<i64>,
}

impl From<WebhookRecord> for WebhookResponse {
    fn from(record: WebhookRecord) -> Self {
        WebhookResponse {
            id: record.id,
            url: record.url,
            description: record.description,
            events: record.events,
            active: record.active,
            created_at: record.created_at,
            updated_at: record.updated_at,
            previous_secret_expires_at: record.previous_secret_until,
        }
    }
}

/// An endpoint with its signing secret: shown this once (creation, rotation).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WebhookWithSecretResponse {
    /// `whsec_…`: what a Standard Webhooks library verifies with.
    secret: String,
    #[serde(flatten)]
    webhook: WebhookResponse,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DeliveryAttemptResponse {
    at: i64,
    duration_ms: i64,
    /// The receiver's HTTP status; `null` when it did not answer.
    status_code: Option<i64>,
    /// The start of the receiver's answer (at most 1 KiB).
    response_body: Option<String>,
    error: Option<String>,
}

impl From<DeliveryAttemptView> for DeliveryAttemptResponse {
    fn from(view: DeliveryAttemptView) -> Self {
        DeliveryAttemptResponse {
            at: view.at,
            duration_ms: view.duration_ms,
            status_code: view.status_code,
            response_body: view.response_body,
            error: view.error,
        }
    }
}

/// One delivery of an event to the endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WebhookDeliveryResponse {
    /// The delivery (`POST /v1/admin/deliveries/{id}/retry` redelivers it).
    id: String,
    /// The `webhook-id` the receiver saw.
    event_id: Option<String>,
    event_type: String,
    /// `pending`, `sending`, `delivered` or `dead`.
    status: String,
    attempts: i64,
    created_at: i64,
    delivered_at: Option<i64>,
    next_attempt_at: i64,
    last_attempt: Option<DeliveryAttemptResponse>,
}

impl From<WebhookDelivery> for WebhookDeliveryResponse {
    fn from(delivery: WebhookDelivery) -> Self {
        WebhookDeliveryResponse {
            id: delivery.id,
            event_id: delivery.event_id,
            event_type: delivery.event_type,
            status: delivery.status,
            attempts: delivery.attempts,
            created_at: delivery.created_at,
            delivered_at: delivery.delivered_at,
            next_attempt_at: delivery.next_attempt_at,
            last_attempt: delivery.last_attempt.map(Into::into),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TestDeliveryResponse {
    /// The delivery of the `webhook.test` message (see the endpoint's deliveries).
    delivery_id: String,
}

/// Registers an endpoint; the answer carries its signing secret, shown once.
#[utoipa::path(post, path = "/v1/admin/webhooks", tag = "admin", security(("bearer" = [])), request_body = CreateWebhookRequest,
    responses((status = 201, body = WebhookWithSecretResponse),
    (status = 422, description = "validation_failed (url: invalid, refused_target; events: unknown_event)", body = crate::error::Problem)))]
pub(crate) async fn create_webhook(
    State(state): State<AppState>,
    Client(context): Client,
    Admin(admin): Admin,
    ApiJson(body): ApiJson<CreateWebhookRequest>,
) -> Result<Response, ApiError> {
    let request = NewWebhook { url: body.url, events: body.events, description: body.description };
    let (record, secret) = state.webhooks.create(&admin, request, &context).await?;
    let body = WebhookWithSecretResponse { secret, webhook: record.into() };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// Every endpoint, newest first.
#[utoipa::path(get, path = "/v1/admin/webhooks", tag = "admin", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = Page<WebhookResponse>),
    (status = 422, description = "validation_failed (cursor)", body = crate::error::Problem)))]
pub(crate) async fn list_webhooks(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<Page<WebhookResponse>>, ApiError> {
    let webhooks = state.webhooks.list(&admin).await?;
    Ok(Json(Page::of_newest_first(
        webhooks,
        &query,
        |webhook| (webhook.created_at, webhook.id.as_str()),
        Into::into,
    )?))
}

#[utoipa::path(get, path = "/v1/admin/webhooks/{id}", tag = "admin", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = WebhookResponse), (status = 404, body = crate::error::Problem)))]
pub(crate) async fn get_webhook(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<Json<WebhookResponse>, ApiError> {
    Ok(Json(state.webhooks.get(&admin, &id).await?.into()))
}

/// Changes the URL (checked again), the subscriptions, the description, or pauses it.
#[utoipa::path(patch, path = "/v1/admin/webhooks/{id}", tag = "admin", security(("bearer" = [])), params(("id" = String, Path)),
    request_body = UpdateWebhookRequest,
    responses((status = 200, body = WebhookResponse), (status = 404, body = crate::error::Problem),
    (status = 422, description = "validation_failed", body = crate::error::Problem)))]
pub(crate) async fn update_webhook(
    State(state): State<AppState>,
    Client(context): Client,
    Admin(admin): Admin,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateWebhookRequest>,
) -> Result<Json<WebhookResponse>, ApiError> {
    let change = WebhookChange {
        url: body.url,
        events: body.events,
        description: body.description,
        active: body.active,
    };
    Ok(Json(state.webhooks.update(&admin, &id, change, &context).await?.into()))
}

/// Deletes the endpoint and its deliveries not yet made.
#[utoipa::path(delete, path = "/v1/admin/webhooks/{id}", tag = "admin", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = crate::error::Problem)))]
pub(crate) async fn delete_webhook(
    State(state): State<AppState>,
    Client(context): Client,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.webhooks.delete(&admin, &id, &context).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new signing secret, shown once; the old one also signs for 24 hours.
#[utoipa::path(post, path = "/v1/admin/webhooks/{id}/rotate-secret", tag = "admin", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = WebhookWithSecretResponse), (status = 404, body = crate::error::Problem)))]
pub(crate) async fn rotate_secret(
    State(state): State<AppState>,
    Client(context): Client,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<Json<WebhookWithSecretResponse>, ApiError> {
    let (record, secret) = state.webhooks.rotate_secret(&admin, &id, &context).await?;
    Ok(Json(WebhookWithSecretResponse { secret, webhook: record.into() }))
}

/// Sends a `webhook.test` message to this endpoint.
#[utoipa::path(post, path = "/v1/admin/webhooks/{id}/test", tag = "admin", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 202, body = TestDeliveryResponse), (status = 404, body = crate::error::Problem)))]
pub(crate) async fn test_webhook(
    State(state): State<AppState>,
    Client(context): Client,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let delivery_id = state.webhooks.send_test(&admin, &id, &context).await?;
    Ok((StatusCode::ACCEPTED, Json(TestDeliveryResponse { delivery_id })).into_response())
}

/// The endpoint's deliveries, newest first: status, attempts, and what the last attempt saw
/// (status code, latency, the start of the answer).
#[utoipa::path(get, path = "/v1/admin/webhooks/{id}/deliveries", tag = "admin", security(("bearer" = [])), params(("id" = String, Path), PageQuery),
    responses((status = 200, body = Page<WebhookDeliveryResponse>), (status = 404, body = crate::error::Problem)))]
pub(crate) async fn list_webhook_deliveries(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<Page<WebhookDeliveryResponse>>, ApiError> {
    let limit = query.limit.unwrap_or(50).clamp(1, 100);
    let mut deliveries =
        state.webhooks.deliveries(&admin, &id, query.cursor.as_deref(), limit + 1).await?;
    let more = deliveries.len() > limit as usize;
    deliveries.truncate(limit as usize);
    let next_cursor =
        if more { deliveries.last().map(|delivery| delivery.id.clone()) } else { None };
    Ok(Json(Page { data: deliveries.into_iter().map(Into::into).collect(), next_cursor }))
}
