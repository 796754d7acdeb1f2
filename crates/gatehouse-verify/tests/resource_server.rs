//! The verifier as a resource server uses it: opaque API keys through introspection (cached,
//! checked, credentials sent as RFC 6749 wants), and an axum router behind `VerifyLayer` or
//! the extractors, answering RFC 6750 challenges with problem+json bodies.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::routing::get;
use axum::{Extension, Router};
use gatehouse_verify::{
    Claims, Forbidden, ProtectedResource, TokenKind, VerifiedToken, Verifier, VerifyError,
    VerifyLayer,
};
use serde_json::{Value, json};
use support::{AUDIENCE, CLIENT_ID, CLIENT_SECRET, TestIssuer, TestKey, now};
use tower::ServiceExt as _;

/// What Gatehouse answers for a live personal API key.
fn api_key_answer() -> Value {
    json!({ "active": true, "token_type": "api_key", "scope": "orders:read orders:write",
        "sub": "usr_1", "org_id": null, "exp": null, "iat": now() - 60, "api_key_id": "key_1" })
}

#[tokio::test]
async fn api_keys_are_introspected_as_a_confidential_client_and_answers_cached() {
    let key = TestKey::es256("k1");
    let issuer = TestIssuer::start(&[&key]).await;
    issuer.answer_introspection("gtk_live", api_key_answer());
    let verifier = issuer.verifier().introspection(CLIENT_ID, CLIENT_SECRET).build().unwrap();

    let verified = verifier.verify_token("gtk_live").await.unwrap();
    assert_eq!(verified.kind, TokenKind::Introspected);
    assert_eq!(verified.sub, "usr_1");
    assert!(verified.has_scope("orders:write") && !verified.has_scope("admin"));
    assert_eq!(verified.extra["token_type"], "api_key");
    assert!(!verified.extra.contains_key("active"));
    assert_eq!((verified.org_id.as_deref(), verified.exp), (None, None));
    assert_eq!(verifier.verify("gtk_live").await.unwrap().sub, "usr_1");
    assert_eq!(issuer.introspections(), 1, "the second answer came from the cache");

    // Unknown keys are inactive, and that answer is cached too.
    assert_eq!(verifier.verify("gtk_unknown").await, Err(VerifyError::Inactive));
    assert_eq!(verifier.verify("gtk_unknown").await, Err(VerifyError::Inactive));
    assert_eq!(issuer.introspections(), 2);

    // JWTs never go to the introspection endpoint.
    assert!(verifier.verify(&key.sign(&issuer.claims())).await.is_ok());
    assert_eq!(issuer.introspections(), 2);
}

#[tokio::test]
async fn introspection_answers_get_the_claim_checks_and_revocations_show_without_a_cache() {
    let issuer = TestIssuer::start(&[&TestKey::es256("k1")]).await;
    let verifier = issuer
        .verifier()
        .introspection(CLIENT_ID, CLIENT_SECRET)
        .introspection_cache(Duration::ZERO, 100)
        .build()
        .unwrap();
    let mut answer = api_key_answer();
    let check = |changes: Value, expected: Result<(), VerifyError>| {
        let mut answer = answer.clone();
        for (name, value) in changes.as_object().unwrap() {
            answer[name] = value.clone();
        }
        issuer.answer_introspection("gtk_checked", answer);
        let verifier = verifier.clone();
        async move {
            assert_eq!(verifier.verify("gtk_checked").await.map(|_| ()), expected, "{changes}");
        }
    };
    check(json!({}), Ok(())).await;
    check(json!({ "exp": now() - 120 }), Err(VerifyError::Expired)).await;
    check(json!({ "exp": now() + 120 }), Ok(())).await;
    check(json!({ "iss": "https://evil.example" }), Err(VerifyError::WrongIssuer)).await;
    check(json!({ "iss": issuer.url }), Ok(())).await;
    check(json!({ "aud": "https://evil.example" }), Err(VerifyError::WrongAudience)).await;
    check(json!({ "aud": [AUDIENCE] }), Ok(())).await;
    check(json!({ "active": "true" }), Err(VerifyError::Inactive)).await;
    let before = issuer.introspections();

    // Revoked at the issuer: the next verification knows (no cache here).
    answer["active"] = json!(false);
    issuer.answer_introspection("gtk_checked", answer);
    assert_eq!(verifier.verify("gtk_checked").await, Err(VerifyError::Inactive));
    assert_eq!(issuer.introspections(), before + 1);

    // An active answer the crate cannot read is the issuer's fault.
    issuer.answer_introspection("gtk_odd", json!({ "active": true, "scope": "x" }));
    assert!(matches!(verifier.verify("gtk_odd").await, Err(VerifyError::IssuerUnavailable(_))));
}

#[tokio::test]
async fn opaque_tokens_need_introspection_and_the_right_credentials() {
    let issuer = TestIssuer::start(&[&TestKey::es256("k1")]).await;
    issuer.answer_introspection("gtk_live", api_key_answer());
    let without = issuer.verifier().build().unwrap();
    assert_eq!(without.verify("gtk_live").await, Err(VerifyError::OpaqueTokenNotAccepted));
    assert_eq!(issuer.introspections(), 0);

    let wrong = issuer.verifier().introspection(CLIENT_ID, "gtc_wrong").build().unwrap();
    let error = wrong.verify("gtk_live").await.unwrap_err();
    assert!(
        matches!(&error, VerifyError::IssuerUnavailable(reason) if reason.contains("401")),
        "{error:?}"
    );

    // An explicit endpoint skips discovery.
    let explicit = issuer
        .verifier()
        .introspection(CLIENT_ID, CLIENT_SECRET)
        .introspection_endpoint(format!("{}/introspect", issuer.url))
        .build()
        .unwrap();
    assert!(explicit.verify("gtk_live").await.is_ok());
    assert_eq!(issuer.discovery_fetches(), 1, "only the wrong-credentials verifier read it");
}

async fn me(token: VerifiedToken) -> String {
    format!("{} {:?}", token.sub, token.kind)
}

async fn write_orders(claims: Claims) -> Result<&'static str, Forbidden> {
    claims.require_scope("orders:write")?;
    Ok("written")
}

fn router(verifier: Verifier) -> Router {
    Router::new()
        .route("/me", get(me))
        .route("/orders", get(write_orders))
        .layer(VerifyLayer::new(verifier))
}

/// Status, headers and body (JSON when it is JSON, else the text as a string).
async fn call(
    router: &Router,
    path: &str,
    authorization: Option<&str>,
) -> (StatusCode, axum::http::HeaderMap, Value) {
    let mut request = Request::get(path);
    if let Some(value) = authorization {
        request = request.header(header::AUTHORIZATION, value);
    }
    let response = router.clone().oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (parts.status, parts.headers, body)
}

fn challenge(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers.get(header::WWW_AUTHENTICATE).map(|value| value.to_str().unwrap())
}

#[tokio::test]
async fn the_layer_answers_rfc_6750_challenges_with_problem_bodies() {
    let key = TestKey::es256("k1");
    let issuer = TestIssuer::start(&[&key]).await;
    issuer.answer_introspection("gtk_live", api_key_answer());
    let verifier = issuer.verifier().introspection(CLIENT_ID, CLIENT_SECRET).build().unwrap();
    let app = router(verifier);
    let token = key.sign(&issuer.claims());

    let (status, _, body) = call(&app, "/me", Some(&format!("Bearer {token}"))).await;
    assert_eq!((status, body), (StatusCode::OK, json!("usr_1 Jwt")));
    let (status, _, body) = call(&app, "/me", Some("bearer gtk_live")).await;
    assert_eq!((status, body), (StatusCode::OK, json!("usr_1 Introspected")));

    // No credentials: a bare challenge (RFC 6750 section 3.1).
    let (status, headers, body) = call(&app, "/me", None).await;
    assert_eq!((status, challenge(&headers)), (StatusCode::UNAUTHORIZED, Some("Bearer")));
    assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
    assert_eq!(body["code"], "invalid_token");
    assert_eq!(body["status"], 401);
    assert_eq!(body["type"], "urn:gatehouse:problem:invalid_token");

    // A bad token: `error="invalid_token"`, and the body never echoes the token.
    let expired = key.sign(&issuer.claims_with(json!({ "exp": now() - 3600 })));
    for bad in [expired.as_str(), "gtk_revoked", "a.b.c"] {
        let (status, headers, body) = call(&app, "/me", Some(&format!("Bearer {bad}"))).await;
        assert_eq!(
            (status, challenge(&headers)),
            (StatusCode::UNAUTHORIZED, Some("Bearer error=\"invalid_token\"")),
            "{bad}"
        );
        assert_eq!(body["code"], "invalid_token");
        assert!(!body.to_string().contains(bad), "{body}");
    }
    let (_, _, body) = call(&app, "/me", Some(&format!("Bearer {expired}"))).await;
    assert_eq!(body["detail"], "token expired");

    // Valid, but without the scope: 403 naming the scope.
    let (status, headers, body) = call(&app, "/orders", Some(&format!("Bearer {token}"))).await;
    assert_eq!(
        (status, challenge(&headers)),
        (
            StatusCode::FORBIDDEN,
            Some("Bearer error=\"insufficient_scope\", scope=\"orders:write\"")
        )
    );
    assert_eq!(
        (body["code"].as_str(), body["status"].as_u64()),
        (Some("insufficient_scope"), Some(403))
    );
    let (status, _, body) = call(&app, "/orders", Some("Bearer gtk_live")).await;
    assert_eq!((status, body), (StatusCode::OK, json!("written")));
}

#[tokio::test]
async fn an_unreachable_issuer_is_a_503_not_a_401() {
    let key = TestKey::es256("k1");
    let issuer = TestIssuer::start(&[&key]).await;
    issuer.fail_jwks_with(502);
    let app = router(issuer.verifier().build().unwrap());
    let token = key.sign(&issuer.claims());
    let (status, headers, body) = call(&app, "/me", Some(&format!("Bearer {token}"))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(challenge(&headers), None);
    assert_eq!(body["code"], "issuer_unavailable");
    assert!(!body.to_string().contains(&issuer.url), "internal detail stays in the log: {body}");
}

#[tokio::test]
async fn extractors_verify_by_themselves_with_a_verifier_extension() {
    let key = TestKey::es256("k1");
    let issuer = TestIssuer::start(&[&key]).await;
    let verifier = issuer.verifier().build().unwrap();
    let app = Router::new()
        .route("/me", get(me))
        .route("/orders", get(write_orders))
        .layer(Extension(verifier));
    let token = key.sign(&issuer.claims_with(json!({ "scope": "orders:write" })));
    let (status, _, body) = call(&app, "/me", Some(&format!("Bearer {token}"))).await;
    assert_eq!((status, body), (StatusCode::OK, json!("usr_1 Jwt")));
    let (status, _, body) = call(&app, "/orders", Some(&format!("Bearer {token}"))).await;
    assert_eq!((status, body), (StatusCode::OK, json!("written")));
    let (status, headers, _) = call(&app, "/orders", None).await;
    assert_eq!((status, challenge(&headers)), (StatusCode::UNAUTHORIZED, Some("Bearer")));

    // Neither the layer nor the extension: a configuration mistake, answered 500.
    let bare = Router::new().route("/me", get(me));
    let (status, _, body) = call(&bare, "/me", Some(&format!("Bearer {token}"))).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::INTERNAL_SERVER_ERROR, Some("internal_error"))
    );
}

/// RFC 9728: the resource publishes its metadata (its authorization server is the verifier's
/// issuer) at the well-known path built from its identifier, and the layer's 401 challenges
/// point there with `resource_metadata`, so a client that meets one finds where to get a token.
#[tokio::test]
async fn the_protected_resource_metadata_is_served_and_named_in_401_challenges() {
    let key = TestKey::es256("k1");
    let issuer = TestIssuer::start(&[&key]).await;
    let verifier = issuer.verifier().build().unwrap();
    let resource = ProtectedResource::new("https://api.example.com/mcp", &verifier)
        .unwrap()
        .scopes(["orders:read", "orders:write"])
        .name("Orders");
    let expected_url = "https://api.example.com/.well-known/oauth-protected-resource/mcp";
    assert_eq!(resource.metadata_url(), expected_url);
    let app = Router::new()
        .route("/mcp/me", get(me))
        .layer(VerifyLayer::new(verifier.clone()).with_resource_metadata(&resource))
        .merge(resource.router());

    let (status, headers, metadata) =
        call(&app, "/.well-known/oauth-protected-resource/mcp", None).await;
    assert_eq!(status, StatusCode::OK, "the metadata is public");
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(metadata["resource"], "https://api.example.com/mcp");
    assert_eq!(metadata["authorization_servers"], json!([verifier.issuer()]));
    assert_eq!(metadata["scopes_supported"], json!(["orders:read", "orders:write"]));
    assert_eq!(metadata["bearer_methods_supported"], json!(["header"]));
    assert_eq!(metadata["resource_name"], "Orders");

    let (status, headers, _) = call(&app, "/mcp/me", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenge(&headers),
        Some(format!("Bearer resource_metadata=\"{expected_url}\"").as_str())
    );
    let (_, headers, _) = call(&app, "/mcp/me", Some("Bearer a.b.c")).await;
    assert_eq!(
        challenge(&headers),
        Some(
            format!("Bearer error=\"invalid_token\", resource_metadata=\"{expected_url}\"")
                .as_str()
        )
    );
    let token = key.sign(&issuer.claims());
    let (status, _, body) = call(&app, "/mcp/me", Some(&format!("Bearer {token}"))).await;
    assert_eq!((status, body), (StatusCode::OK, json!("usr_1 Jwt")));

    // Identifiers RFC 9728 does not allow are refused when building.
    for bad in ["not a url", "ftp://api.example.com", "https://api.example.com/#frag"] {
        assert!(ProtectedResource::new(bad, &verifier).is_err(), "{bad}");
    }
    // A resource at the root: the well-known path alone.
    let root = ProtectedResource::new("https://api.example.com/", &verifier).unwrap();
    assert_eq!(root.metadata_url(), "https://api.example.com/.well-known/oauth-protected-resource");
}
