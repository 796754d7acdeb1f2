//! Step-up: sensitive actions need a recent authentication; `reauthenticate` gives a
//! signed-in session a fresh one (password or second factor), recorded as the session's
//! `auth_time` and `amr`, so the tokens issued from then on carry it.

use crate::account_limit::AccountKey;
use crate::audit::AuditEvent;
use crate::error::{DomainError, MfaProblem};
use crate::lockout::Lockout;
use crate::mfa::record::CodePurpose;
use crate::passkeys::PasskeyAssertion;
use crate::principal::{Actor, Principal, RequestContext};
use crate::sessions::record::Amr;

use super::{MfaService, parse_method};

/// A proof of presence: the password, a second factor (`method` + `code`), or a passkey
/// assertion for a step-up ceremony.
#[derive(Clone, Default)]
pub struct Reauthentication {
    pub password: Option<String>,
    pub method: Option<String>,
    pub code: Option<String>,
    pub passkey: Option<PasskeyAssertion>,
}

impl std::fmt::Debug for Reauthentication {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Reauthentication")
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

impl Reauthentication {
    pub fn is_empty(&self) -> bool {
        self.password.is_none() && self.code.is_none() && self.passkey.is_none()
    }
}

/// A fresh access token after a step-up, with the new `auth_time` and `amr`.
#[derive(Debug, Clone)]
pub struct Reauthenticated {
    pub access_token: String,
    pub expires_in: i64,
    pub auth_time: i64,
    pub amr: Vec<String>,
}

impl MfaService {
    /// `reauthentication_required` unless the session authenticated within the configured age.
    pub fn require_recent_authentication(&self, principal: &Principal) -> Result<(), DomainError> {
        let session = &principal.session;
        // An admin acting as the user never counts as the user's presence.
        if session.impersonator.is_some() {
            return Err(DomainError::Impersonating);
        }
        let authenticated_at = session.auth_time.unwrap_or(session.created_at);
        if authenticated_at + self.settings.reauthentication_max_age_seconds < self.clock.now() {
            return Err(DomainError::ReauthenticationRequired);
        }
        Ok(())
    }

    /// A sensitive action's gate: the proof given with the request (which re-authenticates
    /// the session), else a recent enough authentication.
    pub async fn require_presence(
        &self,
        principal: &Principal,
        proof: Option<Reauthentication>,
        context: &RequestContext,
    ) -> Result<(), DomainError> {
        match proof {
            Some(proof) if !proof.is_empty() => {
                self.reauthenticate(principal, proof, context).await?;
                Ok(())
            }
            _ => self.require_recent_authentication(principal),
        }
    }

    /// Re-authenticates the signed-in user with the password or a second factor. It obeys
    /// and feeds the sign-in lockout: failures count like sign-in failures, and while the
    /// account is locked every proof (the right one too) answers as a wrong one, after the
    /// same work (the dummy Argon2id verify for a password), and counts.
    pub async fn reauthenticate(
        &self,
        principal: &Principal,
        proof: Reauthentication,
        context: &RequestContext,
    ) -> Result<Reauthenticated, DomainError> {
        if principal.session.impersonator.is_some() {
            return Err(DomainError::Impersonating);
        }
        let user = &principal.user;
        self.lockout.spend_attempt(AccountKey::User(&user.id)).await?;
        let now = self.clock.now();
        let locked = Lockout::is_locked(user, now);
        let actor = Actor::User(user.id.clone());
        let amr: Vec<String> = if let Some(assertion) = proof.passkey {
            // A passkey is not guessable: it neither obeys nor feeds the password lockout;
            // a failure is audited by the passkey service.
            let added = self.passkeys.verify_step_up(principal, assertion, context).await?;
            let mut amr = principal.session.amr_values();
            for value in added.into_iter().map(Amr::as_str) {
                if !amr.iter().any(|existing| existing == value) {
                    amr.push(value.to_owned());
                }
            }
            amr
        } else if let Some(password) = proof.password {
            let ok = match &user.password_hash {
                Some(hash) if !locked => self.hashing.verify(password.into(), hash.clone()).await?,
                _ => {
                    self.hashing.dummy_verify(password.into()).await;
                    false
                }
            };
            if !ok {
                let reason = if locked { "locked" } else { "wrong_password" };
                let event = AuditEvent::new("user.reauthentication_failed", &actor, context, now)
                    .target("user", &user.id)
                    .metadata(serde_json::json!({ "method": "password", "reason": reason }));
                self.lockout.count_failure(user, vec![event], context, now).await?;
                return Err(DomainError::InvalidCredentials);
            }
            vec![Amr::Pwd.as_str().to_owned()]
        } else {
            let method = parse_method(proof.method.as_deref().unwrap_or(""))?;
            let code = proof.code.unwrap_or_default();
            let outcome = if locked {
                Err(DomainError::Mfa(MfaProblem::InvalidCode))
            } else {
                self.check_second_factor(user, method, &code, CodePurpose::Reauthenticate).await
            };
            if let Err(error) = outcome {
                if let DomainError::Mfa(problem) = &error {
                    self.record_second_factor_failure(user, method, *problem, locked, context)
                        .await?;
                }
                return Err(error);
            }
            let mut amr = principal.session.amr_values();
            for value in [method.amr(), Amr::Mfa].map(Amr::as_str) {
                if !amr.iter().any(|existing| existing == value) {
                    amr.push(value.to_owned());
                }
            }
            amr
        };
        let event = AuditEvent::new("user.reauthenticated", &actor, context, now)
            .target("session", &principal.session.id)
            .metadata(serde_json::json!({ "amr": amr }));
        let amr_text = amr.join(" ");
        self.sessions
            .update_session_authentication(&principal.session.id, now, &amr_text, &[event])
            .await?;
        let mut session = principal.session.clone();
        session.auth_time = Some(now);
        session.amr = Some(amr_text);
        let access_token = self.tokens.issue_access_token(&session).await?;
        Ok(Reauthenticated {
            access_token,
            expires_in: self.tokens.settings().access_token_ttl_seconds,
            auth_time: now,
            amr,
        })
    }
}
