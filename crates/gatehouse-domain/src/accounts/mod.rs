//! The account service: the one orchestrator of account state — sign-up, sign-in, sessions and
//! refresh, profile and password changes, and the admin operations on users. Handlers parse,
//! call one method here, and map the result.
//!
//! Security rules live here, stated where they are enforced:
//! - Unknown accounts and wrong passwords get the same answer, after the same Argon2id work.
//! - Lockout, suspension and missing verification are only revealed to someone who knows the
//!   password; a wrong password always answers `invalid_credentials`.
//! - Refresh tokens rotate on every use; a rotated token presented again revokes its session
//!   (the whole token family), and so does losing a concurrent race for the same token.
//! - Every state change and its audit event are written in one transaction.

mod admin;
mod email;
mod email_links;
pub mod mfa;
mod notices;
mod password;
mod profile;
mod session;
mod sign_in;
mod sign_up;
mod view;

use std::sync::Arc;

use gatehouse_crypto::{Digester, FieldCipher, HashingPool};

use crate::audit::AuditStore;
use crate::clock::Clock;
use crate::error::DomainError;
use crate::mfa::MfaStore;
use crate::notify::{Notifier, NotifyStore};
use crate::passwords::PasswordPolicy;
use crate::sessions::{SessionRecord, SessionStore};
use crate::tokens::TokenService;
use crate::users::{UserRecord, UserStore};

pub use admin::{AdminUserUpdate, ImportReport, ImportedUser, NewUserByAdmin, UserPage};
pub use email::Email;
pub use profile::ProfileUpdate;
pub use sign_in::{Identifier, SignIn};
pub use sign_up::SignUp;
pub use username::Username;
pub use view::{Tokens, UserView};

mod username;

/// Field-cipher purpose and AD scheme of stored emails: sealed under `user-email`, bound to the
/// user id so a ciphertext cannot be moved to another row.
pub const EMAIL_PURPOSE: &str = "user-email";
/// Digest purpose of the email blind index.
pub const EMAIL_DIGEST_PURPOSE: &str = "email";

/// Everything the account service stores, as one object (the stores share transactions).
pub trait AccountStore: UserStore + SessionStore + AuditStore + NotifyStore + MfaStore {}
impl<T: UserStore + SessionStore + AuditStore + NotifyStore + MfaStore> AccountStore for T {}

#[derive(Debug, Clone)]
pub struct AccountSettings {
    pub lockout_threshold: i64,
    pub lockout_duration_seconds: i64,
    pub require_email_verification: bool,
    /// Whether `POST /v1/auth/magic-link` and the magic-link page work.
    pub magic_link_enabled: bool,
    /// Whether a sign-in from a device the user never used sends a notice.
    pub new_device_notice: bool,
}

impl Default for AccountSettings {
    fn default() -> Self {
        Self {
            lockout_threshold: 5,
            lockout_duration_seconds: 900,
            require_email_verification: false,
            magic_link_enabled: false,
            new_device_notice: true,
        }
    }
}

/// A verified bearer: the token was valid, its session is active and its user not suspended.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user: UserRecord,
    pub session: SessionRecord,
}

pub struct AccountService {
    store: Arc<dyn AccountStore>,
    hashing: HashingPool,
    policy: Arc<PasswordPolicy>,
    tokens: Arc<TokenService>,
    email_cipher: FieldCipher,
    email_digester: Digester,
    clock: Arc<dyn Clock>,
    settings: AccountSettings,
    notifier: Arc<Notifier>,
    mfa: mfa::MfaParts,
}

/// The parts an [`AccountService`] is built from.
pub struct AccountParts {
    pub store: Arc<dyn AccountStore>,
    pub hashing: HashingPool,
    pub policy: Arc<PasswordPolicy>,
    pub tokens: Arc<TokenService>,
    pub email_cipher: FieldCipher,
    pub email_digester: Digester,
    pub clock: Arc<dyn Clock>,
    pub settings: AccountSettings,
    pub notifier: Arc<Notifier>,
    pub mfa: mfa::MfaParts,
}

impl AccountService {
    pub fn new(parts: AccountParts) -> Self {
        let AccountParts {
            store,
            hashing,
            policy,
            tokens,
            email_cipher,
            email_digester,
            clock,
            settings,
            notifier,
            mfa,
        } = parts;
        Self {
            store,
            hashing,
            policy,
            tokens,
            email_cipher,
            email_digester,
            clock,
            settings,
            notifier,
            mfa,
        }
    }

    pub fn policy(&self) -> &PasswordPolicy {
        &self.policy
    }

    pub fn settings(&self) -> &AccountSettings {
        &self.settings
    }

    pub fn mfa_settings(&self) -> &mfa::MfaSettings {
        &self.mfa.settings
    }

    fn email_digest(&self, email: &Email) -> Vec<u8> {
        self.email_digester.digest(email.as_str().as_bytes()).to_vec()
    }

    fn seal_email(&self, user_id: &str, email: &Email) -> Result<Vec<u8>, DomainError> {
        Ok(self.email_cipher.seal(user_id.as_bytes(), email.as_str().as_bytes())?)
    }

    fn open_email(&self, user: &UserRecord) -> Result<Option<String>, DomainError> {
        let Some(sealed) = &user.email_ciphertext else { return Ok(None) };
        let plain = self.email_cipher.open(user.id.as_bytes(), sealed)?;
        String::from_utf8(plain.to_vec())
            .map(Some)
            .map_err(|_| DomainError::Internal(format!("stored email of {} is not UTF-8", user.id)))
    }

    /// The user as the API shows it (email decrypted).
    pub fn view(&self, user: &UserRecord) -> Result<UserView, DomainError> {
        UserView::from_record(user, self.open_email(user)?)
    }
}

/// Maps the conflict of a one-time token spent by someone else first to `token_used`.
fn spent_from_conflict(error: crate::store::StoreError) -> DomainError {
    match &error {
        crate::store::StoreError::Conflict(constraint)
            if constraint == crate::notify::TOKEN_SPENT_CONFLICT =>
        {
            DomainError::OneTimeToken(crate::error::OneTimeTokenProblem::Used)
        }
        _ => error.into(),
    }
}

/// Maps a uniqueness conflict from the store to the field it concerns.
fn taken_from_conflict(error: crate::store::StoreError) -> DomainError {
    match &error {
        crate::store::StoreError::Conflict(constraint) if constraint.contains("username") => {
            DomainError::Taken("username")
        }
        crate::store::StoreError::Conflict(_) => DomainError::Taken("email"),
        _ => error.into(),
    }
}
