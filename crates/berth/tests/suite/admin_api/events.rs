//! Webhooks and jobs through the admin API.

use super::*;

/// Webhooks and jobs through the API: made, shown (secret redacted), tested against a real
/// receiver, delivered to, logged, replaced, deleted; jobs listed and run.
pub(super) async fn webhooks_and_jobs(api: &Api) {
    let receiver = Receiver::start().await;
    let created = api
        .ok(
            Method::POST,
            "/api/v1/webhooks",
            &[],
            Some(json!({
                "name": "ci",
                "url": receiver.url(),
                "events": ["manifest.pushed", "webhook.test"],
                "secret": "a secret of sixteen+",
            })),
        )
        .await;
    assert_eq!(created["source"], "api");
    assert_eq!(created["secret"], "(set)");
    assert_eq!(created["format"], "cloudevents");
    api.refused(
        Method::POST,
        "/api/v1/webhooks",
        &[],
        Some(json!({"name": "ci", "url": receiver.url()})),
        409,
        "CONFLICT",
    )
    .await;
    api.refused(
        Method::POST,
        "/api/v1/webhooks",
        &[],
        Some(json!({"name": "bad", "url": "ftp://example.com/x"})),
        400,
        "INVALID",
    )
    .await;
    let listed = api.ok(Method::GET, "/api/v1/webhooks", &[], None).await;
    assert!(listed.as_array().unwrap().iter().any(|w| w["name"] == "ci"));
    let shown = api
        .ok(Method::GET, "/api/v1/webhooks/{name}", &["ci"], None)
        .await;
    assert_eq!(shown["url"], receiver.url());

    let tested = api
        .ok(Method::POST, "/api/v1/webhooks/{name}/test", &["ci"], None)
        .await;
    assert_eq!(tested["delivered"], true, "{tested}");
    assert_eq!(tested["status"], 204);
    let test_event = receiver
        .wait_for(Duration::from_secs(5), "the test event", |r| !r.is_empty())
        .await;
    assert_eq!(test_event[0].json()["type"], "dev.berth.webhook.test");
    assert!(test_event[0].headers.contains_key("webhook-signature"));

    // A push reaches it through the outbox, and the attempt is in its delivery log.
    let root = reqwest::Client::builder()
        .default_headers(
            [(
                reqwest::header::AUTHORIZATION,
                format!(
                    "Basic {}",
                    data_encoding::BASE64.encode(format!("root:{ADMIN_PASSWORD}").as_bytes())
                )
                .parse()
                .unwrap(),
            )]
            .into_iter()
            .collect(),
        )
        .build()
        .unwrap();
    let image = push_image(&root, &api.berth, "hooks/app", "v1", 3, 1).await;
    let pushes = receiver
        .wait_for(Duration::from_secs(20), "the push", |r| {
            r.iter()
                .any(|e| e.json()["type"] == "dev.berth.manifest.pushed")
        })
        .await;
    let push = pushes
        .iter()
        .find(|e| e.json()["type"] == "dev.berth.manifest.pushed")
        .unwrap()
        .json();
    assert_eq!(push["data"]["digest"], image.digest);

    // The pushed layer's record: size, the repository holding it, no content id (IPFS
    // stores have one), not quarantined.
    let (layer, data) = &image.blobs[1];
    let blob = api
        .ok(Method::GET, "/api/v1/blobs/{digest}", &[layer], None)
        .await;
    assert_eq!(blob["digest"], layer.as_str());
    assert_eq!(blob["size"], data.len());
    assert_eq!(blob["repositories"], json!(["hooks/app"]));
    assert_eq!(blob["cid"], Value::Null);
    assert_eq!(blob["quarantined"], false);
    api.refused(
        Method::GET,
        "/api/v1/blobs/{digest}",
        &["sha256:0000"],
        None,
        400,
        "INVALID",
    )
    .await;
    api.refused(
        Method::GET,
        "/api/v1/blobs/{digest}",
        &[&sha256(b"never pushed")],
        None,
        404,
        "NOT_FOUND",
    )
    .await;

    // Tag history and restore (GC and expiry: the `tag_history` suite). A push moves v1.
    push_image(&root, &api.berth, "hooks/app", "v1", 4, 1).await;
    let history = api
        .ok(
            Method::GET,
            "/api/v1/tags/history?repository=hooks/app&tag=v1",
            &[],
            None,
        )
        .await;
    assert_eq!(history[0]["digest"], image.digest.as_str(), "{history}");
    assert_eq!(history[0]["reason"], "moved");
    assert_eq!(history[0]["restorable"], true);
    let restored = api
        .ok(
            Method::POST,
            "/api/v1/tags/restore",
            &[],
            Some(json!({"repository": "hooks/app", "tag": "v1"})),
        )
        .await;
    assert_eq!(restored["digest"], image.digest.as_str());
    api.refused(
        Method::POST,
        "/api/v1/tags/restore",
        &[],
        Some(json!({"repository": "hooks/app", "tag": "never"})),
        404,
        "NOT_FOUND",
    )
    .await;
    api.refused(
        Method::POST,
        "/api/v1/tags/restore",
        &[],
        Some(json!({"repository": "Bad Name", "tag": "v1"})),
        400,
        "INVALID",
    )
    .await;
    api.refused(
        Method::GET,
        "/api/v1/tags/history",
        &[],
        None,
        400,
        "INVALID",
    )
    .await;
    let log = api
        .ok(
            Method::GET,
            "/api/v1/webhooks/{name}/deliveries",
            &["ci"],
            None,
        )
        .await;
    assert_eq!(log[0]["event"], "manifest.pushed");
    assert_eq!(log[0]["status"], 204);
    let dead = api
        .ok(
            Method::GET,
            "/api/v1/webhooks/{name}/dead-letters",
            &["ci"],
            None,
        )
        .await;
    assert_eq!(dead, json!([]));
    let replayed = api
        .ok(
            Method::POST,
            "/api/v1/webhooks/{name}/dead-letters/replay",
            &["ci"],
            Some(json!({})),
        )
        .await;
    assert_eq!(replayed["replayed"], 0);

    let replaced = api
        .ok(
            Method::PUT,
            "/api/v1/webhooks/{name}",
            &["ci"],
            Some(json!({"url": receiver.url(), "format": "slack"})),
        )
        .await;
    assert_eq!(replaced["format"], "slack");
    api.ok(Method::DELETE, "/api/v1/webhooks/{name}", &["ci"], None)
        .await;
    api.refused(
        Method::GET,
        "/api/v1/webhooks/{name}",
        &["ci"],
        None,
        404,
        "NOT_FOUND",
    )
    .await;

    let jobs = api.ok(Method::GET, "/api/v1/jobs", &[], None).await;
    let names: Vec<&str> = jobs
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"webhook-delivery") && names.contains(&"upload-purge"),
        "{jobs}"
    );
    let run = api
        .ok(
            Method::POST,
            "/api/v1/jobs/{name}/run",
            &["upload-purge"],
            None,
        )
        .await;
    assert_eq!(run["succeeded"], true, "{run}");
    assert!(run["status"]["runs"].as_u64().unwrap() >= 1);
    api.refused(
        Method::POST,
        "/api/v1/jobs/{name}/run",
        &["no-such-job"],
        None,
        404,
        "NOT_FOUND",
    )
    .await;
    let audit = api.ok(Method::GET, "/api/v1/audit", &[], None).await;
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["target"] == "webhook:ci" && e["detail"] == "delete"),
        "webhook changes are audited: {audit}"
    );
}
