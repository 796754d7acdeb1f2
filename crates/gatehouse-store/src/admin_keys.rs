//! `AdminKeyStore` on SQL: the `admin_api_keys` table.

use async_trait::async_trait;
use gatehouse_domain::StoreError;
use gatehouse_domain::admin_keys::{AdminKeyRecord, AdminKeyStore};
use gatehouse_domain::audit::AuditEvent;
use gatehouse_domain::organizations::ListCursor;

use crate::audit::insert_events;
use crate::database::write_transaction;
use crate::error::map_sqlx_error;
use crate::{Database, with_pool};

/// The columns in the order [`key_from_row`] reads them.
macro_rules! select_admin_keys {
    ($rest:literal) => {
        concat!(
            "SELECT id, name, key_digest, created_at, last_used_at, revoked_at FROM admin_api_keys ",
            $rest
        )
    };
}

type KeyRow = (String, String, Vec<u8>, i64, Option<i64>, Option<i64>);

fn key_from_row(row: KeyRow) -> AdminKeyRecord {
    let (id, name, key_digest, created_at, last_used_at, revoked_at) = row;
    AdminKeyRecord { id, name, key_digest, created_at, last_used_at, revoked_at }
}

#[async_trait]
impl AdminKeyStore for Database {
    async fn insert_admin_key(
        &self,
        key: &AdminKeyRecord,
        events: &[AuditEvent],
    ) -> Result<(), StoreError> {
        write_transaction!(self, events: events, transaction => {
            sqlx::query(
                "INSERT INTO admin_api_keys (id, name, key_digest, created_at, last_used_at, revoked_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(key.id.as_str())
            .bind(key.name.as_str())
            .bind(key.key_digest.as_slice())
            .bind(key.created_at)
            .bind(key.last_used_at)
            .bind(key.revoked_at)
            .execute(&mut *transaction)
            .await
            .map_err(map_sqlx_error)?;
        });
        Ok(())
    }

    async fn admin_key_by_digest(
        &self,
        digest: &[u8],
    ) -> Result<Option<AdminKeyRecord>, StoreError> {
        let row: Option<KeyRow> = with_pool!(self, pool => {
            sqlx::query_as(select_admin_keys!("WHERE key_digest = $1"))
                .bind(digest)
                .fetch_optional(pool)
                .await
                .map_err(map_sqlx_error)?
        });
        Ok(row.map(key_from_row))
    }

    async fn touch_admin_key(&self, id: &str, now: i64) -> Result<(), StoreError> {
        write_transaction!(self, autocommit, pool => {
            sqlx::query("UPDATE admin_api_keys SET last_used_at = $2 WHERE id = $1")
                .bind(id)
                .bind(now)
                .execute(pool)
                .await
                .map_err(map_sqlx_error)?;
        });
        Ok(())
    }

    async fn admin_key(&self, id: &str) -> Result<Option<AdminKeyRecord>, StoreError> {
        let row: Option<KeyRow> = with_pool!(self, pool => {
            sqlx::query_as(select_admin_keys!("WHERE id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await
                .map_err(map_sqlx_error)?
        });
        Ok(row.map(key_from_row))
    }

    async fn list_admin_keys(
        &self,
        after: Option<&ListCursor>,
        limit: u32,
    ) -> Result<Vec<AdminKeyRecord>, StoreError> {
        let (after_time, after_id) = match after {
            Some(cursor) => (cursor.created_at, cursor.id.as_str()),
            None => (i64::MAX, ""),
        };
        let rows: Vec<KeyRow> = with_pool!(self, pool => {
            sqlx::query_as(select_admin_keys!(
                "WHERE created_at < $1 OR (created_at = $1 AND ($2 = '' OR id < $2)) \
                 ORDER BY created_at DESC, id DESC LIMIT $3"
            ))
            .bind(after_time)
            .bind(after_id)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
            .map_err(map_sqlx_error)?
        });
        Ok(rows.into_iter().map(key_from_row).collect())
    }

    async fn revoke_admin_key(
        &self,
        id: &str,
        now: i64,
        events: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let revoked = write_transaction!(self, transaction => {
            let revoked = sqlx::query(
                "UPDATE admin_api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
            )
            .bind(id)
            .bind(now)
            .execute(&mut *transaction)
            .await
            .map_err(map_sqlx_error)?
            .rows_affected()
                == 1;
            // The audit event only for the revocation that happened.
            if revoked {
                insert_events(&mut *transaction, events).await?;
            }
            revoked
        });
        Ok(revoked)
    }
}
