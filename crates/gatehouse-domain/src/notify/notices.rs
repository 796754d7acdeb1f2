//! `Notices`: the messages services send to a user — link emails with a fresh one-time token
//! and security notices — as sealed outbox rows for the caller to write in its unit of work.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::clock::Clock;
use crate::email_links::record::{OneTimeTokenRecord, TokenPurpose};
use crate::error::DomainError;
use crate::known_devices::{DeviceCheck, KnownDevices};
use crate::notify::outbox::OutboxRecord;
use crate::notify::{EmailPayload, Notifier};
use crate::principal::RequestContext;
use crate::users::directory::UserDirectory;
use crate::users::record::{SignInFacts, UserRecord};

/// The locales messages are written in; anything else falls back to English.
const MESSAGE_LOCALES: [&str; 2] = ["en", "fr"];

#[derive(Debug, Clone, Copy)]
pub struct NoticeSettings {
    /// Whether a sign-in from a device the user never used sends a notice.
    pub new_device_notice: bool,
}

pub struct Notices {
    notifier: Arc<Notifier>,
    directory: Arc<UserDirectory>,
    known_devices: Arc<KnownDevices>,
    clock: Arc<dyn Clock>,
    settings: NoticeSettings,
}

impl Notices {
    pub fn new(
        notifier: Arc<Notifier>,
        directory: Arc<UserDirectory>,
        known_devices: Arc<KnownDevices>,
        clock: Arc<dyn Clock>,
        settings: NoticeSettings,
    ) -> Self {
        Self { notifier, directory, known_devices, clock, settings }
    }

    /// Whether email can be sent at all (an email channel is configured).
    pub fn email_enabled(&self) -> bool {
        self.notifier.email_enabled()
    }

    /// Tells this process's outbox worker that rows were committed.
    pub fn wake(&self) {
        self.notifier.wake();
    }

    /// An email to `user` from `template`, or `None` when email is off or the user has no
    /// address. The language is the caller's (`Accept-Language`), else English.
    pub fn email_to(
        &self,
        user: &UserRecord,
        template: &str,
        mut values: BTreeMap<String, String>,
        context: &RequestContext,
        now: i64,
    ) -> Result<Option<OutboxRecord>, DomainError> {
        if !self.notifier.email_enabled() {
            return Ok(None);
        }
        let Some(to) = self.directory.open_email(user)? else { return Ok(None) };
        let locale = context
            .locale
            .as_deref()
            .filter(|locale| MESSAGE_LOCALES.contains(locale))
            .unwrap_or("en")
            .to_owned();
        let name = user.first_name.clone().or_else(|| user.username.clone()).unwrap_or_default();
        values.insert("name".into(), name);
        let payload = EmailPayload { to, locale, template: template.to_owned(), values };
        Ok(Some(self.notifier.email(&payload, now)?))
    }

    /// An email from `template` to `to`, an address that is not (yet) the user's own (the new
    /// address of an email change), in the caller's language; `None` when email is off.
    pub fn email_to_address(
        &self,
        user: &UserRecord,
        to: &str,
        template: &str,
        mut values: BTreeMap<String, String>,
        context: &RequestContext,
        now: i64,
    ) -> Result<Option<OutboxRecord>, DomainError> {
        if !self.notifier.email_enabled() {
            return Ok(None);
        }
        let locale = context
            .locale
            .as_deref()
            .filter(|locale| MESSAGE_LOCALES.contains(locale))
            .unwrap_or("en")
            .to_owned();
        let name = user.first_name.clone().or_else(|| user.username.clone()).unwrap_or_default();
        values.insert("name".into(), name);
        let payload =
            EmailPayload { to: to.to_owned(), locale, template: template.to_owned(), values };
        Ok(Some(self.notifier.email(&payload, now)?))
    }

    /// A link email with a fresh one-time token: the token row and the message, to write with
    /// the change that asked for them. Both empty when email is off.
    pub fn link_email(
        &self,
        user: &UserRecord,
        purpose: TokenPurpose,
        path: &str,
        extra_query: &[(&str, &str)],
        context: &RequestContext,
        now: i64,
    ) -> Result<(Vec<OneTimeTokenRecord>, Vec<OutboxRecord>), DomainError> {
        if !self.notifier.email_enabled() || user.email_ciphertext.is_none() {
            return Ok((Vec::new(), Vec::new()));
        }
        let token = self.notifier.new_token(purpose, &user.id, user.email_digest.clone(), now);
        let mut query = vec![("token", token.secret.as_str())];
        query.extend_from_slice(extra_query);
        let link = self.notifier.link(path, &query);
        let minutes = (purpose.ttl_seconds() / 60).to_string();
        let values = BTreeMap::from([("link".to_owned(), link), ("minutes".to_owned(), minutes)]);
        let outbox = self.email_to(user, purpose.as_str(), values, context, now)?;
        Ok((vec![token.record], outbox.into_iter().collect()))
    }

    /// The "your account was locked" notice, with a password-reset link (a fresh reset
    /// token): the token row and the message, for the failure that starts the lock to write
    /// in its transaction. Both empty when email is off or the user has no address.
    pub fn account_locked(
        &self,
        user: &UserRecord,
        lock_seconds: i64,
        context: &RequestContext,
        now: i64,
    ) -> Result<(Vec<OneTimeTokenRecord>, Vec<OutboxRecord>), DomainError> {
        if !self.notifier.email_enabled() || user.email_ciphertext.is_none() {
            return Ok((Vec::new(), Vec::new()));
        }
        let purpose = TokenPurpose::ResetPassword;
        let token = self.notifier.new_token(purpose, &user.id, user.email_digest.clone(), now);
        let link = self.notifier.link("/reset-password", &[("token", token.secret.as_str())]);
        let values = BTreeMap::from([
            ("link".to_owned(), link),
            ("minutes".to_owned(), (purpose.ttl_seconds() / 60).to_string()),
            ("lock_minutes".to_owned(), (lock_seconds.max(60) / 60).to_string()),
            ("ip".to_owned(), context.ip.clone().unwrap_or_default()),
        ]);
        let outbox = self.email_to(user, "account_locked", values, context, now)?;
        Ok((vec![token.record], outbox.into_iter().collect()))
    }

    /// The "your password was changed" notice.
    pub fn password_changed(
        &self,
        user: &UserRecord,
        context: &RequestContext,
        now: i64,
    ) -> Result<Option<OutboxRecord>, DomainError> {
        let values = BTreeMap::from([
            ("ip".to_owned(), context.ip.clone().unwrap_or_default()),
            ("link".to_owned(), self.notifier.link("/login", &[])),
        ]);
        self.email_to(user, "password_changed", values, context, now)
    }

    /// The "your account was deleted" notice (sent to the address the account had).
    pub fn account_deleted(
        &self,
        user: &UserRecord,
        context: &RequestContext,
        now: i64,
    ) -> Result<Option<OutboxRecord>, DomainError> {
        let values = BTreeMap::from([("ip".to_owned(), context.ip.clone().unwrap_or_default())]);
        self.email_to(user, "account_deleted", values, context, now)
    }

    /// The "your account will be deleted" notice of a scheduled deletion: the day it is due
    /// and the link (with the restore token) that keeps the account.
    pub fn account_deletion_scheduled(
        &self,
        user: &UserRecord,
        token: &str,
        due_at: i64,
        grace_days: i64,
        context: &RequestContext,
        now: i64,
    ) -> Result<Option<OutboxRecord>, DomainError> {
        let due = time::OffsetDateTime::from_unix_timestamp(due_at)
            .map(|at| at.date().to_string())
            .unwrap_or_default();
        let values = BTreeMap::from([
            ("ip".to_owned(), context.ip.clone().unwrap_or_default()),
            ("days".to_owned(), grace_days.to_string()),
            ("due".to_owned(), due),
            ("link".to_owned(), self.notifier.link("/restore-account", &[("token", token)])),
        ]);
        self.email_to(user, "account_deletion_scheduled", values, context, now)
    }

    /// The "you already have an account" email, sent when someone signs up with a registered
    /// address while verification is required: pointers to sign in and to reset the password.
    pub fn account_exists(
        &self,
        user: &UserRecord,
        context: &RequestContext,
        now: i64,
    ) -> Result<Option<OutboxRecord>, DomainError> {
        let values = BTreeMap::from([
            ("ip".to_owned(), context.ip.clone().unwrap_or_default()),
            ("link".to_owned(), self.notifier.link("/login", &[])),
            ("reset".to_owned(), self.notifier.link("/forgot-password", &[])),
        ]);
        self.email_to(user, "account_exists", values, context, now)
    }

    /// The notice that an account's address was proven for the first time without its
    /// password (a magic link or a reset link), so what was set before was removed: every
    /// earlier session, the second factors and (for a magic link) the password.
    pub fn account_claimed(
        &self,
        user: &UserRecord,
        context: &RequestContext,
        now: i64,
    ) -> Result<Option<OutboxRecord>, DomainError> {
        let values = BTreeMap::from([
            ("ip".to_owned(), context.ip.clone().unwrap_or_default()),
            ("link".to_owned(), self.notifier.link("/account", &[])),
        ]);
        self.email_to(user, "account_claimed", values, context, now)
    }

    /// The "passkeys changed" notice: `change` is `added`, `renamed`, `removed` or `flagged`
    /// (its words come from the message catalogue), `name` the passkey's.
    pub fn passkey_changed(
        &self,
        user: &UserRecord,
        change: &str,
        name: &str,
        context: &RequestContext,
    ) -> Result<Option<OutboxRecord>, DomainError> {
        let french = context.locale.as_deref() == Some("fr");
        let words = match (change, french) {
            ("added", true) => "ajoutée",
            ("renamed", true) => "renommée",
            ("removed", true) => "supprimée",
            (other, _) => other,
        };
        let values = BTreeMap::from([
            ("ip".to_owned(), context.ip.clone().unwrap_or_default()),
            ("change".to_owned(), words.to_owned()),
            ("passkey".to_owned(), name.to_owned()),
            ("link".to_owned(), self.notifier.link("/account", &[])),
        ]);
        let kind = if change == "flagged" { "passkey_flagged" } else { "passkey_changed" };
        self.email_to(user, kind, values, context, self.clock.now())
    }

    /// The "two-step verification changed" notice (`change` says what, in words:
    /// "authenticator app added", ...).
    pub fn mfa_changed(
        &self,
        user: &UserRecord,
        change: &str,
        context: &RequestContext,
    ) -> Result<Option<OutboxRecord>, DomainError> {
        let values = BTreeMap::from([
            ("ip".to_owned(), context.ip.clone().unwrap_or_default()),
            ("change".to_owned(), change.to_owned()),
            ("link".to_owned(), self.notifier.link("/account", &[])),
        ]);
        self.email_to(user, "mfa_changed", values, context, self.clock.now())
    }

    /// The device a sign-in comes from, to remember; and the "new sign-in" notice when the
    /// device is new to a user who has signed in before (and notices are on).
    pub async fn new_device_check(
        &self,
        user: &UserRecord,
        context: &RequestContext,
        now: i64,
        facts: Option<SignInFacts>,
    ) -> Result<(Option<OutboxRecord>, DeviceCheck), DomainError> {
        if !self.settings.new_device_notice {
            let device = self.known_devices.device(&user.id, context, now);
            return Ok((None, DeviceCheck { device, is_new: false }));
        }
        let check = self.known_devices.check(&user.id, context, now, facts).await?;
        if !check.is_new {
            return Ok((None, check));
        }
        let values = BTreeMap::from([
            ("ip".to_owned(), context.ip.clone().unwrap_or_default()),
            ("user_agent".to_owned(), context.user_agent.clone().unwrap_or_default()),
        ]);
        Ok((self.email_to(user, "new_sign_in", values, context, now)?, check))
    }
}
