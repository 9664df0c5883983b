//! Moving in from the official registry: content pushed to Debian's `docker-registry`
//! (CNCF distribution 2.8) is imported by `berth import registry-v2`, in place and into
//! another store, and pulls back through berth byte for byte.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use crate::support::clients::{Sandbox, run, umoci_layer};
use crate::support::official_registry::OfficialRegistry;
use crate::support::push::{OCI_INDEX, OCI_MANIFEST};
use crate::support::{Berth, bytes, client, sha256};
use berth_storage::testing::garage::Garage;

/// POST then PUT with the whole blob: registry:2 2.8 does not implement single-request
/// (`POST ?digest=`) uploads.
async fn push_blob(base: &str, repo: &str, data: &[u8]) -> String {
    let digest = sha256(data);
    let client = client();
    let start = client
        .post(format!("{base}/v2/{repo}/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 202);
    let location = start.headers()["location"].to_str().unwrap().to_string();
    let location = if location.starts_with('/') {
        format!("{base}{location}")
    } else {
        location
    };
    let separator = if location.contains('?') { '&' } else { '?' };
    let response = client
        .put(format!("{location}{separator}digest={digest}"))
        .body(data.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    digest
}

async fn put_manifest(base: &str, repo: &str, reference: &str, media_type: &str, manifest: &[u8]) {
    let response = client()
        .put(format!("{base}/v2/{repo}/manifests/{reference}"))
        .header("content-type", media_type)
        .body(manifest.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
}

/// What a registry serves: for every repository, its tags and each tag's manifest bytes,
/// every blob those manifests reference (checked against their digests), and manifests
/// reachable by digest only.
async fn snapshot(base: &str, by_digest: &[(&str, String)]) -> BTreeMap<String, Vec<u8>> {
    let client = client();
    let accept = [OCI_MANIFEST, OCI_INDEX].join(", ");
    let mut seen = BTreeMap::new();
    let catalog: serde_json::Value = client
        .get(format!("{base}/v2/_catalog"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut references: Vec<(String, String)> = by_digest
        .iter()
        .map(|(r, d)| (r.to_string(), d.clone()))
        .collect();
    for repo in catalog["repositories"].as_array().unwrap() {
        let repo = repo.as_str().unwrap();
        let tags: serde_json::Value = client
            .get(format!("{base}/v2/{repo}/tags/list"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mut names: Vec<&str> = tags["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        names.sort();
        seen.insert(format!("{repo} tags"), names.join(",").into_bytes());
        references.extend(names.iter().map(|t| (repo.to_string(), t.to_string())));
    }
    for (repo, reference) in references {
        let response = client
            .get(format!("{base}/v2/{repo}/manifests/{reference}"))
            .header("accept", &accept)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{repo}:{reference} at {base}");
        let manifest = response.bytes().await.unwrap().to_vec();
        let parsed: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
        let mut blobs: Vec<&serde_json::Value> = parsed["layers"]
            .as_array()
            .map(|l| l.iter().collect())
            .unwrap_or_default();
        if parsed["config"].is_object() {
            blobs.push(&parsed["config"]);
        }
        for blob in blobs {
            let digest = blob["digest"].as_str().unwrap();
            let data = client
                .get(format!("{base}/v2/{repo}/blobs/{digest}"))
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            assert_eq!(sha256(&data), digest, "{repo} blob {digest} at {base}");
        }
        seen.insert(format!("{repo}:{reference}"), manifest);
    }
    seen
}

fn import(source: &Path, data: &Path) -> Output {
    import_with(source.to_str().unwrap(), data, &[])
}

fn import_with(source: &str, data: &Path, env: &[(String, String)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["import", "registry-v2", source])
        .arg("--data")
        .arg(data)
        .env("REGISTRY_LOG_LEVEL", "warn")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .unwrap()
}

fn blob_files(root: &Path) -> usize {
    fn count(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| {
                        if e.path().is_dir() {
                            count(&e.path())
                        } else {
                            1
                        }
                    })
                    .sum()
            })
            .unwrap_or(0)
    }
    count(&root.join("docker/registry/v2/blobs"))
}

#[tokio::test]
async fn an_official_registry_store_is_imported_in_place_and_by_copy() {
    let store = tempfile::tempdir().unwrap();
    let official = OfficialRegistry::start_with(
        store.path(),
        &format!(
            "  filesystem:\n    rootdirectory: {}\n",
            store.path().display()
        ),
        None,
    );
    let base = official.base.clone();

    // An image built with umoci and pushed with skopeo, under two tags.
    let sandbox = Sandbox::new();
    let layout = sandbox.path("layout");
    let image = format!("{}:v1", layout.display());
    run(sandbox.umoci().args(["init", "--layout"]).arg(&layout)).await;
    run(sandbox.umoci().args(["new", "--image", &image])).await;
    umoci_layer(&sandbox, &image, "b1", &[("app/bin", bytes(2_000_000, 1))]).await;
    umoci_layer(&sandbox, &image, "b2", &[("app/data", bytes(500_000, 2))]).await;
    for tag in ["v1", "latest"] {
        run(sandbox
            .skopeo()
            .args(["copy", "--dest-tls-verify=false"])
            .arg(format!("oci:{image}"))
            .arg(format!("docker://{}/library/app:{tag}", official.host())))
        .await;
    }

    // A two-platform index over two raw images, pushed over HTTP.
    let mut children = Vec::new();
    for (arch, seed) in [("amd64", 10u64), ("arm64", 11)] {
        let config = format!("{{\"architecture\":\"{arch}\",\"os\":\"linux\"}}").into_bytes();
        let layer = bytes(300_000, seed);
        let (config_digest, layer_digest) = (
            push_blob(&base, "team/multi", &config).await,
            push_blob(&base, "team/multi", &layer).await,
        );
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest, "size": layer.len()}]
        }))
        .unwrap();
        put_manifest(
            &base,
            "team/multi",
            &sha256(&manifest),
            OCI_MANIFEST,
            &manifest,
        )
        .await;
        children.push(serde_json::json!({
            "mediaType": OCI_MANIFEST, "digest": sha256(&manifest), "size": manifest.len(),
            "platform": {"architecture": arch, "os": "linux"}
        }));
    }
    let index = serde_json::to_vec(
        &serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children}),
    )
    .unwrap();
    put_manifest(&base, "team/multi", "2.0", OCI_INDEX, &index).await;

    // An SBOM whose subject is the index, and a manifest reachable by digest only.
    let empty = push_blob(&base, "team/multi", b"{}").await;
    let sbom = push_blob(&base, "team/multi", b"{\"spdx\":true}").await;
    let referrer = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/spdx+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
        "layers": [{"mediaType": "application/spdx+json", "digest": sbom, "size": 13}],
        "subject": {"mediaType": OCI_INDEX, "digest": sha256(&index), "size": index.len()}
    }))
    .unwrap();
    let referrer_digest = sha256(&referrer);
    put_manifest(
        &base,
        "team/multi",
        &referrer_digest,
        OCI_MANIFEST,
        &referrer,
    )
    .await;

    let by_digest = [("team/multi", referrer_digest.clone())];
    let official_view = snapshot(&base, &by_digest).await;
    assert!(official_view.len() >= 6, "{:?}", official_view.keys());
    drop(official);

    // In place: berth adopts the store as it is.
    let files_before = blob_files(store.path());
    let output = import(store.path(), store.path());
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("imported 2 repositories"), "{stdout}");
    assert!(
        stdout.contains("(0 copied)"),
        "in place, nothing is copied: {stdout}"
    );
    assert_eq!(
        blob_files(store.path()),
        files_before,
        "no blob was written"
    );
    // Again: nothing changes, nothing fails.
    let again = import(store.path(), store.path());
    assert!(again.status.success());
    assert_eq!(String::from_utf8_lossy(&again.stdout), stdout);

    let berth = Berth::builder().data(store.path()).start();
    assert_eq!(snapshot(&berth.base_url(), &by_digest).await, official_view);
    let referrers: serde_json::Value = client()
        .get(berth.url(&format!("/v2/team/multi/referrers/{}", sha256(&index))))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        referrers["manifests"][0]["digest"], referrer_digest,
        "the referrers API works on imported content"
    );
    drop(berth);

    // Into another store: every blob is copied and verified.
    let elsewhere = tempfile::tempdir().unwrap();
    let output = import(store.path(), elsewhere.path());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!stdout.contains("(0 copied)"), "{stdout}");
    let berth = Berth::builder().data(elsewhere.path()).start();
    assert_eq!(snapshot(&berth.base_url(), &by_digest).await, official_view);
}

#[tokio::test]
async fn an_official_registry_store_in_s3_is_imported_in_place() {
    let garage = Garage::start();
    let dir = tempfile::tempdir().unwrap();
    let storage = format!(
        "  s3:\n    accesskey: {}\n    secretkey: {}\n    region: garage\n    regionendpoint: {}\n    bucket: {}\n    rootdirectory: /official\n    secure: false\n    v4auth: true\n    chunksize: 5242880\n  redirect:\n    disable: true\n",
        garage.access_key,
        garage.secret_key,
        garage.endpoint(),
        garage.bucket
    );
    let official = OfficialRegistry::start_with(dir.path(), &storage, None);
    let base = official.base.clone();
    let config = b"{\"architecture\":\"amd64\",\"os\":\"linux\"}".to_vec();
    let layer = bytes(6_000_000, 42);
    let (config_digest, layer_digest) = (
        push_blob(&base, "s3/app", &config).await,
        push_blob(&base, "s3/app", &layer).await,
    );
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest, "size": layer.len()}]
    }))
    .unwrap();
    put_manifest(&base, "s3/app", "v1", OCI_MANIFEST, &manifest).await;
    let official_view = snapshot(&base, &[]).await;
    drop(official);

    // berth on the same bucket and prefix adopts the store without copying.
    let env = garage.berth_env("official");
    let data = tempfile::tempdir().unwrap();
    let output = import_with(
        &format!("s3://{}/official", garage.bucket),
        data.path(),
        &env,
    );
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("imported 1 repositories: 2 blobs (0 copied), 1 manifests, 1 tags"),
        "{stdout}"
    );
    let mut builder = Berth::builder().data(data.path());
    for (key, value) in &env {
        builder = builder.env(key, value);
    }
    let berth = builder.start();
    assert_eq!(snapshot(&berth.base_url(), &[]).await, official_view);
}

#[test]
fn problems_are_reported_and_the_rest_is_imported() {
    let store = tempfile::tempdir().unwrap();
    let root = store.path().join("docker/registry/v2");
    // A repository whose tag points at a manifest whose data is gone, and a layer link to a
    // missing blob; next to it nothing else.
    let digest = sha256(b"gone");
    let hex = digest.trim_start_matches("sha256:");
    for link in [
        format!("repositories/broken/app/_layers/sha256/{hex}/link"),
        format!("repositories/broken/app/_manifests/revisions/sha256/{hex}/link"),
        "repositories/broken/app/_manifests/tags/v1/current/link".to_string(),
    ] {
        let path = root.join(link);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, &digest).unwrap();
    }
    let output = import(store.path(), store.path());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "{stdout}");
    assert!(stdout.contains("imported 1 repositories"), "{stdout}");
    assert!(stdout.contains("its data is missing"), "{stdout}");
    assert!(stdout.contains("content unreadable"), "{stdout}");
    assert!(stdout.contains("tag v1"), "{stdout}");
}
