//! Multi-factor authentication through the hosted pages, on both backends: the `/mfa` step
//! after `/login`, the enrolment a required policy sends people through, two-step verification
//! on `/account`, and the `amr`/`acr` of ID tokens from the code and device flows.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/pages_browser.rs"]
mod browser;
mod support;

use browser::Browser;
use gatehouse_store::backend_tests;
use gatehouse_store::testing::TestDatabase;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::mfa::{Env, claims, emailed_code, spawn, totp, wait_for_text};
use support::{OTHER_STRONG_PASSWORD, STRONG_PASSWORD};

backend_tests!(
    hosted_login_asks_for_the_second_factor,
    hosted_login_enrols_when_mfa_is_required,
    account_page_manages_two_step_verification,
    device_flow_id_tokens_carry_the_approvers_amr,
    id_tokens_of_hosted_sign_ins_carry_amr_and_acr,
    hosted_second_step_with_a_code_by_email,
    the_hosted_second_step_spends_the_sign_in_budget,
);

async fn hosted_login_asks_for_the_second_factor(test: TestDatabase) {
    let env = spawn(&test, &[]).await;
    let token = env.user("lea@example.com").await;
    let (secret, _) = env.enrol_totp(&token).await;
    let mut browser = Browser::new(&env.app);
    let page = browser.sign_in("?return_to=/account", "lea@example.com", STRONG_PASSWORD).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location(), "/mfa?return_to=%2Faccount");
    assert!(browser.session_cookie().is_none(), "no session before the second factor");
    let form = browser.get(page.location()).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    // Only the user's own methods are offered.
    assert!(form.body.contains("value=\"totp\"") && form.body.contains("value=\"backup_code\""));
    assert!(!form.body.contains("send_email") && !form.body.contains("value=\"sms\""));
    let submit = |code: &str| {
        let mut fields = form.hidden_fields();
        fields.push(("method".into(), "totp".into()));
        fields.push(("code".into(), code.into()));
        fields
    };
    let wrong = submit("000000");
    let wrong: Vec<(&str, &str)> = wrong.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let refused = browser.post("/mfa/verify", &wrong).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert!(refused.alert().unwrap().contains("not correct"), "{}", refused.body);
    env.clock.advance(30);
    let right = submit(&totp(&secret, env.now()));
    let right: Vec<(&str, &str)> = right.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let done = browser.post("/mfa/verify", &right).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.location(), "/account");
    assert!(browser.session_cookie().is_some());
    assert!(!browser.cookies.contains_key("gatehouse_mfa"), "the challenge cookie is cleared");
    let account = browser.get("/account").await;
    assert_eq!(account.status, StatusCode::OK);
    // Signing in again (`prompt=login`) through both steps ends the browser's old session.
    let old_session = browser.session_cookie().unwrap().split('.').next().unwrap().to_owned();
    let page = browser
        .sign_in("?prompt=login&return_to=/account", "lea@example.com", STRONG_PASSWORD)
        .await;
    let form = browser.get(page.location()).await;
    env.clock.advance(30);
    let code = totp(&secret, env.now());
    let done =
        submit_form(&mut browser, &form, "/mfa/verify", &[("method", "totp"), ("code", &code)])
            .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let revoked: Option<String> = gatehouse_store::with_pool!(&test.database, pool => {
        sqlx::query_scalar("SELECT revoked_reason FROM sessions WHERE id = $1")
            .bind(&old_session)
            .fetch_one(pool)
            .await
            .unwrap()
    });
    assert_eq!(revoked.as_deref(), Some("signed_out"));
    // Without a challenge, /mfa sends the browser back to /login.
    let mut stranger = Browser::new(&env.app);
    let page = stranger.get("/mfa").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert!(page.location().starts_with("/login"));
    env.app.stop().await;
}

/// Guessing a code on the hosted `/mfa` page costs what it costs on `POST /v1/auth/mfa/verify`:
/// the per-IP sign-in budget, shared with `/login`.
async fn the_hosted_second_step_spends_the_sign_in_budget(test: TestDatabase) {
    let limits = [
        ("GATEHOUSE_RATE_LIMIT_ENABLED", "true"),
        ("GATEHOUSE_RATE_LIMIT_SIGN_IN_PER_MINUTE", "3"),
    ];
    let env = spawn(&test, &limits).await;
    let token = env.user("guess@example.com").await;
    env.enrol_totp(&token).await;
    let mut browser = Browser::new(&env.app);
    let page = browser.sign_in("?return_to=/account", "guess@example.com", STRONG_PASSWORD).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let form = browser.get(page.location()).await;
    let wrong = [("method", "totp"), ("code", "000000")];
    for _ in 0..2 {
        let refused = submit_form(&mut browser, &form, "/mfa/verify", &wrong).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    }
    // The sign-in and two guesses spent the budget of three.
    let limited = submit_form(&mut browser, &form, "/mfa/verify", &wrong).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS, "{}", limited.body);
    assert!(limited.alert().unwrap().contains("Too many attempts"), "{}", limited.body);
    env.app.stop().await;
}

/// The text of every `<code>` element of a page.
fn code_elements(body: &str) -> Vec<String> {
    body.split("<code>")
        .skip(1)
        .filter_map(|rest| rest.split("</code>").next())
        .map(str::to_owned)
        .collect()
}

/// Posts a page's form (its hidden fields plus `extra`).
async fn submit_form(
    browser: &mut Browser,
    page: &browser::Page,
    path: &str,
    extra: &[(&str, &str)],
) -> browser::Page {
    // A page can hold several forms: take each hidden field once (the CSRF token is the
    // same in all of them), and only the ones the target form has.
    let mut fields: Vec<(String, String)> = Vec::new();
    for (name, value) in page.hidden_fields() {
        let wanted = matches!(name.as_str(), "csrf_token" | "lang" | "return_to");
        if wanted && !fields.iter().any(|(seen, _)| *seen == name) {
            fields.push((name, value));
        }
    }
    fields.extend(extra.iter().map(|(name, value)| (name.to_string(), value.to_string())));
    let fields: Vec<(&str, &str)> = fields.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    browser.post(path, &fields).await
}

async fn hosted_login_enrols_when_mfa_is_required(test: TestDatabase) {
    let env = spawn(&test, &[("GATEHOUSE_MFA_POLICY", "required")]).await;
    env.app.sign_up("pia@example.com", STRONG_PASSWORD).await;
    let mut browser = Browser::new(&env.app);
    let page = browser.sign_in("?return_to=/account", "pia@example.com", STRONG_PASSWORD).await;
    assert_eq!(page.location(), "/mfa?return_to=%2Faccount");
    let enrol = browser.get(page.location()).await;
    assert_eq!(enrol.status, StatusCode::OK, "{}", enrol.body);
    assert!(enrol.body.contains("<svg"), "the QR code is on the page");
    let secret = code_elements(&enrol.body).remove(0);
    let wrong = submit_form(&mut browser, &enrol, "/mfa/enrol", &[("code", "000000")]).await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST, "{}", wrong.body);
    assert_eq!(code_elements(&wrong.body)[0], secret, "the same secret is shown again");
    let done =
        submit_form(&mut browser, &wrong, "/mfa/enrol", &[("code", &totp(&secret, env.now()))])
            .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert_eq!(code_elements(&done.body).len(), 10, "the backup codes, once");
    assert!(browser.session_cookie().is_some());
    assert!(!browser.cookies.contains_key("gatehouse_mfa"));
    let account = browser.get("/account").await;
    assert_eq!(account.status, StatusCode::OK);
    assert!(account.body.contains("Two-step verification is on."), "{}", account.body);
    env.app.stop().await;
}

async fn account_page_manages_two_step_verification(test: TestDatabase) {
    let env = spawn(&test, &[]).await;
    env.app.sign_up("quin@example.com", STRONG_PASSWORD).await;
    let mut browser = Browser::new(&env.app);
    let page = browser.sign_in("?return_to=/account", "quin@example.com", STRONG_PASSWORD).await;
    assert_eq!(page.location(), "/account");
    let account = browser.get("/account").await;
    assert!(account.body.contains("Two-step verification is off."), "{}", account.body);
    let enrol = submit_form(&mut browser, &account, "/account/mfa/totp", &[]).await;
    assert_eq!(enrol.status, StatusCode::OK, "{}", enrol.body);
    let secret = code_elements(&enrol.body).remove(0);
    let codes = submit_form(
        &mut browser,
        &enrol,
        "/account/mfa/totp/confirm",
        &[("code", &totp(&secret, env.now()))],
    )
    .await;
    assert_eq!(code_elements(&codes.body).len(), 10, "{}", codes.body);
    let account = browser.get("/account").await;
    assert!(account.body.contains("Two-step verification is on."));
    assert!(account.body.contains("Backup codes left: 10"), "{}", account.body);

    // Codes by SMS, from the same page.
    let refused =
        submit_form(&mut browser, &account, "/account/mfa/sms", &[("phone_number", "06 12")]).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", refused.body);
    let confirm = submit_form(
        &mut browser,
        &account,
        "/account/mfa/sms",
        &[("phone_number", "+44 7700 900123")],
    )
    .await;
    assert_eq!(confirm.status, StatusCode::OK, "{}", confirm.body);
    let code = env.sms.wait_for("+447700900123", 1).await.code().unwrap();
    let wrong =
        submit_form(&mut browser, &confirm, "/account/mfa/sms/confirm", &[("code", "000000")])
            .await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST, "{}", wrong.body);
    let done =
        submit_form(&mut browser, &wrong, "/account/mfa/sms/confirm", &[("code", &code)]).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let account = browser.get("/account").await;
    assert!(account.body.contains("Codes by text message · +••••••••••23"), "{}", account.body);

    // Removing needs the password.
    let wrong = submit_form(
        &mut browser,
        &account,
        "/account/mfa/remove",
        &[("kind", "totp"), ("password", OTHER_STRONG_PASSWORD)],
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{}", wrong.body);
    assert!(wrong.body.contains("The password is not correct."));
    let removed = submit_form(
        &mut browser,
        &account,
        "/account/mfa/remove",
        &[("kind", "totp"), ("password", STRONG_PASSWORD)],
    )
    .await;
    assert_eq!(removed.status, StatusCode::SEE_OTHER, "{}", removed.body);
    let account = browser.get("/account").await;
    assert!(account.body.contains("Set up an authenticator app"), "TOTP is gone");
    assert!(account.body.contains("Two-step verification is on."), "SMS is left");
    wait_for_text(&env.sink, "quin@example.com", "authenticator app removed").await;
    env.app.stop().await;
}

/// Signs a browser in through `/login` and `/mfa` (TOTP).
async fn browser_with_mfa(env: &Env, email: &str, secret: &str) -> Browser {
    let mut browser = Browser::new(&env.app);
    let page = browser.sign_in("?return_to=/account", email, STRONG_PASSWORD).await;
    let form = browser.get(page.location()).await;
    env.clock.advance(30);
    let code = totp(secret, env.now());
    let done =
        submit_form(&mut browser, &form, "/mfa/verify", &[("method", "totp"), ("code", &code)])
            .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert!(browser.session_cookie().is_some());
    browser
}

async fn device_flow_id_tokens_carry_the_approvers_amr(test: TestDatabase) {
    use gatehouse_domain::oauth::clients::NewClient;
    let env = spawn(&test, &[]).await;
    let token = env.user("sam@example.com").await;
    let (secret, _) = env.enrol_totp(&token).await;
    let (client_id, _) = env
        .app
        .client(NewClient {
            name: "TV".into(),
            public: true,
            grant_types: vec!["urn:ietf:params:oauth:grant-type:device_code".into()],
            ..NewClient::default()
        })
        .await;
    let (status, started) = env
        .app
        .post_form(
            "/oauth2/device_authorization",
            None,
            &[("client_id", &client_id), ("scope", "openid")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{started}");
    let mut browser = browser_with_mfa(&env, "sam@example.com", &secret).await;
    let user_code = started["user_code"].as_str().unwrap();
    let confirm = browser.get(&format!("/device?user_code={user_code}")).await;
    assert_eq!(confirm.status, StatusCode::OK, "{}", confirm.body);
    let csrf = confirm.hidden("csrf_token").unwrap();
    let done = browser
        .post("/device", &[("user_code", user_code), ("decision", "allow"), ("csrf_token", &csrf)])
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    let (status, tokens) = env
        .app
        .post_form(
            "/oauth2/token",
            None,
            &[
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("device_code", started["device_code"].as_str().unwrap()),
                ("client_id", &client_id),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let id_token = claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(
        (id_token["amr"].clone(), id_token["acr"].clone()),
        (json!(["pwd", "otp", "mfa"]), json!("aal2"))
    );
    env.app.stop().await;
}

/// Follows an OAuth sign-in through the hosted pages (with a second factor when `secret` is
/// given) and answers the ID token's claims.
async fn oidc_id_token(env: &Env, email: &str, secret: Option<&str>) -> Value {
    use gatehouse_domain::oauth::clients::NewClient;
    let redirect_uri = "https://rp.example.com/callback";
    let (client_id, client_secret) = env
        .app
        .client(NewClient {
            name: "RP".into(),
            redirect_uris: vec![redirect_uri.into()],
            scopes: vec!["openid".into(), "email".into()],
            skip_consent: true,
            ..NewClient::default()
        })
        .await;
    let verifier = gatehouse_crypto::random_token();
    let challenge = gatehouse_crypto::pkce_s256(&verifier);
    let query = serde_urlencoded::to_string([
        ("response_type", "code"),
        ("client_id", client_id.as_str()),
        ("redirect_uri", redirect_uri),
        ("scope", "openid email"),
        ("state", "s1"),
        ("nonce", "n1"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ])
    .unwrap();
    let mut browser = Browser::new(&env.app);
    let page = browser.get(&format!("/oauth2/authorize?{query}")).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let login = page.location().to_owned();
    let page = browser.sign_in(login.trim_start_matches("/login"), email, STRONG_PASSWORD).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let mut next = page.location().to_owned();
    if let Some(secret) = secret {
        assert!(next.starts_with("/mfa?"), "{next}");
        let form = browser.get(&next).await;
        env.clock.advance(30);
        let mut fields = form.hidden_fields();
        fields.push(("method".into(), "totp".into()));
        fields.push(("code".into(), totp(secret, env.now())));
        let fields: Vec<(&str, &str)> =
            fields.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let page = browser.post("/mfa/verify", &fields).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        next = page.location().to_owned();
    }
    let page = browser.get(&next).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let callback = url::Url::parse(page.location()).unwrap();
    let code = callback.query_pairs().find(|(name, _)| name == "code").unwrap().1.into_owned();
    let (status, tokens) = env
        .app
        .post_form(
            "/oauth2/token",
            Some((client_id.as_str(), client_secret.as_deref().unwrap())),
            &[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", redirect_uri),
                ("code_verifier", verifier.as_str()),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    claims(tokens["id_token"].as_str().unwrap())
}

async fn id_tokens_of_hosted_sign_ins_carry_amr_and_acr(test: TestDatabase) {
    let env = spawn(&test, &[]).await;
    env.user("ned@example.com").await;
    let plain = oidc_id_token(&env, "ned@example.com", None).await;
    assert_eq!((plain["amr"].clone(), plain["acr"].clone()), (json!(["pwd"]), json!("aal1")));
    let token = env.user("ola@example.com").await;
    let (secret, _) = env.enrol_totp(&token).await;
    let strong = oidc_id_token(&env, "ola@example.com", Some(&secret)).await;
    assert_eq!(strong["amr"], json!(["pwd", "otp", "mfa"]));
    assert_eq!(strong["acr"], "aal2");
    assert_eq!(strong["auth_time"], env.now());
    let (_, discovery) = env.app.get_json("/.well-known/openid-configuration").await;
    // `acr_values` is not honoured, so it is not advertised (finding 8); `acr` is.
    assert!(discovery.get("acr_values_supported").is_none(), "{discovery}");
    assert!(discovery["claims_supported"].as_array().unwrap().contains(&json!("acr")));
    env.app.stop().await;
}

async fn hosted_second_step_with_a_code_by_email(test: TestDatabase) {
    let env = spawn(&test, &[]).await;
    let token = env.user("tia@example.com").await;
    let (status, _) = env.app.post("/v1/me/mfa/email", Some(&token), json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let code = emailed_code(&env.sink, "tia@example.com", 1).await;
    let (status, _) =
        env.app.post("/v1/me/mfa/email/confirm", Some(&token), json!({ "code": code })).await;
    assert_eq!(status, StatusCode::OK);

    let mut browser = Browser::new(&env.app);
    let page = browser.sign_in("?return_to=/account", "tia@example.com", STRONG_PASSWORD).await;
    let form = browser.get(page.location()).await;
    assert!(form.body.contains("send_email"), "{}", form.body);
    let sent = submit_form(&mut browser, &form, "/mfa/send-email", &[]).await;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.body);
    assert!(sent.body.contains("A code is on its way"), "{}", sent.body);
    let again = submit_form(&mut browser, &sent, "/mfa/send-email", &[]).await;
    assert!(again.body.contains("Wait half a minute"), "30 s between codes: {}", again.body);
    let code = emailed_code(&env.sink, "tia@example.com", 2).await;
    let done =
        submit_form(&mut browser, &sent, "/mfa/verify", &[("method", "email"), ("code", &code)])
            .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert!(browser.session_cookie().is_some());
    env.app.stop().await;
}
