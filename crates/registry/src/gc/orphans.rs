//! Garbage collection's orphan phase: bytes in storage that no database row knows.

use std::time::SystemTime;

use berth_oci::Digest;
use berth_storage::BlobKey;
use futures_util::TryStreamExt;

use super::{GcSettings, MARK_BATCH, Run};
use crate::errors::{from_meta, from_storage};
use crate::{Registry, Result};

impl Registry {
    /// Finds bytes in storage that no database row knows (a crash between the storage write
    /// and the database commit), written longer than `gc.grace` ago, and marks them for the
    /// sweep (`dry`: counts them); `true` when stopped early. A push of such a digest that
    /// records it meanwhile cancels the mark, as for any marked blob.
    pub(super) async fn mark_orphans(
        &self,
        run: &mut Run<'_>,
        settings: &GcSettings,
        dry: bool,
    ) -> Result<bool> {
        run.phase("orphans").await;
        let cutoff = SystemTime::now()
            .checked_sub(settings.grace)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let mut listed = self.blobs.list_blobs();
        let mut batch: Vec<(Digest, u64)> = Vec::new();
        loop {
            let next = listed.try_next().await.map_err(from_storage)?;
            let done = next.is_none();
            if let Some(blob) = next
                && let BlobKey::Digest(digest) = blob.key
                // Without a time or a size (content-addressed stores) it is left alone.
                && let (Some(size), Some(modified)) = (blob.size, blob.modified)
                && modified < cutoff
            {
                batch.push((digest, size));
            }
            if batch.len() >= MARK_BATCH || (done && !batch.is_empty()) {
                let digests: Vec<Digest> = batch.iter().map(|(d, _)| d.clone()).collect();
                let unrecorded = self
                    .meta
                    .unrecorded_blobs(&digests)
                    .await
                    .map_err(from_meta)?;
                let orphans: Vec<(Digest, u64)> = batch
                    .drain(..)
                    .filter(|(d, _)| unrecorded.contains(d))
                    .collect();
                if dry {
                    for (_, size) in &orphans {
                        run.report.orphans += 1;
                        run.report.blobs += 1;
                        run.report.bytes += size;
                    }
                } else if let Some(id) = run.report.run {
                    let marked = self
                        .meta
                        .mark_orphan_blobs(id, &orphans)
                        .await
                        .map_err(from_meta)?;
                    run.report.marked += marked.len() as u64;
                }
                if run.tick().await? {
                    return Ok(true);
                }
            }
            if done {
                return Ok(false);
            }
        }
    }
}
