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

/// `berth remote|virtual ...` against the data directory of a serving berth: the same
/// checks, audit and stored definitions as the admin API, which sees every change.
#[tokio::test]
async fn the_command_line_manages_remotes_and_virtuals_as_the_admin_api_does() {
    let data = tempfile::tempdir().unwrap();
    let output = berth_cli_output(
        data.path(),
        &["user", "add", "root", "--admin", "--password-stdin"],
        Some("root-password\n"),
    );
    assert!(output.status.success(), "{output:?}");
    let berth = berth_with_users(data.path(), &[], "", &[]);
    let cli = |args: &[&str]| berth_cli(data.path(), args);
    let refused = |args: &[&str]| {
        let output = berth_cli_output(data.path(), args, None);
        assert!(!output.status.success(), "{args:?} succeeded: {output:?}");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let api = |path: &'static str| {
        let url = berth.url(path);
        async move {
            client()
                .get(url)
                .basic_auth("root", Some("root-password"))
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };

    // Nothing listens on port 9: a remote need not be reachable to be defined.
    let added = cli(&[
        "remote",
        "add",
        "hub",
        "prefix=hub",
        "urls=http://127.0.0.1:9,http://127.0.0.1:10",
        "revalidateafter=5m",
        "ratelimit=7",
        "servestale=false",
        "maxsize=1GiB",
    ]);
    assert_eq!(added["name"], "hub");
    assert_eq!(added["source"], "api");
    assert!(
        added["updated_by"].as_str().unwrap().starts_with("cli:"),
        "{added}"
    );
    let seen = api("/api/v1/remotes/hub").await;
    for key in [
        "prefix",
        "urls",
        "revalidate_after_seconds",
        "serve_stale",
        "rate_limit",
        "max_size",
    ] {
        assert_eq!(added[key], seen[key], "{key}: {added} vs {seen}");
    }
    assert_eq!(
        seen["urls"],
        serde_json::json!(["http://127.0.0.1:9/", "http://127.0.0.1:10/"])
    );
    assert_eq!(seen["revalidate_after_seconds"], 300);
    assert_eq!(seen["serve_stale"], false);
    assert_eq!(seen["max_size"], 1u64 << 30);

    // `set` changes the keys it names and keeps the others; `KEY=` unsets one.
    let changed = cli(&["remote", "set", "hub", "revalidateafter=1m", "ratelimit="]);
    assert_eq!(changed["revalidate_after_seconds"], 60);
    assert_eq!(changed["rate_limit"], serde_json::Value::Null);
    assert_eq!(changed["serve_stale"], false);
    assert_eq!(
        api("/api/v1/remotes/hub").await["revalidate_after_seconds"],
        60
    );

    // Checked as the configuration file's keys, with the key's path in the message.
    for (args, message) in [
        (
            &[
                "remote",
                "add",
                "bad",
                "prefix=hub/x",
                "urls=http://127.0.0.1:9",
            ][..],
            "remotes.bad.prefix",
        ),
        (
            &[
                "remote",
                "add",
                "bad",
                "prefix=bad",
                "urls=http://127.0.0.1:9",
                "ratelimit=0",
            ],
            "remotes.bad.ratelimit",
        ),
        (
            &[
                "remote",
                "add",
                "bad",
                "prefix=bad",
                "urls=http://127.0.0.1:9",
                "revalidatafter=1m",
            ],
            "did you mean revalidateafter",
        ),
        (
            &[
                "remote",
                "add",
                "bad",
                "prefix=bad",
                "urls=http://127.0.0.1:9",
                "insecure=maybe",
            ],
            "remotes.insecure",
        ),
        (
            &["remote", "add", "bad", "prefix=bad", "password=hunter2"],
            "--password-stdin",
        ),
        (&["remote", "add", "bad", "prefix"], "KEY=VALUE"),
        (
            &[
                "remote",
                "add",
                "hub",
                "prefix=other",
                "urls=http://127.0.0.1:9",
            ],
            "exists already",
        ),
        (
            &["remote", "set", "nope", "prefix=nope"],
            "no remote named nope",
        ),
    ] {
        let stderr = refused(args);
        assert!(stderr.contains(message), "{args:?}: {message} in {stderr}");
    }
    assert_eq!(
        api("/api/v1/remotes").await["remotes"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // The upstream password from standard input: set, never shown.
    let output = berth_cli_output(
        data.path(),
        &["remote", "set", "hub", "username=me", "--password-stdin"],
        Some("upstream-secret\n"),
    );
    assert!(output.status.success(), "{output:?}");
    let shown = cli(&["remote", "show", "hub"]);
    assert_eq!(shown["password_set"], true);
    assert!(!shown.to_string().contains("upstream-secret"), "{shown}");

    let all = cli(&[
        "virtual",
        "add",
        "all",
        "prefix=all",
        "locals=team",
        "remotes=hub",
        "deploy=team",
    ]);
    assert_eq!(all["members"], serde_json::json!(["team", "hub"]));
    let listed = cli(&["virtual", "list"]);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(api("/api/v1/virtuals/all").await["deploy"], "team");
    // The remote cannot go while the virtual repository names it.
    let stderr = refused(&["remote", "remove", "hub"]);
    assert!(stderr.contains("would leave"), "{stderr}");
    assert_eq!(
        cli(&["virtual", "remove", "all"])["message"],
        "removed the virtual all"
    );
    assert_eq!(
        cli(&["remote", "remove", "hub"])["message"],
        "removed the remote hub"
    );
    assert_eq!(
        api("/api/v1/remotes").await["remotes"],
        serde_json::json!([])
    );

    // Audited as the operator's management actions.
    let audit = cli(&["audit", "list", "--limit", "50"]);
    let text = audit.to_string();
    for target in ["remote:hub", "virtual:all"] {
        assert!(text.contains(target), "{target} in {text}");
    }
}
