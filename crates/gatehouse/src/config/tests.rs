use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect()
}

fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    Config::load(None, env(pairs))
}

fn load_file(text: &str, pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("gatehouse.toml");
    std::fs::write(&path, text).unwrap();
    Config::load(Some(&path), env(pairs))
}

#[test]
fn defaults_serve_loopback_on_embedded_sqlite() {
    let config = load(&[]).unwrap();
    assert_eq!(config.http.addr, "127.0.0.1:8080");
    // A domain name, not the loopback IP: WebAuthn (passkeys) refuses IP addresses.
    assert_eq!(config.issuer(), "http://localhost:8080");
    assert_eq!(config.database_url(), "sqlite://./data/gatehouse.db");
    assert_eq!(config.mode, Mode::Development);
    assert_eq!(
        config.argon2_settings(),
        gatehouse_crypto::Argon2Settings { memory_kib: 65536, iterations: 3, parallelism: 4 }
    );
    assert_eq!(config.signing.algorithm, SigningAlgorithm::RS256);
}

#[test]
fn environment_overrides_the_file() {
    let config = load_file(
        "issuer = \"https://file.example\"\n[http]\naddr = \"127.0.0.1:9000\"\n[database]\nmax_connections = 3\n",
        &[("GATEHOUSE_HTTP_ADDR", "0.0.0.0:7000"), ("GATEHOUSE_DATABASE_AUTO_MIGRATE", "false")],
    )
    .unwrap();
    assert_eq!(config.http.addr, "0.0.0.0:7000");
    assert_eq!(config.issuer(), "https://file.example");
    assert_eq!(config.database.max_connections, 3);
    assert!(!config.database.auto_migrate);
}

#[test]
fn reserved_variables_are_not_settings() {
    let config = load(&[
        ("GATEHOUSE_CONFIG", "/nowhere.toml"),
        ("GATEHOUSE_TEST_POSTGRES_URL", "postgres://x"),
        ("OTHER_VARIABLE", "x"),
    ]);
    assert!(config.is_ok(), "{config:?}");
}

/// Each bad input and the setting its error must name.
#[test]
fn invalid_settings_are_named() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("GATEHOUSE_NO_SUCH_THING", "1")], "GATEHOUSE_NO_SUCH_THING"),
        (&[("GATEHOUSE_HTTP_ADDR", "localhost")], "GATEHOUSE_HTTP_ADDR"),
        (&[("GATEHOUSE_ISSUER", "not a url")], "GATEHOUSE_ISSUER"),
        (&[("GATEHOUSE_ISSUER", "ftp://example.com")], "GATEHOUSE_ISSUER"),
        (&[("GATEHOUSE_ISSUER", "https://example.com/?a=b")], "GATEHOUSE_ISSUER"),
        (&[("GATEHOUSE_DATABASE_URL", "mysql://x")], "GATEHOUSE_DATABASE_URL"),
        (&[("GATEHOUSE_REDIS_URL", "http://x")], "GATEHOUSE_REDIS_URL"),
        (&[("GATEHOUSE_MODE", "prod")], "GATEHOUSE_MODE"),
        (&[("GATEHOUSE_CORS_ALLOWED_ORIGINS", "*")], "GATEHOUSE_CORS_ALLOWED_ORIGINS"),
        (
            &[("GATEHOUSE_CORS_ALLOWED_ORIGINS", "https://app.example.com/login")],
            "GATEHOUSE_CORS_ALLOWED_ORIGINS",
        ),
        (&[("GATEHOUSE_CORS_MAX_AGE_SECONDS", "999999")], "GATEHOUSE_CORS_MAX_AGE_SECONDS"),
        (
            &[("GATEHOUSE_ACCOUNT_DELETION_GRACE_DAYS", "-1")],
            "GATEHOUSE_ACCOUNT_DELETION_GRACE_DAYS",
        ),
        (&[("GATEHOUSE_DATABASE_MAX_CONNECTIONS", "many")], "GATEHOUSE_DATABASE_MAX_CONNECTIONS"),
        (&[("GATEHOUSE_DATABASE_MAX_CONNECTIONS", "-1")], "GATEHOUSE_DATABASE_MAX_CONNECTIONS"),
        (&[("GATEHOUSE_DATABASE_AUTO_MIGRATE", "maybe")], "GATEHOUSE_DATABASE_AUTO_MIGRATE"),
        (&[("GATEHOUSE_SIGNING_RSA_BITS", "1024")], "GATEHOUSE_SIGNING_RSA_BITS"),
        (&[("GATEHOUSE_SIGNING_ALGORITHM", "HS256")], "GATEHOUSE_SIGNING_ALGORITHM"),
        (&[("GATEHOUSE_PASSWORD_MEMORY_KIB", "4")], "GATEHOUSE_PASSWORD_MEMORY_KIB"),
        (&[("GATEHOUSE_LOG_FORMAT", "xml")], "GATEHOUSE_LOG_FORMAT"),
        (&[("GATEHOUSE_DATABASE_SCHEMA", "a;drop")], "GATEHOUSE_DATABASE_SCHEMA"),
        (&[("GATEHOUSE_MODE", "production")], "GATEHOUSE_MASTER_KEY"),
        (&[("GATEHOUSE_SMTP_URL", "http://mail.example.com")], "GATEHOUSE_SMTP_URL"),
        (&[("GATEHOUSE_SMTP_FROM", "not an address")], "GATEHOUSE_SMTP_FROM"),
        (&[("GATEHOUSE_OUTBOX_MAX_ATTEMPTS", "0")], "GATEHOUSE_OUTBOX_MAX_ATTEMPTS"),
        (&[("GATEHOUSE_OUTBOX_POLL_INTERVAL_MS", "1")], "GATEHOUSE_OUTBOX_POLL_INTERVAL_MS"),
        (&[("GATEHOUSE_OUTBOX_BACKOFF_BASE_MS", "0")], "GATEHOUSE_OUTBOX_BACKOFF_BASE_MS"),
        (&[("GATEHOUSE_MAGIC_LINK_ENABLED", "sometimes")], "GATEHOUSE_MAGIC_LINK_ENABLED"),
        (&[("GATEHOUSE_MFA_POLICY", "always")], "GATEHOUSE_MFA_POLICY"),
        (&[("GATEHOUSE_MFA_TRUSTED_DEVICE_DAYS", "0")], "GATEHOUSE_MFA_TRUSTED_DEVICE_DAYS"),
        (&[("GATEHOUSE_MFA_TOTP_ISSUER", "Acme:ID")], "GATEHOUSE_MFA_TOTP_ISSUER"),
        (
            &[("GATEHOUSE_MFA_REAUTHENTICATION_MAX_AGE_SECONDS", "5")],
            "GATEHOUSE_MFA_REAUTHENTICATION_MAX_AGE_SECONDS",
        ),
        (&[("GATEHOUSE_SMS_API_URL", "ftp://sms.example.com")], "GATEHOUSE_SMS_API_URL"),
        (&[("GATEHOUSE_SMS_ACCOUNT_SID", "AC1")], "GATEHOUSE_SMS_ACCOUNT_SID"),
        (
            &[
                ("GATEHOUSE_MODE", "production"),
                ("GATEHOUSE_MASTER_KEY", "k"),
                ("GATEHOUSE_ISSUER", "https://auth.example.com"),
                ("GATEHOUSE_SMS_API_URL", "http://sms.example.com"),
            ],
            "GATEHOUSE_SMS_API_URL",
        ),
        (
            &[
                ("GATEHOUSE_MODE", "production"),
                ("GATEHOUSE_MASTER_KEY", "k"),
                ("GATEHOUSE_ISSUER", "https://auth.example.com"),
                ("GATEHOUSE_REQUIRE_EMAIL_VERIFICATION", "true"),
            ],
            "GATEHOUSE_SMTP_URL",
        ),
        (
            &[
                ("GATEHOUSE_MODE", "production"),
                ("GATEHOUSE_MASTER_KEY", "k"),
                ("GATEHOUSE_ISSUER", "https://auth.example.com"),
                ("GATEHOUSE_MAGIC_LINK_ENABLED", "true"),
            ],
            "GATEHOUSE_SMTP_URL",
        ),
        (
            &[
                ("GATEHOUSE_MODE", "production"),
                ("GATEHOUSE_MASTER_KEY", "k"),
                ("GATEHOUSE_ISSUER", "http://auth.example.com"),
            ],
            "GATEHOUSE_ISSUER",
        ),
    ];
    for (pairs, setting) in cases {
        let error = load(pairs).expect_err(&format!("{pairs:?} should be refused"));
        assert!(error.to_string().contains(setting), "{pairs:?}: {error}");
    }
}

#[test]
fn unknown_file_keys_are_named() {
    let error = load_file("[http]\nadress = \"127.0.0.1:1\"\n", &[]).unwrap_err();
    assert!(error.to_string().contains("adress"), "{error}");
    let error = load_file("[nonsense]\n", &[]).unwrap_err();
    assert!(error.to_string().contains("nonsense"), "{error}");
    let error = load_file("this is not toml", &[]).unwrap_err();
    assert!(error.to_string().contains("gatehouse.toml"), "{error}");
}

#[test]
fn production_accepts_https_or_loopback_issuers_with_a_given_key() {
    for issuer in ["https://auth.example.com", "http://127.0.0.1:8080", "http://localhost:8080"] {
        let config = load(&[
            ("GATEHOUSE_MODE", "production"),
            ("GATEHOUSE_MASTER_KEY_FILE", "/run/secrets/key"),
            ("GATEHOUSE_ISSUER", issuer),
        ]);
        assert!(config.is_ok(), "{issuer}: {config:?}");
    }
    // The default issuer follows the address: plain http on a public address is refused.
    let error = load(&[
        ("GATEHOUSE_MODE", "production"),
        ("GATEHOUSE_MASTER_KEY", "k"),
        ("GATEHOUSE_HTTP_ADDR", "0.0.0.0:8080"),
    ])
    .unwrap_err();
    assert!(error.to_string().contains("GATEHOUSE_ISSUER"), "{error}");
}

#[test]
fn every_listed_setting_exists_in_the_tree() {
    for (path, kind) in SETTINGS {
        let sample = match kind {
            env::Kind::Integer => "1",
            env::Kind::Boolean => "true",
            env::Kind::List => "a,b",
            env::Kind::Text => "x",
        };
        if let Err(error) = load(&[(&env_name(path), sample)]) {
            assert!(!error.message.contains("unknown field"), "{path}: {error}");
        }
    }
}

#[test]
fn lists_are_comma_separated() {
    let config = load(&[("GATEHOUSE_PREVIOUS_MASTER_KEYS", " a, b ,,")]).unwrap();
    assert_eq!(config.previous_master_keys.len(), 2);
}

#[test]
fn smtp_urls_of_every_kind_are_accepted_and_never_printed() {
    for url in [
        "smtp://127.0.0.1:2525",
        "smtp://mail.example.com:587?tls=required",
        "smtps://user:pass-word-secret@mail.example.com",
    ] {
        let config =
            load(&[("GATEHOUSE_SMTP_URL", url), ("GATEHOUSE_SMTP_FROM", "Acme <id@acme.example>")]);
        let config = config.unwrap_or_else(|error| panic!("{url}: {error}"));
        assert!(!format!("{config:?}").contains("pass-word-secret"));
    }
    let error = load(&[("GATEHOUSE_SMTP_URL", "smtps://user:pass-word-secret@:bad")]).unwrap_err();
    assert!(!error.to_string().contains("pass-word-secret"), "{error}");
    // Production with SMTP and the features that need it is fine.
    let config = load(&[
        ("GATEHOUSE_MODE", "production"),
        ("GATEHOUSE_MASTER_KEY", "k"),
        ("GATEHOUSE_ISSUER", "https://auth.example.com"),
        ("GATEHOUSE_MAGIC_LINK_ENABLED", "true"),
        ("GATEHOUSE_SMTP_URL", "smtps://mail.example.com"),
    ]);
    assert!(config.is_ok(), "{config:?}");
}

#[test]
fn secrets_do_not_print() {
    let config = load(&[
        ("GATEHOUSE_MASTER_KEY", "super-secret-value"),
        ("GATEHOUSE_SMS_ACCOUNT_SID", "AC1"),
        ("GATEHOUSE_SMS_AUTH_TOKEN", "sms-secret-value"),
        ("GATEHOUSE_SMS_FROM", "+15005550006"),
    ])
    .unwrap();
    let printed = format!("{config:?}");
    assert!(!printed.contains("super-secret-value") && !printed.contains("sms-secret-value"));
}

#[test]
fn mfa_settings_are_read() {
    let config = load(&[]).unwrap();
    assert_eq!(config.mfa.policy, super::MfaPolicyName::Optional);
    assert_eq!(config.mfa.trusted_device_days, 30);
    assert_eq!(config.mfa.reauthentication_max_age_seconds, 300);
    assert!(config.sms.account_sid.is_none());
    let config = load(&[
        ("GATEHOUSE_MFA_POLICY", "required"),
        ("GATEHOUSE_MFA_TRUSTED_DEVICE_DAYS", "7"),
        ("GATEHOUSE_SMS_API_URL", "http://127.0.0.1:9999"),
        ("GATEHOUSE_SMS_ACCOUNT_SID", "AC1"),
        ("GATEHOUSE_SMS_AUTH_TOKEN", "t"),
        ("GATEHOUSE_SMS_FROM", "+15005550006"),
    ])
    .unwrap();
    assert_eq!(config.mfa.policy, super::MfaPolicyName::Required);
    assert_eq!(config.mfa.trusted_device_days, 7);
    assert_eq!(config.sms.account_sid.as_deref(), Some("AC1"));
}

#[test]
fn branding_is_read_and_validated() {
    let config = load(&[]).unwrap();
    assert_eq!(config.branding, gatehouse_http::pages::Branding::default());
    let config = load(&[
        ("GATEHOUSE_BRANDING_PRODUCT_NAME", "Acme ID"),
        ("GATEHOUSE_BRANDING_LOGO_URL", "https://cdn.acme.example/logo.svg"),
        ("GATEHOUSE_BRANDING_PRIMARY_COLOR", "#AA0011"),
    ])
    .unwrap();
    assert_eq!(config.branding.product_name, "Acme ID");
    assert_eq!(config.branding.logo_url.as_deref(), Some("https://cdn.acme.example/logo.svg"));
    let config =
        load_file("[branding]\nproduct_name = \"Acme\"\nprimary_color = \"#123456\"\n", &[])
            .unwrap();
    assert_eq!(config.branding.primary_color, "#123456");
    for (name, value) in [
        ("GATEHOUSE_BRANDING_PRIMARY_COLOR", "blue"),
        ("GATEHOUSE_BRANDING_PRIMARY_COLOR", "#12345"),
        ("GATEHOUSE_BRANDING_LOGO_URL", "ftp://acme.example/logo.png"),
        ("GATEHOUSE_BRANDING_LOGO_URL", "javascript:alert(1)"),
        ("GATEHOUSE_BRANDING_LOGO_URL", "/logo.png"),
        ("GATEHOUSE_BRANDING_PRODUCT_NAME", " "),
    ] {
        let error = load(&[(name, value)]).unwrap_err();
        assert!(error.setting.starts_with(name), "{name}={value}: {error}");
    }
}

#[test]
fn lifecycle_and_api_budget_settings_are_read_and_validated() {
    let config = load(&[]).unwrap();
    assert_eq!(
        (config.sweeper.interval_seconds, config.sweeper.batch_size),
        (300, 500),
        "sweeps every five minutes by default"
    );
    assert_eq!((config.outbox.retention_days, config.audit.retention_days), (7, 0));
    assert_eq!(
        (config.rate_limit.api_get_per_minute, config.rate_limit.api_write_per_minute),
        (600, 300)
    );
    let config = load_file(
        "[audit]\nretention_days = 90\n",
        &[
            ("GATEHOUSE_SWEEPER_INTERVAL_SECONDS", "60"),
            ("GATEHOUSE_OUTBOX_RETENTION_DAYS", "1"),
            ("GATEHOUSE_RATE_LIMIT_TOKEN_PER_MINUTE", "20"),
            ("GATEHOUSE_RATE_LIMIT_API_GET_PER_MINUTE", "50"),
        ],
    )
    .unwrap();
    assert_eq!(config.audit.retention_days, 90);
    assert_eq!((config.sweeper.interval_seconds, config.outbox.retention_days), (60, 1));
    assert_eq!(
        (config.rate_limit.token_per_minute, config.rate_limit.api_get_per_minute),
        (20, 50)
    );
    for (name, value) in [
        ("GATEHOUSE_AUDIT_RETENTION_DAYS", "-1"),
        ("GATEHOUSE_OUTBOX_RETENTION_DAYS", "-1"),
        ("GATEHOUSE_SWEEPER_BATCH_SIZE", "0"),
        ("GATEHOUSE_SWEEPER_INTERVAL_SECONDS", "100000"),
        ("GATEHOUSE_RATE_LIMIT_API_WRITE_PER_MINUTE", "0"),
        ("GATEHOUSE_RATE_LIMIT_INTROSPECT_PER_MINUTE", "0"),
    ] {
        let error = load(&[(name, value)]).unwrap_err();
        assert!(error.setting.starts_with(name), "{name}={value}: {error}");
    }
}

/// A rotated signing key signs at once on SQLite (one instance), after more than the 30 s key
/// cache on PostgreSQL (several instances may share it), or as set.
#[test]
fn the_rotation_delay_follows_the_backend_unless_set() {
    assert_eq!(load(&[]).unwrap().rotation_delay_seconds(), 0);
    let postgres = [("GATEHOUSE_DATABASE_URL", "postgres://db.example/gatehouse")];
    assert_eq!(load(&postgres).unwrap().rotation_delay_seconds(), 35);
    let set = [postgres[0], ("GATEHOUSE_SIGNING_ROTATION_DELAY_SECONDS", "0")];
    assert_eq!(load(&set).unwrap().rotation_delay_seconds(), 0);
    for refused in ["5", "30", "4000", "-1"] {
        let error = load(&[("GATEHOUSE_SIGNING_ROTATION_DELAY_SECONDS", refused)]).unwrap_err();
        assert!(error.to_string().contains("GATEHOUSE_SIGNING_ROTATION_DELAY_SECONDS"), "{error}");
    }
}
