//! What pull-through caches keep in the metadata store beyond ordinary content: the view of
//! a remote's cached images that its size cap's eviction plans from, the eviction itself,
//! and what each upstream last answered about a tag or digest (revalidation and the negative
//! cache, shared by every instance and kept across restarts).

use std::sync::Arc;

use async_trait::async_trait;
use berth_oci::{Digest, RepositoryName};

use crate::Result;
use crate::events::{Event, Origin};

/// A manifest held under a remote's prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedManifest {
    pub id: i64,
    pub repository: RepositoryName,
    pub digest: Digest,
    /// The manifest's own bytes.
    pub size: u64,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds of the last pull the pull statistics recorded, if any.
    pub last_pulled_at: Option<i64>,
}

/// Everything cached under a prefix: the manifests, which of them belong to which (an
/// index's platform manifests, a referrer's subject), and the blobs they reference that the
/// repository holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CachedContent {
    pub manifests: Vec<CachedManifest>,
    /// `(owner, owned)` manifest ids: an index and its child, a subject and its referrer.
    pub edges: Vec<(i64, i64)>,
    /// `(manifest id, blob digest, size)` for each referenced blob the repository holds.
    pub blobs: Vec<(i64, Digest, u64)>,
}

/// A remote or virtual repository made through the admin API or the dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheDefinition {
    /// `remote` or `virtual`.
    pub kind: String,
    pub name: String,
    /// The JSON of its configuration keys (secrets included: never shown).
    pub definition: String,
    /// Unix milliseconds.
    pub created_at: i64,
    pub updated_at: i64,
    pub updated_by: String,
}

/// What a remote's upstream last answered about a repository's tag or digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamAnswer {
    /// `true`: the upstream had it (a tag checked then); `false`: it answered 404.
    pub found: bool,
    /// Unix milliseconds.
    pub at: i64,
}

#[async_trait]
pub trait CacheStore: Send + Sync + 'static {
    /// What is cached in the repositories whose names start with `prefix` (empty: all).
    async fn cached_content(&self, prefix: &str) -> Result<CachedContent>;

    /// Removes the manifests `ids` of `repository` with their tags, as one eviction from a
    /// cache (no tag history: the upstream still has them), unless one of them was pulled
    /// after `pulled_before` (Unix milliseconds) or another manifest of the repository
    /// still references one of them; `None` then, and nothing changes. The blobs stay
    /// linked until garbage collection finds them unreferenced.
    async fn evict_manifests(
        &self,
        repository: &RepositoryName,
        ids: &[i64],
        pulled_before: i64,
        origin: &Arc<Origin>,
    ) -> Result<Option<Vec<Event>>>;

    /// Every remote and virtual repository made through the API, by kind and name.
    async fn cache_definitions(&self) -> Result<Vec<CacheDefinition>>;

    /// Creates (`create`: `false` if it exists) or replaces (`false` if it does not) one.
    async fn put_cache_definition(
        &self,
        kind: &str,
        name: &str,
        definition: &str,
        by: &str,
        create: bool,
    ) -> Result<bool>;

    /// Removes one; `false` if there was none.
    async fn delete_cache_definition(&self, kind: &str, name: &str) -> Result<bool>;

    /// What the upstream last answered about `reference` (a tag or a digest) of
    /// `repository`, if anything was recorded.
    async fn upstream_answer(
        &self,
        repository: &RepositoryName,
        reference: &str,
    ) -> Result<Option<UpstreamAnswer>>;

    /// Records an upstream's answer, unless a later one is recorded already (another
    /// instance asked after this one).
    async fn record_upstream_answer(
        &self,
        repository: &RepositoryName,
        reference: &str,
        answer: UpstreamAnswer,
    ) -> Result<()>;

    /// Forgets the answers no remote uses any more: found before `found_before`, 404s
    /// before `missing_before` (Unix milliseconds); how many.
    async fn forget_upstream_answers(&self, found_before: i64, missing_before: i64) -> Result<u64>;
}
