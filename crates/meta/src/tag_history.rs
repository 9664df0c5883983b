//! Tag history: where a tag pointed before it was deleted (by a client, the dashboard or
//! retention) or moved by a push, written in the transaction that untagged it.
//!
//! **The history-reachability rule.** Garbage collection treats a manifest that an entry
//! removed within `retention.taghistory` names (in the same repository) as reachable, as if
//! it were still tagged: so are its children, referrers and blobs. So a tag restored within
//! that time finds its content; after it, the entry no longer protects anything (and the
//! `tag-history` job forgets it).

use std::sync::Arc;

use async_trait::async_trait;
use berth_oci::{Digest, RepositoryName, Tag};
use serde::Serialize;

use crate::Result;
use crate::events::{Event, Origin};

/// One time a tag was taken off a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TagHistoryEntry {
    pub id: i64,
    pub repository: String,
    pub tag: String,
    /// The manifest it pointed at.
    pub digest: String,
    /// `deleted` or `moved`.
    pub reason: String,
    pub actor: String,
    /// Unix milliseconds.
    pub removed_at: i64,
    /// Whether the manifest is still stored in the repository, or kept as the copy of one
    /// deleted by digest (it can be restored if what it references is still there).
    pub restorable: bool,
}

/// Why a restore did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreOutcome {
    /// The tag points at the manifest now; the events of the change (none if it already did).
    Restored(Vec<Event>),
    /// The repository does not hold that manifest any more (garbage collected or deleted).
    ContentGone,
}

#[async_trait]
pub trait TagHistoryStore: Send + Sync + 'static {
    /// Entries of `repository` (of one tag, if given) removed at or after `since`, newest
    /// first, at most `limit`.
    async fn tag_history(
        &self,
        repository: &RepositoryName,
        tag: Option<&Tag>,
        since: i64,
        limit: u32,
    ) -> Result<Vec<TagHistoryEntry>>;

    /// Points `tag` at the manifest `digest` again, if the repository still holds it. A tag
    /// that now points elsewhere is moved (immutability rules apply, and where it pointed
    /// goes into the history); one that does not exist is created.
    async fn restore_tag(
        &self,
        repository: &RepositoryName,
        tag: &Tag,
        digest: &Digest,
        origin: &Arc<Origin>,
    ) -> Result<RestoreOutcome>;

    /// Forgets entries removed before `before`; returns how many.
    async fn expire_tag_history(&self, before: i64) -> Result<u64>;
}
