//! Multi-factor authentication as stored: second factors, backup codes, one-time codes sent by
//! email or SMS, sign-in challenges and trusted browsers. The ports are in `mfa::store`, the
//! rules in the `mfa` service.

use serde::{Deserialize, Serialize};

use crate::sessions::record::{Amr, SignInMethod};

/// Field-cipher purpose of TOTP secrets (AD = factor id).
pub const TOTP_SECRET_PURPOSE: &str = "mfa-totp";
/// Field-cipher purpose of phone numbers (AD = factor id).
pub const PHONE_PURPOSE: &str = "mfa-phone";
/// Digest purpose of backup codes, one-time codes, challenge and device tokens (each input is
/// prefixed with what it is, so digests of different things never meet).
pub const MFA_DIGEST_PURPOSE: &str = "mfa";

/// A kind of second factor a user can enrol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FactorKind {
    Totp,
    Email,
    Sms,
}

impl FactorKind {
    pub const ALL: [FactorKind; 3] = [FactorKind::Totp, FactorKind::Email, FactorKind::Sms];

    pub fn as_str(self) -> &'static str {
        match self {
            FactorKind::Totp => "totp",
            FactorKind::Email => "email",
            FactorKind::Sms => "sms",
        }
    }

    pub fn parse(text: &str) -> Option<FactorKind> {
        FactorKind::ALL.into_iter().find(|kind| kind.as_str() == text)
    }

    /// What happened to a factor, in words for the notice email, in `locale` (`fr`, else
    /// English).
    pub fn change_words(self, added: bool, locale: Option<&str>) -> &'static str {
        let french = locale == Some("fr");
        match (self, added, french) {
            (FactorKind::Totp, true, false) => "authenticator app added",
            (FactorKind::Totp, false, false) => "authenticator app removed",
            (FactorKind::Email, true, false) => "codes by email added",
            (FactorKind::Email, false, false) => "codes by email removed",
            (FactorKind::Sms, true, false) => "codes by text message added",
            (FactorKind::Sms, false, false) => "codes by text message removed",
            (FactorKind::Totp, true, true) => "application d’authentification ajoutée",
            (FactorKind::Totp, false, true) => "application d’authentification retirée",
            (FactorKind::Email, true, true) => "codes par e-mail ajoutés",
            (FactorKind::Email, false, true) => "codes par e-mail retirés",
            (FactorKind::Sms, true, true) => "codes par SMS ajoutés",
            (FactorKind::Sms, false, true) => "codes par SMS retirés",
        }
    }
}

/// How a second factor is proven at `POST /v1/auth/mfa/verify` (`method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MfaMethod {
    Totp,
    BackupCode,
    Email,
    Sms,
}

impl MfaMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            MfaMethod::Totp => "totp",
            MfaMethod::BackupCode => "backup_code",
            MfaMethod::Email => "email",
            MfaMethod::Sms => "sms",
        }
    }

    pub fn parse(text: &str) -> Option<MfaMethod> {
        [MfaMethod::Totp, MfaMethod::BackupCode, MfaMethod::Email, MfaMethod::Sms]
            .into_iter()
            .find(|method| method.as_str() == text)
    }

    /// The RFC 8176 `amr` value this method adds.
    pub fn amr(self) -> Amr {
        match self {
            MfaMethod::Totp | MfaMethod::BackupCode | MfaMethod::Email => Amr::Otp,
            MfaMethod::Sms => Amr::Sms,
        }
    }

    /// The factor a code of this method is sent through (`None`: nothing is sent).
    pub fn channel(self) -> Option<FactorKind> {
        match self {
            MfaMethod::Email => Some(FactorKind::Email),
            MfaMethod::Sms => Some(FactorKind::Sms),
            MfaMethod::Totp | MfaMethod::BackupCode => None,
        }
    }
}

/// One row of `mfa_factors`. Times are Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfaFactorRecord {
    pub id: String,
    pub user_id: String,
    pub kind: String,
    pub secret_ciphertext: Option<Vec<u8>>,
    pub phone_ciphertext: Option<Vec<u8>>,
    pub confirmed_at: Option<i64>,
    pub last_used_step: Option<i64>,
    pub last_used_at: Option<i64>,
    pub created_at: i64,
}

/// One row of `mfa_backup_codes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupCodeRecord {
    pub user_id: String,
    pub code_digest: Vec<u8>,
    pub created_at: i64,
    pub used_at: Option<i64>,
}

/// What a one-time code proves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodePurpose {
    SignIn,
    Enrol,
    Reauthenticate,
}

impl CodePurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            CodePurpose::SignIn => "sign_in",
            CodePurpose::Enrol => "enrol",
            CodePurpose::Reauthenticate => "reauthenticate",
        }
    }
}

/// One row of `mfa_codes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfaCodeRecord {
    pub id: String,
    pub user_id: String,
    pub channel: String,
    pub purpose: String,
    pub code_digest: Vec<u8>,
    pub attempts: i64,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

/// One row of `trusted_devices`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrustedBrowserRecord {
    pub id: String,
    pub user_id: String,
    #[serde(skip)]
    pub token_digest: Vec<u8>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// What a challenge lets its holder do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChallengeKind {
    /// Prove a second factor (`POST /v1/auth/mfa/verify`).
    Verify,
    /// MFA is required and the user has no factor: enrol one first.
    Enrol,
}

/// A sign-in between its first and second factor. Kept in Redis when configured, else in the
/// database; only the token's keyed digest is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MfaChallengeRecord {
    #[serde(skip)]
    pub token_digest: Vec<u8>,
    pub user_id: String,
    /// The first factor the challenge follows (its `amr` is stored beside it).
    pub first_method: SignInMethod,
    pub kind: ChallengeKind,
    pub created_at: i64,
    pub expires_at: i64,
    /// Wrong second factors so far.
    #[serde(skip)]
    pub failures: i64,
}
