//! `IdentityStore`: the port that keeps linked identities. New links are written through
//! [`crate::unit_of_work::UnitOfWork::identity`], with the change they belong to (an account
//! created, a session opened).

use async_trait::async_trait;

use super::record::IdentityRecord;
use crate::audit::AuditEvent;
use crate::store::StoreError;

#[async_trait]
pub trait IdentityStore: Send + Sync {
    async fn identity_by_subject(
        &self,
        provider_id: &str,
        subject: &str,
    ) -> Result<Option<IdentityRecord>, StoreError>;
    /// The user's identities, oldest first.
    async fn identities_of(&self, user_id: &str) -> Result<Vec<IdentityRecord>, StoreError>;
    /// Records a sign-in through the identity.
    async fn touch_identity(&self, id: &str, at: i64) -> Result<(), StoreError>;
    /// Removes the user's identity `id` with `events`, in a transaction that keeps another way
    /// to sign in (a password, an unflagged passkey, another identity); `false` when it was
    /// refused for that or the user has no such identity.
    async fn unlink_identity(
        &self,
        user_id: &str,
        id: &str,
        events: &[AuditEvent],
    ) -> Result<bool, StoreError>;
}
