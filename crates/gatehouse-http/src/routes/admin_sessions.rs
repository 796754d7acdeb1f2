//! `/v1/admin/users/{id}/sessions*`: a user's active sessions as an admin sees them, and ending
//! one or all of them (audit `session.revoked`, reason `revoked_by_admin`); and
//! `POST /v1/admin/users/{id}/impersonate`, a short session acting as the user.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use gatehouse_domain::sessions::record::SessionRecord;
use serde::Serialize;
use utoipa::ToSchema;

use super::dto::Page;
use crate::auth::Admin;
use crate::client::Client;
use crate::error::ApiError;
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/users/{id}/sessions", get(list_sessions).delete(revoke_all))
        .route("/v1/admin/users/{id}/sessions/{session_id}", delete(revoke_one))
        .route("/v1/admin/users/{id}/impersonate", axum::routing::post(impersonate))
}

/// A session as an admin sees it (never a token).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AdminSessionResponse {
    id: String,
    user_agent: Option<String>,
    ip: Option<String>,
    created_at: i64,
    last_used_at: i64,
    expires_at: i64,
    /// The OAuth client the session was granted to; none for a first-party session.
    client_id: Option<String>,
    /// How the user last authenticated (RFC 8176 values; `imp` for an impersonation).
    amr: Vec<String>,
    /// The admin acting as the user, for an impersonation session.
    impersonator: Option<String>,
}

impl From<SessionRecord> for AdminSessionResponse {
    fn from(session: SessionRecord) -> Self {
        let amr = session.amr_values();
        AdminSessionResponse {
            id: session.id,
            user_agent: session.user_agent,
            ip: session.ip,
            created_at: session.created_at,
            last_used_at: session.last_used_at,
            expires_at: session.expires_at,
            client_id: session.client_id,
            amr,
            impersonator: session.impersonator,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RevokedResponse {
    /// How many sessions ended.
    revoked: usize,
}

/// The user's active sessions, newest first.
#[utoipa::path(get, path = "/v1/admin/users/{id}/sessions", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = Page<AdminSessionResponse>), (status = 404, body = crate::error::Problem)))]
pub(crate) async fn list_sessions(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<Json<Page<AdminSessionResponse>>, ApiError> {
    state.accounts.admin_users.get(&admin, &id).await?;
    let sessions = state.accounts.sessions.sessions_of(&id).await?;
    Ok(Json(Page {
        data: sessions.into_iter().map(AdminSessionResponse::from).collect(),
        next_cursor: None,
    }))
}

/// Ends every active session of the user (each audited).
#[utoipa::path(delete, path = "/v1/admin/users/{id}/sessions", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = RevokedResponse), (status = 404, body = crate::error::Problem)))]
pub(crate) async fn revoke_all(
    State(state): State<AppState>,
    Client(context): Client,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<Json<RevokedResponse>, ApiError> {
    state.accounts.admin_users.get(&admin, &id).await?;
    let revoked =
        state.accounts.sessions.admin_revoke_sessions(&admin, &id, None, &context).await?;
    Ok(Json(RevokedResponse { revoked }))
}

/// Ends one active session of the user.
#[utoipa::path(delete, path = "/v1/admin/users/{id}/sessions/{session_id}", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path), ("session_id" = String, Path)),
    responses((status = 204), (status = 404, body = crate::error::Problem)))]
pub(crate) async fn revoke_one(
    State(state): State<AppState>,
    Client(context): Client,
    Admin(admin): Admin,
    Path((id, session_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state.accounts.sessions.admin_revoke_sessions(&admin, &id, Some(&session_id), &context).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Why and for how long an admin acts as the user.
#[derive(Debug, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ImpersonateRequest {
    /// Kept in the audit log (3 to 500 characters).
    reason: String,
    /// 1 to 60; 15 when absent.
    minutes: Option<i64>,
}

/// Opens an impersonation session: tokens for the user whose access tokens carry
/// `act: {"sub": <admin>}` (RFC 8693) and live no longer than the session (`minutes`). The
/// session cannot prove the user's presence (`403 impersonation_restricted` on password, factor,
/// email and deletion changes) nor consent to applications. Audited `user.impersonated` with
/// the reason. Administrators and suspended accounts cannot be impersonated.
#[utoipa::path(post, path = "/v1/admin/users/{id}/impersonate", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = ImpersonateRequest,
    responses((status = 201, body = crate::routes::dto::TokensResponse),
    (status = 400, body = crate::error::Problem), (status = 401, body = crate::error::Problem),
    (status = 403, description = "forbidden (an administrator) or account_suspended", body = crate::error::Problem),
    (status = 404, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
pub(crate) async fn impersonate(
    State(state): State<AppState>,
    Client(context): Client,
    Admin(admin): Admin,
    Path(id): Path<String>,
    crate::extract::ApiJson(body): crate::extract::ApiJson<ImpersonateRequest>,
) -> Result<(StatusCode, Json<crate::routes::dto::TokensResponse>), ApiError> {
    let minutes = body.minutes.unwrap_or(DEFAULT_IMPERSONATION_MINUTES);
    let tokens =
        state.accounts.sessions.impersonate(&admin, &id, &body.reason, minutes, &context).await?;
    Ok((StatusCode::CREATED, Json(tokens.into())))
}

/// An impersonation's length when none is asked for.
pub(crate) const DEFAULT_IMPERSONATION_MINUTES: i64 = 15;
