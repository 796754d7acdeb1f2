//! Deleting one's own account, at once or after a grace period (`account_deletion.grace_days`).
//!
//! Rules:
//! - Without a grace period (the default) the account is deleted at once
//!   ([`RegistrationService::delete_own_account`]).
//! - With one, the request suspends the account and ends its sessions (its tokens and API keys
//!   stop), records `user.deletion_scheduled`, and emails a restore link (a single-use token
//!   kept only as a keyed digest, valid until the deletion is due). Following the link restores
//!   the account (`user.deletion_cancelled`); an admin unsuspending it calls the deletion off
//!   too. Once due, the sweeper deletes it like an immediate deletion (`user.deleted`, the
//!   `account_deleted` email) — all in one transaction per account.

use std::sync::Arc;

use async_trait::async_trait;
use gatehouse_crypto::Digester;

use crate::audit::AuditEvent;
use crate::clock::Clock;
use crate::error::{DomainError, OneTimeTokenProblem};
use crate::notify::Notices;
use crate::principal::{Actor, Principal, RequestContext};
use crate::sessions::RevokeReason;
use crate::store::StoreError;
use crate::unit_of_work::{AccountDeletionChange, UnitOfWork};
use crate::users::record::UserChange;
use crate::users::store::UserStore;

use super::RegistrationService;

/// Longest restore token looked up.
const MAX_TOKEN_LENGTH: usize = 128;

/// A deletion waiting out its grace period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledDeletion {
    pub user_id: String,
    pub requested_at: i64,
    pub due_at: i64,
}

/// Where scheduled deletions are read (they are written through the unit of work).
#[async_trait]
pub trait AccountDeletionStore: Send + Sync {
    async fn deletion_by_restore_digest(
        &self,
        digest: &[u8],
    ) -> Result<Option<ScheduledDeletion>, StoreError>;
    /// Users whose deletion is due at `now`, oldest first, at most `limit`.
    async fn due_deletions(&self, now: i64, limit: u32) -> Result<Vec<String>, StoreError>;
}

/// What a deletion request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeletionOutcome {
    Deleted,
    /// Suspended until `due_at`, then deleted unless restored.
    Scheduled {
        due_at: i64,
    },
}

pub struct AccountDeletionService {
    registration: Arc<RegistrationService>,
    users: Arc<dyn UserStore>,
    store: Arc<dyn AccountDeletionStore>,
    notices: Arc<Notices>,
    digester: Digester,
    clock: Arc<dyn Clock>,
    grace_seconds: i64,
}

impl AccountDeletionService {
    pub fn new(
        registration: Arc<RegistrationService>,
        store: Arc<dyn AccountDeletionStore>,
        digester: Digester,
        grace_days: i64,
    ) -> AccountDeletionService {
        AccountDeletionService {
            users: registration.users.clone(),
            notices: registration.notices.clone(),
            clock: registration.clock.clone(),
            registration,
            store,
            digester,
            grace_seconds: grace_days.max(0) * 86_400,
        }
    }

    /// The grace period in days (0: deletion is immediate).
    pub fn grace_days(&self) -> i64 {
        self.grace_seconds / 86_400
    }

    /// Deletes the signed-in user's account, or schedules it after the grace period. The
    /// caller has checked the user's presence.
    pub async fn request(
        &self,
        principal: &Principal,
        context: &RequestContext,
    ) -> Result<DeletionOutcome, DomainError> {
        if self.grace_seconds == 0 {
            self.registration.delete_own_account(principal, context).await?;
            return Ok(DeletionOutcome::Deleted);
        }
        let user = &principal.user;
        let now = self.clock.now();
        let due_at = now + self.grace_seconds;
        let token = gatehouse_crypto::random_token();
        let event =
            AuditEvent::new("user.deletion_scheduled", &Actor::User(user.id.clone()), context, now)
                .target("user", &user.id)
                .metadata(serde_json::json!({ "by": "self", "due_at": due_at }));
        let mut work = UnitOfWork {
            account_deletion: Some(AccountDeletionChange::Schedule {
                user_id: user.id.clone(),
                requested_at: now,
                due_at,
                restore_digest: self.digester.digest(token.as_bytes()).to_vec(),
            }),
            ..UnitOfWork::events(vec![event])
        };
        work.outbox.extend(self.notices.account_deletion_scheduled(
            user,
            &token,
            due_at,
            self.grace_days(),
            context,
            now,
        )?);
        let change = UserChange {
            suspended_at: Some(Some(now)),
            updated_at: Some(now),
            ..UserChange::default()
        };
        self.users
            .update_user_revoking_sessions(&user.id, &change, RevokeReason::UserSuspended, &work)
            .await?;
        self.notices.wake();
        Ok(DeletionOutcome::Scheduled { due_at })
    }

    /// Restores an account whose deletion is scheduled, with the emailed link's token: the
    /// account is unsuspended and stays. Audited `user.deletion_cancelled`.
    pub async fn restore(&self, token: &str, context: &RequestContext) -> Result<(), DomainError> {
        if token.is_empty() || token.len() > MAX_TOKEN_LENGTH {
            return Err(DomainError::OneTimeToken(OneTimeTokenProblem::Invalid));
        }
        let digest = self.digester.digest(token.as_bytes());
        let Some(deletion) = self.store.deletion_by_restore_digest(&digest).await? else {
            return Err(DomainError::OneTimeToken(OneTimeTokenProblem::Invalid));
        };
        let now = self.clock.now();
        if deletion.due_at <= now {
            return Err(DomainError::OneTimeToken(OneTimeTokenProblem::Expired));
        }
        let user_id = deletion.user_id;
        let event =
            AuditEvent::new("user.deletion_cancelled", &Actor::User(user_id.clone()), context, now)
                .target("user", &user_id)
                .metadata(serde_json::json!({ "by": "self" }));
        let work = UnitOfWork {
            account_deletion: Some(AccountDeletionChange::Cancel { user_id: user_id.clone() }),
            ..UnitOfWork::events(vec![event])
        };
        let change =
            UserChange { suspended_at: Some(None), updated_at: Some(now), ..UserChange::default() };
        self.users.update_user(&user_id, &change, &work).await?;
        Ok(())
    }

    /// Deletes up to `limit` accounts whose grace period is over (the sweeper's step): each
    /// with `user.deleted` (`by: self`, `scheduled: true`) and the `account_deleted` email, in
    /// its own transaction. Answers how many went.
    pub async fn delete_due(&self, limit: u32) -> Result<u64, StoreError> {
        let now = self.clock.now();
        let context = RequestContext::default();
        let mut deleted = 0;
        for user_id in self.store.due_deletions(now, limit).await? {
            let Some(user) = self.users.user_by_id(&user_id).await? else { continue };
            let event =
                AuditEvent::new("user.deleted", &Actor::User(user_id.clone()), &context, now)
                    .target("user", &user_id)
                    .metadata(serde_json::json!({ "by": "self", "scheduled": true }));
            let mut work = UnitOfWork::events(vec![event]);
            match self.notices.account_deleted(&user, &context, now) {
                Ok(notice) => work.outbox.extend(notice),
                Err(error) => {
                    tracing::error!(%error, user_id, "the deletion email cannot be built: deleting without it")
                }
            }
            if self.users.delete_user(&user_id, &work, now).await? {
                deleted += 1;
            }
        }
        if deleted > 0 {
            self.notices.wake();
        }
        Ok(deleted)
    }
}

#[async_trait]
impl crate::sweeper::DueDeletions for AccountDeletionService {
    async fn delete_due(&self, limit: u32) -> Result<u64, StoreError> {
        AccountDeletionService::delete_due(self, limit).await
    }
}
