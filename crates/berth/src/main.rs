//! `berth`: a self-hosted container registry in one binary.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod backends;
mod first_run;
mod health_check;
mod identity_commands;
mod import;
mod instrumented;
mod jobs;
mod lifecycle_commands;
mod limits;
mod logging;
mod observability;
mod serve;
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
    /// Manage users.
    User {
        #[command(subcommand)]
        command: identity_commands::UserCommand,
        #[command(flatten)]
        store: identity_commands::StoreArgs,
    },
    /// Manage teams (groups of users that policy rules can name).
    Team {
        #[command(subcommand)]
        command: identity_commands::TeamCommand,
        #[command(flatten)]
        store: identity_commands::StoreArgs,
    },
    /// Manage service accounts (for CI and deployments: tokens, no password).
    ServiceAccount {
        #[command(subcommand)]
        command: identity_commands::ServiceAccountCommand,
        #[command(flatten)]
        store: identity_commands::StoreArgs,
    },
    /// Manage access tokens of users and service accounts.
    Token {
        #[command(subcommand)]
        command: identity_commands::TokenCommand,
        #[command(flatten)]
        store: identity_commands::StoreArgs,
    },
    /// Manage access policy: who may pull, push and delete where.
    Policy {
        #[command(subcommand)]
        command: identity_commands::PolicyCommand,
        #[command(flatten)]
        store: identity_commands::StoreArgs,
    },
    /// Bring users from a registry:2 htpasswd file into berth.
    Htpasswd {
        #[command(subcommand)]
        command: identity_commands::HtpasswdCommand,
        #[command(flatten)]
        store: identity_commands::StoreArgs,
    },
    /// Collect garbage now (`berth gc [--dry-run]`, also while berth serves), or see runs
    /// (`berth gc status|runs|show ID`).
    Gc(lifecycle_commands::GcArgs),
    /// Webhooks: list, test, delivery log, dead letters and replay.
    Webhook {
        #[command(subcommand)]
        command: webhook_commands::WebhookCommand,
        #[command(flatten)]
        store: identity_commands::StoreArgs,
    },
    /// Read or prune the audit log of authentication and authorization decisions.
    Audit {
        #[command(subcommand)]
        command: identity_commands::AuditCommand,
        #[command(flatten)]
        store: identity_commands::StoreArgs,
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
        Command::Audit { command, store } => {
            identity_commands::run(identity_commands::Command::Audit(command), store)
        }
        Command::Webhook { command, store } => webhook_commands::run(command, store),
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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the tokio runtime starts");
    match runtime.block_on(work) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            ExitCode::FAILURE
        }
    }
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
