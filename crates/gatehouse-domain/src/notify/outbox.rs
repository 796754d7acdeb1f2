//! The outbox as stored: rows, attempts, what an attempt leaves a row as, and the
//! `OutboxStore` port the worker and the admin listing use.

use async_trait::async_trait;

use crate::audit::AuditEvent;
use crate::store::StoreError;

/// Where an outbox row is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxStatus {
    Pending,
    /// Claimed by a worker until `lease_until`.
    Sending,
    Delivered,
    /// Gave up after the last attempt (or a permanent failure).
    Dead,
}

impl OutboxStatus {
    pub const ALL: [OutboxStatus; 4] =
        [OutboxStatus::Pending, OutboxStatus::Sending, OutboxStatus::Delivered, OutboxStatus::Dead];

    pub fn as_str(self) -> &'static str {
        match self {
            OutboxStatus::Pending => "pending",
            OutboxStatus::Sending => "sending",
            OutboxStatus::Delivered => "delivered",
            OutboxStatus::Dead => "dead",
        }
    }

    pub fn parse(text: &str) -> Option<OutboxStatus> {
        OutboxStatus::ALL.into_iter().find(|status| status.as_str() == text)
    }
}

/// How one delivery attempt ended (`outbox_attempts.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptStatus {
    Delivered,
    Failed,
}

impl AttemptStatus {
    pub const ALL: [AttemptStatus; 2] = [AttemptStatus::Delivered, AttemptStatus::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            AttemptStatus::Delivered => "delivered",
            AttemptStatus::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<AttemptStatus> {
        AttemptStatus::ALL.into_iter().find(|status| status.as_str() == text)
    }
}

/// One row of `outbox`. Times are Unix seconds; `payload` is sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRecord {
    pub id: String,
    pub channel: String,
    pub kind: String,
    pub payload: Vec<u8>,
    pub status: OutboxStatus,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub claimed_by: Option<String>,
    pub lease_until: Option<i64>,
    pub created_at: i64,
    pub delivered_at: Option<i64>,
    pub last_error: Option<String>,
    /// What the row is for beyond its channel: a webhook delivery's endpoint id.
    pub subject: Option<String>,
    /// The event a webhook delivery carries.
    pub event_id: Option<String>,
}

/// One delivery attempt, as recorded in `outbox_attempts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxAttempt {
    pub id: String,
    pub outbox_id: String,
    pub worker: String,
    pub status: AttemptStatus,
    pub error: Option<String>,
    pub started_at: i64,
    pub duration_ms: i64,
    /// What the receiver answered, for channels that speak HTTP (webhooks).
    pub report: Option<super::DeliveryReport>,
}

/// What an attempt leaves the row as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    Delivered { at: i64 },
    Retry { next_attempt_at: i64 },
    Dead,
}

/// How many rows of a channel are in a status, and the oldest one's creation time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxStat {
    pub channel: String,
    pub status: OutboxStatus,
    pub count: i64,
    pub oldest_created_at: i64,
}

/// A page of outbox rows, newest first (ids are time-ordered).
#[derive(Debug, Clone, Default)]
pub struct OutboxQuery {
    pub status: Option<OutboxStatus>,
    /// Ids strictly before this one.
    pub before: Option<String>,
    pub limit: u32,
}

#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Claims up to `limit` due rows for `worker` until `lease_until`: pending rows whose time
    /// has come and `sending` rows whose lease expired. Each row is claimed by one worker
    /// (PostgreSQL: `FOR UPDATE SKIP LOCKED`; SQLite: the single writer), and its attempt
    /// count goes up.
    async fn claim_outbox(
        &self,
        worker: &str,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> Result<Vec<OutboxRecord>, StoreError>;
    /// Gives back rows `worker` claimed but did not attempt (it is stopping): pending again,
    /// due as they were, their attempt not counted, so the next worker takes them at once
    /// instead of after the lease. Answers how many were given back.
    async fn release_outbox(&self, worker: &str, ids: &[String]) -> Result<u64, StoreError>;
    /// Records an attempt and its outcome, with events (dead-letter audit). Only applies when
    /// the row is still claimed by the attempt's worker.
    async fn finish_outbox_attempt(
        &self,
        attempt: &OutboxAttempt,
        outcome: AttemptOutcome,
        events: &[AuditEvent],
    ) -> Result<bool, StoreError>;
    async fn outbox_row(&self, id: &str) -> Result<Option<OutboxRecord>, StoreError>;
    /// Rows by channel and status (metrics: deliveries by outcome, queue depth, oldest pending).
    async fn outbox_stats(&self) -> Result<Vec<OutboxStat>, StoreError>;
    async fn list_outbox(&self, query: &OutboxQuery) -> Result<Vec<OutboxRecord>, StoreError>;
    async fn outbox_attempts(&self, outbox_id: &str) -> Result<Vec<OutboxAttempt>, StoreError>;
    /// Puts a row that is not being sent back in the queue, due now, with a fresh attempt
    /// budget; `false` when there is no such row or it is being sent.
    async fn retry_outbox(
        &self,
        id: &str,
        now: i64,
        events: &[AuditEvent],
    ) -> Result<bool, StoreError>;
}
