//! Fills a registry through the calls a push makes: blobs uploaded once and linked into each
//! repository, then a manifest per repository (and 10k in the big one), each recorded with
//! its details and search entries as a real push would.

use std::sync::Arc;

use berth_meta::Origin;
use berth_oci::{Algorithm, Digest, Reference, RepositoryName, Tag};
use berth_registry::Registry;
use bytes::Bytes;

/// The repository with many tags.
pub const BIG: &str = "bench/big/app";
/// Pushes in flight at once while populating.
const WORKERS: usize = 8;

/// The benchmark's pushes, as the events they cause name them.
fn origin() -> Arc<Origin> {
    Arc::new(Origin::system("dashboard-bench"))
}

pub fn repository_name(i: usize) -> String {
    format!("bench/ns{:03}/app{i:06}", i % 200)
}

pub fn big_tag(i: usize) -> String {
    format!("t{i:05}")
}

struct Seed {
    /// (digest, size) of each config: one with labels, one without.
    configs: [(Digest, u64); 2],
    layer: (Digest, u64),
}

async fn upload(
    registry: &Registry,
    repository: &RepositoryName,
    content: Vec<u8>,
) -> (Digest, u64) {
    let digest = Digest::of(Algorithm::Sha256, &content);
    let size = content.len() as u64;
    let body: berth_storage::ByteStream =
        Box::pin(futures_util::stream::iter([Ok(Bytes::from(content))]));
    registry
        .upload_blob(&origin(), repository, &digest, Some(size), body)
        .await
        .expect("seed blob");
    (digest, size)
}

async fn seed(registry: &Registry) -> Seed {
    let seed = RepositoryName::parse("bench/seed").unwrap();
    let labelled = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "created": "2026-11-01T00:00:00Z",
        "config": {
            "Entrypoint": ["/app"], "Env": ["PATH=/usr/bin"],
            "Labels": {
                "org.opencontainers.image.vendor": "Quuxcorp",
                "org.opencontainers.image.title": "frontend",
                "org.opencontainers.image.description": "The Quuxcorp frontend, for benchmarks",
            },
        },
        "history": [{"created_by": "COPY app /app"}],
        "rootfs": {"type": "layers", "diff_ids": ["sha256:0000000000000000000000000000000000000000000000000000000000000000"]},
    });
    let plain = serde_json::json!({
        "architecture": "arm64", "os": "linux",
        "config": {"Entrypoint": ["/app"]},
        "rootfs": {"type": "layers", "diff_ids": []},
    });
    Seed {
        configs: [
            upload(registry, &seed, serde_json::to_vec(&labelled).unwrap()).await,
            upload(registry, &seed, serde_json::to_vec(&plain).unwrap()).await,
        ],
        layer: upload(registry, &seed, vec![7; 4096]).await,
    }
}

async fn push(registry: &Registry, seed: &Seed, repository: &str, tag: &str, labelled: bool) {
    let name = RepositoryName::parse(repository).unwrap();
    let config = &seed.configs[usize::from(!labelled)];
    for (digest, size) in [config, &seed.layer] {
        registry
            .adopt_blob(&origin(), &name, digest, *size)
            .await
            .unwrap();
    }
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.0.as_str(), "size": config.1},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": seed.layer.0.as_str(), "size": seed.layer.1}],
        "annotations": {"org.opencontainers.image.ref.name": format!("{repository}:{tag}")},
    });
    registry
        .put_manifest(
            &origin(),
            &name,
            &Reference::Tag(Tag::parse(tag).unwrap()),
            Some("application/vnd.oci.image.manifest.v1+json"),
            Bytes::from(serde_json::to_vec(&manifest).unwrap()),
        )
        .await
        .unwrap_or_else(|e| panic!("pushing {repository}:{tag}: {}", e.message));
}

/// `repos` repositories with one tag each (every tenth image labelled by "Quuxcorp"), and
/// [`BIG`] with `tags` tags.
pub async fn populate(registry: &Arc<Registry>, repos: usize, tags: usize) {
    let seed = Arc::new(seed(registry).await);
    let mut workers = Vec::new();
    for worker in 0..WORKERS {
        let registry = Arc::clone(registry);
        let seed = Arc::clone(&seed);
        workers.push(tokio::spawn(async move {
            for i in (worker..repos).step_by(WORKERS) {
                push(&registry, &seed, &repository_name(i), "v1", i % 10 == 0).await;
            }
            for i in (worker..tags).step_by(WORKERS) {
                push(&registry, &seed, BIG, &big_tag(i), i % 2 == 0).await;
            }
        }));
    }
    for worker in workers {
        worker.await.unwrap();
    }
}
