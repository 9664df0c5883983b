//! `berth-bench`: runs the same workloads against berth and the official registry (Debian's
//! docker-registry, distribution 2.8) on loopback, alternating between them, and reports
//! medians, spreads and ratios next to the machine's physical limits. See bench/README.md.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use sha2::{Digest as _, Sha256};

mod api;
mod args;
mod client;
mod data;
mod during_gc;
mod link;
mod machine;
mod report;
mod servers;
mod stats;
mod storage;
mod token_auth;
mod workloads;

use args::Args;
use report::{Better, Report, Results};
use stats::Summary;
use workloads::{Bench, Params};

pub type Error = Box<dyn std::error::Error + Send + Sync>;
pub type Result<T> = std::result::Result<T, Error>;

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;
const GIB: usize = 1024 * MIB;

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads.max(1))
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(&args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("berth-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench/ has a parent")
        .to_path_buf()
}

/// Runs everything; `Ok(false)` when some workload failed (the others still ran and are
/// reported).
async fn run(args: &Args) -> Result<bool> {
    if args.storage {
        return run_storage(args).await;
    }
    if args.during_gc {
        return run_during_gc(args).await;
    }
    let started = Instant::now();
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let (started_utc, stamp) = report::utc(now);
    let params = args.params();
    let mode = match (args.smoke, args.profile) {
        (true, servers::Profile::Open) => "smoke",
        (false, servers::Profile::Open) => "full",
        (true, servers::Profile::Token) => "smoke-token",
        (false, servers::Profile::Token) => "full-token",
    };

    let berth = berth_binary(args)?;
    if !berth.is_file() {
        return Err(format!(
            "no berth binary at {} (build it: cargo build --release -p berth, or pass --berth)",
            berth.display()
        )
        .into());
    }
    let mut needed = vec!["nginx"];
    if args.baseline.is_none() {
        needed.push("docker-registry");
    }
    if args.runs(7) {
        needed.push("skopeo");
    }
    for tool in needed {
        if std::process::Command::new(tool)
            .arg("--version")
            .output()
            .is_err()
            && std::process::Command::new(tool).arg("-v").output().is_err()
        {
            return Err(format!("{tool} is not installed (bench/run installs it)").into());
        }
    }

    let mut machine = machine::describe(&repo_root(), &berth);
    if let Some(label) = &args.berth_label {
        machine.versions.berth = label.clone();
    }
    let loadavg_before = machine::loadavg();
    eprintln!(
        "berth-bench: {mode} run on {} ({} cores, kernel {}), load {loadavg_before}",
        machine.cpu_model, machine.cores, machine.kernel
    );

    let work = match &args.work_dir {
        Some(d) => d.clone(),
        None => default_work_dir(args, &params),
    };
    std::fs::create_dir_all(&work)?;
    let storage = machine::storage(&work);
    eprintln!("berth-bench: scratch space {storage}");
    let outcome = measure(args, &params, &berth, &work).await;
    if !args.keep {
        let _ = std::fs::remove_dir_all(&work);
    }
    let (results, mut notes, log_lines) = outcome?;

    let loadavg_after = machine::loadavg();
    let ok = !notes.iter().any(|n| n.starts_with("FAILED"));
    if cfg!(debug_assertions) {
        notes.push("The harness was a debug build: fine for a smoke run, pessimistic for measurements (the client shares the cores).".into());
    }
    if args.profile == servers::Profile::Token {
        notes.push("Token profile: both registries authenticate every request with a bearer token (ES256 JWT) issued by berth; the official registry trusts berth's tokens through auth.token. Tokens are fetched once per repository and reused, as clients do.".into());
    }
    if let Some(baseline) = &args.baseline {
        notes.push(format!(
            "A/B run: the \"official\" column is berth built as {} (--baseline), not the official registry.",
            baseline.display()
        ));
    }
    notes.push(format!(
        "2 cores are shared by the load generator and the server under test; figures are for this machine, not absolute. Load average before {loadavg_before}, after {loadavg_after}."
    ));
    let report = Report {
        mode: mode.into(),
        started_utc,
        wall_time_s: started.elapsed().as_secs_f64(),
        machine,
        loadavg_before,
        loadavg_after,
        storage,
        params,
        targets: results.targets(),
        results,
        server_log_lines: log_lines,
        notes,
    };
    save(args, &stamp, mode, &report, &report.markdown())?;
    if !ok {
        eprintln!("berth-bench: some workloads FAILED (see the notes above)");
    }
    Ok(ok)
}

/// `--storage`: the blob stores side by side (see `storage`).
async fn run_storage(args: &Args) -> Result<bool> {
    let general = args.params();
    let params = storage::Params {
        reps: args.reps.unwrap_or(if args.smoke { 1 } else { 3 }),
        blob_size: general.blob_size,
        skopeo_layers: general.skopeo_layers,
        skopeo_layer_size: general.skopeo_layer_size,
    };
    let run = SideRun::begin(args, &general, "storage")?;
    let outcome = storage::run(&params, args.stores.as_deref(), &run.berth, &run.work).await;
    run.clean(args);
    let report = outcome?;
    let header = run.header("");
    save(
        args,
        &run.stamp,
        "storage",
        &report,
        &report.markdown(&header),
    )?;
    Ok(true)
}

/// `--during-gc`: the clients' figures with the collector idle and while it runs.
async fn run_during_gc(args: &Args) -> Result<bool> {
    let general = args.params();
    let params = during_gc::Params {
        collector: if args.gc_in_server {
            during_gc::Collector::Server
        } else {
            during_gc::Collector::Process
        },
        reps: args.reps.unwrap_or(if args.smoke { 1 } else { 3 }),
        garbage: args
            .garbage
            .unwrap_or(if args.smoke { 500 } else { 40_000 }),
        garbage_size: KIB,
        conns: general.conns,
        duration_s: general.duration_s,
        pushes: if args.smoke { 2 } else { 8 },
        push_layers: 2,
        push_layer_size: if args.smoke { 256 * KIB } else { 4 * MIB },
        pull_size: general.concurrent_blob_size,
    };
    let run = SideRun::begin(args, &general, "during-gc")?;
    let outcome = during_gc::run(&params, &run.berth, &run.work).await;
    run.clean(args);
    let report = outcome?;
    let engine = if std::env::var_os("BERTH_DATABASE_URL").is_some() {
        "PostgreSQL (`BERTH_DATABASE_URL`)"
    } else {
        "SQLite"
    };
    let header = run.header(&format!(
        "{engine} and the filesystem store; the load generator, berth and the collector \
         share the cores; "
    ));
    save(
        args,
        &run.stamp,
        "during-gc",
        &report,
        &report.markdown(&header),
    )?;
    Ok(true)
}

/// What the runs of berth alone (`--storage`, `--during-gc`) share: the binary, the
/// machine, the scratch space and the clock.
struct SideRun {
    mode: &'static str,
    berth: PathBuf,
    machine: machine::Machine,
    started_utc: String,
    stamp: String,
    work: PathBuf,
    scratch: String,
    started: Instant,
    load_before: String,
}

impl SideRun {
    fn begin(args: &Args, general: &Params, mode: &'static str) -> Result<SideRun> {
        let berth = berth_binary(args)?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        let (started_utc, stamp) = report::utc(now);
        let machine = machine::describe(&repo_root(), &berth);
        let work = match &args.work_dir {
            Some(d) => d.clone(),
            None => default_work_dir(args, general),
        };
        std::fs::create_dir_all(&work)?;
        let scratch = machine::storage(&work);
        eprintln!("berth-bench: {mode} run; scratch space {scratch}");
        Ok(SideRun {
            mode,
            berth,
            machine,
            started_utc,
            stamp,
            work,
            scratch,
            started: Instant::now(),
            load_before: machine::loadavg(),
        })
    }

    /// Removes the scratch space unless `--keep`.
    fn clean(&self, args: &Args) {
        if !args.keep {
            let _ = std::fs::remove_dir_all(&self.work);
        }
    }

    /// The Markdown report's title and the run's circumstances (`setup`: what else to say).
    fn header(&self, setup: &str) -> String {
        let m = &self.machine;
        format!(
            "# berth-bench --{}, {}\n\n{} ({} cores), berth {}; {setup}scratch space {}; {:.0} s; \
             load average {} before, {} after.",
            self.mode,
            self.started_utc,
            m.cpu_model,
            m.cores,
            m.versions.berth,
            self.scratch,
            self.started.elapsed().as_secs_f64(),
            self.load_before,
            machine::loadavg()
        )
    }
}

/// The berth under test: `--berth`, or `berth` next to this program.
fn berth_binary(args: &Args) -> Result<PathBuf> {
    Ok(match &args.berth {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .ok_or("no directory for the harness binary")?
            .join("berth"),
    })
}

/// Prints a run's Markdown and saves it with its JSON in the results directory (a smoke run
/// only when given one).
fn save(
    args: &Args,
    stamp: &str,
    mode: &str,
    report: &impl serde::Serialize,
    md: &str,
) -> Result<()> {
    println!("\n{md}");
    let results_dir = match (&args.results_dir, args.smoke) {
        (Some(d), _) => Some(d.clone()),
        (None, false) => Some(repo_root().join("bench/results")),
        (None, true) => None,
    };
    if let Some(dir) = results_dir {
        std::fs::create_dir_all(&dir)?;
        let base = dir.join(format!("{stamp}-{mode}"));
        std::fs::write(
            base.with_extension("json"),
            serde_json::to_string_pretty(report)? + "\n",
        )?;
        std::fs::write(base.with_extension("md"), md)?;
        eprintln!("berth-bench: results in {}.{{json,md}}", base.display());
    }
    Ok(())
}

/// tmpfs when it and the memory have room for the run's data at its peak: on a slow disk every
/// push would measure the disk (about 100 MB/s with fsync on the machine this was written on),
/// not the registry. `--disk` measures with the disk.
fn default_work_dir(args: &Args, params: &Params) -> PathBuf {
    let name = format!("berth-bench-{}", std::process::id());
    let p = params;
    let fixtures = p.blob_size + p.concurrent_pulls * p.concurrent_blob_size;
    let need = (2 * fixtures + 2 * p.blob_size).max(p.memory_pushes * p.memory_push_size) as u64
        + GIB as u64;
    let shm = Path::new("/dev/shm");
    let room = machine::free_bytes(shm).unwrap_or(0);
    let available = machine::mem_available_bytes().unwrap_or(0);
    if !args.disk && room > need && available > need + 4 * GIB as u64 {
        shm.join(name)
    } else {
        PathBuf::from("/var/tmp").join(name)
    }
}

type Measured = (Results, Vec<String>, Vec<(String, usize)>);

async fn measure(args: &Args, params: &Params, berth_bin: &Path, work: &Path) -> Result<Measured> {
    let mut results = Results::default();
    let mut notes = Vec::new();
    let largest = params
        .blob_size
        .max(params.concurrent_blob_size)
        .max(params.memory_push_size)
        .max(params.skopeo_layer_size);
    let step = Instant::now();
    let source = data::Source::new(largest);
    eprintln!(
        "berth-bench: generated test data in {:.1} s",
        step.elapsed().as_secs_f64()
    );

    // The hashing ceiling: sha2 (the crate and version berth uses) on one core, same data.
    let sample = source.fresh_bytes(params.blob_size);
    let sha: Vec<f64> = (0..params.reps)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(Sha256::digest(&sample));
            sample.len() as f64 / 1e6 / t.elapsed().as_secs_f64()
        })
        .collect();
    results.limit(
        "sha256_mb_s",
        "SHA-256 on one core (sha2 0.11), same data",
        "MB/s",
        Summary::of(&sha),
    );

    // The storage ceiling for pushes: the same bytes written and fsynced into the scratch
    // directory (what berth does before it acknowledges a push).
    let fsync: Vec<f64> = (0..params.reps.min(3))
        .map(|i| {
            let path = work.join(format!("fsync-test-{i}"));
            let t = Instant::now();
            let mut f = std::fs::File::create(&path)?;
            std::io::Write::write_all(&mut f, &sample)?;
            f.sync_all()?;
            let mb_s = sample.len() as f64 / 1e6 / t.elapsed().as_secs_f64();
            std::fs::remove_file(&path)?;
            Ok(mb_s)
        })
        .collect::<Result<_>>()?;
    results.limit(
        "write_fsync_mb_s",
        "write + fsync of the same data into the scratch directory",
        "MB/s",
        Summary::of(&fsync),
    );

    let berth = servers::start_berth_named(
        "berth",
        berth_bin,
        args.berth_config.as_deref(),
        work,
        args.profile,
    )
    .await?;
    let official = match &args.baseline {
        Some(baseline) => {
            servers::start_berth_named(
                "baseline",
                baseline,
                args.baseline_config.as_deref(),
                work,
                args.profile,
            )
            .await?
        }
        None => {
            let token_server = (args.profile == servers::Profile::Token).then_some(&berth);
            servers::start_official(work, token_server).await?
        }
    };
    let nginx_root = work.join("nginx-root");
    std::fs::create_dir_all(&nginx_root)?;
    let nginx = servers::start_nginx(work, &nginx_root).await?;

    // Idle: started, answered one request, then left alone for a second.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let idle = |s: &servers::Server| s.rss_bytes().map(|b| Summary::of(&[b as f64 / 1e6]));
    results.row(
        "rss_idle",
        "8",
        "idle RSS after start",
        "RSS",
        "MB",
        Better::Lower,
        idle(&berth)?,
        idle(&official)?,
    );

    let mut bench = Bench {
        params,
        source: &source,
        berth: &berth,
        official: &official,
        nginx: &nginx,
        work,
        results: &mut results,
    };
    let step = Instant::now();
    let fixtures = bench.fixtures(&nginx_root).await?;
    eprintln!(
        "berth-bench: pushed and verified fixtures in {:.1} s",
        step.elapsed().as_secs_f64()
    );

    for id in 1..=10u8 {
        if !args.runs(id) {
            continue;
        }
        let step = Instant::now();
        if id == 8 {
            bench.discard_fixtures(&fixtures, &nginx_root);
        }
        let outcome = match id {
            1 => bench.single_pull(&fixtures).await,
            2 => bench.concurrent_pulls(&fixtures).await,
            3 => bench.pushes().await,
            4 => bench.request_load(&fixtures, false).await,
            5 => bench.request_load(&fixtures, true).await,
            6 => bench.listings(&fixtures).await,
            7 => bench.skopeo().await,
            8 if args.profile == servers::Profile::Token => match bench.memory_pushes().await {
                Ok(()) => bench.failed_logins().await,
                failed => failed,
            },
            8 => bench.memory_pushes().await,
            9 => bench.manifest_pushes(&fixtures).await,
            _ => bench.cache_pulls(berth_bin, args.baseline.as_deref()).await,
        };
        match outcome {
            Ok(()) => eprintln!(
                "berth-bench: workload {id} done in {:.1} s",
                step.elapsed().as_secs_f64()
            ),
            Err(e) => {
                eprintln!("berth-bench: workload {id} FAILED: {e}");
                notes.push(format!("FAILED: workload {id}: {e}"));
            }
        }
        // A server that died takes every later workload with it; say so once, clearly.
        for server in [&berth, &official] {
            server.check_alive()?;
        }
    }
    let log_lines = vec![
        ("berth".to_string(), berth.log_lines()),
        (official.name.to_string(), official.log_lines()),
    ];
    for server in [&berth, &official] {
        if server.log_lines() > 0 {
            notes.push(format!(
                "{} logged {} lines at warn level or above; the last: {}",
                server.name,
                server.log_lines(),
                server
                    .log_tail()
                    .lines()
                    .last()
                    .unwrap_or("")
                    .chars()
                    .take(300)
                    .collect::<String>()
            ));
        }
    }
    drop((berth, official, nginx));
    Ok((results, notes, log_lines))
}
