//! `gatehouse db export | import`: the whole database as one archive (gzip-compressed JSON
//! Lines, see `gatehouse_store::archive`), and its import into an empty database of either
//! backend — the path from the embedded SQLite to PostgreSQL (and back). Secrets stay sealed:
//! the importing installation needs the exporting one's master key, which the import checks
//! before it writes anything. A progress bar on stderr when it is a terminal; a summary on
//! stdout (`--json` for a machine).

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Subcommand;
use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use serde_json::json;

use gatehouse_store::archive::{self, ArchiveError, Progress, Summary};
use gatehouse_store::migrate::MIGRATIONS;

use crate::app::{self, StartupError};
use crate::config::Config;
use crate::master_key;

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Write every table to FILE (a gzip-compressed, versioned archive; secrets stay sealed
    /// under the master key, which the import needs too). One consistent snapshot; the servers
    /// may keep running.
    Export {
        #[arg(long, value_name = "FILE")]
        output: PathBuf,
    },
    /// Load an archive into an empty database of either backend (`GATEHOUSE_DATABASE_URL`),
    /// migrating it to the archive's schema first: all of it in one transaction, or nothing.
    Import {
        #[arg(long, value_name = "FILE")]
        input: PathBuf,
    },
}

pub async fn run(
    command: &DbCommand,
    config: Config,
    json_output: bool,
) -> Result<(), StartupError> {
    match command {
        DbCommand::Export { output } => export(config, output, json_output).await,
        DbCommand::Import { input } => import(config, input, json_output).await,
    }
}

fn archive_error(error: ArchiveError) -> StartupError {
    match error {
        ArchiveError::Store(error) => StartupError::Database(error),
        other => StartupError::Rejected(other.to_string()),
    }
}

/// `gatehouse db export --output FILE`: written beside FILE first, renamed over it once whole.
async fn export(config: Config, output: &Path, json_output: bool) -> Result<(), StartupError> {
    let started = Instant::now();
    let database = app::open_database(&config).await?;
    if gatehouse_store::migrate::current_version(&database).await? == 0 {
        database.close().await;
        return Err(StartupError::Rejected(
            "the database has no Gatehouse schema: nothing to export (check GATEHOUSE_DATABASE_URL)"
                .into(),
        ));
    }
    let partial = partial_path(output);
    let file = File::create(&partial).map_err(|error| {
        StartupError::Rejected(format!("cannot write {}: {error}", partial.display()))
    })?;
    let mut writer = GzEncoder::new(BufWriter::new(file), Compression::fast());
    let mut bar = ProgressBar::new("exported");
    let result =
        archive::export(&database, &mut writer, now(), &mut |progress| bar.show(progress)).await;
    database.close().await;
    bar.finish();
    let finished = result.map_err(archive_error).and_then(|summary| {
        let write_error =
            |error: std::io::Error| StartupError::Other(format!("writing the archive: {error}"));
        let inner = writer.finish().map_err(write_error)?;
        let file = inner.into_inner().map_err(|error| write_error(error.into_error()))?;
        file.sync_all().map_err(write_error)?;
        std::fs::rename(&partial, output).map_err(write_error)?;
        Ok(summary)
    });
    let summary = match finished {
        Ok(summary) => summary,
        Err(error) => {
            let _ = std::fs::remove_file(&partial);
            return Err(error);
        }
    };
    let bytes = std::fs::metadata(output).map(|metadata| metadata.len()).unwrap_or(0);
    report(&summary, "exported", output, bytes, started.elapsed(), json_output);
    Ok(())
}

fn partial_path(output: &Path) -> PathBuf {
    let mut name = output.file_name().map(|name| name.to_os_string()).unwrap_or_default();
    name.push(".partial");
    output.with_file_name(name)
}

/// `gatehouse db import --input FILE`
async fn import(config: Config, input: &Path, json_output: bool) -> Result<(), StartupError> {
    let started = Instant::now();
    let bytes = std::fs::metadata(input).map(|metadata| metadata.len()).unwrap_or(0);
    let mut reader = open_archive(input)?;
    let header = archive::read_header(&mut *reader).map_err(archive_error)?;
    let latest = MIGRATIONS.last().map_or(0, |migration| migration.version);
    if header.schema_version > latest {
        return Err(StartupError::Rejected(format!(
            "the archive was made by a newer Gatehouse (schema version {}; this one knows up to \
             {latest}): import it with that version or a later one",
            header.schema_version
        )));
    }
    // The archive's data keys are wrapped: without their master key its secrets are lost.
    app::create_data_dir(&config)?;
    let keys = master_key::resolve(&config)?;
    let held: Vec<u32> =
        std::iter::once(&keys.current).chain(&keys.previous).map(|key| key.id()).collect();
    if let Some(missing) = header.master_key_ids.iter().find(|id| !held.contains(id)) {
        return Err(StartupError::Rejected(format!(
            "the archive's data keys are wrapped by master key {missing}, which this \
             configuration does not hold (it holds {held:?}): set GATEHOUSE_MASTER_KEY (or \
             GATEHOUSE_MASTER_KEY_FILE) to the exporting installation's master key — in \
             development, its data directory's master.key"
        )));
    }
    let database = app::open_database(&config).await?;
    let current = gatehouse_store::migrate::current_version(&database).await?;
    if current < header.schema_version {
        gatehouse_store::migrate::run_to(&database, header.schema_version).await?;
    } else if current > header.schema_version {
        database.close().await;
        return Err(StartupError::Rejected(format!(
            "the target database is already at schema version {current}, the archive at {}: \
             import into a new, empty database",
            header.schema_version
        )));
    }
    let mut bar = ProgressBar::new("imported");
    let result =
        archive::import(&database, &header, &mut *reader, &mut |progress| bar.show(progress)).await;
    bar.finish();
    let summary = match result {
        Ok(summary) => summary,
        Err(error) => {
            database.close().await;
            return Err(archive_error(error));
        }
    };
    // The rows are in: bring them to this build's schema.
    gatehouse_store::migrate::run(&database).await?;
    database.close().await;
    // What a server start does first: the data keys open under this master key.
    let core = app::build_core(config).await?;
    core.database.close().await;
    report(&summary, "imported", input, bytes, started.elapsed(), json_output);
    Ok(())
}

/// The archive, decompressed when it is gzip (as `db export` writes it), as is otherwise.
fn open_archive(path: &Path) -> Result<Box<dyn BufRead>, StartupError> {
    let cannot = |error: std::io::Error| {
        StartupError::Rejected(format!("cannot read {}: {error}", path.display()))
    };
    let mut file = BufReader::with_capacity(1 << 16, File::open(path).map_err(cannot)?);
    let gzip = file.fill_buf().map_err(cannot)?.starts_with(&[0x1f, 0x8b]);
    Ok(if gzip {
        Box::new(BufReader::with_capacity(1 << 16, MultiGzDecoder::new(file)))
    } else {
        Box::new(file)
    })
}

fn report(
    summary: &Summary,
    verb: &str,
    file: &Path,
    bytes: u64,
    elapsed: Duration,
    json_output: bool,
) {
    let tables: serde_json::Map<String, serde_json::Value> =
        summary.tables.iter().map(|(name, rows)| (name.clone(), json!(rows))).collect();
    if json_output {
        println!(
            "{}",
            json!({
                "file": file.display().to_string(),
                "bytes": bytes,
                "schema_version": summary.schema_version,
                "rows": summary.rows,
                "tables": tables,
                "seconds": elapsed.as_secs_f64(),
            })
        );
        return;
    }
    for (name, rows) in summary.tables.iter().filter(|(_, rows)| *rows > 0) {
        println!("  {name:<32} {rows:>10}");
    }
    println!(
        "{verb} {} rows of {} tables (schema version {}) {} {} ({:.1} MB) in {:.1} s",
        summary.rows,
        summary.tables.len(),
        summary.schema_version,
        if verb == "exported" { "to" } else { "from" },
        file.display(),
        bytes as f64 / 1_000_000.0,
        elapsed.as_secs_f64()
    );
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX))
}

/// A one-line bar on stderr, redrawn at most ten times a second, only on a terminal.
struct ProgressBar {
    verb: &'static str,
    enabled: bool,
    drawn: Option<Instant>,
}

impl ProgressBar {
    fn new(verb: &'static str) -> ProgressBar {
        ProgressBar { verb, enabled: std::io::stderr().is_terminal(), drawn: None }
    }

    fn show(&mut self, progress: Progress<'_>) {
        if !self.enabled
            || self.drawn.is_some_and(|drawn| drawn.elapsed() < Duration::from_millis(100))
                && progress.rows_done < progress.rows_total
        {
            return;
        }
        self.drawn = Some(Instant::now());
        let fraction = if progress.rows_total == 0 {
            1.0
        } else {
            progress.rows_done as f64 / progress.rows_total as f64
        };
        let width = 30usize;
        let filled = ((fraction * width as f64) as usize).min(width);
        let mut stderr = std::io::stderr().lock();
        let _ = write!(
            stderr,
            "\r[{}{}] {:>3.0}% {} {}/{} rows ({:<24})",
            "#".repeat(filled),
            "-".repeat(width - filled),
            fraction * 100.0,
            self.verb,
            progress.rows_done,
            progress.rows_total,
            progress.table
        );
        let _ = stderr.flush();
    }

    fn finish(&mut self) {
        if self.enabled && self.drawn.is_some() {
            eprintln!();
        }
    }
}
