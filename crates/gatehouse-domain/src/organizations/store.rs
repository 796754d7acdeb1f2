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

/// An invitation to an organization (the token only as its keyed digest, the address sealed
/// with AD = the invitation's id and found by its blind index).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvitationRecord {
    /// `inv_…`
    pub id: String,
    pub organization_id: String,
    pub email_digest: Vec<u8>,
    pub email_ciphertext: Vec<u8>,
    pub role: String,
    pub token_digest: Vec<u8>,
    pub invited_by: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub accepted_at: Option<i64>,
    pub declined_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// What accepting did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptOutcome {
    Done,
    /// Accepted, declined, revoked or expired meanwhile (single use).
    NotPending,
    /// The user is a member already (nothing changed).
    AlreadyMember,
}

#[async_trait]
pub trait InvitationStore: Send + Sync {
    /// Stores an invitation, revoking a pending one of the same address to the same
    /// organization, with the unit of work (its email).
    async fn create_invitation(
        &self,
        invitation: &InvitationRecord,
        work: &UnitOfWork,
    ) -> Result<(), StoreError>;
    /// The organization's invitations, newest first.
    async fn invitations(&self, organization_id: &str)
    -> Result<Vec<InvitationRecord>, StoreError>;
    async fn invitation_by_token(
        &self,
        digest: &[u8],
    ) -> Result<Option<InvitationRecord>, StoreError>;
    async fn invitation(&self, invitation_id: &str)
    -> Result<Option<InvitationRecord>, StoreError>;
    /// The pending, unexpired invitations sent to an address (its blind index), newest
    /// first, at most 50.
    async fn pending_invitations_for_address(
        &self,
        email_digest: &[u8],
        now: i64,
    ) -> Result<Vec<InvitationRecord>, StoreError>;
    /// Revokes a pending invitation; `false` when there is none.
    async fn revoke_invitation(
        &self,
        organization_id: &str,
        invitation_id: &str,
        now: i64,
        work: &UnitOfWork,
    ) -> Result<bool, StoreError>;
    /// In one transaction: spends the invitation (only while pending and unexpired), adds the
    /// membership, and marks the member's address verified if it was not (the token proved the
    /// mailbox).
    async fn accept_invitation(
        &self,
        invitation_id: &str,
        membership: &MembershipRecord,
        now: i64,
        work: &UnitOfWork,
    ) -> Result<AcceptOutcome, StoreError>;
    /// Declines a pending invitation; `false` when it was not pending any more.
    async fn decline_invitation(
        &self,
        invitation_id: &str,
        now: i64,
        work: &UnitOfWork,
    ) -> Result<bool, StoreError>;
}
