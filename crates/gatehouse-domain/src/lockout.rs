//! The account lockout: wrong passwords and wrong second factors count towards one limit; at
//! the threshold the account locks for the configured time. Shared by sign-in, the second
//! step of a sign-in and step-up re-authentication, so every way of guessing feeds it.

use std::sync::Arc;

use crate::audit::AuditEvent;
use crate::error::DomainError;
use crate::principal::{Actor, RequestContext};
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
    settings: LockoutSettings,
}

impl Lockout {
    pub fn new(users: Arc<dyn UserStore>, settings: LockoutSettings) -> Self {
        Self { users, settings }
    }

    /// Counts one failed authentication of `user` towards the lockout, with `events`; locks
    /// the account when the count reaches the threshold. A failure while locked counts but
    /// never extends the lock.
    pub async fn count_failure(
        &self,
        user: &UserRecord,
        mut events: Vec<AuditEvent>,
        context: &RequestContext,
        now: i64,
    ) -> Result<(), DomainError> {
        let locked = user.locked_until.is_some_and(|until| until > now);
        // As the store counts (`UserStore::record_failed_sign_in`): a lock that has run out
        // starts the count again, so only this failure counts.
        let lock_ran_out = user.locked_until.is_some_and(|until| until <= now);
        let attempts = if lock_ran_out { 1 } else { user.failed_sign_in_attempts + 1 };
        let lock_until = now + self.settings.duration_seconds;
        let reaches_threshold =
            !locked && self.settings.threshold > 0 && attempts >= self.settings.threshold;
        if reaches_threshold {
            events.push(
                AuditEvent::new("user.locked", &Actor::User(user.id.clone()), context, now)
                    .target("user", &user.id)
                    .metadata(serde_json::json!({ "until": lock_until })),
            );
        }
        let threshold =
            if self.settings.threshold > 0 { self.settings.threshold } else { i64::MAX };
        self.users.record_failed_sign_in(&user.id, now, threshold, lock_until, &events).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
