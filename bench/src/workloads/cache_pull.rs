//! 10: pulls through a pull-through cache. A third registry (Debian's `docker-registry`) is
//! the upstream; berth mirrors it in registry:2's proxy mode (`proxy.remoteurl`) and so does
//! the official registry. Each repetition pushes a fresh multi-layer image to the upstream
//! (not timed), then skopeo pulls it through each cache twice: cold (nothing cached: every
//! blob comes from the upstream through the cache) and warm (everything cached, the tag
//! within its revalidation window). Pulling the same image from the upstream directly is the
//! reference: a cold pull cannot be faster.

use std::path::Path;
use std::time::Instant;

use super::{Bench, check_layout, size_name, skopeo};
use crate::Result;
use crate::data::Image;
use crate::report::Better;
use crate::servers::{self, Profile, Server};
use crate::stats::Summary;

/// Server CPU per pull (cold and warm together), the unit `alternate` divides by.
const PER_PULL: &str = "server CPU per cold + warm pull";

impl Bench<'_> {
    pub async fn cache_pulls(&mut self, berth_bin: &Path) -> Result<()> {
        let p = self.params;
        let work = self.work.join("cache");
        std::fs::create_dir_all(&work)?;
        let upstream = servers::start_docker_registry("upstream", &work, "").await?;
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
        let official = servers::start_docker_registry("official-cache", &work, &proxy).await?;

        let pull = |from: &str, out: &Path| -> Result<f64> {
            let start = Instant::now();
            skopeo(&[
                "--src-tls-verify=false",
                &format!("docker://{from}"),
                &format!("oci:{}:v1", out.display()),
            ])?;
            Ok(start.elapsed().as_secs_f64())
        };
        let mut direct = Vec::new();
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
            let out = work.join(format!("direct-{rep}"));
            direct.push(pull(
                &format!("{}/bench/cache{rep}:v1", upstream.addr),
                &out,
            )?);
            check_layout(&out, &image)?;
            let _ = std::fs::remove_dir_all(&out);
            images.push(image);
        }
        let caches: [&Server; 2] = [&berth, &official];
        let measured = self
            .alternate(&caches, p.reps, async |server: &Server, rep| {
                let image = &images[rep];
                let from = format!("{}/bench/cache{rep}:v1", server.addr);
                let mut times = Vec::new();
                for pass in ["cold", "warm"] {
                    let out = work.join(format!("{}-{pass}-{rep}", server.name));
                    times.push(pull(&from, &out)?);
                    check_layout(&out, image)?;
                    let _ = std::fs::remove_dir_all(&out);
                }
                Ok((times, 1.0))
            })
            .await?;
        for server in [&upstream, &berth, &official] {
            server.check_alive()?;
        }
        self.results.limit(
            "cache_direct_s",
            "skopeo pull of the same image from the upstream directly (workload 10's reference)",
            "s",
            Summary::of(&direct),
        );
        let name = format!(
            "pull through a cache (proxy.remoteurl), {}-layer image ({} layers)",
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
            ],
            PER_PULL,
        );
        drop((berth, official, upstream));
        let _ = std::fs::remove_dir_all(&work);
        Ok(())
    }
}
