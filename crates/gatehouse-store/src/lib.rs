//! Storage: the sqlx implementations of the domain's store ports, for SQLite and PostgreSQL.
//!
//! Invariant: one implementation serves both backends. Each query is written once and run on
//! whichever pool is configured through [`with_pool!`]; where the dialects differ, the
//! difference is one small function, not a copy of the file.

mod account_deletions;
mod admin_keys;
mod api_keys;
pub mod archive;
mod audit;
mod audit_chain;
mod backchannel;
mod batch;
mod cache;
mod columns;
mod data_keys;
mod database;
mod device_flow;
mod dpop;
mod error;
mod group_commit;
mod identities;
mod identity_providers;
mod keys;
mod mfa;
mod mfa_challenge;
pub mod migrate;
mod notify;
mod oauth;
mod organizations;
mod overview;
mod passkeys;
mod pushed_requests;
pub mod ratelimit;
mod redis;
mod registration_tokens;
mod resource_servers;
mod rotations;
mod sessions;
mod sweeper;
#[cfg(feature = "testing")]
pub mod testing;
mod users;
mod webhooks;

pub use cache::ReadCache;
pub use database::{Backend, Database, DatabaseOptions, PostgresDatabase, backend_of};
pub use dpop::RedisDpopProofStore;
pub use error::map_sqlx_error;
pub use mfa_challenge::RedisChallengeStore;
pub use passkeys::RedisCeremonyStore;
pub use redis::Redis;
