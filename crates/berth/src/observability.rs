//! Metrics and webhooks as a serving instance sets them up: the Prometheus recorder, the
//! webhook endpoints of the configuration, and how this instance names itself in events.

use std::net::SocketAddr;

use berth_config::Config;
use berth_webhooks::{Endpoint, Instance};
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
    metrics::describe_counter!(
        "registry_http_requests_total",
        "Requests answered, by operation (handler), method and status code"
    );
    metrics::describe_histogram!(
        "registry_http_request_duration_seconds",
        "Time from a request's arrival to its response's last byte, by operation"
    );
    metrics::describe_counter!("berth_events_total", "Registry events by kind");
    metrics::describe_gauge!(
        "berth_webhook_queue_depth",
        "Webhook deliveries owed, per endpoint"
    );
    Ok(handle)
}

/// The webhook endpoints the configuration defines.
pub fn configured_webhooks(_config: &Config) -> Result<Vec<Endpoint>, String> {
    Ok(Vec::new())
}

/// This instance as events name it: a fresh id per process, and `host:port`.
pub fn instance(config: &Config, local: SocketAddr) -> Instance {
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string());
    Instance {
        id: uuid::Uuid::new_v4().to_string(),
        addr: format!("{hostname}:{}", local.port()),
        public_base: config.http.host.as_ref().map(|h| h.as_str().to_string()),
        tls: config.http.tls.is_some(),
    }
}
