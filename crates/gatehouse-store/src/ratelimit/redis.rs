//! The Redis rate limiter: one sorted set of counted hits per key, updated by one Lua script so
//! every Gatehouse instance shares the same budget and concurrent hits cannot over-admit.

use async_trait::async_trait;
use gatehouse_domain::StoreError;
use gatehouse_domain::ratelimit::{RateLimit, RateLimitDecision, RateLimiter};

use crate::Redis;

/// Every rate-limit key lives under this prefix, so an operator can find (or flush) them.
pub const KEY_PREFIX: &str = "gatehouse:rl:";

/// Windows are capped at a year here: `PEXPIRE` rejects absurd expiries, and the script's
/// arithmetic is on Lua doubles, exact only below 2^53.
const MAX_WINDOW_MILLIS: i64 = 365 * 24 * 60 * 60 * 1_000;

/// The whole decision runs inside Redis, atomically. Time is Redis server time (`TIME`), not
/// the caller's clock, so instances with skewed clocks still agree on one window.
///
/// Returns `{allowed (0|1), counted hits, oldest counted score or -1, now}` in milliseconds.
const SLIDING_WINDOW_SCRIPT: &str = r"
-- Before Redis 5, a script must opt into effects replication to write after TIME.
if redis.replicate_commands then redis.replicate_commands() end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
-- A hit at t counts while now < t + window.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local counted = redis.call('ZCARD', KEYS[1])
local allowed = 0
if counted < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  -- The newest hit is this one, so the whole set is useless once it leaves the window.
  redis.call('PEXPIRE', KEYS[1], window)
  counted = counted + 1
  allowed = 1
end
local oldest = -1
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if first[2] then oldest = tonumber(first[2]) end
return {allowed, counted, oldest, now}
";

/// Rate limits shared by every instance connected to the same Redis.
pub struct RedisRateLimiter {
    redis: Redis,
    // `Script` sends EVALSHA and falls back to EVAL (loading the script) after a NOSCRIPT, e.g.
    // when Redis restarted or its script cache was flushed.
    script: redis::Script,
}

impl std::fmt::Debug for RedisRateLimiter {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("RedisRateLimiter")
    }
}

impl RedisRateLimiter {
    pub fn new(redis: Redis) -> Self {
        Self { redis, script: redis::Script::new(SLIDING_WINDOW_SCRIPT) }
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn hit(&self, key: &str, rate: RateLimit) -> Result<RateLimitDecision, StoreError> {
        let window_millis = rate.window_millis().min(MAX_WINDOW_MILLIS);
        // The window is at least 1 ms, so it has no sign to lose.
        let rate = RateLimit::new(
            rate.limit,
            std::time::Duration::from_millis(window_millis.unsigned_abs()),
        );
        // Two hits in the same millisecond must be two members, so each gets a random one;
        // 128 bits make a collision (which would silently count one hit fewer) negligible.
        let member = format!("{:032x}", rand::random::<u128>());
        let mut connection = self.redis.connection();
        let reply: Vec<i64> = self
            .script
            .key(format!("{KEY_PREFIX}{key}"))
            .arg(rate.limit)
            .arg(window_millis)
            .arg(member)
            .invoke_async(&mut connection)
            .await
            .map_err(map_redis_error)?;
        let [allowed, counted, oldest, now] = reply[..] else {
            return Err(StoreError::Corrupt(format!(
                "rate-limit script answered {} values instead of 4",
                reply.len()
            )));
        };
        let counted = u32::try_from(counted).unwrap_or(u32::MAX);
        let oldest = (oldest >= 0).then_some(oldest);
        Ok(RateLimitDecision::from_window(rate, allowed == 1, counted, oldest, now))
    }
}

/// Network trouble is `Unavailable` (the caller decides whether to fail open or closed); only
/// the error's category is kept, because a Redis error's detail can echo the URL.
fn map_redis_error(error: redis::RedisError) -> StoreError {
    let kind = format!("{:?}", error.kind());
    if error.is_io_error()
        || error.is_connection_refusal()
        || error.is_connection_dropped()
        || error.is_timeout()
    {
        StoreError::Unavailable(format!("Redis rate limiter: {kind}"))
    } else {
        StoreError::Other(format!("Redis rate limiter: {kind}"))
    }
}
