//! The in-process rate limiter: an exact sliding-window log of hit timestamps per key, with
//! idle keys swept away so memory stays bounded.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use gatehouse_domain::ratelimit::{RateLimit, RateLimitDecision, RateLimiter};
use gatehouse_domain::{Clock, StoreError};

/// When the limiter walks every key to forget the idle ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemorySweep {
    /// Sweep after this many hits — or after as many hits as there are tracked keys, if that is
    /// more, so a sweep costs O(1) per hit amortised however many keys are live.
    pub every_hits: u64,
    /// Sweep at once when the map grows past this many keys. If most keys are still live after
    /// the sweep, the next one waits until the map doubles, so a flood of distinct clients
    /// cannot make every hit walk the whole map.
    pub max_keys: usize,
}

impl Default for MemorySweep {
    fn default() -> Self {
        Self { every_hits: 1_024, max_keys: 100_000 }
    }
}

/// Rate limits for a single Gatehouse instance (no Redis configured). Time comes from the
/// injected clock, so tests move time instead of sleeping.
pub struct MemoryRateLimiter {
    clock: Arc<dyn Clock>,
    sweep: MemorySweep,
    // A std mutex is enough: each critical section is a few map operations and never awaits.
    state: Mutex<State>,
}

struct State {
    logs: HashMap<String, HitLog>,
    hits_since_sweep: u64,
    sweep_above_keys: usize,
}

/// The counted hits of one key, oldest first.
struct HitLog {
    hits: VecDeque<i64>,
    /// When the newest counted hit leaves its window; after that the key holds nothing.
    forget_at_millis: i64,
}

impl MemoryRateLimiter {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self::with_sweep(clock, MemorySweep::default())
    }

    pub fn with_sweep(clock: Arc<dyn Clock>, sweep: MemorySweep) -> Self {
        Self {
            clock,
            sweep,
            state: Mutex::new(State {
                logs: HashMap::new(),
                hits_since_sweep: 0,
                sweep_above_keys: sweep.max_keys,
            }),
        }
    }

    /// How many keys currently hold a log (idle ones included until the next sweep).
    pub fn tracked_keys(&self) -> usize {
        self.lock().logs.len()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing in a critical section can panic halfway through a change that matters: at
        // worst a log misses one hit. Recovering beats refusing every request afterwards.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn hit_now(&self, key: &str, rate: RateLimit) -> RateLimitDecision {
        let now_millis = self.clock.now_millis();
        let window_millis = rate.window_millis();
        let limit = usize::try_from(rate.limit).unwrap_or(usize::MAX);

        let mut state = self.lock();
        let (allowed, counted, oldest_millis) = match state.logs.get_mut(key) {
            Some(log) => {
                log.prune(now_millis, window_millis);
                let allowed = log.hits.len() < limit;
                if allowed {
                    log.record(now_millis, window_millis);
                }
                (allowed, log.hits.len(), log.hits.front().copied())
            }
            // A zero limit refuses without remembering the key: there is nothing to count.
            None if limit == 0 => (false, 0, None),
            None => {
                let mut log = HitLog { hits: VecDeque::new(), forget_at_millis: now_millis };
                log.record(now_millis, window_millis);
                state.logs.insert(key.to_owned(), log);
                (true, 1, Some(now_millis))
            }
        };
        state.hits_since_sweep = state.hits_since_sweep.saturating_add(1);
        if state.sweep_due(self.sweep) {
            state.sweep(now_millis, self.sweep);
        }
        drop(state);

        let counted = u32::try_from(counted).unwrap_or(u32::MAX);
        RateLimitDecision::from_window(rate, allowed, counted, oldest_millis, now_millis)
    }
}

impl HitLog {
    /// Drops the hits that have left the window: a hit at `t` counts while `now < t + window`.
    fn prune(&mut self, now_millis: i64, window_millis: i64) {
        let oldest_kept = now_millis.saturating_sub(window_millis);
        while self.hits.front().is_some_and(|&hit| hit <= oldest_kept) {
            self.hits.pop_front();
        }
    }

    fn record(&mut self, now_millis: i64, window_millis: i64) {
        self.hits.push_back(now_millis);
        self.forget_at_millis = now_millis.saturating_add(window_millis);
    }
}

impl State {
    fn sweep_due(&self, sweep: MemorySweep) -> bool {
        let tracked = self.logs.len();
        let hits_between_sweeps = sweep.every_hits.max(u64::try_from(tracked).unwrap_or(u64::MAX));
        self.hits_since_sweep >= hits_between_sweeps || tracked > self.sweep_above_keys
    }

    fn sweep(&mut self, now_millis: i64, sweep: MemorySweep) {
        self.logs.retain(|_, log| log.forget_at_millis > now_millis);
        // A HashMap keeps its peak capacity; give memory back after a flood has passed.
        if self.logs.capacity() > 4 * self.logs.len().max(1_024) {
            self.logs.shrink_to_fit();
        }
        self.hits_since_sweep = 0;
        self.sweep_above_keys = sweep.max_keys.max(self.logs.len().saturating_mul(2));
    }
}

#[async_trait]
impl RateLimiter for MemoryRateLimiter {
    async fn hit(&self, key: &str, rate: RateLimit) -> Result<RateLimitDecision, StoreError> {
        Ok(self.hit_now(key, rate))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use gatehouse_domain::ManualClock;

    use super::*;

    #[test]
    fn a_flood_of_live_keys_does_not_sweep_on_every_hit() {
        let clock = Arc::new(ManualClock::new(1_000));
        let limiter = MemoryRateLimiter::with_sweep(
            clock.clone(),
            MemorySweep { every_hits: 1_000, max_keys: 4 },
        );
        let rate = RateLimit::new(1, Duration::from_secs(60));
        for client in 0..5 {
            limiter.hit_now(&format!("client-{client}"), rate);
        }
        // The fifth key crossed the cap; all five are live, so the next sweep waits for 10.
        assert_eq!(limiter.lock().sweep_above_keys, 10);
        assert_eq!(limiter.tracked_keys(), 5);
    }

    #[test]
    fn a_zero_limit_is_not_remembered() {
        let limiter = MemoryRateLimiter::new(Arc::new(ManualClock::new(1_000)));
        let decision = limiter.hit_now("closed", RateLimit::new(0, Duration::from_secs(10)));
        assert!(!decision.allowed);
        assert_eq!(limiter.tracked_keys(), 0);
    }
}
