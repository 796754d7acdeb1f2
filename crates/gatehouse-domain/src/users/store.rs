//! `UserStore`: the port that keeps accounts — lookups, the sign-in read, writes with their
//! unit of work, the lockout counter, password history, the admin listing.

use async_trait::async_trait;

use crate::audit::AuditEvent;
use crate::sessions::record::RevokeReason;
use crate::store::StoreError;
use crate::unit_of_work::UnitOfWork;
use crate::users::record::{
    FailedSignIn, PasswordChange, SignInFacts, UserChange, UserLookup, UserQuery, UserRecord,
};

#[async_trait]
pub trait UserStore: Send + Sync {
    /// Inserts a new user with its unit of work; a duplicate email digest or username is
    /// `StoreError::Conflict` (`UserEmail`, `UserUsername`) and writes nothing.
    async fn insert_user(&self, user: &UserRecord, work: &UnitOfWork) -> Result<(), StoreError>;
    /// Inserts many users in one transaction, skipping those whose email digest or username
    /// is already taken; answers how many were inserted. For bulk imports. `created[i]` (the
    /// user's `user.created`) is written only when `users[i]` was inserted; `events` always.
    async fn insert_users_skipping_existing(
        &self,
        users: &[UserRecord],
        created: &[AuditEvent],
        events: &[AuditEvent],
    ) -> Result<u64, StoreError>;
    async fn user_by_id(&self, id: &str) -> Result<Option<UserRecord>, StoreError>;
    async fn user_by_email_digest(&self, digest: &[u8]) -> Result<Option<UserRecord>, StoreError>;
    async fn user_by_username(&self, username: &str) -> Result<Option<UserRecord>, StoreError>;
    /// The account `lookup` names, with the [`SignInFacts`] for the device whose digest is
    /// `device_digest`, in one query.
    async fn user_for_sign_in(
        &self,
        lookup: UserLookup<'_>,
        device_digest: &[u8],
    ) -> Result<Option<(UserRecord, SignInFacts)>, StoreError>;
    /// Writes the columns `change` names (only those) with its unit of work, in one
    /// transaction (a token spent by someone else first rolls it all back).
    async fn update_user(
        &self,
        user_id: &str,
        change: &UserChange,
        work: &UnitOfWork,
    ) -> Result<(), StoreError>;
    /// Sets a new password with its unit of work, only if the stored hash is still the one
    /// it replaces (else `Conflict::PasswordReplaced`, nothing written): the old hash goes to
    /// the history (trimmed to `history_size`), every session but `keep_session` is revoked
    /// with `reason`, and every trusted browser loses its trust, in one transaction.
    async fn change_password(
        &self,
        change: &PasswordChange,
        history_size: usize,
        keep_session: Option<&str>,
        reason: RevokeReason,
        work: &UnitOfWork,
    ) -> Result<(), StoreError>;
    /// Atomically counts one more failure and locks the account (until `lock_until`) when the
    /// count reaches `threshold`; writes `events`, and `on_lock` (the lock's event and the
    /// owner's notice) only when this failure started the lock (its count is `threshold`
    /// exactly), all in one transaction. A lock that has expired starts the count again.
    async fn record_failed_sign_in(
        &self,
        user_id: &str,
        now: i64,
        threshold: i64,
        lock_until: i64,
        events: &[AuditEvent],
        on_lock: &UnitOfWork,
    ) -> Result<FailedSignIn, StoreError>;
    /// Earlier password hashes, newest first.
    async fn password_history(
        &self,
        user_id: &str,
        limit: usize,
    ) -> Result<Vec<String>, StoreError>;
    /// Writes `change` and revokes every active session of the user with `work`
    /// (suspension, a scheduled deletion), in one transaction.
    async fn update_user_revoking_sessions(
        &self,
        user_id: &str,
        change: &UserChange,
        reason: RevokeReason,
        work: &crate::unit_of_work::UnitOfWork,
    ) -> Result<u64, StoreError>;
    /// Deletes the user (their sessions and history go through the foreign keys) with `events`,
    /// and records a request that the audit trail lose their personal fields
    /// (`AuditIntegrity::erase_requested`), made at `now`; `false` when there was no such user.
    /// Deletes the user and, in the same transaction, writes `work` (its audit events, the
    /// "your account was deleted" email) and asks for the user's audit erasure; `false` (and
    /// nothing written) when there was no such user.
    async fn delete_user(
        &self,
        user_id: &str,
        work: &crate::unit_of_work::UnitOfWork,
        now: i64,
    ) -> Result<bool, StoreError>;
    async fn list_users(&self, query: &UserQuery) -> Result<Vec<UserRecord>, StoreError>;
    /// Up to `limit` users with this system role (`admin`), oldest first.
    async fn users_with_system_role(
        &self,
        role: &str,
        limit: u32,
    ) -> Result<Vec<UserRecord>, StoreError>;
}
