//! Remote and virtual repositories through the admin API.

use super::*;

/// Remote and virtual repositories made through the API (the cache suite pulls through them
/// and covers the configuration file's): created, read, replaced, removed, the password
/// never returned.
pub(super) async fn remotes_and_virtuals(api: &Api) {
    let remotes = api.ok(Method::GET, "/api/v1/remotes", &[], None).await;
    assert_eq!(remotes, json!({"remotes": []}));
    // Nothing listens on port 9: a remote need not be reachable to be defined.
    let hub = json!({"name": "hub", "prefix": "hub", "urls": ["http://127.0.0.1:9"],
        "username": "me", "password": "upstream-secret", "maxsize": "1GiB"});
    let created = api
        .ok(Method::POST, "/api/v1/remotes", &[], Some(hub.clone()))
        .await;
    assert_eq!(created["name"], "hub");
    assert_eq!(created["source"], "api");
    assert_eq!(created["prefix"], "hub");
    assert_eq!(created["max_size"], 1u64 << 30);
    assert_eq!(created["password_set"], true);
    assert_eq!(created["updated_by"], "user:root");
    assert!(
        !created.to_string().contains("upstream-secret"),
        "{created}"
    );
    api.refused(
        Method::POST,
        "/api/v1/remotes",
        &[],
        Some(hub),
        409,
        "CONFLICT",
    )
    .await;
    // Checked as the configuration file's keys: the message names the key.
    for (bad, key) in [
        (
            json!({"name": "bad", "prefix": "bad", "urls": []}),
            "remotes.bad.urls",
        ),
        (
            json!({"name": "bad", "prefix": "hub/x", "urls": ["http://127.0.0.1:9"]}),
            "remotes.bad.prefix",
        ),
        (
            json!({"name": "bad", "prefix": "bad", "urls": ["http://127.0.0.1:9"], "ratelimit": 0}),
            "remotes.bad.ratelimit",
        ),
        (
            json!({"name": "bad", "prefix": "bad", "urls": ["http://127.0.0.1:9"], "nosuchkey": 1}),
            "nosuchkey",
        ),
        (
            json!({"name": "Bad Name", "prefix": "bad", "urls": ["http://127.0.0.1:9"]}),
            "not a valid name",
        ),
    ] {
        let body = api
            .refused(
                Method::POST,
                "/api/v1/remotes",
                &[],
                Some(bad),
                400,
                "INVALID",
            )
            .await;
        assert!(body.to_string().contains(key), "{key}: {body}");
    }
    // Replaced without the password: the stored one is kept (same user name).
    let replaced = api
        .ok(
            Method::PUT,
            "/api/v1/remotes/{name}",
            &["hub"],
            Some(json!({"prefix": "dockerhub", "urls": ["http://127.0.0.1:9"], "username": "me"})),
        )
        .await;
    assert_eq!(replaced["prefix"], "dockerhub");
    assert_eq!(replaced["password_set"], true);
    assert_eq!(replaced["definition"]["username"], "me");
    assert!(replaced["definition"].get("password").is_none());
    let got = api
        .ok(Method::GET, "/api/v1/remotes/{name}", &["hub"], None)
        .await;
    assert_eq!(got["prefix"], "dockerhub");
    api.refused(
        Method::PUT,
        "/api/v1/remotes/{name}",
        &["nope"],
        Some(json!({"prefix": "nope", "urls": ["http://127.0.0.1:9"]})),
        404,
        "NOT_FOUND",
    )
    .await;
    // A push under the remote's prefix is refused: it is a cache.
    let push = client()
        .post(api.berth.url("/v2/dockerhub/x/blobs/uploads/"))
        .basic_auth("root", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(push.status(), 403);

    // A virtual repository over a local prefix and the remote.
    let all = api
        .ok(
            Method::POST,
            "/api/v1/virtuals",
            &[],
            Some(json!({"name": "all", "prefix": "all", "locals": ["team"], "remotes": ["hub"], "deploy": "team"})),
        )
        .await;
    assert_eq!(all["kind"], "virtual");
    assert_eq!(all["members"], json!(["team", "dockerhub"]));
    api.refused(
        Method::POST,
        "/api/v1/virtuals",
        &[],
        Some(json!({"name": "loop", "prefix": "loop", "remotes": ["all"]})),
        400,
        "INVALID",
    )
    .await;
    let all = api
        .ok(
            Method::PUT,
            "/api/v1/virtuals/{name}",
            &["all"],
            Some(json!({"prefix": "all", "remotes": ["hub"]})),
        )
        .await;
    assert_eq!(all["deploy"], Value::Null);
    assert_eq!(
        api.ok(Method::GET, "/api/v1/virtuals/{name}", &["all"], None)
            .await["members"],
        json!(["dockerhub"])
    );
    // The remote cannot go while the virtual repository names it.
    api.refused(
        Method::DELETE,
        "/api/v1/remotes/{name}",
        &["hub"],
        None,
        409,
        "CONFLICT",
    )
    .await;
    api.ok(Method::DELETE, "/api/v1/virtuals/{name}", &["all"], None)
        .await;
    api.refused(
        Method::DELETE,
        "/api/v1/virtuals/{name}",
        &["all"],
        None,
        404,
        "NOT_FOUND",
    )
    .await;
    api.refused(
        Method::GET,
        "/api/v1/virtuals/{name}",
        &["all"],
        None,
        404,
        "NOT_FOUND",
    )
    .await;
    api.ok(Method::DELETE, "/api/v1/remotes/{name}", &["hub"], None)
        .await;
    let remotes = api.ok(Method::GET, "/api/v1/remotes", &[], None).await;
    assert_eq!(remotes, json!({"remotes": []}));
    // Each change is in the audit log, the password in none.
    let audit = api
        .ok(Method::GET, "/api/v1/audit", &[], None)
        .await
        .to_string();
    assert!(
        audit.contains("remote:hub") && audit.contains("virtual:all"),
        "{audit}"
    );
    assert!(!audit.contains("upstream-secret"));
}
