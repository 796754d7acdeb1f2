//! The key hierarchy: data keys (the per-purpose keys that seal fields, key digests and pepper
//! passwords) and the master keys that only wrap them.
//!
//! A data key is stored wrapped — sealed with XChaCha20-Poly1305 under a key derived from the
//! master key, its label (purpose, version, id) as associated data — so rotating the master key
//! rewraps a few rows and changes no digest, hash or sealed field. An installation that
//! predates the hierarchy adopts [`DataKey::derived`] keys: exactly the keys it used to derive
//! from its master key, so everything stored before keeps working.

use std::fmt;

use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::token::random_bytes;
use crate::{CryptoError, FieldCipher, MasterKey};

/// The field-cipher purpose of the key-wrapping key (`master.derive("aead/data-key")`).
const WRAP_PURPOSE: &str = "data-key";

/// HKDF `info` for a random data key's public id.
const DATA_KEY_ID_INFO: &[u8] = b"gatehouse/data-key-id";

/// A 32-byte key for one purpose. Zeroized on drop; `Debug` shows only its public id.
#[derive(Clone)]
pub struct DataKey {
    bytes: Zeroizing<[u8; 32]>,
    /// The public id carried by values sealed under this key (the field cipher's header).
    id: u32,
}

impl DataKey {
    /// A fresh random key; its id is a fingerprint of the key (HKDF, so it reveals nothing).
    pub fn generate() -> DataKey {
        let bytes = Zeroizing::new(random_bytes::<32>());
        let mut id = [0u8; 4];
        // `expand` fails only past 255 * 32 bytes of output; 4 bytes cannot fail.
        if Hkdf::<Sha256>::new(None, bytes.as_ref()).expand(DATA_KEY_ID_INFO, &mut id).is_err() {
            id = [0u8; 4];
        }
        DataKey { bytes, id: u32::from_be_bytes(id) }
    }

    /// The key an installation used before the hierarchy: `master.derive(info)`, with the
    /// master key's id, which is what values sealed with it already carry.
    pub fn derived(master: &MasterKey, info: &str) -> DataKey {
        DataKey { bytes: master.derive(info), id: master.id() }
    }

    /// The public id (stored beside the wrapped key; carried by sealed values).
    pub fn id(&self) -> u32 {
        self.id
    }

    pub(crate) fn bytes(&self) -> &Zeroizing<[u8; 32]> {
        &self.bytes
    }

    fn from_slice(bytes: &[u8], id: u32) -> Result<DataKey, CryptoError> {
        let array: [u8; 32] = bytes
            .try_into()
            .map_err(|_| CryptoError::InvalidKey("a data key must be 32 bytes".to_owned()))?;
        Ok(DataKey { bytes: Zeroizing::new(array), id })
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DataKey({:08x})", self.id)
    }
}

/// The current master key, which wraps, and the previous ones, which still unwrap.
#[derive(Clone)]
pub struct MasterKeyRing {
    current: MasterKey,
    previous: Vec<MasterKey>,
    wrapper: std::sync::Arc<FieldCipher>,
}

impl MasterKeyRing {
    pub fn new(current: MasterKey, previous: Vec<MasterKey>) -> MasterKeyRing {
        let wrapper = std::sync::Arc::new(FieldCipher::new(&current, &previous, WRAP_PURPOSE));
        MasterKeyRing { current, previous, wrapper }
    }

    /// The key that wraps.
    pub fn current(&self) -> &MasterKey {
        &self.current
    }

    /// Every key: the current one first, then the previous ones in the given order.
    pub fn keys(&self) -> impl Iterator<Item = &MasterKey> {
        std::iter::once(&self.current).chain(&self.previous)
    }

    /// `key` sealed under the current master key, bound to `label` (purpose, version and id
    /// of the key, so a wrapped key moved to another row does not open).
    pub fn wrap(&self, label: &str, key: &DataKey) -> Result<Vec<u8>, CryptoError> {
        self.wrapper.seal(label.as_bytes(), key.bytes().as_ref())
    }

    /// Opens a key from [`MasterKeyRing::wrap`] with whichever master key wrapped it, giving
    /// it the public `id` stored beside it. [`CryptoError::Decrypt`] when none of ours did.
    pub fn unwrap(&self, label: &str, wrapped: &[u8], id: u32) -> Result<DataKey, CryptoError> {
        let opened = self.wrapper.open(label.as_bytes(), wrapped)?;
        DataKey::from_slice(&opened, id)
    }

    /// The id of the master key that wrapped `wrapped` (None for a value of another layout).
    pub fn wrapped_by(wrapped: &[u8]) -> Option<u32> {
        FieldCipher::sealed_key_id(wrapped)
    }
}

impl fmt::Debug for MasterKeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<String> = self.keys().map(|key| format!("{:08x}", key.id())).collect();
        write!(f, "MasterKeyRing([{}])", ids.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Digester, Pepper};

    #[test]
    fn wrap_and_unwrap_round_trip_under_current_and_previous_keys() {
        let old = MasterKey::generate();
        let new = MasterKey::generate();
        let key = DataKey::generate();
        let wrapped_by_old =
            MasterKeyRing::new(old.clone(), vec![]).wrap("digest/email#1", &key).unwrap();
        assert_eq!(MasterKeyRing::wrapped_by(&wrapped_by_old), Some(old.id()));

        let rotated = MasterKeyRing::new(new.clone(), vec![old.clone()]);
        let opened = rotated.unwrap("digest/email#1", &wrapped_by_old, key.id()).unwrap();
        assert_eq!(*opened.bytes(), *key.bytes());
        assert_eq!(opened.id(), key.id());

        let rewrapped = rotated.wrap("digest/email#1", &opened).unwrap();
        assert_eq!(MasterKeyRing::wrapped_by(&rewrapped), Some(new.id()));
        let new_only = MasterKeyRing::new(new, vec![]);
        assert_eq!(
            *new_only.unwrap("digest/email#1", &rewrapped, 7).unwrap().bytes(),
            *key.bytes()
        );
        // Without the old key, what it wrapped no longer opens.
        assert!(matches!(
            new_only.unwrap("digest/email#1", &wrapped_by_old, key.id()),
            Err(CryptoError::Decrypt)
        ));
    }

    #[test]
    fn a_wrapped_key_is_bound_to_its_label() {
        let ring = MasterKeyRing::new(MasterKey::generate(), vec![]);
        let wrapped = ring.wrap("aead/user-email#1", &DataKey::generate()).unwrap();
        assert!(matches!(ring.unwrap("aead/mfa-totp#1", &wrapped, 1), Err(CryptoError::Decrypt)));
        let mut tampered = wrapped.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(matches!(
            ring.unwrap("aead/user-email#1", &tampered, 1),
            Err(CryptoError::Decrypt)
        ));
    }

    #[test]
    fn derived_keys_reproduce_what_the_master_key_gave_before_the_hierarchy() {
        let master = MasterKey::generate();
        // Digests: the email blind index, refresh tokens, client secrets, ... unchanged.
        let before = Digester::new(&master, "email");
        let after = Digester::from_data_key(&DataKey::derived(&master, "digest/email"));
        assert_eq!(before.digest(b"a@example.com"), after.digest(b"a@example.com"));
        // Sealed fields: opened by the adopted key, and sealed values carry the same id.
        let sealed = FieldCipher::new(&master, &[], "mfa-totp").seal(b"ad", b"secret").unwrap();
        let adopted = FieldCipher::from_data_keys(&DataKey::derived(&master, "aead/mfa-totp"), &[]);
        assert_eq!(adopted.open(b"ad", &sealed).unwrap().as_slice(), b"secret");
        assert!(!adopted.needs_reseal(&sealed));
        // Passwords: the same pepper key under the same id.
        let pepper = Pepper::from_master(&master, 1);
        let adopted_pepper =
            Pepper::from_data_key(1, &DataKey::derived(&master, "password-pepper/1"));
        let settings = crate::Argon2Settings { memory_kib: 1024, iterations: 1, parallelism: 1 };
        let hash = crate::PasswordHasher::new(settings.clone(), pepper, vec![])
            .unwrap()
            .hash(b"correct horse")
            .unwrap();
        let adopted_hasher = crate::PasswordHasher::new(settings, adopted_pepper, vec![]).unwrap();
        assert!(adopted_hasher.verify(b"correct horse", &hash).unwrap());
        assert!(!adopted_hasher.verify(b"wrong horse", &hash).unwrap());
    }

    #[test]
    fn generated_keys_differ_and_debug_shows_only_the_id() {
        let one = DataKey::generate();
        let two = DataKey::generate();
        assert_ne!(*one.bytes(), *two.bytes());
        assert_ne!(one.id(), two.id());
        assert_eq!(format!("{one:?}"), format!("DataKey({:08x})", one.id()));
        let ring = MasterKeyRing::new(MasterKey::generate(), vec![]);
        assert!(!format!("{ring:?}").contains(&ring.current().encode()));
    }
}
