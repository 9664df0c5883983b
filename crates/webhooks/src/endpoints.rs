//! The endpoints this instance knows: those of the configuration and those made through the
//! admin API (re-read from the database every few seconds, so an endpoint made on one
//! instance reaches the others within [`REFRESH`]). Routes committed changes into the outbox
//! and queues pull events for the endpoints that asked for them.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use berth_jobs::JobWaker;
use berth_meta::events::{Event, OutboxRouter};
use berth_meta::webhooks::WebhookStore;
use berth_registry::events::EventSink;

use crate::endpoint::{Endpoint, EndpointSpec, Format, Source};
use crate::format::distribution_can_say;

/// How stale this instance's copy of the API's endpoints may be.
pub const REFRESH: Duration = Duration::from_secs(5);
/// Pull events waiting to be written to the outbox; past this, the oldest are dropped (and
/// counted): pulls are many, and a database that cannot keep up must not cost memory.
const PULL_QUEUE_LIMIT: usize = 10_000;

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

pub struct Endpoints {
    config: Vec<Endpoint>,
    api: RwLock<Arc<Vec<Endpoint>>>,
    refreshed: Mutex<Option<Instant>>,
    store: Arc<dyn WebhookStore>,
    pulls: Mutex<VecDeque<(String, Event)>>,
    delivery: OnceLock<JobWaker>,
}

impl Endpoints {
    pub fn new(config: Vec<Endpoint>, store: Arc<dyn WebhookStore>) -> Endpoints {
        Endpoints {
            config,
            api: RwLock::new(Arc::new(Vec::new())),
            refreshed: Mutex::new(None),
            store,
            pulls: Mutex::new(VecDeque::new()),
            delivery: OnceLock::new(),
        }
    }

    /// Lets new events wake the delivery job.
    pub fn set_waker(&self, waker: JobWaker) {
        let _ = self.delivery.set(waker);
    }

    /// Re-reads the API's endpoints; an invalid stored definition is skipped and logged.
    pub async fn refresh(&self) -> Result<(), berth_meta::MetaError> {
        let stored = self.store.webhooks().await?;
        let mut endpoints = Vec::with_capacity(stored.len());
        for webhook in stored {
            let parsed = serde_json::from_str::<EndpointSpec>(&webhook.definition)
                .map_err(|e| e.to_string())
                .and_then(|spec| {
                    spec.validate(&webhook.name, Source::Api)
                        .map_err(|e| e.to_string())
                });
            match parsed {
                Ok(endpoint) => endpoints.push(endpoint),
                Err(e) => {
                    tracing::warn!(webhook = %webhook.name, error = %e, "ignoring an invalid stored webhook")
                }
            }
        }
        *self.api.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(endpoints);
        *lock(&self.refreshed) = Some(Instant::now());
        Ok(())
    }

    /// Refreshes if the copy is older than [`REFRESH`].
    pub async fn refresh_if_stale(&self) -> Result<(), berth_meta::MetaError> {
        let stale = lock(&self.refreshed).is_none_or(|at| at.elapsed() >= REFRESH);
        if stale { self.refresh().await } else { Ok(()) }
    }

    fn api(&self) -> Arc<Vec<Endpoint>> {
        Arc::clone(&self.api.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Every endpoint, configuration first.
    pub fn all(&self) -> Vec<Endpoint> {
        self.config
            .iter()
            .cloned()
            .chain(self.api().iter().cloned())
            .collect()
    }

    pub fn get(&self, name: &str) -> Option<Endpoint> {
        self.config
            .iter()
            .find(|e| e.name == name)
            .cloned()
            .or_else(|| self.api().iter().find(|e| e.name == name).cloned())
    }

    /// Whether a name is taken by the configuration (the API cannot define it then).
    pub fn is_configured(&self, name: &str) -> bool {
        self.config.iter().any(|e| e.name == name)
    }

    fn wanting<'a>(
        endpoints: impl Iterator<Item = &'a Endpoint>,
        event: &Event,
    ) -> impl Iterator<Item = &'a Endpoint> {
        endpoints.filter(move |e| {
            e.wants(event) && (e.format != Format::Distribution || distribution_can_say(event.kind))
        })
    }

    /// Takes the pull events waiting to be written to the outbox.
    pub fn take_pulls(&self) -> Vec<(String, Event)> {
        lock(&self.pulls).drain(..).collect()
    }
}

impl OutboxRouter for Endpoints {
    fn endpoints_for(&self, event: &Event) -> Vec<String> {
        if event.kind.is_pull() {
            return Vec::new();
        }
        let api = self.api();
        Self::wanting(self.config.iter().chain(api.iter()), event)
            .map(|e| e.name.clone())
            .collect()
    }
}

/// Hears every event: pulls that an endpoint wants are queued for the outbox (they are not
/// transactional), and a committed change wakes the delivery job.
impl EventSink for Endpoints {
    fn publish(&self, event: &Event) {
        if !event.kind.is_pull() {
            if let Some(waker) = self.delivery.get() {
                waker.wake();
            }
            return;
        }
        let api = self.api();
        let mut wanted = Self::wanting(self.config.iter().chain(api.iter()), event).peekable();
        if wanted.peek().is_none() {
            return;
        }
        let mut queue = lock(&self.pulls);
        for endpoint in wanted {
            if queue.len() >= PULL_QUEUE_LIMIT {
                queue.pop_front();
                metrics::counter!("berth_webhook_pull_events_dropped_total").increment(1);
            }
            queue.push_back((endpoint.name.clone(), event.clone()));
        }
    }
}
