//! The metadata database, berth's source of truth.
//!
//! [`MetadataStore`] records which repositories exist, which blobs each holds, every
//! manifest's exact bytes and what it references, tags, and upload sessions. Storage holds
//! bytes; this decides what is visible. Writes that must be consistent (a manifest, its
//! references and its tag) happen in one transaction, and the checks that a manifest's
//! references exist run inside that same transaction, so a concurrent delete cannot slip
//! between check and write.
//!
//! The same database also holds identities ([`identity::IdentityStore`]): users, teams,
//! service accounts, tokens, policy rules and the audit log.
//!
//! One implementation per database engine; all of them pass the suite in
//! [`behaviour`] (enabled by the `behaviour-tests` feature).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use berth_oci::{Descriptor, Digest, Reference, RepositoryName, Tag, UploadId};
use bytes::Bytes;

#[cfg(any(test, feature = "behaviour-tests"))]
pub mod behaviour;
pub mod browse;
#[cfg(any(test, feature = "behaviour-tests"))]
pub mod browse_behaviour;
pub mod cache;
#[cfg(any(test, feature = "behaviour-tests"))]
pub mod cache_behaviour;
pub mod events;
pub mod external_identities;
#[cfg(any(test, feature = "behaviour-tests"))]
pub mod external_identities_behaviour;
pub mod gc;
#[cfg(any(test, feature = "behaviour-tests"))]
pub mod gc_behaviour;
pub mod identity;
pub mod inventory;
#[cfg(any(test, feature = "behaviour-tests"))]
pub mod inventory_behaviour;
mod keyed_locks;
pub mod passkeys;
#[cfg(any(test, feature = "behaviour-tests"))]
pub mod passkeys_behaviour;
pub mod password_resets;
pub mod postgres;
pub mod quotas;
#[cfg(any(test, feature = "behaviour-tests"))]
pub mod quotas_behaviour;
pub mod second_factors;
#[cfg(any(test, feature = "behaviour-tests"))]
pub mod second_factors_behaviour;
pub mod snapshot;
mod sql_browse;
mod sql_cache;
mod sql_digest_locks;
mod sql_external_identities;
mod sql_gc;
mod sql_identity;
mod sql_inventory;
mod sql_manifest_writes;
mod sql_outbox;
mod sql_passkeys;
mod sql_password_resets;
mod sql_quotas;
mod sql_second_factors;
mod sql_store;
mod sql_tag_history;
mod sql_tag_rules;
mod sql_webhooks;
pub mod sqlite;
mod sqlite_writers;
pub mod tag_history;
#[cfg(any(test, feature = "behaviour-tests"))]
pub mod tag_history_behaviour;
pub mod tag_rules;
#[cfg(any(test, feature = "behaviour-tests"))]
pub mod tag_rules_behaviour;
pub mod webhooks;

pub use browse::BrowseStore;
pub use cache::{CacheDefinition, CacheStore, CachedContent, CachedManifest, UpstreamAnswer};
pub use events::{Event, EventKind, Origin, OutboxRouter};
pub use external_identities::ExternalIdentityStore;
pub use gc::{BlobDeletion, DeletionState, GcStore};
pub use identity::IdentityStore;
pub use inventory::BlobInventory;
pub use keyed_locks::KeyedLocks;
pub use passkeys::PasskeyStore;
pub use postgres::PostgresStore;
pub use quotas::{Quota, QuotaStore};
pub use second_factors::SecondFactorStore;
pub use sql_browse::{BrowseDialect, day_of};
pub use sql_store::{Dialect, SqlStore};
pub use sqlite::SqliteStore;
pub use tag_history::{RestoreOutcome, TagHistoryEntry, TagHistoryStore};
pub use tag_rules::{ImmutableTagRule, Keep, RetentionRule, TagRuleStore};
pub use webhooks::{Leases, WebhookStore};

pub type Result<T, E = MetaError> = std::result::Result<T, E>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferenceKind {
    Blob,
    Manifest,
}

impl ReferenceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ReferenceKind::Blob => "blob",
            ReferenceKind::Manifest => "manifest",
        }
    }
}

/// A reference of a manifest that the repository cannot satisfy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokenReference {
    Missing {
        kind: ReferenceKind,
        digest: Digest,
    },
    /// Present, but the descriptor declares another size than what is stored.
    WrongSize {
        kind: ReferenceKind,
        digest: Digest,
        declared: u64,
        stored: u64,
    },
}

impl fmt::Display for BrokenReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BrokenReference::Missing { kind, digest } => {
                write!(f, "{} {digest} is not in the repository", kind.as_str())
            }
            BrokenReference::WrongSize {
                kind,
                digest,
                declared,
                stored,
            } => write!(
                f,
                "{} {digest} is declared with size {declared} but is {stored} bytes",
                kind.as_str()
            ),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    /// The manifest references content the repository does not hold as declared.
    #[error("manifest references content the repository does not hold")]
    BrokenReferences(Vec<BrokenReference>),
    /// The database cannot be reached or is busy; retrying may succeed.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("database error: {0}")]
    Database(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A uniqueness or reference rule refused the write: the name exists already, or what it
    /// refers to does not.
    #[error("conflict: {0}")]
    Conflict(String),
    /// Garbage collection deleted (or is deleting) the blob's bytes since the push looked:
    /// the bytes it committed cannot be trusted, and nothing was recorded.
    #[error("the blob is being garbage collected")]
    BeingCollected,
    /// A tag immutability rule protects the tag from being moved or deleted.
    #[error("tag {tag} is immutable (rule {rule})")]
    ImmutableTag { tag: String, rule: String },
    /// The write would take the quota on `quota` (a repository pattern) past its limit:
    /// `used` bytes of `limit` are counted, and it needs `needed` more.
    #[error("quota exceeded: used {used} of {limit} bytes ({quota}), {needed} more needed")]
    QuotaExceeded {
        quota: String,
        used: u64,
        limit: u64,
        needed: u64,
    },
}

/// A manifest to record, already parsed and validated by the registry.
pub struct NewManifest<'a> {
    pub repository: &'a RepositoryName,
    pub digest: &'a Digest,
    pub media_type: &'a str,
    pub content: &'a [u8],
    /// Blobs that must be held by the repository, with the declared sizes (for a push).
    pub blobs: &'a [Descriptor],
    /// Manifests that must be held by the repository, with the declared sizes.
    pub children: &'a [Descriptor],
    pub subject: Option<&'a Digest>,
    pub artifact_type: Option<&'a str>,
    pub annotations: Option<&'a BTreeMap<String, String>>,
    /// The tag to point at the manifest, when pushed by tag.
    pub tag: Option<&'a Tag>,
    /// Who pushed it, for the events it makes.
    pub origin: &'a Arc<Origin>,
    /// Who stores it, which decides the checks it passes.
    pub source: ManifestSource,
}

/// Who stores a manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestSource {
    /// A client's push (or an import): `blobs` and `children` must already be in the
    /// repository, and tag immutability rules apply.
    Push,
    /// A pull-through cache storing what its upstream serves: it stores a manifest before
    /// the content it references (fetched when a client asks for it), and the upstream, not
    /// the rules, decides where its tags point.
    Cache,
}

/// A stored manifest with its exact bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredManifest {
    pub digest: Digest,
    pub media_type: String,
    pub content: Bytes,
}

/// A manifest whose `subject` is a given digest, as the referrers API lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referrer {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    pub artifact_type: Option<String>,
    pub annotations: Option<BTreeMap<String, String>>,
}

/// A blob a repository holds, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRecord {
    pub size: u64,
    /// The content id a content-addressed store (IPFS) gave the blob.
    pub cid: Option<String>,
    /// Why the blob's stored bytes were found not to match its digest, if they were: it is
    /// not served until pushed again.
    pub quarantine: Option<String>,
}

/// A blob committed to storage, to record.
#[derive(Debug, Clone, Copy)]
pub struct NewBlob<'a> {
    pub digest: &'a Digest,
    pub size: u64,
    pub cid: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadSession {
    pub id: UploadId,
    pub repository: RepositoryName,
    /// Bytes durable in storage and acknowledged to the client.
    pub size: u64,
    /// The running hash of those bytes ([`berth_oci::DigestHasher::save_state`]).
    pub hash_state: Vec<u8>,
    /// Unix milliseconds.
    pub created_at: i64,
    pub updated_at: i64,
}

/// Held while one request writes to an upload; dropping it lets the next writer in.
pub type UploadLock = Box<dyn Send + Sync>;

/// The registry's metadata; [`BrowseStore`] is what the dashboard reads from the same tables.
/// Garbage collection's records ([`GcStore`]) are part of it: a push must see where a
/// collection stands with what it commits; so are tag immutability rules ([`TagRuleStore`]),
/// checked in the transaction that moves or deletes a tag; so are quotas ([`QuotaStore`]),
/// counted in the transactions that link and unlink blobs, and the tag history
/// ([`TagHistoryStore`]), written in the transactions that untag.
#[async_trait]
pub trait MetadataStore:
    BrowseStore + GcStore + TagRuleStore + QuotaStore + TagHistoryStore + CacheStore
{
    /// Whether the database answers, for readiness checks.
    async fn check(&self) -> Result<()>;

    // Blobs.

    /// `digest` as recorded, if `repository` holds it.
    async fn blob(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<BlobRecord>>;

    /// The size of `digest` if `repository` holds it.
    async fn blob_size(&self, repository: &RepositoryName, digest: &Digest) -> Result<Option<u64>> {
        Ok(self.blob(repository, digest).await?.map(|b| b.size))
    }

    /// Records a blob whose bytes are in storage and links it into `repository` (creating
    /// the repository on first use), when garbage collection cannot have deleted them since
    /// `seen` was read (see [`gc`]); otherwise [`MetaError::BeingCollected`]. A blob that was
    /// quarantined is healed: the bytes just committed were verified, and replace the record
    /// (and content id) of the bad ones. Refreshes the time of an existing link (a push again
    /// is a push: it restarts the grace period). Returns the events of the change.
    async fn record_committed_blob(
        &self,
        repository: &RepositoryName,
        blob: NewBlob<'_>,
        seen: Option<BlobDeletion>,
        origin: &Arc<Origin>,
    ) -> Result<Vec<Event>>;

    /// [`MetadataStore::record_committed_blob`] for bytes known to be in storage now.
    async fn record_blob(
        &self,
        repository: &RepositoryName,
        blob: NewBlob<'_>,
        origin: &Arc<Origin>,
    ) -> Result<Vec<Event>> {
        let seen = self.blob_deletion(blob.digest).await?;
        self.record_committed_blob(repository, blob, seen, origin)
            .await
    }

    /// [`MetadataStore::record_blob`] for a store that addresses blobs by digest.
    async fn link_blob(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        size: u64,
        origin: &Arc<Origin>,
    ) -> Result<Vec<Event>> {
        let blob = NewBlob {
            digest,
            size,
            cid: None,
        };
        self.record_blob(repository, blob, origin).await
    }

    /// Links into `repository` a blob that `from` holds; returns its size and the events, or
    /// `None` when `from` does not hold it or it is quarantined (then nothing changes).
    async fn mount_blob(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        from: &RepositoryName,
        origin: &Arc<Origin>,
    ) -> Result<Option<(u64, Vec<Event>)>>;

    /// Up to `limit` repositories holding `digest`, for mounts that name no source.
    async fn repositories_with_blob(
        &self,
        digest: &Digest,
        limit: u32,
    ) -> Result<Vec<RepositoryName>>;

    /// Removes `digest` from `repository`; `None` when it was not there.
    async fn unlink_blob(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        origin: &Arc<Origin>,
    ) -> Result<Option<Vec<Event>>>;

    // Manifests and tags.

    /// Records a manifest (and moves its tag to it) if every blob and child manifest it
    /// references is held by the repository with the declared size; otherwise changes
    /// nothing and reports what is missing. Recording a manifest that exists is not an error.
    /// Returns the events of the change (a push of an existing manifest is still a push).
    async fn put_manifest(&self, manifest: NewManifest<'_>) -> Result<Vec<Event>>;

    async fn manifest(
        &self,
        repository: &RepositoryName,
        reference: &Reference,
    ) -> Result<Option<StoredManifest>>;

    /// Deletes a manifest and every tag pointing at it; `None` when it was not there.
    async fn delete_manifest(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        origin: &Arc<Origin>,
    ) -> Result<Option<Vec<Event>>>;

    /// Deletes a tag, leaving its manifest; `None` when it was not there (or, with
    /// `pointing_at`, when it points at another manifest: retention removes only the tag it
    /// planned to remove, not one pushed again since).
    async fn delete_tag(
        &self,
        repository: &RepositoryName,
        tag: &Tag,
        pointing_at: Option<&Digest>,
        origin: &Arc<Origin>,
    ) -> Result<Option<Vec<Event>>>;

    /// From now on, writes record an outbox delivery for each endpoint `router` names, in the
    /// transaction of the change. Set once, at startup; later calls are ignored.
    fn route_events_to(&self, router: Arc<dyn OutboxRouter>);

    /// Manifests of `repository` whose subject is `subject`, optionally only those of one
    /// artifact type, oldest first.
    async fn referrers(
        &self,
        repository: &RepositoryName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Referrer>>;

    // Listing, in lexical (byte) order.

    async fn repository_exists(&self, repository: &RepositoryName) -> Result<bool>;

    /// Up to `limit` repository names after `after`.
    async fn list_repositories(&self, after: Option<&str>, limit: u32) -> Result<Vec<String>>;

    /// Up to `limit` tags of `repository` after `after`.
    async fn list_tags(
        &self,
        repository: &RepositoryName,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>>;

    // Upload sessions.

    async fn create_upload(&self, upload: &UploadSession) -> Result<()>;

    async fn upload(&self, id: UploadId) -> Result<Option<UploadSession>>;

    /// Advances an upload from `expected_size` to `new_size`; `false` (and no change) when
    /// the upload is gone or no longer at `expected_size`.
    async fn advance_upload(
        &self,
        id: UploadId,
        expected_size: u64,
        new_size: u64,
        hash_state: &[u8],
    ) -> Result<bool>;

    async fn delete_upload(&self, id: UploadId) -> Result<bool>;

    /// Uploads not written to since `updated_before` (Unix milliseconds).
    async fn stale_uploads(&self, updated_before: i64) -> Result<Vec<UploadId>>;

    /// Excludes other writers of the same upload until the returned lock is dropped, so that
    /// two requests can never write one upload's bytes at once.
    async fn lock_upload(&self, id: UploadId) -> Result<UploadLock>;

    /// How busy the store is, for metrics: uploads in progress (in the whole registry) and
    /// this process's connection pools.
    async fn usage(&self) -> Result<StoreUsage>;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreUsage {
    pub uploads_in_progress: u64,
    pub pools: Vec<PoolUse>,
}

/// One connection pool: `writer` and `reader` for SQLite, `main` for PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolUse {
    pub name: &'static str,
    pub open: u32,
    pub idle: u32,
    pub max: u32,
}

/// Now, in Unix milliseconds.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
