//! The background upkeep of the data: the sweeper task — every `sweeper.interval_seconds`, one
//! sweep (claimed, so of several instances one sweeps per period), what it removed counted in
//! `gatehouse_sweeper_removed_total{table}`; audit events past their retention go behind a
//! signed checkpoint — and the audit chainer, which chains new audit rows every second (one
//! chainer at a time across instances, under the chain head's lock). Both are started by
//! `server::serve` and stopped with it.

use std::sync::Arc;
use std::time::Duration;

use gatehouse_domain::Clock;
use gatehouse_domain::audit::AuditIntegrity;
use gatehouse_domain::sweeper::{SweepReport, Sweeper, SweeperSettings};
use gatehouse_http::Metrics;
use gatehouse_store::Database;

use crate::config::Config;

const DAY: i64 = 86_400;

/// How often the chainer chains new audit rows: every row older than about this is chained.
const AUDIT_CHAIN_INTERVAL: Duration = Duration::from_secs(1);

/// The sweeper with the metrics it counts into. Cheap to clone.
#[derive(Clone)]
pub struct SweeperTask {
    sweeper: Arc<Sweeper>,
    audit: Arc<AuditIntegrity>,
    metrics: Arc<Metrics>,
    /// `None` when the background task is off (`sweeper.interval_seconds = 0`).
    interval: Option<Duration>,
}

impl SweeperTask {
    pub fn new(
        config: &Config,
        database: &Database,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
        audit: Arc<AuditIntegrity>,
        deletions: Arc<dyn gatehouse_domain::sweeper::DueDeletions>,
    ) -> Self {
        let interval_seconds = config.sweeper.interval_seconds;
        let settings = SweeperSettings {
            batch_size: config.sweeper.batch_size,
            // The lease spans the period, so the other instances skip it; a minute at least
            // when the task is off and sweeps are run by hand.
            lease_seconds: i64::try_from(interval_seconds).unwrap_or(DAY).max(60),
            outbox_retention_seconds: config.outbox.retention_days.saturating_mul(DAY),
            audit_retention_seconds: Some(config.audit.retention_days.saturating_mul(DAY))
                .filter(|seconds| *seconds > 0),
            // Not a setting (yet): 90 days, see `gatehouse_domain::sweeper`.
            api_key_retention_seconds: SweeperSettings::default().api_key_retention_seconds,
        };
        let holder = gatehouse_crypto::token::new_id("swp");
        let sweeper = Sweeper::new(Arc::new(database.clone()), clock, settings, holder)
            .with_audit_retention(audit.clone())
            .with_account_deletions(deletions);
        let interval = (interval_seconds > 0).then(|| Duration::from_secs(interval_seconds));
        Self { sweeper: Arc::new(sweeper), audit, metrics, interval }
    }

    /// The audit trail's chain (the chainer's work, `gatehouse audit verify`).
    pub fn audit(&self) -> &Arc<AuditIntegrity> {
        &self.audit
    }

    /// Chains new audit rows every [`AUDIT_CHAIN_INTERVAL`] until `stop` turns true. A store
    /// error is logged; the next tick tries again (the rows wait, unchained).
    pub async fn run_chainer(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut ticks = tokio::time::interval(AUDIT_CHAIN_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if *stop.borrow_and_update() {
                return;
            }
            tokio::select! {
                _ = ticks.tick() => {
                    if let Err(error) = self.audit.chain_pending().await {
                        tracing::warn!(%error, "audit chainer: chaining failed; the next tick tries again");
                    } else if let Err(error) = self.audit.erase_requested().await {
                        tracing::warn!(%error, "audit chainer: an erasure failed; the next tick tries again");
                    }
                }
                changed = stop.changed() => if changed.is_err() { return },
            }
        }
    }

    /// One sweep, counted in the metrics: `None` when another instance holds this period.
    /// A store error is logged (with what was removed before it, which is counted too).
    pub async fn sweep_once(&self) -> Option<SweepReport> {
        match self.sweeper.sweep().await {
            Ok(Some(report)) => {
                self.count(&report);
                if report.total() > 0 {
                    tracing::info!(removed = report.total(), "sweeper: expired rows removed");
                }
                Some(report)
            }
            Ok(None) => None,
            Err(failed) => {
                self.count(&failed.removed);
                tracing::warn!(error = %failed.error, removed = failed.removed.total(), "sweeper: sweep stopped; the next period tries again");
                Some(failed.removed)
            }
        }
    }

    fn count(&self, report: &SweepReport) {
        for (table, removed) in &report.removed {
            self.metrics.record_swept(table.name(), *removed);
        }
    }

    /// Sweeps every interval (the first one interval after start) until `stop` turns true.
    pub async fn run(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let Some(interval) = self.interval else { return };
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if *stop.borrow_and_update() {
                return;
            }
            tokio::select! {
                _ = ticks.tick() => { self.sweep_once().await; }
                changed = stop.changed() => if changed.is_err() { return },
            }
        }
    }
}
