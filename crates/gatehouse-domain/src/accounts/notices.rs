//! The messages the account service sends: verification links and security notices, as sealed
//! outbox rows that commit with the change they belong to.

use std::collections::BTreeMap;

use crate::audit::RequestContext;
use crate::error::DomainError;
use crate::notify::{EmailPayload, OneTimeTokenRecord, OutboxRecord, TokenPurpose};
use crate::users::{SignInFacts, UserRecord};

use super::AccountService;

/// The locales messages are written in; anything else falls back to English.
const MESSAGE_LOCALES: [&str; 2] = ["en", "fr"];

impl AccountService {
    /// An email to `user` from `template`, or `None` when email is off or the user has no
    /// address. The language is the caller's (`Accept-Language`), else English.
    pub(super) fn email_to(
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
        let Some(to) = self.open_email(user)? else { return Ok(None) };
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

    /// A link email with a fresh one-time token: the token row and the message, to write with
    /// the change that asked for them. Both empty when email is off.
    pub(super) fn link_email(
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

    /// The "your password was changed" notice.
    pub(super) fn password_changed_notice(
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

    /// The "two-step verification changed" notice, for the MFA service to write with its
    /// change (`change` says what, in words: "authenticator app added", ...).
    pub fn mfa_changed_notice(
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

    /// The "new sign-in" notice, when the device (user agent + IP class) is new to a user who
    /// has signed in before; and the device to remember either way.
    pub(super) async fn new_device_check(
        &self,
        user: &UserRecord,
        context: &RequestContext,
        now: i64,
        facts: Option<SignInFacts>,
    ) -> Result<(Option<OutboxRecord>, Vec<u8>), DomainError> {
        let digest =
            self.notifier.device_digest(context.user_agent.as_deref(), context.ip.as_deref());
        if !self.settings.new_device_notice {
            return Ok((None, digest));
        }
        let (any_known, this_known) = match facts {
            Some(facts) => (facts.any_known_device, facts.this_device_known),
            None => self.store.device_seen(&user.id, &digest).await?,
        };
        if !any_known || this_known {
            return Ok((None, digest));
        }
        let values = BTreeMap::from([
            ("ip".to_owned(), context.ip.clone().unwrap_or_default()),
            ("user_agent".to_owned(), context.user_agent.clone().unwrap_or_default()),
        ]);
        Ok((self.email_to(user, "new_sign_in", values, context, now)?, digest))
    }
}
