//! Bad input: every malformed request is answered with a 4xx OCI error, and nothing of it is
//! stored. No input from a client produces a 500.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::support::push::{OCI_MANIFEST, image_manifest, push_blob, push_image, put_manifest};
use crate::support::{Berth, assert_oci_error, bytes, client, sha256};

/// Nothing is stored: no repository listed, no blob file, no upload file.
async fn assert_nothing_stored(berth: &Berth) {
    let catalog: serde_json::Value = client()
        .get(berth.url("/v2/_catalog"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(catalog["repositories"], serde_json::json!([]), "catalog");
    let blobs = berth.data_dir().join("docker/registry/v2/blobs/sha256");
    let stored = std::fs::read_dir(&blobs).map(|d| d.count()).unwrap_or(0);
    assert_eq!(stored, 0, "blob files under {}", blobs.display());
    let uploads = std::fs::read_dir(berth.data_dir().join("berth/uploads"))
        .unwrap()
        .count();
    assert_eq!(uploads, 0, "upload files");
}

#[tokio::test]
async fn invalid_names_on_every_endpoint() {
    let berth = Berth::start();
    let client = client();
    let digest = sha256(b"x");
    let long = "a".repeat(256);
    // (URL libraries resolve `..` before sending; the raw-socket check below covers it.)
    for name in [
        "Upper",
        "a//b",
        "/a",
        "a/",
        "a..b",
        "a%2Fb",
        "-a",
        long.as_str(),
    ] {
        let requests = [
            client.get(berth.url(&format!("/v2/{name}/tags/list"))),
            client.get(berth.url(&format!("/v2/{name}/manifests/latest"))),
            client
                .put(berth.url(&format!("/v2/{name}/manifests/latest")))
                .body("{}"),
            client.head(berth.url(&format!("/v2/{name}/blobs/{digest}"))),
            client.post(berth.url(&format!("/v2/{name}/blobs/uploads/"))),
            client
                .post(berth.url(&format!("/v2/{name}/blobs/uploads/?digest={digest}")))
                .body("x"),
            client.get(berth.url(&format!("/v2/{name}/referrers/{digest}"))),
        ];
        for request in requests {
            let response = request.send().await.unwrap();
            let method_is_head = response.content_length() == Some(0) && response.status() == 400;
            if method_is_head {
                continue; // HEAD responses carry no body to inspect; the status is enough
            }
            assert_oci_error(response, 400, "NAME_INVALID").await;
        }
    }
    for path in [
        "/v2/a/../b/tags/list",
        "/v2/a/./b/tags/list",
        "/v2/../../etc/tags/list",
        "/v2/a/../../blobs/uploads/",
    ] {
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        assert_eq!(
            raw_request(&berth, request.as_bytes(), false),
            Some(400),
            "{path}"
        );
    }
    // A name of exactly 255 characters is fine.
    let max = "b".repeat(255);
    push_blob(&client, &berth, &max, b"ok").await;
}

#[tokio::test]
async fn invalid_tags_and_digests() {
    let berth = Berth::start();
    let client = client();
    let image = push_image(&client, &berth, "refs", "good", 1, 1).await;
    for tag in [".hidden", "-dash", &"t".repeat(129)] {
        let response =
            put_manifest(&client, &berth, "refs", tag, OCI_MANIFEST, &image.manifest).await;
        assert_oci_error(response, 400, "TAG_INVALID").await;
    }
    for reference in [
        "sha256:totallywrong",
        "sha256:",
        "sha256:ABC",
        "md5:d41d8cd98f00b204e9800998ecf8427e",
    ] {
        let response = client
            .get(berth.url(&format!("/v2/refs/manifests/{reference}")))
            .send()
            .await
            .unwrap();
        assert_oci_error(response, 400, "DIGEST_INVALID").await;
        let response = client
            .get(berth.url(&format!("/v2/refs/blobs/{reference}")))
            .send()
            .await
            .unwrap();
        assert_oci_error(response, 400, "DIGEST_INVALID").await;
        let response = client
            .post(berth.url(&format!("/v2/refs/blobs/uploads/?digest={reference}")))
            .body("data")
            .send()
            .await
            .unwrap();
        assert_oci_error(response, 400, "DIGEST_INVALID").await;
    }
    // Unsupported algorithms are named in the error.
    let response = client
        .get(berth.url("/v2/refs/blobs/sha1:da39a3ee5e6b4b0d3255bfef95601890afd80709"))
        .send()
        .await
        .unwrap();
    let body = assert_oci_error(response, 400, "DIGEST_INVALID").await;
    assert!(
        body.to_string().contains("unsupported digest algorithm"),
        "{body}"
    );
    let tags: serde_json::Value = client
        .get(berth.url("/v2/refs/tags/list"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tags["tags"], serde_json::json!(["good"]));
}

#[tokio::test]
async fn digest_mismatches_store_nothing() {
    let berth = Berth::start();
    let client = client();
    let wrong = sha256(b"not the content");
    let response = client
        .post(berth.url(&format!("/v2/mismatch/blobs/uploads/?digest={wrong}")))
        .body(bytes(100_000, 1))
        .send()
        .await
        .unwrap();
    assert_oci_error(response, 400, "DIGEST_INVALID").await;

    let start = client
        .post(berth.url("/v2/mismatch/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    let location = start.headers()["location"].to_str().unwrap().to_string();
    client
        .patch(&location)
        .body(bytes(5000, 2))
        .send()
        .await
        .unwrap();
    let response = client
        .put(format!("{location}?digest={wrong}"))
        .send()
        .await
        .unwrap();
    let body = assert_oci_error(response, 400, "DIGEST_INVALID").await;
    assert_eq!(body["errors"][0]["detail"]["expected"], wrong.as_str());
    // The failed upload is gone, not left to be finished under another digest.
    assert_oci_error(
        client.get(&location).send().await.unwrap(),
        404,
        "BLOB_UPLOAD_UNKNOWN",
    )
    .await;
    let response = client
        .put(format!("{location}?digest={}", sha256(&bytes(5000, 2))))
        .send()
        .await
        .unwrap();
    assert_oci_error(response, 404, "BLOB_UPLOAD_UNKNOWN").await;

    // PUT without a digest.
    let start = client
        .post(berth.url("/v2/mismatch/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    let location = start.headers()["location"].to_str().unwrap().to_string();
    assert_oci_error(
        client.put(&location).send().await.unwrap(),
        400,
        "DIGEST_INVALID",
    )
    .await;
    client.delete(&location).send().await.unwrap();
    assert_nothing_stored(&berth).await;
}

#[tokio::test]
async fn wrong_content_ranges_and_out_of_order_chunks() {
    let berth = Berth::start();
    let client = client();
    let start = client
        .post(berth.url("/v2/ranges/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    let location = start.headers()["location"].to_str().unwrap().to_string();
    let first = client
        .patch(&location)
        .header("content-range", "0-999")
        .body(vec![7u8; 1000])
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 202);

    for malformed in ["garbage", "1000", "-5", "a-b", "1000-"] {
        let response = client
            .patch(&location)
            .header("content-range", malformed)
            .body(vec![1u8; 10])
            .send()
            .await
            .unwrap();
        assert_oci_error(response, 400, "BLOB_UPLOAD_INVALID").await;
    }
    // Announced length and sent length disagree.
    let response = client
        .patch(&location)
        .header("content-range", "1000-1099")
        .body(vec![1u8; 10])
        .send()
        .await
        .unwrap();
    assert_oci_error(response, 400, "SIZE_INVALID").await;
    // Out of order: a gap, an overlap, and a range that ends before it starts.
    for range in ["2000-2009", "500-509", "1010-1000"] {
        let response = client
            .patch(&location)
            .header("content-range", range)
            .body(vec![1u8; 10])
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()["range"], "0-999", "{range}");
        assert_oci_error(response, 416, "RANGE_INVALID").await;
    }
    // A missing Content-Range is a streamed chunk (what docker and containerd send): it is
    // appended where the upload stands, never anywhere else.
    let streamed = client
        .patch(&location)
        .body(vec![9u8; 24])
        .send()
        .await
        .unwrap();
    assert_eq!(streamed.status(), 202);
    assert_eq!(streamed.headers()["range"], "0-1023");

    let mut expected = vec![7u8; 1000];
    expected.extend_from_slice(&[9u8; 24]);
    let digest = sha256(&expected);
    let done = client
        .put(format!("{location}?digest={digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        done.status(),
        201,
        "nothing from the refused chunks crept in"
    );
}

#[tokio::test]
async fn unknown_upload_ids() {
    let berth = Berth::start();
    let client = client();
    let start = client
        .post(berth.url("/v2/owner/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    let id = start.headers()["docker-upload-uuid"]
        .to_str()
        .unwrap()
        .to_string();
    let random = "0f7c6b5e-1d2a-4e3b-9c8d-7a6b5c4d3e2f";
    for path in [
        format!("/v2/owner/blobs/uploads/{random}"),
        "/v2/owner/blobs/uploads/not-an-id".to_string(),
        "/v2/owner/blobs/uploads/..%2F..%2Fetc".to_string(),
        // Someone else's session, addressed through another repository.
        format!("/v2/intruder/blobs/uploads/{id}"),
    ] {
        let url = berth.url(&path);
        assert_oci_error(
            client.get(&url).send().await.unwrap(),
            404,
            "BLOB_UPLOAD_UNKNOWN",
        )
        .await;
        assert_oci_error(
            client.patch(&url).body("x").send().await.unwrap(),
            404,
            "BLOB_UPLOAD_UNKNOWN",
        )
        .await;
        let put = client
            .put(format!("{url}?digest={}", sha256(b"")))
            .send()
            .await
            .unwrap();
        assert_oci_error(put, 404, "BLOB_UPLOAD_UNKNOWN").await;
        assert_oci_error(
            client.delete(&url).send().await.unwrap(),
            404,
            "BLOB_UPLOAD_UNKNOWN",
        )
        .await;
    }
    let status = client
        .get(berth.url(&format!("/v2/owner/blobs/uploads/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(status.status(), 204, "the real session is untouched");
}

#[tokio::test]
async fn bad_manifests_are_refused_and_not_stored() {
    let berth = Berth::start();
    let client = client();
    let config = push_blob(&client, &berth, "bad", b"{}").await;
    let missing = sha256(b"a layer nobody pushed");
    let with_missing = image_manifest(
        &(config.clone(), b"{}".to_vec()),
        &[(missing.clone(), vec![0; 21])],
    );
    let response = put_manifest(
        &client,
        &berth,
        "bad",
        "missing",
        OCI_MANIFEST,
        &with_missing,
    )
    .await;
    let body = assert_oci_error(response, 400, "MANIFEST_BLOB_UNKNOWN").await;
    assert!(
        body.to_string().contains(&missing),
        "names the missing blob: {body}"
    );

    let good = image_manifest(&(config.clone(), b"{}".to_vec()), &[]);
    let docker_type = "application/vnd.docker.distribution.manifest.v2+json";
    let response = put_manifest(&client, &berth, "bad", "mismatch", docker_type, &good).await;
    let body = assert_oci_error(response, 400, "MANIFEST_INVALID").await;
    assert!(body.to_string().contains("does not match"), "{body}");

    for (content, why) in [
        (b"this is not json".to_vec(), "not valid JSON"),
        (b"[]".to_vec(), "JSON object"),
        (
            br#"{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}"#.to_vec(),
            "schema1",
        ),
        (
            format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","layers":[]}}"#)
                .into_bytes(),
            "config",
        ),
    ] {
        let response = put_manifest(&client, &berth, "bad", "broken", OCI_MANIFEST, &content).await;
        let body = assert_oci_error(response, 400, "MANIFEST_INVALID").await;
        assert!(body.to_string().contains(why), "{why}: {body}");
    }
    let schema1 = "application/vnd.docker.distribution.manifest.v1+prettyjws";
    let response = put_manifest(
        &client,
        &berth,
        "bad",
        "old",
        schema1,
        br#"{"schemaVersion":1}"#,
    )
    .await;
    assert_oci_error(response, 400, "MANIFEST_INVALID").await;

    // Over 4 MiB, with and without a Content-Length.
    let mut huge: serde_json::Value = serde_json::from_slice(&good).unwrap();
    huge["annotations"] = serde_json::json!({ "padding": "x".repeat(4 * 1024 * 1024) });
    let huge = serde_json::to_vec(&huge).unwrap();
    let response = put_manifest(&client, &berth, "bad", "huge", OCI_MANIFEST, &huge).await;
    assert_oci_error(response, 413, "MANIFEST_INVALID").await;
    let chunked = reqwest::Body::wrap_stream(futures_util::stream::iter(
        huge.chunks(65536)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    ));
    let response = client
        .put(berth.url("/v2/bad/manifests/huge"))
        .header("content-type", OCI_MANIFEST)
        .body(chunked)
        .send()
        .await
        .unwrap();
    assert_oci_error(response, 413, "MANIFEST_INVALID").await;

    let tags: serde_json::Value = client
        .get(berth.url("/v2/bad/tags/list"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        tags["tags"],
        serde_json::json!([]),
        "no refused manifest was tagged"
    );
    for reference in ["missing", "mismatch", "broken", "old", "huge"] {
        let response = client
            .get(berth.url(&format!("/v2/bad/manifests/{reference}")))
            .send()
            .await
            .unwrap();
        assert_oci_error(response, 404, "MANIFEST_UNKNOWN").await;
    }
}

#[tokio::test]
async fn garbage_pagination() {
    let berth = Berth::start();
    let client = client();
    push_image(&client, &berth, "pages", "v1", 3, 0).await;
    for query in [
        "n=abc",
        "n=-1",
        "n=1.5",
        "n=",
        "n=0x10",
        "n=99999999999999999999999",
    ] {
        for path in ["/v2/_catalog", "/v2/pages/tags/list"] {
            let response = client
                .get(berth.url(&format!("{path}?{query}")))
                .send()
                .await
                .unwrap();
            assert_oci_error(response, 400, "PAGINATION_NUMBER_INVALID").await;
        }
    }
    let response = client
        .get(berth.url("/v2/pages/tags/list?last=../../x"))
        .send()
        .await
        .unwrap();
    assert_oci_error(response, 400, "TAG_INVALID").await;
    let response = client
        .get(berth.url("/v2/_catalog?last=UPPER"))
        .send()
        .await
        .unwrap();
    assert_oci_error(response, 400, "NAME_INVALID").await;
    let response = client
        .get(berth.url("/v2/_catalog?n=0"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.json::<serde_json::Value>().await.unwrap()["repositories"],
        serde_json::json!([])
    );
}

#[tokio::test]
async fn unsupported_methods_and_endpoints() {
    let berth = Berth::start();
    let client = client();
    let digest = sha256(b"x");
    for (method, path) in [
        ("POST", "/v2/_catalog".to_string()),
        ("DELETE", "/v2/a/tags/list".to_string()),
        ("POST", "/v2/a/manifests/latest".to_string()),
        ("PATCH", format!("/v2/a/blobs/{digest}")),
        ("PUT", "/v2/a/blobs/uploads/".to_string()),
        ("PUT", "/v2/".to_string()),
    ] {
        let response = client
            .request(method.parse().unwrap(), berth.url(&path))
            .send()
            .await
            .unwrap();
        assert!(response.headers().contains_key("allow"), "{method} {path}");
        assert_oci_error(response, 405, "UNSUPPORTED").await;
    }
    for path in ["/v2/a/nothing/here", "/v2/tags/list", "/v2x/"] {
        let response = client.get(berth.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 404, "{path}");
    }
}

/// Sends raw bytes and returns the status line's code, so that requests no HTTP library
/// would produce can be tried.
fn raw_request(berth: &Berth, request: &[u8], then_close: bool) -> Option<u16> {
    let mut stream = TcpStream::connect(berth.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request).unwrap();
    if then_close {
        let _ = stream.shutdown(std::net::Shutdown::Write);
    }
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response);
    text.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
}

#[tokio::test]
async fn a_client_that_disconnects_mid_body_leaves_nothing() {
    let berth = Berth::start();
    let client = client();
    let data = bytes(10_000, 4);
    let digest = sha256(&data);
    // Monolithic push cut off halfway.
    let mut request = format!(
        "POST /v2/cut/blobs/uploads/?digest={digest} HTTP/1.1\r\nHost: x\r\nContent-Length: 10000\r\n\r\n"
    )
    .into_bytes();
    request.extend_from_slice(&data[..5000]);
    let status = raw_request(&berth, &request, true);
    assert!(
        status.is_none_or(|s| (400..500).contains(&s)),
        "got {status:?}"
    );
    let head = client
        .head(berth.url(&format!("/v2/cut/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 404);

    // A chunk cut off halfway is not acknowledged.
    let start = client
        .post(berth.url("/v2/cut/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    let path = start.headers()["location"]
        .to_str()
        .unwrap()
        .trim_start_matches(&berth.base_url())
        .to_string();
    let mut request =
        format!("PATCH {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 10000\r\n\r\n").into_bytes();
    request.extend_from_slice(&data[..5000]);
    raw_request(&berth, &request, true);
    // Let the server notice the disconnect.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let status = client.get(berth.url(&path)).send().await.unwrap();
    assert_eq!(status.headers()["range"], "0-0", "nothing acknowledged");
    // And the upload still works from where it stands.
    let done = client
        .put(format!("{}?digest={digest}", berth.url(&path)))
        .body(data)
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 201);
}

#[tokio::test]
async fn malformed_http_is_refused_cleanly() {
    let berth = Berth::start();
    for request in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET /v2/ HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"GET /v2/\x01\x02 HTTP/1.1\r\n\r\n",
    ] {
        let status = raw_request(&berth, request, true);
        assert!(
            status.is_none_or(|s| (400..500).contains(&s)),
            "{request:?} -> {status:?}"
        );
    }
    let mut huge_header = b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    huge_header.extend(std::iter::repeat_n(b'a', 2 * 1024 * 1024));
    huge_header.extend_from_slice(b"\r\n\r\n");
    let status = raw_request(&berth, &huge_header, true);
    assert!(
        status.is_none_or(|s| (400..500).contains(&s)),
        "huge header -> {status:?}"
    );
    // Still serving.
    assert_eq!(
        client()
            .get(berth.url("/v2/"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

/// Many generated requests, mixing valid and invalid parts: never a 5xx, and every error on
/// /v2/ is an OCI error document.
#[tokio::test]
async fn no_request_produces_a_server_error() {
    let berth = Berth::start();
    let client = client();
    let image = push_image(&client, &berth, "fuzz/app", "v1", 8, 1).await;
    let names = [
        "fuzz/app",
        "FUZZ",
        "a/../b",
        "x",
        "fuzz//app",
        "ä",
        "_catalog",
        "blobs",
        "a b",
    ];
    let digests = [
        image.digest.clone(),
        image.blobs[1].0.clone(),
        sha256(b"unknown"),
        "sha256:zz".into(),
        "sha512:00".into(),
        "".into(),
        "..".into(),
    ];
    let tails = [
        "manifests",
        "blobs",
        "blobs/uploads",
        "tags/list",
        "referrers",
        "tags",
    ];
    let methods = ["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS"];
    let headers = [
        ("range", "bytes=0-"),
        ("range", "bytes=99999999999999999999-"),
        ("range", "bytes=5-1,3-4"),
        ("content-range", "5-1"),
        ("content-range", "0-18446744073709551615"),
        ("content-type", "application/vnd.oci.image.index.v1+json"),
        ("content-type", "application/x;;;="),
        ("accept", ";;;,,,*/*;q=abc"),
    ];
    let bodies: [&[u8]; 4] = [b"", b"{}", b"\xff\xfe", &image.manifest];
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut pick = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    for _ in 0..400 {
        let name = names[pick(names.len())];
        let tail = tails[pick(tails.len())];
        let last = if tail == "blobs/uploads" && pick(2) == 0 {
            String::new()
        } else {
            digests[pick(digests.len())].clone()
        };
        let mut path = format!("/v2/{name}/{tail}/{last}");
        if pick(3) == 0 {
            path.push_str(
                [
                    "?digest=sha256:00",
                    "?n=-1&last=%00",
                    "?mount=x&from=..",
                    "?artifactType=%ff",
                ][pick(4)],
            );
        }
        let method = methods[pick(methods.len())];
        let mut request = client.request(method.parse().unwrap(), berth.url(&path));
        let (header, value) = headers[pick(headers.len())];
        request = request.header(header, value);
        if method != "GET" && method != "HEAD" {
            request = request.body(bodies[pick(bodies.len())].to_vec());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        assert!(
            status < 500,
            "{method} {path} [{header}: {value}] -> {status}: {}",
            response.text().await.unwrap()
        );
        if status >= 400 && method != "HEAD" && status != 404 {
            let body: serde_json::Value = response
                .json()
                .await
                .unwrap_or_else(|e| panic!("{method} {path}: error body is not JSON: {e}"));
            assert!(
                body["errors"][0]["code"].is_string(),
                "{method} {path}: {body}"
            );
        }
    }
    assert!(
        !berth.log_text().contains("\"status\":500"),
        "no 5xx in the access log"
    );
}
