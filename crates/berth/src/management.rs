//! What every management command (`berth user|team|token|policy|tag|quota|remote|webhook|gc
//! ...`) shares: where the database is (`StoreArgs`), the operator acting (`cli:<login name>`
//! in the audit log), the configuration and database a command opens, and how its output is
//! printed (a message, or a value as a table or as JSON with `--json`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use berth_auth::admin::{Actor, AdminError, Administration};
use clap::Args;
use serde::Serialize;

use crate::{ConfigArgs, backends};

/// Where the database is: the same configuration `berth serve` reads.
#[derive(Args, Clone)]
pub struct StoreArgs {
    /// berth's config file.
    #[arg(long, env = "BERTH_CONFIG", global = true)]
    pub(crate) config: Option<PathBuf>,
    /// berth's data directory (where the SQLite database is, unless database.url says otherwise).
    #[arg(long, global = true)]
    pub(crate) data: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

/// The operator at the command line, as the audit log names them: `$USER`, `$LOGNAME`, or
/// the account of the process's user id (containers often set neither variable).
pub(crate) fn operator() -> Actor {
    let login = ["USER", "LOGNAME"]
        .iter()
        .filter_map(|name| std::env::var(name).ok())
        .find(|login| !login.is_empty())
        .unwrap_or_else(account_name);
    Actor::Cli { login }
}

fn account_name() -> String {
    // SAFETY: getuid cannot fail; getpwuid_r writes only into the buffers it is given, and
    // `pw_name` points into `buffer` when it succeeds.
    unsafe {
        let uid = libc::getuid();
        let mut entry: libc::passwd = std::mem::zeroed();
        let mut buffer = vec![0 as libc::c_char; 4096];
        let mut found = std::ptr::null_mut();
        let status = libc::getpwuid_r(
            uid,
            &mut entry,
            buffer.as_mut_ptr(),
            buffer.len(),
            &mut found,
        );
        if status == 0 && !found.is_null() && !entry.pw_name.is_null() {
            std::ffi::CStr::from_ptr(entry.pw_name)
                .to_string_lossy()
                .into_owned()
        } else {
            format!("uid {uid}")
        }
    }
}

/// What a command prints: a message, or a value shown as a table or JSON.
pub(crate) enum Output {
    Message(String),
    Value {
        json: serde_json::Value,
        text: String,
    },
}

pub(crate) fn value<T: Serialize>(item: &T, text: String) -> Output {
    Output::Value {
        json: serde_json::to_value(item).expect("admin views serialise"),
        text,
    }
}

/// Columns padded to their widest cell.
pub(crate) fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut out = String::new();
        for (i, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}  "));
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        out.push_str(&line(row));
    }
    out
}

/// What a management command works with: the configuration, the database, the
/// administration layer and the operator acting.
pub(crate) struct Context {
    pub config: berth_config::Config,
    pub database: backends::Database,
    pub admin: Administration,
    pub actor: Actor,
}

/// The configuration a command-line command works with (its warnings printed), with
/// logging to standard error: warnings (an audit entry that could not be written) go there;
/// standard output is the command's own.
pub(crate) fn command_config(store: &StoreArgs) -> Result<berth_config::Config, ExitCode> {
    let loaded = crate::load_config(
        &ConfigArgs {
            config: store.config.clone(),
            data: store.data.clone(),
        },
        None,
    )?;
    for warning in &loaded.warnings {
        eprintln!("berth: configuration: {warning}");
    }
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn,sqlx=error"))
        .without_time()
        .with_target(false)
        .try_init();
    Ok(loaded.config)
}

/// Runs one management command against the database the configuration names and prints
/// its output (a table, or JSON with `--json`); any failure is a message and exit 1.
pub(crate) fn run_management<F, Fut>(store: StoreArgs, work: F) -> ExitCode
where
    F: FnOnce(Context) -> Fut,
    Fut: std::future::Future<Output = Result<Output, CommandError>>,
{
    let config = match command_config(&store) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("the tokio runtime starts");
    let result = runtime.block_on(async {
        let database = backends::open_database(&config).await?;
        let admin = Administration::new(Arc::clone(&database.identity));
        work(Context {
            config: config.clone(),
            database,
            admin,
            actor: operator(),
        })
        .await
        .map_err(|e| e.to_string())
    });
    match result {
        Ok(Output::Message(message)) => {
            if store.json {
                println!("{}", serde_json::json!({ "message": message }));
            } else {
                println!("{message}");
            }
            ExitCode::SUCCESS
        }
        Ok(Output::Value { json, text }) => {
            if store.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json).expect("JSON values print")
                );
            } else {
                print!("{text}");
            }
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("berth: {message}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum CommandError {
    #[error(transparent)]
    Admin(#[from] AdminError),
    #[error("{0}")]
    Usage(String),
}

impl From<String> for CommandError {
    fn from(message: String) -> Self {
        CommandError::Usage(message)
    }
}
