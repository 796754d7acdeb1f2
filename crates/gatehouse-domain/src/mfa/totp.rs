//! TOTP factors (enrol, confirm, check with replay refusal) and backup codes (generated at
//! confirmation, shown once, single use, regenerable).

use gatehouse_crypto::TotpSecret;
use gatehouse_crypto::totp::{normalize_backup_code, random_backup_code};

use crate::audit::AuditEvent;
use crate::error::{DomainError, MfaProblem};
use crate::mfa::record::{BackupCodeRecord, FactorKind, MfaFactorRecord};
use crate::principal::{Actor, Principal, RequestContext};
use crate::unit_of_work::UnitOfWork;
use crate::users::record::UserRecord;

use super::step_up::Reauthentication;
use super::{MfaPolicy, MfaService};

/// How many backup codes a set has.
pub const BACKUP_CODE_COUNT: usize = 10;

/// What enrolment shows once: the secret, its `otpauth://` URI and that URI as a QR code.
#[derive(Clone)]
pub struct TotpEnrolment {
    pub secret: String,
    pub otpauth_uri: String,
    pub qr_svg: String,
}

impl std::fmt::Debug for TotpEnrolment {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("TotpEnrolment(..)")
    }
}

fn time_of(now: i64) -> u64 {
    u64::try_from(now).unwrap_or(0)
}

impl MfaService {
    fn open_totp_secret(&self, factor: &MfaFactorRecord) -> Result<TotpSecret, DomainError> {
        let sealed = factor.secret_ciphertext.as_deref().ok_or_else(|| {
            DomainError::Internal(format!("TOTP factor {} has no secret", factor.id))
        })?;
        let plain = self.totp_cipher.open(factor.id.as_bytes(), sealed)?;
        Ok(TotpSecret::from_bytes(plain.to_vec())?)
    }

    /// The label authenticator apps show under the issuer: the email, else the username.
    fn totp_account_name(&self, user: &UserRecord) -> Result<String, DomainError> {
        Ok(self
            .directory
            .open_email(user)?
            .or_else(|| user.username.clone())
            .unwrap_or(user.id.clone()))
    }

    /// Starts (or restarts) TOTP enrolment: a new secret, sealed, pending until a first valid
    /// code confirms it. A user who already has TOTP must remove it first. Like every change
    /// of factors, it needs a recent authentication or a proof (a stolen session must not be
    /// able to plant its own factor).
    pub async fn begin_totp(
        &self,
        principal: &Principal,
        proof: Option<Reauthentication>,
        context: &RequestContext,
    ) -> Result<TotpEnrolment, DomainError> {
        self.totp_enrolment_with_proof(principal, proof, true, context).await
    }

    /// The enrolment in progress (the same secret, for a page shown again after a wrong
    /// code), or a new one.
    pub async fn totp_enrolment_in_progress(
        &self,
        principal: &Principal,
        proof: Option<Reauthentication>,
        context: &RequestContext,
    ) -> Result<TotpEnrolment, DomainError> {
        self.totp_enrolment_with_proof(principal, proof, false, context).await
    }

    /// Past the presence check: a new enrolment (`restart`), or the one in progress.
    async fn totp_enrolment_with_proof(
        &self,
        principal: &Principal,
        proof: Option<Reauthentication>,
        restart: bool,
        context: &RequestContext,
    ) -> Result<TotpEnrolment, DomainError> {
        self.require_presence(principal, proof, context).await?;
        if restart {
            self.begin_totp_for(&principal.user, context).await
        } else {
            self.current_totp_enrolment_for(&principal.user, context).await
        }
    }

    pub(crate) async fn current_totp_enrolment_for(
        &self,
        user: &UserRecord,
        context: &RequestContext,
    ) -> Result<TotpEnrolment, DomainError> {
        let factors = self.store.mfa_factors(&user.id).await?;
        let pending = factors.iter().find(|factor| {
            factor.kind == FactorKind::Totp.as_str() && factor.confirmed_at.is_none()
        });
        match pending {
            Some(factor) => {
                let secret = self.open_totp_secret(factor)?;
                self.totp_enrolment(user, &secret)
            }
            None => self.begin_totp_for(user, context).await,
        }
    }

    fn totp_enrolment(
        &self,
        user: &UserRecord,
        secret: &TotpSecret,
    ) -> Result<TotpEnrolment, DomainError> {
        let otpauth_uri =
            secret.otpauth_uri(&self.settings.totp_issuer, &self.totp_account_name(user)?)?;
        let qr_svg = qr_svg(&otpauth_uri)?;
        Ok(TotpEnrolment { secret: secret.to_base32(), otpauth_uri, qr_svg })
    }

    pub(crate) async fn begin_totp_for(
        &self,
        user: &UserRecord,
        context: &RequestContext,
    ) -> Result<TotpEnrolment, DomainError> {
        let factors = self.confirmed_factors(&user.id).await?;
        if factors.iter().any(|factor| factor.kind == FactorKind::Totp.as_str()) {
            return Err(DomainError::Mfa(MfaProblem::AlreadyEnabled));
        }
        let now = self.clock.now();
        let secret = TotpSecret::generate();
        let id = gatehouse_crypto::new_id("mfa");
        let factor = MfaFactorRecord {
            secret_ciphertext: Some(self.totp_cipher.seal(id.as_bytes(), secret.as_bytes())?),
            id,
            user_id: user.id.clone(),
            kind: FactorKind::Totp.as_str().to_owned(),
            phone_ciphertext: None,
            confirmed_at: None,
            last_used_step: None,
            last_used_at: None,
            created_at: now,
        };
        let enrolment = self.totp_enrolment(user, &secret)?;
        let event =
            AuditEvent::new("mfa.enrolment_started", &Actor::User(user.id.clone()), context, now)
                .target("mfa_factor", &factor.id)
                .metadata(serde_json::json!({ "kind": "totp" }));
        self.put_pending_factor(&factor, event).await?;
        Ok(enrolment)
    }

    /// Confirms TOTP with a first valid code; answers a new set of backup codes (shown once).
    /// A notice goes to the user.
    pub async fn confirm_totp(
        &self,
        principal: &Principal,
        code: &str,
        context: &RequestContext,
    ) -> Result<Vec<String>, DomainError> {
        self.confirm_totp_for(&principal.user, code, context).await
    }

    pub(crate) async fn confirm_totp_for(
        &self,
        user: &UserRecord,
        code: &str,
        context: &RequestContext,
    ) -> Result<Vec<String>, DomainError> {
        let factors = self.store.mfa_factors(&user.id).await?;
        let factor = factors
            .into_iter()
            .find(|factor| factor.kind == FactorKind::Totp.as_str())
            .ok_or(DomainError::Mfa(MfaProblem::EnrolmentNotStarted))?;
        if factor.confirmed_at.is_some() {
            return Err(DomainError::Mfa(MfaProblem::AlreadyEnabled));
        }
        let now = self.clock.now();
        let secret = self.open_totp_secret(&factor)?;
        let Some(step) = secret.matching_step(code, time_of(now))? else {
            let event = AuditEvent::new(
                "mfa.enrolment_failed",
                &Actor::User(user.id.clone()),
                context,
                now,
            )
            .target("mfa_factor", &factor.id)
            .metadata(serde_json::json!({
                "kind": "totp", "reason": MfaProblem::InvalidCode.code()
            }));
            self.audit.append_audit_events(&[event]).await?;
            return Err(DomainError::Mfa(MfaProblem::InvalidCode));
        };
        let (codes, records) = self.new_backup_codes(&user.id, now);
        let actor = Actor::User(user.id.clone());
        let mut work = UnitOfWork::events(vec![
            AuditEvent::new("user.mfa_changed", &actor, context, now)
                .target("mfa_factor", &factor.id)
                .metadata(serde_json::json!({ "kind": "totp", "change": "added" })),
            AuditEvent::new("mfa.backup_codes_generated", &actor, context, now)
                .target("user", &user.id)
                .metadata(serde_json::json!({ "count": codes.len() })),
        ]);
        let change = FactorKind::Totp.change_words(true, context.locale.as_deref());
        work.outbox.extend(self.notices.mfa_changed(user, change, context)?);
        let step = i64::try_from(step).unwrap_or(i64::MAX);
        if !self.store.confirm_factor(&factor.id, now, Some(step), Some(&records), &work).await? {
            return Err(DomainError::Mfa(MfaProblem::EnrolmentNotStarted));
        }
        self.notices.wake();
        Ok(codes)
    }

    /// Checks a TOTP code of the user's confirmed factor: ±1 step, and a step is accepted once
    /// (a code of a step already used is `mfa_code_replayed`, not `invalid_mfa_code`).
    pub(crate) async fn check_totp(
        &self,
        user: &UserRecord,
        code: &str,
    ) -> Result<(), DomainError> {
        let factors = self.confirmed_factors(&user.id).await?;
        let factor = factors
            .iter()
            .find(|factor| factor.kind == FactorKind::Totp.as_str())
            .ok_or(DomainError::Mfa(MfaProblem::MethodUnavailable))?;
        let now = self.clock.now();
        let secret = self.open_totp_secret(factor)?;
        let step = secret
            .matching_step(code, time_of(now))?
            .ok_or(DomainError::Mfa(MfaProblem::InvalidCode))?;
        let step = i64::try_from(step).unwrap_or(i64::MAX);
        if factor.last_used_step.is_some_and(|last| last >= step)
            || !self.store.use_totp_step(&factor.id, step, now).await?
        {
            return Err(DomainError::Mfa(MfaProblem::CodeReplayed));
        }
        Ok(())
    }

    fn backup_code_digest(&self, user_id: &str, code: &str) -> Vec<u8> {
        self.mfa_digest("backup", &format!("{user_id}:{}", normalize_backup_code(code)))
    }

    /// A new set: the codes to show once, and their digests to store.
    pub(super) fn new_backup_codes(
        &self,
        user_id: &str,
        now: i64,
    ) -> (Vec<String>, Vec<BackupCodeRecord>) {
        let codes: Vec<String> = (0..BACKUP_CODE_COUNT).map(|_| random_backup_code()).collect();
        let records = codes
            .iter()
            .map(|code| BackupCodeRecord {
                user_id: user_id.to_owned(),
                code_digest: self.backup_code_digest(user_id, code),
                created_at: now,
                used_at: None,
            })
            .collect();
        (codes, records)
    }

    /// Spends a backup code. A code used before is `backup_code_used`.
    pub(crate) async fn check_backup_code(
        &self,
        user: &UserRecord,
        code: &str,
    ) -> Result<(), DomainError> {
        let typed = normalize_backup_code(code);
        if typed.is_empty() || typed.len() > 32 {
            return Err(DomainError::Mfa(MfaProblem::InvalidCode));
        }
        let digest = self.backup_code_digest(&user.id, &typed);
        let codes = self.store.backup_codes(&user.id).await?;
        let Some(stored) = codes
            .iter()
            .find(|stored| gatehouse_crypto::constant_time_eq(&stored.code_digest, &digest))
        else {
            return Err(DomainError::Mfa(MfaProblem::InvalidCode));
        };
        if stored.used_at.is_some()
            || !self.store.spend_backup_code(&user.id, &digest, self.clock.now()).await?
        {
            return Err(DomainError::Mfa(MfaProblem::BackupCodeUsed));
        }
        Ok(())
    }

    /// Replaces the user's backup codes with a new set (the old ones stop working at once).
    /// Needs a recent authentication or a proof: new codes are a way past the second factor.
    pub async fn regenerate_backup_codes(
        &self,
        principal: &Principal,
        proof: Option<Reauthentication>,
        context: &RequestContext,
    ) -> Result<Vec<String>, DomainError> {
        self.require_presence(principal, proof, context).await?;
        let user = &principal.user;
        if self.confirmed_factors(&user.id).await?.is_empty() {
            return Err(DomainError::Mfa(MfaProblem::NotEnabled));
        }
        let now = self.clock.now();
        let (codes, records) = self.new_backup_codes(&user.id, now);
        let event = AuditEvent::new(
            "mfa.backup_codes_generated",
            &Actor::User(user.id.clone()),
            context,
            now,
        )
        .target("user", &user.id)
        .metadata(serde_json::json!({ "count": codes.len(), "regenerated": true }));
        self.store
            .replace_backup_codes(&user.id, &records, &UnitOfWork::events(vec![event]))
            .await?;
        Ok(codes)
    }

    /// Removes one of the signed-in user's factors. Needs a recent authentication, or a proof
    /// given with the request (the password or a current second factor). When no factor is
    /// left, the backup codes go too.
    pub async fn remove_factor(
        &self,
        principal: &Principal,
        kind: FactorKind,
        proof: Option<Reauthentication>,
        context: &RequestContext,
    ) -> Result<(), DomainError> {
        self.require_presence(principal, proof, context).await?;
        let user = &principal.user;
        let factors = self.confirmed_factors(&user.id).await?;
        if !factors.iter().any(|factor| factor.kind == kind.as_str()) {
            return Err(DomainError::Mfa(MfaProblem::NotEnabled));
        }
        let last = factors.iter().all(|factor| factor.kind == kind.as_str());
        // With MFA required, the last factor stays (an admin can reset it; the user then
        // enrols again at the next sign-in).
        if last && self.settings.policy == MfaPolicy::Required {
            return Err(DomainError::Mfa(MfaProblem::EnrolmentRequired));
        }
        let now = self.clock.now();
        let mut work = UnitOfWork::events(vec![
            AuditEvent::new("user.mfa_changed", &Actor::User(user.id.clone()), context, now)
                .target("user", &user.id)
                .metadata(
                    serde_json::json!({ "kind": kind.as_str(), "change": "removed", "last": last }),
                ),
        ]);
        let change = kind.change_words(false, context.locale.as_deref());
        work.outbox.extend(self.notices.mfa_changed(user, change, context)?);
        if !self.store.delete_factor(&user.id, kind.as_str(), last, &work).await? {
            return Err(DomainError::Mfa(MfaProblem::NotEnabled));
        }
        self.notices.wake();
        Ok(())
    }
}

/// The URI as an SVG QR code (medium error correction, quiet zone included).
fn qr_svg(uri: &str) -> Result<String, DomainError> {
    let code = qrcode::QrCode::with_error_correction_level(uri.as_bytes(), qrcode::EcLevel::M)
        .map_err(|error| DomainError::Internal(format!("QR code: {error}")))?;
    Ok(code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build())
}
