//! `Notifier`: makes one-time tokens and sealed outbox rows for the services that need to send
//! something, and wakes this process's worker when one is written.

use std::collections::BTreeMap;
use std::sync::Arc;

use gatehouse_crypto::{Digester, FieldCipher};
use serde::{Deserialize, Serialize};

use super::EMAIL_CHANNEL;
use super::outbox::{OutboxRecord, OutboxStatus};
use crate::email_links::record::{OneTimeTokenRecord, TokenPurpose};
use crate::error::DomainError;

/// What the email channel needs to render and send one message. Sealed at rest.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EmailPayload {
    pub to: String,
    /// `en` or `fr`.
    pub locale: String,
    /// The template (`verify_email`, `reset_password`, ...).
    pub template: String,
    /// Values the template prints (`link`, `name`, ...).
    pub values: BTreeMap<String, String>,
}

impl std::fmt::Debug for EmailPayload {
    /// Never prints the values (they hold links with tokens) or the address.
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("EmailPayload")
            .field("locale", &self.locale)
            .field("template", &self.template)
            .finish_non_exhaustive()
    }
}

/// One text message: the number (E.164) and the words. Sealed at rest.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SmsPayload {
    pub to: String,
    pub body: String,
}

impl std::fmt::Debug for SmsPayload {
    /// Never prints the number or the body (it holds a code).
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("SmsPayload").finish_non_exhaustive()
    }
}

/// A new one-time token: the secret goes into a message, the record into the database.
pub struct OneTimeToken {
    pub secret: String,
    pub record: OneTimeTokenRecord,
}

#[derive(Debug, Clone)]
pub struct NotifierSettings {
    /// Base URL of the links in messages.
    pub issuer: String,
    /// Whether an email channel is configured. Without one, nothing is enqueued for email
    /// (production without SMTP and with no feature that needs it).
    pub email_enabled: bool,
}

pub struct Notifier {
    cipher: FieldCipher,
    token_digester: Digester,
    settings: NotifierSettings,
    wake: Arc<tokio::sync::Notify>,
}

impl Notifier {
    pub fn new(
        cipher: FieldCipher,
        token_digester: Digester,
        settings: NotifierSettings,
    ) -> Notifier {
        Notifier { cipher, token_digester, settings, wake: Arc::new(tokio::sync::Notify::new()) }
    }

    pub fn email_enabled(&self) -> bool {
        self.settings.email_enabled
    }

    /// Shared with this process's worker, which waits on it between polls.
    pub fn waker(&self) -> Arc<tokio::sync::Notify> {
        self.wake.clone()
    }

    /// Tells this process's worker that rows were committed (call after the commit).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub fn token_digest(&self, secret: &str) -> Vec<u8> {
        self.token_digester.digest(secret.as_bytes()).to_vec()
    }

    /// A new 256-bit token for `purpose`, valid for the purpose's lifetime from `now`.
    pub fn new_token(
        &self,
        purpose: TokenPurpose,
        user_id: &str,
        email_digest: Option<Vec<u8>>,
        now: i64,
    ) -> OneTimeToken {
        let secret = gatehouse_crypto::random_token();
        let record = OneTimeTokenRecord {
            token_digest: self.token_digest(&secret),
            purpose: purpose.as_str().to_owned(),
            user_id: user_id.to_owned(),
            email_digest,
            created_at: now,
            expires_at: now + purpose.ttl_seconds(),
            used_at: None,
            payload: None,
        };
        OneTimeToken { secret, record }
    }

    /// `<issuer><path>?<query>`, the query form-encoded.
    pub fn link(&self, path: &str, query: &[(&str, &str)]) -> String {
        let base = self.settings.issuer.trim_end_matches('/');
        let mut serializer = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in query {
            serializer.append_pair(name, value);
        }
        format!("{base}{path}?{}", serializer.finish())
    }

    /// A sealed email row, due now.
    pub fn email(&self, payload: &EmailPayload, now: i64) -> Result<OutboxRecord, DomainError> {
        self.sealed(EMAIL_CHANNEL, &payload.template, None, payload, now)
    }

    /// A sealed SMS row of `kind` (`mfa_code`), due now.
    pub fn sms(
        &self,
        kind: &str,
        payload: &SmsPayload,
        now: i64,
    ) -> Result<OutboxRecord, DomainError> {
        self.sealed(super::SMS_CHANNEL, kind, None, payload, now)
    }

    /// A sealed delivery of the event `event_id` of type `event_type` (`message`: its JSON
    /// body), due now: to webhook endpoint `webhook_id`, or to the event stream without one.
    pub fn event_delivery(
        &self,
        webhook_id: Option<&str>,
        event_type: &str,
        event_id: &str,
        message: &serde_json::Value,
        now: i64,
    ) -> Result<OutboxRecord, DomainError> {
        let channel = match webhook_id {
            Some(_) => super::WEBHOOK_CHANNEL,
            None => super::EVENT_STREAM_CHANNEL,
        };
        let payload = serde_json::json!({ "webhook_id": webhook_id, "message": message });
        let mut row = self.sealed(channel, event_type, webhook_id, &payload, now)?;
        row.event_id = Some(event_id.to_owned());
        Ok(row)
    }

    /// A sealed row for `channel` (`kind` for listings, `subject`: what it is about), due now.
    /// The payload is sealed under the row's id, so it opens only as that row.
    pub fn sealed<T: serde::Serialize + ?Sized>(
        &self,
        channel: &str,
        kind: &str,
        subject: Option<&str>,
        payload: &T,
        now: i64,
    ) -> Result<OutboxRecord, DomainError> {
        let id = gatehouse_crypto::new_id("dlv");
        let plain = serde_json::to_vec(payload)
            .map_err(|error| DomainError::Internal(format!("{channel} payload: {error}")))?;
        let sealed = self.cipher.seal(id.as_bytes(), &plain)?;
        Ok(OutboxRecord {
            channel: channel.to_owned(),
            kind: kind.to_owned(),
            payload: sealed,
            status: OutboxStatus::Pending,
            attempts: 0,
            next_attempt_at: now,
            claimed_by: None,
            lease_until: None,
            created_at: now,
            delivered_at: None,
            last_error: None,
            subject: subject.map(str::to_owned),
            event_id: None,
            id,
        })
    }

    /// The opened payload of a row.
    pub fn open(&self, record: &OutboxRecord) -> Result<serde_json::Value, DomainError> {
        let plain = self.cipher.open(record.id.as_bytes(), &record.payload)?;
        serde_json::from_slice(&plain)
            .map_err(|error| DomainError::Internal(format!("outbox payload: {error}")))
    }
}
