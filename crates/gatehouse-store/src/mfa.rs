//! `MfaStore` on SQL (`mfa_factors`, `mfa_backup_codes`, `mfa_codes`) and `TrustedBrowserStore`
//! (`trusted_devices`). Writes that go with a change take its unit of work into their
//! transaction. The database side of `MfaChallengeStore` is in `mfa_challenge`.

use async_trait::async_trait;
use gatehouse_domain::StoreError;
use gatehouse_domain::audit::AuditEvent;
use gatehouse_domain::mfa::{
    BackupCodeRecord, MfaCodeRecord, MfaFactorRecord, MfaStore, TrustedBrowserRecord,
    TrustedBrowserStore,
};
use gatehouse_domain::unit_of_work::UnitOfWork;

use crate::audit::insert_events;
use crate::columns::{StoreConnection, StoreQuery, StoreRow};
use crate::database::write_transaction;
use crate::error::map_sqlx_error;
use crate::{Database, with_pool};

/// One `mfa_factors` row.
fn factor_from_row(row: &impl StoreRow) -> Result<MfaFactorRecord, StoreError> {
    Ok(MfaFactorRecord {
        id: row.read("id")?,
        user_id: row.read("user_id")?,
        kind: row.read("kind")?,
        secret_ciphertext: row.read("secret_ciphertext")?,
        phone_ciphertext: row.read("phone_ciphertext")?,
        confirmed_at: row.read("confirmed_at")?,
        last_used_step: row.read("last_used_step")?,
        last_used_at: row.read("last_used_at")?,
        created_at: row.read("created_at")?,
    })
}

/// One `mfa_backup_codes` row.
fn backup_code_from_row(row: &impl StoreRow) -> Result<BackupCodeRecord, StoreError> {
    Ok(BackupCodeRecord {
        user_id: row.read("user_id")?,
        code_digest: row.read("code_digest")?,
        created_at: row.read("created_at")?,
        used_at: row.read("used_at")?,
    })
}

/// One `mfa_codes` row.
fn mfa_code_from_row(row: &impl StoreRow) -> Result<MfaCodeRecord, StoreError> {
    Ok(MfaCodeRecord {
        id: row.read("id")?,
        user_id: row.read("user_id")?,
        channel: row.read("channel")?,
        purpose: row.read("purpose")?,
        code_digest: row.read("code_digest")?,
        attempts: row.read("attempts")?,
        created_at: row.read("created_at")?,
        expires_at: row.read("expires_at")?,
        used_at: row.read("used_at")?,
    })
}

/// The trusted browsers (table `trusted_devices`) matching `$rest`.
macro_rules! select_trusted_browsers {
    ($rest:literal) => {
        concat!(
            "SELECT id, user_id, token_digest, user_agent, ip, created_at, expires_at, ",
            "last_used_at, revoked_at FROM trusted_devices ",
            $rest
        )
    };
}

/// One `trusted_devices` row: a browser trusted to skip the second factor.
fn trusted_browser_from_row(row: &impl StoreRow) -> Result<TrustedBrowserRecord, StoreError> {
    Ok(TrustedBrowserRecord {
        id: row.read("id")?,
        user_id: row.read("user_id")?,
        token_digest: row.read("token_digest")?,
        user_agent: row.read("user_agent")?,
        ip: row.read("ip")?,
        created_at: row.read("created_at")?,
        expires_at: row.read("expires_at")?,
        last_used_at: row.read("last_used_at")?,
        revoked_at: row.read("revoked_at")?,
    })
}

/// Inserts backup codes on `connection`, after deleting the user's earlier set.
async fn replace_codes<C: StoreConnection>(
    connection: &mut C,
    user_id: &str,
    codes: &[BackupCodeRecord],
) -> Result<(), StoreError> {
    let delete = C::statement("DELETE FROM mfa_backup_codes WHERE user_id = $1");
    connection.execute(delete.bind_value(user_id)).await?;
    for code in codes {
        let insert = C::statement(
            "INSERT INTO mfa_backup_codes (user_id, code_digest, created_at, used_at) \
             VALUES ($1, $2, $3, $4)",
        );
        connection
            .execute(
                insert
                    .bind_value(code.user_id.as_str())
                    .bind_value(code.code_digest.as_slice())
                    .bind_value(code.created_at)
                    .bind_value(code.used_at),
            )
            .await?;
    }
    Ok(())
}

#[async_trait]
impl MfaStore for Database {
    async fn mfa_factors(&self, user_id: &str) -> Result<Vec<MfaFactorRecord>, StoreError> {
        with_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT id, user_id, kind, secret_ciphertext, phone_ciphertext, confirmed_at, \
                 last_used_step, last_used_at, created_at FROM mfa_factors WHERE user_id = $1 \
                 ORDER BY created_at, id",
            )
            .bind(user_id)
            .fetch_all(pool)
            .await
            .map_err(map_sqlx_error)?;
            rows.iter().map(factor_from_row).collect()
        })
    }

    async fn put_pending_factor(
        &self,
        factor: &MfaFactorRecord,
        work: &UnitOfWork,
    ) -> Result<(), StoreError> {
        write_transaction!(self, work: work, transaction => {
            sqlx::query(
                "DELETE FROM mfa_factors WHERE user_id = $1 AND kind = $2 AND confirmed_at IS NULL",
            )
            .bind(factor.user_id.as_str())
            .bind(factor.kind.as_str())
            .execute(&mut *transaction)
            .await
            .map_err(map_sqlx_error)?;
            // A confirmed factor of this kind makes the unique index refuse: `Conflict`.
            sqlx::query(
                "INSERT INTO mfa_factors (id, user_id, kind, secret_ciphertext, phone_ciphertext, \
                 confirmed_at, last_used_step, last_used_at, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(factor.id.as_str())
            .bind(factor.user_id.as_str())
            .bind(factor.kind.as_str())
            .bind(factor.secret_ciphertext.as_deref())
            .bind(factor.phone_ciphertext.as_deref())
            .bind(factor.confirmed_at)
            .bind(factor.last_used_step)
            .bind(factor.last_used_at)
            .bind(factor.created_at)
            .execute(&mut *transaction)
            .await
            .map_err(map_sqlx_error)?;
        });
        Ok(())
    }

    async fn confirm_factor(
        &self,
        factor_id: &str,
        now: i64,
        used_step: Option<i64>,
        backup_codes: Option<&[BackupCodeRecord]>,
        work: &UnitOfWork,
    ) -> Result<bool, StoreError> {
        let done = write_transaction!(self, work: work, transaction => {
            let row = sqlx::query(
                "UPDATE mfa_factors SET confirmed_at = $2, last_used_step = $3, last_used_at = $2 \
                 WHERE id = $1 AND confirmed_at IS NULL RETURNING user_id",
            )
            .bind(factor_id)
            .bind(now)
            .bind(used_step)
            .fetch_optional(&mut *transaction)
            .await
            .map_err(map_sqlx_error)?;
            let Some(row) = row else { return Ok(false) };
            let user_id: String = row.read("user_id")?;
            if let Some(codes) = backup_codes {
                replace_codes(&mut *transaction, &user_id, codes).await?;
            }
            true
        });
        Ok(done)
    }

    async fn delete_factor(
        &self,
        user_id: &str,
        kind: &str,
        clear_backup_codes: bool,
        work: &UnitOfWork,
    ) -> Result<bool, StoreError> {
        let done = write_transaction!(self, work: work, transaction => {
            let deleted = sqlx::query("DELETE FROM mfa_factors WHERE user_id = $1 AND kind = $2")
                .bind(user_id)
                .bind(kind)
                .execute(&mut *transaction)
                .await
                .map_err(map_sqlx_error)?
                .rows_affected();
            if deleted == 0 {
                return Ok(false);
            }
            if clear_backup_codes {
                sqlx::query("DELETE FROM mfa_backup_codes WHERE user_id = $1")
                    .bind(user_id)
                    .execute(&mut *transaction)
                    .await
                    .map_err(map_sqlx_error)?;
            }
            true
        });
        Ok(done)
    }

    async fn reset_mfa(
        &self,
        user_id: &str,
        now: i64,
        work: &UnitOfWork,
    ) -> Result<(), StoreError> {
        write_transaction!(self, work: work, transaction => {
            for sql in [
                "DELETE FROM mfa_factors WHERE user_id = $1",
                "DELETE FROM mfa_backup_codes WHERE user_id = $1",
                "DELETE FROM mfa_codes WHERE user_id = $1",
                // Passkeys are multi-factor sign-ins of their own: the recovery removes them too.
                "DELETE FROM passkeys WHERE user_id = $1",
            ] {
                sqlx::query(sql)
                    .bind(user_id)
                    .execute(&mut *transaction)
                    .await
                    .map_err(map_sqlx_error)?;
            }
            sqlx::query(
                "UPDATE trusted_devices SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
            )
            .bind(user_id)
            .bind(now)
            .execute(&mut *transaction)
            .await
            .map_err(map_sqlx_error)?;
        });
        Ok(())
    }

    async fn use_totp_step(
        &self,
        factor_id: &str,
        step: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let updated = write_transaction!(self, autocommit, pool => {
            sqlx::query(
                "UPDATE mfa_factors SET last_used_step = $2, last_used_at = $3 WHERE id = $1 \
                 AND (last_used_step IS NULL OR last_used_step < $2)",
            )
            .bind(factor_id)
            .bind(step)
            .bind(now)
            .execute(pool)
            .await
            .map_err(map_sqlx_error)?
            .rows_affected()
        });
        Ok(updated == 1)
    }

    async fn backup_codes(&self, user_id: &str) -> Result<Vec<BackupCodeRecord>, StoreError> {
        with_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT user_id, code_digest, created_at, used_at FROM mfa_backup_codes \
                 WHERE user_id = $1",
            )
            .bind(user_id)
            .fetch_all(pool)
            .await
            .map_err(map_sqlx_error)?;
            rows.iter().map(backup_code_from_row).collect()
        })
    }

    async fn spend_backup_code(
        &self,
        user_id: &str,
        digest: &[u8],
        now: i64,
    ) -> Result<bool, StoreError> {
        let updated = write_transaction!(self, autocommit, pool => {
            sqlx::query(
                "UPDATE mfa_backup_codes SET used_at = $3 WHERE user_id = $1 AND code_digest = $2 \
                 AND used_at IS NULL",
            )
            .bind(user_id)
            .bind(digest)
            .bind(now)
            .execute(pool)
            .await
            .map_err(map_sqlx_error)?
            .rows_affected()
        });
        Ok(updated == 1)
    }

    async fn replace_backup_codes(
        &self,
        user_id: &str,
        codes: &[BackupCodeRecord],
        work: &UnitOfWork,
    ) -> Result<(), StoreError> {
        write_transaction!(self, work: work, transaction => {
            replace_codes(&mut *transaction, user_id, codes).await?;
        });
        Ok(())
    }

    async fn put_mfa_code(
        &self,
        code: &MfaCodeRecord,
        work: &UnitOfWork,
    ) -> Result<(), StoreError> {
        write_transaction!(self, work: work, transaction => {
            sqlx::query("DELETE FROM mfa_codes WHERE user_id = $1 AND channel = $2 AND purpose = $3")
                .bind(code.user_id.as_str())
                .bind(code.channel.as_str())
                .bind(code.purpose.as_str())
                .execute(&mut *transaction)
                .await
                .map_err(map_sqlx_error)?;
            sqlx::query(
                "INSERT INTO mfa_codes (id, user_id, channel, purpose, code_digest, attempts, \
                 created_at, expires_at, used_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(code.id.as_str())
            .bind(code.user_id.as_str())
            .bind(code.channel.as_str())
            .bind(code.purpose.as_str())
            .bind(code.code_digest.as_slice())
            .bind(code.attempts)
            .bind(code.created_at)
            .bind(code.expires_at)
            .bind(code.used_at)
            .execute(&mut *transaction)
            .await
            .map_err(map_sqlx_error)?;
        });
        Ok(())
    }

    async fn mfa_code(
        &self,
        user_id: &str,
        channel: &str,
        purpose: &str,
    ) -> Result<Option<MfaCodeRecord>, StoreError> {
        with_pool!(self, pool => {
            let row = sqlx::query(
                "SELECT id, user_id, channel, purpose, code_digest, attempts, created_at, \
                 expires_at, used_at FROM mfa_codes WHERE user_id = $1 AND channel = $2 \
                 AND purpose = $3 ORDER BY created_at DESC, id DESC LIMIT 1",
            )
            .bind(user_id)
            .bind(channel)
            .bind(purpose)
            .fetch_optional(pool)
            .await
            .map_err(map_sqlx_error)?;
            row.as_ref().map(mfa_code_from_row).transpose()
        })
    }

    async fn count_mfa_code_attempt(&self, id: &str) -> Result<i64, StoreError> {
        let attempts = write_transaction!(self, autocommit, pool => {
            let row = sqlx::query(
                "UPDATE mfa_codes SET attempts = attempts + 1 WHERE id = $1 RETURNING attempts",
            )
            .bind(id)
            .fetch_optional(pool)
            .await
            .map_err(map_sqlx_error)?;
            match row {
                Some(row) => row.read("attempts")?,
                None => i64::MAX,
            }
        });
        Ok(attempts)
    }

    async fn spend_mfa_code(&self, id: &str, now: i64) -> Result<bool, StoreError> {
        let updated = write_transaction!(self, autocommit, pool => {
            sqlx::query("UPDATE mfa_codes SET used_at = $2 WHERE id = $1 AND used_at IS NULL")
                    .bind(id)
                    .bind(now)
                    .execute(pool)
                    .await
                    .map_err(map_sqlx_error)?
                    .rows_affected()
        });
        Ok(updated == 1)
    }
}

#[async_trait]
impl TrustedBrowserStore for Database {
    async fn trusted_browser(
        &self,
        digest: &[u8],
    ) -> Result<Option<TrustedBrowserRecord>, StoreError> {
        with_pool!(self, pool => {
            let row = sqlx::query(select_trusted_browsers!("WHERE token_digest = $1"))
            .bind(digest)
            .fetch_optional(pool)
            .await
            .map_err(map_sqlx_error)?;
            row.as_ref().map(trusted_browser_from_row).transpose()
        })
    }

    async fn touch_trusted_browser(&self, id: &str, now: i64) -> Result<(), StoreError> {
        write_transaction!(self, autocommit, pool => {
            sqlx::query("UPDATE trusted_devices SET last_used_at = $2 WHERE id = $1")
                .bind(id)
                .bind(now)
                .execute(pool)
                .await
                .map_err(map_sqlx_error)?;
        });
        Ok(())
    }

    async fn trusted_browsers(
        &self,
        user_id: &str,
        now: i64,
    ) -> Result<Vec<TrustedBrowserRecord>, StoreError> {
        with_pool!(self, pool => {
            let rows = sqlx::query(select_trusted_browsers!(
                "WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 \
                 ORDER BY created_at DESC, id DESC"
            ))
            .bind(user_id)
            .bind(now)
            .fetch_all(pool)
            .await
            .map_err(map_sqlx_error)?;
            rows.iter().map(trusted_browser_from_row).collect()
        })
    }

    async fn revoke_trusted_browsers(
        &self,
        user_id: &str,
        browser_id: Option<&str>,
        now: i64,
        events: &[AuditEvent],
    ) -> Result<u64, StoreError> {
        let revoked = write_transaction!(self, transaction => {
            let revoked = sqlx::query(
                "UPDATE trusted_devices SET revoked_at = $3 WHERE user_id = $1 \
                 AND ($2 IS NULL OR id = $2) AND revoked_at IS NULL AND expires_at > $3",
            )
            .bind(user_id)
            .bind(browser_id)
            .bind(now)
            .execute(&mut *transaction)
            .await
            .map_err(map_sqlx_error)?
            .rows_affected();
            // The audit events only when a browser lost its trust.
            if revoked > 0 {
                insert_events(&mut *transaction, events).await?;
            }
            revoked
        });
        Ok(revoked)
    }
}
