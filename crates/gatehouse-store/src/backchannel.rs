//! `LogoutNoticeStore` on SQL: revoked sessions of back-channel logout clients, announced once
//! (`sessions.logout_notified_at`) in the transaction that writes their outbox rows.

use async_trait::async_trait;
use gatehouse_domain::StoreError;
use gatehouse_domain::oauth::backchannel::{LogoutNotice, LogoutNoticeStore, SealNotices};
use gatehouse_domain::unit_of_work::UnitOfWork;

use crate::columns::StoreRow;
use crate::database::write_transaction;
use crate::error::map_sqlx_error;
use crate::{Database, with_pool};

/// Revoked, unannounced sessions of clients with a logout URI, revoked at or after $1, oldest
/// first, at most $2 (through the partial index `sessions_logout_due`, per client).
macro_rules! due_notices_sql {
    ($lock:literal) => {
        concat!(
            "SELECT s.id AS id, s.user_id AS user_id, s.client_id AS client_id FROM sessions s ",
            "JOIN oauth_clients c ON c.client_id = s.client_id ",
            "WHERE c.backchannel_logout_uri IS NOT NULL AND s.client_id IS NOT NULL ",
            "AND s.revoked_at IS NOT NULL AND s.logout_notified_at IS NULL AND s.revoked_at >= $1 ",
            "ORDER BY s.revoked_at, s.id LIMIT $2",
            $lock
        )
    };
}

#[async_trait]
impl LogoutNoticeStore for Database {
    async fn queue_logout_notices(
        &self,
        since: i64,
        limit: u32,
        now: i64,
        seal: SealNotices<'_>,
    ) -> Result<usize, StoreError> {
        // Most passes find nothing: a read on the pool says so without taking the writer.
        let any_due = with_pool!(self, pool => {
            sqlx::query(due_notices_sql!(""))
                .bind(since)
                .bind(1_i64)
                .fetch_optional(pool)
                .await
                .map(|row| row.is_some())
                .map_err(map_sqlx_error)
        })?;
        if !any_due {
            return Ok(0);
        }
        let due = match self {
            Database::Sqlite(_) => due_notices_sql!(""),
            // Instances share the work: a row another instance is announcing is skipped.
            Database::Postgres(_) => due_notices_sql!(" FOR UPDATE OF s SKIP LOCKED"),
        };
        let queued = write_transaction!(self, events: &[], transaction => {
            let rows = sqlx::query(due)
                .bind(since)
                .bind(i64::from(limit))
                .fetch_all(&mut *transaction)
                .await
                .map_err(map_sqlx_error)?;
            if rows.is_empty() {
                return Ok(0);
            }
            let notices = rows
                .iter()
                .map(|row| {
                    Ok(LogoutNotice {
                        session_id: row.read("id")?,
                        user_id: row.read("user_id")?,
                        client_id: row.read("client_id")?,
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            let work = UnitOfWork { outbox: seal(&notices), ..UnitOfWork::default() };
            crate::notify::apply_work(&mut *transaction, &work).await?;
            for notice in &notices {
                sqlx::query("UPDATE sessions SET logout_notified_at = $2 WHERE id = $1")
                    .bind(notice.session_id.as_str())
                    .bind(now)
                    .execute(&mut *transaction)
                    .await
                    .map_err(map_sqlx_error)?;
            }
            notices.len()
        });
        Ok(queued)
    }
}
