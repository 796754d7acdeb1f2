//! The signed-in user's data rights: `GET /v1/me/export` (everything the account holds, as
//! JSON — GDPR art. 20), `DELETE /v1/me` (the account deleted at once, after a proof of
//! presence or within the step-up window), the email change: `PATCH /v1/me/email` (a link
//! to the new address, a notice to the current one) and `POST /v1/auth/email/change` (the
//! link's token applies it), and the connected applications: `GET /v1/me/consents`,
//! `DELETE /v1/me/consents/{client_id}`. A session's token only: API keys never reach them.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use gatehouse_domain::registration::deletion::DeletionOutcome;

use crate::auth::Authenticated;
use crate::client::Client;
use crate::error::ApiError;
use crate::state::AppState;

pub(crate) fn routes() -> axum::Router<AppState> {
    // `DELETE /v1/me` is routed with the other methods of `/v1/me` (`routes::me`).
    axum::Router::new()
        .route("/v1/me/export", get(export))
        .route("/v1/me/email", axum::routing::patch(request_email_change))
        .route("/v1/me/consents", get(list_consents))
        .route("/v1/me/consents/{client_id}", axum::routing::delete(revoke_consent))
        .route("/v1/auth/email/change", axum::routing::post(confirm_email_change))
        .route("/v1/auth/account/restore", axum::routing::post(restore_account))
}

/// Everything the account holds, as JSON (a file to keep: `Content-Disposition: attachment`).
#[utoipa::path(get, path = "/v1/me/export", tag = "me", security(("bearer" = [])),
    responses((status = 200, description = "the account's data", body = Object),
    (status = 401, body = crate::error::Problem), (status = 403, body = crate::error::Problem)))]
pub(crate) async fn export(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
) -> Result<Response, ApiError> {
    let export = crate::summaries::account_export(&state, &principal).await?;
    Ok(crate::summaries::export_answer(&export))
}

/// A deletion that waits out the grace period.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct ScheduledDeletionResponse {
    /// When the account and its data are deleted (Unix seconds), unless the link emailed to
    /// the account's address restores it first.
    deletion_due_at: i64,
}

/// Deletes the account: a proof of presence in the body (`{password}` or `{method, code}`), or
/// none within the step-up window. At once (204: everything the account owns goes; audited
/// `user.deleted` by the user), or — with `account_deletion.grace_days` — suspended until the
/// grace period ends (202 `{deletion_due_at}`; audited `user.deletion_scheduled`; an email
/// with a restore link).
#[utoipa::path(delete, path = "/v1/me", tag = "me", security(("bearer" = [])),
    request_body(content = Option<crate::routes::mfa::ProofRequest>, description = "a proof of presence, unless the sign-in is recent"),
    responses((status = 204, description = "deleted"), (status = 202, description = "scheduled", body = ScheduledDeletionResponse),
    (status = 400, body = crate::error::Problem),
    (status = 401, body = crate::error::Problem), (status = 403, description = "reauthentication_required", body = crate::error::Problem),
    (status = 422, body = crate::error::Problem)))]
pub(crate) async fn delete_me(
    State(state): State<AppState>,
    Client(context): Client,
    Authenticated(principal): Authenticated,
    body: Bytes,
) -> Result<Response, ApiError> {
    let proof = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        let request: crate::routes::mfa::ProofRequest =
            serde_json::from_slice(&body).map_err(|error| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_json",
                    format!("The body is not a proof: {error}"),
                )
            })?;
        Some(request.into())
    };
    state.accounts.mfa.require_presence(&principal, proof, &context).await?;
    Ok(match state.account_deletions.request(&principal, &context).await? {
        DeletionOutcome::Deleted => StatusCode::NO_CONTENT.into_response(),
        DeletionOutcome::Scheduled { due_at } => {
            let body = ScheduledDeletionResponse { deletion_due_at: due_at };
            (StatusCode::ACCEPTED, Json(body)).into_response()
        }
    })
}

/// Restores an account whose deletion is scheduled, with the token of the emailed link: it is
/// unsuspended and stays (audited `user.deletion_cancelled`).
#[utoipa::path(post, path = "/v1/auth/account/restore", tag = "auth", request_body = TokenRequest,
    responses((status = 204),
    (status = 400, description = "invalid_token, token_expired", body = crate::error::Problem),
    (status = 422, body = crate::error::Problem)))]
pub(crate) async fn restore_account(
    State(state): State<AppState>,
    Client(context): Client,
    crate::extract::ApiJson(body): crate::extract::ApiJson<TokenRequest>,
) -> Result<StatusCode, ApiError> {
    state.account_deletions.restore(&body.token, &context).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new address, with a proof of presence unless the sign-in is recent.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChangeEmailRequest {
    email: String,
    password: Option<String>,
    method: Option<String>,
    code: Option<String>,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct ChangeEmailResponse {
    /// A link went to the new address; the change happens when it is followed.
    confirmation_sent: bool,
}

/// Starts an email change: a link (24 hours) to the new address, a notice to the current one.
#[utoipa::path(patch, path = "/v1/me/email", tag = "me", security(("bearer" = [])),
    request_body = ChangeEmailRequest,
    responses((status = 202, body = ChangeEmailResponse), (status = 400, body = crate::error::Problem),
    (status = 401, body = crate::error::Problem), (status = 403, description = "reauthentication_required", body = crate::error::Problem),
    (status = 409, description = "email_taken", body = crate::error::Problem),
    (status = 422, body = crate::error::Problem)))]
pub(crate) async fn request_email_change(
    State(state): State<AppState>,
    Client(context): Client,
    Authenticated(principal): Authenticated,
    crate::extract::ApiJson(body): crate::extract::ApiJson<ChangeEmailRequest>,
) -> Result<(StatusCode, Json<ChangeEmailResponse>), ApiError> {
    let proof = gatehouse_domain::mfa::Reauthentication {
        password: body.password,
        method: body.method,
        code: body.code,
        passkey: None,
    };
    state.accounts.mfa.require_presence(&principal, Some(proof), &context).await?;
    state.accounts.email_links.request_email_change(&principal, &body.email, &context).await?;
    Ok((StatusCode::ACCEPTED, Json(ChangeEmailResponse { confirmation_sent: true })))
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokenRequest {
    token: String,
}

/// Applies an email change with the token from the link sent to the new address.
#[utoipa::path(post, path = "/v1/auth/email/change", tag = "auth", request_body = TokenRequest,
    responses((status = 204), (status = 400, body = crate::error::Problem),
    (status = 409, description = "email_taken", body = crate::error::Problem),
    (status = 422, body = crate::error::Problem)))]
pub(crate) async fn confirm_email_change(
    State(state): State<AppState>,
    Client(context): Client,
    crate::extract::ApiJson(body): crate::extract::ApiJson<TokenRequest>,
) -> Result<StatusCode, ApiError> {
    state.accounts.email_links.change_email(&body.token, &context).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An application the user consented to.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct ConsentView {
    client_id: String,
    client_name: String,
    /// The scopes granted (a later request for more asks again).
    scopes: Vec<String>,
    /// Unix seconds.
    granted_at: i64,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct ConsentList {
    data: Vec<ConsentView>,
    /// Always null: a user's consents fit one page.
    next_cursor: Option<String>,
}

/// The applications the user has consented to (OAuth consents), newest grant first.
#[utoipa::path(get, path = "/v1/me/consents", tag = "me", security(("bearer" = [])),
    responses((status = 200, body = ConsentList), (status = 401, body = crate::error::Problem),
    (status = 403, body = crate::error::Problem)))]
pub(crate) async fn list_consents(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
) -> Result<Json<ConsentList>, ApiError> {
    let mut data: Vec<ConsentView> = state
        .oauth
        .connected_applications(&principal.user.id)
        .await?
        .into_iter()
        .map(|application| ConsentView {
            client_id: application.client_id,
            client_name: application.client_name,
            scopes: application.scopes,
            granted_at: application.granted_at,
        })
        .collect();
    data.sort_by(|a, b| {
        b.granted_at.cmp(&a.granted_at).then_with(|| a.client_id.cmp(&b.client_id))
    });
    Ok(Json(ConsentList { data, next_cursor: None }))
}

/// Takes back the consent given to one application: its refresh tokens and the sessions it
/// was granted end, and its next authorization request asks again. Audited
/// `oauth.consent_revoked`.
#[utoipa::path(delete, path = "/v1/me/consents/{client_id}", tag = "me", security(("bearer" = [])),
    params(("client_id" = String, Path, description = "the application's client id")),
    responses((status = 204), (status = 401, body = crate::error::Problem),
    (status = 403, body = crate::error::Problem),
    (status = 404, description = "not_found: no consent to this application", body = crate::error::Problem)))]
pub(crate) async fn revoke_consent(
    State(state): State<AppState>,
    Client(context): Client,
    Authenticated(principal): Authenticated,
    Path(client_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if state.oauth.revoke_consent(&principal, &client_id, &context).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", "No consent to this application."))
    }
}
