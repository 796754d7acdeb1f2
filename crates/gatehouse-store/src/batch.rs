//! `SqliteBatch`: several statements sent to SQLite in one round trip.
//!
//! sqlx runs SQLite on a worker thread per connection, and every statement is a round trip to
//! it: a message, a wake-up of that thread, an answer, a wake-up of the runtime. On the
//! sign-in path those hand-offs cost more than the statements themselves (the CPU of a 2-core
//! machine is busy with Argon2), so the writes of a new session go as one multi-statement
//! text inside the caller's transaction. sqlx binds a `$n` placeholder to the n-th argument of
//! the whole text, so each statement's placeholders are renumbered after the arguments already
//! added.

use sqlx::sqlite::SqliteArguments;
use sqlx::{Arguments as _, Encode, Sqlite, Type};

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

    /// Runs the statements on `executor` (the caller's transaction), in one round trip;
    /// answers the rows they changed, all statements together.
    pub(crate) async fn execute(
        mut self,
        executor: &mut sqlx::SqliteConnection,
    ) -> Result<u64, StoreError> {
        self.check_arguments();
        if let Some(error) = self.error {
            return Err(StoreError::Other(error));
        }
        if self.sql.is_empty() {
            return Ok(0);
        }
        Ok(sqlx::query_with(sqlx::AssertSqlSafe(self.sql), self.arguments)
            .execute(executor)
            .await
            .map_err(map_sqlx_error)?
            .rows_affected())
    }
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
    use super::renumber;

    #[test]
    fn placeholders_are_renumbered_after_the_earlier_arguments() {
        assert_eq!(
            renumber("UPDATE t SET a = $2, b = $10 WHERE id = $1", 5),
            ("UPDATE t SET a = $7, b = $15 WHERE id = $6".to_owned(), 10)
        );
        assert_eq!(renumber("VALUES ($1, $1)", 0), ("VALUES ($1, $1)".to_owned(), 1));
        assert_eq!(renumber("SELECT 1", 3), ("SELECT 1".to_owned(), 0));
    }
}
