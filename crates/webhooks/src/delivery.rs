//! Delivering the outbox: at least once, in order per endpoint, with backoff, until a
//! maximum age, then into the dead letters.
//!
//! Each pass takes the endpoints that have deliveries owed, and for each, if this instance
//! holds its lease (one deliverer per endpoint across instances), sends them in outbox order:
//! a delivery is removed only after the endpoint answered 2xx, so a crash in between sends it
//! again (at least once; receivers deduplicate on the event id). A failure holds the endpoint's
//! queue back until its retry time (ordering), except that a delivery older than the
//! endpoint's maximum age becomes a dead letter and the next one goes. Endpoints are served
//! side by side, so a slow one does not hold up the others. Nothing is kept in memory between
//! passes: the backlog is the outbox table.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use berth_jobs::{Job, JobContext, JobError, JobSummary};
use berth_meta::events::{Event, EventKind, Origin, OutboxEntry};
use berth_meta::webhooks::{DeliveryAttempt, Leases, WebhookStore};
use berth_meta::{MetaError, now_millis};
use berth_oci::RepositoryName;
use futures_util::StreamExt;
use http::header;

use crate::endpoint::Endpoint;
use crate::endpoints::Endpoints;
use crate::format::{Instance, render};
use crate::signature::sign;

pub const JOB_NAME: &str = "webhook-delivery";
/// Delivery log entries are kept this long.
const LOG_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
/// Endpoints served at once in a pass.
const PARALLEL_ENDPOINTS: usize = 8;
/// Deliveries fetched from the outbox at a time.
const BATCH: u32 = 32;
/// A pass gives other work a turn after this long on one endpoint.
const PASS_BUDGET: Duration = Duration::from_secs(20);

/// What one delivery attempt came to.
pub struct Outcome {
    pub attempt: DeliveryAttempt,
    pub ok: bool,
}

pub struct Delivery {
    endpoints: Arc<Endpoints>,
    store: Arc<dyn WebhookStore>,
    leases: Arc<dyn Leases>,
    client: reqwest::Client,
    instance: Instance,
    last_prune: Mutex<Option<Instant>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

fn db(e: MetaError) -> JobError {
    JobError::new(format!("webhook outbox: {e}"))
}

/// A number in [-1, 1] for jitter, without a random number generator: the sub-second
/// clock is random enough to keep retries from lining up.
fn jitter() -> f64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    f64::from(nanos % 2001) / 1000.0 - 1.0
}

impl Delivery {
    pub fn new(
        endpoints: Arc<Endpoints>,
        store: Arc<dyn WebhookStore>,
        leases: Arc<dyn Leases>,
        instance: Instance,
    ) -> Delivery {
        let client = reqwest::Client::builder()
            // A redirect is a failure to deliver: following it would send the payload (and
            // its signature) somewhere nobody configured.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("an HTTP client with default TLS settings");
        Delivery {
            endpoints,
            store,
            leases,
            client,
            instance,
            last_prune: Mutex::new(None),
        }
    }

    /// Sends one event to an endpoint now and reports how it went (the "send test event"
    /// call uses this directly, without the outbox).
    pub async fn send(&self, endpoint: &Endpoint, event: &Event) -> Outcome {
        let started = Instant::now();
        let at = now_millis();
        let outcome = |status: Option<u16>, error: Option<String>| Outcome {
            ok: error.is_none(),
            attempt: DeliveryAttempt {
                status,
                error,
                latency_ms: started.elapsed().as_millis() as u64,
                at,
            },
        };
        let Some(payload) = render(endpoint.format, event, &self.instance) else {
            return outcome(None, None);
        };
        let mut request = self
            .client
            .post(endpoint.url.clone())
            .timeout(endpoint.timeout)
            .headers(endpoint.headers.clone())
            .header(header::CONTENT_TYPE, payload.content_type);
        if let Some(key) = &endpoint.secret {
            let seconds = (at / 1000).max(0) as u64;
            let signed = sign(key, &event.id, seconds, &payload.body);
            request = request
                .header("webhook-id", signed.id)
                .header("webhook-timestamp", signed.timestamp)
                .header("webhook-signature", signed.signature);
        }
        match request.body(payload.body).send().await {
            Ok(response) if response.status().is_success() => {
                outcome(Some(response.status().as_u16()), None)
            }
            Ok(response) if response.status().is_redirection() => {
                let to = response
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("?")
                    .to_string();
                let status = response.status().as_u16();
                outcome(
                    Some(status),
                    Some(format!("HTTP {status}: redirect to {to} not followed")),
                )
            }
            Ok(response) => {
                let status = response.status().as_u16();
                outcome(Some(status), Some(format!("HTTP {status}")))
            }
            Err(e) if e.is_timeout() => outcome(
                None,
                Some(format!(
                    "no answer within {}",
                    humantime::format_duration(endpoint.timeout)
                )),
            ),
            Err(e) => outcome(None, Some(format!("could not connect: {}", root_cause(&e)))),
        }
    }

    /// A synthetic event for "send test event".
    pub fn test_event(actor: &str) -> Event {
        let origin = Arc::new(Origin {
            actor: actor.to_string(),
            ..Origin::default()
        });
        let repository = RepositoryName::parse("berth/webhook-test").expect("a valid name");
        Event::new(EventKind::Test, &repository, &origin)
    }

    async fn serve_endpoint(
        &self,
        endpoint: &Endpoint,
        context: &JobContext,
    ) -> Result<Counts, JobError> {
        let mut counts = Counts::default();
        let lease = format!("webhook:{}", endpoint.name);
        // Long enough for an attempt or two; short enough that a crashed deliverer's
        // endpoints move to another instance (or to its own restart) within seconds.
        let lease_ttl = (endpoint.timeout * 2 + Duration::from_secs(5))
            .max(Duration::from_secs(10))
            .as_millis() as i64;
        if !self
            .leases
            .try_lease(&lease, &self.instance.id, lease_ttl)
            .await
            .map_err(db)?
        {
            return Ok(counts);
        }
        let started = Instant::now();
        'batches: while started.elapsed() < PASS_BUDGET {
            let entries = self
                .store
                .outbox_head(&endpoint.name, BATCH)
                .await
                .map_err(db)?;
            if entries.is_empty() {
                break;
            }
            for entry in entries {
                if context.is_shutting_down() || started.elapsed() >= PASS_BUDGET {
                    break 'batches;
                }
                if entry.next_attempt_at > now_millis() {
                    // The head waits for its retry; what follows waits behind it.
                    break 'batches;
                }
                if !self.attempt(endpoint, &entry, &mut counts).await? {
                    break 'batches;
                }
            }
            if !self
                .leases
                .try_lease(&lease, &self.instance.id, lease_ttl)
                .await
                .map_err(db)?
            {
                break;
            }
        }
        Ok(counts)
    }

    /// One attempt at the head of an endpoint's queue; `false` when the queue must wait.
    async fn attempt(
        &self,
        endpoint: &Endpoint,
        entry: &OutboxEntry,
        counts: &mut Counts,
    ) -> Result<bool, JobError> {
        let outcome = self.send(endpoint, &entry.event).await;
        let name = endpoint.name.clone();
        metrics::histogram!("berth_webhook_delivery_duration_seconds", "endpoint" => name.clone())
            .record(outcome.attempt.latency_ms as f64 / 1000.0);
        if outcome.ok {
            self.store
                .delivered(entry, &outcome.attempt)
                .await
                .map_err(db)?;
            metrics::counter!("berth_webhook_deliveries_total", "endpoint" => name, "outcome" => "delivered").increment(1);
            counts.delivered += 1;
            return Ok(true);
        }
        let age = Duration::from_millis((now_millis() - entry.created_at).max(0) as u64);
        if age >= endpoint.max_age {
            tracing::warn!(
                webhook = %endpoint.name, event = %entry.event.id, kind = entry.event.kind.as_str(),
                attempts = entry.attempts + 1, error = outcome.attempt.error.as_deref(),
                "webhook delivery given up after its maximum age; kept as a dead letter"
            );
            self.store.dead(entry, &outcome.attempt).await.map_err(db)?;
            metrics::counter!("berth_webhook_deliveries_total", "endpoint" => name, "outcome" => "dead").increment(1);
            counts.dead += 1;
            return Ok(true);
        }
        let wait = endpoint.retry_delay(entry.attempts, jitter());
        tracing::info!(
            webhook = %endpoint.name, event = %entry.event.id, attempt = entry.attempts + 1,
            error = outcome.attempt.error.as_deref(), retry_in_ms = wait.as_millis() as u64,
            "webhook delivery failed; will retry"
        );
        self.store
            .failed(
                entry,
                &outcome.attempt,
                now_millis() + wait.as_millis() as i64,
            )
            .await
            .map_err(db)?;
        metrics::counter!("berth_webhook_deliveries_total", "endpoint" => name, "outcome" => "failed").increment(1);
        counts.failed += 1;
        Ok(false)
    }

    async fn prune_log(&self) -> Result<(), JobError> {
        let due = lock(&self.last_prune).is_none_or(|at| at.elapsed() >= Duration::from_secs(3600));
        if due {
            *lock(&self.last_prune) = Some(Instant::now());
            let before = now_millis() - LOG_RETENTION.as_millis() as i64;
            self.store.prune_deliveries(before).await.map_err(db)?;
        }
        Ok(())
    }
}

fn root_cause(error: &dyn std::error::Error) -> String {
    let mut cause = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

#[derive(Default)]
struct Counts {
    delivered: u64,
    failed: u64,
    dead: u64,
}

#[async_trait]
impl Job for Delivery {
    fn name(&self) -> &'static str {
        JOB_NAME
    }

    async fn run(&self, context: &JobContext) -> Result<JobSummary, JobError> {
        let pulls = self.endpoints.take_pulls();
        self.store.enqueue(&pulls).await.map_err(db)?;
        if let Err(e) = self.endpoints.refresh_if_stale().await {
            tracing::warn!(error = %e, "could not re-read the webhooks defined through the API");
        }
        let depths = self.store.queue_depths().await.map_err(db)?;
        let now = now_millis();
        for depth in &depths {
            let labels = [("endpoint", depth.endpoint.clone())];
            metrics::gauge!("berth_webhook_queue_depth", &labels).set(depth.pending as f64);
            metrics::gauge!("berth_webhook_oldest_pending_seconds", &labels)
                .set((now - depth.oldest_created_at).max(0) as f64 / 1000.0);
        }
        // Endpoints another instance knows (other configuration) are left to it.
        let due: Vec<Endpoint> = depths
            .iter()
            .filter_map(|d| self.endpoints.get(&d.endpoint))
            .filter(|e| e.enabled)
            .collect();
        let results: Vec<Result<Counts, JobError>> = futures_util::stream::iter(due)
            .map(|endpoint| async move { self.serve_endpoint(&endpoint, context).await })
            .buffer_unordered(PARALLEL_ENDPOINTS)
            .collect()
            .await;
        let mut total = Counts::default();
        for result in results {
            let counts = result?;
            total.delivered += counts.delivered;
            total.failed += counts.failed;
            total.dead += counts.dead;
        }
        // Known endpoints with nothing pending show an empty queue, not the last figure.
        for endpoint in self.endpoints.all() {
            if !depths.iter().any(|d| d.endpoint == endpoint.name) {
                let labels = [("endpoint", endpoint.name.clone())];
                metrics::gauge!("berth_webhook_queue_depth", &labels).set(0.0);
                metrics::gauge!("berth_webhook_oldest_pending_seconds", &labels).set(0.0);
            }
        }
        self.prune_log().await?;
        if total.delivered + total.failed + total.dead == 0 {
            return Ok(String::new());
        }
        Ok(format!(
            "webhooks: {} delivered, {} failed (will retry), {} given up",
            total.delivered, total.failed, total.dead
        ))
    }
}
