//! The store ports against real SQLite and PostgreSQL: the same assertions on both backends.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use gatehouse_crypto::{FieldCipher, MasterKey, PublicKeySet, SigningAlgorithm};
use gatehouse_domain::audit::{Actor, AuditEvent, AuditFilter, AuditStore, RequestContext};
use gatehouse_domain::keys::SIGNING_KEY_PURPOSE;
use gatehouse_domain::{
    KeyService, KeySettings, KeyState, ManualClock, SigningKeyStore, StoreError, StoredSigningKey,
    UserRecord, UserStore,
};
use gatehouse_store::backend_tests;
use gatehouse_store::testing::TestDatabase;

fn stored_key(kid: &str, created_at: i64) -> StoredSigningKey {
    StoredSigningKey {
        kid: kid.into(),
        algorithm: SigningAlgorithm::ES256,
        sealed_private_key: vec![1, 2, 3],
        public_jwk: serde_json::json!({ "kid": kid, "kty": "EC" }),
        state: KeyState::Active,
        created_at,
        retired_at: None,
        publish_until: None,
    }
}

fn signed_up(user_id: &str) -> AuditEvent {
    AuditEvent::new("user.signed_up", &Actor::User(user_id.into()), &RequestContext::default(), 10)
        .target("user", user_id)
}

fn user(id: &str, digest: &[u8], username: Option<&str>) -> UserRecord {
    UserRecord {
        id: id.into(),
        email_ciphertext: Some(vec![9, 9, 9]),
        email_digest: Some(digest.to_vec()),
        username: username.map(str::to_owned),
        first_name: Some("Ada".into()),
        last_name: None,
        image_url: None,
        email_verified_at: None,
        password_hash: Some("$argon2id$v=19$m=1024,t=1,p=1$c2FsdA$aGFzaA".into()),
        password_changed_at: Some(10),
        failed_sign_in_attempts: 0,
        locked_until: None,
        suspended_at: None,
        last_sign_in_at: None,
        public_metadata: "{\"plan\":\"pro\"}".into(),
        private_metadata: "{}".into(),
        system_role: None,
        created_at: 10,
        updated_at: 10,
    }
}

backend_tests!(
    migrations_are_idempotent,
    only_one_key_can_be_active,
    rotation_retires_the_active_key_in_one_step,
    users_round_trip_and_stay_unique,
    key_service_publishes_retired_keys_until_their_tokens_expire,
    private_keys_are_sealed_at_rest,
    outbox_claims_are_exclusive_and_expired_leases_are_claimed_again,
);

async fn outbox_claims_are_exclusive_and_expired_leases_are_claimed_again(test: TestDatabase) {
    use gatehouse_domain::notify::{
        AttemptOutcome, Effects, NotifyStore, OutboxAttempt, OutboxRecord,
    };
    let store = &test.database;
    let row = |id: &str| OutboxRecord {
        id: id.into(),
        channel: "email".into(),
        kind: "verify_email".into(),
        payload: vec![1, 2, 3],
        status: "pending".into(),
        attempts: 0,
        next_attempt_at: 100,
        claimed_by: None,
        lease_until: None,
        created_at: 100,
        delivered_at: None,
        last_error: None,
    };
    let effects = Effects { outbox: vec![row("dlv_1"), row("dlv_2")], ..Effects::default() };
    store.append_effects(&effects).await.unwrap();
    assert!(store.claim_outbox("a", 99, 130, 10).await.unwrap().is_empty(), "not due yet");
    let claimed = store.claim_outbox("a", 100, 130, 1).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!((claimed[0].attempts, claimed[0].status.as_str()), (1, "sending"));
    let second = store.claim_outbox("b", 100, 130, 10).await.unwrap();
    assert_eq!(second.len(), 1, "the claimed row is not claimed twice");
    assert_ne!(second[0].id, claimed[0].id);
    // Worker a dies; its lease runs out and b claims the row again.
    assert!(store.claim_outbox("b", 129, 160, 10).await.unwrap().is_empty());
    let reclaimed = store.claim_outbox("b", 130, 160, 10).await.unwrap();
    assert_eq!(reclaimed.len(), 2, "both leases ran out");
    let attempt = |worker: &str, id: &str| OutboxAttempt {
        id: format!("att_{worker}_{id}"),
        outbox_id: id.into(),
        worker: worker.into(),
        status: "delivered".into(),
        error: None,
        started_at: 131,
        duration_ms: 5,
    };
    // a comes back late: its outcome no longer applies; b's does.
    let id = claimed[0].id.clone();
    let delivered = AttemptOutcome::Delivered { at: 131 };
    let late = attempt("a", &id);
    assert!(!store.finish_outbox_attempt(&late, delivered, &[]).await.unwrap());
    let done = attempt("b", &id);
    assert!(store.finish_outbox_attempt(&done, delivered, &[]).await.unwrap());
    let stored = store.outbox_row(&id).await.unwrap().unwrap();
    assert_eq!(
        (stored.status.as_str(), stored.attempts, stored.delivered_at),
        ("delivered", 2, Some(131))
    );
    assert_eq!(store.outbox_attempts(&id).await.unwrap().len(), 2);
    assert!(store.claim_outbox("c", 1000, 1030, 10).await.unwrap().iter().all(|r| r.id != id));
}

async fn migrations_are_idempotent(test: TestDatabase) {
    gatehouse_store::migrate::run(&test.database).await.unwrap();
    let versions = gatehouse_store::migrate::applied_versions(&test.database).await.unwrap();
    let expected: Vec<i64> =
        gatehouse_store::migrate::MIGRATIONS.iter().map(|m| m.version).collect();
    assert_eq!(versions, expected);
}

async fn only_one_key_can_be_active(test: TestDatabase) {
    let store = &test.database;
    assert!(store.active_signing_key().await.unwrap().is_none());
    assert!(store.insert_active_key_if_none(&stored_key("first", 1)).await.unwrap());
    // A second instance starting at the same time loses quietly.
    assert!(!store.insert_active_key_if_none(&stored_key("second", 2)).await.unwrap());
    let active = store.active_signing_key().await.unwrap().unwrap();
    assert_eq!(active, stored_key("first", 1));
    assert_eq!(store.list_signing_keys().await.unwrap().len(), 1);
}

async fn rotation_retires_the_active_key_in_one_step(test: TestDatabase) {
    let store = &test.database;
    store.insert_active_key_if_none(&stored_key("old", 1)).await.unwrap();
    store.rotate_signing_key(&stored_key("new", 5), 5, 1000).await.unwrap();
    let keys = store.list_signing_keys().await.unwrap();
    assert_eq!(keys.iter().map(|k| k.kid.as_str()).collect::<Vec<_>>(), ["new", "old"]);
    assert_eq!(keys[0].state, KeyState::Active);
    assert_eq!(
        (keys[1].state, keys[1].retired_at, keys[1].publish_until),
        (KeyState::Retired, Some(5), Some(1000))
    );
    // A rotation whose new key collides leaves the old state untouched (one transaction).
    let error = store.rotate_signing_key(&stored_key("old", 6), 6, 2000).await.unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
    assert_eq!(store.active_signing_key().await.unwrap().unwrap().kid, "new");
}

async fn users_round_trip_and_stay_unique(test: TestDatabase) {
    let store = &test.database;
    let ada = user("usr_1", b"digest-1", Some("ada"));
    store.insert_user(&ada, &[signed_up("usr_1")]).await.unwrap();
    assert_eq!(store.user_by_id("usr_1").await.unwrap().unwrap(), ada);
    assert_eq!(store.user_by_email_digest(b"digest-1").await.unwrap().unwrap().id, "usr_1");
    assert_eq!(store.user_by_username("ada").await.unwrap().unwrap().id, "usr_1");
    assert!(store.user_by_id("usr_2").await.unwrap().is_none());
    assert!(store.user_by_email_digest(b"digest-2").await.unwrap().is_none());

    for (duplicate, column) in [
        (user("usr_2", b"digest-1", None), "email_digest"),
        (user("usr_3", b"digest-3", Some("ada")), "username"),
    ] {
        let error = store.insert_user(&duplicate, &[signed_up(&duplicate.id)]).await.unwrap_err();
        assert!(matches!(&error, StoreError::Conflict(name) if name.contains(column)), "{error:?}");
        assert!(store.user_by_id(&duplicate.id).await.unwrap().is_none(), "nothing written");
    }
    // The event was written with its user, and the refused inserts left none (one transaction).
    let events = store.list_audit_events(&AuditFilter::default(), None, 10).await.unwrap();
    assert_eq!(
        events.iter().map(|e| e.target_id.as_deref().unwrap()).collect::<Vec<_>>(),
        ["usr_1"]
    );
}

fn key_service(test: &TestDatabase, master: &MasterKey, clock: Arc<ManualClock>) -> KeyService {
    KeyService::new(
        Arc::new(test.database.clone()),
        Arc::new(FieldCipher::new(master, &[], SIGNING_KEY_PURPOSE)),
        clock,
        KeySettings {
            algorithm: SigningAlgorithm::ES256,
            rsa_bits: 2048,
            retention_seconds: 960,
            cache_seconds: 0,
        },
    )
}

fn kids(jwks: &serde_json::Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| key["kid"].as_str().unwrap().to_owned())
        .collect()
}

async fn key_service_publishes_retired_keys_until_their_tokens_expire(test: TestDatabase) {
    let master = MasterKey::generate();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let service = key_service(&test, &master, clock.clone());
    let first = service.ensure_active_key().await.unwrap();
    // A second instance on the same database adopts the same key.
    let other_instance = key_service(&test, &master, clock.clone());
    assert_eq!(other_instance.ensure_active_key().await.unwrap().kid, first.kid);

    let old_signer = service.active_signer().await.unwrap();
    let token = old_signer
        .sign("at+jwt", &serde_json::json!({ "sub": "usr_1", "exp": 2_000_000_000 }))
        .unwrap();

    let second = service.rotate().await.unwrap();
    assert_ne!(second.kid, first.kid);
    assert_eq!(service.active_signer().await.unwrap().kid(), second.kid);
    let jwks = service.jwks().await.unwrap();
    assert_eq!(kids(&jwks), [second.kid.clone(), first.kid.clone()]);

    // A token signed before the rotation still verifies against the published set.
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.validate_exp = false;
    validation.required_spec_claims.clear();
    let keys = PublicKeySet::from_jwks(&jwks).unwrap();
    let claims: serde_json::Value = keys.verify(&token, Some("at+jwt"), &validation).unwrap();
    assert_eq!(claims["sub"], "usr_1");

    clock.advance(959);
    assert_eq!(kids(&service.jwks().await.unwrap()).len(), 2);
    clock.advance(2);
    assert_eq!(kids(&service.jwks().await.unwrap()), [second.kid.as_str()]);
    let listed = service.list().await.unwrap();
    assert_eq!(
        listed.iter().map(|k| (k.state, k.published)).collect::<Vec<_>>(),
        [(KeyState::Active, true), (KeyState::Retired, false)]
    );
}

async fn private_keys_are_sealed_at_rest(test: TestDatabase) {
    let master = MasterKey::generate();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let service = key_service(&test, &master, clock.clone());
    service.ensure_active_key().await.unwrap();
    let stored = test.database.active_signing_key().await.unwrap().unwrap();
    let signer = service.active_signer().await.unwrap();
    let der = signer.pkcs8_der();
    assert!(
        !stored
            .sealed_private_key
            .windows(16)
            .any(|window| der.windows(16).any(|other| other == window)),
        "the stored private key must not contain its plaintext"
    );
    // Another master key cannot use the stored key.
    let stranger = key_service(&test, &MasterKey::generate(), clock);
    assert!(stranger.active_signer().await.is_err());
}
