//! Sign-up with a passkey and no password: the account and its first passkey are written
//! together once the credential is verified. The rules of a password sign-up hold (the same
//! validation; with verification required the same answer for a registered address, whose
//! owner is told; otherwise `email_taken`).

use serde_json::Value;

use crate::audit::AuditEvent;
use crate::email_links::record::TokenPurpose;
use crate::error::{DomainError, Feature, Taken};
use crate::mfa::MfaPolicy;
use crate::passkeys::{PasskeyCeremony, PendingSignUp, passkey_conflict};
use crate::principal::{Actor, RequestContext};
use crate::sessions::record::Amr;
use crate::sessions::{NewSession, SignInMethod};
use crate::unit_of_work::UnitOfWork;
use crate::users::names::NewIdentity;
use crate::users::record::UserRecord;

use super::{RegistrationService, SignUpOutcome};

/// A passkey sign-up's first request.
#[derive(Debug, Clone, Default)]
pub struct PasskeySignUp {
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
}

impl RegistrationService {
    /// Starts a passkey sign-up: the address and names validated, a registration ceremony for
    /// the id the account will have. It reads nothing: a registered address gets the same
    /// answer (see [`Self::finish_passkey_sign_up`]).
    pub async fn begin_passkey_sign_up(
        &self,
        request: PasskeySignUp,
        _context: &RequestContext,
    ) -> Result<PasskeyCeremony, DomainError> {
        if !self.signup_enabled {
            return Err(DomainError::Disabled(Feature::SignUp));
        }
        self.passkeys.relying_party()?;
        let mut issues = Vec::new();
        let NewIdentity { email, first_name, last_name, .. } = NewIdentity::parse(
            &request.email,
            None,
            request.first_name.as_deref(),
            request.last_name.as_deref(),
            &mut issues,
        );
        let Some(email) = email.filter(|_| issues.is_empty()) else {
            return Err(DomainError::Validation(issues));
        };
        let user_id = gatehouse_crypto::new_id("usr");
        let pending = PendingSignUp {
            email_ciphertext: self.directory.seal_email(&user_id, &email)?,
            email_digest: self.directory.email_digest(&email),
            user_id,
            first_name,
            last_name,
        };
        self.passkeys.begin_sign_up(pending, email.as_str()).await
    }

    /// Finishes a passkey sign-up: the credential verified, then the account (no password)
    /// and its passkey in one transaction with the audit events and the verification link.
    pub async fn finish_passkey_sign_up(
        &self,
        ceremony_id: &str,
        credential: &Value,
        name: Option<&str>,
        context: &RequestContext,
    ) -> Result<SignUpOutcome, DomainError> {
        // Switched off between the two requests: the ceremony is left to expire.
        if !self.signup_enabled {
            return Err(DomainError::Disabled(Feature::SignUp));
        }
        let (pending, passkey, amr) =
            self.passkeys.finish_sign_up(ceremony_id, credential, name).await?;
        // A credential registered already is refused the same way whether or not the address
        // has an account, before the address is looked at (else the refusal would tell).
        self.passkeys.refuse_registered_credential(&passkey.credential_id).await?;
        let now = self.clock.now();
        if let Some(owner) = self.users.user_by_email_digest(&pending.email_digest).await? {
            if !self.require_email_verification {
                return Err(DomainError::Taken(Taken::Email));
            }
            let event = AuditEvent::new("user.sign_up_existing", &Actor::Anonymous, context, now)
                .target("user", &owner.id);
            let outbox = self.notices.account_exists(&owner, context, now)?;
            let work = UnitOfWork {
                events: vec![event],
                outbox: outbox.into_iter().collect(),
                ..UnitOfWork::default()
            };
            self.work.commit(&work).await?;
            self.notices.wake();
            return Ok(SignUpOutcome::VerificationRequired);
        }
        let user = UserRecord {
            email_ciphertext: Some(pending.email_ciphertext),
            email_digest: Some(pending.email_digest),
            first_name: pending.first_name,
            last_name: pending.last_name,
            ..UserRecord::new(pending.user_id, now)
        };
        let actor = Actor::User(user.id.clone());
        let events = vec![
            AuditEvent::new("user.created", &actor, context, now)
                .target("user", &user.id)
                .metadata(serde_json::json!({ "method": "passkey" })),
            AuditEvent::new("passkey.added", &actor, context, now)
                .target("passkey", &passkey.id)
                .metadata(
                    serde_json::json!({ "name": passkey.name, "synced": passkey.backup_eligible }),
                ),
        ];
        let (tokens, outbox) = self.notices.link_email(
            &user,
            TokenPurpose::VerifyEmail,
            "/verify-email",
            &[],
            context,
            now,
        )?;
        let work =
            UnitOfWork { events, tokens, outbox, passkey: Some(passkey), ..UnitOfWork::default() };
        if let Err(error) = self.users.insert_user(&user, &work).await {
            return match passkey_conflict(error) {
                // Someone registered the address meanwhile: the same answer as above.
                DomainError::Store(error) => match DomainError::from_taken(error) {
                    DomainError::Taken(Taken::Email) if self.require_email_verification => {
                        Ok(SignUpOutcome::VerificationRequired)
                    }
                    other => Err(other),
                },
                other => Err(other),
            };
        }
        if !work.outbox.is_empty() {
            self.notices.wake();
        }
        if self.require_email_verification {
            return Ok(SignUpOutcome::VerificationRequired);
        }
        // A passkey that verified its user is a whole multi-factor sign-in: with MFA required
        // too, the user is signed in at once. One that did not gives no tokens then (as a
        // password sign-up): the user enrols a factor at their first sign-in.
        if !amr.contains(&Amr::Mfa) && self.mfa_policy == MfaPolicy::Required {
            let view = self.directory.view(&user)?;
            return Ok(SignUpOutcome::Created { user: Box::new(view), tokens: None });
        }
        let new = NewSession {
            user,
            rehashed_password: None,
            method: SignInMethod::Passkey,
            amr,
            facts: None,
            work: UnitOfWork::default(),
        };
        let tokens = self.sessions.start(new, context).await?;
        Ok(SignUpOutcome::Created {
            user: Box::new(tokens.user.clone()),
            tokens: Some(Box::new(tokens)),
        })
    }
}
