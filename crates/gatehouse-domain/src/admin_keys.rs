//! Admin API keys and the admin principal: the type that unlocks admin operations, so an
//! operation that forgets to check cannot compile.

use std::sync::Arc;

use async_trait::async_trait;
use gatehouse_crypto::Digester;
use serde::Serialize;

use crate::audit::AuditEvent;
use crate::clock::Clock;
use crate::error::DomainError;
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
