//! The domain's error type: every variant has a stable `code` that the API publishes.

use gatehouse_crypto::CryptoError;

use crate::store::{Conflict, StoreError};

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

/// Why a second factor (or its challenge) was refused. Each has its own code, so clients and
/// the audit trail can tell a replay from a typo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MfaProblem {
    /// The `mfa_token` is unknown, malformed or already used.
    InvalidChallenge,
    /// The `mfa_token` is past its five minutes.
    ChallengeExpired,
    /// The code is wrong (or no code was sent).
    InvalidCode,
    /// A TOTP code of a time step that was already used.
    CodeReplayed,
    /// An email/SMS code past its lifetime.
    CodeExpired,
    /// An email/SMS code that was tried too many times.
    AttemptsExhausted,
    /// A backup code that was already used.
    BackupCodeUsed,
    /// The method is not enrolled by this user, or not offered by this server.
    MethodUnavailable,
    /// Enrolling a factor of a kind the user already has.
    AlreadyEnabled,
    /// Removing or using a factor the user does not have.
    NotEnabled,
    /// Confirming an enrolment that was never started.
    EnrolmentNotStarted,
    /// MFA is required by policy and this user must enrol a factor first.
    EnrolmentRequired,
    /// A code was sent on this channel less than [`crate::mfa::CODE_RESEND_SECONDS`]
    /// ago (answered as `rate_limited`, like the other limits).
    ResendTooSoon,
}

impl MfaProblem {
    pub fn code(self) -> &'static str {
        match self {
            MfaProblem::InvalidChallenge => "invalid_mfa_token",
            MfaProblem::ChallengeExpired => "mfa_token_expired",
            MfaProblem::InvalidCode => "invalid_mfa_code",
            MfaProblem::CodeReplayed => "mfa_code_replayed",
            MfaProblem::CodeExpired => "mfa_code_expired",
            MfaProblem::AttemptsExhausted => "mfa_attempts_exhausted",
            MfaProblem::BackupCodeUsed => "backup_code_used",
            MfaProblem::MethodUnavailable => "mfa_method_unavailable",
            MfaProblem::AlreadyEnabled => "mfa_already_enabled",
            MfaProblem::NotEnabled => "mfa_not_enabled",
            MfaProblem::EnrolmentNotStarted => "mfa_enrolment_not_started",
            MfaProblem::EnrolmentRequired => "mfa_enrolment_required",
            MfaProblem::ResendTooSoon => "rate_limited",
        }
    }
}

/// Which identifier of an account is already in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    Email,
    Username,
    Slug,
}

impl Taken {
    /// The field it concerns, as the API names it.
    pub fn field(self) -> &'static str {
        match self {
            Taken::Email => "email",
            Taken::Username => "username",
            Taken::Slug => "slug",
        }
    }
}

/// Why a passkey ceremony or change was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasskeyProblem {
    /// Passkeys are off or cannot work here (the reason says which, and what to change).
    Unavailable(String),
    /// The ceremony id is unknown, used already, or not this user's, session's or kind's.
    CeremonyInvalid,
    /// The ceremony's five minutes are over.
    CeremonyExpired,
    /// The credential JSON is not a WebAuthn response.
    Malformed(String),
    /// A check failed: `challenge`, `origin`, `rp_id`, `user_verification`, `signature`,
    /// `credential`, `replayed`, ...
    Rejected(&'static str),
    /// The credential is registered nowhere (unknown, or removed).
    UnknownCredential,
    /// The credential's counter went backwards once: it signs nobody in.
    Flagged,
    /// This credential is registered already.
    AlreadyRegistered,
    /// The account would be left without a way to sign in.
    LastSignInMethod,
    /// Step-up with a passkey for an account that has none.
    NoPasskey,
}

impl PasskeyProblem {
    pub fn code(&self) -> &'static str {
        match self {
            PasskeyProblem::Unavailable(_) => "passkeys_unavailable",
            PasskeyProblem::CeremonyInvalid => "passkey_ceremony_invalid",
            PasskeyProblem::CeremonyExpired => "passkey_ceremony_expired",
            PasskeyProblem::Malformed(_) => "passkey_response_malformed",
            PasskeyProblem::Rejected(_) => "passkey_rejected",
            PasskeyProblem::UnknownCredential => "passkey_unknown",
            PasskeyProblem::Flagged => "passkey_flagged",
            PasskeyProblem::AlreadyRegistered => "passkey_already_registered",
            PasskeyProblem::LastSignInMethod => "last_sign_in_method",
            PasskeyProblem::NoPasskey => "passkey_not_registered",
        }
    }
}

/// Why a sign-in or link through an upstream provider was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FederationProblem {
    /// No enabled provider has this id.
    UnknownProvider,
    /// The callback's state is missing, not this browser's flow, or the flow cookie is gone.
    StateInvalid,
    /// The flow's ten minutes are over.
    FlowExpired,
    /// The upstream answered the browser with an error (`access_denied`, ...).
    UpstreamRefused(String),
    /// The upstream could not be reached or answered something unusable.
    UpstreamUnavailable(String),
    /// A check of the upstream's answer failed (ID token signature, issuer, audience, nonce,
    /// expiry, the `iss` parameter, a refused code).
    IdentityRejected(String),
    /// The upstream gave no usable email address for a new account.
    EmailMissing,
    /// An account has this address, and the upstream's word is not enough to link to it:
    /// sign in to it and link from the account page.
    AccountExists,
    /// The identity is linked to another account.
    IdentityTaken,
    /// The provider (or the server) does not create accounts.
    SignUpClosed,
    /// The account would be left without a way to sign in.
    LastSignInMethod,
    /// The provider comes from the configuration file: changed only there.
    ProviderReadOnly,
    /// The kept upstream access token has expired and no refresh token can renew it: the
    /// user must sign in through the provider again.
    UpstreamTokenExpired,
}

impl FederationProblem {
    pub fn code(&self) -> &'static str {
        match self {
            FederationProblem::UnknownProvider => "sso_provider_unknown",
            FederationProblem::StateInvalid => "sso_state_invalid",
            FederationProblem::FlowExpired => "sso_flow_expired",
            FederationProblem::UpstreamRefused(_) => "sso_upstream_refused",
            FederationProblem::UpstreamUnavailable(_) => "sso_upstream_unavailable",
            FederationProblem::IdentityRejected(_) => "sso_identity_rejected",
            FederationProblem::EmailMissing => "sso_email_missing",
            FederationProblem::AccountExists => "sso_account_exists",
            FederationProblem::IdentityTaken => "sso_identity_taken",
            FederationProblem::SignUpClosed => "signup_disabled",
            FederationProblem::LastSignInMethod => "last_sign_in_method",
            FederationProblem::ProviderReadOnly => "identity_provider_read_only",
            FederationProblem::UpstreamTokenExpired => "upstream_token_expired",
        }
    }
}

/// A feature an operator can switch off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    MagicLink,
    /// Self-service sign-up (`signup.enabled`); admins, the CLI and bulk import still create
    /// accounts.
    SignUp,
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
    /// The email or username belongs to another account.
    #[error("{0:?} already in use")]
    Taken(Taken),
    /// Too many attempts at one account (the per-account budget); retry after the seconds.
    #[error("rate limited")]
    RateLimited { retry_after_seconds: u64 },
    /// Unknown account, wrong password or locked account: deliberately the same answer (a
    /// lock is told to the owner by email, never to whoever is guessing).
    #[error("invalid credentials")]
    InvalidCredentials,
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
    /// A feature switched off in configuration (magic links, self-service sign-up).
    #[error("{0:?} is disabled")]
    Disabled(Feature),
    /// A refresh token that is unknown, expired, revoked or reused.
    #[error("invalid grant")]
    InvalidGrant,
    /// Authenticated but not allowed, or a step that needs a fresh authentication.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// A second factor or its challenge was refused.
    #[error("mfa: {0:?}")]
    Mfa(MfaProblem),
    /// A sensitive action needs a recent authentication (`POST /v1/auth/reauthenticate`).
    /// A member acting beyond their role's permissions (the message names the permission).
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// An API key used beyond its scopes, or where keys are never accepted (key management,
    /// password, MFA, passkeys, sessions' revocation, the admin API); the message says which.
    #[error("insufficient scope: {0}")]
    InsufficientScope(String),
    /// The change would leave an organization without an owner.
    #[error("the last owner of an organization")]
    LastOwner,
    #[error("passkey: {0:?}")]
    Passkey(PasskeyProblem),
    #[error("federation: {0:?}")]
    Federation(FederationProblem),
    #[error("reauthentication required")]
    ReauthenticationRequired,
    /// A step that needs the user themselves (a proof of presence, an application's consent)
    /// tried from an impersonation session.
    #[error("not while impersonating")]
    Impersonating,
    /// A secret operation (rotation) on an OAuth client that authenticates without one
    /// (`private_key_jwt` or public).
    #[error("this client does not authenticate with a secret")]
    ClientHasNoSecret,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cryptographic failure: {0}")]
    Crypto(#[from] CryptoError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl DomainError {
    /// A uniqueness conflict on an account's identifiers as the field it concerns; any other
    /// store error as itself.
    pub fn from_taken(error: StoreError) -> DomainError {
        match error {
            StoreError::Conflict(Conflict::UserEmail) => DomainError::Taken(Taken::Email),
            StoreError::Conflict(Conflict::UserUsername) => DomainError::Taken(Taken::Username),
            other => other.into(),
        }
    }

    /// A one-time token spent by someone else first as `token_used`; any other store error as
    /// itself.
    pub fn from_spent_token(error: StoreError) -> DomainError {
        match error {
            StoreError::Conflict(Conflict::OneTimeTokenSpent) => {
                DomainError::OneTimeToken(OneTimeTokenProblem::Used)
            }
            other => other.into(),
        }
    }

    /// A session start refused because the user was suspended meanwhile as
    /// `account_suspended`; a spent one-time token as `token_used`; the rest as itself.
    pub fn from_session_start(error: StoreError) -> DomainError {
        match error {
            StoreError::Conflict(Conflict::UserNotActive) => DomainError::AccountSuspended,
            other => DomainError::from_spent_token(other),
        }
    }

    /// A password change that lost a race (the hash it replaces was replaced meanwhile) as a
    /// `conflict`; a one-time token spent by someone else first as `token_used`; any other
    /// store error as itself.
    pub fn from_password_change(error: StoreError) -> DomainError {
        match error {
            StoreError::Conflict(Conflict::PasswordReplaced) => DomainError::Conflict(
                "The password was changed meanwhile; nothing was changed. Try again.".into(),
            ),
            other => DomainError::from_spent_token(other),
        }
    }

    /// The stable snake_case code published in problem+json bodies (see API.md).
    pub fn code(&self) -> &'static str {
        match self {
            DomainError::NotFound => "not_found",
            DomainError::Conflict(_) => "conflict",
            DomainError::Invalid(_) | DomainError::Validation(_) => "validation_failed",
            DomainError::Taken(Taken::Username) => "username_taken",
            DomainError::Taken(Taken::Email) => "email_taken",
            DomainError::Taken(Taken::Slug) => "slug_taken",
            DomainError::PermissionDenied(_) => "permission_denied",
            DomainError::InsufficientScope(_) => "insufficient_scope",
            DomainError::LastOwner => "last_owner",
            DomainError::InvalidCredentials => "invalid_credentials",
            DomainError::RateLimited { .. } => "rate_limited",
            DomainError::AccountSuspended => "account_suspended",
            DomainError::EmailNotVerified => "email_not_verified",
            DomainError::PasswordRejected { code, .. } => code,
            DomainError::InvalidToken => "invalid_token",
            DomainError::InvalidGrant => "invalid_grant",
            DomainError::OneTimeToken(OneTimeTokenProblem::Invalid) => "invalid_token",
            DomainError::OneTimeToken(OneTimeTokenProblem::Used) => "token_used",
            DomainError::OneTimeToken(OneTimeTokenProblem::Expired) => "token_expired",
            DomainError::Disabled(Feature::MagicLink) => "magic_link_disabled",
            DomainError::Disabled(Feature::SignUp) => "signup_disabled",
            DomainError::Forbidden(_) => "forbidden",
            DomainError::Mfa(problem) => problem.code(),
            DomainError::Passkey(problem) => problem.code(),
            DomainError::Federation(problem) => problem.code(),
            DomainError::ReauthenticationRequired => "reauthentication_required",
            DomainError::Impersonating => "impersonation_restricted",
            DomainError::ClientHasNoSecret => "client_has_no_secret",
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
            (DomainError::Taken(Taken::Email), "email_taken"),
            (DomainError::Taken(Taken::Username), "username_taken"),
            (DomainError::Taken(Taken::Slug), "slug_taken"),
            (DomainError::PermissionDenied("x".into()), "permission_denied"),
            (DomainError::InsufficientScope("x".into()), "insufficient_scope"),
            (DomainError::LastOwner, "last_owner"),
            (DomainError::InvalidCredentials, "invalid_credentials"),
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
            (DomainError::Disabled(Feature::MagicLink), "magic_link_disabled"),
            (DomainError::Disabled(Feature::SignUp), "signup_disabled"),
            (DomainError::Forbidden("x".into()), "forbidden"),
            (DomainError::Mfa(MfaProblem::CodeReplayed), "mfa_code_replayed"),
            (DomainError::Mfa(MfaProblem::BackupCodeUsed), "backup_code_used"),
            (DomainError::ReauthenticationRequired, "reauthentication_required"),
            (DomainError::Passkey(PasskeyProblem::Flagged), "passkey_flagged"),
            (DomainError::Passkey(PasskeyProblem::Rejected("origin")), "passkey_rejected"),
            (DomainError::ClientHasNoSecret, "client_has_no_secret"),
            (StoreError::Unavailable("down".into()).into(), "service_unavailable"),
            (StoreError::Conflict(Conflict::UserEmail).into(), "conflict"),
            (StoreError::Other("boom".into()).into(), "internal_error"),
            (DomainError::Internal("x".into()), "internal_error"),
        ];
        for (error, code) in cases {
            assert_eq!(error.code(), code, "{error:?}");
        }
    }
}
