//! The command line: `gatehouse serve | migrate | version | keys list|rotate`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use serde_json::json;

use crate::app::{self, StartupError};
use crate::config::Config;
use crate::server;

#[derive(Debug, Parser)]
#[command(name = "gatehouse", version, about = "Gatehouse: a self-hostable identity server")]
pub struct Cli {
    /// Configuration file (TOML). Every key can be overridden by a GATEHOUSE_* variable.
    #[arg(long, global = true, env = "GATEHOUSE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Print JSON on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve,
    /// Apply pending database migrations.
    Migrate,
    /// Print the version.
    Version,
    /// Manage the token signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List signing keys (active, retired, and whether each is still published in JWKS).
    List,
    /// Make a new active key; the old one stays in JWKS until its tokens have expired.
    Rotate,
}

/// Runs a command that needs configuration.
pub async fn run(command: &Command, config: Config, json_output: bool) -> Result<(), StartupError> {
    match command {
        Command::Version => {
            print_version(json_output);
            Ok(())
        }
        Command::Serve => serve(config, json_output).await,
        Command::Migrate => {
            let database = app::open_database(&config).await?;
            gatehouse_store::migrate::run(&database).await?;
            let versions = gatehouse_store::migrate::applied_versions(&database).await?;
            database.close().await;
            if json_output {
                println!(
                    "{}",
                    json!({ "backend": database.backend(), "applied_versions": versions })
                );
            } else {
                println!(
                    "database ({}) is up to date; applied migrations: {versions:?}",
                    database.backend()
                );
            }
            Ok(())
        }
        Command::Keys(KeysCommand::List) => {
            let core = app::build_core(config).await?;
            let keys = core.keys.list().await?;
            core.database.close().await;
            if json_output {
                println!("{}", json!({ "data": keys }));
            } else {
                println!("{:<45} {:<6} {:<8} {:<11} published", "kid", "alg", "state", "created");
                for key in keys {
                    println!(
                        "{:<45} {:<6} {:<8} {:<11} {}",
                        key.kid,
                        key.algorithm.to_string(),
                        key.state.as_str(),
                        key.created_at,
                        if key.published { "yes" } else { "no" }
                    );
                }
            }
            Ok(())
        }
        Command::Keys(KeysCommand::Rotate) => {
            let core = app::build_core(config).await?;
            let key = core.keys.rotate().await?;
            core.database.close().await;
            if json_output {
                println!("{}", json!(key));
            } else {
                println!(
                    "new active signing key {} ({}); the previous key stays published until its tokens expire",
                    key.kid, key.algorithm
                );
            }
            Ok(())
        }
    }
}

pub fn print_version(json_output: bool) {
    let version = env!("CARGO_PKG_VERSION");
    if json_output {
        println!("{}", json!({ "version": version }));
    } else {
        println!("gatehouse {version}");
    }
}

async fn serve(config: Config, json_output: bool) -> Result<(), StartupError> {
    let address = config.http.addr.clone();
    let issuer = config.issuer();
    let application = app::build(config).await?;
    let listener = tokio::net::TcpListener::bind(&address).await.map_err(|error| {
        StartupError::Other(format!("cannot listen on {address} (GATEHOUSE_HTTP_ADDR): {error}"))
    })?;
    let bound = listener
        .local_addr()
        .map_err(|error| StartupError::Other(format!("cannot read the bound address: {error}")))?;
    let url = format!("http://{bound}");
    if json_output {
        println!("{}", json!({ "event": "serving", "url": url, "issuer": issuer }));
    } else {
        println!(
            "Gatehouse is serving at {url} (issuer {issuer}, database {})",
            application.database.backend()
        );
    }
    tracing::info!(%url, %issuer, backend = application.database.backend(), "serving");
    server::serve(application, listener, server::shutdown_signal()).await
}
