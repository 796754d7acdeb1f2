//! Wiring: from a validated [`Config`] to a ready application — database open and migrated,
//! master keys resolved and the data keys they wrap opened, services built, the first signing
//! key in place.

use std::sync::Arc;
use std::time::Duration;

use gatehouse_crypto::RelyingParty;
use gatehouse_crypto::{Digester, FieldCipher, HashingPool, MasterKeyRing, PasswordHasher};
use gatehouse_domain::account_limit::{ACCOUNT_LIMIT_DIGEST_PURPOSE, AccountRateLimit};
use gatehouse_domain::admin_keys::{ADMIN_KEY_DIGEST_PURPOSE, AdminKeyService};
use gatehouse_domain::api_keys::{API_KEY_DIGEST_PURPOSE, ApiKeyService, ApiKeySettings};
use gatehouse_domain::audit::{AUDIT_CHECKPOINT_DIGEST_PURPOSE, AuditIntegrity, AuditLog};
use gatehouse_domain::data_keys::{
    DataKeyError, DataKeys, KeyHierarchy, PEPPER_PURPOSE, cipher_purpose, digest_purpose,
};
use gatehouse_domain::federation::{
    FederationParts, FederationService, FederationSettings, PROVIDER_SECRET_PURPOSE,
    SSO_FLOW_PURPOSE, UPSTREAM_TOKENS_PURPOSE,
};
use gatehouse_domain::keys::SIGNING_KEY_PURPOSE;
use gatehouse_domain::known_devices::KNOWN_DEVICE_DIGEST_PURPOSE;
use gatehouse_domain::mfa::{
    MFA_DIGEST_PURPOSE, MfaChallengeStore, MfaPolicy, MfaSettings, PHONE_PURPOSE,
    TOTP_SECRET_PURPOSE,
};
use gatehouse_domain::notify::{
    Channel, DeliveryService, Notifier, NotifierSettings, ONE_TIME_TOKEN_DIGEST_PURPOSE,
    OUTBOX_PURPOSE, OutboxWorker, WorkerSettings,
};
use gatehouse_domain::oauth::backchannel::BackchannelLogout;
use gatehouse_domain::oauth::client::CLIENT_SECRET_DIGEST_PURPOSE;
use gatehouse_domain::oauth::clients::NewClient;
use gatehouse_domain::oauth::documents::DocumentClients;
use gatehouse_domain::oauth::dpop::{
    DPOP_NONCE_DIGEST_PURPOSE, DpopProofStore, DpopService, DpopSettings,
};
use gatehouse_domain::oauth::exchange::TokenExchangeService;
use gatehouse_domain::oauth::par::{ParSettings, PushedAuthorizationService};
use gatehouse_domain::oauth::registration::{
    REGISTRATION_DIGEST_PURPOSE, RegistrationMode, RegistrationService, RegistrationSettings,
};
use gatehouse_domain::oauth::resources::ResourceServerService;
use gatehouse_domain::oauth::store::OAuthStore;
use gatehouse_domain::oauth::{
    ClientService, DeviceFlowService, OAuthParts, OAuthService, OAuthSettings,
};
use gatehouse_domain::organizations::{
    AdminOrganizationService, INVITATION_DIGEST_PURPOSE, InvitationService, OrganizationService,
};
use gatehouse_domain::outbound::{OutboundGuard, OutboundPolicy};
use gatehouse_domain::passkeys::{
    PASSKEY_DIGEST_PURPOSE, PasskeyAvailability, PasskeyCeremonyStore, PasskeySettings,
};
use gatehouse_domain::passwords::{BreachedPasswordCheck, PasswordPolicy};
use gatehouse_domain::ratelimit::{RateLimit, RateLimiter};
use gatehouse_domain::registration::deletion::AccountDeletionService;
use gatehouse_domain::services::{AccountKeys, AccountParts, AccountPorts, AccountServices};
use gatehouse_domain::tokens::{TokenService, TokenSettings};
use gatehouse_domain::users::{AccountSettings, EMAIL_DIGEST_PURPOSE, EMAIL_PURPOSE};
use gatehouse_domain::webhooks::{
    WEBHOOK_SECRET_PURPOSE, WebhookParts, WebhookService, WebhookSettings,
};
use gatehouse_domain::{
    Clock, DomainError, KeyService, KeySettings, ReadinessCheck, StoreError, SystemClock,
};
use gatehouse_http::pages::{BrowserKeys, Pages};
use gatehouse_http::{AppServices, AppState, CorsSettings, HttpSettings, Metrics, RateLimits};
use gatehouse_outbound::breach::HibpClient;
use gatehouse_outbound::event_stream::{NatsChannel, NatsReadiness};
use gatehouse_outbound::mail;
use gatehouse_outbound::sms::{TwilioChannel, TwilioSettings};
use gatehouse_outbound::upstream::UpstreamClient;
use gatehouse_outbound::webhook::{TargetGuard, WebhookChannel};
use gatehouse_outbound::{BackchannelLogoutChannel, ClientDocumentFetcher};
use gatehouse_store::ratelimit::{MemoryRateLimiter, RedisRateLimiter};
use gatehouse_store::{
    Database, DatabaseOptions, Redis, RedisCeremonyStore, RedisChallengeStore, RedisDpopProofStore,
};

use crate::config::{Config, ConfigError, MfaPolicyName};
use crate::master_key;
use crate::sweeper::SweeperTask;

/// The digest purpose of refresh tokens.
const REFRESH_TOKEN_DIGEST_PURPOSE: &str = "refresh-token";
/// The digest purpose of authorization codes.
const AUTHORIZATION_CODE_DIGEST_PURPOSE: &str = "authorization-code";

/// Every data key this version uses. A secret added later gets its own purpose here (a purpose
/// missing from this list has no key: start-up fails rather than deriving one ad hoc).
fn data_key_purposes() -> Vec<String> {
    let digests = [
        EMAIL_DIGEST_PURPOSE,
        KNOWN_DEVICE_DIGEST_PURPOSE,
        MFA_DIGEST_PURPOSE,
        PASSKEY_DIGEST_PURPOSE,
        INVITATION_DIGEST_PURPOSE,
        ONE_TIME_TOKEN_DIGEST_PURPOSE,
        CLIENT_SECRET_DIGEST_PURPOSE,
        ADMIN_KEY_DIGEST_PURPOSE,
        API_KEY_DIGEST_PURPOSE,
        REFRESH_TOKEN_DIGEST_PURPOSE,
        AUTHORIZATION_CODE_DIGEST_PURPOSE,
        ACCOUNT_LIMIT_DIGEST_PURPOSE,
        AUDIT_CHECKPOINT_DIGEST_PURPOSE,
        DPOP_NONCE_DIGEST_PURPOSE,
        REGISTRATION_DIGEST_PURPOSE,
    ];
    let ciphers = [
        EMAIL_PURPOSE,
        TOTP_SECRET_PURPOSE,
        PHONE_PURPOSE,
        OUTBOX_PURPOSE,
        SIGNING_KEY_PURPOSE,
        WEBHOOK_SECRET_PURPOSE,
        SSO_FLOW_PURPOSE,
        PROVIDER_SECRET_PURPOSE,
        UPSTREAM_TOKENS_PURPOSE,
    ];
    digests
        .into_iter()
        .chain(BrowserKeys::DIGEST_PURPOSES)
        .map(digest_purpose)
        .chain(ciphers.into_iter().map(cipher_purpose))
        .chain([PEPPER_PURPOSE.to_owned()])
        .collect()
}

/// A data key that cannot be opened is a configuration problem (exit code 2) when a master
/// key is missing; the message says which setting to fix and what to run.
pub fn data_key_error(error: DataKeyError) -> StartupError {
    match error {
        DataKeyError::MasterKeyMissing { .. } | DataKeyError::LegacyMasterKeyMissing(_) => {
            ConfigError::new(
                "GATEHOUSE_PREVIOUS_MASTER_KEYS",
                format!(
                    "{error}. Start with the master key that wrapped it in \
                     GATEHOUSE_PREVIOUS_MASTER_KEYS (or as GATEHOUSE_MASTER_KEY); once \
                     `gatehouse master-key reseal` has run, the previous key can be dropped"
                ),
            )
            .into()
        }
        DataKeyError::Store(error) => StartupError::Database(error),
        other => StartupError::Other(format!("data keys: {other}")),
    }
}

/// Why the process could not start. Configuration problems exit with code 2, the rest with 1.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("database: {0}")]
    Database(#[from] StoreError),
    #[error("{0}")]
    Domain(#[from] DomainError),
    /// A command's input was refused (validation, a taken email): exit code 2.
    #[error("{0}")]
    Rejected(String),
    /// `gatehouse audit verify` found a break: exit code 3.
    #[error("audit chain broken: {0}")]
    AuditChainBroken(String),
    #[error("{0}")]
    Other(String),
}

impl StartupError {
    pub fn exit_code(&self) -> i32 {
        match self {
            StartupError::Config(_) | StartupError::Rejected(_) => 2,
            StartupError::AuditChainBroken(_) => 3,
            _ => 1,
        }
    }
}

/// Everything a running Gatehouse holds.
pub struct App {
    pub config: Config,
    pub database: Database,
    /// Present when `redis.url` is configured.
    pub redis: Option<Redis>,
    pub keys: Arc<KeyService>,
    pub accounts: AccountServices,
    pub oauth: Arc<OAuthService>,
    pub clients: Arc<ClientService>,
    pub admin_keys: Arc<AdminKeyService>,
    pub hashing: HashingPool,
    pub state: AppState,
    /// The outbox worker, started by `server::serve` and stopped with it.
    pub worker: Option<OutboxWorker>,
    /// Webhooks; `server::serve` runs their event relay beside the worker.
    pub webhooks: Arc<WebhookService>,
    /// The sweeper of expired rows; `server::serve` runs it every interval.
    pub sweeper: SweeperTask,
    /// Back-channel logout; `server::serve` runs its announcer beside the relay.
    pub backchannel: Arc<BackchannelLogout>,
}

/// Opens the database without migrating or touching keys (for `gatehouse migrate`).
pub async fn open_database(config: &Config) -> Result<Database, StartupError> {
    let url = config.database_url();
    if url.starts_with("sqlite:") && config.database.url.is_none() {
        create_data_dir(config)?;
    }
    let options = DatabaseOptions {
        max_connections: config.database.max_connections,
        acquire_timeout: Duration::from_millis(config.database.acquire_timeout_ms),
        postgres_schema: config.database.schema.clone(),
    };
    Ok(Database::connect(&url, &options).await?)
}

pub(crate) fn create_data_dir(config: &Config) -> Result<(), StartupError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&config.data_dir).map_err(
        |error| {
            ConfigError::new(
                "GATEHOUSE_DATA_DIR",
                format!("cannot create {}: {error}", config.data_dir.display()),
            )
            .into()
        },
    )
}

/// The parts every command needs: the database (migrated when `database.auto_migrate` is on),
/// the key hierarchy and its opened data keys, and the key service, with a signing key in
/// place (the first one is generated on first start).
pub struct Core {
    pub config: Config,
    pub database: Database,
    /// The master keys over the `data_keys` table (`gatehouse master-key reseal`).
    pub hierarchy: KeyHierarchy,
    /// Every key that seals, digests or peppers, unwrapped.
    pub data_keys: DataKeys,
    /// The ciphers and digesters of the services, built from `data_keys`.
    service_keys: ServiceKeys,
    pub keys: Arc<KeyService>,
    pub clock: Arc<dyn Clock>,
    /// Makes one-time tokens and sealed outbox rows; wakes this process's worker.
    pub notifier: Arc<Notifier>,
}

/// Whether email can be sent: SMTP is configured, or development writes `.eml` files.
fn email_enabled(config: &Config) -> bool {
    config.smtp.url.is_some() || config.mode == crate::config::Mode::Development
}

pub async fn build_core(config: Config) -> Result<Core, StartupError> {
    build_core_with_clock(config, Arc::new(SystemClock)).await
}

/// [`build_core`] on a given clock (tests move a `ManualClock` instead of sleeping).
pub async fn build_core_with_clock(
    config: Config,
    clock: Arc<dyn Clock>,
) -> Result<Core, StartupError> {
    create_data_dir(&config)?;
    let keys_material = master_key::resolve(&config)?;
    let database = open_database(&config).await?;
    if config.database.auto_migrate {
        gatehouse_store::migrate::run(&database).await?;
    }
    let hierarchy = KeyHierarchy::new(
        Arc::new(database.clone()),
        Arc::new(database.clone()),
        MasterKeyRing::new(keys_material.current, keys_material.previous),
        clock.clone(),
    );
    let data_keys = hierarchy.open(&data_key_purposes()).await.map_err(data_key_error)?;
    let signing_cipher = Arc::new(data_keys.cipher(SIGNING_KEY_PURPOSE).map_err(data_key_error)?);
    let keys = Arc::new(KeyService::new(
        Arc::new(database.clone()),
        signing_cipher,
        clock.clone(),
        KeySettings {
            algorithm: config.signing.algorithm,
            rsa_bits: config.signing.rsa_bits,
            retention_seconds: config.key_retention_seconds(),
            cache_seconds: 30,
            rotation_delay_seconds: config.rotation_delay_seconds(),
        },
    ));
    keys.ensure_active_key().await?;
    let notifier = Arc::new(Notifier::new(
        data_keys.cipher(OUTBOX_PURPOSE).map_err(data_key_error)?,
        data_keys.digester(ONE_TIME_TOKEN_DIGEST_PURPOSE).map_err(data_key_error)?,
        NotifierSettings { issuer: config.issuer(), email_enabled: email_enabled(&config) },
    ));
    let service_keys = ServiceKeys::new(&data_keys).map_err(data_key_error)?;
    Ok(Core { config, database, hierarchy, data_keys, service_keys, keys, clock, notifier })
}

/// The ciphers and digesters the services take, each from its purpose's data key (built once,
/// so the services' constructors cannot fail).
struct ServiceKeys {
    admin_key: Digester,
    api_key: Digester,
    refresh_token: Digester,
    authorization_code: Digester,
    client_secret: Digester,
    email_cipher: FieldCipher,
    email_digester: Digester,
    known_device_digester: Digester,
    totp_cipher: FieldCipher,
    phone_cipher: FieldCipher,
    mfa_digester: Digester,
    passkey_digester: Digester,
}

impl ServiceKeys {
    fn new(data_keys: &DataKeys) -> Result<ServiceKeys, DataKeyError> {
        Ok(ServiceKeys {
            admin_key: data_keys.digester(ADMIN_KEY_DIGEST_PURPOSE)?,
            api_key: data_keys.digester(API_KEY_DIGEST_PURPOSE)?,
            refresh_token: data_keys.digester(REFRESH_TOKEN_DIGEST_PURPOSE)?,
            authorization_code: data_keys.digester(AUTHORIZATION_CODE_DIGEST_PURPOSE)?,
            client_secret: data_keys.digester(CLIENT_SECRET_DIGEST_PURPOSE)?,
            email_cipher: data_keys.cipher(EMAIL_PURPOSE)?,
            email_digester: data_keys.digester(EMAIL_DIGEST_PURPOSE)?,
            known_device_digester: data_keys.digester(KNOWN_DEVICE_DIGEST_PURPOSE)?,
            totp_cipher: data_keys.cipher(TOTP_SECRET_PURPOSE)?,
            phone_cipher: data_keys.cipher(PHONE_PURPOSE)?,
            mfa_digester: data_keys.digester(MFA_DIGEST_PURPOSE)?,
            passkey_digester: data_keys.digester(PASSKEY_DIGEST_PURPOSE)?,
        })
    }

    fn account_keys(&self) -> AccountKeys {
        AccountKeys {
            email_cipher: self.email_cipher.clone(),
            email_digester: self.email_digester.clone(),
            known_device_digester: self.known_device_digester.clone(),
            totp_cipher: self.totp_cipher.clone(),
            phone_cipher: self.phone_cipher.clone(),
            mfa_digester: self.mfa_digester.clone(),
            passkey_digester: self.passkey_digester.clone(),
        }
    }
}

impl Core {
    /// The admin-key service (the CLI creates keys with it).
    /// The audit chain's upkeep and check; its retention checkpoints are MACed under the
    /// `audit-checkpoint` data key.
    pub fn audit_integrity(&self) -> Result<Arc<AuditIntegrity>, StartupError> {
        let checkpoint_key =
            self.data_keys.digester(AUDIT_CHECKPOINT_DIGEST_PURPOSE).map_err(data_key_error)?;
        Ok(Arc::new(AuditIntegrity::new(
            Arc::new(self.database.clone()),
            checkpoint_key,
            self.clock.clone(),
        )))
    }

    pub fn admin_keys(&self) -> AdminKeyService {
        AdminKeyService::new(
            Arc::new(self.database.clone()),
            self.service_keys.admin_key.clone(),
            self.clock.clone(),
        )
    }

    /// The token service: access tokens, ID-token signing, refresh-token digests.
    pub fn tokens(&self) -> Arc<TokenService> {
        let config = &self.config;
        Arc::new(
            TokenService::new(
                self.keys.clone(),
                self.clock.clone(),
                self.service_keys.refresh_token.clone(),
                TokenSettings {
                    issuer: config.issuer(),
                    audience: config.audience(),
                    access_token_ttl_seconds: config.tokens.access_token_ttl_seconds,
                    refresh_token_ttl_seconds: config.tokens.refresh_token_ttl_seconds,
                    session_max_lifetime_seconds: config.tokens.session_max_lifetime_seconds,
                    session_idle_timeout_seconds: config.tokens.session_idle_timeout_seconds,
                },
            )
            .with_organization_claims(Arc::new(self.database.clone())),
        )
    }

    /// The OAuth 2.1 / OpenID Connect provider on this core.
    pub fn oauth(&self, accounts: &AccountServices, tokens: Arc<TokenService>) -> OAuthService {
        OAuthService::new(OAuthParts {
            store: self.oauth_store(),
            users: Arc::new(self.database.clone()),
            session_store: Arc::new(self.database.clone()),
            sessions: accounts.sessions.clone(),
            directory: accounts.directory.clone(),
            tokens,
            code_digester: self.service_keys.authorization_code.clone(),
            clock: self.clock.clone(),
            settings: self.oauth_settings(),
            resources: Arc::new(self.resource_servers()),
        })
    }

    /// Dynamic client registration (RFC 7591/7592) on this core, registering through `clients`.
    pub fn registration(
        &self,
        clients: &Arc<ClientService>,
    ) -> Result<RegistrationService, StartupError> {
        let mode =
            RegistrationMode::parse(&self.config.oauth.dynamic_registration).unwrap_or_default();
        Ok(RegistrationService::new(
            clients.clone(),
            Arc::new(self.database.clone()),
            Arc::new(self.database.clone()),
            self.data_keys.digester(REGISTRATION_DIGEST_PURPOSE).map_err(data_key_error)?,
            self.clock.clone(),
            RegistrationSettings { mode, issuer: self.config.issuer() },
        ))
    }

    /// The registered resource servers (RFC 8707) on this core.
    pub fn resource_servers(&self) -> ResourceServerService {
        ResourceServerService::new(Arc::new(self.database.clone()), self.clock.clone())
    }

    /// The OAuth client registry and client authentication on this core.
    pub fn clients(&self) -> ClientService {
        ClientService::new(
            self.oauth_store(),
            self.service_keys.client_secret.clone(),
            self.clock.clone(),
            self.oauth_settings(),
        )
    }

    /// The SSRF rule for every outbound URL that is not the operator's own configuration.
    pub fn outbound_policy(&self) -> OutboundPolicy {
        OutboundPolicy {
            require_https: self.config.mode == crate::config::Mode::Production,
            allow_private_targets: self.config.outbound.allow_private_targets,
        }
    }

    /// The OAuth store the provider's services read clients through: the database, which
    /// client ID metadata documents join when `oauth.client_id_metadata_documents` is on.
    pub fn oauth_store(&self) -> Arc<dyn OAuthStore> {
        let database: Arc<dyn OAuthStore> = Arc::new(self.database.clone());
        if !self.config.oauth.client_id_metadata_documents {
            return database;
        }
        let policy = self.outbound_policy();
        let guard: Arc<dyn OutboundGuard> = Arc::new(TargetGuard::new(policy));
        Arc::new(DocumentClients::new(
            database,
            Arc::new(ClientDocumentFetcher::new(guard, Duration::from_secs(5))),
            self.clock.clone(),
            !policy.require_https,
        ))
    }

    fn oauth_settings(&self) -> OAuthSettings {
        OAuthSettings {
            issuer: self.config.issuer(),
            code_ttl_seconds: 60,
            id_token_ttl_seconds: self.config.tokens.id_token_ttl_seconds,
            secret_overlap_seconds: 24 * 3600,
        }
    }

    /// The account services on this core, with a hashing pool (MFA challenges in the
    /// database).
    pub fn accounts(
        &self,
        hashing: HashingPool,
        tokens: Arc<TokenService>,
    ) -> Result<AccountServices, StartupError> {
        let database = Arc::new(self.database.clone());
        self.accounts_with_challenges(hashing, tokens, database.clone(), database, None)
    }

    /// The MFA settings of the configuration.
    fn mfa_settings(&self) -> MfaSettings {
        let config = &self.config;
        MfaSettings {
            policy: match config.mfa.policy {
                MfaPolicyName::Optional => MfaPolicy::Optional,
                MfaPolicyName::Required => MfaPolicy::Required,
            },
            totp_issuer: config
                .mfa
                .totp_issuer
                .clone()
                .unwrap_or_else(|| config.branding.product_name.replace(':', " ")),
            trusted_device_ttl_seconds: config.mfa.trusted_device_days * 24 * 3600,
            reauthentication_max_age_seconds: config.mfa.reauthentication_max_age_seconds,
            sms_enabled: config.sms.account_sid.is_some(),
        }
    }

    /// Where passkeys work: the relying party from `passkeys.rp_id` / `passkeys.origins`, or
    /// from the issuer. Settings that cannot work are a start-up error; an issuer that cannot
    /// serve passkeys (an IP address) only turns them off, with the reason in their answers.
    fn passkey_settings(&self) -> Result<PasskeySettings, StartupError> {
        let config = &self.config;
        let settings = |availability| PasskeySettings {
            availability,
            reauthentication_max_age_seconds: config.mfa.reauthentication_max_age_seconds,
            require_email_verification: config.require_email_verification,
        };
        if !config.passkeys.enabled {
            return Ok(settings(PasskeyAvailability::Unavailable(
                "passkeys are turned off on this server (GATEHOUSE_PASSKEYS_ENABLED)".into(),
            )));
        }
        let issuer = url::Url::parse(&config.issuer())
            .map_err(|error| ConfigError::new("GATEHOUSE_ISSUER", error.to_string()))?;
        let origins = if config.passkeys.origins.is_empty() {
            vec![issuer.clone()]
        } else {
            config
                .passkeys
                .origins
                .iter()
                .map(|text| {
                    url::Url::parse(text).map_err(|error| {
                        ConfigError::new("GATEHOUSE_PASSKEYS_ORIGINS", format!("{text}: {error}"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?
        };
        let explicit = config.passkeys.rp_id.is_some() || !config.passkeys.origins.is_empty();
        let rp_id = match &config.passkeys.rp_id {
            Some(rp_id) => rp_id.clone(),
            None => origins
                .first()
                .and_then(|origin| origin.host_str())
                .unwrap_or_default()
                .trim_matches(['[', ']'])
                .to_owned(),
        };
        match RelyingParty::new(&rp_id, &origins, &config.branding.product_name) {
            Ok(rp) => Ok(settings(PasskeyAvailability::Available(Box::new(rp)))),
            Err(error) if explicit => {
                Err(ConfigError::new("GATEHOUSE_PASSKEYS_RP_ID", error.to_string()).into())
            }
            Err(error) => Ok(settings(PasskeyAvailability::Unavailable(error.to_string()))),
        }
    }

    /// The account service with MFA challenges kept in `challenges` (Redis when configured)
    /// and the per-account attempt budget in `limiter` (`None`: no per-account limit).
    pub fn accounts_with_challenges(
        &self,
        hashing: HashingPool,
        tokens: Arc<TokenService>,
        challenges: Arc<dyn MfaChallengeStore>,
        ceremonies: Arc<dyn PasskeyCeremonyStore>,
        limiter: Option<Arc<dyn RateLimiter>>,
    ) -> Result<AccountServices, StartupError> {
        let config = &self.config;
        let breach: Option<Arc<dyn BreachedPasswordCheck>> = match &config.password.breach_api_url {
            Some(url) => Some(Arc::new(
                HibpClient::new(
                    url,
                    Duration::from_millis(config.password.breach_api_timeout_ms),
                    Duration::from_secs(3600),
                )
                .map_err(|message| {
                    ConfigError::new("GATEHOUSE_PASSWORD_BREACH_API_URL", message)
                })?,
            )),
            None => None,
        };
        // One database implements every port; each service sees only its own.
        let database = Arc::new(self.database.clone());
        Ok(AccountServices::build(AccountParts {
            ports: AccountPorts {
                users: database.clone(),
                sessions: database.clone(),
                audit: database.clone(),
                work: database.clone(),
                one_time_tokens: database.clone(),
                known_devices: database.clone(),
                mfa: database.clone(),
                trusted_browsers: database.clone(),
                challenges,
                passkeys: database,
                passkey_ceremonies: ceremonies,
            },
            keys: self.service_keys.account_keys(),
            hashing,
            policy: Arc::new(PasswordPolicy::new(config.password_policy.clone(), breach)),
            tokens,
            notifier: self.notifier.clone(),
            clock: self.clock.clone(),
            settings: AccountSettings {
                lockout_threshold: config.lockout.threshold,
                lockout_duration_seconds: config.lockout.duration,
                require_email_verification: config.require_email_verification,
                magic_link_enabled: config.magic_link.enabled,
                signup_enabled: config.signup.enabled,
                new_device_notice: config.notices.new_device,
            },
            mfa_settings: self.mfa_settings(),
            passkey_settings: self.passkey_settings()?,
            account_limit: AccountRateLimit::new(
                limiter,
                RateLimit {
                    limit: config.rate_limit.account_per_minute,
                    window: Duration::from_secs(60),
                },
                &config.redis.key_prefix,
                self.data_keys.digester(ACCOUNT_LIMIT_DIGEST_PURPOSE).map_err(data_key_error)?,
            ),
        }))
    }
}

/// The hashing pool of the configured Argon2id parameters, with the peppers of the data keys
/// (the newest version hashes; each version's id is distinct, whatever the master keys).
pub fn hashing_pool(config: &Config, data_keys: &DataKeys) -> Result<HashingPool, StartupError> {
    let (current_pepper, previous_peppers) = data_keys.peppers().map_err(data_key_error)?;
    let hasher = PasswordHasher::new(config.argon2_settings(), current_pepper, previous_peppers)
        .map_err(|error| ConfigError::new("GATEHOUSE_PASSWORD_MEMORY_KIB", error.to_string()))?;
    let permits = config.password.hashing_concurrency.unwrap_or_else(HashingPool::default_permits);
    Ok(HashingPool::new(hasher, permits))
}

/// The email channel: SMTP when configured; in development without SMTP, `.eml` files in
/// `<data_dir>/mail/` (announced at start-up); in production without SMTP, none.
fn email_channel(config: &Config) -> Result<Option<Arc<dyn Channel>>, StartupError> {
    use secrecy::ExposeSecret;
    let branding = mail::MailBranding {
        product_name: config.branding.product_name.clone(),
        logo_url: config.branding.logo_url.clone(),
        primary_color: config.branding.primary_color.clone(),
    };
    let renderer = mail::Renderer::new(branding, config.mail.templates_dir.clone())
        .map_err(|message| ConfigError::new("GATEHOUSE_MAIL_TEMPLATES_DIR", message))?;
    let channel = match &config.smtp.url {
        Some(url) => mail::EmailChannel::smtp(url.expose_secret(), &config.smtp.from, renderer)
            .map_err(|_| ConfigError::new("GATEHOUSE_SMTP_URL", "not a usable SMTP URL"))?,
        None if config.mode == crate::config::Mode::Development => {
            let dir = config.data_dir.join("mail");
            tracing::warn!(
                dir = %dir.display(),
                "no SMTP configured (GATEHOUSE_SMTP_URL): development mode writes every email to this directory as an .eml file instead of sending it"
            );
            mail::EmailChannel::directory(dir, &config.smtp.from, renderer)
                .map_err(StartupError::Other)?
        }
        None => {
            tracing::warn!("no SMTP configured (GATEHOUSE_SMTP_URL): no email will be sent");
            return Ok(None);
        }
    };
    Ok(Some(Arc::new(channel)))
}

/// The SMS channel, when an SMS gateway is configured.
fn sms_channel(config: &Config) -> Result<Option<Arc<dyn Channel>>, StartupError> {
    use secrecy::ExposeSecret;
    let sms = &config.sms;
    let (Some(account_sid), Some(auth_token), Some(from)) =
        (&sms.account_sid, &sms.auth_token, &sms.from)
    else {
        return Ok(None);
    };
    let settings = TwilioSettings {
        api_url: sms.api_url.clone(),
        account_sid: account_sid.clone(),
        auth_token: auth_token.expose_secret().to_owned(),
        from: from.clone(),
    };
    let channel = TwilioChannel::new(settings, Duration::from_millis(sms.timeout_ms))
        .map_err(|message| ConfigError::new("GATEHOUSE_SMS_API_URL", message))?;
    Ok(Some(Arc::new(channel)))
}

fn worker_settings(config: &Config) -> WorkerSettings {
    let outbox = &config.outbox;
    WorkerSettings {
        poll_interval: Duration::from_millis(outbox.poll_interval_ms),
        backoff_base: Duration::from_millis(outbox.backoff_base_ms),
        backoff_max: Duration::from_millis(outbox.backoff_max_ms),
        max_attempts: outbox.max_attempts,
        lease: Duration::from_secs(outbox.lease_seconds),
        ..WorkerSettings::default()
    }
}

/// Creates or updates the `[[clients]]` of the configuration file.
async fn apply_declared_clients(
    config: &Config,
    clients: &ClientService,
) -> Result<(), StartupError> {
    use secrecy::ExposeSecret;
    for (index, declared) in config.clients.iter().enumerate() {
        let request = NewClient {
            client_id: Some(declared.client_id.clone()),
            name: declared.name.clone(),
            secret: declared.secret.as_ref().map(|secret| secret.expose_secret().to_owned()),
            public: declared.public,
            redirect_uris: declared.redirect_uris.clone(),
            post_logout_redirect_uris: declared.post_logout_redirect_uris.clone(),
            grant_types: declared.grant_types.clone(),
            scopes: declared.scopes.clone(),
            skip_consent: declared.skip_consent,
            require_pushed_authorization_requests: declared.require_pushed_authorization_requests,
            dpop_bound_access_tokens: declared.dpop_bound_access_tokens,
            backchannel_logout_uri: declared.backchannel_logout_uri.clone(),
            backchannel_logout_session_required: declared.backchannel_logout_session_required,
            access_token_ttl_seconds: declared.access_token_ttl_seconds,
            refresh_token_ttl_seconds: declared.refresh_token_ttl_seconds,
            jwks: None,
        };
        if !declared.public && declared.secret.is_none() {
            return Err(ConfigError::new(
                format!("clients[{index}] ({})", declared.client_id),
                "a confidential client declared in the file needs its secret (or public = true)",
            )
            .into());
        }
        clients.apply_declared_client(request).await.map_err(|error| {
            let detail = match &error {
                DomainError::Validation(issues) => issues
                    .iter()
                    .map(|issue| format!("{}: {}", issue.field, issue.message))
                    .collect::<Vec<_>>()
                    .join("; "),
                other => other.to_string(),
            };
            ConfigError::new(format!("clients[{index}] ({})", declared.client_id), detail)
        })?;
    }
    Ok(())
}

/// Builds the whole application: [`build_core`] plus the password hashing pool and the HTTP
/// state.
pub async fn build(config: Config) -> Result<App, StartupError> {
    build_with_clock(config, Arc::new(SystemClock)).await
}

/// [`build`] on a given clock (tests move a `ManualClock` instead of sleeping).
pub async fn build_with_clock(config: Config, clock: Arc<dyn Clock>) -> Result<App, StartupError> {
    let core = build_core_with_clock(config, clock).await?;
    let redis = match &core.config.redis.url {
        Some(url) => Some(Redis::connect(url).await?),
        None => None,
    };
    // MFA challenges are shared by every instance through Redis when it is configured.
    let challenges: Arc<dyn MfaChallengeStore> = match &redis {
        Some(redis) => {
            Arc::new(RedisChallengeStore::new(redis.clone(), &core.config.redis.key_prefix))
        }
        None => Arc::new(core.database.clone()),
    };
    let ceremonies: Arc<dyn PasskeyCeremonyStore> = match &redis {
        Some(redis) => {
            Arc::new(RedisCeremonyStore::new(redis.clone(), &core.config.redis.key_prefix))
        }
        None => Arc::new(core.database.clone()),
    };
    let hashing = hashing_pool(&core.config, &core.data_keys)?;
    // The dummy hash for unknown accounts is made in the background: start-up stays fast and
    // the first unknown-account sign-in costs no more than the others.
    tokio::spawn({
        let hashing = hashing.clone();
        async move { hashing.warm_up().await }
    });
    // Limits are shared across instances through Redis when it is configured.
    let rate_limiter: Option<Arc<dyn RateLimiter>> = match (core.config.rate_limit.enabled, &redis)
    {
        (false, _) => None,
        (true, Some(redis)) => Some(Arc::new(RedisRateLimiter::new(redis.clone()))),
        (true, None) => Some(Arc::new(MemoryRateLimiter::new(core.clock.clone()))),
    };
    let tokens = core.tokens();
    let organization_tokens = tokens.clone();
    let accounts = core.accounts_with_challenges(
        hashing.clone(),
        tokens.clone(),
        challenges,
        ceremonies,
        rate_limiter.clone(),
    )?;
    let oauth = Arc::new(core.oauth(&accounts, tokens));
    let device_flow =
        Arc::new(DeviceFlowService::new(oauth.clone(), Arc::new(core.database.clone())));
    let par = Arc::new(PushedAuthorizationService::new(
        oauth.clone(),
        core.oauth_store(),
        Arc::new(core.database.clone()),
        // The request_uri is an authorization secret like a code: the same digest key.
        core.service_keys.authorization_code.clone(),
        core.clock.clone(),
        ParSettings { required: core.config.oauth.require_pushed_authorization_requests },
    ));
    // DPoP proofs are remembered where every instance sees them: Redis when configured.
    let dpop_proofs: Arc<dyn DpopProofStore> = match &redis {
        Some(redis) => {
            Arc::new(RedisDpopProofStore::new(redis.clone(), &core.config.redis.key_prefix))
        }
        None => Arc::new(core.database.clone()),
    };
    let dpop = Arc::new(DpopService::new(
        dpop_proofs,
        core.clock.clone(),
        core.data_keys.digester(DPOP_NONCE_DIGEST_PURPOSE).map_err(data_key_error)?,
        DpopSettings { require_nonce: core.config.oauth.dpop_require_nonce },
        &core.config.issuer(),
    ));
    let resource_servers = Arc::new(core.resource_servers());
    let clients = Arc::new(core.clients());
    apply_declared_clients(&core.config, &clients).await?;
    let registration = Arc::new(core.registration(&clients)?);
    let token_exchange = Arc::new(TokenExchangeService::new(
        Arc::new(core.database.clone()),
        Arc::new(core.database.clone()),
        core.tokens(),
        resource_servers.clone(),
        Arc::new(core.database.clone()),
        core.clock.clone(),
    ));
    // Back-channel logout: ended sessions of taking-part clients → outbox rows → logout tokens.
    let backchannel = Arc::new(BackchannelLogout::new(
        Arc::new(core.database.clone()),
        Arc::new(core.database.clone()),
        core.tokens(),
        core.notifier.clone(),
        core.clock.clone(),
        &core.config.issuer(),
    ));
    // One SSRF rule for every outbound URL that is not the operator's own configuration.
    let outbound_policy = core.outbound_policy();
    let admin_keys = Arc::new(core.admin_keys());
    let api_key_digester = core.service_keys.api_key.clone();
    let browser_keys = BrowserKeys::from_digesters(|purpose| core.data_keys.digester(purpose))
        .map_err(data_key_error)?;
    let pages = Pages::new(core.config.branding.clone(), &core.config.issuer(), browser_keys)
        .map_err(|message| StartupError::Other(format!("hosted pages: {message}")))?;
    let invitation_digester =
        core.data_keys.digester(INVITATION_DIGEST_PURPOSE).map_err(data_key_error)?;
    let webhook_cipher = core.data_keys.cipher(WEBHOOK_SECRET_PURPOSE).map_err(data_key_error)?;
    let sso_flow_cipher = core.data_keys.cipher(SSO_FLOW_PURPOSE).map_err(data_key_error)?;
    let upstream_token_cipher =
        core.data_keys.cipher(UPSTREAM_TOKENS_PURPOSE).map_err(data_key_error)?;
    let provider_secret_cipher =
        core.data_keys.cipher(PROVIDER_SECRET_PURPOSE).map_err(data_key_error)?;
    let audit_integrity = core.audit_integrity()?;
    let Core { config, database, keys, clock, notifier, data_keys, .. } = core;
    let notifier_for_invitations = notifier.clone();
    let organizations = Arc::new(OrganizationService::new(
        Arc::new(database.clone()),
        Arc::new(database.clone()),
        Arc::new(database.clone()),
        organization_tokens,
        clock.clone(),
        config.mfa.reauthentication_max_age_seconds,
    ));
    // Only the server caches; the CLI (build_core) always reads the database.
    database.start_cache(Duration::from_secs(config.cache.ttl_seconds));
    database.start_checkpoints().await?;
    let guard: Arc<dyn OutboundGuard> = Arc::new(TargetGuard::new(outbound_policy));
    // The event stream, when configured: NATS down at start fails nothing (the outbox waits).
    let event_stream = match &config.nats.url {
        Some(url) => Some(Arc::new(
            NatsChannel::connect(url, Duration::from_millis(config.webhooks.timeout_ms))
                .await
                .map_err(|message| StartupError::Other(format!("nats.url: {message}")))?,
        )),
        None => None,
    };
    let webhooks = Arc::new(WebhookService::new(WebhookParts {
        store: Arc::new(database.clone()),
        work: Arc::new(database.clone()),
        notifier: notifier.clone(),
        cipher: webhook_cipher,
        guard: guard.clone(),
        admins: accounts.directory.clone(),
        clock: clock.clone(),
        settings: WebhookSettings {
            policy: outbound_policy,
            previous_secret_overlap_seconds: 24 * 3600,
            event_stream: event_stream.is_some(),
            disable_after_seconds: config.webhooks.disable_after_seconds,
        },
    }));
    let mut channels: Vec<Arc<dyn Channel>> = email_channel(&config)?.into_iter().collect();
    channels.extend(sms_channel(&config)?);
    channels.push(Arc::new(WebhookChannel::new(
        webhooks.clone(),
        guard.clone(),
        Duration::from_millis(config.webhooks.timeout_ms),
        Duration::from_millis(config.webhooks.first_retry_ms),
    )));
    channels.push(Arc::new(BackchannelLogoutChannel::new(
        backchannel.clone(),
        guard.clone(),
        Duration::from_millis(config.webhooks.timeout_ms),
    )));
    if let Some(stream) = &event_stream {
        channels.push(stream.clone());
    }
    let worker = Some(OutboxWorker::new(
        Arc::new(database.clone()),
        notifier.clone(),
        channels,
        clock.clone(),
        worker_settings(&config),
    ));
    let deliveries =
        Arc::new(DeliveryService::new(Arc::new(database.clone()), notifier, clock.clone()));
    let overview = Arc::new(gatehouse_domain::overview::AdminOverview::new(
        Arc::new(database.clone()),
        clock.clone(),
    ));

    let mut readiness: Vec<Arc<dyn ReadinessCheck>> = vec![Arc::new(database.clone())];
    if let Some(redis) = &redis {
        readiness.push(Arc::new(redis.clone()));
    }
    if let Some(stream) = &event_stream {
        readiness.push(Arc::new(NatsReadiness::new(stream)));
    }
    // Sign-in through upstream providers (the operator's own configuration: no SSRF rule).
    let providers = crate::config::identity_providers(&config.identity_providers)
        .map_err(|error| StartupError::Other(format!("{}: {}", error.setting, error.message)))?;
    let federation = Arc::new(FederationService::new(FederationParts {
        sessions: Arc::new(database.clone()),
        providers,
        stored: Arc::new(database.clone()),
        secret_cipher: provider_secret_cipher,
        guard: guard.clone(),
        upstream: Arc::new(
            UpstreamClient::new(Duration::from_secs(10), guard.clone())
                .map_err(StartupError::Other)?,
        ),
        identities: Arc::new(database.clone()),
        users: Arc::new(database.clone()),
        passkeys: Arc::new(database.clone()),
        work: Arc::new(database.clone()),
        directory: accounts.directory.clone(),
        sign_in: accounts.sign_in.clone(),
        flow_cipher: sso_flow_cipher,
        token_cipher: upstream_token_cipher,
        clock: clock.clone(),
        settings: FederationSettings {
            issuer: config.issuer(),
            signup_enabled: config.signup.enabled,
            require_email_verification: config.require_email_verification,
            reauthentication_max_age_seconds: config.mfa.reauthentication_max_age_seconds,
        },
    }));
    let metrics = Arc::new(Metrics::new().map_err(StartupError::Other)?);
    Metrics::spawn_upkeep(&metrics);
    let account_deletions = Arc::new(AccountDeletionService::new(
        accounts.registration.clone(),
        Arc::new(database.clone()),
        data_keys.digester(ONE_TIME_TOKEN_DIGEST_PURPOSE).map_err(data_key_error)?,
        config.account_deletion.grace_days,
    ));
    let sweeper = SweeperTask::new(
        &config,
        &database,
        clock.clone(),
        metrics.clone(),
        audit_integrity,
        account_deletions.clone(),
    );
    let per_minute = |limit: u32| RateLimit { limit, window: Duration::from_secs(60) };
    let state = AppState::new(AppServices {
        keys: keys.clone(),
        documents: Arc::default(),
        accounts: accounts.clone(),
        oauth: oauth.clone(),
        clients: clients.clone(),
        device_flow,
        par,
        dpop,
        resource_servers,
        registration,
        token_exchange,
        admin_keys: admin_keys.clone(),
        organizations: organizations.clone(),
        account_deletions,
        api_keys: Arc::new(ApiKeyService::new(
            Arc::new(database.clone()),
            Arc::new(database.clone()),
            organizations.clone(),
            api_key_digester,
            clock.clone(),
            ApiKeySettings {
                reauthentication_max_age_seconds: config.mfa.reauthentication_max_age_seconds,
            },
        )),
        admin_organizations: Arc::new(AdminOrganizationService::new(organizations.clone())),
        invitations: Arc::new(InvitationService::new(
            organizations,
            Arc::new(database.clone()),
            accounts.directory.clone(),
            notifier_for_invitations,
            invitation_digester,
            clock.clone(),
        )),
        audit_log: Arc::new(AuditLog::new(Arc::new(database.clone()))),
        webhooks: webhooks.clone(),
        federation,
        overview,
        deliveries,
        rate_limiter,
        rate_limits: RateLimits {
            key_prefix: config.redis.key_prefix.clone(),
            sign_in: per_minute(config.rate_limit.sign_in_per_minute),
            sign_up: per_minute(config.rate_limit.sign_up_per_minute),
            refresh: per_minute(config.rate_limit.refresh_per_minute),
            email: per_minute(config.rate_limit.email_per_minute),
            token: per_minute(config.rate_limit.token_per_minute),
            introspect: per_minute(config.rate_limit.introspect_per_minute),
            device_authorization: per_minute(config.rate_limit.device_authorization_per_minute),
            device_verification: per_minute(config.rate_limit.device_verification_per_minute),
            api_read: per_minute(config.rate_limit.api_get_per_minute),
            api_write: per_minute(config.rate_limit.api_write_per_minute),
            fail_open: config.rate_limit.fail_open,
        },
        readiness: readiness.into(),
        metrics,
        settings: Arc::new(HttpSettings {
            body_limit_bytes: config.http.body_limit_bytes,
            request_timeout: Duration::from_secs(config.http.request_timeout_seconds),
            trusted_proxies: config.trusted_proxy_networks(),
            strict_transport_security: config.mode == crate::config::Mode::Production,
            cors: CorsSettings::new(&config.cors.allowed_origins, config.cors.max_age_seconds),
            client_id_metadata_documents: config.oauth.client_id_metadata_documents,
            ..HttpSettings::default()
        }),
        pages: Arc::new(pages),
    });
    Ok(App {
        config,
        database,
        redis,
        keys,
        accounts,
        oauth,
        clients,
        admin_keys,
        hashing,
        state,
        worker,
        webhooks,
        sweeper,
        backchannel,
    })
}
