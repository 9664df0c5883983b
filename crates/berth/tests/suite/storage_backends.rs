//! berth on the blob stores it speaks besides the filesystem and S3 (see
//! `production_backends`): Google Cloud Storage (fake-gcs-server), Azure Blob Storage
//! (Azurite) and IPFS (js-ipfs serving Kubo's RPC API), each a real emulator started by the
//! test. On each: a skopeo round trip through berth, and the emulator stopped in the middle
//! of a push and of a pull: clear 503s, nothing half visible, and recovery without a restart.
//! On IPFS, the CID recorded with each blob and shown by the admin API and the dashboard. On
//! GCS, Google's application default credentials and pulls redirected to signed URLs.

use std::time::Duration;

use berth_storage::testing::azurite::Azurite;
use berth_storage::testing::fake_gcs::FakeGcs;
use berth_storage::testing::ipfs::IpfsNode;
use futures_util::StreamExt;

use crate::support::accounts::Identities;
use crate::support::browser::Browser;
use crate::support::clients::{Sandbox, skopeo_round_trip};
use crate::support::push::{push_blob, push_image};
use crate::support::{Berth, assert_oci_error, berth_cli_output, bytes, client, sha256};

/// One emulator, as the tests drive it.
enum Emulator {
    Gcs(FakeGcs),
    Azure(Azurite),
    Ipfs(IpfsNode),
}

impl Emulator {
    fn berth_env(&self) -> Vec<(String, String)> {
        match self {
            Emulator::Gcs(gcs) => gcs.berth_env("registry"),
            Emulator::Azure(azurite) => azurite.berth_env("registry"),
            Emulator::Ipfs(node) => node.berth_env("/registry"),
        }
    }

    fn stop(&mut self) {
        match self {
            Emulator::Gcs(gcs) => gcs.stop(),
            Emulator::Azure(azurite) => azurite.stop(),
            Emulator::Ipfs(node) => node.stop(),
        }
    }

    fn start_again(&mut self) {
        match self {
            Emulator::Gcs(gcs) => gcs.start_again(),
            Emulator::Azure(azurite) => azurite.start_again(),
            Emulator::Ipfs(node) => node.start_again(),
        }
    }

    fn berth(&self) -> Berth {
        let mut builder = Berth::builder().env("REGISTRY_STORAGE_DELETE_ENABLED", "true");
        for (key, value) in self.berth_env() {
            builder = builder.env(&key, &value);
        }
        builder.start()
    }
}

async fn round_trip(emulator: Emulator) {
    let berth = emulator.berth();
    let sandbox = Sandbox::new();
    skopeo_round_trip(
        &sandbox,
        &berth.host(),
        "stored/app:v1",
        &[
            ("etc/small", bytes(300_000, 1)),
            ("etc/large", bytes(12_000_000, 2)),
        ],
    )
    .await;
    let fsck = berth.cli(&["fsck"]);
    assert_eq!(fsck["problems"], serde_json::json!([]), "{fsck}");
    assert_eq!(fsck["orphan_count"], 0, "{fsck}");
    assert!(fsck["blobs"].as_u64().unwrap() >= 3, "{fsck}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_round_trip_on_google_cloud_storage() {
    round_trip(Emulator::Gcs(FakeGcs::start())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_round_trip_on_azure_blob_storage() {
    round_trip(Emulator::Azure(Azurite::start())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_round_trip_on_ipfs() {
    round_trip(Emulator::Ipfs(IpfsNode::start())).await;
}

/// On Google Cloud berth takes Google's application default credentials when it has no key
/// file (`GOOGLE_APPLICATION_CREDENTIALS`, as every Google client library does), and with
/// redirects on, sends pulls to V4-signed URLs of the bucket (the signature is checked against
/// the key in `berth_storage`'s own test; the emulator accepts any). berth itself still reads
/// what it shows: the image page has the config of an image whose blobs clients are sent to
/// the bucket for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_application_default_credentials_sign_the_redirects_of_pulls() {
    const PASSWORD: &str = "root password 1";
    let gcs = FakeGcs::start();
    let ids = Identities::new();
    ids.admin("root", PASSWORD);
    ids.allow("anonymous", "signed/**", "push");
    let mut builder = Berth::builder()
        .env("REGISTRY_AUTH", "berth")
        .env(
            "GOOGLE_APPLICATION_CREDENTIALS",
            &gcs.keyfile().display().to_string(),
        )
        .env("REGISTRY_STORAGE_REDIRECT_DISABLE", "false")
        .data(ids.path());
    for (key, value) in gcs.berth_env("registry") {
        if key != "REGISTRY_STORAGE_GCS_KEYFILE" {
            builder = builder.env(&key, &value);
        }
    }
    let berth = builder.start();

    // skopeo pushes through berth and pulls its layers from the bucket's signed URLs.
    let sandbox = Sandbox::new();
    skopeo_round_trip(
        &sandbox,
        &berth.host(),
        "signed/app:v1",
        &[("etc/layer", bytes(2_000_000, 7))],
    )
    .await;

    let data = bytes(300_000, 8);
    let digest = push_blob(&client(), &berth, "signed/blob", &data).await;
    let not_following = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = not_following
        .get(berth.url(&format!("/v2/signed/blob/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 307);
    let location = response.headers()["location"].to_str().unwrap().to_string();
    assert!(
        location.starts_with(&format!("{}/{}/registry/", gcs.endpoint(), gcs.bucket)),
        "{location}"
    );
    assert!(location.contains("X-Goog-Signature="), "{location}");
    let credential = url::form_urlencoded::byte_serialize(
        format!("{}/", berth_storage::testing::fake_gcs::SERVICE_ACCOUNT).as_bytes(),
    )
    .collect::<String>();
    assert!(
        location.contains(&format!("X-Goog-Credential={credential}")),
        "signed as the service account of the application default credentials: {location}"
    );
    let fetched = client().get(&location).send().await.unwrap();
    assert_eq!(fetched.status(), 200);
    assert_eq!(sha256(&fetched.bytes().await.unwrap()), digest);

    let browser = Browser::start("gcs-redirects").await;
    browser.sign_in(&berth, "root", PASSWORD).await;
    browser.goto(&berth.url("/r/signed/app/-/tags/v1")).await;
    let page = browser.text().await;
    assert!(
        page.contains("Config") && page.contains("linux/amd64"),
        "the image's config, read by berth from the bucket: {page}"
    );
    browser.screenshot("image-page-with-redirects").await;
}

async fn wait_ready(berth: &Berth) {
    let client = client();
    for _ in 0..200 {
        let status = client
            .get(berth.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status();
        if status == 200 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("berth did not become ready again without a restart");
}

/// The emulator stops while a chunked upload is half done and while a blob streams out.
///
/// Requests refused during the outage carry small bodies: berth answers before reading a body
/// when its store is down, and then closes the connection, so a client still sending a large
/// body may see the connection reset before it reads the 503. The client opens a connection
/// per request for the same reason.
async fn outage_mid_push_and_mid_pull(mut emulator: Emulator) {
    let berth = emulator.berth();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let big = bytes(48 * 1024 * 1024, 7);
    let big_digest = push_blob(&client, &berth, "outage/app", &big).await;

    // A chunked upload, its first chunk acknowledged.
    let chunked = bytes(2 * 1024 * 1024 + 40_000, 8);
    let start = client
        .post(berth.url("/v2/outage/app/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    let location = start.headers()["location"].to_str().unwrap().to_string();
    let location = berth.url(&location[location.find("/v2/").unwrap()..]);
    let split = 2 * 1024 * 1024;
    let first = client
        .patch(&location)
        .header("content-range", format!("0-{}", split - 1))
        .body(chunked[..split].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 202);

    // A pull under way when the store goes: the client never gets a whole body of wrong
    // bytes, only fewer bytes than announced or an error.
    let pull = client
        .get(berth.url(&format!("/v2/outage/app/blobs/{big_digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(pull.status(), 200);
    let mut body = pull.bytes_stream();
    let mut received = body.next().await.unwrap().unwrap().to_vec();
    emulator.stop();
    let mut failed = false;
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(chunk) => received.extend_from_slice(&chunk),
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    assert!(
        failed || received.len() < big.len() || sha256(&received) == big_digest,
        "an interrupted pull delivered {} bytes that are not the blob",
        received.len()
    );

    // While it is down: 503s, and the database's view (HEAD, manifests) still answers.
    let second = client
        .patch(&location)
        .header("content-range", format!("{split}-{}", chunked.len() - 1))
        .body(chunked[split..].to_vec())
        .send()
        .await
        .unwrap();
    assert_oci_error(second, 503, "UNAVAILABLE").await;
    let get = client
        .get(berth.url(&format!("/v2/outage/app/blobs/{big_digest}")))
        .send()
        .await
        .unwrap();
    assert_oci_error(get, 503, "UNAVAILABLE").await;
    let refused = bytes(40_000, 9);
    let push = client
        .post(berth.url(&format!(
            "/v2/outage/app/blobs/uploads/?digest={}",
            sha256(&refused)
        )))
        .body(refused.clone())
        .send()
        .await
        .unwrap();
    assert_oci_error(push, 503, "UNAVAILABLE").await;
    let ready = client.get(berth.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503, "not ready without its blob store");
    let head = client
        .head(berth.url(&format!("/v2/outage/app/blobs/{big_digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200, "the database still knows the blob");

    // Back: berth recovers by itself, the upload continues where it was acknowledged, and
    // nothing of the refused push is visible.
    emulator.start_again();
    wait_ready(&berth).await;
    let status = client.get(&location).send().await.unwrap();
    assert_eq!(
        status.headers()["range"],
        format!("0-{}", split - 1).as_str()
    );
    let second = client
        .patch(&location)
        .header("content-range", format!("{split}-{}", chunked.len() - 1))
        .body(chunked[split..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), 202);
    let done = client
        .put(format!("{location}?digest={}", sha256(&chunked)))
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 201);
    let head = client
        .head(berth.url(&format!("/v2/outage/app/blobs/{}", sha256(&refused))))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 404, "the refused push left nothing visible");
    for (digest, data) in [(big_digest, &big), (sha256(&chunked), &chunked)] {
        let got = client
            .get(berth.url(&format!("/v2/outage/app/blobs/{digest}")))
            .send()
            .await
            .unwrap();
        assert_eq!(got.status(), 200);
        assert!(got.bytes().await.unwrap() == data.as_slice(), "{digest}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_cloud_storage_stopped_mid_push_and_mid_pull() {
    outage_mid_push_and_mid_pull(Emulator::Gcs(FakeGcs::start())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_blob_storage_stopped_mid_push_and_mid_pull() {
    outage_mid_push_and_mid_pull(Emulator::Azure(Azurite::start())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipfs_node_stopped_mid_push_and_mid_pull() {
    outage_mid_push_and_mid_pull(Emulator::Ipfs(IpfsNode::start())).await;
}

/// On IPFS the blob's CID is recorded beside its digest and shown by the admin API and on the
/// dashboard's image page; the node serves the same bytes under it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipfs_content_ids_are_recorded_and_shown_by_the_admin_api_and_the_dashboard() {
    const PASSWORD: &str = "root password 1";
    let node = IpfsNode::start();
    let data = tempfile::tempdir().unwrap();
    let output = berth_cli_output(
        data.path(),
        &["user", "add", "root", "--admin", "--password-stdin"],
        Some(PASSWORD),
    );
    assert!(output.status.success(), "{output:?}");
    let mut builder = Berth::builder()
        .env("REGISTRY_AUTH", "berth")
        .data(data.path());
    for (key, value) in node.berth_env("/registry") {
        builder = builder.env(&key, &value);
    }
    let berth = builder.start();
    let root = reqwest::Client::builder()
        .default_headers(
            [(
                reqwest::header::AUTHORIZATION,
                format!(
                    "Basic {}",
                    data_encoding::BASE64.encode(format!("root:{PASSWORD}").as_bytes())
                )
                .parse()
                .unwrap(),
            )]
            .into_iter()
            .collect(),
        )
        .build()
        .unwrap();
    let content = bytes(700_000, 7);
    let digest = push_blob(&root, &berth, "ipfs/app", &content).await;

    let response = root
        .get(berth.url(&format!("/api/v1/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let blob: serde_json::Value = response.json().await.unwrap();
    assert_eq!(blob["size"], content.len());
    assert_eq!(blob["repositories"], serde_json::json!(["ipfs/app"]));
    let cid = blob["cid"].as_str().expect("a CID is recorded");
    assert!(cid.starts_with("baf"), "a CIDv1 in base32: {cid}");
    let cat = client()
        .post(format!("{}/api/v0/cat?arg={cid}", node.api()))
        .send()
        .await
        .unwrap();
    assert_eq!(cat.status(), 200);
    let served = cat.bytes().await.unwrap();
    assert_eq!(
        sha256(&served),
        digest,
        "the node serves the blob under its CID"
    );

    // The image page lists each layer's CID beside its digest, and the config's.
    let image = push_image(&root, &berth, "ipfs/app", "v1", 13, 2).await;
    let mut cids = Vec::new();
    for (blob_digest, _) in &image.blobs {
        let blob: serde_json::Value = root
            .get(berth.url(&format!("/api/v1/blobs/{blob_digest}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        cids.push(blob["cid"].as_str().expect("a CID").to_owned());
    }
    let browser = Browser::start("ipfs").await;
    browser.sign_in(&berth, "root", PASSWORD).await;
    browser.goto(&berth.url("/r/ipfs/app/-/tags/v1")).await;
    let shown = browser.texts("code.cid").await;
    assert_eq!(
        shown,
        [cids[0].clone(), cids[1].clone(), cids[2].clone()],
        "the config's CID, then each layer's in order"
    );
    assert!(browser.text().await.contains("IPFS CID"));
    browser
        .eval("document.querySelector('td code.cid').scrollIntoView()")
        .await;
    browser.screenshot("image-page-with-cids").await;
}

/// On IPFS a blob pushed whole streams into one pinned `add`; one whose bytes do not match
/// its digest is refused as its body ends, before the node completes the file: nothing of it
/// is pinned, whether pushed with `POST ?digest=` or finished by a `PUT` carrying the body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipfs_pushes_refused_as_their_body_ends_pin_nothing() {
    let node = IpfsNode::start();
    let mut builder = Berth::builder();
    for (key, value) in node.berth_env("/registry") {
        builder = builder.env(&key, &value);
    }
    let berth = builder.start();
    let http = client();
    let content = bytes(700_000, 11);
    let wrong = sha256(b"other bytes");
    let pins = || async {
        let response = http
            .post(format!(
                "{}/api/v0/pin/ls?type=recursive&cid-base=base32",
                node.api()
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    };
    // The CID the node gives these bytes with berth's parameters, computed without storing.
    let hashed = http
        .post(format!(
            "{}/api/v0/add?only-hash=true&cid-version=1&raw-leaves=true&cid-base=base32",
            node.api()
        ))
        .multipart(
            reqwest::multipart::Form::new().part(
                "file",
                reqwest::multipart::Part::bytes(content.clone())
                    .file_name("blob")
                    .mime_str("application/octet-stream")
                    .unwrap(),
            ),
        )
        .send()
        .await
        .unwrap();
    let answer = hashed.text().await.unwrap();
    let cid = serde_json::from_str::<serde_json::Value>(&answer).unwrap()["Hash"]
        .as_str()
        .unwrap_or_else(|| panic!("a CID in {answer}"))
        .to_string();

    let response = http
        .post(berth.url(&format!("/v2/ipfs/app/blobs/uploads/?digest={wrong}")))
        .body(content.clone())
        .send()
        .await
        .unwrap();
    assert_oci_error(response, 400, "DIGEST_INVALID").await;

    let started = http
        .post(berth.url("/v2/ipfs/app/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 202);
    let location = started.headers()["location"].to_str().unwrap().to_string();
    let response = http
        .put(format!("{location}?digest={wrong}"))
        .body(content.clone())
        .send()
        .await
        .unwrap();
    assert_oci_error(response, 400, "DIGEST_INVALID").await;
    assert!(!pins().await.contains(&cid), "a refused push was pinned");

    // The same bytes under their own digest are pinned under that CID.
    push_blob(&http, &berth, "ipfs/app", &content).await;
    assert!(pins().await.contains(&cid), "{cid} is pinned");
}
