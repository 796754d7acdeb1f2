#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The memory of accepted DPoP proofs (`DpopProofStore`): a `jti` is accepted once per key
//! while it could still verify, on both databases and in Redis, where two instances (two
//! connections) share it. Redis is skipped without `GATEHOUSE_TEST_REDIS_URL` and required
//! when `CI=true`.

use gatehouse_domain::oauth::dpop::DpopProofStore;
use gatehouse_store::testing::{REDIS_URL_VARIABLE, TestDatabase, redis_url};
use gatehouse_store::{Redis, RedisDpopProofStore, backend_tests};

backend_tests!(a_proof_is_accepted_once_while_it_could_verify);

/// What every store must do: the first use records, a replay is refused, the same `jti` of
/// another key is another proof, and once expired a `jti` is free again.
async fn accepted_once(store: &dyn DpopProofStore, jkt: &str) {
    assert!(store.record_dpop_proof(jkt, "jti-1", 1_000, 900).await.unwrap(), "first use");
    assert!(!store.record_dpop_proof(jkt, "jti-1", 1_000, 901).await.unwrap(), "a replay");
    let other = format!("{jkt}-other");
    assert!(store.record_dpop_proof(&other, "jti-1", 1_000, 901).await.unwrap(), "another key");
    assert!(store.record_dpop_proof(jkt, "jti-2", 1_000, 901).await.unwrap(), "another jti");
}

async fn a_proof_is_accepted_once_while_it_could_verify(test: TestDatabase) {
    let store = &test.database;
    accepted_once(store, "thumbprint").await;
    // An expired row not swept yet does not block the jti for ever.
    assert!(store.record_dpop_proof("thumbprint", "jti-1", 2_000, 1_001).await.unwrap());
    assert!(!store.record_dpop_proof("thumbprint", "jti-1", 2_000, 1_002).await.unwrap());
}

#[tokio::test]
async fn redis_remembers_proofs_for_every_instance() {
    let Some(url) = redis_url().unwrap_or_else(|error| panic!("{error}")) else {
        eprintln!("skipped: set {REDIS_URL_VARIABLE} to run the Redis DPoP test");
        return;
    };
    let prefix = format!("test:{}:", gatehouse_crypto::new_id("run"));
    let instance_a = RedisDpopProofStore::new(Redis::connect(&url).await.unwrap(), &prefix);
    let instance_b = RedisDpopProofStore::new(Redis::connect(&url).await.unwrap(), &prefix);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
        as i64;
    assert!(instance_a.record_dpop_proof("key", "jti-1", now + 60, now).await.unwrap());
    // The proof replayed at another instance is refused there too.
    assert!(!instance_b.record_dpop_proof("key", "jti-1", now + 60, now).await.unwrap());
    assert!(instance_b.record_dpop_proof("key", "jti-2", now + 60, now).await.unwrap());
    accepted_once(&instance_a, "redis-thumbprint").await;
}
