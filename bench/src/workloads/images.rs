//! 7-8: images copied in and out by skopeo, and peak memory while many clients push.

use std::path::PathBuf;
use std::time::Instant;

use super::{Bench, GB, MB, PER_GB, check_layout, creds_args, size_name, skopeo};
use crate::Result;
use crate::api;
use crate::client::Conn;
use crate::data::{Blob, Image};
use crate::report::Better;
use crate::servers::{PeakWatch, Server};

impl Bench<'_> {
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
