//! Passkeys over the JSON API: `/v1/me/passkeys*` (register, list, rename, remove),
//! `/v1/auth/passkey/begin|finish` (sign-in, with or without an address),
//! `/v1/auth/reauthenticate/passkey/begin` (step-up; the assertion then goes to
//! `/v1/auth/reauthenticate` as `{"passkey": {…}}`) and `/v1/auth/sign-up/passkey/begin|finish`
//! (an account whose only sign-in method is a passkey). Options are WebAuthn Level 3 JSON
//! (`{"publicKey": …}`, base64url), credentials what `PublicKeyCredential.toJSON()` gives.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use gatehouse_domain::passkeys::{PasskeyAssertion, PasskeyCeremony, PasskeyView};
use gatehouse_domain::registration::{PasskeySignUp, SignUpOutcome};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::{SignUpResponse, VerificationRequiredResponse};
use super::dto::{Page, PageQuery, SignInResponse};
use crate::auth::Authenticated;
use crate::client::Client;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery, OptionalApiJson};
use crate::middleware::limit;
use crate::ratelimit::Bucket;
use crate::state::AppState;

pub(crate) fn routes(state: &AppState) -> Router<AppState> {
    let limited = |bucket: Bucket| from_fn_with_state((state.clone(), bucket), limit);
    Router::new()
        .route("/v1/me/passkeys", get(list_passkeys))
        .route("/v1/me/passkeys/register/begin", post(begin_registration))
        .route("/v1/me/passkeys/register/finish", post(finish_registration))
        .route("/v1/me/passkeys/{id}", patch(rename_passkey).delete(remove_passkey))
        .route("/v1/auth/passkey/begin", post(begin_sign_in).route_layer(limited(Bucket::SignIn)))
        .route("/v1/auth/passkey/finish", post(finish_sign_in).route_layer(limited(Bucket::SignIn)))
        .route(
            "/v1/auth/reauthenticate/passkey/begin",
            post(begin_step_up).route_layer(limited(Bucket::SignIn)),
        )
        .route(
            "/v1/auth/sign-up/passkey/begin",
            post(begin_sign_up).route_layer(limited(Bucket::SignUp)),
        )
        .route(
            "/v1/auth/sign-up/passkey/finish",
            post(finish_sign_up).route_layer(limited(Bucket::SignUp)),
        )
}

/// A ceremony's first answer: its id (single use, five minutes) and the options for
/// `PublicKeyCredential.parseCreationOptionsFromJSON` / `parseRequestOptionsFromJSON`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CeremonyResponse {
    ceremony_id: String,
    /// `{"publicKey": PublicKeyCredentialCreationOptionsJSON | PublicKeyCredentialRequestOptionsJSON}`.
    #[schema(value_type = Object)]
    options: serde_json::Value,
}

impl From<PasskeyCeremony> for CeremonyResponse {
    fn from(ceremony: PasskeyCeremony) -> Self {
        Self { ceremony_id: ceremony.ceremony_id, options: ceremony.options }
    }
}

/// A passkey as its owner sees it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PasskeyResponse {
    id: String,
    name: String,
    /// The WebAuthn credential id (base64url).
    credential_id: String,
    created_at: i64,
    last_used_at: Option<i64>,
    /// Synced across the user's devices (backup-eligible), else bound to one device.
    synced: bool,
    backup_eligible: bool,
    backup_state: bool,
    /// `usb`, `nfc`, `ble`, `internal`, `hybrid`.
    transports: Vec<String>,
    /// The authenticator model, when it tells.
    aaguid: Option<String>,
    /// Set when its signature counter went backwards: it signs nobody in any more.
    flagged_at: Option<i64>,
}

impl From<PasskeyView> for PasskeyResponse {
    fn from(view: PasskeyView) -> Self {
        Self {
            id: view.id,
            name: view.name,
            credential_id: view.credential_id,
            created_at: view.created_at,
            last_used_at: view.last_used_at,
            synced: view.synced,
            backup_eligible: view.backup_eligible,
            backup_state: view.backup_state,
            transports: view.transports,
            aaguid: view.aaguid,
            flagged_at: view.flagged_at,
        }
    }
}

/// The signed-in user's passkeys, newest first.
#[utoipa::path(get, path = "/v1/me/passkeys", tag = "me", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = Page<PasskeyResponse>), (status = 401, description = "invalid_token", body = crate::error::Problem),
    (status = 422, description = "validation_failed (cursor)", body = crate::error::Problem)))]
pub(crate) async fn list_passkeys(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<Page<PasskeyResponse>>, ApiError> {
    let passkeys = state.accounts.passkeys.list(&principal).await?;
    Ok(Json(Page::of_newest_first(
        passkeys,
        &query,
        |passkey| (passkey.created_at, passkey.id.as_str()),
        Into::into,
    )?))
}

/// Starts adding a passkey (needs a recent authentication, as other sign-in method changes).
#[utoipa::path(post, path = "/v1/me/passkeys/register/begin", tag = "me", security(("bearer" = [])), responses(
    (status = 200, body = CeremonyResponse),
    (status = 403, description = "reauthentication_required", body = crate::error::Problem),
    (status = 409, description = "passkeys_unavailable (off, or an IP-address issuer without GATEHOUSE_PASSKEYS_RP_ID)", body = crate::error::Problem)))]
pub(crate) async fn begin_registration(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
) -> Result<Json<CeremonyResponse>, ApiError> {
    Ok(Json(state.accounts.passkeys.begin_registration(&principal).await?.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FinishRegistrationRequest {
    ceremony_id: String,
    /// `PublicKeyCredential.toJSON()` of the created credential.
    #[schema(value_type = Object)]
    credential: serde_json::Value,
    /// 1 to 64 characters; "Passkey" or "Synced passkey" when absent.
    name: Option<String>,
}

/// Finishes adding a passkey: the credential verified against the ceremony this session
/// began, stored, the owner told by email.
#[utoipa::path(post, path = "/v1/me/passkeys/register/finish", tag = "me", security(("bearer" = [])), request_body = FinishRegistrationRequest, responses(
    (status = 201, body = PasskeyResponse),
    (status = 400, description = "passkey_ceremony_invalid, passkey_ceremony_expired, passkey_response_malformed", body = crate::error::Problem),
    (status = 401, description = "passkey_rejected (challenge, origin, rp_id, user_verification, signature), invalid_token", body = crate::error::Problem),
    (status = 409, description = "passkey_already_registered, passkeys_unavailable", body = crate::error::Problem)))]
pub(crate) async fn finish_registration(
    State(state): State<AppState>,
    Client(context): Client,
    Authenticated(principal): Authenticated,
    ApiJson(body): ApiJson<FinishRegistrationRequest>,
) -> Result<Response, ApiError> {
    let passkey = state
        .accounts
        .passkeys
        .finish_registration(
            &principal,
            &body.ceremony_id,
            &body.credential,
            body.name.as_deref(),
            &context,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(PasskeyResponse::from(passkey))).into_response())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RenameRequest {
    name: String,
}

/// Renames one of the user's passkeys.
#[utoipa::path(patch, path = "/v1/me/passkeys/{id}", tag = "me", security(("bearer" = [])), params(("id" = String, Path)),
    request_body = RenameRequest, responses((status = 200, body = PasskeyResponse), (status = 404, body = crate::error::Problem)))]
pub(crate) async fn rename_passkey(
    State(state): State<AppState>,
    Client(context): Client,
    Authenticated(principal): Authenticated,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RenameRequest>,
) -> Result<Json<PasskeyResponse>, ApiError> {
    let passkey = state.accounts.passkeys.rename(&principal, &id, &body.name, &context).await?;
    Ok(Json(passkey.into()))
}

/// Removes one of the user's passkeys (needs a recent authentication); the last way to sign
/// in of an account without a password cannot be removed.
#[utoipa::path(delete, path = "/v1/me/passkeys/{id}", tag = "me", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 204), (status = 403, description = "reauthentication_required", body = crate::error::Problem),
    (status = 404, body = crate::error::Problem),
    (status = 409, description = "last_sign_in_method", body = crate::error::Problem)))]
pub(crate) async fn remove_passkey(
    State(state): State<AppState>,
    Client(context): Client,
    Authenticated(principal): Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.accounts.passkeys.remove(&principal, &id, &context).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BeginSignInRequest {
    /// Only this account's passkeys; without it any discoverable passkey of this site
    /// (a button without a username, or conditional UI).
    email: Option<String>,
}

/// Starts a passkey sign-in. An address without an account answers the same shape.
#[utoipa::path(post, path = "/v1/auth/passkey/begin", tag = "auth", request_body = BeginSignInRequest, responses(
    (status = 200, body = CeremonyResponse),
    (status = 409, description = "passkeys_unavailable", body = crate::error::Problem)))]
pub(crate) async fn begin_sign_in(
    State(state): State<AppState>,
    OptionalApiJson(body): OptionalApiJson<BeginSignInRequest>,
) -> Result<Json<CeremonyResponse>, ApiError> {
    let email = body.unwrap_or_default().email;
    Ok(Json(state.accounts.passkeys.begin_sign_in(email.as_deref()).await?.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AssertionRequest {
    ceremony_id: String,
    /// `PublicKeyCredential.toJSON()` of the assertion.
    #[schema(value_type = Object)]
    credential: serde_json::Value,
}

impl From<AssertionRequest> for PasskeyAssertion {
    fn from(body: AssertionRequest) -> Self {
        PasskeyAssertion { ceremony_id: body.ceremony_id, credential: body.credential }
    }
}

/// Finishes a passkey sign-in, answered as a password sign-in: tokens (`amr` `hwk` or `swk`,
/// plus `mfa` when the authenticator verified its user: no second step), or, for a passkey
/// without user verification on an account with a second factor, `{mfa_required, mfa_token,
/// methods}`.
#[utoipa::path(post, path = "/v1/auth/passkey/finish", tag = "auth", request_body = AssertionRequest, responses(
    (status = 200, body = SignInResponse),
    (status = 400, description = "passkey_ceremony_invalid, passkey_ceremony_expired, passkey_response_malformed", body = crate::error::Problem),
    (status = 401, description = "passkey_rejected, passkey_unknown, passkey_flagged", body = crate::error::Problem),
    (status = 403, description = "account_suspended, email_not_verified", body = crate::error::Problem),
    (status = 409, description = "passkeys_unavailable", body = crate::error::Problem)))]
pub(crate) async fn finish_sign_in(
    State(state): State<AppState>,
    Client(context): Client,
    headers: axum::http::HeaderMap,
    ApiJson(body): ApiJson<AssertionRequest>,
) -> Result<Json<SignInResponse>, ApiError> {
    let trusted_device = state.pages.device_cookie.from_headers(&headers).map(str::to_owned);
    let outcome = state
        .accounts
        .sign_in
        .sign_in_with_passkey(body.into(), trusted_device.as_deref(), &context)
        .await?;
    Ok(Json(outcome.into()))
}

/// Starts a step-up with one of the signed-in user's passkeys; send the assertion to
/// `POST /v1/auth/reauthenticate` as `{"passkey": {"ceremony_id", "credential"}}`.
#[utoipa::path(post, path = "/v1/auth/reauthenticate/passkey/begin", tag = "auth", security(("bearer" = [])), responses(
    (status = 200, body = CeremonyResponse),
    (status = 409, description = "passkey_not_registered, passkeys_unavailable", body = crate::error::Problem)))]
pub(crate) async fn begin_step_up(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
) -> Result<Json<CeremonyResponse>, ApiError> {
    Ok(Json(state.accounts.passkeys.begin_step_up(&principal).await?.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BeginSignUpRequest {
    email: String,
    first_name: Option<String>,
    last_name: Option<String>,
}

/// Starts a sign-up with a passkey and no password (the same answer for any valid address).
#[utoipa::path(post, path = "/v1/auth/sign-up/passkey/begin", tag = "auth", request_body = BeginSignUpRequest, responses(
    (status = 200, body = CeremonyResponse),
    (status = 403, description = "signup_disabled: sign-up is switched off", body = crate::error::Problem),
    (status = 409, description = "passkeys_unavailable", body = crate::error::Problem),
    (status = 422, description = "validation_failed", body = crate::error::Problem)))]
pub(crate) async fn begin_sign_up(
    State(state): State<AppState>,
    Client(context): Client,
    ApiJson(body): ApiJson<BeginSignUpRequest>,
) -> Result<Json<CeremonyResponse>, ApiError> {
    let request =
        PasskeySignUp { email: body.email, first_name: body.first_name, last_name: body.last_name };
    Ok(Json(state.accounts.registration.begin_passkey_sign_up(request, &context).await?.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FinishSignUpRequest {
    ceremony_id: String,
    #[schema(value_type = Object)]
    credential: serde_json::Value,
    /// The passkey's name.
    name: Option<String>,
}

/// Finishes a passkey sign-up: the account and its passkey, answered as `POST /v1/auth/sign-up`
/// answers (201 signed in, or 202 when email verification is required — for every address).
#[utoipa::path(post, path = "/v1/auth/sign-up/passkey/finish", tag = "auth", request_body = FinishSignUpRequest, responses(
    (status = 201, body = SignUpResponse),
    (status = 202, description = "email verification is required (the same answer for every address)", body = VerificationRequiredResponse),
    (status = 400, description = "passkey_ceremony_invalid, passkey_ceremony_expired, passkey_response_malformed", body = crate::error::Problem),
    (status = 401, description = "passkey_rejected", body = crate::error::Problem),
    (status = 403, description = "signup_disabled: sign-up is switched off", body = crate::error::Problem),
    (status = 409, description = "email_taken, passkey_already_registered, passkeys_unavailable", body = crate::error::Problem)))]
pub(crate) async fn finish_sign_up(
    State(state): State<AppState>,
    Client(context): Client,
    ApiJson(body): ApiJson<FinishSignUpRequest>,
) -> Result<Response, ApiError> {
    let outcome = state
        .accounts
        .registration
        .finish_passkey_sign_up(&body.ceremony_id, &body.credential, body.name.as_deref(), &context)
        .await?;
    Ok(match outcome {
        SignUpOutcome::Created { user, tokens } => {
            let answer = SignUpResponse {
                user: (*user).into(),
                tokens: tokens.map(|tokens| (*tokens).into()),
            };
            (StatusCode::CREATED, Json(answer)).into_response()
        }
        SignUpOutcome::VerificationRequired => {
            let answer = VerificationRequiredResponse { verification_required: true };
            (StatusCode::ACCEPTED, Json(answer)).into_response()
        }
    })
}
