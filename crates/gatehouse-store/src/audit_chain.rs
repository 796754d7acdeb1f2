//! `AuditChainStore` on SQL: the chainer's transaction (the head row locked — `FOR UPDATE` on
//! PostgreSQL, the write guard on SQLite — so one chainer runs at a time across instances),
//! reading the chain back, erasure of personal fields and the retention prefix behind a
//! checkpoint. On PostgreSQL the `audit_events_append_only` trigger (migration 0015) refuses
//! every other UPDATE or DELETE of an audit row.

use async_trait::async_trait;
use gatehouse_domain::StoreError;
use gatehouse_domain::audit::chain::{self, ChainHead, ChainedEvent};
use gatehouse_domain::audit::{AuditChainState, AuditChainStore, AuditCheckpoint};

use crate::audit::{audit_columns, audit_event_from_row};
use crate::columns::StoreRow;
use crate::database::write_transaction;
use crate::error::map_sqlx_error;
use crate::{Database, with_pool};

macro_rules! head_sql {
    ($lock:literal) => {
        concat!("SELECT last_seq, last_hash FROM audit_chain_head WHERE id = 1", $lock)
    };
}

const UNCHAINED: &str = concat!(
    "SELECT ",
    audit_columns!(),
    " FROM audit_events WHERE chain_seq IS NULL ORDER BY occurred_at, id LIMIT $1"
);

/// [`UNCHAINED`] on SQLite, held to the partial index made for it: left to itself SQLite's
/// planner reads `chain_seq IS NULL` through the unique `audit_events_chain` index and sorts
/// every unchained row for each batch (230 ms a batch with a million unchained events after a
/// bulk import, against 4 ms through `audit_events_unchained`), holding the writer meanwhile.
const UNCHAINED_SQLITE: &str = concat!(
    "SELECT ",
    audit_columns!(),
    " FROM audit_events INDEXED BY audit_events_unchained WHERE chain_seq IS NULL \
     ORDER BY occurred_at, id LIMIT $1"
);

const LINK: &str = "UPDATE audit_events SET chain_seq = $1, chain_hash = $2, personal_digest = $3, \
     personal_salt = $4 WHERE id = $5 AND chain_seq IS NULL";

const MOVE_HEAD: &str = "UPDATE audit_chain_head SET last_seq = $1, last_hash = $2 WHERE id = 1";

const CHAINED: &str = concat!(
    "SELECT ",
    audit_columns!(),
    ", chain_seq, chain_hash, personal_digest, personal_salt, personal_erased_at \
     FROM audit_events WHERE chain_seq > $1 ORDER BY chain_seq LIMIT $2"
);

fn chained_from_row(row: &impl StoreRow) -> Result<ChainedEvent, StoreError> {
    Ok(ChainedEvent {
        event: audit_event_from_row(row)?,
        seq: row.read("chain_seq")?,
        hash: row.read("chain_hash")?,
        personal_digest: row.read("personal_digest")?,
        personal_salt: row.read("personal_salt")?,
        personal_erased_at: row.read("personal_erased_at")?,
    })
}

fn head_from_row(row: &impl StoreRow) -> Result<ChainHead, StoreError> {
    Ok(ChainHead { seq: row.read("last_seq")?, hash: row.read("last_hash")? })
}

#[async_trait]
impl AuditChainStore for Database {
    async fn chain_audit_events(&self, limit: u32) -> Result<u64, StoreError> {
        let (head_sql, unchained) = match self {
            Database::Sqlite(_) => (head_sql!(""), UNCHAINED_SQLITE),
            Database::Postgres(_) => (head_sql!(" FOR UPDATE"), UNCHAINED),
        };
        let chained = write_transaction!(self, transaction => {
            let row = sqlx::query(head_sql)
                .fetch_one(&mut *transaction)
                .await
                .map_err(map_sqlx_error)?;
            let mut head = head_from_row(&row)?;
            let rows = sqlx::query(unchained)
                .bind(i64::from(limit))
                .fetch_all(&mut *transaction)
                .await
                .map_err(map_sqlx_error)?;
            for row in &rows {
                let event = audit_event_from_row(row)?;
                let link = chain::link(&head, &event);
                let linked = sqlx::query(LINK)
                    .bind(link.seq)
                    .bind(link.hash.as_str())
                    .bind(link.personal_digest.as_str())
                    .bind(link.personal_salt.as_str())
                    .bind(event.id.as_str())
                    .execute(&mut *transaction)
                    .await
                    .map_err(map_sqlx_error)?
                    .rows_affected();
                if linked != 1 {
                    // Chained by someone else under our lock: the head lock was not held.
                    return Err(StoreError::Corrupt(format!("audit event {} chained twice", event.id)));
                }
                head = ChainHead { seq: link.seq, hash: link.hash };
            }
            if !rows.is_empty() {
                sqlx::query(MOVE_HEAD)
                    .bind(head.seq)
                    .bind(head.hash.as_str())
                    .execute(&mut *transaction)
                    .await
                    .map_err(map_sqlx_error)?;
            }
            rows.len() as u64
        });
        Ok(chained)
    }

    async fn chained_audit_events(
        &self,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<ChainedEvent>, StoreError> {
        with_pool!(self, pool => {
            let rows = sqlx::query(CHAINED)
                .bind(after_seq)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await
                .map_err(map_sqlx_error)?;
            rows.iter().map(chained_from_row).collect()
        })
    }

    async fn audit_chain_state(&self) -> Result<AuditChainState, StoreError> {
        with_pool!(self, pool => {
            let head = head_from_row(
                &sqlx::query(head_sql!("")).fetch_one(pool).await.map_err(map_sqlx_error)?,
            )?;
            let checkpoint = sqlx::query(
                "SELECT seq, hash, removed, created_at, mac FROM audit_checkpoints \
                 ORDER BY seq DESC LIMIT 1",
            )
            .fetch_optional(pool)
            .await
            .map_err(map_sqlx_error)?
            .map(|row| -> Result<AuditCheckpoint, StoreError> {
                Ok(AuditCheckpoint {
                    seq: row.read("seq")?,
                    hash: row.read("hash")?,
                    removed: row.read("removed")?,
                    created_at: row.read("created_at")?,
                    mac: row.read("mac")?,
                })
            })
            .transpose()?;
            let pending = sqlx::query(
                "SELECT COUNT(*) AS unchained, MIN(occurred_at) AS oldest FROM audit_events \
                 WHERE chain_seq IS NULL",
            )
            .fetch_one(pool)
            .await
            .map_err(map_sqlx_error)?;
            Ok(AuditChainState {
                head,
                checkpoint,
                unchained: pending.read("unchained")?,
                oldest_unchained_at: pending.read("oldest")?,
            })
        })
    }

    async fn erase_audit_personal_fields(
        &self,
        subject_id: &str,
        at: i64,
    ) -> Result<u64, StoreError> {
        const ROWS: &str = concat!(
            "SELECT ",
            audit_columns!(),
            " FROM audit_events WHERE (actor_id = $1 OR target_id = $1) \
             AND chain_seq IS NOT NULL AND personal_erased_at IS NULL"
        );
        const ERASE: &str = "UPDATE audit_events SET ip = NULL, user_agent = NULL, metadata = $1, \
             personal_salt = NULL, personal_erased_at = $2 WHERE id = $3";
        let erased = write_transaction!(self, transaction => {
            let rows = sqlx::query(ROWS)
                .bind(subject_id)
                .fetch_all(&mut *transaction)
                .await
                .map_err(map_sqlx_error)?;
            let mut erased = 0;
            for row in &rows {
                let mut event = audit_event_from_row(row)?;
                chain::erase_personal(&mut event);
                erased += sqlx::query(ERASE)
                    .bind(event.metadata.to_string())
                    .bind(at)
                    .bind(event.id.as_str())
                    .execute(&mut *transaction)
                    .await
                    .map_err(map_sqlx_error)?
                    .rows_affected();
            }
            erased
        });
        Ok(erased)
    }

    async fn audit_erasure_requests(&self, limit: u32) -> Result<Vec<(String, i64)>, StoreError> {
        with_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT subject_id, requested_at FROM audit_erasures \
                 ORDER BY requested_at, subject_id LIMIT $1",
            )
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
            .map_err(map_sqlx_error)?;
            rows.iter()
                .map(|row| Ok((row.read("subject_id")?, row.read("requested_at")?)))
                .collect()
        })
    }

    async fn drop_audit_erasure_request(
        &self,
        subject_id: &str,
        requested_before: i64,
    ) -> Result<(), StoreError> {
        write_transaction!(self, events: &[], transaction => {
            sqlx::query("DELETE FROM audit_erasures WHERE subject_id = $1 AND requested_at <= $2")
                .bind(subject_id)
                .bind(requested_before)
                .execute(&mut *transaction)
                .await
                .map_err(map_sqlx_error)?;
        });
        Ok(())
    }

    async fn audit_retention_prefix(
        &self,
        cutoff: i64,
        limit: u32,
    ) -> Result<Option<(ChainHead, i64)>, StoreError> {
        const PREFIX: &str = "SELECT chain_seq, chain_hash, occurred_at FROM audit_events \
             WHERE chain_seq IS NOT NULL ORDER BY chain_seq LIMIT $1";
        with_pool!(self, pool => {
            let rows = sqlx::query(PREFIX)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await
                .map_err(map_sqlx_error)?;
            let mut last = None;
            let mut count = 0;
            for row in &rows {
                if row.read::<i64>("occurred_at")? >= cutoff {
                    break;
                }
                last = Some(ChainHead { seq: row.read("chain_seq")?, hash: row.read("chain_hash")? });
                count += 1;
            }
            Ok(last.map(|head| (head, count)))
        })
    }

    async fn remove_audit_prefix(&self, checkpoint: &AuditCheckpoint) -> Result<u64, StoreError> {
        let removed = write_transaction!(self, transaction => {
            // The checkpoint first: the PostgreSQL trigger lets a row go only behind one.
            sqlx::query(
                "INSERT INTO audit_checkpoints (seq, hash, removed, created_at, mac) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(checkpoint.seq)
            .bind(checkpoint.hash.as_str())
            .bind(checkpoint.removed)
            .bind(checkpoint.created_at)
            .bind(checkpoint.mac.as_str())
            .execute(&mut *transaction)
            .await
            .map_err(map_sqlx_error)?;
            sqlx::query("DELETE FROM audit_events WHERE chain_seq IS NOT NULL AND chain_seq <= $1")
                .bind(checkpoint.seq)
                .execute(&mut *transaction)
                .await
                .map_err(map_sqlx_error)?
                .rows_affected()
        });
        Ok(removed)
    }
}
