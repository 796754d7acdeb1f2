//! The port organizations are stored through.

use async_trait::async_trait;

use crate::store::StoreError;
use crate::unit_of_work::UnitOfWork;

use super::record::{ListCursor, MemberRecord, MembershipRecord, OrganizationRecord, RoleRecord};

/// How a membership change may not leave an organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MembershipOutcome {
    Done,
    /// No such membership.
    NotFound,
    /// It would leave the organization without an owner.
    LastOwner,
}

#[async_trait]
pub trait OrganizationStore: Send + Sync {
    /// The organization and its first member, with the unit of work; a slug in use is
    /// `StoreError::Conflict(Conflict::OrganizationSlug)`.
    async fn create_organization(
        &self,
        organization: &OrganizationRecord,
        owner: &MembershipRecord,
        work: &UnitOfWork,
    ) -> Result<(), StoreError>;
    async fn organization(&self, id: &str) -> Result<Option<OrganizationRecord>, StoreError>;
    /// Writes the organization's editable columns (name, slug, logo, metadata, updated);
    /// `false` when it is gone.
    async fn update_organization(
        &self,
        organization: &OrganizationRecord,
        work: &UnitOfWork,
    ) -> Result<bool, StoreError>;
    /// Deletes it with its memberships and roles; `false` when it was gone.
    async fn delete_organization(&self, id: &str, work: &UnitOfWork) -> Result<bool, StoreError>;
    /// Organizations whose name or slug contains `search` (all with `None`), newest first.
    async fn list_organizations(
        &self,
        search: Option<&str>,
        after: Option<&ListCursor>,
        limit: u32,
    ) -> Result<Vec<OrganizationRecord>, StoreError>;
    /// The user's memberships with their organizations, newest membership first.
    async fn memberships_of(
        &self,
        user_id: &str,
    ) -> Result<Vec<(OrganizationRecord, MembershipRecord)>, StoreError>;
    async fn membership(
        &self,
        organization_id: &str,
        user_id: &str,
    ) -> Result<Option<MembershipRecord>, StoreError>;
    /// Members newest first, after `after` (joined time, user id), at most `limit`.
    async fn members(
        &self,
        organization_id: &str,
        after: Option<&ListCursor>,
        limit: u32,
    ) -> Result<Vec<MemberRecord>, StoreError>;
    /// Adds a member; one already there is `StoreError::Conflict(Conflict::Membership)`.
    async fn add_member(
        &self,
        membership: &MembershipRecord,
        work: &UnitOfWork,
    ) -> Result<(), StoreError>;
    /// Changes a member's role, unless that removes the organization's last owner — decided
    /// in one transaction that locks the organization, so two demotions cannot both pass.
    async fn set_member_role(
        &self,
        organization_id: &str,
        user_id: &str,
        role: &str,
        now: i64,
        work: &UnitOfWork,
    ) -> Result<MembershipOutcome, StoreError>;
    /// Removes a member, unless it is the last owner (as [`Self::set_member_role`]).
    async fn remove_member(
        &self,
        organization_id: &str,
        user_id: &str,
        work: &UnitOfWork,
    ) -> Result<MembershipOutcome, StoreError>;
    async fn roles(&self, organization_id: &str) -> Result<Vec<RoleRecord>, StoreError>;
    /// A custom role; a key in use is `StoreError::Conflict(Conflict::RoleKey)`.
    async fn create_role(&self, role: &RoleRecord, work: &UnitOfWork) -> Result<(), StoreError>;
    /// `false` when the role is gone.
    async fn update_role(&self, role: &RoleRecord, work: &UnitOfWork) -> Result<bool, StoreError>;
    /// Deletes a custom role no member holds: `Ok(None)` when gone, `Ok(Some(n))` with the
    /// number of members holding it (nothing deleted when n > 0).
    async fn delete_role(
        &self,
        organization_id: &str,
        key: &str,
        work: &UnitOfWork,
    ) -> Result<Option<i64>, StoreError>;
}
