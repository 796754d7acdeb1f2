//! The ID token's checks on a provider sign-in, on both backends: a local OpenID provider
//! (discovery, JWKS, authorize, token — signing with a key of the test's) answers a genuine
//! token, then one with each thing wrong: the nonce, the issuer, the audience, the signature,
//! the expiry, and the RFC 9207 `iss` parameter of the callback. Only the genuine one signs in.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Form, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use gatehouse_crypto::{MasterKey, SigningAlgorithm, SigningKey};
use gatehouse_store::backend_tests;
use gatehouse_store::testing::TestDatabase;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::TestApp;
use support::oauth_browser::Browser;

backend_tests!(
    only_a_genuine_id_token_signs_in,
    the_second_factor_follows_unless_the_upstream_is_trusted_for_it,
    providers_added_through_the_admin_api_work_at_once,
    a_multi_tenant_microsoft_issuer_is_checked_against_the_tokens_tenant,
    a_step_up_through_the_provider_renews_the_sessions_authentication,
    linking_and_unlinking_need_a_recent_sign_in,
);

const CLIENT_ID: &str = "gatehouse-at-fake";

/// What the fake provider gets wrong in its next answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tamper {
    Nothing,
    Nonce,
    Issuer,
    Audience,
    Signature,
    Expired,
    IssParameter,
}

#[derive(Clone)]
struct FakeProvider {
    issuer: String,
    key: Arc<SigningKey>,
    stranger: Arc<SigningKey>,
    tamper: Arc<Mutex<Tamper>>,
    /// The `amr` the ID tokens assert.
    amr: Arc<Mutex<Vec<&'static str>>>,
    /// The `sub` of the next tokens.
    subject: Arc<Mutex<String>>,
    /// The `auth_time` the tokens assert (none when unset).
    auth_time: Arc<Mutex<Option<i64>>>,
    /// The query of the last authorization request.
    last_authorize: Arc<Mutex<HashMap<String, String>>>,
    /// Microsoft's multi-tenant shape: (the tenant in `iss`, the `tid` claim; empty: none).
    tenant: Arc<Mutex<Option<(String, String)>>>,
    /// code → nonce.
    codes: Arc<Mutex<HashMap<String, String>>>,
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

async fn discovery(State(fake): State<FakeProvider>) -> axum::Json<Value> {
    axum::Json(json!({
        "issuer": fake.issuer,
        "authorization_endpoint": format!("{}/authorize", fake.issuer),
        "token_endpoint": format!("{}/token", fake.issuer),
        "jwks_uri": format!("{}/jwks", fake.issuer),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }))
}

/// Microsoft's `common` endpoint: its issuer is a template no token carries as is.
async fn multi_tenant_discovery(State(fake): State<FakeProvider>) -> axum::Json<Value> {
    let axum::Json(mut document) = discovery(State(fake.clone())).await;
    document["issuer"] = json!(format!("{}/{{tenantid}}/v2.0", fake.issuer));
    axum::Json(document)
}

async fn jwks(State(fake): State<FakeProvider>) -> axum::Json<Value> {
    axum::Json(json!({ "keys": [fake.key.public_jwk()] }))
}

async fn authorize(
    State(fake): State<FakeProvider>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    assert_eq!(query["client_id"], CLIENT_ID);
    assert_eq!(query["code_challenge_method"], "S256");
    *fake.last_authorize.lock().unwrap() = query.clone();
    let code = gatehouse_crypto::random_token();
    fake.codes.lock().unwrap().insert(code.clone(), query["nonce"].clone());
    let iss = if *fake.tamper.lock().unwrap() == Tamper::IssParameter {
        "https://mix-up.example".to_owned()
    } else if let Some((tenant, _)) = fake.tenant.lock().unwrap().clone() {
        format!("{}/{tenant}/v2.0", fake.issuer)
    } else {
        fake.issuer.clone()
    };
    let target = reqwest::Url::parse_with_params(
        &query["redirect_uri"],
        &[("code", code.as_str()), ("state", query["state"].as_str()), ("iss", iss.as_str())],
    )
    .unwrap();
    Redirect::to(target.as_str()).into_response()
}

async fn token(
    State(fake): State<FakeProvider>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let Some(nonce) = fake.codes.lock().unwrap().remove(&form["code"]) else {
        return (StatusCode::BAD_REQUEST, axum::Json(json!({ "error": "invalid_grant" })))
            .into_response();
    };
    let tamper = *fake.tamper.lock().unwrap();
    let mut claims = json!({
        "iss": fake.issuer,
        "sub": *fake.subject.lock().unwrap(),
        "aud": CLIENT_ID,
        "iat": now(),
        "exp": now() + 300,
        "nonce": nonce,
        "email": "fay@example.com",
        "email_verified": true,
        "amr": *fake.amr.lock().unwrap(),
    });
    if let Some(at) = *fake.auth_time.lock().unwrap() {
        claims["auth_time"] = json!(at);
    }
    if let Some((tenant, tid)) = fake.tenant.lock().unwrap().clone() {
        claims["iss"] = json!(format!("{}/{tenant}/v2.0", fake.issuer));
        if !tid.is_empty() {
            claims["tid"] = json!(tid);
        }
    }
    match tamper {
        Tamper::Nonce => claims["nonce"] = json!("another-flow's-nonce"),
        Tamper::Issuer => claims["iss"] = json!("https://impostor.example"),
        Tamper::Audience => claims["aud"] = json!("some-other-client"),
        Tamper::Expired => {
            claims["iat"] = json!(now() - 3600);
            claims["exp"] = json!(now() - 1800);
        }
        _ => {}
    }
    let signer = if tamper == Tamper::Signature { &fake.stranger } else { &fake.key };
    let id_token = signer.sign("JWT", &claims).unwrap();
    axum::Json(json!({
        "access_token": "fake-access-token",
        "token_type": "Bearer",
        "expires_in": 300,
        "id_token": id_token,
    }))
    .into_response()
}

async fn start_fake() -> FakeProvider {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fake = FakeProvider {
        issuer: format!("http://{}", listener.local_addr().unwrap()),
        key: Arc::new(SigningKey::generate(SigningAlgorithm::RS256, 2048).unwrap()),
        stranger: Arc::new(SigningKey::generate(SigningAlgorithm::RS256, 2048).unwrap()),
        tamper: Arc::new(Mutex::new(Tamper::Nothing)),
        amr: Arc::new(Mutex::new(vec!["pwd"])),
        tenant: Arc::default(),
        subject: Arc::new(Mutex::new("fake-subject-1".into())),
        auth_time: Arc::default(),
        last_authorize: Arc::default(),
        codes: Arc::default(),
    };
    let app = axum::Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/common/v2.0/.well-known/openid-configuration", get(multi_tenant_discovery))
        .route("/jwks", get(jwks))
        .route("/authorize", get(authorize))
        .route("/token", post(token))
        .with_state(fake.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    fake
}

/// One sign-in from a new browser: this server's answer to the callback.
async fn sign_in(app: &TestApp) -> (StatusCode, String) {
    let (status, _, body) = sign_in_to(app, "fake").await;
    (status, body)
}

/// [`sign_in`], with where the answer sends the browser.
async fn sign_in_to(app: &TestApp, provider: &str) -> (StatusCode, Option<String>, String) {
    let mut browser = Browser::new(&app.base_url);
    through(&mut browser, &format!("/sso/{provider}")).await
}

/// Starts `start` in `browser` and follows the fake provider back: this server's answer.
async fn through(browser: &mut Browser, start: &str) -> (StatusCode, Option<String>, String) {
    let started = browser.get(start).await;
    assert_eq!(started.status, StatusCode::SEE_OTHER, "{}", started.body);
    let upstream = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(started.location.unwrap())
        .send()
        .await
        .unwrap();
    let callback = upstream.headers()["location"].to_str().unwrap().to_owned();
    let landed = browser.get(&callback).await;
    (landed.status, landed.location, landed.body)
}

fn provider_file(fake: &FakeProvider, extra: &str) -> String {
    format!(
        r#"
[[identity_providers]]
id = "fake"
kind = "oidc"
issuer = "{issuer}"
client_id = "{CLIENT_ID}"
client_secret = "a-client-secret-the-fake-does-not-check"
{extra}
"#,
        issuer = fake.issuer
    )
}

async fn only_a_genuine_id_token_signs_in(test: TestDatabase) {
    let fake = start_fake().await;
    let file = provider_file(&fake, "");
    let app = TestApp::spawn_with_file(&test, &MasterKey::generate(), Some(&file), &[], None).await;
    let admin = app.admin_key().await;
    for tamper in [
        Tamper::Nonce,
        Tamper::Issuer,
        Tamper::Audience,
        Tamper::Signature,
        Tamper::Expired,
        Tamper::IssParameter,
    ] {
        *fake.tamper.lock().unwrap() = tamper;
        let (status, body) = sign_in(&app).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{tamper:?}: {body}");
        assert!(body.contains("did not work"), "{tamper:?}: {body}");
        let (_, users) = app.get_auth("/v1/admin/users?email=fay@example.com", &admin).await;
        assert_eq!(users["data"], json!([]), "{tamper:?} made an account");
    }
    // The same provider, answering honestly: signed in.
    *fake.tamper.lock().unwrap() = Tamper::Nothing;
    let (status, body) = sign_in(&app).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let (_, users) = app.get_auth("/v1/admin/users?email=fay@example.com", &admin).await;
    assert_eq!(users["data"].as_array().unwrap().len(), 1, "{users}");
    // The provider is not set to keep tokens: none kept, none to read.
    let kept: Option<Vec<u8>> = gatehouse_store::with_pool!(&app.database, pool => {
        sqlx::query_scalar("SELECT tokens_ciphertext FROM user_identities")
            .fetch_one(pool)
            .await
            .unwrap()
    });
    assert_eq!(kept, None);
    let user_id = users["data"][0]["id"].as_str().unwrap();
    let (status, _) =
        app.get_auth(&format!("/v1/admin/users/{user_id}/identities/fake/token"), &admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    app.stop().await;
}

/// An account with a second factor: a provider sign-in is a first factor (on to `/mfa`), unless
/// the provider is trusted for its `amr` and the upstream asserted a second factor.
async fn the_second_factor_follows_unless_the_upstream_is_trusted_for_it(test: TestDatabase) {
    let fake = start_fake().await;
    let start = support::mfa::wall_clock() - support::mfa::wall_clock() % 30 + 30;
    let clock = Arc::new(gatehouse_domain::ManualClock::new(start));
    // The same upstream twice: trusted for its amr, and not.
    let file = format!(
        "{}{}",
        provider_file(&fake, "trust_email_verified = true"),
        provider_file(&fake, "trust_email_verified = true\ntrust_amr = true")
            .replace("id = \"fake\"", "id = \"trusted\"")
    );
    let app = TestApp::spawn_with_file(
        &test,
        &MasterKey::generate(),
        Some(&file),
        &[],
        Some(clock.clone()),
    )
    .await;
    let tokens = app.sign_up("fay@example.com", support::STRONG_PASSWORD).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let (status, enrolment) = app.post("/v1/me/mfa/totp", Some(&access), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{enrolment}");
    use gatehouse_domain::Clock as _;
    let code = support::mfa::totp(enrolment["secret"].as_str().unwrap(), clock.now() as u64);
    let (status, confirmed) =
        app.post("/v1/me/mfa/totp/confirm", Some(&access), json!({ "code": code })).await;
    assert_eq!(status, StatusCode::OK, "{confirmed}");

    for (provider, amr, second_step) in [
        ("fake", vec!["pwd"], true),
        ("fake", vec!["pwd", "mfa"], true),
        ("trusted", vec!["pwd"], true),
        ("trusted", vec!["pwd", "mfa"], false),
    ] {
        *fake.amr.lock().unwrap() = amr.clone();
        let (status, location, body) = sign_in_to(&app, provider).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{provider} {amr:?}: {body}");
        let location = location.unwrap();
        if second_step {
            assert!(location.starts_with("/mfa?"), "{provider} {amr:?}: {location}");
        } else {
            assert_eq!(location, "/account", "{provider} {amr:?}");
        }
    }
    // The trusted upstream's second factor shows in the session's amr.
    let admin = app.admin_key().await;
    let (_, log) = app.get_auth("/v1/admin/audit-log?action=session.created", &admin).await;
    assert_eq!(log["data"][0]["metadata"]["amr"], json!(["fed", "mfa"]), "{log}");
    app.stop().await;
}

/// `/v1/admin/identity-providers`: the file's provider is read-only there; an added one must
/// pass the SSRF rule, is usable at once, its secret never answered and sealed at rest; it can
/// be changed and removed.
async fn providers_added_through_the_admin_api_work_at_once(test: TestDatabase) {
    let fake = start_fake().await;
    let key = MasterKey::generate();
    let file = provider_file(&fake, "");
    let secret = "the-dynamic-provider-secret-0123456789";
    let request = json!({
        "id": "dyn", "kind": "oidc", "name": "Dynamic", "issuer": fake.issuer,
        "client_id": CLIENT_ID, "client_secret": secret, "trust_email_verified": true,
    });
    {
        let app = TestApp::spawn_with_file(&test, &key, Some(&file), &[], None).await;
        let admin = app.admin_key().await;
        let (status, list) = app.get_auth("/v1/admin/identity-providers", &admin).await;
        assert_eq!(status, StatusCode::OK, "{list}");
        assert_eq!(list["data"].as_array().unwrap().len(), 1);
        assert_eq!(list["data"][0]["id"], "fake");
        assert_eq!(list["data"][0]["read_only"], true);
        assert_eq!(list["data"][0]["has_client_secret"], true);
        assert!(!list.to_string().contains("does-not-check"), "a secret was answered: {list}");
        for method in [reqwest::Method::PATCH, reqwest::Method::DELETE] {
            let (status, problem) = app
                .send(
                    method.clone(),
                    "/v1/admin/identity-providers/fake",
                    Some(&admin),
                    Some(json!({ "name": "x" })),
                )
                .await;
            assert_eq!(status, StatusCode::CONFLICT, "{method}: {problem}");
            assert_eq!(problem["code"], "identity_provider_read_only");
        }
        // The id is taken by the file's provider.
        let mut taken = request.clone();
        taken["id"] = json!("fake");
        let (status, _) = app.post("/v1/admin/identity-providers", Some(&admin), taken).await;
        assert_eq!(status, StatusCode::CONFLICT);
        // A loopback issuer, private targets not allowed: refused.
        let (status, problem) =
            app.post("/v1/admin/identity-providers", Some(&admin), request.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        assert_eq!(problem["errors"][0]["field"], "issuer");
        assert_eq!(problem["errors"][0]["code"], "refused_target");
        app.stop().await;
    }
    // The same server restarted with private targets allowed (as the tests' upstream is local).
    let app = TestApp::spawn_with_file(
        &test,
        &key,
        Some(&file),
        &[("GATEHOUSE_OUTBOUND_ALLOW_PRIVATE_TARGETS", "true")],
        None,
    )
    .await;
    let admin = app.admin_key().await;
    let (status, created) =
        app.post("/v1/admin/identity-providers", Some(&admin), request.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["read_only"], false);
    assert_eq!(created["has_client_secret"], true);
    assert!(!created.to_string().contains(secret), "the secret was answered: {created}");
    let stored: Vec<u8> = gatehouse_store::with_pool!(&app.database, pool => {
        sqlx::query_scalar("SELECT client_secret FROM identity_providers WHERE id = 'dyn'")
            .fetch_one(pool)
            .await
            .unwrap()
    });
    assert!(!stored.windows(secret.len()).any(|window| window == secret.as_bytes()));
    let (_, providers) = app.get_json("/v1/auth/providers").await;
    assert_eq!(providers["data"][1], json!({ "id": "dyn", "name": "Dynamic", "kind": "oidc" }));

    // Usable at once, no restart.
    let (status, location, body) = sign_in_to(&app, "dyn").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    assert_eq!(location.as_deref(), Some("/account"));

    let (status, changed) = app
        .send(
            reqwest::Method::PATCH,
            "/v1/admin/identity-providers/dyn",
            Some(&admin),
            Some(json!({ "name": "Renamed" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["name"], "Renamed");
    assert_eq!(changed["has_client_secret"], true, "the secret stays");
    let (status, _) = app
        .send(reqwest::Method::DELETE, "/v1/admin/identity-providers/dyn", Some(&admin), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, providers) = app.get_json("/v1/auth/providers").await;
    assert_eq!(providers["data"].as_array().unwrap().len(), 1);
    let mut browser = Browser::new(&app.base_url);
    assert_eq!(browser.get("/sso/dyn").await.status, StatusCode::NOT_FOUND);
    for action in
        ["identity_provider.created", "identity_provider.updated", "identity_provider.deleted"]
    {
        let (_, log) = app.get_auth(&format!("/v1/admin/audit-log?action={action}"), &admin).await;
        assert_eq!(log["data"][0]["target_id"], "dyn", "{action}: {log}");
    }
    app.stop().await;
}

/// Microsoft's multi-tenant endpoint: the discovery document's issuer is a template; a token is
/// accepted only when its `iss` is that template filled with the tenant its `tid` names.
async fn a_multi_tenant_microsoft_issuer_is_checked_against_the_tokens_tenant(test: TestDatabase) {
    let fake = start_fake().await;
    let file = format!(
        r#"
[[identity_providers]]
id = "ms"
kind = "microsoft"
name = "Microsoft"
issuer = "{issuer}/common/v2.0"
client_id = "{CLIENT_ID}"
client_secret = "a-client-secret-the-fake-does-not-check"
"#,
        issuer = fake.issuer
    );
    let app = TestApp::spawn_with_file(&test, &MasterKey::generate(), Some(&file), &[], None).await;
    let admin = app.admin_key().await;
    let tenant = "9188040d-6c67-4c5b-b112-36a304b66dad";
    for (iss_tenant, tid) in [
        // Another tenant's issuer than the token's tenant.
        ("72f988bf-86f1-41af-91ab-2d7cd011db47", tenant),
        // No tenant claim at all.
        (tenant, ""),
    ] {
        *fake.tenant.lock().unwrap() = Some((iss_tenant.to_owned(), tid.to_owned()));
        let (status, _, body) = sign_in_to(&app, "ms").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{iss_tenant} / {tid:?}: {body}");
    }
    let (_, users) = app.get_auth("/v1/admin/users?email=fay@example.com", &admin).await;
    assert_eq!(users["data"], json!([]));
    // The token's own tenant: signed in (the preset trusts Microsoft's verified addresses).
    *fake.tenant.lock().unwrap() = Some((tenant.to_owned(), tenant.to_owned()));
    let (status, location, body) = sign_in_to(&app, "ms").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    assert_eq!(location.as_deref(), Some("/account"));
    let (_, users) = app.get_auth("/v1/admin/users?email=fay@example.com", &admin).await;
    assert_eq!(users["data"][0]["email_verified"], true, "{users}");
    app.stop().await;
}

/// A step-up for an account that signs in only through its provider: `/sso/{id}?reauth=1`
/// asks the upstream for a fresh sign-in (`prompt=login`, `max_age=0`) and renews the browser
/// session's authentication — only for an identity of that account, signed in again after the
/// step-up began.
async fn a_step_up_through_the_provider_renews_the_sessions_authentication(test: TestDatabase) {
    use gatehouse_domain::Clock as _;
    use gatehouse_domain::sessions::store::SessionStore as _;
    let fake = start_fake().await;
    let clock = Arc::new(gatehouse_domain::ManualClock::new(now()));
    let file = provider_file(&fake, "trust_email_verified = true");
    let app = TestApp::spawn_with_file(
        &test,
        &MasterKey::generate(),
        Some(&file),
        &[],
        Some(clock.clone()),
    )
    .await;
    let admin = app.admin_key().await;
    let mut browser = Browser::new(&app.base_url);
    let (status, _, body) = through(&mut browser, "/sso/fake").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    assert!(!fake.last_authorize.lock().unwrap().contains_key("prompt"));
    let (_, log) = app.get_auth("/v1/admin/audit-log?action=session.created", &admin).await;
    let session_id = log["data"][0]["target_id"].as_str().unwrap().to_owned();
    let signed_in_at = clock.now();

    // An hour later: a step-up.
    clock.advance(3600);
    // (The server's clock is the test's; the upstream's auth_time follows it.)
    *fake.auth_time.lock().unwrap() = Some(clock.now());
    let (status, location, body) =
        through(&mut browser, "/sso/fake?reauth=1&return_to=/account").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    assert_eq!(location.as_deref(), Some("/account"));
    let authorize = fake.last_authorize.lock().unwrap().clone();
    assert_eq!(authorize["prompt"], "login");
    assert_eq!(authorize["max_age"], "0");
    let session = app.database.session(&session_id).await.unwrap().unwrap();
    assert_eq!(session.auth_time, Some(clock.now()), "renewed (signed in at {signed_in_at})");
    assert!(session.amr.as_deref().unwrap().split(' ').any(|value| value == "fed"));
    let (_, log) = app.get_auth("/v1/admin/audit-log?action=user.reauthenticated", &admin).await;
    assert_eq!(log["data"][0]["metadata"]["method"], "sso", "{log}");

    // The upstream says it did not sign the person in again: refused, nothing renewed.
    clock.advance(3600);
    *fake.auth_time.lock().unwrap() = Some(clock.now() - 7200);
    let (status, _, body) = through(&mut browser, "/sso/fake?reauth=1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // Someone else's identity at the provider: refused.
    *fake.auth_time.lock().unwrap() = Some(clock.now());
    *fake.subject.lock().unwrap() = "fake-subject-2".into();
    let (status, _, body) = through(&mut browser, "/sso/fake?reauth=1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let session = app.database.session(&session_id).await.unwrap().unwrap();
    assert_eq!(session.auth_time, Some(clock.now() - 3600), "not renewed by a refused step-up");
    // Without a signed-in browser, a step-up starts at the login page.
    let mut stranger = Browser::new(&app.base_url);
    let started = stranger.get("/sso/fake?reauth=1").await;
    assert!(started.location.as_deref().unwrap().starts_with("/login?"), "{:?}", started.location);
    app.stop().await;
}

/// Linking a provider adds a way into the account and unlinking removes one: both need a
/// sign-in within the step-up window, as adding or removing a passkey does.
async fn linking_and_unlinking_need_a_recent_sign_in(test: TestDatabase) {
    use support::oauth_browser::Page;
    let fake = start_fake().await;
    let clock = Arc::new(gatehouse_domain::ManualClock::new(now()));
    let file = provider_file(&fake, "");
    let app = TestApp::spawn_with_file(
        &test,
        &MasterKey::generate(),
        Some(&file),
        &[],
        Some(clock.clone()),
    )
    .await;
    let tokens = app.sign_up("gil@example.com", support::STRONG_PASSWORD).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let mut browser = Browser::new(&app.base_url);
    let login: Page = browser.get("/login").await;
    browser.sign_in(&login, "gil@example.com", support::STRONG_PASSWORD).await;
    // A recent sign-in: linking goes through.
    let (status, location, body) = through(&mut browser, "/sso/fake?link=1").await;
    assert_eq!((status, location.as_deref()), (StatusCode::SEE_OTHER, Some("/account")), "{body}");
    let (_, identities) = app.get_auth("/v1/me/identities", &access).await;
    let identity_id = identities["data"][0]["id"].as_str().unwrap().to_owned();

    // Ten minutes later (past the five-minute step-up window, the access token still valid):
    // linking is sent to sign in again first, unlinking is refused.
    clock.advance(600);
    let refused = browser.get("/sso/fake?link=1").await;
    let location = refused.location.unwrap();
    assert!(location.starts_with("/login?") && location.contains("prompt=login"), "{location}");
    let (status, problem) = app
        .send(
            reqwest::Method::DELETE,
            &format!("/v1/me/identities/{identity_id}"),
            Some(&access),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    assert_eq!(problem["code"], "reauthentication_required");
    // After a step-up, unlinking goes through.
    let (status, renewed) = app
        .post(
            "/v1/auth/reauthenticate",
            Some(&access),
            json!({ "password": support::STRONG_PASSWORD }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{renewed}");
    let fresh = renewed["access_token"].as_str().unwrap();
    let (status, _) = app
        .send(
            reqwest::Method::DELETE,
            &format!("/v1/me/identities/{identity_id}"),
            Some(fresh),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    app.stop().await;
}
