//! The rate-limit policy: which per-client budgets ([`Bucket`]) exist, the limiter key and the
//! limit of each, and what a spent budget answers. The API's per-route layer and the hosted
//! pages both spend through [`RateLimitPolicy`], so a page and its API route share one budget
//! by construction (switching between them gives no extra guesses).

use gatehouse_domain::ratelimit::{RateLimit, RateLimitDecision, RateLimiter};

/// A per-client budget, shared by every route and page that spends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    /// Password guesses: `POST /v1/auth/sign-in`, the second factor and re-authentication,
    /// the `/login` page.
    SignIn,
    SignUp,
    Refresh,
    /// Requests that send an email or SMS (reset, magic link, verification resend, codes),
    /// and the `/forgot-password` page.
    Email,
}

impl Bucket {
    /// The bucket's part of the limiter key (stable: keys live in Redis across deployments).
    fn name(self) -> &'static str {
        match self {
            Bucket::SignIn => "sign-in",
            Bucket::SignUp => "sign-up",
            Bucket::Refresh => "refresh",
            Bucket::Email => "email",
        }
    }
}

/// Limits per bucket, from configuration.
#[derive(Debug, Clone)]
pub struct RateLimits {
    /// Namespaces the keys, so deployments (or test runs) sharing one Redis stay apart.
    pub key_prefix: String,
    pub sign_in: RateLimit,
    pub sign_up: RateLimit,
    pub refresh: RateLimit,
    pub email: RateLimit,
}

impl RateLimits {
    /// The limiter key and the limit of `bucket` for the client at `client_ip` (`unknown` when
    /// the address is not known): the one place keys are built.
    pub fn key_and_limit(&self, bucket: Bucket, client_ip: Option<&str>) -> (String, RateLimit) {
        let limit = match bucket {
            Bucket::SignIn => self.sign_in,
            Bucket::SignUp => self.sign_up,
            Bucket::Refresh => self.refresh,
            Bucket::Email => self.email,
        };
        let client = client_ip.map_or_else(|| "unknown".to_owned(), limited_address);
        (format!("{}{}:{client}", self.key_prefix, bucket.name()), limit)
    }
}

/// The part of a client address a budget is kept for: an IPv4 address as is, an IPv6 address
/// by its /64 (one subscriber usually holds a whole /64, so keying on the full address would
/// give one machine 2^64 budgets). An IPv4-mapped IPv6 address counts as its IPv4 address.
fn limited_address(ip: &str) -> String {
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let network = u128::from(v6) & (u128::MAX << 64);
                format!("{}/64", std::net::Ipv6Addr::from(network))
            }
        },
        _ => ip.to_owned(),
    }
}

/// What spending one request of a budget answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No decision: rate limiting is off, or the limiter store failed.
    Unchecked,
    /// Within the budget.
    Allowed(RateLimitDecision),
    /// The budget is spent; `retry_after_seconds` (at least 1) says for how long.
    Refused { decision: RateLimitDecision, retry_after_seconds: u64 },
}

/// The limiter and the limits, borrowed from the state for one request.
pub struct RateLimitPolicy<'a> {
    limiter: Option<&'a dyn RateLimiter>,
    limits: &'a RateLimits,
}

impl<'a> RateLimitPolicy<'a> {
    /// `limiter` is `None` when rate limiting is disabled.
    pub fn new(limiter: Option<&'a dyn RateLimiter>, limits: &'a RateLimits) -> Self {
        Self { limiter, limits }
    }

    /// Spends one request of `bucket` for the client at `client_ip`. A failing limiter store
    /// lets the request through (logged): availability over strictness — a broken store must
    /// not take sign-in down, and lockout still protects accounts.
    pub async fn spend(&self, bucket: Bucket, client_ip: Option<&str>) -> Verdict {
        let Some(limiter) = self.limiter else { return Verdict::Unchecked };
        let (key, limit) = self.limits.key_and_limit(bucket, client_ip);
        match limiter.hit(&key, limit).await {
            Ok(decision) if decision.allowed => Verdict::Allowed(decision),
            Ok(decision) => {
                let retry_after_seconds = decision.retry_after.map_or(1, seconds_up).max(1);
                Verdict::Refused { decision, retry_after_seconds }
            }
            Err(error) => {
                tracing::error!(%error, bucket = bucket.name(), "rate limiter unavailable; letting the request through");
                Verdict::Unchecked
            }
        }
    }
}

/// Whole seconds, rounded up.
pub fn seconds_up(duration: std::time::Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn every_bucket_has_its_own_key_and_limit() {
        let per_minute = |limit| RateLimit::new(limit, Duration::from_secs(60));
        let limits = RateLimits {
            key_prefix: "gh:".into(),
            sign_in: per_minute(1),
            sign_up: per_minute(2),
            refresh: per_minute(3),
            email: per_minute(4),
        };
        let check = |bucket, ip, key: &str, limit| {
            assert_eq!(limits.key_and_limit(bucket, ip), (key.to_owned(), per_minute(limit)));
        };
        check(Bucket::SignIn, Some("203.0.113.9"), "gh:sign-in:203.0.113.9", 1);
        check(Bucket::SignUp, Some("203.0.113.9"), "gh:sign-up:203.0.113.9", 2);
        check(Bucket::Refresh, Some("203.0.113.10"), "gh:refresh:203.0.113.10", 3);
        check(Bucket::Email, None, "gh:email:unknown", 4);
    }

    /// Regression (#19, finding 8): IPv6 budgets were kept per address, so one host with a /64
    /// had 2^64 budgets. Two addresses of one /64 now share a key; another /64 does not.
    #[test]
    fn ipv6_clients_share_a_budget_per_64() {
        let limits = RateLimits {
            key_prefix: "gh:".into(),
            sign_in: RateLimit::new(1, Duration::from_secs(60)),
            sign_up: RateLimit::new(1, Duration::from_secs(60)),
            refresh: RateLimit::new(1, Duration::from_secs(60)),
            email: RateLimit::new(1, Duration::from_secs(60)),
        };
        let key = |ip| limits.key_and_limit(Bucket::SignIn, Some(ip)).0;
        assert_eq!(key("2001:db8:1:2::1"), "gh:sign-in:2001:db8:1:2::/64");
        assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff:ee:dd:cc"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:203.0.113.9"), key("203.0.113.9"));
    }

    #[test]
    fn durations_round_up_to_whole_seconds() {
        assert_eq!(seconds_up(Duration::ZERO), 0);
        assert_eq!(seconds_up(Duration::from_millis(1)), 1);
        assert_eq!(seconds_up(Duration::from_secs(2)), 2);
        assert_eq!(seconds_up(Duration::from_millis(2001)), 3);
    }
}
