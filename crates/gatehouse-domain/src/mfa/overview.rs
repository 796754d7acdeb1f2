//! What a user (or an admin) sees of their MFA, and the admin's reset.

use crate::audit::AuditEvent;
use crate::error::DomainError;
use crate::mfa::record::FactorKind;
use crate::principal::{AdminPrincipal, Principal, RequestContext};
use crate::unit_of_work::UnitOfWork;
use crate::users::record::UserRecord;

use super::{FactorView, MfaOverview, MfaPolicy, MfaService};

impl MfaService {
    /// The user's MFA state.
    pub async fn mfa_overview(&self, user: &UserRecord) -> Result<MfaOverview, DomainError> {
        let factors = self.store.mfa_factors(&user.id).await?;
        let mut views = Vec::with_capacity(factors.len());
        for factor in factors.iter().filter(|factor| factor.confirmed_at.is_some()) {
            let Some(kind) = FactorKind::parse(&factor.kind) else { continue };
            let phone_number = match kind {
                FactorKind::Sms => self.open_phone(factor)?.map(|phone| mask_phone(&phone)),
                _ => None,
            };
            views.push(FactorView {
                id: factor.id.clone(),
                kind: kind.as_str(),
                created_at: factor.created_at,
                confirmed_at: factor.confirmed_at,
                last_used_at: factor.last_used_at,
                phone_number,
            });
        }
        Ok(MfaOverview {
            enabled: !views.is_empty(),
            required: self.settings.policy == MfaPolicy::Required,
            factors: views,
            backup_codes_remaining: self.backup_codes_remaining(&user.id).await?,
        })
    }

    /// A user's MFA state, for an admin.
    pub async fn admin_user_mfa(
        &self,
        _admin: &AdminPrincipal,
        user_id: &str,
    ) -> Result<MfaOverview, DomainError> {
        let user = self.users.user_by_id(user_id).await?.ok_or(DomainError::NotFound)?;
        self.mfa_overview(&user).await
    }

    /// Removes every factor, backup code, passkey and trusted browser of a user (they lost their
    /// phone). Audited, and the user gets a notice.
    pub async fn admin_reset_mfa(
        &self,
        admin: &AdminPrincipal,
        user_id: &str,
        context: &RequestContext,
    ) -> Result<(), DomainError> {
        let user = self.users.user_by_id(user_id).await?.ok_or(DomainError::NotFound)?;
        let now = self.clock.now();
        let kinds: Vec<String> =
            self.confirmed_factors(&user.id).await?.into_iter().map(|factor| factor.kind).collect();
        let mut work = UnitOfWork::events(vec![
            AuditEvent::new("user.mfa_changed", admin.actor(), context, now)
                .target("user", &user.id)
                .metadata(serde_json::json!({ "factors": kinds, "change": "reset" })),
        ]);
        let change = match context.locale.as_deref() {
            Some("fr") => "tous les facteurs retirés par un administrateur",
            _ => "every factor removed by an administrator",
        };
        work.outbox.extend(self.notices.mfa_changed(&user, change, context)?);
        self.store.reset_mfa(&user.id, now, &work).await?;
        self.notices.wake();
        Ok(())
    }

    /// The signed-in user's MFA state.
    pub async fn my_mfa(&self, principal: &Principal) -> Result<MfaOverview, DomainError> {
        self.mfa_overview(&principal.user).await
    }
}

/// `+33612345678` → `+•••••••••78`.
fn mask_phone(phone: &str) -> String {
    let digits = phone.chars().count();
    phone
        .chars()
        .enumerate()
        .map(|(index, character)| if index == 0 || index + 2 >= digits { character } else { '•' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_are_masked() {
        assert_eq!(mask_phone("+33612345678"), "+•••••••••78");
    }
}
