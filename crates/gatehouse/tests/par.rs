//! Pushed authorization requests (RFC 9126): `/oauth2/par`, the `request_uri` at the
//! authorization endpoint (single use, short-lived, bound to its client, its parameters the
//! only ones that count), and requiring them per client or for every client. Both backends.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;

use gatehouse_crypto::MasterKey;
use gatehouse_domain::ManualClock;
use gatehouse_domain::oauth::clients::NewClient;
use gatehouse_store::backend_tests;
use gatehouse_store::testing::TestDatabase;
use reqwest::StatusCode;
use support::oauth_browser::{Browser, Page, query};
use support::{STRONG_PASSWORD, TestApp};

backend_tests!(
    a_pushed_request_runs_one_authorization,
    pushes_are_validated_and_bound_to_their_client,
    a_client_or_the_server_can_require_pushed_requests,
);

const REDIRECT: &str = "https://app.example.com/callback";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

fn web_app() -> NewClient {
    NewClient {
        name: "Pushing App".into(),
        redirect_uris: vec![REDIRECT.into()],
        ..NewClient::default()
    }
}

/// Pushes an authorization request (PKCE S256, `state=xyz`) plus `extra`; answers the status
/// and body.
async fn push(
    app: &TestApp,
    client: (&str, &str),
    extra: &[(&str, &str)],
) -> (StatusCode, serde_json::Value) {
    let challenge = gatehouse_crypto::pkce_s256(VERIFIER);
    let mut form = vec![
        ("response_type", "code"),
        ("redirect_uri", REDIRECT),
        ("scope", "openid"),
        ("state", "xyz"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    for (name, value) in extra {
        form.retain(|(known, _)| known != name);
        form.push((name, value));
    }
    app.post_form("/oauth2/par", Some(client), &form).await
}

fn authorize_with(client_id: &str, request_uri: &str, extra: &[(&str, &str)]) -> String {
    let mut url = reqwest::Url::parse("http://gatehouse.invalid/oauth2/authorize").unwrap();
    url.query_pairs_mut()
        .append_pair("client_id", client_id)
        .append_pair("request_uri", request_uri);
    for (name, value) in extra {
        url.query_pairs_mut().append_pair(name, value);
    }
    format!("/oauth2/authorize?{}", url.query().unwrap())
}

/// An error page: a 400 with no redirect anywhere.
fn assert_error_page(page: &Page, words: &str) {
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);
    assert!(page.location.is_none(), "never redirected: {:?}", page.location);
    assert!(page.body.contains(words), "{words:?} in:\n{}", page.body);
}

async fn a_pushed_request_runs_one_authorization(test: TestDatabase) {
    let app = TestApp::spawn(&test).await;
    app.sign_up("par@example.com", STRONG_PASSWORD).await;
    let (client_id, secret) = app.client(web_app()).await;
    let secret = secret.unwrap();

    let (_, discovery) = app.get_json("/.well-known/openid-configuration").await;
    assert_eq!(discovery["pushed_authorization_request_endpoint"], app.url("/oauth2/par"));
    assert_eq!(discovery["require_pushed_authorization_requests"], false);

    let (status, pushed) = push(&app, (&client_id, &secret), &[]).await;
    assert_eq!(status, StatusCode::CREATED, "{pushed}");
    assert_eq!(pushed["expires_in"], 60);
    let request_uri = pushed["request_uri"].as_str().unwrap().to_owned();
    assert!(request_uri.starts_with(PREFIX), "{request_uri}");

    // The browser carries only client_id and request_uri; what it adds beside them (another
    // redirect URI, another state) does not count: the pushed request's parameters do.
    let mut browser = Browser::new(&app.base_url);
    let url = authorize_with(
        &client_id,
        &request_uri,
        &[("redirect_uri", "https://evil.example/cb"), ("state", "forged")],
    );
    let first = browser.get(&url).await;
    let login = browser.follow(first).await;
    let consent = browser.sign_in(&login, "par@example.com", STRONG_PASSWORD).await;
    assert!(consent.body.contains("name=\"decision\""), "consent is asked:\n{}", consent.body);
    let done = browser.consent(&consent, "allow").await;
    let location = done.location.clone().unwrap();
    assert!(location.starts_with(REDIRECT), "{location}");
    let callback = query(&location);
    assert_eq!(callback["state"], "xyz");

    // The code it issued is bound to the pushed PKCE challenge.
    let (status, tokens) = app
        .post_form(
            "/oauth2/token",
            Some((&client_id, &secret)),
            &[
                ("grant_type", "authorization_code"),
                ("code", &callback["code"]),
                ("redirect_uri", REDIRECT),
                ("code_verifier", VERIFIER),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert!(tokens["id_token"].is_string());

    // Single use: the same request_uri starts no second authorization.
    let again = browser.get(&authorize_with(&client_id, &request_uri, &[])).await;
    assert_error_page(&again, "request_uri");

    // prompt=login in a pushed request: one fresh sign-in, then back to the client (not a
    // sign-in forever), consent already given.
    let (_, pushed) = push(&app, (&client_id, &secret), &[("prompt", "login")]).await;
    let request_uri = pushed["request_uri"].as_str().unwrap();
    let first = browser.get(&authorize_with(&client_id, request_uri, &[])).await;
    let login = browser.follow(first).await;
    assert!(login.body.contains("name=\"password\""), "a fresh sign-in:\n{}", login.body);
    let back = browser.sign_in(&login, "par@example.com", STRONG_PASSWORD).await;
    let location = back.location.clone().unwrap();
    assert!(location.starts_with(REDIRECT), "{location}");
    assert!(query(&location).contains_key("code"));
    app.stop().await;
}

async fn pushes_are_validated_and_bound_to_their_client(test: TestDatabase) {
    let wall = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let clock = Arc::new(ManualClock::new(wall.as_secs() as i64));
    let app =
        TestApp::spawn_with_clock(&test, &MasterKey::generate(), &[], Some(clock.clone())).await;
    app.sign_up("bound@example.com", STRONG_PASSWORD).await;
    let (client_id, secret) = app.client(web_app()).await;
    let secret = secret.unwrap();
    let (other_id, other_secret) =
        app.client(NewClient { name: "Other".into(), ..web_app() }).await;
    let other_secret = other_secret.unwrap();

    // Client authentication as at the token endpoint.
    let (status, answer) = push(&app, (&client_id, "wrong-secret"), &[]).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    // Validated as the authorization endpoint would, answered in JSON (never redirected).
    let cases: [(&[(&str, &str)], &str); 5] = [
        (&[("redirect_uri", "https://evil.example/cb")], "invalid_request"),
        (&[("scope", "openid admin:everything")], "invalid_scope"),
        (&[("code_challenge_method", "plain")], "invalid_request"),
        (&[("request_uri", "urn:ietf:params:oauth:request_uri:abc")], "invalid_request"),
        (&[("client_id", other_id.as_str())], "invalid_request"),
    ];
    for (extra, error) in cases {
        let (status, answer) = push(&app, (&client_id, &secret), extra).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some(error)),
            "{extra:?}: {answer}"
        );
    }

    let (_, pushed) = push(&app, (&client_id, &secret), &[]).await;
    let request_uri = pushed["request_uri"].as_str().unwrap().to_owned();
    let mut browser = Browser::new(&app.base_url);
    // Bound to the client that pushed it: another client's id beside it is refused.
    let page = browser.get(&authorize_with(&other_id, &request_uri, &[])).await;
    assert_error_page(&page, "request_uri");
    // An unknown one.
    let page = browser.get(&authorize_with(&client_id, &format!("{PREFIX}not-pushed"), &[])).await;
    assert_error_page(&page, "request_uri");
    // A request object by reference is not supported: said at the client's redirect URI.
    let page =
        browser.get(&authorize_with(&client_id, "https://app.example.com/request.jwt", &[])).await;
    let answer = query(page.location.as_deref().unwrap());
    assert_eq!(answer["error"], "request_uri_not_supported");
    // Short-lived: 60 seconds to reach the authorization endpoint.
    clock.advance(61);
    let page = browser.get(&authorize_with(&client_id, &request_uri, &[])).await;
    assert_error_page(&page, "request_uri");
    // Once read by the authorization endpoint, it lives as long as a sign-in may take.
    let (_, pushed) = push(&app, (&other_id, &other_secret), &[]).await;
    let request_uri = pushed["request_uri"].as_str().unwrap().to_owned();
    let first = browser.get(&authorize_with(&other_id, &request_uri, &[])).await;
    let login = browser.follow(first).await;
    clock.advance(300);
    let consent = browser.sign_in(&login, "bound@example.com", STRONG_PASSWORD).await;
    let done = browser.consent(&consent, "deny").await;
    let location = done.location.clone().unwrap();
    assert_eq!(query(&location)["error"], "access_denied");
    // A denial ends the authorization too: the request_uri is spent.
    let page = browser.get(&authorize_with(&other_id, &request_uri, &[])).await;
    assert_error_page(&page, "request_uri");
    app.stop().await;
}

async fn a_client_or_the_server_can_require_pushed_requests(test: TestDatabase) {
    let master = MasterKey::generate();
    let app = TestApp::spawn_with_key(&test, &master).await;
    let (strict_id, strict_secret) =
        app.client(NewClient { require_pushed_authorization_requests: true, ..web_app() }).await;
    let (relaxed_id, _) = app.client(NewClient { name: "Relaxed".into(), ..web_app() }).await;
    let plain = |client_id: &str| {
        let challenge = gatehouse_crypto::pkce_s256(VERIFIER);
        let mut url = reqwest::Url::parse("http://gatehouse.invalid/oauth2/authorize").unwrap();
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", REDIRECT)
            .append_pair("scope", "openid")
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        format!("/oauth2/authorize?{}", url.query().unwrap())
    };
    let mut browser = Browser::new(&app.base_url);
    // The strict client's plain request is refused on a page; its pushed one goes on to sign-in.
    let page = browser.get(&plain(&strict_id)).await;
    assert_error_page(&page, "push");
    let (status, pushed) = push(&app, (&strict_id, &strict_secret.unwrap()), &[]).await;
    assert_eq!(status, StatusCode::CREATED, "{pushed}");
    let page = browser
        .get(&authorize_with(&strict_id, pushed["request_uri"].as_str().unwrap(), &[]))
        .await;
    assert!(page.location.as_deref().unwrap().starts_with("/login?"), "{:?}", page.location);
    // Other clients are not concerned.
    let page = browser.get(&plain(&relaxed_id)).await;
    assert!(page.location.as_deref().unwrap().starts_with("/login?"), "{:?}", page.location);
    app.stop().await;

    // Required for every client: discovery says so, and no plain request is accepted.
    let app = TestApp::spawn_with(
        &test,
        &master,
        &[("GATEHOUSE_OAUTH_REQUIRE_PUSHED_AUTHORIZATION_REQUESTS", "true")],
    )
    .await;
    let (_, discovery) = app.get_json("/.well-known/openid-configuration").await;
    assert_eq!(discovery["require_pushed_authorization_requests"], true);
    let mut browser = Browser::new(&app.base_url);
    let page = browser.get(&plain(&relaxed_id)).await;
    assert_error_page(&page, "push");
    app.stop().await;
}
