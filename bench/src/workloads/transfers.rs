//! 1-3: a big blob pulled by one client (against nginx's sendfile ceiling), many blobs
//! pulled at once, and pushes, monolithic and chunked.

use std::time::Instant;

use super::{Bench, Fixtures, GB, MB, PER_GB, PULL_REPO, size_name};
use crate::Result;
use crate::api;
use crate::client::Conn;
use crate::data::Blob;
use crate::report::Better;
use crate::servers::{PeakWatch, Server};
use crate::stats::Summary;

impl Bench<'_> {
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
}
