//! Random tokens, random bytes, sortable identifiers and constant-time comparison.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use subtle::ConstantTimeEq as _;

/// A 256-bit secret from the OS RNG as base64url without padding (43 characters): session
/// cookies, refresh tokens, e-mail links. 256 bits put guessing out of reach even at scale.
pub fn random_token() -> String {
    let bytes = zeroize::Zeroizing::new(random_bytes::<32>());
    URL_SAFE_NO_PAD.encode(bytes.as_ref())
}

/// `N` bytes from the operating system's RNG (never a seeded user-space generator).
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes
}

/// A new identifier such as `usr_0190e1b2c3d47e8f9a0b1c2d3e4f5a6b`: the prefix, `_`, and a
/// UUIDv7 as 32 lowercase hex characters. UUIDv7 starts with a millisecond timestamp, so ids
/// sort by creation time, which keeps database indexes append-mostly.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

/// Whether `a == b`, in time that depends only on the lengths, not on where they differ.
/// Lengths are not secret for the values we compare (digests, fixed-size tokens).
/// The PKCE S256 challenge of a verifier (RFC 7636 §4.2): BASE64URL(SHA-256(verifier)).
pub fn pkce_s256(verifier: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()))
}

/// The OIDC `at_hash`: the left half of the access token's SHA-256 (or SHA-384/512 for other
/// algorithms; all ours use 256-bit hashes), base64url (OIDC Core §3.1.3.6).
pub fn left_half_sha256(value: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(value.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..16])
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_matches_rfc_7636_appendix_b() {
        assert_eq!(
            pkce_s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn random_token_is_43_base64url_chars_and_unique() {
        let first = random_token();
        let second = random_token();
        assert_eq!(first.len(), 43);
        assert!(first.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(URL_SAFE_NO_PAD.decode(&first).unwrap().len(), 32);
        assert_ne!(first, second);
    }

    #[test]
    fn random_bytes_fill_the_array() {
        let a = random_bytes::<32>();
        let b = random_bytes::<32>();
        assert_ne!(a, b);
        assert_ne!(a, [0u8; 32]);
        assert_eq!(random_bytes::<0>(), [0u8; 0]);
    }

    #[test]
    fn new_id_has_prefix_and_sorts_by_creation() {
        let ids: Vec<String> = (0..100).map(|_| new_id("usr")).collect();
        for id in &ids {
            let (prefix, hex) = id.split_once('_').unwrap();
            assert_eq!(prefix, "usr");
            assert_eq!(hex.len(), 32);
            assert!(hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
            let uuid = uuid::Uuid::parse_str(hex).unwrap();
            assert_eq!(uuid.get_version_num(), 7);
        }
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(sorted, ids);
    }

    #[test]
    fn constant_time_eq_compares_content_and_length() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(constant_time_eq(b"", b""));
    }
}
