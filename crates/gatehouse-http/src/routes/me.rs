//! `/v1/me*`: the signed-in user's profile, password and sessions.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use gatehouse_domain::registration::ProfileUpdate;
use serde::{Deserialize, Deserializer};
use utoipa::ToSchema;

use super::dto::{Page, PageQuery, SessionResponse, UserResponse};
use crate::auth::{Authenticated, Caller};
use crate::client::Client;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};
use crate::middleware::limit;
use crate::ratelimit::Bucket;
use crate::state::AppState;

pub(crate) fn routes(state: &AppState) -> Router<AppState> {
    // A password change checks the current password: it spends the sign-in budget.
    let limited = from_fn_with_state((state.clone(), Bucket::SignIn), limit);
    Router::new()
        .route("/v1/me", get(me).patch(update_me).delete(super::me_data::delete_me))
        .route("/v1/me/password", post(change_password).route_layer(limited))
        .route("/v1/me/sessions", get(sessions))
        .route("/v1/me/sessions/{id}", delete(revoke_session))
}

/// Distinguishes an absent field (`None`: leave it) from `null` (`Some(None)`: clear it).
pub(crate) fn present<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

/// The signed-in user (also for an API key with `profile:read`).
#[utoipa::path(get, path = "/v1/me", tag = "me", security(("bearer" = [])), responses(
    (status = 200, body = UserResponse), (status = 401, description = "invalid_token", body = crate::error::Problem),
    (status = 403, description = "insufficient_scope (an API key without profile:read)", body = crate::error::Problem)))]
pub(crate) async fn me(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<UserResponse>, ApiError> {
    let user = caller.user_with_scope("profile:read")?;
    Ok(Json(state.accounts.registration.me(user)?.into()))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateMeRequest {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    username: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    first_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    last_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    image_url: Option<Option<String>>,
}

/// Updates profile fields; absent fields stay, `null` clears (also for an API key with
/// `profile:write`).
#[utoipa::path(patch, path = "/v1/me", tag = "me", security(("bearer" = [])), request_body = UpdateMeRequest,
    responses((status = 200, body = UserResponse), (status = 409, description = "username_taken", body = crate::error::Problem),
    (status = 403, description = "insufficient_scope (an API key without profile:write)", body = crate::error::Problem),
    (status = 422, description = "validation_failed", body = crate::error::Problem)))]
pub(crate) async fn update_me(
    State(state): State<AppState>,
    Client(context): Client,
    caller: Caller,
    ApiJson(body): ApiJson<UpdateMeRequest>,
) -> Result<Json<UserResponse>, ApiError> {
    let user = caller.user_with_scope("profile:write")?;
    let update = ProfileUpdate {
        username: body.username,
        first_name: body.first_name,
        last_name: body.last_name,
        image_url: body.image_url,
    };
    Ok(Json(state.accounts.registration.update_profile(user, update, &context).await?.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChangePasswordRequest {
    current_password: String,
    new_password: String,
}

/// Changes the password; every other session is signed out.
#[utoipa::path(post, path = "/v1/me/password", tag = "me", security(("bearer" = [])), request_body = ChangePasswordRequest,
    responses((status = 204), (status = 409, description = "conflict: the password was changed meanwhile (nothing changed)", body = crate::error::Problem), (status = 422, description = "validation_failed (a wrong current password, or any while the account is locked), password_too_weak, password_reused, password_breached", body = crate::error::Problem), (status = 429, description = "rate_limited (per IP or per account)", body = crate::error::Problem)))]
pub(crate) async fn change_password(
    State(state): State<AppState>,
    Client(context): Client,
    Authenticated(principal): Authenticated,
    ApiJson(body): ApiJson<ChangePasswordRequest>,
) -> Result<StatusCode, ApiError> {
    state
        .accounts
        .passwords
        .change_password(&principal, &body.current_password, &body.new_password, &context)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The user's active sessions, newest first, a page at a time (also for an API key with
/// `sessions:read`; revoking one needs the user's token).
#[utoipa::path(get, path = "/v1/me/sessions", tag = "me", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = Page<SessionResponse>), (status = 401, description = "invalid_token", body = crate::error::Problem),
    (status = 403, description = "insufficient_scope (an API key without sessions:read)", body = crate::error::Problem),
    (status = 422, description = "validation_failed (cursor)", body = crate::error::Problem)))]
pub(crate) async fn sessions(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<Page<SessionResponse>>, ApiError> {
    let user = caller.user_with_scope("sessions:read")?;
    let sessions = state.accounts.sessions.sessions_of(&user.id).await?;
    let current = caller.session_id().unwrap_or_default().to_owned();
    Ok(Json(Page::of_newest_first(
        sessions,
        &query,
        |session| (session.created_at, session.id.as_str()),
        |session| SessionResponse::new(session, &current),
    )?))
}

/// Revokes one of the user's sessions (another user's is `not_found`).
#[utoipa::path(delete, path = "/v1/me/sessions/{id}", tag = "me", security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 204), (status = 404, body = crate::error::Problem)))]
pub(crate) async fn revoke_session(
    State(state): State<AppState>,
    Client(context): Client,
    Authenticated(principal): Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.accounts.sessions.revoke_own_session(&principal, &id, &context).await?;
    Ok(StatusCode::NO_CONTENT)
}
