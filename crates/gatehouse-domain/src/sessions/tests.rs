//! Tests of refresh-token rotation and reuse detection (`SessionService::refresh` and
//! `rotate_refresh_token`) on the in-memory store.

use super::*;
use crate::testing::{TestWorld, WorldSettings, context};

/// Asserts `result` is the `invalid_grant` refusal.
fn assert_invalid_grant<T: std::fmt::Debug>(result: Result<T, DomainError>) {
    assert!(matches!(result, Err(DomainError::InvalidGrant)), "{result:?}");
}

/// The `session.revoked` events that record a refresh token's reuse.
fn reuse_revocations(world: &TestWorld) -> Vec<AuditEvent> {
    let mut events = world.store.events("session.revoked");
    events.retain(|event| event.metadata["reason"] == RevokeReason::RefreshTokenReuse.as_str());
    events
}

/// A world with a signed-up user and a first-party session.
async fn signed_in(settings: WorldSettings) -> (TestWorld, UserRecord, Tokens) {
    let world = TestWorld::with(settings).await;
    let user = world.seed_user("ada@example.test").await;
    let tokens = world.start_session(&user).await;
    (world, user, tokens)
}

/// A session granted to OAuth client `client_id`, with its refresh token, as the token
/// endpoint would have started it.
fn client_session(world: &TestWorld, user: &UserRecord, client_id: &str) -> (String, String) {
    let now = world.now();
    let session = SessionRecord {
        id: gatehouse_crypto::new_id("ses"),
        user_id: user.id.clone(),
        user_agent: None,
        ip: None,
        created_at: now,
        last_used_at: now,
        expires_at: now + 3600,
        revoked_at: None,
        revoked_reason: None,
        client_id: Some(client_id.to_owned()),
        scope: Some("openid offline_access".into()),
        auth_time: Some(now),
        nonce: None,
        amr: Some("pwd".into()),
        organization_id: None,
        impersonator: None,
        dpop_jkt: None,
        resources: Vec::new(),
    };
    let (token, digest) = world.tokens.new_refresh_token();
    let refresh = RefreshTokenRecord {
        token_digest: digest,
        session_id: session.id.clone(),
        created_at: now,
        expires_at: now + 3600,
        rotated_at: None,
    };
    let session_id = session.id.clone();
    world.store.put_session(session, refresh);
    (session_id, token)
}

#[tokio::test]
async fn a_refresh_gives_a_new_token_and_spends_the_old_one() {
    let (world, user, first) = signed_in(WorldSettings::default()).await;
    world.clock.advance(60);
    let second = world.accounts.sessions.refresh(&first.refresh_token, &context()).await.unwrap();
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_eq!(
        (second.session_id.as_str(), second.user.id.as_str()),
        (&*first.session_id, &*user.id)
    );
    assert!(!second.access_token.is_empty());

    let spent =
        world.store.stored_refresh_token(&world.tokens.refresh_token_digest(&first.refresh_token));
    assert_eq!(spent.unwrap().rotated_at, Some(world.now()), "the presented token is spent");
    let successor =
        world.store.stored_refresh_token(&world.tokens.refresh_token_digest(&second.refresh_token));
    assert_eq!(successor.unwrap().rotated_at, None);
    assert_eq!(world.store.stored_session(&first.session_id).unwrap().last_used_at, world.now());

    // The successor is the one that works now, and it rotates in turn.
    let third = world.accounts.sessions.refresh(&second.refresh_token, &context()).await.unwrap();
    assert_ne!(third.refresh_token, second.refresh_token);
    assert!(reuse_revocations(&world).is_empty());
}

#[tokio::test]
async fn a_rotated_token_presented_again_revokes_the_whole_session() {
    let (world, user, first) = signed_in(WorldSettings::default()).await;
    let second = world.accounts.sessions.refresh(&first.refresh_token, &context()).await.unwrap();
    world.clock.advance(5);

    // Someone replays the spent token: refused, and the session is revoked as reuse.
    assert_invalid_grant(world.accounts.sessions.refresh(&first.refresh_token, &context()).await);
    let session = world.store.stored_session(&first.session_id).unwrap();
    assert_eq!(session.revoked_at, Some(world.now()));
    assert_eq!(session.revoked_reason.as_deref(), Some(RevokeReason::RefreshTokenReuse.as_str()));
    let events = reuse_revocations(&world);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        (events[0].target_type.as_deref(), events[0].target_id.as_deref()),
        (Some("session"), Some(first.session_id.as_str()))
    );
    assert_eq!(events[0].metadata["user_id"], user.id);

    // The newest token of the family dies with it, and so do its access tokens.
    assert_invalid_grant(world.accounts.sessions.refresh(&second.refresh_token, &context()).await);
    let bearer = world.accounts.sessions.authenticate(&second.access_token).await;
    assert!(matches!(bearer, Err(DomainError::InvalidToken)), "{bearer:?}");
}

#[tokio::test]
async fn losing_a_concurrent_rotation_revokes_the_session() {
    let (world, _, first) = signed_in(WorldSettings::default()).await;
    // Another request rotates the same token between our read and our write.
    world.store.lose_next_rotation();
    assert_invalid_grant(world.accounts.sessions.refresh(&first.refresh_token, &context()).await);
    let session = world.store.stored_session(&first.session_id).unwrap();
    assert_eq!(session.revoked_reason.as_deref(), Some("refresh_token_reuse"));
    assert_eq!(reuse_revocations(&world).len(), 1);
}

#[tokio::test]
async fn a_token_of_another_client_is_refused_without_revoking() {
    let (world, user, first_party) = signed_in(WorldSettings::default()).await;
    let sessions = &world.accounts.sessions;
    let context = context();

    // A first-party token presented at the token endpoint by a client.
    let result =
        sessions.rotate_refresh_token(&first_party.refresh_token, Some("tv"), None, None, &context);
    assert_invalid_grant(result.await);
    // A client's token presented to the first-party refresh, or by another client.
    let (client_session_id, client_token) = client_session(&world, &user, "tv");
    assert_invalid_grant(sessions.refresh(&client_token, &context).await);
    assert_invalid_grant(
        sessions.rotate_refresh_token(&client_token, Some("web"), None, None, &context).await,
    );

    // Nothing was spent or revoked: each token still works for its owner.
    assert!(reuse_revocations(&world).is_empty());
    for session_id in [&first_party.session_id, &client_session_id] {
        assert!(world.store.stored_session(session_id).unwrap().is_active(world.now()));
    }
    let refreshed = sessions.refresh(&first_party.refresh_token, &context).await.unwrap();
    let (session, _, _) = sessions
        .rotate_refresh_token(&client_token, Some("tv"), None, None, &context)
        .await
        .unwrap();
    assert_eq!(session.id, client_session_id);

    // Even a spent token, presented by the wrong client, is not evidence against the family.
    let result =
        sessions.rotate_refresh_token(&first_party.refresh_token, Some("tv"), None, None, &context);
    assert_invalid_grant(result.await);
    assert!(world.store.stored_session(&refreshed.session_id).unwrap().is_active(world.now()));
    assert!(reuse_revocations(&world).is_empty());
}

#[tokio::test]
async fn an_expired_refresh_token_is_refused_without_revoking() {
    let mut settings = WorldSettings::default();
    settings.tokens.refresh_token_ttl_seconds = 3600;
    let (world, _, first) = signed_in(settings).await;
    world.clock.advance(3599);
    // Each refresh slides the window: the successor lives an hour from now.
    let second = world.accounts.sessions.refresh(&first.refresh_token, &context()).await.unwrap();
    world.clock.advance(3600);
    assert_invalid_grant(world.accounts.sessions.refresh(&second.refresh_token, &context()).await);
    assert!(world.store.stored_session(&first.session_id).unwrap().revoked_at.is_none());
    assert!(reuse_revocations(&world).is_empty());
}

#[tokio::test]
async fn refreshing_never_extends_a_session_past_its_lifetime() {
    let mut settings = WorldSettings::default();
    settings.tokens.refresh_token_ttl_seconds = 3600;
    settings.tokens.session_max_lifetime_seconds = 5000;
    let (world, _, first) = signed_in(settings).await;
    let started = world.now();
    world.clock.advance(3000);
    let second = world.accounts.sessions.refresh(&first.refresh_token, &context()).await.unwrap();
    let stored =
        world.store.stored_refresh_token(&world.tokens.refresh_token_digest(&second.refresh_token));
    assert_eq!(stored.unwrap().expires_at, started + 5000, "capped at the session's end");
    world.clock.set(started + 4999);
    let third = world.accounts.sessions.refresh(&second.refresh_token, &context()).await.unwrap();
    world.clock.set(started + 5000);
    assert_invalid_grant(world.accounts.sessions.refresh(&third.refresh_token, &context()).await);
}

#[tokio::test]
async fn a_revoked_session_refuses_its_refresh_token() {
    let (world, _, tokens) = signed_in(WorldSettings::default()).await;
    let principal = world.principal(&tokens.session_id).await;
    world.accounts.sessions.sign_out(&principal, &context()).await.unwrap();
    assert_invalid_grant(world.accounts.sessions.refresh(&tokens.refresh_token, &context()).await);
    // Refused as ended, not treated as reuse: the reason stays the user's sign-out.
    let session = world.store.stored_session(&tokens.session_id).unwrap();
    assert_eq!(session.revoked_reason.as_deref(), Some("signed_out"));
    assert!(reuse_revocations(&world).is_empty());
}

#[tokio::test]
async fn a_suspended_user_cannot_refresh() {
    let (world, user, tokens) = signed_in(WorldSettings::default()).await;
    let now = world.now();
    world.store.change_user(&user.id, |user| user.suspended_at = Some(now));
    assert_invalid_grant(world.accounts.sessions.refresh(&tokens.refresh_token, &context()).await);
    // The suspension alone refused it: lifted, the same token works (it was not spent).
    world.store.change_user(&user.id, |user| user.suspended_at = None);
    world.accounts.sessions.refresh(&tokens.refresh_token, &context()).await.unwrap();
}

#[tokio::test]
async fn malformed_and_unknown_refresh_tokens_are_refused() {
    let (world, _, tokens) = signed_in(WorldSettings::default()).await;
    let unknown = world.tokens.new_refresh_token().0;
    let too_long = format!("{}x", tokens.refresh_token).repeat(2);
    for garbage in ["", "ghr_", "not-a-token", &unknown, &too_long] {
        assert_invalid_grant(world.accounts.sessions.refresh(garbage, &context()).await);
    }
    assert!(world.store.stored_session(&tokens.session_id).unwrap().revoked_at.is_none());
}

#[tokio::test]
async fn refresh_tokens_of_the_old_format_keep_working_and_rotate_into_the_new_one() {
    use crate::tokens::REFRESH_TOKEN;
    let (world, _, tokens) = signed_in(WorldSettings::default()).await;
    // A refresh token as the previous release issued it: `ghr_` + 43 base64url characters,
    // stored as its keyed digest.
    let legacy = format!("ghr_{}", gatehouse_crypto::random_token());
    let now = world.now();
    let current = world.tokens.refresh_token_digest(&tokens.refresh_token);
    let legacy_digest = world.tokens.refresh_token_digest(&legacy);
    let rotation = RefreshRotation {
        presented: &current,
        successor: &legacy_digest,
        now,
        ttl_seconds: 3600,
        touch_if_used_before: now,
        client_id: None,
        dpop_jkt: None,
    };
    let outcome = world.store.rotate_refresh_token(&rotation).await.unwrap().unwrap();
    assert!(outcome.rotated);
    let refreshed = world.accounts.sessions.refresh(&legacy, &context()).await.unwrap();
    assert!(REFRESH_TOKEN.is_current(&refreshed.refresh_token), "{}", refreshed.refresh_token);
    assert!(refreshed.refresh_token.starts_with("gtr_"));
}
