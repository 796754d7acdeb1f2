//! The admin dashboard (`/admin`) and the admin API it shares its rules with, on both
//! backends: who may open it (signed in, the admin role, the second factor when the admin has
//! one), the overview's counts (`GET /v1/admin/stats`), finding a user and acting on the
//! account (suspend, unsuspend, end a session — a recent authentication for the destructive
//! ones), the audit log page, the sessions API (`/v1/admin/users/{id}/sessions*`), and OAuth
//! clients on the dashboard (the secret shown once) and through `PATCH /v1/admin/clients/{id}`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use gatehouse_store::backend_tests;
use gatehouse_store::testing::TestDatabase;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::STRONG_PASSWORD;
use support::mfa::{self, totp};
use support::oauth_browser::{Browser, Page};

backend_tests!(
    the_dashboard_is_for_admins_with_their_second_factor,
    admins_find_users_act_on_them_and_read_the_audit_log,
    the_overview_and_session_apis_answer_admins_only,
    admins_register_edit_rotate_and_delete_clients,
    admins_rotate_signing_keys_and_revoke_admin_keys,
    admins_see_organizations_and_webhook_deliveries,
    admins_list_and_revoke_api_keys,
    admins_impersonate_a_user_for_a_while_with_a_reason,
    the_impersonation_api_marks_and_bounds_the_session,
);

const ROOT: &str = "root@example.com";

/// An admin with a password, created through the admin API.
async fn create_admin(env: &mfa::Env) -> String {
    let (status, user) = env
        .app
        .post(
            "/v1/admin/users",
            Some(&env.admin),
            json!({ "email": ROOT, "password": STRONG_PASSWORD, "admin": true, "email_verified": true }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    user["id"].as_str().unwrap().to_owned()
}

/// A browser signed in through `/login` on its way to `path`; answers the page it lands on.
async fn signed_in(browser: &mut Browser, path: &str, email: &str) -> Page {
    let first = browser.get(path).await;
    assert_eq!(first.status, StatusCode::SEE_OTHER, "{}", first.body);
    let login_path = first.location.unwrap();
    assert!(login_path.starts_with("/login?return_to="), "{login_path}");
    let login = browser.get(&login_path).await;
    browser.sign_in(&login, email, STRONG_PASSWORD).await
}

/// Posts a dashboard form with the CSRF token `page` carries.
async fn post_form(
    browser: &mut Browser,
    page: &Page,
    path: &str,
    fields: &[(&str, &str)],
) -> Page {
    let csrf = page.field("csrf_token").unwrap();
    let mut form = vec![("csrf_token", csrf.as_str())];
    form.extend_from_slice(fields);
    browser.post(path, &form).await
}

async fn the_dashboard_is_for_admins_with_their_second_factor(test: TestDatabase) {
    let env = mfa::spawn(&test, &[]).await;
    create_admin(&env).await;
    env.user("plain@example.com").await;

    // Signed in without the admin role: refused with a page.
    let mut plain = Browser::new(&env.app.base_url);
    let refused = signed_in(&mut plain, "/admin", "plain@example.com").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert!(!refused.body.contains("<svg"), "the overview was shown");

    // An admin without a second factor: the overview, with its charts.
    let mut browser = Browser::new(&env.app.base_url);
    let overview = signed_in(&mut browser, "/admin", ROOT).await;
    assert_eq!(overview.status, StatusCode::OK, "{}", overview.body);
    for expected in ["Overview", "Sign-ins", "Failed sign-ins", "Sign-ups", "<svg", "database"] {
        assert!(overview.body.contains(expected), "{expected} missing:\n{}", overview.body);
    }

    // The admin adds a second factor (through the API, another session): this browser's
    // session did not use it, so the dashboard asks for it first.
    let (_, tokens) = env.app.sign_in(ROOT, STRONG_PASSWORD).await;
    let (secret, _) = env.enrol_totp(tokens["access_token"].as_str().unwrap()).await;
    let gated = browser.get("/admin/users").await;
    assert_eq!(gated.status, StatusCode::SEE_OTHER);
    assert_eq!(gated.location.as_deref(), Some("/admin/verify?return_to=%2Fadmin%2Fusers"));
    let verify = browser.get("/admin/verify?return_to=%2Fadmin%2Fusers").await;
    assert_eq!(verify.status, StatusCode::OK, "{}", verify.body);
    assert!(verify.body.contains("Authenticator app"), "{}", verify.body);
    let wrong = post_form(
        &mut browser,
        &verify,
        "/admin/verify",
        &[("method", "totp"), ("code", "000000"), ("return_to", "/admin/users")],
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{}", wrong.body);
    // The password does not replace the factor here.
    let password = post_form(
        &mut browser,
        &verify,
        "/admin/verify",
        &[("method", "password"), ("password", STRONG_PASSWORD), ("return_to", "/admin/users")],
    )
    .await;
    assert_eq!(password.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", password.body);
    assert_eq!(browser.get("/admin").await.status, StatusCode::SEE_OTHER, "still gated");
    // The next step's code (the enrolment used this one's).
    env.clock.advance(30);
    let code = totp(&secret, env.now());
    let verified = post_form(
        &mut browser,
        &verify,
        "/admin/verify",
        &[("method", "totp"), ("code", &code), ("return_to", "/admin/users")],
    )
    .await;
    assert_eq!(verified.status, StatusCode::SEE_OTHER, "{}", verified.body);
    assert_eq!(verified.location.as_deref(), Some("/admin/users"));
    let users = browser.get("/admin/users").await;
    assert_eq!(users.status, StatusCode::OK, "{}", users.body);
    assert!(users.body.contains("plain@example.com"), "{}", users.body);
    // Only dashboard paths are returned to.
    let elsewhere = post_form(
        &mut browser,
        &verify,
        "/admin/verify",
        &[("method", "totp"), ("code", &code), ("return_to", "https://evil.example/")],
    )
    .await;
    assert_ne!(elsewhere.location.as_deref(), Some("https://evil.example/"));
    // The step-up is audited as the API's is.
    let (_, log) =
        env.app.get_auth("/v1/admin/audit-log?action=user.reauthenticated", &env.admin).await;
    assert!(!log["data"].as_array().unwrap().is_empty(), "{log}");
    env.app.stop().await;
}

async fn admins_find_users_act_on_them_and_read_the_audit_log(test: TestDatabase) {
    let env = mfa::spawn(&test, &[]).await;
    create_admin(&env).await;
    let ada_token = env.user("ada@example.com").await;
    let ada = env.user_id("ada@example.com").await;
    let mut browser = Browser::new(&env.app.base_url);
    let overview = signed_in(&mut browser, "/admin", ROOT).await;
    assert_eq!(overview.status, StatusCode::OK);

    // Found by address, by id, not by a part of the address.
    for query in ["ada%40example.com", ada.as_str()] {
        let found = browser.get(&format!("/admin/users?q={query}")).await;
        assert!(found.body.contains(&format!("/admin/users/{ada}")), "{query}: {}", found.body);
    }
    let partial = browser.get("/admin/users?q=ada").await;
    assert!(!partial.body.contains(&format!("/admin/users/{ada}")), "{}", partial.body);

    // The account's page: its session, and ending it.
    let detail = browser.get(&format!("/admin/users/{ada}")).await;
    assert_eq!(detail.status, StatusCode::OK, "{}", detail.body);
    let (_, sessions) =
        env.app.get_auth(&format!("/v1/admin/users/{ada}/sessions"), &env.admin).await;
    let session_id = sessions["data"][0]["id"].as_str().unwrap().to_owned();
    assert!(detail.body.contains(&session_id), "{}", detail.body);
    let action = format!("/admin/users/{ada}/action");
    let ended = post_form(
        &mut browser,
        &detail,
        &action,
        &[("action", "revoke_session"), ("session_id", &session_id)],
    )
    .await;
    assert_eq!(ended.status, StatusCode::SEE_OTHER, "{}", ended.body);
    let (status, _) = env.app.get_auth("/v1/me", &ada_token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the ended session still works");

    // Suspend and unsuspend, as the API does.
    let suspended = post_form(&mut browser, &detail, &action, &[("action", "suspend")]).await;
    assert_eq!(suspended.location.as_deref(), Some(format!("/admin/users/{ada}").as_str()));
    let (_, user) = env.app.get_auth(&format!("/v1/admin/users/{ada}"), &env.admin).await;
    assert_eq!(user["suspended"], true, "{user}");
    assert!(browser.get(&format!("/admin/users/{ada}")).await.body.contains("Unsuspend"));
    post_form(&mut browser, &detail, &action, &[("action", "unsuspend")]).await;
    let (_, user) = env.app.get_auth(&format!("/v1/admin/users/{ada}"), &env.admin).await;
    assert_eq!(user["suspended"], false, "{user}");

    // The address marked verified, and a reset link sent to the user (only to them).
    let (_, user) = env.app.get_auth(&format!("/v1/admin/users/{ada}"), &env.admin).await;
    if user["email_verified"] == false {
        post_form(&mut browser, &detail, &action, &[("action", "verify_email")]).await;
        let (_, user) = env.app.get_auth(&format!("/v1/admin/users/{ada}"), &env.admin).await;
        assert_eq!(user["email_verified"], true, "{user}");
    }
    let sent =
        post_form(&mut browser, &detail, &action, &[("action", "send_password_reset")]).await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.body);
    let mail = env.sink.wait_for_subject("ada@example.com", "password").await;
    assert!(mail.link_for("/reset-password").is_some(), "{}", mail.text());
    assert!(!sent.body.contains("reset-password"), "the link reached the admin");

    // A form without the CSRF token changes nothing.
    let forged = browser.post(&action, &[("action", "suspend")]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let (_, user) = env.app.get_auth(&format!("/v1/admin/users/{ada}"), &env.admin).await;
    assert_eq!(user["suspended"], false);

    // An old sign-in: a destructive action asks to confirm first (the password, as this
    // admin has no second factor), then goes through.
    env.clock.advance(600);
    let asked = post_form(&mut browser, &detail, &action, &[("action", "suspend")]).await;
    let verify_path = format!("/admin/verify?return_to=%2Fadmin%2Fusers%2F{ada}");
    assert_eq!(asked.location.as_deref(), Some(verify_path.as_str()));
    let (_, user) = env.app.get_auth(&format!("/v1/admin/users/{ada}"), &env.admin).await;
    assert_eq!(user["suspended"], false, "suspended without a recent authentication");
    let verify = browser.get(&verify_path).await;
    let confirmed = post_form(
        &mut browser,
        &verify,
        "/admin/verify",
        &[
            ("method", "password"),
            ("password", STRONG_PASSWORD),
            ("return_to", &format!("/admin/users/{ada}")),
        ],
    )
    .await;
    assert_eq!(confirmed.location.as_deref(), Some(format!("/admin/users/{ada}").as_str()));
    post_form(&mut browser, &detail, &action, &[("action", "suspend")]).await;
    let (_, user) = env.app.get_auth(&format!("/v1/admin/users/{ada}"), &env.admin).await;
    assert_eq!(user["suspended"], true);

    // The audit log page: the admin's actions on the account, filtered.
    let audit = browser.get("/admin/audit?action=user.suspended").await;
    assert_eq!(audit.status, StatusCode::OK, "{}", audit.body);
    assert!(audit.body.contains(&ada), "{}", audit.body);
    assert!(!audit.body.contains("user.unsuspended"), "the filter let another action through");
    let all = browser.get(&format!("/admin/audit?subject={ada}")).await;
    for action in ["user.suspended", "user.unsuspended", "user.created"] {
        assert!(all.body.contains(action), "{action} missing:\n{}", all.body);
    }
    // The page's download links export what its filters match.
    assert!(all.body.contains("audit&#x2f;export?subject="), "{}", all.body);
    let csv = browser.get(&format!("/admin/audit/export?subject={ada}&format=csv")).await;
    assert_eq!(csv.status, StatusCode::OK, "{}", csv.body);
    let mut lines = csv.body.lines();
    assert!(lines.next().unwrap().contains("action"), "a header line: {}", csv.body);
    let rows: Vec<&str> = lines.collect();
    assert!(rows.iter().any(|row| row.contains("user.unsuspended")), "{}", csv.body);
    assert!(rows.iter().all(|row| row.contains(&ada)), "another user's event: {}", csv.body);
    let jsonl = browser.get("/admin/audit/export?action=user.suspended").await;
    let events: Vec<Value> =
        jsonl.body.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    assert!(!events.is_empty() && events.iter().all(|event| event["action"] == "user.suspended"));
    assert_eq!(browser.get("/admin/audit/export?format=xml").await.status, StatusCode::BAD_REQUEST);
    // An unknown account is a 404 page; a bad cursor a 4xx page, not a 500.
    assert_eq!(browser.get("/admin/users/usr_unknown").await.status, StatusCode::NOT_FOUND);
    assert!(browser.get("/admin/audit?cursor=junk").await.status.is_client_error());
    let revoked = browser.get(&format!("/admin/audit?target={session_id}")).await;
    assert!(revoked.body.contains("session.revoked"), "{}", revoked.body);
    assert!(revoked.body.contains("revoked_by_admin"), "{}", revoked.body);

    // Deleted (the sign-in is recent after the confirmation above).
    let deleted = post_form(&mut browser, &detail, &action, &[("action", "delete")]).await;
    assert_eq!(deleted.location.as_deref(), Some("/admin/users"));
    env.sink.wait_for_subject("ada@example.com", "account was deleted").await;
    let (status, _) = env.app.get_auth(&format!("/v1/admin/users/{ada}"), &env.admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    env.app.stop().await;
}

/// How many audit events `action` has (up to 100).
async fn audit_count(env: &mfa::Env, action: &str) -> i64 {
    let path = format!("/v1/admin/audit-log?action={action}&limit=100");
    let (_, log) = env.app.get_auth(&path, &env.admin).await;
    log["data"].as_array().unwrap().len() as i64
}

async fn the_overview_and_session_apis_answer_admins_only(test: TestDatabase) {
    let env = mfa::spawn(&test, &[]).await;
    let app = &env.app;
    let token = env.user("bea@example.com").await;
    env.user("cy@example.com").await;
    let (status, _) = app.sign_in("bea@example.com", STRONG_PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.sign_in("bea@example.com", "not-the-password").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, stats) = app.get_auth("/v1/admin/stats", &env.admin).await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    let days = stats["days"].as_array().unwrap();
    assert_eq!(days.len(), 30);
    let today = &days[29];
    // The same counts the audit log gives for the same actions.
    assert_eq!(today["sign_ups"], audit_count(&env, "user.created").await, "{stats}");
    assert_eq!(today["sign_ins"], audit_count(&env, "session.created").await, "{stats}");
    assert_eq!(today["failed_sign_ins"], 1, "{stats}");
    assert!(today["sign_ins"].as_i64().unwrap() >= 3, "{stats}");
    assert_eq!(days[0]["sign_ins"], 0);
    assert_eq!(stats["users"], 2);
    assert!(stats["active_sessions"].as_i64().unwrap() >= 3, "{stats}");
    let services: Vec<&str> =
        stats["services"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert!(services.contains(&"database"), "{services:?}");
    // A week's window; out-of-range windows refused.
    let (_, week) = app.get_auth("/v1/admin/stats?days=7", &env.admin).await;
    assert_eq!(week["days"].as_array().unwrap().len(), 7);
    for days in ["0", "91", "x"] {
        let (status, problem) =
            app.get_auth(&format!("/v1/admin/stats?days={days}"), &env.admin).await;
        assert!(status.is_client_error(), "{days}: {status} {problem}");
    }
    // Tomorrow, today's sign-ins are yesterday's.
    env.clock.advance(86_400);
    let (_, later) = app.get_auth("/v1/admin/stats", &env.admin).await;
    assert_eq!(later["days"][28]["sign_ins"], today["sign_ins"]);
    assert_eq!(later["days"][29]["sign_ins"], 0);
    env.clock.advance(-86_400);

    // Admins only.
    let (status, _) = app.get_auth("/v1/admin/stats", &token).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app.get_json("/v1/admin/stats").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // The sessions API.
    let bea = env.user_id("bea@example.com").await;
    let path = format!("/v1/admin/users/{bea}/sessions");
    let (status, sessions) = app.get_auth(&path, &env.admin).await;
    assert_eq!(status, StatusCode::OK, "{sessions}");
    let listed: Vec<Value> = sessions["data"].as_array().unwrap().clone();
    assert_eq!(listed.len(), 2, "{sessions}");
    assert!(!sessions.to_string().contains("refresh"), "{sessions}");
    let first = listed[0]["id"].as_str().unwrap().to_owned();
    let (status, _) =
        app.send(reqwest::Method::DELETE, &format!("{path}/{first}"), Some(&env.admin), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) =
        app.send(reqwest::Method::DELETE, &format!("{path}/{first}"), Some(&env.admin), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Another user's session through this user's path: not found.
    let cy = env.user_id("cy@example.com").await;
    let (_, theirs) = app.get_auth(&format!("/v1/admin/users/{cy}/sessions"), &env.admin).await;
    let theirs = theirs["data"][0]["id"].as_str().unwrap().to_owned();
    let (status, _) = app
        .send(reqwest::Method::DELETE, &format!("{path}/{theirs}"), Some(&env.admin), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, revoked) = app.send(reqwest::Method::DELETE, &path, Some(&env.admin), None).await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    assert_eq!(revoked["revoked"], 1);
    let (status, _) = app.get_auth("/v1/me", &token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "every session ended");
    let (_, log) = app.get_auth("/v1/admin/audit-log?action=session.revoked", &env.admin).await;
    assert!(
        log["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|event| event["metadata"]["reason"] == "revoked_by_admin"),
        "{log}"
    );
    for unknown in ["/v1/admin/users/usr_nobody/sessions"] {
        let (status, _) = app.get_auth(unknown, &env.admin).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    let (status, _) = app.get_auth(&path, &token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // The password-reset email, sent by an admin: the link reaches only the user and works.
    let reset_path = format!("/v1/admin/users/{cy}/password-reset");
    let (status, sent) = app.post(&reset_path, Some(&env.admin), json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
    assert_eq!(sent, json!({ "sent": true }), "no link in the answer");
    let mail = env.sink.wait_for_subject("cy@example.com", "Reset your").await;
    let link_token = mail.token_for("/reset-password").expect("a reset link");
    let (status, _) = app
        .post(
            "/v1/auth/password/reset",
            None,
            json!({ "token": link_token, "new_password": support::OTHER_STRONG_PASSWORD }),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.sign_in("cy@example.com", support::OTHER_STRONG_PASSWORD).await.0,
        StatusCode::OK
    );
    let (_, log) =
        app.get_auth("/v1/admin/audit-log?action=user.password_reset_requested", &env.admin).await;
    assert_eq!(log["data"][0]["metadata"]["by"], "admin", "{log}");
    let (status, _) = app.post(&reset_path, Some(&token), json!({})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a user's token (signed out) is no admin");
    let (status, _) =
        app.post("/v1/admin/users/usr_nobody/password-reset", Some(&env.admin), json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    env.app.stop().await;
}

/// The client secret a page shows (`<code class="secret">`).
fn shown_secret(page: &Page) -> Option<String> {
    let start = page.body.find("<code class=\"secret\">")? + "<code class=\"secret\">".len();
    let end = start + page.body[start..].find("</code>")?;
    Some(page.body[start..end].to_owned())
}

/// Whether `secret` authenticates `client_id` at the introspection endpoint.
async fn secret_works(env: &mfa::Env, client_id: &str, secret: &str) -> bool {
    let (status, _) =
        env.app.post_form("/oauth2/introspect", Some((client_id, secret)), &[("token", "x")]).await;
    status == StatusCode::OK
}

async fn admins_register_edit_rotate_and_delete_clients(test: TestDatabase) {
    let env = mfa::spawn(&test, &[]).await;
    create_admin(&env).await;
    let mut browser = Browser::new(&env.app.base_url);
    signed_in(&mut browser, "/admin", ROOT).await;
    let form = browser.get("/admin/clients/new").await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);

    // A refused registration shows the form again with the reason, and registers nothing.
    let refused = post_form(
        &mut browser,
        &form,
        "/admin/clients",
        &[
            ("name", "Shop"),
            ("kind", "confidential"),
            ("redirect_uris", "http://shop.example/callback"),
            ("grant_authorization_code", "on"),
        ],
    )
    .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", refused.body);
    assert!(refused.body.contains("redirect_uris"), "{}", refused.body);
    let (_, clients) = env.app.get_auth("/v1/admin/clients", &env.admin).await;
    assert_eq!(clients["data"], json!([]));

    // Registered: the secret is on this page, and works.
    let created = post_form(
        &mut browser,
        &form,
        "/admin/clients",
        &[
            ("name", "Shop"),
            ("kind", "confidential"),
            ("redirect_uris", "https://shop.example/callback\r\n"),
            ("grant_authorization_code", "on"),
            ("grant_refresh_token", "on"),
            ("scopes", "openid email"),
        ],
    )
    .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    let secret = shown_secret(&created).expect("the secret is shown");
    assert!(secret.starts_with("gtc_"), "{secret}");
    let (_, clients) = env.app.get_auth("/v1/admin/clients", &env.admin).await;
    let client = clients["data"][0].clone();
    assert_eq!(client["name"], "Shop");
    assert_eq!(client["redirect_uris"], json!(["https://shop.example/callback"]));
    assert_eq!(client["scopes"], json!(["openid", "email"]));
    let client_id = client["client_id"].as_str().unwrap().to_owned();
    assert!(secret_works(&env, &client_id, &secret).await);
    // Never shown again.
    let page_path = format!("/admin/clients/{client_id}");
    let detail = browser.get(&page_path).await;
    assert_eq!(detail.status, StatusCode::OK, "{}", detail.body);
    assert!(!detail.body.contains(&secret), "the secret was shown again");
    assert!(browser.get("/admin/clients").await.body.contains(&client_id));

    // Edited: two redirect URIs, no consent asked.
    let edited = post_form(
        &mut browser,
        &detail,
        &page_path,
        &[
            ("name", "Shop"),
            ("redirect_uris", "https://shop.example/callback\nhttps://shop.example/other"),
            ("grant_authorization_code", "on"),
            ("grant_refresh_token", "on"),
            ("scopes", "openid email profile"),
            ("skip_consent", "on"),
        ],
    )
    .await;
    assert_eq!(edited.status, StatusCode::SEE_OTHER, "{}", edited.body);
    let (_, client) = env.app.get_auth(&format!("/v1/admin/clients/{client_id}"), &env.admin).await;
    assert_eq!(client["redirect_uris"].as_array().unwrap().len(), 2, "{client}");
    assert_eq!(client["skip_consent"], true);
    assert!(secret_works(&env, &client_id, &secret).await, "an edit keeps the secret");

    // A new secret, shown once; the old one keeps working for the overlap.
    let rotated =
        post_form(&mut browser, &detail, &format!("{page_path}/rotate-secret"), &[]).await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
    let new_secret = shown_secret(&rotated).unwrap();
    assert_ne!(new_secret, secret);
    assert!(secret_works(&env, &client_id, &new_secret).await);

    // The API's change of the same registration, checked the same way.
    let path = format!("/v1/admin/clients/{client_id}");
    let (status, changed) = env
        .app
        .send(
            reqwest::Method::PATCH,
            &path,
            Some(&env.admin),
            Some(json!({ "scopes": ["openid"] })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["scopes"], json!(["openid"]));
    assert!(changed.get("client_secret").is_none());
    let (status, problem) = env
        .app
        .send(
            reqwest::Method::PATCH,
            &path,
            Some(&env.admin),
            Some(json!({ "grant_types": ["password"] })),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    let (status, _) = env
        .app
        .send(reqwest::Method::PATCH, "/v1/admin/clients/nobody", Some(&env.admin), Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, log) =
        env.app.get_auth("/v1/admin/audit-log?action=admin.client_updated", &env.admin).await;
    assert_eq!(log["data"][0]["metadata"]["changed"], json!(["scopes"]), "{log}");

    // Deleting needs a recent sign-in.
    env.clock.advance(600);
    let asked = post_form(&mut browser, &detail, &format!("{page_path}/delete"), &[]).await;
    assert!(
        asked.location.as_deref().unwrap_or("").starts_with("/admin/verify"),
        "{:?}",
        asked.location
    );
    let verify = browser.get(asked.location.as_deref().unwrap()).await;
    post_form(
        &mut browser,
        &verify,
        "/admin/verify",
        &[("method", "password"), ("password", STRONG_PASSWORD), ("return_to", &page_path)],
    )
    .await;
    let deleted = post_form(&mut browser, &detail, &format!("{page_path}/delete"), &[]).await;
    assert_eq!(deleted.location.as_deref(), Some("/admin/clients"));
    let (status, _) = env.app.get_auth(&path, &env.admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(!secret_works(&env, &client_id, &new_secret).await);
    env.app.stop().await;
}

async fn admins_rotate_signing_keys_and_revoke_admin_keys(test: TestDatabase) {
    let env = mfa::spawn(&test, &[]).await;
    create_admin(&env).await;
    let spare = env.app.admin_key().await;
    let mut browser = Browser::new(&env.app.base_url);
    signed_in(&mut browser, "/admin", ROOT).await;
    let (_, keys) = env.app.get_auth("/v1/admin/keys", &env.admin).await;
    let first_kid = keys["data"][0]["kid"].as_str().unwrap().to_owned();
    let page = browser.get("/admin/keys").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains(&first_kid), "{}", page.body);

    // Rotation: a new active key, the old one retired but still published.
    let rotated = post_form(&mut browser, &page, "/admin/keys/rotate", &[]).await;
    assert_eq!(rotated.location.as_deref(), Some("/admin/keys"));
    let (_, keys) = env.app.get_auth("/v1/admin/keys", &env.admin).await;
    let keys = keys["data"].as_array().unwrap().clone();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0]["state"], "active");
    assert_ne!(keys[0]["kid"], first_kid.as_str());
    assert_eq!(keys[1]["kid"], first_kid.as_str());
    assert_eq!(keys[1]["published"], true);

    // An admin key revoked from the page stops working at once.
    let (status, _) = env.app.get_auth("/v1/admin/users", &spare).await;
    assert_eq!(status, StatusCode::OK);
    let (_, listed) = env.app.get_auth("/v1/admin/admin-keys", &env.admin).await;
    let spare_id = listed["data"][0]["id"].as_str().unwrap().to_owned();
    let page = browser.get("/admin/keys").await;
    assert!(page.body.contains(&spare_id), "{}", page.body);
    let revoked =
        post_form(&mut browser, &page, &format!("/admin/keys/admin-keys/{spare_id}/revoke"), &[])
            .await;
    assert_eq!(revoked.location.as_deref(), Some("/admin/keys"));
    let (status, _) = env.app.get_auth("/v1/admin/users", &spare).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = env.app.get_auth("/v1/admin/users", &env.admin).await;
    assert_eq!(status, StatusCode::OK, "only that key was revoked");

    // An old sign-in: rotating asks to confirm first.
    env.clock.advance(600);
    let asked = post_form(&mut browser, &page, "/admin/keys/rotate", &[]).await;
    assert_eq!(asked.location.as_deref(), Some("/admin/verify?return_to=%2Fadmin%2Fkeys"));
    let (_, keys) = env.app.get_auth("/v1/admin/keys", &env.admin).await;
    assert_eq!(keys["data"].as_array().unwrap().len(), 2, "rotated without a recent sign-in");
    let (_, log) =
        env.app.get_auth("/v1/admin/audit-log?action=signing_key.rotated", &env.admin).await;
    assert_eq!(log["data"].as_array().unwrap().len(), 1, "{log}");
    env.app.stop().await;
}

/// The endpoint's deliveries once its last one has had an attempt (the outbox worker runs on
/// its own; polled against a deadline, not slept on).
async fn attempted_deliveries(env: &mfa::Env, webhook: &str) -> Value {
    let path = format!("/v1/admin/webhooks/{webhook}/deliveries");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let (_, deliveries) = env.app.get_auth(&path, &env.admin).await;
        let first = &deliveries["data"][0];
        if !first["last_attempt"].is_null() && first["status"] != "sending" {
            return deliveries;
        }
        assert!(std::time::Instant::now() < deadline, "no attempt: {deliveries}");
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn admins_see_organizations_and_webhook_deliveries(test: TestDatabase) {
    let env = mfa::spawn(&test, &[("GATEHOUSE_OUTBOUND_ALLOW_PRIVATE_TARGETS", "true")]).await;
    let root = create_admin(&env).await;
    let mut browser = Browser::new(&env.app.base_url);
    signed_in(&mut browser, "/admin", ROOT).await;

    // An organization: listed, found by slug, its owner among the members; deleted.
    let (status, organization) = env
        .app
        .post(
            "/v1/admin/organizations",
            Some(&env.admin),
            json!({ "owner_user_id": root, "name": "Analytical Engines", "slug": "engines" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{organization}");
    let organization_id = organization["id"].as_str().unwrap().to_owned();
    let list = browser.get("/admin/organizations").await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    assert!(list.body.contains("Analytical Engines"), "{}", list.body);
    assert!(browser.get("/admin/organizations?q=engines").await.body.contains(&organization_id));
    assert!(
        !browser
            .get("/admin/organizations?q=nothing-like-it")
            .await
            .body
            .contains(&organization_id)
    );
    let page_path = format!("/admin/organizations/{organization_id}");
    let detail = browser.get(&page_path).await;
    assert!(detail.body.contains(ROOT) && detail.body.contains("owner"), "{}", detail.body);
    assert_eq!(
        browser.get("/admin/organizations?cursor=junk").await.status,
        StatusCode::BAD_REQUEST
    );
    let deleted = post_form(&mut browser, &detail, &format!("{page_path}/delete"), &[]).await;
    assert_eq!(deleted.location.as_deref(), Some("/admin/organizations"));
    let (status, _) =
        env.app.get_auth(&format!("/v1/admin/organizations/{organization_id}"), &env.admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A webhook endpoint nobody answers at: its test message, tried and failed, delivered again
    // from its page; turned off and on.
    let (status, webhook) = env
        .app
        .post(
            "/v1/admin/webhooks",
            Some(&env.admin),
            json!({ "url": "http://127.0.0.1:9/hook", "events": ["*"] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{webhook}");
    let webhook_id = webhook["id"].as_str().unwrap().to_owned();
    assert!(browser.get("/admin/webhooks").await.body.contains("127.0.0.1:9"));
    let page_path = format!("/admin/webhooks/{webhook_id}");
    let detail = browser.get(&page_path).await;
    assert_eq!(detail.status, StatusCode::OK, "{}", detail.body);
    let action = format!("{page_path}/action");
    let tested = post_form(&mut browser, &detail, &action, &[("action", "test")]).await;
    assert_eq!(tested.location.as_deref(), Some(page_path.as_str()));
    let deliveries = attempted_deliveries(&env, &webhook_id).await;
    let delivery = deliveries["data"][0]["id"].as_str().unwrap().to_owned();
    let log = browser.get(&page_path).await;
    assert!(log.body.contains("webhook.test") && log.body.contains(&delivery), "{}", log.body);
    let again = post_form(
        &mut browser,
        &detail,
        &action,
        &[("action", "redeliver"), ("delivery_id", &delivery)],
    )
    .await;
    assert_eq!(again.location.as_deref(), Some(page_path.as_str()), "{}", again.body);
    let (_, retried) =
        env.app.get_auth("/v1/admin/audit-log?action=delivery.retried", &env.admin).await;
    assert_eq!(retried["data"][0]["target_id"], delivery.as_str(), "{retried}");
    // Another endpoint's delivery is not redelivered from this page.
    let refused = post_form(
        &mut browser,
        &detail,
        &action,
        &[("action", "redeliver"), ("delivery_id", "dlv_other")],
    )
    .await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND);
    post_form(&mut browser, &detail, &action, &[("action", "disable")]).await;
    let (_, endpoint) =
        env.app.get_auth(&format!("/v1/admin/webhooks/{webhook_id}"), &env.admin).await;
    assert_eq!(endpoint["active"], false, "{endpoint}");
    post_form(&mut browser, &detail, &action, &[("action", "enable")]).await;
    let (_, endpoint) =
        env.app.get_auth(&format!("/v1/admin/webhooks/{webhook_id}"), &env.admin).await;
    assert_eq!(endpoint["active"], true);
    env.app.stop().await;
}

async fn admins_list_and_revoke_api_keys(test: TestDatabase) {
    let env = mfa::spawn(&test, &[]).await;
    create_admin(&env).await;
    let token = env.user("fay@example.com").await;
    let (status, key) = env
        .app
        .post(
            "/v1/me/api-keys",
            Some(&token),
            json!({ "name": "deploy bot", "scopes": ["profile:read"] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    let secret = key["key"].as_str().unwrap().to_owned();
    let key_id = key["id"].as_str().unwrap().to_owned();
    let (status, _) = env.app.get_auth("/v1/me", &secret).await;
    assert_eq!(status, StatusCode::OK);

    let mut browser = Browser::new(&env.app.base_url);
    signed_in(&mut browser, "/admin", ROOT).await;
    let page = browser.get("/admin/api-keys").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("deploy bot") && page.body.contains(&key_id), "{}", page.body);
    assert!(!page.body.contains(&secret), "the key itself was shown");
    let revoked =
        post_form(&mut browser, &page, &format!("/admin/api-keys/{key_id}/revoke"), &[]).await;
    assert_eq!(revoked.location.as_deref(), Some("/admin/api-keys"));
    let (status, _) = env.app.get_auth("/v1/me", &secret).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let page = browser.get("/admin/api-keys").await;
    assert!(!page.body.contains(&format!("/admin/api-keys/{key_id}/revoke")), "still offered");
    env.app.stop().await;
}

/// Impersonation from the dashboard: a reason and a length, a recent sign-in; the browser
/// becomes the user with a banner on every account page; what needs the user themselves is
/// refused (deletion, applications); stopping brings the admin's own session back; audited.
async fn admins_impersonate_a_user_for_a_while_with_a_reason(test: TestDatabase) {
    let env = mfa::spawn(&test, &[]).await;
    let admin_id = create_admin(&env).await;
    env.user("carol@example.com").await;
    let carol = env.user_id("carol@example.com").await;
    let user_path = format!("/admin/users/{carol}");
    let mut browser = Browser::new(&env.app.base_url);
    let page = signed_in(&mut browser, &user_path, ROOT).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Start impersonating"), "{}", page.body);
    let start = format!("/admin/users/{carol}/impersonate");

    // A reason is required, and the length is bounded.
    let refused =
        post_form(&mut browser, &page, &start, &[("reason", "x"), ("minutes", "15")]).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    let refused =
        post_form(&mut browser, &page, &start, &[("reason", "Ticket 4521"), ("minutes", "600")])
            .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    // Another admin cannot be impersonated.
    let own = post_form(
        &mut browser,
        &page,
        &format!("/admin/users/{admin_id}/impersonate"),
        &[("reason", "Ticket 4521"), ("minutes", "15")],
    )
    .await;
    assert_eq!(own.status, StatusCode::FORBIDDEN, "{}", own.body);

    let started = post_form(
        &mut browser,
        &page,
        &start,
        &[("reason", "Ticket 4521: cannot see invoices"), ("minutes", "15")],
    )
    .await;
    assert_eq!(started.status, StatusCode::SEE_OTHER, "{}", started.body);
    assert_eq!(started.location.as_deref(), Some("/account"));
    let account = browser.get("/account").await;
    assert_eq!(account.status, StatusCode::OK, "{}", account.body);
    assert!(account.body.contains("You are acting as carol@example.com"), "{}", account.body);
    assert!(account.body.contains("Stop impersonating"));
    let profile = browser.get("/account/profile").await;
    assert!(profile.body.contains("You are acting as carol@example.com"), "{}", profile.body);
    // The dashboard is not carol's.
    assert_eq!(browser.get("/admin").await.status, StatusCode::FORBIDDEN);
    // Deleting the account needs carol herself.
    let privacy = browser.get("/account/privacy").await;
    assert!(privacy.body.contains("You are acting as"), "{}", privacy.body);
    let deletion = post_form(&mut browser, &privacy, "/account/delete", &[("confirm", "on")]).await;
    assert_eq!(deletion.status, StatusCode::FORBIDDEN, "{}", deletion.body);
    assert!(deletion.body.contains("Not while impersonating"), "{}", deletion.body);
    let (status, _) = env.app.get_auth(&format!("/v1/admin/users/{carol}"), &env.admin).await;
    assert_eq!(status, StatusCode::OK, "the account is still there");

    // Audited with the reason, by the admin, on carol.
    let (_, log) =
        env.app.get_auth("/v1/admin/audit-log?action=user.impersonated", &env.admin).await;
    let events = log["data"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{log}");
    assert_eq!(events[0]["actor_id"], admin_id.as_str());
    assert_eq!(events[0]["target_id"], carol.as_str());
    assert_eq!(events[0]["metadata"]["reason"], "Ticket 4521: cannot see invoices");
    let (_, sessions) =
        env.app.get_auth(&format!("/v1/admin/users/{carol}/sessions"), &env.admin).await;
    let marked: Vec<&Value> = sessions["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|session| session["impersonator"] == admin_id.as_str())
        .collect();
    assert_eq!(marked.len(), 1, "{sessions}");

    // Stopping: the impersonation session ends and the admin is back, without signing in.
    let stopped = post_form(&mut browser, &account, "/account/impersonation/stop", &[]).await;
    assert_eq!(stopped.status, StatusCode::SEE_OTHER, "{}", stopped.body);
    assert_eq!(stopped.location.as_deref(), Some(user_path.as_str()));
    let back = browser.get(&user_path).await;
    assert_eq!(back.status, StatusCode::OK, "{}", back.body);
    assert!(!back.body.contains("You are acting as"));
    let (_, sessions) =
        env.app.get_auth(&format!("/v1/admin/users/{carol}/sessions"), &env.admin).await;
    assert!(
        sessions["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|session| session["impersonator"].is_null()),
        "{sessions}"
    );

    // Time-limited: a new impersonation of one minute is over after it.
    let page = browser.get(&user_path).await;
    let started =
        post_form(&mut browser, &page, &start, &[("reason", "Ticket 4522"), ("minutes", "1")])
            .await;
    assert_eq!(started.location.as_deref(), Some("/account"));
    assert_eq!(browser.get("/account").await.status, StatusCode::OK);
    env.clock.advance(61);
    let over = browser.get("/account").await;
    assert_eq!(over.status, StatusCode::SEE_OTHER, "{}", over.body);
    env.app.stop().await;
}

/// `POST /v1/admin/users/{id}/impersonate`: tokens whose access token says who acts
/// (`act.sub`), that live no longer than the session, and cannot do what needs the user.
async fn the_impersonation_api_marks_and_bounds_the_session(test: TestDatabase) {
    let env = mfa::spawn(&test, &[]).await;
    let app = &env.app;
    let admin_id = create_admin(&env).await;
    let own_token = env.user("dora@example.com").await;
    let dora = env.user_id("dora@example.com").await;
    let path = format!("/v1/admin/users/{dora}/impersonate");

    for (body, status) in [
        (json!({ "reason": "no" }), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({ "reason": "Ticket 7", "minutes": 0 }), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({ "reason": "Ticket 7", "minutes": 61 }), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({ "minutes": 5 }), StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let (answer, problem) = app.post(&path, Some(&env.admin), body.clone()).await;
        assert_eq!(answer, status, "{body}: {problem}");
    }
    let (status, problem) = app
        .post(
            &format!("/v1/admin/users/{admin_id}/impersonate"),
            Some(&env.admin),
            json!({ "reason": "Ticket 7" }),
        )
        .await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")));
    // A user is not an admin.
    let (status, _) = app.post(&path, Some(&own_token), json!({ "reason": "Ticket 7" })).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, tokens) =
        app.post(&path, Some(&env.admin), json!({ "reason": "Ticket 7", "minutes": 2 })).await;
    assert_eq!(status, StatusCode::CREATED, "{tokens}");
    let token = tokens["access_token"].as_str().unwrap();
    let claims = mfa::claims(token);
    assert_eq!(claims["sub"], dora.as_str());
    let actor = claims["act"]["sub"].as_str().expect("an act claim");
    assert_ne!(actor, dora.as_str());
    assert!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap() <= 120, "{claims}");
    assert!(tokens["expires_in"].as_i64().unwrap() <= 120, "{tokens}");
    let (_, log) = app.get_auth("/v1/admin/audit-log?action=user.impersonated", &env.admin).await;
    assert_eq!(log["data"][0]["actor_id"], actor, "{log}");
    assert_eq!(log["data"][0]["metadata"]["reason"], "Ticket 7");

    let (status, me) = app.get_auth("/v1/me", token).await;
    assert_eq!((status, me["email"].as_str()), (StatusCode::OK, Some("dora@example.com")));
    // Whatever needs the user themselves is refused, with or without a proof.
    let (status, problem) = app
        .post(
            "/v1/me/password",
            Some(token),
            json!({ "current_password": STRONG_PASSWORD, "new_password": "An0ther-long-passphrase!" }),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("impersonation_restricted"))
    );
    let (status, problem) =
        app.patch("/v1/me/email", Some(token), json!({ "email": "mallory@example.com" })).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("impersonation_restricted"))
    );
    let (status, problem) = app
        .send(
            reqwest::Method::DELETE,
            "/v1/me",
            Some(token),
            Some(json!({ "password": STRONG_PASSWORD })),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("impersonation_restricted"))
    );
    let (status, _) = app.sign_in("dora@example.com", STRONG_PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "the password did not change");

    // Over after its minutes: the token and its refresh both stop.
    env.clock.advance(121);
    let (status, _) = app.get_auth("/v1/me", token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = app
        .post("/v1/auth/refresh", None, json!({ "refresh_token": tokens["refresh_token"] }))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    env.app.stop().await;
}
