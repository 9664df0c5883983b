//! The embedded default: SQLite through sqlx.
//!
//! SQLite lets one writer in at a time, so writes go through a pool of exactly one
//! connection: they queue in berth instead of failing with `SQLITE_BUSY`. Reads use their
//! own pool and run concurrently with the writer (write-ahead logging). Commits are fsynced
//! (`synchronous = FULL`): once a push is acknowledged, it survives a crash.

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use berth_oci::{Descriptor, Digest, Reference, RepositoryName, Tag, UploadId};
use bytes::Bytes;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};

use crate::{
    BrokenReference, KeyedLocks, MetaError, MetadataStore, NewManifest, ReferenceKind, Referrer,
    Result, StoredManifest, UploadLock, UploadSession, now_millis,
};

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    upload_locks: KeyedLocks<UploadId>,
}

fn classify(err: sqlx::Error) -> MetaError {
    match &err {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            MetaError::Unavailable(err.into())
        }
        // SQLITE_BUSY and SQLITE_LOCKED: another process holds the database.
        sqlx::Error::Database(db)
            if matches!(db.code().as_deref(), Some("5" | "6" | "517" | "262")) =>
        {
            MetaError::Unavailable(err.into())
        }
        _ => MetaError::Database(err.into()),
    }
}

/// Values read back from the database were validated before they were written; if one is
/// not valid now, the database was edited by hand or is corrupt.
fn corrupt(what: &str, value: &str) -> MetaError {
    MetaError::Database(format!("corrupt {what} in database: {value:?}").into())
}

fn parse_digest(s: &str) -> Result<Digest> {
    Digest::parse(s).map_err(|_| corrupt("digest", s))
}

fn parse_annotations(json: Option<String>) -> Result<Option<BTreeMap<String, String>>> {
    json.map(|j| serde_json::from_str(&j).map_err(|_| corrupt("annotations", &j)))
        .transpose()
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path` and applies migrations.
    pub async fn open(path: &Path) -> Result<SqliteStore> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| MetaError::Unavailable(e.into()))?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        Self::connect(options).await
    }

    /// Opens a database from a `sqlite://` URL.
    pub async fn open_url(url: &str) -> Result<SqliteStore> {
        let options = SqliteConnectOptions::from_str(url).map_err(classify)?;
        let path = options.get_filename().to_path_buf();
        Self::open(&path).await
    }

    async fn connect(options: SqliteConnectOptions) -> Result<SqliteStore> {
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await
            .map_err(classify)?;
        MIGRATIONS
            .run(&writer)
            .await
            .map_err(|e| MetaError::Database(e.into()))?;
        let readers = std::thread::available_parallelism().map_or(4, |n| n.get() * 2) as u32;
        let reader = SqlitePoolOptions::new()
            .max_connections(readers.max(4))
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.read_only(true))
            .await
            .map_err(classify)?;
        Ok(SqliteStore {
            writer,
            reader,
            upload_locks: KeyedLocks::default(),
        })
    }

    async fn begin(&self) -> Result<Transaction<'static, Sqlite>> {
        self.writer.begin().await.map_err(classify)
    }
}

/// The id of `name`, creating the repository if it does not exist.
async fn ensure_repository(tx: &mut Transaction<'_, Sqlite>, name: &RepositoryName) -> Result<i64> {
    sqlx::query_scalar(
        "INSERT INTO repositories (name, created_at) VALUES (?1, ?2)
         ON CONFLICT (name) DO UPDATE SET name = excluded.name
         RETURNING id",
    )
    .bind(name.as_str())
    .bind(now_millis())
    .fetch_one(&mut **tx)
    .await
    .map_err(classify)
}

/// Checks that the repository holds each descriptor's content with the declared size, in one
/// query for the whole list.
async fn check_references(
    tx: &mut Transaction<'_, Sqlite>,
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
        ReferenceKind::Blob => {
            "SELECT wanted.value, b.size FROM json_each(?1) AS wanted
             LEFT JOIN repository_blobs rb ON rb.repository_id = ?2 AND rb.digest = wanted.value
             LEFT JOIN blobs b ON b.digest = rb.digest
             ORDER BY wanted.key"
        }
        ReferenceKind::Manifest => {
            "SELECT wanted.value, m.size FROM json_each(?1) AS wanted
             LEFT JOIN manifests m ON m.repository_id = ?2 AND m.digest = wanted.value
             ORDER BY wanted.key"
        }
    };
    let rows = sqlx::query(query)
        .bind(digests)
        .bind(repository_id)
        .fetch_all(&mut **tx)
        .await
        .map_err(classify)?;
    let mut broken = Vec::new();
    for (descriptor, row) in descriptors.iter().zip(rows) {
        let stored: Option<i64> = row.try_get(1).map_err(classify)?;
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

const MANIFEST_BY_TAG: &str = "SELECT m.digest, m.media_type, m.content FROM repositories r
     JOIN tags t ON t.repository_id = r.id AND t.name = ?2
     JOIN manifests m ON m.id = t.manifest_id
     WHERE r.name = ?1";
const MANIFEST_BY_DIGEST: &str =
    "SELECT m.digest, m.media_type, m.content FROM repositories r
     JOIN manifests m ON m.repository_id = r.id AND m.digest = ?2
     WHERE r.name = ?1";

fn reference_key(reference: &Reference) -> &str {
    match reference {
        Reference::Tag(tag) => tag.as_str(),
        Reference::Digest(digest) => digest.as_str(),
    }
}

#[async_trait]
impl MetadataStore for SqliteStore {
    async fn check(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.reader)
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn blob_size(&self, repository: &RepositoryName, digest: &Digest) -> Result<Option<u64>> {
        let size: Option<i64> = sqlx::query_scalar(
            "SELECT b.size FROM repositories r
             JOIN repository_blobs rb ON rb.repository_id = r.id AND rb.digest = ?2
             JOIN blobs b ON b.digest = rb.digest
             WHERE r.name = ?1",
        )
        .bind(repository.as_str())
        .bind(digest.as_str())
        .fetch_optional(&self.reader)
        .await
        .map_err(classify)?;
        Ok(size.map(|s| s as u64))
    }

    async fn link_blob(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        size: u64,
    ) -> Result<()> {
        let now = now_millis();
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO blobs (digest, size, created_at) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING")
            .bind(digest.as_str())
            .bind(size as i64)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        let repository_id = ensure_repository(&mut tx, repository).await?;
        sqlx::query(
            "INSERT INTO repository_blobs (repository_id, digest, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT DO NOTHING",
        )
        .bind(repository_id)
        .bind(digest.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        tx.commit().await.map_err(classify)
    }

    async fn mount_blob(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        from: &RepositoryName,
    ) -> Result<Option<u64>> {
        let mut tx = self.begin().await?;
        let size: Option<i64> = sqlx::query_scalar(
            "SELECT b.size FROM repositories r
             JOIN repository_blobs rb ON rb.repository_id = r.id AND rb.digest = ?2
             JOIN blobs b ON b.digest = rb.digest
             WHERE r.name = ?1",
        )
        .bind(from.as_str())
        .bind(digest.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(classify)?;
        let Some(size) = size else {
            return Ok(None);
        };
        let repository_id = ensure_repository(&mut tx, repository).await?;
        sqlx::query(
            "INSERT INTO repository_blobs (repository_id, digest, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT DO NOTHING",
        )
        .bind(repository_id)
        .bind(digest.as_str())
        .bind(now_millis())
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        Ok(Some(size as u64))
    }

    async fn repositories_with_blob(
        &self,
        digest: &Digest,
        limit: u32,
    ) -> Result<Vec<RepositoryName>> {
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT r.name FROM repository_blobs rb JOIN repositories r ON r.id = rb.repository_id
             WHERE rb.digest = ?1 ORDER BY r.name LIMIT ?2",
        )
        .bind(digest.as_str())
        .bind(limit as i64)
        .fetch_all(&self.reader)
        .await
        .map_err(classify)?;
        names
            .iter()
            .map(|n| RepositoryName::parse(n).map_err(|_| corrupt("repository name", n)))
            .collect()
    }

    async fn unlink_blob(&self, repository: &RepositoryName, digest: &Digest) -> Result<bool> {
        let result = sqlx::query(
            "DELETE FROM repository_blobs
             WHERE repository_id = (SELECT id FROM repositories WHERE name = ?1) AND digest = ?2",
        )
        .bind(repository.as_str())
        .bind(digest.as_str())
        .execute(&self.writer)
        .await
        .map_err(classify)?;
        Ok(result.rows_affected() > 0)
    }

    async fn put_manifest(&self, manifest: NewManifest<'_>) -> Result<()> {
        let now = now_millis();
        let mut tx = self.begin().await?;
        let repository_id = ensure_repository(&mut tx, manifest.repository).await?;

        let mut broken =
            check_references(&mut tx, repository_id, ReferenceKind::Blob, manifest.blobs).await?;
        broken.extend(
            check_references(
                &mut tx,
                repository_id,
                ReferenceKind::Manifest,
                manifest.children,
            )
            .await?,
        );
        if !broken.is_empty() {
            // Dropping the transaction rolls back the repository row too.
            return Err(MetaError::BrokenReferences(broken));
        }

        let annotations = manifest
            .annotations
            .map(|a| serde_json::to_string(a).expect("string maps serialize"));
        let inserted: Option<i64> = sqlx::query_scalar(
            "INSERT INTO manifests
                 (repository_id, digest, media_type, size, subject, artifact_type, annotations, created_at, content)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
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
        .await
        .map_err(classify)?;

        let manifest_id = match inserted {
            Some(id) => {
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
                        "INSERT INTO manifest_references (manifest_id, digest, kind) VALUES (?1, ?2, ?3)
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(id)
                    .bind(descriptor.digest.as_str())
                    .bind(kind.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(classify)?;
                }
                id
            }
            None => sqlx::query_scalar(
                "SELECT id FROM manifests WHERE repository_id = ?1 AND digest = ?2",
            )
            .bind(repository_id)
            .bind(manifest.digest.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(classify)?,
        };

        if let Some(tag) = manifest.tag {
            sqlx::query(
                "INSERT INTO tags (repository_id, name, manifest_id, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (repository_id, name) DO UPDATE
                 SET manifest_id = excluded.manifest_id, updated_at = excluded.updated_at",
            )
            .bind(repository_id)
            .bind(tag.as_str())
            .bind(manifest_id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        }
        tx.commit().await.map_err(classify)
    }

    async fn manifest(
        &self,
        repository: &RepositoryName,
        reference: &Reference,
    ) -> Result<Option<StoredManifest>> {
        let query = match reference {
            Reference::Tag(_) => MANIFEST_BY_TAG,
            Reference::Digest(_) => MANIFEST_BY_DIGEST,
        };
        let row = sqlx::query(query)
            .bind(repository.as_str())
            .bind(reference_key(reference))
            .fetch_optional(&self.reader)
            .await
            .map_err(classify)?;
        row.map(|row| {
            let digest: String = row.try_get(0).map_err(classify)?;
            let content: Vec<u8> = row.try_get(2).map_err(classify)?;
            Ok(StoredManifest {
                digest: parse_digest(&digest)?,
                media_type: row.try_get(1).map_err(classify)?,
                content: Bytes::from(content),
            })
        })
        .transpose()
    }

    async fn delete_manifest(&self, repository: &RepositoryName, digest: &Digest) -> Result<bool> {
        let result = sqlx::query(
            "DELETE FROM manifests
             WHERE repository_id = (SELECT id FROM repositories WHERE name = ?1) AND digest = ?2",
        )
        .bind(repository.as_str())
        .bind(digest.as_str())
        .execute(&self.writer)
        .await
        .map_err(classify)?;
        Ok(result.rows_affected() > 0)
    }

    async fn delete_tag(&self, repository: &RepositoryName, tag: &Tag) -> Result<bool> {
        let result = sqlx::query(
            "DELETE FROM tags
             WHERE repository_id = (SELECT id FROM repositories WHERE name = ?1) AND name = ?2",
        )
        .bind(repository.as_str())
        .bind(tag.as_str())
        .execute(&self.writer)
        .await
        .map_err(classify)?;
        Ok(result.rows_affected() > 0)
    }

    async fn referrers(
        &self,
        repository: &RepositoryName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Referrer>> {
        let rows = sqlx::query(
            "SELECT m.digest, m.media_type, m.size, m.artifact_type, m.annotations
             FROM repositories r JOIN manifests m ON m.repository_id = r.id AND m.subject = ?2
             WHERE r.name = ?1 AND (?3 IS NULL OR m.artifact_type = ?3)
             ORDER BY m.id",
        )
        .bind(repository.as_str())
        .bind(subject.as_str())
        .bind(artifact_type)
        .fetch_all(&self.reader)
        .await
        .map_err(classify)?;
        rows.into_iter()
            .map(|row| {
                let digest: String = row.try_get(0).map_err(classify)?;
                let size: i64 = row.try_get(2).map_err(classify)?;
                Ok(Referrer {
                    digest: parse_digest(&digest)?,
                    media_type: row.try_get(1).map_err(classify)?,
                    size: size as u64,
                    artifact_type: row.try_get(3).map_err(classify)?,
                    annotations: parse_annotations(row.try_get(4).map_err(classify)?)?,
                })
            })
            .collect()
    }

    async fn repository_exists(&self, repository: &RepositoryName) -> Result<bool> {
        let found: Option<i64> = sqlx::query_scalar("SELECT id FROM repositories WHERE name = ?1")
            .bind(repository.as_str())
            .fetch_optional(&self.reader)
            .await
            .map_err(classify)?;
        Ok(found.is_some())
    }

    async fn list_repositories(&self, after: Option<&str>, limit: u32) -> Result<Vec<String>> {
        sqlx::query_scalar("SELECT name FROM repositories WHERE name > ?1 ORDER BY name LIMIT ?2")
            .bind(after.unwrap_or(""))
            .bind(limit as i64)
            .fetch_all(&self.reader)
            .await
            .map_err(classify)
    }

    async fn list_tags(
        &self,
        repository: &RepositoryName,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>> {
        sqlx::query_scalar(
            "SELECT t.name FROM repositories r JOIN tags t ON t.repository_id = r.id
             WHERE r.name = ?1 AND t.name > ?2 ORDER BY t.name LIMIT ?3",
        )
        .bind(repository.as_str())
        .bind(after.unwrap_or(""))
        .bind(limit as i64)
        .fetch_all(&self.reader)
        .await
        .map_err(classify)
    }

    async fn create_upload(&self, upload: &UploadSession) -> Result<()> {
        sqlx::query(
            "INSERT INTO uploads (id, repository, size, hash_state, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .bind(upload.id.to_string())
        .bind(upload.repository.as_str())
        .bind(upload.size as i64)
        .bind(&upload.hash_state)
        .bind(upload.created_at)
        .bind(upload.updated_at)
        .execute(&self.writer)
        .await
        .map_err(classify)?;
        Ok(())
    }

    async fn upload(&self, id: UploadId) -> Result<Option<UploadSession>> {
        // Read through the writer: a client that just received an upload's new offset must
        // see it on its next request, whichever pool that would otherwise read from.
        let row = sqlx::query(
            "SELECT repository, size, hash_state, created_at, updated_at FROM uploads WHERE id = ?1",
        )
        .bind(id.to_string())
        .fetch_optional(&self.writer)
        .await
        .map_err(classify)?;
        row.map(|row| {
            let repository: String = row.try_get(0).map_err(classify)?;
            let size: i64 = row.try_get(1).map_err(classify)?;
            Ok(UploadSession {
                id,
                repository: RepositoryName::parse(&repository)
                    .map_err(|_| corrupt("repository name", &repository))?,
                size: size as u64,
                hash_state: row.try_get(2).map_err(classify)?,
                created_at: row.try_get(3).map_err(classify)?,
                updated_at: row.try_get(4).map_err(classify)?,
            })
        })
        .transpose()
    }

    async fn advance_upload(
        &self,
        id: UploadId,
        expected_size: u64,
        new_size: u64,
        hash_state: &[u8],
    ) -> Result<bool> {
        let result = sqlx::query(
            "UPDATE uploads SET size = ?3, hash_state = ?4, updated_at = ?5 WHERE id = ?1 AND size = ?2",
        )
        .bind(id.to_string())
        .bind(expected_size as i64)
        .bind(new_size as i64)
        .bind(hash_state)
        .bind(now_millis())
        .execute(&self.writer)
        .await
        .map_err(classify)?;
        Ok(result.rows_affected() == 1)
    }

    async fn delete_upload(&self, id: UploadId) -> Result<bool> {
        let result = sqlx::query("DELETE FROM uploads WHERE id = ?1")
            .bind(id.to_string())
            .execute(&self.writer)
            .await
            .map_err(classify)?;
        Ok(result.rows_affected() > 0)
    }

    async fn stale_uploads(&self, updated_before: i64) -> Result<Vec<UploadId>> {
        let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM uploads WHERE updated_at < ?1")
            .bind(updated_before)
            .fetch_all(&self.reader)
            .await
            .map_err(classify)?;
        ids.iter()
            .map(|id| UploadId::parse(id).map_err(|_| corrupt("upload id", id)))
            .collect()
    }

    async fn lock_upload(&self, id: UploadId) -> UploadLock {
        Box::new(self.upload_locks.lock(id).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::behaviour;

    async fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("berth.db"))
            .await
            .unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn passes_the_behaviour_suite() {
        let (_dir, store) = store().await;
        behaviour::run_all(&store).await;
    }

    #[tokio::test]
    async fn reopening_keeps_data_and_migrations_are_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("berth.db");
        let repo = RepositoryName::parse("a/b").unwrap();
        let digest = Digest::of(berth_oci::Algorithm::Sha256, b"x");
        {
            let store = SqliteStore::open(&path).await.unwrap();
            store.link_blob(&repo, &digest, 1).await.unwrap();
        }
        let store = SqliteStore::open_url(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        assert_eq!(store.blob_size(&repo, &digest).await.unwrap(), Some(1));
    }
}
