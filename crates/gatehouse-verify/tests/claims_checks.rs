//! What a verifier accepts and refuses, token by token, against a live stand-in issuer:
//! each algorithm, expiry and not-before with leeway, audience, issuer, `typ`, `alg: none`,
//! algorithm confusion, tampering and missing claims.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use gatehouse_verify::{Algorithm, ConfigError, TokenKind, VerifyError};
use serde_json::{Value, json};
use support::{AUDIENCE, TestIssuer, TestKey, b64, now};

#[tokio::test]
async fn tokens_of_every_published_algorithm_verify_and_read_as_claims() {
    let keys = [TestKey::es256("ec"), TestKey::rs256("rsa"), TestKey::eddsa("ed")];
    let issuer = TestIssuer::start(&keys.iter().collect::<Vec<_>>()).await;
    let verifier = issuer.verifier().build().unwrap();
    for key in &keys {
        let claims = issuer.claims_with(json!({
            "org_id": "org_1", "org_slug": "acme", "org_role": "admin",
            "org_permissions": ["members:read"], "amr": ["pwd", "mfa"], "client_id": "app_1"
        }));
        let verified = verifier.verify_token(&key.sign(&claims)).await.unwrap();
        assert_eq!(verified.kind, TokenKind::Jwt);
        assert_eq!(
            (verified.sub.as_str(), verified.aud.as_slice()),
            ("usr_1", &[AUDIENCE.into()][..])
        );
        assert_eq!(verified.iss.as_deref(), Some(issuer.url.as_str()));
        assert!(verified.has_scope("orders:read") && !verified.has_scope("orders:write"));
        assert!(verified.in_organization("org_1") && verified.has_permission("members:read"));
        assert_eq!(verified.client_id.as_deref(), Some("app_1"));
        assert_eq!(verified.extra["amr"], json!(["pwd", "mfa"]), "{}", key.alg);
    }
    // One discovery and one JWKS fetch served all three.
    assert_eq!((issuer.discovery_fetches(), issuer.jwks_fetches()), (1, 1));
}

#[tokio::test]
async fn expiry_and_not_before_are_checked_with_the_leeway() {
    let key = TestKey::es256("k1");
    let issuer = TestIssuer::start(&[&key]).await;
    let verifier = issuer.verifier().leeway(Duration::from_secs(30)).build().unwrap();
    let now = now();
    let check = |changes: Value, expected: Result<(), VerifyError>| {
        let token = key.sign(&issuer.claims_with(changes.clone()));
        let verifier = verifier.clone();
        async move {
            assert_eq!(verifier.verify(&token).await.map(|_| ()), expected, "{changes}");
        }
    };
    check(json!({ "exp": now - 120 }), Err(VerifyError::Expired)).await;
    check(json!({ "exp": now - 10 }), Ok(())).await;
    check(json!({ "nbf": now + 120 }), Err(VerifyError::NotYetValid)).await;
    check(json!({ "nbf": now + 10 }), Ok(())).await;
    check(json!({ "nbf": now - 10 }), Ok(())).await;
    check(json!({ "exp": null }), Err(VerifyError::MissingClaim("exp"))).await;
    check(json!({ "exp": "tomorrow" }), Err(VerifyError::Malformed)).await;

    // Without leeway the 10-second-old expiry is refused.
    let strict = issuer.verifier().leeway(Duration::ZERO).build().unwrap();
    let token = key.sign(&issuer.claims_with(json!({ "exp": now - 10 })));
    assert_eq!(strict.verify(&token).await, Err(VerifyError::Expired));
}

#[tokio::test]
async fn audience_and_issuer_must_be_ours() {
    let key = TestKey::es256("k1");
    let issuer = TestIssuer::start(&[&key]).await;
    let verifier = issuer.verifier().audience("https://other-api.example").build().unwrap();
    let check = |changes: Value, expected: Result<(), VerifyError>| {
        let token = key.sign(&issuer.claims_with(changes.clone()));
        let verifier = verifier.clone();
        async move {
            assert_eq!(verifier.verify(&token).await.map(|_| ()), expected, "{changes}");
        }
    };
    check(json!({ "aud": "https://evil.example" }), Err(VerifyError::WrongAudience)).await;
    check(json!({ "aud": ["https://evil.example", "x"] }), Err(VerifyError::WrongAudience)).await;
    check(json!({ "aud": "https://other-api.example" }), Ok(())).await;
    check(json!({ "aud": ["https://evil.example", AUDIENCE] }), Ok(())).await;
    check(json!({ "aud": null }), Err(VerifyError::MissingClaim("aud"))).await;
    check(json!({ "iss": "https://evil.example" }), Err(VerifyError::WrongIssuer)).await;
    // Exact comparison: a trailing slash is another issuer.
    check(json!({ "iss": format!("{}/", issuer.url) }), Err(VerifyError::WrongIssuer)).await;
    check(json!({ "iss": null }), Err(VerifyError::MissingClaim("iss"))).await;
    // `Claims::sub` is not optional: a token without one does not read as claims.
    check(json!({ "sub": null }), Err(VerifyError::Malformed)).await;
}

#[tokio::test]
async fn the_header_must_say_at_jwt_and_name_a_key() {
    let key = TestKey::es256("k1");
    let issuer = TestIssuer::start(&[&key]).await;
    let verifier = issuer.verifier().build().unwrap();
    let claims = issuer.claims();
    let check = |header: Value, expected: Result<(), VerifyError>| {
        let token = key.sign_with_header(&header, &claims);
        let verifier = verifier.clone();
        async move {
            assert_eq!(verifier.verify(&token).await.map(|_| ()), expected, "{header}");
        }
    };
    check(json!({ "alg": "ES256", "kid": "k1", "typ": "JWT" }), Err(VerifyError::WrongType)).await;
    check(json!({ "alg": "ES256", "kid": "k1" }), Err(VerifyError::WrongType)).await;
    // An ID token is not an access token.
    check(json!({ "alg": "ES256", "kid": "k1", "typ": "id+jwt" }), Err(VerifyError::WrongType))
        .await;
    check(json!({ "alg": "ES256", "kid": "k1", "typ": "application/at+jwt" }), Ok(())).await;
    check(json!({ "alg": "ES256", "kid": "k1", "typ": "AT+JWT" }), Ok(())).await;
    check(json!({ "alg": "ES256", "typ": "at+jwt" }), Err(VerifyError::MissingKeyId)).await;

    // Another verifier may accept other types on purpose.
    let lenient = issuer.verifier().token_type(None).build().unwrap();
    let id_token =
        key.sign_with_header(&json!({ "alg": "ES256", "kid": "k1", "typ": "JWT" }), &claims);
    assert!(lenient.verify(&id_token).await.is_ok());
}

#[tokio::test]
async fn alg_none_and_algorithm_confusion_are_refused() {
    let ec = TestKey::es256("ec");
    let rsa = TestKey::rs256("rsa");
    let issuer = TestIssuer::start(&[&ec, &rsa]).await;
    let verifier = issuer.verifier().build().unwrap();
    let claims = issuer.claims();
    let payload = b64(claims.to_string().as_bytes());

    // `alg: none` with an empty signature: not a header the verifier even reads.
    for alg in ["none", "None", "NONE"] {
        let header =
            b64(json!({ "alg": alg, "typ": "at+jwt", "kid": "ec" }).to_string().as_bytes());
        let token = format!("{header}.{payload}.");
        assert_eq!(verifier.verify(&token).await, Err(VerifyError::Malformed), "{alg}");
    }

    // HS256 keyed with the RSA key's public modulus (the classic confusion): refused before
    // any key is touched.
    let header = json!({ "alg": "HS256", "typ": "at+jwt", "kid": "rsa" });
    let input = format!("{}.{payload}", b64(header.to_string().as_bytes()));
    let modulus = rsa.jwk["n"].as_str().unwrap();
    let mac = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, modulus.as_bytes()),
        input.as_bytes(),
    );
    let token = format!("{input}.{}", b64(mac.as_ref()));
    assert_eq!(verifier.verify(&token).await, Err(VerifyError::AlgorithmNotAllowed));

    // A header naming the EC key with RS256, signed by the RSA key: the key's algorithm
    // decides, not the header.
    let token =
        rsa.sign_with_header(&json!({ "alg": "RS256", "typ": "at+jwt", "kid": "ec" }), &claims);
    assert_eq!(verifier.verify(&token).await, Err(VerifyError::AlgorithmNotAllowed));
    // ...and the other way round.
    let token =
        ec.sign_with_header(&json!({ "alg": "ES256", "typ": "at+jwt", "kid": "rsa" }), &claims);
    assert_eq!(verifier.verify(&token).await, Err(VerifyError::AlgorithmNotAllowed));

    // A narrower allow-list refuses a published key's own algorithm.
    let only_ec = issuer.verifier().algorithms([Algorithm::ES256]).build().unwrap();
    assert_eq!(only_ec.verify(&rsa.sign(&claims)).await, Err(VerifyError::AlgorithmNotAllowed));
    assert!(only_ec.verify(&ec.sign(&claims)).await.is_ok());

    // HMAC can never be allowed.
    let refused = issuer.verifier().algorithms([Algorithm::HS256]).build().unwrap_err();
    assert_eq!(refused, ConfigError::Algorithm("HS256".into()));
}

#[tokio::test]
async fn tampered_and_foreign_tokens_are_refused() {
    let key = TestKey::es256("k1");
    let impostor = TestKey::es256("k1");
    let issuer = TestIssuer::start(&[&key]).await;
    let verifier = issuer.verifier().build().unwrap();
    let token = key.sign(&issuer.claims());
    assert!(verifier.verify(&token).await.is_ok());

    // Another payload under the original signature.
    let parts: Vec<&str> = token.split('.').collect();
    let raised = issuer.claims_with(json!({ "sub": "usr_admin", "scope": "admin" }));
    let forged = format!("{}.{}.{}", parts[0], b64(raised.to_string().as_bytes()), parts[2]);
    assert_eq!(verifier.verify(&forged).await, Err(VerifyError::BadSignature));

    // One flipped signature bit.
    let mut signature =
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, parts[2])
            .unwrap();
    signature[10] ^= 1;
    let flipped = format!("{}.{}.{}", parts[0], parts[1], b64(&signature));
    assert_eq!(verifier.verify(&flipped).await, Err(VerifyError::BadSignature));

    // A key nobody published, under a published kid.
    assert_eq!(
        verifier.verify(&impostor.sign(&issuer.claims())).await,
        Err(VerifyError::BadSignature)
    );

    for garbage in ["a.b.c", "..", "not-base64!.x.y", &format!("{}.{}", parts[0], parts[1])] {
        assert_eq!(verifier.verify(garbage).await, Err(VerifyError::Malformed), "{garbage}");
    }
    assert_eq!(verifier.verify("").await, Err(VerifyError::Malformed));
}

#[tokio::test]
async fn a_verifier_needs_an_audience_and_http_urls() {
    let build = |builder: gatehouse_verify::VerifierBuilder| builder.build().map(|_| ());
    use gatehouse_verify::Verifier;
    assert_eq!(build(Verifier::builder("https://auth.example")), Err(ConfigError::MissingAudience));
    assert!(matches!(
        build(Verifier::builder("auth.example").audience("a")),
        Err(ConfigError::Issuer(_))
    ));
    assert_eq!(
        build(Verifier::builder("https://auth.example").audience("a").jwks_url("file:///etc/keys")),
        Err(ConfigError::Url("jwks_url"))
    );
    assert_eq!(
        build(Verifier::builder("https://auth.example").audience("a").algorithms([])),
        Err(ConfigError::NoAlgorithms)
    );
    assert_eq!(build(Verifier::builder("https://auth.example").audience("a")), Ok(()));
}

#[tokio::test]
async fn a_dpop_bound_token_is_not_a_bearer_token() {
    let key = TestKey::es256("k1");
    let issuer = TestIssuer::start(&[&key]).await;
    let verifier = issuer.verifier().build().unwrap();
    let bound =
        key.sign(&issuer.claims_with(
            json!({ "cnf": { "jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I" } }),
        ));
    assert_eq!(verifier.verify(&bound).await.map(|_| ()), Err(VerifyError::SenderConstrained));
    let mtls = key.sign(&issuer.claims_with(json!({ "cnf": { "x5t#S256": "thumb" } })));
    assert_eq!(verifier.verify(&mtls).await.map(|_| ()), Err(VerifyError::SenderConstrained));
    assert!(verifier.verify(&key.sign(&issuer.claims_with(json!({})))).await.is_ok());
}
