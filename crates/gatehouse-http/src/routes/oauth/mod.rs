//! The OAuth 2.1 / OpenID Connect endpoints, one module each, with errors in the RFCs' format
//! (`{"error", "error_description"}`) instead of problem+json.

pub(crate) mod authorize;
pub(crate) mod device;
pub(crate) mod discovery;
pub(crate) mod end_session;
pub(crate) mod form;
pub(crate) mod introspect;
pub(crate) mod token;
pub(crate) mod userinfo;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use gatehouse_domain::oauth::OAuthError;

use crate::error::ErrorForLog;
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    let api = Router::new()
        .merge(token::routes())
        .merge(userinfo::routes())
        .merge(introspect::routes())
        .merge(device::api_routes())
        // Set here, under the CORS middleware, so a preflight (OPTIONS, which no route
        // handles) reaches it instead of the router-wide 405 that runs outside this layer.
        .method_not_allowed_fallback(crate::routes::method_not_allowed)
        .layer(axum::middleware::from_fn(cors));
    // Discovery answers a simple GET (no preflight) and sets its CORS header itself, like
    // JWKS: the hottest routes skip this middleware.
    api.merge(discovery::routes())
        .merge(authorize::routes())
        .merge(device::page_routes())
        .merge(end_session::routes())
}

/// CORS for the endpoints browser clients (SPAs) call cross-origin. None of them uses
/// cookies, so any origin may, without credentials: a preflight is answered here with fixed
/// headers, and every other answer only needs `Access-Control-Allow-Origin: *` (with a
/// wildcard origin there is nothing to `Vary` on). Static headers, unlike a general CORS
/// layer that builds a header map per request: these are the hottest routes.
async fn cors(request: Request, next: Next) -> Response {
    let any = HeaderValue::from_static("*");
    if request.method() == Method::OPTIONS
        && request.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    {
        return (
            StatusCode::NO_CONTENT,
            [
                (header::ACCESS_CONTROL_ALLOW_ORIGIN, any),
                (header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST")),
                (
                    header::ACCESS_CONTROL_ALLOW_HEADERS,
                    HeaderValue::from_static("authorization, content-type"),
                ),
                (header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("3600")),
            ],
        )
            .into_response();
    }
    let mut response = next.run(request).await;
    response.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, any);
    response
}

/// An OAuth error answer. `invalid_client` always carries a Basic challenge (RFC 6749 §5.2
/// requires it when Basic was tried; always sending it tells clients what we accept).
pub(crate) struct OAuthErrorResponse {
    pub error: OAuthError,
}

impl From<OAuthError> for OAuthErrorResponse {
    fn from(error: OAuthError) -> Self {
        Self { error }
    }
}

impl IntoResponse for OAuthErrorResponse {
    fn into_response(self) -> Response {
        use axum::http::StatusCode;
        // One status per error, no wildcard: a new error must choose its status here.
        let status = match &self.error {
            OAuthError::InvalidClient | OAuthError::InvalidToken => StatusCode::UNAUTHORIZED,
            OAuthError::InsufficientScope => StatusCode::FORBIDDEN,
            OAuthError::ServerError(_) => StatusCode::INTERNAL_SERVER_ERROR,
            OAuthError::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            OAuthError::InvalidRequest(_)
            | OAuthError::InvalidGrant(_)
            | OAuthError::UnauthorizedClient(_)
            | OAuthError::UnsupportedGrantType
            | OAuthError::InvalidScope(_)
            | OAuthError::AuthorizationPending
            | OAuthError::SlowDown
            | OAuthError::ExpiredToken
            | OAuthError::AccessDenied => StatusCode::BAD_REQUEST,
        };
        // Logged once, by the observe middleware, with the request id (like every error).
        let internal = match &self.error {
            OAuthError::ServerError(internal) => Some(internal.clone()),
            _ => None,
        };
        let body = serde_json::json!({
            "error": self.error.error_code(),
            "error_description": self.error.description(),
        });
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        match &self.error {
            OAuthError::InvalidClient => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"gatehouse\""),
                );
            }
            OAuthError::InvalidToken => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer error=\"invalid_token\""),
                );
            }
            OAuthError::InsufficientScope => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer error=\"insufficient_scope\""),
                );
            }
            _ => {}
        }
        response.extensions_mut().insert(ErrorForLog { code: self.error.error_code(), internal });
        response
    }
}

/// A JSON answer that must not be cached (token responses, introspection, userinfo).
pub(crate) fn no_store_json(body: serde_json::Value) -> Response {
    let mut response = axum::Json(body).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// An OAuth failure is left for the observe middleware to log (once, with the request
    /// id), and its answer carries the RFC code but none of the internal detail.
    #[tokio::test]
    async fn oauth_errors_are_logged_by_the_middleware_without_leaking() {
        let response =
            OAuthErrorResponse::from(OAuthError::ServerError("pool timed out at 10.0.0.5".into()))
                .into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let logged = response.extensions().get::<ErrorForLog>().unwrap();
        assert_eq!(logged.code, "server_error");
        assert!(logged.internal.as_deref().unwrap().contains("10.0.0.5"));
        let body = axum::body::to_bytes(response.into_body(), 4096).await.unwrap();
        assert!(!String::from_utf8_lossy(&body).contains("10.0.0.5"));

        let response = OAuthErrorResponse::from(OAuthError::SlowDown).into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let logged = response.extensions().get::<ErrorForLog>().unwrap();
        assert_eq!((logged.code, logged.internal.as_deref()), ("slow_down", None));
    }
}
