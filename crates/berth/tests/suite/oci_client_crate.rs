//! The `oci-client` crate (the Rust registry client used by wasm and policy tooling) pushes
//! and pulls through berth: monolithic and chunked blob pushes, manifests, tags.

use crate::support::{Berth, bytes, sha256};
use futures_util::StreamExt;
use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

fn oci_client(monolithic: bool) -> Client {
    Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        use_monolithic_push: monolithic,
        ..Default::default()
    })
}

#[tokio::test]
async fn push_and_pull_an_image() {
    let berth = Berth::start();
    for (monolithic, repo) in [(true, "rust/mono"), (false, "rust/chunked")] {
        let client = oci_client(monolithic);
        let reference: Reference = format!("{}/{repo}:v1", berth.host()).parse().unwrap();
        let layers = vec![
            ImageLayer::oci_v1_gzip(bytes(2_000_000, 1), None),
            ImageLayer::oci_v1_gzip(bytes(1234, 2), None),
        ];
        let config = Config::oci_v1(br#"{"architecture":"amd64","os":"linux"}"#.to_vec(), None);
        let pushed = client
            .push(&reference, &layers, config, &RegistryAuth::Anonymous, None)
            .await
            .expect("push");
        assert!(
            pushed
                .manifest_url
                .contains(&format!("/v2/{repo}/manifests/")),
            "{}",
            pushed.manifest_url
        );

        let pulled = oci_client(true)
            .pull(
                &reference,
                &RegistryAuth::Anonymous,
                vec![oci_client::manifest::IMAGE_LAYER_GZIP_MEDIA_TYPE],
            )
            .await
            .expect("pull");
        // The client downloads layers concurrently and returns them as they finish.
        let mut pushed_digests: Vec<String> = layers.iter().map(|l| sha256(&l.data)).collect();
        let mut pulled_digests: Vec<String> =
            pulled.layers.iter().map(|l| sha256(&l.data)).collect();
        pushed_digests.sort();
        pulled_digests.sort();
        assert_eq!(pulled_digests, pushed_digests);

        // The digest the client computed is berth's digest of the exact bytes it serves.
        let (raw, digest) = oci_client(true)
            .pull_manifest_raw(
                &reference,
                &RegistryAuth::Anonymous,
                &[oci_client::manifest::OCI_IMAGE_MEDIA_TYPE],
            )
            .await
            .unwrap();
        assert_eq!(sha256(&raw), digest);
        assert_eq!(pulled.digest.as_deref(), Some(digest.as_str()));

        let tags = oci_client(true)
            .list_tags(&reference, &RegistryAuth::Anonymous, None, None)
            .await
            .unwrap();
        assert_eq!(tags.tags, vec!["v1"]);
    }
}

#[tokio::test]
async fn chunked_stream_push() {
    let berth = Berth::start();
    let client = oci_client(false);
    let reference: Reference = format!("{}/rust/stream:latest", berth.host())
        .parse()
        .unwrap();
    let data = bytes(5_000_000, 3);
    let chunks: Vec<oci_client::errors::Result<bytes::Bytes>> = data
        .chunks(333_333)
        .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
        .collect();
    let response = client
        .push_blob_stream_chunked(&reference, futures_util::stream::iter(chunks).boxed())
        .await
        .expect("chunked push");
    assert_eq!(response.blob_digest, sha256(&data));
    assert_eq!(response.size, data.len() as u64);
    let pulled = crate::support::client()
        .get(berth.url(&format!("/v2/rust/stream/blobs/{}", response.blob_digest)))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(sha256(&pulled), sha256(&data));
}
