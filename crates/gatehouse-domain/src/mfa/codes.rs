//! One-time codes by email and SMS: six digits, five minutes, five tries, stored as keyed
//! digests and sent through the outbox; and the email and SMS factors that use them (phone
//! numbers validated as E.164 and sealed at rest).

use std::collections::BTreeMap;

use gatehouse_crypto::totp::random_digits;

use crate::audit::AuditEvent;
use crate::error::{DomainError, FieldIssue, MfaProblem};
use crate::mfa::record::{CodePurpose, FactorKind, MfaCodeRecord, MfaFactorRecord};
use crate::notify::{OutboxRecord, SmsPayload};
use crate::principal::{Actor, Principal, RequestContext};
use crate::unit_of_work::UnitOfWork;
use crate::users::record::UserRecord;

use super::step_up::Reauthentication;
use super::{MfaService, parse_method};

/// How long an email/SMS code lives.
pub const CODE_TTL_SECONDS: i64 = 300;
/// Tries one code allows.
pub const CODE_MAX_ATTEMPTS: i64 = 5;
/// A new code on the same channel for the same purpose waits this long after the last one
/// (SMS costs money and floods phones; the per-IP limit alone lets a distributed caller on).
pub const CODE_RESEND_SECONDS: i64 = 30;
const CODE_DIGITS: usize = 6;

/// A phone number in E.164 form (`+` and 8 to 15 digits, no leading zero), from what a person
/// typed: spaces, dots, dashes and parentheses are dropped.
pub fn parse_phone_number(typed: &str) -> Result<String, DomainError> {
    let compact: String = typed
        .chars()
        .filter(|character| !matches!(character, ' ' | '.' | '-' | '(' | ')'))
        .collect();
    let digits = compact.strip_prefix('+').unwrap_or("");
    let valid = (8..=15).contains(&digits.len())
        && digits.bytes().all(|byte| byte.is_ascii_digit())
        && !digits.starts_with('0');
    if !valid {
        return Err(DomainError::Validation(vec![FieldIssue::new(
            "phone_number",
            "invalid_phone_number",
            "Give the number in international form, such as +33612345678.",
        )]));
    }
    Ok(compact)
}

impl MfaService {
    pub(crate) fn open_phone(
        &self,
        factor: &MfaFactorRecord,
    ) -> Result<Option<String>, DomainError> {
        let Some(sealed) = &factor.phone_ciphertext else { return Ok(None) };
        let plain = self.phone_cipher.open(factor.id.as_bytes(), sealed)?;
        String::from_utf8(plain.to_vec())
            .map(Some)
            .map_err(|_| DomainError::Internal(format!("phone of {} is not UTF-8", factor.id)))
    }

    fn code_digest(&self, code_id: &str, code: &str) -> Vec<u8> {
        self.mfa_digest("code", &format!("{code_id}:{code}"))
    }

    /// The message that carries a code, or `MethodUnavailable` when the channel cannot send.
    fn code_message(
        &self,
        user: &UserRecord,
        kind: FactorKind,
        phone: Option<&str>,
        code: &str,
        context: &RequestContext,
        now: i64,
    ) -> Result<OutboxRecord, DomainError> {
        let unavailable = DomainError::Mfa(MfaProblem::MethodUnavailable);
        match kind {
            FactorKind::Email => {
                let minutes = (CODE_TTL_SECONDS / 60).to_string();
                let values = BTreeMap::from([
                    ("code".to_owned(), code.to_owned()),
                    ("minutes".to_owned(), minutes),
                ]);
                self.notices.email_to(user, "mfa_code", values, context, now)?.ok_or(unavailable)
            }
            FactorKind::Sms => {
                let phone = phone.filter(|_| self.settings.sms_enabled).ok_or(unavailable)?;
                let product = &self.settings.totp_issuer;
                let minutes = CODE_TTL_SECONDS / 60;
                let body = match context.locale.as_deref() {
                    Some("fr") => format!(
                        "Votre code {product} : {code}. Il expire dans {minutes} minutes. Ne le communiquez à personne."
                    ),
                    _ => format!(
                        "Your {product} code: {code}. It expires in {minutes} minutes. Do not share it."
                    ),
                };
                let payload = SmsPayload { to: phone.to_owned(), body };
                self.notifier.sms("mfa_code", &payload, now)
            }
            FactorKind::Totp => Err(unavailable),
        }
    }

    /// Makes a new code for `user` on `kind` (replacing earlier ones of the same purpose) and
    /// writes it with its message and an audit event.
    async fn send_code(
        &self,
        user: &UserRecord,
        kind: FactorKind,
        purpose: CodePurpose,
        phone: Option<&str>,
        context: &RequestContext,
    ) -> Result<(), DomainError> {
        let now = self.clock.now();
        let previous = self.store.mfa_code(&user.id, kind.as_str(), purpose.as_str()).await?;
        if previous.is_some_and(|previous| previous.created_at + CODE_RESEND_SECONDS > now) {
            return Err(DomainError::Mfa(MfaProblem::ResendTooSoon));
        }
        let code = random_digits(CODE_DIGITS);
        let id = gatehouse_crypto::new_id("mfc");
        let message = self.code_message(user, kind, phone, &code, context, now)?;
        let record = MfaCodeRecord {
            code_digest: self.code_digest(&id, &code),
            id,
            user_id: user.id.clone(),
            channel: kind.as_str().to_owned(),
            purpose: purpose.as_str().to_owned(),
            attempts: 0,
            created_at: now,
            expires_at: now + CODE_TTL_SECONDS,
            used_at: None,
        };
        let event = AuditEvent::new("mfa.code_sent", &Actor::User(user.id.clone()), context, now)
            .target("user", &user.id)
            .metadata(serde_json::json!({ "channel": kind.as_str(), "purpose": purpose.as_str() }));
        let work =
            UnitOfWork { events: vec![event], outbox: vec![message], ..UnitOfWork::default() };
        self.store.put_mfa_code(&record, &work).await?;
        self.notices.wake();
        Ok(())
    }

    /// Checks a code sent on `kind` for `purpose`: expired, exhausted, wrong and used codes
    /// each answer their own problem; a right one is spent.
    pub(crate) async fn check_code(
        &self,
        user_id: &str,
        kind: FactorKind,
        purpose: CodePurpose,
        code: &str,
    ) -> Result<(), DomainError> {
        let invalid = DomainError::Mfa(MfaProblem::InvalidCode);
        let record = self
            .store
            .mfa_code(user_id, kind.as_str(), purpose.as_str())
            .await?
            .ok_or(DomainError::Mfa(MfaProblem::InvalidCode))?;
        let now = self.clock.now();
        if record.used_at.is_some() {
            return Err(invalid);
        }
        if record.attempts >= CODE_MAX_ATTEMPTS {
            return Err(DomainError::Mfa(MfaProblem::AttemptsExhausted));
        }
        if record.expires_at <= now {
            return Err(DomainError::Mfa(MfaProblem::CodeExpired));
        }
        if self.store.count_mfa_code_attempt(&record.id).await? > CODE_MAX_ATTEMPTS {
            return Err(DomainError::Mfa(MfaProblem::AttemptsExhausted));
        }
        let typed = code.trim();
        if typed.len() != CODE_DIGITS
            || !self
                .digester
                .verify(format!("code:{}:{typed}", record.id).as_bytes(), &record.code_digest)
        {
            return Err(invalid);
        }
        if !self.store.spend_mfa_code(&record.id, now).await? {
            return Err(invalid);
        }
        Ok(())
    }

    /// Sends a code for `purpose` to the user's confirmed factor of `kind`.
    pub(super) async fn send_code_to_factor(
        &self,
        user: &UserRecord,
        kind: FactorKind,
        purpose: CodePurpose,
        context: &RequestContext,
    ) -> Result<(), DomainError> {
        let factors = self.confirmed_factors(&user.id).await?;
        let factor = factors
            .iter()
            .find(|factor| factor.kind == kind.as_str())
            .ok_or(DomainError::Mfa(MfaProblem::MethodUnavailable))?;
        let phone = self.open_phone(factor)?;
        self.send_code(user, kind, purpose, phone.as_deref(), context).await
    }

    /// Sends a code to the signed-in user for a step-up (`POST /v1/auth/reauthenticate/send-code`).
    pub async fn send_reauthentication_code(
        &self,
        principal: &Principal,
        method: &str,
        context: &RequestContext,
    ) -> Result<(), DomainError> {
        let method = parse_method(method)?;
        let kind = method.channel().ok_or(DomainError::Mfa(MfaProblem::MethodUnavailable))?;
        self.send_code_to_factor(&principal.user, kind, CodePurpose::Reauthenticate, context).await
    }

    /// Whether codes by email can be offered to this user (email is on and they have an
    /// address).
    pub fn email_codes_available(&self, principal: &Principal) -> bool {
        self.notices.email_enabled() && principal.user.email_ciphertext.is_some()
    }

    /// Starts enrolling codes by email (to the account's address) or SMS (to `phone_number`):
    /// a pending factor and a code to confirm it with.
    pub async fn begin_code_factor(
        &self,
        principal: &Principal,
        kind: FactorKind,
        phone_number: Option<&str>,
        proof: Option<Reauthentication>,
        context: &RequestContext,
    ) -> Result<(), DomainError> {
        let user = &principal.user;
        let phone = match kind {
            FactorKind::Sms => {
                if !self.settings.sms_enabled {
                    return Err(DomainError::Mfa(MfaProblem::MethodUnavailable));
                }
                Some(parse_phone_number(phone_number.unwrap_or(""))?)
            }
            FactorKind::Email => {
                if !self.notices.email_enabled() || user.email_ciphertext.is_none() {
                    return Err(DomainError::Mfa(MfaProblem::MethodUnavailable));
                }
                None
            }
            FactorKind::Totp => return Err(DomainError::Mfa(MfaProblem::MethodUnavailable)),
        };
        let factors = self.confirmed_factors(&user.id).await?;
        if factors.iter().any(|factor| factor.kind == kind.as_str()) {
            return Err(DomainError::Mfa(MfaProblem::AlreadyEnabled));
        }
        self.require_presence(principal, proof, context).await?;
        let now = self.clock.now();
        let id = gatehouse_crypto::new_id("mfa");
        let phone_ciphertext = match &phone {
            Some(phone) => Some(self.phone_cipher.seal(id.as_bytes(), phone.as_bytes())?),
            None => None,
        };
        let factor = MfaFactorRecord {
            id,
            user_id: user.id.clone(),
            kind: kind.as_str().to_owned(),
            secret_ciphertext: None,
            phone_ciphertext,
            confirmed_at: None,
            last_used_step: None,
            last_used_at: None,
            created_at: now,
        };
        let event =
            AuditEvent::new("mfa.enrolment_started", &Actor::User(user.id.clone()), context, now)
                .target("mfa_factor", &factor.id)
                .metadata(serde_json::json!({ "kind": kind.as_str() }));
        self.put_pending_factor(&factor, event).await?;
        self.send_code(user, kind, CodePurpose::Enrol, phone.as_deref(), context).await
    }

    /// Confirms an email or SMS factor with the code sent to it. Answers backup codes when the
    /// user had none (shown once).
    pub async fn confirm_code_factor(
        &self,
        principal: &Principal,
        kind: FactorKind,
        code: &str,
        context: &RequestContext,
    ) -> Result<Vec<String>, DomainError> {
        let user = &principal.user;
        let factors = self.store.mfa_factors(&user.id).await?;
        let factor = factors
            .into_iter()
            .find(|factor| factor.kind == kind.as_str())
            .ok_or(DomainError::Mfa(MfaProblem::EnrolmentNotStarted))?;
        if factor.confirmed_at.is_some() {
            return Err(DomainError::Mfa(MfaProblem::AlreadyEnabled));
        }
        let now = self.clock.now();
        let actor = Actor::User(user.id.clone());
        if let Err(error) = self.check_code(&user.id, kind, CodePurpose::Enrol, code).await {
            if let DomainError::Mfa(problem) = &error {
                let event = AuditEvent::new("mfa.enrolment_failed", &actor, context, now)
                    .target("mfa_factor", &factor.id)
                    .metadata(
                        serde_json::json!({ "kind": kind.as_str(), "reason": problem.code() }),
                    );
                self.audit.append_audit_events(&[event]).await?;
            }
            return Err(error);
        }
        let mut work = UnitOfWork::events(vec![
            AuditEvent::new("user.mfa_changed", &actor, context, now)
                .target("mfa_factor", &factor.id)
                .metadata(serde_json::json!({ "kind": kind.as_str(), "change": "added" })),
        ]);
        let (codes, records) = if self.backup_codes_remaining(&user.id).await? == 0 {
            let (codes, records) = self.new_backup_codes(&user.id, now);
            work.events.push(
                AuditEvent::new("mfa.backup_codes_generated", &actor, context, now)
                    .target("user", &user.id)
                    .metadata(serde_json::json!({ "count": codes.len() })),
            );
            (codes, Some(records))
        } else {
            (Vec::new(), None)
        };
        let change = kind.change_words(true, context.locale.as_deref());
        work.outbox.extend(self.notices.mfa_changed(user, change, context)?);
        if !self.store.confirm_factor(&factor.id, now, None, records.as_deref(), &work).await? {
            return Err(DomainError::Mfa(MfaProblem::EnrolmentNotStarted));
        }
        self.notices.wake();
        Ok(codes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers_are_e164() {
        let check = |typed: &str, expected: Option<&str>| {
            assert_eq!(parse_phone_number(typed).ok().as_deref(), expected, "{typed}");
        };
        check("+33612345678", Some("+33612345678"));
        check("+1 (415) 555-0100", Some("+14155550100"));
        check("+44.20.7946.0958", Some("+442079460958"));
        check("0612345678", None);
        check("+0612345678", None);
        check("+1234567", None);
        check("+1234567890123456", None);
        check("+33 6 12 34 56 7a", None);
        check("", None);
    }
}
