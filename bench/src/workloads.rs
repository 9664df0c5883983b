//! The workloads. Each runs its repetitions alternating between the registries (berth first
//! on even repetitions, the official registry first on odd ones) so that drift on the machine
//! (page cache, other load, thermal) falls on both alike.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::Result;
use crate::api;
use crate::client::{Conn, LoadSpec};
use crate::data::{Blob, Image, Source};
use crate::report::{Better, Results};
use crate::servers::Server;
use crate::stats::Summary;

mod cache_pull;
mod failed_logins;
mod images;
mod manifest_push;
mod request_loads;
mod transfers;

/// Sizes and counts of one run: the smoke or the full preset, each value overridable.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Params {
    pub reps: usize,
    pub blob_size: usize,
    pub concurrent_pulls: usize,
    pub concurrent_blob_size: usize,
    pub chunk_size: usize,
    pub conns: usize,
    pub warmup_s: f64,
    pub duration_s: f64,
    pub listing_duration_s: f64,
    pub catalog_repos: Vec<usize>,
    pub tags: usize,
    pub skopeo_layers: usize,
    pub skopeo_layer_size: usize,
    pub memory_pushes: usize,
    pub memory_push_size: usize,
    pub populate_conns: usize,
    pub manifest_pushes: usize,
    /// Workload 10's upstream behind a link of this many bytes per second (`link::ShapedLink`),
    /// for the caches and the direct pull alike; `None`: loopback.
    pub upstream_rate: Option<usize>,
}

/// Everything the workloads share.
pub struct Bench<'a> {
    pub params: &'a Params,
    pub source: &'a Source,
    pub berth: &'a Server,
    pub official: &'a Server,
    pub nginx: &'a Server,
    pub work: &'a Path,
    pub results: &'a mut Results,
}

const PULL_REPO: &str = "bench/pull";
const SMALL_REPO: &str = "bench/small";
const MB: f64 = 1e6;
const GB: f64 = 1e9;

/// Labels of the CPU row that follows a workload's rows, by the unit of work.
const PER_GB: &str = "server CPU per GB";
const PER_1000: &str = "server CPU per 1000 requests";
const PER_REQUEST: &str = "server CPU per request";

/// Blobs and images the read workloads need, pushed to both registries before any timing.
pub struct Fixtures {
    pub big: Blob,
    pub concurrent: Vec<Blob>,
    pub small: Image,
    /// The name of `big` in nginx's root.
    pub nginx_path: String,
}

impl Bench<'_> {
    fn registries(&self) -> [&Server; 2] {
        [self.berth, self.official]
    }

    fn load_spec(&self, conns: usize, duration_s: f64) -> LoadSpec {
        LoadSpec {
            conns,
            warmup: Duration::from_secs_f64(self.params.warmup_s),
            duration: Duration::from_secs_f64(duration_s),
        }
    }

    /// Runs `f` `reps` times on every server in `servers`, rotating which goes first, and
    /// returns `[server][rep][metric]`. `f` returns its metrics and the units of work it did
    /// (GB moved, requests, copies); a last metric is appended: the server's CPU time (user +
    /// system, all threads) per unit, in milliseconds. Unlike throughput under contention,
    /// CPU cost hardly depends on what else the machine is doing.
    async fn alternate<F>(
        &self,
        servers: &[&Server],
        reps: usize,
        mut f: F,
    ) -> Result<Vec<Vec<Vec<f64>>>>
    where
        F: AsyncFnMut(&Server, usize) -> Result<(Vec<f64>, f64)>,
    {
        let mut out = vec![Vec::with_capacity(reps); servers.len()];
        for rep in 0..reps {
            for k in 0..servers.len() {
                let i = (k + rep) % servers.len();
                let server = servers[i];
                let cpu = server.cpu_seconds();
                let (mut metrics, units) = f(server, rep)
                    .await
                    .map_err(|e| format!("{} (repetition {}): {e}", server.name, rep + 1))?;
                metrics.push((server.cpu_seconds() - cpu) * 1000.0 / units);
                server.check_alive()?;
                out[i].push(metrics);
            }
        }
        Ok(out)
    }

    /// Adds one table row per metric from an `alternate` over `[berth, official]`.
    fn rows(
        &mut self,
        id: &str,
        workload: &str,
        measured: &[Vec<Vec<f64>>],
        metrics: &[(&str, &str, &str, Better)],
        cpu: &str,
    ) {
        let of = |s: usize, m: usize| {
            Summary::of(&measured[s].iter().map(|rep| rep[m]).collect::<Vec<_>>())
        };
        for (m, (key, metric, unit, better)) in metrics.iter().enumerate() {
            self.results
                .row(key, id, workload, metric, unit, *better, of(0, m), of(1, m));
        }
        // The CPU cost `alternate` appended.
        let m = metrics.len();
        let key = format!("{}_cpu", metrics[0].0);
        self.results.row(
            &key,
            id,
            workload,
            cpu,
            "ms",
            Better::Lower,
            of(0, m),
            of(1, m),
        );
    }

    /// Pushes the read workloads' content to both registries and checks it reads back
    /// correctly (this is also the page-cache warm-up for the pulls).
    pub async fn fixtures(&mut self, nginx_root: &Path) -> Result<Fixtures> {
        let p = self.params;
        let big = self.source.fresh_blob(p.blob_size);
        let concurrent = self
            .source
            .fresh_blobs(p.concurrent_pulls, p.concurrent_blob_size);
        let small = Image::generate(self.source, 1, 1024);
        let nginx_path = "blob".to_string();
        for server in self.registries() {
            let mut conn = Conn::connect(&server.target()).await?;
            api::push_monolithic(&mut conn, PULL_REPO, big.data.clone(), &big.digest).await?;
            for blob in &concurrent {
                api::push_monolithic(&mut conn, PULL_REPO, blob.data.clone(), &blob.digest).await?;
            }
            api::push_image(&mut conn, SMALL_REPO, "latest", &small).await?;
            // Correctness: every pulled byte hashes to what was pushed.
            api::pull_blob(&mut conn, PULL_REPO, &big.digest, true).await?;
            for blob in &concurrent {
                api::pull_blob(&mut conn, PULL_REPO, &blob.digest, true).await?;
            }
            api::check_manifest(&mut conn, SMALL_REPO, "latest", &small.manifest_digest).await?;
            api::check_blob(&mut conn, SMALL_REPO, &small.layers[0]).await?;
        }
        // nginx serves berth's own file (a hard link: no second GiB in the scratch space).
        let link = nginx_root.join(&nginx_path);
        if std::fs::hard_link(self.berth.blob_path(&big.digest), &link).is_err() {
            std::fs::write(&link, &big.data)?;
        }
        let mut conn = Conn::connect(&self.nginx.target()).await?;
        api::get_counting(&mut conn, &format!("/{nginx_path}"), Some(&big.digest)).await?;
        Ok(Fixtures {
            big,
            concurrent,
            small,
            nginx_path,
        })
    }

    /// Deletes the pull workloads' blobs from disk once no later workload reads them, so that
    /// workload 8's pushes have the room (a tmpfs scratch space is memory).
    pub fn discard_fixtures(&self, fx: &Fixtures, nginx_root: &Path) {
        for server in self.registries() {
            for blob in [&fx.big].into_iter().chain(&fx.concurrent) {
                server.discard_blob(&blob.digest);
            }
        }
        let _ = std::fs::remove_file(nginx_root.join(&fx.nginx_path));
    }
}

pub fn catalog_repo(i: usize) -> String {
    format!("cat/r{i:06}")
}

/// `[flag, user:password]`, or nothing without credentials.
fn creds_args<'a>(flag: &'a str, creds: Option<&'a str>) -> Vec<&'a str> {
    creds.map(|c| vec![flag, c]).unwrap_or_default()
}

pub fn skopeo(args: &[&str]) -> Result<()> {
    tokio::task::block_in_place(|| {
        // The insecure policy: the layout's images are unsigned and this is not about trust;
        // it also keeps /etc/containers/policy.json out of the measurement.
        let out = Command::new("skopeo")
            .args(["copy", "--insecure-policy", "--quiet"])
            .args(args)
            .output()
            .map_err(|e| format!("running skopeo: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "skopeo copy {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )
            .into());
        }
        Ok(())
    })
}

/// The copied-out layout holds the very manifest and blobs that went in.
pub fn check_layout(dir: &Path, image: &Image) -> Result<()> {
    let blob = |digest: &str| dir.join("blobs/sha256").join(crate::data::hex_of(digest));
    let manifest = std::fs::read(blob(&image.manifest_digest)).map_err(|e| {
        format!(
            "copied-out layout lacks the manifest {}: {e}",
            image.manifest_digest
        )
    })?;
    if manifest != image.manifest {
        return Err("copied-out manifest differs from the pushed one".into());
    }
    for b in image.layers.iter().chain([&image.config]) {
        let len = std::fs::metadata(blob(&b.digest))
            .map_err(|e| format!("copied-out layout lacks blob {}: {e}", b.digest))?
            .len();
        if len != b.len() {
            return Err(format!(
                "copied-out blob {} has {len} bytes, not {}",
                b.digest,
                b.len()
            )
            .into());
        }
    }
    Ok(())
}

pub fn size_name(bytes: usize) -> String {
    const KIB: usize = 1024;
    for (unit, name) in [(KIB * KIB * KIB, "GiB"), (KIB * KIB, "MiB"), (KIB, "KiB")] {
        if bytes >= unit && bytes.is_multiple_of(unit) {
            return format!("{} {name}", bytes / unit);
        }
    }
    format!("{bytes} B")
}

pub fn thousands(n: usize) -> String {
    if n >= 1000 && n.is_multiple_of(1000) {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}
