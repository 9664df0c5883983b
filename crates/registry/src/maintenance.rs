//! Background upkeep: purging abandoned uploads.

use std::time::{Duration, SystemTime};

use berth_storage::StorageError;

use crate::errors::{from_meta, from_storage};
use crate::{Registry, Result};

/// What a purge removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PurgeReport {
    /// Sessions not written to within the age limit.
    pub sessions: usize,
    /// Upload files no session refers to (a request cut off by a crash).
    pub orphans: usize,
}

impl Registry {
    /// Removes upload sessions untouched for longer than `max_age`, and upload data that no
    /// session refers to and is older than `max_age`. A dry run only counts them.
    pub async fn purge_uploads(&self, max_age: Duration, dry_run: bool) -> Result<PurgeReport> {
        let mut report = PurgeReport::default();
        let cutoff = SystemTime::now() - max_age;
        let cutoff_millis = berth_meta::now_millis() - max_age.as_millis() as i64;

        for id in self
            .meta
            .stale_uploads(cutoff_millis)
            .await
            .map_err(from_meta)?
        {
            let _lock = self.meta.lock_upload(id).await.map_err(from_meta)?;
            // Written to while we waited for the lock: not stale after all.
            match self.meta.upload(id).await.map_err(from_meta)? {
                Some(session) if session.updated_at < cutoff_millis => {}
                _ => continue,
            }
            if !dry_run {
                self.discard_upload(id).await?;
            }
            report.sessions += 1;
        }

        for (id, modified) in self.blobs.list_uploads().await.map_err(from_storage)? {
            if modified >= cutoff || self.meta.upload(id).await.map_err(from_meta)?.is_some() {
                continue;
            }
            if dry_run {
                report.orphans += 1;
                continue;
            }
            match self.blobs.delete_upload(id).await {
                Ok(()) | Err(StorageError::NotFound) => report.orphans += 1,
                Err(e) => return Err(from_storage(e)),
            }
        }
        Ok(report)
    }
}

impl Registry {
    /// What is cached in the repositories under `prefix` (a remote's size cap plans from it).
    pub async fn cached_content(&self, prefix: &str) -> Result<berth_meta::CachedContent> {
        self.meta.cached_content(prefix).await.map_err(from_meta)
    }

    /// Evicts cached manifests (with their tags) from `repository`, unless one was pulled
    /// after `pulled_before` or is still referenced (`false` then). Not subject to
    /// `storage.delete.enabled`, which is about clients' deletes: a cache's upkeep is the
    /// registry's own. The blobs become unreferenced and garbage collection frees them.
    pub async fn evict_cached(
        &self,
        origin: &std::sync::Arc<crate::events::Origin>,
        repository: &berth_oci::RepositoryName,
        ids: &[i64],
        pulled_before: i64,
    ) -> Result<bool> {
        self.ensure_writable()?;
        match self
            .meta
            .evict_manifests(repository, ids, pulled_before, origin)
            .await
            .map_err(from_meta)?
        {
            Some(events) => {
                self.publish(&events);
                Ok(true)
            }
            None => Ok(false),
        }
    }
}
