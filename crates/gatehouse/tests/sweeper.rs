//! The sweeper on both backends: one sweep removes exactly the expired rows of every swept
//! table (and delivered outbox rows and audit events past their retention) and keeps the
//! live ones; two instances sweeping one database at once remove each row once and count it
//! once; what was removed shows on `/metrics`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;

use gatehouse_crypto::MasterKey;
use gatehouse_domain::ManualClock;
use gatehouse_domain::audit::chain::BreakKind;
use gatehouse_domain::sweeper::SweptTable;
use gatehouse_store::testing::TestDatabase;
use gatehouse_store::{Database, backend_tests, with_pool};
use support::TestApp;

backend_tests!(
    one_sweep_removes_exactly_the_expired_rows_of_every_table,
    audit_retention_zero_keeps_everything_and_n_days_removes_older,
    two_instances_sweeping_at_once_remove_and_count_each_row_once,
    a_claimed_period_is_not_swept_again_by_another_instance,
);

const DAY: i64 = 86_400;

async fn spawn(test: &TestDatabase, key: &MasterKey, extra: &[(&str, &str)]) -> (TestApp, i64) {
    let clock = Arc::new(ManualClock::new(chrono_now()));
    let now = gatehouse_domain::Clock::now(clock.as_ref());
    let mut settings = vec![("GATEHOUSE_SWEEPER_INTERVAL_SECONDS", "0")];
    settings.extend_from_slice(extra);
    (TestApp::spawn_with_clock(test, key, &settings, Some(clock)).await, now)
}

fn chrono_now() -> i64 {
    gatehouse_domain::Clock::now(&gatehouse_domain::SystemClock)
}

async fn execute(database: &Database, sql: &'static str, binds: &[Bind<'_>]) {
    with_pool!(database, pool => {
        let mut query = sqlx::query(sql);
        for bind in binds {
            query = match bind {
                Bind::Text(text) => query.bind(*text),
                Bind::Int(value) => query.bind(*value),
                Bind::Bytes(bytes) => query.bind(*bytes),
                Bind::Null => query.bind(None::<i64>),
                Bind::NullText => query.bind(None::<&str>),
            };
        }
        query.execute(pool).await.unwrap_or_else(|error| panic!("{sql}: {error}"));
    });
}

enum Bind<'a> {
    Text(&'a str),
    Int(i64),
    Bytes(&'a [u8]),
    Null,
    NullText,
}
use Bind::{Bytes, Int, Null, NullText, Text};

/// The keys left in `table` (its key column read as text, or blobs as UTF-8).
async fn keys(database: &Database, table: &str, column: &str) -> BTreeSet<String> {
    let blob = matches!(
        column,
        "token_digest" | "code_digest" | "device_code_digest" | "id_digest" | "request_digest"
    );
    let sql = format!("SELECT {column} FROM {table}");
    with_pool!(database, pool => {
        if blob {
            sqlx::query_scalar::<_, Vec<u8>>(sqlx::AssertSqlSafe(sql.clone()))
                .fetch_all(pool)
                .await
                .unwrap()
                .into_iter()
                .map(|bytes| String::from_utf8(bytes).unwrap())
                .collect()
        } else {
            sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql.clone())).fetch_all(pool).await.unwrap().into_iter().collect()
        }
    })
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|item| (*item).to_owned()).collect()
}

/// A user, a client and, in every swept table, one row named `old…` (expired, or past its
/// retention) and one named `live…` (or kept for another reason).
async fn seed(database: &Database, now: i64) {
    let (past, future) = (now - 10, now + 3600);
    execute(
        database,
        "INSERT INTO users (id, created_at, updated_at) VALUES ('usr_t', $1, $1)",
        &[Int(now)],
    )
    .await;
    execute(
        database,
        "INSERT INTO oauth_clients (client_id, name, redirect_uris, grant_types, scopes, \
         token_endpoint_auth_method, created_at, updated_at) \
         VALUES ('app', 'App', '[]', '[]', '[]', 'none', $1, $1)",
        &[Int(now)],
    )
    .await;
    for (id, expires) in [("old_session", past), ("live_session", future)] {
        execute(
            database,
            "INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at) \
             VALUES ($1, 'usr_t', $2, $2, $3)",
            &[Text(id), Int(now - 100), Int(expires)],
        )
        .await;
    }
    // Expired and never used; live; expired but rotated while its session lives (kept: a
    // replay must still revoke the family); expired, rotated, of an expired session.
    for (digest, session, expires, rotated) in [
        ("old_refresh", "live_session", past, None),
        ("live_refresh", "live_session", future, None),
        ("live_rotated_refresh", "live_session", past, Some(now - 20)),
        ("old_rotated_refresh", "old_session", past, Some(now - 20)),
    ] {
        execute(
            database,
            "INSERT INTO refresh_tokens (token_digest, session_id, created_at, expires_at, \
             rotated_at) VALUES ($1, $2, $3, $4, $5)",
            &[
                Bytes(digest.as_bytes()),
                Text(session),
                Int(now - 100),
                Int(expires),
                rotated.map_or(Null, Int),
            ],
        )
        .await;
    }
    // Expired and unused; live; expired, spent, its session live (kept: a replay must still
    // revoke it); expired, spent, its session expired.
    for (digest, expires, issued) in [
        ("old_code", past, None),
        ("live_code", future, None),
        ("live_spent_code", past, Some("live_session")),
        ("old_spent_code", past, Some("old_session")),
    ] {
        execute(
            database,
            "INSERT INTO authorization_codes (code_digest, client_id, user_id, browser_session_id, \
             redirect_uri, scope, auth_time, created_at, expires_at, used_at, issued_session_id) \
             VALUES ($1, 'app', 'usr_t', 'live_session', 'https://app/cb', 'openid', $2, $2, $3, $4, $5)",
            &[
                Bytes(digest.as_bytes()),
                Int(now - 100),
                Int(expires),
                issued.map_or(Null, |_| Int(now - 50)),
                issued.map_or(NullText, Text),
            ],
        )
        .await;
    }
    for (digest, expires) in [("old_link", past), ("live_link", future)] {
        execute(
            database,
            "INSERT INTO one_time_tokens (token_digest, purpose, user_id, created_at, expires_at) \
             VALUES ($1, 'magic_link', 'usr_t', $2, $3)",
            &[Bytes(digest.as_bytes()), Int(now - 100), Int(expires)],
        )
        .await;
    }
    for (jti, expires) in [("old_jti", past), ("live_jti", future)] {
        execute(
            database,
            "INSERT INTO revoked_access_tokens (jti, expires_at) VALUES ($1, $2)",
            &[Text(jti), Int(expires)],
        )
        .await;
    }
    for (digest, user_code, expires) in
        [("old_device", "AAAA", past), ("live_device", "BBBB", future)]
    {
        execute(
            database,
            "INSERT INTO device_codes (device_code_digest, user_code, client_id, scope, status, \
             interval_seconds, created_at, expires_at) \
             VALUES ($1, $2, 'app', 'openid', 'pending', 5, $3, $4)",
            &[Bytes(digest.as_bytes()), Text(user_code), Int(now - 100), Int(expires)],
        )
        .await;
    }
    for (digest, expires) in [("old_par", past), ("live_par", future)] {
        execute(
            database,
            "INSERT INTO pushed_authorization_requests (request_digest, client_id, parameters, \
             created_at, expires_at) VALUES ($1, 'app', '{}', $2, $3)",
            &[Bytes(digest.as_bytes()), Int(now - 100), Int(expires)],
        )
        .await;
    }
    for (jti, expires) in [("old_assertion", past), ("live_assertion", future)] {
        execute(
            database,
            "INSERT INTO used_client_assertions (client_id, jti, expires_at) VALUES ('app', $1, $2)",
            &[Text(jti), Int(expires)],
        )
        .await;
    }
    for (jti, expires) in [("old_proof", past), ("live_proof", future)] {
        execute(
            database,
            "INSERT INTO used_dpop_proofs (jkt, jti, expires_at) VALUES ('thumbprint', $1, $2)",
            &[Text(jti), Int(expires)],
        )
        .await;
    }
    for (id, expires) in [("old_registration", past), ("live_registration", future)] {
        execute(
            database,
            "INSERT INTO registration_tokens (id, token_digest, name, max_uses, uses, created_at, \
             expires_at) VALUES ($1, $2, 'ci', 1, 0, $3, $4)",
            &[Text(id), Bytes(id.as_bytes()), Int(now - 100), Int(expires)],
        )
        .await;
    }
    for (id, expires) in [("old_mfa_code", past), ("live_mfa_code", future)] {
        execute(
            database,
            "INSERT INTO mfa_codes (id, user_id, channel, purpose, code_digest, created_at, expires_at) \
             VALUES ($1, 'usr_t', 'email', 'sign_in', $2, $3, $4)",
            &[Text(id), Bytes(id.as_bytes()), Int(now - 100), Int(expires)],
        )
        .await;
    }
    for (digest, expires) in [("old_challenge", past), ("live_challenge", future)] {
        execute(
            database,
            "INSERT INTO mfa_challenges (token_digest, user_id, data, created_at, expires_at) \
             VALUES ($1, 'usr_t', '{}', $2, $3)",
            &[Bytes(digest.as_bytes()), Int(now - 100), Int(expires)],
        )
        .await;
    }
    for (digest, expires) in [("old_ceremony", past), ("live_ceremony", future)] {
        execute(
            database,
            "INSERT INTO passkey_ceremonies (id_digest, data, created_at, expires_at) \
             VALUES ($1, '{}', $2, $3)",
            &[Bytes(digest.as_bytes()), Int(now - 100), Int(expires)],
        )
        .await;
    }
    execute(
        database,
        "INSERT INTO organizations (id, name, slug, created_at, updated_at) \
         VALUES ('org_t', 'T', 'sweeper-t', $1, $1)",
        &[Int(now - 100)],
    )
    .await;
    for (id, expires) in [("old_invitation", past), ("live_invitation", future)] {
        execute(
            database,
            "INSERT INTO organization_invitations (id, organization_id, email_digest, \
             email_ciphertext, role, token_digest, created_at, expires_at) \
             VALUES ($1, 'org_t', $2, $2, 'member', $2, $3, $4)",
            &[Text(id), Bytes(id.as_bytes()), Int(now - 100), Int(expires)],
        )
        .await;
    }
    for (id, expires) in [("old_trusted", past), ("live_trusted", future)] {
        execute(
            database,
            "INSERT INTO trusted_devices (id, user_id, token_digest, created_at, expires_at) \
             VALUES ($1, 'usr_t', $2, $3, $4)",
            &[Text(id), Bytes(id.as_bytes()), Int(now - 100), Int(expires)],
        )
        .await;
    }
    // API keys: revoked 91 days ago (past the 90-day retention), revoked yesterday, expired
    // yesterday, expiring in an hour, and one without expiry.
    for (id, revoked, expires) in [
        ("old_api_key", Some(now - 91 * DAY), None),
        ("live_recently_revoked", Some(now - DAY), None),
        ("live_recently_expired", None, Some(now - DAY)),
        ("live_api_key", None, Some(future)),
        ("live_forever_key", None, None),
    ] {
        execute(
            database,
            "INSERT INTO api_keys (id, user_id, created_by, name, prefix, key_digest, scopes, \
             created_at, expires_at, revoked_at) \
             VALUES ($1, 'usr_t', 'usr_t', 'k', 'gtk_', $2, 'a:b', $3, $4, $5)",
            &[
                Text(id),
                Bytes(id.as_bytes()),
                Int(now - 200 * DAY),
                expires.map_or(Null, Int),
                revoked.map_or(Null, Int),
            ],
        )
        .await;
    }
    // Delivered 8 days ago (past the default 7-day retention), delivered yesterday, and two
    // old rows that were never delivered: dead (kept for an admin to retry) and pending.
    for (id, status, delivered) in [
        ("old_delivered", "delivered", Some(now - 8 * DAY)),
        ("live_delivered", "delivered", Some(now - DAY)),
        ("live_dead", "dead", None),
        ("live_pending", "pending", None),
    ] {
        execute(
            database,
            "INSERT INTO outbox (id, channel, kind, payload, status, next_attempt_at, created_at, \
             delivered_at) VALUES ($1, 'email', 'magic_link', $2, $3, $4, $4, $5)",
            &[
                Text(id),
                Bytes(b"sealed"),
                Text(status),
                Int(now - 30 * DAY),
                delivered.map_or(Null, Int),
            ],
        )
        .await;
    }
    execute(
        database,
        "INSERT INTO outbox_attempts (id, outbox_id, worker, status, started_at, duration_ms) \
         VALUES ('attempt', 'old_delivered', 'w', 'delivered', $1, 5)",
        &[Int(now - 8 * DAY)],
    )
    .await;
}

/// Every swept table, its key column, and the keys a sweep must leave.
const EXPECTED: &[(SweptTable, &str, &[&str])] = &[
    (SweptTable::Sessions, "id", &["live_session"]),
    (SweptTable::RefreshTokens, "token_digest", &["live_refresh", "live_rotated_refresh"]),
    (SweptTable::AuthorizationCodes, "code_digest", &["live_code", "live_spent_code"]),
    (SweptTable::OneTimeTokens, "token_digest", &["live_link"]),
    (SweptTable::RevokedAccessTokens, "jti", &["live_jti"]),
    (SweptTable::DeviceCodes, "device_code_digest", &["live_device"]),
    (SweptTable::PushedAuthorizationRequests, "request_digest", &["live_par"]),
    (SweptTable::UsedClientAssertions, "jti", &["live_assertion"]),
    (SweptTable::UsedDpopProofs, "jti", &["live_proof"]),
    (SweptTable::RegistrationTokens, "id", &["live_registration"]),
    (SweptTable::MfaCodes, "id", &["live_mfa_code"]),
    (SweptTable::MfaChallenges, "token_digest", &["live_challenge"]),
    (SweptTable::TrustedDevices, "id", &["live_trusted"]),
    (SweptTable::PasskeyCeremonies, "id_digest", &["live_ceremony"]),
    (SweptTable::OrganizationInvitations, "id", &["live_invitation"]),
    (SweptTable::Outbox, "id", &["live_dead", "live_delivered", "live_pending"]),
    (
        SweptTable::ApiKeys,
        "id",
        &["live_api_key", "live_forever_key", "live_recently_expired", "live_recently_revoked"],
    ),
];

/// The value of `gatehouse_sweeper_removed_total{table="…"}` on `/metrics` (0 when absent).
async fn removed_metric(app: &TestApp, table: &str) -> u64 {
    let text = app.get("/metrics").await.text().await.unwrap();
    let prefix = format!("gatehouse_sweeper_removed_total{{table=\"{table}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map_or(0, |value| value.trim().parse().unwrap())
}

async fn one_sweep_removes_exactly_the_expired_rows_of_every_table(test: TestDatabase) {
    let (app, now) = spawn(&test, &MasterKey::generate(), &[]).await;
    seed(&app.database, now).await;

    let report = app.sweeper.sweep_once().await.expect("the sweep is claimed");

    for (table, column, live) in EXPECTED {
        assert_eq!(keys(&app.database, table.name(), column).await, set(live), "{}", table.name());
        let expected = match table {
            SweptTable::RefreshTokens | SweptTable::AuthorizationCodes => 2,
            _ => 1,
        };
        assert_eq!(report.removed_from(*table), expected, "{}", table.name());
        assert_eq!(removed_metric(&app, table.name()).await, expected, "{}", table.name());
    }
    // The delivered row's attempts went with it. (Only that row's: the running outbox worker
    // may meanwhile have tried the pending row and recorded an attempt of its own.)
    assert!(!keys(&app.database, "outbox_attempts", "id").await.contains("attempt"));
    assert_eq!(report.total(), EXPECTED.len() as u64 + 2);

    // Once the live rows expire, the next period removes them too.
    app.clock.as_ref().unwrap().advance(2 * 3600);
    let report = app.sweeper.sweep_once().await.expect("a new period");
    assert_eq!(report.removed_from(SweptTable::Sessions), 1);
    assert!(keys(&app.database, "sessions", "id").await.is_empty());
    // With their session gone, the rotated token and the spent code go too (in batches of
    // their own, before the session's delete).
    assert_eq!(report.removed_from(SweptTable::RefreshTokens), 2);
    assert!(keys(&app.database, "refresh_tokens", "token_digest").await.is_empty());
    assert_eq!(report.removed_from(SweptTable::AuthorizationCodes), 2);
    assert_eq!(removed_metric(&app, "sessions").await, 2);
}

async fn audit_retention_zero_keeps_everything_and_n_days_removes_older(test: TestDatabase) {
    let key = MasterKey::generate();
    let insert_events = |database: Database, now: i64| async move {
        for (id, at) in [
            ("evt_ancient", now - 3650 * DAY),
            ("evt_old", now - 31 * DAY),
            ("evt_recent", now - DAY),
        ] {
            execute(
                &database,
                "INSERT INTO audit_events (id, occurred_at, action, actor_type) \
                 VALUES ($1, $2, 'user.signed_in', 'user')",
                &[Text(id), Int(at)],
            )
            .await;
        }
    };
    let audit_ids = |database: Database| async move {
        keys(&database, "audit_events", "id")
            .await
            .into_iter()
            .filter(|id| id.starts_with("evt_"))
            .collect::<BTreeSet<_>>()
    };
    // The default, 0: forever.
    let (forever, now) = spawn(&test, &key, &[]).await;
    insert_events(forever.database.clone(), now).await;
    let report = forever.sweeper.sweep_once().await.unwrap();
    assert_eq!(report.removed_from(SweptTable::AuditEvents), 0);
    assert_eq!(
        audit_ids(forever.database.clone()).await,
        set(&["evt_ancient", "evt_old", "evt_recent"])
    );
    drop(forever);

    // 30 days: the two older events go, the recent one stays. (A fresh period: the lease of
    // the instance above is ended by moving this instance's clock past it.)
    let (thirty, now) = spawn(&test, &key, &[("GATEHOUSE_AUDIT_RETENTION_DAYS", "30")]).await;
    thirty.clock.as_ref().unwrap().advance(120);
    let report = thirty.sweeper.sweep_once().await.unwrap();
    assert_eq!(report.removed_from(SweptTable::AuditEvents), 2);
    assert_eq!(audit_ids(thirty.database.clone()).await, set(&["evt_recent"]));
    assert_eq!(removed_metric(&thirty, "audit_events").await, 2);
    assert!(now > 0);

    // They went behind a signed checkpoint: the chain verifies from it, and a checkpoint
    // whose MAC does not verify is named.
    let audit = thirty.sweeper.audit();
    let report = audit.verify().await.unwrap();
    assert_eq!(report.broken, None, "{report:?}");
    assert_eq!(report.checkpoint_seq, Some(2));
    assert!(report.checked >= 1, "{report:?}");
    execute(&thirty.database, "UPDATE audit_checkpoints SET removed = 3", &[]).await;
    let report = audit.verify().await.unwrap();
    assert_eq!(report.broken.map(|broken| broken.kind), Some(BreakKind::Checkpoint));
}

async fn two_instances_sweeping_at_once_remove_and_count_each_row_once(test: TestDatabase) {
    let key = MasterKey::generate();
    // Small batches, so each sweep takes several statements.
    let settings = [("GATEHOUSE_SWEEPER_BATCH_SIZE", "50")];
    let (first, now) = spawn(&test, &key, &settings).await;
    let (second, _) = spawn(&test, &key, &settings).await;
    let rows = 420;
    with_pool!(&first.database, pool => {
        for index in 0..rows {
            sqlx::query("INSERT INTO revoked_access_tokens (jti, expires_at) VALUES ($1, $2)")
                .bind(format!("jti_{index}"))
                .bind(now - 10)
                .execute(pool)
                .await
                .unwrap();
        }
    });

    let (one, two) = tokio::join!(first.sweeper.sweep_once(), second.sweeper.sweep_once());
    let removed = |report: Option<gatehouse_domain::sweeper::SweepReport>| {
        report.map_or(0, |report| report.removed_from(SweptTable::RevokedAccessTokens))
    };
    assert_eq!(removed(one) + removed(two), rows);
    assert!(keys(&first.database, "revoked_access_tokens", "jti").await.is_empty());
    let counted = removed_metric(&first, "revoked_access_tokens").await
        + removed_metric(&second, "revoked_access_tokens").await;
    assert_eq!(counted, rows);
}

async fn a_claimed_period_is_not_swept_again_by_another_instance(test: TestDatabase) {
    let key = MasterKey::generate();
    let (first, now) = spawn(&test, &key, &[]).await;
    let (second, _) = spawn(&test, &key, &[]).await;
    assert!(first.sweeper.sweep_once().await.is_some());
    // Same period: the other instance skips; the rows it would have removed stay for later.
    execute(
        &first.database,
        "INSERT INTO revoked_access_tokens (jti, expires_at) VALUES ('late', $1)",
        &[Int(now - 1)],
    )
    .await;
    assert!(second.sweeper.sweep_once().await.is_none());
    assert_eq!(keys(&first.database, "revoked_access_tokens", "jti").await, set(&["late"]));
    // Once the lease (a minute when the background task is off) has run out, it sweeps.
    second.clock.as_ref().unwrap().advance(61);
    let report = second.sweeper.sweep_once().await.expect("the lease ran out");
    assert_eq!(report.removed_from(SweptTable::RevokedAccessTokens), 1);
}
