//! The ports passkeys are stored through.

use async_trait::async_trait;

use crate::store::StoreError;
use crate::unit_of_work::UnitOfWork;

use super::record::{PasskeyCeremonyRecord, PasskeyRecord};

#[async_trait]
pub trait PasskeyStore: Send + Sync {
    /// The user's passkeys, newest first.
    async fn passkeys_of(&self, user_id: &str) -> Result<Vec<PasskeyRecord>, StoreError>;
    async fn passkey_by_credential_id(
        &self,
        credential_id: &str,
    ) -> Result<Option<PasskeyRecord>, StoreError>;
    /// Stores a new passkey with its unit of work; a credential id registered already is
    /// `StoreError::Conflict(Conflict::PasskeyCredential)`.
    async fn insert_passkey(
        &self,
        passkey: &PasskeyRecord,
        work: &UnitOfWork,
    ) -> Result<(), StoreError>;
    /// Records a verified use: the updated credential, counter and backup flags, last used —
    /// only if the counter is still `previous_sign_count` (of two uses racing with one
    /// counter value, one wins); `false` otherwise.
    async fn record_passkey_use(
        &self,
        passkey: &PasskeyRecord,
        previous_sign_count: i64,
    ) -> Result<bool, StoreError>;
    /// Renames the user's passkey, with its unit of work; `false` when it is not theirs.
    async fn rename_passkey(
        &self,
        user_id: &str,
        passkey_id: &str,
        name: &str,
        work: &UnitOfWork,
    ) -> Result<bool, StoreError>;
    /// Deletes the user's passkey, with its unit of work, only if the account keeps a way to
    /// sign in (a password, or another passkey not flagged), decided in the transaction;
    /// `false` when nothing was deleted (not theirs, or the last way to sign in).
    async fn delete_passkey(
        &self,
        user_id: &str,
        passkey_id: &str,
        work: &UnitOfWork,
    ) -> Result<bool, StoreError>;
    /// Flags a passkey whose counter went backwards, with its unit of work.
    async fn flag_passkey(
        &self,
        passkey_id: &str,
        now: i64,
        work: &UnitOfWork,
    ) -> Result<(), StoreError>;
}

/// Ceremonies between their two requests: in Redis when configured, else in the database.
#[async_trait]
pub trait PasskeyCeremonyStore: Send + Sync {
    async fn put_ceremony(&self, ceremony: &PasskeyCeremonyRecord) -> Result<(), StoreError>;
    /// Removes and answers the ceremony: of two callers, one gets it (single use).
    async fn take_ceremony(
        &self,
        id_digest: &[u8],
    ) -> Result<Option<PasskeyCeremonyRecord>, StoreError>;
}
