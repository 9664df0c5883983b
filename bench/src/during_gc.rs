//! `berth-bench --during-gc`: what an online garbage collection costs the clients pushing
//! and pulling at the same time (issue 11's goal: at most 20% slower). berth alone (the
//! official registry cannot collect while it serves). Each repetition leaves garbage (blobs
//! no manifest references), measures the client workloads with the collector idle, then runs
//! `berth gc` as a second process on the same data directory (as an operator or a cron job
//! would, with `gc.grace` 0 so that it has the garbage to delete) and measures the same
//! workloads while it runs. Afterwards every image pushed during the run must still pull.
//! With `--gc-in-server` the serving instance's own collector runs instead, started through
//! the admin API, as a scheduled collection would.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, StatusCode};
use serde::Serialize;

use crate::Result;
use crate::api;
use crate::client::{self, Conn, LoadSpec, RequestSpec, header};
use crate::data::{Blob, Image, Source, sha256_digest};
use crate::report::cell;
use crate::servers::{self, Profile, Server};
use crate::stats::Summary;
use crate::workloads::{size_name, thousands};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const REPO: &str = "bench/gc";

/// Which collector runs while the clients are measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Collector {
    /// `berth gc`, a second process on the same database and data directory (an operator's
    /// cron job; on SQLite two processes then take turns with one write lock).
    Process,
    /// The serving instance's own collector, started with `POST /api/v1/gc` (berth with its
    /// own authentication: the admin API needs an administrator), sharing the server's
    /// database connections, as scheduled collections run.
    Server,
}

#[derive(Debug, Clone, Serialize)]
pub struct Params {
    pub collector: Collector,
    pub reps: usize,
    /// Unreferenced blobs left for each collection.
    pub garbage: usize,
    pub garbage_size: usize,
    pub conns: usize,
    pub duration_s: f64,
    /// Images pushed in each measurement, each of `push_layers` fresh layers.
    pub pushes: usize,
    pub push_layers: usize,
    pub push_layer_size: usize,
    pub pull_size: usize,
}

/// Before a measurement window and its lone push: no client has written for this long, so
/// that the server's last write (pull statistics are written every 2 s) is older than the
/// window (`berth gc` starts after it).
const QUIET: Duration = Duration::from_millis(2500);
/// From the start of a window (the start of the collection) to its lone push: the collector
/// is marking by then.
const LONE_PUSH_AFTER: Duration = Duration::from_secs(2);

/// One measurement window's figures.
#[derive(Debug, Clone, Serialize)]
struct Window {
    /// One image pushed after a spell without client writes: on SQLite, how long the first
    /// writer waits while the collector has seen no other writer for a while.
    lone_push_ms: f64,
    manifest_get_rps: f64,
    manifest_get_p99_ms: f64,
    push_mb_s: f64,
    pull_mb_s: f64,
}

/// Reads one figure of a window.
type Pick = fn(&Window) -> f64;

/// One collection that ran during a measurement.
#[derive(Debug, Clone, Serialize)]
pub struct Collection {
    pub seconds: f64,
    /// Whether it was still running when the measurement window ended (else the window was
    /// partly idle and the figures flatter the collector).
    pub outlasted_the_window: bool,
    /// The last lines `berth gc` printed: what it freed.
    pub summary: String,
}

#[derive(Debug, Serialize)]
pub struct Row {
    pub measure: String,
    pub idle: Summary,
    pub during_gc: Summary,
    /// Median during GC against median idle, in percent (negative: slower).
    pub change_percent: f64,
    pub higher_is_better: bool,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub params: Params,
    pub rows: Vec<Row>,
    pub collections: Vec<Collection>,
    pub images_checked: usize,
}

pub async fn run(params: &Params, berth_bin: &Path, work: &Path) -> Result<Report> {
    // The server and `berth gc` on one database: on PostgreSQL, the one `BERTH_DATABASE_URL`
    // names (the harness keeps its own BERTH_* variables from the servers otherwise).
    // No scheduled collection (due at once on a new database): the measured one is the only.
    let mut env = vec![("BERTH_GC_ENABLED".to_owned(), "false".to_owned())];
    env.extend(
        std::env::var("BERTH_DATABASE_URL").map(|url| ("BERTH_DATABASE_URL".to_owned(), url)),
    );
    let profile = match params.collector {
        Collector::Process => Profile::Open,
        Collector::Server => {
            env.push(("BERTH_GC_GRACE".to_owned(), "0s".to_owned()));
            Profile::Token
        }
    };
    let berth = servers::start_berth_with("berth", berth_bin, None, work, profile, &env).await?;
    let source = Source::new(params.pull_size.max(params.push_layer_size));
    let mut conn = Conn::connect(&berth.target()).await?;
    let small = Image::generate(&source, 1, 1024);
    api::push_image(&mut conn, REPO, "latest", &small).await?;
    let big = source.fresh_blob(params.pull_size);
    // The pulled blob is referenced, as an image's layer, so the collector keeps it.
    let pulled = Image::generate(&source, 0, 0);
    let pulled_manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": pulled.config.digest, "size": pulled.config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": big.digest, "size": big.len()}],
    });
    api::push_monolithic(&mut conn, REPO, big.data.clone(), &big.digest).await?;
    api::push_monolithic(
        &mut conn,
        REPO,
        pulled.config.data.clone(),
        &pulled.config.digest,
    )
    .await?;
    api::put_manifest(
        &mut conn,
        REPO,
        "big",
        Bytes::from(serde_json::to_vec(&pulled_manifest)?),
    )
    .await?;

    let mut idle = Vec::new();
    let mut during = Vec::new();
    let mut collections = Vec::new();
    let mut pushed = Vec::new();
    for rep in 0..params.reps {
        let started = Instant::now();
        leave_garbage(&berth, params, rep).await?;
        eprintln!(
            "berth-bench: repetition {}: {} unreferenced blobs left in {:.1} s",
            rep + 1,
            thousands(params.garbage),
            started.elapsed().as_secs_f64()
        );
        tokio::time::sleep(QUIET).await;
        idle.push(window(&berth, params, &source, &big, &mut pushed).await?);
        tokio::time::sleep(QUIET).await;
        let mut gc = Running::start(params.collector, berth_bin, &berth, work, rep).await?;
        let gc_started = Instant::now();
        let measured = window(&berth, params, &source, &big, &mut pushed).await;
        let outlasted = gc.is_running(&berth).await?;
        let summary = gc.finish(&berth, work, rep).await?;
        let seconds = gc_started.elapsed().as_secs_f64();
        during.push(measured?);
        berth.check_alive()?;
        eprintln!(
            "berth-bench: repetition {}: the collection took {seconds:.1} s{}: {summary}",
            rep + 1,
            if outlasted {
                ""
            } else {
                " (ended before the window)"
            }
        );
        collections.push(Collection {
            seconds,
            outlasted_the_window: outlasted,
            summary,
        });
    }

    // Nothing pushed during the run was lost: every image pulls back (on a new connection:
    // the first one has been idle for longer than the server keeps one open).
    let mut conn = Conn::connect(&berth.target()).await?;
    for (tag, image) in &pushed {
        api::check_manifest(&mut conn, REPO, tag, &image.manifest_digest).await?;
        for layer in &image.layers {
            api::check_blob(&mut conn, REPO, layer).await?;
        }
    }
    api::pull_blob(&mut conn, REPO, &big.digest, true).await?;

    let pick =
        |windows: &[Window], f: Pick| Summary::of(&windows.iter().map(f).collect::<Vec<_>>());
    let measures: [(String, Pick, bool); 5] = [
        (
            format!(
                "lone image push after a quiet spell, {} layers of {} (ms)",
                params.push_layers,
                size_name(params.push_layer_size)
            ),
            |w| w.lone_push_ms,
            false,
        ),
        (
            format!("manifest GET by tag, {} connections (req/s)", params.conns),
            |w| w.manifest_get_rps,
            true,
        ),
        (
            format!(
                "manifest GET by tag, {} connections, p99 (ms)",
                params.conns
            ),
            |w| w.manifest_get_p99_ms,
            false,
        ),
        (
            format!(
                "image push, {} layers of {} (MB/s)",
                params.push_layers,
                size_name(params.push_layer_size)
            ),
            |w| w.push_mb_s,
            true,
        ),
        (
            format!("pull of a {} blob (MB/s)", size_name(params.pull_size)),
            |w| w.pull_mb_s,
            true,
        ),
    ];
    let rows = measures
        .into_iter()
        .map(|(measure, f, higher_is_better)| {
            let (a, b) = (pick(&idle, f), pick(&during, f));
            let change = if higher_is_better {
                (b.median / a.median - 1.0) * 100.0
            } else {
                (a.median / b.median - 1.0) * 100.0
            };
            Row {
                measure,
                idle: a,
                during_gc: b,
                change_percent: change,
                higher_is_better,
            }
        })
        .collect();
    Ok(Report {
        params: params.clone(),
        rows,
        collections,
        images_checked: pushed.len(),
    })
}

/// `garbage` blobs of `garbage_size` bytes that no manifest references, pushed on several
/// connections.
async fn leave_garbage(berth: &Server, params: &Params, rep: usize) -> Result<()> {
    let size = params.garbage_size;
    api::for_each(
        berth.target(),
        16,
        0..params.garbage,
        StatusCode::CREATED,
        move |i| {
            let mut data = format!("garbage {rep} {i} ").into_bytes();
            data.resize(size.max(data.len()), b'.');
            let digest = sha256_digest(&data);
            (
                Method::POST,
                format!("/v2/{REPO}/blobs/uploads/?digest={digest}"),
                vec![],
                Bytes::from(data),
            )
        },
    )
    .await
}

/// A collection under way.
enum Running {
    Process(Child),
    /// The server's run of this id.
    Server(i64),
}

impl Running {
    async fn start(
        collector: Collector,
        berth_bin: &Path,
        berth: &Server,
        work: &Path,
        rep: usize,
    ) -> Result<Running> {
        match collector {
            Collector::Process => Ok(Running::Process(start_gc(
                berth_bin,
                &berth.data_dir,
                work,
                rep,
            )?)),
            Collector::Server => {
                let started =
                    admin(berth, Method::POST, "/api/v1/gc", StatusCode::ACCEPTED).await?;
                let run = started["run"]
                    .as_i64()
                    .ok_or_else(|| format!("POST /api/v1/gc answered {started}"))?;
                Ok(Running::Server(run))
            }
        }
    }

    async fn is_running(&mut self, berth: &Server) -> Result<bool> {
        match self {
            Running::Process(child) => Ok(child.try_wait()?.is_none()),
            Running::Server(run) => Ok(server_run(berth, *run).await?["status"] == "running"),
        }
    }

    /// Waits for the end of the collection: what it freed, or its failure as an error.
    async fn finish(self, berth: &Server, work: &Path, rep: usize) -> Result<String> {
        match self {
            Running::Process(mut child) => {
                let status = tokio::task::block_in_place(|| child.wait())?;
                let output = std::fs::read_to_string(work.join(format!("gc-{rep}.log")))?;
                if !status.success() {
                    return Err(format!("berth gc failed ({status}): {output}").into());
                }
                // Its summary line (after the progress lines, before the per-repository ones).
                Ok(output
                    .lines()
                    .find(|line| line.starts_with("freed"))
                    .unwrap_or_else(|| output.lines().last().unwrap_or_default())
                    .to_owned())
            }
            Running::Server(run) => loop {
                let view = server_run(berth, run).await?;
                match view["status"].as_str() {
                    Some("running") => tokio::time::sleep(Duration::from_millis(200)).await,
                    Some("finished") => {
                        let report = &view["report"];
                        // (Builds before the collector rested for clients do not say.)
                        let rested = match report["client_rest_ms"].as_u64() {
                            Some(ms) => format!(", resting {:.1} s for clients", ms as f64 / 1e3),
                            None => String::new(),
                        };
                        return Ok(format!(
                            "freed {} blobs, {} bytes (run {run} in the server{rested})",
                            report["blobs"], report["bytes"]
                        ));
                    }
                    _ => return Err(format!("the server's collection {run} ended: {view}").into()),
                }
            },
        }
    }
}

async fn server_run(berth: &Server, run: i64) -> Result<serde_json::Value> {
    admin(
        berth,
        Method::GET,
        &format!("/api/v1/gc/runs/{run}"),
        StatusCode::OK,
    )
    .await
}

/// An admin API request as the harness's administrator: its JSON answer.
async fn admin(
    berth: &Server,
    method: Method,
    path: &str,
    expect: StatusCode,
) -> Result<serde_json::Value> {
    let tokens = berth
        .tokens
        .as_ref()
        .ok_or("the admin API needs berth's own authentication")?;
    let mut conn = Conn::connect(&berth.target()).await?;
    let authorization = (http::header::AUTHORIZATION, tokens.basic());
    let body = if method == Method::POST {
        Bytes::from_static(b"{}")
    } else {
        Bytes::new()
    };
    let answer = conn
        .send(method.clone(), path, &[authorization], body)
        .await?
        .expect(expect, &format!("{method} {path}"))
        .await?
        .bytes()
        .await?;
    Ok(serde_json::from_slice(&answer).map_err(|e| format!("{method} {path}: {e}"))?)
}

/// `berth gc` on the served data directory, its output in `gc-<rep>.log`.
fn start_gc(berth_bin: &Path, data: &Path, work: &Path, rep: usize) -> Result<Child> {
    let log = std::fs::File::create(work.join(format!("gc-{rep}.log")))?;
    let mut command = Command::new(berth_bin);
    for (key, _) in std::env::vars() {
        // The database stays the server's (`BERTH_DATABASE_URL=postgres://...` runs both on
        // PostgreSQL).
        if (key.starts_with("REGISTRY_") || key.starts_with("BERTH_"))
            && key != "BERTH_DATABASE_URL"
        {
            command.env_remove(key);
        }
    }
    Ok(command
        .arg("gc")
        .arg("--data")
        .arg(data)
        .env("BERTH_GC_GRACE", "0s")
        .env("REGISTRY_LOG_LEVEL", "warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .map_err(|e| format!("starting berth gc: {e}"))?)
}

/// The client workloads, one after the other: a lone image push, a manifest GET load, image
/// pushes (remembered in `pushed` to be checked at the end), a blob pull.
async fn window(
    berth: &Server,
    params: &Params,
    source: &Source,
    big: &Blob,
    pushed: &mut Vec<(String, Image)>,
) -> Result<Window> {
    tokio::time::sleep(LONE_PUSH_AFTER).await;
    let mut conn = Conn::connect(&berth.target()).await?;
    let lone = Image::generate(source, params.push_layers, params.push_layer_size);
    let tag = format!("push-{}", pushed.len());
    let started = Instant::now();
    api::push_image(&mut conn, REPO, &tag, &lone).await?;
    let lone_push_ms = started.elapsed().as_secs_f64() * 1e3;
    pushed.push((tag, lone));

    let spec = Arc::new(RequestSpec {
        method: Method::GET,
        path: format!("/v2/{REPO}/manifests/latest"),
        headers: vec![header("accept", OCI_MANIFEST)],
        expect: StatusCode::OK,
    });
    let load = LoadSpec {
        conns: params.conns,
        warmup: Duration::from_millis(200),
        duration: Duration::from_secs_f64(params.duration_s),
    };
    let got = client::load(berth.target(), &load, spec).await?;

    let images: Vec<Image> = (0..params.pushes)
        .map(|_| Image::generate(source, params.push_layers, params.push_layer_size))
        .collect();
    let bytes: u64 = images
        .iter()
        .map(|i| i.layers.iter().map(|l| l.len()).sum::<u64>() + i.config.len())
        .sum();
    let started = Instant::now();
    for image in images {
        let tag = format!("push-{}", pushed.len());
        api::push_image(&mut conn, REPO, &tag, &image).await?;
        pushed.push((tag, image));
    }
    let push_mb_s = bytes as f64 / 1e6 / started.elapsed().as_secs_f64();

    let started = Instant::now();
    let n = api::pull_blob(&mut conn, REPO, &big.digest, false).await?;
    let pull_mb_s = n as f64 / 1e6 / started.elapsed().as_secs_f64();
    Ok(Window {
        lone_push_ms,
        manifest_get_rps: got.requests_per_s,
        manifest_get_p99_ms: got.p99_ms,
        push_mb_s,
        pull_mb_s,
    })
}

impl Report {
    pub fn markdown(&self, header: &str) -> String {
        let p = &self.params;
        let mut md = format!(
            "{header}\n\n## Clients during an online garbage collection\n\nMedian (min–max) of {} \
             repetitions. Each: {} unreferenced blobs of {} left, the workloads (one image \
             pushed after a quiet spell, a manifest GET load, image pushes, a blob pull) measured with \
             the collector idle, then again while {} deletes them. Change: the median during GC against the median idle (negative is \
             slower; the goal is no worse than -20%).\n\n\
             | measure | GC idle | during GC | change |\n| --- | ---: | ---: | ---: |\n",
            p.reps,
            thousands(p.garbage),
            size_name(p.garbage_size),
            match p.collector {
                Collector::Process => "`berth gc` (a second process, `gc.grace` 0)",
                Collector::Server => {
                    "the serving instance's collector (started with `POST /api/v1/gc`, `gc.grace` 0)"
                }
            },
        );
        for row in &self.rows {
            md.push_str(&format!(
                "| {} | {} | {} | {:+.1}% |\n",
                row.measure,
                cell(&row.idle),
                cell(&row.during_gc),
                row.change_percent
            ));
        }
        md.push_str("\n| collection | seconds | outlasted the window | the collector said |\n| --- | ---: | --- | --- |\n");
        for (i, c) in self.collections.iter().enumerate() {
            md.push_str(&format!(
                "| {} | {:.1} | {} | {} |\n",
                i + 1,
                c.seconds,
                if c.outlasted_the_window { "yes" } else { "no" },
                c.summary.replace('|', "/")
            ));
        }
        md.push_str(&format!(
            "\nEvery image pushed during the run ({}) pulled back afterwards.\n",
            self.images_checked
        ));
        md
    }
}
