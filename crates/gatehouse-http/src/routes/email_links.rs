//! `/v1/auth/email/verify`, `/v1/auth/password/{forgot,reset}`, `/v1/auth/magic-link[/verify]`:
//! the flows whose secret travels by email. Tokens arrive in request bodies and never appear
//! in an answer.

use axum::extract::State;
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use utoipa::ToSchema;

use super::dto::SignInResponse;
use crate::auth::Authenticated;
use crate::browser::return_to::safe_return_to;
use crate::client::Client;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::middleware::limit;
use crate::ratelimit::Bucket;
use crate::state::AppState;

pub(crate) fn routes(state: &AppState) -> Router<AppState> {
    let limited = || from_fn_with_state((state.clone(), Bucket::Email), limit);
    Router::new()
        .route("/v1/auth/email/verify", post(verify_email))
        .route("/v1/auth/email/verify/resend", post(resend_verification).route_layer(limited()))
        .route("/v1/auth/password/forgot", post(forgot_password).route_layer(limited()))
        .route("/v1/auth/password/reset", post(reset_password))
        .route("/v1/auth/magic-link", post(request_magic_link).route_layer(limited()))
        .route("/v1/auth/magic-link/verify", post(magic_link_verify))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokenRequest {
    /// The token from the emailed link.
    token: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EmailRequest {
    email: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MagicLinkRequest {
    email: String,
    /// A same-origin path the hosted magic-link page goes on to after signing in.
    return_to: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResetPasswordRequest {
    token: String,
    new_password: String,
}

/// Marks the email address verified with the token from the verification email.
#[utoipa::path(post, path = "/v1/auth/email/verify", tag = "auth", request_body = TokenRequest, responses(
    (status = 204),
    (status = 400, description = "invalid_token, token_used, token_expired", body = crate::error::Problem)))]
pub(crate) async fn verify_email(
    State(state): State<AppState>,
    Client(context): Client,
    ApiJson(body): ApiJson<TokenRequest>,
) -> Result<StatusCode, ApiError> {
    state.accounts.email_links.verify_email(&body.token, &context).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sends the signed-in user a new verification email (nothing when already verified).
#[utoipa::path(post, path = "/v1/auth/email/verify/resend", tag = "auth", security(("bearer" = [])), responses(
    (status = 202),
    (status = 401, description = "invalid_token", body = crate::error::Problem),
    (status = 429, description = "rate_limited", body = crate::error::Problem)))]
pub(crate) async fn resend_verification(
    State(state): State<AppState>,
    Client(context): Client,
    Authenticated(principal): Authenticated,
) -> Result<StatusCode, ApiError> {
    state.accounts.email_links.resend_verification(&principal, &context).await?;
    Ok(StatusCode::ACCEPTED)
}

/// Sends a password-reset link if the address has an account; the answer is the same either
/// way.
#[utoipa::path(post, path = "/v1/auth/password/forgot", tag = "auth", request_body = EmailRequest, responses(
    (status = 202),
    (status = 429, description = "rate_limited", body = crate::error::Problem)))]
pub(crate) async fn forgot_password(
    State(state): State<AppState>,
    Client(context): Client,
    ApiJson(body): ApiJson<EmailRequest>,
) -> Result<StatusCode, ApiError> {
    state.accounts.email_links.forgot_password(&body.email, &context).await?;
    Ok(StatusCode::ACCEPTED)
}

/// Sets a new password with the token from the reset email; every session ends.
#[utoipa::path(post, path = "/v1/auth/password/reset", tag = "auth", request_body = ResetPasswordRequest, responses(
    (status = 204),
    (status = 400, description = "invalid_token, token_used, token_expired", body = crate::error::Problem),
    (status = 422, description = "password_too_weak, password_breached, password_reused", body = crate::error::Problem)))]
pub(crate) async fn reset_password(
    State(state): State<AppState>,
    Client(context): Client,
    ApiJson(body): ApiJson<ResetPasswordRequest>,
) -> Result<StatusCode, ApiError> {
    state.accounts.email_links.reset_password(&body.token, &body.new_password, &context).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sends a sign-in link if the address has an account; the answer is the same either way.
#[utoipa::path(post, path = "/v1/auth/magic-link", tag = "auth", request_body = MagicLinkRequest, responses(
    (status = 202),
    (status = 404, description = "magic_link_disabled", body = crate::error::Problem),
    (status = 422, description = "validation_failed (return_to)", body = crate::error::Problem),
    (status = 429, description = "rate_limited", body = crate::error::Problem)))]
pub(crate) async fn request_magic_link(
    State(state): State<AppState>,
    Client(context): Client,
    ApiJson(body): ApiJson<MagicLinkRequest>,
) -> Result<StatusCode, ApiError> {
    let return_to = match body.return_to.as_deref() {
        Some(path) => Some(safe_return_to(path).ok_or_else(|| {
            ApiError::validation(vec![crate::error::FieldError {
                field: "return_to".into(),
                code: "invalid_return_to".into(),
                message: "A path on this server, such as /account.".into(),
            }])
        })?),
        None => None,
    };
    state.accounts.email_links.request_magic_link(&body.email, return_to, &context).await?;
    Ok(StatusCode::ACCEPTED)
}

/// Signs in with the token from a magic-link email; the address becomes verified.
#[utoipa::path(post, path = "/v1/auth/magic-link/verify", tag = "auth", request_body = TokenRequest, responses(
    (status = 200, body = SignInResponse),
    (status = 400, description = "invalid_token, token_used, token_expired", body = crate::error::Problem),
    (status = 404, description = "magic_link_disabled", body = crate::error::Problem)))]
pub(crate) async fn magic_link_verify(
    State(state): State<AppState>,
    Client(context): Client,
    ApiJson(body): ApiJson<TokenRequest>,
) -> Result<Json<SignInResponse>, ApiError> {
    Ok(Json(
        state.accounts.email_links.sign_in_with_magic_link(&body.token, &context).await?.into(),
    ))
}
