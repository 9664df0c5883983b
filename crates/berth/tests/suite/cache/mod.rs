//! Pull-through caches with real upstreams on loopback: Debian's `docker-registry`
//! (distribution 2.8) with and without htpasswd (Basic upstream auth), and a second berth with
//! token auth (Bearer upstream auth); skopeo and podman as the clients. Upstream requests are
//! counted in the upstream's own access log. Virtual repositories are in `virtuals`,
//! containerd's mirror parameter in `mirror`, upstreams that misbehave on the way (through
//! the `faulty` relay) in `faults`, the caps a remote puts on its upstream in `limits`, the
//! admin API's view of them in `admin`.

mod admin;
mod faults;
mod faulty;
mod limits;
mod mirror;
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

/// A remote `up` at prefix `up` over `url`, with extra YAML lines for the remote.
fn remote_config(url: &str, extra: &str) -> String {
    format!("remotes:\n  up:\n    prefix: up\n    urls: [{url}]\n{extra}")
}

#[tokio::test]
async fn registry_v2_proxy_mode_mirrors_an_htpasswd_upstream_for_skopeo_and_podman() {
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
    let pushed = skopeo_push(
        &sandbox,
        "layout",
        b"mirrored\n",
        &format!("{}/team/app:v1", upstream.host()),
        Some("carol:carol-password"),
    )
    .await;

    // Exactly registry:2's proxy settings, from the environment.
    let berth = Berth::builder()
        .env("REGISTRY_PROXY_REMOTEURL", &upstream.base)
        .env("REGISTRY_PROXY_USERNAME", "carol")
        .env("REGISTRY_PROXY_PASSWORD", "carol-password")
        .start();
    let image = format!("{}/team/app:v1", berth.host());
    let (digest, layout) = skopeo_pull(&sandbox, &image, None, "first").await.unwrap();
    assert_eq!(
        digest, pushed.digest,
        "skopeo pulled the upstream's manifest"
    );
    for (blob, data) in &pushed.blobs {
        assert_eq!(
            &layout_blob(&layout, blob),
            data,
            "blob {blob} byte for byte"
        );
    }
    let podman = podman_pull(&sandbox, "podman", &image).await.unwrap();
    assert_eq!(podman, pushed.digest, "podman pulled the same image");
    for (blob, _) in &pushed.blobs {
        assert_eq!(
            upstream_requests(&upstream, "GET", &format!("/v2/team/app/blobs/{blob}")),
            1,
            "blob {blob} was downloaded once for both clients"
        );
    }
    assert!(
        !berth.log_text().contains("carol-password"),
        "the upstream password is never logged"
    );

    // A cache takes no pushes.
    let response = client()
        .post(berth.url("/v2/team/app/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_denied_as_a_cache(response).await;
    assert_eq!(catalog(&berth, None).await, serde_json::json!(["team/app"]));

    // The upstream gone, the cached image is still served.
    drop(upstream);
    let (digest, _) = skopeo_pull(&sandbox, &image, None, "again").await.unwrap();
    assert_eq!(digest, pushed.digest, "served with the upstream stopped");
}

/// An upstream berth in berth mode (token auth) with `puller` (pull on team/**) and
/// `pusher` (pull and push on team/**).
fn token_upstream(dir: &Path) -> Berth {
    for (user, password, actions) in [
        ("puller", "puller-password", "pull"),
        ("pusher", "pusher-password", "pull,push"),
    ] {
        let output = berth_cli_output(
            dir,
            &["user", "add", user, "--password-stdin"],
            Some(&format!("{password}\n")),
        );
        assert!(output.status.success(), "{output:?}");
        berth_cli(
            dir,
            &["policy", "add", &format!("user:{user}"), "team/**", actions],
        );
    }
    Berth::builder()
        .data(dir)
        .env("REGISTRY_AUTH", "berth")
        .start()
}

#[tokio::test]
async fn a_token_auth_upstream_is_served_while_it_is_down_and_after_a_restart() {
    let upstream_dir = tempfile::tempdir().unwrap();
    let mut upstream = token_upstream(upstream_dir.path());
    let sandbox = Sandbox::new();
    let pushed = skopeo_push(
        &sandbox,
        "layout",
        b"behind a token service\n",
        &format!("{}/team/app:v1", upstream.host()),
        Some("pusher:pusher-password"),
    )
    .await;

    let dir = tempfile::tempdir().unwrap();
    let mut berth = berth_with_config(
        dir.path(),
        &remote_config(
            &upstream.base_url(),
            "    username: puller\n    password: puller-password\n    revalidateafter: 1s\n",
        ),
    );
    let image = format!("{}/up/team/app:v1", berth.host());
    let pulled = podman_pull(&sandbox, "first", &image).await.unwrap();
    assert_eq!(
        pulled, pushed.digest,
        "pulled through a token-auth upstream"
    );
    let (digest, _) = skopeo_pull(&sandbox, &image, None, "skopeo").await.unwrap();
    assert_eq!(digest, pushed.digest);

    // Upstream down, and the tag due for revalidation: the cached one is served.
    upstream.kill9();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let pulled = podman_pull(&sandbox, "stale", &image).await.unwrap();
    assert_eq!(pulled, pushed.digest, "served stale with the upstream down");
    assert!(
        berth.log_text().contains("serving the cached manifest"),
        "a stale serve is logged"
    );
    // What was never cached is a clear 503 naming the upstream, not a hang.
    let started = Instant::now();
    let response = client()
        .get(berth.url("/v2/up/team/other/manifests/v1"))
        .send()
        .await
        .unwrap();
    let body = assert_oci_error(response, 503, "UNAVAILABLE").await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        body["errors"][0]["detail"]["upstream"],
        upstream.base_url(),
        "{body}"
    );

    // The cache is ordinary content: it survives a restart.
    berth.restart();
    let image = format!("{}/up/team/app:v1", berth.host());
    let pulled = podman_pull(&sandbox, "restarted", &image).await.unwrap();
    assert_eq!(
        pulled, pushed.digest,
        "served after a restart, upstream still down"
    );
}

#[tokio::test]
async fn a_tag_moved_upstream_is_seen_after_revalidate_after_and_not_before() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = OfficialRegistry::start_logged(dir.path(), None);
    let sandbox = Sandbox::new();
    let target = format!("{}/team/app:v1", upstream.host());
    let first = skopeo_push(&sandbox, "first", b"first\n", &target, None).await;
    let berth = berth_with_config(
        dir.path(),
        &remote_config(&upstream.base, "    revalidateafter: 3s\n"),
    );
    let path = "/v2/team/app/manifests/v1";
    let requests = || {
        (
            upstream_requests(&upstream, "HEAD", path),
            upstream_requests(&upstream, "GET", path),
        )
    };

    let fetched = Instant::now();
    assert_eq!(
        manifest_digest(&berth, "up/team/app", "v1").await,
        first.digest
    );
    assert_eq!(requests(), (0, 1), "the first pull fetches the manifest");
    let second = skopeo_push(&sandbox, "second", b"second\n", &target, None).await;
    assert_ne!(second.digest, first.digest);
    for _ in 0..5 {
        assert_eq!(
            manifest_digest(&berth, "up/team/app", "v1").await,
            first.digest,
            "within revalidateafter the cached tag is served"
        );
    }
    assert_eq!(requests(), (0, 1), "and the upstream is not asked");

    // (The window starts when the first fetch completed, a little after `fetched`.)
    tokio::time::sleep(Duration::from_millis(3500).saturating_sub(fetched.elapsed())).await;
    assert_eq!(
        manifest_digest(&berth, "up/team/app", "v1").await,
        second.digest,
        "after revalidateafter the moved tag is seen"
    );
    assert_eq!(
        requests(),
        (1, 2),
        "one HEAD, then one GET of the new manifest"
    );
    assert_eq!(
        manifest_digest(&berth, "up/team/app", "v1").await,
        second.digest
    );
    assert_eq!(
        requests(),
        (1, 2),
        "checked again only after another window"
    );

    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        manifest_digest(&berth, "up/team/app", "v1").await,
        second.digest
    );
    assert_eq!(
        requests(),
        (2, 2),
        "an unchanged tag costs one HEAD and no GET"
    );

    // By digest, cached content never goes upstream.
    let by_digest = format!("/v2/team/app/manifests/{}", first.digest);
    assert_eq!(
        manifest_digest(&berth, "up/team/app", &first.digest).await,
        first.digest
    );
    assert_eq!(upstream_requests(&upstream, "GET", &by_digest), 0);
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
    const SIZE: usize = 64 * 1024 * 1024;
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
    let metrics = client()
        .get(berth.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
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
async fn pushes_to_a_remote_are_denied_and_access_rules_apply_to_its_names() {
    let (_dir, upstream, sandbox, pushed) = upstream_with_image(b"access rules\n").await;

    let data = tempfile::tempdir().unwrap();
    let berth = berth_with_users(
        data.path(),
        &[("alice", "up/**", "pull,push"), ("bob", "up/**", "")],
        &remote_config(&upstream.base, ""),
        &[],
    );
    let image = format!("{}/up/team/app:v1", berth.host());

    let (digest, layout) = skopeo_pull(&sandbox, &image, Some("alice:alice-password"), "alice")
        .await
        .unwrap();
    assert_eq!(digest, pushed.digest, "alice may pull through the cache");
    let refused = skopeo_pull(&sandbox, &image, Some("bob:bob-password"), "bob").await;
    assert!(refused.is_err(), "bob has no rule for up/**");
    let refused = skopeo_pull(&sandbox, &image, None, "anonymous").await;
    assert!(refused.is_err(), "anonymous pull-through needs a rule");

    // Even with push rights, a cache takes no pushes: DENIED, saying why.
    let copy = run_output(
        sandbox
            .skopeo()
            .args([
                "copy",
                "--dest-tls-verify=false",
                "--dest-creds",
                "alice:alice-password",
            ])
            .arg(format!("oci:{}:v1", layout.display()))
            .arg(format!("docker://{}/up/team/app:v2", berth.host())),
        b"",
    )
    .await;
    assert!(!copy.status.success(), "skopeo push to a remote fails");
    let response = client()
        .post(berth.url("/v2/up/team/app/blobs/uploads/"))
        .basic_auth("alice", Some("alice-password"))
        .send()
        .await
        .unwrap();
    assert_denied_as_a_cache(response).await;
    let response = client()
        .delete(berth.url(&format!("/v2/up/team/app/manifests/{}", pushed.digest)))
        .basic_auth("alice", Some("alice-password"))
        .send()
        .await
        .unwrap();
    assert!(
        matches!(response.status().as_u16(), 401 | 403),
        "no deletes in a cache either: {}",
        response.status()
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

/// `skopeo copy --all` of `image` into a new layout `out` (tag `multi`), checked against
/// what was pushed: the index and every platform's manifest and blobs, byte for byte.
async fn skopeo_copy_all_matches(
    sandbox: &Sandbox,
    image: &str,
    out: &str,
    pushed: &MultiPlatform,
) {
    let out = sandbox.path(out);
    run(sandbox
        .skopeo()
        .args(["copy", "--all", "--src-tls-verify=false"])
        .arg(format!("docker://{image}"))
        .arg(format!("oci:{}:multi", out.display())))
    .await;
    assert_eq!(
        text(&layout_descriptor(&out, "multi")["digest"]),
        pushed.index_digest
    );
    assert_eq!(layout_blob(&out, &pushed.index_digest), pushed.index);
    for (arch, digest, manifest, blobs) in &pushed.children {
        let copied = layout_blob(&out, digest);
        assert_eq!(&copied, manifest, "{arch} manifest");
        assert_eq!(&manifest_blobs(&out, &copied), blobs, "{arch} blobs");
    }
}

#[tokio::test]
async fn a_multi_platform_index_pulled_with_skopeo_all_is_served_with_the_upstream_down() {
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
    let berth = berth_with_config(dir.path(), &remote_config(&upstream.base, ""));
    let image = format!("{}/up/team/multi:latest", berth.host());

    skopeo_copy_all_matches(&sandbox, &image, "first", &pushed).await;
    drop(upstream);
    skopeo_copy_all_matches(&sandbox, &image, "again", &pushed).await;
    assert_eq!(
        manifest_digest(&berth, "up/team/multi", &pushed.index_digest).await,
        pushed.index_digest,
        "the index by digest, upstream down"
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

#[tokio::test]
async fn an_https_upstream_is_trusted_through_its_ca_file_and_refused_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = dir.path().join("upstream.pem");
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    let key = dir.path().join("upstream-key.pem");
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let upstream = Berth::builder()
        .env("REGISTRY_HTTP_TLS_CERTIFICATE", cert.to_str().unwrap())
        .env("REGISTRY_HTTP_TLS_KEY", key.to_str().unwrap())
        .start();
    let host = format!("localhost:{}", upstream.addr.port());
    let sandbox = Sandbox::new();
    let target = format!("{host}/team/app:v1");
    let pushed = skopeo_push(&sandbox, "layout", b"over tls\n", &target, None).await;

    let berth = berth_with_config(
        dir.path(),
        &format!(
            "remotes:\n  up:\n    prefix: up\n    urls: [https://{host}]\n    cafile: {}\n  untrusted:\n    prefix: untrusted\n    urls: [https://{host}]\n",
            cert.display()
        ),
    );
    assert_eq!(
        manifest_digest(&berth, "up/team/app", "v1").await,
        pushed.digest,
        "trusted through remotes.up.cafile"
    );
    let response = client()
        .get(berth.url("/v2/untrusted/team/app/manifests/v1"))
        .send()
        .await
        .unwrap();
    let body = assert_oci_error(response, 503, "UNAVAILABLE").await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("could not be reached"),
        "{body}"
    );
}
