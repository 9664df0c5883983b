//! Online garbage collection: it runs while clients push, mount, re-tag and delete, on SQLite
//! with the filesystem (collected from a second process, `berth gc`, on the same database
//! file) and on PostgreSQL with S3 (two instances, one collecting at a time), and never loses
//! an acknowledged push; what it leaves in storage is exactly what tagged images reference.
//! Multi-arch children, signatures and SBOMs survive it; a dry run changes nothing and
//! reports what the real run then frees; a collection killed in its sweep resumes after a
//! restart; a collection pointed at a database that is not its storage's refuses to start.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::support::clients::{Sandbox, layout_blob, layout_descriptor, manifest_blobs, run, text};
use crate::support::push::{OCI_INDEX, OCI_MANIFEST, image_manifest, push_blob, put_manifest};
use crate::support::{
    Berth, BerthBuilder, berth_cli_env, berth_cli_output_env, bucket_keys, bytes, client,
    multipart_uploads, sha256,
};
use berth_meta::postgres::testing::PostgresServer;
use berth_storage::testing::garage::Garage;
use serde_json::{Value, json};

/// Collection on every run: no grace period, untagged manifests deleted at once.
const AGGRESSIVE: [(&str, &str); 5] = [
    ("BERTH_GC_GRACE", "0s"),
    ("BERTH_GC_UNTAGGED", "delete after 0s"),
    // Deleted and moved tags keep nothing reachable past a millisecond (the tag_history
    // suite tests what the history keeps).
    ("BERTH_RETENTION_TAGHISTORY", "1ms"),
    // Runs come from the test, not from the schedule.
    ("BERTH_GC_ENABLED", "false"),
    ("REGISTRY_STORAGE_DELETE_ENABLED", "true"),
];

fn aggressive(mut builder: BerthBuilder) -> BerthBuilder {
    for (key, value) in AGGRESSIVE {
        builder = builder.env(key, value);
    }
    builder
}

/// `berth gc --json [args]` as a second process; `None` when another collection held the
/// lease (one at a time).
fn gc_cli(data: &Path, env: &[(String, String)], args: &[&str]) -> Option<Value> {
    let env: Vec<(&str, &str)> = env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain(AGGRESSIVE)
        .collect();
    let mut all = vec!["gc"];
    all.extend_from_slice(args);
    let output = berth_cli_output_env(data, &env, &all, None);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        assert!(
            stderr.contains("already running"),
            "berth gc failed: {stderr}"
        );
        return None;
    }
    Some(serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "berth gc printed no JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    }))
}

/// An image: its manifest and its blobs (config first).
#[derive(Clone)]
struct Image {
    manifest: Vec<u8>,
    blobs: Vec<(String, Vec<u8>)>,
}

/// Layers every writer shares, so that pushes, mounts and collection race on the same digests.
fn shared_layer(k: u64) -> (String, Vec<u8>) {
    let data = bytes(30_000 + k as usize * 101, 9_000 + k);
    (sha256(&data), data)
}

fn image(writer: u64, i: u64) -> Image {
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux", "writer": writer, "n": i,
        "rootfs": {"type": "layers", "diff_ids": []}
    }))
    .unwrap();
    let own = bytes(20_000 + i as usize * 37, writer * 1_000 + i);
    let blobs = vec![
        (sha256(&config), config),
        shared_layer(i % 3),
        (sha256(&own), own),
    ];
    Image {
        manifest: image_manifest(&blobs[0], &blobs[1..]),
        blobs,
    }
}

/// Why a push attempt failed: the status and OCI error code.
type Refusal = (u16, String);

async fn refusal(response: reqwest::Response) -> Refusal {
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    let code = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v["errors"][0]["code"].as_str().map(str::to_string))
        .unwrap_or(body);
    (status, code)
}

/// One push as a registry client does it: HEAD each blob and upload (or mount from `from`)
/// only the missing ones, then the manifest by tag.
async fn try_push(
    client: &reqwest::Client,
    base: &str,
    repo: &str,
    tag: &str,
    image: &Image,
    from: Option<&str>,
) -> Result<(), Refusal> {
    let failed = |e: reqwest::Error| (0, e.to_string());
    for (digest, data) in &image.blobs {
        let head = client
            .head(format!("{base}/v2/{repo}/blobs/{digest}"))
            .send()
            .await
            .map_err(failed)?;
        if head.status() == 200 {
            continue;
        }
        if let Some(from) = from {
            let mount = client
                .post(format!(
                    "{base}/v2/{repo}/blobs/uploads/?mount={digest}&from={from}"
                ))
                .send()
                .await
                .map_err(failed)?;
            if mount.status() == 201 {
                continue;
            }
            // 202: not mountable (not there, or collected); the upload it opened is left
            // for the purge, as clients do.
        }
        let response = client
            .post(format!("{base}/v2/{repo}/blobs/uploads/?digest={digest}"))
            .body(data.clone())
            .send()
            .await
            .map_err(failed)?;
        if response.status() != 201 {
            return Err(refusal(response).await);
        }
    }
    let response = client
        .put(format!("{base}/v2/{repo}/manifests/{tag}"))
        .header("content-type", OCI_MANIFEST)
        .body(image.manifest.clone())
        .send()
        .await
        .map_err(failed)?;
    if response.status() != 201 {
        return Err(refusal(response).await);
    }
    Ok(())
}

/// What the writers saw.
#[derive(Default)]
struct Tally {
    acknowledged: AtomicU64,
    /// Attempts refused because collection took a blob the client relied on (it pushes again).
    retried: AtomicU64,
    deleted_tags: AtomicU64,
}

/// A writer: pushes images into its own repository under a few tags (moving them, which
/// leaves manifests untagged for collection), mounts shared layers from the next writer's
/// repository, deletes a tag now and then. Returns what must still be there: tag → image.
async fn writer(
    bases: Vec<String>,
    id: u64,
    writers: u64,
    images: u64,
    tally: Arc<Tally>,
    collections: Arc<AtomicU64>,
) -> BTreeMap<String, Image> {
    let client = client();
    let repo = format!("race/w{id}");
    let neighbour = format!("race/w{}", (id + 1) % writers);
    let mut expected = BTreeMap::new();
    // At least `images`, and on until three collections ran alongside (bounded).
    for i in 0..images * 10 {
        if i >= images && collections.load(Ordering::Relaxed) >= 3 {
            break;
        }
        let base = &bases[(i as usize) % bases.len()];
        let tag = format!("t{}", i % 4);
        let image = image(id, i);
        let from = (i % 2 == 0).then_some(neighbour.as_str());
        let mut attempts = 0;
        loop {
            attempts += 1;
            match try_push(&client, base, &repo, &tag, &image, from).await {
                Ok(()) => break,
                // A blob the client saw was collected before the manifest arrived (it is
                // absent now), or its deletion was underway: the client pushes again.
                Err((400, code)) if code == "MANIFEST_BLOB_UNKNOWN" || code == "BLOB_UNKNOWN" => {}
                Err((503, _)) => {}
                Err(other) => panic!("writer {id} image {i}: unexpected refusal {other:?}"),
            }
            tally.retried.fetch_add(1, Ordering::Relaxed);
            assert!(attempts < 30, "writer {id} image {i} never got through");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tally.acknowledged.fetch_add(1, Ordering::Relaxed);
        expected.insert(tag.clone(), image);
        if i % 5 == 4 {
            let response = client
                .delete(format!("{base}/v2/{repo}/manifests/{tag}"))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 202, "tag delete");
            expected.remove(&tag);
            tally.deleted_tags.fetch_add(1, Ordering::Relaxed);
        }
    }
    expected
}

/// Runs `writers` writers against `bases` while `collectors` run collections in a loop, until
/// at least three collections ran; returns what must be there.
async fn race(
    bases: Vec<String>,
    writers: u64,
    images: u64,
    collectors: Vec<Box<dyn Fn() -> Option<Value> + Send + Sync>>,
) -> BTreeMap<String, Image> {
    let tally = Arc::new(Tally::default());
    let done = Arc::new(AtomicBool::new(false));
    let runs = Arc::new(AtomicU64::new(0));
    let freed = Arc::new(AtomicU64::new(0));
    let mut loops = Vec::new();
    for collect in collectors {
        let (done, runs, freed) = (done.clone(), runs.clone(), freed.clone());
        loops.push(tokio::task::spawn_blocking(move || {
            // Bounded: the writers finish long before.
            for _ in 0..500 {
                if done.load(Ordering::Relaxed) {
                    return;
                }
                if let Some(report) = collect() {
                    runs.fetch_add(1, Ordering::Relaxed);
                    freed.fetch_add(report["blobs"].as_u64().unwrap(), Ordering::Relaxed);
                }
            }
        }));
    }
    let mut tasks = Vec::new();
    for id in 0..writers {
        tasks.push(tokio::spawn(writer(
            bases.clone(),
            id,
            writers,
            images,
            tally.clone(),
            runs.clone(),
        )));
    }
    let mut expected = BTreeMap::new();
    for (id, task) in tasks.into_iter().enumerate() {
        for (tag, image) in task.await.unwrap() {
            expected.insert(format!("race/w{id}:{tag}"), image);
        }
    }
    done.store(true, Ordering::Relaxed);
    for task in loops {
        task.await.unwrap();
    }
    let runs = runs.load(Ordering::Relaxed);
    let freed = freed.load(Ordering::Relaxed);
    assert!(
        runs >= 3,
        "collections ran while the writers pushed: {runs}"
    );
    assert!(freed > 0, "the collections freed blobs as tags moved");
    eprintln!(
        "{runs} collections freed {freed} blobs; {} pushes acknowledged, {} attempts pushed again; {} tags deleted",
        tally.acknowledged.load(Ordering::Relaxed),
        tally.retried.load(Ordering::Relaxed),
        tally.deleted_tags.load(Ordering::Relaxed)
    );
    expected
}

/// Every image in `expected` pulls byte-exact.
async fn assert_pulls(base: &str, expected: &BTreeMap<String, Image>) {
    let client = client();
    for (reference, image) in expected {
        let (repo, tag) = reference.split_once(':').unwrap();
        let response = client
            .get(format!("{base}/v2/{repo}/manifests/{tag}"))
            .header("accept", OCI_MANIFEST)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{reference}");
        assert_eq!(
            response.bytes().await.unwrap(),
            image.manifest,
            "{reference}"
        );
        for (digest, data) in &image.blobs {
            let response = client
                .get(format!("{base}/v2/{repo}/blobs/{digest}"))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{reference} {digest}");
            assert_eq!(
                &response.bytes().await.unwrap(),
                data,
                "{reference} {digest}"
            );
        }
    }
}

/// The digests of blobs referenced by `expected`.
fn referenced(expected: &BTreeMap<String, Image>) -> BTreeSet<String> {
    expected
        .values()
        .flat_map(|image| image.blobs.iter().map(|(d, _)| d.clone()))
        .collect()
}

/// The digests whose bytes a filesystem store holds.
fn stored_on_disk(data: &Path) -> BTreeSet<String> {
    let root = data.join("docker/registry/v2/blobs/sha256");
    let mut digests = BTreeSet::new();
    let Ok(prefixes) = std::fs::read_dir(&root) else {
        return digests;
    };
    for prefix in prefixes {
        for blob in std::fs::read_dir(prefix.unwrap().path()).unwrap() {
            let blob = blob.unwrap().path();
            if blob.join("data").is_file() {
                let hex = blob.file_name().unwrap().to_str().unwrap().to_string();
                digests.insert(format!("sha256:{hex}"));
            }
        }
    }
    digests
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_never_loses_an_acknowledged_push_while_four_writers_race_it_on_sqlite() {
    let berth = aggressive(Berth::builder()).start();
    let data = berth.data_dir().to_path_buf();
    let collect_from = data.clone();
    let expected = race(
        vec![berth.base_url()],
        4,
        30,
        vec![Box::new(move || gc_cli(&collect_from, &[], &[]))],
    )
    .await;
    assert_pulls(&berth.base_url(), &expected).await;
    let last = gc_cli(&data, &[], &[]).expect("no other collection runs now");
    assert_eq!(last["errors"], json!([]), "{last}");
    assert_eq!(
        stored_on_disk(&data),
        referenced(&expected),
        "after a final collection storage holds exactly the blobs tagged images reference"
    );
    assert_pulls(&berth.base_url(), &expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_never_loses_an_acknowledged_push_on_postgres_and_s3_with_two_instances_collecting_one_at_a_time()
 {
    let database = PostgresServer::start();
    let garage = Garage::start();
    let mut env: Vec<(String, String)> = garage.berth_env("gcrace");
    env.push(("BERTH_DATABASE_URL".into(), database.url()));
    let start = || {
        let mut builder = aggressive(Berth::builder());
        for (key, value) in &env {
            builder = builder.env(key, value);
        }
        builder.start()
    };
    let (one, two) = (start(), start());
    // Two collectors, each through its own process: the lease lets one run at a time.
    let collectors: Vec<Box<dyn Fn() -> Option<Value> + Send + Sync>> = (0..2)
        .map(|_| {
            let (data, env) = (one.data_dir().to_path_buf(), env.clone());
            Box::new(move || gc_cli(&data, &env, &[]))
                as Box<dyn Fn() -> Option<Value> + Send + Sync>
        })
        .collect();
    let expected = race(vec![one.base_url(), two.base_url()], 4, 16, collectors).await;

    // No two runs overlapped.
    let recorded = berth_cli_env(
        one.data_dir(),
        &env.iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect::<Vec<_>>(),
        &["gc", "runs", "--limit", "1000"],
    );
    let mut spans: Vec<(String, String)> = recorded
        .as_array()
        .unwrap()
        .iter()
        .map(|run| {
            assert_eq!(run["status"], "finished", "{run}");
            (
                text(&run["started_at"]).to_string(),
                text(&run["finished_at"]).to_string(),
            )
        })
        .collect();
    spans.sort();
    for pair in spans.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "runs overlapped: {pair:?}");
    }

    assert_pulls(&one.base_url(), &expected).await;
    assert_pulls(&two.base_url(), &expected).await;
    let last = gc_cli(one.data_dir(), &env, &[]).expect("no other collection runs now");
    assert_eq!(last["errors"], json!([]), "{last}");
    let stored: BTreeSet<String> = bucket_keys(&garage, "gcrace/docker/registry/v2/blobs")
        .await
        .iter()
        .filter_map(|key| key.strip_suffix("/data"))
        .map(|key| format!("sha256:{}", key.rsplit('/').next().unwrap()))
        .collect();
    assert_eq!(
        stored,
        referenced(&expected),
        "after a final collection the bucket holds exactly the blobs tagged images reference"
    );
    assert_pulls(&two.base_url(), &expected).await;
}

#[tokio::test]
async fn gc_dry_run_changes_nothing_and_reports_what_the_real_run_frees() {
    let berth = aggressive(Berth::builder()).start();
    let client = client();
    let data = berth.data_dir().to_path_buf();
    // Two images; moving the tag leaves the first untagged, with its own blobs.
    let first = image(0, 0);
    let second = image(0, 1);
    for image in [&first, &second] {
        try_push(&client, &berth.base_url(), "dry/app", "latest", image, None)
            .await
            .unwrap();
    }
    // A blob pushed and never referenced.
    let stray = bytes(5_000, 77);
    push_blob(&client, &berth, "dry/stray", &stray).await;
    let before = stored_on_disk(&data);

    let dry = gc_cli(&data, &[], &["--dry-run"]).unwrap();
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["run"], Value::Null, "a dry run is not recorded");
    assert_eq!(stored_on_disk(&data), before, "a dry run deletes nothing");
    let runs = berth_cli_env(&data, &[], &["gc", "runs"]);
    assert_eq!(runs, json!([]), "no run recorded");
    let status = berth_cli_env(&data, &[], &["gc", "status"]);
    assert_eq!(status["pending_deletions"], 0, "nothing marked: {status}");
    // What it would free is all still there.
    let untagged = berth.url(&format!(
        "/v2/dry/app/manifests/{}",
        sha256(&first.manifest)
    ));
    let response = client
        .head(untagged)
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        200,
        "the untagged manifest is still there"
    );
    let response = client
        .head(berth.url(&format!("/v2/dry/stray/blobs/{}", sha256(&stray))))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "the stray blob is still there");

    let real = gc_cli(&data, &[], &[]).unwrap();
    let gone: BTreeSet<String> = before.difference(&stored_on_disk(&data)).cloned().collect();
    let mut expected_gone: BTreeSet<String> = first.blobs.iter().map(|(d, _)| d.clone()).collect();
    expected_gone.insert(sha256(&stray));
    assert_eq!(
        gone, expected_gone,
        "the first image's blobs and the stray one"
    );
    for key in ["manifests", "blobs", "bytes"] {
        assert_eq!(dry[key], real[key], "{key}: dry {dry} real {real}");
    }
    assert_eq!(dry["repositories"], real["repositories"]);
    assert_eq!(real["manifests"], 1);
    assert_eq!(real["blobs"], 4);
    assert_eq!(
        real["bytes"].as_u64().unwrap(),
        (first.blobs.iter().map(|(_, d)| d.len()).sum::<usize>() + stray.len()) as u64
    );
    assert_eq!(real["repositories"]["dry/stray"]["blobs"], 1);
    assert_eq!(real["repositories"]["dry/app"]["manifests"], 1);

    // The record of the run: its summary, per repository.
    let shown = berth_cli_env(
        &data,
        &[],
        &["gc", "show", &real["run"].as_i64().unwrap().to_string()],
    );
    assert_eq!(shown["status"], "finished");
    assert_eq!(shown["trigger"], "cli");
    assert_eq!(shown["report"]["blobs"], 4);
    let mut expected = BTreeMap::new();
    expected.insert("dry/app:latest".to_string(), second);
    assert_pulls(&berth.base_url(), &expected).await;
    // The stray blob is absent now: a client pushes it again.
    let response = client
        .head(berth.url(&format!("/v2/dry/stray/blobs/{}", sha256(&stray))))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    push_blob(&client, &berth, "dry/stray", &stray).await;
    assert_eq!(
        crate::support::clients::get_blob(&berth, "dry/stray", &sha256(&stray)).await,
        stray
    );
}

#[tokio::test]
async fn gc_keeps_multi_arch_children_signatures_and_sboms_and_skopeo_copies_them_back_byte_exact()
{
    let berth = aggressive(Berth::builder()).start();
    let client = client();
    let data = berth.data_dir().to_path_buf();
    // An index over two platform images, pushed by skopeo from an OCI layout: the children
    // are untagged, reachable only through the index.
    let sandbox = Sandbox::new();
    let layout = sandbox.path("layout");
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let mut children = Vec::new();
    for (i, arch) in ["amd64", "arm64"].into_iter().enumerate() {
        let image = image(10 + i as u64, 0);
        for (_, data) in &image.blobs {
            crate::support::clients::add_layout_blob(&layout, data);
        }
        let digest = crate::support::clients::add_layout_blob(&layout, &image.manifest);
        children.push((arch, digest, image));
    }
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": children.iter().map(|(arch, digest, image)| json!({
            "mediaType": OCI_MANIFEST, "digest": digest, "size": image.manifest.len(),
            "platform": {"architecture": arch, "os": "linux"},
        })).collect::<Vec<_>>(),
    }))
    .unwrap();
    let index_digest = crate::support::clients::add_layout_blob(&layout, &index);
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": OCI_INDEX, "digest": index_digest, "size": index.len(),
                "annotations": {"org.opencontainers.image.ref.name": "multi"},
            }],
        }))
        .unwrap(),
    )
    .unwrap();
    let remote = format!("{}/keep/multi:v1", berth.host());
    run(sandbox
        .skopeo()
        .args([
            "copy",
            "--all",
            "--preserve-digests",
            "--dest-tls-verify=false",
        ])
        .arg(format!("oci:{}:multi", layout.display()))
        .arg(format!("docker://{remote}")))
    .await;
    // skopeo may re-serialise the index it pushes: what the tag names is what counts.
    let (index, _) = crate::support::clients::get_manifest(&berth, "keep/multi", "v1").await;
    let index_digest = sha256(&index);
    let listed: Value = serde_json::from_slice(&index).unwrap();
    let listed: Vec<&str> = listed["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| text(&m["digest"]))
        .collect();
    let pushed: Vec<&str> = children.iter().map(|(_, d, _)| d.as_str()).collect();
    assert_eq!(listed, pushed, "the children are the layout's");

    // A signature and an SBOM on the index, untagged (found through the referrers API).
    let mut referrers = Vec::new();
    for (n, artifact_type) in [
        "application/vnd.dev.cosign.simplesigning.v1+json",
        "application/spdx+json",
    ]
    .into_iter()
    .enumerate()
    {
        let empty = b"{}".to_vec();
        let payload = bytes(3_000 + n, 300 + n as u64);
        let blobs = vec![(sha256(&empty), empty), (sha256(&payload), payload)];
        for (_, data) in &blobs {
            push_blob(&client, &berth, "keep/multi", data).await;
        }
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": blobs[0].0, "size": 2},
            "layers": [{"mediaType": artifact_type, "digest": blobs[1].0, "size": blobs[1].1.len()}],
            "subject": {"mediaType": OCI_INDEX, "digest": index_digest, "size": index.len()},
        }))
        .unwrap();
        let digest = sha256(&manifest);
        let response = put_manifest(
            &client,
            &berth,
            "keep/multi",
            &digest,
            OCI_MANIFEST,
            &manifest,
        )
        .await;
        assert_eq!(response.status(), 201);
        referrers.push((digest, manifest, blobs));
    }
    // And an untagged manifest nothing reaches, which goes.
    let orphan = image(20, 0);
    for (_, data) in &orphan.blobs {
        push_blob(&client, &berth, "keep/multi", data).await;
    }
    let orphan_digest = sha256(&orphan.manifest);
    let response = put_manifest(
        &client,
        &berth,
        "keep/multi",
        &orphan_digest,
        OCI_MANIFEST,
        &orphan.manifest,
    )
    .await;
    assert_eq!(response.status(), 201);

    let report = gc_cli(&data, &[], &[]).unwrap();
    assert_eq!(
        report["manifests"], 1,
        "only the unreachable manifest: {report}"
    );
    let manifest_status = |digest: String| {
        let client = client.clone();
        let url = berth.url(&format!("/v2/keep/multi/manifests/{digest}"));
        async move {
            client
                .head(url)
                .header("accept", format!("{OCI_MANIFEST}, {OCI_INDEX}"))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(manifest_status(orphan_digest).await, 404);
    for (digest, manifest, blobs) in &referrers {
        assert_eq!(manifest_status(digest.clone()).await, 200, "referrer kept");
        let (served, _) = crate::support::clients::get_manifest(&berth, "keep/multi", digest).await;
        assert_eq!(&served, manifest);
        for (blob, data) in blobs {
            assert_eq!(
                &crate::support::clients::get_blob(&berth, "keep/multi", blob).await,
                data
            );
        }
    }
    let listed: Value = client
        .get(berth.url(&format!("/v2/keep/multi/referrers/{index_digest}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["manifests"].as_array().unwrap().len(), 2, "{listed}");

    // skopeo copies the whole index back, byte for byte.
    let out = sandbox.path("out");
    run(sandbox
        .skopeo()
        .args([
            "copy",
            "--all",
            "--preserve-digests",
            "--src-tls-verify=false",
        ])
        .arg(format!("docker://{remote}"))
        .arg(format!("oci:{}:multi", out.display())))
    .await;
    assert_eq!(
        layout_descriptor(&out, "multi")["digest"],
        index_digest.as_str()
    );
    assert_eq!(layout_blob(&out, &index_digest), index);
    for (arch, digest, image) in &children {
        let copied = layout_blob(&out, digest);
        assert_eq!(copied, image.manifest, "{arch} child kept");
        assert_eq!(manifest_blobs(&out, &copied), image.blobs, "{arch} blobs");
    }
}

#[tokio::test]
async fn gc_killed_in_its_sweep_resumes_after_restart_and_loses_nothing() {
    let mut berth = aggressive(Berth::builder()).start();
    let client = client();
    let data = berth.data_dir().to_path_buf();
    let kept = image(30, 0);
    try_push(&client, &berth.base_url(), "crash/app", "v1", &kept, None)
        .await
        .unwrap();
    // Garbage: blobs nothing references.
    let mut garbage = BTreeSet::new();
    for i in 0..40 {
        garbage.insert(
            push_blob(
                &client,
                &berth,
                "crash/junk",
                &bytes(2_000 + i, 400 + i as u64),
            )
            .await,
        );
    }

    // A collection in a process of its own, killed while it waits to sweep (after marking).
    let mut collector = std::process::Command::new(env!("CARGO_BIN_EXE_berth"));
    collector
        .args(["gc", "--data"])
        .arg(&data)
        .envs(AGGRESSIVE)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    for (key, _) in std::env::vars() {
        if key.starts_with("REGISTRY_") || key.starts_with("BERTH_") {
            collector.env_remove(key);
        }
    }
    let mut child = collector.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = berth_cli_env(&data, &[], &["gc", "status"]);
        if status["pending_deletions"].as_u64().unwrap() == garbage.len() as u64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the collection never marked: {status}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // And berth itself, kill -9.
    berth.kill9();
    berth.restart();

    let status = berth_cli_env(&data, &[], &["gc", "status"]);
    assert_eq!(
        status["running"]["status"], "running",
        "the dead run: {status}"
    );
    assert_eq!(status["pending_deletions"], garbage.len() as u64);
    // Marked blobs are already absent to clients.
    for digest in &garbage {
        let response = client
            .head(berth.url(&format!("/v2/crash/junk/blobs/{digest}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404);
    }
    // The dead collector's lease lapses (30 s), then a run carries on: ours, or the
    // server's resume job, whichever takes the lease first.
    let deadline = Instant::now() + Duration::from_secs(60);
    while gc_cli(&data, &[], &[]).is_none()
        || berth_cli_env(&data, &[], &["gc", "status"])["pending_deletions"] != 0
    {
        assert!(
            Instant::now() < deadline,
            "the dead collector's lease never lapsed"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let runs = berth_cli_env(&data, &[], &["gc", "runs"]);
    let runs = runs.as_array().unwrap();
    let dead = runs.last().unwrap();
    assert_eq!(dead["status"], "interrupted", "{runs:?}");
    let resumed: Vec<&Value> = runs
        .iter()
        .filter(|run| run["report"]["resumed"] == garbage.len() as u64)
        .collect();
    assert_eq!(
        resumed.len(),
        1,
        "one run finished the dead one's deletions: {runs:?}"
    );
    let report = &resumed[0]["report"];
    assert_eq!(report["blobs"], garbage.len() as u64, "{report}");
    assert_eq!(report["interrupted_runs"], json!([dead["id"]]), "{report}");
    let status = berth_cli_env(&data, &[], &["gc", "status"]);
    assert_eq!(status["pending_deletions"], 0);
    assert_eq!(status["running"], Value::Null);
    let stored = stored_on_disk(&data);
    assert!(stored.is_disjoint(&garbage), "the garbage is gone");
    let mut expected = BTreeMap::new();
    expected.insert("crash/app:v1".to_string(), kept);
    assert_eq!(stored, referenced(&expected));
    assert_pulls(&berth.base_url(), &expected).await;
}

#[tokio::test]
async fn gc_configuration_errors_name_the_key() {
    let sandbox = Sandbox::new();
    for (key, value, expected) in [
        ("BERTH_GC_WINDOW", "25:00-06:00", "gc.window"),
        ("BERTH_GC_UNTAGGED", "delete soon", "gc.untagged"),
        ("BERTH_GC_GRACE", "-1h", "gc.grace"),
        ("BERTH_GC_INTERVAL", "0s", "gc.interval"),
    ] {
        let output = berth_cli_output_env(
            &sandbox.path("data"),
            &[(key, value)],
            &["gc", "--dry-run"],
            None,
        );
        assert!(!output.status.success(), "{key}={value} accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{key}={value}: {stderr}");
    }
}

#[tokio::test]
async fn gc_deletes_blob_files_no_record_knows_once_older_than_the_grace_period() {
    let berth = aggressive(Berth::builder()).start();
    let client = client();
    let data = berth.data_dir().to_path_buf();
    let kept = push_image_blobs(&client, &berth).await;
    // Bytes a crash left between the storage write and the database commit.
    let orphan = bytes(7_000, 4242);
    let digest = sha256(&orphan);
    let hex = digest.strip_prefix("sha256:").unwrap();
    let dir = data.join(format!(
        "docker/registry/v2/blobs/sha256/{}/{hex}",
        &hex[..2]
    ));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("data"), &orphan).unwrap();

    // Younger than the grace period: left alone (its record may be on its way).
    let patient = berth_cli_output_env(&data, &[("BERTH_GC_GRACE", "1h")], &["gc"], None);
    assert!(patient.status.success(), "{patient:?}");
    let report: Value = serde_json::from_slice(&patient.stdout).unwrap();
    assert_eq!(report["orphans"], 0, "{report}");
    assert!(stored_on_disk(&data).contains(&digest));

    let dry = gc_cli(&data, &[], &["--dry-run"]).unwrap();
    assert_eq!(dry["orphans"], 1, "{dry}");
    assert_eq!(dry["bytes"], 7_000, "{dry}");
    assert!(
        stored_on_disk(&data).contains(&digest),
        "a dry run deletes nothing"
    );
    let real = gc_cli(&data, &[], &[]).unwrap();
    assert_eq!(real["orphans"], 1, "{real}");
    assert_eq!(real["blobs"], 1, "{real}");
    assert_eq!(real["bytes"], 7_000, "{real}");
    let stored = stored_on_disk(&data);
    assert!(!stored.contains(&digest), "the orphan is gone");
    assert!(
        kept.iter().all(|d| stored.contains(d)),
        "recorded blobs stay"
    );
    // Pushing the same bytes afterwards stores and serves them as usual.
    push_blob(&client, &berth, "orphans/app", &orphan).await;
    assert!(stored_on_disk(&data).contains(&digest));
}

#[tokio::test]
async fn gc_refuses_a_database_that_is_not_the_storages_and_deletes_nothing() {
    let berth = aggressive(Berth::builder()).start();
    let client = client();
    let data = berth.data_dir().to_path_buf();
    let kept = push_image_blobs(&client, &berth).await;
    let stored = stored_on_disk(&data);
    // Stored an hour ago: the check leaves out bytes younger than a few minutes, whose
    // records may be on their way.
    let an_hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    for digest in &stored {
        let hex = digest.strip_prefix("sha256:").unwrap();
        let file = data.join(format!(
            "docker/registry/v2/blobs/sha256/{}/{hex}/data",
            &hex[..2]
        ));
        std::fs::File::options()
            .write(true)
            .open(&file)
            .and_then(|f| f.set_modified(an_hour_ago))
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    }
    // An operator's `berth gc` on the server's storage but not its database (here a new,
    // empty one): every stored blob would look like an orphan a crash left.
    let elsewhere = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", elsewhere.path().join("berth.db").display());
    let env: Vec<(&str, &str)> = AGGRESSIVE
        .into_iter()
        .chain([("BERTH_DATABASE_URL", url.as_str())])
        .collect();
    for args in [&["gc", "--dry-run"][..], &["gc"][..]] {
        let output = berth_cli_output_env(&data, &env, args, None);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success(),
            "berth {args:?} succeeded: {stderr}"
        );
        assert!(
            stderr.contains(&format!(
                "{n} of the first {n} blobs in storage have no record in the database",
                n = stored.len()
            )) && stderr.contains("nothing was collected"),
            "berth {args:?}: {stderr}"
        );
    }
    assert_eq!(stored_on_disk(&data), stored, "nothing was deleted");
    for digest in &kept {
        let url = format!("{}/v2/orphans/app/blobs/{digest}", berth.base_url());
        let response = client.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200, "{digest}");
    }
    // With its own database, the same command collects as usual.
    let real = gc_cli(&data, &[], &[]).unwrap();
    assert_eq!(real["orphans"], 0, "{real}");
    assert!(stored_on_disk(&data).is_superset(&kept.iter().cloned().collect()));
}

/// One collection at a time inside an instance too: the gc-resume job, run while a collection
/// started through the admin API waits out its fence (its marks pending), finds it running and
/// leaves it alone. (The lease is the instance's: the job once took the collection for a dead
/// one, recorded it interrupted and swept beside it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_resume_job_leaves_a_collection_under_way_in_its_instance_alone() {
    const PASSWORD: &str = "root password 1";
    let data = tempfile::tempdir().unwrap();
    let added = crate::support::berth_cli_output(
        data.path(),
        &["user", "add", "root", "--admin", "--password-stdin"],
        Some(PASSWORD),
    );
    assert!(added.status.success(), "{added:?}");
    let berth = aggressive(Berth::builder())
        .env("REGISTRY_AUTH", "berth")
        .data(data.path())
        .start();
    let basic = data_encoding::BASE64.encode(format!("root:{PASSWORD}").as_bytes());
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Basic {basic}").parse().unwrap(),
    );
    let root = reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap();
    let base = berth.base_url();
    try_push(&root, &base, "resume/app", "v1", &image(7, 7), None)
        .await
        .unwrap();
    for i in 0..50 {
        let garbage = bytes(2_000, 500 + i);
        let pushed = root
            .post(format!(
                "{base}/v2/resume/app/blobs/uploads/?digest={}",
                sha256(&garbage)
            ))
            .body(garbage)
            .send()
            .await
            .unwrap();
        assert_eq!(pushed.status(), 201);
    }
    let get = |path: String| {
        let root = root.clone();
        async move {
            let response = root.get(path).send().await.unwrap();
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.unwrap()
        }
    };
    let started: Value = root
        .post(format!("{base}/api/v1/gc"))
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let run = started["run"].as_i64().expect("a run id");
    // The sweep begins with a 2 s fence.
    loop {
        let record = get(format!("{base}/api/v1/gc/runs/{run}")).await;
        assert_eq!(record["status"], "running", "{record}");
        if record["progress"]["phase"] == "sweep" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let resumed: Value = root
        .post(format!("{base}/api/v1/jobs/gc-resume/run"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(resumed["succeeded"], true, "{resumed}");
    assert_eq!(resumed["summary"], "", "the job left it alone: {resumed}");
    let record = loop {
        let record = get(format!("{base}/api/v1/gc/runs/{run}")).await;
        if record["status"] != "running" {
            break record;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(record["status"], "finished", "{record}");
    assert_eq!(record["report"]["blobs"], 50, "{record}");
    let runs = get(format!("{base}/api/v1/gc/runs")).await;
    assert_eq!(runs.as_array().map(Vec::len), Some(1), "{runs}");
}

/// Pushes a tagged image; its blobs' digests.
async fn push_image_blobs(client: &reqwest::Client, berth: &Berth) -> Vec<String> {
    let image = image(9, 9);
    try_push(client, &berth.base_url(), "orphans/app", "v1", &image, None)
        .await
        .unwrap();
    image
        .blobs
        .iter()
        .map(|(digest, _)| digest.clone())
        .collect()
}

#[tokio::test]
async fn gc_purges_s3_uploads_the_database_does_not_know_with_their_multipart_upload() {
    let garage = Garage::start();
    let mut env = garage.berth_env("mpu");
    env.push((
        "REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_AGE".into(),
        "1s".into(),
    ));
    let mut builder = aggressive(Berth::builder());
    for (key, value) in &env {
        builder = builder.env(key, value);
    }
    let berth = builder.start();
    // An upload with a whole part in S3 (a multipart upload under way) and a tail.
    let client = client();
    let started = client
        .post(berth.url("/v2/mpu/app/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 202);
    let location = started.headers()["location"].to_str().unwrap().to_string();
    let url = if location.starts_with('/') {
        berth.url(&location)
    } else {
        location.clone()
    };
    let patched = client
        .patch(url)
        .header("content-type", "application/octet-stream")
        .body(bytes(6 * 1024 * 1024, 5))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 202);
    assert!(
        !bucket_keys(&garage, "mpu/berth/uploads").await.is_empty(),
        "the upload's state snapshot and tail are stored"
    );
    assert_eq!(
        multipart_uploads(&garage, "mpu/").await.len(),
        1,
        "the whole part went to S3 in a multipart upload"
    );

    // The database forgets the session (a crash before its row was written, a restore of an
    // older backup): only storage knows the upload now.
    let id = location
        .split('?')
        .next()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let store = berth_meta::SqliteStore::open(&berth.data_dir().join("berth.db"))
        .await
        .unwrap();
    use berth_meta::MetadataStore;
    assert!(
        store
            .delete_upload(berth_oci::UploadId::parse(&id).unwrap())
            .await
            .unwrap()
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let report = gc_cli(berth.data_dir(), &env, &[]).unwrap();
    // Purged through the store's delete_upload, which aborts the upload's multipart upload
    // (named in its state snapshot) and deletes its objects.
    assert_eq!(report["upload_files"], 1, "{report}");
    assert!(bucket_keys(&garage, "mpu/berth/uploads").await.is_empty());
    assert_eq!(
        multipart_uploads(&garage, "mpu/").await,
        Vec::<String>::new(),
        "the multipart upload was aborted"
    );
}
