//! Webhooks end to end on both backends: endpoints registered through the admin API receive
//! catalogued events from a live server, signed so that the Standard Webhooks reference library
//! (the `standardwebhooks` crate, written by others) verifies them; a receiver that is down gets
//! every event once it is back, across a server restart; two instances on one database deliver
//! each event once; rotation signs with both secrets; the SSRF rule refuses private targets.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode as AxumStatus};
use gatehouse_crypto::MasterKey;
use gatehouse_store::backend_tests;
use gatehouse_store::testing::TestDatabase;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::smtp::SmtpSink;
use support::{STRONG_PASSWORD, TestApp};

backend_tests!(
    events_reach_the_receiver_signed_per_standard_webhooks,
    a_receiver_that_was_down_gets_every_event_across_a_restart,
    two_instances_deliver_each_event_once,
    rotation_signs_with_both_secrets_and_tests_reach_one_endpoint,
    private_targets_are_refused_unless_allowed,
    events_reach_a_jetstream_consumer,
    nats_being_down_fails_no_request,
    an_endpoint_failing_for_days_is_disabled_and_audited,
    a_success_ends_the_failing_streak,
);

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Received {
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    fn header(&self, name: &str) -> &str {
        self.headers[name].to_str().unwrap()
    }
}

/// A local webhook receiver: records every request, answers `status` (503 while "down").
#[derive(Clone)]
struct Receiver {
    url: String,
    received: Arc<Mutex<Vec<Received>>>,
    status: Arc<Mutex<u16>>,
    arrived: Arc<tokio::sync::Notify>,
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        let receiver = Receiver {
            url,
            received: Arc::default(),
            status: Arc::new(Mutex::new(200)),
            arrived: Arc::default(),
        };
        let state = receiver.clone();
        let app = axum::Router::new().route(
            "/hooks",
            axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let state = state.clone();
                async move {
                    let status = *state.status.lock().unwrap();
                    state.received.lock().unwrap().push(Received { headers, body: body.to_vec() });
                    state.arrived.notify_waiters();
                    (AxumStatus::from_u16(status).unwrap(), format!("answered {status}"))
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        receiver
    }

    fn set_status(&self, status: u16) {
        *self.status.lock().unwrap() = status;
    }

    fn all(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// The requests answered 2xx, once `done` holds of them (within 20 s).
    async fn wait_until(&self, what: &str, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let arrived = self.arrived.notified();
            let all = self.all();
            if done(&all) {
                return all;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                panic!("timed out waiting for {what}; received {:?}", types(&self.all()));
            }
        }
    }
}

fn types(received: &[Received]) -> Vec<String> {
    received.iter().map(|request| request.json()["type"].as_str().unwrap().to_owned()).collect()
}

/// The events of `kind` the receiver got (by `webhook-id`, each once).
fn ids_of(received: &[Received], kind: &str) -> Vec<String> {
    let mut ids: Vec<String> = received
        .iter()
        .filter(|request| request.json()["type"] == kind)
        .map(|request| request.header("webhook-id").to_owned())
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// Verifies with the Standard Webhooks reference library, not our own code.
fn verify(secret: &str, request: &Received) -> Result<(), String> {
    let webhook = standardwebhooks::Webhook::new(secret).map_err(|error| error.to_string())?;
    webhook.verify(&request.body, &request.headers).map_err(|error| error.to_string())
}

const FAST: &[(&str, &str)] = &[
    ("GATEHOUSE_OUTBOUND_ALLOW_PRIVATE_TARGETS", "true"),
    ("GATEHOUSE_OUTBOX_POLL_INTERVAL_MS", "50"),
    ("GATEHOUSE_WEBHOOKS_FIRST_RETRY_MS", "200"),
];

async fn spawn(test: &TestDatabase, key: &MasterKey) -> TestApp {
    TestApp::spawn_with(test, key, FAST).await
}

/// Registers an endpoint; answers its id and secret.
async fn register(app: &TestApp, admin: &str, url: &str, events: &[&str]) -> (String, String) {
    let (status, created) = app
        .send(
            Method::POST,
            "/v1/admin/webhooks",
            Some(admin),
            Some(json!({ "url": url, "events": events, "description": "test receiver" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    (created["id"].as_str().unwrap().to_owned(), secret)
}

/// Creates an organization as a new user: an `organization.created` event.
async fn make_organization(app: &TestApp, email: &str, slug: &str) -> String {
    let tokens = app.sign_up(email, STRONG_PASSWORD).await;
    let (status, org) = app
        .send(
            Method::POST,
            "/v1/organizations",
            tokens["access_token"].as_str(),
            Some(json!({ "name": slug, "slug": slug })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{org}");
    org["id"].as_str().unwrap().to_owned()
}

async fn events_reach_the_receiver_signed_per_standard_webhooks(test: TestDatabase) {
    let app = spawn(&test, &MasterKey::generate()).await;
    let admin = app.admin_key().await;
    let receiver = Receiver::start().await;
    let (id, secret) =
        register(&app, &admin, &receiver.url, &["organization.*", "user.updated"]).await;
    // Listed without the secret.
    let (_, listed) = app.get_auth("/v1/admin/webhooks", &admin).await;
    assert_eq!(listed["data"][0]["id"], id.as_str());
    assert!(listed["data"][0].get("secret").is_none(), "{listed}");

    let org = make_organization(&app, "ada@example.com", "acme").await;
    let tokens = app.sign_in("ada@example.com", STRONG_PASSWORD).await.1;
    let (status, _) = app
        .send(
            Method::PATCH,
            "/v1/me",
            tokens["access_token"].as_str(),
            Some(json!({ "first_name": "Ada" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let received = receiver
        .wait_until("organization.created and user.updated", |all| {
            let kinds = types(all);
            kinds.contains(&"organization.created".to_owned())
                && kinds.contains(&"user.updated".to_owned())
        })
        .await;

    for request in &received {
        verify(&secret, request).unwrap_or_else(|error| panic!("{error}: {request:?}"));
        assert!(verify("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", request).is_err());
        assert_eq!(request.header("content-type"), "application/json");
        let body = request.json();
        assert_eq!(body["id"], request.header("webhook-id"));
        assert!(body["id"].as_str().unwrap().starts_with("evt_"));
        assert!(body["timestamp"].as_str().unwrap().ends_with('Z'), "{body}");
        // Not subscribed: never sent (sign-in and sign-up are not in its subscriptions).
        assert!(["organization.created", "user.updated"].contains(&body["type"].as_str().unwrap()));
    }
    let created = received.iter().find(|r| r.json()["type"] == "organization.created").unwrap();
    assert_eq!(created.json()["data"]["target"], json!({ "type": "organization", "id": org }));
    // The event id is the audit event's: one name, one id, in both places.
    let (_, log) = app.get_auth("/v1/admin/audit-log?action=organization.created", &admin).await;
    assert_eq!(log["data"][0]["id"], created.json()["id"]);

    // The delivery log: delivered, with the receiver's status and answer (the worker records
    // an attempt just after the receiver answers it: polled until both are).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let deliveries = loop {
        let (status, deliveries) =
            app.get_auth(&format!("/v1/admin/webhooks/{id}/deliveries"), &admin).await;
        assert_eq!(status, StatusCode::OK, "{deliveries}");
        let rows = deliveries["data"].as_array().unwrap();
        if rows.len() >= 2 && rows.iter().all(|row| row["status"] == "delivered") {
            break deliveries;
        }
        assert!(tokio::time::Instant::now() < deadline, "not all delivered: {deliveries}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let first = &deliveries["data"][0];
    assert_eq!(first["status"], "delivered", "{deliveries}");
    assert_eq!(first["last_attempt"]["status_code"], 200);
    assert_eq!(first["last_attempt"]["response_body"], "answered 200");

    // Each delivery is confirmed in the audit trail (what reached where, never the content).
    let (_, confirmations) =
        app.get_auth("/v1/admin/audit-log?action=delivery.delivered&limit=100", &admin).await;
    let confirmed: Vec<&Value> = confirmations["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|event| event["metadata"]["webhook_id"] == id.as_str())
        .collect();
    assert!(confirmed.len() >= 2, "{confirmations}");
    assert!(confirmed.iter().any(|event| event["target_id"] == first["id"]), "{confirmations}");
    assert!(confirmed.iter().all(|event| event["metadata"]["channel"] == "webhook"));
    assert!(confirmed.iter().all(|event| event["actor_type"] == "system"));

    // Metrics: deliveries by channel and outcome, the queues' depth and age.
    let metrics = app.get("/metrics").await.text().await.unwrap();
    let delivered = metrics
        .lines()
        .find(|line| {
            line.starts_with("gatehouse_outbox_deliveries{")
                && line.contains("channel=\"webhook\"")
                && line.contains("status=\"delivered\"")
        })
        .unwrap_or_else(|| panic!("no delivered webhook gauge in\n{metrics}"));
    let count: f64 = delivered.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(count >= 2.0, "{delivered}");
    for gauge in ["gatehouse_event_queue_depth", "gatehouse_event_queue_oldest_seconds"] {
        assert!(metrics.lines().any(|line| line.starts_with(gauge)), "no {gauge} in\n{metrics}");
    }
    assert!(metrics.contains("gatehouse_outbox_oldest_pending_seconds{channel=\"webhook\"}"));
    app.stop().await;
}

async fn a_receiver_that_was_down_gets_every_event_across_a_restart(test: TestDatabase) {
    let key = MasterKey::generate();
    let app = spawn(&test, &key).await;
    let admin = app.admin_key().await;
    let receiver = Receiver::start().await;
    let (id, secret) = register(&app, &admin, &receiver.url, &["organization.created"]).await;
    receiver.set_status(503);
    for index in 0..3 {
        make_organization(&app, &format!("user{index}@example.com"), &format!("org-{index}")).await;
    }
    // Every event was tried and refused at least once.
    receiver
        .wait_until("three refused events", |all| ids_of(all, "organization.created").len() == 3)
        .await;
    // The log shows the refusals (recorded by the worker just after the receiver answered).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, deliveries) =
            app.get_auth(&format!("/v1/admin/webhooks/{id}/deliveries"), &admin).await;
        let refused = deliveries["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|delivery| delivery["last_attempt"]["status_code"] == 503)
            .count();
        if refused == 3 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{deliveries}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The server stops while the receiver is down; another starts on the same data.
    app.stop().await;
    let before_restart = receiver.all().len();
    receiver.set_status(200);
    let app = spawn(&test, &key).await;
    let received = receiver
        .wait_until("every event answered 200 after the restart", |all| {
            let delivered: Vec<&Received> = all[before_restart..].iter().collect();
            let mut ids: Vec<&str> =
                delivered.iter().map(|request| request.header("webhook-id")).collect();
            ids.sort();
            ids.dedup();
            ids.len() == 3
        })
        .await;
    for request in &received {
        verify(&secret, request).unwrap();
    }
    app.stop().await;
}

async fn two_instances_deliver_each_event_once(test: TestDatabase) {
    let key = MasterKey::generate();
    let first = spawn(&test, &key).await;
    let second = spawn(&test, &key).await;
    let admin = first.admin_key().await;
    let receiver = Receiver::start().await;
    register(&first, &admin, &receiver.url, &["organization.created"]).await;
    for index in 0..10 {
        let app = if index % 2 == 0 { &first } else { &second };
        make_organization(app, &format!("user{index}@example.com"), &format!("org-{index}")).await;
    }
    receiver.wait_until("ten events", |all| ids_of(all, "organization.created").len() == 10).await;
    // Both instances keep running: give them every chance to send one twice (a further event
    // after the ten is the barrier — it arrives after anything already queued).
    make_organization(&first, "last@example.com", "org-last").await;
    let all = receiver
        .wait_until("the eleventh", |all| ids_of(all, "organization.created").len() == 11)
        .await;
    assert_eq!(all.len(), 11, "an event was delivered twice: {:?}", types(&all));
    first.stop().await;
    second.stop().await;
}

async fn rotation_signs_with_both_secrets_and_tests_reach_one_endpoint(test: TestDatabase) {
    let app = spawn(&test, &MasterKey::generate()).await;
    let admin = app.admin_key().await;
    let receiver = Receiver::start().await;
    let other = Receiver::start().await;
    let (id, old_secret) = register(&app, &admin, &receiver.url, &["*"]).await;
    register(&app, &admin, &other.url, &["*"]).await;
    let (status, rotated) = app
        .send(Method::POST, &format!("/v1/admin/webhooks/{id}/rotate-secret"), Some(&admin), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new_secret = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, old_secret);
    assert!(rotated["previous_secret_expires_at"].as_i64().unwrap() > 0);

    let (status, test_answer) =
        app.send(Method::POST, &format!("/v1/admin/webhooks/{id}/test"), Some(&admin), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{test_answer}");
    let received = receiver.wait_until("the test message", |all| !all.is_empty()).await;
    let request = &received[0];
    assert_eq!(request.json()["type"], "webhook.test");
    // Two signatures while the old secret still signs: receivers on either secret verify.
    assert_eq!(request.header("webhook-signature").split(' ').count(), 2);
    verify(&new_secret, request).unwrap();
    verify(&old_secret, request).unwrap();
    // The test went to this endpoint only.
    make_organization(&app, "ada@example.com", "acme").await;
    let at_other = other.wait_until("an event at the other endpoint", |all| !all.is_empty()).await;
    assert!(types(&at_other).iter().all(|kind| kind != "webhook.test"), "{:?}", types(&at_other));

    // Validation: unknown events, bad URLs, unknown ids.
    for (body, field) in [
        (json!({ "url": receiver.url, "events": ["user.sign_in_failed"] }), "events"),
        (json!({ "url": receiver.url, "events": [] }), "events"),
        (json!({ "url": "ftp://example.com/x", "events": ["*"] }), "url"),
        (json!({ "url": "not a url", "events": ["*"] }), "url"),
    ] {
        let (status, problem) =
            app.send(Method::POST, "/v1/admin/webhooks", Some(&admin), Some(body)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }
    let (status, _) = app.get_auth("/v1/admin/webhooks/whk_nope", &admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Pausing and deleting.
    let (status, paused) = app
        .send(
            Method::PATCH,
            &format!("/v1/admin/webhooks/{id}"),
            Some(&admin),
            Some(json!({ "active": false, "description": null })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((paused["active"].as_bool(), paused["description"].is_null()), (Some(false), true));
    let (status, _) =
        app.send(Method::DELETE, &format!("/v1/admin/webhooks/{id}"), Some(&admin), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.get_auth(&format!("/v1/admin/webhooks/{id}"), &admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    app.stop().await;
}

async fn private_targets_are_refused_unless_allowed(test: TestDatabase) {
    let app = TestApp::spawn(&test).await;
    let admin = app.admin_key().await;
    for url in [
        "http://127.0.0.1:9/hooks",
        "http://localhost:9/hooks",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]:9/hooks",
        "http://10.1.2.3/hooks",
    ] {
        let (status, problem) = app
            .send(
                Method::POST,
                "/v1/admin/webhooks",
                Some(&admin),
                Some(json!({ "url": url, "events": ["*"] })),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{url}: {problem}");
        assert_eq!(problem["errors"][0]["code"], "refused_target", "{url}: {problem}");
    }
    // Nothing was registered.
    let (_, listed) = app.get_auth("/v1/admin/webhooks", &admin).await;
    assert_eq!(listed["data"], json!([]));
    app.stop().await;
}

/// The NATS server of these tests (`GATEHOUSE_TEST_NATS_URL`); `None`: skipped outside CI.
fn nats_url() -> Option<String> {
    let url = gatehouse_store::testing::nats_url().unwrap();
    if url.is_none() {
        eprintln!("skipped: set GATEHOUSE_TEST_NATS_URL");
    }
    url
}

async fn events_reach_a_jetstream_consumer(test: TestDatabase) {
    use async_nats::jetstream::consumer::{DeliverPolicy, pull};
    use futures_util::StreamExt;
    let Some(url) = nats_url() else { return };
    let mut settings = FAST.to_vec();
    settings.push(("GATEHOUSE_NATS_URL", url.as_str()));
    // The server creates (or updates) the stream at start.
    let app = TestApp::spawn_with(&test, &MasterKey::generate(), &settings).await;
    let client = async_nats::connect(url.as_str()).await.unwrap();
    let jetstream = async_nats::jetstream::new(client);
    let stream = jetstream.get_stream("GATEHOUSE_EVENTS").await.unwrap();
    let info = stream.get_info().await.unwrap();
    assert_eq!(info.config.subjects, vec!["gatehouse.events.>".to_owned()]);
    // A consumer of what is published from now on (other tests publish to the same stream).
    let consumer = stream
        .create_consumer(pull::Config {
            deliver_policy: DeliverPolicy::New,
            filter_subject: "gatehouse.events.organization.created".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let org = make_organization(&app, "stream@example.com", "streamed").await;
    let mut messages = consumer.messages().await.unwrap();
    let found = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(message) = messages.next().await {
            let message = message.unwrap();
            message.ack().await.unwrap();
            let body: Value = serde_json::from_slice(&message.payload).unwrap();
            if body["data"]["target"]["id"] == org.as_str() {
                return (message.headers.clone(), body);
            }
        }
        panic!("the consumer ended");
    })
    .await
    .expect("the event reached the stream within 20 s");
    let (headers, body) = found;
    assert_eq!(body["type"], "organization.created");
    // The message id is the event id: JetStream drops a copy the outbox sends again.
    let headers = headers.unwrap();
    assert_eq!(headers.get("Nats-Msg-Id").unwrap().as_str(), body["id"].as_str().unwrap());
    app.stop().await;
}

async fn nats_being_down_fails_no_request(test: TestDatabase) {
    // Nothing listens there: the server starts, serves and stays ready, keeping the events.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("nats://{}", closed.local_addr().unwrap());
    drop(closed);
    let mut settings = FAST.to_vec();
    settings.push(("GATEHOUSE_NATS_URL", url.as_str()));
    let app = TestApp::spawn_with(&test, &MasterKey::generate(), &settings).await;
    let admin = app.admin_key().await;
    make_organization(&app, "offline@example.com", "offline").await;
    let (status, ready) = app.get_json("/readyz").await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    assert_eq!(ready["checks"]["nats"], "unavailable", "{ready}");
    // The event waits in the outbox for the stream.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, deliveries) = app.get_auth("/v1/admin/deliveries?limit=100", &admin).await;
        let waiting = deliveries["data"].as_array().unwrap().iter().any(|row| {
            row["channel"] == "nats"
                && row["kind"] == "organization.created"
                && row["status"] != "delivered"
        });
        if waiting {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no nats delivery: {deliveries}");
        // Polling the admin API, not waiting for a time to pass: the relay runs every 50 ms.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.stop().await;
}

/// A server on a clock the test moves, sending email to `sink`, disabling endpoints after an
/// hour of failures.
async fn spawn_failing_hour(
    test: &TestDatabase,
    sink: &SmtpSink,
) -> (TestApp, Arc<gatehouse_domain::ManualClock>) {
    let start =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
            as i64;
    let clock = Arc::new(gatehouse_domain::ManualClock::new(start));
    let smtp = sink.url();
    let mut settings = FAST.to_vec();
    settings.extend([
        ("GATEHOUSE_WEBHOOKS_DISABLE_AFTER_SECONDS", "3600"),
        ("GATEHOUSE_SMTP_URL", smtp.as_str()),
        ("GATEHOUSE_SMTP_FROM", "Gatehouse Tests <id@example.com>"),
    ]);
    let app =
        TestApp::spawn_with_clock(test, &MasterKey::generate(), &settings, Some(clock.clone()))
            .await;
    (app, clock)
}

/// Waits until the endpoint's newest delivery has an attempt answered `status_code` and is
/// `status` (the outcome is recorded before the attempt is).
async fn wait_for_attempt(app: &TestApp, admin: &str, id: &str, status_code: u16, status: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, deliveries) =
            app.get_auth(&format!("/v1/admin/webhooks/{id}/deliveries"), admin).await;
        if deliveries["data"][0]["last_attempt"]["status_code"] == status_code
            && deliveries["data"][0]["status"] == status
        {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "no such attempt: {deliveries}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn an_endpoint_failing_for_days_is_disabled_and_audited(test: TestDatabase) {
    let sink = SmtpSink::start().await;
    let (app, clock) = spawn_failing_hour(&test, &sink).await;
    let admin = app.admin_key().await;
    // Two admin users are told; a plain user is not.
    for (email, role) in
        [("root@example.com", true), ("ops@example.com", true), ("plain@example.com", false)]
    {
        let (status, created) = app
            .send(
                Method::POST,
                "/v1/admin/users",
                Some(&admin),
                Some(json!({ "email": email, "admin": role })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
    }
    let receiver = Receiver::start().await;
    receiver.set_status(500);
    let (id, _) = register(&app, &admin, &receiver.url, &["organization.created"]).await;
    make_organization(&app, "failing@example.com", "failing").await;
    receiver.wait_until("a first failed attempt", |all| !all.is_empty()).await;
    // The attempt is recorded (its outcome and its next time, on the test's clock) before the
    // clock moves.
    wait_for_attempt(&app, &admin, &id, 500, "pending").await;
    let (_, webhook) = app.get_auth(&format!("/v1/admin/webhooks/{id}"), &admin).await;
    assert_eq!(webhook["active"], true, "one failure disables nothing: {webhook}");
    // An hour and more of failures: the next attempt (due on the moved clock) disables it.
    clock.advance(3700);
    receiver.wait_until("a second failed attempt", |all| all.len() >= 2).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, webhook) = app.get_auth(&format!("/v1/admin/webhooks/{id}"), &admin).await;
        if webhook["active"] == false {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "still active: {webhook}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, log) = app.get_auth("/v1/admin/audit-log?action=webhook.disabled", &admin).await;
    assert_eq!(log["data"][0]["target_id"], id.as_str(), "{log}");
    assert_eq!(log["data"][0]["actor_type"], "system");
    assert_eq!(log["data"].as_array().unwrap().len(), 1, "disabled once: {log}");
    // Each admin gets one email naming the endpoint and how to turn it back on.
    for address in ["root@example.com", "ops@example.com"] {
        let mail = sink.wait_for_subject(address, "webhook endpoint was disabled").await;
        let text = mail.text();
        assert!(text.contains(&receiver.url) && text.contains(&id), "{text}");
        assert!(text.contains("more than 1 hours"), "{text}");
        assert!(text.contains(&format!("PATCH /v1/admin/webhooks/{id}")), "{text}");
    }
    assert!(sink.messages_to("plain@example.com").is_empty());
    // Its deliveries wait; turned back on, they go out once the receiver answers.
    receiver.set_status(200);
    let (status, _) = app
        .send(
            Method::PATCH,
            &format!("/v1/admin/webhooks/{id}"),
            Some(&admin),
            Some(json!({ "active": true })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    clock.advance(24 * 3600);
    receiver
        .wait_until("the delivery after the endpoint is back on", |all| {
            all.iter().filter(|request| request.json()["type"] == "organization.created").count()
                >= 3
        })
        .await;
    wait_for_attempt(&app, &admin, &id, 200, "delivered").await;
    for address in ["root@example.com", "ops@example.com"] {
        assert_eq!(sink.messages_to(address).len(), 1, "{address} was told once");
    }
    app.stop().await;
}

/// A success ends an endpoint's run of failures: a failure long after it starts a new run and
/// does not disable the endpoint.
async fn a_success_ends_the_failing_streak(test: TestDatabase) {
    let sink = SmtpSink::start().await;
    let (app, clock) = spawn_failing_hour(&test, &sink).await;
    let admin = app.admin_key().await;
    let receiver = Receiver::start().await;
    receiver.set_status(500);
    let (id, _) = register(&app, &admin, &receiver.url, &["organization.created"]).await;
    make_organization(&app, "first@example.com", "first").await;
    wait_for_attempt(&app, &admin, &id, 500, "pending").await;
    // The retry (due on the test's clock) succeeds.
    receiver.set_status(200);
    clock.advance(5);
    wait_for_attempt(&app, &admin, &id, 200, "delivered").await;
    // Two hours later, a new failure: a new run, not an old one going on.
    clock.advance(7200);
    receiver.set_status(500);
    make_organization(&app, "second@example.com", "second").await;
    receiver
        .wait_until("the second event's failed attempt", |all| {
            all.iter().filter(|request| request.json()["type"] == "organization.created").count()
                >= 3
        })
        .await;
    wait_for_attempt(&app, &admin, &id, 500, "pending").await;
    let (_, webhook) = app.get_auth(&format!("/v1/admin/webhooks/{id}"), &admin).await;
    assert_eq!(webhook["active"], true, "{webhook}");
    let (_, log) = app.get_auth("/v1/admin/audit-log?action=webhook.disabled", &admin).await;
    assert_eq!(log["data"], json!([]), "{log}");
    app.stop().await;
}
