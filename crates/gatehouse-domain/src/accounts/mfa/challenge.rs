//! The sign-in challenge between the first and the second factor: opening it (or signing in
//! straight away), finding a live one, completing it with a second factor, and the enrolment
//! a required-MFA sign-in goes through.

use crate::audit::{Actor, AuditEvent, RequestContext};
use crate::error::{DomainError, MfaProblem};
use crate::mfa::{ChallengeKind, CodePurpose, FactorKind, MfaChallengeRecord, MfaMethod};
use crate::notify::Effects;
use crate::users::{SignInFacts, UserRecord};

use super::super::{AccountService, Tokens};
use super::{
    CHALLENGE_MAX_FAILURES, CHALLENGE_TOKEN_PREFIX, CHALLENGE_TTL_SECONDS, FirstFactor,
    MAX_CHALLENGE_TOKEN_LENGTH, MfaChallenge, MfaPolicy, MfaVerification, MfaVerified,
    SignInOutcome, TotpEnrolment, parse_method,
};

impl AccountService {
    /// After a first factor succeeded: tokens when the user has no second factor (or signs in
    /// from a trusted device), else a challenge. `effects` (a spent magic-link token) and a
    /// re-hashed password are written either way (the password was proven right). `facts`,
    /// when the first factor read them with the account, spare reading the factors again.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn after_first_factor(
        &self,
        user: UserRecord,
        rehashed_password: Option<String>,
        first: FirstFactor,
        trusted_device: Option<&str>,
        context: &RequestContext,
        effects: Effects,
        facts: Option<SignInFacts>,
    ) -> Result<SignInOutcome, DomainError> {
        let has_factor = match facts {
            Some(facts) => facts.has_confirmed_factor,
            None => !self.confirmed_factors(&user.id).await?.is_empty(),
        };
        let kind = if has_factor {
            let trusted = match trusted_device {
                Some(token) => self.trusted_device_matches(&user, token).await?,
                None => None,
            };
            if let Some(device_id) = trusted {
                let mut effects = effects;
                effects.events.push(
                    AuditEvent::new(
                        "mfa.trusted_device_used",
                        &Actor::User(user.id.clone()),
                        context,
                        self.clock.now(),
                    )
                    .target("trusted_device", &device_id),
                );
                let tokens = self
                    .start_session_with(
                        user,
                        rehashed_password,
                        context,
                        effects,
                        first.method,
                        &[first.amr],
                        facts,
                    )
                    .await?;
                return Ok(SignInOutcome::SignedIn(Box::new(tokens)));
            }
            ChallengeKind::Verify
        } else if self.mfa.settings.policy == MfaPolicy::Required {
            ChallengeKind::Enrol
        } else {
            let tokens = self
                .start_session_with(
                    user,
                    rehashed_password,
                    context,
                    effects,
                    first.method,
                    &[first.amr],
                    facts,
                )
                .await?;
            return Ok(SignInOutcome::SignedIn(Box::new(tokens)));
        };
        let mut user = user;
        let rehashed = rehashed_password.is_some();
        if let Some(hash) = rehashed_password {
            user.password_hash = Some(hash);
        }
        let challenge = self.open_challenge(&user, first, kind, rehashed, context, effects).await?;
        Ok(SignInOutcome::MfaRequired(challenge))
    }

    pub(super) async fn open_challenge(
        &self,
        user: &UserRecord,
        first: FirstFactor,
        kind: ChallengeKind,
        rehashed_password: bool,
        context: &RequestContext,
        mut effects: Effects,
    ) -> Result<MfaChallenge, DomainError> {
        let now = self.clock.now();
        let token = format!("{CHALLENGE_TOKEN_PREFIX}{}", gatehouse_crypto::random_token());
        let record = MfaChallengeRecord {
            token_digest: self.mfa_digest("challenge", &token),
            user_id: user.id.clone(),
            first_factor: first.amr.to_owned(),
            first_method: first.method.to_owned(),
            kind,
            created_at: now,
            expires_at: now + CHALLENGE_TTL_SECONDS,
            failures: 0,
        };
        self.mfa.challenges.create_challenge(&record).await?;
        let methods = match kind {
            ChallengeKind::Verify => self.methods_of(&user.id).await?,
            ChallengeKind::Enrol => vec![FactorKind::Totp.as_str().to_owned()],
        };
        let action = match kind {
            ChallengeKind::Verify => "mfa.challenge_issued",
            ChallengeKind::Enrol => "mfa.enrolment_required",
        };
        effects.events.push(
            AuditEvent::new(action, &Actor::User(user.id.clone()), context, now)
                .target("user", &user.id)
                .metadata(serde_json::json!({ "first_factor": first.method, "methods": methods })),
        );
        // A magic link changed the user row (a verified address) and spends its token; a
        // password changed nothing unless it was re-hashed. The failure count is deliberately
        // not reset here: only a completed sign-in resets it, so signing in again does not buy
        // more guesses.
        if effects.spend_token.is_some() || rehashed_password {
            self.store
                .update_user_with(user, &effects)
                .await
                .map_err(super::super::spent_from_conflict)?;
        } else {
            self.store.append_effects(&effects).await?;
        }
        Ok(MfaChallenge {
            mfa_token: token,
            methods,
            expires_in: CHALLENGE_TTL_SECONDS,
            enrolment_required: kind == ChallengeKind::Enrol,
        })
    }

    /// The live challenge named by `token`, of `kind`. An expired one is thrown away and
    /// recorded.
    pub(super) async fn live_challenge(
        &self,
        token: &str,
        kind: ChallengeKind,
        context: &RequestContext,
    ) -> Result<(Vec<u8>, MfaChallengeRecord), DomainError> {
        let invalid = DomainError::Mfa(MfaProblem::InvalidChallenge);
        if !token.starts_with(CHALLENGE_TOKEN_PREFIX) || token.len() > MAX_CHALLENGE_TOKEN_LENGTH {
            return Err(invalid);
        }
        let digest = self.mfa_digest("challenge", token);
        let challenge = self.mfa.challenges.challenge(&digest).await?.ok_or(invalid)?;
        let now = self.clock.now();
        if challenge.expires_at <= now {
            self.mfa.challenges.consume_challenge(&digest).await?;
            let event = AuditEvent::new(
                "mfa.verify_failed",
                &Actor::User(challenge.user_id.clone()),
                context,
                now,
            )
            .target("user", &challenge.user_id)
            .metadata(serde_json::json!({ "reason": MfaProblem::ChallengeExpired.code() }));
            self.store.append_audit_events(&[event]).await?;
            return Err(DomainError::Mfa(MfaProblem::ChallengeExpired));
        }
        if challenge.kind != kind {
            return Err(DomainError::Mfa(MfaProblem::InvalidChallenge));
        }
        Ok((digest, challenge))
    }

    /// The challenge's user, if they may still sign in (a lock or suspension since the first
    /// factor stops here).
    pub(super) async fn challenge_user(
        &self,
        challenge: &MfaChallengeRecord,
    ) -> Result<UserRecord, DomainError> {
        let user = self
            .store
            .user_by_id(&challenge.user_id)
            .await?
            .ok_or(DomainError::Mfa(MfaProblem::InvalidChallenge))?;
        let now = self.clock.now();
        if let Some(until) = user.locked_until.filter(|until| *until > now) {
            return Err(DomainError::AccountLocked { retry_after: until - now });
        }
        if user.suspended_at.is_some() {
            return Err(DomainError::AccountSuspended);
        }
        Ok(user)
    }

    /// Completes a sign-in with a second factor. A wrong answer counts towards the lockout and
    /// leaves the challenge usable (up to its own limit); a right one spends it.
    pub async fn verify_mfa(
        &self,
        request: MfaVerification,
        context: &RequestContext,
    ) -> Result<MfaVerified, DomainError> {
        let method = parse_method(&request.method)?;
        let (digest, challenge) =
            self.live_challenge(&request.mfa_token, ChallengeKind::Verify, context).await?;
        let user = self.challenge_user(&challenge).await?;
        if let Err(error) =
            self.check_second_factor(&user, method, &request.code, CodePurpose::SignIn).await
        {
            if let DomainError::Mfa(problem) = &error {
                self.record_second_factor_failure(&user, method, *problem, context).await?;
                let failures = self.mfa.challenges.count_challenge_failure(&digest).await?;
                if failures >= CHALLENGE_MAX_FAILURES {
                    self.mfa.challenges.consume_challenge(&digest).await?;
                }
            }
            return Err(error);
        }
        if !self.mfa.challenges.consume_challenge(&digest).await? {
            return Err(DomainError::Mfa(MfaProblem::InvalidChallenge));
        }
        let now = self.clock.now();
        let mut effects = Effects::default();
        effects.events.push(
            AuditEvent::new("mfa.verified", &Actor::User(user.id.clone()), context, now)
                .target("user", &user.id)
                .metadata(serde_json::json!({ "method": method.as_str() })),
        );
        let trusted_device = if request.trust_device {
            let (device, record) = self.new_trusted_device(&user, context, now);
            effects.events.push(
                AuditEvent::new(
                    "mfa.trusted_device_added",
                    &Actor::User(user.id.clone()),
                    context,
                    now,
                )
                .target("trusted_device", &record.id),
            );
            effects.trusted_device = Some(record);
            Some(device)
        } else {
            None
        };
        let first_method = match challenge.first_method.as_str() {
            "magic_link" => "magic_link",
            _ => "password",
        };
        let amr = [challenge.first_factor.as_str(), method.amr(), "mfa"];
        let tokens =
            self.start_session_with(user, None, context, effects, first_method, &amr, None).await?;
        Ok(MfaVerified { tokens, trusted_device })
    }

    /// What a challenge token is for, and the methods its user can answer with (the hosted
    /// `/mfa` page shows the matching form).
    pub async fn challenge_info(
        &self,
        mfa_token: &str,
        context: &RequestContext,
    ) -> Result<(ChallengeKind, Vec<String>), DomainError> {
        let invalid = DomainError::Mfa(MfaProblem::InvalidChallenge);
        if !mfa_token.starts_with(CHALLENGE_TOKEN_PREFIX)
            || mfa_token.len() > MAX_CHALLENGE_TOKEN_LENGTH
        {
            return Err(invalid);
        }
        let digest = self.mfa_digest("challenge", mfa_token);
        let challenge = self.mfa.challenges.challenge(&digest).await?.ok_or(invalid)?;
        let (_, challenge) = self.live_challenge(mfa_token, challenge.kind, context).await?;
        let methods = match challenge.kind {
            ChallengeKind::Verify => self.methods_of(&challenge.user_id).await?,
            ChallengeKind::Enrol => vec![FactorKind::Totp.as_str().to_owned()],
        };
        Ok((challenge.kind, methods))
    }

    /// MFA is required and the user has no factor: starts TOTP enrolment for the challenge's
    /// user (`POST /v1/auth/mfa/enrol/totp`).
    pub async fn begin_required_totp(
        &self,
        mfa_token: &str,
        context: &RequestContext,
    ) -> Result<TotpEnrolment, DomainError> {
        let (_, challenge) = self.live_challenge(mfa_token, ChallengeKind::Enrol, context).await?;
        let user = self.challenge_user(&challenge).await?;
        self.begin_totp_for(&user, context).await
    }

    /// As [`Self::begin_required_totp`], but showing the enrolment in progress again when
    /// there is one (the hosted page after a wrong code).
    pub async fn required_totp_in_progress(
        &self,
        mfa_token: &str,
        context: &RequestContext,
    ) -> Result<TotpEnrolment, DomainError> {
        let (_, challenge) = self.live_challenge(mfa_token, ChallengeKind::Enrol, context).await?;
        let user = self.challenge_user(&challenge).await?;
        self.current_totp_enrolment_for(&user, context).await
    }

    /// Confirms the required enrolment with a first code and completes the sign-in: backup
    /// codes (shown once) and tokens.
    pub async fn confirm_required_totp(
        &self,
        mfa_token: &str,
        code: &str,
        context: &RequestContext,
    ) -> Result<(Vec<String>, Tokens), DomainError> {
        let (digest, challenge) =
            self.live_challenge(mfa_token, ChallengeKind::Enrol, context).await?;
        let user = self.challenge_user(&challenge).await?;
        let backup_codes = self.confirm_totp_for(&user, code, context).await?;
        if !self.mfa.challenges.consume_challenge(&digest).await? {
            return Err(DomainError::Mfa(MfaProblem::InvalidChallenge));
        }
        let first_method = match challenge.first_method.as_str() {
            "magic_link" => "magic_link",
            _ => "password",
        };
        let amr = [challenge.first_factor.as_str(), MfaMethod::Totp.amr(), "mfa"];
        let tokens = self
            .start_session_with(user, None, context, Effects::default(), first_method, &amr, None)
            .await?;
        Ok((backup_codes, tokens))
    }
}
