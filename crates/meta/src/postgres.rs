//! PostgreSQL, for production and for several stateless berth instances sharing one
//! database.
//!
//! Every instance connects with its own pool. Migrations run under sqlx's advisory lock, so
//! instances starting together apply them once. Upload locks are PostgreSQL advisory locks,
//! so a chunked upload is written by one request at a time whichever instance receives it.

use std::str::FromStr;
use std::time::Duration;

use berth_oci::UploadId;
use sqlx::Postgres;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::sql_store::{Dialect, SqlStore};
use crate::{Result, UploadLock};

pub(crate) static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

pub type PostgresStore = SqlStore<Postgres>;

/// Connection pool settings.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub max_connections: u32,
    /// How long a request waits for a connection before it is answered 503.
    pub acquire_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// The advisory lock namespace of berth's upload locks ("brth"), so that they cannot collide
/// with another application's advisory locks in the same database.
const UPLOAD_LOCK_CLASS: i32 = 0x6272_7468;

impl Dialect for Postgres {
    const BLOB_REFERENCES: &'static str = "SELECT wanted.value, b.size
         FROM jsonb_array_elements_text(CAST($1 AS JSONB)) WITH ORDINALITY AS wanted(value, position)
         LEFT JOIN repository_blobs rb ON rb.repository_id = $2 AND rb.digest = wanted.value
         LEFT JOIN blobs b ON b.digest = rb.digest
         ORDER BY wanted.position";
    const MANIFEST_REFERENCES: &'static str = "SELECT wanted.value, m.size
         FROM jsonb_array_elements_text(CAST($1 AS JSONB)) WITH ORDINALITY AS wanted(value, position)
         LEFT JOIN manifests m ON m.repository_id = $2 AND m.digest = wanted.value
         ORDER BY wanted.position";

    const TAG_NAMES: &'static str = "SELECT string_agg(name, E'\\n' ORDER BY name) FROM
         (SELECT t.name FROM repositories r JOIN tags t ON t.repository_id = r.id
             WHERE r.name = $1 AND t.name > $2 ORDER BY t.name LIMIT $3) AS page";
    const SINGLE_WRITER: bool = false;

    const BEGIN: &'static str = "BEGIN";
    const LOCK_DIGEST: Option<&'static str> = Some("SELECT pg_advisory_xact_lock($1, $2)");
    const TRY_LOCK_DIGESTS: Option<&'static str> = Some(
        "SELECT CAST(k.value AS BIGINT) FROM jsonb_array_elements_text(CAST($2 AS JSONB)) AS k(value)
         WHERE NOT pg_try_advisory_xact_lock($1, CAST(k.value AS INTEGER))",
    );
    const LOCK_BLOB_LINKS: Option<&'static str> = Some("LOCK TABLE repository_blobs IN SHARE MODE");
    // Never waits: a repository busy with a push is skipped (the push wins).
    const LOCK_LINKING_REPOSITORIES: &'static str = "SELECT id FROM repositories
         WHERE id IN (SELECT repository_id FROM repository_blobs
             WHERE digest IN (SELECT jsonb_array_elements_text(CAST($1 AS JSONB))))
         ORDER BY id FOR UPDATE SKIP LOCKED";
    // Sessions of other roles show no transaction or wait here: berth's instances share
    // one role. (A transaction gets its id at its first write or row lock.)
    const OTHER_WRITERS_PRESENT: Option<&'static str> = Some(
        "SELECT EXISTS (SELECT 1 FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()
               AND backend_type = 'client backend'
               AND (backend_xid IS NOT NULL OR wait_event_type = 'Lock'))",
    );

    fn json_text_values(param: u32) -> String {
        format!("SELECT jsonb_array_elements_text(CAST(${param} AS JSONB)) AS value")
    }

    fn json_integers(param: u32) -> String {
        format!(
            "SELECT CAST(jsonb_array_elements_text(CAST(${param} AS JSONB)) AS BIGINT) AS value"
        )
    }

    async fn lock_upload(store: &SqlStore<Self>, id: UploadId) -> Result<UploadLock> {
        // The wait happens in a task of its own: if the caller gives up (its client went
        // away), the server would still grant the lock to the abandoned session later. The
        // task then finds nobody to hand it to, and dropping it releases it.
        let pool = store.writer.clone();
        let key = upload_lock_key(id);
        let (deliver, receive) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let locked: Result<AdvisoryLock> = async {
                let mut connection = pool.acquire().await?;
                sqlx::query("SELECT pg_advisory_lock($1, $2)")
                    .bind(UPLOAD_LOCK_CLASS)
                    .bind(key)
                    .execute(&mut *connection)
                    .await?;
                Ok(AdvisoryLock {
                    connection: Some(connection),
                    key,
                })
            }
            .await;
            // Unclaimed, the lock is dropped here, which releases it.
            let _ = deliver.send(locked);
        });
        let lock = receive
            .await
            .map_err(|_| crate::MetaError::Unavailable("the upload lock task ended".into()))??;
        Ok(Box::new(lock))
    }

    fn rows_affected(result: &Self::QueryResult) -> u64 {
        result.rows_affected()
    }
}

/// 32 bits of the upload id; two uploads sharing them merely take turns.
fn upload_lock_key(id: UploadId) -> i32 {
    let text = id.to_string();
    i32::from_str_radix(&text[..8], 16)
        .unwrap_or_else(|_| u32::from_str_radix(&text[..8], 16).unwrap_or(0) as i32)
}

/// A session advisory lock, held on the connection that took it.
struct AdvisoryLock {
    connection: Option<PoolConnection<Postgres>>,
    key: i32,
}

impl Drop for AdvisoryLock {
    fn drop(&mut self) {
        let Some(mut connection) = self.connection.take() else {
            return;
        };
        let key = self.key;
        // Unlocking needs a round trip, which a destructor cannot wait for.
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    let unlocked = sqlx::query("SELECT pg_advisory_unlock($1, $2)")
                        .bind(UPLOAD_LOCK_CLASS)
                        .bind(key)
                        .execute(&mut *connection)
                        .await;
                    if unlocked.is_err() {
                        // The lock may still be held: the connection must not serve anyone else.
                        connection.close_on_drop();
                    }
                });
            }
            // Closing the session releases the lock.
            Err(_) => connection.close_on_drop(),
        }
    }
}

impl SqlStore<Postgres> {
    /// Connects to `url` (`postgres://user:password@host/database`) and applies migrations.
    pub async fn connect(url: &str, settings: &PoolSettings) -> Result<PostgresStore> {
        let options = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(options)
            .await?;
        MIGRATIONS.run(&pool).await?;
        Ok(SqlStore::new(pool.clone(), pool))
    }
}

/// Test support: a private PostgreSQL server per test, on a free loopback port, in a
/// temporary directory, so that a test can stop and restart it without disturbing others.
/// It needs PostgreSQL's server binaries (Debian's `postgresql` package; the test command
/// installs it) and root, since the server runs as the `postgres` user.
#[cfg(any(test, feature = "behaviour-tests"))]
pub mod testing {
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};

    pub struct PostgresServer {
        dir: tempfile::TempDir,
        bin: PathBuf,
        pub port: u16,
    }

    /// The newest installed server's binaries.
    fn server_binaries() -> PathBuf {
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .map(|dir| {
                dir.filter_map(|e| e.ok().map(|e| e.path().join("bin")))
                    .collect()
            })
            .unwrap_or_default();
        versions.retain(|bin| bin.join("initdb").is_file());
        versions.sort();
        versions.pop().expect(
            "PostgreSQL server binaries not found under /usr/lib/postgresql: run the tests with ./scripts/test, which installs them",
        )
    }

    fn as_postgres(bin: &Path, program: &str, args: &[&str]) {
        let output = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(bin.join(program))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("runuser runs");
        assert!(
            output.status.success(),
            "{program} {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    impl PostgresServer {
        pub fn start() -> PostgresServer {
            let bin = server_binaries();
            let dir = tempfile::Builder::new()
                .prefix("berth-pg")
                .tempdir()
                .expect("temp dir");
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let status = Command::new("chown")
                .arg("postgres:")
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(status.success(), "chown the server's directory to postgres");
            let data = dir.path().join("data");
            as_postgres(
                &bin,
                "initdb",
                &[
                    "-D",
                    data.to_str().unwrap(),
                    "-U",
                    "berth",
                    "-A",
                    "trust",
                    "--no-sync",
                    "-E",
                    "UTF8",
                ],
            );
            let server = PostgresServer { dir, bin, port };
            server.start_again();
            server
        }

        fn data(&self) -> String {
            self.dir.path().join("data").display().to_string()
        }

        /// Starts the (stopped) server again, on the same port and data.
        pub fn start_again(&self) {
            let options = format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
                self.port,
                self.dir.path().display()
            );
            let log = self.dir.path().join("server.log");
            as_postgres(
                &self.bin,
                "pg_ctl",
                &[
                    "-D",
                    &self.data(),
                    "-o",
                    &options,
                    "-l",
                    log.to_str().unwrap(),
                    "-w",
                    "start",
                ],
            );
        }

        /// Stops the server at once, as a crash or an outage would.
        pub fn stop(&self) {
            as_postgres(
                &self.bin,
                "pg_ctl",
                &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
            );
        }

        /// The URL of a database on this server (the `postgres` database always exists).
        pub fn url(&self) -> String {
            format!("postgres://berth@127.0.0.1:{}/postgres", self.port)
        }
    }

    impl Drop for PostgresServer {
        fn drop(&mut self) {
            let _ = Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(self.bin.join("pg_ctl"))
                .args(["-D", &self.data(), "-m", "immediate", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::PostgresServer;
    use super::*;
    use crate::{MetadataStore, behaviour};

    #[tokio::test]
    async fn passes_the_behaviour_suite() {
        let server = PostgresServer::start();
        let url = server.url();
        let store = PostgresStore::connect(&url, &PoolSettings::default())
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
    async fn instances_starting_together_migrate_once() {
        let server = PostgresServer::start();
        let url = server.url();
        let settings = PoolSettings::default();
        let (a, b, c) = tokio::join!(
            PostgresStore::connect(&url, &settings),
            PostgresStore::connect(&url, &settings),
            PostgresStore::connect(&url, &settings),
        );
        for store in [a.unwrap(), b.unwrap(), c.unwrap()] {
            store.check().await.unwrap();
        }
    }

    #[tokio::test]
    async fn upload_locks_exclude_across_instances() {
        let server = PostgresServer::start();
        let url = server.url();
        let settings = PoolSettings::default();
        let one = PostgresStore::connect(&url, &settings).await.unwrap();
        let two = PostgresStore::connect(&url, &settings).await.unwrap();
        let id = UploadId::random();
        let held = one.lock_upload(id).await.unwrap();
        let waiting = tokio::time::timeout(Duration::from_millis(200), two.lock_upload(id)).await;
        assert!(waiting.is_err(), "another instance must wait for the lock");
        drop(held);
        let taken = tokio::time::timeout(Duration::from_secs(5), two.lock_upload(id)).await;
        assert!(taken.is_ok(), "released when dropped");
        // Other uploads are independent.
        let _other =
            tokio::time::timeout(Duration::from_secs(1), one.lock_upload(UploadId::random()))
                .await
                .expect("independent lock");
    }

    /// The collector sees another session at work when it is in a transaction that wrote
    /// or waits for a lock (a push waiting for a repository a mark holds), and none once
    /// they are done; holding a lock alone is not writing.
    #[tokio::test]
    async fn the_collector_sees_sessions_writing_or_waiting_for_a_lock() {
        use crate::gc::GcStore;

        let server = PostgresServer::start();
        let store = PostgresStore::connect(&server.url(), &PoolSettings::default())
            .await
            .unwrap();
        let present = || async { store.other_writers().await.unwrap().unwrap().present };
        assert!(!present().await, "nobody else at work");

        let mut holding = store.writer.begin().await.unwrap();
        sqlx::query("SELECT pg_advisory_xact_lock(7, 7)")
            .execute(&mut *holding)
            .await
            .unwrap();
        assert!(
            !present().await,
            "a lock held by a transaction that wrote nothing"
        );

        let mut waiting = store.writer.begin().await.unwrap();
        let waiter = tokio::spawn(async move {
            sqlx::query("SELECT pg_advisory_xact_lock(7, 7)")
                .execute(&mut *waiting)
                .await
                .unwrap();
            waiting.commit().await.unwrap();
        });
        let seen = tokio::time::timeout(Duration::from_secs(5), async {
            while !present().await {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        assert!(seen.is_ok(), "a session waiting for a lock is seen");

        sqlx::query("SELECT pg_current_xact_id()")
            .execute(&mut *holding)
            .await
            .unwrap();
        holding.commit().await.unwrap();
        waiter.await.unwrap();
        assert!(!present().await, "both done");

        let mut writing = store.writer.begin().await.unwrap();
        sqlx::query("SELECT pg_current_xact_id()")
            .execute(&mut *writing)
            .await
            .unwrap();
        assert!(present().await, "a transaction that wrote");
        writing.rollback().await.unwrap();
        assert!(!present().await, "rolled back");
    }

    /// A batch is marked with one lock statement for its digests and one for the
    /// repositories holding them: a digest whose lock a push or mount holds, and every blob
    /// of a repository a manifest push holds, are left for a later run; the rest of the
    /// batch is marked.
    #[tokio::test]
    async fn a_batch_mark_skips_only_what_pushes_hold() {
        use crate::gc::{DeletionState, GcStore};
        use crate::sql_digest_locks::{DIGEST_LOCK_CLASS, digest_lock_key};
        use berth_oci::{Algorithm, Digest, RepositoryName};

        let server = PostgresServer::start();
        let store = PostgresStore::connect(&server.url(), &PoolSettings::default())
            .await
            .unwrap();
        let origin = std::sync::Arc::new(crate::Origin::system("test"));
        let (quiet, busy) = (
            RepositoryName::parse("batch/quiet").unwrap(),
            RepositoryName::parse("batch/busy").unwrap(),
        );
        let layer = |name: &str| Digest::of(Algorithm::Sha256, name.as_bytes());
        let free: Vec<Digest> = (0..5).map(|i| layer(&format!("free-{i}"))).collect();
        let (mounting, in_busy, shared) = (layer("mounting"), layer("in-busy"), layer("shared"));
        for digest in free.iter().chain([&mounting, &shared]) {
            store.link_blob(&quiet, digest, 10, &origin).await.unwrap();
        }
        for digest in [&in_busy, &shared] {
            store.link_blob(&busy, digest, 10, &origin).await.unwrap();
        }

        // A mount of `mounting` holds its digest; a manifest push holds `busy`'s row.
        let mut pushes = store.writer.begin().await.unwrap();
        sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
            .bind(DIGEST_LOCK_CLASS)
            .bind(digest_lock_key(&mounting))
            .execute(&mut *pushes)
            .await
            .unwrap();
        sqlx::query("SELECT id FROM repositories WHERE name = $1 FOR UPDATE")
            .bind(busy.as_str())
            .execute(&mut *pushes)
            .await
            .unwrap();

        let mut batch = vec![in_busy.clone(), mounting.clone()];
        batch.extend(free.iter().cloned());
        batch.push(shared.clone());
        let cutoff = crate::gc::Collectable {
            cutoff: crate::now_millis() + 1,
            history_since: 0,
        };
        let marked = tokio::time::timeout(
            Duration::from_secs(10),
            store.mark_unreferenced_blobs(1, &batch, cutoff),
        )
        .await
        .expect("the mark never waits for a push")
        .unwrap();
        assert!(marked.writers_waited, "pushes held some of the batch");
        let marked = marked.blobs;
        assert_eq!(
            marked.iter().map(|m| &m.digest).collect::<Vec<_>>(),
            free.iter().collect::<Vec<_>>(),
            "the free blobs, in the order asked"
        );
        assert!(marked.iter().all(|m| m.repositories == [quiet.clone()]));
        for digest in &free {
            assert_eq!(store.blob_size(&quiet, digest).await.unwrap(), None);
            let deletion = store.blob_deletion(digest).await.unwrap().unwrap();
            assert_eq!(deletion.state, DeletionState::Marked);
        }
        for (repository, digest) in [(&quiet, &mounting), (&busy, &in_busy), (&quiet, &shared)] {
            assert_eq!(store.blob_size(repository, digest).await.unwrap(), Some(10));
            assert_eq!(store.blob_deletion(digest).await.unwrap(), None);
        }

        // Once the pushes are over, a later run takes what they held.
        pushes.rollback().await.unwrap();
        let marked = store
            .mark_unreferenced_blobs(
                2,
                &[mounting.clone(), in_busy.clone(), shared.clone()],
                cutoff,
            )
            .await
            .unwrap();
        assert!(!marked.writers_waited, "nobody else at work");
        let marked = marked.blobs;
        assert_eq!(marked.len(), 3);
        assert_eq!(
            marked[2].repositories,
            [busy.clone(), quiet.clone()],
            "every repository that held it, by name"
        );
    }

    #[tokio::test]
    async fn an_outage_is_unavailable_and_berth_recovers_by_itself() {
        let server = PostgresServer::start();
        let settings = PoolSettings {
            acquire_timeout: Duration::from_secs(2),
            ..PoolSettings::default()
        };
        let store = PostgresStore::connect(&server.url(), &settings)
            .await
            .unwrap();
        let repository = berth_oci::RepositoryName::parse("outage").unwrap();
        let digest = berth_oci::Digest::of(berth_oci::Algorithm::Sha256, b"x");
        store
            .link_blob(
                &repository,
                &digest,
                1,
                &std::sync::Arc::new(crate::Origin::system("test")),
            )
            .await
            .unwrap();

        server.stop();
        let err = store.blob_size(&repository, &digest).await.unwrap_err();
        assert!(matches!(err, crate::MetaError::Unavailable(_)), "{err:?}");
        assert!(matches!(
            store.check().await,
            Err(crate::MetaError::Unavailable(_))
        ));

        server.start_again();
        let mut recovered = false;
        for _ in 0..50 {
            if store
                .blob_size(&repository, &digest)
                .await
                .is_ok_and(|size| size == Some(1))
            {
                recovered = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(recovered, "the pool reconnects once the server is back");
    }

    #[test]
    fn lock_keys_use_the_whole_32_bits() {
        assert!(
            upload_lock_key(UploadId::parse("ffffffff-0000-4000-8000-000000000000").unwrap()) == -1
        );
        assert!(
            upload_lock_key(UploadId::parse("00000001-0000-4000-8000-000000000000").unwrap()) == 1
        );
    }
}
