//! `SessionStore`: the port that keeps sessions and their refresh tokens, written together
//! with the user row and the change's unit of work.

use async_trait::async_trait;

use crate::audit::AuditEvent;
use crate::sessions::record::{
    RefreshRotation, RefreshTokenRecord, RevokeReason, RotationOutcome, SessionRecord,
};
use crate::store::StoreError;
use crate::unit_of_work::UnitOfWork;
use crate::users::record::{UserChange, UserRecord};

#[async_trait]
pub trait SessionStore: Send + Sync {
    /// In one transaction: the user's `change` (failures reset, last sign-in, maybe a
    /// re-hashed password; only those columns), the session, its first refresh token (if it
    /// gets one) and the unit of work (events, the known device, a trusted browser, a spent
    /// magic-link token, a new-sign-in notice). The user row is written first, only while
    /// the user is not suspended (the row lock orders it against a suspension, which revokes
    /// every session it sees): a user suspended meanwhile gets `Conflict::UserNotActive` and
    /// nothing is written. Answers the user row as stored after the change (its role now).
    async fn start_session(
        &self,
        session: &SessionRecord,
        refresh_token: Option<&RefreshTokenRecord>,
        change: &UserChange,
        work: &UnitOfWork,
    ) -> Result<UserRecord, StoreError>;

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

    /// Carries out a refresh (see [`RefreshRotation`]): in one transaction, marks the
    /// presented token rotated and stores its successor, only if the token was not rotated yet
    /// and [`RefreshRotation::allows`] holds; the session's `last_used_at` becomes `now` when
    /// older than `touch_if_used_before`. Answers what it found (`None`: no such token) and
    /// whether it rotated; a token that was allowed as found but not rotated was spent by
    /// another request at the same moment.
    async fn rotate_refresh_token(
        &self,
        rotation: &RefreshRotation<'_>,
    ) -> Result<Option<RotationOutcome>, StoreError>;

    /// Revokes one session (if still active) with the events. `false` when it was not active.
    async fn revoke_session(
        &self,
        session_id: &str,
        now: i64,
        reason: RevokeReason,
        events: &[AuditEvent],
    ) -> Result<bool, StoreError>;

    /// Active sessions of a user, newest first.
    async fn active_sessions(
        &self,
        user_id: &str,
        now: i64,
    ) -> Result<Vec<SessionRecord>, StoreError>;

    /// Records that a session was used at `now` (its `last_used_at`).
    async fn touch_session(&self, session_id: &str, now: i64) -> Result<(), StoreError>;

    /// Records a fresh authentication on a session (step-up), with events.
    async fn update_session_authentication(
        &self,
        session_id: &str,
        auth_time: i64,
        amr: &str,
        events: &[AuditEvent],
    ) -> Result<(), StoreError>;
    /// Sets (or clears) the session's active organization, with its audit events.
    async fn set_session_organization(
        &self,
        session_id: &str,
        organization_id: Option<&str>,
        events: &[AuditEvent],
    ) -> Result<(), StoreError>;
}
