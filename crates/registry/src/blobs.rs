//! Reading, deleting and mounting blobs.

use std::sync::Arc;

use berth_meta::BlobRecord;
use berth_oci::{ByteRange, Digest, ErrorCode, RegistryError, RepositoryName};
use berth_storage::{BlobContent, StorageError, StoredBlob};

use crate::errors::{from_meta, from_storage};
use crate::events::{Event, EventKind, Origin};
use crate::{Registry, Result};

/// How many repositories holding a blob are considered as sources of a mount that names
/// none; enough that a caller who may pull only some of them still finds one.
const MOUNT_CANDIDATES: u32 = 100;

/// A blob (or a range of it) ready to send.
pub struct BlobRead {
    pub size: u64,
    /// The range being sent, `None` for the whole blob.
    pub range: Option<ByteRange>,
    pub content: BlobContent,
}

/// What the database records of a blob, for administrators: where it is held, its size, the
/// content id a content-addressed store gave it (IPFS), whether it is quarantined.
#[derive(Debug, Clone)]
pub struct BlobDetails {
    pub digest: Digest,
    pub size: u64,
    pub cid: Option<String>,
    /// Why the blob is quarantined (its stored bytes do not match its digest), if it is.
    pub quarantine: Option<String>,
    /// Repositories holding it (the first hundred).
    pub repositories: Vec<RepositoryName>,
}

impl Registry {
    /// The blob's record, `None` when no repository holds it.
    pub async fn blob_details(&self, digest: &Digest) -> Result<Option<BlobDetails>> {
        let repositories = self
            .meta
            .repositories_with_blob(digest, MOUNT_CANDIDATES)
            .await
            .map_err(from_meta)?;
        let Some(first) = repositories.first() else {
            return Ok(None);
        };
        let Some(record) = self.meta.blob(first, digest).await.map_err(from_meta)? else {
            return Ok(None);
        };
        Ok(Some(BlobDetails {
            digest: digest.clone(),
            size: record.size,
            cid: record.cid,
            quarantine: record.quarantine,
            repositories,
        }))
    }

    /// A blob the repository holds and may serve: not one whose stored bytes were found not
    /// to match its digest (quarantined). That one is unknown to clients, so that they push
    /// it again, which heals it.
    async fn servable_blob(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
    ) -> Result<BlobRecord> {
        let blob = self
            .meta
            .blob(repository, digest)
            .await
            .map_err(from_meta)?
            .ok_or_else(|| RegistryError::blob_unknown(digest))?;
        if let Some(reason) = &blob.quarantine {
            tracing::warn!(%digest, %repository, reason, "refused to serve a quarantined blob");
            return Err(RegistryError::new(
                ErrorCode::BlobUnknown,
                "blob quarantined: its stored content does not match its digest; push it again",
            )
            .with_detail(serde_json::json!({ "digest": digest.as_str(), "quarantined": reason })));
        }
        Ok(blob)
    }

    /// The size of a blob the repository holds.
    pub async fn blob_size(&self, repository: &RepositoryName, digest: &Digest) -> Result<u64> {
        Ok(self.servable_blob(repository, digest).await?.size)
    }

    /// Opens a blob the repository holds, honouring a `Range` header; published as a pull.
    pub async fn read_blob(
        &self,
        origin: &Arc<Origin>,
        repository: &RepositoryName,
        digest: &Digest,
        range_header: Option<&str>,
    ) -> Result<BlobRead> {
        let blob = self.servable_blob(repository, digest).await?;
        let size = blob.size;
        let range = match range_header {
            Some(header) => ByteRange::from_range_header(header, size)?,
            None => None,
        };
        let stored = StoredBlob {
            digest: digest.clone(),
            size,
            cid: blob.cid,
        };
        let content = self.blobs.read_blob(&stored, range).await.map_err(|e| match e {
            StorageError::NotFound => {
                tracing::error!(%digest, %repository, "blob recorded in the database is missing from storage");
                RegistryError::blob_unknown(digest)
            }
            other => from_storage(other),
        })?;
        if !self.listeners.is_empty() {
            let pulled = Event::new(EventKind::BlobPulled, repository, origin)
                .digest(digest)
                .size(size);
            self.publish(&[pulled]);
        }
        Ok(BlobRead {
            size,
            range,
            content,
        })
    }

    /// Records a blob that is already in the blob store, put there by another registry that
    /// shares the layout (an in-place import of a registry:2 store), as held by `repository`.
    /// The caller vouches for its presence and size.
    pub async fn adopt_blob(
        &self,
        origin: &Arc<Origin>,
        repository: &RepositoryName,
        digest: &Digest,
        size: u64,
    ) -> Result<()> {
        self.ensure_writable()?;
        let events = self
            .meta
            .link_blob(repository, digest, size, origin)
            .await
            .map_err(from_meta)?;
        self.publish(&events);
        Ok(())
    }

    /// Removes a blob from a repository. Its bytes stay in storage for other repositories
    /// (garbage collection reclaims unreferenced ones).
    pub async fn delete_blob(
        &self,
        origin: &Arc<Origin>,
        repository: &RepositoryName,
        digest: &Digest,
    ) -> Result<()> {
        self.ensure_delete_enabled()?;
        match self
            .meta
            .unlink_blob(repository, digest, origin)
            .await
            .map_err(from_meta)?
        {
            Some(events) => {
                self.publish(&events);
                Ok(())
            }
            None => Err(RegistryError::blob_unknown(digest)),
        }
    }

    /// Makes a blob that another repository holds available in `repository` without
    /// uploading it again. With no `from`, any repository holding the blob is a source.
    /// Only repositories `readable` accepts can be sources: a caller must not gain a blob
    /// it may not pull by knowing its digest. Returns the blob's size, or `None` when no
    /// source holds it (the client then uploads).
    pub async fn mount_blob(
        &self,
        origin: &Arc<Origin>,
        repository: &RepositoryName,
        digest: &Digest,
        from: Option<&RepositoryName>,
        readable: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<Option<u64>> {
        self.ensure_writable()?;
        let candidates = match from {
            Some(from) => vec![from.clone()],
            None => self
                .meta
                .repositories_with_blob(digest, MOUNT_CANDIDATES)
                .await
                .map_err(from_meta)?,
        };
        let sources: Vec<RepositoryName> = candidates
            .into_iter()
            .filter(|c| readable(c.as_str()))
            .collect();
        for source in &sources {
            if let Some((size, events)) = self
                .meta
                .mount_blob(repository, digest, source, origin)
                .await
                .map_err(from_meta)?
            {
                self.publish(&events);
                return Ok(Some(size));
            }
        }
        Ok(None)
    }
}
