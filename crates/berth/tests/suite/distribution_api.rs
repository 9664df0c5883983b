//! The OCI Distribution API over a real socket, against the real binary: every endpoint and
//! the headers clients rely on.

use crate::support::push::{
    DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, image_manifest, push_blob, push_image,
    put_manifest,
};
use crate::support::{Berth, assert_oci_error, bytes, client, sha256};

#[tokio::test]
async fn base_endpoint_announces_the_api_version() {
    let berth = Berth::start();
    let response = client().get(berth.url("/v2/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["docker-distribution-api-version"],
        "registry/2.0"
    );
    assert!(response.headers().contains_key("x-request-id"));
    assert_eq!(response.text().await.unwrap(), "{}");
    let response = client().get(berth.url("/v2")).send().await.unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn monolithic_upload_then_pull_with_ranges() {
    let berth = Berth::start();
    let client = client();
    let data = bytes(300_000, 1);
    let digest = sha256(&data);
    let response = client
        .post(berth.url(&format!("/v2/team/app/api/blobs/uploads/?digest={digest}")))
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["docker-content-digest"], digest.as_str());
    let location = response.headers()["location"].to_str().unwrap();
    assert_eq!(
        location,
        berth.url(&format!("/v2/team/app/api/blobs/{digest}"))
    );

    let blob_url = berth.url(&format!("/v2/team/app/api/blobs/{digest}"));
    let head = client.head(&blob_url).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-length"], "300000");
    assert_eq!(head.headers()["docker-content-digest"], digest.as_str());

    let get = client.get(&blob_url).send().await.unwrap();
    assert_eq!(get.status(), 200);
    assert_eq!(get.headers()["content-length"], "300000");
    assert_eq!(get.headers()["accept-ranges"], "bytes");
    assert_eq!(get.bytes().await.unwrap(), data);

    let partial = client
        .get(&blob_url)
        .header("range", "bytes=1000-1999")
        .send()
        .await
        .unwrap();
    assert_eq!(partial.status(), 206);
    assert_eq!(partial.headers()["content-range"], "bytes 1000-1999/300000");
    assert_eq!(partial.headers()["content-length"], "1000");
    assert_eq!(partial.bytes().await.unwrap(), &data[1000..2000]);

    let suffix = client
        .get(&blob_url)
        .header("range", "bytes=-10")
        .send()
        .await
        .unwrap();
    assert_eq!(suffix.status(), 206);
    assert_eq!(suffix.bytes().await.unwrap(), &data[data.len() - 10..]);

    let unsatisfiable = client
        .get(&blob_url)
        .header("range", "bytes=300000-")
        .send()
        .await
        .unwrap();
    assert_eq!(unsatisfiable.headers()["content-range"], "bytes */300000");
    assert_oci_error(unsatisfiable, 416, "RANGE_INVALID").await;
}

#[tokio::test]
async fn chunked_upload_with_status_and_resume_headers() {
    let berth = Berth::start();
    let client = client();
    let data = bytes(50_000, 2);
    let digest = sha256(&data);

    let start = client
        .post(berth.url("/v2/chunked/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 202);
    assert_eq!(start.headers()["range"], "0-0");
    assert_eq!(start.headers()["content-length"], "0");
    let uuid = start.headers()["docker-upload-uuid"]
        .to_str()
        .unwrap()
        .to_string();
    let location = start.headers()["location"].to_str().unwrap().to_string();
    assert!(
        location.ends_with(&format!("/v2/chunked/blobs/uploads/{uuid}")),
        "{location}"
    );

    let mut offset = 0;
    for chunk in data[..40_000].chunks(10_000) {
        let end = offset + chunk.len() - 1;
        let response = client
            .patch(&location)
            .header("content-type", "application/octet-stream")
            .header("content-range", format!("{offset}-{end}"))
            .body(chunk.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        assert_eq!(response.headers()["range"], format!("0-{end}").as_str());
        assert_eq!(response.headers()["docker-upload-uuid"], uuid.as_str());
        offset += chunk.len();
    }

    let status = client.get(&location).send().await.unwrap();
    assert_eq!(status.status(), 204);
    assert_eq!(status.headers()["range"], "0-39999");
    assert_eq!(status.headers()["docker-upload-uuid"], uuid.as_str());
    assert!(status.headers().contains_key("location"));

    // A chunk that overlaps what is there is refused with where to resume.
    let overlap = client
        .patch(&location)
        .header("content-range", "30000-30999")
        .body(vec![0u8; 1000])
        .send()
        .await
        .unwrap();
    assert_eq!(overlap.headers()["range"], "0-39999");
    assert!(overlap.headers().contains_key("location"));
    assert_oci_error(overlap, 416, "RANGE_INVALID").await;

    // Finish with the last chunk in the PUT.
    let done = client
        .put(format!("{location}?digest={digest}"))
        .header("content-range", "40000-49999")
        .body(data[40_000..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 201);
    assert_eq!(done.headers()["docker-content-digest"], digest.as_str());
    let pulled = client
        .get(berth.url(&format!("/v2/chunked/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(pulled.bytes().await.unwrap(), data);

    // The session is gone.
    let gone = client.get(&location).send().await.unwrap();
    assert_oci_error(gone, 404, "BLOB_UPLOAD_UNKNOWN").await;
}

#[tokio::test]
async fn streamed_upload_without_content_range_and_cancel() {
    let berth = Berth::start();
    let client = client();
    let data = bytes(70_000, 3);
    let digest = sha256(&data);
    let start = client
        .post(berth.url("/v2/streamed/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    let location = start.headers()["location"].to_str().unwrap().to_string();
    // Docker-style: PATCH the whole body without Content-Range, then PUT with no body.
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(
        data.chunks(8192)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    ));
    let patched = client.patch(&location).body(body).send().await.unwrap();
    assert_eq!(patched.status(), 202);
    assert_eq!(patched.headers()["range"], "0-69999");
    let done = client
        .put(format!("{location}?digest={digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 201);

    let start = client
        .post(berth.url("/v2/streamed/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    let location = start.headers()["location"].to_str().unwrap().to_string();
    client
        .patch(&location)
        .body(vec![1u8; 100])
        .send()
        .await
        .unwrap();
    let cancelled = client.delete(&location).send().await.unwrap();
    assert_eq!(cancelled.status(), 204);
    assert_oci_error(
        client.get(&location).send().await.unwrap(),
        404,
        "BLOB_UPLOAD_UNKNOWN",
    )
    .await;
}

#[tokio::test]
async fn cross_repository_mounts() {
    let berth = Berth::start();
    let client = client();
    let digest = push_blob(&client, &berth, "source/repo", b"mountable layer").await;

    // Not readable elsewhere until mounted.
    let elsewhere = client
        .head(berth.url(&format!("/v2/target/repo/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), 404);

    let mounted = client
        .post(berth.url(&format!(
            "/v2/target/repo/blobs/uploads/?mount={digest}&from=source/repo"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(mounted.status(), 201);
    assert_eq!(mounted.headers()["docker-content-digest"], digest.as_str());
    assert!(
        mounted.headers()["location"]
            .to_str()
            .unwrap()
            .ends_with(&format!("/v2/target/repo/blobs/{digest}"))
    );
    let got = client
        .get(berth.url(&format!("/v2/target/repo/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(got.bytes().await.unwrap(), &b"mountable layer"[..]);

    // From a repository that lacks it: a fresh upload session instead.
    let fallback = client
        .post(berth.url(&format!(
            "/v2/other/repo/blobs/uploads/?mount={digest}&from=nothing/here"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(fallback.status(), 202);
    assert!(fallback.headers().contains_key("docker-upload-uuid"));

    // Without `from`, a blob the registry already holds is mounted.
    let anywhere = client
        .post(berth.url(&format!("/v2/third/repo/blobs/uploads/?mount={digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(anywhere.status(), 201);
    let unknown = sha256(b"never pushed");
    let unknown_mount = client
        .post(berth.url(&format!("/v2/third/repo/blobs/uploads/?mount={unknown}")))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown_mount.status(), 202);
}

#[tokio::test]
async fn manifests_of_every_kind() {
    let berth = Berth::start();
    let client = client();
    let image = push_image(&client, &berth, "kinds", "oci", 1, 2).await;

    // GET by tag and by digest, HEAD, headers.
    let by_tag = client
        .get(berth.url("/v2/kinds/manifests/oci"))
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    assert_eq!(by_tag.status(), 200);
    assert_eq!(by_tag.headers()["content-type"], OCI_MANIFEST);
    assert_eq!(
        by_tag.headers()["docker-content-digest"],
        image.digest.as_str()
    );
    assert_eq!(by_tag.bytes().await.unwrap(), image.manifest);
    let by_digest = client
        .get(berth.url(&format!("/v2/kinds/manifests/{}", image.digest)))
        .send()
        .await
        .unwrap();
    assert_eq!(by_digest.bytes().await.unwrap(), image.manifest);
    let head = client
        .head(berth.url("/v2/kinds/manifests/oci"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(
        head.headers()["content-length"],
        image.manifest.len().to_string().as_str()
    );
    assert_eq!(
        head.headers()["docker-content-digest"],
        image.digest.as_str()
    );

    // Docker schema2 manifest, exact bytes preserved (odd whitespace included).
    let config = &image.blobs[0];
    let layer = &image.blobs[1];
    let docker = format!(
        "{{\n   \"schemaVersion\": 2,\n   \"mediaType\": \"{DOCKER_MANIFEST}\",\n   \"config\": {{\"mediaType\": \"application/vnd.docker.container.image.v1+json\", \"size\": {}, \"digest\": \"{}\"}},\n   \"layers\": [{{\"mediaType\": \"application/vnd.docker.image.rootfs.diff.tar.gzip\", \"size\": {}, \"digest\": \"{}\"}}]\n}}",
        config.1.len(),
        config.0,
        layer.1.len(),
        layer.0
    );
    let pushed = put_manifest(
        &client,
        &berth,
        "kinds",
        "docker",
        DOCKER_MANIFEST,
        docker.as_bytes(),
    )
    .await;
    assert_eq!(pushed.status(), 201);
    assert_eq!(
        pushed.headers()["docker-content-digest"],
        sha256(docker.as_bytes()).as_str()
    );
    let got = client
        .get(berth.url("/v2/kinds/manifests/docker"))
        .send()
        .await
        .unwrap();
    assert_eq!(got.headers()["content-type"], DOCKER_MANIFEST);
    assert_eq!(got.bytes().await.unwrap(), docker.as_bytes());

    // OCI index and Docker manifest list over both.
    let docker_digest = sha256(docker.as_bytes());
    for (media_type, child_type, tag) in [
        (OCI_INDEX, OCI_MANIFEST, "index"),
        (DOCKER_LIST, DOCKER_MANIFEST, "list"),
    ] {
        let index = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_type,
            "manifests": [
                {"mediaType": child_type, "digest": if child_type == OCI_MANIFEST { &image.digest } else { &docker_digest },
                 "size": if child_type == OCI_MANIFEST { image.manifest.len() } else { docker.len() },
                 "platform": {"architecture": "amd64", "os": "linux"}},
            ]
        }))
        .unwrap();
        let pushed = put_manifest(&client, &berth, "kinds", tag, media_type, &index).await;
        assert_eq!(
            pushed.status(),
            201,
            "{tag}: {}",
            pushed.text().await.unwrap()
        );
        let got = client
            .get(berth.url(&format!("/v2/kinds/manifests/{tag}")))
            .send()
            .await
            .unwrap();
        assert_eq!(got.headers()["content-type"], media_type);
        assert_eq!(got.bytes().await.unwrap(), index);
    }

    // Content negotiation: a client that cannot take an index gets a clear 404.
    let refused = client
        .get(berth.url("/v2/kinds/manifests/index"))
        .header("accept", DOCKER_MANIFEST)
        .send()
        .await
        .unwrap();
    assert_oci_error(refused, 404, "MANIFEST_UNKNOWN").await;
    let wildcard = client
        .get(berth.url("/v2/kinds/manifests/index"))
        .header("accept", "*/*")
        .send()
        .await
        .unwrap();
    assert_eq!(wildcard.status(), 200);

    // Pushing by digest.
    let by_digest = put_manifest(
        &client,
        &berth,
        "kinds",
        &image.digest,
        OCI_MANIFEST,
        &image.manifest,
    )
    .await;
    assert_eq!(by_digest.status(), 201);
    assert!(
        by_digest.headers()["location"]
            .to_str()
            .unwrap()
            .ends_with(&format!("/v2/kinds/manifests/{}", image.digest))
    );
}

#[tokio::test]
async fn artifacts_and_referrers() {
    let berth = Berth::start();
    let client = client();
    let image = push_image(&client, &berth, "art", "v1", 5, 1).await;
    let empty = push_blob(&client, &berth, "art", b"{}").await;
    let sbom_bytes = b"{\"sbom\":\"spdx\"}";
    let sbom = push_blob(&client, &berth, "art", sbom_bytes).await;

    // A helm-chart-like artifact with a custom config media type.
    let chart_config_bytes = b"{\"name\":\"chart\",\"version\":\"1.0.0\"}";
    let chart_config = push_blob(&client, &berth, "art", chart_config_bytes).await;
    let chart = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.cncf.helm.config.v1+json", "digest": chart_config, "size": chart_config_bytes.len()},
        "layers": [{"mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip", "digest": sbom, "size": sbom_bytes.len()}]
    }))
    .unwrap();
    assert_eq!(
        put_manifest(&client, &berth, "art", "chart-1.0.0", OCI_MANIFEST, &chart)
            .await
            .status(),
        201
    );

    let referrer = |artifact_type: &str, annotation: &str| {
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact_type,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
            "layers": [{"mediaType": "application/spdx+json", "digest": sbom, "size": sbom_bytes.len()}],
            "subject": {"mediaType": OCI_MANIFEST, "digest": image.digest, "size": image.manifest.len()},
            "annotations": {"org.opencontainers.image.description": annotation}
        }))
        .unwrap()
    };
    let sbom_manifest = referrer("application/spdx+json", "an sbom");
    let sig_manifest = referrer("application/vnd.dev.cosign.signature", "a signature");
    for manifest in [&sbom_manifest, &sig_manifest] {
        let digest = sha256(manifest);
        let pushed = put_manifest(&client, &berth, "art", &digest, OCI_MANIFEST, manifest).await;
        assert_eq!(pushed.status(), 201);
        assert_eq!(pushed.headers()["oci-subject"], image.digest.as_str());
    }

    let all = client
        .get(berth.url(&format!("/v2/art/referrers/{}", image.digest)))
        .send()
        .await
        .unwrap();
    assert_eq!(all.status(), 200);
    assert_eq!(all.headers()["content-type"], OCI_INDEX);
    assert!(!all.headers().contains_key("oci-filters-applied"));
    let index: serde_json::Value = all.json().await.unwrap();
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(index["mediaType"], OCI_INDEX);
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 2);
    assert_eq!(manifests[0]["digest"], sha256(&sbom_manifest));
    assert_eq!(manifests[0]["artifactType"], "application/spdx+json");
    assert_eq!(manifests[0]["size"], sbom_manifest.len());
    assert_eq!(
        manifests[0]["annotations"]["org.opencontainers.image.description"],
        "an sbom"
    );

    let filtered = client
        .get(berth.url(&format!(
            "/v2/art/referrers/{}?artifactType=application/vnd.dev.cosign.signature",
            image.digest
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(filtered.headers()["oci-filters-applied"], "artifactType");
    let index: serde_json::Value = filtered.json().await.unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(index["manifests"][0]["digest"], sha256(&sig_manifest));

    // An unknown digest has no referrers: 200 and an empty index, never 404.
    let unknown = client
        .get(berth.url(&format!("/v2/art/referrers/{}", sha256(b"x"))))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 200);
    let index: serde_json::Value = unknown.json().await.unwrap();
    assert_eq!(index["manifests"], serde_json::json!([]));
}

#[tokio::test]
async fn tags_and_catalog_paginate_lexically_with_links() {
    let berth = Berth::start();
    let client = client();
    let image = push_image(&client, &berth, "paged/app", "seed", 9, 1).await;
    for tag in ["v2", "v10", "V1", "latest", "_private", "1.0"] {
        let r = put_manifest(
            &client,
            &berth,
            "paged/app",
            tag,
            OCI_MANIFEST,
            &image.manifest,
        )
        .await;
        assert_eq!(r.status(), 201);
    }
    let all: serde_json::Value = client
        .get(berth.url("/v2/paged/app/tags/list"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(all["name"], "paged/app");
    assert_eq!(
        all["tags"],
        serde_json::json!(["1.0", "V1", "_private", "latest", "seed", "v10", "v2"])
    );

    let mut seen = Vec::new();
    let mut url = berth.url("/v2/paged/app/tags/list?n=3");
    loop {
        let response = client.get(&url).send().await.unwrap();
        let link = response
            .headers()
            .get("link")
            .map(|l| l.to_str().unwrap().to_string());
        let page: serde_json::Value = response.json().await.unwrap();
        let tags = page["tags"].as_array().unwrap();
        assert!(tags.len() <= 3);
        seen.extend(tags.iter().map(|t| t.as_str().unwrap().to_string()));
        match link {
            Some(link) => {
                assert!(link.ends_with(">; rel=\"next\""), "{link}");
                url = link[1..link.find('>').unwrap()].to_string();
                assert!(url.contains("n=3") && url.contains("last="), "{url}");
            }
            None => break,
        }
    }
    assert_eq!(
        seen,
        ["1.0", "V1", "_private", "latest", "seed", "v10", "v2"]
    );
    let after: serde_json::Value = client
        .get(berth.url("/v2/paged/app/tags/list?last=latest"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(after["tags"], serde_json::json!(["seed", "v10", "v2"]));

    for repo in ["paged/b", "paged/a-b", "aaa"] {
        push_image(&client, &berth, repo, "t", 10, 0).await;
    }
    let catalog = client
        .get(berth.url("/v2/_catalog?n=2"))
        .send()
        .await
        .unwrap();
    let link = catalog.headers()["link"].to_str().unwrap().to_string();
    let page: serde_json::Value = catalog.json().await.unwrap();
    assert_eq!(
        page["repositories"],
        serde_json::json!(["aaa", "paged/a-b"])
    );
    assert!(link.contains("/v2/_catalog?n=2&last=paged/a-b"), "{link}");
    let rest: serde_json::Value = client
        .get(berth.url("/v2/_catalog?n=2&last=paged/a-b"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        rest["repositories"],
        serde_json::json!(["paged/app", "paged/b"])
    );

    let unknown = client
        .get(berth.url("/v2/not/there/tags/list"))
        .send()
        .await
        .unwrap();
    assert_oci_error(unknown, 404, "NAME_UNKNOWN").await;
}

#[tokio::test]
async fn deleting_tags_manifests_and_blobs() {
    let berth = Berth::start();
    let client = client();
    let image = push_image(&client, &berth, "del", "v1", 11, 1).await;
    put_manifest(&client, &berth, "del", "v2", OCI_MANIFEST, &image.manifest).await;

    let untag = client
        .delete(berth.url("/v2/del/manifests/v1"))
        .send()
        .await
        .unwrap();
    assert_eq!(untag.status(), 202);
    assert_oci_error(
        client
            .get(berth.url("/v2/del/manifests/v1"))
            .send()
            .await
            .unwrap(),
        404,
        "MANIFEST_UNKNOWN",
    )
    .await;
    assert_eq!(
        client
            .get(berth.url("/v2/del/manifests/v2"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let by_digest = client
        .delete(berth.url(&format!("/v2/del/manifests/{}", image.digest)))
        .send()
        .await
        .unwrap();
    assert_eq!(by_digest.status(), 202);
    assert_oci_error(
        client
            .get(berth.url("/v2/del/manifests/v2"))
            .send()
            .await
            .unwrap(),
        404,
        "MANIFEST_UNKNOWN",
    )
    .await;
    let tags: serde_json::Value = client
        .get(berth.url("/v2/del/tags/list"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tags["tags"], serde_json::json!([]));

    let layer = &image.blobs[1].0;
    assert_eq!(
        client
            .delete(berth.url(&format!("/v2/del/blobs/{layer}")))
            .send()
            .await
            .unwrap()
            .status(),
        202
    );
    assert_oci_error(
        client
            .get(berth.url(&format!("/v2/del/blobs/{layer}")))
            .send()
            .await
            .unwrap(),
        404,
        "BLOB_UNKNOWN",
    )
    .await;
    assert_oci_error(
        client
            .delete(berth.url(&format!("/v2/del/blobs/{layer}")))
            .send()
            .await
            .unwrap(),
        404,
        "BLOB_UNKNOWN",
    )
    .await;
}

#[tokio::test]
async fn deletion_is_refused_when_disabled() {
    let berth = Berth::builder().start();
    let client = client();
    let image = push_image(&client, &berth, "keep", "v1", 12, 1).await;
    for url in [
        berth.url("/v2/keep/manifests/v1"),
        berth.url(&format!("/v2/keep/manifests/{}", image.digest)),
        berth.url(&format!("/v2/keep/blobs/{}", image.blobs[1].0)),
    ] {
        assert_oci_error(
            client.delete(&url).send().await.unwrap(),
            405,
            "UNSUPPORTED",
        )
        .await;
    }
    assert_eq!(
        client
            .get(berth.url("/v2/keep/manifests/v1"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn blobs_are_private_to_their_repository() {
    let berth = Berth::start();
    let client = client();
    let digest = push_blob(&client, &berth, "owner", b"secret layer").await;
    assert_oci_error(
        client
            .get(berth.url(&format!("/v2/stranger/blobs/{digest}")))
            .send()
            .await
            .unwrap(),
        404,
        "BLOB_UNKNOWN",
    )
    .await;
    // Nor can a manifest in another repository claim it.
    let config = push_blob(&client, &berth, "stranger", b"{}").await;
    let manifest = image_manifest(
        &(config, b"{}".to_vec()),
        &[(digest, b"secret layer".to_vec())],
    );
    let response = put_manifest(
        &client,
        &berth,
        "stranger",
        "steal",
        OCI_MANIFEST,
        &manifest,
    )
    .await;
    assert_oci_error(response, 400, "MANIFEST_BLOB_UNKNOWN").await;
}

#[tokio::test]
async fn health_and_readiness() {
    let berth = Berth::start();
    let client = client();
    let health = client.get(berth.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = client.get(berth.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(
        ready.json::<serde_json::Value>().await.unwrap()["status"],
        "ready"
    );

    // Storage gone: not ready, and it says why.
    std::fs::remove_dir_all(berth.data_dir().join("berth/uploads")).unwrap();
    let ready = client.get(berth.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert!(
        body["reason"].as_str().unwrap().contains("blob storage"),
        "{body}"
    );
}

#[tokio::test]
async fn a_reference_that_cannot_be_a_tag_names_no_manifest() {
    let berth = Berth::start();
    let client = client();
    // The OCI conformance suite reads `.INVALID_MANIFEST_NAME` and expects a plain 404.
    let url = berth.url("/v2/conformance/app/manifests/.INVALID_MANIFEST_NAME");
    assert_oci_error(
        client.get(&url).send().await.unwrap(),
        404,
        "MANIFEST_UNKNOWN",
    )
    .await;
    assert_eq!(client.head(&url).send().await.unwrap().status(), 404);
    assert_oci_error(
        client.delete(&url).send().await.unwrap(),
        404,
        "MANIFEST_UNKNOWN",
    )
    .await;
    // A malformed digest is still the client's error, and so is pushing to an invalid tag.
    let bad_digest = berth.url("/v2/conformance/app/manifests/sha256:totallywrong");
    assert_oci_error(
        client.get(&bad_digest).send().await.unwrap(),
        400,
        "DIGEST_INVALID",
    )
    .await;
    let put = client
        .put(&url)
        .header("content-type", OCI_MANIFEST)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_oci_error(put, 400, "TAG_INVALID").await;
    // A method the endpoint does not have is a 405 naming those it has.
    let response = client
        .post(berth.url("/v2/conformance/app/tags/list"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["allow"], "GET, HEAD");
    assert_oci_error(response, 405, "UNSUPPORTED").await;
}
