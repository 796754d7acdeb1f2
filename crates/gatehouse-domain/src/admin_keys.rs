//! Admin API keys and the admin principal: the type that unlocks admin operations, so an
//! operation that forgets to check cannot compile.
//!
//! Rules:
//! - A key (`gta_…`) is shown once, at creation; only its keyed digest is stored, and no
//!   listing answers it.
//! - Listing and revoking take an [`AdminPrincipal`]. A revoked key stops authenticating at
//!   once, on every instance: `authenticate` reads the key's row on every request (nothing
//!   caches it). An admin key may revoke itself.
//! - Revoking is audited (`admin_key.revoked`, target the key) in the revocation's
//!   transaction; revoking a revoked key changes nothing and records nothing; an unknown id is
//!   `not_found`.

use std::sync::Arc;

use async_trait::async_trait;
use gatehouse_crypto::Digester;
use serde::Serialize;

use crate::audit::AuditEvent;
use crate::clock::Clock;
use crate::error::DomainError;
use crate::organizations::record::ListCursor;
use crate::principal::{Actor, AdminPrincipal, RequestContext};
use crate::store::StoreError;

/// Admin API keys: `gta_…` with a checksum (`gha_…` before), so secret scanners can
/// recognise a leaked one.
pub const ADMIN_KEY: gatehouse_crypto::SecretKind =
    gatehouse_crypto::SecretKind { prefix: "gta_", legacy_prefix: "gha_" };
pub const ADMIN_KEY_DIGEST_PURPOSE: &str = "admin-api-key";
/// How precisely an admin key's `last_used_at` is kept.
const LAST_USED_RESOLUTION_SECONDS: i64 = 60;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AdminKeyRecord {
    pub id: String,
    pub name: String,
    #[serde(skip)]
    pub key_digest: Vec<u8>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// What a revocation did: the key as it is now, and whether it was revoked before the call
/// (then the call changed nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminKeyRevocation {
    pub key: AdminKeyRecord,
    pub already_revoked: bool,
}

#[async_trait]
pub trait AdminKeyStore: Send + Sync {
    async fn insert_admin_key(
        &self,
        key: &AdminKeyRecord,
        events: &[AuditEvent],
    ) -> Result<(), StoreError>;
    async fn admin_key_by_digest(
        &self,
        digest: &[u8],
    ) -> Result<Option<AdminKeyRecord>, StoreError>;
    async fn touch_admin_key(&self, id: &str, now: i64) -> Result<(), StoreError>;
    async fn admin_key(&self, id: &str) -> Result<Option<AdminKeyRecord>, StoreError>;
    /// Newest first (`created_at DESC, id DESC`), strictly after `after`, at most `limit`.
    async fn list_admin_keys(
        &self,
        after: Option<&ListCursor>,
        limit: u32,
    ) -> Result<Vec<AdminKeyRecord>, StoreError>;
    /// Sets `revoked_at` unless the key is revoked already, and then writes `events` in the
    /// same transaction; `false` (and nothing written) when it was revoked already or is
    /// unknown.
    async fn revoke_admin_key(
        &self,
        id: &str,
        now: i64,
        events: &[AuditEvent],
    ) -> Result<bool, StoreError>;
}

pub struct AdminKeyService {
    store: Arc<dyn AdminKeyStore>,
    digester: Digester,
    clock: Arc<dyn Clock>,
}

impl AdminKeyService {
    pub fn new(store: Arc<dyn AdminKeyStore>, digester: Digester, clock: Arc<dyn Clock>) -> Self {
        Self { store, digester, clock }
    }

    /// Creates a key and returns it with its secret, which is shown once and stored only as a
    /// keyed digest.
    pub async fn create(
        &self,
        name: &str,
        context: &RequestContext,
    ) -> Result<(AdminKeyRecord, String), DomainError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(DomainError::Invalid("a name of 1 to 100 characters is required".into()));
        }
        let secret = ADMIN_KEY.generate();
        let now = self.clock.now();
        let record = AdminKeyRecord {
            id: gatehouse_crypto::new_id("ak"),
            name: name.to_owned(),
            key_digest: self.digester.digest(secret.as_bytes()).to_vec(),
            created_at: now,
            last_used_at: None,
            revoked_at: None,
        };
        let event = AuditEvent::new("admin_key.created", &Actor::System, context, now)
            .target("admin_key", &record.id)
            .metadata(serde_json::json!({ "name": record.name }));
        self.store.insert_admin_key(&record, &[event]).await?;
        Ok((record, secret))
    }

    /// Every admin key, revoked ones included, newest first, a page at a time.
    pub async fn list(
        &self,
        _admin: &AdminPrincipal,
        after: Option<&ListCursor>,
        limit: u32,
    ) -> Result<Vec<AdminKeyRecord>, DomainError> {
        Ok(self.store.list_admin_keys(after, limit).await?)
    }

    /// Revokes a key at once (the caller's own key too); an unknown id is `not_found`, a
    /// revoked key stays revoked and the call changes nothing.
    pub async fn revoke(
        &self,
        admin: &AdminPrincipal,
        id: &str,
        context: &RequestContext,
    ) -> Result<AdminKeyRevocation, DomainError> {
        let key = self.store.admin_key(id).await?.ok_or(DomainError::NotFound)?;
        if key.revoked_at.is_some() {
            return Ok(AdminKeyRevocation { key, already_revoked: true });
        }
        let now = self.clock.now();
        let event = AuditEvent::new("admin_key.revoked", admin.actor(), context, now)
            .target("admin_key", &key.id)
            .metadata(serde_json::json!({ "name": key.name }));
        if self.store.revoke_admin_key(&key.id, now, &[event]).await? {
            let key = AdminKeyRecord { revoked_at: Some(now), ..key };
            return Ok(AdminKeyRevocation { key, already_revoked: false });
        }
        // Revoked by someone else between the read and the write: as they left it.
        let key = self.store.admin_key(id).await?.ok_or(DomainError::NotFound)?;
        Ok(AdminKeyRevocation { key, already_revoked: true })
    }

    /// `Ok(None)` when the bearer is not shaped like an admin key (try it as a user token).
    pub async fn authenticate(&self, bearer: &str) -> Result<Option<AdminPrincipal>, DomainError> {
        if !ADMIN_KEY.claims(bearer) {
            return Ok(None);
        }
        // A broken checksum is answered like an unknown key, before any lookup.
        if !ADMIN_KEY.recognises(bearer) {
            return Err(DomainError::InvalidToken);
        }
        let digest = self.digester.digest(bearer.as_bytes());
        let key =
            self.store.admin_key_by_digest(&digest).await?.ok_or(DomainError::InvalidToken)?;
        if key.revoked_at.is_some() {
            return Err(DomainError::InvalidToken);
        }
        // `last_used_at` is kept to the minute: a write on every admin request would serialise
        // the API behind the database's writer (one writer on SQLite) for no information.
        let now = self.clock.now();
        if key.last_used_at.is_none_or(|used| now - used >= LAST_USED_RESOLUTION_SECONDS) {
            self.store.touch_admin_key(&key.id, now).await?;
        }
        Ok(Some(AdminPrincipal::admin_key(key.id)))
    }
}
