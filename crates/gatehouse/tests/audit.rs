//! The audit trail on both backends: catalogue names over HTTP, the chain (chained by the
//! chainer, checked by `gatehouse audit verify`, which names an edited, a deleted and a
//! reordered row), the PostgreSQL trigger, erasure, the search's filters and the export
//! (HTTP stream and CLI).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use gatehouse_crypto::MasterKey;
use gatehouse_domain::audit::{AuditEvent, AuditStore};
use gatehouse_domain::principal::{Actor, RequestContext};
use gatehouse_store::testing::TestDatabase;
use gatehouse_store::{Database, backend_tests, with_pool};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{STRONG_PASSWORD, TestApp, binary};

backend_tests!(
    account_happenings_carry_the_catalogue_names_and_are_chained,
    verify_names_an_edited_row,
    verify_names_a_deleted_row,
    verify_names_a_reordered_row,
    the_trigger_lets_only_the_chainer_and_erasure_change_a_row,
    erasure_keeps_the_chain_verifiable,
    the_search_filters_by_actor_target_action_ip_organization_and_time,
    the_export_streams_every_row_as_jsonl_and_csv,
    the_cli_exports_to_a_file,
    the_servers_chainer_chains_new_rows_within_seconds,
    deleting_an_account_erases_its_personal_fields,
);

/// `count` events, with personal fields, appended one by one at times 1000, 1001, ...
async fn append(database: &Database, count: usize) -> Vec<AuditEvent> {
    let mut events = Vec::new();
    for number in 0..count {
        let context = RequestContext {
            ip: Some(format!("203.0.113.{}", number % 3)),
            user_agent: Some("curl/8".into()),
            ..RequestContext::default()
        };
        let actor = Actor::User(format!("usr_{}", number % 2));
        let event = AuditEvent::new("user.updated", &actor, &context, 1_000 + number as i64)
            .target("user", &format!("usr_{}", number % 2))
            .metadata(json!({ "n": number, "email": format!("u{number}@example.test") }));
        database.append_audit_events(std::slice::from_ref(&event)).await.unwrap();
        events.push(event);
    }
    events
}

/// Runs `statements` in one transaction with the PostgreSQL trigger off (as a superuser
/// session in replica mode), as someone with direct access to the database would.
async fn tamper(database: &Database, statements: &[&'static str]) {
    with_pool!(database, pool => {
        let mut transaction = pool.begin().await.unwrap();
        if matches!(database, Database::Postgres(_)) {
            sqlx::query("SET LOCAL session_replication_role = replica")
                .execute(&mut *transaction)
                .await
                .unwrap();
        }
        for statement in statements {
            sqlx::query(*statement).execute(&mut *transaction).await.unwrap_or_else(|error| panic!("{statement}: {error}"));
        }
        transaction.commit().await.unwrap();
    });
}

fn env_for(test: &TestDatabase, key: &MasterKey) -> Vec<(String, String)> {
    let mut env = vec![
        ("GATEHOUSE_DATABASE_URL".to_owned(), test.url.clone()),
        ("GATEHOUSE_MASTER_KEY".to_owned(), key.encode()),
    ];
    if let Some(schema) = &test.postgres_schema {
        env.push(("GATEHOUSE_DATABASE_SCHEMA".into(), schema.clone()));
    }
    env
}

/// `gatehouse audit verify --json`: (exit code, report).
async fn verify(test: &TestDatabase, key: &MasterKey) -> (i32, Value) {
    let directory = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) =
        binary::run(directory.path(), &env_for(test, key), &["audit", "verify", "--json"]).await;
    let report = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|error| panic!("{error}: {stdout}\n{stderr}"));
    (code, report)
}

/// A server with `count` chained events.
async fn chained(test: &TestDatabase, key: &MasterKey, count: usize) -> (TestApp, Vec<AuditEvent>) {
    let app = TestApp::spawn_with_key(test, key).await;
    let events = append(&app.database, count).await;
    app.sweeper.audit().chain_pending().await.unwrap();
    (app, events)
}

/// The events' ids in chain order.
async fn chain_order(database: &Database) -> Vec<String> {
    with_pool!(database, pool => {
        sqlx::query_scalar::<_, String>("SELECT id FROM audit_events WHERE chain_seq IS NOT NULL ORDER BY chain_seq")
            .fetch_all(pool)
            .await
            .unwrap()
    })
}

async fn account_happenings_carry_the_catalogue_names_and_are_chained(test: TestDatabase) {
    let key = MasterKey::generate();
    let app = TestApp::spawn_with_key(&test, &key).await;
    let signed_up = app.sign_up("ada@example.com", STRONG_PASSWORD).await;
    let (_, signed_in) = app.sign_in("ada@example.com", STRONG_PASSWORD).await;
    let token = signed_in["access_token"].as_str().unwrap();
    let (status, _) = app.send(reqwest::Method::POST, "/v1/auth/sign-out", Some(token), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let admin = app.admin_key().await;
    let (_, log) = app.get_auth("/v1/admin/audit-log?limit=200", &admin).await;
    let actions: Vec<&str> = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["action"].as_str().unwrap())
        .collect();
    for expected in ["user.created", "session.created", "session.revoked"] {
        assert!(actions.contains(&expected), "{expected} in {actions:?}");
        assert!(gatehouse_domain::events::is_catalogued(expected));
    }
    for old in ["user.signed_up", "user.sign_in_succeeded", "session.signed_out"] {
        assert!(!actions.contains(&old), "{old} in {actions:?}");
    }
    let (_, revoked) = app.get_auth("/v1/admin/audit-log?action=session.revoked", &admin).await;
    assert_eq!(revoked["data"][0]["metadata"]["reason"], "signed_out");
    assert_eq!(revoked["data"][0]["actor_id"], signed_up["user"]["id"]);

    // The chainer (what the server runs every second) chains them all; the check passes.
    app.sweeper.audit().chain_pending().await.unwrap();
    let (code, report) = verify(&test, &key).await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["intact"], true);
    assert!(report["checked"].as_u64().unwrap() >= 3, "{report}");
    assert_eq!(report["unchained"], 0);
    app.stop().await;
}

async fn verify_names_an_edited_row(test: TestDatabase) {
    let key = MasterKey::generate();
    let (app, _) = chained(&test, &key, 5).await;
    let order = chain_order(&app.database).await;
    tamper(&app.database, &["UPDATE audit_events SET action = 'user.deleted' WHERE chain_seq = 3"])
        .await;
    let (code, report) = verify(&test, &key).await;
    assert_eq!(code, 3, "{report}");
    assert_eq!(report["broken"]["event_id"], order[2].as_str());
    assert_eq!(report["broken"]["problem"], "hash");
    assert_eq!(report["checked"], 2);

    // An edited IP address shows through the personal digest.
    tamper(&app.database, &["UPDATE audit_events SET action = 'user.updated' WHERE chain_seq = 3"])
        .await;
    assert_eq!(verify(&test, &key).await.0, 0);
    tamper(&app.database, &["UPDATE audit_events SET ip = '198.51.100.7' WHERE chain_seq = 4"])
        .await;
    let (code, report) = verify(&test, &key).await;
    assert_eq!(code, 3, "{report}");
    assert_eq!(
        (report["broken"]["event_id"].as_str(), report["broken"]["problem"].as_str()),
        (Some(order[3].as_str()), Some("personal_fields"))
    );
    app.stop().await;
}

async fn verify_names_a_deleted_row(test: TestDatabase) {
    let key = MasterKey::generate();
    let (app, _) = chained(&test, &key, 5).await;
    let order = chain_order(&app.database).await;
    tamper(&app.database, &["DELETE FROM audit_events WHERE chain_seq = 2"]).await;
    let (code, report) = verify(&test, &key).await;
    assert_eq!(code, 3, "{report}");
    // The first row after the hole is named.
    assert_eq!(report["broken"]["event_id"], order[2].as_str());
    assert_eq!(report["broken"]["problem"], "gap");

    // The last row removed: the chain ends before its head.
    let (app2, _) = (app, ());
    tamper(&app2.database, &["DELETE FROM audit_events WHERE chain_seq >= 2"]).await;
    let (code, report) = verify(&test, &key).await;
    assert_eq!(code, 3, "{report}");
    assert_eq!(report["broken"]["problem"], "truncated");
    app2.stop().await;
}

async fn verify_names_a_reordered_row(test: TestDatabase) {
    let key = MasterKey::generate();
    let (app, _) = chained(&test, &key, 5).await;
    let order = chain_order(&app.database).await;
    tamper(
        &app.database,
        &[
            "UPDATE audit_events SET chain_seq = -2 WHERE chain_seq = 2",
            "UPDATE audit_events SET chain_seq = 2 WHERE chain_seq = 3",
            "UPDATE audit_events SET chain_seq = 3 WHERE chain_seq = -2",
        ],
    )
    .await;
    assert_eq!(chain_order(&app.database).await[1], order[2]);
    let (code, report) = verify(&test, &key).await;
    assert_eq!(code, 3, "{report}");
    assert_eq!(report["broken"]["event_id"], order[2].as_str());
    assert_eq!(report["broken"]["problem"], "hash");
    app.stop().await;
}

async fn the_trigger_lets_only_the_chainer_and_erasure_change_a_row(test: TestDatabase) {
    let key = MasterKey::generate();
    let app = TestApp::spawn_with_key(&test, &key).await;
    append(&app.database, 2).await;
    let Database::Postgres(postgres) = &app.database else {
        // SQLite has no trigger: the chain (tested above) is what shows a change there.
        app.stop().await;
        return;
    };
    let pool = &postgres.pool;
    for statement in [
        "UPDATE audit_events SET action = 'user.deleted'",
        "UPDATE audit_events SET metadata = '{}'",
        "DELETE FROM audit_events",
    ] {
        let error = sqlx::query(statement).execute(pool).await.unwrap_err();
        assert!(error.to_string().contains("append-only"), "{statement}: {error}");
    }
    // The chainer's write passes; then a chained row cannot be re-chained or edited.
    app.sweeper.audit().chain_pending().await.unwrap();
    for statement in [
        "UPDATE audit_events SET chain_hash = 'x'",
        "UPDATE audit_events SET ip = NULL",
        "DELETE FROM audit_events",
    ] {
        let error = sqlx::query(statement).execute(pool).await.unwrap_err();
        assert!(error.to_string().contains("append-only"), "{statement}: {error}");
    }
    // An erasure passes.
    let erased = app.sweeper.audit().erase_personal_fields("usr_0").await.unwrap();
    assert_eq!(erased, 1);
    app.stop().await;
}

async fn erasure_keeps_the_chain_verifiable(test: TestDatabase) {
    let key = MasterKey::generate();
    let (app, _) = chained(&test, &key, 6).await;
    assert_eq!(app.sweeper.audit().erase_personal_fields("usr_1").await.unwrap(), 3);
    let (status, log) =
        app.get_auth("/v1/admin/audit-log?actor=usr_1", &app.admin_key().await).await;
    assert_eq!(status, StatusCode::OK);
    for event in log["data"].as_array().unwrap() {
        assert_eq!(
            (event["ip"].clone(), event["user_agent"].clone()),
            (Value::Null, Value::Null),
            "{event}"
        );
        assert_eq!(event["metadata"].get("email"), None, "{event}");
        assert!(event["metadata"]["n"].is_number());
    }
    let (code, report) = verify(&test, &key).await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(
        report["checked"].as_u64(),
        Some(6 + 1),
        "the admin key's creation is chained too: {report}"
    );
    app.stop().await;
}

async fn the_search_filters_by_actor_target_action_ip_organization_and_time(test: TestDatabase) {
    let app = TestApp::spawn(&test).await;
    append(&app.database, 6).await;
    let organization = AuditEvent::new(
        "organization.updated",
        &Actor::User("usr_9".into()),
        &RequestContext::default(),
        2_000,
    )
    .target("organization", "org_1");
    app.database.append_audit_events(&[organization]).await.unwrap();
    let admin = app.admin_key().await;
    let count = |query: &'static str| {
        let app = &app;
        let admin = admin.clone();
        async move {
            let (status, page) =
                app.get_auth(&format!("/v1/admin/audit-log?limit=200&{query}"), &admin).await;
            assert_eq!(status, StatusCode::OK, "{query}: {page}");
            page["data"].as_array().unwrap().len()
        }
    };
    assert_eq!(count("actor=usr_0").await, 3);
    assert_eq!(count("target=usr_1").await, 3);
    assert_eq!(count("ip=203.0.113.2").await, 2);
    assert_eq!(count("organization=org_1").await, 1);
    assert_eq!(count("action=organization.updated").await, 1);
    assert_eq!(count("since=1002&until=1004").await, 2);
    assert_eq!(count("actor=usr_0&ip=203.0.113.0&since=1000&until=1001").await, 1);
    // Bad input is a 4xx problem.
    let (status, problem) = app.get_auth("/v1/admin/audit-log?since=yesterday", &admin).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_query"))
    );
    let (status, problem) = app.get_auth("/v1/admin/audit-log?cursor=nope", &admin).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed"))
    );
    app.stop().await;
}

async fn the_export_streams_every_row_as_jsonl_and_csv(test: TestDatabase) {
    let app = TestApp::spawn(&test).await;
    // More than two export batches (1,000 rows each), in one transaction.
    let events: Vec<AuditEvent> = (0..2_345)
        .map(|number| {
            AuditEvent::new(
                "user.updated",
                &Actor::User("usr_x".into()),
                &RequestContext::default(),
                10_000 + number / 7,
            )
            .metadata(json!({ "n": number, "note": "a, \"quoted\"\nline" }))
        })
        .collect();
    app.database.append_audit_events(&events).await.unwrap();
    let admin = app.admin_key().await;
    let fetch = |query: &'static str| {
        let app = &app;
        let admin = admin.clone();
        async move {
            let response = app
                .http
                .get(app.url(&format!("/v1/admin/audit-log/export?{query}")))
                .bearer_auth(&admin)
                .send()
                .await
                .unwrap();
            let status = response.status();
            let content_type = response
                .headers()
                .get("content-type")
                .map(|value| value.to_str().unwrap().to_owned());
            (status, content_type, response.text().await.unwrap())
        }
    };
    let (status, content_type, body) = fetch("format=jsonl&actor=usr_x").await;
    assert_eq!((status, content_type.as_deref()), (StatusCode::OK, Some("application/jsonl")));
    let numbers: Vec<i64> = body
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap()["metadata"]["n"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers.len(), 2_345);
    // Oldest first, each row once (ties in time by id: ids are time-ordered UUIDv7s).
    let mut sorted = numbers.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted, (0..2_345).collect::<Vec<i64>>());

    let (status, content_type, body) = fetch("format=csv&actor=usr_x&since=10100").await;
    assert_eq!(
        (status, content_type.as_deref()),
        (StatusCode::OK, Some("text/csv; charset=utf-8"))
    );
    assert!(body.starts_with("id,occurred_at,action,actor_type,actor_id,target_type,target_id,organization_id,ip,user_agent,request_id,metadata\r\n"));
    // Each record ends in CRLF; the quoted line break inside metadata is a bare LF.
    assert_eq!(body.matches("\r\n").count(), 1 + (2_345 - 700));
    assert!(
        body.contains(r#""{""n"":700,""note"":""a, \""quoted\""\nline""}""#),
        "{}",
        &body[..400]
    );

    let (status, _, body) = fetch("format=xml").await;
    let problem: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_query"))
    );
    let response = app.http.get(app.url("/v1/admin/audit-log/export")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    app.stop().await;
}

async fn the_cli_exports_to_a_file(test: TestDatabase) {
    let key = MasterKey::generate();
    let app = TestApp::spawn_with_key(&test, &key).await;
    append(&app.database, 5).await;
    let directory = tempfile::tempdir().unwrap();
    let output = directory.path().join("audit.csv");
    let (code, stdout, stderr) = binary::run(
        directory.path(),
        &env_for(&test, &key),
        &[
            "audit",
            "export",
            "--format",
            "csv",
            "--actor",
            "usr_0",
            "--output",
            output.to_str().unwrap(),
            "--json",
        ],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(serde_json::from_str::<Value>(stdout.trim()).unwrap()["rows"], 3);
    let text = std::fs::read_to_string(&output).unwrap();
    assert_eq!(text.lines().count(), 4, "{text}");
    assert!(!stderr.contains("rows\r"), "no progress line when stderr is not a terminal");
    // To stdout, as JSON Lines.
    let (code, stdout, _) = binary::run(
        directory.path(),
        &env_for(&test, &key),
        &["audit", "export", "--ip", "203.0.113.1"],
    )
    .await;
    assert_eq!(code, 0);
    assert_eq!(stdout.lines().count(), 2);
    app.stop().await;
}

async fn the_servers_chainer_chains_new_rows_within_seconds(test: TestDatabase) {
    let app = TestApp::spawn(&test).await;
    append(&app.database, 25).await;
    let appended = std::time::Instant::now();
    // Nobody calls the chainer here: the server's own task (every second) must get to them.
    let deadline = appended + std::time::Duration::from_secs(5);
    loop {
        let state = gatehouse_domain::audit::AuditChainStore::audit_chain_state(&app.database)
            .await
            .unwrap();
        // The state is read in three statements, not one snapshot: a head read before the
        // chainer's commit and a count after it would show "nothing pending" with a short head.
        // Done only when both say so.
        if state.unchained == 0 && state.head.seq >= 25 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "rows still unchained after 5 s: {state:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let report = app.sweeper.audit().verify().await.unwrap();
    assert_eq!(report.broken, None);
    app.stop().await;
}

/// The events naming `user_id` (as actor or target), from the admin API.
async fn events_naming(app: &TestApp, admin: &str, user_id: &str) -> Vec<Value> {
    let mut events = Vec::new();
    for filter in ["actor", "target"] {
        let (status, log) =
            app.get_auth(&format!("/v1/admin/audit-log?{filter}={user_id}&limit=100"), admin).await;
        assert_eq!(status, StatusCode::OK, "{log}");
        events.extend(log["data"].as_array().unwrap().iter().cloned());
    }
    events
}

/// GDPR erasure: deleting an account makes the server's chainer erase the user's IP addresses
/// and user agents from the trail (the deletion's own event included), leaving other users'
/// rows as they were and the chain verifiable; the request is dropped after its window.
async fn deleting_an_account_erases_its_personal_fields(test: TestDatabase) {
    let key = MasterKey::generate();
    let start =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
            as i64;
    let clock = std::sync::Arc::new(gatehouse_domain::ManualClock::new(start));
    let app = TestApp::spawn_with_clock(&test, &key, &[], Some(clock.clone())).await;
    let admin = app.admin_key().await;
    let ada = app.sign_up("ada@example.com", STRONG_PASSWORD).await;
    let bob = app.sign_up("bob@example.com", STRONG_PASSWORD).await;
    let (status, _) = app.sign_in("ada@example.com", STRONG_PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    let ada_id = ada["user"]["id"].as_str().unwrap().to_owned();
    let bob_id = bob["user"]["id"].as_str().unwrap().to_owned();
    let before = events_naming(&app, &admin, &ada_id).await;
    assert!(before.len() >= 2, "{before:?}");
    assert!(before.iter().all(|event| event["ip"].is_string()), "{before:?}");

    let (status, _) = app
        .send(reqwest::Method::DELETE, &format!("/v1/admin/users/{ada_id}"), Some(&admin), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // Nobody calls the chainer here: the server's own task chains, then erases.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let after = loop {
        let events = events_naming(&app, &admin, &ada_id).await;
        if events.iter().all(|event| event["ip"].is_null() && event["user_agent"].is_null()) {
            break events;
        }
        assert!(std::time::Instant::now() < deadline, "not erased after 10 s: {events:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let actions: Vec<&str> = after.iter().filter_map(|event| event["action"].as_str()).collect();
    for action in ["user.created", "session.created", "user.deleted"] {
        assert!(
            actions.contains(&action),
            "{action} kept, without its personal fields: {actions:?}"
        );
    }
    let bob_events = events_naming(&app, &admin, &bob_id).await;
    assert!(bob_events.iter().all(|event| event["ip"].is_string()), "{bob_events:?}");
    let (code, report) = verify(&test, &key).await;
    assert_eq!(code, 0, "{report}");

    // The request lives for its window, then goes.
    let pending = || async {
        with_pool!(&app.database, pool => {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM audit_erasures")
                .fetch_one(pool)
                .await
                .unwrap()
        })
    };
    assert_eq!(pending().await, 1);
    clock.advance(601);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while pending().await != 0 {
        assert!(std::time::Instant::now() < deadline, "the erasure request stayed");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    app.stop().await;
}
