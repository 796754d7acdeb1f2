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

/// The base62 alphabet of our secrets' random part and checksum.
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Random base62 characters of a secret: 43 × log2(62) ≈ 256 bits.
pub const SECRET_RANDOM_LENGTH: usize = 43;
/// Base62 characters of the checksum (62^6 > 2^32).
pub const SECRET_CHECKSUM_LENGTH: usize = 6;

/// One kind of secret we hand out, in our own format so secret scanners can recognise (and
/// attribute) a leaked one: `prefix` (`gtr_`, ...), 43 random base62 characters, and a
/// 6-character base62 CRC-32 of everything before it — regex `<prefix>[0-9A-Za-z]{49}`. The
/// checksum lets a scanner (and we, before any lookup) tell a real secret from a look-alike
/// without asking anyone; it is no defence against forgery, the random part is.
/// `legacy_prefix` is the prefix this kind had before (`ghr_`, ...): such secrets stay valid
/// until they expire or rotate, with no checksum to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecretKind {
    pub prefix: &'static str,
    pub legacy_prefix: &'static str,
}

impl SecretKind {
    /// A new secret of this kind from the OS RNG.
    pub fn generate(&self) -> String {
        let mut secret = String::with_capacity(
            self.prefix.len() + SECRET_RANDOM_LENGTH + SECRET_CHECKSUM_LENGTH,
        );
        secret.push_str(self.prefix);
        let mut filled = 0;
        while filled < SECRET_RANDOM_LENGTH {
            let bytes = zeroize::Zeroizing::new(random_bytes::<64>());
            // Rejection sampling: 248 = 4 × 62, so every character is equally likely.
            for byte in bytes.iter().filter(|byte| **byte < 248) {
                if filled == SECRET_RANDOM_LENGTH {
                    break;
                }
                secret.push(char::from(BASE62[usize::from(*byte % 62)]));
                filled += 1;
            }
        }
        let checksum = checksum(secret.as_bytes());
        secret.push_str(&checksum);
        secret
    }

    /// Whether `value` is shaped like a secret of this kind: the new format with a checksum
    /// that matches, or the legacy prefix. Checked before any lookup, so a mistyped or made-up
    /// secret costs no database round trip; callers answer it exactly as an unknown secret.
    pub fn recognises(&self, value: &str) -> bool {
        if value.starts_with(self.legacy_prefix) {
            return true;
        }
        self.is_current(value)
    }

    /// Whether `value` is in this kind's current format with a valid checksum.
    pub fn is_current(&self, value: &str) -> bool {
        let Some(rest) = value.strip_prefix(self.prefix) else { return false };
        if rest.len() != SECRET_RANDOM_LENGTH + SECRET_CHECKSUM_LENGTH
            || !rest.bytes().all(|byte| byte.is_ascii_alphanumeric())
        {
            return false;
        }
        let (body, sum) = value.split_at(value.len() - SECRET_CHECKSUM_LENGTH);
        constant_time_eq(checksum(body.as_bytes()).as_bytes(), sum.as_bytes())
    }

    /// Whether `value` starts with either of this kind's prefixes.
    pub fn claims(&self, value: &str) -> bool {
        value.starts_with(self.prefix) || value.starts_with(self.legacy_prefix)
    }
}

/// CRC-32 (ISO-HDLC, the zlib one) of `data` as 6 base62 digits, most significant first.
fn checksum(data: &[u8]) -> String {
    const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);
    let mut value = u64::from(CRC32.checksum(data));
    let mut digits = [b'0'; SECRET_CHECKSUM_LENGTH];
    for digit in digits.iter_mut().rev() {
        *digit = BASE62[(value % 62) as usize];
        value /= 62;
    }
    digits.iter().map(|digit| char::from(*digit)).collect()
}

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

/// Whether `a == b`, in time that depends only on the lengths, not on where they differ.
/// Lengths are not secret for the values we compare (digests, fixed-size tokens).
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

    const KIND: SecretKind = SecretKind { prefix: "gtx_", legacy_prefix: "ghx_" };

    #[test]
    fn secrets_have_prefix_random_part_and_checksum() {
        let first = KIND.generate();
        let second = KIND.generate();
        assert_ne!(first, second);
        assert_eq!(first.len(), 4 + 43 + 6);
        assert!(first.starts_with("gtx_"));
        assert!(first[4..].bytes().all(|b| b.is_ascii_alphanumeric()), "{first}");
        assert!(KIND.is_current(&first) && KIND.recognises(&first));
        // The checksum is the CRC-32 of prefix and random part, in base62.
        let (body, sum) = first.split_at(first.len() - 6);
        assert_eq!(checksum(body.as_bytes()), sum);
        // A known value, so the format cannot drift unnoticed: CRC-32("123456789") = 0xCBF43926.
        assert_eq!(checksum(b"123456789"), "3jZRME");
    }

    #[test]
    fn broken_checksums_and_look_alikes_are_not_recognised() {
        let secret = KIND.generate();
        let mut broken = secret.clone().into_bytes();
        let last = broken.len() - 1;
        broken[last] = if broken[last] == b'a' { b'b' } else { b'a' };
        let broken = String::from_utf8(broken).unwrap();
        let mut typo = secret.clone().into_bytes();
        typo[10] = if typo[10] == b'Z' { b'Y' } else { b'Z' };
        let typo = String::from_utf8(typo).unwrap();
        for bad in [
            broken.as_str(),
            typo.as_str(),
            &secret[..secret.len() - 1],
            &format!("{secret}0"),
            &secret.replacen("gtx_", "gty_", 1),
            "gtx_",
            "",
            &format!("gtx_{}", "-".repeat(49)),
        ] {
            assert!(!KIND.recognises(bad), "{bad}");
        }
        // Secrets of the legacy format are recognised by their prefix alone.
        assert!(KIND.recognises(&format!("ghx_{}", random_token())));
        assert!(KIND.claims("ghx_") && KIND.claims("gtx_") && !KIND.claims("gtz_"));
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
