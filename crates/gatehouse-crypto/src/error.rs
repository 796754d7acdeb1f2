//! The one error type of the crypto layer; its messages never carry secret material.

/// Everything that can go wrong in `gatehouse-crypto`.
///
/// Messages describe what kind of input was wrong, never the input itself, so they are safe to
/// log: a key, a password or a plaintext never ends up in a `Display` string.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// Key material had the wrong length, encoding or type.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// Hashing or key settings were out of range (for example Argon2 parameters).
    #[error("invalid settings: {0}")]
    InvalidSettings(String),
    /// A sealed value could not be opened: wrong key, wrong associated data, or tampering.
    /// Deliberately a single variant so that callers cannot become a decryption oracle.
    #[error("decryption failed")]
    Decrypt,
    /// The password exceeds [`crate::PasswordHasher::MAX_PASSWORD_BYTES`].
    #[error("password too long")]
    PasswordTooLong,
    /// A stored password hash could not be parsed, or names a pepper we do not have.
    #[error("invalid password hash")]
    InvalidHash,
    /// Producing a signature failed.
    #[error("signing failed: {0}")]
    Signing(String),
    /// A token's signature, header or claims did not verify.
    #[error("token verification failed: {0}")]
    Verification(String),
    /// The token verified but its `exp` is in the past (kept apart so callers can say so).
    #[error("token expired")]
    TokenExpired,
    /// A failure of the machinery rather than of the input (RNG, worker thread, pool closed).
    #[error("internal crypto error: {0}")]
    Internal(String),
}
