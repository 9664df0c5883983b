//! Pull-through caches with real upstreams on loopback: Debian's `docker-registry`
//! (distribution 2.8) with and without htpasswd (Basic upstream auth), and a second berth with
//! token auth (Bearer upstream auth); skopeo and podman as the clients. Upstream requests are
//! counted in the upstream's own access log. The kinds of upstream, revalidation and access
//! rules are in `upstreams`, downloads in `downloads`, virtual repositories in `virtuals`,
//! containerd's mirror parameter in `mirror`, upstreams that misbehave on the way (through
//! the `faulty` relay) in `faults`, failover, an upstream's 429s and chains of caches in
//! `resilience`, the caps a remote puts on its upstream in `limits`, the admin API's view of
//! them in `admin`.

mod admin;
mod dashboard;
mod downloads;
mod eviction;
mod faults;
mod faulty;
mod instances;
mod limits;
mod mirror;
mod resilience;
mod upstreams;
mod virtuals;

use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use sha2::Digest as _;

use crate::support::clients::*;
use crate::support::official_registry::OfficialRegistry;
use crate::support::push::{OCI_INDEX, OCI_MANIFEST};
use crate::support::{Berth, assert_oci_error, berth_cli, berth_cli_output, bytes, client, sha256};

/// An image pushed to an upstream.
struct Pushed {
    digest: String,
    /// Config first, then layers.
    blobs: Vec<(String, Vec<u8>)>,
}

/// Uploads a blob to any registry: `POST`, then `PUT ?digest=` with the body.
async fn push_blob_to(base: &str, repo: &str, data: &[u8]) -> String {
    let digest = sha256(data);
    let client = client();
    let started = client
        .post(format!("{base}/v2/{repo}/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        started.status(),
        202,
        "upload start: {}",
        started.text().await.unwrap()
    );
    let location = started.headers()["location"].to_str().unwrap().to_string();
    let location = if location.starts_with('/') {
        format!("{base}{location}")
    } else {
        location
    };
    let separator = if location.contains('?') { '&' } else { '?' };
    let finished = client
        .put(format!("{location}{separator}digest={digest}"))
        .header("content-type", "application/octet-stream")
        .body(data.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(
        finished.status(),
        201,
        "upload finish: {}",
        finished.text().await.unwrap()
    );
    digest
}

/// Builds a one-layer image with umoci (its file holding `content`) in the sandbox directory
/// `layout` and pushes it with skopeo to `target` (`HOST/REPO:TAG`).
async fn skopeo_push(
    sandbox: &Sandbox,
    layout: &str,
    content: &[u8],
    target: &str,
    credentials: Option<&str>,
) -> Pushed {
    let image = umoci_image(sandbox, layout, content).await;
    let mut command = sandbox.skopeo();
    command.args(["copy", "--dest-tls-verify=false"]);
    if let Some(credentials) = credentials {
        command.args(["--dest-creds", credentials]);
    }
    run(command.arg(&image).arg(format!("docker://{target}"))).await;
    let path = sandbox.path(layout);
    let digest = text(&layout_descriptor(&path, "v1")["digest"]).to_string();
    let manifest = layout_blob(&path, &digest);
    Pushed {
        blobs: manifest_blobs(&path, &manifest),
        digest,
    }
}

/// A logged upstream (its directory holds berth's too) with a one-layer image holding
/// `content` pushed as `team/app:v1`, and the sandbox that built it (the layout `layout`).
async fn upstream_with_image(
    content: &[u8],
) -> (tempfile::TempDir, OfficialRegistry, Sandbox, Pushed) {
    let dir = tempfile::tempdir().unwrap();
    let upstream = OfficialRegistry::start_logged(dir.path(), None);
    let sandbox = Sandbox::new();
    let target = format!("{}/team/app:v1", upstream.host());
    let pushed = skopeo_push(&sandbox, "layout", content, &target, None).await;
    (dir, upstream, sandbox, pushed)
}

/// A logged upstream with htpasswd (`carol`, password `carol-password`: Basic upstream auth)
/// and a one-layer image holding `content` pushed as `team/app:v1`.
async fn htpasswd_upstream_with_image(
    content: &[u8],
) -> (tempfile::TempDir, OfficialRegistry, Sandbox, Pushed) {
    let dir = tempfile::tempdir().unwrap();
    let htpasswd = htpasswd_file(dir.path(), "carol", "carol-password");
    let upstream = OfficialRegistry::start_logged(
        dir.path(),
        Some(&format!(
            "  htpasswd:\n    realm: Registry\n    path: {}\n",
            htpasswd.display()
        )),
    );
    let sandbox = Sandbox::new();
    let target = format!("{}/team/app:v1", upstream.host());
    let pushed = skopeo_push(
        &sandbox,
        "layout",
        content,
        &target,
        Some("carol:carol-password"),
    )
    .await;
    (dir, upstream, sandbox, pushed)
}

/// A logged upstream with a multi-platform index (linux/amd64 and linux/arm64) pushed with
/// `skopeo copy --all` as `team/multi:latest`.
async fn upstream_with_index() -> (tempfile::TempDir, OfficialRegistry, Sandbox, MultiPlatform) {
    let dir = tempfile::tempdir().unwrap();
    let upstream = OfficialRegistry::start_logged(dir.path(), None);
    let sandbox = Sandbox::new();
    let pushed = multi_platform_layout(&sandbox, &["amd64", "arm64"]).await;
    run(sandbox
        .skopeo()
        .args(["copy", "--all", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:multi", pushed.layout.display()))
        .arg(format!("docker://{}/team/multi:latest", upstream.host())))
    .await;
    (dir, upstream, sandbox, pushed)
}

/// A write refused because the name is a cache: 403 `DENIED`, saying so.
async fn assert_denied_as_a_cache(response: reqwest::Response) {
    let body = assert_oci_error(response, 403, "DENIED").await;
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("pull-through cache"), "{message}");
}

/// How many requests `METHOD PATH` the upstream's access log records.
fn upstream_requests(upstream: &OfficialRegistry, method: &str, path: &str) -> usize {
    let needle = format!("\"{method} {path} HTTP");
    upstream
        .log_text()
        .lines()
        .filter(|line| line.contains(&needle))
        .count()
}

/// `skopeo copy` from a registry (plain HTTP, optional credentials) into an OCI layout
/// `dir:v1`; the copied manifest's digest, and the layout.
async fn skopeo_pull(
    sandbox: &Sandbox,
    image: &str,
    credentials: Option<&str>,
    out: &str,
) -> Result<(String, std::path::PathBuf), String> {
    let layout = sandbox.path(out);
    let mut command = sandbox.skopeo();
    command.args(["copy", "--src-tls-verify=false"]);
    if let Some(credentials) = credentials {
        command.args(["--src-creds", credentials]);
    }
    command
        .arg(format!("docker://{image}"))
        .arg(format!("oci:{}:v1", layout.display()));
    let output = run_output(&mut command, b"").await;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    let descriptor = layout_descriptor(&layout, "v1");
    Ok((text(&descriptor["digest"]).to_string(), layout))
}

/// `podman pull` into a fresh store; the pulled image's digest.
async fn podman_pull(sandbox: &Sandbox, store: &str, image: &str) -> Result<String, String> {
    let output = run_output(
        sandbox
            .podman(store)
            .args(["pull", "--tls-verify=false", image]),
        b"",
    )
    .await;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    let inspected = run_json(sandbox.podman(store).args(["inspect", image])).await;
    Ok(text(&inspected[0]["Digest"]).to_string())
}

/// A manifest's digest through berth's HTTP API (`Docker-Content-Digest`).
async fn manifest_digest(berth: &Berth, repo: &str, reference: &str) -> String {
    let response = client()
        .get(berth.url(&format!("/v2/{repo}/manifests/{reference}")))
        .header("accept", format!("{OCI_MANIFEST}, {OCI_INDEX}"))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let digest = response
        .headers()
        .get("docker-content-digest")
        .map(|v| v.to_str().unwrap().to_string());
    assert_eq!(
        status,
        200,
        "GET {repo}:{reference}: {}",
        response.text().await.unwrap()
    );
    digest.unwrap()
}

/// Whether berth logs a line containing `needle` within five seconds (its output is read by
/// another thread, a little after berth writes it).
async fn logs(berth: &Berth, needle: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !berth.log_text().contains(needle) {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

/// berth with a config file holding `yaml` (and the usual test environment).
fn berth_with_config(dir: &Path, yaml: &str) -> Berth {
    let config = dir.join("berth.yml");
    std::fs::write(&config, yaml).unwrap();
    Berth::builder()
        .env("BERTH_CONFIG", config.to_str().unwrap())
        .start()
}

/// berth in its own auth mode with the config file `yaml`, on a data directory where each
/// `(user, pattern, actions)` is a user (password `<user>-password`) with that rule (no
/// rule when `actions` is empty); `env` is more of berth's environment.
fn berth_with_users(
    data: &Path,
    rules: &[(&str, &str, &str)],
    yaml: &str,
    env: &[(&str, &str)],
) -> Berth {
    let mut added = std::collections::BTreeSet::new();
    for (user, pattern, actions) in rules {
        if added.insert(*user) {
            let output = berth_cli_output(
                data,
                &["user", "add", user, "--password-stdin"],
                Some(&format!("{user}-password\n")),
            );
            assert!(output.status.success(), "{output:?}");
        }
        if !actions.is_empty() {
            berth_cli(
                data,
                &["policy", "add", &format!("user:{user}"), pattern, actions],
            );
        }
    }
    let config = data.join("berth.yml");
    std::fs::write(&config, yaml).unwrap();
    let mut builder = Berth::builder()
        .data(data)
        .env("REGISTRY_AUTH", "berth")
        .env("BERTH_CONFIG", config.to_str().unwrap());
    for (key, value) in env {
        builder = builder.env(key, value);
    }
    builder.start()
}

/// The repositories `GET /v2/_catalog` lists, optionally as `user` (password
/// `<user>-password`).
async fn catalog(berth: &Berth, user: Option<&str>) -> serde_json::Value {
    let mut request = client().get(berth.url("/v2/_catalog"));
    if let Some(user) = user {
        request = request.basic_auth(user, Some(format!("{user}-password")));
    }
    let body: serde_json::Value = request.send().await.unwrap().json().await.unwrap();
    body["repositories"].clone()
}

/// berth's `/metrics` (open to anyone in the test's setups).
async fn metrics_text(berth: &Berth) -> String {
    client()
        .get(berth.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// A remote `up` at prefix `up` over `url`, with extra YAML lines for the remote.
fn remote_config(url: &str, extra: &str) -> String {
    format!("remotes:\n  up:\n    prefix: up\n    urls: [{url}]\n{extra}")
}

/// Streams a blob through berth, hashing it: its digest and length, or the transfer's error.
async fn fetch_blob(client: &reqwest::Client, url: &str) -> Result<(String, u64), String> {
    let response = client.get(url).send().await.map_err(|e| e.to_string())?;
    if response.status() != 200 {
        return Err(format!("status {}", response.status()));
    }
    let mut hasher = sha2::Sha256::new();
    let mut length = 0u64;
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| format!("transfer failed: {e}"))?;
        length += chunk.len() as u64;
        hasher.update(&chunk);
    }
    Ok((format!("sha256:{}", hex::encode(hasher.finalize())), length))
}
