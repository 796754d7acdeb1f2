//! Multi-factor authentication end-to-end over the API, on both backends: TOTP (codes computed
//! here from the enrolment secret with totp-rs), backup codes, codes by email (read from the
//! SMTP sink) and by SMS (read from a local Twilio-compatible gateway), the challenge,
//! magic links as a first factor, and each refusal with its own code and audit event. Time
//! moves on a `ManualClock`; the Redis test keeps the challenges in Redis. Trusted devices,
//! step-up, the policy and the admin reset are in `mfa_controls.rs`; the hosted pages and
//! OpenID Connect in `mfa_pages.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use gatehouse_store::backend_tests;
use gatehouse_store::testing::TestDatabase;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::mfa::{claims, code_in_subject, emailed_code, spawn, totp, wait_for_text};
use support::{OTHER_STRONG_PASSWORD, STRONG_PASSWORD};

backend_tests!(
    totp_enrolment_and_sign_in,
    each_refusal_has_its_own_code_and_is_audited,
    backup_codes_work_once_and_regenerate,
    wrong_second_factors_count_towards_lockout,
    email_codes_end_to_end,
    sms_codes_end_to_end,
    magic_links_are_a_first_factor,
    a_code_raced_on_two_challenges_signs_in_once,
);

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
    // The API is described.
    let (_, openapi) = env.app.get_json("/openapi.json").await;
    for path in ["/v1/auth/mfa/verify", "/v1/auth/reauthenticate", "/v1/me/mfa/totp"] {
        assert!(openapi["paths"].get(path).is_some(), "{path} in /openapi.json");
    }
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
    let mut wrong_answer = Value::Null;
    for _ in 0..2 {
        let (status, problem) = env.verify(&mfa_token, "totp", "000000").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        wrong_answer = problem;
    }
    // Locked: the right code answers exactly as a wrong one, and so does the right password.
    env.clock.advance(30);
    let (status, problem) = env.verify(&mfa_token, "totp", &totp(&secret, env.now())).await;
    assert_eq!((status, &problem), (StatusCode::BAD_REQUEST, &wrong_answer));
    let (status, problem) = env.app.sign_in("dan@example.com", STRONG_PASSWORD).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_credentials"))
    );
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

async fn magic_links_are_a_first_factor(test: TestDatabase) {
    let env = spawn(&test, &[("GATEHOUSE_MAGIC_LINK_ENABLED", "true")]).await;
    let token = env.user("rex@example.com").await;
    // A verified owner (a link to an address never verified would clear the factors instead:
    // see `account_flows.rs`).
    let mail = env.sink.wait_for_subject("rex@example.com", "Confirm your email").await;
    let verify = json!({ "token": mail.token_for("/verify-email").unwrap() });
    assert_eq!(env.app.post("/v1/auth/email/verify", None, verify).await.0, StatusCode::NO_CONTENT);
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

/// Two sign-ins race with the same TOTP code: the time step is spent once, so exactly one
/// gets tokens (the other is a replay).
async fn a_code_raced_on_two_challenges_signs_in_once(test: TestDatabase) {
    let env = spawn(&test, &[]).await;
    let token = env.user("uma@example.com").await;
    let (secret, _) = env.enrol_totp(&token).await;
    let first = env.challenge("uma@example.com").await["mfa_token"].as_str().unwrap().to_owned();
    let second = env.challenge("uma@example.com").await["mfa_token"].as_str().unwrap().to_owned();
    env.clock.advance(30);
    let code = totp(&secret, env.now());
    let (a, b) =
        tokio::join!(env.verify(&first, "totp", &code), env.verify(&second, "totp", &code));
    let mut statuses = [a.0.as_u16(), b.0.as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 400], "{a:?} {b:?}");
    let refused = if a.0 == StatusCode::OK { b.1 } else { a.1 };
    assert_eq!(refused["code"], "mfa_code_replayed");
    env.app.stop().await;
}

/// Redis (where challenges live) unreachable: a challenge is never lost silently. Answering
/// one, and a sign-in that needs a new one, are `503 service_unavailable` with `Retry-After`
/// (not "invalid challenge", not a 500); once Redis is back the same challenge still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_answers_503_and_keeps_the_challenge() {
    let Some((proxy, proxied)) = support::redis_behind_a_fault_proxy().await else { return };
    let test = TestDatabase::sqlite().await.unwrap();
    let prefix = format!("test:{}:", gatehouse_crypto::random_token());
    let env = spawn(
        &test,
        &[
            ("GATEHOUSE_REDIS_URL", proxied.as_str()),
            ("GATEHOUSE_REDIS_KEY_PREFIX", prefix.as_str()),
        ],
    )
    .await;
    let token = env.user("outage@example.com").await;
    let (secret, _) = env.enrol_totp(&token).await;
    let mfa_token =
        env.challenge("outage@example.com").await["mfa_token"].as_str().unwrap().to_owned();
    env.clock.advance(30);
    let code = totp(&secret, env.now());

    proxy.cut();
    let answer = env
        .app
        .http
        .post(env.app.url("/v1/auth/mfa/verify"))
        .json(&json!({ "mfa_token": mfa_token, "method": "totp", "code": code }))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(answer.headers().contains_key("retry-after"));
    let problem: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(problem["code"], "service_unavailable", "{problem}");
    let (status, problem) = env.app.sign_in("outage@example.com", STRONG_PASSWORD).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{problem}");

    // Back: the challenge made before the outage is still there and works.
    proxy.restore();
    let mut attempts = 0;
    loop {
        let (status, body) = env.verify(&mfa_token, "totp", &code).await;
        if status == StatusCode::OK {
            assert!(body["access_token"].is_string(), "{body}");
            break;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        attempts += 1;
        assert!(attempts < 50, "Redis did not come back");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    env.app.stop().await;
}
