//! The authorization code flow driven by the `openidconnect` crate as the relying party (its
//! discovery, PKCE, ID-token validation, userinfo, refresh, introspection and revocation), with
//! the browser steps done by a cookie-keeping HTTP client following the hosted forms. Both
//! backends.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use gatehouse_crypto::MasterKey;
use gatehouse_domain::oauth::clients::NewClient;
use gatehouse_store::backend_tests;
use gatehouse_store::testing::TestDatabase;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreProviderMetadata, CoreUserInfoClaims,
};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IntrospectionUrl,
    IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
    TokenIntrospectionResponse, TokenResponse,
};
use reqwest::StatusCode;
use support::oauth_browser::{Browser, query};
use support::{STRONG_PASSWORD, TestApp};

backend_tests!(
    openidconnect_relying_party_completes_the_code_flow,
    public_clients_need_pkce_s256,
    bad_redirect_uris_are_never_redirected_to,
    codes_are_single_use_and_bound_to_their_client_and_verifier,
    consent_is_asked_once_and_can_be_denied,
    rp_initiated_logout_never_redirects_anywhere_unregistered,
    people_see_and_remove_connected_applications,
    the_consents_api_lists_and_revokes_connected_applications,
    prompt_none_login_and_max_age,
    openidconnect_drives_the_device_flow,
    a_clients_refresh_lifetime_survives_rotation,
    a_code_is_checked_against_its_client_before_it_is_spent,
    request_objects_and_other_response_modes_are_refused,
    a_hint_from_another_browser_session_asks_before_signing_out,
);

async fn openidconnect_drives_the_device_flow(test: TestDatabase) {
    use openidconnect::DeviceAuthorizationUrl;
    use openidconnect::core::CoreDeviceAuthorizationResponse;
    use std::sync::Arc;
    let app = spawn(&test).await;
    app.sign_up("tv@example.com", STRONG_PASSWORD).await;
    let (client_id, _) = app
        .client(NewClient {
            name: "TV".into(),
            public: true,
            grant_types: vec![
                "urn:ietf:params:oauth:grant-type:device_code".into(),
                "refresh_token".into(),
            ],
            ..NewClient::default()
        })
        .await;
    let http = rp_http();
    let metadata =
        CoreProviderMetadata::discover_async(IssuerUrl::new(app.base_url.clone()).unwrap(), &http)
            .await
            .unwrap();
    let client = CoreClient::from_provider_metadata(metadata, ClientId::new(client_id), None)
        .set_device_authorization_url(
            DeviceAuthorizationUrl::new(app.url("/oauth2/device_authorization")).unwrap(),
        );
    let details: CoreDeviceAuthorizationResponse = client
        .exchange_device_code()
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("offline_access".into()))
        .request_async(&http)
        .await
        .unwrap();
    let user_code = details.user_code().secret().clone();
    assert_eq!(details.verification_uri().as_str(), app.url("/device"));
    // The relying party "sleeps" between polls; here the person uses that time to confirm.
    let browser = Arc::new(tokio::sync::Mutex::new(Some((Browser::new(&app.base_url), user_code))));
    let sleep = {
        let browser = browser.clone();
        move |_: std::time::Duration| {
            let browser = browser.clone();
            async move {
                if let Some((mut browser, user_code)) = browser.lock().await.take() {
                    let first = browser.get(&format!("/device?user_code={user_code}")).await;
                    let login = browser.follow(first).await;
                    let confirm = browser.sign_in(&login, "tv@example.com", STRONG_PASSWORD).await;
                    let csrf = confirm.field("csrf_token").unwrap();
                    let done = browser
                        .post(
                            "/device",
                            &[
                                ("user_code", &user_code),
                                ("decision", "allow"),
                                ("csrf_token", &csrf),
                            ],
                        )
                        .await;
                    assert_eq!(done.status, StatusCode::OK);
                }
            }
        }
    };
    let tokens = client
        .exchange_device_access_token(&details)
        .unwrap()
        .request_async(&http, sleep, Some(std::time::Duration::from_secs(60)))
        .await
        .unwrap();
    let id_token = tokens.id_token().expect("an ID token");
    let claims = id_token.claims(&client.id_token_verifier(), |_: Option<&Nonce>| Ok(())).unwrap();
    assert_eq!(claims.email().map(|email| email.as_str()), Some("tv@example.com"));
    assert!(tokens.refresh_token().is_some());
    assert!(browser.lock().await.is_none(), "the person confirmed during the polling");
    app.stop().await;
}

async fn prompt_none_login_and_max_age(test: TestDatabase) {
    let app = spawn(&test).await;
    app.sign_up("prompt@example.com", STRONG_PASSWORD).await;
    let (client_id, _) = app.client(NewClient { skip_consent: true, ..web_app() }).await;
    let mut browser = Browser::new(&app.base_url);
    // Not signed in: prompt=none answers login_required at the redirect URI, without a page.
    let page = browser.get(&authorize_url(&app, &client_id, &[("prompt", "none")])).await;
    let answer = query(page.location.as_deref().unwrap());
    assert_eq!((answer["error"].as_str(), answer["state"].as_str()), ("login_required", "xyz"));
    // Signed in: prompt=none goes straight through.
    browse_to_callback(
        &app,
        &mut browser,
        &authorize_url(&app, &client_id, &[]),
        "prompt@example.com",
    )
    .await;
    let page = browser.get(&authorize_url(&app, &client_id, &[("prompt", "none")])).await;
    assert!(query(page.location.as_deref().unwrap()).contains_key("code"));
    // prompt=login and an exceeded max_age (0: always) ask for the password again, then come back.
    for extra in [("prompt", "login"), ("max_age", "0")] {
        let page = browser.get(&authorize_url(&app, &client_id, &[extra])).await;
        let login = page.location.clone().unwrap();
        assert!(login.starts_with("/login?"), "{extra:?} → {login}");
        let form = browser.get(&login).await;
        assert!(form.body.contains("name=\"password\""), "{extra:?}: a fresh sign-in is asked");
        let back = browser.sign_in(&form, "prompt@example.com", STRONG_PASSWORD).await;
        assert!(query(back.location.as_deref().unwrap()).contains_key("code"), "{extra:?}");
    }
    // Unknown prompt values are refused at the redirect URI.
    let page = browser.get(&authorize_url(&app, &client_id, &[("prompt", "sideways")])).await;
    assert_eq!(query(page.location.as_deref().unwrap())["error"], "invalid_request");
    app.stop().await;
}

/// Signs in through the code flow and answers (browser, tokens) for `client_id`.
async fn signed_in_with_tokens(
    app: &TestApp,
    client_id: &str,
    secret: &str,
    email: &str,
) -> (Browser, serde_json::Value) {
    let mut browser = Browser::new(&app.base_url);
    let url = authorize_url(app, client_id, &[("scope", "openid offline_access")]);
    let callback = browse_to_callback(app, &mut browser, &url, email).await;
    let (status, tokens) = app
        .post_form(
            "/oauth2/token",
            Some((client_id, secret)),
            &[
                ("grant_type", "authorization_code"),
                ("code", &callback["code"]),
                ("redirect_uri", REDIRECT),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    (browser, tokens)
}

/// Finding 8: a client's own refresh-token lifetime holds for the rotated tokens too, not
/// only the first one.
async fn a_clients_refresh_lifetime_survives_rotation(test: TestDatabase) {
    let app = spawn(&test).await;
    app.sign_up("lifetime@example.com", STRONG_PASSWORD).await;
    let (client_id, secret) = app
        .client(NewClient { skip_consent: true, refresh_token_ttl_seconds: Some(600), ..web_app() })
        .await;
    let secret = secret.unwrap();
    let (_, mut tokens) =
        signed_in_with_tokens(&app, &client_id, &secret, "lifetime@example.com").await;
    for round in 0..3 {
        let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
        let (_, introspection) = app
            .post_form("/oauth2/introspect", Some((&client_id, &secret)), &[("token", &refresh)])
            .await;
        assert_eq!(introspection["active"], true, "{introspection}");
        let lifetime =
            introspection["exp"].as_i64().unwrap() - introspection["iat"].as_i64().unwrap();
        assert_eq!(lifetime, 600, "round {round}: the client's lifetime");
        let (status, next) = app
            .post_form(
                "/oauth2/token",
                Some((&client_id, &secret)),
                &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{next}");
        tokens = next;
    }
    app.stop().await;
}

/// Finding 8: another client, or the right client with the wrong redirect URI, is refused
/// without spending the code, which its own client then exchanges; the session it opens is
/// recorded on the code, so a replay still revokes it.
async fn a_code_is_checked_against_its_client_before_it_is_spent(test: TestDatabase) {
    let app = spawn(&test).await;
    app.sign_up("unburnt@example.com", STRONG_PASSWORD).await;
    let (client_id, secret) = app.client(NewClient { skip_consent: true, ..web_app() }).await;
    let (other_id, other_secret) =
        app.client(NewClient { name: "Other".into(), skip_consent: true, ..web_app() }).await;
    let (secret, other_secret) = (secret.unwrap(), other_secret.unwrap());
    let mut browser = Browser::new(&app.base_url);
    let callback = browse_to_callback(
        &app,
        &mut browser,
        &authorize_url(&app, &client_id, &[("scope", "openid offline_access")]),
        "unburnt@example.com",
    )
    .await;
    let code = callback["code"].as_str();
    let exchange = |redirect: &'static str| {
        [("grant_type", "authorization_code"), ("code", code), ("redirect_uri", redirect)]
    };
    let (status, body) =
        app.post_form("/oauth2/token", Some((&other_id, &other_secret)), &exchange(REDIRECT)).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    let (status, body) = app
        .post_form(
            "/oauth2/token",
            Some((&client_id, &secret)),
            &exchange("https://app.example.com/elsewhere"),
        )
        .await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    let (status, tokens) =
        app.post_form("/oauth2/token", Some((&client_id, &secret)), &exchange(REDIRECT)).await;
    assert_eq!(status, StatusCode::OK, "the code survived the wrong attempts: {tokens}");
    // Spent now: a replay fails and revokes the session the exchange opened.
    let (status, _) =
        app.post_form("/oauth2/token", Some((&client_id, &secret)), &exchange(REDIRECT)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, introspection) = app
        .post_form(
            "/oauth2/introspect",
            Some((&client_id, &secret)),
            &[("token", tokens["refresh_token"].as_str().unwrap())],
        )
        .await;
    assert_eq!(introspection["active"], false, "{introspection}");
    app.stop().await;
}

/// Finding 8: a request object that does not verify (unsigned, and this client has no keys),
/// a `request_uri` by reference and a response mode other than `query` are refused at the
/// verified redirect URI, not silently ignored; acr_values is not advertised.
async fn request_objects_and_other_response_modes_are_refused(test: TestDatabase) {
    let app = spawn(&test).await;
    app.sign_up("jar@example.com", STRONG_PASSWORD).await;
    let (client_id, _) = app.client(NewClient { skip_consent: true, ..web_app() }).await;
    let mut browser = Browser::new(&app.base_url);
    for (extra, error) in [
        (("request", "eyJhbGciOiJub25lIn0.e30."), "invalid_request_object"),
        (("request_uri", "https://app.example.com/request.jwt"), "request_uri_not_supported"),
        (("response_mode", "form_post"), "invalid_request"),
        (("response_mode", "fragment"), "invalid_request"),
    ] {
        let page = browser.get(&authorize_url(&app, &client_id, &[extra])).await;
        let location =
            page.location.as_deref().unwrap_or_else(|| panic!("{extra:?}: {}", page.body));
        assert!(location.starts_with(REDIRECT), "{location}");
        let answer = query(location);
        assert_eq!(
            (answer["error"].as_str(), answer["state"].as_str()),
            (error, "xyz"),
            "{extra:?}"
        );
    }
    // `response_mode=query` is what the code flow does anyway.
    let callback = browse_to_callback(
        &app,
        &mut browser,
        &authorize_url(&app, &client_id, &[("response_mode", "query")]),
        "jar@example.com",
    )
    .await;
    assert!(callback.contains_key("code"), "{callback:?}");
    app.stop().await;
}

/// Finding 8: an `id_token_hint` of the same user but issued in another browser session (a
/// link sent to the victim, an old token) does not sign this browser out by itself: the
/// person is asked, and only the CSRF-protected confirmation signs out.
async fn a_hint_from_another_browser_session_asks_before_signing_out(test: TestDatabase) {
    let app = spawn(&test).await;
    app.sign_up("twice@example.com", STRONG_PASSWORD).await;
    let signed_out = "https://app.example.com/signed-out";
    let (client_id, secret) = app
        .client(NewClient {
            post_logout_redirect_uris: vec![signed_out.into()],
            skip_consent: true,
            ..web_app()
        })
        .await;
    let secret = secret.unwrap();
    let (_laptop, laptop_tokens) =
        signed_in_with_tokens(&app, &client_id, &secret, "twice@example.com").await;
    let (mut phone, _) =
        signed_in_with_tokens(&app, &client_id, &secret, "twice@example.com").await;
    let mut url = reqwest::Url::parse(&app.url("/oauth2/end_session")).unwrap();
    url.query_pairs_mut()
        .append_pair("id_token_hint", laptop_tokens["id_token"].as_str().unwrap())
        .append_pair("post_logout_redirect_uri", signed_out);
    let confirm = phone.get(url.as_str()).await;
    assert_eq!((confirm.status, confirm.location.as_deref()), (StatusCode::OK, None));
    assert_eq!(phone.get("/account").await.status, StatusCode::OK, "still signed in");
    // A confirmation without the page's CSRF token is refused.
    let forged = phone
        .post(
            "/oauth2/end_session",
            &[("client_id", client_id.as_str()), ("post_logout_redirect_uri", signed_out)],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(phone.get("/account").await.status, StatusCode::OK, "still signed in");
    let csrf = confirm.field("csrf_token").unwrap();
    let hint = confirm.field("id_token_hint").unwrap();
    let done = phone
        .post(
            "/oauth2/end_session",
            &[
                ("csrf_token", csrf.as_str()),
                ("id_token_hint", hint.as_str()),
                ("client_id", ""),
                ("post_logout_redirect_uri", signed_out),
            ],
        )
        .await;
    assert_eq!(done.location.as_deref(), Some(signed_out));
    assert!(phone.get("/account").await.location.unwrap().starts_with("/login"));
    app.stop().await;
}

async fn rp_initiated_logout_never_redirects_anywhere_unregistered(test: TestDatabase) {
    let app = spawn(&test).await;
    app.sign_up("leaver@example.com", STRONG_PASSWORD).await;
    let signed_out = "https://app.example.com/signed-out";
    let (client_id, secret) = app
        .client(NewClient {
            post_logout_redirect_uris: vec![signed_out.into()],
            skip_consent: true,
            ..web_app()
        })
        .await;
    let secret = secret.unwrap();
    let logout_url = |hint: &str, redirect: &str| {
        let mut url = reqwest::Url::parse(&app.url("/oauth2/end_session")).unwrap();
        url.query_pairs_mut()
            .append_pair("id_token_hint", hint)
            .append_pair("post_logout_redirect_uri", redirect)
            .append_pair("state", "bye");
        url.to_string()
    };

    // An unregistered destination is dropped: signed out, but no redirect (no open redirect).
    let (mut browser, tokens) =
        signed_in_with_tokens(&app, &client_id, &secret, "leaver@example.com").await;
    let page = browser
        .get(&logout_url(tokens["id_token"].as_str().unwrap(), "https://evil.example.com/"))
        .await;
    assert_eq!((page.status, page.location.as_deref()), (StatusCode::OK, None));
    let account = browser.get("/account").await;
    assert!(account.location.unwrap().starts_with("/login"), "the browser session ended");

    // A registered destination with a valid hint: signed out at once, back to the app with state.
    let (mut browser, tokens) =
        signed_in_with_tokens(&app, &client_id, &secret, "leaver@example.com").await;
    let page = browser.get(&logout_url(tokens["id_token"].as_str().unwrap(), signed_out)).await;
    assert_eq!(page.location.as_deref(), Some("https://app.example.com/signed-out?state=bye"));
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let (status, _) = app
        .post_form(
            "/oauth2/token",
            Some((&client_id, &secret)),
            &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "the ID token's session ended too");

    // Without a hint the person must confirm: a link alone signs nobody out.
    let (mut browser, _) =
        signed_in_with_tokens(&app, &client_id, &secret, "leaver@example.com").await;
    let confirm = browser
        .get(&format!(
            "/oauth2/end_session?client_id={client_id}&post_logout_redirect_uri={signed_out}"
        ))
        .await;
    assert_eq!(confirm.status, StatusCode::OK);
    assert_eq!(browser.get("/account").await.status, StatusCode::OK, "still signed in");
    let csrf = confirm.field("csrf_token").unwrap();
    let done = browser
        .post(
            "/oauth2/end_session",
            &[
                ("csrf_token", &csrf),
                ("client_id", &client_id),
                ("post_logout_redirect_uri", signed_out),
                ("id_token_hint", ""),
            ],
        )
        .await;
    assert_eq!(done.location.as_deref(), Some(signed_out));
    assert!(browser.get("/account").await.location.unwrap().starts_with("/login"));

    // A forged hint is refused.
    let page = browser.get(&logout_url("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", signed_out)).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    app.stop().await;
}

async fn people_see_and_remove_connected_applications(test: TestDatabase) {
    let app = spawn(&test).await;
    app.sign_up("owner@example.com", STRONG_PASSWORD).await;
    let (client_id, secret) = app.client(web_app()).await;
    let secret = secret.unwrap();
    let (mut browser, tokens) =
        signed_in_with_tokens(&app, &client_id, &secret, "owner@example.com").await;
    let account = browser.get("/account").await;
    assert_eq!(account.status, StatusCode::OK);
    assert!(account.body.contains("Example App"), "{}", account.body);
    let csrf = account.field("csrf_token").unwrap();
    let removed = browser
        .post("/account/applications/revoke", &[("client_id", &client_id), ("csrf_token", &csrf)])
        .await;
    assert_eq!(removed.location.as_deref(), Some("/account"));
    let account = browser.get("/account").await;
    assert!(!account.body.contains("Example App"));
    // The grant ended with the consent...
    let (_, introspection) = app
        .post_form(
            "/oauth2/introspect",
            Some((&client_id, &secret)),
            &[("token", tokens["access_token"].as_str().unwrap())],
        )
        .await;
    assert_eq!(introspection["active"], false);
    // ...and the next authorization asks again.
    let page = browser.get(&authorize_url(&app, &client_id, &[])).await;
    assert!(page.body.contains("name=\"decision\""));
    app.stop().await;
}

/// `GET|DELETE /v1/me/consents`: the same connected applications through the API.
async fn the_consents_api_lists_and_revokes_connected_applications(test: TestDatabase) {
    let app = spawn(&test).await;
    app.sign_up("owner@example.com", STRONG_PASSWORD).await;
    let (client_id, secret) = app.client(web_app()).await;
    let secret = secret.unwrap();
    let (_browser, tokens) =
        signed_in_with_tokens(&app, &client_id, &secret, "owner@example.com").await;
    let (_, signed_in) = app.sign_in("owner@example.com", STRONG_PASSWORD).await;
    let token = signed_in["access_token"].as_str().unwrap().to_owned();

    let (status, list) = app.get_auth("/v1/me/consents", &token).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["next_cursor"], serde_json::Value::Null);
    let data = list["data"].as_array().unwrap();
    assert_eq!(data.len(), 1, "{list}");
    assert_eq!(data[0]["client_id"], client_id.as_str());
    assert_eq!(data[0]["client_name"], "Example App");
    assert!(data[0]["scopes"].as_array().unwrap().iter().any(|scope| scope == "openid"), "{list}");
    assert!(data[0]["granted_at"].as_i64().unwrap() > 0);
    // Another user sees none of it and cannot take it back.
    let other = app.sign_up("other@example.com", STRONG_PASSWORD).await;
    let other_token = other["access_token"].as_str().unwrap();
    let (_, theirs) = app.get_auth("/v1/me/consents", other_token).await;
    assert_eq!(theirs["data"], serde_json::json!([]));
    let path = format!("/v1/me/consents/{client_id}");
    let (status, problem) = app.send(reqwest::Method::DELETE, &path, Some(other_token), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(problem["code"], "not_found");
    // Revoked by its owner: the grant's tokens die, the list is empty, a second DELETE is 404.
    let (status, _) = app.send(reqwest::Method::DELETE, &path, Some(&token), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, introspection) = app
        .post_form(
            "/oauth2/introspect",
            Some((&client_id, &secret)),
            &[("token", tokens["refresh_token"].as_str().unwrap())],
        )
        .await;
    assert_eq!(introspection["active"], false);
    let (_, list) = app.get_auth("/v1/me/consents", &token).await;
    assert_eq!(list["data"], serde_json::json!([]));
    let (status, _) = app.send(reqwest::Method::DELETE, &path, Some(&token), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, log) = app
        .get_auth("/v1/admin/audit-log?action=oauth.consent_revoked", &app.admin_key().await)
        .await;
    assert_eq!(log["data"].as_array().unwrap().len(), 1, "{log}");
    app.stop().await;
}

#[derive(Debug)]
struct HttpError(String);
impl std::fmt::Display for HttpError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.0)
    }
}
impl std::error::Error for HttpError {}

/// The relying party's HTTP client: openidconnect without its own reqwest.
fn rp_http() -> impl Fn(
    openidconnect::HttpRequest,
) -> std::pin::Pin<
    Box<dyn Future<Output = Result<openidconnect::HttpResponse, HttpError>>>,
> {
    let client =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    move |request: openidconnect::HttpRequest| {
        let client = client.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let mut outgoing = client.request(parts.method, parts.uri.to_string()).body(body);
            for (name, value) in &parts.headers {
                outgoing = outgoing.header(name, value);
            }
            let response = outgoing.send().await.map_err(|error| HttpError(error.to_string()))?;
            let mut builder = http::Response::builder().status(response.status());
            for (name, value) in response.headers() {
                builder = builder.header(name, value);
            }
            let bytes = response.bytes().await.map_err(|error| HttpError(error.to_string()))?;
            builder.body(bytes.to_vec()).map_err(|error| HttpError(error.to_string()))
        })
    }
}

async fn spawn(test: &TestDatabase) -> TestApp {
    // RS256, the algorithm every OpenID relying party must support.
    TestApp::spawn_with(test, &MasterKey::generate(), &[("GATEHOUSE_SIGNING_ALGORITHM", "RS256")])
        .await
}

const REDIRECT: &str = "https://app.example.com/callback";

fn web_app() -> NewClient {
    NewClient {
        name: "Example App".into(),
        redirect_uris: vec![REDIRECT.into()],
        ..NewClient::default()
    }
}

/// Drives the browser from an authorization URL to the client's redirect, signing in and
/// consenting on the way. Answers the redirect's query.
async fn browse_to_callback(
    app: &TestApp,
    browser: &mut Browser,
    url: &str,
    email: &str,
) -> std::collections::BTreeMap<String, String> {
    let first = browser.get(url).await;
    let mut page = browser.follow(first).await;
    if page.body.contains("name=\"password\"") {
        page = browser.sign_in(&page, email, STRONG_PASSWORD).await;
    }
    if page.body.contains("name=\"decision\"") {
        page = browser.consent(&page, "allow").await;
    }
    let location =
        page.location.unwrap_or_else(|| panic!("no redirect to the client:\n{}", page.body));
    assert!(
        location.starts_with(REDIRECT) || location.starts_with("http://127.0.0.1"),
        "{location}"
    );
    let _ = app;
    query(&location)
}

async fn openidconnect_relying_party_completes_the_code_flow(test: TestDatabase) {
    let app = spawn(&test).await;
    app.sign_up("rp@example.com", STRONG_PASSWORD).await;
    let (client_id, secret) = app.client(web_app()).await;
    let http = rp_http();
    let metadata =
        CoreProviderMetadata::discover_async(IssuerUrl::new(app.base_url.clone()).unwrap(), &http)
            .await
            .unwrap();
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(client_id.clone()),
        secret.clone().map(ClientSecret::new),
    )
    .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).unwrap())
    .set_introspection_url(IntrospectionUrl::new(app.url("/oauth2/introspect")).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, csrf, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("offline_access".into()))
        .set_pkce_challenge(challenge)
        .url();
    let mut browser = Browser::new(&app.base_url);
    let callback = browse_to_callback(&app, &mut browser, url.as_str(), "rp@example.com").await;
    assert_eq!(callback.get("state"), Some(csrf.secret()));
    assert_eq!(callback.get("iss"), Some(&app.base_url), "RFC 9207 iss");
    let code = callback["code"].clone();

    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .unwrap();
    let id_token = tokens.id_token().expect("an ID token");
    let verifier = client.id_token_verifier();
    let claims = id_token.claims(&verifier, &nonce).unwrap();
    assert_eq!(claims.email().map(|email| email.as_str()), Some("rp@example.com"));
    let expected_hash = AccessTokenHash::from_token(
        tokens.access_token(),
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&verifier).unwrap(),
    )
    .unwrap();
    assert_eq!(claims.access_token_hash(), Some(&expected_hash), "at_hash");
    assert!(claims.auth_time().is_some());

    let userinfo: CoreUserInfoClaims = client
        .user_info(tokens.access_token().clone(), None)
        .unwrap()
        .request_async(&http)
        .await
        .unwrap();
    assert_eq!(userinfo.subject(), claims.subject());
    assert_eq!(userinfo.email().map(|email| email.as_str()), Some("rp@example.com"));

    let introspection =
        client.introspect(tokens.access_token()).request_async(&http).await.unwrap();
    assert!(introspection.active());
    assert_eq!(introspection.client_id().map(|id| id.as_str()), Some(client_id.as_str()));

    // Refresh rotates; the spent token no longer works.
    let refresh_token =
        tokens.refresh_token().expect("offline_access gives a refresh token").clone();
    let refreshed =
        client.exchange_refresh_token(&refresh_token).unwrap().request_async(&http).await.unwrap();
    assert_ne!(refreshed.refresh_token().unwrap().secret(), refresh_token.secret());
    assert!(refreshed.id_token().unwrap().claims(&verifier, |_: Option<&Nonce>| Ok(())).is_ok());
    assert!(
        client.exchange_refresh_token(&refresh_token).unwrap().request_async(&http).await.is_err()
    );

    // First-party API is not open to OAuth access tokens.
    let (status, _) = app.get_auth("/v1/me", refreshed.access_token().secret()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Revoking the (new) refresh token ends the grant; its access token goes inactive.
    // (openidconnect refuses to revoke over plain http, so the RFC 7009 call is made by hand.)
    let secret = secret.unwrap();
    let (status, _) = app
        .post_form(
            "/oauth2/revoke",
            Some((&client_id, &secret)),
            &[("token", refreshed.refresh_token().unwrap().secret())],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let after = client.introspect(refreshed.access_token()).request_async(&http).await.unwrap();
    assert!(!after.active());
    assert!(
        client
            .user_info(refreshed.access_token().clone(), None)
            .unwrap()
            .request_async(&http)
            .await
            .map(|_: CoreUserInfoClaims| ())
            .is_err()
    );
    app.stop().await;
}

/// An authorization URL for a public client, by hand.
fn authorize_url(app: &TestApp, client_id: &str, extra: &[(&str, &str)]) -> String {
    let mut parameters: std::collections::BTreeMap<&str, &str> = [
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", REDIRECT),
        ("scope", "openid"),
        ("state", "xyz"),
    ]
    .into_iter()
    .collect();
    parameters.extend(extra.iter().copied());
    let mut url = reqwest::Url::parse(&app.url("/oauth2/authorize")).unwrap();
    url.query_pairs_mut().extend_pairs(parameters);
    url.to_string()
}

async fn public_clients_need_pkce_s256(test: TestDatabase) {
    let app = spawn(&test).await;
    app.sign_up("spa@example.com", STRONG_PASSWORD).await;
    let (client_id, secret) =
        app.client(NewClient { public: true, skip_consent: true, ..web_app() }).await;
    assert!(secret.is_none());
    let mut browser = Browser::new(&app.base_url);
    let verifier = PkceCodeVerifier::new("a".repeat(50));
    let challenge = gatehouse_crypto::pkce_s256(verifier.secret());
    // Missing PKCE and plain PKCE are reported to the (verified) redirect URI.
    for extra in [
        vec![],
        vec![("code_challenge", verifier.secret().as_str()), ("code_challenge_method", "plain")],
    ] {
        let page = browser.get(&authorize_url(&app, &client_id, &extra)).await;
        let answer = query(page.location.as_deref().unwrap());
        assert_eq!(
            (answer["error"].as_str(), answer["state"].as_str()),
            ("invalid_request", "xyz"),
            "{extra:?}"
        );
        assert_eq!(answer["iss"], app.base_url);
    }
    let url = authorize_url(
        &app,
        &client_id,
        &[("code_challenge", &challenge), ("code_challenge_method", "S256")],
    );
    let callback = browse_to_callback(&app, &mut browser, &url, "spa@example.com").await;
    let form = |verifier: &str| {
        vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", callback["code"].clone()),
            ("redirect_uri", REDIRECT.to_owned()),
            ("client_id", client_id.clone()),
            ("code_verifier", verifier.to_owned()),
        ]
    };
    let wrong: Vec<(&str, String)> = form(&"b".repeat(50));
    let wrong: Vec<(&str, &str)> = wrong.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, body) = app.post_form("/oauth2/token", None, &wrong).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    // For a public client the verifier is its proof of being the client that asked: a wrong
    // one is checked before the code is spent (like another client's credentials), so the
    // app holding the right verifier still gets its tokens; then the code is spent.
    let right: Vec<(&str, String)> = form(verifier.secret());
    let right: Vec<(&str, &str)> = right.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, body) = app.post_form("/oauth2/token", None, &right).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = app.post_form("/oauth2/token", None, &right).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "single use");
    app.stop().await;
}

async fn bad_redirect_uris_are_never_redirected_to(test: TestDatabase) {
    let app = spawn(&test).await;
    let (client_id, _) = app.client(web_app()).await;
    let mut browser = Browser::new(&app.base_url);
    let cases = [
        authorize_url(&app, &client_id, &[]).replace("app.example.com", "evil.example.com"),
        authorize_url(&app, &client_id, &[]).replace("%2Fcallback", "%2Fcallback%2F..%2Fevil"),
        authorize_url(&app, "no-such-client", &[]),
        app.url(
            "/oauth2/authorize?response_type=code&redirect_uri=https%3A%2F%2Fevil.example.com%2F",
        ),
        format!("{}&client_id=again", authorize_url(&app, &client_id, &[])),
    ];
    for url in cases {
        let page = browser.get(&url).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{url}");
        assert!(page.location.is_none(), "{url} redirected to {:?}", page.location);
        assert!(page.body.contains("<h1>"), "an error page");
    }
    // Other errors go back to the verified redirect URI.
    let page = browser
        .get(
            &authorize_url(&app, &client_id, &[])
                .replace("response_type=code", "response_type=token"),
        )
        .await;
    let answer = query(page.location.as_deref().unwrap());
    assert_eq!(answer["error"], "unsupported_response_type");
    app.stop().await;
}

async fn codes_are_single_use_and_bound_to_their_client_and_verifier(test: TestDatabase) {
    let app = spawn(&test).await;
    app.sign_up("codes@example.com", STRONG_PASSWORD).await;
    let (client_id, secret) = app.client(NewClient { skip_consent: true, ..web_app() }).await;
    let (other_id, other_secret) =
        app.client(NewClient { name: "Other".into(), skip_consent: true, ..web_app() }).await;
    let (secret, other_secret) = (secret.unwrap(), other_secret.unwrap());
    let mut browser = Browser::new(&app.base_url);
    let callback = browse_to_callback(
        &app,
        &mut browser,
        &authorize_url(&app, &client_id, &[("scope", "openid offline_access")]),
        "codes@example.com",
    )
    .await;
    let code = callback["code"].as_str();
    let exchange = |redirect: &'static str| {
        [("grant_type", "authorization_code"), ("code", code), ("redirect_uri", redirect)]
    };

    let (status, body) =
        app.post_form("/oauth2/token", Some((&other_id, &other_secret)), &exchange(REDIRECT)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "another client's code"
    );

    let callback = browse_to_callback(
        &app,
        &mut browser,
        &authorize_url(&app, &client_id, &[("scope", "openid offline_access")]),
        "codes@example.com",
    )
    .await;
    let code = callback["code"].as_str();
    let exchange =
        [("grant_type", "authorization_code"), ("code", code), ("redirect_uri", REDIRECT)];
    let (status, tokens) =
        app.post_form("/oauth2/token", Some((&client_id, &secret)), &exchange).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    // Replaying the code fails and revokes what it issued.
    let (status, body) =
        app.post_form("/oauth2/token", Some((&client_id, &secret)), &exchange).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let (status, _) = app
        .post_form(
            "/oauth2/token",
            Some((&client_id, &secret)),
            &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "the replay revoked the first exchange's grant");
    let (_, introspection) = app
        .post_form(
            "/oauth2/introspect",
            Some((&client_id, &secret)),
            &[("token", tokens["access_token"].as_str().unwrap())],
        )
        .await;
    assert_eq!(introspection["active"], false);
    app.stop().await;
}

async fn consent_is_asked_once_and_can_be_denied(test: TestDatabase) {
    let app = spawn(&test).await;
    app.sign_up("consent@example.com", STRONG_PASSWORD).await;
    let (client_id, _) = app.client(web_app()).await;
    let mut browser = Browser::new(&app.base_url);
    let first = browser.get(&authorize_url(&app, &client_id, &[("scope", "openid email")])).await;
    let page = browser.follow(first).await;
    let page = browser.sign_in(&page, "consent@example.com", STRONG_PASSWORD).await;
    assert!(
        page.body.contains("Example App") && page.body.contains("name=\"decision\""),
        "{}",
        page.body
    );
    let denied = browser.consent(&page, "deny").await;
    let answer = query(denied.location.as_deref().unwrap());
    assert_eq!((answer["error"].as_str(), answer["state"].as_str()), ("access_denied", "xyz"));

    let page = browser.get(&authorize_url(&app, &client_id, &[("scope", "openid email")])).await;
    let allowed = browser.consent(&page, "allow").await;
    assert!(query(allowed.location.as_deref().unwrap()).contains_key("code"));
    // Remembered: no consent page the second time, nor for a subset of the scopes...
    for scope in ["openid email", "openid"] {
        let page = browser.get(&authorize_url(&app, &client_id, &[("scope", scope)])).await;
        assert!(query(page.location.as_deref().unwrap()).contains_key("code"), "{scope}");
    }
    // ...but asked again for a new scope, and with prompt=consent.
    for extra in [vec![("scope", "openid profile")], vec![("prompt", "consent")]] {
        let page = browser.get(&authorize_url(&app, &client_id, &extra)).await;
        assert!(page.body.contains("name=\"decision\""), "{extra:?}");
    }
    // A consent POST without the CSRF token is refused.
    let page = browser.post("/consent", &[("request", "client_id=x"), ("decision", "allow")]).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    app.stop().await;
}
