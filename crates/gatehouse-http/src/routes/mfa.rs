//! `/v1/auth/mfa/*` (the second step of sign-in, and the enrolment a required-MFA sign-in goes
//! through) and `/v1/auth/reauthenticate` (step-up). The user's own factors are in `me_mfa`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use gatehouse_domain::mfa::{MfaVerification, Reauthentication, TotpEnrolment};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::dto::TokensResponse;
use crate::auth::Authenticated;
use crate::client::Client;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::middleware::limit;
use crate::ratelimit::Bucket;
use crate::state::AppState;

pub(crate) fn routes(state: &AppState) -> Router<AppState> {
    let limited = |bucket: Bucket| from_fn_with_state((state.clone(), bucket), limit);
    Router::new()
        .route("/v1/auth/mfa/verify", post(verify).route_layer(limited(Bucket::SignIn)))
        .route("/v1/auth/mfa/send-code", post(send_code).route_layer(limited(Bucket::Email)))
        .route("/v1/auth/reauthenticate", post(reauthenticate).route_layer(limited(Bucket::SignIn)))
        .route(
            "/v1/auth/reauthenticate/send-code",
            post(send_reauthentication_code).route_layer(limited(Bucket::Email)),
        )
        .route(
            "/v1/auth/mfa/enrol/totp",
            post(begin_required_totp).route_layer(limited(Bucket::SignIn)),
        )
        .route(
            "/v1/auth/mfa/enrol/totp/confirm",
            post(confirm_required_totp).route_layer(limited(Bucket::SignIn)),
        )
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct VerifyRequest {
    mfa_token: String,
    /// `totp`, `backup_code`, `email` or `sms`.
    method: String,
    code: String,
    /// Skip the second factor on this browser for the configured time (a signed, HttpOnly
    /// cookie).
    #[serde(default)]
    trust_device: bool,
}

/// Completes a sign-in with a second factor.
#[utoipa::path(post, path = "/v1/auth/mfa/verify", tag = "auth", request_body = VerifyRequest, responses(
    (status = 200, body = TokensResponse),
    (status = 400, description = "invalid_mfa_code, mfa_code_replayed, mfa_code_expired, mfa_attempts_exhausted, backup_code_used, mfa_method_unavailable", body = crate::error::Problem),
    (status = 401, description = "invalid_mfa_token, mfa_token_expired", body = crate::error::Problem),
    (status = 429, description = "rate_limited (per IP or per account)", body = crate::error::Problem)))]
pub(crate) async fn verify(
    State(state): State<AppState>,
    Client(context): Client,
    ApiJson(body): ApiJson<VerifyRequest>,
) -> Result<Response, ApiError> {
    let request = MfaVerification {
        mfa_token: body.mfa_token,
        method: body.method,
        code: body.code,
        trust_device: body.trust_device,
    };
    let verified = state.accounts.sign_in.verify_mfa(request, &context).await?;
    let mut response = Json(TokensResponse::from(verified.tokens)).into_response();
    if let Some(device) = verified.trusted_browser {
        state.pages.device_cookie.set(&mut response, &device.token, device.max_age_seconds);
    }
    Ok(response)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SendCodeRequest {
    mfa_token: String,
    /// `email` or `sms`.
    method: String,
}

/// Sends a sign-in code by email or SMS (six digits, five minutes, five tries).
#[utoipa::path(post, path = "/v1/auth/mfa/send-code", tag = "auth", request_body = SendCodeRequest, responses(
    (status = 202), (status = 400, description = "mfa_method_unavailable", body = crate::error::Problem),
    (status = 401, description = "invalid_mfa_token, mfa_token_expired", body = crate::error::Problem)))]
pub(crate) async fn send_code(
    State(state): State<AppState>,
    Client(context): Client,
    ApiJson(body): ApiJson<SendCodeRequest>,
) -> Result<StatusCode, ApiError> {
    state.accounts.sign_in.send_mfa_code(&body.mfa_token, &body.method, &context).await?;
    Ok(StatusCode::ACCEPTED)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChallengeRequest {
    mfa_token: String,
}

/// MFA is required and the user has none (`enrolment_required` at sign-in): starts TOTP
/// enrolment with the sign-in's `mfa_token`.
#[utoipa::path(post, path = "/v1/auth/mfa/enrol/totp", tag = "auth", request_body = ChallengeRequest, responses(
    (status = 200, body = TotpEnrolmentResponse),
    (status = 401, description = "invalid_mfa_token, mfa_token_expired", body = crate::error::Problem)))]
pub(crate) async fn begin_required_totp(
    State(state): State<AppState>,
    Client(context): Client,
    ApiJson(body): ApiJson<ChallengeRequest>,
) -> Result<Json<TotpEnrolmentResponse>, ApiError> {
    Ok(Json(state.accounts.sign_in.begin_required_totp(&body.mfa_token, &context).await?.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChallengeCodeRequest {
    mfa_token: String,
    code: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct EnrolledResponse {
    /// Shown once.
    backup_codes: Vec<String>,
    tokens: TokensResponse,
}

/// Confirms the required enrolment with a first code and completes the sign-in.
#[utoipa::path(post, path = "/v1/auth/mfa/enrol/totp/confirm", tag = "auth", request_body = ChallengeCodeRequest, responses(
    (status = 200, body = EnrolledResponse),
    (status = 400, description = "invalid_mfa_code", body = crate::error::Problem),
    (status = 401, description = "invalid_mfa_token, mfa_token_expired", body = crate::error::Problem)))]
pub(crate) async fn confirm_required_totp(
    State(state): State<AppState>,
    Client(context): Client,
    ApiJson(body): ApiJson<ChallengeCodeRequest>,
) -> Result<Json<EnrolledResponse>, ApiError> {
    let (backup_codes, tokens) =
        state.accounts.sign_in.confirm_required_totp(&body.mfa_token, &body.code, &context).await?;
    Ok(Json(EnrolledResponse { backup_codes, tokens: tokens.into() }))
}

/// A proof of presence: `{password}`, `{method, code}`, or `{passkey: {ceremony_id,
/// credential}}` (an assertion for `POST /v1/auth/reauthenticate/passkey/begin`).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProofRequest {
    password: Option<String>,
    method: Option<String>,
    code: Option<String>,
    passkey: Option<crate::routes::passkeys::AssertionRequest>,
}

impl From<ProofRequest> for Reauthentication {
    fn from(body: ProofRequest) -> Self {
        Reauthentication {
            password: body.password,
            method: body.method,
            code: body.code,
            passkey: body.passkey.map(Into::into),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ReauthenticatedResponse {
    /// A new access token carrying the fresh `auth_time` and `amr`.
    access_token: String,
    token_type: &'static str,
    expires_in: i64,
    auth_time: i64,
    amr: Vec<String>,
}

/// Step-up: re-authenticates the signed-in user with the password or a second factor, so
/// sensitive actions (removing a factor, ...) are allowed for a few minutes.
#[utoipa::path(post, path = "/v1/auth/reauthenticate", tag = "auth", security(("bearer" = [])), request_body = ProofRequest, responses(
    (status = 200, body = ReauthenticatedResponse),
    (status = 400, description = "invalid_mfa_code, mfa_code_replayed, ...", body = crate::error::Problem),
    (status = 401, description = "invalid_credentials (also for any proof while the account is locked), invalid_token, passkey_rejected, passkey_unknown, passkey_flagged", body = crate::error::Problem),
    (status = 409, description = "passkeys_unavailable", body = crate::error::Problem),
    (status = 429, description = "rate_limited (per IP or per account)", body = crate::error::Problem)))]
pub(crate) async fn reauthenticate(
    State(state): State<AppState>,
    Client(context): Client,
    Authenticated(principal): Authenticated,
    ApiJson(body): ApiJson<ProofRequest>,
) -> Result<Json<ReauthenticatedResponse>, ApiError> {
    let done = state.accounts.mfa.reauthenticate(&principal, body.into(), &context).await?;
    Ok(Json(ReauthenticatedResponse {
        access_token: done.access_token,
        token_type: "Bearer",
        expires_in: done.expires_in,
        auth_time: done.auth_time,
        amr: done.amr,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MethodRequest {
    /// `email` or `sms`.
    method: String,
}

/// Sends a step-up code by email or SMS to the signed-in user.
#[utoipa::path(post, path = "/v1/auth/reauthenticate/send-code", tag = "auth", security(("bearer" = [])), request_body = MethodRequest,
    responses((status = 202), (status = 400, description = "mfa_method_unavailable", body = crate::error::Problem)))]
pub(crate) async fn send_reauthentication_code(
    State(state): State<AppState>,
    Client(context): Client,
    Authenticated(principal): Authenticated,
    ApiJson(body): ApiJson<MethodRequest>,
) -> Result<StatusCode, ApiError> {
    state.accounts.mfa.send_reauthentication_code(&principal, &body.method, &context).await?;
    Ok(StatusCode::ACCEPTED)
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TotpEnrolmentResponse {
    /// Base32, for typing into an authenticator app.
    secret: String,
    otpauth_uri: String,
    /// The URI as a QR code (SVG).
    qr_svg: String,
}

impl From<TotpEnrolment> for TotpEnrolmentResponse {
    fn from(enrolment: TotpEnrolment) -> Self {
        Self {
            secret: enrolment.secret,
            otpauth_uri: enrolment.otpauth_uri,
            qr_svg: enrolment.qr_svg,
        }
    }
}
