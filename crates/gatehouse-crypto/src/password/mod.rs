//! Password hashing: Argon2id over an HMAC of the password with a secret pepper, in PHC strings.
//!
//! A stored hash is `$argon2id$v=19$m=<kib>,t=<iterations>,p=<lanes>,keyid=<pepper id>$<salt>$<hash>`.
//! The Argon2id input is not the password but HMAC-SHA256(pepper key, password): a database
//! dump alone (without the master key the pepper is derived from) does not allow offline
//! guessing, and every input has the same 32-byte length. The pepper id goes into Argon2's
//! standard `keyid` parameter, which PHC encodes as unpadded base64 of its bytes (id 1 is
//! `keyid=AQ`); the hash stays a valid Argon2 PHC string that any Argon2 library can parse.
//!
//! Hashes imported from other systems (bcrypt, scrypt, PBKDF2, Django, Argon2 without
//! `keyid`) also verify, unpeppered, until the next successful sign-in replaces them: see
//! [`legacy`].

pub mod legacy;
mod pool;

use std::fmt;

use argon2::password_hash::{self, PasswordHash, SaltString};
use argon2::{ARGON2ID_IDENT, Algorithm, Argon2, KeyId, Params, ParamsBuilder, Version};
use argon2::{PasswordHasher as _, PasswordVerifier as _};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

pub use legacy::LegacyFormat;
pub use pool::HashingPool;

use crate::digest::hmac_sha256;
use crate::token::{random_bytes, random_token};
use crate::{CryptoError, MasterKey};

/// Argon2 output length in bytes; fixed so that `needs_rehash` can compare it.
const OUTPUT_BYTES: usize = 32;
/// Salt length in bytes (the PHC recommendation is at least 16).
const SALT_BYTES: usize = 16;

/// Argon2id cost parameters. The defaults (64 MiB, 3 passes, 4 lanes) follow RFC 9106's
/// second recommended option for memory-constrained settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Argon2Settings {
    /// Memory per hash in KiB.
    pub memory_kib: u32,
    /// Number of passes over the memory.
    pub iterations: u32,
    /// Number of lanes.
    pub parallelism: u32,
}

impl Default for Argon2Settings {
    fn default() -> Self {
        Argon2Settings { memory_kib: 65536, iterations: 3, parallelism: 4 }
    }
}

/// A secret key mixed into every password hash, identified by a small number so that it can
/// be rotated: new hashes use the current pepper, old ones still verify with a previous one.
#[derive(Clone)]
pub struct Pepper {
    id: u8,
    key: Zeroizing<[u8; 32]>,
}

impl Pepper {
    /// The pepper with this id, derived as `master.derive("password-pepper/<id>")`.
    pub fn from_master(master: &MasterKey, id: u8) -> Pepper {
        Pepper { id, key: master.derive(&format!("password-pepper/{id}")) }
    }

    /// The id recorded in the hashes made with this pepper.
    pub fn id(&self) -> u8 {
        self.id
    }
}

impl fmt::Debug for Pepper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pepper(id: {}, key: [redacted])", self.id)
    }
}

/// Hashes and verifies passwords. CPU- and memory-heavy: call it through [`HashingPool`]
/// from async code.
pub struct PasswordHasher {
    settings: Argon2Settings,
    /// Validated Argon2 parameters, with the current pepper's id as `keyid`.
    params: Params,
    current_pepper: Pepper,
    previous_peppers: Vec<Pepper>,
    /// A real hash of a random password, verified against by `dummy_verify`. Made on first
    /// use (or by [`PasswordHasher::warm_up`]) rather than in `new`, so start-up does not pay
    /// for a full Argon2id computation.
    dummy_hash: std::sync::OnceLock<String>,
}

impl PasswordHasher {
    /// Longer passwords are refused before any hashing. HMAC makes the Argon2 cost
    /// independent of length, but this still bounds the work and memory a request can ask for.
    pub const MAX_PASSWORD_BYTES: usize = 4096;

    /// A hasher with these settings, hashing with `current_pepper` and still verifying
    /// hashes made with `previous_peppers`. Cheap: the dummy hash is made later.
    pub fn new(
        settings: Argon2Settings,
        current_pepper: Pepper,
        previous_peppers: Vec<Pepper>,
    ) -> Result<PasswordHasher, CryptoError> {
        if previous_peppers.iter().any(|p| p.id == current_pepper.id) {
            return Err(CryptoError::InvalidSettings(format!(
                "pepper id {} is both current and previous",
                current_pepper.id
            )));
        }
        let keyid = KeyId::new(&[current_pepper.id])
            .map_err(|e| CryptoError::InvalidSettings(e.to_string()))?;
        let params = ParamsBuilder::new()
            .m_cost(settings.memory_kib)
            .t_cost(settings.iterations)
            .p_cost(settings.parallelism)
            .output_len(OUTPUT_BYTES)
            .keyid(keyid)
            .build()
            .map_err(|e| CryptoError::InvalidSettings(format!("argon2: {e}")))?;
        Ok(PasswordHasher {
            settings,
            params,
            current_pepper,
            previous_peppers,
            dummy_hash: std::sync::OnceLock::new(),
        })
    }

    /// A PHC string for `password`, with a fresh 16-byte random salt.
    pub fn hash(&self, password: &[u8]) -> Result<String, CryptoError> {
        let input = self.peppered(&self.current_pepper, password)?;
        let salt = SaltString::encode_b64(&random_bytes::<SALT_BYTES>())
            .map_err(|e| CryptoError::Internal(format!("salt: {e}")))?;
        let hash = argon2id(self.params.clone())
            .hash_password(input.as_ref(), &salt)
            .map_err(|e| CryptoError::Internal(format!("argon2: {e}")))?;
        Ok(hash.to_string())
    }

    /// Whether `password` matches `phc`: `Ok(false)` for a wrong password,
    /// `Err(InvalidHash)` for a hash we cannot parse or whose pepper we no longer have.
    /// The hash's own parameters are used, so hashes made under older settings still verify.
    /// A hash imported from another system ([`legacy::detect`] recognises it) is verified
    /// without pepper by [`legacy::verify_legacy`]; anything else unknown is `InvalidHash`.
    pub fn verify(&self, password: &[u8], phc: &str) -> Result<bool, CryptoError> {
        if legacy::detect(phc).is_some() {
            return legacy::verify_legacy(password, phc);
        }
        let hash = PasswordHash::new(phc).map_err(|_| CryptoError::InvalidHash)?;
        if hash.algorithm != ARGON2ID_IDENT {
            return Err(CryptoError::InvalidHash);
        }
        let params = Params::try_from(&hash).map_err(|_| CryptoError::InvalidHash)?;
        let pepper = self.pepper_for(params.keyid()).ok_or(CryptoError::InvalidHash)?;
        let input = self.peppered(pepper, password)?;
        // `verify_password` recomputes with the algorithm, version and parameters recorded
        // in `hash` and compares the outputs in constant time.
        match argon2id(params).verify_password(input.as_ref(), &hash) {
            Ok(()) => Ok(true),
            Err(password_hash::Error::Password) => Ok(false),
            Err(_) => Err(CryptoError::InvalidHash),
        }
    }

    /// Whether `phc` should be replaced by a fresh hash at the next successful sign-in:
    /// its parameters or pepper differ from the current ones, it does not parse, or it is a
    /// legacy hash imported from another system (always: those carry no pepper).
    pub fn needs_rehash(&self, phc: &str) -> bool {
        if legacy::detect(phc).is_some() {
            return true;
        }
        let Ok(hash) = PasswordHash::new(phc) else {
            return true;
        };
        let Ok(params) = Params::try_from(&hash) else {
            return true;
        };
        hash.algorithm != ARGON2ID_IDENT
            || hash.version != Some(Version::V0x13.into())
            || params.m_cost() != self.settings.memory_kib
            || params.t_cost() != self.settings.iterations
            || params.p_cost() != self.settings.parallelism
            || params.keyid() != [self.current_pepper.id]
            || hash.hash.map(|output| output.len()) != Some(OUTPUT_BYTES)
    }

    /// Spends the time of a real verification and discards the result. Call it when the
    /// account does not exist, so response time does not reveal which accounts exist.
    pub fn dummy_verify(&self, password: &[u8]) {
        // The outcome is meaningless by design; only the time spent matters.
        let _ = self.verify(password, self.dummy_hash());
    }

    /// Makes the dummy hash now (blocking), so the first unknown-account sign-in is not slower
    /// than the others. Run it off the async runtime after start-up.
    pub fn warm_up(&self) {
        let _ = self.dummy_hash();
    }

    fn dummy_hash(&self) -> &str {
        // Settings were validated in `new`, so hashing cannot fail for a parameter reason; if
        // it ever did, an empty string makes `verify` fail fast — still no panic.
        self.dummy_hash.get_or_init(|| self.hash(random_token().as_bytes()).unwrap_or_default())
    }

    /// The settings new hashes are made with.
    pub fn settings(&self) -> &Argon2Settings {
        &self.settings
    }

    fn pepper_for(&self, keyid: &[u8]) -> Option<&Pepper> {
        let [id] = keyid else {
            return None;
        };
        std::iter::once(&self.current_pepper)
            .chain(&self.previous_peppers)
            .find(|pepper| pepper.id == *id)
    }

    fn peppered(
        &self,
        pepper: &Pepper,
        password: &[u8],
    ) -> Result<Zeroizing<[u8; 32]>, CryptoError> {
        if password.len() > Self::MAX_PASSWORD_BYTES {
            return Err(CryptoError::PasswordTooLong);
        }
        Ok(Zeroizing::new(hmac_sha256(&pepper.key, password)))
    }
}

impl fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("settings", &self.settings)
            .field("current_pepper", &self.current_pepper)
            .field("previous_peppers", &self.previous_peppers)
            .finish_non_exhaustive()
    }
}

fn argon2id(params: Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

#[cfg(test)]
mod tests;
