//! `/v1/admin/admin-keys`: the admin API keys — list them (never the key or its digest) and
//! revoke one, which stops it at once. Keys are created with `gatehouse admin-key create`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use gatehouse_domain::admin_keys::AdminKeyRecord;
use serde::Serialize;
use utoipa::ToSchema;

use super::dto::{Page, PageQuery, cursor_of};
use super::organizations::page_bounds;
use crate::auth::Admin;
use crate::client::Client;
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/admin-keys", get(list_admin_keys))
        .route("/v1/admin/admin-keys/{id}", delete(revoke_admin_key))
}

/// An admin API key as lists show it: never the key itself nor its digest.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AdminKeyResponse {
    /// `ak_…`, the id audit events name as the actor.
    id: String,
    name: String,
    created_at: i64,
    /// To the minute.
    last_used_at: Option<i64>,
    /// Set once the key is revoked; a revoked key authenticates nothing.
    revoked_at: Option<i64>,
}

impl From<AdminKeyRecord> for AdminKeyResponse {
    fn from(key: AdminKeyRecord) -> Self {
        AdminKeyResponse {
            id: key.id,
            name: key.name,
            created_at: key.created_at,
            last_used_at: key.last_used_at,
            revoked_at: key.revoked_at,
        }
    }
}

/// Every admin API key, revoked ones included, newest first.
#[utoipa::path(get, path = "/v1/admin/admin-keys", tag = "admin", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = Page<AdminKeyResponse>),
    (status = 422, description = "validation_failed (cursor)", body = crate::error::Problem)))]
pub(crate) async fn list_admin_keys(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<Page<AdminKeyResponse>>, ApiError> {
    let (cursor, limit) = page_bounds(&query)?;
    let mut found = state.admin_keys.list(&admin, cursor.as_ref(), limit + 1).await?;
    let next_cursor = if found.len() > limit as usize {
        found.truncate(limit as usize);
        found.last().map(|last| cursor_of(last.created_at, &last.id))
    } else {
        None
    };
    Ok(Json(Page { data: found.into_iter().map(Into::into).collect(), next_cursor }))
}

/// Revokes an admin API key at once: its next request answers 401. A key may revoke itself.
/// Revoking a revoked key answers 204 and changes nothing. Audited as `admin_key.revoked`.
#[utoipa::path(delete, path = "/v1/admin/admin-keys/{id}", tag = "admin", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = crate::error::Problem)))]
pub(crate) async fn revoke_admin_key(
    State(state): State<AppState>,
    Client(context): Client,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.admin_keys.revoke(&admin, &id, &context).await?;
    Ok(StatusCode::NO_CONTENT)
}
