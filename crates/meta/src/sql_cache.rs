//! [`CacheStore`] over SQL, once for every engine.

use std::sync::Arc;

use async_trait::async_trait;
use berth_oci::{Digest, RepositoryName, Tag};
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Pool, Row, Type};

use crate::cache::{CacheDefinition, CacheStore, CachedContent, CachedManifest, UpstreamAnswer};
use crate::events::{Event, EventKind, Origin};
use crate::sql_store::{Dialect, SqlStore};
use crate::{MetaError, Result, now_millis};

fn corrupt(what: &str, value: &str) -> MetaError {
    MetaError::Database(format!("corrupt {what} in database: {value:?}").into())
}

fn digest(text: &str) -> Result<Digest> {
    Digest::parse(text).map_err(|_| corrupt("digest", text))
}

/// Repositories `r` whose name starts with `$1`.
const UNDER_PREFIX: &str = "substr(r.name, 1, length(CAST($1 AS TEXT))) = CAST($1 AS TEXT)";

/// A query assembled from this module's constant fragments and the dialect's, never from
/// input (which is always bound).
fn assembled(query: String) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(query)
}

fn id_list(ids: &[i64]) -> String {
    serde_json::to_string(ids).expect("integers serialize")
}

#[async_trait]
impl<DB: Dialect> CacheStore for SqlStore<DB>
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
    async fn cached_content(&self, prefix: &str) -> Result<CachedContent> {
        let manifests = sqlx::query(assembled(format!(
            "SELECT m.id, r.name, m.digest, m.size, m.created_at, p.last_pulled_at
             FROM manifests m JOIN repositories r ON r.id = m.repository_id
             LEFT JOIN manifest_pulls p ON p.manifest_id = m.id
             WHERE {UNDER_PREFIX} ORDER BY m.id"
        )))
        .bind(prefix)
        .fetch_all(&self.reader)
        .await?
        .iter()
        .map(|row| {
            let name: String = row.try_get(1)?;
            let text: String = row.try_get(2)?;
            let size: i64 = row.try_get(3)?;
            Ok(CachedManifest {
                id: row.try_get(0)?,
                repository: RepositoryName::parse(&name)
                    .map_err(|_| corrupt("repository name", &name))?,
                digest: digest(&text)?,
                size: u64::try_from(size).unwrap_or(0),
                created_at: row.try_get(4)?,
                last_pulled_at: row.try_get(5)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
        let edges = sqlx::query(assembled(format!(
            "SELECT p.id, c.id FROM manifests p
             JOIN repositories r ON r.id = p.repository_id
             JOIN manifest_references mr ON mr.manifest_id = p.id AND mr.kind = 'manifest'
             JOIN manifests c ON c.repository_id = p.repository_id AND c.digest = mr.digest
             WHERE {UNDER_PREFIX}
             UNION ALL
             SELECT s.id, m.id FROM manifests m
             JOIN repositories r ON r.id = m.repository_id
             JOIN manifests s ON s.repository_id = m.repository_id AND s.digest = m.subject
             WHERE m.subject IS NOT NULL AND {UNDER_PREFIX}"
        )))
        .bind(prefix)
        .fetch_all(&self.reader)
        .await?
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect::<Result<Vec<_>>>()?;
        let blobs = sqlx::query(assembled(format!(
            "SELECT mr.manifest_id, mr.digest, b.size FROM manifests m
             JOIN repositories r ON r.id = m.repository_id
             JOIN manifest_references mr ON mr.manifest_id = m.id AND mr.kind = 'blob'
             JOIN repository_blobs rb ON rb.repository_id = m.repository_id AND rb.digest = mr.digest
             JOIN blobs b ON b.digest = mr.digest
             WHERE {UNDER_PREFIX}"
        )))
        .bind(prefix)
        .fetch_all(&self.reader)
        .await?
        .iter()
        .map(|row| {
            let text: String = row.try_get(1)?;
            let size: i64 = row.try_get(2)?;
            Ok((row.try_get(0)?, digest(&text)?, u64::try_from(size).unwrap_or(0)))
        })
        .collect::<Result<Vec<_>>>()?;
        Ok(CachedContent {
            manifests,
            edges,
            blobs,
        })
    }

    async fn evict_manifests(
        &self,
        repository: &RepositoryName,
        ids: &[i64],
        pulled_before: i64,
        origin: &Arc<Origin>,
    ) -> Result<Option<Vec<Event>>> {
        if ids.is_empty() {
            return Ok(Some(Vec::new()));
        }
        let mut tx = self.begin().await?;
        let Some(repository_id) = Self::lock_repository(&mut tx, repository).await? else {
            return Ok(None);
        };
        let ids_json = id_list(ids);
        // With the repository locked: a pull recorded since the plan, or an index pushed or
        // cached since that references one of them, keeps them all.
        let kept: i64 = sqlx::query(assembled(format!(
            "SELECT
               (SELECT COUNT(*) FROM manifest_pulls p
                WHERE p.manifest_id IN ({ids}) AND p.last_pulled_at > $2)
             + (SELECT COUNT(*) FROM manifests c
                JOIN manifest_references mr ON mr.digest = c.digest AND mr.kind = 'manifest'
                JOIN manifests p ON p.id = mr.manifest_id AND p.repository_id = c.repository_id
                WHERE c.id IN ({ids}) AND p.id NOT IN ({ids}))",
            ids = DB::json_integers(1)
        )))
        .bind(&ids_json)
        .bind(pulled_before)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        if kept > 0 {
            return Ok(None);
        }
        let mut events = Vec::new();
        let tags = sqlx::query(assembled(format!(
            "SELECT t.name, m.digest FROM tags t JOIN manifests m ON m.id = t.manifest_id
             WHERE t.repository_id = $2 AND t.manifest_id IN ({}) ORDER BY t.name",
            DB::json_integers(1)
        )))
        .bind(&ids_json)
        .bind(repository_id)
        .fetch_all(&mut *tx)
        .await?;
        for row in &tags {
            let name: String = row.try_get(0)?;
            let text: String = row.try_get(1)?;
            let tag = Tag::parse(&name).map_err(|_| corrupt("tag", &name))?;
            events.push(
                Event::new(EventKind::TagDeleted, repository, origin)
                    .digest(&digest(&text)?)
                    .tag(&tag),
            );
        }
        sqlx::query(assembled(format!(
            "DELETE FROM tags WHERE repository_id = $2 AND manifest_id IN ({})",
            DB::json_integers(1)
        )))
        .bind(&ids_json)
        .bind(repository_id)
        .execute(&mut *tx)
        .await?;
        let deleted = sqlx::query(assembled(format!(
            "DELETE FROM manifests WHERE repository_id = $2 AND id IN ({})
             RETURNING digest, media_type",
            DB::json_integers(1)
        )))
        .bind(&ids_json)
        .bind(repository_id)
        .fetch_all(&mut *tx)
        .await?;
        if deleted.is_empty() {
            // Evicted already (another instance, an earlier pass).
            return Ok(None);
        }
        for row in &deleted {
            let text: String = row.try_get(0)?;
            let media_type: String = row.try_get(1)?;
            events.push(
                Event::new(EventKind::ManifestDeleted, repository, origin)
                    .digest(&digest(&text)?)
                    .media_type(&media_type),
            );
        }
        Ok(Some(self.commit_with_events(tx, events).await?))
    }

    async fn cache_definitions(&self) -> Result<Vec<CacheDefinition>> {
        sqlx::query(
            "SELECT kind, name, definition, created_at, updated_at, updated_by
             FROM cache_definitions ORDER BY kind, name",
        )
        .fetch_all(&self.reader)
        .await?
        .iter()
        .map(|row| {
            Ok(CacheDefinition {
                kind: row.try_get(0)?,
                name: row.try_get(1)?,
                definition: row.try_get(2)?,
                created_at: row.try_get(3)?,
                updated_at: row.try_get(4)?,
                updated_by: row.try_get(5)?,
            })
        })
        .collect()
    }

    async fn put_cache_definition(
        &self,
        kind: &str,
        name: &str,
        definition: &str,
        by: &str,
        create: bool,
    ) -> Result<bool> {
        let query = if create {
            "INSERT INTO cache_definitions (kind, name, definition, created_at, updated_at, updated_by)
             VALUES ($1, $2, $3, $4, $4, $5) ON CONFLICT DO NOTHING"
        } else {
            "UPDATE cache_definitions SET definition = $3, updated_at = $4, updated_by = $5
             WHERE kind = $1 AND name = $2"
        };
        let result = sqlx::query(query)
            .bind(kind)
            .bind(name)
            .bind(definition)
            .bind(now_millis())
            .bind(by)
            .execute(&self.writer)
            .await?;
        Ok(DB::rows_affected(&result) > 0)
    }

    async fn delete_cache_definition(&self, kind: &str, name: &str) -> Result<bool> {
        let result = sqlx::query("DELETE FROM cache_definitions WHERE kind = $1 AND name = $2")
            .bind(kind)
            .bind(name)
            .execute(&self.writer)
            .await?;
        Ok(DB::rows_affected(&result) > 0)
    }

    async fn upstream_answer(
        &self,
        repository: &RepositoryName,
        reference: &str,
    ) -> Result<Option<UpstreamAnswer>> {
        let row = sqlx::query(
            "SELECT found, answered_at FROM cache_upstream_answers
             WHERE repository = $1 AND reference = $2",
        )
        .bind(repository.as_str())
        .bind(reference)
        .fetch_optional(&self.reader)
        .await?;
        row.map(|row| {
            let found: i64 = row.try_get(0)?;
            Ok(UpstreamAnswer {
                found: found != 0,
                at: row.try_get(1)?,
            })
        })
        .transpose()
    }

    async fn record_upstream_answer(
        &self,
        repository: &RepositoryName,
        reference: &str,
        answer: UpstreamAnswer,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO cache_upstream_answers (repository, reference, found, answered_at)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (repository, reference) DO UPDATE
             SET found = excluded.found, answered_at = excluded.answered_at
             WHERE cache_upstream_answers.answered_at <= excluded.answered_at",
        )
        .bind(repository.as_str())
        .bind(reference)
        .bind(i64::from(answer.found))
        .bind(answer.at)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn forget_upstream_answers(&self, found_before: i64, missing_before: i64) -> Result<u64> {
        let result = sqlx::query(
            "DELETE FROM cache_upstream_answers
             WHERE answered_at < CASE WHEN found = 1 THEN $1 ELSE $2 END",
        )
        .bind(found_before)
        .bind(missing_before)
        .execute(&self.writer)
        .await?;
        Ok(DB::rows_affected(&result))
    }
}
