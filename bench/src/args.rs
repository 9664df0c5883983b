//! The command line: what to run, and the sizes and counts of each preset, each
//! overridable.

use std::path::PathBuf;

use clap::Parser;

use crate::servers;
use crate::workloads::Params;
use crate::{GIB, KIB, MIB};

#[derive(Parser, Debug)]
#[command(
    name = "berth-bench",
    about = "berth vs the official registry, side by side"
)]
pub struct Args {
    /// Tiny sizes and short loads (seconds in all): checks that every workload works, never
    /// judges speed. Without it: the full run (about 10 minutes).
    #[arg(long)]
    pub smoke: bool,
    /// Repetitions of each workload per registry.
    #[arg(long)]
    pub reps: Option<usize>,
    /// Size of the blob pulled by one client (workload 1) and pushed (workload 3): 1GiB, 8MiB...
    #[arg(long, value_parser = parse_size)]
    pub blob_size: Option<usize>,
    /// Clients pulling at once in workload 2.
    #[arg(long)]
    pub concurrent_pulls: Option<usize>,
    /// Size of each blob pulled in workload 2.
    #[arg(long, value_parser = parse_size)]
    pub concurrent_blob_size: Option<usize>,
    /// Chunk size of the chunked push.
    #[arg(long, value_parser = parse_size)]
    pub chunk_size: Option<usize>,
    /// Connections of the manifest GET and blob HEAD loads.
    #[arg(long)]
    pub conns: Option<usize>,
    /// Seconds of warm-up before each request load.
    #[arg(long)]
    pub warmup: Option<f64>,
    /// Seconds each manifest GET / blob HEAD load is measured.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Seconds each catalog / tag list load (one connection) is measured.
    #[arg(long)]
    pub listing_duration: Option<f64>,
    /// Repository counts at which the first catalog page is measured: 10000,100000.
    #[arg(long, value_delimiter = ',')]
    pub catalog_repos: Option<Vec<usize>>,
    /// Tags in the tag-list repository.
    #[arg(long)]
    pub tags: Option<usize>,
    /// Layers of the image skopeo copies.
    #[arg(long)]
    pub skopeo_layers: Option<usize>,
    /// Size of each of those layers (before the gzip framing).
    #[arg(long, value_parser = parse_size)]
    pub skopeo_layer_size: Option<usize>,
    /// Concurrent pushes during which peak memory is measured.
    #[arg(long)]
    pub memory_pushes: Option<usize>,
    /// Size of each of those pushes.
    #[arg(long, value_parser = parse_size)]
    pub memory_push_size: Option<usize>,
    /// Connections used to populate repositories and tags.
    #[arg(long)]
    pub populate_conns: Option<usize>,
    /// Manifests pushed per repetition of workload 9.
    #[arg(long)]
    pub manifest_pushes: Option<usize>,
    /// Workload 10: everything the upstream sends goes through a link of this rate (e.g.
    /// 100MiB: a size per second; the kernel's traffic control, so root and tc are needed),
    /// as a registry across a network; without it, loopback.
    #[arg(long, value_parser = parse_size)]
    pub upstream_rate: Option<usize>,
    /// Run only these workloads (1-10, comma-separated). Idle RSS is always measured.
    #[arg(long, value_delimiter = ',')]
    pub only: Option<Vec<u8>>,
    /// The berth binary. Default: `berth` next to this program (target/release/berth for a
    /// release build).
    #[arg(long)]
    pub berth: Option<PathBuf>,
    /// A/B mode, for before/after measurements of a change to berth: this berth binary takes
    /// the official registry's place (its column, ratios and targets then compare berth with
    /// this baseline). The docker-registry package is not needed then.
    #[arg(long)]
    pub baseline: Option<PathBuf>,
    /// A configuration file for the berth under test (`berth serve FILE`), e.g. with webhooks
    /// or metrics settings, for an A/B run of a feature's cost.
    #[arg(long)]
    pub berth_config: Option<PathBuf>,
    /// A configuration file for the `--baseline` berth.
    #[arg(long, requires = "baseline")]
    pub baseline_config: Option<PathBuf>,
    /// What the berth binary was built from, recorded in the results. Default: `git describe`
    /// of this checkout.
    #[arg(long)]
    pub berth_label: Option<String>,
    /// Scratch directory for the servers' data (about 10 GB at a time in a full run). Default:
    /// a fresh directory in /dev/shm (tmpfs) when it and memory have room, else under /var/tmp;
    /// removed afterwards.
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Put the scratch directory on disk (under /var/tmp) even when /dev/shm has room.
    #[arg(long)]
    pub disk: bool,
    /// Keep the scratch directory (data, server logs) after the run.
    #[arg(long)]
    pub keep: bool,
    /// Where the JSON and Markdown results go. Default: bench/results for a full run; a smoke
    /// run saves nothing unless given this.
    #[arg(long)]
    pub results_dir: Option<PathBuf>,
    /// Authentication on both registries: open (none), or token (the Docker token protocol;
    /// berth is also the official registry's token server). See bench/README.md.
    #[arg(long, value_enum, default_value_t = servers::Profile::Open)]
    pub profile: servers::Profile,
    /// Worker threads of the load generator's runtime.
    #[arg(long, default_value_t = 2)]
    pub client_threads: usize,
    /// Instead of berth against the official registry: berth on each blob store (filesystem,
    /// S3/Garage, GCS/fake-gcs-server, Azure/Azurite, IPFS/js-ipfs) side by side, and IPFS
    /// `add` against a push through berth. Uses --reps, --blob-size, --skopeo-layers,
    /// --skopeo-layer-size.
    #[arg(long)]
    pub storage: bool,
    /// With --storage, only these stores (filesystem, s3, gcs, azure, ipfs).
    #[arg(long, value_delimiter = ',')]
    pub stores: Option<Vec<String>>,
    /// Instead of berth against the official registry: berth's clients (manifest GETs, image
    /// pushes, a blob pull) with the garbage collector idle and while `berth gc` runs. Uses
    /// --reps, --conns, --duration, --concurrent-blob-size (the pulled blob), --garbage. On
    /// PostgreSQL with `BERTH_DATABASE_URL` set (an empty database) in the environment.
    #[arg(long)]
    pub during_gc: bool,
    /// With --during-gc, unreferenced blobs left for each collection.
    #[arg(long)]
    pub garbage: Option<usize>,
    /// With --during-gc, the serving instance's own collector (started through the admin
    /// API, as a scheduled collection runs) instead of `berth gc` as a second process.
    #[arg(long)]
    pub gc_in_server: bool,
}

impl Args {
    pub fn params(&self) -> Params {
        let mut p = if self.smoke {
            Params {
                reps: 2,
                blob_size: 8 * MIB,
                concurrent_pulls: 4,
                concurrent_blob_size: MIB,
                chunk_size: MIB,
                conns: 8,
                warmup_s: 0.1,
                duration_s: 0.5,
                listing_duration_s: 0.2,
                catalog_repos: vec![50, 200],
                tags: 100,
                skopeo_layers: 3,
                skopeo_layer_size: 256 * KIB,
                memory_pushes: 4,
                memory_push_size: 2 * MIB,
                populate_conns: 16,
                manifest_pushes: 40,
                upstream_rate: None,
            }
        } else {
            Params {
                reps: 5,
                blob_size: GIB,
                concurrent_pulls: 32,
                concurrent_blob_size: 64 * MIB,
                chunk_size: 16 * MIB,
                conns: 64,
                warmup_s: 1.0,
                duration_s: 5.0,
                listing_duration_s: 2.0,
                catalog_repos: vec![10_000, 100_000],
                tags: 10_000,
                skopeo_layers: 10,
                skopeo_layer_size: 8 * MIB,
                memory_pushes: 32,
                memory_push_size: 256 * MIB,
                populate_conns: 64,
                manifest_pushes: 400,
                upstream_rate: None,
            }
        };
        macro_rules! set {
            ($($field:ident = $arg:expr),* $(,)?) => {$(if let Some(v) = $arg.clone() { p.$field = v; })*};
        }
        set!(
            reps = self.reps,
            blob_size = self.blob_size,
            concurrent_pulls = self.concurrent_pulls,
            concurrent_blob_size = self.concurrent_blob_size,
            chunk_size = self.chunk_size,
            conns = self.conns,
            warmup_s = self.warmup,
            duration_s = self.duration,
            listing_duration_s = self.listing_duration,
            catalog_repos = self.catalog_repos,
            tags = self.tags,
            skopeo_layers = self.skopeo_layers,
            skopeo_layer_size = self.skopeo_layer_size,
            memory_pushes = self.memory_pushes,
            memory_push_size = self.memory_push_size,
            populate_conns = self.populate_conns,
            manifest_pushes = self.manifest_pushes,
        );
        p.upstream_rate = self.upstream_rate;
        p.catalog_repos.sort_unstable();
        p
    }

    pub fn runs(&self, workload: u8) -> bool {
        self.only
            .as_ref()
            .is_none_or(|only| only.contains(&workload))
    }
}

/// `1GiB`, `64MiB`, `512KiB`, `1G`, `8M`, or plain bytes.
pub fn parse_size(s: &str) -> std::result::Result<usize, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: usize = n.parse().map_err(|_| format!("not a size: {s}"))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => KIB,
        "m" | "mib" => MIB,
        "g" | "gib" => GIB,
        other => return Err(format!("unknown size unit {other:?} (use KiB, MiB, GiB)")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size too large: {s}"))
}
