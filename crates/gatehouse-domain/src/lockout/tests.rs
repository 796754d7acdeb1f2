//! Tests of the account lockout (`Lockout::count_failure`) against the in-memory store, which
//! counts and locks as the real store's one statement does.

use super::*;
use crate::testing::{TestWorld, context};

/// A lockout of `threshold` failures for 900 s over the world's store, and a user to fail.
async fn lockout(threshold: i64) -> (TestWorld, Lockout, String) {
    let world = TestWorld::new().await;
    let user = world.seed_user("grace@example.test").await;
    let settings = LockoutSettings { threshold, duration_seconds: 900 };
    let lockout = Lockout::new(
        world.store.clone(),
        notices(&world),
        settings,
        crate::account_limit::AccountRateLimit::off(),
    );
    (world, lockout, user.id)
}

/// Notices as the services build them (email off, as in every `TestWorld`).
fn notices(world: &TestWorld) -> Arc<Notices> {
    use gatehouse_crypto::{Digester, FieldCipher, MasterKey};

    use crate::known_devices::KnownDevices;
    use crate::notify::{NoticeSettings, Notifier, NotifierSettings};

    let master = MasterKey::generate();
    let notifier = Arc::new(Notifier::new(
        FieldCipher::new(&master, &[], "outbox"),
        Digester::new(&master, "one-time-token"),
        NotifierSettings { issuer: "https://id.example.test".into(), email_enabled: false },
    ));
    let known_devices =
        Arc::new(KnownDevices::new(world.store.clone(), Digester::new(&master, "known-device")));
    Arc::new(Notices::new(
        notifier,
        world.accounts.directory.clone(),
        known_devices,
        world.clock.clone(),
        NoticeSettings { new_device_notice: false },
    ))
}

/// One failure of the user as the store has them now (a sign-in reads the account first).
async fn fail(world: &TestWorld, lockout: &Lockout, user_id: &str) {
    let user = world.store.user(user_id).unwrap();
    let marker = AuditEvent::new("user.sign_in_failed", &Actor::Anonymous, &context(), world.now());
    lockout.count_failure(&user, vec![marker], &context(), world.now()).await.unwrap();
}

/// `(failed_sign_in_attempts, locked_until)` of the stored user.
fn counters(world: &TestWorld, user_id: &str) -> (i64, Option<i64>) {
    let user = world.store.user(user_id).unwrap();
    (user.failed_sign_in_attempts, user.locked_until)
}

#[tokio::test]
async fn failures_lock_the_account_at_the_threshold() {
    let (world, lockout, user_id) = lockout(3).await;
    fail(&world, &lockout, &user_id).await;
    fail(&world, &lockout, &user_id).await;
    assert_eq!(counters(&world, &user_id), (2, None));
    assert!(world.store.events("user.locked").is_empty());

    fail(&world, &lockout, &user_id).await;
    let until = world.now() + 900;
    assert_eq!(counters(&world, &user_id), (3, Some(until)));
    let locked = world.store.events("user.locked");
    assert_eq!(locked.len(), 1, "{locked:?}");
    assert_eq!(locked[0].target_id.as_deref(), Some(user_id.as_str()));
    assert_eq!(locked[0].metadata["until"], until);
    // The caller's own events are written with the count.
    assert_eq!(world.store.events("user.sign_in_failed").len(), 3);
}

#[tokio::test]
async fn a_failure_while_locked_counts_but_never_extends_the_lock() {
    let (world, lockout, user_id) = lockout(3).await;
    for _ in 0..3 {
        fail(&world, &lockout, &user_id).await;
    }
    let until = world.now() + 900;
    world.clock.advance(600);
    fail(&world, &lockout, &user_id).await;
    fail(&world, &lockout, &user_id).await;
    assert_eq!(counters(&world, &user_id), (5, Some(until)), "same end, more failures");
    assert_eq!(world.store.events("user.locked").len(), 1, "locked once");
}

#[tokio::test]
async fn threshold_zero_disables_the_lockout() {
    let (world, lockout, user_id) = lockout(0).await;
    for _ in 0..25 {
        fail(&world, &lockout, &user_id).await;
    }
    assert_eq!(counters(&world, &user_id), (25, None));
    assert!(world.store.events("user.locked").is_empty());
}

#[tokio::test]
async fn after_a_lock_runs_out_the_count_starts_again() {
    let (world, lockout, user_id) = lockout(3).await;
    for _ in 0..3 {
        fail(&world, &lockout, &user_id).await;
    }
    world.clock.advance(900);
    fail(&world, &lockout, &user_id).await;
    assert_eq!(counters(&world, &user_id), (1, None), "one failure does not lock again");
    fail(&world, &lockout, &user_id).await;
    fail(&world, &lockout, &user_id).await;
    assert_eq!(counters(&world, &user_id), (3, Some(world.now() + 900)));
}

/// The store restarts the count at 1 when the previous lock has run out, so the first failure
/// after a lock ends locks nothing and must not record a `user.locked` event.
#[tokio::test]
async fn after_a_lock_runs_out_a_failure_that_does_not_lock_records_no_lock() {
    let (world, lockout, user_id) = lockout(3).await;
    for _ in 0..3 {
        fail(&world, &lockout, &user_id).await;
    }
    world.clock.advance(900);
    fail(&world, &lockout, &user_id).await;
    assert_eq!(counters(&world, &user_id), (1, None));
    let locked = world.store.events("user.locked");
    assert_eq!(locked.len(), 1, "a failure that locks nothing records no user.locked: {locked:?}");
}
