//! The connection pool of whichever backend `database.url` names, and how to open it.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use gatehouse_domain::{ReadinessCheck, StoreError};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::cache::{Invalidation, ReadCache};
use crate::error::{invalid_url, map_sqlx_error};
use crate::group_commit::{GroupQueue, group_connections};

/// Runs `$body` with `$pool` bound to the concrete pool of the configured backend. The body is
/// type-checked once per backend, so the same SQL and row mapping serve both.
#[macro_export]
macro_rules! with_pool {
    ($database:expr, $pool:ident => $body:expr) => {
        match $database {
            $crate::Database::Sqlite(sqlite) => {
                let $pool = &sqlite.pool;
                $body
            }
            $crate::Database::Postgres(postgres) => {
                let $pool = &postgres.pool;
                $body
            }
        }
    };
}

/// The one write path: every write of the store goes through it, so each takes the same
/// steps in the same order. In a transaction (every form but `autocommit`):
/// 1. SQLite: take the writer connection (writers queue on it, see [`SqliteDatabase`]);
///    PostgreSQL: take a connection of the pool;
/// 2. `BEGIN`, bind the transaction to the caller's name and run `$body`, whose value is the
///    macro's value (`?` or `return` in it leaves the enclosing function: the transaction is
///    dropped and rolls back);
/// 3. write the audit `events:` or the unit of `work:` (`apply_work`) into the transaction;
///    (a unit of work that revokes sessions adds the user and their sessions to `changed:`);
/// 4. announce what is `changed:` to the other instances (PostgreSQL `NOTIFY` inside the
///    transaction, so only a commit is announced), when anything is;
/// 5. `COMMIT`, then evict what is `changed:` from this process's read cache.
///
/// ```text
/// let revoked = write_transaction!(self, events: events, changed: &[Invalidation::Session(id)], transaction => {
///     sqlx::query("UPDATE sessions ...").execute(&mut *transaction).await.map_err(map_sqlx_error)?.rows_affected()
/// });
/// ```
///
/// The forms: `events: E[, changed: C]`, `work: W[, changed: C]`, `[changed: C]` (events
/// written only on some outcome stay in the body, with `insert_events`), and:
/// - `autocommit, pool => { ... }` takes the writer (as a guard only) and binds the pool: for
///   statements that stand alone, each committing by itself (a touch, a counter, a single-use
///   spend, a sweep before an insert), with no audit event and nothing cached; it saves the
///   `BEGIN` and `COMMIT` round trips.
///
/// Some writes take none of these. On PostgreSQL a refresh-token rotation
/// (`SessionStore::rotate_refresh_token`) is a single statement, its own transaction, which
/// announces its invalidation itself (`pg_notify` inside it, with [`crate::cache`]'s payload)
/// and evicts from the read cache as step 5 does. On SQLite the hottest writes (that rotation,
/// an authorization code, a new session) go to the writer as whole transactions in one or two
/// round trips ([`crate::batch`]), holding its lock as this macro does.
///
/// A macro rather than a function: a body is written once and type-checked once per backend,
/// as in [`with_pool!`]; it runs its own queries and reads their backend's rows, and a
/// closure cannot be generic over the two connection types, so a function taking the body
/// would need every body written twice. What the bodies share is in typed functions
/// (`insert_events`, `apply_work`, `announce`, `update_user_change`, ... over
/// [`crate::columns::StoreConnection`]).
macro_rules! write_transaction {
    (@steps $database:ident, $begin:expr, $changed:ident, $transaction:ident => $body:block, $effects:block) => {{
        let mut $transaction = $begin.await.map_err($crate::error::map_sqlx_error)?;
        #[allow(clippy::let_unit_value)]
        let value = $body;
        $effects
        if !$changed.is_empty() {
            $crate::cache::announce($database, &mut *$transaction, $changed).await?;
        }
        $transaction.commit().await.map_err($crate::error::map_sqlx_error)?;
        if !$changed.is_empty() {
            $database.cache().invalidate($changed);
        }
        value
    }};
    (@sqlite $database:ident, $sqlite:expr, $changed:ident, $transaction:ident => $body:block, $effects:block) => {{
        let mut writer = $sqlite.writer.lock().await;
        $crate::database::write_transaction!(
            @steps $database, sqlx::Connection::begin(&mut *writer), $changed, $transaction => $body, $effects
        )
    }};
    (@pools $database:expr, $changed:expr, $transaction:ident => $body:block, $effects:block) => {{
        let database: &$crate::Database = $database;
        let changed: &[$crate::cache::Invalidation<'_>] = $changed;
        match database {
            $crate::Database::Sqlite(sqlite) => $crate::database::write_transaction!(
                @sqlite database, sqlite, changed, $transaction => $body, $effects
            ),
            $crate::Database::Postgres(postgres) => $crate::database::write_transaction!(
                @steps database, postgres.pool.begin(), changed, $transaction => $body, $effects
            ),
        }
    }};
    ($database:expr, autocommit, $pool:ident => $body:block) => {{
        let database: &$crate::Database = $database;
        $crate::with_pool!(database, $pool => {
            let _write = database.write_guard().await;
            $body
        })
    }};
    ($database:expr, events: $events:expr, changed: $changed:expr, $transaction:ident => $body:block) => {
        $crate::database::write_transaction!(@pools $database, $changed, $transaction => $body, {
            $crate::audit::insert_events(&mut *$transaction, $events).await?;
        })
    };
    ($database:expr, events: $events:expr, $transaction:ident => $body:block) => {
        $crate::database::write_transaction!(
            $database, events: $events, changed: &[], $transaction => $body
        )
    };
    ($database:expr, work: $work:expr, changed: $changed:expr, $transaction:ident => $body:block) => {{
        let work: &gatehouse_domain::unit_of_work::UnitOfWork = $work;
        // A work that revokes sessions itself (a mailbox claim) adds what it changes.
        let named: &[$crate::cache::Invalidation<'_>] = $changed;
        let changed = $crate::cache::with_work(named, work);
        $crate::database::write_transaction!(@pools $database, &changed, $transaction => $body, {
            $crate::notify::apply_work(&mut *$transaction, work).await?;
        })
    }};
    ($database:expr, work: $work:expr, $transaction:ident => $body:block) => {
        $crate::database::write_transaction!(
            $database, work: $work, changed: &[], $transaction => $body
        )
    };
    ($database:expr, changed: $changed:expr, $transaction:ident => $body:block) => {
        $crate::database::write_transaction!(@pools $database, $changed, $transaction => $body, {})
    };
    ($database:expr, $transaction:ident => $body:block) => {
        $crate::database::write_transaction!(@pools $database, &[], $transaction => $body, {})
    };
}
pub(crate) use write_transaction;

/// How often the server checkpoints an SQLite WAL (see [`Database::start_checkpoints`]).
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(200);

/// The WAL's length, in pages, past which a checkpoint holds the writer back to start the WAL
/// over (see [`Database::start_checkpoints`]): 32 MiB of 4 KiB pages.
const WAL_RESTART_FRAMES: i64 = 8_192;

/// How long that checkpoint waits for readers of older snapshots (the writer's busy timeout
/// while it runs; writes wait that long at most).
const WAL_RESTART_WAIT: Duration = Duration::from_millis(250);

/// The size SQLite trims a WAL file to when it starts the WAL over.
const WAL_SIZE_LIMIT_BYTES: u64 = 64 * 1024 * 1024;

/// One round of [`Database::start_checkpoints`]: `PASSIVE` on a reader; then, when the WAL
/// still holds `frames` pages or more, `RESTART` on the writer, under its lock.
async fn checkpoint(
    pool: &SqlitePool,
    writer: &tokio::sync::Mutex<sqlx::SqliteConnection>,
    frames: i64,
) -> Result<(), StoreError> {
    // (busy, pages in the WAL, pages copied): -1 for both counts when not in WAL mode.
    let (_, in_wal, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
        .fetch_one(pool)
        .await
        .map_err(map_sqlx_error)?;
    if in_wal < frames {
        return Ok(());
    }
    let mut writer = writer.lock().await;
    let restart = format!(
        "PRAGMA busy_timeout = {}; PRAGMA wal_checkpoint(RESTART); PRAGMA busy_timeout = {}",
        WAL_RESTART_WAIT.as_millis(),
        BUSY_TIMEOUT.as_millis()
    );
    let outcome = sqlx::raw_sql(sqlx::AssertSqlSafe(restart)).execute(&mut *writer).await;
    if outcome.is_err() {
        // Whatever failed, the writer keeps its usual patience.
        let restore = format!("PRAGMA busy_timeout = {}", BUSY_TIMEOUT.as_millis());
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(restore)).execute(&mut *writer).await;
    }
    outcome.map(|_| ()).map_err(map_sqlx_error)
}

/// How long an SQLite connection waits for a lock another process holds.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a PostgreSQL connection may sit idle in the pool before it is checked (a round
/// trip) when it is next taken.
const IDLE_BEFORE_CHECK: Duration = Duration::from_secs(1);

/// Options of a PostgreSQL pool of `max_connections`. The pool's check of a connection it
/// hands out is a round trip per query; a connection that was in use a moment ago (under load,
/// all of them) is alive, and one that is not answers its query with an error that closes it
/// (the pool also checks every connection given back). Only a connection that sat idle —
/// through a restart of the server, say — is checked first.
pub(crate) fn postgres_pool_options(
    max_connections: u32,
    acquire_timeout: Duration,
) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(acquire_timeout)
        .test_before_acquire(false)
        .before_acquire(|connection, meta| {
            Box::pin(async move {
                if meta.idle_for >= IDLE_BEFORE_CHECK {
                    sqlx::Connection::ping(connection).await?;
                }
                Ok(true)
            })
        })
}

/// A pool on one of the supported backends. Cloning is cheap (the pools are `Arc`s).
#[derive(Clone, Debug)]
pub enum Database {
    Sqlite(SqliteDatabase),
    Postgres(PostgresDatabase),
}

/// A PostgreSQL pool, the read cache, and the channel its invalidations travel on.
#[derive(Clone, Debug)]
pub struct PostgresDatabase {
    pub pool: PgPool,
    cache: Arc<ReadCache>,
    channel: Arc<str>,
    rotations: Arc<GroupQueue<crate::rotations::Rotations>>,
    codes: Arc<GroupQueue<crate::oauth::AuthorizationCodes>>,
}

impl PostgresDatabase {
    /// A refresh rotation, committed in a group with those waiting beside it (see
    /// [`crate::rotations`]).
    pub(crate) async fn rotate_refresh_token(
        &self,
        rotation: &gatehouse_domain::sessions::RefreshRotation<'_>,
    ) -> Result<crate::rotations::Rotated, StoreError> {
        let request = crate::rotations::Request::of(rotation);
        self.rotations.submit(&self.pool, request).await
    }

    /// An authorization code, stored in a group with those waiting beside it.
    pub(crate) async fn insert_authorization_code(
        &self,
        code: &gatehouse_domain::oauth::AuthorizationCodeRecord,
    ) -> Result<(), StoreError> {
        self.codes.submit(&self.pool, code.clone()).await
    }
}

/// An SQLite pool of readers and the one connection its write transactions run on.
///
/// SQLite allows one writer at a time; a second connection that tries to write waits in
/// SQLite's busy handler, which sleeps in growing steps (up to 100 ms) — under concurrent
/// writes that costs most of the throughput and all of the tail latency. Writers instead queue
/// in order, without sleeping, on an async lock around the writer connection; readers never
/// take it (WAL lets them run beside the writer). The writer lives outside the pool: a
/// pooled connection costs two more hops to sqlx's SQLite worker thread per use (the pool
/// pings it when it is taken and when it is given back), and every hop made while holding
/// the lock is time every other writer waits — under load, the hops are what bounded the
/// writes per second. `autocommit` writes hold the same lock and run on the pool.
#[derive(Clone, Debug)]
pub struct SqliteDatabase {
    pub pool: SqlitePool,
    pub(crate) writer: Arc<tokio::sync::Mutex<sqlx::SqliteConnection>>,
    cache: Arc<ReadCache>,
}

/// How to open the pool.
#[derive(Debug, Clone)]
pub struct DatabaseOptions {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    /// PostgreSQL only: the schema to use as `search_path` (tests give each test its own).
    pub postgres_schema: Option<String>,
}

impl Default for DatabaseOptions {
    fn default() -> Self {
        Self { max_connections: 10, acquire_timeout: Duration::from_secs(5), postgres_schema: None }
    }
}

/// The database engines Gatehouse runs on. Shown and serialised as `sqlite` / `postgres`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl serde::Serialize for Backend {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// The backend a database URL names, or `None` when the scheme is not supported.
pub fn backend_of(url: &str) -> Option<Backend> {
    if url.starts_with("sqlite:") {
        Some(Backend::Sqlite)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Some(Backend::Postgres)
    } else {
        None
    }
}

impl Database {
    /// Opens a pool. SQLite files are created when missing and run in WAL mode with foreign
    /// keys on and a busy timeout, so concurrent readers never wait for the writer.
    pub async fn connect(url: &str, options: &DatabaseOptions) -> Result<Database, StoreError> {
        match backend_of(url) {
            Some(Backend::Sqlite) => {
                let connect = SqliteConnectOptions::from_str(url)
                    .map_err(|error| invalid_url(Backend::Sqlite, error))?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .foreign_keys(true)
                    .busy_timeout(BUSY_TIMEOUT)
                    .pragma("journal_size_limit", WAL_SIZE_LIMIT_BYTES.to_string());

                // A file on this machine does not drop its connections: the pool's check of
                // each connection it hands out (a hop to the connection's worker thread per
                // query) is skipped.
                let pool = SqlitePoolOptions::new()
                    .max_connections(options.max_connections)
                    .acquire_timeout(options.acquire_timeout)
                    .test_before_acquire(false)
                    .connect_with(connect.clone())
                    .await
                    .map_err(map_sqlx_error)?;
                let writer =
                    sqlx::ConnectOptions::connect(&connect).await.map_err(map_sqlx_error)?;
                Ok(Database::Sqlite(SqliteDatabase {
                    pool,
                    writer: Arc::new(tokio::sync::Mutex::new(writer)),
                    cache: Arc::default(),
                }))
            }
            Some(Backend::Postgres) => {
                let mut connect = PgConnectOptions::from_str(url)
                    .map_err(|error| invalid_url(Backend::Postgres, error))?;
                if let Some(schema) = &options.postgres_schema {
                    connect = connect.options([("search_path", schema.as_str())]);
                }
                let pool = postgres_pool_options(options.max_connections, options.acquire_timeout)
                    .connect_with(connect.clone())
                    .await
                    .map_err(map_sqlx_error)?;
                let groups = group_connections(&connect, options.acquire_timeout);
                // NOTIFY is per database: instances sharing a schema share a channel.
                let channel = match &options.postgres_schema {
                    Some(schema) => format!("gatehouse_cache_{schema}"),
                    None => "gatehouse_cache".to_owned(),
                };
                let channel: Arc<str> = channel.into();
                let rotations = crate::rotations::Rotations {
                    channel: channel.clone(),
                    payload: crate::cache::payload(&[Invalidation::Session("")]),
                };
                Ok(Database::Postgres(PostgresDatabase {
                    pool,
                    cache: Arc::default(),
                    channel,
                    rotations: Arc::new(GroupQueue::new(rotations, groups.clone())),
                    codes: Arc::new(GroupQueue::new(crate::oauth::AuthorizationCodes, groups)),
                }))
            }
            None => Err(StoreError::Other(
                "unsupported database URL: expected sqlite:// or postgres://".into(),
            )),
        }
    }

    /// Held for the length of a write: serialises SQLite writers (see [`SqliteDatabase`]);
    /// nothing on PostgreSQL, whose row locks do this job.
    pub(crate) async fn write_guard(
        &self,
    ) -> Option<tokio::sync::MutexGuard<'_, sqlx::SqliteConnection>> {
        match self {
            Database::Sqlite(sqlite) => Some(sqlite.writer.lock().await),
            Database::Postgres(_) => None,
        }
    }

    /// The read cache of the hot paths (see [`crate::cache`]).
    pub fn cache(&self) -> &ReadCache {
        match self {
            Database::Sqlite(sqlite) => &sqlite.cache,
            Database::Postgres(postgres) => &postgres.cache,
        }
    }

    /// The `NOTIFY` channel invalidations travel on; `None` on SQLite (one process).
    pub(crate) fn notify_channel(&self) -> Option<&str> {
        match self {
            Database::Sqlite(_) => None,
            Database::Postgres(postgres) => Some(&postgres.channel),
        }
    }

    /// Turns the read cache on, entries living at most `ttl`. SQLite: at once (this process
    /// is the only writer the server knows of). PostgreSQL: a task LISTENs for the other
    /// instances' invalidations and serves from the cache only while it is connected.
    pub fn start_cache(&self, ttl: Duration) {
        self.cache().set_ttl(ttl);
        if ttl.is_zero() {
            return;
        }
        match self {
            Database::Sqlite(sqlite) => sqlite.cache.set_enabled(true),
            Database::Postgres(postgres) => {
                tokio::spawn(listen_for_invalidations(postgres.clone()));
            }
        }
    }

    /// SQLite: takes the WAL checkpoints off the write path. SQLite checkpoints in the
    /// connection that commits once the WAL passes 1,000 pages — on the writer, holding the
    /// write lock through the checkpoint's fsyncs while every other writer waits. The writer's
    /// automatic checkpoints are turned off and a task checkpoints every
    /// [`CHECKPOINT_INTERVAL`] on a reader connection instead (`PASSIVE`: it copies what it
    /// can without waiting for anyone and without holding up the writer).
    ///
    /// The WAL starts over only at a write after a checkpoint that copied all of it, and under
    /// a steady load a `PASSIVE` one never does: the writer appends while it copies. The WAL
    /// then grew without end (4 GB in 40 s of code flows, every commit appending to new pages
    /// of the file and every read searching a longer index). So once the WAL holds
    /// [`WAL_RESTART_FRAMES`], the task takes the writer's lock — no write appends meanwhile —
    /// and checkpoints what is left with `RESTART` (waiting at most [`WAL_RESTART_WAIT`] for
    /// readers of older snapshots), so that the next write starts the WAL over at its
    /// beginning, reusing the file's pages; `journal_size_limit` trims a WAL that a long
    /// reader made grow past that. The server calls this; the CLI and tests keep SQLite's own
    /// checkpoints. Nothing on PostgreSQL.
    pub async fn start_checkpoints(&self) -> Result<(), StoreError> {
        self.start_checkpoints_restarting_after(WAL_RESTART_FRAMES).await
    }

    async fn start_checkpoints_restarting_after(&self, frames: i64) -> Result<(), StoreError> {
        let Database::Sqlite(sqlite) = self else { return Ok(()) };
        {
            let mut writer = sqlite.writer.lock().await;
            sqlx::query("PRAGMA wal_autocheckpoint = 0")
                .execute(&mut *writer)
                .await
                .map_err(map_sqlx_error)?;
        }
        let (pool, writer) = (sqlite.pool.clone(), Arc::clone(&sqlite.writer));
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(CHECKPOINT_INTERVAL);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while !pool.is_closed() {
                ticks.tick().await;
                if let Err(error) = checkpoint(&pool, &writer, frames).await {
                    tracing::warn!(%error, "SQLite WAL checkpoint failed; the next one retries");
                }
            }
        });
        Ok(())
    }

    /// Which engine this pool is on.
    pub fn backend(&self) -> Backend {
        match self {
            Database::Sqlite(_) => Backend::Sqlite,
            Database::Postgres(_) => Backend::Postgres,
        }
    }

    /// One round trip to the database.
    pub async fn ping(&self) -> Result<(), StoreError> {
        with_pool!(self, pool => {
            sqlx::query("SELECT 1").execute(pool).await.map_err(map_sqlx_error)?;
        });
        Ok(())
    }

    /// Closes every connection, waiting for the ones in use (graceful shutdown).
    pub async fn close(&self) {
        with_pool!(self, pool => pool.close().await)
    }
}

/// Keeps `postgres.cache` in step with the other instances: LISTEN, apply every payload, and
/// on a lost connection empty and bypass the cache until listening again.
async fn listen_for_invalidations(postgres: PostgresDatabase) {
    loop {
        match sqlx::postgres::PgListener::connect_with(&postgres.pool).await {
            Ok(mut listener) => {
                // A lost connection must bypass the cache at once: by default the listener
                // first waits to reconnect (up to the pool's acquire timeout during an outage),
                // and the cache would go on answering while invalidations cannot arrive. This
                // loop reconnects, and flushes the cache when it listens again.
                listener.eager_reconnect(false);
                if let Err(error) = listener.listen(&postgres.channel).await {
                    tracing::warn!(%error, "cache invalidations: LISTEN failed; cache bypassed");
                } else {
                    postgres.cache.set_enabled(true);
                    loop {
                        match listener.try_recv().await {
                            Ok(Some(notification)) => postgres.cache.apply(notification.payload()),
                            Ok(None) => break,
                            Err(error) => {
                                tracing::warn!(%error, "cache invalidations: connection lost; cache bypassed until it is back");
                                break;
                            }
                        }
                    }
                    postgres.cache.set_enabled(false);
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cache invalidations: cannot connect; cache bypassed");
            }
        }
        if postgres.pool.is_closed() {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[async_trait]
impl ReadinessCheck for Database {
    fn name(&self) -> &'static str {
        "database"
    }

    async fn check(&self) -> Result<(), String> {
        self.ping().await.map_err(|error| error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backends_are_named_by_their_url_and_print_as_before() {
        assert_eq!(backend_of("sqlite://gatehouse.db"), Some(Backend::Sqlite));
        assert_eq!(backend_of("sqlite::memory:"), Some(Backend::Sqlite));
        assert_eq!(backend_of("postgres://localhost/gatehouse"), Some(Backend::Postgres));
        assert_eq!(backend_of("postgresql://localhost/gatehouse"), Some(Backend::Postgres));
        assert_eq!(backend_of("mysql://localhost/gatehouse"), None);
        assert_eq!(Backend::Sqlite.to_string(), "sqlite");
        assert_eq!(
            serde_json::json!({ "backend": Backend::Postgres }).to_string(),
            r#"{"backend":"postgres"}"#
        );
    }

    /// Under a steady stream of writes with readers beside them, the WAL starts over instead of
    /// growing with everything written (it grew to 4 GB in 40 s of a benchmark before).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_starts_over_under_a_steady_load_with_readers() {
        const ROW: usize = 100;
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("wal.db").display());
        let database = Database::connect(&url, &DatabaseOptions::default()).await.unwrap();
        let Database::Sqlite(sqlite) = &database else { unreachable!("an SQLite URL") };
        sqlx::query("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB NOT NULL)")
            .execute(&mut *sqlite.writer.lock().await)
            .await
            .unwrap();
        database.start_checkpoints_restarting_after(256).await.unwrap();

        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (pool, stop) = (sqlite.pool.clone(), Arc::clone(&stop));
                tokio::spawn(async move {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let _: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t")
                            .fetch_one(&pool)
                            .await
                            .unwrap();
                    }
                })
            })
            .collect();
        // Writes for two dozen checkpoint intervals, each its own transaction.
        let until = std::time::Instant::now() + CHECKPOINT_INTERVAL * 24;
        let mut commits = 0_u64;
        while std::time::Instant::now() < until {
            let mut writer = sqlite.writer.lock().await;
            sqlx::query("INSERT INTO t (v) VALUES (zeroblob($1))")
                .bind(ROW as i64)
                .execute(&mut *writer)
                .await
                .unwrap();
            commits += 1;
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for reader in readers {
            reader.await.unwrap();
        }
        // At least a page per commit was appended to the WAL; it starts over at least every
        // other checkpoint interval, so it never held more than a few intervals' worth.
        let appended = commits * 4096;
        let wal = std::fs::metadata(dir.path().join("wal.db-wal")).unwrap().len();
        assert!(wal < appended / 4, "the WAL holds {wal} bytes of {appended} appended");
    }
}
