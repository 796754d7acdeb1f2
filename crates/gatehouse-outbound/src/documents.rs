//! OAuth Client ID Metadata Documents out: the `DocumentFetcher` that reads a client's
//! document at its URL under the outbound SSRF rule — the guard's checked address (the
//! connection is pinned to it), no redirects, a short timeout, `200` only, at most
//! `MAX_DOCUMENT_BYTES` read — and reports the answer's `Cache-Control: max-age`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use gatehouse_domain::oauth::documents::{DocumentFetcher, FetchedDocument, MAX_DOCUMENT_BYTES};
use gatehouse_domain::outbound::OutboundGuard;

use crate::webhook::pinned_client;

pub struct ClientDocumentFetcher {
    guard: Arc<dyn OutboundGuard>,
    timeout: Duration,
}

impl ClientDocumentFetcher {
    pub fn new(guard: Arc<dyn OutboundGuard>, timeout: Duration) -> ClientDocumentFetcher {
        ClientDocumentFetcher { guard, timeout }
    }
}

/// The `max-age` of a `Cache-Control` value; `no-store` and `no-cache` are 0.
fn max_age(cache_control: &str) -> Option<i64> {
    let mut age = None;
    for directive in cache_control.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return Some(0);
        }
        if let Some(seconds) = lower.strip_prefix("max-age=") {
            age = seconds.trim_matches('"').parse::<i64>().ok();
        }
    }
    age
}

#[async_trait]
impl DocumentFetcher for ClientDocumentFetcher {
    async fn fetch(&self, url: &str) -> Result<FetchedDocument, String> {
        let addresses = self
            .guard
            .check(url)
            .await
            .map_err(|reason| format!("the URL is refused: {reason}"))?;
        let builder = reqwest::Client::builder()
            .timeout(self.timeout)
            .connect_timeout(self.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("gatehouse-client-metadata");
        let client = pinned_client(builder, url, &addresses)?;
        let mut response =
            client.get(url).header("accept", "application/json").send().await.map_err(|error| {
                match error.is_timeout() {
                    true => "the document's server timed out".to_owned(),
                    false => "the document could not be fetched".to_owned(),
                }
            })?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(format!("the document's URL answered {}", response.status().as_u16()));
        }
        let max_age_seconds = response
            .headers()
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|value| value.to_str().ok())
            .and_then(max_age);
        let mut body = Vec::new();
        while let Some(chunk) =
            response.chunk().await.map_err(|_| "the document could not be read".to_owned())?
        {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_DOCUMENT_BYTES {
                return Err(format!("the document is larger than {MAX_DOCUMENT_BYTES} bytes"));
            }
        }
        Ok(FetchedDocument { body, max_age_seconds })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_gives_the_documents_lifetime() {
        assert_eq!(max_age("public, max-age=600"), Some(600));
        assert_eq!(max_age("max-age=\"30\""), Some(30));
        assert_eq!(max_age("no-store"), Some(0));
        assert_eq!(max_age("private, no-cache, max-age=600"), Some(0));
        assert_eq!(max_age("public"), None);
    }
}
