//! Tokens verified per second on one core: `Verifier::verify` with its key set cached, against
//! `jsonwebtoken::decode` verifying the same token with the same key, checks and claims type
//! (what a resource server would write by hand). Both run in the same process, in interleaved
//! windows (A B, B A, ...), so machine noise falls on both; the ratio is what matters. Target:
//! the verifier within 10 % of the direct call.
//!
//! `cargo bench -p gatehouse-verify --bench verify` (optional: `VERIFY_BENCH_SECONDS`, the
//! measured seconds per side and algorithm, default 3).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::hint::black_box;
use std::time::{Duration, Instant};

use gatehouse_verify::{Algorithm, Claims, Verifier};
use jsonwebtoken::{DecodingKey, Validation};
use serde_json::json;
use support::{AUDIENCE, TestIssuer, TestKey};

/// Verifications per batch between clock reads.
const BATCH: u64 = 64;
/// Length of one measured window.
const WINDOW: Duration = Duration::from_millis(250);

struct Side {
    operations: u64,
    elapsed: Duration,
}

impl Side {
    fn per_second(&self) -> f64 {
        self.operations as f64 / self.elapsed.as_secs_f64()
    }
}

/// Runs `operation` in batches for one window; adds to `side`.
async fn window<F, Fut>(side: &mut Side, mut operation: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let started = Instant::now();
    let mut operations = 0;
    while started.elapsed() < WINDOW {
        for _ in 0..BATCH {
            operation().await;
        }
        operations += BATCH;
    }
    side.operations += operations;
    side.elapsed += started.elapsed();
}

async fn compare(key: &TestKey, algorithm: Algorithm, seconds: u64) -> (f64, f64) {
    let issuer = TestIssuer::start(&[key]).await;
    let claims = issuer.claims_with(json!({
        "exp": support::now() + 3600, "sid": "ses_0190e1b2c3d47e8f9a0b1c2d3e4f5a6b",
        "sub": "usr_0190e1b2c3d47e8f9a0b1c2d3e4f5a6b", "amr": ["pwd"], "auth_time": support::now(),
        "org_id": "org_0190e1b2c3d47e8f9a0b1c2d3e4f5a6c", "org_slug": "acme", "org_role": "admin",
        "org_permissions": ["org:read", "members:read", "members:manage"],
    }));
    let token = key.sign(&claims);

    let verifier: Verifier = issuer.verifier().algorithms([algorithm]).build().unwrap();
    // Fetch once: from here on the key set is cached (the default max age is minutes).
    assert_eq!(verifier.verify(&token).await.unwrap().sub, claims["sub"]);

    // The hand-written equivalent: the same key, the same checks, the same claims type.
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(key.jwk.clone()).unwrap();
    let decoding_key = DecodingKey::from_jwk(&jwk).unwrap();
    let mut validation = Validation::new(algorithm);
    validation.set_issuer(&[&issuer.url]);
    validation.set_audience(&[AUDIENCE]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.validate_nbf = true;
    validation.leeway = 30;
    let direct = jsonwebtoken::decode::<Claims>(&token, &decoding_key, &validation).unwrap();
    assert_eq!(direct.claims.sub, claims["sub"]);

    let mut ours = Side { operations: 0, elapsed: Duration::ZERO };
    let mut theirs = Side { operations: 0, elapsed: Duration::ZERO };
    let ours_op = || {
        let (verifier, token) = (&verifier, &token);
        async move {
            black_box(verifier.verify(black_box(token)).await.unwrap());
        }
    };
    let theirs_op = || {
        let (token, decoding_key, validation) = (&token, &decoding_key, &validation);
        async move {
            black_box(
                jsonwebtoken::decode::<Claims>(black_box(token), decoding_key, validation).unwrap(),
            );
        }
    };
    // Warm-up, not counted.
    window(&mut Side { operations: 0, elapsed: Duration::ZERO }, ours_op).await;
    window(&mut Side { operations: 0, elapsed: Duration::ZERO }, theirs_op).await;
    let pairs = (seconds * 1000 / WINDOW.as_millis() as u64).max(1);
    for pair in 0..pairs {
        if pair % 2 == 0 {
            window(&mut ours, ours_op).await;
            window(&mut theirs, theirs_op).await;
        } else {
            window(&mut theirs, theirs_op).await;
            window(&mut ours, ours_op).await;
        }
    }
    (ours.per_second(), theirs.per_second())
}

fn main() {
    let seconds = std::env::var("VERIFY_BENCH_SECONDS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(3);
    // One thread: the figures are per core. The stand-in issuer only answers the first fetch.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    println!("Access-token verification on one core, key set cached ({seconds} s per side):\n");
    println!(
        "| algorithm | gatehouse-verify tokens/s | jsonwebtoken::decode tokens/s | ratio | within 10 % |"
    );
    println!("|---|---:|---:|---:|---|");
    let cases = [
        (TestKey::es256("bench-es256"), Algorithm::ES256),
        (TestKey::rs256("bench-rs256"), Algorithm::RS256),
        (TestKey::eddsa("bench-eddsa"), Algorithm::EdDSA),
    ];
    for (key, algorithm) in &cases {
        let (ours, theirs) = runtime.block_on(compare(key, *algorithm, seconds));
        let ratio = ours / theirs;
        println!(
            "| {algorithm:?} | {ours:.0} | {theirs:.0} | {ratio:.3} | {} |",
            if ratio >= 0.9 { "yes" } else { "NO" }
        );
    }
}
