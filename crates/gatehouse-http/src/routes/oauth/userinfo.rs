//! `GET`/`POST /oauth2/userinfo` (OIDC Core §5.3): the claims of the access token's scopes. A
//! DPoP-bound token is accepted only as `Authorization: DPoP` with a fresh proof of its key
//! for this request (RFC 9449 §7); its 401s carry the `DPoP` challenge.

use axum::Router;
use axum::extract::State;
use axum::http::header::WWW_AUTHENTICATE;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use gatehouse_domain::oauth::OAuthError;
use gatehouse_domain::oauth::dpop::ProofTarget;

use super::response::{OAuthErrorResponse, no_store_json};
use crate::dpop;
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/oauth2/userinfo", get(userinfo).post(userinfo))
}

pub(crate) async fn userinfo(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let Some((token, with_dpop)) = dpop::presented_token(&headers) else {
        return refused(&state, OAuthError::InvalidToken);
    };
    let proof_jkt = if with_dpop {
        let target = ProofTarget {
            method: method.as_str(),
            path: "/oauth2/userinfo",
            access_token: Some(token),
        };
        match dpop::proof_key(&state, &headers, target).await {
            Ok(Some(jkt)) => Some(jkt),
            Ok(None) => {
                let missing = OAuthError::InvalidDpopProof("a DPoP proof is required".into());
                return refused(&state, missing);
            }
            Err(error) => return refused(&state, error),
        }
    } else {
        None
    };
    match state.oauth.userinfo(token, proof_jkt.as_deref()).await {
        Ok(claims) => dpop::with_nonce(&state, no_store_json(claims)),
        Err(error) => refused(&state, error),
    }
}

/// The error answer of a resource: DPoP failures are 401s (RFC 9449 §7.1), and every 401
/// offers the `DPoP` challenge first, then the `Bearer` one.
fn refused(state: &AppState, error: OAuthError) -> Response {
    let code = error.error_code();
    let proof_error = matches!(error, OAuthError::InvalidDpopProof(_) | OAuthError::UseDpopNonce);
    let mut response = OAuthErrorResponse::from(error).into_response();
    if proof_error {
        *response.status_mut() = StatusCode::UNAUTHORIZED;
    }
    if response.status() == StatusCode::UNAUTHORIZED {
        let headers = response.headers_mut();
        let bearer = headers.remove(WWW_AUTHENTICATE);
        headers.insert(WWW_AUTHENTICATE, dpop::challenge(Some(code)));
        if let Some(bearer) = bearer.filter(|_| !proof_error) {
            headers.append(WWW_AUTHENTICATE, bearer);
        }
    }
    dpop::with_nonce(state, response)
}
