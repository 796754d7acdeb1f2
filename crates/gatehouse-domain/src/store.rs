//! The error every store port answers with, independent of the database behind it.

/// Which uniqueness rule a write broke. The store maps the database's constraint to one of
/// these in one place; the domain matches on the variant, never on a constraint's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conflict {
    /// Another account has this email address (its blind index).
    UserEmail,
    /// Another account has this username.
    UserUsername,
    /// The one-time token was spent by someone else first.
    OneTimeTokenSpent,
    /// The authorization code was spent by another exchange first.
    AuthorizationCodeSpent,
    /// The user already has a confirmed second factor of this kind.
    MfaFactorKind,
    /// A signing key with this kid exists, another key is already active, or the key a
    /// rotation retires is no longer the active one (another rotation came first).
    SigningKey,
    /// An OAuth client with this id exists.
    ClientId,
    /// A device-flow user code is in use.
    DeviceUserCode,
    /// A password change lost a race: the stored hash is no longer the one it replaces.
    PasswordReplaced,
    /// The user was suspended (or deleted) before a session for them could be written.
    UserNotActive,
    /// Another organization has this slug.
    OrganizationSlug,
    /// The user is a member of this organization already.
    Membership,
    /// The organization has a custom role with this key already.
    RoleKey,
    /// This WebAuthn credential is registered already (to this or another account).
    PasskeyCredential,
    /// This upstream identity (provider, subject) is linked already.
    Identity,
    /// Any other uniqueness rule (a primary key, say); names the constraint, never the value.
    Other(String),
}

/// What can go wrong in a store, in terms the domain can act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was broken (duplicate email, a second active key, ...).
    #[error("conflict: {0:?}")]
    Conflict(Conflict),
    /// The database could not be reached or timed out; worth retrying later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A stored value could not be read back (corruption or a bug in a migration).
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// Anything else the driver reported.
    #[error("store error: {0}")]
    Other(String),
}
