//! Quotas: a byte limit on the repositories a pattern matches (a namespace `acme` is the
//! pattern `acme/**`), counting each blob once however many of those repositories hold it.
//!
//! **The accounting invariant.** For every quota, `quota_blobs` holds exactly the digests
//! that some repository the quota covers links in `repository_blobs`, each with its size,
//! and `used_bytes` is the sum of those sizes. Every transaction that adds or removes a link
//! (a blob push, a mount, a blob delete, garbage collection's mark, fsck's repair) updates
//! both in the same transaction, under the digest's lock (so a link and an unlink of one
//! digest take turns) and after its own change to `repository_blobs` (on PostgreSQL, setting
//! a new quota locks that table against writers while it counts, so a link either is counted
//! by the new quota's scan or sees the quota and counts itself). Adding a digest to a quota
//! is a conditional `UPDATE ... WHERE used_bytes + size <= limit_bytes` of the quota's row:
//! the row lock makes concurrent pushes take turns, and none can overshoot the limit.

use async_trait::async_trait;
use berth_oci::{Digest, Pattern, RepositoryName};
use serde::Serialize;

use crate::Result;

/// A quota and what it counts now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Quota {
    pub id: i64,
    #[serde(serialize_with = "as_text")]
    pub repositories: Pattern,
    pub limit_bytes: u64,
    pub used_bytes: u64,
    /// Unix milliseconds.
    pub created_at: i64,
    pub created_by: String,
}

fn as_text<S: serde::Serializer>(
    value: &Pattern,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

impl Quota {
    pub fn covers(&self, repository: &str) -> bool {
        self.repositories.matches(repository)
    }
}

/// A quota whose counted usage differed from what its repositories hold, as a recount found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recount {
    #[serde(serialize_with = "as_text")]
    pub repositories: Pattern,
    pub recorded_bytes: u64,
    pub actual_bytes: u64,
}

#[async_trait]
pub trait QuotaStore: Send + Sync + 'static {
    /// Every quota with its usage, oldest first.
    async fn quotas(&self) -> Result<Vec<Quota>>;

    /// Sets the limit of the quota on `repositories`, creating it (and counting what its
    /// repositories hold now) if there is none.
    async fn set_quota(&self, repositories: &Pattern, limit_bytes: u64, by: &str) -> Result<Quota>;

    /// Whether `repository` has room for a blob of `size` bytes ([`MetaError::QuotaExceeded`]
    /// if not), read before its bytes are committed so that a push bound to be refused
    /// writes nothing. Recording the blob checks again, in its transaction.
    ///
    /// [`MetaError::QuotaExceeded`]: crate::MetaError::QuotaExceeded
    async fn check_quota(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        size: u64,
    ) -> Result<()>;

    /// Removes the quota on `repositories`; `None` if there is none.
    async fn remove_quota(&self, repositories: &Pattern) -> Result<Option<Quota>>;

    /// Counts every quota's usage again from the links (a repair: the count is kept by the
    /// writes themselves); returns the quotas whose count was wrong, now corrected.
    async fn recount_quotas(&self) -> Result<Vec<Recount>>;
}
