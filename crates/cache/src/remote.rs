//! A remote repository: the read path of a name prefix, decorating the local registry.
//!
//! What is cached is ordinary content of the local registry under the berth name
//! (`hub/library/alpine`): manifests stored byte for byte with their tags, blobs committed
//! like pushed ones. A read answers from there when it can and asks the upstream
//! (`library/alpine`) only for what is missing, or for a tag whose last check is older than
//! `revalidate_after` (one HEAD, never a GET, when nothing changed).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use berth_oci::manifest::MAX_MANIFEST_SIZE;
use berth_oci::{
    ByteRange, Digest, DigestHasher, ErrorCode, Page, Pattern, Reference, RegistryError,
    RepositoryName, Tag,
};
use berth_registry::events::Origin;
use berth_registry::{BlobRead, Listing, Mounted, ReadPath, Registry, StoredManifest, Writes};
use berth_storage::BlobContent;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use url::Url;

use crate::Shared;
use crate::answers::Answers;
use crate::errors::{CacheFailure, is_unknown};
use crate::flight::{Fetch, Flights, follow};
use crate::platforms::PlatformFilter;
use crate::stats::{CacheStats, Counter};
use crate::upstream::{Credentials, Upstream, UpstreamError, UpstreamTls};

type Result<T> = std::result::Result<T, RegistryError>;

/// How a remote repository behaves (from `remotes.<name>` or registry:2's `proxy`).
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteSettings {
    /// The remote's name, for logs (`proxy` for registry:2's proxy mode).
    pub name: String,
    /// Empty (every repository) or ending in `/`.
    pub prefix: String,
    /// The upstream's URLs, tried in order.
    pub urls: Vec<Url>,
    pub credentials: Option<Credentials>,
    /// How the upstream's TLS certificate is checked.
    pub tls: UpstreamTls,
    /// How long a checked tag is served without asking the upstream again.
    pub revalidate_after: Duration,
    /// Tags never revalidated once cached.
    pub immutable_tags: Vec<Pattern>,
    /// How long an upstream 404 is remembered.
    pub negative_ttl: Duration,
    /// Serve a cached manifest when the upstream cannot be asked.
    pub serve_stale: bool,
    /// How long the upstream may stay silent, or send a blob at a crawl; a manifest may
    /// take twice this.
    pub timeout: Duration,
    /// berth's cap on requests to the upstream, per second.
    pub rate_limit: Option<u32>,
    /// The platforms (`os/architecture[/variant]`) whose images of an index are cached;
    /// empty: all.
    pub platforms: Vec<String>,
    /// The most bytes cached under the prefix (`maxsize`); past it, the least recently
    /// pulled images are evicted. `None`: no cap.
    pub max_size: Option<u64>,
}

pub struct Remote {
    local: Arc<Registry>,
    settings: RemoteSettings,
    upstream: Arc<Upstream>,
    stats: Arc<CacheStats>,
    /// When each tag was last checked upstream, and the upstream's 404s (shared by every
    /// instance through the metadata store).
    answers: Answers,
    shared: Shared,
    flights: Arc<Flights>,
    platforms: Option<PlatformFilter>,
    /// The actor of the cache's own writes, in events and the audit trail.
    origin: Arc<Origin>,
    /// Reads in progress and the last read, per repository: the size cap does not evict
    /// what is being pulled.
    activity: Arc<Mutex<HashMap<RepositoryName, Activity>>>,
}

/// A repository's reads, for the size cap.
#[derive(Debug, Clone, Copy)]
struct Activity {
    in_progress: usize,
    last: Instant,
}

/// Where a download a request joined stands.
enum Joined {
    /// This instance is downloading it: its size.
    Streaming(u64),
    /// It is in storage (another instance downloaded it).
    Stored,
    Failed(CacheFailure),
}

/// A pull's requests (manifest, config, layers) come within moments of one another: a
/// repository read this recently counts as being pulled even between two requests.
const PULL_GAP: Duration = Duration::from_secs(10);

/// A read in progress in a repository, until dropped.
struct Reading {
    activity: Arc<Mutex<HashMap<RepositoryName, Activity>>>,
    repository: RepositoryName,
}

impl Reading {
    fn start(
        activity: &Arc<Mutex<HashMap<RepositoryName, Activity>>>,
        repository: &RepositoryName,
    ) -> Reading {
        let mut map = activity.lock().unwrap_or_else(|p| p.into_inner());
        // Bounded: idle entries go whenever the map grows large.
        if map.len() >= 10_000 {
            map.retain(|_, a| a.in_progress > 0 || a.last.elapsed() < PULL_GAP);
        }
        let entry = map.entry(repository.clone()).or_insert(Activity {
            in_progress: 0,
            last: Instant::now(),
        });
        entry.in_progress += 1;
        entry.last = Instant::now();
        Reading {
            activity: Arc::clone(activity),
            repository: repository.clone(),
        }
    }
}

impl Drop for Reading {
    fn drop(&mut self) {
        let mut map = self.activity.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = map.get_mut(&self.repository) {
            entry.in_progress = entry.in_progress.saturating_sub(1);
            entry.last = Instant::now();
        }
    }
}

/// What one pass of the size cap did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct EvictionReport {
    pub remote: String,
    pub max_size: u64,
    pub cached_bytes: u64,
    pub images: usize,
    pub evicted_images: usize,
    pub evicted_bytes: u64,
    /// Images kept because they were pulled while the pass ran.
    pub kept_pulled: usize,
    /// Evicted manifest digests by repository.
    pub evicted: std::collections::BTreeMap<String, Vec<String>>,
}

impl Remote {
    pub fn new(
        local: Arc<Registry>,
        settings: RemoteSettings,
        shared: &Shared,
    ) -> std::result::Result<Remote, String> {
        let stats = Arc::new(CacheStats::new(&settings.name));
        let upstream = Upstream::new(
            settings.urls.clone(),
            settings.credentials.clone(),
            &settings.tls,
            settings.timeout,
            settings.rate_limit,
            Arc::clone(&stats),
        )?;
        let platforms = PlatformFilter::new(settings.platforms.clone());
        let origin = Arc::new(Origin {
            actor: format!("cache:{}", settings.name),
            address: None,
            user_agent: None,
            request_id: None,
            method: None,
            host: None,
        });
        let answers = Answers::new(Arc::clone(&shared.store), &settings.name);
        Ok(Remote {
            local,
            settings,
            upstream: Arc::new(upstream),
            stats,
            answers,
            shared: shared.clone(),
            flights: Arc::default(),
            platforms,
            origin,
            activity: Arc::default(),
        })
    }

    pub fn name(&self) -> &str {
        &self.settings.name
    }

    pub fn max_size(&self) -> Option<u64> {
        self.settings.max_size
    }

    /// Whether a read of `repository` is in progress or just happened.
    fn busy(&self, repository: &RepositoryName) -> bool {
        let map = self.activity.lock().unwrap_or_else(|p| p.into_inner());
        map.get(repository)
            .is_some_and(|a| a.in_progress > 0 || a.last.elapsed() < PULL_GAP)
    }

    /// Brings what is cached under the prefix within `maxsize`: counts it, and evicts the
    /// least recently pulled images that are not being pulled until the rest fit. Pulls
    /// must be recorded (the pull statistics flushed) before, or they do not count.
    pub async fn enforce_size_cap(&self) -> Result<Option<EvictionReport>> {
        let Some(cap) = self.settings.max_size else {
            return Ok(None);
        };
        let content = self.local.cached_content(&self.settings.prefix).await?;
        let plan = crate::eviction::plan(&content, cap, |r| self.busy(r));
        let mut report = EvictionReport {
            remote: self.settings.name.clone(),
            max_size: cap,
            cached_bytes: plan.cached_bytes,
            images: plan.images,
            ..EvictionReport::default()
        };
        let mut evicted = Vec::new();
        for victim in plan.victims {
            // Checked again: a pull may have started since the plan.
            if self.busy(&victim.repository) {
                report.kept_pulled += 1;
                continue;
            }
            let gone = self
                .local
                .evict_cached(
                    &self.origin,
                    &victim.repository,
                    &victim.ids,
                    victim.last_used,
                )
                .await?;
            if !gone {
                report.kept_pulled += 1;
                continue;
            }
            tracing::info!(
                remote = %self.settings.name, repository = %victim.repository,
                digest = %victim.digest, bytes = victim.bytes,
                "evicted a cached image (size cap)"
            );
            self.stats.add(Counter::Eviction, 1);
            self.stats.add(Counter::EvictedBytes, victim.bytes);
            report.evicted_images += 1;
            report.evicted_bytes += victim.bytes;
            report.cached_bytes -= victim.bytes;
            evicted.push(victim);
        }
        report.evicted = crate::eviction::by_repository(&evicted);
        self.stats.set_cached_bytes(report.cached_bytes);
        Ok(Some(report))
    }

    /// The remote as a namespace of the registry: its prefix, served by it, refusing writes.
    pub fn mount(self: Arc<Self>) -> Mounted {
        Mounted {
            prefix: self.settings.prefix.clone(),
            description: format!(
                "remote repository {:?}, a pull-through cache of {}",
                self.settings.name,
                self.upstream.describe()
            ),
            writes: Writes::Refused,
            mirrors: self.upstream.mirrored_hosts(),
            reads: self,
        }
    }

    pub fn stats(&self) -> &Arc<CacheStats> {
        &self.stats
    }

    /// The name upstream: the berth name without the prefix.
    fn upstream_name<'a>(&self, repository: &'a RepositoryName) -> &'a str {
        &repository.as_str()[self.settings.prefix.len()..]
    }

    fn hit(&self) {
        self.stats.add(Counter::Hit, 1);
    }

    fn miss(&self) {
        self.stats.add(Counter::Miss, 1);
    }

    /// A local read's answer, unless it failed only because nothing is cached (`None`:
    /// ask the upstream). Counted as a hit or a miss.
    fn cached<T>(&self, local: Result<T>) -> Option<Result<T>> {
        match local {
            Err(e) if is_unknown(&e) => {
                self.miss();
                None
            }
            answer => {
                self.hit();
                Some(answer)
            }
        }
    }

    /// Fails with `BLOB_UNKNOWN` if the upstream said recently that it has no such blob.
    async fn blob_not_missing(&self, repository: &RepositoryName, digest: &Digest) -> Result<()> {
        if self.known_missing(repository, digest.as_str()).await {
            return Err(RegistryError::blob_unknown(digest));
        }
        Ok(())
    }

    /// Whether the upstream said recently that it has nothing at `reference`.
    async fn known_missing(&self, repository: &RepositoryName, reference: &str) -> bool {
        self.answers
            .within(repository, reference, false, self.settings.negative_ttl)
            .await
    }

    async fn remember_missing(&self, repository: &RepositoryName, reference: &str) {
        self.answers.record(repository, reference, false).await;
    }

    /// Whether a cached tag may be served without asking the upstream.
    async fn tag_is_fresh(&self, repository: &RepositoryName, tag: &Tag) -> bool {
        if self
            .settings
            .immutable_tags
            .iter()
            .any(|p| p.matches(tag.as_str()))
        {
            return true;
        }
        self.answers
            .within(
                repository,
                tag.as_str(),
                true,
                self.settings.revalidate_after,
            )
            .await
    }

    async fn mark_checked(&self, repository: &RepositoryName, tag: &Tag) {
        self.answers.record(repository, tag.as_str(), true).await;
    }

    /// Fetches a manifest from the upstream and stores it (with its tag, when fetched by
    /// tag). Nothing is stored unless it is a valid manifest of at most 4 MiB whose digest
    /// matches what was asked (by digest) or what the upstream announced (by tag).
    async fn fetch_manifest(
        &self,
        repository: &RepositoryName,
        reference: &Reference,
    ) -> Result<()> {
        let name = self.upstream_name(repository);
        let reference_text = reference.to_string();
        if self.known_missing(repository, &reference_text).await {
            return Err(RegistryError::manifest_unknown(reference));
        }
        let answer = match self
            .upstream
            .manifest(name, &reference.to_string())
            .await
            .map_err(CacheFailure::from)?
        {
            Some(answer) => answer,
            None => {
                self.remember_missing(repository, &reference_text).await;
                return Err(RegistryError::manifest_unknown(reference));
            }
        };
        let upstream = answer.upstream.clone();
        let invalid = |why: String| -> RegistryError {
            CacheFailure::Upstream(UpstreamError::Invalid {
                upstream: upstream.clone(),
                why,
            })
            .into()
        };
        let headers = answer.response.headers();
        let content_type = headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let announced = headers
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| Digest::parse(v).ok());
        if answer
            .response
            .content_length()
            .is_some_and(|len| len > MAX_MANIFEST_SIZE as u64)
        {
            return Err(invalid(format!(
                "a manifest larger than the {MAX_MANIFEST_SIZE}-byte limit"
            )));
        }
        let mut content = BytesMut::new();
        let mut body = answer.response.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| {
                RegistryError::from(CacheFailure::Upstream(UpstreamError::Unreachable {
                    upstream: upstream.clone(),
                    cause: crate::upstream::describe_error(e),
                }))
            })?;
            if content.len() + chunk.len() > MAX_MANIFEST_SIZE {
                return Err(invalid(format!(
                    "a manifest larger than the {MAX_MANIFEST_SIZE}-byte limit"
                )));
            }
            content.extend_from_slice(&chunk);
        }
        let content = content.freeze();
        if let (Reference::Tag(_), Some(announced)) = (reference, &announced) {
            let mut hasher = DigestHasher::new(announced.algorithm());
            hasher.update(&content);
            let actual = hasher.finish();
            if &actual != announced {
                return Err(invalid(format!(
                    "the manifest's digest is {actual}, not the announced {announced}"
                )));
            }
        }
        self.local
            .cache_manifest(
                &self.origin,
                repository,
                reference,
                content_type.as_deref(),
                content,
            )
            .await
            .map_err(|e| RegistryError::from(CacheFailure::from_store(&upstream, e)))?;
        Ok(())
    }

    /// A manifest by tag: cached and fresh, cached and still current upstream (one HEAD),
    /// fetched anew, or stale when the upstream cannot be asked.
    async fn manifest_by_tag(
        &self,
        origin: Option<&Arc<Origin>>,
        repository: &RepositoryName,
        reference: &Reference,
        tag: &Tag,
        accept: &[&str],
    ) -> Result<StoredManifest> {
        let cached = self
            .local
            .get_manifest(None, repository, reference, ["*/*"])
            .await;
        let cached = match cached {
            Ok(manifest) => Some(manifest),
            Err(e) if is_unknown(&e) => None,
            Err(e) => return Err(e),
        };
        if let Some(cached) = &cached {
            if self.tag_is_fresh(repository, tag).await {
                self.hit();
                return self.serve(origin, repository, reference, accept).await;
            }
            self.miss();
            let checked = self
                .upstream
                .manifest_digest(self.upstream_name(repository), tag.as_str())
                .await;
            match checked {
                Ok(Some(digest)) if digest == cached.digest => {
                    self.mark_checked(repository, tag).await;
                    return self.serve(origin, repository, reference, accept).await;
                }
                Ok(Some(_)) => {}
                Ok(None) => {
                    // Gone upstream: the cache does not keep serving what the upstream
                    // says is no longer there.
                    self.remember_missing(repository, tag.as_str()).await;
                    return Err(RegistryError::manifest_unknown(reference));
                }
                Err(e) if self.settings.serve_stale => {
                    tracing::warn!(
                        remote = %self.settings.name, %repository, %tag, error = %e,
                        "upstream unavailable; serving the cached manifest"
                    );
                    self.stats.add(Counter::Stale, 1);
                    return self.serve(origin, repository, reference, accept).await;
                }
                Err(e) => return Err(CacheFailure::from(e).into()),
            }
        } else {
            self.miss();
        }
        match self.fetch_manifest(repository, reference).await {
            Ok(()) => {
                self.mark_checked(repository, tag).await;
                self.serve(origin, repository, reference, accept).await
            }
            Err(e)
                if cached.is_some()
                    && self.settings.serve_stale
                    && e.code == ErrorCode::Unavailable =>
            {
                tracing::warn!(
                    remote = %self.settings.name, %repository, %tag, error = %e.message,
                    "upstream failed; serving the cached manifest"
                );
                self.stats.add(Counter::Stale, 1);
                self.serve(origin, repository, reference, accept).await
            }
            Err(e) => Err(e),
        }
    }

    /// A blob from the cache, or from the upstream through the download in progress.
    async fn read_blob_now(
        &self,
        origin: &Arc<Origin>,
        repository: &RepositoryName,
        digest: &Digest,
        range_header: Option<&str>,
    ) -> Result<BlobRead> {
        let local = self
            .local
            .read_blob(origin, repository, digest, range_header)
            .await;
        if let Some(cached) = self.cached(local) {
            return cached;
        }
        self.blob_not_missing(repository, digest).await?;
        let mut progress = self.flights.join(Fetch {
            registry: Arc::clone(&self.local),
            upstream: Arc::clone(&self.upstream),
            stats: Arc::clone(&self.stats),
            origin: Arc::clone(&self.origin),
            shared: self.shared.clone(),
            repository: repository.clone(),
            upstream_name: self.upstream_name(repository).to_string(),
            digest: digest.clone(),
        });
        let size = loop {
            let joined = {
                let p = progress.borrow_and_update();
                match (p.size, &p.done) {
                    (Some(size), _) => Some(Joined::Streaming(size)),
                    (None, Some(Ok(()))) => Some(Joined::Stored),
                    (None, Some(Err(failure))) => Some(Joined::Failed(failure.clone())),
                    (None, None) => None,
                }
            };
            match joined {
                Some(Joined::Streaming(size)) => break size,
                // Another instance downloaded it while this one waited: it is in storage.
                Some(Joined::Stored) => {
                    return self
                        .local
                        .read_blob(origin, repository, digest, range_header)
                        .await;
                }
                Some(Joined::Failed(CacheFailure::Upstream(UpstreamError::Status {
                    status: 404,
                    ..
                }))) => {
                    self.remember_missing(repository, digest.as_str()).await;
                    return Err(RegistryError::blob_unknown(digest));
                }
                Some(Joined::Failed(failure)) => return Err(failure.to_registry_error()),
                None => {}
            }
            if progress.changed().await.is_err() {
                return Err(RegistryError::internal(
                    "a blob download ended without an outcome",
                ));
            }
        };
        let range = match range_header {
            Some(header) => ByteRange::from_range_header(header, size)?,
            None => None,
        };
        let (start, end) = match &range {
            Some(range) => (range.start, range.start + range.len()),
            None => (0, size),
        };
        Ok(BlobRead {
            size,
            range,
            content: BlobContent::Stream(follow(progress, size, start, end)),
        })
    }

    /// The cached manifest, as the local registry serves it (the client's `Accept`
    /// applied, the pull published).
    async fn serve(
        &self,
        origin: Option<&Arc<Origin>>,
        repository: &RepositoryName,
        reference: &Reference,
        accept: &[&str],
    ) -> Result<StoredManifest> {
        let manifest = self
            .local
            .get_manifest(origin, repository, reference, accept.iter().copied())
            .await?;
        if let Some(filter) = &self.platforms {
            filter.note(repository, &manifest.media_type, &manifest.content);
        }
        Ok(manifest)
    }
}

#[async_trait]
impl ReadPath for Remote {
    async fn get_manifest(
        &self,
        origin: Option<&Arc<Origin>>,
        repository: &RepositoryName,
        reference: &Reference,
        accept: &[&str],
    ) -> Result<StoredManifest> {
        let _reading = Reading::start(&self.activity, repository);
        match reference {
            Reference::Tag(tag) => {
                self.manifest_by_tag(origin, repository, reference, tag, accept)
                    .await
            }
            // Content addressed: once cached, never asked again.
            Reference::Digest(digest) => {
                let local = self.serve(origin, repository, reference, accept).await;
                if let Some(cached) = self.cached(local) {
                    return cached;
                }
                if let Some(filter) = &self.platforms {
                    filter.check(&self.settings.name, repository, digest)?;
                }
                self.fetch_manifest(repository, reference).await?;
                self.serve(origin, repository, reference, accept).await
            }
        }
    }

    async fn blob_size(&self, repository: &RepositoryName, digest: &Digest) -> Result<u64> {
        if let Some(cached) = self.cached(self.local.blob_size(repository, digest).await) {
            return cached;
        }
        self.blob_not_missing(repository, digest).await?;
        match self
            .upstream
            .blob_size(self.upstream_name(repository), digest)
            .await
            .map_err(CacheFailure::from)?
        {
            Some(size) => Ok(size),
            None => {
                self.remember_missing(repository, digest.as_str()).await;
                Err(RegistryError::blob_unknown(digest))
            }
        }
    }

    async fn read_blob(
        &self,
        origin: &Arc<Origin>,
        repository: &RepositoryName,
        digest: &Digest,
        range_header: Option<&str>,
    ) -> Result<BlobRead> {
        let reading = Reading::start(&self.activity, repository);
        let read = self
            .read_blob_now(origin, repository, digest, range_header)
            .await?;
        Ok(BlobRead {
            content: match read.content {
                // The read lasts as long as its stream.
                BlobContent::Stream(stream) => {
                    BlobContent::Stream(Box::pin(stream.map(move |chunk| {
                        let _ = &reading;
                        chunk
                    })))
                }
                other => other,
            },
            ..read
        })
    }

    fn describe(&self) -> Option<serde_json::Value> {
        let settings = &self.settings;
        Some(serde_json::json!({
            "name": settings.name,
            "kind": if settings.prefix.is_empty() { "proxy" } else { "remote" },
            "prefix": settings.prefix.trim_end_matches('/'),
            "urls": self.upstream.urls().iter().map(Url::as_str).collect::<Vec<_>>(),
            "revalidate_after_seconds": settings.revalidate_after.as_secs(),
            "serve_stale": settings.serve_stale,
            "rate_limit": settings.rate_limit,
            "platforms": settings.platforms,
            "max_size": settings.max_size,
            "status": self.stats.snapshot(),
        }))
    }

    /// What is cached: the upstream is not asked.
    async fn tags(&self, repository: &RepositoryName, page: &Page) -> Result<Listing> {
        self.local.tags(repository, page).await
    }

    /// What is cached: the upstream is not asked.
    async fn referrers(
        &self,
        repository: &RepositoryName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Bytes> {
        self.local
            .referrers(repository, subject, artifact_type)
            .await
    }
}
