//! 10: pulls through a pull-through cache. A third registry (Debian's `docker-registry`) is
//! the upstream; berth mirrors it in registry:2's proxy mode (`proxy.remoteurl`) and so does
//! the official registry. Each repetition pushes a fresh multi-layer image to the upstream
//! (not timed), then skopeo pulls it through each cache twice: cold (nothing cached: every
//! blob comes from the upstream through the cache) and warm (everything cached, the tag
//! within its revalidation window). Pulling the same image from the upstream directly is the
//! reference: a cold pull cannot be faster. The direct pull takes its turn in the same
//! rotation as the caches, so that a noisy machine disturbs it alike, and each cold pull is
//! also given as a ratio to the direct pull of its own repetition. With `--baseline`, that
//! berth is the second cache instead of the official registry (an A/B run of a change).

use std::path::Path;
use std::time::Instant;

use super::{Bench, check_layout, size_name, skopeo};
use crate::Result;
use crate::data::Image;
use crate::link::ShapedLink;
use crate::report::Better;
use crate::servers::{self, Profile, Server};
use crate::stats::Summary;

/// Server CPU per pull (cold and warm together), the unit `alternate` divides by.
const PER_PULL: &str = "server CPU per cold + warm pull";

impl Bench<'_> {
    pub async fn cache_pulls(&mut self, berth_bin: &Path, baseline: Option<&Path>) -> Result<()> {
        let p = self.params;
        let work = self.work.join("cache");
        std::fs::create_dir_all(&work)?;
        let upstream = servers::start_docker_registry("upstream", &work, "").await?;
        // The caches and the direct pull read from the upstream across the same link; the
        // images are pushed before each pull, when nothing else is on it.
        let link = match p.upstream_rate {
            Some(rate) => Some(ShapedLink::in_front_of(upstream.addr, rate as u64)?),
            None => None,
        };
        let proxy = format!("proxy:\n  remoteurl: http://{}\n", upstream.addr);
        let config = work.join("berth-cache.yml");
        std::fs::write(&config, &proxy)?;
        let berth = servers::start_berth_named(
            "berth-cache",
            berth_bin,
            Some(&config),
            &work,
            Profile::Open,
        )
        .await?;
        let official = match baseline {
            Some(binary) => {
                servers::start_berth_named(
                    "baseline-cache",
                    binary,
                    Some(&config),
                    &work,
                    Profile::Open,
                )
                .await?
            }
            None => servers::start_docker_registry("official-cache", &work, &proxy).await?,
        };

        let pull = |from: &str, out: &Path| -> Result<f64> {
            let start = Instant::now();
            skopeo(&[
                "--src-tls-verify=false",
                &format!("docker://{from}"),
                &format!("oci:{}:v1", out.display()),
            ])?;
            Ok(start.elapsed().as_secs_f64())
        };
        let mut images: Vec<Image> = Vec::new();
        for rep in 0..p.reps {
            let image = Image::generate(self.source, p.skopeo_layers, p.skopeo_layer_size);
            let layout = work.join(format!("in-{rep}"));
            image.write_layout(&layout, "v1")?;
            skopeo(&[
                "--dest-tls-verify=false",
                &format!("oci:{}:v1", layout.display()),
                &format!("docker://{}/bench/cache{rep}:v1", upstream.addr),
            ])?;
            let _ = std::fs::remove_dir_all(&layout);
            images.push(image);
        }
        // The upstream's turn is the direct pull (one pass; its CPU is the upstream's).
        let turns: [&Server; 3] = [&berth, &official, &upstream];
        let mut measured = self
            .alternate(&turns, p.reps, async |server: &Server, rep| {
                let image = &images[rep];
                let from = format!("{}/bench/cache{rep}:v1", server.addr);
                let direct = server.addr == upstream.addr;
                let mut times = Vec::new();
                let mut cold_cpu = 0.0;
                let passes: &[&str] = if direct {
                    &["direct"]
                } else {
                    &["cold", "warm"]
                };
                for &pass in passes {
                    let out = work.join(format!("{}-{pass}-{rep}", server.name));
                    let cpu = server.cpu_seconds();
                    times.push(pull(&from, &out)?);
                    if pass == "cold" {
                        cold_cpu = (server.cpu_seconds() - cpu) * 1000.0;
                    }
                    check_layout(&out, image)?;
                    let _ = std::fs::remove_dir_all(&out);
                }
                if !direct {
                    times.push(cold_cpu);
                }
                Ok((times, 1.0))
            })
            .await?;
        for server in [&upstream, &berth, &official] {
            server.check_alive()?;
        }
        let direct: Vec<f64> = measured
            .pop()
            .expect("three turns")
            .iter()
            .map(|r| r[0])
            .collect();
        self.results.limit(
            "cache_direct_s",
            "skopeo pull of the same image from the upstream directly (workload 10's reference)",
            "s",
            Summary::of(&direct),
        );
        for (s, key, cache) in [
            (0, "cache_cold_over_direct", "berth"),
            (
                1,
                "cache_cold_over_direct_other",
                if baseline.is_some() {
                    "the baseline berth"
                } else {
                    "the official registry"
                },
            ),
        ] {
            let ratios: Vec<f64> = measured[s]
                .iter()
                .zip(&direct)
                .map(|(rep, direct)| rep[0] / direct)
                .collect();
            self.results.limit(
                key,
                &format!("cold pull through {cache} / direct pull, same repetition"),
                "×",
                Summary::of(&ratios),
            );
        }
        let across = match &link {
            Some(link) => format!(
                ", upstream across a {}/s link",
                size_name(link.rate as usize)
            ),
            None => String::new(),
        };
        let name = format!(
            "pull through a cache (proxy.remoteurl), {}-layer image ({} layers){across}",
            p.skopeo_layers,
            size_name(p.skopeo_layer_size)
        );
        self.rows(
            "10",
            &name,
            &measured,
            &[
                (
                    "cache_cold",
                    "cold pull (nothing cached), skopeo wall time",
                    "s",
                    Better::Lower,
                ),
                (
                    "cache_warm",
                    "warm pull (all cached), skopeo wall time",
                    "s",
                    Better::Lower,
                ),
                (
                    "cache_cold_pull_cpu",
                    "server CPU per cold pull",
                    "ms",
                    Better::Lower,
                ),
            ],
            PER_PULL,
        );
        drop((berth, official, upstream, link));
        let _ = std::fs::remove_dir_all(&work);
        Ok(())
    }
}
