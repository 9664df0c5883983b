//! Remotes and registry:2's proxy mode over each kind of upstream: htpasswd (Basic) and a
//! token-auth berth, HTTPS with a CA file; revalidation of tags, multi-platform indexes, the
//! access rules on cache names.

use std::path::Path;
use std::time::{Duration, Instant};

use super::*;

#[tokio::test]
async fn registry_v2_proxy_mode_mirrors_an_htpasswd_upstream_for_skopeo_and_podman() {
    let (_dir, upstream, sandbox, pushed) = htpasswd_upstream_with_image(b"mirrored\n").await;

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
        logs(&berth, "serving the cached manifest").await,
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
    let (dir, upstream, sandbox, pushed) = upstream_with_index().await;
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

/// Tags `to` as `from` is in an upstream (the manifest fetched from `from`, put as `to`).
async fn retag(base: &str, repo: &str, from: &str, to: &str) {
    let client = client();
    let manifest = client
        .get(format!("{base}/v2/{repo}/manifests/{from}"))
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    assert_eq!(manifest.status(), 200);
    let media_type = manifest.headers()["content-type"].clone();
    let body = manifest.bytes().await.unwrap();
    let put = client
        .put(format!("{base}/v2/{repo}/manifests/{to}"))
        .header("content-type", media_type)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);
}

#[tokio::test]
async fn tags_matching_immutabletags_are_never_revalidated() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = OfficialRegistry::start_logged(dir.path(), None);
    let sandbox = Sandbox::new();
    let latest = format!("{}/team/app:latest", upstream.host());
    let first = skopeo_push(&sandbox, "first", b"first\n", &latest, None).await;
    retag(&upstream.base, "team/app", "latest", "v1.2.3").await;
    let berth = berth_with_config(
        dir.path(),
        &remote_config(
            &upstream.base,
            "    revalidateafter: 1s\n    immutabletags: [\"v*.*.*\"]\n",
        ),
    );
    for tag in ["v1.2.3", "latest"] {
        assert_eq!(
            manifest_digest(&berth, "up/team/app", tag).await,
            first.digest
        );
    }

    // Both tags move upstream; past revalidateafter only the mutable one is checked.
    let second = skopeo_push(&sandbox, "second", b"second\n", &latest, None).await;
    retag(&upstream.base, "team/app", "latest", "v1.2.3").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        manifest_digest(&berth, "up/team/app", "latest").await,
        second.digest
    );
    assert_eq!(
        manifest_digest(&berth, "up/team/app", "v1.2.3").await,
        first.digest,
        "an immutable tag is served as cached"
    );
    let release = "/v2/team/app/manifests/v1.2.3";
    assert_eq!(
        (
            upstream_requests(&upstream, "HEAD", release),
            upstream_requests(&upstream, "GET", release)
        ),
        (0, 1),
        "fetched once, never checked"
    );
}
