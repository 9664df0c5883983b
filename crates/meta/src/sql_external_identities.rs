//! [`ExternalIdentityStore`] over SQL, once for every engine (see `sql_store`).

use async_trait::async_trait;
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Pool, Row, Type};

use crate::external_identities::{ExternalIdentity, ExternalIdentityStore, SsoRequest};
use crate::sql_store::{Dialect, SqlStore};
use crate::{MetaError, Result, now_millis};

#[async_trait]
impl<DB: Dialect> ExternalIdentityStore for SqlStore<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    String: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    i64: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    Option<String>: for<'r> Decode<'r, DB>,
    usize: ColumnIndex<DB::Row>,
{
    async fn external_identity(&self, user: &str) -> Result<Option<ExternalIdentity>> {
        let row = sqlx::query(
            "SELECT e.source, e.subject, e.display_name, e.synced_at
             FROM external_identities e JOIN users u ON u.id = e.user_id WHERE u.name = $1",
        )
        .bind(user)
        .fetch_optional(&self.reader)
        .await?;
        row.map(|r| {
            Ok(ExternalIdentity {
                source: r.try_get(0)?,
                subject: r.try_get(1)?,
                display_name: r.try_get(2)?,
                synced_at: r.try_get(3)?,
            })
        })
        .transpose()
    }

    async fn user_of_external(&self, source: &str, subject: &str) -> Result<Option<String>> {
        let row = sqlx::query(
            "SELECT u.name FROM external_identities e JOIN users u ON u.id = e.user_id
             WHERE e.source = $1 AND e.subject = $2",
        )
        .bind(source)
        .bind(subject)
        .fetch_optional(&self.writer)
        .await?;
        row.map(|r| r.try_get(0).map_err(MetaError::from))
            .transpose()
    }

    async fn link_external_identity(
        &self,
        user: &str,
        identity: &ExternalIdentity,
    ) -> Result<bool> {
        let result = sqlx::query(
            "INSERT INTO external_identities (user_id, source, subject, display_name, synced_at)
             SELECT id, $2, $3, $4, $5 FROM users WHERE name = $1
             ON CONFLICT (user_id) DO UPDATE SET source = excluded.source,
                 subject = excluded.subject, display_name = excluded.display_name,
                 synced_at = excluded.synced_at",
        )
        .bind(user)
        .bind(identity.source.as_str())
        .bind(identity.subject.as_str())
        .bind(identity.display_name.as_deref())
        .bind(identity.synced_at)
        .execute(&self.writer)
        .await?;
        Ok(DB::rows_affected(&result) > 0)
    }

    async fn set_user_email(&self, user: &str, email: Option<&str>) -> Result<bool> {
        let result = sqlx::query("UPDATE users SET email = $2, updated_at = $3 WHERE name = $1")
            .bind(user)
            .bind(email)
            .bind(now_millis())
            .execute(&self.writer)
            .await?;
        Ok(DB::rows_affected(&result) > 0)
    }

    async fn synced_teams(&self, user: &str, source: &str) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT t.name FROM team_members m
             JOIN teams t ON t.id = m.team_id JOIN users u ON u.id = m.user_id
             WHERE u.name = $1 AND m.synced_from = $2 ORDER BY t.name",
        )
        .bind(user)
        .bind(source)
        .fetch_all(&self.writer)
        .await?;
        rows.iter()
            .map(|r| r.try_get(0).map_err(MetaError::from))
            .collect()
    }

    async fn add_synced_member(&self, team: &str, user: &str, source: &str) -> Result<bool> {
        // An existing membership is left as it is (the no-op update counts it, so that a
        // missing team or user is the only way to affect no row).
        let result = sqlx::query(
            "INSERT INTO team_members (team_id, user_id, synced_from)
             SELECT t.id, u.id, $3 FROM teams t, users u WHERE t.name = $1 AND u.name = $2
             ON CONFLICT (team_id, user_id) DO UPDATE SET synced_from = team_members.synced_from",
        )
        .bind(team)
        .bind(user)
        .bind(source)
        .execute(&self.writer)
        .await?;
        Ok(DB::rows_affected(&result) > 0)
    }

    async fn remove_synced_member(&self, team: &str, user: &str, source: &str) -> Result<bool> {
        let result = sqlx::query(
            "DELETE FROM team_members
             WHERE team_id = (SELECT id FROM teams WHERE name = $1)
               AND user_id = (SELECT id FROM users WHERE name = $2)
               AND synced_from = $3",
        )
        .bind(team)
        .bind(user)
        .bind(source)
        .execute(&self.writer)
        .await?;
        Ok(DB::rows_affected(&result) > 0)
    }

    async fn create_sso_request(&self, request: &SsoRequest) -> Result<()> {
        sqlx::query("DELETE FROM sso_requests WHERE expires_at < $1")
            .bind(request.created_at)
            .execute(&self.writer)
            .await?;
        sqlx::query(
            "INSERT INTO sso_requests (id, provider, state, nonce, verifier, next, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(request.id.as_str())
        .bind(request.provider.as_str())
        .bind(request.state.as_str())
        .bind(request.nonce.as_str())
        .bind(request.verifier.as_str())
        .bind(request.next.as_str())
        .bind(request.created_at)
        .bind(request.expires_at)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn take_sso_request(&self, id: &str, now: i64) -> Result<Option<SsoRequest>> {
        let mut tx = self.writer.begin().await?;
        let row = sqlx::query(
            "SELECT provider, state, nonce, verifier, next, created_at, expires_at
             FROM sso_requests WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        // Used once, whatever its fate.
        let deleted = sqlx::query("DELETE FROM sso_requests WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        let request = SsoRequest {
            id: id.to_string(),
            provider: row.try_get(0)?,
            state: row.try_get(1)?,
            nonce: row.try_get(2)?,
            verifier: row.try_get(3)?,
            next: row.try_get(4)?,
            created_at: row.try_get(5)?,
            expires_at: row.try_get(6)?,
        };
        Ok((DB::rows_affected(&deleted) > 0 && request.expires_at > now).then_some(request))
    }
}
