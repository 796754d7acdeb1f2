//! Organizations: multi-tenant accounts with members, roles made of `resource:action`
//! permissions (built-in `owner`, `admin`, `member`, and custom roles per organization), and
//! the admin's view of them.
//!
//! Security rules, stated where they are enforced:
//! - Every operation checks a permission of the caller's role in that organization, never a
//!   role name; someone who is not a member gets `not_found` (an organization's existence does
//!   not leak to outsiders), a member without the permission `permission_denied`.
//! - Nobody grants a role (or gives a custom role) a system permission they do not hold; only
//!   holders of `org:delete` grant `owner`; nobody changes or removes a member whose role holds
//!   a system permission they do not hold.
//! - The last owner can neither leave nor be removed or demoted: decided by the store in one
//!   transaction that locks the organization.
//! - Deleting an organization needs `org:delete` and a recent authentication.
//! - Every change is audited with the organization as its target.

mod admin;
mod check;
pub mod invitations;
pub mod record;
pub mod store;

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::audit::AuditEvent;
use crate::clock::Clock;
use crate::error::{DomainError, FieldIssue, Taken};
use crate::principal::{Actor, Principal, RequestContext};
use crate::sessions::store::SessionStore;
use crate::store::{Conflict, StoreError};
use crate::tokens::{OrganizationClaims, TokenService};
use crate::unit_of_work::UnitOfWork;
use crate::users::store::UserStore;

pub use admin::AdminOrganizationService;
pub use invitations::{INVITATION_DIGEST_PURPOSE, InvitationService, InvitationView};
pub use record::{
    ADMIN, ListCursor, MEMBER, MemberRecord, MembershipRecord, OWNER, OrganizationRecord,
    RoleRecord, SYSTEM_PERMISSIONS, built_in_permissions,
};
pub use store::{
    AcceptOutcome, InvitationRecord, InvitationStore, MembershipOutcome, OrganizationStore,
};

const MAX_METADATA_BYTES: usize = 8 * 1024;
const MAX_NAME_CHARS: usize = 100;
const MAX_PERMISSIONS: usize = 50;

/// What creating an organization takes.
#[derive(Debug, Clone, Default)]
pub struct NewOrganization {
    pub name: String,
    pub slug: String,
    pub logo_url: Option<String>,
    pub public_metadata: Option<serde_json::Value>,
    pub private_metadata: Option<serde_json::Value>,
}

/// A change of an organization: only the fields given.
#[derive(Debug, Clone, Default)]
pub struct OrganizationUpdate {
    pub name: Option<String>,
    pub slug: Option<String>,
    /// `Some(None)` removes the logo.
    pub logo_url: Option<Option<String>>,
    pub public_metadata: Option<serde_json::Value>,
    pub private_metadata: Option<serde_json::Value>,
}

/// A custom role's definition.
#[derive(Debug, Clone, Default)]
pub struct RoleDefinition {
    pub name: String,
    pub permissions: Vec<String>,
}

/// An organization as one caller sees it: private metadata only for holders of `org:update`
/// (and admins); the caller's role and permissions when they are a member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrganizationView {
    pub organization: OrganizationRecord,
    pub show_private: bool,
    pub role: Option<String>,
    pub permissions: Vec<String>,
}

/// The caller's standing in one organization.
pub(crate) struct Access {
    pub(crate) organization: OrganizationRecord,
    pub(crate) membership: MembershipRecord,
    pub(crate) permissions: BTreeSet<String>,
}

impl Access {
    fn view(self) -> OrganizationView {
        OrganizationView {
            show_private: self.permissions.contains("org:update"),
            role: Some(self.membership.role),
            permissions: self.permissions.into_iter().collect(),
            organization: self.organization,
        }
    }
}

fn permission_denied(permission: &str) -> DomainError {
    DomainError::PermissionDenied(format!("This needs the permission {permission}."))
}

pub(crate) fn taken(error: StoreError) -> DomainError {
    match error {
        StoreError::Conflict(Conflict::OrganizationSlug) => DomainError::Taken(Taken::Slug),
        other => other.into(),
    }
}

fn metadata(
    value: Option<serde_json::Value>,
    field: &str,
    issues: &mut Vec<FieldIssue>,
) -> Option<String> {
    let value = value?;
    let text = value.to_string();
    if !value.is_object() || text.len() > MAX_METADATA_BYTES {
        issues.push(FieldIssue::new(field, "invalid", "A JSON object of at most 8 KiB."));
        return None;
    }
    Some(text)
}

fn name(text: &str, issues: &mut Vec<FieldIssue>) -> Option<String> {
    let name = text.trim();
    if name.is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || name.chars().any(char::is_control)
    {
        issues.push(FieldIssue::new("name", "invalid", "1 to 100 characters."));
        return None;
    }
    Some(name.to_owned())
}

fn logo(text: &str, issues: &mut Vec<FieldIssue>) -> Option<String> {
    match url::Url::parse(text) {
        Ok(url) if matches!(url.scheme(), "https" | "http") && text.len() <= 2048 => {
            Some(text.to_owned())
        }
        _ => {
            issues.push(FieldIssue::new(
                "logo_url",
                "invalid",
                "An http(s) URL of at most 2048 characters.",
            ));
            None
        }
    }
}

pub struct OrganizationService {
    pub(crate) store: Arc<dyn OrganizationStore>,
    pub(crate) users: Arc<dyn UserStore>,
    /// The session's active organization (`switch`).
    pub(crate) sessions: Arc<dyn SessionStore>,
    pub(crate) tokens: Arc<TokenService>,
    pub(crate) clock: Arc<dyn Clock>,
    /// The step-up window for deleting an organization.
    pub(crate) reauthentication_max_age_seconds: i64,
}

impl OrganizationService {
    pub fn new(
        store: Arc<dyn OrganizationStore>,
        users: Arc<dyn UserStore>,
        sessions: Arc<dyn SessionStore>,
        tokens: Arc<TokenService>,
        clock: Arc<dyn Clock>,
        reauthentication_max_age_seconds: i64,
    ) -> OrganizationService {
        OrganizationService {
            store,
            users,
            sessions,
            tokens,
            clock,
            reauthentication_max_age_seconds,
        }
    }

    /// The permissions of `role` in an organization (a built-in role, or a custom role's).
    async fn permissions_of(
        &self,
        organization_id: &str,
        role: &str,
    ) -> Result<BTreeSet<String>, DomainError> {
        if let Some(permissions) = built_in_permissions(role) {
            return Ok(permissions);
        }
        let roles = self.store.roles(organization_id).await?;
        Ok(roles
            .into_iter()
            .find(|custom| custom.key == role)
            .map(|r| r.permissions)
            .unwrap_or_default())
    }

    /// The caller's standing, requiring `permission`: outsiders get `not_found`.
    pub(crate) async fn access(
        &self,
        principal: &Principal,
        organization_id: &str,
        permission: &str,
    ) -> Result<Access, DomainError> {
        self.access_of(&principal.user.id, organization_id, permission).await
    }

    /// [`Self::access`] for a user acting through an API key.
    pub(crate) async fn access_of(
        &self,
        user_id: &str,
        organization_id: &str,
        permission: &str,
    ) -> Result<Access, DomainError> {
        let Some(membership) = self.store.membership(organization_id, user_id).await? else {
            return Err(DomainError::NotFound);
        };
        let Some(organization) = self.store.organization(organization_id).await? else {
            return Err(DomainError::NotFound);
        };
        let permissions = self.permissions_of(organization_id, &membership.role).await?;
        if !permissions.contains(permission) {
            return Err(permission_denied(permission));
        }
        Ok(Access { organization, membership, permissions })
    }

    fn event(
        &self,
        action: &str,
        actor: &Actor,
        context: &RequestContext,
        organization_id: &str,
    ) -> AuditEvent {
        AuditEvent::new(action, actor, context, self.clock.now())
            .target("organization", organization_id)
    }

    /// Creates an organization; the creator becomes its `owner`.
    pub async fn create(
        &self,
        principal: &Principal,
        request: NewOrganization,
        context: &RequestContext,
    ) -> Result<OrganizationView, DomainError> {
        let (organization, owner) = self.new_organization(&principal.user.id, request)?;
        let actor = principal.actor();
        let work = UnitOfWork::events(vec![
            self.event("organization.created", &actor, context, &organization.id)
                .metadata(serde_json::json!({ "slug": organization.slug })),
        ]);
        self.store.create_organization(&organization, &owner, &work).await.map_err(taken)?;
        let permissions = built_in_permissions(OWNER).unwrap_or_default();
        Ok(OrganizationView {
            organization,
            show_private: true,
            role: Some(OWNER.to_owned()),
            permissions: permissions.into_iter().collect(),
        })
    }

    pub(crate) fn new_organization(
        &self,
        owner_id: &str,
        request: NewOrganization,
    ) -> Result<(OrganizationRecord, MembershipRecord), DomainError> {
        let mut issues = Vec::new();
        let name = name(&request.name, &mut issues);
        let slug = record::parse_slug(&request.slug, &mut issues);
        let logo_url = request.logo_url.as_deref().and_then(|text| logo(text, &mut issues));
        let public = metadata(request.public_metadata, "public_metadata", &mut issues);
        let private = metadata(request.private_metadata, "private_metadata", &mut issues);
        let (Some(name), Some(slug)) = (name, slug) else {
            return Err(DomainError::Validation(issues));
        };
        if !issues.is_empty() {
            return Err(DomainError::Validation(issues));
        }
        let now = self.clock.now();
        let organization = OrganizationRecord {
            id: gatehouse_crypto::new_id("org"),
            name,
            slug,
            logo_url,
            public_metadata: public.unwrap_or_else(|| "{}".into()),
            private_metadata: private.unwrap_or_else(|| "{}".into()),
            created_at: now,
            updated_at: now,
        };
        let owner = MembershipRecord {
            organization_id: organization.id.clone(),
            user_id: owner_id.to_owned(),
            role: OWNER.to_owned(),
            created_at: now,
            updated_at: now,
        };
        Ok((organization, owner))
    }

    /// Makes an organization the session's active one (`None` clears it): the access tokens of
    /// this session carry its claims from now on, read again at every refresh. Answers a new
    /// access token and the claims it carries. Any member may choose their organization;
    /// outsiders get `not_found`.
    pub async fn switch(
        &self,
        principal: &Principal,
        organization_id: Option<&str>,
        context: &RequestContext,
    ) -> Result<(String, i64, Option<OrganizationClaims>), DomainError> {
        if let Some(id) = organization_id
            && self.store.membership(id, &principal.user.id).await?.is_none()
        {
            return Err(DomainError::NotFound);
        }
        let event = AuditEvent::new(
            "session.organization_changed",
            &principal.actor(),
            context,
            self.clock.now(),
        )
        .target("session", &principal.session.id)
        .metadata(serde_json::json!({ "organization_id": organization_id }));
        self.sessions
            .set_session_organization(&principal.session.id, organization_id, &[event])
            .await?;
        let mut session = principal.session.clone();
        session.organization_id = organization_id.map(str::to_owned);
        let claims = self.tokens.organization_claims(&session).await?;
        let access_token = self.tokens.issue_access_token(&session).await?;
        Ok((access_token, self.tokens.settings().access_token_ttl_seconds, claims))
    }

    /// The caller's organizations, newest membership first (`user_id`: a session's user, or an
    /// API key's with `organizations:read`).
    pub async fn mine(&self, user_id: &str) -> Result<Vec<OrganizationView>, DomainError> {
        let memberships = self.store.memberships_of(user_id).await?;
        let mut views = Vec::with_capacity(memberships.len());
        for (organization, membership) in memberships {
            let permissions = self.permissions_of(&organization.id, &membership.role).await?;
            views.push(Access { organization, membership, permissions }.view());
        }
        Ok(views)
    }

    /// One organization (`org:read`), for a session's user or an API key's with
    /// `organizations:read`.
    pub async fn get(&self, user_id: &str, id: &str) -> Result<OrganizationView, DomainError> {
        Ok(self.access_of(user_id, id, "org:read").await?.view())
    }

    /// Changes name, slug, logo or metadata (`org:update`), for a session's user or an API
    /// key's with `organizations:write`.
    pub async fn update(
        &self,
        user_id: &str,
        id: &str,
        change: OrganizationUpdate,
        context: &RequestContext,
    ) -> Result<OrganizationView, DomainError> {
        let access = self.access_of(user_id, id, "org:update").await?;
        let mut organization = access.organization.clone();
        let mut issues = Vec::new();
        if let Some(text) = &change.name {
            organization.name = name(text, &mut issues).unwrap_or_default();
        }
        if let Some(text) = &change.slug {
            organization.slug = record::parse_slug(text, &mut issues).unwrap_or_default();
        }
        if let Some(logo_url) = &change.logo_url {
            organization.logo_url = logo_url.as_deref().and_then(|text| logo(text, &mut issues));
        }
        if let Some(text) = metadata(change.public_metadata, "public_metadata", &mut issues) {
            organization.public_metadata = text;
        }
        if let Some(text) = metadata(change.private_metadata, "private_metadata", &mut issues) {
            organization.private_metadata = text;
        }
        if !issues.is_empty() {
            return Err(DomainError::Validation(issues));
        }
        organization.updated_at = self.clock.now();
        let work = UnitOfWork::events(vec![self.event(
            "organization.updated",
            &Actor::User(user_id.to_owned()),
            context,
            id,
        )]);
        if !self.store.update_organization(&organization, &work).await.map_err(taken)? {
            return Err(DomainError::NotFound);
        }
        Ok(Access { organization, ..access }.view())
    }

    /// Deletes the organization (`org:delete`, recent authentication).
    pub async fn delete(
        &self,
        principal: &Principal,
        id: &str,
        context: &RequestContext,
    ) -> Result<(), DomainError> {
        let access = self.access(principal, id, "org:delete").await?;
        let session = &principal.session;
        let authenticated_at = session.auth_time.unwrap_or(session.created_at);
        if authenticated_at + self.reauthentication_max_age_seconds < self.clock.now() {
            return Err(DomainError::ReauthenticationRequired);
        }
        let work = UnitOfWork::events(vec![
            self.event("organization.deleted", &principal.actor(), context, id)
                .metadata(serde_json::json!({ "slug": access.organization.slug })),
        ]);
        if !self.store.delete_organization(id, &work).await? {
            return Err(DomainError::NotFound);
        }
        Ok(())
    }

    /// A page of members (`members:read`).
    pub async fn members(
        &self,
        principal: &Principal,
        id: &str,
        after: Option<&ListCursor>,
        limit: u32,
    ) -> Result<Vec<MemberRecord>, DomainError> {
        self.access(principal, id, "members:read").await?;
        Ok(self.store.members(id, after, limit).await?)
    }

    /// Checks that the caller may hand out `role` and act on `target`'s current role.
    pub(crate) async fn may_grant(
        &self,
        access: &Access,
        role: &str,
    ) -> Result<BTreeSet<String>, DomainError> {
        let organization_id = &access.organization.id;
        let granted = match built_in_permissions(role) {
            Some(permissions) => permissions,
            None => {
                let roles = self.store.roles(organization_id).await?;
                match roles.into_iter().find(|custom| custom.key == role) {
                    Some(custom) => custom.permissions,
                    None => {
                        return Err(DomainError::Validation(vec![FieldIssue::new(
                            "role",
                            "unknown_role",
                            "No such role in this organization.",
                        )]));
                    }
                }
            }
        };
        if role == OWNER && !access.permissions.contains("org:delete") {
            return Err(permission_denied("org:delete"));
        }
        self.holds_system_permissions(access, &granted)?;
        Ok(granted)
    }

    fn holds_system_permissions(
        &self,
        access: &Access,
        permissions: &BTreeSet<String>,
    ) -> Result<(), DomainError> {
        match permissions
            .iter()
            .find(|p| SYSTEM_PERMISSIONS.contains(&p.as_str()) && !access.permissions.contains(*p))
        {
            Some(missing) => Err(permission_denied(missing)),
            None => Ok(()),
        }
    }

    /// The membership of `user_id`, which the caller may act on (their role holds nothing
    /// the caller lacks).
    async fn target(
        &self,
        access: &Access,
        user_id: &str,
    ) -> Result<MembershipRecord, DomainError> {
        let organization_id = &access.organization.id;
        let Some(target) = self.store.membership(organization_id, user_id).await? else {
            return Err(DomainError::NotFound);
        };
        let theirs = self.permissions_of(organization_id, &target.role).await?;
        self.holds_system_permissions(access, &theirs)?;
        Ok(target)
    }

    /// Changes a member's role (`members:manage`, plus the grant rules).
    pub async fn set_member_role(
        &self,
        principal: &Principal,
        id: &str,
        user_id: &str,
        role: &str,
        context: &RequestContext,
    ) -> Result<MembershipRecord, DomainError> {
        let access = self.access(principal, id, "members:manage").await?;
        let mut target = self.target(&access, user_id).await?;
        self.may_grant(&access, role).await?;
        let now = self.clock.now();
        let work = UnitOfWork::events(vec![
            self.event("membership.updated", &principal.actor(), context, id).metadata(
                serde_json::json!({ "user_id": user_id, "from": target.role, "to": role }),
            ),
        ]);
        membership_outcome(self.store.set_member_role(id, user_id, role, now, &work).await?)?;
        target.role = role.to_owned();
        target.updated_at = now;
        Ok(target)
    }

    /// Removes a member (`members:manage`).
    pub async fn remove_member(
        &self,
        principal: &Principal,
        id: &str,
        user_id: &str,
        context: &RequestContext,
    ) -> Result<(), DomainError> {
        let access = self.access(principal, id, "members:manage").await?;
        let target = self.target(&access, user_id).await?;
        let work = UnitOfWork::events(vec![
            self.event("membership.deleted", &principal.actor(), context, id).metadata(
                serde_json::json!({
                    "user_id": user_id, "role": target.role, "reason": "removed"
                }),
            ),
        ]);
        membership_outcome(self.store.remove_member(id, user_id, &work).await?)
    }

    /// Leaves an organization (any member; not its last owner).
    pub async fn leave(
        &self,
        principal: &Principal,
        id: &str,
        context: &RequestContext,
    ) -> Result<(), DomainError> {
        // Leaving needs only the membership (a custom role may lack every permission).
        let Some(membership) = self.store.membership(id, &principal.user.id).await? else {
            return Err(DomainError::NotFound);
        };
        let work = UnitOfWork::events(vec![
            self.event("membership.deleted", &principal.actor(), context, id).metadata(
                serde_json::json!({
                    "user_id": principal.user.id, "role": membership.role, "reason": "left"
                }),
            ),
        ]);
        membership_outcome(self.store.remove_member(id, &principal.user.id, &work).await?)
    }

    /// The organization's roles: the built-in ones, then the custom ones (`members:read`).
    pub async fn roles(
        &self,
        principal: &Principal,
        id: &str,
    ) -> Result<Vec<RoleRecord>, DomainError> {
        self.access(principal, id, "members:read").await?;
        let mut roles: Vec<RoleRecord> = [OWNER, ADMIN, MEMBER]
            .into_iter()
            .map(|key| RoleRecord {
                organization_id: id.to_owned(),
                key: key.to_owned(),
                name: key.to_owned(),
                permissions: built_in_permissions(key).unwrap_or_default(),
                created_at: 0,
                updated_at: 0,
            })
            .collect();
        roles.extend(self.store.roles(id).await?);
        Ok(roles)
    }

    fn role_permissions(
        &self,
        access: &Access,
        permissions: &[String],
    ) -> Result<BTreeSet<String>, DomainError> {
        let set: BTreeSet<String> = permissions.iter().map(|p| p.trim().to_owned()).collect();
        if set.len() > MAX_PERMISSIONS || set.iter().any(|p| !record::is_permission(p)) {
            return Err(DomainError::Validation(vec![FieldIssue::new(
                "permissions",
                "invalid_permission",
                "Up to 50 resource:action permissions (lowercase letters, digits, '_', '-').",
            )]));
        }
        self.holds_system_permissions(access, &set)?;
        Ok(set)
    }

    /// Creates a custom role (`roles:manage`; no system permission the caller lacks).
    pub async fn create_role(
        &self,
        principal: &Principal,
        id: &str,
        key: &str,
        definition: RoleDefinition,
        context: &RequestContext,
    ) -> Result<RoleRecord, DomainError> {
        let access = self.access(principal, id, "roles:manage").await?;
        let mut issues = Vec::new();
        let key = record::parse_role_key(key, &mut issues);
        let role_name = name(&definition.name, &mut issues);
        let (Some(key), Some(role_name)) = (key, role_name) else {
            return Err(DomainError::Validation(issues));
        };
        let permissions = self.role_permissions(&access, &definition.permissions)?;
        let now = self.clock.now();
        let role = RoleRecord {
            organization_id: id.to_owned(),
            key,
            name: role_name,
            permissions,
            created_at: now,
            updated_at: now,
        };
        let work = UnitOfWork::events(vec![
            self.event("organization.role_created", &principal.actor(), context, id)
                .metadata(serde_json::json!({ "key": role.key, "permissions": role.permissions })),
        ]);
        self.store.create_role(&role, &work).await.map_err(|error| match error {
            StoreError::Conflict(Conflict::RoleKey) => {
                DomainError::Conflict("A role with this key exists in this organization.".into())
            }
            other => other.into(),
        })?;
        Ok(role)
    }

    /// Redefines a custom role (`roles:manage`); built-in roles cannot change.
    pub async fn update_role(
        &self,
        principal: &Principal,
        id: &str,
        key: &str,
        definition: RoleDefinition,
        context: &RequestContext,
    ) -> Result<RoleRecord, DomainError> {
        let access = self.access(principal, id, "roles:manage").await?;
        if built_in_permissions(key).is_some() {
            return Err(DomainError::Conflict("Built-in roles cannot be changed.".into()));
        }
        let Some(mut role) = self.store.roles(id).await?.into_iter().find(|r| r.key == key) else {
            return Err(DomainError::NotFound);
        };
        // Changing a role changes what its holders may do: the caller must hold what it had.
        self.holds_system_permissions(&access, &role.permissions)?;
        let mut issues = Vec::new();
        let Some(role_name) = name(&definition.name, &mut issues) else {
            return Err(DomainError::Validation(issues));
        };
        role.name = role_name;
        role.permissions = self.role_permissions(&access, &definition.permissions)?;
        role.updated_at = self.clock.now();
        let work = UnitOfWork::events(vec![
            self.event("organization.role_updated", &principal.actor(), context, id)
                .metadata(serde_json::json!({ "key": role.key, "permissions": role.permissions })),
        ]);
        if !self.store.update_role(&role, &work).await? {
            return Err(DomainError::NotFound);
        }
        Ok(role)
    }

    /// Deletes a custom role no member holds (`roles:manage`).
    pub async fn delete_role(
        &self,
        principal: &Principal,
        id: &str,
        key: &str,
        context: &RequestContext,
    ) -> Result<(), DomainError> {
        let access = self.access(principal, id, "roles:manage").await?;
        if built_in_permissions(key).is_some() {
            return Err(DomainError::Conflict("Built-in roles cannot be deleted.".into()));
        }
        if let Some(role) = self.store.roles(id).await?.into_iter().find(|r| r.key == key) {
            self.holds_system_permissions(&access, &role.permissions)?;
        }
        let work = UnitOfWork::events(vec![
            self.event("organization.role_deleted", &principal.actor(), context, id)
                .metadata(serde_json::json!({ "key": key })),
        ]);
        match self.store.delete_role(id, key, &work).await? {
            None => Err(DomainError::NotFound),
            Some(0) => Ok(()),
            Some(holders) => Err(DomainError::Conflict(format!(
                "{holders} member(s) hold this role; give them another role first."
            ))),
        }
    }
}

fn membership_outcome(outcome: MembershipOutcome) -> Result<(), DomainError> {
    match outcome {
        MembershipOutcome::Done => Ok(()),
        MembershipOutcome::NotFound => Err(DomainError::NotFound),
        MembershipOutcome::LastOwner => Err(DomainError::LastOwner),
    }
}
