//! Crash safety: what berth acknowledged survives `kill -9`, nothing half-written is ever
//! served or listed, upload sessions survive restarts, and SIGTERM drains requests in flight.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::support::push::OCI_MANIFEST;
use crate::support::{Berth, bytes, client, sha256};

/// Path part of an upload `Location`, valid across restarts (the port changes).
fn upload_path(location: &str) -> String {
    let start = location.find("/v2/").expect("a /v2/ location");
    location[start..].to_string()
}

async fn resume_after(stop: impl FnOnce(&mut Berth)) {
    let mut berth = Berth::start();
    let client = client();
    let data = bytes(3_000_000, 21);
    let digest = sha256(&data);
    let start = client
        .post(berth.url("/v2/resume/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    let path = upload_path(start.headers()["location"].to_str().unwrap());
    let first = client
        .patch(berth.url(&path))
        .header("content-range", "0-999999")
        .body(data[..1_000_000].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 202);

    stop(&mut berth);
    berth.restart();

    let status = client.get(berth.url(&path)).send().await.unwrap();
    assert_eq!(status.status(), 204);
    assert_eq!(
        status.headers()["range"],
        "0-999999",
        "the acknowledged chunk survived"
    );
    let second = client
        .patch(berth.url(&path))
        .header("content-range", "1000000-1999999")
        .body(data[1_000_000..2_000_000].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), 202);
    let done = client
        .put(berth.url(&format!("{path}?digest={digest}")))
        .body(data[2_000_000..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 201);
    let pulled = client
        .get(berth.url(&format!("/v2/resume/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(sha256(&pulled.bytes().await.unwrap()), digest);
}

#[tokio::test]
async fn chunked_upload_resumes_after_kill9() {
    resume_after(Berth::kill9).await;
}

#[tokio::test]
async fn chunked_upload_resumes_after_a_clean_restart() {
    resume_after(|berth| assert!(berth.terminate().success())).await;
}

#[tokio::test]
async fn sigterm_drains_a_request_in_flight_and_exits_zero() {
    let mut berth = Berth::start();
    let client = client();
    let start = client
        .post(berth.url("/v2/drain/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    let path = upload_path(start.headers()["location"].to_str().unwrap());

    // A chunk that takes about a second to arrive.
    let slow_body = futures_util::stream::unfold(0, |i| async move {
        if i == 20 {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        Some((Ok::<_, std::io::Error>(vec![b'x'; 65536]), i + 1))
    });
    let upload = {
        let client = client.clone();
        let url = berth.url(&path);
        tokio::spawn(async move {
            client
                .patch(url)
                .header("content-length", (20 * 65536).to_string())
                .body(reqwest::Body::wrap_stream(slow_body))
                .send()
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    unsafe {
        libc::kill(berth.pid() as i32, libc::SIGTERM);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // No new connections once shutdown began.
    assert!(
        std::net::TcpStream::connect_timeout(&berth.addr, Duration::from_secs(1)).is_err(),
        "the listener is closed"
    );
    let response = upload
        .await
        .unwrap()
        .expect("the request in flight completes");
    assert_eq!(response.status(), 202);
    assert_eq!(
        response.headers()["range"],
        format!("0-{}", 20 * 65536 - 1).as_str()
    );
    let status = tokio::task::spawn_blocking(move || {
        let status = berth.wait_exit();
        (status, berth)
    })
    .await
    .unwrap();
    assert!(status.0.success(), "exit status {:?}", status.0);
    let mut berth = status.1;
    assert!(berth.log_text().contains("all connections drained"));

    berth.restart();
    let status = client.get(berth.url(&path)).send().await.unwrap();
    assert_eq!(
        status.headers()["range"],
        format!("0-{}", 20 * 65536 - 1).as_str()
    );
}

/// One image's content, generated from a seed.
struct Image {
    tag: String,
    manifest: Vec<u8>,
    blobs: Vec<Vec<u8>>,
}

fn image(round: u32, i: u32) -> Image {
    let seed = u64::from(round) * 1000 + u64::from(i);
    let config = serde_json::to_vec(
        &serde_json::json!({"architecture": "amd64", "os": "linux", "seed": seed}),
    )
    .unwrap();
    let small = bytes(10_000, seed * 3 + 1);
    let large = bytes(1_500_000 + (seed as usize % 7) * 100_000, seed * 3 + 2);
    let layer = |data: &[u8]| serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha256(data), "size": data.len()});
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(&config), "size": config.len()},
        "layers": [layer(&small), layer(&large)],
    }))
    .unwrap();
    Image {
        tag: format!("r{round}-{i}"),
        manifest,
        blobs: vec![config, small, large],
    }
}

/// Pushes one image (the large layer in chunks), failing on the first error.
async fn push(client: &reqwest::Client, base: &str, image: &Image) -> Result<(), String> {
    let fail = |what: &str, e: &dyn std::fmt::Display| format!("{what}: {e}");
    for blob in &image.blobs[..2] {
        let url = format!("{base}/v2/crash/app/blobs/uploads/?digest={}", sha256(blob));
        let response = client
            .post(url)
            .body(blob.clone())
            .send()
            .await
            .map_err(|e| fail("blob", &e))?;
        if response.status() != 201 {
            return Err(format!("blob: {}", response.status()));
        }
    }
    let large = &image.blobs[2];
    let start = client
        .post(format!("{base}/v2/crash/app/blobs/uploads/"))
        .send()
        .await
        .map_err(|e| fail("start", &e))?;
    let path = upload_path(
        start
            .headers()
            .get("location")
            .ok_or("no location")?
            .to_str()
            .unwrap(),
    );
    let mut offset = 0;
    for chunk in large.chunks(500_000) {
        let response = client
            .patch(format!("{base}{path}"))
            .header(
                "content-range",
                format!("{offset}-{}", offset + chunk.len() - 1),
            )
            .body(chunk.to_vec())
            .send()
            .await
            .map_err(|e| fail("chunk", &e))?;
        if response.status() != 202 {
            return Err(format!("chunk: {}", response.status()));
        }
        offset += chunk.len();
    }
    let response = client
        .put(format!("{base}{path}?digest={}", sha256(large)))
        .send()
        .await
        .map_err(|e| fail("finish", &e))?;
    if response.status() != 201 {
        return Err(format!("finish: {}", response.status()));
    }
    let response = client
        .put(format!("{base}/v2/crash/app/manifests/{}", image.tag))
        .header("content-type", OCI_MANIFEST)
        .body(image.manifest.clone())
        .send()
        .await
        .map_err(|e| fail("manifest", &e))?;
    if response.status() != 201 {
        return Err(format!("manifest: {}", response.status()));
    }
    Ok(())
}

/// Pushes images until the server goes away; returns the acknowledged ones and the one in
/// flight when it did.
async fn push_until_killed(base: String, round: u32) -> (Vec<Image>, Option<Image>) {
    let client = client();
    let mut acknowledged = Vec::new();
    for i in 0.. {
        let image = image(round, i);
        match push(&client, &base, &image).await {
            Ok(()) => acknowledged.push(image),
            Err(_) => return (acknowledged, Some(image)),
        }
    }
    unreachable!()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_pushes_survive_kill9_and_nothing_partial_is_visible() {
    let mut berth = Berth::start();
    let mut acknowledged: BTreeMap<String, Image> = BTreeMap::new();
    let mut in_flight: BTreeMap<String, Image> = BTreeMap::new();
    // Kill at varied moments: mid-blob, mid-chunk, mid-manifest, between requests.
    let delays_ms = [350, 620, 900, 470, 1300];
    for (round, delay) in delays_ms.iter().enumerate() {
        let pusher = tokio::spawn(push_until_killed(berth.base_url(), round as u32));
        tokio::time::sleep(Duration::from_millis(*delay)).await;
        berth.kill9();
        let (acked, interrupted) = tokio::time::timeout(Duration::from_secs(60), pusher)
            .await
            .expect("the pusher notices the dead server")
            .unwrap();
        acknowledged.extend(acked.into_iter().map(|i| (i.tag.clone(), i)));
        in_flight.extend(interrupted.into_iter().map(|i| (i.tag.clone(), i)));
        berth.restart();
    }
    eprintln!(
        "{} pushes acknowledged, {} interrupted by kill -9: {:?}",
        acknowledged.len(),
        in_flight.len(),
        in_flight.keys().collect::<Vec<_>>()
    );
    assert!(
        acknowledged.len() >= 5,
        "enough pushes completed to mean something: {}",
        acknowledged.len()
    );

    let client = client();
    let tags: serde_json::Value = client
        .get(berth.url("/v2/crash/app/tags/list"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed: BTreeSet<String> = tags["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();

    for tag in acknowledged.keys() {
        assert!(listed.contains(tag), "acknowledged tag {tag} lost");
    }
    for tag in &listed {
        let image = acknowledged
            .get(tag)
            .or_else(|| in_flight.get(tag))
            .unwrap_or_else(|| panic!("{tag} is listed but was never pushed"));
        // Every listed image pulls completely and byte-exact.
        let manifest = client
            .get(berth.url(&format!("/v2/crash/app/manifests/{tag}")))
            .send()
            .await
            .unwrap();
        assert_eq!(manifest.status(), 200);
        assert_eq!(
            manifest.bytes().await.unwrap(),
            image.manifest,
            "{tag} manifest bytes"
        );
        for blob in &image.blobs {
            let got = client
                .get(berth.url(&format!("/v2/crash/app/blobs/{}", sha256(blob))))
                .send()
                .await
                .unwrap();
            assert_eq!(got.status(), 200, "{tag} blob");
            assert_eq!(
                sha256(&got.bytes().await.unwrap()),
                sha256(blob),
                "{tag} blob content"
            );
        }
    }
    // Blobs of interrupted pushes are either absent or complete.
    for image in in_flight.values() {
        for blob in &image.blobs {
            let got = client
                .get(berth.url(&format!("/v2/crash/app/blobs/{}", sha256(blob))))
                .send()
                .await
                .unwrap();
            if got.status() == 200 {
                assert_eq!(
                    sha256(&got.bytes().await.unwrap()),
                    sha256(blob),
                    "a visible blob is complete"
                );
            } else {
                assert_eq!(got.status(), 404);
            }
        }
    }
    let catalog: serde_json::Value = client
        .get(berth.url("/v2/_catalog"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(catalog["repositories"], serde_json::json!(["crash/app"]));
}
