//! `/v1/admin/resource-servers`: the APIs access tokens can be issued for (RFC 8707 resource
//! indicators) — register, list, read, change, delete.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use gatehouse_domain::oauth::resources::{NewResourceServer, ResourceServerRecord};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::dto::Page;
use crate::auth::Admin;
use crate::client::Client;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/resource-servers", get(list).post(create))
        .route("/v1/admin/resource-servers/{id}", get(read).patch(update).delete(delete))
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ResourceServerResponse {
    /// `rs_…`.
    id: String,
    /// The absolute URI clients name in `resource`; the `aud` of its access tokens.
    identifier: String,
    name: String,
    /// The scopes its tokens may carry; empty: any scope granted to the client.
    scopes: Vec<String>,
    /// `jwt` (RFC 9068 access tokens).
    token_format: String,
    /// Overrides the client's access-token lifetime for this resource.
    access_token_ttl_seconds: Option<i64>,
    /// Clients that may exchange a user's token for this resource with an actor token (RFC
    /// 8693 delegation).
    delegation_clients: Vec<String>,
    /// Clients that may exchange without one (impersonation).
    impersonation_clients: Vec<String>,
    created_at: i64,
    updated_at: i64,
}

impl From<ResourceServerRecord> for ResourceServerResponse {
    fn from(record: ResourceServerRecord) -> Self {
        Self {
            id: record.id,
            identifier: record.identifier,
            name: record.name,
            scopes: record.scopes,
            token_format: record.token_format,
            access_token_ttl_seconds: record.access_token_ttl_seconds,
            delegation_clients: record.delegation_clients,
            impersonation_clients: record.impersonation_clients,
            created_at: record.created_at,
            updated_at: record.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateResourceServerRequest {
    identifier: String,
    name: String,
    #[serde(default)]
    scopes: Vec<String>,
    token_format: Option<String>,
    access_token_ttl_seconds: Option<i64>,
    #[serde(default)]
    delegation_clients: Vec<String>,
    #[serde(default)]
    impersonation_clients: Vec<String>,
}

/// Registers a resource server; its identifier must be unique.
#[utoipa::path(post, path = "/v1/admin/resource-servers", tag = "admin", security(("bearer" = [])),
    request_body = CreateResourceServerRequest,
    responses((status = 201, body = ResourceServerResponse), (status = 422, body = crate::error::Problem)))]
pub(crate) async fn create(
    State(state): State<AppState>,
    Client(context): Client,
    Admin(admin): Admin,
    ApiJson(body): ApiJson<CreateResourceServerRequest>,
) -> Result<(StatusCode, Json<ResourceServerResponse>), ApiError> {
    let request = NewResourceServer {
        identifier: body.identifier,
        name: body.name,
        scopes: body.scopes,
        token_format: body.token_format,
        access_token_ttl_seconds: body.access_token_ttl_seconds,
        delegation_clients: body.delegation_clients,
        impersonation_clients: body.impersonation_clients,
    };
    let record = state.resource_servers.create(&admin, request, &context).await?;
    Ok((StatusCode::CREATED, Json(record.into())))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    limit: Option<u32>,
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/admin/resource-servers", tag = "admin", security(("bearer" = [])),
    params(ListQuery), responses((status = 200, body = Page<ResourceServerResponse>)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<Page<ResourceServerResponse>>, ApiError> {
    let (records, next_cursor) = state
        .resource_servers
        .list(&admin, query.cursor.as_deref(), query.limit.unwrap_or(50))
        .await?;
    Ok(Json(Page { data: records.into_iter().map(Into::into).collect(), next_cursor }))
}

#[utoipa::path(get, path = "/v1/admin/resource-servers/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = ResourceServerResponse), (status = 404, body = crate::error::Problem)))]
pub(crate) async fn read(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<Json<ResourceServerResponse>, ApiError> {
    Ok(Json(state.resource_servers.get(&admin, &id).await?.into()))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateResourceServerRequest {
    identifier: Option<String>,
    name: Option<String>,
    scopes: Option<Vec<String>>,
    token_format: Option<String>,
    access_token_ttl_seconds: Option<i64>,
    delegation_clients: Option<Vec<String>>,
    impersonation_clients: Option<Vec<String>>,
}

/// Changes a resource server (the fields given; checked as a registration is).
#[utoipa::path(patch, path = "/v1/admin/resource-servers/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = UpdateResourceServerRequest,
    responses((status = 200, body = ResourceServerResponse), (status = 404, body = crate::error::Problem),
    (status = 422, body = crate::error::Problem)))]
pub(crate) async fn update(
    State(state): State<AppState>,
    Client(context): Client,
    Admin(admin): Admin,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateResourceServerRequest>,
) -> Result<Json<ResourceServerResponse>, ApiError> {
    let existing = state.resource_servers.get(&admin, &id).await?;
    let request = NewResourceServer {
        identifier: body.identifier.unwrap_or(existing.identifier),
        name: body.name.unwrap_or(existing.name),
        scopes: body.scopes.unwrap_or(existing.scopes),
        token_format: Some(body.token_format.unwrap_or(existing.token_format)),
        access_token_ttl_seconds: body
            .access_token_ttl_seconds
            .or(existing.access_token_ttl_seconds),
        delegation_clients: body.delegation_clients.unwrap_or(existing.delegation_clients),
        impersonation_clients: body.impersonation_clients.unwrap_or(existing.impersonation_clients),
    };
    let record = state.resource_servers.update(&admin, &id, request, &context).await?;
    Ok(Json(record.into()))
}

/// Deletes a resource server: tokens are no longer issued for it (those issued stay valid
/// until they expire).
#[utoipa::path(delete, path = "/v1/admin/resource-servers/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = crate::error::Problem)))]
pub(crate) async fn delete(
    State(state): State<AppState>,
    Client(context): Client,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.resource_servers.delete(&admin, &id, &context).await?;
    Ok(StatusCode::NO_CONTENT)
}
