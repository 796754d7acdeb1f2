//! What surrounds the factors, end-to-end over the API on both backends: trusted devices
//! (signed cookie, listing, revocation, password change, expiry), step-up before changing
//! factors, the MFA-required policy, and the admin view and reset.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use gatehouse_store::backend_tests;
use gatehouse_store::testing::TestDatabase;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::mfa::{Env, claims, spawn, spawn_keyed, totp, wait_for_text};
use support::{OTHER_STRONG_PASSWORD, STRONG_PASSWORD};

backend_tests!(
    trusted_devices_skip_the_second_factor_until_revoked,
    removing_a_factor_needs_a_recent_authentication,
    admins_see_and_reset_factors,
    required_policy_sends_users_through_enrolment,
    passwords_are_re_hashed_on_the_way_to_the_second_step,
);

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
    let devices = &devices["data"];
    assert_eq!(devices.as_array().unwrap().len(), 1, "{devices}");
    assert!(!devices.to_string().contains("gtd_"), "no token in the listing");
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
        env.app.get_auth("/v1/admin/audit-log?action=user.mfa_changed", &env.admin).await;
    let removed: Vec<&Value> = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|event| event["metadata"]["change"] == "removed")
        .collect();
    assert_eq!(removed.len(), 2, "{log}");
    assert!(removed.iter().all(|event| event["metadata"]["kind"] == "totp"), "{log}");
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
    let (_, log) =
        env.app.get_auth("/v1/admin/audit-log?action=user.mfa_changed", &env.admin).await;
    assert_eq!(log["data"][0]["metadata"]["factors"], json!(["totp"]));
    assert_eq!(log["data"][0]["metadata"]["change"], "reset");
    assert_eq!(log["data"][0]["actor_type"], "admin_key");
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

/// New Argon2id parameters: a user with a second factor gets the upgraded hash as soon as the
/// password is proven, before the second step.
async fn passwords_are_re_hashed_on_the_way_to_the_second_step(test: TestDatabase) {
    let key = gatehouse_crypto::MasterKey::generate();
    let old = spawn_keyed(&test, &key, &[("GATEHOUSE_PASSWORD_MEMORY_KIB", "1024")]).await;
    let token = old.user("val@example.com").await;
    old.enrol_totp(&token).await;
    let user_id = old.user_id("val@example.com").await;
    old.app.stop().await;
    let stored = |database: gatehouse_store::Database, id: String| async move {
        use gatehouse_domain::UserStore;
        database.user_by_id(&id).await.unwrap().unwrap().password_hash.unwrap()
    };
    assert!(stored(test.database.clone(), user_id.clone()).await.contains("m=1024,"));
    let new = spawn_keyed(&test, &key, &[("GATEHOUSE_PASSWORD_MEMORY_KIB", "2048")]).await;
    assert_eq!(new.challenge("val@example.com").await["mfa_required"], true);
    assert!(stored(test.database.clone(), user_id).await.contains("m=2048,"));
    new.app.stop().await;
}
