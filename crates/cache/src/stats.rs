//! Counters of a remote's work, kept in the process for the metrics exporter.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

#[derive(Debug)]
pub struct CacheStats {
    /// Reads answered from the cache without asking the upstream.
    pub hits: AtomicU64,
    /// Reads that needed the upstream (a fetch, or a tag's revalidation).
    pub misses: AtomicU64,
    /// Cached manifests served because the upstream could not be asked.
    pub stale_serves: AtomicU64,
    /// Requests sent upstream (token requests included).
    pub upstream_requests: AtomicU64,
    /// Blob bytes received from the upstream.
    pub upstream_bytes: AtomicU64,
    /// Blob downloads started upstream (one per uncached blob, however many clients wait).
    pub blob_fetches: AtomicU64,
    /// The upstream's last `RateLimit-Remaining` (Docker Hub), -1 if never seen.
    pub rate_limit_remaining: AtomicI64,
}

impl Default for CacheStats {
    fn default() -> Self {
        CacheStats {
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            stale_serves: AtomicU64::new(0),
            upstream_requests: AtomicU64::new(0),
            upstream_bytes: AtomicU64::new(0),
            blob_fetches: AtomicU64::new(0),
            rate_limit_remaining: AtomicI64::new(-1),
        }
    }
}

impl CacheStats {
    pub(crate) fn count(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// The counters as JSON, for logs and the admin API.
    pub fn snapshot(&self) -> serde_json::Value {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        serde_json::json!({
            "hits": get(&self.hits),
            "misses": get(&self.misses),
            "stale_serves": get(&self.stale_serves),
            "upstream_requests": get(&self.upstream_requests),
            "upstream_bytes": get(&self.upstream_bytes),
            "blob_fetches": get(&self.blob_fetches),
            "rate_limit_remaining": self.rate_limit_remaining.load(Ordering::Relaxed),
        })
    }
}
