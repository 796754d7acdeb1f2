//! Multi-factor authentication, as rules of the account service: the sign-in challenge between
//! the first and the second factor, checking a second factor, and (in the submodules) TOTP and
//! backup codes, codes by email and SMS, trusted devices and step-up re-authentication.
//!
//! Security rules, stated where they are enforced:
//! - A challenge token is random, lives five minutes, is bound to the user and the first
//!   factor, and is spent by the one request that completes the sign-in.
//! - Every wrong second factor counts towards the account lockout, like a wrong password, and
//!   is in the audit trail with its reason (`invalid_mfa_code`, `mfa_code_replayed`, ...).
//! - A TOTP time step is accepted once; backup, email and SMS codes once each; email and SMS
//!   codes live five minutes and allow five tries.
//! - Secrets (TOTP secrets, phone numbers) are sealed at rest; codes and tokens are stored as
//!   keyed digests, compared in constant time.

mod codes;
mod devices;
mod step_up;
mod totp;

use std::sync::Arc;

use gatehouse_crypto::{Digester, FieldCipher};

use crate::audit::{Actor, AuditEvent, RequestContext};
use crate::error::{DomainError, FieldIssue, MfaProblem};
use crate::mfa::{
    ChallengeKind, CodePurpose, FactorKind, MfaChallengeRecord, MfaChallengeStore, MfaFactorRecord,
    MfaMethod,
};
use crate::notify::Effects;
use crate::users::UserRecord;

use super::{AccountService, Principal, Tokens};

pub use codes::{CODE_RESEND_SECONDS, parse_phone_number};
pub use devices::TrustedDevice;
pub use step_up::Reauthentication;
pub use totp::TotpEnrolment;

/// How long a sign-in challenge lives.
pub const CHALLENGE_TTL_SECONDS: i64 = 300;
/// Wrong answers one challenge takes before it is thrown away (the account lockout usually
/// comes first).
const CHALLENGE_MAX_FAILURES: i64 = 10;
/// Prefix of challenge tokens (`mfa_token`).
const CHALLENGE_TOKEN_PREFIX: &str = "ghm_";
/// Longest challenge token we bother to look up.
const MAX_CHALLENGE_TOKEN_LENGTH: usize = 64;

/// Whether every user must have a second factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MfaPolicy {
    #[default]
    Optional,
    /// Users without a factor enrol one (TOTP) before they get tokens.
    Required,
}

#[derive(Debug, Clone)]
pub struct MfaSettings {
    pub policy: MfaPolicy,
    /// The issuer label authenticator apps show (the product name).
    pub totp_issuer: String,
    /// How long a trusted device skips the second factor.
    pub trusted_device_ttl_seconds: i64,
    /// How recent an authentication a sensitive action needs.
    pub reauthentication_max_age_seconds: i64,
    /// Whether SMS can be sent (an SMS gateway is configured).
    pub sms_enabled: bool,
}

impl Default for MfaSettings {
    fn default() -> Self {
        Self {
            policy: MfaPolicy::Optional,
            totp_issuer: "Gatehouse".into(),
            trusted_device_ttl_seconds: 30 * 24 * 3600,
            reauthentication_max_age_seconds: 300,
            sms_enabled: false,
        }
    }
}

/// What MFA needs besides the account service's own parts.
pub struct MfaParts {
    pub challenges: Arc<dyn MfaChallengeStore>,
    /// Purpose [`crate::mfa::TOTP_SECRET_PURPOSE`].
    pub totp_cipher: FieldCipher,
    /// Purpose [`crate::mfa::PHONE_PURPOSE`].
    pub phone_cipher: FieldCipher,
    /// Purpose [`crate::mfa::MFA_DIGEST_PURPOSE`].
    pub digester: Digester,
    pub settings: MfaSettings,
}

/// What a first factor answers: tokens, or the second step.
#[derive(Debug, Clone)]
pub enum SignInOutcome {
    SignedIn(Box<Tokens>),
    MfaRequired(MfaChallenge),
}

/// The answer that asks for a second factor (`{mfa_required, mfa_token, methods}`).
#[derive(Debug, Clone)]
pub struct MfaChallenge {
    pub mfa_token: String,
    /// What `POST /v1/auth/mfa/verify` accepts for this user (`totp`, `backup_code`, ...).
    pub methods: Vec<String>,
    pub expires_in: i64,
    /// MFA is required and the user has no factor: enrol one with this token first.
    pub enrolment_required: bool,
}

/// The first factor a challenge follows.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FirstFactor {
    /// For the audit trail: `password`, `magic_link`.
    pub method: &'static str,
    /// RFC 8176: `pwd`, `email`.
    pub amr: &'static str,
}

pub(crate) const PASSWORD: FirstFactor = FirstFactor { method: "password", amr: "pwd" };

/// `POST /v1/auth/mfa/verify`. No `Debug` of the token or the code.
#[derive(Clone)]
pub struct MfaVerification {
    pub mfa_token: String,
    pub method: String,
    pub code: String,
    pub trust_device: bool,
}

impl std::fmt::Debug for MfaVerification {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("MfaVerification")
            .field("method", &self.method)
            .field("trust_device", &self.trust_device)
            .finish_non_exhaustive()
    }
}

/// A completed second step: tokens, and the trusted-device token when one was asked for.
#[derive(Debug, Clone)]
pub struct MfaVerified {
    pub tokens: Tokens,
    pub trusted_device: Option<TrustedDevice>,
}

/// The user's MFA as they (or an admin) see it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MfaOverview {
    pub enabled: bool,
    pub required: bool,
    pub factors: Vec<FactorView>,
    pub backup_codes_remaining: usize,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct FactorView {
    pub id: String,
    pub kind: &'static str,
    pub created_at: i64,
    pub confirmed_at: Option<i64>,
    pub last_used_at: Option<i64>,
    /// SMS: the number with all but its last two digits masked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
}

impl AccountService {
    fn mfa_digest(&self, what: &str, value: &str) -> Vec<u8> {
        self.mfa.digester.digest(format!("{what}:{value}").as_bytes()).to_vec()
    }

    /// The user's confirmed factors.
    pub(crate) async fn confirmed_factors(
        &self,
        user_id: &str,
    ) -> Result<Vec<MfaFactorRecord>, DomainError> {
        let mut factors = self.store.mfa_factors(user_id).await?;
        factors.retain(|factor| factor.confirmed_at.is_some());
        Ok(factors)
    }

    /// The methods a user can answer a challenge with.
    async fn methods_of(&self, user_id: &str) -> Result<Vec<String>, DomainError> {
        let factors = self.confirmed_factors(user_id).await?;
        let mut methods: Vec<String> = FactorKind::ALL
            .into_iter()
            .filter(|kind| factors.iter().any(|factor| factor.kind == kind.as_str()))
            .filter(|kind| *kind != FactorKind::Sms || self.mfa.settings.sms_enabled)
            .map(|kind| kind.as_str().to_owned())
            .collect();
        if self.backup_codes_remaining(user_id).await? > 0 {
            methods.push(MfaMethod::BackupCode.as_str().to_owned());
        }
        Ok(methods)
    }

    pub(crate) async fn backup_codes_remaining(&self, user_id: &str) -> Result<usize, DomainError> {
        let codes = self.store.backup_codes(user_id).await?;
        Ok(codes.iter().filter(|code| code.used_at.is_none()).count())
    }

    /// After a first factor succeeded: tokens when the user has no second factor (or signs in
    /// from a trusted device), else a challenge. `effects` (a spent magic-link token) are
    /// written either way; a re-hashed password only with a session.
    pub(crate) async fn after_first_factor(
        &self,
        user: UserRecord,
        rehashed_password: Option<String>,
        first: FirstFactor,
        trusted_device: Option<&str>,
        context: &RequestContext,
        effects: Effects,
    ) -> Result<SignInOutcome, DomainError> {
        let factors = self.confirmed_factors(&user.id).await?;
        let kind = if !factors.is_empty() {
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
                )
                .await?;
            return Ok(SignInOutcome::SignedIn(Box::new(tokens)));
        };
        let challenge = self.open_challenge(&user, first, kind, context, effects).await?;
        Ok(SignInOutcome::MfaRequired(challenge))
    }

    async fn open_challenge(
        &self,
        user: &UserRecord,
        first: FirstFactor,
        kind: ChallengeKind,
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
        // password changed nothing. The failure count is deliberately not reset here: only a
        // completed sign-in resets it, so signing in again does not buy more guesses.
        if effects.spend_token.is_some() {
            self.store
                .update_user_with(user, &effects)
                .await
                .map_err(super::spent_from_conflict)?;
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
    async fn live_challenge(
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
    async fn challenge_user(
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
            self.start_session_with(user, None, context, effects, first_method, &amr).await?;
        Ok(MfaVerified { tokens, trusted_device })
    }

    /// What a challenge token is for (the hosted `/mfa` page shows the matching form).
    pub async fn challenge_kind(
        &self,
        mfa_token: &str,
        context: &RequestContext,
    ) -> Result<ChallengeKind, DomainError> {
        let invalid = DomainError::Mfa(MfaProblem::InvalidChallenge);
        if !mfa_token.starts_with(CHALLENGE_TOKEN_PREFIX)
            || mfa_token.len() > MAX_CHALLENGE_TOKEN_LENGTH
        {
            return Err(invalid);
        }
        let digest = self.mfa_digest("challenge", mfa_token);
        let challenge = self.mfa.challenges.challenge(&digest).await?.ok_or(invalid)?;
        let (_, challenge) = self.live_challenge(mfa_token, challenge.kind, context).await?;
        Ok(challenge.kind)
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
            .start_session_with(user, None, context, Effects::default(), first_method, &amr)
            .await?;
        Ok((backup_codes, tokens))
    }

    /// Checks one second factor of `user`. `Err(DomainError::Mfa(..))` says why it failed;
    /// the caller records the failure.
    pub(crate) async fn check_second_factor(
        &self,
        user: &UserRecord,
        method: MfaMethod,
        code: &str,
        purpose: CodePurpose,
    ) -> Result<(), DomainError> {
        match method {
            MfaMethod::Totp => self.check_totp(user, code).await,
            MfaMethod::BackupCode => self.check_backup_code(user, code).await,
            MfaMethod::Email | MfaMethod::Sms => {
                let kind = method.channel().unwrap_or(FactorKind::Email);
                let factors = self.confirmed_factors(&user.id).await?;
                if !factors.iter().any(|factor| factor.kind == kind.as_str()) {
                    return Err(DomainError::Mfa(MfaProblem::MethodUnavailable));
                }
                self.check_code(&user.id, kind, purpose, code).await
            }
        }
    }

    /// A wrong second factor: the audit event (with its reason) and one more failure towards
    /// the lockout.
    pub(crate) async fn record_second_factor_failure(
        &self,
        user: &UserRecord,
        method: MfaMethod,
        problem: MfaProblem,
        context: &RequestContext,
    ) -> Result<(), DomainError> {
        let now = self.clock.now();
        let event =
            AuditEvent::new("mfa.verify_failed", &Actor::User(user.id.clone()), context, now)
                .target("user", &user.id)
                .metadata(
                    serde_json::json!({ "method": method.as_str(), "reason": problem.code() }),
                );
        // Asking for an unavailable method is not a guess.
        if problem == MfaProblem::MethodUnavailable {
            self.store.append_audit_events(&[event]).await?;
            return Ok(());
        }
        self.count_failed_authentication(user, vec![event], context, now).await
    }

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
            required: self.mfa.settings.policy == MfaPolicy::Required,
            factors: views,
            backup_codes_remaining: self.backup_codes_remaining(&user.id).await?,
        })
    }

    /// A user's MFA state, for an admin.
    pub async fn admin_user_mfa(
        &self,
        _admin: &crate::admin_keys::AdminPrincipal,
        user_id: &str,
    ) -> Result<MfaOverview, DomainError> {
        let user = self.store.user_by_id(user_id).await?.ok_or(DomainError::NotFound)?;
        self.mfa_overview(&user).await
    }

    /// Removes every factor, backup code and trusted device of a user (they lost their
    /// phone). Audited, and the user gets a notice.
    pub async fn admin_reset_mfa(
        &self,
        admin: &crate::admin_keys::AdminPrincipal,
        user_id: &str,
        context: &RequestContext,
    ) -> Result<(), DomainError> {
        let user = self.store.user_by_id(user_id).await?.ok_or(DomainError::NotFound)?;
        let now = self.clock.now();
        let kinds: Vec<String> =
            self.confirmed_factors(&user.id).await?.into_iter().map(|factor| factor.kind).collect();
        let mut effects = Effects::events(vec![
            AuditEvent::new("admin.mfa_reset", admin.actor(), context, now)
                .target("user", &user.id)
                .metadata(serde_json::json!({ "factors": kinds })),
        ]);
        effects.outbox.extend(self.mfa_changed_notice(
            &user,
            "every factor removed by an administrator",
            context,
        )?);
        self.store.reset_mfa(&user.id, now, &effects).await?;
        self.notifier.wake();
        Ok(())
    }

    /// The signed-in user's MFA state.
    pub async fn my_mfa(&self, principal: &Principal) -> Result<MfaOverview, DomainError> {
        self.mfa_overview(&principal.user).await
    }
}

/// `method` of a request, or a validation error naming it.
pub(crate) fn parse_method(text: &str) -> Result<MfaMethod, DomainError> {
    MfaMethod::parse(text).ok_or_else(|| {
        DomainError::Validation(vec![FieldIssue::new(
            "method",
            "invalid_method",
            "Use one of totp, backup_code, email, sms.",
        )])
    })
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
