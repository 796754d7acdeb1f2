//! The checks other concepts ask of organizations (API keys of or acting in an organization),
//! with the same rules as every organization operation: outsiders `not_found`, members
//! without the permission `permission_denied`.

use super::OrganizationService;
use crate::error::DomainError;
use crate::principal::Principal;

impl OrganizationService {
    /// `Ok` when the caller is a member of the organization whose role holds `permission`.
    pub(crate) async fn require_permission(
        &self,
        principal: &Principal,
        organization_id: &str,
        permission: &str,
    ) -> Result<(), DomainError> {
        self.access(principal, organization_id, permission).await.map(|_| ())
    }

    /// Whether the user is (still) a member of the organization.
    pub(crate) async fn is_member(
        &self,
        organization_id: &str,
        user_id: &str,
    ) -> Result<bool, DomainError> {
        Ok(self.store.membership(organization_id, user_id).await?.is_some())
    }
}
