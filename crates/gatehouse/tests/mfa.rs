//! Multi-factor authentication end-to-end over HTTP, on both backends: TOTP (codes computed
//! here from the enrolment secret with totp-rs), backup codes, codes by email (read from the
//! SMTP sink) and by SMS (read from a local Twilio-compatible gateway), trusted devices,
//! step-up, the admin reset, and each refusal with its own code and audit event. Time moves
//! on a `ManualClock`; the Redis suite keeps the challenges in Redis.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/pages_browser.rs"]
mod browser;
mod support;

use std::sync::Arc;

use base64::Engine as _;
use browser::Browser;
use gatehouse_crypto::MasterKey;
use gatehouse_domain::ManualClock;
use gatehouse_store::backend_tests;
use gatehouse_store::testing::TestDatabase;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::sms::SmsGateway;
use support::smtp::SmtpSink;
use support::{OTHER_STRONG_PASSWORD, STRONG_PASSWORD, TestApp};

backend_tests!(
    totp_enrolment_and_sign_in,
    each_refusal_has_its_own_code_and_is_audited,
    backup_codes_work_once_and_regenerate,
    wrong_second_factors_count_towards_lockout,
    email_codes_end_to_end,
    sms_codes_end_to_end,
    trusted_devices_skip_the_second_factor_until_revoked,
    removing_a_factor_needs_a_recent_authentication,
    admins_see_and_reset_factors,
    required_policy_sends_users_through_enrolment,
    hosted_login_asks_for_the_second_factor,
    id_tokens_of_hosted_sign_ins_carry_amr_and_acr,
    hosted_login_enrols_when_mfa_is_required,
    account_page_manages_two_step_verification,
    magic_links_are_a_first_factor,
    device_flow_id_tokens_carry_the_approvers_amr,
);

struct Env {
    app: TestApp,
    sink: SmtpSink,
    sms: SmsGateway,
    clock: Arc<ManualClock>,
    admin: String,
}

fn wall_clock() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

async fn spawn(test: &TestDatabase, extra: &[(&str, &str)]) -> Env {
    let sink = SmtpSink::start().await;
    let sms = SmsGateway::start().await;
    // Start at the beginning of a TOTP step, so "the same step" and "the next step" are
    // unambiguous.
    let start = wall_clock() - wall_clock() % 30 + 30;
    let clock = Arc::new(ManualClock::new(start));
    let mut settings: Vec<(&str, String)> = vec![
        ("GATEHOUSE_SMTP_URL", sink.url()),
        ("GATEHOUSE_SMTP_FROM", "Gatehouse Tests <id@example.com>".into()),
        ("GATEHOUSE_OUTBOX_POLL_INTERVAL_MS", "50".into()),
    ];
    settings.extend(sms.settings());
    let mut pairs: Vec<(&str, &str)> =
        settings.iter().map(|(name, value)| (*name, value.as_str())).collect();
    pairs.extend_from_slice(extra);
    let app =
        TestApp::spawn_with_clock(test, &MasterKey::generate(), &pairs, Some(clock.clone())).await;
    let admin = app.admin_key().await;
    Env { app, sink, sms, clock, admin }
}

impl Env {
    fn now(&self) -> u64 {
        use gatehouse_domain::Clock;
        self.clock.now() as u64
    }

    /// Signs up and answers the access token.
    async fn user(&self, email: &str) -> String {
        let tokens = self.app.sign_up(email, STRONG_PASSWORD).await;
        tokens["access_token"].as_str().unwrap().to_owned()
    }

    /// Enrols TOTP for the bearer; answers (secret, backup codes).
    async fn enrol_totp(&self, token: &str) -> (String, Vec<String>) {
        let (status, enrolment) = self.app.post("/v1/me/mfa/totp", Some(token), json!({})).await;
        assert_eq!(status, StatusCode::OK, "{enrolment}");
        let secret = enrolment["secret"].as_str().unwrap().to_owned();
        let code = totp(&secret, self.now());
        let (status, confirmed) =
            self.app.post("/v1/me/mfa/totp/confirm", Some(token), json!({ "code": code })).await;
        assert_eq!(status, StatusCode::OK, "{confirmed}");
        let codes = confirmed["backup_codes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|code| code.as_str().unwrap().to_owned())
            .collect();
        (secret, codes)
    }

    /// Signs in with the password and expects the second step; answers the body.
    async fn challenge(&self, email: &str) -> Value {
        let (status, body) = self.app.sign_in(email, STRONG_PASSWORD).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["mfa_required"], true, "{body}");
        assert!(body.get("access_token").is_none(), "no tokens before the second factor");
        body
    }

    async fn verify(&self, mfa_token: &str, method: &str, code: &str) -> (StatusCode, Value) {
        self.app
            .post(
                "/v1/auth/mfa/verify",
                None,
                json!({ "mfa_token": mfa_token, "method": method, "code": code }),
            )
            .await
    }

    /// The `reason` of each audit event `action`, oldest first.
    async fn audit_reasons(&self, action: &str) -> Vec<String> {
        let (status, log) = self
            .app
            .get_auth(&format!("/v1/admin/audit-log?action={action}&limit=100"), &self.admin)
            .await;
        assert_eq!(status, StatusCode::OK, "{log}");
        let mut reasons: Vec<String> = log["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|event| event["metadata"]["reason"].as_str().unwrap_or("").to_owned())
            .collect();
        reasons.reverse();
        reasons
    }

    async fn user_id(&self, email: &str) -> String {
        let (_, users) =
            self.app.get_auth(&format!("/v1/admin/users?email={email}"), &self.admin).await;
        users["data"][0]["id"].as_str().unwrap().to_owned()
    }
}

/// The TOTP code of `secret` (base32) at `time`, computed with totp-rs as an authenticator app
/// would.
fn totp(secret: &str, time: u64) -> String {
    let secret = totp_rs::Secret::try_from_base32(secret).unwrap();
    let totp = totp_rs::Builder::new().with_secret(secret.as_bytes().to_vec()).build().unwrap();
    totp.generate(time).to_string()
}

/// The claims of a JWT (not verified: the server's own tests check signatures).
fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap(),
    )
    .unwrap()
}

fn code_in_subject(mail: &support::smtp::Received) -> String {
    mail.subject().rsplit(' ').next().unwrap().trim().to_owned()
}

/// Waits for a message to `address` whose text contains `needle`.
async fn wait_for_text(sink: &SmtpSink, address: &str, needle: &str) -> support::smtp::Received {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if let Some(mail) =
            sink.messages_to(address).into_iter().find(|mail| mail.text().contains(needle))
        {
            return mail;
        }
        assert!(std::time::Instant::now() < deadline, "no message with {needle:?} to {address}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The code of the `count`-th code email to `address`, waiting for it.
async fn emailed_code(sink: &SmtpSink, address: &str, count: usize) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let codes: Vec<_> = sink
            .messages_to(address)
            .into_iter()
            .filter(|mail| mail.subject().contains("verification code"))
            .collect();
        if codes.len() >= count {
            return code_in_subject(&codes[count - 1]);
        }
        assert!(std::time::Instant::now() < deadline, "{address}: {} codes", codes.len());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn totp_enrolment_and_sign_in(test: TestDatabase) {
    let env = spawn(&test, &[]).await;
    let token = env.user("ada@example.com").await;

    // Without MFA, sign-in answers tokens with amr ["pwd"].
    let (_, plain) = env.app.sign_in("ada@example.com", STRONG_PASSWORD).await;
    assert_eq!(claims(plain["access_token"].as_str().unwrap())["amr"], json!(["pwd"]));

    let (status, enrolment) = env.app.post("/v1/me/mfa/totp", Some(&token), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let secret = enrolment["secret"].as_str().unwrap();
    assert!(enrolment["otpauth_uri"].as_str().unwrap().starts_with("otpauth://totp/Gatehouse:"));
    assert!(enrolment["otpauth_uri"].as_str().unwrap().contains(secret));
    assert!(enrolment["qr_svg"].as_str().unwrap().contains("<svg"), "{enrolment}");
    // The secret is sealed at rest.
    let stored: Vec<u8> = gatehouse_store::with_pool!(&test.database, pool => {
        sqlx::query_scalar("SELECT secret_ciphertext FROM mfa_factors").fetch_one(pool).await.unwrap()
    });
    let raw = totp_rs::Secret::try_from_base32(secret).unwrap();
    assert!(!stored.windows(raw.as_bytes().len()).any(|window| window == raw.as_bytes()));

    // Not enabled until confirmed: sign-in still answers tokens.
    let (_, before) = env.app.sign_in("ada@example.com", STRONG_PASSWORD).await;
    assert!(before.get("access_token").is_some(), "{before}");
    let (status, problem) =
        env.app.post("/v1/me/mfa/totp/confirm", Some(&token), json!({ "code": "000000" })).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_mfa_code"))
    );
    let code = totp(secret, env.now());
    let (status, confirmed) =
        env.app.post("/v1/me/mfa/totp/confirm", Some(&token), json!({ "code": code })).await;
    assert_eq!(status, StatusCode::OK, "{confirmed}");
    let backup_codes = confirmed["backup_codes"].as_array().unwrap();
    assert_eq!(backup_codes.len(), 10);
    let (status, problem) = env.app.post("/v1/me/mfa/totp", Some(&token), json!({})).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::CONFLICT, Some("mfa_already_enabled"))
    );

    let (_, mine) = env.app.get_auth("/v1/me/mfa", &token).await;
    assert_eq!(mine["enabled"], true);
    assert_eq!(mine["backup_codes_remaining"], 10);
    assert_eq!(mine["factors"][0]["kind"], "totp");
    assert!(!mine.to_string().contains(secret), "the secret is shown once only");

    // The notice went out.
    wait_for_text(&env.sink, "ada@example.com", "authenticator app added").await;

    // Sign-in now asks for the second factor.
    let challenge = env.challenge("ada@example.com").await;
    assert_eq!(challenge["methods"], json!(["totp", "backup_code"]));
    assert_eq!(challenge["expires_in"], 300);
    let mfa_token = challenge["mfa_token"].as_str().unwrap();
    env.clock.advance(30);
    let (status, tokens) = env.verify(mfa_token, "totp", &totp(secret, env.now())).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let access = claims(tokens["access_token"].as_str().unwrap());
    assert_eq!(access["amr"], json!(["pwd", "otp", "mfa"]));
    assert_eq!(access["auth_time"], env.now());
    let (status, me) = env.app.get_auth("/v1/me", tokens["access_token"].as_str().unwrap()).await;
    assert_eq!((status, me["email"].as_str()), (StatusCode::OK, Some("ada@example.com")));
    // Refreshed tokens keep the methods.
    let (_, refreshed) = env
        .app
        .post("/v1/auth/refresh", None, json!({ "refresh_token": tokens["refresh_token"] }))
        .await;
    assert_eq!(
        claims(refreshed["access_token"].as_str().unwrap())["amr"],
        json!(["pwd", "otp", "mfa"])
    );

    // The challenge is single-use.
    env.clock.advance(30);
    let (status, problem) = env.verify(mfa_token, "totp", &totp(secret, env.now())).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_mfa_token"))
    );
    let (_, verified) =
        env.app.get_auth("/v1/admin/audit-log?action=mfa.verified", &env.admin).await;
    assert_eq!(verified["data"][0]["metadata"]["method"], "totp");
    env.app.stop().await;
}

async fn each_refusal_has_its_own_code_and_is_audited(test: TestDatabase) {
    let env = spawn(&test, &[("GATEHOUSE_LOCKOUT_THRESHOLD", "50")]).await;
    let token = env.user("bob@example.com").await;
    let (secret, backup_codes) = env.enrol_totp(&token).await;

    // Replay: the code that confirmed the enrolment (same step) is refused on sign-in.
    let mfa_token =
        env.challenge("bob@example.com").await["mfa_token"].as_str().unwrap().to_owned();
    let (status, problem) = env.verify(&mfa_token, "totp", &totp(&secret, env.now())).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("mfa_code_replayed"))
    );
    // A wrong code.
    let (status, problem) = env.verify(&mfa_token, "totp", "000000").await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_mfa_code"))
    );
    // A code from three steps ago is outside the ±1 window.
    let (_, problem) = env.verify(&mfa_token, "totp", &totp(&secret, env.now() - 90)).await;
    assert_eq!(problem["code"], "invalid_mfa_code");
    // A method the user does not have; a method that does not exist.
    let (status, problem) = env.verify(&mfa_token, "sms", "123456").await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("mfa_method_unavailable"))
    );
    let (status, problem) = env.verify(&mfa_token, "carrier_pigeon", "123456").await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed"))
    );
    // The challenge survived the wrong answers: the next step's code works...
    env.clock.advance(30);
    let code = totp(&secret, env.now());
    let (status, _) = env.verify(&mfa_token, "totp", &code).await;
    assert_eq!(status, StatusCode::OK);
    // ...once: the same code on a new challenge is a replay.
    let mfa_token =
        env.challenge("bob@example.com").await["mfa_token"].as_str().unwrap().to_owned();
    let (_, problem) = env.verify(&mfa_token, "totp", &code).await;
    assert_eq!(problem["code"], "mfa_code_replayed");

    // A backup code works once; the second time it is `backup_code_used`.
    let (status, _) = env.verify(&mfa_token, "backup_code", &backup_codes[0].to_uppercase()).await;
    assert_eq!(status, StatusCode::OK);
    let mfa_token =
        env.challenge("bob@example.com").await["mfa_token"].as_str().unwrap().to_owned();
    let (status, problem) = env.verify(&mfa_token, "backup_code", &backup_codes[0]).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("backup_code_used"))
    );

    // An expired challenge.
    env.clock.advance(301);
    let (status, problem) = env.verify(&mfa_token, "totp", &totp(&secret, env.now())).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("mfa_token_expired"))
    );
    // Garbage tokens.
    for bad in ["", "ghm_nope", &"x".repeat(500)] {
        let (status, problem) = env.verify(bad, "totp", "123456").await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("invalid_mfa_token"))
        );
    }

    assert_eq!(
        env.audit_reasons("mfa.verify_failed").await,
        [
            "mfa_code_replayed",
            "invalid_mfa_code",
            "invalid_mfa_code",
            "mfa_method_unavailable",
            "mfa_code_replayed",
            "backup_code_used",
            "mfa_token_expired",
        ]
    );
    env.app.stop().await;
}

async fn backup_codes_work_once_and_regenerate(test: TestDatabase) {
    let env = spawn(&test, &[]).await;
    let token = env.user("cleo@example.com").await;
    let (_, old_codes) = env.enrol_totp(&token).await;
    let mfa_token =
        env.challenge("cleo@example.com").await["mfa_token"].as_str().unwrap().to_owned();
    let (status, tokens) = env.verify(&mfa_token, "backup_code", &old_codes[3]).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(
        claims(tokens["access_token"].as_str().unwrap())["amr"],
        json!(["pwd", "otp", "mfa"])
    );
    let (_, mine) = env.app.get_auth("/v1/me/mfa", &token).await;
    assert_eq!(mine["backup_codes_remaining"], 9);

    let (status, regenerated) =
        env.app.post("/v1/me/mfa/backup-codes", Some(&token), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let new_codes = regenerated["backup_codes"].as_array().unwrap();
    assert_eq!(new_codes.len(), 10);
    let (_, mine) = env.app.get_auth("/v1/me/mfa", &token).await;
    assert_eq!(mine["backup_codes_remaining"], 10);
    // The old set is gone.
    let mfa_token =
        env.challenge("cleo@example.com").await["mfa_token"].as_str().unwrap().to_owned();
    let (_, problem) = env.verify(&mfa_token, "backup_code", &old_codes[4]).await;
    assert_eq!(problem["code"], "invalid_mfa_code");
    let (status, _) = env.verify(&mfa_token, "backup_code", new_codes[0].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    // Codes are stored as digests.
    let stored: Vec<Vec<u8>> = gatehouse_store::with_pool!(&test.database, pool => {
        sqlx::query_scalar("SELECT code_digest FROM mfa_backup_codes").fetch_all(pool).await.unwrap()
    });
    let plain = new_codes[1].as_str().unwrap().replace('-', "");
    assert!(
        stored.iter().all(|digest| digest.len() == 32
            && !digest.windows(plain.len()).any(|w| w == plain.as_bytes()))
    );
    env.app.stop().await;
}

async fn wrong_second_factors_count_towards_lockout(test: TestDatabase) {
    let env = spawn(&test, &[("GATEHOUSE_LOCKOUT_THRESHOLD", "3")]).await;
    let token = env.user("dan@example.com").await;
    let (secret, _) = env.enrol_totp(&token).await;
    let mfa_token =
        env.challenge("dan@example.com").await["mfa_token"].as_str().unwrap().to_owned();
    // One wrong password, then two wrong codes: the third failure locks.
    let (status, _) = env.app.sign_in("dan@example.com", OTHER_STRONG_PASSWORD).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    for _ in 0..2 {
        let (status, _) = env.verify(&mfa_token, "totp", "000000").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
    env.clock.advance(30);
    let (status, problem) = env.verify(&mfa_token, "totp", &totp(&secret, env.now())).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::LOCKED, Some("account_locked")));
    let (status, _) = env.app.sign_in("dan@example.com", STRONG_PASSWORD).await;
    assert_eq!(status, StatusCode::LOCKED);
    let (_, log) = env.app.get_auth("/v1/admin/audit-log?action=user.locked", &env.admin).await;
    assert_eq!(log["data"].as_array().unwrap().len(), 1, "{log}");
    // A password sign-in alone does not reset the count: only a completed sign-in does.
    env.clock.advance(901);
    let mfa_token =
        env.challenge("dan@example.com").await["mfa_token"].as_str().unwrap().to_owned();
    let (status, _) = env.verify(&mfa_token, "totp", &totp(&secret, env.now())).await;
    assert_eq!(status, StatusCode::OK);
    env.app.stop().await;
}

async fn email_codes_end_to_end(test: TestDatabase) {
    let env = spawn(&test, &[("GATEHOUSE_LOCKOUT_THRESHOLD", "50")]).await;
    let token = env.user("eve@example.com").await;
    let (status, _) = env.app.post("/v1/me/mfa/email", Some(&token), json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let mail = env.sink.wait_for_subject("eve@example.com", "verification code").await;
    let code = code_in_subject(&mail);
    assert_eq!(code.len(), 6);
    assert!(mail.text().contains(&code) && mail.text().contains("5 minutes"), "{}", mail.text());
    let (status, problem) =
        env.app.post("/v1/me/mfa/email/confirm", Some(&token), json!({ "code": "999999x" })).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_mfa_code"))
    );
    let (status, confirmed) =
        env.app.post("/v1/me/mfa/email/confirm", Some(&token), json!({ "code": code })).await;
    assert_eq!(status, StatusCode::OK, "{confirmed}");
    assert_eq!(
        confirmed["backup_codes"].as_array().unwrap().len(),
        10,
        "first factor: backup codes"
    );

    // Sign in with a code by email.
    let challenge = env.challenge("eve@example.com").await;
    assert_eq!(challenge["methods"], json!(["email", "backup_code"]));
    let mfa_token = challenge["mfa_token"].as_str().unwrap().to_owned();
    let send = |method: &'static str| {
        let mfa_token = mfa_token.clone();
        let app = &env.app;
        async move {
            app.post(
                "/v1/auth/mfa/send-code",
                None,
                json!({ "mfa_token": mfa_token, "method": method }),
            )
            .await
        }
    };
    let (status, _) = send("email").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, problem) = send("sms").await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("mfa_method_unavailable"))
    );
    let code = emailed_code(&env.sink, "eve@example.com", 2).await;
    let (status, tokens) = env.verify(&mfa_token, "email", &code).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(
        claims(tokens["access_token"].as_str().unwrap())["amr"],
        json!(["pwd", "otp", "mfa"])
    );

    // Used once.
    let mfa_token =
        env.challenge("eve@example.com").await["mfa_token"].as_str().unwrap().to_owned();
    let (_, problem) = env.verify(&mfa_token, "email", &code).await;
    assert_eq!(problem["code"], "invalid_mfa_code");

    // Expired after five minutes (a new code waits 30 s after the last one).
    env.clock.advance(30);
    let mfa_token =
        env.challenge("eve@example.com").await["mfa_token"].as_str().unwrap().to_owned();
    let (status, _) = env
        .app
        .post("/v1/auth/mfa/send-code", None, json!({ "mfa_token": mfa_token, "method": "email" }))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let response = env
        .app
        .http
        .post(env.app.url("/v1/auth/mfa/send-code"))
        .json(&json!({ "mfa_token": mfa_token, "method": "email" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "30");
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "rate_limited");
    let code = emailed_code(&env.sink, "eve@example.com", 3).await;
    env.clock.advance(299);
    let (status, problem) = env.verify(&mfa_token, "email", "000000").await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_mfa_code"))
    );
    env.clock.advance(2);
    let mfa_token =
        env.challenge("eve@example.com").await["mfa_token"].as_str().unwrap().to_owned();
    let (_, problem) = env.verify(&mfa_token, "email", &code).await;
    assert_eq!(problem["code"], "mfa_code_expired");

    // Five tries, then even the right code is refused.
    let (_, _) = env
        .app
        .post("/v1/auth/mfa/send-code", None, json!({ "mfa_token": mfa_token, "method": "email" }))
        .await;
    let code = emailed_code(&env.sink, "eve@example.com", 4).await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..5 {
        let (_, problem) = env.verify(&mfa_token, "email", wrong).await;
        assert_eq!(problem["code"], "invalid_mfa_code");
    }
    let (status, problem) = env.verify(&mfa_token, "email", &code).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("mfa_attempts_exhausted"))
    );

    // Codes are stored as digests.
    let stored: Vec<Vec<u8>> = gatehouse_store::with_pool!(&test.database, pool => {
        sqlx::query_scalar("SELECT code_digest FROM mfa_codes").fetch_all(pool).await.unwrap()
    });
    assert!(stored.iter().all(|digest| digest.len() == 32));
    let reasons = env.audit_reasons("mfa.verify_failed").await;
    assert!(reasons.contains(&"mfa_code_expired".to_owned()), "{reasons:?}");
    assert!(reasons.contains(&"mfa_attempts_exhausted".to_owned()), "{reasons:?}");
    env.app.stop().await;
}

async fn sms_codes_end_to_end(test: TestDatabase) {
    let env = spawn(&test, &[]).await;
    let token = env.user("fay@example.com").await;
    for bad in ["0612345678", "+1234", "+33 6 12 34 56 7a", ""] {
        let (status, problem) =
            env.app.post("/v1/me/mfa/sms", Some(&token), json!({ "phone_number": bad })).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {problem}");
        assert_eq!(problem["errors"][0]["code"], "invalid_phone_number");
    }
    let (status, _) = env
        .app
        .post("/v1/me/mfa/sms", Some(&token), json!({ "phone_number": "+33 6 12 34 56 78" }))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let sms = env.sms.wait_for("+33612345678", 1).await;
    assert_eq!(sms.from, support::sms::FROM);
    let code = sms.code().unwrap();
    let (status, _) =
        env.app.post("/v1/me/mfa/sms/confirm", Some(&token), json!({ "code": code })).await;
    assert_eq!(status, StatusCode::OK);
    // The number is sealed at rest, and shown masked.
    let stored: Vec<u8> = gatehouse_store::with_pool!(&test.database, pool => {
        sqlx::query_scalar("SELECT phone_ciphertext FROM mfa_factors WHERE kind = 'sms'").fetch_one(pool).await.unwrap()
    });
    assert!(!stored.windows(11).any(|window| window == b"33612345678"));
    let (_, mine) = env.app.get_auth("/v1/me/mfa", &token).await;
    assert_eq!(mine["factors"][0]["phone_number"], "+•••••••••78");

    let challenge = env.challenge("fay@example.com").await;
    assert_eq!(challenge["methods"], json!(["sms", "backup_code"]));
    let mfa_token = challenge["mfa_token"].as_str().unwrap();
    let (status, _) = env
        .app
        .post("/v1/auth/mfa/send-code", None, json!({ "mfa_token": mfa_token, "method": "sms" }))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let code = env.sms.wait_for("+33612345678", 2).await.code().unwrap();
    let (status, problem) = env.verify(mfa_token, "sms", "000000").await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_mfa_code"))
    );
    let (status, tokens) = env.verify(mfa_token, "sms", &code).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(
        claims(tokens["access_token"].as_str().unwrap())["amr"],
        json!(["pwd", "sms", "mfa"])
    );
    // The outbox lists the SMS without its content.
    let (_, deliveries) = env.app.get_auth("/v1/admin/deliveries?limit=50", &env.admin).await;
    assert!(deliveries["data"].as_array().unwrap().iter().any(|row| row["channel"] == "sms"));
    assert!(!deliveries.to_string().contains(&code));
    env.app.stop().await;
}

/// The `gatehouse_device` cookie of a response, as a `Cookie` header value.
fn device_cookie(response: &reqwest::Response) -> Option<String> {
    response.headers().get_all("set-cookie").iter().find_map(|value| {
        let text = value.to_str().unwrap();
        text.starts_with("gatehouse_device=").then(|| {
            assert!(text.contains("HttpOnly"), "{text}");
            assert!(text.contains("Max-Age=2592000"), "30 days: {text}");
            text.split(';').next().unwrap().to_owned()
        })
    })
}

async fn sign_in_with_cookie(env: &Env, email: &str, cookie: &str) -> Value {
    let response = env
        .app
        .http
        .post(env.app.url("/v1/auth/sign-in"))
        .header("cookie", cookie)
        .json(&json!({ "email": email, "password": STRONG_PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

async fn trusted_devices_skip_the_second_factor_until_revoked(test: TestDatabase) {
    let env = spawn(&test, &[]).await;
    let token = env.user("gus@example.com").await;
    let (secret, _) = env.enrol_totp(&token).await;
    let mfa_token =
        env.challenge("gus@example.com").await["mfa_token"].as_str().unwrap().to_owned();
    env.clock.advance(30);
    let response = env
        .app
        .http
        .post(env.app.url("/v1/auth/mfa/verify"))
        .json(&json!({
            "mfa_token": mfa_token, "method": "totp", "code": totp(&secret, env.now()),
            "trust_device": true,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = device_cookie(&response).expect("a device cookie");
    let tokens: Value = response.json().await.unwrap();
    let token = tokens["access_token"].as_str().unwrap().to_owned();

    // With the cookie: tokens straight away (amr says only the password was used).
    let signed_in = sign_in_with_cookie(&env, "gus@example.com", &cookie).await;
    assert_eq!(claims(signed_in["access_token"].as_str().unwrap())["amr"], json!(["pwd"]));
    // A tampered cookie, or no cookie: the second factor again.
    let tampered = format!("{}x", cookie);
    assert_eq!(sign_in_with_cookie(&env, "gus@example.com", &tampered).await["mfa_required"], true);
    // Another user's password with this cookie still needs their second factor.
    let other = env.user("hal@example.com").await;
    env.enrol_totp(&other).await;
    assert_eq!(sign_in_with_cookie(&env, "hal@example.com", &cookie).await["mfa_required"], true);

    let (status, devices) = env.app.get_auth("/v1/me/trusted-devices", &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(devices.as_array().unwrap().len(), 1, "{devices}");
    assert!(!devices.to_string().contains("ghd_"), "no token in the listing");
    let device_id = devices[0]["id"].as_str().unwrap();
    let (status, _) = env
        .app
        .send(
            reqwest::Method::DELETE,
            &format!("/v1/me/trusted-devices/{device_id}"),
            Some(&other),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "not another user's device");
    let (status, _) = env
        .app
        .send(
            reqwest::Method::DELETE,
            &format!("/v1/me/trusted-devices/{device_id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(sign_in_with_cookie(&env, "gus@example.com", &cookie).await["mfa_required"], true);

    // Trust again, then change the password: the trust ends.
    let mfa_token =
        env.challenge("gus@example.com").await["mfa_token"].as_str().unwrap().to_owned();
    env.clock.advance(30);
    let response = env
        .app
        .http
        .post(env.app.url("/v1/auth/mfa/verify"))
        .json(&json!({
            "mfa_token": mfa_token, "method": "totp", "code": totp(&secret, env.now()),
            "trust_device": true,
        }))
        .send()
        .await
        .unwrap();
    let cookie = device_cookie(&response).unwrap();
    let tokens: Value = response.json().await.unwrap();
    assert!(
        sign_in_with_cookie(&env, "gus@example.com", &cookie).await.get("access_token").is_some()
    );
    let (status, _) = env
        .app
        .post(
            "/v1/me/password",
            tokens["access_token"].as_str(),
            json!({ "current_password": STRONG_PASSWORD, "new_password": "Mellow-quartz-harbor-63#" }),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let response = env
        .app
        .http
        .post(env.app.url("/v1/auth/sign-in"))
        .header("cookie", &cookie)
        .json(&json!({ "email": "gus@example.com", "password": "Mellow-quartz-harbor-63#" }))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["mfa_required"], true, "{body}");
    // And trust ends after 30 days.
    let challenge = env.app.sign_in("gus@example.com", "Mellow-quartz-harbor-63#").await.1;
    env.clock.advance(30);
    let response = env
        .app
        .http
        .post(env.app.url("/v1/auth/mfa/verify"))
        .json(&json!({
            "mfa_token": challenge["mfa_token"], "method": "totp",
            "code": totp(&secret, env.now()), "trust_device": true,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = device_cookie(&response).unwrap();
    let sign_in = |cookie: String| {
        let http = env.app.http.clone();
        let url = env.app.url("/v1/auth/sign-in");
        async move {
            let response = http
                .post(url)
                .header("cookie", cookie)
                .json(
                    &json!({ "email": "gus@example.com", "password": "Mellow-quartz-harbor-63#" }),
                )
                .send()
                .await
                .unwrap();
            response.json::<Value>().await.unwrap()
        }
    };
    assert!(sign_in(cookie.clone()).await.get("access_token").is_some());
    env.clock.advance(30 * 24 * 3600 + 1);
    assert_eq!(sign_in(cookie).await["mfa_required"], true);
    let (_, log) =
        env.app.get_auth("/v1/admin/audit-log?action=mfa.trusted_device_added", &env.admin).await;
    assert_eq!(log["data"].as_array().unwrap().len(), 3);
    let (_, used) =
        env.app.get_auth("/v1/admin/audit-log?action=mfa.trusted_device_used", &env.admin).await;
    assert_eq!(used["data"].as_array().unwrap().len(), 3, "{used}");
    env.app.stop().await;
}

async fn removing_a_factor_needs_a_recent_authentication(test: TestDatabase) {
    let env = spawn(&test, &[]).await;
    let token = env.user("ida@example.com").await;
    let (secret, _) = env.enrol_totp(&token).await;
    env.clock.advance(301);
    // Every change of factors needs it: a stolen session cannot plant its own factor or
    // mint backup codes.
    for (path, body) in [
        ("/v1/me/mfa/backup-codes", json!({})),
        ("/v1/me/mfa/sms", json!({ "phone_number": "+33612345678" })),
        ("/v1/me/mfa/email", json!({})),
    ] {
        let (status, problem) = env.app.post(path, Some(&token), body).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("reauthentication_required")),
            "{path}"
        );
    }
    let (status, codes) = env
        .app
        .post("/v1/me/mfa/backup-codes", Some(&token), json!({ "password": STRONG_PASSWORD }))
        .await;
    assert_eq!(status, StatusCode::OK, "a proof in the body will do: {codes}");
    env.clock.advance(301);
    let (status, problem) =
        env.app.send(reqwest::Method::DELETE, "/v1/me/mfa/totp", Some(&token), None).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("reauthentication_required"))
    );
    // A wrong password does not re-authenticate.
    let (status, problem) = env
        .app
        .post("/v1/auth/reauthenticate", Some(&token), json!({ "password": OTHER_STRONG_PASSWORD }))
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_credentials"))
    );
    // A TOTP code does.
    let (status, stepped) = env
        .app
        .post(
            "/v1/auth/reauthenticate",
            Some(&token),
            json!({ "method": "totp", "code": totp(&secret, env.now()) }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{stepped}");
    assert_eq!(stepped["auth_time"], env.now());
    let fresh = claims(stepped["access_token"].as_str().unwrap());
    assert_eq!(fresh["auth_time"], env.now());
    assert_eq!(fresh["amr"], json!(["pwd", "otp", "mfa"]));
    // The session is fresh now, whichever of its tokens is used.
    let (status, _) =
        env.app.send(reqwest::Method::DELETE, "/v1/me/mfa/totp", Some(&token), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, mine) = env.app.get_auth("/v1/me/mfa", &token).await;
    assert_eq!(
        (mine["enabled"].as_bool(), mine["backup_codes_remaining"].as_u64()),
        (Some(false), Some(0))
    );
    wait_for_text(&env.sink, "ida@example.com", "authenticator app removed").await;
    // Sign-in answers tokens again.
    let (_, tokens) = env.app.sign_in("ida@example.com", STRONG_PASSWORD).await;
    assert!(tokens.get("access_token").is_some());

    // Or a proof in the body of the DELETE itself (the password).
    let (secret, _) = env.enrol_totp(&token).await;
    let _ = secret;
    env.clock.advance(301);
    let (status, _) = env
        .app
        .send(
            reqwest::Method::DELETE,
            "/v1/me/mfa/totp",
            Some(&token),
            Some(json!({ "password": STRONG_PASSWORD })),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, log) =
        env.app.get_auth("/v1/admin/audit-log?action=mfa.factor_removed", &env.admin).await;
    assert_eq!(log["data"].as_array().unwrap().len(), 2);
    env.app.stop().await;
}

async fn admins_see_and_reset_factors(test: TestDatabase) {
    let env = spawn(&test, &[]).await;
    let token = env.user("jay@example.com").await;
    env.enrol_totp(&token).await;
    let user_id = env.user_id("jay@example.com").await;
    let (status, factors) =
        env.app.get_auth(&format!("/v1/admin/users/{user_id}/mfa"), &env.admin).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(factors["factors"][0]["kind"], "totp");
    assert_eq!(factors["backup_codes_remaining"], 10);
    let (status, _) = env.app.get_auth(&format!("/v1/admin/users/{user_id}/mfa"), &token).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "users are not admins");
    let (status, _) = env
        .app
        .send(
            reqwest::Method::DELETE,
            &format!("/v1/admin/users/{user_id}/mfa"),
            Some(&env.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, tokens) = env.app.sign_in("jay@example.com", STRONG_PASSWORD).await;
    assert!(tokens.get("access_token").is_some(), "{tokens}");
    let (_, log) = env.app.get_auth("/v1/admin/audit-log?action=admin.mfa_reset", &env.admin).await;
    assert_eq!(log["data"][0]["metadata"]["factors"], json!(["totp"]));
    let (status, _) = env
        .app
        .send(reqwest::Method::DELETE, "/v1/admin/users/usr_nobody/mfa", Some(&env.admin), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    env.app.stop().await;
}

async fn required_policy_sends_users_through_enrolment(test: TestDatabase) {
    let env = spawn(&test, &[("GATEHOUSE_MFA_POLICY", "required")]).await;
    let (status, signed_up) = env
        .app
        .post(
            "/v1/auth/sign-up",
            None,
            json!({ "email": "kim@example.com", "password": STRONG_PASSWORD }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(signed_up.get("tokens").is_none(), "no tokens before a factor: {signed_up}");
    let challenge = env.challenge("kim@example.com").await;
    assert_eq!(challenge["enrolment_required"], true);
    assert_eq!(challenge["methods"], json!(["totp"]));
    let mfa_token = challenge["mfa_token"].as_str().unwrap();
    // It is not a verification challenge.
    let (_, problem) = env.verify(mfa_token, "totp", "123456").await;
    assert_eq!(problem["code"], "invalid_mfa_token");
    let (status, enrolment) =
        env.app.post("/v1/auth/mfa/enrol/totp", None, json!({ "mfa_token": mfa_token })).await;
    assert_eq!(status, StatusCode::OK, "{enrolment}");
    let secret = enrolment["secret"].as_str().unwrap();
    let (status, done) = env
        .app
        .post(
            "/v1/auth/mfa/enrol/totp/confirm",
            None,
            json!({ "mfa_token": mfa_token, "code": totp(secret, env.now()) }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["backup_codes"].as_array().unwrap().len(), 10);
    assert_eq!(
        claims(done["tokens"]["access_token"].as_str().unwrap())["amr"],
        json!(["pwd", "otp", "mfa"])
    );
    // From now on, the usual second step.
    assert_eq!(env.challenge("kim@example.com").await["enrolment_required"], false);
    // The last factor cannot be removed while MFA is required.
    let session = done["tokens"]["access_token"].as_str().unwrap();
    let (status, problem) =
        env.app.send(reqwest::Method::DELETE, "/v1/me/mfa/totp", Some(session), None).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("mfa_enrolment_required"))
    );
    env.app.stop().await;
}

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
    let submit = |code: &str, action: &str| {
        let mut fields = form.hidden_fields();
        fields.push(("method".into(), "totp".into()));
        fields.push(("code".into(), code.into()));
        fields.push(("action".into(), action.into()));
        fields
    };
    let wrong = submit("000000", "verify");
    let wrong: Vec<(&str, &str)> = wrong.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let refused = browser.post("/mfa", &wrong).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert!(refused.alert().unwrap().contains("not correct"), "{}", refused.body);
    env.clock.advance(30);
    let right = submit(&totp(&secret, env.now()), "verify");
    let right: Vec<(&str, &str)> = right.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let done = browser.post("/mfa", &right).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.location(), "/account");
    assert!(browser.session_cookie().is_some());
    assert!(!browser.cookies.contains_key("gatehouse_mfa"), "the challenge cookie is cleared");
    let account = browser.get("/account").await;
    assert_eq!(account.status, StatusCode::OK);
    // Without a challenge, /mfa sends the browser back to /login.
    let mut stranger = Browser::new(&env.app);
    let page = stranger.get("/mfa").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert!(page.location().starts_with("/login"));
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
        let wanted = matches!(name.as_str(), "csrf_token" | "lang" | "return_to" | "action");
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
    let wrong = submit_form(&mut browser, &enrol, "/mfa", &[("code", "000000")]).await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST, "{}", wrong.body);
    assert_eq!(code_elements(&wrong.body)[0], secret, "the same secret is shown again");
    let done =
        submit_form(&mut browser, &wrong, "/mfa", &[("code", &totp(&secret, env.now()))]).await;
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

async fn magic_links_are_a_first_factor(test: TestDatabase) {
    let env = spawn(&test, &[("GATEHOUSE_MAGIC_LINK_ENABLED", "true")]).await;
    let token = env.user("rex@example.com").await;
    let (secret, _) = env.enrol_totp(&token).await;
    let (status, _) =
        env.app.post("/v1/auth/magic-link", None, json!({ "email": "rex@example.com" })).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let mail = env.sink.wait_for_subject("rex@example.com", "sign-in link").await;
    let link_token = mail.token_for("/magic-link").unwrap();
    let (status, challenge) =
        env.app.post("/v1/auth/magic-link/verify", None, json!({ "token": link_token })).await;
    assert_eq!(status, StatusCode::OK, "{challenge}");
    assert_eq!(challenge["mfa_required"], true, "the link alone is one factor: {challenge}");
    // The link is spent even though the sign-in waits for its second step.
    let (_, problem) =
        env.app.post("/v1/auth/magic-link/verify", None, json!({ "token": link_token })).await;
    assert_eq!(problem["code"], "token_used");
    env.clock.advance(30);
    let (status, tokens) = env
        .verify(challenge["mfa_token"].as_str().unwrap(), "totp", &totp(&secret, env.now()))
        .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(
        claims(tokens["access_token"].as_str().unwrap())["amr"],
        json!(["email", "otp", "mfa"])
    );
    env.app.stop().await;
}

/// Signs a browser in through `/login` and `/mfa` (TOTP).
async fn browser_with_mfa(env: &Env, email: &str, secret: &str) -> Browser {
    let mut browser = Browser::new(&env.app);
    let page = browser.sign_in("?return_to=/account", email, STRONG_PASSWORD).await;
    let form = browser.get(page.location()).await;
    env.clock.advance(30);
    let code = totp(secret, env.now());
    let done = submit_form(
        &mut browser,
        &form,
        "/mfa",
        &[("method", "totp"), ("code", &code), ("action", "verify")],
    )
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
        fields.push(("action".into(), "verify".into()));
        let fields: Vec<(&str, &str)> =
            fields.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let page = browser.post("/mfa", &fields).await;
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
    assert_eq!(discovery["acr_values_supported"], json!(["aal1", "aal2"]));
    env.app.stop().await;
}

/// Challenges live in Redis when it is configured: the whole TOTP sign-in, a replay, and an
/// expired challenge (the domain clock decides, not Redis' own expiry).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_keeps_the_challenges() {
    let Some(redis_url) = gatehouse_store::testing::redis_url().unwrap() else {
        eprintln!("skipped: set GATEHOUSE_TEST_REDIS_URL");
        return;
    };
    let test = TestDatabase::sqlite().await.unwrap();
    let prefix = format!("test:{}:", gatehouse_crypto::random_token());
    let env = spawn(
        &test,
        &[
            ("GATEHOUSE_REDIS_URL", redis_url.as_str()),
            ("GATEHOUSE_REDIS_KEY_PREFIX", prefix.as_str()),
        ],
    )
    .await;
    let token = env.user("max@example.com").await;
    let (secret, _) = env.enrol_totp(&token).await;
    let mfa_token =
        env.challenge("max@example.com").await["mfa_token"].as_str().unwrap().to_owned();
    // The challenge is in Redis, not in the database.
    let client = redis::Client::open(redis_url.as_str()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}mfa:challenge:*"))
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(!keys[0].contains(&mfa_token), "only the digest names the key");
    let rows: i64 = gatehouse_store::with_pool!(&test.database, pool => {
        sqlx::query_scalar("SELECT COUNT(*) FROM mfa_challenges").fetch_one(pool).await.unwrap()
    });
    assert_eq!(rows, 0);

    let (_, problem) = env.verify(&mfa_token, "totp", &totp(&secret, env.now())).await;
    assert_eq!(problem["code"], "mfa_code_replayed");
    env.clock.advance(30);
    let (status, _) = env.verify(&mfa_token, "totp", &totp(&secret, env.now())).await;
    assert_eq!(status, StatusCode::OK);
    let (_, problem) = env.verify(&mfa_token, "totp", "000000").await;
    assert_eq!(problem["code"], "invalid_mfa_token", "spent");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}mfa:challenge:*"))
        .query_async(&mut connection)
        .await
        .unwrap();
    assert!(keys.is_empty(), "{keys:?}");

    let mfa_token =
        env.challenge("max@example.com").await["mfa_token"].as_str().unwrap().to_owned();
    env.clock.advance(301);
    let (_, problem) = env.verify(&mfa_token, "totp", &totp(&secret, env.now())).await;
    assert_eq!(problem["code"], "mfa_token_expired");
    env.app.stop().await;
}
