//! `AuditIntegrity`: the chain's upkeep and check — chaining new rows (the background
//! chainer), verifying the chain (`gatehouse audit verify`), the retention sweep's signed
//! checkpoint, and erasing a person's fields from the trail.

use std::sync::Arc;

use gatehouse_crypto::Digester;

use super::chain::{self, BreakKind, ChainBreak, ChainHead, ChainVerifier};
use super::{AuditChainStore, AuditCheckpoint};
use crate::clock::Clock;
use crate::store::StoreError;

/// The data-key purpose of the retention checkpoints' MAC.
pub const AUDIT_CHECKPOINT_DIGEST_PURPOSE: &str = "audit-checkpoint";

/// Rows chained per transaction; a short batch means the chainer caught up.
const CHAIN_BATCH: u32 = 500;
/// Rows read per page while verifying.
const VERIFY_PAGE: u32 = 1_000;
/// Erasure requests handled per chainer run.
const ERASURE_BATCH: u32 = 100;
/// How long an erasure request is kept after it was made, erasing at each chainer run: rows
/// naming the subject that commit late (a transaction begun before the deletion) are still
/// erased once chained.
pub const ERASURE_WINDOW_SECONDS: i64 = 600;

/// What a verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Rows that passed, from the start or the checkpoint.
    pub checked: u64,
    /// The first break, if any.
    pub broken: Option<ChainBreak>,
    /// The retention checkpoint verification started from (its position).
    pub checkpoint_seq: Option<i64>,
    /// Rows not chained yet, and the time of the oldest (the chainer is behind by that much).
    pub unchained: i64,
    pub oldest_unchained_at: Option<i64>,
}

pub struct AuditIntegrity {
    store: Arc<dyn AuditChainStore>,
    checkpoint_key: Digester,
    clock: Arc<dyn Clock>,
}

impl AuditIntegrity {
    pub fn new(
        store: Arc<dyn AuditChainStore>,
        checkpoint_key: Digester,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { store, checkpoint_key, clock }
    }

    /// Chains every row committed so far (in batches); answers how many it chained.
    pub async fn chain_pending(&self) -> Result<u64, StoreError> {
        let mut chained = 0;
        loop {
            let batch = self.store.chain_audit_events(CHAIN_BATCH).await?;
            chained += batch;
            if batch < u64::from(CHAIN_BATCH) {
                return Ok(chained);
            }
        }
    }

    /// Walks the chain from its start (or its retention checkpoint) to its head and names the
    /// first broken row. Reads only; rows chained while it runs are left for the next check.
    pub async fn verify(&self) -> Result<VerifyReport, StoreError> {
        let state = self.store.audit_chain_state().await?;
        let mut report = VerifyReport {
            checked: 0,
            broken: None,
            checkpoint_seq: state.checkpoint.as_ref().map(|checkpoint| checkpoint.seq),
            unchained: state.unchained,
            oldest_unchained_at: state.oldest_unchained_at,
        };
        let start = match &state.checkpoint {
            Some(checkpoint) if !self.checkpoint_is_signed(checkpoint) => {
                report.broken = Some(ChainBreak {
                    event_id: None,
                    seq: checkpoint.seq,
                    kind: BreakKind::Checkpoint,
                });
                return Ok(report);
            }
            Some(checkpoint) => ChainHead { seq: checkpoint.seq, hash: checkpoint.hash.clone() },
            None => ChainHead::genesis(),
        };
        let mut verifier = ChainVerifier::starting_at(start);
        let mut after = verifier.last().seq;
        'pages: loop {
            let rows = self.store.chained_audit_events(after, VERIFY_PAGE).await?;
            let Some(last) = rows.last() else { break };
            after = last.seq;
            let full = rows.len() as u64 == u64::from(VERIFY_PAGE);
            for row in rows.iter().filter(|row| row.seq <= state.head.seq) {
                if let Err(broken) = verifier.check(row) {
                    report.broken = Some(broken);
                    break 'pages;
                }
            }
            if !full || after >= state.head.seq {
                break;
            }
        }
        report.checked = verifier.checked();
        if report.broken.is_none() {
            report.broken = verifier.finish(&state.head).err();
        }
        Ok(report)
    }

    /// Removes, in batches of `batch_size`, the chain's prefix of rows older than `cutoff`,
    /// each batch after a signed checkpoint of its last row; answers how many rows went.
    pub async fn sweep_retention(&self, cutoff: i64, batch_size: u32) -> Result<u64, StoreError> {
        let mut removed = 0;
        loop {
            let Some((last, count)) = self.store.audit_retention_prefix(cutoff, batch_size).await?
            else {
                return Ok(removed);
            };
            let created_at = self.clock.now();
            let message = chain::checkpoint_message(last.seq, &last.hash, count, created_at);
            let checkpoint = AuditCheckpoint {
                seq: last.seq,
                hash: last.hash,
                removed: count,
                created_at,
                mac: self.checkpoint_key.digest_hex(&message),
            };
            let batch = self.store.remove_audit_prefix(&checkpoint).await?;
            removed += batch;
            if count < i64::from(batch_size) || batch == 0 {
                return Ok(removed);
            }
        }
    }

    /// Erases the IP address, user agent and personal metadata of every event naming
    /// `subject_id` (as actor or target); the chain stays verifiable.
    pub async fn erase_personal_fields(&self, subject_id: &str) -> Result<u64, StoreError> {
        self.store.erase_audit_personal_fields(subject_id, self.clock.now()).await
    }

    /// Carries out the pending erasure requests (an account's deletion writes one): erases the
    /// subject's chained rows, and drops each request once [`ERASURE_WINDOW_SECONDS`] have
    /// passed. Run by the chainer right after it chains, so every row committed before the
    /// request is chained, then erased, at the first run after the deletion.
    pub async fn erase_requested(&self) -> Result<u64, StoreError> {
        let now = self.clock.now();
        let mut erased = 0;
        for (subject, requested_at) in self.store.audit_erasure_requests(ERASURE_BATCH).await? {
            erased += self.erase_personal_fields(&subject).await?;
            if requested_at <= now - ERASURE_WINDOW_SECONDS {
                self.store.drop_audit_erasure_request(&subject, requested_at).await?;
            }
        }
        Ok(erased)
    }

    fn checkpoint_is_signed(&self, checkpoint: &AuditCheckpoint) -> bool {
        let message = chain::checkpoint_message(
            checkpoint.seq,
            &checkpoint.hash,
            checkpoint.removed,
            checkpoint.created_at,
        );
        self.checkpoint_key.digest_hex(&message) == checkpoint.mac
    }
}
