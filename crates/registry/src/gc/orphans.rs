//! Garbage collection's orphan phase: bytes in storage that no database row knows.

use std::time::{Duration, SystemTime};

use berth_oci::{Digest, ErrorCode, RegistryError};
use berth_storage::BlobKey;
use futures_util::TryStreamExt;

use super::{GcSettings, MARK_BATCH, Run};
use crate::errors::{from_meta, from_storage};
use crate::{Registry, Result};

/// Stored blobs a run looks at, at most, to judge whether the storage and the database go
/// together (see [`Registry::check_pairing`]).
const PAIRING_SAMPLE: usize = 1000;
/// Bytes younger than this are left out of that sample.
const PAIRING_MIN_AGE: Duration = Duration::from_secs(10 * 60);

impl Registry {
    /// Refuses to collect when the storage and the database do not seem to belong together:
    /// more than half of the blobs stored for longer than the grace period (and at least
    /// [`PAIRING_MIN_AGE`]) have no record.
    /// That is berth pointed at an empty database, or another registry's, beside this storage
    /// (a `berth gc` without the server's `database.url`): every stored blob would look like
    /// an orphan, and the blobs that database calls unreferenced would be another registry's.
    /// Real orphans are what a crash left between a storage write and its commit, a few at
    /// most. The first blobs the store lists (in digest order: a fair sample) decide; a
    /// content-addressed store, which lists no digests, is not checked.
    pub(super) async fn check_pairing(&self, settings: &GcSettings) -> Result<()> {
        // Never younger than a few minutes, whatever the grace period: with pushes going on,
        // bytes written seconds ago may still wait for their record (or be the new copy of a
        // blob just collected), and a small store could then look unpaired.
        let cutoff = SystemTime::now()
            .checked_sub(settings.grace.max(PAIRING_MIN_AGE))
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let mut listed = self.blobs.list_blobs();
        let mut sample: Vec<Digest> = Vec::new();
        while sample.len() < PAIRING_SAMPLE {
            let Some(blob) = listed.try_next().await.map_err(from_storage)? else {
                break;
            };
            if let BlobKey::Digest(digest) = blob.key
                && blob.modified.is_some_and(|modified| modified < cutoff)
            {
                sample.push(digest);
            }
        }
        let mut unrecorded = 0;
        for batch in sample.chunks(MARK_BATCH) {
            unrecorded += self
                .meta
                .unrecorded_blobs(batch)
                .await
                .map_err(from_meta)?
                .len();
        }
        if unrecorded * 2 > sample.len() {
            return Err(RegistryError::new(
                ErrorCode::Denied,
                format!(
                    "{unrecorded} of the first {} blobs in storage have no record in the \
                     database: this database does not seem to be this storage's (check \
                     database.url or BERTH_DATABASE_URL, storage.* and --data against the \
                     serving berth's); nothing was collected",
                    sample.len()
                ),
            ));
        }
        Ok(())
    }

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
