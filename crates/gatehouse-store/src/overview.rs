//! `OverviewStore` on SQL: the admin overview's counts — audit events per action and UTC day
//! (a range scan of `audit_events_time`), active sessions, accounts.

use async_trait::async_trait;
use gatehouse_domain::StoreError;
use gatehouse_domain::overview::{ActionDayCount, OverviewStore};

use crate::error::map_sqlx_error;
use crate::{Database, with_pool};

#[async_trait]
impl OverviewStore for Database {
    async fn action_counts_by_day(
        &self,
        actions: &[&str],
        since: i64,
    ) -> Result<Vec<ActionDayCount>, StoreError> {
        if actions.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders =
            (0..actions.len()).map(|i| format!("${}", i + 2)).collect::<Vec<_>>().join(", ");
        // Only placeholders are formatted in; the actions travel as bound values.
        let sql = format!(
            "SELECT action, occurred_at / 86400 AS day, COUNT(*) AS count FROM audit_events \
             WHERE occurred_at >= $1 AND action IN ({placeholders}) GROUP BY action, day"
        );
        with_pool!(self, pool => {
            let mut query = sqlx::query_as::<_, (String, i64, i64)>(sqlx::AssertSqlSafe(sql.as_str())).bind(since);
            for action in actions {
                query = query.bind(*action);
            }
            let rows = query.fetch_all(pool).await.map_err(map_sqlx_error)?;
            Ok(rows
                .into_iter()
                .map(|(action, day, count)| ActionDayCount { action, day, count })
                .collect())
        })
    }

    async fn count_active_sessions(&self, now: i64) -> Result<i64, StoreError> {
        with_pool!(self, pool => {
            sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM sessions WHERE revoked_at IS NULL AND expires_at > $1",
            )
            .bind(now)
            .fetch_one(pool)
            .await
            .map_err(map_sqlx_error)
        })
    }

    async fn count_users(&self) -> Result<i64, StoreError> {
        with_pool!(self, pool => {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM users")
                .fetch_one(pool)
                .await
                .map_err(map_sqlx_error)
        })
    }
}
