//! `/v1/admin/clients`: OAuth clients — register (the secret is answered once), list, read,
//! delete, rotate the secret.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use gatehouse_domain::oauth::client::ClientRecord;
use gatehouse_domain::oauth::clients::{ClientChange, NewClient};
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
        .route("/v1/admin/clients", get(list_clients).post(create_client))
        .route("/v1/admin/clients/{id}", get(get_client).patch(update_client).delete(delete_client))
        .route("/v1/admin/clients/{id}/rotate-secret", post(rotate_secret))
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ClientResponse {
    client_id: String,
    name: String,
    public: bool,
    redirect_uris: Vec<String>,
    post_logout_redirect_uris: Vec<String>,
    grant_types: Vec<String>,
    scopes: Vec<String>,
    token_endpoint_auth_method: String,
    skip_consent: bool,
    /// Its authorization requests must be pushed first (`/oauth2/par`, RFC 9126).
    require_pushed_authorization_requests: bool,
    /// Its access tokens must all be DPoP-bound (RFC 9449 §5.2): a token request without a
    /// proof is refused with `invalid_dpop_proof`.
    dpop_bound_access_tokens: bool,
    /// Where logout tokens are `POST`ed when a session it holds ends (OpenID Connect
    /// Back-Channel Logout 1.0).
    backchannel_logout_uri: Option<String>,
    backchannel_logout_session_required: bool,
    access_token_ttl_seconds: Option<i64>,
    refresh_token_ttl_seconds: Option<i64>,
    created_at: i64,
    updated_at: i64,
    /// Only in the answer that creates or rotates it: store it now.
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret: Option<String>,
}

impl ClientResponse {
    fn new(client: ClientRecord, secret: Option<String>) -> Self {
        Self {
            public: client.is_public(),
            client_id: client.client_id,
            name: client.name,
            redirect_uris: client.redirect_uris,
            post_logout_redirect_uris: client.post_logout_redirect_uris,
            grant_types: client.grant_types,
            scopes: client.scopes,
            token_endpoint_auth_method: client.token_endpoint_auth_method,
            skip_consent: client.skip_consent,
            require_pushed_authorization_requests: client.require_pushed_authorization_requests,
            dpop_bound_access_tokens: client.dpop_bound_access_tokens,
            backchannel_logout_uri: client.backchannel_logout_uri,
            backchannel_logout_session_required: client.backchannel_logout_session_required,
            access_token_ttl_seconds: client.access_token_ttl_seconds,
            refresh_token_ttl_seconds: client.refresh_token_ttl_seconds,
            created_at: client.created_at,
            updated_at: client.updated_at,
            client_secret: secret,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateClientRequest {
    name: String,
    client_id: Option<String>,
    #[serde(default)]
    public: bool,
    #[serde(default)]
    redirect_uris: Vec<String>,
    #[serde(default)]
    post_logout_redirect_uris: Vec<String>,
    #[serde(default)]
    grant_types: Vec<String>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    skip_consent: bool,
    /// Only pushed authorization requests (RFC 9126) from this client (default false).
    #[serde(default)]
    require_pushed_authorization_requests: bool,
    /// Only DPoP-bound access tokens (RFC 9449) for this client (default false).
    #[serde(default)]
    dpop_bound_access_tokens: bool,
    /// Back-channel logout (OpenID Connect Back-Channel Logout 1.0): an http(s) URL, called
    /// under the outbound SSRF rule.
    backchannel_logout_uri: Option<String>,
    #[serde(default)]
    backchannel_logout_session_required: bool,
    access_token_ttl_seconds: Option<i64>,
    refresh_token_ttl_seconds: Option<i64>,
    /// The client's public keys: it then authenticates with `private_key_jwt`.
    #[schema(value_type = Option<Object>)]
    jwks: Option<serde_json::Value>,
}

/// Registers a client; a confidential client's secret is in this answer only.
#[utoipa::path(post, path = "/v1/admin/clients", tag = "admin", security(("bearer" = [])), request_body = CreateClientRequest,
    responses((status = 201, body = ClientResponse), (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
pub(crate) async fn create_client(
    State(state): State<AppState>,
    Client(context): Client,
    Admin(admin): Admin,
    ApiJson(body): ApiJson<CreateClientRequest>,
) -> Result<(StatusCode, Json<ClientResponse>), ApiError> {
    let request = NewClient {
        client_id: body.client_id,
        name: body.name,
        secret: None,
        public: body.public,
        redirect_uris: body.redirect_uris,
        post_logout_redirect_uris: body.post_logout_redirect_uris,
        grant_types: body.grant_types,
        scopes: body.scopes,
        skip_consent: body.skip_consent,
        require_pushed_authorization_requests: body.require_pushed_authorization_requests,
        dpop_bound_access_tokens: body.dpop_bound_access_tokens,
        backchannel_logout_uri: body.backchannel_logout_uri,
        backchannel_logout_session_required: body.backchannel_logout_session_required,
        access_token_ttl_seconds: body.access_token_ttl_seconds,
        refresh_token_ttl_seconds: body.refresh_token_ttl_seconds,
        jwks: body.jwks,
    };
    let (client, secret) = state.clients.create_client(&admin, request, &context).await?;
    Ok((StatusCode::CREATED, Json(ClientResponse::new(client, secret))))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    limit: Option<u32>,
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/admin/clients", tag = "admin", security(("bearer" = [])), params(ListQuery),
    responses((status = 200, body = Page<ClientResponse>)))]
pub(crate) async fn list_clients(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<Page<ClientResponse>>, ApiError> {
    let (clients, next_cursor) = state
        .clients
        .list_clients(&admin, query.cursor.as_deref(), query.limit.unwrap_or(50))
        .await?;
    Ok(Json(Page {
        data: clients.into_iter().map(|client| ClientResponse::new(client, None)).collect(),
        next_cursor,
    }))
}

#[utoipa::path(get, path = "/v1/admin/clients/{id}", tag = "admin", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = ClientResponse), (status = 404, body = crate::error::Problem)))]
pub(crate) async fn get_client(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<Json<ClientResponse>, ApiError> {
    Ok(Json(ClientResponse::new(state.clients.get_client(&admin, &id).await?, None)))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateClientRequest {
    name: Option<String>,
    redirect_uris: Option<Vec<String>>,
    post_logout_redirect_uris: Option<Vec<String>>,
    grant_types: Option<Vec<String>>,
    scopes: Option<Vec<String>>,
    skip_consent: Option<bool>,
    require_pushed_authorization_requests: Option<bool>,
    dpop_bound_access_tokens: Option<bool>,
    /// An empty string removes it.
    backchannel_logout_uri: Option<String>,
    backchannel_logout_session_required: Option<bool>,
    access_token_ttl_seconds: Option<i64>,
    refresh_token_ttl_seconds: Option<i64>,
}

/// Changes a client's registration, checked as a registration is; its authentication method
/// and secret stay (rotate the secret with `rotate-secret`).
#[utoipa::path(patch, path = "/v1/admin/clients/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = UpdateClientRequest,
    responses((status = 200, body = ClientResponse), (status = 404, body = crate::error::Problem),
    (status = 422, body = crate::error::Problem)))]
pub(crate) async fn update_client(
    State(state): State<AppState>,
    Client(context): Client,
    Admin(admin): Admin,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateClientRequest>,
) -> Result<Json<ClientResponse>, ApiError> {
    let change = ClientChange {
        name: body.name,
        redirect_uris: body.redirect_uris,
        post_logout_redirect_uris: body.post_logout_redirect_uris,
        grant_types: body.grant_types,
        scopes: body.scopes,
        skip_consent: body.skip_consent,
        require_pushed_authorization_requests: body.require_pushed_authorization_requests,
        dpop_bound_access_tokens: body.dpop_bound_access_tokens,
        backchannel_logout_uri: body.backchannel_logout_uri,
        backchannel_logout_session_required: body.backchannel_logout_session_required,
        access_token_ttl_seconds: body.access_token_ttl_seconds,
        refresh_token_ttl_seconds: body.refresh_token_ttl_seconds,
    };
    let client = state.clients.update_client(&admin, &id, change, &context).await?;
    Ok(Json(ClientResponse::new(client, None)))
}

/// Deletes the client and ends every session granted to it.
#[utoipa::path(delete, path = "/v1/admin/clients/{id}", tag = "admin", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = crate::error::Problem)))]
pub(crate) async fn delete_client(
    State(state): State<AppState>,
    Client(context): Client,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.clients.delete_client(&admin, &id, &context).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new secret, answered once; the previous one keeps working for 24 hours. A
/// `private_key_jwt` or public client has no secret: 409 `client_has_no_secret`.
#[utoipa::path(post, path = "/v1/admin/clients/{id}/rotate-secret", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 200, body = ClientResponse), (status = 404, body = crate::error::Problem), (status = 409, body = crate::error::Problem)))]
pub(crate) async fn rotate_secret(
    State(state): State<AppState>,
    Client(context): Client,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<Json<ClientResponse>, ApiError> {
    let (client, secret) = state.clients.rotate_client_secret(&admin, &id, &context).await?;
    Ok(Json(ClientResponse::new(client, Some(secret))))
}
