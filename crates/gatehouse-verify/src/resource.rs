//! OAuth 2.0 Protected Resource Metadata (RFC 9728), feature `axum`: what a resource server
//! publishes at `/.well-known/oauth-protected-resource` so a client (an MCP client, an agent)
//! that meets a 401 learns which authorization server issues its tokens — and the
//! `resource_metadata` parameter of the 401's `WWW-Authenticate` that points there
//! ([`crate::VerifyLayer::with_resource_metadata`]).

use axum::Router;
use axum::http::HeaderValue;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::error::ConfigError;
use crate::verifier::Verifier;

/// The well-known path of protected-resource metadata (RFC 9728 section 3).
const WELL_KNOWN_PATH: &str = "/.well-known/oauth-protected-resource";

/// The metadata of one protected resource.
#[derive(Debug, Clone)]
pub struct ProtectedResource {
    resource: url::Url,
    authorization_servers: Vec<String>,
    scopes_supported: Vec<String>,
    resource_name: Option<String>,
}

impl ProtectedResource {
    /// `resource` is the resource's identifier, an https (or, for development, http) URL
    /// without a fragment (RFC 9728 section 2) — also the `aud` its tokens are issued for; its
    /// authorization server is the verifier's issuer.
    pub fn new(resource: &str, verifier: &Verifier) -> Result<ProtectedResource, ConfigError> {
        let refused = || ConfigError::Resource(resource.to_owned());
        let parsed = url::Url::parse(resource).map_err(|_| refused())?;
        if !matches!(parsed.scheme(), "https" | "http")
            || parsed.fragment().is_some()
            || parsed.host().is_none()
        {
            return Err(refused());
        }
        Ok(ProtectedResource {
            resource: parsed,
            authorization_servers: vec![verifier.issuer().to_owned()],
            scopes_supported: Vec::new(),
            resource_name: None,
        })
    }

    /// The scopes the resource understands (`scopes_supported`).
    pub fn scopes(mut self, scopes: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.scopes_supported = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// A human-readable name (`resource_name`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.resource_name = Some(name.into());
        self
    }

    /// Where the metadata is published: the well-known path inserted between the host and the
    /// resource's path (RFC 9728 section 3.1).
    pub fn metadata_url(&self) -> String {
        format!("{}{}", self.resource.origin().ascii_serialization(), self.metadata_path())
    }

    /// The path the metadata is served at on this server.
    pub fn metadata_path(&self) -> String {
        format!("{WELL_KNOWN_PATH}{}", self.resource.path().trim_end_matches('/'))
    }

    /// The metadata document (RFC 9728 section 2).
    pub fn metadata(&self) -> serde_json::Value {
        let mut document = serde_json::json!({
            "resource": self.resource.as_str().trim_end_matches('/'),
            "authorization_servers": self.authorization_servers,
            "bearer_methods_supported": ["header"],
        });
        if !self.scopes_supported.is_empty() {
            document["scopes_supported"] = serde_json::json!(self.scopes_supported);
        }
        if let Some(name) = &self.resource_name {
            document["resource_name"] = serde_json::json!(name);
        }
        document
    }

    /// A router serving the metadata at [`Self::metadata_path`] (merge it outside the
    /// [`crate::VerifyLayer`]: the document is public).
    pub fn router<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        let body = self.metadata().to_string();
        Router::new().route(
            &self.metadata_path(),
            get(move || {
                let body = body.clone();
                async move {
                    let mut response = body.into_response();
                    let headers = response.headers_mut();
                    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                    headers.insert(CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
                    response
                }
            }),
        )
    }
}
