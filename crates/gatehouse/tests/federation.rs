//! Sign-in through an upstream OpenID provider, on both backends: the upstream is a second
//! Gatehouse (its own database, its own hosted login), reached through discovery, its JWKS and
//! its token endpoint, as any OpenID provider would be. A browser (two cookie jars: one per
//! server) goes `/sso/corp` → the upstream's login → the callback → signed in here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use gatehouse_store::backend_tests;
use gatehouse_store::testing::TestDatabase;
use reqwest::{Method, StatusCode};
use serde_json::json;
use support::STRONG_PASSWORD;
use support::oauth_browser::{Browser, query};
use support::upstream_pair::pair;

backend_tests!(
    signing_in_through_an_upstream_provider_creates_then_reuses_the_account,
    a_tampered_or_foreign_state_is_refused,
    an_unverified_address_of_an_existing_account_is_not_linked,
    a_trusted_verified_address_links_the_existing_account,
    linking_and_unlinking_from_the_account,
);

async fn signing_in_through_an_upstream_provider_creates_then_reuses_the_account(
    test: TestDatabase,
) {
    let pair = pair(&test, true).await;
    pair.upstream_user("ada@example.com", true).await;
    let (status, providers) = pair.app.get_json("/v1/auth/providers").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        providers,
        json!({ "data": [{ "id": "corp", "name": "Corp SSO", "kind": "oidc" }], "next_cursor": null })
    );

    let mut browser = Browser::new(&pair.app.base_url);
    let mut upstream = Browser::new(&pair.upstream.base_url);
    let landed = pair
        .through_upstream(
            &mut browser,
            &mut upstream,
            "/sso/corp?return_to=/account",
            "ada@example.com",
        )
        .await;
    assert_eq!(landed.status, StatusCode::SEE_OTHER, "{}", landed.body);
    assert_eq!(landed.location.as_deref(), Some("/account"));
    let account = browser.get("/account").await;
    assert_eq!(account.status, StatusCode::OK);
    assert!(account.body.contains("ada@example.com"), "{}", account.body);

    // A new account, its address verified by the trusted upstream, linked to the identity.
    let users = pair.users_named("ada@example.com").await;
    assert_eq!(users.len(), 1, "{users:?}");
    assert_eq!(users[0]["email_verified"], true);
    let user_id = users[0]["id"].as_str().unwrap().to_owned();
    let created = pair.actions("user.created").await;
    assert_eq!(created[0]["metadata"]["method"], "sso", "{created:?}");
    assert_eq!(created[0]["metadata"]["provider_id"], "corp");
    let linked = pair.actions("identity.linked").await;
    assert_eq!(linked.len(), 1);
    assert_eq!(linked[0]["actor_id"], user_id.as_str());
    let sessions = pair.actions("session.created").await;
    assert_eq!(sessions[0]["metadata"]["method"], "sso", "{sessions:?}");

    // The identity is this account's only way to sign in: it cannot be unlinked.
    let identities =
        gatehouse_domain::federation::IdentityStore::identities_of(&pair.app.database, &user_id)
            .await
            .unwrap();
    assert_eq!(identities.len(), 1);
    let unlinked = gatehouse_domain::federation::IdentityStore::unlink_identity(
        &pair.app.database,
        &user_id,
        &identities[0].id,
        &[],
    )
    .await
    .unwrap();
    assert!(!unlinked, "the last way to sign in was unlinked");

    // Again, from another browser: the same account, found by the identity.
    let mut browser = Browser::new(&pair.app.base_url);
    let mut upstream = Browser::new(&pair.upstream.base_url);
    let landed =
        pair.through_upstream(&mut browser, &mut upstream, "/sso/corp", "ada@example.com").await;
    assert_eq!(landed.status, StatusCode::SEE_OTHER, "{}", landed.body);
    assert_eq!(pair.users_named("ada@example.com").await.len(), 1);
    let used = pair.actions("identity.used").await;
    assert_eq!(used.len(), 1, "{used:?}");
    assert_eq!(used[0]["actor_id"], user_id.as_str());

    // Suspended by an admin: a provider sign-in is refused with a page saying so.
    let (status, suspended) = pair
        .app
        .post(&format!("/v1/admin/users/{user_id}/suspend"), Some(&pair.admin), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{suspended}");
    let mut browser = Browser::new(&pair.app.base_url);
    let mut upstream = Browser::new(&pair.upstream.base_url);
    let refused =
        pair.through_upstream(&mut browser, &mut upstream, "/sso/corp", "ada@example.com").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert!(refused.body.contains("suspended"), "{}", refused.body);
    pair.app.stop().await;
    pair.upstream.stop().await;
}

async fn a_tampered_or_foreign_state_is_refused(test: TestDatabase) {
    let pair = pair(&test, true).await;
    pair.upstream_user("eve@example.com", true).await;
    let mut browser = Browser::new(&pair.app.base_url);
    let mut upstream = Browser::new(&pair.upstream.base_url);
    let started = browser.get("/sso/corp").await;
    let authorize = started.location.unwrap();
    let page = upstream.get(&authorize).await;
    let login = upstream.follow(page).await;
    let back = upstream.sign_in(&login, "eve@example.com", STRONG_PASSWORD).await;
    let callback = back.location.unwrap();
    let parameters = query(&callback);

    // The state changed: refused, with a page (not a redirect), and the flow is spent.
    let tampered =
        format!("/sso/corp/callback?code={}&state={}x", parameters["code"], parameters["state"]);
    let refused = browser.get(&tampered).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert_eq!(refused.location, None);
    assert!(refused.body.contains("did not work"), "{}", refused.body);
    // The right state from another browser (no flow cookie): refused too.
    let mut other = Browser::new(&pair.app.base_url);
    let foreign = other.get(&callback).await;
    assert_eq!(foreign.status, StatusCode::BAD_REQUEST, "{}", foreign.body);
    // And the first browser's cookie is gone: the genuine callback no longer works there.
    let spent = browser.get(&callback).await;
    assert_eq!(spent.status, StatusCode::BAD_REQUEST, "{}", spent.body);
    // An upstream refusal is a page too.
    let started = browser.get("/sso/corp").await;
    let state = query(&started.location.unwrap())["state"].clone();
    let denied =
        browser.get(&format!("/sso/corp/callback?error=access_denied&state={state}")).await;
    assert_eq!(denied.status, StatusCode::BAD_REQUEST, "{}", denied.body);
    assert!(pair.users_named("eve@example.com").await.is_empty());
    // An unknown provider.
    let unknown = browser.get("/sso/nobody").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    pair.app.stop().await;
    pair.upstream.stop().await;
}

async fn an_unverified_address_of_an_existing_account_is_not_linked(test: TestDatabase) {
    let pair = pair(&test, true).await;
    pair.app.sign_up("bob@example.com", STRONG_PASSWORD).await;
    // The upstream does not vouch for the address.
    pair.upstream_user("bob@example.com", false).await;
    let mut browser = Browser::new(&pair.app.base_url);
    let mut upstream = Browser::new(&pair.upstream.base_url);
    let refused =
        pair.through_upstream(&mut browser, &mut upstream, "/sso/corp", "bob@example.com").await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    assert!(refused.body.contains("already have an account"), "{}", refused.body);
    assert!(pair.actions("identity.linked").await.is_empty());
    assert_eq!(pair.users_named("bob@example.com").await.len(), 1);
    pair.app.stop().await;
    pair.upstream.stop().await;
}

async fn a_trusted_verified_address_links_the_existing_account(test: TestDatabase) {
    let pair = pair(&test, true).await;
    let signed_up = pair.app.sign_up("cy@example.com", STRONG_PASSWORD).await;
    let user_id = signed_up["user"]["id"].as_str().unwrap().to_owned();
    pair.upstream_user("cy@example.com", true).await;
    let mut browser = Browser::new(&pair.app.base_url);
    let mut upstream = Browser::new(&pair.upstream.base_url);
    let landed =
        pair.through_upstream(&mut browser, &mut upstream, "/sso/corp", "cy@example.com").await;
    assert_eq!(landed.status, StatusCode::SEE_OTHER, "{}", landed.body);
    let linked = pair.actions("identity.linked").await;
    assert_eq!(linked.len(), 1);
    assert_eq!(linked[0]["actor_id"], user_id.as_str());
    assert_eq!(pair.users_named("cy@example.com").await.len(), 1);
    pair.app.stop().await;
    pair.upstream.stop().await;
}

async fn linking_and_unlinking_from_the_account(test: TestDatabase) {
    // Not trusted for addresses: linking is the way to join an existing account.
    let pair = pair(&test, false).await;
    let tokens = pair.app.sign_up("dee@example.com", STRONG_PASSWORD).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    pair.upstream_user("dee.work@example.com", false).await;

    let mut browser = Browser::new(&pair.app.base_url);
    let mut upstream = Browser::new(&pair.upstream.base_url);
    // Linking needs a signed-in browser: it is sent to sign in first.
    let first = browser.get("/sso/corp?link=1").await;
    assert_eq!(first.status, StatusCode::SEE_OTHER);
    assert!(first.location.as_deref().unwrap().starts_with("/login?"), "{:?}", first.location);
    let login = browser.follow(first).await;
    let signed_in = browser.sign_in(&login, "dee@example.com", STRONG_PASSWORD).await;
    // Back on /sso/corp?link=1, which now sends the browser upstream.
    let authorize = signed_in.location.expect("on to the upstream");
    assert!(authorize.starts_with(&pair.upstream.base_url), "{authorize}");
    let page = upstream.get(&authorize).await;
    let login = upstream.follow(page).await;
    let back = upstream.sign_in(&login, "dee.work@example.com", STRONG_PASSWORD).await;
    let landed = browser.get(&back.location.unwrap()).await;
    assert_eq!(landed.status, StatusCode::SEE_OTHER, "{}", landed.body);
    assert_eq!(landed.location.as_deref(), Some("/account"));

    let (status, identities) = pair.app.get_auth("/v1/me/identities", &access).await;
    assert_eq!(status, StatusCode::OK, "{identities}");
    let data = identities["data"].as_array().unwrap();
    assert_eq!(data.len(), 1, "{identities}");
    assert_eq!(data[0]["provider_id"], "corp");
    assert_eq!(data[0]["provider_name"], "Corp SSO");
    assert_eq!(data[0]["email"], "dee.work@example.com");
    let identity_id = data[0]["id"].as_str().unwrap().to_owned();
    // No second account was made for the upstream address.
    assert!(pair.users_named("dee.work@example.com").await.is_empty());

    let (status, _) = pair
        .app
        .send(Method::DELETE, &format!("/v1/me/identities/{identity_id}"), Some(&access), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, identities) = pair.app.get_auth("/v1/me/identities", &access).await;
    assert_eq!(identities["data"], json!([]));
    assert_eq!(pair.actions("identity.unlinked").await.len(), 1);
    let (status, _) = pair
        .app
        .send(Method::DELETE, &format!("/v1/me/identities/{identity_id}"), Some(&access), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    pair.app.stop().await;
    pair.upstream.stop().await;
}
