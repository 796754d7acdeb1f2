//! Keyed digests (HMAC-SHA256): blind indexes for encrypted fields and storage of high-entropy secrets.

use std::fmt;

use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::token::constant_time_eq;
use crate::{DataKey, MasterKey};

/// The plain SHA-256 of public content (a page script's CSP hash and `integrity`); not for
/// secrets, which are digested under a key ([`Digester`]).
pub fn content_sha256(content: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    Sha256::digest(content).into()
}

/// SHA-256's block size: HMAC zero-pads any key up to this length (RFC 2104, section 2).
const SHA256_BLOCK_BYTES: usize = 64;

/// HMAC-SHA256 with a key given as a full, zero-padded block.
///
/// RFC 2104 pads keys shorter than the block size with zeros, so a 32-byte key padded here
/// gives exactly HMAC(key, data). Using the fixed-size constructor avoids `new_from_slice`'s
/// error branch, which cannot occur for HMAC but would otherwise need an `expect`.
fn hmac_sha256_block_key(key_block: &[u8; SHA256_BLOCK_BYTES], data: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as hmac::digest::KeyInit>::new(key_block.into());
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// HMAC-SHA256 with a 32-byte key (every key this crate derives is 32 bytes).
pub(crate) fn hmac_sha256(key: &[u8; 32], data: &[u8]) -> [u8; 32] {
    let mut block = Zeroizing::new([0u8; SHA256_BLOCK_BYTES]);
    block[..32].copy_from_slice(key);
    hmac_sha256_block_key(&block, data)
}

/// Computes HMAC-SHA256 under a key derived for one purpose.
///
/// Use it for lookups of values that are stored encrypted (a blind index of an e-mail
/// address) and to store high-entropy secrets such as refresh tokens or API keys, where a
/// slow password hash would add nothing: a database dump without the master key gives an
/// attacker neither the secrets nor a way to test guesses.
#[derive(Clone)]
pub struct Digester {
    key: Zeroizing<[u8; 32]>,
}

impl Digester {
    /// A digester whose key is `master.derive("digest/" + purpose)`.
    pub fn new(master: &MasterKey, purpose: &str) -> Digester {
        Digester { key: master.derive(&format!("digest/{purpose}")) }
    }

    /// A digester keyed by a data key of the key hierarchy.
    pub fn from_data_key(key: &DataKey) -> Digester {
        Digester { key: key.bytes().clone() }
    }

    /// A digester whose random key lives only in this process: for in-memory lookups keyed by
    /// a secret (a cache of verified tokens) that must not keep the secret itself.
    pub fn ephemeral() -> Digester {
        Digester { key: Zeroizing::new(crate::token::random_bytes::<32>()) }
    }

    /// The 32-byte HMAC-SHA256 of `data`.
    pub fn digest(&self, data: &[u8]) -> [u8; 32] {
        hmac_sha256(&self.key, data)
    }

    /// The digest as 64 lowercase hex characters, convenient for text columns.
    pub fn digest_hex(&self, data: &[u8]) -> String {
        self.digest(data).iter().map(|byte| format!("{byte:02x}")).collect()
    }

    /// Whether `expected` (raw 32 bytes) is the digest of `data`, compared in constant time
    /// so that response timing does not reveal how many leading bytes matched.
    pub fn verify(&self, data: &[u8], expected: &[u8]) -> bool {
        constant_time_eq(&self.digest(data), expected)
    }
}

impl fmt::Debug for Digester {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Digester([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn padded(key: &[u8]) -> [u8; SHA256_BLOCK_BYTES] {
        let mut block = [0u8; SHA256_BLOCK_BYTES];
        block[..key.len()].copy_from_slice(key);
        block
    }

    #[test]
    fn hmac_matches_rfc4231_test_cases_1_and_2() {
        // Test case 1: key = 20 bytes of 0x0b, data = "Hi There".
        assert_eq!(
            hex(&hmac_sha256_block_key(&padded(&[0x0b; 20]), b"Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        // Test case 2: key = "Jefe", data = "what do ya want for nothing?".
        assert_eq!(
            hex(&hmac_sha256_block_key(&padded(b"Jefe"), b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn thirty_two_byte_key_path_equals_plain_hmac() {
        let key = [0x42u8; 32];
        let mut reference = Hmac::<Sha256>::new_from_slice(&key).unwrap();
        reference.update(b"data");
        let expected: [u8; 32] = reference.finalize().into_bytes().into();
        assert_eq!(hmac_sha256(&key, b"data"), expected);
    }

    #[test]
    fn digester_uses_the_derived_purpose_key() {
        let master = MasterKey::generate();
        let digester = Digester::new(&master, "email");
        let key = master.derive("digest/email");
        assert_eq!(digester.digest(b"a@example.com"), hmac_sha256(&key, b"a@example.com"));
        assert_ne!(
            digester.digest(b"a@example.com"),
            Digester::new(&master, "refresh-token").digest(b"a@example.com")
        );
        assert_ne!(
            digester.digest(b"a@example.com"),
            Digester::new(&MasterKey::generate(), "email").digest(b"a@example.com")
        );
    }

    #[test]
    fn hex_and_verify_agree_with_digest() {
        let digester = Digester::new(&MasterKey::generate(), "token");
        let digest = digester.digest(b"secret");
        assert_eq!(digester.digest_hex(b"secret"), hex(&digest));
        assert_eq!(digester.digest_hex(b"secret").len(), 64);
        assert!(digester.verify(b"secret", &digest));
        assert!(!digester.verify(b"secreT", &digest));
        assert!(!digester.verify(b"secret", &digest[..31]));
        assert_eq!(format!("{digester:?}"), "Digester([redacted])");
    }
}
