//! The SQLite and PostgreSQL migrations give the same schema: tables, columns and their types,
//! nullability, primary keys, unique constraints, indexes and foreign keys, read back from each
//! database's own catalogue after the project's migrations ran on an empty database.
//!
//! That both backends have the same migration files (versions and names) is already checked
//! where the list lives, in `src/migrate.rs` (`both_backends_have_the_same_migration_files_…`
//! and `versions_increase_and_match_file_names`), and `migration!` does not compile without
//! both twins; this file checks what those files build.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use gatehouse_store::Database;
use gatehouse_store::migrate::{MIGRATIONS, applied_versions};
use gatehouse_store::testing::{Backend, POSTGRES_URL_VARIABLE, TestDatabase};

/// SQLite declared type (as written in `migrations/sqlite/`, compared without regard to case)
/// and the PostgreSQL type (`information_schema.columns.data_type`) it stands for. A pair not
/// in this table is reported as a difference, so a new type needs a line here saying why the
/// two are equivalent.
const TYPE_MAPPING: &[(&str, &str)] = &[
    // Both are 64-bit signed integers: SQLite gives BIGINT integer affinity and stores any
    // integer in up to 8 bytes, PostgreSQL's bigint is 8 bytes. Unix times and counters fit both.
    ("BIGINT", "bigint"),
    // Both hold UTF-8 text of any length without padding; neither side declares a length.
    ("TEXT", "text"),
    // Both hold raw bytes of any length: sealed ciphertexts and keyed digests, bound as `&[u8]`.
    ("BLOB", "bytea"),
];

/// Differences the migrations already published are known to have. A published migration is
/// never edited (sqlx refuses a changed checksum), so these stay until a new migration fixes
/// them; the test fails on any difference not listed here, and on a line that no longer occurs.
const KNOWN_DIFFERENCES: &[&str] = &[
    // SQLite lets a primary-key column hold NULL unless it is an INTEGER PRIMARY KEY or is
    // declared NOT NULL (a quirk kept for backward compatibility, see "CREATE TABLE" in the
    // SQLite documentation); PostgreSQL makes every primary-key column NOT NULL. These columns
    // are declared `<type> PRIMARY KEY` without NOT NULL, so an SQLite database accepts rows
    // with a NULL key (several even, NULLs being distinct in a unique index) where PostgreSQL
    // refuses them. Fixing it on SQLite means rebuilding each table in a new migration.
    "signing_keys.kid: sqlite nullable vs postgres NOT NULL", // 0001_initial
    "users.id: sqlite nullable vs postgres NOT NULL",         // 0001_initial
    "sessions.id: sqlite nullable vs postgres NOT NULL",      // 0002_accounts
    "refresh_tokens.token_digest: sqlite nullable vs postgres NOT NULL", // 0002_accounts
    "audit_events.id: sqlite nullable vs postgres NOT NULL",  // 0002_accounts
    "admin_api_keys.id: sqlite nullable vs postgres NOT NULL", // 0002_accounts
    "oauth_clients.client_id: sqlite nullable vs postgres NOT NULL", // 0003_oauth
    "authorization_codes.code_digest: sqlite nullable vs postgres NOT NULL", // 0003_oauth
    "revoked_access_tokens.jti: sqlite nullable vs postgres NOT NULL", // 0003_oauth
    "device_codes.device_code_digest: sqlite nullable vs postgres NOT NULL", // 0004_device_codes
    "outbox.id: sqlite nullable vs postgres NOT NULL",        // 0006_outbox
    "outbox_attempts.id: sqlite nullable vs postgres NOT NULL", // 0006_outbox
    "one_time_tokens.token_digest: sqlite nullable vs postgres NOT NULL", // 0006_outbox
    "mfa_factors.id: sqlite nullable vs postgres NOT NULL",   // 0007_mfa
    "mfa_codes.id: sqlite nullable vs postgres NOT NULL",     // 0007_mfa
    "mfa_challenges.token_digest: sqlite nullable vs postgres NOT NULL", // 0007_mfa
    "trusted_devices.id: sqlite nullable vs postgres NOT NULL", // 0007_mfa
];

/// The migration bookkeeping table: sqlx's, not the schema's.
const MIGRATIONS_TABLE: &str = "_sqlx_migrations";

/// Stands for an index key that is an expression rather than a column, on both sides.
const EXPRESSION: &str = "<expression>";

/// What one database's catalogue says about the schema, in terms both backends share.
#[derive(Debug, Default)]
struct Schema {
    tables: BTreeMap<String, Table>,
}

#[derive(Debug, Default)]
struct Table {
    columns: BTreeMap<String, Column>,
    /// In key order; empty when the table has none.
    primary_key: Vec<String>,
    /// UNIQUE constraints (SQLite's `sqlite_autoindex_*` of origin `u`, PostgreSQL's
    /// constraint-backed `*_key` indexes), as column sets: their index names are made up by
    /// each backend, so only the columns they cover can be compared.
    unique: BTreeSet<BTreeSet<String>>,
    /// Indexes created with CREATE INDEX, by name (both backends keep the name as written).
    indexes: BTreeMap<String, Index>,
    foreign_keys: BTreeMap<ForeignKey, Actions>,
}

#[derive(Debug)]
struct Column {
    /// SQLite: the declared type; PostgreSQL: `data_type`. Compared through [`TYPE_MAPPING`].
    declared_type: String,
    nullable: bool,
}

#[derive(Debug, PartialEq, Eq)]
struct Index {
    columns: Vec<String>,
    unique: bool,
    /// Has a WHERE clause. The predicate itself is not compared: PostgreSQL stores it
    /// rewritten (`(state = 'active'::text)`), SQLite as written.
    partial: bool,
}

/// What a foreign key links; its actions are the value it maps to in [`Table::foreign_keys`].
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct ForeignKey {
    columns: Vec<String>,
    references: String,
    referenced_columns: Vec<String>,
}

#[derive(Debug, PartialEq, Eq)]
struct Actions {
    on_delete: String,
    on_update: String,
}

impl fmt::Display for Column {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let null = if self.nullable { "nullable" } else { "NOT NULL" };
        write!(f, "{} {null}", self.declared_type)
    }
}

impl fmt::Display for Index {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.unique {
            write!(f, "UNIQUE ")?;
        }
        write!(f, "({})", self.columns.join(", "))?;
        if self.partial {
            write!(f, " WHERE …")?;
        }
        Ok(())
    }
}

impl fmt::Display for ForeignKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "({}) -> {} ({})",
            self.columns.join(", "),
            self.references,
            self.referenced_columns.join(", ")
        )
    }
}

impl fmt::Display for Actions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ON DELETE {} ON UPDATE {}", self.on_delete, self.on_update)
    }
}

fn types_are_equivalent(sqlite: &str, postgres: &str) -> bool {
    TYPE_MAPPING.iter().any(|(s, p)| s.eq_ignore_ascii_case(sqlite) && *p == postgres)
}

/// One line of the report: `subject: sqlite X vs postgres Y`, `absent` standing for a side
/// that does not have the thing.
fn difference(subject: &str, sqlite: Option<String>, postgres: Option<String>) -> String {
    let side = |value: Option<String>| value.unwrap_or_else(|| "absent".to_owned());
    format!("{subject}: sqlite {} vs postgres {}", side(sqlite), side(postgres))
}

/// Compares two keyed collections: a key on one side only is one difference; a key on both
/// is handed to `both` to compare the values.
fn compare_keyed<K: Ord, V>(
    sqlite: &BTreeMap<K, V>,
    postgres: &BTreeMap<K, V>,
    subject: impl Fn(&K) -> String,
    present: impl Fn(&V) -> String,
    mut both: impl FnMut(&K, &V, &V),
    differences: &mut Vec<String>,
) {
    let keys: BTreeSet<&K> = sqlite.keys().chain(postgres.keys()).collect();
    for key in keys {
        match (sqlite.get(key), postgres.get(key)) {
            (Some(s), Some(p)) => both(key, s, p),
            (s, p) => differences.push(difference(&subject(key), s.map(&present), p.map(&present))),
        }
    }
}

/// Keyed values compared by their text: those on one side only (in key order), then those that
/// differ (in key order).
fn compare_values<K: Ord, V: PartialEq + std::fmt::Display>(
    sqlite: &BTreeMap<K, V>,
    postgres: &BTreeMap<K, V>,
    subject: impl Fn(&K) -> String,
    differences: &mut Vec<String>,
) {
    let mut differing = Vec::new();
    compare_keyed(
        sqlite,
        postgres,
        &subject,
        ToString::to_string,
        |key, s, p| {
            if s != p {
                differing.push(difference(&subject(key), Some(s.to_string()), Some(p.to_string())));
            }
        },
        differences,
    );
    differences.append(&mut differing);
}

/// Every difference between the two schemas, one readable line each, in a stable order.
fn compare(sqlite: &Schema, postgres: &Schema) -> Vec<String> {
    let mut differences = Vec::new();
    let mut table_differences = Vec::new();
    compare_keyed(
        &sqlite.tables,
        &postgres.tables,
        |name| name.clone(),
        |_| "table".to_owned(),
        |name, s, p| compare_tables(name, s, p, &mut table_differences),
        &mut differences,
    );
    differences.append(&mut table_differences);
    differences
}

fn compare_tables(name: &str, sqlite: &Table, postgres: &Table, differences: &mut Vec<String>) {
    let mut column_differences = Vec::new();
    compare_keyed(
        &sqlite.columns,
        &postgres.columns,
        |column| format!("{name}.{column}"),
        Column::to_string,
        |column, s, p| {
            let subject = format!("{name}.{column}");
            if !types_are_equivalent(&s.declared_type, &p.declared_type) {
                column_differences.push(format!(
                    "{subject}: sqlite type {} vs postgres type {} (not an equivalent pair in TYPE_MAPPING)",
                    s.declared_type, p.declared_type
                ));
            }
            if s.nullable != p.nullable {
                let null = |nullable: bool| if nullable { "nullable" } else { "NOT NULL" };
                column_differences.push(difference(
                    &subject,
                    Some(null(s.nullable).to_owned()),
                    Some(null(p.nullable).to_owned()),
                ));
            }
        },
        differences,
    );
    differences.append(&mut column_differences);

    if sqlite.primary_key != postgres.primary_key {
        let key =
            |columns: &[String]| (!columns.is_empty()).then(|| format!("({})", columns.join(", ")));
        differences.push(difference(
            &format!("{name} primary key"),
            key(&sqlite.primary_key),
            key(&postgres.primary_key),
        ));
    }

    for columns in sqlite.unique.symmetric_difference(&postgres.unique) {
        let listed: Vec<&str> = columns.iter().map(String::as_str).collect();
        let present = |unique: &BTreeSet<BTreeSet<String>>| {
            unique.contains(columns).then(|| "present".to_owned())
        };
        differences.push(difference(
            &format!("{name} unique ({})", listed.join(", ")),
            present(&sqlite.unique),
            present(&postgres.unique),
        ));
    }

    compare_values(
        &sqlite.indexes,
        &postgres.indexes,
        |index| format!("{name} index {index}"),
        differences,
    );
    compare_values(
        &sqlite.foreign_keys,
        &postgres.foreign_keys,
        |key| format!("{name} foreign key {key}"),
        differences,
    );
}

/// Reads the schema of an SQLite database from `sqlite_master` and the table-valued pragmas.
async fn sqlite_schema(database: &Database) -> Schema {
    let Database::Sqlite(sqlite) = database else { panic!("not an SQLite database") };
    let pool = &sqlite.pool;
    // `sqlite_%` are SQLite's own tables (sqlite_sequence, sqlite_stat1).
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name <> ?",
    )
    .bind(MIGRATIONS_TABLE)
    .fetch_all(pool)
    .await
    .unwrap();
    let mut schema = Schema::default();
    for name in names {
        let mut table = Table::default();
        let columns: Vec<(String, String, i64, i64)> = sqlx::query_as(
            "SELECT name, type, \"notnull\", pk FROM pragma_table_info(?) ORDER BY cid",
        )
        .bind(&name)
        .fetch_all(pool)
        .await
        .unwrap();
        let mut primary_key: Vec<(i64, String)> = Vec::new();
        for (column, declared_type, not_null, pk) in columns {
            if pk > 0 {
                primary_key.push((pk, column.clone()));
            }
            table.columns.insert(column, Column { declared_type, nullable: not_null == 0 });
        }
        // `pk` is the column's 1-based position in the primary key.
        primary_key.sort();
        table.primary_key = primary_key.into_iter().map(|(_, column)| column).collect();

        let indexes: Vec<(String, i64, String, i64)> =
            sqlx::query_as("SELECT name, \"unique\", origin, partial FROM pragma_index_list(?)")
                .bind(&name)
                .fetch_all(pool)
                .await
                .unwrap();
        for (index, unique, origin, partial) in indexes {
            let columns: Vec<Option<String>> =
                sqlx::query_scalar("SELECT name FROM pragma_index_info(?) ORDER BY seqno")
                    .bind(&index)
                    .fetch_all(pool)
                    .await
                    .unwrap();
            let columns: Vec<String> = columns
                .into_iter()
                .map(|column| column.unwrap_or_else(|| EXPRESSION.to_owned()))
                .collect();
            // Origin `pk` is the primary key's automatic index (compared as `primary_key`),
            // `u` a UNIQUE constraint's, `c` one made by CREATE INDEX.
            match origin.as_str() {
                "pk" => {}
                "u" => {
                    table.unique.insert(columns.into_iter().collect());
                }
                _ => {
                    table.indexes.insert(
                        index,
                        Index { columns, unique: unique != 0, partial: partial != 0 },
                    );
                }
            }
        }

        let keys: Vec<(i64, String, String, Option<String>, String, String)> = sqlx::query_as(
            "SELECT id, \"table\", \"from\", \"to\", on_delete, on_update FROM pragma_foreign_key_list(?) ORDER BY id, seq",
        )
        .bind(&name)
        .fetch_all(pool)
        .await
        .unwrap();
        let mut by_id: BTreeMap<i64, (ForeignKey, Actions, bool)> = BTreeMap::new();
        for (id, references, from, to, on_delete, on_update) in keys {
            let (key, _, to_primary_key) = by_id.entry(id).or_insert_with(|| {
                let key =
                    ForeignKey { columns: Vec::new(), references, referenced_columns: Vec::new() };
                (key, Actions { on_delete, on_update }, false)
            });
            key.columns.push(from);
            match to {
                Some(to) => key.referenced_columns.push(to),
                None => *to_primary_key = true,
            }
        }
        for (_, (mut key, actions, to_primary_key)) in by_id {
            // `REFERENCES t` without columns names t's primary key; PostgreSQL's catalogue
            // resolves it, so resolve it here too.
            if to_primary_key {
                key.referenced_columns = sqlx::query_scalar(
                    "SELECT name FROM pragma_table_info(?) WHERE pk > 0 ORDER BY pk",
                )
                .bind(&key.references)
                .fetch_all(pool)
                .await
                .unwrap();
            }
            table.foreign_keys.insert(key, actions);
        }
        schema.tables.insert(name, table);
    }
    schema
}

/// Reads the schema of PostgreSQL schema `namespace` from `pg_catalog` and
/// `information_schema`. Catalogue values are cast to `text` so that each decodes as `String`
/// whatever its catalogue type (`name`, `"char"`, the information-schema domains).
async fn postgres_schema(database: &Database, namespace: &str) -> Schema {
    let Database::Postgres(postgres) = database else { panic!("not a PostgreSQL database") };
    let pool = &postgres.pool;
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND c.relname <> $2",
    )
    .bind(namespace)
    .bind(MIGRATIONS_TABLE)
    .fetch_all(pool)
    .await
    .unwrap();
    let mut schema = Schema::default();
    for name in names {
        schema.tables.insert(name, Table::default());
    }

    let columns: Vec<(String, String, String, bool)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text, data_type::text, is_nullable = 'YES' \
         FROM information_schema.columns WHERE table_schema = $1 ORDER BY table_name, ordinal_position",
    )
    .bind(namespace)
    .fetch_all(pool)
    .await
    .unwrap();
    for (table, column, declared_type, nullable) in columns {
        if let Some(table) = schema.tables.get_mut(&table) {
            table.columns.insert(column, Column { declared_type, nullable });
        }
    }

    // Primary keys, UNIQUE constraints and foreign keys, columns in key order.
    let constraints: Vec<ConstraintRow> =
        sqlx::query_as(
            "SELECT t.relname::text, con.contype::text, \
               ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord) \
                     JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum ORDER BY k.ord), \
               r.relname::text, \
               ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY AS k(attnum, ord) \
                     JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum ORDER BY k.ord), \
               con.confdeltype::text, con.confupdtype::text \
             FROM pg_constraint con \
             JOIN pg_class t ON t.oid = con.conrelid \
             JOIN pg_namespace n ON n.oid = t.relnamespace \
             LEFT JOIN pg_class r ON r.oid = con.confrelid \
             WHERE n.nspname = $1 AND con.contype IN ('p', 'u', 'f')",
        )
        .bind(namespace)
        .fetch_all(pool)
        .await
        .unwrap();
    for (table, kind, columns, references, referenced_columns, on_delete, on_update) in constraints
    {
        let Some(table) = schema.tables.get_mut(&table) else { continue };
        match kind.as_str() {
            "p" => table.primary_key = columns,
            "u" => {
                table.unique.insert(columns.into_iter().collect());
            }
            _ => {
                let key = ForeignKey {
                    columns,
                    references: references.unwrap_or_default(),
                    referenced_columns,
                };
                let actions =
                    Actions { on_delete: action(&on_delete), on_update: action(&on_update) };
                table.foreign_keys.insert(key, actions);
            }
        }
    }

    // Indexes other than those backing a primary key, UNIQUE or EXCLUDE constraint (compared
    // above as constraints). Only key columns count, not INCLUDE ones; an expression key has
    // attnum 0 and no pg_attribute row.
    let indexes: Vec<(String, String, bool, bool, Vec<String>)> = sqlx::query_as(
        "SELECT t.relname::text, i.relname::text, x.indisunique, x.indpred IS NOT NULL, \
           ARRAY(SELECT COALESCE(a.attname::text, $2) \
                 FROM unnest(x.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) \
                 LEFT JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum AND k.attnum > 0 \
                 WHERE k.ord <= x.indnkeyatts ORDER BY k.ord) \
         FROM pg_index x \
         JOIN pg_class i ON i.oid = x.indexrelid \
         JOIN pg_class t ON t.oid = x.indrelid \
         JOIN pg_namespace n ON n.oid = t.relnamespace \
         WHERE n.nspname = $1 AND NOT EXISTS ( \
           SELECT 1 FROM pg_constraint con \
           WHERE con.conindid = x.indexrelid AND con.conrelid = x.indrelid AND con.contype IN ('p', 'u', 'x'))",
    )
    .bind(namespace)
    .bind(EXPRESSION)
    .fetch_all(pool)
    .await
    .unwrap();
    for (table, index, unique, partial, columns) in indexes {
        if let Some(table) = schema.tables.get_mut(&table) {
            table.indexes.insert(index, Index { columns, unique, partial });
        }
    }
    schema
}

/// A `pg_constraint` row: table, kind (`p`, `u` or `f`), columns, referenced table and
/// columns (foreign keys only), ON DELETE and ON UPDATE codes.
type ConstraintRow = (String, String, Vec<String>, Option<String>, Vec<String>, String, String);

/// `pg_constraint.confdeltype`/`confupdtype`, in the words SQLite's `pragma_foreign_key_list`
/// uses.
fn action(code: &str) -> String {
    match code {
        "a" => "NO ACTION",
        "r" => "RESTRICT",
        "c" => "CASCADE",
        "n" => "SET NULL",
        "d" => "SET DEFAULT",
        other => other,
    }
    .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_and_postgres_migrations_give_the_same_schema() {
    // The same PostgreSQL handling as `backend_tests!`: skipped when not configured, a failure
    // when CI=true (TestDatabase returns the error then).
    let sqlite = TestDatabase::new(Backend::Sqlite)
        .await
        .unwrap_or_else(|error| panic!("SQLite test database: {error}"))
        .unwrap_or_else(|| panic!("SQLite is always available"));
    let postgres = TestDatabase::new(Backend::Postgres)
        .await
        .unwrap_or_else(|error| panic!("PostgreSQL test database: {error}"));
    let Some(postgres) = postgres else {
        eprintln!("skipped: set {POSTGRES_URL_VARIABLE} to compare with PostgreSQL");
        return;
    };

    // Both sides must have run every migration, or the comparison would cover a prefix only.
    let listed: Vec<i64> = MIGRATIONS.iter().map(|migration| migration.version).collect();
    assert_eq!(applied_versions(&sqlite.database).await.unwrap(), listed, "SQLite");
    assert_eq!(applied_versions(&postgres.database).await.unwrap(), listed, "PostgreSQL");

    let namespace = postgres.postgres_schema.as_deref().unwrap();
    let sqlite_schema = sqlite_schema(&sqlite.database).await;
    let postgres_schema = postgres_schema(&postgres.database, namespace).await;
    assert!(!sqlite_schema.tables.is_empty(), "the SQLite catalogue read no table");

    let differences = compare(&sqlite_schema, &postgres_schema);
    let unexpected: Vec<&str> = differences
        .iter()
        .map(String::as_str)
        .filter(|line| !KNOWN_DIFFERENCES.contains(line))
        .collect();
    let stale: Vec<&str> = KNOWN_DIFFERENCES
        .iter()
        .copied()
        .filter(|known| !differences.iter().any(|line| line == known))
        .collect();
    let mut report = String::new();
    if !unexpected.is_empty() {
        report += &format!(
            "The SQLite and PostgreSQL migrations give different schemas ({} differences not in \
             KNOWN_DIFFERENCES; fix them with a new migration, never by editing a published one):\n",
            unexpected.len()
        );
        for line in &unexpected {
            report += &format!("  - {line}\n");
        }
    }
    if !stale.is_empty() {
        report += "KNOWN_DIFFERENCES lists differences that no longer occur (remove them):\n";
        for line in &stale {
            report += &format!("  - {line}\n");
        }
    }
    assert!(report.is_empty(), "{report}");
}

/// Hand-built schemas that differ in one way per kind of difference: every one is reported,
/// each on its own line, and what matches (including BLOB ~ bytea) is not.
#[test]
fn every_difference_is_listed() {
    fn column(declared_type: &str, nullable: bool) -> Column {
        Column { declared_type: declared_type.into(), nullable }
    }
    fn names(columns: &[&str]) -> Vec<String> {
        columns.iter().map(|&column| column.to_owned()).collect()
    }
    fn key(columns: &[&str], references: &str, referenced: &[&str]) -> ForeignKey {
        ForeignKey {
            columns: names(columns),
            references: references.into(),
            referenced_columns: names(referenced),
        }
    }
    fn actions(on_delete: &str) -> Actions {
        Actions { on_delete: on_delete.into(), on_update: "NO ACTION".into() }
    }

    let mut sqlite = Table::default();
    sqlite.columns.insert("id".into(), column("TEXT", false));
    sqlite.columns.insert("digest".into(), column("BLOB", true));
    sqlite.columns.insert("user_id".into(), column("TEXT", false));
    sqlite.columns.insert("created_at".into(), column("BIGINT", false));
    sqlite.columns.insert("only_in_sqlite".into(), column("BIGINT", true));
    sqlite.primary_key = names(&["id"]);
    sqlite.unique.insert(["digest".to_owned()].into());
    sqlite.indexes.insert(
        "sessions_user".into(),
        Index { columns: names(&["user_id", "created_at"]), unique: false, partial: false },
    );
    sqlite.indexes.insert(
        "sessions_digest".into(),
        Index { columns: names(&["digest"]), unique: false, partial: false },
    );
    sqlite.foreign_keys.insert(key(&["user_id"], "users", &["id"]), actions("CASCADE"));

    let mut postgres = Table::default();
    postgres.columns.insert("id".into(), column("text", false));
    postgres.columns.insert("digest".into(), column("bytea", true));
    postgres.columns.insert("user_id".into(), column("text", true));
    postgres.columns.insert("created_at".into(), column("text", false));
    postgres.columns.insert("only_in_postgres".into(), column("bytea", false));
    postgres.primary_key = names(&["id", "user_id"]);
    postgres.indexes.insert(
        "sessions_user".into(),
        Index { columns: names(&["user_id"]), unique: true, partial: false },
    );
    postgres.foreign_keys.insert(key(&["user_id"], "users", &["id"]), actions("NO ACTION"));

    let sqlite = Schema {
        tables: [("sessions".to_owned(), sqlite), ("users".to_owned(), Table::default())].into(),
    };
    let postgres = Schema {
        tables: [("sessions".to_owned(), postgres), ("audit".to_owned(), Table::default())].into(),
    };
    assert_eq!(
        compare(&sqlite, &postgres),
        [
            "audit: sqlite absent vs postgres table",
            "users: sqlite table vs postgres absent",
            "sessions.only_in_postgres: sqlite absent vs postgres bytea NOT NULL",
            "sessions.only_in_sqlite: sqlite BIGINT nullable vs postgres absent",
            "sessions.created_at: sqlite type BIGINT vs postgres type text (not an equivalent pair in TYPE_MAPPING)",
            "sessions.user_id: sqlite NOT NULL vs postgres nullable",
            "sessions primary key: sqlite (id) vs postgres (id, user_id)",
            "sessions unique (digest): sqlite present vs postgres absent",
            "sessions index sessions_digest: sqlite (digest) vs postgres absent",
            "sessions index sessions_user: sqlite (user_id, created_at) vs postgres UNIQUE (user_id)",
            "sessions foreign key (user_id) -> users (id): sqlite ON DELETE CASCADE ON UPDATE NO ACTION vs postgres ON DELETE NO ACTION ON UPDATE NO ACTION",
        ]
    );
}

/// The mapping is a set of equivalent pairs, not loose matching: case is ignored on the
/// SQLite side only (declared types keep their spelling), and a type it does not list matches
/// nothing.
#[test]
fn types_match_through_the_mapping_only() {
    assert!(types_are_equivalent("BIGINT", "bigint"));
    assert!(types_are_equivalent("blob", "bytea"));
    assert!(!types_are_equivalent("BLOB", "text"));
    assert!(!types_are_equivalent("TEXT", "TEXT"));
    assert!(!types_are_equivalent("INTEGER", "integer"));
}
