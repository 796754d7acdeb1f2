//! How the OAuth endpoints answer: errors in the RFCs' format (`{"error",
//! "error_description"}` with the status and `WWW-Authenticate` each calls for) and JSON that
//! must not be cached.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use gatehouse_domain::oauth::OAuthError;

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
        let status = match &self.error {
            OAuthError::InvalidClient | OAuthError::InvalidToken => StatusCode::UNAUTHORIZED,
            OAuthError::InsufficientScope => StatusCode::FORBIDDEN,
            OAuthError::ServerError(_) => StatusCode::INTERNAL_SERVER_ERROR,
            OAuthError::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        };
        if let OAuthError::ServerError(internal) = &self.error {
            tracing::error!(internal, "OAuth endpoint failed");
        }
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
