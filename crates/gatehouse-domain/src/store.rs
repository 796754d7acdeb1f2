//! The error every store port answers with, independent of the database behind it.

/// What can go wrong in a store, in terms the domain can act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was broken (duplicate email, a second active key, ...). The string
    /// names the constraint, never the value.
    #[error("conflict: {0}")]
    Conflict(String),
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
