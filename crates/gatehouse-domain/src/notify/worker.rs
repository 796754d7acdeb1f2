//! The outbox worker: claims due rows, hands each to its channel, records the attempt, and
//! retries with exponential backoff and jitter until the attempt budget is spent, then
//! dead-letters the row with an audit event. Several workers (one per server instance) share
//! the work; the store makes each claim exclusive, and a lease lets a row whose worker died be
//! claimed again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::outbox::{AttemptOutcome, AttemptStatus, OutboxAttempt, OutboxRecord, OutboxStore};
use super::{Channel, DeliveryError, Notifier};
use crate::audit::AuditEvent;
use crate::clock::Clock;
use crate::error::DomainError;
use crate::principal::{Actor, RequestContext};

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// How often the worker looks for due rows when nothing woke it.
    pub poll_interval: Duration,
    /// The first retry waits about this long; each further one twice as long.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Attempts before a row is dead-lettered.
    pub max_attempts: i64,
    /// How long a claim lasts; a row still `sending` after it is claimed again.
    pub lease: Duration,
    pub batch_size: u32,
    /// One delivery longer than this counts as a failed attempt.
    pub delivery_timeout: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(1),
            backoff_base: Duration::from_secs(10),
            backoff_max: Duration::from_secs(3600),
            max_attempts: 8,
            lease: Duration::from_secs(60),
            batch_size: 10,
            delivery_timeout: Duration::from_secs(30),
        }
    }
}

pub struct OutboxWorker {
    id: String,
    store: Arc<dyn OutboxStore>,
    notifier: Arc<Notifier>,
    channels: Vec<Arc<dyn Channel>>,
    clock: Arc<dyn Clock>,
    settings: WorkerSettings,
}

/// Seconds, rounded up, at least one.
fn whole_seconds(duration: Duration) -> i64 {
    let seconds = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    i64::try_from(seconds.max(1)).unwrap_or(i64::MAX)
}

impl OutboxWorker {
    pub fn new(
        store: Arc<dyn OutboxStore>,
        notifier: Arc<Notifier>,
        channels: Vec<Arc<dyn Channel>>,
        clock: Arc<dyn Clock>,
        settings: WorkerSettings,
    ) -> OutboxWorker {
        OutboxWorker {
            id: gatehouse_crypto::new_id("wrk"),
            store,
            notifier,
            channels,
            clock,
            settings,
        }
    }

    /// Runs until `shutdown` turns true. The row being delivered when it does is finished
    /// first; rows of the batch not yet attempted are given back to the queue at once. (A
    /// worker that dies instead leaves them claimed until their lease ends, when any instance
    /// picks them up again.)
    pub async fn run(self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let wake = self.notifier.waker();
        tracing::info!(worker = %self.id, "outbox worker started");
        loop {
            if *shutdown.borrow() {
                break;
            }
            let delivered = match self.run_batch(Some(&shutdown)).await {
                Ok(count) => count,
                Err(error) => {
                    tracing::warn!(worker = %self.id, %error, "outbox worker could not claim rows");
                    0
                }
            };
            if delivered > 0 {
                continue;
            }
            tokio::select! {
                () = wake.notified() => {}
                () = tokio::time::sleep(self.settings.poll_interval) => {}
                _ = shutdown.changed() => {}
            }
        }
        tracing::info!(worker = %self.id, "outbox worker stopped");
    }

    /// Claims one batch and attempts each row; answers how many rows were claimed.
    pub async fn run_once(&self) -> Result<usize, DomainError> {
        self.run_batch(None).await
    }

    async fn run_batch(
        &self,
        shutdown: Option<&tokio::sync::watch::Receiver<bool>>,
    ) -> Result<usize, DomainError> {
        let now = self.clock.now();
        let lease_until = now + whole_seconds(self.settings.lease);
        let rows =
            self.store.claim_outbox(&self.id, now, lease_until, self.settings.batch_size).await?;
        let count = rows.len();
        let mut rows = rows.into_iter();
        while let Some(row) = rows.next() {
            if shutdown.is_some_and(|stop| *stop.borrow()) {
                // Stopping: what this worker will not attempt goes back to the queue now.
                let unattempted: Vec<String> =
                    std::iter::once(row).chain(rows).map(|row| row.id).collect();
                self.store.release_outbox(&self.id, &unattempted).await?;
                break;
            }
            if let Err(error) = self.attempt(row).await {
                tracing::warn!(worker = %self.id, %error, "could not record a delivery attempt");
            }
        }
        Ok(count)
    }

    async fn attempt(&self, row: OutboxRecord) -> Result<(), DomainError> {
        let started_at = self.clock.now();
        let started = Instant::now();
        let channel = self.channels.iter().find(|channel| channel.name() == row.channel);
        let (result, report) = self.deliver(channel, &row).await;
        let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let error = result.as_ref().err().map(ToString::to_string);
        let max_attempts = channel
            .and_then(|channel| channel.max_attempts())
            .unwrap_or(self.settings.max_attempts);
        let outcome = match &result {
            Ok(()) => AttemptOutcome::Delivered { at: self.clock.now() },
            Err(DeliveryError::Permanent(_)) => AttemptOutcome::Dead,
            Err(DeliveryError::Temporary(_)) if row.attempts >= max_attempts => {
                AttemptOutcome::Dead
            }
            Err(DeliveryError::Temporary(_)) => {
                let delay = match channel.and_then(|channel| channel.retry_delay(row.attempts)) {
                    Some(delay) => whole_seconds(delay),
                    None => self.backoff_seconds(row.attempts),
                };
                AttemptOutcome::Retry { next_attempt_at: self.clock.now() + delay }
            }
        };
        let attempt = OutboxAttempt {
            id: gatehouse_crypto::new_id("att"),
            outbox_id: row.id.clone(),
            worker: self.id.clone(),
            status: if result.is_ok() { AttemptStatus::Delivered } else { AttemptStatus::Failed },
            error: error.clone(),
            started_at,
            duration_ms,
            report,
        };
        let mut events = Vec::new();
        match outcome {
            AttemptOutcome::Dead => {
                tracing::warn!(delivery_id = %row.id, kind = %row.kind, attempts = row.attempts, error = ?error, "delivery dead-lettered");
                events.push(
                    AuditEvent::new(
                        "delivery.dead_lettered",
                        &Actor::System,
                        &RequestContext::default(),
                        self.clock.now(),
                    )
                    .target("delivery", &row.id)
                    .metadata(serde_json::json!({
                        "channel": row.channel,
                        "kind": row.kind,
                        "attempts": row.attempts,
                        "error": error,
                    })),
                );
            }
            AttemptOutcome::Retry { .. } => {
                tracing::info!(delivery_id = %row.id, kind = %row.kind, attempts = row.attempts, error = ?error, "delivery failed; will retry");
            }
            AttemptOutcome::Delivered { .. } => {
                tracing::info!(delivery_id = %row.id, kind = %row.kind, "delivered");
                // A delivery confirmation is part of the trail: which message (or event) reached
                // its channel, when, after how many attempts — never its content.
                events.push(
                    AuditEvent::new(
                        "delivery.delivered",
                        &Actor::System,
                        &RequestContext::default(),
                        self.clock.now(),
                    )
                    .target("delivery", &row.id)
                    .metadata(serde_json::json!({
                        "channel": row.channel,
                        "kind": row.kind,
                        "attempts": row.attempts,
                        "webhook_id": row.subject,
                        "event_id": row.event_id,
                    })),
                );
            }
        }
        let applied = self.store.finish_outbox_attempt(&attempt, outcome, &events).await?;
        if !applied {
            tracing::warn!(delivery_id = %row.id, "the lease ran out during delivery; another worker owns the row now");
        }
        Ok(())
    }

    async fn deliver(
        &self,
        channel: Option<&Arc<dyn Channel>>,
        row: &OutboxRecord,
    ) -> (Result<(), DeliveryError>, Option<super::DeliveryReport>) {
        let Some(channel) = channel else {
            let error = DeliveryError::Temporary(format!("no channel {:?} here", row.channel));
            return (Err(error), None);
        };
        let payload = match self.notifier.open(row) {
            Ok(payload) => payload,
            Err(error) => {
                let error = DeliveryError::Permanent(format!("cannot open the payload: {error}"));
                return (Err(error), None);
            }
        };
        match tokio::time::timeout(
            self.settings.delivery_timeout,
            channel.deliver_reporting(&row.kind, &payload),
        )
        .await
        {
            Ok(answer) => answer,
            Err(_) => (Err(DeliveryError::Temporary("delivery timed out".into())), None),
        }
    }

    /// base × 2^(attempts−1), capped, times a random factor in [0.5, 1] so that rows failing
    /// together do not retry together.
    fn backoff_seconds(&self, attempts: i64) -> i64 {
        let exponent = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
        let base = self.settings.backoff_base.as_millis();
        let full =
            base.saturating_mul(1u128 << exponent).min(self.settings.backoff_max.as_millis());
        let [a, b] = gatehouse_crypto::random_bytes::<2>();
        let random = u128::from(u16::from_le_bytes([a, b]));
        let jittered = full / 2 + full * random / (2 * u128::from(u16::MAX));
        let millis = u64::try_from(jittered).unwrap_or(u64::MAX);
        whole_seconds(Duration::from_millis(millis))
    }
}
