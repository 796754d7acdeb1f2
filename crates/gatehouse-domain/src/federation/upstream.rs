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
    /// The upstream's tokens from the exchange (kept only for a provider set to keep them).
    pub tokens: Option<UpstreamTokens>,
}

/// An upstream's access (and refresh) token, as its token endpoint answered them.
#[derive(Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UpstreamTokens {
    pub access_token: String,
    pub token_type: String,
    pub refresh_token: Option<String>,
    /// Seconds from the answer, when the upstream said.
    pub expires_in: Option<i64>,
    /// The granted scopes, when the upstream said.
    pub scopes: Option<Vec<String>>,
}

impl std::fmt::Debug for UpstreamTokens {
    /// Never prints a token.
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("UpstreamTokens")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("has_refresh_token", &self.refresh_token.is_some())
            .finish_non_exhaustive()
    }
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

    /// New tokens for a kept refresh token (the answer may omit a new refresh token: the old
    /// one then stays good).
    async fn refresh(
        &self,
        provider: &IdentityProvider,
        refresh_token: &str,
    ) -> Result<UpstreamTokens, UpstreamError>;
}
