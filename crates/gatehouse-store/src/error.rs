//! Translation of driver errors into the domain's `StoreError`.

use gatehouse_domain::StoreError;

/// Maps a sqlx error to what the domain can act on. Messages name constraints and kinds of
/// failure, never bound values.
pub fn map_sqlx_error(error: sqlx::Error) -> StoreError {
    match error {
        sqlx::Error::Database(database_error) if database_error.is_unique_violation() => {
            // PostgreSQL names the constraint (`users_username_key`); SQLite only says
            // `UNIQUE constraint failed: users.username`. Either way the column is named and
            // the value is not.
            let constraint = database_error.constraint().map(str::to_owned);
            StoreError::Conflict(constraint.unwrap_or_else(|| database_error.message().to_owned()))
        }
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            StoreError::Unavailable(error.to_string())
        }
        sqlx::Error::Tls(_) | sqlx::Error::Protocol(_) => {
            StoreError::Unavailable(error.to_string())
        }
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnNotFound(_) => StoreError::Corrupt(error.to_string()),
        other => StoreError::Other(other.to_string()),
    }
}
