//! The key hierarchy: the data keys that seal fields (emails, TOTP secrets, phone numbers,
//! outbox payloads, private signing keys), key digests (email blind index, refresh tokens,
//! client secrets, admin keys, backup codes, one-time tokens, cookies) and pepper passwords,
//! stored wrapped by the master key in `data_keys`.
//!
//! Rules:
//! - The master key wraps data keys and nothing else, so rotating it (`reseal`) rewraps a few
//!   rows and changes no digest, hash, sealed field or user-visible secret.
//! - On the first start of an installation that predates the hierarchy, the data keys are the
//!   keys it used to derive from its master key (found by the master key that sealed its
//!   signing keys), so everything stored before keeps working. A new installation, and a purpose
//!   added later, gets random keys.
//! - Instances starting together insert if absent, in one transaction, and then read back, so
//!   all of them use the same keys.
//! - Every secret added later is sealed or digested with a data key of its own purpose, declared
//!   in the list the binary passes to [`KeyHierarchy::open`].

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use gatehouse_crypto::{
    CryptoError, DataKey, Digester, FieldCipher, MasterKey, MasterKeyRing, Pepper,
};
use serde::Serialize;

use crate::clock::Clock;
use crate::keys::SigningKeyStore;
use crate::store::StoreError;

/// The purpose of password peppers; its version is the pepper id in the PHC `keyid`.
pub const PEPPER_PURPOSE: &str = "password-pepper";

/// The data-key purpose of a digest purpose (`digest/<purpose>`, as derived before).
pub fn digest_purpose(purpose: &str) -> String {
    format!("digest/{purpose}")
}

/// The data-key purpose of a field-cipher purpose (`aead/<purpose>`, as derived before).
pub fn cipher_purpose(purpose: &str) -> String {
    format!("aead/{purpose}")
}

/// What the master key derived for this purpose and version before the hierarchy.
fn derivation_info(purpose: &str, version: u32) -> String {
    if purpose == PEPPER_PURPOSE { format!("{purpose}/{version}") } else { purpose.to_owned() }
}

/// A data key as stored: wrapped under the master key `wrapped_by`.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredDataKey {
    pub purpose: String,
    pub version: i64,
    /// The key's public id, carried by the values it seals.
    pub key_id: i64,
    pub wrapped_key: Vec<u8>,
    /// The id of the master key that wrapped it.
    pub wrapped_by: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl StoredDataKey {
    /// The associated data of the wrapping: a wrapped key copied to another row does not open.
    fn label(&self) -> String {
        format!("{}#{}#{:08x}", self.purpose, self.version, self.key_id)
    }
}

#[async_trait]
pub trait DataKeyStore: Send + Sync {
    /// Every data key, by purpose and version.
    async fn list_data_keys(&self) -> Result<Vec<StoredDataKey>, StoreError>;
    /// In one transaction, inserts each key unless its purpose and version exist already.
    async fn insert_data_keys_if_absent(&self, keys: &[StoredDataKey]) -> Result<(), StoreError>;
    /// Replaces the wrapping of `key` (its purpose and version) if it is still wrapped under
    /// `expected_wrapped_by`; `false` when another process changed it first.
    async fn rewrap_data_key(
        &self,
        key: &StoredDataKey,
        expected_wrapped_by: i64,
    ) -> Result<bool, StoreError>;
}

/// Why the data keys cannot be opened or resealed.
#[derive(Debug, thiserror::Error)]
pub enum DataKeyError {
    #[error(
        "data key {purpose} (version {version}) is wrapped under master key {wrapped_by:08x}, \
         which is neither the current master key ({current:08x}) nor one of the previous ones"
    )]
    MasterKeyMissing { purpose: String, version: i64, wrapped_by: u32, current: u32 },
    #[error(
        "the signing keys in the database are sealed under master key {0:08x}, which is neither \
         the current master key nor one of the previous ones"
    )]
    LegacyMasterKeyMissing(u32),
    #[error("no data key for purpose {0}")]
    Undeclared(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Crypto(#[from] CryptoError),
}

/// The opened data keys, newest version first for each purpose.
pub struct DataKeys {
    keys: BTreeMap<String, Vec<(i64, DataKey)>>,
}

impl DataKeys {
    fn versions(&self, purpose: &str) -> Result<&[(i64, DataKey)], DataKeyError> {
        self.keys
            .get(purpose)
            .map(Vec::as_slice)
            .filter(|versions| !versions.is_empty())
            .ok_or_else(|| DataKeyError::Undeclared(purpose.to_owned()))
    }

    /// The digester of a digest purpose (its newest key: a digest cannot be tried per key).
    pub fn digester(&self, purpose: &str) -> Result<Digester, DataKeyError> {
        let versions = self.versions(&digest_purpose(purpose))?;
        let (_, newest) =
            versions.first().ok_or_else(|| DataKeyError::Undeclared(purpose.into()))?;
        Ok(Digester::from_data_key(newest))
    }

    /// The field cipher of a purpose: seals with the newest key, opens with every version.
    pub fn cipher(&self, purpose: &str) -> Result<FieldCipher, DataKeyError> {
        let keys: Vec<DataKey> =
            self.versions(&cipher_purpose(purpose))?.iter().map(|(_, key)| key.clone()).collect();
        let (current, previous) =
            keys.split_first().ok_or_else(|| DataKeyError::Undeclared(purpose.into()))?;
        Ok(FieldCipher::from_data_keys(current, previous))
    }

    /// The current pepper (newest version) and the previous ones, each with its version as id.
    pub fn peppers(&self) -> Result<(Pepper, Vec<Pepper>), DataKeyError> {
        let mut peppers = self.versions(PEPPER_PURPOSE)?.iter().map(|(version, key)| {
            let id = u8::try_from(*version).map_err(|_| {
                StoreError::Corrupt(format!("pepper version {version} is not a PHC keyid byte"))
            })?;
            Ok::<_, DataKeyError>(Pepper::from_data_key(id, key))
        });
        let current =
            peppers.next().ok_or_else(|| DataKeyError::Undeclared(PEPPER_PURPOSE.into()))??;
        Ok((current, peppers.collect::<Result<_, _>>()?))
    }
}

/// What `reseal` did to one data key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResealOutcome {
    Resealed,
    AlreadyCurrent,
}

/// One step of `reseal`, for progress reports.
#[derive(Debug, Clone, Serialize)]
pub struct ResealStep {
    pub purpose: String,
    pub version: i64,
    pub outcome: ResealOutcome,
    pub index: usize,
    pub total: usize,
}

/// The summary of `reseal`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ResealReport {
    pub total: usize,
    pub resealed: usize,
    pub already_current: usize,
    /// The id of the master key every data key is now wrapped under.
    pub master_key_id: String,
}

/// Opens the data keys under the configured master keys, and rewraps them under the current
/// one.
pub struct KeyHierarchy {
    store: Arc<dyn DataKeyStore>,
    signing_keys: Arc<dyn SigningKeyStore>,
    masters: MasterKeyRing,
    clock: Arc<dyn Clock>,
}

impl KeyHierarchy {
    pub fn new(
        store: Arc<dyn DataKeyStore>,
        signing_keys: Arc<dyn SigningKeyStore>,
        masters: MasterKeyRing,
        clock: Arc<dyn Clock>,
    ) -> KeyHierarchy {
        KeyHierarchy { store, signing_keys, masters, clock }
    }

    /// The data keys of every purpose in `purposes` (and of any other stored purpose),
    /// creating the missing ones first: on the first start of an installation that predates
    /// the hierarchy, as its master key derived them; otherwise random.
    pub async fn open(&self, purposes: &[String]) -> Result<DataKeys, DataKeyError> {
        let mut stored = self.store.list_data_keys().await?;
        let missing: Vec<&String> = purposes
            .iter()
            .filter(|purpose| !stored.iter().any(|key| &key.purpose == *purpose))
            .collect();
        if !missing.is_empty() {
            let source = if stored.is_empty() { self.legacy_master().await? } else { None };
            let now = self.clock.now();
            let created = missing
                .into_iter()
                .map(|purpose| {
                    let key = match source {
                        Some(master) => DataKey::derived(master, &derivation_info(purpose, 1)),
                        None => DataKey::generate(),
                    };
                    self.wrapped(purpose, 1, &key, now)
                })
                .collect::<Result<Vec<_>, _>>()?;
            self.store.insert_data_keys_if_absent(&created).await?;
            stored = self.store.list_data_keys().await?;
        }
        let mut keys: BTreeMap<String, Vec<(i64, DataKey)>> = BTreeMap::new();
        for row in &stored {
            let key = self.unwrap(row)?;
            keys.entry(row.purpose.clone()).or_default().push((row.version, key));
        }
        for versions in keys.values_mut() {
            versions.sort_by_key(|(version, _)| std::cmp::Reverse(*version));
        }
        Ok(DataKeys { keys })
    }

    /// Rewraps every data key not yet wrapped under the current master key, one row at a time
    /// and only if no other process changed it meanwhile (safe while servers run: they hold the
    /// keys themselves, which do not change). Idempotent.
    pub async fn reseal(
        &self,
        progress: &mut (dyn FnMut(&ResealStep) + Send),
    ) -> Result<ResealReport, DataKeyError> {
        let current = self.masters.current().id();
        let stored = self.store.list_data_keys().await?;
        let mut report = ResealReport {
            total: stored.len(),
            master_key_id: format!("{current:08x}"),
            ..ResealReport::default()
        };
        for (index, row) in stored.iter().enumerate() {
            let outcome = if row.wrapped_by == i64::from(current) {
                ResealOutcome::AlreadyCurrent
            } else {
                let key = self.unwrap(row)?;
                let mut rewrapped = row.clone();
                rewrapped.wrapped_key = self.masters.wrap(&row.label(), &key)?;
                rewrapped.wrapped_by = i64::from(current);
                rewrapped.updated_at = self.clock.now();
                if self.store.rewrap_data_key(&rewrapped, row.wrapped_by).await? {
                    ResealOutcome::Resealed
                } else {
                    ResealOutcome::AlreadyCurrent
                }
            };
            match outcome {
                ResealOutcome::Resealed => report.resealed += 1,
                ResealOutcome::AlreadyCurrent => report.already_current += 1,
            }
            progress(&ResealStep {
                purpose: row.purpose.clone(),
                version: row.version,
                outcome,
                index: index + 1,
                total: stored.len(),
            });
        }
        Ok(report)
    }

    /// The master key an installation that predates the hierarchy used: the one that sealed
    /// its signing keys. None for a new installation (no signing key yet).
    async fn legacy_master(&self) -> Result<Option<&MasterKey>, DataKeyError> {
        let signing_keys = self.signing_keys.list_signing_keys().await?;
        let Some(sealed_by) =
            signing_keys.iter().find_map(|key| FieldCipher::sealed_key_id(&key.sealed_private_key))
        else {
            return Ok(None);
        };
        self.masters
            .keys()
            .find(|master| master.id() == sealed_by)
            .map(Some)
            .ok_or(DataKeyError::LegacyMasterKeyMissing(sealed_by))
    }

    fn wrapped(
        &self,
        purpose: &str,
        version: i64,
        key: &DataKey,
        now: i64,
    ) -> Result<StoredDataKey, DataKeyError> {
        let mut stored = StoredDataKey {
            purpose: purpose.to_owned(),
            version,
            key_id: i64::from(key.id()),
            wrapped_key: Vec::new(),
            wrapped_by: i64::from(self.masters.current().id()),
            created_at: now,
            updated_at: now,
        };
        stored.wrapped_key = self.masters.wrap(&stored.label(), key)?;
        Ok(stored)
    }

    fn unwrap(&self, row: &StoredDataKey) -> Result<DataKey, DataKeyError> {
        let key_id = u32::try_from(row.key_id).map_err(|_| {
            StoreError::Corrupt(format!("data key {}: key id out of range", row.purpose))
        })?;
        self.masters.unwrap(&row.label(), &row.wrapped_key, key_id).map_err(|_| {
            DataKeyError::MasterKeyMissing {
                purpose: row.purpose.clone(),
                version: row.version,
                wrapped_by: MasterKeyRing::wrapped_by(&row.wrapped_key)
                    .unwrap_or_else(|| u32::try_from(row.wrapped_by).unwrap_or_default()),
                current: self.masters.current().id(),
            }
        })
    }
}
