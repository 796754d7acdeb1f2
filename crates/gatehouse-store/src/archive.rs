//! `gatehouse db export | import`: every table of a database as one versioned, streamed
//! archive, and its import into an empty database of either backend (SQLite → PostgreSQL when
//! an installation outgrows the embedded database, and back).
//!
//! The archive (format version 1) is JSON Lines; the command compresses it with gzip.
//! 1. The header: `{"format": "gatehouse-archive", "version": 1, "schema_version", "source",
//!    "exported_at", "master_key_ids", "tables": [{"name", "columns": [{"name", "kind"}],
//!    "rows"}]}` — tables parents first (by their foreign keys), with the row counts of the
//!    export's snapshot.
//! 2. Per table, in the header's order, `rows` lines, each a JSON array in the header's column
//!    order: `null`, a number (kind `integer`), a string (kind `text`) or base64 (kind `bytes`).
//! 3. The trailer `{"end": {"tables", "rows"}}`: a truncated archive has none and is refused.
//!
//! Values are copied as they are stored: sealed fields, keyed digests and password hashes stay
//! sealed under the data keys, which travel wrapped by the master key (`master_key_ids` names
//! the keys the importing installation must hold). The export reads one snapshot (a
//! repeatable-read, read-only transaction on PostgreSQL; one read transaction on SQLite) and
//! streams it row by row; the import is atomic (one transaction: all of it or nothing) into a
//! database that holds no row yet, at the archive's schema version.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, Write};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures_util::TryStreamExt;
use gatehouse_domain::StoreError;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::Row;

use crate::Database;
use crate::database::Backend;
use crate::error::map_sqlx_error;

/// What the header's `format` says.
pub const FORMAT: &str = "gatehouse-archive";
/// The archive layout this build writes and reads.
pub const VERSION: u32 = 1;
/// The bookkeeping table of the migrations, which the import's own migrations fill.
const MIGRATIONS_TABLE: &str = "_sqlx_migrations";
/// Rows per INSERT are bounded by this many bound values (SQLite allows 32 766, PostgreSQL
/// 65 535).
const VALUES_PER_STATEMENT: usize = 30_000;
const ROWS_PER_STATEMENT: usize = 1_000;
/// Tables the migrations themselves give a row (the audit chain's head, at its start): an
/// empty database holds these and nothing else.
const SEEDED: &[&str] = &["audit_chain_head"];

/// Why an export or import stopped. Messages name tables, columns and line numbers, never a
/// stored value.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("reading or writing the archive: {0}")]
    Io(#[from] std::io::Error),
    /// Not an archive, a newer layout, a truncated or altered file.
    #[error("the archive is not valid: {0}")]
    Format(String),
    /// The target's schema is not the archive's.
    #[error("{0}")]
    Schema(String),
    #[error(
        "the target database is not empty (table {0} has rows): import into a new, empty database"
    )]
    NotEmpty(String),
}

fn format_error(message: impl Into<String>) -> ArchiveError {
    ArchiveError::Format(message.into())
}

fn store_error(error: sqlx::Error) -> ArchiveError {
    ArchiveError::Store(map_sqlx_error(error))
}

/// How a column's values travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnKind {
    Integer,
    Text,
    Bytes,
}

impl ColumnKind {
    /// The kind of a declared column type (`BIGINT`/`INTEGER`, `TEXT`, `BYTEA`/`BLOB`).
    fn of_declared(table: &str, column: &str, declared: &str) -> Result<ColumnKind, ArchiveError> {
        let declared = declared.to_ascii_lowercase();
        if declared.contains("int") {
            Ok(ColumnKind::Integer)
        } else if declared == "text" || declared.contains("char") {
            Ok(ColumnKind::Text)
        } else if declared == "bytea" || declared == "blob" {
            Ok(ColumnKind::Bytes)
        } else {
            Err(ArchiveError::Schema(format!(
                "column {table}.{column} has type {declared}, which the archive cannot carry"
            )))
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    pub kind: ColumnKind,
}

/// A table of the archive: its columns and how many rows follow.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Table {
    pub name: String,
    pub columns: Vec<Column>,
    pub rows: u64,
}

/// The archive's first line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Header {
    pub format: String,
    pub version: u32,
    /// The last migration applied to the exported database.
    pub schema_version: i64,
    /// `sqlite` or `postgres`.
    pub source: String,
    /// Unix seconds.
    pub exported_at: i64,
    /// The ids of the master keys that wrap the archive's data keys.
    pub master_key_ids: Vec<u32>,
    pub tables: Vec<Table>,
}

impl Header {
    pub fn total_rows(&self) -> u64 {
        self.tables.iter().map(|table| table.rows).sum()
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Trailer {
    end: TrailerCounts,
}

#[derive(Debug, Serialize, Deserialize)]
struct TrailerCounts {
    tables: usize,
    rows: u64,
}

/// Where an export or import is, for a progress bar.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    pub table: &'a str,
    pub rows_done: u64,
    pub rows_total: u64,
}

/// What an export wrote or an import loaded: rows per table, in archive order.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub schema_version: i64,
    pub tables: Vec<(String, u64)>,
    pub rows: u64,
}

/// The catalogue queries of one backend: table names, a table's columns (name, declared type)
/// in order, and foreign keys (child, parent).
fn catalogue_sql(backend: Backend) -> (&'static str, &'static str, &'static str) {
    match backend {
        Backend::Sqlite => (
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
            "SELECT name, type FROM pragma_table_info($1) ORDER BY cid",
            "SELECT m.name, f.\"table\" FROM sqlite_master m JOIN pragma_foreign_key_list(m.name) f \
             WHERE m.type = 'table'",
        ),
        Backend::Postgres => (
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
            "SELECT column_name::text, data_type::text FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
            "SELECT child.relname::text, parent.relname::text FROM pg_constraint c \
             JOIN pg_class child ON child.oid = c.conrelid \
             JOIN pg_class parent ON parent.oid = c.confrelid \
             JOIN pg_namespace n ON n.oid = child.relnamespace \
             WHERE c.contype = 'f' AND n.nspname = current_schema()",
        ),
    }
}

/// Orders `tables` so that every table comes after the tables its foreign keys name
/// (alphabetical among equals, so two exports of one database list tables alike).
fn parents_first(
    tables: BTreeMap<String, Vec<Column>>,
    references: &[(String, String)],
) -> Result<Vec<Table>, ArchiveError> {
    let mut parents: BTreeMap<&str, BTreeSet<&str>> =
        tables.keys().map(|name| (name.as_str(), BTreeSet::new())).collect();
    for (child, parent) in references {
        if child != parent
            && tables.contains_key(parent)
            && let Some(set) = parents.get_mut(child.as_str())
        {
            set.insert(parent.as_str());
        }
    }
    let mut ordered: Vec<String> = Vec::with_capacity(tables.len());
    let mut placed: BTreeSet<&str> = BTreeSet::new();
    while placed.len() < parents.len() {
        let ready: Vec<&str> = parents
            .iter()
            .filter(|(name, needs)| !placed.contains(*name) && needs.is_subset(&placed))
            .map(|(name, _)| *name)
            .collect();
        if ready.is_empty() {
            return Err(ArchiveError::Schema("the tables' foreign keys form a cycle".into()));
        }
        for name in ready {
            placed.insert(name);
            ordered.push(name.to_owned());
        }
    }
    let mut tables = tables;
    Ok(ordered
        .into_iter()
        .filter_map(|name| tables.remove(&name).map(|columns| Table { name, columns, rows: 0 }))
        .collect())
}

/// An identifier as SQL. The statements built from these name only tables and columns of the
/// database's own catalogue (an import's archive must name exactly its target's, checked
/// before the first statement), never a value: values are always bound.
fn quoted(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

fn column_list(table: &Table) -> String {
    table.columns.iter().map(|column| quoted(&column.name)).collect::<Vec<_>>().join(", ")
}

/// Reads the catalogue of one backend through `$connection` (a `&mut` connection expression,
/// re-borrowed for each query) into `Vec<Table>`, parents first.
macro_rules! read_catalogue {
    ($backend:expr, $connection:expr) => {{
        let (tables_sql, columns_sql, references_sql) = catalogue_sql($backend);
        let names: Vec<String> = sqlx::query_scalar(tables_sql)
            .fetch_all(&mut *$connection)
            .await
            .map_err(store_error)?;
        let mut tables = BTreeMap::new();
        for name in names.into_iter().filter(|name| name != MIGRATIONS_TABLE) {
            let rows: Vec<(String, String)> = sqlx::query_as(columns_sql)
                .bind(&name)
                .fetch_all(&mut *$connection)
                .await
                .map_err(store_error)?;
            let columns = rows
                .into_iter()
                .map(|(column, declared)| {
                    Ok(Column {
                        kind: ColumnKind::of_declared(&name, &column, &declared)?,
                        name: column,
                    })
                })
                .collect::<Result<Vec<_>, ArchiveError>>()?;
            tables.insert(name, columns);
        }
        let references: Vec<(String, String)> = sqlx::query_as(references_sql)
            .fetch_all(&mut *$connection)
            .await
            .map_err(store_error)?;
        parents_first(tables, &references)
    }};
}

/// Writes the whole database to `out` as an archive (see the module). `progress` is called as
/// rows are written.
pub async fn export(
    database: &Database,
    out: &mut dyn Write,
    exported_at: i64,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Summary, ArchiveError> {
    let schema_version = crate::migrate::current_version(database).await?;
    let backend = database.backend();
    crate::with_pool!(database, pool => {
        let mut transaction = pool.begin().await.map_err(store_error)?;
        if backend == Backend::Postgres {
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .execute(&mut *transaction)
                .await
                .map_err(store_error)?;
        }
        let mut tables = read_catalogue!(backend, transaction)?;
        for table in &mut tables {
            let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {}", quoted(&table.name))))
                .fetch_one(&mut *transaction)
                .await
                .map_err(store_error)?;
            table.rows = u64::try_from(count).unwrap_or(0);
        }
        let master_key_ids: Vec<i64> = if tables.iter().any(|table| table.name == "data_keys") {
            sqlx::query_scalar("SELECT DISTINCT wrapped_by FROM data_keys ORDER BY wrapped_by")
                .fetch_all(&mut *transaction)
                .await
                .map_err(store_error)?
        } else {
            Vec::new()
        };
        let header = Header {
            format: FORMAT.to_owned(),
            version: VERSION,
            schema_version,
            source: backend.as_str().to_owned(),
            exported_at,
            master_key_ids: master_key_ids
                .into_iter()
                .filter_map(|id| u32::try_from(id).ok())
                .collect(),
            tables,
        };
        write_line(out, &header)?;
        let rows_total = header.total_rows();
        let mut rows_done = 0u64;
        for table in &header.tables {
            let sql = format!("SELECT {} FROM {}", column_list(table), quoted(&table.name));
            let mut rows = sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).fetch(&mut *transaction);
            let mut written = 0u64;
            let mut cells: Vec<Value> = Vec::with_capacity(table.columns.len());
            while let Some(row) = rows.try_next().await.map_err(store_error)? {
                cells.clear();
                for (index, column) in table.columns.iter().enumerate() {
                    let cell = match column.kind {
                        ColumnKind::Integer => row
                            .try_get::<Option<i64>, _>(index)
                            .map(|value| value.map_or(Value::Null, Value::from)),
                        ColumnKind::Text => row
                            .try_get::<Option<String>, _>(index)
                            .map(|value| value.map_or(Value::Null, Value::from)),
                        ColumnKind::Bytes => row
                            .try_get::<Option<Vec<u8>>, _>(index)
                            .map(|value| value.map_or(Value::Null, |bytes| Value::from(BASE64.encode(bytes)))),
                    }
                    .map_err(|error| ArchiveError::Store(StoreError::Corrupt(format!(
                        "{}.{}: {error}", table.name, column.name
                    ))))?;
                    cells.push(cell);
                }
                write_line(out, &cells)?;
                written += 1;
                rows_done += 1;
                if rows_done.is_multiple_of(1_000) {
                    progress(Progress { table: &table.name, rows_done, rows_total });
                }
            }
            // Inside one snapshot the count cannot change; a difference is a bug, not data.
            if written != table.rows {
                return Err(ArchiveError::Store(StoreError::Other(format!(
                    "table {} gave {written} rows, its count said {}", table.name, table.rows
                ))));
            }
            progress(Progress { table: &table.name, rows_done, rows_total });
        }
        write_line(out, &Trailer { end: TrailerCounts { tables: header.tables.len(), rows: rows_done } })?;
        transaction.commit().await.map_err(store_error)?;
        Ok(Summary {
            schema_version,
            tables: header.tables.iter().map(|table| (table.name.clone(), table.rows)).collect(),
            rows: rows_done,
        })
    })
}

fn write_line<T: Serialize + ?Sized>(out: &mut dyn Write, value: &T) -> Result<(), ArchiveError> {
    serde_json::to_writer(&mut *out, value)
        .map_err(|error| ArchiveError::Io(std::io::Error::other(error)))?;
    out.write_all(b"\n")?;
    Ok(())
}

/// Reads and checks the archive's first line.
pub fn read_header(input: &mut dyn BufRead) -> Result<Header, ArchiveError> {
    let mut line = String::new();
    if input.read_line(&mut line)? == 0 {
        return Err(format_error("the file is empty"));
    }
    let value: Value = serde_json::from_str(&line)
        .map_err(|_| format_error("its first line is not a Gatehouse archive header"))?;
    if value.get("format").and_then(Value::as_str) != Some(FORMAT) {
        return Err(format_error("its first line is not a Gatehouse archive header"));
    }
    match value.get("version").and_then(Value::as_u64) {
        Some(version) if version == u64::from(VERSION) => {}
        Some(version) => {
            return Err(format_error(format!(
                "archive layout {version} is not supported by this build (it reads layout {VERSION})"
            )));
        }
        None => return Err(format_error("the header has no version")),
    }
    serde_json::from_value(value).map_err(|error| format_error(format!("the header: {error}")))
}

/// One parsed value, ready to bind.
enum Cell {
    Integer(Option<i64>),
    Text(Option<String>),
    Bytes(Option<Vec<u8>>),
}

/// Parses one row line of `table`; `line_number` is for the message.
fn parse_row(table: &Table, line: &str, line_number: u64) -> Result<Vec<Cell>, ArchiveError> {
    let bad =
        |what: &str| format_error(format!("line {line_number} (table {}): {what}", table.name));
    let Value::Array(values) = serde_json::from_str::<Value>(line).map_err(|_| bad("not JSON"))?
    else {
        return Err(bad("a row must be a JSON array"));
    };
    if values.len() != table.columns.len() {
        return Err(bad(&format!("{} values for {} columns", values.len(), table.columns.len())));
    }
    values
        .into_iter()
        .zip(&table.columns)
        .map(|(value, column)| {
            let wrong =
                || bad(&format!("column {} does not hold {:?} values", column.name, column.kind));
            Ok(match (column.kind, value) {
                (ColumnKind::Integer, Value::Null) => Cell::Integer(None),
                (ColumnKind::Text, Value::Null) => Cell::Text(None),
                (ColumnKind::Bytes, Value::Null) => Cell::Bytes(None),
                (ColumnKind::Integer, Value::Number(number)) => {
                    Cell::Integer(Some(number.as_i64().ok_or_else(wrong)?))
                }
                (ColumnKind::Text, Value::String(text)) => Cell::Text(Some(text)),
                (ColumnKind::Bytes, Value::String(text)) => {
                    Cell::Bytes(Some(BASE64.decode(text).map_err(|_| wrong())?))
                }
                _ => return Err(wrong()),
            })
        })
        .collect()
}

/// A multi-row INSERT of `rows` rows of `table`. PostgreSQL numbers its placeholders; SQLite
/// gets anonymous `?`s, bound in order: sqlx looks each `$n` up by name, which SQLite answers by
/// walking the statement's list of names (quadratic over thousands of placeholders: 90 % of an
/// import's time, measured with perf).
fn insert_sql(backend: Backend, table: &Table, rows: usize) -> String {
    let width = table.columns.len();
    let mut sql = format!("INSERT INTO {} ({}) VALUES ", quoted(&table.name), column_list(table));
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for column in 0..width {
            if column > 0 {
                sql.push_str(", ");
            }
            match backend {
                Backend::Sqlite => sql.push('?'),
                Backend::Postgres => {
                    sql.push('$');
                    sql.push_str(&(row * width + column + 1).to_string());
                }
            }
        }
        sql.push(')');
    }
    sql
}

/// Loads the archive whose `header` was read from `input` into `database`, which must be at
/// the archive's schema version and hold no row. One transaction: on any error nothing stays.
pub async fn import(
    database: &Database,
    header: &Header,
    input: &mut dyn BufRead,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Summary, ArchiveError> {
    let target_version = crate::migrate::current_version(database).await?;
    if target_version != header.schema_version {
        return Err(ArchiveError::Schema(format!(
            "the archive was made at schema version {}, the target database is at {target_version}",
            header.schema_version
        )));
    }
    let backend = database.backend();
    let _write = database.write_guard().await;
    crate::with_pool!(database, pool => {
        let mut transaction = pool.begin().await.map_err(store_error)?;
        let target = read_catalogue!(backend, transaction)?;
        check_shape(header, &target)?;
        for table in &target {
            let any: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT CAST(1 AS BIGINT) FROM {} LIMIT 1",
                quoted(&table.name)
            )))
            .fetch_optional(&mut *transaction)
            .await
            .map_err(store_error)?;
            if any.is_some() && !SEEDED.contains(&table.name.as_str()) {
                return Err(ArchiveError::NotEmpty(table.name.clone()));
            }
        }
        // Nothing else holds a row: the seeded rows are the migrations' own, and the
        // archive's replace them.
        for table in SEEDED {
            sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {}", quoted(table))))
                .execute(&mut *transaction)
                .await
                .map_err(store_error)?;
        }
        let rows_total = header.total_rows();
        let mut rows_done = 0u64;
        let mut line_number = 1u64;
        let mut line = String::new();
        for table in &header.tables {
            let per_statement = (VALUES_PER_STATEMENT / table.columns.len().max(1)).clamp(1, ROWS_PER_STATEMENT);
            let full_sql = insert_sql(backend, table, per_statement);
            let mut batch: Vec<Vec<Cell>> = Vec::with_capacity(per_statement);
            let mut remaining = table.rows;
            while remaining > 0 {
                line.clear();
                line_number += 1;
                if input.read_line(&mut line)? == 0 {
                    return Err(format_error(format!(
                        "it ends inside table {} (truncated?)", table.name
                    )));
                }
                batch.push(parse_row(table, line.trim_end(), line_number)?);
                remaining -= 1;
                if batch.len() == per_statement || remaining == 0 {
                    let sql = if batch.len() == per_statement { full_sql.clone() } else { insert_sql(backend, table, batch.len()) };
                    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
                    for cell in batch.drain(..).flatten() {
                        query = match cell {
                            Cell::Integer(value) => query.bind(value),
                            Cell::Text(value) => query.bind(value),
                            Cell::Bytes(value) => query.bind(value),
                        };
                    }
                    let inserted = query.execute(&mut *transaction).await.map_err(store_error)?;
                    rows_done += inserted.rows_affected();
                    progress(Progress { table: &table.name, rows_done, rows_total });
                }
            }
        }
        line.clear();
        if input.read_line(&mut line)? == 0 {
            return Err(format_error("it has no end line (truncated?)"));
        }
        let trailer: Trailer = serde_json::from_str(line.trim_end())
            .map_err(|_| format_error(format!("line {}: expected the end line", line_number + 1)))?;
        if trailer.end.tables != header.tables.len() || trailer.end.rows != rows_total {
            return Err(format_error("its end line does not match its header"));
        }
        line.clear();
        if input.read_line(&mut line)? != 0 {
            return Err(format_error("it goes on after its end line"));
        }
        transaction.commit().await.map_err(store_error)?;
        Ok(Summary {
            schema_version: header.schema_version,
            tables: header.tables.iter().map(|table| (table.name.clone(), table.rows)).collect(),
            rows: rows_done,
        })
    })
}

/// The archive's tables must be the target's, column for column (names and kinds; the order
/// may differ: inserts name their columns).
fn check_shape(header: &Header, target: &[Table]) -> Result<(), ArchiveError> {
    let target: BTreeMap<&str, BTreeMap<&str, ColumnKind>> = target
        .iter()
        .map(|table| {
            (
                table.name.as_str(),
                table.columns.iter().map(|column| (column.name.as_str(), column.kind)).collect(),
            )
        })
        .collect();
    let archived: BTreeSet<&str> = header.tables.iter().map(|table| table.name.as_str()).collect();
    if let Some(missing) = target.keys().find(|name| !archived.contains(*name)) {
        return Err(ArchiveError::Schema(format!("the archive has no table {missing}")));
    }
    for table in &header.tables {
        let Some(columns) = target.get(table.name.as_str()) else {
            return Err(ArchiveError::Schema(format!(
                "the target database has no table {}",
                table.name
            )));
        };
        let archived: BTreeMap<&str, ColumnKind> =
            table.columns.iter().map(|column| (column.name.as_str(), column.kind)).collect();
        if &archived != columns {
            return Err(ArchiveError::Schema(format!(
                "table {} has other columns in the archive than in the target database",
                table.name
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns(names: &[&str]) -> Vec<Column> {
        names
            .iter()
            .map(|name| Column { name: (*name).to_owned(), kind: ColumnKind::Text })
            .collect()
    }

    #[test]
    fn parents_come_before_the_tables_that_reference_them() {
        let tables: BTreeMap<String, Vec<Column>> =
            ["a_child", "b_parent", "c_grandchild", "d_alone"]
                .iter()
                .map(|name| ((*name).to_owned(), columns(&["id"])))
                .collect();
        let references = vec![
            ("a_child".to_owned(), "b_parent".to_owned()),
            ("c_grandchild".to_owned(), "a_child".to_owned()),
            ("c_grandchild".to_owned(), "b_parent".to_owned()),
        ];
        let ordered: Vec<String> = parents_first(tables, &references)
            .unwrap()
            .into_iter()
            .map(|table| table.name)
            .collect();
        assert_eq!(ordered, ["b_parent", "d_alone", "a_child", "c_grandchild"]);
    }

    #[test]
    fn rows_are_checked_against_their_columns() {
        let table = Table {
            name: "t".into(),
            columns: vec![
                Column { name: "n".into(), kind: ColumnKind::Integer },
                Column { name: "s".into(), kind: ColumnKind::Text },
                Column { name: "b".into(), kind: ColumnKind::Bytes },
            ],
            rows: 1,
        };
        let cells = parse_row(&table, r#"[7, "x", "AAE="]"#, 2).unwrap();
        assert!(matches!(cells[0], Cell::Integer(Some(7))));
        assert!(matches!(&cells[2], Cell::Bytes(Some(bytes)) if bytes == &[0, 1]));
        assert!(matches!(parse_row(&table, "[null, null, null]", 2).unwrap()[1], Cell::Text(None)));
        for bad in [
            r#"[7, "x"]"#,
            r#"["7", "x", "AAE="]"#,
            r#"[7, "x", "not base64!"]"#,
            "{}",
            "[1.5, null, null]",
        ] {
            let error = parse_row(&table, bad, 9).err().unwrap().to_string();
            assert!(error.contains("line 9 (table t)"), "{bad}: {error}");
        }
    }

    #[test]
    fn an_insert_numbers_its_placeholders_row_by_row() {
        let table = Table { name: "t".into(), columns: columns(&["a", "b"]), rows: 2 };
        assert_eq!(
            insert_sql(Backend::Postgres, &table, 2),
            r#"INSERT INTO "t" ("a", "b") VALUES ($1, $2), ($3, $4)"#
        );
        assert_eq!(
            insert_sql(Backend::Sqlite, &table, 2),
            r#"INSERT INTO "t" ("a", "b") VALUES (?, ?), (?, ?)"#
        );
    }
}
