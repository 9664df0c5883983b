//! [`TagHistoryStore`] over SQL, once for every engine, and the entry that the tag writes of
//! `sql_store` add inside their transactions when they take a tag off a manifest.

use std::sync::Arc;

use async_trait::async_trait;
use berth_oci::{Digest, RepositoryName, Tag};
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Pool, Row, Transaction, Type};

use crate::events::{Event, EventKind, Origin};
use crate::sql_store::{Dialect, SqlStore};
use crate::tag_history::{RestoreOutcome, TagHistoryEntry, TagHistoryStore};
use crate::{MetaError, Result, now_millis};

/// Why a tag left a manifest.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Untagged {
    Deleted,
    Moved,
}

impl Untagged {
    fn as_str(self) -> &'static str {
        match self {
            Untagged::Deleted => "deleted",
            Untagged::Moved => "moved",
        }
    }
}

impl<DB: Dialect> SqlStore<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    i64: for<'q> Encode<'q, DB> + Type<DB>,
{
    /// Records that `tag` no longer points at `digest`, in the transaction that changed it.
    pub(crate) async fn record_untag(
        tx: &mut Transaction<'static, DB>,
        repository_id: i64,
        tag: &str,
        digest: &str,
        why: Untagged,
        origin: &Origin,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO tag_history (repository_id, tag, digest, reason, actor, removed_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(repository_id)
        .bind(tag)
        .bind(digest)
        .bind(why.as_str())
        .bind(origin.actor.as_str())
        .bind(now_millis())
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}

impl<DB: Dialect> SqlStore<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    i64: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    /// Before a tagged manifest is deleted by digest (in that transaction): records its tags
    /// in the history and keeps a copy of it and its references, so that a restore can
    /// store it again and garbage collection keeps what it references meanwhile.
    pub(crate) async fn keep_deleted_manifest(
        tx: &mut Transaction<'static, DB>,
        repository_id: i64,
        digest: &Digest,
        tags: &[Tag],
        origin: &Origin,
    ) -> Result<()> {
        if tags.is_empty() {
            return Ok(());
        }
        for tag in tags {
            Self::record_untag(
                tx,
                repository_id,
                tag.as_str(),
                digest.as_str(),
                Untagged::Deleted,
                origin,
            )
            .await?;
        }
        let Some(copy) = sqlx::query(
            "INSERT INTO deleted_manifests (repository_id, digest, media_type, size, subject,
                 artifact_type, annotations, content, deleted_at)
             SELECT repository_id, digest, media_type, size, subject, artifact_type,
                 annotations, content, $3
             FROM manifests WHERE repository_id = $1 AND digest = $2
             RETURNING id",
        )
        .bind(repository_id)
        .bind(digest.as_str())
        .bind(now_millis())
        .fetch_optional(&mut **tx)
        .await?
        else {
            return Ok(());
        };
        let copy: i64 = copy.try_get(0)?;
        sqlx::query(
            "INSERT INTO deleted_manifest_references (deleted_id, digest, kind)
             SELECT $1, mr.digest, mr.kind FROM manifest_references mr
             JOIN manifests m ON m.id = mr.manifest_id
             WHERE m.repository_id = $2 AND m.digest = $3",
        )
        .bind(copy)
        .bind(repository_id)
        .bind(digest.as_str())
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Stores again the newest kept copy of a manifest deleted by digest, if everything it
    /// references is still in the repository; its new id, or `None`.
    async fn store_deleted_copy(
        tx: &mut Transaction<'static, DB>,
        repository_id: i64,
        digest: &Digest,
    ) -> Result<Option<i64>> {
        let Some(copy) = sqlx::query(
            "SELECT id FROM deleted_manifests WHERE repository_id = $1 AND digest = $2
             ORDER BY deleted_at DESC, id DESC LIMIT 1",
        )
        .bind(repository_id)
        .bind(digest.as_str())
        .fetch_optional(&mut **tx)
        .await?
        else {
            return Ok(None);
        };
        let copy: i64 = copy.try_get(0)?;
        let missing: i64 = sqlx::query(
            "SELECT count(*) FROM deleted_manifest_references d WHERE d.deleted_id = $1 AND (
                 (d.kind = 'blob' AND NOT EXISTS (SELECT 1 FROM repository_blobs rb
                     WHERE rb.repository_id = $2 AND rb.digest = d.digest))
                 OR (d.kind = 'manifest' AND NOT EXISTS (SELECT 1 FROM manifests m
                     WHERE m.repository_id = $2 AND m.digest = d.digest)))",
        )
        .bind(copy)
        .bind(repository_id)
        .fetch_one(&mut **tx)
        .await?
        .try_get(0)?;
        if missing > 0 {
            return Ok(None);
        }
        let id: i64 = sqlx::query(
            "INSERT INTO manifests (repository_id, digest, media_type, size, subject,
                 artifact_type, annotations, created_at, content)
             SELECT repository_id, digest, media_type, size, subject, artifact_type,
                 annotations, $2, content
             FROM deleted_manifests WHERE id = $1
             RETURNING id",
        )
        .bind(copy)
        .bind(now_millis())
        .fetch_one(&mut **tx)
        .await?
        .try_get(0)?;
        sqlx::query(
            "INSERT INTO manifest_references (manifest_id, digest, kind)
             SELECT $1, digest, kind FROM deleted_manifest_references WHERE deleted_id = $2",
        )
        .bind(id)
        .bind(copy)
        .execute(&mut **tx)
        .await?;
        Ok(Some(id))
    }
}

#[async_trait]
impl<DB: Dialect> TagHistoryStore for SqlStore<DB>
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
    for<'q> Option<&'q str>: Encode<'q, DB>,
    Option<String>: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB>,
    Option<i64>: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB>,
    usize: ColumnIndex<DB::Row>,
{
    async fn tag_history(
        &self,
        repository: &RepositoryName,
        tag: Option<&Tag>,
        since: i64,
        limit: u32,
    ) -> Result<Vec<TagHistoryEntry>> {
        let rows = sqlx::query(
            "SELECT h.id, h.tag, h.digest, h.reason, h.actor, h.removed_at,
                 CAST(CASE WHEN EXISTS (SELECT 1 FROM manifests m
                     WHERE m.repository_id = h.repository_id AND m.digest = h.digest)
                   OR EXISTS (SELECT 1 FROM deleted_manifests dm
                     WHERE dm.repository_id = h.repository_id AND dm.digest = h.digest)
                 THEN 1 ELSE 0 END AS BIGINT)
             FROM repositories r JOIN tag_history h ON h.repository_id = r.id
             WHERE r.name = $1 AND (CAST($2 AS TEXT) IS NULL OR h.tag = CAST($2 AS TEXT))
               AND h.removed_at >= $3
             ORDER BY h.removed_at DESC, h.id DESC LIMIT $4",
        )
        .bind(repository.as_str())
        .bind(tag.map(Tag::as_str))
        .bind(since)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(TagHistoryEntry {
                    id: row.try_get(0)?,
                    repository: repository.to_string(),
                    tag: row.try_get(1)?,
                    digest: row.try_get(2)?,
                    reason: row.try_get(3)?,
                    actor: row.try_get(4)?,
                    removed_at: row.try_get(5)?,
                    restorable: row.try_get::<i64, _>(6)? == 1,
                })
            })
            .collect()
    }

    async fn restore_tag(
        &self,
        repository: &RepositoryName,
        tag: &Tag,
        digest: &Digest,
        origin: &Arc<Origin>,
    ) -> Result<RestoreOutcome> {
        let mut tx = self.begin().await?;
        let Some(repository_id) = Self::lock_repository(&mut tx, repository).await? else {
            return Ok(RestoreOutcome::ContentGone);
        };
        const MANIFEST: &str =
            "SELECT id, media_type FROM manifests WHERE repository_id = $1 AND digest = $2";
        let mut manifest = sqlx::query(MANIFEST)
            .bind(repository_id)
            .bind(digest.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        // Deleted by digest since: stored again from the copy kept with the history.
        if manifest.is_none()
            && Self::store_deleted_copy(&mut tx, repository_id, digest)
                .await?
                .is_some()
        {
            manifest = sqlx::query(MANIFEST)
                .bind(repository_id)
                .bind(digest.as_str())
                .fetch_optional(&mut *tx)
                .await?;
        }
        let Some(manifest) = manifest else {
            return Ok(RestoreOutcome::ContentGone);
        };
        let manifest_id: i64 = manifest.try_get(0)?;
        let media_type: String = manifest.try_get(1)?;
        let current: Option<String> = sqlx::query(
            "SELECT m.digest FROM tags t JOIN manifests m ON m.id = t.manifest_id
             WHERE t.repository_id = $1 AND t.name = $2",
        )
        .bind(repository_id)
        .bind(tag.as_str())
        .fetch_optional(&mut *tx)
        .await?
        .map(|row| row.try_get(0))
        .transpose()?;
        if current.as_deref() == Some(digest.as_str()) {
            return Ok(RestoreOutcome::Restored(Vec::new()));
        }
        let previous = match &current {
            Some(text) => {
                Self::refuse_immutable_tags(&mut tx, repository, std::slice::from_ref(tag)).await?;
                Self::record_untag(
                    &mut tx,
                    repository_id,
                    tag.as_str(),
                    text,
                    Untagged::Moved,
                    origin,
                )
                .await?;
                Some(Digest::parse(text).map_err(|_| {
                    MetaError::Database(format!("corrupt digest in database: {text:?}").into())
                })?)
            }
            None => None,
        };
        sqlx::query(
            "INSERT INTO tags (repository_id, name, manifest_id, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (repository_id, name) DO UPDATE
             SET manifest_id = excluded.manifest_id, updated_at = excluded.updated_at",
        )
        .bind(repository_id)
        .bind(tag.as_str())
        .bind(manifest_id)
        .bind(now_millis())
        .execute(&mut *tx)
        .await?;
        let kind = if previous.is_some() {
            EventKind::TagMoved
        } else {
            EventKind::TagCreated
        };
        let mut tagged = Event::new(kind, repository, origin)
            .digest(digest)
            .tag(tag)
            .media_type(&media_type);
        tagged.previous = previous;
        let events = self.commit_with_events(tx, vec![tagged]).await?;
        Ok(RestoreOutcome::Restored(events))
    }

    async fn expire_tag_history(&self, before: i64) -> Result<u64> {
        let mut tx = self.begin().await?;
        let deleted = sqlx::query("DELETE FROM tag_history WHERE removed_at < $1")
            .bind(before)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "DELETE FROM deleted_manifest_references WHERE deleted_id IN
                 (SELECT id FROM deleted_manifests WHERE deleted_at < $1)",
        )
        .bind(before)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM deleted_manifests WHERE deleted_at < $1")
            .bind(before)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(DB::rows_affected(&deleted))
    }
}
