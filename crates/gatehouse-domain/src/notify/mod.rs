//! Notifications: the durable outbox every delivery goes through, the `Channel` port that
//! delivers a message (email now; webhooks and brokers later), the worker that drains the
//! outbox, and the single-use tokens that travel only inside those messages.
//!
//! Invariants:
//! - An outbox row is written in the same transaction as the change that caused it (the
//!   change's [`crate::unit_of_work::UnitOfWork`] travels with it into the store).
//! - Payloads are sealed with the field cipher (purpose [`OUTBOX_PURPOSE`], AD = row id): they
//!   hold links with one-time tokens. Listings show the kind and status, never the payload.
//! - One-time tokens are stored only as keyed digests and spent in the transaction that applies
//!   their effect, so a token works once even under concurrent use.

mod deliveries;
mod notices;
mod notifier;
pub mod outbox;
mod worker;

pub use deliveries::{DeliveryPage, DeliveryService};
pub use notices::{NoticeSettings, Notices};
pub use notifier::{EmailPayload, Notifier, NotifierSettings, OneTimeToken, SmsPayload};
pub use outbox::{
    AttemptOutcome, AttemptStatus, OutboxAttempt, OutboxQuery, OutboxRecord, OutboxStat,
    OutboxStatus, OutboxStore,
};
pub use worker::{OutboxWorker, WorkerSettings};

use async_trait::async_trait;

/// Field-cipher purpose of outbox payloads (AD = the row id).
pub const OUTBOX_PURPOSE: &str = "outbox";
/// Digest purpose of one-time tokens.
pub const ONE_TIME_TOKEN_DIGEST_PURPOSE: &str = "one-time-token";
/// The email channel's name in `outbox.channel`.
pub const EMAIL_CHANNEL: &str = "email";
/// The SMS channel's name in `outbox.channel`.
pub const SMS_CHANNEL: &str = "sms";
/// The webhook channel's name in `outbox.channel`.
pub const WEBHOOK_CHANNEL: &str = "webhook";
/// The event stream's (NATS JetStream) name in `outbox.channel`.
pub const EVENT_STREAM_CHANNEL: &str = "nats";

/// Why one delivery failed. The text is stored and listed: it must never hold a secret.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DeliveryError {
    /// Worth trying again later (the server is down, a 4xx SMTP reply).
    #[error("{0}")]
    Temporary(String),
    /// Will never work (a malformed payload, a 5xx SMTP reply): dead-lettered at once.
    #[error("{0}")]
    Permanent(String),
}

/// What a receiver answered one attempt (channels that speak HTTP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryReport {
    pub status_code: Option<i64>,
    /// The start of the answer's body (at most 1 KiB).
    pub body: Option<String>,
}

/// Delivers one message of its kind. Implementations: email and SMS, webhooks
/// (`gatehouse-outbound`).
#[async_trait]
pub trait Channel: Send + Sync {
    /// The `outbox.channel` value this channel delivers.
    fn name(&self) -> &'static str;
    /// Delivers one opened payload (JSON). Must not log the payload: it holds secrets.
    async fn deliver(&self, kind: &str, payload: &serde_json::Value) -> Result<(), DeliveryError>;
    /// [`Self::deliver`], with what the receiver answered when the channel knows it.
    async fn deliver_reporting(
        &self,
        kind: &str,
        payload: &serde_json::Value,
    ) -> (Result<(), DeliveryError>, Option<DeliveryReport>) {
        (self.deliver(kind, payload).await, None)
    }
    /// The wait before retry number `attempts` (1 = after the first failure) when the
    /// channel has its own schedule; `None`: the worker's exponential backoff.
    fn retry_delay(&self, _attempts: i64) -> Option<std::time::Duration> {
        None
    }
    /// Attempts before a row is dead-lettered, when the channel has its own budget.
    fn max_attempts(&self) -> Option<i64> {
        None
    }
}
