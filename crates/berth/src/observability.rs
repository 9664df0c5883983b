//! Metrics and webhooks as a serving instance sets them up: the Prometheus recorder, the
//! gauges read from the store, the webhook endpoints of the configuration, and how this
//! instance names itself in events.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use berth_jobs::{Job, JobContext, JobError, JobSummary};
use berth_meta::MetadataStore;

use berth_config::Config;
use berth_meta::events::EventKind;
use berth_webhooks::format::{distribution_action_of, distribution_can_say};
use berth_webhooks::{Endpoint, EndpointSpec, Format, Instance, Source};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Installs the process-wide Prometheus recorder (once: a second call in the same process
/// returns the first handle's twin, which only happens in tests).
pub fn install_metrics() -> Result<PrometheusHandle, String> {
    // Request latencies from 0.5 ms (a cached manifest) to a minute (a large blob).
    let latency = [
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
        60.0,
    ];
    let sizes = [
        256.0,
        4096.0,
        65536.0,
        1_048_576.0,
        16_777_216.0,
        134_217_728.0,
        1_073_741_824.0,
    ];
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &latency)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_bytes".into()), &sizes))
        .map_err(|e| format!("setting up metrics: {e}"))?
        .install_recorder()
        .map_err(|e| format!("setting up metrics: {e}"))?;
    metrics::gauge!("berth_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    describe_metrics();
    Ok(handle)
}

/// Every metric berth records, with its meaning (Prometheus' HELP line). One list, so that
/// the catalogue of metrics can be read in one place.
fn describe_metrics() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "registry_http_requests_total",
        "Requests answered, by operation (handler), method and status code"
    );
    describe_histogram!(
        "registry_http_request_duration_seconds",
        Unit::Seconds,
        "Time from a request's arrival to its response's last byte, by operation"
    );
    describe_histogram!(
        "registry_http_request_size_bytes",
        Unit::Bytes,
        "Declared sizes of request bodies, by operation"
    );
    describe_histogram!(
        "registry_http_response_size_bytes",
        Unit::Bytes,
        "Bytes sent in response bodies, by operation"
    );
    describe_gauge!(
        "registry_http_in_flight_requests",
        "Requests being answered now"
    );
    describe_counter!("berth_events_total", "Registry events, by kind");
    describe_counter!(
        "berth_blobs_quarantined_total",
        "Blobs quarantined because their stored bytes do not match their digest (scrub, fsck)"
    );
    describe_counter!(
        "berth_blob_bytes_pushed_total",
        Unit::Bytes,
        "Bytes of blobs committed by pushes"
    );
    describe_counter!(
        "berth_blob_bytes_requested_total",
        Unit::Bytes,
        "Bytes of blobs clients asked for (whole blobs, before ranges)"
    );
    describe_counter!(
        "berth_blob_bytes_sent_total",
        Unit::Bytes,
        "Bytes of blob downloads actually sent"
    );
    describe_counter!(
        "berth_repository_events_total",
        "Registry events of the repositories listed in metrics.repositories, by kind"
    );
    describe_histogram!(
        "berth_storage_operation_duration_seconds",
        Unit::Seconds,
        "Blob store calls, by backend, action and outcome (streams: until the first byte)"
    );
    describe_histogram!(
        "berth_database_operation_duration_seconds",
        Unit::Seconds,
        "Metadata store calls (each one or a few queries, or a transaction), by operation and outcome"
    );
    describe_counter!(
        "berth_job_runs_total",
        "Passes of background jobs, by job and outcome"
    );
    describe_histogram!(
        "berth_job_duration_seconds",
        Unit::Seconds,
        "How long passes of background jobs took, by job"
    );
    describe_gauge!(
        "berth_job_last_success_timestamp_seconds",
        "When each background job last finished a pass without error (Unix time)"
    );
    describe_counter!(
        "berth_webhook_deliveries_total",
        "Webhook delivery attempts, by endpoint and outcome (delivered, failed, dead)"
    );
    describe_histogram!(
        "berth_webhook_delivery_duration_seconds",
        Unit::Seconds,
        "Webhook delivery attempts' latency, by endpoint"
    );
    describe_gauge!(
        "berth_webhook_queue_depth",
        "Webhook deliveries owed, by endpoint"
    );
    describe_gauge!(
        "berth_webhook_oldest_pending_seconds",
        Unit::Seconds,
        "Age of the oldest webhook delivery owed, by endpoint"
    );
    describe_counter!(
        "berth_webhook_pull_events_dropped_total",
        "Pull events for webhooks dropped because the queue to the outbox was full"
    );
    describe_counter!(
        "berth_cache_lookups_total",
        "Reads of remote repositories, by remote and result (hit: answered from the cache; miss: the upstream was asked)"
    );
    describe_counter!(
        "berth_cache_stale_serves_total",
        "Cached manifests served because the upstream could not be asked, by remote"
    );
    describe_counter!(
        "berth_cache_upstream_requests_total",
        "Requests sent to upstream registries (token requests included), by remote"
    );
    describe_counter!(
        "berth_cache_upstream_bytes_total",
        Unit::Bytes,
        "Blob bytes received from upstream registries, by remote"
    );
    describe_counter!(
        "berth_cache_blob_fetches_total",
        "Blob downloads started upstream (one per uncached blob however many clients wait), by remote"
    );
    describe_counter!(
        "berth_cache_blob_resumes_total",
        "Broken upstream blob transfers resumed with a Range request, by remote"
    );
    describe_counter!(
        "berth_cache_blob_waits_total",
        "Uncached blobs another instance was downloading, served from storage once there instead of downloaded again, by remote"
    );
    describe_counter!(
        "berth_cache_evictions_total",
        "Cached images evicted by a remote's size cap (maxsize), least recently pulled first, by remote"
    );
    describe_counter!(
        "berth_cache_evicted_bytes_total",
        Unit::Bytes,
        "Bytes the size cap's evictions freed from a remote's count (garbage collection deletes them), by remote"
    );
    describe_gauge!(
        "berth_cache_bytes",
        Unit::Bytes,
        "Bytes cached under a capped remote's prefix (manifests and distinct blobs), as its last size check counted, by remote"
    );
    describe_gauge!(
        "berth_cache_upstream_rate_limit_remaining",
        "The upstream's last RateLimit-Remaining header (Docker Hub), by remote"
    );
    describe_gauge!("berth_build_info", "berth's version (the value is 1)");
    describe_gauge!(
        "berth_storage_bytes",
        Unit::Bytes,
        "Bytes of every blob the registry holds, each counted once, refreshed every 5 minutes"
    );
    describe_gauge!(
        "berth_storage_blobs",
        "Blobs the registry holds, refreshed every 5 minutes"
    );
    describe_gauge!(
        "berth_repository_storage_bytes",
        Unit::Bytes,
        "Bytes of the blobs each repository matching metrics.repositories holds (shared blobs count in each)"
    );
    describe_gauge!(
        "berth_uploads_in_progress",
        "Upload sessions open in the registry (all instances), refreshed every 15 s"
    );
    describe_gauge!(
        "berth_database_connections",
        "This instance's database connections, by pool and state (idle, in_use, max)"
    );
    describe_counter!(
        "berth_auth_decisions_total",
        "Authentication and authorization decisions, by action (pull, push, delete, login, token, ...) and outcome (allowed, denied, failed, ...)"
    );
    describe_counter!(
        "berth_audit_events_dropped_total",
        "Audit events dropped because the audit writer fell behind"
    );
}

/// Sets the gauges that come from the metadata store rather than from events: uploads in
/// progress and connection pool use. A job, so that a scrape never waits on the database.
pub struct StoreGauges {
    pub meta: Arc<dyn MetadataStore>,
}

impl StoreGauges {
    pub const INTERVAL: Duration = Duration::from_secs(15);
}

#[async_trait]
impl Job for StoreGauges {
    fn name(&self) -> &'static str {
        "store-gauges"
    }

    async fn run(&self, _context: &JobContext) -> Result<JobSummary, JobError> {
        let usage = self
            .meta
            .usage()
            .await
            .map_err(|e| JobError::new(format!("reading the store's usage: {e}")))?;
        metrics::gauge!("berth_uploads_in_progress").set(usage.uploads_in_progress as f64);
        for pool in usage.pools {
            let in_use = pool.open.saturating_sub(pool.idle);
            for (state, value) in [("idle", pool.idle), ("in_use", in_use), ("max", pool.max)] {
                metrics::gauge!("berth_database_connections", "pool" => pool.name, "state" => state)
                    .set(f64::from(value));
            }
        }
        Ok(String::new())
    }
}

/// Folds the histogram samples recorded since the last pass into their buckets. The
/// Prometheus recorder keeps every sample until then: without this job, a registry whose
/// metrics nobody scraped grew by about 42 bytes per request (3.4 MB per 80,000 blob HEADs,
/// measured), without bound.
pub struct MetricsUpkeep {
    pub handle: PrometheusHandle,
}

impl MetricsUpkeep {
    pub const INTERVAL: Duration = Duration::from_secs(5);
}

#[async_trait]
impl Job for MetricsUpkeep {
    fn name(&self) -> &'static str {
        "metrics-upkeep"
    }

    async fn run(&self, _context: &JobContext) -> Result<JobSummary, JobError> {
        self.handle.run_upkeep();
        Ok(String::new())
    }
}

/// The webhook endpoints the configuration defines: registry:2's `notifications.endpoints`
/// (the distribution envelope, with registry:2's defaults: every action it knows, pulls
/// included, minus `ignore.actions`) and berth's own `webhooks`. A definition the webhooks
/// crate refuses names its key.
pub fn configured_webhooks(config: &Config) -> Result<Vec<Endpoint>, String> {
    let duration = |d: Duration| Some(humantime::format_duration(d).to_string());
    let mut endpoints = Vec::new();
    for (i, endpoint) in config.notifications.endpoints.iter().enumerate() {
        let path = format!("notifications.endpoints[{i}]");
        let ignored_actions: Vec<&str> =
            endpoint.ignore.actions.iter().map(|a| a.as_str()).collect();
        let events = EventKind::ALL
            .into_iter()
            .filter(|kind| distribution_can_say(*kind))
            .filter(|kind| !ignored_actions.contains(&distribution_action_of(*kind)))
            .map(|kind| kind.as_str().to_string())
            .collect();
        let mut ignored_media_types = endpoint.ignoredmediatypes.clone();
        ignored_media_types.extend(endpoint.ignore.mediatypes.iter().cloned());
        let spec = EndpointSpec {
            url: endpoint
                .url
                .as_ref()
                .map(|u| u.as_str().to_string())
                .unwrap_or_default(),
            format: Format::Distribution,
            events,
            headers: endpoint.headers.clone(),
            timeout: duration(endpoint.timeout),
            backoff: duration(endpoint.backoff),
            ignoredmediatypes: ignored_media_types,
            disabled: endpoint.disabled,
            ..EndpointSpec::default()
        };
        endpoints.push(
            spec.validate(&endpoint.name, Source::Config)
                .map_err(|e| format!("{path}.{e}"))?,
        );
    }
    for (name, webhook) in &config.webhooks {
        let spec = EndpointSpec {
            url: webhook
                .url
                .as_ref()
                .map(|u| u.as_str().to_string())
                .unwrap_or_default(),
            format: Format::parse(webhook.format.as_str()).unwrap_or_default(),
            events: webhook.events.clone(),
            repositories: webhook.repositories.iter().map(|p| p.to_string()).collect(),
            headers: webhook.headers.clone(),
            secret: webhook.secret.clone(),
            timeout: webhook.timeout.and_then(duration),
            backoff: webhook.backoff.and_then(duration),
            maxbackoff: webhook.maxbackoff.and_then(duration),
            maxage: webhook.maxage.and_then(duration),
            ignoredmediatypes: webhook.ignoredmediatypes.clone(),
            disabled: webhook.disabled,
        };
        endpoints.push(
            spec.validate(name, Source::Config)
                .map_err(|e| format!("webhooks.{name}.{e}"))?,
        );
    }
    Ok(endpoints)
}

/// This instance as events name it: a fresh id per process, and `host:port`.
pub fn instance(config: &Config, local: SocketAddr) -> Instance {
    Instance {
        id: uuid::Uuid::new_v4().to_string(),
        addr: format!("{}:{}", hostname(), local.port()),
        public_base: config.http.host.as_ref().map(|h| h.as_str().to_string()),
        tls: config.http.tls.is_some(),
    }
}

/// The command line as a source of events (a test event sent by `berth webhook test`): the
/// configured listen port, since no listener is bound.
pub fn command_line_instance(config: &Config) -> Instance {
    instance(config, config.http.addr.socket_addr())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}
