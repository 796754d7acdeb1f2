//! What can go wrong: a token that is not acceptable (answer 401), a verifier that cannot
//! reach the issuer (answer 503), a configuration mistake (at build time), and a token that
//! is valid but not enough for the operation (answer 403).

/// Why a token was not accepted, or why it could not be checked.
///
/// Each variant has a stable [`code`](VerifyError::code). Messages never echo the token or its
/// contents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// No bearer token in the request (the axum extractor and layer only).
    #[error("no bearer token")]
    MissingToken,
    /// Not a compact JWS, a header or payload that is not JSON, a claim of the wrong type.
    #[error("malformed token")]
    Malformed,
    /// The header's `alg` is not in the allow-list, or not the algorithm of the key its `kid`
    /// names (`none` and HMAC algorithms are never accepted).
    #[error("algorithm not allowed")]
    AlgorithmNotAllowed,
    /// The header's `typ` is not the expected one (`at+jwt` for access tokens, RFC 9068).
    #[error("wrong token type")]
    WrongType,
    /// The header names no key (`kid`).
    #[error("token names no key")]
    MissingKeyId,
    /// No published key has the token's `kid`, even after refreshing the key set (or the
    /// refresh was skipped because one happened moments ago).
    #[error("unknown signing key")]
    UnknownKey,
    /// The signature does not verify: the token was altered or signed by someone else.
    #[error("bad signature")]
    BadSignature,
    /// `exp` is past, beyond the leeway.
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future, beyond the leeway.
    #[error("token not valid yet")]
    NotYetValid,
    /// `iss` is not the configured issuer.
    #[error("wrong issuer")]
    WrongIssuer,
    /// `aud` names none of the configured audiences.
    #[error("wrong audience")]
    WrongAudience,
    /// A claim every access token must carry is absent.
    #[error("missing claim {0}")]
    MissingClaim(&'static str),
    /// The introspection endpoint says the token is not active (unknown, revoked, expired).
    #[error("token not active")]
    Inactive,
    /// The token is sender-constrained (`cnf`: a DPoP key, RFC 9449, or a client certificate,
    /// RFC 8705): it is accepted only with a proof of that key, which a bearer token check
    /// does not see.
    #[error("the token is sender-constrained: present it with its proof of possession")]
    SenderConstrained,
    /// `Authorization: DPoP`: the proof is missing, malformed, not by the token's key, for
    /// another request, stale or replayed (RFC 9449 §4.3), or the token is not DPoP-bound.
    #[error("invalid DPoP proof: {0}")]
    InvalidDpopProof(&'static str),
    /// An opaque token (such as an API key) arrived but no introspection is configured.
    #[error("opaque tokens are not accepted here")]
    OpaqueTokenNotAccepted,
    /// The issuer could not be asked (discovery, JWKS or introspection failed) and nothing
    /// usable is cached. Not the caller's fault: answer 503.
    #[error("issuer unavailable: {0}")]
    IssuerUnavailable(String),
}

impl VerifyError {
    /// A stable snake_case code, as Gatehouse's own problem+json answers carry.
    pub fn code(&self) -> &'static str {
        match self {
            VerifyError::IssuerUnavailable(_) => "issuer_unavailable",
            VerifyError::InvalidDpopProof(_) => "invalid_dpop_proof",
            _ => "invalid_token",
        }
    }

    /// Whether the token (or its absence) is at fault, so the answer is 401; otherwise the
    /// issuer could not be reached and the answer is 503.
    pub fn is_token_problem(&self) -> bool {
        !matches!(self, VerifyError::IssuerUnavailable(_))
    }
}

/// A mistake in the verifier's configuration, found by [`crate::VerifierBuilder::build`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("issuer must be an http or https URL: {0}")]
    Issuer(String),
    #[error(
        "at least one audience is required (Gatehouse's first-party tokens carry the issuer unless tokens.audience is set)"
    )]
    MissingAudience,
    #[error(
        "{0} is not an asymmetric JWS algorithm; only RS*, PS*, ES256, ES384 and EdDSA may be allowed"
    )]
    Algorithm(String),
    #[error("the algorithm allow-list is empty")]
    NoAlgorithms,
    #[error("{0} must be an http or https URL")]
    Url(&'static str),
    #[error("the HTTP client could not be built: {0}")]
    HttpClient(String),
    /// A protected resource's identifier that RFC 9728 does not allow.
    #[error("resource {0:?} must be an http(s) URL with a host and no fragment")]
    Resource(String),
}

/// A valid token that does not allow the operation: answer 403 (RFC 6750 section 3.1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Forbidden {
    /// The token lacks a scope the operation needs (`insufficient_scope`).
    #[error("the token lacks the scope {0}")]
    InsufficientScope(String),
    /// The token's organization role lacks a permission (`permission_denied`).
    #[error("the token lacks the permission {0}")]
    PermissionDenied(String),
    /// The token does not act in the organization the operation is about.
    #[error("the token does not act in this organization")]
    WrongOrganization,
}

impl Forbidden {
    /// A stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            Forbidden::InsufficientScope(_) => "insufficient_scope",
            Forbidden::PermissionDenied(_) | Forbidden::WrongOrganization => "permission_denied",
        }
    }
}
