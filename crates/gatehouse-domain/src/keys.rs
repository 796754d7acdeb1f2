//! Signing keys: the one active key that signs tokens, retired keys still published in JWKS
//! until every token they signed has expired, and the cache that keeps the hot path off the
//! database.
//!
//! Private keys are stored sealed with the field cipher (purpose `signing-key`, associated data
//! = kid), so a database dump alone cannot sign tokens.
//!
//! Rules:
//! - Listing and rotating are admin operations (an [`AdminPrincipal`]: an admin key, an admin
//!   user, or the CLI as the system actor); nothing here ever answers a private part.
//! - A rotation retires exactly the key it read as active: if another rotation came first, it
//!   writes nothing and answers a conflict. Its `signing_key.rotated` audit event (target the
//!   new kid, the retired kid in its metadata) commits in the rotation's transaction.
//! - A rotation publishes the new key at once and starts signing with it only
//!   `rotation_delay_seconds` later (the retiring key's `retired_at`): longer than any
//!   instance's cache (`cache_seconds`), so every instance — and every JWKS reader that refetches
//!   as often — knows the new key before any token carries it, and every instance switches at
//!   the same moment (their clocks permitting), whatever order they reload in. No instance
//!   ever refuses a token of another one because of a rotation. With a delay of 0 (a single
//!   instance) the new key signs from the next token.
//! - After a rotation this instance's cache is dropped at once, so the next JWKS answer lists
//!   the new key; other instances pick it up within `cache_seconds`.

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use async_trait::async_trait;
use gatehouse_crypto::{FieldCipher, PublicKeySet, SigningAlgorithm, SigningKey};
use serde::Serialize;
use tokio::sync::Mutex;

use crate::audit::AuditEvent;
use crate::clock::Clock;
use crate::error::DomainError;
use crate::principal::{AdminPrincipal, RequestContext};
use crate::store::StoreError;

/// The least time between two reloads of the key set for a token naming an unknown kid.
pub const UNKNOWN_KID_RELOAD_MILLIS: i64 = 1000;

/// The field-cipher purpose under which private signing keys are sealed.
pub const SIGNING_KEY_PURPOSE: &str = "signing-key";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    /// Signs new tokens. At most one key is active (a unique index enforces it).
    Active,
    /// No longer signs; published until `publish_until` so its tokens still verify.
    Retired,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Active => "active",
            KeyState::Retired => "retired",
        }
    }

    pub fn parse(text: &str) -> Option<KeyState> {
        match text {
            "active" => Some(KeyState::Active),
            "retired" => Some(KeyState::Retired),
            _ => None,
        }
    }
}

/// A signing key as stored: the private part sealed, the public JWK in clear.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSigningKey {
    pub kid: String,
    pub algorithm: SigningAlgorithm,
    pub sealed_private_key: Vec<u8>,
    pub public_jwk: serde_json::Value,
    pub state: KeyState,
    pub created_at: i64,
    pub retired_at: Option<i64>,
    pub publish_until: Option<i64>,
}

#[async_trait]
pub trait SigningKeyStore: Send + Sync {
    /// Inserts `key` as the active key unless one already exists; `false` when another
    /// instance got there first.
    async fn insert_active_key_if_none(&self, key: &StoredSigningKey) -> Result<bool, StoreError>;
    /// In one transaction: retires the active key `retiring_kid` (published until
    /// `publish_until`), makes `new_key` active and writes `events`. When the active key is not
    /// `retiring_kid` (another rotation came first) nothing is written:
    /// `Conflict(Conflict::SigningKey)`.
    async fn rotate_signing_key(
        &self,
        new_key: &StoredSigningKey,
        retiring_kid: &str,
        retired_at: i64,
        publish_until: i64,
        events: &[AuditEvent],
    ) -> Result<(), StoreError>;
    async fn active_signing_key(&self) -> Result<Option<StoredSigningKey>, StoreError>;
    /// Every key, newest first.
    async fn list_signing_keys(&self) -> Result<Vec<StoredSigningKey>, StoreError>;
}

/// Settings of the key service, from configuration.
#[derive(Debug, Clone)]
pub struct KeySettings {
    pub algorithm: SigningAlgorithm,
    pub rsa_bits: u32,
    /// How long a retired key stays in JWKS: at least the longest lifetime of anything it
    /// signed, plus clock skew.
    pub retention_seconds: i64,
    /// How long an instance trusts its cached key set before reading the store again, so
    /// that a rotation made by another instance is picked up.
    pub cache_seconds: i64,
    /// How long after a rotation the new key starts signing (it is published at once). More
    /// than `cache_seconds` on a cluster; 0 switches at once.
    pub rotation_delay_seconds: i64,
}

/// What the CLI and admin API show about a key (never the private part).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyInfo {
    pub kid: String,
    pub algorithm: SigningAlgorithm,
    pub state: KeyState,
    pub created_at: i64,
    pub retired_at: Option<i64>,
    pub publish_until: Option<i64>,
    /// Whether the key is in JWKS right now.
    pub published: bool,
}

struct CachedKeys {
    loaded_at: i64,
    /// Signs once the keys of `outgoing` have stopped.
    signer: Arc<SigningKey>,
    /// Retired keys still signing: each until its `retired_at`, soonest first.
    outgoing: Vec<(i64, Arc<SigningKey>)>,
    jwks: Arc<serde_json::Value>,
    verifier: Arc<PublicKeySet>,
}

pub struct KeyService {
    store: Arc<dyn SigningKeyStore>,
    cipher: Arc<FieldCipher>,
    clock: Arc<dyn Clock>,
    settings: KeySettings,
    /// Read on every token check and JWKS answer: a lock-free slot, so readers on different
    /// cores never write to a shared cache line (a lock's reader count would).
    cache: ArcSwapOption<CachedKeys>,
    /// Held while the cache is reloaded or invalidated, so one task reloads at a time and an
    /// invalidation is never overwritten by a reload that read the store before it.
    refresh: Mutex<()>,
    /// When (Unix ms) the key set was last read again for an unknown kid.
    unknown_kid_reload: std::sync::atomic::AtomicI64,
}

impl KeyService {
    pub fn new(
        store: Arc<dyn SigningKeyStore>,
        cipher: Arc<FieldCipher>,
        clock: Arc<dyn Clock>,
        settings: KeySettings,
    ) -> Self {
        Self {
            store,
            cipher,
            clock,
            settings,
            cache: ArcSwapOption::empty(),
            refresh: Mutex::new(()),
            unknown_kid_reload: std::sync::atomic::AtomicI64::new(i64::MIN / 2),
        }
    }

    /// Makes sure an active key exists, generating the first one on first start. Safe when
    /// several instances start at once: the store keeps exactly one active key.
    pub async fn ensure_active_key(&self) -> Result<KeyInfo, DomainError> {
        if let Some(active) = self.store.active_signing_key().await? {
            return Ok(self.info(&active));
        }
        let candidate = self.generate().await?;
        if !self.store.insert_active_key_if_none(&candidate).await? {
            tracing::info!("another instance created the first signing key");
        } else {
            tracing::info!(kid = %candidate.kid, algorithm = %candidate.algorithm, "generated the first signing key");
        }
        self.invalidate().await;
        let active =
            self.store.active_signing_key().await?.ok_or_else(|| {
                DomainError::Internal("no active signing key after insert".into())
            })?;
        Ok(self.info(&active))
    }

    /// Generates a new active key, published at once; the previous one keeps signing for
    /// `rotation_delay_seconds` (its `retired_at`), then stays in JWKS for the retention
    /// period. Audited as `signing_key.rotated` (target the new kid, metadata the retired kid
    /// and when the new key signs) in the rotation's transaction; a rotation racing another
    /// answers `conflict` and changes nothing.
    pub async fn rotate(
        &self,
        admin: &AdminPrincipal,
        context: &RequestContext,
    ) -> Result<KeyInfo, DomainError> {
        let retiring = self.ensure_active_key().await?;
        let new_key = self.generate().await?;
        let now = self.clock.now();
        let signs_from = now + self.settings.rotation_delay_seconds.max(0);
        let event = AuditEvent::new("signing_key.rotated", admin.actor(), context, now)
            .target("signing_key", &new_key.kid)
            .metadata(serde_json::json!({
                "retired_kid": retiring.kid,
                "algorithm": new_key.algorithm.to_string(),
                "signs_from": signs_from,
            }));
        let publish_until = signs_from + self.settings.retention_seconds;
        self.store
            .rotate_signing_key(&new_key, &retiring.kid, signs_from, publish_until, &[event])
            .await
            .map_err(|error| match error {
                StoreError::Conflict(_) => {
                    DomainError::Conflict("another rotation happened at the same time".into())
                }
                other => other.into(),
            })?;
        self.invalidate().await;
        tracing::info!(kid = %new_key.kid, retired_kid = %retiring.kid, "rotated the signing key");
        Ok(self.info(&new_key))
    }

    /// Every key, newest first (the active key is the newest); never a private part.
    pub async fn list(&self, _admin: &AdminPrincipal) -> Result<Vec<KeyInfo>, DomainError> {
        let keys = self.store.list_signing_keys().await?;
        Ok(keys.iter().map(|key| self.info(key)).collect())
    }

    /// The JWK Set to publish: the active key and retired keys still within retention.
    pub async fn jwks(&self) -> Result<Arc<serde_json::Value>, DomainError> {
        self.cached(|keys| keys.jwks.clone()).await
    }

    /// The key that signs new tokens now: a retired key while its signing window after a
    /// rotation lasts, else the active key.
    pub async fn active_signer(&self) -> Result<Arc<SigningKey>, DomainError> {
        let now = self.clock.now();
        self.cached(|keys| {
            keys.outgoing
                .iter()
                .find(|(until, _)| *until > now)
                .map_or_else(|| keys.signer.clone(), |(_, key)| key.clone())
        })
        .await
    }

    /// The published keys as a verifier: what any resource server would trust right now.
    pub async fn verifier(&self) -> Result<Arc<PublicKeySet>, DomainError> {
        self.cached(|keys| keys.verifier.clone()).await
    }

    /// The verifier once more, read from the store first when `kid` is not in the cached set
    /// (another instance rotated since this one last read): so a token signed with a new key
    /// verifies everywhere at once, not after the cache's age. At most one such read per
    /// [`UNKNOWN_KID_RELOAD_MILLIS`], so forged kids cannot drive the store.
    pub async fn verifier_knowing(&self, kid: &str) -> Result<Arc<PublicKeySet>, DomainError> {
        let verifier = self.verifier().await?;
        if verifier.has_kid(kid) {
            return Ok(verifier);
        }
        let now = self.clock.now_millis();
        let last = self.unknown_kid_reload.load(std::sync::atomic::Ordering::Relaxed);
        if now - last < UNKNOWN_KID_RELOAD_MILLIS
            || self
                .unknown_kid_reload
                .compare_exchange(
                    last,
                    now,
                    std::sync::atomic::Ordering::Relaxed,
                    std::sync::atomic::Ordering::Relaxed,
                )
                .is_err()
        {
            return Ok(verifier);
        }
        self.invalidate().await;
        self.verifier().await
    }

    /// `pick` applied to the cached key set, reloading it first when it is older than
    /// `cache_seconds`.
    async fn cached<T>(&self, pick: impl Fn(&CachedKeys) -> T) -> Result<T, DomainError> {
        let now = self.clock.now();
        if let Some(picked) = self.fresh(now, &pick) {
            return Ok(picked);
        }
        let _refresh = self.refresh.lock().await;
        // Another task may have reloaded while we waited for the lock.
        if let Some(picked) = self.fresh(now, &pick) {
            return Ok(picked);
        }
        let keys = self.store.list_signing_keys().await?;
        let active = keys
            .iter()
            .find(|key| key.state == KeyState::Active)
            .ok_or_else(|| DomainError::Internal("no active signing key".into()))?;
        let signer = Arc::new(self.open(active)?);
        // Keys retired by a rotation whose new key does not sign yet; a cache lives less long
        // than a rotation's delay, so one loaded before such a window ends sees it end.
        let mut outgoing = Vec::new();
        for key in &keys {
            if let (KeyState::Retired, Some(until)) = (key.state, key.retired_at)
                && until > now
            {
                outgoing.push((until, Arc::new(self.open(key)?)));
            }
        }
        outgoing.sort_by_key(|(until, _)| *until);
        let published: Vec<serde_json::Value> = keys
            .iter()
            .filter(|key| is_published(key, now))
            .map(|key| key.public_jwk.clone())
            .collect();
        let jwks = serde_json::json!({ "keys": published });
        let verifier = Arc::new(PublicKeySet::from_jwks(&jwks)?);
        let cached =
            CachedKeys { loaded_at: now, signer, outgoing, jwks: Arc::new(jwks), verifier };
        let picked = pick(&cached);
        self.cache.store(Some(Arc::new(cached)));
        Ok(picked)
    }

    /// `pick` applied to the cached key set unless it is older than `cache_seconds`.
    fn fresh<T>(&self, now: i64, pick: &impl Fn(&CachedKeys) -> T) -> Option<T> {
        let cached = self.cache.load();
        cached
            .as_ref()
            .filter(|cached| now - cached.loaded_at < self.settings.cache_seconds)
            .map(|cached| pick(cached))
    }

    async fn invalidate(&self) {
        let _refresh = self.refresh.lock().await;
        self.cache.store(None);
    }

    fn open(&self, stored: &StoredSigningKey) -> Result<SigningKey, DomainError> {
        let der = self.cipher.open(stored.kid.as_bytes(), &stored.sealed_private_key)?;
        let key = SigningKey::from_pkcs8_der(stored.algorithm, &der)?;
        if key.kid() != stored.kid {
            return Err(DomainError::Internal(format!(
                "signing key {} does not match its stored kid",
                stored.kid
            )));
        }
        Ok(key)
    }

    /// RSA key generation takes tens to hundreds of milliseconds: keep it off the runtime.
    async fn generate(&self) -> Result<StoredSigningKey, DomainError> {
        let algorithm = self.settings.algorithm;
        let rsa_bits = self.settings.rsa_bits;
        let key = tokio::task::spawn_blocking(move || SigningKey::generate(algorithm, rsa_bits))
            .await
            .map_err(|error| {
                DomainError::Internal(format!("key generation task failed: {error}"))
            })??;
        let sealed_private_key = self.cipher.seal(key.kid().as_bytes(), &key.pkcs8_der())?;
        Ok(StoredSigningKey {
            kid: key.kid().to_owned(),
            algorithm,
            sealed_private_key,
            public_jwk: key.public_jwk(),
            state: KeyState::Active,
            created_at: self.clock.now(),
            retired_at: None,
            publish_until: None,
        })
    }

    fn info(&self, key: &StoredSigningKey) -> KeyInfo {
        KeyInfo {
            kid: key.kid.clone(),
            algorithm: key.algorithm,
            state: key.state,
            created_at: key.created_at,
            retired_at: key.retired_at,
            publish_until: key.publish_until,
            published: is_published(key, self.clock.now()),
        }
    }
}

fn is_published(key: &StoredSigningKey, now: i64) -> bool {
    match key.state {
        KeyState::Active => true,
        KeyState::Retired => key.publish_until.is_some_and(|until| until > now),
    }
}
