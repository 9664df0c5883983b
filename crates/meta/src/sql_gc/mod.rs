//! [`GcStore`] over SQL, once for every engine (see `sql_store` and the `gc` module for the
//! protocol). Finding and marking free blobs is in `mark`; the rest (untagged manifests,
//! claims, tombstones, orphans, run records) is here.

use std::sync::Arc;

use async_trait::async_trait;
use berth_oci::{Digest, RepositoryName};
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Pool, Row, Type};

use crate::events::{Event, EventKind, Origin};
use crate::gc::{
    BlobCandidate, BlobDeletion, CandidatePage, ClaimedDeletion, Collectable, DeletionKind,
    DeletionState, GcRunRecord, GcRunStatus, GcStore, Marked, OtherWriters, PendingDeletions,
    UntaggedManifest,
};
use crate::sql_store::{Dialect, SqlStore};
use crate::{MetaError, Result, now_millis};

mod mark;

fn corrupt(what: &str, value: &str) -> MetaError {
    MetaError::Database(format!("corrupt {what} in database: {value:?}").into())
}

fn parse_digest(text: &str) -> Result<Digest> {
    Digest::parse(text).map_err(|_| corrupt("digest", text))
}

fn parse_name(text: &str) -> Result<RepositoryName> {
    RepositoryName::parse(text).map_err(|_| corrupt("repository name", text))
}

/// A query assembled from this module's constant fragments and the dialect's, never from
/// input (which is always bound).
fn assembled(query: String) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(query)
}

fn json_list<T: serde::Serialize>(items: &[T]) -> String {
    serde_json::to_string(items).expect("lists of strings and integers serialize")
}

fn digest_texts(digests: &[Digest]) -> String {
    json_list(&digests.iter().map(Digest::as_str).collect::<Vec<_>>())
}

/// The manifests of repository `$1` that nothing makes reachable: not tagged, not named by a
/// tag history entry removed at or after `$3`, not a child of a reachable index, not a
/// referrer of a reachable manifest, created before `$2`.
const UNREACHABLE_MANIFESTS: &str = "WITH RECURSIVE
    repo(id) AS (SELECT id FROM repositories WHERE name = $1),
    edges(parent, child) AS (
        SELECT p.id, c.id
        FROM manifests p
        JOIN manifest_references mr ON mr.manifest_id = p.id AND mr.kind = 'manifest'
        JOIN manifests c ON c.repository_id = p.repository_id AND c.digest = mr.digest
        WHERE p.repository_id = (SELECT id FROM repo)
        UNION ALL
        SELECT s.id, r.id
        FROM manifests r
        JOIN manifests s ON s.repository_id = r.repository_id AND s.digest = r.subject
        WHERE r.repository_id = (SELECT id FROM repo) AND r.subject IS NOT NULL
    ),
    reachable(id) AS (
        SELECT manifest_id FROM tags WHERE repository_id = (SELECT id FROM repo)
        UNION
        SELECT m.id FROM tag_history h
        JOIN manifests m ON m.repository_id = h.repository_id AND m.digest = h.digest
        WHERE h.repository_id = (SELECT id FROM repo) AND h.removed_at >= $3
        UNION
        SELECT c.id FROM deleted_manifests dm
        JOIN deleted_manifest_references d ON d.deleted_id = dm.id AND d.kind = 'manifest'
        JOIN manifests c ON c.repository_id = dm.repository_id AND c.digest = d.digest
        WHERE dm.repository_id = (SELECT id FROM repo) AND dm.deleted_at >= $3
        UNION
        SELECT r.id FROM manifests r
        JOIN deleted_manifests dm ON dm.repository_id = r.repository_id AND dm.digest = r.subject
        WHERE r.repository_id = (SELECT id FROM repo) AND dm.deleted_at >= $3
        UNION
        SELECT id FROM manifests WHERE repository_id = (SELECT id FROM repo) AND created_at >= $2
        UNION
        SELECT e.child FROM edges e JOIN reachable r ON r.id = e.parent
    )
    SELECT m.id, m.digest, m.media_type, m.size, m.created_at FROM manifests m
    WHERE m.repository_id = (SELECT id FROM repo)
      AND NOT EXISTS (SELECT 1 FROM reachable r WHERE r.id = m.id)
    ORDER BY m.id";

const RUN_COLUMNS: &str =
    "id, started_at, finished_at, status, trigger, actor, holder, progress, report, error";

fn untagged_manifest<R: Row>(row: &R) -> Result<UntaggedManifest>
where
    usize: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let digest: String = row.try_get(1)?;
    let size: i64 = row.try_get(3)?;
    Ok(UntaggedManifest {
        id: row.try_get(0)?,
        digest: parse_digest(&digest)?,
        media_type: row.try_get(2)?,
        size: size as u64,
        created_at: row.try_get(4)?,
    })
}

fn run_record<R: Row>(row: &R) -> Result<GcRunRecord>
where
    usize: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<String>: Decode<'r, R::Database>,
    for<'r> Option<i64>: Decode<'r, R::Database>,
{
    let status: String = row.try_get(3)?;
    Ok(GcRunRecord {
        id: row.try_get(0)?,
        started_at: row.try_get(1)?,
        finished_at: row.try_get(2)?,
        status: GcRunStatus::parse(&status).ok_or_else(|| corrupt("run status", &status))?,
        trigger: row.try_get(4)?,
        actor: row.try_get(5)?,
        holder: row.try_get(6)?,
        progress: row.try_get(7)?,
        report: row.try_get(8)?,
        error: row.try_get(9)?,
    })
}

#[async_trait]
impl<DB: Dialect> GcStore for SqlStore<DB>
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
    Option<i64>: for<'r> Decode<'r, DB>,
    usize: ColumnIndex<DB::Row>,
{
    async fn other_writers(&self) -> Result<Option<OtherWriters>> {
        if let Some(query) = DB::OTHER_WRITERS_PRESENT {
            let present: bool = sqlx::query(query)
                .fetch_one(&self.reader)
                .await?
                .try_get(0)?;
            return Ok(Some(OtherWriters {
                commits: None,
                present,
            }));
        }
        let row = sqlx::query("PRAGMA data_version")
            .fetch_one(&self.writer)
            .await?;
        Ok(Some(OtherWriters {
            commits: Some(row.try_get(0)?),
            present: self.writer_presence.as_ref().is_some_and(|p| p.others()),
        }))
    }

    async fn blob_deletion(&self, digest: &Digest) -> Result<Option<BlobDeletion>> {
        let row = sqlx::query("SELECT run_id, state FROM blob_deletions WHERE digest = $1")
            .bind(digest.as_str())
            .fetch_optional(&self.reader)
            .await?;
        row.map(|row| {
            let state: String = row.try_get(1)?;
            Ok(BlobDeletion {
                run: row.try_get(0)?,
                state: DeletionState::parse(&state)
                    .ok_or_else(|| corrupt("deletion state", &state))?,
            })
        })
        .transpose()
    }

    async fn unreferenced_blobs(
        &self,
        after: Option<&Digest>,
        collectable: Collectable,
        scan: u32,
        limit: u32,
    ) -> Result<CandidatePage> {
        self.candidate_page(after, collectable, scan, limit).await
    }

    async fn mark_unreferenced_blobs(
        &self,
        run: i64,
        digests: &[Digest],
        collectable: Collectable,
    ) -> Result<Marked> {
        self.mark_batch(run, digests, collectable).await
    }

    async fn untagged_manifests(
        &self,
        repository: &RepositoryName,
        cutoff: i64,
        history_since: i64,
    ) -> Result<Vec<UntaggedManifest>> {
        let rows = sqlx::query(UNREACHABLE_MANIFESTS)
            .bind(repository.as_str())
            .bind(cutoff)
            .bind(history_since)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(untagged_manifest).collect()
    }

    async fn delete_untagged_manifests(
        &self,
        repository: &RepositoryName,
        ids: &[i64],
        cutoff: i64,
        history_since: i64,
        origin: &Arc<Origin>,
    ) -> Result<(Vec<UntaggedManifest>, Vec<Event>)> {
        let mut tx = self.begin().await?;
        if Self::lock_repository(&mut tx, repository).await?.is_none() {
            return Ok((Vec::new(), Vec::new()));
        }
        // Again with the repository locked: a tag or an index pushed since may have made
        // some of them reachable.
        let unreachable: Vec<UntaggedManifest> = sqlx::query(UNREACHABLE_MANIFESTS)
            .bind(repository.as_str())
            .bind(cutoff)
            .bind(history_since)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(untagged_manifest)
            .collect::<Result<_>>()?;
        let deleted: Vec<UntaggedManifest> = unreachable
            .into_iter()
            .filter(|m| ids.contains(&m.id))
            .collect();
        if deleted.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let query = format!(
            "DELETE FROM manifests WHERE id IN ({})",
            DB::json_integers(1)
        );
        sqlx::query(assembled(query))
            .bind(json_list(&deleted.iter().map(|m| m.id).collect::<Vec<_>>()))
            .execute(&mut *tx)
            .await?;
        let events = deleted
            .iter()
            .map(|m| {
                Event::new(EventKind::ManifestDeleted, repository, origin)
                    .digest(&m.digest)
                    .media_type(&m.media_type)
            })
            .collect();
        let events = self.commit_with_events(tx, events).await?;
        Ok((deleted, events))
    }

    async fn manifest_blob_references(&self, ids: &[i64]) -> Result<Vec<(i64, Digest)>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let query = format!(
            "SELECT manifest_id, digest FROM manifest_references
             WHERE kind = 'blob' AND manifest_id IN ({})",
            DB::json_integers(1)
        );
        let rows = sqlx::query(assembled(query))
            .bind(json_list(ids))
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|row| {
                let digest: String = row.try_get(1)?;
                Ok((row.try_get(0)?, parse_digest(&digest)?))
            })
            .collect()
    }

    async fn blob_reference_counts(
        &self,
        digests: &[Digest],
        collectable: Collectable,
    ) -> Result<Vec<(BlobCandidate, u64, bool)>> {
        if digests.is_empty() {
            return Ok(Vec::new());
        }
        let query = format!(
            "SELECT b.digest, b.size,
                 (SELECT count(*) FROM manifest_references mr WHERE mr.digest = b.digest AND mr.kind = 'blob')
                     + (SELECT count(*) FROM deleted_manifest_references d
                        JOIN deleted_manifests dm ON dm.id = d.deleted_id
                        WHERE d.digest = b.digest AND d.kind = 'blob' AND dm.deleted_at >= $3),
                 CAST(CASE WHEN b.created_at >= $2 OR EXISTS (SELECT 1 FROM repository_blobs rb
                     WHERE rb.digest = b.digest AND rb.created_at >= $2) THEN 1 ELSE 0 END AS BIGINT)
             FROM blobs b WHERE b.digest IN ({})",
            DB::json_text_values(1)
        );
        let rows = sqlx::query(assembled(query))
            .bind(digest_texts(digests))
            .bind(collectable.cutoff)
            .bind(collectable.history_since)
            .fetch_all(&self.reader)
            .await?;
        let mut holders = Self::holders(&self.reader, digests).await?;
        rows.iter()
            .map(|row| {
                let digest: String = row.try_get(0)?;
                let size: i64 = row.try_get(1)?;
                let references: i64 = row.try_get(2)?;
                let recent: i64 = row.try_get(3)?;
                Ok((
                    BlobCandidate {
                        repositories: holders.remove(&digest).unwrap_or_default(),
                        digest: parse_digest(&digest)?,
                        size: size as u64,
                    },
                    references as u64,
                    recent != 0,
                ))
            })
            .collect()
    }

    async fn claim_blob_deletions(
        &self,
        run: i64,
        marked_before: i64,
        limit: u32,
    ) -> Result<Vec<ClaimedDeletion>> {
        // Each kind read from its range of the state index, in no particular order; the
        // condition repeated (for PostgreSQL's re-check of a row a push changed meanwhile) as
        // a CASE that no index serves, so that the rows are found by their digests. (Ordered
        // by digest, or with the condition as an OR, SQLite without statistics on the table
        // sorted or walked every row still marked for each batch: the sweep of 100,000 blobs
        // took 18 s, 11 of them in claims.)
        let rows = sqlx::query(
            "UPDATE blob_deletions SET state = 'deleting', run_id = $1, updated_at = $4
             WHERE digest IN (SELECT digest FROM blob_deletions
                     WHERE state = 'marked' AND updated_at < $2
                 UNION ALL
                 SELECT digest FROM blob_deletions WHERE state = 'deleting' AND run_id <> $1
                 LIMIT $3)
               AND CASE state WHEN 'marked' THEN updated_at < $2
                   WHEN 'deleting' THEN run_id <> $1 ELSE false END
             RETURNING digest, size, kind, cid",
        )
        .bind(run)
        .bind(marked_before)
        .bind(i64::from(limit))
        .bind(now_millis())
        .fetch_all(&self.writer)
        .await?;
        rows.iter()
            .map(|row| {
                let digest: String = row.try_get(0)?;
                let size: i64 = row.try_get(1)?;
                let kind: String = row.try_get(2)?;
                Ok(ClaimedDeletion {
                    digest: parse_digest(&digest)?,
                    size: size as u64,
                    kind: match kind.as_str() {
                        "orphan" => DeletionKind::Orphan,
                        "unreferenced" => DeletionKind::Unreferenced,
                        _ => return Err(corrupt("deletion kind", &kind)),
                    },
                    cid: row.try_get(3)?,
                })
            })
            .collect()
    }

    async fn finish_blob_deletions(&self, run: i64, digests: &[Digest]) -> Result<()> {
        if digests.is_empty() {
            return Ok(());
        }
        let query = format!(
            "UPDATE blob_deletions SET state = 'deleted', updated_at = $2
             WHERE run_id = $1 AND state = 'deleting' AND digest IN ({})",
            DB::json_text_values(3)
        );
        sqlx::query(assembled(query))
            .bind(run)
            .bind(now_millis())
            .bind(digest_texts(digests))
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn prune_blob_tombstones(&self, before: i64) -> Result<u64> {
        let result =
            sqlx::query("DELETE FROM blob_deletions WHERE state = 'deleted' AND updated_at < $1")
                .bind(before)
                .execute(&self.writer)
                .await?;
        Ok(DB::rows_affected(&result))
    }

    async fn pending_blob_deletions(&self) -> Result<PendingDeletions> {
        let rows = sqlx::query(
            "SELECT state, count(*), CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM blob_deletions
             WHERE state <> 'deleted' GROUP BY state",
        )
        .fetch_all(&self.reader)
        .await?;
        let mut pending = PendingDeletions::default();
        for row in rows {
            let state: String = row.try_get(0)?;
            let count: i64 = row.try_get(1)?;
            let bytes: i64 = row.try_get(2)?;
            match state.as_str() {
                "marked" => pending.marked = count as u64,
                _ => pending.deleting = count as u64,
            }
            pending.bytes += bytes as u64;
        }
        Ok(pending)
    }

    async fn unrecorded_blobs(&self, digests: &[Digest]) -> Result<Vec<Digest>> {
        Self::unrecorded(&self.reader, digests).await
    }

    async fn mark_orphan_blobs(&self, run: i64, blobs: &[(Digest, u64)]) -> Result<Vec<Digest>> {
        let digests: Vec<Digest> = blobs.iter().map(|(d, _)| d.clone()).collect();
        let mut tx = self.begin().await?;
        let lockable = Self::try_lock_digests(&mut tx, &digests).await?;
        let unrecorded = Self::unrecorded(&mut *tx, &lockable).await?;
        let mut marked = Vec::new();
        for (digest, size) in blobs.iter().filter(|(d, _)| unrecorded.contains(d)) {
            Self::insert_mark(&mut tx, run, digest, *size, DeletionKind::Orphan, None).await?;
            marked.push(digest.clone());
        }
        tx.commit().await?;
        Ok(marked)
    }

    async fn start_gc_run(&self, trigger: &str, actor: &str, holder: &str) -> Result<i64> {
        let row = sqlx::query(
            "INSERT INTO gc_runs (started_at, status, trigger, actor, holder)
             VALUES ($1, 'running', $2, $3, $4) RETURNING id",
        )
        .bind(now_millis())
        .bind(trigger)
        .bind(actor)
        .bind(holder)
        .fetch_one(&self.writer)
        .await?;
        Ok(row.try_get(0)?)
    }

    async fn gc_run_progress(&self, id: i64, progress: &str) -> Result<()> {
        sqlx::query("UPDATE gc_runs SET progress = $2 WHERE id = $1")
            .bind(id)
            .bind(progress)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn finish_gc_run(
        &self,
        id: i64,
        status: GcRunStatus,
        report: &str,
        error: Option<&str>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE gc_runs SET status = $2, finished_at = $3, report = $4, error = $5,
                 progress = NULL
             WHERE id = $1",
        )
        .bind(id)
        .bind(status.as_str())
        .bind(now_millis())
        .bind(report)
        .bind(error)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn interrupt_gc_runs(&self, except: i64) -> Result<Vec<i64>> {
        let rows = sqlx::query(
            "UPDATE gc_runs SET status = 'interrupted', finished_at = $2
             WHERE status = 'running' AND id <> $1 RETURNING id",
        )
        .bind(except)
        .bind(now_millis())
        .fetch_all(&self.writer)
        .await?;
        rows.iter().map(|row| Ok(row.try_get(0)?)).collect()
    }

    async fn gc_runs(&self, before: Option<i64>, limit: u32) -> Result<Vec<GcRunRecord>> {
        let query =
            format!("SELECT {RUN_COLUMNS} FROM gc_runs WHERE id < $1 ORDER BY id DESC LIMIT $2");
        let rows = sqlx::query(assembled(query))
            .bind(before.unwrap_or(i64::MAX))
            .bind(i64::from(limit))
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(run_record).collect()
    }

    async fn gc_run(&self, id: i64) -> Result<Option<GcRunRecord>> {
        let query = format!("SELECT {RUN_COLUMNS} FROM gc_runs WHERE id = $1");
        let row = sqlx::query(assembled(query))
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(run_record).transpose()
    }
}
