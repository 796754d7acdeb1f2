//! `/v1/auth/*`: sign-up, sign-in, refresh, sign-out and the published password policy.

use axum::extract::State;
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use gatehouse_domain::registration::{SignUp, SignUpOutcome};
use gatehouse_domain::sign_in::{Identifier, SignIn};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::dto::{SignInResponse, TokensResponse, UserResponse};
use crate::auth::Authenticated;
use crate::client::Client;
use crate::error::{ApiError, FieldError};
use crate::extract::ApiJson;
use crate::middleware::limit;
use crate::ratelimit::Bucket;
use crate::state::AppState;

pub(crate) fn routes(state: &AppState) -> Router<AppState> {
    let limited = |bucket: Bucket| from_fn_with_state((state.clone(), bucket), limit);
    Router::new()
        .route("/v1/auth/sign-up", post(sign_up).route_layer(limited(Bucket::SignUp)))
        .route("/v1/auth/sign-in", post(sign_in).route_layer(limited(Bucket::SignIn)))
        .route("/v1/auth/refresh", post(refresh).route_layer(limited(Bucket::Refresh)))
        .route("/v1/auth/sign-out", post(sign_out))
        .route("/v1/auth/password-policy", get(password_policy))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignUpRequest {
    email: String,
    password: String,
    username: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SignUpResponse {
    pub(crate) user: UserResponse,
    /// Absent when email verification is required.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) tokens: Option<TokensResponse>,
}

/// When email verification is required: the one answer to every sign-up, for a new and for a
/// registered address alike.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct VerificationRequiredResponse {
    /// Always `true`.
    pub(crate) verification_required: bool,
}

/// Creates an account; signs it in unless email verification is required. With verification
/// required the answer is `202 {"verification_required": true}` for every address, registered
/// or not (the owner of a registered one gets an email instead); without it, a registered
/// address answers 409 `email_taken` (the account would be signed in at once, so a taken
/// address cannot be hidden). With sign-up switched off (`GATEHOUSE_SIGNUP_ENABLED=false`)
/// every request answers 403 `signup_disabled` and nothing is written.
#[utoipa::path(post, path = "/v1/auth/sign-up", tag = "auth", request_body = SignUpRequest, responses(
    (status = 201, body = SignUpResponse),
    (status = 202, description = "email verification is required (the same answer for every address)", body = VerificationRequiredResponse),
    (status = 403, description = "signup_disabled: sign-up is switched off", body = crate::error::Problem),
    (status = 409, description = "email_taken / username_taken", body = crate::error::Problem),
    (status = 422, description = "validation_failed, password_too_weak, password_breached", body = crate::error::Problem),
    (status = 429, description = "rate_limited", body = crate::error::Problem)))]
pub(crate) async fn sign_up(
    State(state): State<AppState>,
    Client(context): Client,
    ApiJson(body): ApiJson<SignUpRequest>,
) -> Result<Response, ApiError> {
    let request = SignUp {
        email: body.email,
        password: body.password,
        username: body.username,
        first_name: body.first_name,
        last_name: body.last_name,
    };
    match state.accounts.registration.sign_up(request, &context).await? {
        SignUpOutcome::Created { user, tokens } => {
            let answer = SignUpResponse {
                user: (*user).into(),
                tokens: tokens.map(|tokens| (*tokens).into()),
            };
            Ok((StatusCode::CREATED, Json(answer)).into_response())
        }
        SignUpOutcome::VerificationRequired => {
            let answer = VerificationRequiredResponse { verification_required: true };
            Ok((StatusCode::ACCEPTED, Json(answer)).into_response())
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignInRequest {
    email: Option<String>,
    username: Option<String>,
    password: String,
}

/// Signs in with email or username and password. A user with a second factor gets
/// `{mfa_required, mfa_token, methods}` instead of tokens, unless the browser holds a valid
/// trusted-device cookie.
#[utoipa::path(post, path = "/v1/auth/sign-in", tag = "auth", request_body = SignInRequest, responses(
    (status = 200, body = SignInResponse),
    (status = 401, description = "invalid_credentials (also for a locked account, whatever the password)", body = crate::error::Problem),
    (status = 429, description = "rate_limited (per IP or per account)", body = crate::error::Problem)))]
pub(crate) async fn sign_in(
    State(state): State<AppState>,
    Client(context): Client,
    headers: axum::http::HeaderMap,
    ApiJson(body): ApiJson<SignInRequest>,
) -> Result<Json<SignInResponse>, ApiError> {
    let identifier = match (body.email, body.username) {
        (Some(email), None) => Identifier::Email(email),
        (None, Some(username)) => Identifier::Username(username),
        _ => {
            return Err(ApiError::validation(vec![FieldError {
                field: "email".into(),
                code: "email_or_username".into(),
                message: "Give exactly one of email or username.".into(),
            }]));
        }
    };
    let trusted_device = state.pages.device_cookie.from_headers(&headers).map(str::to_owned);
    let request = SignIn { identifier, password: body.password, trusted_device };
    Ok(Json(state.accounts.sign_in.sign_in(request, &context).await?.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RefreshRequest {
    refresh_token: String,
}

/// Exchanges a refresh token for a new token set; the old refresh token is spent. Presenting a
/// spent token revokes the whole session.
#[utoipa::path(post, path = "/v1/auth/refresh", tag = "auth", request_body = RefreshRequest, responses(
    (status = 200, body = TokensResponse),
    (status = 401, description = "invalid_grant", body = crate::error::Problem)))]
pub(crate) async fn refresh(
    State(state): State<AppState>,
    Client(context): Client,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> Result<Json<TokensResponse>, ApiError> {
    Ok(Json(state.accounts.sessions.refresh(&body.refresh_token, &context).await?.into()))
}

/// Ends the session of the bearer token.
#[utoipa::path(post, path = "/v1/auth/sign-out", tag = "auth", security(("bearer" = [])), responses(
    (status = 204), (status = 401, description = "invalid_token", body = crate::error::Problem)))]
pub(crate) async fn sign_out(
    State(state): State<AppState>,
    Client(context): Client,
    Authenticated(principal): Authenticated,
) -> Result<StatusCode, ApiError> {
    state.accounts.sessions.sign_out(&principal, &context).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The password rules, for client-side pre-validation.
#[utoipa::path(get, path = "/v1/auth/password-policy", tag = "auth", responses(
    (status = 200, description = "The password policy", content_type = "application/json")))]
pub(crate) async fn password_policy(State(state): State<AppState>) -> Response {
    let mut response = Json(state.accounts.passwords.policy().published()).into_response();
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("public, max-age=300"),
    );
    response
}
