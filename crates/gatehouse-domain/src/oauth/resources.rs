//! Resource indicators (RFC 8707): the APIs (resource servers) Gatehouse issues access tokens
//! for, registered by identifier (an absolute URI, its `aud`) with the scopes they accept and
//! the lifetime of their tokens. A client names one or more with `resource` at the
//! authorization endpoint (the grant remembers them) and one at the token endpoint: the access
//! token is then for that resource only — `aud` is its identifier, its scope the granted scopes
//! the resource accepts — so a token leaked by one API is refused by every other.

use std::sync::Arc;

use async_trait::async_trait;

use super::OAuthError;
use crate::DomainError;
use crate::audit::AuditEvent;
use crate::clock::Clock;
use crate::error::FieldIssue;
use crate::principal::{AdminPrincipal, RequestContext};
use crate::store::StoreError;

/// The token format of a resource server's access tokens: only signed JWTs (RFC 9068), which
/// it can verify offline or introspect.
pub const TOKEN_FORMAT_JWT: &str = "jwt";
/// Most resources one request may name.
pub const MAX_RESOURCES_PER_REQUEST: usize = 10;

/// A registered resource server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceServerRecord {
    /// `rs_…`.
    pub id: String,
    /// The absolute URI clients name in `resource`, and the `aud` of its tokens.
    pub identifier: String,
    pub name: String,
    /// The scopes it accepts; empty: any scope granted to the client.
    pub scopes: Vec<String>,
    pub token_format: String,
    /// Overrides the client's and the server's access-token lifetime.
    pub access_token_ttl_seconds: Option<i64>,
    /// Clients that may exchange a user's token for one for this resource acting on the
    /// user's behalf, with an actor token (RFC 8693 delegation: `act`).
    pub delegation_clients: Vec<String>,
    /// Clients that may do so without an actor token (impersonation).
    pub impersonation_clients: Vec<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl ResourceServerRecord {
    /// Whether this resource accepts `scope` (any, when it lists none).
    pub fn accepts(&self, scope: &str) -> bool {
        self.scopes.is_empty() || self.scopes.iter().any(|accepted| accepted == scope)
    }

    /// The part of `granted` this resource accepts.
    pub fn narrow(&self, granted: &[String]) -> Vec<String> {
        granted.iter().filter(|scope| self.accepts(scope)).cloned().collect()
    }
}

/// A resource server to register, or the new values of one.
#[derive(Debug, Clone, Default)]
pub struct NewResourceServer {
    pub identifier: String,
    pub name: String,
    pub scopes: Vec<String>,
    /// `jwt` when absent.
    pub token_format: Option<String>,
    pub access_token_ttl_seconds: Option<i64>,
    /// See [`ResourceServerRecord::delegation_clients`].
    pub delegation_clients: Vec<String>,
    /// See [`ResourceServerRecord::impersonation_clients`].
    pub impersonation_clients: Vec<String>,
}

/// The `resource_servers` table.
#[async_trait]
pub trait ResourceServerStore: Send + Sync {
    async fn insert_resource_server(
        &self,
        record: &ResourceServerRecord,
        events: &[AuditEvent],
    ) -> Result<(), StoreError>;
    async fn update_resource_server(
        &self,
        record: &ResourceServerRecord,
        events: &[AuditEvent],
    ) -> Result<(), StoreError>;
    async fn delete_resource_server(
        &self,
        id: &str,
        events: &[AuditEvent],
    ) -> Result<bool, StoreError>;
    async fn resource_server(&self, id: &str) -> Result<Option<ResourceServerRecord>, StoreError>;
    async fn resource_server_by_identifier(
        &self,
        identifier: &str,
    ) -> Result<Option<ResourceServerRecord>, StoreError>;
    /// By id, after `after`, at most `limit`.
    async fn list_resource_servers(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ResourceServerRecord>, StoreError>;
}

/// A `resource` value (RFC 8707 §2): an absolute URI without a fragment, of a sane length.
pub fn valid_identifier(identifier: &str) -> bool {
    identifier.len() <= 512
        && !identifier.contains('#')
        && url::Url::parse(identifier).is_ok_and(|url| !url.cannot_be_a_base())
}

fn invalid_target(reason: String) -> OAuthError {
    OAuthError::InvalidTarget(reason)
}

pub struct ResourceServerService {
    store: Arc<dyn ResourceServerStore>,
    clock: Arc<dyn Clock>,
}

impl ResourceServerService {
    pub fn new(store: Arc<dyn ResourceServerStore>, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }

    fn validated(
        &self,
        request: NewResourceServer,
        id: String,
        created_at: i64,
    ) -> Result<ResourceServerRecord, DomainError> {
        let mut issues = Vec::new();
        if !valid_identifier(&request.identifier) {
            issues.push(FieldIssue::new(
                "identifier",
                "invalid",
                "an absolute URI without a fragment (https://api.example.com)",
            ));
        }
        let name = request.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 100 {
            issues.push(FieldIssue::new("name", "invalid", "1 to 100 characters"));
        }
        let mut scopes: Vec<String> = Vec::new();
        for scope in &request.scopes {
            if scope.is_empty()
                || scope.len() > 100
                || !scope.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
            {
                issues.push(FieldIssue::new("scopes", "invalid", "scope tokens (RFC 6749 §3.3)"));
                break;
            }
            if !scopes.contains(scope) {
                scopes.push(scope.clone());
            }
        }
        let token_format = request.token_format.unwrap_or_else(|| TOKEN_FORMAT_JWT.to_owned());
        if token_format != TOKEN_FORMAT_JWT {
            issues.push(FieldIssue::new("token_format", "invalid", "only jwt is supported"));
        }
        if request.access_token_ttl_seconds.is_some_and(|ttl| !(60..=86_400).contains(&ttl)) {
            issues.push(FieldIssue::new(
                "access_token_ttl_seconds",
                "invalid",
                "between 60 and 86400 seconds",
            ));
        }
        for (field, clients) in [
            ("delegation_clients", &request.delegation_clients),
            ("impersonation_clients", &request.impersonation_clients),
        ] {
            if clients.len() > 100 || clients.iter().any(|id| id.is_empty() || id.len() > 64) {
                issues.push(FieldIssue::new(field, "invalid", "up to 100 client ids"));
            }
        }
        if !issues.is_empty() {
            return Err(DomainError::Validation(issues));
        }
        Ok(ResourceServerRecord {
            id,
            identifier: request.identifier,
            name,
            scopes,
            token_format,
            access_token_ttl_seconds: request.access_token_ttl_seconds,
            delegation_clients: request.delegation_clients,
            impersonation_clients: request.impersonation_clients,
            created_at,
            updated_at: self.clock.now(),
        })
    }

    pub async fn create(
        &self,
        admin: &AdminPrincipal,
        request: NewResourceServer,
        context: &RequestContext,
    ) -> Result<ResourceServerRecord, DomainError> {
        let now = self.clock.now();
        let record = self.validated(request, gatehouse_crypto::new_id("rs"), now)?;
        let event = AuditEvent::new("admin.resource_server_created", admin.actor(), context, now)
            .target("resource_server", &record.id)
            .metadata(serde_json::json!({ "identifier": record.identifier }));
        self.store.insert_resource_server(&record, &[event]).await.map_err(
            |error| match error {
                StoreError::Conflict(_) => DomainError::Validation(vec![FieldIssue::new(
                    "identifier",
                    "taken",
                    "a resource server with this identifier is registered",
                )]),
                other => other.into(),
            },
        )?;
        Ok(record)
    }

    pub async fn update(
        &self,
        admin: &AdminPrincipal,
        id: &str,
        request: NewResourceServer,
        context: &RequestContext,
    ) -> Result<ResourceServerRecord, DomainError> {
        let existing = self.store.resource_server(id).await?.ok_or(DomainError::NotFound)?;
        let record = self.validated(request, existing.id.clone(), existing.created_at)?;
        let event = AuditEvent::new(
            "admin.resource_server_updated",
            admin.actor(),
            context,
            record.updated_at,
        )
        .target("resource_server", &record.id)
        .metadata(serde_json::json!({ "identifier": record.identifier }));
        self.store.update_resource_server(&record, &[event]).await.map_err(
            |error| match error {
                StoreError::Conflict(_) => DomainError::Validation(vec![FieldIssue::new(
                    "identifier",
                    "taken",
                    "a resource server with this identifier is registered",
                )]),
                other => other.into(),
            },
        )?;
        Ok(record)
    }

    pub async fn delete(
        &self,
        admin: &AdminPrincipal,
        id: &str,
        context: &RequestContext,
    ) -> Result<(), DomainError> {
        let event = AuditEvent::new(
            "admin.resource_server_deleted",
            admin.actor(),
            context,
            self.clock.now(),
        )
        .target("resource_server", id);
        if !self.store.delete_resource_server(id, &[event]).await? {
            return Err(DomainError::NotFound);
        }
        Ok(())
    }

    pub async fn get(
        &self,
        _admin: &AdminPrincipal,
        id: &str,
    ) -> Result<ResourceServerRecord, DomainError> {
        self.store.resource_server(id).await?.ok_or(DomainError::NotFound)
    }

    pub async fn list(
        &self,
        _admin: &AdminPrincipal,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<ResourceServerRecord>, Option<String>), DomainError> {
        let limit = limit.clamp(1, 100);
        let mut records = self.store.list_resource_servers(cursor, limit + 1).await?;
        let next = if records.len() > limit as usize {
            records.truncate(limit as usize);
            records.last().map(|record| record.id.clone())
        } else {
            None
        };
        Ok((records, next))
    }

    /// The registered resource servers `identifiers` name, in order, without repeats:
    /// `invalid_target` for a malformed or unknown one, or too many.
    pub async fn resolve(
        &self,
        identifiers: &[String],
    ) -> Result<Vec<ResourceServerRecord>, OAuthError> {
        if identifiers.len() > MAX_RESOURCES_PER_REQUEST {
            return Err(invalid_target(format!(
                "at most {MAX_RESOURCES_PER_REQUEST} resources per request"
            )));
        }
        let mut records: Vec<ResourceServerRecord> = Vec::new();
        for identifier in identifiers {
            if records.iter().any(|record| &record.identifier == identifier) {
                continue;
            }
            if !valid_identifier(identifier) {
                return Err(invalid_target("resource must be an absolute URI".into()));
            }
            let record =
                self.store.resource_server_by_identifier(identifier).await?.ok_or_else(|| {
                    invalid_target(format!("{identifier} is not a registered resource"))
                })?;
            records.push(record);
        }
        Ok(records)
    }
}
