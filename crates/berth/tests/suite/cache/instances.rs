//! Several instances of one deployment (PostgreSQL, one blob store) cache as one: a tag one
//! instance checked upstream is fresh for the others and after a restart, an upstream 404
//! one saw is remembered by all, and two instances asked for the same uncached blob at once
//! download it from the upstream once; when the instance downloading it dies, the other
//! takes over once its lease lapses. Upstream requests are counted in the upstream's own
//! access log (or the relay's).

use std::path::Path;

use berth_meta::postgres::testing::PostgresServer;

use super::faulty::{Fault, FaultyUpstream, Target};
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
        let metrics = metrics_text(berth).await;
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

#[tokio::test]
async fn an_instance_waiting_for_another_that_died_downloads_the_blob_itself() {
    const SIZE: usize = 3 * 1024 * 1024 + 7;
    let dir = tempfile::tempdir().unwrap();
    let upstream = OfficialRegistry::start_logged(dir.path(), None);
    let data = bytes(SIZE, 23);
    let digest = push_blob_to(&upstream.base, "team/big", &data).await;
    // Blob bodies drip (a byte a second) until told otherwise: the first download is
    // in progress, holding the blob's lease, when its instance dies.
    let relay = FaultyUpstream::start(&upstream.base, Fault::SlowLoris, Target::Blobs).await;
    let database = PostgresServer::start();
    let shared = tempfile::tempdir().unwrap();
    let (mut one, two) = two_instances(&database, shared.path(), &relay.base);
    let path = format!("/v2/team/big/blobs/{digest}");
    let gets = || relay.requests(&format!("GET {path}")).len();

    let first = tokio::spawn(fetch_blob_from(one.url(&path)));
    wait_for("the first instance's download to start", || {
        relay.dripping() == 1
    })
    .await;
    let second = tokio::spawn(fetch_blob_from(two.url(&path)));
    // The second instance waits for the first's download instead of starting its own.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(gets(), 1, "one upstream download while the lease is held");
    assert!(!second.is_finished(), "the second client is still waiting");

    relay.set(Fault::None, Target::Blobs);
    one.kill9();
    let died = Instant::now();
    let (got, length) = second.await.unwrap().unwrap();
    let waited = died.elapsed();
    assert_eq!((got.as_str(), length), (digest.as_str(), SIZE as u64));
    // The lease lapses 15 s after its last renewal: the wait ends then, not at the 5
    // minutes an instance waits for a download whose holder is alive.
    assert!(
        waited < Duration::from_secs(30),
        "the waiting instance took over after {waited:?}"
    );
    assert!(
        first.await.unwrap().is_err(),
        "the dead instance's client fails"
    );
    assert_eq!(gets(), 2, "the second instance downloaded the blob itself");
    // It is cached: served again without the upstream.
    let (again, _) = fetch_blob_from(two.url(&path)).await.unwrap();
    assert_eq!(again, digest);
    assert_eq!(gets(), 2);
}

async fn fetch_blob_from(url: String) -> Result<(String, u64), String> {
    fetch_blob(&client(), &url).await
}

/// Polls `done` every 50 ms for up to ten seconds.
async fn wait_for(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "waited 10 s for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
