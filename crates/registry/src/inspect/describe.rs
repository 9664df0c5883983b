//! Describing a manifest once, when it is pushed (or later, for one pushed before berth kept
//! details): its kind, platforms, total size, description and the words of its labels and
//! annotations, which the search index and the filters use.

use berth_meta::browse::ManifestDetails;
use berth_oci::{Digest, RegistryError, RepositoryName};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

use super::*;
use crate::errors::from_meta;
use crate::{Registry, Result};

impl Registry {
    /// A blob of the repository read whole, if it is at most [`MAX_CONFIG_SIZE`] (through
    /// berth, also where clients are redirected to the store).
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
        let mut stream = match self.blobs.stream_blob(&stored, None).await {
            Ok(stream) => stream,
            Err(berth_storage::StorageError::NotFound) => return Ok(None),
            Err(e) => return Err(crate::errors::from_storage(e)),
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
    pub(super) async fn details(
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
}
