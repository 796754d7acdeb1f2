//! `gatehouse audit verify | export`: the audit chain's check (exit code 3 on a break) and the
//! export of the trail as JSON Lines or CSV to stdout or a file, batch by batch (constant
//! memory), with a progress line on stderr when it is a terminal.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Subcommand};
use serde_json::json;

use gatehouse_domain::audit::chain::BreakKind;
use gatehouse_domain::audit::export::ExportFormat;
use gatehouse_domain::audit::{AuditFilter, AuditLog};
use gatehouse_domain::principal::AdminPrincipal;

use crate::app::{self, StartupError};
use crate::config::Config;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Chain the rows not chained yet, then check the audit chain from its start (or its
    /// retention checkpoint) to its head; names the first broken row and exits with code 3.
    Verify,
    /// Export audit events, oldest first, as JSON Lines or CSV.
    Export(ExportAudit),
}

#[derive(Debug, Args)]
pub struct ExportAudit {
    /// jsonl or csv.
    #[arg(long, default_value = "jsonl", value_parser = ["jsonl", "csv"])]
    format: String,
    /// Write here instead of stdout.
    #[arg(long)]
    output: Option<PathBuf>,
    #[arg(long)]
    action: Option<String>,
    /// Events whose actor is this id.
    #[arg(long)]
    actor: Option<String>,
    /// Events whose target is this id.
    #[arg(long)]
    target: Option<String>,
    #[arg(long)]
    ip: Option<String>,
    /// Events concerning this organization id.
    #[arg(long)]
    organization: Option<String>,
    /// Unix seconds, inclusive.
    #[arg(long)]
    since: Option<i64>,
    /// Unix seconds, exclusive.
    #[arg(long)]
    until: Option<i64>,
}

pub async fn run(
    command: &AuditCommand,
    config: Config,
    json_output: bool,
) -> Result<(), StartupError> {
    match command {
        AuditCommand::Verify => verify(config, json_output).await,
        AuditCommand::Export(arguments) => export(config, arguments, json_output).await,
    }
}

/// `gatehouse audit verify`
async fn verify(config: Config, json_output: bool) -> Result<(), StartupError> {
    let core = app::build_core(config).await?;
    let integrity = core.audit_integrity()?;
    let chained = integrity.chain_pending().await?;
    let report = integrity.verify().await?;
    core.database.close().await;
    if json_output {
        let broken = report.broken.as_ref().map(|broken| {
            json!({
                "event_id": broken.event_id,
                "seq": broken.seq,
                "problem": problem(&broken.kind),
                "message": broken.to_string(),
            })
        });
        println!(
            "{}",
            json!({
                "intact": report.broken.is_none(),
                "checked": report.checked,
                "chained_now": chained,
                "checkpoint_seq": report.checkpoint_seq,
                "unchained": report.unchained,
                "broken": broken,
            })
        );
    } else if report.broken.is_none() {
        let start = match report.checkpoint_seq {
            Some(seq) => format!("from the retention checkpoint at position {seq}"),
            None => "from the start".to_owned(),
        };
        println!("audit chain intact: {} rows checked {start}", report.checked);
    }
    match report.broken {
        None => Ok(()),
        Some(broken) => Err(StartupError::AuditChainBroken(broken.to_string())),
    }
}

fn problem(kind: &BreakKind) -> &'static str {
    match kind {
        BreakKind::Gap { .. } => "gap",
        BreakKind::PersonalFields => "personal_fields",
        BreakKind::Hash => "hash",
        BreakKind::Truncated { .. } => "truncated",
        BreakKind::Checkpoint => "checkpoint",
    }
}

/// `gatehouse audit export`
async fn export(
    config: Config,
    arguments: &ExportAudit,
    json_output: bool,
) -> Result<(), StartupError> {
    let format = ExportFormat::parse(&arguments.format)
        .ok_or_else(|| StartupError::Rejected("--format must be jsonl or csv".into()))?;
    let filter = AuditFilter {
        actor_id: arguments.actor.clone(),
        target_id: arguments.target.clone(),
        action: arguments.action.clone(),
        ip: arguments.ip.clone(),
        organization_id: arguments.organization.clone(),
        from: arguments.since,
        until: arguments.until,
        ..AuditFilter::default()
    };
    let database = app::open_database(&config).await?;
    let log = AuditLog::new(Arc::new(database.clone()));
    let admin = AdminPrincipal::system();
    let mut out: Box<dyn Write> = match &arguments.output {
        Some(path) => {
            Box::new(std::io::BufWriter::new(std::fs::File::create(path).map_err(|error| {
                StartupError::Rejected(format!("cannot write {}: {error}", path.display()))
            })?))
        }
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let write_error = |error: std::io::Error| StartupError::Other(format!("export: {error}"));
    let progress = std::io::stderr().is_terminal();
    let total = if progress { log.count(&admin, &filter).await? } else { 0 };
    out.write_all(format.header().as_bytes()).map_err(write_error)?;
    let mut after = None;
    let mut rows: u64 = 0;
    loop {
        let batch = log.export_batch(&admin, &filter, format, after.as_ref()).await?;
        out.write_all(batch.text.as_bytes()).map_err(write_error)?;
        rows += batch.rows as u64;
        if progress {
            eprint!("\r{rows}/{total} rows");
        }
        match batch.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    out.flush().map_err(write_error)?;
    drop(out);
    database.close().await;
    if progress {
        eprintln!();
    }
    if arguments.output.is_some() {
        if json_output {
            println!("{}", json!({ "rows": rows }));
        } else {
            println!("{rows} audit events exported");
        }
    }
    Ok(())
}
