//! Managing webhooks: the one write path the admin API, the command line and the dashboard
//! call. Endpoints from the configuration are shown but can only be changed in the
//! configuration; endpoints made here are stored in the database (every instance picks them
//! up within [`crate::endpoints::REFRESH`]). Every change is validated, audited and takes
//! effect on this instance at once.

use std::sync::Arc;

use berth_auth::admin::{Actor, AdminError, AdminResult, Administration, timestamp};
use berth_meta::webhooks::{DeadLetter, DeliveryRecord, WebhookStore};
use serde::Serialize;

use crate::delivery::Delivery;
use crate::endpoint::{EndpointSpec, Source, valid_name};
use crate::endpoints::Endpoints;

/// An endpoint as it is shown: its definition without the secret, and how far behind it is.
#[derive(Debug, Clone, Serialize)]
pub struct WebhookView {
    pub name: String,
    pub source: Source,
    #[serde(flatten)]
    pub spec: EndpointSpec,
    /// Deliveries owed.
    pub pending: u64,
    pub oldest_pending_at: Option<String>,
}

/// The result of "send test event".
#[derive(Debug, Clone, Serialize)]
pub struct TestResult {
    pub delivered: bool,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub latency_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeliveryView {
    pub id: i64,
    pub event_id: String,
    pub event: String,
    pub repository: String,
    pub attempt: u32,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub latency_ms: u64,
    pub at: String,
}

impl From<DeliveryRecord> for DeliveryView {
    fn from(record: DeliveryRecord) -> Self {
        DeliveryView {
            id: record.id,
            event_id: record.event_id,
            event: record.kind,
            repository: record.repository,
            attempt: record.attempt,
            status: record.status,
            error: record.error,
            latency_ms: record.latency_ms,
            at: timestamp(record.at),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct DeadLetterView {
    pub id: i64,
    pub event_id: String,
    pub event: String,
    pub repository: String,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub created_at: String,
    pub died_at: String,
}

impl From<DeadLetter> for DeadLetterView {
    fn from(dead: DeadLetter) -> Self {
        DeadLetterView {
            id: dead.id,
            event_id: dead.event.id,
            event: dead.event.kind.as_str().to_string(),
            repository: dead.event.repository.to_string(),
            attempts: dead.attempts,
            last_error: dead.last_error,
            created_at: timestamp(dead.created_at),
            died_at: timestamp(dead.died_at),
        }
    }
}

pub struct WebhookAdmin {
    endpoints: Arc<Endpoints>,
    store: Arc<dyn WebhookStore>,
    delivery: Arc<Delivery>,
    audit: Administration,
}

const PAGE_LIMIT: u32 = 1000;

impl WebhookAdmin {
    pub fn new(
        endpoints: Arc<Endpoints>,
        store: Arc<dyn WebhookStore>,
        delivery: Arc<Delivery>,
        audit: Administration,
    ) -> WebhookAdmin {
        WebhookAdmin {
            endpoints,
            store,
            delivery,
            audit,
        }
    }

    pub async fn list(&self) -> AdminResult<Vec<WebhookView>> {
        self.endpoints.refresh().await?;
        let depths = self.store.queue_depths().await?;
        Ok(self
            .endpoints
            .all()
            .into_iter()
            .map(|endpoint| {
                let depth = depths.iter().find(|d| d.endpoint == endpoint.name);
                WebhookView {
                    spec: endpoint.redacted_spec(),
                    name: endpoint.name,
                    source: endpoint.source,
                    pending: depth.map_or(0, |d| d.pending),
                    oldest_pending_at: depth.map(|d| timestamp(d.oldest_created_at)),
                }
            })
            .collect())
    }

    pub async fn get(&self, name: &str) -> AdminResult<WebhookView> {
        self.list()
            .await?
            .into_iter()
            .find(|w| w.name == name)
            .ok_or_else(|| not_found(name))
    }

    /// Creates (`create`) or replaces an endpoint made through the API.
    pub async fn put(
        &self,
        actor: &Actor,
        name: &str,
        spec: EndpointSpec,
        create: bool,
    ) -> AdminResult<WebhookView> {
        let verb = if create { "create" } else { "replace" };
        let result = self.put_checked(name, spec, create).await;
        self.audited(actor, name, verb, &result).await;
        result?;
        self.get(name).await
    }

    async fn put_checked(&self, name: &str, spec: EndpointSpec, create: bool) -> AdminResult<()> {
        valid_name(name).map_err(|e| AdminError::Invalid(e.to_string()))?;
        if self.endpoints.is_configured(name) {
            return Err(AdminError::Conflict(format!(
                "the webhook {name} is defined in the configuration; change it there"
            )));
        }
        spec.validate(name, Source::Api)
            .map_err(|e| AdminError::Invalid(e.to_string()))?;
        let definition = serde_json::to_string(&spec).expect("specs serialize");
        let done = self.store.put_webhook(name, &definition, create).await?;
        if !done {
            return Err(if create {
                AdminError::Conflict(format!("a webhook named {name} exists already"))
            } else {
                not_found(name)
            });
        }
        self.endpoints.refresh().await?;
        Ok(())
    }

    /// Deletes an endpoint made through the API, with the deliveries it was still owed.
    pub async fn delete(&self, actor: &Actor, name: &str) -> AdminResult<()> {
        let result = async {
            if self.endpoints.is_configured(name) {
                return Err(AdminError::Conflict(format!(
                    "the webhook {name} is defined in the configuration; remove it there"
                )));
            }
            if !self.store.delete_webhook(name).await? {
                return Err(not_found(name));
            }
            self.store.drop_backlog(name).await?;
            self.endpoints.refresh().await?;
            Ok(())
        }
        .await;
        self.audited(actor, name, "delete", &result).await;
        result
    }

    /// Sends a test event to the endpoint now, outside the outbox, and says how it went.
    pub async fn test(&self, actor: &Actor, name: &str) -> AdminResult<TestResult> {
        let endpoint = self.endpoint(name).await?;
        let outcome = self
            .delivery
            .send(&endpoint, &Delivery::test_event(&actor.name()))
            .await;
        Ok(TestResult {
            delivered: outcome.ok,
            status: outcome.attempt.status,
            error: outcome.attempt.error,
            latency_ms: outcome.attempt.latency_ms,
        })
    }

    pub async fn deliveries(
        &self,
        name: &str,
        before: Option<i64>,
        limit: Option<u32>,
    ) -> AdminResult<Vec<DeliveryView>> {
        self.endpoint(name).await?;
        let limit = limit.unwrap_or(100).min(PAGE_LIMIT);
        Ok(self
            .store
            .deliveries(name, before, limit)
            .await?
            .into_iter()
            .map(DeliveryView::from)
            .collect())
    }

    pub async fn dead_letters(&self, name: &str) -> AdminResult<Vec<DeadLetterView>> {
        self.endpoint(name).await?;
        Ok(self
            .store
            .dead_letters(Some(name), PAGE_LIMIT)
            .await?
            .into_iter()
            .map(DeadLetterView::from)
            .collect())
    }

    /// Puts dead letters back in the outbox: all of the endpoint's, or the listed ones.
    pub async fn replay(&self, actor: &Actor, name: &str, ids: Option<&[i64]>) -> AdminResult<u64> {
        let result = async {
            self.endpoint(name).await?;
            Ok(self.store.replay_dead_letters(name, ids).await?)
        }
        .await;
        self.audited(actor, name, "replay dead letters", &result)
            .await;
        result
    }

    async fn endpoint(&self, name: &str) -> AdminResult<crate::Endpoint> {
        self.endpoints.refresh_if_stale().await?;
        self.endpoints.get(name).ok_or_else(|| not_found(name))
    }

    async fn audited<T>(&self, actor: &Actor, name: &str, what: &str, result: &AdminResult<T>) {
        let target = format!("webhook:{name}");
        let (outcome, detail) = match result {
            Ok(_) => ("allowed", what.to_string()),
            Err(e) => ("failed", format!("{what}: {e}")),
        };
        self.audit
            .record_management(actor, &target, outcome, &detail)
            .await;
    }
}

fn not_found(name: &str) -> AdminError {
    AdminError::NotFound(format!("no webhook named {name}"))
}
