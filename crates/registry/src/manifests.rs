//! Pushing, pulling and deleting manifests; the referrers API.

use std::sync::Arc;

use berth_meta::{ManifestSource, NewManifest, StoredManifest};
use berth_oci::accept::accepts;
use berth_oci::manifest::{OCI_IMAGE_INDEX, manifest_digest};
use berth_oci::{Digest, ParsedManifest, Reference, RegistryError, RepositoryName, Tag};
use bytes::Bytes;

use crate::errors::from_meta;
use crate::events::{Event, EventKind, Origin};
use crate::{Registry, Result};

/// What a successful manifest push tells the client.
#[derive(Debug, Clone)]
pub struct PushedManifest {
    pub digest: Digest,
    /// The manifest's `subject`, echoed in the `OCI-Subject` header.
    pub subject: Option<Digest>,
}

impl Registry {
    /// Stores a manifest pushed by tag or by digest, byte for byte.
    pub async fn put_manifest(
        &self,
        origin: &Arc<Origin>,
        repository: &RepositoryName,
        reference: &Reference,
        content_type: Option<&str>,
        content: Bytes,
    ) -> Result<PushedManifest> {
        self.store_manifest(
            origin,
            repository,
            reference,
            content_type,
            content,
            ManifestSource::Push,
        )
        .await
    }

    /// Stores a manifest a pull-through cache fetched from its upstream, by tag or by
    /// digest, byte for byte: validated and checked against the digest like a push, but
    /// stored before the blobs and child manifests it references, which are fetched when a
    /// client asks for them.
    pub async fn cache_manifest(
        &self,
        origin: &Arc<Origin>,
        repository: &RepositoryName,
        reference: &Reference,
        content_type: Option<&str>,
        content: Bytes,
    ) -> Result<PushedManifest> {
        self.store_manifest(
            origin,
            repository,
            reference,
            content_type,
            content,
            ManifestSource::Cache,
        )
        .await
    }

    async fn store_manifest(
        &self,
        origin: &Arc<Origin>,
        repository: &RepositoryName,
        reference: &Reference,
        content_type: Option<&str>,
        content: Bytes,
        source: ManifestSource,
    ) -> Result<PushedManifest> {
        self.ensure_writable()?;
        let parsed = ParsedManifest::parse(&content, content_type)?;
        let pushed_as = match reference {
            Reference::Digest(d) => Some(d),
            Reference::Tag(_) => None,
        };
        let digest = manifest_digest(&content, pushed_as);
        if let Some(expected) = pushed_as
            && expected != &digest
        {
            return Err(RegistryError::new(
                berth_oci::ErrorCode::DigestInvalid,
                "provided digest did not match uploaded content",
            )
            .with_detail(
                serde_json::json!({ "expected": expected.as_str(), "actual": digest.as_str() }),
            ));
        }
        let tag = match reference {
            Reference::Tag(tag) => Some(tag),
            Reference::Digest(_) => None,
        };
        let events = self
            .meta
            .put_manifest(NewManifest {
                repository,
                digest: &digest,
                media_type: parsed.media_type.as_str(),
                content: &content,
                blobs: &parsed.blobs,
                children: &parsed.children,
                subject: parsed.subject.as_ref().map(|s| &s.digest),
                artifact_type: parsed.artifact_type.as_deref(),
                annotations: parsed.annotations.as_ref(),
                tag,
                origin,
                source,
            })
            .await
            .map_err(from_meta)?;
        // What the dashboard and the search know of it (derived, after the commit).
        self.describe_pushed(repository, &digest, parsed.media_type.as_str(), &content)
            .await;
        self.publish(&events);
        Ok(PushedManifest {
            digest,
            subject: parsed.subject.map(|s| s.digest),
        })
    }

    /// A manifest's bytes, if its media type is one the client accepts. A pull (`origin`)
    /// is published as an event; a HEAD (`None`) is not.
    pub async fn get_manifest<'a>(
        &self,
        origin: Option<&Arc<Origin>>,
        repository: &RepositoryName,
        reference: &Reference,
        accept: impl IntoIterator<Item = &'a str>,
    ) -> Result<StoredManifest> {
        match self
            .meta
            .manifest(repository, reference)
            .await
            .map_err(from_meta)?
        {
            Some(manifest) => {
                check_acceptable(&manifest.media_type, reference, accept)?;
                if let Some(origin) = origin
                    && !self.listeners.is_empty()
                {
                    let mut pulled = Event::new(EventKind::ManifestPulled, repository, origin)
                        .digest(&manifest.digest)
                        .media_type(&manifest.media_type)
                        .size(manifest.content.len() as u64);
                    if let Reference::Tag(tag) = reference {
                        pulled.tag = Some(tag.clone());
                    }
                    self.publish(&[pulled]);
                }
                Ok(manifest)
            }
            None => Err(self.manifest_not_found(repository, reference).await),
        }
    }

    /// Tells an unknown repository from an unknown manifest; only misses pay for it.
    async fn manifest_not_found(
        &self,
        repository: &RepositoryName,
        reference: &Reference,
    ) -> RegistryError {
        match self.meta.repository_exists(repository).await {
            Ok(true) => RegistryError::manifest_unknown(reference),
            Ok(false) => RegistryError::name_unknown(repository),
            Err(e) => from_meta(e),
        }
    }

    /// Deletes a tag (the manifest stays), or a manifest and every tag pointing at it.
    /// Returns the events of the deletion (the tags a manifest took with it among them).
    pub async fn delete_manifest(
        &self,
        origin: &Arc<Origin>,
        repository: &RepositoryName,
        reference: &Reference,
    ) -> Result<Vec<Event>> {
        self.ensure_delete_enabled()?;
        let deleted = match reference {
            Reference::Tag(tag) => self.meta.delete_tag(repository, tag, None, origin).await,
            Reference::Digest(digest) => {
                self.meta.delete_manifest(repository, digest, origin).await
            }
        }
        .map_err(from_meta)?;
        match deleted {
            Some(events) => {
                self.publish(&events);
                Ok(events)
            }
            None => Err(self.manifest_not_found(repository, reference).await),
        }
    }

    /// Removes a tag only if it still points at `digest` (retention's untagging: a tag
    /// pushed again since it was planned stays); `false` when it did not. Not subject to
    /// `storage.delete.enabled`, which is about clients' deletes; immutability rules apply.
    pub async fn untag(
        &self,
        origin: &Arc<Origin>,
        repository: &RepositoryName,
        tag: &Tag,
        digest: &Digest,
    ) -> Result<bool> {
        self.ensure_writable()?;
        match self
            .meta
            .delete_tag(repository, tag, Some(digest), origin)
            .await
            .map_err(from_meta)?
        {
            Some(events) => {
                self.publish(&events);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Points `tag` at `digest` again (a restore from the tag history); `false` when the
    /// repository no longer holds that manifest. Immutability rules apply to a tag that
    /// points elsewhere now, as to a push.
    pub async fn restore_tag(
        &self,
        origin: &Arc<Origin>,
        repository: &RepositoryName,
        tag: &Tag,
        digest: &Digest,
    ) -> Result<bool> {
        self.ensure_writable()?;
        match self
            .meta
            .restore_tag(repository, tag, digest, origin)
            .await
            .map_err(from_meta)?
        {
            berth_meta::RestoreOutcome::Restored(events) => {
                self.publish(&events);
                Ok(true)
            }
            berth_meta::RestoreOutcome::ContentGone => Ok(false),
        }
    }

    /// The referrers of `subject` as an OCI image index. An unknown subject (or repository)
    /// has no referrers, which is an empty index, never a 404.
    pub async fn referrers(
        &self,
        repository: &RepositoryName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Bytes> {
        let referrers = self
            .meta
            .referrers(repository, subject, artifact_type)
            .await
            .map_err(from_meta)?;
        let manifests: Vec<serde_json::Value> = referrers
            .into_iter()
            .map(|r| {
                let mut descriptor = serde_json::json!({
                    "mediaType": r.media_type,
                    "digest": r.digest.as_str(),
                    "size": r.size,
                });
                if let Some(artifact_type) = r.artifact_type {
                    descriptor["artifactType"] = artifact_type.into();
                }
                if let Some(annotations) = r.annotations {
                    descriptor["annotations"] = serde_json::json!(annotations);
                }
                descriptor
            })
            .collect();
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_IMAGE_INDEX,
            "manifests": manifests,
        });
        Ok(Bytes::from(index.to_string()))
    }
}

fn check_acceptable<'a>(
    media_type: &str,
    reference: &Reference,
    accept: impl IntoIterator<Item = &'a str>,
) -> Result<()> {
    if accepts(accept, media_type) {
        Ok(())
    } else {
        Err(RegistryError::manifest_unknown(reference).with_detail(serde_json::json!({
            "reference": reference.to_string(),
            "reason": format!("the manifest is a {media_type}, which the request's Accept header does not allow"),
        })))
    }
}
