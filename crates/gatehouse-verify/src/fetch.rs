//! Talking to the issuer over HTTP: the discovery document (once), the JWK Set (whenever the
//! verifier asks), bounded in size, with failures described for the log.

use std::time::Duration;

use reqwest::header::{ACCEPT, CACHE_CONTROL};
use serde_json::Value;

use crate::jwks::{KeySet, freshness};
use crate::settings::Settings;

/// The largest discovery, JWKS or introspection answer read.
const MAX_DOCUMENT_BYTES: usize = 1 << 20;

/// What the verifier uses from the issuer's discovery document.
#[derive(Debug, Clone)]
pub(crate) struct Discovery {
    pub jwks_uri: String,
    pub introspection_endpoint: Option<String>,
}

pub(crate) struct Fetched {
    pub keys: KeySet,
    pub fresh_for: Duration,
}

/// The issuer's HTTP side: a client and the discovery document once read.
pub(crate) struct IssuerClient {
    pub http: reqwest::Client,
    discovery: tokio::sync::OnceCell<Discovery>,
}

impl IssuerClient {
    pub fn new(http: reqwest::Client) -> IssuerClient {
        IssuerClient { http, discovery: tokio::sync::OnceCell::new() }
    }

    /// The discovery document, fetched on first need and kept (a failed fetch is retried at
    /// the next need). Its `issuer` must be exactly ours (OpenID Connect Discovery 1.0
    /// section 4.3), so a document cannot send us to someone else's keys.
    pub async fn discovered(&self, settings: &Settings) -> Result<&Discovery, String> {
        self.discovery
            .get_or_try_init(|| async {
                let url = format!(
                    "{}/.well-known/openid-configuration",
                    settings.issuer.trim_end_matches('/')
                );
                let (document, _) = self.get_json(&url).await?;
                if document.get("issuer").and_then(Value::as_str) != Some(&settings.issuer) {
                    return Err(format!(
                        "the discovery document at {url} is not for the issuer {}",
                        settings.issuer
                    ));
                }
                let endpoint =
                    |name: &str| document.get(name).and_then(Value::as_str).map(str::to_owned);
                let jwks_uri = endpoint("jwks_uri")
                    .ok_or_else(|| format!("the discovery document at {url} has no jwks_uri"))?;
                Ok(Discovery {
                    jwks_uri,
                    introspection_endpoint: endpoint("introspection_endpoint"),
                })
            })
            .await
    }

    /// The published keys and how long they stay fresh.
    pub async fn fetch_keys(&self, settings: &Settings) -> Result<Fetched, String> {
        let url = match &settings.jwks_url {
            Some(url) => url.clone(),
            None => self.discovered(settings).await?.jwks_uri.clone(),
        };
        let (document, cache_control) = self.get_json(&url).await?;
        let keys = KeySet::from_jwks(&document, &settings.algorithms)
            .map_err(|reason| format!("{url}: {reason}"))?;
        let fresh_for = freshness(
            cache_control.as_deref(),
            settings.jwks_default_ttl,
            settings.jwks_min_ttl,
            settings.jwks_max_ttl,
        );
        Ok(Fetched { keys, fresh_for })
    }

    /// GETs a JSON document; answers it with its `Cache-Control` header.
    async fn get_json(&self, url: &str) -> Result<(Value, Option<String>), String> {
        let response = self
            .http
            .get(url)
            .header(ACCEPT, "application/json")
            .send()
            .await
            .map_err(|error| format!("{url}: {error}"))?;
        if !response.status().is_success() {
            return Err(format!("{url} answered {}", response.status()));
        }
        let cache_control = response
            .headers()
            .get(CACHE_CONTROL)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let document = read_json(response).await.map_err(|error| format!("{url}: {error}"))?;
        Ok((document, cache_control))
    }
}

/// Reads a JSON body of at most [`MAX_DOCUMENT_BYTES`].
pub(crate) async fn read_json(mut response: reqwest::Response) -> Result<Value, String> {
    if response.content_length().is_some_and(|length| length > MAX_DOCUMENT_BYTES as u64) {
        return Err("answer too large".to_owned());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|error| error.to_string())? {
        if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
            return Err("answer too large".to_owned());
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|_| "answer is not JSON".to_owned())
}
