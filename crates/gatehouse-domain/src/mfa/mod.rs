//! Multi-factor authentication: the sign-in challenge between the first and the second
//! factor, checking a second factor, and (in the submodules) TOTP and backup codes, codes by
//! email and SMS, trusted browsers and step-up re-authentication. The stored shapes are in
//! `record`, the ports in `store`.
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

mod challenge;
mod codes;
mod overview;
pub mod record;
mod step_up;
pub mod store;
mod totp;
mod trusted_browsers;

use std::sync::Arc;

use gatehouse_crypto::{Digester, FieldCipher, HashingPool};

use crate::audit::{AuditEvent, AuditStore};
use crate::clock::Clock;
use crate::error::{DomainError, FieldIssue, MfaProblem};
use crate::lockout::Lockout;
use crate::notify::{Notices, Notifier};
use crate::principal::{Actor, RequestContext};
use crate::sessions::store::SessionStore;
use crate::store::{Conflict, StoreError};
use crate::tokens::TokenService;
use crate::unit_of_work::{UnitOfWork, UnitOfWorkStore};
use crate::users::directory::UserDirectory;
use crate::users::record::UserRecord;
use crate::users::store::UserStore;

pub use challenge::CompletedChallenge;
pub use codes::{CODE_RESEND_SECONDS, parse_phone_number};
pub use record::{
    BackupCodeRecord, ChallengeKind, CodePurpose, FactorKind, MFA_DIGEST_PURPOSE,
    MfaChallengeRecord, MfaCodeRecord, MfaFactorRecord, MfaMethod, PHONE_PURPOSE,
    TOTP_SECRET_PURPOSE, TrustedBrowserRecord,
};
pub use step_up::{Reauthenticated, Reauthentication};
pub use store::{MfaChallengeStore, MfaStore, TrustedBrowserStore};
pub use totp::TotpEnrolment;
pub use trusted_browsers::TrustedBrowser;

/// How long a sign-in challenge lives.
pub const CHALLENGE_TTL_SECONDS: i64 = 300;
/// Answers one challenge takes (each counted before it is compared) before it is thrown
/// away (the account lockout usually comes first).
const CHALLENGE_MAX_ATTEMPTS: i64 = 10;
/// Challenge tokens (`mfa_token`): `gtm_…` with a checksum (`ghm_…` before).
const CHALLENGE_TOKEN: gatehouse_crypto::SecretKind =
    gatehouse_crypto::SecretKind { prefix: "gtm_", legacy_prefix: "ghm_" };
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
    /// How long a trusted browser skips the second factor.
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

/// Second factors (TOTP, codes by email and SMS, backup codes), sign-in challenges, trusted
/// browsers and step-up re-authentication.
pub struct MfaService {
    pub(crate) store: Arc<dyn MfaStore>,
    pub(crate) browsers: Arc<dyn TrustedBrowserStore>,
    pub(crate) challenges: Arc<dyn MfaChallengeStore>,
    pub(crate) sessions: Arc<dyn SessionStore>,
    pub(crate) users: Arc<dyn UserStore>,
    pub(crate) audit: Arc<dyn AuditStore>,
    pub(crate) work: Arc<dyn UnitOfWorkStore>,
    pub(crate) lockout: Arc<Lockout>,
    pub(crate) hashing: HashingPool,
    pub(crate) tokens: Arc<TokenService>,
    pub(crate) notices: Arc<Notices>,
    pub(crate) notifier: Arc<Notifier>,
    pub(crate) directory: Arc<UserDirectory>,
    /// Purpose [`TOTP_SECRET_PURPOSE`].
    pub(crate) totp_cipher: FieldCipher,
    /// Purpose [`PHONE_PURPOSE`].
    pub(crate) phone_cipher: FieldCipher,
    /// Purpose [`MFA_DIGEST_PURPOSE`].
    pub(crate) digester: Digester,
    /// Step-up with a passkey.
    pub(crate) passkeys: Arc<crate::passkeys::PasskeyService>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) settings: MfaSettings,
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

impl MfaService {
    pub fn settings(&self) -> &MfaSettings {
        &self.settings
    }

    fn mfa_digest(&self, what: &str, value: &str) -> Vec<u8> {
        self.digester.digest(format!("{what}:{value}").as_bytes()).to_vec()
    }

    /// Stores a pending factor with the audit event of its enrolment; a confirmed factor of
    /// that kind answers `mfa_already_enabled`.
    async fn put_pending_factor(
        &self,
        factor: &MfaFactorRecord,
        event: AuditEvent,
    ) -> Result<(), DomainError> {
        let work = UnitOfWork::events(vec![event]);
        self.store.put_pending_factor(factor, &work).await.map_err(|error| match error {
            StoreError::Conflict(Conflict::MfaFactorKind) => {
                DomainError::Mfa(MfaProblem::AlreadyEnabled)
            }
            other => other.into(),
        })
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
            .filter(|kind| *kind != FactorKind::Sms || self.settings.sms_enabled)
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

    /// A wrong second factor: the audit event (with its reason, `locked` when the account
    /// was locked and the code not compared) and one more failure towards the lockout.
    pub(crate) async fn record_second_factor_failure(
        &self,
        user: &UserRecord,
        method: MfaMethod,
        problem: MfaProblem,
        locked: bool,
        context: &RequestContext,
    ) -> Result<(), DomainError> {
        let now = self.clock.now();
        let reason = if locked { "locked" } else { problem.code() };
        let event =
            AuditEvent::new("mfa.verify_failed", &Actor::User(user.id.clone()), context, now)
                .target("user", &user.id)
                .metadata(serde_json::json!({ "method": method.as_str(), "reason": reason }));
        // Asking for an unavailable method is not a guess.
        if problem == MfaProblem::MethodUnavailable {
            self.audit.append_audit_events(&[event]).await?;
            return Ok(());
        }
        self.lockout.count_failure(user, vec![event], context, now).await
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
