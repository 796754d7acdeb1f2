//! The flows that travel through an email link: email verification (and its resend), password
//! reset, magic-link sign-in, and an email change (the new address proven by a link sent to
//! it; the current address told).
//!
//! Security rules:
//! - Tokens are 256-bit, stored as keyed digests, single-use, and short-lived (24 h, 1 h,
//!   15 min). The token is spent in the transaction that applies its effect.
//! - `forgot_password` and `request_magic_link` answer the same for every address and do the
//!   same work (a token, a sealed message, one write) whether or not an account exists; only
//!   real accounts get a message.
//! - A token only counts for the address it was sent to: after an email change, older links
//!   stop working.
//! - A reset (like a password change) spends every outstanding reset and magic link of the
//!   account, so an older link cannot set the password again or sign in.
//! - Pre-account takeover: someone may sign up with an address that is not theirs, set a
//!   password and a second factor, and wait for the owner to use the account. So when an
//!   address never verified is first proven by a magic link or a reset link (the mailbox
//!   without the password), what was set before goes in that same transaction: every earlier
//!   session, every second factor and trusted browser, and the password (a reset replaces it);
//!   the owner is told by email. A verification link does not do this: it is sent to the
//!   address at sign-up, so whoever follows it has proven the mailbox *and* set the password.

pub mod record;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::audit::AuditEvent;
use crate::clock::Clock;
use crate::error::{DomainError, Feature, FieldIssue, OneTimeTokenProblem, Taken};
use crate::notify::{EmailPayload, Notices, Notifier};
use crate::passwords::PasswordService;
use crate::principal::{Actor, Principal, RequestContext};
use crate::sessions::record::{RevokeReason, SignInMethod};
use crate::sign_in::{FirstFactor, SignInOutcome, SignInService};
use crate::unit_of_work::{AccountLinks, MailboxClaim, SpentToken, UnitOfWork, UnitOfWorkStore};
use crate::users::directory::UserDirectory;
use crate::users::record::{PasswordChange, UserChange, UserRecord};
use crate::users::store::UserStore;

pub use record::{OneTimeTokenRecord, OneTimeTokenStore, TokenPurpose};

/// Tokens are `random_token()`s: 43 base64url characters.
fn well_formed(token: &str) -> bool {
    token.len() == 43 && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn problem(kind: OneTimeTokenProblem) -> DomainError {
    DomainError::OneTimeToken(kind)
}

pub struct EmailLinkService {
    pub(crate) tokens: Arc<dyn OneTimeTokenStore>,
    pub(crate) users: Arc<dyn UserStore>,
    pub(crate) work: Arc<dyn UnitOfWorkStore>,
    pub(crate) notifier: Arc<Notifier>,
    pub(crate) notices: Arc<Notices>,
    pub(crate) directory: Arc<UserDirectory>,
    pub(crate) passwords: Arc<PasswordService>,
    pub(crate) sign_in: Arc<SignInService>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) magic_link_enabled: bool,
}

impl EmailLinkService {
    /// Whether magic links work.
    pub fn magic_link_enabled(&self) -> bool {
        self.magic_link_enabled
    }

    /// The unspent, unexpired token of `purpose` and its user.
    async fn usable_token(
        &self,
        token: &str,
        purpose: TokenPurpose,
    ) -> Result<(OneTimeTokenRecord, UserRecord), DomainError> {
        let token = token.trim();
        if !well_formed(token) {
            return Err(problem(OneTimeTokenProblem::Invalid));
        }
        let digest = self.notifier.token_digest(token);
        let Some(record) = self.tokens.one_time_token(&digest).await? else {
            return Err(problem(OneTimeTokenProblem::Invalid));
        };
        if record.purpose != purpose.as_str() {
            return Err(problem(OneTimeTokenProblem::Invalid));
        }
        if record.used_at.is_some() {
            return Err(problem(OneTimeTokenProblem::Used));
        }
        if record.expires_at <= self.clock.now() {
            return Err(problem(OneTimeTokenProblem::Expired));
        }
        let Some(user) = self.users.user_by_id(&record.user_id).await? else {
            return Err(problem(OneTimeTokenProblem::Invalid));
        };
        // Sent to an address the account no longer has.
        if record.email_digest.is_some() && record.email_digest != user.email_digest {
            return Err(problem(OneTimeTokenProblem::Invalid));
        }
        Ok((record, user))
    }

    /// Whether a token could be used for `purpose` now, without spending it (the pages behind
    /// the links check before showing their button).
    pub async fn check_one_time_token(
        &self,
        token: &str,
        purpose: TokenPurpose,
    ) -> Result<(), DomainError> {
        if purpose == TokenPurpose::MagicLink && !self.magic_link_enabled {
            return Err(DomainError::Disabled(Feature::MagicLink));
        }
        self.usable_token(token, purpose).await.map(|_| ())
    }

    /// Marks the email verified with a token from the verification email.
    pub async fn verify_email(
        &self,
        token: &str,
        context: &RequestContext,
    ) -> Result<(), DomainError> {
        let (record, user) = self.usable_token(token, TokenPurpose::VerifyEmail).await?;
        let now = self.clock.now();
        let change = UserChange {
            email_verified_at: Some(user.email_verified_at.or(Some(now))),
            updated_at: Some(now),
            ..UserChange::default()
        };
        let event = AuditEvent::new("email.verified", &Actor::User(user.id.clone()), context, now)
            .target("user", &user.id);
        let work = UnitOfWork {
            events: vec![event],
            spend_token: Some(SpentToken { digest: record.token_digest, at: now }),
            ..UnitOfWork::default()
        };
        self.users
            .update_user(&user.id, &change, &work)
            .await
            .map_err(DomainError::from_spent_token)
    }

    /// Sends a new verification link to the signed-in user (nothing when already verified).
    pub async fn resend_verification(
        &self,
        principal: &Principal,
        context: &RequestContext,
    ) -> Result<(), DomainError> {
        let user = &principal.user;
        if user.email_verified_at.is_some() {
            return Ok(());
        }
        let now = self.clock.now();
        let (tokens, outbox) = self.notices.link_email(
            user,
            TokenPurpose::VerifyEmail,
            "/verify-email",
            &[],
            context,
            now,
        )?;
        let event =
            AuditEvent::new("user.verification_sent", &Actor::User(user.id.clone()), context, now)
                .target("user", &user.id);
        let work = UnitOfWork { events: vec![event], tokens, outbox, ..UnitOfWork::default() };
        self.work.commit(&work).await?;
        self.notices.wake();
        Ok(())
    }

    /// Starts changing the signed-in user's address to `new_email` (the caller has checked the
    /// user's presence): a link to the new address, which makes the change when followed
    /// (24 hours), and a notice to the current one. A taken address is `email_taken`; the
    /// account's own address is refused as unchanged.
    pub async fn request_email_change(
        &self,
        principal: &Principal,
        new_email: &str,
        context: &RequestContext,
    ) -> Result<(), DomainError> {
        let user = &principal.user;
        let email = crate::users::Email::parse(new_email, "email")
            .map_err(|issue| DomainError::Validation(vec![issue]))?;
        let digest = self.directory.email_digest(&email);
        if user.email_digest.as_deref() == Some(digest.as_slice()) {
            return Err(DomainError::Validation(vec![FieldIssue::new(
                "email",
                "unchanged",
                "This is already the account's address.",
            )]));
        }
        if !self.notifier.email_enabled() {
            return Err(DomainError::Validation(vec![FieldIssue::new(
                "email",
                "unavailable",
                "Email delivery is not configured: the new address cannot be confirmed.",
            )]));
        }
        if self.users.user_by_email_digest(&digest).await?.is_some() {
            return Err(DomainError::Taken(Taken::Email));
        }
        let now = self.clock.now();
        let mut token = self.notifier.new_token(
            TokenPurpose::ChangeEmail,
            &user.id,
            user.email_digest.clone(),
            now,
        );
        token.record.payload = Some(self.directory.seal_email(&user.id, &email)?);
        let link = self.notifier.link("/change-email", &[("token", token.secret.as_str())]);
        let minutes = (TokenPurpose::ChangeEmail.ttl_seconds() / 60).to_string();
        let mut outbox = Vec::new();
        outbox.extend(self.notices.email_to_address(
            user,
            email.as_str(),
            "change_email",
            BTreeMap::from([("link".to_owned(), link), ("minutes".to_owned(), minutes)]),
            context,
            now,
        )?);
        outbox.extend(self.notices.email_to(
            user,
            "email_change_requested",
            BTreeMap::from([
                ("ip".to_owned(), context.ip.clone().unwrap_or_default()),
                ("link".to_owned(), self.notifier.link("/account/profile", &[])),
            ]),
            context,
            now,
        )?);
        let event = AuditEvent::new(
            "user.email_change_requested",
            &Actor::User(user.id.clone()),
            context,
            now,
        )
        .target("user", &user.id);
        let work = UnitOfWork {
            events: vec![event],
            tokens: vec![token.record],
            outbox,
            ..UnitOfWork::default()
        };
        self.work.commit(&work).await?;
        self.notices.wake();
        Ok(())
    }

    /// Applies an email change with the token from the link sent to the new address: the
    /// address becomes the account's, verified. Links sent to the old address stop working.
    pub async fn change_email(
        &self,
        token: &str,
        context: &RequestContext,
    ) -> Result<(), DomainError> {
        let (record, user) = self.usable_token(token, TokenPurpose::ChangeEmail).await?;
        let sealed = record.payload.clone().ok_or(problem(OneTimeTokenProblem::Invalid))?;
        let probe = UserRecord { email_ciphertext: Some(sealed.clone()), ..user.clone() };
        let address =
            self.directory.open_email(&probe)?.ok_or(problem(OneTimeTokenProblem::Invalid))?;
        let email = crate::users::Email::parse(&address, "email")
            .map_err(|_| problem(OneTimeTokenProblem::Invalid))?;
        let digest = self.directory.email_digest(&email);
        if self.users.user_by_email_digest(&digest).await?.is_some_and(|other| other.id != user.id)
        {
            return Err(DomainError::Taken(Taken::Email));
        }
        let now = self.clock.now();
        let change = UserChange {
            email: Some((Some(sealed), Some(digest))),
            email_verified_at: Some(Some(now)),
            updated_at: Some(now),
            ..UserChange::default()
        };
        let actor = Actor::User(user.id.clone());
        let events = vec![
            AuditEvent::new("user.updated", &actor, context, now)
                .target("user", &user.id)
                .metadata(serde_json::json!({ "changed": ["email"] })),
            AuditEvent::new("email.verified", &actor, context, now).target("user", &user.id),
        ];
        let work = UnitOfWork {
            events,
            spend_token: Some(SpentToken { digest: record.token_digest, at: now }),
            ..UnitOfWork::default()
        };
        self.users.update_user(&user.id, &change, &work).await.map_err(|error| {
            match DomainError::from_spent_token(error) {
                DomainError::Store(error) => DomainError::from_taken(error),
                other => other,
            }
        })
    }

    /// The account an email link may be sent to: existing, not suspended, with that address.
    async fn link_recipient(&self, email: &str) -> Result<Option<UserRecord>, DomainError> {
        let user = self.directory.by_email(email).await?;
        Ok(user.filter(|user| user.suspended_at.is_none()))
    }

    /// Sends a link of `purpose` if the address belongs to an account, doing the same work
    /// when it does not: a token is made and sealed into a message either way, and one
    /// transaction is written (the audit event alone for an unknown address).
    async fn send_link_to_address(
        &self,
        email: &str,
        purpose: TokenPurpose,
        path: &str,
        extra_query: &[(&str, &str)],
        action: &str,
        context: &RequestContext,
    ) -> Result<(), DomainError> {
        let user = self.link_recipient(email).await?;
        let now = self.clock.now();
        let work = match &user {
            Some(user) => {
                let (tokens, outbox) =
                    self.notices.link_email(user, purpose, path, extra_query, context, now)?;
                let event = AuditEvent::new(action, &Actor::User(user.id.clone()), context, now)
                    .target("user", &user.id);
                UnitOfWork { events: vec![event], tokens, outbox, ..UnitOfWork::default() }
            }
            None => {
                // The same token and sealing work as for a real account, then dropped.
                let token = self.notifier.new_token(purpose, "usr_unknown", None, now);
                let mut query = vec![("token", token.secret.as_str())];
                query.extend_from_slice(extra_query);
                let payload = EmailPayload {
                    to: email.to_owned(),
                    locale: "en".into(),
                    template: purpose.as_str().to_owned(),
                    values: BTreeMap::from([("link".to_owned(), self.notifier.link(path, &query))]),
                };
                let _ = self.notifier.email(&payload, now)?;
                let event = AuditEvent::new(action, &Actor::Anonymous, context, now)
                    .metadata(serde_json::json!({ "reason": "unknown_account" }));
                UnitOfWork::events(vec![event])
            }
        };
        self.work.commit(&work).await?;
        if !work.outbox.is_empty() {
            self.notices.wake();
        }
        Ok(())
    }

    /// An admin sends a user the "forgot password" email (a reset link only the user receives;
    /// the admin never sees it), audited `user.password_reset_requested` with `by: admin`.
    /// An account without an address is `invalid`, a suspended one `account_suspended`.
    pub async fn admin_send_password_reset(
        &self,
        admin: &crate::principal::AdminPrincipal,
        user_id: &str,
        context: &RequestContext,
    ) -> Result<(), DomainError> {
        let user = self.users.user_by_id(user_id).await?.ok_or(DomainError::NotFound)?;
        if user.email_digest.is_none() {
            return Err(DomainError::Invalid("this account has no email address".into()));
        }
        if user.suspended_at.is_some() {
            return Err(DomainError::AccountSuspended);
        }
        let now = self.clock.now();
        let (tokens, outbox) = self.notices.link_email(
            &user,
            TokenPurpose::ResetPassword,
            "/reset-password",
            &[],
            context,
            now,
        )?;
        let event = AuditEvent::new("user.password_reset_requested", admin.actor(), context, now)
            .target("user", &user.id)
            .metadata(serde_json::json!({ "by": "admin" }));
        let work = UnitOfWork { events: vec![event], tokens, outbox, ..UnitOfWork::default() };
        self.work.commit(&work).await?;
        self.notices.wake();
        Ok(())
    }

    /// `POST /v1/auth/password/forgot`: a reset link to the address if it has an account. The
    /// answer and the work are the same for every address.
    pub async fn forgot_password(
        &self,
        email: &str,
        context: &RequestContext,
    ) -> Result<(), DomainError> {
        self.send_link_to_address(
            email,
            TokenPurpose::ResetPassword,
            "/reset-password",
            &[],
            "user.password_reset_requested",
            context,
        )
        .await
    }

    /// Sets a new password with a reset token: the policy and history apply, every session
    /// ends, the lock is lifted, the address counts as verified (the mail arrived), and a
    /// "password changed" notice is sent.
    pub async fn reset_password(
        &self,
        token: &str,
        new_password: &str,
        context: &RequestContext,
    ) -> Result<(), DomainError> {
        let (record, user) = self.usable_token(token, TokenPurpose::ResetPassword).await?;
        if user.suspended_at.is_some() {
            return Err(DomainError::AccountSuspended);
        }
        let (mut changed, history_size) =
            self.passwords.prepare_replacement(&user, new_password).await?;
        let now = changed.updated_at;
        changed.email_verified_at = changed.email_verified_at.or(Some(now));
        changed.failed_sign_in_attempts = 0;
        changed.locked_until = None;
        // Conditional on the hash the reset replaces: a change that won meanwhile stands.
        let password = PasswordChange {
            user_id: user.id.clone(),
            replaces: user.password_hash.clone(),
            new_hash: changed.password_hash.clone().unwrap_or_default(),
            at: now,
            by_reset: true,
        };
        let event =
            AuditEvent::new("user.password_changed", &Actor::User(user.id.clone()), context, now)
                .target("user", &user.id)
                .metadata(serde_json::json!({ "via": "reset" }));
        let mut work = UnitOfWork {
            events: vec![event],
            outbox: self.notices.password_changed(&changed, context, now)?.into_iter().collect(),
            spend_token: Some(SpentToken { digest: record.token_digest, at: now }),
            spend_account_links: Some(AccountLinks { user_id: user.id.clone(), at: now }),
            ..UnitOfWork::default()
        };
        if user.email_verified_at.is_none() {
            // The new password replaces the old one; the rest of the claim still applies.
            self.claim_mailbox(&changed, false, &mut work, context, now)?;
        }
        self.users
            .change_password(&password, history_size, None, RevokeReason::PasswordReset, &work)
            .await
            .map_err(DomainError::from_password_change)?;
        self.notices.wake();
        Ok(())
    }

    /// Adds the mailbox claim (see the module's rules) to `work`: what was set before this
    /// first proof of the address is undone in its transaction, audited, and the owner told.
    fn claim_mailbox(
        &self,
        user: &UserRecord,
        clear_password: bool,
        work: &mut UnitOfWork,
        context: &RequestContext,
        now: i64,
    ) -> Result<(), DomainError> {
        work.mailbox_claim = Some(MailboxClaim {
            user_id: user.id.clone(),
            at: now,
            keep_session: None,
            clear_password,
        });
        work.events.push(
            AuditEvent::new("user.mailbox_claimed", &Actor::User(user.id.clone()), context, now)
                .target("user", &user.id)
                .metadata(serde_json::json!({ "password_cleared": clear_password })),
        );
        work.outbox.extend(self.notices.account_claimed(user, context, now)?);
        Ok(())
    }

    /// `POST /v1/auth/magic-link`: a sign-in link to the address if it has an account (same
    /// answer and work for every address). `return_to` (already checked by the caller as a
    /// same-origin path) rides in the link for the hosted page.
    pub async fn request_magic_link(
        &self,
        email: &str,
        return_to: Option<&str>,
        context: &RequestContext,
    ) -> Result<(), DomainError> {
        if !self.magic_link_enabled {
            return Err(DomainError::Disabled(Feature::MagicLink));
        }
        let extra: Vec<(&str, &str)> =
            return_to.map(|path| ("return_to", path)).into_iter().collect();
        self.send_link_to_address(
            email,
            TokenPurpose::MagicLink,
            "/magic-link",
            &extra,
            "user.magic_link_requested",
            context,
        )
        .await
    }

    /// Signs in with a magic-link token. Following the link proves the mailbox, so the address
    /// becomes verified.
    pub async fn sign_in_with_magic_link(
        &self,
        token: &str,
        context: &RequestContext,
    ) -> Result<SignInOutcome, DomainError> {
        if !self.magic_link_enabled {
            return Err(DomainError::Disabled(Feature::MagicLink));
        }
        let (record, mut user) = self.usable_token(token, TokenPurpose::MagicLink).await?;
        if user.suspended_at.is_some() {
            return Err(DomainError::AccountSuspended);
        }
        let now = self.clock.now();
        let mut work = UnitOfWork {
            spend_token: Some(SpentToken { digest: record.token_digest, at: now }),
            ..UnitOfWork::default()
        };
        if user.email_verified_at.is_none() {
            user.email_verified_at = Some(now);
            work.events.push(
                AuditEvent::new("email.verified", &Actor::User(user.id.clone()), context, now)
                    .target("user", &user.id),
            );
            user.password_hash = None;
            user.password_changed_at = Some(now);
            self.claim_mailbox(&user, true, &mut work, context, now)?;
        }
        user.updated_at = now;
        let first = FirstFactor {
            user,
            rehashed_password: None,
            method: SignInMethod::MagicLink,
            trusted_browser: None,
            work,
            facts: None,
        };
        self.sign_in.after_first_factor(first, context).await
    }
}
