//! `/v1/admin/registration-tokens`: initial access tokens for dynamic client registration in
//! `token` mode (RFC 7591 §3): each allows `max_uses` registrations until it expires.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Admin;
use crate::client::Client;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/v1/admin/registration-tokens", post(create))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateRegistrationTokenRequest {
    /// What it is for (shown in the audit log).
    name: String,
    /// 60 seconds to 90 days (default: a day).
    expires_in_seconds: Option<i64>,
    /// How many registrations it allows (default 1).
    max_uses: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RegistrationTokenResponse {
    /// `reg_…`.
    id: String,
    name: String,
    /// The initial access token (`gti_…`): in this answer only. A client sends it as a bearer
    /// token to `POST /oauth2/register`.
    token: String,
    max_uses: i64,
    expires_at: i64,
}

/// Issues an initial access token for dynamic client registration.
#[utoipa::path(post, path = "/v1/admin/registration-tokens", tag = "admin", security(("bearer" = [])),
    request_body = CreateRegistrationTokenRequest,
    responses((status = 201, body = RegistrationTokenResponse), (status = 422, body = crate::error::Problem)))]
pub(crate) async fn create(
    State(state): State<AppState>,
    Client(context): Client,
    Admin(admin): Admin,
    ApiJson(body): ApiJson<CreateRegistrationTokenRequest>,
) -> Result<(StatusCode, Json<RegistrationTokenResponse>), ApiError> {
    let issued = state
        .registration
        .create_initial_token(&admin, &body.name, body.expires_in_seconds, body.max_uses, &context)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(RegistrationTokenResponse {
            id: issued.id,
            name: issued.name,
            token: issued.token,
            max_uses: issued.max_uses,
            expires_at: issued.expires_at,
        }),
    ))
}
