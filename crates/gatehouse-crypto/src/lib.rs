//! Gatehouse's cryptography, free of I/O: master key and derived keys, field encryption,
//! keyed digests, random tokens and ids, password hashing (with its bounded blocking pool),
//! and JWS signing keys.
//!
//! Invariant: nothing here prints a secret. Every type holding key material has a redacting
//! `Debug`, and every error message describes the kind of failure, not the input.
//! Invariant: every key that seals, digests or peppers is a [`DataKey`] of one purpose, stored
//! wrapped by the [`MasterKey`] ([`MasterKeyRing`]); keys for different uses are independent,
//! and rotating the master key only rewraps them.

// Tests may unwrap: a failed unwrap is a failed test. The library itself is still linted
// without this exemption, because `cargo clippy --all-targets` also checks the non-test build.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod aead;
pub mod data_key;
pub mod digest;
mod error;
pub mod master;
pub mod passkey;
pub mod password;
pub mod signing;
pub mod token;
pub mod totp;
pub mod webhook;

pub use aead::FieldCipher;
pub use data_key::{DataKey, MasterKeyRing};
pub use digest::Digester;
pub use error::CryptoError;
pub use master::MasterKey;
pub use passkey::{PasskeyError, RelyingParty};
pub use password::{Argon2Settings, HashingPool, LegacyFormat, PasswordHasher, Pepper};
pub use signing::{PublicKeySet, SigningAlgorithm, SigningKey};
pub use token::{
    SecretKind, constant_time_eq, left_half_sha256, new_id, pkce_s256, random_bytes, random_token,
};
pub use totp::TotpSecret;
pub use webhook::{WebhookSecret, webhook_signature};

/// Re-exported so callers build a [`jsonwebtoken::Validation`] for
/// [`PublicKeySet::verify`] with the same version this crate uses.
pub use jsonwebtoken;
/// Re-exported for [`HashingPool`]'s `SecretString` arguments.
pub use secrecy;
