//! The passkey parts of the hosted pages through the real router on both backends, with a
//! software authenticator where a ceremony is needed: what the pages offer when passkeys are
//! unavailable (nothing: no button, no script, the script-less CSP) and when they are (the
//! script by hash, autofill on the username field); the page script's endpoints (CSRF header,
//! a passkey sign-in that sets the browser session and goes on to `return_to`); and the
//! `/account` list with its rename and remove forms, which work without JavaScript and need a
//! recent sign-in to remove.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/pages_browser.rs"]
mod browser;
mod support;

use base64::Engine as _;
use browser::{Browser, Page, unescape};
use gatehouse_store::backend_tests;
use gatehouse_store::testing::TestDatabase;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Digest as _;
use support::STRONG_PASSWORD;
use support::mfa::{Env, spawn};
use url::Url;
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_rs_proto::{AllowCredentials, CreationChallengeResponse, RequestChallengeResponse};

const ORIGIN: &str = "http://localhost:9443";
const PASSKEYS: &[(&str, &str)] = &[
    ("GATEHOUSE_PASSKEYS_RP_ID", "localhost"),
    ("GATEHOUSE_PASSKEYS_ORIGINS", "http://localhost:9443"),
];
const EMAIL: &str = "ada@example.com";

backend_tests!(
    unavailable_passkeys_leave_the_pages_without_passkey_ui_or_script,
    available_passkeys_load_the_script_by_hash_and_offer_autofill,
    the_page_script_endpoints_need_the_csrf_header_and_a_passkey_sign_in_sets_the_session,
    account_lists_renames_and_removes_passkeys_with_plain_forms,
);

/// An account with a password and one passkey (registered over the API): the authenticator
/// and the credential id.
async fn account_with_passkey(env: &Env, name: &str) -> (SoftPasskey, String) {
    let token = env.user(EMAIL).await;
    let mut key = SoftPasskey::new(true);
    let (status, begun) =
        env.app.post("/v1/me/passkeys/register/begin", Some(&token), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{begun}");
    let options: CreationChallengeResponse =
        serde_json::from_value(begun["options"].clone()).unwrap();
    let credential = key.do_registration(Url::parse(ORIGIN).unwrap(), options).unwrap();
    let body =
        json!({ "ceremony_id": begun["ceremony_id"], "credential": credential, "name": name });
    let (status, passkey) =
        env.app.post("/v1/me/passkeys/register/finish", Some(&token), body).await;
    assert_eq!(status, StatusCode::CREATED, "{passkey}");
    (key, passkey["credential_id"].as_str().unwrap().to_owned())
}

/// POSTs JSON from the page script: with the page's CSRF token in `x-csrf-token` when given.
async fn script_post(browser: &mut Browser, path: &str, csrf: Option<&str>, body: Value) -> Page {
    let mut request = browser.http.post(format!("{}{path}", browser.base_url)).json(&body);
    if let Some(token) = csrf {
        request = request.header("x-csrf-token", token);
    }
    browser.send(request).await
}

/// The `data-csrf` the page hands its script.
fn script_csrf(page: &Page) -> String {
    let start = page.body.find("data-csrf=\"").unwrap() + "data-csrf=\"".len();
    let end = page.body[start..].find('"').unwrap();
    unescape(&page.body[start..start + end])
}

async fn unavailable_passkeys_leave_the_pages_without_passkey_ui_or_script(test: TestDatabase) {
    // The test server's issuer is an IP address and no RP id is set: passkeys cannot work.
    let ip_issuer = spawn(&test, &[]).await;
    // With an RP id but switched off.
    let off_test = TestDatabase::sqlite().await.unwrap();
    let mut off_settings = PASSKEYS.to_vec();
    off_settings.push(("GATEHOUSE_PASSKEYS_ENABLED", "false"));
    let off = spawn(&off_test, &off_settings).await;
    for env in [&ip_issuer, &off] {
        let mut browser = Browser::new(&env.app);
        for path in ["/login", "/signup"] {
            let page = browser.get(path).await;
            assert_eq!(page.status, StatusCode::OK);
            assert!(!page.body.contains("<script"), "{path}: {}", page.body);
            assert!(!page.body.contains("data-passkey"), "{path}: {}", page.body);
            let csp = page.headers["content-security-policy"].to_str().unwrap();
            assert!(csp.starts_with("default-src 'none'; style-src"), "{path}: {csp}");
            assert!(!csp.contains("script-src"), "{path}: {csp}");
        }
        let login = browser.get("/login").await;
        let identifier = login.inputs().into_iter().find(|i| i["name"] == "identifier").unwrap();
        assert_eq!(identifier["autocomplete"], "username");
        let signed_in = browser.sign_in("", "ada@example.com", STRONG_PASSWORD).await;
        assert_eq!(signed_in.status, StatusCode::UNAUTHORIZED, "no account yet");
        env.app.sign_up(EMAIL, STRONG_PASSWORD).await;
        browser.sign_in("", EMAIL, STRONG_PASSWORD).await;
        let account = browser.get("/account").await;
        assert_eq!(account.status, StatusCode::OK);
        assert!(!account.body.contains("data-passkey"), "{}", account.body);
        assert!(!account.body.contains("<script"));
        // The page script's endpoints answer the API's refusal.
        let csrf = account.hidden("csrf_token").unwrap();
        let begun = script_post(&mut browser, "/login/passkey/begin", Some(&csrf), json!({})).await;
        assert_eq!(begun.status, StatusCode::CONFLICT, "{}", begun.body);
        assert!(begun.body.contains("passkeys_unavailable"), "{}", begun.body);
    }
    ip_issuer.app.stop().await;
    off.app.stop().await;
}

async fn available_passkeys_load_the_script_by_hash_and_offer_autofill(test: TestDatabase) {
    let env = spawn(&test, PASSKEYS).await;
    let mut browser = Browser::new(&env.app);
    let script = env.app.get("/assets/passkeys.js").await;
    assert_eq!(script.status(), StatusCode::OK);
    assert_eq!(script.headers()["content-type"], "text/javascript; charset=utf-8");
    let source = script.bytes().await.unwrap();
    let integrity = format!(
        "sha256-{}",
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&source))
    );
    for path in ["/login", "/signup"] {
        let page = browser.get(path).await;
        let csp = page.headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.starts_with(&format!(
                "default-src 'none'; script-src '{integrity}'; connect-src 'self'; style-src 'self'"
            )),
            "{path}: {csp}"
        );
        let tag = format!("integrity=\"{integrity}\" defer></script>");
        assert!(unescape(&page.body).contains(&tag), "{path}: {}", page.body);
        assert_eq!(page.body.matches("<script").count(), 1, "one script, no inline one");
        assert!(page.body.contains("data-passkey-control hidden"), "hidden until the script runs");
    }
    let login = browser.get("/login").await;
    assert!(login.body.contains("Sign in with a passkey"));
    let identifier = login.inputs().into_iter().find(|i| i["name"] == "identifier").unwrap();
    assert_eq!(identifier["autocomplete"], "username webauthn");
    // Pages that run no ceremony keep the script-less CSP.
    let forgot = browser.get("/forgot-password").await;
    assert!(!forgot.headers["content-security-policy"].to_str().unwrap().contains("script-src"));
    env.app.stop().await;
}

async fn the_page_script_endpoints_need_the_csrf_header_and_a_passkey_sign_in_sets_the_session(
    test: TestDatabase,
) {
    let env = spawn(&test, PASSKEYS).await;
    let (mut key, credential_id) = account_with_passkey(&env, "Laptop").await;
    let mut browser = Browser::new(&env.app);
    let login = browser.get("/login?return_to=%2Foauth2%2Fauthorize%3Fclient_id%3Da").await;
    let csrf = script_csrf(&login);
    assert_eq!(Some(&csrf), login.hidden("csrf_token").as_ref());

    for token in [None, Some("forged")] {
        let refused = script_post(&mut browser, "/login/passkey/begin", token, json!({})).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
        assert!(refused.body.contains("csrf_failed"), "{}", refused.body);
    }
    let begun = script_post(&mut browser, "/login/passkey/begin", Some(&csrf), json!({})).await;
    assert_eq!(begun.status, StatusCode::OK, "{}", begun.body);
    let begun: Value = serde_json::from_str(&begun.body).unwrap();
    let mut options: RequestChallengeResponse =
        serde_json::from_value(begun["options"].clone()).unwrap();
    // Discoverable: no credential listed, the authenticator picks its own (the soft
    // authenticator needs to be told which, as a browser's would know).
    assert!(options.public_key.allow_credentials.is_empty());
    options.public_key.allow_credentials = vec![AllowCredentials {
        type_: "public-key".into(),
        id: base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&credential_id).unwrap(),
        transports: None,
    }];
    let assertion = key.do_authentication(Url::parse(ORIGIN).unwrap(), options).unwrap();
    let finish = json!({
        "ceremony_id": begun["ceremony_id"],
        "credential": assertion,
        "return_to": "/oauth2/authorize?client_id=a",
    });
    let unprotected =
        script_post(&mut browser, "/login/passkey/finish", None, finish.clone()).await;
    assert_eq!(unprotected.status, StatusCode::FORBIDDEN);
    assert!(browser.session_cookie().is_none());
    let done =
        script_post(&mut browser, "/login/passkey/finish", Some(&csrf), finish.clone()).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert_eq!(
        serde_json::from_str::<Value>(&done.body).unwrap(),
        json!({ "redirect_to": "/oauth2/authorize?client_id=a" })
    );
    let cookie = done.set_cookie("gatehouse_session").unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"), "{cookie}");
    let account = browser.get("/account").await;
    assert_eq!(account.status, StatusCode::OK);
    assert!(account.body.contains("Signed in as ada@example.com."), "{}", account.body);
    // A passkey sign-in is not offered another passkey; the ceremony cannot be used twice.
    assert!(!account.body.contains("Sign in faster next time"));
    let again = script_post(&mut browser, "/login/passkey/finish", Some(&csrf), finish).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST, "{}", again.body);
    assert!(again.body.contains("passkey_ceremony_invalid"), "{}", again.body);
    env.app.stop().await;
}

async fn account_lists_renames_and_removes_passkeys_with_plain_forms(test: TestDatabase) {
    let env = spawn(&test, PASSKEYS).await;
    account_with_passkey(&env, "Laptop").await;
    let mut browser = Browser::new(&env.app);
    let signed_in = browser.sign_in("", EMAIL, STRONG_PASSWORD).await;
    assert_eq!(signed_in.status, StatusCode::SEE_OTHER);
    let account = browser.get("/account").await;
    assert!(account.body.contains("<strong>Laptop</strong> · on one device"), "{}", account.body);
    assert!(account.body.contains("never used"), "{}", account.body);
    assert!(!account.body.contains("Sign in faster next time"), "it has a passkey already");
    let passkey_id = account
        .inputs()
        .into_iter()
        .find(|input| input["name"] == "passkey_id")
        .map(|input| input["value"].clone())
        .unwrap();
    let csrf = account.hidden("csrf_token").unwrap();

    // Rename: a form, no script.
    let fields =
        [("csrf_token", csrf.as_str()), ("passkey_id", &passkey_id), ("name", "Work laptop")];
    let renamed = browser.post("/account/passkeys/rename", &fields).await;
    assert_eq!((renamed.status, renamed.location()), (StatusCode::SEE_OTHER, "/account#passkeys"));
    let account = browser.get("/account").await;
    assert!(account.body.contains("<strong>Work laptop</strong>"), "{}", account.body);
    let long = "x".repeat(65);
    let fields = [("csrf_token", csrf.as_str()), ("passkey_id", &passkey_id), ("name", &long)];
    let refused = browser.post("/account/passkeys/rename", &fields).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", refused.body);
    assert!(refused.alert().unwrap().contains("1 to 64 characters"), "{}", refused.body);
    let fields = [("passkey_id", passkey_id.as_str()), ("name", "No token")];
    assert_eq!(
        browser.post("/account/passkeys/rename", &fields).await.status,
        StatusCode::FORBIDDEN
    );
    let fields = [("csrf_token", csrf.as_str()), ("passkey_id", "pk_unknown"), ("name", "Other")];
    let unknown = browser.post("/account/passkeys/rename", &fields).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.body);

    // Removing needs a recent sign-in: a stale one is told to sign in again.
    env.clock.advance(600);
    let fields = [("csrf_token", csrf.as_str()), ("passkey_id", passkey_id.as_str())];
    let stale = browser.post("/account/passkeys/remove", &fields).await;
    assert_eq!(stale.status, StatusCode::FORBIDDEN, "{}", stale.body);
    assert!(stale.alert().unwrap().contains("needs a recent sign-in"), "{}", stale.body);
    assert!(stale.body.contains("<strong>Work laptop</strong>"));
    let again = browser.sign_in("?prompt=login", EMAIL, STRONG_PASSWORD).await;
    assert_eq!(again.status, StatusCode::SEE_OTHER);
    let csrf = browser.get("/account").await.hidden("csrf_token").unwrap();
    let fields = [("csrf_token", csrf.as_str()), ("passkey_id", passkey_id.as_str())];
    let removed = browser.post("/account/passkeys/remove", &fields).await;
    assert_eq!((removed.status, removed.location()), (StatusCode::SEE_OTHER, "/account#passkeys"));
    let account = browser.get("/account").await;
    assert!(!account.body.contains("Work laptop"), "{}", account.body);
    assert!(account.body.contains("No passkey yet"));
    // Signed in with a password and no passkey left: offered one.
    assert!(account.body.contains("Sign in faster next time"), "{}", account.body);
    env.app.stop().await;
}
