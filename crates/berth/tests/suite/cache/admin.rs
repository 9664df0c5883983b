//! Remotes and virtual repositories through the admin API: what is configured, and how each
//! remote is doing.

use super::*;

#[tokio::test]
async fn the_admin_api_lists_remotes_and_virtual_repositories_with_their_status() {
    let (_dir, upstream, _sandbox, pushed) = upstream_with_image(b"listed\n").await;
    let data = tempfile::tempdir().unwrap();
    let output = berth_cli_output(
        data.path(),
        &["user", "add", "root", "--admin", "--password-stdin"],
        Some("root-password\n"),
    );
    assert!(output.status.success(), "{output:?}");
    // `down` points at a port nothing listens on.
    let yaml = format!(
        "{}  down:\n    prefix: down\n    urls: [http://127.0.0.1:{}]\n    ratelimit: 5\n    platforms: [linux/amd64]\nvirtuals:\n  all:\n    prefix: all\n    locals: [mine]\n    remotes: [up, down]\n    deploy: mine\n",
        remote_config(&upstream.base, ""),
        crate::support::free_port()
    );
    let berth = berth_with_users(data.path(), &[("bob", "up/**", "pull")], &yaml, &[]);

    assert_eq!(
        manifest_digest_as(&berth, "up/team/app", "v1").await,
        pushed.digest
    );
    let response = client()
        .get(berth.url("/v2/down/team/app/manifests/v1"))
        .basic_auth("root", Some("root-password"))
        .send()
        .await
        .unwrap();
    assert_oci_error(response, 503, "UNAVAILABLE").await;

    let listed: serde_json::Value = client()
        .get(berth.url("/api/v1/remotes"))
        .basic_auth("root", Some("root-password"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let remotes = listed["remotes"].as_array().unwrap();
    let named = |name: &str| {
        remotes
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {listed}"))
    };
    let up = named("up");
    assert_eq!(up["kind"], "remote");
    assert_eq!(up["prefix"], "up");
    assert_eq!(
        up["urls"],
        serde_json::json!([format!("{}/", upstream.base)])
    );
    assert_eq!(
        up["status"]["upstream_requests"], 1,
        "one manifest GET: {up}"
    );
    assert_eq!(up["status"]["blob_fetches"], 0);
    assert_eq!(up["status"]["last_error"], serde_json::Value::Null);
    assert_eq!(up["status"]["rate_limit_remaining"], -1);
    let down = named("down");
    assert_eq!(down["rate_limit"], 5);
    assert_eq!(down["platforms"], serde_json::json!(["linux/amd64"]));
    let error = down["status"]["last_error"]["message"].as_str().unwrap();
    assert!(error.contains("could not be reached"), "{down}");
    assert!(down["status"]["last_error"]["at_unix"].as_u64().unwrap() > 1_700_000_000);
    let all = named("all");
    assert_eq!(all["kind"], "virtual");
    assert_eq!(all["members"], serde_json::json!(["mine", "up", "down"]));
    assert_eq!(all["deploy"], "mine");

    // Administrators only.
    let response = client()
        .get(berth.url("/api/v1/remotes"))
        .basic_auth("bob", Some("bob-password"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
}

/// A manifest's digest through berth as `root`.
async fn manifest_digest_as(berth: &Berth, repo: &str, reference: &str) -> String {
    let response = client()
        .get(berth.url(&format!("/v2/{repo}/manifests/{reference}")))
        .basic_auth("root", Some("root-password"))
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.headers()["docker-content-digest"]
        .to_str()
        .unwrap()
        .to_string()
}
