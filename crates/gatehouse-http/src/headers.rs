//! The headers the middleware adds to every answer (no sniffing, no framing, no referrer,
//! default CSP and `Cache-Control`, the request id, HSTS in production), and how many they are,
//! for the handlers that size their header maps in advance (`documents`).

use axum::http::{HeaderMap, HeaderName, HeaderValue, header};

/// The request id's header, read from a proxy and answered back.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// How many headers [`secure_headers`] may add to an answer (handlers of the hottest routes
/// size their header maps for them, see `documents::document_response`).
pub const ADDED_HEADERS: usize = 7;

/// `Strict-Transport-Security` in production: two years (the preload lists' minimum is one),
/// subdomains included. Not sent in development, where the server is reached over plain HTTP
/// on localhost and a pinned HSTS entry would break other local services.
pub const STRICT_TRANSPORT_SECURITY: HeaderValue =
    HeaderValue::from_static("max-age=63072000; includeSubDomains");

/// Headers every answer carries: no sniffing, no framing, no referrer leaks; a handler's own
/// CSP and Cache-Control win. The request id goes back to the caller unless a handler set one.
/// `strict_transport_security` (production) adds HSTS.
pub fn secure_headers(
    headers: &mut HeaderMap,
    request_id: Option<HeaderValue>,
    strict_transport_security: bool,
) {
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert_with(|| HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"));
    headers.entry(header::CACHE_CONTROL).or_insert_with(|| HeaderValue::from_static("no-store"));
    if let Some(id) = request_id {
        headers.entry(REQUEST_ID).or_insert(id);
    }
    if strict_transport_security {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, STRICT_TRANSPORT_SECURITY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn added_headers_counts_what_secure_headers_adds() {
        let mut headers = HeaderMap::new();
        secure_headers(&mut headers, Some(HeaderValue::from_static("req-1")), true);
        assert_eq!(headers.len(), ADDED_HEADERS);
    }
}
