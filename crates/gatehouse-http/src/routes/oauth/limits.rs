//! The token endpoint's two budgets: per client IP and per client id. The client id is read
//! from the Basic header or the form body as sent, before the client is authenticated (an
//! unknown id gets a budget of its own, keyed by its text), so a client's guesses or flood
//! are bounded from any number of addresses, and an address's from any number of ids.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use gatehouse_domain::oauth::OAuthError;

use super::form::decode_basic;
use super::response::OAuthErrorResponse;
use crate::client::client_ip;
use crate::middleware::too_many_requests;
use crate::ratelimit::{Bucket, Subject, Verdict, insert_headers};
use crate::state::AppState;

/// Spends the per-IP budget, then the per-client one; the first spent answers 429 (OAuth
/// format, `Retry-After`). The `RateLimit-*` headers are those of the budget with the fewest
/// requests left.
pub(crate) async fn token_budget(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let policy = state.rate_limit_policy();
    if !policy.enabled() {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let ip = client_ip(&parts, &state.settings.trusted_proxies).map(|ip| ip.to_string());
    let bytes = match axum::body::to_bytes(body, state.settings.body_limit_bytes).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return OAuthErrorResponse::from(OAuthError::InvalidRequest(
                "the body could not be read or is too large".into(),
            ))
            .into_response();
        }
    };
    let client_id = client_id(&parts, &bytes);
    let request = Request::from_parts(parts, Body::from(bytes));
    let mut decisions = Vec::with_capacity(2);
    let subjects = [(Bucket::Token, Subject::Ip(ip.as_deref()))]
        .into_iter()
        .chain(client_id.as_deref().map(|id| (Bucket::TokenClient, Subject::Client(id))));
    for (bucket, subject) in subjects {
        match policy.spend_as(bucket, subject).await {
            Verdict::Unchecked => {}
            Verdict::Unavailable => return crate::middleware::limiter_unavailable(bucket),
            Verdict::Allowed(decision) => decisions.push(decision),
            Verdict::Refused { decision, retry_after_seconds } => {
                let mut response = too_many_requests(bucket, retry_after_seconds);
                insert_headers(response.headers_mut(), &decision);
                return response;
            }
        }
    }
    let mut response = next.run(request).await;
    if let Some(tightest) = decisions.iter().min_by_key(|decision| decision.remaining) {
        insert_headers(response.headers_mut(), tightest);
    }
    response
}

/// The client id the request names: the Basic user name, else the `client_id` form field.
fn client_id(parts: &axum::http::request::Parts, body: &[u8]) -> Option<String> {
    let basic = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Basic "))
        .and_then(decode_basic)
        .map(|(id, _secret)| id);
    basic
        .or_else(|| {
            url::form_urlencoded::parse(body)
                .find(|(name, _)| name == "client_id")
                .map(|(_, value)| value.into_owned())
        })
        .filter(|id| !id.is_empty())
}
