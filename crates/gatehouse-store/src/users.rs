//! `UserStore` on SQL: the `users` table.

use async_trait::async_trait;
use gatehouse_domain::{StoreError, UserRecord, UserStore};
use sqlx::Row;

use crate::error::map_sqlx_error;
use crate::{Database, with_pool};

macro_rules! select_users {
    ($rest:literal) => {
        concat!(
            "SELECT id, email_ciphertext, email_digest, username, first_name, last_name, image_url, ",
            "email_verified_at, password_hash, password_changed_at, failed_sign_in_attempts, ",
            "locked_until, suspended_at, last_sign_in_at, public_metadata, private_metadata, ",
            "created_at, updated_at FROM users ",
            $rest
        )
    };
}

/// Reads one `users` row; a macro because it runs on each backend's concrete row type.
macro_rules! user_from_row {
    ($row:expr) => {{
        let row = $row;
        let get = |error: sqlx::Error| map_sqlx_error(error);
        UserRecord {
            id: row.try_get("id").map_err(get)?,
            email_ciphertext: row.try_get("email_ciphertext").map_err(get)?,
            email_digest: row.try_get("email_digest").map_err(get)?,
            username: row.try_get("username").map_err(get)?,
            first_name: row.try_get("first_name").map_err(get)?,
            last_name: row.try_get("last_name").map_err(get)?,
            image_url: row.try_get("image_url").map_err(get)?,
            email_verified_at: row.try_get("email_verified_at").map_err(get)?,
            password_hash: row.try_get("password_hash").map_err(get)?,
            password_changed_at: row.try_get("password_changed_at").map_err(get)?,
            failed_sign_in_attempts: row.try_get("failed_sign_in_attempts").map_err(get)?,
            locked_until: row.try_get("locked_until").map_err(get)?,
            suspended_at: row.try_get("suspended_at").map_err(get)?,
            last_sign_in_at: row.try_get("last_sign_in_at").map_err(get)?,
            public_metadata: row.try_get("public_metadata").map_err(get)?,
            private_metadata: row.try_get("private_metadata").map_err(get)?,
            created_at: row.try_get("created_at").map_err(get)?,
            updated_at: row.try_get("updated_at").map_err(get)?,
        }
    }};
}

/// Fetches at most one user matching `$sql` with one bound parameter.
macro_rules! fetch_user {
    ($database:expr, $sql:expr, $param:expr) => {
        with_pool!($database, pool => {
            match sqlx::query($sql).bind($param).fetch_optional(pool).await.map_err(map_sqlx_error)? {
                Some(row) => Ok(Some(user_from_row!(row))),
                None => Ok(None),
            }
        })
    };
}

#[async_trait]
impl UserStore for Database {
    async fn insert_user(&self, user: &UserRecord) -> Result<(), StoreError> {
        with_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO users (id, email_ciphertext, email_digest, username, first_name, \
                 last_name, image_url, email_verified_at, password_hash, password_changed_at, \
                 failed_sign_in_attempts, locked_until, suspended_at, last_sign_in_at, \
                 public_metadata, private_metadata, created_at, updated_at) VALUES ($1, $2, $3, \
                 $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
            )
            .bind(user.id.as_str())
            .bind(user.email_ciphertext.as_deref())
            .bind(user.email_digest.as_deref())
            .bind(user.username.as_deref())
            .bind(user.first_name.as_deref())
            .bind(user.last_name.as_deref())
            .bind(user.image_url.as_deref())
            .bind(user.email_verified_at)
            .bind(user.password_hash.as_deref())
            .bind(user.password_changed_at)
            .bind(user.failed_sign_in_attempts)
            .bind(user.locked_until)
            .bind(user.suspended_at)
            .bind(user.last_sign_in_at)
            .bind(user.public_metadata.as_str())
            .bind(user.private_metadata.as_str())
            .bind(user.created_at)
            .bind(user.updated_at)
            .execute(pool)
            .await
            .map_err(map_sqlx_error)?;
        });
        Ok(())
    }

    async fn user_by_id(&self, id: &str) -> Result<Option<UserRecord>, StoreError> {
        fetch_user!(self, select_users!("WHERE id = $1"), id)
    }

    async fn user_by_email_digest(&self, digest: &[u8]) -> Result<Option<UserRecord>, StoreError> {
        fetch_user!(self, select_users!("WHERE email_digest = $1"), digest)
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
        fetch_user!(self, select_users!("WHERE username = $1"), username)
    }
}
