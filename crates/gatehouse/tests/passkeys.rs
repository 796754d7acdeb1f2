//! Passkeys end to end over HTTP, on both backends, with a software authenticator
//! (webauthn-authenticator-rs's CTAP2 soft passkey) answering the real ceremonies as a browser
//! would: register, sign in with and without an address, step up, sign up without a password;
//! and every refusal with its own code (a ceremony used twice or expired, a wrong origin or RP
//! id, an unknown or removed credential, another account's credential, a replayed assertion,
//! a counter that goes backwards, the last way to sign in). Ceremonies in Redis have their own
//! test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use base64::Engine as _;
use gatehouse_store::backend_tests;
use gatehouse_store::testing::TestDatabase;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::STRONG_PASSWORD;
use support::mfa::{Env, claims, spawn, wait_for_text};
use url::Url;
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_rs_proto::{
    AllowCredentials, CreationChallengeResponse, PublicKeyCredential, RequestChallengeResponse,
    UserVerificationPolicy,
};

/// The relying party the tests configure (the issuer stays the test server's IP address).
const ORIGIN: &str = "http://localhost:9443";
const PASSKEYS: &[(&str, &str)] = &[
    ("GATEHOUSE_PASSKEYS_RP_ID", "localhost"),
    ("GATEHOUSE_PASSKEYS_ORIGINS", "http://localhost:9443,http://app.localhost:9443"),
];

backend_tests!(
    register_then_sign_in_with_and_without_an_address,
    every_refusal_has_its_own_code,
    a_counter_that_goes_backwards_flags_the_passkey_and_tells_the_owner,
    a_passkey_only_account_steps_up_with_its_passkey,
    rename_remove_and_the_shape_of_an_unknown_address,
    a_passkey_without_user_verification_is_a_first_factor_only,
);

fn origin() -> Url {
    Url::parse(ORIGIN).unwrap()
}

/// A software authenticator; `verifies`: it performs user verification (a PIN or biometric),
/// as a browser's platform authenticator does when asked for it ("preferred").
struct Key {
    soft: SoftPasskey,
    verifies: bool,
}

impl Key {
    fn do_registration(
        &mut self,
        origin: Url,
        mut options: CreationChallengeResponse,
    ) -> Result<
        webauthn_rs_proto::RegisterPublicKeyCredential,
        webauthn_authenticator_rs::error::WebauthnCError,
    > {
        if self.verifies
            && let Some(selection) = options.public_key.authenticator_selection.as_mut()
        {
            selection.user_verification = UserVerificationPolicy::Required;
        }
        self.soft.do_registration(origin, options)
    }

    fn do_authentication(
        &mut self,
        origin: Url,
        mut options: RequestChallengeResponse,
    ) -> Result<PublicKeyCredential, webauthn_authenticator_rs::error::WebauthnCError> {
        if self.verifies {
            options.public_key.user_verification = UserVerificationPolicy::Required;
        }
        self.soft.do_authentication(origin, options)
    }
}

/// A soft authenticator that performs user verification.
fn authenticator() -> Key {
    Key { soft: SoftPasskey::new(true), verifies: true }
}

async fn env(test: &TestDatabase) -> Env {
    spawn(test, PASSKEYS).await
}

/// Registers a passkey on the signed-in account: (status, answer).
async fn register(
    env: &Env,
    token: &str,
    key: &mut Key,
    name: Option<&str>,
) -> (StatusCode, Value) {
    let (status, begun) =
        env.app.post("/v1/me/passkeys/register/begin", Some(token), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{begun}");
    let options: CreationChallengeResponse =
        serde_json::from_value(begun["options"].clone()).unwrap();
    let credential = key.do_registration(origin(), options).unwrap();
    let mut body = json!({ "ceremony_id": begun["ceremony_id"], "credential": credential });
    if let Some(name) = name {
        body["name"] = json!(name);
    }
    env.app.post("/v1/me/passkeys/register/finish", Some(token), body).await
}

/// Begins a sign-in (`{}` or `{email}`): (ceremony id, request options).
async fn begin(env: &Env, body: Value) -> (String, RequestChallengeResponse) {
    let (status, begun) = env.app.post("/v1/auth/passkey/begin", None, body).await;
    assert_eq!(status, StatusCode::OK, "{begun}");
    let options = serde_json::from_value(begun["options"].clone()).unwrap();
    (begun["ceremony_id"].as_str().unwrap().to_owned(), options)
}

/// The authenticator's assertion for `options`, from `origin`; with `allow`, the credential
/// the authenticator picks itself (what a discoverable credential does in a browser).
fn assert_with(
    key: &mut Key,
    mut options: RequestChallengeResponse,
    allow: Option<&str>,
    from: &str,
) -> PublicKeyCredential {
    if let Some(id) = allow {
        options.public_key.allow_credentials = vec![AllowCredentials {
            type_: "public-key".into(),
            id: base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(id).unwrap(),
            transports: None,
        }];
    }
    key.do_authentication(Url::parse(from).unwrap(), options).unwrap()
}

async fn finish(
    env: &Env,
    ceremony_id: &str,
    credential: &impl serde::Serialize,
) -> (StatusCode, Value) {
    env.app
        .post(
            "/v1/auth/passkey/finish",
            None,
            json!({ "ceremony_id": ceremony_id, "credential": credential }),
        )
        .await
}

async fn audit_actions(env: &Env) -> Vec<String> {
    let (status, page) = env
        .app
        .send(reqwest::Method::GET, "/v1/admin/audit-log?limit=100", Some(&env.admin), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect()
}

async fn register_then_sign_in_with_and_without_an_address(test: TestDatabase) {
    let env = env(&test).await;
    let token = env.user("ada@example.com").await;
    let mut key = authenticator();

    let (status, passkey) = register(&env, &token, &mut key, Some("Laptop")).await;
    assert_eq!(status, StatusCode::CREATED, "{passkey}");
    assert_eq!(passkey["name"], "Laptop");
    assert_eq!(passkey["synced"], false);
    assert!(passkey["id"].as_str().unwrap().starts_with("pk_"));
    let credential_id = passkey["credential_id"].as_str().unwrap().to_owned();

    let (status, list) = env.app.get_auth("/v1/me/passkeys", &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(list["data"][0]["credential_id"], credential_id.as_str());
    assert!(list["next_cursor"].is_null());
    // The owner is told.
    wait_for_text(&env.sink, "ada@example.com", "Laptop").await;

    // With the address: the options list no credential (they would tell which addresses
    // have passkeys); the ceremony only accepts this account's.
    let (ceremony, options) = begin(&env, json!({ "email": "ada@example.com" })).await;
    assert!(options.public_key.allow_credentials.is_empty());
    let assertion = assert_with(&mut key, options, Some(&credential_id), ORIGIN);
    let (status, tokens) = finish(&env, &ceremony, &assertion).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert!(tokens["refresh_token"].as_str().is_some());
    let access = claims(tokens["access_token"].as_str().unwrap());
    assert_eq!(access["amr"], json!(["hwk", "mfa"]), "{access}");
    // The token works.
    let (status, me) = env.app.get_auth("/v1/me", tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["email"], "ada@example.com");

    // Without an address: no credential listed; the authenticator picks its own.
    let (ceremony, options) = begin(&env, json!({})).await;
    assert!(options.public_key.allow_credentials.is_empty());
    // User verification is asked for, not demanded (a key without a PIN is a first factor).
    assert_eq!(
        serde_json::to_value(options.public_key.user_verification).unwrap(),
        json!("preferred")
    );
    let assertion = assert_with(&mut key, options, Some(&credential_id), ORIGIN);
    let (status, tokens) = finish(&env, &ceremony, &assertion).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["user"]["email"], "ada@example.com");

    let (_, list) = env.app.get_auth("/v1/me/passkeys", &token).await;
    let last_used = list["data"][0]["last_used_at"].as_i64().unwrap();

    // A suspended account: refused, and nothing of the use is recorded.
    let (_, me) = env.app.get_auth("/v1/me", &token).await;
    let user_id = me["id"].as_str().unwrap().to_owned();
    let (status, _) = env
        .app
        .send(
            reqwest::Method::POST,
            &format!("/v1/admin/users/{user_id}/suspend"),
            Some(&env.admin),
            None,
        )
        .await;
    assert!(status.is_success(), "{status}");
    env.clock.advance(5);
    let (ceremony, options) = begin(&env, json!({})).await;
    let assertion = assert_with(&mut key, options, Some(&credential_id), ORIGIN);
    let (status, problem) = finish(&env, &ceremony, &assertion).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("account_suspended"))
    );
    let stored: i64 = gatehouse_store::with_pool!(&env.app.database, pool => {
        sqlx::query_scalar("SELECT last_used_at FROM passkeys").fetch_one(pool).await.unwrap()
    });
    assert_eq!(stored, last_used);
    let actions = audit_actions(&env).await;
    assert!(actions.iter().any(|a| a == "passkey.added"), "{actions:?}");
    assert!(actions.iter().any(|a| a == "passkey.used"), "{actions:?}");
}

async fn every_refusal_has_its_own_code(test: TestDatabase) {
    let env = env(&test).await;
    let token = env.user("bob@example.com").await;
    let mut key = authenticator();
    let (status, passkey) = register(&env, &token, &mut key, None).await;
    assert_eq!(status, StatusCode::CREATED, "{passkey}");
    assert_eq!(passkey["name"], "Passkey");
    let credential_id = passkey["credential_id"].as_str().unwrap().to_owned();

    // The same credential registered twice.
    let (status, problem) = {
        let (_, begun) =
            env.app.post("/v1/me/passkeys/register/begin", Some(&token), json!({})).await;
        let mut options: CreationChallengeResponse =
            serde_json::from_value(begun["options"].clone()).unwrap();
        // excludeCredentials lists it; a client that ignores the list still cannot add it.
        assert_eq!(options.public_key.exclude_credentials.as_ref().map(Vec::len), Some(1));
        options.public_key.exclude_credentials = None;
        let mut other = authenticator();
        let credential = other.do_registration(origin(), options).unwrap();
        let body = json!({ "ceremony_id": begun["ceremony_id"], "credential": credential });
        let (status, _) =
            env.app.post("/v1/me/passkeys/register/finish", Some(&token), body.clone()).await;
        assert_eq!(status, StatusCode::CREATED);
        // The same ceremony again: single use.
        env.app.post("/v1/me/passkeys/register/finish", Some(&token), body).await
    };
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(problem["code"], "passkey_ceremony_invalid");

    // A ceremony finished twice (the second is a replay of the same assertion).
    let (ceremony, options) = begin(&env, json!({ "email": "bob@example.com" })).await;
    let assertion = assert_with(&mut key, options, Some(&credential_id), ORIGIN);
    assert_eq!(finish(&env, &ceremony, &assertion).await.0, StatusCode::OK);
    let (status, problem) = finish(&env, &ceremony, &assertion).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("passkey_ceremony_invalid"))
    );
    // The same assertion for a new ceremony: its challenge is not this one's.
    let (fresh, _) = begin(&env, json!({})).await;
    let (status, problem) = finish(&env, &fresh, &assertion).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("passkey_rejected"))
    );
    assert!(problem["detail"].as_str().unwrap().contains("challenge"), "{problem}");

    // An expired ceremony.
    let (ceremony, options) = begin(&env, json!({})).await;
    let assertion = assert_with(&mut key, options, Some(&credential_id), ORIGIN);
    env.clock.advance(301);
    let (status, problem) = finish(&env, &ceremony, &assertion).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("passkey_ceremony_expired"))
    );

    // A wrong origin (a port the relying party does not allow).
    let (ceremony, options) = begin(&env, json!({})).await;
    let assertion = assert_with(&mut key, options, Some(&credential_id), "http://localhost:1");
    let (status, problem) = finish(&env, &ceremony, &assertion).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("passkey_rejected"))
    );
    assert!(problem["detail"].as_str().unwrap().contains("origin"), "{problem}");

    // A wrong RP id: the authenticator data names another relying party (browsers refuse to
    // make one over http, so the first byte of its RP id hash is changed here).
    let (ceremony, options) = begin(&env, json!({})).await;
    let assertion = assert_with(&mut key, options, Some(&credential_id), ORIGIN);
    let mut tampered = serde_json::to_value(&assertion).unwrap();
    let data = tampered["response"]["authenticatorData"].as_str().unwrap();
    let mut bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(data).unwrap();
    bytes[0] ^= 0xff;
    tampered["response"]["authenticatorData"] =
        json!(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes));
    let (status, problem) = finish(&env, &ceremony, &tampered).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("passkey_rejected"))
    );
    assert!(problem["detail"].as_str().unwrap().contains("rp_id"), "{problem}");

    // Not a WebAuthn response at all; an unknown ceremony id.
    let (ceremony, _) = begin(&env, json!({})).await;
    let (status, problem) = finish(&env, &ceremony, &json!({ "type": "public-key" })).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("passkey_response_malformed"))
    );
    let (status, problem) = finish(&env, "no-such-ceremony", &json!({})).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("passkey_ceremony_invalid"))
    );

    // Another account's credential on a ceremony begun for this address.
    let carol = env.user("carol@example.com").await;
    let mut carols_key = authenticator();
    let (_, carols) = register(&env, &carol, &mut carols_key, None).await;
    let carols_id = carols["credential_id"].as_str().unwrap().to_owned();
    let (ceremony, options) = begin(&env, json!({ "email": "bob@example.com" })).await;
    let assertion = assert_with(&mut carols_key, options, Some(&carols_id), ORIGIN);
    let (status, problem) = finish(&env, &ceremony, &assertion).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("passkey_rejected"))
    );

    // A removed credential is unknown.
    let (status, _) = env
        .app
        .send(
            reqwest::Method::DELETE,
            &format!("/v1/me/passkeys/{}", carols["id"].as_str().unwrap()),
            Some(&carol),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (ceremony, options) = begin(&env, json!({})).await;
    let assertion = assert_with(&mut carols_key, options, Some(&carols_id), ORIGIN);
    let (status, problem) = finish(&env, &ceremony, &assertion).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("passkey_unknown"))
    );

    // A test server on an IP-address issuer without an RP id cannot offer passkeys.
    let plain = TestDatabase::sqlite().await.unwrap();
    let ip = support::TestApp::spawn(&plain).await;
    let (status, problem) = ip.post("/v1/auth/passkey/begin", None, json!({})).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::CONFLICT, Some("passkeys_unavailable"))
    );
    assert!(problem["detail"].as_str().unwrap().contains("IP address"), "{problem}");

    let actions = audit_actions(&env).await;
    assert!(actions.iter().filter(|a| *a == "passkey.rejected").count() >= 3, "{actions:?}");
}

async fn a_counter_that_goes_backwards_flags_the_passkey_and_tells_the_owner(test: TestDatabase) {
    let env = env(&test).await;
    let token = env.user("dan@example.com").await;
    let mut key = authenticator();
    let (_, passkey) = register(&env, &token, &mut key, Some("Key")).await;
    let credential_id = passkey["credential_id"].as_str().unwrap().to_owned();
    let (ceremony, options) = begin(&env, json!({})).await;
    let assertion = assert_with(&mut key, options, Some(&credential_id), ORIGIN);
    assert_eq!(finish(&env, &ceremony, &assertion).await.0, StatusCode::OK);

    // A copy of the authenticator used elsewhere moved the counter we saw far ahead.
    gatehouse_store::with_pool!(&env.app.database, pool => {
        sqlx::query("UPDATE passkeys SET sign_count = 1000")
            .execute(pool)
            .await
            .unwrap();
    });
    let (ceremony, options) = begin(&env, json!({})).await;
    let assertion = assert_with(&mut key, options, Some(&credential_id), ORIGIN);
    let (status, problem) = finish(&env, &ceremony, &assertion).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("passkey_flagged"))
    );
    wait_for_text(&env.sink, "dan@example.com", "disabled").await;
    let (_, list) = env.app.get_auth("/v1/me/passkeys", &token).await;
    assert!(list["data"][0]["flagged_at"].as_i64().is_some());
    // It signs nobody in any more, even with a counter that moves forward again.
    gatehouse_store::with_pool!(&env.app.database, pool => {
        sqlx::query("UPDATE passkeys SET sign_count = 0").execute(pool).await.unwrap();
    });
    let (ceremony, options) = begin(&env, json!({})).await;
    let assertion = assert_with(&mut key, options, Some(&credential_id), ORIGIN);
    let (status, problem) = finish(&env, &ceremony, &assertion).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("passkey_flagged"))
    );
    assert!(audit_actions(&env).await.iter().any(|a| a == "passkey.flagged"));
}

async fn a_passkey_only_account_steps_up_with_its_passkey(test: TestDatabase) {
    let env = env(&test).await;
    let mut key = authenticator();
    let (status, begun) = env
        .app
        .post(
            "/v1/auth/sign-up/passkey/begin",
            None,
            json!({ "email": "eve@example.com", "first_name": "Eve" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{begun}");
    let options: CreationChallengeResponse =
        serde_json::from_value(begun["options"].clone()).unwrap();
    assert_eq!(options.public_key.user.name, "eve@example.com");
    let credential = key.do_registration(origin(), options).unwrap();
    let (status, created) = env
        .app
        .post(
            "/v1/auth/sign-up/passkey/finish",
            None,
            json!({ "ceremony_id": begun["ceremony_id"], "credential": credential, "name": "Phone" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let token = created["tokens"]["access_token"].as_str().unwrap().to_owned();
    assert_eq!(claims(&token)["amr"], json!(["hwk", "mfa"]));
    // No password: a password sign-in fails like any wrong one.
    assert_eq!(
        env.app.sign_in("eve@example.com", STRONG_PASSWORD).await.0,
        StatusCode::UNAUTHORIZED
    );

    let (_, list) = env.app.get_auth("/v1/me/passkeys", &token).await;
    let only = list["data"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(list["data"][0]["name"], "Phone");
    // The last way to sign in cannot go.
    let (status, problem) = env
        .app
        .send(reqwest::Method::DELETE, &format!("/v1/me/passkeys/{only}"), Some(&token), None)
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::CONFLICT, Some("last_sign_in_method"))
    );

    // Later, adding a passkey needs a fresh authentication: the passkey gives it.
    env.clock.advance(600);
    let (status, problem) =
        env.app.post("/v1/me/passkeys/register/begin", Some(&token), json!({})).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("reauthentication_required"))
    );
    let (status, begun) =
        env.app.post("/v1/auth/reauthenticate/passkey/begin", Some(&token), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{begun}");
    let options: RequestChallengeResponse =
        serde_json::from_value(begun["options"].clone()).unwrap();
    assert_eq!(options.public_key.allow_credentials.len(), 1);
    let assertion = assert_with(&mut key, options, None, ORIGIN);
    let (status, stepped) = env
        .app
        .post(
            "/v1/auth/reauthenticate",
            Some(&token),
            json!({ "passkey": { "ceremony_id": begun["ceremony_id"], "credential": assertion } }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{stepped}");
    assert!(stepped["amr"].as_array().unwrap().contains(&json!("hwk")));
    let fresh = stepped["access_token"].as_str().unwrap().to_owned();
    let mut second = authenticator();
    let (status, added) = register(&env, &fresh, &mut second, Some("Laptop")).await;
    assert_eq!(status, StatusCode::CREATED, "{added}");
    // With a second passkey, the first can go.
    let (status, _) = env
        .app
        .send(reqwest::Method::DELETE, &format!("/v1/me/passkeys/{only}"), Some(&fresh), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

async fn rename_remove_and_the_shape_of_an_unknown_address(test: TestDatabase) {
    let env = env(&test).await;
    let token = env.user("fay@example.com").await;
    let mut key = authenticator();
    let (_, passkey) = register(&env, &token, &mut key, None).await;
    let id = passkey["id"].as_str().unwrap();

    let (status, renamed) = env
        .app
        .send(
            reqwest::Method::PATCH,
            &format!("/v1/me/passkeys/{id}"),
            Some(&token),
            Some(json!({ "name": "YubiKey" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{renamed}");
    assert_eq!(renamed["name"], "YubiKey");
    let (status, problem) = env
        .app
        .send(
            reqwest::Method::PATCH,
            &format!("/v1/me/passkeys/{id}"),
            Some(&token),
            Some(json!({ "name": "" })),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed"))
    );
    // Someone else's passkey is not found.
    let other = env.user("gus@example.com").await;
    let (status, _) = env
        .app
        .send(
            reqwest::Method::PATCH,
            &format!("/v1/me/passkeys/{id}"),
            Some(&other),
            Some(json!({ "name": "Mine" })),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    wait_for_text(&env.sink, "fay@example.com", "YubiKey").await;

    // An address with passkeys, one without, and one without an account get the same answer
    // (apart from the random challenge).
    let mut answers = Vec::new();
    for email in ["fay@example.com", "gus@example.com", "nobody@example.com"] {
        let (status, begun) =
            env.app.post("/v1/auth/passkey/begin", None, json!({ "email": email })).await;
        assert_eq!(status, StatusCode::OK);
        let mut options = begun["options"].clone();
        options["publicKey"]["challenge"] = json!("");
        answers.push(options);
    }
    assert_eq!(answers[0], answers[2]);
    assert_eq!(answers[1], answers[2]);
    // A passkey cannot answer the ceremony of another address, nor of an unknown one.
    let credential_id = passkey["credential_id"].as_str().unwrap().to_owned();
    for email in ["gus@example.com", "nobody@example.com"] {
        let (ceremony, options) = begin(&env, json!({ "email": email })).await;
        let assertion = assert_with(&mut key, options, Some(&credential_id), ORIGIN);
        let (status, problem) = finish(&env, &ceremony, &assertion).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("passkey_rejected"))
        );
    }

    // Removing needs a recent authentication too.
    env.clock.advance(600);
    let (status, problem) = env
        .app
        .send(reqwest::Method::DELETE, &format!("/v1/me/passkeys/{id}"), Some(&token), None)
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("reauthentication_required"))
    );

    // An admin's MFA reset (a lost device) removes passkeys too.
    let (_, me) = env.app.get_auth("/v1/me", &token).await;
    let user_id = me["id"].as_str().unwrap().to_owned();
    let (status, _) = env
        .app
        .send(
            reqwest::Method::DELETE,
            &format!("/v1/admin/users/{user_id}/mfa"),
            Some(&env.admin),
            None,
        )
        .await;
    assert!(status.is_success(), "{status}");
    let (_, list) = env.app.get_auth("/v1/me/passkeys", &token).await;
    assert!(list["data"].as_array().unwrap().is_empty());
}

/// With Redis configured, ceremonies live there (none in the database), single use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ceremonies_are_kept_in_redis_when_it_is_configured() {
    let Some(redis_url) = gatehouse_store::testing::redis_url().unwrap() else {
        eprintln!("skipped: set GATEHOUSE_TEST_REDIS_URL");
        return;
    };
    let test = TestDatabase::sqlite().await.unwrap();
    let prefix = format!("test:{}:", gatehouse_crypto::random_token());
    let mut settings = PASSKEYS.to_vec();
    settings.push(("GATEHOUSE_REDIS_URL", redis_url.as_str()));
    settings.push(("GATEHOUSE_REDIS_KEY_PREFIX", prefix.as_str()));
    let env = spawn(&test, &settings).await;
    let token = env.user("hal@example.com").await;
    let mut key = authenticator();
    let (status, passkey) = register(&env, &token, &mut key, None).await;
    assert_eq!(status, StatusCode::CREATED, "{passkey}");
    let credential_id = passkey["credential_id"].as_str().unwrap().to_owned();

    let (ceremony, options) = begin(&env, json!({})).await;
    let client = redis::Client::open(redis_url.as_str()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}passkey:ceremony:*"))
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(keys.len(), 1);
    let rows: i64 = gatehouse_store::with_pool!(&env.app.database, pool => {
        sqlx::query_scalar("SELECT COUNT(*) FROM passkey_ceremonies").fetch_one(pool).await.unwrap()
    });
    assert_eq!(rows, 0);
    let assertion = assert_with(&mut key, options, Some(&credential_id), ORIGIN);
    assert_eq!(finish(&env, &ceremony, &assertion).await.0, StatusCode::OK);
    let (status, problem) = finish(&env, &ceremony, &assertion).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("passkey_ceremony_invalid"))
    );
}

async fn a_passkey_without_user_verification_is_a_first_factor_only(test: TestDatabase) {
    let env = env(&test).await;
    let token = env.user("ivy@example.com").await;
    // A security key without a PIN: it proves possession, not who holds it.
    let mut key = Key { soft: SoftPasskey::new(false), verifies: false };
    let (status, passkey) = register(&env, &token, &mut key, Some("Key without PIN")).await;
    assert_eq!(status, StatusCode::CREATED, "{passkey}");
    let credential_id = passkey["credential_id"].as_str().unwrap().to_owned();

    // Without a second factor on the account: signed in, with one factor in the amr.
    let (ceremony, options) = begin(&env, json!({})).await;
    let assertion = assert_with(&mut key, options, Some(&credential_id), ORIGIN);
    let (status, tokens) = finish(&env, &ceremony, &assertion).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(claims(tokens["access_token"].as_str().unwrap())["amr"], json!(["hwk"]));

    // With a second factor: the passkey is the first step, the second one is asked.
    let (secret, _) = env.enrol_totp(&token).await;
    let (ceremony, options) = begin(&env, json!({})).await;
    let assertion = assert_with(&mut key, options, Some(&credential_id), ORIGIN);
    let (status, answer) = finish(&env, &ceremony, &assertion).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["mfa_required"], true, "{answer}");
    assert!(answer.get("access_token").is_none());
    env.clock.advance(30);
    let code = support::mfa::totp(&secret, env.now());
    let (status, tokens) = env.verify(answer["mfa_token"].as_str().unwrap(), "totp", &code).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let amr = claims(tokens["access_token"].as_str().unwrap())["amr"].clone();
    assert!(amr.as_array().unwrap().contains(&json!("mfa")), "{amr}");
    assert!(amr.as_array().unwrap().contains(&json!("hwk")), "{amr}");
}

/// Redis down while a sign-in ceremony is open: beginning one and finishing one answer 503 with
/// `Retry-After` (a ceremony is never silently lost or moved elsewhere), and once Redis is back
/// the ceremony begun before the outage finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ceremony_survives_a_redis_outage() {
    let Some((proxy, proxied)) = support::redis_behind_a_fault_proxy().await else { return };
    let test = TestDatabase::sqlite().await.unwrap();
    let prefix = format!("test:{}:", gatehouse_crypto::random_token());
    let mut settings = PASSKEYS.to_vec();
    settings.push(("GATEHOUSE_REDIS_URL", proxied.as_str()));
    settings.push(("GATEHOUSE_REDIS_KEY_PREFIX", prefix.as_str()));
    let env = spawn(&test, &settings).await;
    let token = env.user("ida@example.com").await;
    let mut key = authenticator();
    let (status, passkey) = register(&env, &token, &mut key, None).await;
    assert_eq!(status, StatusCode::CREATED, "{passkey}");
    let credential_id = passkey["credential_id"].as_str().unwrap().to_owned();
    let (ceremony, options) = begin(&env, json!({})).await;
    let assertion = assert_with(&mut key, options, Some(&credential_id), ORIGIN);

    proxy.cut();
    let body = json!({ "ceremony_id": ceremony, "credential": assertion });
    for (path, body) in [("/v1/auth/passkey/begin", json!({})), ("/v1/auth/passkey/finish", body)] {
        let answer = env.app.http.post(env.app.url(path)).json(&body).send().await.unwrap();
        assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert!(answer.headers().contains_key("retry-after"), "{path}");
        let problem: Value = answer.json().await.unwrap();
        assert_eq!(problem["code"], "service_unavailable", "{path}: {problem}");
    }
    let rows: i64 = gatehouse_store::with_pool!(&env.app.database, pool => {
        sqlx::query_scalar("SELECT COUNT(*) FROM passkey_ceremonies").fetch_one(pool).await.unwrap()
    });
    assert_eq!(rows, 0, "no ceremony moves to the database during the outage");

    // Back: the ceremony begun before the outage finishes, once.
    proxy.restore();
    let mut attempts = 0;
    loop {
        let (status, answer) = finish(&env, &ceremony, &assertion).await;
        if status == StatusCode::OK {
            assert!(answer["access_token"].is_string(), "{answer}");
            break;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
        attempts += 1;
        assert!(attempts < 50, "Redis did not come back");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (status, problem) = finish(&env, &ceremony, &assertion).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("passkey_ceremony_invalid"))
    );
    env.app.stop().await;
}
