//! The metadata store over SQL, once for every engine.
//!
//! `SqlStore<DB>` implements [`MetadataStore`] with queries that SQLite and PostgreSQL both
//! understand (sqlx binds `$N` placeholders on both); the few statements that differ come
//! from the engine's [`Dialect`]. Engine-specific setup (connection options, pools,
//! migrations, locking) lives in `sqlite.rs` and `postgres.rs`.
//!
//! Every write that must not race a concurrent delete in the same repository (a manifest
//! and its reference check, a blob unlink, a manifest delete) first locks the repository's
//! row. SQLite serialises all writers anyway; on PostgreSQL this makes those writes in one
//! repository take turns, across every berth instance.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use berth_oci::{Digest, Reference, RepositoryName, Tag, UploadId};
use bytes::Bytes;
use sqlx::{
    ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row, Transaction, Type,
};

use crate::events::{Event, EventKind, Origin, OutboxRouter};
use crate::gc::BlobDeletion;
use crate::sql_browse::BrowseDialect;
use crate::sqlite_writers::WriterPresence;
use crate::{
    BlobRecord, KeyedLocks, MetaError, MetadataStore, NewBlob, NewManifest, PoolUse, Referrer,
    Result, StoreUsage, StoredManifest, UploadLock, UploadSession, now_millis,
};

/// What differs between SQL engines (the dashboard's part in [`BrowseDialect`]).
pub trait Dialect: BrowseDialect {
    /// For each digest of the JSON array `$1`, in order: the digest and the size of that
    /// blob if repository `$2` holds it (NULL otherwise).
    const BLOB_REFERENCES: &'static str;
    /// The same for manifests of repository `$2`.
    const MANIFEST_REFERENCES: &'static str;
    /// The names of the tags of repository `$1` after `$2`, in order, at most `$3`, as one
    /// text with a name per line (NULL if none; a tag has no line break). One row rather than
    /// one per tag: fetched row by row, a list of 10k tags took 10 ms of CPU, now 3.6 ms.
    const TAG_NAMES: &'static str;
    /// Whether writes go through a pool of their own (one connection) beside the readers.
    const SINGLE_WRITER: bool;

    /// Starts a write transaction. SQLite: `BEGIN IMMEDIATE`, so that a transaction that
    /// reads before it writes holds the write lock from the start and reads what is current
    /// even when another process (`berth gc`) writes to the same file.
    const BEGIN: &'static str;
    /// Waits for the transaction-scoped lock on a digest (`$1`, `$2`: class and key), which
    /// every change of a blob's record or deletion state takes first; `None` where the
    /// engine serialises writers anyway (SQLite).
    const LOCK_DIGEST: Option<&'static str>;
    /// The same without waiting, for many digests in one statement: `$1` is the class, `$2`
    /// a JSON array of keys; returns (as BIGINT) the keys it could not take because another
    /// transaction holds them. Never waiting, it cannot deadlock.
    const TRY_LOCK_DIGESTS: Option<&'static str>;
    /// Holds links (`repository_blobs`) still while a new quota counts them, so that none
    /// is missed (a link that waited then sees the quota); `None` where writers are
    /// serialised anyway (SQLite).
    const LOCK_BLOB_LINKS: Option<&'static str>;
    /// Locks the rows of the repositories that link any digest of the JSON array `$1` where
    /// they are free, and returns the ids of those it locked (on SQLite, where the writer is
    /// alone: all of them).
    const LOCK_LINKING_REPOSITORIES: &'static str;
    /// Whether another session of the database is writing (in a transaction that wrote) or
    /// waiting for a lock, as one boolean; `None` where writers are seen another way
    /// (SQLite: `PRAGMA data_version` and the shared writer presence).
    const OTHER_WRITERS_PRESENT: Option<&'static str>;

    /// A subquery yielding the elements of the JSON array of strings bound at `$param`, as
    /// rows of one column named `value`.
    fn json_text_values(param: u32) -> String;
    /// The same for a JSON array of integers.
    fn json_integers(param: u32) -> String;

    /// Excludes other writers of one upload, in every process that uses the database, until
    /// the returned lock is dropped.
    fn lock_upload(
        store: &SqlStore<Self>,
        id: UploadId,
    ) -> impl Future<Output = Result<UploadLock>> + Send;

    fn rows_affected(result: &Self::QueryResult) -> u64;
}

pub struct SqlStore<DB: Database> {
    /// Where writes go. SQLite admits one writer at a time; its pool has one connection.
    pub(crate) writer: Pool<DB>,
    /// Where reads go; the same pool as `writer` where the engine has no single-writer rule.
    pub(crate) reader: Pool<DB>,
    /// Upload locks for an engine only this process uses.
    pub(crate) upload_locks: KeyedLocks<UploadId>,
    /// Which webhook endpoints want which changes (none until set).
    pub(crate) outbox_router: OnceLock<Arc<dyn OutboxRouter>>,
    /// Whether other processes' writers are in use (SQLite; see `sqlite_writers`).
    pub(crate) writer_presence: Option<Arc<WriterPresence>>,
}

impl<DB: Database> SqlStore<DB> {
    pub(crate) fn new(writer: Pool<DB>, reader: Pool<DB>) -> SqlStore<DB> {
        SqlStore {
            writer,
            reader,
            upload_locks: KeyedLocks::default(),
            outbox_router: OnceLock::new(),
            writer_presence: None,
        }
    }
}

impl From<sqlx::Error> for MetaError {
    fn from(err: sqlx::Error) -> Self {
        let transient = match &err {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_) => true,
            sqlx::Error::Database(db) => db.code().is_some_and(|code| {
                // SQLite: BUSY, LOCKED and their extended codes (another process holds the
                // database). PostgreSQL: connection exceptions (08), shutdown (57P), too many
                // connections, serialization failures and deadlocks: retrying may succeed.
                matches!(
                    code.as_ref(),
                    "5" | "6" | "517" | "262" | "53300" | "40001" | "40P01"
                ) || code.starts_with("08")
                    || code.starts_with("57P")
            }),
            _ => false,
        };
        // SQLite: UNIQUE, PRIMARY KEY and FOREIGN KEY constraint failures; PostgreSQL:
        // unique_violation and foreign_key_violation.
        let conflict = matches!(&err, sqlx::Error::Database(db)
            if matches!(db.code().as_deref(), Some("2067" | "1555" | "787" | "23505" | "23503")));
        if transient {
            MetaError::Unavailable(err.into())
        } else if conflict {
            MetaError::Conflict(err.to_string())
        } else {
            MetaError::Database(err.into())
        }
    }
}

impl From<sqlx::migrate::MigrateError> for MetaError {
    fn from(err: sqlx::migrate::MigrateError) -> Self {
        match err {
            sqlx::migrate::MigrateError::Execute(e) => e.into(),
            other => MetaError::Database(other.into()),
        }
    }
}

/// Values read back were validated before they were written; one that is not valid now was
/// edited by hand or is corrupt.
pub(crate) fn corrupt(what: &str, value: &str) -> MetaError {
    MetaError::Database(format!("corrupt {what} in database: {value:?}").into())
}

pub(crate) fn parse_digest(s: &str) -> Result<Digest> {
    Digest::parse(s).map_err(|_| corrupt("digest", s))
}

fn parse_name(s: &str) -> Result<RepositoryName> {
    RepositoryName::parse(s).map_err(|_| corrupt("repository name", s))
}

fn parse_annotations(json: Option<String>) -> Result<Option<BTreeMap<String, String>>> {
    json.map(|j| serde_json::from_str(&j).map_err(|_| corrupt("annotations", &j)))
        .transpose()
}

fn reference_key(reference: &Reference) -> &str {
    match reference {
        Reference::Tag(tag) => tag.as_str(),
        Reference::Digest(digest) => digest.as_str(),
    }
}

const CREATE_REPOSITORY: &str = "INSERT INTO repositories (name, created_at) VALUES ($1, $2)
     ON CONFLICT (name) DO NOTHING
     RETURNING id";
/// Locks an existing repository's row for the transaction and returns its id.
const LOCK_REPOSITORY: &str = "UPDATE repositories SET name = name WHERE name = $1 RETURNING id";
const BLOB_ROW: &str = "SELECT b.size, b.cid, b.quarantine_reason FROM repositories r
     JOIN repository_blobs rb ON rb.repository_id = r.id AND rb.digest = $2
     JOIN blobs b ON b.digest = rb.digest
     WHERE r.name = $1";
/// Links a blob into a repository, or refreshes the link's time: pushing or mounting a blob
/// again restarts its garbage collection grace period.
const LINK_BLOB: &str =
    "INSERT INTO repository_blobs (repository_id, digest, created_at) VALUES ($1, $2, $3)
     ON CONFLICT (repository_id, digest) DO UPDATE SET created_at = excluded.created_at";
const MANIFEST_BY_TAG: &str = "SELECT m.digest, m.media_type, m.content FROM repositories r
     JOIN tags t ON t.repository_id = r.id AND t.name = $2
     JOIN manifests m ON m.id = t.manifest_id
     WHERE r.name = $1";
const MANIFEST_BY_DIGEST: &str = "SELECT m.digest, m.media_type, m.content FROM repositories r
     JOIN manifests m ON m.repository_id = r.id AND m.digest = $2
     WHERE r.name = $1";

impl<DB: Dialect> SqlStore<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
    String: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    i64: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    Vec<u8>: for<'r> Decode<'r, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    Option<String>: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB>,
    Option<i64>: for<'r> Decode<'r, DB>,
    usize: ColumnIndex<DB::Row>,
{
    pub(crate) async fn begin(&self) -> Result<Transaction<'static, DB>> {
        Ok(self.writer.begin_with(DB::BEGIN).await?)
    }

    /// The id of `name`, creating the repository if needed (and then adding its event to
    /// `events`); the row stays locked until the transaction ends. An existing repository,
    /// the usual case, costs one statement.
    pub(crate) async fn ensure_repository(
        tx: &mut Transaction<'static, DB>,
        name: &RepositoryName,
        origin: &Arc<Origin>,
        events: &mut Vec<Event>,
    ) -> Result<i64> {
        if let Some(id) = Self::lock_repository(tx, name).await? {
            return Ok(id);
        }
        let created = sqlx::query(CREATE_REPOSITORY)
            .bind(name.as_str())
            .bind(now_millis())
            .fetch_optional(&mut **tx)
            .await?;
        match created {
            Some(row) => {
                events.push(Event::new(EventKind::RepositoryCreated, name, origin));
                Ok(row.try_get(0)?)
            }
            // Created by a concurrent transaction since we looked: lock it as it is.
            None => Self::lock_repository(tx, name)
                .await?
                .ok_or_else(|| MetaError::Conflict(format!("repository {name} vanished"))),
        }
    }

    /// The id of an existing repository, its row locked until the transaction ends.
    pub(crate) async fn lock_repository(
        tx: &mut Transaction<'static, DB>,
        name: &RepositoryName,
    ) -> Result<Option<i64>> {
        let row = sqlx::query(LOCK_REPOSITORY)
            .bind(name.as_str())
            .fetch_optional(&mut **tx)
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }
}

#[async_trait]
impl<DB: Dialect> MetadataStore for SqlStore<DB>
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
    async fn check(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    async fn blob(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<BlobRecord>> {
        let row = sqlx::query(BLOB_ROW)
            .bind(repository.as_str())
            .bind(digest.as_str())
            .fetch_optional(&self.reader)
            .await?;
        row.map(|r| {
            Ok(BlobRecord {
                size: r.try_get::<i64, _>(0)? as u64,
                cid: r.try_get(1)?,
                quarantine: r.try_get(2)?,
            })
        })
        .transpose()
    }

    async fn record_committed_blob(
        &self,
        repository: &RepositoryName,
        blob: NewBlob<'_>,
        seen: Option<BlobDeletion>,
        origin: &Arc<Origin>,
    ) -> Result<Vec<Event>> {
        let now = now_millis();
        let mut events = Vec::new();
        let mut tx = self.begin().await?;
        Self::lock_digest(&mut tx, blob.digest).await?;
        Self::settle_deletion(&mut tx, blob.digest, seen).await?;
        // An existing row stays as it is, unless it was quarantined: then the bytes just
        // committed (verified against the digest on the way in) heal it.
        sqlx::query(
            "INSERT INTO blobs (digest, size, created_at, cid) VALUES ($1, $2, $3, $4)
             ON CONFLICT (digest) DO UPDATE SET cid = excluded.cid, quarantined_at = NULL,
                 quarantine_reason = NULL, verified_at = NULL
             WHERE blobs.quarantined_at IS NOT NULL",
        )
        .bind(blob.digest.as_str())
        .bind(blob.size as i64)
        .bind(now)
        .bind(blob.cid)
        .execute(&mut *tx)
        .await?;
        let repository_id =
            Self::ensure_repository(&mut tx, repository, origin, &mut events).await?;
        sqlx::query(LINK_BLOB)
            .bind(repository_id)
            .bind(blob.digest.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        Self::charge_quotas(&mut tx, repository, blob.digest, blob.size).await?;
        events.push(
            Event::new(EventKind::BlobPushed, repository, origin)
                .digest(blob.digest)
                .size(blob.size),
        );
        self.commit_with_events(tx, events).await
    }

    async fn mount_blob(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        from: &RepositoryName,
        origin: &Arc<Origin>,
    ) -> Result<Option<(u64, Vec<Event>)>> {
        let mut events = Vec::new();
        let mut tx = self.begin().await?;
        // Garbage collection cannot mark the blob while the mount holds the digest.
        Self::lock_digest(&mut tx, digest).await?;
        let row = sqlx::query(BLOB_ROW)
            .bind(from.as_str())
            .bind(digest.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        if row.try_get::<Option<String>, _>(2)?.is_some() {
            // Quarantined: the client uploads it instead, which heals it.
            return Ok(None);
        }
        let size: i64 = row.try_get(0)?;
        let repository_id =
            Self::ensure_repository(&mut tx, repository, origin, &mut events).await?;
        sqlx::query(LINK_BLOB)
            .bind(repository_id)
            .bind(digest.as_str())
            .bind(now_millis())
            .execute(&mut *tx)
            .await?;
        Self::charge_quotas(&mut tx, repository, digest, size as u64).await?;
        let mut mounted = Event::new(EventKind::BlobMounted, repository, origin)
            .digest(digest)
            .size(size as u64);
        mounted.from_repository = Some(from.clone());
        events.push(mounted);
        let events = self.commit_with_events(tx, events).await?;
        Ok(Some((size as u64, events)))
    }

    async fn repositories_with_blob(
        &self,
        digest: &Digest,
        limit: u32,
    ) -> Result<Vec<RepositoryName>> {
        let rows = sqlx::query(
            "SELECT r.name FROM repository_blobs rb JOIN repositories r ON r.id = rb.repository_id
             WHERE rb.digest = $1 ORDER BY r.name LIMIT $2",
        )
        .bind(digest.as_str())
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| parse_name(&r.try_get::<String, _>(0)?))
            .collect()
    }

    async fn unlink_blob(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        origin: &Arc<Origin>,
    ) -> Result<Option<Vec<Event>>> {
        let mut tx = self.begin().await?;
        // A link of the same digest elsewhere waits, so that quotas see one or the other.
        Self::lock_digest(&mut tx, digest).await?;
        let Some(repository_id) = Self::lock_repository(&mut tx, repository).await? else {
            return Ok(None);
        };
        let result =
            sqlx::query("DELETE FROM repository_blobs WHERE repository_id = $1 AND digest = $2")
                .bind(repository_id)
                .bind(digest.as_str())
                .execute(&mut *tx)
                .await?;
        if DB::rows_affected(&result) == 0 {
            return Ok(None);
        }
        Self::release_link(&mut tx, repository, digest).await?;
        let event = Event::new(EventKind::BlobDeleted, repository, origin).digest(digest);
        Ok(Some(self.commit_with_events(tx, vec![event]).await?))
    }

    async fn put_manifest(&self, manifest: NewManifest<'_>) -> Result<Vec<Event>> {
        self.write_manifest(manifest).await
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
            .await?;
        row.map(|row| {
            let digest: String = row.try_get(0)?;
            let content: Vec<u8> = row.try_get(2)?;
            Ok(StoredManifest {
                digest: parse_digest(&digest)?,
                media_type: row.try_get(1)?,
                content: Bytes::from(content),
            })
        })
        .transpose()
    }

    async fn delete_manifest(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        origin: &Arc<Origin>,
    ) -> Result<Option<Vec<Event>>> {
        self.remove_manifest(repository, digest, origin).await
    }

    async fn delete_tag(
        &self,
        repository: &RepositoryName,
        tag: &Tag,
        pointing_at: Option<&Digest>,
        origin: &Arc<Origin>,
    ) -> Result<Option<Vec<Event>>> {
        self.remove_tag(repository, tag, pointing_at, origin).await
    }

    fn route_events_to(&self, router: Arc<dyn OutboxRouter>) {
        let _ = self.outbox_router.set(router);
    }

    async fn referrers(
        &self,
        repository: &RepositoryName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Referrer>> {
        let rows = sqlx::query(
            "SELECT m.digest, m.media_type, m.size, m.artifact_type, m.annotations
             FROM repositories r JOIN manifests m ON m.repository_id = r.id AND m.subject = $2
             WHERE r.name = $1 AND (CAST($3 AS TEXT) IS NULL OR m.artifact_type = CAST($3 AS TEXT))
             ORDER BY m.id",
        )
        .bind(repository.as_str())
        .bind(subject.as_str())
        .bind(artifact_type)
        .fetch_all(&self.reader)
        .await?;
        rows.into_iter()
            .map(|row| {
                let digest: String = row.try_get(0)?;
                let size: i64 = row.try_get(2)?;
                Ok(Referrer {
                    digest: parse_digest(&digest)?,
                    media_type: row.try_get(1)?,
                    size: size as u64,
                    artifact_type: row.try_get(3)?,
                    annotations: parse_annotations(row.try_get(4)?)?,
                })
            })
            .collect()
    }

    async fn repository_exists(&self, repository: &RepositoryName) -> Result<bool> {
        let row = sqlx::query("SELECT id FROM repositories WHERE name = $1")
            .bind(repository.as_str())
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.is_some())
    }

    async fn list_repositories(&self, after: Option<&str>, limit: u32) -> Result<Vec<String>> {
        let rows =
            sqlx::query("SELECT name FROM repositories WHERE name > $1 ORDER BY name LIMIT $2")
                .bind(after.unwrap_or(""))
                .bind(i64::from(limit))
                .fetch_all(&self.reader)
                .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?)
    }

    async fn list_tags(
        &self,
        repository: &RepositoryName,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>> {
        let names: Option<String> = sqlx::query(DB::TAG_NAMES)
            .bind(repository.as_str())
            .bind(after.unwrap_or(""))
            .bind(i64::from(limit))
            .fetch_one(&self.reader)
            .await?
            .try_get(0)?;
        Ok(names.map_or_else(Vec::new, |names| {
            names.split('\n').map(str::to_owned).collect()
        }))
    }

    async fn create_upload(&self, upload: &UploadSession) -> Result<()> {
        sqlx::query(
            "INSERT INTO uploads (id, repository, size, hash_state, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(upload.id.to_string())
        .bind(upload.repository.as_str())
        .bind(upload.size as i64)
        .bind(upload.hash_state.as_slice())
        .bind(upload.created_at)
        .bind(upload.updated_at)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn upload(&self, id: UploadId) -> Result<Option<UploadSession>> {
        // Read through the writer: a client that was just told an upload's new offset must
        // see it on its next request, whichever pool would otherwise answer.
        let row = sqlx::query("SELECT repository, size, hash_state, created_at, updated_at FROM uploads WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.writer)
            .await?;
        row.map(|row| {
            let repository: String = row.try_get(0)?;
            let size: i64 = row.try_get(1)?;
            Ok(UploadSession {
                id,
                repository: parse_name(&repository)?,
                size: size as u64,
                hash_state: row.try_get(2)?,
                created_at: row.try_get(3)?,
                updated_at: row.try_get(4)?,
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
        let result =
            sqlx::query("UPDATE uploads SET size = $3, hash_state = $4, updated_at = $5 WHERE id = $1 AND size = $2")
                .bind(id.to_string())
                .bind(expected_size as i64)
                .bind(new_size as i64)
                .bind(hash_state)
                .bind(now_millis())
                .execute(&self.writer)
                .await?;
        Ok(DB::rows_affected(&result) == 1)
    }

    async fn delete_upload(&self, id: UploadId) -> Result<bool> {
        let result = sqlx::query("DELETE FROM uploads WHERE id = $1")
            .bind(id.to_string())
            .execute(&self.writer)
            .await?;
        Ok(DB::rows_affected(&result) > 0)
    }

    async fn stale_uploads(&self, updated_before: i64) -> Result<Vec<UploadId>> {
        let rows = sqlx::query("SELECT id FROM uploads WHERE updated_at < $1")
            .bind(updated_before)
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|r| {
                let id: String = r.try_get(0)?;
                UploadId::parse(&id).map_err(|_| corrupt("upload id", &id))
            })
            .collect()
    }

    async fn lock_upload(&self, id: UploadId) -> Result<UploadLock> {
        DB::lock_upload(self, id).await
    }

    async fn usage(&self) -> Result<StoreUsage> {
        let uploads: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM uploads")
            .fetch_one(&self.reader)
            .await?;
        let pool_use = |name, pool: &Pool<DB>| PoolUse {
            name,
            open: pool.size(),
            idle: u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
            max: pool.options().get_max_connections(),
        };
        let pools = if DB::SINGLE_WRITER {
            vec![
                pool_use("writer", &self.writer),
                pool_use("reader", &self.reader),
            ]
        } else {
            vec![pool_use("main", &self.writer)]
        };
        Ok(StoreUsage {
            uploads_in_progress: u64::try_from(uploads).unwrap_or(0),
            pools,
        })
    }
}
