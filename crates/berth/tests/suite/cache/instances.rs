//! Several instances of one deployment (PostgreSQL, one blob store) cache as one: a tag one
//! instance checked upstream is fresh for the others and after a restart, an upstream 404
//! one saw is remembered by all, and two instances asked for the same uncached blob at once
//! download it from the upstream once. Upstream requests are counted in the upstream's own
//! access log.

use std::path::Path;

use berth_meta::postgres::testing::PostgresServer;

use super::*;

/// Two instances mirroring `upstream` (registry:2's proxy mode), on one PostgreSQL database
/// and one data directory (the blob store).
fn two_instances(database: &PostgresServer, data: &Path, upstream: &str) -> (Berth, Berth) {
    let start = || {
        Berth::builder()
            .data(data)
            .env("BERTH_DATABASE_URL", &database.url())
            .env("REGISTRY_PROXY_REMOTEURL", upstream)
            .start()
    };
    let one = start();
    let two = start();
    (one, two)
}

async fn status_of(berth: &Berth, path: &str) -> u16 {
    client()
        .get(berth.url(path))
        .header("accept", format!("{OCI_MANIFEST}, {OCI_INDEX}"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn instances_share_tag_checks_and_upstream_404s_across_restarts() {
    let (_dir, upstream, _sandbox, pushed) = upstream_with_image(b"shared answers").await;
    let database = PostgresServer::start();
    let data = tempfile::tempdir().unwrap();
    let (mut one, two) = two_instances(&database, data.path(), &upstream.base);
    let requests = |method: &str, path: &str| upstream_requests(&upstream, method, path);

    assert_eq!(manifest_digest(&one, "team/app", "v1").await, pushed.digest);
    assert_eq!(requests("GET", "/v2/team/app/manifests/v1"), 1);
    // The other instance serves the tag one checked a moment ago without asking again.
    assert_eq!(manifest_digest(&two, "team/app", "v1").await, pushed.digest);
    // And so does the first one after a restart (the check is in the database).
    one.restart();
    assert_eq!(manifest_digest(&one, "team/app", "v1").await, pushed.digest);
    assert_eq!(
        (
            requests("HEAD", "/v2/team/app/manifests/v1"),
            requests("GET", "/v2/team/app/manifests/v1")
        ),
        (0, 1),
        "one GET in all, no revalidation within revalidateafter"
    );

    // A tag and a blob the upstream does not have: asked once, by whichever instance.
    let absent = format!("sha256:{}", "0".repeat(64));
    assert_eq!(status_of(&one, "/v2/team/app/manifests/nope").await, 404);
    assert_eq!(
        status_of(&one, &format!("/v2/team/app/blobs/{absent}")).await,
        404
    );
    assert_eq!(status_of(&two, "/v2/team/app/manifests/nope").await, 404);
    assert_eq!(
        status_of(&two, &format!("/v2/team/app/blobs/{absent}")).await,
        404
    );
    one.restart();
    assert_eq!(status_of(&one, "/v2/team/app/manifests/nope").await, 404);
    assert_eq!(requests("GET", "/v2/team/app/manifests/nope"), 1);
    assert_eq!(requests("GET", &format!("/v2/team/app/blobs/{absent}")), 1);
}

#[tokio::test]
async fn two_instances_asked_for_one_uncached_blob_download_it_once() {
    const CLIENTS: usize = 4;
    const SIZE: usize = 64 * 1024 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let upstream = OfficialRegistry::start_logged(dir.path(), None);
    let data = bytes(SIZE, 11);
    let digest = push_blob_to(&upstream.base, "team/big", &data).await;
    drop(data);
    let database = PostgresServer::start();
    let shared = tempfile::tempdir().unwrap();
    let (one, two) = two_instances(&database, shared.path(), &upstream.base);

    // Clients on both instances at once.
    let path = format!("/v2/team/big/blobs/{digest}");
    let pulls: Vec<_> = (0..2 * CLIENTS)
        .map(|i| {
            let url = if i % 2 == 0 {
                one.url(&path)
            } else {
                two.url(&path)
            };
            tokio::spawn(async move { fetch_blob(&client(), &url).await })
        })
        .collect();
    for pull in pulls {
        let (got, length) = pull.await.unwrap().unwrap();
        assert_eq!((got.as_str(), length), (digest.as_str(), SIZE as u64));
    }
    assert_eq!(
        upstream_requests(&upstream, "GET", &path),
        1,
        "one upstream download for both instances"
    );
    // One instance downloaded it, the other waited for it and served it from storage.
    let mut counted = Vec::new();
    for berth in [&one, &two] {
        let metrics = client()
            .get(berth.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let value = |name: &str| {
            let prefix = format!("{name}{{remote=\"proxy\"}} ");
            metrics
                .lines()
                .find_map(|l| l.strip_prefix(&prefix))
                .map_or(0, |v| v.parse::<u64>().unwrap())
        };
        counted.push((
            value("berth_cache_blob_fetches_total"),
            value("berth_cache_blob_waits_total"),
        ));
    }
    counted.sort();
    assert_eq!(counted, [(0, 1), (1, 0)], "(fetches, waits) per instance");
}
