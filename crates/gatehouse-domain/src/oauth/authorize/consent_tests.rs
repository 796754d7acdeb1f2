//! Tests of the authorization endpoint's decisions for a signed-in user: when consent is asked
//! (`needs_consent`), and when a fresh login is (`needs_fresh_login`, `prompt=login`).

use super::*;
use crate::oauth::client::GRANT_AUTHORIZATION_CODE;
use crate::testing::{TestWorld, context};

const SCOPES: &[&str] = &["openid", "profile", "email", "offline_access"];

/// A valid request of the public test client, with PKCE, the given scope and extras.
fn request(
    client_id: &str,
    scope: &str,
    prompt: Option<&str>,
    max_age: Option<&str>,
) -> AuthorizationRequest {
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    AuthorizationRequest {
        client_id: Some(client_id.into()),
        redirect_uri: Some("https://app.example.test/callback".into()),
        response_type: Some("code".into()),
        scope: Some(scope.into()),
        state: Some("xyz".into()),
        code_challenge: Some(gatehouse_crypto::pkce_s256(verifier)),
        code_challenge_method: Some("S256".into()),
        prompt: prompt.map(str::to_owned),
        max_age: max_age.map(str::to_owned),
        ..AuthorizationRequest::default()
    }
}

async fn validate(world: &TestWorld, request: &AuthorizationRequest) -> ValidatedAuthorization {
    world.oauth.validate_authorization(request).await.unwrap()
}

/// Whether `user_id` would be asked to consent to `scope` for `client_id` (with `prompt`).
async fn asked(
    world: &TestWorld,
    client_id: &str,
    user_id: &str,
    scope: &str,
    prompt: Option<&str>,
) -> bool {
    let validated = validate(world, &request(client_id, scope, prompt, None)).await;
    world.oauth.needs_consent(&validated, user_id).await.unwrap()
}

/// Whether a request of the test client with `max_age` needs a fresh login from `principal`.
async fn needs_fresh(world: &TestWorld, principal: &Principal, max_age: Option<&str>) -> bool {
    let validated = validate(world, &request("app", "openid", None, max_age)).await;
    world.oauth.needs_fresh_login(&validated, principal)
}

async fn grant(world: &TestWorld, client_id: &str, user_id: &str, scope: &str) {
    let validated = validate(world, &request(client_id, scope, None, None)).await;
    world.oauth.grant_consent(&validated, user_id, &context()).await.unwrap();
}

#[tokio::test]
async fn a_skip_consent_client_is_not_asked_for_unless_prompt_consent() {
    let world = TestWorld::new().await;
    world.seed_client("first-party", &[GRANT_AUTHORIZATION_CODE], SCOPES, true);
    let user = world.seed_user("ada@example.test").await;
    assert!(!asked(&world, "first-party", &user.id, "openid profile email", None).await);
    assert!(asked(&world, "first-party", &user.id, "openid", Some("consent")).await);
}

#[tokio::test]
async fn a_saved_consent_covers_the_same_and_narrower_scopes_only() {
    let world = TestWorld::new().await;
    world.seed_client("app", &[GRANT_AUTHORIZATION_CODE], SCOPES, false);
    let user = world.seed_user("ada@example.test").await;
    assert!(asked(&world, "app", &user.id, "openid email", None).await, "never granted");

    grant(&world, "app", &user.id, "openid email").await;
    let granted = world.store.events("oauth.consent_granted");
    assert_eq!(granted[0].metadata["scopes"], serde_json::json!(["openid", "email"]));
    for same_or_narrower in ["openid email", "email openid", "openid", "email"] {
        assert!(
            !asked(&world, "app", &user.id, same_or_narrower, None).await,
            "{same_or_narrower}"
        );
    }
    // A scope never granted asks again; so does prompt=consent, even for granted scopes.
    assert!(asked(&world, "app", &user.id, "openid profile", None).await);
    assert!(asked(&world, "app", &user.id, "openid", Some("consent")).await);

    // A new grant adds to the earlier one.
    grant(&world, "app", &user.id, "openid profile").await;
    assert!(!asked(&world, "app", &user.id, "openid email profile", None).await);
    assert!(asked(&world, "app", &user.id, "openid offline_access", None).await);
}

#[tokio::test]
async fn a_consent_belongs_to_one_user_and_one_client() {
    let world = TestWorld::new().await;
    world.seed_client("app", &[GRANT_AUTHORIZATION_CODE], SCOPES, false);
    world.seed_client("other", &[GRANT_AUTHORIZATION_CODE], SCOPES, false);
    let ada = world.seed_user("ada@example.test").await;
    let bob = world.seed_user("bob@example.test").await;
    grant(&world, "app", &ada.id, "openid").await;
    assert!(!asked(&world, "app", &ada.id, "openid", None).await);
    assert!(asked(&world, "app", &bob.id, "openid", None).await);
    assert!(asked(&world, "other", &ada.id, "openid", None).await);
}

#[tokio::test]
async fn max_age_asks_for_a_fresh_login_once_the_authentication_is_that_old() {
    let world = TestWorld::new().await;
    world.seed_client("app", &[GRANT_AUTHORIZATION_CODE], SCOPES, true);
    let user = world.seed_user("ada@example.test").await;
    let tokens = world.start_session(&user).await;
    let principal = world.principal(&tokens.session_id).await;
    // `max_age=0` means "always"; so the boundary counts as too old.
    assert!(needs_fresh(&world, &principal, Some("0")).await);
    world.clock.advance(299);
    assert!(!needs_fresh(&world, &principal, Some("300")).await);
    world.clock.advance(1);
    assert!(needs_fresh(&world, &principal, Some("300")).await);
    // Without max_age, an old authentication is fine.
    world.clock.advance(30 * 24 * 3600);
    assert!(!needs_fresh(&world, &principal, None).await);
    // A negative or non-numeric max_age is refused at the client's redirect URI.
    for bad in ["-1", "soon"] {
        let bad_request = request("app", "openid", None, Some(bad));
        let rejection = world.oauth.validate_authorization(&bad_request).await;
        assert!(matches!(rejection, Err(AuthorizeRejection::Redirect(_))), "{bad}");
    }
}

#[tokio::test]
async fn prompt_login_is_reported_apart_from_max_age() {
    let world = TestWorld::new().await;
    world.seed_client("app", &[GRANT_AUTHORIZATION_CODE], SCOPES, true);
    let user = world.seed_user("ada@example.test").await;
    let tokens = world.start_session(&user).await;
    let principal = world.principal(&tokens.session_id).await;
    // The page asks for the password again on `prompt_login`; the session's age is not the
    // reason, so `needs_fresh_login` stays false.
    let validated = validate(&world, &request("app", "openid", Some("login consent"), None)).await;
    assert!(validated.prompt_login && validated.prompt_consent && !validated.prompt_none);
    assert!(!world.oauth.needs_fresh_login(&validated, &principal));
    let validated = validate(&world, &request("app", "openid", None, None)).await;
    assert!(!validated.prompt_login);
    // `none` cannot be combined with `login`.
    let combined = request("app", "openid", Some("none login"), None);
    let rejection = world.oauth.validate_authorization(&combined).await;
    assert!(matches!(rejection, Err(AuthorizeRejection::Redirect(_))));
}
