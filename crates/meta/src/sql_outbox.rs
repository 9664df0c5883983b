//! The webhook outbox, written in the transaction of the change it reports.

use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Pool, Transaction, Type};

use crate::events::Event;
use crate::sql_store::{Dialect, SqlStore};
use crate::{Result, now_millis};

/// A delivery owed: endpoint, event id, kind, repository, payload, time (now).
pub(crate) const INSERT_OUTBOX: &str = "INSERT INTO webhook_outbox
     (endpoint, event_id, kind, repository, payload, created_at, attempts, next_attempt_at)
     VALUES ($1, $2, $3, $4, $5, $6, 0, $6)";

impl<DB: Dialect> SqlStore<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    String: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    i64: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    /// Records the deliveries `events` owe to webhook endpoints, then commits: the change
    /// and its deliveries are durable together or not at all.
    pub(crate) async fn commit_with_events(
        &self,
        mut tx: Transaction<'static, DB>,
        events: Vec<Event>,
    ) -> Result<Vec<Event>> {
        Self::write_outbox(&mut tx, self.outbox_router.get(), &events).await?;
        tx.commit().await?;
        Ok(events)
    }

    pub(crate) async fn write_outbox(
        tx: &mut Transaction<'static, DB>,
        router: Option<&std::sync::Arc<dyn crate::OutboxRouter>>,
        events: &[Event],
    ) -> Result<()> {
        let Some(router) = router else {
            return Ok(());
        };
        let now = now_millis();
        for event in events {
            let endpoints = router.endpoints_for(event);
            if endpoints.is_empty() {
                continue;
            }
            let payload = serde_json::to_string(event).expect("events serialize");
            for endpoint in endpoints {
                sqlx::query(INSERT_OUTBOX)
                    .bind(endpoint)
                    .bind(event.id.as_str())
                    .bind(event.kind.as_str())
                    .bind(event.repository.as_str())
                    .bind(payload.as_str())
                    .bind(now)
                    .execute(&mut **tx)
                    .await?;
            }
        }
        Ok(())
    }
}
