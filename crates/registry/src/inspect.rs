//! What a person wants to know about repositories and manifests: summaries, pages of tags,
//! a manifest taken apart (an index's platforms; an image's config, layers and history; an
//! artifact's files), its referrers by kind, activity, storage usage. Typed values for the
//! dashboard, read from the metadata store and (for configs) the blob store.
//!
//! When a manifest is first pushed, `describe_pushed` records what kind of thing it is, its
//! platforms, total size, description and the words of its labels and annotations: the search
//! index and the filters use them (pushing it again under another tag only checks they exist;
//! [`Registry::describe_manifest`] and [`Registry::describe_missing`] fill in what is missing).

use std::collections::BTreeMap;

use berth_meta::browse::{
    DayActivity, ManifestDetails, RepositorySummary, StorageUsage, TagPage, TagSort,
};
use berth_meta::{day_of, now_millis};
use berth_oci::manifest::{DOCKER_MANIFEST_LIST, OCI_IMAGE_INDEX};
use berth_oci::{Digest, Reference, RegistryError, RepositoryName, Tag};
use berth_storage::BlobContent;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use serde::Deserialize;

use crate::errors::from_meta;
use crate::{Registry, Result};

/// Configs larger than this are not read for pages or details (real ones are kilobytes).
pub const MAX_CONFIG_SIZE: u64 = 1024 * 1024;
/// The words of one manifest's labels and annotations kept for search, at most.
const MAX_WORDS: usize = 4096;
/// The annotation (or label) holding an image's description.
pub const DESCRIPTION: &str = "org.opencontainers.image.description";
/// The annotation naming a file in an artifact's layer.
pub const TITLE: &str = "org.opencontainers.image.title";

/// What a manifest is, for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Image,
    Index,
    Signature,
    Sbom,
    Attestation,
    Helm,
    Wasm,
    Artifact,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::Image,
        Kind::Index,
        Kind::Signature,
        Kind::Sbom,
        Kind::Attestation,
        Kind::Helm,
        Kind::Wasm,
        Kind::Artifact,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Image => "image",
            Kind::Index => "index",
            Kind::Signature => "signature",
            Kind::Sbom => "sbom",
            Kind::Attestation => "attestation",
            Kind::Helm => "helm",
            Kind::Wasm => "wasm",
            Kind::Artifact => "artifact",
        }
    }

    pub fn parse(text: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// What a manifest of this media type, artifact type (or config media type) and layer
    /// media types is. Signatures, SBOMs and attestations are recognised by the media types
    /// cosign, notation, sigstore bundles, SPDX, CycloneDX and in-toto use.
    pub fn classify<'a>(
        media_type: &str,
        artifact_type: Option<&str>,
        layer_types: impl IntoIterator<Item = &'a str>,
    ) -> Kind {
        if media_type == OCI_IMAGE_INDEX || media_type == DOCKER_MANIFEST_LIST {
            return Kind::Index;
        }
        let layer_types: Vec<&str> = layer_types.into_iter().collect();
        let types = artifact_type.into_iter().chain(layer_types.iter().copied());
        let mut kind = None;
        for t in types {
            let t = t.to_ascii_lowercase();
            let found = if t.contains("cosign.simplesigning")
                || t.contains("cosign.artifact.sig")
                || t.contains("notary.signature")
                || t.contains("sigstore.bundle")
            {
                Some(Kind::Signature)
            } else if t.contains("spdx") || t.contains("cyclonedx") || t.contains("sbom") {
                Some(Kind::Sbom)
            } else if t.contains("in-toto")
                || t.contains("intoto")
                || t.contains("attestation")
                || t.contains("dsse")
            {
                Some(Kind::Attestation)
            } else if t.contains("helm") {
                Some(Kind::Helm)
            } else if t.contains("wasm") {
                Some(Kind::Wasm)
            } else {
                None
            };
            if found.is_some() {
                kind = found;
                break;
            }
        }
        kind.unwrap_or(match artifact_type {
            None => Kind::Image,
            Some(
                "application/vnd.oci.image.config.v1+json"
                | "application/vnd.docker.container.image.v1+json",
            ) => Kind::Image,
            Some(_) => Kind::Artifact,
        })
    }
}

/// A descriptor as manifests carry it, read leniently for display.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Entry {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    #[serde(default)]
    pub size: u64,
    #[serde(default)]
    pub platform: Option<Platform>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(rename = "artifactType", default)]
    pub artifact_type: Option<String>,
}

impl Entry {
    /// The file name an artifact layer carries, if any.
    pub fn title(&self) -> Option<&str> {
        self.annotations.get(TITLE).map(String::as_str)
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Platform {
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub variant: Option<String>,
}

impl Platform {
    /// `os/architecture[/variant]`.
    pub fn name(&self) -> String {
        match &self.variant {
            Some(v) if !v.is_empty() => format!("{}/{}/{v}", self.os, self.architecture),
            _ => format!("{}/{}", self.os, self.architecture),
        }
    }

    fn is_known(&self) -> bool {
        !self.os.is_empty() && self.os != "unknown" && !self.architecture.is_empty()
    }
}

/// The parts of a manifest or index the pages show.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct ManifestParts {
    #[serde(rename = "mediaType", default)]
    pub media_type: Option<String>,
    #[serde(rename = "artifactType", default)]
    pub artifact_type: Option<String>,
    #[serde(default)]
    pub config: Option<Entry>,
    #[serde(default)]
    pub layers: Vec<Entry>,
    #[serde(default)]
    pub manifests: Vec<Entry>,
    #[serde(default)]
    pub subject: Option<Entry>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

impl ManifestParts {
    pub fn parse(content: &[u8]) -> ManifestParts {
        // Stored manifests were validated at push; a field of an unexpected shape only
        // leaves the pages with less to show.
        serde_json::from_slice(content).unwrap_or_default()
    }

    /// `artifactType`, else the config's media type (as the referrers API reports it).
    pub fn artifact_type(&self) -> Option<&str> {
        self.artifact_type
            .as_deref()
            .or(self.config.as_ref().map(|c| c.media_type.as_str()))
    }

    pub fn kind(&self, media_type: &str) -> Kind {
        Kind::classify(
            media_type,
            self.artifact_type(),
            self.layers.iter().map(|l| l.media_type.as_str()),
        )
    }
}

/// An image config, the parts people look at.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct ImageConfig {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub variant: Option<String>,
    #[serde(default)]
    pub created: Option<String>,
    #[serde(default)]
    pub author: Option<String>,
    #[serde(default)]
    pub config: RunConfig,
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
}

impl ImageConfig {
    pub fn platform(&self) -> Platform {
        Platform {
            os: self.os.clone(),
            architecture: self.architecture.clone(),
            variant: self.variant.clone(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct RunConfig {
    #[serde(rename = "User")]
    pub user: Option<String>,
    #[serde(rename = "Env")]
    pub env: Option<Vec<String>>,
    #[serde(rename = "Entrypoint")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(rename = "Cmd")]
    pub cmd: Option<Vec<String>>,
    #[serde(rename = "WorkingDir")]
    pub working_dir: Option<String>,
    #[serde(rename = "ExposedPorts")]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(rename = "Labels")]
    pub labels: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct HistoryEntry {
    pub created: Option<String>,
    pub created_by: Option<String>,
    pub comment: Option<String>,
    pub empty_layer: bool,
}

/// A manifest of a repository, taken apart.
#[derive(Debug, Clone)]
pub struct Inspected {
    pub repository: RepositoryName,
    pub digest: Digest,
    pub media_type: String,
    /// The manifest's exact bytes.
    pub content: Bytes,
    pub parts: ManifestParts,
    pub kind: Kind,
    /// Compressed bytes of the manifest and everything it references.
    pub total_size: u64,
    pub platforms: Vec<String>,
    pub description: Option<String>,
    pub pushed_at: i64,
    pub pulls: u64,
    pub last_pulled_at: Option<i64>,
    /// Tags pointing at it, sorted.
    pub tags: Vec<String>,
    /// Its config as stored, when it has one small enough to read.
    pub config: Option<Bytes>,
    /// The config parsed as an image config (images only).
    pub image: Option<ImageConfig>,
    /// For an index: what each child is, when known.
    pub children: Vec<(Entry, Option<Kind>)>,
    pub referrers: Vec<ReferrerView>,
    /// The content ids (IPFS CIDs) of its config and layers, by digest, on a store that gives
    /// them.
    pub content_ids: BTreeMap<String, String>,
}

/// A manifest whose subject is the inspected one (or, by cosign's older convention, a
/// `sha256-<hex>.sig`/`.att`/`.sbom` tag naming it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferrerView {
    pub digest: Digest,
    pub kind: Kind,
    pub artifact_type: Option<String>,
    pub size: u64,
    pub annotations: BTreeMap<String, String>,
    /// The tag it was found by, for cosign's tag convention.
    pub tag: Option<String>,
}

/// The words of texts, lower case, letters and digits only, each once, in order.
pub fn words<'a>(texts: impl IntoIterator<Item = &'a str>, limit: usize) -> String {
    let mut seen = std::collections::HashSet::new();
    let mut out = String::new();
    for text in texts {
        for word in text
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            let word = word.to_lowercase();
            if word.len() > 64 || !seen.insert(word.clone()) {
                continue;
            }
            if out.len() + word.len() + 1 > limit {
                return out;
            }
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(&word);
        }
    }
    out
}

/// An unknown manifest (the pages answer an unknown repository with the same 404).
fn not_found_in(reference: &Reference) -> RegistryError {
    RegistryError::manifest_unknown(reference)
}

impl Registry {
    /// Summaries of the named repositories, in the given order.
    pub async fn repository_summaries(&self, names: &[String]) -> Result<Vec<RepositorySummary>> {
        self.meta
            .repository_summaries(names)
            .await
            .map_err(from_meta)
    }

    /// A page of a repository's tags; an unknown repository is `NAME_UNKNOWN`.
    pub async fn tag_page(
        &self,
        repository: &RepositoryName,
        sort: TagSort,
        offset: u64,
        limit: u32,
    ) -> Result<TagPage> {
        let page = self
            .meta
            .tag_page(
                repository,
                sort,
                offset,
                limit.min(crate::listing::MAX_PAGE),
            )
            .await
            .map_err(from_meta)?;
        if page.total == 0
            && !self
                .meta
                .repository_exists(repository)
                .await
                .map_err(from_meta)?
        {
            return Err(RegistryError::name_unknown(repository));
        }
        Ok(page)
    }

    /// The digest of the manifest a reference names in a repository (which must exist).
    pub async fn resolve(
        &self,
        repository: &RepositoryName,
        reference: &Reference,
    ) -> Result<Digest> {
        self.meta
            .manifest(repository, reference)
            .await
            .map_err(from_meta)?
            .map(|m| m.digest)
            .ok_or_else(|| not_found_in(reference))
    }

    /// The tags pointing at a manifest, sorted.
    pub async fn manifest_tags(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
    ) -> Result<Vec<String>> {
        self.meta
            .manifest_tags(repository, digest)
            .await
            .map_err(from_meta)
    }

    /// A manifest taken apart, with its tags, config, children and referrers.
    pub async fn inspect(
        &self,
        repository: &RepositoryName,
        reference: &Reference,
    ) -> Result<Inspected> {
        let digest = self.resolve(repository, reference).await?;
        let record = self
            .meta
            .manifest_record(repository, &digest)
            .await
            .map_err(from_meta)?
            .ok_or_else(|| not_found_in(reference))?;
        let parts = ManifestParts::parse(&record.content);
        let details = match record.details {
            Some(details) => details,
            None => {
                self.details(repository, &record.media_type, &record.content)
                    .await?
            }
        };
        let kind = Kind::parse(&details.kind).unwrap_or_else(|| parts.kind(&record.media_type));
        let tags = self
            .meta
            .manifest_tags(repository, &digest)
            .await
            .map_err(from_meta)?;
        let config = match &parts.config {
            Some(config) if parts.manifests.is_empty() => {
                self.small_blob(repository, &config.digest, config.size)
                    .await?
            }
            _ => None,
        };
        let image = match (&config, kind) {
            (Some(bytes), Kind::Image) => serde_json::from_slice::<ImageConfig>(bytes).ok(),
            _ => None,
        };
        let children = self.child_kinds(repository, &parts.manifests).await?;
        let referrers = self.referrer_views(repository, &digest).await?;
        let blobs: Vec<Digest> = parts
            .config
            .iter()
            .chain(&parts.layers)
            .filter_map(|entry| Digest::parse(&entry.digest).ok())
            .collect();
        let content_ids = self
            .meta
            .content_ids_of(repository, &blobs)
            .await
            .map_err(from_meta)?
            .into_iter()
            .map(|(digest, cid)| (digest.to_string(), cid))
            .collect();
        Ok(Inspected {
            repository: repository.clone(),
            digest,
            media_type: record.media_type,
            content: record.content,
            kind,
            total_size: details.total_size,
            platforms: details.platforms,
            description: details.description,
            pushed_at: record.pushed_at,
            pulls: record.pulls,
            last_pulled_at: record.last_pulled_at,
            tags,
            config,
            image,
            children,
            referrers,
            content_ids,
            parts,
        })
    }

    async fn child_kinds(
        &self,
        repository: &RepositoryName,
        children: &[Entry],
    ) -> Result<Vec<(Entry, Option<Kind>)>> {
        let digests: Vec<Digest> = children
            .iter()
            .filter_map(|c| Digest::parse(&c.digest).ok())
            .collect();
        let known = self
            .meta
            .details_of(repository, &digests)
            .await
            .map_err(from_meta)?;
        Ok(children
            .iter()
            .map(|child| {
                let kind = known
                    .iter()
                    .find(|(d, _)| d.as_str() == child.digest)
                    .and_then(|(_, details)| Kind::parse(&details.kind));
                (child.clone(), kind)
            })
            .collect())
    }

    /// Referrers of a manifest: by the referrers API's `subject`, and by cosign's tags.
    pub async fn referrer_views(
        &self,
        repository: &RepositoryName,
        subject: &Digest,
    ) -> Result<Vec<ReferrerView>> {
        let referrers = self
            .meta
            .referrers(repository, subject, None)
            .await
            .map_err(from_meta)?;
        let digests: Vec<Digest> = referrers.iter().map(|r| r.digest.clone()).collect();
        let known = self
            .meta
            .details_of(repository, &digests)
            .await
            .map_err(from_meta)?;
        let mut views: Vec<ReferrerView> = referrers
            .into_iter()
            .map(|r| {
                let kind = known
                    .iter()
                    .find(|(d, _)| *d == r.digest)
                    .and_then(|(_, details)| Kind::parse(&details.kind))
                    .unwrap_or_else(|| {
                        Kind::classify(&r.media_type, r.artifact_type.as_deref(), [])
                    });
                ReferrerView {
                    digest: r.digest,
                    kind,
                    artifact_type: r.artifact_type,
                    size: r.size,
                    annotations: r.annotations.unwrap_or_default(),
                    tag: None,
                }
            })
            .collect();
        // cosign without the referrers API tags its signature `sha256-<hex>.sig`.
        let prefix = format!("{}-{}", subject.algorithm().as_str(), subject.hex());
        let tags = self
            .meta
            .list_tags(repository, Some(&prefix), 8)
            .await
            .map_err(from_meta)?;
        for tag in tags.into_iter().filter(|t| t.starts_with(&prefix)) {
            let kind = match tag.strip_prefix(&prefix) {
                Some(".sig") => Kind::Signature,
                Some(".att") => Kind::Attestation,
                Some(".sbom") => Kind::Sbom,
                _ => continue,
            };
            let Ok(parsed) = Tag::parse(&tag) else {
                continue;
            };
            if let Some(manifest) = self
                .meta
                .manifest(repository, &Reference::Tag(parsed))
                .await
                .map_err(from_meta)?
                && !views.iter().any(|v| v.digest == manifest.digest)
            {
                let parts = ManifestParts::parse(&manifest.content);
                views.push(ReferrerView {
                    digest: manifest.digest,
                    kind,
                    artifact_type: parts.artifact_type().map(str::to_owned),
                    size: manifest.content.len() as u64,
                    annotations: parts.annotations,
                    tag: Some(tag),
                });
            }
        }
        Ok(views)
    }

    /// A blob of the repository read whole, if it is at most [`MAX_CONFIG_SIZE`] and the
    /// store streams it (a store that redirects clients to presigned URLs does not).
    pub async fn small_blob(
        &self,
        repository: &RepositoryName,
        digest: &str,
        declared_size: u64,
    ) -> Result<Option<Bytes>> {
        let Ok(digest) = Digest::parse(digest) else {
            return Ok(None);
        };
        if declared_size > MAX_CONFIG_SIZE {
            return Ok(None);
        }
        // Read from the store directly: this is the registry looking, not a client's pull
        // (no pull event), but only what the repository holds.
        let Some(blob) = self
            .meta
            .blob(repository, &digest)
            .await
            .map_err(from_meta)?
        else {
            return Ok(None);
        };
        if blob.quarantine.is_some() {
            return Ok(None);
        }
        let size = blob.size;
        let stored = berth_storage::StoredBlob {
            digest: digest.clone(),
            size,
            cid: blob.cid,
        };
        let content = match self.blobs.read_blob(&stored, None).await {
            Ok(content) => content,
            Err(berth_storage::StorageError::NotFound) => return Ok(None),
            Err(e) => return Err(crate::errors::from_storage(e)),
        };
        let BlobContent::Stream(mut stream) = content else {
            return Ok(None);
        };
        let mut bytes = BytesMut::with_capacity(size.min(MAX_CONFIG_SIZE) as usize);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(RegistryError::internal)?;
            if (bytes.len() + chunk.len()) as u64 > MAX_CONFIG_SIZE {
                return Ok(None);
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Some(bytes.freeze()))
    }

    /// Works out a manifest's details from its bytes (and its config, or its children's
    /// details for an index).
    async fn details(
        &self,
        repository: &RepositoryName,
        media_type: &str,
        content: &[u8],
    ) -> Result<ManifestDetails> {
        let parts = ManifestParts::parse(content);
        let kind = parts.kind(media_type);
        let mut texts: Vec<String> = parts.annotations.values().cloned().collect();
        let mut description = parts.annotations.get(DESCRIPTION).cloned();
        let mut platforms = Vec::new();
        let mut total = content.len() as u64;
        if kind == Kind::Index {
            let digests: Vec<Digest> = parts
                .manifests
                .iter()
                .filter_map(|c| Digest::parse(&c.digest).ok())
                .collect();
            let known = self
                .meta
                .details_of(repository, &digests)
                .await
                .map_err(from_meta)?;
            for child in &parts.manifests {
                let details = known
                    .iter()
                    .find(|(d, _)| d.as_str() == child.digest)
                    .map(|(_, details)| details);
                total += details.map_or(child.size, |d| d.total_size);
                if let Some(platform) = child.platform.as_ref().filter(|p| p.is_known()) {
                    let name = platform.name();
                    if !platforms.contains(&name) {
                        platforms.push(name);
                    }
                }
                if let Some(details) = details {
                    texts.push(details.words.clone());
                    if description.is_none() {
                        description = details.description.clone();
                    }
                }
            }
        } else {
            total += parts.config.as_ref().map_or(0, |c| c.size);
            total += parts.layers.iter().map(|l| l.size).sum::<u64>();
            texts.extend(
                parts
                    .layers
                    .iter()
                    .filter_map(|l| l.title().map(str::to_owned)),
            );
            if kind == Kind::Image
                && let Some(config) = &parts.config
                && let Some(bytes) = self
                    .small_blob(repository, &config.digest, config.size)
                    .await?
                && let Ok(image) = serde_json::from_slice::<ImageConfig>(&bytes)
            {
                if image.platform().is_known() {
                    platforms.push(image.platform().name());
                }
                if let Some(labels) = &image.config.labels {
                    texts.extend(labels.values().cloned());
                    if description.is_none() {
                        description = labels.get(DESCRIPTION).cloned();
                    }
                }
            }
        }
        Ok(ManifestDetails {
            kind: kind.as_str().to_string(),
            platforms,
            total_size: total,
            description: description.map(|d| d.chars().take(2000).collect()),
            words: words(texts.iter().map(String::as_str), MAX_WORDS),
        })
    }

    /// Records the details of a stored manifest, for the pages and the search. They are
    /// derived data: failing to record them leaves the manifest as it is, found by name and
    /// tag only until [`Registry::describe_missing`] catches up. Returns whether the details
    /// were recorded.
    pub async fn describe_manifest(&self, repository: &RepositoryName, digest: &Digest) -> bool {
        let stored = self
            .meta
            .manifest(repository, &Reference::Digest(digest.clone()))
            .await
            .map_err(from_meta);
        match stored {
            Ok(Some(stored)) => {
                self.record_details(repository, digest, &stored.media_type, &stored.content)
                    .await
            }
            Ok(None) => true,
            Err(e) => {
                tracing::warn!(%repository, %digest, error = %e, "recording a manifest's details failed");
                false
            }
        }
    }

    /// After a push (`content` just committed): records the manifest's details unless it
    /// has them already (pushed before, now under another tag), so that re-tagging costs a
    /// read, not a config read and a write.
    pub(crate) async fn describe_pushed(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        media_type: &str,
        content: &[u8],
    ) {
        let known = self
            .meta
            .details_of(repository, std::slice::from_ref(digest))
            .await;
        if known.is_ok_and(|known| !known.is_empty()) {
            return;
        }
        self.record_details(repository, digest, media_type, content)
            .await;
    }

    async fn record_details(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        media_type: &str,
        content: &[u8],
    ) -> bool {
        let result = async {
            let details = self.details(repository, media_type, content).await?;
            self.meta
                .put_manifest_details(repository, digest, &details)
                .await
                .map_err(from_meta)
        }
        .await;
        match result {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(%repository, %digest, error = %e, "recording a manifest's details failed");
                false
            }
        }
    }

    /// Records details for up to `limit` manifests that have none (pushed before berth
    /// recorded them); returns how many it looked at and how many it described (the others
    /// failed, and are looked at again next time).
    pub async fn describe_missing(&self, limit: u32) -> Result<(usize, usize)> {
        let missing = self
            .meta
            .manifests_without_details(limit)
            .await
            .map_err(from_meta)?;
        let mut described = 0;
        for (repository, digest) in &missing {
            if self.describe_manifest(repository, digest).await {
                described += 1;
            }
        }
        Ok((missing.len(), described))
    }

    /// Pulls and pushed manifests of a repository for each of the last `days` days (today
    /// last), days without any included.
    pub async fn activity(
        &self,
        repository: &RepositoryName,
        days: u32,
    ) -> Result<Vec<DayActivity>> {
        let today = day_of(now_millis());
        let since = today - i64::from(days.max(1)) + 1;
        let recorded = self
            .meta
            .activity(repository, since)
            .await
            .map_err(from_meta)?;
        Ok((since..=today)
            .map(|day| {
                recorded
                    .iter()
                    .find(|a| a.day == day)
                    .copied()
                    .unwrap_or(DayActivity {
                        day,
                        pulls: 0,
                        pushes: 0,
                    })
            })
            .collect())
    }

    /// Stored bytes per namespace and for the `limit` largest repositories.
    pub async fn storage_usage(&self, limit: u32) -> Result<StorageUsage> {
        self.meta.storage_usage(limit).await.map_err(from_meta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_from_media_types() {
        let image = "application/vnd.oci.image.manifest.v1+json";
        assert_eq!(Kind::classify(OCI_IMAGE_INDEX, None, []), Kind::Index);
        assert_eq!(
            Kind::classify(
                image,
                Some("application/vnd.oci.image.config.v1+json"),
                ["application/vnd.oci.image.layer.v1.tar+gzip"]
            ),
            Kind::Image
        );
        assert_eq!(
            Kind::classify(
                image,
                Some("application/vnd.dev.cosign.artifact.sig.v1+json"),
                []
            ),
            Kind::Signature
        );
        assert_eq!(
            Kind::classify(
                image,
                Some("application/vnd.oci.image.config.v1+json"),
                ["application/vnd.dev.cosign.simplesigning.v1+json"]
            ),
            Kind::Signature
        );
        assert_eq!(
            Kind::classify(image, Some("application/spdx+json"), []),
            Kind::Sbom
        );
        assert_eq!(
            Kind::classify(image, Some("application/vnd.in-toto+json"), []),
            Kind::Attestation
        );
        assert_eq!(
            Kind::classify(image, Some("application/vnd.cncf.helm.config.v1+json"), []),
            Kind::Helm
        );
        assert_eq!(
            Kind::classify(image, Some("application/vnd.wasm.config.v0+json"), []),
            Kind::Wasm
        );
        assert_eq!(
            Kind::classify(image, Some("application/vnd.example.thing"), []),
            Kind::Artifact
        );
    }

    #[test]
    fn words_are_lower_case_letters_and_digits_once() {
        assert_eq!(
            words(["Hello, World! hello", "ünïcode 3.20"], 100),
            "hello world ünïcode 3 20"
        );
        assert_eq!(words(["aaa bbb ccc"], 8), "aaa bbb");
    }
}
