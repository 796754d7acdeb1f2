//! The admin API of organizations: every method takes an `AdminPrincipal` (an admin key or an
//! admin user), sees every organization, and is audited.

use std::sync::Arc;

use crate::error::{DomainError, FieldIssue};
use crate::principal::{AdminPrincipal, RequestContext};
use crate::store::{Conflict, StoreError};
use crate::unit_of_work::UnitOfWork;

use super::record::{
    ListCursor, MemberRecord, MembershipRecord, OrganizationRecord, built_in_permissions,
};
use super::{NewOrganization, OrganizationService, taken};

pub struct AdminOrganizationService {
    pub(crate) organizations: Arc<OrganizationService>,
}

impl AdminOrganizationService {
    pub fn new(organizations: Arc<OrganizationService>) -> AdminOrganizationService {
        AdminOrganizationService { organizations }
    }

    /// Organizations whose name or slug contains `search`, newest first.
    pub async fn list(
        &self,
        _admin: &AdminPrincipal,
        search: Option<&str>,
        after: Option<&ListCursor>,
        limit: u32,
    ) -> Result<Vec<OrganizationRecord>, DomainError> {
        let search = search.map(str::trim).filter(|text| !text.is_empty());
        Ok(self.organizations.store.list_organizations(search, after, limit).await?)
    }

    pub async fn get(
        &self,
        _admin: &AdminPrincipal,
        id: &str,
    ) -> Result<OrganizationRecord, DomainError> {
        self.organizations.store.organization(id).await?.ok_or(DomainError::NotFound)
    }

    /// Creates an organization owned by `owner_id`.
    pub async fn create(
        &self,
        admin: &AdminPrincipal,
        owner_id: &str,
        request: NewOrganization,
        context: &RequestContext,
    ) -> Result<OrganizationRecord, DomainError> {
        if self.organizations.users.user_by_id(owner_id).await?.is_none() {
            return Err(DomainError::Validation(vec![FieldIssue::new(
                "owner_user_id",
                "unknown_user",
                "No such user.",
            )]));
        }
        let (organization, owner) = self.organizations.new_organization(owner_id, request)?;
        let work = UnitOfWork::events(vec![
            self.organizations
                .event("organization.created", admin.actor(), context, &organization.id)
                .metadata(
                    serde_json::json!({ "slug": organization.slug, "owner_user_id": owner_id }),
                ),
        ]);
        self.organizations
            .store
            .create_organization(&organization, &owner, &work)
            .await
            .map_err(taken)?;
        Ok(organization)
    }

    pub async fn delete(
        &self,
        admin: &AdminPrincipal,
        id: &str,
        context: &RequestContext,
    ) -> Result<(), DomainError> {
        let work = UnitOfWork::events(vec![self.organizations.event(
            "organization.deleted",
            admin.actor(),
            context,
            id,
        )]);
        if !self.organizations.store.delete_organization(id, &work).await? {
            return Err(DomainError::NotFound);
        }
        Ok(())
    }

    pub async fn members(
        &self,
        _admin: &AdminPrincipal,
        id: &str,
        after: Option<&ListCursor>,
        limit: u32,
    ) -> Result<Vec<MemberRecord>, DomainError> {
        if self.organizations.store.organization(id).await?.is_none() {
            return Err(DomainError::NotFound);
        }
        Ok(self.organizations.store.members(id, after, limit).await?)
    }

    /// Adds a user to an organization with a role (any built-in or custom role).
    pub async fn add_member(
        &self,
        admin: &AdminPrincipal,
        id: &str,
        user_id: &str,
        role: &str,
        context: &RequestContext,
    ) -> Result<MembershipRecord, DomainError> {
        if self.organizations.store.organization(id).await?.is_none() {
            return Err(DomainError::NotFound);
        }
        if self.organizations.users.user_by_id(user_id).await?.is_none() {
            return Err(DomainError::Validation(vec![FieldIssue::new(
                "user_id",
                "unknown_user",
                "No such user.",
            )]));
        }
        let known = built_in_permissions(role).is_some()
            || self.organizations.store.roles(id).await?.iter().any(|custom| custom.key == role);
        if !known {
            return Err(DomainError::Validation(vec![FieldIssue::new(
                "role",
                "unknown_role",
                "No such role in this organization.",
            )]));
        }
        let now = self.organizations.clock.now();
        let membership = MembershipRecord {
            organization_id: id.to_owned(),
            user_id: user_id.to_owned(),
            role: role.to_owned(),
            created_at: now,
            updated_at: now,
        };
        let work = UnitOfWork::events(vec![
            self.organizations
                .event("membership.created", admin.actor(), context, id)
                .metadata(serde_json::json!({ "user_id": user_id, "role": role })),
        ]);
        self.organizations.store.add_member(&membership, &work).await.map_err(
            |error| match error {
                StoreError::Conflict(Conflict::Membership) => {
                    DomainError::Conflict("This user is a member already.".into())
                }
                other => other.into(),
            },
        )?;
        Ok(membership)
    }
}
