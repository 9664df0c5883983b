//! Events and webhooks end to end: a real HTTP receiver started here hears what real clients
//! do; registry:2's notification envelope is compared field by field with what Debian's
//! docker-registry sends for the same push; deliveries survive `kill -9`, wait out a receiver
//! that is down (in order) and become dead letters that can be replayed; bad webhook
//! configuration stops startup with the key's path; polling with HEAD under token auth does
//! not flood the audit log.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::support::clients::{Sandbox, run, umoci_layer};
use crate::support::official_registry::OfficialRegistry;
use crate::support::push::push_image;
use crate::support::receiver::{Answer, Received, Receiver};
use crate::support::{Berth, berth_cli, berth_cli_output, bytes, client};

const SECRET: &str = "a shared secret for signatures";

/// A berth whose configuration file is `yaml`.
fn berth_with_config(yaml: &str) -> (Berth, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.yml");
    std::fs::write(&file, yaml).unwrap();
    let berth = Berth::builder()
        .env("REGISTRY_STORAGE_DELETE_ENABLED", "true")
        .arg(file.to_str().unwrap())
        .start();
    (berth, dir)
}

fn webhook_config(url: &str, extra: &str) -> String {
    format!("webhooks:\n  ci:\n    url: {url}\n    secret: {SECRET}\n{extra}")
}

fn kinds(received: &[Received]) -> Vec<String> {
    received
        .iter()
        .map(|r| r.json()["type"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn of_kind<'a>(received: &'a [Received], kind: &str) -> Vec<&'a Received> {
    received
        .iter()
        .filter(|r| r.json()["type"] == format!("dev.berth.{kind}"))
        .collect()
}

#[tokio::test]
async fn pushes_tags_and_deletes_reach_a_configured_webhook_signed() {
    let receiver = Receiver::start().await;
    let (berth, _dir) = berth_with_config(&webhook_config(&receiver.url(), ""));
    let client = client();
    let v1 = push_image(&client, &berth, "hooked/app", "v1", 1, 1).await;
    let v2 = push_image(&client, &berth, "hooked/app", "v1", 2, 1).await;
    let response = client
        .delete(berth.url("/v2/hooked/app/manifests/v1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);

    let received = receiver
        .wait_for(Duration::from_secs(20), "the tag deletion", |r| {
            !of_kind(r, "tag.deleted").is_empty()
        })
        .await;
    let pushed = of_kind(&received, "manifest.pushed");
    assert_eq!(pushed.len(), 2);
    assert_eq!(pushed[0].json()["data"]["digest"], v1.digest);
    assert_eq!(pushed[1].json()["data"]["digest"], v2.digest);
    assert_eq!(pushed[0].json()["subject"], "hooked/app:v1");
    let created = of_kind(&received, "tag.created");
    assert_eq!(created.len(), 1);
    let moved = of_kind(&received, "tag.moved");
    assert_eq!(moved.len(), 1);
    assert_eq!(moved[0].json()["data"]["previous"], v1.digest);
    assert_eq!(moved[0].json()["data"]["digest"], v2.digest);
    let deleted = of_kind(&received, "tag.deleted");
    assert_eq!(deleted[0].json()["data"]["digest"], v2.digest);
    assert_eq!(of_kind(&received, "repository.created").len(), 1);
    assert!(
        of_kind(&received, "manifest.pulled").is_empty(),
        "pulls are opt-in"
    );

    for event in &received {
        assert_eq!(
            event.headers["content-type"],
            "application/cloudevents+json"
        );
        let id = event.headers["webhook-id"].to_str().unwrap();
        let timestamp = event.headers["webhook-timestamp"].to_str().unwrap();
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(format!("{id}.{timestamp}.{}", event.body).as_bytes());
        let expected = data_encoding::BASE64.encode(&mac.finalize().into_bytes());
        assert_eq!(
            event.headers["webhook-signature"].to_str().unwrap(),
            format!("v1,{expected}")
        );
        assert_eq!(event.json()["id"], id, "the webhook id is the event's id");
    }
}

#[tokio::test]
async fn pull_events_go_only_to_webhooks_that_ask_for_them() {
    let pulls = Receiver::start().await;
    let changes = Receiver::start().await;
    let yaml = format!(
        "webhooks:\n  pulls:\n    url: {}\n    events: [manifest.pulled]\n    repositories: ['public/**']\n  changes:\n    url: {}\n",
        pulls.url(),
        changes.url()
    );
    let (berth, _dir) = berth_with_config(&yaml);
    let client = client();
    for repo in ["public/app", "private/app"] {
        push_image(&client, &berth, repo, "v1", 5, 1).await;
        let response = client
            .get(berth.url(&format!("/v2/{repo}/manifests/v1")))
            .header("accept", "application/vnd.oci.image.manifest.v1+json")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let heard = pulls
        .wait_for(Duration::from_secs(20), "a pull", |r| !r.is_empty())
        .await;
    changes
        .wait_for(Duration::from_secs(20), "both pushes", |r| {
            of_kind(r, "manifest.pushed").len() == 2
        })
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let heard_all = pulls.received();
    assert_eq!(heard_all.len(), 1, "{:?}", kinds(&heard_all));
    assert_eq!(heard[0].json()["data"]["repository"], "public/app");
    assert!(of_kind(&changes.received(), "manifest.pulled").is_empty());
}

/// The fields of registry:2's envelope that describe the event itself (ids, times and
/// addresses differ between two servers).
fn envelope_fields(event: &Value) -> BTreeMap<String, String> {
    let mut fields = BTreeMap::new();
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    fields.insert("action".into(), text(&event["action"]));
    for key in [
        "mediaType",
        "size",
        "digest",
        "length",
        "repository",
        "tag",
        "fromRepository",
    ] {
        if let Some(value) = event["target"].get(key) {
            fields.insert(format!("target.{key}"), text(value));
        }
    }
    if let Some(url) = event["target"]["url"].as_str() {
        let path = url.splitn(4, '/').nth(3).unwrap_or_default();
        fields.insert("target.url path".into(), format!("/{path}"));
    }
    for key in ["method", "useragent"] {
        fields.insert(format!("request.{key}"), text(&event["request"][key]));
    }
    for key in ["id", "addr", "host"] {
        fields.insert(
            format!("request.{key} present"),
            event["request"][key].is_string().to_string(),
        );
    }
    fields.insert(
        "source keys".into(),
        event["source"]
            .as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>().join(","))
            .unwrap_or_default(),
    );
    fields.insert("actor".into(), event["actor"].to_string());
    fields.insert("id present".into(), event["id"].is_string().to_string());
    fields.insert(
        "timestamp present".into(),
        event["timestamp"].is_string().to_string(),
    );
    fields
}

fn events_of(received: &[Received]) -> Vec<Value> {
    received
        .iter()
        .flat_map(|r| {
            assert_eq!(
                r.headers["content-type"],
                "application/vnd.docker.distribution.events.v1+json"
            );
            r.json()["events"].as_array().cloned().unwrap_or_default()
        })
        .collect()
}

#[tokio::test]
async fn the_distribution_envelope_matches_the_official_registry() {
    let for_official = Receiver::start().await;
    let for_berth = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let storage = format!(
        "  filesystem:\n    rootdirectory: {}\n",
        dir.path().join("storage").display()
    );
    let official = OfficialRegistry::start_configured(
        dir.path(),
        &storage,
        None,
        &format!(
            "notifications:\n  endpoints:\n    - name: test\n      url: {}\n      timeout: 1s\n      threshold: 3\n      backoff: 1s\n",
            for_official.url()
        ),
    );
    let (berth, _config) = berth_with_config(&format!(
        "notifications:\n  endpoints:\n    - name: test\n      url: {}\n      timeout: 1s\n      threshold: 3\n      backoff: 1s\n",
        for_berth.url()
    ));

    // One image, built with umoci, pushed by skopeo to both.
    let sandbox = Sandbox::new();
    let layout = sandbox.path("layout");
    run(sandbox.umoci().args(["init", "--layout"]).arg(&layout)).await;
    let image = format!("{}:v1", layout.display());
    run(sandbox.umoci().args(["new", "--image", &image])).await;
    umoci_layer(&sandbox, &image, "bundle", &[("hello.txt", bytes(3000, 9))]).await;
    for host in [official.host().to_string(), berth.host()] {
        run(sandbox.skopeo().args([
            "copy",
            "--dest-tls-verify=false",
            &format!("oci:{image}"),
            &format!("docker://{host}/envelope/app:v1"),
        ]))
        .await;
    }
    let is_manifest_push = |events: &[Value]| {
        events.iter().any(|e| {
            e["action"] == "push" && e["target"]["mediaType"] != "application/octet-stream"
        })
    };
    let official_events = events_of(
        &for_official
            .wait_for(
                Duration::from_secs(30),
                "the official registry's manifest push",
                |r| is_manifest_push(&events_of(r)),
            )
            .await,
    );
    let berth_events = events_of(
        &for_berth
            .wait_for(Duration::from_secs(30), "berth's manifest push", |r| {
                is_manifest_push(&events_of(r))
            })
            .await,
    );
    let described = |events: &[Value]| -> BTreeSet<BTreeMap<String, String>> {
        events.iter().map(envelope_fields).collect()
    };
    let official_set = described(&official_events);
    let berth_set = described(&berth_events);
    let manifest_push = |set: &BTreeSet<BTreeMap<String, String>>| {
        set.iter()
            .find(|f| f["action"] == "push" && f["target.mediaType"] != "application/octet-stream")
            .cloned()
            .unwrap()
    };
    assert_eq!(manifest_push(&berth_set), manifest_push(&official_set));
    // Every blob push the official registry reported, berth reported the same way.
    let blob_pushes =
        |set: &BTreeSet<BTreeMap<String, String>>| -> BTreeSet<BTreeMap<String, String>> {
            set.iter()
                .filter(|f| {
                    f["action"] == "push" && f["target.mediaType"] == "application/octet-stream"
                })
                .cloned()
                .collect()
        };
    assert_eq!(blob_pushes(&berth_set), blob_pushes(&official_set));
    assert_eq!(
        berth_events[0]["source"]["addr"]
            .as_str()
            .unwrap()
            .split(':')
            .nth(1)
            .unwrap(),
        berth.host().split(':').nth(1).unwrap()
    );
}

#[tokio::test]
async fn a_receiver_that_was_down_gets_everything_in_order() {
    let receiver = Receiver::start().await;
    receiver.answer(Answer::Fail);
    let (berth, _dir) = berth_with_config(&webhook_config(
        &receiver.url(),
        "    events: [manifest.pushed]\n    backoff: 200ms\n    maxbackoff: 1s\n",
    ));
    let client = client();
    let mut digests = Vec::new();
    for i in 0..6 {
        digests.push(
            push_image(&client, &berth, "ordered/app", &format!("v{i}"), 10 + i, 1)
                .await
                .digest,
        );
    }
    // Failing: retried with backoff, nothing accepted.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(receiver.attempts() >= 2, "retried while failing");
    assert!(receiver.received().is_empty());
    receiver.answer(Answer::Accept);
    let received = receiver
        .wait_for(Duration::from_secs(30), "all six pushes", |r| r.len() >= 6)
        .await;
    let delivered: Vec<String> = received
        .iter()
        .map(|r| r.json()["data"]["digest"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(delivered, digests, "delivered once each, in commit order");
}

#[tokio::test]
async fn events_past_their_maximum_age_are_dead_letters_that_the_cli_replays() {
    let receiver = Receiver::start().await;
    receiver.answer(Answer::Fail);
    let (mut berth, dir) = berth_with_config(&webhook_config(
        &receiver.url(),
        "    events: [manifest.pushed]\n    backoff: 100ms\n    maxage: 1s\n",
    ));
    let client = client();
    let image = push_image(&client, &berth, "dead/app", "v1", 20, 1).await;
    let config = dir.path().join("config.yml");
    let cli = |args: &[&str]| {
        let mut all = vec!["webhook"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--config", config.to_str().unwrap()]);
        all.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let data = berth.data_dir().to_path_buf();
    let deadline = Instant::now() + Duration::from_secs(20);
    let dead = loop {
        let args = cli(&["dead-letters", "ci"]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let dead = berth_cli(&data, &args);
        if !dead.as_array().unwrap().is_empty() {
            break dead;
        }
        assert!(Instant::now() < deadline, "no dead letter appeared");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(dead[0]["event"], "manifest.pushed");
    assert_eq!(dead[0]["last_error"], "HTTP 500");
    assert!(dead[0]["attempts"].as_u64().unwrap() >= 2);

    receiver.answer(Answer::Accept);
    let args = cli(&["replay", "ci"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let replayed = berth_cli(&data, &args);
    assert!(
        replayed["message"]
            .as_str()
            .unwrap()
            .starts_with("1 dead letters")
    );
    let received = receiver
        .wait_for(Duration::from_secs(20), "the replayed push", |r| {
            !r.is_empty()
        })
        .await;
    assert_eq!(received[0].json()["data"]["digest"], image.digest);
    let args = cli(&["deliveries", "ci"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let log = berth_cli(&data, &args);
    assert_eq!(log[0]["status"], 204, "{log}");
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .any(|d| d["error"] == "HTTP 500")
    );
    berth.terminate();
}

#[tokio::test]
async fn every_acknowledged_push_is_delivered_across_kill_9() {
    let receiver = Receiver::start().await;
    let (mut berth, _dir) = berth_with_config(&webhook_config(
        &receiver.url(),
        "    events: [manifest.pushed]\n    backoff: 100ms\n    maxbackoff: 500ms\n",
    ));
    let client = client();
    // Each 201 is recorded as it arrives, so pushes acknowledged before a kill count even
    // when the kill cuts the round short.
    let acknowledged: std::cell::RefCell<BTreeSet<String>> = Default::default();
    let attempted = std::cell::Cell::new(0usize);
    for round in 0..5u64 {
        // Pushes race a kill: some are acknowledged, one may be cut off.
        let pushes = async {
            for i in 0..40u64 {
                attempted.set(attempted.get() + 1);
                let tag = format!("r{round}-{i}");
                let config = format!("{{\"round\":{round},\"i\":{i}}}");
                let config_digest = crate::support::push::push_blob(
                    &client,
                    &berth,
                    "crash/app",
                    config.as_bytes(),
                )
                .await;
                let manifest = crate::support::push::image_manifest(
                    &(config_digest, config.into_bytes()),
                    &[],
                );
                let response = crate::support::push::put_manifest(
                    &client,
                    &berth,
                    "crash/app",
                    &tag,
                    crate::support::push::OCI_MANIFEST,
                    &manifest,
                )
                .await;
                if response.status() == 201 {
                    acknowledged
                        .borrow_mut()
                        .insert(crate::support::sha256(&manifest));
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_millis(1000 + round * 250), pushes).await;
        berth.kill9();
        berth.restart();
    }
    let acknowledged = acknowledged.into_inner();
    let attempted = attempted.get();
    // Pushes cut off by a kill were never acknowledged; those the timeout cut short were
    // acknowledged or not, and either way must not be missing if acknowledged. Count what the
    // receiver hears against what was acknowledged.
    let received = receiver
        .wait_for(Duration::from_secs(60), "every acknowledged push", |r| {
            let heard: BTreeSet<String> = r
                .iter()
                .map(|e| {
                    e.json()["data"]["digest"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string()
                })
                .collect();
            acknowledged.is_subset(&heard)
        })
        .await;
    let mut per_event: BTreeMap<String, usize> = BTreeMap::new();
    for event in &received {
        *per_event
            .entry(event.json()["id"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    let duplicates: usize = per_event.values().map(|n| n - 1).sum();
    eprintln!(
        "kill -9 loop: {attempted} pushes attempted, {} acknowledged and all delivered; {} deliveries, {duplicates} duplicate (at-least-once retries)",
        acknowledged.len(),
        received.len()
    );
    assert!(!acknowledged.is_empty());
}

#[tokio::test]
async fn invalid_webhook_configuration_stops_startup_with_the_key_path() {
    let dir = tempfile::tempdir().unwrap();
    for (yaml, expected) in [
        (
            "webhooks:\n  ci:\n    url: http://127.0.0.1:9/x\n    events: [manifest.eaten]\n",
            "webhooks.ci.events",
        ),
        (
            "webhooks:\n  ci:\n    url: ftp://example.com/x\n",
            "webhooks.ci.url",
        ),
        (
            "webhooks:\n  ci:\n    url: http://127.0.0.1:9/x\n    secret: short\n",
            "webhooks.ci.secret",
        ),
        (
            "notifications:\n  endpoints:\n    - name: a\n      url: http://127.0.0.1:9/x\n      timeuot: 1s\n",
            "notifications.endpoints[0].timeuot",
        ),
    ] {
        let file = dir.path().join("config.yml");
        std::fs::write(&file, yaml).unwrap();
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
            .args([
                "serve",
                file.to_str().unwrap(),
                "--addr",
                "127.0.0.1:0",
                "--data",
            ])
            .arg(dir.path())
            .env("REGISTRY_AUTH", "none")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(!output.status.success(), "{yaml}");
        assert!(
            stderr.contains(expected) || stdout.contains(expected),
            "{yaml}: expected {expected} in\n{stderr}{stdout}"
        );
    }
}

#[tokio::test]
async fn polling_with_head_under_token_auth_writes_few_audit_rows() {
    let data = tempfile::tempdir().unwrap();
    let output = berth_cli_output(
        data.path(),
        &["user", "add", "poller", "--password-stdin"],
        Some("poller password"),
    );
    assert!(output.status.success());
    berth_cli(
        data.path(),
        &["policy", "add", "user:poller", "poll/**", "push"],
    );
    let mut berth = Berth::builder()
        .env("REGISTRY_AUTH", "berth")
        .data(data.path())
        .start();
    let client = client();
    const IMAGES: usize = 20;
    const ROUNDS: usize = 25;
    let mut tokens = Vec::new();
    for i in 0..IMAGES {
        let repo = format!("poll/app{i}");
        let token: Value = client
            .get(berth.url("/token"))
            .query(&[
                ("service", "berth"),
                ("scope", &format!("repository:{repo}:pull,push")),
            ])
            .basic_auth("poller", Some("poller password"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = token["token"].as_str().unwrap().to_string();
        let blob = bytes(100, i as u64);
        let digest = crate::support::sha256(&blob);
        let response = client
            .post(berth.url(&format!("/v2/{repo}/blobs/uploads/?digest={digest}")))
            .bearer_auth(&token)
            .body(blob.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let manifest = crate::support::push::image_manifest(&(digest, blob), &[]);
        let response = client
            .put(berth.url(&format!("/v2/{repo}/manifests/latest")))
            .bearer_auth(&token)
            .header("content-type", crate::support::push::OCI_MANIFEST)
            .body(manifest)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        tokens.push((repo, token));
    }
    for _ in 0..ROUNDS {
        for (repo, token) in &tokens {
            let response = client
                .head(berth.url(&format!("/v2/{repo}/manifests/latest")))
                .bearer_auth(token)
                .header("accept", crate::support::push::OCI_MANIFEST)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
        }
    }
    assert!(berth.terminate().success());
    let audit = berth_cli(data.path(), &["audit", "list", "--limit", "1000"]);
    let pulls: Vec<&Value> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "pull" && e["outcome"] == "allowed")
        .collect();
    let counted: i64 = pulls.iter().map(|e| e["count"].as_i64().unwrap()).sum();
    assert!(
        counted >= (IMAGES * ROUNDS) as i64,
        "every HEAD is counted ({counted})"
    );
    assert!(
        pulls.len() <= 2 * IMAGES,
        "{} HEAD requests wrote {} audit rows",
        IMAGES * ROUNDS,
        pulls.len()
    );
}
