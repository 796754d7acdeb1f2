//! The unit of work: what a change writes besides itself, in its own transaction — audit
//! events, outbox rows, one-time tokens to create or spend, the known device to remember, the
//! trusted browser to add. Every service that writes hands one to its store port with the
//! change; the store applies it inside the change's transaction, so a change and its effects
//! commit together or not at all.

use async_trait::async_trait;

use crate::audit::AuditEvent;
use crate::email_links::record::OneTimeTokenRecord;
use crate::mfa::record::TrustedBrowserRecord;
use crate::notify::outbox::OutboxRecord;
use crate::store::StoreError;

/// A device (user agent + network) a user signed in from, remembered for new-sign-in notices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownDevice {
    pub user_id: String,
    /// The keyed digest of the user agent and the address class.
    pub digest: Vec<u8>,
    pub seen_at: i64,
}

/// One token to spend: marks it used once; a second spend fails the whole unit of work with
/// `StoreError::Conflict(Conflict::OneTimeTokenSpent)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpentToken {
    pub digest: Vec<u8>,
    pub at: i64,
}

/// An authorization code to spend with the session its exchange opens: marks it used and
/// records that session (revoked if the code is ever replayed), once; a code already spent
/// fails the whole unit of work with `StoreError::Conflict(Conflict::AuthorizationCodeSpent)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpentCode {
    pub digest: Vec<u8>,
    pub at: i64,
    pub session_id: String,
}

/// What a change writes besides itself, in its transaction.
#[derive(Debug, Clone, Default)]
pub struct UnitOfWork {
    pub events: Vec<AuditEvent>,
    pub outbox: Vec<OutboxRecord>,
    pub tokens: Vec<OneTimeTokenRecord>,
    /// The one-time token this change spends.
    pub spend_token: Option<SpentToken>,
    /// The authorization code this change (a session opened by a code exchange) spends.
    pub spend_code: Option<SpentCode>,
    /// The device a user signed in from.
    pub known_device: Option<KnownDevice>,
    /// A browser the user chose to trust (second factor skipped there), written with the
    /// session it was trusted for.
    pub trusted_browser: Option<TrustedBrowserRecord>,
}

impl UnitOfWork {
    /// Only audit events.
    pub fn events(events: Vec<AuditEvent>) -> UnitOfWork {
        UnitOfWork { events, ..UnitOfWork::default() }
    }

    /// Whether it holds nothing beyond audit events and the known device: the store may then
    /// take its fast path for a plain sign-in.
    pub fn is_plain(&self) -> bool {
        self.spend_token.is_none()
            && self.spend_code.is_none()
            && self.tokens.is_empty()
            && self.outbox.is_empty()
            && self.trusted_browser.is_none()
    }
}

/// Writes a unit of work that goes with no other change (a request for a link, a notice, a
/// challenge opened).
#[async_trait]
pub trait UnitOfWorkStore: Send + Sync {
    async fn commit(&self, work: &UnitOfWork) -> Result<(), StoreError>;
}
