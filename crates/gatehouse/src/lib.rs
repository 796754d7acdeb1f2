//! The `gatehouse` binary's library: configuration, wiring of the layers, the server loop and
//! the CLI commands. `main.rs` only parses arguments and calls in here, so the integration
//! tests build exactly the application that runs in production.

pub mod app;
pub mod audit_cli;
pub mod cli;
pub mod config;
pub mod db_cli;
pub mod logging;
pub mod master_key;
pub mod server;
pub mod sweeper;

pub use app::{App, StartupError};
pub use config::{Config, ConfigError};
