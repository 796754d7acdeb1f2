//! The store ports against real SQLite and PostgreSQL: the same assertions on both backends.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use gatehouse_crypto::{FieldCipher, MasterKey, PublicKeySet, SigningAlgorithm};
use gatehouse_domain::audit::{AuditEvent, AuditFilter, AuditStore};
use gatehouse_domain::keys::SIGNING_KEY_PURPOSE;
use gatehouse_domain::known_devices::KnownDeviceStore;
use gatehouse_domain::mfa::{MfaFactorRecord, MfaStore};
use gatehouse_domain::principal::{Actor, AdminPrincipal, RequestContext};
use gatehouse_domain::sessions::{
    RefreshRotation, RefreshTokenRecord, RevokeReason, SessionRecord, SessionStore,
};
use gatehouse_domain::unit_of_work::{KnownDevice, UnitOfWork, UnitOfWorkStore};
use gatehouse_domain::users::record::{SignInFacts, UserLookup};
use gatehouse_domain::{
    Conflict, KeyService, KeySettings, KeyState, ManualClock, SigningKeyStore, StoreError,
    StoredSigningKey, UserRecord, UserStore,
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
    AuditEvent::new("user.created", &Actor::User(user_id.into()), &RequestContext::default(), 10)
        .target("user", user_id)
}

/// Stores `usr_1` (email digest `digest-1`) with its sign-up event: the user most tests need.
async fn insert_first_user(store: &gatehouse_store::Database) {
    store
        .insert_user(
            &user("usr_1", b"digest-1", None),
            &UnitOfWork::events(vec![signed_up("usr_1")]),
        )
        .await
        .unwrap();
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
    sign_in_lookup_reads_factors_and_devices_with_the_account,
    a_new_session_is_written_whole_or_not_at_all,
    a_refresh_spends_its_token_once_and_only_while_its_session_allows,
    concurrent_refreshes_each_answer_their_own_rotation,
    rotations_arriving_together_are_each_answered_as_alone,
    a_code_exchange_spends_its_code_once_and_only_for_an_active_user,
    key_service_publishes_retired_keys_until_their_tokens_expire,
    private_keys_are_sealed_at_rest,
    outbox_claims_are_exclusive_and_expired_leases_are_claimed_again,
    an_unknown_outbox_status_is_corrupt,
    a_stopping_worker_gives_its_unattempted_rows_back,
);

/// A pending email row due at 100.
fn outbox_row(id: &str) -> gatehouse_domain::notify::OutboxRecord {
    use gatehouse_domain::notify::{OutboxRecord, OutboxStatus};
    OutboxRecord {
        id: id.into(),
        channel: "email".into(),
        kind: "verify_email".into(),
        payload: vec![1, 2, 3],
        status: OutboxStatus::Pending,
        attempts: 0,
        next_attempt_at: 100,
        claimed_by: None,
        lease_until: None,
        created_at: 100,
        delivered_at: None,
        last_error: None,
        subject: None,
        event_id: None,
    }
}

async fn outbox_claims_are_exclusive_and_expired_leases_are_claimed_again(test: TestDatabase) {
    use gatehouse_domain::notify::{AttemptOutcome, AttemptStatus, OutboxAttempt, OutboxStore};
    let store = &test.database;
    let work = UnitOfWork {
        outbox: vec![outbox_row("dlv_1"), outbox_row("dlv_2")],
        ..UnitOfWork::default()
    };
    store.commit(&work).await.unwrap();
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
        status: AttemptStatus::Delivered,
        error: None,
        started_at: 131,
        duration_ms: 5,
        report: None,
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

async fn a_stopping_worker_gives_its_unattempted_rows_back(test: TestDatabase) {
    use gatehouse_domain::notify::{OutboxStatus, OutboxStore};
    let store = &test.database;
    let row = outbox_row("dlv_1");
    store.commit(&UnitOfWork { outbox: vec![row], ..UnitOfWork::default() }).await.unwrap();
    assert_eq!(store.claim_outbox("a", 100, 160, 10).await.unwrap().len(), 1);
    // Only the claiming worker can give a row back.
    assert_eq!(store.release_outbox("b", &["dlv_1".into()]).await.unwrap(), 0);
    assert_eq!(store.release_outbox("a", &["dlv_1".into()]).await.unwrap(), 1);
    let stored = store.outbox_row("dlv_1").await.unwrap().unwrap();
    assert_eq!(
        (stored.status, stored.attempts, stored.claimed_by, stored.lease_until),
        (OutboxStatus::Pending, 0, None, None),
        "pending again, the attempt it never made not counted"
    );
    // The next worker takes it at once, not after the lease.
    let claimed = store.claim_outbox("c", 101, 161, 10).await.unwrap();
    assert_eq!((claimed.len(), claimed[0].attempts), (1, 1));
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
    let rotated = |kid: &str| {
        AuditEvent::new("signing_key.rotated", &Actor::System, &RequestContext::default(), 5)
            .target("signing_key", kid)
    };
    let rotations = || async {
        let filter =
            AuditFilter { action: Some("signing_key.rotated".into()), ..AuditFilter::default() };
        let events = store.list_audit_events(&filter, None, 10).await.unwrap();
        events.into_iter().map(|event| event.target_id.unwrap()).collect::<Vec<_>>()
    };
    store.insert_active_key_if_none(&stored_key("old", 1)).await.unwrap();
    store
        .rotate_signing_key(&stored_key("new", 5), "old", 5, 1000, &[rotated("new")])
        .await
        .unwrap();
    let keys = store.list_signing_keys().await.unwrap();
    assert_eq!(keys.iter().map(|k| k.kid.as_str()).collect::<Vec<_>>(), ["new", "old"]);
    assert_eq!(keys[0].state, KeyState::Active);
    assert_eq!(
        (keys[1].state, keys[1].retired_at, keys[1].publish_until),
        (KeyState::Retired, Some(5), Some(1000))
    );
    assert_eq!(rotations().await, ["new"], "the event commits with the rotation");
    // A rotation whose new key collides leaves the old state untouched (one transaction).
    let error = store
        .rotate_signing_key(&stored_key("old", 6), "new", 6, 2000, &[rotated("old")])
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
    assert_eq!(store.active_signing_key().await.unwrap().unwrap().kid, "new");
    // A rotation that read a key which is no longer the active one (another rotation came
    // first) retires nothing and records nothing.
    let error = store
        .rotate_signing_key(&stored_key("late", 7), "old", 7, 3000, &[rotated("late")])
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Conflict(Conflict::SigningKey)), "{error:?}");
    let keys = store.list_signing_keys().await.unwrap();
    assert_eq!(keys.iter().map(|k| k.kid.as_str()).collect::<Vec<_>>(), ["new", "old"]);
    assert_eq!(keys[0].state, KeyState::Active);
    assert_eq!(rotations().await, ["new"]);
}

async fn users_round_trip_and_stay_unique(test: TestDatabase) {
    let store = &test.database;
    let ada = user("usr_1", b"digest-1", Some("ada"));
    store.insert_user(&ada, &UnitOfWork::events(vec![signed_up("usr_1")])).await.unwrap();
    assert_eq!(store.user_by_id("usr_1").await.unwrap().unwrap(), ada);
    assert_eq!(store.user_by_email_digest(b"digest-1").await.unwrap().unwrap().id, "usr_1");
    assert_eq!(store.user_by_username("ada").await.unwrap().unwrap().id, "usr_1");
    assert!(store.user_by_id("usr_2").await.unwrap().is_none());
    assert!(store.user_by_email_digest(b"digest-2").await.unwrap().is_none());

    for (duplicate, conflict) in [
        (user("usr_2", b"digest-1", None), Conflict::UserEmail),
        (user("usr_3", b"digest-3", Some("ada")), Conflict::UserUsername),
    ] {
        let error = store
            .insert_user(&duplicate, &UnitOfWork::events(vec![signed_up(&duplicate.id)]))
            .await
            .unwrap_err();
        assert!(matches!(&error, StoreError::Conflict(found) if *found == conflict), "{error:?}");
        assert!(store.user_by_id(&duplicate.id).await.unwrap().is_none(), "nothing written");
    }
    // The event was written with its user, and the refused inserts left none (one transaction).
    let events = store.list_audit_events(&AuditFilter::default(), None, 10).await.unwrap();
    assert_eq!(
        events.iter().map(|e| e.target_id.as_deref().unwrap()).collect::<Vec<_>>(),
        ["usr_1"]
    );
}

async fn sign_in_lookup_reads_factors_and_devices_with_the_account(test: TestDatabase) {
    let store = &test.database;
    let facts =
        |user: Option<(UserRecord, SignInFacts)>| user.map(|(user, facts)| (user.id, facts));
    let by_email = |device: &'static [u8]| {
        store.user_for_sign_in(UserLookup::EmailDigest(b"digest-1"), device)
    };
    store
        .insert_user(
            &user("usr_1", b"digest-1", Some("ada")),
            &UnitOfWork::events(vec![signed_up("usr_1")]),
        )
        .await
        .unwrap();
    // Another user's factor and device must not count for this one.
    store
        .insert_user(
            &user("usr_2", b"digest-2", None),
            &UnitOfWork::events(vec![signed_up("usr_2")]),
        )
        .await
        .unwrap();
    let remember = |user_id: &str, device: &[u8]| UnitOfWork {
        known_device: Some(KnownDevice {
            user_id: user_id.to_owned(),
            digest: device.to_vec(),
            seen_at: 20,
        }),
        ..UnitOfWork::default()
    };
    store.commit(&remember("usr_2", b"laptop")).await.unwrap();

    // An unknown account answers nothing, by either identifier.
    assert!(
        store
            .user_for_sign_in(UserLookup::EmailDigest(b"nobody"), b"laptop")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store.user_for_sign_in(UserLookup::Username("nobody"), b"laptop").await.unwrap().is_none()
    );

    let fresh = SignInFacts::default();
    assert_eq!(facts(by_email(b"laptop").await.unwrap()), Some(("usr_1".into(), fresh)));
    let by_username = store.user_for_sign_in(UserLookup::Username("ada"), b"laptop").await.unwrap();
    assert_eq!(by_username.unwrap().0, user("usr_1", b"digest-1", Some("ada")), "the whole row");

    // A device once seen: known from it, any device known from another.
    store.commit(&remember("usr_1", b"laptop")).await.unwrap();
    let seen = SignInFacts { any_known_device: true, this_device_known: true, ..fresh };
    assert_eq!(facts(by_email(b"laptop").await.unwrap()), Some(("usr_1".into(), seen)));
    let elsewhere = SignInFacts { any_known_device: true, ..fresh };
    assert_eq!(facts(by_email(b"phone").await.unwrap()), Some(("usr_1".into(), elsewhere)));

    // A pending factor is not a second factor yet; a confirmed one is.
    let factor = MfaFactorRecord {
        id: "mfa_1".into(),
        user_id: "usr_1".into(),
        kind: "totp".into(),
        secret_ciphertext: Some(vec![1, 2, 3]),
        phone_ciphertext: None,
        confirmed_at: None,
        last_used_step: None,
        last_used_at: None,
        created_at: 30,
    };
    store.put_pending_factor(&factor, &UnitOfWork::default()).await.unwrap();
    assert_eq!(facts(by_email(b"laptop").await.unwrap()), Some(("usr_1".into(), seen)));
    assert!(store.confirm_factor("mfa_1", 31, None, None, &UnitOfWork::default()).await.unwrap());
    let protected = SignInFacts { has_confirmed_factor: true, ..seen };
    assert_eq!(facts(by_email(b"laptop").await.unwrap()), Some(("usr_1".into(), protected)));
}

async fn a_new_session_is_written_whole_or_not_at_all(test: TestDatabase) {
    let store = &test.database;
    insert_first_user(store).await;
    let session = |id: &str| SessionRecord {
        id: id.into(),
        user_id: "usr_1".into(),
        user_agent: Some("agent".into()),
        ip: Some("127.0.0.1".into()),
        created_at: 50,
        last_used_at: 50,
        expires_at: 5000,
        revoked_at: None,
        revoked_reason: None,
        client_id: None,
        scope: None,
        auth_time: Some(50),
        nonce: None,
        amr: Some("pwd".into()),
        organization_id: None,
        impersonator: None,
        dpop_jkt: None,
        resources: Vec::new(),
    };
    let refresh = |digest: &[u8], session_id: &str| RefreshTokenRecord {
        token_digest: digest.to_vec(),
        session_id: session_id.into(),
        created_at: 50,
        expires_at: 500,
        rotated_at: None,
    };
    let signed_in = |at: i64, device: &[u8], action: &str| {
        let user = gatehouse_domain::users::record::UserChange {
            last_sign_in_at: Some(at),
            unlock: true,
            updated_at: Some(at),
            ..Default::default()
        };
        let work = UnitOfWork {
            known_device: Some(KnownDevice {
                user_id: "usr_1".into(),
                digest: device.to_vec(),
                seen_at: at,
            }),
            events: vec![
                AuditEvent::new(
                    action,
                    &Actor::User("usr_1".into()),
                    &RequestContext::default(),
                    at,
                )
                .target("session", "ses_1"),
            ],
            ..UnitOfWork::default()
        };
        (user, work)
    };
    let actions = || async {
        let events = store.list_audit_events(&AuditFilter::default(), None, 10).await.unwrap();
        events.into_iter().map(|event| event.action).collect::<Vec<_>>()
    };

    // Every part lands: the user's change, the session, its refresh token, the device, the event.
    let (changed, work) = signed_in(60, b"laptop", "session.created");
    store
        .start_session(&session("ses_1"), Some(&refresh(b"r1", "ses_1")), &changed, &work)
        .await
        .unwrap();
    assert_eq!(store.user_by_id("usr_1").await.unwrap().unwrap().last_sign_in_at, Some(60));
    assert_eq!(store.session("ses_1").await.unwrap().unwrap(), session("ses_1"));
    let (token, of) = store.refresh_token(b"r1").await.unwrap().unwrap();
    assert_eq!((token, of.id), (refresh(b"r1", "ses_1"), "ses_1".to_owned()));
    assert_eq!(store.device_seen("usr_1", b"laptop").await.unwrap(), (true, true));
    assert!(actions().await.contains(&"session.created".to_owned()));

    // A write that fails part-way (the session id is taken) leaves nothing of itself behind.
    let (changed, work) = signed_in(70, b"phone", "user.second_sign_in");
    let error = store
        .start_session(&session("ses_1"), Some(&refresh(b"r2", "ses_1")), &changed, &work)
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
    assert_eq!(store.user_by_id("usr_1").await.unwrap().unwrap().last_sign_in_at, Some(60));
    assert!(store.refresh_token(b"r2").await.unwrap().is_none());
    assert_eq!(store.device_seen("usr_1", b"phone").await.unwrap(), (true, false));
    assert!(!actions().await.contains(&"user.second_sign_in".to_owned()));

    // A session without a refresh token (and the store still usable after the failure).
    let (changed, work) = signed_in(80, b"phone", "user.third_sign_in");
    store.start_session(&session("ses_2"), None, &changed, &work).await.unwrap();
    assert_eq!(store.session("ses_2").await.unwrap().unwrap().id, "ses_2");
    assert_eq!(store.device_seen("usr_1", b"phone").await.unwrap(), (true, true));
    assert!(actions().await.contains(&"user.third_sign_in".to_owned()));
}

async fn a_refresh_spends_its_token_once_and_only_while_its_session_allows(test: TestDatabase) {
    let store = &test.database;
    insert_first_user(store).await;
    // A client's session bound to a DPoP key, ending at 5000, last used at 50.
    let session = SessionRecord {
        client_id: Some("cli_1".into()),
        dpop_jkt: Some("jkt-1".into()),
        last_used_at: 50,
        expires_at: 5000,
        ..SessionRecord::open("usr_1", (None, None), 50, 4950)
    };
    let first = RefreshTokenRecord {
        token_digest: b"r1".to_vec(),
        session_id: session.id.clone(),
        created_at: 50,
        expires_at: 500,
        rotated_at: None,
    };
    store
        .start_session(&session, Some(&first), &Default::default(), &UnitOfWork::default())
        .await
        .unwrap();
    let rotation = |presented: &'static [u8], successor: &'static [u8], now: i64| RefreshRotation {
        presented,
        successor,
        now,
        ttl_seconds: 10_000,
        touch_if_used_before: now - 60,
        client_id: Some("cli_1"),
        dpop_jkt: Some("jkt-1"),
    };

    // Unknown: nothing found.
    assert!(store.rotate_refresh_token(&rotation(b"nope", b"x", 100)).await.unwrap().is_none());
    // Another client, or no proof of the session's key: found, not spent.
    for refused in [
        RefreshRotation { client_id: Some("cli_2"), ..rotation(b"r1", b"x", 100) },
        RefreshRotation { client_id: None, ..rotation(b"r1", b"x", 100) },
        RefreshRotation { dpop_jkt: None, ..rotation(b"r1", b"x", 100) },
        RefreshRotation { dpop_jkt: Some("jkt-2"), ..rotation(b"r1", b"x", 100) },
    ] {
        let outcome = store.rotate_refresh_token(&refused).await.unwrap().unwrap();
        assert!(!outcome.rotated);
        assert_eq!(
            (outcome.token, outcome.session.id.as_str()),
            (first.clone(), session.id.as_str())
        );
    }
    assert!(store.refresh_token(b"x").await.unwrap().is_none());

    // Allowed: spent once, its successor lives no longer than the session, the session is
    // touched (last used long enough ago).
    let outcome = store.rotate_refresh_token(&rotation(b"r1", b"r2", 200)).await.unwrap().unwrap();
    assert!(outcome.rotated);
    assert_eq!(outcome.token.rotated_at, None, "answered as found, before the spend");
    let (spent, _) = store.refresh_token(b"r1").await.unwrap().unwrap();
    assert_eq!(spent.rotated_at, Some(200));
    let (successor, of) = store.refresh_token(b"r2").await.unwrap().unwrap();
    assert_eq!(
        (successor.created_at, successor.expires_at, successor.rotated_at, of.id.as_str()),
        (200, 5000, None, session.id.as_str())
    );
    assert_eq!(store.session(&session.id).await.unwrap().unwrap().last_used_at, 200);

    // Presented again: found spent, nothing written.
    let again = store.rotate_refresh_token(&rotation(b"r1", b"r3", 210)).await.unwrap().unwrap();
    assert!(!again.rotated);
    assert_eq!(again.token.rotated_at, Some(200));
    assert!(store.refresh_token(b"r3").await.unwrap().is_none());
    // Used again within the minute: no touch.
    let outcome = store.rotate_refresh_token(&rotation(b"r2", b"r4", 230)).await.unwrap().unwrap();
    assert!(outcome.rotated);
    assert_eq!(store.session(&session.id).await.unwrap().unwrap().last_used_at, 200);

    // Past its own expiry: not spent.
    let late = store.rotate_refresh_token(&rotation(b"r4", b"r5", 6000)).await.unwrap().unwrap();
    assert!(!late.rotated);
    assert!(store.refresh_token(b"r5").await.unwrap().is_none());
    // A suspended user (the row itself, whatever a cache says): not spent.
    gatehouse_store::with_pool!(store, pool => {
        sqlx::query("UPDATE users SET suspended_at = 290 WHERE id = 'usr_1'").execute(pool).await.unwrap();
    });
    let suspended =
        store.rotate_refresh_token(&rotation(b"r4", b"r6", 295)).await.unwrap().unwrap();
    assert!(!suspended.rotated && suspended.user_suspended);
    gatehouse_store::with_pool!(store, pool => {
        sqlx::query("UPDATE users SET suspended_at = NULL WHERE id = 'usr_1'").execute(pool).await.unwrap();
    });
    // A revoked session: not spent.
    assert!(store.revoke_session(&session.id, 300, RevokeReason::SignedOut, &[]).await.unwrap());
    let revoked = store.rotate_refresh_token(&rotation(b"r4", b"r6", 310)).await.unwrap().unwrap();
    assert!(!revoked.rotated);
    assert_eq!(revoked.session.revoked_at, Some(300));
    assert_eq!(store.refresh_token(b"r4").await.unwrap().unwrap().0.rotated_at, None);
}

/// Many rotations at once: each answers its own token and session, each successor belongs to
/// its own session, and of one token presented several times at once exactly one spends it.
async fn concurrent_refreshes_each_answer_their_own_rotation(test: TestDatabase) {
    let store = &test.database;
    insert_first_user(store).await;
    const SESSIONS: usize = 40;
    let mut sessions = Vec::new();
    for n in 0..SESSIONS {
        let session = SessionRecord {
            // Half first-party, half a client's, so the batch mixes both.
            client_id: (n % 2 == 1).then(|| "cli_1".to_owned()),
            ..SessionRecord::open("usr_1", (None, None), 50, 4950)
        };
        let token = RefreshTokenRecord {
            token_digest: format!("token-{n}").into_bytes(),
            session_id: session.id.clone(),
            created_at: 50,
            expires_at: 500,
            rotated_at: None,
        };
        store
            .start_session(&session, Some(&token), &Default::default(), &UnitOfWork::default())
            .await
            .unwrap();
        sessions.push(session);
    }
    let presented: Vec<Vec<u8>> =
        (0..SESSIONS).map(|n| format!("token-{n}").into_bytes()).collect();
    let successors: Vec<Vec<u8>> =
        (0..SESSIONS + 5).map(|n| format!("next-{n}").into_bytes()).collect();
    // Every token once, and the first token five more times.
    let rotations: Vec<RefreshRotation<'_>> = (0..SESSIONS + 5)
        .map(|n| {
            let of = if n < SESSIONS { n } else { 0 };
            RefreshRotation {
                presented: &presented[of],
                successor: &successors[n],
                now: 100,
                ttl_seconds: 10_000,
                touch_if_used_before: 90,
                client_id: sessions[of].client_id.as_deref(),
                dpop_jkt: None,
            }
        })
        .collect();
    let outcomes = futures_util::future::join_all(
        rotations.iter().map(|rotation| store.rotate_refresh_token(rotation)),
    )
    .await;
    let mut first_token_spends = 0;
    for (n, outcome) in outcomes.into_iter().enumerate() {
        let outcome = outcome.unwrap().unwrap();
        let of = if n < SESSIONS { n } else { 0 };
        assert_eq!(outcome.session.id, sessions[of].id, "rotation {n} answered another's session");
        assert_eq!(outcome.token.token_digest, presented[of]);
        if outcome.rotated {
            assert_eq!(outcome.token.rotated_at, None, "answered as found, before the spend");
        }
        let successor = store.refresh_token(&successors[n]).await.unwrap();
        if of == 0 {
            first_token_spends += usize::from(outcome.rotated);
            assert_eq!(successor.is_some(), outcome.rotated);
        } else {
            assert!(outcome.rotated, "rotation {n} was not spent");
            let (_, of_session) = successor.as_ref().unwrap();
            assert_eq!(of_session.id, sessions[of].id);
        }
        if let Some((_, session)) = &successor {
            assert_eq!(session.last_used_at, 100, "a rotation touches its session");
        }
    }
    assert_eq!(first_token_spends, 1, "a token presented six times at once is spent once");
}

/// Rotations that arrive together (committed as one group on PostgreSQL) are each answered
/// as they would be alone: spent only while their session allows, the others found but not
/// spent, an unknown token not found, and only the sessions whose token was spent touched.
async fn rotations_arriving_together_are_each_answered_as_alone(test: TestDatabase) {
    let store = &test.database;
    insert_first_user(store).await;
    // (token, session's client, token expiry, spent before, session's last use)
    type Case = (&'static str, Option<&'static str>, i64, Option<i64>, i64);
    let cases: [Case; 6] = [
        ("fine", Some("cli_1"), 500, None, 50),
        ("wrong-client", Some("cli_2"), 500, None, 50),
        ("spent-before", Some("cli_1"), 500, Some(60), 50),
        ("expired", Some("cli_1"), 90, None, 50),
        ("recently-used", Some("cli_1"), 500, None, 95),
        ("first-party", None, 500, None, 50),
    ];
    let mut sessions = Vec::new();
    for (name, client, expires_at, rotated_at, last_used_at) in cases {
        let session = SessionRecord {
            client_id: client.map(str::to_owned),
            last_used_at,
            ..SessionRecord::open("usr_1", (None, None), 50, 4950)
        };
        let token = RefreshTokenRecord {
            token_digest: name.as_bytes().to_vec(),
            session_id: session.id.clone(),
            created_at: 50,
            expires_at,
            rotated_at,
        };
        store
            .start_session(&session, Some(&token), &Default::default(), &UnitOfWork::default())
            .await
            .unwrap();
        sessions.push(session);
    }
    let successors: Vec<Vec<u8>> =
        (0..=cases.len()).map(|n| format!("s-{n}").into_bytes()).collect();
    let mut rotations: Vec<RefreshRotation<'_>> = cases
        .iter()
        .enumerate()
        .map(|(n, (name, ..))| RefreshRotation {
            presented: name.as_bytes(),
            successor: &successors[n],
            now: 100,
            ttl_seconds: 10_000,
            touch_if_used_before: 90,
            // Every token by cli_1, except the first-party one.
            client_id: (n != 5).then_some("cli_1"),
            dpop_jkt: None,
        })
        .collect();
    rotations.push(RefreshRotation {
        presented: b"unknown",
        successor: &successors[cases.len()],
        ..rotations[0]
    });
    let outcomes = futures_util::future::join_all(
        rotations.iter().map(|rotation| store.rotate_refresh_token(rotation)),
    )
    .await;
    let outcomes: Vec<_> = outcomes.into_iter().map(Result::unwrap).collect();
    assert!(outcomes[cases.len()].is_none(), "an unknown token is not found");
    for (n, (name, ..)) in cases.iter().enumerate() {
        let outcome = outcomes[n].as_ref().unwrap();
        assert_eq!(outcome.session.id, sessions[n].id, "{name} answered another's session");
        assert_eq!(outcome.token.token_digest, name.as_bytes());
        let spendable = matches!(*name, "fine" | "recently-used" | "first-party");
        assert_eq!(outcome.rotated, spendable, "{name}");
        assert_eq!(rotations[n].allows(outcome), spendable, "{name} answered as found");
        let successor = store.refresh_token(&successors[n]).await.unwrap();
        assert_eq!(successor.is_some(), spendable, "{name}'s successor");
        let stored = store.session(&sessions[n].id).await.unwrap().unwrap();
        let touched = matches!(*name, "fine" | "first-party");
        assert_eq!(stored.last_used_at, if touched { 100 } else { cases[n].4 }, "{name}");
    }
    assert_eq!(outcomes[2].as_ref().unwrap().token.rotated_at, Some(60));
}

/// A request cancelled while its transaction's `BEGIN` is on the wire (a client that hangs up,
/// a timeout) must not leave its pooled connection inside that transaction: the next
/// borrower's single-statement writes — a refresh, an authorization code — would be answered
/// as done yet stay invisible to every other connection, and be lost if that transaction is
/// ever rolled back. (sqlx 0.9.0 did leave it open: transact-rs/sqlx#4393; the bench's code
/// flow on PostgreSQL saw codes its token exchange could not find.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_cancelled_while_it_begins_leaves_its_connection_clean() {
    use gatehouse_store::{Database, DatabaseOptions};
    let Some(test) = TestDatabase::postgres().await.unwrap() else { return };
    let url = url::Url::parse(&test.url).unwrap();
    let upstream = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432));
    let upstream = tokio::net::lookup_host(upstream).await.unwrap().next().unwrap();
    let proxy = gatehouse_store::testing::FaultProxy::start(upstream).await.unwrap();
    let mut proxied = url.clone();
    proxied.set_host(Some("127.0.0.1")).unwrap();
    proxied.set_port(Some(proxy.address().port())).unwrap();
    // One connection, so the write after the cancelled one takes the same.
    let options = DatabaseOptions {
        max_connections: 1,
        postgres_schema: test.postgres_schema.clone(),
        ..Default::default()
    };
    let store = Database::connect(proxied.as_str(), &options).await.unwrap();
    insert_first_user(&store).await;
    let session = SessionRecord::open("usr_1", (None, None), 50, 5000);
    let first = RefreshTokenRecord {
        token_digest: b"r1".to_vec(),
        session_id: session.id.clone(),
        created_at: 50,
        expires_at: 500,
        rotated_at: None,
    };
    store
        .start_session(&session, Some(&first), &Default::default(), &UnitOfWork::default())
        .await
        .unwrap();

    // A write whose BEGIN reaches the database, cancelled before the answer comes back (the
    // pool's health check of the connection is answered first).
    proxy.stall_after(1);
    let (second, work) =
        (user("usr_2", b"digest-2", None), UnitOfWork::events(vec![signed_up("usr_2")]));
    let write = store.insert_user(&second, &work);
    assert!(tokio::time::timeout(std::time::Duration::from_millis(300), write).await.is_err());
    proxy.resume();

    // The next write on that connection, a single statement, is there for everyone at once.
    let rotation = RefreshRotation {
        presented: b"r1",
        successor: b"r2",
        now: 100,
        ttl_seconds: 3600,
        touch_if_used_before: 0,
        client_id: None,
        dpop_jkt: None,
    };
    let rotated = store.rotate_refresh_token(&rotation).await.unwrap().unwrap().rotated;
    let elsewhere = &test.database;
    let successor = elsewhere.refresh_token(b"r2").await.unwrap();
    let spent = elsewhere.refresh_token(b"r1").await.unwrap().unwrap().0.rotated_at;
    let cancelled_user = elsewhere.user_by_id("usr_2").await.unwrap();
    // Ends the proxied connections (and whatever transaction they hold, which would keep the
    // test's schema from being dropped) before anything is asserted.
    proxy.cut();
    assert!(rotated);
    assert!(successor.is_some(), "the rotation is not visible to other connections");
    assert_eq!(spent, Some(100));
    // And the cancelled write left nothing.
    assert!(cancelled_user.is_none());
}

async fn a_code_exchange_spends_its_code_once_and_only_for_an_active_user(test: TestDatabase) {
    use gatehouse_domain::oauth::client::ClientRecord;
    use gatehouse_domain::oauth::{AuthorizationCodeRecord, OAuthStore};
    use gatehouse_domain::unit_of_work::SpentCode;
    use gatehouse_domain::users::record::UserChange;

    let store = &test.database;
    insert_first_user(store).await;
    let client = ClientRecord {
        client_id: "app".into(),
        name: "App".into(),
        secret_digest: None,
        previous_secret_digest: None,
        previous_secret_expires_at: None,
        redirect_uris: vec!["https://app.example/cb".into()],
        post_logout_redirect_uris: vec![],
        grant_types: vec!["authorization_code".into()],
        scopes: vec!["openid".into()],
        token_endpoint_auth_method: "none".into(),
        jwks: None,
        skip_consent: true,
        require_pushed_authorization_requests: false,
        dpop_bound_access_tokens: false,
        backchannel_logout_uri: None,
        backchannel_logout_session_required: false,
        document_expires_at: None,
        access_token_ttl_seconds: None,
        refresh_token_ttl_seconds: None,
        created_at: 1,
        updated_at: 1,
        registration_token_digest: None,
    };
    store.insert_client(&client, &[]).await.unwrap();
    let code = AuthorizationCodeRecord {
        code_digest: b"code-1".to_vec(),
        client_id: "app".into(),
        user_id: "usr_1".into(),
        browser_session_id: "ses_browser".into(),
        redirect_uri: "https://app.example/cb".into(),
        scope: "openid".into(),
        nonce: None,
        code_challenge: None,
        auth_time: 40,
        amr: Some("pwd".into()),
        created_at: 40,
        expires_at: 100,
        used_at: None,
        issued_session_id: None,
        organization_id: None,
        dpop_jkt: Some("thumbprint-of-the-client-key".into()),
        resources: vec!["https://api.example.com".into()],
    };
    store.insert_authorization_code(&code).await.unwrap();
    let session = |id: &str| SessionRecord {
        id: id.into(),
        user_id: "usr_1".into(),
        user_agent: None,
        ip: None,
        created_at: 50,
        last_used_at: 50,
        expires_at: 5000,
        revoked_at: None,
        revoked_reason: None,
        client_id: Some("app".into()),
        scope: Some("openid".into()),
        auth_time: Some(40),
        nonce: None,
        amr: Some("pwd".into()),
        organization_id: None,
        impersonator: None,
        dpop_jkt: None,
        resources: Vec::new(),
    };
    let exchange = |session_id: &str| UnitOfWork {
        spend_code: Some(SpentCode {
            digest: b"code-1".to_vec(),
            at: 50,
            session_id: session_id.into(),
        }),
        events: vec![
            AuditEvent::new(
                "oauth.token_issued",
                &Actor::User("usr_1".into()),
                &RequestContext::default(),
                50,
            )
            .target("session", session_id),
        ],
        ..UnitOfWork::default()
    };
    let unchanged = UserChange::default();
    let refresh = |session_id: &str| RefreshTokenRecord {
        token_digest: format!("refresh-of-{session_id}").into_bytes(),
        session_id: session_id.into(),
        created_at: 50,
        expires_at: 900,
        rotated_at: None,
    };

    // A user suspended since the code was issued gets no session, and the code is not spent
    // (its spend, done first, rolls back with the rest).
    let suspended = UserChange { suspended_at: Some(Some(45)), ..UserChange::default() };
    store.update_user("usr_1", &suspended, &UnitOfWork::default()).await.unwrap();
    let error = store
        .start_session(&session("ses_a"), None, &unchanged, &exchange("ses_a"))
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Conflict(Conflict::UserNotActive)), "{error:?}");
    assert!(store.session("ses_a").await.unwrap().is_none());
    let stored = store.authorization_code(b"code-1").await.unwrap().unwrap();
    assert_eq!(stored.used_at, None);
    assert_eq!(stored.dpop_jkt.as_deref(), Some("thumbprint-of-the-client-key"));
    assert_eq!(stored.resources, ["https://api.example.com"]);

    // Active again: the exchange spends the code for its session, and reads the user as stored.
    let active = UserChange { suspended_at: Some(None), ..UserChange::default() };
    store.update_user("usr_1", &active, &UnitOfWork::default()).await.unwrap();
    let read = store
        .start_session(&session("ses_b"), Some(&refresh("ses_b")), &unchanged, &exchange("ses_b"))
        .await
        .unwrap();
    assert_eq!(read, store.user_by_id("usr_1").await.unwrap().unwrap());
    let spent = store.authorization_code(b"code-1").await.unwrap().unwrap();
    assert_eq!((spent.used_at, spent.issued_session_id.as_deref()), (Some(50), Some("ses_b")));
    assert_eq!(store.session("ses_b").await.unwrap().unwrap(), session("ses_b"));
    let (token, _) = store.refresh_token(b"refresh-of-ses_b").await.unwrap().unwrap();
    assert_eq!(token, refresh("ses_b"));
    let events = store.list_audit_events(&AuditFilter::default(), None, 20).await.unwrap();
    assert!(
        events.iter().any(|event| event.target_id.as_deref() == Some("ses_b")
            && event.action == "oauth.token_issued")
    );

    // The same code again: refused, and nothing of the second exchange is written.
    let error = store
        .start_session(&session("ses_c"), Some(&refresh("ses_c")), &unchanged, &exchange("ses_c"))
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Conflict(Conflict::AuthorizationCodeSpent)), "{error:?}");
    assert!(store.session("ses_c").await.unwrap().is_none());
    assert!(store.refresh_token(b"refresh-of-ses_c").await.unwrap().is_none());
    let events = store.list_audit_events(&AuditFilter::default(), None, 20).await.unwrap();
    assert!(!events.iter().any(|event| event.target_id.as_deref() == Some("ses_c")));
    assert_eq!(
        store.authorization_code(b"code-1").await.unwrap().unwrap().issued_session_id.as_deref(),
        Some("ses_b")
    );

    // Codes stored at the same moment (one statement on PostgreSQL) are each stored whole.
    let codes: Vec<AuthorizationCodeRecord> = (0..12)
        .map(|n| AuthorizationCodeRecord {
            code_digest: format!("together-{n}").into_bytes(),
            nonce: (n % 2 == 0).then(|| format!("nonce-{n}")),
            code_challenge: (n % 3 == 0).then(|| format!("challenge-{n}")),
            amr: Some(if n % 2 == 0 { "pwd otp".into() } else { "pwd".into() }),
            dpop_jkt: None,
            resources: (0..n % 3).map(|r| format!("https://api{r}.example.com")).collect(),
            expires_at: 100 + n,
            ..code.clone()
        })
        .collect();
    let stored = futures_util::future::join_all(
        codes.iter().map(|code| store.insert_authorization_code(code)),
    )
    .await;
    assert!(stored.iter().all(Result::is_ok), "{stored:?}");
    for code in &codes {
        let read = store.authorization_code(&code.code_digest).await.unwrap();
        assert_eq!(read.as_ref(), Some(code), "stored whole");
    }
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
            rotation_delay_seconds: 0,
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

    let second =
        service.rotate(&AdminPrincipal::system(), &RequestContext::default()).await.unwrap();
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
    let listed = service.list(&AdminPrincipal::system()).await.unwrap();
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

async fn an_unknown_outbox_status_is_corrupt(test: TestDatabase) {
    use gatehouse_domain::notify::{
        AttemptOutcome, AttemptStatus, OutboxAttempt, OutboxStatus, OutboxStore,
    };
    let store = &test.database;
    let row = outbox_row("dlv_1");
    store.commit(&UnitOfWork { outbox: vec![row], ..UnitOfWork::default() }).await.unwrap();
    assert_eq!(store.claim_outbox("a", 100, 130, 10).await.unwrap().len(), 1);
    let attempt = OutboxAttempt {
        id: "att_1".into(),
        outbox_id: "dlv_1".into(),
        worker: "a".into(),
        status: AttemptStatus::Failed,
        error: Some("refused".into()),
        started_at: 101,
        duration_ms: 5,
        report: None,
    };
    let dead = AttemptOutcome::Dead;
    assert!(store.finish_outbox_attempt(&attempt, dead, &[]).await.unwrap());
    let stored = store.outbox_row("dlv_1").await.unwrap().unwrap();
    assert_eq!(stored.status, OutboxStatus::Dead);
    let attempts = store.outbox_attempts("dlv_1").await.unwrap();
    assert_eq!(attempts.iter().map(|a| a.status).collect::<Vec<_>>(), [AttemptStatus::Failed]);

    gatehouse_store::with_pool!(store, pool => {
        sqlx::query("UPDATE outbox SET status = 'lost'").execute(pool).await.unwrap();
        sqlx::query("UPDATE outbox_attempts SET status = 'lost'").execute(pool).await.unwrap();
    });
    assert!(matches!(store.outbox_row("dlv_1").await, Err(StoreError::Corrupt(_))));
    assert!(matches!(store.outbox_attempts("dlv_1").await, Err(StoreError::Corrupt(_))));
}
