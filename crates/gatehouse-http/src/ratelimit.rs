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
    /// `POST /oauth2/token` per client IP.
    Token,
    /// `POST /oauth2/token` per client id (as sent, before the client is authenticated; an
    /// unknown id gets a budget of its own keyed by its text).
    TokenClient,
    /// `POST /oauth2/introspect` and `/oauth2/revoke`.
    Introspect,
    /// `POST /oauth2/device_authorization`.
    DeviceAuthorization,
    /// A user code entered on the hosted `/device` page.
    DeviceVerification,
    /// The general `/v1` budgets (GET and HEAD; every other method): per principal when the
    /// bearer is valid, per IP otherwise.
    ApiRead,
    ApiWrite,
}

impl Bucket {
    /// The bucket's part of the limiter key (stable: keys live in Redis across deployments).
    fn name(self) -> &'static str {
        match self {
            Bucket::SignIn => "sign-in",
            Bucket::SignUp => "sign-up",
            Bucket::Refresh => "refresh",
            Bucket::Email => "email",
            Bucket::Token => "token",
            Bucket::TokenClient => "token-client",
            Bucket::Introspect => "introspect",
            Bucket::DeviceAuthorization => "device-authorization",
            Bucket::DeviceVerification => "device-verification",
            Bucket::ApiRead => "api-read",
            Bucket::ApiWrite => "api-write",
        }
    }

    /// Whether a refusal answers in the OAuth RFCs' format rather than problem+json.
    /// Whether the bucket guards guesses at a secret (a password, a code, a client secret, a
    /// user code): with the limiter's store down it refuses (503) rather than let unlimited
    /// guesses through, unless `rate_limit.fail_open` says otherwise. Other budgets let
    /// requests through while the store is down.
    pub fn fails_closed(self) -> bool {
        matches!(
            self,
            Bucket::SignIn | Bucket::Token | Bucket::TokenClient | Bucket::DeviceVerification
        )
    }

    pub fn answers_oauth(self) -> bool {
        matches!(
            self,
            Bucket::Token | Bucket::TokenClient | Bucket::Introspect | Bucket::DeviceAuthorization
        )
    }
}

/// Who a budget belongs to. The key's text says which kind, so an IP and a client id (or a
/// user id) that happen to be spelled alike never share a budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject<'a> {
    /// The client IP; `None` when it is not known.
    Ip(Option<&'a str>),
    /// An OAuth client id as sent (at most 128 bytes of it are used).
    Client(&'a str),
    /// An authenticated principal: `user:<id>` or `admin:<id>`.
    Principal(&'a str),
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
    pub token: RateLimit,
    pub introspect: RateLimit,
    pub device_authorization: RateLimit,
    pub device_verification: RateLimit,
    pub api_read: RateLimit,
    pub api_write: RateLimit,
    /// With the limiter's store (Redis) down, let every request through, the guarded ones
    /// too (`rate_limit.fail_open`); otherwise those answer 503.
    pub fail_open: bool,
}

impl RateLimits {
    /// The limiter key and the limit of `bucket` for the client at `client_ip` (`unknown` when
    /// the address is not known): the one place keys are built.
    pub fn key_and_limit(&self, bucket: Bucket, client_ip: Option<&str>) -> (String, RateLimit) {
        self.key_and_limit_of(bucket, Subject::Ip(client_ip))
    }

    /// The limiter key and the limit of `bucket` for `subject`. IP keys keep the form they
    /// always had (`<prefix><bucket>:<ip>`), so budgets in Redis survive an upgrade.
    pub fn key_and_limit_of(&self, bucket: Bucket, subject: Subject<'_>) -> (String, RateLimit) {
        let limit = match bucket {
            Bucket::SignIn => self.sign_in,
            Bucket::SignUp => self.sign_up,
            Bucket::Refresh => self.refresh,
            Bucket::Email => self.email,
            Bucket::Token | Bucket::TokenClient => self.token,
            Bucket::Introspect => self.introspect,
            Bucket::DeviceAuthorization => self.device_authorization,
            Bucket::DeviceVerification => self.device_verification,
            Bucket::ApiRead => self.api_read,
            Bucket::ApiWrite => self.api_write,
        };
        let (prefix, bucket) = (&self.key_prefix, bucket.name());
        let key = match subject {
            Subject::Ip(ip) => format!(
                "{prefix}{bucket}:{}",
                ip.map_or_else(|| "unknown".to_owned(), limited_address)
            ),
            Subject::Client(client_id) => {
                format!("{prefix}{bucket}:client:{}", truncate(client_id, 128))
            }
            Subject::Principal(principal) => format!("{prefix}{bucket}:{principal}"),
        };
        (key, limit)
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
    /// No decision: rate limiting is off, or the limiter store failed for a budget that fails
    /// open.
    Unchecked,
    /// The limiter store failed for a budget that fails closed: answer 503.
    Unavailable,
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
        self.spend_as(bucket, Subject::Ip(client_ip)).await
    }

    /// Whether limits are on at all (callers skip work that only keys a budget otherwise).
    pub fn enabled(&self) -> bool {
        self.limiter.is_some()
    }

    /// As [`Self::spend`], for any [`Subject`].
    pub async fn spend_as(&self, bucket: Bucket, subject: Subject<'_>) -> Verdict {
        let Some(limiter) = self.limiter else { return Verdict::Unchecked };
        let (key, limit) = self.limits.key_and_limit_of(bucket, subject);
        match limiter.hit(&key, limit).await {
            Ok(decision) if decision.allowed => Verdict::Allowed(decision),
            Ok(decision) => {
                let retry_after_seconds = decision.retry_after.map_or(1, seconds_up).max(1);
                Verdict::Refused { decision, retry_after_seconds }
            }
            Err(error) if self.limits.fail_open || !bucket.fails_closed() => {
                tracing::error!(%error, bucket = bucket.name(), "rate limiter unavailable; letting the request through");
                Verdict::Unchecked
            }
            Err(error) => {
                tracing::error!(%error, bucket = bucket.name(), "rate limiter unavailable; refusing what it guards");
                Verdict::Unavailable
            }
        }
    }
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` headers
/// (draft-ietf-httpapi-ratelimit-headers, the separate-field form) of `decision`.
pub fn insert_headers(headers: &mut axum::http::HeaderMap, decision: &RateLimitDecision) {
    use axum::http::HeaderValue;
    headers.insert("ratelimit-limit", HeaderValue::from(decision.limit));
    headers.insert("ratelimit-remaining", HeaderValue::from(decision.remaining));
    headers.insert("ratelimit-reset", HeaderValue::from(seconds_up(decision.reset_after)));
}

/// The `RateLimit-Remaining: 0` and `RateLimit-Reset` headers of a refusal whose budget is
/// not at hand (the per-account budget, spent inside a domain service).
pub fn insert_refusal_headers(headers: &mut axum::http::HeaderMap, retry_after_seconds: u64) {
    use axum::http::HeaderValue;
    headers.insert("ratelimit-remaining", HeaderValue::from(0u64));
    headers.insert("ratelimit-reset", HeaderValue::from(retry_after_seconds));
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
            token: per_minute(5),
            introspect: per_minute(6),
            device_authorization: per_minute(7),
            device_verification: per_minute(8),
            api_read: per_minute(9),
            api_write: per_minute(10),
            fail_open: false,
        };
        let check = |bucket, ip, key: &str, limit| {
            assert_eq!(limits.key_and_limit(bucket, ip), (key.to_owned(), per_minute(limit)));
        };
        check(Bucket::SignIn, Some("203.0.113.9"), "gh:sign-in:203.0.113.9", 1);
        check(Bucket::SignUp, Some("203.0.113.9"), "gh:sign-up:203.0.113.9", 2);
        check(Bucket::Refresh, Some("203.0.113.10"), "gh:refresh:203.0.113.10", 3);
        check(Bucket::Email, None, "gh:email:unknown", 4);
        check(Bucket::Token, Some("203.0.113.9"), "gh:token:203.0.113.9", 5);
        check(Bucket::Introspect, Some("::1"), "gh:introspect:::/64", 6);
        check(Bucket::DeviceAuthorization, None, "gh:device-authorization:unknown", 7);
        check(Bucket::DeviceVerification, None, "gh:device-verification:unknown", 8);
        let of = |bucket, subject| limits.key_and_limit_of(bucket, subject);
        assert_eq!(
            of(Bucket::TokenClient, Subject::Client("app")),
            ("gh:token-client:client:app".into(), per_minute(5))
        );
        assert_eq!(
            of(Bucket::ApiRead, Subject::Principal("user:usr_1")),
            ("gh:api-read:user:usr_1".into(), per_minute(9))
        );
        assert_eq!(
            of(Bucket::ApiWrite, Subject::Ip(Some("::1"))),
            ("gh:api-write:::/64".into(), per_minute(10))
        );
        // A client id is never confused with an IP, and a long one is cut (on a char boundary).
        assert_ne!(
            of(Bucket::TokenClient, Subject::Client("::1")).0,
            of(Bucket::TokenClient, Subject::Ip(Some("::1"))).0
        );
        let long = "é".repeat(100);
        assert_eq!(
            of(Bucket::TokenClient, Subject::Client(&long)).0,
            format!("gh:token-client:client:{}", "é".repeat(64))
        );
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
            token: RateLimit::new(1, Duration::from_secs(60)),
            introspect: RateLimit::new(1, Duration::from_secs(60)),
            device_authorization: RateLimit::new(1, Duration::from_secs(60)),
            device_verification: RateLimit::new(1, Duration::from_secs(60)),
            api_read: RateLimit::new(1, Duration::from_secs(60)),
            api_write: RateLimit::new(1, Duration::from_secs(60)),
            fail_open: false,
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
