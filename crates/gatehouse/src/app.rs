//! Wiring: from a validated [`Config`] to a ready application — database open and migrated,
//! master key resolved, services built, the first signing key in place.

use std::sync::Arc;
use std::time::Duration;

use gatehouse_crypto::{FieldCipher, HashingPool, PasswordHasher, Pepper};
use gatehouse_domain::keys::SIGNING_KEY_PURPOSE;
use gatehouse_domain::{
    Clock, DomainError, KeyService, KeySettings, ReadinessCheck, StoreError, SystemClock,
};
use gatehouse_http::{AppState, HttpSettings, Metrics};
use gatehouse_store::{Database, DatabaseOptions, Redis};

use crate::config::{Config, ConfigError};
use crate::master_key;

/// Why the process could not start. Configuration problems exit with code 2, the rest with 1.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("database: {0}")]
    Database(#[from] StoreError),
    #[error("{0}")]
    Domain(#[from] DomainError),
    #[error("{0}")]
    Other(String),
}

impl StartupError {
    pub fn exit_code(&self) -> i32 {
        match self {
            StartupError::Config(_) => 2,
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
    pub hashing: HashingPool,
    pub state: AppState,
}

/// Opens the database without migrating or touching keys (for `gatehouse migrate`).
pub async fn open_database(config: &Config) -> Result<Database, StartupError> {
    let url = config.database_url();
    if url.starts_with("sqlite:") && config.database.url.is_none() {
        create_data_dir(config)?;
    }
    let options = DatabaseOptions {
        max_connections: config.database.max_connections,
        postgres_schema: config.database.schema.clone(),
        ..DatabaseOptions::default()
    };
    Ok(Database::connect(&url, &options).await?)
}

fn create_data_dir(config: &Config) -> Result<(), StartupError> {
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
/// the master keys and the key service, with a signing key in place (the first one is
/// generated on first start).
pub struct Core {
    pub config: Config,
    pub database: Database,
    pub master_keys: master_key::MasterKeys,
    pub keys: Arc<KeyService>,
}

pub async fn build_core(config: Config) -> Result<Core, StartupError> {
    create_data_dir(&config)?;
    let keys_material = master_key::resolve(&config)?;
    let database = open_database(&config).await?;
    if config.database.auto_migrate {
        gatehouse_store::migrate::run(&database).await?;
    }
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let signing_cipher = Arc::new(FieldCipher::new(
        &keys_material.current,
        &keys_material.previous,
        SIGNING_KEY_PURPOSE,
    ));
    let keys = Arc::new(KeyService::new(
        Arc::new(database.clone()),
        signing_cipher,
        clock,
        KeySettings {
            algorithm: config.signing.algorithm,
            rsa_bits: config.signing.rsa_bits,
            retention_seconds: config.key_retention_seconds(),
            cache_seconds: 30,
        },
    ));
    keys.ensure_active_key().await?;
    Ok(Core { config, database, master_keys: keys_material, keys })
}

/// Builds the whole application: [`build_core`] plus the password hashing pool and the HTTP
/// state.
pub async fn build(config: Config) -> Result<App, StartupError> {
    let Core { config, database, master_keys: keys_material, keys } = build_core(config).await?;
    let previous_peppers =
        keys_material.previous.iter().map(|key| Pepper::from_master(key, 1)).collect();
    let hasher = PasswordHasher::new(
        config.argon2_settings(),
        Pepper::from_master(&keys_material.current, 1),
        previous_peppers,
    )
    .map_err(|error| ConfigError::new("GATEHOUSE_PASSWORD_MEMORY_KIB", error.to_string()))?;
    let permits = config.password.hashing_concurrency.unwrap_or_else(HashingPool::default_permits);
    let hashing = HashingPool::new(hasher, permits);

    let mut readiness: Vec<Arc<dyn ReadinessCheck>> = vec![Arc::new(database.clone())];
    let redis = match &config.redis.url {
        Some(url) => Some(Redis::connect(url).await?),
        None => None,
    };
    if let Some(redis) = &redis {
        readiness.push(Arc::new(redis.clone()));
    }
    let state = AppState {
        keys: keys.clone(),
        readiness: readiness.into(),
        metrics: Arc::new(Metrics::new().map_err(StartupError::Other)?),
        settings: Arc::new(HttpSettings {
            body_limit_bytes: config.http.body_limit_bytes,
            request_timeout: Duration::from_secs(config.http.request_timeout_seconds),
            ..HttpSettings::default()
        }),
    };
    Ok(App { config, database, redis, keys, hashing, state })
}
