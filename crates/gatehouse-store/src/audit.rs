//! `AuditStore` on SQL: the append-only `audit_events` table, and the macro other stores use
//! to write events inside their own transactions.

use async_trait::async_trait;
use gatehouse_domain::StoreError;
use gatehouse_domain::audit::{AuditCursor, AuditEvent, AuditFilter, AuditStore};
use gatehouse_domain::webhooks::is_catalogued;

use crate::columns::{StoreConnection, StoreQuery, StoreRow};
use crate::database::write_transaction;
use crate::error::map_sqlx_error;
use crate::{Database, with_pool};

pub(crate) const INSERT_AUDIT_EVENT: &str = "INSERT INTO audit_events (id, occurred_at, action, \
     actor_type, actor_id, target_type, target_id, ip, user_agent, request_id, metadata, \
     organization_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";

/// The columns of an event, as [`audit_event_from_row`] reads them.
macro_rules! audit_columns {
    () => {
        "id, occurred_at, action, actor_type, actor_id, target_type, target_id, organization_id, \
         ip, user_agent, request_id, metadata"
    };
}
pub(crate) use audit_columns;

/// The search's filters (`$1`..`$8`) and keyset (`$9` time, `$10` id), shared by the listing
/// (newest first) and the export (oldest first).
macro_rules! audit_filters {
    () => {
        "($1 IS NULL OR actor_id = $1 OR target_id = $1) AND ($2 IS NULL OR action = $2) \
         AND ($3 IS NULL OR occurred_at >= $3) AND ($4 IS NULL OR occurred_at < $4) \
         AND ($5 IS NULL OR actor_id = $5) AND ($6 IS NULL OR target_id = $6) \
         AND ($7 IS NULL OR ip = $7) AND ($8 IS NULL OR organization_id = $8)"
    };
}

/// Binds an event's columns in [`INSERT_AUDIT_EVENT`]'s order.
pub(crate) fn bind_audit_event<Q: StoreQuery>(query: Q, event: &AuditEvent) -> Q {
    query
        .bind_value(event.id.as_str())
        .bind_value(event.occurred_at)
        .bind_value(event.action.as_str())
        .bind_value(event.actor_type.as_str())
        .bind_value(event.actor_id.as_deref())
        .bind_value(event.target_type.as_deref())
        .bind_value(event.target_id.as_deref())
        .bind_value(event.ip.as_deref())
        .bind_value(event.user_agent.as_deref())
        .bind_value(event.request_id.as_deref())
        .bind_value(event.metadata.to_string())
        .bind_value(event.organization_id.as_deref())
}

/// Queues a catalogued event for the relay (webhooks): `$1` the event id, `$2` its time.
pub(crate) const QUEUE_EVENT: &str =
    "INSERT INTO event_queue (event_id, queued_at) VALUES ($1, $2)";

/// Inserts `events` on `connection` (the change's transaction), so the events commit or roll
/// back with the change they record; a catalogued event is queued for the relay in the same
/// transaction (nothing is emitted for a change that rolled back).
pub(crate) async fn insert_events<C: StoreConnection>(
    connection: &mut C,
    events: &[AuditEvent],
) -> Result<(), StoreError> {
    for event in events {
        connection.execute(bind_audit_event(C::statement(INSERT_AUDIT_EVENT), event)).await?;
        if is_catalogued(&event.action) {
            let queue = C::statement(QUEUE_EVENT);
            connection
                .execute(queue.bind_value(event.id.as_str()).bind_value(event.occurred_at))
                .await?;
        }
    }
    Ok(())
}

/// One `audit_events` row.
pub(crate) fn audit_event_from_row(row: &impl StoreRow) -> Result<AuditEvent, StoreError> {
    let metadata: String = row.read("metadata")?;
    Ok(AuditEvent {
        id: row.read("id")?,
        occurred_at: row.read("occurred_at")?,
        action: row.read("action")?,
        actor_type: row.read("actor_type")?,
        actor_id: row.read("actor_id")?,
        target_type: row.read("target_type")?,
        target_id: row.read("target_id")?,
        organization_id: row.read("organization_id")?,
        ip: row.read("ip")?,
        user_agent: row.read("user_agent")?,
        request_id: row.read("request_id")?,
        metadata: serde_json::from_str(&metadata)
            .map_err(|error| StoreError::Corrupt(format!("audit metadata: {error}")))?,
    })
}

#[async_trait]
impl AuditStore for Database {
    async fn append_audit_events(&self, events: &[AuditEvent]) -> Result<(), StoreError> {
        write_transaction!(self, events: events, transaction => {});
        Ok(())
    }

    async fn list_audit_events(
        &self,
        filter: &AuditFilter,
        after: Option<&AuditCursor>,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        // Newest first; the cursor is the (time, id) of the last event of the previous page.
        const SQL: &str = concat!(
            "SELECT ",
            audit_columns!(),
            " FROM audit_events WHERE ",
            audit_filters!(),
            " AND occurred_at <= $9 AND (occurred_at < $9 OR id < $10) \
             ORDER BY occurred_at DESC, id DESC LIMIT $11"
        );
        self.search_audit_events(SQL, filter, after.or(Some(&NEWEST)), limit).await
    }

    async fn count_audit_events(&self, filter: &AuditFilter) -> Result<u64, StoreError> {
        const SQL: &str =
            concat!("SELECT COUNT(*) AS matching FROM audit_events WHERE ", audit_filters!());
        with_pool!(self, pool => {
            let row = sqlx::query(SQL)
                .bind(filter.subject_id.as_deref())
                .bind(filter.action.as_deref())
                .bind(filter.from)
                .bind(filter.until)
                .bind(filter.actor_id.as_deref())
                .bind(filter.target_id.as_deref())
                .bind(filter.ip.as_deref())
                .bind(filter.organization_id.as_deref())
                .fetch_one(pool)
                .await
                .map_err(map_sqlx_error)?;
            let matching: i64 = row.read("matching")?;
            Ok(u64::try_from(matching).unwrap_or(0))
        })
    }

    async fn export_audit_events(
        &self,
        filter: &AuditFilter,
        after: Option<&AuditCursor>,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            audit_columns!(),
            " FROM audit_events WHERE ",
            audit_filters!(),
            " AND occurred_at >= $9 AND (occurred_at > $9 OR id > $10) \
             ORDER BY occurred_at, id LIMIT $11"
        );
        self.search_audit_events(SQL, filter, after.or(Some(&OLDEST)), limit).await
    }
}

/// Where a first page starts. The keyset condition is written as a range on `occurred_at`
/// (`occurred_at >= $9 AND (occurred_at > $9 OR id > $10)`) with no `IS NULL` escape, so both
/// backends seek in the `(occurred_at, id)` index instead of scanning it: an export of a
/// million rows costs a thousand seeks, not a thousand scans.
const OLDEST: AuditCursor = AuditCursor { occurred_at: i64::MIN, id: String::new() };
const NEWEST: AuditCursor = AuditCursor { occurred_at: i64::MAX, id: String::new() };

impl Database {
    /// Runs one of the search statements (filters, keyset, limit in that order).
    async fn search_audit_events(
        &self,
        sql: &'static str,
        filter: &AuditFilter,
        after: Option<&AuditCursor>,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let (cursor_time, cursor_id) = match after {
            Some(cursor) => (cursor.occurred_at, cursor.id.as_str()),
            None => (OLDEST.occurred_at, ""),
        };
        with_pool!(self, pool => {
            let rows = sqlx::query(sql)
                .bind(filter.subject_id.as_deref())
                .bind(filter.action.as_deref())
                .bind(filter.from)
                .bind(filter.until)
                .bind(filter.actor_id.as_deref())
                .bind(filter.target_id.as_deref())
                .bind(filter.ip.as_deref())
                .bind(filter.organization_id.as_deref())
                .bind(cursor_time)
                .bind(cursor_id)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await
                .map_err(map_sqlx_error)?;
            rows.iter().map(audit_event_from_row).collect()
        })
    }
}
