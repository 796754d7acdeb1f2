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
    /// Records a sign-in through the identity, with the upstream's tokens of that sign-in
    /// (sealed; none clears what was kept).
    async fn touch_identity(
        &self,
        id: &str,
        at: i64,
        tokens_ciphertext: Option<&[u8]>,
    ) -> Result<(), StoreError>;
    /// Replaces the kept tokens (after a refresh) with `events`; `false` when the identity
    /// is gone.
    async fn replace_identity_tokens(
        &self,
        id: &str,
        tokens_ciphertext: &[u8],
        events: &[AuditEvent],
    ) -> Result<bool, StoreError>;
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

/// A provider added through the admin API, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredProvider {
    /// Without the secret (see `client_secret`).
    pub settings: super::provider::ProviderSettings,
    /// Sealed under `identity-provider-secret`, AD = the provider id.
    pub client_secret: Option<Vec<u8>>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// The port that keeps admin-added providers (every instance reads them, so a running
/// server gains one without a restart).
#[async_trait]
pub trait ProviderStore: Send + Sync {
    /// Every stored provider, oldest first.
    async fn stored_providers(&self) -> Result<Vec<StoredProvider>, StoreError>;
    async fn stored_provider(&self, id: &str) -> Result<Option<StoredProvider>, StoreError>;
    /// A taken id is `Conflict::Other`.
    async fn insert_provider(
        &self,
        provider: &StoredProvider,
        events: &[AuditEvent],
    ) -> Result<(), StoreError>;
    /// `false` when it no longer exists.
    async fn update_provider(
        &self,
        provider: &StoredProvider,
        events: &[AuditEvent],
    ) -> Result<bool, StoreError>;
    async fn delete_provider(&self, id: &str, events: &[AuditEvent]) -> Result<bool, StoreError>;
}
