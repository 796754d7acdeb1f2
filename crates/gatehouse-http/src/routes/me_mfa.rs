//! `/v1/me/mfa*` and `/v1/me/trusted-devices*` (the signed-in user's factors, backup codes and
//! trusted browsers) and `/v1/admin/users/{id}/mfa` (an admin's view and reset).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use gatehouse_domain::mfa::{FactorKind, TrustedBrowserRecord};
use gatehouse_domain::mfa::{FactorView, MfaOverview, Reauthentication};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::dto::{Page, PageQuery};
use super::mfa::{ProofRequest, TotpEnrolmentResponse};
use crate::auth::{Admin, Authenticated};
use crate::client::Client;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery, OptionalApiJson};
use crate::middleware::limit;
use crate::ratelimit::Bucket;
use crate::state::AppState;

pub(crate) fn routes(state: &AppState) -> Router<AppState> {
    let limited = |bucket: Bucket| from_fn_with_state((state.clone(), bucket), limit);
    Router::new()
        .route("/v1/me/mfa", get(my_mfa))
        .route("/v1/me/mfa/totp", post(begin_totp).delete(remove_totp))
        .route("/v1/me/mfa/totp/confirm", post(confirm_totp))
        .route("/v1/me/mfa/backup-codes", post(regenerate_backup_codes))
        .route(
            "/v1/me/mfa/email",
            post(begin_email).delete(remove_email).route_layer(limited(Bucket::Email)),
        )
        .route("/v1/me/mfa/email/confirm", post(confirm_email))
        .route(
            "/v1/me/mfa/sms",
            post(begin_sms).delete(remove_sms).route_layer(limited(Bucket::Email)),
        )
        .route("/v1/me/mfa/sms/confirm", post(confirm_sms))
        .route("/v1/me/trusted-devices", get(trusted_devices))
        .route("/v1/me/trusted-devices/{id}", delete(revoke_trusted_device))
        .route("/v1/admin/users/{id}/mfa", get(admin_user_mfa).delete(admin_reset_mfa))
}

/// The user's MFA: factors, backup codes left, whether MFA is required.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct MfaResponse {
    enabled: bool,
    required: bool,
    factors: Vec<FactorResponse>,
    backup_codes_remaining: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct FactorResponse {
    id: String,
    /// `totp`, `email` or `sms`.
    kind: &'static str,
    created_at: i64,
    confirmed_at: Option<i64>,
    last_used_at: Option<i64>,
    /// SMS: the number, masked but for its last two digits.
    #[serde(skip_serializing_if = "Option::is_none")]
    phone_number: Option<String>,
}

impl From<MfaOverview> for MfaResponse {
    fn from(overview: MfaOverview) -> Self {
        let factor = |view: FactorView| FactorResponse {
            id: view.id,
            kind: view.kind,
            created_at: view.created_at,
            confirmed_at: view.confirmed_at,
            last_used_at: view.last_used_at,
            phone_number: view.phone_number,
        };
        MfaResponse {
            enabled: overview.enabled,
            required: overview.required,
            factors: overview.factors.into_iter().map(factor).collect(),
            backup_codes_remaining: overview.backup_codes_remaining,
        }
    }
}

#[utoipa::path(get, path = "/v1/me/mfa", tag = "me", security(("bearer" = [])),
    responses((status = 200, body = MfaResponse)))]
pub(crate) async fn my_mfa(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
) -> Result<Json<MfaResponse>, ApiError> {
    Ok(Json(state.accounts.mfa.my_mfa(&principal).await?.into()))
}

/// Starts TOTP enrolment; confirm with a first code. Needs a recent authentication, or a
/// proof in the body.
#[utoipa::path(post, path = "/v1/me/mfa/totp", tag = "me", security(("bearer" = [])), request_body(content = Option<ProofRequest>),
    responses((status = 200, body = TotpEnrolmentResponse), (status = 403, description = "reauthentication_required", body = crate::error::Problem),
    (status = 409, description = "mfa_already_enabled", body = crate::error::Problem)))]
pub(crate) async fn begin_totp(
    State(state): State<AppState>,
    Client(context): Client,
    Authenticated(principal): Authenticated,
    OptionalApiJson(body): OptionalApiJson<ProofRequest>,
) -> Result<Json<TotpEnrolmentResponse>, ApiError> {
    let proof = body.map(Into::into);
    Ok(Json(state.accounts.mfa.begin_totp(&principal, proof, &context).await?.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CodeRequest {
    code: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BackupCodesResponse {
    /// Shown once; each works once. Empty when the user already had backup codes.
    backup_codes: Vec<String>,
}

/// Confirms TOTP with a first valid code; answers ten backup codes, shown once.
#[utoipa::path(post, path = "/v1/me/mfa/totp/confirm", tag = "me", security(("bearer" = [])), request_body = CodeRequest,
    responses((status = 200, body = BackupCodesResponse), (status = 400, description = "invalid_mfa_code", body = crate::error::Problem),
    (status = 409, description = "mfa_enrolment_not_started, mfa_already_enabled", body = crate::error::Problem)))]
pub(crate) async fn confirm_totp(
    State(state): State<AppState>,
    Client(context): Client,
    Authenticated(principal): Authenticated,
    ApiJson(body): ApiJson<CodeRequest>,
) -> Result<Json<BackupCodesResponse>, ApiError> {
    let backup_codes = state.accounts.mfa.confirm_totp(&principal, &body.code, &context).await?;
    Ok(Json(BackupCodesResponse { backup_codes }))
}

async fn remove(
    state: &AppState,
    context: &gatehouse_domain::principal::RequestContext,
    principal: &gatehouse_domain::principal::Principal,
    kind: FactorKind,
    proof: Option<ProofRequest>,
) -> Result<StatusCode, ApiError> {
    state.accounts.mfa.remove_factor(principal, kind, proof.map(Into::into), context).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes TOTP. Needs a recent authentication, or a proof in the body (`{password}` or
/// `{method, code}`).
#[utoipa::path(delete, path = "/v1/me/mfa/totp", tag = "me", security(("bearer" = [])), request_body(content = Option<ProofRequest>),
    responses((status = 204), (status = 403, description = "reauthentication_required", body = crate::error::Problem),
    (status = 409, description = "mfa_not_enabled", body = crate::error::Problem)))]
pub(crate) async fn remove_totp(
    State(state): State<AppState>,
    Client(context): Client,
    Authenticated(principal): Authenticated,
    OptionalApiJson(body): OptionalApiJson<ProofRequest>,
) -> Result<StatusCode, ApiError> {
    remove(&state, &context, &principal, FactorKind::Totp, body).await
}

/// Replaces the backup codes with ten new ones (the old ones stop working). Needs a recent
/// authentication, or a proof in the body.
#[utoipa::path(post, path = "/v1/me/mfa/backup-codes", tag = "me", security(("bearer" = [])), request_body(content = Option<ProofRequest>),
    responses((status = 200, body = BackupCodesResponse), (status = 403, description = "reauthentication_required", body = crate::error::Problem),
    (status = 409, description = "mfa_not_enabled", body = crate::error::Problem)))]
pub(crate) async fn regenerate_backup_codes(
    State(state): State<AppState>,
    Client(context): Client,
    Authenticated(principal): Authenticated,
    OptionalApiJson(body): OptionalApiJson<ProofRequest>,
) -> Result<Json<BackupCodesResponse>, ApiError> {
    let proof = body.map(Into::into);
    let backup_codes =
        state.accounts.mfa.regenerate_backup_codes(&principal, proof, &context).await?;
    Ok(Json(BackupCodesResponse { backup_codes }))
}

/// Starts enrolling codes by email: a code goes to the account's address. Needs a recent
/// authentication, or a proof in the body.
#[utoipa::path(post, path = "/v1/me/mfa/email", tag = "me", security(("bearer" = [])), request_body(content = Option<ProofRequest>),
    responses((status = 202), (status = 400, description = "mfa_method_unavailable", body = crate::error::Problem),
    (status = 403, description = "reauthentication_required", body = crate::error::Problem),
    (status = 409, description = "mfa_already_enabled", body = crate::error::Problem)))]
pub(crate) async fn begin_email(
    State(state): State<AppState>,
    Client(context): Client,
    Authenticated(principal): Authenticated,
    OptionalApiJson(body): OptionalApiJson<ProofRequest>,
) -> Result<StatusCode, ApiError> {
    let proof = body.map(Into::into);
    state
        .accounts
        .mfa
        .begin_code_factor(&principal, FactorKind::Email, None, proof, &context)
        .await?;
    Ok(StatusCode::ACCEPTED)
}

/// Confirms codes by email with the code that was sent.
#[utoipa::path(post, path = "/v1/me/mfa/email/confirm", tag = "me", security(("bearer" = [])), request_body = CodeRequest,
    responses((status = 200, body = BackupCodesResponse), (status = 400, description = "invalid_mfa_code, mfa_code_expired, mfa_attempts_exhausted", body = crate::error::Problem),
    (status = 409, description = "mfa_enrolment_not_started, mfa_already_enabled", body = crate::error::Problem)))]
pub(crate) async fn confirm_email(
    State(state): State<AppState>,
    Client(context): Client,
    Authenticated(principal): Authenticated,
    ApiJson(body): ApiJson<CodeRequest>,
) -> Result<Json<BackupCodesResponse>, ApiError> {
    let backup_codes = state
        .accounts
        .mfa
        .confirm_code_factor(&principal, FactorKind::Email, &body.code, &context)
        .await?;
    Ok(Json(BackupCodesResponse { backup_codes }))
}

/// Removes codes by email (recent authentication or a proof, as for TOTP).
#[utoipa::path(delete, path = "/v1/me/mfa/email", tag = "me", security(("bearer" = [])), request_body(content = Option<ProofRequest>),
    responses((status = 204), (status = 403, description = "reauthentication_required", body = crate::error::Problem),
    (status = 409, description = "mfa_not_enabled, passkeys_unavailable (a passkey proof)", body = crate::error::Problem)))]
pub(crate) async fn remove_email(
    State(state): State<AppState>,
    Client(context): Client,
    Authenticated(principal): Authenticated,
    OptionalApiJson(body): OptionalApiJson<ProofRequest>,
) -> Result<StatusCode, ApiError> {
    remove(&state, &context, &principal, FactorKind::Email, body).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PhoneRequest {
    /// E.164 (`+33612345678`); spaces, dots, dashes and parentheses are ignored.
    phone_number: String,
    /// A proof of presence when the session's authentication is not recent.
    password: Option<String>,
    method: Option<String>,
    code: Option<String>,
}

/// Starts enrolling codes by SMS: a code goes to the number.
#[utoipa::path(post, path = "/v1/me/mfa/sms", tag = "me", security(("bearer" = [])), request_body = PhoneRequest,
    responses((status = 202), (status = 422, description = "validation_failed (invalid_phone_number)", body = crate::error::Problem),
    (status = 400, description = "mfa_method_unavailable", body = crate::error::Problem),
    (status = 409, description = "mfa_already_enabled", body = crate::error::Problem)))]
pub(crate) async fn begin_sms(
    State(state): State<AppState>,
    Client(context): Client,
    Authenticated(principal): Authenticated,
    ApiJson(body): ApiJson<PhoneRequest>,
) -> Result<StatusCode, ApiError> {
    let proof = Reauthentication {
        password: body.password,
        method: body.method,
        code: body.code,
        passkey: None,
    };
    state
        .accounts
        .mfa
        .begin_code_factor(
            &principal,
            FactorKind::Sms,
            Some(&body.phone_number),
            Some(proof),
            &context,
        )
        .await?;
    Ok(StatusCode::ACCEPTED)
}

/// Confirms codes by SMS with the code that was sent.
#[utoipa::path(post, path = "/v1/me/mfa/sms/confirm", tag = "me", security(("bearer" = [])), request_body = CodeRequest,
    responses((status = 200, body = BackupCodesResponse), (status = 400, description = "invalid_mfa_code, mfa_code_expired, mfa_attempts_exhausted", body = crate::error::Problem),
    (status = 409, description = "mfa_enrolment_not_started, mfa_already_enabled", body = crate::error::Problem)))]
pub(crate) async fn confirm_sms(
    State(state): State<AppState>,
    Client(context): Client,
    Authenticated(principal): Authenticated,
    ApiJson(body): ApiJson<CodeRequest>,
) -> Result<Json<BackupCodesResponse>, ApiError> {
    let backup_codes = state
        .accounts
        .mfa
        .confirm_code_factor(&principal, FactorKind::Sms, &body.code, &context)
        .await?;
    Ok(Json(BackupCodesResponse { backup_codes }))
}

/// Removes codes by SMS (recent authentication or a proof, as for TOTP).
#[utoipa::path(delete, path = "/v1/me/mfa/sms", tag = "me", security(("bearer" = [])), request_body(content = Option<ProofRequest>),
    responses((status = 204), (status = 403, description = "reauthentication_required", body = crate::error::Problem),
    (status = 409, description = "mfa_not_enabled, passkeys_unavailable (a passkey proof)", body = crate::error::Problem)))]
pub(crate) async fn remove_sms(
    State(state): State<AppState>,
    Client(context): Client,
    Authenticated(principal): Authenticated,
    OptionalApiJson(body): OptionalApiJson<ProofRequest>,
) -> Result<StatusCode, ApiError> {
    remove(&state, &context, &principal, FactorKind::Sms, body).await
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TrustedDeviceResponse {
    id: String,
    user_agent: Option<String>,
    ip: Option<String>,
    created_at: i64,
    expires_at: i64,
    last_used_at: Option<i64>,
}

impl From<TrustedBrowserRecord> for TrustedDeviceResponse {
    fn from(device: TrustedBrowserRecord) -> Self {
        Self {
            id: device.id,
            user_agent: device.user_agent,
            ip: device.ip,
            created_at: device.created_at,
            expires_at: device.expires_at,
            last_used_at: device.last_used_at,
        }
    }
}

/// The devices that skip the second factor, newest first, a page at a time.
#[utoipa::path(get, path = "/v1/me/trusted-devices", tag = "me", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = Page<TrustedDeviceResponse>), (status = 401, description = "invalid_token", body = crate::error::Problem),
    (status = 422, description = "validation_failed (cursor)", body = crate::error::Problem)))]
pub(crate) async fn trusted_devices(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<Page<TrustedDeviceResponse>>, ApiError> {
    let devices = state.accounts.mfa.trusted_browsers(&principal).await?;
    Ok(Json(Page::of_newest_first(
        devices,
        &query,
        |device| (device.created_at, device.id.as_str()),
        Into::into,
    )?))
}

/// Stops trusting a device (it will be asked for a second factor again).
#[utoipa::path(delete, path = "/v1/me/trusted-devices/{id}", tag = "me", security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 204), (status = 404, body = crate::error::Problem)))]
pub(crate) async fn revoke_trusted_device(
    State(state): State<AppState>,
    Client(context): Client,
    Authenticated(principal): Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.accounts.mfa.revoke_trusted_browser(&principal, &id, &context).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A user's MFA factors, for an admin.
#[utoipa::path(get, path = "/v1/admin/users/{id}/mfa", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 200, body = MfaResponse), (status = 404, body = crate::error::Problem)))]
pub(crate) async fn admin_user_mfa(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<Json<MfaResponse>, ApiError> {
    Ok(Json(state.accounts.mfa.admin_user_mfa(&admin, &id).await?.into()))
}

/// Resets a user's MFA: every factor, backup code and trusted device goes (audited; the user
/// gets a notice).
#[utoipa::path(delete, path = "/v1/admin/users/{id}/mfa", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 204), (status = 404, body = crate::error::Problem)))]
pub(crate) async fn admin_reset_mfa(
    State(state): State<AppState>,
    Client(context): Client,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.accounts.mfa.admin_reset_mfa(&admin, &id, &context).await?;
    Ok(StatusCode::NO_CONTENT)
}
