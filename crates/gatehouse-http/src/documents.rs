//! Pre-serialised well-known documents (JWKS, discovery): built once per key-set change and
//! answered as shared bytes, so the hot path does no JSON work.

use std::sync::{Arc, RwLock};

use axum::body::Bytes;

/// One cached document, valid while its source (the key set it was built from) is the same
/// `Arc` the key service hands out.
#[derive(Default)]
pub struct CachedDocument {
    slot: RwLock<Option<(Arc<serde_json::Value>, Bytes)>>,
}

impl CachedDocument {
    /// The bytes built from `source`, building them with `build` when the source changed.
    pub fn get_or_build(
        &self,
        source: &Arc<serde_json::Value>,
        build: impl FnOnce(&serde_json::Value) -> serde_json::Value,
    ) -> Bytes {
        if let Ok(slot) = self.slot.read()
            && let Some((cached_source, bytes)) = slot.as_ref()
            && Arc::ptr_eq(cached_source, source)
        {
            return bytes.clone();
        }
        let bytes = Bytes::from(serde_json::to_vec(&build(source)).unwrap_or_default());
        if let Ok(mut slot) = self.slot.write() {
            *slot = Some((source.clone(), bytes.clone()));
        }
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
