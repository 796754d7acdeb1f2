//! Tests of the sign-in challenge's limits, driven as the API drives them
//! (`SignInService::sign_in`, then `verify_mfa`) for a user with a TOTP factor: wrong codes
//! count towards the lockout, ten of them end the challenge, it lives five minutes, and a right
//! code spends it.

use gatehouse_crypto::TotpSecret;

use crate::error::{DomainError, MfaProblem};
use crate::mfa::{CHALLENGE_MAX_ATTEMPTS, CHALLENGE_TTL_SECONDS, MfaVerification};
use crate::sign_in::{MfaVerified, SignInOutcome};
use crate::testing::{TEST_PASSWORD, TestWorld, WorldSettings, context, wrong_totp_code};
use crate::users::AccountSettings;

const EMAIL: &str = "ada@example.test";

/// A world whose lockout is `threshold` failures, with one user who has TOTP.
async fn world_with_totp(threshold: i64) -> (TestWorld, String, TotpSecret) {
    let settings = WorldSettings {
        account: AccountSettings { lockout_threshold: threshold, ..AccountSettings::default() },
        ..WorldSettings::default()
    };
    let world = TestWorld::with(settings).await;
    let user = world.seed_user(EMAIL).await;
    let secret = world.seed_totp(&user.id);
    (world, user.id, secret)
}

/// The right password: answers the challenge's token.
async fn challenge(world: &TestWorld) -> String {
    match world.sign_in(EMAIL, TEST_PASSWORD).await {
        Ok(SignInOutcome::MfaRequired(challenge)) => {
            assert_eq!(challenge.methods, ["totp"]);
            assert_eq!(challenge.expires_in, CHALLENGE_TTL_SECONDS);
            challenge.mfa_token
        }
        other => panic!("expected a challenge, got {other:?}"),
    }
}

async fn verify(
    world: &TestWorld,
    mfa_token: &str,
    code: &str,
) -> Result<MfaVerified, DomainError> {
    let request = MfaVerification {
        mfa_token: mfa_token.to_owned(),
        method: "totp".into(),
        code: code.to_owned(),
        trust_device: false,
    };
    world.accounts.sign_in.verify_mfa(request, &context()).await
}

fn assert_mfa_problem(result: Result<MfaVerified, DomainError>, expected: MfaProblem) {
    match result {
        Err(DomainError::Mfa(problem)) => assert_eq!(problem, expected),
        other => panic!("expected {expected:?}, got {other:?}"),
    }
}

#[tokio::test]
async fn a_wrong_code_counts_towards_the_lockout_and_keeps_the_challenge() {
    let (world, user_id, secret) = world_with_totp(5).await;
    let mfa_token = challenge(&world).await;
    assert_mfa_problem(
        verify(&world, &mfa_token, &wrong_totp_code(&secret, world.now())).await,
        MfaProblem::InvalidCode,
    );
    assert_eq!(world.store.user(&user_id).unwrap().failed_sign_in_attempts, 1);
    assert_eq!(world.store.reasons("mfa.verify_failed"), ["invalid_mfa_code"]);

    // The same challenge still takes the right code, and a completed sign-in clears the count.
    let verified = verify(&world, &mfa_token, &world.totp_code(&secret)).await.unwrap();
    assert_eq!(world.store.user(&user_id).unwrap().failed_sign_in_attempts, 0);
    let session = world.store.stored_session(&verified.tokens.session_id).unwrap();
    assert_eq!(session.amr.as_deref(), Some("pwd otp mfa"));
}

#[tokio::test]
async fn wrong_codes_and_wrong_passwords_share_one_lockout() {
    let (world, user_id, secret) = world_with_totp(3).await;
    let mfa_token = challenge(&world).await;
    assert!(matches!(
        world.sign_in(EMAIL, "not the password").await,
        Err(DomainError::InvalidCredentials)
    ));
    for _ in 0..2 {
        let wrong = wrong_totp_code(&secret, world.now());
        assert_mfa_problem(verify(&world, &mfa_token, &wrong).await, MfaProblem::InvalidCode);
    }
    // The third failure locked the account: the right code no longer completes the sign-in,
    // and answers exactly as a wrong one (the lock is not revealed), counting once more.
    assert_eq!(world.store.events("user.locked").len(), 1);
    let result = verify(&world, &mfa_token, &world.totp_code(&secret)).await;
    assert_mfa_problem(result, MfaProblem::InvalidCode);
    let user = world.store.user(&user_id).unwrap();
    assert_eq!((user.failed_sign_in_attempts, user.locked_until.is_some()), (4, true));
    assert_eq!(world.store.reasons("mfa.verify_failed").last().map(String::as_str), Some("locked"));
}

#[tokio::test]
async fn signing_in_again_does_not_buy_more_guesses() {
    let (world, user_id, secret) = world_with_totp(3).await;
    let first = challenge(&world).await;
    for _ in 0..2 {
        let wrong = wrong_totp_code(&secret, world.now());
        assert_mfa_problem(verify(&world, &first, &wrong).await, MfaProblem::InvalidCode);
    }
    // The right password opens a new challenge but does not reset the count: only a
    // completed sign-in does.
    let second = challenge(&world).await;
    assert_eq!(world.store.user(&user_id).unwrap().failed_sign_in_attempts, 2);
    let wrong = wrong_totp_code(&secret, world.now());
    assert_mfa_problem(verify(&world, &second, &wrong).await, MfaProblem::InvalidCode);
    assert_eq!(world.store.events("user.locked").len(), 1);
}

#[tokio::test]
async fn a_challenge_survives_nine_wrong_answers() {
    let (world, _, secret) = world_with_totp(50).await;
    let mfa_token = challenge(&world).await;
    for _ in 0..CHALLENGE_MAX_ATTEMPTS - 1 {
        let wrong = wrong_totp_code(&secret, world.now());
        assert_mfa_problem(verify(&world, &mfa_token, &wrong).await, MfaProblem::InvalidCode);
    }
    verify(&world, &mfa_token, &world.totp_code(&secret)).await.unwrap();
}

#[tokio::test]
async fn the_tenth_wrong_answer_ends_the_challenge() {
    let (world, user_id, secret) = world_with_totp(50).await;
    assert_eq!(CHALLENGE_MAX_ATTEMPTS, 10);
    let mfa_token = challenge(&world).await;
    for _ in 0..10 {
        let wrong = wrong_totp_code(&secret, world.now());
        assert_mfa_problem(verify(&world, &mfa_token, &wrong).await, MfaProblem::InvalidCode);
    }
    // Gone, even for the right code (and asking again is not one more guess).
    assert_mfa_problem(
        verify(&world, &mfa_token, &world.totp_code(&secret)).await,
        MfaProblem::InvalidChallenge,
    );
    assert_eq!(world.store.user(&user_id).unwrap().failed_sign_in_attempts, 10);
    // A new sign-in opens a new challenge, which works.
    let mfa_token = challenge(&world).await;
    verify(&world, &mfa_token, &world.totp_code(&secret)).await.unwrap();
}

#[tokio::test]
async fn a_challenge_lives_five_minutes() {
    let (world, _, secret) = world_with_totp(5).await;
    let mfa_token = challenge(&world).await;
    world.clock.advance(CHALLENGE_TTL_SECONDS - 1);
    verify(&world, &mfa_token, &world.totp_code(&secret)).await.unwrap();

    world.clock.advance(30);
    let mfa_token = challenge(&world).await;
    world.clock.advance(CHALLENGE_TTL_SECONDS);
    let right = world.totp_code(&secret);
    assert_mfa_problem(verify(&world, &mfa_token, &right).await, MfaProblem::ChallengeExpired);
    assert_eq!(world.store.reasons("mfa.verify_failed"), ["mfa_token_expired"]);
    // An expired challenge is thrown away when it is seen.
    assert_mfa_problem(verify(&world, &mfa_token, &right).await, MfaProblem::InvalidChallenge);
}

#[tokio::test]
async fn a_right_code_spends_the_challenge() {
    let (world, user_id, secret) = world_with_totp(5).await;
    let mfa_token = challenge(&world).await;
    verify(&world, &mfa_token, &world.totp_code(&secret)).await.unwrap();
    // A fresh code of the next step, so that only the spent challenge can refuse it.
    world.clock.advance(30);
    assert_mfa_problem(
        verify(&world, &mfa_token, &world.totp_code(&secret)).await,
        MfaProblem::InvalidChallenge,
    );
    assert_eq!(world.store.all_sessions().len(), 1, "one sign-in, one session");
    // The session was written with the second step's event, in one unit of work.
    let last = world.store.units_of_work().pop().unwrap();
    let actions: Vec<&str> = last.events.iter().map(|event| event.action.as_str()).collect();
    assert_eq!(actions, ["mfa.verified", "session.created"]);
    assert_eq!(world.store.user(&user_id).unwrap().failed_sign_in_attempts, 0);
}
