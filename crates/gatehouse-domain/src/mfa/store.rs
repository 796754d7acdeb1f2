//! The ports MFA needs: `MfaStore` (factors, backup codes, one-time codes) and
//! `TrustedBrowserStore` on the database, and `MfaChallengeStore` on Redis or the database.

use async_trait::async_trait;

use crate::audit::AuditEvent;
use crate::mfa::record::{
    BackupCodeRecord, MfaChallengeRecord, MfaCodeRecord, MfaFactorRecord, TrustedBrowserRecord,
};
use crate::store::StoreError;
use crate::unit_of_work::UnitOfWork;

#[async_trait]
pub trait MfaChallengeStore: Send + Sync {
    async fn create_challenge(&self, challenge: &MfaChallengeRecord) -> Result<(), StoreError>;
    async fn challenge(&self, digest: &[u8]) -> Result<Option<MfaChallengeRecord>, StoreError>;
    /// Counts one answer, atomically, before it is compared, unless `limit` answers were
    /// counted already: the count after this one, or `None` when the limit was reached (or
    /// the challenge is gone). Of a burst of parallel answers, at most `limit` are counted.
    async fn count_challenge_attempt(
        &self,
        digest: &[u8],
        limit: i64,
    ) -> Result<Option<i64>, StoreError>;
    /// Deletes the challenge; `true` only for the one caller that deleted it (single use).
    async fn consume_challenge(&self, digest: &[u8]) -> Result<bool, StoreError>;
}

#[async_trait]
pub trait MfaStore: Send + Sync {
    async fn mfa_factors(&self, user_id: &str) -> Result<Vec<MfaFactorRecord>, StoreError>;
    /// Replaces the user's unconfirmed factor of the same kind with `factor`, with its unit of work. A
    /// confirmed factor of that kind is `StoreError::Conflict`.
    async fn put_pending_factor(
        &self,
        factor: &MfaFactorRecord,
        work: &UnitOfWork,
    ) -> Result<(), StoreError>;
    /// Confirms a pending factor (`false` when it is not pending any more), records the TOTP
    /// step used to confirm it, replaces the backup codes when given, with its unit of work.
    async fn confirm_factor(
        &self,
        factor_id: &str,
        now: i64,
        used_step: Option<i64>,
        backup_codes: Option<&[BackupCodeRecord]>,
        work: &UnitOfWork,
    ) -> Result<bool, StoreError>;
    /// Removes the user's factor of `kind` (and the backup codes when `clear_backup_codes`),
    /// with its unit of work; `false` when there was none.
    async fn delete_factor(
        &self,
        user_id: &str,
        kind: &str,
        clear_backup_codes: bool,
        work: &UnitOfWork,
    ) -> Result<bool, StoreError>;
    /// Removes every factor, backup code, pending code, passkey and trusted browser of the user.
    async fn reset_mfa(&self, user_id: &str, now: i64, work: &UnitOfWork)
    -> Result<(), StoreError>;
    /// Records `step` as used when it is later than the last used one; `false` means the step
    /// (or a later one) was already used: a replay.
    async fn use_totp_step(&self, factor_id: &str, step: i64, now: i64)
    -> Result<bool, StoreError>;
    async fn backup_codes(&self, user_id: &str) -> Result<Vec<BackupCodeRecord>, StoreError>;
    /// Marks an unused code used; `false` when it was used already.
    async fn spend_backup_code(
        &self,
        user_id: &str,
        digest: &[u8],
        now: i64,
    ) -> Result<bool, StoreError>;
    async fn replace_backup_codes(
        &self,
        user_id: &str,
        codes: &[BackupCodeRecord],
        work: &UnitOfWork,
    ) -> Result<(), StoreError>;
    /// Stores a new code, deleting the user's earlier codes of the same channel and purpose,
    /// with its unit of work (the message carrying it).
    async fn put_mfa_code(&self, code: &MfaCodeRecord, work: &UnitOfWork)
    -> Result<(), StoreError>;
    async fn mfa_code(
        &self,
        user_id: &str,
        channel: &str,
        purpose: &str,
    ) -> Result<Option<MfaCodeRecord>, StoreError>;
    /// Counts one try of a code; answers the count after this one.
    async fn count_mfa_code_attempt(&self, id: &str) -> Result<i64, StoreError>;
    /// Marks the code used; `false` when it was used already.
    async fn spend_mfa_code(&self, id: &str, now: i64) -> Result<bool, StoreError>;
}

/// Browsers a user trusted after a second factor (table `trusted_devices`).
#[async_trait]
pub trait TrustedBrowserStore: Send + Sync {
    async fn trusted_browser(
        &self,
        digest: &[u8],
    ) -> Result<Option<TrustedBrowserRecord>, StoreError>;
    async fn touch_trusted_browser(&self, id: &str, now: i64) -> Result<(), StoreError>;
    /// The user's trusted browsers that are neither revoked nor expired, newest first.
    async fn trusted_browsers(
        &self,
        user_id: &str,
        now: i64,
    ) -> Result<Vec<TrustedBrowserRecord>, StoreError>;
    /// Revokes one trusted browser of the user (`None`: all of them), with events; answers how many.
    async fn revoke_trusted_browsers(
        &self,
        user_id: &str,
        browser_id: Option<&str>,
        now: i64,
        events: &[AuditEvent],
    ) -> Result<u64, StoreError>;
}
