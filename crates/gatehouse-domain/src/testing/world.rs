//! `TestWorld`: the account services and the OAuth service built on one [`MemoryStore`] the
//! way `AccountServices::build` and the binary build them on the database, with real crypto
//! (keys derived from a fresh master key, ES256 signing, Argon2id with small parameters) and a
//! `ManualClock`; plus helpers to seed users, TOTP factors, clients and sessions.

use std::sync::Arc;

use gatehouse_crypto::{
    Argon2Settings, Digester, FieldCipher, HashingPool, MasterKey, PasswordHasher, Pepper,
    SigningAlgorithm, TotpSecret,
};

use super::MemoryStore;
use crate::account_limit::AccountRateLimit;
use crate::clock::{Clock, ManualClock, SystemClock};
use crate::error::DomainError;
use crate::keys::{KeyService, KeySettings, SIGNING_KEY_PURPOSE};
use crate::known_devices::KNOWN_DEVICE_DIGEST_PURPOSE;
use crate::mfa::{
    FactorKind, MFA_DIGEST_PURPOSE, MfaFactorRecord, MfaSettings, PHONE_PURPOSE,
    TOTP_SECRET_PURPOSE,
};
use crate::notify::{Notifier, NotifierSettings, ONE_TIME_TOKEN_DIGEST_PURPOSE, OUTBOX_PURPOSE};
use crate::oauth::client::{AUTH_NONE, ClientRecord};
use crate::oauth::{DeviceFlowService, OAuthParts, OAuthService, OAuthSettings};
use crate::passwords::{PasswordPolicy, PasswordPolicySettings};
use crate::principal::{Principal, RequestContext};
use crate::services::{AccountKeys, AccountParts, AccountPorts, AccountServices};
use crate::sessions::{NewSession, SignInMethod, Tokens};
use crate::sign_in::{Identifier, SignIn, SignInOutcome};
use crate::tokens::{TokenService, TokenSettings};
use crate::unit_of_work::UnitOfWork;
use crate::users::store::UserStore;
use crate::users::{AccountSettings, EMAIL_DIGEST_PURPOSE, EMAIL_PURPOSE, Email, UserRecord};

/// The password of every seeded user.
pub(crate) const TEST_PASSWORD: &str = "violet tractor harbour mosaic";

/// What a test may change about the world it runs in.
#[derive(Debug, Clone)]
pub(crate) struct WorldSettings {
    pub account: AccountSettings,
    pub tokens: TokenSettings,
    pub mfa: MfaSettings,
}

impl Default for WorldSettings {
    fn default() -> Self {
        WorldSettings {
            account: AccountSettings::default(),
            tokens: TokenSettings {
                issuer: "https://id.example.test".into(),
                audience: "gatehouse".into(),
                access_token_ttl_seconds: 900,
                refresh_token_ttl_seconds: 30 * 24 * 3600,
                session_max_lifetime_seconds: 90 * 24 * 3600,
                session_idle_timeout_seconds: 7 * 24 * 3600,
            },
            mfa: MfaSettings::default(),
        }
    }
}

/// The services under test, their store and their clock.
pub(crate) struct TestWorld {
    pub store: Arc<MemoryStore>,
    pub clock: Arc<ManualClock>,
    pub accounts: AccountServices,
    pub oauth: Arc<OAuthService>,
    pub device_flow: DeviceFlowService,
    pub tokens: Arc<TokenService>,
    hashing: HashingPool,
    totp_cipher: FieldCipher,
}

/// Where the tests' requests come from.
pub(crate) fn context() -> RequestContext {
    RequestContext {
        ip: Some("203.0.113.7".into()),
        user_agent: Some("unit-test".into()),
        request_id: None,
        locale: None,
        dpop_jkt: None,
    }
}

/// A six-digit code that is none of the codes `secret` accepts at `now` (±1 step), so a
/// "wrong code" can never be right by chance.
pub(crate) fn wrong_totp_code(secret: &TotpSecret, now: i64) -> String {
    let time = u64::try_from(now).unwrap_or(0);
    let accepted: Vec<String> =
        [time - 30, time, time + 30].iter().map(|t| secret.code_at(*t).unwrap()).collect();
    (0..10u32)
        .map(|digit| digit.to_string().repeat(6))
        .find(|candidate| !accepted.contains(candidate))
        .unwrap()
}

impl TestWorld {
    pub(crate) async fn new() -> TestWorld {
        TestWorld::with(WorldSettings::default()).await
    }

    pub(crate) async fn with(settings: WorldSettings) -> TestWorld {
        let WorldSettings { account, tokens: token_settings, mfa } = settings;
        let master = MasterKey::generate();
        let store = Arc::new(MemoryStore::new());
        // Now, not an arbitrary epoch: the JWT library checks `exp` against the system clock.
        let clock = Arc::new(ManualClock::new(SystemClock.now()));
        let dyn_clock: Arc<dyn Clock> = clock.clone();
        let keys = Arc::new(KeyService::new(
            store.clone(),
            Arc::new(FieldCipher::new(&master, &[], SIGNING_KEY_PURPOSE)),
            dyn_clock.clone(),
            KeySettings {
                algorithm: SigningAlgorithm::ES256,
                rsa_bits: 2048,
                retention_seconds: 24 * 3600,
                cache_seconds: 30,
                rotation_delay_seconds: 0,
            },
        ));
        keys.ensure_active_key().await.unwrap();
        let tokens = Arc::new(TokenService::new(
            keys,
            dyn_clock.clone(),
            Digester::new(&master, "refresh-token"),
            token_settings.clone(),
        ));
        let notifier = Arc::new(Notifier::new(
            FieldCipher::new(&master, &[], OUTBOX_PURPOSE),
            Digester::new(&master, ONE_TIME_TOKEN_DIGEST_PURPOSE),
            NotifierSettings { issuer: token_settings.issuer.clone(), email_enabled: false },
        ));
        // The production defaults cost 64 MiB and seconds per hash; the rules do not care.
        let small = Argon2Settings { memory_kib: 1024, iterations: 1, parallelism: 1 };
        let hasher = PasswordHasher::new(small, Pepper::from_master(&master, 1), vec![]).unwrap();
        let hashing = HashingPool::new(hasher, 1);
        let accounts = AccountServices::build(AccountParts {
            ports: AccountPorts {
                users: store.clone(),
                sessions: store.clone(),
                audit: store.clone(),
                work: store.clone(),
                one_time_tokens: store.clone(),
                known_devices: store.clone(),
                mfa: store.clone(),
                trusted_browsers: store.clone(),
                challenges: store.clone(),
                passkeys: store.clone(),
                passkey_ceremonies: store.clone(),
            },
            keys: AccountKeys {
                email_cipher: FieldCipher::new(&master, &[], EMAIL_PURPOSE),
                email_digester: Digester::new(&master, EMAIL_DIGEST_PURPOSE),
                known_device_digester: Digester::new(&master, KNOWN_DEVICE_DIGEST_PURPOSE),
                totp_cipher: FieldCipher::new(&master, &[], TOTP_SECRET_PURPOSE),
                phone_cipher: FieldCipher::new(&master, &[], PHONE_PURPOSE),
                mfa_digester: Digester::new(&master, MFA_DIGEST_PURPOSE),
                passkey_digester: Digester::new(&master, crate::passkeys::PASSKEY_DIGEST_PURPOSE),
            },
            hashing: hashing.clone(),
            policy: Arc::new(PasswordPolicy::new(PasswordPolicySettings::default(), None)),
            tokens: tokens.clone(),
            notifier,
            clock: dyn_clock.clone(),
            settings: account,
            mfa_settings: mfa,
            passkey_settings: crate::passkeys::PasskeySettings {
                availability: crate::passkeys::PasskeyAvailability::Unavailable(
                    "not in the domain unit tests".into(),
                ),
                reauthentication_max_age_seconds: 300,
                require_email_verification: false,
            },
            account_limit: AccountRateLimit::off(),
        });
        let oauth = Arc::new(OAuthService::new(OAuthParts {
            store: store.clone(),
            users: store.clone(),
            session_store: store.clone(),
            sessions: accounts.sessions.clone(),
            directory: accounts.directory.clone(),
            tokens: tokens.clone(),
            code_digester: Digester::new(&master, "authorization-code"),
            clock: dyn_clock.clone(),
            settings: OAuthSettings {
                issuer: token_settings.issuer,
                code_ttl_seconds: 60,
                id_token_ttl_seconds: 3600,
                secret_overlap_seconds: 24 * 3600,
            },
            resources: Arc::new(crate::oauth::resources::ResourceServerService::new(
                store.clone(),
                dyn_clock.clone(),
            )),
        }));
        let totp_cipher = FieldCipher::new(&master, &[], TOTP_SECRET_PURPOSE);
        let device_flow = DeviceFlowService::new(oauth.clone(), store.clone());
        TestWorld { store, clock, accounts, oauth, device_flow, tokens, hashing, totp_cipher }
    }

    pub(crate) fn now(&self) -> i64 {
        self.clock.now()
    }

    /// A user with a verified `email` and the password [`TEST_PASSWORD`], inserted through
    /// the port as sign-up would.
    pub(crate) async fn seed_user(&self, email: &str) -> UserRecord {
        let email = Email::parse(email, "email").unwrap();
        let hash = self.hashing.hash(TEST_PASSWORD.to_owned().into()).await.unwrap();
        let now = self.now();
        let user = UserRecord {
            email_verified_at: Some(now),
            password_hash: Some(hash),
            password_changed_at: Some(now),
            ..self.accounts.directory.new_account(&email, now).unwrap()
        };
        self.store.insert_user(&user, &UnitOfWork::default()).await.unwrap();
        user
    }

    /// Gives `user_id` a confirmed TOTP factor (sealed as enrolment seals it) whose codes the
    /// test computes with the returned secret.
    pub(crate) fn seed_totp(&self, user_id: &str) -> TotpSecret {
        let secret = TotpSecret::generate();
        let id = gatehouse_crypto::new_id("mfa");
        let now = self.now();
        self.store.put_factor(MfaFactorRecord {
            secret_ciphertext: Some(
                self.totp_cipher.seal(id.as_bytes(), secret.as_bytes()).unwrap(),
            ),
            id,
            user_id: user_id.to_owned(),
            kind: FactorKind::Totp.as_str().to_owned(),
            phone_ciphertext: None,
            confirmed_at: Some(now),
            last_used_step: None,
            last_used_at: None,
            created_at: now,
        });
        secret
    }

    /// The TOTP code of `secret` right now.
    pub(crate) fn totp_code(&self, secret: &TotpSecret) -> String {
        secret.code_at(u64::try_from(self.now()).unwrap()).unwrap()
    }

    /// A public client allowed `grants` and `scopes`, stored as the admin API would.
    pub(crate) fn seed_client(
        &self,
        client_id: &str,
        grants: &[&str],
        scopes: &[&str],
        skip_consent: bool,
    ) -> ClientRecord {
        let owned = |values: &[&str]| values.iter().map(|value| (*value).to_owned()).collect();
        let client = ClientRecord {
            client_id: client_id.to_owned(),
            name: format!("Client {client_id}"),
            secret_digest: None,
            previous_secret_digest: None,
            previous_secret_expires_at: None,
            redirect_uris: vec!["https://app.example.test/callback".into()],
            post_logout_redirect_uris: vec![],
            grant_types: owned(grants),
            scopes: owned(scopes),
            token_endpoint_auth_method: AUTH_NONE.into(),
            jwks: None,
            skip_consent,
            require_pushed_authorization_requests: false,
            dpop_bound_access_tokens: false,
            backchannel_logout_uri: None,
            backchannel_logout_session_required: false,
            document_expires_at: None,
            access_token_ttl_seconds: None,
            refresh_token_ttl_seconds: None,
            created_at: self.now(),
            updated_at: self.now(),
            registration_token_digest: None,
        };
        self.store.put_client(client.clone());
        client
    }

    /// Signs in with a password, as `POST /v1/auth/sign-in` does.
    pub(crate) async fn sign_in(
        &self,
        email: &str,
        password: &str,
    ) -> Result<SignInOutcome, DomainError> {
        let request = SignIn {
            identifier: Identifier::Email(email.to_owned()),
            password: password.to_owned(),
            trusted_device: None,
        };
        self.accounts.sign_in.sign_in(request, &context()).await
    }

    /// Opens a first-party session for `user`, as a completed password sign-in does.
    pub(crate) async fn start_session(&self, user: &UserRecord) -> Tokens {
        let new = NewSession {
            user: user.clone(),
            rehashed_password: None,
            method: SignInMethod::Password,
            amr: vec![SignInMethod::Password.amr()],
            facts: None,
            work: UnitOfWork::default(),
        };
        self.accounts.sessions.start(new, &context()).await.unwrap()
    }

    /// The signed-in principal of a session, as the hosted pages' cookie yields it.
    pub(crate) async fn principal(&self, session_id: &str) -> Principal {
        self.accounts.sessions.principal_for_session(session_id).await.unwrap()
    }
}
