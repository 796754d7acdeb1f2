//! OAuth Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document, what the
//! MCP authorization profile relies on): a `client_id` that is an https URL names a JSON
//! document, served there by the client, that describes it with RFC 7591 metadata. Behind
//! `oauth.client_id_metadata_documents` (off by default).
//!
//! Rules:
//! - Only the shape of [`is_document_client_id`] is fetched: https (http only where the
//!   outbound rule allows it, i.e. outside production), a host, a path other than `/`, no
//!   query, fragment, credentials or dot segments, at most 255 characters.
//! - The fetch follows the outbound SSRF rule (the `DocumentFetcher` adapter: the guard's
//!   checked address, no redirects, a short timeout, at most [`MAX_DOCUMENT_BYTES`], 200 only).
//! - The document must name itself (`client_id` equal to the URL, byte for byte), carry no
//!   secret, and describe a public client (`token_endpoint_auth_method` `none`, the default)
//!   of the code flow (grants `authorization_code` and `refresh_token`, response type `code`)
//!   with valid redirect URIs (the registration rules); its scopes are checked as scope tokens.
//! - The client becomes a row of `oauth_clients` (so codes, consents and sessions refer to it
//!   as to any other), marked by `ClientRecord::document_expires_at`, and is fetched again once
//!   that passes: the document's `Cache-Control: max-age`, held between
//!   [`MIN_CACHE_SECONDS`] and [`MAX_CACHE_SECONDS`] (an hour without one). The row is the
//!   cache every instance shares. When a fetch fails, a known client is served as it was for
//!   another [`RETRY_AFTER_FAILURE_SECONDS`]; an unknown one does not exist.
//! - Its name says where it comes from (`<client_name> (<host>)`), since nobody vetted it; it
//!   never skips consent. A client an admin registered under the same id is never replaced.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;

use super::client::{
    AUTH_NONE, ClientRecord, GRANT_AUTHORIZATION_CODE, GRANT_REFRESH_TOKEN, valid_scope_token,
    validate_redirect_uri,
};
use super::store::{AuthorizationCodeRecord, ConnectedApplication, OAuthStore};
use super::{STANDARD_SCOPES, client::validate_backchannel_logout_uri};
use crate::audit::AuditEvent;
use crate::clock::Clock;
use crate::store::StoreError;

/// The most of a document that is read.
pub const MAX_DOCUMENT_BYTES: usize = 16 * 1024;
pub const MIN_CACHE_SECONDS: i64 = 60;
pub const MAX_CACHE_SECONDS: i64 = 24 * 3600;
const DEFAULT_CACHE_SECONDS: i64 = 3600;
pub const RETRY_AFTER_FAILURE_SECONDS: i64 = 60;
const MAX_CLIENT_ID_LENGTH: usize = 255;

/// A fetched document: its body and the `max-age` its answer allowed.
#[derive(Debug, Clone)]
pub struct FetchedDocument {
    pub body: Vec<u8>,
    pub max_age_seconds: Option<i64>,
}

/// Fetches a document under the outbound SSRF rule (an adapter of `gatehouse-outbound`).
#[async_trait]
pub trait DocumentFetcher: Send + Sync {
    /// The body of a 200 answer of at most [`MAX_DOCUMENT_BYTES`]; otherwise why not (no
    /// secret in it: the URL is public).
    async fn fetch(&self, url: &str) -> Result<FetchedDocument, String>;
}

/// Whether `client_id` has the shape of a client ID metadata document URL (`allow_http`: the
/// outbound rule does not require https).
pub fn is_document_client_id(client_id: &str, allow_http: bool) -> bool {
    if client_id.len() > MAX_CLIENT_ID_LENGTH {
        return false;
    }
    let scheme_ok =
        client_id.starts_with("https://") || (allow_http && client_id.starts_with("http://"));
    if !scheme_ok {
        return false;
    }
    let Ok(url) = url::Url::parse(client_id) else {
        return false;
    };
    // Only a URL that is already in its normal form names a document: what the client sent
    // is what the document must say, byte for byte.
    url.as_str() == client_id
        && url.host().is_some()
        && url.username().is_empty()
        && url.password().is_none()
        && url.query().is_none()
        && url.fragment().is_none()
        && url.path() != "/"
        && !url.path().split('/').any(|segment| segment == "." || segment == "..")
}

/// The members of a document that matter; unknown ones are ignored.
#[derive(Debug, Deserialize)]
struct Document {
    client_id: String,
    #[serde(default)]
    client_name: Option<String>,
    #[serde(default)]
    redirect_uris: Vec<String>,
    #[serde(default)]
    post_logout_redirect_uris: Vec<String>,
    #[serde(default)]
    grant_types: Vec<String>,
    #[serde(default)]
    response_types: Vec<String>,
    #[serde(default)]
    token_endpoint_auth_method: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    backchannel_logout_uri: Option<String>,
    #[serde(default)]
    backchannel_logout_session_required: bool,
}

/// The client a document describes, or why it describes none.
pub fn client_from_document(
    url: &str,
    body: &[u8],
    now: i64,
    expires_at: i64,
) -> Result<ClientRecord, String> {
    let raw: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| "the document is not JSON".to_owned())?;
    let Some(members) = raw.as_object() else {
        return Err("the document is not a JSON object".into());
    };
    for secret in ["client_secret", "client_secret_expires_at"] {
        if members.contains_key(secret) {
            return Err(format!("the document must not carry {secret}"));
        }
    }
    let document: Document = serde_json::from_value(raw)
        .map_err(|error| format!("the document's metadata is malformed: {error}"))?;
    if document.client_id != url {
        return Err("the document's client_id is not its own URL".into());
    }
    if document.token_endpoint_auth_method.as_deref().is_some_and(|method| method != AUTH_NONE) {
        return Err("only public clients (token_endpoint_auth_method none) are supported".into());
    }
    let grant_types = if document.grant_types.is_empty() {
        vec![GRANT_AUTHORIZATION_CODE.to_owned()]
    } else {
        document.grant_types.clone()
    };
    if let Some(grant) = grant_types
        .iter()
        .find(|grant| !matches!(grant.as_str(), GRANT_AUTHORIZATION_CODE | GRANT_REFRESH_TOKEN))
    {
        return Err(format!("grant type {grant} cannot be used by such a client"));
    }
    if document.response_types.iter().any(|response_type| response_type != "code") {
        return Err("only the code response type is supported".into());
    }
    if document.redirect_uris.is_empty() {
        return Err("redirect_uris is required".into());
    }
    for uri in document.redirect_uris.iter().chain(&document.post_logout_redirect_uris) {
        validate_redirect_uri(uri, "redirect_uris").map_err(|issue| issue.message)?;
    }
    if let Some(uri) = &document.backchannel_logout_uri {
        validate_backchannel_logout_uri(uri).map_err(|issue| issue.message)?;
    }
    let scopes: Vec<String> = match &document.scope {
        Some(scope) => scope.split_whitespace().map(str::to_owned).collect(),
        None => STANDARD_SCOPES.iter().map(|scope| scope.to_string()).collect(),
    };
    if let Some(scope) = scopes.iter().find(|scope| !valid_scope_token(scope)) {
        return Err(format!("{scope:?} is not a scope token"));
    }
    let host = url::Url::parse(url)
        .ok()
        .and_then(|url| url.host_str().map(str::to_owned))
        .unwrap_or_default();
    let name = match document.client_name.as_deref().map(str::trim) {
        Some(name) if !name.is_empty() => {
            format!("{} ({host})", name.chars().take(60).collect::<String>())
        }
        _ => host,
    };
    Ok(ClientRecord {
        client_id: url.to_owned(),
        name,
        secret_digest: None,
        previous_secret_digest: None,
        previous_secret_expires_at: None,
        redirect_uris: document.redirect_uris,
        post_logout_redirect_uris: document.post_logout_redirect_uris,
        grant_types,
        scopes,
        token_endpoint_auth_method: AUTH_NONE.to_owned(),
        jwks: None,
        skip_consent: false,
        require_pushed_authorization_requests: false,
        dpop_bound_access_tokens: false,
        backchannel_logout_uri: document.backchannel_logout_uri,
        backchannel_logout_session_required: document.backchannel_logout_session_required,
        access_token_ttl_seconds: None,
        refresh_token_ttl_seconds: None,
        created_at: now,
        updated_at: now,
        registration_token_digest: None,
        document_expires_at: Some(expires_at),
    })
}

/// The OAuth store with client ID metadata documents: a lookup of a document-shaped
/// `client_id` that is not a client an admin registered serves the stored copy while it is
/// fresh and otherwise fetches the document again; everything else goes to the store.
pub struct DocumentClients {
    store: Arc<dyn OAuthStore>,
    fetcher: Arc<dyn DocumentFetcher>,
    clock: Arc<dyn Clock>,
    allow_http: bool,
}

impl DocumentClients {
    pub fn new(
        store: Arc<dyn OAuthStore>,
        fetcher: Arc<dyn DocumentFetcher>,
        clock: Arc<dyn Clock>,
        allow_http: bool,
    ) -> DocumentClients {
        DocumentClients { store, fetcher, clock, allow_http }
    }

    async fn document_client(
        &self,
        url: &str,
        stored: Option<ClientRecord>,
    ) -> Result<Option<ClientRecord>, StoreError> {
        let now = self.clock.now();
        let fetched = match self.fetcher.fetch(url).await {
            Ok(fetched) => fetched,
            Err(reason) => {
                tracing::info!(client_id = url, %reason, "a client ID metadata document could not be fetched");
                return match stored {
                    // Served as it was a little longer; the next lookup after that tries again.
                    Some(mut client) => {
                        client.document_expires_at = Some(now + RETRY_AFTER_FAILURE_SECONDS);
                        self.store.update_client(&client, &[]).await?;
                        Ok(Some(client))
                    }
                    None => Ok(None),
                };
            }
        };
        let lifetime = fetched
            .max_age_seconds
            .unwrap_or(DEFAULT_CACHE_SECONDS)
            .clamp(MIN_CACHE_SECONDS, MAX_CACHE_SECONDS);
        let mut client = match client_from_document(url, &fetched.body, now, now + lifetime) {
            Ok(client) => client,
            Err(reason) => {
                tracing::info!(client_id = url, %reason, "a client ID metadata document was refused");
                return Ok(None);
            }
        };
        match stored {
            Some(stored) => {
                client.created_at = stored.created_at;
                self.store.update_client(&client, &[]).await?;
            }
            None => match self.store.insert_client(&client, &[]).await {
                Ok(()) => {}
                // Another request or instance stored it first: the same document.
                Err(StoreError::Conflict(_)) => {}
                Err(error) => return Err(error),
            },
        }
        Ok(Some(client))
    }
}

#[async_trait]
impl OAuthStore for DocumentClients {
    async fn insert_client(
        &self,
        client: &ClientRecord,
        events: &[AuditEvent],
    ) -> Result<(), StoreError> {
        self.store.insert_client(client, events).await
    }

    async fn client(&self, client_id: &str) -> Result<Option<ClientRecord>, StoreError> {
        let stored = self.store.client(client_id).await?;
        if !is_document_client_id(client_id, self.allow_http) {
            return Ok(stored);
        }
        match stored {
            // Registered by an admin (or by dynamic registration): never a document's.
            Some(client) if client.document_expires_at.is_none() => Ok(Some(client)),
            Some(client)
                if client.document_expires_at.is_some_and(|until| until > self.clock.now()) =>
            {
                Ok(Some(client))
            }
            stored => self.document_client(client_id, stored).await,
        }
    }

    async fn list_clients(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ClientRecord>, StoreError> {
        self.store.list_clients(after, limit).await
    }

    async fn update_client(
        &self,
        client: &ClientRecord,
        events: &[AuditEvent],
    ) -> Result<(), StoreError> {
        self.store.update_client(client, events).await
    }

    async fn delete_client(
        &self,
        client_id: &str,
        events: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        self.store.delete_client(client_id, events).await
    }

    async fn insert_authorization_code(
        &self,
        code: &AuthorizationCodeRecord,
    ) -> Result<(), StoreError> {
        self.store.insert_authorization_code(code).await
    }

    async fn authorization_code(
        &self,
        digest: &[u8],
    ) -> Result<Option<AuthorizationCodeRecord>, StoreError> {
        self.store.authorization_code(digest).await
    }

    async fn browser_session_of(&self, session_id: &str) -> Result<Option<String>, StoreError> {
        self.store.browser_session_of(session_id).await
    }

    async fn consent(
        &self,
        user_id: &str,
        client_id: &str,
    ) -> Result<Option<Vec<String>>, StoreError> {
        self.store.consent(user_id, client_id).await
    }

    async fn save_consent(
        &self,
        user_id: &str,
        client_id: &str,
        scopes: &[String],
        now: i64,
        events: &[AuditEvent],
    ) -> Result<(), StoreError> {
        self.store.save_consent(user_id, client_id, scopes, now, events).await
    }

    async fn consents_of_user(
        &self,
        user_id: &str,
    ) -> Result<Vec<ConnectedApplication>, StoreError> {
        self.store.consents_of_user(user_id).await
    }

    async fn revoke_consent(
        &self,
        user_id: &str,
        client_id: &str,
        now: i64,
        events: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        self.store.revoke_consent(user_id, client_id, now, events).await
    }

    async fn record_client_assertion(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.store.record_client_assertion(client_id, jti, expires_at, now).await
    }

    async fn revoke_access_token(&self, jti: &str, expires_at: i64) -> Result<(), StoreError> {
        self.store.revoke_access_token(jti, expires_at).await
    }

    async fn is_access_token_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        self.store.is_access_token_revoked(jti).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "https://agent.example.com/oauth/client.json";

    #[test]
    fn only_normal_https_urls_with_a_path_name_documents() {
        assert!(is_document_client_id(URL, false));
        for refused in [
            "my-app",
            "http://agent.example.com/client.json",
            "https://agent.example.com",
            "https://agent.example.com/",
            "https://agent.example.com/client.json?x=1",
            "https://agent.example.com/client.json#x",
            "https://user:pw@agent.example.com/client.json",
            "https://agent.example.com/a/../client.json",
            "https://AGENT.example.com/client.json",
        ] {
            assert!(!is_document_client_id(refused, false), "{refused}");
        }
        assert!(is_document_client_id("http://127.0.0.1:8080/client.json", true));
    }

    fn document(extra: serde_json::Value) -> Vec<u8> {
        let mut value = serde_json::json!({
            "client_id": URL,
            "client_name": "Agent",
            "redirect_uris": ["http://127.0.0.1:3000/callback"],
        });
        for (key, member) in extra.as_object().unwrap() {
            value[key] = member.clone();
        }
        serde_json::to_vec(&value).unwrap()
    }

    #[test]
    fn a_document_describes_a_public_code_flow_client() {
        let client = client_from_document(URL, &document(serde_json::json!({})), 10, 70).unwrap();
        assert_eq!(client.client_id, URL);
        assert_eq!(client.name, "Agent (agent.example.com)");
        assert!(client.is_public() && !client.skip_consent);
        assert_eq!(client.grant_types, vec![GRANT_AUTHORIZATION_CODE.to_owned()]);
        assert_eq!(client.document_expires_at, Some(70));
        for (bad, why) in [
            (serde_json::json!({ "client_id": "https://other.example.com/c.json" }), "client_id"),
            (serde_json::json!({ "client_secret": "s3cret" }), "client_secret"),
            (serde_json::json!({ "token_endpoint_auth_method": "client_secret_basic" }), "public"),
            (serde_json::json!({ "grant_types": ["client_credentials"] }), "grant type"),
            (serde_json::json!({ "redirect_uris": [] }), "redirect_uris"),
            (serde_json::json!({ "redirect_uris": ["http://evil.example.com/cb"] }), "loopback"),
            (serde_json::json!({ "response_types": ["token"] }), "code"),
        ] {
            let error = client_from_document(URL, &document(bad.clone()), 10, 70).unwrap_err();
            assert!(error.contains(why), "{bad}: {error}");
        }
        assert!(client_from_document(URL, b"[1]", 10, 70).is_err());
        assert!(client_from_document(URL, b"<html>", 10, 70).is_err());
    }
}
