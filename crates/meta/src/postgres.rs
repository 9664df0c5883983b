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
use crate::{KeyedLocks, Result, UploadLock};

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

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
        Ok(SqlStore {
            writer: pool.clone(),
            reader: pool,
            upload_locks: KeyedLocks::default(),
        })
    }
}

/// Test support: a fresh database per test on the server `BERTH_TEST_POSTGRES_URL` names
/// (the test command starts one), dropped when the guard is.
#[cfg(any(test, feature = "behaviour-tests"))]
pub mod testing {
    use sqlx::Connection;
    use sqlx::postgres::PgConnection;

    pub struct TestDatabase {
        admin_url: String,
        pub name: String,
        pub url: String,
    }

    /// The server's URL, or a clear failure when the test command did not provide one.
    pub fn server_url() -> String {
        std::env::var("BERTH_TEST_POSTGRES_URL")
            .expect("BERTH_TEST_POSTGRES_URL is not set: run the tests with ./scripts/test, which starts PostgreSQL")
    }

    impl TestDatabase {
        pub async fn create() -> TestDatabase {
            let admin_url = server_url();
            let name = format!("berth_test_{}", uuid_like());
            let mut admin = PgConnection::connect(&admin_url)
                .await
                .expect("connect to the test server");
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut admin)
                .await
                .expect("create the test database");
            let (base, _) = admin_url.rsplit_once('/').expect("a URL with a database");
            let url = format!("{base}/{name}");
            TestDatabase {
                admin_url,
                name,
                url,
            }
        }
    }

    impl Drop for TestDatabase {
        fn drop(&mut self) {
            let admin_url = self.admin_url.clone();
            let name = self.name.clone();
            // Dropping needs its own runtime: the test's may be shutting down.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async move {
                    if let Ok(mut admin) = PgConnection::connect(&admin_url).await {
                        let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                        let _ = sqlx::query(sqlx::AssertSqlSafe(drop))
                            .execute(&mut admin)
                            .await;
                    }
                });
            })
            .join();
        }
    }

    fn uuid_like() -> String {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        format!("{:x}_{}", nanos, std::process::id())
    }
}

#[cfg(test)]
mod tests {
    use super::testing::TestDatabase;
    use super::*;
    use crate::{MetadataStore, behaviour};

    #[tokio::test]
    async fn passes_the_behaviour_suite() {
        let database = TestDatabase::create().await;
        let store = PostgresStore::connect(&database.url, &PoolSettings::default())
            .await
            .unwrap();
        behaviour::run_all(&store).await;
    }

    #[tokio::test]
    async fn instances_starting_together_migrate_once() {
        let database = TestDatabase::create().await;
        let settings = PoolSettings::default();
        let (a, b, c) = tokio::join!(
            PostgresStore::connect(&database.url, &settings),
            PostgresStore::connect(&database.url, &settings),
            PostgresStore::connect(&database.url, &settings),
        );
        for store in [a.unwrap(), b.unwrap(), c.unwrap()] {
            store.check().await.unwrap();
        }
    }

    #[tokio::test]
    async fn upload_locks_exclude_across_instances() {
        let database = TestDatabase::create().await;
        let settings = PoolSettings::default();
        let one = PostgresStore::connect(&database.url, &settings)
            .await
            .unwrap();
        let two = PostgresStore::connect(&database.url, &settings)
            .await
            .unwrap();
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
