//! The real `gatehouse` binary, run as an operator runs it: a command with exactly the given
//! environment, run to completion or started as `serve` (ready once it announces its URL).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub const BINARY: &str = env!("CARGO_BIN_EXE_gatehouse");

/// `gatehouse <arguments>` in `directory`, with `env` and nothing else, output piped.
pub fn command(directory: &Path, env: &[(String, String)], arguments: &[&str]) -> Command {
    let mut command = Command::new(BINARY);
    command
        .args(arguments)
        .current_dir(directory)
        .env_clear()
        .envs(env.iter().cloned())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Runs a command to completion: (exit code, stdout, stderr).
pub async fn run(
    directory: &Path,
    env: &[(String, String)],
    arguments: &[&str],
) -> (i32, String, String) {
    let output =
        tokio::time::timeout(Duration::from_secs(120), command(directory, env, arguments).output())
            .await
            .expect("command did not finish within 120 s")
            .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Starts `gatehouse serve` and waits for the line that announces its URL; a server that exits
/// first fails the test with what it wrote on stderr.
pub async fn serve(directory: &Path, env: &[(String, String)]) -> (Child, String) {
    let mut child = command(directory, env, &["serve"]).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let announced = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(start) = line.find("http://") {
                return Some(line[start..].split_whitespace().next().unwrap().to_owned());
            }
        }
        None
    })
    .await
    .expect("gatehouse serve did not announce its URL within 120 s");
    let Some(url) = announced else {
        let mut stderr = String::new();
        if let Some(mut pipe) = child.stderr.take() {
            tokio::io::AsyncReadExt::read_to_string(&mut pipe, &mut stderr).await.unwrap();
        }
        panic!("gatehouse serve exited without announcing its URL:\n{stderr}");
    };
    (child, url)
}
