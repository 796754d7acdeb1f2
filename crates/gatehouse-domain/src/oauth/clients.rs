//! Managing and authenticating clients: registration (CLI, admin API, config), secret
//! rotation with an overlap window, and client authentication at the token endpoint.

use super::client::{
    AUTH_CLIENT_SECRET_BASIC, AUTH_NONE, AUTH_PRIVATE_KEY_JWT, AuthFamily, CLIENT_SECRET,
    ClientRecord, GRANT_AUTHORIZATION_CODE, GRANT_CLIENT_CREDENTIALS, GRANT_REFRESH_TOKEN,
    SUPPORTED_GRANTS, valid_scope_token, validate_backchannel_logout_uri, validate_redirect_uri,
};
use std::sync::Arc;

use gatehouse_crypto::Digester;

use super::documents::is_document_client_id;
use super::store::OAuthStore;
use super::{OAuthError, OAuthSettings, STANDARD_SCOPES};
use crate::audit::AuditEvent;
use crate::clock::Clock;
use crate::error::{DomainError, FieldIssue};
use crate::principal::AdminPrincipal;
use crate::principal::RequestContext;

/// A client to register. Empty lists take defaults.
#[derive(Debug, Clone, Default)]
pub struct NewClient {
    pub client_id: Option<String>,
    pub name: String,
    /// A chosen secret (at least 32 characters); generated when absent for confidential clients.
    pub secret: Option<String>,
    pub public: bool,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    pub scopes: Vec<String>,
    pub skip_consent: bool,
    /// See [`ClientRecord::require_pushed_authorization_requests`].
    pub require_pushed_authorization_requests: bool,
    /// See [`ClientRecord::dpop_bound_access_tokens`].
    pub dpop_bound_access_tokens: bool,
    /// See [`ClientRecord::backchannel_logout_uri`].
    pub backchannel_logout_uri: Option<String>,
    pub backchannel_logout_session_required: bool,
    pub access_token_ttl_seconds: Option<i64>,
    pub refresh_token_ttl_seconds: Option<i64>,
    /// A JWK Set of the client's public keys: the client then authenticates with
    /// `private_key_jwt` (signed assertions) and has no secret.
    pub jwks: Option<serde_json::Value>,
}

/// A change to a registered client; `None` leaves a field as it is. The authentication
/// method (secret, keys, public) is not changed here: rotate the secret, or register anew.
#[derive(Debug, Clone, Default)]
pub struct ClientChange {
    pub name: Option<String>,
    pub redirect_uris: Option<Vec<String>>,
    pub post_logout_redirect_uris: Option<Vec<String>>,
    pub grant_types: Option<Vec<String>>,
    pub scopes: Option<Vec<String>>,
    pub skip_consent: Option<bool>,
    pub require_pushed_authorization_requests: Option<bool>,
    pub dpop_bound_access_tokens: Option<bool>,
    /// `Some("")` removes it.
    pub backchannel_logout_uri: Option<String>,
    pub backchannel_logout_session_required: Option<bool>,
    pub access_token_ttl_seconds: Option<i64>,
    pub refresh_token_ttl_seconds: Option<i64>,
}

/// How a client presented itself at the token, introspection or revocation endpoint.
#[derive(Debug, Clone)]
pub enum ClientCredentials {
    /// HTTP Basic (`client_secret_basic`).
    Basic { client_id: String, secret: String },
    /// Form fields (`client_secret_post`).
    Post { client_id: String, secret: String },
    /// Only a `client_id` (public clients, `none`).
    IdOnly { client_id: String },
    /// A signed JWT (`private_key_jwt`, RFC 7523); `client_id` is optional in the request.
    Assertion { client_id: Option<String>, assertion: String },
}

impl ClientCredentials {
    /// The family of the method presented; it must be the client's registered one.
    pub fn family(&self) -> AuthFamily {
        match self {
            ClientCredentials::Basic { .. } | ClientCredentials::Post { .. } => AuthFamily::Secret,
            ClientCredentials::IdOnly { .. } => AuthFamily::None,
            ClientCredentials::Assertion { .. } => AuthFamily::Jwt,
        }
    }
}

fn valid_client_id(client_id: &str) -> bool {
    (3..=64).contains(&client_id.len())
        && client_id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// The OAuth clients: registration by the CLI, the admin API and the configuration file,
/// secret rotation, and client authentication at the token, introspection and revocation
/// endpoints.
pub struct ClientService {
    store: Arc<dyn OAuthStore>,
    /// Purpose [`super::client::CLIENT_SECRET_DIGEST_PURPOSE`].
    secret_digester: Digester,
    clock: Arc<dyn Clock>,
    settings: OAuthSettings,
}

impl ClientService {
    pub fn new(
        store: Arc<dyn OAuthStore>,
        secret_digester: Digester,
        clock: Arc<dyn Clock>,
        settings: OAuthSettings,
    ) -> Self {
        Self { store, secret_digester, clock, settings }
    }

    /// Registers a client; answers it and, for confidential clients, the secret — shown this
    /// once and stored only as a keyed digest.
    pub async fn create_client(
        &self,
        admin: &AdminPrincipal,
        request: NewClient,
        context: &RequestContext,
    ) -> Result<(ClientRecord, Option<String>), DomainError> {
        let public = request.public;
        let (client, secret) = self.validated_record(request)?;
        let event =
            AuditEvent::new("admin.client_created", admin.actor(), context, client.created_at)
                .target("client", &client.client_id)
                .metadata(serde_json::json!({ "name": client.name, "public": public }));
        self.store.insert_client(&client, &[event]).await.map_err(|error| match error {
            crate::StoreError::Conflict(_) => {
                DomainError::Conflict("a client with this client_id exists".into())
            }
            other => other.into(),
        })?;
        Ok((client, secret))
    }

    /// Checks a registration and builds the record (and the secret to show once).
    pub(crate) fn validated_record(
        &self,
        request: NewClient,
    ) -> Result<(ClientRecord, Option<String>), DomainError> {
        let mut issues = Vec::new();
        let client_id =
            request.client_id.clone().unwrap_or_else(|| gatehouse_crypto::new_id("cli"));
        if !valid_client_id(&client_id) {
            issues.push(FieldIssue::new(
                "client_id",
                "invalid",
                "3 to 64 characters: letters, digits, . _ -",
            ));
        }
        let name = request.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 100 {
            issues.push(FieldIssue::new(
                "name",
                "invalid",
                "A name of 1 to 100 characters is required.",
            ));
        }
        let grant_types = if request.grant_types.is_empty() {
            vec![GRANT_AUTHORIZATION_CODE.to_owned(), GRANT_REFRESH_TOKEN.to_owned()]
        } else {
            request.grant_types.clone()
        };
        for grant in &grant_types {
            if !SUPPORTED_GRANTS.contains(&grant.as_str()) {
                issues.push(FieldIssue::new(
                    "grant_types",
                    "unsupported",
                    format!("{grant} is not supported"),
                ));
            }
        }
        if request.public && grant_types.iter().any(|grant| grant == GRANT_CLIENT_CREDENTIALS) {
            issues.push(FieldIssue::new(
                "grant_types",
                "invalid",
                "public clients cannot use client_credentials",
            ));
        }
        if request.public
            && grant_types.iter().any(|grant| grant == super::client::GRANT_TOKEN_EXCHANGE)
        {
            issues.push(FieldIssue::new(
                "grant_types",
                "invalid",
                "public clients cannot exchange tokens",
            ));
        }
        if grant_types.iter().any(|grant| grant == GRANT_AUTHORIZATION_CODE)
            && request.redirect_uris.is_empty()
        {
            issues.push(FieldIssue::new(
                "redirect_uris",
                "required",
                "authorization_code needs a redirect URI",
            ));
        }
        for uri in request.redirect_uris.iter().chain(&request.post_logout_redirect_uris) {
            if let Err(issue) = validate_redirect_uri(uri, "redirect_uris") {
                issues.push(issue);
            }
        }
        let scopes = if request.scopes.is_empty() {
            STANDARD_SCOPES.iter().map(|scope| scope.to_string()).collect()
        } else {
            request.scopes.clone()
        };
        if let Some(uri) = &request.backchannel_logout_uri
            && let Err(issue) = validate_backchannel_logout_uri(uri)
        {
            issues.push(issue);
        }
        for scope in &scopes {
            if !valid_scope_token(scope) {
                issues.push(FieldIssue::new(
                    "scopes",
                    "invalid",
                    format!("{scope:?} is not a scope token"),
                ));
            }
        }
        if let Some(jwks) = &request.jwks {
            let usable =
                gatehouse_crypto::PublicKeySet::from_jwks(jwks).is_ok_and(|keys| !keys.is_empty());
            if !usable || request.public || request.secret.is_some() {
                issues.push(FieldIssue::new(
                    "jwks",
                    "invalid",
                    "a JWK Set with at least one RS256, ES256 or EdDSA signing key, for a confidential client without a secret",
                ));
            }
        }
        if let Some(secret) = &request.secret
            && (request.public
                || secret.len() < 32
                || (secret.starts_with(CLIENT_SECRET.prefix) && !CLIENT_SECRET.is_current(secret)))
        {
            issues.push(FieldIssue::new(
                "secret",
                "invalid",
                "at least 32 characters, and only for confidential clients",
            ));
        }
        for (field, ttl) in [
            ("access_token_ttl_seconds", request.access_token_ttl_seconds),
            ("refresh_token_ttl_seconds", request.refresh_token_ttl_seconds),
        ] {
            if ttl.is_some_and(|ttl| !(60..=365 * 86_400).contains(&ttl)) {
                issues.push(FieldIssue::new(field, "invalid", "between 60 seconds and 365 days"));
            }
        }
        if !issues.is_empty() {
            return Err(DomainError::Validation(issues));
        }
        let secret = (!request.public && request.jwks.is_none())
            .then(|| request.secret.clone().unwrap_or_else(|| CLIENT_SECRET.generate()));
        let now = self.clock.now();
        let client = ClientRecord {
            client_id,
            name,
            secret_digest: secret
                .as_ref()
                .map(|secret| self.secret_digester.digest(secret.as_bytes()).to_vec()),
            previous_secret_digest: None,
            previous_secret_expires_at: None,
            redirect_uris: request.redirect_uris,
            post_logout_redirect_uris: request.post_logout_redirect_uris,
            grant_types,
            scopes,
            token_endpoint_auth_method: match (request.public, request.jwks.is_some()) {
                (true, _) => AUTH_NONE,
                (false, true) => AUTH_PRIVATE_KEY_JWT,
                (false, false) => AUTH_CLIENT_SECRET_BASIC,
            }
            .to_owned(),
            jwks: request.jwks.clone(),
            skip_consent: request.skip_consent,
            require_pushed_authorization_requests: request.require_pushed_authorization_requests,
            dpop_bound_access_tokens: request.dpop_bound_access_tokens,
            backchannel_logout_uri: request.backchannel_logout_uri.clone(),
            backchannel_logout_session_required: request.backchannel_logout_session_required,
            access_token_ttl_seconds: request.access_token_ttl_seconds,
            refresh_token_ttl_seconds: request.refresh_token_ttl_seconds,
            created_at: now,
            updated_at: now,
            registration_token_digest: None,
            document_expires_at: None,
        };
        Ok((client, secret))
    }

    /// Applies a client declared in the configuration file: created when missing, otherwise
    /// brought in line with the declaration (its secret too when one is declared), so a
    /// deployment's clients are reproducible.
    pub async fn apply_declared_client(&self, declared: NewClient) -> Result<(), DomainError> {
        let admin = AdminPrincipal::system();
        let context = RequestContext {
            user_agent: Some("gatehouse-config".into()),
            ..RequestContext::default()
        };
        let Some(client_id) = declared.client_id.clone() else {
            return Err(DomainError::Invalid("a declared client needs a client_id".into()));
        };
        let Some(existing) = self.store.client(&client_id).await? else {
            self.create_client(&admin, declared, &context).await?;
            return Ok(());
        };
        // Validate the declaration as a creation would (into a throwaway record).
        let mut probe = declared.clone();
        probe.client_id = Some(client_id.clone());
        let template = self.validated_record(probe)?;
        let mut updated = existing.clone();
        updated.name = template.0.name;
        updated.redirect_uris = template.0.redirect_uris;
        updated.post_logout_redirect_uris = template.0.post_logout_redirect_uris;
        updated.grant_types = template.0.grant_types;
        updated.scopes = template.0.scopes;
        // Changing the method drops the credentials of the family left behind.
        updated.set_authentication(&template.0.token_endpoint_auth_method, template.0.jwks);
        updated.skip_consent = template.0.skip_consent;
        updated.require_pushed_authorization_requests =
            template.0.require_pushed_authorization_requests;
        updated.dpop_bound_access_tokens = template.0.dpop_bound_access_tokens;
        updated.backchannel_logout_uri = template.0.backchannel_logout_uri;
        updated.backchannel_logout_session_required =
            template.0.backchannel_logout_session_required;
        updated.access_token_ttl_seconds = template.0.access_token_ttl_seconds;
        updated.refresh_token_ttl_seconds = template.0.refresh_token_ttl_seconds;
        if let Some(secret) = declared.secret.as_ref().filter(|_| !declared.public) {
            updated.secret_digest = Some(self.secret_digester.digest(secret.as_bytes()).to_vec());
        }
        if updated != existing {
            updated.updated_at = self.clock.now();
            let event = AuditEvent::new(
                "admin.client_updated",
                admin.actor(),
                &context,
                updated.updated_at,
            )
            .target("client", &client_id)
            .metadata(serde_json::json!({ "source": "configuration" }));
            self.store.update_client(&updated, &[event]).await?;
        }
        Ok(())
    }

    /// Changes a client's registration (names, redirect URIs, grants, scopes, consent, token
    /// lifetimes), checked as a registration is; audited `admin.client_updated` with the
    /// fields that changed.
    pub async fn update_client(
        &self,
        admin: &AdminPrincipal,
        client_id: &str,
        change: ClientChange,
        context: &RequestContext,
    ) -> Result<ClientRecord, DomainError> {
        let existing = self.store.client(client_id).await?.ok_or(DomainError::NotFound)?;
        let probe = NewClient {
            client_id: Some(existing.client_id.clone()),
            name: change.name.unwrap_or_else(|| existing.name.clone()),
            secret: None,
            public: existing.is_public(),
            redirect_uris: change.redirect_uris.unwrap_or_else(|| existing.redirect_uris.clone()),
            post_logout_redirect_uris: change
                .post_logout_redirect_uris
                .unwrap_or_else(|| existing.post_logout_redirect_uris.clone()),
            grant_types: change.grant_types.unwrap_or_else(|| existing.grant_types.clone()),
            scopes: change.scopes.unwrap_or_else(|| existing.scopes.clone()),
            skip_consent: change.skip_consent.unwrap_or(existing.skip_consent),
            require_pushed_authorization_requests: change
                .require_pushed_authorization_requests
                .unwrap_or(existing.require_pushed_authorization_requests),
            dpop_bound_access_tokens: change
                .dpop_bound_access_tokens
                .unwrap_or(existing.dpop_bound_access_tokens),
            backchannel_logout_uri: match change.backchannel_logout_uri {
                Some(uri) if uri.is_empty() => None,
                Some(uri) => Some(uri),
                None => existing.backchannel_logout_uri.clone(),
            },
            backchannel_logout_session_required: change
                .backchannel_logout_session_required
                .unwrap_or(existing.backchannel_logout_session_required),
            access_token_ttl_seconds: change
                .access_token_ttl_seconds
                .or(existing.access_token_ttl_seconds),
            refresh_token_ttl_seconds: change
                .refresh_token_ttl_seconds
                .or(existing.refresh_token_ttl_seconds),
            jwks: existing.jwks.clone(),
        };
        let (template, _) = self.validated_record(probe)?;
        let mut updated = existing.clone();
        updated.name = template.name;
        updated.redirect_uris = template.redirect_uris;
        updated.post_logout_redirect_uris = template.post_logout_redirect_uris;
        updated.grant_types = template.grant_types;
        updated.scopes = template.scopes;
        updated.skip_consent = template.skip_consent;
        updated.require_pushed_authorization_requests =
            template.require_pushed_authorization_requests;
        updated.dpop_bound_access_tokens = template.dpop_bound_access_tokens;
        updated.backchannel_logout_uri = template.backchannel_logout_uri;
        updated.backchannel_logout_session_required = template.backchannel_logout_session_required;
        updated.access_token_ttl_seconds = template.access_token_ttl_seconds;
        updated.refresh_token_ttl_seconds = template.refresh_token_ttl_seconds;
        if updated == existing {
            return Ok(existing);
        }
        let mut changed = Vec::new();
        for (field, differs) in [
            ("name", updated.name != existing.name),
            ("redirect_uris", updated.redirect_uris != existing.redirect_uris),
            (
                "post_logout_redirect_uris",
                updated.post_logout_redirect_uris != existing.post_logout_redirect_uris,
            ),
            ("grant_types", updated.grant_types != existing.grant_types),
            ("scopes", updated.scopes != existing.scopes),
            ("skip_consent", updated.skip_consent != existing.skip_consent),
            (
                "require_pushed_authorization_requests",
                updated.require_pushed_authorization_requests
                    != existing.require_pushed_authorization_requests,
            ),
            (
                "dpop_bound_access_tokens",
                updated.dpop_bound_access_tokens != existing.dpop_bound_access_tokens,
            ),
            (
                "backchannel_logout_uri",
                updated.backchannel_logout_uri != existing.backchannel_logout_uri,
            ),
            (
                "backchannel_logout_session_required",
                updated.backchannel_logout_session_required
                    != existing.backchannel_logout_session_required,
            ),
            (
                "access_token_ttl_seconds",
                updated.access_token_ttl_seconds != existing.access_token_ttl_seconds,
            ),
            (
                "refresh_token_ttl_seconds",
                updated.refresh_token_ttl_seconds != existing.refresh_token_ttl_seconds,
            ),
        ] {
            if differs {
                changed.push(field);
            }
        }
        updated.updated_at = self.clock.now();
        let event =
            AuditEvent::new("admin.client_updated", admin.actor(), context, updated.updated_at)
                .target("client", client_id)
                .metadata(serde_json::json!({ "changed": changed }));
        self.store.update_client(&updated, &[event]).await?;
        Ok(updated)
    }

    /// A new secret; the previous one keeps working for the overlap window, so deployments
    /// can roll without downtime.
    pub async fn rotate_client_secret(
        &self,
        admin: &AdminPrincipal,
        client_id: &str,
        context: &RequestContext,
    ) -> Result<(ClientRecord, String), DomainError> {
        let mut client = self.store.client(client_id).await?.ok_or(DomainError::NotFound)?;
        // A public or `private_key_jwt` client given a secret would gain a second way in.
        if client.auth_family() != Some(AuthFamily::Secret) {
            return Err(DomainError::ClientHasNoSecret);
        }
        let now = self.clock.now();
        let secret = CLIENT_SECRET.generate();
        client.previous_secret_digest = client.secret_digest.take();
        client.previous_secret_expires_at = Some(now + self.settings.secret_overlap_seconds);
        client.secret_digest = Some(self.secret_digester.digest(secret.as_bytes()).to_vec());
        client.updated_at = now;
        let event = AuditEvent::new("admin.client_secret_rotated", admin.actor(), context, now)
            .target("client", client_id);
        self.store.update_client(&client, &[event]).await?;
        Ok((client, secret))
    }

    pub async fn get_client(
        &self,
        _admin: &AdminPrincipal,
        client_id: &str,
    ) -> Result<ClientRecord, DomainError> {
        self.store.client(client_id).await?.ok_or(DomainError::NotFound)
    }

    pub async fn list_clients(
        &self,
        _admin: &AdminPrincipal,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<ClientRecord>, Option<String>), DomainError> {
        let limit = limit.clamp(1, 100);
        let mut clients = self.store.list_clients(cursor, limit + 1).await?;
        let next = if clients.len() > limit as usize {
            clients.truncate(limit as usize);
            clients.last().map(|client| client.client_id.clone())
        } else {
            None
        };
        Ok((clients, next))
    }

    pub async fn delete_client(
        &self,
        admin: &AdminPrincipal,
        client_id: &str,
        context: &RequestContext,
    ) -> Result<(), DomainError> {
        let event =
            AuditEvent::new("admin.client_deleted", admin.actor(), context, self.clock.now())
                .target("client", client_id);
        if !self.store.delete_client(client_id, &[event]).await? {
            return Err(DomainError::NotFound);
        }
        Ok(())
    }

    /// Authenticates a client with a method of its registered family only: a secret client
    /// by `client_secret_basic` or `client_secret_post`, a `private_key_jwt` client by a signed
    /// assertion, a public client by its `client_id` alone. Secrets are compared as keyed
    /// digests in constant time; an unknown client, a wrong secret and a method of another
    /// family are the same `invalid_client`.
    pub async fn authenticate_client(
        &self,
        credentials: &ClientCredentials,
    ) -> Result<ClientRecord, OAuthError> {
        let (client_id, secret) = match credentials {
            ClientCredentials::Assertion { client_id, assertion } => {
                return self.authenticate_assertion(client_id.as_deref(), assertion).await;
            }
            ClientCredentials::Basic { client_id, secret }
            | ClientCredentials::Post { client_id, secret } => (client_id, Some(secret)),
            ClientCredentials::IdOnly { client_id } => (client_id, None),
        };
        if !valid_client_id(client_id) && !is_document_client_id(client_id, true) {
            return Err(OAuthError::InvalidClient);
        }
        let client = self.store.client(client_id).await?.ok_or(OAuthError::InvalidClient)?;
        if client.auth_family() != Some(credentials.family()) {
            return Err(OAuthError::InvalidClient);
        }
        let Some(secret) = secret else {
            return Ok(client);
        };
        // A secret in our format whose checksum fails is a typo or a forgery: refused like a
        // wrong secret, without computing a digest.
        if secret.starts_with(CLIENT_SECRET.prefix) && !CLIENT_SECRET.is_current(secret) {
            return Err(OAuthError::InvalidClient);
        }
        let now = self.clock.now();
        let current = client
            .secret_digest
            .as_ref()
            .is_some_and(|digest| self.secret_digester.verify(secret.as_bytes(), digest));
        let previous = client.previous_secret_expires_at.is_some_and(|until| until > now)
            && client
                .previous_secret_digest
                .as_ref()
                .is_some_and(|digest| self.secret_digester.verify(secret.as_bytes(), digest));
        if current || previous { Ok(client) } else { Err(OAuthError::InvalidClient) }
    }
}

/// Longest life a client assertion may claim (RFC 7523 asks for short-lived assertions).
const MAX_ASSERTION_LIFETIME_SECONDS: i64 = 600;
/// Clock skew tolerated on an assertion's `exp`. Its `jti` is remembered until
/// `exp + ASSERTION_LEEWAY_SECONDS`, the last moment the assertion verifies, so a replay can
/// never outlive the memory of the first use.
pub const ASSERTION_LEEWAY_SECONDS: i64 = 30;

impl ClientService {
    /// `private_key_jwt`: the assertion must be signed by one of the client's registered keys,
    /// name the client as `iss` and `sub`, be addressed to our token endpoint (or issuer),
    /// expire soon, and carry a `jti` never seen before (no replays).
    async fn authenticate_assertion(
        &self,
        client_id: Option<&str>,
        assertion: &str,
    ) -> Result<ClientRecord, OAuthError> {
        // The client is looked up from the claims before verifying them, as RFC 7523 allows;
        // nothing is trusted until the signature checks against that client's keys.
        let unverified: serde_json::Value =
            gatehouse_crypto::jsonwebtoken::dangerous::insecure_decode_claims(assertion)
                .map_err(|_| OAuthError::InvalidClient)?;
        let claimed = unverified["sub"].as_str().ok_or(OAuthError::InvalidClient)?;
        if client_id.is_some_and(|id| id != claimed)
            || (!valid_client_id(claimed) && !is_document_client_id(claimed, true))
        {
            return Err(OAuthError::InvalidClient);
        }
        let client = self.store.client(claimed).await?.ok_or(OAuthError::InvalidClient)?;
        if client.auth_family() != Some(AuthFamily::Jwt) {
            return Err(OAuthError::InvalidClient);
        }
        let jwks = client.jwks.as_ref().ok_or(OAuthError::InvalidClient)?;
        let keys = gatehouse_crypto::PublicKeySet::from_jwks(jwks)
            .map_err(|_| OAuthError::InvalidClient)?;
        let issuer = self.settings.issuer.trim_end_matches('/');
        let token_endpoint = format!("{issuer}/oauth2/token");
        let mut validation = gatehouse_crypto::jsonwebtoken::Validation::new(
            gatehouse_crypto::jsonwebtoken::Algorithm::RS256,
        );
        validation.set_issuer(&[&client.client_id]);
        validation.set_audience(&[token_endpoint.as_str(), issuer, self.settings.issuer.as_str()]);
        validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
        validation.leeway = ASSERTION_LEEWAY_SECONDS as u64;
        let claims: serde_json::Value =
            keys.verify(assertion, None, &validation).map_err(|_| OAuthError::InvalidClient)?;
        let now = self.clock.now();
        let expires_at = claims["exp"].as_i64().ok_or(OAuthError::InvalidClient)?;
        let jti = claims["jti"]
            .as_str()
            .filter(|jti| !jti.is_empty() && jti.len() <= 256)
            .ok_or(OAuthError::InvalidClient)?;
        // `jsonwebtoken` checked `exp` against the system clock; ours has the last word.
        let usable_until = expires_at.saturating_add(ASSERTION_LEEWAY_SECONDS);
        if claims["sub"].as_str() != Some(client.client_id.as_str())
            || expires_at > now + MAX_ASSERTION_LIFETIME_SECONDS
            || usable_until < now
        {
            return Err(OAuthError::InvalidClient);
        }
        if !self.store.record_client_assertion(&client.client_id, jti, usable_until, now).await? {
            return Err(OAuthError::InvalidClient);
        }
        Ok(client)
    }
}
