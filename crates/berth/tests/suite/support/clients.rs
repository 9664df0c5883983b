//! Real registry clients in a sandbox: every command runs with `HOME`, `XDG_*` and `TMPDIR`
//! inside the test's own scratch directory, podman and buildah on their own vfs storage, so
//! tests run in parallel and leave the machine's container state alone. (skopeo run as root
//! keeps its blob-info cache in /var/lib/containers/cache and has no option to move it; that
//! cache is safe to share and only ever a hint.)

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::process::Command;

use super::push::{DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST};
use super::{Berth, bytes, client, sha256, tool};

/// No single tool invocation may take longer than this; it is killed when it does.
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(120);

pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// A test's scratch space. Every command made here runs in it with `HOME`, `XDG_*` and `TMPDIR`
/// pointing inside it.
pub struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let dir = tempfile::tempdir().expect("temp dir");
        for sub in ["home", "config", "data", "cache", "run", "tmp"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        let runtime = dir.path().join("run");
        std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
        Sandbox { dir }
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    pub fn command(&self, program: &Path) -> Command {
        let mut command = Command::new(program);
        command
            .current_dir(self.dir.path())
            .env("HOME", self.path("home"))
            .env("XDG_CONFIG_HOME", self.path("config"))
            .env("XDG_DATA_HOME", self.path("data"))
            .env("XDG_CACHE_HOME", self.path("cache"))
            .env("XDG_RUNTIME_DIR", self.path("run"))
            .env("TMPDIR", self.path("tmp"))
            .env_remove("REGISTRY_AUTH_FILE")
            .env_remove("DOCKER_CONFIG")
            .env_remove("CONTAINERS_CONF")
            .env_remove("CONTAINERS_STORAGE_CONF");
        command
    }

    pub fn skopeo(&self) -> Command {
        self.command(&tool("skopeo"))
    }

    pub fn umoci(&self) -> Command {
        self.command(&tool("umoci"))
    }

    /// podman on its own vfs storage `store` (a directory name inside the sandbox).
    pub fn podman(&self, store: &str) -> Command {
        let store = self.path(store);
        let mut command = self.command(&tool("podman"));
        command
            .arg("--root")
            .arg(store.join("root"))
            .arg("--runroot")
            .arg(store.join("runroot"))
            .arg("--storage-driver=vfs")
            .arg("--tmpdir")
            .arg(store.join("libpod"))
            .arg("--network-config-dir")
            .arg(store.join("networks"))
            .arg("--volumepath")
            .arg(store.join("volumes"));
        command
    }

    /// buildah on its own vfs storage `store` (a directory name inside the sandbox).
    pub fn buildah(&self, store: &str) -> Command {
        let store = self.path(store);
        let mut command = self.command(&tool("buildah"));
        command
            .arg("--root")
            .arg(store.join("root"))
            .arg("--runroot")
            .arg(store.join("runroot"))
            .arg("--storage-driver=vfs");
        command
    }

    pub fn write(&self, relative: &str, data: &[u8]) -> PathBuf {
        let path = self.path(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, data).unwrap();
        path
    }
}

/// Runs `command` to completion (killing it after [`TOOL_TIMEOUT`]) and returns its stdout;
/// panics with its output unless it succeeds.
pub async fn run(command: &mut Command) -> Vec<u8> {
    let shown = format!("{:?}", command.as_std());
    command.stdin(Stdio::null()).kill_on_drop(true);
    let output = match tokio::time::timeout(TOOL_TIMEOUT, command.output()).await {
        Ok(output) => output.unwrap_or_else(|e| panic!("cannot run {shown}: {e}")),
        Err(_) => panic!("{shown} did not finish within {TOOL_TIMEOUT:?}"),
    };
    assert!(
        output.status.success(),
        "{shown} failed ({})\n--- stdout:\n{}\n--- stderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    output.stdout
}

pub async fn run_json(command: &mut Command) -> Value {
    let stdout = run(command).await;
    serde_json::from_slice(&stdout).unwrap_or_else(|e| {
        panic!(
            "{:?} printed no JSON ({e}):\n{}",
            command.as_std(),
            String::from_utf8_lossy(&stdout)
        )
    })
}

pub fn text(value: &Value) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("a string, got {value}"))
}

/// The descriptor tagged `name` in an OCI image layout's index.json.
pub fn layout_descriptor(layout: &Path, name: &str) -> Value {
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|descriptor| descriptor["annotations"][REF_NAME] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no {name} in {}: {index}", layout.display()))
}

/// A blob of an OCI image layout, checked against its digest.
pub fn layout_blob(layout: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
    let path = layout.join("blobs/sha256").join(hex);
    let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(sha256(&data), digest, "content of {}", path.display());
    data
}

/// The blobs an image manifest references, config first, as `(digest, bytes)`.
pub fn manifest_blobs(layout: &Path, manifest: &[u8]) -> Vec<(String, Vec<u8>)> {
    let manifest: Value = serde_json::from_slice(manifest).unwrap();
    let mut descriptors = vec![&manifest["config"]];
    descriptors.extend(manifest["layers"].as_array().unwrap());
    descriptors
        .into_iter()
        .map(|descriptor| {
            let digest = text(&descriptor["digest"]).to_string();
            let data = layout_blob(layout, &digest);
            assert_eq!(descriptor["size"], data.len(), "size of {digest}");
            (digest, data)
        })
        .collect()
}

/// Adds `blob` to a layout's blobs and returns its digest.
pub fn add_layout_blob(layout: &Path, blob: &[u8]) -> String {
    let digest = sha256(blob);
    let hex = digest.strip_prefix("sha256:").unwrap();
    std::fs::write(layout.join("blobs/sha256").join(hex), blob).unwrap();
    digest
}

/// Extracts the layer tarballs (gzip or not) over each other into `rootfs`.
pub async fn extract_layers(sandbox: &Sandbox, layers: &[PathBuf], rootfs: &Path) {
    std::fs::create_dir_all(rootfs).unwrap();
    for layer in layers {
        run(sandbox
            .command(&tool("tar"))
            .arg("-xf")
            .arg(layer)
            .arg("-C")
            .arg(rootfs))
        .await;
    }
}

/// GETs a manifest from berth over HTTP, accepting every manifest type.
pub async fn get_manifest(berth: &Berth, repo: &str, reference: &str) -> (Vec<u8>, String) {
    let response = client()
        .get(berth.url(&format!("/v2/{repo}/manifests/{reference}")))
        .header(
            "accept",
            [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST].join(", "),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "GET manifest {repo}:{reference}");
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    let digest = response.headers()["docker-content-digest"]
        .to_str()
        .unwrap()
        .to_string();
    let body = response.bytes().await.unwrap().to_vec();
    assert_eq!(
        sha256(&body),
        digest,
        "Docker-Content-Digest of {repo}:{reference}"
    );
    (body, content_type)
}

/// GETs a blob from berth over HTTP and checks it against its digest.
pub async fn get_blob(berth: &Berth, repo: &str, digest: &str) -> Vec<u8> {
    let response = client()
        .get(berth.url(&format!("/v2/{repo}/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "GET blob {repo}@{digest}");
    assert_eq!(response.headers()["docker-content-digest"], digest);
    let body = response.bytes().await.unwrap().to_vec();
    assert_eq!(sha256(&body), digest, "content of blob {repo}@{digest}");
    body
}

/// `skopeo list-tags`, as a list.
pub async fn skopeo_tags(sandbox: &Sandbox, image: &str) -> Vec<String> {
    let listed = run_json(
        sandbox
            .skopeo()
            .args(["list-tags", "--tls-verify=false"])
            .arg(format!("docker://{image}")),
    )
    .await;
    listed["Tags"]
        .as_array()
        .unwrap_or_else(|| panic!("Tags in {listed}"))
        .iter()
        .map(|tag| text(tag).to_string())
        .collect()
}

/// Builds one more layer on `image` (`LAYOUT:TAG`) with umoci: unpack, write `files`, repack.
pub async fn umoci_layer(sandbox: &Sandbox, image: &str, bundle: &str, files: &[(&str, Vec<u8>)]) {
    let bundle = sandbox.path(bundle);
    run(sandbox
        .umoci()
        .args(["unpack", "--rootless", "--image", image])
        .arg(&bundle))
    .await;
    for (name, data) in files {
        let path = bundle.join("rootfs").join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, data).unwrap();
    }
    run(sandbox
        .umoci()
        .args(["repack", "--image", image])
        .arg(&bundle))
    .await;
}

/// Runs `command` to completion (killing it after [`TOOL_TIMEOUT`]) with `input` on its
/// standard input, and returns its output whatever the outcome (for commands expected to fail,
/// and `--password-stdin`).
pub async fn run_output(command: &mut Command, input: &[u8]) -> std::process::Output {
    use tokio::io::AsyncWriteExt;
    let shown = format!("{:?}", command.as_std());
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    // A command that exits without reading its input is not an error here.
    let _ = stdin.write_all(input).await;
    drop(stdin);
    match tokio::time::timeout(TOOL_TIMEOUT, child.wait_with_output()).await {
        Ok(output) => output.unwrap_or_else(|e| panic!("{shown}: {e}")),
        Err(_) => panic!("{shown} did not finish within {TOOL_TIMEOUT:?}"),
    }
}

/// The Python that has the `oras` SDK: `BERTH_TEST_PYTHON`, else the repository's `.venv`.
pub fn oras_python() -> PathBuf {
    let python = match std::env::var_os("BERTH_TEST_PYTHON") {
        Some(python) => PathBuf::from(python),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python"),
    };
    assert!(
        python.is_file(),
        "{} does not exist: the oras Python SDK is not installed; run the test suite with \
         ./scripts/test, which installs it",
        python.display()
    );
    python
}

/// `oras_client.py --registry HOST ARGS...`, whose stdout is JSON.
pub async fn oras(sandbox: &Sandbox, berth: &Berth, args: &[&str]) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/oras_client.py");
    run_json(
        sandbox
            .command(&oras_python())
            .arg(script)
            .args(["--registry", &berth.host()])
            .args(args),
    )
    .await
}

/// An OCI image layout holding one image per architecture (made with umoci: a layer with a
/// file naming the architecture and a payload) and an index over them, tagged `multi`.
pub struct MultiPlatform {
    pub layout: PathBuf,
    pub index: Vec<u8>,
    pub index_digest: String,
    pub children: Vec<Platform>,
}

/// Per architecture: its name, its manifest's digest and bytes, and its blobs (config first).
pub type Platform = (String, String, Vec<u8>, Vec<(String, Vec<u8>)>);

pub async fn multi_platform_layout(sandbox: &Sandbox, architectures: &[&str]) -> MultiPlatform {
    let layout = sandbox.path("layout");
    run(sandbox.umoci().args(["init", "--layout"]).arg(&layout)).await;
    let mut children = Vec::new();
    for (i, arch) in architectures.iter().enumerate() {
        let image = format!("{}:{arch}", layout.display());
        run(sandbox.umoci().args(["new", "--image", &image])).await;
        run(sandbox
            .umoci()
            .args(["config", "--image", &image, "--os=linux"])
            .arg(format!("--architecture={arch}")))
        .await;
        let files = [
            ("etc/arch", format!("built for {arch}\n").into_bytes()),
            ("opt/payload.bin", bytes(200_000 + i * 1000, 20 + i as u64)),
        ];
        umoci_layer(sandbox, &image, &format!("bundle-{arch}"), &files).await;
        let descriptor = layout_descriptor(&layout, arch);
        let digest = text(&descriptor["digest"]).to_string();
        let manifest = layout_blob(&layout, &digest);
        let blobs = manifest_blobs(&layout, &manifest);
        let config: Value = serde_json::from_slice(&blobs[0].1).unwrap();
        assert_eq!(config["architecture"], *arch);
        children.push((arch.to_string(), digest, manifest, blobs));
    }

    let index = serde_json::to_vec_pretty(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": children.iter().map(|(arch, digest, manifest, _)| json!({
            "mediaType": OCI_MANIFEST,
            "digest": digest,
            "size": manifest.len(),
            "platform": {"architecture": arch, "os": "linux"},
        })).collect::<Vec<_>>(),
        "annotations": {"org.opencontainers.image.description": "berth e2e multi-platform"},
    }))
    .unwrap();
    let index_digest = add_layout_blob(&layout, &index);
    let index_json = layout.join("index.json");
    let mut top: Value = serde_json::from_slice(&std::fs::read(&index_json).unwrap()).unwrap();
    top["manifests"].as_array_mut().unwrap().push(json!({
        "mediaType": OCI_INDEX,
        "digest": index_digest,
        "size": index.len(),
        "annotations": {REF_NAME: "multi"},
    }));
    std::fs::write(&index_json, serde_json::to_vec(&top).unwrap()).unwrap();
    MultiPlatform {
        layout,
        index,
        index_digest,
        children,
    }
}

/// Builds an image of one layer per entry of `layers` with umoci, copies it into the registry
/// at `host` as `reference` with skopeo and back out into another layout, and checks that
/// the same manifest and every blob came back.
pub async fn skopeo_round_trip(
    sandbox: &Sandbox,
    host: &str,
    reference: &str,
    layers: &[(&str, Vec<u8>)],
) {
    let layout = sandbox.path("layout");
    let image = format!("{}:v1", layout.display());
    run(sandbox.umoci().args(["init", "--layout"]).arg(&layout)).await;
    run(sandbox.umoci().args(["new", "--image", &image])).await;
    for (i, (name, data)) in layers.iter().enumerate() {
        umoci_layer(
            sandbox,
            &image,
            &format!("bundle{i}"),
            &[(name, data.clone())],
        )
        .await;
    }
    run(sandbox
        .skopeo()
        .args(["copy", "--dest-tls-verify=false"])
        .arg(format!("oci:{image}"))
        .arg(format!("docker://{host}/{reference}")))
    .await;
    let out = sandbox.path("out");
    run(sandbox
        .skopeo()
        .args(["copy", "--src-tls-verify=false"])
        .arg(format!("docker://{host}/{reference}"))
        .arg(format!("oci:{}:v1", out.display())))
    .await;
    let source = layout_descriptor(&layout, "v1");
    let copied = layout_descriptor(&out, "v1");
    assert_eq!(
        source["digest"], copied["digest"],
        "same manifest digest after the round trip"
    );
    let manifest_digest = text(&source["digest"]);
    let source_manifest = layout_blob(&layout, manifest_digest);
    for ((digest, data), (_, copied)) in manifest_blobs(&layout, &source_manifest)
        .into_iter()
        .zip(manifest_blobs(&out, &layout_blob(&out, manifest_digest)))
    {
        assert!(data == copied, "blob {digest} differs");
    }
}

/// `htpasswd -Bbc FILE USER PASSWORD` (Debian's apache2-utils): a bcrypt entry.
pub fn htpasswd_file(dir: &Path, user: &str, password: &str) -> PathBuf {
    let file = dir.join("htpasswd");
    let output = std::process::Command::new(tool("htpasswd"))
        .arg("-Bbc")
        .arg(&file)
        .args([user, password])
        .output()
        .expect("htpasswd runs");
    assert!(output.status.success(), "htpasswd: {output:?}");
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .starts_with(&format!("{user}:$2y$")),
        "a bcrypt entry"
    );
    file
}

/// A one-layer OCI image layout made with umoci in the sandbox directory `layout`, its layer
/// holding `hello.txt` with `content`: `oci:LAYOUT:v1`, as skopeo takes it.
pub async fn umoci_image(sandbox: &Sandbox, layout: &str, content: &[u8]) -> String {
    let path = sandbox.path(layout);
    run(sandbox.umoci().args(["init", "--layout"]).arg(&path)).await;
    let image = format!("{}:v1", path.display());
    run(sandbox.umoci().args(["new", "--image", &image])).await;
    umoci_layer(
        sandbox,
        &image,
        &format!("{layout}-bundle"),
        &[("hello.txt", content.to_vec())],
    )
    .await;
    format!("oci:{image}")
}

/// `skopeo copy FROM docker://TO` into a plain-HTTP registry, whatever its outcome.
pub async fn skopeo_push(sandbox: &Sandbox, from: &str, to: &str) -> std::process::Output {
    run_output(
        sandbox
            .skopeo()
            .args(["copy", "--dest-tls-verify=false", from])
            .arg(format!("docker://{to}")),
        b"",
    )
    .await
}
