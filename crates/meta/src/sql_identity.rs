//! [`IdentityStore`] over SQL, once for every engine (see `sql_store`).

use async_trait::async_trait;
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Pool, Row, Type};

use crate::identity::{
    AccessToken, AuditEvent, IdentityStore, PolicyRule, ServiceAccount, Session, Team, TokenKind,
    TokenOwner, TokenScope, User,
};
use crate::sql_store::{Dialect, SqlStore};
use crate::{MetaError, Result, now_millis};

const USER_COLUMNS: &str = "name, email, password_hash, admin, disabled, created_at";
const TOKEN_COLUMNS: &str =
    "t.id, t.kind, u.name, s.name, t.name, t.secret_hash, t.scopes, t.expires_at, t.created_at,
     t.last_used_at, t.revoked_at";
const TOKEN_FROM: &str = "access_tokens t
     LEFT JOIN users u ON u.id = t.user_id
     LEFT JOIN service_accounts s ON s.id = t.service_account_id";

const SESSION_COLUMNS: &str = "s.id, u.name, s.secret_hash, s.csrf_hash, s.client, s.created_at,
     s.expires_at, s.last_seen_at, s.user_agent, s.second_factor";

fn corrupt(what: &str) -> MetaError {
    MetaError::Database(format!("corrupt {what} in database").into())
}

#[async_trait]
impl<DB: Dialect> IdentityStore for SqlStore<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    String: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    i64: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    bool: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    Option<String>: for<'r> Decode<'r, DB>,
    Option<i64>: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB>,
    usize: ColumnIndex<DB::Row>,
{
    async fn create_user(
        &self,
        name: &str,
        password_hash: Option<&str>,
        email: Option<&str>,
        admin: bool,
    ) -> Result<()> {
        let now = now_millis();
        sqlx::query(
            "INSERT INTO users (name, email, password_hash, admin, disabled, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(name)
        .bind(email)
        .bind(password_hash)
        .bind(admin)
        .bind(false)
        .bind(now)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn user(&self, name: &str) -> Result<Option<User>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE name = $1"
        )))
        .bind(name)
        .fetch_optional(&self.reader)
        .await?;
        row.map(|r| read_user(&r)).transpose()
    }

    async fn list_users(&self) -> Result<Vec<User>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users ORDER BY name"
        )))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(read_user).collect()
    }

    async fn count_users(&self) -> Result<u64> {
        let row = sqlx::query("SELECT COUNT(*) FROM users")
            .fetch_one(&self.reader)
            .await?;
        Ok(row.try_get::<i64, _>(0)? as u64)
    }

    async fn set_password(&self, name: &str, password_hash: &str) -> Result<bool> {
        let result =
            sqlx::query("UPDATE users SET password_hash = $2, updated_at = $3 WHERE name = $1")
                .bind(name)
                .bind(password_hash)
                .bind(now_millis())
                .execute(&self.writer)
                .await?;
        Ok(DB::rows_affected(&result) > 0)
    }

    async fn set_user_disabled(&self, name: &str, disabled: bool) -> Result<bool> {
        let result = sqlx::query("UPDATE users SET disabled = $2, updated_at = $3 WHERE name = $1")
            .bind(name)
            .bind(disabled)
            .bind(now_millis())
            .execute(&self.writer)
            .await?;
        Ok(DB::rows_affected(&result) > 0)
    }

    async fn set_user_admin(&self, name: &str, admin: bool) -> Result<bool> {
        let result = sqlx::query("UPDATE users SET admin = $2, updated_at = $3 WHERE name = $1")
            .bind(name)
            .bind(admin)
            .bind(now_millis())
            .execute(&self.writer)
            .await?;
        Ok(DB::rows_affected(&result) > 0)
    }

    async fn delete_user(&self, name: &str) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        // The rules naming it go with it: a new one of the same name starts with nothing.
        sqlx::query("DELETE FROM policy_rules WHERE subject = $1")
            .bind(format!("user:{name}"))
            .execute(&mut *tx)
            .await?;
        let result = sqlx::query("DELETE FROM users WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(DB::rows_affected(&result) > 0)
    }

    async fn user_teams(&self, name: &str) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT t.name FROM users u
             JOIN team_members m ON m.user_id = u.id
             JOIN teams t ON t.id = m.team_id
             WHERE u.name = $1 ORDER BY t.name",
        )
        .bind(name)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?)
    }

    async fn create_team(&self, name: &str) -> Result<()> {
        sqlx::query("INSERT INTO teams (name, created_at) VALUES ($1, $2)")
            .bind(name)
            .bind(now_millis())
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn list_teams(&self) -> Result<Vec<Team>> {
        let rows = sqlx::query(
            "SELECT t.name, u.name FROM teams t
             LEFT JOIN team_members m ON m.team_id = t.id
             LEFT JOIN users u ON u.id = m.user_id
             ORDER BY t.name, u.name",
        )
        .fetch_all(&self.reader)
        .await?;
        let mut teams: Vec<Team> = Vec::new();
        for row in rows {
            let team: String = row.try_get(0)?;
            let member: Option<String> = row.try_get(1)?;
            if teams.last().is_none_or(|t| t.name != team) {
                teams.push(Team {
                    name: team,
                    members: Vec::new(),
                });
            }
            if let (Some(member), Some(last)) = (member, teams.last_mut()) {
                last.members.push(member);
            }
        }
        Ok(teams)
    }

    async fn delete_team(&self, name: &str) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        // The rules naming it go with it: a new one of the same name starts with nothing.
        sqlx::query("DELETE FROM policy_rules WHERE subject = $1")
            .bind(format!("team:{name}"))
            .execute(&mut *tx)
            .await?;
        let result = sqlx::query("DELETE FROM teams WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(DB::rows_affected(&result) > 0)
    }

    async fn add_team_member(&self, team: &str, user: &str) -> Result<bool> {
        let result = sqlx::query(
            // An administrator's membership is theirs, even where a source gave it first.
            "INSERT INTO team_members (team_id, user_id)
             SELECT t.id, u.id FROM teams t, users u WHERE t.name = $1 AND u.name = $2
             ON CONFLICT (team_id, user_id) DO UPDATE SET synced_from = NULL",
        )
        .bind(team)
        .bind(user)
        .execute(&self.writer)
        .await?;
        if DB::rows_affected(&result) > 0 {
            return Ok(true);
        }
        // Nothing inserted: already a member, or no such team or user.
        let existing = sqlx::query(
            "SELECT 1 FROM team_members m JOIN teams t ON t.id = m.team_id JOIN users u ON u.id = m.user_id
             WHERE t.name = $1 AND u.name = $2",
        )
        .bind(team)
        .bind(user)
        .fetch_optional(&self.writer)
        .await?;
        Ok(existing.is_some())
    }

    async fn remove_team_member(&self, team: &str, user: &str) -> Result<bool> {
        let result = sqlx::query(
            "DELETE FROM team_members
             WHERE team_id = (SELECT id FROM teams WHERE name = $1) AND user_id = (SELECT id FROM users WHERE name = $2)",
        )
        .bind(team)
        .bind(user)
        .execute(&self.writer)
        .await?;
        Ok(DB::rows_affected(&result) > 0)
    }

    async fn create_service_account(&self, name: &str, description: &str) -> Result<()> {
        sqlx::query("INSERT INTO service_accounts (name, description, disabled, created_at) VALUES ($1, $2, $3, $4)")
            .bind(name)
            .bind(description)
            .bind(false)
            .bind(now_millis())
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn service_account(&self, name: &str) -> Result<Option<ServiceAccount>> {
        let row = sqlx::query(
            "SELECT name, description, disabled, created_at FROM service_accounts WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.reader)
        .await?;
        row.map(|r| read_service_account(&r)).transpose()
    }

    async fn list_service_accounts(&self) -> Result<Vec<ServiceAccount>> {
        let rows = sqlx::query(
            "SELECT name, description, disabled, created_at FROM service_accounts ORDER BY name",
        )
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(read_service_account).collect()
    }

    async fn set_service_account_disabled(&self, name: &str, disabled: bool) -> Result<bool> {
        let result = sqlx::query("UPDATE service_accounts SET disabled = $2 WHERE name = $1")
            .bind(name)
            .bind(disabled)
            .execute(&self.writer)
            .await?;
        Ok(DB::rows_affected(&result) > 0)
    }

    async fn delete_service_account(&self, name: &str) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        // The rules naming it go with it: a new one of the same name starts with nothing.
        sqlx::query("DELETE FROM policy_rules WHERE subject = $1")
            .bind(format!("service-account:{name}"))
            .execute(&mut *tx)
            .await?;
        let result = sqlx::query("DELETE FROM service_accounts WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(DB::rows_affected(&result) > 0)
    }

    async fn create_token(&self, token: &AccessToken) -> Result<()> {
        let (user, service_account) = match &token.owner {
            TokenOwner::User(name) => (Some(name.as_str()), None),
            TokenOwner::ServiceAccount(name) => (None, Some(name.as_str())),
        };
        let scopes = serde_json::to_string(&token.scopes).expect("scopes serialize");
        let result = sqlx::query(
            "INSERT INTO access_tokens
                 (id, kind, user_id, service_account_id, name, secret_hash, scopes, expires_at, created_at)
             SELECT $1, $2,
                    (SELECT id FROM users WHERE name = CAST($3 AS TEXT)),
                    (SELECT id FROM service_accounts WHERE name = CAST($4 AS TEXT)),
                    $5, $6, $7, $8, $9
             WHERE EXISTS (SELECT 1 FROM users WHERE name = CAST($3 AS TEXT))
                OR EXISTS (SELECT 1 FROM service_accounts WHERE name = CAST($4 AS TEXT))",
        )
        .bind(token.id.as_str())
        .bind(token.kind.as_str())
        .bind(user)
        .bind(service_account)
        .bind(token.name.as_str())
        .bind(token.secret_hash.as_str())
        .bind(scopes)
        .bind(token.expires_at)
        .bind(token.created_at)
        .execute(&self.writer)
        .await?;
        if DB::rows_affected(&result) == 0 {
            return Err(MetaError::Conflict(
                "the token's owner does not exist".into(),
            ));
        }
        Ok(())
    }

    async fn token(&self, id: &str) -> Result<Option<AccessToken>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {TOKEN_COLUMNS} FROM {TOKEN_FROM} WHERE t.id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.reader)
        .await?;
        row.map(|r| read_token(&r)).transpose()
    }

    async fn list_tokens(&self, owner: Option<&TokenOwner>) -> Result<Vec<AccessToken>> {
        let (user, service_account) = match owner {
            Some(TokenOwner::User(name)) => (Some(name.as_str()), None),
            Some(TokenOwner::ServiceAccount(name)) => (None, Some(name.as_str())),
            None => (None, None),
        };
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {TOKEN_COLUMNS} FROM {TOKEN_FROM}
             WHERE (CAST($1 AS TEXT) IS NULL AND CAST($2 AS TEXT) IS NULL) OR u.name = $1 OR s.name = $2
             ORDER BY t.created_at DESC, t.id"
        )))
        .bind(user)
        .bind(service_account)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(read_token).collect()
    }

    async fn revoke_token(&self, id: &str, at: i64) -> Result<bool> {
        let result = sqlx::query(
            "UPDATE access_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(id)
        .bind(at)
        .execute(&self.writer)
        .await?;
        Ok(DB::rows_affected(&result) > 0)
    }

    async fn touch_token(&self, id: &str, at: i64) -> Result<()> {
        sqlx::query("UPDATE access_tokens SET last_used_at = $2 WHERE id = $1")
            .bind(id)
            .bind(at)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn create_session(&self, session: &Session) -> Result<()> {
        let result = sqlx::query(
            "INSERT INTO sessions (id, user_id, secret_hash, csrf_hash, client, created_at,
                 expires_at, last_seen_at, user_agent, second_factor)
             SELECT $1, id, $3, $4, $5, $6, $7, $8, $9, $10 FROM users WHERE name = $2",
        )
        .bind(session.id.as_str())
        .bind(session.user.as_str())
        .bind(session.secret_hash.as_str())
        .bind(session.csrf_hash.as_str())
        .bind(session.client.as_str())
        .bind(session.created_at)
        .bind(session.expires_at)
        .bind(session.last_seen_at)
        .bind(session.user_agent.as_deref())
        .bind(i64::from(session.second_factor))
        .execute(&self.writer)
        .await?;
        if DB::rows_affected(&result) == 0 {
            return Err(MetaError::Conflict(
                "the session's user does not exist".into(),
            ));
        }
        Ok(())
    }

    async fn session(&self, id: &str) -> Result<Option<Session>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SESSION_COLUMNS} FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref().map(read_session).transpose()
    }

    async fn user_sessions(&self, user: &str, now: i64) -> Result<Vec<Session>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SESSION_COLUMNS} FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE u.name = $1 AND s.expires_at > $2 ORDER BY s.created_at DESC, s.id"
        )))
        .bind(user)
        .bind(now)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(read_session).collect()
    }

    async fn touch_session(&self, id: &str, at: i64) -> Result<()> {
        sqlx::query("UPDATE sessions SET last_seen_at = $2 WHERE id = $1")
            .bind(id)
            .bind(at)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn delete_session(&self, id: &str) -> Result<bool> {
        let result = sqlx::query("DELETE FROM sessions WHERE id = $1")
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(DB::rows_affected(&result) > 0)
    }

    async fn delete_user_sessions(&self, user: &str) -> Result<u64> {
        let result = sqlx::query(
            "DELETE FROM sessions WHERE user_id IN (SELECT id FROM users WHERE name = $1)",
        )
        .bind(user)
        .execute(&self.writer)
        .await?;
        Ok(DB::rows_affected(&result))
    }

    async fn prune_sessions(&self, before: i64) -> Result<u64> {
        let result = sqlx::query("DELETE FROM sessions WHERE expires_at < $1")
            .bind(before)
            .execute(&self.writer)
            .await?;
        Ok(DB::rows_affected(&result))
    }

    async fn add_rule(&self, subject: &str, pattern: &str, actions: &str) -> Result<i64> {
        let row = sqlx::query(
            "INSERT INTO policy_rules (subject, pattern, actions, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(subject)
        .bind(pattern)
        .bind(actions)
        .bind(now_millis())
        .fetch_one(&self.writer)
        .await?;
        Ok(row.try_get(0)?)
    }

    async fn list_rules(&self) -> Result<Vec<PolicyRule>> {
        let rows = sqlx::query(
            "SELECT id, subject, pattern, actions, created_at FROM policy_rules ORDER BY id",
        )
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(PolicyRule {
                    id: r.try_get(0)?,
                    subject: r.try_get(1)?,
                    pattern: r.try_get(2)?,
                    actions: r.try_get(3)?,
                    created_at: r.try_get(4)?,
                })
            })
            .collect()
    }

    async fn remove_rule(&self, id: i64) -> Result<bool> {
        let result = sqlx::query("DELETE FROM policy_rules WHERE id = $1")
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(DB::rows_affected(&result) > 0)
    }

    async fn record_audit(&self, events: &[AuditEvent]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let mut tx = self.writer.begin().await?;
        for event in events {
            sqlx::query(
                "INSERT INTO audit_events (at, actor, action, target, client, outcome, detail, count)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(event.at)
            .bind(event.actor.as_str())
            .bind(event.action.as_str())
            .bind(event.target.as_str())
            .bind(event.client.as_str())
            .bind(event.outcome.as_str())
            .bind(event.detail.as_str())
            .bind(event.count)
            .execute(&mut *tx)
            .await?;
        }
        Ok(tx.commit().await?)
    }

    async fn list_audit(&self, limit: u32, before: Option<i64>) -> Result<Vec<(i64, AuditEvent)>> {
        let rows = sqlx::query(
            "SELECT id, at, actor, action, target, client, outcome, detail, count FROM audit_events
             WHERE id < $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get(0)?,
                    AuditEvent {
                        at: r.try_get(1)?,
                        actor: r.try_get(2)?,
                        action: r.try_get(3)?,
                        target: r.try_get(4)?,
                        client: r.try_get(5)?,
                        outcome: r.try_get(6)?,
                        detail: r.try_get(7)?,
                        count: r.try_get(8)?,
                    },
                ))
            })
            .collect()
    }

    async fn prune_audit(&self, before: i64) -> Result<u64> {
        let result = sqlx::query("DELETE FROM audit_events WHERE at < $1")
            .bind(before)
            .execute(&self.writer)
            .await?;
        Ok(DB::rows_affected(&result))
    }

    async fn identity_generation(&self) -> Result<i64> {
        let row = sqlx::query("SELECT generation FROM identity_changes WHERE id = 1")
            .fetch_one(&self.reader)
            .await?;
        Ok(row.try_get(0)?)
    }

    async fn signing_key_or_insert(
        &self,
        key_pem: &str,
        certificate_pem: &str,
    ) -> Result<(String, String)> {
        sqlx::query(
            "INSERT INTO signing_keys (id, key_pem, certificate_pem, created_at) VALUES (1, $1, $2, $3)
             ON CONFLICT DO NOTHING",
        )
        .bind(key_pem)
        .bind(certificate_pem)
        .bind(now_millis())
        .execute(&self.writer)
        .await?;
        let row = sqlx::query("SELECT key_pem, certificate_pem FROM signing_keys WHERE id = 1")
            .fetch_one(&self.writer)
            .await?;
        Ok((row.try_get(0)?, row.try_get(1)?))
    }
}

fn read_user<R: Row>(row: &R) -> Result<User>
where
    usize: ColumnIndex<R>,
    String: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    Option<String>: for<'r> Decode<'r, R::Database>,
    bool: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    i64: for<'r> Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(User {
        name: row.try_get(0)?,
        email: row.try_get(1)?,
        password_hash: row.try_get(2)?,
        admin: row.try_get(3)?,
        disabled: row.try_get(4)?,
        created_at: row.try_get(5)?,
    })
}

fn read_session<R: Row>(row: &R) -> Result<Session>
where
    usize: ColumnIndex<R>,
    String: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    Option<String>: for<'r> Decode<'r, R::Database>,
    i64: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    Option<i64>: for<'r> Decode<'r, R::Database>,
{
    Ok(Session {
        id: row.try_get(0)?,
        user: row.try_get(1)?,
        secret_hash: row.try_get(2)?,
        csrf_hash: row.try_get(3)?,
        client: row.try_get(4)?,
        created_at: row.try_get(5)?,
        expires_at: row.try_get(6)?,
        last_seen_at: row.try_get(7)?,
        user_agent: row.try_get(8)?,
        second_factor: row.try_get::<i64, _>(9)? != 0,
    })
}

fn read_service_account<R: Row>(row: &R) -> Result<ServiceAccount>
where
    usize: ColumnIndex<R>,
    String: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    bool: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    i64: for<'r> Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(ServiceAccount {
        name: row.try_get(0)?,
        description: row.try_get(1)?,
        disabled: row.try_get(2)?,
        created_at: row.try_get(3)?,
    })
}

fn read_token<R: Row>(row: &R) -> Result<AccessToken>
where
    usize: ColumnIndex<R>,
    String: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    Option<String>: for<'r> Decode<'r, R::Database>,
    i64: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    Option<i64>: for<'r> Decode<'r, R::Database>,
{
    let kind: String = row.try_get(1)?;
    let user: Option<String> = row.try_get(2)?;
    let service_account: Option<String> = row.try_get(3)?;
    let owner = match (user, service_account) {
        (Some(user), None) => TokenOwner::User(user),
        (None, Some(account)) => TokenOwner::ServiceAccount(account),
        _ => return Err(corrupt("token owner")),
    };
    let scopes: String = row.try_get(6)?;
    Ok(AccessToken {
        id: row.try_get(0)?,
        kind: match kind.as_str() {
            "access" => TokenKind::Access,
            "refresh" => TokenKind::Refresh,
            _ => return Err(corrupt("token kind")),
        },
        owner,
        name: row.try_get(4)?,
        secret_hash: row.try_get(5)?,
        scopes: serde_json::from_str::<Vec<TokenScope>>(&scopes)
            .map_err(|_| corrupt("token scopes"))?,
        expires_at: row.try_get(7)?,
        created_at: row.try_get(8)?,
        last_used_at: row.try_get(9)?,
        revoked_at: row.try_get(10)?,
    })
}
