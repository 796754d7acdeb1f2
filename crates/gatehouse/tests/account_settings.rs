//! The signed-in user's self-service, on both backends: the data export (`GET /v1/me/export`,
//! `/account/export`), deleting the account (`DELETE /v1/me`, `/account/delete`: a proof of
//! presence unless the sign-in is recent), the email change (a link to the new address, a
//! notice to the old one), and the profile and password pages.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use gatehouse_store::backend_tests;
use gatehouse_store::testing::TestDatabase;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::mfa;
use support::oauth_browser::{Browser, Page};
use support::{OTHER_STRONG_PASSWORD, STRONG_PASSWORD};

backend_tests!(
    the_export_holds_the_accounts_data_and_no_secret,
    deleting_ones_account_needs_presence_and_removes_it,
    a_grace_period_suspends_the_account_until_it_is_restored_or_deleted,
    the_profile_password_and_privacy_pages_work,
    an_email_change_is_confirmed_from_the_new_address,
    the_account_page_lists_and_revokes_ones_api_keys,
);

async fn get_raw(env: &mfa::Env, path: &str, token: &str) -> reqwest::Response {
    env.app.http.get(format!("{}{path}", env.app.base_url)).bearer_auth(token).send().await.unwrap()
}

async fn the_export_holds_the_accounts_data_and_no_secret(test: TestDatabase) {
    let env = mfa::spawn(&test, &[]).await;
    let token = env.user("ada@example.com").await;
    env.enrol_totp(&token).await;
    let (status, _) = env
        .app
        .send(
            reqwest::Method::PATCH,
            "/v1/me",
            Some(&token),
            Some(json!({ "first_name": "Ada", "last_name": "Lovelace" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let answer = get_raw(&env, "/v1/me/export", &token).await;
    assert_eq!(answer.status(), StatusCode::OK);
    let disposition = answer.headers()["content-disposition"].to_str().unwrap().to_owned();
    assert!(disposition.starts_with("attachment"), "{disposition}");
    assert_eq!(answer.headers()["cache-control"], "no-store");
    let export: Value = answer.json().await.unwrap();
    assert_eq!(export["format"], "gatehouse-account-export/1");
    assert_eq!(export["profile"]["email"], "ada@example.com");
    assert_eq!(export["profile"]["first_name"], "Ada");
    assert_eq!(export["sessions"].as_array().unwrap().len(), 1, "{export}");
    assert_eq!(export["mfa"]["factors"][0]["kind"], "totp", "{export}");
    let actions: Vec<&str> = export["audit_events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["action"].as_str().unwrap())
        .collect();
    for action in ["user.created", "user.updated", "user.mfa_changed"] {
        assert!(actions.contains(&action), "{action} missing: {actions:?}");
    }
    // Nothing secret: no hash, no TOTP secret, no token.
    let text = export.to_string();
    for secret in ["argon2", "password_hash", "secret", &token] {
        assert!(!text.contains(secret), "the export holds {secret}");
    }
    // A session only: no token, or another user's key, gets it.
    let (status, _) = env.app.get_json("/v1/me/export").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, key) = env
        .app
        .post("/v1/me/api-keys", Some(&token), json!({ "name": "ci", "scopes": ["profile:read"] }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    let answer = get_raw(&env, "/v1/me/export", key["key"].as_str().unwrap()).await;
    assert!(answer.status().is_client_error(), "{}", answer.status());
    env.app.stop().await;
}

async fn deleting_ones_account_needs_presence_and_removes_it(test: TestDatabase) {
    let env = mfa::spawn(&test, &[]).await;
    let app = &env.app;
    let token = env.user("bea@example.com").await;
    let bea = env.user_id("bea@example.com").await;

    // An old sign-in: a proof is needed, and a wrong one is refused.
    env.clock.advance(600);
    let (status, problem) = app.send(reqwest::Method::DELETE, "/v1/me", Some(&token), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    assert_eq!(problem["code"], "reauthentication_required");
    let (status, _) = app
        .send(
            reqwest::Method::DELETE,
            "/v1/me",
            Some(&token),
            Some(json!({ "password": "nope-nope-nope" })),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = app
        .send(reqwest::Method::DELETE, "/v1/me", Some(&token), Some(json!({ "unknown": true })))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = app.get_auth(&format!("/v1/admin/users/{bea}"), &env.admin).await;
    assert_eq!(status, StatusCode::OK, "refused deletions deleted nothing");

    let (status, _) = app
        .send(
            reqwest::Method::DELETE,
            "/v1/me",
            Some(&token),
            Some(json!({ "password": STRONG_PASSWORD })),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.get_auth(&format!("/v1/admin/users/{bea}"), &env.admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.get_auth("/v1/me", &token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = app.sign_in("bea@example.com", STRONG_PASSWORD).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, log) = app.get_auth("/v1/admin/audit-log?action=user.deleted", &env.admin).await;
    assert_eq!(log["data"][0]["target_id"], bea.as_str(), "{log}");
    assert_eq!(log["data"][0]["metadata"]["by"], "self", "{log}");
    // The address it had is told.
    let notice = env.sink.wait_for_subject("bea@example.com", "account was deleted").await;
    assert!(notice.text().contains("deleted"), "{}", notice.text());
    // The address is free again.
    env.user("bea@example.com").await;
    env.app.stop().await;
}

/// Posts a page form with the CSRF token `page` carries.
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

async fn the_profile_password_and_privacy_pages_work(test: TestDatabase) {
    let env = mfa::spawn(&test, &[]).await;
    env.user("cy@example.com").await;
    let cy = env.user_id("cy@example.com").await;
    let mut browser = Browser::new(&env.app.base_url);
    let first = browser.get("/account/profile").await;
    assert_eq!(first.status, StatusCode::SEE_OTHER);
    let login = browser.get(first.location.as_deref().unwrap()).await;
    let profile = browser.sign_in(&login, "cy@example.com", STRONG_PASSWORD).await;
    assert_eq!(profile.status, StatusCode::OK, "{}", profile.body);
    assert!(browser.get("/account").await.body.contains("/account/profile"));

    // Names saved; a bad username refused with the reason.
    let saved = post_form(
        &mut browser,
        &profile,
        "/account/profile",
        &[("first_name", "Cy"), ("last_name", "Young"), ("username", ""), ("image_url", "")],
    )
    .await;
    assert_eq!(saved.location.as_deref(), Some("/account/profile?saved=profile"));
    let (_, user) = env.app.get_auth(&format!("/v1/admin/users/{cy}"), &env.admin).await;
    assert_eq!(
        (user["first_name"].as_str(), user["last_name"].as_str()),
        (Some("Cy"), Some("Young"))
    );
    let refused =
        post_form(&mut browser, &profile, "/account/profile", &[("username", "no spaces allowed")])
            .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", refused.body);
    assert!(refused.body.contains("username"), "{}", refused.body);

    // The password: a wrong current one refused, then changed.
    let wrong = post_form(
        &mut browser,
        &profile,
        "/account/password",
        &[("current_password", "not-it"), ("new_password", OTHER_STRONG_PASSWORD)],
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", wrong.body);
    assert!(wrong.body.contains("The current password is not right."), "{}", wrong.body);
    // In French, the refusals read in French, the policy's rules with their numbers.
    let french = post_form(
        &mut browser,
        &profile,
        "/account/password",
        &[("current_password", "not-it"), ("new_password", OTHER_STRONG_PASSWORD), ("lang", "fr")],
    )
    .await;
    assert!(french.body.contains("Le mot de passe actuel n’est pas le bon."), "{}", french.body);
    let short = post_form(
        &mut browser,
        &profile,
        "/account/password",
        &[("current_password", STRONG_PASSWORD), ("new_password", "court"), ("lang", "fr")],
    )
    .await;
    assert_eq!(short.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", short.body);
    assert!(short.body.contains("doit compter au moins"), "{}", short.body);
    assert!(!short.body.contains("at least"), "{}", short.body);
    let changed = post_form(
        &mut browser,
        &profile,
        "/account/password",
        &[("current_password", STRONG_PASSWORD), ("new_password", OTHER_STRONG_PASSWORD)],
    )
    .await;
    assert_eq!(
        changed.location.as_deref(),
        Some("/account/profile?saved=password"),
        "{}",
        changed.body
    );
    let (status, _) = env.app.sign_in("cy@example.com", STRONG_PASSWORD).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = env.app.sign_in("cy@example.com", OTHER_STRONG_PASSWORD).await;
    assert_eq!(status, StatusCode::OK);

    // The data as a file.
    let export = browser.get("/account/export").await;
    assert_eq!(export.status, StatusCode::OK);
    let export: Value = serde_json::from_str(&export.body).unwrap();
    assert_eq!(export["profile"]["email"], "cy@example.com");

    // Deleting: the box must be ticked; then the account is gone and the browser signed out.
    let privacy = browser.get("/account/privacy").await;
    assert_eq!(privacy.status, StatusCode::OK, "{}", privacy.body);
    let unticked = post_form(&mut browser, &privacy, "/account/delete", &[("password", "")]).await;
    assert_eq!(unticked.status, StatusCode::UNPROCESSABLE_ENTITY);
    let forged = browser.post("/account/delete", &[("confirm", "on")]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "no CSRF token");
    let (status, _) = env.app.get_auth(&format!("/v1/admin/users/{cy}"), &env.admin).await;
    assert_eq!(status, StatusCode::OK);
    let deleted = post_form(
        &mut browser,
        &privacy,
        "/account/delete",
        &[("confirm", "on"), ("password", "")],
    )
    .await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    assert!(deleted.body.contains("Your account is deleted"), "{}", deleted.body);
    let (status, _) = env.app.get_auth(&format!("/v1/admin/users/{cy}"), &env.admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(browser.get("/account").await.status, StatusCode::SEE_OTHER, "still signed in");
    env.app.stop().await;
}

async fn an_email_change_is_confirmed_from_the_new_address(test: TestDatabase) {
    let env = mfa::spawn(&test, &[]).await;
    let app = &env.app;
    let token = env.user("dan@example.com").await;
    env.user("eve@example.com").await;

    // Refused: another account's address, the account's own, not an address.
    for (email, status) in [
        ("eve@example.com", StatusCode::CONFLICT),
        ("dan@example.com", StatusCode::UNPROCESSABLE_ENTITY),
        ("not-an-address", StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let (answer, problem) =
            app.patch("/v1/me/email", Some(&token), json!({ "email": email })).await;
        assert_eq!(answer, status, "{email}: {problem}");
    }
    let (status, sent) =
        app.patch("/v1/me/email", Some(&token), json!({ "email": "dan@new.example" })).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
    // The link goes to the new address, a notice to the current one; nothing changes yet.
    let mail = env.sink.wait_for_subject("dan@new.example", "Confirm your new email address").await;
    let link_token = mail.token_for("/change-email").expect("a /change-email link");
    let notice = env.sink.wait_for_subject("dan@example.com", "email address was asked for").await;
    assert!(notice.link_for("/change-email").is_none(), "the old address got the link");
    let (_, me) = app.get_auth("/v1/me", &token).await;
    assert_eq!(me["email"], "dan@example.com");

    // The link's page: a button (the GET spends nothing), then the change.
    let mut browser = Browser::new(&app.base_url);
    let page = browser.get(&format!("/change-email?token={link_token}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let (_, me) = app.get_auth("/v1/me", &token).await;
    assert_eq!(me["email"], "dan@example.com", "the GET changed the address");
    let done = post_form(&mut browser, &page, "/change-email", &[("token", &link_token)]).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    let (_, me) = app.get_auth("/v1/me", &token).await;
    assert_eq!(me["email"], "dan@new.example", "{me}");
    assert_eq!(me["email_verified"], true);
    let (status, _) = app.sign_in("dan@new.example", STRONG_PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.sign_in("dan@example.com", STRONG_PASSWORD).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Used once.
    let (status, _) = app.post("/v1/auth/email/change", None, json!({ "token": link_token })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, log) = app.get_auth("/v1/admin/audit-log?action=user.updated", &env.admin).await;
    assert!(
        log["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|event| event["metadata"]["changed"] == json!(["email"])),
        "{log}"
    );

    // An old sign-in needs the password; a change asked before another one took effect dies
    // with the address it was asked from.
    env.clock.advance(600);
    let (status, problem) =
        app.patch("/v1/me/email", Some(&token), json!({ "email": "dan@third.example" })).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    let (status, _) = app
        .patch(
            "/v1/me/email",
            Some(&token),
            json!({ "email": "dan@third.example", "password": STRONG_PASSWORD }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, _) = app
        .patch(
            "/v1/me/email",
            Some(&token),
            json!({ "email": "dan@fourth.example", "password": STRONG_PASSWORD }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let third = env
        .sink
        .wait_for_subject("dan@third.example", "Confirm")
        .await
        .token_for("/change-email")
        .unwrap();
    let fourth = env
        .sink
        .wait_for_subject("dan@fourth.example", "Confirm")
        .await
        .token_for("/change-email")
        .unwrap();
    let (status, _) = app.post("/v1/auth/email/change", None, json!({ "token": fourth })).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.post("/v1/auth/email/change", None, json!({ "token": third })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a link asked from an older address still worked");
    let (_, me) = app.get_auth("/v1/me", &token).await;
    assert_eq!(me["email"], "dan@fourth.example");
    env.app.stop().await;
}

async fn the_account_page_lists_and_revokes_ones_api_keys(test: TestDatabase) {
    let env = mfa::spawn(&test, &[]).await;
    let token = env.user("gil@example.com").await;
    let (status, key) = env
        .app
        .post(
            "/v1/me/api-keys",
            Some(&token),
            json!({ "name": "laptop script", "scopes": ["profile:read"] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    let secret = key["key"].as_str().unwrap().to_owned();
    let mut browser = Browser::new(&env.app.base_url);
    let first = browser.get("/account").await;
    let login = browser.get(first.location.as_deref().unwrap()).await;
    let account = browser.sign_in(&login, "gil@example.com", STRONG_PASSWORD).await;
    assert!(account.body.contains("laptop script"), "{}", account.body);
    assert!(!account.body.contains(&secret), "the key itself was shown");
    // Someone else's key id: not found, nothing revoked.
    let refused =
        post_form(&mut browser, &account, "/account/api-keys/revoke", &[("key_id", "key_other")])
            .await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND);
    let revoked = post_form(
        &mut browser,
        &account,
        "/account/api-keys/revoke",
        &[("key_id", key["id"].as_str().unwrap())],
    )
    .await;
    assert_eq!(revoked.location.as_deref(), Some("/account"));
    let (status, _) = env.app.get_auth("/v1/me", &secret).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(!browser.get("/account").await.body.contains("laptop script"));
    env.app.stop().await;
}

/// `GATEHOUSE_ACCOUNT_DELETION_GRACE_DAYS`: deleting suspends the account (its tokens stop, it
/// cannot sign in) and emails a restore link; the link keeps it; without it the sweeper deletes
/// it once the days are over (with the `account_deleted` email); an admin's unsuspension calls
/// the deletion off too.
async fn a_grace_period_suspends_the_account_until_it_is_restored_or_deleted(test: TestDatabase) {
    let env = mfa::spawn(&test, &[("GATEHOUSE_ACCOUNT_DELETION_GRACE_DAYS", "7")]).await;
    let app = &env.app;
    let token = env.user("gia@example.com").await;
    let gia = env.user_id("gia@example.com").await;

    let (status, scheduled) = app.send(reqwest::Method::DELETE, "/v1/me", Some(&token), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{scheduled}");
    let due = scheduled["deletion_due_at"].as_i64().unwrap();
    assert_eq!(due, env.now() as i64 + 7 * 86_400);
    // Suspended: the token stops, signing in is refused; the account is still there.
    assert_eq!(app.get_auth("/v1/me", &token).await.0, StatusCode::UNAUTHORIZED);
    let (status, problem) = app.sign_in("gia@example.com", STRONG_PASSWORD).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("account_suspended"))
    );
    let (status, user) = app.get_auth(&format!("/v1/admin/users/{gia}"), &env.admin).await;
    assert_eq!((status, user["suspended"].as_bool()), (StatusCode::OK, Some(true)));
    let mail = env.sink.wait_for_subject("gia@example.com", "will be deleted on").await;
    let restore = mail.token_for("/restore-account").expect("a restore link");

    // The link's page: a button (the GET changes nothing), then the account is kept.
    let mut browser = Browser::new(&app.base_url);
    let page = browser.get(&format!("/restore-account?token={restore}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Keep my account"), "{}", page.body);
    assert_eq!(app.sign_in("gia@example.com", STRONG_PASSWORD).await.0, StatusCode::FORBIDDEN);
    let kept = post_form(&mut browser, &page, "/restore-account", &[("token", &restore)]).await;
    assert_eq!(kept.status, StatusCode::OK, "{}", kept.body);
    let (status, tokens) = app.sign_in("gia@example.com", STRONG_PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let (status, _) = app.post("/v1/auth/account/restore", None, json!({ "token": restore })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a restore link works once");

    // Asked again: an admin's unsuspension calls it off too...
    let token = tokens["access_token"].as_str().unwrap().to_owned();
    let (status, _) = app.send(reqwest::Method::DELETE, "/v1/me", Some(&token), None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, _) =
        app.post(&format!("/v1/admin/users/{gia}/unsuspend"), Some(&env.admin), json!({})).await;
    assert!(status.is_success(), "{status}");
    env.clock.advance(8 * 86_400);
    app.sweeper.sweep_once().await.expect("a sweep");
    let (status, _) = app.get_auth(&format!("/v1/admin/users/{gia}"), &env.admin).await;
    assert_eq!(status, StatusCode::OK, "an unsuspended account is not deleted");

    // ...and without either, the sweeper deletes it once the days are over, not before.
    let (status, tokens) = app.sign_in("gia@example.com", STRONG_PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let token = tokens["access_token"].as_str().unwrap().to_owned();
    let (status, _) = app.send(reqwest::Method::DELETE, "/v1/me", Some(&token), None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    env.clock.advance(6 * 86_400);
    app.sweeper.sweep_once().await;
    let (status, _) = app.get_auth(&format!("/v1/admin/users/{gia}"), &env.admin).await;
    assert_eq!(status, StatusCode::OK, "deleted before its day");
    env.clock.advance(86_400 + 1);
    let report = app.sweeper.sweep_once().await.expect("a sweep");
    assert_eq!(report.removed_from(gatehouse_domain::sweeper::SweptTable::AccountDeletions), 1);
    let (status, _) = app.get_auth(&format!("/v1/admin/users/{gia}"), &env.admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    env.sink.wait_for_subject("gia@example.com", "account was deleted").await;
    let (_, log) =
        app.get_auth("/v1/admin/audit-log?action=user.deletion_scheduled", &env.admin).await;
    assert_eq!(log["data"].as_array().unwrap().len(), 3, "{log}");
    let (_, log) =
        app.get_auth("/v1/admin/audit-log?action=user.deletion_cancelled", &env.admin).await;
    assert_eq!(log["data"].as_array().unwrap().len(), 1, "{log}");
    env.app.stop().await;
}
