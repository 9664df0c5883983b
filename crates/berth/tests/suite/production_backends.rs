//! berth on PostgreSQL and S3 (a private Garage node): several stateless instances behave as
//! one registry; concurrent writers through different instances never leave anything broken;
//! outages of either backend are 503s from which berth recovers by itself.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::support::clients::{Sandbox, run, skopeo_round_trip};
use crate::support::push::{OCI_MANIFEST, image_manifest, push_blob, put_manifest};
use crate::support::{Berth, BerthBuilder, assert_oci_error, bucket_keys, bytes, client, sha256};
use berth_meta::postgres::testing::PostgresServer;
use berth_storage::testing::garage::Garage;

/// A berth instance on `database` and `garage` (under the bucket prefix `root`).
fn instance(database: &PostgresServer, garage: &Garage, root: &str) -> BerthBuilder {
    let mut builder = Berth::builder()
        .env("BERTH_DATABASE_URL", &database.url())
        .env("BERTH_DATABASE_CONNECTTIMEOUT", "2s")
        .env("REGISTRY_STORAGE_DELETE_ENABLED", "true");
    for (key, value) in garage.berth_env(root) {
        builder = builder.env(&key, &value);
    }
    builder
}

/// A tiny TCP load balancer: each new connection goes to the next instance in turn.
async fn round_robin(backends: Vec<SocketAddr>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let next = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else {
                return;
            };
            let backend = backends[next.fetch_add(1, Ordering::Relaxed) % backends.len()];
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(backend).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    addr
}

fn upload_path(location: &str) -> String {
    location[location.find("/v2/").unwrap()..].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_behave_as_one_registry() {
    let database = PostgresServer::start();
    let garage = Garage::start();
    let instances: Vec<Berth> = (0..3)
        .map(|_| instance(&database, &garage, "shared").start())
        .collect();
    let [a, b, c] = [&instances[0], &instances[1], &instances[2]];
    let client = client();

    // A chunked upload started on A, continued on B and C, finished on A.
    let data = bytes(12 * 1024 * 1024 + 123, 1);
    let digest = sha256(&data);
    let start = client
        .post(a.url("/v2/spread/app/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    let path = upload_path(start.headers()["location"].to_str().unwrap());
    let third = data.len() / 3;
    for (instance, range) in [(b, 0..third), (c, third..2 * third)] {
        let response = client
            .patch(instance.url(&path))
            .header(
                "content-range",
                format!("{}-{}", range.start, range.end - 1),
            )
            .body(data[range.clone()].to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        assert_eq!(
            response.headers()["range"],
            format!("0-{}", range.end - 1).as_str()
        );
    }
    let status = client.get(a.url(&path)).send().await.unwrap();
    assert_eq!(
        status.headers()["range"],
        format!("0-{}", 2 * third - 1).as_str()
    );
    let done = client
        .put(a.url(&format!("{path}?digest={digest}")))
        .body(data[2 * third..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 201);
    for instance in [a, b, c] {
        let got = client
            .get(instance.url(&format!("/v2/spread/app/blobs/{digest}")))
            .send()
            .await
            .unwrap();
        assert_eq!(sha256(&got.bytes().await.unwrap()), digest);
    }

    // A manifest pushed through B is served by A and C at once.
    let config = push_blob(&client, c, "spread/app", b"{\"os\":\"linux\"}").await;
    let manifest = image_manifest(
        &(config, b"{\"os\":\"linux\"}".to_vec()),
        &[(digest.clone(), data.clone())],
    );
    assert_eq!(
        put_manifest(&client, b, "spread/app", "v1", OCI_MANIFEST, &manifest)
            .await
            .status(),
        201
    );
    for instance in [a, c] {
        let got = client
            .get(instance.url("/v2/spread/app/manifests/v1"))
            .send()
            .await
            .unwrap();
        assert_eq!(got.bytes().await.unwrap(), manifest);
    }

    // Real clients through a round-robin balancer in front of the three.
    let balancer = round_robin(instances.iter().map(|i| i.addr).collect()).await;
    let host = balancer.to_string();
    let sandbox = Sandbox::new();
    skopeo_round_trip(
        &sandbox,
        &host,
        "balanced/skopeo:v1",
        &[
            ("etc/one", bytes(3_000_000, 2)),
            ("etc/two", bytes(7_000_000, 3)),
        ],
    )
    .await;

    let containerfile = sandbox.write(
        "build/Containerfile",
        b"FROM scratch\nCOPY payload /payload\n",
    );
    sandbox.write("build/payload", &bytes(2_000_000, 4));
    run(sandbox
        .podman("pusher")
        .args([
            "build",
            "--format",
            "oci",
            "-t",
            "localhost/balanced:v1",
            "-f",
        ])
        .arg(&containerfile)
        .arg(sandbox.path("build")))
    .await;
    run(sandbox
        .podman("pusher")
        .args(["push", "--tls-verify=false", "localhost/balanced:v1"])
        .arg(format!("docker://{host}/balanced/podman:v1")))
    .await;
    run(sandbox
        .podman("puller")
        .args(["pull", "--tls-verify=false"])
        .arg(format!("{host}/balanced/podman:v1")))
    .await;
    let pushed = run(sandbox.podman("pusher").args([
        "image",
        "inspect",
        "--format",
        "{{.Id}}",
        "localhost/balanced:v1",
    ]))
    .await;
    let pulled = run(sandbox
        .podman("puller")
        .args(["image", "inspect", "--format", "{{.Id}}"])
        .arg(format!("{host}/balanced/podman:v1")))
    .await;
    assert_eq!(pushed, pulled, "the same image came back");

    // Every instance lists the same catalog.
    let mut catalogs = BTreeSet::new();
    for instance in [a, b, c] {
        let catalog: serde_json::Value = client
            .get(instance.url("/v2/_catalog"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        catalogs.insert(catalog.to_string());
    }
    assert_eq!(catalogs.len(), 1);
    assert!(catalogs.iter().next().unwrap().contains("balanced/podman"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_through_different_instances() {
    let database = PostgresServer::start();
    let garage = Garage::start();
    let a = instance(&database, &garage, "race").start();
    let b = instance(&database, &garage, "race").start();
    let client = client();

    // Two complete images; then both instances move one tag at the same moment, many times.
    let mut manifests = Vec::new();
    for seed in 0..2u64 {
        let config = format!("{{\"seed\":{seed}}}").into_bytes();
        let layer = bytes(100_000, seed + 10);
        let config_digest = push_blob(&client, &a, "race/app", &config).await;
        let layer_digest = push_blob(&client, &b, "race/app", &layer).await;
        manifests.push(image_manifest(
            &(config_digest, config),
            &[(layer_digest, layer)],
        ));
    }
    let digests: BTreeSet<String> = manifests.iter().map(|m| sha256(m)).collect();
    for _ in 0..15 {
        let (one, two) = tokio::join!(
            put_manifest(
                &client,
                &a,
                "race/app",
                "latest",
                OCI_MANIFEST,
                &manifests[0]
            ),
            put_manifest(
                &client,
                &b,
                "race/app",
                "latest",
                OCI_MANIFEST,
                &manifests[1]
            ),
        );
        assert_eq!((one.status().as_u16(), two.status().as_u16()), (201, 201));
        let got = client
            .get(a.url("/v2/race/app/manifests/latest"))
            .send()
            .await
            .unwrap();
        let body = got.bytes().await.unwrap();
        assert!(
            digests.contains(&sha256(&body)),
            "the tag points at one of the two complete manifests"
        );
    }

    // The same blob uploaded through both instances at once: both succeed, stored once.
    for round in 0..3u64 {
        let data = bytes(11 * 1024 * 1024, 100 + round);
        let digest = sha256(&data);
        let upload = |instance: &Berth| {
            let url = instance.url(&format!("/v2/race/blob{round}/blobs/uploads/"));
            let client = client.clone();
            let data = data.clone();
            let digest = digest.clone();
            async move {
                let start = client.post(url).send().await.unwrap();
                let location = start.headers()["location"].to_str().unwrap().to_string();
                let patched = client.patch(&location).body(data).send().await.unwrap();
                assert_eq!(patched.status(), 202);
                client
                    .put(format!("{location}?digest={digest}"))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }
        };
        let (one, two) = tokio::join!(upload(&a), upload(&b));
        assert_eq!((one, two), (201, 201));
        let got = client
            .get(b.url(&format!("/v2/race/blob{round}/blobs/{digest}")))
            .send()
            .await
            .unwrap();
        assert_eq!(sha256(&got.bytes().await.unwrap()), digest);
        let hex = digest.trim_start_matches("sha256:");
        let stored = bucket_keys(&garage, "race/docker/registry/v2/blobs").await;
        assert_eq!(
            stored.iter().filter(|k| k.contains(hex)).count(),
            1,
            "{stored:?}"
        );
    }
    assert!(
        bucket_keys(&garage, "race/berth/uploads").await.is_empty(),
        "no upload left behind"
    );
}

/// One image's content, generated from a seed.
struct Image {
    tag: String,
    manifest: Vec<u8>,
    blobs: Vec<Vec<u8>>,
}

fn image(i: u64) -> Image {
    let config = format!("{{\"n\":{i}}}").into_bytes();
    let layer = bytes(200_000 + i as usize * 1000, i + 500);
    let layers = vec![(sha256(&layer), layer.clone())];
    Image {
        tag: format!("t{i}"),
        manifest: image_manifest(&(sha256(&config), config.clone()), &layers),
        blobs: vec![config, layer],
    }
}

/// Pushes an image; on failure returns the failing response's status and error code.
async fn try_push(
    client: &reqwest::Client,
    base: &str,
    image: &Image,
) -> Result<(), (u16, String)> {
    let fail = |status: u16, body: String| {
        let code = serde_json::from_str::<serde_json::Value>(&body)
            .map(|v| {
                v["errors"][0]["code"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .unwrap_or(body);
        Err((status, code))
    };
    for blob in &image.blobs {
        let url = format!(
            "{base}/v2/outage/app/blobs/uploads/?digest={}",
            sha256(blob)
        );
        let response = client
            .post(url)
            .body(blob.clone())
            .send()
            .await
            .map_err(|e| (0, e.to_string()))?;
        if response.status() != 201 {
            return fail(
                response.status().as_u16(),
                response.text().await.unwrap_or_default(),
            );
        }
    }
    let response = client
        .put(format!("{base}/v2/outage/app/manifests/{}", image.tag))
        .header("content-type", OCI_MANIFEST)
        .body(image.manifest.clone())
        .send()
        .await
        .map_err(|e| (0, e.to_string()))?;
    if response.status() != 201 {
        return fail(
            response.status().as_u16(),
            response.text().await.unwrap_or_default(),
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restart_during_pushes_is_503_then_recovers() {
    let database = PostgresServer::start();
    let garage = Garage::start();
    let berth = instance(&database, &garage, "db-outage").start();
    let client = client();
    let base = berth.base_url();

    let mut acknowledged: BTreeMap<String, Image> = BTreeMap::new();
    let mut attempted: BTreeMap<String, Image> = BTreeMap::new();
    let mut failures: Vec<(u16, String)> = Vec::new();
    let mut i = 0;
    let mut push_some = async |count: usize,
                               acknowledged: &mut BTreeMap<String, Image>,
                               failures: &mut Vec<(u16, String)>| {
        for _ in 0..count {
            let image = image(i);
            i += 1;
            match try_push(&client, &base, &image).await {
                Ok(()) => {
                    acknowledged.insert(image.tag.clone(), image);
                }
                Err(failure) => {
                    failures.push(failure);
                    attempted.insert(image.tag.clone(), image);
                }
            }
        }
    };
    push_some(10, &mut acknowledged, &mut failures).await;
    assert!(failures.is_empty(), "{failures:?}");

    database.stop();
    push_some(5, &mut acknowledged, &mut failures).await;
    let ready = client.get(berth.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503, "not ready without its database");
    let manifest = client
        .get(berth.url("/v2/outage/app/manifests/t0"))
        .send()
        .await
        .unwrap();
    assert_oci_error(manifest, 503, "UNAVAILABLE").await;
    assert_eq!(failures.len(), 5, "every push during the outage failed");
    for (status, code) in &failures {
        assert_eq!(
            (*status, code.as_str()),
            (503, "UNAVAILABLE"),
            "{failures:?}"
        );
    }

    database.start_again();
    let mut recovered = false;
    for _ in 0..100 {
        if client
            .get(berth.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status()
            == 200
        {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "ready again without a restart");
    failures.clear();
    push_some(10, &mut acknowledged, &mut failures).await;
    assert!(failures.is_empty(), "{failures:?}");

    let tags: serde_json::Value = client
        .get(berth.url("/v2/outage/app/tags/list"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed: BTreeSet<&str> = tags["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(
        listed,
        acknowledged.keys().map(String::as_str).collect(),
        "exactly the acknowledged pushes"
    );
    for image in acknowledged.values() {
        let got = client
            .get(berth.url(&format!("/v2/outage/app/manifests/{}", image.tag)))
            .send()
            .await
            .unwrap();
        assert_eq!(got.bytes().await.unwrap(), image.manifest);
        for blob in &image.blobs {
            let got = client
                .get(berth.url(&format!("/v2/outage/app/blobs/{}", sha256(blob))))
                .send()
                .await
                .unwrap();
            assert_eq!(sha256(&got.bytes().await.unwrap()), sha256(blob));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_store_outage_is_503_then_recovers() {
    let database = PostgresServer::start();
    let mut garage = Garage::start();
    let berth = instance(&database, &garage, "s3-outage").start();
    let client = client();
    let kept = image(1);
    try_push(&client, &berth.base_url(), &kept).await.unwrap();
    let layer = sha256(&kept.blobs[1]);

    garage.stop();
    let blob = client
        .get(berth.url(&format!("/v2/outage/app/blobs/{layer}")))
        .send()
        .await
        .unwrap();
    assert_oci_error(blob, 503, "UNAVAILABLE").await;
    let fresh = bytes(50_000, 77);
    let push = client
        .post(berth.url(&format!(
            "/v2/outage/app/blobs/uploads/?digest={}",
            sha256(&fresh)
        )))
        .body(fresh.clone())
        .send()
        .await
        .unwrap();
    assert_oci_error(push, 503, "UNAVAILABLE").await;
    let ready = client.get(berth.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    // Metadata lives in the database: manifests are still served.
    let manifest = client
        .get(berth.url(&format!("/v2/outage/app/manifests/{}", kept.tag)))
        .send()
        .await
        .unwrap();
    assert_eq!(manifest.bytes().await.unwrap(), kept.manifest);

    garage.start_again();
    let head = client
        .head(berth.url(&format!("/v2/outage/app/blobs/{}", sha256(&fresh))))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 404, "the refused push left nothing visible");
    let blob = client
        .get(berth.url(&format!("/v2/outage/app/blobs/{layer}")))
        .send()
        .await
        .unwrap();
    assert_eq!(sha256(&blob.bytes().await.unwrap()), layer);
    try_push(&client, &berth.base_url(), &image(2))
        .await
        .unwrap();
    assert_eq!(
        client
            .get(berth.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}
