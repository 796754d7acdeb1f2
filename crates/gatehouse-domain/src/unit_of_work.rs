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

/// Every outstanding password-reset and magic-link token of a user, to spend at `at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountLinks {
    pub user_id: String,
    pub at: i64,
}

/// The mailbox of an account whose address was never verified was just proven without its
/// password (a magic link or a reset link followed): whoever signed up with that address
/// before may not be its owner (pre-account takeover), so what they set is undone in the
/// proving transaction — every session but `keep_session` revoked (their refresh tokens with
/// them), every second factor, backup code and trusted browser removed and, with
/// `clear_password`, the password cleared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxClaim {
    pub user_id: String,
    pub at: i64,
    /// The session the proof itself opens (set by the session service).
    pub keep_session: Option<String>,
    pub clear_password: bool,
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
    /// Spends every outstanding password-reset and magic-link token of this user (after the
    /// token of `spend_token`): a password reset or change must leave no older link that
    /// could set it again or sign in.
    pub spend_account_links: Option<AccountLinks>,
    /// Undoes what an unproven owner set (see [`MailboxClaim`]).
    pub mailbox_claim: Option<MailboxClaim>,
    /// A passkey to store with the change (a passkey sign-up's first credential, written
    /// with its account).
    pub passkey: Option<crate::passkeys::record::PasskeyRecord>,
    /// An upstream identity to link with the change (an account created through a provider,
    /// a first sign-in that links by a trusted address, a link from the account page).
    pub identity: Option<crate::federation::record::IdentityRecord>,
    /// A deletion the user asked for, scheduled after the grace period, or called off.
    pub account_deletion: Option<AccountDeletionChange>,
}

/// A change to an account's scheduled deletion (`account_deletion.grace_days`).
#[derive(Debug, Clone)]
pub enum AccountDeletionChange {
    /// Deleted at `due_at` unless restored with the token whose keyed digest this is.
    Schedule { user_id: String, requested_at: i64, due_at: i64, restore_digest: Vec<u8> },
    /// No deletion any more (restored by the owner, or unsuspended by an admin).
    Cancel { user_id: String },
}

impl UnitOfWork {
    /// Only audit events.
    pub fn events(events: Vec<AuditEvent>) -> UnitOfWork {
        UnitOfWork { events, ..UnitOfWork::default() }
    }

    /// Whether it holds nothing beyond audit events and the known device: the store may then
    /// take its fast path for a plain sign-in.
    pub fn is_plain(&self) -> bool {
        self.spend_code.is_none() && self.is_plain_but_for_a_code()
    }

    /// [`Self::is_plain`], but for an authorization code it may spend: the work of an OAuth
    /// code exchange, which the store's fast path also takes.
    pub fn is_plain_but_for_a_code(&self) -> bool {
        self.spend_token.is_none()
            && self.tokens.is_empty()
            && self.outbox.is_empty()
            && self.trusted_browser.is_none()
            && self.spend_account_links.is_none()
            && self.mailbox_claim.is_none()
            && self.passkey.is_none()
            && self.identity.is_none()
            && self.account_deletion.is_none()
    }

    /// The user whose sessions this work may revoke (a mailbox claim), so the store evicts
    /// them from its caches.
    pub fn revokes_sessions_of(&self) -> Option<&str> {
        self.mailbox_claim.as_ref().map(|claim| claim.user_id.as_str())
    }
}

/// Writes a unit of work that goes with no other change (a request for a link, a notice, a
/// challenge opened).
#[async_trait]
pub trait UnitOfWorkStore: Send + Sync {
    async fn commit(&self, work: &UnitOfWork) -> Result<(), StoreError>;
}
