//! What garbage collection reads and records in the metadata database.
//!
//! The database decides what is reachable: tags, the manifests they point at, the child
//! manifests of indexes and the referrers (signatures, SBOMs) of reachable manifests. A blob
//! that no manifest references, and that was not pushed or mounted within the grace period,
//! is collected in three steps, each a transaction of its own:
//!
//! 1. **mark**: its links to repositories and its record are removed and a `blob_deletions`
//!    row says `marked`. From now on clients see it as absent (a HEAD is a 404, a manifest
//!    referencing it is refused, a mount finds nothing), so they upload it again. Pushing the
//!    digest again cancels the deletion: the reference wins.
//! 2. **claim**: `marked` becomes `deleting`; only now may its bytes be deleted. A push of
//!    the digest that finds it `deleting` waits for the deletion to end.
//! 3. **finish**: after the bytes are gone, `deleting` becomes `deleted`, a tombstone kept for
//!    days.
//!
//! A push reads the digest's state ([`GcStore::blob_deletion`]) before it commits the bytes
//! to storage and hands it to the transaction that records the blob, which refuses
//! ([`crate::MetaError::BeingCollected`]) if the deletion moved on in between: its bytes may
//! have been deleted after it relied on them. So a recorded blob always has its bytes.

use async_trait::async_trait;
use berth_oci::{Digest, RepositoryName};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

use crate::Result;
use crate::events::{Event, Origin};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeletionState {
    /// Records removed, bytes still stored; a push cancels the deletion.
    Marked,
    /// The bytes are being deleted; a push waits.
    Deleting,
    /// The bytes are gone.
    Deleted,
}

impl DeletionState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeletionState::Marked => "marked",
            DeletionState::Deleting => "deleting",
            DeletionState::Deleted => "deleted",
        }
    }

    pub fn parse(text: &str) -> Option<DeletionState> {
        match text {
            "marked" => Some(DeletionState::Marked),
            "deleting" => Some(DeletionState::Deleting),
            "deleted" => Some(DeletionState::Deleted),
            _ => None,
        }
    }
}

/// Where garbage collection stands with a digest, as a push about to commit it sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobDeletion {
    /// The run that marked it.
    pub run: i64,
    pub state: DeletionState,
}

/// A blob that garbage collection may free, with the repositories that hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobCandidate {
    pub digest: Digest,
    pub size: u64,
    pub repositories: Vec<RepositoryName>,
}

/// What a mark did: the blobs it marked, and whether writers waited for its locks or held
/// some of its blobs (a push to a repository holding one), which the collector answers by
/// giving writers turns (on PostgreSQL a waiting push is seen only while it waits).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Marked {
    pub blobs: Vec<BlobCandidate>,
    pub writers_waited: bool,
}

/// What keeps a blob that no manifest references from being collected, as times in Unix
/// milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Collectable {
    /// A blob recorded, or linked into a repository, at or after this is kept (the grace
    /// period: a push whose manifest is still to come).
    pub cutoff: i64,
    /// The copy of a manifest deleted by digest keeps the blobs it references while its tag
    /// history lasts: if it was deleted at or after this. (A real collection forgets expired
    /// history first; a dry run, which changes nothing, counts as if it had.)
    pub history_since: i64,
}

/// A page of the blobs garbage collection may free.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CandidatePage {
    pub candidates: Vec<BlobCandidate>,
    /// Where the next page starts (after this digest); `None` after the last blob.
    pub next: Option<Digest>,
}

/// A manifest that nothing makes reachable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UntaggedManifest {
    pub id: i64,
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    pub created_at: i64,
}

/// Why a blob's bytes are being deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeletionKind {
    /// A recorded blob that no manifest references.
    Unreferenced,
    /// Bytes in storage without any record.
    Orphan,
}

impl DeletionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DeletionKind::Unreferenced => "unreferenced",
            DeletionKind::Orphan => "orphan",
        }
    }
}

/// A blob whose bytes a run may now delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedDeletion {
    pub digest: Digest,
    pub size: u64,
    pub kind: DeletionKind,
    /// The content id a content-addressed store gave it (IPFS), as the blob's record had it.
    pub cid: Option<String>,
}

/// Deletions begun and not finished.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PendingDeletions {
    pub marked: u64,
    pub deleting: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GcRunStatus {
    Running,
    Finished,
    Failed,
    /// Its instance stopped in the middle; a later run finished its deletions.
    Interrupted,
}

impl GcRunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            GcRunStatus::Running => "running",
            GcRunStatus::Finished => "finished",
            GcRunStatus::Failed => "failed",
            GcRunStatus::Interrupted => "interrupted",
        }
    }

    pub fn parse(text: &str) -> Option<GcRunStatus> {
        match text {
            "running" => Some(GcRunStatus::Running),
            "finished" => Some(GcRunStatus::Finished),
            "failed" => Some(GcRunStatus::Failed),
            "interrupted" => Some(GcRunStatus::Interrupted),
            _ => None,
        }
    }
}

/// What writers other than the collector's connection are doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OtherWriters {
    /// Changes whenever a connection other than the collector's commits (SQLite: `PRAGMA
    /// data_version` of its writer connection); `None` where commits are not seen
    /// (PostgreSQL, whose writers are seen while they write or wait).
    pub commits: Option<i64>,
    /// Whether another writer is at work now: SQLite, another process's writer connection
    /// writing or waiting for the lock (see `sqlite_writers`); PostgreSQL, another session
    /// of the database in a transaction that wrote or waiting for a lock.
    pub present: bool,
}

/// A recorded run. `progress` and `report` are JSON documents written by the collector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcRunRecord {
    pub id: i64,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub status: GcRunStatus,
    /// `schedule`, `cli`, `api`.
    pub trigger: String,
    pub actor: String,
    /// The instance that ran it.
    pub holder: String,
    pub progress: Option<String>,
    pub report: Option<String>,
    pub error: Option<String>,
}

#[async_trait]
pub trait GcStore: Send + Sync + 'static {
    /// What other writers are doing, so that the collector can leave gaps between its
    /// transactions while others write or wait to: on SQLite they all take one lock for the
    /// whole database (and its busy handler polls, it does not queue); on PostgreSQL a
    /// batch's mark locks the rows of the repositories holding its blobs, which a push to
    /// one of them waits for. `None` where the engine cannot tell.
    async fn other_writers(&self) -> Result<Option<OtherWriters>> {
        Ok(None)
    }

    /// Where garbage collection stands with `digest`; `None` when it never touched it (or
    /// its tombstone expired).
    async fn blob_deletion(&self, digest: &Digest) -> Result<Option<BlobDeletion>>;

    /// Among the next `scan` recorded blobs after `after` (in digest order), up to `limit`
    /// that are free to collect: no manifest references them (nor the copy of a manifest
    /// deleted by digest at or after `history_since`, which its tag history keeps), and they
    /// were neither recorded nor linked into a repository at or after `cutoff` (Unix
    /// milliseconds). A page reads at most `scan` blobs however few of them are free, so
    /// that its time is bounded on any database (the collector renews its lease between
    /// pages).
    async fn unreferenced_blobs(
        &self,
        after: Option<&Digest>,
        collectable: Collectable,
        scan: u32,
        limit: u32,
    ) -> Result<CandidatePage>;

    /// Step 1 for those of `digests` that are still free to collect (see
    /// [`GcStore::unreferenced_blobs`]), checked under locks that keep concurrent pushes out:
    /// removes their links and records and marks them for deletion by `run`. A digest busy
    /// with a push is skipped (the push wins; a later run sees it again). Returns the blobs
    /// marked, and whether writers waited for the mark or held some of `digests`.
    async fn mark_unreferenced_blobs(
        &self,
        run: i64,
        digests: &[Digest],
        collectable: Collectable,
    ) -> Result<Marked>;

    /// Manifests of `repository` that are not reachable from a tag (directly, as a child of a
    /// reachable index, or as a referrer of a reachable manifest), taking every manifest
    /// created at or after `cutoff`, and every manifest a tag history entry removed at or
    /// after `history_since` names, as reachable (see [`crate::tag_history`]).
    async fn untagged_manifests(
        &self,
        repository: &RepositoryName,
        cutoff: i64,
        history_since: i64,
    ) -> Result<Vec<UntaggedManifest>>;

    /// Deletes those of `ids` that are still unreachable (checked again with the repository
    /// locked), with the events of the deletion.
    async fn delete_untagged_manifests(
        &self,
        repository: &RepositoryName,
        ids: &[i64],
        cutoff: i64,
        history_since: i64,
        origin: &Arc<Origin>,
    ) -> Result<(Vec<UntaggedManifest>, Vec<Event>)>;

    /// The blobs the manifests `ids` reference: (manifest id, digest).
    async fn manifest_blob_references(&self, ids: &[i64]) -> Result<Vec<(i64, Digest)>>;

    /// For each recorded blob of `digests`: its size, how many manifest references it has
    /// (counting copies of manifests deleted by digest only at or after `history_since`),
    /// whether it was recorded or linked at or after `cutoff`, and the repositories holding it.
    async fn blob_reference_counts(
        &self,
        digests: &[Digest],
        collectable: Collectable,
    ) -> Result<Vec<(BlobCandidate, u64, bool)>>;

    /// Step 2: up to `limit` marked deletions (marked before `marked_before`, so that pushes
    /// racing the mark had time to cancel it), and deletions a dead run left `deleting`,
    /// become `deleting` for `run`. Deletions `run` already holds are not returned again.
    async fn claim_blob_deletions(
        &self,
        run: i64,
        marked_before: i64,
        limit: u32,
    ) -> Result<Vec<ClaimedDeletion>>;

    /// Step 3: the bytes of `digests` are gone.
    async fn finish_blob_deletions(&self, run: i64, digests: &[Digest]) -> Result<()>;

    /// Forgets tombstones older than `before`.
    async fn prune_blob_tombstones(&self, before: i64) -> Result<u64>;

    async fn pending_blob_deletions(&self) -> Result<PendingDeletions>;

    /// Those of `digests` that have no record and no deletion in progress: bytes in storage
    /// that the database does not know.
    async fn unrecorded_blobs(&self, digests: &[Digest]) -> Result<Vec<Digest>>;

    /// Step 1 for bytes without a record: marks those of `blobs` that are still unrecorded.
    async fn mark_orphan_blobs(&self, run: i64, blobs: &[(Digest, u64)]) -> Result<Vec<Digest>>;

    // Runs.

    /// Records a run starting now; returns its id.
    async fn start_gc_run(&self, trigger: &str, actor: &str, holder: &str) -> Result<i64>;

    async fn gc_run_progress(&self, id: i64, progress: &str) -> Result<()>;

    async fn finish_gc_run(
        &self,
        id: i64,
        status: GcRunStatus,
        report: &str,
        error: Option<&str>,
    ) -> Result<()>;

    /// Marks every run still `running` but `except` as interrupted (called by a run that
    /// holds the collector's lease: no other can be running); returns their ids.
    async fn interrupt_gc_runs(&self, except: i64) -> Result<Vec<i64>>;

    /// Runs, newest first, before id `before`.
    async fn gc_runs(&self, before: Option<i64>, limit: u32) -> Result<Vec<GcRunRecord>>;

    async fn gc_run(&self, id: i64) -> Result<Option<GcRunRecord>>;
}
