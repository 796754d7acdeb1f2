//! Time as a port, so expiry rules are tested by moving a clock instead of sleeping.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The source of "now" for every rule that depends on time, in Unix seconds.
pub trait Clock: Send + Sync {
    /// Unix seconds.
    fn now(&self) -> i64 {
        self.now_millis().div_euclid(1000)
    }

    /// Unix milliseconds, for windows shorter than a second (rate limits).
    fn now_millis(&self) -> i64;
}

/// The real wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_millis(&self) -> i64 {
        // A clock before 1970 is a broken host; treating it as the epoch keeps us running and
        // makes every token look expired rather than valid forever.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// A clock that only moves when told to; for tests of expiry and retention.
#[derive(Debug)]
pub struct ManualClock {
    now_millis: AtomicI64,
}

impl ManualClock {
    /// Starts at `now` Unix seconds.
    pub fn new(now: i64) -> Self {
        Self { now_millis: AtomicI64::new(now * 1000) }
    }

    pub fn advance(&self, seconds: i64) {
        self.now_millis.fetch_add(seconds * 1000, Ordering::SeqCst);
    }

    pub fn advance_millis(&self, millis: i64) {
        self.now_millis.fetch_add(millis, Ordering::SeqCst);
    }

    pub fn set(&self, now: i64) {
        self.now_millis.store(now * 1000, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_millis(&self) -> i64 {
        self.now_millis.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(1_000);
        assert_eq!(clock.now(), 1_000);
        clock.advance(60);
        assert_eq!(clock.now(), 1_060);
        clock.set(5);
        assert_eq!(clock.now(), 5);
        clock.advance_millis(1_500);
        assert_eq!((clock.now(), clock.now_millis()), (6, 6_500));
    }

    #[test]
    fn system_clock_is_after_2024() {
        assert!(SystemClock.now() > 1_700_000_000);
    }
}
