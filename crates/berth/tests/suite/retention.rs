//! Retention: rules keep the newest pushed, the most recently pulled and named tags; a run
//! untags the rest (never by digest: another tag of the same manifest still pulls), leaves
//! immutable tags alone, and removes exactly what its dry run listed.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::clients::{Sandbox, skopeo_tags};
use crate::support::push::{OCI_MANIFEST, push_image, put_manifest};
use crate::support::{Berth, client};

/// Tags a retention report removes, as `repository:tag`.
fn removed(report: &Value) -> BTreeSet<String> {
    let mut removed = BTreeSet::new();
    for (name, outcome) in report["repositories"].as_object().unwrap() {
        for tag in outcome["removed"].as_array().unwrap() {
            removed.insert(format!("{name}:{}", tag["tag"].as_str().unwrap()));
        }
    }
    removed
}

#[tokio::test]
async fn a_run_untags_exactly_what_its_dry_run_listed_and_keeps_pulled_pushed_named_and_immutable_tags()
 {
    let berth = Berth::start();
    let http = client();
    let sandbox = Sandbox::new();
    let shared = push_image(&http, &berth, "ret/app", "old-1", 1, 1).await;
    let response = put_manifest(
        &http,
        &berth,
        "ret/app",
        "keep-me",
        OCI_MANIFEST,
        &shared.manifest,
    )
    .await;
    assert_eq!(response.status(), 201);
    push_image(&http, &berth, "ret/app", "frozen-1", 2, 1).await;
    for (seed, tag) in (3..).zip(["t1", "t2", "t3", "t4"]) {
        push_image(&http, &berth, "ret/app", tag, seed, 1).await;
        // Push times are milliseconds: keep them apart.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    push_image(&http, &berth, "other/app", "t1", 9, 1).await;
    // t1 is the most recently pulled tag.
    let pulled = http
        .get(berth.url("/v2/ret/app/manifests/t1"))
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    assert_eq!(pulled.status(), 200);

    berth.cli(&["immutable-tags", "add", "ret/**", "frozen-*"]);
    let rule = berth.cli(&[
        "retention",
        "add",
        "ret/**",
        "--keep-last-pushed",
        "1",
        "--keep-last-pulled",
        "1",
        "--keep-tag",
        "keep-*",
    ]);
    assert_eq!(rule[0]["keep_tags"], serde_json::json!(["keep-*"]));

    let expected: BTreeSet<String> = ["ret/app:old-1", "ret/app:t2", "ret/app:t3"]
        .map(String::from)
        .into();
    // Pull statistics reach the database within seconds (the pull-stats job).
    let deadline = Instant::now() + Duration::from_secs(60);
    let dry = loop {
        let dry = berth.cli(&["retention", "run", "--dry-run"]);
        if removed(&dry) == expected || Instant::now() > deadline {
            break dry;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(removed(&dry), expected, "{dry}");
    assert_eq!(
        dry["repositories"]["ret/app"]["kept_immutable"],
        serde_json::json!(["frozen-1"])
    );
    assert!(
        dry["repositories"].get("other/app").is_none(),
        "no rule matches other/app"
    );
    assert_eq!(
        skopeo_tags(&sandbox, &format!("{}/ret/app", berth.host()))
            .await
            .len(),
        7,
        "a dry run changes nothing"
    );

    let real = berth.cli(&["retention", "run"]);
    assert_eq!(
        real["repositories"], dry["repositories"],
        "the run removed what was listed"
    );
    assert_eq!(real["removed"], 3);
    let mut left = skopeo_tags(&sandbox, &format!("{}/ret/app", berth.host())).await;
    left.sort();
    assert_eq!(left, ["frozen-1", "keep-me", "t1", "t4"]);
    let kept = http
        .get(berth.url("/v2/ret/app/manifests/keep-me"))
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    assert_eq!(
        kept.bytes().await.unwrap().to_vec(),
        shared.manifest,
        "the manifest old-1 shared with keep-me is still there"
    );
    assert_eq!(
        skopeo_tags(&sandbox, &format!("{}/other/app", berth.host())).await,
        ["t1"]
    );

    // The run is in the audit log with its summary.
    let audit = berth.cli(&["audit", "list"]);
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["target"] == "retention"
                && e["detail"].as_str().unwrap().starts_with("untagged 3 tags")),
        "{audit}"
    );
}

#[test]
fn invalid_retention_rules_are_refused_with_the_field_named() {
    let berth = Berth::start();
    for (args, field) in [
        (&["ret/**"][..], "must keep something"),
        (&["Ret", "--keep-last-pushed", "1"][..], "repositories:"),
        (&["ret/**", "--keep-tag", "a/b"][..], "keep_tags:"),
        (
            &["ret/**", "--keep-pushed-within", "forever"][..],
            "keep_pushed_within:",
        ),
        (
            &["ret/**", "--keep-tag-regex", "v("][..],
            "keep_tags_regex:",
        ),
    ] {
        let mut all = vec!["retention", "add"];
        all.extend_from_slice(args);
        let output = berth.cli_output(&all);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?}");
        assert!(stderr.contains(field), "{args:?}: {stderr}");
    }
    let negative = berth.cli_output(&["retention", "add", "ret/**", "--keep-last-pushed", "-1"]);
    assert!(!negative.status.success(), "a negative count");
    assert_eq!(berth.cli(&["retention", "list"]), serde_json::json!([]));
}

#[tokio::test]
async fn regex_rules_and_rules_from_the_configuration_file_keep_tags_alongside_database_rules() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yml");
    std::fs::write(
        &config,
        "retention:\n  rules:\n    - repositories: conf/**\n      keeptagsregex: ['^release-[0-9]+$']\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let berth = Berth::builder().arg(config).start();
    let http = client();
    for (seed, tag) in (1..).zip(["release-1", "release-x", "v2", "v10", "latest"]) {
        push_image(&http, &berth, "conf/app", tag, seed, 1).await;
    }
    // A database rule with a regular expression beside the file's rule.
    let added = berth.cli(&[
        "retention",
        "add",
        "conf/**",
        "--keep-tag-regex",
        "^v[0-9]+$",
    ]);
    assert_eq!(
        added[0]["keep_tags_regex"],
        serde_json::json!(["^v[0-9]+$"])
    );
    let listed = berth.cli(&["retention", "list", "--config", config]);
    let sources: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["source"].as_str().unwrap())
        .collect();
    assert_eq!(sources, ["database", "config"], "{listed}");
    assert_eq!(listed[1]["id"], -1);

    let report = berth.cli(&["retention", "run", "--config", config]);
    let expected: BTreeSet<String> = ["conf/app:latest", "conf/app:release-x"]
        .map(String::from)
        .into();
    assert_eq!(removed(&report), expected, "{report}");
    // The file's rules are changed in the file only.
    let refused = berth.cli_output(&["retention", "remove", "-1", "--config", config]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("retention.rules[0]"),
        "{refused:?}"
    );
}

#[test]
fn a_bad_rule_in_the_configuration_file_refuses_to_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yml");
    std::fs::write(
        &config,
        "retention:\n  rules:\n    - repositories: ci/**\n      keeptagsregex: ['v(']\n",
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["serve", "--data"])
        .arg(dir.path())
        .arg(&config)
        .output()
        .unwrap();
    assert!(!output.status.success(), "berth started");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("retention.rules[0].keeptagsregex[0]")
            && stderr.contains("not a regular expression"),
        "{stderr}"
    );
}

#[tokio::test]
async fn one_real_retention_run_at_a_time_across_instances_and_dry_runs_need_no_turn() {
    use berth_meta::Leases;
    let berth = Berth::start();
    let http = client();
    push_image(&http, &berth, "lease/app", "old", 1, 1).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    push_image(&http, &berth, "lease/app", "new", 2, 1).await;
    berth.cli(&["retention", "add", "lease/**", "--keep-last-pushed", "1"]);
    let expected: BTreeSet<String> = ["lease/app:old".to_string()].into();

    // Another instance holds the lease: a real run is refused and changes nothing.
    let store = berth_meta::SqliteStore::open(&berth.data_dir().join("berth.db"))
        .await
        .unwrap();
    assert!(
        store
            .try_lease("retention", "another-instance", 60_000)
            .await
            .unwrap()
    );
    let busy = berth.cli_output(&["retention", "run"]);
    assert!(!busy.status.success());
    assert!(
        String::from_utf8_lossy(&busy.stderr).contains("already under way on another instance"),
        "{busy:?}"
    );
    let dry = berth.cli(&["retention", "run", "--dry-run"]);
    assert_eq!(removed(&dry), expected, "{dry}");

    // Its turn over, the run goes ahead.
    store
        .release_lease("retention", "another-instance")
        .await
        .unwrap();
    let real = berth.cli(&["retention", "run"]);
    assert_eq!(removed(&real), expected, "{real}");
}
