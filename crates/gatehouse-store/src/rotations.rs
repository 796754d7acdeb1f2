//! Refresh rotations on PostgreSQL, committed in groups ([`crate::group_commit`]).
//!
//! Measured with `pgbench` on this project's schema: 240 µs of PostgreSQL CPU for one rotation
//! alone, 74 µs each in groups of eight. In `bench.py --only refresh` (32 connections) groups
//! held three rotations on average and the PostgreSQL refresh went from 0.30–0.33 to 0.41–0.44
//! of the RS256 signing ceiling.

use std::sync::Arc;

use async_trait::async_trait;
use gatehouse_domain::StoreError;
use gatehouse_domain::sessions::{RefreshRotation, RotationOutcome};
use sqlx::PgPool;

use crate::columns::StoreRow;
use crate::error::map_sqlx_error;
use crate::group_commit::{GroupFailure, GroupWork, column};
use crate::sessions::{ROTATE_REFRESH_TOKEN_POSTGRES, rotation_from_row};

/// What a rotation answers: what it found (`None`: no such token), with `rotated` set, and
/// whether the session's `last_used_at` was touched (its cache entry is then stale).
pub(crate) type Rotated = Option<(RotationOutcome, bool)>;

/// One rotation, owned so that it can wait in the queue.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    presented: Vec<u8>,
    successor: Vec<u8>,
    now: i64,
    ttl_seconds: i64,
    touch_if_used_before: i64,
    client_id: Option<String>,
    dpop_jkt: Option<String>,
}

impl Request {
    pub(crate) fn of(rotation: &RefreshRotation<'_>) -> Self {
        Self {
            presented: rotation.presented.to_vec(),
            successor: rotation.successor.to_vec(),
            now: rotation.now,
            ttl_seconds: rotation.ttl_seconds,
            touch_if_used_before: rotation.touch_if_used_before,
            client_id: rotation.client_id.map(str::to_owned),
            dpop_jkt: rotation.dpop_jkt.map(str::to_owned),
        }
    }
}

/// Rotations as [`ROTATE_REFRESH_TOKEN_POSTGRES`] does them, announcing a touch on `channel`
/// with [`crate::cache`]'s `payload` prefix. Keyed by the presented token.
#[derive(Debug)]
pub(crate) struct Rotations {
    pub(crate) channel: Arc<str>,
    pub(crate) payload: String,
}

#[async_trait]
impl GroupWork for Rotations {
    type Request = Request;
    type Answer = Rotated;

    fn key(request: &Request) -> &[u8] {
        &request.presented
    }

    async fn alone(&self, pool: &PgPool, request: &Request) -> Result<Rotated, StoreError> {
        let Some(row) = sqlx::query(ROTATE_REFRESH_TOKEN_POSTGRES)
            .bind(&request.presented)
            .bind(request.now)
            .bind(&request.successor)
            .bind(request.ttl_seconds)
            .bind(request.touch_if_used_before)
            .bind(request.client_id.as_deref())
            .bind(request.dpop_jkt.as_deref())
            .bind(&*self.channel)
            .bind(&self.payload)
            .fetch_optional(pool)
            .await
            .map_err(map_sqlx_error)?
        else {
            return Ok(None);
        };
        let mut found = rotation_from_row(&row)?;
        let (rotated, touched): (i64, i64) = (row.read("rotated")?, row.read("touched")?);
        found.rotated = rotated == 1;
        Ok(Some((found, touched == 1)))
    }

    /// Each request's row (by its ordinal `n`) as the statement answers it alone.
    async fn together(
        &self,
        pool: &PgPool,
        requests: &[&Request],
    ) -> Result<Vec<Rotated>, GroupFailure> {
        let rows = sqlx::query(ROTATE_REFRESH_TOKENS_POSTGRES)
            .bind(column(requests, |r| r.presented.clone()))
            .bind(column(requests, |r| r.successor.clone()))
            .bind(column(requests, |r| r.now))
            .bind(column(requests, |r| r.ttl_seconds))
            .bind(column(requests, |r| r.touch_if_used_before))
            .bind(column(requests, |r| r.client_id.clone()))
            .bind(column(requests, |r| r.dpop_jkt.clone()))
            .bind(&*self.channel)
            .bind(&self.payload)
            .fetch_all(pool)
            .await?;
        let mut answers: Vec<Rotated> = vec![None; requests.len()];
        for row in &rows {
            let n: i64 = row.read("n")?;
            let slot = usize::try_from(n - 1)
                .ok()
                .and_then(|index| answers.get_mut(index))
                .ok_or_else(|| StoreError::Corrupt(format!("a group's row for request {n}")))?;
            let mut found = rotation_from_row(row)?;
            let (rotated, touched): (bool, bool) = (row.read("rotated")?, row.read("touched")?);
            found.rotated = rotated;
            *slot = Some((found, touched));
        }
        Ok(answers)
    }
}

/// [`ROTATE_REFRESH_TOKEN_POSTGRES`] for a group: the requests as arrays ($1 presented, $2
/// successors, $3 now, $4 lifetimes, $5 touch-if-used-before, $6 clients, $7 DPoP keys; $8
/// and $9 the `NOTIFY` channel and payload prefix), numbered `n` from 1 in order. Each row
/// found answers with its `n`, `rotated` and `touched`; a token not found has no row.
const ROTATE_REFRESH_TOKENS_POSTGRES: &str = concat!(
    "WITH request AS (SELECT * FROM unnest($1::bytea[], $2::bytea[], $3::bigint[], \
        $4::bigint[], $5::bigint[], $6::text[], $7::text[]) WITH ORDINALITY \
        AS r(presented, successor, r_now, r_ttl, r_touch_before, r_client_id, r_dpop_jkt, n)), \
    found AS (SELECT r.n, r.successor, r.r_now, r.r_ttl, r.r_touch_before, r.r_client_id, \
        r.r_dpop_jkt, ",
    crate::sessions::refresh_token_columns!(),
    ", u.suspended_at AS u_suspended_at FROM request r \
        JOIN refresh_tokens t ON t.token_digest = r.presented \
        JOIN sessions s ON s.id = t.session_id JOIN users u ON u.id = s.user_id), \
    spent AS ( \
        UPDATE refresh_tokens t SET rotated_at = f.r_now FROM found f \
        WHERE t.token_digest = f.token_digest AND t.rotated_at IS NULL AND t.expires_at > f.r_now \
        AND f.s_revoked_at IS NULL AND f.s_expires_at > f.r_now AND f.u_suspended_at IS NULL \
        AND f.s_client_id IS NOT DISTINCT FROM f.r_client_id \
        AND (f.s_dpop_jkt IS NULL OR f.s_dpop_jkt = f.r_dpop_jkt) \
        RETURNING t.token_digest), \
    inserted AS ( \
        INSERT INTO refresh_tokens (token_digest, session_id, created_at, expires_at, rotated_at) \
        SELECT f.successor, f.s_id, f.r_now, LEAST(f.r_now + f.r_ttl, f.s_expires_at), NULL \
        FROM found f JOIN spent ON spent.token_digest = f.token_digest \
        RETURNING token_digest), \
    touched AS ( \
        UPDATE sessions s SET last_used_at = f.r_now \
        FROM found f JOIN inserted i ON i.token_digest = f.successor \
        WHERE s.id = f.s_id AND s.last_used_at <= f.r_touch_before \
        RETURNING s.id) \
    SELECT found.*, \
        EXISTS (SELECT 1 FROM spent WHERE spent.token_digest = found.token_digest) AS rotated, \
        EXISTS (SELECT 1 FROM touched WHERE touched.id = found.s_id) AS touched, \
        (SELECT COUNT(*) FROM (SELECT pg_notify($8, $9 || id) FROM touched) AS announced) \
            AS announced \
    FROM found"
);
