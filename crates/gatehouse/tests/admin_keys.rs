//! Signing keys and admin API keys through the admin API, on both backends: who may call it,
//! the lists (never a private part or a digest), a rotation that the token path and JWKS see
//! at once, a revocation that stops a key on its next request (its own too), and the audit
//! events both write.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use base64::Engine;
use std::sync::Arc;

use gatehouse_crypto::{MasterKey, PublicKeySet};
use gatehouse_domain::ManualClock;
use gatehouse_domain::admin_keys::AdminKeyRecord;
use gatehouse_domain::principal::RequestContext;
use gatehouse_store::backend_tests;
use gatehouse_store::testing::TestDatabase;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{STRONG_PASSWORD, TestApp};

backend_tests!(
    only_admins_reach_the_key_routes,
    a_rotation_signs_the_next_token_with_the_new_key,
    admins_list_the_signing_keys_without_private_parts,
    admin_keys_are_listed_newest_first_a_page_at_a_time,
    a_revoked_admin_key_stops_at_once,
    an_admin_key_may_revoke_itself,
    another_instance_reads_a_rotation_within_its_cache_period,
);

/// An admin key made through the service the CLI uses: its record and its secret.
async fn admin_key(app: &TestApp, name: &str) -> (AdminKeyRecord, String) {
    app.admin_keys.create(name, &RequestContext::default()).await.unwrap()
}

/// The `kid` in a compact JWS's header.
fn kid_of(token: &str) -> String {
    let header = token.split('.').next().unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header).unwrap();
    let header: Value = serde_json::from_slice(&bytes).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

/// The audit events of `action`, newest first.
async fn audit(app: &TestApp, admin: &str, action: &str) -> Vec<Value> {
    let (status, log) = app.get_auth(&format!("/v1/admin/audit-log?action={action}"), admin).await;
    assert_eq!(status, StatusCode::OK, "{log}");
    log["data"].as_array().unwrap().clone()
}

fn kids(list: &Value) -> Vec<&str> {
    list["data"].as_array().unwrap().iter().map(|key| key["kid"].as_str().unwrap()).collect()
}

async fn only_admins_reach_the_key_routes(test: TestDatabase) {
    let app = TestApp::spawn(&test).await;
    let user = app.sign_up("plain@example.com", STRONG_PASSWORD).await;
    let user_token = user["access_token"].as_str().unwrap();
    let (key, secret) = admin_key(&app, "ops").await;
    let routes = [
        (Method::GET, "/v1/admin/keys".to_owned()),
        (Method::POST, "/v1/admin/keys/rotate".to_owned()),
        (Method::GET, "/v1/admin/admin-keys".to_owned()),
        (Method::DELETE, format!("/v1/admin/admin-keys/{}", key.id)),
    ];
    for (method, path) in &routes {
        let (status, problem) = app.send(method.clone(), path, None, None).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("invalid_token")),
            "{method} {path} without a token"
        );
        let (status, problem) = app.send(method.clone(), path, Some(user_token), None).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("forbidden")),
            "{method} {path} with a user's token"
        );
    }
    // Nothing was rotated or revoked by the refused calls.
    let (_, keys) = app.get_auth("/v1/admin/keys", &secret).await;
    assert_eq!(kids(&keys).len(), 1);
    let (_, admin_keys) = app.get_auth("/v1/admin/admin-keys", &secret).await;
    assert_eq!(admin_keys["data"][0]["revoked_at"], Value::Null);

    // An admin user's own token is an admin too.
    let (status, created) = app
        .post(
            "/v1/admin/users",
            Some(&secret),
            json!({ "email": "root@example.com", "password": STRONG_PASSWORD, "admin": true }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (_, root) = app.sign_in("root@example.com", STRONG_PASSWORD).await;
    let root_token = root["access_token"].as_str().unwrap();
    let (status, rotated) =
        app.send(Method::POST, "/v1/admin/keys/rotate", Some(root_token), None).await;
    assert_eq!(status, StatusCode::CREATED, "{rotated}");
    let events = audit(&app, &secret, "signing_key.rotated").await;
    assert_eq!(
        (events[0]["actor_type"].as_str(), events[0]["actor_id"].as_str()),
        (Some("user"), created["id"].as_str())
    );
    let (status, listed) = app.get_auth("/v1/admin/admin-keys", root_token).await;
    assert_eq!((status, listed["data"][0]["id"].as_str()), (StatusCode::OK, Some(key.id.as_str())));
    app.stop().await;
}

async fn a_rotation_signs_the_next_token_with_the_new_key(test: TestDatabase) {
    let app = TestApp::spawn(&test).await;
    let (key, secret) = admin_key(&app, "ops").await;
    let before = app.sign_up("holder@example.com", STRONG_PASSWORD).await;
    let old_token = before["access_token"].as_str().unwrap().to_owned();
    let (_, listed) = app.get_auth("/v1/admin/keys", &secret).await;
    let old_kid = kids(&listed)[0].to_owned();
    assert_eq!(kid_of(&old_token), old_kid);

    let (status, rotated) =
        app.send(Method::POST, "/v1/admin/keys/rotate", Some(&secret), None).await;
    assert_eq!(status, StatusCode::CREATED, "{rotated}");
    let new_kid = rotated["kid"].as_str().unwrap().to_owned();
    assert_ne!(new_kid, old_kid);
    assert_eq!(
        (rotated["state"].as_str(), rotated["algorithm"].as_str(), rotated["published"].as_bool()),
        (Some("active"), Some("ES256"), Some(true))
    );

    // JWKS lists both keys at once, the new one first.
    let (_, jwks) = app.get_json("/.well-known/jwks.json").await;
    let published: Vec<&str> =
        jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert_eq!(published, [new_kid.as_str(), old_kid.as_str()]);

    // The next token this instance issues carries the new kid and verifies against JWKS;
    // the token issued before the rotation keeps working.
    let (status, after) = app.sign_in("holder@example.com", STRONG_PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{after}");
    let new_token = after["access_token"].as_str().unwrap();
    assert_eq!(kid_of(new_token), new_kid);
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_required_spec_claims(&["exp", "sub"]);
    validation.validate_aud = false;
    let keys = PublicKeySet::from_jwks(&jwks).unwrap();
    let claims: Value = keys.verify(new_token, Some("at+jwt"), &validation).unwrap();
    assert_eq!(claims["sub"], after["user"]["id"]);
    assert!(keys.verify::<Value>(&old_token, Some("at+jwt"), &validation).is_ok());
    for token in [new_token, old_token.as_str()] {
        let (status, me) = app.get_auth("/v1/me", token).await;
        assert_eq!(status, StatusCode::OK, "{me}");
    }

    // Audited with the admin key as the actor, the new kid as the target, the retired kid
    // in the metadata.
    let events = audit(&app, &secret, "signing_key.rotated").await;
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert_eq!(
        (
            event["actor_type"].as_str(),
            event["actor_id"].as_str(),
            event["target_type"].as_str(),
            event["target_id"].as_str(),
            event["metadata"]["retired_kid"].as_str(),
        ),
        (
            Some("admin_key"),
            Some(key.id.as_str()),
            Some("signing_key"),
            Some(new_kid.as_str()),
            Some(old_kid.as_str())
        )
    );
    assert_eq!(event["ip"], "127.0.0.1");
    app.stop().await;
}

async fn admins_list_the_signing_keys_without_private_parts(test: TestDatabase) {
    // Times are kept to the second: the clock moves between rotations so that "newest first"
    // has an order to show.
    let wall = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let clock = Arc::new(ManualClock::new(wall.as_secs() as i64));
    let app =
        TestApp::spawn_with_clock(&test, &MasterKey::generate(), &[], Some(clock.clone())).await;
    let (_, secret) = admin_key(&app, "ops").await;
    let (status, first) = app.get_auth("/v1/admin/keys", &secret).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["next_cursor"], Value::Null);
    let only = &first["data"][0];
    assert_eq!(
        (only["state"].as_str(), only["published"].as_bool(), &only["retired_at"]),
        (Some("active"), Some(true), &Value::Null)
    );
    let mut rotated = Vec::new();
    for _ in 0..2 {
        clock.advance(10);
        let (status, key) =
            app.send(Method::POST, "/v1/admin/keys/rotate", Some(&secret), None).await;
        assert_eq!(status, StatusCode::CREATED);
        rotated.push(key["kid"].as_str().unwrap().to_owned());
    }
    let (_, listed) = app.get_auth("/v1/admin/keys", &secret).await;
    let data = listed["data"].as_array().unwrap();
    let states: Vec<(&str, bool)> = data
        .iter()
        .map(|key| (key["state"].as_str().unwrap(), key["published"].as_bool().unwrap()))
        .collect();
    assert_eq!(states, [("active", true), ("retired", true), ("retired", true)], "newest first");
    let order: Vec<&str> = data.iter().map(|key| key["kid"].as_str().unwrap()).collect();
    assert_eq!(order, [rotated[1].as_str(), rotated[0].as_str(), only["kid"].as_str().unwrap()]);
    for key in &data[1..] {
        let (retired_at, until) =
            (key["retired_at"].as_i64().unwrap(), key["publish_until"].as_i64().unwrap());
        assert!(until > retired_at, "{key}");
    }
    // Exactly the public facts: nothing of the private key, sealed or not.
    for key in data {
        let mut fields: Vec<&str> = key.as_object().unwrap().keys().map(String::as_str).collect();
        fields.sort_unstable();
        assert_eq!(
            fields,
            ["algorithm", "created_at", "kid", "publish_until", "published", "retired_at", "state"]
        );
    }
    let (_, jwks) = app.get_json("/.well-known/jwks.json").await;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 3);
    app.stop().await;
}

async fn admin_keys_are_listed_newest_first_a_page_at_a_time(test: TestDatabase) {
    let app = TestApp::spawn(&test).await;
    let mut made = Vec::new();
    for name in ["first", "second", "third", "fourth", "fifth"] {
        made.push(admin_key(&app, name).await);
    }
    let (used, secret) = &made[0];
    let (status, all) = app.get_auth("/v1/admin/admin-keys", secret).await;
    assert_eq!(status, StatusCode::OK, "{all}");
    assert_eq!(all["next_cursor"], Value::Null);
    let data = all["data"].as_array().unwrap();
    assert_eq!(data.len(), 5);
    // Newest first: by creation time, then by id (several keys share a second here).
    let order: Vec<(i64, &str)> = data
        .iter()
        .map(|key| (key["created_at"].as_i64().unwrap(), key["id"].as_str().unwrap()))
        .collect();
    let mut sorted = order.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(order, sorted);
    for key in data {
        let mut fields: Vec<&str> = key.as_object().unwrap().keys().map(String::as_str).collect();
        fields.sort_unstable();
        assert_eq!(fields, ["created_at", "id", "last_used_at", "name", "revoked_at"]);
    }
    let listed_used = data.iter().find(|key| key["id"] == used.id.as_str()).unwrap();
    assert_eq!(listed_used["name"], "first");
    assert!(listed_used["last_used_at"].as_i64().is_some(), "the calling key's use is recorded");
    let text = all.to_string();
    for (_, other_secret) in &made {
        assert!(!text.contains(other_secret.as_str()), "a key's secret in the list");
    }

    // Pages of two walk every key once, in the same order.
    let (mut paged, mut cursor) = (Vec::new(), None::<String>);
    loop {
        let path = cursor.as_ref().map_or("/v1/admin/admin-keys?limit=2".to_owned(), |c| {
            format!("/v1/admin/admin-keys?limit=2&cursor={c}")
        });
        let (status, page) = app.get_auth(&path, secret).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(page["data"].as_array().unwrap().len() <= 2);
        paged.extend(
            page["data"].as_array().unwrap().iter().map(|k| k["id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let every: Vec<&str> = order.iter().map(|(_, id)| *id).collect();
    assert_eq!(paged, every);
    let (status, problem) = app.get_auth("/v1/admin/admin-keys?cursor=garbage", secret).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed"))
    );
    app.stop().await;
}

async fn a_revoked_admin_key_stops_at_once(test: TestDatabase) {
    let app = TestApp::spawn(&test).await;
    let (admin, admin_secret) = admin_key(&app, "ops").await;
    let (ci, ci_secret) = admin_key(&app, "ci").await;
    assert_eq!(app.get_auth("/v1/admin/users", &ci_secret).await.0, StatusCode::OK);

    let (status, problem) = app
        .send(Method::DELETE, "/v1/admin/admin-keys/ak_unknown", Some(&admin_secret), None)
        .await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));

    let path = format!("/v1/admin/admin-keys/{}", ci.id);
    let (status, body) = app.send(Method::DELETE, &path, Some(&admin_secret), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    // Its very next request is refused, on every admin route.
    for route in ["/v1/admin/users", "/v1/admin/admin-keys", "/v1/admin/keys"] {
        let (status, problem) = app.get_auth(route, &ci_secret).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("invalid_token")),
            "{route}"
        );
    }
    let (_, listed) = app.get_auth("/v1/admin/admin-keys", &admin_secret).await;
    let revoked = listed["data"].as_array().unwrap().iter().find(|k| k["id"] == ci.id.as_str());
    assert!(revoked.unwrap()["revoked_at"].as_i64().is_some());
    let other = listed["data"].as_array().unwrap().iter().find(|k| k["id"] == admin.id.as_str());
    assert_eq!(other.unwrap()["revoked_at"], Value::Null);

    // Revoking it again changes nothing and records nothing.
    let (status, _) = app.send(Method::DELETE, &path, Some(&admin_secret), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let events = audit(&app, &admin_secret, "admin_key.revoked").await;
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert_eq!(
        (
            event["actor_type"].as_str(),
            event["actor_id"].as_str(),
            event["target_type"].as_str(),
            event["target_id"].as_str(),
            event["metadata"]["name"].as_str(),
        ),
        (
            Some("admin_key"),
            Some(admin.id.as_str()),
            Some("admin_key"),
            Some(ci.id.as_str()),
            Some("ci")
        )
    );
    assert!(!events[0].to_string().contains(&ci_secret));
    app.stop().await;
}

async fn an_admin_key_may_revoke_itself(test: TestDatabase) {
    let app = TestApp::spawn(&test).await;
    let (witness, witness_secret) = admin_key(&app, "witness").await;
    let (leaving, leaving_secret) = admin_key(&app, "leaving").await;
    let path = format!("/v1/admin/admin-keys/{}", leaving.id);
    let (status, body) = app.send(Method::DELETE, &path, Some(&leaving_secret), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, problem) = app.get_auth("/v1/admin/admin-keys", &leaving_secret).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_token"))
    );
    // Not even to revoke another key.
    let other = format!("/v1/admin/admin-keys/{}", witness.id);
    let (status, _) = app.send(Method::DELETE, &other, Some(&leaving_secret), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let events = audit(&app, &witness_secret, "admin_key.revoked").await;
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0]["actor_id"].as_str(), events[0]["target_id"].as_str()),
        (Some(leaving.id.as_str()), Some(leaving.id.as_str()))
    );
    let (status, _) = app.get_auth("/v1/admin/admin-keys", &witness_secret).await;
    assert_eq!(status, StatusCode::OK);
    app.stop().await;
}

async fn another_instance_reads_a_rotation_within_its_cache_period(test: TestDatabase) {
    let wall = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let clock = Arc::new(ManualClock::new(wall.as_secs() as i64));
    let master_key = MasterKey::generate();
    let first = TestApp::spawn_with_clock(&test, &master_key, &[], Some(clock.clone())).await;
    // One deployment: both instances answer for the same issuer.
    let issuer = [("GATEHOUSE_ISSUER", first.base_url.as_str())];
    let second = TestApp::spawn_with_clock(&test, &master_key, &issuer, Some(clock.clone())).await;
    let (_, secret) = admin_key(&first, "ops").await;
    let before = first.sign_up("roamer@example.com", STRONG_PASSWORD).await;
    // The second instance has read the key set (and caches it for 30 s).
    let old_token = before["access_token"].as_str().unwrap();
    assert_eq!(second.get_auth("/v1/me", old_token).await.0, StatusCode::OK);

    let (status, rotated) =
        first.send(Method::POST, "/v1/admin/keys/rotate", Some(&secret), None).await;
    assert_eq!(status, StatusCode::CREATED, "{rotated}");
    let (_, after) = first.sign_in("roamer@example.com", STRONG_PASSWORD).await;
    let new_token = after["access_token"].as_str().unwrap();
    assert_eq!(kid_of(new_token), rotated["kid"].as_str().unwrap());
    assert_eq!(first.get_auth("/v1/me", new_token).await.0, StatusCode::OK);
    // Another instance reads the key set again when a token names a kid it does not know:
    // the new key's tokens verify there at once, not after its cache's age.
    assert_eq!(second.get_auth("/v1/me", new_token).await.0, StatusCode::OK);
    // A forged kid is refused (reading the key set again for it is rate-limited).
    let forged = forge_kid(new_token, "not-a-kid");
    assert_eq!(second.get_auth("/v1/me", &forged).await.0, StatusCode::UNAUTHORIZED);
    clock.advance(30);
    assert_eq!(second.get_auth("/v1/me", new_token).await.0, StatusCode::OK);
    let (_, jwks) = second.get_json("/.well-known/jwks.json").await;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
    first.stop().await;
    second.stop().await;
}

/// `token` with its header's kid replaced (the signature no longer matches anything).
fn forge_kid(token: &str, kid: &str) -> String {
    use base64::Engine as _;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (header, rest) = token.split_once('.').unwrap();
    let mut header: serde_json::Value =
        serde_json::from_slice(&engine.decode(header).unwrap()).unwrap();
    header["kid"] = serde_json::json!(kid);
    format!("{}.{rest}", engine.encode(serde_json::to_vec(&header).unwrap()))
}
