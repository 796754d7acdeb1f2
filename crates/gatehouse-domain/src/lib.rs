//! Gatehouse's business rules and the ports (store traits, clock) they need.
//!
//! One module per concept, each with its service, its narrow port, its records and its rules:
//! `sign_in`, `sessions`, `registration`, `passwords`, `email_links`, `mfa`, `admin_users`,
//! `admin_keys`, `oauth`, `keys`, `notify`, `sweeper` (the data lifecycle). Shared things sit
//! low and import no service: `principal` (who is asking), `unit_of_work` (what a change writes besides itself), `audit`,
//! `users` (the account record, its port and the directory of addresses), `lockout`,
//! `known_devices`, `clock`, `error`, `store`.
//!
//! Invariant: nothing here knows about axum, sqlx, Redis or HTTP status codes. Errors carry a
//! stable `code` that the HTTP layer maps to a status.

pub mod account_limit;
pub mod admin_keys;
pub mod admin_users;
pub mod api_keys;
pub mod audit;
pub mod clock;
pub mod data_keys;
pub mod email_links;
pub mod error;
pub mod events;
pub mod federation;
pub mod health;
pub mod keys;
pub mod known_devices;
pub mod lockout;
pub mod mfa;
pub mod notify;
pub mod oauth;
pub mod organizations;
pub mod outbound;
pub mod overview;
pub mod passkeys;
pub mod passwords;
pub mod principal;
pub mod ratelimit;
pub mod registration;
pub mod services;
pub mod sessions;
pub mod sign_in;
pub mod store;
pub mod sweeper;
pub mod tokens;
pub mod unit_of_work;
pub mod users;
pub mod webhooks;

#[cfg(test)]
pub(crate) mod testing;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{
    DomainError, Feature, FieldIssue, MfaProblem, OneTimeTokenProblem, PasskeyProblem, Taken,
};
pub use health::ReadinessCheck;
pub use keys::{KeyInfo, KeyService, KeySettings, KeyState, SigningKeyStore, StoredSigningKey};
pub use store::{Conflict, StoreError};
pub use users::{UserRecord, UserStore};
