//! Accounts: the stored user, its port, the parsed identifiers (`Email`, `Username`), the
//! profile fields, the view the API shows, and the `UserDirectory` every service reads
//! addresses through. The account settings every account service shares live here too.

pub mod directory;
pub mod email;
pub(crate) mod names;
pub mod record;
pub mod store;
pub mod username;
pub mod view;

pub use directory::{EMAIL_DIGEST_PURPOSE, EMAIL_PURPOSE, UserDirectory};
pub use email::Email;
pub use record::{SYSTEM_ROLE_ADMIN, UserRecord};
pub use store::UserStore;
pub use username::Username;
pub use view::{AdminFields, UserView};

/// The account rules an operator configures.
#[derive(Debug, Clone)]
pub struct AccountSettings {
    pub lockout_threshold: i64,
    pub lockout_duration_seconds: i64,
    pub require_email_verification: bool,
    /// Whether `POST /v1/auth/magic-link` and the magic-link page work.
    pub magic_link_enabled: bool,
    /// Whether anyone may create an account (`POST /v1/auth/sign-up`, `/signup`); off, only
    /// admins, the CLI and bulk import do.
    pub signup_enabled: bool,
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
            signup_enabled: true,
            new_device_notice: true,
        }
    }
}
