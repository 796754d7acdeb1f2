//! `/.well-known/` documents: the JWK Set of the public signing keys.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

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
    let bytes = state.documents.jwks.get_or_build(&jwks, Clone::clone);
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    Ok(response)
}
