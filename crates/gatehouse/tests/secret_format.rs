//! Our own secret format (`gta_`, `gtr_`, `gtc_`, `gtd_`, `gtm_`, `gtk_` with a checksum), on both
//! backends: every new secret matches the regex the README documents for secret scanners,
//! secrets of the old `gh?_` format keep working, and a new-format secret with a broken
//! checksum is refused exactly like an unknown one.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use gatehouse_domain::oauth::clients::NewClient;
use gatehouse_store::backend_tests;
use gatehouse_store::testing::TestDatabase;
use reqwest::StatusCode;
use serde_json::json;
use support::mfa::{spawn, totp};
use support::{STRONG_PASSWORD, TestApp};

backend_tests!(
    new_secrets_match_the_documented_regexes,
    broken_checksums_are_refused_like_unknown_secrets,
    client_secrets_of_the_old_format_keep_working,
);

/// The README's regexes, one per kind, as a scanner would use them.
fn documented(kind: &str) -> regex::Regex {
    let pattern = match kind {
        "admin_key" => r"\bgta_[0-9A-Za-z]{49}\b",
        "refresh_token" => r"\bgtr_[0-9A-Za-z]{49}\b",
        "client_secret" => r"\bgtc_[0-9A-Za-z]{49}\b",
        "trusted_browser" => r"\bgtd_[0-9A-Za-z]{49}\b",
        "mfa_challenge" => r"\bgtm_[0-9A-Za-z]{49}\b",
        "api_key" => r"\bgtk_[0-9A-Za-z]{49}\b",
        other => panic!("{other}"),
    };
    regex::Regex::new(pattern).unwrap()
}

fn assert_documented(kind: &str, value: &str) {
    let found = documented(kind).find(value).unwrap_or_else(|| panic!("{kind}: {value}"));
    assert_eq!(found.as_str(), value, "{kind}: the whole secret matches");
}

/// Changes one character of the random part: same shape, wrong checksum.
fn with_typo(secret: &str) -> String {
    let mut bytes = secret.as_bytes().to_vec();
    bytes[10] = if bytes[10] == b'Q' { b'R' } else { b'Q' };
    String::from_utf8(bytes).unwrap()
}

async fn new_secrets_match_the_documented_regexes(test: TestDatabase) {
    let env = spawn(&test, &[]).await;
    assert_documented("admin_key", &env.admin);
    let (client_id, secret) = env
        .app
        .client(NewClient {
            name: "Service".into(),
            grant_types: vec!["client_credentials".into()],
            scopes: vec!["api:read".into()],
            ..NewClient::default()
        })
        .await;
    assert_documented("client_secret", secret.as_deref().unwrap());
    let (_, rotated) = env
        .app
        .post(&format!("/v1/admin/clients/{client_id}/rotate-secret"), Some(&env.admin), json!({}))
        .await;
    assert_documented("client_secret", rotated["client_secret"].as_str().unwrap());
    let tokens = env.app.sign_up("format@example.com", STRONG_PASSWORD).await;
    assert_documented("refresh_token", tokens["refresh_token"].as_str().unwrap());
    let (_, api_key) = env
        .app
        .post(
            "/v1/me/api-keys",
            tokens["access_token"].as_str(),
            json!({ "name": "format", "scopes": ["profile:read"] }),
        )
        .await;
    assert_documented("api_key", api_key["key"].as_str().unwrap());
    let (secret, _) = env.enrol_totp(tokens["access_token"].as_str().unwrap()).await;
    let challenge = env.challenge("format@example.com").await;
    let mfa_token = challenge["mfa_token"].as_str().unwrap();
    assert_documented("mfa_challenge", mfa_token);
    env.clock.advance(30);
    let response = env
        .app
        .http
        .post(env.app.url("/v1/auth/mfa/verify"))
        .json(&json!({
            "mfa_token": mfa_token, "method": "totp", "code": totp(&secret, env.now()),
            "trust_device": true,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|value| value.to_str().unwrap().to_owned())
        .find(|value| value.starts_with("gatehouse_device="))
        .unwrap();
    // The cookie carries the token (signed); a scanner finds it inside.
    assert!(documented("trusted_browser").is_match(&cookie), "{cookie}");
    let tokens: serde_json::Value = response.json().await.unwrap();
    assert_documented("refresh_token", tokens["refresh_token"].as_str().unwrap());
    env.app.stop().await;
}

async fn broken_checksums_are_refused_like_unknown_secrets(test: TestDatabase) {
    let app = TestApp::spawn(&test).await;
    let admin = app.admin_key().await;
    // An admin key: a typo answers what an unknown key answers.
    let (status, _) = app.get_auth("/v1/admin/users", &admin).await;
    assert_eq!(status, StatusCode::OK);
    let unknown = app.get_auth("/v1/admin/users", &format!("gha_{}", "x".repeat(43))).await;
    let typo = app.get_auth("/v1/admin/users", &with_typo(&admin)).await;
    assert_eq!(unknown.0, StatusCode::UNAUTHORIZED);
    assert_eq!(typo, unknown, "a broken checksum answers as an unknown key");
    // A refresh token.
    let tokens = app.sign_up("typo@example.com", STRONG_PASSWORD).await;
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let unknown = app
        .post(
            "/v1/auth/refresh",
            None,
            json!({ "refresh_token": format!("ghr_{}", "y".repeat(43)) }),
        )
        .await;
    let typo =
        app.post("/v1/auth/refresh", None, json!({ "refresh_token": with_typo(refresh) })).await;
    assert_eq!(unknown.0, StatusCode::UNAUTHORIZED);
    assert_eq!(typo, unknown);
    let (status, _) = app.post("/v1/auth/refresh", None, json!({ "refresh_token": refresh })).await;
    assert_eq!(status, StatusCode::OK, "the typo did not spend or revoke the real token");
    // A client secret.
    let (client_id, secret) = app
        .client(NewClient {
            name: "Service".into(),
            grant_types: vec!["client_credentials".into()],
            scopes: vec!["api:read".into()],
            ..NewClient::default()
        })
        .await;
    let secret = secret.unwrap();
    let form = [("grant_type", "client_credentials")];
    let wrong = app
        .post_form("/oauth2/token", Some((&client_id, &format!("gtc_{}", "z".repeat(49)))), &form)
        .await;
    let typo = app.post_form("/oauth2/token", Some((&client_id, &with_typo(&secret))), &form).await;
    assert_eq!(
        (wrong.0, wrong.1["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    assert_eq!(typo, wrong);
    let (status, _) = app.post_form("/oauth2/token", Some((&client_id, &secret)), &form).await;
    assert_eq!(status, StatusCode::OK);
    app.stop().await;
}

/// A client secret issued before the new format (`ghs_` + 43 base64url characters, stored as
/// its keyed digest like any secret) still authenticates its client.
async fn client_secrets_of_the_old_format_keep_working(test: TestDatabase) {
    let app = TestApp::spawn(&test).await;
    let old_secret = format!("ghs_{}", gatehouse_crypto::random_token());
    let (client_id, _) = app
        .client(NewClient {
            name: "Legacy".into(),
            secret: Some(old_secret.clone()),
            grant_types: vec!["client_credentials".into()],
            scopes: vec!["api:read".into()],
            ..NewClient::default()
        })
        .await;
    let (status, body) = app
        .post_form(
            "/oauth2/token",
            Some((&client_id, &old_secret)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.stop().await;
}
