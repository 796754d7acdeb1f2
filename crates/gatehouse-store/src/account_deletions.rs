//! `AccountDeletionStore` on SQL: the `account_deletions` table (rows are written through the
//! unit of work, with the suspension or restoration they belong to).

use async_trait::async_trait;
use gatehouse_domain::StoreError;
use gatehouse_domain::registration::deletion::{AccountDeletionStore, ScheduledDeletion};

use crate::columns::StoreRow;
use crate::error::map_sqlx_error;
use crate::{Database, with_pool};

#[async_trait]
impl AccountDeletionStore for Database {
    async fn deletion_by_restore_digest(
        &self,
        digest: &[u8],
    ) -> Result<Option<ScheduledDeletion>, StoreError> {
        with_pool!(self, pool => {
            let row = sqlx::query(
                "SELECT user_id, requested_at, due_at FROM account_deletions WHERE restore_digest = $1",
            )
            .bind(digest)
            .fetch_optional(pool)
            .await
            .map_err(map_sqlx_error)?;
            match row {
                Some(row) => Ok(Some(ScheduledDeletion {
                    user_id: row.read("user_id")?,
                    requested_at: row.read("requested_at")?,
                    due_at: row.read("due_at")?,
                })),
                None => Ok(None),
            }
        })
    }

    async fn due_deletions(&self, now: i64, limit: u32) -> Result<Vec<String>, StoreError> {
        with_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT user_id FROM account_deletions WHERE due_at <= $1 \
                 ORDER BY due_at, user_id LIMIT $2",
            )
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
            .map_err(map_sqlx_error)?;
            rows.iter().map(|row| row.read("user_id")).collect()
        })
    }
}
