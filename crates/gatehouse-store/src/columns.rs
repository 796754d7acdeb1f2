//! Values into and out of columns on either backend, so that binding a record's columns and
//! reading a row back are typed functions written once, not macros expanded per backend.
//!
//! `sqlx` bounds a value by the one database a query or row belongs to; a function serving
//! both would repeat `Encode`/`Decode` bounds for every column type it touches. The traits
//! here name both databases once: [`ColumnValue`] (decodes on both), [`BindValue`] (encodes on
//! both), [`StoreRow`] (a row of either), [`StoreQuery`] (a statement of either, or of a
//! [`crate::batch::SqliteBatch`]) and [`StoreConnection`] (a connection of either, to run a
//! statement on).

use gatehouse_domain::StoreError;
use sqlx::postgres::{PgArguments, PgConnection, PgRow, Postgres};
use sqlx::query::Query;
use sqlx::sqlite::{Sqlite, SqliteArguments, SqliteConnection, SqliteRow};
use sqlx::{Decode, Encode, Row, Type};

use crate::batch::{BatchStatement, PgPart};
use crate::error::map_sqlx_error;

/// A value both backends decode (`String`, `i64`, `Vec<u8>`, their `Option`s...).
pub(crate) trait ColumnValue:
    for<'r> Decode<'r, Sqlite> + Type<Sqlite> + for<'r> Decode<'r, Postgres> + Type<Postgres>
{
}

impl<T> ColumnValue for T where
    T: for<'r> Decode<'r, Sqlite> + Type<Sqlite> + for<'r> Decode<'r, Postgres> + Type<Postgres>
{
}

/// A value both backends encode as a statement's argument (`&str`, `&[u8]`, `i64`, their
/// `Option`s...). `'t` is how long the value lives (sqlx's `Option<T>` encodes only for `T:
/// 't`, so no `for<'t>` bound here, unlike [`ColumnValue`]).
pub(crate) trait BindValue<'t>:
    Encode<'t, Sqlite> + Type<Sqlite> + Encode<'t, Postgres> + Type<Postgres> + Send
{
}

impl<'t, T> BindValue<'t> for T where
    T: Encode<'t, Sqlite> + Type<Sqlite> + Encode<'t, Postgres> + Type<Postgres> + Send
{
}

/// A row of either backend.
pub(crate) trait StoreRow {
    /// The column `name`, decoded. A missing column or an undecodable value is
    /// `StoreError::Corrupt` (through [`map_sqlx_error`]).
    fn read<T: ColumnValue>(&self, name: &str) -> Result<T, StoreError>;

    /// A `COUNT(*)` column read as "is there any".
    fn any(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self.read::<i64>(name)? > 0)
    }
}

impl StoreRow for SqliteRow {
    fn read<T: ColumnValue>(&self, name: &str) -> Result<T, StoreError> {
        self.try_get(name).map_err(map_sqlx_error)
    }
}

impl StoreRow for PgRow {
    fn read<T: ColumnValue>(&self, name: &str) -> Result<T, StoreError> {
        self.try_get(name).map_err(map_sqlx_error)
    }
}

/// A statement taking its arguments in placeholder order: a query of either backend, or one
/// statement of a [`crate::batch::SqliteBatch`].
pub(crate) trait StoreQuery: Sized {
    fn bind_value<'t, T: BindValue<'t>>(self, value: T) -> Self;
}

impl StoreQuery for Query<'_, Sqlite, SqliteArguments> {
    fn bind_value<'t, T: BindValue<'t>>(self, value: T) -> Self {
        self.bind(value)
    }
}

impl StoreQuery for Query<'_, Postgres, PgArguments> {
    fn bind_value<'t, T: BindValue<'t>>(self, value: T) -> Self {
        self.bind(value)
    }
}

impl StoreQuery for PgPart<'_> {
    fn bind_value<'t, T: BindValue<'t>>(self, value: T) -> Self {
        self.bind(value)
    }
}

impl StoreQuery for BatchStatement<'_> {
    fn bind_value<'t, T: BindValue<'t>>(self, value: T) -> Self {
        self.bind(value)
    }
}

/// A connection of either backend (in a write, the transaction: `&mut *transaction`), so a
/// statement that several writes share is an `async fn` over `&mut impl StoreConnection`.
pub(crate) trait StoreConnection: Send {
    /// A statement of this backend.
    type Statement: StoreQuery + Send;

    /// The statement `sql`, to bind with [`StoreQuery::bind_value`] and run with
    /// [`StoreConnection::execute`].
    fn statement(sql: &'static str) -> Self::Statement;

    /// Runs `statement` on this connection; answers how many rows it changed.
    fn execute(
        &mut self,
        statement: Self::Statement,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
}

impl StoreConnection for SqliteConnection {
    type Statement = Query<'static, Sqlite, SqliteArguments>;

    fn statement(sql: &'static str) -> Self::Statement {
        sqlx::query(sql)
    }

    async fn execute(&mut self, statement: Self::Statement) -> Result<u64, StoreError> {
        Ok(statement.execute(self).await.map_err(map_sqlx_error)?.rows_affected())
    }
}

impl StoreConnection for PgConnection {
    type Statement = Query<'static, Postgres, PgArguments>;

    fn statement(sql: &'static str) -> Self::Statement {
        sqlx::query(sql)
    }

    async fn execute(&mut self, statement: Self::Statement) -> Result<u64, StoreError> {
        Ok(statement.execute(self).await.map_err(map_sqlx_error)?.rows_affected())
    }
}
