//! Sign-in with email or username and password, lockout, and the start of a session.

use crate::audit::{Actor, AuditEvent, RequestContext};
use crate::error::DomainError;
use crate::notify::Effects;
use crate::sessions::{RefreshTokenRecord, SessionRecord};
use crate::users::{SignInFacts, UserLookup, UserRecord};

use super::mfa::{self, SignInOutcome};
use super::{AccountService, Email, Tokens, Username};

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

impl AccountService {
    /// The account the identifier names, with what the rest of the sign-in needs to know
    /// about it (second factors, this device), read in one query.
    async fn find_by_identifier(
        &self,
        identifier: &Identifier,
        context: &RequestContext,
    ) -> Result<Option<(UserRecord, SignInFacts)>, DomainError> {
        let device =
            self.notifier.device_digest(context.user_agent.as_deref(), context.ip.as_deref());
        // An identifier that cannot be valid cannot name an account: treat it as unknown (same
        // answer, same work) rather than as a validation error that would answer faster.
        Ok(match identifier {
            Identifier::Email(text) => match Email::parse(text, "email") {
                Ok(email) => {
                    let digest = self.email_digest(&email);
                    self.store.user_for_sign_in(UserLookup::EmailDigest(&digest), &device).await?
                }
                Err(_) => None,
            },
            Identifier::Username(text) => match Username::parse(text, "username") {
                Ok(username) => {
                    self.store
                        .user_for_sign_in(UserLookup::Username(username.as_str()), &device)
                        .await?
                }
                Err(_) => None,
            },
        })
    }

    /// Signs in. Unknown accounts and wrong passwords both answer `invalid_credentials` after
    /// one Argon2id computation. A locked, suspended or (when required) unverified account is
    /// only reported when the password was right, so these answers reveal nothing to someone
    /// guessing. Failures while locked still count but never extend the lock.
    ///
    /// A user with a second factor gets a challenge instead of tokens (unless the request
    /// comes from a device they trusted); see `mfa`.
    pub async fn sign_in(
        &self,
        request: SignIn,
        context: &RequestContext,
    ) -> Result<SignInOutcome, DomainError> {
        let found = self.find_by_identifier(&request.identifier, context).await?;
        let now = self.clock.now();
        let Some((user, facts, hash)) = found
            .and_then(|(user, facts)| user.password_hash.clone().map(|hash| (user, facts, hash)))
        else {
            self.hashing.dummy_verify(request.password.into()).await;
            let event = AuditEvent::new("user.sign_in_failed", &Actor::Anonymous, context, now)
                .metadata(serde_json::json!({ "reason": "unknown_account" }));
            self.store.append_audit_events(&[event]).await?;
            return Err(DomainError::InvalidCredentials);
        };
        let password_ok =
            match self.hashing.verify(request.password.clone().into(), hash.clone()).await {
                Ok(matches) => matches,
                Err(error) => {
                    tracing::error!(user_id = %user.id, %error, "stored password hash is unusable");
                    false
                }
            };
        let actor = Actor::User(user.id.clone());
        let failed = |reason: &str| {
            AuditEvent::new("user.sign_in_failed", &actor, context, now)
                .target("user", &user.id)
                .metadata(serde_json::json!({ "reason": reason }))
        };
        if !password_ok {
            self.count_failed_authentication(&user, vec![failed("wrong_password")], context, now)
                .await?;
            return Err(DomainError::InvalidCredentials);
        }
        if let Some(until) = user.locked_until.filter(|until| *until > now) {
            self.store.append_audit_events(&[failed("locked")]).await?;
            return Err(DomainError::AccountLocked { retry_after: until - now });
        }
        if user.suspended_at.is_some() {
            self.store.append_audit_events(&[failed("suspended")]).await?;
            return Err(DomainError::AccountSuspended);
        }
        if self.settings.require_email_verification && user.email_verified_at.is_none() {
            self.store.append_audit_events(&[failed("email_not_verified")]).await?;
            return Err(DomainError::EmailNotVerified);
        }
        // Parameters or pepper changed since this hash was made: upgrade it now that we hold
        // the password.
        let rehashed = if self.hashing.needs_rehash(&hash) {
            Some(self.hashing.hash(request.password.into()).await?)
        } else {
            None
        };
        self.after_first_factor(
            user,
            rehashed,
            mfa::PASSWORD,
            request.trusted_device.as_deref(),
            context,
            Effects::default(),
            Some(facts),
        )
        .await
    }

    /// Counts one failed authentication (wrong password, wrong second factor) towards the
    /// lockout, with `events`; locks the account when the count reaches the threshold. A
    /// failure while locked counts but never extends the lock.
    pub(super) async fn count_failed_authentication(
        &self,
        user: &UserRecord,
        mut events: Vec<AuditEvent>,
        context: &RequestContext,
        now: i64,
    ) -> Result<(), DomainError> {
        let locked = user.locked_until.is_some_and(|until| until > now);
        let lock_until = now + self.settings.lockout_duration_seconds;
        let reaches_threshold = !locked
            && self.settings.lockout_threshold > 0
            && user.failed_sign_in_attempts + 1 >= self.settings.lockout_threshold;
        if reaches_threshold {
            events.push(
                AuditEvent::new("user.locked", &Actor::User(user.id.clone()), context, now)
                    .target("user", &user.id)
                    .metadata(serde_json::json!({ "until": lock_until })),
            );
        }
        let threshold = if self.settings.lockout_threshold > 0 {
            self.settings.lockout_threshold
        } else {
            i64::MAX
        };
        self.store.record_failed_sign_in(&user.id, now, threshold, lock_until, &events).await?;
        Ok(())
    }

    /// Opens a session for a user who just proved who they are, resetting failure counters.
    pub(super) async fn start_session(
        &self,
        user: UserRecord,
        rehashed_password: Option<String>,
        context: &RequestContext,
    ) -> Result<Tokens, DomainError> {
        self.start_session_with(
            user,
            rehashed_password,
            context,
            Effects::default(),
            "password",
            &["pwd"],
            None,
        )
        .await
    }

    /// [`Self::start_session`] with more effects in the same transaction (a spent magic-link
    /// token, a trusted device). Remembers the device, and sends a notice when it is new to
    /// the user. `amr` (RFC 8176) says how the user authenticated. `facts`, when the sign-in
    /// read them with the account, spare reading the known devices again.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn start_session_with(
        &self,
        mut user: UserRecord,
        rehashed_password: Option<String>,
        context: &RequestContext,
        mut effects: Effects,
        method: &str,
        amr: &[&str],
        facts: Option<SignInFacts>,
    ) -> Result<Tokens, DomainError> {
        let now = self.clock.now();
        let settings = self.tokens.settings();
        let session = SessionRecord {
            id: gatehouse_crypto::new_id("ses"),
            user_id: user.id.clone(),
            user_agent: context.user_agent.clone(),
            ip: context.ip.clone(),
            created_at: now,
            last_used_at: now,
            expires_at: now + settings.session_max_lifetime_seconds,
            revoked_at: None,
            revoked_reason: None,
            client_id: None,
            scope: None,
            auth_time: Some(now),
            nonce: None,
            amr: Some(amr.join(" ")),
        };
        let (refresh_token, token_digest) = self.tokens.new_refresh_token();
        let refresh = RefreshTokenRecord {
            token_digest,
            session_id: session.id.clone(),
            created_at: now,
            expires_at: (now + settings.refresh_token_ttl_seconds).min(session.expires_at),
            rotated_at: None,
        };
        user.failed_sign_in_attempts = 0;
        user.locked_until = None;
        user.last_sign_in_at = Some(now);
        if let Some(hash) = rehashed_password {
            user.password_hash = Some(hash);
        }
        let (notice, device) = self.new_device_check(&user, context, now, facts).await?;
        let notified = notice.is_some();
        effects.outbox.extend(notice);
        effects.remember_device = Some((user.id.clone(), device, now));
        effects.events.push(
            AuditEvent::new("user.sign_in_succeeded", &Actor::User(user.id.clone()), context, now)
                .target("session", &session.id)
                .metadata(serde_json::json!({
                    "method": method, "amr": amr, "new_device": notified
                })),
        );
        self.store
            .start_session_with(&session, Some(&refresh), &user, &effects)
            .await
            .map_err(super::spent_from_conflict)?;
        if !effects.outbox.is_empty() {
            self.notifier.wake();
        }
        let access_token = self.tokens.issue_access_token(&session).await?;
        Ok(Tokens {
            access_token,
            token_type: "Bearer",
            expires_in: settings.access_token_ttl_seconds,
            refresh_token,
            session_id: session.id,
            user: self.view(&user)?,
        })
    }
}
