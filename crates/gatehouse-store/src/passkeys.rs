//! `PasskeyStore` (the `passkeys` table) and `PasskeyCeremonyStore`: ceremonies in Redis when
//! it is configured (a key per ceremony that expires by itself, taken with `GETDEL`), else in
//! the `passkey_ceremonies` table (taken with `DELETE … RETURNING`). Either way the ceremony id
//! is only a keyed digest, and of two callers taking one ceremony, one gets it.

use async_trait::async_trait;
use gatehouse_domain::StoreError;
use gatehouse_domain::passkeys::{
    PasskeyCeremonyRecord, PasskeyCeremonyStore, PasskeyRecord, PasskeyStore,
};
use gatehouse_domain::unit_of_work::UnitOfWork;

use crate::columns::{StoreConnection, StoreQuery, StoreRow};
use crate::database::write_transaction;
use crate::error::map_sqlx_error;
use crate::{Database, Redis, with_pool};

/// The columns a passkey is read from (a macro: sqlx takes only static query texts).
macro_rules! passkey_columns {
    () => {
        "id, user_id, credential_id, credential, name, sign_count, transports, backup_eligible, \
         backup_state, aaguid, created_at, last_used_at, flagged_at"
    };
}

fn passkey_from_row(row: &impl StoreRow) -> Result<PasskeyRecord, StoreError> {
    let transports: String = row.read("transports")?;
    Ok(PasskeyRecord {
        id: row.read("id")?,
        user_id: row.read("user_id")?,
        credential_id: row.read("credential_id")?,
        credential: row.read("credential")?,
        name: row.read("name")?,
        sign_count: row.read("sign_count")?,
        transports: transports.split_whitespace().map(str::to_owned).collect(),
        backup_eligible: row.read::<i64>("backup_eligible")? != 0,
        backup_state: row.read::<i64>("backup_state")? != 0,
        aaguid: row.read("aaguid")?,
        created_at: row.read("created_at")?,
        last_used_at: row.read("last_used_at")?,
        flagged_at: row.read("flagged_at")?,
    })
}

/// Inserts a passkey on any connection (a registration's own write, or a sign-up's unit of
/// work beside its user).
pub(crate) async fn insert_passkey_row<C: StoreConnection>(
    connection: &mut C,
    passkey: &PasskeyRecord,
) -> Result<(), StoreError> {
    let insert = C::statement(
        "INSERT INTO passkeys (id, user_id, credential_id, credential, name, sign_count, \
         transports, backup_eligible, backup_state, aaguid, created_at, last_used_at, flagged_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    );
    connection
        .execute(
            insert
                .bind_value(passkey.id.as_str())
                .bind_value(passkey.user_id.as_str())
                .bind_value(passkey.credential_id.as_str())
                .bind_value(passkey.credential.as_str())
                .bind_value(passkey.name.as_str())
                .bind_value(passkey.sign_count)
                .bind_value(passkey.transports.join(" "))
                .bind_value(i64::from(passkey.backup_eligible))
                .bind_value(i64::from(passkey.backup_state))
                .bind_value(passkey.aaguid.as_deref())
                .bind_value(passkey.created_at)
                .bind_value(passkey.last_used_at)
                .bind_value(passkey.flagged_at),
        )
        .await?;
    Ok(())
}

#[async_trait]
impl PasskeyStore for Database {
    async fn passkeys_of(&self, user_id: &str) -> Result<Vec<PasskeyRecord>, StoreError> {
        with_pool!(self, pool => {
            let rows = sqlx::query(concat!(
                "SELECT ",
                passkey_columns!(),
                " FROM passkeys WHERE user_id = $1 ORDER BY created_at DESC, id DESC"
            ))
            .bind(user_id)
            .fetch_all(pool)
            .await
            .map_err(map_sqlx_error)?;
            rows.iter().map(passkey_from_row).collect()
        })
    }

    async fn passkey_by_credential_id(
        &self,
        credential_id: &str,
    ) -> Result<Option<PasskeyRecord>, StoreError> {
        with_pool!(self, pool => {
            let row = sqlx::query(concat!(
                "SELECT ",
                passkey_columns!(),
                " FROM passkeys WHERE credential_id = $1"
            ))
            .bind(credential_id)
            .fetch_optional(pool)
            .await
            .map_err(map_sqlx_error)?;
            row.as_ref().map(passkey_from_row).transpose()
        })
    }

    async fn insert_passkey(
        &self,
        passkey: &PasskeyRecord,
        work: &UnitOfWork,
    ) -> Result<(), StoreError> {
        write_transaction!(self, work: work, transaction => {
            insert_passkey_row(&mut *transaction, passkey).await?;
        });
        Ok(())
    }

    async fn record_passkey_use(
        &self,
        passkey: &PasskeyRecord,
        previous_sign_count: i64,
    ) -> Result<bool, StoreError> {
        let updated = write_transaction!(self, autocommit, pool => {
            sqlx::query(
                "UPDATE passkeys SET credential = $2, sign_count = $3, backup_eligible = $4, \
                 backup_state = $5, last_used_at = $6 \
                 WHERE id = $1 AND sign_count = $7 AND flagged_at IS NULL",
            )
            .bind(passkey.id.as_str())
            .bind(passkey.credential.as_str())
            .bind(passkey.sign_count)
            .bind(i64::from(passkey.backup_eligible))
            .bind(i64::from(passkey.backup_state))
            .bind(passkey.last_used_at)
            .bind(previous_sign_count)
            .execute(pool)
            .await
            .map_err(map_sqlx_error)?
            .rows_affected()
        });
        Ok(updated == 1)
    }

    async fn rename_passkey(
        &self,
        user_id: &str,
        passkey_id: &str,
        name: &str,
        work: &UnitOfWork,
    ) -> Result<bool, StoreError> {
        let done = write_transaction!(self, work: work, transaction => {
            let updated = sqlx::query("UPDATE passkeys SET name = $3 WHERE id = $1 AND user_id = $2")
                .bind(passkey_id)
                .bind(user_id)
                .bind(name)
                .execute(&mut *transaction)
                .await
                .map_err(map_sqlx_error)?
                .rows_affected();
            if updated == 0 {
                return Ok(false);
            }
            true
        });
        Ok(done)
    }

    async fn delete_passkey(
        &self,
        user_id: &str,
        passkey_id: &str,
        work: &UnitOfWork,
    ) -> Result<bool, StoreError> {
        let done = write_transaction!(self, work: work, transaction => {
            // Locks the user's row (PostgreSQL; SQLite writers are serialised): two removals
            // racing for an account's last two passkeys decide one after the other.
            sqlx::query("UPDATE users SET updated_at = updated_at WHERE id = $1")
                .bind(user_id)
                .execute(&mut *transaction)
                .await
                .map_err(map_sqlx_error)?;
            let deleted = sqlx::query(
                "DELETE FROM passkeys WHERE id = $1 AND user_id = $2 AND (\
                 EXISTS (SELECT 1 FROM users WHERE id = $2 AND password_hash IS NOT NULL) \
                 OR EXISTS (SELECT 1 FROM passkeys other WHERE other.user_id = $2 \
                 AND other.id <> $1 AND other.flagged_at IS NULL) \
                 OR EXISTS (SELECT 1 FROM user_identities WHERE user_id = $2))",
            )
            .bind(passkey_id)
            .bind(user_id)
            .execute(&mut *transaction)
            .await
            .map_err(map_sqlx_error)?
            .rows_affected();
            if deleted == 0 {
                return Ok(false);
            }
            true
        });
        Ok(done)
    }

    async fn flag_passkey(
        &self,
        passkey_id: &str,
        now: i64,
        work: &UnitOfWork,
    ) -> Result<(), StoreError> {
        write_transaction!(self, work: work, transaction => {
            sqlx::query("UPDATE passkeys SET flagged_at = $2 WHERE id = $1 AND flagged_at IS NULL")
                .bind(passkey_id)
                .bind(now)
                .execute(&mut *transaction)
                .await
                .map_err(map_sqlx_error)?;
        });
        Ok(())
    }
}

fn encode(record: &PasskeyCeremonyRecord) -> Result<String, StoreError> {
    serde_json::to_string(record).map_err(|error| StoreError::Other(format!("ceremony: {error}")))
}

fn decode(data: &str, digest: &[u8]) -> Result<PasskeyCeremonyRecord, StoreError> {
    let mut record: PasskeyCeremonyRecord = serde_json::from_str(data)
        .map_err(|error| StoreError::Other(format!("stored ceremony: {error}")))?;
    record.id_digest = digest.to_vec();
    Ok(record)
}

#[async_trait]
impl PasskeyCeremonyStore for Database {
    async fn put_ceremony(&self, ceremony: &PasskeyCeremonyRecord) -> Result<(), StoreError> {
        let data = encode(ceremony)?;
        write_transaction!(self, autocommit, pool => {
            sqlx::query(
                "INSERT INTO passkey_ceremonies (id_digest, data, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(ceremony.id_digest.as_slice())
            .bind(data)
            .bind(ceremony.created_at)
            .bind(ceremony.expires_at)
            .execute(pool)
            .await
            .map_err(map_sqlx_error)?;
        });
        Ok(())
    }

    async fn take_ceremony(
        &self,
        id_digest: &[u8],
    ) -> Result<Option<PasskeyCeremonyRecord>, StoreError> {
        let data: Option<String> = write_transaction!(self, autocommit, pool => {
            let row = sqlx::query("DELETE FROM passkey_ceremonies WHERE id_digest = $1 RETURNING data")
                .bind(id_digest)
                .fetch_optional(pool)
                .await
                .map_err(map_sqlx_error)?;
            row.map(|row| row.read::<String>("data")).transpose()?
        });
        data.map(|data| decode(&data, id_digest)).transpose()
    }
}

/// Ceremonies in Redis: shared by every instance, gone by themselves a minute after expiry.
pub struct RedisCeremonyStore {
    redis: Redis,
    prefix: String,
}

impl RedisCeremonyStore {
    pub fn new(redis: Redis, key_prefix: &str) -> RedisCeremonyStore {
        RedisCeremonyStore { redis, prefix: key_prefix.to_owned() }
    }

    fn key(&self, digest: &[u8]) -> String {
        let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
        format!("{}passkey:ceremony:{hex}", self.prefix)
    }
}

fn redis_error(error: redis::RedisError) -> StoreError {
    StoreError::Unavailable(format!("Redis: {:?}", error.kind()))
}

#[async_trait]
impl PasskeyCeremonyStore for RedisCeremonyStore {
    async fn put_ceremony(&self, ceremony: &PasskeyCeremonyRecord) -> Result<(), StoreError> {
        let ttl =
            u64::try_from((ceremony.expires_at - ceremony.created_at).max(1) + 60).unwrap_or(360);
        let mut connection = self.redis.connection();
        redis::cmd("SET")
            .arg(self.key(&ceremony.id_digest))
            .arg(encode(ceremony)?)
            .arg("EX")
            .arg(ttl)
            .query_async::<()>(&mut connection)
            .await
            .map_err(redis_error)
    }

    async fn take_ceremony(
        &self,
        id_digest: &[u8],
    ) -> Result<Option<PasskeyCeremonyRecord>, StoreError> {
        let mut connection = self.redis.connection();
        let data: Option<String> = redis::cmd("GETDEL")
            .arg(self.key(id_digest))
            .query_async(&mut connection)
            .await
            .map_err(redis_error)?;
        data.map(|data| decode(&data, id_digest)).transpose()
    }
}
