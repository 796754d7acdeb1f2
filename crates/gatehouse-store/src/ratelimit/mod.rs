//! Implementations of the domain's `RateLimiter` port: an exact in-process sliding-window log
//! for a single instance, and a Redis sorted set per key shared by every instance.
//!
//! Both count only allowed hits and derive their answer through
//! `RateLimitDecision::from_window`, so the two agree on every header value.

mod memory;
mod redis;

pub use self::memory::{MemoryRateLimiter, MemorySweep};
pub use self::redis::{KEY_PREFIX, RedisRateLimiter};
