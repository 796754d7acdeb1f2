//! Self-service sign-up through the real router on both backends: the hosted `/signup` page
//! (CSRF, `return_to`, the "check your email" answer that does not tell a registered address,
//! signing the browser in when no verification is required, the password policy's field
//! errors, the sign-up budget shared with the API, French), the links between `/login` and
//! `/signup`, and the `signup.enabled` switch (403 `signup_disabled` for the API and the page,
//! nothing written, admins still create accounts).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/pages_browser.rs"]
mod browser;
mod support;

use browser::{Browser, Page, unescape, urlencode};
use gatehouse_store::backend_tests;
use gatehouse_store::testing::TestDatabase;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::mfa::{Env, spawn};
use support::{OTHER_STRONG_PASSWORD, STRONG_PASSWORD};

backend_tests!(
    the_signup_form_is_accessible_and_linked_from_login,
    with_verification_required_every_address_gets_the_same_answer_and_the_link_works,
    without_verification_the_browser_is_signed_in_and_goes_on_to_return_to,
    a_refused_password_shows_the_form_again_with_the_email_kept,
    signup_posts_need_a_valid_csrf_token,
    the_page_shares_the_api_sign_up_budget,
    signup_switched_off_refuses_the_api_and_the_page_and_writes_nothing,
    the_signup_page_speaks_french,
);

/// GETs `/signup?…`, then submits its form with these fields (plus the hidden ones).
async fn sign_up_page(browser: &mut Browser, query: &str, fields: &[(&str, &str)]) -> Page {
    let form = browser.get(&format!("/signup{query}")).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    let mut all = form.hidden_fields();
    all.extend(fields.iter().map(|(name, value)| (name.to_string(), value.to_string())));
    let all: Vec<(&str, &str)> =
        all.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect();
    browser.post("/signup", &all).await
}

/// The number of accounts with this address, through the admin API.
async fn accounts_with(env: &Env, email: &str) -> usize {
    let path = format!("/v1/admin/users?email={}", urlencode(email));
    let (status, users) = env.app.get_auth(&path, &env.admin).await;
    assert_eq!(status, StatusCode::OK, "{users}");
    users["data"].as_array().unwrap().len()
}

async fn the_signup_form_is_accessible_and_linked_from_login(test: TestDatabase) {
    let env = spawn(&test, &[]).await;
    let mut browser = Browser::new(&env.app);
    let return_to = "/oauth2/authorize?client_id=a&state=b";
    let page = browser.get(&format!("/signup?return_to={}", urlencode(return_to))).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.headers["x-frame-options"], "DENY");
    assert!(
        page.headers["content-security-policy"].to_str().unwrap().starts_with("default-src 'none'")
    );
    assert!(!page.body.contains("<script"));
    for visible in page.inputs().iter().filter(|input| input["type"] != "hidden") {
        assert!(page.body.contains(&format!("<label for=\"{}\">", visible["id"])), "{visible:?}");
    }
    let inputs = page.inputs();
    let password = inputs.iter().find(|input| input["name"] == "password").unwrap();
    assert_eq!(password["autocomplete"], "new-password");
    assert_eq!(page.hidden("return_to").as_deref(), Some(return_to));
    assert_eq!(page.hidden("csrf_token").unwrap().len(), 43);
    // `/signup` leads back to `/login`, keeping where the browser was going, and the other way.
    let to_login = format!("href=\"/login?return_to={}\"", urlencode(return_to));
    assert!(unescape(&page.body).contains(&to_login), "{}", page.body);
    let login = browser.get(&format!("/login?return_to={}", urlencode(return_to))).await;
    let to_signup = format!("href=\"/signup?return_to={}\"", urlencode(return_to));
    assert!(unescape(&login.body).contains(&to_signup), "{}", login.body);
    assert!(login.body.contains("Create an account"));
    // A return_to that leaves the site is replaced.
    let page = browser.get("/signup?return_to=https%3A%2F%2Fevil.example%2F").await;
    assert_eq!(page.hidden("return_to").as_deref(), Some("/account"));
    env.app.stop().await;
}

async fn with_verification_required_every_address_gets_the_same_answer_and_the_link_works(
    test: TestDatabase,
) {
    let env = spawn(&test, &[("GATEHOUSE_REQUIRE_EMAIL_VERIFICATION", "true")]).await;
    let mut browser = Browser::new(&env.app);
    let fields = [("email", "new@example.com"), ("password", STRONG_PASSWORD)];
    let fresh = sign_up_page(&mut browser, "", &fields).await;
    assert_eq!(fresh.status, StatusCode::OK, "{}", fresh.body);
    assert!(fresh.body.contains("Check your email"), "{}", fresh.body);
    assert!(browser.session_cookie().is_none(), "not signed in before verifying");
    // The same address again (the owner now exists): the same page, word for word but the
    // CSRF token's cookie state.
    let mut other = Browser::new(&env.app);
    let fields = [("email", "NEW@example.com"), ("password", OTHER_STRONG_PASSWORD)];
    let taken = sign_up_page(&mut other, "", &fields).await;
    assert_eq!(taken.status, fresh.status);
    let strip = |page: &Page| page.body.replace(&page.hidden("csrf_token").unwrap_or_default(), "");
    assert_eq!(strip(&taken), strip(&fresh));
    assert_eq!(accounts_with(&env, "new@example.com").await, 1);
    env.sink.wait_for_subject("new@example.com", "You already have").await;

    // The verification link from the mail, then sign in on /login.
    let mail = env.sink.wait_for_subject("new@example.com", "Confirm your email").await;
    let link = mail.link_for("/verify-email").unwrap();
    let shown = browser.get(&link).await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.body);
    let fields = shown.hidden_fields();
    let fields: Vec<(&str, &str)> = fields.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let done = browser.post("/verify-email", &fields).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    let signed_in = browser.sign_in("", "new@example.com", STRONG_PASSWORD).await;
    assert_eq!((signed_in.status, signed_in.location()), (StatusCode::SEE_OTHER, "/account"));
    env.app.stop().await;
}

async fn without_verification_the_browser_is_signed_in_and_goes_on_to_return_to(
    test: TestDatabase,
) {
    let env = spawn(&test, &[]).await;
    let mut browser = Browser::new(&env.app);
    let return_to = "/oauth2/authorize?client_id=a&state=b";
    let query = format!("?return_to={}", urlencode(return_to));
    let fields = [
        ("email", "ada@example.com"),
        ("password", STRONG_PASSWORD),
        ("first_name", "Ada"),
        ("last_name", ""),
    ];
    let page = sign_up_page(&mut browser, &query, &fields).await;
    assert_eq!((page.status, page.location()), (StatusCode::SEE_OTHER, return_to), "{}", page.body);
    let cookie = page.set_cookie("gatehouse_session").unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"), "{cookie}");
    let account = browser.get("/account").await;
    assert_eq!(account.status, StatusCode::OK);
    assert!(account.body.contains("Signed in as ada@example.com."), "{}", account.body);
    let (_, users) = env.app.get_auth("/v1/admin/users?email=ada@example.com", &env.admin).await;
    assert_eq!(users["data"][0]["first_name"], "Ada", "{users}");
    assert_eq!(users["data"][0]["last_name"], Value::Null, "{users}");

    // Without verification a taken address cannot be hidden (the API says 409 too).
    let mut other = Browser::new(&env.app);
    let fields = [("email", "ada@example.com"), ("password", OTHER_STRONG_PASSWORD)];
    let taken = sign_up_page(&mut other, "", &fields).await;
    assert_eq!(taken.status, StatusCode::CONFLICT);
    assert!(taken.alert().unwrap().contains("already uses this email"), "{}", taken.body);
    assert!(other.session_cookie().is_none());
    env.app.stop().await;
}

async fn a_refused_password_shows_the_form_again_with_the_email_kept(test: TestDatabase) {
    let env = spawn(&test, &[]).await;
    let mut browser = Browser::new(&env.app);
    let fields = [("email", "weak@example.com"), ("password", "password123")];
    let page = sign_up_page(&mut browser, "", &fields).await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.body.contains("The account could not be created"), "{}", page.body);
    let email = page.inputs().into_iter().find(|input| input["name"] == "email").unwrap();
    assert_eq!(email["value"], "weak@example.com");
    assert!(!page.body.contains("password123"), "the password is never echoed");
    assert!(browser.session_cookie().is_none());
    assert_eq!(accounts_with(&env, "weak@example.com").await, 0);
    // In French, the broken rules are in French too (the page keeps its language).
    let fields = [("email", "court@example.com"), ("password", "x7")];
    let page = sign_up_page(&mut browser, "?lang=fr", &fields).await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.body.contains("doit compter au moins"), "{}", page.body);
    assert!(!page.body.contains("must be at least"), "{}", page.body);
    // A malformed address is a field error too.
    let fields = [("email", "not-an-address"), ("password", STRONG_PASSWORD)];
    let page = sign_up_page(&mut browser, "", &fields).await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.body.contains("<li>"), "{}", page.body);
    env.app.stop().await;
}

async fn signup_posts_need_a_valid_csrf_token(test: TestDatabase) {
    let env = spawn(&test, &[]).await;
    let mut browser = Browser::new(&env.app);
    browser.get("/signup").await;
    let fields =
        [("email", "csrf@example.com"), ("password", STRONG_PASSWORD), ("csrf_token", "forged")];
    let page = browser.post("/signup", &fields).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(browser.session_cookie().is_none());
    assert_eq!(accounts_with(&env, "csrf@example.com").await, 0);
    env.app.stop().await;
}

async fn the_page_shares_the_api_sign_up_budget(test: TestDatabase) {
    let env = spawn(
        &test,
        &[
            ("GATEHOUSE_RATE_LIMIT_ENABLED", "true"),
            ("GATEHOUSE_RATE_LIMIT_SIGN_UP_PER_MINUTE", "1"),
        ],
    )
    .await;
    let body = json!({ "email": "first@example.com", "password": STRONG_PASSWORD });
    assert_eq!(env.app.post("/v1/auth/sign-up", None, body).await.0, StatusCode::CREATED);
    let mut browser = Browser::new(&env.app);
    let fields = [("email", "second@example.com"), ("password", STRONG_PASSWORD)];
    let page = sign_up_page(&mut browser, "", &fields).await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS, "{}", page.body);
    assert!(page.headers.contains_key("retry-after"));
    assert!(page.alert().unwrap().contains("Too many sign-ups"), "{}", page.body);
    assert_eq!(accounts_with(&env, "second@example.com").await, 0);
    env.app.stop().await;
}

async fn signup_switched_off_refuses_the_api_and_the_page_and_writes_nothing(test: TestDatabase) {
    let env = spawn(&test, &[("GATEHOUSE_SIGNUP_ENABLED", "false")]).await;
    let body = json!({ "email": "api@example.com", "password": STRONG_PASSWORD });
    let (status, problem) = env.app.post("/v1/auth/sign-up", None, body).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("signup_disabled"))
    );

    let mut browser = Browser::new(&env.app);
    let page = browser.get("/signup").await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.body.contains("Sign-up is closed"), "{}", page.body);
    assert!(!page.body.contains("<form"), "{}", page.body);
    // A POST made from a form shown before the switch: refused the same way.
    let login = browser.get("/login").await;
    assert!(!login.body.contains("/signup"), "no sign-up link when it is off: {}", login.body);
    let csrf = login.hidden("csrf_token").unwrap();
    let fields =
        [("email", "page@example.com"), ("password", STRONG_PASSWORD), ("csrf_token", &csrf)];
    let page = browser.post("/signup", &fields).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.body.contains("Sign-up is closed"));
    assert!(browser.session_cookie().is_none());
    for email in ["api@example.com", "page@example.com"] {
        assert_eq!(accounts_with(&env, email).await, 0);
    }
    // A passkey-only sign-up is a sign-up too.
    let body = json!({ "email": "passkey@example.com" });
    let (status, problem) = env.app.post("/v1/auth/sign-up/passkey/begin", None, body).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("signup_disabled"))
    );
    assert!(env.sink.messages().is_empty(), "nothing was mailed");

    // Admins still create accounts.
    let body = json!({ "email": "staff@example.com", "password": STRONG_PASSWORD });
    let (status, user) = env.app.post("/v1/admin/users", Some(&env.admin), body).await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    env.app.stop().await;
}

async fn the_signup_page_speaks_french(test: TestDatabase) {
    let env = spawn(&test, &[]).await;
    let mut browser = Browser::new(&env.app);
    browser.accept_language = Some("fr-FR,fr;q=0.9".into());
    let page = browser.get("/signup").await;
    assert!(page.body.contains("<html lang=\"fr\">"));
    assert!(page.body.contains("Créer le compte"), "{}", page.body);
    assert!(page.body.contains("Vous avez déjà un compte"), "{}", page.body);
    let login = browser.get("/login").await;
    assert!(login.body.contains("Créer un compte"), "{}", login.body);
    env.app.stop().await;
}
