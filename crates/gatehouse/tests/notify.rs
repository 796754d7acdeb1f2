//! Email and the outbox end-to-end, on both backends: a real SMTP sink on an ephemeral port
//! receives the messages, and the tests follow the links in them — verification, password
//! reset, magic links — then break the sink, restart the server, and run two servers on one
//! PostgreSQL database to check that every message is delivered exactly once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/pages_browser.rs"]
mod browser;
mod support;

use std::time::{Duration, Instant};

use browser::Browser;
use gatehouse_crypto::MasterKey;
use gatehouse_store::backend_tests;
use gatehouse_store::testing::TestDatabase;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::smtp::SmtpSink;
use support::{OTHER_STRONG_PASSWORD, STRONG_PASSWORD, TestApp};

backend_tests!(
    verification_goes_through_the_mail,
    password_reset_goes_through_the_mail,
    magic_links_go_through_the_mail,
    an_smtp_outage_is_retried_and_every_message_arrives_once_across_a_restart,
    failing_deliveries_are_dead_lettered_and_can_be_retried,
);

/// Fast polling and retries, SMTP to the sink, magic links on.
fn mail_settings(sink: &SmtpSink) -> Vec<(&'static str, String)> {
    vec![
        ("GATEHOUSE_SMTP_URL", sink.url()),
        ("GATEHOUSE_SMTP_FROM", "Gatehouse Tests <id@example.com>".into()),
        ("GATEHOUSE_OUTBOX_POLL_INTERVAL_MS", "50".into()),
        ("GATEHOUSE_OUTBOX_BACKOFF_BASE_MS", "200".into()),
        ("GATEHOUSE_OUTBOX_BACKOFF_MAX_MS", "1000".into()),
        ("GATEHOUSE_MAGIC_LINK_ENABLED", "true".into()),
    ]
}

async fn spawn(
    test: &TestDatabase,
    key: &MasterKey,
    sink: &SmtpSink,
    extra: &[(&str, &str)],
) -> TestApp {
    let settings = mail_settings(sink);
    let mut pairs: Vec<(&str, &str)> =
        settings.iter().map(|(name, value)| (*name, value.as_str())).collect();
    pairs.extend_from_slice(extra);
    TestApp::spawn_with(test, key, &pairs).await
}

async fn sign_up(app: &TestApp, email: &str, language: &str) -> Value {
    let response = app
        .http
        .post(app.url("/v1/auth/sign-up"))
        .header("accept-language", language)
        .json(&json!({ "email": email, "password": STRONG_PASSWORD, "first_name": "Ada" }))
        .send()
        .await
        .unwrap();
    // 202 when verification is required.
    assert!(
        matches!(response.status(), StatusCode::CREATED | StatusCode::ACCEPTED),
        "{}",
        response.status()
    );
    response.json().await.unwrap()
}

/// Polls the admin API until `predicate` holds for the listing (with a deadline).
async fn wait_for_deliveries(
    app: &TestApp,
    key: &str,
    what: &str,
    predicate: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, page) = app.get_auth("/v1/admin/deliveries?limit=200", key).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let items = page["data"].as_array().unwrap().clone();
        if predicate(&items) {
            return items;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}: {items:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn verification_goes_through_the_mail(test: TestDatabase) {
    let sink = SmtpSink::start().await;
    let key = MasterKey::generate();
    let app = spawn(&test, &key, &sink, &[("GATEHOUSE_REQUIRE_EMAIL_VERIFICATION", "true")]).await;
    let answer = sign_up(&app, "ada@example.com", "en").await;
    assert_eq!(answer, json!({ "verification_required": true }), "no tokens before verification");
    assert!(!answer.to_string().contains("token="), "no link in the answer");
    let (status, problem) = app.sign_in("ada@example.com", STRONG_PASSWORD).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("email_not_verified"))
    );

    let mail = sink.wait_for("ada@example.com", 1).await.remove(0);
    assert_eq!(mail.subject(), "Confirm your email address for Gatehouse");
    assert_eq!(mail.from, "id@example.com");
    let text = mail.text();
    assert!(text.contains("Hello Ada,") && text.contains("24 hours"), "{text}");
    assert!(mail.data.contains("text/plain") && mail.data.contains("text/html"));
    let token = mail.token_for("/verify-email").unwrap();

    // The page behind the link shows a button and does not spend the token (link scanners).
    let mut browser = Browser::new(&app);
    for _ in 0..2 {
        let page = browser.get(&format!("/verify-email?token={token}")).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(page.body.contains("Confirm my address"), "{}", page.body);
    }
    // Malformed and unknown tokens.
    for bad in ["", "short", "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!", &"A".repeat(43)] {
        let (status, problem) =
            app.post("/v1/auth/email/verify", None, json!({ "token": bad })).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_token")),
            "{bad}"
        );
    }
    let (status, _) = app.post("/v1/auth/email/verify", None, json!({ "token": token })).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, problem) =
        app.post("/v1/auth/email/verify", None, json!({ "token": token })).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::BAD_REQUEST, Some("token_used")));
    let (status, tokens) = app.sign_in("ada@example.com", STRONG_PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["user"]["email_verified"], true);

    // French, from Accept-Language; the hosted page confirms through a CSRF-checked POST.
    sign_up(&app, "bea@example.com", "fr-FR,fr;q=0.9").await;
    let mail = sink.wait_for("bea@example.com", 1).await.remove(0);
    assert!(mail.subject().starts_with("Confirmez votre adresse"), "{}", mail.subject());
    assert!(mail.text().contains("24 heures"), "{}", mail.text());
    let token = mail.token_for("/verify-email").unwrap();
    let page = browser.get(&format!("/verify-email?token={token}&lang=fr")).await;
    assert!(page.body.contains("Confirmer mon adresse"), "{}", page.body);
    let fields = page.hidden_fields();
    let fields: Vec<(&str, &str)> = fields.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let done = browser.post("/verify-email", &fields).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert!(done.body.contains("est confirmée"), "{}", done.body);
    let again = browser.post("/verify-email", &fields).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);

    // Expired tokens: a third user whose token is aged in the database.
    sign_up(&app, "cy@example.com", "en").await;
    let token = sink.wait_for("cy@example.com", 1).await[0].token_for("/verify-email").unwrap();
    age_tokens(&test).await;
    let (status, problem) =
        app.post("/v1/auth/email/verify", None, json!({ "token": token })).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("token_expired"))
    );
    let page = browser.get(&format!("/verify-email?token={token}")).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.body.contains("expired"), "{}", page.body);

    // Resend: needs a bearer (a user who may sign in unverified, after a restart without
    // required verification).
    app.stop().await;
    let app = spawn(&test, &key, &sink, &[]).await;
    let tokens = app.sign_up("dee@example.com", STRONG_PASSWORD).await;
    sink.wait_for("dee@example.com", 1).await;
    let access = tokens["access_token"].as_str().unwrap();
    let (status, _) = app.post("/v1/auth/email/verify/resend", Some(access), json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let mails = sink.wait_for("dee@example.com", 2).await;
    let token = mails[1].token_for("/verify-email").unwrap();
    let (status, _) = app.post("/v1/auth/email/verify", None, json!({ "token": token })).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.post("/v1/auth/email/verify/resend", None, json!({})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    app.stop().await;
}

/// Makes every one-time token of the database expired.
async fn age_tokens(test: &TestDatabase) {
    gatehouse_store::with_pool!(&test.database, pool => {
        sqlx::query("UPDATE one_time_tokens SET expires_at = 1").execute(pool).await.unwrap();
    });
}

async fn password_reset_goes_through_the_mail(test: TestDatabase) {
    let sink = SmtpSink::start().await;
    let app = spawn(&test, &MasterKey::generate(), &sink, &[]).await;
    let tokens = app.sign_up("ada@example.com", STRONG_PASSWORD).await;
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    sink.wait_for("ada@example.com", 1).await; // the verification email

    for email in ["ada@example.com", "nobody@example.com", "not an address"] {
        let (status, body) =
            app.post("/v1/auth/password/forgot", None, json!({ "email": email })).await;
        assert_eq!((status, body), (StatusCode::ACCEPTED, Value::Null), "{email}");
    }
    let mail = sink.wait_for_subject("ada@example.com", "Reset your Gatehouse password").await;
    assert!(mail.text().contains("60 minutes"), "{}", mail.text());
    let token = mail.token_for("/reset-password").unwrap();

    // The policy applies and a refused password does not spend the token.
    let (status, problem) = app
        .post(
            "/v1/auth/password/reset",
            None,
            json!({ "token": token, "new_password": "password" }),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("password_too_weak"))
    );
    let (status, problem) = app
        .post(
            "/v1/auth/password/reset",
            None,
            json!({ "token": token, "new_password": STRONG_PASSWORD }),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("password_reused"))
    );
    let (status, body) = app
        .post(
            "/v1/auth/password/reset",
            None,
            json!({ "token": token, "new_password": OTHER_STRONG_PASSWORD }),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, problem) = app
        .post(
            "/v1/auth/password/reset",
            None,
            json!({ "token": token, "new_password": "Another-long-phrase-93!" }),
        )
        .await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::BAD_REQUEST, Some("token_used")));
    // Every session ended; the new password works; a notice went out.
    let (status, _) = app.post("/v1/auth/refresh", None, json!({ "refresh_token": refresh })).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.sign_in("ada@example.com", STRONG_PASSWORD).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(app.sign_in("ada@example.com", OTHER_STRONG_PASSWORD).await.0, StatusCode::OK);
    sink.wait_for_subject("ada@example.com", "password was changed").await;
    assert!(sink.messages_to("nobody@example.com").is_empty());

    // The hosted pages: the sign-in form links to the forgot form, which answers the same for
    // every address; the reset page is a form with the token, a refused password re-renders it.
    let mut browser = Browser::new(&app);
    assert!(browser.get("/login").await.body.contains("href=\"/forgot-password\""));
    for email in ["nobody@example.com", "ada@example.com"] {
        let form = browser.get("/forgot-password").await;
        assert_eq!(form.status, StatusCode::OK);
        let csrf = form.hidden("csrf_token").unwrap();
        let sent =
            browser.post("/forgot-password", &[("csrf_token", &csrf), ("email", email)]).await;
        assert_eq!(sent.status, StatusCode::OK, "{}", sent.body);
        assert!(sent.body.contains("If an account uses this address"), "{}", sent.body);
    }
    // Verification, reset, "password changed", "account secured" (the reset was the address's
    // first proof), and this reset.
    let mails = sink.wait_for("ada@example.com", 5).await;
    let token = mails.iter().rev().find_map(|m| m.token_for("/reset-password")).unwrap();
    let page = browser.get(&format!("/reset-password?token={token}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let mut fields = page.hidden_fields();
    fields.push(("new_password".into(), "short".into()));
    let form: Vec<(&str, &str)> = fields.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let refused = browser.post("/reset-password", &form).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", refused.body);
    fields.pop();
    fields.push(("new_password".into(), "Harbour-quilt-meadow-55%".into()));
    let form: Vec<(&str, &str)> = fields.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let done = browser.post("/reset-password", &form).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert_eq!(app.sign_in("ada@example.com", "Harbour-quilt-meadow-55%").await.0, StatusCode::OK);

    // A sign-in from a device never seen before sends a notice; the same device again does not.
    let before = sink.messages_to("ada@example.com").len();
    let new_device = |agent: &'static str| {
        app.http
            .post(app.url("/v1/auth/sign-in"))
            .header("user-agent", agent)
            .json(&json!({ "email": "ada@example.com", "password": "Harbour-quilt-meadow-55%" }))
            .send()
    };
    assert_eq!(new_device("Curious Browser/1.0").await.unwrap().status(), StatusCode::OK);
    let notice = sink.wait_for_subject("ada@example.com", "New sign-in").await;
    assert!(notice.text().contains("Curious Browser/1.0"), "{}", notice.text());
    assert_eq!(new_device("Curious Browser/1.0").await.unwrap().status(), StatusCode::OK);
    let (status, _) =
        app.post("/v1/auth/password/forgot", None, json!({ "email": "ada@example.com" })).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    // The reset mail arrives after the second sign-in, with no second notice before it.
    let mails = sink.wait_for("ada@example.com", before + 2).await;
    let notices = mails.iter().filter(|m| m.subject().contains("New sign-in")).count();
    assert_eq!(notices, 1, "{:?}", mails.iter().map(|m| m.subject()).collect::<Vec<_>>());

    // Nothing secret in the audit log or the deliveries listing.
    let key = app.admin_key().await;
    let (_, audit) = app.get_auth("/v1/admin/audit-log?limit=200", &key).await;
    let (_, deliveries) = app.get_auth("/v1/admin/deliveries?limit=200", &key).await;
    for text in [audit.to_string(), deliveries.to_string()] {
        assert!(!text.contains(&token) && !text.contains("token="), "{text}");
        assert!(!text.contains("ada@example.com"), "{text}");
    }
    app.stop().await;
}

async fn magic_links_go_through_the_mail(test: TestDatabase) {
    let sink = SmtpSink::start().await;
    // One master key for both starts: it wraps the data keys of this database.
    let master_key = MasterKey::generate();
    let app = spawn(&test, &master_key, &sink, &[]).await;
    app.sign_up("ada@example.com", STRONG_PASSWORD).await;
    sink.wait_for("ada@example.com", 1).await;
    for email in ["ada@example.com", "nobody@example.com"] {
        let (status, _) = app.post("/v1/auth/magic-link", None, json!({ "email": email })).await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    let (status, problem) = app
        .post(
            "/v1/auth/magic-link",
            None,
            json!({ "email": "ada@example.com", "return_to": "https://evil.example/" }),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed"))
    );
    let mail = sink.wait_for_subject("ada@example.com", "Your sign-in link").await;
    assert!(mail.text().contains("15 minutes"), "{}", mail.text());
    let token = mail.token_for("/magic-link").unwrap();
    let (status, tokens) =
        app.post("/v1/auth/magic-link/verify", None, json!({ "token": token })).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["user"]["email_verified"], true, "following the link verifies the address");
    let (status, me) = app.get_auth("/v1/me", tokens["access_token"].as_str().unwrap()).await;
    assert_eq!((status, me["email"].as_str()), (StatusCode::OK, Some("ada@example.com")));
    let (status, problem) =
        app.post("/v1/auth/magic-link/verify", None, json!({ "token": token })).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::BAD_REQUEST, Some("token_used")));
    assert!(sink.messages_to("nobody@example.com").is_empty());

    // The hosted page signs the browser in and goes on to a safe return_to.
    let (status, _) = app
        .post(
            "/v1/auth/magic-link",
            None,
            json!({ "email": "ada@example.com", "return_to": "/account" }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    // Verification, link, "account secured" (the link was the address's first proof), link.
    let mails = sink.wait_for("ada@example.com", 4).await;
    let link = mails.last().unwrap().link_for("/magic-link").unwrap();
    assert!(link.contains("return_to=%2Faccount"), "{link}");
    let mut browser = Browser::new(&app);
    let page = browser.get(&link).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(browser.session_cookie().is_none(), "the GET signs nobody in");
    let fields = page.hidden_fields();
    let fields: Vec<(&str, &str)> = fields.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let signed_in = browser.post("/magic-link", &fields).await;
    assert_eq!((signed_in.status, signed_in.location()), (StatusCode::SEE_OTHER, "/account"));
    assert!(browser.session_cookie().is_some());
    assert_eq!(browser.get("/account").await.status, StatusCode::OK);
    app.stop().await;

    // Switched off: a stable code, and the page says so.
    let app = TestApp::spawn_with(&test, &master_key, &[("GATEHOUSE_SMTP_URL", &sink.url())]).await;
    let (status, problem) =
        app.post("/v1/auth/magic-link", None, json!({ "email": "ada@example.com" })).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("magic_link_disabled"))
    );
    let (status, problem) =
        app.post("/v1/auth/magic-link/verify", None, json!({ "token": token })).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("magic_link_disabled"))
    );
    app.stop().await;
}

async fn an_smtp_outage_is_retried_and_every_message_arrives_once_across_a_restart(
    test: TestDatabase,
) {
    let mut sink = SmtpSink::start().await;
    let key = MasterKey::generate();
    let app = spawn(&test, &key, &sink, &[]).await;
    let admin = app.admin_key().await;
    sink.stop().await;
    let addresses: Vec<String> = (0..4).map(|n| format!("user{n}@example.com")).collect();
    for address in &addresses {
        app.sign_up(address, STRONG_PASSWORD).await;
    }
    // Every delivery fails at least once and waits for a retry.
    let items = wait_for_deliveries(&app, &admin, "failed attempts", |items| {
        items.len() == 4
            && items.iter().all(|item| {
                item["attempts"].as_i64().unwrap() >= 1 && !item["last_error"].is_null()
            })
    })
    .await;
    assert!(items.iter().all(|item| item["status"] != "delivered"), "{items:?}");
    let id = items[0]["id"].as_str().unwrap();
    let (status, attempts) =
        app.get_auth(&format!("/v1/admin/deliveries/{id}/attempts"), &admin).await;
    assert_eq!(status, StatusCode::OK);
    // A list like every list: `{data, next_cursor}`, newest first.
    assert!(attempts["next_cursor"].is_null(), "{attempts}");
    assert_eq!(attempts["data"][0]["status"], "failed", "{attempts}");
    assert!(sink.messages().is_empty());

    // The server stops while the sink is down; a new one starts after the sink is back.
    app.stop().await;
    sink.resume().await;
    let app = spawn(&test, &key, &sink, &[]).await;
    for address in &addresses {
        sink.wait_for(address, 1).await;
    }
    wait_for_deliveries(&app, &admin, "all delivered", |items| {
        items.iter().all(|item| item["status"] == "delivered")
    })
    .await;
    // Give a duplicate every chance to show up: several poll intervals and a retry's backoff.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for address in &addresses {
        assert_eq!(sink.messages_to(address).len(), 1, "{address} got a duplicate");
    }
    let (_, delivered) =
        app.get_auth("/v1/admin/deliveries?status=delivered&limit=2", &admin).await;
    assert_eq!(delivered["data"].as_array().unwrap().len(), 2);
    assert!(delivered["next_cursor"].is_string());
    let cursor = delivered["next_cursor"].as_str().unwrap();
    let (_, rest) = app
        .get_auth(
            &format!("/v1/admin/deliveries?status=delivered&limit=10&cursor={cursor}"),
            &admin,
        )
        .await;
    assert_eq!(rest["data"].as_array().unwrap().len(), 2);
    let (status, problem) = app.get_auth("/v1/admin/deliveries?status=lost", &admin).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed"))
    );
    app.stop().await;
}

async fn failing_deliveries_are_dead_lettered_and_can_be_retried(test: TestDatabase) {
    let mut sink = SmtpSink::start().await;
    let app =
        spawn(&test, &MasterKey::generate(), &sink, &[("GATEHOUSE_OUTBOX_MAX_ATTEMPTS", "2")])
            .await;
    let admin = app.admin_key().await;
    sink.stop().await;
    app.sign_up("ada@example.com", STRONG_PASSWORD).await;
    let items = wait_for_deliveries(&app, &admin, "a dead letter", |items| {
        items.len() == 1 && items[0]["status"] == "dead"
    })
    .await;
    assert_eq!(items[0]["attempts"], 2);
    assert_eq!(items[0]["kind"], "verify_email");
    let id = items[0]["id"].as_str().unwrap().to_owned();
    let (_, audit) =
        app.get_auth("/v1/admin/audit-log?action=delivery.dead_lettered", &admin).await;
    assert_eq!(audit["data"][0]["target_id"], id.as_str(), "{audit}");

    sink.resume().await;
    let (status, _) =
        app.post(&format!("/v1/admin/deliveries/{id}/retry"), Some(&admin), json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let mail = sink.wait_for("ada@example.com", 1).await.remove(0);
    assert!(mail.token_for("/verify-email").is_some());
    let (status, problem) =
        app.post("/v1/admin/deliveries/dlv_unknown/retry", Some(&admin), json!({})).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
    let (status, _) = app.post(&format!("/v1/admin/deliveries/{id}/retry"), None, json!({})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    app.stop().await;
}

/// Two servers on one PostgreSQL database share the outbox: each row is delivered once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_postgres_deliver_each_row_once() {
    let Some(test) = TestDatabase::postgres().await.unwrap() else {
        eprintln!("skipped: set GATEHOUSE_TEST_POSTGRES_URL");
        return;
    };
    let sink = SmtpSink::start().await;
    let key = MasterKey::generate();
    let first = spawn(&test, &key, &sink, &[]).await;
    let second = spawn(&test, &key, &sink, &[]).await;
    let addresses: Vec<String> = (0..24).map(|n| format!("user{n}@example.com")).collect();
    for (index, address) in addresses.iter().enumerate() {
        let app = if index % 2 == 0 { &first } else { &second };
        app.sign_up(address, STRONG_PASSWORD).await;
    }
    for address in &addresses {
        sink.wait_for(address, 1).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(sink.messages().len(), addresses.len(), "no duplicates");
    for address in &addresses {
        assert_eq!(sink.messages_to(address).len(), 1, "{address}");
    }
    // Both workers took part: each is woken by its own instance's writes.
    let workers: std::collections::BTreeSet<String> = gatehouse_store::with_pool!(&test.database, pool => {
        sqlx::query_scalar::<_, String>("SELECT DISTINCT worker FROM outbox_attempts")
            .fetch_all(pool)
            .await
            .unwrap()
            .into_iter()
            .collect()
    });
    assert_eq!(workers.len(), 2, "{workers:?}");
    first.stop().await;
    second.stop().await;
}

/// The requests that send an email share a per-IP budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_requests_are_rate_limited() {
    let test = TestDatabase::sqlite().await.unwrap();
    let sink = SmtpSink::start().await;
    let limits =
        [("GATEHOUSE_RATE_LIMIT_ENABLED", "true"), ("GATEHOUSE_RATE_LIMIT_EMAIL_PER_MINUTE", "2")];
    let app = spawn(&test, &MasterKey::generate(), &sink, &limits).await;
    for expected in [StatusCode::ACCEPTED, StatusCode::ACCEPTED, StatusCode::TOO_MANY_REQUESTS] {
        let (status, _) =
            app.post("/v1/auth/password/forgot", None, json!({ "email": "a@example.com" })).await;
        assert_eq!(status, expected);
    }
    let (status, problem) =
        app.post("/v1/auth/magic-link", None, json!({ "email": "a@example.com" })).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited"))
    );
    app.stop().await;
}

/// In development without SMTP, messages are written to `<data_dir>/mail/*.eml`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn development_without_smtp_writes_eml_files() {
    let test = TestDatabase::sqlite().await.unwrap();
    let data_dir = tempfile::tempdir().unwrap();
    let data_path = data_dir.path().display().to_string();
    let settings =
        [("GATEHOUSE_OUTBOX_POLL_INTERVAL_MS", "50"), ("GATEHOUSE_DATA_DIR", data_path.as_str())];
    let app = TestApp::spawn_with(&test, &MasterKey::generate(), &settings).await;
    app.sign_up("ada@example.com", STRONG_PASSWORD).await;
    let mail_dir = data_dir.path().join("mail");
    let deadline = Instant::now() + Duration::from_secs(20);
    let file = loop {
        let found = std::fs::read_dir(&mail_dir)
            .ok()
            .and_then(|entries| entries.filter_map(Result::ok).next())
            .map(|entry| entry.path());
        if let Some(file) = found {
            break file;
        }
        assert!(Instant::now() < deadline, "no .eml file in {}", mail_dir.display());
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(file.display().to_string().ends_with("verify_email.eml"), "{}", file.display());
    let eml = std::fs::read_to_string(&file).unwrap();
    assert!(eml.contains("To: ada@example.com"), "{eml}");
    app.stop().await;
}

/// `forgot` answers the same for an unknown address, after about the same time (medians of
/// interleaved samples, with a wide margin for a shared test machine).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgot_takes_the_same_time_for_unknown_addresses() {
    let test = TestDatabase::sqlite().await.unwrap();
    let sink = SmtpSink::start().await;
    let app = spawn(&test, &MasterKey::generate(), &sink, &[]).await;
    app.sign_up("ada@example.com", STRONG_PASSWORD).await;
    let time = |email: &'static str| {
        let app = &app;
        async move {
            let started = Instant::now();
            let (status, body) =
                app.post("/v1/auth/password/forgot", None, json!({ "email": email })).await;
            assert_eq!((status, body), (StatusCode::ACCEPTED, Value::Null));
            started.elapsed()
        }
    };
    for _ in 0..5 {
        time("ada@example.com").await;
        time("nobody@example.com").await;
    }
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for _ in 0..30 {
        known.push(time("ada@example.com").await);
        unknown.push(time("nobody@example.com").await);
    }
    let median = |mut samples: Vec<Duration>| {
        samples.sort();
        samples[samples.len() / 2]
    };
    let (known, unknown) = (median(known), median(unknown));
    let (slow, fast) = if known > unknown { (known, unknown) } else { (unknown, known) };
    assert!(
        slow <= fast * 3 + Duration::from_millis(5),
        "known {known:?} vs unknown {unknown:?}: the answer time gives the account away"
    );
    app.stop().await;
}
