//! `MemoryStore`: the store ports kept in Mutex-protected maps, with the semantics each trait
//! method documents (single use, compare-and-set, atomic counters), so a service's rules can
//! be tested without a database. Every audit event and unit of work written is kept for the
//! tests to read back. A method no test reaches answers `StoreError::Other`, so a test that
//! starts to depend on it fails loudly instead of passing on an invented answer.

mod accounts;
mod mfa;
mod oauth;
mod passkeys;

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;

use crate::audit::{AuditCursor, AuditEvent, AuditFilter, AuditStore};
use crate::email_links::record::{OneTimeTokenRecord, OneTimeTokenStore};
use crate::keys::{KeyState, SigningKeyStore, StoredSigningKey};
use crate::known_devices::KnownDeviceStore;
use crate::mfa::record::{
    BackupCodeRecord, MfaChallengeRecord, MfaFactorRecord, TrustedBrowserRecord,
};
use crate::oauth::client::ClientRecord;
use crate::oauth::device_flow::DeviceCodeRecord;
use crate::sessions::record::{RefreshTokenRecord, SessionRecord};
use crate::store::{Conflict, StoreError};
use crate::unit_of_work::{KnownDevice, UnitOfWork, UnitOfWorkStore};
use crate::users::record::UserRecord;

/// The answer of a port method that no test reaches.
fn not_used() -> StoreError {
    StoreError::Other("not used by the fake".into())
}

/// Everything the fake keeps. One lock for all of it, as one database transaction would see
/// all of it: a method's reads and writes happen together.
#[derive(Default)]
struct State {
    users: BTreeMap<String, UserRecord>,
    sessions: BTreeMap<String, SessionRecord>,
    refresh_tokens: Vec<RefreshTokenRecord>,
    audit: Vec<AuditEvent>,
    /// Every unit of work applied, in order (events are also appended to `audit`).
    units_of_work: Vec<UnitOfWork>,
    known_devices: Vec<KnownDevice>,
    factors: Vec<MfaFactorRecord>,
    backup_codes: Vec<BackupCodeRecord>,
    trusted_browsers: Vec<TrustedBrowserRecord>,
    challenges: BTreeMap<Vec<u8>, MfaChallengeRecord>,
    clients: BTreeMap<String, ClientRecord>,
    /// `(user_id, client_id)` → granted scopes.
    consents: BTreeMap<(String, String), Vec<String>>,
    device_codes: Vec<DeviceCodeRecord>,
    signing_keys: Vec<StoredSigningKey>,
    /// Race switch: the next `rotate_refresh_token` loses to a concurrent request.
    lose_next_rotation: bool,
}

impl State {
    /// Writes what a unit of work carries besides its change. One-time tokens, outbox rows and
    /// mailbox claims are not modelled: a unit of work holding them is refused rather than half
    /// applied (spending a user's links is a no-op here: the fake holds no tokens).
    fn apply(&mut self, work: &UnitOfWork) -> Result<(), StoreError> {
        if !work.tokens.is_empty()
            || work.spend_token.is_some()
            || work.spend_code.is_some()
            || !work.outbox.is_empty()
            || work.mailbox_claim.is_some()
        {
            return Err(StoreError::Other(
                "one-time tokens, outbox rows and mailbox claims are not modelled by the fake"
                    .into(),
            ));
        }
        if let Some(device) = &work.known_device {
            self.known_devices.retain(|known| {
                !(known.user_id == device.user_id && known.digest == device.digest)
            });
            self.known_devices.push(device.clone());
        }
        if let Some(browser) = &work.trusted_browser {
            self.trusted_browsers.push(browser.clone());
        }
        self.audit.extend(work.events.iter().cloned());
        self.units_of_work.push(work.clone());
        Ok(())
    }
}

/// The in-memory store. Cheap to build; one per test.
#[derive(Default)]
pub(crate) struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    pub(crate) fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// The lock is never held across an `await`; a test that panicked while holding it
    /// already failed, so a poisoned lock is simply taken over.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    // Seeding: rows a test starts from, written as a migration or an admin would.

    /// Seeds an OAuth client (as the admin API would register it).
    pub(crate) fn put_client(&self, client: ClientRecord) {
        self.state().clients.insert(client.client_id.clone(), client);
    }

    /// Seeds a second factor (as a confirmed enrolment would leave it).
    pub(crate) fn put_factor(&self, factor: MfaFactorRecord) {
        self.state().factors.push(factor);
    }

    /// Seeds a session and its refresh token (as another grant would have started it).
    pub(crate) fn put_session(&self, session: SessionRecord, refresh_token: RefreshTokenRecord) {
        let mut state = self.state();
        state.sessions.insert(session.id.clone(), session);
        state.refresh_tokens.push(refresh_token);
    }

    /// Changes a stored user in place (an admin suspending or unlocking, say).
    pub(crate) fn change_user(&self, user_id: &str, change: impl FnOnce(&mut UserRecord)) {
        if let Some(user) = self.state().users.get_mut(user_id) {
            change(user);
        }
    }

    // Switches that simulate what only concurrency can cause.

    /// The next `rotate_refresh_token` answers `false`, as when another request rotated the
    /// same token a moment earlier (the token is then marked rotated, as the winner left it).
    pub(crate) fn lose_next_rotation(&self) {
        self.state().lose_next_rotation = true;
    }

    // Reading back what the services wrote.

    pub(crate) fn user(&self, user_id: &str) -> Option<UserRecord> {
        self.state().users.get(user_id).cloned()
    }

    pub(crate) fn stored_session(&self, session_id: &str) -> Option<SessionRecord> {
        self.state().sessions.get(session_id).cloned()
    }

    /// Every session, in id order.
    pub(crate) fn all_sessions(&self) -> Vec<SessionRecord> {
        self.state().sessions.values().cloned().collect()
    }

    pub(crate) fn stored_refresh_token(&self, digest: &[u8]) -> Option<RefreshTokenRecord> {
        self.state().refresh_tokens.iter().find(|token| token.token_digest == digest).cloned()
    }

    /// The audit events with this action, oldest first.
    pub(crate) fn events(&self, action: &str) -> Vec<AuditEvent> {
        self.state().audit.iter().filter(|event| event.action == action).cloned().collect()
    }

    /// The `reason` metadata of the events with this action, oldest first.
    pub(crate) fn reasons(&self, action: &str) -> Vec<String> {
        self.events(action)
            .iter()
            .filter_map(|event| event.metadata["reason"].as_str().map(str::to_owned))
            .collect()
    }

    /// Every unit of work applied, oldest first.
    pub(crate) fn units_of_work(&self) -> Vec<UnitOfWork> {
        self.state().units_of_work.clone()
    }

    pub(crate) fn device_code(&self, user_code: &str) -> Option<DeviceCodeRecord> {
        self.state().device_codes.iter().find(|code| code.user_code == user_code).cloned()
    }
}

#[async_trait]
impl AuditStore for MemoryStore {
    async fn append_audit_events(&self, events: &[AuditEvent]) -> Result<(), StoreError> {
        self.state().audit.extend(events.iter().cloned());
        Ok(())
    }

    async fn list_audit_events(
        &self,
        _filter: &AuditFilter,
        _after: Option<&AuditCursor>,
        _limit: u32,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        Err(not_used())
    }

    async fn count_audit_events(&self, _filter: &AuditFilter) -> Result<u64, StoreError> {
        Err(not_used())
    }

    async fn export_audit_events(
        &self,
        _filter: &AuditFilter,
        _after: Option<&AuditCursor>,
        _limit: u32,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        Err(not_used())
    }
}

#[async_trait]
impl UnitOfWorkStore for MemoryStore {
    async fn commit(&self, work: &UnitOfWork) -> Result<(), StoreError> {
        self.state().apply(work)
    }
}

#[async_trait]
impl KnownDeviceStore for MemoryStore {
    async fn device_seen(
        &self,
        user_id: &str,
        device_digest: &[u8],
    ) -> Result<(bool, bool), StoreError> {
        let state = self.state();
        let mine = || state.known_devices.iter().filter(|device| device.user_id == user_id);
        Ok((mine().next().is_some(), mine().any(|device| device.digest == device_digest)))
    }
}

#[async_trait]
impl OneTimeTokenStore for MemoryStore {
    async fn one_time_token(
        &self,
        _digest: &[u8],
    ) -> Result<Option<OneTimeTokenRecord>, StoreError> {
        Err(not_used())
    }
}

#[async_trait]
impl SigningKeyStore for MemoryStore {
    async fn insert_active_key_if_none(&self, key: &StoredSigningKey) -> Result<bool, StoreError> {
        let mut state = self.state();
        if state.signing_keys.iter().any(|stored| stored.state == KeyState::Active) {
            return Ok(false);
        }
        if state.signing_keys.iter().any(|stored| stored.kid == key.kid) {
            return Err(StoreError::Conflict(Conflict::SigningKey));
        }
        state.signing_keys.push(key.clone());
        Ok(true)
    }

    async fn rotate_signing_key(
        &self,
        _new_key: &StoredSigningKey,
        _retiring_kid: &str,
        _retired_at: i64,
        _publish_until: i64,
        _events: &[AuditEvent],
    ) -> Result<(), StoreError> {
        Err(not_used())
    }

    async fn active_signing_key(&self) -> Result<Option<StoredSigningKey>, StoreError> {
        Ok(self.state().signing_keys.iter().find(|key| key.state == KeyState::Active).cloned())
    }

    async fn list_signing_keys(&self) -> Result<Vec<StoredSigningKey>, StoreError> {
        // Newest first: keys are appended as they are made.
        Ok(self.state().signing_keys.iter().rev().cloned().collect())
    }
}
