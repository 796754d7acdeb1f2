//! Rate limiting as a port: the sliding-window rule (`RateLimit`), what a hit answers
//! (`RateLimitDecision`), and the `RateLimiter` trait the store implements in memory or on Redis.
//!
//! The window is a sliding log, not fixed buckets: a hit counts for exactly `window` after it
//! happened, so a client cannot double its budget by straddling a bucket boundary.

use std::time::Duration;

use async_trait::async_trait;

use crate::StoreError;

/// At most `limit` counted hits in any `window`, e.g. 5 sign-in attempts per 60 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub limit: u32,
    pub window: Duration,
}

impl RateLimit {
    pub const fn new(limit: u32, window: Duration) -> Self {
        Self { limit, window }
    }

    /// The window in whole milliseconds, at least 1: a zero window would make every hit leave
    /// the window the instant it is counted, and an expiry of 0 deletes a Redis key outright.
    pub fn window_millis(&self) -> i64 {
        i64::try_from(self.window.as_millis()).unwrap_or(i64::MAX).max(1)
    }
}

/// The answer to one hit, carrying what the HTTP layer needs for `RateLimit-*` and
/// `Retry-After` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitDecision {
    pub allowed: bool,
    pub limit: u32,
    /// Hits still allowed in the window after this one (0 when refused).
    pub remaining: u32,
    /// Until the oldest counted hit leaves the window (for `RateLimit-Reset`); zero when the
    /// window holds nothing.
    pub reset_after: Duration,
    /// `Some` when refused: until one slot frees. Always positive, so a caller rounding up to
    /// whole seconds never answers `Retry-After: 0`.
    pub retry_after: Option<Duration>,
}

impl RateLimitDecision {
    /// Builds the decision from the state of a sliding-window log, so every backend does the
    /// same arithmetic.
    ///
    /// `counted` is the number of hits in the window after this one was (or was not) counted;
    /// `oldest_millis` is the timestamp of the oldest of them (`None` when there are none).
    pub fn from_window(
        rate: RateLimit,
        allowed: bool,
        counted: u32,
        oldest_millis: Option<i64>,
        now_millis: i64,
    ) -> Self {
        let window_millis = rate.window_millis();
        // The oldest hit leaves when `now >= oldest + window`. A clock that stepped back can
        // make this exceed the window; clamp so the hint stays sensible.
        let reset_millis = oldest_millis.map_or(0, |oldest| {
            oldest.saturating_add(window_millis).saturating_sub(now_millis).clamp(0, window_millis)
        });
        let reset_after = duration_from_millis(reset_millis);
        let retry_after = if allowed {
            None
        } else if counted == 0 {
            // Only a zero limit refuses an empty window; no slot will ever free, so the window
            // is the most honest finite hint.
            Some(duration_from_millis(window_millis))
        } else {
            // The window is full, so the first slot frees when the oldest hit leaves. A backend
            // prunes hits at `oldest + window <= now`, so this is at least 1 ms.
            Some(duration_from_millis(reset_millis.max(1)))
        };
        Self {
            allowed,
            limit: rate.limit,
            remaining: if allowed { rate.limit.saturating_sub(counted) } else { 0 },
            reset_after,
            retry_after,
        }
    }

    /// `retry_after` rounded up to whole seconds, at least 1, for a `Retry-After` header.
    pub fn retry_after_seconds(&self) -> Option<u64> {
        self.retry_after.map(|wait| ceil_seconds(wait).max(1))
    }

    /// `reset_after` rounded up to whole seconds, for a `RateLimit-Reset` header.
    pub fn reset_after_seconds(&self) -> u64 {
        ceil_seconds(self.reset_after)
    }
}

fn duration_from_millis(millis: i64) -> Duration {
    Duration::from_millis(u64::try_from(millis).unwrap_or(0))
}

fn ceil_seconds(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

/// Sliding-window limiter port. A refused hit is not counted (so a client hammering while
/// refused does not extend its own block forever).
///
/// Keys are chosen by the caller and should name both the action and the subject
/// (`"sign-in:ip:203.0.113.7"`), so different rules never share a budget by accident.
#[async_trait]
pub trait RateLimiter: Send + Sync {
    async fn hit(&self, key: &str, rate: RateLimit) -> Result<RateLimitDecision, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIVE_PER_MINUTE: RateLimit = RateLimit::new(5, Duration::from_secs(60));

    #[test]
    fn first_hit_resets_after_a_full_window() {
        let decision = RateLimitDecision::from_window(FIVE_PER_MINUTE, true, 1, Some(1_000), 1_000);
        assert_eq!(
            decision,
            RateLimitDecision {
                allowed: true,
                limit: 5,
                remaining: 4,
                reset_after: Duration::from_secs(60),
                retry_after: None,
            }
        );
    }

    #[test]
    fn refused_hit_waits_for_the_oldest_to_leave() {
        let decision =
            RateLimitDecision::from_window(FIVE_PER_MINUTE, false, 5, Some(1_000), 41_000);
        assert!(!decision.allowed);
        assert_eq!(decision.remaining, 0);
        assert_eq!(decision.reset_after, Duration::from_secs(20));
        assert_eq!(decision.retry_after, Some(Duration::from_secs(20)));
    }

    #[test]
    fn retry_after_rounds_up_to_at_least_one_second() {
        let decision =
            RateLimitDecision::from_window(FIVE_PER_MINUTE, false, 5, Some(1_000), 60_999);
        assert_eq!(decision.retry_after, Some(Duration::from_millis(1)));
        assert_eq!(decision.retry_after_seconds(), Some(1));
        assert_eq!(decision.reset_after_seconds(), 1);
    }

    #[test]
    fn zero_limit_refuses_with_the_window_as_hint() {
        let never = RateLimit::new(0, Duration::from_secs(30));
        let decision = RateLimitDecision::from_window(never, false, 0, None, 5_000);
        assert_eq!(decision.remaining, 0);
        assert_eq!(decision.reset_after, Duration::ZERO);
        assert_eq!(decision.retry_after_seconds(), Some(30));
    }

    #[test]
    fn clock_stepping_back_keeps_hints_within_the_window() {
        let decision =
            RateLimitDecision::from_window(FIVE_PER_MINUTE, false, 5, Some(100_000), 1_000);
        assert_eq!(decision.retry_after, Some(Duration::from_secs(60)));
    }

    #[test]
    fn zero_window_counts_as_one_millisecond() {
        assert_eq!(RateLimit::new(1, Duration::ZERO).window_millis(), 1);
        assert_eq!(RateLimit::new(1, Duration::MAX).window_millis(), i64::MAX);
    }
}
