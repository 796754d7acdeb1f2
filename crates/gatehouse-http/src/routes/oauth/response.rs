//! How the OAuth endpoints answer: errors in the RFCs' format (`{"error",
//! "error_description"}` with the status and `WWW-Authenticate` each calls for) and JSON that
//! must not be cached.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use gatehouse_domain::oauth::OAuthError;

use crate::error::ErrorForLog;

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
            OAuthError::TemporarilyUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            OAuthError::InvalidRequest(_)
            | OAuthError::InvalidGrant(_)
            | OAuthError::UnauthorizedClient(_)
            | OAuthError::UnsupportedGrantType
            | OAuthError::InvalidScope(_)
            | OAuthError::AuthorizationPending
            | OAuthError::SlowDown
            | OAuthError::ExpiredToken
            | OAuthError::AccessDenied
            // At the token endpoint (RFC 9449 §5); a resource answers 401 (userinfo).
            | OAuthError::InvalidDpopProof(_)
            | OAuthError::UseDpopNonce
            | OAuthError::InvalidRequestObject(_)
            | OAuthError::InvalidTarget(_) => StatusCode::BAD_REQUEST,
        };
        // Logged once, by the observe middleware, with the request id (like every error).
        let internal = match &self.error {
            OAuthError::ServerError(internal) | OAuthError::TemporarilyUnavailable(internal) => {
                Some(internal.clone())
            }
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
            // RFC 9110 §10.2.3: when to come back (as the API's 503 answers).
            OAuthError::TemporarilyUnavailable(_) => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(crate::error::UNAVAILABLE_RETRY_AFTER_SECONDS),
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

    use axum::http::StatusCode;

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
