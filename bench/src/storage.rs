//! `berth-bench --storage`: berth on each blob store it speaks, side by side with the official
//! registry on its filesystem store: the filesystem,
//! S3 (Garage), Google Cloud Storage (fake-gcs-server), Azure Blob Storage (Azurite) and IPFS
//! (js-ipfs with Kubo's RPC API), each server started by the harness on loopback. For each:
//! a push and a pull of one large blob, and a multi-layer image copied in and out by skopeo.
//! For IPFS also `add` of the same amount of data straight to the node, against a push through
//! berth: berth's overhead over the node itself.
//!
//! The emulators are development servers, not the services: the figures compare what berth
//! does on each store on this machine, not the services' own speed.

use std::path::{Path, PathBuf};
use std::time::Instant;

use berth_storage::testing::azurite::Azurite;
use berth_storage::testing::fake_gcs::FakeGcs;
use berth_storage::testing::garage::Garage;
use berth_storage::testing::ipfs::IpfsNode;
use bytes::Bytes;
use serde::Serialize;

use crate::Result;
use crate::api;
use crate::client::Conn;
use crate::data::{Image, Source};
use crate::report::cell;
use crate::servers::{self, Profile, Server};
use crate::stats::Summary;
use crate::workloads::{check_layout, size_name, skopeo};

#[derive(Debug, Clone, Serialize)]
pub struct Params {
    pub reps: usize,
    pub blob_size: usize,
    pub skopeo_layers: usize,
    pub skopeo_layer_size: usize,
}

/// One store's server, kept running while berth uses it; or the official registry on its
/// filesystem store, for reference.
enum Store {
    Official,
    Filesystem,
    S3(Garage),
    Gcs(FakeGcs),
    Azure(Azurite),
    Ipfs(IpfsNode),
}

const STORES: [&str; 6] = ["official", "filesystem", "s3", "gcs", "azure", "ipfs"];

impl Store {
    fn start(name: &str, dir: &Path) -> Store {
        match name {
            "s3" => Store::S3(Garage::start_in(dir)),
            "gcs" => Store::Gcs(FakeGcs::start_in(dir)),
            "azure" => Store::Azure(Azurite::start_in(dir)),
            "ipfs" => Store::Ipfs(IpfsNode::start_in(dir)),
            "official" => Store::Official,
            _ => Store::Filesystem,
        }
    }

    fn label(&self) -> &'static str {
        match self {
            Store::Official => "official registry (filesystem)",
            Store::Filesystem => "berth: filesystem",
            Store::S3(_) => "S3 (Garage)",
            Store::Gcs(_) => "GCS (fake-gcs-server)",
            Store::Azure(_) => "Azure (Azurite)",
            Store::Ipfs(_) => "IPFS (js-ipfs)",
        }
    }

    fn berth_env(&self) -> Vec<(String, String)> {
        match self {
            Store::Official | Store::Filesystem => Vec::new(),
            Store::S3(garage) => garage.berth_env("bench"),
            Store::Gcs(gcs) => gcs.berth_env("bench"),
            Store::Azure(azurite) => azurite.berth_env("bench"),
            Store::Ipfs(node) => node.berth_env("/bench"),
        }
    }
}

/// What was measured on one store.
#[derive(Debug, Serialize)]
pub struct StoreResults {
    pub store: String,
    pub push_mb_s: Summary,
    pub pull_mb_s: Summary,
    pub skopeo_in_s: Summary,
    pub skopeo_out_s: Summary,
}

/// IPFS `add` straight to the node against a push through berth, alternating.
#[derive(Debug, Serialize)]
pub struct IpfsOverhead {
    pub add_mb_s: Summary,
    pub push_mb_s: Summary,
    /// How much longer a push through berth takes than `add` on the node, in percent (of the
    /// medians).
    pub overhead_percent: f64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub params: Params,
    pub stores: Vec<StoreResults>,
    pub ipfs: Option<IpfsOverhead>,
}

fn mb_s(bytes: usize, seconds: f64) -> f64 {
    bytes as f64 / 1e6 / seconds
}

/// Runs every store in turn, each with its own berth, removing its data afterwards.
pub async fn run(
    params: &Params,
    only: Option<&[String]>,
    berth_bin: &Path,
    work: &Path,
) -> Result<Report> {
    if let Some(unknown) = only
        .unwrap_or_default()
        .iter()
        .find(|name| !STORES.contains(&name.as_str()))
    {
        return Err(format!("unknown store {unknown:?}; the stores are {STORES:?}").into());
    }
    let source = Source::new(params.blob_size.max(params.skopeo_layer_size));
    let mut stores = Vec::new();
    let mut ipfs = None;
    for name in STORES {
        if only.is_some_and(|only| !only.iter().any(|o| o == name)) {
            continue;
        }
        let dir = work.join(format!("store-{name}"));
        std::fs::create_dir_all(&dir)?;
        let step = Instant::now();
        let store = tokio::task::block_in_place(|| Store::start(name, &dir));
        let berth = match store {
            Store::Official => servers::start_official(&dir, None).await?,
            _ => {
                servers::start_berth_with(
                    "berth",
                    berth_bin,
                    None,
                    &dir,
                    Profile::Open,
                    &store.berth_env(),
                )
                .await?
            }
        };
        let measured = measure(params, &source, &berth, store.label(), &dir).await?;
        stores.push(measured);
        if let Store::Ipfs(node) = &store {
            ipfs = Some(ipfs_overhead(params, &source, &berth, node).await?);
        }
        berth.check_alive()?;
        drop(berth);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
        eprintln!(
            "berth-bench: {name} done in {:.1} s",
            step.elapsed().as_secs_f64()
        );
    }
    Ok(Report {
        params: params.clone(),
        stores,
        ipfs,
    })
}

async fn measure(
    params: &Params,
    source: &Source,
    berth: &Server,
    label: &str,
    dir: &Path,
) -> Result<StoreResults> {
    let (mut push, mut pull, mut copy_in, mut copy_out) = (vec![], vec![], vec![], vec![]);
    for rep in 0..params.reps {
        // A connection per repetition: berth closes one left idle for 30 s (its header read
        // timeout), which the skopeo copies of a loaded machine can outlast.
        let mut conn = Conn::connect(&berth.target()).await?;
        let blob = source.fresh_blob(params.blob_size);
        let start = Instant::now();
        api::push_monolithic(&mut conn, "bench/big", blob.data.clone(), &blob.digest).await?;
        push.push(mb_s(params.blob_size, start.elapsed().as_secs_f64()));
        let start = Instant::now();
        // The first pull checks the content too; then only the transfer is measured.
        let got = api::pull_blob(&mut conn, "bench/big", &blob.digest, rep == 0).await?;
        pull.push(mb_s(got as usize, start.elapsed().as_secs_f64()));

        let image = Image::generate(source, params.skopeo_layers, params.skopeo_layer_size);
        let layout = dir.join(format!("in-{rep}"));
        image.write_layout(&layout, "v1")?;
        let remote = format!("docker://{}/bench/skopeo:r{rep}", berth.addr);
        let start = Instant::now();
        skopeo(&[
            "--dest-tls-verify=false",
            &format!("oci:{}:v1", layout.display()),
            &remote,
        ])?;
        copy_in.push(start.elapsed().as_secs_f64());
        let out: PathBuf = dir.join(format!("out-{rep}"));
        let start = Instant::now();
        skopeo(&[
            "--src-tls-verify=false",
            &remote,
            &format!("oci:{}:v1", out.display()),
        ])?;
        copy_out.push(start.elapsed().as_secs_f64());
        check_layout(&out, &image)?;
        let _ = std::fs::remove_dir_all(&layout);
        let _ = std::fs::remove_dir_all(&out);
    }
    Ok(StoreResults {
        store: label.to_string(),
        push_mb_s: Summary::of(&push),
        pull_mb_s: Summary::of(&pull),
        skopeo_in_s: Summary::of(&copy_in),
        skopeo_out_s: Summary::of(&copy_out),
    })
}

/// `add` of a fresh blob straight to the node (as berth adds: CIDv1, raw leaves, pinned),
/// alternating with a push of another fresh blob of the same size through berth.
async fn ipfs_overhead(
    params: &Params,
    source: &Source,
    berth: &Server,
    node: &IpfsNode,
) -> Result<IpfsOverhead> {
    let client = reqwest::Client::new();
    let (mut add, mut push) = (vec![], vec![]);
    for rep in 0..params.reps {
        for order in 0..2 {
            if (rep + order) % 2 == 0 {
                let data: Bytes = source.fresh_bytes(params.blob_size);
                let part = reqwest::multipart::Part::stream(reqwest::Body::from(data))
                    .file_name("blob")
                    .mime_str("application/octet-stream")?;
                let url = format!(
                    "{}/api/v0/add?cid-version=1&raw-leaves=true&cid-base=base32&progress=false&pin=true",
                    node.api()
                );
                let start = Instant::now();
                let response = client
                    .post(url)
                    .multipart(reqwest::multipart::Form::new().part("file", part))
                    .send()
                    .await?;
                let status = response.status();
                let text = response.text().await?;
                if !status.is_success() || !text.contains("\"Hash\"") {
                    return Err(format!("ipfs add: {status} {text}").into());
                }
                add.push(mb_s(params.blob_size, start.elapsed().as_secs_f64()));
            } else {
                let blob = source.fresh_blob(params.blob_size);
                // A fresh connection: the one of the last push sat idle through an `add`,
                // which at 1 GiB on a loaded machine outlasts berth's 30 s idle limit (the
                // "channel closed" of an earlier run).
                let mut conn = Conn::connect(&berth.target()).await?;
                let start = Instant::now();
                api::push_monolithic(&mut conn, "bench/ipfs", blob.data.clone(), &blob.digest)
                    .await?;
                push.push(mb_s(params.blob_size, start.elapsed().as_secs_f64()));
            }
        }
    }
    let (add, push) = (Summary::of(&add), Summary::of(&push));
    let overhead_percent = (add.median / push.median - 1.0) * 100.0;
    Ok(IpfsOverhead {
        add_mb_s: add,
        push_mb_s: push,
        overhead_percent,
    })
}

/// Which figure of a store's results a row of the table shows.
type Pick = fn(&StoreResults) -> &Summary;

impl Report {
    pub fn markdown(&self, header: &str) -> String {
        let p = &self.params;
        let mut md = format!(
            "{header}\n\n## berth on each blob store\n\nMedian (min–max) of {} repetitions; \
             the official registry (Debian's docker-registry 2.8) on its filesystem store, then one \
             berth per store, each store's server on loopback with its data in the same \
             scratch directory.\n\n",
            p.reps
        );
        let mut head = vec!["workload".to_string()];
        head.extend(self.stores.iter().map(|s| s.store.clone()));
        let rows: [(String, Pick); 4] = [
            (
                format!("push of a {} blob (MB/s)", size_name(p.blob_size)),
                |s| &s.push_mb_s,
            ),
            (
                format!("pull of a {} blob (MB/s)", size_name(p.blob_size)),
                |s| &s.pull_mb_s,
            ),
            (
                format!(
                    "skopeo copy in, {} layers of {} (s)",
                    p.skopeo_layers,
                    size_name(p.skopeo_layer_size)
                ),
                |s| &s.skopeo_in_s,
            ),
            (
                format!(
                    "skopeo copy out, {} layers of {} (s)",
                    p.skopeo_layers,
                    size_name(p.skopeo_layer_size)
                ),
                |s| &s.skopeo_out_s,
            ),
        ];
        md.push_str(&format!("| {} |\n", head.join(" | ")));
        md.push_str(&format!("|{}\n", " --- |".repeat(head.len())));
        for (name, pick) in rows {
            let cells: Vec<String> = self.stores.iter().map(|s| cell(pick(s))).collect();
            md.push_str(&format!("| {name} | {} |\n", cells.join(" | ")));
        }
        if let Some(ipfs) = &self.ipfs {
            md.push_str(&format!(
                "\n## IPFS: `add` on the node against a push through berth\n\n\
                 | {} blob | MB/s |\n| --- | --- |\n\
                 | `ipfs add` straight to the node (CIDv1, raw leaves, pinned) | {} |\n\
                 | push through berth (monolithic) | {} |\n\
                 | berth's overhead (time, medians) | {:.1}% (goal: at most 15%) |\n",
                size_name(p.blob_size),
                cell(&ipfs.add_mb_s),
                cell(&ipfs.push_mb_s),
                ipfs.overhead_percent
            ));
        }
        md
    }
}
