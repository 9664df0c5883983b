//! Upstreams that misbehave on the way: a real upstream (Debian's `docker-registry`) behind
//! the `faulty` relay, which flips a byte, cuts a transfer, loops redirects, drips a body,
//! pads a manifest past 4 MiB or holds a body halfway. Each ends in a clear error with
//! nothing cached, or (a cut transfer of an upstream that serves ranges) in a byte-exact blob
//! resumed once; a client joining a held download gets what arrived at once.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::Stream;

use super::faulty::{Fault, FaultyUpstream, Target};
use super::*;

/// A real upstream holding one blob in `team/app`, a relay in front of it doing `fault`
/// to `target`, and berth with the remote `up` over the relay (`extra`: more lines of it).
struct Setup {
    _dir: tempfile::TempDir,
    upstream: OfficialRegistry,
    relay: FaultyUpstream,
    berth: Berth,
    digest: String,
    size: u64,
}

async fn setup(size: usize, fault: Fault, target: Target, extra: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let upstream = OfficialRegistry::start_logged(dir.path(), None);
    let digest = push_blob_to(&upstream.base, "team/app", &bytes(size, 11)).await;
    let relay = FaultyUpstream::start(&upstream.base, fault, target).await;
    let berth = berth_with_config(dir.path(), &remote_config(&relay.base, extra));
    Setup {
        _dir: dir,
        upstream,
        relay,
        berth,
        digest,
        size: size as u64,
    }
}

impl Setup {
    fn blob_url(&self) -> String {
        self.berth
            .url(&format!("/v2/up/team/app/blobs/{}", self.digest))
    }

    /// The blob GETs the relay passed upstream.
    fn blob_gets(&self) -> Vec<String> {
        self.relay
            .requests(&format!("GET /v2/team/app/blobs/{}", self.digest))
    }
}

#[tokio::test]
async fn a_byte_flipped_in_transit_fails_the_transfer_and_a_clean_path_then_works() {
    let s = setup(2 * 1024 * 1024 + 5, Fault::FlipByte, Target::Blobs, "").await;
    let failed = fetch_blob(&client(), &s.blob_url()).await;
    assert!(
        failed
            .as_ref()
            .is_err_and(|e| e.contains("transfer failed")),
        "the client's transfer fails: {failed:?}"
    );
    assert!(
        logs(&s.berth, "nothing was cached").await,
        "the failure is logged"
    );

    // Nothing was cached: with the path clean, the next pull downloads again and works,
    // and the one after is served from the cache.
    s.relay.set(Fault::None, Target::Blobs);
    for _ in 0..2 {
        let (digest, length) = fetch_blob(&client(), &s.blob_url()).await.unwrap();
        assert_eq!((digest, length), (s.digest.clone(), s.size));
    }
    assert_eq!(s.blob_gets().len(), 2, "one corrupt and one clean download");
}

#[tokio::test]
async fn a_redirect_loop_upstream_is_a_clear_error_and_caches_nothing() {
    let s = setup(64 * 1024, Fault::RedirectLoop, Target::Blobs, "").await;
    let started = Instant::now();
    let response = client().get(s.blob_url()).send().await.unwrap();
    let body = assert_oci_error(response, 503, "UNAVAILABLE").await;
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("redirected in a loop"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let followed = s.relay.requests("/v2/team/app/blobs/sha256:").len();
    assert!(
        (2..=12).contains(&followed),
        "a bounded number of redirects followed: {followed}"
    );

    s.relay.set(Fault::None, Target::Blobs);
    let (digest, length) = fetch_blob(&client(), &s.blob_url()).await.unwrap();
    assert_eq!(
        (digest, length),
        (s.digest.clone(), s.size),
        "nothing was cached before"
    );
}

#[tokio::test]
async fn a_slow_loris_upstream_is_cut_off_by_the_timeout_and_holds_nothing() {
    let s = setup(
        256 * 1024,
        Fault::SlowLoris,
        Target::Blobs,
        "    timeout: 2s\n",
    )
    .await;
    let started = Instant::now();
    let failed = fetch_blob(&client(), &s.blob_url()).await;
    let took = started.elapsed();
    assert!(
        failed
            .as_ref()
            .is_err_and(|e| e.contains("transfer failed")),
        "the client's transfer fails: {failed:?}"
    );
    assert!(
        took < Duration::from_secs(8),
        "bounded by the timeout: {took:?}"
    );
    assert!(
        logs(&s.berth, "under the 65536 a transfer needs").await,
        "the cause is logged"
    );
    let wait_dropped = || async {
        let deadline = Instant::now() + Duration::from_secs(5);
        while s.relay.dripping() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        s.relay.dripping()
    };
    assert_eq!(
        wait_dropped().await,
        0,
        "berth let go of the upstream connection"
    );

    // A manifest: the whole request is bounded (twice the timeout).
    let sandbox = Sandbox::new();
    skopeo_push(
        &sandbox,
        "layout",
        b"slow manifest\n",
        &format!("{}/team/app:v1", s.upstream.host()),
        None,
    )
    .await;
    s.relay.set(Fault::SlowLoris, Target::Manifests);
    let started = Instant::now();
    let response = client()
        .get(s.berth.url("/v2/up/team/app/manifests/v1"))
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    let body = assert_oci_error(response, 503, "UNAVAILABLE").await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "{took:?}: {body}");
    assert_eq!(wait_dropped().await, 0, "and of this one");
    s.relay.set(Fault::None, Target::Manifests);
    let response = client()
        .get(s.berth.url("/v2/up/team/app/manifests/v1"))
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        200,
        "nothing was cached, and it works now"
    );
}

#[tokio::test]
async fn a_manifest_over_4_mib_from_the_upstream_is_refused_and_nothing_is_cached() {
    let s = setup(1024, Fault::None, Target::Manifests, "").await;
    let sandbox = Sandbox::new();
    let pushed = skopeo_push(
        &sandbox,
        "layout",
        b"huge manifest\n",
        &format!("{}/team/app:v1", s.upstream.host()),
        None,
    )
    .await;
    let get = || async {
        client()
            .get(s.berth.url("/v2/up/team/app/manifests/v1"))
            .header("accept", OCI_MANIFEST)
            .send()
            .await
            .unwrap()
    };
    for (sized, how) in [
        (true, "with its Content-Length"),
        (false, "streamed without a length"),
    ] {
        s.relay.set(Fault::Padded { sized }, Target::Manifests);
        let body = assert_oci_error(get().await, 502, "UNAVAILABLE").await;
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert!(
            message.contains("larger than the 4194304-byte limit"),
            "{how}: {message}"
        );
    }
    s.relay.set(Fault::None, Target::Manifests);
    let response = get().await;
    assert_eq!(response.status(), 200, "nothing was cached before");
    assert_eq!(
        response.headers()["docker-content-digest"],
        pushed.digest.as_str()
    );
}

#[tokio::test]
async fn a_broken_blob_transfer_resumes_with_one_range_request() {
    const SIZE: usize = 8 * 1024 * 1024 + 3;
    let s = setup(SIZE, Fault::CutOnce, Target::Blobs, "").await;
    let (digest, length) = fetch_blob(&client(), &s.blob_url()).await.unwrap();
    assert_eq!((digest, length), (s.digest.clone(), s.size), "byte-exact");
    let gets = s.blob_gets();
    assert_eq!(
        gets.len(),
        2,
        "the cut transfer and its resumption: {gets:?}"
    );
    assert!(!gets[0].contains("range="), "{gets:?}");
    let offset: u64 = gets[1]
        .split("range=bytes=")
        .nth(1)
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|o| o.parse().ok())
        .unwrap_or_else(|| panic!("one Range request from where it broke: {gets:?}"));
    assert!(
        offset > 0 && offset <= SIZE as u64 / 2,
        "resumed from {offset}, the relay cut at {}",
        SIZE / 2
    );
    assert!(logs(&s.berth, "resumed with a Range request").await);

    // Cached whole: the next pull does not go upstream.
    let (digest, _) = fetch_blob(&client(), &s.blob_url()).await.unwrap();
    assert_eq!(digest, s.digest);
    assert_eq!(s.blob_gets().len(), 2);
}

/// Reads a blob's body until `least` bytes arrived (or the body ends); what arrived.
async fn read_at_least(
    body: &mut (impl Stream<Item = reqwest::Result<Bytes>> + Unpin),
    least: usize,
) -> Vec<u8> {
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), async {
        while got.len() < least {
            match body.next().await {
                Some(chunk) => got.extend_from_slice(&chunk.expect("the transfer goes on")),
                None => break,
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{least} bytes within 30 s; got {}", got.len()));
    got
}

/// The rest of a blob's body, hashed with what came before: the digest and the length.
async fn finish_reading(
    mut body: impl Stream<Item = reqwest::Result<Bytes>> + Unpin,
    before: &[u8],
) -> Result<(String, u64), String> {
    let mut hasher = sha2::Sha256::new();
    hasher.update(before);
    let mut length = before.len() as u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| format!("transfer failed: {e}"))?;
        length += chunk.len() as u64;
        hasher.update(&chunk);
    }
    Ok((format!("sha256:{}", hex::encode(hasher.finalize())), length))
}

/// Held downloads' blob size. Half of it is far more than the window of recent chunks berth
/// keeps in memory: a late client reads most of what arrived back from the store's upload.
const HELD_SIZE: usize = 16 * 1024 * 1024 + 7;

/// A first client's download held halfway by the upstream, and a second client that asked
/// for the blob then: the first's transfer, the second's body, and what it read at once
/// (up to half the blob).
async fn a_late_client_of_a_held_download() -> (
    Setup,
    tokio::task::JoinHandle<Result<(String, u64), String>>,
    impl Stream<Item = reqwest::Result<Bytes>> + Unpin,
    Vec<u8>,
) {
    let s = setup(HELD_SIZE, Fault::Hold, Target::Blobs, "").await;
    let first = tokio::spawn({
        let url = s.blob_url();
        async move { fetch_blob(&client(), &url).await }
    });
    s.relay.wait_held().await;
    let response = client().get(s.blob_url()).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.content_length(), Some(HELD_SIZE as u64));
    let mut late = response.bytes_stream();
    let half = read_at_least(&mut late, HELD_SIZE / 2).await;
    (s, first, late, half)
}

#[tokio::test]
async fn a_client_joining_a_download_late_gets_what_arrived_at_once_and_the_rest_as_it_comes() {
    // The upstream holds the second half back: the late client gets the first at once.
    let (s, first, late, half) = a_late_client_of_a_held_download().await;
    let data = bytes(HELD_SIZE, 11);
    assert_eq!(half.len(), HELD_SIZE / 2, "what arrived, and nothing more");
    assert!(half == data[..HELD_SIZE / 2], "byte-exact");

    s.relay.release(true);
    let late = finish_reading(late, &half).await.unwrap();
    assert_eq!(late, (s.digest.clone(), s.size));
    let first = first.await.unwrap().unwrap();
    assert_eq!(first, (s.digest.clone(), s.size));
    assert_eq!(s.blob_gets().len(), 1, "one upstream download for both");
}

#[tokio::test]
async fn a_download_failing_midway_fails_every_clients_transfer_and_caches_nothing() {
    let (s, first, late, half) = a_late_client_of_a_held_download().await;
    assert_eq!(half.len(), HELD_SIZE / 2);

    // The connection breaks, and the rest the download resumes with is corrupt.
    s.relay.set(Fault::FlipByte, Target::Blobs);
    s.relay.release(false);
    for outcome in [finish_reading(late, &half).await, first.await.unwrap()] {
        assert!(
            outcome
                .as_ref()
                .is_err_and(|e| e.contains("transfer failed")),
            "every client's transfer fails: {outcome:?}"
        );
    }
    let gets = s.blob_gets();
    assert_eq!(
        gets.len(),
        2,
        "the held transfer and its resumption: {gets:?}"
    );

    // Nothing was cached: a clean path downloads it again.
    s.relay.set(Fault::None, Target::Blobs);
    let (digest, length) = fetch_blob(&client(), &s.blob_url()).await.unwrap();
    assert_eq!((digest, length), (s.digest.clone(), s.size));
    assert_eq!(s.blob_gets().len(), 3);
}

#[tokio::test]
async fn a_client_going_away_does_not_abort_the_download_the_cache_needs() {
    let s = setup(HELD_SIZE, Fault::Hold, Target::Blobs, "").await;
    let url = s.blob_url();
    let response = client().get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    s.relay.wait_held().await;
    let got = read_at_least(&mut body, 1).await;
    assert!(!got.is_empty());
    // The only client goes away halfway; then the upstream sends the rest.
    drop(body);
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.relay.release(true);

    let (digest, length) = fetch_blob(&client(), &url).await.unwrap();
    assert_eq!((digest, length), (s.digest.clone(), s.size));
    assert_eq!(
        s.blob_gets().len(),
        1,
        "the next client got the download the first one left, not a new one"
    );
    // And it was stored: served with the upstream gone.
    drop(s.relay);
    drop(s.upstream);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let head = client().head(&url).send().await.unwrap();
        if head.status() == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "cached within 10 s: {}",
            head.status()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
