//! [`SecondFactorStore`] over SQL, once for every engine (see `sql_store`).

use async_trait::async_trait;
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Pool, Row, Type};

use crate::second_factors::{
    ChallengePurpose, RecoveryCode, SecondFactorStore, SignInChallenge, TotpFactor,
};
use crate::sql_store::{Dialect, SqlStore};
use crate::{MetaError, Result};

const USER_ID: &str = "(SELECT id FROM users WHERE name = $1)";

#[async_trait]
impl<DB: Dialect> SecondFactorStore for SqlStore<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    String: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    i64: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    Option<String>: for<'r> Decode<'r, DB>,
    Option<i64>: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB>,
    usize: ColumnIndex<DB::Row>,
{
    async fn totp_factor(&self, user: &str) -> Result<Option<TotpFactor>> {
        let row = sqlx::query(
            "SELECT u.name, f.secret, f.confirmed_at, f.last_step, f.pending_secret, f.pending_at
             FROM totp_factors f JOIN users u ON u.id = f.user_id WHERE u.name = $1",
        )
        .bind(user)
        .fetch_optional(&self.reader)
        .await?;
        row.map(|r| {
            Ok(TotpFactor {
                user: r.try_get(0)?,
                secret: r.try_get(1)?,
                confirmed_at: r.try_get(2)?,
                last_step: r.try_get(3)?,
                pending_secret: r.try_get(4)?,
                pending_at: r.try_get(5)?,
            })
        })
        .transpose()
    }

    async fn set_pending_totp(&self, user: &str, secret: &str, at: i64) -> Result<bool> {
        let result = sqlx::query(
            "INSERT INTO totp_factors (user_id, pending_secret, pending_at)
             SELECT id, $2, $3 FROM users WHERE name = $1
             ON CONFLICT (user_id) DO UPDATE
             SET pending_secret = excluded.pending_secret, pending_at = excluded.pending_at",
        )
        .bind(user)
        .bind(secret)
        .bind(at)
        .execute(&self.writer)
        .await?;
        Ok(DB::rows_affected(&result) > 0)
    }

    async fn confirm_totp(
        &self,
        user: &str,
        secret: &str,
        step: i64,
        recovery_hashes: &[String],
        at: i64,
    ) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        let result = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE totp_factors
             SET secret = pending_secret, confirmed_at = $3, last_step = $4,
                 pending_secret = NULL, pending_at = NULL
             WHERE user_id = {USER_ID} AND pending_secret = $2"
        )))
        .bind(user)
        .bind(secret)
        .bind(at)
        .bind(step)
        .execute(&mut *tx)
        .await?;
        if DB::rows_affected(&result) == 0 {
            return Ok(false);
        }
        replace_codes(&mut tx, user, recovery_hashes, at).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn use_totp_step(&self, user: &str, step: i64) -> Result<bool> {
        let result = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE totp_factors SET last_step = $2
             WHERE user_id = {USER_ID} AND secret IS NOT NULL AND last_step < $2"
        )))
        .bind(user)
        .bind(step)
        .execute(&self.writer)
        .await?;
        Ok(DB::rows_affected(&result) > 0)
    }

    async fn delete_second_factors(&self, user: &str) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        let mut removed = 0;
        for table in ["totp_factors", "recovery_codes", "sign_in_challenges"] {
            let result = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE user_id = {USER_ID}"
            )))
            .bind(user)
            .execute(&mut *tx)
            .await?;
            if table != "sign_in_challenges" {
                removed += DB::rows_affected(&result);
            }
        }
        tx.commit().await?;
        Ok(removed > 0)
    }

    async fn unused_recovery_codes(&self, user: &str) -> Result<Vec<RecoveryCode>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT id, code_hash FROM recovery_codes
             WHERE user_id = {USER_ID} AND used_at IS NULL ORDER BY id"
        )))
        .bind(user)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(RecoveryCode {
                    id: r.try_get(0)?,
                    code_hash: r.try_get(1)?,
                })
            })
            .collect()
    }

    async fn use_recovery_code(&self, id: i64, at: i64) -> Result<bool> {
        let result =
            sqlx::query("UPDATE recovery_codes SET used_at = $2 WHERE id = $1 AND used_at IS NULL")
                .bind(id)
                .bind(at)
                .execute(&self.writer)
                .await?;
        Ok(DB::rows_affected(&result) > 0)
    }

    async fn replace_recovery_codes(&self, user: &str, hashes: &[String], at: i64) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        replace_codes(&mut tx, user, hashes, at).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn create_challenge(&self, challenge: &SignInChallenge) -> Result<()> {
        sqlx::query("DELETE FROM sign_in_challenges WHERE expires_at < $1")
            .bind(challenge.created_at)
            .execute(&self.writer)
            .await?;
        let result = sqlx::query(
            "INSERT INTO sign_in_challenges (id, user_id, purpose, method, client, created_at, expires_at)
             SELECT $1, id, $3, $4, $5, $6, $7 FROM users WHERE name = $2",
        )
        .bind(challenge.id.as_str())
        .bind(challenge.user.as_str())
        .bind(challenge.purpose.as_str())
        .bind(challenge.method.as_str())
        .bind(challenge.client.as_str())
        .bind(challenge.created_at)
        .bind(challenge.expires_at)
        .execute(&self.writer)
        .await?;
        if DB::rows_affected(&result) == 0 {
            return Err(MetaError::Conflict(
                "the sign-in's user does not exist".into(),
            ));
        }
        Ok(())
    }

    async fn challenge(&self, id: &str) -> Result<Option<SignInChallenge>> {
        let row = sqlx::query(
            "SELECT c.id, u.name, c.purpose, c.method, c.client, c.created_at, c.expires_at
             FROM sign_in_challenges c JOIN users u ON u.id = c.user_id WHERE c.id = $1",
        )
        .bind(id)
        .fetch_optional(&self.reader)
        .await?;
        row.map(|r| {
            let purpose: String = r.try_get(2)?;
            Ok(SignInChallenge {
                id: r.try_get(0)?,
                user: r.try_get(1)?,
                purpose: ChallengePurpose::parse(&purpose).ok_or_else(|| {
                    MetaError::Database("corrupt sign-in challenge in database".into())
                })?,
                method: r.try_get(3)?,
                client: r.try_get(4)?,
                created_at: r.try_get(5)?,
                expires_at: r.try_get(6)?,
            })
        })
        .transpose()
    }

    async fn delete_challenge(&self, id: &str) -> Result<bool> {
        let result = sqlx::query("DELETE FROM sign_in_challenges WHERE id = $1")
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(DB::rows_affected(&result) > 0)
    }
}

/// Replaces a user's recovery codes inside a transaction.
async fn replace_codes<DB: Dialect>(
    tx: &mut sqlx::Transaction<'_, DB>,
    user: &str,
    hashes: &[String],
    at: i64,
) -> Result<()>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    i64: for<'q> Encode<'q, DB> + Type<DB>,
{
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DELETE FROM recovery_codes WHERE user_id = {USER_ID}"
    )))
    .bind(user)
    .execute(&mut **tx)
    .await?;
    for hash in hashes {
        sqlx::query(
            "INSERT INTO recovery_codes (user_id, code_hash, created_at)
             SELECT id, $2, $3 FROM users WHERE name = $1",
        )
        .bind(user)
        .bind(hash.as_str())
        .bind(at)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}
