//! The scrub: re-hashes stored blobs a few at a time, at a bounded rate, least recently
//! verified first, so that every blob is checked now and then without ever starving the
//! registry. A blob whose bytes do not match its digest is quarantined at once (pulls fail
//! clearly instead of serving wrong bytes; a new push of the blob heals it) and reported.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use berth_jobs::{Job, JobContext, JobError, JobSummary};
use berth_meta::inventory::BlobInventory;
use berth_storage::verify::{ContentCheck, Pace, check_content};
use berth_storage::{BlobStore, StorageError, StoredBlob};
use serde::Serialize;

use crate::fsck::quarantine;
use crate::progress::human_bytes;

#[derive(Debug, Clone)]
pub struct Settings {
    /// Bytes per second read at most.
    pub rate: Option<u64>,
    /// A blob is verified again once its last verification is this old.
    pub reverify_after: Duration,
    /// The most blobs one run verifies.
    pub max_blobs: u32,
}

#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub verified: u64,
    pub bytes: u64,
    /// Blobs quarantined by this run, with what was found.
    pub quarantined: Vec<(String, String)>,
    /// Blobs without stored bytes (not quarantined: there is nothing to move aside; `berth
    /// fsck` reports and repairs them).
    pub missing: Vec<String>,
    /// Whether the run stopped early (shutdown).
    pub interrupted: bool,
}

impl Summary {
    pub fn print(&self) {
        for (digest, reason) in &self.quarantined {
            println!("quarantined  {digest}: {reason}");
        }
        for digest in &self.missing {
            println!("missing      {digest}: no bytes are stored for it (see berth fsck)");
        }
        println!(
            "verified {} blobs ({}); quarantined {}; {} missing",
            self.verified,
            human_bytes(self.bytes),
            self.quarantined.len(),
            self.missing.len()
        );
    }
}

/// What runs a scrub: asked whether to stop between blobs, told how far it got.
pub trait Watch: Sync {
    /// Whether to stop before the next blob (shutdown).
    fn stopping(&self) -> bool {
        false
    }

    /// After each blob: what was done so far, out of `due` blobs of `due_bytes`.
    fn progress(&self, _done: &Summary, _due: usize, _due_bytes: u64) {}
}

/// Verifies up to `settings.max_blobs` blobs due for it. Each blob quarantined is logged
/// and counted in `berth_blobs_quarantined_total` (see [`quarantine`]).
pub async fn run(
    inventory: &Arc<dyn BlobInventory>,
    store: &Arc<dyn BlobStore>,
    settings: &Settings,
    watch: &dyn Watch,
) -> Result<Summary, String> {
    let now = berth_meta::now_millis();
    let due_before = now - settings.reverify_after.as_millis() as i64;
    let due = inventory
        .blobs_to_verify(due_before, settings.max_blobs)
        .await
        .map_err(|e| format!("reading the database: {e}"))?;
    let due_count = due.len();
    let due_bytes = due.iter().map(|b| b.size).sum();
    let mut summary = Summary::default();
    let mut pace = Pace::new(settings.rate);
    for blob in due {
        watch.progress(&summary, due_count, due_bytes);
        if watch.stopping() {
            summary.interrupted = true;
            break;
        }
        let stored = StoredBlob {
            digest: blob.digest.clone(),
            size: blob.size,
            cid: blob.cid.clone(),
        };
        let found = match check_content(store.as_ref(), &stored, &mut pace).await {
            Ok(found) => found,
            Err(StorageError::Unavailable(e)) => {
                return Err(format!("blob storage is unavailable: {e}"));
            }
            Err(e) => {
                tracing::warn!(digest = %blob.digest, error = %e, "scrub: could not read a blob");
                continue;
            }
        };
        match found {
            ContentCheck::Intact => {
                summary.verified += 1;
                summary.bytes += blob.size;
                inventory
                    .mark_verified(&blob.digest, berth_meta::now_millis())
                    .await
                    .map_err(|e| format!("updating the database: {e}"))?;
            }
            ContentCheck::Missing => {
                tracing::error!(digest = %blob.digest, "scrub: a recorded blob has no stored bytes; run berth fsck");
                summary.missing.push(blob.digest.to_string());
            }
            ContentCheck::WrongSize { .. } | ContentCheck::WrongContent { .. } => {
                let reason = found.describe(blob.size);
                quarantine(inventory.as_ref(), store.as_ref(), &stored, &reason).await?;
                tracing::error!(digest = %blob.digest, reason, "scrub: quarantined a blob whose stored bytes do not match its digest");
                summary.quarantined.push((blob.digest.to_string(), reason));
            }
        }
    }
    watch.progress(&summary, due_count, due_bytes);
    Ok(summary)
}

/// The scheduled scrub (`storage.scrub`), under the job runner: stops at shutdown, shows
/// its progress in the job's status and sums up what it did.
pub struct ScrubJob {
    pub inventory: Arc<dyn BlobInventory>,
    pub store: Arc<dyn BlobStore>,
    pub settings: Settings,
}

impl Watch for JobContext {
    fn stopping(&self) -> bool {
        self.is_shutting_down()
    }

    fn progress(&self, done: &Summary, due: usize, due_bytes: u64) {
        JobContext::progress(
            self,
            format!(
                "verified {} of {due} blobs ({} of {})",
                done.verified,
                human_bytes(done.bytes),
                human_bytes(due_bytes)
            ),
        );
    }
}

#[async_trait]
impl Job for ScrubJob {
    fn name(&self) -> &'static str {
        "scrub"
    }

    async fn run(&self, context: &JobContext) -> Result<JobSummary, JobError> {
        let summary = run(&self.inventory, &self.store, &self.settings, context)
            .await
            .map_err(JobError::new)?;
        if summary.verified == 0 && summary.quarantined.is_empty() && summary.missing.is_empty() {
            return Ok(String::new());
        }
        Ok(format!(
            "verified {} blobs ({}); quarantined {}; {} missing{}",
            summary.verified,
            human_bytes(summary.bytes),
            summary.quarantined.len(),
            summary.missing.len(),
            if summary.interrupted {
                "; stopped by shutdown"
            } else {
                ""
            }
        ))
    }
}
