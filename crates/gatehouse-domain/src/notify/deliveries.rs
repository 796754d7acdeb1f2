//! The admin view of the outbox: list deliveries (never their payloads) and put one back in the
//! queue.

use std::sync::Arc;

use super::Notifier;
use super::outbox::{OutboxAttempt, OutboxQuery, OutboxRecord, OutboxStat, OutboxStore};
use crate::audit::AuditEvent;
use crate::clock::Clock;
use crate::error::DomainError;
use crate::principal::AdminPrincipal;
use crate::principal::RequestContext;

/// A page of deliveries, newest first; `next_cursor` continues it.
#[derive(Debug, Clone)]
pub struct DeliveryPage {
    pub items: Vec<OutboxRecord>,
    pub next_cursor: Option<String>,
}

pub struct DeliveryService {
    store: Arc<dyn OutboxStore>,
    notifier: Arc<Notifier>,
    clock: Arc<dyn Clock>,
}

impl DeliveryService {
    pub fn new(
        store: Arc<dyn OutboxStore>,
        notifier: Arc<Notifier>,
        clock: Arc<dyn Clock>,
    ) -> DeliveryService {
        DeliveryService { store, notifier, clock }
    }

    pub async fn list(
        &self,
        _admin: &AdminPrincipal,
        mut query: OutboxQuery,
    ) -> Result<DeliveryPage, DomainError> {
        query.limit = query.limit.clamp(1, 200);
        let limit = query.limit as usize;
        let mut items = self.store.list_outbox(&query).await?;
        let next_cursor =
            if items.len() == limit { items.last().map(|row| row.id.clone()) } else { None };
        items.truncate(limit);
        Ok(DeliveryPage { items, next_cursor })
    }

    pub async fn attempts(
        &self,
        _admin: &AdminPrincipal,
        id: &str,
    ) -> Result<Vec<OutboxAttempt>, DomainError> {
        Ok(self.store.outbox_attempts(id).await?)
    }

    /// Rows by channel and status, for the metrics (no admin needed: `/metrics` is the
    /// operator's, and it shows counts only).
    pub async fn stats(&self) -> Result<Vec<OutboxStat>, DomainError> {
        Ok(self.store.outbox_stats().await?)
    }

    /// [`DeliveryService::retry`] for a delivery of webhook endpoint `webhook_id` only: another
    /// row (another endpoint's, an email) is `not_found`.
    pub async fn retry_for_webhook(
        &self,
        admin: &AdminPrincipal,
        webhook_id: &str,
        id: &str,
        context: &RequestContext,
    ) -> Result<(), DomainError> {
        let row = self.store.outbox_row(id).await?.ok_or(DomainError::NotFound)?;
        if row.subject.as_deref() != Some(webhook_id) {
            return Err(DomainError::NotFound);
        }
        self.retry(admin, id, context).await
    }

    /// Puts a delivery back in the queue, due now, with a fresh attempt budget. A delivery
    /// being sent right now answers `conflict`; an unknown one `not_found`.
    pub async fn retry(
        &self,
        admin: &AdminPrincipal,
        id: &str,
        context: &RequestContext,
    ) -> Result<(), DomainError> {
        let now = self.clock.now();
        let event =
            AuditEvent::new("delivery.retried", admin.actor(), context, now).target("delivery", id);
        if self.store.retry_outbox(id, now, &[event]).await? {
            self.notifier.wake();
            return Ok(());
        }
        let exists = self.store.outbox_row(id).await?.is_some();
        if exists {
            Err(DomainError::Conflict("the delivery is being sent".into()))
        } else {
            Err(DomainError::NotFound)
        }
    }
}
