//! The OAuth store port: clients, authorization codes, consents and revoked access tokens.

use async_trait::async_trait;

use serde::Serialize;

use super::client::ClientRecord;
use crate::audit::AuditEvent;
use crate::store::StoreError;

/// An authorization code as stored (only its digest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationCodeRecord {
    pub code_digest: Vec<u8>,
    pub client_id: String,
    pub user_id: String,
    pub browser_session_id: String,
    pub redirect_uri: String,
    pub scope: String,
    pub nonce: Option<String>,
    /// PKCE S256 challenge, when the request had one.
    pub code_challenge: Option<String>,
    pub auth_time: i64,
    /// The browser session's authentication methods (RFC 8176, space-separated), for the
    /// ID token's `amr` and `acr`.
    pub amr: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    /// The session the first exchange created; revoked if the code is replayed.
    pub issued_session_id: Option<String>,
    /// The organization the user chose for the client's tokens (`organization` scope).
    pub organization_id: Option<String>,
    /// The DPoP key the code may only be exchanged with a proof of (`dpop_jkt`, RFC 9449 §10).
    pub dpop_jkt: Option<String>,
    /// The resources (RFC 8707 identifiers) the request named: the grant is for them.
    pub resources: Vec<String>,
}

/// A client a user consented to (the account page's "connected applications").
#[derive(Debug, Clone, Serialize)]
pub struct ConnectedApplication {
    pub client_id: String,
    pub client_name: String,
    pub scopes: Vec<String>,
    pub granted_at: i64,
}

#[async_trait]
pub trait OAuthStore: Send + Sync {
    async fn insert_client(
        &self,
        client: &ClientRecord,
        events: &[AuditEvent],
    ) -> Result<(), StoreError>;
    async fn client(&self, client_id: &str) -> Result<Option<ClientRecord>, StoreError>;
    /// Clients in id order after `after`.
    async fn list_clients(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ClientRecord>, StoreError>;
    async fn update_client(
        &self,
        client: &ClientRecord,
        events: &[AuditEvent],
    ) -> Result<(), StoreError>;
    async fn delete_client(
        &self,
        client_id: &str,
        events: &[AuditEvent],
    ) -> Result<bool, StoreError>;

    async fn insert_authorization_code(
        &self,
        code: &AuthorizationCodeRecord,
    ) -> Result<(), StoreError>;
    /// Reads a code without spending it: the exchange checks the client, redirect URI and
    /// PKCE first, then spends it in the transaction that opens the session
    /// (`UnitOfWork::spend_code`), so a wrong client never burns a legitimate client's code.
    async fn authorization_code(
        &self,
        digest: &[u8],
    ) -> Result<Option<AuthorizationCodeRecord>, StoreError>;

    /// The browser session in which the code that opened `session_id` was issued, while that
    /// code is kept (the sweeper may forget it: the answer is then `None`).
    async fn browser_session_of(&self, session_id: &str) -> Result<Option<String>, StoreError>;

    /// The scopes the user has granted the client, if any.
    async fn consent(
        &self,
        user_id: &str,
        client_id: &str,
    ) -> Result<Option<Vec<String>>, StoreError>;
    async fn save_consent(
        &self,
        user_id: &str,
        client_id: &str,
        scopes: &[String],
        now: i64,
        events: &[AuditEvent],
    ) -> Result<(), StoreError>;

    /// The user's consents with their clients' names, newest first.
    async fn consents_of_user(
        &self,
        user_id: &str,
    ) -> Result<Vec<ConnectedApplication>, StoreError>;
    /// Deletes a consent and revokes the user's sessions granted to that client, in one
    /// transaction. `false` when there was no consent.
    async fn revoke_consent(
        &self,
        user_id: &str,
        client_id: &str,
        now: i64,
        events: &[AuditEvent],
    ) -> Result<bool, StoreError>;

    /// Records a client assertion's `jti` until `expires_at` (its `exp` plus the leeway it is
    /// verified with); `false` when it was seen before (a replay). Entries past their
    /// `expires_at` are forgotten.
    async fn record_client_assertion(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, StoreError>;

    /// Remembers a revoked access token until it would have expired anyway.
    async fn revoke_access_token(&self, jti: &str, expires_at: i64) -> Result<(), StoreError>;
    async fn is_access_token_revoked(&self, jti: &str) -> Result<bool, StoreError>;
}
