//! The lockout that holds (#19, findings 1 and 5), through the real router on both backends:
//! a locked account answers the right password exactly as a wrong one and its owner is told
//! by email (real SMTP) with a reset link; step-up and password change obey and feed the same
//! lockout; a burst of parallel second-factor guesses gets no more comparisons than the
//! challenge allows; and guesses spread over many addresses share one per-account budget (in
//! memory, and through Redis across two instances).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use gatehouse_crypto::MasterKey;
use gatehouse_store::backend_tests;
use gatehouse_store::testing::TestDatabase;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::mfa::{spawn, totp, wait_for_text};
use support::{OTHER_STRONG_PASSWORD, STRONG_PASSWORD, TestApp};

backend_tests!(
    a_locked_account_answers_the_right_password_as_a_wrong_one_and_its_owner_is_mailed,
    a_locked_account_cannot_step_up_or_change_its_password,
    wrong_step_up_passwords_lock_the_account,
    parallel_wrong_second_factors_get_no_more_comparisons_than_the_challenge_allows,
    guesses_from_many_addresses_share_one_per_account_budget,
);

/// The admin view of a user.
async fn admin_view(app: &TestApp, admin: &str, email: &str) -> Value {
    let (_, users) = app.get_auth(&format!("/v1/admin/users?email={email}"), admin).await;
    users["data"][0].clone()
}

async fn a_locked_account_answers_the_right_password_as_a_wrong_one_and_its_owner_is_mailed(
    test: TestDatabase,
) {
    let env = spawn(&test, &[("GATEHOUSE_LOCKOUT_THRESHOLD", "3")]).await;
    env.user("ivy@example.com").await;
    let unknown = env.app.sign_in("nobody@example.com", STRONG_PASSWORD).await;
    assert_eq!(unknown.0, StatusCode::UNAUTHORIZED);
    for _ in 0..3 {
        assert_eq!(env.app.sign_in("ivy@example.com", OTHER_STRONG_PASSWORD).await, unknown);
    }
    // Locked now. The right password answers exactly as a wrong one and as an unknown
    // account: same status, same body, no Retry-After, nothing that says "locked".
    for password in [STRONG_PASSWORD, OTHER_STRONG_PASSWORD] {
        let response = env
            .app
            .http
            .post(env.app.url("/v1/auth/sign-in"))
            .json(&json!({ "email": "ivy@example.com", "password": password }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(response.headers().get("retry-after").is_none());
        let text = response.text().await.unwrap();
        assert!(!text.contains("locked"), "{text}");
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), unknown.1);
    }
    // Each attempt while locked counts (audited as `locked`) without extending the lock.
    let user = admin_view(&env.app, &env.admin, "ivy@example.com").await;
    assert_eq!(user["failed_sign_in_attempts"], 5, "{user}");
    let until = user["locked_until"].as_i64().expect("admins still see the lock");
    let reasons = env.audit_reasons("user.sign_in_failed").await;
    assert_eq!(reasons[reasons.len() - 2..], ["locked", "locked"], "{reasons:?}");
    let (_, log) = env.app.get_auth("/v1/admin/audit-log?action=user.locked", &env.admin).await;
    assert_eq!(log["data"].as_array().unwrap().len(), 1, "{log}");
    assert_eq!(log["data"][0]["metadata"]["until"], until);

    // The owner learns of the lock by email (once), with a reset link that lifts it.
    let mail = wait_for_text(&env.sink, "ivy@example.com", "is locked").await;
    assert_eq!(mail.subject(), "Your Gatehouse account was locked");
    let locked_mails = env
        .sink
        .messages_to("ivy@example.com")
        .into_iter()
        .filter(|mail| mail.subject().contains("locked"))
        .count();
    assert_eq!(locked_mails, 1);
    let token = mail.token_for("/reset-password").expect("a reset link");
    let (status, body) = env
        .app
        .post(
            "/v1/auth/password/reset",
            None,
            json!({ "token": token, "new_password": "Brand-new-harbour-42!" }),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, tokens) = env.app.sign_in("ivy@example.com", "Brand-new-harbour-42!").await;
    assert_eq!(status, StatusCode::OK, "the reset lifted the lock: {tokens}");
    env.app.stop().await;
}

async fn a_locked_account_cannot_step_up_or_change_its_password(test: TestDatabase) {
    let env =
        spawn(&test, &[("GATEHOUSE_LOCKOUT_THRESHOLD", "2"), ("GATEHOUSE_LOCKOUT_DURATION", "60")])
            .await;
    let token = env.user("jon@example.com").await;
    for _ in 0..2 {
        let (status, _) = env.app.sign_in("jon@example.com", OTHER_STRONG_PASSWORD).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    // A session opened before the lock cannot step up, even with the right password...
    let (status, problem) = env
        .app
        .post("/v1/auth/reauthenticate", Some(&token), json!({ "password": STRONG_PASSWORD }))
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_credentials")),
        "{problem}"
    );
    // ...nor change the password with the right current one (answered as a wrong one).
    let (status, problem) = env
        .app
        .post(
            "/v1/me/password",
            Some(&token),
            json!({ "current_password": STRONG_PASSWORD, "new_password": "Brand-new-harbour-42!" }),
        )
        .await;
    assert_eq!(
        (status, problem["errors"][0]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("current_password")),
        "{problem}"
    );
    // Both attempts counted, the lock was not extended, and the password did not change.
    let user = admin_view(&env.app, &env.admin, "jon@example.com").await;
    assert_eq!(user["failed_sign_in_attempts"], 4, "{user}");
    assert_eq!(env.audit_reasons("user.reauthentication_failed").await, ["locked"]);
    assert_eq!(env.audit_reasons("user.password_change_failed").await, ["locked"]);
    let (_, log) = env.app.get_auth("/v1/admin/audit-log?action=user.locked", &env.admin).await;
    assert_eq!(log["data"].as_array().unwrap().len(), 1, "{log}");
    // Once the lock has run out, the right password works everywhere again.
    env.clock.advance(61);
    let (status, body) = env
        .app
        .post("/v1/auth/reauthenticate", Some(&token), json!({ "password": STRONG_PASSWORD }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    env.app.stop().await;
}

async fn wrong_step_up_passwords_lock_the_account(test: TestDatabase) {
    let env = spawn(&test, &[("GATEHOUSE_LOCKOUT_THRESHOLD", "3")]).await;
    let token = env.user("kim@example.com").await;
    for _ in 0..3 {
        let (status, _) = env
            .app
            .post(
                "/v1/auth/reauthenticate",
                Some(&token),
                json!({ "password": OTHER_STRONG_PASSWORD }),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let user = admin_view(&env.app, &env.admin, "kim@example.com").await;
    assert!(user["locked_until"].is_i64(), "{user}");
    // The lock holds for sign-in, and the owner is told.
    let (status, _) = env.app.sign_in("kim@example.com", STRONG_PASSWORD).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    wait_for_text(&env.sink, "kim@example.com", "is locked").await;
    env.app.stop().await;
}

/// Fires `count` wrong answers of `method` at one challenge at once; answers the statuses.
async fn burst(env: &support::mfa::Env, mfa_token: &str, method: &str, count: usize) -> Vec<u16> {
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..count {
        let http = env.app.http.clone();
        let url = env.app.url("/v1/auth/mfa/verify");
        let code = match method {
            "totp" => "000000".to_owned(),
            _ => format!("zzzz{n:02}-zzzz"),
        };
        let body = json!({ "mfa_token": mfa_token, "method": method, "code": code });
        tasks.spawn(async move { http.post(url).json(&body).send().await.unwrap().status() });
    }
    let mut statuses = Vec::new();
    while let Some(status) = tasks.join_next().await {
        statuses.push(status.unwrap().as_u16());
    }
    statuses.sort_unstable();
    statuses
}

async fn parallel_wrong_second_factors_get_no_more_comparisons_than_the_challenge_allows(
    test: TestDatabase,
) {
    parallel_guesses(test, &[]).await;
}

/// The same burst with the challenges in Redis (the Lua script counts).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_wrong_second_factors_are_counted_atomically_in_redis() {
    let Some(redis_url) = gatehouse_store::testing::redis_url().unwrap() else {
        eprintln!("skipped: set GATEHOUSE_TEST_REDIS_URL");
        return;
    };
    let test = TestDatabase::sqlite().await.unwrap();
    let prefix = format!("test:{}:", gatehouse_crypto::random_token());
    parallel_guesses(
        test,
        &[("GATEHOUSE_REDIS_URL", redis_url.as_str()), ("GATEHOUSE_REDIS_KEY_PREFIX", &prefix)],
    )
    .await;
}

async fn parallel_guesses(test: TestDatabase, extra: &[(&str, &str)]) {
    // A lockout far away, so only the challenge's own limit (10 answers) applies.
    let mut settings = vec![("GATEHOUSE_LOCKOUT_THRESHOLD", "1000")];
    settings.extend_from_slice(extra);
    let env = spawn(&test, &settings).await;
    let token = env.user("lea@example.com").await;
    let (secret, _) = env.enrol_totp(&token).await;
    env.clock.advance(30);
    let mut compared_so_far = 0;
    for method in ["totp", "backup_code"] {
        let mfa_token =
            env.challenge("lea@example.com").await["mfa_token"].as_str().unwrap().to_owned();
        let statuses = burst(&env, &mfa_token, method, 30).await;
        // Ten answers were counted and compared (400 invalid_mfa_code); the other twenty found
        // the challenge spent (401) without any comparison.
        let wrong = statuses.iter().filter(|status| **status == 400).count();
        let spent = statuses.iter().filter(|status| **status == 401).count();
        assert_eq!((wrong, spent), (10, 20), "{method}: {statuses:?}");
        compared_so_far += 10;
        let reasons = env.audit_reasons("mfa.verify_failed").await;
        assert_eq!(reasons.len(), compared_so_far, "{method}: {reasons:?}");
        assert!(reasons.iter().all(|reason| reason == "invalid_mfa_code"), "{reasons:?}");
        let user = admin_view(&env.app, &env.admin, "lea@example.com").await;
        assert_eq!(user["failed_sign_in_attempts"], compared_so_far, "{user}");
        // The challenge is exhausted: the right code afterwards is refused too.
        let (status, problem) = env.verify(&mfa_token, "totp", &totp(&secret, env.now())).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("invalid_mfa_token")),
            "{problem}"
        );
    }
    env.app.stop().await;
}

/// Sign-in attempts from many addresses (behind a trusted proxy) at one account.
async fn sign_in_from(app: &TestApp, ip: &str, email: &str, password: &str) -> reqwest::Response {
    app.http
        .post(app.url("/v1/auth/sign-in"))
        .header("x-forwarded-for", ip)
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .unwrap()
}

const ACCOUNT_LIMIT: [(&str, &str); 4] = [
    ("GATEHOUSE_RATE_LIMIT_ENABLED", "true"),
    ("GATEHOUSE_RATE_LIMIT_ACCOUNT_PER_MINUTE", "4"),
    ("GATEHOUSE_TRUSTED_PROXIES", "127.0.0.1/32"),
    ("GATEHOUSE_LOCKOUT_THRESHOLD", "1000"),
];

async fn guesses_from_many_addresses_share_one_per_account_budget(test: TestDatabase) {
    let app = TestApp::spawn_with(&test, &MasterKey::generate(), &ACCOUNT_LIMIT).await;
    let tokens = app.sign_up("max@example.com", STRONG_PASSWORD).await;
    let access_token = tokens["access_token"].as_str().unwrap().to_owned();
    // Four guesses, each from its own address (each far within its per-IP budget)...
    for n in 1..=4 {
        let ip = format!("198.51.100.{n}");
        let response = sign_in_from(&app, &ip, "max@example.com", OTHER_STRONG_PASSWORD).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    // ...and the fifth, from a fifth address, is refused: the account's budget is spent,
    // whichever way the identifier is written, even with the right password.
    for (ip, email, password) in [
        ("198.51.100.5", "max@example.com", OTHER_STRONG_PASSWORD),
        ("198.51.100.6", " MAX@Example.com", STRONG_PASSWORD),
    ] {
        let response = sign_in_from(&app, ip, email, password).await;
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=60).contains(&retry_after), "{retry_after}");
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["code"], "rate_limited");
    }
    // An identifier nobody has gets the same budget (the limit reveals nothing)...
    for n in 1..=4 {
        let ip = format!("203.0.113.{n}");
        let response = sign_in_from(&app, &ip, "ghost@example.com", OTHER_STRONG_PASSWORD).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let response =
        sign_in_from(&app, "203.0.113.5", "ghost@example.com", OTHER_STRONG_PASSWORD).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    // ...and other accounts keep theirs.
    let response = sign_in_from(&app, "198.51.100.7", "other@example.com", STRONG_PASSWORD).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // Step-up spends the account's budget by user id: four wrong passwords, then 429.
    for _ in 0..4 {
        let (status, _) = app
            .post(
                "/v1/auth/reauthenticate",
                Some(&access_token),
                json!({ "password": OTHER_STRONG_PASSWORD }),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, problem) = app
        .post(
            "/v1/auth/reauthenticate",
            Some(&access_token),
            json!({ "password": STRONG_PASSWORD }),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited"))
    );
    app.stop().await;
}

/// Two instances sharing one Redis share each account's window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_account_window_is_shared_through_redis() {
    let Some(redis_url) = gatehouse_store::testing::redis_url().unwrap() else {
        eprintln!("skipped: set GATEHOUSE_TEST_REDIS_URL");
        return;
    };
    let test = TestDatabase::sqlite().await.unwrap();
    let key = MasterKey::generate();
    let prefix = format!("test:{}:", gatehouse_crypto::random_token());
    let mut settings = ACCOUNT_LIMIT.to_vec();
    settings.push(("GATEHOUSE_REDIS_URL", redis_url.as_str()));
    settings.push(("GATEHOUSE_REDIS_KEY_PREFIX", prefix.as_str()));
    let first = TestApp::spawn_with(&test, &key, &settings).await;
    let second = TestApp::spawn_with(&test, &key, &settings).await;
    first.sign_up("nia@example.com", STRONG_PASSWORD).await;
    for (n, app) in [&first, &second, &first, &second].into_iter().enumerate() {
        let ip = format!("198.51.100.{}", n + 1);
        let response = sign_in_from(app, &ip, "nia@example.com", OTHER_STRONG_PASSWORD).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    for app in [&first, &second] {
        let response = sign_in_from(app, "198.51.100.9", "nia@example.com", STRONG_PASSWORD).await;
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    }
    first.stop().await;
    second.stop().await;
}
