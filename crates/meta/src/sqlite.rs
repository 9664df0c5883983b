//! The embedded default: SQLite through sqlx.
//!
//! SQLite lets one writer in at a time, so writes go through a pool of exactly one
//! connection: they queue in berth instead of failing with `SQLITE_BUSY`. Reads use their
//! own pool of read-only connections and run concurrently with the writer (write-ahead
//! logging). Commits are fsynced (`synchronous = FULL`): once a push is acknowledged, it
//! survives a crash. Only one berth process may use a database file; upload locks are
//! therefore kept in the process.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use berth_oci::UploadId;
use sqlx::Sqlite;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::sql_store::{Dialect, SqlStore};
use crate::sqlite_writers::WriterPresence;
use crate::{MetaError, Result, UploadLock};

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

pub type SqliteStore = SqlStore<Sqlite>;

impl Dialect for Sqlite {
    const BLOB_REFERENCES: &'static str = "SELECT wanted.value, b.size FROM json_each($1) AS wanted
         LEFT JOIN repository_blobs rb ON rb.repository_id = $2 AND rb.digest = wanted.value
         LEFT JOIN blobs b ON b.digest = rb.digest
         ORDER BY wanted.key";
    const MANIFEST_REFERENCES: &'static str =
        "SELECT wanted.value, m.size FROM json_each($1) AS wanted
         LEFT JOIN manifests m ON m.repository_id = $2 AND m.digest = wanted.value
         ORDER BY wanted.key";

    const TAG_NAMES: &'static str = "SELECT group_concat(name, char(10) ORDER BY name) FROM
         (SELECT t.name FROM repositories r JOIN tags t ON t.repository_id = r.id
             WHERE r.name = $1 AND t.name > $2 ORDER BY t.name LIMIT $3)";
    const SINGLE_WRITER: bool = true;

    const BEGIN: &'static str = "BEGIN IMMEDIATE";
    // One writer at a time, across processes: a transaction's reads are current.
    const LOCK_DIGEST: Option<&'static str> = None;
    const TRY_LOCK_DIGESTS: Option<&'static str> = None;
    const LOCK_BLOB_LINKS: Option<&'static str> = None;
    const LOCK_LINKING_REPOSITORIES: &'static str = "SELECT DISTINCT repository_id
         FROM repository_blobs WHERE digest IN (SELECT value FROM json_each($1))";
    const OTHER_WRITERS_PRESENT: Option<&'static str> = None;

    fn json_text_values(param: u32) -> String {
        format!("SELECT value FROM json_each(${param})")
    }

    fn json_integers(param: u32) -> String {
        format!("SELECT value FROM json_each(${param})")
    }

    async fn lock_upload(store: &SqlStore<Self>, id: UploadId) -> Result<UploadLock> {
        Ok(Box::new(store.upload_locks.lock(id).await))
    }

    fn rows_affected(result: &Self::QueryResult) -> u64 {
        result.rows_affected()
    }
}

impl SqlStore<Sqlite> {
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
        // Other processes' garbage collectors see this process's writer in use, waiting
        // included (see `sqlite_writers`). The one connection is kept for good, so that
        // every use of it passes both hooks.
        let presence = Arc::new(WriterPresence::open(path));
        let (entering, leaving) = (presence.clone(), presence.clone());
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .idle_timeout(None)
            .max_lifetime(None)
            .before_acquire(move |_, _| {
                entering.enter();
                Box::pin(async { Ok(true) })
            })
            .after_release(move |_, _| {
                leaving.leave();
                Box::pin(async { Ok(true) })
            })
            .connect_with(options.clone())
            .await?;
        MIGRATIONS.run(&writer).await?;
        let readers = std::thread::available_parallelism().map_or(4, |n| n.get() * 2) as u32;
        let reader = SqlitePoolOptions::new()
            .max_connections(readers.max(4))
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.read_only(true))
            .await?;
        let mut store = SqlStore::new(writer, reader);
        store.writer_presence = Some(presence);
        Ok(store)
    }

    /// Opens a database from a `sqlite://` URL.
    pub async fn open_url(url: &str) -> Result<SqliteStore> {
        let options = SqliteConnectOptions::from_str(url)?;
        let path = options.get_filename().to_path_buf();
        Self::open(&path).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MetadataStore, behaviour};
    use berth_oci::{Digest, RepositoryName};

    #[tokio::test]
    async fn passes_the_behaviour_suite() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("berth.db"))
            .await
            .unwrap();
        crate::gc_behaviour::run_gc(&store).await;
        crate::tag_rules_behaviour::run_tag_rules(&store).await;
        crate::quotas_behaviour::run_quotas(&store).await;
        crate::tag_history_behaviour::run_tag_history(&store).await;
        crate::cache_behaviour::run_cache(&store).await;
        behaviour::run_all(&store).await;
        behaviour::run_identity(&store).await;
        crate::second_factors_behaviour::run_second_factors(&store).await;
        crate::passkeys_behaviour::run_passkeys(&store).await;
        crate::external_identities_behaviour::run_external_identities(&store).await;
        crate::browse_behaviour::run_browse(&store).await;
        crate::inventory_behaviour::run_all(&store).await;
    }

    #[tokio::test]
    async fn reopening_keeps_data_and_migrations_are_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("berth.db");
        let repo = RepositoryName::parse("a/b").unwrap();
        let digest = Digest::of(berth_oci::Algorithm::Sha256, b"x");
        {
            let store = SqliteStore::open(&path).await.unwrap();
            store
                .link_blob(
                    &repo,
                    &digest,
                    1,
                    &std::sync::Arc::new(crate::Origin::system("test")),
                )
                .await
                .unwrap();
        }
        let store = SqliteStore::open_url(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        assert_eq!(store.blob_size(&repo, &digest).await.unwrap(), Some(1));
    }
}
