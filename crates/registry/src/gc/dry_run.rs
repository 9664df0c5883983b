//! A dry run: what a full run would free, with no side effect at all.

use std::collections::HashMap;

use berth_oci::Digest;

use super::{GcSettings, MANIFEST_BATCH, PAGE, Run, collectable, older_than, repository_name};
use crate::errors::from_meta;
use crate::{Registry, Result};

impl Registry {
    /// A dry run: what a full run would free now, with no side effect at all. Expired tag
    /// history is read as forgotten (a real run forgets it first).
    pub(super) async fn dry_run(&self, run: &mut Run<'_>, settings: &GcSettings) -> Result<()> {
        self.check_pairing(settings).await?;
        let collectable = collectable(settings);
        // A real run would finish the deletions a dead run began.
        let pending = self.count_pending(run).await?;
        run.report.blobs += run.report.resumed;
        run.report.bytes += pending.bytes;

        // Untagged manifests, and how often each blob is referenced by them.
        let mut from_untagged: HashMap<Digest, u64> = HashMap::new();
        if let Some(age) = settings.untagged {
            run.phase("untagged").await;
            let untagged_cutoff = older_than(age);
            let mut after: Option<String> = None;
            loop {
                let names = self
                    .meta
                    .list_repositories(after.as_deref(), PAGE)
                    .await
                    .map_err(from_meta)?;
                let Some(last) = names.last() else { break };
                after = Some(last.clone());
                for name in names {
                    let repository = repository_name(&name)?;
                    let untagged = self
                        .meta
                        .untagged_manifests(&repository, untagged_cutoff, collectable.history_since)
                        .await
                        .map_err(from_meta)?;
                    if untagged.is_empty() {
                        continue;
                    }
                    run.report.manifests += untagged.len() as u64;
                    run.report.repository(&repository).manifests += untagged.len() as u64;
                    for batch in untagged.chunks(MANIFEST_BATCH) {
                        let ids: Vec<i64> = batch.iter().map(|m| m.id).collect();
                        for (_, digest) in self
                            .meta
                            .manifest_blob_references(&ids)
                            .await
                            .map_err(from_meta)?
                        {
                            *from_untagged.entry(digest).or_default() += 1;
                        }
                    }
                    if run.tick().await? {
                        return Ok(());
                    }
                }
            }
        }

        if self.mark_unreferenced(run, collectable, true).await? {
            return Ok(());
        }
        // Blobs that only the untagged manifests reference go with them.
        let digests: Vec<Digest> = from_untagged.keys().cloned().collect();
        for batch in digests.chunks(PAGE as usize) {
            for (blob, references, recent) in self
                .meta
                .blob_reference_counts(batch, collectable)
                .await
                .map_err(from_meta)?
            {
                if !recent && from_untagged.get(&blob.digest) == Some(&references) {
                    run.report.blobs += 1;
                    run.report.bytes += blob.size;
                    run.report.count_blob(&blob);
                }
            }
        }

        if self.mark_orphans(run, settings, true).await? {
            return Ok(());
        }
        run.phase("uploads").await;
        let purged = self.purge_uploads(settings.upload_age, true).await?;
        run.report.upload_sessions = purged.sessions as u64;
        run.report.upload_files = purged.orphans as u64;
        Ok(())
    }
}
