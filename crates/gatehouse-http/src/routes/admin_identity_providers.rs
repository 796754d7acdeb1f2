//! `/v1/admin/identity-providers`: upstream sign-in providers. The configuration file's are
//! listed read-only (`read_only: true`); admin-added ones are created, changed and deleted at
//! run time, usable at once by every instance. Client secrets (Apple: the sign-in key) are
//! write-only. `GET /v1/admin/users/{id}/identities/{provider_id}/token` hands a kept upstream
//! access token to the server's applications (providers set to `keep_tokens`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use gatehouse_domain::federation::admin::{ProviderAdminView, ProviderChange};
use gatehouse_domain::federation::{ClaimOverrides, ProviderSettings};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use gatehouse_domain::DomainError;
use gatehouse_domain::error::FieldIssue;

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
        .route("/v1/admin/users/{id}/identities/{provider_id}/token", get(upstream_token))
}

/// The secret a request gives: `client_secret`, or Apple's `private_key` (the `.p8` file's
/// PEM); never both, and each only where it belongs when the kind is known.
fn given_secret(
    kind: Option<&str>,
    client_secret: Option<String>,
    private_key: Option<String>,
) -> Result<Option<String>, DomainError> {
    let refuse = |field: &str, message: &str| -> Result<Option<String>, DomainError> {
        Err(DomainError::Validation(vec![FieldIssue::new(field, "invalid", message)]))
    };
    let apple = kind.map(|kind| kind == "apple");
    match (client_secret, private_key) {
        (Some(_), Some(_)) => refuse("private_key", "give client_secret or private_key, not both"),
        (Some(_), None) if apple == Some(true) => refuse(
            "client_secret",
            "Apple's client secret is minted from its sign-in key: give private_key",
        ),
        (None, Some(_)) if apple == Some(false) => refuse("private_key", "only for the apple kind"),
        (secret, key) => Ok(secret.or(key)),
    }
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
    /// Write-only: never answered. Not for Apple (see `private_key`).
    client_secret: Option<String>,
    /// Apple: the team id and the sign-in key's id (from Apple's developer console).
    team_id: Option<String>,
    key_id: Option<String>,
    /// Apple: the sign-in key, the `.p8` file's PEM (write-only; its client secret is minted
    /// from it for each exchange).
    private_key: Option<String>,
    /// Keep the upstream's access and refresh tokens, sealed, for the server's applications
    /// (default `false`).
    keep_tokens: Option<bool>,
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
    team_id: Option<String>,
    key_id: Option<String>,
    /// Apple: replaces the sign-in key (write-only).
    private_key: Option<String>,
    keep_tokens: Option<bool>,
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
    /// A secret is kept (Apple: the sign-in key).
    has_client_secret: bool,
    /// Apple: the team id and the sign-in key's id.
    team_id: Option<String>,
    key_id: Option<String>,
    keep_tokens: bool,
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
            team_id: provider.client_key.as_ref().map(|key| key.team_id.clone()),
            key_id: provider.client_key.as_ref().map(|key| key.key_id.clone()),
            keep_tokens: provider.keep_tokens,
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
    let client_secret = given_secret(Some(&body.kind), body.client_secret, body.private_key)?;
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
        client_secret,
        team_id: body.team_id,
        key_id: body.key_id,
        keep_tokens: body.keep_tokens,
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
    let client_secret = given_secret(None, body.client_secret, body.private_key)?;
    let change = ProviderChange {
        name: body.name,
        issuer: body.issuer,
        authorization_url: body.authorization_url,
        token_url: body.token_url,
        userinfo_url: body.userinfo_url,
        emails_url: body.emails_url,
        client_id: body.client_id,
        client_secret,
        team_id: body.team_id,
        key_id: body.key_id,
        keep_tokens: body.keep_tokens,
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

/// A kept upstream access token (never the refresh token).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UpstreamTokenResponse {
    provider_id: String,
    /// The linked identity the token belongs to.
    identity_id: String,
    access_token: String,
    /// As the provider said (`Bearer`, ...).
    token_type: String,
    /// Unix seconds, when the provider said.
    expires_at: Option<i64>,
    scopes: Option<Vec<String>>,
}

/// The user's kept access token from a provider set to `keep_tokens`, so an application can
/// call the provider's API on the user's behalf; renewed through the kept refresh token when
/// it has expired. Audited (`identity.token_read`).
#[utoipa::path(get, path = "/v1/admin/users/{id}/identities/{provider_id}/token", tag = "admin",
    security(("bearer" = [])),
    params(("id" = String, Path), ("provider_id" = String, Path)),
    responses((status = 200, body = UpstreamTokenResponse),
    (status = 404, description = "no identity from this provider, or no token kept", body = crate::error::Problem),
    (status = 409, description = "upstream_token_expired (sign in through the provider again)", body = crate::error::Problem),
    (status = 502, description = "sso_upstream_unavailable (the renewal failed)", body = crate::error::Problem)))]
pub(crate) async fn upstream_token(
    State(state): State<AppState>,
    Client(context): Client,
    Admin(admin): Admin,
    Path((user_id, provider_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let view = state.federation.upstream_token(&admin, &user_id, &provider_id, &context).await?;
    let body = UpstreamTokenResponse {
        provider_id: view.provider_id,
        identity_id: view.identity_id,
        access_token: view.access_token,
        token_type: view.token_type,
        expires_at: view.expires_at,
        scopes: view.scopes,
    };
    Ok(([(axum::http::header::CACHE_CONTROL, "no-store")], Json(body)).into_response())
}
