//! The passkey ports: no domain unit test reaches them yet (passkeys are tested over HTTP with a
//! software authenticator, `crates/gatehouse/tests/passkeys.rs`), so each answers "not used".

use async_trait::async_trait;

use crate::passkeys::{PasskeyCeremonyRecord, PasskeyCeremonyStore, PasskeyRecord, PasskeyStore};
use crate::store::StoreError;
use crate::unit_of_work::UnitOfWork;

use super::{MemoryStore, not_used};

#[async_trait]
impl PasskeyStore for MemoryStore {
    async fn passkeys_of(&self, _user_id: &str) -> Result<Vec<PasskeyRecord>, StoreError> {
        Err(not_used())
    }

    async fn passkey_by_credential_id(
        &self,
        _credential_id: &str,
    ) -> Result<Option<PasskeyRecord>, StoreError> {
        Err(not_used())
    }

    async fn insert_passkey(
        &self,
        _passkey: &PasskeyRecord,
        _work: &UnitOfWork,
    ) -> Result<(), StoreError> {
        Err(not_used())
    }

    async fn record_passkey_use(
        &self,
        _passkey: &PasskeyRecord,
        _previous_sign_count: i64,
    ) -> Result<bool, StoreError> {
        Err(not_used())
    }

    async fn rename_passkey(
        &self,
        _user_id: &str,
        _passkey_id: &str,
        _name: &str,
        _work: &UnitOfWork,
    ) -> Result<bool, StoreError> {
        Err(not_used())
    }

    async fn delete_passkey(
        &self,
        _user_id: &str,
        _passkey_id: &str,
        _work: &UnitOfWork,
    ) -> Result<bool, StoreError> {
        Err(not_used())
    }

    async fn flag_passkey(
        &self,
        _passkey_id: &str,
        _now: i64,
        _work: &UnitOfWork,
    ) -> Result<(), StoreError> {
        Err(not_used())
    }
}

#[async_trait]
impl PasskeyCeremonyStore for MemoryStore {
    async fn put_ceremony(&self, _ceremony: &PasskeyCeremonyRecord) -> Result<(), StoreError> {
        Err(not_used())
    }

    async fn take_ceremony(
        &self,
        _id_digest: &[u8],
    ) -> Result<Option<PasskeyCeremonyRecord>, StoreError> {
        Err(not_used())
    }
}
