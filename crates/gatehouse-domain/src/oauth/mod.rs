//! The OAuth 2.1 / OpenID Connect provider: clients, the authorization endpoint's rules,
//! the token grants (one module each), ID tokens and claims, introspection and revocation.
//!
//! Rules enforced here (RFC 9700, OAuth 2.1):
//! - redirect URIs match exactly (loopback ports excepted, RFC 8252); an unknown client or
//!   redirect URI is never redirected to;
//! - PKCE is required for public clients and only S256 is accepted;
//! - codes live 60 s, are single-use and bound to client, redirect URI and PKCE; a replayed
//!   code revokes what it issued;
//! - refresh tokens rotate with reuse detection (shared with first-party sessions);
//! - a client only learns about its own tokens through introspection.

pub mod authorize;
pub mod backchannel;
pub mod claims;
pub mod client;
pub mod clients;
pub mod device_flow;
pub mod documents;
pub mod dpop;
pub mod error;
pub mod exchange;
pub mod grants;
pub mod introspection;
pub mod logout;
pub mod par;
pub mod registration;
pub mod request_object;
pub mod resources;
pub mod store;

use std::sync::Arc;

use gatehouse_crypto::Digester;

use crate::clock::Clock;
use crate::sessions::{SessionService, SessionStore};
use crate::tokens::TokenService;
use crate::users::{UserDirectory, UserStore};

pub use clients::ClientService;
pub use device_flow::DeviceFlowService;
pub use error::OAuthError;
pub use store::{AuthorizationCodeRecord, OAuthStore};

pub const SCOPE_OPENID: &str = "openid";
pub const SCOPE_PROFILE: &str = "profile";
pub const SCOPE_EMAIL: &str = "email";
pub const SCOPE_OFFLINE_ACCESS: &str = "offline_access";
/// The user's organization (`org_id`, `org_slug`, `org_role`, `org_permissions`) in the
/// tokens, chosen at authorization.
pub const SCOPE_ORGANIZATION: &str = "organization";
pub const STANDARD_SCOPES: &[&str] =
    &[SCOPE_OPENID, SCOPE_PROFILE, SCOPE_EMAIL, SCOPE_OFFLINE_ACCESS, SCOPE_ORGANIZATION];

/// Scopes a request gets only by asking: not part of the default when `scope` is omitted.
pub(crate) fn requested_explicitly(scope: &str) -> bool {
    scope == SCOPE_OFFLINE_ACCESS || scope == SCOPE_ORGANIZATION
}

#[derive(Debug, Clone)]
pub struct OAuthSettings {
    pub issuer: String,
    pub code_ttl_seconds: i64,
    pub id_token_ttl_seconds: i64,
    /// How long a rotated client secret keeps working.
    pub secret_overlap_seconds: i64,
}

/// The parts an [`OAuthService`] is built from.
pub struct OAuthParts {
    pub store: Arc<dyn OAuthStore>,
    pub users: Arc<dyn UserStore>,
    pub session_store: Arc<dyn SessionStore>,
    /// Refresh-token rotation, shared with first-party sessions.
    pub sessions: Arc<SessionService>,
    pub directory: Arc<UserDirectory>,
    pub tokens: Arc<TokenService>,
    pub code_digester: Digester,
    pub clock: Arc<dyn Clock>,
    pub settings: OAuthSettings,
    /// The registered resource servers (RFC 8707).
    pub resources: Arc<resources::ResourceServerService>,
}

pub struct OAuthService {
    store: Arc<dyn OAuthStore>,
    users: Arc<dyn UserStore>,
    session_store: Arc<dyn SessionStore>,
    sessions: Arc<SessionService>,
    directory: Arc<UserDirectory>,
    tokens: Arc<TokenService>,
    code_digester: Digester,
    clock: Arc<dyn Clock>,
    settings: OAuthSettings,
    resources: Arc<resources::ResourceServerService>,
}

impl OAuthService {
    pub fn new(parts: OAuthParts) -> Self {
        let OAuthParts {
            store,
            users,
            session_store,
            sessions,
            directory,
            tokens,
            code_digester,
            clock,
            settings,
            resources,
        } = parts;
        Self {
            store,
            users,
            session_store,
            sessions,
            directory,
            tokens,
            code_digester,
            clock,
            settings,
            resources,
        }
    }

    pub fn settings(&self) -> &OAuthSettings {
        &self.settings
    }

    pub fn issuer(&self) -> &str {
        &self.settings.issuer
    }
}

/// Splits a space-separated scope string into distinct tokens, in order.
pub fn split_scope(scope: &str) -> Vec<String> {
    let mut scopes: Vec<String> = Vec::new();
    for token in scope.split(' ').filter(|token| !token.is_empty()) {
        if !scopes.iter().any(|known| known == token) {
            scopes.push(token.to_owned());
        }
    }
    scopes
}
