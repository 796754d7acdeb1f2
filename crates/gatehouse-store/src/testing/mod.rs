//! Fresh, isolated databases for tests: a temporary SQLite file, or a PostgreSQL schema of its
//! own per test (so tests run in parallel), dropped when the test ends.
//!
//! PostgreSQL comes from `GATEHOUSE_TEST_POSTGRES_URL`. Without it the PostgreSQL variant of a
//! test is skipped — except when `CI=true`, where a missing service must fail the run.

mod proxy;

use std::path::PathBuf;

use gatehouse_domain::StoreError;

use crate::{Database, DatabaseOptions};

/// Which backend a test runs on: the store's own enum.
pub use crate::Backend;
pub use proxy::FaultProxy;

pub const POSTGRES_URL_VARIABLE: &str = "GATEHOUSE_TEST_POSTGRES_URL";
pub const REDIS_URL_VARIABLE: &str = "GATEHOUSE_TEST_REDIS_URL";

/// The Redis to test against. `Ok(None)` means "skip" (not configured, not CI); with `CI=true`
/// a missing Redis is an error.
pub fn redis_url() -> Result<Option<String>, String> {
    match std::env::var(REDIS_URL_VARIABLE) {
        Ok(url) if !url.is_empty() => Ok(Some(url)),
        _ if ci_requires_services() => Err(format!("CI=true but {REDIS_URL_VARIABLE} is not set")),
        _ => Ok(None),
    }
}

/// The NATS server (with JetStream) of the event-stream tests: `GATEHOUSE_TEST_NATS_URL`; with
/// `CI=true` a missing one is an error, not a skip.
pub fn nats_url() -> Result<Option<String>, String> {
    match std::env::var("GATEHOUSE_TEST_NATS_URL") {
        Ok(url) if !url.is_empty() => Ok(Some(url)),
        _ if ci_requires_services() => {
            Err("CI=true but GATEHOUSE_TEST_NATS_URL is not set".to_owned())
        }
        _ => Ok(None),
    }
}

/// A database that exists for one test.
pub struct TestDatabase {
    pub database: Database,
    /// The URL a separate process (the `gatehouse` binary) can use to reach the same data.
    pub url: String,
    /// The schema a separate process must select (PostgreSQL only).
    pub postgres_schema: Option<String>,
    cleanup: Cleanup,
}

enum Cleanup {
    Directory(#[allow(dead_code)] tempfile::TempDir),
    Schema { admin_url: String, schema: String },
}

fn ci_requires_services() -> bool {
    std::env::var("CI").is_ok_and(|value| value == "true" || value == "1")
}

impl TestDatabase {
    /// A database on `backend`, migrated. `Ok(None)` means "skip": PostgreSQL is not
    /// configured and this is not CI.
    pub async fn new(backend: Backend) -> Result<Option<TestDatabase>, String> {
        Self::migrated_to(backend, None).await
    }

    /// As [`Self::new`], migrated only up to `version` when one is given (a data migration's
    /// test fills the schema as it was before, then runs `migrate::run`).
    pub async fn migrated_to(
        backend: Backend,
        version: Option<i64>,
    ) -> Result<Option<TestDatabase>, String> {
        match backend {
            Backend::Sqlite => Self::sqlite_to(version).await.map(Some),
            Backend::Postgres => Self::postgres_to(version).await,
        }
    }

    pub async fn sqlite() -> Result<TestDatabase, String> {
        Self::sqlite_to(None).await
    }

    pub async fn postgres() -> Result<Option<TestDatabase>, String> {
        Self::postgres_to(None).await
    }

    async fn sqlite_to(version: Option<i64>) -> Result<TestDatabase, String> {
        let directory = tempfile::tempdir().map_err(|error| error.to_string())?;
        let path: PathBuf = directory.path().join("gatehouse.db");
        let url = format!("sqlite://{}", path.display());
        let database = Database::connect(&url, &DatabaseOptions::default())
            .await
            .map_err(|e| e.to_string())?;
        migrate(&database, version).await?;
        Ok(TestDatabase {
            database,
            url,
            postgres_schema: None,
            cleanup: Cleanup::Directory(directory),
        })
    }

    async fn postgres_to(version: Option<i64>) -> Result<Option<TestDatabase>, String> {
        let admin_url = match std::env::var(POSTGRES_URL_VARIABLE) {
            Ok(url) if !url.is_empty() => url,
            _ if ci_requires_services() => {
                return Err(format!("CI=true but {POSTGRES_URL_VARIABLE} is not set"));
            }
            _ => return Ok(None),
        };
        let schema = format!("t_{}", gatehouse_schema_suffix());
        let admin = Database::connect(
            &admin_url,
            &DatabaseOptions { max_connections: 1, ..Default::default() },
        )
        .await
        .map_err(|error| format!("cannot reach PostgreSQL at {POSTGRES_URL_VARIABLE}: {error}"))?;
        crate::with_pool!(&admin, pool => {
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA \"{schema}\"")))
                .execute(pool)
                .await
                .map_err(|error| error.to_string())?;
        });
        admin.close().await;
        let options =
            DatabaseOptions { postgres_schema: Some(schema.clone()), ..Default::default() };
        let database = Database::connect(&admin_url, &options).await.map_err(|e| e.to_string())?;
        migrate(&database, version).await?;
        Ok(Some(TestDatabase {
            database,
            url: admin_url.clone(),
            postgres_schema: Some(schema.clone()),
            cleanup: Cleanup::Schema { admin_url, schema },
        }))
    }
}

async fn migrate(database: &Database, version: Option<i64>) -> Result<(), String> {
    match version {
        Some(version) => crate::migrate::run_to(database, version).await,
        None => crate::migrate::run(database).await,
    }
    .map_err(|error| error.to_string())
}

/// Unique per process and call, lowercase so PostgreSQL keeps it as written.
fn gatehouse_schema_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.subsec_nanos())
        .unwrap_or(0);
    format!("{}_{}_{}", std::process::id(), nanos, COUNTER.fetch_add(1, Ordering::Relaxed))
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Cleanup::Schema { admin_url, schema } = &self.cleanup {
            // Drop runs outside any async context we can borrow, so the schema is dropped from
            // a short-lived thread with its own runtime.
            let admin_url = admin_url.clone();
            let schema = schema.clone();
            let database = self.database.clone();
            let _ = std::thread::spawn(move || {
                let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                    return;
                };
                runtime.block_on(async move {
                    database.close().await;
                    if let Ok(admin) = Database::connect(&admin_url, &DatabaseOptions { max_connections: 1, ..Default::default() }).await {
                        let _: Result<(), StoreError> = crate::with_pool!(&admin, pool => {
                            sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE")))
                                .execute(pool)
                                .await
                                .map(|_| ())
                                .map_err(crate::map_sqlx_error)
                        });
                        admin.close().await;
                    }
                });
            })
            .join();
        }
    }
}

/// Declares a test that runs once per backend: `backend_tests!(name);` expects an
/// `async fn name(database: TestDatabase)` in scope and generates `name::sqlite` and
/// `name::postgres`. The PostgreSQL variant skips when PostgreSQL is not configured, and fails
/// when `CI=true`.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let database = $crate::testing::TestDatabase::new($crate::testing::Backend::Sqlite)
                        .await
                        .unwrap_or_else(|error| panic!("SQLite test database: {error}"))
                        .unwrap_or_else(|| panic!("SQLite is always available"));
                    super::$name(database).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    let database = $crate::testing::TestDatabase::new($crate::testing::Backend::Postgres)
                        .await
                        .unwrap_or_else(|error| panic!("PostgreSQL test database: {error}"));
                    let Some(database) = database else {
                        eprintln!("skipped: set {} to run the PostgreSQL variant", $crate::testing::POSTGRES_URL_VARIABLE);
                        return;
                    };
                    super::$name(database).await;
                }
            }
        )+
    };
}
