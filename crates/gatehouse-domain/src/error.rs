//! The domain's error type: every variant has a stable `code` that the API publishes.

use gatehouse_crypto::CryptoError;

use crate::store::StoreError;

/// One invalid input field: which, a stable code, and words for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldIssue {
    pub field: String,
    pub code: String,
    pub message: String,
}

impl FieldIssue {
    pub fn new(field: &str, code: &str, message: impl Into<String>) -> Self {
        Self { field: field.to_owned(), code: code.to_owned(), message: message.into() }
    }
}

/// Why a one-time token from an email was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OneTimeTokenProblem {
    /// Malformed, unknown, or made for another purpose.
    Invalid,
    /// Already used once.
    Used,
    Expired,
}

#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    #[error("not found")]
    NotFound,
    /// A concurrent change won (e.g. two instances rotating keys at once); the caller may retry.
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("invalid input: {0}")]
    Invalid(String),
    /// Field-level validation failures, each reported on its own.
    #[error("validation failed")]
    Validation(Vec<FieldIssue>),
    /// The email or username belongs to another account; the string names the field.
    #[error("{0} already in use")]
    Taken(&'static str),
    /// Unknown account or wrong password: deliberately the same answer.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// Only answered when the password was right (see `AccountService::sign_in`).
    #[error("account locked")]
    AccountLocked { retry_after: i64 },
    /// Only answered when the password was right.
    #[error("account suspended")]
    AccountSuspended,
    /// Only answered when the password was right, and only when verification is required.
    #[error("email not verified")]
    EmailNotVerified,
    /// The new password breaks the policy; `code` is `password_too_weak`, `password_breached`
    /// or `password_reused`, `issues` has one entry per broken rule.
    #[error("password rejected")]
    PasswordRejected { code: &'static str, issues: Vec<FieldIssue> },
    /// A bearer token that is missing, malformed, expired, or whose session ended.
    #[error("invalid token")]
    InvalidToken,
    /// A one-time token from an email (verification, reset, magic link) that cannot be used.
    #[error("one-time token: {0:?}")]
    OneTimeToken(OneTimeTokenProblem),
    /// A feature switched off in configuration (magic links).
    #[error("{0} is disabled")]
    Disabled(&'static str),
    /// A refresh token that is unknown, expired, revoked or reused.
    #[error("invalid grant")]
    InvalidGrant,
    /// Authenticated but not allowed, or a step that needs a fresh authentication.
    #[error("forbidden: {0}")]
    Forbidden(String),
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
            DomainError::Invalid(_) | DomainError::Validation(_) => "validation_failed",
            DomainError::Taken("username") => "username_taken",
            DomainError::Taken(_) => "email_taken",
            DomainError::InvalidCredentials => "invalid_credentials",
            DomainError::AccountLocked { .. } => "account_locked",
            DomainError::AccountSuspended => "account_suspended",
            DomainError::EmailNotVerified => "email_not_verified",
            DomainError::PasswordRejected { code, .. } => code,
            DomainError::InvalidToken => "invalid_token",
            DomainError::InvalidGrant => "invalid_grant",
            DomainError::OneTimeToken(OneTimeTokenProblem::Invalid) => "invalid_token",
            DomainError::OneTimeToken(OneTimeTokenProblem::Used) => "token_used",
            DomainError::OneTimeToken(OneTimeTokenProblem::Expired) => "token_expired",
            DomainError::Disabled("magic_link") => "magic_link_disabled",
            DomainError::Disabled(_) => "feature_disabled",
            DomainError::Forbidden(_) => "forbidden",
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
            (DomainError::Validation(vec![]), "validation_failed"),
            (DomainError::Taken("email"), "email_taken"),
            (DomainError::Taken("username"), "username_taken"),
            (DomainError::InvalidCredentials, "invalid_credentials"),
            (DomainError::AccountLocked { retry_after: 5 }, "account_locked"),
            (DomainError::AccountSuspended, "account_suspended"),
            (DomainError::EmailNotVerified, "email_not_verified"),
            (
                DomainError::PasswordRejected { code: "password_reused", issues: vec![] },
                "password_reused",
            ),
            (DomainError::InvalidToken, "invalid_token"),
            (DomainError::InvalidGrant, "invalid_grant"),
            (DomainError::OneTimeToken(OneTimeTokenProblem::Invalid), "invalid_token"),
            (DomainError::OneTimeToken(OneTimeTokenProblem::Used), "token_used"),
            (DomainError::OneTimeToken(OneTimeTokenProblem::Expired), "token_expired"),
            (DomainError::Disabled("magic_link"), "magic_link_disabled"),
            (DomainError::Forbidden("x".into()), "forbidden"),
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
