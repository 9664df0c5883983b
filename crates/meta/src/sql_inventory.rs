//! [`BlobInventory`] over SQL, once for every engine (see `sql_store`).

use async_trait::async_trait;
use berth_oci::{Digest, RepositoryName};
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Pool, Row, Type};

use crate::inventory::{BlobCounts, BlobInventory, InventoryBlob, UnheldReference};
use crate::sql_store::{Dialect, SqlStore};
use crate::{MetaError, ReferenceKind, Result, now_millis};

const BLOB_COLUMNS: &str = "digest, size, cid, verified_at, quarantine_reason";

fn corrupt(what: &str, value: &str) -> MetaError {
    MetaError::Database(format!("corrupt {what} in database: {value:?}").into())
}

fn read_blob<R: Row>(row: &R) -> Result<InventoryBlob>
where
    usize: ColumnIndex<R>,
    String: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    Option<String>: for<'r> Decode<'r, R::Database>,
    i64: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    Option<i64>: for<'r> Decode<'r, R::Database>,
{
    let digest: String = row.try_get(0)?;
    Ok(InventoryBlob {
        digest: Digest::parse(&digest).map_err(|_| corrupt("digest", &digest))?,
        size: row.try_get::<i64, _>(1)? as u64,
        cid: row.try_get(2)?,
        verified_at: row.try_get(3)?,
        quarantine: row.try_get(4)?,
    })
}

#[async_trait]
impl<DB: Dialect> BlobInventory for SqlStore<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    String: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    i64: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    Option<String>: for<'r> Decode<'r, DB>,
    Option<i64>: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB>,
    usize: ColumnIndex<DB::Row>,
{
    async fn blobs_after(&self, after: Option<&Digest>, limit: u32) -> Result<Vec<InventoryBlob>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {BLOB_COLUMNS} FROM blobs WHERE digest > $1 ORDER BY digest LIMIT $2"
        )))
        .bind(after.map_or("", |d| d.as_str()))
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(read_blob).collect()
    }

    async fn blobs_to_verify(
        &self,
        verified_before: i64,
        limit: u32,
    ) -> Result<Vec<InventoryBlob>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {BLOB_COLUMNS} FROM blobs
             WHERE quarantined_at IS NULL AND (verified_at IS NULL OR verified_at < $1)
             ORDER BY verified_at NULLS FIRST, digest LIMIT $2"
        )))
        .bind(verified_before)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(read_blob).collect()
    }

    async fn inventory_blob(&self, digest: &Digest) -> Result<Option<InventoryBlob>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {BLOB_COLUMNS} FROM blobs WHERE digest = $1"
        )))
        .bind(digest.as_str())
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref().map(read_blob).transpose()
    }

    async fn blob_counts(&self) -> Result<BlobCounts> {
        let row = sqlx::query(
            "SELECT COUNT(*), CAST(COALESCE(SUM(size), 0) AS BIGINT),
                    CAST(COALESCE(SUM(CASE WHEN quarantined_at IS NULL THEN 0 ELSE 1 END), 0)
                         AS BIGINT)
             FROM blobs",
        )
        .fetch_one(&self.reader)
        .await?;
        Ok(BlobCounts {
            blobs: row.try_get::<i64, _>(0)? as u64,
            bytes: row.try_get::<i64, _>(1)? as u64,
            quarantined: row.try_get::<i64, _>(2)? as u64,
        })
    }

    async fn mark_verified(&self, digest: &Digest, at: i64) -> Result<()> {
        sqlx::query("UPDATE blobs SET verified_at = $2 WHERE digest = $1")
            .bind(digest.as_str())
            .bind(at)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn set_cid(&self, digest: &Digest, cid: Option<&str>) -> Result<()> {
        sqlx::query("UPDATE blobs SET cid = $2 WHERE digest = $1")
            .bind(digest.as_str())
            .bind(cid)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn quarantine(&self, digest: &Digest, reason: &str) -> Result<bool> {
        let result = sqlx::query(
            "UPDATE blobs SET quarantined_at = $2, quarantine_reason = $3
             WHERE digest = $1 AND quarantined_at IS NULL",
        )
        .bind(digest.as_str())
        .bind(now_millis())
        .bind(reason)
        .execute(&self.writer)
        .await?;
        Ok(DB::rows_affected(&result) > 0)
    }

    async fn unheld_references(&self, limit: u32) -> Result<Vec<UnheldReference>> {
        let rows = sqlx::query(
            "SELECT r.name, m.digest, mr.kind, mr.digest FROM manifest_references mr
             JOIN manifests m ON m.id = mr.manifest_id
             JOIN repositories r ON r.id = m.repository_id
             WHERE (mr.kind = 'blob' AND NOT EXISTS (
                        SELECT 1 FROM repository_blobs rb JOIN blobs b ON b.digest = rb.digest
                        WHERE rb.repository_id = m.repository_id AND rb.digest = mr.digest))
                OR (mr.kind = 'manifest' AND NOT EXISTS (
                        SELECT 1 FROM manifests c
                        WHERE c.repository_id = m.repository_id AND c.digest = mr.digest))
             ORDER BY r.name, m.digest, mr.digest LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                let repository: String = row.try_get(0)?;
                let manifest: String = row.try_get(1)?;
                let kind: String = row.try_get(2)?;
                let digest: String = row.try_get(3)?;
                Ok(UnheldReference {
                    repository: RepositoryName::parse(&repository)
                        .map_err(|_| corrupt("repository name", &repository))?,
                    manifest: Digest::parse(&manifest).map_err(|_| corrupt("digest", &manifest))?,
                    kind: match kind.as_str() {
                        "blob" => ReferenceKind::Blob,
                        "manifest" => ReferenceKind::Manifest,
                        other => return Err(corrupt("reference kind", other)),
                    },
                    digest: Digest::parse(&digest).map_err(|_| corrupt("digest", &digest))?,
                })
            })
            .collect()
    }

    async fn forget_unreferenced_blob(&self, digest: &Digest) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        let referenced = sqlx::query(
            "SELECT 1 FROM manifest_references WHERE digest = $1 AND kind = 'blob' LIMIT 1",
        )
        .bind(digest.as_str())
        .fetch_optional(&mut *tx)
        .await?
        .is_some();
        if referenced {
            return Ok(false);
        }
        sqlx::query("DELETE FROM repository_blobs WHERE digest = $1")
            .bind(digest.as_str())
            .execute(&mut *tx)
            .await?;
        Self::release_digests(&mut tx, std::slice::from_ref(digest)).await?;
        let deleted = sqlx::query("DELETE FROM blobs WHERE digest = $1")
            .bind(digest.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(DB::rows_affected(&deleted) > 0)
    }
}
