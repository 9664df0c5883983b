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
        let Some(manifest) = sqlx::query(
            "SELECT id, media_type FROM manifests WHERE repository_id = $1 AND digest = $2",
        )
        .bind(repository_id)
        .bind(digest.as_str())
        .fetch_optional(&mut *tx)
        .await?
        else {
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
        let deleted = sqlx::query("DELETE FROM tag_history WHERE removed_at < $1")
            .bind(before)
            .execute(&self.writer)
            .await?;
        Ok(DB::rows_affected(&deleted))
    }
}
