//! `/v1/admin/identity-providers`: upstream sign-in providers. The configuration file's are
//! listed read-only (`read_only: true`); admin-added ones are created, changed and deleted at
//! run time, usable at once by every instance. Client secrets are write-only.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use gatehouse_domain::federation::admin::{ProviderAdminView, ProviderChange};
use gatehouse_domain::federation::{ClaimOverrides, ProviderSettings};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::dto::Page;
use crate::auth::Admin;
use crate::client::Client;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/identity-providers", get(list_providers).post(create_provider))
        .route(
            "/v1/admin/identity-providers/{id}",
            get(get_provider).patch(update_provider).delete(delete_provider),
        )
}

/// Where a plain OAuth 2 provider's user-info answer keeps each field (top-level keys).
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClaimMappingBody {
    subject: Option<String>,
    email: Option<String>,
    email_verified: Option<String>,
    given_name: Option<String>,
    family_name: Option<String>,
    picture: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateProviderRequest {
    /// URL-safe, unique across the file's and the admin's: 1 to 64 of a-z, 0-9, `-`, `_`.
    id: String,
    /// `oidc`, `oauth2`, `google`, `github` or `linkedin`.
    kind: String,
    /// The button's words (default: the id).
    name: Option<String>,
    /// OpenID kinds: the issuer (endpoints from its discovery document).
    issuer: Option<String>,
    authorization_url: Option<String>,
    token_url: Option<String>,
    userinfo_url: Option<String>,
    /// GitHub: the emails API.
    emails_url: Option<String>,
    client_id: String,
    /// Write-only: never answered.
    client_secret: Option<String>,
    scopes: Option<Vec<String>>,
    /// Default `true`.
    allow_sign_up: Option<bool>,
    /// Link to an existing account by a verified address (default: the preset's).
    trust_email_verified: Option<bool>,
    /// An upstream `amr` naming a second factor satisfies this server's (default `false`).
    trust_amr: Option<bool>,
    claims: Option<ClaimMappingBody>,
}

#[derive(Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateProviderRequest {
    name: Option<String>,
    issuer: Option<String>,
    authorization_url: Option<String>,
    token_url: Option<String>,
    userinfo_url: Option<String>,
    emails_url: Option<String>,
    client_id: Option<String>,
    /// Replaces the secret (write-only).
    client_secret: Option<String>,
    scopes: Option<Vec<String>>,
    allow_sign_up: Option<bool>,
    trust_email_verified: Option<bool>,
    trust_amr: Option<bool>,
}

/// A provider as admins see it: never the client secret.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ProviderResponse {
    id: String,
    kind: String,
    name: String,
    issuer: Option<String>,
    authorization_url: Option<String>,
    token_url: Option<String>,
    userinfo_url: Option<String>,
    emails_url: Option<String>,
    client_id: String,
    has_client_secret: bool,
    scopes: Vec<String>,
    allow_sign_up: bool,
    trust_email_verified: bool,
    trust_amr: bool,
    /// From the configuration file: changed only there.
    read_only: bool,
    created_at: Option<i64>,
    updated_at: Option<i64>,
}

impl From<ProviderAdminView> for ProviderResponse {
    fn from(view: ProviderAdminView) -> Self {
        let provider = view.provider;
        ProviderResponse {
            id: provider.id,
            kind: provider.kind.as_str().to_owned(),
            name: provider.name,
            issuer: provider.issuer,
            authorization_url: provider.authorization_url,
            token_url: provider.token_url,
            userinfo_url: provider.userinfo_url,
            emails_url: provider.emails_url,
            client_id: provider.client_id,
            has_client_secret: view.has_client_secret,
            scopes: provider.scopes,
            allow_sign_up: provider.allow_sign_up,
            trust_email_verified: provider.trust_email_verified,
            trust_amr: provider.trust_amr,
            read_only: view.read_only,
            created_at: view.created_at,
            updated_at: view.updated_at,
        }
    }
}

/// Every provider: the file's (read-only) first, then the admin-added ones.
#[utoipa::path(get, path = "/v1/admin/identity-providers", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = Page<ProviderResponse>)))]
pub(crate) async fn list_providers(
    State(state): State<AppState>,
    Admin(admin): Admin,
) -> Result<Json<Page<ProviderResponse>>, ApiError> {
    let views = state.federation.admin_providers(&admin).await?;
    Ok(Json(Page {
        data: views.into_iter().map(ProviderResponse::from).collect(),
        next_cursor: None,
    }))
}

/// One provider.
#[utoipa::path(get, path = "/v1/admin/identity-providers/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = ProviderResponse), (status = 404, body = crate::error::Problem)))]
pub(crate) async fn get_provider(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<Json<ProviderResponse>, ApiError> {
    Ok(Json(state.federation.admin_provider(&admin, &id).await?.into()))
}

/// Adds a provider; its URLs follow the outbound SSRF rule.
#[utoipa::path(post, path = "/v1/admin/identity-providers", tag = "admin", security(("bearer" = [])),
    request_body = CreateProviderRequest,
    responses((status = 201, body = ProviderResponse),
    (status = 409, description = "conflict (the id is taken)", body = crate::error::Problem),
    (status = 422, description = "validation_failed (refused_target: a private address)", body = crate::error::Problem)))]
pub(crate) async fn create_provider(
    State(state): State<AppState>,
    Client(context): Client,
    Admin(admin): Admin,
    ApiJson(body): ApiJson<CreateProviderRequest>,
) -> Result<Response, ApiError> {
    let settings = ProviderSettings {
        id: body.id,
        kind: body.kind,
        name: body.name,
        issuer: body.issuer,
        authorization_url: body.authorization_url,
        token_url: body.token_url,
        userinfo_url: body.userinfo_url,
        emails_url: body.emails_url,
        client_id: body.client_id,
        client_secret: body.client_secret,
        scopes: body.scopes,
        allow_sign_up: body.allow_sign_up,
        trust_email_verified: body.trust_email_verified,
        trust_amr: body.trust_amr,
        claims: body.claims.map(|claims| ClaimOverrides {
            subject: claims.subject,
            email: claims.email,
            email_verified: claims.email_verified,
            given_name: claims.given_name,
            family_name: claims.family_name,
            picture: claims.picture,
        }),
    };
    let view = state.federation.create_provider(&admin, settings, &context).await?;
    Ok((StatusCode::CREATED, Json(ProviderResponse::from(view))).into_response())
}

/// Changes an admin-added provider.
#[utoipa::path(patch, path = "/v1/admin/identity-providers/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = UpdateProviderRequest,
    responses((status = 200, body = ProviderResponse), (status = 404, body = crate::error::Problem),
    (status = 409, description = "identity_provider_read_only (from the configuration file)", body = crate::error::Problem),
    (status = 422, description = "validation_failed", body = crate::error::Problem)))]
pub(crate) async fn update_provider(
    State(state): State<AppState>,
    Client(context): Client,
    Admin(admin): Admin,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateProviderRequest>,
) -> Result<Json<ProviderResponse>, ApiError> {
    let change = ProviderChange {
        name: body.name,
        issuer: body.issuer,
        authorization_url: body.authorization_url,
        token_url: body.token_url,
        userinfo_url: body.userinfo_url,
        emails_url: body.emails_url,
        client_id: body.client_id,
        client_secret: body.client_secret,
        scopes: body.scopes,
        allow_sign_up: body.allow_sign_up,
        trust_email_verified: body.trust_email_verified,
        trust_amr: body.trust_amr,
    };
    Ok(Json(state.federation.update_provider(&admin, &id, change, &context).await?.into()))
}

/// Removes an admin-added provider (identities linked through it stay, unusable until a
/// provider with the same id is added again).
#[utoipa::path(delete, path = "/v1/admin/identity-providers/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = crate::error::Problem),
    (status = 409, description = "identity_provider_read_only", body = crate::error::Problem)))]
pub(crate) async fn delete_provider(
    State(state): State<AppState>,
    Client(context): Client,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.federation.delete_provider(&admin, &id, &context).await?;
    Ok(StatusCode::NO_CONTENT)
}
