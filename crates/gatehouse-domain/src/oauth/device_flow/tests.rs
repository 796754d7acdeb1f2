//! Tests of the device flow's polling (`OAuthService::exchange_device_code`, RFC 8628 §3.5):
//! pending, slow_down, denied, expired, and tokens exactly once.

use super::*;
use crate::oauth::client::GRANT_REFRESH_TOKEN;
use crate::oauth::grants::TokenResponse;
use crate::testing::{TestWorld, context};

/// A world with a TV client (device flow, refresh) and a user signed in on the `/device` page.
async fn world() -> (TestWorld, ClientRecord, Principal) {
    let world = TestWorld::new().await;
    let client = world.seed_client(
        "tv",
        &[GRANT_DEVICE_CODE, GRANT_REFRESH_TOKEN],
        &["openid", "profile", "offline_access"],
        false,
    );
    let user = world.seed_user("viewer@example.test").await;
    let tokens = world.start_session(&user).await;
    let principal = world.principal(&tokens.session_id).await;
    (world, client, principal)
}

async fn start(world: &TestWorld, client: &ClientRecord) -> DeviceAuthorization {
    world
        .device_flow
        .start_device_authorization(client, Some("openid offline_access"))
        .await
        .unwrap()
}

async fn poll(
    world: &TestWorld,
    client: &ClientRecord,
    started: &DeviceAuthorization,
) -> Result<TokenResponse, OAuthError> {
    world.device_flow.exchange_device_code(client, &started.device_code, None, &context()).await
}

/// The person's answer on the `/device` page; whether it was taken.
async fn decide(
    world: &TestWorld,
    principal: &Principal,
    started: &DeviceAuthorization,
    approve: bool,
) -> bool {
    world
        .device_flow
        .decide_device(&started.user_code, approve, principal, &context())
        .await
        .unwrap()
}

/// The stored interval of the device code.
fn interval(world: &TestWorld, started: &DeviceAuthorization) -> i64 {
    world.store.device_code(&normalise_user_code(&started.user_code)).unwrap().interval_seconds
}

#[tokio::test]
async fn polling_too_fast_answers_slow_down_and_widens_the_interval() {
    let (world, client, _) = world().await;
    let started = start(&world, &client).await;
    assert_eq!(started.interval, DEFAULT_INTERVAL_SECONDS);
    assert_eq!(
        poll(&world, &client, &started).await.unwrap_err(),
        OAuthError::AuthorizationPending
    );
    world.clock.advance(DEFAULT_INTERVAL_SECONDS - 1);
    assert_eq!(poll(&world, &client, &started).await.unwrap_err(), OAuthError::SlowDown);
    assert_eq!(interval(&world, &started), DEFAULT_INTERVAL_SECONDS + 5);
    // The wider interval holds for the following polls: the old one is now too fast.
    world.clock.advance(DEFAULT_INTERVAL_SECONDS);
    assert_eq!(poll(&world, &client, &started).await.unwrap_err(), OAuthError::SlowDown);
    assert_eq!(interval(&world, &started), DEFAULT_INTERVAL_SECONDS + 10);
    world.clock.advance(DEFAULT_INTERVAL_SECONDS + 10);
    assert_eq!(
        poll(&world, &client, &started).await.unwrap_err(),
        OAuthError::AuthorizationPending
    );
    assert_eq!(interval(&world, &started), DEFAULT_INTERVAL_SECONDS + 10);
}

#[tokio::test]
async fn a_denied_device_answers_access_denied() {
    let (world, client, principal) = world().await;
    let started = start(&world, &client).await;
    assert!(decide(&world, &principal, &started, false).await);
    assert_eq!(world.store.events("oauth.device_denied").len(), 1);
    for _ in 0..2 {
        assert_eq!(poll(&world, &client, &started).await.unwrap_err(), OAuthError::AccessDenied);
        world.clock.advance(DEFAULT_INTERVAL_SECONDS);
    }
    // Decided once: approving afterwards changes nothing.
    assert!(!decide(&world, &principal, &started, true).await);
    assert_eq!(poll(&world, &client, &started).await.unwrap_err(), OAuthError::AccessDenied);
}

#[tokio::test]
async fn an_expired_device_code_answers_expired_token() {
    let (world, client, principal) = world().await;
    let started = start(&world, &client).await;
    assert_eq!(started.expires_in, DEVICE_CODE_TTL_SECONDS);
    world.clock.advance(DEVICE_CODE_TTL_SECONDS - 1);
    assert_eq!(
        poll(&world, &client, &started).await.unwrap_err(),
        OAuthError::AuthorizationPending
    );
    world.clock.advance(1);
    assert_eq!(poll(&world, &client, &started).await.unwrap_err(), OAuthError::ExpiredToken);
    assert!(!decide(&world, &principal, &started, true).await, "too late to approve");
}

#[tokio::test]
async fn an_approved_device_gets_tokens_once() {
    let (world, client, principal) = world().await;
    let started = start(&world, &client).await;
    assert_eq!(
        poll(&world, &client, &started).await.unwrap_err(),
        OAuthError::AuthorizationPending
    );
    assert!(decide(&world, &principal, &started, true).await);
    world.clock.advance(DEFAULT_INTERVAL_SECONDS);

    let tokens = poll(&world, &client, &started).await.unwrap();
    assert_eq!(tokens.scope, "openid offline_access");
    assert!(tokens.refresh_token.is_some() && tokens.id_token.is_some(), "{tokens:?}");
    let granted: Vec<_> = world
        .store
        .all_sessions()
        .into_iter()
        .filter(|session| session.client_id.as_deref() == Some("tv"))
        .collect();
    assert_eq!(granted.len(), 1);
    assert_eq!(granted[0].user_id, principal.user.id);

    world.clock.advance(DEFAULT_INTERVAL_SECONDS);
    let again = poll(&world, &client, &started).await;
    assert!(matches!(again, Err(OAuthError::InvalidGrant(_))), "{again:?}");
    assert_eq!(world.store.all_sessions().len(), 2, "the user's own session and one grant");
}

#[tokio::test]
async fn another_client_cannot_poll_with_the_device_code() {
    let (world, client, principal) = world().await;
    let other = world.seed_client("other-tv", &[GRANT_DEVICE_CODE], &["openid"], false);
    let started = start(&world, &client).await;
    assert!(decide(&world, &principal, &started, true).await);
    let stolen = poll(&world, &other, &started).await;
    assert!(matches!(stolen, Err(OAuthError::InvalidGrant(_))), "{stolen:?}");
    // The rightful client still gets its tokens.
    poll(&world, &client, &started).await.unwrap();
}
