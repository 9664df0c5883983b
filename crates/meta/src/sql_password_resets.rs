//! [`PasswordResetStore`] over SQL, once for every engine (see `sql_store`).

use async_trait::async_trait;
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Pool, Row, Type};

use crate::password_resets::{PasswordReset, PasswordResetStore};
use crate::sql_store::{Dialect, SqlStore};
use crate::{MetaError, Result};

#[async_trait]
impl<DB: Dialect> PasswordResetStore for SqlStore<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    String: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    i64: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    Option<i64>: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB>,
    usize: ColumnIndex<DB::Row>,
{
    async fn create_password_reset(
        &self,
        id: &str,
        user: &str,
        created_at: i64,
        expires_at: i64,
    ) -> Result<()> {
        sqlx::query("DELETE FROM password_resets WHERE expires_at < $1")
            .bind(created_at)
            .execute(&self.writer)
            .await?;
        let result = sqlx::query(
            "INSERT INTO password_resets (id, user_id, created_at, expires_at)
             SELECT $1, id, $3, $4 FROM users WHERE name = $2",
        )
        .bind(id)
        .bind(user)
        .bind(created_at)
        .bind(expires_at)
        .execute(&self.writer)
        .await?;
        if DB::rows_affected(&result) == 0 {
            return Err(MetaError::Conflict(
                "the reset's user does not exist".into(),
            ));
        }
        Ok(())
    }

    async fn password_reset(&self, id: &str) -> Result<Option<PasswordReset>> {
        let row = sqlx::query(
            "SELECT u.name, r.expires_at, r.used_at
             FROM password_resets r JOIN users u ON u.id = r.user_id WHERE r.id = $1",
        )
        .bind(id)
        .fetch_optional(&self.reader)
        .await?;
        row.map(|r| {
            Ok(PasswordReset {
                user: r.try_get(0)?,
                expires_at: r.try_get(1)?,
                used_at: r.try_get(2)?,
            })
        })
        .transpose()
    }

    async fn use_password_reset(&self, id: &str, now: i64) -> Result<Option<String>> {
        let mut tx = self.writer.begin().await?;
        let result = sqlx::query(
            "UPDATE password_resets SET used_at = $2
             WHERE id = $1 AND used_at IS NULL AND expires_at > $2",
        )
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if DB::rows_affected(&result) == 0 {
            return Ok(None);
        }
        let user: String = sqlx::query(
            "SELECT u.name FROM password_resets r JOIN users u ON u.id = r.user_id WHERE r.id = $1",
        )
        .bind(id)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        // The user's other links stop working: one reset per request for it.
        sqlx::query(
            "UPDATE password_resets SET used_at = $2
             WHERE used_at IS NULL AND user_id = (SELECT user_id FROM password_resets WHERE id = $1)",
        )
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(user))
    }
}
