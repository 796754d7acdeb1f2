//! `MfaChallengeStore`: sign-in challenges between the first and the second factor. In Redis
//! when it is configured (shared by every instance, gone by themselves), else in the
//! `mfa_challenges` table. Either way the token is only a keyed digest, the expiry that
//! counts is the domain clock's (`expires_at` in the record), and consuming is atomic: one
//! caller wins.

use async_trait::async_trait;
use gatehouse_domain::StoreError;
use gatehouse_domain::mfa::{MfaChallengeRecord, MfaChallengeStore};

use crate::columns::StoreRow;
use crate::database::write_transaction;
use crate::error::map_sqlx_error;
use crate::{Database, Redis, with_pool};

fn encode(record: &MfaChallengeRecord) -> Result<String, StoreError> {
    serde_json::to_string(record).map_err(|error| StoreError::Other(format!("challenge: {error}")))
}

fn decode(data: &str, digest: &[u8], failures: i64) -> Result<MfaChallengeRecord, StoreError> {
    let mut record: MfaChallengeRecord = serde_json::from_str(data)
        .map_err(|error| StoreError::Other(format!("stored challenge: {error}")))?;
    record.token_digest = digest.to_vec();
    record.failures = failures;
    Ok(record)
}

#[async_trait]
impl MfaChallengeStore for Database {
    async fn create_challenge(&self, challenge: &MfaChallengeRecord) -> Result<(), StoreError> {
        let data = encode(challenge)?;
        write_transaction!(self, transaction => {
            // Sweep: challenges past their time are of no use to anyone.
            sqlx::query("DELETE FROM mfa_challenges WHERE expires_at < $1")
                .bind(challenge.created_at - 3600)
                .execute(&mut *transaction)
                .await
                .map_err(map_sqlx_error)?;
            sqlx::query(
                "INSERT INTO mfa_challenges (token_digest, user_id, data, failures, created_at, \
                 expires_at) VALUES ($1, $2, $3, 0, $4, $5)",
            )
            .bind(challenge.token_digest.as_slice())
            .bind(challenge.user_id.as_str())
            .bind(data)
            .bind(challenge.created_at)
            .bind(challenge.expires_at)
            .execute(&mut *transaction)
            .await
            .map_err(map_sqlx_error)?;
        });
        Ok(())
    }

    async fn challenge(&self, digest: &[u8]) -> Result<Option<MfaChallengeRecord>, StoreError> {
        with_pool!(self, pool => {
            let row = sqlx::query("SELECT data, failures FROM mfa_challenges WHERE token_digest = $1")
                .bind(digest)
                .fetch_optional(pool)
                .await
                .map_err(map_sqlx_error)?;
            row.map(|row| decode(&row.read::<String>("data")?, digest, row.read("failures")?))
                .transpose()
        })
    }

    async fn count_challenge_attempt(
        &self,
        digest: &[u8],
        limit: i64,
    ) -> Result<Option<i64>, StoreError> {
        // One conditional statement: of concurrent attempts, at most `limit` are counted.
        let attempts = write_transaction!(self, autocommit, pool => {
            let row = sqlx::query(
                "UPDATE mfa_challenges SET failures = failures + 1 \
                 WHERE token_digest = $1 AND failures < $2 RETURNING failures",
            )
            .bind(digest)
            .bind(limit)
            .fetch_optional(pool)
            .await
            .map_err(map_sqlx_error)?;
            row.map(|row| row.read::<i64>("failures")).transpose()?
        });
        Ok(attempts)
    }

    async fn consume_challenge(&self, digest: &[u8]) -> Result<bool, StoreError> {
        let deleted = write_transaction!(self, autocommit, pool => {
            sqlx::query("DELETE FROM mfa_challenges WHERE token_digest = $1")
                .bind(digest)
                .execute(pool)
                .await
                .map_err(map_sqlx_error)?
                .rows_affected()
        });
        Ok(deleted == 1)
    }
}

/// Challenges in Redis: one hash per challenge (`data`, `failures`: the answers counted) under
/// `<prefix>mfa:challenge:<hex digest>`, expiring a minute after the challenge itself.
pub struct RedisChallengeStore {
    redis: Redis,
    prefix: String,
}

impl RedisChallengeStore {
    pub fn new(redis: Redis, key_prefix: &str) -> RedisChallengeStore {
        RedisChallengeStore { redis, prefix: key_prefix.to_owned() }
    }

    fn key(&self, digest: &[u8]) -> String {
        let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
        format!("{}mfa:challenge:{hex}", self.prefix)
    }
}

fn redis_error(error: redis::RedisError) -> StoreError {
    StoreError::Unavailable(format!("Redis: {:?}", error.kind()))
}

#[async_trait]
impl MfaChallengeStore for RedisChallengeStore {
    async fn create_challenge(&self, challenge: &MfaChallengeRecord) -> Result<(), StoreError> {
        let key = self.key(&challenge.token_digest);
        let ttl = (challenge.expires_at - challenge.created_at).max(1) + 60;
        let mut connection = self.redis.connection();
        redis::pipe()
            .atomic()
            .hset(&key, "data", encode(challenge)?)
            .hset(&key, "failures", 0)
            .expire(&key, ttl)
            .query_async::<()>(&mut connection)
            .await
            .map_err(redis_error)
    }

    async fn challenge(&self, digest: &[u8]) -> Result<Option<MfaChallengeRecord>, StoreError> {
        let mut connection = self.redis.connection();
        let (data, failures): (Option<String>, Option<i64>) = redis::cmd("HMGET")
            .arg(self.key(digest))
            .arg("data")
            .arg("failures")
            .query_async(&mut connection)
            .await
            .map_err(redis_error)?;
        match data {
            Some(data) => Ok(Some(decode(&data, digest, failures.unwrap_or(0))?)),
            None => Ok(None),
        }
    }

    async fn count_challenge_attempt(
        &self,
        digest: &[u8],
        limit: i64,
    ) -> Result<Option<i64>, StoreError> {
        // Only counts on a challenge that still exists (a bare HINCRBY would create a stray
        // hash without expiry) and below the limit, in one script so nothing slips between
        // the check and the count; 0 means not counted.
        let script = redis::Script::new(
            "if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end \
             local attempts = tonumber(redis.call('HGET', KEYS[1], 'failures') or '0') \
             if attempts >= tonumber(ARGV[1]) then return 0 end \
             return redis.call('HINCRBY', KEYS[1], 'failures', 1)",
        );
        let mut connection = self.redis.connection();
        let attempts: i64 = script
            .key(self.key(digest))
            .arg(limit)
            .invoke_async(&mut connection)
            .await
            .map_err(redis_error)?;
        Ok((attempts > 0).then_some(attempts))
    }

    async fn consume_challenge(&self, digest: &[u8]) -> Result<bool, StoreError> {
        let mut connection = self.redis.connection();
        let deleted: i64 = redis::cmd("DEL")
            .arg(self.key(digest))
            .query_async(&mut connection)
            .await
            .map_err(redis_error)?;
        Ok(deleted == 1)
    }
}
