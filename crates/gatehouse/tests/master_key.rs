//! Master-key rotation through the real binary, on both backends, as the README's runbook
//! does it: secrets made under K1; restart with K2 and K1 as previous; `gatehouse master-key
//! reseal` while that server runs; restart with K2 alone. Password sign-in, TOTP, refresh
//! tokens, client secrets, admin keys and pending reset tokens keep working at each step, and
//! K2 alone before the reseal is refused with a message naming GATEHOUSE_PREVIOUS_MASTER_KEYS.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use gatehouse_crypto::MasterKey;
use gatehouse_store::backend_tests;
use gatehouse_store::testing::TestDatabase;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::STRONG_PASSWORD;
use support::binary::{run, serve};
use support::mfa::totp;
use support::smtp::SmtpSink;
use tokio::process::Child;

const NEW_PASSWORD: &str = "Velvet-orbit-lantern-27?";

fn env_for(test: &TestDatabase, sink: &SmtpSink, keys: &[&MasterKey]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = [
        ("GATEHOUSE_HTTP_ADDR", "127.0.0.1:0".to_owned()),
        ("GATEHOUSE_PASSWORD_MEMORY_KIB", "1024".to_owned()),
        ("GATEHOUSE_PASSWORD_ITERATIONS", "1".to_owned()),
        ("GATEHOUSE_PASSWORD_PARALLELISM", "1".to_owned()),
        ("GATEHOUSE_SIGNING_ALGORITHM", "ES256".to_owned()),
        ("GATEHOUSE_RATE_LIMIT_ENABLED", "false".to_owned()),
        ("GATEHOUSE_SMTP_URL", sink.url()),
        ("GATEHOUSE_SMTP_FROM", "Gatehouse <id@example.com>".to_owned()),
        ("GATEHOUSE_OUTBOX_POLL_INTERVAL_MS", "50".to_owned()),
        ("GATEHOUSE_DATABASE_URL", test.url.clone()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect();
    if let Some(schema) = &test.postgres_schema {
        env.push(("GATEHOUSE_DATABASE_SCHEMA".into(), schema.clone()));
    }
    let (current, previous) = keys.split_first().unwrap();
    env.push(("GATEHOUSE_MASTER_KEY".into(), current.encode()));
    if !previous.is_empty() {
        let list: Vec<String> = previous.iter().map(|key| key.encode()).collect();
        env.push(("GATEHOUSE_PREVIOUS_MASTER_KEYS".into(), list.join(",")));
    }
    env
}

async fn terminate(mut child: Child) {
    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let exit = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("no exit after SIGTERM")
        .unwrap();
    assert!(exit.success(), "exit after SIGTERM: {exit:?}");
}

/// What was made under K1 and is checked after each restart.
struct Secrets {
    admin_key: String,
    client_id: String,
    client_secret: String,
}

/// A user made under K1 for one later step: a TOTP factor, a refresh token from sign-up, and
/// a reset token sent by email and not yet used.
struct Person {
    email: String,
    totp_secret: String,
    enrolled_at: u64,
    refresh_token: String,
    reset_token: String,
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

async fn post(url: &str, path: &str, bearer: Option<&str>, body: Value) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new().post(format!("{url}{path}")).json(&body);
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn person(url: &str, sink: &SmtpSink, email: &str) -> Person {
    let (status, signed_up) =
        post(url, "/v1/auth/sign-up", None, json!({ "email": email, "password": STRONG_PASSWORD }))
            .await;
    assert_eq!(status, StatusCode::CREATED, "{signed_up}");
    let access = signed_up["tokens"]["access_token"].as_str().unwrap().to_owned();
    let refresh_token = signed_up["tokens"]["refresh_token"].as_str().unwrap().to_owned();
    let (status, enrolment) = post(url, "/v1/me/mfa/totp", Some(&access), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{enrolment}");
    let totp_secret = enrolment["secret"].as_str().unwrap().to_owned();
    let enrolled_at = now();
    let code = totp(&totp_secret, enrolled_at);
    let (status, confirmed) =
        post(url, "/v1/me/mfa/totp/confirm", Some(&access), json!({ "code": code })).await;
    assert_eq!(status, StatusCode::OK, "{confirmed}");
    let (status, _) = post(url, "/v1/auth/password/forgot", None, json!({ "email": email })).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let deadline = Instant::now() + Duration::from_secs(20);
    let reset_token = loop {
        let token =
            sink.messages_to(email).iter().find_map(|message| message.token_for("/reset-password"));
        if let Some(token) = token {
            break token;
        }
        assert!(Instant::now() < deadline, "no reset email to {email}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    Person { email: email.to_owned(), totp_secret, enrolled_at, refresh_token, reset_token }
}

/// Everything made under K1 works on the server at `url`: `person`'s password, TOTP, refresh
/// token and reset token (each used once), the client secret and the admin key.
async fn everything_works(url: &str, secrets: &Secrets, person: &Person, step: &str) {
    // Password (pepper, email blind index), then the TOTP factor (sealed secret): a code of
    // the step after enrolment, or of the current step once the clock is past it.
    let (status, first) = post(
        url,
        "/v1/auth/sign-in",
        None,
        json!({ "email": person.email, "password": STRONG_PASSWORD }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{step}: password sign-in: {first}");
    assert_eq!(first["mfa_required"], true, "{step}: {first}");
    let code_time = (person.enrolled_at + 30).max(now());
    let (status, tokens) = post(
        url,
        "/v1/auth/mfa/verify",
        None,
        json!({ "mfa_token": first["mfa_token"], "method": "totp",
                "code": totp(&person.totp_secret, code_time) }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{step}: TOTP: {tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    let (status, me) = reqwest::Client::new()
        .get(format!("{url}/v1/me"))
        .bearer_auth(access)
        .send()
        .await
        .map(|response| (response.status(), response))
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{step}: /v1/me");
    assert_eq!(me.json::<Value>().await.unwrap()["email"], person.email.as_str());

    let (status, refreshed) =
        post(url, "/v1/auth/refresh", None, json!({ "refresh_token": person.refresh_token })).await;
    assert_eq!(status, StatusCode::OK, "{step}: refresh token from before: {refreshed}");

    let (status, reset) = post(
        url,
        "/v1/auth/password/reset",
        None,
        json!({ "token": person.reset_token, "new_password": NEW_PASSWORD }),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{step}: pending reset token: {reset}");

    let client_token = reqwest::Client::new()
        .post(format!("{url}/oauth2/token"))
        .basic_auth(&secrets.client_id, Some(&secrets.client_secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let status = client_token.status();
    assert_eq!(
        status,
        StatusCode::OK,
        "{step}: client secret: {}",
        client_token.text().await.unwrap()
    );

    let users = reqwest::Client::new()
        .get(format!("{url}/v1/admin/users"))
        .bearer_auth(&secrets.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(users.status(), StatusCode::OK, "{step}: admin key");
    let listed: Value = users.json().await.unwrap();
    let emails: Vec<&str> =
        listed["data"].as_array().unwrap().iter().filter_map(|u| u["email"].as_str()).collect();
    assert!(emails.contains(&person.email.as_str()), "{step}: sealed emails open: {emails:?}");
}

backend_tests!(rotating_the_master_key_keeps_every_secret_working);

async fn rotating_the_master_key_keeps_every_secret_working(test: TestDatabase) {
    let directory = tempfile::tempdir().unwrap();
    let dir = directory.path();
    let sink = SmtpSink::start().await;
    let old = MasterKey::generate();
    let new = MasterKey::generate();
    let with_old = env_for(&test, &sink, &[&old]);
    let rotating = env_for(&test, &sink, &[&new, &old]);
    let with_new = env_for(&test, &sink, &[&new]);

    // Under K1: the secrets, and one person per later step.
    let (child, url) = serve(dir, &with_old).await;
    let (code, stdout, stderr) =
        run(dir, &with_old, &["admin-key", "create", "--name", "ops", "--json"]).await;
    assert_eq!(code, 0, "{stderr}");
    let admin_key =
        serde_json::from_str::<Value>(&stdout).unwrap()["key"].as_str().unwrap().to_owned();
    let (code, stdout, stderr) = run(
        dir,
        &with_old,
        &["client", "create", "--name", "Backend", "--grant-type", "client_credentials", "--json"],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    let client: Value = serde_json::from_str(&stdout).unwrap();
    let secrets = Secrets {
        admin_key,
        client_id: client["client_id"].as_str().unwrap().to_owned(),
        client_secret: client["client_secret"].as_str().unwrap().to_owned(),
    };
    let before = person(&url, &sink, "before@example.com").await;
    let rotated = person(&url, &sink, "rotated@example.com").await;
    let resealed = person(&url, &sink, "resealed@example.com").await;
    everything_works(&url, &secrets, &before, "under K1").await;
    terminate(child).await;

    // K2 alone before the reseal: refused, and the message says what to do.
    let (code, _, stderr) = run(dir, &with_new, &["serve"]).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("GATEHOUSE_PREVIOUS_MASTER_KEYS"), "{stderr}");
    assert!(stderr.contains("reseal"), "{stderr}");
    assert!(!stderr.contains(&old.encode()) && !stderr.contains(&new.encode()), "{stderr}");

    // K2 with K1 as previous: starts (it used to refuse: "pepper id 1 is both current and
    // previous"), and everything made under K1 works.
    let (child, url) = serve(dir, &rotating).await;
    everything_works(&url, &secrets, &rotated, "K2 with K1 as previous").await;

    // Reseal while that server runs; a second run has nothing left to do.
    let (code, stdout, stderr) = run(dir, &rotating, &["master-key", "reseal", "--json"]).await;
    assert_eq!(code, 0, "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert!(report["resealed"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(report["already_current"], 0, "{report}");
    assert_eq!(report["total"], report["resealed"]);
    assert_eq!(report["master_key_id"], format!("{:08x}", new.id()));
    assert!(stderr.contains("resealed"), "progress goes to stderr: {stderr}");
    let (code, stdout, stderr) = run(dir, &rotating, &["master-key", "reseal", "--json"]).await;
    assert_eq!(code, 0, "{stderr}");
    let again: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        (again["resealed"].as_u64(), again["already_current"].clone()),
        (Some(0), report["total"].clone())
    );
    // The running server is unaffected.
    let health = reqwest::get(format!("{url}/v1/auth/password-policy")).await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    terminate(child).await;

    // K2 alone after the reseal: everything made under K1 still works.
    let (child, url) = serve(dir, &with_new).await;
    everything_works(&url, &secrets, &resealed, "K2 alone after reseal").await;
    terminate(child).await;

    // K1 alone is now refused too: nothing is wrapped under it any more.
    let (code, _, stderr) = run(dir, &with_old, &["keys", "list"]).await;
    assert_eq!(code, 2, "{stderr}");
}
