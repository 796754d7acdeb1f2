//! Signing in: the first factor (a password here; a magic link through the email-link
//! service), the decision between a session and a second step, the second step itself, and
//! the required-MFA enrolment of a sign-in. Sessions are opened by the session service, second
//! factors checked by the MFA service.
//!
//! Security rules, stated where they are enforced:
//! - Unknown accounts and wrong passwords get the same answer, after the same Argon2id work.
//! - A locked account answers every password (the right one too) as a wrong one, after the
//!   dummy Argon2id verify only; the attempt counts and the owner is told by email.
//! - Suspension and missing verification are only revealed to someone who knows the
//!   password; a wrong password always answers `invalid_credentials`.
//! - Every wrong password and wrong second factor counts towards the one lockout.

use std::sync::Arc;

use gatehouse_crypto::HashingPool;

use crate::account_limit::AccountKey;
use crate::audit::{AuditEvent, AuditStore};
use crate::clock::Clock;
use crate::error::DomainError;
use crate::known_devices::KnownDevices;
use crate::lockout::Lockout;
use crate::mfa::{
    ChallengeKind, CompletedChallenge, MfaChallenge, MfaPolicy, MfaService, MfaVerification,
    TotpEnrolment, TrustedBrowser,
};
use crate::principal::{Actor, RequestContext};
use crate::sessions::{NewSession, SessionService, SignInMethod, Tokens};
use crate::unit_of_work::UnitOfWork;
use crate::users::directory::UserDirectory;
use crate::users::record::{SignInFacts, UserLookup, UserRecord};
use crate::users::store::UserStore;
use crate::users::{Email, Username};

/// How the user names their account.
#[derive(Debug, Clone)]
pub enum Identifier {
    Email(String),
    Username(String),
}

#[derive(Clone)]
pub struct SignIn {
    pub identifier: Identifier,
    pub password: String,
    /// The trusted-device token the browser holds (its cookie), if any.
    pub trusted_device: Option<String>,
}

impl std::fmt::Debug for SignIn {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SignIn")
            .field("identifier", &self.identifier)
            .finish_non_exhaustive()
    }
}

/// What a first factor answers: tokens, or the second step.
#[derive(Debug, Clone)]
pub enum SignInOutcome {
    SignedIn(Box<Tokens>),
    MfaRequired(MfaChallenge),
}

/// A completed second step: tokens, and the trusted-browser token when one was asked for.
#[derive(Debug, Clone)]
pub struct MfaVerified {
    pub tokens: Tokens,
    pub trusted_browser: Option<TrustedBrowser>,
}

pub struct SignInService {
    pub(crate) users: Arc<dyn UserStore>,
    pub(crate) audit: Arc<dyn AuditStore>,
    pub(crate) hashing: HashingPool,
    pub(crate) directory: Arc<UserDirectory>,
    pub(crate) known_devices: Arc<KnownDevices>,
    pub(crate) lockout: Arc<Lockout>,
    pub(crate) mfa: Arc<MfaService>,
    pub(crate) sessions: Arc<SessionService>,
    /// Sign-in with a passkey (`passkey`).
    pub(crate) passkeys: Arc<crate::passkeys::PasskeyService>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) require_email_verification: bool,
}

impl SignInService {
    /// The account the identifier names, with what the rest of the sign-in needs to know
    /// about it (second factors, this device), read in one query.
    async fn find_by_identifier(
        &self,
        identifier: &Identifier,
        context: &RequestContext,
    ) -> Result<Option<(UserRecord, SignInFacts)>, DomainError> {
        let device = self.known_devices.digest(context);
        // An identifier that cannot be valid cannot name an account: treat it as unknown (same
        // answer, same work) rather than as a validation error that would answer faster.
        Ok(match identifier {
            Identifier::Email(text) => match Email::parse(text, "email") {
                Ok(email) => {
                    let digest = self.directory.email_digest(&email);
                    self.users.user_for_sign_in(UserLookup::EmailDigest(&digest), &device).await?
                }
                Err(_) => None,
            },
            Identifier::Username(text) => match Username::parse(text, "username") {
                Ok(username) => {
                    self.users
                        .user_for_sign_in(UserLookup::Username(username.as_str()), &device)
                        .await?
                }
                Err(_) => None,
            },
        })
    }

    /// Signs in. Unknown accounts, locked accounts and wrong passwords all answer
    /// `invalid_credentials` after one Argon2id computation. A suspended or (when required)
    /// unverified account is only reported when the password was right, so these answers
    /// reveal nothing to someone guessing. Failures while locked still count but never extend
    /// the lock.
    ///
    /// A user with a second factor gets a challenge instead of tokens (unless the request
    /// comes from a device they trusted); see `mfa`.
    pub async fn sign_in(
        &self,
        request: SignIn,
        context: &RequestContext,
    ) -> Result<SignInOutcome, DomainError> {
        // The per-account budget first, keyed on the identifier as typed whether or not an
        // account has it (so a refusal reveals nothing).
        let key = match &request.identifier {
            Identifier::Email(text) => AccountKey::Email(text),
            Identifier::Username(text) => AccountKey::Username(text),
        };
        self.lockout.spend_attempt(key).await?;
        let found = self.find_by_identifier(&request.identifier, context).await?;
        let now = self.clock.now();
        let Some((user, facts, hash)) = found
            .and_then(|(user, facts)| user.password_hash.clone().map(|hash| (user, facts, hash)))
        else {
            self.hashing.dummy_verify(request.password.into()).await;
            let event = AuditEvent::new("user.sign_in_failed", &Actor::Anonymous, context, now)
                .metadata(serde_json::json!({ "reason": "unknown_account" }));
            self.audit.append_audit_events(&[event]).await?;
            return Err(DomainError::InvalidCredentials);
        };
        let actor = Actor::User(user.id.clone());
        let failed = |reason: &str| {
            AuditEvent::new("user.sign_in_failed", &actor, context, now)
                .target("user", &user.id)
                .metadata(serde_json::json!({ "reason": reason }))
        };
        // A locked account answers as a wrong password, after the same Argon2id work and no
        // more (the right password is never checked), so the lock confirms no guess; the
        // attempt still counts (never extending the lock). The owner was told by email.
        if Lockout::is_locked(&user, now) {
            self.hashing.dummy_verify(request.password.into()).await;
            self.lockout.count_failure(&user, vec![failed("locked")], context, now).await?;
            return Err(DomainError::InvalidCredentials);
        }
        let password_ok =
            match self.hashing.verify(request.password.clone().into(), hash.clone()).await {
                Ok(matches) => matches,
                Err(error) => {
                    tracing::error!(user_id = %user.id, %error, "stored password hash is unusable");
                    false
                }
            };
        if !password_ok {
            self.lockout.count_failure(&user, vec![failed("wrong_password")], context, now).await?;
            return Err(DomainError::InvalidCredentials);
        }
        if user.suspended_at.is_some() {
            self.audit.append_audit_events(&[failed("suspended")]).await?;
            return Err(DomainError::AccountSuspended);
        }
        if self.require_email_verification && user.email_verified_at.is_none() {
            self.audit.append_audit_events(&[failed("email_not_verified")]).await?;
            return Err(DomainError::EmailNotVerified);
        }
        // Parameters or pepper changed since this hash was made: upgrade it now that we hold
        // the password.
        let rehashed = if self.hashing.needs_rehash(&hash) {
            Some(self.hashing.hash(request.password.into()).await?)
        } else {
            None
        };
        let first = FirstFactor {
            user,
            rehashed_password: rehashed,
            method: SignInMethod::Password,
            trusted_browser: request.trusted_device.as_deref(),
            work: UnitOfWork::default(),
            facts: Some(facts),
        };
        self.after_first_factor(first, context).await
    }

    /// After a first factor succeeded: tokens when the user has no second factor (or signs in
    /// from a browser they trusted), else a challenge. The first factor's unit of work (a
    /// spent magic-link token) and a re-hashed password are written either way (the first
    /// factor was proven right).
    pub(crate) async fn after_first_factor(
        &self,
        first: FirstFactor<'_>,
        context: &RequestContext,
    ) -> Result<SignInOutcome, DomainError> {
        let FirstFactor { user, rehashed_password, method, trusted_browser, mut work, facts } =
            first;
        let has_factor = match facts {
            // The factors found were set by someone who never proved the mailbox; this work
            // removes them, so they are not asked for.
            _ if work.mailbox_claim.is_some() => false,
            Some(facts) => facts.has_confirmed_factor,
            None => self.mfa.has_confirmed_factor(&user.id).await?,
        };
        let kind = if has_factor {
            let trusted = match trusted_browser {
                Some(token) => self.mfa.trusted_browser_matches(&user, token).await?,
                None => None,
            };
            let Some(browser_id) = trusted else {
                return self
                    .challenge(
                        user,
                        rehashed_password,
                        method,
                        ChallengeKind::Verify,
                        work,
                        context,
                    )
                    .await;
            };
            work.events.push(
                AuditEvent::new(
                    "mfa.trusted_device_used",
                    &Actor::User(user.id.clone()),
                    context,
                    self.clock.now(),
                )
                .target("trusted_device", &browser_id),
            );
            None
        } else if self.mfa.settings().policy == MfaPolicy::Required {
            Some(ChallengeKind::Enrol)
        } else {
            None
        };
        if let Some(kind) = kind {
            return self.challenge(user, rehashed_password, method, kind, work, context).await;
        }
        let new =
            NewSession { user, rehashed_password, method, amr: vec![method.amr()], facts, work };
        let tokens = self.sessions.start(new, context).await?;
        Ok(SignInOutcome::SignedIn(Box::new(tokens)))
    }

    /// Opens the second step for a user whose first factor succeeded.
    async fn challenge(
        &self,
        user: UserRecord,
        rehashed_password: Option<String>,
        method: SignInMethod,
        kind: ChallengeKind,
        work: UnitOfWork,
        context: &RequestContext,
    ) -> Result<SignInOutcome, DomainError> {
        let challenge =
            self.mfa.open_challenge(&user, method, kind, rehashed_password, context, work).await?;
        Ok(SignInOutcome::MfaRequired(challenge))
    }

    /// Completes a sign-in with a second factor (`POST /v1/auth/mfa/verify`).
    pub async fn verify_mfa(
        &self,
        request: MfaVerification,
        context: &RequestContext,
    ) -> Result<MfaVerified, DomainError> {
        let completed = self.mfa.complete_challenge(request, context).await?;
        let mut completed = completed;
        let trusted_browser = completed.trusted_browser.take();
        let tokens = self.sessions.start(session_of(completed), context).await?;
        Ok(MfaVerified { tokens, trusted_browser })
    }

    /// What a challenge token is for, and the methods its user can answer with (the hosted
    /// `/mfa` page shows the matching form).
    pub async fn challenge_info(
        &self,
        mfa_token: &str,
        context: &RequestContext,
    ) -> Result<(ChallengeKind, Vec<String>), DomainError> {
        self.mfa.challenge_info(mfa_token, context).await
    }

    /// Sends a sign-in code for a challenge (`POST /v1/auth/mfa/send-code`), by email or SMS,
    /// to a user who has that factor.
    pub async fn send_mfa_code(
        &self,
        mfa_token: &str,
        method: &str,
        context: &RequestContext,
    ) -> Result<(), DomainError> {
        self.mfa.send_challenge_code(mfa_token, method, context).await
    }

    /// MFA is required and the user has no factor: starts TOTP enrolment for the challenge's
    /// user (`POST /v1/auth/mfa/enrol/totp`).
    pub async fn begin_required_totp(
        &self,
        mfa_token: &str,
        context: &RequestContext,
    ) -> Result<TotpEnrolment, DomainError> {
        self.mfa.begin_required_totp(mfa_token, true, context).await
    }

    /// As [`Self::begin_required_totp`], but showing the enrolment in progress again when
    /// there is one (the hosted page after a wrong code).
    pub async fn required_totp_in_progress(
        &self,
        mfa_token: &str,
        context: &RequestContext,
    ) -> Result<TotpEnrolment, DomainError> {
        self.mfa.begin_required_totp(mfa_token, false, context).await
    }

    /// Confirms the required enrolment with a first code and completes the sign-in: backup
    /// codes (shown once) and tokens.
    pub async fn confirm_required_totp(
        &self,
        mfa_token: &str,
        code: &str,
        context: &RequestContext,
    ) -> Result<(Vec<String>, Tokens), DomainError> {
        let (backup_codes, completed) =
            self.mfa.complete_required_totp(mfa_token, code, context).await?;
        let tokens = self.sessions.start(session_of(completed), context).await?;
        Ok((backup_codes, tokens))
    }
}

/// The session a sign-in completed by its second step opens.
fn session_of(completed: CompletedChallenge) -> NewSession {
    NewSession {
        user: completed.user,
        rehashed_password: None,
        method: completed.first_method,
        amr: completed.amr,
        facts: None,
        work: completed.work,
    }
}

/// A first factor that succeeded, and what the rest of the sign-in needs from it.
pub(crate) struct FirstFactor<'a> {
    pub user: UserRecord,
    /// The password re-hashed with today's parameters, when it needed it.
    pub rehashed_password: Option<String>,
    pub method: SignInMethod,
    /// The trusted-browser token the request carried.
    pub trusted_browser: Option<&'a str>,
    /// What the first factor writes (a spent magic-link token, a verified address's event).
    pub work: UnitOfWork,
    /// What was read with the account, when the first factor read it.
    pub facts: Option<SignInFacts>,
}

mod federated;
mod passkey;

#[cfg(test)]
mod tests;
