//! Checks on the whole configuration that types alone cannot express, including the
//! production rules (no generated master key, no plain-http issuer other than loopback).

use std::net::{IpAddr, SocketAddr};

use super::env::describe_path;
use super::{Config, ConfigError, Mode};

fn error(path: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::new(describe_path(path), message)
}

impl Config {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        self.http.addr.parse::<SocketAddr>().map_err(|_| {
            error("http.addr", format!("expected IP:port, got {:?}", self.http.addr))
        })?;
        let issuer = url::Url::parse(&self.issuer())
            .map_err(|parse_error| error("issuer", format!("not a URL: {parse_error}")))?;
        if !matches!(issuer.scheme(), "http" | "https") || issuer.host().is_none() {
            return Err(error("issuer", "must be an http:// or https:// URL with a host"));
        }
        if issuer.query().is_some() || issuer.fragment().is_some() {
            return Err(error(
                "issuer",
                "must not have a query or fragment (OpenID Connect Discovery)",
            ));
        }
        let database_url = self.database_url();
        if gatehouse_store::backend_of(&database_url).is_none() {
            return Err(error("database.url", "expected sqlite://... or postgres://..."));
        }
        if let Some(redis) = &self.redis.url
            && !(redis.starts_with("redis://") || redis.starts_with("rediss://"))
        {
            return Err(error("redis.url", "expected redis://... or rediss://..."));
        }
        if let Some(schema) = &self.database.schema
            && (schema.is_empty() || !schema.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        {
            return Err(error("database.schema", "letters, digits and underscores only"));
        }
        if !self.oauth.dynamic_registration.is_empty()
            && gatehouse_domain::oauth::registration::RegistrationMode::parse(
                &self.oauth.dynamic_registration,
            )
            .is_none()
        {
            return Err(error("oauth.dynamic_registration", "expected off, open or token"));
        }
        self.validate_numbers()?;
        self.validate_accounts()?;
        self.validate_cors()?;
        self.validate_branding()?;
        self.validate_email()?;
        self.validate_mfa()?;
        super::identity_providers(&self.identity_providers)?;
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return Err(error("log.level", format!("not a log filter: {:?}", self.log.level)));
        }
        if self.mode == Mode::Production {
            self.validate_production(&issuer)?;
        }
        Ok(())
    }

    fn validate_numbers(&self) -> Result<(), ConfigError> {
        if !matches!(self.signing.rsa_bits, 2048 | 3072 | 4096) {
            return Err(error("signing.rsa_bits", "one of 2048, 3072, 4096"));
        }
        let password = &self.password;
        if !(1..=16).contains(&password.parallelism) {
            return Err(error("password.parallelism", "between 1 and 16"));
        }
        if password.memory_kib < 8 * password.parallelism || password.memory_kib > 4 * 1024 * 1024 {
            return Err(error("password.memory_kib", "at least 8 × parallelism and at most 4 GiB"));
        }
        if !(1..=100).contains(&password.iterations) {
            return Err(error("password.iterations", "between 1 and 100"));
        }
        if password.hashing_concurrency == Some(0) {
            return Err(error("password.hashing_concurrency", "at least 1"));
        }
        if self.database.max_connections == 0 {
            return Err(error("database.max_connections", "at least 1"));
        }
        if self.http.body_limit_bytes < 1024 {
            return Err(error("http.body_limit_bytes", "at least 1024"));
        }
        if self.http.request_timeout_seconds == 0 {
            return Err(error("http.request_timeout_seconds", "at least 1"));
        }
        for (path, value) in [
            ("tokens.access_token_ttl_seconds", self.tokens.access_token_ttl_seconds),
            ("tokens.id_token_ttl_seconds", self.tokens.id_token_ttl_seconds),
        ] {
            if !(60..=86_400).contains(&value) {
                return Err(error(path, "between 60 and 86400 seconds"));
            }
        }
        Ok(())
    }

    fn validate_cors(&self) -> Result<(), ConfigError> {
        for origin in &self.cors.allowed_origins {
            let exact = url::Url::parse(origin).ok().filter(|url| {
                matches!(url.scheme(), "http" | "https")
                    && url.host().is_some()
                    && url.path() == "/"
                    && url.query().is_none()
                    && url.username().is_empty()
                    && url.origin().ascii_serialization() == origin.trim_end_matches('/')
            });
            if exact.is_none() {
                return Err(error(
                    "cors.allowed_origins",
                    format!("not an exact origin like https://app.example.com: {origin:?}"),
                ));
            }
        }
        if self.cors.max_age_seconds > 86_400 {
            return Err(error("cors.max_age_seconds", "at most 86400"));
        }
        if let Some(delay) = self.signing.rotation_delay_seconds
            && delay != 0
            && !(31..=3600).contains(&delay)
        {
            return Err(error(
                "signing.rotation_delay_seconds",
                "0 (switch at once) or 31 to 3600 (longer than the 30 s key cache)",
            ));
        }
        if !(100..=60_000).contains(&self.database.acquire_timeout_ms) {
            return Err(error("database.acquire_timeout_ms", "between 100 and 60000"));
        }
        if !(0..=365).contains(&self.account_deletion.grace_days) {
            return Err(error("account_deletion.grace_days", "between 0 (immediate) and 365"));
        }
        Ok(())
    }

    fn validate_accounts(&self) -> Result<(), ConfigError> {
        for proxy in &self.trusted_proxies {
            if super::parse_network(proxy).is_none() {
                return Err(error(
                    "trusted_proxies",
                    format!("not an IP address or CIDR range: {proxy:?}"),
                ));
            }
        }
        if let Some(url) = &self.password.breach_api_url {
            let parsed = url::Url::parse(url)
                .map_err(|e| error("password.breach_api_url", format!("not a URL: {e}")))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(error("password.breach_api_url", "must be an http:// or https:// URL"));
            }
        }
        if !(100..=30_000).contains(&self.password.breach_api_timeout_ms) {
            return Err(error("password.breach_api_timeout_ms", "between 100 and 30000"));
        }
        self.password_policy
            .validate()
            .map_err(|message| error("password_policy.min_length", message))?;
        if self.lockout.threshold < 0 {
            return Err(error("lockout.threshold", "0 (off) or more"));
        }
        if !(1..=86_400 * 30).contains(&self.lockout.duration) {
            return Err(error("lockout.duration", "between 1 second and 30 days"));
        }
        for (path, value) in [
            ("rate_limit.sign_in_per_minute", self.rate_limit.sign_in_per_minute),
            ("rate_limit.sign_up_per_minute", self.rate_limit.sign_up_per_minute),
            ("rate_limit.refresh_per_minute", self.rate_limit.refresh_per_minute),
            ("rate_limit.account_per_minute", self.rate_limit.account_per_minute),
            ("rate_limit.token_per_minute", self.rate_limit.token_per_minute),
            ("rate_limit.introspect_per_minute", self.rate_limit.introspect_per_minute),
            (
                "rate_limit.device_authorization_per_minute",
                self.rate_limit.device_authorization_per_minute,
            ),
            (
                "rate_limit.device_verification_per_minute",
                self.rate_limit.device_verification_per_minute,
            ),
            ("rate_limit.api_get_per_minute", self.rate_limit.api_get_per_minute),
            ("rate_limit.api_write_per_minute", self.rate_limit.api_write_per_minute),
        ] {
            if value == 0 {
                return Err(error(
                    path,
                    "at least 1 (disable limits with GATEHOUSE_RATE_LIMIT_ENABLED=false)",
                ));
            }
        }
        if !(60..=365 * 86_400).contains(&self.tokens.refresh_token_ttl_seconds) {
            return Err(error(
                "tokens.refresh_token_ttl_seconds",
                "between 60 seconds and 365 days",
            ));
        }
        if self.tokens.session_max_lifetime_seconds < self.tokens.refresh_token_ttl_seconds {
            return Err(error(
                "tokens.session_max_lifetime_seconds",
                "at least tokens.refresh_token_ttl_seconds",
            ));
        }
        // Activity is recorded at most once a minute, so a shorter timeout would end sessions
        // that are in use.
        if !(300..=365 * 86_400).contains(&self.tokens.session_idle_timeout_seconds) {
            return Err(error(
                "tokens.session_idle_timeout_seconds",
                "between 300 seconds and 365 days",
            ));
        }
        Ok(())
    }

    fn validate_branding(&self) -> Result<(), ConfigError> {
        let branding = &self.branding;
        let name = branding.product_name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(error("branding.product_name", "between 1 and 100 characters"));
        }
        if let Some(logo) = &branding.logo_url {
            let parsed = url::Url::parse(logo)
                .map_err(|e| error("branding.logo_url", format!("not a URL: {e}")))?;
            if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
                return Err(error("branding.logo_url", "must be an http:// or https:// URL"));
            }
            // It is printed in pages and in the CSP header (for http:// logos).
            if logo.len() > 2048 || logo.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(error("branding.logo_url", "at most 2048 characters, no spaces"));
            }
        }
        if !gatehouse_http::pages::is_hex_color(&branding.primary_color) {
            return Err(error("branding.primary_color", "a colour as #rrggbb"));
        }
        Ok(())
    }

    fn validate_email(&self) -> Result<(), ConfigError> {
        use secrecy::ExposeSecret;
        if let Some(url) = &self.smtp.url {
            // The message never repeats the URL: it may hold a password.
            gatehouse_outbound::mail::check_smtp_url(url.expose_secret()).map_err(|_| {
                error(
                    "smtp.url",
                    "expected smtp://host[:port] (add ?tls=required for STARTTLS) or smtps://host[:port], with user:password@ for authentication",
                )
            })?;
        }
        gatehouse_outbound::mail::check_from(&self.smtp.from)
            .map_err(|message| error("smtp.from", message))?;
        if self.rate_limit.email_per_minute == 0 {
            return Err(error(
                "rate_limit.email_per_minute",
                "at least 1 (disable limits with GATEHOUSE_RATE_LIMIT_ENABLED=false)",
            ));
        }
        if self.cache.ttl_seconds > 3600 {
            return Err(error("cache.ttl_seconds", "between 0 and 3600"));
        }
        let outbox = &self.outbox;
        if !(10..=60_000).contains(&outbox.poll_interval_ms) {
            return Err(error("outbox.poll_interval_ms", "between 10 and 60000"));
        }
        if outbox.backoff_base_ms == 0 || outbox.backoff_base_ms > outbox.backoff_max_ms {
            return Err(error(
                "outbox.backoff_base_ms",
                "at least 1 and at most outbox.backoff_max_ms",
            ));
        }
        if !(1..=100).contains(&outbox.max_attempts) {
            return Err(error("outbox.max_attempts", "between 1 and 100"));
        }
        if !(5..=3600).contains(&outbox.lease_seconds) {
            return Err(error("outbox.lease_seconds", "between 5 and 3600"));
        }
        if !(0..=36_500).contains(&outbox.retention_days) {
            return Err(error("outbox.retention_days", "between 0 and 36500"));
        }
        if !(0..=36_500).contains(&self.audit.retention_days) {
            return Err(error("audit.retention_days", "between 0 (forever) and 36500"));
        }
        if self.sweeper.interval_seconds > 86_400 {
            return Err(error("sweeper.interval_seconds", "between 0 (off) and 86400"));
        }
        if !(1..=100_000).contains(&self.sweeper.batch_size) {
            return Err(error("sweeper.batch_size", "between 1 and 100000"));
        }
        Ok(())
    }

    fn validate_mfa(&self) -> Result<(), ConfigError> {
        if !(1..=365).contains(&self.mfa.trusted_device_days) {
            return Err(error("mfa.trusted_device_days", "between 1 and 365"));
        }
        if !(30..=86_400).contains(&self.mfa.reauthentication_max_age_seconds) {
            return Err(error("mfa.reauthentication_max_age_seconds", "between 30 and 86400"));
        }
        if let Some(issuer) = &self.mfa.totp_issuer
            && (issuer.trim().is_empty() || issuer.contains(':'))
        {
            return Err(error("mfa.totp_issuer", "a non-empty name without ':'"));
        }
        let sms = &self.sms;
        let parsed = url::Url::parse(&sms.api_url)
            .map_err(|_| error("sms.api_url", "expected an http(s) URL"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(error("sms.api_url", "expected an http(s) URL"));
        }
        if sms.account_sid.is_some() && (sms.auth_token.is_none() || sms.from.is_none()) {
            return Err(error("sms.account_sid", "SMS also needs sms.auth_token and sms.from"));
        }
        if !(100..=60_000).contains(&sms.timeout_ms) {
            return Err(error("sms.timeout_ms", "between 100 and 60000"));
        }
        // The auth token travels in every request: only over TLS in production.
        if self.mode == Mode::Production && parsed.scheme() != "https" {
            return Err(error("sms.api_url", "production mode needs an https:// SMS API URL"));
        }
        Ok(())
    }

    fn validate_production(&self, issuer: &url::Url) -> Result<(), ConfigError> {
        if self.smtp.url.is_none() && (self.require_email_verification || self.magic_link.enabled) {
            return Err(error(
                "smtp.url",
                "production mode with require_email_verification or magic_link.enabled needs SMTP (development writes mail to files instead)",
            ));
        }
        if self.master_key.is_none() && self.master_key_file.is_none() {
            return Err(error(
                "master_key",
                "production mode needs GATEHOUSE_MASTER_KEY or GATEHOUSE_MASTER_KEY_FILE; a generated development key is refused",
            ));
        }
        if issuer.scheme() == "http" && !is_loopback_host(issuer) {
            return Err(error(
                "issuer",
                "production mode needs an https:// issuer (http:// only on loopback)",
            ));
        }
        Ok(())
    }
}

fn is_loopback_host(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(domain)) => domain == "localhost",
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}
