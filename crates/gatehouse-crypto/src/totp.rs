//! TOTP (RFC 6238) through `totp-rs`: 160-bit secrets, SHA-1, 6 digits, 30-second steps, a
//! window of ±1 step. The caller gets the matched *step* back so it can refuse a step that was
//! already used (the library leaves replay to its callers, as RFC 6238 §5.2 asks).
//!
//! Also: random numeric codes for email/SMS and backup codes, drawn from the OS RNG.

use rand::Rng;
use totp_rs::{Builder, Secret, Totp};
use zeroize::Zeroizing;

use crate::CryptoError;

/// Seconds per TOTP step.
pub const TOTP_STEP_SECONDS: u64 = 30;
/// Digits of a TOTP code.
pub const TOTP_DIGITS: u8 = 6;
/// Bytes of a new TOTP secret (160 bits, the RFC 4226 recommendation).
pub const TOTP_SECRET_BYTES: usize = 20;

/// A TOTP secret in memory. Wiped on drop; `Debug` prints nothing of it.
pub struct TotpSecret {
    bytes: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("TotpSecret(..)")
    }
}

impl TotpSecret {
    /// A new random secret.
    pub fn generate() -> TotpSecret {
        let secret = Secret::generate();
        TotpSecret { bytes: Zeroizing::new(secret.as_bytes().to_vec()) }
    }

    /// A secret from its raw bytes (as stored, after decryption).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<TotpSecret, CryptoError> {
        if bytes.len() < 16 {
            return Err(CryptoError::InvalidKey("TOTP secret shorter than 128 bits".into()));
        }
        Ok(TotpSecret { bytes: Zeroizing::new(bytes) })
    }

    /// A secret from the base32 text an authenticator app shows (tests compute codes this way).
    pub fn from_base32(text: &str) -> Result<TotpSecret, CryptoError> {
        let secret = Secret::try_from_base32(text)
            .map_err(|_| CryptoError::InvalidKey("TOTP secret is not base32".into()))?;
        TotpSecret::from_bytes(secret.as_bytes().to_vec())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Unpadded base32, as authenticator apps take it.
    pub fn to_base32(&self) -> String {
        Secret::from(self.bytes.to_vec()).to_base32()
    }

    fn totp(&self, issuer: Option<&str>, account_name: &str) -> Result<Totp, CryptoError> {
        // `:` separates issuer and account in the otpauth label; neither may contain one.
        let clean = |text: &str| text.replace(':', " ");
        let mut builder = Builder::new()
            .with_secret(self.bytes.to_vec())
            .with_digits(TOTP_DIGITS)
            .with_skew(1)
            .with_step_duration(TOTP_STEP_SECONDS)
            .with_account_name(clean(account_name));
        if let Some(issuer) = issuer {
            builder = builder.with_issuer(Some(clean(issuer)));
        }
        builder.build().map_err(|error| CryptoError::InvalidSettings(format!("TOTP: {error}")))
    }

    /// The `otpauth://totp/...` URI an authenticator app imports (it holds the secret).
    pub fn otpauth_uri(&self, issuer: &str, account_name: &str) -> Result<String, CryptoError> {
        self.totp(Some(issuer), account_name)?
            .to_url()
            .map_err(|error| CryptoError::InvalidSettings(format!("TOTP URI: {error}")))
    }

    /// The code for Unix time `time`.
    pub fn code_at(&self, time: u64) -> Result<String, CryptoError> {
        Ok(self.totp(None, "")?.generate(time).to_string())
    }

    /// The step (`time / 30`) whose code `code` is, within ±1 step of `time`; `None` when it
    /// matches none. The comparison is constant-time (`totp_rs::Token`).
    pub fn matching_step(&self, code: &str, time: u64) -> Result<Option<u64>, CryptoError> {
        let code = code.trim();
        if code.len() != usize::from(TOTP_DIGITS) || !code.bytes().all(|byte| byte.is_ascii_digit())
        {
            return Ok(None);
        }
        Ok(self.totp(None, "")?.check(code, time))
    }
}

/// A random code of `digits` decimal digits (leading zeros kept), for email and SMS.
pub fn random_digits(digits: usize) -> String {
    let mut rng = rand::rngs::OsRng;
    (0..digits).map(|_| char::from(b'0' + rng.gen_range(0..10u8))).collect()
}

/// The alphabet of backup codes: lowercase letters and digits without look-alikes (0/o, 1/l/i).
const BACKUP_ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";

/// A backup code: 10 characters from a 31-letter alphabet (≈ 49.5 bits), shown as
/// `xxxxx-xxxxx`.
pub fn random_backup_code() -> String {
    let mut rng = rand::rngs::OsRng;
    let mut code = String::with_capacity(11);
    for index in 0..10 {
        if index == 5 {
            code.push('-');
        }
        let pick = rng.gen_range(0..BACKUP_ALPHABET.len());
        code.push(char::from(BACKUP_ALPHABET[pick]));
    }
    code
}

/// The canonical form of a typed backup code: lowercase, without spaces or dashes.
pub fn normalize_backup_code(typed: &str) -> String {
    typed
        .chars()
        .filter(|character| !character.is_whitespace() && *character != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B, SHA-1 secret "12345678901234567890", truncated to 6 digits.
    #[test]
    fn rfc_6238_vectors() {
        let secret = TotpSecret::from_bytes(b"12345678901234567890".to_vec()).unwrap();
        let cases = [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_111_111_111, "050471"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
            (20_000_000_000, "353130"),
        ];
        for (time, code) in cases {
            assert_eq!(secret.code_at(time).unwrap(), code, "t={time}");
            assert_eq!(secret.matching_step(code, time).unwrap(), Some(time / 30));
        }
    }

    #[test]
    fn window_is_one_step_each_way() {
        let secret = TotpSecret::generate();
        let now = 1_700_000_000;
        let code = secret.code_at(now).unwrap();
        assert_eq!(secret.matching_step(&code, now + 30).unwrap(), Some(now / 30));
        assert_eq!(secret.matching_step(&code, now - 30).unwrap(), Some(now / 30));
        assert_eq!(secret.matching_step(&code, now + 90).unwrap(), None);
        assert_eq!(secret.matching_step("12345", now).unwrap(), None);
        assert_eq!(secret.matching_step("abcdef", now).unwrap(), None);
    }

    #[test]
    fn base32_round_trip_and_uri() {
        let secret = TotpSecret::generate();
        assert_eq!(secret.as_bytes().len(), TOTP_SECRET_BYTES);
        let again = TotpSecret::from_base32(&secret.to_base32()).unwrap();
        assert_eq!(again.as_bytes(), secret.as_bytes());
        let uri = secret.otpauth_uri("Acme ID", "ada@example.com").unwrap();
        assert!(uri.starts_with("otpauth://totp/"), "{uri}");
        assert!(uri.contains(&secret.to_base32()), "{uri}");
        assert!(uri.contains("issuer=Acme"), "{uri}");
        assert!(TotpSecret::from_bytes(vec![1; 8]).is_err());
        assert_eq!(format!("{secret:?}"), "TotpSecret(..)");
    }

    #[test]
    fn random_codes() {
        let code = random_digits(6);
        assert_eq!(code.len(), 6);
        assert!(code.bytes().all(|byte| byte.is_ascii_digit()));
        let backup = random_backup_code();
        assert_eq!(backup.len(), 11);
        assert_eq!(normalize_backup_code(&backup.to_uppercase()).len(), 10);
        assert_ne!(random_backup_code(), random_backup_code());
    }
}
