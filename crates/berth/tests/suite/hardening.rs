//! Findings of an attack pass against berth (issue 14), each reproduced and held fixed:
//! changes to identities and access reach every instance within a bound, whichever door
//! made them; connections cannot exhaust the server; deleted identities leave nothing
//! behind; registry tokens grant exactly what they say; throttling cannot lock a user out;
//! password checks keep memory bounded; ambiguous manifests and overflowing ranges are
//! refused; token limits and policy agree on push implying pull; token signatures are
//! canonical.

use std::path::Path;
use std::time::{Duration, Instant};

use berth_meta::postgres::testing::PostgresServer;
use serde_json::{Value, json};

use crate::access_control::{Registry, add_user, basic, create_token, mount, password};
use crate::support::push::push_image;
use crate::support::{Berth, berth_cli, berth_cli_env, berth_cli_output_env, client};

/// The bound README documents: a change takes effect on every instance within this long.
const CHANGE_BOUND: Duration = Duration::from_secs(2);

/// Polls `probe` until it returns true; how long that took after `since`, or a failure
/// naming `what` if it did not within ten seconds.
async fn time_until<F, Fut>(since: Instant, what: &str, mut probe: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    loop {
        if probe().await {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < Duration::from_secs(10),
            "{what}: still in effect after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The status of starting an upload to `repository` with `authorization`.
async fn upload_status(berth: &Berth, repository: &str, authorization: &str) -> u16 {
    client()
        .post(berth.url(&format!("/v2/{repository}/blobs/uploads/")))
        .header("authorization", authorization)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The repositories `/v2/_catalog` lists for `authorization` (`None` if it is refused).
async fn catalog(berth: &Berth, authorization: &str) -> Option<Value> {
    let response = client()
        .get(berth.url("/v2/_catalog"))
        .header("authorization", authorization)
        .send()
        .await
        .unwrap();
    if response.status() != 200 {
        return None;
    }
    Some(response.json::<Value>().await.unwrap()["repositories"].clone())
}

/// Prints how long each change took to take effect (the figures the issue asks for) and
/// asserts each was within [`CHANGE_BOUND`].
fn within_the_bound(setup: &str, delays: &[(&str, Duration)]) {
    for (change, delay) in delays {
        eprintln!("{setup}: {change} took effect after {delay:?}");
    }
    let slow: Vec<_> = delays
        .iter()
        .filter(|(_, delay)| *delay > CHANGE_BOUND)
        .collect();
    assert!(slow.is_empty(), "slower than {CHANGE_BOUND:?}: {slow:?}");
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

// ---------------------------------------------------------------------------------------
// 1. Revocation everywhere, within the bound

/// Identities for the revocation tests, made with the CLI: `root` (administrator), `alice`
/// and `bob` (push on team/**), `dave` (an administrator to demote), the service account
/// `ci` with a token; returns the token's id and secret.
fn revocation_setup(data: &Path, env: &[(&str, &str)]) -> (String, String) {
    for (name, admin) in [("alice", false), ("bob", false), ("dave", true)] {
        let mut args = vec!["user", "add", name, "--password-stdin"];
        if admin {
            args.push("--admin");
        }
        let output = berth_cli_output_env(data, env, &args, Some(&password(name)));
        assert!(output.status.success(), "{output:?}");
    }
    berth_cli_env(data, env, &["service-account", "add", "ci"]);
    for subject in ["user:alice", "user:bob", "service-account:ci"] {
        berth_cli_env(data, env, &["policy", "add", subject, "team/**", "push"]);
    }
    let token = berth_cli_env(
        data,
        env,
        &["token", "create", "service-account:ci", "--name", "deploy"],
    );
    (
        token["id"].as_str().unwrap().to_string(),
        token["secret"].as_str().unwrap().to_string(),
    )
}

#[tokio::test]
async fn cli_changes_reach_a_running_server_within_the_bound() {
    let mut ids = (String::new(), String::new());
    let registry = Registry::start(
        |data| {
            ids = revocation_setup(data, &[]);
        },
        &[],
    );
    let (token_id, token_secret) = ids;
    let data = registry.berth.data_dir().to_path_buf();
    for repository in ["team/app", "secret/x"] {
        push_image(&registry.admin(), &registry.berth, repository, "v1", 1, 1).await;
    }
    let push_scope = ["repository:team/app:pull,push"];
    // Registry tokens, each used once so that berth has verified and cached it.
    let alice = bearer(
        &registry
            .token(Some(("alice", &password("alice"))), &push_scope)
            .await,
    );
    let bob = bearer(
        &registry
            .token(Some(("bob", &password("bob"))), &push_scope)
            .await,
    );
    let ci = bearer(
        &registry
            .token(Some(("ci", &token_secret)), &push_scope)
            .await,
    );
    let dave = bearer(
        &registry
            .token(Some(("dave", &password("dave"))), &["registry:catalog:*"])
            .await,
    );
    for token in [&alice, &bob, &ci] {
        assert_eq!(upload_status(&registry.berth, "team/app", token).await, 202);
    }
    assert_eq!(
        catalog(&registry.berth, &dave).await,
        Some(json!(["secret/x", "team/app"]))
    );

    let mut delays = Vec::new();
    let since = Instant::now();
    berth_cli(&data, &["user", "disable", "alice"]);
    let delay = time_until(since, "disabled user's token", || async {
        upload_status(&registry.berth, "team/app", &alice).await == 401
    })
    .await;
    delays.push(("`berth user disable`", delay));

    let since = Instant::now();
    berth_cli(&data, &["user", "delete", "bob"]);
    let delay = time_until(since, "deleted user's token", || async {
        upload_status(&registry.berth, "team/app", &bob).await == 401
    })
    .await;
    delays.push(("`berth user delete`", delay));

    let since = Instant::now();
    berth_cli(&data, &["token", "revoke", &token_id]);
    let delay = time_until(since, "token issued through a revoked one", || async {
        upload_status(&registry.berth, "team/app", &ci).await == 401
    })
    .await;
    delays.push(("`berth token revoke`", delay));

    let since = Instant::now();
    berth_cli(&data, &["user", "demote", "dave"]);
    let delay = time_until(since, "demoted administrator's catalog", || async {
        catalog(&registry.berth, &dave).await == Some(json!([]))
    })
    .await;
    delays.push(("`berth user demote`", delay));

    // A rule removed: the account's token no longer pushes (it may log in, so 403).
    berth_cli(&data, &["user", "enable", "alice"]);
    let login = Some(("alice", password("alice")));
    let login = login
        .as_ref()
        .map(|(user, secret)| (*user, secret.as_str()));
    time_until(Instant::now(), "enabled again", || async {
        registry.token_response(login, &push_scope).await.status() == 200
    })
    .await;
    let alice = bearer(&registry.token(login, &push_scope).await);
    assert_eq!(
        upload_status(&registry.berth, "team/app", &alice).await,
        202
    );
    let rules = berth_cli(&data, &["policy", "list"]);
    let rule = rules
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["subject"] == "user:alice")
        .unwrap()["id"]
        .to_string();
    let since = Instant::now();
    berth_cli(&data, &["policy", "remove", &rule]);
    let delay = time_until(since, "removed rule", || async {
        upload_status(&registry.berth, "team/app", &alice).await == 403
    })
    .await;
    delays.push(("`berth policy remove`", delay));

    within_the_bound("one instance", &delays);
}

/// A berth in its own auth mode on `database`, with its own data directory.
fn on_postgres(database: &PostgresServer) -> Berth {
    Berth::builder()
        .env("REGISTRY_AUTH", "berth")
        .env("BERTH_DATABASE_URL", &database.url())
        .start()
}

#[tokio::test]
async fn changes_on_one_instance_reach_another_within_the_bound() {
    let database = PostgresServer::start();
    let url = database.url();
    let env = [("BERTH_DATABASE_URL", url.as_str())];
    let setup = tempfile::tempdir().unwrap();
    let output = berth_cli_output_env(
        setup.path(),
        &env,
        &["user", "add", "root", "--admin", "--password-stdin"],
        Some(&password("root")),
    );
    assert!(output.status.success(), "{output:?}");
    let (token_id, token_secret) = revocation_setup(setup.path(), &env);
    let a = on_postgres(&database);
    let b = on_postgres(&database);
    let root = basic("root", &password("root"));
    let admin_api = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut request = client()
            .request(method, a.url(path))
            .header("authorization", &root);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send()
    };

    // Tokens from A, used once on B.
    let token = |login: (&'static str, String), scope: &'static str| {
        let a = &a;
        async move {
            let response = client()
                .get(a.url("/token"))
                .query(&[("service", "berth"), ("scope", scope)])
                .header("authorization", basic(login.0, &login.1))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            bearer(
                response.json::<Value>().await.unwrap()["token"]
                    .as_str()
                    .unwrap(),
            )
        }
    };
    let push = "repository:team/app:pull,push";
    let alice = token(("alice", password("alice")), push).await;
    let bob = token(("bob", password("bob")), push).await;
    let ci = token(("ci", token_secret), push).await;
    for token in [&alice, &bob, &ci] {
        assert_eq!(upload_status(&b, "team/app", token).await, 202);
    }

    let mut delays = Vec::new();
    let response = admin_api(
        reqwest::Method::PATCH,
        "/api/v1/users/alice",
        Some(json!({"disabled": true})),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        upload_status(&a, "team/app", &alice).await,
        401,
        "at once on the instance that made the change"
    );
    let delay = time_until(Instant::now(), "disabled on A, on B", || async {
        upload_status(&b, "team/app", &alice).await == 401
    })
    .await;
    delays.push(("a user disabled through A's admin API, on B", delay));

    let response = admin_api(
        reqwest::Method::DELETE,
        &format!("/api/v1/tokens/{token_id}"),
        None,
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    let delay = time_until(Instant::now(), "revoked on A, on B", || async {
        upload_status(&b, "team/app", &ci).await == 401
    })
    .await;
    delays.push(("a token revoked through A's admin API, on B", delay));

    // The command line on the shared database: a rule removed.
    let rules = berth_cli_env(setup.path(), &env, &["policy", "list"]);
    let rule = rules
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["subject"] == "user:bob")
        .unwrap()["id"]
        .to_string();
    let since = Instant::now();
    berth_cli_env(setup.path(), &env, &["policy", "remove", &rule]);
    let delay = time_until(since, "rule removed at the command line, on B", || async {
        upload_status(&b, "team/app", &bob).await == 403
    })
    .await;
    delays.push(("a rule removed at the command line, on B", delay));

    within_the_bound("two instances on PostgreSQL", &delays);
}

// ---------------------------------------------------------------------------------------
// 3. Deleting an identity leaves nothing behind

#[tokio::test]
async fn a_deleted_identitys_rules_go_with_it_and_its_name_inherits_nothing() {
    let registry = Registry::start(
        |data| {
            add_user(data, "dave", false);
            add_user(data, "erin", false);
            berth_cli(data, &["team", "add", "devs"]);
            berth_cli(data, &["service-account", "add", "ci"]);
            for subject in ["user:dave", "team:devs", "service-account:ci"] {
                berth_cli(data, &["policy", "add", subject, "team/**", "push"]);
            }
        },
        &[],
    );
    let data = registry.berth.data_dir().to_path_buf();
    let old_token = bearer(
        &registry
            .token(
                Some(("dave", &password("dave"))),
                &["repository:team/app:pull,push"],
            )
            .await,
    );
    assert_eq!(
        upload_status(&registry.berth, "team/app", &old_token).await,
        202
    );

    berth_cli(&data, &["user", "delete", "dave"]);
    berth_cli(&data, &["team", "delete", "devs"]);
    berth_cli(&data, &["service-account", "delete", "ci"]);
    let rules = berth_cli(&data, &["policy", "list"]);
    assert_eq!(rules, json!([]), "rules naming deleted identities remain");

    // New identities of the old names start with nothing.
    let output = crate::support::berth_cli_output(
        &data,
        &["user", "add", "dave", "--password-stdin"],
        Some("dave's new password"),
    );
    assert!(output.status.success(), "{output:?}");
    berth_cli(&data, &["team", "add", "devs"]);
    berth_cli(&data, &["team", "add-member", "devs", "erin"]);
    berth_cli(&data, &["service-account", "add", "ci"]);
    let (_, ci) = create_token(&data, "service-account:ci", "new", &[]);
    // Once the changes have reached the server (the bound), the new identities log in and
    // are judged by what they have now: nothing.
    tokio::time::sleep(CHANGE_BOUND).await;
    let mut inherited = Vec::new();
    for (who, authorization) in [
        ("the new dave", basic("dave", "dave's new password")),
        ("a member of the new devs", basic("erin", &password("erin"))),
        ("the new ci", basic("ci", &ci)),
    ] {
        let status = upload_status(&registry.berth, "team/app", &authorization).await;
        if status != 403 {
            inherited.push(format!("{who} may push: {status}"));
        }
    }
    // The old dave's registry token is not the new dave's.
    let status = upload_status(&registry.berth, "team/app", &old_token).await;
    if status != 401 {
        inherited.push(format!("the old dave's token: {status}"));
    }
    assert!(inherited.is_empty(), "{}", inherited.join("\n"));
}

// ---------------------------------------------------------------------------------------
// 4. A registry token grants exactly its access claim

#[tokio::test]
async fn a_registry_token_grants_exactly_its_access_claim() {
    let registry = Registry::start(
        |data| {
            add_user(data, "alice", false);
            berth_cli(data, &["policy", "add", "user:alice", "team/**", "push"]);
            berth_cli(data, &["policy", "add", "user:alice", "secret/**", "pull"]);
        },
        &[],
    );
    let image = push_image(&registry.admin(), &registry.berth, "secret/x", "v1", 4, 1).await;
    let layer = &image.blobs[1].0;
    let alice = Some(("alice", password("alice")));
    let login = alice.as_ref().map(|(u, p)| (*u, p.as_str()));
    let token = bearer(
        &registry
            .token(login, &["repository:team/m1:pull,push"])
            .await,
    );

    // A mount needs pull on its source in the token: without it, an upload instead (202).
    assert_eq!(
        mount(&registry, &token, "team/m1", layer, Some("secret/x")).await,
        202,
        "mounted from a repository the token does not grant"
    );
    // With pull on the source in the token, the mount happens.
    let both = bearer(
        &registry
            .token(
                login,
                &["repository:team/m2:pull,push", "repository:secret/x:pull"],
            )
            .await,
    );
    assert_eq!(
        mount(&registry, &both, "team/m2", layer, Some("secret/x")).await,
        201
    );

    // The catalog needs the catalog scope in the token, and a challenge says so.
    let response = registry.get("/v2/_catalog", Some(&token)).await;
    let challenge = format!(
        "{},error=\"insufficient_scope\"",
        registry.challenge(Some("registry:catalog:*"))
    );
    registry
        .assert_unauthorized(response, &challenge, "the catalog without its scope")
        .await;
    let listing = bearer(&registry.token(login, &["registry:catalog:*"]).await);
    assert_eq!(
        catalog(&registry.berth, &listing).await,
        Some(json!(["secret/x", "team/m2"]))
    );
}

// ---------------------------------------------------------------------------------------
// 5. Throttling cannot lock a user out

/// A client whose connections come from `address` (a loopback address of its own).
fn client_from(address: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(address.parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap()
}

#[tokio::test]
async fn failed_logins_from_one_address_do_not_lock_the_user_out_elsewhere() {
    let mut token = String::new();
    let registry = Registry::start(
        |data| {
            add_user(data, "alice", false);
            token = create_token(data, "user:alice", "ci", &[]).1;
        },
        &[],
    );
    let attacker = client_from("127.0.0.2");
    let wrong = basic("alice", "not alice's password");
    let right = basic("alice", &password("alice"));
    let mut throttled = false;
    for _ in 0..12 {
        let response = attacker
            .get(registry.url("/v2/"))
            .header("authorization", &wrong)
            .send()
            .await
            .unwrap();
        throttled |= response.status() == 429;
    }
    assert!(throttled, "the guessing address is throttled");
    let status = attacker
        .get(registry.url("/v2/"))
        .header("authorization", &right)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(
        status, 429,
        "the guessing address stays throttled for alice"
    );

    // Alice, elsewhere, logs in everywhere; her access token works even from there.
    let alice = client_from("127.0.0.3");
    let mut locked_out = Vec::new();
    let v2 = alice
        .get(registry.url("/v2/"))
        .header("authorization", &right)
        .send()
        .await
        .unwrap();
    if v2.status() != 200 {
        locked_out.push(format!("/v2/: {}", v2.status()));
    }
    let token_endpoint = alice
        .get(registry.url("/token?service=berth"))
        .header("authorization", &right)
        .send()
        .await
        .unwrap();
    if token_endpoint.status() != 200 {
        locked_out.push(format!("/token: {}", token_endpoint.status()));
    }
    let session = alice
        .post(registry.url("/api/v1/session"))
        .json(&json!({"username": "alice", "password": password("alice")}))
        .send()
        .await
        .unwrap();
    if session.status() != 201 {
        locked_out.push(format!("/api/v1/session: {}", session.status()));
    }
    let with_token = attacker
        .get(registry.url("/v2/"))
        .header("authorization", basic("alice", &token))
        .send()
        .await
        .unwrap();
    if with_token.status() != 200 {
        locked_out.push(format!("access token: {}", with_token.status()));
    }
    assert!(locked_out.is_empty(), "{}", locked_out.join("\n"));
}

// ---------------------------------------------------------------------------------------
// 6. Password checks keep memory bounded

/// The resident memory of a process, in MiB.
fn resident_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .unwrap()
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kib / 1024.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_failed_logins_leaves_memory_bounded() {
    let registry = Registry::start(|data| add_user(data, "alice", false), &[]);
    let pid = registry.berth.pid();
    // Warm up: one login of each kind.
    assert_eq!(
        registry
            .get("/v2/", Some(&basic("alice", &password("alice"))))
            .await
            .status(),
        200
    );
    let before = resident_mib(pid);
    // 160 failed logins, 16 at a time, each from an address of its own (so that none is
    // throttled and every one costs a password check).
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..16 {
        let url = registry.url("/v2/");
        tasks.spawn(async move {
            let from = client_from(&format!("127.0.1.{}", worker + 1));
            for attempt in 0..10 {
                let user = if attempt % 2 == 0 { "alice" } else { "nobody" };
                let status = from
                    .get(&url)
                    .header("authorization", basic(user, &format!("guess {attempt}")))
                    .send()
                    .await
                    .unwrap()
                    .status();
                assert!(status == 401 || status == 429, "{status}");
            }
        });
    }
    let mut peak = before;
    while !tasks.is_empty() {
        tokio::select! {
            done = tasks.join_next() => done.unwrap().unwrap(),
            () = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
        peak = peak.max(resident_mib(pid));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = resident_mib(pid);
    eprintln!(
        "resident memory: {before:.1} MiB before 160 failed logins, peak {peak:.1} MiB, {after:.1} MiB after"
    );
    assert!(
        peak - before < 100.0 && after - before < 40.0,
        "memory grew from {before:.1} MiB to a peak of {peak:.1} MiB, {after:.1} MiB after"
    );
}

// ---------------------------------------------------------------------------------------
// 7. Ambiguous manifests

#[tokio::test]
async fn manifests_with_duplicate_keys_are_refused() {
    let berth = Berth::start();
    let http = client();
    let config = crate::support::push::push_blob(&http, &berth, "dup/app", b"{}").await;
    let layer = crate::support::push::push_blob(&http, &berth, "dup/app", b"layer").await;
    let descriptor = |digest: &str, size: usize| {
        format!(
            r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{digest}","size":{size}}}"#
        )
    };
    let config_descriptor = format!(
        r#"{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":2}}"#
    );
    let cases = [
        (
            "a duplicate top-level key",
            format!(
                r#"{{"schemaVersion":2,"mediaType":"{OCI}","config":{config_descriptor},"layers":[],"layers":[{}]}}"#,
                descriptor(&layer, 5),
                OCI = crate::support::push::OCI_MANIFEST
            ),
        ),
        (
            "a duplicate key in a descriptor",
            format!(
                r#"{{"schemaVersion":2,"mediaType":"{OCI}","config":{config_descriptor},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer}","size":5,"size":6}}]}}"#,
                OCI = crate::support::push::OCI_MANIFEST
            ),
        ),
        (
            "a duplicate annotation",
            format!(
                r#"{{"schemaVersion":2,"mediaType":"{OCI}","config":{config_descriptor},"layers":[],"annotations":{{"a":"1","a":"2"}}}}"#,
                OCI = crate::support::push::OCI_MANIFEST
            ),
        ),
    ];
    for (what, manifest) in cases {
        let response = crate::support::push::put_manifest(
            &http,
            &berth,
            "dup/app",
            "v1",
            crate::support::push::OCI_MANIFEST,
            manifest.as_bytes(),
        )
        .await;
        let body = crate::support::assert_oci_error(response, 400, "MANIFEST_INVALID").await;
        assert!(
            body["errors"][0]["detail"]
                .as_str()
                .unwrap()
                .contains("duplicate key"),
            "{what}: {body}"
        );
    }
    let tags: Value = http
        .get(berth.url("/v2/dup/app/tags/list"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        tags["tags"].as_array().is_none_or(Vec::is_empty),
        "nothing was stored: {tags}"
    );
}

// ---------------------------------------------------------------------------------------
// 8. Ranges that overflow

#[tokio::test]
async fn overflowing_ranges_are_refused_or_answered_by_the_rfc() {
    let berth = Berth::start();
    let http = client();
    let data = crate::support::bytes(1000, 8);
    let digest = crate::support::push::push_blob(&http, &berth, "ranges/app", &data).await;

    // An upload chunk claiming a range to the end of u64: refused, the upload intact.
    let start = http
        .post(berth.url("/v2/ranges/app/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    let location = start.headers()["location"].to_str().unwrap().to_string();
    let location = berth.url(&location[location.find("/v2/").unwrap()..]);
    for content_range in [
        "0-18446744073709551615",
        "0-99999999999999999999999",
        "18446744073709551615-18446744073709551615",
    ] {
        let response = http
            .patch(&location)
            .header("content-range", content_range)
            .body(data[..10].to_vec())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        assert!(
            status == 400 || status == 416,
            "Content-Range {content_range}: {status} {}",
            response.text().await.unwrap()
        );
    }
    let response = http
        .patch(&location)
        .header("content-range", "0-9")
        .body(data[..10].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        202,
        "the upload still takes its first chunk"
    );

    // Range headers with numbers past u64: answered per RFC 9110, never by overflowing.
    let blob = format!("/v2/ranges/app/blobs/{digest}");
    for (range, status, content_range) in [
        ("bytes=-18446744073709551615", 206, Some("bytes 0-999/1000")),
        (
            "bytes=-99999999999999999999999",
            206,
            Some("bytes 0-999/1000"),
        ),
        (
            "bytes=0-99999999999999999999999",
            206,
            Some("bytes 0-999/1000"),
        ),
        ("bytes=99999999999999999999999-", 416, Some("bytes */1000")),
        ("bytes=18446744073709551615-", 416, Some("bytes */1000")),
    ] {
        let response = http
            .get(berth.url(&blob))
            .header("range", range)
            .send()
            .await
            .unwrap();
        assert_eq!(
            (
                response.status().as_u16(),
                response
                    .headers()
                    .get("content-range")
                    .map(|v| v.to_str().unwrap().to_string())
                    .as_deref()
            ),
            (status, content_range),
            "{range}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// 9. Push implies pull, for token limits as for rules

#[tokio::test]
async fn an_access_token_limited_to_push_may_pull() {
    let mut token = String::new();
    let registry = Registry::start(
        |data| {
            add_user(data, "alice", false);
            berth_cli(data, &["policy", "add", "user:alice", "team/**", "push"]);
            token = create_token(data, "user:alice", "push-only", &["team/**:push"]).1;
        },
        &[],
    );
    push_image(&registry.admin(), &registry.berth, "team/app", "v1", 9, 1).await;
    let response = registry
        .get("/v2/team/app/manifests/v1", Some(&basic("alice", &token)))
        .await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let scoped = registry
        .token(Some(("alice", &token)), &["repository:team/app:pull"])
        .await;
    let response = registry
        .get("/v2/team/app/manifests/v1", Some(&bearer(&scoped)))
        .await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}

// ---------------------------------------------------------------------------------------
// 10. Canonical token signatures

#[tokio::test]
async fn registry_tokens_with_a_high_s_signature_are_refused() {
    use crate::access_control::{base64url, base64url_decode, order_minus};
    let registry = Registry::start(|data| add_user(data, "alice", false), &[]);
    let login = Some(("alice", password("alice")));
    let mut high = 0;
    for _ in 0..16 {
        let token = registry
            .token(login.as_ref().map(|(u, p)| (*u, p.as_str())), &[])
            .await;
        let (signed, signature) = token.rsplit_once('.').unwrap();
        let signature = base64url_decode(signature);
        assert_eq!(signature.len(), 64, "ES256: r and s");
        let s = &signature[32..];
        // Issued tokens carry the low s (s <= n/2: n - s >= s).
        if order_minus(s).as_slice() < s {
            high += 1;
        }
        // The same signature with s replaced by n - s is refused.
        let mut flipped = signature[..32].to_vec();
        flipped.extend(order_minus(s));
        let forged = format!("{signed}.{}", base64url(&flipped));
        let response = registry.get("/v2/", Some(&bearer(&forged))).await;
        assert_eq!(
            response.status(),
            401,
            "a signature with n - s was accepted"
        );
        assert_eq!(
            registry.get("/v2/", Some(&bearer(&token))).await.status(),
            200
        );
    }
    assert_eq!(high, 0, "issued tokens with a high s");
}
