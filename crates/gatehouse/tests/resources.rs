//! Resource indicators (RFC 8707): resource servers registered through the admin API; an
//! authorization for several resources, and access tokens each for one of them (`aud` its
//! identifier, its scope what that resource accepts, its lifetime); a refresh narrowing to
//! another granted resource; refusals (`invalid_target`) that spend nothing; a resource token
//! opens neither userinfo nor the first-party API. Both backends.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use gatehouse_domain::oauth::clients::NewClient;
use gatehouse_store::backend_tests;
use gatehouse_store::testing::TestDatabase;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::oauth_browser::{Browser, query};
use support::{STRONG_PASSWORD, TestApp};

backend_tests!(
    resource_servers_are_managed_through_the_admin_api,
    each_access_token_is_for_one_granted_resource,
    a_client_acting_for_itself_names_its_resource,
);

const REDIRECT: &str = "https://app.example.com/callback";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const REPORTS: &str = "https://api.example.com";
const TOOLS: &str = "https://mcp.example.com/mcp";

fn claims_of(token: &str) -> Value {
    gatehouse_crypto::jsonwebtoken::dangerous::insecure_decode_claims(token).unwrap()
}

async fn register(app: &TestApp, admin: &str, body: Value) -> (StatusCode, Value) {
    app.post("/v1/admin/resource-servers", Some(admin), body).await
}

/// The two resource servers of these tests.
async fn register_both(app: &TestApp, admin: &str) {
    let (status, body) = register(
        app,
        admin,
        json!({ "identifier": REPORTS, "name": "Reports API", "scopes": ["reports:read"] }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = register(
        app,
        admin,
        json!({ "identifier": TOOLS, "name": "Tools", "scopes": ["tools:call"],
                "access_token_ttl_seconds": 120 }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

async fn resource_servers_are_managed_through_the_admin_api(test: TestDatabase) {
    let app = TestApp::spawn(&test).await;
    let admin = app.admin_key().await;
    register_both(&app, &admin).await;
    let (status, page) = app.get_auth("/v1/admin/resource-servers", &admin).await;
    assert_eq!(status, StatusCode::OK);
    let identifiers: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["identifier"].as_str().unwrap())
        .collect();
    assert_eq!(identifiers.len(), 2, "{page}");
    assert!(identifiers.contains(&REPORTS) && identifiers.contains(&TOOLS));
    assert!(page["next_cursor"].is_null());
    let tools = page["data"].as_array().unwrap().iter().find(|r| r["identifier"] == TOOLS).unwrap();
    assert_eq!(tools["token_format"], "jwt");
    assert_eq!(tools["access_token_ttl_seconds"], 120);
    let id = tools["id"].as_str().unwrap();

    let (status, changed) = app
        .send(
            reqwest::Method::PATCH,
            &format!("/v1/admin/resource-servers/{id}"),
            Some(&admin),
            Some(json!({ "name": "Tools (MCP)" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(
        (changed["name"].as_str(), changed["identifier"].as_str()),
        (Some("Tools (MCP)"), Some(TOOLS))
    );

    // Refused: a relative or fragment identifier, a taken one, an unknown format.
    for (body, field) in [
        (json!({ "identifier": "/api", "name": "x" }), "identifier"),
        (json!({ "identifier": "https://api.example.com#part", "name": "x" }), "identifier"),
        (json!({ "identifier": REPORTS, "name": "again" }), "identifier"),
        (
            json!({ "identifier": "https://other.example", "name": "x", "token_format": "opaque" }),
            "token_format",
        ),
    ] {
        let (status, problem) = register(&app, &admin, body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {problem}");
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }

    let (status, _) = app
        .send(
            reqwest::Method::DELETE,
            &format!("/v1/admin/resource-servers/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.get_auth(&format!("/v1/admin/resource-servers/{id}"), &admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    app.stop().await;
}

fn web_app() -> NewClient {
    NewClient {
        name: "Agent".into(),
        redirect_uris: vec![REDIRECT.into()],
        scopes: vec![
            "openid".into(),
            "email".into(),
            "offline_access".into(),
            "reports:read".into(),
            "tools:call".into(),
        ],
        skip_consent: true,
        ..NewClient::default()
    }
}

fn authorize_url(app: &TestApp, client_id: &str, resources: &[&str]) -> String {
    let mut url = reqwest::Url::parse(&app.url("/oauth2/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("scope", "openid offline_access reports:read tools:call")
        .append_pair("state", "s")
        .append_pair("code_challenge", &gatehouse_crypto::pkce_s256(VERIFIER))
        .append_pair("code_challenge_method", "S256");
    for resource in resources {
        url.query_pairs_mut().append_pair("resource", resource);
    }
    url.to_string()
}

async fn token(app: &TestApp, client: (&str, &str), form: &[(&str, &str)]) -> (StatusCode, Value) {
    app.post_form("/oauth2/token", Some(client), form).await
}

async fn each_access_token_is_for_one_granted_resource(test: TestDatabase) {
    let app = TestApp::spawn(&test).await;
    let admin = app.admin_key().await;
    register_both(&app, &admin).await;
    app.sign_up("agent@example.com", STRONG_PASSWORD).await;
    let (client_id, secret) = app.client(web_app()).await;
    let secret = secret.unwrap();
    let client = (client_id.as_str(), secret.as_str());

    let mut browser = Browser::new(&app.base_url);
    let first = browser.get(&authorize_url(&app, &client_id, &[REPORTS, TOOLS])).await;
    let login = browser.follow(first).await;
    let done = browser.sign_in(&login, "agent@example.com", STRONG_PASSWORD).await;
    let callback = query(&done.location.clone().unwrap_or_else(|| panic!("{}", done.body)));
    let code = callback["code"].clone();
    let exchange = |resource: Option<&'static str>| {
        let code = code.clone();
        let app = &app;
        async move {
            let mut form = vec![
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", REDIRECT),
                ("code_verifier", VERIFIER),
            ];
            if let Some(resource) = resource {
                form.push(("resource", resource));
            }
            token(app, client, &form).await
        }
    };

    // Granted for two: the exchange must name one, and a refused exchange spends nothing.
    let (status, body) = exchange(None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_target")),
        "{body}"
    );
    let (status, body) = exchange(Some("https://elsewhere.example")).await;
    assert_eq!(body["error"], "invalid_target", "{status} {body}");
    let (status, tokens) = exchange(Some(REPORTS)).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let reports_token = tokens["access_token"].as_str().unwrap();
    let claims = claims_of(reports_token);
    assert_eq!(claims["aud"], REPORTS);
    assert_eq!(claims["scope"], "reports:read", "only what the resource accepts");
    assert_eq!(tokens["scope"], "reports:read");
    assert!(tokens["id_token"].is_string(), "the ID token is still the client's");

    // Introspection answers for it; userinfo and the first-party API do not take it.
    let (_, introspected) =
        app.post_form("/oauth2/introspect", Some(client), &[("token", reports_token)]).await;
    assert_eq!(
        (introspected["active"].as_bool(), introspected["aud"].as_str()),
        (Some(true), Some(REPORTS))
    );
    let userinfo =
        app.http.get(app.url("/oauth2/userinfo")).bearer_auth(reports_token).send().await.unwrap();
    assert_eq!(userinfo.status(), StatusCode::UNAUTHORIZED);
    let (status, _) = app.get_auth("/v1/me", reports_token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // A refresh narrows to the other granted resource, with its scope and lifetime; one not
    // granted is refused without spending the refresh token.
    let refresh_token = tokens["refresh_token"].as_str().unwrap().to_owned();
    let (status, body) = token(
        &app,
        client,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh_token),
            ("resource", "https://elsewhere.example"),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_target")),
        "{body}"
    );
    let (status, tools) = token(
        &app,
        client,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh_token), ("resource", TOOLS)],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{tools}");
    let claims = claims_of(tools["access_token"].as_str().unwrap());
    assert_eq!(
        (claims["aud"].as_str(), claims["scope"].as_str()),
        (Some(TOOLS), Some("tools:call"))
    );
    assert_eq!(tools["expires_in"], 120);
    // Two resources in one token request: one audience per token.
    let (status, body) = token(
        &app,
        client,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", tools["refresh_token"].as_str().unwrap()),
            ("resource", REPORTS),
            ("resource", TOOLS),
        ],
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_target")));

    // An unregistered resource at the authorization endpoint: invalid_target at the client.
    let page = browser.get(&authorize_url(&app, &client_id, &["https://unknown.example"])).await;
    let location = page.location.clone().unwrap_or_else(|| panic!("{}", page.body));
    assert!(location.starts_with(REDIRECT), "{location}");
    assert_eq!(query(&location)["error"], "invalid_target");
    // Without resources the grant and its tokens are as before: for this server.
    let page = browser.get(&authorize_url(&app, &client_id, &[])).await;
    let code = query(&page.location.clone().unwrap())["code"].clone();
    let (status, plain) = token(
        &app,
        client,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{plain}");
    assert_eq!(claims_of(plain["access_token"].as_str().unwrap())["aud"], app.base_url);
    app.stop().await;
}

async fn a_client_acting_for_itself_names_its_resource(test: TestDatabase) {
    let app = TestApp::spawn(&test).await;
    let admin = app.admin_key().await;
    register_both(&app, &admin).await;
    let (client_id, secret) = app
        .client(NewClient {
            name: "Service".into(),
            grant_types: vec!["client_credentials".into()],
            scopes: vec!["reports:read".into(), "tools:call".into()],
            ..NewClient::default()
        })
        .await;
    let secret = secret.unwrap();
    let client = (client_id.as_str(), secret.as_str());
    let (status, tokens) =
        token(&app, client, &[("grant_type", "client_credentials"), ("resource", REPORTS)]).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let claims = claims_of(tokens["access_token"].as_str().unwrap());
    assert_eq!(
        (claims["aud"].as_str(), claims["scope"].as_str()),
        (Some(REPORTS), Some("reports:read"))
    );
    let (status, body) = token(
        &app,
        client,
        &[("grant_type", "client_credentials"), ("resource", REPORTS), ("scope", "tools:call")],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_scope")),
        "{body}"
    );
    let (status, body) = token(
        &app,
        client,
        &[("grant_type", "client_credentials"), ("resource", "https://unknown.example")],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_target")),
        "{body}"
    );
    app.stop().await;
}
