//! OpenID Connect Back-Channel Logout 1.0 on both backends: a relying party that registered a
//! `backchannel_logout_uri` receives a logout token (verified here with `jsonwebtoken` against
//! the published JWKS) when a session it holds ends — by RP-initiated logout, by the browser
//! session it came from ending (single logout), by an admin — once each, with the ID token's
//! `sid`; a client without one keeps its session; registration validates the URI (admin API,
//! dynamic registration) and delivery follows the outbound SSRF rule.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gatehouse_crypto::jsonwebtoken;
use gatehouse_domain::oauth::clients::NewClient;
use gatehouse_store::backend_tests;
use gatehouse_store::testing::TestDatabase;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::oauth_browser::{Browser, query};
use support::{STRONG_PASSWORD, TestApp};

backend_tests!(
    every_relying_party_of_an_ended_session_is_told_once,
    an_admin_ending_sessions_tells_the_relying_party,
    the_logout_uri_is_validated_and_delivery_follows_the_ssrf_rule,
);

const REDIRECT: &str = "https://app.example.com/callback";
const SIGNED_OUT: &str = "https://app.example.com/signed-out";
const LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// One logout request a relying party got: the path it came to and its form.
#[derive(Clone, Debug)]
struct Received {
    path: String,
    content_type: String,
    form: BTreeMap<String, String>,
}

/// Local relying parties' back-channel endpoints (`/<name>`), recording every request.
#[derive(Clone)]
struct Receiver {
    base: String,
    received: Arc<Mutex<Vec<Received>>>,
    arrived: Arc<tokio::sync::Notify>,
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let receiver =
            Receiver { base, received: Arc::default(), arrived: Arc::new(Default::default()) };
        let state = receiver.clone();
        let app = axum::Router::new().route(
            "/{name}",
            axum::routing::post(
                move |axum::extract::Path(name): axum::extract::Path<String>,
                      headers: axum::http::HeaderMap,
                      body: String| {
                    let state = state.clone();
                    async move {
                        let form = url::form_urlencoded::parse(body.as_bytes())
                            .map(|(key, value)| (key.into_owned(), value.into_owned()))
                            .collect();
                        let content_type = headers
                            .get("content-type")
                            .and_then(|value| value.to_str().ok())
                            .unwrap_or_default()
                            .to_owned();
                        state.received.lock().unwrap().push(Received {
                            path: name,
                            content_type,
                            form,
                        });
                        state.arrived.notify_waiters();
                        axum::http::StatusCode::OK
                    }
                },
            ),
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        receiver
    }

    fn uri(&self, name: &str) -> String {
        format!("{}/{name}", self.base)
    }

    fn all(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Every request so far, once there are `count` (within 20 s).
    async fn wait_for(&self, count: usize) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let arrived = self.arrived.notified();
            let all = self.all();
            if all.len() >= count {
                return all;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                panic!("timed out waiting for {count} logout requests; got {:?}", self.all());
            }
        }
    }
}

const FAST: &[(&str, &str)] = &[
    ("GATEHOUSE_OUTBOUND_ALLOW_PRIVATE_TARGETS", "true"),
    ("GATEHOUSE_OUTBOX_POLL_INTERVAL_MS", "50"),
];

fn web_app(name: &str, logout_uri: Option<String>) -> NewClient {
    NewClient {
        name: name.into(),
        redirect_uris: vec![REDIRECT.into()],
        post_logout_redirect_uris: vec![SIGNED_OUT.into()],
        skip_consent: true,
        backchannel_logout_uri: logout_uri,
        ..NewClient::default()
    }
}

/// Runs the code flow for `client_id` in `browser` (signing in when asked); answers the token
/// response.
async fn tokens_for(
    app: &TestApp,
    browser: &mut Browser,
    (client_id, secret): (&str, &str),
    email: &str,
) -> Value {
    let mut url = reqwest::Url::parse(&app.url("/oauth2/authorize")).unwrap();
    url.query_pairs_mut().extend_pairs([
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", REDIRECT),
        ("scope", "openid offline_access"),
        ("state", "xyz"),
    ]);
    let first = browser.get(url.as_str()).await;
    let mut page = browser.follow(first).await;
    if page.body.contains("name=\"password\"") {
        page = browser.sign_in(&page, email, STRONG_PASSWORD).await;
    }
    let location = page.location.unwrap_or_else(|| panic!("no redirect:\n{}", page.body));
    let code = query(&location)["code"].clone();
    let (status, tokens) = app
        .post_form(
            "/oauth2/token",
            Some((client_id, secret)),
            &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", REDIRECT)],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    tokens
}

fn claims_of(token: &str) -> Value {
    jsonwebtoken::dangerous::insecure_decode_claims(token).unwrap()
}

/// Verifies a logout token as a relying party must (§2.6), with `jsonwebtoken` and the JWKS the
/// server publishes; answers its claims.
async fn verified_logout_token(app: &TestApp, token: &str, client_id: &str) -> Value {
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("logout+jwt"));
    let (_, jwks) = app.get_json("/.well-known/jwks.json").await;
    let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks).unwrap();
    let jwk = jwks.find(header.kid.as_deref().unwrap()).expect("the token's key is published");
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_audience(&[client_id]);
    let (_, discovery) = app.get_json("/.well-known/openid-configuration").await;
    validation.set_issuer(&[discovery["issuer"].as_str().unwrap()]);
    validation.set_required_spec_claims(&["iss", "aud", "exp", "iat"]);
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let claims = jsonwebtoken::decode::<Value>(token, &key, &validation)
        .unwrap_or_else(|error| panic!("the logout token does not verify: {error}"))
        .claims;
    assert!(claims["events"][LOGOUT_EVENT].is_object(), "{claims}");
    assert!(claims.get("nonce").is_none(), "a logout token never carries a nonce: {claims}");
    assert!(claims["jti"].as_str().is_some_and(|jti| !jti.is_empty()), "{claims}");
    let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert!((1..=120).contains(&lifetime), "{claims}");
    claims
}

fn logout_tokens_for<'a>(received: &'a [Received], path: &str) -> Vec<&'a Received> {
    received.iter().filter(|request| request.path == path).collect()
}

async fn refresh(app: &TestApp, (client_id, secret): (&str, &str), tokens: &Value) -> StatusCode {
    app.post_form(
        "/oauth2/token",
        Some((client_id, secret)),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ],
    )
    .await
    .0
}

async fn every_relying_party_of_an_ended_session_is_told_once(test: TestDatabase) {
    let receiver = Receiver::start().await;
    let app = TestApp::spawn_with(&test, &gatehouse_crypto::MasterKey::generate(), FAST).await;
    let (_, discovery) = app.get_json("/.well-known/openid-configuration").await;
    assert_eq!(discovery["backchannel_logout_supported"], true);
    assert_eq!(discovery["backchannel_logout_session_supported"], true);
    let user = app.sign_up("single@example.com", STRONG_PASSWORD).await;
    let user_id = user["user"]["id"].as_str().unwrap().to_owned();
    let (mail_id, mail_secret) = app.client(web_app("Mail", Some(receiver.uri("mail")))).await;
    let (calendar_id, calendar_secret) =
        app.client(web_app("Calendar", Some(receiver.uri("calendar")))).await;
    let (notes_id, notes_secret) = app.client(web_app("Notes", None)).await;
    let mail = (mail_id.as_str(), mail_secret.as_deref().unwrap());
    let calendar = (calendar_id.as_str(), calendar_secret.as_deref().unwrap());
    let notes = (notes_id.as_str(), notes_secret.as_deref().unwrap());

    // One browser session, three relying parties signed in through it.
    let mut browser = Browser::new(&app.base_url);
    let mail_tokens = tokens_for(&app, &mut browser, mail, "single@example.com").await;
    let calendar_tokens = tokens_for(&app, &mut browser, calendar, "single@example.com").await;
    let notes_tokens = tokens_for(&app, &mut browser, notes, "single@example.com").await;
    let mail_sid = claims_of(mail_tokens["id_token"].as_str().unwrap())["sid"].clone();
    let calendar_sid = claims_of(calendar_tokens["id_token"].as_str().unwrap())["sid"].clone();
    assert!(mail_sid.is_string() && calendar_sid.is_string() && mail_sid != calendar_sid);
    assert!(receiver.all().is_empty(), "nothing ended yet");

    // Mail logs the user out (RP-initiated, its ID token issued in this browser session).
    let mut url = reqwest::Url::parse(&app.url("/oauth2/end_session")).unwrap();
    url.query_pairs_mut()
        .append_pair("id_token_hint", mail_tokens["id_token"].as_str().unwrap())
        .append_pair("post_logout_redirect_uri", SIGNED_OUT);
    let done = browser.get(url.as_str()).await;
    assert_eq!(done.location.as_deref(), Some(SIGNED_OUT));

    // Both back-channel relying parties are told, each about its own session.
    let received = receiver.wait_for(2).await;
    for (path, client_id, sid) in
        [("mail", mail_id.as_str(), &mail_sid), ("calendar", calendar_id.as_str(), &calendar_sid)]
    {
        let requests = logout_tokens_for(&received, path);
        assert_eq!(requests.len(), 1, "{path}: {received:?}");
        assert_eq!(requests[0].content_type, "application/x-www-form-urlencoded");
        let token = &requests[0].form["logout_token"];
        let claims = verified_logout_token(&app, token, client_id).await;
        assert_eq!(claims["sid"], *sid, "{path}: the sid of its ID token");
        assert_eq!(claims["sub"], user_id.as_str());
    }
    // Their sessions ended; the relying party without a logout URI keeps its own.
    assert_eq!(refresh(&app, mail, &mail_tokens).await, StatusCode::BAD_REQUEST);
    assert_eq!(refresh(&app, calendar, &calendar_tokens).await, StatusCode::BAD_REQUEST);
    assert_eq!(refresh(&app, notes, &notes_tokens).await, StatusCode::OK);

    // A later logout is told too, and the earlier ones are not told again.
    let mut laptop = Browser::new(&app.base_url);
    let later = tokens_for(&app, &mut laptop, mail, "single@example.com").await;
    let later_sid = claims_of(later["id_token"].as_str().unwrap())["sid"].clone();
    let admin = app.admin_key().await;
    let (status, _) = app
        .send(Method::DELETE, &format!("/v1/admin/users/{user_id}/sessions"), Some(&admin), None)
        .await;
    assert!(status.is_success(), "{status}");
    let received = receiver.wait_for(3).await;
    let mail_logouts = logout_tokens_for(&received, "mail");
    assert_eq!(mail_logouts.len(), 2, "{received:?}");
    let sids: Vec<Value> = mail_logouts
        .iter()
        .map(|request| claims_of(&request.form["logout_token"])["sid"].clone())
        .collect();
    assert_eq!(sids, vec![mail_sid, later_sid]);
    let (_, deliveries) = app.get_auth("/v1/admin/deliveries?limit=100", &admin).await;
    let logout_rows: Vec<&Value> = deliveries["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|row| row["channel"] == "backchannel_logout")
        .collect();
    assert_eq!(logout_rows.len(), 3, "one row per ended session: {deliveries}");
    app.stop().await;
}

async fn an_admin_ending_sessions_tells_the_relying_party(test: TestDatabase) {
    let receiver = Receiver::start().await;
    let app = TestApp::spawn_with(&test, &gatehouse_crypto::MasterKey::generate(), FAST).await;
    let user = app.sign_up("suspended@example.com", STRONG_PASSWORD).await;
    let user_id = user["user"]["id"].as_str().unwrap().to_owned();
    let (client_id, secret) = app.client(web_app("Portal", Some(receiver.uri("portal")))).await;
    let client = (client_id.as_str(), secret.as_deref().unwrap());
    let mut browser = Browser::new(&app.base_url);
    let tokens = tokens_for(&app, &mut browser, client, "suspended@example.com").await;
    let sid = claims_of(tokens["id_token"].as_str().unwrap())["sid"].clone();
    let admin = app.admin_key().await;
    let (status, body) = app
        .send(Method::POST, &format!("/v1/admin/users/{user_id}/suspend"), Some(&admin), None)
        .await;
    assert!(status.is_success(), "{status}: {body}");
    let received = receiver.wait_for(1).await;
    let claims = verified_logout_token(&app, &received[0].form["logout_token"], &client_id).await;
    assert_eq!((claims["sid"].clone(), claims["sub"].as_str()), (sid, Some(user_id.as_str())));
    assert_eq!(refresh(&app, client, &tokens).await, StatusCode::BAD_REQUEST);
    app.stop().await;
}

async fn the_logout_uri_is_validated_and_delivery_follows_the_ssrf_rule(test: TestDatabase) {
    let receiver = Receiver::start().await;
    // Private targets are refused here (the default): the receiver is on loopback.
    let app = TestApp::spawn_with(
        &test,
        &gatehouse_crypto::MasterKey::generate(),
        &[
            ("GATEHOUSE_OUTBOX_POLL_INTERVAL_MS", "50"),
            ("GATEHOUSE_OAUTH_DYNAMIC_REGISTRATION", "open"),
        ],
    )
    .await;
    let admin = app.admin_key().await;
    for uri in [
        "not a url",
        "ftp://rp.example.com/logout",
        "https://rp.example.com/logout#x",
        "javascript:alert(1)",
    ] {
        let (status, problem) = app
            .post(
                "/v1/admin/clients",
                Some(&admin),
                json!({ "name": "Bad", "redirect_uris": [REDIRECT], "backchannel_logout_uri": uri }),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{uri}: {problem}");
        assert_eq!(problem["errors"][0]["field"], "backchannel_logout_uri", "{problem}");
    }
    let (status, created) = app
        .post(
            "/v1/admin/clients",
            Some(&admin),
            json!({ "name": "Good", "redirect_uris": [REDIRECT],
                    "backchannel_logout_uri": "https://rp.example.com/logout",
                    "backchannel_logout_session_required": true }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["backchannel_logout_uri"], "https://rp.example.com/logout");
    assert_eq!(created["backchannel_logout_session_required"], true);
    let id = created["client_id"].as_str().unwrap();
    let (status, changed) = app
        .send(
            Method::PATCH,
            &format!("/v1/admin/clients/{id}"),
            Some(&admin),
            Some(json!({ "backchannel_logout_uri": "" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert!(changed["backchannel_logout_uri"].is_null(), "{changed}");

    // Dynamic registration takes and answers the metadata (and refuses a bad URI).
    let (status, registered) = app
        .post(
            "/oauth2/register",
            None,
            json!({ "redirect_uris": ["http://127.0.0.1:7000/cb"], "token_endpoint_auth_method": "none",
                    "backchannel_logout_uri": "https://agent.example.com/logout",
                    "backchannel_logout_session_required": true }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{registered}");
    assert_eq!(registered["backchannel_logout_uri"], "https://agent.example.com/logout");
    assert_eq!(registered["backchannel_logout_session_required"], true);
    let (status, refused) = app
        .post(
            "/oauth2/register",
            None,
            json!({ "redirect_uris": ["http://127.0.0.1:7000/cb"], "token_endpoint_auth_method": "none",
                    "backchannel_logout_uri": "file:///etc/passwd" }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert_eq!(refused["error"], "invalid_client_metadata", "{refused}");

    // A logout URI on a private address is never called.
    let user = app.sign_up("guarded@example.com", STRONG_PASSWORD).await;
    let user_id = user["user"]["id"].as_str().unwrap().to_owned();
    let (client_id, secret) = app.client(web_app("Internal", Some(receiver.uri("internal")))).await;
    let mut browser = Browser::new(&app.base_url);
    tokens_for(&app, &mut browser, (&client_id, secret.as_deref().unwrap()), "guarded@example.com")
        .await;
    let (status, _) = app
        .send(Method::DELETE, &format!("/v1/admin/users/{user_id}/sessions"), Some(&admin), None)
        .await;
    assert!(status.is_success());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let row = loop {
        let (_, deliveries) = app.get_auth("/v1/admin/deliveries?limit=100", &admin).await;
        let row = deliveries["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|row| {
                // An attempt counts once its outcome is written (a claimed row is
                // `sending`, with `attempts` already raised, until then).
                row["channel"] == "backchannel_logout"
                    && row["attempts"].as_i64() >= Some(1)
                    && row["status"] != "sending"
            })
            .cloned();
        if let Some(row) = row {
            break row;
        }
        assert!(tokio::time::Instant::now() < deadline, "no attempt: {deliveries}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let error = row["last_error"].as_str().unwrap_or_default();
    assert!(error.contains("refused"), "{row}");
    assert!(receiver.all().is_empty(), "the private address was called");
    app.stop().await;
}
