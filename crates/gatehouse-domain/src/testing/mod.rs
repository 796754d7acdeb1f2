//! Test-only support for the domain's unit tests: [`MemoryStore`], one in-memory fake of the
//! store ports, and [`TestWorld`], the account and OAuth services wired on it as the binary
//! wires them on the database (real crypto, a [`crate::clock::ManualClock`], small Argon2id
//! parameters). No database, no network.

mod memory;
mod world;

pub(crate) use memory::MemoryStore;
pub(crate) use world::{TEST_PASSWORD, TestWorld, WorldSettings, context, wrong_totp_code};
