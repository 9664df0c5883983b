//! Storage held, as gauges: every blob once (`berth_storage_bytes`, `berth_storage_blobs`),
//! and, for the repositories an operator lists in `metrics.repositories`, the bytes each
//! holds (`berth_repository_storage_bytes`). Per-repository series are opt-in, as the
//! per-repository event counters are, so a registry with 100k repositories does not make
//! 100k series. A job every five minutes: the sums read every blob link.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use berth_jobs::{Job, JobContext, JobError, JobSummary};
use berth_meta::MetadataStore;
use berth_oci::Pattern;

pub struct StorageGauges {
    meta: Arc<dyn MetadataStore>,
    repositories: Vec<Pattern>,
    /// Repositories given a series by an earlier run: one that is gone is set to 0 once.
    reported: Mutex<HashSet<String>>,
}

impl StorageGauges {
    pub const INTERVAL: Duration = Duration::from_secs(300);

    pub fn new(meta: Arc<dyn MetadataStore>, repositories: Vec<Pattern>) -> StorageGauges {
        StorageGauges {
            meta,
            repositories,
            reported: Mutex::new(HashSet::new()),
        }
    }
}

#[async_trait]
impl Job for StorageGauges {
    fn name(&self) -> &'static str {
        "storage-gauges"
    }

    async fn run(&self, _context: &JobContext) -> Result<JobSummary, JobError> {
        // Every repository's sum only when some are watched; the total is always read.
        let limit = if self.repositories.is_empty() {
            0
        } else {
            u32::MAX
        };
        let usage = self
            .meta
            .storage_usage(limit)
            .await
            .map_err(|e| JobError::new(format!("reading storage usage: {e}")))?;
        metrics::gauge!("berth_storage_bytes").set(usage.total.bytes as f64);
        metrics::gauge!("berth_storage_blobs").set(usage.total.blobs as f64);
        let watched: Vec<_> = usage
            .repositories
            .into_iter()
            .filter(|r| self.repositories.iter().any(|p| p.matches(&r.name)))
            .collect();
        let mut reported = self.reported.lock().unwrap_or_else(PoisonError::into_inner);
        let now: HashSet<String> = watched.iter().map(|r| r.name.clone()).collect();
        for gone in reported.difference(&now) {
            metrics::gauge!("berth_repository_storage_bytes", "repository" => gone.clone())
                .set(0.0);
        }
        for repository in &watched {
            metrics::gauge!("berth_repository_storage_bytes", "repository" => repository.name.clone())
                .set(repository.bytes as f64);
        }
        let summary = format!(
            "{} bytes in {} blobs; {} watched repositories",
            usage.total.bytes,
            usage.total.blobs,
            watched.len()
        );
        *reported = now;
        Ok(summary)
    }
}
