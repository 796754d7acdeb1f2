//! The device authorization grant (RFC 8628) on both backends: user codes without ambiguous
//! characters, polling with `authorization_pending` and `slow_down`, confirmation on the
//! `/device` page after signing in, denial, expiry, single use.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use gatehouse_domain::oauth::clients::NewClient;
use gatehouse_store::testing::TestDatabase;
use gatehouse_store::{backend_tests, with_pool};
use reqwest::StatusCode;
use support::oauth_browser::Browser;
use support::{STRONG_PASSWORD, TestApp};

backend_tests!(
    device_flow_from_code_to_tokens,
    denied_and_expired_device_codes,
    parallel_polls_inside_one_interval_get_one_answer_in_time,
);

/// Finding 8: `slow_down` is decided atomically: of polls sent together, inside one interval,
/// exactly one is answered `authorization_pending`; the rest are told to slow down.
async fn parallel_polls_inside_one_interval_get_one_answer_in_time(test: TestDatabase) {
    let app = TestApp::spawn(&test).await;
    let client_id = tv_client(&app).await;
    let started = start(&app, &client_id).await;
    let device_code = started["device_code"].as_str().unwrap();
    let mut polls = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let request = app.http.post(app.url("/oauth2/token")).form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("device_code", device_code),
            ("client_id", client_id.as_str()),
        ]);
        polls.spawn(async move {
            let response = request.send().await.unwrap();
            (response.status(), response.json::<serde_json::Value>().await.unwrap())
        });
    }
    let mut errors = Vec::new();
    while let Some(answer) = polls.join_next().await {
        let (status, body) = answer.unwrap();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        errors.push(body["error"].as_str().unwrap().to_owned());
    }
    errors.sort();
    let pending = errors.iter().filter(|error| *error == "authorization_pending").count();
    let slow = errors.iter().filter(|error| *error == "slow_down").count();
    assert_eq!((pending, slow), (1, 7), "{errors:?}");
    app.stop().await;
}

async fn tv_client(app: &TestApp) -> String {
    let (client_id, secret) = app
        .client(NewClient {
            name: "Living-room TV".into(),
            public: true,
            grant_types: vec![
                "urn:ietf:params:oauth:grant-type:device_code".into(),
                "refresh_token".into(),
            ],
            ..NewClient::default()
        })
        .await;
    assert!(secret.is_none());
    client_id
}

async fn start(app: &TestApp, client_id: &str) -> serde_json::Value {
    let (status, body) = app
        .post_form(
            "/oauth2/device_authorization",
            None,
            &[("client_id", client_id), ("scope", "openid offline_access")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn poll(
    app: &TestApp,
    client_id: &str,
    device_code: &str,
) -> (StatusCode, serde_json::Value) {
    app.post_form(
        "/oauth2/token",
        None,
        &[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("device_code", device_code),
            ("client_id", client_id),
        ],
    )
    .await
}

async fn device_flow_from_code_to_tokens(test: TestDatabase) {
    let app = TestApp::spawn(&test).await;
    app.sign_up("viewer@example.com", STRONG_PASSWORD).await;
    let client_id = tv_client(&app).await;
    let started = start(&app, &client_id).await;
    let user_code = started["user_code"].as_str().unwrap();
    assert_eq!(user_code.len(), 9, "XXXX-XXXX");
    assert!(
        user_code.chars().all(|c| c == '-' || "BCDFGHJKLMNPQRSTVWXZ".contains(c)),
        "{user_code}"
    );
    assert_eq!(started["verification_uri"], app.url("/device"));
    assert_eq!(
        (started["interval"].as_i64(), started["expires_in"].as_i64()),
        (Some(5), Some(600))
    );
    let device_code = started["device_code"].as_str().unwrap();

    let (status, body) = poll(&app, &client_id, device_code).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("authorization_pending"))
    );
    let (_, body) = poll(&app, &client_id, device_code).await;
    assert_eq!(body["error"], "slow_down", "polling faster than the interval");

    // The person signs in and confirms, typing the code in lower case without the dash.
    let mut browser = Browser::new(&app.base_url);
    let first = browser.get("/device").await;
    let login = browser.follow(first).await;
    let page = browser.sign_in(&login, "viewer@example.com", STRONG_PASSWORD).await;
    assert!(page.body.contains("name=\"user_code\""), "{}", page.body);
    let typed = user_code.replace('-', "").to_lowercase();
    let confirm = browser.get(&format!("/device?user_code={typed}")).await;
    assert!(
        confirm.body.contains("Living-room TV") && confirm.body.contains(user_code),
        "{}",
        confirm.body
    );
    let csrf = confirm.field("csrf_token").unwrap();
    let done = browser
        .post("/device", &[("user_code", user_code), ("decision", "allow"), ("csrf_token", &csrf)])
        .await;
    assert_eq!(done.status, StatusCode::OK);

    let (status, tokens) = poll(&app, &client_id, device_code).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert!(tokens["id_token"].is_string() && tokens["refresh_token"].is_string());
    let (status, body) = poll(&app, &client_id, device_code).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "single use"
    );
    // The code cannot be confirmed twice either.
    let again = browser.get(&format!("/device?user_code={user_code}")).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    // Another client cannot poll with this device code.
    let other = tv_client(&app).await;
    let (_, body) = poll(&app, &other, device_code).await;
    assert_eq!(body["error"], "invalid_grant");
    app.stop().await;
}

async fn denied_and_expired_device_codes(test: TestDatabase) {
    let app = TestApp::spawn(&test).await;
    app.sign_up("denier@example.com", STRONG_PASSWORD).await;
    let client_id = tv_client(&app).await;
    let denied = start(&app, &client_id).await;
    let mut browser = Browser::new(&app.base_url);
    let first =
        browser.get(&format!("/device?user_code={}", denied["user_code"].as_str().unwrap())).await;
    let login = browser.follow(first).await;
    let confirm = browser.sign_in(&login, "denier@example.com", STRONG_PASSWORD).await;
    let csrf = confirm.field("csrf_token").unwrap();
    let user_code = confirm.field("user_code").unwrap();
    let done = browser
        .post("/device", &[("user_code", &user_code), ("decision", "deny"), ("csrf_token", &csrf)])
        .await;
    assert_eq!(done.status, StatusCode::OK);
    let (_, body) = poll(&app, &client_id, denied["device_code"].as_str().unwrap()).await;
    assert_eq!(body["error"], "access_denied");

    let expiring = start(&app, &client_id).await;
    // Time passes: the code's life ends (set in the database rather than waiting ten minutes).
    with_pool!(&app.database, pool => {
        sqlx::query("UPDATE device_codes SET expires_at = 0").execute(pool).await.unwrap();
    });
    let (_, body) = poll(&app, &client_id, expiring["device_code"].as_str().unwrap()).await;
    assert_eq!(body["error"], "expired_token");
    let page = browser
        .get(&format!("/device?user_code={}", expiring["user_code"].as_str().unwrap()))
        .await;
    assert_eq!(page.status, StatusCode::NOT_FOUND, "an expired code cannot be confirmed");
    // Without the CSRF token nothing is decided.
    let page = browser.post("/device", &[("user_code", "BCDF-GHJK"), ("decision", "allow")]).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    // A client without the device grant is refused.
    let (web, _) = app
        .client(NewClient {
            name: "Web".into(),
            redirect_uris: vec!["https://a.example/cb".into()],
            public: true,
            ..NewClient::default()
        })
        .await;
    let (status, body) =
        app.post_form("/oauth2/device_authorization", None, &[("client_id", &web)]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unauthorized_client"))
    );
    app.stop().await;
}
