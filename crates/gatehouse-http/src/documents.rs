//! Pre-serialised well-known documents (JWKS, discovery): built once per key-set change and
//! answered as shared bytes, so the hot path does no JSON work.

use std::sync::Arc;

use arc_swap::ArcSwapOption;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;

use crate::headers::ADDED_HEADERS;

/// A well-known document's answer: JSON, cacheable by anyone for five minutes, readable from
/// browsers. The header map is sized for these headers, the ones every answer gets
/// ([`ADDED_HEADERS`]) and `Content-Length`, so it is allocated once
/// instead of grown and rehashed on the way out (a measurable share of a JWKS answer).
pub(crate) fn document_response(bytes: Bytes) -> Response {
    let mut headers = HeaderMap::with_capacity(3 + ADDED_HEADERS + 1);
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    let mut response = Response::new(Body::from(bytes));
    *response.headers_mut() = headers;
    response
}

/// One cached document, valid while its source (the key set it was built from) is the same
/// `Arc` the key service hands out. A lock-free slot: read on every answer from every core.
#[derive(Default)]
pub struct CachedDocument {
    slot: ArcSwapOption<(Arc<serde_json::Value>, Bytes)>,
}

impl CachedDocument {
    /// The bytes built from `source`, building them with `build` when the source changed.
    pub fn get_or_build(
        &self,
        source: &Arc<serde_json::Value>,
        build: impl FnOnce(&serde_json::Value) -> serde_json::Value,
    ) -> Bytes {
        if let Some((cached_source, bytes)) = self.slot.load().as_deref()
            && Arc::ptr_eq(cached_source, source)
        {
            return bytes.clone();
        }
        let bytes = Bytes::from(serde_json::to_vec(&build(source)).unwrap_or_default());
        self.slot.store(Some(Arc::new((source.clone(), bytes.clone()))));
        bytes
    }
}

/// The documents the server pre-serialises.
#[derive(Default)]
pub struct Documents {
    pub jwks: CachedDocument,
    pub discovery: CachedDocument,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_rebuilt_only_when_the_source_changes() {
        let cache = CachedDocument::default();
        let first = Arc::new(serde_json::json!({ "keys": [1] }));
        let mut builds = 0;
        for _ in 0..3 {
            let bytes = cache.get_or_build(&first, |value| {
                builds += 1;
                value.clone()
            });
            assert_eq!(&bytes[..], br#"{"keys":[1]}"#);
        }
        assert_eq!(builds, 1);
        let second = Arc::new(serde_json::json!({ "keys": [2] }));
        let bytes = cache.get_or_build(&second, |value| value.clone());
        assert_eq!(&bytes[..], br#"{"keys":[2]}"#);
    }
}
