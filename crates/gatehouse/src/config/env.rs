//! `GATEHOUSE_*` environment variables: the table of every setting, and how a variable's text
//! becomes a typed value in the configuration tree.

use super::ConfigError;

/// How an environment variable's text is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Integer,
    Boolean,
    /// Comma-separated.
    List,
}

/// Every setting, by its path in the file. The variable name is `GATEHOUSE_` + the path joined
/// with `_`, upper-cased (`http.addr` → `GATEHOUSE_HTTP_ADDR`).
pub const SETTINGS: &[(&str, Kind)] = &[
    ("mode", Kind::Text),
    ("issuer", Kind::Text),
    ("data_dir", Kind::Text),
    ("master_key", Kind::Text),
    ("master_key_file", Kind::Text),
    ("previous_master_keys", Kind::List),
    ("require_email_verification", Kind::Boolean),
    ("trusted_proxies", Kind::List),
    ("http.addr", Kind::Text),
    ("http.body_limit_bytes", Kind::Integer),
    ("http.request_timeout_seconds", Kind::Integer),
    ("http.shutdown_grace_seconds", Kind::Integer),
    ("cors.allowed_origins", Kind::List),
    ("cors.max_age_seconds", Kind::Integer),
    ("account_deletion.grace_days", Kind::Integer),
    ("database.url", Kind::Text),
    ("database.schema", Kind::Text),
    ("database.max_connections", Kind::Integer),
    ("database.acquire_timeout_ms", Kind::Integer),
    ("database.auto_migrate", Kind::Boolean),
    ("redis.url", Kind::Text),
    ("redis.key_prefix", Kind::Text),
    ("nats.url", Kind::Text),
    ("log.format", Kind::Text),
    ("log.level", Kind::Text),
    ("password.memory_kib", Kind::Integer),
    ("password.iterations", Kind::Integer),
    ("password.parallelism", Kind::Integer),
    ("password.hashing_concurrency", Kind::Integer),
    ("password.breach_api_url", Kind::Text),
    ("password.breach_api_timeout_ms", Kind::Integer),
    ("password_policy.min_length", Kind::Integer),
    ("password_policy.max_length", Kind::Integer),
    ("password_policy.require_uppercase", Kind::Boolean),
    ("password_policy.require_lowercase", Kind::Boolean),
    ("password_policy.require_number", Kind::Boolean),
    ("password_policy.require_symbol", Kind::Boolean),
    ("password_policy.min_strength_score", Kind::Integer),
    ("password_policy.history_size", Kind::Integer),
    ("signing.algorithm", Kind::Text),
    ("signing.rsa_bits", Kind::Integer),
    ("signing.rotation_delay_seconds", Kind::Integer),
    ("tokens.access_token_ttl_seconds", Kind::Integer),
    ("tokens.id_token_ttl_seconds", Kind::Integer),
    ("tokens.refresh_token_ttl_seconds", Kind::Integer),
    ("tokens.session_max_lifetime_seconds", Kind::Integer),
    ("tokens.session_idle_timeout_seconds", Kind::Integer),
    ("tokens.audience", Kind::Text),
    ("lockout.threshold", Kind::Integer),
    ("lockout.duration", Kind::Integer),
    ("rate_limit.enabled", Kind::Boolean),
    ("rate_limit.fail_open", Kind::Boolean),
    ("rate_limit.sign_in_per_minute", Kind::Integer),
    ("rate_limit.sign_up_per_minute", Kind::Integer),
    ("rate_limit.refresh_per_minute", Kind::Integer),
    ("rate_limit.email_per_minute", Kind::Integer),
    ("rate_limit.account_per_minute", Kind::Integer),
    ("rate_limit.token_per_minute", Kind::Integer),
    ("rate_limit.introspect_per_minute", Kind::Integer),
    ("rate_limit.device_authorization_per_minute", Kind::Integer),
    ("rate_limit.device_verification_per_minute", Kind::Integer),
    ("rate_limit.api_get_per_minute", Kind::Integer),
    ("rate_limit.api_write_per_minute", Kind::Integer),
    ("smtp.url", Kind::Text),
    ("smtp.from", Kind::Text),
    ("mail.templates_dir", Kind::Text),
    ("magic_link.enabled", Kind::Boolean),
    ("signup.enabled", Kind::Boolean),
    ("passkeys.enabled", Kind::Boolean),
    ("passkeys.rp_id", Kind::Text),
    ("passkeys.origins", Kind::List),
    ("notices.new_device", Kind::Boolean),
    ("outbound.allow_private_targets", Kind::Boolean),
    ("webhooks.timeout_ms", Kind::Integer),
    ("webhooks.first_retry_ms", Kind::Integer),
    ("webhooks.disable_after_seconds", Kind::Integer),
    ("outbox.poll_interval_ms", Kind::Integer),
    ("outbox.backoff_base_ms", Kind::Integer),
    ("outbox.backoff_max_ms", Kind::Integer),
    ("outbox.max_attempts", Kind::Integer),
    ("outbox.lease_seconds", Kind::Integer),
    ("outbox.retention_days", Kind::Integer),
    ("sweeper.interval_seconds", Kind::Integer),
    ("sweeper.batch_size", Kind::Integer),
    ("audit.retention_days", Kind::Integer),
    ("cache.ttl_seconds", Kind::Integer),
    ("oauth.require_pushed_authorization_requests", Kind::Boolean),
    ("oauth.dpop_require_nonce", Kind::Boolean),
    ("oauth.dynamic_registration", Kind::Text),
    ("oauth.client_id_metadata_documents", Kind::Boolean),
    ("mfa.policy", Kind::Text),
    ("mfa.totp_issuer", Kind::Text),
    ("mfa.trusted_device_days", Kind::Integer),
    ("mfa.reauthentication_max_age_seconds", Kind::Integer),
    ("sms.api_url", Kind::Text),
    ("sms.account_sid", Kind::Text),
    ("sms.auth_token", Kind::Text),
    ("sms.from", Kind::Text),
    ("sms.timeout_ms", Kind::Integer),
    ("branding.product_name", Kind::Text),
    ("branding.logo_url", Kind::Text),
    ("branding.primary_color", Kind::Text),
];

/// Variables with our prefix that are not settings: the config file's path and the test
/// suite's service URLs.
fn is_reserved(name: &str) -> bool {
    name == "GATEHOUSE_CONFIG" || name.starts_with("GATEHOUSE_TEST_")
}

pub fn env_name(path: &str) -> String {
    format!("GATEHOUSE_{}", path.replace('.', "_").to_uppercase())
}

/// Names a setting both ways for error messages: `GATEHOUSE_HTTP_ADDR (http.addr)`.
pub fn describe_path(path: &str) -> String {
    if path.is_empty() || path == "." {
        return "configuration".into();
    }
    format!("{} ({path})", env_name(path))
}

/// Writes every `GATEHOUSE_*` variable into `table`, over what the file said.
pub(super) fn overlay(
    table: &mut toml::Table,
    environment: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    let mut variables: Vec<(String, String)> = environment
        .into_iter()
        .filter(|(name, _)| name.starts_with("GATEHOUSE_") && !is_reserved(name))
        .collect();
    variables.sort();
    for (name, text) in variables {
        let Some((path, kind)) = SETTINGS.iter().find(|(path, _)| env_name(path) == name) else {
            return Err(ConfigError::new(
                name,
                "unknown setting (see the configuration table in the README)",
            ));
        };
        let value = parse_value(&name, &text, *kind)?;
        insert(table, path, value);
    }
    Ok(())
}

fn parse_value(name: &str, text: &str, kind: Kind) -> Result<toml::Value, ConfigError> {
    let trimmed = text.trim();
    Ok(match kind {
        Kind::Text => toml::Value::String(trimmed.to_owned()),
        Kind::Integer => toml::Value::Integer(trimmed.parse::<i64>().map_err(|_| {
            ConfigError::new(name, format!("expected an integer, got {trimmed:?}"))
        })?),
        Kind::Boolean => toml::Value::Boolean(match trimmed.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => true,
            "false" | "0" | "no" | "off" => false,
            _ => {
                return Err(ConfigError::new(
                    name,
                    format!("expected true or false, got {trimmed:?}"),
                ));
            }
        }),
        Kind::List => toml::Value::Array(
            trimmed
                .split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(|item| toml::Value::String(item.to_owned()))
                .collect(),
        ),
    })
}

fn insert(table: &mut toml::Table, path: &str, value: toml::Value) {
    let mut current = table;
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            current.insert(part.to_owned(), value);
            return;
        }
        let entry = current
            .entry(part.to_owned())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            // The file had a scalar where a section belongs; the environment wins and the
            // deserializer will report anything still wrong.
            *entry = toml::Value::Table(toml::Table::new());
        }
        let toml::Value::Table(next) = entry else {
            return;
        };
        current = next;
    }
}
