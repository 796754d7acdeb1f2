//! Server-side sessions and their refresh tokens (the token family), as stored, and the store
//! port that changes them together with the user row and the audit trail.

use async_trait::async_trait;
use serde::Serialize;

use crate::audit::AuditEvent;
use crate::store::StoreError;
use crate::users::UserRecord;

/// One sign-in on one device. Times are Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionRecord {
    pub id: String,
    pub user_id: String,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub created_at: i64,
    pub last_used_at: i64,
    /// Absolute end: refreshing never extends a session past it.
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    pub revoked_reason: Option<String>,
    /// The OAuth client this session was granted to; `None` for first-party sessions.
    pub client_id: Option<String>,
    /// The scope granted to that client (space-separated).
    pub scope: Option<String>,
    /// When the user authenticated (OIDC `auth_time`), for ID tokens issued on refresh.
    pub auth_time: Option<i64>,
    /// The OIDC `nonce` of the authorization request, repeated in refreshed ID tokens.
    pub nonce: Option<String>,
    /// RFC 8176 methods of the last authentication, space-separated (`pwd otp mfa`).
    pub amr: Option<String>,
}

impl SessionRecord {
    pub fn is_active(&self, now: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at > now
    }

    /// The `amr` values as a list (`["pwd"]` for sessions older than the column).
    pub fn amr_values(&self) -> Vec<String> {
        match self.amr.as_deref() {
            Some(text) if !text.is_empty() => text.split(' ').map(str::to_owned).collect(),
            _ => vec!["pwd".to_owned()],
        }
    }
}

/// A refresh token as stored: only its keyed digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshTokenRecord {
    pub token_digest: Vec<u8>,
    pub session_id: String,
    pub created_at: i64,
    pub expires_at: i64,
    /// Set once the token has been exchanged; presenting it again is reuse.
    pub rotated_at: Option<i64>,
}

/// Why sessions end; stored in `revoked_reason`.
pub mod revoke_reason {
    pub const SIGNED_OUT: &str = "signed_out";
    pub const REVOKED_BY_USER: &str = "revoked_by_user";
    pub const REFRESH_TOKEN_REUSE: &str = "refresh_token_reuse";
    pub const PASSWORD_CHANGED: &str = "password_changed";
    pub const PASSWORD_RESET: &str = "password_reset";
    pub const USER_SUSPENDED: &str = "user_suspended";
    pub const REVOKED_BY_ADMIN: &str = "revoked_by_admin";
    pub const REVOKED_BY_CLIENT: &str = "revoked_by_client";
    pub const AUTHORIZATION_CODE_REUSE: &str = "authorization_code_reuse";
}

#[async_trait]
pub trait SessionStore: Send + Sync {
    /// In one transaction: the session, its first refresh token (if it gets one), the user
    /// row as it is after the sign-in (failures reset, last sign-in, maybe a re-hashed
    /// password) and the events.
    async fn start_session(
        &self,
        session: &SessionRecord,
        refresh_token: Option<&RefreshTokenRecord>,
        user: &UserRecord,
        events: &[AuditEvent],
    ) -> Result<(), StoreError>;

    async fn session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError>;

    /// A session and its user in one round trip (the bearer check on every request).
    async fn session_with_user(
        &self,
        id: &str,
    ) -> Result<Option<(SessionRecord, UserRecord)>, StoreError>;

    /// The token with this digest and its session.
    async fn refresh_token(
        &self,
        digest: &[u8],
    ) -> Result<Option<(RefreshTokenRecord, SessionRecord)>, StoreError>;

    /// Marks `presented` rotated and stores `replacement`, in one transaction, only if
    /// `presented` was not rotated yet. `false` means another request rotated it first.
    async fn rotate_refresh_token(
        &self,
        presented: &[u8],
        replacement: &RefreshTokenRecord,
        now: i64,
    ) -> Result<bool, StoreError>;

    /// Revokes one session (if still active) with the events. `false` when it was not active.
    async fn revoke_session(
        &self,
        session_id: &str,
        now: i64,
        reason: &str,
        events: &[AuditEvent],
    ) -> Result<bool, StoreError>;

    /// Active sessions of a user, newest first.
    async fn active_sessions(
        &self,
        user_id: &str,
        now: i64,
    ) -> Result<Vec<SessionRecord>, StoreError>;
}
