//! `berth quota ...` and `berth usage`: quotas and what they count, from the command line,
//! through [`berth_lifecycle::Lifecycle`] (the admin API's write path too).

use std::process::ExitCode;

use berth_lifecycle::{NewQuota, QuotaView};
use clap::{Args, Subcommand};

use crate::lifecycle_commands::{print_json, with_lifecycle};
use crate::management::{StoreArgs, operator};

#[derive(Subcommand)]
pub enum QuotaCommand {
    /// The quotas, with what each counts now.
    List,
    /// Limit the repositories of NAMESPACE (`acme`: every repository under it; or a glob,
    /// `team-*/**`) to LIMIT bytes (`500MiB`, `10GB`), each blob counted once.
    Set { namespace: String, limit: String },
    /// Remove the quota on NAMESPACE (or glob).
    Remove { namespace: String },
}

/// `berth quota ...`.
pub fn quota(command: QuotaCommand, store: StoreArgs) -> ExitCode {
    let json = store.json;
    with_lifecycle(store, move |lifecycle| async move {
        let shown = match command {
            QuotaCommand::List => lifecycle.quotas().await,
            QuotaCommand::Set { namespace, limit } => lifecycle
                .set_quota(
                    &operator(),
                    &NewQuota {
                        repositories: namespace,
                        limit,
                    },
                )
                .await
                .map(|quota| vec![quota]),
            QuotaCommand::Remove { namespace } => lifecycle
                .remove_quota(&operator(), &namespace)
                .await
                .map(|quota| vec![quota]),
        };
        let quotas = shown.map_err(|e| e.to_string())?;
        if json {
            print_json(&quotas);
        } else {
            for quota in &quotas {
                println!("{}", describe(quota));
            }
        }
        Ok(())
    })
}

fn describe(quota: &QuotaView) -> String {
    format!(
        "{}\tused {} of {} ({} of {} bytes)",
        quota.repositories, quota.used, quota.limit, quota.used_bytes, quota.limit_bytes
    )
}

#[derive(Args)]
pub struct UsageArgs {
    /// Count every quota's usage again from the database's links and correct it (a repair;
    /// the usage is kept by the pushes and deletions themselves).
    #[arg(long)]
    recompute: bool,
    #[command(flatten)]
    store: StoreArgs,
}

/// `berth usage [--recompute]`: bytes stored per namespace (each blob once) and the quotas.
pub fn usage(args: UsageArgs) -> ExitCode {
    let UsageArgs { recompute, store } = args;
    let json = store.json;
    with_lifecycle(store, move |lifecycle| async move {
        if recompute {
            let corrected = lifecycle
                .recount_quotas(&operator())
                .await
                .map_err(|e| e.to_string())?;
            for fix in &corrected {
                eprintln!(
                    "corrected {}: counted {} bytes, holds {}",
                    fix.repositories, fix.recorded_bytes, fix.actual_bytes
                );
            }
            if corrected.is_empty() {
                eprintln!("every quota's usage was exact");
            }
        }
        let report = lifecycle.usage().await.map_err(|e| e.to_string())?;
        if json {
            print_json(&report);
            return Ok(());
        }
        println!("NAMESPACE\tBLOBS\tSIZE\tLIMIT");
        for ns in &report.namespaces {
            let name = if ns.namespace.is_empty() {
                "(top level)"
            } else {
                ns.namespace.as_str()
            };
            println!(
                "{name}\t{}\t{}\t{}",
                ns.blobs,
                ns.size,
                ns.limit.as_deref().unwrap_or("-")
            );
        }
        if !report.quotas.is_empty() {
            println!();
            println!("QUOTAS");
            for quota in &report.quotas {
                println!("{}", describe(quota));
            }
        }
        Ok(())
    })
}
