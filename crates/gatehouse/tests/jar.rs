//! Request objects (JAR, RFC 9101): an authorization request signed by the client with one of
//! its registered keys, by value at `/oauth2/authorize` (kept as a pushed request, the browser
//! sent on with its `request_uri`) and inside a pushed request; only the object's parameters
//! count. Refused: an object signed by another key, unsigned, expired, for another audience
//! or client, or from a client without keys. Both backends.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use gatehouse_crypto::{SigningAlgorithm, SigningKey};
use gatehouse_domain::oauth::clients::NewClient;
use gatehouse_store::backend_tests;
use gatehouse_store::testing::TestDatabase;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::oauth_browser::{Browser, query};
use support::{STRONG_PASSWORD, TestApp};

backend_tests!(
    a_request_object_by_value_runs_one_authorization_with_its_own_parameters,
    a_pushed_request_object_is_opened_with_the_clients_keys,
);

const REDIRECT: &str = "https://app.example.com/callback";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// A `private_key_jwt` client: its JWKS holds `key`'s public half.
async fn keyed_client(app: &TestApp, key: &SigningKey) -> String {
    let (client_id, secret) = app
        .client(NewClient {
            name: "Signing App".into(),
            redirect_uris: vec![REDIRECT.into()],
            skip_consent: true,
            jwks: Some(json!({ "keys": [key.public_jwk()] })),
            ..NewClient::default()
        })
        .await;
    assert!(secret.is_none());
    client_id
}

/// The claims of a good request object of `client_id` for `app`, plus `extra`.
fn request_claims(app: &TestApp, client_id: &str, extra: Value) -> Value {
    let mut claims = json!({
        "iss": client_id,
        "aud": app.base_url,
        "client_id": client_id,
        "exp": now() + 60,
        "iat": now(),
        "response_type": "code",
        "redirect_uri": REDIRECT,
        "scope": "openid email",
        "state": "inner-state",
        "nonce": "inner-nonce",
        "code_challenge": gatehouse_crypto::pkce_s256(VERIFIER),
        "code_challenge_method": "S256",
    });
    for (name, value) in extra.as_object().unwrap() {
        claims[name] = value.clone();
    }
    claims
}

fn object(key: &SigningKey, claims: &Value) -> String {
    key.sign("oauth-authz-req+jwt", claims).unwrap()
}

fn authorize_url(app: &TestApp, pairs: &[(&str, &str)]) -> String {
    let mut url = reqwest::Url::parse(&app.url("/oauth2/authorize")).unwrap();
    for (name, value) in pairs {
        url.query_pairs_mut().append_pair(name, value);
    }
    url.to_string()
}

/// A `client_assertion` signed by `key` for `client_id`.
fn assertion(app: &TestApp, key: &SigningKey, client_id: &str) -> String {
    key.sign(
        "JWT",
        &json!({ "iss": client_id, "sub": client_id, "aud": app.url("/oauth2/token"),
                 "iat": now(), "exp": now() + 60, "jti": gatehouse_crypto::new_id("jti") }),
    )
    .unwrap()
}

async fn exchange(app: &TestApp, key: &SigningKey, client_id: &str, code: &str) -> Value {
    let assertion = assertion(app, key, client_id);
    let (status, tokens) = app
        .post_form(
            "/oauth2/token",
            None,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", VERIFIER),
                ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
                ("client_assertion", &assertion),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    tokens
}

async fn a_request_object_by_value_runs_one_authorization_with_its_own_parameters(
    test: TestDatabase,
) {
    let app = TestApp::spawn(&test).await;
    app.sign_up("jar@example.com", STRONG_PASSWORD).await;
    let key = SigningKey::generate(SigningAlgorithm::ES256, 2048).unwrap();
    let client_id = keyed_client(&app, &key).await;

    let (_, discovery) = app.get_json("/.well-known/openid-configuration").await;
    assert_eq!(discovery["request_parameter_supported"], true);
    assert!(
        discovery["request_object_signing_alg_values_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("ES256"))
    );

    // By value, with parameters beside it that must not count.
    let signed = object(&key, &request_claims(&app, &client_id, json!({})));
    let url = authorize_url(
        &app,
        &[
            ("client_id", &client_id),
            ("response_type", "code"),
            ("request", &signed),
            ("state", "outer-state"),
            ("scope", "openid"),
        ],
    );
    let mut browser = Browser::new(&app.base_url);
    let kept = browser.get(&url).await;
    let location = kept.location.clone().unwrap_or_else(|| panic!("{}", kept.body));
    assert!(location.starts_with("/oauth2/authorize?"), "kept as a pushed request: {location}");
    let next = query(&format!("http://x{location}"));
    assert_eq!(next["client_id"], client_id);
    assert!(next["request_uri"].starts_with("urn:ietf:params:oauth:request_uri:"));
    assert!(!location.contains("request="), "{location}");
    let login = browser.follow(kept).await;
    let done = browser.sign_in(&login, "jar@example.com", STRONG_PASSWORD).await;
    let callback = done.location.clone().unwrap_or_else(|| panic!("{}", done.body));
    assert!(callback.starts_with(REDIRECT), "{callback}");
    let callback = query(&callback);
    assert_eq!(callback["state"], "inner-state", "the object's state, not the query's");
    let tokens = exchange(&app, &key, &client_id, &callback["code"]).await;
    let id_token = tokens["id_token"].as_str().unwrap();
    let claims: Value =
        gatehouse_crypto::jsonwebtoken::dangerous::insecure_decode_claims(id_token).unwrap();
    assert_eq!(claims["nonce"], "inner-nonce");
    assert_eq!(tokens["scope"], "openid email", "the object's scope");

    // Refused before anything is kept, at the registered redirect URI given beside the object
    // (invalid_request_object), or on a page without one.
    let other = SigningKey::generate(SigningAlgorithm::ES256, 2048).unwrap();
    let expired = request_claims(&app, &client_id, json!({ "exp": now() - 600 }));
    let too_long = request_claims(&app, &client_id, json!({ "exp": now() + 7200 }));
    let elsewhere = request_claims(&app, &client_id, json!({ "aud": "https://other.example" }));
    let someone = request_claims(&app, &client_id, json!({ "client_id": "cli_someone_else" }));
    let unsigned = format!(
        "eyJhbGciOiJub25lIiwidHlwIjoib2F1dGgtYXV0aHotcmVxK2p3dCJ9.{}.",
        base64_claims(&request_claims(&app, &client_id, json!({})))
    );
    for (bad, why) in [
        (object(&other, &request_claims(&app, &client_id, json!({}))), "another key"),
        (object(&key, &expired), "expired"),
        (object(&key, &too_long), "lives too long"),
        (object(&key, &elsewhere), "another audience"),
        (object(&key, &someone), "another client_id"),
        (unsigned, "unsigned"),
    ] {
        let page = browser
            .get(&authorize_url(
                &app,
                &[
                    ("client_id", &client_id),
                    ("request", &bad),
                    ("redirect_uri", REDIRECT),
                    ("state", "s"),
                ],
            ))
            .await;
        let location = page.location.clone().unwrap_or_else(|| panic!("{why}: {}", page.body));
        assert!(location.starts_with(REDIRECT), "{why}: {location}");
        assert_eq!(query(&location)["error"], "invalid_request_object", "{why}");
        let page = browser
            .get(&authorize_url(&app, &[("client_id", &client_id), ("request", &bad)]))
            .await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{why}: a page without a redirect URI");
        assert!(page.location.is_none(), "{why}");
    }
    app.stop().await;
}

fn base64_claims(claims: &Value) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap())
}

async fn a_pushed_request_object_is_opened_with_the_clients_keys(test: TestDatabase) {
    let app = TestApp::spawn(&test).await;
    app.sign_up("jar@example.com", STRONG_PASSWORD).await;
    let key = SigningKey::generate(SigningAlgorithm::ES256, 2048).unwrap();
    let client_id = keyed_client(&app, &key).await;
    let push = |request: String| {
        let app = &app;
        let key = &key;
        let client_id = client_id.clone();
        async move {
            let assertion = assertion(app, key, &client_id);
            app.post_form(
                "/oauth2/par",
                None,
                &[
                    ("client_id", client_id.as_str()),
                    ("request", &request),
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    ),
                    ("client_assertion", &assertion),
                ],
            )
            .await
        }
    };
    let (status, pushed) = push(object(&key, &request_claims(&app, &client_id, json!({})))).await;
    assert_eq!(status, StatusCode::CREATED, "{pushed}");
    let mut browser = Browser::new(&app.base_url);
    let first = browser
        .get(&authorize_url(
            &app,
            &[("client_id", &client_id), ("request_uri", pushed["request_uri"].as_str().unwrap())],
        ))
        .await;
    let login = browser.follow(first).await;
    let done = browser.sign_in(&login, "jar@example.com", STRONG_PASSWORD).await;
    let callback = query(&done.location.clone().unwrap_or_else(|| panic!("{}", done.body)));
    assert_eq!(callback["state"], "inner-state");
    exchange(&app, &key, &client_id, &callback["code"]).await;

    // Another key's object, and an object whose request is invalid (a scope the client may
    // not have): the push's JSON errors.
    let other = SigningKey::generate(SigningAlgorithm::ES256, 2048).unwrap();
    let (status, body) = push(object(&other, &request_claims(&app, &client_id, json!({})))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_request_object");
    let (status, body) =
        push(object(&key, &request_claims(&app, &client_id, json!({ "scope": "admin" })))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_scope");

    // A client with a secret and no keys cannot sign request objects.
    let (secret_client, secret) = app
        .client(NewClient {
            name: "Secret App".into(),
            redirect_uris: vec![REDIRECT.into()],
            ..NewClient::default()
        })
        .await;
    let claims = request_claims(&app, &secret_client, json!({}));
    let (status, body) = app
        .post_form(
            "/oauth2/par",
            Some((&secret_client, &secret.unwrap())),
            &[("request", &object(&key, &claims))],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_request_object");
    app.stop().await;
}
