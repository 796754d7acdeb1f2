//! The port to upstream providers: where to send the browser, and who came back. The adapter
//! (`gatehouse-outbound::upstream`) speaks OpenID Connect through the `openidconnect` crate
//! (discovery, the ID token's signature through the upstream's JWKS, `iss`, `aud`, `nonce`,
//! `exp`) and plain OAuth 2 with a user-info API (GitHub's shapes included).

use async_trait::async_trait;

use super::provider::IdentityProvider;

/// What the authorization request carries besides the provider's own settings.
#[derive(Debug, Clone)]
pub struct AuthorizationRequest {
    /// This server's callback: `<issuer>/sso/{id}/callback`.
    pub redirect_uri: String,
    pub state: String,
    /// OpenID kinds: bound into the ID token.
    pub nonce: String,
    /// A step-up: the upstream must sign the person in again (`prompt=login`, `max_age=0`).
    pub fresh_login: bool,
}

/// Where to send the browser, and the PKCE verifier to keep for the exchange.
#[derive(Clone)]
pub struct AuthorizationStart {
    pub url: String,
    pub pkce_verifier: String,
}

/// The callback's code and what the flow kept.
#[derive(Clone)]
pub struct CodeExchange {
    pub redirect_uri: String,
    pub code: String,
    pub pkce_verifier: String,
    pub nonce: String,
    /// RFC 9207: the `iss` parameter of the callback, when the upstream sent one.
    pub iss: Option<String>,
}

/// Who the upstream says signed in, every check done.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamIdentity {
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub picture: Option<String>,
    /// The upstream's `amr` (OpenID kinds), as sent.
    pub amr: Vec<String>,
    /// When the upstream last authenticated the person (OpenID `auth_time`), if it said.
    pub auth_time: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// The upstream could not be reached or answered something unusable (5xx, not JSON).
    #[error("upstream unavailable: {0}")]
    Unavailable(String),
    /// A check failed: the ID token's signature, issuer, audience, nonce or expiry, the `iss`
    /// parameter, a refused code.
    #[error("upstream answer rejected: {0}")]
    Rejected(String),
}

#[async_trait]
pub trait Upstream: Send + Sync {
    /// The upstream's authorization URL for this request (PKCE S256; OpenID: `nonce`).
    async fn start(
        &self,
        provider: &IdentityProvider,
        request: &AuthorizationRequest,
    ) -> Result<AuthorizationStart, UpstreamError>;

    /// Exchanges the code and answers the identity, checked.
    async fn identity(
        &self,
        provider: &IdentityProvider,
        exchange: &CodeExchange,
    ) -> Result<UpstreamIdentity, UpstreamError>;
}
