//! Tests of the password policy: each rule alone, rules together, zxcvbn, the breach port, history.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use gatehouse_crypto::{Argon2Settings, MasterKey, PasswordHasher, Pepper};

use super::*;

/// Settings with every rule off except the length bounds, so one rule can be tested alone.
fn bare() -> PasswordPolicySettings {
    PasswordPolicySettings { min_strength_score: 0, history_size: 0, ..Default::default() }
}

/// Checks `password` (with `user_inputs`) and compares the codes, in order.
async fn check_with(
    policy: &PasswordPolicy,
    password: &str,
    user_inputs: &[&str],
    expected: &[&str],
) {
    let violations = policy.check(password, user_inputs).await;
    let codes: Vec<&str> = violations.iter().map(|violation| violation.code).collect();
    assert_eq!(
        codes, expected,
        "password {password:?}, user inputs {user_inputs:?}: {violations:?}"
    );
    for violation in &violations {
        let quoted = !password.is_empty() && violation.message.contains(password);
        assert!(!quoted, "message quotes the password: {violation:?}");
    }
}

async fn check_all(settings: PasswordPolicySettings, cases: &[(&str, &[&str])]) {
    let policy = PasswordPolicy::new(settings, None);
    for (password, expected) in cases {
        check_with(&policy, password, &[], expected).await;
    }
}

#[tokio::test]
async fn length_is_counted_in_unicode_scalar_values() {
    let settings = PasswordPolicySettings { min_length: 4, max_length: 6, ..bare() };
    check_all(
        settings,
        &[
            ("xq7", &["too_short"]),
            ("xq7v", &[]),
            ("éàüö", &[]), // 4 characters, 8 bytes
            ("éàü", &["too_short"]),
            ("xq7vkz", &[]),
            ("xq7vkzw", &["too_long"]),
            ("ñçøåßæ", &[]), // 6 characters, 12 bytes
            ("", &["too_short"]),
        ],
    )
    .await;
}

#[tokio::test]
async fn each_character_class_rule_alone() {
    let cases: [(PasswordPolicySettings, &str, &str, &[&str]); 8] = [
        (
            PasswordPolicySettings { require_uppercase: true, ..bare() },
            "xq7#vkzw",
            "xQ7#vkzw",
            &["missing_uppercase"],
        ),
        (
            PasswordPolicySettings { require_lowercase: true, ..bare() },
            "XQ7#VKZW",
            "XQ7#VkZW",
            &["missing_lowercase"],
        ),
        (
            PasswordPolicySettings { require_number: true, ..bare() },
            "xq#vkzwT",
            "xq#vkz9T",
            &["missing_number"],
        ),
        (
            PasswordPolicySettings { require_symbol: true, ..bare() },
            "xq7vkzwT",
            "xq7vk_wT",
            &["missing_symbol"],
        ),
        // Whitespace is not a symbol; any other non-alphanumeric character is.
        (
            PasswordPolicySettings { require_symbol: true, ..bare() },
            "xq7 vkz wT",
            "xq7 vk€ wT",
            &["missing_symbol"],
        ),
        // Letters outside ASCII count as letters, not symbols.
        (
            PasswordPolicySettings { require_symbol: true, ..bare() },
            "xqévkzÑw",
            "xqévkzÑ!",
            &["missing_symbol"],
        ),
        (
            PasswordPolicySettings { require_uppercase: true, ..bare() },
            "xqévkzñw",
            "xqévkzÑw",
            &["missing_uppercase"],
        ),
        (
            PasswordPolicySettings { require_number: true, ..bare() },
            "xqévkzñw",
            "xqévkz٣w",
            &["missing_number"],
        ),
    ];
    for (settings, failing, passing, expected) in cases {
        let policy = PasswordPolicy::new(settings, None);
        check_with(&policy, failing, &[], expected).await;
        check_with(&policy, passing, &[], &[]).await;
    }
}

#[tokio::test]
async fn several_rules_at_once_come_in_the_stable_order() {
    let settings = PasswordPolicySettings {
        min_length: 12,
        require_uppercase: true,
        require_lowercase: true,
        require_number: true,
        require_symbol: true,
        min_strength_score: 3,
        ..bare()
    };
    check_all(
        settings,
        &[
            (
                "qwerty",
                &[
                    "too_short",
                    "missing_uppercase",
                    "missing_number",
                    "missing_symbol",
                    "common",
                    "too_weak",
                ],
            ),
            (
                "PASSWORD1",
                &["too_short", "missing_lowercase", "missing_symbol", "common", "too_weak"],
            ),
            ("Violet-Tractor-Harbour-91", &[]),
        ],
    )
    .await;
}

#[tokio::test]
async fn common_passwords_are_flagged_with_and_without_the_strength_rule() {
    check_all(
        PasswordPolicySettings::default(),
        &[
            ("password123", &["common", "too_weak"]),
            ("qwerty", &["too_short", "common", "too_weak"]),
            ("P@ssw0rd", &["common", "too_weak"]),
            ("LETMEIN", &["too_short", "common", "too_weak"]),
        ],
    )
    .await;
    check_all(bare(), &[("password123", &["common"]), ("iloveyou", &["common"])]).await;
}

#[tokio::test]
async fn a_strong_passphrase_passes_the_defaults() {
    check_all(
        PasswordPolicySettings::default(),
        &[("violet tractor harbour mosaic", &[]), ("Xk#9vQ!m2Lp$7wRz", &[])],
    )
    .await;
}

#[tokio::test]
async fn too_weak_explains_with_zxcvbn_feedback() {
    let policy = PasswordPolicy::new(PasswordPolicySettings::default(), None);
    let violations = policy.check("abcdefgh", &[]).await;
    assert_eq!(violations.len(), 1, "{violations:?}");
    let message = &violations[0].message;
    assert_eq!(violations[0].code, "too_weak");
    assert!(message.starts_with("is too easy to guess (strength "), "{message}");
    // zxcvbn's warning for a sequence, and one of its suggestions.
    assert!(message.contains("Sequences like abc or 6543 are easy to guess."), "{message}");
    assert!(message.contains("Add another word or two."), "{message}");
}

#[tokio::test]
async fn user_inputs_lower_the_score() {
    let policy = PasswordPolicy::new(PasswordPolicySettings::default(), None);
    let password = "tvordkjaxw2024";
    check_with(&policy, password, &[], &[]).await;
    check_with(&policy, password, &["tvordkjaxw"], &["too_weak"]).await;
    // The email alone is enough: its local part is given to zxcvbn as a word of its own.
    check_with(&policy, password, &["tvordkjaxw@example.com"], &["too_weak"]).await;
}

/// A port double that answers a fixed result and counts the calls it receives.
struct CountingBreach {
    answer: Result<bool, String>,
    calls: AtomicUsize,
    passwords: Mutex<Vec<String>>,
}

impl CountingBreach {
    fn new(answer: Result<bool, String>) -> Arc<CountingBreach> {
        Arc::new(CountingBreach { answer, calls: AtomicUsize::new(0), passwords: Mutex::default() })
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl BreachedPasswordCheck for CountingBreach {
    async fn is_breached(&self, password: &str) -> Result<bool, String> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.passwords.lock().unwrap().push(password.to_owned());
        self.answer.clone()
    }
}

#[tokio::test]
async fn breach_check_runs_only_when_the_other_rules_pass() {
    let breach = CountingBreach::new(Ok(true));
    let policy = PasswordPolicy::new(PasswordPolicySettings::default(), Some(breach.clone()));
    check_with(&policy, "password123", &[], &["common", "too_weak"]).await;
    check_with(&policy, "Xk#9", &[], &["too_short", "too_weak"]).await;
    assert_eq!(breach.calls(), 0);

    let violations = policy.check("violet tractor harbour mosaic", &[]).await;
    assert_eq!(breach.calls(), 1);
    assert_eq!(*breach.passwords.lock().unwrap(), ["violet tractor harbour mosaic"]);
    assert_eq!(violations.len(), 1);
    assert!(violations[0].is_breach() && !violations[0].is_reuse());
    assert_eq!(violations[0].code, "breached");
}

#[tokio::test]
async fn too_long_passwords_skip_zxcvbn_and_the_breach_check() {
    let breach = CountingBreach::new(Ok(true));
    let settings = PasswordPolicySettings { max_length: 10, ..Default::default() };
    let policy = PasswordPolicy::new(settings, Some(breach.clone()));
    // Weak and built from a common password, yet only the length is reported: zxcvbn never ran.
    check_with(&policy, "passwordpassword", &[], &["too_long"]).await;
    let settings =
        PasswordPolicySettings { max_length: 10, require_number: true, ..Default::default() };
    let policy = PasswordPolicy::new(settings, Some(breach.clone()));
    check_with(&policy, "passwordpassword", &[], &["too_long", "missing_number"]).await;
    assert_eq!(breach.calls(), 0);
}

#[tokio::test]
async fn a_failing_breach_service_lets_the_password_through() {
    let breach = CountingBreach::new(Err("range API answered 503".to_owned()));
    let policy = PasswordPolicy::new(PasswordPolicySettings::default(), Some(breach.clone()));
    check_with(&policy, "violet tractor harbour mosaic", &[], &[]).await;
    assert_eq!(breach.calls(), 1);

    let clean = CountingBreach::new(Ok(false));
    let policy = PasswordPolicy::new(PasswordPolicySettings::default(), Some(clean.clone()));
    check_with(&policy, "violet tractor harbour mosaic", &[], &[]).await;
    assert_eq!(clean.calls(), 1);
}

#[test]
fn published_mirrors_the_settings() {
    let settings = PasswordPolicySettings {
        min_length: 10,
        max_length: 64,
        require_uppercase: true,
        require_lowercase: false,
        require_number: true,
        require_symbol: false,
        min_strength_score: 3,
        history_size: 2,
    };
    let with_breach = PasswordPolicy::new(settings.clone(), Some(CountingBreach::new(Ok(false))));
    let published = with_breach.published();
    assert_eq!(
        published,
        PublishedPolicy {
            min_length: 10,
            max_length: 64,
            require_uppercase: true,
            require_lowercase: false,
            require_number: true,
            require_symbol: false,
            min_strength_score: 3,
            history_size: 2,
            breach_check: true,
            symbols: SYMBOLS_DESCRIPTION.to_owned(),
        }
    );
    assert_eq!(with_breach.settings(), &settings);
    assert!(!PasswordPolicy::new(settings, None).published().breach_check);

    let json = serde_json::to_value(&published).unwrap();
    let mut keys: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "breach_check",
            "history_size",
            "max_length",
            "min_length",
            "min_strength_score",
            "require_lowercase",
            "require_number",
            "require_symbol",
            "require_uppercase",
            "symbols"
        ]
    );
}

#[test]
fn settings_have_documented_defaults_and_reject_unknown_keys() {
    let defaults = PasswordPolicySettings::default();
    assert_eq!((defaults.min_length, defaults.max_length), (8, 256));
    assert!(!defaults.require_uppercase && !defaults.require_lowercase);
    assert!(!defaults.require_number && !defaults.require_symbol);
    assert_eq!((defaults.min_strength_score, defaults.history_size), (2, 5));
    assert_eq!(defaults.validate(), Ok(()));

    let partial: PasswordPolicySettings = serde_json::from_str(r#"{"min_length": 12}"#).unwrap();
    assert_eq!(partial, PasswordPolicySettings { min_length: 12, ..defaults });
    assert!(serde_json::from_str::<PasswordPolicySettings>(r#"{"min_len": 12}"#).is_err());
}

#[test]
fn contradictory_settings_are_refused() {
    let invalid = [
        PasswordPolicySettings { min_length: 0, ..Default::default() },
        PasswordPolicySettings { min_length: 20, max_length: 10, ..Default::default() },
        PasswordPolicySettings { min_strength_score: 5, ..Default::default() },
    ];
    for settings in invalid {
        assert!(settings.validate().is_err(), "{settings:?}");
    }
}

#[test]
fn debug_does_not_show_the_breach_client() {
    let policy = PasswordPolicy::new(bare(), Some(CountingBreach::new(Ok(false))));
    assert!(format!("{policy:?}").contains("breach_check: true"));
}

fn small_pool() -> HashingPool {
    let settings = Argon2Settings { memory_kib: 1024, iterations: 1, parallelism: 1 };
    let pepper = Pepper::from_master(&MasterKey::generate(), 1);
    HashingPool::new(PasswordHasher::new(settings, pepper, vec![]).unwrap(), 2)
}

#[tokio::test]
async fn history_detects_reuse_of_the_last_n_only() {
    let pool = small_pool();
    let mut newest_first = Vec::new();
    for old in ["first-old-password", "second-old-password", "third-old-password"] {
        newest_first.insert(0, pool.hash(SecretString::from(old.to_owned())).await.unwrap());
    }
    let settings = PasswordPolicySettings { history_size: 2, ..Default::default() };
    let policy = PasswordPolicy::new(settings, None);

    let cases = [
        ("third-old-password", true),
        ("second-old-password", true),
        // The oldest is beyond the last two and may be used again.
        ("first-old-password", false),
        ("a-brand-new-password", false),
    ];
    for (password, reused) in cases {
        let found = policy.check_history(&pool, password, &newest_first).await.unwrap();
        assert_eq!(found.is_some(), reused, "{password}");
        if let Some(violation) = found {
            assert!(violation.is_reuse() && !violation.is_breach());
            assert_eq!(violation.code, "reused");
            assert_eq!(violation.message, "must differ from your last 2 passwords");
        }
    }

    let off =
        PasswordPolicy::new(PasswordPolicySettings { history_size: 0, ..Default::default() }, None);
    assert_eq!(off.check_history(&pool, "third-old-password", &newest_first).await.unwrap(), None);
    assert_eq!(policy.check_history(&pool, "third-old-password", &[]).await.unwrap(), None);
}

#[tokio::test]
async fn history_skips_hashes_that_cannot_be_verified() {
    let pool = small_pool();
    let old = pool.hash(SecretString::from("an-old-password".to_owned())).await.unwrap();
    let policy = PasswordPolicy::new(PasswordPolicySettings::default(), None);
    let hashes = vec!["not a phc string".to_owned(), old];
    let found = policy.check_history(&pool, "an-old-password", &hashes).await.unwrap();
    assert_eq!(found.map(|violation| violation.code), Some("reused"));
}

#[test]
fn checks_can_run_inside_multi_threaded_handlers() {
    // axum handlers must return Send futures; this fails to compile if a check's future is not.
    fn assert_send<T: Send>(_: T) {}
    let policy = PasswordPolicy::new(bare(), None);
    assert_send(policy.check("x", &[]));
    assert_send(policy.check_history(&small_pool(), "x", &[]));
}
