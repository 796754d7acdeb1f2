//! `DataKeyStore` on SQL: the `data_keys` table of the key hierarchy.

use async_trait::async_trait;
use gatehouse_domain::StoreError;
use gatehouse_domain::data_keys::{DataKeyStore, StoredDataKey};

use crate::database::write_transaction;
use crate::error::map_sqlx_error;
use crate::{Database, with_pool};

type DataKeyRow = (String, i64, i64, Vec<u8>, i64, i64, i64);

fn key_from_row(row: DataKeyRow) -> StoredDataKey {
    let (purpose, version, key_id, wrapped_key, wrapped_by, created_at, updated_at) = row;
    StoredDataKey { purpose, version, key_id, wrapped_key, wrapped_by, created_at, updated_at }
}

#[async_trait]
impl DataKeyStore for Database {
    async fn list_data_keys(&self) -> Result<Vec<StoredDataKey>, StoreError> {
        let rows: Vec<DataKeyRow> = with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT purpose, version, key_id, wrapped_key, wrapped_by, created_at, updated_at \
                 FROM data_keys ORDER BY purpose, version",
            )
            .fetch_all(pool)
            .await
            .map_err(map_sqlx_error)?
        });
        Ok(rows.into_iter().map(key_from_row).collect())
    }

    async fn insert_data_keys_if_absent(&self, keys: &[StoredDataKey]) -> Result<(), StoreError> {
        // Instances starting together each try their own keys; the first transaction wins
        // every row and the others insert nothing, then read back the winner's keys.
        write_transaction!(self, transaction => {
            for key in keys {
                sqlx::query(
                    "INSERT INTO data_keys (purpose, version, key_id, wrapped_key, wrapped_by, \
                     created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (purpose, version) DO NOTHING",
                )
                .bind(key.purpose.as_str())
                .bind(key.version)
                .bind(key.key_id)
                .bind(key.wrapped_key.as_slice())
                .bind(key.wrapped_by)
                .bind(key.created_at)
                .bind(key.updated_at)
                .execute(&mut *transaction)
                .await
                .map_err(map_sqlx_error)?;
            }
        });
        Ok(())
    }

    async fn rewrap_data_key(
        &self,
        key: &StoredDataKey,
        expected_wrapped_by: i64,
    ) -> Result<bool, StoreError> {
        let updated = write_transaction!(self, autocommit, pool => {
            sqlx::query(
                "UPDATE data_keys SET wrapped_key = $1, wrapped_by = $2, updated_at = $3 \
                 WHERE purpose = $4 AND version = $5 AND wrapped_by = $6",
            )
            .bind(key.wrapped_key.as_slice())
            .bind(key.wrapped_by)
            .bind(key.updated_at)
            .bind(key.purpose.as_str())
            .bind(key.version)
            .bind(expected_wrapped_by)
            .execute(pool)
            .await
            .map_err(map_sqlx_error)?
            .rows_affected()
        });
        Ok(updated == 1)
    }
}
