//! The master key: the one root secret from which every per-purpose key is derived with HKDF.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use hkdf::Hkdf;
use rand::RngCore as _;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::CryptoError;

/// Length of a master key in bytes.
pub const MASTER_KEY_BYTES: usize = 32;

/// HKDF `info` prefix for derived keys. The version lets us change the derivation later
/// without ever producing the same key for two schemes.
const DERIVE_INFO_PREFIX: &str = "gatehouse/v1/";

/// HKDF `info` for the key fingerprint; distinct from every derived key's info, so the
/// fingerprint reveals nothing about any key in use.
const KEY_ID_INFO: &[u8] = b"gatehouse/key-id";

/// The 32-byte root secret. Zeroized on drop; `Debug` shows only its public fingerprint.
#[derive(Clone)]
pub struct MasterKey {
    bytes: Zeroizing<[u8; MASTER_KEY_BYTES]>,
    /// Cached because every sealed field carries it and computing it costs an HKDF.
    id: u32,
}

impl MasterKey {
    /// A fresh key from the operating system's RNG.
    pub fn generate() -> MasterKey {
        let mut bytes = Zeroizing::new([0u8; MASTER_KEY_BYTES]);
        rand::rngs::OsRng.fill_bytes(bytes.as_mut());
        MasterKey::from_array(bytes)
    }

    /// A key from raw bytes, which must be exactly 32.
    pub fn from_bytes(bytes: &[u8]) -> Result<MasterKey, CryptoError> {
        let mut array = Zeroizing::new([0u8; MASTER_KEY_BYTES]);
        if bytes.len() != MASTER_KEY_BYTES {
            return Err(CryptoError::InvalidKey(format!(
                "master key must be {MASTER_KEY_BYTES} bytes, got {}",
                bytes.len()
            )));
        }
        array.copy_from_slice(bytes);
        Ok(MasterKey::from_array(array))
    }

    /// A key from text: base64url or standard base64 (padding optional) or 64 hex characters,
    /// surrounding whitespace ignored (key files usually end with a newline).
    ///
    /// The error never repeats the text, since it may be a real key with a typo.
    pub fn parse(text: &str) -> Result<MasterKey, CryptoError> {
        let text = text.trim();
        // Hex first: 64 hex characters are also valid base64 (decoding to 48 bytes), and the
        // length check below would then reject a perfectly good hex key.
        if text.len() == 2 * MASTER_KEY_BYTES && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return MasterKey::from_bytes(&decode_hex(text)?);
        }
        for engine in [&URL_SAFE_NO_PAD, &URL_SAFE, &STANDARD_NO_PAD, &STANDARD] {
            if let Ok(decoded) = engine.decode(text) {
                return MasterKey::from_bytes(&Zeroizing::new(decoded));
            }
        }
        Err(CryptoError::InvalidKey(
            "master key must be 32 bytes as base64url, base64 or 64 hex characters".to_owned(),
        ))
    }

    /// The key as base64url without padding: the form written to the development key file.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.bytes.as_ref())
    }

    /// A public fingerprint: the first 4 bytes (big-endian) of HKDF-SHA256(master, "gatehouse/key-id").
    /// Stored next to data sealed under this key so rotation can find the right key.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// A 32-byte key for one purpose: HKDF-SHA256 expand with info `"gatehouse/v1/" + purpose`.
    /// Different purposes give independent keys, so a leak of one (say a digest key) does not
    /// touch another (say the field encryption key).
    pub fn derive(&self, purpose: &str) -> Zeroizing<[u8; 32]> {
        let mut info = Vec::with_capacity(DERIVE_INFO_PREFIX.len() + purpose.len());
        info.extend_from_slice(DERIVE_INFO_PREFIX.as_bytes());
        info.extend_from_slice(purpose.as_bytes());
        let mut out = Zeroizing::new([0u8; 32]);
        hkdf_expand(&self.bytes, &info, out.as_mut());
        out
    }

    fn from_array(bytes: Zeroizing<[u8; MASTER_KEY_BYTES]>) -> MasterKey {
        let mut id_bytes = [0u8; 4];
        hkdf_expand(&bytes, KEY_ID_INFO, &mut id_bytes);
        MasterKey { bytes, id: u32::from_be_bytes(id_bytes) }
    }
}

/// HKDF-SHA256 with no salt (the master key is already uniformly random) into `out`.
fn hkdf_expand(master: &[u8; MASTER_KEY_BYTES], info: &[u8], out: &mut [u8]) {
    let hkdf = Hkdf::<Sha256>::new(None, master);
    // `expand` only fails when asked for more than 255 * 32 bytes; this module asks for 4 or
    // 32, so the error branch cannot be taken. It zeroes `out` rather than panicking because
    // panics are denied in this crate.
    if hkdf.expand(info, out).is_err() {
        out.fill(0);
    }
}

fn decode_hex(text: &str) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let mut out = Zeroizing::new(Vec::with_capacity(text.len() / 2));
    for pair in text.as_bytes().chunks(2) {
        let high = hex_value(pair.first().copied());
        let low = hex_value(pair.get(1).copied());
        match (high, low) {
            (Some(high), Some(low)) => out.push(high << 4 | low),
            _ => {
                return Err(CryptoError::InvalidKey("invalid hex in master key".to_owned()));
            }
        }
    }
    Ok(out)
}

fn hex_value(digit: Option<u8>) -> Option<u8> {
    (digit? as char).to_digit(16).and_then(|v| u8::try_from(v).ok())
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({:08x})", self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    fn sample() -> MasterKey {
        MasterKey::parse(HEX).unwrap()
    }

    #[test]
    fn parse_accepts_every_documented_encoding() {
        let key = sample();
        let bytes: Vec<u8> = (0u8..32).collect();
        let forms = [
            format!("  {HEX}\n"),
            HEX.to_uppercase(),
            URL_SAFE_NO_PAD.encode(&bytes),
            URL_SAFE.encode(&bytes),
            STANDARD.encode(&bytes),
            STANDARD_NO_PAD.encode(&bytes),
            key.encode(),
        ];
        for form in forms {
            let parsed = MasterKey::parse(&form).unwrap();
            assert_eq!(parsed.encode(), key.encode(), "form {form:?}");
            assert_eq!(parsed.id(), key.id());
        }
    }

    #[test]
    fn parse_rejects_wrong_length_and_garbage_without_echoing_input() {
        for bad in ["", "abc", &HEX[..62], &URL_SAFE_NO_PAD.encode([7u8; 31]), "!!!!"] {
            let error = MasterKey::parse(bad).unwrap_err();
            assert!(matches!(error, CryptoError::InvalidKey(_)));
            if !bad.is_empty() {
                assert!(!error.to_string().contains(bad));
            }
        }
        assert!(MasterKey::from_bytes(&[0u8; 33]).is_err());
        assert!(MasterKey::from_bytes(&[0u8; 32]).is_ok());
    }

    #[test]
    fn encode_is_base64url_without_padding() {
        let encoded = sample().encode();
        assert_eq!(encoded.len(), 43);
        assert_eq!(encoded, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8");
    }

    #[test]
    fn id_is_first_four_bytes_of_hkdf_over_key_id_info() {
        let key = sample();
        let bytes: Vec<u8> = (0u8..32).collect();
        let mut expected = [0u8; 32];
        Hkdf::<Sha256>::new(None, &bytes).expand(b"gatehouse/key-id", &mut expected).unwrap();
        assert_eq!(
            key.id(),
            u32::from_be_bytes([expected[0], expected[1], expected[2], expected[3]])
        );
        assert_ne!(key.id(), MasterKey::generate().id());
    }

    #[test]
    fn derive_is_stable_per_purpose_and_distinct_across_purposes() {
        let key = sample();
        assert_eq!(*key.derive("aead/totp"), *sample().derive("aead/totp"));
        assert_ne!(*key.derive("aead/totp"), *key.derive("aead/other"));
        assert_ne!(*key.derive("aead/totp"), *MasterKey::generate().derive("aead/totp"));
        // The prefix is part of the derivation: same as HKDF with the full info string.
        let mut expected = [0u8; 32];
        Hkdf::<Sha256>::new(None, &(0u8..32).collect::<Vec<_>>())
            .expand(b"gatehouse/v1/aead/totp", &mut expected)
            .unwrap();
        assert_eq!(*key.derive("aead/totp"), expected);
    }

    #[test]
    fn debug_shows_only_the_fingerprint() {
        let key = sample();
        let shown = format!("{key:?}");
        assert_eq!(shown, format!("MasterKey({:08x})", key.id()));
        assert!(!shown.contains(&key.encode()));
    }
}
