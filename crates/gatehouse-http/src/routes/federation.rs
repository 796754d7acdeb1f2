//! Sign-in providers and linked identities: `GET /v1/auth/providers` (login buttons) and the
//! user's identities, `GET /v1/me/identities` and `DELETE /v1/me/identities/{id}`. The flows
//! themselves are hosted pages (`pages::sso`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use gatehouse_domain::federation::{IdentityView, ProviderSummary};
use serde::Serialize;
use utoipa::ToSchema;

use super::dto::Page;
use crate::auth::Authenticated;
use crate::client::Client;
use crate::error::ApiError;
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/auth/providers", get(list_providers))
        .route("/v1/me/identities", get(list_identities))
        .route("/v1/me/identities/{id}", delete(unlink_identity))
}

/// A provider as login buttons show it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ProviderResponse {
    /// In `/sso/{id}`.
    id: String,
    /// The button's words.
    name: String,
    /// `oidc`, `oauth2`, `google`, `github`, ...
    kind: String,
}

impl From<ProviderSummary> for ProviderResponse {
    fn from(provider: ProviderSummary) -> Self {
        ProviderResponse { id: provider.id, name: provider.name, kind: provider.kind.to_owned() }
    }
}

/// An upstream identity linked to the user.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct IdentityResponse {
    id: String,
    provider_id: String,
    provider_name: String,
    /// The address the provider gave when the identity was linked.
    email: Option<String>,
    created_at: i64,
    last_used_at: Option<i64>,
}

impl From<IdentityView> for IdentityResponse {
    fn from(view: IdentityView) -> Self {
        IdentityResponse {
            id: view.id,
            provider_id: view.provider_id,
            provider_name: view.provider_name,
            email: view.email,
            created_at: view.created_at,
            last_used_at: view.last_used_at,
        }
    }
}

/// The enabled sign-in providers, in configuration order: `GET /sso/{id}` starts a sign-in
/// with one.
#[utoipa::path(get, path = "/v1/auth/providers", tag = "auth",
    responses((status = 200, body = Page<ProviderResponse>)))]
pub(crate) async fn list_providers(
    State(state): State<AppState>,
) -> Result<Json<Page<ProviderResponse>>, ApiError> {
    let data =
        state.federation.providers().await?.into_iter().map(ProviderResponse::from).collect();
    Ok(Json(Page { data, next_cursor: None }))
}

/// The user's linked identities, oldest first (one page: a user links a handful).
#[utoipa::path(get, path = "/v1/me/identities", tag = "me", security(("bearer" = [])),
    responses((status = 200, body = Page<IdentityResponse>),
    (status = 403, description = "insufficient_scope (an API key)", body = crate::error::Problem)))]
pub(crate) async fn list_identities(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
) -> Result<Json<Page<IdentityResponse>>, ApiError> {
    let views = state.federation.identities(&principal.user.id).await?;
    Ok(Json(Page {
        data: views.into_iter().map(IdentityResponse::from).collect(),
        next_cursor: None,
    }))
}

/// Unlinks one of the user's identities (a sign-in within the step-up window needed, as for a
/// passkey's removal); the last way to sign in stays.
#[utoipa::path(delete, path = "/v1/me/identities/{id}", tag = "me", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = crate::error::Problem),
    (status = 409, description = "last_sign_in_method", body = crate::error::Problem),
    (status = 403, description = "reauthentication_required, insufficient_scope (an API key)", body = crate::error::Problem)))]
pub(crate) async fn unlink_identity(
    State(state): State<AppState>,
    Client(context): Client,
    Authenticated(principal): Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.federation.unlink(&principal, &id, &context).await?;
    Ok(StatusCode::NO_CONTENT)
}
