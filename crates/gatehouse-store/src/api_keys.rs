//! `ApiKeyStore` on SQL: the `api_keys` table. A bearer check reads a key by digest through the
//! read cache; revocation and a recorded use name the key (`Invalidation::ApiKey`), so every
//! instance drops its copy.

use async_trait::async_trait;
use gatehouse_domain::StoreError;
use gatehouse_domain::api_keys::{ApiKeyOwner, ApiKeyRecord, ApiKeyStore};
use gatehouse_domain::audit::AuditEvent;
use gatehouse_domain::organizations::ListCursor;

use crate::cache::{Invalidation, hex};
use crate::columns::StoreRow;
use crate::database::write_transaction;
use crate::error::map_sqlx_error;
use crate::{Database, with_pool};

macro_rules! api_key_columns {
    () => {
        "id, user_id, organization_id, created_by, name, prefix, key_digest, scopes, created_at, \
         expires_at, last_used_at, revoked_at, acting_organization_id"
    };
}

fn api_key_from_row(row: &impl StoreRow) -> Result<ApiKeyRecord, StoreError> {
    let user_id: Option<String> = row.read("user_id")?;
    let organization_id: Option<String> = row.read("organization_id")?;
    let owner = match (user_id, organization_id) {
        (Some(user_id), None) => ApiKeyOwner::User(user_id),
        (None, Some(organization_id)) => ApiKeyOwner::Organization(organization_id),
        _ => return Err(StoreError::Corrupt("an API key with no single owner".into())),
    };
    let scopes: String = row.read("scopes")?;
    Ok(ApiKeyRecord {
        id: row.read("id")?,
        owner,
        created_by: row.read("created_by")?,
        name: row.read("name")?,
        prefix: row.read("prefix")?,
        key_digest: row.read("key_digest")?,
        scopes: scopes.split_whitespace().map(str::to_owned).collect(),
        created_at: row.read("created_at")?,
        expires_at: row.read("expires_at")?,
        last_used_at: row.read("last_used_at")?,
        revoked_at: row.read("revoked_at")?,
        acting_organization_id: row.read("acting_organization_id")?,
    })
}

#[async_trait]
impl ApiKeyStore for Database {
    async fn insert_api_key(
        &self,
        key: &ApiKeyRecord,
        events: &[AuditEvent],
    ) -> Result<(), StoreError> {
        write_transaction!(self, events: events, transaction => {
            sqlx::query(concat!(
                "INSERT INTO api_keys (", api_key_columns!(), ") \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
            ))
            .bind(key.id.as_str())
            .bind(key.user_id())
            .bind(key.organization_id())
            .bind(key.created_by.as_str())
            .bind(key.name.as_str())
            .bind(key.prefix.as_str())
            .bind(key.key_digest.as_slice())
            .bind(key.scope())
            .bind(key.created_at)
            .bind(key.expires_at)
            .bind(key.last_used_at)
            .bind(key.revoked_at)
            .bind(key.acting_organization_id.as_deref())
            .execute(&mut *transaction)
            .await
            .map_err(map_sqlx_error)?;
        });
        Ok(())
    }

    async fn api_key_by_digest(&self, digest: &[u8]) -> Result<Option<ApiKeyRecord>, StoreError> {
        let cache = self.cache();
        let cache_key = hex(digest);
        if let Some(key) = cache.api_key(&cache_key) {
            return Ok(Some(key));
        }
        let load = cache.begin_load();
        let key = with_pool!(self, pool => {
            let row = sqlx::query(concat!(
                "SELECT ", api_key_columns!(), " FROM api_keys WHERE key_digest = $1"
            ))
            .bind(digest)
            .fetch_optional(pool)
            .await
            .map_err(map_sqlx_error)?;
            row.as_ref().map(api_key_from_row).transpose()?
        });
        if let Some(key) = &key {
            cache.put_api_key(load, &cache_key, key);
        }
        Ok(key)
    }

    async fn api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        with_pool!(self, pool => {
            let row = sqlx::query(concat!("SELECT ", api_key_columns!(), " FROM api_keys WHERE id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await
                .map_err(map_sqlx_error)?;
            row.as_ref().map(api_key_from_row).transpose()
        })
    }

    async fn api_keys_of(&self, owner: &ApiKeyOwner) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let (sql, id) = match owner {
            ApiKeyOwner::User(id) => (
                concat!(
                    "SELECT ",
                    api_key_columns!(),
                    " FROM api_keys WHERE user_id = $1 \
                     ORDER BY created_at DESC, id DESC"
                ),
                id,
            ),
            ApiKeyOwner::Organization(id) => (
                concat!(
                    "SELECT ",
                    api_key_columns!(),
                    " FROM api_keys WHERE organization_id = $1 \
                     ORDER BY created_at DESC, id DESC"
                ),
                id,
            ),
        };
        with_pool!(self, pool => {
            let rows = sqlx::query(sql)
                .bind(id.as_str())
                .fetch_all(pool)
                .await
                .map_err(map_sqlx_error)?;
            rows.iter().map(api_key_from_row).collect()
        })
    }

    async fn list_api_keys(
        &self,
        after: Option<&ListCursor>,
        limit: u32,
    ) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let (after_time, after_id) = match after {
            Some(cursor) => (cursor.created_at, cursor.id.as_str()),
            None => (i64::MAX, ""),
        };
        with_pool!(self, pool => {
            let rows = sqlx::query(concat!(
                "SELECT ", api_key_columns!(), " FROM api_keys \
                 WHERE created_at < $1 OR (created_at = $1 AND ($2 = '' OR id < $2)) \
                 ORDER BY created_at DESC, id DESC LIMIT $3"
            ))
            .bind(after_time)
            .bind(after_id)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
            .map_err(map_sqlx_error)?;
            rows.iter().map(api_key_from_row).collect()
        })
    }

    async fn revoke_api_key(
        &self,
        id: &str,
        now: i64,
        events: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let revoked = write_transaction!(self, events: events, changed: &[Invalidation::ApiKey(id)], transaction => {
            sqlx::query("UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
                .bind(id)
                .bind(now)
                .execute(&mut *transaction)
                .await
                .map_err(map_sqlx_error)?
                .rows_affected()
                == 1
        });
        Ok(revoked)
    }

    async fn touch_api_key(&self, id: &str, now: i64) -> Result<(), StoreError> {
        // Named in the write so the cached copy (with its old `last_used_at`) goes: otherwise
        // every use after the first minute would write again.
        write_transaction!(self, changed: &[Invalidation::ApiKey(id)], transaction => {
            sqlx::query("UPDATE api_keys SET last_used_at = $2 WHERE id = $1")
                .bind(id)
                .bind(now)
                .execute(&mut *transaction)
                .await
                .map_err(map_sqlx_error)?;
        });
        Ok(())
    }
}
