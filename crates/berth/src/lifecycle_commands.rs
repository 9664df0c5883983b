//! `berth gc ...`, `berth immutable-tags ...` and `berth retention ...`: lifecycle management from the command line, straight against the database
//! and storage the configuration names, through [`Lifecycle`] (the same write path as the
//! admin API, acting as `cli:<login name>`). It works while berth serves: on PostgreSQL
//! and on SQLite alike, where this is a second process on the same database file.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use berth_config::Config;
use berth_lifecycle::{
    GcRunView, ImmutableTagRuleView, Lifecycle, LifecycleError, NewImmutableTagRule,
    NewRetentionRule,
};
use berth_meta::{Keep, RetentionRule};
use berth_oci::TagPattern;
use berth_registry::Registry;
use berth_registry::gc::{GcMode, GcObserver, GcReport, GcSettings, human_bytes};
use clap::{Args, Subcommand};

use crate::backends;
use crate::management::{StoreArgs, command_config, operator};

/// How long garbage collection waits between marking blobs and deleting their bytes, so
/// that a push racing the mark cancels it rather than being refused.
const GC_FENCE: Duration = Duration::from_secs(2);

/// What garbage collection does, from the configuration.
pub fn gc_settings(config: &Config) -> GcSettings {
    GcSettings {
        grace: config.gc.grace,
        untagged: config.gc.untagged.age(),
        upload_age: config.storage.maintenance.uploadpurging.age,
        fence: GC_FENCE,
        tag_history: config.retention.taghistory,
    }
}

/// Lifecycle management over this process's registry and database.
pub fn open(
    config: &Config,
    registry: &Arc<Registry>,
    database: &backends::Database,
    holder: String,
) -> Arc<Lifecycle> {
    Arc::new(
        Lifecycle::new(
            Arc::clone(registry),
            Arc::clone(&database.meta),
            Arc::clone(&database.leases),
            Arc::clone(&database.identity),
            gc_settings(config),
            holder,
        )
        .with_configured_retention(configured_retention(config)),
    )
}

/// The configuration file's `retention.rules` as rules (validated when it was loaded); the
/// first is -1, the second -2, ...
fn configured_retention(config: &Config) -> Vec<RetentionRule> {
    let millis = |d: Option<Duration>| d.map(|d| d.as_millis().min(i64::MAX as u128) as i64);
    config
        .retention
        .rules
        .iter()
        .zip(1i64..)
        .filter_map(|(rule, n)| {
            Some(RetentionRule {
                id: -n,
                repositories: rule.repositories.clone()?,
                keep: Keep {
                    keep_last_pushed: rule.keeplastpushed,
                    keep_last_pulled: rule.keeplastpulled,
                    keep_tags: rule
                        .keeptags
                        .iter()
                        .filter_map(|glob| TagPattern::parse(glob).ok())
                        .collect(),
                    keep_tags_regex: rule.keeptagsregex.clone(),
                    keep_pushed_within: millis(rule.keeppushedwithin),
                    keep_pulled_within: millis(rule.keeppulledwithin),
                },
                created_at: 0,
                created_by: format!("config:retention.rules[{}]", n - 1),
            })
        })
        .collect()
}

/// This process, as leases and run records name it.
pub fn holder(role: &str) -> String {
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string());
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    format!("{role}:{hostname}:{}:{}", std::process::id(), &nonce[..8])
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct GcArgs {
    #[command(subcommand)]
    command: Option<GcCommand>,
    /// Report what a collection would free, changing nothing at all.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Subcommand)]
enum GcCommand {
    /// Where garbage collection stands: a run in progress, the last run, pending deletions.
    Status,
    /// Recorded runs, newest first.
    Runs {
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// One run's record: what it freed, per repository.
    Show { id: i64 },
}

/// Prints progress on standard error (standard output is the summary's) and stops the run
/// at a safe point on Ctrl-C.
struct Terminal {
    stop: Arc<AtomicBool>,
    tty: bool,
}

impl GcObserver for Terminal {
    fn progress(&self, report: &GcReport) {
        let line = format!(
            "[{}] {} marked, {} blobs ({}) deleted, {} untagged manifests",
            report.phase,
            report.marked,
            report.blobs,
            human_bytes(report.bytes),
            report.manifests
        );
        if self.tty {
            eprint!("\r\x1b[2K{line}");
        } else {
            eprintln!("{line}");
        }
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

pub fn run(args: GcArgs) -> ExitCode {
    let GcArgs {
        command,
        dry_run,
        store,
    } = args;
    let json = store.json;
    with_lifecycle(store, move |lifecycle| async move {
        match command {
            None => collect(&lifecycle, dry_run, json).await,
            Some(GcCommand::Status) => {
                let status = lifecycle.gc_status().await.map_err(|e| e.to_string())?;
                if json {
                    print_json(&status);
                } else {
                    match &status.running {
                        Some(run) => println!("running: {}", describe(run)),
                        None => println!("running: no"),
                    }
                    match &status.last {
                        Some(run) => println!("last: {}", describe(run)),
                        None => println!("last: never"),
                    }
                    println!(
                        "pending deletions: {} ({})",
                        status.pending_deletions,
                        human_bytes(status.pending_bytes)
                    );
                }
                Ok(())
            }
            Some(GcCommand::Runs { limit }) => {
                let runs = lifecycle
                    .gc_runs(None, limit)
                    .await
                    .map_err(|e| e.to_string())?;
                if json {
                    print_json(&runs);
                } else {
                    for run in &runs {
                        println!("{}", describe(run));
                    }
                }
                Ok(())
            }
            Some(GcCommand::Show { id }) => {
                let run = lifecycle.gc_run(id).await.map_err(|e| e.to_string())?;
                if json {
                    print_json(&run);
                } else {
                    println!("{}", describe(&run));
                    if let Some(report) = run.report.as_ref().or(run.progress.as_ref()) {
                        print_repositories(report);
                    }
                }
                Ok(())
            }
        }
    })
}

#[derive(Subcommand)]
pub enum ImmutableTagsCommand {
    /// The rules, oldest first.
    List,
    /// Protect the tags matching TAGS (a glob: `v*`) in the repositories matching
    /// REPOSITORIES (`library/**`) from being moved or deleted.
    Add { repositories: String, tags: String },
    /// Remove rule ID: its tags can be moved and deleted again.
    Remove { id: i64 },
}

/// `berth immutable-tags ...`.
pub fn immutable_tags(command: ImmutableTagsCommand, store: StoreArgs) -> ExitCode {
    let json = store.json;
    let print = move |rules: &[ImmutableTagRuleView]| {
        if json {
            print_json(&rules);
        } else {
            for rule in rules {
                println!(
                    "{}\t{}:{}\tadded {} by {}",
                    rule.id, rule.repositories, rule.tags, rule.created_at, rule.created_by
                );
            }
        }
    };
    with_lifecycle(store, move |lifecycle| async move {
        let shown = match command {
            ImmutableTagsCommand::List => lifecycle.immutable_tag_rules().await,
            ImmutableTagsCommand::Add { repositories, tags } => lifecycle
                .add_immutable_tag_rule(&operator(), &NewImmutableTagRule { repositories, tags })
                .await
                .map(|rule| vec![rule]),
            ImmutableTagsCommand::Remove { id } => lifecycle
                .remove_immutable_tag_rule(&operator(), id)
                .await
                .map(|rule| vec![rule]),
        };
        print(&shown.map_err(|e| e.to_string())?);
        Ok(())
    })
}

#[derive(Subcommand)]
pub enum RetentionCommand {
    /// The rules, oldest first.
    List,
    /// Add a rule: in the repositories matching REPOSITORIES (`ci/**`), keep the tags any
    /// criterion names; a run untags the others (unless another rule keeps them).
    Add {
        repositories: String,
        /// Keep the N most recently pushed tags.
        #[arg(long)]
        keep_last_pushed: Option<u32>,
        /// Keep the N most recently pulled tags.
        #[arg(long)]
        keep_last_pulled: Option<u32>,
        /// Keep tags matching this glob (`v*`); may be given several times.
        #[arg(long = "keep-tag")]
        keep_tags: Vec<String>,
        /// Keep tags matching this regular expression (`^v[0-9]+$`); may be given several
        /// times.
        #[arg(long = "keep-tag-regex")]
        keep_tags_regex: Vec<String>,
        /// Keep tags pushed within this time (`30d`).
        #[arg(long)]
        keep_pushed_within: Option<String>,
        /// Keep tags pulled within this time (`90d`).
        #[arg(long)]
        keep_pulled_within: Option<String>,
    },
    /// Remove rule ID (the configuration file's rules, with negative ids, are changed there).
    Remove {
        #[arg(allow_negative_numbers = true)]
        id: i64,
    },
    /// Apply the rules now: untag what they do not keep (`--dry-run`: list it, change nothing).
    Run {
        #[arg(long)]
        dry_run: bool,
    },
}

/// `berth retention ...`.
pub fn retention(command: RetentionCommand, store: StoreArgs) -> ExitCode {
    let json = store.json;
    with_lifecycle(store, move |lifecycle| async move {
        let rules = match command {
            RetentionCommand::List => lifecycle.retention_rules().await,
            RetentionCommand::Add {
                repositories,
                keep_last_pushed,
                keep_last_pulled,
                keep_tags,
                keep_tags_regex,
                keep_pushed_within,
                keep_pulled_within,
            } => {
                let rule = NewRetentionRule {
                    repositories,
                    keep_last_pushed,
                    keep_last_pulled,
                    keep_tags,
                    keep_tags_regex,
                    keep_pushed_within,
                    keep_pulled_within,
                };
                lifecycle
                    .add_retention_rule(&operator(), &rule)
                    .await
                    .map(|rule| vec![rule])
            }
            RetentionCommand::Remove { id } => lifecycle
                .remove_retention_rule(&operator(), id)
                .await
                .map(|rule| vec![rule]),
            RetentionCommand::Run { dry_run } => {
                let report = lifecycle
                    .apply_retention(&operator(), dry_run)
                    .await
                    .map_err(|e| e.to_string())?;
                if json {
                    print_json(&report);
                } else {
                    for (name, outcome) in &report.repositories {
                        for removed in &outcome.removed {
                            println!("{name}:{}\t{}", removed.tag, removed.digest);
                        }
                    }
                    println!("{}", report.summary());
                    for error in &report.errors {
                        eprintln!("berth: {error}");
                    }
                }
                return if report.errors.is_empty() {
                    Ok(())
                } else {
                    Err(format!(
                        "{} tags could not be untagged",
                        report.errors.len()
                    ))
                };
            }
        };
        let rules = rules.map_err(|e| e.to_string())?;
        if json {
            print_json(&rules);
        } else {
            for rule in &rules {
                println!(
                    "{}\t{}\t{}",
                    rule.id,
                    rule.repositories,
                    serde_json::to_string(rule).expect("views serialize")
                );
            }
        }
        Ok(())
    })
}

/// Opens the configured database and storage, runs `work` with lifecycle management over
/// them, and turns its outcome into the exit code.
pub(crate) fn with_lifecycle<F, Fut>(store: StoreArgs, work: F) -> ExitCode
where
    F: FnOnce(Arc<Lifecycle>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), String>> + Send,
{
    let config = match command_config(&store) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the tokio runtime starts");
    let result = runtime.block_on(async move {
        let database = backends::open_database(&config).await?;
        let registry = Arc::new(Registry::new(
            backends::open_blob_store(&config)?,
            Arc::clone(&database.meta),
            berth_registry::Settings {
                delete_enabled: config.storage.delete.enabled,
                read_only: config.storage.maintenance.readonly.enabled,
            },
        ));
        work(open(&config, &registry, &database, holder("cli"))).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("berth: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn collect(lifecycle: &Lifecycle, dry_run: bool, json: bool) -> Result<(), String> {
    let stop = Arc::new(AtomicBool::new(false));
    let stopper = Arc::clone(&stop);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\nstopping at the next safe point (the next run carries on)...");
            stopper.store(true, Ordering::Relaxed);
        }
    });
    let terminal = Terminal {
        stop,
        tty: std::io::stderr().is_terminal(),
    };
    let mode = if dry_run {
        GcMode::DryRun
    } else {
        GcMode::Full
    };
    let outcome = lifecycle
        .collect_garbage(&operator(), mode, "cli", &terminal)
        .await;
    if terminal.tty {
        eprintln!();
    }
    match outcome {
        Ok(report) => {
            if json {
                print_json(&report);
            } else {
                println!("{}", report.summary());
                println!("{}", report.timing());
                print_repositories(&report);
            }
            Ok(())
        }
        Err(LifecycleError::GcFailed { message, report }) => {
            if json {
                print_json(&report);
            }
            Err(message)
        }
        Err(e) => Err(e.to_string()),
    }
}

pub(crate) fn print_json(value: &impl serde::Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("views serialize")
    );
}

fn describe(run: &GcRunView) -> String {
    let outcome = match (&run.report, &run.error) {
        (_, Some(error)) => format!(": {error}"),
        (Some(report), None) => format!(": {}; {}", report.summary(), report.timing()),
        (None, None) => match &run.progress {
            Some(progress) => format!(": {} ({} so far)", progress.phase, progress.summary()),
            None => String::new(),
        },
    };
    format!(
        "run {} {} {} by {} on {} ({}){outcome}",
        run.id,
        run.status.as_str(),
        run.started_at,
        run.actor,
        run.instance,
        run.trigger
    )
}

fn print_repositories(report: &GcReport) {
    for (name, freed) in &report.repositories {
        println!(
            "  {name}: {} manifests, {} blobs ({})",
            freed.manifests,
            freed.blobs,
            human_bytes(freed.bytes)
        );
    }
}
