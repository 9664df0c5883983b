//! One structured log line and one set of metrics per request, written when the response
//! has been sent.
//!
//! A blob download's response is returned long before its last byte leaves, so the line is
//! written by the response body itself: when it ends (`outcome=complete`) or when it is
//! dropped early because the client went away (`outcome=aborted`). It carries the method,
//! path, status, bytes sent, duration and request id; for server errors, the cause.
//! Query strings and headers are not logged: nothing a client sends as a secret can end up in
//! the log.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use berth_registry::activity::{ClientActivity, Serving};
use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode};
use http_body::{Body as HttpBody, Frame, SizeHint};
use tracing::Instrument;

use crate::error_response::ErrorCause;
use crate::operation::{Operation, ParsedOperation};
use crate::urls::ConnectionInfo;

const REQUEST_ID: &str = "x-request-id";

/// A request id from the client (a proxy's) if it is sane, else a fresh one.
fn request_id(request: &Request) -> String {
    request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| {
            !id.is_empty()
                && id.len() <= 128
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
        })
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string())
}

/// The request's id, in its extensions for handlers (events carry it).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Continues the caller's trace when the request carries W3C `traceparent`/`tracestate`
/// headers (a proxy or a client that traces). The propagator is installed only when traces
/// are exported; without it, or without the headers, the request starts its own trace.
fn continue_remote_trace(span: &tracing::Span, headers: &http::HeaderMap) {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    if !headers.contains_key("traceparent") {
        return;
    }
    let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&opentelemetry_http::HeaderExtractor(headers))
    });
    // Fails only when no OpenTelemetry layer records the span: nothing to continue then.
    let _ = span.set_parent(parent);
}

/// The trace id of `span`, if an OpenTelemetry layer is recording it.
fn trace_id(span: &tracing::Span) -> Option<String> {
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context
        .is_valid()
        .then(|| span_context.trace_id().to_string())
}

/// A request being answered: in the metrics' gauge, and in what the collector yields to.
struct InFlight {
    _serving: Serving,
}

impl InFlight {
    fn start(activity: &Arc<ClientActivity>) -> InFlight {
        crate::metrics::IN_FLIGHT.increment(1.0);
        InFlight {
            _serving: activity.begin(),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        crate::metrics::IN_FLIGHT.decrement(1.0);
    }
}

/// The handler label of a request that is not a `/v2/` operation.
fn route_name(path: &str) -> &'static str {
    match path {
        "/token" | "/auth/certificate.pem" => "token",
        "/healthz" | "/readyz" => "health",
        "/metrics" => "metrics",
        p if p.starts_with("/api/") => "admin",
        p if p.starts_with("/v2") => crate::operation::INVALID,
        _ => "web",
    }
}

/// The middleware: tags the request with an id, and hands the response body a record to
/// log (when `log` is set) and to count.
pub async fn observe_request(
    log: bool,
    activity: Arc<ClientActivity>,
    mut request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let id = request_id(&request);
    request.extensions_mut().insert(RequestId(id.clone()));
    // A `/v2/` request is parsed into its operation here, once: the span, the log line and
    // the metrics are named after it, and the handler takes it from the extensions.
    let operation = request
        .uri()
        .path()
        .starts_with("/v2")
        .then(|| Operation::parse(request.method(), request.uri().path()));
    let handler = match &operation {
        Some(Ok(operation)) => operation.name(),
        Some(Err(_)) => crate::operation::INVALID,
        None => route_name(request.uri().path()),
    };
    let repository = match &operation {
        Some(Ok(operation)) => operation.repository().map(|r| r.to_string()),
        _ => None,
    };
    if let Some(Ok(operation)) = operation {
        request.extensions_mut().insert(ParsedOperation(operation));
    }
    let request_bytes = request
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let record = AccessRecord {
        method: request.method().clone(),
        path: request.uri().path().to_string(),
        client: request
            .extensions()
            .get::<ConnectionInfo>()
            .map(|c| c.peer.ip().to_string())
            .unwrap_or_default(),
        request_id: id.clone(),
        started,
        status: StatusCode::OK,
        cause: None,
        trace_id: None,
        handler,
        request_bytes,
        log,
        _in_flight: InFlight::start(&activity),
    };
    let span = tracing::info_span!(
        "request",
        otel.name = record.handler,
        otel.kind = "server",
        request_id = %id,
        http.request.method = %record.method,
        url.path = %record.path,
        operation = handler,
        repository = repository,
        http.response.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    continue_remote_trace(&span, request.headers());
    let trace_id = trace_id(&span);
    let mut response = next.run(request).instrument(span.clone()).await;
    span.record(
        "http.response.status_code",
        i64::from(response.status().as_u16()),
    );
    if response.status().is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    let record = AccessRecord {
        status: response.status(),
        cause: response
            .extensions()
            .get::<ErrorCause>()
            .map(|c| c.0.clone()),
        trace_id,
        ..record
    };
    let (parts, body) = response.into_parts();
    if body.is_end_stream() {
        // Nothing to send (HEAD, 201, errors without body); the server may never poll it.
        record.write(0, "complete");
        return Response::from_parts(parts, body);
    }
    let expected = body.size_hint().exact().or_else(|| {
        parts
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
    });
    let logged = LoggedBody {
        inner: body,
        sent: 0,
        expected,
        record: Some(record),
    };
    Response::from_parts(parts, Body::new(logged))
}

struct AccessRecord {
    method: Method,
    path: String,
    client: String,
    request_id: String,
    started: Instant,
    status: StatusCode,
    cause: Option<String>,
    /// The OpenTelemetry trace the request belongs to, when traces are exported.
    trace_id: Option<String>,
    /// The `/v2/` operation, or what else the request was for (`token`, `admin`, ...).
    handler: &'static str,
    request_bytes: Option<u64>,
    /// Whether to write the access log line (metrics are recorded regardless).
    log: bool,
    _in_flight: InFlight,
}

impl AccessRecord {
    fn write(self, bytes: u64, outcome: &'static str) {
        let elapsed = self.started.elapsed().as_secs_f64();
        let status = self.status.as_u16();
        crate::metrics::record_request(
            self.handler,
            &self.method,
            status,
            elapsed,
            self.request_bytes,
            bytes,
        );
        if !self.log {
            return;
        }
        let duration_ms = elapsed * 1000.0;
        macro_rules! line {
            ($level:ident) => {
                tracing::$level!(
                    target: "berth::access",
                    method = %self.method,
                    path = %self.path,
                    operation = self.handler,
                    status,
                    bytes,
                    duration_ms = format_args!("{duration_ms:.3}"),
                    request_id = %self.request_id,
                    trace_id = self.trace_id.as_deref(),
                    client = %self.client,
                    outcome,
                    error = self.cause.as_deref(),
                    "request"
                )
            };
        }
        if status >= 500 {
            line!(error);
        } else {
            line!(info);
        }
    }
}

pin_project_lite::pin_project! {
    /// A response body that counts what it sends and writes the access log line at its end.
    struct LoggedBody {
        #[pin]
        inner: Body,
        sent: u64,
        // The Content-Length: a server may drop a body once that much is sent, without
        // polling it to its end.
        expected: Option<u64>,
        record: Option<AccessRecord>,
    }

    impl PinnedDrop for LoggedBody {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(record) = this.record.take() {
                let outcome = if Some(*this.sent) == *this.expected { "complete" } else { "aborted" };
                record.write(*this.sent, outcome);
            }
        }
    }
}

impl HttpBody for LoggedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        match &frame {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    *this.sent += data.len() as u64;
                }
            }
            Some(Err(_)) => {
                if let Some(record) = this.record.take() {
                    record.write(*this.sent, "failed");
                }
            }
            None => {
                if let Some(record) = this.record.take() {
                    record.write(*this.sent, "complete");
                }
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
