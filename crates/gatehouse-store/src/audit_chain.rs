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
use crate::batch::{SqliteBatch, two_step_write};
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

/// Every link of a batch (arrays of seq, hash, personal digest and salt, event id) and the
/// head's move (`$6`, `$7`); answers how many events it linked.
const LINK_ALL_POSTGRES: &str = "WITH links AS (SELECT * FROM unnest($1::bigint[], $2::text[], \
     $3::text[], $4::text[], $5::text[]) AS l(seq, hash, personal_digest, personal_salt, id)), \
     linked AS (UPDATE audit_events a SET chain_seq = l.seq, chain_hash = l.hash, \
     personal_digest = l.personal_digest, personal_salt = l.personal_salt FROM links l \
     WHERE a.id = l.id AND a.chain_seq IS NULL RETURNING 1), \
     moved AS (UPDATE audit_chain_head SET last_seq = $6, last_hash = $7 WHERE id = 1 RETURNING 1) \
     SELECT COUNT(*) FROM linked";

/// A batch's links in one array per column, for [`LINK_ALL_POSTGRES`].
#[derive(Default)]
struct LinkColumns {
    seq: Vec<i64>,
    hash: Vec<String>,
    personal_digest: Vec<String>,
    personal_salt: Vec<String>,
    id: Vec<String>,
}

/// The links of `rows` (unchained events, in chain order) after `head`, each event's id with
/// its link, and the head after the last (`None` for no rows).
struct Links {
    links: Vec<(String, chain::ChainLink)>,
    head: Option<ChainHead>,
}

fn link_all(mut head: ChainHead, rows: &[impl StoreRow]) -> Result<Links, StoreError> {
    let mut links = Vec::with_capacity(rows.len());
    for row in rows {
        let event = audit_event_from_row(row)?;
        let link = chain::link(&head, &event);
        head = ChainHead { seq: link.seq, hash: link.hash.clone() };
        links.push((event.id, link));
    }
    let head = (!links.is_empty()).then_some(head);
    Ok(Links { links, head })
}

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
        let limit = i64::from(limit);
        match self {
            // Two round trips to the writer's thread for a whole batch: the head and the
            // unchained events, then every link, the head's move and the commit.
            Database::Sqlite(sqlite) => {
                let mut read = SqliteBatch::default();
                read.push(head_sql!(""));
                read.push(UNCHAINED_SQLITE).bind(limit);
                two_step_write(&sqlite.writer, read, |mut steps| {
                    let rows = steps.pop().map(|step| step.rows).unwrap_or_default();
                    let head = steps.pop().and_then(|step| step.rows.into_iter().next());
                    let head =
                        head.ok_or_else(|| StoreError::Corrupt("no audit chain head".into()))?;
                    let links = link_all(head_from_row(&head)?, &rows)?;
                    let mut write = SqliteBatch::default();
                    for (id, link) in &links.links {
                        write
                            .push(LINK)
                            .bind(link.seq)
                            .bind(link.hash.as_str())
                            .bind(link.personal_digest.as_str())
                            .bind(link.personal_salt.as_str())
                            .bind(id.as_str());
                    }
                    if let Some(head) = &links.head {
                        write.push(MOVE_HEAD).bind(head.seq).bind(head.hash.as_str());
                    }
                    Ok((links.links.len() as u64, write))
                })
                .await
            }
            // Every link of a batch in one statement (with the head's move): four round trips
            // a batch instead of one per event.
            Database::Postgres(postgres) => {
                let mut transaction = postgres.pool.begin().await.map_err(map_sqlx_error)?;
                let head = sqlx::query(head_sql!(" FOR UPDATE"))
                    .fetch_one(&mut *transaction)
                    .await
                    .map_err(map_sqlx_error)?;
                let rows = sqlx::query(UNCHAINED)
                    .bind(limit)
                    .fetch_all(&mut *transaction)
                    .await
                    .map_err(map_sqlx_error)?;
                let links = link_all(head_from_row(&head)?, &rows)?;
                let Some(head) = links.head else { return Ok(0) };
                let mut columns = LinkColumns::default();
                for (id, link) in links.links {
                    columns.seq.push(link.seq);
                    columns.hash.push(link.hash);
                    columns.personal_digest.push(link.personal_digest);
                    columns.personal_salt.push(link.personal_salt);
                    columns.id.push(id);
                }
                let expected = columns.id.len() as u64;
                let linked: i64 = sqlx::query_scalar(LINK_ALL_POSTGRES)
                    .bind(columns.seq)
                    .bind(columns.hash)
                    .bind(columns.personal_digest)
                    .bind(columns.personal_salt)
                    .bind(columns.id)
                    .bind(head.seq)
                    .bind(head.hash.as_str())
                    .fetch_one(&mut *transaction)
                    .await
                    .map_err(map_sqlx_error)?;
                if u64::try_from(linked).ok() != Some(expected) {
                    // Chained by someone else under our lock: the head lock was not held.
                    return Err(StoreError::Corrupt(format!(
                        "{linked} of {expected} audit events linked: chained twice"
                    )));
                }
                transaction.commit().await.map_err(map_sqlx_error)?;
                Ok(expected)
            }
        }
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
