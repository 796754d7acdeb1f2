//! `DeviceCodeStore` on SQL: the `device_codes` table.

use async_trait::async_trait;
use gatehouse_domain::StoreError;
use gatehouse_domain::audit::AuditEvent;
use gatehouse_domain::oauth::device_flow::{DeviceCodeRecord, DeviceCodeStore, DeviceStatus};

use crate::audit::insert_events;
use crate::columns::{BindValue, StoreRow};
use crate::database::write_transaction;
use crate::error::map_sqlx_error;
use crate::{Database, with_pool};

macro_rules! select_device_codes {
    ($rest:literal) => {
        concat!(
            "SELECT device_code_digest, user_code, client_id, scope, status, user_id, auth_time, amr, ",
            "interval_seconds, last_polled_at, created_at, expires_at FROM device_codes ",
            $rest
        )
    };
}

/// One `device_codes` row, as `select_device_codes!` selects it.
fn device_code_from_row(row: &impl StoreRow) -> Result<DeviceCodeRecord, StoreError> {
    let status: String = row.read("status")?;
    Ok(DeviceCodeRecord {
        device_code_digest: row.read("device_code_digest")?,
        user_code: row.read("user_code")?,
        client_id: row.read("client_id")?,
        scope: row.read("scope")?,
        status: DeviceStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("device code status {status}")))?,
        user_id: row.read("user_id")?,
        auth_time: row.read("auth_time")?,
        amr: row.read("amr")?,
        interval_seconds: row.read("interval_seconds")?,
        last_polled_at: row.read("last_polled_at")?,
        created_at: row.read("created_at")?,
        expires_at: row.read("expires_at")?,
    })
}

/// At most one device code matching `sql` (a `select_device_codes!`), whose one parameter
/// is `key`.
async fn fetch_device_code<'k>(
    database: &Database,
    sql: &'static str,
    key: impl BindValue<'k>,
) -> Result<Option<DeviceCodeRecord>, StoreError> {
    with_pool!(database, pool => {
        let row = sqlx::query(sql).bind(key).fetch_optional(pool).await.map_err(map_sqlx_error)?;
        row.as_ref().map(device_code_from_row).transpose()
    })
}

#[async_trait]
impl DeviceCodeStore for Database {
    async fn insert_device_code(&self, record: &DeviceCodeRecord) -> Result<(), StoreError> {
        write_transaction!(self, autocommit, pool => {
            // Expired codes go first, so the table (and the user-code space) stays small.
            sqlx::query("DELETE FROM device_codes WHERE expires_at < $1")
                .bind(record.created_at - 3600)
                .execute(pool)
                .await
                .map_err(map_sqlx_error)?;
            sqlx::query(
                "INSERT INTO device_codes (device_code_digest, user_code, client_id, scope, status, user_id, \
                 auth_time, interval_seconds, last_polled_at, created_at, expires_at, amr) VALUES \
                 ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .bind(record.device_code_digest.as_slice())
            .bind(record.user_code.as_str())
            .bind(record.client_id.as_str())
            .bind(record.scope.as_str())
            .bind(record.status.as_str())
            .bind(record.user_id.as_deref())
            .bind(record.auth_time)
            .bind(record.interval_seconds)
            .bind(record.last_polled_at)
            .bind(record.created_at)
            .bind(record.expires_at)
            .bind(record.amr.as_deref())
            .execute(pool)
            .await
            .map_err(map_sqlx_error)?;
        });
        Ok(())
    }

    async fn device_code_by_digest(
        &self,
        digest: &[u8],
    ) -> Result<Option<DeviceCodeRecord>, StoreError> {
        fetch_device_code(self, select_device_codes!("WHERE device_code_digest = $1"), digest).await
    }

    async fn device_code_by_user_code(
        &self,
        user_code: &str,
    ) -> Result<Option<DeviceCodeRecord>, StoreError> {
        fetch_device_code(self, select_device_codes!("WHERE user_code = $1"), user_code).await
    }

    async fn decide_device_code(
        &self,
        user_code: &str,
        status: DeviceStatus,
        user_id: &str,
        auth_time: i64,
        amr: Option<&str>,
        events: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let decided = write_transaction!(self, transaction => {
            let decided = sqlx::query(
                "UPDATE device_codes SET status = $2, user_id = $3, auth_time = $4, amr = $5 \
                 WHERE user_code = $1 AND status = 'pending'",
            )
            .bind(user_code)
            .bind(status.as_str())
            .bind(user_id)
            .bind(auth_time)
            .bind(amr)
            .execute(&mut *transaction)
            .await
            .map_err(map_sqlx_error)?
            .rows_affected()
                == 1;
            // The audit events only for a decision that was taken.
            if decided {
                insert_events(&mut *transaction, events).await?;
            }
            decided
        });
        Ok(decided)
    }

    async fn record_device_poll(&self, digest: &[u8], now: i64) -> Result<bool, StoreError> {
        // The interval is decided by the conditional UPDATE itself: parallel polls queue on the
        // row (and on SQLite's write lock), and each sees the `last_polled_at` of the one
        // before, so at most one poll per interval is in time.
        let in_time = write_transaction!(self, transaction => {
            let in_time = sqlx::query(
                "UPDATE device_codes SET last_polled_at = $2 WHERE device_code_digest = $1 \
                 AND (last_polled_at IS NULL OR $2 - last_polled_at >= interval_seconds)",
            )
            .bind(digest)
            .bind(now)
            .execute(&mut *transaction)
            .await
            .map_err(map_sqlx_error)?
            .rows_affected()
                == 1;
            if !in_time {
                sqlx::query(
                    "UPDATE device_codes SET last_polled_at = $2, interval_seconds = interval_seconds + 5 \
                     WHERE device_code_digest = $1",
                )
                .bind(digest)
                .bind(now)
                .execute(&mut *transaction)
                .await
                .map_err(map_sqlx_error)?;
            }
            in_time
        });
        Ok(in_time)
    }

    async fn consume_device_code(&self, digest: &[u8]) -> Result<bool, StoreError> {
        let consumed = write_transaction!(self, autocommit, pool => {
            sqlx::query("UPDATE device_codes SET status = 'consumed' WHERE device_code_digest = $1 AND status = 'approved'")
                .bind(digest)
                .execute(pool)
                .await
                .map_err(map_sqlx_error)?
                .rows_affected()
        });
        Ok(consumed == 1)
    }
}
