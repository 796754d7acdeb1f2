//! Sessions: opening one for a user who proved who they are, bearer authentication, refresh
//! with rotation and reuse detection, sign-out, and the user's own session list.
//!
//! Security rules, stated where they are enforced:
//! - Refresh tokens rotate on every use; a rotated token presented again revokes its session
//!   (the whole token family), and so does losing a concurrent race for the same token.
//! - A revoked session or a suspended user stops its tokens at once.
//! - Tokens issued to OAuth clients never unlock the first-party API.

pub mod record;
pub mod store;

use std::sync::Arc;

use serde::Serialize;

use crate::audit::AuditEvent;
use crate::clock::Clock;
use crate::error::DomainError;
use crate::notify::Notices;
use crate::principal::{Actor, Principal, RequestContext};
use crate::tokens::{REFRESH_TOKEN, TokenService};
use crate::unit_of_work::UnitOfWork;
use crate::users::directory::UserDirectory;
use crate::users::record::{SignInFacts, UserChange, UserRecord};
use crate::users::store::UserStore;
use crate::users::view::UserView;

pub use record::{
    Amr, RefreshRotation, RefreshTokenRecord, RevokeReason, RotationOutcome, SessionRecord,
    SignInMethod,
};
pub use store::SessionStore;

/// Longest refresh token we bother to look up (prefix + 43 base64url characters).
const MAX_REFRESH_TOKEN_LENGTH: usize = 64;

/// A signed-in session's credentials.
#[derive(Debug, Clone, Serialize)]
pub struct Tokens {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    pub refresh_token: String,
    pub session_id: String,
    pub user: UserView,
}

/// A session to open for a user who just proved who they are.
pub(crate) struct NewSession {
    pub user: UserRecord,
    /// The password re-hashed with today's parameters, when the sign-in upgraded it.
    pub rehashed_password: Option<String>,
    /// How the user authenticated, for the audit trail.
    pub method: SignInMethod,
    /// RFC 8176 `amr` values.
    pub amr: Vec<Amr>,
    /// What the sign-in read with the account (spares reading the known devices again).
    pub facts: Option<SignInFacts>,
    /// More to write in the same transaction (a spent magic-link token, a trusted browser).
    pub work: UnitOfWork,
}

/// How long an impersonation session may last, in minutes.
pub const IMPERSONATION_MINUTES: std::ops::RangeInclusive<i64> = 1..=60;

/// A session's `last_used_at` is written when it is at least this old (by a browser's page
/// view or a refresh-token rotation), so use does not cost a write each time.
pub const TOUCH_INTERVAL_SECONDS: i64 = 60;

pub struct SessionService {
    pub(crate) store: Arc<dyn SessionStore>,
    pub(crate) users: Arc<dyn UserStore>,
    pub(crate) tokens: Arc<TokenService>,
    pub(crate) directory: Arc<UserDirectory>,
    pub(crate) notices: Arc<Notices>,
    pub(crate) clock: Arc<dyn Clock>,
}

impl SessionService {
    /// Opens a session, resetting the failure counters: remembers the device and sends a
    /// notice when it is new to the user, writes it all in one transaction, and answers the
    /// token set.
    pub(crate) async fn start(
        &self,
        new: NewSession,
        context: &RequestContext,
    ) -> Result<Tokens, DomainError> {
        let NewSession { mut user, rehashed_password, method, amr, facts, mut work } = new;
        let now = self.clock.now();
        let settings = self.tokens.settings();
        let session = SessionRecord {
            amr: Some(Amr::join(&amr)),
            // Signed in with a DPoP proof: the session's tokens are bound to its key.
            dpop_jkt: context.dpop_jkt.clone(),
            ..SessionRecord::open(
                &user.id,
                context.device(),
                now,
                settings.session_max_lifetime_seconds,
            )
        };
        // A mailbox claim revokes every session but the one it opens.
        if let Some(claim) = work.mailbox_claim.as_mut() {
            claim.keep_session = Some(session.id.clone());
        }
        let (refresh_token, refresh) = self.first_refresh_token(&session, now);
        // Only the columns a sign-in changes: a suspension, role change or password reset made
        // since the user was read is never written back. The store writes them only while the
        // user is not suspended, in the session's transaction, and answers the row as it is.
        let change = UserChange {
            // A magic link proved the address (its first factor set it on this copy).
            email_verified_at: (method == SignInMethod::MagicLink)
                .then_some(user.email_verified_at)
                .flatten()
                .map(Some),
            rehashed_password,
            unlock: true,
            last_sign_in_at: Some(now),
            updated_at: Some(now),
            ..UserChange::default()
        };
        change.apply(&mut user);
        let (notice, check) = self.notices.new_device_check(&user, context, now, facts).await?;
        let notified = notice.is_some();
        work.outbox.extend(notice);
        work.known_device = Some(check.device);
        work.events.push(
            AuditEvent::new("session.created", &Actor::User(user.id.clone()), context, now)
                .target("session", &session.id)
                .metadata(serde_json::json!({
                    "method": method.as_str(), "amr": amr, "new_device": notified
                })),
        );
        let user = self
            .store
            .start_session(&session, Some(&refresh), &change, &work)
            .await
            .map_err(DomainError::from_session_start)?;
        if !work.outbox.is_empty() {
            self.notices.wake();
        }
        let access_token = self.tokens.issue_access_token(&session).await?;
        Ok(Tokens {
            access_token,
            token_type: session.token_type(),
            expires_in: settings.access_token_ttl_seconds,
            refresh_token,
            session_id: session.id,
            user: self.directory.view(&user)?,
        })
    }

    /// A new session's first refresh token: the configured lifetime, never past the session.
    fn first_refresh_token(
        &self,
        session: &SessionRecord,
        now: i64,
    ) -> (String, RefreshTokenRecord) {
        let (refresh_token, token_digest) = self.tokens.new_refresh_token();
        let ttl = self.tokens.settings().refresh_token_ttl_seconds;
        let record = RefreshTokenRecord {
            token_digest,
            session_id: session.id.clone(),
            created_at: now,
            expires_at: (now + ttl).min(session.expires_at),
            rotated_at: None,
        };
        (refresh_token, record)
    }

    /// Verifies a bearer access token and that its session and user are still in good
    /// standing (a revoked session or a suspended user stops its tokens at once here).
    pub async fn authenticate(&self, access_token: &str) -> Result<Principal, DomainError> {
        let claims = self.tokens.verify_access_token(access_token).await?;
        // Tokens issued to OAuth clients carry a scope for resource servers; they never
        // unlock the first-party API, which can change passwords and sessions.
        if claims.client_id.is_some() {
            return Err(DomainError::InvalidToken);
        }
        let now = self.clock.now();
        let sid = claims.sid.as_deref().ok_or(DomainError::InvalidToken)?;
        let (session, user) =
            self.store.session_with_user(sid).await?.ok_or(DomainError::InvalidToken)?;
        if !session.is_active(now) || session.user_id != claims.sub || session.client_id.is_some() {
            return Err(DomainError::InvalidToken);
        }
        if user.suspended_at.is_some() {
            return Err(DomainError::InvalidToken);
        }
        Ok(Principal { user, session })
    }

    /// The principal of a session named by id, for the hosted pages' browser cookie (whose
    /// signature the HTTP layer has already checked). Like [`Self::authenticate`], a revoked or
    /// expired session or a suspended user answers `invalid_token`.
    pub async fn principal_for_session(&self, session_id: &str) -> Result<Principal, DomainError> {
        let now = self.clock.now();
        let session = self.store.session(session_id).await?.ok_or(DomainError::InvalidToken)?;
        if !session.is_active(now) {
            return Err(DomainError::InvalidToken);
        }
        let user =
            self.users.user_by_id(&session.user_id).await?.ok_or(DomainError::InvalidToken)?;
        if user.suspended_at.is_some() {
            return Err(DomainError::InvalidToken);
        }
        Ok(Principal { user, session })
    }

    /// The principal of a hosted-page (browser) session: as [`Self::principal_for_session`],
    /// and refused (`InvalidToken`: sign in again) once it has gone unused for the idle
    /// timeout. Use slides the window; the session's `last_used_at` is written at most once a
    /// minute ([`TOUCH_INTERVAL_SECONDS`]), so page views do not each cost a write.
    pub async fn principal_for_browser_session(
        &self,
        session_id: &str,
    ) -> Result<Principal, DomainError> {
        let mut principal = self.principal_for_session(session_id).await?;
        let now = self.clock.now();
        let idle_timeout = self.tokens.settings().session_idle_timeout_seconds;
        if now - principal.session.last_used_at >= idle_timeout {
            return Err(DomainError::InvalidToken);
        }
        if now - principal.session.last_used_at >= TOUCH_INTERVAL_SECONDS {
            self.store.touch_session(session_id, now).await?;
            principal.session.last_used_at = now;
        }
        Ok(principal)
    }

    /// Exchanges a refresh token for a new token set. The presented token is spent; if it was
    /// already spent — or another request spends it at the same moment — the session (the
    /// whole token family) is revoked and recorded as a security event.
    pub async fn refresh(
        &self,
        refresh_token: &str,
        context: &RequestContext,
    ) -> Result<Tokens, DomainError> {
        let (session, user, new_token) = self
            .rotate_refresh_token(refresh_token, None, None, context.dpop_jkt.as_deref(), context)
            .await?;
        let access_token = self.tokens.issue_access_token(&session).await?;
        Ok(Tokens {
            access_token,
            token_type: session.token_type(),
            expires_in: self.tokens.access_token_lifetime(&session),
            refresh_token: new_token,
            session_id: session.id,
            user: self.directory.view(&user)?,
        })
    }

    /// [`Self::refresh`] for a caller who also holds the session's access token (switching
    /// the active organization answers a whole token set this way): a refresh token of another
    /// session is refused before it is spent, so a mistake never burns a token its holder
    /// still needs.
    pub async fn refresh_own(
        &self,
        session_id: &str,
        refresh_token: &str,
        context: &RequestContext,
    ) -> Result<Tokens, DomainError> {
        if !REFRESH_TOKEN.recognises(refresh_token)
            || refresh_token.len() > MAX_REFRESH_TOKEN_LENGTH
        {
            return Err(DomainError::InvalidGrant);
        }
        let digest = self.tokens.refresh_token_digest(refresh_token);
        match self.store.refresh_token(&digest).await? {
            // The caller presented this session's access token as its binding requires (a
            // proof of its DPoP key, if it has one): that proof stands for the refresh too.
            Some((_, session)) if session.id == session_id => {
                let context =
                    RequestContext { dpop_jkt: session.dpop_jkt.clone(), ..context.clone() };
                self.refresh(refresh_token, &context).await
            }
            _ => Err(DomainError::InvalidGrant),
        }
    }

    /// The rotation shared by the first-party API and the OAuth token endpoint: checks the
    /// token belongs to `client_id` (`None`: a first-party session), spends it, stores its
    /// successor, and answers the session, its user and the new token. The successor lives
    /// `ttl_seconds` (a client's own refresh lifetime, kept across every rotation) or the
    /// configured lifetime, never past the session.
    pub async fn rotate_refresh_token(
        &self,
        refresh_token: &str,
        client_id: Option<&str>,
        ttl_seconds: Option<i64>,
        dpop_jkt: Option<&str>,
        context: &RequestContext,
    ) -> Result<(SessionRecord, UserRecord, String), DomainError> {
        if !REFRESH_TOKEN.recognises(refresh_token)
            || refresh_token.len() > MAX_REFRESH_TOKEN_LENGTH
        {
            return Err(DomainError::InvalidGrant);
        }
        let digest = self.tokens.refresh_token_digest(refresh_token);
        let now = self.clock.now();
        let (new_token, new_digest) = self.tokens.new_refresh_token();
        let rotation = RefreshRotation {
            presented: &digest,
            successor: &new_digest,
            now,
            ttl_seconds: ttl_seconds.unwrap_or(self.tokens.settings().refresh_token_ttl_seconds),
            touch_if_used_before: now - TOUCH_INTERVAL_SECONDS,
            client_id,
            dpop_jkt,
        };
        // The checks and the spend in one step: the store spends the token only while they
        // hold, and answers the token and session as it found them.
        let found =
            self.store.rotate_refresh_token(&rotation).await?.ok_or(DomainError::InvalidGrant)?;
        let RotationOutcome { token: presented, session, rotated, .. } = &found;
        if !rotated {
            // A token presented by another client than its own is not evidence of theft by
            // that client's holder; refuse it without touching the family. Nor is a token
            // bound to a DPoP key presented without a proof of it: whoever holds a stolen
            // token but not the key can neither use nor burn it.
            if session.client_id.as_deref() != client_id
                || session.dpop_jkt.as_deref().is_some_and(|bound| dpop_jkt != Some(bound))
            {
                return Err(DomainError::InvalidGrant);
            }
            // Spent before (reuse), or by another request at this same moment (a token that
            // was allowed as found but not rotated): the family is revoked either way.
            if presented.rotated_at.is_some() || rotation.allows(&found) {
                self.revoke_for_reuse(session, context).await?;
            }
            return Err(DomainError::InvalidGrant);
        }
        let session = found.session;
        let user =
            self.users.user_by_id(&session.user_id).await?.ok_or(DomainError::InvalidGrant)?;
        if user.suspended_at.is_some() {
            // The rotation checked the stored row; this guards a cached one.
            return Err(DomainError::InvalidGrant);
        }
        Ok((session, user, new_token))
    }

    async fn revoke_for_reuse(
        &self,
        session: &SessionRecord,
        context: &RequestContext,
    ) -> Result<(), DomainError> {
        let now = self.clock.now();
        tracing::warn!(session_id = %session.id, user_id = %session.user_id, "refresh token reuse: revoking the session");
        let event = AuditEvent::new("session.revoked", &Actor::Anonymous, context, now)
            .target("session", &session.id)
            .metadata(serde_json::json!({
                "reason": RevokeReason::RefreshTokenReuse.as_str(), "user_id": session.user_id
            }));
        self.store
            .revoke_session(&session.id, now, RevokeReason::RefreshTokenReuse, &[event])
            .await?;
        Ok(())
    }

    /// Ends the principal's own session.
    pub async fn sign_out(
        &self,
        principal: &Principal,
        context: &RequestContext,
    ) -> Result<(), DomainError> {
        let now = self.clock.now();
        let event = AuditEvent::new(
            "session.revoked",
            &Actor::User(principal.user.id.clone()),
            context,
            now,
        )
        .target("session", &principal.session.id)
        .metadata(serde_json::json!({ "reason": RevokeReason::SignedOut.as_str() }));
        self.store
            .revoke_session(&principal.session.id, now, RevokeReason::SignedOut, &[event])
            .await?;
        Ok(())
    }

    /// The session rule of a sign-in in a browser: a browser holds one session. When a sign-in
    /// through the hosted pages opens a new session in a browser that was already signed in
    /// (`prompt=login`, or signing in again), the session its old cookie named ends, recorded
    /// as a sign-out: the new cookie replaces the old one, and a session nobody holds a cookie
    /// for would otherwise live on unseen until it expires. The same session is left alone. A
    /// failure to end it is logged, not answered: the new sign-in stands.
    pub async fn replace_browser_session(
        &self,
        previous: Option<&Principal>,
        new_session_id: &str,
        context: &RequestContext,
    ) {
        let Some(previous) = previous else { return };
        if previous.session.id == new_session_id {
            return;
        }
        if let Err(error) = self.sign_out(previous, context).await {
            tracing::warn!(%error, session_id = %previous.session.id, "could not end the replaced browser session");
        }
    }

    /// The user's active sessions, newest first.
    pub async fn sessions(&self, principal: &Principal) -> Result<Vec<SessionRecord>, DomainError> {
        self.sessions_of(&principal.user.id).await
    }

    /// A user's active sessions (also what an API key with `sessions:read` lists of its user's).
    pub async fn sessions_of(&self, user_id: &str) -> Result<Vec<SessionRecord>, DomainError> {
        Ok(self.store.active_sessions(user_id, self.clock.now()).await?)
    }

    /// Ends one active session of a user (`session_id`), or every one (`None`), for an admin:
    /// each with its `session.revoked` event (reason `revoked_by_admin`). Answers how many
    /// ended; a session that is not this user's active one is `not_found`.
    pub async fn admin_revoke_sessions(
        &self,
        admin: &crate::principal::AdminPrincipal,
        user_id: &str,
        session_id: Option<&str>,
        context: &RequestContext,
    ) -> Result<usize, DomainError> {
        let now = self.clock.now();
        let targets: Vec<String> = match session_id {
            Some(id) => {
                let session = self.store.session(id).await?.ok_or(DomainError::NotFound)?;
                if session.user_id != user_id || !session.is_active(now) {
                    return Err(DomainError::NotFound);
                }
                vec![session.id]
            }
            None => self
                .store
                .active_sessions(user_id, now)
                .await?
                .into_iter()
                .map(|session| session.id)
                .collect(),
        };
        let mut ended = 0;
        for id in targets {
            let event = AuditEvent::new("session.revoked", admin.actor(), context, now)
                .target("session", &id)
                .metadata(serde_json::json!({
                    "reason": RevokeReason::RevokedByAdmin.as_str(),
                    "user_id": user_id,
                }));
            if self.store.revoke_session(&id, now, RevokeReason::RevokedByAdmin, &[event]).await? {
                ended += 1;
            }
        }
        Ok(ended)
    }

    /// Opens an impersonation session: `admin` acts as the user for `minutes`
    /// ([`IMPERSONATION_MINUTES`]), for a stated `reason`, audited `user.impersonated`. Its
    /// tokens carry `act.sub` = the admin and never outlive it; it cannot prove the user's
    /// presence (no factor, password, email or deletion changes) nor consent for them. Refused
    /// for admins (no escalation through another admin's account), suspended accounts and the
    /// admin's own account.
    pub async fn impersonate(
        &self,
        admin: &crate::principal::AdminPrincipal,
        user_id: &str,
        reason: &str,
        minutes: i64,
        context: &RequestContext,
    ) -> Result<Tokens, DomainError> {
        let reason = reason.trim();
        let mut issues = Vec::new();
        if !(3..=500).contains(&reason.chars().count()) {
            issues.push(crate::error::FieldIssue::new(
                "reason",
                "invalid_length",
                "Say why, in 3 to 500 characters (it is kept in the audit log).",
            ));
        }
        if !IMPERSONATION_MINUTES.contains(&minutes) {
            issues.push(crate::error::FieldIssue::new(
                "minutes",
                "out_of_range",
                "Between 1 and 60 minutes.",
            ));
        }
        if !issues.is_empty() {
            return Err(DomainError::Validation(issues));
        }
        let user = self.users.user_by_id(user_id).await?.ok_or(DomainError::NotFound)?;
        let Some(impersonator) = admin.actor().id().map(str::to_owned) else {
            return Err(DomainError::Forbidden("impersonation needs an admin user or key".into()));
        };
        if user.system_role.is_some() || impersonator == user.id {
            return Err(DomainError::Forbidden(
                "administrators cannot be impersonated (nor can you impersonate yourself)".into(),
            ));
        }
        if user.suspended_at.is_some() {
            return Err(DomainError::AccountSuspended);
        }
        let now = self.clock.now();
        let session = SessionRecord {
            amr: Some("imp".into()),
            impersonator: Some(impersonator),
            ..SessionRecord::open(&user.id, context.device(), now, minutes * 60)
        };
        let (refresh_token, refresh) = self.first_refresh_token(&session, now);
        let mut work = UnitOfWork::default();
        work.events.push(
            AuditEvent::new("user.impersonated", admin.actor(), context, now)
                .target("user", &user.id)
                .metadata(serde_json::json!({
                    "reason": reason,
                    "session_id": session.id,
                    "expires_at": session.expires_at,
                })),
        );
        let user = self
            .store
            .start_session(&session, Some(&refresh), &UserChange::default(), &work)
            .await
            .map_err(DomainError::from_session_start)?;
        let access_token = self.tokens.issue_access_token(&session).await?;
        Ok(Tokens {
            access_token,
            token_type: session.token_type(),
            expires_in: self.tokens.access_token_lifetime(&session),
            refresh_token,
            session_id: session.id,
            user: self.directory.view(&user)?,
        })
    }

    /// Ends an impersonation session (the admin stopped, from the banner or the API), audited
    /// `session.revoked` (reason `signed_out`, `impersonation_ended: true`) by the
    /// impersonator. Only an impersonation session ends this way.
    pub async fn end_impersonation(
        &self,
        principal: &Principal,
        context: &RequestContext,
    ) -> Result<(), DomainError> {
        let session = &principal.session;
        let Some(impersonator) = &session.impersonator else {
            return Err(DomainError::NotFound);
        };
        let now = self.clock.now();
        let actor = if impersonator.starts_with("usr_") {
            Actor::User(impersonator.clone())
        } else {
            Actor::AdminKey(impersonator.clone())
        };
        let event = AuditEvent::new("session.revoked", &actor, context, now)
            .target("session", &session.id)
            .metadata(serde_json::json!({
                "reason": RevokeReason::SignedOut.as_str(),
                "user_id": principal.user.id,
                "impersonation_ended": true,
            }));
        self.store.revoke_session(&session.id, now, RevokeReason::SignedOut, &[event]).await?;
        Ok(())
    }

    /// Revokes one of the user's own sessions; another user's session is `not_found`.
    pub async fn revoke_own_session(
        &self,
        principal: &Principal,
        session_id: &str,
        context: &RequestContext,
    ) -> Result<(), DomainError> {
        let session = self.store.session(session_id).await?.ok_or(DomainError::NotFound)?;
        let now = self.clock.now();
        if session.user_id != principal.user.id || !session.is_active(now) {
            return Err(DomainError::NotFound);
        }
        let event = AuditEvent::new(
            "session.revoked",
            &Actor::User(principal.user.id.clone()),
            context,
            now,
        )
        .target("session", session_id)
        .metadata(serde_json::json!({ "reason": RevokeReason::RevokedByUser.as_str() }));
        self.store.revoke_session(session_id, now, RevokeReason::RevokedByUser, &[event]).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
