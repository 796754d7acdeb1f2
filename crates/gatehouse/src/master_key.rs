//! Where the master key comes from: the environment, a key file, or — in development only — a
//! key generated once into `<data_dir>/master.key` (mode 0600).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use gatehouse_crypto::MasterKey;
use secrecy::ExposeSecret;

use crate::config::{Config, ConfigError, Mode};

/// The current key and the previous ones still accepted for decryption.
pub struct MasterKeys {
    pub current: MasterKey,
    pub previous: Vec<MasterKey>,
    /// True when the key was generated for development.
    pub generated: bool,
}

pub fn resolve(config: &Config) -> Result<MasterKeys, ConfigError> {
    let previous = config
        .previous_master_keys
        .iter()
        .map(|text| {
            MasterKey::parse(text.expose_secret()).map_err(|error| {
                ConfigError::new("GATEHOUSE_PREVIOUS_MASTER_KEYS", error.to_string())
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(text) = &config.master_key {
        let current = MasterKey::parse(text.expose_secret())
            .map_err(|error| ConfigError::new("GATEHOUSE_MASTER_KEY", error.to_string()))?;
        return Ok(MasterKeys { current, previous, generated: false });
    }
    if let Some(path) = &config.master_key_file {
        let text = std::fs::read_to_string(path).map_err(|error| {
            ConfigError::new(
                "GATEHOUSE_MASTER_KEY_FILE",
                format!("cannot read {}: {error}", path.display()),
            )
        })?;
        let current = MasterKey::parse(&text).map_err(|error| {
            ConfigError::new("GATEHOUSE_MASTER_KEY_FILE", format!("{}: {error}", path.display()))
        })?;
        return Ok(MasterKeys { current, previous, generated: false });
    }
    if config.mode == Mode::Production {
        return Err(ConfigError::new("GATEHOUSE_MASTER_KEY", "required in production mode"));
    }
    let current = development_key(&config.data_dir.join("master.key"))?;
    Ok(MasterKeys { current, previous, generated: true })
}

/// Reads the development key, creating it (0600, never overwritten) on first start.
fn development_key(path: &Path) -> Result<MasterKey, ConfigError> {
    let setting = "GATEHOUSE_DATA_DIR";
    if path.exists() {
        let text = std::fs::read_to_string(path).map_err(|error| {
            ConfigError::new(setting, format!("cannot read {}: {error}", path.display()))
        })?;
        return MasterKey::parse(&text)
            .map_err(|error| ConfigError::new(setting, format!("{}: {error}", path.display())));
    }
    let key = MasterKey::generate();
    let mut file =
        std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(
            |error| ConfigError::new(setting, format!("cannot create {}: {error}", path.display())),
        )?;
    file.write_all(format!("{}\n", key.encode()).as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|error| {
            ConfigError::new(setting, format!("cannot write {}: {error}", path.display()))
        })?;
    tracing::warn!(
        path = %path.display(),
        "generated a development master key; it protects every secret at rest. In production set \
         GATEHOUSE_MASTER_KEY or GATEHOUSE_MASTER_KEY_FILE (production mode refuses a generated key)"
    );
    Ok(key)
}
