//! Schema migrations, embedded in the binary and kept per backend.
//!
//! Invariant: `migrations/sqlite/` and `migrations/postgres/` hold the same versions with the
//! same names — [`migration!`] includes both files for each entry, so a missing twin does not
//! compile, and a test checks that no file is left out of [`MIGRATIONS`]. A published migration
//! is never edited: sqlx stores its checksum and refuses a changed one.

use std::borrow::Cow;

use gatehouse_domain::StoreError;
use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

use crate::Database;
use crate::database::Backend;
use crate::error::{map_migrate_error, map_sqlx_error};

/// One migration: version, name, SQLite text, PostgreSQL text.
pub struct EmbeddedMigration {
    pub version: i64,
    pub name: &'static str,
    pub sqlite: &'static str,
    pub postgres: &'static str,
}

macro_rules! migration {
    ($version:literal, $name:literal) => {
        EmbeddedMigration {
            version: $version,
            name: $name,
            sqlite: include_str!(concat!("../migrations/sqlite/", $name, ".sql")),
            postgres: include_str!(concat!("../migrations/postgres/", $name, ".sql")),
        }
    };
}

/// Every migration, in order. `name` is the file stem, `<version zero-padded to 4>_<what>`.
pub const MIGRATIONS: &[EmbeddedMigration] = &[
    migration!(1, "0001_initial"),
    migration!(2, "0002_accounts"),
    migration!(3, "0003_oauth"),
    migration!(4, "0004_device_codes"),
    migration!(5, "0005_client_assertions"),
    migration!(6, "0006_outbox"),
    migration!(7, "0007_mfa"),
    migration!(8, "0008_data_keys"),
    migration!(9, "0009_sweeper"),
    migration!(10, "0010_passkeys"),
    migration!(11, "0011_organizations"),
    migration!(12, "0012_invitations"),
    migration!(13, "0013_api_keys"),
    migration!(14, "0014_session_organization"),
    migration!(15, "0015_audit_log"),
    migration!(16, "0016_code_organization"),
    migration!(17, "0017_api_key_organization"),
    migration!(18, "0018_webhooks"),
    migration!(19, "0019_webhook_failing"),
    migration!(20, "0020_audit_erasures"),
    migration!(21, "0021_user_identities"),
    migration!(22, "0022_identity_tokens"),
    migration!(23, "0023_token_payload"),
    migration!(24, "0024_session_impersonator"),
    migration!(25, "0025_invitations_by_address"),
    migration!(26, "0026_account_deletions"),
    migration!(27, "0027_pushed_authorization_requests"),
    migration!(28, "0028_dpop"),
    migration!(29, "0029_resource_servers"),
    migration!(30, "0030_dynamic_registration"),
    migration!(31, "0031_backchannel_logout"),
    migration!(32, "0032_client_id_metadata_documents"),
];

fn migrator(backend: Backend) -> Migrator {
    let migrations = MIGRATIONS
        .iter()
        .map(|migration| {
            let sql = match backend {
                Backend::Sqlite => migration.sqlite,
                Backend::Postgres => migration.postgres,
            };
            Migration::new(
                migration.version,
                Cow::Borrowed(migration.name),
                MigrationType::Simple,
                sql.into_sql_str(),
                false,
            )
        })
        .collect();
    Migrator::with_migrations(migrations)
}

/// Applies every pending migration. Safe to run from several instances at once (sqlx takes an
/// advisory lock on PostgreSQL).
pub async fn run(database: &Database) -> Result<(), StoreError> {
    let migrator = migrator(database.backend());
    crate::with_pool!(database, pool => migrator.run(pool).await).map_err(map_migrate_error)
}

/// Applies the pending migrations up to `version` only (tests of a data migration fill the
/// schema as it was before it).
pub async fn run_to(database: &Database, version: i64) -> Result<(), StoreError> {
    let migrator = migrator(database.backend());
    crate::with_pool!(database, pool => migrator.run_to(version, pool).await)
        .map_err(map_migrate_error)
}

/// Versions already applied, for `gatehouse migrate` to report.
pub async fn applied_versions(database: &Database) -> Result<Vec<i64>, StoreError> {
    crate::with_pool!(database, pool => {
        sqlx::query_scalar::<_, i64>("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(pool)
            .await
            .map_err(map_sqlx_error)
    })
}

/// The last migration applied to `database`; 0 for a database no migration has touched (no
/// bookkeeping table yet). `gatehouse db export|import` compare archives and databases by it.
pub async fn current_version(database: &Database) -> Result<i64, StoreError> {
    let table_sql = match database.backend() {
        Backend::Sqlite => {
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'"
        }
        Backend::Postgres => {
            "SELECT COUNT(*) FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_name = '_sqlx_migrations'"
        }
    };
    let tables: i64 = crate::with_pool!(database, pool => {
        sqlx::query_scalar(table_sql).fetch_one(pool).await.map_err(map_sqlx_error)?
    });
    if tables == 0 {
        return Ok(0);
    }
    Ok(applied_versions(database).await?.last().copied().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files_in(dir: &str) -> Vec<String> {
        let path = format!("{}/migrations/{dir}", env!("CARGO_MANIFEST_DIR"));
        let mut names: Vec<String> = std::fs::read_dir(path)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn both_backends_have_the_same_migration_files_and_all_are_listed() {
        let sqlite = files_in("sqlite");
        let postgres = files_in("postgres");
        assert_eq!(sqlite, postgres, "migrations/sqlite and migrations/postgres differ");
        let listed: Vec<String> =
            MIGRATIONS.iter().map(|migration| format!("{}.sql", migration.name)).collect();
        assert_eq!(sqlite, listed, "a migration file is not listed in MIGRATIONS (or the reverse)");
    }

    #[test]
    fn versions_increase_and_match_file_names() {
        for migration in MIGRATIONS {
            assert!(
                migration.name.starts_with(&format!("{:04}_", migration.version)),
                "{}",
                migration.name
            );
        }
        for pair in MIGRATIONS.windows(2) {
            assert!(pair[0].version < pair[1].version);
        }
    }
}
