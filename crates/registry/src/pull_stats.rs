//! Pull statistics: how often, and when last, each manifest and tag was pulled, and pulls per
//! repository and day. Pulls are counted in memory and written in batches (one transaction
//! per flush, however many pulls it covers), never one write per request: a pull is a read,
//! and must not queue behind a write.
//!
//! It is a listener on the registry's event stream ([`EventSink`]): each `manifest.pulled`
//! event is counted; [`PullStats::flush`] is run every few seconds (and at shutdown) by the
//! background runner.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use berth_meta::browse::PullRecord;
use berth_meta::{MetadataStore, now_millis};
use berth_oci::{Digest, RepositoryName, Tag};

use crate::Result;
use crate::errors::from_meta;
use crate::events::{Event, EventKind, EventSink};

/// Distinct (repository, manifest, tag) keys kept between flushes at most; beyond it a flush
/// is due at once (the caller sees [`PullStats::record`] return `true`).
const FLUSH_AT: usize = 10_000;

type Key = (RepositoryName, Digest, Option<Tag>);

pub struct PullStats {
    meta: Arc<dyn MetadataStore>,
    pending: Mutex<HashMap<Key, (u64, i64)>>,
    /// Asks for a flush before the next scheduled one (the background runner's waker).
    flush_soon: OnceLock<Box<dyn Fn() + Send + Sync>>,
}

impl PullStats {
    pub fn new(meta: Arc<dyn MetadataStore>) -> PullStats {
        PullStats {
            meta,
            pending: Mutex::new(HashMap::new()),
            flush_soon: OnceLock::new(),
        }
    }

    /// What to call when so many distinct pulls are pending that a flush should not wait
    /// for its schedule (set once, by whoever runs the flushes).
    pub fn when_full(&self, flush_soon: impl Fn() + Send + Sync + 'static) {
        let _ = self.flush_soon.set(Box::new(flush_soon));
    }

    /// Counts a pull of `digest` in `repository` (through `tag`, when pulled by tag). Returns
    /// whether enough is pending that a flush should run now.
    pub fn record(&self, repository: &RepositoryName, digest: &Digest, tag: Option<&Tag>) -> bool {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let entry = pending
            .entry((repository.clone(), digest.clone(), tag.cloned()))
            .or_insert((0, 0));
        entry.0 += 1;
        entry.1 = entry.1.max(now_millis());
        pending.len() >= FLUSH_AT
    }

    /// Writes what is pending in one transaction; returns how many pulls it wrote. On
    /// failure the counts are kept for the next flush.
    pub async fn flush(&self) -> Result<u64> {
        let batch: Vec<PullRecord> = {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            pending
                .drain()
                .map(|((repository, digest, tag), (count, at))| PullRecord {
                    repository,
                    digest,
                    tag,
                    count,
                    at,
                })
                .collect()
        };
        if batch.is_empty() {
            return Ok(0);
        }
        let pulls = batch.iter().map(|p| p.count).sum();
        if let Err(e) = self.meta.record_pulls(&batch).await {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            for record in batch {
                let entry = pending
                    .entry((record.repository, record.digest, record.tag))
                    .or_insert((0, 0));
                entry.0 += record.count;
                entry.1 = entry.1.max(record.at);
            }
            return Err(from_meta(e));
        }
        Ok(pulls)
    }
}

impl EventSink for PullStats {
    fn publish(&self, event: &Event) {
        if event.kind == EventKind::ManifestPulled
            && let Some(digest) = &event.digest
        {
            let full = self.record(&event.repository, digest, event.tag.as_ref());
            if full && let Some(flush_soon) = self.flush_soon.get() {
                flush_soon();
            }
        }
    }
}
