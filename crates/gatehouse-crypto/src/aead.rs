//! Field encryption at rest: XChaCha20-Poly1305 under per-purpose data keys, with key rotation.

use std::fmt;

use chacha20poly1305::aead::{Aead as _, KeyInit as _, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use crate::token::random_bytes;
use crate::{CryptoError, DataKey, MasterKey};

/// Version byte of the sealed layout, so a future layout can be told apart from this one.
const FORMAT_VERSION: u8 = 1;
const KEY_ID_BYTES: usize = 4;
const NONCE_BYTES: usize = 24;
const HEADER_BYTES: usize = 1 + KEY_ID_BYTES;
const TAG_BYTES: usize = 16;

/// One usable key: its public id (what sealed values carry) and the AEAD key.
#[derive(Clone)]
struct PurposeKey {
    master_id: u32,
    key: Zeroizing<[u8; 32]>,
}

/// Seals and opens database fields for one purpose (for example `"totp-secret"`).
///
/// Layout of a sealed value:
/// `version (1 byte, = 1) | key id (4 bytes, BE) | nonce (24 bytes) | ciphertext + tag`.
/// The key id is the data key's (for a data key adopted from before the key hierarchy, the id
/// of the master key it was derived from, which is what its older values already carry).
///
/// The 5-byte header is authenticated together with the caller's associated data, so neither
/// can be changed without `open` failing. Pass something that ties the value to its row (the
/// record id and column name) as associated data: then a ciphertext copied into another row
/// does not open. Nonces are random; XChaCha20's 192-bit nonce makes collisions negligible
/// without a counter to keep in sync.
#[derive(Clone)]
pub struct FieldCipher {
    /// The key `seal` uses.
    current: PurposeKey,
    /// Keys that still open older values.
    previous: Vec<PurposeKey>,
}

impl FieldCipher {
    /// A cipher keyed directly by `master.derive("aead/<purpose>")`, as before the key
    /// hierarchy: the server uses [`FieldCipher::from_data_keys`]; this stays for tests and
    /// for wrapping data keys themselves ([`crate::MasterKeyRing`]).
    pub fn new(current: &MasterKey, previous: &[MasterKey], purpose: &str) -> FieldCipher {
        let derive = |master: &MasterKey| PurposeKey {
            master_id: master.id(),
            key: master.derive(&format!("aead/{purpose}")),
        };
        FieldCipher { current: derive(current), previous: previous.iter().map(derive).collect() }
    }

    /// A cipher that seals under the data key `current` (its id goes into the header) and
    /// still opens values sealed under any of `previous`.
    pub fn from_data_keys(current: &DataKey, previous: &[DataKey]) -> FieldCipher {
        let key = |data_key: &DataKey| PurposeKey {
            master_id: data_key.id(),
            key: data_key.bytes().clone(),
        };
        FieldCipher { current: key(current), previous: previous.iter().map(key).collect() }
    }

    /// The key id in a sealed value's header (None when it is not a value of this layout).
    pub fn sealed_key_id(sealed: &[u8]) -> Option<u32> {
        parse(sealed).map(|parsed| parsed.master_id)
    }

    /// Encrypts `plaintext`, binding it to `associated_data`.
    pub fn seal(&self, associated_data: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let current = &self.current;
        let nonce = random_bytes::<NONCE_BYTES>();
        let header = header(current.master_id);
        let aad = authenticated_data(&header, associated_data);
        let ciphertext = cipher(&current.key)
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: plaintext, aad: &aad })
            .map_err(|_| CryptoError::Internal("field encryption failed".to_owned()))?;
        let mut sealed = Vec::with_capacity(HEADER_BYTES + NONCE_BYTES + ciphertext.len());
        sealed.extend_from_slice(&header);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        Ok(sealed)
    }

    /// Decrypts a value from [`FieldCipher::seal`]. Any failure (unknown key, wrong
    /// associated data, truncation, tampering) is the same [`CryptoError::Decrypt`].
    pub fn open(
        &self,
        associated_data: &[u8],
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let parsed = parse(sealed).ok_or(CryptoError::Decrypt)?;
        let header = header(parsed.master_id);
        let aad = authenticated_data(&header, associated_data);
        // Normally one key matches; a 32-bit id collision between two master keys is
        // possible in principle, so every key with that id gets a try.
        std::iter::once(&self.current)
            .chain(&self.previous)
            .filter(|candidate| candidate.master_id == parsed.master_id)
            .find_map(|candidate| {
                cipher(&candidate.key)
                    .decrypt(
                        XNonce::from_slice(parsed.nonce),
                        Payload { msg: parsed.ciphertext, aad: &aad },
                    )
                    .ok()
            })
            .map(Zeroizing::new)
            .ok_or(CryptoError::Decrypt)
    }

    /// Whether `sealed` was sealed under a key other than the current one (or in an older
    /// layout), so it should be opened and sealed again during rotation.
    pub fn needs_reseal(&self, sealed: &[u8]) -> bool {
        match parse(sealed) {
            Some(parsed) => parsed.master_id != self.current.master_id,
            None => sealed.first().is_some_and(|version| *version < FORMAT_VERSION),
        }
    }
}

impl fmt::Debug for FieldCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<String> = std::iter::once(&self.current)
            .chain(&self.previous)
            .map(|k| format!("{:08x}", k.master_id))
            .collect();
        write!(f, "FieldCipher(keys: [{}])", ids.join(", "))
    }
}

struct Parsed<'a> {
    master_id: u32,
    nonce: &'a [u8],
    ciphertext: &'a [u8],
}

fn parse(sealed: &[u8]) -> Option<Parsed<'_>> {
    if sealed.len() < HEADER_BYTES + NONCE_BYTES + TAG_BYTES {
        return None;
    }
    let (&version, rest) = sealed.split_first()?;
    if version != FORMAT_VERSION {
        return None;
    }
    let (id_bytes, rest) = rest.split_at(KEY_ID_BYTES);
    let (nonce, ciphertext) = rest.split_at(NONCE_BYTES);
    let id_bytes: [u8; KEY_ID_BYTES] = id_bytes.try_into().ok()?;
    Some(Parsed { master_id: u32::from_be_bytes(id_bytes), nonce, ciphertext })
}

fn header(master_id: u32) -> [u8; HEADER_BYTES] {
    let mut header = [FORMAT_VERSION; HEADER_BYTES];
    header[1..].copy_from_slice(&master_id.to_be_bytes());
    header
}

/// The header is fixed-length, so `header || associated_data` is unambiguous.
fn authenticated_data(header: &[u8; HEADER_BYTES], associated_data: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(HEADER_BYTES + associated_data.len());
    aad.extend_from_slice(header);
    aad.extend_from_slice(associated_data);
    aad
}

fn cipher(key: &[u8; 32]) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(key.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_layout() {
        let master = MasterKey::generate();
        let cipher = FieldCipher::new(&master, &[], "totp");
        let sealed = cipher.seal(b"usr_1/totp", b"JBSWY3DPEHPK3PXP").unwrap();
        assert_eq!(sealed.len(), 1 + 4 + 24 + 16 + 16);
        assert_eq!(sealed[0], 1);
        assert_eq!(&sealed[1..5], &master.id().to_be_bytes());
        let opened = cipher.open(b"usr_1/totp", &sealed).unwrap();
        assert_eq!(opened.as_slice(), b"JBSWY3DPEHPK3PXP");
        assert!(!cipher.needs_reseal(&sealed));
        // Random nonces: sealing twice gives different ciphertexts.
        assert_ne!(sealed, cipher.seal(b"usr_1/totp", b"JBSWY3DPEHPK3PXP").unwrap());
        // Empty plaintext is allowed.
        let empty = cipher.seal(b"", b"").unwrap();
        assert!(cipher.open(b"", &empty).unwrap().is_empty());
    }

    #[test]
    fn tampering_wrong_ad_wrong_key_and_wrong_purpose_fail_with_decrypt() {
        let master = MasterKey::generate();
        let cipher = FieldCipher::new(&master, &[], "totp");
        let sealed = cipher.seal(b"row-1", b"secret").unwrap();

        for index in 0..sealed.len() {
            let mut tampered = sealed.clone();
            tampered[index] ^= 0x01;
            assert!(matches!(cipher.open(b"row-1", &tampered), Err(CryptoError::Decrypt)));
        }
        assert!(matches!(cipher.open(b"row-2", &sealed), Err(CryptoError::Decrypt)));
        assert!(matches!(cipher.open(b"row-1", &sealed[..20]), Err(CryptoError::Decrypt)));
        assert!(matches!(cipher.open(b"row-1", &[]), Err(CryptoError::Decrypt)));

        let other_key = FieldCipher::new(&MasterKey::generate(), &[], "totp");
        assert!(matches!(other_key.open(b"row-1", &sealed), Err(CryptoError::Decrypt)));
        let other_purpose = FieldCipher::new(&master, &[], "webhook-secret");
        assert!(matches!(other_purpose.open(b"row-1", &sealed), Err(CryptoError::Decrypt)));
    }

    #[test]
    fn rotation_opens_old_values_and_flags_them_for_reseal() {
        let old = MasterKey::generate();
        let new = MasterKey::generate();
        let old_cipher = FieldCipher::new(&old, &[], "totp");
        let sealed_with_old = old_cipher.seal(b"ad", b"value").unwrap();

        let rotated = FieldCipher::new(&new, std::slice::from_ref(&old), "totp");
        assert_eq!(rotated.open(b"ad", &sealed_with_old).unwrap().as_slice(), b"value");
        assert!(rotated.needs_reseal(&sealed_with_old));

        let resealed = rotated.seal(b"ad", b"value").unwrap();
        assert!(!rotated.needs_reseal(&resealed));
        assert_eq!(&resealed[1..5], &new.id().to_be_bytes());
        // Once the old key is dropped from the list, old values no longer open.
        let new_only = FieldCipher::new(&new, &[], "totp");
        assert!(matches!(new_only.open(b"ad", &sealed_with_old), Err(CryptoError::Decrypt)));
        assert_eq!(new_only.open(b"ad", &resealed).unwrap().as_slice(), b"value");
    }

    #[test]
    fn debug_shows_key_ids_only() {
        let master = MasterKey::generate();
        let shown = format!("{:?}", FieldCipher::new(&master, &[], "totp"));
        assert_eq!(shown, format!("FieldCipher(keys: [{:08x}])", master.id()));
    }
}
