//! OpenTelemetry traces over OTLP/HTTP, off unless the standard `OTEL_*` environment asks
//! for them: `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`) turns them on;
//! `OTEL_EXPORTER_OTLP_PROTOCOL` is `http/protobuf` (default) or `http/json`;
//! `OTEL_SERVICE_NAME` names the service (default `berth`); `OTEL_TRACES_EXPORTER=none`
//! turns them off again; `OTEL_TRACES_SAMPLER(_ARG)` sample. Each request is a span named
//! after its operation (`manifest_get`), with the repository and status; storage calls are
//! its children.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Subscriber;
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

/// Keeps the exporter alive; dropping it sends the spans still buffered.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    pub fn off() -> Telemetry {
        Telemetry { provider: None }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("berth: sending the last traces failed: {e}");
        }
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The tracing layer that exports spans, when the environment asks for it.
pub fn layer<S>() -> Result<(Option<impl Layer<S>>, Telemetry), String>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let wanted = env("OTEL_EXPORTER_OTLP_ENDPOINT").is_some()
        || env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some();
    let disabled = env("OTEL_TRACES_EXPORTER").is_some_and(|e| e == "none");
    if !wanted || disabled {
        return Ok((None, Telemetry::off()));
    }
    let protocol = match env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .or_else(|| env("OTEL_EXPORTER_OTLP_PROTOCOL"))
        .as_deref()
    {
        None | Some("http/protobuf") => Protocol::HttpBinary,
        Some("http/json") => Protocol::HttpJson,
        Some(other) => {
            return Err(format!(
                "OTEL_EXPORTER_OTLP_PROTOCOL={other}: berth exports traces over OTLP/HTTP \
                 (http/protobuf or http/json), not gRPC"
            ));
        }
    };
    // The exporter reads the endpoint, headers and timeout from the OTEL_* variables.
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(protocol)
        .build()
        .map_err(|e| format!("setting up the OTLP trace exporter: {e}"))?;
    let service = env("OTEL_SERVICE_NAME").unwrap_or_else(|| "berth".to_string());
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder()
                .with_service_name(service)
                .with_attribute(opentelemetry::KeyValue::new(
                    "service.version",
                    env!("CARGO_PKG_VERSION"),
                ))
                .build(),
        )
        .build();
    let tracer = provider.tracer("berth");
    opentelemetry::global::set_tracer_provider(provider.clone());
    // W3C trace context: a request that carries `traceparent` joins its caller's trace.
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let layer = tracing_opentelemetry::layer().with_tracer(tracer);
    Ok((
        Some(layer),
        Telemetry {
            provider: Some(provider),
        },
    ))
}
