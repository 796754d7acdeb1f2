//! Password rules applied by the account service: policy and history for new passwords, and
//! changing a password (which ends the other sessions).

use crate::audit::{Actor, AuditEvent, RequestContext};
use crate::error::{DomainError, FieldIssue};
use crate::notify::Effects;
use crate::passwords::PolicyViolation;
use crate::sessions::revoke_reason;

use super::{AccountService, Principal};

impl AccountService {
    /// Checks a new password against the policy and, when `previous_hashes` is given, the
    /// history. Other field issues found by the caller are reported together with the
    /// password's, as one `validation_failed`; password issues alone answer with the
    /// password-specific code.
    pub(super) async fn check_new_password(
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

    /// Checks a replacement for `user`'s password: the policy (with the user's own details as
    /// context) and the last N passwords. Answers the history size to keep.
    pub(super) async fn check_replacement_password(
        &self,
        user: &crate::UserRecord,
        new_password: &str,
    ) -> Result<usize, DomainError> {
        let history_size = self.policy.settings().history_size;
        let mut previous = Vec::new();
        if history_size > 0 {
            previous.extend(user.password_hash.clone());
            previous.extend(self.store.password_history(&user.id, history_size).await?);
        }
        let email = self.open_email(user)?;
        let mut inputs: Vec<&str> = Vec::new();
        inputs.extend(email.as_deref());
        inputs.extend(user.username.as_deref());
        inputs.extend(user.first_name.as_deref());
        inputs.extend(user.last_name.as_deref());
        self.check_new_password(new_password, "new_password", &inputs, &previous, Vec::new())
            .await?;
        Ok(history_size)
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
        let user = &principal.user;
        let current_ok = match &user.password_hash {
            Some(hash) => {
                self.hashing.verify(current_password.to_owned().into(), hash.clone()).await?
            }
            None => false,
        };
        if !current_ok {
            return Err(DomainError::Validation(vec![FieldIssue::new(
                "current_password",
                "incorrect",
                "The current password is not correct.",
            )]));
        }
        let history_size = self.check_replacement_password(user, new_password).await?;

        let now = self.clock.now();
        let mut changed = user.clone();
        changed.password_hash = Some(self.hashing.hash(new_password.to_owned().into()).await?);
        changed.password_changed_at = Some(now);
        changed.updated_at = now;
        let event =
            AuditEvent::new("user.password_changed", &Actor::User(user.id.clone()), context, now)
                .target("user", &user.id);
        let effects = Effects {
            events: vec![event],
            outbox: self.password_changed_notice(&changed, context, now)?.into_iter().collect(),
            ..Effects::default()
        };
        self.store
            .change_password_with(
                &changed,
                history_size,
                Some(&principal.session.id),
                revoke_reason::PASSWORD_CHANGED,
                &effects,
            )
            .await?;
        self.notifier.wake();
        Ok(())
    }
}
