//! A remote keeps working when its upstream does not: failover over its URLs, a rate-limited
//! upstream's `429 Retry-After` respected (and its remaining pulls recorded), and a chain
//! of caches, one the upstream of the next.

use std::time::{Duration, Instant};

use super::faulty::{Fault, FaultyUpstream, Target};
use super::*;

/// Whether berth's `/metrics` has this exact line.
async fn has_metric(berth: &Berth, line: &str) -> bool {
    metrics_text(berth).await.lines().any(|l| l == line)
}

/// A loopback URL nothing listens on.
fn nothing_listening() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", listener.local_addr().unwrap())
}

#[tokio::test]
async fn a_remote_fails_over_to_its_next_url_when_one_is_down_or_failing() {
    let (dir, upstream, sandbox, pushed) = upstream_with_image(b"failover\n").await;
    let down = nothing_listening();
    let failing =
        FaultyUpstream::start(&upstream.base, Fault::ServerError, Target::Manifests).await;
    let berth = berth_with_config(
        dir.path(),
        &format!(
            "remotes:\n  up:\n    prefix: up\n    urls: [{down}, {}, {}]\n",
            failing.base, upstream.base
        ),
    );

    let image = format!("{}/up/team/app:v1", berth.host());
    let (digest, layout) = skopeo_pull(&sandbox, &image, None, "out").await.unwrap();
    assert_eq!(digest, pushed.digest);
    for (blob, data) in &pushed.blobs {
        assert!(layout_blob(&layout, blob) == *data, "{blob} byte-exact");
    }
    assert_eq!(
        failing.requests("GET /v2/team/app/manifests/v1").len(),
        1,
        "the failing URL was tried once, after the one that is down"
    );
    assert_eq!(
        upstream_requests(&upstream, "GET", "/v2/team/app/manifests/v1"),
        1,
        "and the manifest came from the last URL"
    );
    assert!(logs(&berth, "upstream unreachable").await);
    assert!(logs(&berth, "upstream failed").await);
}

#[tokio::test]
async fn an_upstream_429_is_respected_until_retry_after_while_cached_tags_are_served_stale() {
    let (dir, upstream, sandbox, pushed) = upstream_with_image(b"limited\n").await;
    let other = format!("{}/team/other:v1", upstream.host());
    let other = skopeo_push(&sandbox, "other", b"other\n", &other, None).await;
    let relay = FaultyUpstream::start(
        &upstream.base,
        Fault::RateLimitRemaining(76),
        Target::Manifests,
    )
    .await;
    let berth = berth_with_config(
        dir.path(),
        &remote_config(&relay.base, "    revalidateafter: 1s\n"),
    );
    assert_eq!(
        manifest_digest(&berth, "up/team/app", "v1").await,
        pushed.digest
    );
    let remaining = "berth_cache_upstream_rate_limit_remaining{remote=\"up\"}";
    assert!(
        has_metric(&berth, &format!("{remaining} 76")).await,
        "Docker Hub's remaining pulls are recorded"
    );

    // The upstream's limit is reached: it answers 429, Retry-After 3 s.
    relay.set(Fault::TooManyRequests { retry_after: 3 }, Target::Manifests);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let throttled = Instant::now();
    assert_eq!(
        manifest_digest(&berth, "up/team/app", "v1").await,
        pushed.digest,
        "the cached tag, due for its check, is served stale"
    );
    let asked = relay.requests("/manifests/").len();
    assert!(has_metric(&berth, &format!("{remaining} 0")).await);
    assert!(has_metric(&berth, "berth_cache_stale_serves_total{remote=\"up\"} 1").await);

    // Until Retry-After has passed, berth does not ask again: an uncached tag is a clear
    // error at once, the cached one is served stale.
    let response = client()
        .get(berth.url("/v2/up/team/other/manifests/v1"))
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=3).contains(&retry_after),
        "what is left of the upstream's Retry-After: {retry_after}"
    );
    let body = assert_oci_error(response, 503, "UNAVAILABLE").await;
    let upstream_named = body["errors"][0]["detail"]["upstream"].as_str().unwrap();
    assert_eq!(upstream_named.trim_end_matches('/'), relay.base);
    assert_eq!(
        manifest_digest(&berth, "up/team/app", "v1").await,
        pushed.digest
    );
    assert_eq!(
        relay.requests("/manifests/").len(),
        asked,
        "no request upstream before Retry-After has passed"
    );

    relay.set(Fault::None, Target::Manifests);
    tokio::time::sleep(Duration::from_millis(3200).saturating_sub(throttled.elapsed())).await;
    assert_eq!(
        manifest_digest(&berth, "up/team/other", "v1").await,
        other.digest,
        "after Retry-After the upstream is asked again"
    );
}

#[tokio::test]
async fn a_cache_can_be_the_upstream_of_another_cache() {
    let (dir, upstream, sandbox, pushed) = upstream_with_image(b"chained\n").await;
    let first = berth_with_config(dir.path(), &remote_config(&upstream.base, ""));
    let second_dir = tempfile::tempdir().unwrap();
    let second = berth_with_config(second_dir.path(), &remote_config(&first.base_url(), ""));

    // Before anything is cached, a blob HEAD through both answers from the upstream.
    let (layer, data) = &pushed.blobs[1];
    let head = client()
        .head(second.url(&format!("/v2/up/up/team/app/blobs/{layer}")))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    // (The header: reqwest's `content_length()` is the body's, none for a HEAD.)
    assert_eq!(
        head.headers()["content-length"].to_str().unwrap(),
        data.len().to_string()
    );

    let image = format!("{}/up/up/team/app:v1", second.host());
    let (digest, layout) = skopeo_pull(&sandbox, &image, None, "first").await.unwrap();
    assert_eq!(digest, pushed.digest);
    for (blob, data) in &pushed.blobs {
        assert!(layout_blob(&layout, blob) == *data, "{blob} byte-exact");
    }
    assert_eq!(
        upstream_requests(&upstream, "GET", &format!("/v2/team/app/blobs/{layer}")),
        1,
        "the layer came down the chain once"
    );

    // Each cache holds the image: the first serves it with the upstream gone, and the
    // second with both gone.
    drop(upstream);
    let (digest, _) = skopeo_pull(
        &sandbox,
        &format!("{}/up/team/app:v1", first.host()),
        None,
        "from-the-first",
    )
    .await
    .unwrap();
    assert_eq!(digest, pushed.digest);
    drop(first);
    let (digest, _) = skopeo_pull(&sandbox, &image, None, "from-the-second")
        .await
        .unwrap();
    assert_eq!(digest, pushed.digest);
    assert_eq!(
        catalog(&second, None).await,
        serde_json::json!(["up/up/team/app"])
    );
}
