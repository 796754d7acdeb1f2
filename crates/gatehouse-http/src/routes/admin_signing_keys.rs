//! `/v1/admin/keys`: the token signing keys — list them (public facts only, never a private
//! part) and rotate to a new active key, the old one staying in JWKS until its tokens expire.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use gatehouse_domain::{KeyInfo, KeyState};
use serde::Serialize;
use utoipa::ToSchema;

use super::dto::Page;
use crate::auth::Admin;
use crate::client::Client;
use crate::error::ApiError;
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/keys", get(list_signing_keys))
        .route("/v1/admin/keys/rotate", post(rotate_signing_key))
}

/// A key's state.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum SigningKeyState {
    /// Signs new tokens; exactly one key is active.
    Active,
    /// Signs nothing any more; published until `publish_until` so its tokens still verify.
    Retired,
}

/// A signing key as admins see it: its public facts, never the private part.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SigningKeyResponse {
    /// The JWK `kid` (RFC 7638 thumbprint) tokens name in their header.
    kid: String,
    /// `RS256`, `ES256` or `EdDSA`.
    algorithm: String,
    state: SigningKeyState,
    created_at: i64,
    retired_at: Option<i64>,
    /// Until when a retired key stays in JWKS.
    publish_until: Option<i64>,
    /// Whether `/.well-known/jwks.json` lists the key right now.
    published: bool,
}

impl From<KeyInfo> for SigningKeyResponse {
    fn from(key: KeyInfo) -> Self {
        SigningKeyResponse {
            kid: key.kid,
            algorithm: key.algorithm.to_string(),
            state: match key.state {
                KeyState::Active => SigningKeyState::Active,
                KeyState::Retired => SigningKeyState::Retired,
            },
            created_at: key.created_at,
            retired_at: key.retired_at,
            publish_until: key.publish_until,
            published: key.published,
        }
    }
}

/// Every signing key, newest first (the active key is the newest). Keys are few (one per
/// rotation): the list is answered whole, `next_cursor` is always `null`.
#[utoipa::path(get, path = "/v1/admin/keys", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = Page<SigningKeyResponse>)))]
pub(crate) async fn list_signing_keys(
    State(state): State<AppState>,
    Admin(admin): Admin,
) -> Result<Json<Page<SigningKeyResponse>>, ApiError> {
    let keys = state.keys.list(&admin).await?;
    Ok(Json(Page { data: keys.into_iter().map(Into::into).collect(), next_cursor: None }))
}

/// Makes a new active key (the configured algorithm) and retires the active one, which stays
/// in JWKS until every token it signed has expired. Tokens issued from now on carry the new
/// `kid`. Audited as `signing_key.rotated`.
#[utoipa::path(post, path = "/v1/admin/keys/rotate", tag = "admin", security(("bearer" = [])),
    responses((status = 201, body = SigningKeyResponse),
    (status = 409, description = "conflict: another rotation happened at the same time; nothing changed", body = crate::error::Problem)))]
pub(crate) async fn rotate_signing_key(
    State(state): State<AppState>,
    Client(context): Client,
    Admin(admin): Admin,
) -> Result<(StatusCode, Json<SigningKeyResponse>), ApiError> {
    let key = state.keys.rotate(&admin, &context).await?;
    Ok((StatusCode::CREATED, Json(key.into())))
}
