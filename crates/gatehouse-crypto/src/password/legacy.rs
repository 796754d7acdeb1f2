//! Password hashes imported from other systems ("legacy" formats): recognising them, checking
//! them at import, and verifying them until the next successful sign-in replaces them.
//!
//! Formats: bcrypt (`$2a$`, `$2b$`, `$2y$`), scrypt and PBKDF2-SHA256/-SHA512 PHC strings,
//! Django's `pbkdf2_sha256$<iterations>$<salt>$<base64 hash>`, and Argon2 PHC strings without a
//! `keyid` (ours always carry the pepper id there, so a missing one means another system made
//! it). They were made without our pepper, so they are verified without it, and a dump of the
//! database exposes them to offline guessing exactly as much as the system they came from did.
//! That is why [`crate::PasswordHasher::needs_rehash`] is true for every one of them: the
//! account service replaces the hash with a peppered Argon2id at the first successful sign-in.
//! Nothing in Gatehouse produces these formats.
//!
//! Invariant: a hash verifies only if [`validate_import`] accepts it, so the cost bounds also
//! hold for a hash that reached the database some other way than the import.
//!
//! Known limit: until it is re-hashed, a legacy account's verification takes its own
//! algorithm's time, not the time of `dummy_verify`, so timing can tell such an account apart
//! from an unknown one. It lasts only until the user's next sign-in.

use std::fmt;

use argon2::Argon2;
use argon2::password_hash::{self, PasswordHash, PasswordVerifier};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use pbkdf2::Pbkdf2;
use scrypt::Scrypt;
use sha2::Sha256;

use crate::{CryptoError, PasswordHasher, constant_time_eq};

/// A password hash format made by another system that [`verify_legacy`] can check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegacyFormat {
    /// bcrypt in modular crypt form: `$2a$`, `$2b$` or `$2y$`, a two-digit cost, then 53
    /// characters of salt and hash. Only the first 72 bytes of a password count.
    Bcrypt,
    /// `$scrypt$ln=<log2 N>,r=<block size>,p=<parallelism>$<salt>$<hash>`.
    Scrypt,
    /// `$pbkdf2-sha256$i=<iterations>,l=<hash bytes>$<salt>$<hash>`.
    Pbkdf2Sha256,
    /// `$pbkdf2-sha512$i=<iterations>,l=<hash bytes>$<salt>$<hash>`.
    Pbkdf2Sha512,
    /// Django's `pbkdf2_sha256$<iterations>$<salt>$<base64 of the 32-byte hash>`, where the
    /// salt is used as its UTF-8 bytes.
    DjangoPbkdf2Sha256,
    /// `$argon2id$`, `$argon2i$` or `$argon2d$` without a `keyid` parameter.
    ForeignArgon2,
}

impl fmt::Display for LegacyFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LegacyFormat::Bcrypt => "bcrypt",
            LegacyFormat::Scrypt => "scrypt",
            LegacyFormat::Pbkdf2Sha256 => "pbkdf2-sha256",
            LegacyFormat::Pbkdf2Sha512 => "pbkdf2-sha512",
            LegacyFormat::DjangoPbkdf2Sha256 => "django pbkdf2_sha256",
            LegacyFormat::ForeignArgon2 => "argon2 (foreign)",
        })
    }
}

// Cost bounds. The lower bounds refuse hashes too weak to be worth keeping even for a while;
// the upper ones keep a single verification to a few seconds and at most ~2 GiB, because it
// runs on the shared hashing pool at every sign-in attempt for that account.

/// bcrypt's cost is log2 of its rounds; 16 is ~16× the common default 12 (~4 s here). The
/// `bcrypt` crate itself accepts up to 31, which would take more than a day.
const BCRYPT_COSTS: std::ops::RangeInclusive<u32> = 4..=16;
/// scrypt's N is 2^ln; 2^20 with r = 8 is 1 GiB of memory.
const SCRYPT_MAX_LOG_N: u8 = 20;
/// Bounds N·r·p, which sets both time and (with p = 1) memory: 2^23 is ln = 20, r = 8, p = 1.
const SCRYPT_MAX_WORK: u128 = 1 << 23;
/// PBKDF2 (PHC and Django): below 1,000 iterations is little better than a plain digest.
const PBKDF2_ITERATIONS: std::ops::RangeInclusive<u32> = 1_000..=10_000_000;
/// Argon2 memory in KiB: 2 GiB, RFC 9106's largest recommended setting.
const ARGON2_MAX_MEMORY_KIB: u32 = 2 * 1024 * 1024;
/// Argon2 memory × passes in KiB, so a small memory cannot be traded for endless passes.
const ARGON2_MAX_WORK_KIB: u64 = 4 * 1024 * 1024;
/// Salt buffer for PHC strings; every RustCrypto hasher decodes the salt into this size.
const PHC_SALT_BYTES_MAX: usize = 64;

const BCRYPT_PREFIXES: [&str; 3] = ["$2a$", "$2b$", "$2y$"];
const DJANGO_PBKDF2_SHA256: &str = "pbkdf2_sha256";
/// Django's PBKDF2-SHA256 output is the digest size.
const DJANGO_HASH_BYTES: usize = 32;

/// The legacy format of `hash`, recognised by its prefix or PHC algorithm identifier only.
/// `None` for our own peppered Argon2id (it has a `keyid`), for other Argon2 strings with a
/// `keyid`, for PHC strings that do not parse, and for anything unknown.
pub fn detect(hash: &str) -> Option<LegacyFormat> {
    if BCRYPT_PREFIXES.iter().any(|prefix| hash.starts_with(prefix)) {
        return Some(LegacyFormat::Bcrypt);
    }
    if hash.strip_prefix(DJANGO_PBKDF2_SHA256).is_some_and(|rest| rest.starts_with('$')) {
        return Some(LegacyFormat::DjangoPbkdf2Sha256);
    }
    let parsed = PasswordHash::new(hash).ok()?;
    match parsed.algorithm.as_str() {
        "scrypt" => Some(LegacyFormat::Scrypt),
        "pbkdf2-sha256" => Some(LegacyFormat::Pbkdf2Sha256),
        "pbkdf2-sha512" => Some(LegacyFormat::Pbkdf2Sha512),
        "argon2id" | "argon2i" | "argon2d" if parsed.params.get("keyid").is_none() => {
            Some(LegacyFormat::ForeignArgon2)
        }
        _ => None,
    }
}

/// Checks that an imported hash is well-formed and within the cost bounds, and returns its
/// format. Call it before storing an imported hash, so an import cannot plant a hash that
/// takes minutes or gigabytes to verify.
///
/// Bounds: bcrypt cost 4..=16; scrypt ln ≤ 20 and N·r·p ≤ 2^23; PBKDF2 (PHC and Django)
/// 1,000..=10,000,000 iterations; Argon2 m ≤ 2 GiB and m·t ≤ 4 GiB. PHC strings must state
/// their cost parameters (`ln`, `r`, `p` / `i` / `m`, `t`, `p`): libraries disagree on the
/// defaults, so a missing one cannot be guessed.
///
/// Errors: `InvalidHash` for an unknown or malformed hash, `InvalidSettings` (saying which
/// bound) for a well-formed hash whose cost is out of bounds.
pub fn validate_import(hash: &str) -> Result<LegacyFormat, CryptoError> {
    parse(hash).map(|parsed| parsed.format())
}

/// Whether `password` matches the legacy `hash`, computed without pepper by the hash's own
/// algorithm and parameters, compared in constant time. `Ok(false)` for a wrong password;
/// `Err(InvalidHash)` for a hash that is not a legacy format, is malformed, or is out of the
/// [`validate_import`] bounds; `Err(PasswordTooLong)` above
/// [`PasswordHasher::MAX_PASSWORD_BYTES`], as for our own hashes.
///
/// bcrypt uses only the first 72 bytes of a password: longer passwords that share those 72
/// bytes all verify, as they did in the system the hash came from. The hash is replaced at
/// this sign-in, after which the whole password counts.
pub fn verify_legacy(password: &[u8], hash: &str) -> Result<bool, CryptoError> {
    if password.len() > PasswordHasher::MAX_PASSWORD_BYTES {
        return Err(CryptoError::PasswordTooLong);
    }
    // At sign-in an out-of-bounds cost is just an unusable hash, like a malformed one.
    let parsed = parse(hash).map_err(|_| CryptoError::InvalidHash)?;
    match parsed {
        // `bcrypt::verify` (not `non_truncating_verify`) because the hashes were made by
        // systems that truncated at 72 bytes; refusing longer passwords would lock out users
        // whose password was always longer.
        Parsed::Bcrypt => bcrypt::verify(password, hash).map_err(|_| CryptoError::InvalidHash),
        Parsed::Django(django) => Ok(django.verify(password)),
        Parsed::Phc(LegacyFormat::Scrypt, phc) => verify_phc(&Scrypt, password, &phc),
        Parsed::Phc(LegacyFormat::ForeignArgon2, phc) => {
            // `Argon2::default()` only supplies "no secret": the algorithm, version and
            // parameters are taken from the hash.
            verify_phc(&Argon2::default(), password, &phc)
        }
        Parsed::Phc(_, phc) => verify_phc(&Pbkdf2, password, &phc),
    }
}

/// A legacy hash that passed the format and bounds checks.
enum Parsed<'a> {
    Bcrypt,
    Django(DjangoHash<'a>),
    /// Scrypt, PBKDF2 or foreign Argon2 (the format says which).
    Phc(LegacyFormat, PasswordHash<'a>),
}

impl Parsed<'_> {
    fn format(&self) -> LegacyFormat {
        match self {
            Parsed::Bcrypt => LegacyFormat::Bcrypt,
            Parsed::Django(_) => LegacyFormat::DjangoPbkdf2Sha256,
            Parsed::Phc(format, _) => *format,
        }
    }
}

fn parse(hash: &str) -> Result<Parsed<'_>, CryptoError> {
    let format = detect(hash).ok_or(CryptoError::InvalidHash)?;
    match format {
        LegacyFormat::Bcrypt => {
            check_bcrypt(hash)?;
            Ok(Parsed::Bcrypt)
        }
        LegacyFormat::DjangoPbkdf2Sha256 => DjangoHash::parse(hash).map(Parsed::Django),
        LegacyFormat::Scrypt
        | LegacyFormat::Pbkdf2Sha256
        | LegacyFormat::Pbkdf2Sha512
        | LegacyFormat::ForeignArgon2 => {
            let phc = PasswordHash::new(hash).map_err(|_| CryptoError::InvalidHash)?;
            check_salt_and_output(&phc)?;
            match format {
                LegacyFormat::Scrypt => check_scrypt(&phc)?,
                LegacyFormat::ForeignArgon2 => check_argon2(&phc)?,
                _ => check_pbkdf2(&phc)?,
            }
            Ok(Parsed::Phc(format, phc))
        }
    }
}

fn check_bcrypt(hash: &str) -> Result<(), CryptoError> {
    // The crate's own parser: exactly 60 ASCII characters, base64 salt and hash.
    let parts: bcrypt::HashParts = hash.parse().map_err(|_| CryptoError::InvalidHash)?;
    let cost = parts.get_cost();
    if !BCRYPT_COSTS.contains(&cost) {
        return Err(out_of_bounds(format!(
            "bcrypt cost {cost} is outside {}..={}",
            BCRYPT_COSTS.start(),
            BCRYPT_COSTS.end()
        )));
    }
    Ok(())
}

fn check_scrypt(phc: &PasswordHash<'_>) -> Result<(), CryptoError> {
    require_params(phc, &["ln", "r", "p"])?;
    // Also checks the scrypt crate's own constraints (r·p < 2^30, output 10..=64 bytes).
    let params = scrypt::Params::try_from(phc).map_err(|_| CryptoError::InvalidHash)?;
    let (log_n, r, p) = (params.log_n(), params.r(), params.p());
    if log_n > SCRYPT_MAX_LOG_N {
        return Err(out_of_bounds(format!("scrypt ln {log_n} is above {SCRYPT_MAX_LOG_N}")));
    }
    let work = (1u128 << log_n) * u128::from(r) * u128::from(p);
    if work > SCRYPT_MAX_WORK {
        return Err(out_of_bounds(format!(
            "scrypt N·r·p = {work} is above {SCRYPT_MAX_WORK} (ln={log_n}, r={r}, p={p})"
        )));
    }
    Ok(())
}

fn check_pbkdf2(phc: &PasswordHash<'_>) -> Result<(), CryptoError> {
    require_params(phc, &["i"])?;
    let params = pbkdf2::Params::try_from(phc).map_err(|_| CryptoError::InvalidHash)?;
    // Without `l`, the crate assumes 32 bytes and a longer or shorter stored hash would
    // just never match: refuse it here instead of failing every sign-in.
    if phc.hash.map(|output| output.len()) != Some(params.output_length) {
        return Err(CryptoError::InvalidHash);
    }
    check_pbkdf2_iterations(params.rounds)
}

fn check_pbkdf2_iterations(iterations: u32) -> Result<(), CryptoError> {
    if !PBKDF2_ITERATIONS.contains(&iterations) {
        return Err(out_of_bounds(format!(
            "pbkdf2 iterations {iterations} are outside {}..={}",
            PBKDF2_ITERATIONS.start(),
            PBKDF2_ITERATIONS.end()
        )));
    }
    Ok(())
}

fn check_argon2(phc: &PasswordHash<'_>) -> Result<(), CryptoError> {
    require_params(phc, &["m", "t", "p"])?;
    if let Some(version) = phc.version {
        argon2::Version::try_from(version).map_err(|_| CryptoError::InvalidHash)?;
    }
    // Also checks Argon2's own constraints (m ≥ 8·p, output length, `data` size).
    let params = argon2::Params::try_from(phc).map_err(|_| CryptoError::InvalidHash)?;
    let (memory_kib, passes) = (params.m_cost(), params.t_cost());
    if memory_kib > ARGON2_MAX_MEMORY_KIB {
        return Err(out_of_bounds(format!(
            "argon2 memory {memory_kib} KiB is above {ARGON2_MAX_MEMORY_KIB} KiB"
        )));
    }
    if u64::from(memory_kib) * u64::from(passes) > ARGON2_MAX_WORK_KIB {
        return Err(out_of_bounds(format!(
            "argon2 memory × passes = {memory_kib} KiB × {passes} is above {ARGON2_MAX_WORK_KIB} KiB"
        )));
    }
    Ok(())
}

/// The RustCrypto verifiers treat a PHC string without salt or hash as a wrong password;
/// for a stored hash it means the string is broken, so say so.
fn check_salt_and_output(phc: &PasswordHash<'_>) -> Result<(), CryptoError> {
    let salt = phc.salt.ok_or(CryptoError::InvalidHash)?;
    salt.decode_b64(&mut [0u8; PHC_SALT_BYTES_MAX]).map_err(|_| CryptoError::InvalidHash)?;
    if phc.hash.is_none() {
        return Err(CryptoError::InvalidHash);
    }
    Ok(())
}

fn require_params(phc: &PasswordHash<'_>, names: &[&str]) -> Result<(), CryptoError> {
    if names.iter().all(|name| phc.params.get(*name).is_some()) {
        Ok(())
    } else {
        Err(CryptoError::InvalidHash)
    }
}

fn out_of_bounds(reason: String) -> CryptoError {
    CryptoError::InvalidSettings(format!("imported password hash: {reason}"))
}

fn verify_phc(
    verifier: &impl PasswordVerifier,
    password: &[u8],
    phc: &PasswordHash<'_>,
) -> Result<bool, CryptoError> {
    // The verifier recomputes with the parameters and salt recorded in `phc` and compares
    // the outputs in constant time.
    match verifier.verify_password(password, phc) {
        Ok(()) => Ok(true),
        Err(password_hash::Error::Password) => Ok(false),
        Err(_) => Err(CryptoError::InvalidHash),
    }
}

/// Django's `pbkdf2_sha256$<iterations>$<salt>$<base64 hash>`, parsed.
struct DjangoHash<'a> {
    iterations: u32,
    salt: &'a str,
    expected: [u8; DJANGO_HASH_BYTES],
}

impl<'a> DjangoHash<'a> {
    fn parse(hash: &'a str) -> Result<DjangoHash<'a>, CryptoError> {
        let fields: Vec<&str> = hash.split('$').collect();
        let [DJANGO_PBKDF2_SHA256, iterations, salt, encoded] = fields.as_slice() else {
            return Err(CryptoError::InvalidHash);
        };
        // Digits only: `u32::from_str` would also take a leading `+`, which Django never writes.
        if iterations.is_empty() || !iterations.bytes().all(|byte| byte.is_ascii_digit()) {
            return Err(CryptoError::InvalidHash);
        }
        let iterations: u32 = iterations.parse().map_err(|_| CryptoError::InvalidHash)?;
        if salt.is_empty() {
            return Err(CryptoError::InvalidHash);
        }
        // Django writes `base64.b64encode`: standard alphabet, with padding.
        let decoded = STANDARD.decode(encoded).map_err(|_| CryptoError::InvalidHash)?;
        let expected: [u8; DJANGO_HASH_BYTES] =
            decoded.try_into().map_err(|_| CryptoError::InvalidHash)?;
        check_pbkdf2_iterations(iterations)?;
        Ok(DjangoHash { iterations, salt, expected })
    }

    fn verify(&self, password: &[u8]) -> bool {
        let mut computed = [0u8; DJANGO_HASH_BYTES];
        pbkdf2::pbkdf2_hmac::<Sha256>(
            password,
            self.salt.as_bytes(),
            self.iterations,
            &mut computed,
        );
        constant_time_eq(&computed, &self.expected)
    }
}

#[cfg(test)]
mod tests;
