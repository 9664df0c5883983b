//! Tag history and restore: a deleted or moved tag's previous manifest stays restorable for
//! `retention.taghistory` (also when skopeo deleted the manifest itself, by digest), garbage
//! collection keeps it until then (and collects it after; a dry run reports exactly that),
//! and `berth tag restore` puts the tag back so that it pulls byte-exact.

use std::time::Duration;

use serde_json::Value;

use crate::support::clients::{
    Sandbox, get_blob, get_manifest, layout_blob, run_output, skopeo_push, umoci_image,
};
use crate::support::push::{OCI_MANIFEST, push_image};
use crate::support::{Berth, BerthBuilder, berth_cli_output, client};

/// Collects untagged manifests and unreferenced blobs at once, so only the history keeps
/// anything.
fn aggressive(builder: BerthBuilder) -> BerthBuilder {
    builder
        .env("REGISTRY_STORAGE_DELETE_ENABLED", "true")
        .env("BERTH_GC_GRACE", "0s")
        .env("BERTH_GC_UNTAGGED", "delete after 0s")
        .env("BERTH_GC_ENABLED", "false")
}

async fn status(berth: &Berth, path: &str) -> u16 {
    client()
        .get(berth.url(path))
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_tag_deleted_with_skopeo_survives_gc_and_is_restored_pulling_byte_exact() {
    let berth = aggressive(Berth::builder()).start();
    let sandbox = Sandbox::new();
    let image = umoci_image(&sandbox, "layout", b"restore me\n").await;
    let target = format!("docker://{}/hist/app:v1", berth.host());
    let pushed = skopeo_push(&sandbox, &image, &format!("{}/hist/app:v1", berth.host())).await;
    assert!(pushed.status.success(), "{pushed:?}");
    let (manifest, _) = get_manifest(&berth, "hist/app", "v1").await;
    let digest = crate::support::sha256(&manifest);

    // skopeo deletes by digest: the manifest goes, and its tag with it.
    let deleted = run_output(
        sandbox
            .skopeo()
            .args(["delete", "--tls-verify=false", &target]),
        b"",
    )
    .await;
    assert!(deleted.status.success(), "{deleted:?}");
    assert_eq!(status(&berth, "/v2/hist/app/manifests/v1").await, 404);
    assert_eq!(
        status(&berth, &format!("/v2/hist/app/manifests/{digest}")).await,
        404
    );
    // A collection in between: the history keeps the manifest and its blobs.
    let report = berth.cli(&["gc"]);
    assert_eq!(report["manifests"], 0, "{report}");
    assert_eq!(report["blobs"], 0, "{report}");

    let history = berth.cli(&["tag", "history", "hist/app", "v1"]);
    assert_eq!(history[0]["digest"], digest.as_str(), "{history}");
    assert_eq!(history[0]["reason"], "deleted");
    assert_eq!(history[0]["restorable"], true);
    let restored = berth.cli(&["tag", "restore", "hist/app", "v1"]);
    assert_eq!(restored["digest"], digest.as_str());

    // skopeo pulls it back; every byte is what was pushed.
    let out = sandbox.path("pulled");
    let pulled = run_output(
        sandbox.skopeo().args([
            "copy",
            "--src-tls-verify=false",
            &target,
            &format!("oci:{}:v1", out.display()),
        ]),
        b"",
    )
    .await;
    assert!(pulled.status.success(), "{pulled:?}");
    let (again, _) = get_manifest(&berth, "hist/app", "v1").await;
    assert_eq!(again, manifest, "the manifest is byte-exact");
    let parsed: Value = serde_json::from_slice(&manifest).unwrap();
    let layout = sandbox.path("layout");
    for descriptor in parsed["layers"]
        .as_array()
        .unwrap()
        .iter()
        .chain([&parsed["config"]])
    {
        let blob = descriptor["digest"].as_str().unwrap();
        assert_eq!(
            get_blob(&berth, "hist/app", blob).await,
            layout_blob(&layout, blob),
            "{blob} is byte-exact"
        );
        assert_eq!(layout_blob(&out, blob), layout_blob(&layout, blob));
    }
    // The restore is audited.
    let audit = berth.cli(&["audit", "list"]);
    assert!(
        audit.to_string().contains(&format!("restored to {digest}")),
        "{audit}"
    );
}

#[tokio::test]
async fn a_moved_tag_is_restored_to_a_chosen_digest_and_immutability_refuses_moving_it_back() {
    let berth = aggressive(Berth::builder()).start();
    let http = client();
    let first = push_image(&http, &berth, "moves/app", "stable", 1, 1).await;
    let second = push_image(&http, &berth, "moves/app", "stable", 2, 1).await;
    push_image(&http, &berth, "moves/app", "stable", 3, 1).await;
    berth.cli(&["gc"]);
    let history = berth.cli(&["tag", "history", "moves/app", "stable"]);
    let digests: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["digest"].as_str().unwrap())
        .collect();
    assert_eq!(digests, [second.digest.as_str(), first.digest.as_str()]);
    let restored = berth.cli(&[
        "tag",
        "restore",
        "moves/app",
        "stable",
        "--to",
        &first.digest,
    ]);
    assert_eq!(restored["digest"], first.digest.as_str());
    let (manifest, _) = get_manifest(&berth, "moves/app", "stable").await;
    assert_eq!(manifest, first.manifest);

    // A digest the tag never pointed at is refused, naming the tag.
    let never = berth.cli_output(&[
        "tag",
        "restore",
        "moves/app",
        "stable",
        "--to",
        "sha256:0000000000000000000000000000000000000000000000000000000000000000",
    ]);
    assert!(!never.status.success());
    assert!(
        String::from_utf8_lossy(&never.stderr).contains("did not point at"),
        "{never:?}"
    );
    // Protected where it points now: restoring would move it, and is refused.
    berth.cli(&["immutable-tags", "add", "moves/**", "stable"]);
    let refused = berth.cli_output(&[
        "tag",
        "restore",
        "moves/app",
        "stable",
        "--to",
        &second.digest,
    ]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("is immutable"),
        "{refused:?}"
    );
    let (manifest, _) = get_manifest(&berth, "moves/app", "stable").await;
    assert_eq!(manifest, first.manifest, "unchanged");
}

#[tokio::test]
async fn after_the_history_expires_gc_collects_the_manifest_and_the_job_forgets_it() {
    let data = tempfile::tempdir().unwrap();
    let output = berth_cli_output(
        data.path(),
        &["user", "add", "root", "--admin", "--password-stdin"],
        Some("root password"),
    );
    assert!(output.status.success());
    let berth = aggressive(Berth::builder())
        .env("REGISTRY_AUTH", "berth")
        .env("BERTH_RETENTION_TAGHISTORY", "3s")
        .data(data.path())
        .start();
    let root = reqwest::Client::builder()
        .default_headers(
            [(
                reqwest::header::AUTHORIZATION,
                "Basic cm9vdDpyb290IHBhc3N3b3Jk".parse().unwrap(),
            )]
            .into_iter()
            .collect(),
        )
        .build()
        .unwrap();
    let image = push_image(&root, &berth, "expiry/app", "v1", 5, 1).await;
    let deleted = root
        .delete(berth.url("/v2/expiry/app/manifests/v1"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 202);
    let by_digest = format!("/v2/expiry/app/manifests/{}", image.digest);
    let manifest_status = || async {
        root.get(berth.url(&by_digest))
            .header("accept", OCI_MANIFEST)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    berth.cli(&["gc"]);
    assert_eq!(manifest_status().await, 200, "kept while the history lasts");

    tokio::time::sleep(Duration::from_millis(3500)).await;
    // The job forgets the expired entry.
    let run = root
        .post(berth.url("/api/v1/jobs/tag-history/run"))
        .send()
        .await
        .unwrap();
    let run: Value = run.json().await.unwrap();
    assert!(
        run.to_string()
            .contains("forgot 1 expired tag history entries"),
        "{run}"
    );

    // Expired: the collection takes the manifest and its blobs.
    let report = berth.cli(&["gc"]);
    assert_eq!(report["manifests"], 1, "{report}");
    assert_eq!(report["blobs"], 2, "its config and layer: {report}");
    assert_eq!(manifest_status().await, 404);
    let gone = berth.cli_output(&["tag", "restore", "expiry/app", "v1"]);
    assert!(!gone.status.success(), "nothing left to restore");
}

#[tokio::test]
async fn a_dry_run_reports_what_expired_history_frees_exactly_as_the_real_run_then_frees() {
    let berth = aggressive(Berth::builder())
        .env("BERTH_RETENTION_TAGHISTORY", "2s")
        .start();
    let client = client();
    // Deleted by digest: only the copy its history keeps references its blobs.
    let deleted = push_image(&client, &berth, "dryhist/app", "v1", 31, 1).await;
    // Untagged: its history keeps the manifest itself.
    let untagged = push_image(&client, &berth, "dryhist/app", "v2", 32, 1).await;
    for reference in [deleted.digest.as_str(), "v2"] {
        let response = client
            .delete(berth.url(&format!("/v2/dryhist/app/manifests/{reference}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202, "DELETE {reference}");
    }
    let dry = berth.cli(&["gc", "--dry-run"]);
    assert_eq!(dry["manifests"], 0, "the history keeps both: {dry}");
    assert_eq!(dry["blobs"], 0, "the history keeps both: {dry}");

    // Expired, and not forgotten yet (the tag-history job has not run): the dry run reads it
    // as the real run, which forgets it first, then acts on it.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let dry = berth.cli(&["gc", "--dry-run"]);
    let real = berth.cli(&["gc"]);
    for key in ["manifests", "blobs", "bytes", "repositories"] {
        assert_eq!(dry[key], real[key], "{key}: dry {dry} real {real}");
    }
    assert_eq!(real["manifests"], 1, "the untagged manifest: {real}");
    let blobs: usize = [&deleted, &untagged].iter().map(|i| i.blobs.len()).sum();
    assert_eq!(real["blobs"], blobs, "both images' blobs: {real}");
    let bytes: usize = [&deleted, &untagged]
        .iter()
        .flat_map(|i| i.blobs.iter().map(|(_, data)| data.len()))
        .sum();
    assert_eq!(real["bytes"], bytes);
    for (image, what) in [(&deleted, "deleted"), (&untagged, "untagged")] {
        let (digest, _) = &image.blobs[0];
        let path = format!("/v2/dryhist/app/blobs/{digest}");
        assert_eq!(
            status(&berth, &path).await,
            404,
            "the {what} image's config"
        );
    }

    // Each phase's time, in the order they ran (a dry run forgets no history).
    let phases = |report: &Value| -> Vec<String> {
        report["phases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                assert!(p["ms"].is_u64(), "{p}");
                p["phase"].as_str().unwrap().to_string()
            })
            .collect()
    };
    assert_eq!(
        phases(&real),
        [
            "start", "history", "untagged", "mark", "orphans", "sweep", "uploads"
        ]
    );
    assert_eq!(
        phases(&dry),
        ["start", "untagged", "mark", "orphans", "uploads"]
    );
}
