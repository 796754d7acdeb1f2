//! Dynamic client registration (RFC 7591) and its management protocol (RFC 7592): a client
//! registers itself at `/oauth2/register` and gets a `registration_access_token` to read,
//! replace and delete its registration later. What may register is the operator's choice
//! (`oauth.dynamic_registration`):
//! - `off` (the default): nothing; the endpoint is not advertised;
//! - `open`: anyone, for **public** clients only (`token_endpoint_auth_method: none`, PKCE)
//!   using the authorization code (and refresh token) grants — what MCP clients and native
//!   apps do;
//! - `token`: whoever presents an initial access token from the admin API or the CLI
//!   (single-use by default, expiring), for public or confidential clients.
//!
//! Redirect URIs follow the registration rules of every client: https, loopback http (RFC
//! 8252) or a reverse-DNS private-use scheme. A registered client is always asked for consent.
//! Software statements are not supported and are ignored, as unknown metadata is (RFC 7591
//! §2). Both kinds of token are stored as keyed digests.

use std::sync::Arc;

use async_trait::async_trait;
use gatehouse_crypto::Digester;
use serde::{Deserialize, Serialize};

use super::client::{
    AUTH_CLIENT_SECRET_BASIC, AUTH_CLIENT_SECRET_POST, AUTH_NONE, AUTH_PRIVATE_KEY_JWT,
    ClientRecord, GRANT_AUTHORIZATION_CODE, GRANT_CLIENT_CREDENTIALS, GRANT_REFRESH_TOKEN,
};
use super::clients::{ClientService, NewClient};
use super::{OAuthStore, split_scope};
use crate::DomainError;
use crate::audit::AuditEvent;
use crate::clock::Clock;
use crate::principal::{Actor, AdminPrincipal, RequestContext};
use crate::store::StoreError;

/// Registration access tokens (RFC 7592): `gtg_…` with a checksum.
pub const REGISTRATION_ACCESS_TOKEN: gatehouse_crypto::SecretKind =
    gatehouse_crypto::SecretKind { prefix: "gtg_", legacy_prefix: "ghg_" };
/// Initial access tokens (RFC 7591 §3): `gti_…` with a checksum.
pub const INITIAL_ACCESS_TOKEN: gatehouse_crypto::SecretKind =
    gatehouse_crypto::SecretKind { prefix: "gti_", legacy_prefix: "ghi_" };
/// The data key both are digested with.
pub const REGISTRATION_DIGEST_PURPOSE: &str = "registration-token";
/// How long an initial access token lives unless asked otherwise, and at most.
pub const DEFAULT_INITIAL_TOKEN_SECONDS: i64 = 86_400;
pub const MAX_INITIAL_TOKEN_SECONDS: i64 = 90 * 86_400;

/// Who may register (`GATEHOUSE_OAUTH_DYNAMIC_REGISTRATION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RegistrationMode {
    #[default]
    Off,
    Open,
    Token,
}

impl RegistrationMode {
    pub fn parse(text: &str) -> Option<RegistrationMode> {
        match text {
            "off" => Some(RegistrationMode::Off),
            "open" => Some(RegistrationMode::Open),
            "token" => Some(RegistrationMode::Token),
            _ => None,
        }
    }
}

/// An initial access token as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitialTokenRecord {
    /// `reg_…`.
    pub id: String,
    pub token_digest: Vec<u8>,
    pub name: String,
    pub max_uses: i64,
    pub uses: i64,
    pub created_at: i64,
    pub expires_at: i64,
}

/// The `registration_tokens` table (initial access tokens; the sweeper removes expired ones).
#[async_trait]
pub trait InitialTokenStore: Send + Sync {
    async fn insert_initial_token(
        &self,
        record: &InitialTokenRecord,
        events: &[AuditEvent],
    ) -> Result<(), StoreError>;
    /// Counts one use of the token with this digest, if it is unexpired at `now` and has uses
    /// left: `false` otherwise (nothing changes).
    async fn spend_initial_token(&self, digest: &[u8], now: i64) -> Result<bool, StoreError>;
}

/// Client metadata (RFC 7591 §2) as a registration sends it; unknown members are ignored.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ClientMetadata {
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    pub token_endpoint_auth_method: Option<String>,
    #[serde(default)]
    pub grant_types: Vec<String>,
    #[serde(default)]
    pub response_types: Vec<String>,
    pub client_name: Option<String>,
    pub scope: Option<String>,
    pub jwks: Option<serde_json::Value>,
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    /// OpenID Connect Back-Channel Logout 1.0 §2.2.
    pub backchannel_logout_uri: Option<String>,
    #[serde(default)]
    pub backchannel_logout_session_required: bool,
    /// Present only so that it can be said to be ignored.
    #[serde(default, skip_serializing)]
    pub software_statement: Option<String>,
}

/// A registration's answer (RFC 7591 §3.2.1, RFC 7592 §3): the client's metadata, its
/// credentials and where to manage it.
#[derive(Debug, Clone, Serialize)]
pub struct RegisteredClient {
    pub client_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    pub client_id_issued_at: i64,
    /// 0: the secret does not expire.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret_expires_at: Option<i64>,
    /// Only in the answer to the registration itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registration_access_token: Option<String>,
    pub registration_client_uri: String,
    pub client_name: String,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backchannel_logout_uri: Option<String>,
    pub backchannel_logout_session_required: bool,
    pub grant_types: Vec<String>,
    pub response_types: Vec<String>,
    pub token_endpoint_auth_method: String,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks: Option<serde_json::Value>,
}

/// Why a registration request was refused, in RFC 7591 §3.2.2's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationError {
    /// Registration is off: the endpoint does not exist.
    Disabled,
    /// The initial or registration access token is missing, unknown, spent or expired.
    InvalidToken,
    InvalidRedirectUri(String),
    InvalidClientMetadata(String),
    /// Could not be done now (the store is down).
    Unavailable(String),
    Internal(String),
}

impl RegistrationError {
    pub fn error_code(&self) -> &'static str {
        match self {
            RegistrationError::Disabled => "not_found",
            RegistrationError::InvalidToken => "invalid_token",
            RegistrationError::InvalidRedirectUri(_) => "invalid_redirect_uri",
            RegistrationError::InvalidClientMetadata(_) => "invalid_client_metadata",
            RegistrationError::Unavailable(_) => "temporarily_unavailable",
            RegistrationError::Internal(_) => "server_error",
        }
    }

    pub fn description(&self) -> String {
        match self {
            RegistrationError::Disabled => "dynamic client registration is off".into(),
            RegistrationError::InvalidToken => {
                "the access token is missing, invalid, spent or expired".into()
            }
            RegistrationError::InvalidRedirectUri(text)
            | RegistrationError::InvalidClientMetadata(text) => text.clone(),
            RegistrationError::Unavailable(_) => "try again shortly".into(),
            RegistrationError::Internal(_) => "the server failed; it has been logged".into(),
        }
    }
}

impl From<StoreError> for RegistrationError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(reason) => RegistrationError::Unavailable(reason),
            other => RegistrationError::Internal(other.to_string()),
        }
    }
}

impl From<DomainError> for RegistrationError {
    fn from(error: DomainError) -> Self {
        match error {
            DomainError::Validation(issues) => {
                let message = issues
                    .iter()
                    .map(|issue| format!("{}: {}", issue.field, issue.message))
                    .collect::<Vec<_>>()
                    .join("; ");
                if issues.iter().any(|issue| issue.field.contains("redirect_uri")) {
                    RegistrationError::InvalidRedirectUri(message)
                } else {
                    RegistrationError::InvalidClientMetadata(message)
                }
            }
            DomainError::Store(error) => error.into(),
            other => RegistrationError::Internal(other.to_string()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct RegistrationSettings {
    pub mode: RegistrationMode,
    /// The issuer: `registration_client_uri` is under it.
    pub issuer: String,
}

/// A new initial access token, answered once.
#[derive(Debug, Clone, Serialize)]
pub struct IssuedInitialToken {
    pub id: String,
    pub name: String,
    pub token: String,
    pub max_uses: i64,
    pub expires_at: i64,
}

pub struct RegistrationService {
    clients: Arc<ClientService>,
    store: Arc<dyn OAuthStore>,
    tokens: Arc<dyn InitialTokenStore>,
    digester: Digester,
    clock: Arc<dyn Clock>,
    settings: RegistrationSettings,
}

impl RegistrationService {
    pub fn new(
        clients: Arc<ClientService>,
        store: Arc<dyn OAuthStore>,
        tokens: Arc<dyn InitialTokenStore>,
        digester: Digester,
        clock: Arc<dyn Clock>,
        settings: RegistrationSettings,
    ) -> Self {
        Self { clients, store, tokens, digester, clock, settings }
    }

    pub fn mode(&self) -> RegistrationMode {
        self.settings.mode
    }

    /// Issues an initial access token for `token` mode: `max_uses` registrations (1 by
    /// default) within `expires_in_seconds` (a day by default, at most 90).
    pub async fn create_initial_token(
        &self,
        admin: &AdminPrincipal,
        name: &str,
        expires_in_seconds: Option<i64>,
        max_uses: Option<i64>,
        context: &RequestContext,
    ) -> Result<IssuedInitialToken, DomainError> {
        let lifetime = expires_in_seconds.unwrap_or(DEFAULT_INITIAL_TOKEN_SECONDS);
        let max_uses = max_uses.unwrap_or(1);
        let mut issues = Vec::new();
        if !(60..=MAX_INITIAL_TOKEN_SECONDS).contains(&lifetime) {
            issues.push(crate::error::FieldIssue::new(
                "expires_in_seconds",
                "invalid",
                "between 60 seconds and 90 days",
            ));
        }
        if !(1..=10_000).contains(&max_uses) {
            issues.push(crate::error::FieldIssue::new(
                "max_uses",
                "invalid",
                "between 1 and 10000",
            ));
        }
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            issues.push(crate::error::FieldIssue::new("name", "invalid", "1 to 100 characters"));
        }
        if !issues.is_empty() {
            return Err(DomainError::Validation(issues));
        }
        let now = self.clock.now();
        let token = INITIAL_ACCESS_TOKEN.generate();
        let record = InitialTokenRecord {
            id: gatehouse_crypto::new_id("reg"),
            token_digest: self.digester.digest(token.as_bytes()).to_vec(),
            name: name.to_owned(),
            max_uses,
            uses: 0,
            created_at: now,
            expires_at: now + lifetime,
        };
        let event =
            AuditEvent::new("admin.registration_token_created", admin.actor(), context, now)
                .target("registration_token", &record.id)
                .metadata(
                    serde_json::json!({ "max_uses": max_uses, "expires_at": record.expires_at }),
                );
        self.tokens.insert_initial_token(&record, &[event]).await?;
        Ok(IssuedInitialToken {
            id: record.id,
            name: record.name,
            token,
            max_uses,
            expires_at: record.expires_at,
        })
    }

    /// `POST /oauth2/register`.
    pub async fn register(
        &self,
        initial_token: Option<&str>,
        metadata: ClientMetadata,
        context: &RequestContext,
    ) -> Result<RegisteredClient, RegistrationError> {
        let now = self.clock.now();
        match self.settings.mode {
            RegistrationMode::Off => return Err(RegistrationError::Disabled),
            RegistrationMode::Open => {}
            RegistrationMode::Token => {
                let token = initial_token
                    .filter(|token| INITIAL_ACCESS_TOKEN.recognises(token))
                    .ok_or(RegistrationError::InvalidToken)?;
                let digest = self.digester.digest(token.as_bytes());
                if !self.tokens.spend_initial_token(&digest, now).await? {
                    return Err(RegistrationError::InvalidToken);
                }
            }
        }
        let request = self.new_client(&metadata)?;
        let method = requested_method(&metadata);
        let (mut client, secret) = self.clients.validated_record(request)?;
        let token = REGISTRATION_ACCESS_TOKEN.generate();
        client.registration_token_digest = Some(self.digester.digest(token.as_bytes()).to_vec());
        let event = AuditEvent::new("oauth.client_registered", &Actor::Anonymous, context, now)
            .target("client", &client.client_id)
            .metadata(serde_json::json!({
                "name": client.name,
                "token_endpoint_auth_method": method,
                "mode": match self.settings.mode {
                    RegistrationMode::Token => "token",
                    _ => "open",
                },
            }));
        self.store.insert_client(&client, &[event]).await?;
        Ok(self.answer(&client, secret, Some(token), method))
    }

    /// The client a registration access token manages: it must be this client's.
    async fn managed(
        &self,
        client_id: &str,
        token: Option<&str>,
    ) -> Result<ClientRecord, RegistrationError> {
        let token = token
            .filter(|token| REGISTRATION_ACCESS_TOKEN.recognises(token))
            .ok_or(RegistrationError::InvalidToken)?;
        let client = self.store.client(client_id).await?.ok_or(RegistrationError::InvalidToken)?;
        let matches = client
            .registration_token_digest
            .as_ref()
            .is_some_and(|digest| self.digester.verify(token.as_bytes(), digest));
        if matches { Ok(client) } else { Err(RegistrationError::InvalidToken) }
    }

    /// `GET /oauth2/register/{client_id}` (RFC 7592 §2.1).
    pub async fn read(
        &self,
        client_id: &str,
        token: Option<&str>,
    ) -> Result<RegisteredClient, RegistrationError> {
        let client = self.managed(client_id, token).await?;
        let method = client.token_endpoint_auth_method.clone();
        Ok(self.answer(&client, None, None, method))
    }

    /// `PUT /oauth2/register/{client_id}` (RFC 7592 §2.2): the registration replaced by the
    /// metadata sent, checked as a registration is; its authentication method stays.
    pub async fn replace(
        &self,
        client_id: &str,
        token: Option<&str>,
        metadata: ClientMetadata,
        context: &RequestContext,
    ) -> Result<RegisteredClient, RegistrationError> {
        let existing = self.managed(client_id, token).await?;
        let mut request = self.new_client(&metadata)?;
        request.client_id = Some(existing.client_id.clone());
        if request.public != existing.is_public()
            || request.jwks.is_some()
                != (existing.token_endpoint_auth_method == AUTH_PRIVATE_KEY_JWT)
        {
            return Err(RegistrationError::InvalidClientMetadata(
                "the token_endpoint_auth_method of a registration cannot change".into(),
            ));
        }
        let (template, _) = self.clients.validated_record(request)?;
        let mut updated = existing.clone();
        updated.name = template.name;
        updated.redirect_uris = template.redirect_uris;
        updated.post_logout_redirect_uris = template.post_logout_redirect_uris;
        updated.backchannel_logout_uri = template.backchannel_logout_uri;
        updated.backchannel_logout_session_required = template.backchannel_logout_session_required;
        updated.grant_types = template.grant_types;
        updated.scopes = template.scopes;
        if template.jwks.is_some() {
            updated.jwks = template.jwks;
        }
        updated.updated_at = self.clock.now();
        let event = AuditEvent::new(
            "oauth.client_registration_updated",
            &Actor::Anonymous,
            context,
            updated.updated_at,
        )
        .target("client", client_id);
        self.store.update_client(&updated, &[event]).await?;
        let method = updated.token_endpoint_auth_method.clone();
        Ok(self.answer(&updated, None, None, method))
    }

    /// `DELETE /oauth2/register/{client_id}` (RFC 7592 §2.3): the client and every session
    /// granted to it end.
    pub async fn delete(
        &self,
        client_id: &str,
        token: Option<&str>,
        context: &RequestContext,
    ) -> Result<(), RegistrationError> {
        self.managed(client_id, token).await?;
        let event = AuditEvent::new(
            "oauth.client_registration_deleted",
            &Actor::Anonymous,
            context,
            self.clock.now(),
        )
        .target("client", client_id);
        self.store.delete_client(client_id, &[event]).await?;
        Ok(())
    }

    /// The registration rules: the mode's policy, then the metadata as a client request.
    fn new_client(&self, metadata: &ClientMetadata) -> Result<NewClient, RegistrationError> {
        let invalid = |text: &str| RegistrationError::InvalidClientMetadata(text.to_owned());
        let method = requested_method(metadata);
        if ![AUTH_NONE, AUTH_CLIENT_SECRET_BASIC, AUTH_CLIENT_SECRET_POST, AUTH_PRIVATE_KEY_JWT]
            .contains(&method.as_str())
        {
            return Err(invalid("unsupported token_endpoint_auth_method"));
        }
        let public = method == AUTH_NONE;
        if self.settings.mode == RegistrationMode::Open && !public {
            return Err(invalid(
                "open registration is for public clients (token_endpoint_auth_method none)",
            ));
        }
        if (method == AUTH_PRIVATE_KEY_JWT) != metadata.jwks.is_some() {
            return Err(invalid("jwks goes with private_key_jwt, and only with it"));
        }
        let grant_types = if metadata.grant_types.is_empty() {
            vec![GRANT_AUTHORIZATION_CODE.to_owned()]
        } else {
            metadata.grant_types.clone()
        };
        let allowed: &[&str] = if self.settings.mode == RegistrationMode::Open {
            &[GRANT_AUTHORIZATION_CODE, GRANT_REFRESH_TOKEN]
        } else {
            &[GRANT_AUTHORIZATION_CODE, GRANT_REFRESH_TOKEN, GRANT_CLIENT_CREDENTIALS]
        };
        if let Some(grant) = grant_types.iter().find(|grant| !allowed.contains(&grant.as_str())) {
            return Err(invalid(&format!("grant type {grant} cannot be registered")));
        }
        if metadata.response_types.iter().any(|response_type| response_type != "code") {
            return Err(invalid("only the code response type is supported"));
        }
        if metadata.redirect_uris.is_empty()
            && grant_types.iter().any(|grant| grant == GRANT_AUTHORIZATION_CODE)
        {
            return Err(RegistrationError::InvalidRedirectUri(
                "redirect_uris is required for the authorization code grant".into(),
            ));
        }
        let name = metadata
            .client_name
            .clone()
            .filter(|name| !name.trim().is_empty())
            .unwrap_or_else(|| "Dynamically registered client".to_owned());
        Ok(NewClient {
            client_id: None,
            name,
            secret: None,
            public,
            redirect_uris: metadata.redirect_uris.clone(),
            post_logout_redirect_uris: metadata.post_logout_redirect_uris.clone(),
            grant_types,
            scopes: metadata.scope.as_deref().map(split_scope).unwrap_or_default(),
            // A client nobody vetted never skips the user's consent.
            skip_consent: false,
            require_pushed_authorization_requests: false,
            dpop_bound_access_tokens: false,
            backchannel_logout_uri: metadata.backchannel_logout_uri.clone(),
            backchannel_logout_session_required: metadata.backchannel_logout_session_required,
            access_token_ttl_seconds: None,
            refresh_token_ttl_seconds: None,
            jwks: metadata.jwks.clone(),
        })
    }

    fn answer(
        &self,
        client: &ClientRecord,
        secret: Option<String>,
        registration_access_token: Option<String>,
        method: String,
    ) -> RegisteredClient {
        let issuer = self.settings.issuer.trim_end_matches('/');
        RegisteredClient {
            client_id: client.client_id.clone(),
            client_secret_expires_at: secret.as_ref().map(|_| 0),
            client_secret: secret,
            client_id_issued_at: client.created_at,
            registration_access_token,
            registration_client_uri: format!("{issuer}/oauth2/register/{}", client.client_id),
            client_name: client.name.clone(),
            redirect_uris: client.redirect_uris.clone(),
            post_logout_redirect_uris: client.post_logout_redirect_uris.clone(),
            backchannel_logout_uri: client.backchannel_logout_uri.clone(),
            backchannel_logout_session_required: client.backchannel_logout_session_required,
            grant_types: client.grant_types.clone(),
            response_types: vec!["code".into()],
            token_endpoint_auth_method: method,
            scope: client.scopes.join(" "),
            jwks: client.jwks.clone(),
        }
    }
}

/// The method a registration asks for; RFC 7591 §2's default is `client_secret_basic`.
fn requested_method(metadata: &ClientMetadata) -> String {
    metadata
        .token_endpoint_auth_method
        .clone()
        .unwrap_or_else(|| AUTH_CLIENT_SECRET_BASIC.to_owned())
}
