//! Finding and marking the blobs that are free to collect: the candidate pages, and the
//! batch mark with its skips for pushes (see ARCHITECTURE.md, "The invariant: a blob the
//! database records always has its bytes").

use std::collections::BTreeMap;

use berth_oci::{Digest, RepositoryName};
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Pool, Row, Transaction, Type};

use super::{assembled, digest_texts, parse_digest, parse_name};
use crate::gc::{BlobCandidate, CandidatePage, Collectable, DeletionKind, Marked};
use crate::sql_store::{Dialect, SqlStore};
use crate::{Result, now_millis};

/// Whether a recorded blob is free to collect (see [`Collectable`]): referenced by no
/// manifest, nor by the copy of a manifest deleted by digest at or after `$3` (the history's
/// horizon), and linked into no repository at or after the cutoff `$2`. `digest` is its
/// digest column. (Whether the blob itself was recorded before the cutoff is the caller's.)
fn unreferenced(digest: &str) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM manifest_references mr WHERE mr.digest = {digest} AND mr.kind = 'blob')
         AND NOT EXISTS (SELECT 1 FROM deleted_manifest_references d
             JOIN deleted_manifests dm ON dm.id = d.deleted_id
             WHERE d.digest = {digest} AND d.kind = 'blob' AND dm.deleted_at >= $3)
         AND NOT EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.digest = {digest} AND rb.created_at >= $2)"
    )
}

/// A mark replaces what an earlier deletion of the digest left (its tombstone).
const UPSERT_MARK: &str = "ON CONFLICT (digest) DO UPDATE SET run_id = excluded.run_id,
     state = excluded.state, size = excluded.size, kind = excluded.kind,
     updated_at = excluded.updated_at, cid = excluded.cid";

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
    for<'q> Option<&'q str>: Encode<'q, DB>,
    Option<String>: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB>,
    Option<i64>: for<'r> Decode<'r, DB>,
    usize: ColumnIndex<DB::Row>,
{
    /// The repositories holding each of `digests`, by digest.
    pub(super) async fn holders<'e, E>(
        executor: E,
        digests: &[Digest],
    ) -> Result<BTreeMap<String, Vec<RepositoryName>>>
    where
        E: Executor<'e, Database = DB>,
    {
        let mut holders: BTreeMap<String, Vec<RepositoryName>> = BTreeMap::new();
        if digests.is_empty() {
            return Ok(holders);
        }
        let query = format!(
            "SELECT rb.digest, r.name FROM repository_blobs rb
             JOIN repositories r ON r.id = rb.repository_id
             WHERE rb.digest IN ({}) ORDER BY rb.digest, r.name",
            DB::json_text_values(1)
        );
        let rows = sqlx::query(assembled(query))
            .bind(digest_texts(digests))
            .fetch_all(executor)
            .await?;
        for row in rows {
            let digest: String = row.try_get(0)?;
            let name: String = row.try_get(1)?;
            holders.entry(digest).or_default().push(parse_name(&name)?);
        }
        Ok(holders)
    }

    /// Those of `digests` with no record and no deletion in progress.
    pub(super) async fn unrecorded<'e, E>(executor: E, digests: &[Digest]) -> Result<Vec<Digest>>
    where
        E: Executor<'e, Database = DB>,
    {
        if digests.is_empty() {
            return Ok(Vec::new());
        }
        let query = format!(
            "SELECT w.value FROM ({}) w
             WHERE NOT EXISTS (SELECT 1 FROM blobs b WHERE b.digest = w.value)
               AND NOT EXISTS (SELECT 1 FROM blob_deletions d
                   WHERE d.digest = w.value AND d.state <> 'deleted')",
            DB::json_text_values(1)
        );
        let rows = sqlx::query(assembled(query))
            .bind(digest_texts(digests))
            .fetch_all(executor)
            .await?;
        rows.iter()
            .map(|row| parse_digest(&row.try_get::<String, _>(0)?))
            .collect()
    }

    /// Records `digest` as marked for deletion by `run`, replacing an old tombstone.
    pub(super) async fn insert_mark(
        tx: &mut Transaction<'static, DB>,
        run: i64,
        digest: &Digest,
        size: u64,
        kind: DeletionKind,
        cid: Option<&str>,
    ) -> Result<()> {
        sqlx::query(assembled(format!(
            "INSERT INTO blob_deletions (digest, run_id, state, size, kind, updated_at, cid)
             VALUES ($1, $2, 'marked', $3, $4, $5, $6) {UPSERT_MARK}"
        )))
        .bind(digest.as_str())
        .bind(run)
        .bind(size as i64)
        .bind(kind.as_str())
        .bind(now_millis())
        .bind(cid)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
    /// See [`crate::gc::GcStore::unreferenced_blobs`].
    pub(super) async fn candidate_page(
        &self,
        after: Option<&Digest>,
        collectable: Collectable,
        scan: u32,
        limit: u32,
    ) -> Result<CandidatePage> {
        let after = after.map_or("", Digest::as_str);
        // The page's range first: the next `scan` blobs in digest order, a walk of the
        // primary key that is as long whether they are referenced or not. (A query for the
        // next `limit` free blobs reads every referenced blob before them: 900,000 took
        // 1.6 s here, and tens of millions could outlast the collector's lease.)
        let upper: Option<String> = sqlx::query(
            "SELECT max(s.digest) FROM
                 (SELECT b.digest FROM blobs b WHERE b.digest > $1 ORDER BY b.digest LIMIT $2) s",
        )
        .bind(after)
        .bind(i64::from(scan))
        .fetch_one(&self.reader)
        .await?
        .try_get(0)?;
        let Some(upper) = upper else {
            return Ok(CandidatePage {
                candidates: Vec::new(),
                next: None,
            });
        };
        let query = format!(
            "SELECT b.digest, b.size FROM blobs b
             WHERE b.digest > $1 AND b.digest <= $4 AND b.created_at < $2 AND {}
             ORDER BY b.digest LIMIT $5",
            unreferenced("b.digest")
        );
        let rows = sqlx::query(assembled(query))
            .bind(after)
            .bind(collectable.cutoff)
            .bind(collectable.history_since)
            .bind(&upper)
            .bind(i64::from(limit))
            .fetch_all(&self.reader)
            .await?;
        let mut candidates = Vec::with_capacity(rows.len());
        for row in rows {
            let digest: String = row.try_get(0)?;
            let size: i64 = row.try_get(1)?;
            candidates.push(BlobCandidate {
                digest: parse_digest(&digest)?,
                size: size as u64,
                repositories: Vec::new(),
            });
        }
        let digests: Vec<Digest> = candidates.iter().map(|c| c.digest.clone()).collect();
        let mut holders = Self::holders(&self.reader, &digests).await?;
        for candidate in &mut candidates {
            candidate.repositories = holders
                .remove(candidate.digest.as_str())
                .unwrap_or_default();
        }
        // A full page may have left free blobs in the range: go on after its last.
        let next = match candidates.last() {
            Some(last) if candidates.len() >= limit as usize => last.digest.clone(),
            _ => parse_digest(&upper)?,
        };
        Ok(CandidatePage {
            candidates,
            next: Some(next),
        })
    }

    /// See [`crate::gc::GcStore::mark_unreferenced_blobs`].
    pub(super) async fn mark_batch(
        &self,
        run: i64,
        digests: &[Digest],
        collectable: Collectable,
    ) -> Result<Marked> {
        // One statement per step for the whole batch (a round trip per blob made a mark of
        // 100,000 blobs take minutes on PostgreSQL); each step keeps what the one before
        // let through.
        let mut tx = self.begin().await?;
        // A push or mount of a digest holds its lock: it wins.
        let lockable = Self::try_lock_digests(&mut tx, digests).await?;
        let mut writers_held = lockable.len() < digests.len();
        if lockable.is_empty() {
            return Ok(Marked {
                blobs: Vec::new(),
                writers_waited: writers_held,
            });
        }
        // Every repository holding a blob must be locked, so that no manifest that
        // references it can be stored in the meantime; the blobs of one busy with a push are
        // skipped. (No new link can appear meanwhile: linking takes the digest's lock.)
        let locked: Vec<i64> = sqlx::query(DB::LOCK_LINKING_REPOSITORIES)
            .bind(digest_texts(&lockable))
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|row| row.try_get(0))
            .collect::<Result<_, _>>()?;
        let query = format!(
            "SELECT rb.digest, rb.repository_id, r.name FROM repository_blobs rb
             JOIN repositories r ON r.id = rb.repository_id
             WHERE rb.digest IN ({}) ORDER BY rb.digest, r.name",
            DB::json_text_values(1)
        );
        let mut holders: BTreeMap<String, Vec<RepositoryName>> = BTreeMap::new();
        let mut busy: Vec<String> = Vec::new();
        for row in sqlx::query(assembled(query))
            .bind(digest_texts(&lockable))
            .fetch_all(&mut *tx)
            .await?
        {
            let digest: String = row.try_get(0)?;
            if !locked.contains(&row.try_get(1)?) {
                busy.push(digest.clone());
            }
            let name: String = row.try_get(2)?;
            holders.entry(digest).or_default().push(parse_name(&name)?);
        }
        writers_held |= !busy.is_empty();
        let claimable: Vec<Digest> = lockable
            .into_iter()
            .filter(|d| !busy.iter().any(|b| b == d.as_str()))
            .collect();
        if claimable.is_empty() {
            return Ok(Marked {
                blobs: Vec::new(),
                writers_waited: writers_held,
            });
        }
        // Checked now, with the locks held: what committed before is visible, and what
        // commits after will find the blobs gone.
        let query = format!(
            "SELECT b.digest, b.size FROM blobs b
             WHERE b.digest IN ({}) AND b.created_at < $2 AND {}",
            DB::json_text_values(1),
            unreferenced("b.digest")
        );
        let mut sizes: BTreeMap<String, u64> = BTreeMap::new();
        for row in sqlx::query(assembled(query))
            .bind(digest_texts(&claimable))
            .bind(collectable.cutoff)
            .bind(collectable.history_since)
            .fetch_all(&mut *tx)
            .await?
        {
            let size: i64 = row.try_get(1)?;
            sizes.insert(row.try_get(0)?, size as u64);
        }
        // In the order asked.
        let marked: Vec<BlobCandidate> = claimable
            .into_iter()
            .filter_map(|digest| {
                let size = *sizes.get(digest.as_str())?;
                Some(BlobCandidate {
                    repositories: holders.remove(digest.as_str()).unwrap_or_default(),
                    digest,
                    size,
                })
            })
            .collect();
        if marked.is_empty() {
            return Ok(Marked {
                blobs: Vec::new(),
                writers_waited: writers_held,
            });
        }
        let digests: Vec<Digest> = marked.iter().map(|m| m.digest.clone()).collect();
        let free = digest_texts(&digests);
        let query = format!(
            "DELETE FROM repository_blobs WHERE digest IN ({})",
            DB::json_text_values(1)
        );
        sqlx::query(assembled(query))
            .bind(&free)
            .execute(&mut *tx)
            .await?;
        Self::release_digests(&mut tx, &digests).await?;
        // Marked from the records themselves (size, content id), replacing old tombstones,
        // before the records go.
        let query = format!(
            "INSERT INTO blob_deletions (digest, run_id, state, size, kind, updated_at, cid)
             SELECT b.digest, $2, 'marked', b.size, $3, $4, b.cid FROM blobs b
             WHERE b.digest IN ({})
             {UPSERT_MARK}",
            DB::json_text_values(1)
        );
        sqlx::query(assembled(query))
            .bind(&free)
            .bind(run)
            .bind(DeletionKind::Unreferenced.as_str())
            .bind(now_millis())
            .execute(&mut *tx)
            .await?;
        let query = format!(
            "DELETE FROM blobs WHERE digest IN ({})",
            DB::json_text_values(1)
        );
        sqlx::query(assembled(query))
            .bind(&free)
            .execute(&mut *tx)
            .await?;
        // A push that came while the batch held its repositories waits for it now (and will
        // be gone when the collector looks next).
        let writers_waited = writers_held
            || match DB::OTHER_WRITERS_PRESENT {
                Some(query) => sqlx::query(query).fetch_one(&mut *tx).await?.try_get(0)?,
                None => false,
            };
        tx.commit().await?;
        Ok(Marked {
            blobs: marked,
            writers_waited,
        })
    }
}
