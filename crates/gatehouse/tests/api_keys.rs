//! API keys over HTTP on both backends: creating, listing and revoking personal keys, a key as
//! a bearer within its scopes (and refused where keys never work), `last_used_at` to the
//! minute, expired and revoked keys answered 401, the step-up to create one, validation,
//! introspection by a confidential client, organization keys and their permission check, the
//! admin API and the audit trail.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use gatehouse_domain::oauth::clients::NewClient;
use gatehouse_store::backend_tests;
use gatehouse_store::testing::TestDatabase;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::mfa::{Env, spawn};

backend_tests!(
    personal_keys_are_created_listed_used_within_their_scopes_and_revoked,
    keys_are_refused_where_keys_never_work,
    expired_keys_are_refused_and_creation_is_validated_and_needs_a_recent_sign_in,
    a_confidential_client_introspects_keys,
    organization_keys_need_api_keys_manage_and_admins_see_every_key,
    a_personal_key_acts_in_an_organization_while_its_owner_is_a_member,
    keys_read_and_update_organizations_within_their_scopes_and_permissions,
);

struct Person {
    id: String,
    token: String,
}

async fn person(env: &Env, email: &str) -> Person {
    let tokens = env.app.sign_up(email, support::STRONG_PASSWORD).await;
    Person {
        id: tokens["user"]["id"].as_str().unwrap().to_owned(),
        token: tokens["access_token"].as_str().unwrap().to_owned(),
    }
}

async fn send(
    env: &Env,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    env.app.send(method, path, Some(token), body).await
}

fn code(answer: &(StatusCode, Value)) -> (StatusCode, Option<&str>) {
    (answer.0, answer.1["code"].as_str())
}

/// Creates a key at `path` (`/v1/me/api-keys` or an organization's) and answers its body.
async fn create_key(env: &Env, path: &str, token: &str, scopes: &[&str]) -> Value {
    let (status, body) =
        send(env, Method::POST, path, token, Some(json!({ "name": "ci", "scopes": scopes }))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

fn key_of(created: &Value) -> String {
    created["key"].as_str().unwrap().to_owned()
}

async fn audit_actions(env: &Env, target: &str) -> Vec<String> {
    let (status, log) =
        send(env, Method::GET, "/v1/admin/audit-log?limit=100", &env.admin, None).await;
    assert_eq!(status, StatusCode::OK);
    log["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|event| event["target_id"] == target)
        .map(|event| event["action"].as_str().unwrap().to_owned())
        .collect()
}

async fn personal_keys_are_created_listed_used_within_their_scopes_and_revoked(test: TestDatabase) {
    let env = spawn(&test, &[]).await;
    let alice = person(&env, "alice@example.com").await;
    let bob = person(&env, "bob@example.com").await;

    let created =
        create_key(&env, "/v1/me/api-keys", &alice.token, &["profile:read", "orders:read"]).await;
    let key = key_of(&created);
    // The documented format: gtk_ + 43 base62 + 6 base62 checksum characters.
    assert!(key.starts_with("gtk_") && key.len() == 53, "{key}");
    assert!(key[4..].bytes().all(|byte| byte.is_ascii_alphanumeric()));
    assert_eq!(created["prefix"], key[..12]);
    assert_eq!(created["scopes"], json!(["orders:read", "profile:read"]));
    assert_eq!(created["name"], "ci");
    assert_eq!(created["created_at"], env.now());
    assert!(created["expires_at"].is_null() && created["last_used_at"].is_null());
    let id = created["id"].as_str().unwrap().to_owned();

    // The list never shows the key again.
    let (status, list) = send(&env, Method::GET, "/v1/me/api-keys", &alice.token, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(list["data"][0]["id"], id.as_str());
    assert!(list["data"][0].get("key").is_none(), "{list}");
    assert!(!list.to_string().contains(&key));
    assert!(list["next_cursor"].is_null());
    // Another user's list is theirs only.
    let (_, theirs) = send(&env, Method::GET, "/v1/me/api-keys", &bob.token, None).await;
    assert_eq!(theirs["data"], json!([]));

    // Within its scopes the key acts for its user; beyond them 403 insufficient_scope.
    let (status, me) = send(&env, Method::GET, "/v1/me", &key, None).await;
    assert_eq!((status, me["email"].as_str()), (StatusCode::OK, Some("alice@example.com")));
    let first_use = env.now();
    let beyond = (StatusCode::FORBIDDEN, Some("insufficient_scope"));
    let patch = Some(json!({ "first_name": "Mallory" }));
    assert_eq!(code(&send(&env, Method::PATCH, "/v1/me", &key, patch.clone()).await), beyond);
    assert_eq!(code(&send(&env, Method::GET, "/v1/me/sessions", &key, None).await), beyond);
    assert_eq!(code(&send(&env, Method::GET, "/v1/organizations", &key, None).await), beyond);
    let (_, me) = send(&env, Method::GET, "/v1/me", &alice.token, None).await;
    assert!(me["first_name"].is_null(), "the refused change was not made: {me}");

    // A key with the other scopes (a second later, so the list's order is certain).
    env.clock.advance(1);
    let writer = key_of(
        &create_key(
            &env,
            "/v1/me/api-keys",
            &alice.token,
            &["profile:write", "sessions:read", "organizations:read"],
        )
        .await,
    );
    let (status, me) = send(&env, Method::PATCH, "/v1/me", &writer, patch).await;
    assert_eq!((status, me["first_name"].as_str()), (StatusCode::OK, Some("Mallory")));
    let (status, sessions) = send(&env, Method::GET, "/v1/me/sessions", &writer, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sessions["data"].as_array().unwrap().len(), 1);
    assert_eq!(sessions["data"][0]["current"], false);
    let (status, organizations) = send(&env, Method::GET, "/v1/organizations", &writer, None).await;
    assert_eq!((status, organizations["data"].clone()), (StatusCode::OK, json!([])));
    assert_eq!(code(&send(&env, Method::GET, "/v1/me", &writer, None).await), beyond);

    // The use is recorded, to the minute.
    let last_used = |list: &Value| list["data"][1]["last_used_at"].as_u64();
    let (_, list) = send(&env, Method::GET, "/v1/me/api-keys", &alice.token, None).await;
    assert_eq!(last_used(&list), Some(first_use));
    env.clock.advance(30);
    send(&env, Method::GET, "/v1/me", &key, None).await;
    let (_, list) = send(&env, Method::GET, "/v1/me/api-keys", &alice.token, None).await;
    assert_eq!(last_used(&list), Some(first_use), "not written again within the minute");
    env.clock.advance(31);
    send(&env, Method::GET, "/v1/me", &key, None).await;
    let (_, list) = send(&env, Method::GET, "/v1/me/api-keys", &alice.token, None).await;
    assert_eq!(last_used(&list), Some(env.now()));

    // Someone else cannot revoke it; its owner can, and it stops working at once (it was in
    // the read cache a moment ago).
    let path = format!("/v1/me/api-keys/{id}");
    assert_eq!(
        code(&send(&env, Method::DELETE, &path, &bob.token, None).await),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    assert_eq!(send(&env, Method::GET, "/v1/me", &key, None).await.0, StatusCode::OK);
    let (status, _) = send(&env, Method::DELETE, &path, &alice.token, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let revoked = (StatusCode::UNAUTHORIZED, Some("invalid_token"));
    assert_eq!(code(&send(&env, Method::GET, "/v1/me", &key, None).await), revoked);
    let (_, list) = send(&env, Method::GET, "/v1/me/api-keys", &alice.token, None).await;
    assert_eq!(list["data"][1]["revoked_at"], env.now());
    // Revoking again changes nothing.
    let (status, _) = send(&env, Method::DELETE, &path, &alice.token, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // A key with a broken checksum, or made up, is 401 like an unknown one.
    let mut broken = key.clone().into_bytes();
    let last = broken.len() - 1;
    broken[last] = if broken[last] == b'a' { b'b' } else { b'a' };
    let broken = String::from_utf8(broken).unwrap();
    for bad in [broken.as_str(), "gtk_nothing", &writer.replace("gtk_", "gta_")] {
        assert_eq!(code(&send(&env, Method::GET, "/v1/me", bad, None).await), revoked, "{bad}");
    }

    assert_eq!(audit_actions(&env, &id).await, ["api_key.revoked", "api_key.created"]);
    env.app.stop().await;
}

async fn keys_are_refused_where_keys_never_work(test: TestDatabase) {
    let env = spawn(&test, &[]).await;
    let alice = person(&env, "alice@example.com").await;
    let every_scope = ["profile:read", "profile:write", "sessions:read", "organizations:read"];
    let created = create_key(&env, "/v1/me/api-keys", &alice.token, &every_scope).await;
    let key = key_of(&created);
    let (_, sessions) = send(&env, Method::GET, "/v1/me/sessions", &alice.token, None).await;
    let session = sessions["data"][0]["id"].as_str().unwrap().to_owned();
    let refused = (StatusCode::FORBIDDEN, Some("insufficient_scope"));
    let new_key = json!({ "name": "more", "scopes": ["profile:read"] });
    for (method, path, body) in [
        (Method::POST, "/v1/me/api-keys".to_owned(), Some(new_key)),
        (Method::GET, "/v1/me/api-keys".to_owned(), None),
        (Method::DELETE, format!("/v1/me/api-keys/{}", created["id"].as_str().unwrap()), None),
        (
            Method::POST,
            "/v1/me/password".to_owned(),
            Some(
                json!({ "current_password": support::STRONG_PASSWORD, "new_password": "An0ther-Strong-Passphrase!" }),
            ),
        ),
        (Method::POST, "/v1/me/mfa/totp".to_owned(), Some(json!({}))),
        (Method::GET, "/v1/me/mfa".to_owned(), None),
        (Method::GET, "/v1/me/passkeys".to_owned(), None),
        (Method::DELETE, format!("/v1/me/sessions/{session}"), None),
        (Method::POST, "/v1/auth/sign-out".to_owned(), None),
        (
            Method::POST,
            "/v1/organizations".to_owned(),
            Some(json!({ "name": "A", "slug": "acme" })),
        ),
        (Method::GET, "/v1/admin/users".to_owned(), None),
        (Method::GET, "/v1/admin/api-keys".to_owned(), None),
    ] {
        let answer = send(&env, method.clone(), &path, &key, body).await;
        assert_eq!(code(&answer), refused, "{method} {path}: {}", answer.1);
    }
    // Nothing was changed by those: the key and the session still work, and no second key.
    assert_eq!(send(&env, Method::GET, "/v1/me", &key, None).await.0, StatusCode::OK);
    let (_, list) = send(&env, Method::GET, "/v1/me/api-keys", &alice.token, None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    let (status, _) = send(&env, Method::GET, "/v1/me/sessions", &alice.token, None).await;
    assert_eq!(status, StatusCode::OK);

    // The key of a suspended user stops working at once (its copy was in the read cache).
    let path = format!("/v1/admin/users/{}/suspend", alice.id);
    let (status, body) = send(&env, Method::POST, &path, &env.admin, Some(json!({}))).await;
    assert!(status.is_success(), "{status} {body}");
    assert_eq!(
        code(&send(&env, Method::GET, "/v1/me", &key, None).await),
        (StatusCode::UNAUTHORIZED, Some("invalid_token"))
    );
    env.app.stop().await;
}

async fn expired_keys_are_refused_and_creation_is_validated_and_needs_a_recent_sign_in(
    test: TestDatabase,
) {
    let env = spawn(&test, &[]).await;
    let alice = person(&env, "alice@example.com").await;
    let now = env.now();
    let invalid = |field: &'static str| {
        move |answer: &(StatusCode, Value)| {
            assert_eq!(code(answer), (StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed")));
            assert_eq!(answer.1["errors"][0]["field"], field, "{}", answer.1);
        }
    };
    for (body, check) in [
        (json!({ "name": "", "scopes": ["profile:read"] }), invalid("name")),
        (json!({ "name": "x", "scopes": [] }), invalid("scopes")),
        (json!({ "name": "x", "scopes": ["profile:raed"] }), invalid("scopes")),
        (json!({ "name": "x", "scopes": ["api_keys:manage"] }), invalid("scopes")),
        (json!({ "name": "x", "scopes": ["Orders:Read"] }), invalid("scopes")),
        (json!({ "name": "x", "scopes": ["orders"] }), invalid("scopes")),
        (
            json!({ "name": "x", "scopes": ["orders:read"], "expires_at": now }),
            invalid("expires_at"),
        ),
    ] {
        check(&send(&env, Method::POST, "/v1/me/api-keys", &alice.token, Some(body)).await);
    }
    for body in [json!({ "name": "x" }), json!({ "name": "x", "scopes": ["a:b"], "owner": "me" })] {
        let answer = send(&env, Method::POST, "/v1/me/api-keys", &alice.token, Some(body)).await;
        assert_eq!(answer.0, StatusCode::UNPROCESSABLE_ENTITY, "{}", answer.1);
    }

    let (status, created) = send(
        &env,
        Method::POST,
        "/v1/me/api-keys",
        &alice.token,
        Some(json!({ "name": "short", "scopes": ["profile:read"], "expires_at": now + 120 })),
    )
    .await;
    assert_eq!((status, created["expires_at"].as_u64()), (StatusCode::CREATED, Some(now + 120)));
    let key = key_of(&created);
    assert_eq!(send(&env, Method::GET, "/v1/me", &key, None).await.0, StatusCode::OK);
    env.clock.advance(120);
    assert_eq!(
        code(&send(&env, Method::GET, "/v1/me", &key, None).await),
        (StatusCode::UNAUTHORIZED, Some("invalid_token"))
    );

    // Past the step-up window (300 s by default) the session must sign in again to make one.
    env.clock.advance(200);
    let body = json!({ "name": "late", "scopes": ["profile:read"] });
    assert_eq!(
        code(&send(&env, Method::POST, "/v1/me/api-keys", &alice.token, Some(body)).await),
        (StatusCode::FORBIDDEN, Some("reauthentication_required"))
    );
    env.app.stop().await;
}

async fn a_confidential_client_introspects_keys(test: TestDatabase) {
    let env = spawn(&test, &[]).await;
    let alice = person(&env, "alice@example.com").await;
    let (client_id, secret) = env
        .app
        .client(NewClient {
            name: "Orders API".into(),
            grant_types: vec!["client_credentials".into()],
            scopes: vec!["orders:read".into()],
            ..NewClient::default()
        })
        .await;
    let secret = secret.unwrap();
    let (public_id, _) = env
        .app
        .client(NewClient {
            name: "SPA".into(),
            public: true,
            grant_types: vec!["authorization_code".into()],
            redirect_uris: vec!["https://spa.example/cb".into()],
            ..NewClient::default()
        })
        .await;
    let now = env.now();
    let (_, created) = send(
        &env,
        Method::POST,
        "/v1/me/api-keys",
        &alice.token,
        Some(json!({ "name": "orders", "scopes": ["orders:read", "orders:write"], "expires_at": now + 3600 })),
    )
    .await;
    let key = key_of(&created);
    let introspect = |token: String| {
        let (client_id, secret) = (client_id.clone(), secret.clone());
        let app = &env.app;
        async move {
            app.post_form("/oauth2/introspect", Some((&client_id, &secret)), &[("token", &token)])
                .await
        }
    };

    let (status, answer) = introspect(key.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["active"], true, "{answer}");
    assert_eq!(answer["token_type"], "api_key");
    assert_eq!(answer["scope"], "orders:read orders:write");
    assert_eq!(answer["sub"], alice.id.as_str());
    assert!(answer["org_id"].is_null() && answer.get("org_id").is_some(), "{answer}");
    assert_eq!(answer["exp"], now + 3600);

    // A public client holds no secret: it may not introspect.
    let (status, answer) = env
        .app
        .post_form("/oauth2/introspect", None, &[("client_id", &public_id), ("token", &key)])
        .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );

    // Made-up and revoked keys are inactive (and nothing more is said).
    let (_, answer) = introspect("gtk_nothing".into()).await;
    assert_eq!(answer, json!({ "active": false }));
    let path = format!("/v1/me/api-keys/{}", created["id"].as_str().unwrap());
    send(&env, Method::DELETE, &path, &alice.token, None).await;
    let (status, answer) = introspect(key).await;
    assert_eq!((status, answer), (StatusCode::OK, json!({ "active": false })));

    // An organization's key names the organization.
    let (_, org) = send(
        &env,
        Method::POST,
        "/v1/organizations",
        &alice.token,
        Some(json!({ "name": "Acme", "slug": "acme" })),
    )
    .await;
    let org_id = org["id"].as_str().unwrap();
    let org_key = key_of(
        &create_key(
            &env,
            &format!("/v1/organizations/{org_id}/api-keys"),
            &alice.token,
            &["orders:read"],
        )
        .await,
    );
    let (_, answer) = introspect(org_key.clone()).await;
    assert_eq!(answer["active"], true);
    assert_eq!(answer["org_id"], org_id);
    assert_eq!(answer["sub"], org_id);
    assert!(answer["exp"].is_null());
    // Deleting the organization takes its keys with it, cached copies included (the first
    // use recorded itself and evicted the key; this second one, within the minute, leaves it
    // in the cache).
    assert_eq!(introspect(org_key.clone()).await.1["active"], true);
    let (status, body) =
        send(&env, Method::DELETE, &format!("/v1/organizations/{org_id}"), &alice.token, None)
            .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (_, answer) = introspect(org_key).await;
    assert_eq!(answer, json!({ "active": false }));
    env.app.stop().await;
}

async fn organization_keys_need_api_keys_manage_and_admins_see_every_key(test: TestDatabase) {
    let env = spawn(&test, &[]).await;
    let owner = person(&env, "olga@example.com").await;
    let member = person(&env, "mia@example.com").await;
    let outsider = person(&env, "otto@example.com").await;
    let (_, org) = send(
        &env,
        Method::POST,
        "/v1/organizations",
        &owner.token,
        Some(json!({ "name": "Acme", "slug": "acme" })),
    )
    .await;
    let org = org["id"].as_str().unwrap().to_owned();
    let (_, other_org) = send(
        &env,
        Method::POST,
        "/v1/organizations",
        &outsider.token,
        Some(json!({ "name": "Other", "slug": "other" })),
    )
    .await;
    let other_org = other_org["id"].as_str().unwrap().to_owned();
    let (status, _) = send(
        &env,
        Method::POST,
        &format!("/v1/admin/organizations/{org}/members"),
        &env.admin,
        Some(json!({ "user_id": member.id, "role": "member" })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let keys = format!("/v1/organizations/{org}/api-keys");
    let body = json!({ "name": "billing", "scopes": ["billing:read"] });

    // Members without api_keys:manage are denied; outsiders do not learn it exists.
    let denied = (StatusCode::FORBIDDEN, Some("permission_denied"));
    let hidden = (StatusCode::NOT_FOUND, Some("not_found"));
    assert_eq!(
        code(&send(&env, Method::POST, &keys, &member.token, Some(body.clone())).await),
        denied
    );
    assert_eq!(code(&send(&env, Method::GET, &keys, &member.token, None).await), denied);
    assert_eq!(
        code(&send(&env, Method::POST, &keys, &outsider.token, Some(body.clone())).await),
        hidden
    );
    assert_eq!(code(&send(&env, Method::GET, &keys, &outsider.token, None).await), hidden);

    // Organization keys carry only resource-server scopes.
    let personal_scope = json!({ "name": "x", "scopes": ["profile:read"] });
    assert_eq!(
        send(&env, Method::POST, &keys, &owner.token, Some(personal_scope)).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let created = create_key(&env, &keys, &owner.token, &["billing:read"]).await;
    assert_eq!(created["organization_id"], org.as_str());
    assert!(created["user_id"].is_null());
    assert_eq!(created["created_by"], owner.id.as_str());
    let key = key_of(&created);
    let key_id = created["id"].as_str().unwrap().to_owned();
    let (status, list) = send(&env, Method::GET, &keys, &owner.token, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["data"][0]["id"], key_id.as_str());
    assert!(list["data"][0].get("key").is_none());
    // Not the owner's personal key.
    let (_, mine) = send(&env, Method::GET, "/v1/me/api-keys", &owner.token, None).await;
    assert_eq!(mine["data"], json!([]));
    // An organization key acts for no user on the Gatehouse API.
    assert_eq!(
        code(&send(&env, Method::GET, "/v1/me", &key, None).await),
        (StatusCode::FORBIDDEN, Some("insufficient_scope"))
    );

    // Revoking: members denied, through another organization not found, the owner can.
    let one = format!("{keys}/{key_id}");
    assert_eq!(code(&send(&env, Method::DELETE, &one, &member.token, None).await), denied);
    let elsewhere = format!("/v1/organizations/{other_org}/api-keys/{key_id}");
    assert_eq!(code(&send(&env, Method::DELETE, &elsewhere, &outsider.token, None).await), hidden);
    assert_eq!(code(&send(&env, Method::DELETE, &one, &outsider.token, None).await), hidden);
    assert_eq!(send(&env, Method::GET, "/v1/me", &key, None).await.0, StatusCode::FORBIDDEN);
    let (status, _) = send(&env, Method::DELETE, &one, &owner.token, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        code(&send(&env, Method::GET, "/v1/me", &key, None).await),
        (StatusCode::UNAUTHORIZED, Some("invalid_token"))
    );
    // The organization is the audit events' target.
    let actions = audit_actions(&env, &org).await;
    assert_eq!(actions[..2], ["api_key.revoked", "api_key.created"]);

    // Admins see every key (users' and organizations'), a page at a time, and revoke any.
    env.clock.advance(1);
    let personal = create_key(&env, "/v1/me/api-keys", &member.token, &["profile:read"]).await;
    let personal_key = key_of(&personal);
    let (status, page) =
        send(&env, Method::GET, "/v1/admin/api-keys?limit=1", &env.admin, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    assert_eq!(page["data"][0]["id"], personal["id"]);
    assert_eq!(page["data"][0]["user_id"], member.id.as_str());
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, rest) = send(
        &env,
        Method::GET,
        &format!("/v1/admin/api-keys?limit=1&cursor={cursor}"),
        &env.admin,
        None,
    )
    .await;
    assert_eq!(rest["data"][0]["id"], key_id.as_str());
    assert!(rest["next_cursor"].is_null());
    // Plain users are not admins.
    assert_eq!(
        send(&env, Method::GET, "/v1/admin/api-keys", &owner.token, None).await.0,
        StatusCode::FORBIDDEN
    );
    let path = format!("/v1/admin/api-keys/{}", personal["id"].as_str().unwrap());
    let (status, _) = send(&env, Method::DELETE, &path, &env.admin, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        send(&env, Method::GET, "/v1/me", &personal_key, None).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, _) =
        send(&env, Method::DELETE, "/v1/admin/api-keys/key_nope", &env.admin, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    env.app.stop().await;
}

async fn a_personal_key_acts_in_an_organization_while_its_owner_is_a_member(test: TestDatabase) {
    let env = spawn(&test, &[]).await;
    let owner = person(&env, "owner@example.com").await;
    let member = person(&env, "member@example.com").await;
    let (client_id, secret) = env
        .app
        .client(NewClient {
            name: "Orders API".into(),
            grant_types: vec!["client_credentials".into()],
            scopes: vec!["orders:read".into()],
            ..NewClient::default()
        })
        .await;
    let secret = secret.unwrap();
    let introspect = |token: String| {
        let (client_id, secret) = (client_id.clone(), secret.clone());
        let app = &env.app;
        async move {
            app.post_form("/oauth2/introspect", Some((&client_id, &secret)), &[("token", &token)])
                .await
                .1
        }
    };
    let (_, org) = send(
        &env,
        Method::POST,
        "/v1/organizations",
        &owner.token,
        Some(json!({ "name": "Acme", "slug": "acme" })),
    )
    .await;
    let org_id = org["id"].as_str().unwrap().to_owned();
    let body = |organization: &str| {
        Some(
            json!({ "name": "acme ci", "scopes": ["orders:read"], "organization_id": organization }),
        )
    };

    // Not a member: the organization does not exist for them.
    let answer = send(&env, Method::POST, "/v1/me/api-keys", &member.token, body(&org_id)).await;
    assert_eq!(code(&answer), (StatusCode::NOT_FOUND, Some("not_found")));

    let (status, added) = env
        .app
        .send(
            Method::POST,
            &format!("/v1/admin/organizations/{org_id}/members"),
            Some(&env.admin),
            Some(json!({ "user_id": member.id, "role": "member" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{added}");
    let (status, created) =
        send(&env, Method::POST, "/v1/me/api-keys", &member.token, body(&org_id)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["user_id"], member.id.as_str());
    assert_eq!(created["organization_id"], org_id.as_str());
    let key = key_of(&created);
    // It is the member's own key (their list), not the organization's.
    let (_, mine) = send(&env, Method::GET, "/v1/me/api-keys", &member.token, None).await;
    assert_eq!(mine["data"][0]["organization_id"], org_id.as_str());
    let (_, theirs) = send(
        &env,
        Method::GET,
        &format!("/v1/organizations/{org_id}/api-keys"),
        &owner.token,
        None,
    )
    .await;
    assert_eq!(theirs["data"], json!([]));

    let answer = introspect(key.clone()).await;
    assert_eq!(answer["active"], true, "{answer}");
    assert_eq!(answer["sub"], member.id.as_str());
    assert_eq!(answer["org_id"], org_id.as_str());

    // Removed from the organization: the key stops at once.
    let (status, _) = send(
        &env,
        Method::DELETE,
        &format!("/v1/organizations/{org_id}/members/{}", member.id),
        &owner.token,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(introspect(key).await, json!({ "active": false }));

    // An organization's own key acts in that organization only.
    let answer = send(
        &env,
        Method::POST,
        &format!("/v1/organizations/{org_id}/api-keys"),
        &owner.token,
        body("org_elsewhere"),
    )
    .await;
    assert_eq!(code(&answer), (StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed")));
    env.app.stop().await;
}

async fn keys_read_and_update_organizations_within_their_scopes_and_permissions(
    test: TestDatabase,
) {
    let env = spawn(&test, &[]).await;
    let owner = person(&env, "owner@example.com").await;
    let member = person(&env, "member@example.com").await;
    let mut organizations = Vec::new();
    for slug in ["acme", "beta"] {
        let (status, org) = send(
            &env,
            Method::POST,
            "/v1/organizations",
            &owner.token,
            Some(json!({ "name": slug, "slug": slug })),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{org}");
        organizations.push(org["id"].as_str().unwrap().to_owned());
        let (status, _) = env
            .app
            .send(
                Method::POST,
                &format!("/v1/admin/organizations/{}/members", organizations.last().unwrap()),
                Some(&env.admin),
                Some(json!({ "user_id": member.id, "role": "member" })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let (acme, beta) = (&organizations[0], &organizations[1]);
    let key = |token: String, scopes: Vec<&'static str>, organization: Option<String>| {
        let env = &env;
        async move {
            let mut body = json!({ "name": "k", "scopes": scopes });
            if let Some(organization) = organization {
                body["organization_id"] = json!(organization);
            }
            let (status, created) =
                send(env, Method::POST, "/v1/me/api-keys", &token, Some(body)).await;
            assert_eq!(status, StatusCode::CREATED, "{created}");
            key_of(&created)
        }
    };
    let rename = |key: String, id: String, name: &'static str| {
        let env = &env;
        async move {
            send(
                env,
                Method::PATCH,
                &format!("/v1/organizations/{id}"),
                &key,
                Some(json!({ "name": name })),
            )
            .await
        }
    };

    // organizations:read reads, never writes.
    let reader = key(owner.token.clone(), vec!["organizations:read"], None).await;
    let (status, one) =
        send(&env, Method::GET, &format!("/v1/organizations/{acme}"), &reader, None).await;
    assert_eq!((status, one["slug"].as_str()), (StatusCode::OK, Some("acme")));
    let answer = rename(reader.clone(), acme.clone(), "Acme 2").await;
    assert_eq!(code(&answer), (StatusCode::FORBIDDEN, Some("insufficient_scope")));

    // organizations:write writes where the key's user holds org:update...
    let writer = key(owner.token.clone(), vec!["organizations:write"], None).await;
    let (status, renamed) = rename(writer.clone(), acme.clone(), "Acme Renamed").await;
    assert_eq!((status, renamed["name"].as_str()), (StatusCode::OK, Some("Acme Renamed")));
    // ...and nowhere else: a member's key meets the member's permissions.
    let member_writer = key(member.token.clone(), vec!["organizations:write"], None).await;
    let answer = rename(member_writer, acme.clone(), "Mine now").await;
    assert_eq!(code(&answer), (StatusCode::FORBIDDEN, Some("permission_denied")));

    // A key acting in Acme reaches Acme only: the list shows it alone, Beta is not found.
    let acting = key(
        owner.token.clone(),
        vec!["organizations:read", "organizations:write"],
        Some(acme.clone()),
    )
    .await;
    let (status, list) = send(&env, Method::GET, "/v1/organizations", &acting, None).await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> =
        list["data"].as_array().unwrap().iter().map(|org| org["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![acme.as_str()]);
    let answer = send(&env, Method::GET, &format!("/v1/organizations/{beta}"), &acting, None).await;
    assert_eq!(code(&answer), (StatusCode::NOT_FOUND, Some("not_found")));
    let answer = rename(acting.clone(), beta.clone(), "Beta 2").await;
    assert_eq!(code(&answer), (StatusCode::NOT_FOUND, Some("not_found")));
    let (status, _) = rename(acting, acme.clone(), "Acme Again").await;
    assert_eq!(status, StatusCode::OK);
    env.app.stop().await;
}
