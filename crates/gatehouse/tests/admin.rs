//! The admin API on both backends: who may call it, users (create, list with cursor and email
//! search, update, suspend, unlock, delete) and the audit log.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use gatehouse_store::backend_tests;
use gatehouse_store::testing::TestDatabase;
use reqwest::{Method, StatusCode};
use serde_json::json;
use support::{STRONG_PASSWORD, TestApp};

backend_tests!(
    only_admin_keys_and_admin_users_reach_the_admin_api,
    admins_manage_users,
    suspension_stops_tokens_at_once,
    the_audit_log_filters_pages_and_holds_no_secrets,
);

async fn only_admin_keys_and_admin_users_reach_the_admin_api(test: TestDatabase) {
    let app = TestApp::spawn(&test).await;
    let user = app.sign_up("plain@example.com", STRONG_PASSWORD).await;
    let (status, problem) = app.send(Method::GET, "/v1/admin/users", None, None).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_token"))
    );
    let (status, problem) =
        app.get_auth("/v1/admin/users", user["access_token"].as_str().unwrap()).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")));
    let (status, _) = app.get_auth("/v1/admin/users", "gha_not-a-real-key").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let key = app.admin_key().await;
    assert!(key.starts_with("gta_"));
    let (status, created) = app
        .post("/v1/admin/users", Some(&key), json!({ "email": "root@example.com", "password": STRONG_PASSWORD, "admin": true, "email_verified": true }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(
        (created["system_role"].as_str(), created["email_verified"].as_bool()),
        (Some("admin"), Some(true))
    );
    let (_, admin_tokens) = app.sign_in("root@example.com", STRONG_PASSWORD).await;
    let (status, users) =
        app.get_auth("/v1/admin/users", admin_tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(users["data"].as_array().unwrap().len(), 2);
    app.stop().await;
}

async fn admins_manage_users(test: TestDatabase) {
    let app = TestApp::spawn(&test).await;
    let key = app.admin_key().await;
    let mut ids = Vec::new();
    for index in 0..5 {
        let (status, user) = app
            .post(
                "/v1/admin/users",
                Some(&key),
                json!({ "email": format!("user{index}@example.com") }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{user}");
        assert_eq!(user["has_password"], false);
        ids.push(user["id"].as_str().unwrap().to_owned());
    }
    // Cursor pagination walks every user once, in creation order.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(cursor) => format!("/v1/admin/users?limit=2&cursor={cursor}"),
            None => "/v1/admin/users?limit=2".to_owned(),
        };
        let (status, page) = app.get_auth(&path, &key).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        seen.extend(
            page["data"].as_array().unwrap().iter().map(|u| u["id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    let (_, found) = app.get_auth("/v1/admin/users?email=USER3@example.com", &key).await;
    assert_eq!(found["data"][0]["id"], ids[3].as_str());
    let (status, problem) = app.get_auth("/v1/admin/users?email=nonsense", &key).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed"))
    );
    let (status, problem) = app.get_auth("/v1/admin/users?limit=lots", &key).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_query"))
    );

    let path = format!("/v1/admin/users/{}", ids[0]);
    let (status, updated) = app
        .send(
            Method::PATCH,
            &path,
            Some(&key),
            Some(json!({ "private_metadata": { "plan": "pro" }, "username": "first" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(
        (updated["private_metadata"]["plan"].as_str(), updated["username"].as_str()),
        (Some("pro"), Some("first"))
    );
    let (status, _) = app
        .send(Method::PATCH, &path, Some(&key), Some(json!({ "public_metadata": [1, 2] })))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "metadata must be an object");
    let (status, problem) =
        app.post("/v1/admin/users", Some(&key), json!({ "email": "user1@example.com" })).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::CONFLICT, Some("email_taken")));

    let (status, _) = app.send(Method::DELETE, &path, Some(&key), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.get_auth(&path, &key).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.send(Method::DELETE, &path, Some(&key), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    app.stop().await;
}

async fn suspension_stops_tokens_at_once(test: TestDatabase) {
    let app = TestApp::spawn(&test).await;
    let key = app.admin_key().await;
    let tokens = app.sign_up("suspect@example.com", STRONG_PASSWORD).await;
    let user_id = tokens["user"]["id"].as_str().unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    let (status, user) =
        app.post(&format!("/v1/admin/users/{user_id}/suspend"), Some(&key), json!({})).await;
    assert_eq!((status, user["suspended"].as_bool()), (StatusCode::OK, Some(true)));
    assert_eq!(app.get_auth("/v1/me", access).await.0, StatusCode::UNAUTHORIZED);
    let (status, _) = app
        .post("/v1/auth/refresh", None, json!({ "refresh_token": tokens["refresh_token"] }))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Only the right password learns about the suspension.
    let (status, problem) = app.sign_in("suspect@example.com", STRONG_PASSWORD).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("account_suspended"))
    );
    let (status, problem) = app.sign_in("suspect@example.com", "Wrong-password-99").await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_credentials"))
    );

    let (status, _) =
        app.post(&format!("/v1/admin/users/{user_id}/unsuspend"), Some(&key), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(app.sign_in("suspect@example.com", STRONG_PASSWORD).await.0, StatusCode::OK);
    app.stop().await;
}

async fn the_audit_log_filters_pages_and_holds_no_secrets(test: TestDatabase) {
    let app = TestApp::spawn(&test).await;
    let key = app.admin_key().await;
    let tokens = app.sign_up("audited@example.com", STRONG_PASSWORD).await;
    let user_id = tokens["user"]["id"].as_str().unwrap().to_owned();
    app.sign_in("audited@example.com", "Wrong-password-99").await;
    app.sign_in("ghost@example.com", "Wrong-password-99").await;
    let (_, second) = app.sign_in("audited@example.com", STRONG_PASSWORD).await;
    app.post("/v1/auth/sign-out", second["access_token"].as_str(), json!({})).await;

    let (status, log) = app.get_auth(&format!("/v1/admin/audit-log?user_id={user_id}"), &key).await;
    assert_eq!(status, StatusCode::OK);
    let actions: Vec<&str> =
        log["data"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        [
            "session.revoked",
            "session.created",
            "user.sign_in_failed",
            "session.created",
            "user.created"
        ],
        "newest first"
    );
    let failed = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "user.sign_in_failed")
        .unwrap();
    assert_eq!(failed["metadata"]["reason"], "wrong_password");
    assert_eq!(failed["ip"], "127.0.0.1");
    assert!(failed["request_id"].as_str().is_some_and(|id| !id.is_empty()));

    let (_, unknown) = app.get_auth("/v1/admin/audit-log?action=user.sign_in_failed", &key).await;
    let reasons: Vec<&str> = unknown["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["metadata"]["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["unknown_account", "wrong_password"]);

    // Pages of two cover everything once (the user's events: the worker confirms deliveries
    // in the trail while the test pages, which would grow an unfiltered log under it).
    let (_, all) =
        app.get_auth(&format!("/v1/admin/audit-log?limit=200&user_id={user_id}"), &key).await;
    let total = all["data"].as_array().unwrap().len();
    assert_eq!(total, 5);
    let (mut paged, mut cursor) = (0, None::<String>);
    loop {
        let path =
            cursor.as_ref().map_or(format!("/v1/admin/audit-log?limit=2&user_id={user_id}"), |c| {
                format!("/v1/admin/audit-log?limit=2&user_id={user_id}&cursor={c}")
            });
        let (_, page) = app.get_auth(&path, &key).await;
        paged += page["data"].as_array().unwrap().len();
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(paged, total);
    let (status, _) = app.get_auth("/v1/admin/audit-log?cursor=garbage", &key).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let text = all.to_string();
    for secret in [
        STRONG_PASSWORD,
        "Wrong-password-99",
        tokens["refresh_token"].as_str().unwrap(),
        tokens["access_token"].as_str().unwrap(),
        &key,
        "audited@example.com",
    ] {
        assert!(!text.contains(secret), "the audit log holds a secret or an email: {secret}");
    }
    app.stop().await;
}
