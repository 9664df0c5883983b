//! Metrics and traces with real consumers: `/metrics` passes `promtool check metrics`, a real
//! Prometheus server scrapes berth and answers a PromQL query with the push count, and an
//! OTLP/HTTP receiver started here gets one span per request, named after the operation, with
//! storage and database calls as children, the trace id in the access log, and a caller's
//! `traceparent` continued.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;

use crate::support::push::push_image;
use crate::support::{Berth, berth_cli_output, client, free_port, tool};

async fn metrics_text(berth: &Berth) -> String {
    let response = client().get(berth.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    response.text().await.unwrap()
}

/// The value of the first sample of `metric` whose labels contain every one of `labels`.
fn sample(text: &str, metric: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find(|line| {
            line.starts_with(metric)
                && line[metric.len()..].starts_with(['{', ' '])
                && labels.iter().all(|l| line.contains(l))
        })
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

/// berth with its own authentication, an administrator `root` (password `root password`)
/// for the admin API's job runs, and metrics readable without credentials.
fn berth_with_root(env: &[(&str, &str)]) -> (Berth, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    let output = berth_cli_output(
        data.path(),
        &["user", "add", "root", "--admin", "--password-stdin"],
        Some("root password"),
    );
    assert!(output.status.success());
    let mut builder = Berth::builder()
        .env("REGISTRY_AUTH", "berth")
        .env("BERTH_METRICS_OPEN", "true")
        .data(data.path());
    for (key, value) in env {
        builder = builder.env(key, value);
    }
    (builder.start(), data)
}

#[tokio::test]
async fn metrics_count_requests_by_operation_and_pass_promtool() {
    let berth = Berth::start();
    let client = client();
    push_image(&client, &berth, "metrics/app", "v1", 1, 2).await;
    let manifest = berth.url("/v2/metrics/app/manifests/v1");
    for _ in 0..3 {
        let response = client
            .get(&manifest)
            .header("accept", "application/vnd.oci.image.manifest.v1+json")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let text = metrics_text(&berth).await;
    let gets = sample(
        &text,
        "registry_http_requests_total",
        &["handler=\"manifest_get\"", "code=\"200\"", "method=\"get\""],
    );
    assert_eq!(gets, Some(3.0), "{text}");
    assert_eq!(
        sample(
            &text,
            "registry_http_requests_total",
            &["handler=\"manifest_put\"", "code=\"201\""]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "berth_events_total", &["kind=\"manifest.pushed\""]),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "berth_events_total", &["kind=\"manifest.pulled\""]),
        Some(3.0)
    );
    assert!(
        sample(
            &text,
            "registry_http_request_duration_seconds_count",
            &["handler=\"blob_head\""]
        )
        .is_none(),
        "operations that did not happen have no series"
    );
    // The image's three blobs were pushed whole (`POST ?digest=`): written and committed in
    // one storage call each.
    assert!(
        sample(
            &text,
            "berth_storage_operation_duration_seconds_count",
            &["action=\"write_whole_upload\"", "backend=\"filesystem\""]
        )
        .unwrap()
            >= 3.0
    );
    assert!(sample(&text, "berth_build_info", &[]).is_some());
    assert!(sample(&text, "process_resident_memory_bytes", &[]).unwrap() > 0.0);

    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &text).unwrap();
    let output = Command::new(tool("promtool"))
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(file.path()).unwrap())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn metrics_need_an_administrator_when_authentication_is_on() {
    let berth = Berth::builder().env("REGISTRY_AUTH", "berth").start();
    let response = client().get(berth.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert!(response.headers().contains_key("www-authenticate"));
}

#[tokio::test]
async fn metrics_show_uploads_in_progress_connections_and_auth_decisions() {
    let (berth, _data) = berth_with_root(&[]);
    let client = client();
    let started = client
        .post(berth.url("/v2/metrics/app/blobs/uploads/"))
        .basic_auth("root", Some("root password"))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 202);
    let refused = client
        .get(berth.url("/v2/"))
        .basic_auth("root", Some("not the password"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    // The store's gauges are a job's work: run it now rather than wait for its interval.
    let run = client
        .post(berth.url("/api/v1/jobs/store-gauges/run"))
        .basic_auth("root", Some("root password"))
        .send()
        .await
        .unwrap();
    assert_eq!(run.status(), 200, "{}", run.text().await.unwrap());
    // Histogram samples are folded into their buckets by a job, not only when scraped
    // (memory stays bounded when nobody scrapes), and none are lost on the way.
    let upkeep = client
        .post(berth.url("/api/v1/jobs/metrics-upkeep/run"))
        .basic_auth("root", Some("root password"))
        .send()
        .await
        .unwrap();
    assert_eq!(upkeep.status(), 200, "{}", upkeep.text().await.unwrap());

    let text = metrics_text(&berth).await;
    assert!(
        sample(
            &text,
            "registry_http_request_duration_seconds_count",
            &["handler=\"upload_start\""]
        )
        .is_some_and(|n| n >= 1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "berth_uploads_in_progress", &[]),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "berth_database_connections",
            &["pool=\"writer\"", "state=\"max\""]
        ),
        Some(1.0),
        "SQLite writes through one connection: {text}"
    );
    assert!(
        sample(
            &text,
            "berth_database_connections",
            &["pool=\"reader\"", "state=\"max\""]
        )
        .unwrap()
            >= 1.0
    );
    assert!(
        sample(
            &text,
            "berth_auth_decisions_total",
            &["action=\"login\"", "outcome=\"failed\""]
        )
        .unwrap()
            >= 1.0,
        "{text}"
    );
    assert!(
        sample(
            &text,
            "berth_auth_decisions_total",
            &["action=\"push\"", "outcome=\"allowed\""]
        )
        .unwrap()
            >= 1.0,
        "{text}"
    );
}

struct Prometheus {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// A real Prometheus server scraping `target` every second.
    fn scraping(target: &str) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: berth\n    static_configs:\n      - targets: ['{target}']\n"
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).unwrap();
        let port = free_port();
        let child = Command::new(tool("prometheus"))
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus starts");
        Prometheus {
            child,
            port,
            _dir: dir,
        }
    }

    async fn query(&self, promql: &str) -> Option<f64> {
        let response = client()
            .get(format!("http://127.0.0.1:{}/api/v1/query", self.port))
            .query(&[("query", promql)])
            .send()
            .await
            .ok()?;
        let body: serde_json::Value = response.json().await.ok()?;
        body["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|v| v.parse().ok())
    }
}

#[tokio::test]
async fn a_prometheus_server_scrapes_the_push_count() {
    let berth = Berth::start();
    let client = client();
    for (i, tag) in ["a", "b", "c"].into_iter().enumerate() {
        push_image(&client, &berth, "scraped/app", tag, i as u64, 1).await;
    }
    let prometheus = Prometheus::scraping(&berth.host());
    let deadline = Instant::now() + Duration::from_secs(60);
    let query = r#"sum(berth_events_total{kind="manifest.pushed"})"#;
    loop {
        if let Some(value) = prometheus.query(query).await {
            assert_eq!(value, 3.0);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never answered {query}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let up = prometheus.query(r#"up{job="berth"}"#).await;
    assert_eq!(up, Some(1.0), "the scrape itself succeeded");
}

/// An OTLP/HTTP (JSON) trace receiver: keeps every span it is sent.
#[derive(Clone, Default)]
struct SpanReceiver {
    spans: Arc<Mutex<Vec<serde_json::Value>>>,
}

async fn receive_traces(State(receiver): State<SpanReceiver>, body: Bytes) -> &'static str {
    let request: serde_json::Value = serde_json::from_slice(&body).expect("OTLP JSON");
    for resource in request["resourceSpans"].as_array().into_iter().flatten() {
        for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
            for span in scope["spans"].as_array().into_iter().flatten() {
                let mut span = span.clone();
                span["resource"] = resource["resource"].clone();
                receiver.spans.lock().unwrap().push(span);
            }
        }
    }
    "{}"
}

async fn start_span_receiver() -> (SpanReceiver, SocketAddr) {
    let receiver = SpanReceiver::default();
    let app = Router::new()
        .route("/v1/traces", post(receive_traces))
        .with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (receiver, addr)
}

fn attribute<'a>(span: &'a serde_json::Value, key: &str) -> Option<&'a serde_json::Value> {
    span["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| &a["value"])
}

// Multi-threaded: the receiver must keep answering while this thread waits for berth to exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_exported_as_otlp_spans_with_storage_and_database_children() {
    let (receiver, addr) = start_span_receiver().await;
    let mut berth = Berth::builder()
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &format!("http://{addr}"))
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
        .env("OTEL_SERVICE_NAME", "berth-under-test")
        .start();
    let client = client();
    push_image(&client, &berth, "traced/app", "v1", 7, 1).await;
    // Shutting down sends the spans still buffered.
    assert!(berth.terminate().success());

    let spans = receiver.spans.lock().unwrap().clone();
    let put = spans
        .iter()
        .find(|s| s["name"] == "manifest_put")
        .unwrap_or_else(|| panic!("a manifest_put span among {spans:#?}"));
    assert_eq!(
        attribute(put, "repository").unwrap()["stringValue"],
        "traced/app"
    );
    let status = &attribute(put, "http.response.status_code").unwrap()["intValue"];
    assert!(
        status == "201" || status == 201,
        "status attribute in {put:#}"
    );
    assert!(
        put["resource"]["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["key"] == "service.name" && a["value"]["stringValue"] == "berth-under-test")
    );
    // An upload's storage work is a child of its request's span.
    let finish = spans
        .iter()
        .find(|s| s["name"] == "upload_start")
        .expect("an upload_start span");
    let children: Vec<&serde_json::Value> = spans
        .iter()
        .filter(|s| s["parentSpanId"] == finish["spanId"] && s["traceId"] == finish["traceId"])
        .collect();
    assert!(
        children
            .iter()
            .any(|s| s["name"] == "create_upload" || s["name"] == "write_upload"),
        "storage spans under {finish:#?}: {children:#?}"
    );
    // So is its database work, named after the store's method.
    let put_children: Vec<&serde_json::Value> = spans
        .iter()
        .filter(|s| s["parentSpanId"] == put["spanId"] && s["traceId"] == put["traceId"])
        .collect();
    let database = put_children
        .iter()
        .find(|s| s["name"] == "put_manifest")
        .unwrap_or_else(|| panic!("a put_manifest span under {put:#?}: {put_children:#?}"));
    assert_eq!(
        attribute(database, "db.system").unwrap()["stringValue"],
        "sqlite"
    );
    // The access log line names the trace.
    let trace_id = put["traceId"].as_str().unwrap();
    assert!(
        berth
            .log_text()
            .contains(&format!("\"trace_id\":\"{trace_id}\"")),
        "trace id {trace_id} in the access log"
    );
}

#[tokio::test]
async fn database_calls_are_timed_by_operation() {
    let berth = Berth::start();
    let client = client();
    push_image(&client, &berth, "timed/app", "v1", 3, 1).await;
    let missing = client
        .get(berth.url("/v2/timed/app/manifests/nope"))
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let text = metrics_text(&berth).await;
    for operation in ["put_manifest", "manifest", "record_committed_blob"] {
        assert!(
            sample(
                &text,
                "berth_database_operation_duration_seconds_count",
                &[&format!("operation=\"{operation}\""), "outcome=\"ok\""]
            )
            .is_some_and(|n| n >= 1.0),
            "{operation} timed: {text}"
        );
    }
    // A manifest that is not there is an answer, not a database error.
    assert!(
        sample(
            &text,
            "berth_database_operation_duration_seconds_count",
            &["outcome=\"error\""]
        )
        .is_none(),
        "{text}"
    );
}

#[tokio::test]
async fn watched_repositories_report_the_storage_they_hold() {
    // Jobs are run through the admin API, which needs berth's own authentication.
    let (berth, _data) = berth_with_root(&[("BERTH_METRICS_REPOSITORIES", "watched/*")]);
    let mut root = reqwest::header::HeaderMap::new();
    root.insert(
        reqwest::header::AUTHORIZATION,
        // root:root password
        reqwest::header::HeaderValue::from_static("Basic cm9vdDpyb290IHBhc3N3b3Jk"),
    );
    let client = reqwest::Client::builder()
        .default_headers(root)
        .build()
        .unwrap();
    let pushed = push_image(&client, &berth, "watched/app", "v1", 11, 2).await;
    push_image(&client, &berth, "other/app", "v1", 12, 2).await;
    let run = client
        .post(berth.url("/api/v1/jobs/storage-gauges/run"))
        .send()
        .await
        .unwrap();
    assert_eq!(run.status(), 200, "{}", run.text().await.unwrap());
    let text = metrics_text(&berth).await;
    let held = sample(
        &text,
        "berth_repository_storage_bytes",
        &["repository=\"watched/app\""],
    );
    let blob_bytes: usize = pushed.blobs.iter().map(|(_, data)| data.len()).sum();
    assert_eq!(held, Some(blob_bytes as f64), "{text}");
    assert!(
        sample(
            &text,
            "berth_repository_storage_bytes",
            &["repository=\"other/app\""]
        )
        .is_none(),
        "only watched repositories get a series: {text}"
    );
    let total = sample(&text, "berth_storage_bytes", &[]).unwrap();
    assert!(total > held.unwrap(), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callers_traceparent_is_continued() {
    let (receiver, addr) = start_span_receiver().await;
    let mut berth = Berth::builder()
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &format!("http://{addr}"))
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
        .start();
    let trace = "0af7651916cd43dd8448eb211c80319c";
    let parent = "b7ad6b7169203331";
    let response = client()
        .get(berth.url("/v2/_catalog"))
        .header("traceparent", format!("00-{trace}-{parent}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let untraced = client().get(berth.url("/v2/")).send().await.unwrap();
    assert_eq!(untraced.status(), 200);
    assert!(berth.terminate().success());

    let spans = receiver.spans.lock().unwrap().clone();
    let catalog = spans
        .iter()
        .find(|s| s["name"] == "catalog")
        .unwrap_or_else(|| panic!("a catalog span among {spans:#?}"));
    assert_eq!(catalog["traceId"], trace, "{catalog:#}");
    assert_eq!(catalog["parentSpanId"], parent, "{catalog:#}");
    let base = spans
        .iter()
        .find(|s| s["name"] == "base")
        .unwrap_or_else(|| panic!("a base span among {spans:#?}"));
    assert_ne!(
        base["traceId"], trace,
        "a request without traceparent starts its own trace"
    );
    assert!(
        base["parentSpanId"].as_str().is_none_or(str::is_empty),
        "{base:#}"
    );
}
