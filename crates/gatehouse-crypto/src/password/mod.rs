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

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{ARGON2ID_IDENT, Algorithm, Argon2, Block, KeyId, Params, ParamsBuilder, Version};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

pub use legacy::LegacyFormat;
pub use pool::HashingPool;

use crate::digest::hmac_sha256;
use crate::token::{constant_time_eq, random_bytes, random_token};
use crate::{CryptoError, DataKey, MasterKey};

/// Argon2 output length in bytes; fixed so that `needs_rehash` can compare it.
const OUTPUT_BYTES: usize = 32;
/// Salt length in bytes (the PHC recommendation is at least 16).
const SALT_BYTES: usize = 16;
/// The longest salt a PHC string can carry (`password_hash::Salt::MAX_LENGTH`), decoded.
const MAX_PHC_SALT_BYTES: usize = 64;

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

    /// The pepper with this id, keyed by a data key of the key hierarchy (the data key of
    /// `password-pepper` version `id`).
    pub fn from_data_key(id: u8, key: &DataKey) -> Pepper {
        Pepper { id, key: key.bytes().clone() }
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
        self.hash_in(password, None)
    }

    /// [`PasswordHasher::hash`], computing in `memory` when given (see [`Argon2Memory`]).
    fn hash_in(
        &self,
        password: &[u8],
        memory: Option<&mut Argon2Memory>,
    ) -> Result<String, CryptoError> {
        let input = self.peppered(&self.current_pepper, password)?;
        self.hash_peppered(input.as_ref(), &random_bytes::<SALT_BYTES>(), memory)
    }

    /// The PHC string of Argon2id over the (already peppered) `input` with `salt`. Formatted
    /// here rather than by `argon2`'s `PasswordHasher::hash_password`, which cannot be given
    /// memory; the string is the same one that makes (a test compares them).
    fn hash_peppered(
        &self,
        input: &[u8],
        salt: &[u8],
        memory: Option<&mut Argon2Memory>,
    ) -> Result<String, CryptoError> {
        let internal =
            |what: &str, e: &dyn fmt::Display| CryptoError::Internal(format!("{what}: {e}"));
        let salt_string = SaltString::encode_b64(salt).map_err(|e| internal("salt", &e))?;
        let mut output = [0u8; OUTPUT_BYTES];
        self.compute(self.params.clone(), Version::V0x13, input, salt, &mut output, memory)
            .map_err(|e| internal("argon2", &e))?;
        let phc = PasswordHash {
            algorithm: ARGON2ID_IDENT,
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&self.params).map_err(|e| internal("argon2", &e))?,
            salt: Some(salt_string.as_salt()),
            hash: Some(Output::new(&output).map_err(|e| internal("argon2", &e))?),
        };
        Ok(phc.to_string())
    }

    /// Whether `password` matches `phc`: `Ok(false)` for a wrong password,
    /// `Err(InvalidHash)` for a hash we cannot parse or whose pepper we no longer have.
    /// The hash's own parameters are used, so hashes made under older settings still verify.
    /// A hash imported from another system ([`legacy::detect`] recognises it) is verified
    /// without pepper by [`legacy::verify_legacy`]; anything else unknown is `InvalidHash`.
    pub fn verify(&self, password: &[u8], phc: &str) -> Result<bool, CryptoError> {
        self.verify_in(password, phc, None)
    }

    /// [`PasswordHasher::verify`], computing in `memory` when given (see [`Argon2Memory`]).
    fn verify_in(
        &self,
        password: &[u8],
        phc: &str,
        memory: Option<&mut Argon2Memory>,
    ) -> Result<bool, CryptoError> {
        if legacy::detect(phc).is_some() {
            // Other algorithms and foreign parameters: their own allocating verifiers.
            return legacy::verify_legacy(password, phc);
        }
        let hash = PasswordHash::new(phc).map_err(|_| CryptoError::InvalidHash)?;
        if hash.algorithm != ARGON2ID_IDENT {
            return Err(CryptoError::InvalidHash);
        }
        // The version and parameters (output length included) recorded in the hash, as
        // `argon2`'s own `verify_password` takes them; a missing version means 0x13.
        let params = Params::try_from(&hash).map_err(|_| CryptoError::InvalidHash)?;
        let version = hash
            .version
            .map(Version::try_from)
            .transpose()
            .map_err(|_| CryptoError::InvalidHash)?
            .unwrap_or_default();
        let pepper = self.pepper_for(params.keyid()).ok_or(CryptoError::InvalidHash)?;
        let input = self.peppered(pepper, password)?;
        let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else {
            // What `verify_password` answers for a hash without salt or output.
            return Ok(false);
        };
        let mut salt_buf = [0u8; MAX_PHC_SALT_BYTES];
        let salt = salt.decode_b64(&mut salt_buf).map_err(|_| CryptoError::InvalidHash)?;
        let mut computed = [0u8; Output::MAX_LENGTH];
        let computed = computed.get_mut(..expected.len()).ok_or(CryptoError::InvalidHash)?;
        self.compute(params, version, input.as_ref(), salt, computed, memory)
            .map_err(|_| CryptoError::InvalidHash)?;
        Ok(constant_time_eq(computed, expected.as_bytes()))
    }

    /// Argon2id with `params` and `version` into `out`. In `memory` when it is given and the
    /// parameters need no more blocks than the configured ones (so a worker's memory never
    /// grows past `m_cost`); otherwise in a buffer allocated for this computation, as
    /// `Argon2::hash_password_into` does.
    fn compute(
        &self,
        params: Params,
        version: Version,
        input: &[u8],
        salt: &[u8],
        out: &mut [u8],
        memory: Option<&mut Argon2Memory>,
    ) -> Result<(), argon2::Error> {
        let configured_blocks = self.params.block_count();
        let argon2 = Argon2::new(Algorithm::Argon2id, version, params);
        match memory {
            Some(memory) if argon2.params().block_count() <= configured_blocks => {
                let blocks = memory.blocks(configured_blocks);
                argon2.hash_password_into_with_memory(input, salt, out, blocks)
            }
            _ => argon2.hash_password_into(input, salt, out),
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
        self.dummy_verify_in(password, None);
    }

    /// [`PasswordHasher::dummy_verify`] in `memory`: the pool passes the same memory as to a
    /// real `verify`, so both take the same path and the same time.
    fn dummy_verify_in(&self, password: &[u8], mut memory: Option<&mut Argon2Memory>) {
        let dummy = self.dummy_hash_in(memory.as_deref_mut());
        // The outcome is meaningless by design; only the time spent matters.
        let _ = self.verify_in(password, dummy, memory);
    }

    /// Makes the dummy hash now (blocking), so the first unknown-account sign-in is not slower
    /// than the others. Run it off the async runtime after start-up.
    pub fn warm_up(&self) {
        let _ = self.dummy_hash();
    }

    fn dummy_hash(&self) -> &str {
        self.dummy_hash_in(None)
    }

    fn dummy_hash_in(&self, memory: Option<&mut Argon2Memory>) -> &str {
        // Settings were validated in `new`, so hashing cannot fail for a parameter reason; if
        // it ever did, an empty string makes `verify` fail fast — still no panic.
        self.dummy_hash
            .get_or_init(|| self.hash_in(random_token().as_bytes(), memory).unwrap_or_default())
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

/// Argon2 working memory kept between computations by one [`HashingPool`] worker, so that
/// each worker allocates (and the kernel faults in) `m_cost` once for the life of the process,
/// instead of a fresh buffer per hash that glibc may keep in a per-thread arena afterwards.
///
/// Empty until first used. Between computations it holds the last one's blocks, derived from
/// the peppered input: `argon2` 0.5 never wiped them in its own buffers either (it only drops
/// them); they are wiped when the worker exits.
#[derive(Default)]
struct Argon2Memory {
    blocks: Vec<Block>,
}

impl Argon2Memory {
    /// At least `count` blocks, allocated at the first call that needs more than there are.
    fn blocks(&mut self, count: usize) -> &mut [Block] {
        if self.blocks.len() < count {
            // Free the old buffer before allocating the new one, so both never exist at once.
            self.wipe();
            self.blocks = Vec::new();
            self.blocks.resize(count, Block::new());
        }
        &mut self.blocks
    }

    fn wipe(&mut self) {
        self.blocks.iter_mut().for_each(Zeroize::zeroize);
    }
}

impl Drop for Argon2Memory {
    fn drop(&mut self) {
        self.wipe();
    }
}

#[cfg(test)]
mod tests;
