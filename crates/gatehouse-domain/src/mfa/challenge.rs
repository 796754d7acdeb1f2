//! The sign-in challenge between the first and the second factor: opening one, finding a live
//! one, and completing it with a second factor or with the enrolment a required-MFA sign-in
//! goes through. The sign-in service drives these steps and opens the session at the end.

use crate::account_limit::AccountKey;
use crate::audit::AuditEvent;
use crate::error::{DomainError, MfaProblem};
use crate::lockout::Lockout;
use crate::mfa::record::{ChallengeKind, CodePurpose, FactorKind, MfaChallengeRecord, MfaMethod};
use crate::principal::{Actor, RequestContext};
use crate::sessions::record::{Amr, SignInMethod};
use crate::unit_of_work::UnitOfWork;
use crate::users::record::{UserChange, UserRecord};

use super::trusted_browsers::TrustedBrowser;
use super::{
    CHALLENGE_MAX_ATTEMPTS, CHALLENGE_TOKEN, CHALLENGE_TTL_SECONDS, MAX_CHALLENGE_TOKEN_LENGTH,
    MfaChallenge, MfaService, MfaVerification, TotpEnrolment, parse_method,
};

/// A challenge answered: the user to open a session for, how they authenticated, and what to
/// write with the session (audit events, the trusted browser asked for).
#[derive(Debug)]
pub struct CompletedChallenge {
    pub user: UserRecord,
    pub first_method: SignInMethod,
    /// RFC 8176 `amr` of the whole sign-in: the first factor's, the second's, `mfa`.
    pub amr: Vec<Amr>,
    pub work: UnitOfWork,
    /// The browser token for the cookie, when the user asked to trust this browser.
    pub trusted_browser: Option<TrustedBrowser>,
}

impl MfaService {
    /// Whether the user has a confirmed second factor.
    pub(crate) async fn has_confirmed_factor(&self, user_id: &str) -> Result<bool, DomainError> {
        Ok(!self.confirmed_factors(user_id).await?.is_empty())
    }

    /// Opens a challenge of `kind` for `user` after their first factor. `work` (a spent
    /// magic-link token) and a re-hashed password are written with it (the first factor was
    /// proven right).
    pub(crate) async fn open_challenge(
        &self,
        user: &UserRecord,
        first: SignInMethod,
        kind: ChallengeKind,
        rehashed_password: Option<String>,
        context: &RequestContext,
        mut work: UnitOfWork,
    ) -> Result<MfaChallenge, DomainError> {
        let now = self.clock.now();
        let token = CHALLENGE_TOKEN.generate();
        let record = MfaChallengeRecord {
            token_digest: self.mfa_digest("challenge", &token),
            user_id: user.id.clone(),
            first_method: first,
            kind,
            created_at: now,
            expires_at: now + CHALLENGE_TTL_SECONDS,
            failures: 0,
        };
        self.challenges.create_challenge(&record).await?;
        let methods = self.methods_for(kind, &user.id).await?;
        let action = match kind {
            ChallengeKind::Verify => "mfa.challenge_issued",
            ChallengeKind::Enrol => "mfa.enrolment_required",
        };
        work.events.push(
            AuditEvent::new(action, &Actor::User(user.id.clone()), context, now)
                .target("user", &user.id)
                .metadata(
                    serde_json::json!({ "first_factor": first.as_str(), "methods": methods }),
                ),
        );
        // A magic link changed the user row (a verified address) and spends its token; a
        // password changed nothing unless it was re-hashed. The failure count is deliberately
        // not reset here: only a completed sign-in resets it, so signing in again does not buy
        // more guesses.
        // Only those columns are written, never the rest of this copy of the row.
        if work.spend_token.is_some() || rehashed_password.is_some() {
            let change = UserChange {
                // A magic link proved the address (its first factor set it on this copy).
                email_verified_at: (first == SignInMethod::MagicLink)
                    .then_some(user.email_verified_at)
                    .flatten()
                    .map(Some),
                rehashed_password,
                updated_at: Some(now),
                ..UserChange::default()
            };
            self.users
                .update_user(&user.id, &change, &work)
                .await
                .map_err(DomainError::from_spent_token)?;
        } else {
            self.work.commit(&work).await?;
        }
        Ok(MfaChallenge {
            mfa_token: token,
            methods,
            expires_in: CHALLENGE_TTL_SECONDS,
            enrolment_required: kind == ChallengeKind::Enrol,
        })
    }

    /// What a challenge of `kind` can be answered with.
    async fn methods_for(
        &self,
        kind: ChallengeKind,
        user_id: &str,
    ) -> Result<Vec<String>, DomainError> {
        Ok(match kind {
            ChallengeKind::Verify => self.methods_of(user_id).await?,
            ChallengeKind::Enrol => vec![FactorKind::Totp.as_str().to_owned()],
        })
    }

    /// The live challenge named by `token`, of `kind` (any kind when `None`). An expired one
    /// is thrown away and recorded.
    async fn live_challenge(
        &self,
        token: &str,
        kind: Option<ChallengeKind>,
        context: &RequestContext,
    ) -> Result<(Vec<u8>, MfaChallengeRecord), DomainError> {
        let invalid = DomainError::Mfa(MfaProblem::InvalidChallenge);
        if !CHALLENGE_TOKEN.recognises(token) || token.len() > MAX_CHALLENGE_TOKEN_LENGTH {
            return Err(invalid);
        }
        let digest = self.mfa_digest("challenge", token);
        let challenge = self.challenges.challenge(&digest).await?.ok_or(invalid)?;
        let now = self.clock.now();
        if challenge.expires_at <= now {
            self.challenges.consume_challenge(&digest).await?;
            let event = AuditEvent::new(
                "mfa.verify_failed",
                &Actor::User(challenge.user_id.clone()),
                context,
                now,
            )
            .target("user", &challenge.user_id)
            .metadata(serde_json::json!({ "reason": MfaProblem::ChallengeExpired.code() }));
            self.audit.append_audit_events(&[event]).await?;
            return Err(DomainError::Mfa(MfaProblem::ChallengeExpired));
        }
        if kind.is_some_and(|kind| challenge.kind != kind) {
            return Err(DomainError::Mfa(MfaProblem::InvalidChallenge));
        }
        Ok((digest, challenge))
    }

    /// The challenge's user, if they may still sign in (a suspension since the first factor
    /// stops here; a lock since then too, without saying so: the challenge reads as spent).
    async fn challenge_user(
        &self,
        challenge: &MfaChallengeRecord,
    ) -> Result<UserRecord, DomainError> {
        let user = self.challenge_user_unless_suspended(challenge).await?;
        if Lockout::is_locked(&user, self.clock.now()) {
            return Err(DomainError::Mfa(MfaProblem::InvalidChallenge));
        }
        Ok(user)
    }

    /// The challenge's user, unless suspended since the first factor.
    async fn challenge_user_unless_suspended(
        &self,
        challenge: &MfaChallengeRecord,
    ) -> Result<UserRecord, DomainError> {
        let user = self
            .users
            .user_by_id(&challenge.user_id)
            .await?
            .ok_or(DomainError::Mfa(MfaProblem::InvalidChallenge))?;
        if user.suspended_at.is_some() {
            return Err(DomainError::AccountSuspended);
        }
        Ok(user)
    }

    /// Answers a challenge with a second factor. Each answer is counted on the challenge
    /// before it is compared (one atomic store operation), so a burst of parallel guesses gets
    /// [`CHALLENGE_MAX_ATTEMPTS`] comparisons at most. A wrong answer counts towards the
    /// lockout and leaves the challenge usable (up to its own limit); a right one spends it.
    /// While the account is locked every answer reads as a wrong code, is not compared, and
    /// counts.
    pub(crate) async fn complete_challenge(
        &self,
        request: MfaVerification,
        context: &RequestContext,
    ) -> Result<CompletedChallenge, DomainError> {
        let method = parse_method(&request.method)?;
        let (digest, challenge) =
            self.live_challenge(&request.mfa_token, Some(ChallengeKind::Verify), context).await?;
        let user = self.challenge_user_unless_suspended(&challenge).await?;
        self.lockout.spend_attempt(AccountKey::User(&user.id)).await?;
        let Some(attempt) =
            self.challenges.count_challenge_attempt(&digest, CHALLENGE_MAX_ATTEMPTS).await?
        else {
            self.challenges.consume_challenge(&digest).await?;
            return Err(DomainError::Mfa(MfaProblem::InvalidChallenge));
        };
        let locked = Lockout::is_locked(&user, self.clock.now());
        let outcome = if locked {
            Err(DomainError::Mfa(MfaProblem::InvalidCode))
        } else {
            self.check_second_factor(&user, method, &request.code, CodePurpose::SignIn).await
        };
        if let Err(error) = outcome {
            if let DomainError::Mfa(problem) = &error {
                self.record_second_factor_failure(&user, method, *problem, locked, context).await?;
                if attempt >= CHALLENGE_MAX_ATTEMPTS {
                    self.challenges.consume_challenge(&digest).await?;
                }
            }
            return Err(error);
        }
        if !self.challenges.consume_challenge(&digest).await? {
            return Err(DomainError::Mfa(MfaProblem::InvalidChallenge));
        }
        let now = self.clock.now();
        let mut work = UnitOfWork::default();
        work.events.push(
            AuditEvent::new("mfa.verified", &Actor::User(user.id.clone()), context, now)
                .target("user", &user.id)
                .metadata(serde_json::json!({ "method": method.as_str() })),
        );
        let trusted_browser = if request.trust_device {
            let (browser, record) = self.new_trusted_browser(&user, context, now);
            work.events.push(
                AuditEvent::new(
                    "mfa.trusted_device_added",
                    &Actor::User(user.id.clone()),
                    context,
                    now,
                )
                .target("trusted_device", &record.id),
            );
            work.trusted_browser = Some(record);
            Some(browser)
        } else {
            None
        };
        let first = challenge.first_method;
        Ok(CompletedChallenge {
            user,
            first_method: first,
            amr: vec![first.amr(), method.amr(), Amr::Mfa],
            work,
            trusted_browser,
        })
    }

    /// What a challenge token is for, and the methods its user can answer with (the hosted
    /// `/mfa` page shows the matching form).
    pub(crate) async fn challenge_info(
        &self,
        mfa_token: &str,
        context: &RequestContext,
    ) -> Result<(ChallengeKind, Vec<String>), DomainError> {
        let (_, challenge) = self.live_challenge(mfa_token, None, context).await?;
        let methods = self.methods_for(challenge.kind, &challenge.user_id).await?;
        Ok((challenge.kind, methods))
    }

    /// Sends a sign-in code for a challenge, by email or SMS, to a user who has that factor.
    pub(crate) async fn send_challenge_code(
        &self,
        mfa_token: &str,
        method: &str,
        context: &RequestContext,
    ) -> Result<(), DomainError> {
        let method = parse_method(method)?;
        let kind = method.channel().ok_or(DomainError::Mfa(MfaProblem::MethodUnavailable))?;
        let (_, challenge) =
            self.live_challenge(mfa_token, Some(ChallengeKind::Verify), context).await?;
        let user = self.challenge_user(&challenge).await?;
        self.send_code_to_factor(&user, kind, CodePurpose::SignIn, context).await
    }

    /// MFA is required and the user has no factor: starts TOTP enrolment for the challenge's
    /// user; `restart: false` shows the enrolment in progress again when there is one (the
    /// hosted page after a wrong code).
    pub(crate) async fn begin_required_totp(
        &self,
        mfa_token: &str,
        restart: bool,
        context: &RequestContext,
    ) -> Result<TotpEnrolment, DomainError> {
        let (_, challenge) =
            self.live_challenge(mfa_token, Some(ChallengeKind::Enrol), context).await?;
        let user = self.challenge_user(&challenge).await?;
        if restart {
            self.begin_totp_for(&user, context).await
        } else {
            self.current_totp_enrolment_for(&user, context).await
        }
    }

    /// Confirms the required enrolment with a first code and spends the challenge: the backup
    /// codes (shown once) and what the session needs.
    pub(crate) async fn complete_required_totp(
        &self,
        mfa_token: &str,
        code: &str,
        context: &RequestContext,
    ) -> Result<(Vec<String>, CompletedChallenge), DomainError> {
        let (digest, challenge) =
            self.live_challenge(mfa_token, Some(ChallengeKind::Enrol), context).await?;
        let user = self.challenge_user(&challenge).await?;
        let backup_codes = self.confirm_totp_for(&user, code, context).await?;
        if !self.challenges.consume_challenge(&digest).await? {
            return Err(DomainError::Mfa(MfaProblem::InvalidChallenge));
        }
        let first = challenge.first_method;
        let completed = CompletedChallenge {
            user,
            first_method: first,
            amr: vec![first.amr(), MfaMethod::Totp.amr(), Amr::Mfa],
            work: UnitOfWork::default(),
            trusted_browser: None,
        };
        Ok((backup_codes, completed))
    }
}

#[cfg(test)]
mod tests;
