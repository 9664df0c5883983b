//! What webhook delivery keeps in the database: the outbox of deliveries owed (written with
//! each change, see [`crate::events`]), the delivery log, dead letters, the endpoints made
//! through the admin API, and leases that let one instance at a time deliver to an endpoint.
//!
//! The backlog lives here, never in memory: an endpoint that is down for a day costs rows,
//! not RAM.

use async_trait::async_trait;

use crate::Result;
use crate::events::{Event, OutboxEntry};

/// One attempt to deliver, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryAttempt {
    /// The HTTP status the endpoint answered, if it answered.
    pub status: Option<u16>,
    /// Why it failed (timeout, refused, 500 ...); `None` on success.
    pub error: Option<String>,
    pub latency_ms: u64,
    /// Unix milliseconds.
    pub at: i64,
}

/// A delivery attempt as the log shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    pub id: i64,
    pub endpoint: String,
    pub event_id: String,
    pub kind: String,
    pub repository: String,
    /// 1 for the first try.
    pub attempt: u32,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub latency_ms: u64,
    pub at: i64,
}

/// A delivery given up on after its maximum age; it can be replayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub id: i64,
    pub endpoint: String,
    pub event: Event,
    pub attempts: u32,
    pub last_error: Option<String>,
    /// When the event was committed and when it was given up, Unix milliseconds.
    pub created_at: i64,
    pub died_at: i64,
}

/// How far behind an endpoint is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueDepth {
    pub endpoint: String,
    pub pending: u64,
    /// Unix milliseconds of the oldest pending delivery.
    pub oldest_created_at: i64,
}

/// An endpoint made through the admin API: its definition is the webhooks crate's JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredWebhook {
    pub name: String,
    pub definition: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[async_trait]
pub trait WebhookStore: Send + Sync + 'static {
    /// The first `limit` deliveries owed to `endpoint`, in order.
    async fn outbox_head(&self, endpoint: &str, limit: u32) -> Result<Vec<OutboxEntry>>;

    /// Adds deliveries outside a change's transaction (pulls, test events).
    async fn enqueue(&self, deliveries: &[(String, Event)]) -> Result<()>;

    /// The endpoint took it: the delivery leaves the outbox; the attempt is logged.
    async fn delivered(&self, entry: &OutboxEntry, attempt: &DeliveryAttempt) -> Result<()>;

    /// It failed: try again at `next_attempt_at`; the attempt is logged.
    async fn failed(
        &self,
        entry: &OutboxEntry,
        attempt: &DeliveryAttempt,
        next_attempt_at: i64,
    ) -> Result<()>;

    /// It failed past its maximum age: it moves to the dead letters; the attempt is logged.
    async fn dead(&self, entry: &OutboxEntry, attempt: &DeliveryAttempt) -> Result<()>;

    /// Pending deliveries per endpoint (endpoints with none are left out).
    async fn queue_depths(&self) -> Result<Vec<QueueDepth>>;

    /// Removes every delivery owed to an endpoint that no longer exists.
    async fn drop_backlog(&self, endpoint: &str) -> Result<u64>;

    /// The newest attempts for `endpoint`, newest first, before id `before`.
    async fn deliveries(
        &self,
        endpoint: &str,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<DeliveryRecord>>;

    /// Forgets delivery log entries older than `before` (Unix milliseconds).
    async fn prune_deliveries(&self, before: i64) -> Result<u64>;

    /// Dead letters, oldest first; of one endpoint or all.
    async fn dead_letters(&self, endpoint: Option<&str>, limit: u32) -> Result<Vec<DeadLetter>>;

    /// Puts dead letters back in the outbox (at its end, with fresh attempts): all of an
    /// endpoint's, or the listed ones. Returns how many.
    async fn replay_dead_letters(&self, endpoint: &str, ids: Option<&[i64]>) -> Result<u64>;

    async fn webhooks(&self) -> Result<Vec<StoredWebhook>>;

    /// Creates (`create` true: a conflict if it exists) or replaces (`create` false: `false`
    /// if it does not exist) an endpoint definition.
    async fn put_webhook(&self, name: &str, definition: &str, create: bool) -> Result<bool>;

    /// `false` when there was no such endpoint.
    async fn delete_webhook(&self, name: &str) -> Result<bool>;
}

/// Leases: "one instance at a time does this" across every berth sharing the database. A
/// holder renews its lease before it expires; if it dies, the lease lapses and another
/// instance takes over.
#[async_trait]
pub trait Leases: Send + Sync + 'static {
    /// Takes or renews `name` for `holder` until `ttl_ms` from now; `false` if another
    /// holder's lease is still running.
    async fn try_lease(&self, name: &str, holder: &str, ttl_ms: i64) -> Result<bool>;

    /// Gives the lease up, if `holder` has it.
    async fn release_lease(&self, name: &str, holder: &str) -> Result<()>;
}
