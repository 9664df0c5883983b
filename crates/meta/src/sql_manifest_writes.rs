//! Manifest and tag writes on SQL: a manifest push (references checked, quota and
//! immutability rules applied, the tag moved and its history kept) and the deletes of a
//! manifest or a tag, each one transaction that locks the repository's row first.

use std::sync::Arc;

use berth_oci::{Descriptor, Digest, RepositoryName, Tag};
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Pool, Row, Transaction, Type};

use crate::events::{Event, EventKind, Origin};
use crate::sql_store::{Dialect, SqlStore, corrupt, parse_digest};
use crate::sql_tag_history::Untagged;
use crate::{
    BrokenReference, ManifestSource, MetaError, NewManifest, ReferenceKind, Result, now_millis,
};

impl<DB: Dialect> SqlStore<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
    String: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    i64: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    i32: for<'q> Encode<'q, DB> + Type<DB>,
    bool: for<'r> Decode<'r, DB> + Type<DB>,
    Vec<u8>: for<'r> Decode<'r, DB> + Type<DB>,
    f64: for<'r> Decode<'r, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    Option<String>: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB>,
    Option<i64>: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB>,
    usize: ColumnIndex<DB::Row>,
{
    /// A manifest push, or a cache storing what it fetched: the manifest, its references
    /// (checked for a push), the tag and its history, in one transaction.
    pub(crate) async fn write_manifest(&self, manifest: NewManifest<'_>) -> Result<Vec<Event>> {
        let now = now_millis();
        let origin = manifest.origin;
        let mut events = Vec::new();
        let mut tx = self.begin().await?;
        let repository_id =
            Self::ensure_repository(&mut tx, manifest.repository, origin, &mut events).await?;

        let mut broken = Vec::new();
        if manifest.source == ManifestSource::Push {
            broken =
                Self::check_references(&mut tx, repository_id, ReferenceKind::Blob, manifest.blobs)
                    .await?;
            broken.extend(
                Self::check_references(
                    &mut tx,
                    repository_id,
                    ReferenceKind::Manifest,
                    manifest.children,
                )
                .await?,
            );
        }
        if !broken.is_empty() {
            // Dropping the transaction rolls back the repository row too.
            return Err(MetaError::BrokenReferences(broken));
        }
        if manifest.source == ManifestSource::Push {
            Self::refuse_over_quota(&mut tx, manifest.repository).await?;
        }

        let annotations = manifest
            .annotations
            .map(|a| serde_json::to_string(a).expect("string maps serialize"));
        let inserted = sqlx::query(
            "INSERT INTO manifests
                 (repository_id, digest, media_type, size, subject, artifact_type, annotations, created_at, content)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (repository_id, digest) DO NOTHING
             RETURNING id",
        )
        .bind(repository_id)
        .bind(manifest.digest.as_str())
        .bind(manifest.media_type)
        .bind(manifest.content.len() as i64)
        .bind(manifest.subject.map(Digest::as_str))
        .bind(manifest.artifact_type)
        .bind(annotations)
        .bind(now)
        .bind(manifest.content)
        .fetch_optional(&mut *tx)
        .await?;

        let newly_stored = inserted.is_some();
        let manifest_id: i64 = match inserted {
            Some(row) => {
                let id = row.try_get(0)?;
                let references = manifest
                    .blobs
                    .iter()
                    .map(|d| (ReferenceKind::Blob, d))
                    .chain(
                        manifest
                            .children
                            .iter()
                            .map(|d| (ReferenceKind::Manifest, d)),
                    );
                for (kind, descriptor) in references {
                    sqlx::query(
                        "INSERT INTO manifest_references (manifest_id, digest, kind) VALUES ($1, $2, $3)
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(id)
                    .bind(descriptor.digest.as_str())
                    .bind(kind.as_str())
                    .execute(&mut *tx)
                    .await?;
                }
                id
            }
            None => {
                sqlx::query("SELECT id FROM manifests WHERE repository_id = $1 AND digest = $2")
                    .bind(repository_id)
                    .bind(manifest.digest.as_str())
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get(0)?
            }
        };

        let pushed = Event::new(EventKind::ManifestPushed, manifest.repository, origin)
            .digest(manifest.digest)
            .media_type(manifest.media_type)
            .size(manifest.content.len() as u64);
        let pushed = Event {
            tag: manifest.tag.cloned(),
            subject: manifest.subject.cloned(),
            artifact_type: manifest.artifact_type.map(str::to_string),
            ..pushed
        };
        events.push(pushed);
        if newly_stored && let Some(subject) = manifest.subject {
            let mut referrer = Event::new(EventKind::ReferrerAdded, manifest.repository, origin)
                .digest(manifest.digest)
                .media_type(manifest.media_type);
            referrer.subject = Some(subject.clone());
            referrer.artifact_type = manifest.artifact_type.map(str::to_string);
            events.push(referrer);
        }

        if let Some(tag) = manifest.tag {
            let previous: Option<String> = sqlx::query(
                "SELECT m.digest FROM tags t JOIN manifests m ON m.id = t.manifest_id
                 WHERE t.repository_id = $1 AND t.name = $2",
            )
            .bind(repository_id)
            .bind(tag.as_str())
            .fetch_optional(&mut *tx)
            .await?
            .map(|row| row.try_get(0))
            .transpose()?;
            let previous = previous.as_deref().map(parse_digest).transpose()?;
            if previous.as_ref() != Some(manifest.digest) {
                if let Some(previous) = &previous {
                    if manifest.source == ManifestSource::Push {
                        Self::refuse_immutable_tags(
                            &mut tx,
                            manifest.repository,
                            std::slice::from_ref(tag),
                        )
                        .await?;
                    }
                    Self::record_untag(
                        &mut tx,
                        repository_id,
                        tag.as_str(),
                        previous.as_str(),
                        Untagged::Moved,
                        origin,
                    )
                    .await?;
                }
                sqlx::query(
                    "INSERT INTO tags (repository_id, name, manifest_id, updated_at) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (repository_id, name) DO UPDATE
                     SET manifest_id = excluded.manifest_id, updated_at = excluded.updated_at",
                )
                .bind(repository_id)
                .bind(tag.as_str())
                .bind(manifest_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                let kind = if previous.is_some() {
                    EventKind::TagMoved
                } else {
                    EventKind::TagCreated
                };
                let mut tagged = Event::new(kind, manifest.repository, origin)
                    .digest(manifest.digest)
                    .tag(tag)
                    .media_type(manifest.media_type);
                tagged.previous = previous;
                events.push(tagged);
            }
        }
        self.commit_with_events(tx, events).await
    }

    pub(crate) async fn remove_manifest(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        origin: &Arc<Origin>,
    ) -> Result<Option<Vec<Event>>> {
        let mut tx = self.begin().await?;
        let Some(repository_id) = Self::lock_repository(&mut tx, repository).await? else {
            return Ok(None);
        };
        let tag_rows = sqlx::query(
            "SELECT t.name FROM tags t JOIN manifests m ON m.id = t.manifest_id
             WHERE m.repository_id = $1 AND m.digest = $2 ORDER BY t.name",
        )
        .bind(repository_id)
        .bind(digest.as_str())
        .fetch_all(&mut *tx)
        .await?;
        let tags = tag_rows
            .iter()
            .map(|row| {
                let name: String = row.try_get(0)?;
                Tag::parse(&name).map_err(|_| corrupt("tag", &name))
            })
            .collect::<Result<Vec<_>>>()?;
        Self::refuse_immutable_tags(&mut tx, repository, &tags).await?;
        Self::keep_deleted_manifest(&mut tx, repository_id, digest, &tags, origin).await?;
        let deleted = sqlx::query(
            "DELETE FROM manifests WHERE repository_id = $1 AND digest = $2 RETURNING media_type",
        )
        .bind(repository_id)
        .bind(digest.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = deleted else {
            return Ok(None);
        };
        let media_type: String = row.try_get(0)?;
        let mut events: Vec<Event> = tags
            .iter()
            .map(|tag| {
                Event::new(EventKind::TagDeleted, repository, origin)
                    .digest(digest)
                    .tag(tag)
            })
            .collect();
        let mut deleted = Event::new(EventKind::ManifestDeleted, repository, origin)
            .digest(digest)
            .media_type(&media_type);
        deleted.tags = tags;
        events.push(deleted);
        Ok(Some(self.commit_with_events(tx, events).await?))
    }

    pub(crate) async fn remove_tag(
        &self,
        repository: &RepositoryName,
        tag: &Tag,
        pointing_at: Option<&Digest>,
        origin: &Arc<Origin>,
    ) -> Result<Option<Vec<Event>>> {
        let mut tx = self.begin().await?;
        let Some(repository_id) = Self::lock_repository(&mut tx, repository).await? else {
            return Ok(None);
        };
        let target = sqlx::query(
            "SELECT m.digest, m.media_type FROM tags t JOIN manifests m ON m.id = t.manifest_id
             WHERE t.repository_id = $1 AND t.name = $2",
        )
        .bind(repository_id)
        .bind(tag.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(target) = target else {
            return Ok(None);
        };
        let digest: String = target.try_get(0)?;
        let media_type: String = target.try_get(1)?;
        if pointing_at.is_some_and(|expected| expected.as_str() != digest) {
            return Ok(None);
        }
        Self::refuse_immutable_tags(&mut tx, repository, std::slice::from_ref(tag)).await?;
        sqlx::query("DELETE FROM tags WHERE repository_id = $1 AND name = $2")
            .bind(repository_id)
            .bind(tag.as_str())
            .execute(&mut *tx)
            .await?;
        Self::record_untag(
            &mut tx,
            repository_id,
            tag.as_str(),
            &digest,
            Untagged::Deleted,
            origin,
        )
        .await?;
        let event = Event::new(EventKind::TagDeleted, repository, origin)
            .digest(&parse_digest(&digest)?)
            .tag(tag)
            .media_type(&media_type);
        Ok(Some(self.commit_with_events(tx, vec![event]).await?))
    }

    /// Checks that the repository holds each descriptor's content with the declared size, in
    /// one query for the whole list.
    async fn check_references(
        tx: &mut Transaction<'static, DB>,
        repository_id: i64,
        kind: ReferenceKind,
        descriptors: &[Descriptor],
    ) -> Result<Vec<BrokenReference>> {
        if descriptors.is_empty() {
            return Ok(Vec::new());
        }
        let digests = serde_json::Value::from(
            descriptors
                .iter()
                .map(|d| d.digest.as_str())
                .collect::<Vec<_>>(),
        )
        .to_string();
        let query = match kind {
            ReferenceKind::Blob => DB::BLOB_REFERENCES,
            ReferenceKind::Manifest => DB::MANIFEST_REFERENCES,
        };
        let rows = sqlx::query(query)
            .bind(digests)
            .bind(repository_id)
            .fetch_all(&mut **tx)
            .await?;
        let mut broken = Vec::new();
        for (descriptor, row) in descriptors.iter().zip(rows) {
            let stored: Option<i64> = row.try_get(1)?;
            match stored {
                None => broken.push(BrokenReference::Missing {
                    kind,
                    digest: descriptor.digest.clone(),
                }),
                Some(stored) if stored as u64 != descriptor.size => {
                    broken.push(BrokenReference::WrongSize {
                        kind,
                        digest: descriptor.digest.clone(),
                        declared: descriptor.size,
                        stored: stored as u64,
                    })
                }
                Some(_) => {}
            }
        }
        Ok(broken)
    }
}
