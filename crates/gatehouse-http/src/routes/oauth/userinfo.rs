//! `GET`/`POST /oauth2/userinfo` (OIDC Core §5.3): the claims of the access token's scopes.

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use gatehouse_domain::oauth::OAuthError;

use super::response::{OAuthErrorResponse, no_store_json};
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/oauth2/userinfo", get(userinfo).post(userinfo))
}

pub(crate) async fn userinfo(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let token = headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|token| !token.is_empty() && token.len() <= 4096);
    let Some(token) = token else {
        return OAuthErrorResponse::from(OAuthError::InvalidToken).into_response();
    };
    match state.oauth.userinfo(token).await {
        Ok(claims) => no_store_json(claims),
        Err(error) => OAuthErrorResponse::from(error).into_response(),
    }
}
