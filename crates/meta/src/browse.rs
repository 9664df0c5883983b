//! What the dashboard reads and the little it records: repository summaries, pages of tags
//! with their sizes, platforms and pull counts, manifests with when they were pushed, the
//! full-text search over names, tags, labels and annotations, pull statistics (written in
//! batches) and storage usage. Implemented once over SQL in `sql_browse`.

use async_trait::async_trait;
use berth_oci::{Digest, RepositoryName, Tag};
use bytes::Bytes;

use crate::Result;

/// Facts about a manifest read from it and its config when it was pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestDetails {
    /// `image`, `index`, `signature`, `sbom`, `attestation`, `helm`, `wasm` or `artifact`.
    pub kind: String,
    /// `os/architecture[/variant]` of the image, or of each image an index lists.
    pub platforms: Vec<String>,
    /// Compressed bytes: the manifest, its config and its layers (an index: its children's too).
    pub total_size: u64,
    pub description: Option<String>,
    /// The values of its labels and annotations, for the search index.
    pub words: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositorySummary {
    pub name: String,
    pub tags: u64,
    /// When a tag last moved (Unix milliseconds).
    pub last_pushed_at: Option<i64>,
    /// The newest description among its tagged images.
    pub description: Option<String>,
}

/// How a page of tags is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TagSort {
    #[default]
    Name,
    /// Newest first.
    Pushed,
    /// Largest first.
    Size,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagRow {
    pub tag: String,
    pub digest: Digest,
    pub media_type: String,
    /// When the tag was last pointed at its manifest.
    pub pushed_at: i64,
    /// The manifest's total size when its details are known, else the manifest's own size.
    pub size: u64,
    pub kind: Option<String>,
    pub platforms: Vec<String>,
    pub pulls: u64,
    pub last_pulled_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagPage {
    /// Every tag of the repository, not only this page's.
    pub total: u64,
    pub rows: Vec<TagRow>,
}

/// A stored manifest with what the pages show about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestRecord {
    pub digest: Digest,
    pub media_type: String,
    pub content: Bytes,
    pub pushed_at: i64,
    pub details: Option<ManifestDetails>,
    pub pulls: u64,
    pub last_pulled_at: Option<i64>,
}

/// A search: every word must match (as a prefix of a word of the entry). Only the first
/// `limit` matching entries in the index's order are read (every repository's name first,
/// then every repository's first tag, then its second, ...), so that the work a search costs
/// is bounded however many entries match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchQuery {
    /// Lower-case letters and digits only; empty: every tag that passes the filters.
    pub words: Vec<String>,
    /// Only repositories under this namespace (`team` finds `team/app`, `team/x/y`).
    pub namespace: Option<String>,
    /// Only tags of images for this `os/architecture[/variant]`.
    pub platform: Option<String>,
    /// Only tags whose manifest has a signature among its referrers.
    pub signed: bool,
    /// Only tags whose manifest has an SBOM among its referrers.
    pub sbom: bool,
    /// Entries read at most.
    pub limit: u32,
}

/// One matching entry: a repository (`tag` empty) or one of its tags.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchRow {
    pub repository: String,
    pub tag: String,
    /// How well the entry matches; larger is better.
    pub score: f64,
}

/// Pulls of one manifest (through one tag, or by digest) to add to the statistics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRecord {
    pub repository: RepositoryName,
    pub digest: Digest,
    pub tag: Option<Tag>,
    pub count: u64,
    /// The latest of them (Unix milliseconds).
    pub at: i64,
}

/// A repository's pulls and pushed manifests on one day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayActivity {
    /// Days since 1970-01-01 (UTC).
    pub day: i64,
    pub pulls: u64,
    pub pushes: u64,
}

/// Stored bytes of a repository or a namespace, each blob counted once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    pub name: String,
    pub blobs: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageUsage {
    /// Every blob once, whichever repositories hold it.
    pub total: Usage,
    /// Largest first; `""` names the repositories outside any namespace.
    pub namespaces: Vec<Usage>,
    /// Largest first, at most the number asked for.
    pub repositories: Vec<Usage>,
}

#[async_trait]
pub trait BrowseStore: Send + Sync {
    /// Summaries of the named repositories (unknown names are left out), in the given order.
    async fn repository_summaries(&self, names: &[String]) -> Result<Vec<RepositorySummary>>;

    /// A page of a repository's tags.
    async fn tag_page(
        &self,
        repository: &RepositoryName,
        sort: TagSort,
        offset: u64,
        limit: u32,
    ) -> Result<TagPage>;

    async fn manifest_record(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<ManifestRecord>>;

    /// The tags pointing at a manifest, sorted.
    async fn manifest_tags(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
    ) -> Result<Vec<String>>;

    /// Details of the manifests of `repository` among `digests` (for index children and
    /// referrers), in no particular order.
    async fn details_of(
        &self,
        repository: &RepositoryName,
        digests: &[Digest],
    ) -> Result<Vec<(Digest, ManifestDetails)>>;

    /// The content ids (IPFS CIDs) a content-addressed store gave the blobs of `repository`
    /// among `digests`; blobs without one are left out, in no particular order.
    async fn content_ids_of(
        &self,
        repository: &RepositoryName,
        digests: &[Digest],
    ) -> Result<Vec<(Digest, String)>>;

    /// Records a manifest's details (once: a manifest never changes). The search index
    /// picks them up for every tag of the manifest.
    async fn put_manifest_details(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        details: &ManifestDetails,
    ) -> Result<()>;

    /// Up to `limit` manifests that have no details yet (pushed before berth recorded them).
    async fn manifests_without_details(&self, limit: u32) -> Result<Vec<(RepositoryName, Digest)>>;

    /// The first `query.limit` matching entries in the index's order (see [`SearchQuery`]),
    /// each with its score, in no particular order.
    async fn search(&self, query: &SearchQuery) -> Result<Vec<SearchRow>>;

    /// Adds pulls to the statistics in one transaction. Pulls of manifests deleted since
    /// are dropped.
    async fn record_pulls(&self, pulls: &[PullRecord]) -> Result<()>;

    /// A repository's activity on the days from `since_day` on (days with none are absent).
    async fn activity(
        &self,
        repository: &RepositoryName,
        since_day: i64,
    ) -> Result<Vec<DayActivity>>;

    /// Stored bytes per namespace and for the `limit` largest repositories.
    async fn storage_usage(&self, limit: u32) -> Result<StorageUsage>;
}
