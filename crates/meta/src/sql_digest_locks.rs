//! Digest locks: a push or mount of a blob and the collector's mark of it take turns on the
//! digest (PostgreSQL advisory locks; SQLite has one writer anyway), and a push settles a
//! deletion the collector began before it records the blob.

use berth_oci::Digest;
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Row, Transaction, Type};

use crate::gc::{BlobDeletion, DeletionState};
use crate::sql_store::{Dialect, SqlStore, corrupt};
use crate::{MetaError, Result};

/// The advisory lock class of digest locks ("bgcd"), apart from upload locks and other
/// applications' advisory locks.
pub(crate) const DIGEST_LOCK_CLASS: i32 = 0x6267_6364;

/// 32 bits of the digest; two digests sharing them merely take turns.
pub(crate) fn digest_lock_key(digest: &Digest) -> i32 {
    u32::from_str_radix(&digest.hex()[..8], 16).unwrap_or(0) as i32
}

impl<DB: Dialect> SqlStore<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    String: for<'r> Decode<'r, DB> + Type<DB>,
    i32: for<'q> Encode<'q, DB> + Type<DB>,
    i64: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    bool: for<'r> Decode<'r, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    /// Takes the digest's lock for the transaction (see [`Dialect::LOCK_DIGEST`]).
    pub(crate) async fn lock_digest(
        tx: &mut Transaction<'static, DB>,
        digest: &Digest,
    ) -> Result<()> {
        if let Some(lock) = DB::LOCK_DIGEST {
            sqlx::query(lock)
                .bind(DIGEST_LOCK_CLASS)
                .bind(digest_lock_key(digest))
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// Takes the locks of those of `digests` that are free, in one statement, and returns
    /// them; a digest whose lock a push or mount holds is left out (it wins).
    pub(crate) async fn try_lock_digests(
        tx: &mut Transaction<'static, DB>,
        digests: &[Digest],
    ) -> Result<Vec<Digest>> {
        let Some(lock) = DB::TRY_LOCK_DIGESTS else {
            return Ok(digests.to_vec());
        };
        if digests.is_empty() {
            return Ok(Vec::new());
        }
        let mut keys: Vec<i32> = digests.iter().map(digest_lock_key).collect();
        keys.sort_unstable();
        keys.dedup();
        let keys = serde_json::to_string(&keys).expect("integers serialize");
        let busy: Vec<i64> = sqlx::query(lock)
            .bind(DIGEST_LOCK_CLASS)
            .bind(keys.as_str())
            .fetch_all(&mut **tx)
            .await?
            .iter()
            .map(|row| row.try_get(0))
            .collect::<Result<_, _>>()?;
        Ok(digests
            .iter()
            .filter(|d| !busy.contains(&i64::from(digest_lock_key(d))))
            .cloned()
            .collect())
    }

    /// Before recording a blob: makes sure garbage collection has not deleted its bytes since
    /// the push read `seen` (the caller holds the digest's lock). A marked deletion is
    /// cancelled (the bytes are still there, and the push wins); a tombstone the push saw
    /// before committing is cleared (its bytes were committed after the deletion); anything
    /// else means the bytes may be gone.
    pub(crate) async fn settle_deletion(
        tx: &mut Transaction<'static, DB>,
        digest: &Digest,
        seen: Option<BlobDeletion>,
    ) -> Result<()> {
        let row = sqlx::query("SELECT run_id, state FROM blob_deletions WHERE digest = $1")
            .bind(digest.as_str())
            .fetch_optional(&mut **tx)
            .await?;
        let Some(row) = row else {
            return Ok(());
        };
        let state: String = row.try_get(1)?;
        let now = BlobDeletion {
            run: row.try_get(0)?,
            state: DeletionState::parse(&state).ok_or_else(|| corrupt("deletion state", &state))?,
        };
        let clear = match now.state {
            DeletionState::Marked => true,
            DeletionState::Deleted => seen == Some(now),
            DeletionState::Deleting => false,
        };
        if !clear {
            return Err(MetaError::BeingCollected);
        }
        // Conditional, because claiming a marked deletion does not take the digest's lock.
        let cleared = sqlx::query(
            "DELETE FROM blob_deletions WHERE digest = $1 AND run_id = $2 AND state = $3",
        )
        .bind(digest.as_str())
        .bind(now.run)
        .bind(now.state.as_str())
        .execute(&mut **tx)
        .await?;
        if DB::rows_affected(&cleared) == 1 {
            Ok(())
        } else {
            Err(MetaError::BeingCollected)
        }
    }
}
