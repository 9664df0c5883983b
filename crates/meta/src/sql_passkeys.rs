//! [`PasskeyStore`] over SQL, once for every engine (see `sql_store`).

use async_trait::async_trait;
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Pool, Row, Type};

use crate::passkeys::{CeremonyPurpose, NewPasskey, PasskeyCeremony, PasskeyStore, StoredPasskey};
use crate::sql_store::{Dialect, SqlStore};
use crate::{MetaError, Result};

const USER_ID: &str = "(SELECT id FROM users WHERE name = $1)";
const PASSKEY_COLUMNS: &str = "p.id, u.name, p.credential_id, p.name, p.credential, p.counter, \
     p.backup_state, p.created_at, p.last_used_at";

fn passkey<R: Row>(r: &R) -> Result<StoredPasskey>
where
    usize: ColumnIndex<R>,
    String: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    i64: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    Option<i64>: for<'r> Decode<'r, R::Database>,
{
    let backed_up: i64 = r.try_get(6)?;
    Ok(StoredPasskey {
        id: r.try_get(0)?,
        user: r.try_get(1)?,
        credential_id: r.try_get(2)?,
        name: r.try_get(3)?,
        credential: r.try_get(4)?,
        counter: r.try_get(5)?,
        backed_up: backed_up != 0,
        created_at: r.try_get(7)?,
        last_used_at: r.try_get(8)?,
    })
}

#[async_trait]
impl<DB: Dialect> PasskeyStore for SqlStore<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    String: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    i64: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    Option<String>: for<'r> Decode<'r, DB>,
    Option<i64>: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB>,
    usize: ColumnIndex<DB::Row>,
{
    async fn passkey_handle(&self, user: &str, new_handle: &str) -> Result<Option<String>> {
        sqlx::query(
            "INSERT INTO passkey_users (user_id, handle)
             SELECT id, $2 FROM users WHERE name = $1
             ON CONFLICT (user_id) DO NOTHING",
        )
        .bind(user)
        .bind(new_handle)
        .execute(&self.writer)
        .await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT handle FROM passkey_users WHERE user_id = {USER_ID}"
        )))
        .bind(user)
        .fetch_optional(&self.writer)
        .await?;
        row.map(|r| Ok(r.try_get(0)?)).transpose()
    }

    async fn user_of_passkey_handle(&self, handle: &str) -> Result<Option<String>> {
        let row = sqlx::query(
            "SELECT u.name FROM passkey_users h JOIN users u ON u.id = h.user_id WHERE h.handle = $1",
        )
        .bind(handle)
        .fetch_optional(&self.reader)
        .await?;
        row.map(|r| Ok(r.try_get(0)?)).transpose()
    }

    async fn add_passkey(&self, user: &str, new: &NewPasskey) -> Result<i64> {
        let row = sqlx::query(
            "INSERT INTO passkeys
                 (user_id, credential_id, name, credential, counter, backup_state, created_at)
             SELECT id, $2, $3, $4, $5, $6, $7 FROM users WHERE name = $1
             RETURNING id",
        )
        .bind(user)
        .bind(new.credential_id.as_str())
        .bind(new.name.as_str())
        .bind(new.credential.as_str())
        .bind(new.counter)
        .bind(i64::from(new.backed_up))
        .bind(new.created_at)
        .fetch_optional(&self.writer)
        .await?;
        match row {
            Some(row) => Ok(row.try_get(0)?),
            None => Err(MetaError::Conflict(
                "the passkey's user does not exist".into(),
            )),
        }
    }

    async fn passkeys(&self, user: &str) -> Result<Vec<StoredPasskey>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PASSKEY_COLUMNS} FROM passkeys p JOIN users u ON u.id = p.user_id
             WHERE u.name = $1 ORDER BY p.id"
        )))
        .bind(user)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(passkey).collect()
    }

    async fn passkey_by_credential_id(&self, credential_id: &str) -> Result<Option<StoredPasskey>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PASSKEY_COLUMNS} FROM passkeys p JOIN users u ON u.id = p.user_id
             WHERE p.credential_id = $1"
        )))
        .bind(credential_id)
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref().map(passkey).transpose()
    }

    async fn use_passkey(
        &self,
        id: i64,
        credential: &str,
        counter: i64,
        backed_up: bool,
        at: i64,
    ) -> Result<bool> {
        let result = sqlx::query(
            "UPDATE passkeys SET credential = $2, counter = $3, backup_state = $4, last_used_at = $5
             WHERE id = $1",
        )
        .bind(id)
        .bind(credential)
        .bind(counter)
        .bind(i64::from(backed_up))
        .bind(at)
        .execute(&self.writer)
        .await?;
        Ok(DB::rows_affected(&result) > 0)
    }

    async fn delete_passkey(&self, user: &str, id: i64) -> Result<bool> {
        let result = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM passkeys WHERE id = $2 AND user_id = {USER_ID}"
        )))
        .bind(user)
        .bind(id)
        .execute(&self.writer)
        .await?;
        Ok(DB::rows_affected(&result) > 0)
    }

    async fn delete_passkeys(&self, user: &str) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        let mut removed = 0;
        for table in ["passkeys", "passkey_challenges"] {
            let result = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE user_id = {USER_ID}"
            )))
            .bind(user)
            .execute(&mut *tx)
            .await?;
            if table == "passkeys" {
                removed += DB::rows_affected(&result);
            }
        }
        tx.commit().await?;
        Ok(removed > 0)
    }

    async fn create_passkey_ceremony(&self, ceremony: &PasskeyCeremony) -> Result<()> {
        sqlx::query("DELETE FROM passkey_challenges WHERE expires_at < $1")
            .bind(ceremony.created_at)
            .execute(&self.writer)
            .await?;
        let result = sqlx::query(
            "INSERT INTO passkey_challenges (id, user_id, purpose, state, created_at, expires_at)
             SELECT $1, (SELECT id FROM users WHERE name = CAST($2 AS TEXT)), $3, $4, $5, $6
             WHERE CAST($2 AS TEXT) IS NULL
                OR EXISTS (SELECT 1 FROM users WHERE name = CAST($2 AS TEXT))",
        )
        .bind(ceremony.id.as_str())
        .bind(ceremony.user.as_deref())
        .bind(ceremony.purpose.as_str())
        .bind(ceremony.state.as_str())
        .bind(ceremony.created_at)
        .bind(ceremony.expires_at)
        .execute(&self.writer)
        .await?;
        if DB::rows_affected(&result) == 0 {
            return Err(MetaError::Conflict(
                "the passkey ceremony's user does not exist".into(),
            ));
        }
        Ok(())
    }

    async fn take_passkey_ceremony(&self, id: &str, now: i64) -> Result<Option<PasskeyCeremony>> {
        let row = sqlx::query(
            "DELETE FROM passkey_challenges WHERE id = $1
             RETURNING user_id, purpose, state, created_at, expires_at",
        )
        .bind(id)
        .fetch_optional(&self.writer)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let expires_at: i64 = row.try_get(4)?;
        if expires_at <= now {
            return Ok(None);
        }
        let user_id: Option<i64> = row.try_get(0)?;
        let user = match user_id {
            Some(user_id) => {
                let name = sqlx::query("SELECT name FROM users WHERE id = $1")
                    .bind(user_id)
                    .fetch_optional(&self.writer)
                    .await?;
                match name {
                    Some(name) => Some(name.try_get(0)?),
                    None => return Ok(None),
                }
            }
            None => None,
        };
        let purpose: String = row.try_get(1)?;
        Ok(Some(PasskeyCeremony {
            id: id.to_string(),
            user,
            purpose: CeremonyPurpose::parse(&purpose).ok_or_else(|| {
                MetaError::Database("corrupt passkey ceremony in database".into())
            })?,
            state: row.try_get(2)?,
            created_at: row.try_get(3)?,
            expires_at,
        }))
    }
}
