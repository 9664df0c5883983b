//! Quotas: a namespace's byte limit, each blob counted once however many of its repositories
//! hold it. A push past it is refused with `DENIED` and "quota exceeded: used X of Y" (skopeo
//! shows it), concurrent pushes cannot take it over the limit (SQLite and PostgreSQL), the
//! usage follows deletions and garbage collection, and a recount finds it exact.

use berth_meta::postgres::testing::PostgresServer;
use serde_json::Value;

use crate::support::clients::{Sandbox, skopeo_push, umoci_image};
use crate::support::push::{OCI_MANIFEST, push_image, put_manifest};
use crate::support::{Berth, BerthBuilder, assert_oci_error, bytes, client, sha256};

fn builder() -> BerthBuilder {
    Berth::builder()
        .env("REGISTRY_STORAGE_DELETE_ENABLED", "true")
        .env("BERTH_GC_GRACE", "0s")
        .env("BERTH_GC_ENABLED", "false")
        // Deleted manifests free their blobs at the next collection (the tag history would
        // keep them restorable for two weeks: the tag_history suite).
        .env("BERTH_RETENTION_TAGHISTORY", "1ms")
}

/// The quota on `pattern`, as `berth quota list` shows it.
fn quota(berth: &Berth, pattern: &str) -> Value {
    let quotas = berth.cli(&["quota", "list"]);
    quotas
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["repositories"] == pattern)
        .unwrap_or_else(|| panic!("no quota on {pattern}: {quotas}"))
        .clone()
}

fn used(berth: &Berth, pattern: &str) -> u64 {
    quota(berth, pattern)["used_bytes"].as_u64().unwrap()
}

/// Monolithic blob upload; the response as it came.
async fn upload(berth: &Berth, repository: &str, data: &[u8]) -> reqwest::Response {
    client()
        .post(berth.url(&format!(
            "/v2/{repository}/blobs/uploads/?digest={}",
            sha256(data)
        )))
        .body(data.to_vec())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_push_past_the_namespace_quota_is_denied_naming_the_usage_and_stores_nothing() {
    let berth = builder().start();
    let sandbox = Sandbox::new();
    let set = berth.cli(&["quota", "set", "acme", "1MiB"]);
    assert_eq!(set[0]["repositories"], "acme/**");
    assert_eq!(set[0]["limit_bytes"], 1 << 20);

    let first = umoci_image(&sandbox, "first", &bytes(600_000, 1)).await;
    let second = umoci_image(&sandbox, "second", &bytes(600_000, 2)).await;
    let pushed = skopeo_push(&sandbox, &first, &format!("{}/acme/one:v1", berth.host())).await;
    assert!(pushed.status.success(), "{pushed:?}");
    let after_first = used(&berth, "acme/**");
    assert!(after_first > 600_000, "{after_first}");

    // skopeo shows the refusal as berth words it.
    let refused = skopeo_push(&sandbox, &second, &format!("{}/acme/two:v1", berth.host())).await;
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "the second image does not fit");
    assert!(
        stderr.contains("quota exceeded: used") && stderr.contains("of 1.0 MiB"),
        "{stderr}"
    );
    // skopeo may have sent the small config before the layer was refused.
    let before = used(&berth, "acme/**");
    assert!(before - after_first < 4096, "the layer was not counted");

    // Over the API: DENIED with the numbers, and the blob is not there afterwards.
    let layer = bytes(600_000, 3);
    let response = upload(&berth, "acme/three", &layer).await;
    let body = assert_oci_error(response, 403, "DENIED").await;
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.starts_with("quota exceeded: used "), "{message}");
    assert_eq!(body["errors"][0]["detail"]["limit"], 1 << 20);
    assert_eq!(body["errors"][0]["detail"]["used"], before);
    let head = client()
        .head(berth.url(&format!("/v2/acme/three/blobs/{}", sha256(&layer))))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 404);

    // The same image again in the namespace costs nothing; another namespace is not limited.
    let again = skopeo_push(&sandbox, &first, &format!("{}/acme/copy:v1", berth.host())).await;
    assert!(again.status.success(), "{again:?}");
    assert_eq!(used(&berth, "acme/**"), before);
    let elsewhere = skopeo_push(&sandbox, &second, &format!("{}/other/two:v1", berth.host())).await;
    assert!(elsewhere.status.success(), "{elsewhere:?}");

    // Raising the limit lets the push through.
    berth.cli(&["quota", "set", "acme", "2MiB"]);
    let now = skopeo_push(&sandbox, &second, &format!("{}/acme/two:v1", berth.host())).await;
    assert!(now.status.success(), "{now:?}");
}

#[tokio::test]
async fn each_blob_counts_once_per_namespace_and_usage_follows_deletes_and_gc() {
    let berth = builder().start();
    let http = client();
    berth.cli(&["quota", "set", "team", "10MiB"]);
    berth.cli(&["quota", "set", "team/big/*", "10MiB"]);
    let image = push_image(&http, &berth, "team/a", "v1", 7, 2).await;
    let total: u64 = image.blobs.iter().map(|(_, b)| b.len() as u64).sum();
    // The same blobs pushed into a second repository of the namespace.
    let copy = push_image(&http, &berth, "team/big/b", "v1", 7, 2).await;
    assert_eq!(copy.digest, image.digest);
    push_image(&http, &berth, "outside/c", "v1", 8, 2).await;
    assert_eq!(used(&berth, "team/**"), total, "each blob once");
    assert_eq!(used(&berth, "team/big/*"), total);

    // `berth usage` shows the namespace beside its limit.
    let usage = berth.cli(&["usage"]);
    let team = usage["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|ns| ns["namespace"] == "team")
        .unwrap_or_else(|| panic!("{usage}"));
    assert_eq!(team["bytes"], total);
    assert_eq!(team["limit_bytes"], 10 << 20);
    let outside = usage["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|ns| ns["namespace"] == "outside")
        .unwrap();
    assert_eq!(outside["limit_bytes"], Value::Null);

    // Deleting the manifests frees nothing until garbage collection unlinks the blobs.
    for repository in ["team/a", "team/big/b"] {
        let deleted = http
            .delete(berth.url(&format!("/v2/{repository}/manifests/{}", image.digest)))
            .send()
            .await
            .unwrap();
        assert_eq!(deleted.status(), 202);
    }
    assert_eq!(used(&berth, "team/**"), total);
    berth.cli(&["gc"]);
    assert_eq!(used(&berth, "team/**"), 0);
    assert_eq!(used(&berth, "team/big/*"), 0);

    // The count the writes kept is what a recount finds.
    let output = berth.cli_output(&["usage", "--recompute"]);
    assert!(output.status.success(), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("every quota's usage was exact"),
        "{output:?}"
    );
    // Set and changed quotas are in the audit log.
    let audit = berth.cli(&["audit", "list", "--limit", "50"]);
    assert!(
        audit
            .to_string()
            .contains("set quota on team/** to 10.0 MiB"),
        "{audit}"
    );
    let removed = berth.cli(&["quota", "remove", "team/big/*"]);
    assert_eq!(removed[0]["repositories"], "team/big/*");
    assert_eq!(berth.cli(&["quota", "list"]).as_array().unwrap().len(), 1);
}

/// 24 clients push distinct 100 KiB blobs at once into four repositories of a namespace
/// whose quota holds ten and a half: exactly ten are accepted, and the count is exact.
async fn concurrent_pushes_stay_within_the_quota(berth: &Berth) {
    const BLOB: usize = 100 * 1024;
    berth.cli(&["quota", "set", "race", &(10 * BLOB + BLOB / 2).to_string()]);
    let pushes = (0..24u64).map(|i| {
        let data = bytes(BLOB, 1000 + i);
        async move {
            let response = upload(berth, &format!("race/r{}", i % 4), &data).await;
            let status = response.status().as_u16();
            (status, response.text().await.unwrap())
        }
    });
    let outcomes = futures_util::future::join_all(pushes).await;
    let accepted = outcomes.iter().filter(|(status, _)| *status == 201).count();
    for (status, body) in outcomes.iter().filter(|(status, _)| *status != 201) {
        assert_eq!(*status, 403, "{body}");
        assert!(body.contains("quota exceeded: used"), "{body}");
    }
    assert_eq!(accepted, 10, "{outcomes:?}");
    assert_eq!(used(berth, "race/**"), 10 * BLOB as u64);
    let output = berth.cli_output(&["usage", "--recompute"]);
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("every quota's usage was exact"),
        "{output:?}"
    );
    // A manifest over accepted blobs goes through; the limit holds for what it references.
    let config = bytes(10, 1);
    assert_eq!(upload(berth, "race/r0", &config).await.status(), 201);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(&config), "size": 10},
        "layers": [],
    }))
    .unwrap();
    let put = put_manifest(&client(), berth, "race/r0", "v1", OCI_MANIFEST, &manifest).await;
    assert_eq!(put.status(), 201);
}

#[tokio::test]
async fn concurrent_pushes_cannot_take_a_namespace_past_its_quota_on_sqlite() {
    let berth = builder().start();
    concurrent_pushes_stay_within_the_quota(&berth).await;
}

#[tokio::test]
async fn concurrent_pushes_cannot_take_a_namespace_past_its_quota_on_postgres() {
    let database = PostgresServer::start();
    let berth = builder().env("BERTH_DATABASE_URL", &database.url()).start();
    concurrent_pushes_stay_within_the_quota(&berth).await;
}

#[tokio::test]
async fn a_lowered_quota_refuses_manifest_pushes_until_space_is_freed() {
    let berth = builder().start();
    let http = client();
    berth.cli(&["quota", "set", "shrink", "1MiB"]);
    let image = push_image(&http, &berth, "shrink/app", "v1", 3, 2).await;
    berth.cli(&["quota", "set", "shrink", "1KiB"]);
    let retag = put_manifest(
        &http,
        &berth,
        "shrink/app",
        "v2",
        OCI_MANIFEST,
        &image.manifest,
    )
    .await;
    let body = assert_oci_error(retag, 403, "DENIED").await;
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.starts_with("quota exceeded: used ") && message.contains("of 1.0 KiB"),
        "{message}"
    );
    // Bad limits are refused with the field named.
    let bad = berth.cli_output(&["quota", "set", "shrink", "a lot"]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("limit: "),
        "{bad:?}"
    );
    berth.cli(&["quota", "remove", "shrink"]);
    let retag = put_manifest(
        &http,
        &berth,
        "shrink/app",
        "v2",
        OCI_MANIFEST,
        &image.manifest,
    )
    .await;
    assert_eq!(retag.status(), 201);
}
