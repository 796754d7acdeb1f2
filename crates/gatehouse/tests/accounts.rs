//! The account loop over HTTP on both backends: sign-up → sign-in → me → refresh → sign-out,
//! refresh-token reuse, lockout, sessions, password changes and bad input.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use gatehouse_crypto::{MasterKey, PublicKeySet, jsonwebtoken};
use gatehouse_store::backend_tests;
use gatehouse_store::testing::TestDatabase;
use reqwest::{Method, StatusCode};
use serde_json::json;
use support::{OTHER_STRONG_PASSWORD, STRONG_PASSWORD, TestApp};

backend_tests!(
    sign_up_sign_in_me_refresh_sign_out,
    access_tokens_are_rfc9068_jwts_verifiable_through_jwks,
    a_token_from_one_instance_works_on_another,
    refresh_token_reuse_revokes_the_family,
    a_rotation_touches_its_session_at_most_once_a_minute,
    concurrent_refreshes_of_one_token_give_exactly_one_success,
    lockout_after_repeated_failures_is_revealed_to_nobody_guessing,
    password_change_revokes_other_sessions_and_refuses_reuse,
    wrong_current_passwords_count_towards_the_lockout,
    users_list_and_revoke_their_sessions,
    my_lists_are_pages_with_limit_and_cursor,
    bad_sign_up_input_is_refused_and_writes_nothing,
    profile_updates_validate_and_keep_usernames_unique,
);

async fn sign_up_sign_in_me_refresh_sign_out(test: TestDatabase) {
    let app = TestApp::spawn(&test).await;
    let (status, body) = app
        .post(
            "/v1/auth/sign-up",
            None,
            json!({ "email": "  Ada@Example.COM ", "password": STRONG_PASSWORD, "username": "Ada", "first_name": "Ada" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["user"]["email"], "ada@example.com", "emails are normalised");
    assert_eq!(body["user"]["username"], "ada");
    assert!(body["user"].get("password_hash").is_none());
    let tokens = &body["tokens"];
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 900);
    assert!(tokens["refresh_token"].as_str().unwrap().starts_with("gtr_"));

    let (status, me) = app.get_auth("/v1/me", tokens["access_token"].as_str().unwrap()).await;
    assert_eq!((status, &me["id"]), (StatusCode::OK, &body["user"]["id"]));

    // Sign in by email (any case) and by username.
    let (status, by_email) = app.sign_in("ADA@example.com", STRONG_PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{by_email}");
    let (status, _) = app
        .post("/v1/auth/sign-in", None, json!({ "username": "ADA", "password": STRONG_PASSWORD }))
        .await;
    assert_eq!(status, StatusCode::OK);

    let (status, refreshed) = app
        .post("/v1/auth/refresh", None, json!({ "refresh_token": by_email["refresh_token"] }))
        .await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    assert_eq!(refreshed["session_id"], by_email["session_id"]);
    assert_ne!(refreshed["refresh_token"], by_email["refresh_token"], "refresh tokens rotate");
    let access = refreshed["access_token"].as_str().unwrap();
    assert_eq!(app.get_auth("/v1/me", access).await.0, StatusCode::OK);

    let (status, _) = app.post("/v1/auth/sign-out", Some(access), json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, problem) = app.get_auth("/v1/me", access).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_token"))
    );
    let (status, problem) = app
        .post("/v1/auth/refresh", None, json!({ "refresh_token": refreshed["refresh_token"] }))
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_grant"))
    );
    // The first session is untouched by signing out of another.
    assert_eq!(
        app.get_auth("/v1/me", tokens["access_token"].as_str().unwrap()).await.0,
        StatusCode::OK
    );
    app.stop().await;
}

async fn access_tokens_are_rfc9068_jwts_verifiable_through_jwks(test: TestDatabase) {
    let app = TestApp::spawn(&test).await;
    let tokens = app.sign_up("jwt@example.com", STRONG_PASSWORD).await;
    let token = tokens["access_token"].as_str().unwrap();
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    let (_, jwks) = app.get_json("/.well-known/jwks.json").await;
    assert_eq!(Some(jwks["keys"][0]["kid"].as_str().unwrap()), header.kid.as_deref());

    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_issuer(&[&app.base_url]);
    validation.set_audience(&[&app.base_url]);
    let claims: serde_json::Value =
        PublicKeySet::from_jwks(&jwks).unwrap().verify(token, Some("at+jwt"), &validation).unwrap();
    assert_eq!(claims["sub"], tokens["user"]["id"]);
    assert_eq!(claims["sid"], tokens["session_id"]);
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 900);
    assert!(claims["jti"].as_str().unwrap().starts_with("at_"));
    app.stop().await;
}

async fn a_token_from_one_instance_works_on_another(test: TestDatabase) {
    // Instances behind one load balancer share the master key and the public issuer.
    let master_key = MasterKey::generate();
    let shared = [("GATEHOUSE_ISSUER", "https://id.example.test")];
    let first = TestApp::spawn_with(&test, &master_key, &shared).await;
    let second = TestApp::spawn_with(&test, &master_key, &shared).await;
    let tokens = first.sign_up("two@example.com", STRONG_PASSWORD).await;
    let (status, me) = second.get_auth("/v1/me", tokens["access_token"].as_str().unwrap()).await;
    assert_eq!((status, &me["email"]), (StatusCode::OK, &json!("two@example.com")));
    let (status, _) = second
        .post("/v1/auth/refresh", None, json!({ "refresh_token": tokens["refresh_token"] }))
        .await;
    assert_eq!(status, StatusCode::OK);
    first.stop().await;
    second.stop().await;
}

async fn refresh_token_reuse_revokes_the_family(test: TestDatabase) {
    let app = TestApp::spawn(&test).await;
    let first = app.sign_up("reuse@example.com", STRONG_PASSWORD).await;
    let (_, second) = app
        .post("/v1/auth/refresh", None, json!({ "refresh_token": first["refresh_token"] }))
        .await;
    let (_, third) = app
        .post("/v1/auth/refresh", None, json!({ "refresh_token": second["refresh_token"] }))
        .await;
    assert_eq!(
        app.get_auth("/v1/me", third["access_token"].as_str().unwrap()).await.0,
        StatusCode::OK
    );

    // An attacker replays the first (spent) token: refused, and the whole family dies.
    let (status, problem) = app
        .post("/v1/auth/refresh", None, json!({ "refresh_token": first["refresh_token"] }))
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_grant"))
    );
    let (status, _) = app
        .post("/v1/auth/refresh", None, json!({ "refresh_token": third["refresh_token"] }))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the newest token of the family is revoked too");
    assert_eq!(
        app.get_auth("/v1/me", third["access_token"].as_str().unwrap()).await.0,
        StatusCode::UNAUTHORIZED
    );

    let admin = app.admin_key().await;
    let (_, log) = app.get_auth("/v1/admin/audit-log?action=session.revoked", &admin).await;
    assert_eq!(log["data"].as_array().unwrap().len(), 1, "{log}");
    assert_eq!(log["data"][0]["metadata"]["reason"], "refresh_token_reuse");
    assert_eq!(log["data"][0]["target_id"], first["session_id"]);

    for garbage in ["", "ghr_", "not-a-token", &"ghr_x".repeat(100)] {
        let (status, problem) =
            app.post("/v1/auth/refresh", None, json!({ "refresh_token": garbage })).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("invalid_grant")),
            "{garbage}"
        );
    }
    app.stop().await;
}

async fn concurrent_refreshes_of_one_token_give_exactly_one_success(test: TestDatabase) {
    let app = TestApp::spawn(&test).await;
    let tokens = app.sign_up("race@example.com", STRONG_PASSWORD).await;
    let refresh_token = tokens["refresh_token"].as_str().unwrap().to_owned();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let client = app.http.clone();
        let url = app.url("/v1/auth/refresh");
        let body = json!({ "refresh_token": refresh_token });
        tasks.spawn(async move { client.post(url).json(&body).send().await.unwrap().status() });
    }
    let mut statuses = Vec::new();
    while let Some(status) = tasks.join_next().await {
        statuses.push(status.unwrap());
    }
    let successes = statuses.iter().filter(|status| **status == StatusCode::OK).count();
    assert_eq!(successes, 1, "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK || *s == StatusCode::UNAUTHORIZED),
        "{statuses:?}"
    );
    app.stop().await;
}

async fn lockout_after_repeated_failures_is_revealed_to_nobody_guessing(test: TestDatabase) {
    let app =
        TestApp::spawn_with(&test, &MasterKey::generate(), &[("GATEHOUSE_LOCKOUT_THRESHOLD", "3")])
            .await;
    app.sign_up("locked@example.com", STRONG_PASSWORD).await;
    let unknown = app.sign_in("nobody@example.com", STRONG_PASSWORD).await;
    for _ in 0..3 {
        let (status, problem) = app.sign_in("locked@example.com", "wrong-password-1").await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("invalid_credentials"))
        );
        // A wrong password reads exactly like an unknown account.
        assert_eq!(problem, unknown.1);
    }
    // Locked: a wrong password still says only invalid_credentials...
    let (status, problem) = app.sign_in("locked@example.com", "wrong-password-1").await;
    assert_eq!((status, problem), (StatusCode::UNAUTHORIZED, unknown.1.clone()));
    // ...and so does the right password: the lock confirms no guess (no 423, no Retry-After).
    let response = app
        .http
        .post(app.url("/v1/auth/sign-in"))
        .json(&json!({ "email": "locked@example.com", "password": STRONG_PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().get("retry-after").is_none());
    let problem: serde_json::Value = response.json().await.unwrap();
    assert_eq!(problem, unknown.1);

    let admin = app.admin_key().await;
    let (_, log) = app.get_auth("/v1/admin/audit-log?action=user.locked", &admin).await;
    assert_eq!(log["data"].as_array().unwrap().len(), 1, "locked once, not extended: {log}");
    let (_, users) = app.get_auth("/v1/admin/users?email=locked@example.com", &admin).await;
    let user_id = users["data"][0]["id"].as_str().unwrap().to_owned();
    let (status, _) =
        app.post(&format!("/v1/admin/users/{user_id}/unlock"), Some(&admin), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(app.sign_in("locked@example.com", STRONG_PASSWORD).await.0, StatusCode::OK);
    app.stop().await;
}

/// A stolen access token must not buy unlimited guesses at the password through
/// `POST /v1/me/password`: a wrong current password counts like a wrong sign-in.
async fn wrong_current_passwords_count_towards_the_lockout(test: TestDatabase) {
    let app =
        TestApp::spawn_with(&test, &MasterKey::generate(), &[("GATEHOUSE_LOCKOUT_THRESHOLD", "3")])
            .await;
    let tokens = app.sign_up("guessed@example.com", STRONG_PASSWORD).await;
    let token = tokens["access_token"].as_str().unwrap();
    let user_id = tokens["user"]["id"].as_str().unwrap().to_owned();
    let guess = |n: usize| json!({ "current_password": format!("guess-number-{n}"), "new_password": OTHER_STRONG_PASSWORD });
    for n in 0..3 {
        let (status, problem) = app.post("/v1/me/password", Some(token), guess(n)).await;
        assert_eq!(
            (status, problem["errors"][0]["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("current_password"))
        );
    }
    let admin = app.admin_key().await;
    let (_, user) = app.get_auth(&format!("/v1/admin/users/{user_id}"), &admin).await;
    assert_eq!(user["failed_sign_in_attempts"], 3, "{user}");
    assert!(user["locked_until"].is_i64(), "the third wrong password locks: {user}");
    let (_, log) =
        app.get_auth("/v1/admin/audit-log?action=user.password_change_failed", &admin).await;
    assert_eq!(log["data"].as_array().unwrap().len(), 3, "{log}");
    assert_eq!(log["data"][0]["metadata"]["reason"], "wrong_password");
    let (_, log) = app.get_auth("/v1/admin/audit-log?action=user.locked", &admin).await;
    assert_eq!(log["data"].as_array().unwrap().len(), 1, "{log}");
    // The lock holds for sign-in too (answered as a wrong password), and the password did
    // not change.
    let (status, problem) = app.sign_in("guessed@example.com", STRONG_PASSWORD).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_credentials"))
    );
    app.stop().await;
}

async fn password_change_revokes_other_sessions_and_refuses_reuse(test: TestDatabase) {
    let app = TestApp::spawn(&test).await;
    let first = app.sign_up("change@example.com", STRONG_PASSWORD).await;
    let (_, second) = app.sign_in("change@example.com", STRONG_PASSWORD).await;
    let token = first["access_token"].as_str().unwrap();
    let change =
        |current: &str, new: &str| json!({ "current_password": current, "new_password": new });

    let (status, problem) =
        app.post("/v1/me/password", Some(token), change("wrong", OTHER_STRONG_PASSWORD)).await;
    assert_eq!(
        (status, problem["errors"][0]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("current_password"))
    );
    let (status, problem) =
        app.post("/v1/me/password", Some(token), change(STRONG_PASSWORD, STRONG_PASSWORD)).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("password_reused"))
    );
    let (status, problem) =
        app.post("/v1/me/password", Some(token), change(STRONG_PASSWORD, "short")).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("password_too_weak"))
    );
    assert!(
        problem["errors"].as_array().unwrap().iter().any(|e| e["code"] == "too_short"),
        "{problem}"
    );

    let (status, _) = app
        .post("/v1/me/password", Some(token), change(STRONG_PASSWORD, OTHER_STRONG_PASSWORD))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(app.get_auth("/v1/me", token).await.0, StatusCode::OK, "the changing session stays");
    assert_eq!(
        app.get_auth("/v1/me", second["access_token"].as_str().unwrap()).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.sign_in("change@example.com", STRONG_PASSWORD).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.sign_in("change@example.com", OTHER_STRONG_PASSWORD).await.0, StatusCode::OK);
    // The old password is in the history now.
    let (status, problem) = app
        .post("/v1/me/password", Some(token), change(OTHER_STRONG_PASSWORD, STRONG_PASSWORD))
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("password_reused"))
    );
    app.stop().await;
}

async fn users_list_and_revoke_their_sessions(test: TestDatabase) {
    let app = TestApp::spawn(&test).await;
    let first = app.sign_up("sessions@example.com", STRONG_PASSWORD).await;
    let (_, second) = app.sign_in("sessions@example.com", STRONG_PASSWORD).await;
    let other = app.sign_up("other@example.com", STRONG_PASSWORD).await;
    let token = first["access_token"].as_str().unwrap();
    let (status, sessions) = app.get_auth("/v1/me/sessions", token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sessions["next_cursor"], serde_json::Value::Null, "{sessions}");
    let sessions = sessions["data"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    let current: Vec<bool> = sessions.iter().map(|s| s["current"].as_bool().unwrap()).collect();
    assert_eq!(current.iter().filter(|c| **c).count(), 1);

    let path = |id: &serde_json::Value| format!("/v1/me/sessions/{}", id.as_str().unwrap());
    // Someone else's session is not found, and stays alive.
    let (status, _) =
        app.send(Method::DELETE, &path(&other["session_id"]), Some(token), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.get_auth("/v1/me", other["access_token"].as_str().unwrap()).await.0,
        StatusCode::OK
    );

    let (status, _) =
        app.send(Method::DELETE, &path(&second["session_id"]), Some(token), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app
        .post("/v1/auth/refresh", None, json!({ "refresh_token": second["refresh_token"] }))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.get_auth("/v1/me/sessions", token).await.1["data"].as_array().unwrap().len(), 1);
    app.stop().await;
}

/// Regression (#19, list shape): `/v1/me/*` lists answered bare arrays; they now answer
/// `{data, next_cursor}` and page with `?limit=&cursor=` like the admin lists, newest first,
/// without repeating or skipping an item across pages.
async fn my_lists_are_pages_with_limit_and_cursor(test: TestDatabase) {
    let app = TestApp::spawn(&test).await;
    let first = app.sign_up("pages@example.com", STRONG_PASSWORD).await;
    for _ in 0..2 {
        assert_eq!(app.sign_in("pages@example.com", STRONG_PASSWORD).await.0, StatusCode::OK);
    }
    let token = first["access_token"].as_str().unwrap();
    let (status, whole) = app.get_auth("/v1/me/sessions", token).await;
    assert_eq!(status, StatusCode::OK, "{whole}");
    let ids = |page: &serde_json::Value| -> Vec<String> {
        page["data"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().into()).collect()
    };
    assert_eq!((ids(&whole).len(), &whole["next_cursor"]), (3, &serde_json::Value::Null));
    let (status, page_one) = app.get_auth("/v1/me/sessions?limit=2", token).await;
    assert_eq!(status, StatusCode::OK, "{page_one}");
    let cursor = page_one["next_cursor"].as_str().expect("a next page").to_owned();
    let (status, page_two) =
        app.get_auth(&format!("/v1/me/sessions?limit=2&cursor={cursor}"), token).await;
    assert_eq!(status, StatusCode::OK, "{page_two}");
    assert_eq!(page_two["next_cursor"], serde_json::Value::Null);
    let mut paged = ids(&page_one);
    paged.extend(ids(&page_two));
    assert_eq!(paged, ids(&whole), "the pages together are the list, in order");
    // A cursor that is not one, and unknown parameters, are refused in our error format.
    for bad in ["/v1/me/sessions?cursor=nonsense", "/v1/me/sessions?page=2"] {
        let (status, problem) = app.get_auth(bad, token).await;
        assert_eq!(status.as_u16() / 100, 4, "{bad}: {problem}");
        assert!(problem["code"].is_string(), "{bad}: {problem}");
    }
    let (status, devices) = app.get_auth("/v1/me/trusted-devices?limit=1", token).await;
    assert_eq!(status, StatusCode::OK, "{devices}");
    assert_eq!(devices, json!({ "data": [], "next_cursor": null }));
    app.stop().await;
}

async fn bad_sign_up_input_is_refused_and_writes_nothing(test: TestDatabase) {
    let app = TestApp::spawn(&test).await;
    app.sign_up("taken@example.com", STRONG_PASSWORD).await;
    let cases: Vec<(serde_json::Value, StatusCode, &str, Vec<&str>)> = vec![
        (
            json!({ "email": "not-an-email", "password": STRONG_PASSWORD }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            vec!["email"],
        ),
        (
            json!({ "email": "a@example.com", "password": "short" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "password_too_weak",
            vec!["password"],
        ),
        (
            json!({ "email": "a@example.com", "password": "password123" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "password_too_weak",
            vec!["password"],
        ),
        (
            json!({ "email": "bad", "password": "short", "username": "x" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            vec!["email", "username", "password"],
        ),
        (
            json!({ "email": "a@example.com", "password": "a".repeat(300) }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "password_too_weak",
            vec!["password"],
        ),
        (
            json!({ "email": "a@example.com" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            vec![],
        ),
        (
            json!({ "email": "a@example.com", "password": STRONG_PASSWORD, "role": "admin" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            vec![],
        ),
        (
            json!({ "email": 42, "password": STRONG_PASSWORD }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            vec![],
        ),
        (
            json!({ "email": "TAKEN@example.com", "password": STRONG_PASSWORD }),
            StatusCode::CONFLICT,
            "email_taken",
            vec![],
        ),
        (
            json!({ "email": "b@example.com", "password": STRONG_PASSWORD, "username": "admin" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            vec!["username"],
        ),
    ];
    for (body, status, code, fields) in cases {
        let (answered, problem) = app.post("/v1/auth/sign-up", None, body.clone()).await;
        assert_eq!(
            (answered, problem["code"].as_str().unwrap()),
            (status, code),
            "{body} → {problem}"
        );
        let reported: Vec<&str> = problem["errors"].as_array().map_or_else(Vec::new, |errors| {
            let mut fields: Vec<&str> =
                errors.iter().map(|e| e["field"].as_str().unwrap()).collect();
            fields.dedup();
            fields
        });
        assert_eq!(reported, fields, "{body} → {problem}");
    }
    // Raw bodies that are not valid JSON requests.
    let raw: Vec<(&str, Vec<u8>, StatusCode, &str)> = vec![
        ("application/json", b"{\"email\":".to_vec(), StatusCode::BAD_REQUEST, "malformed_json"),
        (
            "text/plain",
            b"{}".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "application/json",
            vec![b' '; 200 * 1024],
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
    ];
    for (content_type, body, status, code) in raw {
        let response = app
            .http
            .post(app.url("/v1/auth/sign-up"))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{content_type}");
        assert_eq!(response.json::<serde_json::Value>().await.unwrap()["code"], code);
    }
    let admin = app.admin_key().await;
    let (_, users) = app.get_auth("/v1/admin/users", &admin).await;
    assert_eq!(users["data"].as_array().unwrap().len(), 1, "only the first sign-up wrote a user");
    let (_, log) = app.get_auth("/v1/admin/audit-log?action=user.created", &admin).await;
    assert_eq!(log["data"].as_array().unwrap().len(), 1);
    app.stop().await;
}

async fn profile_updates_validate_and_keep_usernames_unique(test: TestDatabase) {
    let app = TestApp::spawn(&test).await;
    let ada = app.sign_up("ada@example.com", STRONG_PASSWORD).await;
    let bob = app.sign_up("bob@example.com", STRONG_PASSWORD).await;
    let ada_token = ada["access_token"].as_str().unwrap();
    let bob_token = bob["access_token"].as_str().unwrap();
    let (status, me) = app
        .send(Method::PATCH, "/v1/me", Some(ada_token), Some(json!({ "username": "Lovelace", "first_name": " Ada ", "image_url": "https://example.com/a.png" })))
        .await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(
        (me["username"].as_str(), me["first_name"].as_str()),
        (Some("lovelace"), Some("Ada"))
    );
    let (status, problem) = app
        .send(Method::PATCH, "/v1/me", Some(bob_token), Some(json!({ "username": "LOVELACE" })))
        .await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::CONFLICT, Some("username_taken")));
    let (status, problem) = app
        .send(
            Method::PATCH,
            "/v1/me",
            Some(bob_token),
            Some(json!({ "image_url": "javascript:alert(1)", "first_name": "x".repeat(101) })),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["errors"].as_array().unwrap().len(), 2, "{problem}");
    // null clears; absent keeps.
    let (_, me) = app
        .send(Method::PATCH, "/v1/me", Some(ada_token), Some(json!({ "image_url": null })))
        .await;
    assert_eq!((me["image_url"].is_null(), me["username"].as_str()), (true, Some("lovelace")));
    let (status, _) = app
        .send(Method::PATCH, "/v1/me", Some(ada_token), Some(json!({ "email": "x@example.com" })))
        .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "email is not changed through PATCH /v1/me"
    );
    app.stop().await;
}

/// A refresh records the session's use (`last_used_at`, shown in the session list), but writes
/// it at most once a minute: the rotations in between leave the session row — and every
/// instance's cached copy of it — alone.
async fn a_rotation_touches_its_session_at_most_once_a_minute(test: TestDatabase) {
    let wall = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let clock = std::sync::Arc::new(gatehouse_domain::ManualClock::new(wall.as_secs() as i64));
    let app =
        TestApp::spawn_with_clock(&test, &MasterKey::generate(), &[], Some(clock.clone())).await;
    let tokens = app.sign_up("touch@example.com", STRONG_PASSWORD).await;
    let started = wall.as_secs() as i64;
    let mut refresh_token = tokens["refresh_token"].as_str().unwrap().to_owned();
    let refresh = async |refresh_token: &mut String| {
        let (status, body) =
            app.post("/v1/auth/refresh", None, json!({ "refresh_token": refresh_token })).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        *refresh_token = body["refresh_token"].as_str().unwrap().to_owned();
        body["access_token"].as_str().unwrap().to_owned()
    };
    let last_used = async |access_token: &str| {
        let (status, sessions) = app.get_auth("/v1/me/sessions", access_token).await;
        assert_eq!(status, StatusCode::OK, "{sessions}");
        sessions["data"][0]["last_used_at"].as_i64().unwrap()
    };
    clock.advance(30);
    let access_token = refresh(&mut refresh_token).await;
    assert_eq!(last_used(&access_token).await, started, "touched within the minute");
    clock.advance(31);
    let access_token = refresh(&mut refresh_token).await;
    assert_eq!(last_used(&access_token).await, started + 61, "touched after a minute");
    clock.advance(5);
    let access_token = refresh(&mut refresh_token).await;
    assert_eq!(last_used(&access_token).await, started + 61);
    app.stop().await;
}
