//! API keys: `/v1/me/api-keys` (a user's own), `/v1/organizations/{id}/api-keys` (an
//! organization's, `api_keys:manage`) and `/v1/admin/api-keys` (every key). Every route here
//! takes a user's token (or, for the admin API, an admin); an API key is refused
//! (`insufficient_scope`) by the extractors themselves.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use gatehouse_domain::DomainError;
use gatehouse_domain::api_keys::{ApiKeyRecord, NewApiKey};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::dto::{Page, PageQuery, cursor_of};
use super::organizations::page_bounds;
use crate::auth::{Admin, Authenticated};
use crate::client::Client;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/me/api-keys", get(list_my_keys).post(create_my_key))
        .route("/v1/me/api-keys/{id}", delete(revoke_my_key))
        .route(
            "/v1/organizations/{id}/api-keys",
            get(list_organization_keys).post(create_organization_key),
        )
        .route("/v1/organizations/{id}/api-keys/{key_id}", delete(revoke_organization_key))
        .route("/v1/admin/api-keys", get(admin_list_keys))
        .route("/v1/admin/api-keys/{id}", delete(admin_revoke_key))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateApiKeyRequest {
    /// 1 to 100 characters.
    name: String,
    /// 1 to 50 `resource:action` scopes: the Gatehouse API's (`profile:read`,
    /// `profile:write`, `sessions:read`, `organizations:read`; personal keys only) or a
    /// resource server's.
    scopes: Vec<String>,
    /// Unix seconds, in the future; absent: the key lives until revoked.
    expires_at: Option<i64>,
    /// Personal keys only: an organization of the user's (`org:read` there) for the key to act
    /// in. It works only while the user stays a member; introspection answers it as `org_id`.
    #[serde(default)]
    organization_id: Option<String>,
}

impl From<CreateApiKeyRequest> for NewApiKey {
    fn from(body: CreateApiKeyRequest) -> Self {
        NewApiKey {
            name: body.name,
            scopes: body.scopes,
            expires_at: body.expires_at,
            organization_id: body.organization_id,
        }
    }
}

/// A key as lists show it: never the key itself.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ApiKeyResponse {
    id: String,
    /// The key's first characters (`gtk_` and 8 more), to tell keys apart.
    prefix: String,
    name: String,
    scopes: Vec<String>,
    created_at: i64,
    expires_at: Option<i64>,
    last_used_at: Option<i64>,
    revoked_at: Option<i64>,
    /// The owner: a user (personal key) or an organization.
    user_id: Option<String>,
    /// The organization's key, or the organization a personal key acts in.
    organization_id: Option<String>,
    created_by: String,
}

impl From<ApiKeyRecord> for ApiKeyResponse {
    fn from(key: ApiKeyRecord) -> Self {
        ApiKeyResponse {
            user_id: key.user_id().map(str::to_owned),
            organization_id: key.org_id().map(str::to_owned),
            id: key.id,
            prefix: key.prefix,
            name: key.name,
            scopes: key.scopes,
            created_at: key.created_at,
            expires_at: key.expires_at,
            last_used_at: key.last_used_at,
            revoked_at: key.revoked_at,
            created_by: key.created_by,
        }
    }
}

/// A new key, with the key itself: shown this once, never again.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CreatedApiKeyResponse {
    /// `gtk_` + 43 base62 + 6 base62 checksum characters.
    key: String,
    #[serde(flatten)]
    api_key: ApiKeyResponse,
}

fn created((record, key): (ApiKeyRecord, String)) -> Response {
    let body = CreatedApiKeyResponse { key, api_key: record.into() };
    (StatusCode::CREATED, Json(body)).into_response()
}

fn page(keys: Vec<ApiKeyRecord>, query: &PageQuery) -> Result<Page<ApiKeyResponse>, DomainError> {
    Page::of_newest_first(keys, query, |key| (key.created_at, key.id.as_str()), Into::into)
}

/// Creates a personal key (a user token with a recent authentication; never an API key).
#[utoipa::path(post, path = "/v1/me/api-keys", tag = "me", security(("bearer" = [])), request_body = CreateApiKeyRequest,
    responses((status = 201, body = CreatedApiKeyResponse),
    (status = 403, description = "reauthentication_required, insufficient_scope (an API key), permission_denied (no org:read in organization_id)", body = crate::error::Problem),
    (status = 404, description = "organization_id is not an organization of the user's", body = crate::error::Problem),
    (status = 422, description = "validation_failed (name, scopes, expires_at)", body = crate::error::Problem)))]
pub(crate) async fn create_my_key(
    State(state): State<AppState>,
    Client(context): Client,
    Authenticated(principal): Authenticated,
    ApiJson(body): ApiJson<CreateApiKeyRequest>,
) -> Result<Response, ApiError> {
    Ok(created(state.api_keys.create_personal(&principal, body.into(), &context).await?))
}

/// The user's keys, newest first (revoked and expired ones until they are swept).
#[utoipa::path(get, path = "/v1/me/api-keys", tag = "me", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = Page<ApiKeyResponse>),
    (status = 403, description = "insufficient_scope (an API key)", body = crate::error::Problem)))]
pub(crate) async fn list_my_keys(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<Page<ApiKeyResponse>>, ApiError> {
    Ok(Json(page(state.api_keys.personal_keys(&principal).await?, &query)?))
}

/// Revokes one of the user's keys at once (another user's: 404).
#[utoipa::path(delete, path = "/v1/me/api-keys/{id}", tag = "me", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = crate::error::Problem),
    (status = 403, description = "insufficient_scope (an API key)", body = crate::error::Problem)))]
pub(crate) async fn revoke_my_key(
    State(state): State<AppState>,
    Client(context): Client,
    Authenticated(principal): Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.api_keys.revoke_personal(&principal, &id, &context).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Creates an organization's key (`api_keys:manage`, recent authentication); organization
/// keys carry only resource-server scopes.
#[utoipa::path(post, path = "/v1/organizations/{id}/api-keys", tag = "organizations", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = CreateApiKeyRequest,
    responses((status = 201, body = CreatedApiKeyResponse),
    (status = 403, description = "permission_denied, reauthentication_required, insufficient_scope (an API key)", body = crate::error::Problem),
    (status = 404, body = crate::error::Problem),
    (status = 422, description = "validation_failed", body = crate::error::Problem)))]
pub(crate) async fn create_organization_key(
    State(state): State<AppState>,
    Client(context): Client,
    Authenticated(principal): Authenticated,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CreateApiKeyRequest>,
) -> Result<Response, ApiError> {
    let made =
        state.api_keys.create_for_organization(&principal, &id, body.into(), &context).await?;
    Ok(created(made))
}

/// An organization's keys, newest first (`api_keys:manage`).
#[utoipa::path(get, path = "/v1/organizations/{id}/api-keys", tag = "organizations", security(("bearer" = [])),
    params(("id" = String, Path), PageQuery),
    responses((status = 200, body = Page<ApiKeyResponse>),
    (status = 403, description = "permission_denied", body = crate::error::Problem), (status = 404, body = crate::error::Problem)))]
pub(crate) async fn list_organization_keys(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<Page<ApiKeyResponse>>, ApiError> {
    Ok(Json(page(state.api_keys.organization_keys(&principal, &id).await?, &query)?))
}

/// Revokes one of an organization's keys (`api_keys:manage`).
#[utoipa::path(delete, path = "/v1/organizations/{id}/api-keys/{key_id}", tag = "organizations", security(("bearer" = [])),
    params(("id" = String, Path), ("key_id" = String, Path)),
    responses((status = 204), (status = 403, description = "permission_denied", body = crate::error::Problem),
    (status = 404, body = crate::error::Problem)))]
pub(crate) async fn revoke_organization_key(
    State(state): State<AppState>,
    Client(context): Client,
    Authenticated(principal): Authenticated,
    Path((id, key_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state.api_keys.revoke_for_organization(&principal, &id, &key_id, &context).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Every API key (users' and organizations'; admin keys are not listed here), newest first.
#[utoipa::path(get, path = "/v1/admin/api-keys", tag = "admin", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = Page<ApiKeyResponse>)))]
pub(crate) async fn admin_list_keys(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<Page<ApiKeyResponse>>, ApiError> {
    let (cursor, limit) = page_bounds(&query)?;
    let mut found = state.api_keys.admin_list(&admin, cursor.as_ref(), limit + 1).await?;
    let next_cursor = if found.len() > limit as usize {
        found.truncate(limit as usize);
        found.last().map(|last| cursor_of(last.created_at, &last.id))
    } else {
        None
    };
    Ok(Json(Page { data: found.into_iter().map(Into::into).collect(), next_cursor }))
}

/// Revokes any API key.
#[utoipa::path(delete, path = "/v1/admin/api-keys/{id}", tag = "admin", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = crate::error::Problem)))]
pub(crate) async fn admin_revoke_key(
    State(state): State<AppState>,
    Client(context): Client,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.api_keys.admin_revoke(&admin, &id, &context).await?;
    Ok(StatusCode::NO_CONTENT)
}
