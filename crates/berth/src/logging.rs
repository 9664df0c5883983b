//! Log output: human-readable text by default, one JSON object per line on request, with
//! registry:2's `log.fields` added to every line.

use std::fmt;
use std::io::IsTerminal;

use berth_config::{LogConfig, LogFormat};
use tracing::Subscriber;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::telemetry::{self, Telemetry};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::fmt::format::{self, FormatEvent, FormatFields, Writer};
use tracing_subscriber::registry::LookupSpan;

/// Starts logging, and trace export when the environment asks for it (see `telemetry`).
/// `RUST_LOG`, when set, overrides the configured level (for debugging one module without
/// reconfiguring). Keep the returned guard until exit: dropping it sends the last spans.
pub fn init(config: &LogConfig) -> Telemetry {
    let default = format!(
        "{},sqlx=warn,hyper=warn,h2=warn,rustls=warn,opentelemetry=warn,reqwest=warn",
        config.level.as_str()
    );
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let fields = StaticFields::new(config);
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stdout)
        .with_ansi(std::io::stdout().is_terminal());
    let fmt = match config.formatter {
        LogFormat::Json => {
            let inner = format::json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(false);
            fmt.event_format(WithStaticFields { inner, fields }).boxed()
        }
        LogFormat::Text => {
            let inner = format::format().with_target(false);
            fmt.event_format(WithStaticFields { inner, fields }).boxed()
        }
    };
    let (traces, telemetry) = match telemetry::layer() {
        Ok(layer) => layer,
        Err(e) => {
            eprintln!("berth: {e}; traces are not exported");
            (None, Telemetry::off())
        }
    };
    // Spans of berth's own code only: a request's span and its storage and database calls,
    // not every poll of hyper or sqlx.
    let traces = traces.map(|layer| {
        layer.with_filter(tracing_subscriber::filter::filter_fn(|metadata| {
            metadata.target().starts_with("berth")
        }))
    });
    tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(traces)
        .init();
    telemetry
}

/// `log.fields`, pre-rendered for both formats.
struct StaticFields {
    /// `"k":"v",` pairs to splice after a JSON line's opening brace.
    json: String,
    /// ` k=v` pairs to append to a text line.
    text: String,
}

impl StaticFields {
    fn new(config: &LogConfig) -> Self {
        let mut json = String::new();
        let mut text = String::new();
        for (key, value) in &config.fields {
            json.push_str(&serde_json::to_string(key).expect("strings serialize"));
            json.push(':');
            json.push_str(&serde_json::to_string(value).expect("strings serialize"));
            json.push(',');
            text.push_str(&format!(" {key}={value:?}"));
        }
        StaticFields { json, text }
    }
}

struct WithStaticFields<F> {
    inner: F,
    fields: StaticFields,
}

impl<S, N, F> FormatEvent<S, N> for WithStaticFields<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> fmt::Result {
        if self.fields.json.is_empty() && self.fields.text.is_empty() {
            return self.inner.format_event(ctx, writer, event);
        }
        let mut line = String::new();
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        let line = line.trim_end_matches('\n');
        match line.strip_prefix('{') {
            // A JSON object: the static fields go first.
            Some(rest) => writeln!(writer, "{{{}{rest}", self.fields.json),
            None => writeln!(writer, "{line}{}", self.fields.text),
        }
    }
}
