//! The account lockout: wrong passwords and wrong second factors count towards one limit; at
//! the threshold the account locks for the configured time. Shared by sign-in, the second
//! step of a sign-in and step-up re-authentication, so every way of guessing feeds it.
//!
//! A lock is never revealed to whoever is guessing: while an account is locked, every
//! attempt answers as a wrong one (and still counts). The owner learns of the lock by email,
//! with a password-reset link, written in the transaction of the failure that starts it.

use std::sync::Arc;

use crate::account_limit::{AccountKey, AccountRateLimit};
use crate::audit::AuditEvent;
use crate::error::DomainError;
use crate::notify::Notices;
use crate::principal::{Actor, RequestContext};
use crate::unit_of_work::UnitOfWork;
use crate::users::record::UserRecord;
use crate::users::store::UserStore;

#[derive(Debug, Clone, Copy)]
pub struct LockoutSettings {
    /// Failures that lock the account; 0 disables the lockout.
    pub threshold: i64,
    pub duration_seconds: i64,
}

pub struct Lockout {
    users: Arc<dyn UserStore>,
    notices: Arc<Notices>,
    settings: LockoutSettings,
    account_limit: AccountRateLimit,
}

impl Lockout {
    pub fn new(
        users: Arc<dyn UserStore>,
        notices: Arc<Notices>,
        settings: LockoutSettings,
        account_limit: AccountRateLimit,
    ) -> Self {
        Self { users, notices, settings, account_limit }
    }

    /// Spends one attempt from the per-account budget of the account `key` names (before
    /// any password or code is checked): `rate_limited` once it is spent.
    pub async fn spend_attempt(&self, key: AccountKey<'_>) -> Result<(), DomainError> {
        self.account_limit.spend(key).await
    }

    /// Whether `user` (as read) is locked at `now`. Callers then answer as for a wrong
    /// password or code and count the attempt ([`Self::count_failure`]).
    pub fn is_locked(user: &UserRecord, now: i64) -> bool {
        user.locked_until.is_some_and(|until| until > now)
    }

    /// Counts one failed authentication of `user` towards the lockout, with `events`; locks
    /// the account when the count reaches the threshold. A failure while locked counts but
    /// never extends the lock. The failure that starts a lock (decided by the store's one
    /// statement, so of concurrent failures exactly one) also writes `user.locked` and the
    /// owner's notice with a reset link.
    pub async fn count_failure(
        &self,
        user: &UserRecord,
        events: Vec<AuditEvent>,
        context: &RequestContext,
        now: i64,
    ) -> Result<(), DomainError> {
        let lock_until = now + self.settings.duration_seconds;
        let threshold =
            if self.settings.threshold > 0 { self.settings.threshold } else { i64::MAX };
        let mut on_lock = UnitOfWork::events(vec![
            AuditEvent::new("user.locked", &Actor::User(user.id.clone()), context, now)
                .target("user", &user.id)
                .metadata(serde_json::json!({ "until": lock_until })),
        ]);
        if self.settings.threshold > 0 {
            let (tokens, outbox) =
                self.notices.account_locked(user, self.settings.duration_seconds, context, now)?;
            on_lock.tokens = tokens;
            on_lock.outbox = outbox;
        }
        let outcome = self
            .users
            .record_failed_sign_in(&user.id, now, threshold, lock_until, &events, &on_lock)
            .await?;
        if outcome.lock_started && !on_lock.outbox.is_empty() {
            self.notices.wake();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
