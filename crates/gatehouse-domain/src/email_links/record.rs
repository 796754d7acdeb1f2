//! One-time tokens as stored: what each is for, how long it lives, and the row that keeps its
//! keyed digest; and the port that reads them back. They are written and spent through the
//! unit of work of the change they belong to.

use async_trait::async_trait;

use crate::store::StoreError;

/// What a one-time token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPurpose {
    VerifyEmail,
    ResetPassword,
    MagicLink,
    /// A new address for the account, proven by a link sent to it.
    ChangeEmail,
}

impl TokenPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenPurpose::VerifyEmail => "verify_email",
            TokenPurpose::ResetPassword => "reset_password",
            TokenPurpose::MagicLink => "magic_link",
            TokenPurpose::ChangeEmail => "change_email",
        }
    }

    /// How long a token of this purpose lives, in seconds.
    pub fn ttl_seconds(self) -> i64 {
        match self {
            TokenPurpose::VerifyEmail => 24 * 3600,
            TokenPurpose::ResetPassword => 3600,
            TokenPurpose::MagicLink => 15 * 60,
            TokenPurpose::ChangeEmail => 24 * 3600,
        }
    }
}

/// One row of `one_time_tokens`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneTimeTokenRecord {
    pub token_digest: Vec<u8>,
    pub purpose: String,
    pub user_id: String,
    /// Blind index of the address the token was sent to.
    pub email_digest: Option<Vec<u8>>,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    /// What the token carries besides its purpose, sealed: for `change_email`, the new
    /// address under the email cipher for the user's row (AD = the user id).
    pub payload: Option<Vec<u8>>,
}

#[async_trait]
pub trait OneTimeTokenStore: Send + Sync {
    async fn one_time_token(&self, digest: &[u8])
    -> Result<Option<OneTimeTokenRecord>, StoreError>;
}
