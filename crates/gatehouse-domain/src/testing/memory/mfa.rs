//! The fake's second factors: `MfaStore` (factors, the TOTP step guard, backup codes),
//! `TrustedBrowserStore` and `MfaChallengeStore` (single-use challenges with a failure count).

use async_trait::async_trait;

use super::{MemoryStore, not_used};
use crate::audit::AuditEvent;
use crate::mfa::record::{
    BackupCodeRecord, MfaChallengeRecord, MfaCodeRecord, MfaFactorRecord, TrustedBrowserRecord,
};
use crate::mfa::store::{MfaChallengeStore, MfaStore, TrustedBrowserStore};
use crate::store::StoreError;
use crate::unit_of_work::UnitOfWork;

#[async_trait]
impl MfaStore for MemoryStore {
    async fn mfa_factors(&self, user_id: &str) -> Result<Vec<MfaFactorRecord>, StoreError> {
        let state = self.state();
        Ok(state.factors.iter().filter(|factor| factor.user_id == user_id).cloned().collect())
    }

    async fn put_pending_factor(
        &self,
        _factor: &MfaFactorRecord,
        _work: &UnitOfWork,
    ) -> Result<(), StoreError> {
        Err(not_used())
    }

    async fn confirm_factor(
        &self,
        _factor_id: &str,
        _now: i64,
        _used_step: Option<i64>,
        _backup_codes: Option<&[BackupCodeRecord]>,
        _work: &UnitOfWork,
    ) -> Result<bool, StoreError> {
        Err(not_used())
    }

    async fn delete_factor(
        &self,
        _user_id: &str,
        _kind: &str,
        _clear_backup_codes: bool,
        _work: &UnitOfWork,
    ) -> Result<bool, StoreError> {
        Err(not_used())
    }

    async fn reset_mfa(
        &self,
        _user_id: &str,
        _now: i64,
        _work: &UnitOfWork,
    ) -> Result<(), StoreError> {
        Err(not_used())
    }

    /// As the SQL's `WHERE last_used_step IS NULL OR last_used_step < step`.
    async fn use_totp_step(
        &self,
        factor_id: &str,
        step: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut state = self.state();
        let Some(factor) = state.factors.iter_mut().find(|factor| factor.id == factor_id) else {
            return Ok(false);
        };
        if factor.last_used_step.is_some_and(|last| last >= step) {
            return Ok(false);
        }
        factor.last_used_step = Some(step);
        factor.last_used_at = Some(now);
        Ok(true)
    }

    async fn backup_codes(&self, user_id: &str) -> Result<Vec<BackupCodeRecord>, StoreError> {
        let state = self.state();
        Ok(state.backup_codes.iter().filter(|code| code.user_id == user_id).cloned().collect())
    }

    async fn spend_backup_code(
        &self,
        _user_id: &str,
        _digest: &[u8],
        _now: i64,
    ) -> Result<bool, StoreError> {
        Err(not_used())
    }

    async fn replace_backup_codes(
        &self,
        _user_id: &str,
        _codes: &[BackupCodeRecord],
        _work: &UnitOfWork,
    ) -> Result<(), StoreError> {
        Err(not_used())
    }

    async fn put_mfa_code(
        &self,
        _code: &MfaCodeRecord,
        _work: &UnitOfWork,
    ) -> Result<(), StoreError> {
        Err(not_used())
    }

    async fn mfa_code(
        &self,
        _user_id: &str,
        _channel: &str,
        _purpose: &str,
    ) -> Result<Option<MfaCodeRecord>, StoreError> {
        Err(not_used())
    }

    async fn count_mfa_code_attempt(&self, _id: &str) -> Result<i64, StoreError> {
        Err(not_used())
    }

    async fn spend_mfa_code(&self, _id: &str, _now: i64) -> Result<bool, StoreError> {
        Err(not_used())
    }
}

#[async_trait]
impl TrustedBrowserStore for MemoryStore {
    async fn trusted_browser(
        &self,
        digest: &[u8],
    ) -> Result<Option<TrustedBrowserRecord>, StoreError> {
        let state = self.state();
        let found = state.trusted_browsers.iter().find(|browser| browser.token_digest == digest);
        Ok(found.cloned())
    }

    async fn touch_trusted_browser(&self, id: &str, now: i64) -> Result<(), StoreError> {
        let mut state = self.state();
        if let Some(browser) = state.trusted_browsers.iter_mut().find(|browser| browser.id == id) {
            browser.last_used_at = Some(now);
        }
        Ok(())
    }

    async fn trusted_browsers(
        &self,
        _user_id: &str,
        _now: i64,
    ) -> Result<Vec<TrustedBrowserRecord>, StoreError> {
        Err(not_used())
    }

    async fn revoke_trusted_browsers(
        &self,
        _user_id: &str,
        _browser_id: Option<&str>,
        _now: i64,
        _events: &[AuditEvent],
    ) -> Result<u64, StoreError> {
        Err(not_used())
    }
}

#[async_trait]
impl MfaChallengeStore for MemoryStore {
    async fn create_challenge(&self, challenge: &MfaChallengeRecord) -> Result<(), StoreError> {
        self.state().challenges.insert(challenge.token_digest.clone(), challenge.clone());
        Ok(())
    }

    async fn challenge(&self, digest: &[u8]) -> Result<Option<MfaChallengeRecord>, StoreError> {
        Ok(self.state().challenges.get(digest).cloned())
    }

    /// Counts only on a challenge that still exists and below `limit`, as both real stores do.
    async fn count_challenge_attempt(
        &self,
        digest: &[u8],
        limit: i64,
    ) -> Result<Option<i64>, StoreError> {
        let mut state = self.state();
        Ok(state.challenges.get_mut(digest).filter(|challenge| challenge.failures < limit).map(
            |challenge| {
                challenge.failures += 1;
                challenge.failures
            },
        ))
    }

    async fn consume_challenge(&self, digest: &[u8]) -> Result<bool, StoreError> {
        Ok(self.state().challenges.remove(digest).is_some())
    }
}
