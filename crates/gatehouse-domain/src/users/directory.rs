//! `UserDirectory`: how every service reads an account's address — the email blind index,
//! sealing and opening the stored address, the user as the API shows it. The one place that
//! holds the email cipher and digester.

use std::sync::Arc;

use gatehouse_crypto::{Digester, FieldCipher};

use crate::error::DomainError;
use crate::users::email::Email;
use crate::users::record::UserRecord;
use crate::users::store::UserStore;
use crate::users::view::UserView;

/// Field-cipher purpose and AD scheme of stored emails: sealed under `user-email`, bound to the
/// user id so a ciphertext cannot be moved to another row.
pub const EMAIL_PURPOSE: &str = "user-email";
/// Digest purpose of the email blind index.
pub const EMAIL_DIGEST_PURPOSE: &str = "email";

/// How many admins an operator notice goes to at most.
pub const ADMINS_TOLD: u32 = 20;

pub struct UserDirectory {
    store: Arc<dyn UserStore>,
    email_cipher: FieldCipher,
    email_digester: Digester,
}

impl UserDirectory {
    /// `email_cipher` has purpose [`EMAIL_PURPOSE`], `email_digester` [`EMAIL_DIGEST_PURPOSE`].
    pub fn new(
        store: Arc<dyn UserStore>,
        email_cipher: FieldCipher,
        email_digester: Digester,
    ) -> Self {
        Self { store, email_cipher, email_digester }
    }

    /// The blind index of an address.
    pub fn email_digest(&self, email: &Email) -> Vec<u8> {
        self.email_digester.digest(email.as_str().as_bytes()).to_vec()
    }

    /// A new account's row for `email`: a fresh id, the address sealed and indexed, the rest
    /// as [`UserRecord::new`] leaves it.
    pub fn new_account(&self, email: &Email, now: i64) -> Result<UserRecord, DomainError> {
        let id = gatehouse_crypto::new_id("usr");
        Ok(UserRecord {
            email_ciphertext: Some(self.seal_email(&id, email)?),
            email_digest: Some(self.email_digest(email)),
            ..UserRecord::new(id, now)
        })
    }

    /// The address sealed for the row of `user_id`.
    pub fn seal_email(&self, user_id: &str, email: &Email) -> Result<Vec<u8>, DomainError> {
        Ok(self.email_cipher.seal(user_id.as_bytes(), email.as_str().as_bytes())?)
    }

    /// The user's address in clear, if they have one.
    pub fn open_email(&self, user: &UserRecord) -> Result<Option<String>, DomainError> {
        let Some(sealed) = &user.email_ciphertext else { return Ok(None) };
        let plain = self.email_cipher.open(user.id.as_bytes(), sealed)?;
        String::from_utf8(plain.to_vec())
            .map(Some)
            .map_err(|_| DomainError::Internal(format!("stored email of {} is not UTF-8", user.id)))
    }

    /// An address sealed for another row (an invitation: AD = its id), in clear.
    pub fn open_address(&self, row_id: &str, sealed: &[u8]) -> Result<String, DomainError> {
        let plain = self.email_cipher.open(row_id.as_bytes(), sealed)?;
        String::from_utf8(plain.to_vec())
            .map_err(|_| DomainError::Internal(format!("stored address of {row_id} is not UTF-8")))
    }

    /// The user as the API shows it (email decrypted).
    pub fn view(&self, user: &UserRecord) -> Result<UserView, DomainError> {
        UserView::from_record(user, self.open_email(user)?)
    }

    /// The user as an admin sees it (security state and private metadata included).
    pub fn admin_view(&self, user: &UserRecord) -> Result<UserView, DomainError> {
        self.view(user)?.with_admin_fields(user)
    }

    /// The addresses of the system's admins (at most [`ADMINS_TOLD`], oldest accounts first), for
    /// the notices operators get (an endpoint disabled).
    pub async fn admin_addresses(&self) -> Result<Vec<String>, DomainError> {
        let admins =
            self.store.users_with_system_role(crate::users::SYSTEM_ROLE_ADMIN, ADMINS_TOLD).await?;
        let mut addresses = Vec::with_capacity(admins.len());
        for admin in &admins {
            if admin.suspended_at.is_none() {
                addresses.extend(self.open_email(admin)?);
            }
        }
        Ok(addresses)
    }

    /// The account with this address; an address that cannot be valid names no account.
    pub async fn by_email(&self, text: &str) -> Result<Option<UserRecord>, DomainError> {
        let Ok(email) = Email::parse(text, "email") else { return Ok(None) };
        Ok(self.store.user_by_email_digest(&self.email_digest(&email)).await?)
    }
}
