//! The reads behind the pages: repository summaries, pages of tags, a manifest taken apart
//! with its children and referrers, activity and storage usage.

use berth_meta::browse::{DayActivity, RepositorySummary, StorageUsage, TagPage, TagSort};
use berth_meta::{day_of, now_millis};
use berth_oci::{Digest, Reference, RepositoryName, Tag};

use super::*;
use crate::errors::from_meta;
use crate::{Registry, Result};

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
