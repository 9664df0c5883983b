//! [`QuotaStore`] over SQL, once for every engine, and the accounting that the link and
//! unlink writes of `sql_store`, `sql_gc` and `sql_inventory` make inside their transactions
//! (see [`crate::quotas`] for the invariant they keep).

use async_trait::async_trait;
use berth_oci::{Digest, Pattern, RepositoryName};
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Pool, Row, Transaction, Type};

use crate::quotas::{Quota, QuotaStore, Recount};
use crate::sql_store::{Dialect, SqlStore};
use crate::{MetaError, Result, now_millis};

const QUOTA_COLUMNS: &str = "id, repositories, limit_bytes, used_bytes, created_at, created_by";

fn quota_from<R: Row>(row: &R) -> Result<Quota>
where
    usize: ColumnIndex<R>,
    String: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    i64: for<'r> Decode<'r, R::Database> + Type<R::Database>,
{
    let repositories: String = row.try_get(1)?;
    Ok(Quota {
        id: row.try_get(0)?,
        repositories: Pattern::parse(&repositories).map_err(|_| {
            MetaError::Database(
                format!("corrupt quota pattern in database: {repositories:?}").into(),
            )
        })?,
        limit_bytes: bytes(row.try_get(2)?),
        used_bytes: bytes(row.try_get(3)?),
        created_at: row.try_get(4)?,
        created_by: row.try_get(5)?,
    })
}

/// Takes `$2` bytes off quota `$1`'s usage.
const UNCOUNT_BYTES: &str = "UPDATE quotas SET used_bytes = used_bytes - $2 WHERE id = $1";

/// Sizes are stored as signed integers; a negative one would be a bug, not a size.
fn bytes(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

impl<DB: Dialect> SqlStore<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    String: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    i64: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    /// The quotas covering `repository`, in id order (the order every writer takes their
    /// rows in).
    async fn covering_quotas(
        tx: &mut Transaction<'static, DB>,
        repository: &str,
    ) -> Result<Vec<Quota>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {QUOTA_COLUMNS} FROM quotas ORDER BY id"
        )))
        .fetch_all(&mut **tx)
        .await?;
        let mut quotas = Vec::new();
        for row in &rows {
            let quota = quota_from(row)?;
            if quota.covers(repository) {
                quotas.push(quota);
            }
        }
        Ok(quotas)
    }

    fn exceeded(quota: &Quota, needed: u64) -> MetaError {
        MetaError::QuotaExceeded {
            quota: quota.repositories.to_string(),
            used: quota.used_bytes,
            limit: quota.limit_bytes,
            needed,
        }
    }

    /// After `repository` linked `digest` (in this transaction): counts the blob in every
    /// quota covering the repository that does not count it yet, refusing the whole write if
    /// that would take a quota over its limit. Called after the link is written: on
    /// PostgreSQL the link waits for a quota being set, and this then reads that quota.
    pub(crate) async fn charge_quotas(
        tx: &mut Transaction<'static, DB>,
        repository: &RepositoryName,
        digest: &Digest,
        size: u64,
    ) -> Result<()> {
        for quota in Self::covering_quotas(tx, repository.as_str()).await? {
            let added = sqlx::query(
                "INSERT INTO quota_blobs (quota_id, digest, size) VALUES ($1, $2, $3)
                 ON CONFLICT (quota_id, digest) DO NOTHING",
            )
            .bind(quota.id)
            .bind(digest.as_str())
            .bind(size as i64)
            .execute(&mut **tx)
            .await?;
            if DB::rows_affected(&added) == 0 {
                continue;
            }
            // The row lock makes concurrent pushes take turns here; each sees the others'
            // committed usage, so none can take the quota past its limit.
            let charged = sqlx::query(
                "UPDATE quotas SET used_bytes = used_bytes + $2
                 WHERE id = $1 AND used_bytes + $2 <= limit_bytes",
            )
            .bind(quota.id)
            .bind(size as i64)
            .execute(&mut **tx)
            .await?;
            if DB::rows_affected(&charged) == 0 {
                let now = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {QUOTA_COLUMNS} FROM quotas WHERE id = $1"
                )))
                .bind(quota.id)
                .fetch_one(&mut **tx)
                .await?;
                return Err(Self::exceeded(&quota_from(&now)?, size));
            }
        }
        Ok(())
    }

    /// Refuses a manifest push into a repository whose quota is already over its limit (the
    /// limit was lowered below what its repositories hold).
    pub(crate) async fn refuse_over_quota(
        tx: &mut Transaction<'static, DB>,
        repository: &RepositoryName,
    ) -> Result<()> {
        for quota in Self::covering_quotas(tx, repository.as_str()).await? {
            if quota.used_bytes > quota.limit_bytes {
                return Err(Self::exceeded(&quota, 0));
            }
        }
        Ok(())
    }

    /// After `repository` unlinked `digest` (in this transaction, holding the digest's
    /// lock): stops counting the blob in each quota covering the repository that covers no
    /// other repository still holding it.
    pub(crate) async fn release_link(
        tx: &mut Transaction<'static, DB>,
        repository: &RepositoryName,
        digest: &Digest,
    ) -> Result<()> {
        let quotas = Self::covering_quotas(tx, repository.as_str()).await?;
        if quotas.is_empty() {
            return Ok(());
        }
        let holders: Vec<String> = sqlx::query(
            "SELECT r.name FROM repository_blobs rb JOIN repositories r ON r.id = rb.repository_id
             WHERE rb.digest = $1",
        )
        .bind(digest.as_str())
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
        for quota in quotas {
            if holders.iter().any(|name| quota.covers(name)) {
                continue;
            }
            Self::uncount(tx, quota.id, digest).await?;
        }
        Ok(())
    }

    /// After every link of each of `digests` was removed (in this transaction): no quota
    /// counts them. One statement for all of them, then one per quota that counted any.
    pub(crate) async fn release_digests(
        tx: &mut Transaction<'static, DB>,
        digests: &[Digest],
    ) -> Result<()> {
        if digests.is_empty() {
            return Ok(());
        }
        let query = format!(
            "DELETE FROM quota_blobs WHERE digest IN ({}) RETURNING quota_id, size",
            DB::json_text_values(1)
        );
        let texts: Vec<&str> = digests.iter().map(Digest::as_str).collect();
        let mut freed: std::collections::BTreeMap<i64, i64> = Default::default();
        for row in sqlx::query(sqlx::AssertSqlSafe(query))
            .bind(serde_json::to_string(&texts).expect("strings serialize"))
            .fetch_all(&mut **tx)
            .await?
        {
            *freed.entry(row.try_get(0)?).or_default() += row.try_get::<i64, _>(1)?;
        }
        // In id order, as every writer takes quota rows.
        for (quota, size) in freed {
            sqlx::query(UNCOUNT_BYTES)
                .bind(quota)
                .bind(size)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    async fn uncount(tx: &mut Transaction<'static, DB>, quota: i64, digest: &Digest) -> Result<()> {
        let removed = sqlx::query(
            "DELETE FROM quota_blobs WHERE quota_id = $1 AND digest = $2 RETURNING size",
        )
        .bind(quota)
        .bind(digest.as_str())
        .fetch_optional(&mut **tx)
        .await?;
        if let Some(row) = removed {
            let size: i64 = row.try_get(0)?;
            sqlx::query(UNCOUNT_BYTES)
                .bind(quota)
                .bind(size)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// Counts from the links what quota `id` covers, replacing what it counted; returns the
    /// new usage. The caller holds the lock that keeps links from changing meanwhile.
    async fn count_quota(
        tx: &mut Transaction<'static, DB>,
        id: i64,
        repositories: &Pattern,
    ) -> Result<u64> {
        let mut covered: Vec<i64> = Vec::new();
        for row in sqlx::query("SELECT id, name FROM repositories")
            .fetch_all(&mut **tx)
            .await?
        {
            let name: String = row.try_get(1)?;
            if repositories.matches(&name) {
                covered.push(row.try_get(0)?);
            }
        }
        sqlx::query("DELETE FROM quota_blobs WHERE quota_id = $1")
            .bind(id)
            .execute(&mut **tx)
            .await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO quota_blobs (quota_id, digest, size)
             SELECT DISTINCT CAST($1 AS BIGINT), b.digest, b.size
             FROM repository_blobs rb JOIN blobs b ON b.digest = rb.digest
             WHERE rb.repository_id IN ({})",
            DB::json_integers(2)
        )))
        .bind(id)
        .bind(serde_json::to_string(&covered).expect("integers serialize"))
        .execute(&mut **tx)
        .await?;
        let used: i64 = sqlx::query(
            "UPDATE quotas SET used_bytes =
                 (SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM quota_blobs WHERE quota_id = $1)
             WHERE id = $1 RETURNING used_bytes",
        )
        .bind(id)
        .fetch_one(&mut **tx)
        .await?
        .try_get(0)?;
        Ok(bytes(used))
    }
}

#[async_trait]
impl<DB: Dialect> QuotaStore for SqlStore<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    String: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    i64: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    async fn quotas(&self) -> Result<Vec<Quota>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {QUOTA_COLUMNS} FROM quotas ORDER BY id"
        )))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(quota_from).collect()
    }

    async fn set_quota(&self, repositories: &Pattern, limit_bytes: u64, by: &str) -> Result<Quota> {
        let limit = i64::try_from(limit_bytes)
            .map_err(|_| MetaError::Conflict(format!("a limit of {limit_bytes} bytes")))?;
        let mut tx = self.writer.begin_with(DB::BEGIN).await?;
        let changed = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE quotas SET limit_bytes = $2 WHERE repositories = $1 RETURNING {QUOTA_COLUMNS}"
        )))
        .bind(repositories.as_str())
        .bind(limit)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = changed {
            let quota = quota_from(&row)?;
            tx.commit().await?;
            return Ok(quota);
        }
        // A new quota counts what its repositories hold now, with links held still until it
        // commits; a link that waited for this sees the quota and counts itself.
        if let Some(lock) = DB::LOCK_BLOB_LINKS {
            sqlx::query(lock).execute(&mut *tx).await?;
        }
        let id: i64 = sqlx::query(
            "INSERT INTO quotas (repositories, limit_bytes, used_bytes, created_at, created_by)
             VALUES ($1, $2, 0, $3, $4) RETURNING id",
        )
        .bind(repositories.as_str())
        .bind(limit)
        .bind(now_millis())
        .bind(by)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        Self::count_quota(&mut tx, id, repositories).await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {QUOTA_COLUMNS} FROM quotas WHERE id = $1"
        )))
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        let quota = quota_from(&row)?;
        tx.commit().await?;
        Ok(quota)
    }

    async fn check_quota(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        size: u64,
    ) -> Result<()> {
        for quota in self.quotas().await? {
            if !quota.covers(repository.as_str())
                || quota.used_bytes.saturating_add(size) <= quota.limit_bytes
            {
                continue;
            }
            let counted =
                sqlx::query("SELECT 1 FROM quota_blobs WHERE quota_id = $1 AND digest = $2")
                    .bind(quota.id)
                    .bind(digest.as_str())
                    .fetch_optional(&self.reader)
                    .await?
                    .is_some();
            if !counted {
                return Err(Self::exceeded(&quota, size));
            }
        }
        Ok(())
    }

    async fn remove_quota(&self, repositories: &Pattern) -> Result<Option<Quota>> {
        let mut tx = self.writer.begin_with(DB::BEGIN).await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {QUOTA_COLUMNS} FROM quotas WHERE repositories = $1"
        )))
        .bind(repositories.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let quota = quota_from(&row)?;
        // Explicitly rather than by cascade, which SQLite applies only with foreign keys on.
        sqlx::query("DELETE FROM quota_blobs WHERE quota_id = $1")
            .bind(quota.id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM quotas WHERE id = $1")
            .bind(quota.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(quota))
    }

    async fn recount_quotas(&self) -> Result<Vec<Recount>> {
        let mut wrong = Vec::new();
        for quota in self.quotas().await? {
            let mut tx = self.writer.begin_with(DB::BEGIN).await?;
            if let Some(lock) = DB::LOCK_BLOB_LINKS {
                sqlx::query(lock).execute(&mut *tx).await?;
            }
            let recorded: Option<i64> = sqlx::query("SELECT used_bytes FROM quotas WHERE id = $1")
                .bind(quota.id)
                .fetch_optional(&mut *tx)
                .await?
                .map(|row| row.try_get(0))
                .transpose()?;
            // Removed meanwhile.
            let Some(recorded) = recorded else { continue };
            let actual = Self::count_quota(&mut tx, quota.id, &quota.repositories).await?;
            tx.commit().await?;
            if actual != bytes(recorded) {
                wrong.push(Recount {
                    repositories: quota.repositories,
                    recorded_bytes: bytes(recorded),
                    actual_bytes: actual,
                });
            }
        }
        Ok(wrong)
    }
}
