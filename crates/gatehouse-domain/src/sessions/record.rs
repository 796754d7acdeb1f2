//! Server-side sessions and their refresh tokens (the token family), as stored.

use serde::Serialize;

/// One sign-in on one device. Times are Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionRecord {
    pub id: String,
    pub user_id: String,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub created_at: i64,
    pub last_used_at: i64,
    /// Absolute end: refreshing never extends a session past it.
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    pub revoked_reason: Option<String>,
    /// The OAuth client this session was granted to; `None` for first-party sessions.
    pub client_id: Option<String>,
    /// The scope granted to that client (space-separated).
    pub scope: Option<String>,
    /// When the user authenticated (OIDC `auth_time`), for ID tokens issued on refresh.
    pub auth_time: Option<i64>,
    /// The OIDC `nonce` of the authorization request, repeated in refreshed ID tokens.
    pub nonce: Option<String>,
    /// RFC 8176 methods of the last authentication, space-separated (`pwd otp mfa`).
    pub amr: Option<String>,
    /// The active organization (`POST /v1/me/organization`): its claims go into access tokens.
    pub organization_id: Option<String>,
    /// An impersonation session: the admin acting as the user (their actor id, `usr_…` or an
    /// admin key's id). Its tokens carry it as `act.sub`; steps that need the user's own
    /// presence are refused.
    pub impersonator: Option<String>,
    /// The DPoP key (thumbprint) the session's refresh tokens are bound to: each refresh must
    /// carry a proof of it, and its access tokens are bound to it (`cnf.jkt`).
    pub dpop_jkt: Option<String>,
    /// The resources (RFC 8707) an OAuth grant was made for: its access tokens are each for
    /// one of them.
    pub resources: Vec<String>,
}

impl SessionRecord {
    /// `DPoP` for a session bound to a DPoP key, else `Bearer` (RFC 9449 §5).
    pub fn token_type(&self) -> &'static str {
        if self.dpop_jkt.is_some() { "DPoP" } else { "Bearer" }
    }

    /// A new session of `user_id`, opened now from `device` (user agent, ip), authenticated
    /// now, lasting `lifetime_seconds`; first-party (no client, scope or nonce) until the caller
    /// says otherwise.
    pub fn open(
        user_id: &str,
        device: (Option<String>, Option<String>),
        now: i64,
        lifetime_seconds: i64,
    ) -> Self {
        let (user_agent, ip) = device;
        SessionRecord {
            id: gatehouse_crypto::new_id("ses"),
            user_id: user_id.to_owned(),
            user_agent,
            ip,
            created_at: now,
            last_used_at: now,
            expires_at: now + lifetime_seconds,
            revoked_at: None,
            revoked_reason: None,
            client_id: None,
            scope: None,
            auth_time: Some(now),
            nonce: None,
            amr: None,
            organization_id: None,
            impersonator: None,
            dpop_jkt: None,
            resources: Vec::new(),
        }
    }

    pub fn is_active(&self, now: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at > now
    }

    /// The `amr` values as a list (`["pwd"]` for sessions older than the column).
    pub fn amr_values(&self) -> Vec<String> {
        match self.amr.as_deref() {
            Some(text) if !text.is_empty() => text.split(' ').map(str::to_owned).collect(),
            _ => vec![Amr::Pwd.as_str().to_owned()],
        }
    }
}

/// A refresh token as stored: only its keyed digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshTokenRecord {
    pub token_digest: Vec<u8>,
    pub session_id: String,
    pub created_at: i64,
    pub expires_at: i64,
    /// Set once the token has been exchanged; presenting it again is reuse.
    pub rotated_at: Option<i64>,
}

/// A refresh, as the store carries it out: spend the token with digest `presented` and store
/// its successor (`successor`, a keyed digest) in one transaction, only while [`Self::allows`]
/// holds for the token and its session as stored. Conditions and write go to the database
/// together (one round trip on PostgreSQL), so nothing can change between the check and the
/// spend.
#[derive(Debug, Clone, Copy)]
pub struct RefreshRotation<'a> {
    pub presented: &'a [u8],
    pub successor: &'a [u8],
    pub now: i64,
    /// The successor's lifetime; it never outlives the session.
    pub ttl_seconds: i64,
    /// The session's `last_used_at` becomes `now` when older than this (written at most once
    /// an interval, so a rotation rarely touches the cached session row).
    pub touch_if_used_before: i64,
    /// The client presenting the token (`None`: a first-party refresh): it must be the
    /// session's own.
    pub client_id: Option<&'a str>,
    /// The DPoP key proved with the request: required when the session is bound to one.
    pub dpop_jkt: Option<&'a str>,
}

impl RefreshRotation<'_> {
    /// Whether the token found may be spent: not spent before, not expired, its session
    /// active and its user not suspended, presented by the session's own client, with a proof
    /// of the session's DPoP key if it has one. (PostgreSQL evaluates the same conditions in
    /// SQL.)
    pub fn allows(&self, found: &RotationOutcome) -> bool {
        let RotationOutcome { token, session, user_suspended, .. } = found;
        token.rotated_at.is_none()
            && token.expires_at > self.now
            && session.is_active(self.now)
            && !user_suspended
            && session.client_id.as_deref() == self.client_id
            && session.dpop_jkt.as_deref().is_none_or(|bound| self.dpop_jkt == Some(bound))
    }

    /// The successor's record, in `session`.
    pub fn successor_record(&self, session: &SessionRecord) -> RefreshTokenRecord {
        RefreshTokenRecord {
            token_digest: self.successor.to_vec(),
            session_id: session.id.clone(),
            created_at: self.now,
            expires_at: (self.now + self.ttl_seconds).min(session.expires_at),
            rotated_at: None,
        }
    }
}

/// What the store found for a [`RefreshRotation`]: the token, its session and whether its
/// user is suspended, as they were before it, and whether the rotation happened.
#[derive(Debug, Clone)]
pub struct RotationOutcome {
    pub token: RefreshTokenRecord,
    pub session: SessionRecord,
    pub user_suspended: bool,
    pub rotated: bool,
}

/// Why a session ended (`sessions.revoked_reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeReason {
    SignedOut,
    RevokedByUser,
    RefreshTokenReuse,
    PasswordChanged,
    PasswordReset,
    UserSuspended,
    RevokedByAdmin,
    RevokedByClient,
    AuthorizationCodeReuse,
    /// The mailbox of an unverified account was proven without its password.
    MailboxClaimed,
}

impl RevokeReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RevokeReason::SignedOut => "signed_out",
            RevokeReason::RevokedByUser => "revoked_by_user",
            RevokeReason::RefreshTokenReuse => "refresh_token_reuse",
            RevokeReason::PasswordChanged => "password_changed",
            RevokeReason::PasswordReset => "password_reset",
            RevokeReason::UserSuspended => "user_suspended",
            RevokeReason::RevokedByAdmin => "revoked_by_admin",
            RevokeReason::RevokedByClient => "revoked_by_client",
            RevokeReason::AuthorizationCodeReuse => "authorization_code_reuse",
            RevokeReason::MailboxClaimed => "mailbox_claimed",
        }
    }
}

/// An authentication method reference (RFC 8176), as sessions, access tokens and ID tokens
/// carry it (`amr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Amr {
    /// A password.
    Pwd,
    /// Proof of a mailbox (a magic link).
    Email,
    /// A one-time password: TOTP, a backup code, a code by email.
    Otp,
    /// A code by text message.
    Sms,
    /// More than one factor.
    Mfa,
    /// Proof of a device-bound key (a passkey that is not synced).
    Hwk,
    /// Proof of a software key (a synced passkey).
    Swk,
    /// A sign-in through an upstream identity provider (federated).
    Fed,
}

impl Amr {
    pub fn as_str(self) -> &'static str {
        match self {
            Amr::Pwd => "pwd",
            Amr::Email => "email",
            Amr::Otp => "otp",
            Amr::Sms => "sms",
            Amr::Mfa => "mfa",
            Amr::Hwk => "hwk",
            Amr::Swk => "swk",
            Amr::Fed => "fed",
        }
    }

    /// The space-separated form a session stores.
    pub fn join(values: &[Amr]) -> String {
        values.iter().map(|value| value.as_str()).collect::<Vec<_>>().join(" ")
    }
}

/// How a user proved who they are first (the audit trail's `method`; a second factor adds to
/// the `amr`, not to this).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignInMethod {
    Password,
    MagicLink,
    Passkey,
    /// Through an upstream identity provider.
    Sso,
}

impl SignInMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            SignInMethod::Password => "password",
            SignInMethod::MagicLink => "magic_link",
            SignInMethod::Passkey => "passkey",
            SignInMethod::Sso => "sso",
        }
    }

    /// The RFC 8176 `amr` value of this first factor.
    pub fn amr(self) -> Amr {
        match self {
            SignInMethod::Password => Amr::Pwd,
            SignInMethod::MagicLink => Amr::Email,
            // The kind of key is the credential's (`swk` when synced); sign-in says which.
            SignInMethod::Passkey => Amr::Hwk,
            SignInMethod::Sso => Amr::Fed,
        }
    }

    pub fn parse(text: &str) -> Option<SignInMethod> {
        [SignInMethod::Password, SignInMethod::MagicLink, SignInMethod::Passkey, SignInMethod::Sso]
            .into_iter()
            .find(|method| method.as_str() == text)
    }
}
