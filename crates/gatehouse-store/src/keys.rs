//! `SigningKeyStore` on SQL: the `signing_keys` table.

use async_trait::async_trait;
use gatehouse_domain::audit::AuditEvent;
use gatehouse_domain::{Conflict, KeyState, SigningKeyStore, StoreError, StoredSigningKey};

use crate::columns::StoreQuery;
use crate::database::write_transaction;
use crate::error::map_sqlx_error;
use crate::{Database, with_pool};

/// The columns in the order [`key_from_row`] reads them.
macro_rules! select_keys {
    ($rest:literal) => {
        concat!(
            "SELECT kid, algorithm, sealed_private_key, public_jwk, state, created_at, ",
            "retired_at, publish_until FROM signing_keys ",
            $rest
        )
    };
}

type KeyRow = (String, String, Vec<u8>, String, String, i64, Option<i64>, Option<i64>);

fn key_from_row(row: KeyRow) -> Result<StoredSigningKey, StoreError> {
    let (
        kid,
        algorithm,
        sealed_private_key,
        public_jwk,
        state,
        created_at,
        retired_at,
        publish_until,
    ) = row;
    Ok(StoredSigningKey {
        algorithm: algorithm.parse().map_err(|_| {
            StoreError::Corrupt(format!("key {kid}: unknown algorithm {algorithm}"))
        })?,
        public_jwk: serde_json::from_str(&public_jwk)
            .map_err(|error| StoreError::Corrupt(format!("key {kid}: public_jwk: {error}")))?,
        state: KeyState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("key {kid}: unknown state {state}")))?,
        kid,
        sealed_private_key,
        created_at,
        retired_at,
        publish_until,
    })
}

/// The INSERT of a key; `$suffix` lets the first-key path add `ON CONFLICT DO NOTHING`.
macro_rules! insert_key_sql {
    ($suffix:literal) => {
        concat!(
            "INSERT INTO signing_keys (kid, algorithm, sealed_private_key, public_jwk, state, ",
            "created_at, retired_at, publish_until) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            $suffix
        )
    };
}

const INSERT_KEY: &str = insert_key_sql!("");
const INSERT_KEY_UNLESS_ONE_IS_ACTIVE: &str = insert_key_sql!(" ON CONFLICT DO NOTHING");

/// Binds a key's columns in [`insert_key_sql!`]'s order.
fn bind_key<Q: StoreQuery>(query: Q, key: &StoredSigningKey) -> Q {
    query
        .bind_value(key.kid.as_str())
        .bind_value(key.algorithm.to_string())
        .bind_value(key.sealed_private_key.as_slice())
        .bind_value(key.public_jwk.to_string())
        .bind_value(key.state.as_str())
        .bind_value(key.created_at)
        .bind_value(key.retired_at)
        .bind_value(key.publish_until)
}

#[async_trait]
impl SigningKeyStore for Database {
    async fn insert_active_key_if_none(&self, key: &StoredSigningKey) -> Result<bool, StoreError> {
        // ON CONFLICT DO NOTHING covers the partial unique index on the active state, so two
        // instances starting together leave exactly one active key.
        let inserted = write_transaction!(self, autocommit, pool => {
            bind_key(sqlx::query(INSERT_KEY_UNLESS_ONE_IS_ACTIVE), key)
                .execute(pool)
                .await
                .map_err(map_sqlx_error)?
                .rows_affected()
        });
        Ok(inserted == 1)
    }

    async fn rotate_signing_key(
        &self,
        new_key: &StoredSigningKey,
        retiring_kid: &str,
        retired_at: i64,
        publish_until: i64,
        events: &[AuditEvent],
    ) -> Result<(), StoreError> {
        write_transaction!(self, events: events, transaction => {
            // Conditional on the kid the caller read as active: a rotation that lost a race
            // retires nothing, and its audit event is not written either.
            let retired = sqlx::query(
                "UPDATE signing_keys SET state = 'retired', retired_at = $1, publish_until = $2 \
                 WHERE state = 'active' AND kid = $3",
            )
            .bind(retired_at)
            .bind(publish_until)
            .bind(retiring_kid)
            .execute(&mut *transaction)
            .await
            .map_err(map_sqlx_error)?
            .rows_affected();
            if retired != 1 {
                // Dropping the transaction rolls it back.
                return Err(StoreError::Conflict(Conflict::SigningKey));
            }
            bind_key(sqlx::query(INSERT_KEY), new_key)
                .execute(&mut *transaction)
                .await
                .map_err(map_sqlx_error)?;
        });
        Ok(())
    }

    async fn active_signing_key(&self) -> Result<Option<StoredSigningKey>, StoreError> {
        let row: Option<KeyRow> = with_pool!(self, pool => {
            sqlx::query_as(select_keys!("WHERE state = 'active'"))
                .fetch_optional(pool)
                .await
                .map_err(map_sqlx_error)?
        });
        row.map(key_from_row).transpose()
    }

    async fn list_signing_keys(&self) -> Result<Vec<StoredSigningKey>, StoreError> {
        let rows: Vec<KeyRow> = with_pool!(self, pool => {
            sqlx::query_as(select_keys!("ORDER BY CASE state WHEN 'active' THEN 0 ELSE 1 END, created_at DESC, kid"))
                .fetch_all(pool)
                .await
                .map_err(map_sqlx_error)?
        });
        rows.into_iter().map(key_from_row).collect()
    }
}
