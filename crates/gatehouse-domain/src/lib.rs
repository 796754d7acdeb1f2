//! Gatehouse's business rules and the ports (store traits, clock) they need.
//!
//! Invariant: nothing here knows about axum, sqlx, Redis or HTTP status codes. Errors carry a
//! stable `code` that the HTTP layer maps to a status.

pub mod accounts;
pub mod admin_keys;
pub mod audit;
pub mod clock;
pub mod error;
pub mod health;
pub mod keys;
pub mod mfa;
pub mod notify;
pub mod oauth;
pub mod passwords;
pub mod ratelimit;
pub mod sessions;
pub mod store;
pub mod tokens;
pub mod users;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{DomainError, FieldIssue, MfaProblem, OneTimeTokenProblem};
pub use health::ReadinessCheck;
pub use keys::{KeyInfo, KeyService, KeySettings, KeyState, SigningKeyStore, StoredSigningKey};
pub use store::StoreError;
pub use users::{UserRecord, UserStore};
