//! The key cache against a live stand-in issuer, counting its fetches: a rotation costs one
//! fetch, a flood of unknown `kid`s costs at most one per interval, `Cache-Control` decides
//! when a set is stale, and an unreachable issuer neither breaks a cached set nor is hammered.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use gatehouse_verify::VerifyError;
use support::{TestIssuer, TestKey};

#[tokio::test]
async fn a_rotated_key_is_fetched_once_and_the_old_one_kept_while_published() {
    let old = TestKey::es256("old");
    let new = TestKey::eddsa("new");
    let issuer = TestIssuer::start(&[&old]).await;
    let verifier = issuer.verifier().build().unwrap();
    let old_token = old.sign(&issuer.claims());
    assert!(verifier.verify(&old_token).await.is_ok());
    assert_eq!(issuer.jwks_fetches(), 1);

    // The issuer rotates: the new key signs, the old one is still published.
    issuer.publish(&[&new, &old]);
    let new_token = new.sign(&issuer.claims());
    assert_eq!(verifier.verify(&new_token).await.unwrap().sub, "usr_1");
    assert_eq!(issuer.jwks_fetches(), 2, "the unknown kid made one fetch");
    for _ in 0..5 {
        assert!(verifier.verify(&new_token).await.is_ok());
        assert!(verifier.verify(&old_token).await.is_ok());
    }
    assert_eq!(issuer.jwks_fetches(), 2, "both keys are cached now");
    // The discovery document was read once for all of it.
    assert_eq!(issuer.discovery_fetches(), 1);

    // Clones share the cache.
    assert!(verifier.clone().verify(&new_token).await.is_ok());
    assert_eq!(issuer.jwks_fetches(), 2);
}

#[tokio::test]
async fn an_unknown_kid_is_refused_after_one_refresh_and_a_flood_costs_one_fetch() {
    let key = TestKey::es256("k1");
    let issuer = TestIssuer::start(&[&key]).await;
    let verifier =
        issuer.verifier().unknown_kid_refresh_interval(Duration::from_secs(3600)).build().unwrap();
    assert!(verifier.verify(&key.sign(&issuer.claims())).await.is_ok());
    assert_eq!(issuer.jwks_fetches(), 1);

    let stranger = TestKey::es256("stranger");
    assert_eq!(
        verifier.verify(&stranger.sign(&issuer.claims())).await,
        Err(VerifyError::UnknownKey)
    );
    assert_eq!(issuer.jwks_fetches(), 2, "one refresh before giving up");

    // 200 tokens with made-up kids, 50 at a time: no further fetch within the interval.
    let mut tasks = tokio::task::JoinSet::new();
    for round in 0..200 {
        let token = key.sign_with_header(
            &serde_json::json!({ "alg": "ES256", "typ": "at+jwt", "kid": format!("made-up-{round}") }),
            &issuer.claims(),
        );
        let verifier = verifier.clone();
        tasks.spawn(async move { verifier.verify(&token).await });
        if tasks.len() == 50 {
            while let Some(result) = tasks.join_next().await {
                assert_eq!(result.unwrap(), Err(VerifyError::UnknownKey));
            }
        }
    }
    assert_eq!(issuer.jwks_fetches(), 2, "rate-limited: one fetch per interval");

    // A real rotation inside the interval waits for the next one: the limit holds for
    // everyone (the issuer keeps publishing the old key meanwhile, as Gatehouse does).
    let rotated = TestKey::es256("rotated");
    issuer.publish(&[&rotated, &key]);
    assert_eq!(
        verifier.verify(&rotated.sign(&issuer.claims())).await,
        Err(VerifyError::UnknownKey)
    );
    assert!(verifier.verify(&key.sign(&issuer.claims())).await.is_ok());
    assert_eq!(issuer.jwks_fetches(), 2);
}

#[tokio::test]
async fn concurrent_first_uses_share_one_fetch() {
    let key = TestKey::es256("k1");
    let issuer = TestIssuer::start(&[&key]).await;
    let verifier = issuer.verifier().build().unwrap();
    let token = key.sign(&issuer.claims());
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let (verifier, token) = (verifier.clone(), token.clone());
        tasks.spawn(async move { verifier.verify(&token).await.map(|claims| claims.sub) });
    }
    while let Some(result) = tasks.join_next().await {
        assert_eq!(result.unwrap().unwrap(), "usr_1");
    }
    assert_eq!((issuer.discovery_fetches(), issuer.jwks_fetches()), (1, 1));
}

#[tokio::test]
async fn the_issuers_max_age_decides_when_keys_are_fetched_again() {
    let key = TestKey::es256("k1");
    let issuer = TestIssuer::start(&[&key]).await;
    let token = key.sign(&issuer.claims());
    let bounds = |builder: gatehouse_verify::VerifierBuilder| {
        builder.jwks_cache(Duration::from_secs(300), Duration::ZERO, Duration::from_secs(3600))
    };

    // max-age=0: every verification finds the set stale and fetches it again.
    issuer.set_cache_control(Some("public, max-age=0"));
    let verifier = bounds(issuer.verifier()).build().unwrap();
    for expected in 1..=3 {
        assert!(verifier.verify(&token).await.is_ok());
        assert_eq!(issuer.jwks_fetches(), expected);
    }

    // max-age=300: fetched once.
    issuer.set_cache_control(Some("public, max-age=300"));
    let verifier = bounds(issuer.verifier()).build().unwrap();
    for _ in 0..3 {
        assert!(verifier.verify(&token).await.is_ok());
    }
    assert_eq!(issuer.jwks_fetches(), 4);

    // The verifier's lower bound wins over an issuer that says not to cache.
    issuer.set_cache_control(Some("no-store"));
    let verifier = issuer
        .verifier()
        .jwks_cache(Duration::from_secs(300), Duration::from_secs(60), Duration::from_secs(3600))
        .build()
        .unwrap();
    for _ in 0..3 {
        assert!(verifier.verify(&token).await.is_ok());
    }
    assert_eq!(issuer.jwks_fetches(), 5);
}

#[tokio::test]
async fn an_unreachable_issuer_answers_unavailable_and_a_cached_set_keeps_working() {
    let key = TestKey::es256("k1");
    let issuer = TestIssuer::start(&[&key]).await;
    let token = key.sign(&issuer.claims());

    // Nothing cached: the failure is the issuer's, not the token's.
    issuer.fail_jwks_with(500);
    let verifier = issuer.verifier().unknown_kid_refresh_interval(Duration::ZERO).build().unwrap();
    let error = verifier.verify(&token).await.unwrap_err();
    assert!(matches!(error, VerifyError::IssuerUnavailable(_)), "{error:?}");
    assert!(!error.is_token_problem());
    assert_eq!(error.code(), "issuer_unavailable");
    assert!(matches!(verifier.refresh_keys().await, Err(VerifyError::IssuerUnavailable(_))));
    issuer.fail_jwks_with(200);
    assert!(verifier.refresh_keys().await.is_ok());
    assert!(verifier.verify(&token).await.is_ok());

    // A stale set whose refresh fails stays in use, and the failure holds further fetches
    // back (the unknown-kid interval, at most 10 s).
    issuer.set_cache_control(Some("max-age=0"));
    let verifier = issuer
        .verifier()
        .jwks_cache(Duration::ZERO, Duration::ZERO, Duration::ZERO)
        .unknown_kid_refresh_interval(Duration::from_secs(60))
        .build()
        .unwrap();
    assert!(verifier.verify(&token).await.is_ok());
    let fetches = issuer.jwks_fetches();
    issuer.fail_jwks_with(503);
    for _ in 0..5 {
        assert!(verifier.verify(&token).await.is_ok());
    }
    assert_eq!(issuer.jwks_fetches(), fetches + 1, "one failed refresh, then back-off");
}

#[tokio::test]
async fn a_jwks_url_skips_discovery_and_a_foreign_discovery_document_is_refused() {
    let key = TestKey::es256("k1");
    let issuer = TestIssuer::start(&[&key]).await;
    let token = key.sign(&issuer.claims());
    let verifier = issuer.verifier().jwks_url(format!("{}/jwks", issuer.url)).build().unwrap();
    assert!(verifier.verify(&token).await.is_ok());
    assert_eq!((issuer.discovery_fetches(), issuer.jwks_fetches()), (0, 1));

    // A verifier configured for another issuer name finds a document that is not its own.
    let claims = issuer.claims_with(serde_json::json!({ "iss": format!("{}/", issuer.url) }));
    let verifier = gatehouse_verify::Verifier::builder(format!("{}/", issuer.url))
        .audience(support::AUDIENCE)
        .build()
        .unwrap();
    let error = verifier.verify(&key.sign(&claims)).await.unwrap_err();
    assert!(
        matches!(&error, VerifyError::IssuerUnavailable(reason) if reason.contains("not for the issuer")),
        "{error:?}"
    );
    assert_eq!(issuer.jwks_fetches(), 1);
}
