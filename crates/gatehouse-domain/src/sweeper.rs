//! The data lifecycle: what expires and when it is deleted. `Sweeper` removes rows past their
//! expiry (and delivered outbox rows and audit events past their retention) in bounded
//! batches; `SweeperStore` is its port.
//!
//! Every table with an expiring row, and the decision taken for it:
//! - swept when `expires_at` has passed: `sessions` (their `refresh_tokens` go with them),
//!   `refresh_tokens` (a rotated one only once its session has expired, so a replay keeps
//!   revoking the family), `authorization_codes` (a spent one only once the session its
//!   exchange issued has expired, so a replay keeps revoking it), `one_time_tokens`,
//!   `revoked_access_tokens` (the
//!   entry is kept exactly as long as the token it revokes could be presented),
//!   `device_codes`, `used_client_assertions`, `used_dpop_proofs` (on the database; Redis
//!   expires its own), `registration_tokens` (initial access tokens), `mfa_codes`, `mfa_challenges` (on the database;
//!   Redis expires its own), `trusted_devices`, `passkey_ceremonies` (on the database; Redis
//!   expires its own), `organization_invitations` (accepted, declined and revoked ones too once
//!   past their expiry: the audit trail keeps what happened);
//! - swept after a retention: `outbox` rows delivered more than `outbox_retention_seconds`
//!   ago (their `outbox_attempts` go with them; dead rows stay for an admin to retry),
//!   `audit_events` older than `audit_retention_seconds` when one is set (default: forever),
//!   a prefix of the hash chain at a time, each batch behind a signed checkpoint of its last
//!   row (`AuditIntegrity::sweep_retention`), so verification starts from the checkpoint;
//!   `api_keys` revoked or expired more than `api_key_retention_seconds` ago (default 90 days:
//!   a dead key stays listed — to its owner, its organization and admins — so "which key was
//!   that, who made it, when was it last used" can be answered while an incident is looked
//!   into; its `api_key.created` / `api_key.revoked` audit events outlive it; a key without
//!   expiry lives until revoked);
//! - carried out when due: `account_deletions` (a user's own deletion after the grace period:
//!   the account goes, through the account-deletion service, with its audit event and email);
//! - kept: `passkeys` (they live as long as their user; a flagged one until its owner removes
//!   it), `known_devices`, `mfa_backup_codes`, `password_history`, `consents` (no expiry:
//!   they live as long as their user), `admin_api_keys` (revoked keys stay for the audit
//!   trail), `signing_keys` (the key service retires them and they are few).
//!
//! Rule: every instance may run the sweeper; a sweep is claimed first (a lease in the store,
//! held for `lease_seconds` even after the sweep ends), so of several instances one sweeps per
//! period and the others skip. Each batch is one statement deleting at most `batch_size` rows,
//! committing alone, so no sweep holds a lock for long; a table is done when a batch removes
//! fewer rows than the batch size. Deletion is idempotent, so a sweep that overruns its lease
//! and meets another one still removes every row once.

use std::sync::Arc;

use async_trait::async_trait;

use crate::StoreError;
use crate::audit::AuditIntegrity;
use crate::clock::Clock;

/// A table the sweeper deletes from. `name` is the table's name (the metric's label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SweptTable {
    Sessions,
    RefreshTokens,
    AuthorizationCodes,
    OneTimeTokens,
    RevokedAccessTokens,
    DeviceCodes,
    /// Pushed authorization requests (RFC 9126), past their lifetime.
    PushedAuthorizationRequests,
    UsedClientAssertions,
    /// The `jti` of accepted DPoP proofs, once the proof could no longer verify.
    UsedDpopProofs,
    /// Initial access tokens of dynamic client registration, past their expiry.
    RegistrationTokens,
    MfaCodes,
    MfaChallenges,
    TrustedDevices,
    PasskeyCeremonies,
    OrganizationInvitations,
    /// Delivered rows only, past the outbox retention.
    Outbox,
    /// Past the audit retention, when one is set.
    AuditEvents,
    /// Revoked or expired longer ago than the API-key retention.
    ApiKeys,
    /// Accounts whose deletion's grace period is over (through [`DueDeletions`]).
    AccountDeletions,
}

/// Deletes the accounts whose deletion is due (the account-deletion service): up to `limit`,
/// answering how many went.
#[async_trait]
pub trait DueDeletions: Send + Sync {
    async fn delete_due(&self, limit: u32) -> Result<u64, StoreError>;
}

impl SweptTable {
    /// Every swept table, in the order a sweep visits them (refresh tokens before sessions so
    /// a session's cascade finds fewer tokens to remove).
    pub const ALL: [SweptTable; 19] = [
        SweptTable::RefreshTokens,
        SweptTable::Sessions,
        SweptTable::AuthorizationCodes,
        SweptTable::OneTimeTokens,
        SweptTable::RevokedAccessTokens,
        SweptTable::DeviceCodes,
        SweptTable::PushedAuthorizationRequests,
        SweptTable::UsedClientAssertions,
        SweptTable::UsedDpopProofs,
        SweptTable::RegistrationTokens,
        SweptTable::MfaCodes,
        SweptTable::MfaChallenges,
        SweptTable::TrustedDevices,
        SweptTable::PasskeyCeremonies,
        SweptTable::OrganizationInvitations,
        SweptTable::Outbox,
        SweptTable::AuditEvents,
        SweptTable::ApiKeys,
        SweptTable::AccountDeletions,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SweptTable::Sessions => "sessions",
            SweptTable::RefreshTokens => "refresh_tokens",
            SweptTable::AuthorizationCodes => "authorization_codes",
            SweptTable::OneTimeTokens => "one_time_tokens",
            SweptTable::RevokedAccessTokens => "revoked_access_tokens",
            SweptTable::DeviceCodes => "device_codes",
            SweptTable::PushedAuthorizationRequests => "pushed_authorization_requests",
            SweptTable::UsedClientAssertions => "used_client_assertions",
            SweptTable::UsedDpopProofs => "used_dpop_proofs",
            SweptTable::RegistrationTokens => "registration_tokens",
            SweptTable::MfaCodes => "mfa_codes",
            SweptTable::MfaChallenges => "mfa_challenges",
            SweptTable::PasskeyCeremonies => "passkey_ceremonies",
            SweptTable::OrganizationInvitations => "organization_invitations",
            SweptTable::TrustedDevices => "trusted_devices",
            SweptTable::Outbox => "outbox",
            SweptTable::AuditEvents => "audit_events",
            SweptTable::ApiKeys => "api_keys",
            SweptTable::AccountDeletions => "account_deletions",
        }
    }
}

/// The sweeper's port.
#[async_trait]
pub trait SweeperStore: Send + Sync {
    /// Claims the sweep `name` for `holder` until `lease_until` when no one holds it past
    /// `now`; `false` when another holder's lease still runs.
    async fn claim_sweep(
        &self,
        name: &str,
        holder: &str,
        now: i64,
        lease_until: i64,
    ) -> Result<bool, StoreError>;

    /// Deletes at most `limit` rows of `table` whose time (expiry, delivery or occurrence) is
    /// before `cutoff`, in one statement; answers how many it deleted.
    async fn sweep_batch(
        &self,
        table: SweptTable,
        cutoff: i64,
        limit: u32,
    ) -> Result<u64, StoreError>;
}

#[derive(Debug, Clone)]
pub struct SweeperSettings {
    /// Rows deleted per statement.
    pub batch_size: u32,
    /// How long a claimed sweep keeps the others away (normally the sweep interval).
    pub lease_seconds: i64,
    /// Delivered outbox rows are kept this long.
    pub outbox_retention_seconds: i64,
    /// Audit events are kept this long; `None` keeps them forever.
    pub audit_retention_seconds: Option<i64>,
    /// Revoked and expired API keys are kept this long after they ended.
    pub api_key_retention_seconds: i64,
}

impl Default for SweeperSettings {
    fn default() -> Self {
        Self {
            batch_size: 500,
            lease_seconds: 300,
            outbox_retention_seconds: 7 * 86_400,
            audit_retention_seconds: None,
            api_key_retention_seconds: 90 * 86_400,
        }
    }
}

/// What one sweep removed, per table (tables it removed nothing from are absent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub removed: Vec<(SweptTable, u64)>,
}

impl SweepReport {
    pub fn removed_from(&self, table: SweptTable) -> u64 {
        self.removed.iter().filter(|(swept, _)| *swept == table).map(|(_, count)| count).sum()
    }

    pub fn total(&self) -> u64 {
        self.removed.iter().map(|(_, count)| count).sum()
    }
}

/// A sweep stopped by a store error, with what it had removed before.
#[derive(Debug, thiserror::Error)]
#[error("sweep stopped: {error}")]
pub struct SweepFailed {
    pub removed: SweepReport,
    pub error: StoreError,
}

/// The lease's name in the store: one lease for a whole sweep.
const SWEEP_LEASE: &str = "sweep";

pub struct Sweeper {
    store: Arc<dyn SweeperStore>,
    clock: Arc<dyn Clock>,
    settings: SweeperSettings,
    /// Who this instance is in the lease table.
    holder: String,
    /// The audit trail's retention (behind signed checkpoints); without it audit rows stay.
    audit: Option<Arc<AuditIntegrity>>,
    /// Scheduled account deletions; without it none is carried out.
    deletions: Option<Arc<dyn DueDeletions>>,
}

impl Sweeper {
    pub fn new(
        store: Arc<dyn SweeperStore>,
        clock: Arc<dyn Clock>,
        settings: SweeperSettings,
        holder: String,
    ) -> Self {
        Self { store, clock, settings, holder, audit: None, deletions: None }
    }

    /// Carries out account deletions whose grace period is over.
    pub fn with_account_deletions(mut self, deletions: Arc<dyn DueDeletions>) -> Self {
        self.deletions = Some(deletions);
        self
    }

    /// Sweeps audit events past their retention through `audit` (a checkpoint per batch).
    pub fn with_audit_retention(mut self, audit: Arc<AuditIntegrity>) -> Self {
        self.audit = Some(audit);
        self
    }

    /// One sweep: `None` when another instance holds this period's lease, otherwise what was
    /// removed. A store error stops the sweep (the next period tries again); what was removed
    /// before it is still reported, in the error.
    pub async fn sweep(&self) -> Result<Option<SweepReport>, SweepFailed> {
        let now = self.clock.now();
        let lease_until = now.saturating_add(self.settings.lease_seconds.max(1));
        let claimed = self.store.claim_sweep(SWEEP_LEASE, &self.holder, now, lease_until).await;
        match claimed {
            Ok(true) => {}
            Ok(false) => return Ok(None),
            Err(error) => return Err(SweepFailed { removed: SweepReport::default(), error }),
        }
        let mut report = SweepReport::default();
        for table in SweptTable::ALL {
            let Some(cutoff) = self.cutoff(table, now) else { continue };
            let (removed, failure) = self.sweep_table(table, cutoff).await;
            if removed > 0 {
                report.removed.push((table, removed));
            }
            if let Some(error) = failure {
                return Err(SweepFailed { removed: report, error });
            }
        }
        Ok(Some(report))
    }

    /// The time before which a row of `table` goes; `None` when the table is kept.
    fn cutoff(&self, table: SweptTable, now: i64) -> Option<i64> {
        match table {
            SweptTable::Outbox => Some(now.saturating_sub(self.settings.outbox_retention_seconds)),
            SweptTable::ApiKeys => {
                Some(now.saturating_sub(self.settings.api_key_retention_seconds))
            }
            SweptTable::AuditEvents => self
                .settings
                .audit_retention_seconds
                .filter(|seconds| *seconds > 0)
                .map(|seconds| now.saturating_sub(seconds)),
            _ => Some(now),
        }
    }

    /// Batches until one removes fewer rows than the batch size: how many went, and the
    /// error that stopped it early, if one did.
    async fn sweep_table(&self, table: SweptTable, cutoff: i64) -> (u64, Option<StoreError>) {
        let batch_size = self.settings.batch_size.max(1);
        if table == SweptTable::AccountDeletions {
            let Some(deletions) = &self.deletions else { return (0, None) };
            let mut removed = 0;
            loop {
                match deletions.delete_due(batch_size).await {
                    Ok(batch) => {
                        removed += batch;
                        if batch < u64::from(batch_size) {
                            return (removed, None);
                        }
                    }
                    Err(error) => return (removed, Some(error)),
                }
            }
        }
        if table == SweptTable::AuditEvents {
            let Some(audit) = &self.audit else { return (0, None) };
            // Rows chained since the last chainer run may go too.
            let swept = match audit.chain_pending().await {
                Ok(_) => audit.sweep_retention(cutoff, batch_size).await,
                Err(error) => Err(error),
            };
            return match swept {
                Ok(removed) => (removed, None),
                Err(error) => (0, Some(error)),
            };
        }
        let mut removed = 0;
        loop {
            match self.store.sweep_batch(table, cutoff, batch_size).await {
                Ok(batch) => {
                    removed += batch;
                    if batch < u64::from(batch_size) {
                        return (removed, None);
                    }
                }
                Err(error) => return (removed, Some(error)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use super::*;
    use crate::clock::ManualClock;

    /// A store holding, per table, the times of its rows, and the lease.
    #[derive(Default)]
    struct Rows {
        tables: Mutex<BTreeMap<SweptTable, Vec<i64>>>,
        lease: Mutex<Option<(String, i64)>>,
        batches: Mutex<Vec<(SweptTable, u64)>>,
    }

    #[async_trait]
    impl SweeperStore for Rows {
        async fn claim_sweep(
            &self,
            _name: &str,
            holder: &str,
            now: i64,
            lease_until: i64,
        ) -> Result<bool, StoreError> {
            let mut lease = self.lease.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match &*lease {
                Some((_, until)) if *until > now => Ok(false),
                _ => {
                    *lease = Some((holder.to_owned(), lease_until));
                    Ok(true)
                }
            }
        }

        async fn sweep_batch(
            &self,
            table: SweptTable,
            cutoff: i64,
            limit: u32,
        ) -> Result<u64, StoreError> {
            let mut tables = self.tables.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let rows = tables.entry(table).or_default();
            let mut removed = 0;
            rows.retain(|time| {
                if *time < cutoff && removed < u64::from(limit) {
                    removed += 1;
                    false
                } else {
                    true
                }
            });
            self.batches
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push((table, removed));
            Ok(removed)
        }
    }

    fn sweeper(store: &Arc<Rows>, clock: &Arc<ManualClock>, settings: SweeperSettings) -> Sweeper {
        Sweeper::new(store.clone(), clock.clone(), settings, "test".into())
    }

    #[tokio::test]
    async fn batches_until_one_is_short_and_keeps_what_has_not_expired() {
        let store = Arc::new(Rows::default());
        store
            .tables
            .lock()
            .unwrap()
            .insert(SweptTable::Sessions, vec![1; 7].into_iter().chain([2_000]).collect());
        let clock = Arc::new(ManualClock::new(1_000));
        let settings = SweeperSettings { batch_size: 3, ..SweeperSettings::default() };
        let report = sweeper(&store, &clock, settings).sweep().await.unwrap().unwrap();
        assert_eq!(report.removed_from(SweptTable::Sessions), 7);
        assert_eq!(store.tables.lock().unwrap()[&SweptTable::Sessions], vec![2_000]);
        let session_batches: Vec<u64> = store
            .batches
            .lock()
            .unwrap()
            .iter()
            .filter(|(table, _)| *table == SweptTable::Sessions)
            .map(|(_, count)| *count)
            .collect();
        assert_eq!(session_batches, vec![3, 3, 1]);
    }

    #[tokio::test]
    async fn a_claimed_period_is_skipped_until_its_lease_ends() {
        let store = Arc::new(Rows::default());
        let clock = Arc::new(ManualClock::new(1_000));
        let settings = SweeperSettings { lease_seconds: 60, ..SweeperSettings::default() };
        let first = sweeper(&store, &clock, settings.clone());
        let second = Sweeper::new(store.clone(), clock.clone(), settings, "other".into());
        assert!(first.sweep().await.unwrap().is_some());
        assert!(second.sweep().await.unwrap().is_none());
        clock.advance(60);
        assert!(second.sweep().await.unwrap().is_some());
    }

    #[tokio::test]
    async fn retention_cutoffs_for_outbox_and_audit() {
        let store = Arc::new(Rows::default());
        let day = 86_400;
        let now = 100 * day;
        for table in [SweptTable::Outbox, SweptTable::AuditEvents] {
            store.tables.lock().unwrap().insert(table, vec![now - 10 * day, now - 2 * day]);
        }
        let clock = Arc::new(ManualClock::new(now));
        let keep_audit = SweeperSettings {
            outbox_retention_seconds: 7 * day,
            audit_retention_seconds: None,
            lease_seconds: 1,
            ..SweeperSettings::default()
        };
        let report = sweeper(&store, &clock, keep_audit.clone()).sweep().await.unwrap().unwrap();
        assert_eq!(report.removed_from(SweptTable::Outbox), 1);
        assert_eq!(report.removed_from(SweptTable::AuditEvents), 0);
        let zero_is_forever =
            SweeperSettings { audit_retention_seconds: Some(0), ..keep_audit.clone() };
        clock.advance(1);
        let report = sweeper(&store, &clock, zero_is_forever).sweep().await.unwrap().unwrap();
        assert_eq!(report.removed_from(SweptTable::AuditEvents), 0);
        // Audit rows go only through the chain's retention (behind a checkpoint, see
        // `AuditIntegrity::sweep_retention`, tested on both backends in the binary's
        // `tests/sweeper.rs`); a sweeper without it removes none, whatever the retention.
        let five_days = SweeperSettings { audit_retention_seconds: Some(5 * day), ..keep_audit };
        clock.advance(1);
        let report = sweeper(&store, &clock, five_days).sweep().await.unwrap().unwrap();
        assert_eq!(report.removed_from(SweptTable::AuditEvents), 0);
        assert_eq!(store.tables.lock().unwrap()[&SweptTable::AuditEvents].len(), 2);
    }
}
