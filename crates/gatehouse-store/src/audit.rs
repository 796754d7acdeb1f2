//! `AuditStore` on SQL: the append-only `audit_events` table, and the macro other stores use
//! to write events inside their own transactions.

use async_trait::async_trait;
use gatehouse_domain::StoreError;
use gatehouse_domain::audit::{AuditCursor, AuditEvent, AuditFilter, AuditStore};
use sqlx::Row;

use crate::database::write_transaction;
use crate::error::map_sqlx_error;
use crate::{Database, with_pool};

pub(crate) const INSERT_AUDIT_EVENT: &str = "INSERT INTO audit_events (id, occurred_at, action, \
     actor_type, actor_id, target_type, target_id, ip, user_agent, request_id, metadata) VALUES \
     ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";

/// Binds an event's columns in [`INSERT_AUDIT_EVENT`]'s order.
macro_rules! bind_audit_event {
    ($query:expr, $event:expr) => {
        $query
            .bind($event.id.as_str())
            .bind($event.occurred_at)
            .bind($event.action.as_str())
            .bind($event.actor_type.as_str())
            .bind($event.actor_id.as_deref())
            .bind($event.target_type.as_deref())
            .bind($event.target_id.as_deref())
            .bind($event.ip.as_deref())
            .bind($event.user_agent.as_deref())
            .bind($event.request_id.as_deref())
            .bind($event.metadata.to_string())
    };
}
pub(crate) use bind_audit_event;

/// Inserts `$events` (a `&[AuditEvent]`) with `$executor`, typically `&mut *transaction`, so
/// the events commit or roll back with the change they record.
macro_rules! insert_events {
    ($executor:expr, $events:expr) => {
        for event in $events {
            $crate::audit::bind_audit_event!(sqlx::query($crate::audit::INSERT_AUDIT_EVENT), event)
                .execute($executor)
                .await
                .map_err($crate::error::map_sqlx_error)?;
        }
    };
}
pub(crate) use insert_events;

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
        const SQL: &str = "SELECT id, occurred_at, action, actor_type, actor_id, target_type, \
            target_id, ip, user_agent, request_id, metadata FROM audit_events WHERE \
            ($1 IS NULL OR actor_id = $1 OR target_id = $1) AND ($2 IS NULL OR action = $2) \
            AND ($3 IS NULL OR occurred_at >= $3) AND ($4 IS NULL OR occurred_at < $4) \
            AND ($5 IS NULL OR occurred_at < $5 OR (occurred_at = $5 AND id < $6)) \
            ORDER BY occurred_at DESC, id DESC LIMIT $7";
        let (cursor_time, cursor_id) = match after {
            Some(cursor) => (Some(cursor.occurred_at), cursor.id.as_str()),
            None => (None, ""),
        };
        with_pool!(self, pool => {
            let rows = sqlx::query(SQL)
                .bind(filter.subject_id.as_deref())
                .bind(filter.action.as_deref())
                .bind(filter.from)
                .bind(filter.until)
                .bind(cursor_time)
                .bind(cursor_id)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await
                .map_err(map_sqlx_error)?;
            let mut events = Vec::with_capacity(rows.len());
            for row in rows {
                let metadata: String = row.try_get("metadata").map_err(map_sqlx_error)?;
                events.push(AuditEvent {
                    id: row.try_get("id").map_err(map_sqlx_error)?,
                    occurred_at: row.try_get("occurred_at").map_err(map_sqlx_error)?,
                    action: row.try_get("action").map_err(map_sqlx_error)?,
                    actor_type: row.try_get("actor_type").map_err(map_sqlx_error)?,
                    actor_id: row.try_get("actor_id").map_err(map_sqlx_error)?,
                    target_type: row.try_get("target_type").map_err(map_sqlx_error)?,
                    target_id: row.try_get("target_id").map_err(map_sqlx_error)?,
                    ip: row.try_get("ip").map_err(map_sqlx_error)?,
                    user_agent: row.try_get("user_agent").map_err(map_sqlx_error)?,
                    request_id: row.try_get("request_id").map_err(map_sqlx_error)?,
                    metadata: serde_json::from_str(&metadata)
                        .map_err(|error| StoreError::Corrupt(format!("audit metadata: {error}")))?,
                });
            }
            Ok(events)
        })
    }
}
