//! `IdentityStore` on SQL: the `user_identities` table. New links are inserted by
//! `apply_work` (with the change they belong to); this module reads, touches and unlinks.

use async_trait::async_trait;
use gatehouse_domain::StoreError;
use gatehouse_domain::audit::AuditEvent;
use gatehouse_domain::federation::{IdentityRecord, IdentityStore};

use crate::columns::{StoreConnection, StoreQuery, StoreRow};
use crate::database::write_transaction;
use crate::error::map_sqlx_error;
use crate::{Database, with_pool};

macro_rules! identity_columns {
    () => {
        "id, user_id, provider_id, subject, email_ciphertext, created_at, last_used_at, \
         tokens_ciphertext"
    };
}

fn identity_from_row(row: &impl StoreRow) -> Result<IdentityRecord, StoreError> {
    Ok(IdentityRecord {
        id: row.read("id")?,
        user_id: row.read("user_id")?,
        provider_id: row.read("provider_id")?,
        subject: row.read("subject")?,
        email_ciphertext: row.read("email_ciphertext")?,
        created_at: row.read("created_at")?,
        last_used_at: row.read("last_used_at")?,
        tokens_ciphertext: row.read("tokens_ciphertext")?,
    })
}

/// Inserts a link in the caller's transaction; a taken (provider, subject) is
/// `Conflict::Identity`.
pub(crate) async fn insert_identity_row<C: StoreConnection>(
    connection: &mut C,
    identity: &IdentityRecord,
) -> Result<(), StoreError> {
    let insert = C::statement(concat!(
        "INSERT INTO user_identities (",
        identity_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    ));
    connection
        .execute(
            insert
                .bind_value(identity.id.as_str())
                .bind_value(identity.user_id.as_str())
                .bind_value(identity.provider_id.as_str())
                .bind_value(identity.subject.as_str())
                .bind_value(identity.email_ciphertext.as_deref())
                .bind_value(identity.created_at)
                .bind_value(identity.last_used_at)
                .bind_value(identity.tokens_ciphertext.as_deref()),
        )
        .await?;
    Ok(())
}

#[async_trait]
impl IdentityStore for Database {
    async fn identity_by_subject(
        &self,
        provider_id: &str,
        subject: &str,
    ) -> Result<Option<IdentityRecord>, StoreError> {
        with_pool!(self, pool => {
            let row = sqlx::query(concat!(
                "SELECT ", identity_columns!(),
                " FROM user_identities WHERE provider_id = $1 AND subject = $2"
            ))
            .bind(provider_id)
            .bind(subject)
            .fetch_optional(pool)
            .await
            .map_err(map_sqlx_error)?;
            row.as_ref().map(identity_from_row).transpose()
        })
    }

    async fn identities_of(&self, user_id: &str) -> Result<Vec<IdentityRecord>, StoreError> {
        with_pool!(self, pool => {
            let rows = sqlx::query(concat!(
                "SELECT ", identity_columns!(),
                " FROM user_identities WHERE user_id = $1 ORDER BY created_at, id"
            ))
            .bind(user_id)
            .fetch_all(pool)
            .await
            .map_err(map_sqlx_error)?;
            rows.iter().map(identity_from_row).collect()
        })
    }

    async fn touch_identity(
        &self,
        id: &str,
        at: i64,
        tokens_ciphertext: Option<&[u8]>,
    ) -> Result<(), StoreError> {
        write_transaction!(self, events: &[], transaction => {
            sqlx::query(
                "UPDATE user_identities SET last_used_at = $2, tokens_ciphertext = $3 WHERE id = $1",
            )
            .bind(id)
            .bind(at)
            .bind(tokens_ciphertext)
            .execute(&mut *transaction)
            .await
            .map_err(map_sqlx_error)?;
        });
        Ok(())
    }

    async fn replace_identity_tokens(
        &self,
        id: &str,
        tokens_ciphertext: &[u8],
        events: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let replaced = write_transaction!(self, transaction => {
            let replaced = sqlx::query(
                "UPDATE user_identities SET tokens_ciphertext = $2 WHERE id = $1",
            )
            .bind(id)
            .bind(tokens_ciphertext)
            .execute(&mut *transaction)
            .await
            .map_err(map_sqlx_error)?
            .rows_affected();
            if replaced == 1 {
                crate::audit::insert_events(&mut *transaction, events).await?;
            }
            replaced == 1
        });
        Ok(replaced)
    }

    async fn unlink_identity(
        &self,
        user_id: &str,
        id: &str,
        events: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let deleted = write_transaction!(self, transaction => {
            // Locks the user's row (PostgreSQL; SQLite writers are serialised): two unlinks
            // racing for an account's last two ways to sign in decide one after the other.
            sqlx::query("UPDATE users SET updated_at = updated_at WHERE id = $1")
                .bind(user_id)
                .execute(&mut *transaction)
                .await
                .map_err(map_sqlx_error)?;
            let deleted = sqlx::query(
                "DELETE FROM user_identities WHERE id = $1 AND user_id = $2 AND (\
                 EXISTS (SELECT 1 FROM users WHERE id = $2 AND password_hash IS NOT NULL) \
                 OR EXISTS (SELECT 1 FROM passkeys WHERE user_id = $2 AND flagged_at IS NULL) \
                 OR EXISTS (SELECT 1 FROM user_identities other WHERE other.user_id = $2 \
                 AND other.id <> $1))",
            )
                .bind(id)
                .bind(user_id)
                .execute(&mut *transaction)
                .await
                .map_err(map_sqlx_error)?
                .rows_affected();
            if deleted == 1 {
                crate::audit::insert_events(&mut *transaction, events).await?;
            }
            deleted == 1
        });
        Ok(deleted)
    }
}
