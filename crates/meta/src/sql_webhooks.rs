//! [`WebhookStore`] and [`Leases`] over SQL, once for every engine (see `sql_store`).

use async_trait::async_trait;
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Pool, Row, Type};

use crate::events::{Event, OutboxEntry};
use crate::sql_outbox::INSERT_OUTBOX;
use crate::sql_store::{Dialect, SqlStore};
use crate::webhooks::{
    DeadLetter, DeliveryAttempt, DeliveryRecord, Leases, QueueDepth, StoredWebhook, WebhookStore,
};
use crate::{MetaError, Result, now_millis};

fn corrupt(what: &str) -> MetaError {
    MetaError::Database(format!("corrupt {what} in database").into())
}

fn parse_event(payload: &str) -> Result<Event> {
    serde_json::from_str(payload).map_err(|_| corrupt("webhook event"))
}

const OUTBOX_HEAD: &str =
    "SELECT id, endpoint, payload, attempts, created_at, next_attempt_at, last_error
     FROM webhook_outbox WHERE endpoint = $1 ORDER BY id LIMIT $2";

fn outbox_entry<R: Row>(row: &R) -> Result<OutboxEntry>
where
    usize: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i32: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<String>: Decode<'r, R::Database>,
{
    let payload: String = row.try_get(2)?;
    let attempts: i32 = row.try_get(3)?;
    Ok(OutboxEntry {
        id: row.try_get(0)?,
        endpoint: row.try_get(1)?,
        event: parse_event(&payload)?,
        attempts: attempts as u32,
        created_at: row.try_get(4)?,
        next_attempt_at: row.try_get(5)?,
        last_error: row.try_get(6)?,
    })
}

const LOG_ATTEMPT: &str = "INSERT INTO webhook_deliveries
     (endpoint, event_id, kind, repository, attempt, status, error, latency_ms, at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

#[async_trait]
impl<DB: Dialect> WebhookStore for SqlStore<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    String: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    i64: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    i32: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    Option<String>: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB>,
    Option<i32>: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB>,
    Option<i64>: for<'r> Decode<'r, DB>,
    usize: ColumnIndex<DB::Row>,
{
    async fn outbox_head(&self, endpoint: &str, limit: u32) -> Result<Vec<OutboxEntry>> {
        let rows = sqlx::query(OUTBOX_HEAD)
            .bind(endpoint)
            .bind(i64::from(limit))
            .fetch_all(&self.writer)
            .await?;
        rows.iter().map(outbox_entry).collect()
    }

    async fn enqueue(&self, deliveries: &[(String, Event)]) -> Result<()> {
        if deliveries.is_empty() {
            return Ok(());
        }
        let now = now_millis();
        let mut tx = self.writer.begin().await?;
        for (endpoint, event) in deliveries {
            let payload = serde_json::to_string(event).expect("events serialize");
            sqlx::query(INSERT_OUTBOX)
                .bind(endpoint.as_str())
                .bind(event.id.as_str())
                .bind(event.kind.as_str())
                .bind(event.repository.as_str())
                .bind(payload)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn delivered(&self, entry: &OutboxEntry, attempt: &DeliveryAttempt) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        sqlx::query("DELETE FROM webhook_outbox WHERE id = $1")
            .bind(entry.id)
            .execute(&mut *tx)
            .await?;
        log_attempt::<DB>(&mut tx, entry, attempt).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn failed(
        &self,
        entry: &OutboxEntry,
        attempt: &DeliveryAttempt,
        next_attempt_at: i64,
    ) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        sqlx::query(
            "UPDATE webhook_outbox SET attempts = attempts + 1, next_attempt_at = $2, last_error = $3
             WHERE id = $1",
        )
        .bind(entry.id)
        .bind(next_attempt_at)
        .bind(attempt.error.as_deref())
        .execute(&mut *tx)
        .await?;
        log_attempt::<DB>(&mut tx, entry, attempt).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn dead(&self, entry: &OutboxEntry, attempt: &DeliveryAttempt) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        let moved = sqlx::query("DELETE FROM webhook_outbox WHERE id = $1 RETURNING payload")
            .bind(entry.id)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(row) = moved {
            let payload: String = row.try_get(0)?;
            sqlx::query(
                "INSERT INTO webhook_dead_letters
                 (endpoint, event_id, kind, repository, payload, created_at, attempts, last_error, died_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(entry.endpoint.as_str())
            .bind(entry.event.id.as_str())
            .bind(entry.event.kind.as_str())
            .bind(entry.event.repository.as_str())
            .bind(payload)
            .bind(entry.created_at)
            .bind((entry.attempts + 1) as i32)
            .bind(attempt.error.as_deref())
            .bind(attempt.at)
            .execute(&mut *tx)
            .await?;
            log_attempt::<DB>(&mut tx, entry, attempt).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn queue_depths(&self) -> Result<Vec<QueueDepth>> {
        let rows = sqlx::query(
            "SELECT endpoint, COUNT(*), MIN(created_at) FROM webhook_outbox GROUP BY endpoint
             ORDER BY endpoint",
        )
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                let pending: i64 = row.try_get(1)?;
                Ok(QueueDepth {
                    endpoint: row.try_get(0)?,
                    pending: pending as u64,
                    oldest_created_at: row.try_get(2)?,
                })
            })
            .collect()
    }

    async fn drop_backlog(&self, endpoint: &str) -> Result<u64> {
        let result = sqlx::query("DELETE FROM webhook_outbox WHERE endpoint = $1")
            .bind(endpoint)
            .execute(&self.writer)
            .await?;
        Ok(DB::rows_affected(&result))
    }

    async fn deliveries(
        &self,
        endpoint: &str,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<DeliveryRecord>> {
        let rows = sqlx::query(
            "SELECT id, endpoint, event_id, kind, repository, attempt, status, error, latency_ms, at
             FROM webhook_deliveries WHERE endpoint = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
        )
        .bind(endpoint)
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                let attempt: i32 = row.try_get(5)?;
                let status: Option<i32> = row.try_get(6)?;
                let latency: i64 = row.try_get(8)?;
                Ok(DeliveryRecord {
                    id: row.try_get(0)?,
                    endpoint: row.try_get(1)?,
                    event_id: row.try_get(2)?,
                    kind: row.try_get(3)?,
                    repository: row.try_get(4)?,
                    attempt: attempt as u32,
                    status: status.map(|s| s as u16),
                    error: row.try_get(7)?,
                    latency_ms: latency as u64,
                    at: row.try_get(9)?,
                })
            })
            .collect()
    }

    async fn prune_deliveries(&self, before: i64) -> Result<u64> {
        let result = sqlx::query("DELETE FROM webhook_deliveries WHERE at < $1")
            .bind(before)
            .execute(&self.writer)
            .await?;
        Ok(DB::rows_affected(&result))
    }

    async fn dead_letters(&self, endpoint: Option<&str>, limit: u32) -> Result<Vec<DeadLetter>> {
        let rows = sqlx::query(
            "SELECT id, endpoint, payload, attempts, last_error, created_at, died_at
             FROM webhook_dead_letters
             WHERE (CAST($1 AS TEXT) IS NULL OR endpoint = CAST($1 AS TEXT))
             ORDER BY id LIMIT $2",
        )
        .bind(endpoint)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                let payload: String = row.try_get(2)?;
                let attempts: i32 = row.try_get(3)?;
                Ok(DeadLetter {
                    id: row.try_get(0)?,
                    endpoint: row.try_get(1)?,
                    event: parse_event(&payload)?,
                    attempts: attempts as u32,
                    last_error: row.try_get(4)?,
                    created_at: row.try_get(5)?,
                    died_at: row.try_get(6)?,
                })
            })
            .collect()
    }

    async fn replay_dead_letters(&self, endpoint: &str, ids: Option<&[i64]>) -> Result<u64> {
        let now = now_millis();
        let mut tx = self.writer.begin().await?;
        let rows = sqlx::query(
            "SELECT id, event_id, kind, repository, payload FROM webhook_dead_letters
             WHERE endpoint = $1 ORDER BY id",
        )
        .bind(endpoint)
        .fetch_all(&mut *tx)
        .await?;
        let mut replayed = 0;
        for row in rows {
            let id: i64 = row.try_get(0)?;
            if ids.is_some_and(|ids| !ids.contains(&id)) {
                continue;
            }
            let (event_id, kind, repository, payload): (String, String, String, String) = (
                row.try_get(1)?,
                row.try_get(2)?,
                row.try_get(3)?,
                row.try_get(4)?,
            );
            sqlx::query(INSERT_OUTBOX)
                .bind(endpoint)
                .bind(event_id)
                .bind(kind)
                .bind(repository)
                .bind(payload)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM webhook_dead_letters WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            replayed += 1;
        }
        tx.commit().await?;
        Ok(replayed)
    }

    async fn webhooks(&self) -> Result<Vec<StoredWebhook>> {
        let rows = sqlx::query(
            "SELECT name, definition, created_at, updated_at FROM webhooks ORDER BY name",
        )
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(StoredWebhook {
                    name: row.try_get(0)?,
                    definition: row.try_get(1)?,
                    created_at: row.try_get(2)?,
                    updated_at: row.try_get(3)?,
                })
            })
            .collect()
    }

    async fn put_webhook(&self, name: &str, definition: &str, create: bool) -> Result<bool> {
        let now = now_millis();
        let result = if create {
            sqlx::query(
                "INSERT INTO webhooks (name, definition, created_at, updated_at) VALUES ($1, $2, $3, $3)",
            )
            .bind(name)
            .bind(definition)
            .bind(now)
            .execute(&self.writer)
            .await?
        } else {
            sqlx::query("UPDATE webhooks SET definition = $2, updated_at = $3 WHERE name = $1")
                .bind(name)
                .bind(definition)
                .bind(now)
                .execute(&self.writer)
                .await?
        };
        Ok(DB::rows_affected(&result) > 0)
    }

    async fn delete_webhook(&self, name: &str) -> Result<bool> {
        let result = sqlx::query("DELETE FROM webhooks WHERE name = $1")
            .bind(name)
            .execute(&self.writer)
            .await?;
        Ok(DB::rows_affected(&result) > 0)
    }
}

async fn log_attempt<DB: Dialect>(
    tx: &mut sqlx::Transaction<'static, DB>,
    entry: &OutboxEntry,
    attempt: &DeliveryAttempt,
) -> Result<()>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    i64: for<'q> Encode<'q, DB> + Type<DB>,
    i32: for<'q> Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    Option<i32>: for<'q> Encode<'q, DB>,
{
    sqlx::query(LOG_ATTEMPT)
        .bind(entry.endpoint.as_str())
        .bind(entry.event.id.as_str())
        .bind(entry.event.kind.as_str())
        .bind(entry.event.repository.as_str())
        .bind((entry.attempts + 1) as i32)
        .bind(attempt.status.map(i32::from))
        .bind(attempt.error.as_deref())
        .bind(attempt.latency_ms as i64)
        .bind(attempt.at)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[async_trait]
impl<DB: Dialect> Leases for SqlStore<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    String: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    i64: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    async fn try_lease(&self, name: &str, holder: &str, ttl_ms: i64) -> Result<bool> {
        let now = now_millis();
        // A row comes back only if the lease was free, lapsed, or already ours.
        let taken = sqlx::query(
            "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
             WHERE leases.holder = excluded.holder OR leases.expires_at < $4
             RETURNING holder",
        )
        .bind(name)
        .bind(holder)
        .bind(now + ttl_ms)
        .bind(now)
        .fetch_optional(&self.writer)
        .await?;
        Ok(taken.is_some())
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(&self.writer)
            .await?;
        Ok(())
    }
}
