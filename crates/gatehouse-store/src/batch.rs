//! `SqliteBatch`: several statements sent to SQLite in one round trip; `PgStatement`: several
//! writes composed into one PostgreSQL statement.
//!
//! sqlx runs SQLite on a worker thread per connection, and every statement is a round trip to
//! it: a message, a wake-up of that thread, an answer, a wake-up of the runtime. On the
//! sign-in path those hand-offs cost more than the statements themselves (the CPU of a 2-core
//! machine is busy with Argon2), so the writes of a new session go as one multi-statement
//! text inside the caller's transaction. sqlx binds a `$n` placeholder to the n-th argument of
//! the whole text, so each statement's placeholders are renumbered after the arguments already
//! added.
//!
//! On PostgreSQL every statement of a transaction is a round trip to the server, and `BEGIN`
//! and `COMMIT` two more; each costs the server an executor start and the client a wake-up.
//! [`PgStatement`] composes the writes of one change as data-modifying `WITH` parts of a
//! single statement — its own transaction, one round trip — each part guarded by the ones it
//! depends on (`FROM` a part that answered a row), so a failed check writes nothing.

use std::sync::Arc;

use sqlx::SqliteConnection;
use sqlx::postgres::{PgArguments, PgPool, PgRow};
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{Arguments as _, Encode, Postgres, Sqlite, Type};

use crate::error::map_sqlx_error;
use gatehouse_domain::StoreError;

/// Statements and their arguments, in order; see the module documentation.
#[derive(Default)]
pub(crate) struct SqliteBatch {
    sql: String,
    arguments: SqliteArguments,
    /// Arguments the statements pushed so far expect (their highest placeholder).
    expected: usize,
    /// The first statement whose arguments did not match its placeholders, or a value that
    /// could not be encoded; reported by [`SqliteBatch::finish`].
    error: Option<String>,
}

/// One statement of a batch, taking its arguments in placeholder order with `bind` (the
/// same calls as on a `sqlx::query`, so the bind macros serve both).
pub(crate) struct BatchStatement<'a> {
    batch: &'a mut SqliteBatch,
}

impl SqliteBatch {
    /// Adds `sql`, whose placeholders are `$1..$n`; bind its `n` arguments on the answer.
    pub(crate) fn push(&mut self, sql: &str) -> BatchStatement<'_> {
        self.check_arguments();
        let offset = self.expected;
        let (renumbered, highest) = renumber(sql, offset);
        if !self.sql.is_empty() {
            self.sql.push_str(";\n");
        }
        self.sql.push_str(&renumbered);
        self.expected = offset + highest;
        BatchStatement { batch: self }
    }

    fn check_arguments(&mut self) {
        if self.error.is_none() && self.arguments.len() != self.expected {
            self.error = Some(format!(
                "batch statement bound {} arguments for {} placeholders",
                self.arguments.len(),
                self.expected
            ));
        }
    }

    /// Runs the statements as one transaction on the SQLite writer, `BEGIN` and `COMMIT`
    /// included in the one round trip to its thread; answers the rows they changed. Writers
    /// queue on the writer's lock, and it is held for that one round trip only (three with a
    /// transaction of sqlx's: every hand-off made while holding it is time every other writer
    /// waits, and under load each waits for a time slice).
    ///
    /// The write runs in a task of its own, so a caller that gives up (a dropped request)
    /// neither leaves the transaction open on the writer nor cuts it short: it commits or
    /// rolls back whole, then frees the lock. A statement that fails rolls the transaction
    /// back and answers its error.
    pub(crate) async fn commit_on_writer(
        self,
        writer: &Arc<tokio::sync::Mutex<SqliteConnection>>,
    ) -> Result<u64, StoreError> {
        let steps = self.commit_on_writer_steps(writer).await?;
        Ok(steps.iter().map(|step| step.changed).sum())
    }

    /// [`SqliteBatch::commit_on_writer`], answering what each statement did (its rows and
    /// count), in order: for a write whose statements guard each other in SQL, so that the
    /// caller learns from the results which guard held, in one round trip.
    pub(crate) async fn commit_on_writer_steps(
        mut self,
        writer: &Arc<tokio::sync::Mutex<SqliteConnection>>,
    ) -> Result<Vec<StepResult>, StoreError> {
        self.check_arguments();
        if let Some(error) = self.error {
            return Err(StoreError::Other(error));
        }
        if self.sql.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!("BEGIN IMMEDIATE;\n{};\nCOMMIT", self.sql);
        let arguments = self.arguments;
        let writer = Arc::clone(writer);
        let write = tokio::spawn(async move {
            let mut writer = writer.lock_owned().await;
            match run_steps(&mut writer, sql, arguments).await {
                Ok(mut steps) => {
                    // BEGIN's result and COMMIT's.
                    steps.pop();
                    if !steps.is_empty() {
                        steps.remove(0);
                    }
                    Ok(steps)
                }
                Err(error) => {
                    // The transaction, if it began, ends here: `ROLLBACK` fails only when
                    // there is none (BEGIN itself failed, or COMMIT went through).
                    let _ = sqlx::query("ROLLBACK").execute(&mut *writer).await;
                    Err(error)
                }
            }
        });
        write.await.map_err(|error| StoreError::Other(format!("SQLite write task: {error}")))?
    }
}

/// What one statement of a batch did (the first step of [`two_step_write`], or every statement
/// of [`SqliteBatch::commit_on_writer_steps`]): the rows it answered and the rows it changed.
pub(crate) struct StepResult {
    pub rows: Vec<SqliteRow>,
    pub changed: u64,
}

/// A write transaction on the SQLite writer whose second part depends on what its first part
/// found, in two round trips to the writer's thread (against one per statement, plus `BEGIN`
/// and `COMMIT`, in a transaction of sqlx's): `BEGIN IMMEDIATE` and the statements of
/// `first`, whose results `decide` reads; then the statements it answers and `COMMIT`, or,
/// when it answers an error, `ROLLBACK` and that error. The same guarantees as
/// [`SqliteBatch::commit_on_writer`]: the writer's lock is held throughout, and the write runs
/// in a task of its own, so it finishes whole even if its caller gives up.
pub(crate) async fn two_step_write<T, F>(
    writer: &Arc<tokio::sync::Mutex<SqliteConnection>>,
    mut first: SqliteBatch,
    decide: F,
) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce(Vec<StepResult>) -> Result<(T, SqliteBatch), StoreError> + Send + 'static,
{
    first.check_arguments();
    if let Some(error) = first.error {
        return Err(StoreError::Other(error));
    }
    let sql = format!("BEGIN IMMEDIATE;\n{}", first.sql);
    let arguments = first.arguments;
    let writer = Arc::clone(writer);
    let write = tokio::spawn(async move {
        let mut writer = writer.lock_owned().await;
        let outcome = async {
            let mut steps = run_steps(&mut writer, sql, arguments).await?;
            // The first result is BEGIN's.
            if !steps.is_empty() {
                steps.remove(0);
            }
            let (value, mut second) = decide(steps)?;
            second.check_arguments();
            if let Some(error) = second.error {
                return Err(StoreError::Other(error));
            }
            let sql = if second.sql.is_empty() {
                "COMMIT".to_owned()
            } else {
                format!("{};\nCOMMIT", second.sql)
            };
            sqlx::query_with(sqlx::AssertSqlSafe(sql), second.arguments)
                .execute(&mut *writer)
                .await
                .map_err(map_sqlx_error)?;
            Ok(value)
        }
        .await;
        if outcome.is_err() {
            // As in `commit_on_writer`: ends the transaction if it is still open.
            let _ = sqlx::query("ROLLBACK").execute(&mut *writer).await;
        }
        outcome
    });
    write.await.map_err(|error| StoreError::Other(format!("SQLite write task: {error}")))?
}

/// Runs a multi-statement text on `connection`, answering each statement's rows and count.
async fn run_steps(
    connection: &mut SqliteConnection,
    sql: String,
    arguments: SqliteArguments,
) -> Result<Vec<StepResult>, StoreError> {
    use futures_util::TryStreamExt as _;
    use sqlx::Executor as _;
    let mut steps = Vec::new();
    let mut rows = Vec::new();
    let mut results = connection.fetch_many(sqlx::query_with(sqlx::AssertSqlSafe(sql), arguments));
    while let Some(result) = results.try_next().await.map_err(map_sqlx_error)? {
        match result {
            sqlx::Either::Left(done) => steps.push(StepResult {
                rows: std::mem::take(&mut rows),
                changed: done.rows_affected(),
            }),
            sqlx::Either::Right(row) => rows.push(row),
        }
    }
    Ok(steps)
}

impl BatchStatement<'_> {
    pub(crate) fn bind<'t, T>(self, value: T) -> Self
    where
        T: Encode<'t, Sqlite> + Type<Sqlite>,
    {
        if let Err(error) = self.batch.arguments.add(value) {
            self.batch.error.get_or_insert_with(|| format!("batch argument: {error}"));
        }
        self
    }
}

/// Writes composed into one PostgreSQL statement (see the module documentation):
/// `WITH name AS (sql), ... SELECT ...`. Each part's placeholders are `$1..$n`, renumbered
/// after the arguments bound before it.
#[derive(Default)]
pub(crate) struct PgStatement {
    parts: String,
    arguments: PgArguments,
    /// Arguments the parts pushed so far expect (their highest placeholder).
    expected: usize,
    /// The first part whose arguments did not match its placeholders, or a value that could
    /// not be encoded; reported by [`PgStatement::fetch_optional`].
    error: Option<String>,
}

/// One part of a [`PgStatement`], taking its arguments in placeholder order with `bind`.
pub(crate) struct PgPart<'a> {
    statement: &'a mut PgStatement,
}

impl PgStatement {
    /// Adds the part `name AS (sql)`; bind its arguments on the answer.
    pub(crate) fn part(&mut self, name: &str, sql: &str) -> PgPart<'_> {
        self.check_arguments();
        let offset = self.expected;
        let (renumbered, highest) = renumber(sql, offset);
        self.parts.push_str(if self.parts.is_empty() { "WITH " } else { ",\n" });
        self.parts.push_str(name);
        self.parts.push_str(" AS (");
        self.parts.push_str(&renumbered);
        self.parts.push(')');
        self.expected = offset + highest;
        PgPart { statement: self }
    }

    fn check_arguments(&mut self) {
        if self.error.is_none() && self.arguments.len() != self.expected {
            self.error = Some(format!(
                "statement part bound {} arguments for {} placeholders",
                self.arguments.len(),
                self.expected
            ));
        }
    }

    /// Runs the parts and `select` (without placeholders) as one statement on `pool`, and
    /// answers its row, if any. Every data-modifying part runs whether or not `select` reads
    /// it; all commit together, or none does.
    pub(crate) async fn fetch_optional(
        mut self,
        pool: &PgPool,
        select: &str,
    ) -> Result<Option<PgRow>, StoreError> {
        self.check_arguments();
        if let Some(error) = self.error {
            return Err(StoreError::Other(error));
        }
        let sql = format!("{}\n{select}", self.parts);
        sqlx::query_with(sqlx::AssertSqlSafe(sql), self.arguments)
            .fetch_optional(pool)
            .await
            .map_err(map_sqlx_error)
    }
}

impl PgPart<'_> {
    pub(crate) fn bind<'t, T>(self, value: T) -> Self
    where
        T: Encode<'t, Postgres> + Type<Postgres>,
    {
        if let Err(error) = self.statement.arguments.add(value) {
            self.statement.error.get_or_insert_with(|| format!("statement argument: {error}"));
        }
        self
    }
}

/// `INSERT INTO t (columns) VALUES (values)` as `INSERT INTO t (columns) SELECT values FROM
/// guard`: the row is inserted once for each row `guard` answers (a [`PgStatement`] part that
/// answers one row when the write may go ahead, none otherwise). `None` for any other shape.
pub(crate) fn insert_from(sql: &str, guard: &str) -> Option<String> {
    let (head, values) = sql.split_once(" VALUES (")?;
    let values = values.strip_suffix(')')?;
    if !head.starts_with("INSERT INTO ") || values.contains(')') {
        return None;
    }
    Some(format!("{head} SELECT {values} FROM {guard}"))
}

/// [`insert_from`] a guard given as a query (`SELECT 1 WHERE ...`, its own placeholders
/// `$1..$n`, bound after the insert's): the row is inserted only while the query answers a
/// row, decided inside the statement's transaction.
pub(crate) fn insert_if(sql: &str, guard: &str) -> Option<String> {
    let (_, highest) = renumber(sql, 0);
    let (guard, _) = renumber(guard, highest);
    insert_from(sql, &format!("({guard}) AS guard"))
}

/// `sql` with every `$n` placeholder replaced by `$(n + offset)`, and the highest `n`. Our
/// statements are fixed texts whose only `$` are placeholders.
fn renumber(sql: &str, offset: usize) -> (String, usize) {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut highest = 0;
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..=at]);
        rest = &rest[at + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        match rest[..digits].parse::<usize>() {
            Ok(n) => {
                highest = highest.max(n);
                out.push_str(&(n + offset).to_string());
            }
            Err(_) => out.push_str(&rest[..digits]),
        }
        rest = &rest[digits..];
    }
    out.push_str(rest);
    (out, highest)
}

#[cfg(test)]
mod tests {
    use super::{insert_from, insert_if, renumber};

    #[test]
    fn placeholders_are_renumbered_after_the_earlier_arguments() {
        assert_eq!(
            renumber("UPDATE t SET a = $2, b = $10 WHERE id = $1", 5),
            ("UPDATE t SET a = $7, b = $15 WHERE id = $6".to_owned(), 10)
        );
        assert_eq!(renumber("VALUES ($1, $1)", 0), ("VALUES ($1, $1)".to_owned(), 1));
        assert_eq!(renumber("SELECT 1", 3), ("SELECT 1".to_owned(), 0));
    }

    #[test]
    fn an_insert_of_values_becomes_an_insert_guarded_by_a_part() {
        assert_eq!(
            insert_from("INSERT INTO t (a, b) VALUES ($1, $2)", "go").as_deref(),
            Some("INSERT INTO t (a, b) SELECT $1, $2 FROM go")
        );
        // Anything else is refused rather than rewritten wrong.
        assert_eq!(
            insert_from("INSERT INTO t (a) VALUES ($1) ON CONFLICT (a) DO NOTHING", "go"),
            None
        );
        assert_eq!(insert_from("INSERT INTO t (a) VALUES (lower($1))", "go"), None);
        assert_eq!(insert_from("UPDATE t SET a = $1", "go"), None);
        // A guard's own placeholders follow the insert's.
        assert_eq!(
            insert_if("INSERT INTO t (a, b) VALUES ($1, $2)", "SELECT 1 WHERE $1 = 1").as_deref(),
            Some("INSERT INTO t (a, b) SELECT $1, $2 FROM (SELECT 1 WHERE $3 = 1) AS guard")
        );
    }
}
