//! The user account as stored, and the shapes of its lookups.
//!
//! The services own the rules; this module only fixes the shape of the row. Email is
//! never stored in clear: `email_ciphertext` is sealed with the field cipher and
//! `email_digest` is the keyed blind index used for lookups and uniqueness.

/// The system role that unlocks the admin API with a user's own token.
pub const SYSTEM_ROLE_ADMIN: &str = "admin";

/// One row of `users`. Times are Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub id: String,
    pub email_ciphertext: Option<Vec<u8>>,
    pub email_digest: Option<Vec<u8>>,
    /// Normalised (NFKC, case-folded) username, unique when present.
    pub username: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub image_url: Option<String>,
    pub email_verified_at: Option<i64>,
    /// PHC string (Argon2id, or an imported legacy format until the next sign-in).
    pub password_hash: Option<String>,
    pub password_changed_at: Option<i64>,
    pub failed_sign_in_attempts: i64,
    pub locked_until: Option<i64>,
    pub suspended_at: Option<i64>,
    pub last_sign_in_at: Option<i64>,
    /// JSON object text, readable by the user and by clients.
    pub public_metadata: String,
    /// JSON object text, only for the backend and admins.
    pub private_metadata: String,
    /// `None` or [`SYSTEM_ROLE_ADMIN`].
    pub system_role: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl UserRecord {
    /// A new account's row: this id, created now, with no address, name, password, role or
    /// security state yet, and empty metadata.
    pub fn new(id: String, now: i64) -> UserRecord {
        UserRecord {
            id,
            email_ciphertext: None,
            email_digest: None,
            username: None,
            first_name: None,
            last_name: None,
            image_url: None,
            email_verified_at: None,
            password_hash: None,
            password_changed_at: None,
            failed_sign_in_attempts: 0,
            locked_until: None,
            suspended_at: None,
            last_sign_in_at: None,
            public_metadata: "{}".into(),
            private_metadata: "{}".into(),
            system_role: None,
            created_at: now,
            updated_at: now,
        }
    }
}

/// What a failed sign-in left on the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailedSignIn {
    pub attempts: i64,
    pub locked_until: Option<i64>,
    /// Whether this failure started the lock (its `on_lock` work was written).
    pub lock_started: bool,
}

/// How a sign-in names the account: the email's blind index or the normalised username.
#[derive(Debug, Clone, Copy)]
pub enum UserLookup<'a> {
    EmailDigest(&'a [u8]),
    Username(&'a str),
}

/// What a password sign-in needs to know besides the account, read in the same query (one
/// round trip instead of three on the hot path): whether the user has a confirmed second
/// factor, and whether they have signed in before from any device and from this one (the
/// new-device notice).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SignInFacts {
    pub has_confirmed_factor: bool,
    pub any_known_device: bool,
    pub this_device_known: bool,
}

/// A page of users: ids strictly after `after`, in id order (ids are time-ordered).
#[derive(Debug, Clone, Default)]
pub struct UserQuery {
    pub after: Option<String>,
    pub email_digest: Option<Vec<u8>>,
    pub limit: u32,
}
