//! `gatehouse-verify` against the real server, on both backends: first-party, organization and
//! client_credentials tokens verify offline; after `POST /v1/admin/keys/rotate` the same
//! verifier accepts tokens of the new key (refresh on the unknown `kid`) and still those of
//! the old one; API keys verify through introspection, and stop once revoked.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use base64::Engine as _;
use gatehouse_domain::oauth::clients::NewClient;
use gatehouse_store::backend_tests;
use gatehouse_store::testing::TestDatabase;
use gatehouse_verify::{TokenKind, Verifier, VerifyError};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{STRONG_PASSWORD, TestApp};

backend_tests!(
    server_tokens_verify_offline_and_across_a_key_rotation,
    api_keys_verify_through_introspection,
);

/// The `kid` in a compact JWS's header.
fn kid_of(token: &str) -> String {
    let header = token.split('.').next().unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header).unwrap();
    serde_json::from_slice::<Value>(&bytes).unwrap()["kid"].as_str().unwrap().to_owned()
}

fn access_token(answer: &Value) -> String {
    answer["access_token"].as_str().unwrap().to_owned()
}

async fn server_tokens_verify_offline_and_across_a_key_rotation(test: TestDatabase) {
    let app = TestApp::spawn(&test).await;
    let admin = app.admin_key().await;
    // Gatehouse's first-party tokens carry `tokens.audience`, by default the issuer.
    let verifier = Verifier::builder(&app.base_url).audience(&app.base_url).build().unwrap();

    // A first-party token from sign-up.
    let signed_up = app.sign_up("ada@example.com", STRONG_PASSWORD).await;
    let first = access_token(&signed_up);
    let verified = verifier.verify_token(&first).await.unwrap();
    assert_eq!(verified.kind, TokenKind::Jwt);
    assert_eq!(verified.sub, signed_up["user"]["id"].as_str().unwrap());
    assert_eq!(verified.sid.as_deref(), signed_up["session_id"].as_str());
    assert_eq!(verified.iss.as_deref(), Some(app.base_url.as_str()));
    assert_eq!(verified.org_id, None);

    // Organization claims once an organization is active.
    let (status, organization) = app
        .post("/v1/organizations", Some(&first), json!({ "name": "Acme", "slug": "acme" }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{organization}");
    let organization_id = organization["id"].as_str().unwrap();
    let (status, switched) = app
        .post("/v1/me/organization", Some(&first), json!({ "organization_id": organization_id }))
        .await;
    assert_eq!(status, StatusCode::OK, "{switched}");
    let in_acme = verifier.verify(&access_token(&switched)).await.unwrap();
    assert!(in_acme.in_organization(organization_id));
    assert_eq!(in_acme.org_slug.as_deref(), Some("acme"));
    assert_eq!(in_acme.org_role.as_deref(), Some("owner"));
    assert!(in_acme.has_permission("members:manage") && !in_acme.has_permission("billing:pay"));
    assert_eq!(in_acme.require_permission(organization_id, "org:delete"), Ok(()));

    // A client_credentials token of an OAuth client.
    let (client_id, secret) = app
        .client(NewClient {
            name: "Billing".into(),
            grant_types: vec!["client_credentials".into()],
            scopes: vec!["orders:read".into()],
            ..NewClient::default()
        })
        .await;
    let (status, issued) = app
        .post_form(
            "/oauth2/token",
            Some((&client_id, &secret.unwrap())),
            &[("grant_type", "client_credentials"), ("scope", "orders:read")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{issued}");
    let service = verifier.verify(&access_token(&issued)).await.unwrap();
    assert_eq!(service.client_id.as_deref(), Some(client_id.as_str()));
    assert!(service.has_scope("orders:read") && !service.has_scope("orders:write"));

    // A resource server with another audience refuses the server's tokens.
    let elsewhere =
        Verifier::builder(&app.base_url).audience("https://other.example").build().unwrap();
    assert_eq!(elsewhere.verify(&first).await, Err(VerifyError::WrongAudience));

    // The signing key rotates. The next token names the new key: the verifier, which has
    // only the old one, fetches the set again and accepts it; the old token still verifies
    // because the server keeps publishing the retired key.
    let old_kid = kid_of(&first);
    let (status, rotated) =
        app.send(Method::POST, "/v1/admin/keys/rotate", Some(&admin), None).await;
    assert_eq!(status, StatusCode::CREATED, "{rotated}");
    let new_kid = rotated["kid"].as_str().unwrap();
    let (status, signed_in) = app.sign_in("ada@example.com", STRONG_PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{signed_in}");
    let after = access_token(&signed_in);
    assert_eq!(kid_of(&after), new_kid);
    assert_ne!(new_kid, old_kid);
    assert_eq!(verifier.verify(&after).await.unwrap().sub, verified.sub);
    assert_eq!(verifier.verify(&first).await.unwrap().sub, verified.sub);

    // A tampered token of the new key is refused.
    let mut parts: Vec<String> = after.split('.').map(str::to_owned).collect();
    let mut claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&parts[1]).unwrap(),
    )
    .unwrap();
    claims["sub"] = json!("usr_someone_else");
    parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims.to_string());
    assert_eq!(verifier.verify(&parts.join(".")).await, Err(VerifyError::BadSignature));
    app.stop().await;
}

async fn api_keys_verify_through_introspection(test: TestDatabase) {
    let app = TestApp::spawn(&test).await;
    let signed_up = app.sign_up("ada@example.com", STRONG_PASSWORD).await;
    let user_token = access_token(&signed_up);
    let (status, created) = app
        .post(
            "/v1/me/api-keys",
            Some(&user_token),
            json!({ "name": "orders", "scopes": ["orders:read"] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let api_key = created["key"].as_str().unwrap().to_owned();
    assert!(api_key.starts_with("gtk_"));
    // Introspection is for confidential clients: the resource server is one.
    let (client_id, secret) = app
        .client(NewClient {
            name: "Orders API".into(),
            grant_types: vec!["client_credentials".into()],
            ..NewClient::default()
        })
        .await;
    let secret = secret.unwrap();
    // No cache here, so the revocation below shows at once.
    let verifier = Verifier::builder(&app.base_url)
        .audience(&app.base_url)
        .introspection(&client_id, &secret)
        .introspection_cache(Duration::ZERO, 0)
        .build()
        .unwrap();

    let verified = verifier.verify_token(&api_key).await.unwrap();
    assert_eq!(verified.kind, TokenKind::Introspected);
    assert_eq!(verified.sub, signed_up["user"]["id"].as_str().unwrap());
    assert!(verified.has_scope("orders:read") && !verified.has_scope("orders:write"));
    assert_eq!(verified.extra["token_type"], "api_key");
    assert_eq!(verified.extra["api_key_id"], created["id"]);
    // The same verifier still checks JWTs offline.
    assert_eq!(verifier.verify(&user_token).await.unwrap().sub, verified.sub);

    // Revoked: inactive.
    let path = format!("/v1/me/api-keys/{}", created["id"].as_str().unwrap());
    let (status, _) = app.send(Method::DELETE, &path, Some(&user_token), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(verifier.verify(&api_key).await, Err(VerifyError::Inactive));
    assert_eq!(verifier.verify("gtk_made_up").await, Err(VerifyError::Inactive));

    // Wrong client credentials: the server refuses the introspection, which is not the
    // token's fault.
    let wrong = Verifier::builder(&app.base_url)
        .audience(&app.base_url)
        .introspection(&client_id, "gtc_wrong")
        .build()
        .unwrap();
    assert!(matches!(wrong.verify(&api_key).await, Err(VerifyError::IssuerUnavailable(_))));
    app.stop().await;
}
