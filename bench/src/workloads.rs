//! The workloads. Each runs its repetitions alternating between the registries (berth first
//! on even repetitions, the official registry first on odd ones) so that drift on the machine
//! (page cache, other load, thermal) falls on both alike.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, StatusCode};

use crate::Result;
use crate::api;
use crate::client::{self, Conn, LoadSpec, RequestSpec, header};
use crate::data::{Blob, Image, OCI_MANIFEST, Source};
use crate::report::{Better, Results};
use crate::servers::{PeakWatch, Server};
use crate::stats::Summary;

mod cache_pull;
mod manifest_push;

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

    /// 1: one client pulls the big blob; nginx's sendfile serving the same file is the ceiling.
    pub async fn single_pull(&mut self, fx: &Fixtures) -> Result<()> {
        let servers = [self.berth, self.official, self.nginx];
        let nginx_addr = self.nginx.addr;
        let measured = self
            .alternate(&servers, self.params.reps, async |server: &Server, _rep| {
                let mut conn = Conn::connect(&server.target()).await?;
                let start = Instant::now();
                let n = if server.addr == nginx_addr {
                    api::get_counting(&mut conn, &format!("/{}", fx.nginx_path), None).await?
                } else {
                    api::pull_blob(&mut conn, PULL_REPO, &fx.big.digest, false).await?
                };
                let secs = start.elapsed().as_secs_f64();
                if n != fx.big.len() {
                    return Err(format!("pulled {n} bytes of {}", fx.big.len()).into());
                }
                Ok((vec![n as f64 / MB / secs], n as f64 / GB))
            })
            .await?;
        let name = format!("{} blob pull, one client", size_name(self.params.blob_size));
        self.rows(
            "1",
            &name,
            &measured[..2],
            &[("pull_single", "throughput", "MB/s", Better::Higher)],
            PER_GB,
        );
        let ceiling: Vec<f64> = measured[2].iter().map(|rep| rep[0]).collect();
        self.results.limit(
            "sendfile_mb_s",
            &format!(
                "nginx sendfile, same {} file, one client",
                size_name(self.params.blob_size)
            ),
            "MB/s",
            Summary::of(&ceiling),
        );
        Ok(())
    }

    /// 2: N clients each pull a different blob at once; aggregate throughput and the servers'
    /// peak RSS over all repetitions.
    pub async fn concurrent_pulls(&mut self, fx: &Fixtures) -> Result<()> {
        let watches = [
            PeakWatch::start(self.berth.pid()),
            PeakWatch::start(self.official.pid()),
        ];
        let measured = self
            .alternate(
                &self.registries(),
                self.params.reps,
                async |server: &Server, _rep| {
                    let start = Instant::now();
                    let tasks: Vec<_> = fx
                        .concurrent
                        .iter()
                        .map(|blob| {
                            let (target, digest) = (server.target(), blob.digest.clone());
                            tokio::spawn(async move {
                                let mut conn = Conn::connect(&target).await?;
                                api::pull_blob(&mut conn, PULL_REPO, &digest, false).await
                            })
                        })
                        .collect();
                    let mut total = 0;
                    for task in tasks {
                        total += task.await??;
                    }
                    let expected: u64 = fx.concurrent.iter().map(Blob::len).sum();
                    if total != expected {
                        return Err(format!("pulled {total} bytes of {expected}").into());
                    }
                    let mb_s = total as f64 / MB / start.elapsed().as_secs_f64();
                    Ok((vec![mb_s], total as f64 / GB))
                },
            )
            .await?;
        let [b, o] = watches.map(|w| w.finish() as f64 / MB);
        let p = self.params;
        let name = format!(
            "{} concurrent pulls of {} blobs",
            p.concurrent_pulls,
            size_name(p.concurrent_blob_size)
        );
        self.rows(
            "2",
            &name,
            &measured,
            &[(
                "pull_concurrent",
                "aggregate throughput",
                "MB/s",
                Better::Higher,
            )],
            PER_GB,
        );
        self.results.row(
            "rss_peak_pulls",
            "8",
            &format!("peak RSS during workload 2 ({name})"),
            "peak RSS",
            "MB",
            Better::Lower,
            Summary::of(&[b]),
            Summary::of(&[o]),
        );
        Ok(())
    }

    /// 3: the big blob pushed monolithically, then in chunks; a fresh blob every repetition
    /// (the same one to both registries), checked with HEAD and then deleted from disk.
    pub async fn pushes(&mut self) -> Result<()> {
        let p = self.params;
        let size = size_name(p.blob_size);
        for chunked in [false, true] {
            let blobs = self.source.fresh_blobs(p.reps, p.blob_size);
            let measured = self
                .alternate(&self.registries(), p.reps, async |server: &Server, rep| {
                    let blob = &blobs[rep];
                    let repo = "bench/push";
                    let mut conn = Conn::connect(&server.target()).await?;
                    let start = Instant::now();
                    if chunked {
                        api::push_chunked(
                            &mut conn,
                            repo,
                            blob.data.clone(),
                            &blob.digest,
                            p.chunk_size,
                        )
                        .await?;
                    } else {
                        api::push_monolithic(&mut conn, repo, blob.data.clone(), &blob.digest)
                            .await?;
                    }
                    let secs = start.elapsed().as_secs_f64();
                    api::check_blob(&mut conn, repo, blob).await?;
                    server.discard_blob(&blob.digest);
                    Ok((vec![blob.len() as f64 / MB / secs], blob.len() as f64 / GB))
                })
                .await?;
            if chunked {
                let name = format!("{size} chunked push, {} chunks", size_name(p.chunk_size));
                self.rows(
                    "3",
                    &name,
                    &measured,
                    &[("push_chunked", "throughput", "MB/s", Better::Higher)],
                    PER_GB,
                );
            } else {
                let name = format!("{size} monolithic push");
                self.rows(
                    "3",
                    &name,
                    &measured,
                    &[("push_monolithic", "throughput", "MB/s", Better::Higher)],
                    PER_GB,
                );
            }
        }
        Ok(())
    }

    /// 4 (manifest GET by tag) or 5 (blob HEAD): many connections asking the same small
    /// question back to back.
    pub async fn request_load(&mut self, fx: &Fixtures, head: bool) -> Result<()> {
        let p = self.params;
        let (id, key, what, spec) = if head {
            let spec = RequestSpec {
                method: Method::HEAD,
                path: format!("/v2/{SMALL_REPO}/blobs/{}", fx.small.layers[0].digest),
                headers: vec![],
                expect: StatusCode::OK,
            };
            ("5", "blob_head", "blob HEAD", spec)
        } else {
            let spec = RequestSpec {
                method: Method::GET,
                path: format!("/v2/{SMALL_REPO}/manifests/latest"),
                headers: vec![header("accept", OCI_MANIFEST)],
                expect: StatusCode::OK,
            };
            ("4", "manifest_get", "manifest GET by tag", spec)
        };
        let spec = Arc::new(spec);
        let load = self.load_spec(p.conns, p.duration_s);
        let measured = self
            .alternate(&self.registries(), p.reps, async |server: &Server, _rep| {
                let r = client::load(server.target(), &load, spec.clone()).await?;
                Ok((
                    vec![r.requests_per_s, r.p50_ms, r.p99_ms],
                    r.all_requests as f64 / 1000.0,
                ))
            })
            .await?;
        let name = format!("{what}, {} connections", p.conns);
        self.rows(
            id,
            &name,
            &measured,
            &[
                (&format!("{key}_rps"), "requests/s", "req/s", Better::Higher),
                (&format!("{key}_p50"), "p50 latency", "ms", Better::Lower),
                (&format!("{key}_p99"), "p99 latency", "ms", Better::Lower),
            ],
            PER_1000,
        );
        Ok(())
    }

    /// 6: the first catalog page at each repository count (populated by cross-repository
    /// mounts of one small blob), and the tag list of a repository with many tags.
    pub async fn listings(&mut self, fx: &Fixtures) -> Result<()> {
        let p = self.params;
        let mut populated = 0;
        for &count in &p.catalog_repos {
            let layer = fx.small.layers[0].digest.clone();
            let mut secs = Vec::new();
            for server in self.registries() {
                eprintln!(
                    "berth-bench: {}: populating {count} repositories",
                    server.name
                );
                let start = Instant::now();
                let layer = layer.clone();
                api::for_each(
                    server.target(),
                    p.populate_conns,
                    populated..count,
                    StatusCode::CREATED,
                    move |i| {
                        let path = format!(
                            "/v2/{}/blobs/uploads/?mount={layer}&from={SMALL_REPO}",
                            catalog_repo(i)
                        );
                        (Method::POST, path, vec![], Bytes::new())
                    },
                )
                .await
                .map_err(|e| format!("{}: populating the catalog: {e}", server.name))?;
                secs.push(start.elapsed().as_secs_f64());
                // The first page must be full and in order.
                let mut conn = Conn::connect(&server.target()).await?;
                let page = api::get_json(&mut conn, "/v2/_catalog?n=100", &[]).await?;
                let repos = page["repositories"].as_array().cloned().unwrap_or_default();
                let names: Vec<&str> = repos.iter().filter_map(|r| r.as_str()).collect();
                let full = if count >= 100 {
                    names.len() == 100
                } else {
                    names.len() >= count
                };
                if !full || !names.is_sorted() {
                    return Err(format!("{}: first catalog page at {count} repositories has {} entries (sorted: {})", server.name, names.len(), names.is_sorted()).into());
                }
            }
            self.results.population(
                &format!(
                    "{} repositories by cross-repository mount (from {})",
                    thousands(count),
                    thousands(populated)
                ),
                count - populated,
                secs[0],
                secs[1],
            );
            populated = count;
            let spec = Arc::new(RequestSpec {
                method: Method::GET,
                path: "/v2/_catalog?n=100".into(),
                headers: vec![],
                expect: StatusCode::OK,
            });
            let measured = self.listing_load(spec).await?;
            let name = format!(
                "catalog first page (n=100), {} repositories",
                thousands(count)
            );
            let key = format!("catalog_{count}");
            self.rows(
                "6",
                &name,
                &measured,
                &[
                    (&format!("{key}_p50"), "p50 latency", "ms", Better::Lower),
                    (
                        &format!("{key}_rps"),
                        "requests/s, one connection",
                        "req/s",
                        Better::Higher,
                    ),
                ],
                PER_REQUEST,
            );
        }

        // Tags: the small image's manifest under `tags` names in a repository of its own.
        let repo = "bench/tags";
        let mut secs = Vec::new();
        for server in self.registries() {
            let mut conn = Conn::connect(&server.target()).await?;
            for blob in fx.small.layers.iter().chain([&fx.small.config]) {
                api::push_monolithic(&mut conn, repo, blob.data.clone(), &blob.digest).await?;
            }
            let start = Instant::now();
            let manifest = fx.small.manifest.clone();
            api::for_each(
                server.target(),
                p.populate_conns,
                0..p.tags,
                StatusCode::CREATED,
                move |i| {
                    let path = format!("/v2/{repo}/manifests/t{i:06}");
                    (
                        Method::PUT,
                        path,
                        vec![header("content-type", OCI_MANIFEST)],
                        manifest.clone(),
                    )
                },
            )
            .await
            .map_err(|e| format!("{}: populating tags: {e}", server.name))?;
            secs.push(start.elapsed().as_secs_f64());
            let list = api::get_json(&mut conn, &format!("/v2/{repo}/tags/list"), &[]).await?;
            let n = list["tags"].as_array().map_or(0, Vec::len);
            if n != p.tags {
                return Err(
                    format!("{}: tag list has {n} tags, pushed {}", server.name, p.tags).into(),
                );
            }
        }
        self.results.population(
            &format!("{} tags by manifest PUT", thousands(p.tags)),
            p.tags,
            secs[0],
            secs[1],
        );
        let spec = Arc::new(RequestSpec {
            method: Method::GET,
            path: format!("/v2/{repo}/tags/list"),
            headers: vec![],
            expect: StatusCode::OK,
        });
        let measured = self.listing_load(spec).await?;
        let name = format!("tag list, {} tags", thousands(p.tags));
        self.rows(
            "6",
            &name,
            &measured,
            &[
                ("tags_list_p50", "p50 latency", "ms", Better::Lower),
                (
                    "tags_list_rps",
                    "requests/s, one connection",
                    "req/s",
                    Better::Higher,
                ),
            ],
            PER_REQUEST,
        );
        Ok(())
    }

    /// One connection asking back to back: latency of a single client.
    async fn listing_load(&self, spec: Arc<RequestSpec>) -> Result<Vec<Vec<Vec<f64>>>> {
        let load = self.load_spec(1, self.params.listing_duration_s);
        self.alternate(
            &self.registries(),
            self.params.reps,
            async |server: &Server, _rep| {
                let r = client::load(server.target(), &load, spec.clone()).await?;
                Ok((vec![r.p50_ms, r.requests_per_s], r.all_requests as f64))
            },
        )
        .await
    }

    /// 7: skopeo copies a fresh multi-layer image (an OCI layout) into the registry and back
    /// out into a fresh layout; wall time of each.
    pub async fn skopeo(&mut self) -> Result<()> {
        let p = self.params;
        let dir = self.work.join("skopeo");
        let images: Vec<(Image, PathBuf)> = (0..p.reps)
            .map(|rep| {
                let image = Image::generate(self.source, p.skopeo_layers, p.skopeo_layer_size);
                let layout = dir.join(format!("in-{rep}"));
                image.write_layout(&layout, "v1")?;
                Ok((image, layout))
            })
            .collect::<Result<_>>()?;
        let measured = self
            .alternate(&self.registries(), p.reps, async |server: &Server, rep| {
                let (image, layout) = &images[rep];
                let remote = format!("docker://{}/bench/skopeo:r{rep}", server.addr);
                let creds = server.skopeo_credentials();
                let start = Instant::now();
                skopeo(
                    &[
                        &["--dest-tls-verify=false"],
                        creds_args("--dest-creds", creds.as_deref()).as_slice(),
                        &[&format!("oci:{}:v1", layout.display()), &remote],
                    ]
                    .concat(),
                )?;
                let copy_in = start.elapsed().as_secs_f64();
                let out = dir.join(format!("out-{}-{rep}", server.name));
                let start = Instant::now();
                skopeo(
                    &[
                        &["--src-tls-verify=false"],
                        creds_args("--src-creds", creds.as_deref()).as_slice(),
                        &[&remote, &format!("oci:{}:v1", out.display())],
                    ]
                    .concat(),
                )?;
                let copy_out = start.elapsed().as_secs_f64();
                check_layout(&out, image)?;
                let _ = std::fs::remove_dir_all(&out);
                Ok((vec![copy_in, copy_out], 1.0))
            })
            .await?;
        let _ = std::fs::remove_dir_all(&dir);
        let name = format!(
            "skopeo copy, {}-layer image ({} layers)",
            p.skopeo_layers,
            size_name(p.skopeo_layer_size)
        );
        self.rows(
            "7",
            &name,
            &measured,
            &[
                (
                    "skopeo_in",
                    "wall time into the registry",
                    "s",
                    Better::Lower,
                ),
                (
                    "skopeo_out",
                    "wall time out of the registry",
                    "s",
                    Better::Lower,
                ),
            ],
            "server CPU per copy in + out",
        );
        Ok(())
    }

    /// 8: peak RSS while N clients push distinct blobs at once (one repetition per
    /// registry: it is a memory measurement; the throughput is shown for information).
    pub async fn memory_pushes(&mut self) -> Result<()> {
        let p = self.params;
        let blobs = self.source.fresh_blobs(p.memory_pushes, p.memory_push_size);
        let measured = self
            .alternate(&self.registries(), 1, async |server: &Server, _rep| {
                let watch = PeakWatch::start(server.pid());
                let start = Instant::now();
                let tasks: Vec<_> = blobs
                    .iter()
                    .map(|blob| {
                        let (target, blob) = (server.target(), blob.clone());
                        tokio::spawn(async move {
                            let mut conn = Conn::connect(&target).await?;
                            api::push_monolithic(&mut conn, "bench/memory", blob.data, &blob.digest)
                                .await
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await??;
                }
                let secs = start.elapsed().as_secs_f64();
                let peak = watch.finish() as f64 / MB;
                let mut conn = Conn::connect(&server.target()).await?;
                for blob in &blobs {
                    api::check_blob(&mut conn, "bench/memory", blob).await?;
                    server.discard_blob(&blob.digest);
                }
                let total: u64 = blobs.iter().map(Blob::len).sum();
                Ok((vec![peak, total as f64 / MB / secs], total as f64 / GB))
            })
            .await?;
        let name = format!(
            "{} concurrent {} pushes",
            p.memory_pushes,
            size_name(p.memory_push_size)
        );
        self.rows(
            "8",
            &format!("peak RSS during {name}"),
            &measured,
            &[
                ("rss_peak_pushes", "peak RSS", "MB", Better::Lower),
                (
                    "push_concurrent",
                    "aggregate push throughput (information)",
                    "MB/s",
                    Better::Higher,
                ),
            ],
            PER_GB,
        );
        Ok(())
    }
}

impl Bench<'_> {
    /// 8 (token profile): resident memory after a burst of failed logins: 160 wrong
    /// passwords on `/v2/` with Basic credentials, 16 at a time, each of the 16 clients from
    /// a loopback address of its own (so that throttling refuses few and most cost a password
    /// check), every other one for the harness's user and the rest for unknown names. The
    /// official registry (which trusts berth's tokens) checks no password and only answers
    /// 401; in A/B mode both columns are berth builds.
    pub async fn failed_logins(&mut self) -> Result<()> {
        const CLIENTS: usize = 16;
        const ATTEMPTS: usize = 10;
        let measured = self
            .alternate(&self.registries(), 1, async |server: &Server, rep| {
                let watch = PeakWatch::start(server.pid());
                let target = client::Target::plain(server.target().addr);
                let mut tasks = tokio::task::JoinSet::new();
                for worker in 0..CLIENTS {
                    let target = target.clone();
                    tasks.spawn(async move {
                        let from = std::net::Ipv4Addr::new(127, 0, 9 + rep as u8, worker as u8 + 1);
                        for attempt in 0..ATTEMPTS {
                            let user = if attempt % 2 == 0 {
                                crate::token_auth::USER.to_string()
                            } else {
                                format!("nobody-{worker}-{attempt}")
                            };
                            let credentials = data_encoding::BASE64
                                .encode(format!("{user}:wrong password {attempt}").as_bytes());
                            let mut conn = Conn::connect_from(&target, from.into()).await?;
                            let response = conn
                                .send(
                                    Method::GET,
                                    "/v2/",
                                    &[header("authorization", &format!("Basic {credentials}"))],
                                    Bytes::new(),
                                )
                                .await?;
                            if ![StatusCode::UNAUTHORIZED, StatusCode::TOO_MANY_REQUESTS]
                                .contains(&response.status)
                            {
                                return Err(
                                    format!("a wrong password got {}", response.status).into()
                                );
                            }
                            response.drain(None).await?;
                        }
                        Ok::<_, crate::Error>(())
                    });
                }
                while let Some(done) = tasks.join_next().await {
                    done??;
                }
                let peak = watch.finish() as f64 / MB;
                tokio::time::sleep(Duration::from_secs(1)).await;
                let after = server.rss_bytes()? as f64 / MB;
                Ok((vec![after, peak], (CLIENTS * ATTEMPTS) as f64 / 1000.0))
            })
            .await?;
        self.rows(
            "8",
            &format!(
                "RSS after {} failed logins ({CLIENTS} at a time)",
                CLIENTS * ATTEMPTS
            ),
            &measured,
            &[
                (
                    "rss_failed_logins",
                    "RSS a second after",
                    "MB",
                    Better::Lower,
                ),
                ("rss_failed_logins_peak", "peak RSS", "MB", Better::Lower),
            ],
            PER_1000,
        );
        Ok(())
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
