//! A remote's size cap (`maxsize`): past it the least recently pulled images are evicted
//! (after the fill that crossed it, by the `cache-eviction` job), garbage collection frees
//! their bytes unless another repository still references them, and an evicted image is
//! fetched again on its next pull.

use std::time::{Duration, Instant};

use super::*;
use crate::support::push::{image_manifest, push_blob, put_manifest};

/// Bytes that do not compress (so a layer is about as large as its file): a SHA-256 chain.
fn incompressible(seed: &str, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    let mut block = sha2::Sha256::digest(seed.as_bytes());
    while out.len() < len {
        out.extend_from_slice(&block);
        block = sha2::Sha256::digest(block);
    }
    out.truncate(len);
    out
}

/// berth in its own auth mode on `data` with its config file: `root` an administrator,
/// anonymous pulls allowed in `up/**` and `mine/**`.
fn start(data: &std::path::Path) -> Berth {
    Berth::builder()
        .data(data)
        .env("REGISTRY_AUTH", "berth")
        .env("BERTH_CONFIG", data.join("berth.yml").to_str().unwrap())
        .start()
}

/// The remote `up`'s status in `GET /api/v1/remotes`.
async fn up_status(berth: &Berth) -> serde_json::Value {
    let listed: serde_json::Value = client()
        .get(berth.url("/api/v1/remotes"))
        .basic_auth("root", Some("root-password"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    listed["remotes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "up")
        .cloned()
        .unwrap_or_else(|| panic!("up in {listed}"))
}

/// Waits until the remote has evicted `n` images (the job runs after each fill).
async fn wait_for_evictions(berth: &Berth, n: u64) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let up = up_status(berth).await;
        if up["status"]["evictions"].as_u64().unwrap() >= n {
            return up;
        }
        assert!(
            Instant::now() < deadline,
            "no eviction within 30 s: {up}\n{}",
            berth.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn past_its_size_cap_a_remote_evicts_the_least_recently_pulled_image_and_fetches_it_again() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = OfficialRegistry::start_logged(dir.path(), None);
    let sandbox = Sandbox::new();
    // Four images of one ~300 kB layer each; the cap holds three.
    let mut images = Vec::new();
    for name in ["a", "b", "c", "d"] {
        let content = incompressible(name, 300_000);
        let target = format!("{}/team/{name}:v1", upstream.host());
        images
            .push(skopeo_push(&sandbox, &format!("layout-{name}"), &content, &target, None).await);
    }
    let data = tempfile::tempdir().unwrap();
    std::fs::write(
        data.path().join("berth.yml"),
        remote_config(&upstream.base, "    maxsize: 1MB\n"),
    )
    .unwrap();
    let output = berth_cli_output(
        data.path(),
        &["user", "add", "root", "--admin", "--password-stdin"],
        Some("root-password\n"),
    );
    assert!(output.status.success(), "{output:?}");
    for pattern in ["up/**", "mine/**"] {
        berth_cli(
            data.path(),
            &["policy", "add", "anonymous", pattern, "pull"],
        );
    }
    let berth = start(data.path());
    let pull = |name: &str, out: &str| {
        let image = format!("{}/up/team/{name}:v1", berth.host());
        let out = out.to_string();
        let sandbox = &sandbox;
        async move { skopeo_pull(sandbox, &image, None, &out).await.unwrap().0 }
    };
    let manifest_gets =
        |name: &str| upstream_requests(&upstream, "GET", &format!("/v2/team/{name}/manifests/v1"));

    // a, b, c fit.
    assert_eq!(pull("a", "a1").await, images[0].digest);
    assert_eq!(pull("b", "b1").await, images[1].digest);
    assert_eq!(pull("c", "c1").await, images[2].digest);
    // A pull's requests a moment apart count as one pull in progress: let those end.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let up = up_status(&berth).await;
    assert_eq!(up["max_size"], 1_000_000);
    assert_eq!(up["status"]["evictions"], 0, "{up}");

    // a pulled again (from the cache: no upstream request), then d crosses the cap.
    let podman = podman_pull(
        &sandbox,
        "podman",
        &format!("{}/up/team/a:v1", berth.host()),
    )
    .await
    .unwrap();
    assert_eq!(podman, images[0].digest);
    assert_eq!(manifest_gets("a"), 1, "a came from the cache");
    // So that only the order of pulls protects a now.
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert_eq!(pull("d", "d1").await, images[3].digest);

    // b, the least recently pulled, goes; the rest stay.
    let up = wait_for_evictions(&berth, 1).await;
    let status = &up["status"];
    assert_eq!(status["evictions"], 1, "{up}");
    assert!(status["evicted_bytes"].as_u64().unwrap() > 300_000, "{up}");
    assert!(
        status["cached_bytes"].as_u64().unwrap() <= 1_000_000,
        "{up}"
    );
    let tags = |name: &str| {
        let url = berth.url(&format!("/v2/up/team/{name}/tags/list"));
        async move {
            let body: serde_json::Value = client()
                .get(url)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            body["tags"].clone()
        }
    };
    assert_eq!(tags("b").await, serde_json::json!([]), "b was evicted");
    for kept in ["a", "c", "d"] {
        assert_eq!(tags(kept).await, serde_json::json!(["v1"]), "{kept} stays");
    }
    assert!(logs(&berth, "evicted a cached image").await);
    // Shown in the metrics and the job's status.
    let metrics = client()
        .get(berth.url("/metrics"))
        .basic_auth("root", Some("root-password"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("berth_cache_evictions_total{remote=\"up\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("berth_cache_bytes{remote=\"up\"}"),
        "{metrics}"
    );

    // b's layer is also in a local image (with another config): garbage collection frees
    // b's config and keeps the layer.
    let root = {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            "authorization",
            "Basic cm9vdDpyb290LXBhc3N3b3Jk".parse().unwrap(),
        );
        reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .unwrap()
    };
    let layer = images[1].blobs[1].clone();
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
            .to_vec();
    let config = (push_blob(&root, &berth, "mine/b", &config).await, config);
    assert_eq!(push_blob(&root, &berth, "mine/b", &layer.1).await, layer.0);
    let manifest = image_manifest(&config, std::slice::from_ref(&layer));
    let response = put_manifest(&root, &berth, "mine/b", "v1", OCI_MANIFEST, &manifest).await;
    assert_eq!(response.status(), 201);
    drop(berth);
    let output = crate::support::berth_cli_output_env(
        data.path(),
        &[
            ("BERTH_GC_GRACE", "0s"),
            ("BERTH_RETENTION_TAGHISTORY", "1ms"),
        ],
        &["gc"],
        None,
    );
    assert!(output.status.success(), "{output:?}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let freed = &report["repositories"]["up/team/b"];
    assert_eq!(
        freed["blobs"], 1,
        "b's config goes, its layer stays: {report}"
    );
    assert_eq!(report["blobs"], 1, "{report}");

    let berth = start(data.path());
    let (digest, _) = fetch_blob(
        &client(),
        &berth.url(&format!("/v2/mine/b/blobs/{}", layer.0)),
    )
    .await
    .unwrap();
    assert_eq!(digest, layer.0, "the shared layer is intact");
    // b's config is gone from storage: the cache fetches it again below.

    // The evicted image comes back from the upstream on its next pull.
    let image = format!("{}/up/team/b:v1", berth.host());
    let (digest, layout) = skopeo_pull(&sandbox, &image, None, "b2").await.unwrap();
    assert_eq!(digest, images[1].digest);
    for (blob, data) in &images[1].blobs {
        assert_eq!(
            &layout_blob(&layout, blob),
            data,
            "blob {blob} byte for byte"
        );
    }
    assert_eq!(manifest_gets("b"), 2, "b was fetched again");
    let blob_gets =
        |digest: &str| upstream_requests(&upstream, "GET", &format!("/v2/team/b/blobs/{digest}"));
    assert_eq!(
        blob_gets(&images[1].blobs[0].0),
        2,
        "b's config was freed and fetched again"
    );
    assert_eq!(
        blob_gets(&layer.0),
        1,
        "the shared layer was kept, so never fetched again"
    );
    assert_eq!(manifest_gets("c"), 1, "c is still cached");
}
