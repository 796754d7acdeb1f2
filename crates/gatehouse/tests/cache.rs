//! The read cache of the hot paths never outlives a change: on one instance a revocation,
//! suspension or client deletion is seen by the very next request even when the old answer
//! was cached; on PostgreSQL a second instance learns of it through NOTIFY.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use gatehouse_crypto::MasterKey;
use gatehouse_domain::oauth::clients::NewClient;
use gatehouse_store::backend_tests;
use gatehouse_store::testing::TestDatabase;
use reqwest::StatusCode;
use serde_json::json;
use support::{STRONG_PASSWORD, TestApp};

backend_tests!(
    a_revoked_session_stops_its_cached_token_at_once,
    a_suspended_user_stops_their_cached_token_at_once,
    a_deleted_client_stops_authenticating_at_once,
    a_revoked_access_token_is_inactive_after_a_cached_introspection,
    an_accepted_access_token_is_refused_once_it_expires,
    an_altered_copy_of_an_accepted_token_is_refused,
);

fn service_client() -> NewClient {
    NewClient {
        name: "service".into(),
        grant_types: vec!["client_credentials".into()],
        scopes: vec!["api:read".into()],
        ..NewClient::default()
    }
}

async fn client_credentials(app: &TestApp, id: &str, secret: &str) -> (StatusCode, String) {
    let (status, body) = app
        .post_form(
            "/oauth2/token",
            Some((id, secret)),
            &[("grant_type", "client_credentials"), ("scope", "api:read")],
        )
        .await;
    (status, body["access_token"].as_str().unwrap_or_default().to_owned())
}

async fn a_revoked_session_stops_its_cached_token_at_once(test: TestDatabase) {
    let app = TestApp::spawn(&test).await;
    assert!(app.database.cache().is_enabled() || test.postgres_schema.is_some());
    let tokens = app.sign_up("cached@example.com", STRONG_PASSWORD).await;
    let token = tokens["access_token"].as_str().unwrap();
    let session = tokens["session_id"].as_str().unwrap();
    for _ in 0..3 {
        assert_eq!(app.get_auth("/v1/me", token).await.0, StatusCode::OK);
    }
    let (status, _) = app
        .send(reqwest::Method::DELETE, &format!("/v1/me/sessions/{session}"), Some(token), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(app.get_auth("/v1/me", token).await.0, StatusCode::UNAUTHORIZED);
    app.stop().await;
}

async fn a_suspended_user_stops_their_cached_token_at_once(test: TestDatabase) {
    let app = TestApp::spawn(&test).await;
    let admin = app.admin_key().await;
    let tokens = app.sign_up("suspended@example.com", STRONG_PASSWORD).await;
    let token = tokens["access_token"].as_str().unwrap();
    let user = tokens["user"]["id"].as_str().unwrap();
    for _ in 0..3 {
        assert_eq!(app.get_auth("/v1/me", token).await.0, StatusCode::OK);
    }
    let (status, body) = app
        .send(
            reqwest::Method::POST,
            &format!("/v1/admin/users/{user}/suspend"),
            Some(&admin),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(app.get_auth("/v1/me", token).await.0, StatusCode::UNAUTHORIZED);
    app.stop().await;
}

async fn a_deleted_client_stops_authenticating_at_once(test: TestDatabase) {
    let app = TestApp::spawn(&test).await;
    let admin = app.admin_key().await;
    let (id, secret) = app.client(service_client()).await;
    let secret = secret.unwrap();
    for _ in 0..3 {
        assert_eq!(client_credentials(&app, &id, &secret).await.0, StatusCode::OK);
    }
    let (status, _) = app
        .send(reqwest::Method::DELETE, &format!("/v1/admin/clients/{id}"), Some(&admin), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(client_credentials(&app, &id, &secret).await.0, StatusCode::UNAUTHORIZED);
    app.stop().await;
}

async fn a_revoked_access_token_is_inactive_after_a_cached_introspection(test: TestDatabase) {
    let app = TestApp::spawn(&test).await;
    let (id, secret) = app.client(service_client()).await;
    let secret = secret.unwrap();
    let (_, token) = client_credentials(&app, &id, &secret).await;
    for _ in 0..3 {
        let (status, body) =
            app.post_form("/oauth2/introspect", Some((&id, &secret)), &[("token", &token)]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["active"], true);
    }
    let (status, _) =
        app.post_form("/oauth2/revoke", Some((&id, &secret)), &[("token", &token)]).await;
    assert_eq!(status, StatusCode::OK);
    let (_, body) =
        app.post_form("/oauth2/introspect", Some((&id, &secret)), &[("token", &token)]).await;
    assert_eq!(body["active"], false);
    app.stop().await;
}

/// A verified token may be remembered (its signature not checked again), but its expiry is
/// checked on every use, on `/v1/me` and introspection alike.
async fn an_accepted_access_token_is_refused_once_it_expires(test: TestDatabase) {
    let wall = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let clock = std::sync::Arc::new(gatehouse_domain::ManualClock::new(wall.as_secs() as i64));
    let app =
        TestApp::spawn_with_clock(&test, &MasterKey::generate(), &[], Some(clock.clone())).await;
    let tokens = app.sign_up("expiring@example.com", STRONG_PASSWORD).await;
    let token = tokens["access_token"].as_str().unwrap();
    let (id, secret) = app.client(service_client()).await;
    let secret = secret.unwrap();
    let (_, service_token) = client_credentials(&app, &id, &secret).await;
    for _ in 0..3 {
        assert_eq!(app.get_auth("/v1/me", token).await.0, StatusCode::OK);
        let (_, body) = app
            .post_form("/oauth2/introspect", Some((&id, &secret)), &[("token", &service_token)])
            .await;
        assert_eq!(body["active"], true);
    }
    // Past the default 15-minute lifetime and the 30-second leeway; the keys are still
    // published (retention outlives the tokens), so only the expiry check can refuse them.
    clock.advance(15 * 60 + 31);
    assert_eq!(app.get_auth("/v1/me", token).await.0, StatusCode::UNAUTHORIZED);
    let (_, body) = app
        .post_form("/oauth2/introspect", Some((&id, &secret)), &[("token", &service_token)])
        .await;
    assert_eq!(body["active"], false);
    app.stop().await;
}

/// The remembered verification belongs to the exact token: a copy with another signature or
/// other claims is verified on its own, and refused.
async fn an_altered_copy_of_an_accepted_token_is_refused(test: TestDatabase) {
    let app = TestApp::spawn(&test).await;
    let tokens = app.sign_up("altered@example.com", STRONG_PASSWORD).await;
    let token = tokens["access_token"].as_str().unwrap();
    assert_eq!(app.get_auth("/v1/me", token).await.0, StatusCode::OK);
    let (header_and_claims, signature) = token.rsplit_once('.').unwrap();
    let flipped = if signature.starts_with('A') { "B" } else { "A" };
    let bad_signature = format!("{header_and_claims}.{flipped}{}", &signature[1..]);
    assert_eq!(app.get_auth("/v1/me", &bad_signature).await.0, StatusCode::UNAUTHORIZED);
    let mut parts = token.split('.');
    let (header, _, signature) = (parts.next().unwrap(), parts.next(), parts.next().unwrap());
    let other_claims = base64_url(&json!({"sub": "usr_someone_else"}).to_string());
    let forged = format!("{header}.{other_claims}.{signature}");
    assert_eq!(app.get_auth("/v1/me", &forged).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(app.get_auth("/v1/me", token).await.0, StatusCode::OK);
    app.stop().await;
}

fn base64_url(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

/// Polls `check` until it holds or `deadline` passes (NOTIFY reaches the other instance
/// asynchronously, a few milliseconds after the commit).
async fn eventually<F, Fut>(deadline: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return true;
        }
        if started.elapsed() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Two instances on one PostgreSQL database: what one changes, the other stops serving from
/// its cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_instance_drops_what_the_first_changed() {
    let Some(test) = TestDatabase::postgres().await.unwrap() else {
        eprintln!("skipped: set GATEHOUSE_TEST_POSTGRES_URL");
        return;
    };
    let key = MasterKey::generate();
    // Instances behind one load balancer share the issuer their tokens name.
    let shared = [("GATEHOUSE_ISSUER", "http://gatehouse.test")];
    let first = TestApp::spawn_with(&test, &key, &shared).await;
    let second = TestApp::spawn_with(&test, &key, &shared).await;
    for app in [&first, &second] {
        let database = app.database.clone();
        let listening =
            eventually(Duration::from_secs(10), || async { database.cache().is_enabled() }).await;
        assert!(listening, "the cache turns on once the instance listens");
    }

    // A session revoked through the first instance.
    let tokens = first.sign_up("two@example.com", STRONG_PASSWORD).await;
    let token = tokens["access_token"].as_str().unwrap().to_owned();
    let session = tokens["session_id"].as_str().unwrap();
    for _ in 0..3 {
        let (status, body) = second.get_auth("/v1/me", &token).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, _) = first
        .send(reqwest::Method::DELETE, &format!("/v1/me/sessions/{session}"), Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let stopped = eventually(Duration::from_secs(5), || async {
        second.get_auth("/v1/me", &token).await.0 == StatusCode::UNAUTHORIZED
    })
    .await;
    assert!(stopped, "the second instance stops the revoked session's token");

    // A client deleted through the first instance.
    let admin = first.admin_key().await;
    let (id, secret) = first.client(service_client()).await;
    let secret = secret.unwrap();
    for _ in 0..3 {
        assert_eq!(client_credentials(&second, &id, &secret).await.0, StatusCode::OK);
    }
    let (status, _) = first
        .send(reqwest::Method::DELETE, &format!("/v1/admin/clients/{id}"), Some(&admin), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let refused = eventually(Duration::from_secs(5), || async {
        client_credentials(&second, &id, &secret).await.0 == StatusCode::UNAUTHORIZED
    })
    .await;
    assert!(refused, "the second instance refuses the deleted client");
    first.stop().await;
    second.stop().await;
}
