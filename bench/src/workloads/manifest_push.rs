//! 9: the latency of a manifest push, the write that makes events (manifest pushed, tag
//! created) and, with webhooks, outbox rows in the same transaction: the figure that shows
//! what event delivery costs a push.

use std::time::Instant;

use bytes::Bytes;

use super::{Bench, Fixtures, PER_1000, SMALL_REPO};
use crate::Result;
use crate::api;
use crate::client::Conn;
use crate::report::Better;
use crate::servers::Server;
use crate::stats::percentile_us;

impl Bench<'_> {
    /// Pushes fresh manifests (the small image's, each with its own annotation, so each is a
    /// new digest) under new tags, one at a time on one connection, and times each `PUT`.
    pub async fn manifest_pushes(&mut self, fx: &Fixtures) -> Result<()> {
        let pushes = self.params.manifest_pushes;
        let template: serde_json::Value = serde_json::from_slice(&fx.small.manifest)?;
        let measured = self
            .alternate(
                &self.registries(),
                self.params.reps,
                async |server: &Server, rep| {
                    let mut conn = Conn::connect(&server.target()).await?;
                    let mut latencies_us = Vec::with_capacity(pushes);
                    let started = Instant::now();
                    for i in 0..pushes {
                        let mut manifest = template.clone();
                        manifest["annotations"] =
                            serde_json::json!({ "org.berth.bench.push": format!("{rep}-{i}") });
                        let body = Bytes::from(serde_json::to_vec(&manifest)?);
                        let tag = format!("push-{rep}-{i}");
                        let t = Instant::now();
                        api::put_manifest(&mut conn, SMALL_REPO, &tag, body).await?;
                        latencies_us.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    }
                    let per_s = pushes as f64 / started.elapsed().as_secs_f64();
                    latencies_us.sort_unstable();
                    let p50 = percentile_us(&latencies_us, 0.5) / 1000.0;
                    let p90 = percentile_us(&latencies_us, 0.9) / 1000.0;
                    let p99 = percentile_us(&latencies_us, 0.99) / 1000.0;
                    Ok((vec![p50, p90, p99, per_s], pushes as f64 / 1000.0))
                },
            )
            .await?;
        self.rows(
            "9",
            "manifest push (PUT by new tag), one connection",
            &measured,
            &[
                ("manifest_push_p50", "p50 latency", "ms", Better::Lower),
                ("manifest_push_p90", "p90 latency", "ms", Better::Lower),
                ("manifest_push_p99", "p99 latency", "ms", Better::Lower),
                (
                    "manifest_push_rps",
                    "pushes/s, one connection",
                    "req/s",
                    Better::Higher,
                ),
            ],
            PER_1000,
        );
        Ok(())
    }
}
