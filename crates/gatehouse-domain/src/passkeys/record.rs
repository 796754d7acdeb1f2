//! The stored shapes of passkeys and of ceremonies between their two requests.

use serde::{Deserialize, Serialize};

/// Purpose of the keyed digest of ceremony ids.
pub const PASSKEY_DIGEST_PURPOSE: &str = "passkey";

/// A registered passkey (WebAuthn credential) of a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyRecord {
    /// `pk_…`
    pub id: String,
    pub user_id: String,
    /// The credential id, base64url without padding.
    pub credential_id: String,
    /// webauthn-rs's serialised credential (public key, algorithm, flags): public material.
    pub credential: String,
    pub name: String,
    /// The signature counter we saw last (the authority; 0 for authenticators that do not
    /// count, as synced passkeys).
    pub sign_count: i64,
    pub transports: Vec<String>,
    /// The credential may be synced to other devices (a "synced" passkey, `amr` `swk`).
    pub backup_eligible: bool,
    /// It is synced now.
    pub backup_state: bool,
    pub aaguid: Option<String>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    /// When its counter went backwards (a possible clone): it signs nobody in any more.
    pub flagged_at: Option<i64>,
}

/// What a ceremony is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CeremonyKind {
    /// A signed-in user adds a passkey.
    Register,
    /// Sign-in, with a username (`user_id` set: only that user's credentials) or without.
    SignIn,
    /// A signed-in user proves presence again (`user_id` set).
    StepUp,
    /// A new account whose only sign-in method is the passkey registered here.
    SignUp,
}

/// The account a passkey sign-up creates once its credential is verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingSignUp {
    /// The id the new user will have (its WebAuthn user handle is in the credential).
    pub user_id: String,
    /// The address, sealed for the new user's row (as `users.email_ciphertext`), and its
    /// blind index.
    pub email_ciphertext: Vec<u8>,
    pub email_digest: Vec<u8>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
}

/// A ceremony between its begin and finish requests: single use, short-lived, found by the
/// keyed digest of its id (the id itself is never stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasskeyCeremonyRecord {
    #[serde(skip)]
    pub id_digest: Vec<u8>,
    pub kind: CeremonyKind,
    /// The user the ceremony is bound to (registration, step-up, sign-in with a username).
    /// A sign-in begun with an address that has no account is bound to no user that exists.
    pub user_id: Option<String>,
    /// The session a registration or step-up was begun from.
    pub session_id: Option<String>,
    pub sign_up: Option<PendingSignUp>,
    /// webauthn-rs's ceremony state (JSON text).
    pub state: String,
    pub created_at: i64,
    pub expires_at: i64,
}
