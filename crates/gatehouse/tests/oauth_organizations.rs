//! The `organization` scope of the OIDC provider, on both backends: the user's organization in
//! the access token, the ID token and userinfo — chosen automatically for one membership, named
//! by the client (`organization=<id or slug>`), picked on the consent page, or on the chooser
//! page for clients that skip consent — and read again at every refresh.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeMap;

use gatehouse_domain::oauth::clients::NewClient;
use gatehouse_store::backend_tests;
use gatehouse_store::testing::TestDatabase;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::mfa::{Env, claims, spawn};
use support::oauth_browser::{Browser, Page, query};
use support::{STRONG_PASSWORD, TestApp};

backend_tests!(
    the_consent_page_picks_the_organization_the_tokens_carry,
    a_client_names_the_organization_and_one_membership_is_chosen_alone,
    clients_that_skip_consent_show_a_chooser,
);

const REDIRECT: &str = "https://app.example.com/callback";

struct Person {
    id: String,
    token: String,
}

async fn person(env: &Env, email: &str) -> Person {
    let tokens = env.app.sign_up(email, STRONG_PASSWORD).await;
    Person {
        id: tokens["user"]["id"].as_str().unwrap().to_owned(),
        token: tokens["access_token"].as_str().unwrap().to_owned(),
    }
}

/// Creates an organization owned by `owner`; answers its id.
async fn organization(env: &Env, owner: &Person, slug: &str, name: &str) -> String {
    let (status, org) = env
        .app
        .send(
            Method::POST,
            "/v1/organizations",
            Some(&owner.token),
            Some(json!({ "name": name, "slug": slug })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{org}");
    org["id"].as_str().unwrap().to_owned()
}

/// A confidential web client; its default scopes include `organization`.
async fn web_client(app: &TestApp, skip_consent: bool) -> (String, String) {
    let (id, secret) = app
        .client(NewClient {
            name: "Team App".into(),
            redirect_uris: vec![REDIRECT.into()],
            skip_consent,
            ..NewClient::default()
        })
        .await;
    (id, secret.unwrap())
}

fn authorize_url(app: &TestApp, client_id: &str, extra: &[(&str, &str)]) -> String {
    let mut parameters: BTreeMap<&str, &str> = [
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", REDIRECT),
        ("scope", "openid organization offline_access"),
        ("state", "xyz"),
    ]
    .into_iter()
    .collect();
    parameters.extend(extra.iter().copied());
    let mut url = reqwest::Url::parse(&app.url("/oauth2/authorize")).unwrap();
    url.query_pairs_mut().extend_pairs(parameters);
    url.to_string()
}

/// Signs in on the page the authorization request leads to (when asked).
async fn open(browser: &mut Browser, url: &str, email: &str) -> Page {
    let first = browser.get(url).await;
    let page = browser.follow(first).await;
    if page.body.contains("name=\"password\"") {
        browser.sign_in(&page, email, STRONG_PASSWORD).await
    } else {
        page
    }
}

/// The code in a redirect to the client.
fn code_of(page: &Page) -> String {
    let location =
        page.location.as_deref().unwrap_or_else(|| panic!("no redirect:\n{}", page.body));
    assert!(location.starts_with(REDIRECT), "{location}");
    let answer = query(location);
    assert_eq!(answer.get("state").map(String::as_str), Some("xyz"), "{location}");
    answer.get("code").cloned().unwrap_or_else(|| panic!("no code in {location}"))
}

/// Exchanges a code; answers the token endpoint's JSON.
async fn exchange(app: &TestApp, client: &(String, String), code: &str) -> Value {
    let (status, tokens) = app
        .post_form(
            "/oauth2/token",
            Some((&client.0, &client.1)),
            &[("grant_type", "authorization_code"), ("code", code), ("redirect_uri", REDIRECT)],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    tokens
}

async fn refresh(app: &TestApp, client: &(String, String), token: String) -> Value {
    let (status, tokens) = app
        .post_form(
            "/oauth2/token",
            Some((&client.0, &client.1)),
            &[("grant_type", "refresh_token"), ("refresh_token", &token)],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    tokens
}

async fn userinfo(app: &TestApp, access_token: &str) -> Value {
    let (status, info) = app.get_auth("/oauth2/userinfo", access_token).await;
    assert_eq!(status, StatusCode::OK, "{info}");
    info
}

/// The radio choices of a page: the organization ids it offers.
fn offered(page: &Page) -> Vec<String> {
    page.body
        .match_indices("name=\"organization\" value=\"")
        .map(|(start, marker)| {
            let rest = &page.body[start + marker.len()..];
            rest[..rest.find('"').unwrap()].to_owned()
        })
        .collect()
}

async fn the_consent_page_picks_the_organization_the_tokens_carry(test: TestDatabase) {
    let env = spawn(&test, &[]).await;
    let app = &env.app;
    let ada = person(&env, "ada@example.com").await;
    let acme = organization(&env, &ada, "acme", "Acme").await;
    let beta = organization(&env, &ada, "beta", "Beta Corp").await;
    let client = web_client(app, false).await;

    // Two memberships, no choice named: the consent page offers both.
    let mut browser = Browser::new(&app.base_url);
    let page = open(&mut browser, &authorize_url(app, &client.0, &[]), "ada@example.com").await;
    assert!(page.body.contains("name=\"decision\""), "{}", page.body);
    let mut choices = offered(&page);
    choices.sort();
    let mut expected = vec![acme.clone(), beta.clone()];
    expected.sort();
    assert_eq!(choices, expected);
    assert!(page.body.contains("Acme") && page.body.contains("Beta Corp"));

    // A pick that is not one of the user's organizations is asked again, never honoured.
    let csrf = page.field("csrf_token").unwrap();
    let request = page.field("request").unwrap();
    let form = |organization: &str| {
        vec![
            ("request".to_owned(), request.clone()),
            ("decision".to_owned(), "allow".to_owned()),
            ("csrf_token".to_owned(), csrf.clone()),
            ("organization".to_owned(), organization.to_owned()),
        ]
    };
    let pairs = form("org_not_mine");
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let again = browser.post("/consent", &pairs).await;
    assert!(again.location.is_none(), "an unknown pick issued a code: {:?}", again.location);
    assert_eq!(offered(&again).len(), 2);

    // Picking Beta: every token says Beta, with the owner's role and permissions.
    let pairs = form(&beta);
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let allowed = browser.post("/consent", &pairs).await;
    let tokens = exchange(app, &client, &code_of(&allowed)).await;
    let access = claims(tokens["access_token"].as_str().unwrap());
    let id_token = claims(tokens["id_token"].as_str().unwrap());
    let info = userinfo(app, tokens["access_token"].as_str().unwrap()).await;
    for (what, claims) in [("access token", &access), ("ID token", &id_token), ("userinfo", &info)]
    {
        assert_eq!(claims["org_id"], beta.as_str(), "{what}: {claims}");
        assert_eq!(claims["org_slug"], "beta", "{what}");
        assert_eq!(claims["org_role"], "owner", "{what}");
        let permissions = claims["org_permissions"].as_array().unwrap();
        assert!(permissions.contains(&json!("org:delete")), "{what}: {claims}");
    }

    // A role change shows at the next refresh, which keeps the organization: Ada hands Beta to
    // Bob and becomes a plain member.
    let bob = person(&env, "bob@example.com").await;
    let (status, _) = env
        .app
        .send(
            Method::POST,
            &format!("/v1/admin/organizations/{beta}/members"),
            Some(&env.admin),
            Some(json!({ "user_id": bob.id, "role": "owner" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = env
        .app
        .send(
            Method::PATCH,
            &format!("/v1/organizations/{beta}/members/{}", ada.id),
            Some(&bob.token),
            Some(json!({ "role": "member" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let refreshed =
        refresh(app, &client, tokens["refresh_token"].as_str().unwrap().to_owned()).await;
    for token in ["access_token", "id_token"] {
        let claims = claims(refreshed[token].as_str().unwrap());
        assert_eq!(claims["org_id"], beta.as_str(), "{token}");
        assert_eq!(claims["org_role"], "member", "{token}");
        assert!(!claims["org_permissions"].as_array().unwrap().contains(&json!("org:delete")));
    }
    assert_eq!(
        userinfo(app, refreshed["access_token"].as_str().unwrap()).await["org_role"],
        "member"
    );

    // Removed from Beta: userinfo says so at once, the next refresh carries no organization.
    let (status, _) = env
        .app
        .send(
            Method::DELETE,
            &format!("/v1/organizations/{beta}/members/{}", ada.id),
            Some(&bob.token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(
        userinfo(app, refreshed["access_token"].as_str().unwrap()).await.get("org_id").is_none()
    );
    let last = refresh(app, &client, refreshed["refresh_token"].as_str().unwrap().to_owned()).await;
    assert!(claims(last["access_token"].as_str().unwrap()).get("org_id").is_none());
    assert!(claims(last["id_token"].as_str().unwrap()).get("org_id").is_none());

    // Without the scope, no organization claims at all.
    let page = open(
        &mut browser,
        &authorize_url(app, &client.0, &[("scope", "openid"), ("prompt", "consent")]),
        "ada@example.com",
    )
    .await;
    assert!(offered(&page).is_empty(), "{}", page.body);
    let allowed = browser.consent(&page, "allow").await;
    let tokens = exchange(app, &client, &code_of(&allowed)).await;
    assert!(claims(tokens["access_token"].as_str().unwrap()).get("org_id").is_none());
    assert!(claims(tokens["id_token"].as_str().unwrap()).get("org_id").is_none());
    let _ = acme;
    app_stop(env).await;
}

async fn a_client_names_the_organization_and_one_membership_is_chosen_alone(test: TestDatabase) {
    let env = spawn(&test, &[]).await;
    let app = &env.app;
    let ada = person(&env, "ada@example.com").await;
    let acme = organization(&env, &ada, "acme", "Acme").await;
    organization(&env, &ada, "beta", "Beta Corp").await;
    let client = web_client(app, false).await;
    let mut browser = Browser::new(&app.base_url);

    // Named by slug (or id): the consent page states it and offers no other.
    for named in ["acme", acme.as_str()] {
        let url = authorize_url(app, &client.0, &[("organization", named), ("prompt", "consent")]);
        let page = open(&mut browser, &url, "ada@example.com").await;
        assert_eq!(offered(&page), vec![acme.clone()], "{named}: {}", page.body);
        assert!(page.body.contains("Acme"));
        let csrf = page.field("csrf_token").unwrap();
        let request = page.field("request").unwrap();
        let allowed = browser
            .post(
                "/consent",
                &[
                    ("request", &request),
                    ("decision", "allow"),
                    ("csrf_token", &csrf),
                    ("organization", &acme),
                ],
            )
            .await;
        let tokens = exchange(app, &client, &code_of(&allowed)).await;
        assert_eq!(claims(tokens["id_token"].as_str().unwrap())["org_slug"], "acme");
    }

    // Consent given, the named organization comes without a page, even with prompt=none.
    let url = authorize_url(app, &client.0, &[("organization", "acme"), ("prompt", "none")]);
    let page = browser.get(&url).await;
    let tokens = exchange(app, &client, &code_of(&page)).await;
    assert_eq!(claims(tokens["access_token"].as_str().unwrap())["org_id"], acme.as_str());

    // An organization the user is not in is passed over, not reported: the user chooses.
    let stranger = person(&env, "eve@example.com").await;
    organization(&env, &stranger, "evil", "Evil Inc").await;
    let url = authorize_url(app, &client.0, &[("organization", "evil"), ("prompt", "consent")]);
    let page = browser.get(&url).await;
    assert_eq!(offered(&page).len(), 2, "{}", page.body);
    assert!(!page.body.contains("Evil Inc"));

    // One membership: chosen without asking.
    let solo = person(&env, "solo@example.com").await;
    let only = organization(&env, &solo, "solo", "Solo").await;
    let mut solo_browser = Browser::new(&app.base_url);
    let page =
        open(&mut solo_browser, &authorize_url(app, &client.0, &[]), "solo@example.com").await;
    assert_eq!(offered(&page), vec![only.clone()]);
    let allowed = solo_browser.consent(&page, "allow").await;
    let tokens = exchange(app, &client, &code_of(&allowed)).await;
    assert_eq!(claims(tokens["id_token"].as_str().unwrap())["org_id"], only.as_str());

    // No membership: the scope is granted, the tokens carry no organization.
    let mut none_browser = Browser::new(&app.base_url);
    app.sign_up("nobody@example.com", STRONG_PASSWORD).await;
    let page =
        open(&mut none_browser, &authorize_url(app, &client.0, &[]), "nobody@example.com").await;
    assert!(offered(&page).is_empty());
    let allowed = none_browser.consent(&page, "allow").await;
    let tokens = exchange(app, &client, &code_of(&allowed)).await;
    assert_eq!(tokens["scope"], "openid organization offline_access");
    assert!(claims(tokens["id_token"].as_str().unwrap()).get("org_id").is_none());
    app_stop(env).await;
}

async fn clients_that_skip_consent_show_a_chooser(test: TestDatabase) {
    let env = spawn(&test, &[]).await;
    let app = &env.app;
    let ada = person(&env, "ada@example.com").await;
    let acme = organization(&env, &ada, "acme", "Acme").await;
    let beta = organization(&env, &ada, "beta", "Beta Corp").await;
    let client = web_client(app, true).await;
    let mut browser = Browser::new(&app.base_url);

    // prompt=none cannot show the chooser.
    open(&mut browser, &app.url("/login"), "ada@example.com").await;
    let page = browser.get(&authorize_url(app, &client.0, &[("prompt", "none")])).await;
    let answer = query(page.location.as_deref().unwrap());
    assert_eq!(answer["error"], "interaction_required");

    // Otherwise the chooser: a GET form back to /oauth2/authorize with the request's parameters.
    let page = browser.get(&authorize_url(app, &client.0, &[])).await;
    assert_eq!(page.status, StatusCode::OK, "{:?}", page.location);
    assert!(page.body.contains("action=\"/oauth2/authorize\""), "{}", page.body);
    assert!(!page.body.contains("name=\"decision\""), "no consent for this client");
    let mut choices = offered(&page);
    choices.sort();
    let mut expected = vec![acme.clone(), beta.clone()];
    expected.sort();
    assert_eq!(choices, expected);
    assert_eq!(page.field("client_id").as_deref(), Some(client.0.as_str()));
    assert_eq!(page.field("scope").as_deref(), Some("openid organization offline_access"));

    // Submitting it (the browser sends the hidden fields and the choice).
    let mut url = reqwest::Url::parse(&app.url("/oauth2/authorize")).unwrap();
    for name in ["response_type", "client_id", "redirect_uri", "scope", "state"] {
        url.query_pairs_mut().append_pair(name, &page.field(name).unwrap());
    }
    url.query_pairs_mut().append_pair("organization", &beta);
    let chosen = browser.get(url.as_str()).await;
    let tokens = exchange(app, &client, &code_of(&chosen)).await;
    assert_eq!(claims(tokens["access_token"].as_str().unwrap())["org_id"], beta.as_str());
    assert_eq!(claims(tokens["id_token"].as_str().unwrap())["org_slug"], "beta");
    app_stop(env).await;
}

async fn app_stop(env: Env) {
    env.app.stop().await;
}
