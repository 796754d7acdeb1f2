//! API keys (personal access tokens): scoped, revocable bearer secrets for machines, owned by
//! a user or by an organization.
//!
//! Security rules, stated where they are enforced:
//! - A key (`gtk_…`, [`API_KEY`]) is shown once, at creation; only its keyed digest is stored
//!   (data key purpose `digest/api-key`). A key whose checksum does not match is refused before
//!   any lookup, exactly like an unknown one.
//! - Creating a key needs a user's session (never a key: the HTTP extractor of a session
//!   refuses keys) and a recent authentication, like every credential change. Creating,
//!   listing and revoking an organization's keys needs `api_keys:manage` in it (outsiders
//!   `not_found`).
//! - A verified key is an [`ApiKeyPrincipal`], never a session's `Principal`: it works only
//!   where a handler asks for it, within its scopes ([`ApiKeyPrincipal::user_with_scope`]).
//!   Expired and revoked keys, keys of a suspended user: `invalid_token`.
//! - `last_used_at` is written at most once a minute per key.
//! - Creation and revocation are audited (`api_key.created`, `api_key.revoked`), with the
//!   organization as target for an organization's key.

pub mod record;
pub mod store;

use std::sync::Arc;

use gatehouse_crypto::Digester;

pub use record::{
    API_KEY, API_KEY_DIGEST_PURPOSE, ApiKeyOwner, ApiKeyPrincipal, ApiKeyRecord, GATEHOUSE_SCOPES,
    keys_not_accepted,
};
pub use store::ApiKeyStore;

use crate::audit::AuditEvent;
use crate::clock::Clock;
use crate::error::{DomainError, FieldIssue};
use crate::organizations::{ListCursor, OrganizationService};
use crate::principal::{Actor, AdminPrincipal, Principal, RequestContext};
use crate::users::store::UserStore;

/// How precisely a key's `last_used_at` is kept.
const LAST_USED_RESOLUTION_SECONDS: i64 = 60;
const MAX_NAME_CHARS: usize = 100;
/// Live keys one owner may hold.
const MAX_LIVE_KEYS: usize = 100;
/// The permission an organization's keys need.
pub const MANAGE_PERMISSION: &str = "api_keys:manage";

/// What creating a key takes.
#[derive(Debug, Clone, Default)]
pub struct NewApiKey {
    pub name: String,
    pub scopes: Vec<String>,
    pub expires_at: Option<i64>,
    /// For a personal key: an organization of the user's for it to act in.
    pub organization_id: Option<String>,
}

/// The permission a personal key acting in an organization needs there at creation: seeing it.
const ACT_IN_PERMISSION: &str = "org:read";

#[derive(Debug, Clone)]
pub struct ApiKeySettings {
    /// The step-up window for creating a key.
    pub reauthentication_max_age_seconds: i64,
}

pub struct ApiKeyService {
    store: Arc<dyn ApiKeyStore>,
    users: Arc<dyn UserStore>,
    organizations: Arc<OrganizationService>,
    digester: Digester,
    clock: Arc<dyn Clock>,
    settings: ApiKeySettings,
}

impl ApiKeyService {
    pub fn new(
        store: Arc<dyn ApiKeyStore>,
        users: Arc<dyn UserStore>,
        organizations: Arc<OrganizationService>,
        digester: Digester,
        clock: Arc<dyn Clock>,
        settings: ApiKeySettings,
    ) -> ApiKeyService {
        ApiKeyService { store, users, organizations, digester, clock, settings }
    }

    fn require_recent_authentication(&self, principal: &Principal) -> Result<(), DomainError> {
        let session = &principal.session;
        let authenticated_at = session.auth_time.unwrap_or(session.created_at);
        if authenticated_at + self.settings.reauthentication_max_age_seconds < self.clock.now() {
            return Err(DomainError::ReauthenticationRequired);
        }
        Ok(())
    }

    fn event(
        &self,
        action: &str,
        actor: &Actor,
        context: &RequestContext,
        key: &ApiKeyRecord,
    ) -> AuditEvent {
        let event = AuditEvent::new(action, actor, context, self.clock.now());
        match &key.owner {
            ApiKeyOwner::Organization(organization_id) => event
                .target("organization", organization_id)
                .metadata(serde_json::json!({ "api_key_id": key.id, "name": key.name })),
            ApiKeyOwner::User(_) => event
                .target("api_key", &key.id)
                .metadata(serde_json::json!({ "name": key.name, "user_id": key.user_id() })),
        }
    }

    /// Creates a key for `owner`; answers it with its secret, shown this once.
    async fn create(
        &self,
        principal: &Principal,
        owner: ApiKeyOwner,
        request: NewApiKey,
        context: &RequestContext,
    ) -> Result<(ApiKeyRecord, String), DomainError> {
        self.require_recent_authentication(principal)?;
        let now = self.clock.now();
        let mut issues = Vec::new();
        let name = request.name.trim();
        if name.is_empty()
            || name.chars().count() > MAX_NAME_CHARS
            || name.chars().any(char::is_control)
        {
            issues.push(FieldIssue::new("name", "invalid", "1 to 100 characters."));
        }
        let for_organization = matches!(owner, ApiKeyOwner::Organization(_));
        let scopes = record::parse_scopes(&request.scopes, for_organization, &mut issues);
        if request.expires_at.is_some_and(|expires| expires <= now) {
            issues.push(FieldIssue::new("expires_at", "invalid", "A time in the future."));
        }
        let Some(scopes) = scopes.filter(|_| issues.is_empty()) else {
            return Err(DomainError::Validation(issues));
        };
        let live = self.store.api_keys_of(&owner).await?;
        if live.iter().filter(|key| key.is_live(now)).count() >= MAX_LIVE_KEYS {
            return Err(DomainError::Validation(vec![FieldIssue::new(
                "name",
                "too_many_keys",
                "At most 100 live keys: revoke one first.",
            )]));
        }
        let secret = API_KEY.generate();
        let record = ApiKeyRecord {
            id: gatehouse_crypto::new_id("key"),
            owner,
            created_by: principal.user.id.clone(),
            name: name.to_owned(),
            prefix: secret.chars().take(record::PREFIX_CHARS).collect(),
            key_digest: self.digester.digest(secret.as_bytes()).to_vec(),
            scopes,
            created_at: now,
            expires_at: request.expires_at,
            last_used_at: None,
            revoked_at: None,
            acting_organization_id: request.organization_id.clone(),
        };
        let event = self.event("api_key.created", &principal.actor(), context, &record);
        let event = with_scopes(event, &record);
        self.store.insert_api_key(&record, &[event]).await?;
        Ok((record, secret))
    }

    /// Revokes `key` (already read and found to be the caller's); a revoked key stays revoked.
    async fn revoke(
        &self,
        actor: &Actor,
        key: &ApiKeyRecord,
        context: &RequestContext,
    ) -> Result<(), DomainError> {
        if key.revoked_at.is_some() {
            return Ok(());
        }
        let event = self.event("api_key.revoked", actor, context, key);
        self.store.revoke_api_key(&key.id, self.clock.now(), &[event]).await?;
        Ok(())
    }

    /// A personal key (recent authentication required); with `organization_id`, one that acts
    /// in that organization of the user's (`org:read` there; outsiders `not_found`) and works
    /// only while the user stays a member.
    pub async fn create_personal(
        &self,
        principal: &Principal,
        request: NewApiKey,
        context: &RequestContext,
    ) -> Result<(ApiKeyRecord, String), DomainError> {
        if let Some(organization_id) = &request.organization_id {
            self.organizations
                .require_permission(principal, organization_id, ACT_IN_PERMISSION)
                .await?;
        }
        let owner = ApiKeyOwner::User(principal.user.id.clone());
        self.create(principal, owner, request, context).await
    }

    /// The caller's personal keys, newest first.
    pub async fn personal_keys(
        &self,
        principal: &Principal,
    ) -> Result<Vec<ApiKeyRecord>, DomainError> {
        Ok(self.store.api_keys_of(&ApiKeyOwner::User(principal.user.id.clone())).await?)
    }

    /// Revokes one of the caller's personal keys; anyone else's is `not_found`.
    pub async fn revoke_personal(
        &self,
        principal: &Principal,
        id: &str,
        context: &RequestContext,
    ) -> Result<(), DomainError> {
        let key = self.store.api_key(id).await?.ok_or(DomainError::NotFound)?;
        if key.user_id() != Some(principal.user.id.as_str()) {
            return Err(DomainError::NotFound);
        }
        self.revoke(&principal.actor(), &key, context).await
    }

    /// An organization's key (`api_keys:manage`, recent authentication).
    pub async fn create_for_organization(
        &self,
        principal: &Principal,
        organization_id: &str,
        request: NewApiKey,
        context: &RequestContext,
    ) -> Result<(ApiKeyRecord, String), DomainError> {
        self.organizations
            .require_permission(principal, organization_id, MANAGE_PERMISSION)
            .await?;
        let owner = ApiKeyOwner::Organization(organization_id.to_owned());
        // An organization's key belongs to it already: it acts in no other.
        if request.organization_id.as_deref().is_some_and(|other| other != organization_id) {
            return Err(DomainError::Validation(vec![FieldIssue::new(
                "organization_id",
                "invalid",
                "An organization's key acts in that organization only.",
            )]));
        }
        let request = NewApiKey { organization_id: None, ..request };
        self.create(principal, owner, request, context).await
    }

    /// An organization's keys, newest first (`api_keys:manage`).
    pub async fn organization_keys(
        &self,
        principal: &Principal,
        organization_id: &str,
    ) -> Result<Vec<ApiKeyRecord>, DomainError> {
        self.organizations
            .require_permission(principal, organization_id, MANAGE_PERMISSION)
            .await?;
        let owner = ApiKeyOwner::Organization(organization_id.to_owned());
        Ok(self.store.api_keys_of(&owner).await?)
    }

    /// Revokes one of an organization's keys (`api_keys:manage`); another's is `not_found`.
    pub async fn revoke_for_organization(
        &self,
        principal: &Principal,
        organization_id: &str,
        id: &str,
        context: &RequestContext,
    ) -> Result<(), DomainError> {
        self.organizations
            .require_permission(principal, organization_id, MANAGE_PERMISSION)
            .await?;
        let key = self.store.api_key(id).await?.ok_or(DomainError::NotFound)?;
        if key.organization_id() != Some(organization_id) {
            return Err(DomainError::NotFound);
        }
        self.revoke(&principal.actor(), &key, context).await
    }

    /// Every key (users' and organizations'), newest first.
    pub async fn admin_list(
        &self,
        _admin: &AdminPrincipal,
        after: Option<&ListCursor>,
        limit: u32,
    ) -> Result<Vec<ApiKeyRecord>, DomainError> {
        Ok(self.store.list_api_keys(after, limit).await?)
    }

    /// Revokes any key.
    pub async fn admin_revoke(
        &self,
        admin: &AdminPrincipal,
        id: &str,
        context: &RequestContext,
    ) -> Result<(), DomainError> {
        let key = self.store.api_key(id).await?.ok_or(DomainError::NotFound)?;
        self.revoke(admin.actor(), &key, context).await
    }

    /// The live key `secret` names: `None` for anything else (malformed, unknown, revoked,
    /// expired), all alike.
    async fn live_key(&self, secret: &str) -> Result<Option<ApiKeyRecord>, DomainError> {
        if !API_KEY.is_current(secret) {
            return Ok(None);
        }
        let digest = self.digester.digest(secret.as_bytes());
        let Some(key) = self.store.api_key_by_digest(&digest).await? else { return Ok(None) };
        // The digest is the lookup key; comparing it again in constant time costs nothing and
        // keeps a store that matched loosely from answering someone else's key.
        if !gatehouse_crypto::constant_time_eq(&key.key_digest, &digest) {
            return Ok(None);
        }
        Ok(key.is_live(self.clock.now()).then_some(key))
    }

    /// Verifies a bearer shaped like an API key (`claims`: `API_KEY.claims(bearer)`).
    /// Unknown, malformed, expired and revoked keys and keys of a suspended or deleted user
    /// are `invalid_token`.
    pub async fn authenticate(&self, bearer: &str) -> Result<ApiKeyPrincipal, DomainError> {
        let key = self.live_key(bearer).await?.ok_or(DomainError::InvalidToken)?;
        let user = match key.user_id() {
            Some(user_id) => {
                let user =
                    self.users.user_by_id(user_id).await?.ok_or(DomainError::InvalidToken)?;
                if user.suspended_at.is_some() {
                    return Err(DomainError::InvalidToken);
                }
                // A key acting in an organization stops when its owner leaves it.
                if let Some(organization_id) = &key.acting_organization_id
                    && !self.organizations.is_member(organization_id, user_id).await?
                {
                    return Err(DomainError::InvalidToken);
                }
                Some(user)
            }
            None => None,
        };
        // `last_used_at` is kept to the minute: a write per request would serialise every key's
        // use behind the database's writer for no information.
        let now = self.clock.now();
        if key.last_used_at.is_none_or(|used| now - used >= LAST_USED_RESOLUTION_SECONDS) {
            self.store.touch_api_key(&key.id, now).await?;
        }
        Ok(ApiKeyPrincipal { key, user })
    }

    /// RFC 7662 for a key, for any authenticated confidential client (keys belong to no
    /// client): a live key (of a user who is not suspended) answers `active`, `token_type:
    /// "api_key"`, `scope`, `sub` (the user, or the organization for its keys), `org_id` (the
    /// organization's, or the one a personal key acts in; else `null`), `exp` (`null`: no expiry), `iat`; anything else
    /// `{"active": false}`. A use is recorded as for a bearer.
    pub async fn introspect(&self, token: &str) -> Result<serde_json::Value, DomainError> {
        let key = match self.authenticate(token).await {
            Ok(principal) => principal.key,
            Err(DomainError::InvalidToken) => return Ok(serde_json::json!({ "active": false })),
            Err(other) => return Err(other),
        };
        let subject = match &key.owner {
            ApiKeyOwner::User(id) | ApiKeyOwner::Organization(id) => id.clone(),
        };
        Ok(serde_json::json!({
            "active": true,
            "token_type": "api_key",
            "scope": key.scope(),
            "sub": subject,
            "org_id": key.org_id(),
            "exp": key.expires_at,
            "iat": key.created_at,
            "api_key_id": key.id,
        }))
    }
}

fn with_scopes(event: AuditEvent, key: &ApiKeyRecord) -> AuditEvent {
    let mut metadata = event.metadata.clone();
    if let Some(object) = metadata.as_object_mut() {
        object.insert("scopes".into(), serde_json::json!(key.scopes));
        object.insert("expires_at".into(), serde_json::json!(key.expires_at));
    }
    event.metadata(metadata)
}
