//! The stored shapes of outbox rows, attempts and one-time tokens, and the store port.

use async_trait::async_trait;

use crate::audit::AuditEvent;
use crate::sessions::{RefreshTokenRecord, SessionRecord};
use crate::store::StoreError;
use crate::users::UserRecord;

/// Where an outbox row is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxStatus {
    Pending,
    /// Claimed by a worker until `lease_until`.
    Sending,
    Delivered,
    /// Gave up after the last attempt (or a permanent failure).
    Dead,
}

impl OutboxStatus {
    pub const ALL: [OutboxStatus; 4] =
        [OutboxStatus::Pending, OutboxStatus::Sending, OutboxStatus::Delivered, OutboxStatus::Dead];

    pub fn as_str(self) -> &'static str {
        match self {
            OutboxStatus::Pending => "pending",
            OutboxStatus::Sending => "sending",
            OutboxStatus::Delivered => "delivered",
            OutboxStatus::Dead => "dead",
        }
    }

    pub fn parse(text: &str) -> Option<OutboxStatus> {
        OutboxStatus::ALL.into_iter().find(|status| status.as_str() == text)
    }
}

/// One row of `outbox`. Times are Unix seconds; `payload` is sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRecord {
    pub id: String,
    pub channel: String,
    pub kind: String,
    pub payload: Vec<u8>,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub claimed_by: Option<String>,
    pub lease_until: Option<i64>,
    pub created_at: i64,
    pub delivered_at: Option<i64>,
    pub last_error: Option<String>,
}

/// One delivery attempt, as recorded in `outbox_attempts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxAttempt {
    pub id: String,
    pub outbox_id: String,
    pub worker: String,
    /// `delivered` or `failed`.
    pub status: String,
    pub error: Option<String>,
    pub started_at: i64,
    pub duration_ms: i64,
}

/// What an attempt leaves the row as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    Delivered { at: i64 },
    Retry { next_attempt_at: i64 },
    Dead,
}

/// What a one-time token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPurpose {
    VerifyEmail,
    ResetPassword,
    MagicLink,
}

impl TokenPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenPurpose::VerifyEmail => "verify_email",
            TokenPurpose::ResetPassword => "reset_password",
            TokenPurpose::MagicLink => "magic_link",
        }
    }

    /// How long a token of this purpose lives, in seconds.
    pub fn ttl_seconds(self) -> i64 {
        match self {
            TokenPurpose::VerifyEmail => 24 * 3600,
            TokenPurpose::ResetPassword => 3600,
            TokenPurpose::MagicLink => 15 * 60,
        }
    }
}

/// One row of `one_time_tokens`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneTimeTokenRecord {
    pub token_digest: Vec<u8>,
    pub purpose: String,
    pub user_id: String,
    /// Blind index of the address the token was sent to.
    pub email_digest: Option<Vec<u8>>,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

/// What a change writes besides itself, in its transaction: audit events, outbox rows, new
/// one-time tokens, and the token it spends (the write fails with
/// `StoreError::Conflict("one_time_token_spent")` when someone spent it first).
#[derive(Debug, Clone, Default)]
pub struct Effects {
    pub events: Vec<AuditEvent>,
    pub outbox: Vec<OutboxRecord>,
    pub tokens: Vec<OneTimeTokenRecord>,
    /// `(token digest, now)`: marks the token used, once.
    pub spend_token: Option<(Vec<u8>, i64)>,
    /// `(user id, device digest, now)`: remembers the device a user signed in from.
    pub remember_device: Option<(String, Vec<u8>, i64)>,
    /// A device the user chose to trust (second factor skipped there), written with the
    /// session it was trusted for.
    pub trusted_device: Option<crate::mfa::TrustedDeviceRecord>,
}

/// The conflict a spent token answers with.
pub const TOKEN_SPENT_CONFLICT: &str = "one_time_token_spent";

impl Effects {
    pub fn events(events: Vec<AuditEvent>) -> Effects {
        Effects { events, ..Effects::default() }
    }
}

/// A page of outbox rows, newest first (ids are time-ordered).
#[derive(Debug, Clone, Default)]
pub struct OutboxQuery {
    pub status: Option<OutboxStatus>,
    /// Ids strictly before this one.
    pub before: Option<String>,
    pub limit: u32,
}

#[async_trait]
pub trait NotifyStore: Send + Sync {
    /// Inserts a new user with its effects; a duplicate is `StoreError::Conflict`.
    async fn insert_user_with(
        &self,
        user: &UserRecord,
        effects: &Effects,
    ) -> Result<(), StoreError>;
    /// Writes every mutable column of `user` with the effects.
    async fn update_user_with(
        &self,
        user: &UserRecord,
        effects: &Effects,
    ) -> Result<(), StoreError>;
    /// Sets a new password with the effects: the old hash goes to the history (trimmed to
    /// `history_size`), and every session but `keep_session` is revoked with `reason`, in one
    /// transaction.
    async fn change_password_with(
        &self,
        user: &UserRecord,
        history_size: usize,
        keep_session: Option<&str>,
        reason: &str,
        effects: &Effects,
    ) -> Result<(), StoreError>;
    /// As `SessionStore::start_session`, with effects.
    async fn start_session_with(
        &self,
        session: &SessionRecord,
        refresh: Option<&RefreshTokenRecord>,
        user: &UserRecord,
        effects: &Effects,
    ) -> Result<(), StoreError>;
    /// Writes effects that go with no other change (a request for a link, a notice).
    async fn append_effects(&self, effects: &Effects) -> Result<(), StoreError>;
    async fn one_time_token(&self, digest: &[u8])
    -> Result<Option<OneTimeTokenRecord>, StoreError>;
    /// `(whether the user has any known device, whether this one is known)`.
    async fn device_seen(
        &self,
        user_id: &str,
        device_digest: &[u8],
    ) -> Result<(bool, bool), StoreError>;

    /// Claims up to `limit` due rows for `worker` until `lease_until`: pending rows whose time
    /// has come and `sending` rows whose lease expired. Each row is claimed by one worker
    /// (PostgreSQL: `FOR UPDATE SKIP LOCKED`; SQLite: the single writer), and its attempt
    /// count goes up.
    async fn claim_outbox(
        &self,
        worker: &str,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> Result<Vec<OutboxRecord>, StoreError>;
    /// Records an attempt and its outcome, with events (dead-letter audit). Only applies when
    /// the row is still claimed by the attempt's worker.
    async fn finish_outbox_attempt(
        &self,
        attempt: &OutboxAttempt,
        outcome: AttemptOutcome,
        events: &[AuditEvent],
    ) -> Result<bool, StoreError>;
    async fn outbox_row(&self, id: &str) -> Result<Option<OutboxRecord>, StoreError>;
    async fn list_outbox(&self, query: &OutboxQuery) -> Result<Vec<OutboxRecord>, StoreError>;
    async fn outbox_attempts(&self, outbox_id: &str) -> Result<Vec<OutboxAttempt>, StoreError>;
    /// Puts a row that is not being sent back in the queue, due now, with a fresh attempt
    /// budget; `false` when there is no such row or it is being sent.
    async fn retry_outbox(
        &self,
        id: &str,
        now: i64,
        events: &[AuditEvent],
    ) -> Result<bool, StoreError>;
}
