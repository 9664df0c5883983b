//! Blob and manifest downloads: one upstream download for many clients, and nothing cached
//! from a corrupt upstream or a fetch killed midway.

use super::*;

/// The peak resident memory of a process, in MiB.
fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib / 1024
}

#[tokio::test]
async fn concurrent_pulls_of_one_uncached_blob_make_one_upstream_download() {
    const CLIENTS: usize = 32;
    const SIZE: usize = 256 * 1024 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let upstream = OfficialRegistry::start_logged(dir.path(), None);
    let data = bytes(SIZE, 5);
    let digest = push_blob_to(&upstream.base, "team/big", &data).await;
    drop(data);
    let berth = Berth::builder()
        .env("REGISTRY_PROXY_REMOTEURL", &upstream.base)
        .start();

    let url = berth.url(&format!("/v2/team/big/blobs/{digest}"));
    let started = Instant::now();
    let pulls: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { fetch_blob(&client(), &url).await })
        })
        .collect();
    for pull in pulls {
        let (got, length) = pull.await.unwrap().unwrap();
        assert_eq!((got.as_str(), length), (digest.as_str(), SIZE as u64));
    }
    let elapsed = started.elapsed();
    let downloads = upstream_requests(&upstream, "GET", &format!("/v2/team/big/blobs/{digest}"));
    let peak = peak_rss_mib(berth.pid());
    println!(
        "{CLIENTS} concurrent pulls of one uncached {} MiB blob: {downloads} upstream GET, {elapsed:?}, berth peak RSS {peak} MiB",
        SIZE >> 20
    );
    assert_eq!(downloads, 1, "exactly one upstream download");
    assert!(
        peak < 400,
        "the blob is never held in memory: peak RSS {peak} MiB"
    );
    let metrics = metrics_text(&berth).await;
    for line in [
        "berth_cache_blob_fetches_total{remote=\"proxy\"} 1".to_string(),
        format!("berth_cache_upstream_bytes_total{{remote=\"proxy\"}} {SIZE}"),
        format!("berth_cache_lookups_total{{remote=\"proxy\",result=\"miss\"}} {CLIENTS}"),
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in:\n{metrics}");
    }

    // Cached: served with the upstream gone.
    drop(upstream);
    let (got, _) = fetch_blob(&client(), &url).await.unwrap();
    assert_eq!(got, digest);
}

#[tokio::test]
async fn a_corrupt_upstream_blob_fails_the_transfer_and_caches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = OfficialRegistry::start_logged(dir.path(), None);
    let data = bytes(2 * 1024 * 1024 + 17, 6);
    let digest = push_blob_to(&upstream.base, "team/app", &data).await;
    let hex = digest.trim_start_matches("sha256:");
    let file = dir.path().join(format!(
        "storage/docker/registry/v2/blobs/sha256/{}/{hex}/data",
        &hex[..2]
    ));
    let flip = || {
        let mut stored = std::fs::read(&file).unwrap();
        stored[1_000_000] ^= 0x40;
        std::fs::write(&file, stored).unwrap();
    };
    flip();
    let berth = berth_with_config(dir.path(), &remote_config(&upstream.base, ""));
    let url = berth.url(&format!("/v2/up/team/app/blobs/{digest}"));

    let failed = fetch_blob(&client(), &url).await;
    assert!(
        failed
            .as_ref()
            .is_err_and(|e| e.contains("transfer failed")),
        "the client's transfer fails: {failed:?}"
    );
    // Nothing was cached: the next pull downloads again (a clean upstream now).
    flip();
    let (got, length) = fetch_blob(&client(), &url).await.unwrap();
    assert_eq!((got, length), (digest.clone(), data.len() as u64));
    assert_eq!(
        upstream_requests(&upstream, "GET", &format!("/v2/team/app/blobs/{digest}")),
        2
    );
}

#[tokio::test]
async fn a_fetch_killed_midway_leaves_nothing_cached() {
    const SIZE: usize = 256 * 1024 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let upstream = OfficialRegistry::start_logged(dir.path(), None);
    let digest = push_blob_to(&upstream.base, "team/big", &bytes(SIZE, 8)).await;
    let mut berth = Berth::builder()
        .env("REGISTRY_PROXY_REMOTEURL", &upstream.base)
        .start();
    let path = format!("/v2/team/big/blobs/{digest}");

    // The first bytes reach the client while the download is far from done: kill -9 then.
    let response = client().get(berth.url(&path)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    assert!(!first.is_empty());
    berth.kill9();
    drop(body);

    // Restarted with the upstream gone: nothing of the download is visible.
    drop(upstream);
    berth.restart();
    let response = client().head(berth.url(&path)).send().await.unwrap();
    assert_eq!(
        response.status(),
        503,
        "the blob is not cached, so the (stopped) upstream is asked"
    );
    assert_eq!(
        catalog(&berth, None).await,
        serde_json::json!([]),
        "nothing recorded"
    );
}

#[tokio::test]
async fn a_corrupt_upstream_manifest_is_refused_and_nothing_is_cached() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = OfficialRegistry::start_logged(dir.path(), None);
    let sandbox = Sandbox::new();
    let target = format!("{}/team/app:v1", upstream.host());
    let pushed = skopeo_push(&sandbox, "layout", b"manifest\n", &target, None).await;
    let hex = pushed.digest.trim_start_matches("sha256:");
    let file = dir.path().join(format!(
        "storage/docker/registry/v2/blobs/sha256/{}/{hex}/data",
        &hex[..2]
    ));
    let original = std::fs::read(&file).unwrap();
    // Still valid JSON, no longer the announced digest.
    let mut corrupt = original.clone();
    corrupt.extend_from_slice(b" ");
    std::fs::write(&file, &corrupt).unwrap();
    let berth = berth_with_config(dir.path(), &remote_config(&upstream.base, ""));

    let response = client()
        .get(berth.url("/v2/up/team/app/manifests/v1"))
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    let body = assert_oci_error(response, 502, "UNAVAILABLE").await;
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("invalid content"), "{message}");

    // Nothing was cached: with the upstream repaired, the next pull fetches it again.
    std::fs::write(&file, &original).unwrap();
    assert_eq!(
        manifest_digest(&berth, "up/team/app", "v1").await,
        pushed.digest
    );
    assert_eq!(
        upstream_requests(&upstream, "GET", "/v2/team/app/manifests/v1"),
        2
    );
}
