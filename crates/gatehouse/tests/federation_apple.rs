//! Sign in with Apple, on both backends, against a local stand-in that answers the way Apple
//! does: the client secret must be an ES256 JWT signed with the team's sign-in key (`iss` the
//! team, `sub` the client id, `aud` the issuer, `kid` the key id), posted in the form body; the
//! browser comes back with a cross-site form POST (`response_mode=form_post`) carrying the
//! person's name once (`user`); the ID token's `email_verified` is the string `"true"`.
//! The provider keeps the upstream's tokens: an admin reads the access token, renewed through
//! the refresh token once it has expired, and they are sealed at rest.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Form, Query, State};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use gatehouse_crypto::{MasterKey, SigningAlgorithm, SigningKey};
use gatehouse_store::backend_tests;
use gatehouse_store::testing::TestDatabase;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Digest as _;
use support::TestApp;

backend_tests!(
    sign_in_with_apple_posts_back_and_keeps_the_tokens,
    apple_providers_through_the_admin_api_take_a_sign_in_key,
);

const CLIENT_ID: &str = "com.example.web";
const TEAM_ID: &str = "TEAM123456";
const KEY_ID: &str = "KEY7890ABC";

#[derive(Clone)]
struct FakeApple {
    issuer: String,
    /// Signs the ID tokens (Apple's own key).
    id_token_key: Arc<SigningKey>,
    /// The public half of the team's sign-in key: the client secrets must verify with it.
    team_key: Arc<jsonwebtoken::DecodingKey>,
    /// code → (nonce, PKCE challenge).
    codes: Arc<Mutex<HashMap<String, (String, String)>>>,
    /// The query of the last authorization request.
    last_authorize: Arc<Mutex<HashMap<String, String>>>,
    /// Every access token handed out, and the refresh tokens still good.
    issued: Arc<Mutex<Vec<String>>>,
    refresh_tokens: Arc<Mutex<Vec<String>>>,
    /// How many client secrets were accepted.
    secrets_checked: Arc<Mutex<usize>>,
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

async fn discovery(State(fake): State<FakeApple>) -> axum::Json<Value> {
    // Apple's document, with this stand-in's addresses.
    axum::Json(json!({
        "issuer": fake.issuer,
        "authorization_endpoint": format!("{}/auth/authorize", fake.issuer),
        "token_endpoint": format!("{}/auth/token", fake.issuer),
        "revocation_endpoint": format!("{}/auth/revoke", fake.issuer),
        "jwks_uri": format!("{}/auth/keys", fake.issuer),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "email", "name"],
        "token_endpoint_auth_methods_supported": ["client_secret_post"],
        "claims_supported": ["aud", "email", "email_verified", "exp", "iat", "is_private_email", "iss", "nonce", "nonce_supported", "real_user_status", "sub", "transfer_sub"],
    }))
}

async fn keys(State(fake): State<FakeApple>) -> axum::Json<Value> {
    axum::Json(json!({ "keys": [fake.id_token_key.public_jwk()] }))
}

/// Apple answers the browser with a page that posts the code back (`form_post`).
async fn authorize(
    State(fake): State<FakeApple>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    *fake.last_authorize.lock().unwrap() = query.clone();
    let code = gatehouse_crypto::random_token();
    fake.codes.lock().unwrap().insert(
        code.clone(),
        (query["nonce"].clone(), query.get("code_challenge").cloned().unwrap_or_default()),
    );
    let user = json!({
        "name": { "firstName": "Ada", "lastName": "Lovelace" },
        "email": "someone-else@example.com",
    })
    .to_string();
    let escape = |text: &str| text.replace('&', "&amp;").replace('"', "&quot;");
    Html(format!(
        r#"<html><body onload="document.forms[0].submit()"><form method="post" action="{action}"><input type="hidden" name="code" value="{code}"><input type="hidden" name="state" value="{state}"><input type="hidden" name="user" value="{user}"></form></body></html>"#,
        action = escape(&query["redirect_uri"]),
        state = escape(&query["state"]),
        user = escape(&user),
    ))
    .into_response()
}

fn refused(error: &str) -> Response {
    (StatusCode::BAD_REQUEST, axum::Json(json!({ "error": error }))).into_response()
}

/// Checks the client secret as Apple does: an ES256 JWT from the team's key, naming the key.
fn client_secret_is_good(fake: &FakeApple, form: &HashMap<String, String>) -> bool {
    let Some(secret) = form.get("client_secret") else { return false };
    let Ok(header) = jsonwebtoken::decode_header(secret) else { return false };
    if header.alg != jsonwebtoken::Algorithm::ES256 || header.kid.as_deref() != Some(KEY_ID) {
        return false;
    }
    let mut check = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    check.set_audience(&[&fake.issuer]);
    check.set_issuer(&[TEAM_ID]);
    check.sub = Some(CLIENT_ID.to_owned());
    check.set_required_spec_claims(&["exp", "iat", "aud", "iss", "sub"]);
    let good = jsonwebtoken::decode::<Value>(secret, &fake.team_key, &check).is_ok_and(|data| {
        let claims = data.claims;
        // Apple takes at most six months.
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap() <= 15_777_000
    });
    if good {
        *fake.secrets_checked.lock().unwrap() += 1;
    }
    good && form.get("client_id").map(String::as_str) == Some(CLIENT_ID)
}

fn tokens(fake: &FakeApple) -> (String, String) {
    let access = format!("apple-access-{}", gatehouse_crypto::random_token());
    let refresh = format!("apple-refresh-{}", gatehouse_crypto::random_token());
    fake.issued.lock().unwrap().push(access.clone());
    fake.refresh_tokens.lock().unwrap().push(refresh.clone());
    (access, refresh)
}

async fn token(
    State(fake): State<FakeApple>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if !client_secret_is_good(&fake, &form) {
        return refused("invalid_client");
    }
    match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let Some((nonce, challenge)) = fake.codes.lock().unwrap().remove(&form["code"]) else {
                return refused("invalid_grant");
            };
            let verifier = form.get("code_verifier").cloned().unwrap_or_default();
            let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(sha2::Sha256::digest(verifier.as_bytes()));
            if computed != challenge {
                return refused("invalid_grant");
            }
            let claims = json!({
                "iss": fake.issuer,
                "aud": CLIENT_ID,
                "sub": "001234.apple-subject.0999",
                "iat": now(),
                "exp": now() + 600,
                "nonce": nonce,
                "nonce_supported": true,
                "email": "ada@privaterelay.appleid.com",
                // As Apple sends them: strings.
                "email_verified": "true",
                "is_private_email": "true",
                "auth_time": now(),
            });
            let id_token = fake.id_token_key.sign("JWT", &claims).unwrap();
            let (access, refresh) = tokens(&fake);
            axum::Json(json!({
                "access_token": access,
                "token_type": "Bearer",
                "expires_in": 3600,
                "refresh_token": refresh,
                "id_token": id_token,
            }))
            .into_response()
        }
        Some("refresh_token") => {
            let presented = form.get("refresh_token").cloned().unwrap_or_default();
            if !fake.refresh_tokens.lock().unwrap().contains(&presented) {
                return refused("invalid_grant");
            }
            let (access, _) = tokens(&fake);
            // Apple answers a refresh without a new refresh token.
            axum::Json(
                json!({ "access_token": access, "token_type": "Bearer", "expires_in": 3600 }),
            )
            .into_response()
        }
        _ => refused("unsupported_grant_type"),
    }
}

async fn start_fake(team_key: &SigningKey) -> FakeApple {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(team_key.public_jwk()).unwrap();
    let fake = FakeApple {
        issuer: format!("http://{}", listener.local_addr().unwrap()),
        id_token_key: Arc::new(SigningKey::generate(SigningAlgorithm::RS256, 2048).unwrap()),
        team_key: Arc::new(jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap()),
        codes: Arc::default(),
        last_authorize: Arc::default(),
        issued: Arc::default(),
        refresh_tokens: Arc::default(),
        secrets_checked: Arc::default(),
    };
    let app = axum::Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/auth/keys", get(keys))
        .route("/auth/authorize", get(authorize))
        .route("/auth/token", post(token))
        .with_state(fake.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    fake
}

/// The hidden input `name`'s value in `html`.
fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).unwrap() + marker.len();
    let end = start + html[start..].find('"').unwrap();
    html[start..end].replace("&quot;", "\"").replace("&amp;", "&")
}

/// A sign-in from a new browser: `/sso/apple`, Apple's page, its form posted back. Answers the
/// flow cookie's `Set-Cookie` and this server's answer to the POST.
async fn sign_in(app: &TestApp) -> (String, StatusCode, Option<String>, String) {
    let http =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let started = http.get(format!("{}/sso/apple", app.base_url)).send().await.unwrap();
    assert_eq!(started.status(), StatusCode::SEE_OTHER);
    let set_cookie = started.headers()["set-cookie"].to_str().unwrap().to_owned();
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let apple_page = http
        .get(started.headers()["location"].to_str().unwrap())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let action = hidden(&apple_page.replace("action=\"", "name=\"action\" value=\""), "action");
    let posted = http
        .post(action)
        .header("cookie", cookie)
        // Cross-site: the browser sends no cookie of this server's but the SameSite=None one.
        .header("origin", "https://appleid.apple.com")
        .form(&[
            ("code", hidden(&apple_page, "code")),
            ("state", hidden(&apple_page, "state")),
            ("user", hidden(&apple_page, "user")),
        ])
        .send()
        .await
        .unwrap();
    let status = posted.status();
    let location = posted.headers().get("location").map(|value| value.to_str().unwrap().to_owned());
    (set_cookie, status, location, posted.text().await.unwrap())
}

fn provider_file(fake: &FakeApple, key_path: &std::path::Path) -> String {
    format!(
        r#"
[[identity_providers]]
id = "apple"
kind = "apple"
name = "Apple"
issuer = "{issuer}"
client_id = "{CLIENT_ID}"
team_id = "{TEAM_ID}"
key_id = "{KEY_ID}"
private_key_file = "{key}"
keep_tokens = true
"#,
        issuer = fake.issuer,
        key = key_path.display(),
    )
}

async fn sign_in_with_apple_posts_back_and_keeps_the_tokens(test: TestDatabase) {
    let team_key = SigningKey::generate(SigningAlgorithm::ES256, 0).unwrap();
    let fake = start_fake(&team_key).await;
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("AuthKey_KEY7890ABC.p8");
    std::fs::write(&key_path, team_key.pkcs8_pem().as_bytes()).unwrap();
    let clock = Arc::new(gatehouse_domain::ManualClock::new(now()));
    let file = provider_file(&fake, &key_path);
    let app = TestApp::spawn_with_file(
        &test,
        &MasterKey::generate(),
        Some(&file),
        &[],
        Some(clock.clone()),
    )
    .await;
    let admin = app.admin_key().await;

    let (set_cookie, status, location, body) = sign_in(&app).await;
    // The flow cookie travels with a cross-site POST.
    assert!(set_cookie.contains("SameSite=None"), "{set_cookie}");
    assert!(set_cookie.contains("; Secure"), "{set_cookie}");
    let asked = fake.last_authorize.lock().unwrap().clone();
    assert_eq!(asked["response_mode"], "form_post");
    assert_eq!(asked["scope"], "openid email name");
    assert_eq!(asked["code_challenge_method"], "S256");
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    assert_eq!(location.as_deref(), Some("/account"));
    assert_eq!(*fake.secrets_checked.lock().unwrap(), 1, "the minted client secret was checked");

    // The account: Apple's (relay) address, verified by Apple's word ("true" as a string), the
    // name from the posted `user` field — never its address.
    let (_, users) =
        app.get_auth("/v1/admin/users?email=ada@privaterelay.appleid.com", &admin).await;
    let user = users["data"][0].clone();
    assert_eq!(user["first_name"], "Ada", "{users}");
    assert_eq!(user["last_name"], "Lovelace");
    assert_eq!(user["email_verified"], true);
    let (_, other) = app.get_auth("/v1/admin/users?email=someone-else@example.com", &admin).await;
    assert_eq!(other["data"], json!([]));
    let user_id = user["id"].as_str().unwrap().to_owned();

    // The kept access token, never the refresh token; sealed at rest.
    let token_path = format!("/v1/admin/users/{user_id}/identities/apple/token");
    let (status, kept) = app.get_auth(&token_path, &admin).await;
    assert_eq!(status, StatusCode::OK, "{kept}");
    let first_access = fake.issued.lock().unwrap()[0].clone();
    assert_eq!(kept["access_token"], first_access.as_str());
    assert_eq!(kept["token_type"], "bearer");
    assert_eq!(kept["provider_id"], "apple");
    assert_eq!(kept["expires_at"], gatehouse_domain::clock::Clock::now(clock.as_ref()) + 3600);
    assert!(!kept.to_string().contains("apple-refresh"), "a refresh token was answered: {kept}");
    let sealed: Vec<u8> = gatehouse_store::with_pool!(&app.database, pool => {
        sqlx::query_scalar("SELECT tokens_ciphertext FROM user_identities WHERE user_id = $1")
            .bind(&user_id)
            .fetch_one(pool)
            .await
            .unwrap()
    });
    for secret in [first_access.as_bytes(), b"apple-refresh"] {
        assert!(!sealed.windows(secret.len()).any(|window| window == secret), "kept in the clear");
    }

    // An hour later: renewed through the refresh token (a freshly minted client secret).
    clock.advance(3600);
    let (status, renewed) = app.get_auth(&token_path, &admin).await;
    assert_eq!(status, StatusCode::OK, "{renewed}");
    let second_access = fake.issued.lock().unwrap()[1].clone();
    assert_eq!(renewed["access_token"], second_access.as_str());
    assert_eq!(*fake.secrets_checked.lock().unwrap(), 2);
    // Read again: the renewed one, kept (no second refresh).
    let (_, again) = app.get_auth(&token_path, &admin).await;
    assert_eq!(again["access_token"], second_access.as_str());
    assert_eq!(fake.issued.lock().unwrap().len(), 2);
    let (_, log) = app.get_auth("/v1/admin/audit-log?action=identity.token_read", &admin).await;
    assert_eq!(log["data"].as_array().unwrap().len(), 3, "{log}");
    assert!(!log.to_string().contains("apple-access"), "a token in the audit log: {log}");

    // Apple revoked the refresh token: the user must sign in again.
    fake.refresh_tokens.lock().unwrap().clear();
    clock.advance(3600);
    let (status, problem) = app.get_auth(&token_path, &admin).await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert_eq!(problem["code"], "upstream_token_expired");

    // Signing in again keeps the new tokens; the name stays as it was.
    let (_, status, _, body) = sign_in(&app).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let (status, kept) = app.get_auth(&token_path, &admin).await;
    assert_eq!(status, StatusCode::OK, "{kept}");
    assert_eq!(kept["access_token"], fake.issued.lock().unwrap()[2].as_str());
    let (_, users) =
        app.get_auth("/v1/admin/users?email=ada@privaterelay.appleid.com", &admin).await;
    assert_eq!(users["data"].as_array().unwrap().len(), 1);

    // No such identity: not found.
    let (status, _) =
        app.get_auth(&format!("/v1/admin/users/{user_id}/identities/corp/token"), &admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    app.stop().await;
}

/// Through the admin API an Apple provider takes `team_id`, `key_id` and `private_key` (PEM,
/// write-only); a key that is not a P-256 PKCS#8 PEM, a missing team id, or a `client_secret`
/// for Apple are refused with the field at fault.
async fn apple_providers_through_the_admin_api_take_a_sign_in_key(test: TestDatabase) {
    let team_key = SigningKey::generate(SigningAlgorithm::ES256, 0).unwrap();
    let fake = start_fake(&team_key).await;
    let app = TestApp::spawn_with_file(
        &test,
        &MasterKey::generate(),
        None,
        &[("GATEHOUSE_OUTBOUND_ALLOW_PRIVATE_TARGETS", "true")],
        None,
    )
    .await;
    let admin = app.admin_key().await;
    let pem = team_key.pkcs8_pem().to_string();
    let request = json!({
        "id": "apple", "kind": "apple", "name": "Apple", "issuer": fake.issuer,
        "client_id": CLIENT_ID, "team_id": TEAM_ID, "key_id": KEY_ID, "private_key": pem,
    });
    let rsa_pem =
        SigningKey::generate(SigningAlgorithm::RS256, 2048).unwrap().pkcs8_pem().to_string();
    for (change, field) in [
        (
            json!({ "private_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----" }),
            "private_key",
        ),
        (json!({ "private_key": rsa_pem }), "private_key"),
        (json!({ "team_id": null }), "team_id"),
        (json!({ "key_id": "not an id!" }), "key_id"),
        (json!({ "client_secret": "a-secret", "private_key": null }), "client_secret"),
        (json!({ "client_secret": "a-secret" }), "private_key"),
    ] {
        let mut bad = request.clone();
        for (key, value) in change.as_object().unwrap() {
            bad[key] = value.clone();
        }
        let (status, problem) = app.post("/v1/admin/identity-providers", Some(&admin), bad).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{change}: {problem}");
        assert_eq!(problem["errors"][0]["field"], field, "{change}: {problem}");
    }
    let (status, created) = app.post("/v1/admin/identity-providers", Some(&admin), request).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["team_id"], TEAM_ID);
    assert_eq!(created["key_id"], KEY_ID);
    assert_eq!(created["has_client_secret"], true);
    assert!(!created.to_string().contains("PRIVATE KEY"), "the key was answered: {created}");
    // A change that keeps the key passes its check with the kept key.
    let (status, changed) = app
        .send(
            reqwest::Method::PATCH,
            "/v1/admin/identity-providers/apple",
            Some(&admin),
            Some(json!({ "name": "Sign in with Apple" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    // Usable at once: the client secret is minted from the stored key.
    let (_, status, location, body) = sign_in(&app).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    assert_eq!(location.as_deref(), Some("/account"));
    assert_eq!(*fake.secrets_checked.lock().unwrap(), 1);
    app.stop().await;
}
