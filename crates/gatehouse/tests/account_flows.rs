//! The account flows #19 hardened, through the real router on both backends, with the mail
//! followed from a real SMTP sink: a first proof of an unverified address by a magic or reset
//! link undoes what was set before it (pre-account takeover), sign-up does not tell whether an
//! address is registered when verification is required, a reset or a password change spends
//! every outstanding link, and an idle browser session must sign in again.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/pages_browser.rs"]
mod browser;
mod support;

use browser::Browser;
use gatehouse_store::backend_tests;
use gatehouse_store::testing::TestDatabase;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::mfa::{Env, spawn};
use support::{OTHER_STRONG_PASSWORD, STRONG_PASSWORD};

backend_tests!(
    a_magic_link_to_an_unverified_address_undoes_what_was_set_before,
    an_owner_who_verifies_keeps_password_and_factors,
    a_reset_of_an_unverified_account_removes_earlier_sessions_and_factors,
    resets_and_password_changes_spend_every_outstanding_link,
    sign_up_with_verification_required_answers_alike_for_every_address,
    sign_up_without_verification_still_answers_email_taken,
    idle_browser_sessions_must_sign_in_again,
);

const VICTIM: &str = "victim@example.com";

/// The attacker's set-up: signs up with the victim's address (verification is off), enrols
/// TOTP; answers the sign-up's tokens.
async fn attacker_prepares(env: &Env) -> Value {
    let tokens = env.app.sign_up(VICTIM, STRONG_PASSWORD).await;
    env.enrol_totp(tokens["access_token"].as_str().unwrap()).await;
    let (status, mfa) =
        env.app.get_auth("/v1/me/mfa", tokens["access_token"].as_str().unwrap()).await;
    assert_eq!((status, &mfa["enabled"]), (StatusCode::OK, &json!(true)), "{mfa}");
    tokens
}

/// The attacker's tokens no longer work: the access token, and its refresh token.
async fn attacker_is_out(env: &Env, attacker: &Value) {
    let (status, _) = env.app.get_auth("/v1/me", attacker["access_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the attacker's session is revoked");
    let (status, _) = env
        .app
        .post("/v1/auth/refresh", None, json!({ "refresh_token": attacker["refresh_token"] }))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the attacker's refresh token is dead");
}

async fn follow_magic_link(env: &Env, email: &str) -> (StatusCode, Value) {
    let (status, _) = env.app.post("/v1/auth/magic-link", None, json!({ "email": email })).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let mail = env.sink.wait_for_subject(email, "sign-in link").await;
    let token = mail.token_for("/magic-link").unwrap();
    env.app.post("/v1/auth/magic-link/verify", None, json!({ "token": token })).await
}

/// Regression (#19, finding 6): an attacker signs up with the victim's address and sets a
/// password and TOTP; the victim signs in by magic link. Before, the victim got the attacker's
/// second step and the attacker kept their session, password and factor; now the link's
/// transaction revokes every earlier session, clears the password and the factors, and the
/// owner is told.
async fn a_magic_link_to_an_unverified_address_undoes_what_was_set_before(test: TestDatabase) {
    let env = spawn(&test, &[("GATEHOUSE_MAGIC_LINK_ENABLED", "true")]).await;
    let attacker = attacker_prepares(&env).await;

    let (status, victim) = follow_magic_link(&env, VICTIM).await;
    assert_eq!(status, StatusCode::OK, "{victim}");
    assert!(victim.get("mfa_required").is_none(), "not asked for the attacker's TOTP: {victim}");
    let victim_token = victim["access_token"].as_str().unwrap();
    assert_eq!(victim["user"]["email_verified"], true);

    attacker_is_out(&env, &attacker).await;
    let (status, problem) = env.app.sign_in(VICTIM, STRONG_PASSWORD).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_credentials")),
        "the attacker's password is gone"
    );
    let (status, mfa) = env.app.get_auth("/v1/me/mfa", victim_token).await;
    assert_eq!(status, StatusCode::OK, "{mfa}");
    assert_eq!((&mfa["enabled"], &mfa["factors"]), (&json!(false), &json!([])), "{mfa}");
    assert_eq!(mfa["backup_codes_remaining"], 0, "{mfa}");
    // The victim's own session stays, and is the only one.
    let (status, sessions) = env.app.get_auth("/v1/me/sessions", victim_token).await;
    assert_eq!(status, StatusCode::OK, "{sessions}");
    assert_eq!(sessions["data"].as_array().unwrap().len(), 1, "{sessions}");

    let notice = env.sink.wait_for_subject(VICTIM, "account was secured").await;
    assert!(notice.text().contains("two-step verification was removed"), "{}", notice.text());
    assert_eq!(env.audit_reasons("user.mailbox_claimed").await.len(), 1);
    env.app.stop().await;
}

/// The other side of finding 6: whoever follows the verification link (sent at sign-up) both
/// set the password and holds the mailbox, so they keep their password and factors; and once
/// verified, a magic link is one factor of many again (the second step is asked).
async fn an_owner_who_verifies_keeps_password_and_factors(test: TestDatabase) {
    let env = spawn(&test, &[("GATEHOUSE_MAGIC_LINK_ENABLED", "true")]).await;
    let owner = attacker_prepares(&env).await;
    let mail = env.sink.wait_for_subject(VICTIM, "Confirm your email").await;
    let verify = json!({ "token": mail.token_for("/verify-email").unwrap() });
    assert_eq!(env.app.post("/v1/auth/email/verify", None, verify).await.0, StatusCode::NO_CONTENT);

    let (status, me) = env.app.get_auth("/v1/me", owner["access_token"].as_str().unwrap()).await;
    assert_eq!((status, &me["email_verified"]), (StatusCode::OK, &json!(true)), "{me}");
    assert_eq!(env.challenge(VICTIM).await["mfa_required"], true, "password and TOTP kept");
    let (status, challenge) = follow_magic_link(&env, VICTIM).await;
    assert_eq!((status, &challenge["mfa_required"]), (StatusCode::OK, &json!(true)), "{challenge}");
    let (status, _) = env.app.get_auth("/v1/me", owner["access_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "the owner's session was not revoked");
    assert!(env.audit_reasons("user.mailbox_claimed").await.is_empty());
    assert!(env.sink.messages_to(VICTIM).iter().all(|m| !m.subject().contains("secured")));
    env.app.stop().await;
}

/// Finding 6 through a reset link: the new password replaces the attacker's, and their
/// sessions and TOTP go too (before, the TOTP stayed and guarded the account for the attacker).
async fn a_reset_of_an_unverified_account_removes_earlier_sessions_and_factors(test: TestDatabase) {
    let env = spawn(&test, &[]).await;
    let attacker = attacker_prepares(&env).await;
    let (status, _) =
        env.app.post("/v1/auth/password/forgot", None, json!({ "email": VICTIM })).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let mail = env.sink.wait_for_subject(VICTIM, "Reset your").await;
    let reset = json!({ "token": mail.token_for("/reset-password").unwrap(), "new_password": OTHER_STRONG_PASSWORD });
    let (status, body) = env.app.post("/v1/auth/password/reset", None, reset).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");

    attacker_is_out(&env, &attacker).await;
    let (status, tokens) = env.app.sign_in(VICTIM, OTHER_STRONG_PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert!(tokens.get("mfa_required").is_none(), "the attacker's TOTP is gone: {tokens}");
    assert_eq!(env.app.sign_in(VICTIM, STRONG_PASSWORD).await.0, StatusCode::UNAUTHORIZED);
    env.sink.wait_for_subject(VICTIM, "account was secured").await;
    env.app.stop().await;
}

/// Regression (#19, finding 8): a reset spends every outstanding reset and magic link of the
/// account (before, a second reset email still worked after the first was used), and so does
/// a password change.
async fn resets_and_password_changes_spend_every_outstanding_link(test: TestDatabase) {
    let env = spawn(&test, &[("GATEHOUSE_MAGIC_LINK_ENABLED", "true")]).await;
    let email = "links@example.com";
    let token = env.user(email).await;
    // Verified, so these flows are plain resets (no mailbox claim).
    let mail = env.sink.wait_for_subject(email, "Confirm your email").await;
    let verify = json!({ "token": mail.token_for("/verify-email").unwrap() });
    assert_eq!(env.app.post("/v1/auth/email/verify", None, verify).await.0, StatusCode::NO_CONTENT);

    // Two resets and a magic link.
    let (resets, magic) = request_links(&env, email, 2, 1).await;
    let reset = |token: &str, password: &str| json!({ "token": token, "new_password": password });
    let (status, body) = env
        .app
        .post("/v1/auth/password/reset", None, reset(&resets[0], OTHER_STRONG_PASSWORD))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, problem) = env
        .app
        .post("/v1/auth/password/reset", None, reset(&resets[1], "Third-strong-pass-42!"))
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("token_used")),
        "the other reset link is spent"
    );
    let (status, problem) =
        env.app.post("/v1/auth/magic-link/verify", None, json!({ "token": magic })).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::BAD_REQUEST, Some("token_used")));
    assert_eq!(env.app.sign_in(email, OTHER_STRONG_PASSWORD).await.0, StatusCode::OK);
    assert_eq!(env.app.get_auth("/v1/me", &token).await.0, StatusCode::UNAUTHORIZED);

    // A password change spends the links mailed before it.
    let (_, tokens) = env.app.sign_in(email, OTHER_STRONG_PASSWORD).await;
    let token = tokens["access_token"].as_str().unwrap();
    let (resets, magic) = request_links(&env, email, 4, 2).await;
    let change = json!({ "current_password": OTHER_STRONG_PASSWORD, "new_password": "Fourth-strong-pass-73!" });
    let (status, body) = env.app.post("/v1/me/password", Some(token), change).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    for spent in &resets {
        let (status, problem) =
            env.app.post("/v1/auth/password/reset", None, reset(spent, STRONG_PASSWORD)).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("token_used"))
        );
    }
    let (status, problem) =
        env.app.post("/v1/auth/magic-link/verify", None, json!({ "token": magic })).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::BAD_REQUEST, Some("token_used")));
    env.app.stop().await;
}

/// Asks for two reset links and a magic link, and waits until `email` has received `resets`
/// reset links and `magic` magic links in all; answers the last two reset tokens and the
/// last magic-link token.
async fn request_links(
    env: &Env,
    email: &str,
    resets: usize,
    magic: usize,
) -> (Vec<String>, String) {
    for _ in 0..2 {
        let (status, _) =
            env.app.post("/v1/auth/password/forgot", None, json!({ "email": email })).await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    let (status, _) = env.app.post("/v1/auth/magic-link", None, json!({ "email": email })).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let mails = env.sink.messages_to(email);
        let reset_tokens: Vec<String> =
            mails.iter().filter_map(|m| m.token_for("/reset-password")).collect();
        let magic_tokens: Vec<String> =
            mails.iter().filter_map(|m| m.token_for("/magic-link")).collect();
        if reset_tokens.len() >= resets && magic_tokens.len() >= magic {
            let last_two = reset_tokens[reset_tokens.len() - 2..].to_vec();
            return (last_two, magic_tokens.last().unwrap().clone());
        }
        assert!(std::time::Instant::now() < deadline, "links to {email} did not arrive");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The answer of a raw sign-up: status, the headers that are not per-request, and the body.
async fn raw_sign_up(
    env: &Env,
    email: &str,
    password: &str,
    language: &str,
) -> (StatusCode, Vec<(String, String)>, String) {
    let response = env
        .app
        .http
        .post(env.app.url("/v1/auth/sign-up"))
        .header("accept-language", language)
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let mut headers: Vec<(String, String)> = response
        .headers()
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "date" | "x-request-id"))
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_owned()))
        .collect();
    headers.sort();
    (status, headers, response.text().await.unwrap())
}

/// Regression (#19, finding 7): with verification required, a sign-up for a registered
/// address answered 409 `email_taken` (an enumeration oracle). Now both answer `202
/// {"verification_required": true}` with the same headers; the new address gets its
/// verification link, the registered one's owner a "you already have an account" email (in
/// their language), and nothing about the existing account changes.
async fn sign_up_with_verification_required_answers_alike_for_every_address(test: TestDatabase) {
    let env = spawn(&test, &[("GATEHOUSE_REQUIRE_EMAIL_VERIFICATION", "true")]).await;
    let first = raw_sign_up(&env, "owner@example.com", STRONG_PASSWORD, "en").await;
    let fresh = raw_sign_up(&env, "fresh@example.com", STRONG_PASSWORD, "en").await;
    let again = raw_sign_up(&env, "owner@example.com", OTHER_STRONG_PASSWORD, "en").await;
    let in_french = raw_sign_up(&env, "OWNER@example.com", OTHER_STRONG_PASSWORD, "fr").await;
    assert_eq!(fresh.0, StatusCode::ACCEPTED, "{}", fresh.2);
    assert_eq!(
        serde_json::from_str::<Value>(&fresh.2).unwrap(),
        json!({ "verification_required": true })
    );
    for answer in [&first, &again, &in_french] {
        assert_eq!(answer, &fresh, "a registered address answers like a new one");
    }

    let welcome = env.sink.wait_for_subject("fresh@example.com", "Confirm your email").await;
    assert!(welcome.token_for("/verify-email").is_some());
    let exists = env.sink.wait_for_subject("owner@example.com", "You already have").await;
    assert!(exists.link_for("/login").is_some(), "{}", exists.text());
    assert!(exists.text().contains("/forgot-password"), "{}", exists.text());
    assert!(exists.token_for("/verify-email").is_none(), "no token in the notice");
    env.sink.wait_for_subject("owner@example.com", "Vous avez déjà un compte").await;
    // One account, whose password did not change; it verifies and signs in as before.
    let (_, users) = env.app.get_auth("/v1/admin/users?email=owner@example.com", &env.admin).await;
    assert_eq!(users["data"].as_array().unwrap().len(), 1, "{users}");
    let mail = env.sink.wait_for_subject("owner@example.com", "Confirm your email").await;
    let verify = json!({ "token": mail.token_for("/verify-email").unwrap() });
    assert_eq!(env.app.post("/v1/auth/email/verify", None, verify).await.0, StatusCode::NO_CONTENT);
    assert_eq!(env.app.sign_in("owner@example.com", STRONG_PASSWORD).await.0, StatusCode::OK);
    assert_eq!(
        env.app.sign_in("owner@example.com", OTHER_STRONG_PASSWORD).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(env.audit_reasons("user.sign_up_existing").await.len(), 2);

    // A taken username answers the same for a registered and a new address (it was checked
    // after the address, so `202` vs `409` told the address apart).
    let named =
        json!({ "email": "named@example.com", "password": STRONG_PASSWORD, "username": "named" });
    assert_eq!(env.app.post("/v1/auth/sign-up", None, named).await.0, StatusCode::ACCEPTED);
    for email in ["owner@example.com", "brand-new@example.com"] {
        let body = json!({ "email": email, "password": STRONG_PASSWORD, "username": "named" });
        let (status, problem) = env.app.post("/v1/auth/sign-up", None, body).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (StatusCode::CONFLICT, Some("username_taken")),
            "{email}"
        );
    }
    env.app.stop().await;
}

/// Without verification required, a new account is signed in at once, so a registered address
/// cannot be hidden: it still answers 409 `email_taken` (documented in the README).
async fn sign_up_without_verification_still_answers_email_taken(test: TestDatabase) {
    let env = spawn(&test, &[]).await;
    let tokens = env.app.sign_up("taken@example.com", STRONG_PASSWORD).await;
    assert!(tokens["access_token"].is_string(), "{tokens}");
    let (status, problem) = env
        .app
        .post(
            "/v1/auth/sign-up",
            None,
            json!({ "email": "taken@example.com", "password": OTHER_STRONG_PASSWORD }),
        )
        .await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::CONFLICT, Some("email_taken")));
    env.app.stop().await;
}

/// Whether the browser is signed in: `/account` answers its page, or sends it to `/login`.
async fn signed_in(browser: &mut Browser) -> bool {
    let page = browser.get("/account").await;
    match page.status {
        StatusCode::OK => true,
        status if status.is_redirection() && page.location().starts_with("/login") => false,
        status => panic!("/account answered {status}: {}", page.body),
    }
}

/// Regression (#19, finding 8): a hosted-page session used to live its whole lifetime however
/// long it sat unused. Now it is refused after the idle timeout; use slides the window (the
/// session is written at most once a minute).
async fn idle_browser_sessions_must_sign_in_again(test: TestDatabase) {
    let env = spawn(&test, &[("GATEHOUSE_TOKENS_SESSION_IDLE_TIMEOUT_SECONDS", "600")]).await;
    env.user("idle@example.com").await;
    let mut browser = Browser::new(&env.app);
    let page = browser.sign_in("?return_to=/account", "idle@example.com", STRONG_PASSWORD).await;
    assert_eq!(page.location(), "/account", "{}", page.body);
    assert!(signed_in(&mut browser).await);
    // Used after 5 and 13 minutes: 13 minutes after the sign-in, but never 10 idle.
    env.clock.advance(300);
    assert!(signed_in(&mut browser).await);
    env.clock.advance(480);
    assert!(signed_in(&mut browser).await, "activity slid the idle window");
    // Within a minute of the last use: served without a write, still signed in.
    env.clock.advance(30);
    assert!(signed_in(&mut browser).await);
    // Ten minutes unused (counted from the last recorded use): refused.
    env.clock.advance(600);
    assert!(!signed_in(&mut browser).await, "an idle session must sign in again");
    env.app.stop().await;
}

/// The mail sink reads a link whole when a quoted-printable soft line break falls right before
/// a `--` of its token (it cut the message there as if at a MIME boundary, and CI once saw a
/// valid reset link refused as `invalid_token`).
#[test]
fn a_link_split_by_a_soft_line_break_before_dashes_is_read_whole() {
    let mail = support::smtp::Received {
        from: "gatehouse@example.com".into(),
        to: vec!["links@example.com".into()],
        data: "Subject: Reset your password\r\nContent-Type: multipart/alternative;\r\n \
               boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\
               Content-Transfer-Encoding: quoted-printable\r\n\r\n\
               Reset: http://localhost:1/reset-password?token=3Dgtv_abc=\r\n--def\r\n--b1--\r\n"
            .into(),
    };
    assert_eq!(mail.token_for("/reset-password").as_deref(), Some("gtv_abc--def"));
}
