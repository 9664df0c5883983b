//! Consistent copies of the database while berth keeps serving, for `berth backup`, and
//! putting one back, for `berth restore`.
//!
//! - SQLite: `VACUUM INTO` a new file, from a read transaction (a snapshot of the last
//!   commit; writers carry on).
//! - PostgreSQL: a `REPEATABLE READ` transaction that exports its snapshot, so that
//!   `pg_dump --snapshot` and berth's own reads (the blob list, or the logical export when
//!   `pg_dump` is not installed) see exactly the same state.

use std::io::{BufRead, Write};
use std::path::Path;
use std::str::FromStr;

use berth_oci::Digest;
use futures_util::TryStreamExt;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, Postgres, Row, Transaction};

use crate::{MetaError, PostgresStore, Result, SqliteStore};

/// A blob as a backup lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BackupBlob {
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cid: Option<String>,
}

fn io_error(e: std::io::Error) -> MetaError {
    MetaError::Database(e.into())
}

fn corrupt(what: &str, value: &str) -> MetaError {
    MetaError::Database(format!("corrupt {what}: {value:?}").into())
}

impl<DB: sqlx::Database> crate::SqlStore<DB> {
    /// Closes the store's connections (a snapshot opened for reading, before it is moved).
    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }
}

impl SqliteStore {
    /// Writes a consistent copy of the database to `path`, which must not exist.
    pub async fn snapshot_into(&self, path: &Path) -> Result<()> {
        let path = path
            .to_str()
            .ok_or_else(|| corrupt("backup path (not UTF-8)", &path.display().to_string()))?;
        sqlx::query("VACUUM INTO $1")
            .bind(path)
            .execute(&self.reader)
            .await?;
        Ok(())
    }
}

/// Every recorded blob, in digest order, read in `SELECT` pages from any executor.
const BLOBS: &str = "SELECT digest, size, cid FROM blobs ORDER BY digest";

fn backup_blob<R: Row>(row: &R) -> Result<BackupBlob>
where
    usize: sqlx::ColumnIndex<R>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<String>: for<'r> sqlx::Decode<'r, R::Database>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let digest: String = row.try_get(0)?;
    Ok(BackupBlob {
        digest: Digest::parse(&digest).map_err(|_| corrupt("digest", &digest))?,
        size: row.try_get::<i64, _>(1)? as u64,
        cid: row.try_get(2)?,
    })
}

impl SqliteStore {
    /// Calls `each` for every recorded blob, in digest order.
    pub async fn for_each_blob(
        &self,
        mut each: impl FnMut(BackupBlob) -> std::io::Result<()>,
    ) -> Result<u64> {
        let mut rows = sqlx::query(BLOBS).fetch(&self.reader);
        let mut count = 0;
        while let Some(row) = rows.try_next().await? {
            each(backup_blob(&row)?).map_err(io_error)?;
            count += 1;
        }
        Ok(count)
    }
}

/// A PostgreSQL snapshot held open: everything read through it, and `pg_dump --snapshot`
/// given its id, sees the same committed state.
pub struct PostgresSnapshot {
    tx: Transaction<'static, Postgres>,
    pub id: String,
}

impl PostgresStore {
    pub async fn snapshot(&self) -> Result<PostgresSnapshot> {
        let mut tx = self.reader.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        let id: String = sqlx::query("SELECT pg_export_snapshot()")
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        Ok(PostgresSnapshot { tx, id })
    }
}

/// Tables in creation order (which is an order in which every foreign key points back),
/// berth's migration record first.
const TABLES: &str =
    "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = current_schema() AND c.relkind = 'r'
     ORDER BY c.relname <> '_sqlx_migrations', c.oid";

impl PostgresSnapshot {
    /// Calls `each` for every recorded blob, in digest order.
    pub async fn for_each_blob(
        &mut self,
        mut each: impl FnMut(BackupBlob) -> std::io::Result<()>,
    ) -> Result<u64> {
        let mut rows = sqlx::query(BLOBS).fetch(&mut *self.tx);
        let mut count = 0;
        while let Some(row) = rows.try_next().await? {
            each(backup_blob(&row)?).map_err(io_error)?;
            count += 1;
        }
        Ok(count)
    }

    /// The highest migration applied.
    pub async fn schema_version(&mut self) -> Result<i64> {
        Ok(
            sqlx::query("SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations")
                .fetch_one(&mut *self.tx)
                .await?
                .try_get(0)?,
        )
    }

    /// Writes every table as JSON lines (`<table>.jsonl`, one row a line) under `dir`;
    /// returns the tables in the order they must be loaded back.
    pub async fn export_tables(&mut self, dir: &Path) -> Result<Vec<String>> {
        let tables: Vec<String> = sqlx::query(TABLES)
            .fetch_all(&mut *self.tx)
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<std::result::Result<_, _>>()?;
        for table in &tables {
            let file =
                std::fs::File::create(dir.join(format!("{table}.jsonl"))).map_err(io_error)?;
            let mut out = std::io::BufWriter::new(file);
            let query = format!("SELECT row_to_json(t)::text FROM \"{table}\" t");
            let mut rows = sqlx::query(sqlx::AssertSqlSafe(query)).fetch(&mut *self.tx);
            while let Some(row) = rows.try_next().await? {
                let line: String = row.try_get(0)?;
                writeln!(out, "{line}").map_err(io_error)?;
            }
            out.into_inner()
                .map_err(|e| io_error(e.into_error()))?
                .sync_all()
                .map_err(io_error)?;
        }
        Ok(tables)
    }

    /// Ends the snapshot.
    pub async fn finish(self) -> Result<()> {
        Ok(self.tx.commit().await?)
    }
}

/// Whether the database at `url` has no tables yet (a restore needs an empty database).
pub async fn postgres_is_empty(url: &str) -> Result<bool> {
    let mut connection =
        sqlx::PgConnection::connect_with(&PgConnectOptions::from_str(url)?).await?;
    let count: i64 = sqlx::query(
        "SELECT COUNT(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = current_schema() AND c.relkind = 'r'",
    )
    .fetch_one(&mut connection)
    .await?
    .try_get(0)?;
    Ok(count == 0)
}

/// Rows loaded per statement.
const LOAD_BATCH: usize = 500;

/// Loads a logical export into the empty database at `url`: berth's migrations up to the
/// export's version create the tables, then each table's rows go in, in `tables`' order,
/// identity sequences are moved past them, and the remaining migrations run as on any start.
pub async fn postgres_import(url: &str, dir: &Path, tables: &[String], version: i64) -> Result<()> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(PgConnectOptions::from_str(url)?)
        .await?;
    let up_to = sqlx::migrate::Migrator {
        migrations: std::borrow::Cow::Owned(
            crate::postgres::MIGRATIONS
                .migrations
                .iter()
                .filter(|m| m.version <= version)
                .cloned()
                .collect(),
        ),
        ..sqlx::migrate::Migrator::DEFAULT
    };
    up_to.run(&pool).await?;
    let mut tx = pool.begin().await?;
    let tables: Vec<&String> = tables
        .iter()
        .filter(|t| t.as_str() != "_sqlx_migrations")
        .collect();
    // Rows the migrations seeded (counters such as `identity_changes`) give way to the
    // exported ones; children first, so that no foreign key is left dangling.
    for table in tables.iter().rev() {
        sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM \"{table}\"")))
            .execute(&mut *tx)
            .await?;
    }
    for table in tables {
        let file = std::fs::File::open(dir.join(format!("{table}.jsonl"))).map_err(io_error)?;
        let insert = format!(
            "INSERT INTO \"{table}\" OVERRIDING SYSTEM VALUE
             SELECT * FROM json_populate_recordset(NULL::\"{table}\", $1::json)"
        );
        let mut batch: Vec<String> = Vec::with_capacity(LOAD_BATCH);
        let mut lines = std::io::BufReader::new(file).lines();
        loop {
            let line = lines.next().transpose().map_err(io_error)?;
            if let Some(line) = &line {
                batch.push(line.clone());
            }
            if batch.len() == LOAD_BATCH || (line.is_none() && !batch.is_empty()) {
                let rows = format!("[{}]", batch.join(","));
                sqlx::query(sqlx::AssertSqlSafe(insert.clone()))
                    .bind(rows)
                    .execute(&mut *tx)
                    .await?;
                batch.clear();
            }
            if line.is_none() {
                break;
            }
        }
        let identities: Vec<String> = sqlx::query(
            "SELECT column_name::text FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = $1 AND is_identity = 'YES'",
        )
        .bind(table)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<std::result::Result<_, _>>()?;
        for column in identities {
            let reset = format!(
                "SELECT setval(pg_get_serial_sequence('\"{table}\"', '{column}'),
                               COALESCE(MAX(\"{column}\"), 0) + 1, false) FROM \"{table}\""
            );
            sqlx::query(sqlx::AssertSqlSafe(reset))
                .execute(&mut *tx)
                .await?;
        }
    }
    tx.commit().await?;
    pool.close().await;
    // The migrations after the export's version, as any start would apply them.
    PostgresStore::connect(url, &crate::postgres::PoolSettings::default()).await?;
    Ok(())
}
