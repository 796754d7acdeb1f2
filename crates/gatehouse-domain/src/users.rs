//! The user account record as stored, and the store port for it.
//!
//! The account service (accounts issue) owns the rules; this module only fixes the shape of the
//! row. Email is never stored in clear: `email_ciphertext` is sealed with the field cipher and
//! `email_digest` is the keyed blind index used for lookups and uniqueness.

use async_trait::async_trait;

use crate::store::StoreError;

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
    pub created_at: i64,
    pub updated_at: i64,
}

#[async_trait]
pub trait UserStore: Send + Sync {
    /// Inserts a new user; a duplicate email digest or username is `StoreError::Conflict`.
    async fn insert_user(&self, user: &UserRecord) -> Result<(), StoreError>;
    async fn user_by_id(&self, id: &str) -> Result<Option<UserRecord>, StoreError>;
    async fn user_by_email_digest(&self, digest: &[u8]) -> Result<Option<UserRecord>, StoreError>;
    async fn user_by_username(&self, username: &str) -> Result<Option<UserRecord>, StoreError>;
}
