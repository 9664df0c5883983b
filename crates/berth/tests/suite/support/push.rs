//! Pushing content over the raw HTTP API, for tests that need fixtures.

use super::{Berth, bytes, sha256};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// An image pushed by [`push_image`].
pub struct PushedImage {
    pub manifest: Vec<u8>,
    pub digest: String,
    /// Config first, then layers.
    pub blobs: Vec<(String, Vec<u8>)>,
}

/// Monolithic upload (`POST ?digest=`); returns the digest.
pub async fn push_blob(client: &reqwest::Client, berth: &Berth, repo: &str, data: &[u8]) -> String {
    let digest = sha256(data);
    let response = client
        .post(berth.url(&format!("/v2/{repo}/blobs/uploads/?digest={digest}")))
        .body(data.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        201,
        "blob push: {}",
        response.text().await.unwrap()
    );
    digest
}

pub async fn put_manifest(
    client: &reqwest::Client,
    berth: &Berth,
    repo: &str,
    reference: &str,
    media_type: &str,
    manifest: &[u8],
) -> reqwest::Response {
    client
        .put(berth.url(&format!("/v2/{repo}/manifests/{reference}")))
        .header("content-type", media_type)
        .body(manifest.to_vec())
        .send()
        .await
        .unwrap()
}

/// An OCI image manifest over the given config and layers.
pub fn image_manifest(config: &(String, Vec<u8>), layers: &[(String, Vec<u8>)]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.0, "size": config.1.len()},
        "layers": layers.iter().map(|(digest, data)| serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest, "size": data.len()
        })).collect::<Vec<_>>(),
    }))
    .unwrap()
}

/// Pushes a small image (a config and `layers` layers, contents derived from `seed`) and tags it.
pub async fn push_image(
    client: &reqwest::Client,
    berth: &Berth,
    repo: &str,
    tag: &str,
    seed: u64,
    layers: usize,
) -> PushedImage {
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "seed": seed,
        "rootfs": {"type": "layers", "diff_ids": []}
    }))
    .unwrap();
    let mut blobs = vec![(push_blob(client, berth, repo, &config).await, config)];
    for i in 0..layers {
        let data = bytes(1000 + i * 517, seed * 100 + i as u64);
        blobs.push((push_blob(client, berth, repo, &data).await, data));
    }
    let manifest = image_manifest(&blobs[0], &blobs[1..]);
    let response = put_manifest(client, berth, repo, tag, OCI_MANIFEST, &manifest).await;
    assert_eq!(
        response.status(),
        201,
        "manifest push: {}",
        response.text().await.unwrap()
    );
    PushedImage {
        digest: sha256(&manifest),
        manifest,
        blobs,
    }
}
