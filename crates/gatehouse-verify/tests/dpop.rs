//! DPoP at the resource server (RFC 9449 §7): behind `VerifyLayer::with_dpop`, a DPoP-bound
//! token is accepted as `Authorization: DPoP` with a proof of its key for the request, and
//! refused as a bearer token, with another key's proof, a replayed proof, a proof for another
//! URL or method, without `ath` or with a stale `iat`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use gatehouse_verify::{Claims, VerifyLayer};
use serde_json::{Value, json};
use support::{TestIssuer, TestKey, b64, now};
use tower::ServiceExt as _;

const ORIGIN: &str = "https://tools.example.com";

/// The RFC 7638 thumbprint of an EC key's public JWK, computed by hand from its definition.
fn thumbprint(key: &TestKey) -> String {
    let canonical = format!(
        r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
        key.jwk["x"].as_str().unwrap(),
        key.jwk["y"].as_str().unwrap()
    );
    b64(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes()).as_ref())
}

fn public_jwk(key: &TestKey) -> Value {
    json!({ "kty": "EC", "crv": "P-256", "x": key.jwk["x"], "y": key.jwk["y"] })
}

fn proof(key: &TestKey, method: &str, url: &str, token: Option<&str>, iat: i64) -> String {
    let mut claims = json!({ "jti": format!("{}-{}", now(), rand_suffix()), "htm": method, "htu": url, "iat": iat });
    if let Some(token) = token {
        claims["ath"] =
            json!(b64(
                aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes()).as_ref()
            ));
    }
    key.sign_with_header(
        &json!({ "typ": "dpop+jwt", "alg": "ES256", "jwk": public_jwk(key) }),
        &claims,
    )
}

fn rand_suffix() -> String {
    let mut bytes = [0u8; 8];
    aws_lc_rs::rand::fill(&mut bytes).unwrap();
    b64(&bytes)
}

async fn call(app: &Router, authorization: &str, proof: Option<&str>) -> (StatusCode, String) {
    let mut request = Request::builder()
        .uri("/tools")
        .method("POST")
        .header(header::AUTHORIZATION, authorization);
    if let Some(proof) = proof {
        request = request.header("DPoP", proof);
    }
    let response = app.clone().oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
    let challenge = response
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (response.status(), challenge)
}

#[tokio::test]
async fn a_dpop_bound_token_needs_a_proof_of_its_key_for_each_request() {
    let signing = TestKey::es256("k1");
    let issuer = TestIssuer::start(&[&signing]).await;
    let verifier = issuer.verifier().build().unwrap();
    let client_key = TestKey::es256("client");
    let token =
        signing.sign(&issuer.claims_with(json!({ "cnf": { "jkt": thumbprint(&client_key) } })));
    let app = Router::new()
        .route("/tools", axum::routing::post(|claims: Claims| async move { claims.sub }))
        .layer(VerifyLayer::new(verifier).with_dpop(ORIGIN));
    let url = format!("{ORIGIN}/tools");
    let dpop = format!("DPoP {token}");

    let good = proof(&client_key, "POST", &url, Some(&token), now());
    assert_eq!(call(&app, &dpop, Some(&good)).await.0, StatusCode::OK);
    // The same proof again: a replay.
    let (status, challenge) = call(&app, &dpop, Some(&good)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(challenge.starts_with("DPoP error=\"invalid_dpop_proof\""), "{challenge}");
    // As a bearer token, with no proof, or with a proof that is wrong in one way each.
    assert_eq!(call(&app, &format!("Bearer {token}"), None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(call(&app, &dpop, None).await.0, StatusCode::UNAUTHORIZED);
    let stranger = TestKey::es256("stranger");
    for (bad, why) in [
        (proof(&stranger, "POST", &url, Some(&token), now()), "another key"),
        (proof(&client_key, "GET", &url, Some(&token), now()), "another method"),
        (
            proof(&client_key, "POST", &format!("{ORIGIN}/other"), Some(&token), now()),
            "another URL",
        ),
        (
            proof(&client_key, "POST", "https://evil.example/tools", Some(&token), now()),
            "another origin",
        ),
        (proof(&client_key, "POST", &url, None, now()), "no ath"),
        (
            proof(&client_key, "POST", &url, Some("another.token.here"), now()),
            "another token's ath",
        ),
        (proof(&client_key, "POST", &url, Some(&token), now() - 600), "stale"),
    ] {
        assert_eq!(call(&app, &dpop, Some(&bad)).await.0, StatusCode::UNAUTHORIZED, "{why}");
    }
    // An unbound token is not a DPoP token, and stays a bearer token.
    let plain = signing.sign(&issuer.claims());
    let unbound = proof(&client_key, "POST", &url, Some(&plain), now());
    assert_eq!(
        call(&app, &format!("DPoP {plain}"), Some(&unbound)).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(call(&app, &format!("Bearer {plain}"), None).await.0, StatusCode::OK);
}
