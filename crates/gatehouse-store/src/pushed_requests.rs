//! `PushedRequestStore` on SQL: the `pushed_authorization_requests` table (RFC 9126).

use async_trait::async_trait;
use gatehouse_domain::StoreError;
use gatehouse_domain::oauth::par::{PushedRequestRecord, PushedRequestStore};

use crate::columns::StoreRow;
use crate::database::write_transaction;
use crate::error::map_sqlx_error;
use crate::{Database, with_pool};

fn pushed_request_from_row(row: &impl StoreRow) -> Result<PushedRequestRecord, StoreError> {
    Ok(PushedRequestRecord {
        request_digest: row.read("request_digest")?,
        client_id: row.read("client_id")?,
        parameters: row.read("parameters")?,
        created_at: row.read("created_at")?,
        expires_at: row.read("expires_at")?,
        opened_at: row.read("opened_at")?,
        used_at: row.read("used_at")?,
    })
}

#[async_trait]
impl PushedRequestStore for Database {
    async fn insert_pushed_request(&self, record: &PushedRequestRecord) -> Result<(), StoreError> {
        write_transaction!(self, autocommit, pool => {
            sqlx::query(
                "INSERT INTO pushed_authorization_requests (request_digest, client_id, parameters, \
                 created_at, expires_at, opened_at, used_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(record.request_digest.as_slice())
            .bind(record.client_id.as_str())
            .bind(record.parameters.as_str())
            .bind(record.created_at)
            .bind(record.expires_at)
            .bind(record.opened_at)
            .bind(record.used_at)
            .execute(pool)
            .await
            .map_err(map_sqlx_error)?;
        });
        Ok(())
    }

    async fn pushed_request(
        &self,
        digest: &[u8],
    ) -> Result<Option<PushedRequestRecord>, StoreError> {
        with_pool!(self, pool => {
            let row = sqlx::query(
                "SELECT request_digest, client_id, parameters, created_at, expires_at, opened_at, \
                 used_at FROM pushed_authorization_requests WHERE request_digest = $1",
            )
            .bind(digest)
            .fetch_optional(pool)
            .await
            .map_err(map_sqlx_error)?;
            row.as_ref().map(pushed_request_from_row).transpose()
        })
    }

    async fn open_pushed_request(
        &self,
        digest: &[u8],
        now: i64,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        let opened = write_transaction!(self, autocommit, pool => {
            sqlx::query(
                "UPDATE pushed_authorization_requests SET opened_at = $2, expires_at = $3 \
                 WHERE request_digest = $1 AND opened_at IS NULL AND used_at IS NULL",
            )
            .bind(digest)
            .bind(now)
            .bind(expires_at)
            .execute(pool)
            .await
            .map_err(map_sqlx_error)?
            .rows_affected()
        });
        Ok(opened == 1)
    }

    async fn replace_pushed_parameters(
        &self,
        digest: &[u8],
        parameters: &str,
    ) -> Result<(), StoreError> {
        write_transaction!(self, autocommit, pool => {
            sqlx::query(
                "UPDATE pushed_authorization_requests SET parameters = $2 \
                 WHERE request_digest = $1 AND used_at IS NULL",
            )
            .bind(digest)
            .bind(parameters)
            .execute(pool)
            .await
            .map_err(map_sqlx_error)?;
        });
        Ok(())
    }

    async fn spend_pushed_request(&self, digest: &[u8], now: i64) -> Result<bool, StoreError> {
        let spent = write_transaction!(self, autocommit, pool => {
            sqlx::query(
                "UPDATE pushed_authorization_requests SET used_at = $2 \
                 WHERE request_digest = $1 AND used_at IS NULL",
            )
            .bind(digest)
            .bind(now)
            .execute(pool)
            .await
            .map_err(map_sqlx_error)?
            .rows_affected()
        });
        Ok(spent == 1)
    }
}
