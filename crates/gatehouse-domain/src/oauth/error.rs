//! OAuth errors in their RFCs' vocabulary (`{"error", "error_description"}`).

use crate::error::DomainError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OAuthError {
    #[error("invalid_request: {0}")]
    InvalidRequest(String),
    /// Client authentication failed (401 with `WWW-Authenticate` at the token endpoint).
    #[error("invalid_client")]
    InvalidClient,
    #[error("invalid_grant: {0}")]
    InvalidGrant(String),
    #[error("unauthorized_client: {0}")]
    UnauthorizedClient(String),
    #[error("unsupported_grant_type")]
    UnsupportedGrantType,
    #[error("invalid_scope: {0}")]
    InvalidScope(String),
    #[error("invalid_token")]
    InvalidToken,
    #[error("insufficient_scope")]
    InsufficientScope,
    #[error("server_error: {0}")]
    ServerError(String),
    #[error("temporarily_unavailable")]
    TemporarilyUnavailable(String),
    /// Device flow: the person has not answered yet.
    #[error("authorization_pending")]
    AuthorizationPending,
    /// Device flow: polling too fast; the interval grows by 5 seconds.
    #[error("slow_down")]
    SlowDown,
    #[error("expired_token")]
    ExpiredToken,
    #[error("access_denied")]
    AccessDenied,
    /// A DPoP proof is missing where required, malformed, replayed or for another request
    /// (RFC 9449 §5).
    #[error("invalid_dpop_proof: {0}")]
    InvalidDpopProof(String),
    /// The proof must carry the nonce the answer's `DPoP-Nonce` header gives (RFC 9449 §8).
    #[error("use_dpop_nonce")]
    UseDpopNonce,
    /// A request object (JAR, RFC 9101) that does not verify or says something invalid.
    #[error("invalid_request_object: {0}")]
    InvalidRequestObject(String),
    /// A `resource` that is malformed, not registered or not granted (RFC 8707 §2).
    #[error("invalid_target: {0}")]
    InvalidTarget(String),
}

impl OAuthError {
    pub fn error_code(&self) -> &'static str {
        match self {
            OAuthError::InvalidRequest(_) => "invalid_request",
            OAuthError::InvalidClient => "invalid_client",
            OAuthError::InvalidGrant(_) => "invalid_grant",
            OAuthError::UnauthorizedClient(_) => "unauthorized_client",
            OAuthError::UnsupportedGrantType => "unsupported_grant_type",
            OAuthError::InvalidScope(_) => "invalid_scope",
            OAuthError::InvalidToken => "invalid_token",
            OAuthError::InsufficientScope => "insufficient_scope",
            OAuthError::ServerError(_) => "server_error",
            OAuthError::TemporarilyUnavailable(_) => "temporarily_unavailable",
            OAuthError::AuthorizationPending => "authorization_pending",
            OAuthError::SlowDown => "slow_down",
            OAuthError::ExpiredToken => "expired_token",
            OAuthError::AccessDenied => "access_denied",
            OAuthError::InvalidDpopProof(_) => "invalid_dpop_proof",
            OAuthError::UseDpopNonce => "use_dpop_nonce",
            OAuthError::InvalidRequestObject(_) => "invalid_request_object",
            OAuthError::InvalidTarget(_) => "invalid_target",
        }
    }

    /// Words for the client developer; never internal detail.
    pub fn description(&self) -> String {
        match self {
            OAuthError::InvalidRequest(text)
            | OAuthError::InvalidGrant(text)
            | OAuthError::UnauthorizedClient(text)
            | OAuthError::InvalidScope(text)
            | OAuthError::InvalidDpopProof(text)
            | OAuthError::InvalidRequestObject(text)
            | OAuthError::InvalidTarget(text) => text.clone(),
            OAuthError::InvalidClient => "client authentication failed".into(),
            OAuthError::UnsupportedGrantType => "this grant type is not supported".into(),
            OAuthError::InvalidToken => "the access token is invalid or expired".into(),
            OAuthError::InsufficientScope => "the access token lacks the required scope".into(),
            OAuthError::ServerError(_) => "the server failed; it has been logged".into(),
            OAuthError::TemporarilyUnavailable(_) => "try again shortly".into(),
            OAuthError::AuthorizationPending => {
                "the user has not answered yet; keep polling".into()
            }
            OAuthError::SlowDown => "polling too fast; wait 5 more seconds between requests".into(),
            OAuthError::ExpiredToken => "the device_code has expired; start again".into(),
            OAuthError::AccessDenied => "the user denied the request".into(),
            OAuthError::UseDpopNonce => {
                "the DPoP proof must carry the nonce given in the DPoP-Nonce header".into()
            }
        }
    }
}

impl From<DomainError> for OAuthError {
    fn from(error: DomainError) -> Self {
        match error {
            DomainError::InvalidGrant => OAuthError::InvalidGrant(
                "the refresh token is invalid, expired or was already used".into(),
            ),
            DomainError::InvalidToken => OAuthError::InvalidToken,
            DomainError::Store(crate::StoreError::Unavailable(reason)) => {
                OAuthError::TemporarilyUnavailable(reason)
            }
            other => OAuthError::ServerError(other.to_string()),
        }
    }
}

impl From<crate::StoreError> for OAuthError {
    fn from(error: crate::StoreError) -> Self {
        DomainError::from(error).into()
    }
}
