//! Pushed authorization requests (RFC 9126): a client sends its authorization request to
//! `/oauth2/par` over the back channel, authenticated, and gets a `request_uri` to send the
//! browser to `/oauth2/authorize` with instead of the parameters. The request is validated
//! when pushed exactly as the authorization endpoint validates it; what the browser carries is
//! only `client_id` and the `request_uri`, so nothing of the request can be read or changed on
//! the way.
//!
//! A `request_uri` is bound to the client that pushed it, is stored as a keyed digest, and
//! must reach the authorization endpoint within [`PUSHED_REQUEST_LIFETIME_SECONDS`]. From its
//! first use there it lives as long as a sign-in may take ([`OPENED_REQUEST_LIFETIME_SECONDS`]:
//! the browser comes back to it from the sign-in page), and it is spent once the authorization
//! ends — a code issued, or an error sent to the client: a `request_uri` starts one
//! authorization, never a second one.

use std::sync::Arc;

use async_trait::async_trait;
use gatehouse_crypto::Digester;

use super::authorize::{AuthorizationRequest, AuthorizeRejection};
use super::client::ClientRecord;
use super::request_object::open_request_object;
use super::{OAuthError, OAuthService, OAuthStore};
use crate::clock::Clock;
use crate::error::DomainError;
use crate::store::StoreError;

/// The prefix of every `request_uri` we issue (RFC 9126 §2.2).
pub const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";
/// How long a pushed request waits for the browser (`expires_in`).
pub const PUSHED_REQUEST_LIFETIME_SECONDS: i64 = 60;
/// How long a request lives once the authorization endpoint has read it: the time a sign-in
/// (with a second factor) may take.
pub const OPENED_REQUEST_LIFETIME_SECONDS: i64 = 600;
/// Longest `request_uri` accepted (ours are the prefix and 43 characters).
const MAX_REQUEST_URI_LENGTH: usize = 128;

/// A pushed request as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedRequestRecord {
    /// Keyed digest of the `request_uri`'s random part.
    pub request_digest: Vec<u8>,
    pub client_id: String,
    /// The [`AuthorizationRequest`] as JSON.
    pub parameters: String,
    pub created_at: i64,
    pub expires_at: i64,
    /// When the authorization endpoint first read it.
    pub opened_at: Option<i64>,
    pub used_at: Option<i64>,
}

/// The store of pushed requests (the `pushed_authorization_requests` table; the sweeper
/// removes expired rows).
#[async_trait]
pub trait PushedRequestStore: Send + Sync {
    async fn insert_pushed_request(&self, record: &PushedRequestRecord) -> Result<(), StoreError>;
    async fn pushed_request(
        &self,
        digest: &[u8],
    ) -> Result<Option<PushedRequestRecord>, StoreError>;
    /// Marks the request read by the authorization endpoint at `now` and lets it live until
    /// `expires_at`, once: `false` when it was opened before (nothing changes).
    async fn open_pushed_request(
        &self,
        digest: &[u8],
        now: i64,
        expires_at: i64,
    ) -> Result<bool, StoreError>;
    /// Replaces the stored parameters of a request not yet spent.
    async fn replace_pushed_parameters(
        &self,
        digest: &[u8],
        parameters: &str,
    ) -> Result<(), StoreError>;
    /// Spends the request at `now`; `false` when it was spent already.
    async fn spend_pushed_request(&self, digest: &[u8], now: i64) -> Result<bool, StoreError>;
}

/// The answer to a push (RFC 9126 §2.2).
#[derive(Debug, Clone, serde::Serialize)]
pub struct PushedRequest {
    pub request_uri: String,
    pub expires_in: i64,
}

/// A pushed request the authorization endpoint is working on, to spend (or update) when the
/// authorization ends.
#[derive(Debug, Clone)]
pub struct PushedHandle {
    digest: Vec<u8>,
}

/// Settings of the pushed requests.
#[derive(Debug, Clone, Default)]
pub struct ParSettings {
    /// Every client must push its authorization requests
    /// (`oauth.require_pushed_authorization_requests`).
    pub required: bool,
}

pub struct PushedAuthorizationService {
    oauth: Arc<OAuthService>,
    clients: Arc<dyn OAuthStore>,
    store: Arc<dyn PushedRequestStore>,
    digester: Digester,
    clock: Arc<dyn Clock>,
    settings: ParSettings,
}

impl PushedAuthorizationService {
    pub fn new(
        oauth: Arc<OAuthService>,
        clients: Arc<dyn OAuthStore>,
        store: Arc<dyn PushedRequestStore>,
        digester: Digester,
        clock: Arc<dyn Clock>,
        settings: ParSettings,
    ) -> Self {
        Self { oauth, clients, store, digester, clock, settings }
    }

    /// Whether every client must push its requests (discovery's
    /// `require_pushed_authorization_requests`).
    pub fn required(&self) -> bool {
        self.settings.required
    }

    /// `POST /oauth2/par` from the authenticated `client`: validates the request as the
    /// authorization endpoint will, stores it, and answers its `request_uri`. Errors are the
    /// token endpoint's JSON ones (the redirect URI is never used here).
    pub async fn push(
        &self,
        client: &ClientRecord,
        mut request: AuthorizationRequest,
    ) -> Result<PushedRequest, OAuthError> {
        if request.request_uri.is_some() {
            return Err(OAuthError::InvalidRequest("request_uri cannot be pushed".into()));
        }
        if request.client_id.as_deref().is_some_and(|id| id != client.client_id) {
            return Err(OAuthError::InvalidRequest(
                "client_id is not the authenticated client".into(),
            ));
        }
        request.client_id = Some(client.client_id.clone());
        request.pushed = true;
        // A signed request object (JAR, RFC 9101): only its parameters count.
        if let Some(object) = request.request.take() {
            let now = self.clock.now();
            request = open_request_object(client, &object, &request, self.oauth.issuer(), now)?;
        }
        if let Err(rejection) = self.oauth.validate_authorization(&request).await {
            return Err(rejection_error(rejection));
        }
        let request_uri = self.store_request(client, &request).await?;
        Ok(PushedRequest { request_uri, expires_in: PUSHED_REQUEST_LIFETIME_SECONDS })
    }

    /// Stores a validated request for [`PUSHED_REQUEST_LIFETIME_SECONDS`] and answers its
    /// `request_uri`.
    async fn store_request(
        &self,
        client: &ClientRecord,
        request: &AuthorizationRequest,
    ) -> Result<String, OAuthError> {
        let parameters = serde_json::to_string(request)
            .map_err(|error| OAuthError::ServerError(format!("pushed request: {error}")))?;
        let secret = gatehouse_crypto::random_token();
        let now = self.clock.now();
        self.store
            .insert_pushed_request(&PushedRequestRecord {
                request_digest: self.digester.digest(secret.as_bytes()).to_vec(),
                client_id: client.client_id.clone(),
                parameters,
                created_at: now,
                expires_at: now + PUSHED_REQUEST_LIFETIME_SECONDS,
                opened_at: None,
                used_at: None,
            })
            .await?;
        Ok(format!("{REQUEST_URI_PREFIX}{secret}"))
    }

    /// A request object sent by value to the authorization endpoint: opened with the client's
    /// keys and validated, then kept as a pushed request, and the browser sent on to
    /// `/oauth2/authorize` with its `request_uri` (as `AuthorizeRejection::Redirect`, a
    /// same-origin redirect). So the request survives the sign-in, whose return would
    /// otherwise present the object again after its (short) expiry, and starts one
    /// authorization only.
    async fn keep_request_object(
        &self,
        request: &AuthorizationRequest,
        object: &str,
    ) -> AuthorizeRejection {
        let client = match request.client_id.as_deref() {
            Some(client_id) => match self.clients.client(client_id).await {
                Ok(Some(client)) => client,
                Ok(None) => return AuthorizeRejection::Page(UNKNOWN_CLIENT.into()),
                Err(error) => return lookup_failed(error),
            },
            None => return AuthorizeRejection::Page(UNKNOWN_CLIENT.into()),
        };
        let now = self.clock.now();
        let opened = match open_request_object(&client, object, request, self.oauth.issuer(), now) {
            Ok(opened) => opened,
            // Told at the redirect URI beside the object when it is one of the client's (the
            // one inside it is part of what failed to verify); else a page.
            Err(error) => {
                return match request.redirect_uri.as_deref() {
                    Some(uri) if client.redirect_uri_matches(uri) => {
                        AuthorizeRejection::Redirect(self.oauth.error_redirect(
                            uri,
                            error.error_code(),
                            &error.description(),
                            request.state.as_deref(),
                        ))
                    }
                    _ => AuthorizeRejection::Page(format!(
                        "The request object is invalid: {}.",
                        error.description()
                    )),
                };
            }
        };
        if let Err(rejection) = self.oauth.validate_authorization(&opened).await {
            return rejection;
        }
        match self.store_request(&client, &opened).await {
            Ok(request_uri) => {
                let query = url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("client_id", &client.client_id)
                    .append_pair("request_uri", &request_uri)
                    .finish();
                AuthorizeRejection::Redirect(format!("/oauth2/authorize?{query}"))
            }
            Err(error) => {
                tracing::error!(%error, "could not keep a request object");
                AuthorizeRejection::Page(
                    "The server could not keep the authorization request.".into(),
                )
            }
        }
    }

    /// The request the authorization endpoint works on. With a `request_uri`: the pushed
    /// request it names (only its parameters count, RFC 9126 §4), which must belong to the
    /// `client_id` given beside it, be unspent and unexpired; the first read extends its
    /// life to a sign-in's. With a request object by value (`request`, RFC 9101): a redirect to
    /// the same endpoint with the `request_uri` it is kept under
    /// (`AuthorizeRejection::Redirect`). Otherwise: the request as received, unless pushing is
    /// required (globally or for this client).
    pub async fn authorization_request(
        &self,
        request: AuthorizationRequest,
    ) -> Result<(AuthorizationRequest, Option<PushedHandle>), AuthorizeRejection> {
        let Some(request_uri) = request.request_uri.as_deref() else {
            if self.settings.required {
                return Err(AuthorizeRejection::Page(PUSH_REQUIRED.into()));
            }
            if let Some(client_id) = request.client_id.as_deref() {
                let client = self.clients.client(client_id).await.map_err(lookup_failed)?;
                if client.is_some_and(|client| client.require_pushed_authorization_requests) {
                    return Err(AuthorizeRejection::Page(PUSH_REQUIRED.into()));
                }
            }
            if let Some(object) = request.request.as_deref() {
                return Err(self.keep_request_object(&request, object).await);
            }
            return Ok((request, None));
        };
        let unknown = || AuthorizeRejection::Page(UNKNOWN_REQUEST_URI.into());
        // Another kind of request_uri (a request object by reference, RFC 9101 §5.2) is not
        // supported: the authorization endpoint refuses it as it always did, at the client's
        // verified redirect URI (`request_uri_not_supported`).
        let Some(secret) = request_uri.strip_prefix(REQUEST_URI_PREFIX) else {
            return Ok((request, None));
        };
        if request_uri.len() > MAX_REQUEST_URI_LENGTH {
            return Err(unknown());
        }
        let digest = self.digester.digest(secret.as_bytes()).to_vec();
        let record = self.store.pushed_request(&digest).await.map_err(lookup_failed)?;
        let now = self.clock.now();
        let record = record
            .filter(|record| record.used_at.is_none() && record.expires_at > now)
            // Bound to its client: another client's id beside it is the same refusal.
            .filter(|record| request.client_id.as_deref() == Some(record.client_id.as_str()))
            .ok_or_else(unknown)?;
        if record.opened_at.is_none() {
            self.store
                .open_pushed_request(&digest, now, now + OPENED_REQUEST_LIFETIME_SECONDS)
                .await
                .map_err(lookup_failed)?;
        }
        let mut pushed: AuthorizationRequest = serde_json::from_str(&record.parameters)
            .map_err(|_| AuthorizeRejection::Page(UNKNOWN_REQUEST_URI.into()))?;
        pushed.pushed = true;
        // The one answer the pages add to a request: the organization picked on the chooser
        // (checked against the user's memberships like a client's own choice).
        if request.organization.is_some() {
            pushed.organization = request.organization;
        }
        Ok((pushed, Some(PushedHandle { digest })))
    }

    /// After a sign-in asked for by `prompt=login` or `max_age`: the request continues without
    /// them (else it would ask for a sign-in again, forever), as the unpushed request does by
    /// coming back without them.
    pub async fn signed_in_afresh(
        &self,
        handle: &PushedHandle,
        request: &AuthorizationRequest,
    ) -> Result<(), DomainError> {
        let mut request = request.clone();
        request.prompt = None;
        request.max_age = None;
        let parameters = serde_json::to_string(&request)
            .map_err(|error| DomainError::Internal(format!("pushed request: {error}")))?;
        self.store.replace_pushed_parameters(&handle.digest, &parameters).await?;
        Ok(())
    }

    /// The authorization ended (a code or an error went to the client): the `request_uri`
    /// is spent. `false` when it had been spent already (a second authorization racing this
    /// one): the caller answers an error instead of its code.
    pub async fn spend(&self, handle: &PushedHandle) -> Result<bool, DomainError> {
        Ok(self.store.spend_pushed_request(&handle.digest, self.clock.now()).await?)
    }
}

const PUSH_REQUIRED: &str = "This application must push its authorization requests first (pushed authorization requests, RFC 9126).";
const UNKNOWN_CLIENT: &str = "The request names no registered client_id.";
const UNKNOWN_REQUEST_URI: &str =
    "The request_uri is unknown, expired, already used or not this application's.";

fn lookup_failed(error: StoreError) -> AuthorizeRejection {
    tracing::error!(%error, "pushed request lookup failed");
    AuthorizeRejection::Page("The server could not look up the authorization request.".into())
}

/// An authorization endpoint refusal as the JSON error of the push.
fn rejection_error(rejection: AuthorizeRejection) -> OAuthError {
    match rejection {
        AuthorizeRejection::Page(message) => OAuthError::InvalidRequest(message),
        AuthorizeRejection::Redirect(location) => {
            // Our own redirect, carrying `error` and `error_description`.
            let (mut error, mut description) = (String::new(), String::new());
            if let Ok(url) = url::Url::parse(&location) {
                for (name, value) in url.query_pairs() {
                    match name.as_ref() {
                        "error" => error = value.into_owned(),
                        "error_description" => description = value.into_owned(),
                        _ => {}
                    }
                }
            }
            match error.as_str() {
                "invalid_scope" => OAuthError::InvalidScope(description),
                "unauthorized_client" => OAuthError::UnauthorizedClient(description),
                _ => OAuthError::InvalidRequest(description),
            }
        }
    }
}
