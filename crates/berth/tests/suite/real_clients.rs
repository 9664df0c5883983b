//! End to end with real registry clients: skopeo, umoci, podman, buildah and the oras Python
//! SDK push to and pull from the real binary, and what comes back is checked byte for byte.
//!
//! Every test has its own registry, its own repositories and its own scratch directory, which
//! holds every tool's home, config, runtime and temp directories and the podman/buildah storage
//! (vfs), so the tests run in parallel and leave the machine's container state alone. (One
//! exception: skopeo run as root keeps its blob-info cache in /var/lib/containers/cache, and has
//! no option to move it; that cache is safe to share and only ever a hint.) The tools are
//! installed by `./scripts/test`, which also sets `BERTH_TEST_PYTHON` to a Python that has the
//! `oras` package.

use std::path::PathBuf;

use crate::support::clients::*;
use crate::support::push::{OCI_INDEX, OCI_MANIFEST};
use crate::support::{Berth, bytes, client, sha256};
use serde_json::{Value, json};

#[tokio::test]
async fn skopeo_copies_a_multi_layer_image_byte_identical() {
    let berth = Berth::start();
    let sandbox = Sandbox::new();
    let layout = sandbox.path("layout");
    let image = format!("{}:v1", layout.display());
    run(sandbox.umoci().args(["init", "--layout"]).arg(&layout)).await;
    run(sandbox.umoci().args(["new", "--image", &image])).await;
    let layers: [Vec<(&str, Vec<u8>)>; 3] = [
        vec![
            ("etc/hello.txt", b"hello from umoci\n".to_vec()),
            ("opt/big/random.bin", bytes(6_000_000, 11)),
        ],
        vec![
            (
                "usr/share/doc/notes.txt",
                "notes\n".repeat(4_000).into_bytes(),
            ),
            ("usr/bin/tool", bytes(65_536, 12)),
        ],
        vec![
            ("etc/hello.txt", b"hello again, third layer\n".to_vec()),
            ("var/lib/empty", Vec::new()),
            ("var/lib/medium.bin", bytes(700_001, 13)),
        ],
    ];
    for (i, files) in layers.iter().enumerate() {
        umoci_layer(&sandbox, &image, &format!("bundle-{i}"), files).await;
    }

    let source = layout_descriptor(&layout, "v1");
    let digest = text(&source["digest"]).to_string();
    let manifest = layout_blob(&layout, &digest);
    let blobs = manifest_blobs(&layout, &manifest);
    assert_eq!(blobs.len(), 1 + 3, "a config and three layers");
    assert!(
        blobs.iter().any(|(_, data)| data.len() > 5_000_000),
        "one layer holds the 6 MB of random bytes"
    );

    let remote = format!("{}/e2e/umoci:v1", berth.host());
    run(sandbox
        .skopeo()
        .args(["copy", "--dest-tls-verify=false"])
        .arg(format!("oci:{image}"))
        .arg(format!("docker://{remote}")))
    .await;

    // What berth serves is what was pushed.
    let (served, content_type) = get_manifest(&berth, "e2e/umoci", "v1").await;
    assert_eq!(served, manifest, "manifest bytes served by berth");
    assert_eq!(content_type, OCI_MANIFEST);
    for (blob_digest, data) in &blobs {
        assert_eq!(&get_blob(&berth, "e2e/umoci", blob_digest).await, data);
    }

    let out = sandbox.path("out");
    run(sandbox
        .skopeo()
        .args(["copy", "--src-tls-verify=false"])
        .arg(format!("docker://{remote}"))
        .arg(format!("oci:{}:v1", out.display())))
    .await;
    let copied = layout_descriptor(&out, "v1");
    assert_eq!(
        copied["digest"],
        digest.as_str(),
        "manifest digest after the round trip"
    );
    assert_eq!(copied["mediaType"], OCI_MANIFEST);
    let copied_manifest = layout_blob(&out, &digest);
    assert_eq!(copied_manifest, manifest);
    assert_eq!(manifest_blobs(&out, &copied_manifest), blobs);

    let raw = run(sandbox
        .skopeo()
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{remote}")))
    .await;
    assert_eq!(raw, manifest, "skopeo inspect --raw");
    let tags = skopeo_tags(&sandbox, &format!("{}/e2e/umoci", berth.host())).await;
    assert_eq!(tags, ["v1"]);
}

#[tokio::test]
async fn skopeo_copy_all_of_a_multi_platform_index() {
    let berth = Berth::start();
    let sandbox = Sandbox::new();
    let MultiPlatform {
        layout,
        index,
        index_digest,
        children,
    } = multi_platform_layout(&sandbox, &["amd64", "arm64"]).await;
    let remote = format!("{}/e2e/multi:latest", berth.host());
    run(sandbox
        .skopeo()
        .args(["copy", "--all", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:multi", layout.display()))
        .arg(format!("docker://{remote}")))
    .await;

    let raw = run(sandbox
        .skopeo()
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{remote}")))
    .await;
    assert_eq!(
        raw, index,
        "skopeo inspect --raw returns the index as pushed"
    );
    let (served, content_type) = get_manifest(&berth, "e2e/multi", "latest").await;
    assert_eq!(served, index);
    assert_eq!(content_type, OCI_INDEX);
    for (arch, digest, manifest, blobs) in &children {
        let (served, _) = get_manifest(&berth, "e2e/multi", digest).await;
        assert_eq!(&served, manifest, "{arch} manifest by digest");
        // skopeo resolves the index to the platform it is asked for (its `Digest` is the
        // index's, the digest of what the tag names).
        let inspected = run_json(
            sandbox
                .skopeo()
                .arg("--override-os=linux")
                .arg(format!("--override-arch={arch}"))
                .args(["inspect", "--tls-verify=false"])
                .arg(format!("docker://{remote}")),
        )
        .await;
        assert_eq!(inspected["Digest"], index_digest.as_str(), "{inspected}");
        let layers: Vec<&str> = blobs[1..].iter().map(|(d, _)| d.as_str()).collect();
        assert_eq!(inspected["Layers"], json!(layers), "{arch}: {inspected}");
        assert_eq!(inspected["Architecture"], *arch);
    }

    let out = sandbox.path("out");
    run(sandbox
        .skopeo()
        .args(["copy", "--all", "--src-tls-verify=false"])
        .arg(format!("docker://{remote}"))
        .arg(format!("oci:{}:multi", out.display())))
    .await;
    let copied = layout_descriptor(&out, "multi");
    assert_eq!(copied["digest"], index_digest.as_str());
    assert_eq!(copied["mediaType"], OCI_INDEX);
    assert_eq!(layout_blob(&out, &index_digest), index);
    for (arch, digest, manifest, blobs) in &children {
        let copied_manifest = layout_blob(&out, digest);
        assert_eq!(&copied_manifest, manifest, "{arch} manifest");
        assert_eq!(
            &manifest_blobs(&out, &copied_manifest),
            blobs,
            "{arch} blobs"
        );
    }
    let tags = skopeo_tags(&sandbox, &format!("{}/e2e/multi", berth.host())).await;
    assert_eq!(tags, ["latest"]);
}

#[tokio::test]
async fn podman_push_and_pull() {
    let berth = Berth::start();
    let sandbox = Sandbox::new();
    let hello = b"hello from podman\n".to_vec();
    let data = bytes(3_000_000, 31);
    sandbox.write("context/hello.txt", &hello);
    sandbox.write("context/data.bin", &data);
    let containerfile = sandbox.write(
        "context/Containerfile",
        b"FROM scratch\nCOPY hello.txt /hello.txt\nCOPY data.bin /data/data.bin\n",
    );
    run(sandbox
        .podman("built")
        .args([
            "build",
            "--format",
            "oci",
            "-t",
            "localhost/e2e-podman:v1",
            "-f",
        ])
        .arg(&containerfile)
        .arg(sandbox.path("context")))
    .await;
    let built = run_json(
        sandbox
            .podman("built")
            .args(["inspect", "localhost/e2e-podman:v1"]),
    )
    .await;
    let image_id = text(&built[0]["Id"]).to_string();

    let remote = format!("{}/e2e/podman:v1", berth.host());
    let digestfile = sandbox.path("pushed-digest");
    run(sandbox
        .podman("built")
        .args(["push", "--tls-verify=false", "--digestfile"])
        .arg(&digestfile)
        .arg("localhost/e2e-podman:v1")
        .arg(format!("docker://{remote}")))
    .await;
    let pushed_digest = std::fs::read_to_string(&digestfile).unwrap();
    let pushed_digest = pushed_digest.trim();

    let (manifest, content_type) = get_manifest(&berth, "e2e/podman", "v1").await;
    assert_eq!(content_type, OCI_MANIFEST);
    assert_eq!(
        sha256(&manifest),
        pushed_digest,
        "the digest podman reported"
    );
    let manifest: Value = serde_json::from_slice(&manifest).unwrap();
    assert_eq!(
        text(&manifest["config"]["digest"]),
        format!("sha256:{image_id}"),
        "the config is the built image"
    );
    let layer_digests: Vec<&str> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|layer| text(&layer["digest"]))
        .collect();
    assert_eq!(layer_digests.len(), 2, "one layer per COPY: {manifest}");

    // A fresh podman storage pulls the same image.
    run(sandbox
        .podman("pulled")
        .args(["pull", "--tls-verify=false", &remote]))
    .await;
    let pulled = run_json(sandbox.podman("pulled").args(["inspect", &remote])).await;
    assert_eq!(
        pulled[0]["Id"],
        image_id.as_str(),
        "image ID after the pull"
    );
    assert_eq!(
        pulled[0]["Digest"], pushed_digest,
        "manifest digest after the pull"
    );

    // ... with the files in it.
    let saved = sandbox.path("saved");
    run(sandbox
        .podman("pulled")
        .args(["save", "--format", "oci-dir", "-o"])
        .arg(&saved)
        .arg(&remote))
    .await;
    let index: Value =
        serde_json::from_slice(&std::fs::read(saved.join("index.json")).unwrap()).unwrap();
    let saved_manifest = layout_blob(&saved, text(&index["manifests"][0]["digest"]));
    let saved_layers: Vec<PathBuf> = manifest_blobs(&saved, &saved_manifest)
        .iter()
        .skip(1)
        .map(|(digest, _)| saved.join("blobs/sha256").join(&digest["sha256:".len()..]))
        .collect();
    let rootfs = sandbox.path("rootfs");
    extract_layers(&sandbox, &saved_layers, &rootfs).await;
    assert_eq!(std::fs::read(rootfs.join("hello.txt")).unwrap(), hello);
    assert_eq!(std::fs::read(rootfs.join("data/data.bin")).unwrap(), data);

    let inspected = run_json(
        sandbox
            .skopeo()
            .args(["inspect", "--tls-verify=false"])
            .arg(format!("docker://{remote}")),
    )
    .await;
    assert_eq!(inspected["Digest"], pushed_digest);
    assert_eq!(inspected["Layers"], json!(layer_digests));
    let tags = skopeo_tags(&sandbox, &format!("{}/e2e/podman", berth.host())).await;
    assert_eq!(tags, ["v1"]);
}

#[tokio::test]
async fn buildah_builds_from_scratch_and_pushes() {
    let berth = Berth::start();
    let sandbox = Sandbox::new();
    let files = [
        ("one.txt", "/one.txt", b"first layer\n".to_vec()),
        ("two.bin", "/opt/two.bin", bytes(1_500_000, 41)),
        (
            "three.txt",
            "/etc/three.txt",
            "third\n".repeat(1000).into_bytes(),
        ),
    ];
    let mut containerfile = String::from("FROM scratch\n");
    for (name, dest, data) in &files {
        sandbox.write(&format!("context/{name}"), data);
        containerfile.push_str(&format!("COPY {name} {dest}\n"));
    }
    let containerfile = sandbox.write("context/Containerfile", containerfile.as_bytes());
    run(sandbox
        .buildah("store")
        .args(["bud", "--layers", "-t", "localhost/e2e-buildah", "-f"])
        .arg(&containerfile)
        .arg(sandbox.path("context")))
    .await;

    let digestfile = sandbox.path("pushed-digest");
    run(sandbox
        .buildah("store")
        .args(["push", "--tls-verify=false", "--digestfile"])
        .arg(&digestfile)
        .arg("localhost/e2e-buildah")
        .arg(format!("docker://{}/e2e/buildah:v1", berth.host())))
    .await;
    let pushed_digest = std::fs::read_to_string(&digestfile).unwrap();

    let (manifest_bytes, content_type) = get_manifest(&berth, "e2e/buildah", "v1").await;
    assert_eq!(content_type, OCI_MANIFEST);
    assert_eq!(sha256(&manifest_bytes), pushed_digest.trim());
    let (by_digest, _) = get_manifest(&berth, "e2e/buildah", pushed_digest.trim()).await;
    assert_eq!(by_digest, manifest_bytes);
    let manifest: Value = serde_json::from_slice(&manifest_bytes).unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), files.len(), "one layer per COPY: {manifest}");

    let config_descriptor = &manifest["config"];
    let config = get_blob(&berth, "e2e/buildah", text(&config_descriptor["digest"])).await;
    assert_eq!(config_descriptor["size"], config.len());
    let config: Value = serde_json::from_slice(&config).unwrap();
    assert_eq!(
        config["rootfs"]["diff_ids"].as_array().unwrap().len(),
        files.len()
    );

    let mut layer_files = Vec::new();
    for (i, layer) in layers.iter().enumerate() {
        let data = get_blob(&berth, "e2e/buildah", text(&layer["digest"])).await;
        assert_eq!(layer["size"], data.len());
        layer_files.push(sandbox.write(&format!("layers/{i}.tar.gz"), &data));
    }
    // Each layer holds its own file.
    for (i, (_, dest, data)) in files.iter().enumerate() {
        let rootfs = sandbox.path(&format!("layer-{i}"));
        extract_layers(&sandbox, &layer_files[i..=i], &rootfs).await;
        assert_eq!(
            &std::fs::read(rootfs.join(&dest[1..])).unwrap(),
            data,
            "{dest}"
        );
    }
}

#[tokio::test]
async fn oras_pushes_an_artifact_and_a_referrer() {
    let berth = Berth::start();
    let sandbox = Sandbox::new();
    let readme = b"an artifact pushed by the oras SDK\n".to_vec();
    let payload = bytes(1_500_000, 51);
    let config = br#"{"tool":"berth-e2e","version":1}"#.to_vec();
    let sbom = serde_json::to_vec(&json!({
        "spdxVersion": "SPDX-2.3", "name": "berth-e2e", "packages": [{"name": "payload"}]
    }))
    .unwrap();
    let signature = bytes(256, 52);
    let files = [
        ("readme.txt", &readme),
        ("payload.bin", &payload),
        ("config.json", &config),
        ("sbom.spdx.json", &sbom),
        ("signature.bin", &signature),
    ];
    for (name, data) in files {
        sandbox.write(&format!("files/{name}"), data);
    }
    sandbox.write("files/empty.json", b"{}");
    let file = |name: &str| sandbox.path(&format!("files/{name}")).display().to_string();

    let artifact_config = "application/vnd.berth.e2e.config.v1+json";
    let pushed = oras(
        &sandbox,
        &berth,
        &[
            "push",
            "--target=e2e/oras:v1",
            &format!("--config={}:{artifact_config}", file("config.json")),
            "--annotation=org.opencontainers.image.description=berth e2e artifact",
            "--annotation=com.example.build=42",
            &file("readme.txt"),
            &format!("{}:application/octet-stream", file("payload.bin")),
        ],
    )
    .await;
    let digest = text(&pushed["digest"]).to_string();
    assert_eq!(pushed["digest_header"], digest.as_str(), "{pushed}");
    assert_eq!(pushed["media_type"], OCI_MANIFEST);
    let manifest = &pushed["manifest"];
    assert_eq!(manifest["config"]["mediaType"], artifact_config);
    assert_eq!(manifest["config"]["digest"], sha256(&config));
    assert_eq!(manifest["annotations"]["com.example.build"], "42");
    assert_eq!(manifest["layers"].as_array().unwrap().len(), 2);
    let (served, _) = get_manifest(&berth, "e2e/oras", &digest).await;
    assert_eq!(sha256(&served), digest);
    assert_eq!(
        get_blob(&berth, "e2e/oras", &sha256(&payload)).await,
        payload
    );

    // An SBOM with an artifactType, and a signature typed by its config only, both on v1.
    let spdx = "application/spdx+json";
    let sbom_pushed = oras(
        &sandbox,
        &berth,
        &[
            "push",
            "--target=e2e/oras:sbom",
            &format!("--artifact-type={spdx}"),
            &format!(
                "--config={}:application/vnd.oci.empty.v1+json",
                file("empty.json")
            ),
            "--subject=e2e/oras:v1",
            &format!("{}:{spdx}", file("sbom.spdx.json")),
        ],
    )
    .await;
    let sbom_digest = text(&sbom_pushed["digest"]).to_string();
    assert_eq!(sbom_pushed["manifest"]["artifactType"], spdx);
    assert_eq!(
        sbom_pushed["manifest"]["subject"]["digest"],
        digest.as_str()
    );
    assert_eq!(
        sbom_pushed["subject_header"],
        digest.as_str(),
        "OCI-Subject"
    );
    let signature_type = "application/vnd.berth.e2e.signature.v1+json";
    let signature_pushed = oras(
        &sandbox,
        &berth,
        &[
            "push",
            "--target=e2e/oras:sig",
            &format!("--config={}:{signature_type}", file("config.json")),
            "--subject=e2e/oras:v1",
            &file("signature.bin"),
        ],
    )
    .await;
    let signature_digest = text(&signature_pushed["digest"]).to_string();
    assert!(signature_pushed["manifest"].get("artifactType").is_none());

    let referrers_url = berth.url(&format!("/v2/e2e/oras/referrers/{digest}"));
    let all = client().get(&referrers_url).send().await.unwrap();
    assert_eq!(all.status(), 200);
    assert_eq!(all.headers()["content-type"], OCI_INDEX);
    assert!(!all.headers().contains_key("oci-filters-applied"));
    let all: Value = all.json().await.unwrap();
    assert_eq!(all["mediaType"], OCI_INDEX);
    let mut listed: Vec<(String, String, u64)> = all["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|descriptor| {
            assert_eq!(descriptor["mediaType"], OCI_MANIFEST, "{descriptor}");
            (
                text(&descriptor["digest"]).to_string(),
                text(&descriptor["artifactType"]).to_string(),
                descriptor["size"].as_u64().unwrap(),
            )
        })
        .collect();
    listed.sort();
    let mut expected = vec![
        (
            sbom_digest.clone(),
            spdx.to_string(),
            sbom_pushed["size"].as_u64().unwrap(),
        ),
        (
            signature_digest.clone(),
            signature_type.to_string(),
            signature_pushed["size"].as_u64().unwrap(),
        ),
    ];
    expected.sort();
    assert_eq!(listed, expected, "referrers of v1: {all}");

    // `+` percent-encoded, as clients' URL encoders send it (a bare `+` in a query is a space).
    let filtered = client()
        .get(format!(
            "{referrers_url}?artifactType=application/spdx%2Bjson"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(filtered.status(), 200);
    assert_eq!(filtered.headers()["oci-filters-applied"], "artifactType");
    let filtered: Value = filtered.json().await.unwrap();
    let manifests = filtered["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1, "only the SBOM: {filtered}");
    assert_eq!(manifests[0]["digest"], sbom_digest.as_str());
    assert_eq!(manifests[0]["artifactType"], spdx);

    // The SBOM itself has no referrers: an empty index, not an error.
    let none: Value = client()
        .get(berth.url(&format!("/v2/e2e/oras/referrers/{sbom_digest}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(none["manifests"], json!([]));

    let outdir = sandbox.path("pulled-v1");
    let outdir_arg = format!("--outdir={}", outdir.display());
    let pulled = oras(
        &sandbox,
        &berth,
        &["pull", "--target=e2e/oras:v1", &outdir_arg],
    )
    .await;
    assert_eq!(pulled["files"], json!(["payload.bin", "readme.txt"]));
    assert_eq!(std::fs::read(outdir.join("readme.txt")).unwrap(), readme);
    assert_eq!(std::fs::read(outdir.join("payload.bin")).unwrap(), payload);
    let outdir = sandbox.path("pulled-sbom");
    let outdir_arg = format!("--outdir={}", outdir.display());
    let target = format!("--target=e2e/oras@{sbom_digest}");
    let pulled = oras(&sandbox, &berth, &["pull", &target, &outdir_arg]).await;
    assert_eq!(pulled["files"], json!(["sbom.spdx.json"]));
    assert_eq!(std::fs::read(outdir.join("sbom.spdx.json")).unwrap(), sbom);

    let tags = oras(&sandbox, &berth, &["tags", "--target=e2e/oras"]).await;
    assert_eq!(tags["tags"], json!(["sbom", "sig", "v1"]));
}
