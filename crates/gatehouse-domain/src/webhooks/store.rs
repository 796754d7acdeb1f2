//! `WebhookStore`: the port that keeps webhook endpoints, relays queued events to their
//! deliveries, and lists deliveries.

use async_trait::async_trait;

use super::record::{WebhookDelivery, WebhookRecord, WebhookSubscription};
use crate::audit::AuditEvent;
use crate::notify::OutboxRecord;
use crate::store::StoreError;
use crate::unit_of_work::UnitOfWork;

/// Turns claimed events into outbox rows for the active subscriptions.
pub type FanOut<'a> =
    &'a (dyn Fn(&[AuditEvent], &[WebhookSubscription]) -> Vec<OutboxRecord> + Send + Sync);

#[async_trait]
pub trait WebhookStore: Send + Sync {
    async fn insert_webhook(
        &self,
        webhook: &WebhookRecord,
        events: &[AuditEvent],
    ) -> Result<(), StoreError>;
    async fn webhook(&self, id: &str) -> Result<Option<WebhookRecord>, StoreError>;
    /// Every endpoint, newest first.
    async fn list_webhooks(&self) -> Result<Vec<WebhookRecord>, StoreError>;
    /// `false` when it no longer exists.
    async fn update_webhook(
        &self,
        webhook: &WebhookRecord,
        events: &[AuditEvent],
    ) -> Result<bool, StoreError>;
    /// Records how an attempt to deliver to the endpoint ended: a success clears its failing
    /// streak; a failure starts one (if none is running) and, when the streak began at or before
    /// `disable_if_failing_since` and `disabled` is given (its audit event and notices, made by
    /// a caller who read the streak as long enough), disables the endpoint and writes it, in
    /// one transaction. Answers whether this call disabled it.
    async fn record_webhook_outcome(
        &self,
        id: &str,
        succeeded: bool,
        now: i64,
        disable_if_failing_since: i64,
        disabled: Option<&UnitOfWork>,
    ) -> Result<bool, StoreError>;
    /// Deletes it and its pending deliveries; `false` when it did not exist.
    async fn delete_webhook(&self, id: &str, events: &[AuditEvent]) -> Result<bool, StoreError>;
    /// The relay's step, in one transaction: claims up to `limit` queued events (oldest first;
    /// on PostgreSQL `FOR UPDATE SKIP LOCKED`, so instances share the queue and an event is
    /// relayed once), reads the active subscriptions, writes the rows `fan_out` makes of them
    /// and dequeues the events. Answers how many events it relayed.
    async fn relay_events(&self, limit: u32, fan_out: FanOut<'_>) -> Result<usize, StoreError>;
    /// Events waiting for the relay, and the age in seconds of the oldest (metrics, readiness).
    async fn event_backlog(&self, now: i64) -> Result<(i64, i64), StoreError>;
    /// An endpoint's deliveries, newest first, before the delivery `before`.
    async fn webhook_deliveries(
        &self,
        webhook_id: &str,
        before: Option<&str>,
        limit: u32,
    ) -> Result<Vec<WebhookDelivery>, StoreError>;
}
