//! The error model of the first-party and admin API: `application/problem+json` (RFC 9457)
//! with a stable `code`. 5xx bodies say nothing internal; the internal detail travels in a
//! response extension to the logging middleware, which logs each error once.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gatehouse_domain::{DomainError, Feature};
use serde::Serialize;
use utoipa::ToSchema;

/// One invalid field of a request.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub code: String,
    pub message: String,
}

/// The problem+json body.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    pub code: String,
    pub detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Seconds until a locked account or a rate limit lets the caller try again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

/// Seconds every 503 asks its client (or a load balancer) to wait before trying again — the
/// API's problem+json, the OAuth endpoints' `temporarily_unavailable` and the hosted pages alike.
pub(crate) const UNAVAILABLE_RETRY_AFTER_SECONDS: u64 = 5;

/// An error answer. Build it with the constructors so status and code stay paired.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    detail: String,
    errors: Vec<FieldError>,
    retry_after_seconds: Option<u64>,
    www_authenticate: Option<HeaderValue>,
    internal: Option<String>,
}

/// Left in the response for the logging middleware: what to log about this error.
#[derive(Debug, Clone)]
pub(crate) struct ErrorForLog {
    pub code: &'static str,
    pub internal: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            errors: Vec::new(),
            retry_after_seconds: None,
            www_authenticate: None,
            internal: None,
        }
    }

    /// The rate limiter's store is down for a budget that fails closed: 503, `Retry-After`.
    pub fn limiter_unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            "Sign-in attempts cannot be counted right now; try again shortly.",
        )
        .with_retry_after(UNAVAILABLE_RETRY_AFTER_SECONDS)
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "No resource at this address.")
    }

    pub fn validation(errors: Vec<FieldError>) -> Self {
        let mut error = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "The request is invalid.",
        );
        error.errors = errors;
        error
    }

    /// A failure that is our fault. `internal` is logged, never sent.
    pub fn internal(internal: impl Into<String>) -> Self {
        let mut error = Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "An internal error occurred; it has been logged.",
        );
        error.internal = Some(internal.into());
        error
    }

    /// A 401 for a missing or bad bearer token, with the RFC 6750 challenge.
    pub fn invalid_token() -> Self {
        let mut error = Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "The bearer token is missing, invalid, expired, or its session has ended.",
        );
        error.www_authenticate = Some(HeaderValue::from_static("Bearer error=\"invalid_token\""));
        error
    }

    /// The `WWW-Authenticate` challenge this 401 carries instead of its default.
    pub fn with_challenge(mut self, challenge: HeaderValue) -> Self {
        self.www_authenticate = Some(challenge);
        self
    }

    pub fn with_errors(mut self, errors: Vec<FieldError>) -> Self {
        self.errors = errors;
        self
    }

    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after_seconds = Some(seconds);
        self
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn code(&self) -> &'static str {
        self.code
    }
}

/// Second-factor problems: a bad challenge token is a 401 (sign in again), a bad code a 400
/// (try again), the state of the user's factors a 409, the policy a 403.
/// What a refused provider sign-in or link answers (the hosted callback shows the detail on
/// its error page).
pub(crate) fn federation_error(
    problem: &gatehouse_domain::error::FederationProblem,
    code: &'static str,
) -> ApiError {
    use gatehouse_domain::error::FederationProblem;
    let (status, detail) = match problem {
        FederationProblem::UnknownProvider => {
            (StatusCode::NOT_FOUND, "No sign-in provider has this id.".to_owned())
        }
        FederationProblem::StateInvalid => (
            StatusCode::BAD_REQUEST,
            "This sign-in was not started from this browser, or was already finished; start again."
                .to_owned(),
        ),
        FederationProblem::FlowExpired => {
            (StatusCode::BAD_REQUEST, "This sign-in took too long; start again.".to_owned())
        }
        FederationProblem::UpstreamRefused(reason) => (
            StatusCode::BAD_REQUEST,
            format!("The provider did not sign you in ({}).", sanitize(reason)),
        ),
        FederationProblem::UpstreamUnavailable(_) => (
            StatusCode::BAD_GATEWAY,
            "The provider could not be reached; try again later.".to_owned(),
        ),
        FederationProblem::IdentityRejected(_) => (
            StatusCode::BAD_REQUEST,
            "The provider's answer failed a check; start again.".to_owned(),
        ),
        FederationProblem::EmailMissing => (
            StatusCode::BAD_REQUEST,
            "The provider gave no email address, which a new account needs.".to_owned(),
        ),
        FederationProblem::AccountExists => (
            StatusCode::CONFLICT,
            "An account already uses this email address. Sign in to it, then link this provider \
             from your account page."
                .to_owned(),
        ),
        FederationProblem::IdentityTaken => {
            (StatusCode::CONFLICT, "This identity is linked to another account.".to_owned())
        }
        FederationProblem::SignUpClosed => (
            StatusCode::FORBIDDEN,
            "No account uses this identity, and new accounts cannot be created with it.".to_owned(),
        ),
        FederationProblem::LastSignInMethod => (
            StatusCode::CONFLICT,
            "This is the account's last way to sign in; add a password or a passkey first."
                .to_owned(),
        ),
        FederationProblem::ProviderReadOnly => (
            StatusCode::CONFLICT,
            "This provider comes from the configuration file; change it there.".to_owned(),
        ),
        FederationProblem::UpstreamTokenExpired => (
            StatusCode::CONFLICT,
            "The provider's access token has expired and cannot be renewed; the user must sign \
             in through the provider again."
                .to_owned(),
        ),
    };
    ApiError::new(status, code, detail)
}

/// An upstream's error code, as shown back: short, printable, no markup.
fn sanitize(reason: &str) -> String {
    reason
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .take(64)
        .collect()
}

fn passkey_error(problem: &gatehouse_domain::PasskeyProblem, code: &'static str) -> ApiError {
    use gatehouse_domain::PasskeyProblem;
    let (status, detail) = match problem {
        PasskeyProblem::Unavailable(reason) => (StatusCode::CONFLICT, reason.clone()),
        PasskeyProblem::CeremonyInvalid => (
            StatusCode::BAD_REQUEST,
            "The ceremony is unknown, was already used, or belongs to someone else; start again."
                .to_owned(),
        ),
        PasskeyProblem::CeremonyExpired => {
            (StatusCode::BAD_REQUEST, "The ceremony has expired; start again.".to_owned())
        }
        PasskeyProblem::Malformed(reason) => (
            StatusCode::BAD_REQUEST,
            format!("The credential is not a WebAuthn response ({reason})."),
        ),
        PasskeyProblem::Rejected(check) => {
            (StatusCode::UNAUTHORIZED, format!("The passkey's answer failed a check: {check}."))
        }
        PasskeyProblem::UnknownCredential => {
            (StatusCode::UNAUTHORIZED, "This passkey is not registered here.".to_owned())
        }
        PasskeyProblem::Flagged => (
            StatusCode::UNAUTHORIZED,
            "This passkey may have been copied (its counter went backwards); it was disabled and \
             its owner told. Remove it and register it again."
                .to_owned(),
        ),
        PasskeyProblem::AlreadyRegistered => {
            (StatusCode::CONFLICT, "This passkey is registered already.".to_owned())
        }
        PasskeyProblem::LastSignInMethod => (
            StatusCode::CONFLICT,
            "This is the account's last way to sign in; add another one first.".to_owned(),
        ),
        PasskeyProblem::NoPasskey => {
            (StatusCode::CONFLICT, "This account has no passkey to step up with.".to_owned())
        }
    };
    ApiError::new(status, code, detail)
}

fn mfa_error(problem: gatehouse_domain::MfaProblem, code: &'static str) -> ApiError {
    use gatehouse_domain::MfaProblem;
    let (status, detail) = match problem {
        MfaProblem::InvalidChallenge => {
            (StatusCode::UNAUTHORIZED, "The MFA token is not valid or was already used.")
        }
        MfaProblem::ChallengeExpired => {
            (StatusCode::UNAUTHORIZED, "The MFA token has expired; sign in again.")
        }
        MfaProblem::InvalidCode => (StatusCode::BAD_REQUEST, "The code is not correct."),
        MfaProblem::CodeReplayed => {
            (StatusCode::BAD_REQUEST, "This code was already used; wait for the next one.")
        }
        MfaProblem::CodeExpired => {
            (StatusCode::BAD_REQUEST, "The code has expired; ask for a new one.")
        }
        MfaProblem::AttemptsExhausted => {
            (StatusCode::BAD_REQUEST, "Too many wrong tries for this code; ask for a new one.")
        }
        MfaProblem::BackupCodeUsed => {
            (StatusCode::BAD_REQUEST, "This backup code was already used.")
        }
        MfaProblem::MethodUnavailable => {
            (StatusCode::BAD_REQUEST, "This method is not available for this account.")
        }
        MfaProblem::AlreadyEnabled => {
            (StatusCode::CONFLICT, "This factor is already enabled; remove it first.")
        }
        MfaProblem::NotEnabled => (StatusCode::CONFLICT, "This factor is not enabled."),
        MfaProblem::EnrolmentNotStarted => {
            (StatusCode::CONFLICT, "No enrolment of this factor is in progress.")
        }
        MfaProblem::EnrolmentRequired => {
            (StatusCode::FORBIDDEN, "A second factor is required: enrol one first.")
        }
        MfaProblem::ResendTooSoon => {
            let seconds = gatehouse_domain::mfa::CODE_RESEND_SECONDS;
            let detail = "A code was just sent; wait before asking for another.";
            return ApiError::new(StatusCode::TOO_MANY_REQUESTS, code, detail)
                .with_retry_after(u64::try_from(seconds).unwrap_or(30));
        }
    };
    ApiError::new(status, code, detail)
}

fn title_of(status: StatusCode) -> String {
    status.canonical_reason().unwrap_or("Error").to_owned()
}

impl From<DomainError> for ApiError {
    fn from(error: DomainError) -> Self {
        let code = error.code();
        let field_errors = |issues: &[gatehouse_domain::FieldIssue]| {
            issues
                .iter()
                .map(|issue| FieldError {
                    field: issue.field.clone(),
                    code: issue.code.clone(),
                    message: issue.message.clone(),
                })
                .collect::<Vec<_>>()
        };
        match &error {
            DomainError::NotFound => ApiError::not_found(),
            DomainError::Validation(issues) => ApiError::validation(field_errors(issues)),
            DomainError::PasswordRejected { issues, .. } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                code,
                "The password does not meet the password policy.",
            )
            .with_errors(field_errors(issues)),
            DomainError::Taken(field) => ApiError::new(
                StatusCode::CONFLICT,
                code,
                format!("This {} is already in use.", field.field()),
            ),
            DomainError::RateLimited { retry_after_seconds } => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                code,
                "Too many attempts at this account; slow down.",
            )
            .with_retry_after((*retry_after_seconds).max(1)),
            DomainError::InvalidCredentials => {
                ApiError::new(StatusCode::UNAUTHORIZED, code, "The credentials are not valid.")
            }
            DomainError::AccountSuspended => {
                ApiError::new(StatusCode::FORBIDDEN, code, "This account is suspended.")
            }
            DomainError::EmailNotVerified => ApiError::new(
                StatusCode::FORBIDDEN,
                code,
                "Verify your email address before signing in.",
            ),
            DomainError::InvalidToken => ApiError::invalid_token(),
            DomainError::OneTimeToken(problem) => {
                use gatehouse_domain::OneTimeTokenProblem;
                let detail = match problem {
                    OneTimeTokenProblem::Invalid => "The link is not valid.",
                    OneTimeTokenProblem::Used => "The link was already used.",
                    OneTimeTokenProblem::Expired => "The link has expired; ask for a new one.",
                };
                ApiError::new(StatusCode::BAD_REQUEST, code, detail)
            }
            DomainError::Disabled(Feature::MagicLink) => {
                ApiError::new(StatusCode::NOT_FOUND, code, "This feature is turned off.")
            }
            // The endpoint exists and is understood; the operator forbids it.
            DomainError::Disabled(Feature::SignUp) => ApiError::new(
                StatusCode::FORBIDDEN,
                code,
                "Sign-up is turned off: accounts are created by an administrator.",
            ),
            DomainError::InvalidGrant => ApiError::new(
                StatusCode::UNAUTHORIZED,
                code,
                "The refresh token is invalid, expired or was already used.",
            ),
            DomainError::Mfa(problem) => mfa_error(*problem, code),
            DomainError::Passkey(problem) => passkey_error(problem, code),
            DomainError::Federation(problem) => federation_error(problem, code),
            DomainError::PermissionDenied(detail) | DomainError::InsufficientScope(detail) => {
                ApiError::new(StatusCode::FORBIDDEN, code, detail.clone())
            }
            DomainError::LastOwner => ApiError::new(
                StatusCode::CONFLICT,
                code,
                "An organization keeps at least one owner: make someone else owner first.",
            ),
            DomainError::ReauthenticationRequired => ApiError::new(
                StatusCode::FORBIDDEN,
                code,
                "This action needs a recent authentication: call POST /v1/auth/reauthenticate first.",
            ),
            DomainError::Forbidden(detail) => {
                ApiError::new(StatusCode::FORBIDDEN, code, detail.clone())
            }
            DomainError::Impersonating => ApiError::new(
                StatusCode::FORBIDDEN,
                code,
                "An impersonation session cannot do this: it needs the user themselves.",
            ),
            DomainError::Conflict(detail) => {
                ApiError::new(StatusCode::CONFLICT, code, detail.clone())
            }
            DomainError::ClientHasNoSecret => ApiError::new(
                StatusCode::CONFLICT,
                code,
                "This client authenticates without a secret (private_key_jwt or public): there is no secret to rotate.",
            ),
            DomainError::Invalid(detail) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, detail.clone())
            }
            DomainError::Store(gatehouse_domain::StoreError::Unavailable(reason)) => {
                let mut answer = ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    code,
                    "A backing service is unavailable; try again shortly.",
                )
                .with_retry_after(UNAVAILABLE_RETRY_AFTER_SECONDS);
                answer.internal = Some(reason.clone());
                answer
            }
            // A conflict no service mapped to its meaning is a bug, not the caller's fault.
            DomainError::Store(
                gatehouse_domain::StoreError::Conflict(_)
                | gatehouse_domain::StoreError::Corrupt(_)
                | gatehouse_domain::StoreError::Other(_),
            )
            | DomainError::Crypto(_)
            | DomainError::Internal(_) => ApiError::internal(error.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = Problem {
            problem_type: format!("urn:gatehouse:problem:{}", self.code),
            title: title_of(self.status),
            status: self.status.as_u16(),
            code: self.code.to_owned(),
            detail: self.detail,
            errors: self.errors,
            retry_after: self.retry_after_seconds,
        };
        let body = serde_json::to_vec(&problem).unwrap_or_else(|_| b"{}".to_vec());
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(seconds) = self.retry_after_seconds {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let Some(challenge) = self.www_authenticate {
            headers.insert(header::WWW_AUTHENTICATE, challenge);
        }
        response.extensions_mut().insert(ErrorForLog { code: self.code, internal: self.internal });
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_do_not_leak_their_cause() {
        let response =
            ApiError::internal("connection to 10.0.0.5 refused, password=hunter2").into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let logged = response.extensions().get::<ErrorForLog>().unwrap();
        assert!(logged.internal.as_deref().unwrap().contains("10.0.0.5"));
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/problem+json");
    }

    #[test]
    fn domain_errors_map_to_statuses() {
        let cases: Vec<(DomainError, StatusCode, &str)> = vec![
            (DomainError::NotFound, StatusCode::NOT_FOUND, "not_found"),
            (DomainError::Conflict("x".into()), StatusCode::CONFLICT, "conflict"),
            (
                DomainError::Invalid("x".into()),
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
            ),
            (
                gatehouse_domain::StoreError::Unavailable("down".into()).into(),
                StatusCode::SERVICE_UNAVAILABLE,
                "service_unavailable",
            ),
            (
                DomainError::Internal("x".into()),
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
            ),
        ];
        for (domain, status, code) in cases {
            let api = ApiError::from(domain);
            assert_eq!((api.status(), api.code()), (status, code));
        }
    }
}
