//! Brute-force defence and password-hash upkeep: rate limits in process and shared through
//! Redis, indistinguishable timing of unknown and known accounts, transparent re-hashing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use gatehouse_crypto::MasterKey;
use gatehouse_domain::UserStore;
use gatehouse_store::backend_tests;
use gatehouse_store::testing::TestDatabase;
use reqwest::StatusCode;
use serde_json::json;
use support::{STRONG_PASSWORD, TestApp};

backend_tests!(
    re_hashes_on_sign_in_when_parameters_change,
    imported_hashes_sign_in_and_are_upgraded
);

/// Published vectors: OpenBSD's bcrypt "U*U" (cost 5) and Django 1.4's PBKDF2 "letmein".
const BCRYPT_U_U: &str = "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW";
const DJANGO_LETMEIN: &str =
    "pbkdf2_sha256$10000$seasalt$FQCNpiZpTb0zub+HBsH6TOwyRxJ19FwvjbweatNmK/Y=";

async fn imported_hashes_sign_in_and_are_upgraded(test: TestDatabase) {
    let app = TestApp::spawn(&test).await;
    let key = app.admin_key().await;
    for (email, hash, password) in [
        ("bcrypt@example.com", BCRYPT_U_U, "U*U"),
        ("django@example.com", DJANGO_LETMEIN, "letmein"),
    ] {
        let (status, user) = app
            .post("/v1/admin/users", Some(&key), json!({ "email": email, "password_hash": hash }))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{user}");
        assert_eq!(user["has_password"], true);
        let id = user["id"].as_str().unwrap().to_owned();
        assert_eq!(app.sign_in(email, "not-the-password").await.0, StatusCode::UNAUTHORIZED);
        let stored = app.database.user_by_id(&id).await.unwrap().unwrap().password_hash.unwrap();
        assert_eq!(stored, hash, "a failed sign-in leaves the imported hash");
        assert_eq!(app.sign_in(email, password).await.0, StatusCode::OK);
        let upgraded = app.database.user_by_id(&id).await.unwrap().unwrap().password_hash.unwrap();
        assert!(upgraded.starts_with("$argon2id$") && upgraded.contains("keyid="), "{upgraded}");
        assert_eq!(
            app.sign_in(email, password).await.0,
            StatusCode::OK,
            "the upgraded hash verifies"
        );
    }
    for bad in
        ["$md5$abc", "$2a$31$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", "plaintext"]
    {
        let (status, problem) = app
            .post(
                "/v1/admin/users",
                Some(&key),
                json!({ "email": "bad@example.com", "password_hash": bad }),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        assert_eq!(problem["errors"][0]["code"], "unsupported_hash");
    }
    let (status, _) = app
        .post("/v1/admin/users", Some(&key), json!({ "email": "both@example.com", "password_hash": BCRYPT_U_U, "password": STRONG_PASSWORD }))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_answer_429_with_headers() {
    let test = TestDatabase::sqlite().await.unwrap();
    let limits = [
        ("GATEHOUSE_RATE_LIMIT_ENABLED", "true"),
        ("GATEHOUSE_RATE_LIMIT_SIGN_IN_PER_MINUTE", "3"),
    ];
    let app = TestApp::spawn_with(&test, &MasterKey::generate(), &limits).await;
    for remaining in [2, 1, 0] {
        let response = app
            .http
            .post(app.url("/v1/auth/sign-in"))
            .json(&json!({ "email": "who@example.com", "password": "Whatever-it-is-1" }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()["ratelimit-limit"], "3");
        assert_eq!(response.headers()["ratelimit-remaining"], remaining.to_string().as_str());
    }
    let response = app
        .http
        .post(app.url("/v1/auth/sign-in"))
        .json(&json!({ "email": "who@example.com", "password": "Whatever-it-is-1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let problem: serde_json::Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "rate_limited");
    // Other routes have their own budget.
    let (status, _) = app.post("/v1/auth/refresh", None, json!({ "refresh_token": "ghr_x" })).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    app.stop().await;
}

/// `POST /v1/me/password` checks a password, so it spends the per-IP sign-in budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_changes_are_rate_limited_like_sign_in() {
    let test = TestDatabase::sqlite().await.unwrap();
    let limits = [
        ("GATEHOUSE_RATE_LIMIT_ENABLED", "true"),
        ("GATEHOUSE_RATE_LIMIT_SIGN_IN_PER_MINUTE", "2"),
    ];
    let app = TestApp::spawn_with(&test, &MasterKey::generate(), &limits).await;
    let tokens = app.sign_up("limited@example.com", STRONG_PASSWORD).await;
    let token = tokens["access_token"].as_str().unwrap();
    let change =
        json!({ "current_password": "a-wrong-guess", "new_password": "Another-Strong-9-pass" });
    for _ in 0..2 {
        let (status, _) = app.post("/v1/me/password", Some(token), change.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    }
    let (status, problem) = app.post("/v1/me/password", Some(token), change).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited"))
    );
    // The budget is the sign-in one: signing in from this address is refused too.
    let (status, _) = app.sign_in("limited@example.com", STRONG_PASSWORD).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_rate_limits_are_shared_across_instances() {
    let Some(redis_url) = gatehouse_store::testing::redis_url().unwrap() else {
        eprintln!("skipped: set GATEHOUSE_TEST_REDIS_URL");
        return;
    };
    let test = TestDatabase::sqlite().await.unwrap();
    let master_key = MasterKey::generate();
    // A prefix of its own, so parallel tests and reruns never share a budget.
    let prefix = format!("test:{}:", gatehouse_crypto::random_token());
    let settings = [
        ("GATEHOUSE_REDIS_URL", redis_url.as_str()),
        ("GATEHOUSE_REDIS_KEY_PREFIX", prefix.as_str()),
        ("GATEHOUSE_RATE_LIMIT_ENABLED", "true"),
        ("GATEHOUSE_RATE_LIMIT_SIGN_UP_PER_MINUTE", "4"),
    ];
    let first = TestApp::spawn_with(&test, &master_key, &settings).await;
    let second = TestApp::spawn_with(&test, &master_key, &settings).await;
    let mut statuses = Vec::new();
    for index in 0..6 {
        let app = if index % 2 == 0 { &first } else { &second };
        let (status, _) =
            app.post("/v1/auth/sign-up", None, json!({ "email": "bad", "password": "x" })).await;
        statuses.push(status.as_u16());
    }
    assert_eq!(statuses, [422, 422, 422, 422, 429, 429], "one budget across both instances");
    first.stop().await;
    second.stop().await;
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Unknown accounts and known accounts with a wrong password take the same time: both spend
/// one Argon2id computation. Heavier parameters than other tests make the hash dominate, as in
/// production; the comparison is of medians of interleaved samples, with a wide margin for this
/// noisy machine — a missing dummy hash would differ by a factor of many.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_known_accounts_take_the_same_time() {
    let test = TestDatabase::sqlite().await.unwrap();
    let heavier = [
        ("GATEHOUSE_PASSWORD_MEMORY_KIB", "8192"),
        ("GATEHOUSE_PASSWORD_ITERATIONS", "2"),
        ("GATEHOUSE_LOCKOUT_THRESHOLD", "0"),
    ];
    let app = TestApp::spawn_with(&test, &MasterKey::generate(), &heavier).await;
    app.sign_up("known@example.com", STRONG_PASSWORD).await;
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for round in 0..12 {
        for (email, samples) in [
            ("known@example.com", &mut known),
            (&*format!("nobody{round}@example.com"), &mut unknown),
        ] {
            let started = Instant::now();
            let (status, _) = app.sign_in(email, "Wrong-password-99").await;
            samples.push(started.elapsed());
            assert_eq!(status, StatusCode::UNAUTHORIZED);
        }
    }
    let (known, unknown) = (median(known), median(unknown));
    let ratio = known.as_secs_f64() / unknown.as_secs_f64();
    assert!(
        (0.6..=1.6).contains(&ratio),
        "known {known:?} vs unknown {unknown:?} (ratio {ratio:.2})"
    );
    app.stop().await;
}

async fn re_hashes_on_sign_in_when_parameters_change(test: TestDatabase) {
    let master_key = MasterKey::generate();
    let old =
        TestApp::spawn_with(&test, &master_key, &[("GATEHOUSE_PASSWORD_MEMORY_KIB", "1024")]).await;
    let tokens = old.sign_up("rehash@example.com", STRONG_PASSWORD).await;
    let user_id = tokens["user"]["id"].as_str().unwrap().to_owned();
    let stored = |database: gatehouse_store::Database, id: String| async move {
        database.user_by_id(&id).await.unwrap().unwrap().password_hash.unwrap()
    };
    assert!(stored(old.database.clone(), user_id.clone()).await.contains("m=1024,"));
    old.stop().await;

    let new =
        TestApp::spawn_with(&test, &master_key, &[("GATEHOUSE_PASSWORD_MEMORY_KIB", "2048")]).await;
    // A failed sign-in changes nothing; a successful one upgrades the hash.
    new.sign_in("rehash@example.com", "Wrong-password-99").await;
    assert!(stored(new.database.clone(), user_id.clone()).await.contains("m=1024,"));
    assert_eq!(new.sign_in("rehash@example.com", STRONG_PASSWORD).await.0, StatusCode::OK);
    let upgraded = stored(new.database.clone(), user_id.clone()).await;
    assert!(upgraded.starts_with("$argon2id$") && upgraded.contains("m=2048,"), "{upgraded}");
    assert_eq!(new.sign_in("rehash@example.com", STRONG_PASSWORD).await.0, StatusCode::OK);
    new.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_password_policy_is_published() {
    let test = TestDatabase::sqlite().await.unwrap();
    let app = TestApp::spawn_with(
        &test,
        &MasterKey::generate(),
        &[("GATEHOUSE_PASSWORD_POLICY_MIN_LENGTH", "12")],
    )
    .await;
    let (status, policy) = app.get_json("/v1/auth/password-policy").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (policy["min_length"].as_u64(), policy["history_size"].as_u64()),
        (Some(12), Some(5))
    );
    assert_eq!(policy["breach_check"], false);
    let (status, problem) = app
        .post(
            "/v1/auth/sign-up",
            None,
            json!({ "email": "p@example.com", "password": "Elevenchars" }),
        )
        .await;
    assert_eq!(
        (status, problem["errors"][0]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("too_short"))
    );
    app.stop().await;
}

/// Regression (#19, finding 8): behind a trusted proxy, two IPv6 addresses of one /64 spend
/// one sign-in budget (they used to get one each), while another /64 keeps its own; and a
/// forwarded chain with an unparsable entry is not read past it (the spoof on its left used
/// to become the client, so every request got a fresh budget).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_budgets_are_per_64_and_forwarded_for_stops_at_garbage() {
    let test = TestDatabase::sqlite().await.unwrap();
    let limits = [
        ("GATEHOUSE_RATE_LIMIT_ENABLED", "true"),
        ("GATEHOUSE_RATE_LIMIT_SIGN_IN_PER_MINUTE", "1"),
        ("GATEHOUSE_TRUSTED_PROXIES", "127.0.0.1/32"),
    ];
    let app = TestApp::spawn_with(&test, &MasterKey::generate(), &limits).await;
    let sign_in_from = |forwarded: &'static str| {
        app.http
            .post(app.url("/v1/auth/sign-in"))
            .header("x-forwarded-for", forwarded)
            .json(&json!({ "email": "who@example.com", "password": "Whatever-it-is-1" }))
            .send()
    };
    assert_eq!(sign_in_from("2001:db8:0:1::1").await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        sign_in_from("2001:db8:0:1:abcd::2").await.unwrap().status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(sign_in_from("2001:db8:0:2::1").await.unwrap().status(), StatusCode::UNAUTHORIZED);
    // Garbage in the chain: the proxy itself (the peer) is taken as the client, whatever the
    // spoofed address on the left, so two different spoofs share one budget.
    assert_eq!(
        sign_in_from("198.51.100.1, not-an-address").await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        sign_in_from("198.51.100.2, not-an-address").await.unwrap().status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    app.stop().await;
}

/// Regression (#19, finding 7): with verification required, a sign-up for a registered
/// address answered 409 at once, without hashing, so even a uniform answer would leak through
/// its time. Both paths now do one Argon2id hash and one write: medians of interleaved samples
/// stay within a wide margin (a missing hash would differ by a factor of many).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_ups_take_the_same_time_for_new_and_registered_addresses() {
    let test = TestDatabase::sqlite().await.unwrap();
    let heavier = [
        ("GATEHOUSE_PASSWORD_MEMORY_KIB", "8192"),
        ("GATEHOUSE_PASSWORD_ITERATIONS", "2"),
        ("GATEHOUSE_REQUIRE_EMAIL_VERIFICATION", "true"),
    ];
    let app = TestApp::spawn_with(&test, &MasterKey::generate(), &heavier).await;
    let sign_up = |email: String| {
        app.post("/v1/auth/sign-up", None, json!({ "email": email, "password": STRONG_PASSWORD }))
    };
    assert_eq!(sign_up("known@example.com".into()).await.0, StatusCode::ACCEPTED);
    let (mut known, mut new) = (Vec::new(), Vec::new());
    for round in 0..10 {
        for (email, samples) in [
            ("known@example.com".to_owned(), &mut known),
            (format!("new{round}@example.com"), &mut new),
        ] {
            let started = Instant::now();
            let (status, body) = sign_up(email).await;
            samples.push(started.elapsed());
            assert_eq!(
                (status, body),
                (StatusCode::ACCEPTED, json!({ "verification_required": true }))
            );
        }
    }
    let (known, new) = (median(known), median(new));
    let ratio = known.as_secs_f64() / new.as_secs_f64();
    assert!((0.6..=1.6).contains(&ratio), "registered {known:?} vs new {new:?} (ratio {ratio:.2})");
    app.stop().await;
}
