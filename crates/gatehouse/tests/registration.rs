//! Dynamic client registration (RFC 7591) and registration management (RFC 7592): off by
//! default; `open` registers public clients only, with the usual redirect URI rules; `token`
//! wants an initial access token from the admin API (uses counted); the registration access
//! token reads, replaces and deletes the registration, and nothing else does. Both backends.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use gatehouse_crypto::MasterKey;
use gatehouse_store::backend_tests;
use gatehouse_store::testing::TestDatabase;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::oauth_browser::{Browser, query};
use support::{STRONG_PASSWORD, TestApp};

backend_tests!(
    registration_is_off_by_default,
    open_registration_is_for_public_clients_that_manage_their_registration,
    token_registration_needs_an_initial_access_token,
);

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

async fn register(app: &TestApp, token: Option<&str>, body: &Value) -> (StatusCode, Value) {
    let mut request = app.http.post(app.url("/oauth2/register")).json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    (response.status(), response.json().await.unwrap_or(Value::Null))
}

async fn manage(
    app: &TestApp,
    method: reqwest::Method,
    uri: &str,
    token: &str,
    body: Option<&Value>,
) -> (StatusCode, Value) {
    let mut request = app.http.request(method, uri).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn registration_is_off_by_default(test: TestDatabase) {
    let app = TestApp::spawn(&test).await;
    let (_, discovery) = app.get_json("/.well-known/openid-configuration").await;
    assert!(discovery.get("registration_endpoint").is_none(), "{discovery}");
    let (status, _) = register(
        &app,
        None,
        &json!({ "redirect_uris": ["https://app.example/cb"], "token_endpoint_auth_method": "none" }),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    app.stop().await;
}

fn public_metadata(redirect: &str) -> Value {
    json!({
        "client_name": "MCP Inspector",
        "redirect_uris": [redirect],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "scope": "openid email",
        "software_statement": "ignored.jwt.value",
        "logo_uri": "https://unknown-metadata.example/logo.png",
    })
}

async fn open_registration_is_for_public_clients_that_manage_their_registration(
    test: TestDatabase,
) {
    let app = TestApp::spawn_with(
        &test,
        &MasterKey::generate(),
        &[("GATEHOUSE_OAUTH_DYNAMIC_REGISTRATION", "open")],
    )
    .await;
    app.sign_up("person@example.com", STRONG_PASSWORD).await;
    let (_, discovery) = app.get_json("/.well-known/openid-configuration").await;
    assert_eq!(discovery["registration_endpoint"], app.url("/oauth2/register"));

    let redirect = "http://127.0.0.1:33418/callback";
    let (status, registered) = register(&app, None, &public_metadata(redirect)).await;
    assert_eq!(status, StatusCode::CREATED, "{registered}");
    let client_id = registered["client_id"].as_str().unwrap().to_owned();
    assert!(registered.get("client_secret").is_none(), "a public client has no secret");
    assert_eq!(registered["token_endpoint_auth_method"], "none");
    assert_eq!(registered["client_name"], "MCP Inspector");
    let token = registered["registration_access_token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("gtg_"), "{token}");
    let uri = registered["registration_client_uri"].as_str().unwrap().to_owned();
    assert_eq!(uri, app.url(&format!("/oauth2/register/{client_id}")));

    // The registered client runs a code flow; a client nobody vetted is asked consent.
    let mut browser = Browser::new(&app.base_url);
    let mut url = reqwest::Url::parse(&app.url("/oauth2/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &client_id)
        .append_pair("redirect_uri", redirect)
        .append_pair("scope", "openid email")
        .append_pair("code_challenge", &gatehouse_crypto::pkce_s256(VERIFIER))
        .append_pair("code_challenge_method", "S256");
    let first = browser.get(url.as_str()).await;
    let login = browser.follow(first).await;
    let consent = browser.sign_in(&login, "person@example.com", STRONG_PASSWORD).await;
    assert!(consent.body.contains("name=\"decision\""), "consent is asked:\n{}", consent.body);
    let done = browser.consent(&consent, "allow").await;
    let code = query(&done.location.clone().unwrap())["code"].clone();
    let (status, tokens) = app
        .post_form(
            "/oauth2/token",
            None,
            &[
                ("grant_type", "authorization_code"),
                ("client_id", &client_id),
                ("code", &code),
                ("redirect_uri", redirect),
                ("code_verifier", VERIFIER),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");

    // Management with the registration access token (RFC 7592), and only with it.
    let (status, read) = manage(&app, reqwest::Method::GET, &uri, &token, None).await;
    assert_eq!(status, StatusCode::OK, "{read}");
    assert_eq!(read["redirect_uris"], json!([redirect]));
    assert!(read.get("registration_access_token").is_none(), "never answered twice");
    let other = "gtg_000000000000000000000000000000000000000000000000000";
    let (status, _) = manage(&app, reqwest::Method::GET, &uri, other, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let admin = app.admin_key().await;
    let (status, _) = manage(&app, reqwest::Method::GET, &uri, &admin, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "an admin key is not this client's token");
    let mut changed = public_metadata("http://127.0.0.1:40000/done");
    changed["client_name"] = json!("Renamed");
    let (status, replaced) = manage(&app, reqwest::Method::PUT, &uri, &token, Some(&changed)).await;
    assert_eq!(status, StatusCode::OK, "{replaced}");
    assert_eq!(replaced["client_name"], "Renamed");
    assert_eq!(replaced["redirect_uris"], json!(["http://127.0.0.1:40000/done"]));
    let mut confidential = changed.clone();
    confidential["token_endpoint_auth_method"] = json!("client_secret_basic");
    let (status, body) =
        manage(&app, reqwest::Method::PUT, &uri, &token, Some(&confidential)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_client_metadata"))
    );
    let (status, _) = manage(&app, reqwest::Method::DELETE, &uri, &token, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = manage(&app, reqwest::Method::GET, &uri, &token, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "gone");
    let (status, _) = app
        .post_form(
            "/oauth2/token",
            None,
            &[
                ("grant_type", "refresh_token"),
                ("client_id", &client_id),
                ("refresh_token", tokens["refresh_token"].as_str().unwrap_or("none")),
            ],
        )
        .await;
    assert_ne!(status, StatusCode::OK, "the deleted client's grants end with it");

    // Open registration refuses what it is not for.
    let refusals = [
        (json!({ "redirect_uris": ["https://app.example/cb"] }), "invalid_client_metadata"),
        (
            json!({ "redirect_uris": ["https://app.example/cb"], "token_endpoint_auth_method": "none",
                    "grant_types": ["client_credentials"] }),
            "invalid_client_metadata",
        ),
        (
            json!({ "redirect_uris": ["http://app.example/cb"], "token_endpoint_auth_method": "none" }),
            "invalid_redirect_uri",
        ),
        (json!({ "token_endpoint_auth_method": "none" }), "invalid_redirect_uri"),
        (
            json!({ "redirect_uris": ["https://app.example/cb"], "token_endpoint_auth_method": "none",
                    "response_types": ["token"] }),
            "invalid_client_metadata",
        ),
    ];
    for (body, error) in refusals {
        let (status, answer) = register(&app, None, &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert_eq!(answer["error"], error, "{body}");
    }
    let response = app
        .http
        .post(app.url("/oauth2/register"))
        .header("content-type", "text/plain")
        .body("redirect_uris=https://app.example/cb")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    app.stop().await;
}

async fn token_registration_needs_an_initial_access_token(test: TestDatabase) {
    let app = TestApp::spawn_with(
        &test,
        &MasterKey::generate(),
        &[("GATEHOUSE_OAUTH_DYNAMIC_REGISTRATION", "token")],
    )
    .await;
    let service = json!({
        "client_name": "Reporting job",
        "token_endpoint_auth_method": "client_secret_basic",
        "grant_types": ["client_credentials"],
        "scope": "reports:read",
    });
    let (status, _) = register(&app, None, &service).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let admin = app.admin_key().await;
    let (status, issued) = app
        .post("/v1/admin/registration-tokens", Some(&admin), json!({ "name": "reporting" }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{issued}");
    assert_eq!(issued["max_uses"], 1);
    let initial = issued["token"].as_str().unwrap();
    assert!(initial.starts_with("gti_"));
    let (status, registered) = register(&app, Some(initial), &service).await;
    assert_eq!(status, StatusCode::CREATED, "{registered}");
    let secret = registered["client_secret"].as_str().unwrap();
    assert_eq!(registered["client_secret_expires_at"], 0);
    // Spent: one registration per token here.
    let (status, _) = register(&app, Some(initial), &service).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let client_id = registered["client_id"].as_str().unwrap();
    let (status, tokens) = app
        .post_form(
            "/oauth2/token",
            Some((client_id, secret)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["scope"], "reports:read");

    let (status, problem) = app
        .post("/v1/admin/registration-tokens", Some(&admin), json!({ "name": "x", "max_uses": 0 }))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    app.stop().await;
}
