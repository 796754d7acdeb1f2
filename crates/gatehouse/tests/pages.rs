//! The hosted pages driven like a browser on both backends: `/login` (CSRF, cookies,
//! `return_to`, failures, rate limits, languages), `/logout`, the `/account` page, and
//! the pages' security headers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/pages_browser.rs"]
mod browser;
mod support;

use browser::{Browser, Page, urlencode};
use gatehouse_crypto::MasterKey;
use gatehouse_store::backend_tests;
use gatehouse_store::testing::TestDatabase;
use reqwest::StatusCode;
use serde_json::json;
use support::{STRONG_PASSWORD, TestApp};

backend_tests!(
    the_login_form_is_accessible_and_carries_a_csrf_token,
    signing_in_sets_the_session_cookie_and_goes_on_to_return_to,
    wrong_password_and_unknown_account_get_the_same_answer,
    a_locked_sign_in_reads_as_a_wrong_password_and_suspension_has_its_own_status,
    the_page_shares_the_api_sign_in_rate_limit,
    posts_without_a_valid_csrf_token_are_refused,
    return_to_never_leaves_the_site,
    pages_speak_french_when_asked,
    signing_out_needs_a_post_and_ends_the_session,
    a_tampered_session_cookie_is_ignored,
    an_https_issuer_gives_host_prefixed_secure_cookies,
);

const PAGE_CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' https: data:; frame-ancestors 'none'; base-uri 'none'";

async fn spawn_with_user(test: &TestDatabase, extra: &[(&str, &str)]) -> TestApp {
    let app = TestApp::spawn_with(test, &MasterKey::generate(), extra).await;
    let (status, body) = app
        .post(
            "/v1/auth/sign-up",
            None,
            json!({ "email": "ada@example.com", "password": STRONG_PASSWORD, "username": "ada" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    app
}

fn assert_page_headers(page: &Page) {
    assert_eq!(page.headers["content-security-policy"], PAGE_CSP);
    assert_eq!(page.headers["x-frame-options"], "DENY");
    assert_eq!(page.headers["cache-control"], "no-store");
}

async fn the_login_form_is_accessible_and_carries_a_csrf_token(test: TestDatabase) {
    let app = TestApp::spawn(&test).await;
    let mut browser = Browser::new(&app);
    let page =
        browser.get("/login?return_to=%2Foauth2%2Fauthorize%3Fclient_id%3Da%26state%3Db").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.headers["content-type"], "text/html; charset=utf-8");
    assert_page_headers(&page);
    assert!(page.body.contains("<html lang=\"en\">"));
    assert!(
        page.body.contains("<label for=\"identifier\">Email or username</label>"),
        "{}",
        page.body
    );
    assert!(page.body.contains("<label for=\"password\">Password</label>"));
    assert!(page.body.contains("<button type=\"submit\""));
    assert!(!page.body.contains("<script"));
    let inputs = page.inputs();
    for visible in inputs.iter().filter(|input| input["type"] != "hidden") {
        assert!(page.body.contains(&format!("<label for=\"{}\">", visible["id"])), "{visible:?}");
    }
    assert_eq!(page.hidden("return_to").as_deref(), Some("/oauth2/authorize?client_id=a&state=b"));
    let token = page.hidden("csrf_token").unwrap();
    assert_eq!(token.len(), 43);
    let cookie = page.set_cookie("gatehouse_csrf").unwrap();
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && cookie.contains("Path=/")
    );

    // A returning browser keeps its cookie, and so its token.
    let again = browser.get("/login").await;
    assert!(again.set_cookie("gatehouse_csrf").is_none());
    assert_eq!(again.hidden("csrf_token"), Some(token));
    assert_eq!(again.hidden("return_to").as_deref(), Some("/account"));

    let stylesheet = app.get("/assets/gatehouse.css").await;
    assert_eq!(stylesheet.status(), StatusCode::OK);
    assert_eq!(stylesheet.headers()["content-type"], "text/css; charset=utf-8");
    assert!(stylesheet.headers()["cache-control"].to_str().unwrap().starts_with("public"));
    assert!(stylesheet.text().await.unwrap().contains("--gh-primary: #2f5bea;"));
    app.stop().await;
}

async fn signing_in_sets_the_session_cookie_and_goes_on_to_return_to(test: TestDatabase) {
    let app = spawn_with_user(&test, &[]).await;
    let mut browser = Browser::new(&app);
    let return_to = "/oauth2/authorize?client_id=a&redirect_uri=https%3A%2F%2Fapp.example%2Fcb";
    let query = format!("?return_to={}", urlencode(return_to));
    let page = browser.sign_in(&query, "Ada@Example.com", STRONG_PASSWORD).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location(), return_to);
    let cookie = page.set_cookie("gatehouse_session").unwrap();
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=2592000"] {
        assert!(cookie.contains(attribute), "{attribute} missing from {cookie}");
    }
    assert!(!cookie.contains("Secure"), "an http issuer cannot set Secure cookies");

    // Signed in: the form is skipped, straight on to return_to.
    let page = browser.get("/login?return_to=%2Fconsent%3Fx%3D1").await;
    assert_eq!((page.status, page.location()), (StatusCode::SEE_OTHER, "/consent?x=1"));
    // ... unless a fresh sign-in is asked for.
    let page = browser.get("/login?prompt=login&return_to=%2Fconsent").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("already signed in as ada@example.com"), "{}", page.body);

    let account = browser.get("/account").await;
    assert_eq!(account.status, StatusCode::OK);
    assert_page_headers(&account);
    assert!(account.body.contains("Signed in as ada@example.com."), "{}", account.body);

    // By username too; signing in again replaces (and ends) the previous browser session.
    let first_cookie = browser.session_cookie().cloned().unwrap();
    let page = browser.sign_in("?prompt=login", "ADA", STRONG_PASSWORD).await;
    assert_eq!((page.status, page.location()), (StatusCode::SEE_OTHER, "/account"));
    assert_ne!(browser.session_cookie(), Some(&first_cookie));
    let mut old = Browser::new(&app);
    old.cookies.insert("gatehouse_session".into(), first_cookie);
    assert_eq!(old.get("/account").await.status, StatusCode::SEE_OTHER);
    app.stop().await;
}

async fn wrong_password_and_unknown_account_get_the_same_answer(test: TestDatabase) {
    let app = spawn_with_user(&test, &[]).await;
    let mut browser = Browser::new(&app);
    let wrong_password = "Not-the-password-42!";
    let wrong = browser.sign_in("", "ada@example.com", wrong_password).await;
    let unknown = browser.sign_in("", "nobody@example.com", wrong_password).await;
    let unknown_name = browser.sign_in("", "nobody", wrong_password).await;
    for (page, identifier) in
        [(&wrong, "ada@example.com"), (&unknown, "nobody@example.com"), (&unknown_name, "nobody")]
    {
        assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{}", page.body);
        assert_page_headers(page);
        assert!(!page.body.contains(wrong_password), "the password is never echoed");
        assert!(page.set_cookie("gatehouse_session").is_none());
        let identifier_input =
            page.inputs().into_iter().find(|input| input["name"] == "identifier");
        assert_eq!(identifier_input.unwrap()["value"], identifier, "the identifier is kept");
        let password_input = page.inputs().into_iter().find(|input| input["name"] == "password");
        assert!(!password_input.unwrap().contains_key("value"));
    }
    assert_eq!(wrong.alert(), unknown.alert());
    assert_eq!(wrong.alert(), unknown_name.alert());
    assert_eq!(wrong.alert().as_deref(), Some("The email, username or password is not correct."));
    assert!(browser.session_cookie().is_none());
    app.stop().await;
}

async fn a_locked_sign_in_reads_as_a_wrong_password_and_suspension_has_its_own_status(
    test: TestDatabase,
) {
    let app = spawn_with_user(&test, &[("GATEHOUSE_LOCKOUT_THRESHOLD", "2")]).await;
    let mut browser = Browser::new(&app);
    for _ in 0..2 {
        let page = browser.sign_in("", "ada", "Wrong-password-123!").await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    }
    // Locked: the right password reads exactly as a wrong one (the owner is told by email).
    let wrong = browser.sign_in("", "ada", "Wrong-password-123!").await;
    let locked = browser.sign_in("", "ada", STRONG_PASSWORD).await;
    assert_eq!(locked.status, StatusCode::UNAUTHORIZED, "{}", locked.body);
    assert!(!locked.headers.contains_key("retry-after"));
    assert_eq!(locked.alert(), wrong.alert());
    assert!(!locked.body.contains("locked"), "{}", locked.body);

    // Suspension: only told with the right password; an open browser session stops at once.
    let (_, other) = app
        .post(
            "/v1/auth/sign-up",
            None,
            json!({ "email": "bob@example.com", "password": STRONG_PASSWORD }),
        )
        .await;
    let page = browser.sign_in("", "bob@example.com", STRONG_PASSWORD).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let key = app.admin_key().await;
    let user_id = other["user"]["id"].as_str().unwrap();
    let (status, _) =
        app.post(&format!("/v1/admin/users/{user_id}/suspend"), Some(&key), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(browser.get("/account").await.location(), "/login?return_to=%2Faccount");
    let suspended = browser.sign_in("", "bob@example.com", STRONG_PASSWORD).await;
    assert_eq!(suspended.status, StatusCode::FORBIDDEN, "{}", suspended.body);
    assert!(suspended.alert().unwrap().contains("suspended"));
    app.stop().await;
}

async fn the_page_shares_the_api_sign_in_rate_limit(test: TestDatabase) {
    let limits = [
        ("GATEHOUSE_RATE_LIMIT_ENABLED", "true"),
        ("GATEHOUSE_RATE_LIMIT_SIGN_IN_PER_MINUTE", "2"),
    ];
    let app = spawn_with_user(&test, &limits).await;
    let mut browser = Browser::new(&app);
    let wrong = "Wrong-password-123!";
    assert_eq!(app.sign_in("ada@example.com", wrong).await.0, StatusCode::UNAUTHORIZED);
    let page = browser.sign_in("", "ada", wrong).await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    let page = browser.sign_in("", "ada", STRONG_PASSWORD).await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS, "{}", page.body);
    assert!(page.headers["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    // Every 429 carries the RateLimit-* headers of the budget it spent (#19).
    assert_eq!(page.headers["ratelimit-limit"], "2");
    assert_eq!(page.headers["ratelimit-remaining"], "0");
    assert!(page.headers["ratelimit-reset"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    assert!(page.alert().unwrap().contains("Too many sign-in attempts"));
    assert!(browser.session_cookie().is_none());
    // Showing the form is not limited.
    assert_eq!(browser.get("/login").await.status, StatusCode::OK);
    app.stop().await;
}

async fn posts_without_a_valid_csrf_token_are_refused(test: TestDatabase) {
    let app = spawn_with_user(&test, &[]).await;
    let mut browser = Browser::new(&app);
    let form = browser.get("/login").await;
    let token = form.hidden("csrf_token").unwrap();
    let credentials = [("identifier", "ada"), ("password", STRONG_PASSWORD)];

    let missing = browser.post("/login", &credentials).await;
    let mut wrong_token: Vec<(&str, &str)> = credentials.to_vec();
    wrong_token.push(("csrf_token", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
    let wrong = browser.post("/login", &wrong_token).await;
    // The right token from a browser without the cookie (a cross-site form cannot send it).
    let mut cookieless = Browser::new(&app);
    let mut with_token: Vec<(&str, &str)> = credentials.to_vec();
    with_token.push(("csrf_token", &token));
    let stolen = cookieless.post("/login", &with_token).await;
    // Another browser's cookie with this browser's token.
    let mut other = Browser::new(&app);
    other.get("/login").await;
    let mismatched = other.post("/login", &with_token).await;
    for page in [&missing, &wrong, &stolen, &mismatched] {
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
        assert_page_headers(page);
        assert!(page.body.contains("This form has expired"));
        assert!(page.set_cookie("gatehouse_session").is_none());
    }
    assert!(browser.session_cookie().is_none() && cookieless.session_cookie().is_none());

    let logout = browser.post("/logout", &[]).await;
    assert_eq!(logout.status, StatusCode::FORBIDDEN);
    // Not a form at all, or a malformed one: 4xx pages, never 5xx.
    let json =
        browser.send(app.http.post(app.url("/login")).json(&json!({ "identifier": "ada" }))).await;
    assert_eq!(json.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let duplicated = browser
        .send(
            app.http
                .post(app.url("/login"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("csrf_token={token}&csrf_token={token}")),
        )
        .await;
    assert_eq!(duplicated.status, StatusCode::BAD_REQUEST);
    assert_eq!(browser.get("/login?return_to=a&return_to=b").await.status, StatusCode::BAD_REQUEST);

    // With the token, the same browser signs in.
    let page = browser.sign_in("", "ada", STRONG_PASSWORD).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    app.stop().await;
}

async fn return_to_never_leaves_the_site(test: TestDatabase) {
    let app = spawn_with_user(&test, &[]).await;
    for evil in
        ["https://evil.example/", "//evil.example", "/\\evil.example", "javascript:alert(1)"]
    {
        let mut browser = Browser::new(&app);
        let query = format!("?return_to={}", urlencode(evil));
        let form = browser.get(&format!("/login{query}")).await;
        assert_eq!(form.hidden("return_to").as_deref(), Some("/account"), "{evil}");
        // Even a hand-made form post with the evil value is not followed.
        let token = form.hidden("csrf_token").unwrap();
        let page = browser
            .post(
                "/login",
                &[
                    ("csrf_token", &token),
                    ("identifier", "ada"),
                    ("password", STRONG_PASSWORD),
                    ("return_to", evil),
                ],
            )
            .await;
        assert_eq!((page.status, page.location()), (StatusCode::SEE_OTHER, "/account"), "{evil}");
        let page = browser.get(&format!("/login{query}")).await;
        assert_eq!((page.status, page.location()), (StatusCode::SEE_OTHER, "/account"), "{evil}");
    }
    app.stop().await;
}

async fn pages_speak_french_when_asked(test: TestDatabase) {
    let app = spawn_with_user(&test, &[]).await;
    let mut browser = Browser::new(&app);
    browser.accept_language = Some("fr-FR,fr;q=0.9".into());
    let page = browser.get("/login").await;
    assert!(page.body.contains("<html lang=\"fr\">"));
    assert!(page.body.contains("<label for=\"password\">Mot de passe</label>"), "{}", page.body);
    let wrong = browser.sign_in("", "ada", "Pas-le-bon-mot-de-passe-1!").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.alert().unwrap().contains("incorrect"), "{}", wrong.body);

    let mut english = Browser::new(&app);
    english.accept_language = Some("en-GB,en;q=0.9,fr;q=0.8".into());
    assert!(english.get("/login").await.body.contains("<html lang=\"en\">"));
    // `lang` wins over Accept-Language and is kept through the form post.
    let page = english.get("/login?lang=fr").await;
    assert!(page.body.contains("Se connecter"));
    assert_eq!(page.hidden("lang").as_deref(), Some("fr"));
    let wrong = english.sign_in("?lang=fr", "ada", "Pas-le-bon-mot-de-passe-1!").await;
    assert!(wrong.body.contains("<html lang=\"fr\">"));
    // OpenID Connect's ui_locales: the first supported entry.
    assert!(english.get("/login?ui_locales=de-DE%20fr").await.body.contains("<html lang=\"fr\">"));
    // The CSRF refusal page is localised too.
    let refused = browser.post("/login", &[("identifier", "ada")]).await;
    assert!(refused.body.contains("Ce formulaire a expiré"), "{}", refused.body);
    app.stop().await;
}

async fn signing_out_needs_a_post_and_ends_the_session(test: TestDatabase) {
    let app = spawn_with_user(&test, &[]).await;
    let mut browser = Browser::new(&app);
    assert_eq!(browser.get("/logout").await.location(), "/login", "nobody to sign out");
    browser.sign_in("", "ada", STRONG_PASSWORD).await;
    let session_cookie = browser.session_cookie().cloned().unwrap();

    let confirm = browser.get("/logout").await;
    assert_eq!(confirm.status, StatusCode::OK);
    assert_page_headers(&confirm);
    assert!(confirm.body.contains("Sign out of Gatehouse?"), "{}", confirm.body);
    assert!(confirm.body.contains("<form method=\"post\" action=\"/logout\""));
    assert_eq!(browser.get("/account").await.status, StatusCode::OK, "a GET signs nobody out");

    let token = confirm.hidden("csrf_token").unwrap();
    let page = browser.post("/logout", &[("csrf_token", &token)]).await;
    assert_eq!((page.status, page.location()), (StatusCode::SEE_OTHER, "/login"));
    let cleared = page.set_cookie("gatehouse_session").unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    assert!(browser.session_cookie().is_none());

    // The old cookie names a revoked session now.
    let mut replay = Browser::new(&app);
    replay.cookies.insert("gatehouse_session".into(), session_cookie);
    let page = replay.get("/account").await;
    assert_eq!(
        (page.status, page.location()),
        (StatusCode::SEE_OTHER, "/login?return_to=%2Faccount")
    );
    assert_eq!(replay.get("/login").await.status, StatusCode::OK);
    app.stop().await;
}

async fn a_tampered_session_cookie_is_ignored(test: TestDatabase) {
    let app = spawn_with_user(&test, &[]).await;
    let mut browser = Browser::new(&app);
    browser.sign_in("", "ada", STRONG_PASSWORD).await;
    let genuine = browser.session_cookie().cloned().unwrap();
    assert_eq!(browser.get("/account").await.status, StatusCode::OK);
    let (session_id, signature) = genuine.rsplit_once('.').unwrap();
    let flipped =
        format!("{}{}", &signature[..42], if signature.ends_with('A') { 'B' } else { 'A' });
    let other_session = format!("ses_{}", "0".repeat(32));
    for forged in [
        format!("{session_id}.{flipped}"),
        format!("{other_session}.{signature}"),
        session_id.to_owned(),
        format!("{session_id}."),
        "garbage".to_owned(),
    ] {
        let mut attacker = Browser::new(&app);
        attacker.cookies.insert("gatehouse_session".into(), forged.clone());
        let page = attacker.get("/account").await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{forged}");
        assert_eq!(attacker.get("/login").await.status, StatusCode::OK, "{forged}");
    }
    app.stop().await;
}

async fn an_https_issuer_gives_host_prefixed_secure_cookies(test: TestDatabase) {
    let app = TestApp::spawn_with(
        &test,
        &MasterKey::generate(),
        &[("GATEHOUSE_ISSUER", "https://id.example.test")],
    )
    .await;
    app.sign_up("ada@example.com", STRONG_PASSWORD).await;
    let mut browser = Browser::new(&app);
    let page = browser.get("/login").await;
    let csrf = page.set_cookie("__Host-gatehouse_csrf").unwrap();
    assert!(csrf.contains("; Secure"), "{csrf}");
    let page = browser.sign_in("", "ada@example.com", STRONG_PASSWORD).await;
    let cookie = page.set_cookie("__Host-gatehouse_session").unwrap();
    assert!(cookie.contains("; Secure") && cookie.contains("Path=/") && !cookie.contains("Domain"));
    assert_eq!(browser.get("/account").await.status, StatusCode::OK);
    app.stop().await;
}
