//! `AdminKeyStore` on SQL: the `admin_api_keys` table.

use async_trait::async_trait;
use gatehouse_domain::StoreError;
use gatehouse_domain::admin_keys::{AdminKeyRecord, AdminKeyStore};
use gatehouse_domain::audit::AuditEvent;

use crate::database::write_transaction;
use crate::error::map_sqlx_error;
use crate::{Database, with_pool};

type KeyRow = (String, String, Vec<u8>, i64, Option<i64>, Option<i64>);

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
            sqlx::query_as(
                "SELECT id, name, key_digest, created_at, last_used_at, revoked_at FROM admin_api_keys \
                 WHERE key_digest = $1",
            )
            .bind(digest)
            .fetch_optional(pool)
            .await
            .map_err(map_sqlx_error)?
        });
        Ok(row.map(|(id, name, key_digest, created_at, last_used_at, revoked_at)| AdminKeyRecord {
            id,
            name,
            key_digest,
            created_at,
            last_used_at,
            revoked_at,
        }))
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
}
