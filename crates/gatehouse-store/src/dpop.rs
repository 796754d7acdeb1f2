//! `DpopProofStore`: the `jti` of every accepted DPoP proof, in Redis when it is configured
//! (shared by every instance, gone by itself when the proof could no longer verify), else in
//! the `used_dpop_proofs` table (which the sweeper empties).

use std::sync::Arc;

use async_trait::async_trait;
use gatehouse_domain::StoreError;
use gatehouse_domain::oauth::dpop::DpopProofStore;

use crate::error::map_sqlx_error;
use crate::{Database, Redis};

/// One statement: a new jti is inserted, one remembered but expired (not swept yet) is taken
/// over, a live one is left alone; it answers a row only when it recorded the proof.
const RECORD_PROOF: &str = "INSERT INTO used_dpop_proofs (jkt, jti, expires_at) VALUES ($1, $2, $3) \
     ON CONFLICT (jkt, jti) DO UPDATE SET expires_at = excluded.expires_at \
     WHERE used_dpop_proofs.expires_at < $4 RETURNING jti";

#[async_trait]
impl DpopProofStore for Database {
    async fn record_dpop_proof(
        &self,
        jkt: &str,
        jti: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let recorded = match self {
            // Every DPoP request writes: on SQLite one statement (its own transaction) on the
            // writer, in a task of its own so a dropped request cannot interrupt it.
            Database::Sqlite(sqlite) => {
                let writer = Arc::clone(&sqlite.writer);
                let (jkt, jti) = (jkt.to_owned(), jti.to_owned());
                tokio::spawn(async move {
                    let mut writer = writer.lock_owned().await;
                    sqlx::query(RECORD_PROOF)
                        .bind(jkt)
                        .bind(jti)
                        .bind(expires_at)
                        .bind(now)
                        .fetch_optional(&mut *writer)
                        .await
                        .map(|row| row.is_some())
                        .map_err(map_sqlx_error)
                })
                .await
                .map_err(|error| StoreError::Other(format!("SQLite write task: {error}")))??
            }
            Database::Postgres(postgres) => sqlx::query(RECORD_PROOF)
                .bind(jkt)
                .bind(jti)
                .bind(expires_at)
                .bind(now)
                .fetch_optional(&postgres.pool)
                .await
                .map_err(map_sqlx_error)?
                .is_some(),
        };
        Ok(recorded)
    }
}

/// Proofs remembered in Redis (`SET NX` with the proof's remaining life).
pub struct RedisDpopProofStore {
    redis: Redis,
    prefix: String,
}

impl RedisDpopProofStore {
    pub fn new(redis: Redis, key_prefix: &str) -> RedisDpopProofStore {
        RedisDpopProofStore { redis, prefix: key_prefix.to_owned() }
    }

    /// The key names the thumbprint (43 characters) and the jti (at most 256, checked by the
    /// domain); Redis keys are binary-safe.
    fn key(&self, jkt: &str, jti: &str) -> String {
        format!("{}dpop:jti:{jkt}:{jti}", self.prefix)
    }
}

#[async_trait]
impl DpopProofStore for RedisDpopProofStore {
    async fn record_dpop_proof(
        &self,
        jkt: &str,
        jti: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let ttl = u64::try_from((expires_at - now).max(1)).unwrap_or(1);
        let mut connection = self.redis.connection();
        let set: Option<String> = redis::cmd("SET")
            .arg(self.key(jkt, jti))
            .arg(1)
            .arg("NX")
            .arg("EX")
            .arg(ttl)
            .query_async(&mut connection)
            .await
            .map_err(|error| StoreError::Unavailable(format!("Redis: {:?}", error.kind())))?;
        Ok(set.is_some())
    }
}
