//! Translation of driver errors into the domain's `StoreError`: the one place that maps a
//! sqlx error (of a statement, a URL or a migration) and reads a constraint's name, so the
//! domain matches on [`Conflict`] variants only.

use gatehouse_domain::{Conflict, StoreError};

use crate::Backend;

/// The uniqueness rules the domain acts on: PostgreSQL's constraint name, SQLite's
/// `table.column[, table.column]` of its message, and the conflict they mean.
const KNOWN_CONFLICTS: &[(&str, &str, Conflict)] = &[
    ("users_email_digest_key", "users.email_digest", Conflict::UserEmail),
    ("users_username_key", "users.username", Conflict::UserUsername),
    ("mfa_factors_user_kind", "mfa_factors.user_id, mfa_factors.kind", Conflict::MfaFactorKind),
    ("signing_keys_pkey", "signing_keys.kid", Conflict::SigningKey),
    ("signing_keys_one_active", "signing_keys.state", Conflict::SigningKey),
    ("oauth_clients_pkey", "oauth_clients.client_id", Conflict::ClientId),
    ("device_codes_user_code_key", "device_codes.user_code", Conflict::DeviceUserCode),
    ("passkeys_credential_id", "passkeys.credential_id", Conflict::PasskeyCredential),
    ("organizations_slug", "organizations.slug", Conflict::OrganizationSlug),
    (
        "organization_members_pkey",
        "organization_members.organization_id, organization_members.user_id",
        Conflict::Membership,
    ),
    (
        "organization_roles_pkey",
        "organization_roles.organization_id, organization_roles.role_key",
        Conflict::RoleKey,
    ),
    (
        "user_identities_subject",
        "user_identities.provider_id, user_identities.subject",
        Conflict::Identity,
    ),
];

/// The conflict a unique violation means. PostgreSQL names the constraint
/// (`users_username_key`); SQLite only says `UNIQUE constraint failed: users.username`. Either
/// way the column is named and the value is not.
fn conflict(constraint: Option<&str>, message: &str) -> Conflict {
    let columns = message.strip_prefix("UNIQUE constraint failed: ");
    KNOWN_CONFLICTS
        .iter()
        .find(|(name, sqlite_columns, _)| {
            constraint == Some(*name) || columns == Some(*sqlite_columns)
        })
        .map(|(_, _, conflict)| conflict.clone())
        .unwrap_or_else(|| Conflict::Other(constraint.unwrap_or(message).to_owned()))
}

/// Maps a sqlx error to what the domain can act on. Messages name constraints and kinds of
/// failure, never bound values.
pub fn map_sqlx_error(error: sqlx::Error) -> StoreError {
    match error {
        sqlx::Error::Database(database_error) if database_error.is_unique_violation() => {
            StoreError::Conflict(conflict(database_error.constraint(), database_error.message()))
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

/// A database URL sqlx refuses to parse.
pub(crate) fn invalid_url(backend: Backend, error: sqlx::Error) -> StoreError {
    let name = match backend {
        Backend::Sqlite => "SQLite",
        Backend::Postgres => "PostgreSQL",
    };
    StoreError::Other(format!("invalid {name} URL: {error}"))
}

/// A migration run that failed: a statement's error like any other, the rest (a missing or
/// edited migration, the lock) as `Other`.
pub(crate) fn map_migrate_error(error: sqlx::migrate::MigrateError) -> StoreError {
    match error {
        sqlx::migrate::MigrateError::Execute(error) => map_sqlx_error(error),
        other => StoreError::Other(format!("migration failed: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_dialects_name_the_same_conflicts() {
        for (name, sqlite_columns, expected) in KNOWN_CONFLICTS {
            assert_eq!(&conflict(Some(name), "duplicate key value"), expected);
            let message = format!("UNIQUE constraint failed: {sqlite_columns}");
            assert_eq!(&conflict(None, &message), expected);
        }
        assert_eq!(
            conflict(Some("sessions_pkey"), "duplicate key value"),
            Conflict::Other("sessions_pkey".into())
        );
    }
}
