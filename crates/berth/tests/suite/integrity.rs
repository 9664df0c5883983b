//! Integrity and backups: `berth fsck` finds what is broken and repairs only what is safe;
//! the scrub quarantines a blob whose bytes no longer match its digest, so that pulls fail
//! clearly instead of serving wrong bytes, until a push heals it; `berth backup` takes a
//! consistent copy while berth serves and `berth restore` rebuilds a registry from it (SQLite
//! and PostgreSQL, with pg_dump and with berth's own logical export).

use std::path::{Path, PathBuf};
use std::process::Output;

use berth_meta::postgres::testing::PostgresServer;
use serde_json::Value;

use crate::support::push::{PushedImage, push_blob, push_image};
use crate::support::{Berth, assert_oci_error, berth_cli_output_env, bytes, client, sha256, tool};

/// The file holding a blob in berth's filesystem store.
fn blob_file(data: &Path, digest: &str) -> PathBuf {
    let hex = digest.strip_prefix("sha256:").unwrap();
    data.join("docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data")
}

fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON ({e}): {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// The problems of an fsck report as `(kind, subject, repaired)`, sorted.
fn problems(report: &Value) -> Vec<(String, String, bool)> {
    let mut found: Vec<(String, String, bool)> = report["problems"]
        .as_array()
        .unwrap_or_else(|| panic!("problems in {report}"))
        .iter()
        .map(|p| {
            (
                p["kind"].as_str().unwrap().to_string(),
                p["subject"].as_str().unwrap().to_string(),
                !p["repaired"].is_null(),
            )
        })
        .collect();
    found.sort();
    found
}

fn problem(kind: &str, subject: &str, repaired: bool) -> (String, String, bool) {
    (kind.to_string(), subject.to_string(), repaired)
}

fn sorted(mut problems: Vec<(String, String, bool)>) -> Vec<(String, String, bool)> {
    problems.sort();
    problems
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fsck_reports_what_is_broken_and_repairs_only_what_is_safe() {
    let berth = Berth::start();
    let client = client();
    let a = push_image(&client, &berth, "fsck/a", "v1", 1, 3).await;
    let b = push_image(&client, &berth, "fsck/b", "v1", 2, 2).await;
    let loose = push_blob(&client, &berth, "fsck/loose", &bytes(5000, 3)).await;
    let clean = berth.cli(&["fsck", "--verify-content"]);
    assert_eq!(problems(&clean), vec![], "{clean}");
    assert_eq!(clean["verified"], 8, "{clean}");

    let data = berth.data_dir();
    // A layer of A with bytes flipped (same size), a layer of B cut short, B's config and
    // the loose blob gone, a stray blob no record names, and A's first layer unlinked from
    // its repository while A's manifest still needs it.
    let corrupted = &a.blobs[2];
    let mut flipped = corrupted.1.clone();
    flipped[10] ^= 0xff;
    std::fs::write(blob_file(data, &corrupted.0), &flipped).unwrap();
    let truncated = &b.blobs[1].0;
    std::fs::write(blob_file(data, truncated), &b.blobs[1].1[..100]).unwrap();
    let lost_config = &b.blobs[0].0;
    std::fs::remove_file(blob_file(data, lost_config)).unwrap();
    std::fs::remove_file(blob_file(data, &loose)).unwrap();
    let stray = bytes(777, 4);
    let stray_path = blob_file(data, &sha256(&stray));
    std::fs::create_dir_all(stray_path.parent().unwrap()).unwrap();
    std::fs::write(&stray_path, &stray).unwrap();
    let unlinked = &a.blobs[1].0;
    let deleted = client
        .delete(berth.url(&format!("/v2/fsck/a/blobs/{unlinked}")))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 202);

    // Presence and sizes only: the flipped bytes go unnoticed, the rest is found.
    let quick = berth.cli_output(&["fsck"]);
    assert_eq!(quick.status.code(), Some(1), "problems found: exit 1");
    let report = json(&quick);
    let a_manifest = format!("fsck/a@{}", a.digest);
    assert_eq!(
        problems(&report),
        sorted(vec![
            problem("missing", lost_config, false),
            problem("missing", &loose, false),
            problem("unheld-reference", &a_manifest, false),
            problem("wrong-size", truncated, false),
        ])
    );
    assert_eq!(report["orphans"], serde_json::json!([sha256(&stray)]));

    // With content verification the flipped bytes are found too; nothing changed yet.
    let thorough = json(&berth.cli_output(&["fsck", "--verify-content"]));
    assert!(problems(&thorough).contains(&problem("corrupt", &corrupted.0, false)));
    assert_eq!(
        std::fs::read(blob_file(data, &corrupted.0)).unwrap(),
        flipped,
        "fsck without --repair changes nothing"
    );

    // Repair: what is safe is done and said; B's config, which B's manifest needs and no
    // store holds, remains a problem.
    let repaired = berth.cli_output(&["fsck", "--verify-content", "--repair"]);
    assert_eq!(repaired.status.code(), Some(1));
    let report = json(&repaired);
    assert_eq!(
        problems(&report),
        sorted(vec![
            problem("corrupt", &corrupted.0, true),
            problem("missing", lost_config, false),
            problem("missing", &loose, true),
            problem("unheld-reference", &a_manifest, true),
            problem("wrong-size", truncated, true),
        ]),
        "{report}"
    );
    assert_eq!(
        report["orphans"],
        serde_json::json!([sha256(&stray)]),
        "orphans are only listed"
    );
    assert!(stray_path.exists());

    // The corrupted blob is not served; its bad bytes are kept aside.
    let pull = client
        .get(berth.url(&format!("/v2/fsck/a/blobs/{}", corrupted.0)))
        .send()
        .await
        .unwrap();
    let body = assert_oci_error(pull, 404, "BLOB_UNKNOWN").await;
    assert!(
        body.to_string().contains("quarantined"),
        "the error says why: {body}"
    );
    let hex = corrupted.0.strip_prefix("sha256:").unwrap();
    assert_eq!(
        std::fs::read(data.join("berth/quarantine/sha256").join(hex)).unwrap(),
        flipped
    );
    // A's unlinked layer is back, and a push of the quarantined blob heals it.
    let relinked = client
        .get(berth.url(&format!("/v2/fsck/a/blobs/{unlinked}")))
        .send()
        .await
        .unwrap();
    assert_eq!(relinked.status(), 200);
    push_blob(&client, &berth, "fsck/a", &corrupted.1).await;
    let healed = client
        .get(berth.url(&format!("/v2/fsck/a/blobs/{}", corrupted.0)))
        .send()
        .await
        .unwrap();
    assert_eq!(healed.status(), 200);
    assert!(healed.bytes().await.unwrap() == corrupted.1.as_slice());

    let after = json(&berth.cli_output(&["fsck"]));
    assert_eq!(
        problems(&after),
        sorted(vec![
            problem("missing", lost_config, false),
            problem("quarantined", truncated, false),
        ]),
        "{after}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scrub_quarantines_a_blob_whose_bytes_changed_while_berth_serves() {
    let berth = Berth::start();
    let client = client();
    let image = push_image(&client, &berth, "scrub/app", "v1", 5, 2).await;
    let first = berth.cli(&["scrub"]);
    assert_eq!(first["verified"], 3, "{first}");
    assert_eq!(first["quarantined"], serde_json::json!([]));

    let (layer, original) = &image.blobs[1];
    let mut changed = original.clone();
    changed[0] ^= 1;
    std::fs::write(blob_file(berth.data_dir(), layer), &changed).unwrap();
    // Served as is until the scrub looks (berth does not re-hash on every pull).
    let output = berth.cli_output(&["scrub"]);
    assert_eq!(output.status.code(), Some(1), "a quarantine is reported");
    let report = json(&output);
    assert_eq!(report["quarantined"][0][0], layer.as_str(), "{report}");

    for method in [reqwest::Method::GET, reqwest::Method::HEAD] {
        let response = client
            .request(
                method.clone(),
                berth.url(&format!("/v2/scrub/app/blobs/{layer}")),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{method} of a quarantined blob");
    }
    // The manifest still names it; a client pushing the image again heals it.
    push_blob(&client, &berth, "scrub/app", original).await;
    let healed = client
        .get(berth.url(&format!("/v2/scrub/app/blobs/{layer}")))
        .send()
        .await
        .unwrap();
    assert!(healed.bytes().await.unwrap() == original.as_slice());
    let again = berth.cli(&["scrub", "--older-than", "1h"]);
    assert_eq!(
        again["verified"], 1,
        "only the healed blob is due again: {again}"
    );
}

/// Pulls an image's manifest and blobs from `berth` and compares them with what was pushed.
async fn assert_pullable(berth: &Berth, repo: &str, image: &PushedImage) {
    let client = client();
    let manifest = client
        .get(berth.url(&format!("/v2/{repo}/manifests/v1")))
        .header("accept", crate::support::push::OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    assert_eq!(manifest.status(), 200, "{repo}");
    assert_eq!(manifest.bytes().await.unwrap(), image.manifest);
    for (digest, data) in &image.blobs {
        let blob = client
            .get(berth.url(&format!("/v2/{repo}/blobs/{digest}")))
            .send()
            .await
            .unwrap();
        assert_eq!(blob.status(), 200, "{repo}@{digest}");
        assert!(blob.bytes().await.unwrap() == data.as_slice());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_while_serving_then_restore_into_a_new_registry() {
    let berth = Berth::start();
    let client = client();
    let mut images = Vec::new();
    for i in 0..3u64 {
        images.push(push_image(&client, &berth, &format!("kept/app{i}"), "v1", 10 + i, 2).await);
    }
    let scratch = tempfile::tempdir().unwrap();
    let dest = scratch.path().join("backup");
    let dest_arg = dest.to_str().unwrap().to_string();

    // Pushes go on while the backup runs.
    let pusher = {
        let client = client.clone();
        let base = berth.base_url();
        tokio::spawn(async move {
            for i in 0..20u64 {
                let data = bytes(50_000, 100 + i);
                let response = client
                    .post(format!(
                        "{base}/v2/busy/app/blobs/uploads/?digest={}",
                        sha256(&data)
                    ))
                    .body(data)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 201);
            }
        })
    };
    let first = berth.cli(&["backup", &dest_arg, "--blobs"]);
    pusher.await.unwrap();
    assert!(first["blobs"].as_u64().unwrap() >= 9, "{first}");
    assert_eq!(first["copied"], first["blobs"], "{first}");
    assert!(dest.join("backup.json").is_file() && dest.join("database/berth.db").is_file());

    // Incremental: a second backup copies only what is new (the rest of the busy pushes, and
    // a new image's config and layers).
    images.push(push_image(&client, &berth, "kept/app3", "v1", 13, 2).await);
    let second = berth.cli(&["backup", &dest_arg, "--blobs"]);
    let (before, now) = (
        first["blobs"].as_u64().unwrap(),
        second["blobs"].as_u64().unwrap(),
    );
    assert_eq!(now, 3 * 3 + 20 + 3, "every blob pushed: {second}");
    assert_eq!(second["already_there"], before, "{second}");
    assert_eq!(second["copied"], now - before, "{second}");

    // Restore into a new data directory: database and blobs, verified.
    let restored_dir = scratch.path().join("restored");
    let restored = berth_cli_output_env(
        &restored_dir,
        &[],
        &["restore", &dest_arg, "--verify-content"],
        None,
    );
    assert!(
        restored.status.success(),
        "{}",
        String::from_utf8_lossy(&restored.stderr)
    );
    let report = json(&restored);
    assert_eq!(report["uploaded"], second["blobs"], "{report}");
    assert_eq!(report["problems"], serde_json::json!([]));
    let again = berth_cli_output_env(&restored_dir, &[], &["restore", &dest_arg], None);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("--force"),
        "an existing database is not overwritten silently"
    );

    let copy = Berth::builder().data(&restored_dir).start();
    for (i, image) in images.iter().enumerate() {
        assert_pullable(&copy, &format!("kept/app{i}"), image).await;
    }
    let fsck = copy.cli(&["fsck", "--verify-content"]);
    assert_eq!(fsck["problems"], serde_json::json!([]), "{fsck}");

    // A backup missing a blob's copy restores what it can and says what is missing.
    let lost = &images[0].blobs[1].0;
    std::fs::remove_file(
        dest.join("blobs/sha256")
            .join(lost.strip_prefix("sha256:").unwrap()),
    )
    .unwrap();
    let partial_dir = scratch.path().join("partial");
    let partial = berth_cli_output_env(&partial_dir, &[], &["restore", &dest_arg], None);
    assert_eq!(partial.status.code(), Some(1));
    let report = json(&partial);
    assert_eq!(report["problems"][0][0], lost.as_str(), "{report}");
}

fn psql(server: &PostgresServer, sql: &str) {
    let output = std::process::Command::new(tool("psql"))
        .args(["-v", "ON_ERROR_STOP=1", "-d"])
        .arg(server.url())
        .args(["-c", sql])
        .output()
        .expect("psql runs");
    assert!(
        output.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_and_restore_on_postgresql_with_pg_dump_and_a_logical_export() {
    let database = PostgresServer::start();
    let data = tempfile::tempdir().unwrap();
    fn env(url: &str) -> [(&str, &str); 1] {
        [("BERTH_DATABASE_URL", url)]
    }
    let berth = Berth::builder()
        .data(data.path())
        .env("BERTH_DATABASE_URL", &database.url())
        .start();
    let client = client();
    let image = push_image(&client, &berth, "pg/app", "v1", 20, 2).await;
    let scratch = tempfile::tempdir().unwrap();

    for (format, name) in [("pg-dump", "viadump"), ("logical", "vialogical")] {
        let dest = scratch.path().join(format);
        let dest = dest.to_str().unwrap();
        let saved = berth_cli_output_env(
            data.path(),
            &env(&database.url()),
            &["backup", dest, "--postgres-format", format],
            None,
        );
        assert!(
            saved.status.success(),
            "{}",
            String::from_utf8_lossy(&saved.stderr)
        );
        let info: Value =
            serde_json::from_slice(&std::fs::read(Path::new(dest).join("backup.json")).unwrap())
                .unwrap();
        assert_eq!(info["database"]["kind"], format, "{info}");

        psql(&database, &format!("CREATE DATABASE {name}"));
        let target = database.url().replace("/postgres", &format!("/{name}"));
        let restored = berth_cli_output_env(data.path(), &env(&target), &["restore", dest], None);
        assert!(
            restored.status.success(),
            "{format}: {}{}",
            String::from_utf8_lossy(&restored.stdout),
            String::from_utf8_lossy(&restored.stderr)
        );
        let report = json(&restored);
        assert_eq!(
            report["present"], 3,
            "the blobs were in the store: {report}"
        );

        // Into a database that is not empty, a restore refuses.
        let refused = berth_cli_output_env(data.path(), &env(&target), &["restore", dest], None);
        assert_eq!(refused.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&refused.stderr).contains("not empty"));

        let copy = Berth::builder()
            .data(data.path())
            .env("BERTH_DATABASE_URL", &target)
            .start();
        assert_pullable(&copy, "pg/app", &image).await;
        // Identity sequences continue after the restored rows.
        let more = push_image(&client, &copy, "pg/more", "v1", 21, 1).await;
        assert_pullable(&copy, "pg/more", &more).await;
    }
}
