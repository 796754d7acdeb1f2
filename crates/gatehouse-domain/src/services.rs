//! The account services wired together: one place that builds each service from its narrow
//! ports and the services below it, in the order they depend on each other. The binary calls
//! [`AccountServices::build`] with one database that implements every port; tests can pass
//! fakes port by port.
//!
//! Dependencies point one way: `email_links` → `sign_in` → (`mfa`, `sessions`) →
//! (`lockout`, `notices`, `known_devices`, `directory`); `registration`, `passwords` and
//! `admin_users` sit beside them.

use std::sync::Arc;

use gatehouse_crypto::{Digester, FieldCipher, HashingPool};

use crate::account_limit::AccountRateLimit;
use crate::admin_users::AdminUserService;
use crate::audit::AuditStore;
use crate::clock::Clock;
use crate::email_links::{EmailLinkService, OneTimeTokenStore};
use crate::known_devices::{KnownDeviceStore, KnownDevices};
use crate::lockout::{Lockout, LockoutSettings};
use crate::mfa::{MfaChallengeStore, MfaService, MfaSettings, MfaStore, TrustedBrowserStore};
use crate::notify::{NoticeSettings, Notices, Notifier};
use crate::passkeys::{PasskeyCeremonyStore, PasskeyService, PasskeySettings, PasskeyStore};
use crate::passwords::{PasswordPolicy, PasswordService};
use crate::registration::RegistrationService;
use crate::sessions::{SessionService, SessionStore};
use crate::sign_in::SignInService;
use crate::tokens::TokenService;
use crate::unit_of_work::UnitOfWorkStore;
use crate::users::{AccountSettings, UserDirectory, UserStore};

/// Every port the account services use. One database implements them all; MFA challenges may
/// live in Redis instead.
pub struct AccountPorts {
    pub users: Arc<dyn UserStore>,
    pub sessions: Arc<dyn SessionStore>,
    pub audit: Arc<dyn AuditStore>,
    pub work: Arc<dyn UnitOfWorkStore>,
    pub one_time_tokens: Arc<dyn OneTimeTokenStore>,
    pub known_devices: Arc<dyn KnownDeviceStore>,
    pub mfa: Arc<dyn MfaStore>,
    pub trusted_browsers: Arc<dyn TrustedBrowserStore>,
    pub challenges: Arc<dyn MfaChallengeStore>,
    pub passkeys: Arc<dyn PasskeyStore>,
    /// Passkey ceremonies between their two requests (Redis when configured).
    pub passkey_ceremonies: Arc<dyn PasskeyCeremonyStore>,
}

/// The keys the account services seal and digest with, each derived for its purpose.
pub struct AccountKeys {
    /// Purpose [`crate::users::EMAIL_PURPOSE`].
    pub email_cipher: FieldCipher,
    /// Purpose [`crate::users::EMAIL_DIGEST_PURPOSE`].
    pub email_digester: Digester,
    /// Purpose [`crate::known_devices::KNOWN_DEVICE_DIGEST_PURPOSE`].
    pub known_device_digester: Digester,
    /// Purpose [`crate::mfa::TOTP_SECRET_PURPOSE`].
    pub totp_cipher: FieldCipher,
    /// Purpose [`crate::mfa::PHONE_PURPOSE`].
    pub phone_cipher: FieldCipher,
    /// Purpose [`crate::mfa::MFA_DIGEST_PURPOSE`].
    pub mfa_digester: Digester,
    /// Purpose [`crate::passkeys::PASSKEY_DIGEST_PURPOSE`].
    pub passkey_digester: Digester,
}

/// What the account services are built from.
pub struct AccountParts {
    pub ports: AccountPorts,
    pub keys: AccountKeys,
    pub hashing: HashingPool,
    pub policy: Arc<PasswordPolicy>,
    pub tokens: Arc<TokenService>,
    pub notifier: Arc<Notifier>,
    pub clock: Arc<dyn Clock>,
    pub settings: AccountSettings,
    pub mfa_settings: MfaSettings,
    pub passkey_settings: PasskeySettings,
    /// The per-account attempt budget (sign-in, second factor, step-up, password change).
    pub account_limit: AccountRateLimit,
}

/// The account services, built once and shared.
#[derive(Clone)]
pub struct AccountServices {
    pub directory: Arc<UserDirectory>,
    pub sessions: Arc<SessionService>,
    pub sign_in: Arc<SignInService>,
    pub registration: Arc<RegistrationService>,
    pub passwords: Arc<PasswordService>,
    pub email_links: Arc<EmailLinkService>,
    pub mfa: Arc<MfaService>,
    pub passkeys: Arc<PasskeyService>,
    pub admin_users: Arc<AdminUserService>,
}

impl AccountServices {
    pub fn build(parts: AccountParts) -> AccountServices {
        let AccountParts {
            ports,
            keys,
            hashing,
            policy,
            tokens,
            notifier,
            clock,
            settings,
            mfa_settings,
            passkey_settings,
            account_limit,
        } = parts;
        let directory = Arc::new(UserDirectory::new(
            ports.users.clone(),
            keys.email_cipher,
            keys.email_digester,
        ));
        let known_devices =
            Arc::new(KnownDevices::new(ports.known_devices.clone(), keys.known_device_digester));
        let notices = Arc::new(Notices::new(
            notifier.clone(),
            directory.clone(),
            known_devices.clone(),
            clock.clone(),
            NoticeSettings { new_device_notice: settings.new_device_notice },
        ));
        let lockout = Arc::new(Lockout::new(
            ports.users.clone(),
            notices.clone(),
            LockoutSettings {
                threshold: settings.lockout_threshold,
                duration_seconds: settings.lockout_duration_seconds,
            },
            account_limit,
        ));
        let sessions = Arc::new(SessionService {
            store: ports.sessions.clone(),
            users: ports.users.clone(),
            tokens: tokens.clone(),
            directory: directory.clone(),
            notices: notices.clone(),
            clock: clock.clone(),
        });
        let passkeys = Arc::new(PasskeyService {
            store: ports.passkeys.clone(),
            ceremonies: ports.passkey_ceremonies.clone(),
            users: ports.users.clone(),
            audit: ports.audit.clone(),
            directory: directory.clone(),
            notices: notices.clone(),
            digester: keys.passkey_digester,
            clock: clock.clone(),
            settings: passkey_settings,
        });
        let mfa_policy = mfa_settings.policy;
        let mfa = Arc::new(MfaService {
            store: ports.mfa.clone(),
            browsers: ports.trusted_browsers.clone(),
            challenges: ports.challenges.clone(),
            sessions: ports.sessions.clone(),
            users: ports.users.clone(),
            audit: ports.audit.clone(),
            work: ports.work.clone(),
            lockout: lockout.clone(),
            hashing: hashing.clone(),
            tokens: tokens.clone(),
            notices: notices.clone(),
            notifier: notifier.clone(),
            directory: directory.clone(),
            totp_cipher: keys.totp_cipher,
            phone_cipher: keys.phone_cipher,
            digester: keys.mfa_digester,
            passkeys: passkeys.clone(),
            clock: clock.clone(),
            settings: mfa_settings,
        });
        let passwords = Arc::new(PasswordService {
            users: ports.users.clone(),
            hashing: hashing.clone(),
            policy,
            directory: directory.clone(),
            notices: notices.clone(),
            lockout: lockout.clone(),
            clock: clock.clone(),
        });
        let sign_in = Arc::new(SignInService {
            users: ports.users.clone(),
            audit: ports.audit.clone(),
            hashing: hashing.clone(),
            directory: directory.clone(),
            known_devices,
            lockout,
            mfa: mfa.clone(),
            sessions: sessions.clone(),
            passkeys: passkeys.clone(),
            clock: clock.clone(),
            require_email_verification: settings.require_email_verification,
        });
        let registration = Arc::new(RegistrationService {
            users: ports.users.clone(),
            work: ports.work.clone(),
            hashing: hashing.clone(),
            passwords: passwords.clone(),
            directory: directory.clone(),
            notices: notices.clone(),
            sessions: sessions.clone(),
            passkeys: passkeys.clone(),
            clock: clock.clone(),
            require_email_verification: settings.require_email_verification,
            signup_enabled: settings.signup_enabled,
            mfa_policy,
        });
        let email_links = Arc::new(EmailLinkService {
            tokens: ports.one_time_tokens,
            users: ports.users.clone(),
            work: ports.work,
            notifier,
            notices: notices.clone(),
            directory: directory.clone(),
            passwords: passwords.clone(),
            sign_in: sign_in.clone(),
            clock: clock.clone(),
            magic_link_enabled: settings.magic_link_enabled,
        });
        let admin_users = Arc::new(AdminUserService {
            notices,
            users: ports.users,
            hashing,
            passwords: passwords.clone(),
            directory: directory.clone(),
            clock,
        });
        AccountServices {
            directory,
            sessions,
            sign_in,
            registration,
            passwords,
            email_links,
            mfa,
            passkeys,
            admin_users,
        }
    }
}
