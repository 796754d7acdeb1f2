//! The command line: `gatehouse serve | migrate | version | keys list|rotate | master-key reseal
//! | user create|import | client create | admin-key create|list|revoke | audit verify|export
//! | db export|import`,
//! one function per command (the audit commands in `audit_cli`). Admin operations run as the
//! system actor (`AdminPrincipal::system`), which their audit events name.

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};
use serde_json::json;

use gatehouse_domain::DomainError;
use gatehouse_domain::admin_keys::AdminKeyRecord;
use gatehouse_domain::admin_users::{AdminUserService, ImportReport, ImportedUser, NewUserByAdmin};
use gatehouse_domain::data_keys::ResealOutcome;
use gatehouse_domain::oauth::clients::NewClient;
use gatehouse_domain::oauth::resources::NewResourceServer;
use gatehouse_domain::organizations::ListCursor;
use gatehouse_domain::principal::AdminPrincipal;
use gatehouse_domain::principal::RequestContext;

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
    /// Manage the master key, which wraps the data keys.
    #[command(name = "master-key", subcommand)]
    MasterKey(MasterKeyCommand),
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage admin API keys.
    #[command(name = "admin-key", subcommand)]
    AdminKey(AdminKeyCommand),
    /// Manage OAuth / OpenID Connect clients.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Manage the resource servers (APIs) access tokens can be issued for (RFC 8707).
    #[command(name = "resource-server", subcommand)]
    ResourceServer(ResourceServerCommand),
    /// Initial access tokens for dynamic client registration in `token` mode (RFC 7591).
    #[command(name = "registration-token", subcommand)]
    RegistrationToken(RegistrationTokenCommand),
    /// Check and export the audit trail.
    #[command(subcommand)]
    Audit(crate::audit_cli::AuditCommand),
    /// Export the whole database to an archive, or import one into an empty database (SQLite
    /// to PostgreSQL and back).
    #[command(subcommand)]
    Db(crate::db_cli::DbCommand),
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a client; prints its client_id and, once, its secret.
    Create(CreateClient),
}

#[derive(Debug, Subcommand)]
pub enum RegistrationTokenCommand {
    /// Issue an initial access token (printed once): it lets a client register itself at
    /// POST /oauth2/register.
    Create {
        /// What it is for.
        #[arg(long, default_value = "cli")]
        name: String,
        /// Its lifetime in seconds (default a day, at most 90 days).
        #[arg(long)]
        expires_in: Option<i64>,
        /// How many registrations it allows (default 1).
        #[arg(long)]
        max_uses: Option<i64>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ResourceServerCommand {
    /// Register a resource server: clients then name its identifier in `resource`.
    Create {
        /// The absolute URI clients send as `resource`, and the `aud` of its tokens.
        #[arg(long)]
        identifier: String,
        #[arg(long)]
        name: String,
        /// A scope its tokens may carry (repeat it); none: any scope granted to the client.
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// The lifetime of its access tokens, in seconds (60 to 86400).
        #[arg(long)]
        access_token_ttl: Option<i64>,
        /// A client that may exchange a user's token for this resource with an actor token
        /// (RFC 8693 delegation; repeat it).
        #[arg(long = "delegation-client")]
        delegation_clients: Vec<String>,
        /// A client that may do so without an actor token (impersonation; repeat it).
        #[arg(long = "impersonation-client")]
        impersonation_clients: Vec<String>,
    },
    /// List the registered resource servers.
    List,
}

#[derive(Debug, Args)]
pub struct CreateClient {
    #[arg(long)]
    name: String,
    #[arg(long)]
    client_id: Option<String>,
    /// A chosen secret (at least 32 characters); generated when absent.
    #[arg(long, conflicts_with = "public")]
    secret: Option<String>,
    /// A public client (SPA, mobile, CLI): no secret, PKCE required.
    #[arg(long)]
    public: bool,
    #[arg(long = "redirect-uri")]
    redirect_uris: Vec<String>,
    #[arg(long = "post-logout-redirect-uri")]
    post_logout_redirect_uris: Vec<String>,
    /// authorization_code, refresh_token, client_credentials (default: the first two).
    #[arg(long = "grant-type")]
    grant_types: Vec<String>,
    /// Allowed scopes (default: openid profile email offline_access).
    #[arg(long = "scope")]
    scopes: Vec<String>,
    /// A first-party client: users are not asked to consent.
    #[arg(long)]
    skip_consent: bool,
    /// Accept only pushed authorization requests (RFC 9126) from this client.
    #[arg(long)]
    require_par: bool,
    /// Issue this client only DPoP-bound access tokens (RFC 9449): a token request without a
    /// proof is refused.
    #[arg(long)]
    require_dpop: bool,
    /// Where logout tokens are sent when a session of this client ends (OpenID Connect
    /// Back-Channel Logout 1.0); its sessions also end with the browser session they came from.
    #[arg(long)]
    backchannel_logout_uri: Option<String>,
    /// A JWK Set file of the client's public keys: it authenticates with private_key_jwt.
    #[arg(long, conflicts_with_all = ["secret", "public"])]
    jwks_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Import users from a JSON Lines file, one object per line: {"email", "username"?,
    /// "first_name"?, "last_name"?, "password_hash"?, "email_verified"?}. Existing emails and
    /// usernames are skipped; progress goes to stderr.
    Import(ImportUsers),
    /// Create a user (the password must pass the password policy).
    Create(CreateUser),
}

#[derive(Debug, Args)]
pub struct ImportUsers {
    #[arg(long)]
    file: PathBuf,
    /// Users per transaction.
    #[arg(long, default_value_t = 1000)]
    batch_size: usize,
}

#[derive(Debug, Args)]
pub struct CreateUser {
    #[arg(long)]
    email: String,
    #[arg(long, conflicts_with = "password_hash")]
    password: Option<String>,
    /// Import a hash from another system (bcrypt, scrypt, PBKDF2, Django pbkdf2_sha256,
    /// Argon2); upgraded to Argon2id at the next sign-in.
    #[arg(long)]
    password_hash: Option<String>,
    #[arg(long)]
    username: Option<String>,
    #[arg(long)]
    first_name: Option<String>,
    #[arg(long)]
    last_name: Option<String>,
    /// Give the user the system admin role (admin API with their own token).
    #[arg(long)]
    admin: bool,
    /// Mark the email as verified.
    #[arg(long)]
    verified: bool,
}

#[derive(Debug, Subcommand)]
pub enum AdminKeyCommand {
    /// Create an admin API key; it is printed once and stored only as a digest.
    Create {
        #[arg(long)]
        name: String,
    },
    /// List admin API keys, revoked ones included, newest first (never the key itself).
    List,
    /// Revoke an admin API key at once (by its id, `ak_…`).
    Revoke {
        /// The key's id, as `admin-key list` shows it.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List signing keys (active, retired, and whether each is still published in JWKS).
    List,
    /// Make a new active key; the old one stays in JWKS until its tokens have expired.
    Rotate,
}

#[derive(Debug, Subcommand)]
pub enum MasterKeyCommand {
    /// Rewrap every data key under GATEHOUSE_MASTER_KEY (the old key in
    /// GATEHOUSE_PREVIOUS_MASTER_KEYS), after which the old key can be dropped. Idempotent,
    /// safe while servers run; progress on stderr.
    Reseal,
}

/// Runs a command that needs configuration: one function per command.
pub async fn run(command: &Command, config: Config, json_output: bool) -> Result<(), StartupError> {
    match command {
        Command::Version => {
            print_version(json_output);
            Ok(())
        }
        Command::Serve => serve(config, json_output).await,
        Command::Migrate => migrate(config, json_output).await,
        Command::Keys(KeysCommand::List) => list_keys(config, json_output).await,
        Command::Keys(KeysCommand::Rotate) => rotate_keys(config, json_output).await,
        Command::MasterKey(MasterKeyCommand::Reseal) => reseal(config, json_output).await,
        Command::User(UserCommand::Create(arguments)) => {
            create_user(config, arguments, json_output).await
        }
        Command::User(UserCommand::Import(arguments)) => {
            import_users(config, arguments, json_output).await
        }
        Command::Client(ClientCommand::Create(arguments)) => {
            create_client(config, arguments, json_output).await
        }
        Command::ResourceServer(command) => resource_server(config, command, json_output).await,
        Command::RegistrationToken(RegistrationTokenCommand::Create {
            name,
            expires_in,
            max_uses,
        }) => create_registration_token(config, name, *expires_in, *max_uses, json_output).await,
        Command::AdminKey(AdminKeyCommand::Create { name }) => {
            create_admin_key(config, name, json_output).await
        }
        Command::AdminKey(AdminKeyCommand::List) => list_admin_keys(config, json_output).await,
        Command::AdminKey(AdminKeyCommand::Revoke { id }) => {
            revoke_admin_key(config, id, json_output).await
        }
        Command::Audit(command) => crate::audit_cli::run(command, config, json_output).await,
        Command::Db(command) => crate::db_cli::run(command, config, json_output).await,
    }
}

/// `gatehouse migrate`
async fn migrate(config: Config, json_output: bool) -> Result<(), StartupError> {
    let database = app::open_database(&config).await?;
    gatehouse_store::migrate::run(&database).await?;
    let versions = gatehouse_store::migrate::applied_versions(&database).await?;
    database.close().await;
    if json_output {
        println!("{}", json!({ "backend": database.backend(), "applied_versions": versions }));
    } else {
        println!(
            "database ({}) is up to date; applied migrations: {versions:?}",
            database.backend()
        );
    }
    Ok(())
}

/// `gatehouse keys list`
async fn list_keys(config: Config, json_output: bool) -> Result<(), StartupError> {
    let core = app::build_core(config).await?;
    let keys = core.keys.list(&AdminPrincipal::system()).await?;
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

/// `gatehouse keys rotate`
async fn rotate_keys(config: Config, json_output: bool) -> Result<(), StartupError> {
    let core = app::build_core(config).await?;
    let rotated = core.keys.rotate(&AdminPrincipal::system(), &cli_context()).await;
    core.database.close().await;
    let key = rotated?;
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

/// `gatehouse master-key reseal`
async fn reseal(config: Config, json_output: bool) -> Result<(), StartupError> {
    let core = app::build_core(config).await?;
    let outcome = core
        .hierarchy
        .reseal(&mut |step| {
            let done = match step.outcome {
                ResealOutcome::Resealed => "resealed",
                ResealOutcome::AlreadyCurrent => "already under the current master key",
            };
            eprintln!("[{}/{}] {} v{}: {done}", step.index, step.total, step.purpose, step.version);
        })
        .await;
    core.database.close().await;
    let report = outcome.map_err(app::data_key_error)?;
    if json_output {
        println!("{}", json!(report));
    } else {
        println!(
            "{} data keys: {} resealed, {} already under master key {}; previous master keys can \
             now be removed from GATEHOUSE_PREVIOUS_MASTER_KEYS",
            report.total, report.resealed, report.already_current, report.master_key_id
        );
    }
    Ok(())
}

/// `gatehouse user create`
async fn create_user(
    config: Config,
    arguments: &CreateUser,
    json_output: bool,
) -> Result<(), StartupError> {
    let core = app::build_core(config).await?;
    let hashing = app::hashing_pool(&core.config, &core.data_keys)?;
    let accounts = core.accounts(hashing, core.tokens())?;
    let request = NewUserByAdmin {
        email: arguments.email.clone(),
        password: arguments.password.clone(),
        password_hash: arguments.password_hash.clone(),
        username: arguments.username.clone(),
        first_name: arguments.first_name.clone(),
        last_name: arguments.last_name.clone(),
        email_verified: arguments.verified,
        admin: arguments.admin,
    };
    let created =
        accounts.admin_users.create(&AdminPrincipal::system(), request, &cli_context()).await;
    core.database.close().await;
    let user = created.map_err(|error| StartupError::Rejected(describe_rejection(&error)))?;
    if json_output {
        println!("{}", json!({ "id": user.id, "email": user.email, "username": user.username }));
    } else {
        println!("created user {} ({})", user.id, user.email.unwrap_or_default());
    }
    Ok(())
}

/// `gatehouse user import`
async fn import_users(
    config: Config,
    arguments: &ImportUsers,
    json_output: bool,
) -> Result<(), StartupError> {
    let core = app::build_core(config).await?;
    let hashing = app::hashing_pool(&core.config, &core.data_keys)?;
    let accounts = core.accounts(hashing, core.tokens())?;
    let batch_size = arguments.batch_size.clamp(1, 10_000);
    let outcome = import_file(&accounts.admin_users, &arguments.file, batch_size).await;
    core.database.close().await;
    let (report, lines) = outcome?;
    if json_output {
        println!(
            "{}",
            json!({ "lines": lines, "imported": report.imported, "skipped": report.skipped, "invalid": report.invalid })
        );
    } else {
        println!(
            "{lines} lines: {} imported, {} skipped (email or username taken), {} invalid",
            report.imported,
            report.skipped,
            report.invalid.len()
        );
        for (line, problem) in report.invalid.iter().take(20) {
            println!("  line {line}: {problem}");
        }
    }
    Ok(())
}

/// `gatehouse client create`
async fn create_client(
    config: Config,
    arguments: &CreateClient,
    json_output: bool,
) -> Result<(), StartupError> {
    let jwks = match &arguments.jwks_file {
        Some(path) => Some(read_jwks(path)?),
        None => None,
    };
    let core = app::build_core(config).await?;
    let clients = core.clients();
    let request = NewClient {
        client_id: arguments.client_id.clone(),
        name: arguments.name.clone(),
        secret: arguments.secret.clone(),
        public: arguments.public,
        redirect_uris: arguments.redirect_uris.clone(),
        post_logout_redirect_uris: arguments.post_logout_redirect_uris.clone(),
        grant_types: arguments.grant_types.clone(),
        scopes: arguments.scopes.clone(),
        skip_consent: arguments.skip_consent,
        require_pushed_authorization_requests: arguments.require_par,
        dpop_bound_access_tokens: arguments.require_dpop,
        backchannel_logout_uri: arguments.backchannel_logout_uri.clone(),
        backchannel_logout_session_required: false,
        access_token_ttl_seconds: None,
        refresh_token_ttl_seconds: None,
        jwks,
    };
    let created = clients.create_client(&AdminPrincipal::system(), request, &cli_context()).await;
    core.database.close().await;
    let (client, secret) =
        created.map_err(|error| StartupError::Rejected(describe_rejection(&error)))?;
    if json_output {
        println!(
            "{}",
            json!({ "client_id": client.client_id, "client_secret": secret, "name": client.name })
        );
    } else {
        println!("client_id:     {}", client.client_id);
        match secret {
            Some(secret) => {
                println!("client_secret: {secret}\nStore the secret now: it is not shown again.")
            }
            None => println!("public client: no secret; use PKCE (S256)"),
        }
    }
    Ok(())
}

async fn create_registration_token(
    config: Config,
    name: &str,
    expires_in: Option<i64>,
    max_uses: Option<i64>,
    json_output: bool,
) -> Result<(), StartupError> {
    let core = app::build_core(config).await?;
    let clients = std::sync::Arc::new(core.clients());
    let registration = core.registration(&clients)?;
    let issued = registration
        .create_initial_token(&AdminPrincipal::system(), name, expires_in, max_uses, &cli_context())
        .await;
    core.database.close().await;
    let issued = issued.map_err(|error| StartupError::Rejected(describe_rejection(&error)))?;
    if json_output {
        println!(
            "{}",
            json!({ "id": issued.id, "token": issued.token, "max_uses": issued.max_uses,
                    "expires_at": issued.expires_at })
        );
    } else {
        println!("token:      {}", issued.token);
        println!("uses:       {}, until {} (Unix time)", issued.max_uses, issued.expires_at);
        println!("Give it to the client now: it is not shown again.");
    }
    Ok(())
}

async fn resource_server(
    config: Config,
    command: &ResourceServerCommand,
    json_output: bool,
) -> Result<(), StartupError> {
    let core = app::build_core(config).await?;
    let service = core.resource_servers();
    let admin = AdminPrincipal::system();
    let outcome = match command {
        ResourceServerCommand::Create {
            identifier,
            name,
            scopes,
            access_token_ttl,
            delegation_clients,
            impersonation_clients,
        } => {
            let request = NewResourceServer {
                identifier: identifier.clone(),
                name: name.clone(),
                scopes: scopes.clone(),
                token_format: None,
                access_token_ttl_seconds: *access_token_ttl,
                delegation_clients: delegation_clients.clone(),
                impersonation_clients: impersonation_clients.clone(),
            };
            service.create(&admin, request, &cli_context()).await.map(|record| vec![record])
        }
        ResourceServerCommand::List => {
            let mut all = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                match service.list(&admin, cursor.as_deref(), 100).await {
                    Ok((records, next)) => {
                        all.extend(records);
                        match next {
                            Some(next) => cursor = Some(next),
                            None => break Ok(all),
                        }
                    }
                    Err(error) => break Err(error),
                }
            }
        }
    };
    core.database.close().await;
    let records = outcome.map_err(|error| StartupError::Rejected(describe_rejection(&error)))?;
    for record in &records {
        if json_output {
            println!(
                "{}",
                json!({
                    "id": record.id,
                    "identifier": record.identifier,
                    "name": record.name,
                    "scopes": record.scopes,
                    "access_token_ttl_seconds": record.access_token_ttl_seconds,
                })
            );
        } else {
            let scopes =
                if record.scopes.is_empty() { "any".to_owned() } else { record.scopes.join(" ") };
            println!("{}  {}  {}  scopes: {scopes}", record.id, record.identifier, record.name);
        }
    }
    Ok(())
}

/// A client's JWK Set file, as JSON.
fn read_jwks(path: &Path) -> Result<serde_json::Value, StartupError> {
    let text = std::fs::read_to_string(path).map_err(|error| {
        StartupError::Rejected(format!("cannot read {}: {error}", path.display()))
    })?;
    serde_json::from_str(&text)
        .map_err(|error| StartupError::Rejected(format!("{} is not JSON: {error}", path.display())))
}

/// `gatehouse admin-key create`
async fn create_admin_key(
    config: Config,
    name: &str,
    json_output: bool,
) -> Result<(), StartupError> {
    let core = app::build_core(config).await?;
    let created = core.admin_keys().create(name, &cli_context()).await;
    core.database.close().await;
    let (key, secret) =
        created.map_err(|error| StartupError::Rejected(describe_rejection(&error)))?;
    if json_output {
        println!("{}", json!({ "id": key.id, "name": key.name, "key": secret }));
    } else {
        println!(
            "admin API key {} ({}):\n{secret}\nStore it now: it is not shown again.",
            key.id, key.name
        );
    }
    Ok(())
}

/// How many admin keys `admin-key list` reads per page.
const ADMIN_KEY_PAGE: u32 = 100;

/// `gatehouse admin-key list`
async fn list_admin_keys(config: Config, json_output: bool) -> Result<(), StartupError> {
    let core = app::build_core(config).await?;
    let admin_keys = core.admin_keys();
    let admin = AdminPrincipal::system();
    let mut keys: Vec<AdminKeyRecord> = Vec::new();
    let listed = loop {
        let after =
            keys.last().map(|last| ListCursor { created_at: last.created_at, id: last.id.clone() });
        match admin_keys.list(&admin, after.as_ref(), ADMIN_KEY_PAGE).await {
            Ok(page) => {
                let full = page.len() == ADMIN_KEY_PAGE as usize;
                keys.extend(page);
                if !full {
                    break Ok(());
                }
            }
            Err(error) => break Err(error),
        }
    };
    core.database.close().await;
    listed?;
    if json_output {
        println!("{}", json!({ "data": keys }));
    } else {
        println!("{:<30} {:<11} {:<11} {:<11} name", "id", "created", "last used", "revoked");
        let time = |at: Option<i64>| at.map_or_else(|| "-".to_owned(), |at| at.to_string());
        for key in keys {
            println!(
                "{:<30} {:<11} {:<11} {:<11} {}",
                key.id,
                key.created_at,
                time(key.last_used_at),
                time(key.revoked_at),
                key.name
            );
        }
    }
    Ok(())
}

/// `gatehouse admin-key revoke <id>`
async fn revoke_admin_key(config: Config, id: &str, json_output: bool) -> Result<(), StartupError> {
    let core = app::build_core(config).await?;
    let revoked = core.admin_keys().revoke(&AdminPrincipal::system(), id, &cli_context()).await;
    core.database.close().await;
    let revocation = revoked.map_err(|error| match error {
        DomainError::NotFound => {
            StartupError::Rejected(format!("no admin API key has the id {id}"))
        }
        other => StartupError::Domain(other),
    })?;
    let key = &revocation.key;
    if json_output {
        println!(
            "{}",
            json!({ "id": key.id, "name": key.name, "revoked_at": key.revoked_at, "already_revoked": revocation.already_revoked })
        );
    } else if revocation.already_revoked {
        println!(
            "admin API key {} ({}) was already revoked (at {}); nothing changed",
            key.id,
            key.name,
            key.revoked_at.unwrap_or_default()
        );
    } else {
        println!("revoked admin API key {} ({}): it no longer authenticates", key.id, key.name);
    }
    Ok(())
}

/// Reads the JSON Lines file in batches; `invalid` positions in the report are line numbers.
async fn import_file(
    admin_users: &AdminUserService,
    file: &Path,
    batch_size: usize,
) -> Result<(ImportReport, usize), StartupError> {
    use std::io::BufRead;
    let opened = std::fs::File::open(file).map_err(|error| {
        StartupError::Rejected(format!("cannot read {}: {error}", file.display()))
    })?;
    let file_bytes = opened.metadata().map(|meta| meta.len()).unwrap_or(0);
    let reader = std::io::BufReader::new(opened);
    let mut progress = Progress::new(file_bytes);
    let started = std::time::Instant::now();
    let mut total = ImportReport::default();
    let mut batch: Vec<ImportedUser> = Vec::with_capacity(batch_size);
    let mut batch_lines: Vec<usize> = Vec::with_capacity(batch_size);
    let mut lines = 0;
    let admin = AdminPrincipal::system();
    for line in reader.lines() {
        let line =
            line.map_err(|error| StartupError::Rejected(format!("{}: {error}", file.display())))?;
        lines += 1;
        progress.bytes += line.len() as u64 + 1;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<ImportedUser>(&line) {
            Ok(user) => {
                batch.push(user);
                batch_lines.push(lines);
            }
            Err(error) => total.invalid.push((lines, format!("not a user object: {error}"))),
        }
        if batch.len() == batch_size {
            flush_batch(admin_users, &admin, std::mem::take(&mut batch), &batch_lines, &mut total)
                .await?;
            batch_lines.clear();
            progress.show(total.imported, false);
        }
    }
    if !batch.is_empty() {
        flush_batch(admin_users, &admin, batch, &batch_lines, &mut total).await?;
    }
    progress.show(total.imported, true);
    eprintln!(
        "imported {} users from {lines} lines in {:.1} s",
        total.imported,
        started.elapsed().as_secs_f64()
    );
    total.invalid.sort_by_key(|(line, _)| *line);
    Ok((total, lines))
}

/// A progress bar on standard error for bulk imports: share of the file read, users imported,
/// rate. Redrawn at most five times a second.
struct Progress {
    total_bytes: u64,
    bytes: u64,
    started: std::time::Instant,
    drawn: Option<std::time::Instant>,
}

impl Progress {
    fn new(total_bytes: u64) -> Self {
        Self { total_bytes, bytes: 0, started: std::time::Instant::now(), drawn: None }
    }

    fn show(&mut self, imported: u64, last: bool) {
        const WIDTH: usize = 30;
        let now = std::time::Instant::now();
        if !last && self.drawn.is_some_and(|at| now.duration_since(at).as_millis() < 200) {
            return;
        }
        self.drawn = Some(now);
        let share = if last || self.total_bytes == 0 {
            1.0
        } else {
            (self.bytes as f64 / self.total_bytes as f64).min(1.0)
        };
        let filled = (share * WIDTH as f64).round() as usize;
        let seconds = self.started.elapsed().as_secs_f64();
        let rate = if seconds > 0.0 { imported as f64 / seconds } else { 0.0 };
        eprint!(
            "\r[{}{}] {:>3.0}% {imported} users, {rate:.0}/s, {seconds:.1} s{}",
            "#".repeat(filled),
            ".".repeat(WIDTH - filled),
            share * 100.0,
            if last { "\n" } else { "" }
        );
    }
}

async fn flush_batch(
    admin_users: &AdminUserService,
    admin: &AdminPrincipal,
    batch: Vec<ImportedUser>,
    batch_lines: &[usize],
    total: &mut ImportReport,
) -> Result<(), StartupError> {
    let report = admin_users
        .import(admin, batch, &cli_context())
        .await
        .map_err(|error| StartupError::Rejected(describe_rejection(&error)))?;
    total.imported += report.imported;
    total.skipped += report.skipped;
    total.invalid.extend(
        report
            .invalid
            .into_iter()
            .map(|(index, problem)| (batch_lines.get(index).copied().unwrap_or(0), problem)),
    );
    Ok(())
}

fn cli_context() -> RequestContext {
    RequestContext {
        ip: None,
        user_agent: Some(format!("gatehouse-cli/{}", env!("CARGO_PKG_VERSION"))),
        request_id: None,
        locale: None,
        dpop_jkt: None,
    }
}

/// A refused command's reason in words, with each field problem on its own line.
fn describe_rejection(error: &DomainError) -> String {
    let issues = match error {
        DomainError::Validation(issues) | DomainError::PasswordRejected { issues, .. } => {
            issues.as_slice()
        }
        _ => &[],
    };
    let mut text = format!("{} ({})", error, error.code());
    for issue in issues {
        text.push_str(&format!("\n  {}: {} — {}", issue.field, issue.code, issue.message));
    }
    text
}

pub fn print_version(json_output: bool) {
    let version = env!("CARGO_PKG_VERSION");
    if json_output {
        println!("{}", json!({ "version": version }));
    } else {
        println!("gatehouse {version}");
    }
}

async fn serve(mut config: Config, json_output: bool) -> Result<(), StartupError> {
    let address = config.http.addr.clone();
    // Bind first: with port 0 the default issuer must name the port actually bound.
    let listener = tokio::net::TcpListener::bind(&address).await.map_err(|error| {
        StartupError::Other(format!("cannot listen on {address} (GATEHOUSE_HTTP_ADDR): {error}"))
    })?;
    let bound = listener
        .local_addr()
        .map_err(|error| StartupError::Other(format!("cannot read the bound address: {error}")))?;
    // Without a configured issuer, on a loopback address, the URL (and so the issuer) names
    // `localhost` (the listener stays where it was bound): WebAuthn refuses IP addresses as
    // relying-party ids, so passkeys work out of the box in development.
    let url = if bound.ip().is_loopback() && config.issuer.is_none() {
        format!("http://localhost:{}", bound.port())
    } else {
        format!("http://{bound}")
    };
    if config.issuer.is_none() {
        config.issuer = Some(url.clone());
    }
    let issuer = config.issuer();
    let application = app::build(config).await?;
    if json_output {
        println!("{}", json!({ "event": "serving", "url": url, "issuer": issuer }));
    } else {
        println!(
            "Gatehouse is serving at {url} (issuer {issuer}, database {})",
            application.database.backend()
        );
    }
    tracing::info!(%url, %issuer, backend = %application.database.backend(), "serving");
    server::serve(application, listener, server::shutdown_signal()).await
}
