//! Rate limits everywhere a guess or a flood can come: the token endpoint per client and per
//! IP, introspection and revocation, device authorization, user-code entry on `/device`, and
//! the general `/v1` budgets (per principal when authenticated, per IP otherwise). Every 429
//! carries `Retry-After` and `RateLimit-*`. Client addresses are set through a trusted proxy's
//! `X-Forwarded-For`, so one test plays many addresses.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/pages_browser.rs"]
mod browser;
mod support;

use gatehouse_crypto::MasterKey;
use gatehouse_domain::oauth::clients::NewClient;
use gatehouse_store::testing::TestDatabase;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{OTHER_STRONG_PASSWORD, STRONG_PASSWORD, TestApp};

/// The app and its database (which must outlive it: dropping it deletes the file).
async fn spawn(limits: &[(&str, &str)]) -> (TestApp, TestDatabase) {
    let test = TestDatabase::sqlite().await.unwrap();
    let mut settings =
        vec![("GATEHOUSE_RATE_LIMIT_ENABLED", "true"), ("GATEHOUSE_TRUSTED_PROXIES", "127.0.0.1")];
    settings.extend_from_slice(limits);
    (TestApp::spawn_with(&test, &MasterKey::generate(), &settings).await, test)
}

/// The answer's status, headers and JSON body.
struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

async fn read_answer(response: reqwest::Response) -> Answer {
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    Answer { status, headers, body: serde_json::from_str(&text).unwrap_or(Value::Null) }
}

async fn token_request(app: &TestApp, ip: &str, client_id: &str, basic: bool) -> Answer {
    let mut form = vec![("grant_type", "client_credentials")];
    if !basic {
        form.push(("client_id", client_id));
    }
    let mut request =
        app.http.post(app.url("/oauth2/token")).header("x-forwarded-for", ip).form(&form);
    if basic {
        request = request.basic_auth(client_id, Some("not-the-secret"));
    }
    read_answer(request.send().await.unwrap()).await
}

/// A 429 with `Retry-After` (1..=60 s) and the three `RateLimit-*` headers, `remaining` 0.
fn assert_refused(answer: &Answer, limit: &str) {
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS, "{}", answer.body);
    let retry_after: u64 = answer.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(answer.headers["ratelimit-limit"], limit);
    assert_eq!(answer.headers["ratelimit-remaining"], "0");
    let reset: u64 = answer.headers["ratelimit-reset"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&reset), "{reset}");
}

/// The OAuth endpoints answer 429 in their RFCs' error format, not problem+json.
fn assert_oauth_refusal(answer: &Answer, limit: &str) {
    assert_refused(answer, limit);
    assert_eq!(answer.body["error"], "rate_limited", "{}", answer.body);
    assert!(answer.body["error_description"].is_string());
    assert_eq!(answer.headers["cache-control"], "no-store");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_endpoint_is_limited_per_client_and_per_ip() {
    let (app, _database) = spawn(&[("GATEHOUSE_RATE_LIMIT_TOKEN_PER_MINUTE", "3")]).await;
    // One client id from many addresses: its budget is spent whatever the address, whether
    // the id comes in the form or in the Basic header, and even though no such client exists.
    for (index, remaining) in [(1, "2"), (2, "1"), (3, "0")] {
        let answer = token_request(&app, &format!("203.0.113.{index}"), "app", false).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.body);
        assert_eq!(answer.body["error"], "invalid_client");
        assert_eq!(answer.headers["ratelimit-limit"], "3");
        assert_eq!(answer.headers["ratelimit-remaining"], remaining);
    }
    assert_oauth_refusal(&token_request(&app, "203.0.113.4", "app", false).await, "3");
    assert_oauth_refusal(&token_request(&app, "203.0.113.5", "app", true).await, "3");
    // Another client is not held back by it.
    let other = token_request(&app, "203.0.113.6", "other-app", true).await;
    assert_eq!(other.status, StatusCode::UNAUTHORIZED);

    // One address trying many client ids: its own budget runs out.
    for index in 0..3 {
        let answer = token_request(&app, "198.51.100.7", &format!("guess-{index}"), false).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.body);
    }
    assert_oauth_refusal(&token_request(&app, "198.51.100.7", "guess-3", false).await, "3");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_revocation_and_device_authorization_are_limited() {
    let (app, _database) = spawn(&[
        ("GATEHOUSE_RATE_LIMIT_INTROSPECT_PER_MINUTE", "2"),
        ("GATEHOUSE_RATE_LIMIT_DEVICE_AUTHORIZATION_PER_MINUTE", "2"),
    ])
    .await;
    let post = |path: &'static str| {
        let request = app
            .http
            .post(app.url(path))
            .header("x-forwarded-for", "203.0.113.20")
            .basic_auth("app", Some("secret"))
            .form(&[("token", "x"), ("client_id", "app")]);
        async move { read_answer(request.send().await.unwrap()).await }
    };
    // Introspection and revocation share one budget.
    assert_eq!(post("/oauth2/introspect").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(post("/oauth2/revoke").await.status, StatusCode::UNAUTHORIZED);
    assert_oauth_refusal(&post("/oauth2/introspect").await, "2");
    assert_oauth_refusal(&post("/oauth2/revoke").await, "2");

    for _ in 0..2 {
        let answer = post("/oauth2/device_authorization").await;
        assert_ne!(answer.status, StatusCode::TOO_MANY_REQUESTS, "{}", answer.body);
        assert_eq!(answer.headers["ratelimit-limit"], "2");
    }
    assert_oauth_refusal(&post("/oauth2/device_authorization").await, "2");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_codes_on_the_device_page_are_limited() {
    let (app, _database) =
        spawn(&[("GATEHOUSE_RATE_LIMIT_DEVICE_VERIFICATION_PER_MINUTE", "2")]).await;
    app.sign_up("tv-owner@example.com", STRONG_PASSWORD).await;
    let mut browser = browser::Browser::new(&app);
    let signed_in = browser.sign_in("", "tv-owner@example.com", STRONG_PASSWORD).await;
    assert_eq!(signed_in.status, StatusCode::SEE_OTHER, "{}", signed_in.body);
    let (client_id, _) = app
        .client(NewClient {
            name: "TV".into(),
            public: true,
            grant_types: vec!["urn:ietf:params:oauth:grant-type:device_code".into()],
            ..NewClient::default()
        })
        .await;
    let (status, started) = app
        .post_form(
            "/oauth2/device_authorization",
            None,
            &[("client_id", &client_id), ("scope", "openid")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{started}");
    let user_code = started["user_code"].as_str().unwrap();
    // Opening the page to type a code costs nothing; each code presented does.
    assert_eq!(browser.get("/device").await.status, StatusCode::OK);
    let confirm = browser.get(&format!("/device?user_code={user_code}")).await;
    assert_eq!(confirm.status, StatusCode::OK, "{}", confirm.body);
    let wrong = browser.get("/device?user_code=BCDF-GHJK").await;
    assert_eq!(wrong.status, StatusCode::NOT_FOUND, "{}", wrong.body);
    let refused = browser.get("/device?user_code=LMNP-QRST").await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        refused.alert().is_some_and(|alert| alert.contains("Too many codes")),
        "{}",
        refused.body
    );
    let refused = Answer { status: refused.status, headers: refused.headers, body: Value::Null };
    assert_refused(&refused, "2");
    // The confirmation (POST) spends the same budget: refused, the code stays pending.
    let mut fields = confirm.hidden_fields();
    fields.push(("decision".into(), "allow".into()));
    let fields: Vec<(&str, &str)> =
        fields.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect();
    let posted = browser.post("/device", &fields).await;
    assert_eq!(posted.status, StatusCode::TOO_MANY_REQUESTS, "{}", posted.body);
    let device_code = started["device_code"].as_str().unwrap();
    let (status, pending) = app
        .post_form(
            "/oauth2/token",
            None,
            &[
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("device_code", device_code),
                ("client_id", &client_id),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(pending["error"], "authorization_pending");
    app.stop().await;
}

async fn get_me(app: &TestApp, ip: &str, token: Option<&str>) -> Answer {
    let mut request = app.http.get(app.url("/v1/me")).header("x-forwarded-for", ip);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    read_answer(request.send().await.unwrap()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_budget_is_per_principal_when_authenticated_and_per_ip_otherwise() {
    let (app, _database) = spawn(&[
        ("GATEHOUSE_RATE_LIMIT_API_GET_PER_MINUTE", "3"),
        ("GATEHOUSE_RATE_LIMIT_API_WRITE_PER_MINUTE", "4"),
    ])
    .await;
    // Two users of one server-side app, calling from one address (sign-up spends the write
    // budget of that address: two of four).
    let alice = app.sign_up("alice@example.com", STRONG_PASSWORD).await;
    let bob = app.sign_up("bob@example.com", OTHER_STRONG_PASSWORD).await;
    let (alice, bob) =
        (alice["access_token"].as_str().unwrap(), bob["access_token"].as_str().unwrap());
    // `sign_up` sends from 127.0.0.1 itself; the users' calls come through the proxy.
    let shared_ip = "203.0.113.50";
    for remaining in ["2", "1", "0"] {
        let answer = get_me(&app, shared_ip, Some(alice)).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        assert_eq!(answer.headers["ratelimit-limit"], "3");
        assert_eq!(answer.headers["ratelimit-remaining"], remaining);
    }
    let refused = get_me(&app, shared_ip, Some(alice)).await;
    assert_refused(&refused, "3");
    assert_eq!(refused.body["code"], "rate_limited");
    // Alice's budget follows her to another address; Bob's is his own.
    assert_refused(&get_me(&app, "198.51.100.1", Some(alice)).await, "3");
    let answer = get_me(&app, shared_ip, Some(bob)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.headers["ratelimit-remaining"], "2");

    // Unauthenticated calls from one address share its budget, and so do calls with a bearer
    // that is not valid (a made-up token buys no budget of its own).
    let anonymous_ip = "203.0.113.60";
    for _ in 0..2 {
        let answer = get_me(&app, anonymous_ip, None).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    }
    let forged = get_me(&app, anonymous_ip, Some("eyJhbGciOiJub25lIn0.e30.x")).await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
    assert_eq!(forged.headers["ratelimit-remaining"], "0");
    assert_refused(&get_me(&app, anonymous_ip, None).await, "3");
    let policy =
        app.http.get(app.url("/v1/auth/password-policy")).header("x-forwarded-for", anonymous_ip);
    assert_refused(&read_answer(policy.send().await.unwrap()).await, "3");

    // Writes have their own budget: a PATCH by Alice is still allowed.
    let patch = app
        .http
        .patch(app.url("/v1/me"))
        .header("x-forwarded-for", shared_ip)
        .bearer_auth(alice)
        .json(&json!({ "first_name": "Alice" }))
        .send()
        .await
        .unwrap();
    let patch = read_answer(patch).await;
    assert_eq!(patch.status, StatusCode::OK, "{}", patch.body);
    assert_eq!(patch.headers["ratelimit-limit"], "4");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_keys_have_their_own_api_budget() {
    let (app, _database) = spawn(&[("GATEHOUSE_RATE_LIMIT_API_GET_PER_MINUTE", "2")]).await;
    let key = app.admin_key().await;
    let list = |token: Option<String>| {
        let mut request =
            app.http.get(app.url("/v1/admin/users")).header("x-forwarded-for", "203.0.113.70");
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move { read_answer(request.send().await.unwrap()).await }
    };
    // The address's anonymous budget is spent...
    for _ in 0..2 {
        assert_eq!(list(None).await.status, StatusCode::UNAUTHORIZED);
    }
    assert_refused(&list(None).await, "2");
    // ...and the admin key calling from it still has its own.
    let answer = list(Some(key.clone())).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.headers["ratelimit-remaining"], "1");
    app.stop().await;
}

/// With Redis, a principal's API budget and a client's token budget are one budget across
/// instances (a principal switching instance, or a client spreading its calls, gains nothing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn principal_and_client_budgets_are_shared_through_redis() {
    let Some(redis_url) = gatehouse_store::testing::redis_url().unwrap() else {
        eprintln!("skipped: set GATEHOUSE_TEST_REDIS_URL");
        return;
    };
    let test = TestDatabase::sqlite().await.unwrap();
    let master_key = MasterKey::generate();
    let prefix = format!("test:{}:", gatehouse_crypto::random_token());
    let settings = [
        ("GATEHOUSE_REDIS_URL", redis_url.as_str()),
        ("GATEHOUSE_REDIS_KEY_PREFIX", prefix.as_str()),
        ("GATEHOUSE_RATE_LIMIT_ENABLED", "true"),
        ("GATEHOUSE_TRUSTED_PROXIES", "127.0.0.1"),
        ("GATEHOUSE_RATE_LIMIT_API_GET_PER_MINUTE", "3"),
        ("GATEHOUSE_RATE_LIMIT_TOKEN_PER_MINUTE", "3"),
        // One issuer, so a token of one instance is valid at the other.
        ("GATEHOUSE_ISSUER", "http://gatehouse.test"),
    ];
    let first = TestApp::spawn_with(&test, &master_key, &settings).await;
    let second = TestApp::spawn_with(&test, &master_key, &settings).await;
    let tokens = first.sign_up("carol@example.com", STRONG_PASSWORD).await;
    let token = tokens["access_token"].as_str().unwrap();
    let mut statuses = Vec::new();
    for (index, app) in [&first, &second, &first, &second].into_iter().enumerate() {
        statuses.push(get_me(app, &format!("203.0.113.{index}"), Some(token)).await.status);
    }
    assert_eq!(statuses, [200, 200, 200, 429], "one budget for the principal");
    let mut statuses = Vec::new();
    for (index, app) in [&first, &second, &first, &second].into_iter().enumerate() {
        let ip = format!("198.51.100.{index}");
        statuses.push(token_request(app, &ip, "shared-client", index % 2 == 0).await.status);
    }
    assert_eq!(statuses, [401, 401, 401, 429], "one budget for the client id");
    first.stop().await;
    second.stop().await;
}

/// Step-up checks a password, so `POST /v1/auth/reauthenticate` spends the per-IP sign-in
/// budget (shared with sign-in itself): guesses through it are bounded like sign-in's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reauthentication_spends_the_sign_in_budget() {
    let (app, _database) = spawn(&[("GATEHOUSE_RATE_LIMIT_SIGN_IN_PER_MINUTE", "2")]).await;
    let tokens = app.sign_up("dave@example.com", STRONG_PASSWORD).await;
    let token = tokens["access_token"].as_str().unwrap();
    let reauthenticate = || {
        let request = app
            .http
            .post(app.url("/v1/auth/reauthenticate"))
            .header("x-forwarded-for", "203.0.113.80")
            .bearer_auth(token)
            .json(&json!({ "password": OTHER_STRONG_PASSWORD }));
        async move { read_answer(request.send().await.unwrap()).await }
    };
    for remaining in ["1", "0"] {
        let answer = reauthenticate().await;
        assert_ne!(answer.status, StatusCode::TOO_MANY_REQUESTS, "{}", answer.body);
        assert_eq!(answer.headers["ratelimit-remaining"], remaining);
    }
    let refused = reauthenticate().await;
    assert_refused(&refused, "2");
    assert_eq!(refused.body["code"], "rate_limited");
    app.stop().await;
}

/// Every `/v1` operation can answer 429 (the general budget), and the OpenAPI description
/// says so, with `Retry-After` and the `RateLimit-*` headers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_documents_429_on_every_api_operation() {
    let (app, _database) = spawn(&[]).await;
    let (status, document) = app.get_json("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let mut operations = 0;
    for (path, item) in document["paths"].as_object().unwrap() {
        if !path.starts_with("/v1/") {
            continue;
        }
        for (method, operation) in item.as_object().unwrap() {
            let too_many = &operation["responses"]["429"];
            assert!(too_many.is_object(), "{method} {path} does not document 429");
            operations += 1;
        }
    }
    assert!(operations > 40, "{operations}");
    let me = &document["paths"]["/v1/me"]["get"]["responses"]["429"]["headers"];
    for header in ["Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"] {
        assert!(me.get(header).is_some(), "{header}");
    }
    app.stop().await;
}
