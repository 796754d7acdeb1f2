//! What federation keeps: identities linked to users, and a flow between its two requests.

use serde::{Deserialize, Serialize};

/// An upstream identity (provider, subject) linked to one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityRecord {
    pub id: String,
    pub user_id: String,
    pub provider_id: String,
    pub subject: String,
    /// The upstream's address when linked, sealed (AD = the identity id), for the account page.
    pub email_ciphertext: Option<Vec<u8>>,
    /// The upstream's tokens when the provider keeps them: [`KeptTokens`] as JSON, sealed
    /// under `upstream-tokens` (AD = the identity id).
    pub tokens_ciphertext: Option<Vec<u8>>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// An upstream's tokens as kept for an identity (sealed at rest).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptTokens {
    pub access_token: String,
    pub token_type: String,
    pub refresh_token: Option<String>,
    /// When the access token expires, when the upstream said.
    pub expires_at: Option<i64>,
    pub scopes: Option<Vec<String>>,
    pub obtained_at: i64,
}

impl std::fmt::Debug for KeptTokens {
    /// Never prints a token.
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("KeptTokens")
            .field("expires_at", &self.expires_at)
            .field("obtained_at", &self.obtained_at)
            .finish_non_exhaustive()
    }
}

/// A kept upstream access token, as an admin reads it (never the refresh token).
#[derive(Clone, PartialEq, Eq)]
pub struct UpstreamTokenView {
    pub provider_id: String,
    pub identity_id: String,
    pub access_token: String,
    pub token_type: String,
    pub expires_at: Option<i64>,
    pub scopes: Option<Vec<String>>,
}

/// A linked identity as its user sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IdentityView {
    pub id: String,
    pub provider_id: String,
    pub provider_name: String,
    pub email: Option<String>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// A browser's flow between `/sso/{id}` and the callback, sealed into a cookie (purpose
/// `sso-flow`): no server-side state, so any instance finishes what another began.
#[derive(Clone, Serialize, Deserialize)]
pub struct SsoFlow {
    pub provider_id: String,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
    pub return_to: String,
    /// Set when a signed-in user links an identity from `/account`.
    pub link_user_id: Option<String>,
    /// Set for a step-up: the browser session whose authentication the flow renews.
    #[serde(default)]
    pub reauth_session_id: Option<String>,
    pub created_at: i64,
}
