//! Refresh rotations on PostgreSQL, committed in groups.
//!
//! A rotation alone is one statement and one commit: on a machine that also signs the
//! tokens, the database's share of it (executor start-up of a four-part statement, the commit,
//! the round trip) cost more than the signature itself. Rotations that arrive while others are
//! in flight wait for a free slot and then go together: one statement over arrays
//! ([`ROTATE_REFRESH_TOKENS_POSTGRES`]), one commit, each request answered only after it —
//! every acknowledged rotation is as durable as before. Measured with `pgbench` on this
//! project's schema (bench notes in issue #26): 240 µs of PostgreSQL CPU for one rotation
//! alone, 74 µs each in groups of eight.
//!
//! Groups run on connections of their own ([`GROUPS_IN_FLIGHT`] at most, opened on first use)
//! whose planner may only probe indexes: a group's generic plan is made once per connection,
//! and when it was made while the tables were small, the planner joined the requests to
//! `refresh_tokens` by hashing a scan of the whole table — which then ran on every group as
//! the table grew (seen in the bench: 2,759 scans of up to 15,000 rows in 20 s). One token's
//! rotation (a unique-key lookup) never had that problem and stays on the shared pool.
//!
//! A rotation with no group in flight goes at once (alone if nothing else waits: no added
//! wait at a low load). Beside a group in flight, another starts only once [`NEXT_GROUP_AT`]
//! rotations wait; fewer wait for its commit and go together then. In `bench.py --only
//! refresh` (32 connections), groups held three rotations on average and the PostgreSQL
//! refresh went from 0.30–0.33 to 0.41–0.44 of the RS256 signing ceiling.
//!
//! A group never holds one token twice (a second presentation waits for the next group, so
//! it finds the token spent, as it would alone); its tokens are sorted, so two groups lock
//! them in the same order. A group's failure is handled in [`run_group`].

use std::collections::VecDeque;
use std::sync::Arc;

use gatehouse_domain::StoreError;
use gatehouse_domain::sessions::{RefreshRotation, RotationOutcome};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::{Notify, mpsc, oneshot};

use crate::columns::StoreRow;
use crate::error::map_sqlx_error;
use crate::sessions::{ROTATE_REFRESH_TOKEN_POSTGRES, rotation_from_row};

/// Most rotations in one group.
const MAX_GROUP: usize = 32;
/// Groups in flight at most: while one waits for its commit's flush, the next executes.
const GROUPS_IN_FLIGHT: usize = 2;
/// Rotations waiting before a group starts beside one in flight; fewer wait for it to commit
/// and go together then (larger groups, less work per rotation for the database).
const NEXT_GROUP_AT: usize = 8;

/// What a rotation answers: what it found (`None`: no such token), with `rotated` set, and
/// whether the session's `last_used_at` was touched (its cache entry is then stale).
pub(crate) type Rotated = Option<(RotationOutcome, bool)>;

/// One rotation, owned so that it can wait in the queue.
#[derive(Debug, Clone)]
struct Request {
    presented: Vec<u8>,
    successor: Vec<u8>,
    now: i64,
    ttl_seconds: i64,
    touch_if_used_before: i64,
    client_id: Option<String>,
    dpop_jkt: Option<String>,
}

impl Request {
    fn of(rotation: &RefreshRotation<'_>) -> Self {
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

struct Pending {
    request: Request,
    answer: oneshot::Sender<Result<Rotated, StoreError>>,
}

/// Planner settings of the groups' connections: nested loops over index probes only.
const INDEX_PROBES_ONLY: [(&str, &str); 3] =
    [("enable_hashjoin", "off"), ("enable_mergejoin", "off"), ("enable_seqscan", "off")];

/// The queue of a PostgreSQL pool's rotations; its task starts with the first rotation.
#[derive(Debug)]
pub(crate) struct RotationQueue {
    sender: std::sync::OnceLock<mpsc::UnboundedSender<Pending>>,
    /// The groups' own connections (see the module's documentation).
    groups: PgPool,
}

impl RotationQueue {
    /// A queue whose groups connect with `connect` (the shared pool's options), when first
    /// needed.
    pub(crate) fn new(connect: &PgConnectOptions, acquire_timeout: std::time::Duration) -> Self {
        let groups = PgPoolOptions::new()
            .max_connections(GROUPS_IN_FLIGHT as u32)
            .min_connections(0)
            .acquire_timeout(acquire_timeout)
            .test_before_acquire(false)
            .before_acquire(|connection, meta| {
                Box::pin(async move {
                    // As the shared pool: only a connection that sat idle is checked first.
                    if meta.idle_for >= crate::database::IDLE_BEFORE_CHECK {
                        sqlx::Connection::ping(connection).await?;
                    }
                    Ok(true)
                })
            })
            .connect_lazy_with(connect.clone().options(INDEX_PROBES_ONLY));
        Self { sender: std::sync::OnceLock::new(), groups }
    }

    /// Rotates as [`ROTATE_REFRESH_TOKEN_POSTGRES`] does, in a group with whatever else is
    /// waiting. `channel` and `payload` are the invalidation's `NOTIFY` channel and payload
    /// prefix.
    pub(crate) async fn rotate(
        &self,
        pool: &PgPool,
        channel: &Arc<str>,
        payload: &str,
        rotation: &RefreshRotation<'_>,
    ) -> Result<Rotated, StoreError> {
        let sender = self.sender.get_or_init(|| {
            let (sender, receiver) = mpsc::unbounded_channel();
            let pools = Pools { shared: pool.clone(), groups: self.groups.clone() };
            tokio::spawn(form_groups(receiver, pools, channel.clone(), payload.to_owned()));
            sender
        });
        let (answer, answered) = oneshot::channel();
        let pending = Pending { request: Request::of(rotation), answer };
        if let Err(mpsc::error::SendError(pending)) = sender.send(pending) {
            // The queue's task is gone (its runtime ended): rotate here, alone.
            return rotate_alone(pool, channel, payload, &pending.request).await;
        }
        answered.await.map_err(|_| StoreError::Other("the rotation's group was dropped".into()))?
    }
}

/// Takes a free slot, then everything waiting (up to [`MAX_GROUP`], no token twice), and
/// sends it as one group; a token presented twice waits for the next group.
/// The shared pool (one rotation alone) and the groups' own.
#[derive(Clone)]
struct Pools {
    shared: PgPool,
    groups: PgPool,
}

async fn form_groups(
    mut receiver: mpsc::UnboundedReceiver<Pending>,
    pools: Pools,
    channel: Arc<str>,
    payload: String,
) {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(Notify::new());
    let mut waiting: VecDeque<Pending> = VecDeque::new();
    let payload: Arc<str> = payload.into();
    let mut open = true;
    loop {
        while let Ok(pending) = receiver.try_recv() {
            waiting.push_back(pending);
        }
        let busy = in_flight.load(Ordering::Acquire);
        let start = !waiting.is_empty()
            && (busy == 0 || (busy < GROUPS_IN_FLIGHT && waiting.len() >= NEXT_GROUP_AT));
        if start {
            let group = take_group(&mut waiting);
            in_flight.fetch_add(1, Ordering::AcqRel);
            let (pools, channel, payload) = (pools.clone(), channel.clone(), payload.clone());
            let (in_flight, finished) = (in_flight.clone(), finished.clone());
            tokio::spawn(async move {
                run_group(&pools, &channel, &payload, group).await;
                in_flight.fetch_sub(1, Ordering::AcqRel);
                finished.notify_one();
            });
            continue;
        }
        if !open && waiting.is_empty() {
            return;
        }
        tokio::select! {
            arrived = receiver.recv(), if open => match arrived {
                Some(pending) => waiting.push_back(pending),
                None => open = false,
            },
            () = finished.notified() => {}
        }
    }
}

/// The next group from the front of the line: up to [`MAX_GROUP`] rotations, no token twice
/// (a second presentation keeps its place for the next group).
fn take_group(waiting: &mut VecDeque<Pending>) -> Vec<Pending> {
    let mut group: Vec<Pending> = Vec::new();
    let mut rest = VecDeque::new();
    while let Some(pending) = waiting.pop_front() {
        let twice = group.iter().any(|taken| taken.request.presented == pending.request.presented);
        if twice || group.len() >= MAX_GROUP {
            rest.push_back(pending);
        } else {
            group.push(pending);
        }
    }
    *waiting = rest;
    group
}

/// Runs a group and answers each of its requests. A group the database refused (nothing of it
/// committed: a deadlock with a rare concurrent reuse, say) or that never left (no connection
/// free in time) is tried again one rotation at a time; a group whose outcome is unknown (the
/// connection broke while it ran) answers each request with the error, as a lone rotation
/// would — trying again could find its own spends and take them for reuse.
async fn run_group(pools: &Pools, channel: &str, payload: &str, mut group: Vec<Pending>) {
    if group.len() > 1 {
        group.sort_by(|a, b| a.request.presented.cmp(&b.request.presented));
        let requests: Vec<&Request> = group.iter().map(|pending| &pending.request).collect();
        match rotate_group(&pools.groups, channel, payload, &requests).await {
            Ok(answers) => {
                for (pending, answer) in group.into_iter().zip(answers) {
                    let _ = pending.answer.send(Ok(answer));
                }
                return;
            }
            Err(GroupFailure::NotCommitted(error)) => {
                tracing::debug!(%error, size = group.len(), "a group of rotations was refused; one by one");
            }
            Err(GroupFailure::Unknown(error, message)) => {
                tracing::warn!(%message, size = group.len(), "a group of rotations failed");
                for pending in group {
                    let _ = pending.answer.send(Err(error(message.clone())));
                }
                return;
            }
        }
    }
    let alone = group.into_iter().map(|pending| async move {
        let answer = rotate_alone(&pools.shared, channel, payload, &pending.request).await;
        let _ = pending.answer.send(answer);
    });
    futures_util::future::join_all(alone).await;
}

/// Why a group went unanswered.
enum GroupFailure {
    /// Nothing of it was committed.
    NotCommitted(String),
    /// It may have been committed: the error for each request (its kind and message).
    Unknown(fn(String) -> StoreError, String),
}

impl From<sqlx::Error> for GroupFailure {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::Database(_) | sqlx::Error::PoolTimedOut => {
                GroupFailure::NotCommitted(error.to_string())
            }
            other => GroupFailure::Unknown(StoreError::Unavailable, other.to_string()),
        }
    }
}

impl From<StoreError> for GroupFailure {
    fn from(error: StoreError) -> Self {
        GroupFailure::Unknown(StoreError::Corrupt, error.to_string())
    }
}

/// One rotation, one statement ([`ROTATE_REFRESH_TOKEN_POSTGRES`]).
async fn rotate_alone(
    pool: &PgPool,
    channel: &str,
    payload: &str,
    request: &Request,
) -> Result<Rotated, StoreError> {
    let Some(row) = sqlx::query(ROTATE_REFRESH_TOKEN_POSTGRES)
        .bind(&request.presented)
        .bind(request.now)
        .bind(&request.successor)
        .bind(request.ttl_seconds)
        .bind(request.touch_if_used_before)
        .bind(request.client_id.as_deref())
        .bind(request.dpop_jkt.as_deref())
        .bind(channel)
        .bind(payload)
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

/// A group of rotations as one statement: each request's row (by its ordinal `n`) as
/// [`ROTATE_REFRESH_TOKEN_POSTGRES`] answers it alone.
async fn rotate_group(
    pool: &PgPool,
    channel: &str,
    payload: &str,
    requests: &[&Request],
) -> Result<Vec<Rotated>, GroupFailure> {
    let column = |value: fn(&Request) -> i64| requests.iter().map(|r| value(r)).collect::<Vec<_>>();
    let rows = sqlx::query(ROTATE_REFRESH_TOKENS_POSTGRES)
        .bind(requests.iter().map(|r| r.presented.clone()).collect::<Vec<_>>())
        .bind(requests.iter().map(|r| r.successor.clone()).collect::<Vec<_>>())
        .bind(column(|r| r.now))
        .bind(column(|r| r.ttl_seconds))
        .bind(column(|r| r.touch_if_used_before))
        .bind(requests.iter().map(|r| r.client_id.clone()).collect::<Vec<_>>())
        .bind(requests.iter().map(|r| r.dpop_jkt.clone()).collect::<Vec<_>>())
        .bind(channel)
        .bind(payload)
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

/// [`ROTATE_REFRESH_TOKEN_POSTGRES`] for a group: the requests as arrays ($1 presented, $2
/// successors, $3 now, $4 lifetimes, $5 touch-if-used-before, $6 clients, $7 DPoP keys; $8
/// and $9 the `NOTIFY` channel and payload prefix), numbered `n` from 1 in order. Each row
/// found answers with its `n`, `rotated` and `touched`; a token not found has no row.
pub(crate) const ROTATE_REFRESH_TOKENS_POSTGRES: &str = concat!(
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

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(token: &str) -> Pending {
        let (answer, _) = oneshot::channel();
        let request = Request {
            presented: token.as_bytes().to_vec(),
            successor: Vec::new(),
            now: 0,
            ttl_seconds: 0,
            touch_if_used_before: 0,
            client_id: None,
            dpop_jkt: None,
        };
        Pending { request, answer }
    }

    fn tokens(line: &[Pending]) -> Vec<String> {
        line.iter().map(|p| String::from_utf8_lossy(&p.request.presented).into_owned()).collect()
    }

    #[test]
    fn a_group_never_holds_a_token_twice_and_the_second_keeps_its_place() {
        let mut waiting: VecDeque<Pending> =
            ["a", "b", "a", "c", "a"].into_iter().map(pending).collect();
        let first = take_group(&mut waiting);
        assert_eq!(tokens(&first), ["a", "b", "c"]);
        let second = take_group(&mut waiting);
        assert_eq!(tokens(&second), ["a"]);
        assert_eq!(tokens(&take_group(&mut waiting)), ["a"]);
        assert!(waiting.is_empty());
    }

    #[test]
    fn a_group_holds_at_most_max_group_rotations_in_their_order() {
        let mut waiting: VecDeque<Pending> =
            (0..MAX_GROUP + 3).map(|n| pending(&format!("t{n:03}"))).collect();
        let first = take_group(&mut waiting);
        assert_eq!(first.len(), MAX_GROUP);
        assert_eq!(tokens(&first)[0], "t000");
        assert_eq!(tokens(&waiting.into_iter().collect::<Vec<_>>()), ["t032", "t033", "t034"]);
    }

    #[test]
    fn only_a_group_known_not_committed_is_tried_again() {
        // Never sent: tried again one by one.
        assert!(matches!(
            GroupFailure::from(sqlx::Error::PoolTimedOut),
            GroupFailure::NotCommitted(_)
        ));
        // The connection broke while it ran: it may have been committed, so each request
        // gets the error rather than a second try that would find its own spends.
        let broken = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        match GroupFailure::from(broken) {
            GroupFailure::Unknown(kind, message) => {
                assert!(matches!(kind(message), StoreError::Unavailable(_)));
            }
            GroupFailure::NotCommitted(_) => panic!("a broken connection is not a refusal"),
        }
    }
}
