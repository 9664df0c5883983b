//! `berth tag history|restore`: the tag history kept for `retention.taghistory`, and putting
//! a deleted or moved tag back, through [`berth_lifecycle::Lifecycle`] (the admin API's
//! write path too).

use std::process::ExitCode;

use berth_lifecycle::RestoreTag;
use clap::Subcommand;

use crate::lifecycle_commands::{print_json, with_lifecycle};
use crate::management::{StoreArgs, operator};

#[derive(Subcommand)]
pub enum TagCommand {
    /// Where the tags of REPOSITORY (or only TAG) pointed before they were deleted or moved,
    /// newest first, within retention.taghistory.
    History {
        repository: String,
        tag: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Put TAG of REPOSITORY back where it pointed before it was deleted or moved (the
    /// newest history entry, or --to DIGEST), as long as the manifest is still stored.
    Restore {
        repository: String,
        tag: String,
        #[arg(long)]
        to: Option<String>,
    },
}

/// `berth tag ...`.
pub fn tag(command: TagCommand, store: StoreArgs) -> ExitCode {
    let json = store.json;
    with_lifecycle(store, move |lifecycle| async move {
        match command {
            TagCommand::History {
                repository,
                tag,
                limit,
            } => {
                let history = lifecycle
                    .tag_history(&repository, tag.as_deref(), limit)
                    .await
                    .map_err(|e| e.to_string())?;
                if json {
                    print_json(&history);
                } else {
                    for entry in &history {
                        println!(
                            "{}:{}\t{}\t{} by {} at {}\texpires {}{}",
                            entry.repository,
                            entry.tag,
                            entry.digest,
                            entry.reason,
                            entry.actor,
                            entry.removed_at,
                            entry.expires_at,
                            if entry.restorable {
                                ""
                            } else {
                                "\t(content gone)"
                            }
                        );
                    }
                }
            }
            TagCommand::Restore {
                repository,
                tag,
                to,
            } => {
                let restored = lifecycle
                    .restore_tag(
                        &operator(),
                        &RestoreTag {
                            repository,
                            tag,
                            to,
                        },
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                if json {
                    print_json(&restored);
                } else {
                    println!(
                        "{}:{} -> {}",
                        restored.repository, restored.tag, restored.digest
                    );
                }
            }
        }
        Ok(())
    })
}
