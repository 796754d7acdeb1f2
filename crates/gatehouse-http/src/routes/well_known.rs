//! `/.well-known/` documents: the JWK Set of the public signing keys.

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;

use crate::documents::document_response;
use crate::error::ApiError;
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/.well-known/jwks.json", get(jwks))
}

/// The public signing keys (RFC 7517): the active key and retired keys whose tokens may still
/// be valid. Cacheable for a short time and readable from browsers (CORS).
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "oauth", responses(
    (status = 200, description = "JWK Set", content_type = "application/json")))]
pub(crate) async fn jwks(State(state): State<AppState>) -> Result<Response, ApiError> {
    let jwks = state.keys.jwks().await?;
    Ok(document_response(state.documents.jwks.get_or_build(&jwks, Clone::clone)))
}
