//! `InitialTokenStore` (the `registration_tokens` table: initial access tokens of dynamic
//! client registration).

use async_trait::async_trait;
use gatehouse_domain::StoreError;
use gatehouse_domain::audit::AuditEvent;
use gatehouse_domain::oauth::registration::{InitialTokenRecord, InitialTokenStore};

use crate::Database;
use crate::database::write_transaction;
use crate::error::map_sqlx_error;

#[async_trait]
impl InitialTokenStore for Database {
    async fn insert_initial_token(
        &self,
        record: &InitialTokenRecord,
        events: &[AuditEvent],
    ) -> Result<(), StoreError> {
        write_transaction!(self, events: events, transaction => {
            sqlx::query(
                "INSERT INTO registration_tokens (id, token_digest, name, max_uses, uses, created_at, \
                 expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(record.id.as_str())
            .bind(record.token_digest.as_slice())
            .bind(record.name.as_str())
            .bind(record.max_uses)
            .bind(record.uses)
            .bind(record.created_at)
            .bind(record.expires_at)
            .execute(&mut *transaction)
            .await
            .map_err(map_sqlx_error)?;
        });
        Ok(())
    }

    async fn spend_initial_token(&self, digest: &[u8], now: i64) -> Result<bool, StoreError> {
        // One statement: two registrations racing for the last use cannot both get it.
        let spent = write_transaction!(self, autocommit, pool => {
            sqlx::query(
                "UPDATE registration_tokens SET uses = uses + 1 \
                 WHERE token_digest = $1 AND uses < max_uses AND expires_at > $2",
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
