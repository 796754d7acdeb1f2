//! `ApiKeyStore`: the port of API keys.

use async_trait::async_trait;

use super::record::{ApiKeyOwner, ApiKeyRecord};
use crate::audit::AuditEvent;
use crate::organizations::ListCursor;
use crate::store::StoreError;

#[async_trait]
pub trait ApiKeyStore: Send + Sync {
    async fn insert_api_key(
        &self,
        key: &ApiKeyRecord,
        events: &[AuditEvent],
    ) -> Result<(), StoreError>;
    /// The key with this digest, revoked and expired ones included (the caller decides).
    async fn api_key_by_digest(&self, digest: &[u8]) -> Result<Option<ApiKeyRecord>, StoreError>;
    async fn api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError>;
    /// The keys of one owner, newest first (revoked ones included).
    async fn api_keys_of(&self, owner: &ApiKeyOwner) -> Result<Vec<ApiKeyRecord>, StoreError>;
    /// Every key, newest first, after `after`.
    async fn list_api_keys(
        &self,
        after: Option<&ListCursor>,
        limit: u32,
    ) -> Result<Vec<ApiKeyRecord>, StoreError>;
    /// Revokes a key not yet revoked; `false` when it already was (or is gone).
    async fn revoke_api_key(
        &self,
        id: &str,
        now: i64,
        events: &[AuditEvent],
    ) -> Result<bool, StoreError>;
    /// Records a use (kept to the minute by the caller).
    async fn touch_api_key(&self, id: &str, now: i64) -> Result<(), StoreError>;
}
