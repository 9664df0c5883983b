//! Prometheus metrics.
//!
//! Recording goes through the `metrics` facade from wherever something happens (the request
//! observer below, the job runner, webhook delivery, the access service); the binary installs
//! the Prometheus recorder and `GET /metrics` renders it. Label values are bounded: operation
//! names, status codes, job and webhook names, and repositories only when an operator lists
//! them (`RegistryMetrics::repositories`).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use berth_auth::Mode;
use berth_oci::Pattern;
use berth_registry::events::{Event, EventKind, EventSink};
use http::{HeaderValue, StatusCode, header};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::AppState;

/// What `/metrics` serves, and who may read it.
#[derive(Clone)]
pub struct MetricsEndpoint {
    pub handle: PrometheusHandle,
    /// Readable without credentials (a private debug listener, or `auth: none`).
    pub open: bool,
}

/// Counts the registry's events: pushes, pulls, deletes and bytes, overall and for the
/// repositories an operator chose to watch (per-repository labels are opt-in, so a registry
/// with 100k repositories does not make 100k series).
pub struct RegistryMetrics {
    pub repositories: Vec<Pattern>,
}

impl EventSink for RegistryMetrics {
    fn publish(&self, event: &Event) {
        let kind = event.kind.as_str();
        metrics::counter!("berth_events_total", "kind" => kind).increment(1);
        let size = event.size.unwrap_or(0);
        match event.kind {
            EventKind::BlobPushed => {
                metrics::counter!("berth_blob_bytes_pushed_total").increment(size);
            }
            EventKind::BlobPulled => {
                metrics::counter!("berth_blob_bytes_requested_total").increment(size);
            }
            _ => {}
        }
        if self
            .repositories
            .iter()
            .any(|p| p.matches(event.repository.as_str()))
        {
            metrics::counter!(
                "berth_repository_events_total",
                "repository" => event.repository.to_string(),
                "kind" => kind
            )
            .increment(1);
        }
    }
}

/// `GET /metrics` in Prometheus text format. On the main listener it needs an administrator
/// (the page names webhooks, jobs and, if configured, repositories); on the debug listener,
/// or without authentication, anyone may read it.
pub(crate) async fn scrape(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let Some(endpoint) = &state.metrics else {
        return (StatusCode::NOT_FOUND, "metrics are not enabled\n").into_response();
    };
    if !endpoint.open && !matches!(state.access.mode(), Mode::None) {
        let (parts, _) = request.into_parts();
        let authorization = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let allowed = match state
            .access
            .authenticate_api(authorization, crate::auth::client(&parts))
            .await
        {
            Ok(caller) => caller.principal.is_admin() && !caller.is_limited(),
            Err(_) => false,
        };
        if !allowed {
            let mut response = (
                StatusCode::UNAUTHORIZED,
                "metrics need an administrator's credentials (Basic or a Bearer access token)\n",
            )
                .into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"berth metrics\""),
            );
            return response;
        }
    }
    render(&endpoint.handle)
}

/// The debug listener's application (registry:2's `http.debug`): metrics at `path`, readable
/// by anyone who can reach the listener (an operator's private address).
pub fn debug_router(handle: PrometheusHandle, path: &str) -> axum::Router {
    axum::Router::new().route(
        path,
        axum::routing::get(move || {
            let handle = handle.clone();
            async move { render(&handle) }
        }),
    )
}

fn render(handle: &PrometheusHandle) -> Response {
    crate::process_metrics::collect();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
    )
        .into_response()
}

/// Records a finished request: count, duration and sizes by operation (`handler`, as
/// distribution names its label), method and status.
pub(crate) fn record_request(
    handler: &'static str,
    method: &http::Method,
    status: u16,
    duration_seconds: f64,
    request_bytes: Option<u64>,
    response_bytes: u64,
) {
    let method = method_label(method);
    metrics::counter!(
        "registry_http_requests_total",
        "handler" => handler,
        "method" => method,
        "code" => status_label(status)
    )
    .increment(1);
    metrics::histogram!(
        "registry_http_request_duration_seconds",
        "handler" => handler,
        "method" => method
    )
    .record(duration_seconds);
    metrics::histogram!(
        "registry_http_response_size_bytes",
        "handler" => handler,
        "method" => method
    )
    .record(response_bytes as f64);
    if let Some(bytes) = request_bytes {
        metrics::histogram!(
            "registry_http_request_size_bytes",
            "handler" => handler,
            "method" => method
        )
        .record(bytes as f64);
    }
    if handler == "blob_get" {
        metrics::counter!("berth_blob_bytes_sent_total").increment(response_bytes);
    }
}

fn method_label(method: &http::Method) -> &'static str {
    match method.as_str() {
        "GET" => "get",
        "HEAD" => "head",
        "PUT" => "put",
        "POST" => "post",
        "PATCH" => "patch",
        "DELETE" => "delete",
        "OPTIONS" => "options",
        _ => "other",
    }
}

/// Status codes as static labels (no allocation per request for the usual ones).
fn status_label(status: u16) -> &'static str {
    match status {
        200 => "200",
        201 => "201",
        202 => "202",
        204 => "204",
        206 => "206",
        301 => "301",
        302 => "302",
        304 => "304",
        307 => "307",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        409 => "409",
        413 => "413",
        416 => "416",
        429 => "429",
        431 => "431",
        500 => "500",
        502 => "502",
        503 => "503",
        507 => "507",
        s if s < 200 => "1xx",
        s if s < 300 => "2xx",
        s if s < 400 => "3xx",
        s if s < 500 => "4xx",
        _ => "5xx",
    }
}
