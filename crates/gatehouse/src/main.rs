//! `gatehouse`: parse the command line, load configuration (exit 2 when it is invalid), start
//! logging and the runtime, run the command.

use clap::Parser;
use gatehouse::cli::{self, Cli, Command};
use gatehouse::config::Config;

fn main() {
    let arguments = Cli::parse();
    if matches!(arguments.command, Command::Version) {
        cli::print_version(arguments.json);
        return;
    }
    let config = match Config::load(arguments.config.as_deref(), std::env::vars()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("gatehouse: {error}");
            std::process::exit(2);
        }
    };
    gatehouse::logging::init(&config.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("gatehouse: cannot start the async runtime: {error}");
            std::process::exit(1);
        }
    };
    if let Err(error) = runtime.block_on(cli::run(&arguments.command, config, arguments.json)) {
        tracing::error!(%error, "gatehouse stopped");
        eprintln!("gatehouse: {error}");
        std::process::exit(error.exit_code());
    }
}
