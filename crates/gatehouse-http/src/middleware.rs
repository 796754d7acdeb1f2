//! The middleware: the stack every request goes through (request ids, tracing spans, metrics,
//! error logging, security headers, panics as 500 problems, timeouts and body limits), and the
//! per-route rate-limit layer of the API ([`limit`]).
//!
//! Request ids, the span, metrics, logging, the response headers, the panic guard and the
//! timeout are one middleware ([`observe`]) rather than eight tower layers: the router clones
//! and drops the whole layered service for every request, and each layer adds its own future,
//! so folding them measurably raises the throughput of the cheapest routes (JWKS, discovery).

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt as _;
use tower::ServiceBuilder;
use tower_http::request_id::RequestId;
use tracing::Instrument as _;

use crate::client::client_ip;
use crate::error::{ApiError, ErrorForLog};
use crate::headers::{REQUEST_ID, secure_headers};
use crate::ratelimit::{Bucket, Subject, Verdict, insert_headers};
use crate::state::AppState;

pub(crate) fn wrap(routes: Router<AppState>, state: AppState) -> Router {
    let settings = state.settings.clone();
    routes
        .layer(
            ServiceBuilder::new()
                .layer(from_fn_with_state(state.clone(), observe))
                .layer(DefaultBodyLimit::max(settings.body_limit_bytes)),
        )
        .with_state(state)
}

/// Runs a request's future: a panic answers a 500 problem (the server keeps serving), going
/// past `timeout` answers 408 and drops the future.
async fn guarded(timeout: Duration, future: impl Future<Output = Response>) -> Response {
    match tokio::time::timeout(timeout, AssertUnwindSafe(future).catch_unwind()).await {
        Ok(Ok(response)) => response,
        Ok(Err(_panic)) => ApiError::internal("a handler panicked").into_response(),
        Err(_elapsed) => StatusCode::REQUEST_TIMEOUT.into_response(),
    }
}

/// The request's id: the one a proxy sent (so logs line up across hops), or a new UUID.
/// Handlers read it from the `RequestId` extension; the answer carries it back. (Not also
/// written into the request's headers: growing that map cost more than the rest of this.)
fn request_id(request: &mut Request) -> Option<HeaderValue> {
    let id = match request.headers().get(&REQUEST_ID) {
        Some(sent) => sent.clone(),
        None => {
            let mut buffer = uuid::Uuid::encode_buffer();
            let new = uuid::Uuid::new_v4();
            HeaderValue::from_str(new.hyphenated().encode_lower(&mut buffer)).ok()?
        }
    };
    request.extensions_mut().insert(RequestId::new(id.clone()));
    Some(id)
}

/// Gives the request its id, runs it in a (DEBUG) span, records it in metrics, logs an error
/// answer once with its internal cause, and sets the security headers.
async fn observe(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let id = request_id(&mut request);
    // DEBUG: formatting these fields costs a tenth of a cheap request's time; the lines
    // logged below name the request themselves. Disabled, the macro formats nothing.
    let span = tracing::debug_span!(
        "request",
        method = %method,
        path = %request.uri().path(),
        request_id = id.as_ref().and_then(|id| id.to_str().ok()).unwrap_or("-"),
    );
    let timeout = state.settings.request_timeout;
    let mut response = guarded(timeout, next.run(request)).instrument(span).await;
    secure_headers(response.headers_mut(), id.clone(), state.settings.strict_transport_security);
    let status = response.status();
    state.metrics.record_request(
        method.as_str(),
        route.as_ref().map_or("unmatched", MatchedPath::as_str),
        status.as_u16(),
        started.elapsed().as_secs_f64(),
    );
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    let request_id = id.as_ref().and_then(|id| id.to_str().ok()).unwrap_or("-");
    if let Some(error) = response.extensions_mut().remove::<ErrorForLog>() {
        let internal = error.internal.as_deref().unwrap_or("");
        if status.is_server_error() {
            tracing::error!(
                %method,
                route,
                request_id,
                status = status.as_u16(),
                code = error.code,
                internal,
                "request failed"
            );
        } else {
            tracing::info!(
                %method,
                route,
                request_id,
                status = status.as_u16(),
                code = error.code,
                "request rejected"
            );
        }
    } else if status == StatusCode::REQUEST_TIMEOUT {
        tracing::warn!(%method, route, request_id, "request timed out");
    }
    response
}

/// Spends one request of `bucket` for the client IP before the route runs: `429` with
/// `Retry-After` once the budget is spent, and the `RateLimit-*` headers
/// (draft-ietf-httpapi-ratelimit-headers) on every decided answer.
pub(crate) async fn limit(
    State((state, bucket)): State<(AppState, Bucket)>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let ip = client_ip(&parts, &state.settings.trusted_proxies).map(|ip| ip.to_string());
    let request = Request::from_parts(parts, body);
    let (mut response, decision) =
        match state.rate_limit_policy().spend(bucket, ip.as_deref()).await {
            Verdict::Unchecked => return next.run(request).await,
            Verdict::Unavailable => return limiter_unavailable(bucket),
            Verdict::Allowed(decision) => (next.run(request).await, decision),
            Verdict::Refused { decision, retry_after_seconds } => {
                (too_many_requests(bucket, retry_after_seconds), decision)
            }
        };
    insert_headers(response.headers_mut(), &decision);
    response
}

/// The 429 answer of a spent `bucket`: problem+json `rate_limited` for the API, and for the
/// OAuth endpoints their RFCs' format (`{"error": "rate_limited", "error_description"}`, not
/// cached; RFC 6749 has no rate-limit error code, so ours is an extension code), both with
/// `Retry-After`.
pub(crate) fn too_many_requests(bucket: Bucket, retry_after_seconds: u64) -> Response {
    if !bucket.answers_oauth() {
        return ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "Too many requests; slow down.",
        )
        .with_retry_after(retry_after_seconds)
        .into_response();
    }
    let body = serde_json::json!({
        "error": "rate_limited",
        "error_description": format!("too many requests; retry after {retry_after_seconds} s"),
    });
    let mut response = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_seconds));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response.extensions_mut().insert(ErrorForLog { code: "rate_limited", internal: None });
    response
}

/// The answer while the limiter's store is down, for a budget that fails closed: 503 with
/// `Retry-After`, problem+json for the API and the RFCs' format for the OAuth endpoints.
pub(crate) fn limiter_unavailable(bucket: Bucket) -> Response {
    if !bucket.answers_oauth() {
        return ApiError::limiter_unavailable().into_response();
    }
    let body = serde_json::json!({
        "error": "temporarily_unavailable",
        "error_description": "attempts cannot be counted right now; try again shortly",
    });
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::RETRY_AFTER,
        HeaderValue::from(crate::error::UNAVAILABLE_RETRY_AFTER_SECONDS),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
        .extensions_mut()
        .insert(ErrorForLog { code: "temporarily_unavailable", internal: None });
    response
}

/// The general `/v1` budget: GET and HEAD spend the read budget, every other method the write
/// budget, of the principal a valid bearer names (so users of one server-side app behind one
/// IP are not throttled as one), or of the client IP when there is no valid bearer. The
/// principal found is left in the request's extensions, where the `Authenticated` and `Admin`
/// extractors take it instead of checking the token a second time. A route's own budget
/// (sign-in, email, ...) is spent after this one, and its `RateLimit-*` headers, the more
/// specific, are the ones kept.
pub(crate) async fn api_budget(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let policy = state.rate_limit_policy();
    if !policy.enabled() {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    let bucket = match parts.method {
        Method::GET | Method::HEAD => Bucket::ApiRead,
        _ => Bucket::ApiWrite,
    };
    let principal = crate::auth::identify(&mut parts, &state).await;
    let ip = client_ip(&parts, &state.settings.trusted_proxies).map(|ip| ip.to_string());
    let subject = match &principal {
        Some(principal) => Subject::Principal(principal),
        None => Subject::Ip(ip.as_deref()),
    };
    let verdict = policy.spend_as(bucket, subject).await;
    let request = Request::from_parts(parts, body);
    let (mut response, decision) = match verdict {
        Verdict::Unchecked => return next.run(request).await,
        // The general budgets fail open.
        Verdict::Unavailable => return limiter_unavailable(bucket),
        Verdict::Allowed(decision) => (next.run(request).await, decision),
        Verdict::Refused { decision, retry_after_seconds } => {
            (too_many_requests(bucket, retry_after_seconds), decision)
        }
    };
    if !response.headers().contains_key("ratelimit-limit") {
        insert_headers(response.headers_mut(), &decision);
    }
    response
}

/// CORS for the first-party API (`/v1`), for browser apps on other origins: only the exact
/// origins the operator listed (`cors.allowed_origins`) get `Access-Control-Allow-Origin` (their
/// own origin, never `*`) with credentials, and a preflight from one of them is answered here,
/// cached by the browser for `cors.max_age_seconds`. Any other origin gets no CORS header, so
/// the browser keeps its answer from the page. With no origin listed (the default) this
/// passes every request through untouched.
pub(crate) async fn api_cors(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let cors = &state.settings.cors;
    let origin = match request.headers().get(header::ORIGIN) {
        Some(origin) if cors.allows(origin) => origin.clone(),
        _ => return next.run(request).await,
    };
    if request.method() == Method::OPTIONS
        && request.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    {
        let mut response = StatusCode::NO_CONTENT.into_response();
        let headers = response.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, PUT, PATCH, DELETE"),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(
                "authorization, content-type, dpop, idempotency-key, x-request-id",
            ),
        );
        headers.insert(header::ACCESS_CONTROL_MAX_AGE, cors.max_age.clone());
        headers.insert(header::VARY, HeaderValue::from_static("origin"));
        return response;
    }
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("retry-after, www-authenticate, x-request-id, location"),
    );
    headers.append(header::VARY, HeaderValue::from_static("origin"));
    response
}

#[cfg(test)]
mod tests {
    use axum::http::header;

    use super::*;

    #[tokio::test]
    async fn a_panicking_handler_answers_500_problem() {
        let handler = futures_util::future::lazy(|_| -> Response { panic!("boom") });
        let response = guarded(Duration::from_secs(5), handler).await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/problem+json");
    }

    #[tokio::test]
    async fn a_handler_past_the_timeout_answers_408() {
        let started = Instant::now();
        let response = guarded(Duration::from_millis(50), std::future::pending::<Response>()).await;
        assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
        assert!(started.elapsed() >= Duration::from_millis(50));
    }

    #[tokio::test]
    async fn a_prompt_handler_answers_as_it_did() {
        let response = guarded(Duration::from_secs(5), async {
            (StatusCode::CREATED, "made").into_response()
        })
        .await;
        assert_eq!(response.status(), StatusCode::CREATED);
    }
}
