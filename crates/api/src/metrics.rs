//! Prometheus metrics.
//!
//! Recording goes through the `metrics` facade from wherever something happens (the request
//! observer below, the job runner, webhook delivery, the access service); the binary installs
//! the Prometheus recorder and `GET /metrics` renders it. Label values are bounded: operation
//! names, status codes, job and webhook names, and repositories only when an operator lists
//! them (`RegistryMetrics::repositories`).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, PoisonError, RwLock};

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use berth_auth::Mode;
use berth_oci::Pattern;
use berth_registry::events::{Event, EventKind, EventSink};
use http::{HeaderValue, StatusCode, header};
use metrics::{Counter, Gauge, Histogram};
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
    repositories: Vec<Pattern>,
    /// `berth_events_total` by kind, registered once (a manifest pull is an event).
    events: HashMap<EventKind, Counter>,
    bytes_pushed: Counter,
    bytes_requested: Counter,
}

impl RegistryMetrics {
    /// Registers its series in the installed recorder: build it after installing one.
    pub fn new(repositories: Vec<Pattern>) -> RegistryMetrics {
        RegistryMetrics {
            repositories,
            events: EventKind::ALL
                .into_iter()
                .map(|kind| {
                    let counter = metrics::counter!("berth_events_total", "kind" => kind.as_str());
                    (kind, counter)
                })
                .collect(),
            bytes_pushed: metrics::counter!("berth_blob_bytes_pushed_total"),
            bytes_requested: metrics::counter!("berth_blob_bytes_requested_total"),
        }
    }
}

impl EventSink for RegistryMetrics {
    fn publish(&self, event: &Event) {
        let kind = event.kind.as_str();
        match self.events.get(&event.kind) {
            Some(counter) => counter.increment(1),
            None => metrics::counter!("berth_events_total", "kind" => kind).increment(1),
        }
        let size = event.size.unwrap_or(0);
        match event.kind {
            EventKind::BlobPushed => self.bytes_pushed.increment(size),
            EventKind::BlobPulled => self.bytes_requested.increment(size),
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

/// The series one kind of finished request is recorded in, registered once and kept: the
/// facade's macros build a labelled key and look it up in the recorder on every call, which
/// made metrics the largest part of what a blob HEAD costs beyond the database read.
struct RequestSeries {
    requests: Counter,
    duration: Histogram,
    response_size: Histogram,
    request_size: Histogram,
}

/// Operation (`handler`), method and status code labels: all static and few, so the map stays
/// small (operations x methods x the status codes actually answered).
type SeriesKey = (&'static str, &'static str, &'static str);

static REQUEST_SERIES: LazyLock<RwLock<HashMap<SeriesKey, RequestSeries>>> =
    LazyLock::new(Default::default);

/// Requests being answered now; registered at the first request, after the recorder is
/// installed (berth installs it before it listens).
pub(crate) static IN_FLIGHT: LazyLock<Gauge> =
    LazyLock::new(|| metrics::gauge!("registry_http_in_flight_requests"));

static BLOB_BYTES_SENT: LazyLock<Counter> =
    LazyLock::new(|| metrics::counter!("berth_blob_bytes_sent_total"));

impl RequestSeries {
    fn register((handler, method, code): SeriesKey) -> RequestSeries {
        RequestSeries {
            requests: metrics::counter!(
                "registry_http_requests_total",
                "handler" => handler,
                "method" => method,
                "code" => code
            ),
            duration: metrics::histogram!(
                "registry_http_request_duration_seconds",
                "handler" => handler,
                "method" => method
            ),
            response_size: metrics::histogram!(
                "registry_http_response_size_bytes",
                "handler" => handler,
                "method" => method
            ),
            request_size: metrics::histogram!(
                "registry_http_request_size_bytes",
                "handler" => handler,
                "method" => method
            ),
        }
    }

    fn record(&self, duration_seconds: f64, request_bytes: Option<u64>, response_bytes: u64) {
        self.requests.increment(1);
        self.duration.record(duration_seconds);
        self.response_size.record(response_bytes as f64);
        if let Some(bytes) = request_bytes {
            self.request_size.record(bytes as f64);
        }
    }
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
    let key = (handler, method_label(method), status_label(status));
    let known = REQUEST_SERIES
        .read()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(series) = known.get(&key) {
        series.record(duration_seconds, request_bytes, response_bytes);
    } else {
        drop(known);
        REQUEST_SERIES
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key)
            .or_insert_with(|| RequestSeries::register(key))
            .record(duration_seconds, request_bytes, response_bytes);
    }
    if handler == "blob_get" {
        BLOB_BYTES_SENT.increment(response_bytes);
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
