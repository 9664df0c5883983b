//! 4-6: many connections asking for the same manifest or blob HEAD, and catalog and tag
//! list pages.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{Method, StatusCode};

use super::{Bench, Fixtures, PER_1000, PER_REQUEST, SMALL_REPO, catalog_repo, thousands};
use crate::Result;
use crate::api;
use crate::client::{self, Conn, RequestSpec, header};
use crate::data::OCI_MANIFEST;
use crate::report::Better;
use crate::servers::Server;

impl Bench<'_> {
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
}
