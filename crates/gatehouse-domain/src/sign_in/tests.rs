//! Tests of the password sign-in's answers and its lockout (`SignInService::sign_in`): what a
//! guesser learns, when the account locks, and who learns about the lock.

use crate::error::DomainError;
use crate::sign_in::SignInOutcome;
use crate::testing::{TEST_PASSWORD, TestWorld, WorldSettings};
use crate::users::AccountSettings;

const EMAIL: &str = "ada@example.test";

/// A world whose lockout is `threshold` failures for 900 s, with one user.
async fn world_with_lockout(threshold: i64) -> (TestWorld, String) {
    let settings = WorldSettings {
        account: AccountSettings {
            lockout_threshold: threshold,
            lockout_duration_seconds: 900,
            ..AccountSettings::default()
        },
        ..WorldSettings::default()
    };
    let world = TestWorld::with(settings).await;
    let user = world.seed_user(EMAIL).await;
    (world, user.id)
}

fn assert_invalid_credentials(result: Result<SignInOutcome, DomainError>) {
    assert!(matches!(result, Err(DomainError::InvalidCredentials)), "{result:?}");
}

fn assert_signed_in(result: Result<SignInOutcome, DomainError>) {
    assert!(matches!(result, Ok(SignInOutcome::SignedIn(_))), "{result:?}");
}

#[tokio::test]
async fn an_unknown_account_and_a_wrong_password_get_the_same_answer() {
    let (world, user_id) = world_with_lockout(5).await;
    assert_invalid_credentials(world.sign_in("nobody@example.test", TEST_PASSWORD).await);
    assert_invalid_credentials(world.sign_in(EMAIL, "not the password").await);
    // An identifier that cannot name an account is an unknown account, not a validation error.
    assert_invalid_credentials(world.sign_in("not an address", TEST_PASSWORD).await);
    assert_eq!(
        world.store.reasons("user.sign_in_failed"),
        ["unknown_account", "wrong_password", "unknown_account"]
    );
    // Only the wrong password of a real account counts towards its lockout.
    assert_eq!(world.store.user(&user_id).unwrap().failed_sign_in_attempts, 1);
}

#[tokio::test]
async fn wrong_passwords_lock_at_the_threshold_and_the_right_password_learns_nothing() {
    let (world, user_id) = world_with_lockout(3).await;
    for _ in 0..3 {
        assert_invalid_credentials(world.sign_in(EMAIL, "not the password").await);
    }
    let until = world.now() + 900;
    assert_eq!(world.store.user(&user_id).unwrap().locked_until, Some(until));
    assert_eq!(world.store.events("user.locked").len(), 1);

    // Locked: a wrong password still reads like any wrong password, and does not extend it.
    world.clock.advance(100);
    assert_invalid_credentials(world.sign_in(EMAIL, "not the password").await);
    assert_eq!(world.store.user(&user_id).unwrap().locked_until, Some(until));
    assert_eq!(world.store.events("user.locked").len(), 1);
    // The right password answers exactly as a wrong one, counts, and extends nothing.
    let attempts = world.store.user(&user_id).unwrap().failed_sign_in_attempts;
    assert_invalid_credentials(world.sign_in(EMAIL, TEST_PASSWORD).await);
    let user = world.store.user(&user_id).unwrap();
    assert_eq!((user.failed_sign_in_attempts, user.locked_until), (attempts + 1, Some(until)));
    assert_eq!(
        world.store.reasons("user.sign_in_failed").last().map(String::as_str),
        Some("locked")
    );
    assert_eq!(world.store.events("user.locked").len(), 1);

    // Once the lock has run out, the right password signs in and clears the count.
    world.clock.set(until);
    assert_signed_in(world.sign_in(EMAIL, TEST_PASSWORD).await);
    let user = world.store.user(&user_id).unwrap();
    assert_eq!((user.failed_sign_in_attempts, user.locked_until), (0, None));
}

#[tokio::test]
async fn a_success_before_the_threshold_resets_the_count() {
    let (world, user_id) = world_with_lockout(3).await;
    for _ in 0..2 {
        assert_invalid_credentials(world.sign_in(EMAIL, "not the password").await);
    }
    assert_signed_in(world.sign_in(EMAIL, TEST_PASSWORD).await);
    for _ in 0..2 {
        assert_invalid_credentials(world.sign_in(EMAIL, "not the password").await);
    }
    assert_eq!(world.store.user(&user_id).unwrap().locked_until, None);
    assert_signed_in(world.sign_in(EMAIL, TEST_PASSWORD).await);
}

#[tokio::test]
async fn threshold_zero_never_locks() {
    let (world, user_id) = world_with_lockout(0).await;
    for _ in 0..12 {
        assert_invalid_credentials(world.sign_in(EMAIL, "not the password").await);
    }
    assert_eq!(world.store.user(&user_id).unwrap().locked_until, None);
    assert!(world.store.events("user.locked").is_empty());
    assert_signed_in(world.sign_in(EMAIL, TEST_PASSWORD).await);
}
