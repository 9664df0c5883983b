//! The blob inventory: what integrity checks (`berth fsck`, the scrub) and backups read and
//! record about blobs, beside the registry's own operations in [`crate::MetadataStore`].

use async_trait::async_trait;
use berth_oci::{Digest, RepositoryName};

use crate::{ReferenceKind, Result};

/// A recorded blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryBlob {
    pub digest: Digest,
    pub size: u64,
    /// See [`crate::BlobRecord::cid`].
    pub cid: Option<String>,
    /// When its bytes last re-hashed to its digest (Unix milliseconds).
    pub verified_at: Option<i64>,
    /// See [`crate::BlobRecord::quarantine`].
    pub quarantine: Option<String>,
}

/// How many blobs are recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlobCounts {
    pub blobs: u64,
    pub bytes: u64,
    pub quarantined: u64,
}

/// A manifest's reference to content its repository does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnheldReference {
    pub repository: RepositoryName,
    pub manifest: Digest,
    pub kind: ReferenceKind,
    pub digest: Digest,
}

#[async_trait]
pub trait BlobInventory: Send + Sync + 'static {
    /// Up to `limit` blobs after `after`, in digest order.
    async fn blobs_after(&self, after: Option<&Digest>, limit: u32) -> Result<Vec<InventoryBlob>>;

    /// Up to `limit` blobs that are not quarantined and were not verified since
    /// `verified_before` (Unix milliseconds): never verified first, then the oldest.
    async fn blobs_to_verify(&self, verified_before: i64, limit: u32)
    -> Result<Vec<InventoryBlob>>;

    /// One recorded blob.
    async fn inventory_blob(&self, digest: &Digest) -> Result<Option<InventoryBlob>>;

    async fn blob_counts(&self) -> Result<BlobCounts>;

    /// Records that the blob's bytes re-hashed to its digest at `at`.
    async fn mark_verified(&self, digest: &Digest, at: i64) -> Result<()>;

    /// Records the content id a store gave a blob (after copying it into another store).
    async fn set_cid(&self, digest: &Digest, cid: Option<&str>) -> Result<()>;

    /// Marks a blob quarantined (not served until pushed again); `false` if it is not
    /// recorded or already quarantined.
    async fn quarantine(&self, digest: &Digest, reason: &str) -> Result<bool>;

    /// Up to `limit` references of manifests to blobs or child manifests that their
    /// repository does not hold.
    async fn unheld_references(&self, limit: u32) -> Result<Vec<UnheldReference>>;

    /// Removes a blob's record and its links to repositories, if no manifest references it;
    /// `false` (and no change) otherwise.
    async fn forget_unreferenced_blob(&self, digest: &Digest) -> Result<bool>;
}
