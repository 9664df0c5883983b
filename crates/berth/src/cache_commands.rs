//! `berth remote ...` and `berth virtual ...`: remote and virtual repositories from the
//! command line, straight against the database through the same `CacheAdmin` as the admin
//! API and the dashboard (acting as the operator), reading the same stored definitions:
//! list and show them all, add, change and remove those stored in the database (those of
//! the configuration file change only there). A running berth mounts a change within a few
//! seconds (the `cache-definitions` job).

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use berth_auth::admin::Administration;
use berth_cache::admin::{CacheAdmin, CacheView, definition_from_texts};
use berth_cache::catalog::{Caches, Kind};
use berth_registry::Registry;
use clap::Subcommand;
use serde_json::Value;

use crate::backends;
use crate::management::{CommandError, Context, Output, StoreArgs, run_management, table, value};

#[derive(Subcommand)]
pub enum CacheCommand {
    /// List them all (the configuration file's too), remotes with their counters.
    List,
    /// Show one: its settings, status and, for one stored in the database, its definition.
    Show { name: String },
    /// Add one from its configuration keys as KEY=VALUE, the keys of `remotes.<name>` or
    /// `virtuals.<name>` in the configuration file (lists comma-separated), e.g.
    /// `berth remote add hub prefix=hub urls=https://registry-1.docker.io revalidateafter=10m`.
    Add {
        name: String,
        #[arg(value_name = "KEY=VALUE", required = true)]
        settings: Vec<String>,
        /// Read the upstream password (a remote's `password`) from standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Change one stored in the database: the KEY=VALUE given replace those keys, `KEY=`
    /// unsets one, the others stay (the password too, while the user name stays).
    Set {
        name: String,
        #[arg(value_name = "KEY=VALUE", required = true)]
        settings: Vec<String>,
        /// Read the upstream password (a remote's `password`) from standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Remove one stored in the database; what a remote cached stays (ordinary content).
    Remove { name: String },
}

pub fn run(kind: Kind, command: CacheCommand, store: StoreArgs) -> ExitCode {
    run_management(store, move |context| execute(kind, command, context))
}

async fn execute(
    kind: Kind,
    command: CacheCommand,
    context: Context,
) -> Result<Output, CommandError> {
    let Context {
        config,
        database,
        admin,
        actor,
    } = context;
    let admin = cache_admin(&config, &database, admin)?;
    let actor = &actor;
    Ok(match command {
        CacheCommand::List => {
            let views: Vec<CacheView> = admin
                .list()
                .await?
                .into_iter()
                .filter(|v| v.kind() != other(kind))
                .map(without_status)
                .collect();
            let text = list_text(kind, &views);
            value(&views, text)
        }
        CacheCommand::Show { name } => {
            let view = without_status(admin.get(kind, &name).await?);
            let text = format!(
                "{}\n",
                serde_json::to_string_pretty(&view).expect("views serialise")
            );
            value(&view, text)
        }
        CacheCommand::Add {
            name,
            settings,
            password_stdin,
        } => {
            let definition = read_settings(kind, &settings, password_stdin, None)?;
            let view = admin.put(actor, kind, &name, definition, true).await?;
            value(&view, format!("added the {} {name}\n", kind.as_str()))
        }
        CacheCommand::Set {
            name,
            settings,
            password_stdin,
        } => {
            let stored = admin.get(kind, &name).await?.definition;
            let definition = read_settings(kind, &settings, password_stdin, stored)?;
            let view = admin.put(actor, kind, &name, definition, false).await?;
            value(&view, format!("changed the {} {name}\n", kind.as_str()))
        }
        CacheCommand::Remove { name } => {
            admin.delete(actor, kind, &name).await?;
            Output::Message(format!("removed the {} {name}", kind.as_str()))
        }
    })
}

/// The same `CacheAdmin` a serving berth builds, over the configuration and the database
/// the command names.
fn cache_admin(
    config: &berth_config::Config,
    database: &backends::Database,
    admin: Administration,
) -> Result<CacheAdmin, CommandError> {
    let registry = Arc::new(Registry::new(
        backends::open_blob_store(config)?,
        Arc::clone(&database.meta),
        berth_registry::Settings {
            delete_enabled: config.storage.delete.enabled,
            read_only: config.storage.maintenance.readonly.enabled,
        },
    ));
    let caches = Caches::new(
        config,
        &registry,
        berth_cache::Shared {
            store: Arc::clone(&database.meta) as Arc<dyn berth_meta::CacheStore>,
            // The command line downloads nothing.
            leases: None,
            holder: crate::lifecycle_commands::holder("cli"),
        },
    )?;
    Ok(CacheAdmin::new(Arc::new(caches), admin))
}

/// The definition `KEY=VALUE` texts give, over `stored` (a change keeps the keys it does
/// not name; `KEY=` removes one).
fn read_settings(
    kind: Kind,
    settings: &[String],
    password_stdin: bool,
    stored: Option<Value>,
) -> Result<Value, CommandError> {
    let mut pairs = Vec::new();
    for setting in settings {
        let (key, text) = setting.split_once('=').ok_or_else(|| {
            CommandError::Usage(format!("{setting:?}: expected KEY=VALUE (e.g. prefix=hub)"))
        })?;
        if key == "password" {
            return Err(CommandError::Usage(
                "the password is not taken from the command line (other users can see it): use --password-stdin"
                    .into(),
            ));
        }
        pairs.push((key.trim().to_string(), text.to_string()));
    }
    if password_stdin {
        if kind != Kind::Remote {
            return Err(CommandError::Usage(
                "--password-stdin: only a remote has an upstream password".into(),
            ));
        }
        pairs.push(("password".into(), read_password()?));
    }
    let mut definition = match stored {
        Some(Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    for (key, _) in pairs.iter().filter(|(_, text)| text.trim().is_empty()) {
        definition.remove(key);
    }
    definition.extend(definition_from_texts(
        kind,
        pairs.iter().map(|(k, t)| (k.as_str(), t.as_str())),
    )?);
    Ok(Value::Object(definition))
}

fn read_password() -> Result<String, CommandError> {
    if std::io::stdin().is_terminal() {
        eprint!("upstream password: ");
    }
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).map_err(|e| {
        CommandError::Usage(format!("reading the password from standard input: {e}"))
    })?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// A view without the remote's counters: this process's are all zero (the serving
/// instances' are in the admin API and the metrics).
fn without_status(mut view: CacheView) -> CacheView {
    if let Some(description) = view.description.as_object_mut() {
        description.remove("status");
    }
    view
}

fn other(kind: Kind) -> &'static str {
    match kind {
        Kind::Remote => "virtual",
        Kind::Virtual => "remote",
    }
}

fn list_text(kind: Kind, views: &[CacheView]) -> String {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(","),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    match kind {
        Kind::Remote => table(
            &["NAME", "PREFIX", "SOURCE", "UPSTREAM", "REVALIDATE AFTER"],
            views
                .iter()
                .map(|v| {
                    let d = &v.description;
                    vec![
                        v.name().to_string(),
                        text(&d["prefix"]),
                        v.source.to_string(),
                        text(&d["urls"]),
                        format!("{}s", text(&d["revalidate_after_seconds"])),
                    ]
                })
                .collect(),
        ),
        Kind::Virtual => table(
            &["NAME", "PREFIX", "SOURCE", "MEMBERS", "DEPLOY"],
            views
                .iter()
                .map(|v| {
                    let d = &v.description;
                    vec![
                        v.name().to_string(),
                        text(&d["prefix"]),
                        v.source.to_string(),
                        text(&d["members"]),
                        text(&d["deploy"]),
                    ]
                })
                .collect(),
        ),
    }
}
