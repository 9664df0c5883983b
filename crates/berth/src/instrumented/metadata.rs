//! The metadata store's calls, timed and traced by a decorator (as the blob stores' are), so
//! that the SQL code carries no measuring: each call is a child span of its request, named
//! after the method, and its duration goes to `berth_database_operation_duration_seconds` by
//! operation and outcome. The histogram handles are registered once per method: a blob HEAD
//! makes one call, and a keyed lookup per call would cost more than the measuring.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use async_trait::async_trait;
use berth_meta::browse::{
    DayActivity, ManifestDetails, ManifestRecord, PullRecord, RepositorySummary, SearchQuery,
    SearchRow, StorageUsage, TagPage, TagSort,
};
use berth_meta::gc::{
    BlobCandidate, CandidatePage, ClaimedDeletion, Collectable, GcRunRecord, GcRunStatus, Marked,
    OtherWriters, PendingDeletions, UntaggedManifest,
};
use berth_meta::quotas::Recount;
use berth_meta::{
    BlobDeletion, BlobRecord, BrowseStore, CacheDefinition, CacheStore, CachedContent, Event,
    GcStore, ImmutableTagRule, Keep, MetadataStore, NewBlob, NewManifest, Origin, OutboxRouter,
    Quota, QuotaStore, Referrer, RestoreOutcome, Result, RetentionRule, StoreUsage, StoredManifest,
    TagHistoryEntry, TagHistoryStore, TagRuleStore, UploadLock, UploadSession, UpstreamAnswer,
};
use berth_oci::{Digest, Pattern, Reference, RepositoryName, Tag, TagPattern, UploadId};
use metrics::Histogram;
use tracing::Instrument;

/// A [`MetadataStore`] whose calls are timed and traced.
pub struct MeasuredMetadataStore {
    inner: Arc<dyn MetadataStore>,
    /// `sqlite` or `postgresql` (OpenTelemetry's `db.system` values).
    system: &'static str,
}

impl MeasuredMetadataStore {
    pub fn new(inner: Arc<dyn MetadataStore>, system: &'static str) -> MeasuredMetadataStore {
        MeasuredMetadataStore { inner, system }
    }
}

/// One method's histograms, by outcome.
struct Series {
    ok: OnceLock<Histogram>,
    error: OnceLock<Histogram>,
}

impl Series {
    const fn new() -> Series {
        Series {
            ok: OnceLock::new(),
            error: OnceLock::new(),
        }
    }
}

async fn measure<T>(
    system: &'static str,
    operation: &'static str,
    series: &'static Series,
    call: impl Future<Output = Result<T>>,
) -> Result<T> {
    let span = tracing::info_span!(
        "db",
        otel.name = operation,
        otel.kind = "client",
        db.system = system,
        db.operation = operation
    );
    let started = Instant::now();
    let result = call.instrument(span).await;
    let (histogram, outcome) = match &result {
        Ok(_) => (&series.ok, "ok"),
        Err(_) => (&series.error, "error"),
    };
    histogram
        .get_or_init(|| {
            metrics::histogram!(
                "berth_database_operation_duration_seconds",
                "operation" => operation,
                "outcome" => outcome
            )
        })
        .record(started.elapsed().as_secs_f64());
    result
}

/// Implements `$trait` for [`MeasuredMetadataStore`]: each listed method forwards to the
/// inner store through [`measure`]; `{ ... }` items are copied as they are.
macro_rules! measured {
    ($trait:ident { $(fn $name:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty;)* } $({ $($extra:tt)* })?) => {
        #[async_trait]
        impl $trait for MeasuredMetadataStore {
            $(
                async fn $name(&self $(, $arg: $ty)*) -> $ret {
                    static SERIES: Series = Series::new();
                    measure(self.system, stringify!($name), &SERIES, self.inner.$name($($arg),*)).await
                }
            )*
            $($($extra)*)?
        }
    };
}

measured!(MetadataStore {
    fn check(&self) -> Result<()>;
    fn blob(&self, repository: &RepositoryName, digest: &Digest) -> Result<Option<BlobRecord>>;
    fn blob_size(&self, repository: &RepositoryName, digest: &Digest) -> Result<Option<u64>>;
    fn record_committed_blob(&self, repository: &RepositoryName, blob: NewBlob<'_>, seen: Option<BlobDeletion>, origin: &Arc<Origin>) -> Result<Vec<Event>>;
    fn record_blob(&self, repository: &RepositoryName, blob: NewBlob<'_>, origin: &Arc<Origin>) -> Result<Vec<Event>>;
    fn link_blob(&self, repository: &RepositoryName, digest: &Digest, size: u64, origin: &Arc<Origin>) -> Result<Vec<Event>>;
    fn mount_blob(&self, repository: &RepositoryName, digest: &Digest, from: &RepositoryName, origin: &Arc<Origin>) -> Result<Option<(u64, Vec<Event>)>>;
    fn repositories_with_blob(&self, digest: &Digest, limit: u32) -> Result<Vec<RepositoryName>>;
    fn unlink_blob(&self, repository: &RepositoryName, digest: &Digest, origin: &Arc<Origin>) -> Result<Option<Vec<Event>>>;
    fn put_manifest(&self, manifest: NewManifest<'_>) -> Result<Vec<Event>>;
    fn manifest(&self, repository: &RepositoryName, reference: &Reference) -> Result<Option<StoredManifest>>;
    fn delete_manifest(&self, repository: &RepositoryName, digest: &Digest, origin: &Arc<Origin>) -> Result<Option<Vec<Event>>>;
    fn delete_tag(&self, repository: &RepositoryName, tag: &Tag, pointing_at: Option<&Digest>, origin: &Arc<Origin>) -> Result<Option<Vec<Event>>>;
    fn referrers(&self, repository: &RepositoryName, subject: &Digest, artifact_type: Option<&str>) -> Result<Vec<Referrer>>;
    fn repository_exists(&self, repository: &RepositoryName) -> Result<bool>;
    fn list_repositories(&self, after: Option<&str>, limit: u32) -> Result<Vec<String>>;
    fn list_tags(&self, repository: &RepositoryName, after: Option<&str>, limit: u32) -> Result<Vec<String>>;
    fn create_upload(&self, upload: &UploadSession) -> Result<()>;
    fn upload(&self, id: UploadId) -> Result<Option<UploadSession>>;
    fn advance_upload(&self, id: UploadId, expected_size: u64, new_size: u64, hash_state: &[u8]) -> Result<bool>;
    fn delete_upload(&self, id: UploadId) -> Result<bool>;
    fn stale_uploads(&self, updated_before: i64) -> Result<Vec<UploadId>>;
    fn lock_upload(&self, id: UploadId) -> Result<UploadLock>;
    fn usage(&self) -> Result<StoreUsage>;
} {
    fn route_events_to(&self, router: Arc<dyn OutboxRouter>) {
        self.inner.route_events_to(router)
    }
});

measured!(BrowseStore {
    fn repository_summaries(&self, names: &[String]) -> Result<Vec<RepositorySummary>>;
    fn tag_page(&self, repository: &RepositoryName, sort: TagSort, offset: u64, limit: u32) -> Result<TagPage>;
    fn manifest_record(&self, repository: &RepositoryName, digest: &Digest) -> Result<Option<ManifestRecord>>;
    fn manifest_tags(&self, repository: &RepositoryName, digest: &Digest) -> Result<Vec<String>>;
    fn details_of(&self, repository: &RepositoryName, digests: &[Digest]) -> Result<Vec<(Digest, ManifestDetails)>>;
    fn content_ids_of(&self, repository: &RepositoryName, digests: &[Digest]) -> Result<Vec<(Digest, String)>>;
    fn put_manifest_details(&self, repository: &RepositoryName, digest: &Digest, details: &ManifestDetails) -> Result<()>;
    fn manifests_without_details(&self, limit: u32) -> Result<Vec<(RepositoryName, Digest)>>;
    fn search(&self, query: &SearchQuery) -> Result<Vec<SearchRow>>;
    fn record_pulls(&self, pulls: &[PullRecord]) -> Result<()>;
    fn activity(&self, repository: &RepositoryName, since_day: i64) -> Result<Vec<DayActivity>>;
    fn storage_usage(&self, limit: u32) -> Result<StorageUsage>;
});

measured!(GcStore {
    fn blob_deletion(&self, digest: &Digest) -> Result<Option<BlobDeletion>>;
    fn unreferenced_blobs(&self, after: Option<&Digest>, collectable: Collectable, scan: u32, limit: u32) -> Result<CandidatePage>;
    fn mark_unreferenced_blobs(&self, run: i64, digests: &[Digest], collectable: Collectable) -> Result<Marked>;
    fn untagged_manifests(&self, repository: &RepositoryName, cutoff: i64, history_since: i64) -> Result<Vec<UntaggedManifest>>;
    fn delete_untagged_manifests(&self, repository: &RepositoryName, ids: &[i64], cutoff: i64, history_since: i64, origin: &Arc<Origin>) -> Result<(Vec<UntaggedManifest>, Vec<Event>)>;
    fn manifest_blob_references(&self, ids: &[i64]) -> Result<Vec<(i64, Digest)>>;
    fn blob_reference_counts(&self, digests: &[Digest], collectable: Collectable) -> Result<Vec<(BlobCandidate, u64, bool)>>;
    fn claim_blob_deletions(&self, run: i64, marked_before: i64, limit: u32) -> Result<Vec<ClaimedDeletion>>;
    fn finish_blob_deletions(&self, run: i64, digests: &[Digest]) -> Result<()>;
    fn prune_blob_tombstones(&self, before: i64) -> Result<u64>;
    fn pending_blob_deletions(&self) -> Result<PendingDeletions>;
    fn unrecorded_blobs(&self, digests: &[Digest]) -> Result<Vec<Digest>>;
    fn mark_orphan_blobs(&self, run: i64, blobs: &[(Digest, u64)]) -> Result<Vec<Digest>>;
    fn start_gc_run(&self, trigger: &str, actor: &str, holder: &str) -> Result<i64>;
    fn gc_run_progress(&self, id: i64, progress: &str) -> Result<()>;
    fn finish_gc_run(&self, id: i64, status: GcRunStatus, report: &str, error: Option<&str>) -> Result<()>;
    fn interrupt_gc_runs(&self, except: i64) -> Result<Vec<i64>>;
    fn gc_runs(&self, before: Option<i64>, limit: u32) -> Result<Vec<GcRunRecord>>;
    fn gc_run(&self, id: i64) -> Result<Option<GcRunRecord>>;
    fn other_writers(&self) -> Result<Option<OtherWriters>>;
});

measured!(CacheStore {
    fn cached_content(&self, prefix: &str) -> Result<CachedContent>;
    fn evict_manifests(&self, repository: &RepositoryName, ids: &[i64], pulled_before: i64, origin: &Arc<Origin>) -> Result<Option<Vec<Event>>>;
    fn cache_definitions(&self) -> Result<Vec<CacheDefinition>>;
    fn put_cache_definition(&self, kind: &str, name: &str, definition: &str, by: &str, create: bool) -> Result<bool>;
    fn delete_cache_definition(&self, kind: &str, name: &str) -> Result<bool>;
    fn upstream_answer(&self, repository: &RepositoryName, reference: &str) -> Result<Option<UpstreamAnswer>>;
    fn record_upstream_answer(&self, repository: &RepositoryName, reference: &str, answer: UpstreamAnswer) -> Result<()>;
    fn forget_upstream_answers(&self, found_before: i64, missing_before: i64) -> Result<u64>;
});

measured!(QuotaStore {
    fn quotas(&self) -> Result<Vec<Quota>>;
    fn set_quota(&self, repositories: &Pattern, limit_bytes: u64, by: &str) -> Result<Quota>;
    fn check_quota(&self, repository: &RepositoryName, digest: &Digest, size: u64) -> Result<()>;
    fn remove_quota(&self, repositories: &Pattern) -> Result<Option<Quota>>;
    fn recount_quotas(&self) -> Result<Vec<Recount>>;
});

measured!(TagHistoryStore {
    fn tag_history(&self, repository: &RepositoryName, tag: Option<&Tag>, since: i64, limit: u32) -> Result<Vec<TagHistoryEntry>>;
    fn restore_tag(&self, repository: &RepositoryName, tag: &Tag, digest: &Digest, origin: &Arc<Origin>) -> Result<RestoreOutcome>;
    fn expire_tag_history(&self, before: i64) -> Result<u64>;
});

measured!(TagRuleStore {
    fn immutable_tag_rules(&self) -> Result<Vec<ImmutableTagRule>>;
    fn add_immutable_tag_rule(&self, repositories: &Pattern, tags: &TagPattern, created_by: &str) -> Result<ImmutableTagRule>;
    fn remove_immutable_tag_rule(&self, id: i64) -> Result<Option<ImmutableTagRule>>;
    fn retention_rules(&self) -> Result<Vec<RetentionRule>>;
    fn add_retention_rule(&self, repositories: &Pattern, keep: &Keep, created_by: &str) -> Result<RetentionRule>;
    fn remove_retention_rule(&self, id: i64) -> Result<Option<RetentionRule>>;
});
