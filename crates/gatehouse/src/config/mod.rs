//! The typed configuration tree: defaults, then the TOML file, then `GATEHOUSE_*` environment
//! variables; unknown keys and invalid values are refused with a message naming the setting.
//!
//! Invariant: configuration is loaded once in `main` and passed down; nothing reads the
//! environment later.

mod env;
mod identity_providers;
mod validate;

use std::path::{Path, PathBuf};

use gatehouse_crypto::{Argon2Settings, SigningAlgorithm};
use gatehouse_domain::passwords::PasswordPolicySettings;
use secrecy::SecretString;
use serde::Deserialize;

pub use env::{SETTINGS, env_name};
pub use identity_providers::{IdentityProviderConfig, identity_providers};

/// `development` (default) or `production`, which refuses insecure settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Development,
    Production,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub mode: Mode,
    /// The public base URL; `http://<http.addr>` when unset.
    pub issuer: Option<String>,
    /// Where the SQLite file and the development master key live.
    pub data_dir: PathBuf,
    pub master_key: Option<SecretString>,
    pub master_key_file: Option<PathBuf>,
    /// Earlier master keys, still accepted for decryption during a rotation.
    pub previous_master_keys: Vec<SecretString>,
    /// Sign-in refused (and sign-up answers without tokens) until the email is verified.
    pub require_email_verification: bool,
    /// Proxies (IPs or CIDR ranges) whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<String>,
    pub http: HttpConfig,
    /// Browser apps on other origins allowed to call the first-party API (`/v1`).
    pub cors: CorsConfig,
    /// Deleting one's own account: at once, or after a grace period.
    pub account_deletion: AccountDeletionConfig,
    pub database: DatabaseConfig,
    pub redis: RedisConfig,
    pub nats: NatsConfig,
    pub log: LogConfig,
    pub password: PasswordConfig,
    pub password_policy: PasswordPolicySettings,
    pub signing: SigningConfig,
    pub tokens: TokensConfig,
    pub lockout: LockoutConfig,
    pub rate_limit: RateLimitConfig,
    /// Product name, logo and colour of the hosted pages and emails.
    pub branding: gatehouse_http::pages::Branding,
    pub smtp: SmtpConfig,
    pub mail: MailConfig,
    pub magic_link: MagicLinkConfig,
    pub signup: SignupConfig,
    pub passkeys: PasskeysConfig,
    pub notices: NoticesConfig,
    pub outbox: OutboxConfig,
    pub outbound: OutboundConfig,
    pub webhooks: WebhooksConfig,
    pub sweeper: SweeperConfig,
    pub audit: AuditConfig,
    pub cache: CacheConfig,
    /// The OAuth provider's protocol options.
    pub oauth: OAuthConfig,
    pub mfa: MfaConfig,
    /// The SMS gateway (Twilio-compatible), for MFA codes by text message.
    pub sms: SmsConfig,
    /// OAuth clients declared in the file (`[[clients]]`), applied at every start.
    pub clients: Vec<ClientConfig>,
    /// Upstream providers people sign in with (`[[identity_providers]]`), file only.
    pub identity_providers: Vec<IdentityProviderConfig>,
}

/// One `[[clients]]` entry. File only: lists of tables have no environment form.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    pub client_id: String,
    pub name: String,
    /// The secret of a confidential client (at least 32 characters); keep the file private.
    pub secret: Option<SecretString>,
    #[serde(default)]
    pub public: bool,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    #[serde(default)]
    pub grant_types: Vec<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub skip_consent: bool,
    #[serde(default)]
    pub require_pushed_authorization_requests: bool,
    #[serde(default)]
    pub dpop_bound_access_tokens: bool,
    /// OpenID Connect Back-Channel Logout 1.0: where logout tokens are sent.
    pub backchannel_logout_uri: Option<String>,
    #[serde(default)]
    pub backchannel_logout_session_required: bool,
    pub access_token_ttl_seconds: Option<i64>,
    pub refresh_token_ttl_seconds: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LockoutConfig {
    /// Consecutive failed sign-ins that lock an account; 0 disables lockout.
    pub threshold: i64,
    /// Seconds the lock lasts.
    pub duration: i64,
}

impl Default for LockoutConfig {
    fn default() -> Self {
        Self { threshold: 5, duration: 900 }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    pub enabled: bool,
    /// With Redis (the limiter's store) down: `false` (the default) refuses sign-ins, code
    /// checks and token requests with 503 rather than let unlimited guesses through; `true`
    /// lets them through. Other budgets always let requests through while it is down.
    pub fail_open: bool,
    /// Requests per client IP per minute.
    pub sign_in_per_minute: u32,
    pub sign_up_per_minute: u32,
    pub refresh_per_minute: u32,
    /// Requests that send an email (password reset, magic link, verification resend).
    pub email_per_minute: u32,
    /// Attempts at one account per minute, whatever their addresses: password sign-ins
    /// naming it, second factors, step-ups, password changes.
    pub account_per_minute: u32,
    /// `POST /oauth2/token`: per client id and, separately, per client IP.
    pub token_per_minute: u32,
    /// `POST /oauth2/introspect` and `/oauth2/revoke`, per client IP.
    pub introspect_per_minute: u32,
    /// `POST /oauth2/device_authorization`, per client IP.
    pub device_authorization_per_minute: u32,
    /// User-code entry on the hosted `/device` page, per client IP.
    pub device_verification_per_minute: u32,
    /// The general `/v1` budgets: per principal when authenticated, per IP otherwise.
    pub api_get_per_minute: u32,
    pub api_write_per_minute: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            fail_open: false,
            sign_in_per_minute: 5,
            sign_up_per_minute: 3,
            refresh_per_minute: 10,
            email_per_minute: 5,
            account_per_minute: 20,
            token_per_minute: 300,
            introspect_per_minute: 600,
            device_authorization_per_minute: 30,
            device_verification_per_minute: 10,
            api_get_per_minute: 600,
            api_write_per_minute: 300,
        }
    }
}

/// Outgoing email. The URL may hold a password, so it is a secret.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpConfig {
    /// `smtp://host:port` (plain), `smtp://host?tls=required` (STARTTLS), `smtps://host`
    /// (TLS), `user:password@` for AUTH. Unset in development: messages go to
    /// `<data_dir>/mail/*.eml`.
    pub url: Option<SecretString>,
    /// The From address (`name@example.com` or `Name <name@example.com>`).
    pub from: String,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self { url: None, from: "Gatehouse <no-reply@localhost>".into() }
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct MailConfig {
    /// A directory whose `message.txt`/`message.html` or `<kind>.txt`/`<kind>.html` replace
    /// the embedded email templates.
    pub templates_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct MagicLinkConfig {
    /// Sign-in links by email (`POST /v1/auth/magic-link`, `/magic-link`).
    pub enabled: bool,
}

/// Passkeys (WebAuthn).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasskeysConfig {
    /// Registration and sign-in with passkeys (`/v1/me/passkeys*`, `/v1/auth/passkey/*`).
    pub enabled: bool,
    /// The relying-party id: the issuer's host when unset (a domain, never an IP address).
    pub rp_id: Option<String>,
    /// The origins allowed to run ceremonies: the issuer's origin when empty.
    pub origins: Vec<String>,
}

impl Default for PasskeysConfig {
    fn default() -> Self {
        Self { enabled: true, rp_id: None, origins: Vec::new() }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SignupConfig {
    /// Self-service sign-up (`POST /v1/auth/sign-up`, `/signup`); off: 403 `signup_disabled`,
    /// and accounts come from admins, the CLI and bulk import.
    pub enabled: bool,
}

impl Default for SignupConfig {
    fn default() -> Self {
        Self { enabled: true }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NoticesConfig {
    /// Email a user when they sign in from a device (user agent + IP class) they never used.
    pub new_device: bool,
}

impl Default for NoticesConfig {
    fn default() -> Self {
        Self { new_device: true }
    }
}

/// The OAuth provider's protocol options.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OAuthConfig {
    /// Every client must push its authorization requests to `/oauth2/par` first (RFC 9126);
    /// a client can also be required to alone (`require_pushed_authorization_requests`).
    pub require_pushed_authorization_requests: bool,
    /// Every DPoP proof must carry a nonce the server issued (RFC 9449 §8): a client first
    /// gets `use_dpop_nonce` and the nonce in `DPoP-Nonce`. Nonces are derived from the
    /// time, so every instance accepts every other's.
    pub dpop_require_nonce: bool,
    /// Dynamic client registration (RFC 7591/7592) at `/oauth2/register`: `off` (default),
    /// `open` (anyone, public clients only) or `token` (with an initial access token from the
    /// admin API or `gatehouse registration-token create`).
    pub dynamic_registration: String,
    /// OAuth Client ID Metadata Documents: a `client_id` that is an https URL names the JSON
    /// document describing the (public) client, fetched under the outbound SSRF rule and
    /// kept as long as its `Cache-Control` allows (a minute to a day). Off by default.
    pub client_id_metadata_documents: bool,
}

/// The in-memory read cache of sessions, users, clients and token revocations.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// How long an entry may be served; 0 turns the cache off. Changes made through any
    /// Gatehouse instance evict entries at once; this bounds only changes made behind its
    /// back (another process writing the same SQLite file).
    pub ttl_seconds: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self { ttl_seconds: 30 }
    }
}

/// Multi-factor authentication.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MfaConfig {
    /// `optional` (default) or `required`: users without a second factor enrol one (TOTP)
    /// before they get tokens.
    pub policy: MfaPolicyName,
    /// The issuer label authenticator apps show; the product name when unset.
    pub totp_issuer: Option<String>,
    /// How long a trusted device skips the second factor.
    pub trusted_device_days: i64,
    /// How recent an authentication sensitive actions need (disable MFA, ...).
    pub reauthentication_max_age_seconds: i64,
}

impl Default for MfaConfig {
    fn default() -> Self {
        Self {
            policy: MfaPolicyName::Optional,
            totp_issuer: None,
            trusted_device_days: 30,
            reauthentication_max_age_seconds: 300,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MfaPolicyName {
    #[default]
    Optional,
    Required,
}

/// A Twilio-compatible SMS API. SMS is on when `account_sid` is set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmsConfig {
    pub api_url: String,
    pub account_sid: Option<String>,
    pub auth_token: Option<SecretString>,
    /// The sender number (E.164) or messaging-service SID.
    pub from: Option<String>,
    pub timeout_ms: u64,
}

impl Default for SmsConfig {
    fn default() -> Self {
        Self {
            api_url: "https://api.twilio.com".into(),
            account_sid: None,
            auth_token: None,
            from: None,
            timeout_ms: 10_000,
        }
    }
}

/// The outbox worker's pace.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboxConfig {
    /// How often the worker looks for due deliveries (it is also woken at once by this
    /// instance's writes).
    pub poll_interval_ms: u64,
    /// The first retry waits about this long, each later one twice as long (with jitter).
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
    /// Attempts before a delivery is dead-lettered.
    pub max_attempts: i64,
    /// A claimed delivery whose worker died is claimed again after this.
    pub lease_seconds: u64,
    /// Delivered rows are kept this many days, then the sweeper removes them.
    pub retention_days: i64,
}

/// Outbound calls to URLs that are not the operator's own configuration (webhooks): the SSRF
/// rule (`gatehouse_domain::outbound`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboundConfig {
    /// Allows loopback, private, link-local and metadata targets (development, tests).
    pub allow_private_targets: bool,
}

/// Webhook delivery.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    /// One call's bound.
    pub timeout_ms: u64,
    /// The retry schedule's first wait; the rest scale with it (5 s, 5 min, 30 min, 2 h, 5 h,
    /// 10 h, 10 h by default).
    pub first_retry_ms: u64,
    /// An endpoint whose every attempt has failed for this long is disabled (3 days).
    pub disable_after_seconds: i64,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        Self { timeout_ms: 10_000, first_retry_ms: 5_000, disable_after_seconds: 3 * 24 * 3600 }
    }
}

/// The sweeper: expired rows removed in the background (see `gatehouse_domain::sweeper`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SweeperConfig {
    /// Seconds between sweeps (one instance of several sweeps per period); 0 turns it off.
    pub interval_seconds: u64,
    /// Rows deleted per statement.
    pub batch_size: u32,
}

impl Default for SweeperConfig {
    fn default() -> Self {
        Self { interval_seconds: 300, batch_size: 500 }
    }
}

/// The audit log's retention.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Events older than this many days are removed by the sweeper; 0 keeps them forever.
    pub retention_days: i64,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            poll_interval_ms: 1000,
            backoff_base_ms: 10_000,
            backoff_max_ms: 3_600_000,
            max_attempts: 8,
            lease_seconds: 60,
            retention_days: 7,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub addr: String,
    pub body_limit_bytes: usize,
    pub request_timeout_seconds: u64,
    /// How long in-flight requests may run after SIGTERM before the process exits anyway.
    pub shutdown_grace_seconds: u64,
}

/// `[account_deletion]`: `grace_days` = 0 (the default) deletes an account at once when its
/// user asks; more suspends it for that many days (a link in an email restores it), then the
/// sweeper deletes it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccountDeletionConfig {
    pub grace_days: i64,
}

/// `[cors]`: exact origins (`https://app.example.com`) whose pages may call `/v1` with
/// credentials. Empty (the default): no cross-origin access to `/v1`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorsConfig {
    pub allowed_origins: Vec<String>,
    /// How long browsers may cache a preflight's answer.
    pub max_age_seconds: u64,
}

impl Default for CorsConfig {
    fn default() -> Self {
        Self { allowed_origins: Vec::new(), max_age_seconds: 3600 }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://...` or `postgres://...`; `sqlite://<data_dir>/gatehouse.db` when unset.
    pub url: Option<String>,
    /// PostgreSQL only: the schema to use (`search_path`), for sharing one database.
    pub schema: Option<String>,
    pub max_connections: u32,
    /// How long a request waits for a connection before answering 503 (`Retry-After`): with
    /// the database down, requests fail this fast instead of queueing.
    pub acquire_timeout_ms: u64,
    /// Apply pending migrations at start (otherwise run `gatehouse migrate`).
    pub auto_migrate: bool,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct NatsConfig {
    /// With a URL (`nats://127.0.0.1:4222`), every event is also published to NATS JetStream
    /// (stream `GATEHOUSE_EVENTS`, subjects `gatehouse.events.<type>`).
    pub url: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    pub url: Option<String>,
    /// Prefix of every key Gatehouse writes, so deployments can share one Redis.
    pub key_prefix: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `gatehouse=debug,info`.
    pub level: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordConfig {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    /// Argon2id computations allowed at once; the number of cores when unset.
    pub hashing_concurrency: Option<usize>,
    /// A HIBP-compatible range API (`https://api.pwnedpasswords.com`); unset means only the
    /// bundled offline list of common passwords is checked.
    pub breach_api_url: Option<String>,
    pub breach_api_timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SigningConfig {
    pub algorithm: SigningAlgorithm,
    pub rsa_bits: u32,
    /// Seconds between a rotation (the new key published) and the new key signing: 0, or more
    /// than the key cache's 30 s. Unset: 35 on PostgreSQL (several instances may share it),
    /// 0 on SQLite (one instance).
    pub rotation_delay_seconds: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokensConfig {
    pub access_token_ttl_seconds: i64,
    pub id_token_ttl_seconds: i64,
    /// Each refresh token's life; the window slides on every refresh.
    pub refresh_token_ttl_seconds: i64,
    /// A session never outlives this, however often it refreshes.
    pub session_max_lifetime_seconds: i64,
    /// A hosted-page (browser) session unused for this long must sign in again.
    pub session_idle_timeout_seconds: i64,
    /// `aud` of first-party access tokens; the issuer when unset.
    pub audience: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            mode: Mode::Development,
            issuer: None,
            data_dir: PathBuf::from("./data"),
            master_key: None,
            master_key_file: None,
            previous_master_keys: Vec::new(),
            require_email_verification: false,
            trusted_proxies: Vec::new(),
            http: HttpConfig::default(),
            cors: CorsConfig::default(),
            account_deletion: AccountDeletionConfig::default(),
            database: DatabaseConfig::default(),
            redis: RedisConfig::default(),
            nats: NatsConfig::default(),
            log: LogConfig::default(),
            password: PasswordConfig::default(),
            password_policy: PasswordPolicySettings::default(),
            signing: SigningConfig::default(),
            tokens: TokensConfig::default(),
            lockout: LockoutConfig::default(),
            rate_limit: RateLimitConfig::default(),
            branding: gatehouse_http::pages::Branding::default(),
            smtp: SmtpConfig::default(),
            mail: MailConfig::default(),
            magic_link: MagicLinkConfig::default(),
            signup: SignupConfig::default(),
            outbound: OutboundConfig::default(),
            webhooks: WebhooksConfig::default(),
            passkeys: PasskeysConfig::default(),
            notices: NoticesConfig::default(),
            outbox: OutboxConfig::default(),
            sweeper: SweeperConfig::default(),
            audit: AuditConfig::default(),
            cache: CacheConfig::default(),
            oauth: OAuthConfig::default(),
            mfa: MfaConfig::default(),
            sms: SmsConfig::default(),
            clients: Vec::new(),
            identity_providers: Vec::new(),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:8080".into(),
            body_limit_bytes: 64 * 1024,
            request_timeout_seconds: 30,
            shutdown_grace_seconds: 30,
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: None,
            schema: None,
            max_connections: 10,
            acquire_timeout_ms: 2000,
            auto_migrate: true,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { format: LogFormat::Human, level: "info".into() }
    }
}

impl Default for PasswordConfig {
    fn default() -> Self {
        let defaults = Argon2Settings::default();
        Self {
            memory_kib: defaults.memory_kib,
            iterations: defaults.iterations,
            parallelism: defaults.parallelism,
            hashing_concurrency: None,
            breach_api_url: None,
            breach_api_timeout_ms: 2000,
        }
    }
}

impl Default for SigningConfig {
    fn default() -> Self {
        Self { algorithm: SigningAlgorithm::RS256, rsa_bits: 2048, rotation_delay_seconds: None }
    }
}

impl Default for TokensConfig {
    fn default() -> Self {
        Self {
            access_token_ttl_seconds: 900,
            id_token_ttl_seconds: 3600,
            refresh_token_ttl_seconds: 7 * 24 * 3600,
            session_max_lifetime_seconds: 30 * 24 * 3600,
            session_idle_timeout_seconds: 7 * 24 * 3600,
            audience: None,
        }
    }
}

/// A setting that stops start-up (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {setting}: {message}")]
pub struct ConfigError {
    /// The environment variable or file key at fault.
    pub setting: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(setting: impl Into<String>, message: impl Into<String>) -> Self {
        Self { setting: setting.into(), message: message.into() }
    }
}

impl Config {
    /// Loads from the optional file and the given environment, then validates.
    pub fn load(
        file: Option<&Path>,
        environment: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|error| {
                    ConfigError::new(path.display().to_string(), format!("cannot read: {error}"))
                })?;
                text.parse::<toml::Table>().map_err(|error| {
                    ConfigError::new(path.display().to_string(), error.message().to_owned())
                })?
            }
            None => toml::Table::new(),
        };
        env::overlay(&mut table, environment)?;
        let deserializer = toml::Value::Table(table);
        let config: Config = serde_path_to_error::deserialize(deserializer).map_err(|error| {
            let path = error.path().to_string();
            ConfigError::new(env::describe_path(&path), error.inner().to_string())
        })?;
        config.validate()?;
        Ok(config)
    }

    /// The issuer URL, defaulting to `http://<http.addr>` — and to `http://localhost:<port>`
    /// when the server listens on a loopback address, so passkeys (WebAuthn refuses IP
    /// addresses as relying-party ids) work in development out of the box.
    pub fn issuer(&self) -> String {
        self.issuer.clone().unwrap_or_else(|| {
            match self.http.addr.parse::<std::net::SocketAddr>() {
                Ok(addr) if addr.ip().is_loopback() => {
                    format!("http://localhost:{}", addr.port())
                }
                _ => format!("http://{}", self.http.addr),
            }
        })
    }

    /// `aud` of first-party access tokens.
    pub fn audience(&self) -> String {
        self.tokens.audience.clone().unwrap_or_else(|| self.issuer())
    }

    /// The trusted proxies as networks (a bare IP is a /32 or /128). Validated at load.
    pub fn trusted_proxy_networks(&self) -> Vec<ipnet::IpNet> {
        self.trusted_proxies.iter().filter_map(|text| parse_network(text)).collect()
    }

    pub fn database_url(&self) -> String {
        self.database
            .url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("gatehouse.db").display()))
    }

    pub fn argon2_settings(&self) -> Argon2Settings {
        Argon2Settings {
            memory_kib: self.password.memory_kib,
            iterations: self.password.iterations,
            parallelism: self.password.parallelism,
        }
    }

    /// How long a retired signing key stays published: the longest token it may have signed
    /// plus a minute of clock skew.
    /// The signing-key rotation delay in force: the setting, else 35 s on PostgreSQL (more
    /// than the 30 s key cache, for several instances) and 0 on SQLite.
    pub fn rotation_delay_seconds(&self) -> i64 {
        self.signing.rotation_delay_seconds.unwrap_or_else(|| {
            match gatehouse_store::backend_of(&self.database_url()) {
                Some(gatehouse_store::Backend::Postgres) => 35,
                _ => 0,
            }
        })
    }

    pub fn key_retention_seconds(&self) -> i64 {
        self.tokens.access_token_ttl_seconds.max(self.tokens.id_token_ttl_seconds) + 60
    }
}

pub(crate) fn parse_network(text: &str) -> Option<ipnet::IpNet> {
    text.parse::<ipnet::IpNet>()
        .ok()
        .or_else(|| text.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from))
}

#[cfg(test)]
mod tests;
