//! The domain's error type: every variant has a stable `code` that the API publishes.

use gatehouse_crypto::CryptoError;

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    #[error("not found")]
    NotFound,
    /// A concurrent change won (e.g. two instances rotating keys at once); the caller may retry.
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("invalid input: {0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cryptographic failure: {0}")]
    Crypto(#[from] CryptoError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl DomainError {
    /// The stable snake_case code published in problem+json bodies (see API.md).
    pub fn code(&self) -> &'static str {
        match self {
            DomainError::NotFound => "not_found",
            DomainError::Conflict(_) => "conflict",
            DomainError::Invalid(_) => "validation_failed",
            DomainError::Store(StoreError::Unavailable(_)) => "service_unavailable",
            DomainError::Store(StoreError::Conflict(_)) => "conflict",
            DomainError::Store(_) | DomainError::Crypto(_) | DomainError::Internal(_) => {
                "internal_error"
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable() {
        let cases: Vec<(DomainError, &str)> = vec![
            (DomainError::NotFound, "not_found"),
            (DomainError::Conflict("x".into()), "conflict"),
            (DomainError::Invalid("x".into()), "validation_failed"),
            (StoreError::Unavailable("down".into()).into(), "service_unavailable"),
            (StoreError::Conflict("users_email".into()).into(), "conflict"),
            (StoreError::Other("boom".into()).into(), "internal_error"),
            (DomainError::Internal("x".into()), "internal_error"),
        ];
        for (error, code) in cases {
            assert_eq!(error.code(), code, "{error:?}");
        }
    }
}
