//! `berth`: a self-hosted container registry in one binary.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod backends;
mod backup;
mod cache_commands;
mod first_run;
mod fsck;
mod health_check;
mod identity_commands;
mod import;
mod instrumented;
mod jobs;
mod lifecycle_commands;
mod limits;
mod logging;
mod management;
mod observability;
mod progress;
mod quota_commands;
mod restore;
mod scrub;
mod serve;
mod sign_in_sources;
mod storage_gauges;
mod tag_commands;
mod telemetry;
mod webhook_commands;

#[derive(Parser)]
#[command(name = "berth", version, about = "A self-hosted OCI container registry", long_about = None)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// With no command, berth serves: `berth --data DIR` is `berth serve --data DIR`.
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the registry (the default when no command is given).
    Serve(ServeArgs),
    /// Apply pending database migrations and exit (`serve` also applies them on start).
    Migrate(ConfigArgs),
    /// Ask the local server whether it is alive (`/healthz`), for container health checks:
    /// exits 0 if it is, 1 otherwise.
    Health(ServeArgs),
    /// Work with configuration files.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Bring content from another registry's storage into berth.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Check that the database and the blob store agree: every blob's bytes are stored with
    /// the right size (and digest, with --verify-content), every manifest's references are
    /// held, and which stored blobs no record names. Changes nothing without --repair.
    /// Exits 1 if problems remain.
    Fsck {
        #[command(flatten)]
        config: ConfigArgs,
        /// Re-hash every blob's bytes and compare them with its digest.
        #[arg(long)]
        verify_content: bool,
        /// Do what is safe: quarantine blobs whose bytes do not match their digest, remove
        /// records of unreferenced blobs whose bytes are gone, re-link blobs a manifest needs
        /// when the store still holds their (verified) bytes. Says what it did.
        #[arg(long)]
        repair: bool,
        /// With --verify-content, read at most this many bytes per second (e.g. 50MiB).
        #[arg(long, value_parser = parse_rate)]
        rate: Option<u64>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Verify the blobs due for it once, as the scheduled scrub does, quarantining any whose
    /// bytes do not match their digest.
    Scrub {
        #[command(flatten)]
        config: ConfigArgs,
        /// Read at most this many bytes per second (e.g. 50MiB); unlimited by default.
        #[arg(long, value_parser = parse_rate)]
        rate: Option<u64>,
        /// Verify at most this many blobs.
        #[arg(long, default_value_t = u32::MAX)]
        limit: u32,
        /// Verify blobs last verified longer ago than this (e.g. 720h); 0s verifies all.
        #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
        older_than: std::time::Duration,
        #[arg(long)]
        json: bool,
    },
    /// Write a consistent backup of the database (while berth serves), the list of blobs it
    /// records and, with --blobs, copies of the blobs (only those DEST does not hold yet).
    Backup {
        /// The backup directory (created if needed).
        dest: PathBuf,
        #[command(flatten)]
        config: ConfigArgs,
        /// Also copy the blobs (incremental: blobs already in DEST are not copied again).
        #[arg(long)]
        blobs: bool,
        /// How to save a PostgreSQL database.
        #[arg(long, value_enum, default_value = "auto")]
        postgres_format: backup::PostgresFormat,
        #[arg(long)]
        json: bool,
    },
    /// Rebuild a registry from a backup into the configured database and blob store, then
    /// verify it. Exits 1 if anything is missing.
    Restore {
        /// The backup directory written by `berth backup`.
        source: PathBuf,
        #[command(flatten)]
        config: ConfigArgs,
        /// Replace an existing SQLite database (the old one is kept beside it).
        #[arg(long)]
        force: bool,
        /// Re-hash every restored blob.
        #[arg(long)]
        verify_content: bool,
        #[arg(long)]
        json: bool,
    },
    /// Manage users.
    User {
        #[command(subcommand)]
        command: identity_commands::UserCommand,
        #[command(flatten)]
        store: management::StoreArgs,
    },
    /// Manage teams (groups of users that policy rules can name).
    Team {
        #[command(subcommand)]
        command: identity_commands::TeamCommand,
        #[command(flatten)]
        store: management::StoreArgs,
    },
    /// Manage service accounts (for CI and deployments: tokens, no password).
    ServiceAccount {
        #[command(subcommand)]
        command: identity_commands::ServiceAccountCommand,
        #[command(flatten)]
        store: management::StoreArgs,
    },
    /// Manage access tokens of users and service accounts.
    Token {
        #[command(subcommand)]
        command: identity_commands::TokenCommand,
        #[command(flatten)]
        store: management::StoreArgs,
    },
    /// Manage access policy: who may pull, push and delete where.
    Policy {
        #[command(subcommand)]
        command: identity_commands::PolicyCommand,
        #[command(flatten)]
        store: management::StoreArgs,
    },
    /// Bring users from a registry:2 htpasswd file into berth.
    Htpasswd {
        #[command(subcommand)]
        command: identity_commands::HtpasswdCommand,
        #[command(flatten)]
        store: management::StoreArgs,
    },
    /// Collect garbage now (`berth gc [--dry-run]`, also while berth serves), or see runs
    /// (`berth gc status|runs|show ID`).
    Gc(lifecycle_commands::GcArgs),
    /// Retention rules (which tags to keep) and runs that untag the rest.
    Retention {
        #[command(subcommand)]
        command: lifecycle_commands::RetentionCommand,
        #[command(flatten)]
        store: management::StoreArgs,
    },
    /// Quotas: byte limits per namespace (or repository glob), each blob counted once.
    Quota {
        #[command(subcommand)]
        command: quota_commands::QuotaCommand,
        #[command(flatten)]
        store: management::StoreArgs,
    },
    /// Tag history (where deleted or moved tags pointed) and restores.
    Tag {
        #[command(subcommand)]
        command: tag_commands::TagCommand,
        #[command(flatten)]
        store: management::StoreArgs,
    },
    /// Bytes stored per namespace (each blob once) and the quotas (`--recompute`: repair).
    Usage(quota_commands::UsageArgs),
    /// Tag immutability rules: protected tags are never moved or deleted.
    ImmutableTags {
        #[command(subcommand)]
        command: lifecycle_commands::ImmutableTagsCommand,
        #[command(flatten)]
        store: management::StoreArgs,
    },
    /// Webhooks: list, test, delivery log, dead letters and replay.
    Webhook {
        #[command(subcommand)]
        command: webhook_commands::WebhookCommand,
        #[command(flatten)]
        store: management::StoreArgs,
    },
    /// Remote repositories (pull-through caches): list, show, add, set, remove.
    Remote {
        #[command(subcommand)]
        command: cache_commands::CacheCommand,
        #[command(flatten)]
        store: management::StoreArgs,
    },
    /// Virtual repositories (one name over locals and remotes): list, show, add, set, remove.
    Virtual {
        #[command(subcommand)]
        command: cache_commands::CacheCommand,
        #[command(flatten)]
        store: management::StoreArgs,
    },
    /// Read or prune the audit log of authentication and authorization decisions.
    Audit {
        #[command(subcommand)]
        command: identity_commands::AuditCommand,
        #[command(flatten)]
        store: management::StoreArgs,
    },
}

#[derive(Subcommand)]
enum ImportCommand {
    /// Index an official registry (registry:2) store: repositories, tags, manifests, blobs.
    /// When SOURCE is berth's own storage, no blob is copied. Safe to run again.
    RegistryV2 {
        /// The registry:2 root directory (the one holding docker/registry/v2), or
        /// s3://BUCKET/PREFIX, reached with berth's storage.s3 endpoint and credentials.
        source: String,
        /// berth's config file.
        #[arg(long, env = "BERTH_CONFIG")]
        config: Option<PathBuf>,
        /// berth's data directory (overrides storage.filesystem.rootdirectory).
        #[arg(long)]
        data: Option<PathBuf>,
    },
}

/// Where the configuration comes from, and the overrides every command accepts.
#[derive(clap::Args)]
struct ConfigArgs {
    /// A registry:2-style config.yml. Environment variables (REGISTRY_*, BERTH_*) override it.
    #[arg(env = "BERTH_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory: blobs and, unless database.url says otherwise, the SQLite database.
    /// Overrides storage.filesystem.rootdirectory.
    #[arg(long)]
    data: Option<PathBuf>,
}

#[derive(clap::Args)]
struct ServeArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Listen address such as ":5000" or "127.0.0.1:5000". Overrides http.addr.
    #[arg(long)]
    addr: Option<String>,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate a config file (with the environment applied) and explain every effective setting.
    Check {
        /// The config file to check.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    limits::return_large_allocations_to_the_os();
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve(cli.serve)) {
        Command::Serve(args) => serve::run(args),
        Command::Migrate(args) => migrate(args),
        Command::Health(args) => health(args),
        Command::Config(ConfigCommand::Check { file }) => check_config(&file),
        Command::Import(ImportCommand::RegistryV2 {
            source,
            config,
            data,
        }) => import_registry_v2(&source, ConfigArgs { config, data }),
        Command::Fsck {
            config,
            verify_content,
            repair,
            rate,
            json,
        } => run_fsck(
            config,
            fsck::Options {
                verify_content,
                repair,
                rate,
                quiet: json,
            },
            json,
        ),
        Command::Scrub {
            config,
            rate,
            limit,
            older_than,
            json,
        } => run_scrub(
            config,
            scrub::Settings {
                rate,
                reverify_after: older_than,
                max_blobs: limit,
            },
            json,
        ),
        Command::Backup {
            dest,
            config,
            blobs,
            postgres_format,
            json,
        } => run_backup(
            &dest,
            config,
            backup::Options {
                blobs,
                postgres_format,
                quiet: json,
            },
            json,
        ),
        Command::Restore {
            source,
            config,
            force,
            verify_content,
            json,
        } => run_restore(
            &source,
            config,
            restore::Options {
                force,
                verify_content,
                quiet: json,
            },
            json,
        ),
        Command::User { command, store } => {
            identity_commands::run(identity_commands::Command::User(command), store)
        }
        Command::Team { command, store } => {
            identity_commands::run(identity_commands::Command::Team(command), store)
        }
        Command::ServiceAccount { command, store } => {
            identity_commands::run(identity_commands::Command::ServiceAccount(command), store)
        }
        Command::Token { command, store } => {
            identity_commands::run(identity_commands::Command::Token(command), store)
        }
        Command::Policy { command, store } => {
            identity_commands::run(identity_commands::Command::Policy(command), store)
        }
        Command::Htpasswd { command, store } => {
            identity_commands::run(identity_commands::Command::Htpasswd(command), store)
        }
        Command::Gc(args) => lifecycle_commands::run(args),
        Command::Retention { command, store } => lifecycle_commands::retention(command, store),
        Command::Quota { command, store } => quota_commands::quota(command, store),
        Command::Usage(args) => quota_commands::usage(args),
        Command::Tag { command, store } => tag_commands::tag(command, store),
        Command::ImmutableTags { command, store } => {
            lifecycle_commands::immutable_tags(command, store)
        }
        Command::Audit { command, store } => {
            identity_commands::run(identity_commands::Command::Audit(command), store)
        }
        Command::Webhook { command, store } => webhook_commands::run(command, store),
        Command::Remote { command, store } => {
            cache_commands::run(berth_cache::catalog::Kind::Remote, command, store)
        }
        Command::Virtual { command, store } => {
            cache_commands::run(berth_cache::catalog::Kind::Virtual, command, store)
        }
    }
}

/// Loads the configuration (file, then environment, then command-line overrides), or says
/// what is wrong with it.
fn load_config(args: &ConfigArgs, addr: Option<&str>) -> Result<berth_config::Loaded, ExitCode> {
    let mut loaded =
        berth_config::load(args.config.as_deref(), std::env::vars()).map_err(|err| {
            eprintln!("berth: invalid configuration\n{err}");
            ExitCode::from(2)
        })?;
    if let Some(data) = &args.data {
        loaded.config.storage.filesystem.rootdirectory = data.clone();
    }
    if let Some(addr) = addr {
        loaded.config.http.addr = addr.parse().map_err(|e| {
            eprintln!("berth: --addr: {e}");
            ExitCode::from(2)
        })?;
    }
    Ok(loaded)
}

/// Runs `work` on a fresh runtime with logging configured, turning its error into exit 1.
fn run_with_runtime<F>(loaded: &berth_config::Loaded, work: F) -> ExitCode
where
    F: std::future::Future<Output = Result<(), String>>,
{
    let _telemetry = logging::init(&loaded.config.log);
    for warning in &loaded.warnings {
        tracing::warn!("configuration: {warning}");
    }
    match block_on(work) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `work` to completion on a fresh multi-threaded runtime.
fn block_on<F: std::future::Future>(work: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the tokio runtime starts")
        .block_on(work)
}

fn migrate(args: ConfigArgs) -> ExitCode {
    let loaded = match load_config(&args, None) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let config = loaded.config.clone();
    run_with_runtime(&loaded, async move {
        backends::open_database(&config).await?;
        tracing::info!(database = %config.redacted_database_url(), "migrations applied");
        Ok(())
    })
}

fn import_registry_v2(source: &str, args: ConfigArgs) -> ExitCode {
    let loaded = match load_config(&args, None) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let config = loaded.config.clone();
    let source = import::Source::parse(source);
    run_with_runtime(&loaded, async move {
        let registry = berth_registry::Registry::new(
            backends::open_blob_store(&config)?,
            backends::open_database(&config).await?.meta,
            // An import is an administrator's write, whatever the serving mode.
            berth_registry::Settings::default(),
        );
        let report = import::import_registry_v2(&source, &config, &registry).await?;
        println!(
            "imported {} repositories: {} blobs ({} copied), {} manifests, {} tags",
            report.repositories, report.blobs, report.blobs_copied, report.manifests, report.tags
        );
        if report.problems.is_empty() {
            Ok(())
        } else {
            for problem in &report.problems {
                println!("not imported: {problem}");
            }
            Err(format!(
                "{} items could not be imported (listed above)",
                report.problems.len()
            ))
        }
    })
}

/// Runs a maintenance command (fsck, scrub, backup, restore) on a fresh runtime: its report
/// goes to standard output, progress and warnings to standard error, an error ends it with
/// exit status 1.
fn run_operation<F>(loaded: &berth_config::Loaded, work: F) -> ExitCode
where
    F: std::future::Future<Output = Result<(), String>>,
{
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::WARN)
        .init();
    for warning in &loaded.warnings {
        eprintln!("berth: configuration: {warning}");
    }
    match block_on(work) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("berth: {message}");
            ExitCode::FAILURE
        }
    }
}

/// A byte rate such as `50MiB` or `1048576` (per second).
fn parse_rate(text: &str) -> Result<u64, String> {
    match berth_config::parse_byte_size(text.trim_end_matches("/s"))? {
        0 => Err("the rate must be greater than 0".into()),
        rate => Ok(rate),
    }
}

/// Prints a report as JSON, or as text for people.
fn report<T: serde::Serialize>(value: &T, json: bool, text: impl FnOnce(&T)) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(value).expect("reports serialize")
        );
    } else {
        text(value);
    }
}

/// The database and a blob store that streams (never redirects) reads.
async fn open_for_maintenance(
    config: &berth_config::Config,
) -> Result<
    (
        backends::Database,
        std::sync::Arc<dyn berth_storage::BlobStore>,
    ),
    String,
> {
    let database = backends::open_database(config).await?;
    let store = backends::open_blob_store(config)?;
    Ok((database, store))
}

/// Loads the configuration and runs a maintenance command on it (see [`run_operation`]).
fn maintenance<F, Fut>(args: &ConfigArgs, work: F) -> ExitCode
where
    F: FnOnce(berth_config::Config) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let loaded = match load_config(args, None) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let config = loaded.config.clone();
    run_operation(&loaded, work(config))
}

fn run_fsck(args: ConfigArgs, options: fsck::Options, json: bool) -> ExitCode {
    maintenance(&args, |config| async move {
        let (database, store) = open_for_maintenance(&config).await?;
        let result = fsck::run(&database.meta, &database.inventory, &store, &options).await?;
        report(&result, json, fsck::Report::print);
        match result.remaining() {
            0 => Ok(()),
            remaining => Err(format!("fsck: {remaining} problems remain")),
        }
    })
}

fn run_scrub(args: ConfigArgs, settings: scrub::Settings, json: bool) -> ExitCode {
    maintenance(&args, |config| async move {
        let (database, store) = open_for_maintenance(&config).await?;
        let watch = progress::Printed::new("scrub", json);
        let summary = scrub::run(&database.inventory, &store, &settings, &watch).await?;
        report(&summary, json, scrub::Summary::print);
        if summary.quarantined.is_empty() && summary.missing.is_empty() {
            Ok(())
        } else {
            Err("scrub: problems found (listed above)".into())
        }
    })
}

fn run_backup(dest: &Path, args: ConfigArgs, options: backup::Options, json: bool) -> ExitCode {
    let dest = dest.to_path_buf();
    maintenance(&args, |config| async move {
        let (database, store) = open_for_maintenance(&config).await?;
        let summary = backup::run(&config, &database, &store, &dest, &options).await?;
        report(&summary, json, |s| s.print(&dest));
        if summary.not_copied.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "backup: {} blobs could not be copied (listed above)",
                summary.not_copied.len()
            ))
        }
    })
}

fn run_restore(source: &Path, args: ConfigArgs, options: restore::Options, json: bool) -> ExitCode {
    let source = source.to_path_buf();
    maintenance(&args, |config| async move {
        let info = backup::read_info(&source)?;
        restore::restore_database(&config, &source, &info, options.force).await?;
        let (database, store) = open_for_maintenance(&config).await?;
        let summary =
            restore::restore_blobs(&database.inventory, &store, &source, &info, &options).await?;
        report(&summary, json, restore::Summary::print);
        if summary.problems.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "restore: {} problems (listed above)",
                summary.problems.len()
            ))
        }
    })
}

fn health(args: ServeArgs) -> ExitCode {
    let loaded = match load_config(&args.config, args.addr.as_deref()) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("the tokio runtime starts");
    match runtime.block_on(health_check::check(&loaded.config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("berth: unhealthy: {why}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(file: &Path) -> ExitCode {
    match berth_config::load(Some(file), std::env::vars()) {
        Ok(loaded) => {
            print!("{}", berth_config::explain(&loaded));
            println!("\n{}: valid", file.display());
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("{}: invalid configuration\n{err}", file.display());
            ExitCode::from(2)
        }
    }
}
