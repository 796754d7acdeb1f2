//! Migration 0015 on both backends: stored audit rows of the old names take the event
//! catalogue's names, with the detail moved into their metadata; organization rows get their
//! organization; the chain starts empty. And two chainers racing on one database chain every
//! row once, into one chain.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use gatehouse_crypto::Digester;
use gatehouse_domain::SystemClock;
use gatehouse_domain::audit::{AuditChainStore, AuditEvent, AuditIntegrity, AuditStore};
use gatehouse_domain::principal::{Actor, RequestContext};
use gatehouse_store::testing::{Backend, TestDatabase};
use gatehouse_store::{Database, with_pool};
use serde_json::{Value, json};

async fn old_rows_take_the_catalogue_names(backend: Backend) {
    let Some(test) = TestDatabase::migrated_to(backend, Some(14)).await.unwrap() else {
        eprintln!("skipped: PostgreSQL is not configured");
        return;
    };
    let rows = [
        ("e01", "user.signed_up", "{}", None),
        ("e02", "admin.user_suspended", "{}", None),
        ("e03", "user.email_verified", "{}", None),
        ("e04", "user.sign_in_succeeded", r#"{"method":"password"}"#, None),
        ("e05", "session.signed_out", "{}", None),
        ("e06", "session.signed_out", r#"{"via":"end_session"}"#, None),
        ("e07", "session.refresh_token_reused", r#"{"user_id":"usr_1"}"#, None),
        ("e08", "session.revoked", "{}", None),
        ("e09", "mfa.factor_added", r#"{"kind":"totp"}"#, None),
        ("e10", "mfa.factor_removed", r#"{"kind":"sms","last":true}"#, None),
        ("e11", "admin.mfa_reset", r#"{"factors":["totp"]}"#, None),
        ("e12", "user.password_reset", "{}", None),
        ("e13", "organization.invitation_created", "{}", Some("org_1")),
        ("e14", "organization.member_added", r#"{"user_id":"usr_2"}"#, Some("org_1")),
        ("e15", "organization.member_role_changed", "{}", Some("org_1")),
        ("e16", "organization.member_removed", r#"{"user_id":"usr_2"}"#, Some("org_1")),
        ("e17", "organization.member_left", "{}", Some("org_1")),
        ("e18", "user.sign_in_failed", "{}", None),
        ("e19", "oauth.token_issued", "{}", None),
    ];
    with_pool!(&test.database, pool => {
        for (id, action, metadata, organization) in rows {
            let target_type = organization.map(|_| "organization").unwrap_or("user");
            sqlx::query(
                "INSERT INTO audit_events (id, occurred_at, action, actor_type, actor_id, \
                 target_type, target_id, metadata) VALUES ($1, 1, $2, 'user', 'usr_1', $3, $4, $5)",
            )
            .bind(id)
            .bind(action)
            .bind(target_type)
            .bind(organization.unwrap_or("usr_1"))
            .bind(metadata)
            .execute(pool)
            .await
            .unwrap();
        }
    });
    gatehouse_store::migrate::run(&test.database).await.unwrap();
    let stored: Vec<(String, String, Value, Option<String>)> = with_pool!(&test.database, pool => {
        sqlx::query_as::<_, (String, String, String, Option<String>)>(
            "SELECT id, action, metadata, organization_id FROM audit_events ORDER BY id",
        )
        .fetch_all(pool)
        .await
        .unwrap()
        .into_iter()
        .map(|(id, action, metadata, organization)| {
            (id, action, serde_json::from_str(&metadata).unwrap(), organization)
        })
        .collect()
    });
    let expected = [
        ("user.created", json!({})),
        ("user.suspended", json!({})),
        ("email.verified", json!({})),
        ("session.created", json!({ "method": "password" })),
        ("session.revoked", json!({ "reason": "signed_out" })),
        ("session.revoked", json!({ "reason": "signed_out", "via": "end_session" })),
        ("session.revoked", json!({ "reason": "refresh_token_reuse", "user_id": "usr_1" })),
        ("session.revoked", json!({ "reason": "revoked_by_user" })),
        ("user.mfa_changed", json!({ "kind": "totp", "change": "added" })),
        ("user.mfa_changed", json!({ "kind": "sms", "last": true, "change": "removed" })),
        ("user.mfa_changed", json!({ "factors": ["totp"], "change": "reset" })),
        ("user.password_changed", json!({ "via": "reset" })),
        ("invitation.created", json!({})),
        ("membership.created", json!({ "user_id": "usr_2" })),
        ("membership.updated", json!({})),
        ("membership.deleted", json!({ "user_id": "usr_2", "reason": "removed" })),
        ("membership.deleted", json!({ "user_id": "usr_1", "reason": "left" })),
        ("user.sign_in_failed", json!({})),
        ("oauth.token_issued", json!({})),
    ];
    assert_eq!(stored.len(), expected.len());
    for ((id, action, metadata, organization), (want_action, want_metadata)) in
        stored.iter().zip(expected)
    {
        assert_eq!((action.as_str(), metadata), (want_action, &want_metadata), "{id}");
        let in_organization = id.as_str() >= "e13" && id.as_str() <= "e17";
        assert_eq!(organization.as_deref(), in_organization.then_some("org_1"), "{id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_rows_take_the_catalogue_names_on_sqlite() {
    old_rows_take_the_catalogue_names(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_rows_take_the_catalogue_names_on_postgres() {
    old_rows_take_the_catalogue_names(Backend::Postgres).await;
}

fn integrity(database: &Database) -> AuditIntegrity {
    AuditIntegrity::new(Arc::new(database.clone()), Digester::ephemeral(), Arc::new(SystemClock))
}

/// Two chainers (two instances' pools on one database) racing while rows keep arriving.
async fn racing_chainers_make_one_chain(test: TestDatabase) {
    let second = match &test.database {
        Database::Sqlite(_) => test.database.clone(),
        Database::Postgres(_) => {
            let options = gatehouse_store::DatabaseOptions {
                postgres_schema: test.postgres_schema.clone(),
                ..Default::default()
            };
            Database::connect(&test.url, &options).await.unwrap()
        }
    };
    let (one, two) = (integrity(&test.database), integrity(&second));
    let writer = {
        let database = test.database.clone();
        tokio::spawn(async move {
            for batch in 0..20 {
                let events: Vec<AuditEvent> = (0..50)
                    .map(|number| {
                        AuditEvent::new(
                            "user.updated",
                            &Actor::User("usr_1".into()),
                            &RequestContext::default(),
                            1_000 + batch,
                        )
                        .metadata(json!({ "n": number }))
                    })
                    .collect();
                database.append_audit_events(&events).await.unwrap();
                tokio::task::yield_now().await;
            }
        })
    };
    let chain = |integrity: AuditIntegrity| async move {
        let mut chained = 0;
        for _ in 0..10 {
            chained += integrity.chain_pending().await.unwrap();
        }
        (integrity, chained)
    };
    let ((one, first), (_, second_count)) = tokio::join!(chain(one), chain(two));
    writer.await.unwrap();
    let rest = one.chain_pending().await.unwrap();
    assert_eq!(first + second_count + rest, 1_000);
    let report = one.verify().await.unwrap();
    assert_eq!((report.broken, report.checked, report.unchained), (None, 1_000, 0));
    let state = test.database.audit_chain_state().await.unwrap();
    assert_eq!(state.head.seq, 1_000);
}

gatehouse_store::backend_tests!(racing_chainers_make_one_chain);
