//! `PasswordService`: the policy and history applied to every new password, and changing a
//! password (which ends the other sessions and the trust given to browsers). The reset by
//! email link uses [`PasswordService::prepare_replacement`] too.

use std::sync::Arc;

use gatehouse_crypto::HashingPool;

use crate::account_limit::AccountKey;
use crate::audit::AuditEvent;
use crate::clock::Clock;
use crate::error::{DomainError, FieldIssue};
use crate::lockout::Lockout;
use crate::notify::Notices;
use crate::passwords::{PasswordPolicy, PolicyViolation};
use crate::principal::{Actor, Principal, RequestContext};
use crate::sessions::record::RevokeReason;
use crate::unit_of_work::{AccountLinks, UnitOfWork};
use crate::users::directory::UserDirectory;
use crate::users::record::{PasswordChange, UserRecord};
use crate::users::store::UserStore;

pub struct PasswordService {
    pub(crate) users: Arc<dyn UserStore>,
    pub(crate) hashing: HashingPool,
    pub(crate) policy: Arc<PasswordPolicy>,
    pub(crate) directory: Arc<UserDirectory>,
    pub(crate) notices: Arc<Notices>,
    /// A wrong current password is a guess like a wrong sign-in password.
    pub(crate) lockout: Arc<Lockout>,
    pub(crate) clock: Arc<dyn Clock>,
}

impl PasswordService {
    pub fn policy(&self) -> &PasswordPolicy {
        &self.policy
    }

    /// Checks a new password against the policy and, when `previous_hashes` is given, the
    /// history. Other field issues found by the caller are reported together with the
    /// password's, as one `validation_failed`; password issues alone answer with the
    /// password-specific code.
    pub(crate) async fn check_new_password(
        &self,
        password: &str,
        field: &str,
        user_inputs: &[&str],
        previous_hashes: &[String],
        mut issues: Vec<FieldIssue>,
    ) -> Result<(), DomainError> {
        let mut violations = self.policy.check(password, user_inputs).await;
        if violations.is_empty()
            && !previous_hashes.is_empty()
            && let Some(reused) =
                self.policy.check_history(&self.hashing, password, previous_hashes).await?
        {
            violations.push(reused);
        }
        let code = if violations.iter().any(PolicyViolation::is_breach) {
            "password_breached"
        } else if violations.iter().any(PolicyViolation::is_reuse) {
            "password_reused"
        } else {
            "password_too_weak"
        };
        let password_issues: Vec<FieldIssue> = violations
            .into_iter()
            .map(|violation| FieldIssue::new(field, violation.code, violation.message))
            .collect();
        if !issues.is_empty() {
            issues.extend(password_issues);
            return Err(DomainError::Validation(issues));
        }
        if !password_issues.is_empty() {
            return Err(DomainError::PasswordRejected { code, issues: password_issues });
        }
        Ok(())
    }

    /// Checks a replacement for `user`'s password — the policy (with the user's own details as
    /// context) and the last N passwords — and hashes it: the user as it is with the new
    /// password, and the history size to keep.
    pub(crate) async fn prepare_replacement(
        &self,
        user: &UserRecord,
        new_password: &str,
    ) -> Result<(UserRecord, usize), DomainError> {
        let history_size = self.policy.settings().history_size;
        let mut previous = Vec::new();
        if history_size > 0 {
            previous.extend(user.password_hash.clone());
            previous.extend(self.users.password_history(&user.id, history_size).await?);
        }
        let email = self.directory.open_email(user)?;
        let mut inputs: Vec<&str> = Vec::new();
        inputs.extend(email.as_deref());
        inputs.extend(user.username.as_deref());
        inputs.extend(user.first_name.as_deref());
        inputs.extend(user.last_name.as_deref());
        self.check_new_password(new_password, "new_password", &inputs, &previous, Vec::new())
            .await?;
        let now = self.clock.now();
        let mut changed = user.clone();
        changed.password_hash = Some(self.hashing.hash(new_password.to_owned().into()).await?);
        changed.password_changed_at = Some(now);
        changed.updated_at = now;
        Ok((changed, history_size))
    }

    /// Changes the signed-in user's password. The current password must be given; the new one
    /// must pass the policy and not be one of the last N. Every other session is revoked.
    pub async fn change_password(
        &self,
        principal: &Principal,
        current_password: &str,
        new_password: &str,
        context: &RequestContext,
    ) -> Result<(), DomainError> {
        if principal.session.impersonator.is_some() {
            return Err(DomainError::Impersonating);
        }
        let user = &principal.user;
        self.lockout.spend_attempt(AccountKey::User(&user.id)).await?;
        // While locked, the current password is not checked (the dummy verify instead) and
        // the answer is that of a wrong one: a lock confirms no guess.
        let locked = Lockout::is_locked(user, self.clock.now());
        let current_ok = match &user.password_hash {
            Some(hash) if !locked => {
                self.hashing.verify(current_password.to_owned().into(), hash.clone()).await?
            }
            _ => {
                self.hashing.dummy_verify(current_password.to_owned().into()).await;
                false
            }
        };
        if !current_ok {
            // A stolen session must not buy unlimited guesses at the password: a wrong
            // current password counts towards the same lockout as a wrong sign-in.
            let now = self.clock.now();
            let reason = if locked { "locked" } else { "wrong_password" };
            let event = AuditEvent::new(
                "user.password_change_failed",
                &Actor::User(user.id.clone()),
                context,
                now,
            )
            .target("user", &user.id)
            .metadata(serde_json::json!({ "reason": reason }));
            self.lockout.count_failure(user, vec![event], context, now).await?;
            return Err(DomainError::Validation(vec![FieldIssue::new(
                "current_password",
                "incorrect",
                "The current password is not correct.",
            )]));
        }
        let (changed, history_size) = self.prepare_replacement(user, new_password).await?;
        let now = changed.updated_at;
        let event =
            AuditEvent::new("user.password_changed", &Actor::User(user.id.clone()), context, now)
                .target("user", &user.id);
        let work = UnitOfWork {
            events: vec![event],
            outbox: self.notices.password_changed(&changed, context, now)?.into_iter().collect(),
            // A reset or magic link mailed before the change must not undo it or sign in.
            spend_account_links: Some(AccountLinks { user_id: user.id.clone(), at: now }),
            ..UnitOfWork::default()
        };
        // Conditional on the hash that was checked: a reset or another change that won
        // meanwhile stands, and this one answers `conflict`.
        let password = PasswordChange {
            user_id: user.id.clone(),
            replaces: user.password_hash.clone(),
            new_hash: changed.password_hash.clone().unwrap_or_default(),
            at: now,
            by_reset: false,
        };
        self.users
            .change_password(
                &password,
                history_size,
                Some(&principal.session.id),
                RevokeReason::PasswordChanged,
                &work,
            )
            .await
            .map_err(DomainError::from_password_change)?;
        self.notices.wake();
        Ok(())
    }
}
