//! Garbage collection, tag immutability, retention and quotas through the admin API.

use super::*;

/// Garbage collection, immutability and retention rules, retention runs, quotas and usage.
pub(super) async fn collection_rules_retention_and_quotas(api: &Api) {
    // Garbage collection: a dry run reports and changes nothing; a real run starts in the
    // background and its record shows what it freed.
    let dry = api
        .ok(
            Method::POST,
            "/api/v1/gc",
            &[],
            Some(json!({"dry_run": true})),
        )
        .await;
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["run"], Value::Null);
    api.refused(
        Method::POST,
        "/api/v1/gc",
        &[],
        Some(json!({"dry_run": "yes"})),
        400,
        "INVALID",
    )
    .await;
    let started = api
        .ok(Method::POST, "/api/v1/gc", &[], Some(json!({})))
        .await;
    let run = started["run"].as_i64().unwrap().to_string();
    let record = loop {
        let record = api
            .ok(Method::GET, "/api/v1/gc/runs/{id}", &[&run], None)
            .await;
        if record["status"] != "running" {
            break record;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(record["status"], "finished", "{record}");
    assert_eq!(record["actor"], "user:root");
    assert_eq!(record["trigger"], "api");
    assert_eq!(record["report"]["phase"], "done");
    let runs = api.ok(Method::GET, "/api/v1/gc/runs", &[], None).await;
    assert_eq!(runs[0]["id"].to_string(), run);
    let status = api.ok(Method::GET, "/api/v1/gc", &[], None).await;
    assert_eq!(status["last"]["id"].to_string(), run);
    assert_eq!(status["running"], Value::Null);
    api.refused(
        Method::GET,
        "/api/v1/gc/runs/{id}",
        &["999999"],
        None,
        404,
        "NOT_FOUND",
    )
    .await;

    // Tag immutability rules: added once, refused when invalid, removed.
    let rule = api
        .ok(
            Method::POST,
            "/api/v1/immutable-tags",
            &[],
            Some(json!({"repositories": "frozen/**", "tags": "v*"})),
        )
        .await;
    assert_eq!(rule["repositories"], "frozen/**");
    assert_eq!(rule["created_by"], "user:root");
    for bad in [
        json!({"repositories": "Frozen", "tags": "v*"}),
        json!({"repositories": "frozen/**", "tags": "v/1"}),
        json!({"repositories": "frozen/**"}),
        json!({"repositories": "frozen/**", "tags": "v*", "extra": 1}),
    ] {
        api.refused(
            Method::POST,
            "/api/v1/immutable-tags",
            &[],
            Some(bad),
            400,
            "INVALID",
        )
        .await;
    }
    let rules = api
        .ok(Method::GET, "/api/v1/immutable-tags", &[], None)
        .await;
    assert_eq!(rules, json!([rule]));
    let id = rule["id"].to_string();
    api.ok(Method::DELETE, "/api/v1/immutable-tags/{id}", &[&id], None)
        .await;
    api.refused(
        Method::DELETE,
        "/api/v1/immutable-tags/{id}",
        &[&id],
        None,
        404,
        "NOT_FOUND",
    )
    .await;

    // Retention rules and runs (what runs untag: the `retention` suite).
    let rule = api
        .ok(
            Method::POST,
            "/api/v1/retention/rules",
            &[],
            Some(json!({"repositories": "ret/**", "keep_tags": ["keep-*"], "keep_pushed_within": "30d"})),
        )
        .await;
    assert_eq!(rule["keep_pushed_within"], "30days");
    for bad in [
        json!({"repositories": "ret/**"}),
        json!({"repositories": "ret/**", "keep_pushed_within": "soon"}),
        json!({"repositories": "ret/**", "keep_last_pushed": -1}),
    ] {
        api.refused(
            Method::POST,
            "/api/v1/retention/rules",
            &[],
            Some(bad),
            400,
            "INVALID",
        )
        .await;
    }
    assert_eq!(
        api.ok(Method::GET, "/api/v1/retention/rules", &[], None)
            .await,
        json!([rule])
    );
    let dry = api
        .ok(
            Method::POST,
            "/api/v1/retention/runs",
            &[],
            Some(json!({"dry_run": true})),
        )
        .await;
    assert_eq!(dry["dry_run"], true);
    let id = rule["id"].to_string();
    api.ok(Method::DELETE, "/api/v1/retention/rules/{id}", &[&id], None)
        .await;
    api.refused(
        Method::DELETE,
        "/api/v1/retention/rules/{id}",
        &[&id],
        None,
        404,
        "NOT_FOUND",
    )
    .await;
    api.ok(
        Method::POST,
        "/api/v1/retention/rules",
        &[],
        Some(json!({"repositories": "ret/**", "keep_tags": ["keep-*"]})),
    )
    .await;
    let dry = api
        .ok(
            Method::POST,
            "/api/v1/retention/runs",
            &[],
            Some(json!({"dry_run": true})),
        )
        .await;
    let real = api
        .ok(Method::POST, "/api/v1/retention/runs", &[], Some(json!({})))
        .await;
    assert_eq!(dry["repositories"], real["repositories"], "{dry} {real}");
    assert_eq!(real["dry_run"], false);

    // Quotas and usage (what they refuse: the `quotas` suite).
    let quota = api
        .ok(
            Method::PUT,
            "/api/v1/quotas",
            &[],
            Some(json!({"repositories": "quota-ns", "limit": "10MiB"})),
        )
        .await;
    assert_eq!(quota["repositories"], "quota-ns/**");
    assert_eq!(quota["namespace"], "quota-ns");
    assert_eq!(quota["limit_bytes"], 10 << 20);
    assert_eq!(quota["used_bytes"], 0);
    for bad in [
        json!({"repositories": "quota-ns", "limit": "ten"}),
        json!({"repositories": "quota-ns", "limit": "10 parsecs"}),
        json!({"repositories": "Bad Name", "limit": "1MiB"}),
        json!({"repositories": "quota-ns"}),
    ] {
        api.refused(
            Method::PUT,
            "/api/v1/quotas",
            &[],
            Some(bad),
            400,
            "INVALID",
        )
        .await;
    }
    assert_eq!(
        api.ok(Method::GET, "/api/v1/quotas", &[], None).await,
        json!([quota])
    );
    let usage = api.ok(Method::GET, "/api/v1/usage", &[], None).await;
    assert_eq!(usage["quotas"], json!([quota]));
    api.ok(
        Method::DELETE,
        "/api/v1/quotas/{repositories}",
        &["quota-ns"],
        None,
    )
    .await;
    api.refused(
        Method::DELETE,
        "/api/v1/quotas/{repositories}",
        &["quota-ns"],
        None,
        404,
        "NOT_FOUND",
    )
    .await;
}
