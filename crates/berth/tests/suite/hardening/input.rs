//! Input that other parsers could read differently, and numbers that could overflow.

use serde_json::Value;

use crate::support::{Berth, client};

#[tokio::test]
async fn manifests_with_duplicate_keys_are_refused() {
    let berth = Berth::start();
    let http = client();
    let config = crate::support::push::push_blob(&http, &berth, "dup/app", b"{}").await;
    let layer = crate::support::push::push_blob(&http, &berth, "dup/app", b"layer").await;
    let descriptor = |digest: &str, size: usize| {
        format!(
            r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{digest}","size":{size}}}"#
        )
    };
    let config_descriptor = format!(
        r#"{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":2}}"#
    );
    let cases = [
        (
            "a duplicate top-level key",
            format!(
                r#"{{"schemaVersion":2,"mediaType":"{OCI}","config":{config_descriptor},"layers":[],"layers":[{}]}}"#,
                descriptor(&layer, 5),
                OCI = crate::support::push::OCI_MANIFEST
            ),
        ),
        (
            "a duplicate key in a descriptor",
            format!(
                r#"{{"schemaVersion":2,"mediaType":"{OCI}","config":{config_descriptor},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer}","size":5,"size":6}}]}}"#,
                OCI = crate::support::push::OCI_MANIFEST
            ),
        ),
        (
            "a duplicate annotation",
            format!(
                r#"{{"schemaVersion":2,"mediaType":"{OCI}","config":{config_descriptor},"layers":[],"annotations":{{"a":"1","a":"2"}}}}"#,
                OCI = crate::support::push::OCI_MANIFEST
            ),
        ),
    ];
    for (what, manifest) in cases {
        let response = crate::support::push::put_manifest(
            &http,
            &berth,
            "dup/app",
            "v1",
            crate::support::push::OCI_MANIFEST,
            manifest.as_bytes(),
        )
        .await;
        let body = crate::support::assert_oci_error(response, 400, "MANIFEST_INVALID").await;
        assert!(
            body["errors"][0]["detail"]
                .as_str()
                .unwrap()
                .contains("duplicate key"),
            "{what}: {body}"
        );
    }
    let tags: Value = http
        .get(berth.url("/v2/dup/app/tags/list"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        tags["tags"].as_array().is_none_or(Vec::is_empty),
        "nothing was stored: {tags}"
    );
}

#[tokio::test]
async fn overflowing_ranges_are_refused_or_answered_by_the_rfc() {
    let berth = Berth::start();
    let http = client();
    let data = crate::support::bytes(1000, 8);
    let digest = crate::support::push::push_blob(&http, &berth, "ranges/app", &data).await;

    // An upload chunk claiming a range to the end of u64: refused, the upload intact.
    let start = http
        .post(berth.url("/v2/ranges/app/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    let location = start.headers()["location"].to_str().unwrap().to_string();
    let location = berth.url(&location[location.find("/v2/").unwrap()..]);
    for content_range in [
        "0-18446744073709551615",
        "0-99999999999999999999999",
        "18446744073709551615-18446744073709551615",
    ] {
        let response = http
            .patch(&location)
            .header("content-range", content_range)
            .body(data[..10].to_vec())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        assert!(
            status == 400 || status == 416,
            "Content-Range {content_range}: {status} {}",
            response.text().await.unwrap()
        );
    }
    let response = http
        .patch(&location)
        .header("content-range", "0-9")
        .body(data[..10].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        202,
        "the upload still takes its first chunk"
    );

    // Range headers with numbers past u64: answered per RFC 9110, never by overflowing.
    let blob = format!("/v2/ranges/app/blobs/{digest}");
    for (range, status, content_range) in [
        ("bytes=-18446744073709551615", 206, Some("bytes 0-999/1000")),
        (
            "bytes=-99999999999999999999999",
            206,
            Some("bytes 0-999/1000"),
        ),
        (
            "bytes=0-99999999999999999999999",
            206,
            Some("bytes 0-999/1000"),
        ),
        ("bytes=99999999999999999999999-", 416, Some("bytes */1000")),
        ("bytes=18446744073709551615-", 416, Some("bytes */1000")),
    ] {
        let response = http
            .get(berth.url(&blob))
            .header("range", range)
            .send()
            .await
            .unwrap();
        assert_eq!(
            (
                response.status().as_u16(),
                response
                    .headers()
                    .get("content-range")
                    .map(|v| v.to_str().unwrap().to_string())
                    .as_deref()
            ),
            (status, content_range),
            "{range}"
        );
    }
}
