//! Per-route, per-client-IP rate limits in front of the sensitive endpoints, with `429`,
//! `Retry-After` and `RateLimit-*` headers (draft-ietf-httpapi-ratelimit-headers).

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use gatehouse_domain::ratelimit::RateLimit;

use crate::client::client_ip;
use crate::error::ApiError;
use crate::state::AppState;

/// Which limit a route uses.
#[derive(Debug, Clone, Copy)]
pub enum LimitedRoute {
    SignIn,
    SignUp,
    Refresh,
    /// Requests that send an email (reset, magic link, verification resend).
    Email,
}

impl LimitedRoute {
    fn name(self) -> &'static str {
        match self {
            LimitedRoute::SignIn => "sign-in",
            LimitedRoute::SignUp => "sign-up",
            LimitedRoute::Refresh => "refresh",
            LimitedRoute::Email => "email",
        }
    }
}

/// Limits per route, from configuration.
#[derive(Debug, Clone)]
pub struct RateLimits {
    /// Namespaces the keys, so deployments (or test runs) sharing one Redis stay apart.
    pub key_prefix: String,
    pub sign_in: RateLimit,
    pub sign_up: RateLimit,
    pub refresh: RateLimit,
    pub email: RateLimit,
}

fn seconds_up(duration: std::time::Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

pub(crate) async fn limit(
    route: LimitedRoute,
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(limiter) = state.rate_limiter.clone() else { return next.run(request).await };
    let (parts, body) = request.into_parts();
    let ip = client_ip(&parts, &state.settings.trusted_proxies)
        .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
    let request = Request::from_parts(parts, body);
    let rate = match route {
        LimitedRoute::SignIn => state.rate_limits.sign_in,
        LimitedRoute::SignUp => state.rate_limits.sign_up,
        LimitedRoute::Refresh => state.rate_limits.refresh,
        LimitedRoute::Email => state.rate_limits.email,
    };
    let key = format!("{}{}:{ip}", state.rate_limits.key_prefix, route.name());
    let decision = match limiter.hit(&key, rate).await {
        Ok(decision) => decision,
        Err(error) => {
            // Availability over strictness: a broken limiter store must not take sign-in down.
            // Lockout still protects accounts.
            tracing::error!(%error, route = route.name(), "rate limiter unavailable; letting the request through");
            return next.run(request).await;
        }
    };
    let mut response = if decision.allowed {
        next.run(request).await
    } else {
        let retry_after = decision.retry_after.map_or(1, seconds_up).max(1);
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "Too many requests; slow down.",
        )
        .with_retry_after(retry_after)
        .into_response()
    };
    let headers = response.headers_mut();
    headers.insert("ratelimit-limit", HeaderValue::from(decision.limit));
    headers.insert("ratelimit-remaining", HeaderValue::from(decision.remaining));
    headers.insert("ratelimit-reset", HeaderValue::from(seconds_up(decision.reset_after)));
    response
}
