#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Behaviour of both rate limiters: the in-memory one under a manual clock, the Redis one
//! against a real Redis (skipped without `GATEHOUSE_TEST_REDIS_URL`, required when `CI=true`).

use std::sync::Arc;
use std::time::Duration;

use gatehouse_domain::ManualClock;
use gatehouse_domain::StoreError;
use gatehouse_domain::ratelimit::{RateLimit, RateLimitDecision, RateLimiter};
use gatehouse_store::Redis;
use gatehouse_store::ratelimit::{KEY_PREFIX, MemoryRateLimiter, MemorySweep, RedisRateLimiter};
use gatehouse_store::testing::{FaultProxy, REDIS_URL_VARIABLE, redis_url};

const THREE_PER_MINUTE: RateLimit = RateLimit::new(3, Duration::from_secs(60));
const START: i64 = 1_700_000_000;

fn memory_limiter() -> (Arc<ManualClock>, MemoryRateLimiter) {
    let clock = Arc::new(ManualClock::new(START));
    (clock.clone(), MemoryRateLimiter::new(clock))
}

async fn remaining_after_hits(
    limiter: &impl RateLimiter,
    key: &str,
    rate: RateLimit,
    hits: usize,
) -> Vec<Option<u32>> {
    let mut answers = Vec::new();
    for _ in 0..hits {
        let decision = limiter.hit(key, rate).await.unwrap();
        answers.push(decision.allowed.then_some(decision.remaining));
    }
    answers
}

// ---------------------------------------------------------------- in memory

#[tokio::test]
async fn memory_allows_the_limit_then_refuses_until_the_oldest_hit_leaves() {
    let (clock, limiter) = memory_limiter();
    let first = limiter.hit("sign-in:ip:a", THREE_PER_MINUTE).await.unwrap();
    assert_eq!(
        first,
        RateLimitDecision {
            allowed: true,
            limit: 3,
            remaining: 2,
            reset_after: Duration::from_secs(60),
            retry_after: None,
        }
    );
    clock.advance(10);
    assert_eq!(limiter.hit("sign-in:ip:a", THREE_PER_MINUTE).await.unwrap().remaining, 1);
    clock.advance(10);
    let last = limiter.hit("sign-in:ip:a", THREE_PER_MINUTE).await.unwrap();
    assert_eq!(
        (last.allowed, last.remaining, last.reset_after),
        (true, 0, Duration::from_secs(40))
    );

    clock.advance(10);
    let refused = limiter.hit("sign-in:ip:a", THREE_PER_MINUTE).await.unwrap();
    assert_eq!(
        refused,
        RateLimitDecision {
            allowed: false,
            limit: 3,
            remaining: 0,
            reset_after: Duration::from_secs(30),
            retry_after: Some(Duration::from_secs(30)),
        }
    );
}

#[tokio::test]
async fn memory_window_slides_one_hit_at_a_time() {
    let (clock, limiter) = memory_limiter();
    for _ in 0..3 {
        assert!(limiter.hit("k", THREE_PER_MINUTE).await.unwrap().allowed);
        clock.advance(10);
    }
    // Hits at 0 s, 10 s, 20 s. One millisecond before the first leaves, still full.
    clock.advance_millis(60_000 - 30_000 - 1);
    let refused = limiter.hit("k", THREE_PER_MINUTE).await.unwrap();
    assert_eq!(refused.retry_after, Some(Duration::from_millis(1)));

    // At exactly 60 s the first hit leaves: one slot frees, not all three.
    clock.advance_millis(1);
    let freed = limiter.hit("k", THREE_PER_MINUTE).await.unwrap();
    assert_eq!((freed.allowed, freed.remaining), (true, 0));
    assert_eq!(freed.reset_after, Duration::from_secs(10));
    let refused = limiter.hit("k", THREE_PER_MINUTE).await.unwrap();
    assert_eq!(refused.retry_after, Some(Duration::from_secs(10)));
}

#[tokio::test]
async fn memory_refused_hits_are_not_counted() {
    let (clock, limiter) = memory_limiter();
    assert_eq!(
        remaining_after_hits(&limiter, "k", THREE_PER_MINUTE, 4).await,
        [Some(2), Some(1), Some(0), None]
    );
    // Hammering for the whole window while refused must not push the block further out.
    for _ in 0..59 {
        clock.advance(1);
        assert!(!limiter.hit("k", THREE_PER_MINUTE).await.unwrap().allowed);
    }
    clock.advance(1);
    assert_eq!(
        remaining_after_hits(&limiter, "k", THREE_PER_MINUTE, 4).await,
        [Some(2), Some(1), Some(0), None]
    );
}

#[tokio::test]
async fn memory_keys_are_independent() {
    let (_clock, limiter) = memory_limiter();
    let one_per_minute = RateLimit::new(1, Duration::from_secs(60));
    assert!(limiter.hit("sign-in:ip:a", one_per_minute).await.unwrap().allowed);
    assert!(!limiter.hit("sign-in:ip:a", one_per_minute).await.unwrap().allowed);
    assert!(limiter.hit("sign-in:ip:b", one_per_minute).await.unwrap().allowed);
    assert!(limiter.hit("sign-up:ip:a", one_per_minute).await.unwrap().allowed);
}

#[tokio::test]
async fn memory_sweep_forgets_idle_keys_when_the_map_exceeds_its_cap() {
    let clock = Arc::new(ManualClock::new(START));
    let limiter = MemoryRateLimiter::with_sweep(
        clock.clone(),
        MemorySweep { every_hits: 1_000_000, max_keys: 10 },
    );
    for client in 0..10 {
        limiter.hit(&format!("client-{client}"), THREE_PER_MINUTE).await.unwrap();
    }
    assert_eq!(limiter.tracked_keys(), 10);
    clock.advance(60);
    // The eleventh key crosses the cap; the ten idle ones are forgotten, the new one kept.
    limiter.hit("client-new", THREE_PER_MINUTE).await.unwrap();
    assert_eq!(limiter.tracked_keys(), 1);
}

#[tokio::test]
async fn memory_sweep_forgets_idle_keys_every_few_hits() {
    let clock = Arc::new(ManualClock::new(START));
    let limiter = MemoryRateLimiter::with_sweep(
        clock.clone(),
        MemorySweep { every_hits: 4, max_keys: 100_000 },
    );
    limiter.hit("idle-1", THREE_PER_MINUTE).await.unwrap();
    limiter.hit("idle-2", THREE_PER_MINUTE).await.unwrap();
    clock.advance(30);
    limiter.hit("live", THREE_PER_MINUTE).await.unwrap();
    clock.advance(30);
    assert_eq!(limiter.tracked_keys(), 3);
    // Fourth hit: the sweep runs; the idle keys' windows have passed, "live" is 30 s old.
    limiter.hit("live", THREE_PER_MINUTE).await.unwrap();
    assert_eq!(limiter.tracked_keys(), 1);
    let decision = limiter.hit("live", THREE_PER_MINUTE).await.unwrap();
    assert_eq!(decision.remaining, 0, "the sweep must not drop a live key's hits");
}

// ---------------------------------------------------------------- Redis

/// `None` means "skip": Redis is not configured and this is not CI.
fn test_redis_url() -> Option<String> {
    let url = redis_url().unwrap_or_else(|error| panic!("{error}"));
    if url.is_none() {
        eprintln!("skipped: set {REDIS_URL_VARIABLE} to run the Redis rate-limit tests");
    }
    url
}

/// `None` means "skip", as for [`test_redis_url`].
async fn test_redis() -> Option<Redis> {
    Some(Redis::connect(&test_redis_url()?).await.unwrap())
}

/// A key no other test or earlier run uses, so tests run in parallel and rerun cleanly.
fn unique_key(test: &str) -> String {
    format!("test:{test}:{:016x}", rand::random::<u64>())
}

#[tokio::test]
async fn redis_allows_the_limit_then_refuses_until_the_oldest_hit_leaves() {
    let Some(redis) = test_redis().await else { return };
    let limiter = RedisRateLimiter::new(redis);
    let key = unique_key("limit");
    assert_eq!(
        remaining_after_hits(&limiter, &key, THREE_PER_MINUTE, 3).await,
        [Some(2), Some(1), Some(0)]
    );
    let refused = limiter.hit(&key, THREE_PER_MINUTE).await.unwrap();
    assert_eq!((refused.allowed, refused.limit, refused.remaining), (false, 3, 0));
    // The three hits were a few milliseconds ago; a slot frees when the first leaves.
    let retry_after = refused.retry_after.unwrap();
    assert!(retry_after > Duration::from_secs(50) && retry_after <= Duration::from_secs(60));
    assert_eq!(refused.reset_after, retry_after);
    assert_eq!(refused.retry_after_seconds(), Some(60));
}

#[tokio::test]
async fn redis_window_slides_one_hit_at_a_time() {
    let Some(redis) = test_redis().await else { return };
    let limiter = RedisRateLimiter::new(redis);
    let key = unique_key("slide");
    let rate = RateLimit::new(2, Duration::from_millis(1_500));

    assert!(limiter.hit(&key, rate).await.unwrap().allowed);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(limiter.hit(&key, rate).await.unwrap().allowed);
    let refused = limiter.hit(&key, rate).await.unwrap();
    let retry_after = refused.retry_after.unwrap();
    assert!(retry_after <= Duration::from_millis(900), "{retry_after:?}");

    // Once the first hit leaves, exactly one slot is free: the second hit is still counted.
    tokio::time::sleep(retry_after + Duration::from_millis(50)).await;
    let freed = limiter.hit(&key, rate).await.unwrap();
    assert_eq!((freed.allowed, freed.remaining), (true, 0));
    assert!(!limiter.hit(&key, rate).await.unwrap().allowed);
}

#[tokio::test]
async fn redis_refused_hits_are_not_counted() {
    let Some(redis) = test_redis().await else { return };
    let limiter = RedisRateLimiter::new(redis);
    let key = unique_key("refused");
    let rate = RateLimit::new(1, Duration::from_millis(1_000));

    assert!(limiter.hit(&key, rate).await.unwrap().allowed);
    let mut last_refusal = None;
    for _ in 0..20 {
        let decision = limiter.hit(&key, rate).await.unwrap();
        assert!(!decision.allowed);
        last_refusal = decision.retry_after;
    }
    // Had the refused hits been counted, the block would now reach past this wait.
    tokio::time::sleep(last_refusal.unwrap() + Duration::from_millis(50)).await;
    assert!(limiter.hit(&key, rate).await.unwrap().allowed);
}

#[tokio::test]
async fn redis_keys_are_independent() {
    let Some(redis) = test_redis().await else { return };
    let limiter = RedisRateLimiter::new(redis);
    let one_per_minute = RateLimit::new(1, Duration::from_secs(60));
    let (first, second) = (unique_key("independent-a"), unique_key("independent-b"));
    assert!(limiter.hit(&first, one_per_minute).await.unwrap().allowed);
    assert!(!limiter.hit(&first, one_per_minute).await.unwrap().allowed);
    assert!(limiter.hit(&second, one_per_minute).await.unwrap().allowed);
}

#[tokio::test]
async fn redis_instances_share_one_budget() {
    let Some(url) = test_redis_url() else { return };
    // Two connections stand for two Gatehouse instances behind a load balancer.
    let instance_a = RedisRateLimiter::new(Redis::connect(&url).await.unwrap());
    let instance_b = RedisRateLimiter::new(Redis::connect(&url).await.unwrap());
    let key = unique_key("shared");
    let rate = RateLimit::new(4, Duration::from_secs(60));

    let mut remaining = Vec::new();
    for instance in [&instance_a, &instance_b, &instance_a, &instance_b] {
        let decision = instance.hit(&key, rate).await.unwrap();
        assert!(decision.allowed);
        remaining.push(decision.remaining);
    }
    assert_eq!(remaining, [3, 2, 1, 0]);
    assert!(!instance_a.hit(&key, rate).await.unwrap().allowed);
    assert!(!instance_b.hit(&key, rate).await.unwrap().allowed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_concurrent_hits_never_over_admit() {
    let Some(redis) = test_redis().await else { return };
    let limiter = Arc::new(RedisRateLimiter::new(redis.clone()));
    let key = unique_key("concurrent");
    let rate = RateLimit::new(10, Duration::from_secs(60));

    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (limiter, key) = (limiter.clone(), key.clone());
            tokio::spawn(async move { limiter.hit(&key, rate).await.unwrap() })
        })
        .collect();
    let mut allowed_remaining = Vec::new();
    for task in tasks {
        let decision = task.await.unwrap();
        if decision.allowed {
            allowed_remaining.push(decision.remaining);
        }
    }
    allowed_remaining.sort_unstable();
    assert_eq!(allowed_remaining, (0..10).collect::<Vec<u32>>());

    let mut connection = redis.connection();
    let stored: u64 = redis::cmd("ZCARD")
        .arg(format!("{KEY_PREFIX}{key}"))
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(stored, 10);
}

#[tokio::test]
async fn redis_keys_expire_with_their_window() {
    let Some(redis) = test_redis().await else { return };
    let limiter = RedisRateLimiter::new(redis.clone());
    let key = unique_key("ttl");
    limiter.hit(&key, THREE_PER_MINUTE).await.unwrap();

    let mut connection = redis.connection();
    let ttl_millis: i64 = redis::cmd("PTTL")
        .arg(format!("{KEY_PREFIX}{key}"))
        .query_async(&mut connection)
        .await
        .unwrap();
    // -1 would mean "no expiry" (memory grows forever), -2 "no such key" (wrong prefix).
    assert!(ttl_millis > 55_000 && ttl_millis <= 60_000, "PTTL {ttl_millis}");
}

#[tokio::test]
async fn redis_unreachable_is_unavailable_not_a_panic() {
    let Some(url) = test_redis_url() else { return };
    let mut proxied_url = url::Url::parse(&url).unwrap();
    let upstream = tokio::net::lookup_host((
        proxied_url.host_str().unwrap().to_owned(),
        proxied_url.port().unwrap_or(6379),
    ))
    .await
    .unwrap()
    .next()
    .unwrap();
    let proxy = FaultProxy::start(upstream).await.unwrap();
    proxied_url.set_host(Some("127.0.0.1")).unwrap();
    proxied_url.set_port(Some(proxy.address().port())).unwrap();

    let limiter = RedisRateLimiter::new(Redis::connect(proxied_url.as_str()).await.unwrap());
    let key = unique_key("fault");
    assert!(limiter.hit(&key, THREE_PER_MINUTE).await.unwrap().allowed);

    proxy.cut();
    // Bounded: the connection's own timeouts (2 s) must answer well within this.
    let outcome =
        tokio::time::timeout(Duration::from_secs(15), limiter.hit(&key, THREE_PER_MINUTE))
            .await
            .expect("a cut Redis must answer with an error, not hang");
    match outcome {
        Err(StoreError::Unavailable(message)) => assert!(!message.contains("127.0.0.1")),
        other => panic!("expected Unavailable, got {other:?}"),
    }
}
