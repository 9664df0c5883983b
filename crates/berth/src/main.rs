//! `berth`: a self-hosted container registry in one binary.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod logging;
mod serve;

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
    /// Work with configuration files.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// A registry:2-style config.yml. Environment variables (REGISTRY_*, BERTH_*) override it.
    #[arg(env = "BERTH_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory: blobs and, unless database.url says otherwise, the SQLite database.
    /// Overrides storage.filesystem.rootdirectory.
    #[arg(long)]
    data: Option<PathBuf>,
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
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve(cli.serve)) {
        Command::Serve(args) => serve::run(args),
        Command::Config(ConfigCommand::Check { file }) => check_config(&file),
    }
}

fn check_config(file: &std::path::Path) -> ExitCode {
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
