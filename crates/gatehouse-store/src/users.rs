//! `UserStore` on SQL: the `users` and `password_history` tables.

use async_trait::async_trait;
use gatehouse_domain::audit::AuditEvent;
use gatehouse_domain::sessions::RevokeReason;
use gatehouse_domain::store::Conflict;
use gatehouse_domain::unit_of_work::UnitOfWork;
use gatehouse_domain::users::record::{
    FailedSignIn, PasswordChange, SignInFacts, UserChange, UserLookup, UserQuery,
};
use gatehouse_domain::{StoreError, UserRecord, UserStore};

use crate::cache::Invalidation;
use crate::columns::{BindValue, StoreConnection, StoreQuery, StoreRow};
use crate::database::write_transaction;
use crate::error::map_sqlx_error;
use crate::{Database, with_pool};

macro_rules! select_users {
    ($rest:literal) => {
        select_users!(@columns "", $rest)
    };
    // With the columns of `SignInFacts`, for the device digest bound as $2.
    (with_sign_in_facts, $rest:literal) => {
        select_users!(
            @columns
            concat!(
                ", (SELECT COUNT(*) FROM mfa_factors WHERE mfa_factors.user_id = users.id ",
                "AND mfa_factors.confirmed_at IS NOT NULL) AS confirmed_factors, ",
                "(SELECT COUNT(*) FROM known_devices WHERE known_devices.user_id = users.id) ",
                "AS any_device, (SELECT COUNT(*) FROM known_devices WHERE known_devices.user_id = ",
                "users.id AND known_devices.device_digest = $2) AS this_device"
            ),
            $rest
        )
    };
    (@columns $more_columns:expr, $rest:literal) => {
        concat!(
            "SELECT id, email_ciphertext, email_digest, username, first_name, last_name, image_url, ",
            "email_verified_at, password_hash, password_changed_at, failed_sign_in_attempts, ",
            "locked_until, suspended_at, last_sign_in_at, public_metadata, private_metadata, ",
            "system_role, created_at, updated_at",
            $more_columns,
            " FROM users ",
            $rest
        )
    };
}

/// One `users` row, as [`select_users!`] selects it.
pub(crate) fn user_from_row(row: &impl StoreRow) -> Result<UserRecord, StoreError> {
    Ok(UserRecord {
        id: row.read("id")?,
        email_ciphertext: row.read("email_ciphertext")?,
        email_digest: row.read("email_digest")?,
        username: row.read("username")?,
        first_name: row.read("first_name")?,
        last_name: row.read("last_name")?,
        image_url: row.read("image_url")?,
        email_verified_at: row.read("email_verified_at")?,
        password_hash: row.read("password_hash")?,
        password_changed_at: row.read("password_changed_at")?,
        failed_sign_in_attempts: row.read("failed_sign_in_attempts")?,
        locked_until: row.read("locked_until")?,
        suspended_at: row.read("suspended_at")?,
        last_sign_in_at: row.read("last_sign_in_at")?,
        public_metadata: row.read("public_metadata")?,
        private_metadata: row.read("private_metadata")?,
        system_role: row.read("system_role")?,
        created_at: row.read("created_at")?,
        updated_at: row.read("updated_at")?,
    })
}

/// A user with the `SignInFacts` columns of `select_users!(with_sign_in_facts, ..)`.
fn user_for_sign_in_from_row(row: &impl StoreRow) -> Result<(UserRecord, SignInFacts), StoreError> {
    let facts = SignInFacts {
        has_confirmed_factor: row.any("confirmed_factors")?,
        any_known_device: row.any("any_device")?,
        this_device_known: row.any("this_device")?,
    };
    Ok((user_from_row(row)?, facts))
}

/// At most one user matching `sql` (a `select_users!`), whose one parameter is `key`.
async fn fetch_user<'k>(
    database: &Database,
    sql: &'static str,
    key: impl BindValue<'k>,
) -> Result<Option<UserRecord>, StoreError> {
    with_pool!(database, pool => {
        let row = sqlx::query(sql).bind(key).fetch_optional(pool).await.map_err(map_sqlx_error)?;
        row.as_ref().map(user_from_row).transpose()
    })
}

/// The user matching `sql` (a `select_users!(with_sign_in_facts, ..)`, `key` as $1) with its
/// sign-in facts for the device whose digest is $2.
async fn fetch_user_for_sign_in<'k>(
    database: &Database,
    sql: &'static str,
    key: impl BindValue<'k>,
    device_digest: &[u8],
) -> Result<Option<(UserRecord, SignInFacts)>, StoreError> {
    with_pool!(database, pool => {
        let row = sqlx::query(sql)
            .bind(key)
            .bind(device_digest)
            .fetch_optional(pool)
            .await
            .map_err(map_sqlx_error)?;
        row.as_ref().map(user_for_sign_in_from_row).transpose()
    })
}

/// Binds a user's columns as $1..$18 in the order the INSERT names them (it adds
/// `created_at` as $19).
pub(crate) fn bind_user_columns<Q: StoreQuery>(query: Q, user: &UserRecord) -> Q {
    query
        .bind_value(user.id.as_str())
        .bind_value(user.email_ciphertext.as_deref())
        .bind_value(user.email_digest.as_deref())
        .bind_value(user.username.as_deref())
        .bind_value(user.first_name.as_deref())
        .bind_value(user.last_name.as_deref())
        .bind_value(user.image_url.as_deref())
        .bind_value(user.email_verified_at)
        .bind_value(user.password_hash.as_deref())
        .bind_value(user.password_changed_at)
        .bind_value(user.failed_sign_in_attempts)
        .bind_value(user.locked_until)
        .bind_value(user.suspended_at)
        .bind_value(user.last_sign_in_at)
        .bind_value(user.public_metadata.as_str())
        .bind_value(user.private_metadata.as_str())
        .bind_value(user.system_role.as_deref())
        .bind_value(user.updated_at)
}

/// The UPDATE of the columns a [`UserChange`] names, `$suffix` after its `WHERE id = $1`:
/// each column has a flag (is it changed?) and a value, so one statement text serves every
/// change and a column nobody named keeps what is stored.
macro_rules! update_user_change_sql {
    ($suffix:expr) => {
        concat!(
            "UPDATE users SET ",
            "email_ciphertext = CASE WHEN $2 THEN $3 ELSE email_ciphertext END, ",
            "email_digest = CASE WHEN $2 THEN $4 ELSE email_digest END, ",
            "username = CASE WHEN $5 THEN $6 ELSE username END, ",
            "first_name = CASE WHEN $7 THEN $8 ELSE first_name END, ",
            "last_name = CASE WHEN $9 THEN $10 ELSE last_name END, ",
            "image_url = CASE WHEN $11 THEN $12 ELSE image_url END, ",
            "email_verified_at = CASE WHEN $13 THEN $14 ELSE email_verified_at END, ",
            "password_hash = CASE WHEN $15 THEN $16 ELSE password_hash END, ",
            "suspended_at = CASE WHEN $17 THEN $18 ELSE suspended_at END, ",
            "system_role = CASE WHEN $19 THEN $20 ELSE system_role END, ",
            "public_metadata = CASE WHEN $21 THEN $22 ELSE public_metadata END, ",
            "private_metadata = CASE WHEN $23 THEN $24 ELSE private_metadata END, ",
            "failed_sign_in_attempts = CASE WHEN $25 THEN 0 ELSE failed_sign_in_attempts END, ",
            "locked_until = CASE WHEN $25 THEN NULL ELSE locked_until END, ",
            "last_sign_in_at = COALESCE($26, last_sign_in_at), ",
            "updated_at = COALESCE($27, updated_at) ",
            "WHERE id = $1",
            $suffix
        )
    };
}

pub(crate) use update_user_change_sql;

/// Writes the columns `change` names (only those).
pub(crate) const UPDATE_USER_CHANGE: &str = update_user_change_sql!("");

/// Binds `user_id` and `change` as $1..$27 of [`update_user_change_sql!`].
pub(crate) fn bind_user_change<'q, Q: StoreQuery>(
    query: Q,
    user_id: &'q str,
    change: &'q UserChange,
) -> Q {
    let (email_ciphertext, email_digest) = match &change.email {
        Some((ciphertext, digest)) => (ciphertext.as_deref(), digest.as_deref()),
        None => (None, None),
    };
    let text =
        |value: &'q Option<Option<String>>| value.as_ref().and_then(|inner| inner.as_deref());
    query
        .bind_value(user_id)
        .bind_value(change.email.is_some())
        .bind_value(email_ciphertext)
        .bind_value(email_digest)
        .bind_value(change.username.is_some())
        .bind_value(text(&change.username))
        .bind_value(change.first_name.is_some())
        .bind_value(text(&change.first_name))
        .bind_value(change.last_name.is_some())
        .bind_value(text(&change.last_name))
        .bind_value(change.image_url.is_some())
        .bind_value(text(&change.image_url))
        .bind_value(change.email_verified_at.is_some())
        .bind_value(change.email_verified_at.flatten())
        .bind_value(change.rehashed_password.is_some())
        .bind_value(change.rehashed_password.as_deref())
        .bind_value(change.suspended_at.is_some())
        .bind_value(change.suspended_at.flatten())
        .bind_value(change.system_role.is_some())
        .bind_value(text(&change.system_role))
        .bind_value(change.public_metadata.is_some())
        .bind_value(change.public_metadata.as_deref())
        .bind_value(change.private_metadata.is_some())
        .bind_value(change.private_metadata.as_deref())
        .bind_value(change.unlock)
        .bind_value(change.last_sign_in_at)
        .bind_value(change.updated_at)
}

/// Writes the columns `change` names on `connection` (a transaction); answers how many rows.
pub(crate) async fn update_user_change<C: StoreConnection>(
    connection: &mut C,
    user_id: &str,
    change: &UserChange,
) -> Result<u64, StoreError> {
    connection.execute(bind_user_change(C::statement(UPDATE_USER_CHANGE), user_id, change)).await
}

/// The INSERT of a user, its `created_at` as $19; `$suffix` may add `ON CONFLICT DO NOTHING`.
macro_rules! insert_user_sql {
    ($suffix:literal) => {
        concat!(
            "INSERT INTO users (id, email_ciphertext, email_digest, username, first_name, last_name, ",
            "image_url, email_verified_at, password_hash, password_changed_at, failed_sign_in_attempts, ",
            "locked_until, suspended_at, last_sign_in_at, public_metadata, private_metadata, system_role, ",
            "updated_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, ",
            "$15, $16, $17, $18, $19)",
            $suffix
        )
    };
}

const INSERT_USER: &str = insert_user_sql!("");
const INSERT_USER_UNLESS_TAKEN: &str = insert_user_sql!(" ON CONFLICT DO NOTHING");

/// Inserts one user row on `connection` with `sql` ([`INSERT_USER`] or
/// [`INSERT_USER_UNLESS_TAKEN`]); answers how many rows it wrote.
async fn insert_user_row<C: StoreConnection>(
    connection: &mut C,
    sql: &'static str,
    user: &UserRecord,
) -> Result<u64, StoreError> {
    let insert = bind_user_columns(C::statement(sql), user).bind_value(user.created_at);
    connection.execute(insert).await
}

#[async_trait]
impl UserStore for Database {
    async fn insert_users_skipping_existing(
        &self,
        users: &[UserRecord],
        created: &[AuditEvent],
        events: &[AuditEvent],
    ) -> Result<u64, StoreError> {
        let inserted = write_transaction!(self, events: events, transaction => {
            let mut inserted = 0;
            for (position, user) in users.iter().enumerate() {
                let row = insert_user_row(&mut *transaction, INSERT_USER_UNLESS_TAKEN, user).await?;
                if row == 1 && let Some(event) = created.get(position) {
                    crate::audit::insert_events(&mut *transaction, std::slice::from_ref(event)).await?;
                }
                inserted += row;
            }
            inserted
        });
        Ok(inserted)
    }

    async fn insert_user(&self, user: &UserRecord, work: &UnitOfWork) -> Result<(), StoreError> {
        write_transaction!(self, work: work, transaction => {
            insert_user_row(&mut *transaction, INSERT_USER, user).await?;
        });
        Ok(())
    }

    async fn user_by_id(&self, id: &str) -> Result<Option<UserRecord>, StoreError> {
        let cache = self.cache();
        if let Some(user) = cache.user(id) {
            return Ok(Some(user));
        }
        let load = cache.begin_load();
        let user = fetch_user(self, select_users!("WHERE id = $1"), id).await?;
        if let Some(user) = &user {
            cache.put_user(load, user);
        }
        Ok(user)
    }

    async fn user_by_email_digest(&self, digest: &[u8]) -> Result<Option<UserRecord>, StoreError> {
        fetch_user(self, select_users!("WHERE email_digest = $1"), digest).await
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
        fetch_user(self, select_users!("WHERE username = $1"), username).await
    }

    async fn user_for_sign_in(
        &self,
        lookup: UserLookup<'_>,
        device_digest: &[u8],
    ) -> Result<Option<(UserRecord, SignInFacts)>, StoreError> {
        match lookup {
            UserLookup::EmailDigest(digest) => {
                let sql = select_users!(with_sign_in_facts, "WHERE email_digest = $1");
                fetch_user_for_sign_in(self, sql, digest, device_digest).await
            }
            UserLookup::Username(username) => {
                let sql = select_users!(with_sign_in_facts, "WHERE username = $1");
                fetch_user_for_sign_in(self, sql, username, device_digest).await
            }
        }
    }

    async fn update_user(
        &self,
        user_id: &str,
        change: &UserChange,
        work: &UnitOfWork,
    ) -> Result<(), StoreError> {
        write_transaction!(self, work: work, changed: &[Invalidation::User(user_id)], transaction => {
            update_user_change(&mut *transaction, user_id, change).await?;
        });
        Ok(())
    }

    async fn change_password(
        &self,
        change: &PasswordChange,
        history_size: usize,
        keep_session: Option<&str>,
        reason: RevokeReason,
        work: &UnitOfWork,
    ) -> Result<(), StoreError> {
        // Only if the stored hash is still the one this change replaces: a change that lost
        // a race (a reset, another change) fails and writes nothing, instead of undoing it.
        // The first statement, so its row lock orders concurrent changes.
        const SET_PASSWORD: &str = "UPDATE users SET password_hash = $2, password_changed_at = $3, \
            updated_at = $3, \
            email_verified_at = CASE WHEN $4 THEN COALESCE(email_verified_at, $3) ELSE email_verified_at END, \
            failed_sign_in_attempts = CASE WHEN $4 THEN 0 ELSE failed_sign_in_attempts END, \
            locked_until = CASE WHEN $4 THEN NULL ELSE locked_until END \
            WHERE id = $1 AND password_hash IS NOT DISTINCT FROM $5";
        let user_id = change.user_id.as_str();
        let keep = keep_session.unwrap_or("");
        let history_size = i64::try_from(history_size).unwrap_or(i64::MAX);
        let changed = [Invalidation::User(user_id), Invalidation::SessionsOfUser(user_id)];
        write_transaction!(self, work: work, changed: &changed, transaction => {
            let updated = sqlx::query(SET_PASSWORD)
                .bind(user_id)
                .bind(change.new_hash.as_str())
                .bind(change.at)
                .bind(change.by_reset)
                .bind(change.replaces.as_deref())
                .execute(&mut *transaction)
                .await
                .map_err(map_sqlx_error)?
                .rows_affected();
            if updated != 1 {
                // Dropping the transaction rolls back the unit of work too (a reset token
                // stays unspent).
                return Err(StoreError::Conflict(Conflict::PasswordReplaced));
            }
            // The history keeps the hash being replaced (it is `replaces`, or nothing is written).
            if let Some(old) = change.replaces.as_deref() {
                sqlx::query(
                    "INSERT INTO password_history (user_id, password_hash, created_at) VALUES ($1, $2, $3)",
                )
                .bind(user_id)
                .bind(old)
                .bind(change.at)
                .execute(&mut *transaction)
                .await
                .map_err(map_sqlx_error)?;
            }
            // Keep only the newest `history_size` entries.
            sqlx::query(
                "DELETE FROM password_history WHERE user_id = $1 AND password_hash NOT IN (\
                 SELECT password_hash FROM password_history WHERE user_id = $1 \
                 ORDER BY created_at DESC LIMIT $2)",
            )
            .bind(user_id)
            .bind(history_size)
            .execute(&mut *transaction)
            .await
            .map_err(map_sqlx_error)?;
            sqlx::query(
                "UPDATE sessions SET revoked_at = $2, revoked_reason = $3 \
                 WHERE user_id = $1 AND revoked_at IS NULL AND id <> $4",
            )
            .bind(user_id)
            .bind(change.at)
            .bind(reason.as_str())
            .bind(keep)
            .execute(&mut *transaction)
            .await
            .map_err(map_sqlx_error)?;
            // A new password ends the trust given to devices under the old one.
            sqlx::query(
                "UPDATE trusted_devices SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
            )
            .bind(user_id)
            .bind(change.at)
            .execute(&mut *transaction)
            .await
            .map_err(map_sqlx_error)?;
        });
        Ok(())
    }

    async fn record_failed_sign_in(
        &self,
        user_id: &str,
        now: i64,
        threshold: i64,
        lock_until: i64,
        events: &[AuditEvent],
        on_lock: &UnitOfWork,
    ) -> Result<FailedSignIn, StoreError> {
        // One statement, so concurrent failures each count. A lock that has run out starts
        // the count again; reaching the threshold sets the lock (an active lock is kept, not
        // extended).
        const SQL: &str = "UPDATE users SET \
            failed_sign_in_attempts = CASE WHEN locked_until IS NOT NULL AND locked_until <= $2 \
                THEN 1 ELSE failed_sign_in_attempts + 1 END, \
            locked_until = CASE \
                WHEN locked_until IS NOT NULL AND locked_until > $2 THEN locked_until \
                WHEN (CASE WHEN locked_until IS NOT NULL AND locked_until <= $2 THEN 1 \
                      ELSE failed_sign_in_attempts + 1 END) >= $3 THEN $4 \
                ELSE NULL END \
            WHERE id = $1 RETURNING failed_sign_in_attempts, locked_until";
        let changed = [Invalidation::User(user_id)];
        let outcome = write_transaction!(self, events: events, changed: &changed, transaction => {
            let row = sqlx::query(SQL)
                .bind(user_id)
                .bind(now)
                .bind(threshold)
                .bind(lock_until)
                .fetch_optional(&mut *transaction)
                .await
                .map_err(map_sqlx_error)?;
            let outcome = match row {
                Some(row) => {
                    let attempts: i64 = row.read("failed_sign_in_attempts")?;
                    let locked_until: Option<i64> = row.read("locked_until")?;
                    // The row lock serialises the failures: exactly one reaches the threshold.
                    let lock_started = attempts == threshold && locked_until == Some(lock_until);
                    FailedSignIn { attempts, locked_until, lock_started }
                }
                None => FailedSignIn { attempts: 0, locked_until: None, lock_started: false },
            };
            if outcome.lock_started {
                crate::notify::apply_work(&mut *transaction, on_lock).await?;
            }
            outcome
        });
        Ok(outcome)
    }

    async fn password_history(
        &self,
        user_id: &str,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        with_pool!(self, pool => {
            sqlx::query_scalar::<_, String>(
                "SELECT password_hash FROM password_history WHERE user_id = $1 \
                 ORDER BY created_at DESC LIMIT $2",
            )
            .bind(user_id)
            .bind(limit)
            .fetch_all(pool)
            .await
            .map_err(map_sqlx_error)
        })
    }

    async fn update_user_revoking_sessions(
        &self,
        user_id: &str,
        change: &UserChange,
        reason: RevokeReason,
        work: &UnitOfWork,
    ) -> Result<u64, StoreError> {
        let changed = [Invalidation::User(user_id), Invalidation::SessionsOfUser(user_id)];
        let now = change.updated_at.unwrap_or_default();
        let revoked = write_transaction!(self, work: work, changed: &changed, transaction => {
            // The user row first: its lock orders this against a sign-in writing a session
            // (`SessionStore::start_session`), so the sessions below include every session
            // that sign-in could still commit.
            update_user_change(&mut *transaction, user_id, change).await?;
            sqlx::query(
                "UPDATE sessions SET revoked_at = $2, revoked_reason = $3 \
                 WHERE user_id = $1 AND revoked_at IS NULL",
            )
            .bind(user_id)
            .bind(now)
            .bind(reason.as_str())
            .execute(&mut *transaction)
            .await
            .map_err(map_sqlx_error)?
            .rows_affected()
        });
        Ok(revoked)
    }

    async fn delete_user(
        &self,
        user_id: &str,
        work: &gatehouse_domain::unit_of_work::UnitOfWork,
        now: i64,
    ) -> Result<bool, StoreError> {
        let changed = [Invalidation::User(user_id), Invalidation::SessionsOfUser(user_id)];
        let deleted = write_transaction!(self, changed: &changed, transaction => {
            let deleted = sqlx::query("DELETE FROM users WHERE id = $1")
                .bind(user_id)
                .execute(&mut *transaction)
                .await
                .map_err(map_sqlx_error)?
                .rows_affected();
            // The audit events (and the notice) only for an account that was there to delete.
            if deleted == 1 {
                crate::notify::apply_work(&mut *transaction, work).await?;
                sqlx::query(
                    "INSERT INTO audit_erasures (subject_id, requested_at) VALUES ($1, $2) \
                     ON CONFLICT (subject_id) DO UPDATE SET requested_at = excluded.requested_at",
                )
                .bind(user_id)
                .bind(now)
                .execute(&mut *transaction)
                .await
                .map_err(map_sqlx_error)?;
            }
            deleted == 1
        });
        Ok(deleted)
    }

    async fn users_with_system_role(
        &self,
        role: &str,
        limit: u32,
    ) -> Result<Vec<UserRecord>, StoreError> {
        with_pool!(self, pool => {
            let rows = sqlx::query(select_users!(
                "WHERE system_role = $1 ORDER BY created_at, id LIMIT $2"
            ))
            .bind(role)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
            .map_err(map_sqlx_error)?;
            rows.iter().map(user_from_row).collect()
        })
    }

    async fn list_users(&self, query: &UserQuery) -> Result<Vec<UserRecord>, StoreError> {
        let after = query.after.as_deref().unwrap_or("");
        let limit = i64::from(query.limit);
        // Two statements, not one with `$2 IS NULL OR email_digest = $2`: a prepared plan
        // cannot know which branch applies, and the combined form scans the whole table on
        // both SQLite and PostgreSQL (generic plans) instead of using the blind index.
        with_pool!(self, pool => {
            let rows = match query.email_digest.as_deref() {
                Some(digest) => sqlx::query(select_users!(
                    "WHERE email_digest = $1 AND id > $2 ORDER BY id LIMIT $3"
                ))
                .bind(digest),
                None => sqlx::query(select_users!("WHERE id > $1 ORDER BY id LIMIT $2")),
            }
            .bind(after)
            .bind(limit)
            .fetch_all(pool)
            .await
            .map_err(map_sqlx_error)?;
            let mut users = Vec::with_capacity(rows.len());
            for row in rows {
                users.push(user_from_row(&row)?);
            }
            Ok(users)
        })
    }
}
