//! Counters of a remote's work: kept in the process (`snapshot`) and recorded through the
//! `metrics` facade, labelled with the remote's name, for the Prometheus exporter.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::SystemTime;

/// What a remote counts.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Counter {
    /// A read answered from the cache without asking the upstream.
    Hit,
    /// A read that needed the upstream (a fetch, or a tag's revalidation).
    Miss,
    /// A cached manifest served because the upstream could not be asked.
    Stale,
    /// A request sent upstream (token requests included).
    UpstreamRequest,
    /// Blob bytes received from the upstream.
    UpstreamBytes,
    /// A blob download started upstream (one per uncached blob, however many clients wait).
    BlobFetch,
    /// A broken blob transfer resumed with a `Range` request.
    BlobResume,
    /// A blob another instance was downloading, served from storage once it was there.
    BlobWait,
    /// An image evicted by the size cap.
    Eviction,
    /// Bytes the size cap's evictions freed (in the cache's count; garbage collection
    /// deletes them from storage).
    EvictedBytes,
}

pub struct CacheStats {
    remote: String,
    hits: AtomicU64,
    misses: AtomicU64,
    stale_serves: AtomicU64,
    upstream_requests: AtomicU64,
    upstream_bytes: AtomicU64,
    blob_fetches: AtomicU64,
    blob_resumes: AtomicU64,
    blob_waits: AtomicU64,
    evictions: AtomicU64,
    evicted_bytes: AtomicU64,
    /// The bytes cached under the remote's prefix, as the last size check counted them
    /// (-1 before the first).
    cached_bytes: AtomicI64,
    /// Called after each blob the cache stored (the size cap's job wakes up).
    filled: OnceLock<Box<dyn Fn() + Send + Sync>>,
    /// The upstream's last `RateLimit-Remaining` (Docker Hub), -1 if never seen.
    rate_limit_remaining: AtomicI64,
    /// The last failure of the upstream (or of what it sent), with when it happened.
    last_error: Mutex<Option<(String, SystemTime)>>,
}

impl CacheStats {
    pub(crate) fn new(remote: &str) -> CacheStats {
        CacheStats {
            remote: remote.to_string(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            stale_serves: AtomicU64::new(0),
            upstream_requests: AtomicU64::new(0),
            upstream_bytes: AtomicU64::new(0),
            blob_fetches: AtomicU64::new(0),
            blob_resumes: AtomicU64::new(0),
            blob_waits: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            evicted_bytes: AtomicU64::new(0),
            cached_bytes: AtomicI64::new(-1),
            filled: OnceLock::new(),
            rate_limit_remaining: AtomicI64::new(-1),
            last_error: Mutex::default(),
        }
    }

    pub(crate) fn add(&self, counter: Counter, n: u64) {
        let remote = self.remote.clone();
        let (atomic, metric) = match counter {
            Counter::Hit => (
                &self.hits,
                metrics::counter!("berth_cache_lookups_total", "remote" => remote, "result" => "hit"),
            ),
            Counter::Miss => (
                &self.misses,
                metrics::counter!("berth_cache_lookups_total", "remote" => remote, "result" => "miss"),
            ),
            Counter::Stale => (
                &self.stale_serves,
                metrics::counter!("berth_cache_stale_serves_total", "remote" => remote),
            ),
            Counter::UpstreamRequest => (
                &self.upstream_requests,
                metrics::counter!("berth_cache_upstream_requests_total", "remote" => remote),
            ),
            Counter::UpstreamBytes => (
                &self.upstream_bytes,
                metrics::counter!("berth_cache_upstream_bytes_total", "remote" => remote),
            ),
            Counter::BlobFetch => (
                &self.blob_fetches,
                metrics::counter!("berth_cache_blob_fetches_total", "remote" => remote),
            ),
            Counter::BlobResume => (
                &self.blob_resumes,
                metrics::counter!("berth_cache_blob_resumes_total", "remote" => remote),
            ),
            Counter::BlobWait => (
                &self.blob_waits,
                metrics::counter!("berth_cache_blob_waits_total", "remote" => remote),
            ),
            Counter::Eviction => (
                &self.evictions,
                metrics::counter!("berth_cache_evictions_total", "remote" => remote),
            ),
            Counter::EvictedBytes => (
                &self.evicted_bytes,
                metrics::counter!("berth_cache_evicted_bytes_total", "remote" => remote),
            ),
        };
        atomic.fetch_add(n, Ordering::Relaxed);
        metric.increment(n);
    }

    pub(crate) fn set_rate_limit_remaining(&self, remaining: i64) {
        self.rate_limit_remaining
            .store(remaining, Ordering::Relaxed);
        metrics::gauge!("berth_cache_upstream_rate_limit_remaining", "remote" => self.remote.clone())
            .set(remaining as f64);
    }

    /// Records what the last size check counted.
    pub(crate) fn set_cached_bytes(&self, bytes: u64) {
        let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
        self.cached_bytes.store(bytes, Ordering::Relaxed);
        metrics::gauge!("berth_cache_bytes", "remote" => self.remote.clone()).set(bytes as f64);
    }

    /// Calls `hook` after each blob the cache stores from now on (once: later hooks are
    /// ignored).
    pub fn when_filled(&self, hook: impl Fn() + Send + Sync + 'static) {
        let _ = self.filled.set(Box::new(hook));
    }

    pub(crate) fn filled(&self) {
        if let Some(hook) = self.filled.get() {
            hook();
        }
    }

    /// Remembers the upstream's latest failure, for the admin API.
    pub(crate) fn note_error(&self, error: String) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((error, SystemTime::now()));
    }

    /// The counters as JSON, for logs and the admin API.
    pub fn snapshot(&self) -> serde_json::Value {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        serde_json::json!({
            "remote": self.remote,
            "hits": get(&self.hits),
            "misses": get(&self.misses),
            "stale_serves": get(&self.stale_serves),
            "upstream_requests": get(&self.upstream_requests),
            "upstream_bytes": get(&self.upstream_bytes),
            "blob_fetches": get(&self.blob_fetches),
            "blob_resumes": get(&self.blob_resumes),
            "blob_waits": get(&self.blob_waits),
            "evictions": get(&self.evictions),
            "evicted_bytes": get(&self.evicted_bytes),
            "cached_bytes": match self.cached_bytes.load(Ordering::Relaxed) {
                -1 => serde_json::Value::Null,
                n => n.into(),
            },
            "rate_limit_remaining": self.rate_limit_remaining.load(Ordering::Relaxed),
            "last_error": self.last_error.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map(
                |(message, at)| serde_json::json!({
                    "message": message,
                    "at_unix": at.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
                })
            ),
        })
    }
}
